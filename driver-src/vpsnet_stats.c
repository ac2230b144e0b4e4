// SPDX-License-Identifier: GPL-2.0-only
/*
 * Device statistics collection: rtnl_link_stats64, TX queue state,
 * per-queue counters from the queue statistics ops or from the driver's
 * own ethtool statistics, and per-device driver counters (ENA's
 * allowance counters) from the ethtool statistics.
 */
#include <linux/ethtool.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/rtnetlink.h>
#include <net/net_namespace.h>
#include "vpsnet.h"

/*
 * One ethtool statistic into the snapshot (vpsnet_match.c says which
 * field it is). Values of every name matching a field are summed; a
 * field the queue statistics ops already gave is left alone.
 */
static void vpsnet_stat_apply(struct vpsnet_devsnap *s, const char *name,
			      u64 val)
{
	struct vpsnet_match m;
	struct vpsnet_qval *qv;

	switch (vpsnet_match_stat(s->driver, name, &m)) {
	case VPSNET_MATCH_QUEUE:
		if (m.queue >= s->nq[m.dir])
			return;
		qv = &s->q[m.dir][m.queue];
		if (qv->qstat & BIT(m.field))
			return;
		if (!(qv->valid & BIT(m.field)))
			qv->val[m.field] = 0;
		qv->val[m.field] += val;
		qv->valid |= BIT(m.field);
		return;
	case VPSNET_MATCH_DEV:
		if (!(s->dvalid & BIT(m.field)))
			s->dval[m.field] = 0;
		s->dval[m.field] += val;
		s->dvalid |= BIT(m.field);
		return;
	default:
		return;
	}
}

static void vpsnet_collect_ethtool(struct net_device *dev,
				   struct vpsnet_devsnap *s)
{
	const struct ethtool_ops *ops = dev->ethtool_ops;
	struct ethtool_stats est = { .cmd = ETHTOOL_GSTATS };
	char name[ETH_GSTRING_LEN + 1];
	u8 *strings;
	u64 *data;
	int n, i;

	if (!ops || !ops->get_sset_count || !ops->get_strings ||
	    !ops->get_ethtool_stats)
		return;
	n = ops->get_sset_count(dev, ETH_SS_STATS);
	if (n <= 0 || n > 65536)
		return;

	strings = kvcalloc(n, ETH_GSTRING_LEN, GFP_KERNEL);
	data = kvcalloc(n, sizeof(u64), GFP_KERNEL);
	if (!strings || !data)
		goto out;

	if (ops->begin && ops->begin(dev) < 0)
		goto out;
	est.n_stats = n;
	ops->get_strings(dev, ETH_SS_STATS, strings);
	ops->get_ethtool_stats(dev, &est, data);
	if (ops->complete)
		ops->complete(dev);

	for (i = 0; i < n; i++) {
		memcpy(name, strings + i * ETH_GSTRING_LEN, ETH_GSTRING_LEN);
		name[ETH_GSTRING_LEN] = '\0';
		vpsnet_stat_apply(s, name, data[i]);
	}
out:
	kvfree(strings);
	kvfree(data);
}

static void vpsnet_collect_qstats(struct net_device *dev,
				  struct vpsnet_devsnap *s)
{
	unsigned int d, i;
	u64 pkts, bytes;

	for (d = 0; d < VPSNET_NR_DIR; d++) {
		for (i = 0; i < s->nq[d]; i++) {
			struct vpsnet_qval *qv = &s->q[d][i];

			if (!vpsnet_qstats(dev, d == VPSNET_RX, i, &pkts,
					   &bytes))
				break;
			if (pkts != U64_MAX) {
				qv->val[VPSNET_QF_PACKETS] = pkts;
				qv->qstat |= BIT(VPSNET_QF_PACKETS);
			}
			if (bytes != U64_MAX) {
				qv->val[VPSNET_QF_BYTES] = bytes;
				qv->qstat |= BIT(VPSNET_QF_BYTES);
			}
			qv->valid |= qv->qstat;
		}
	}
}

void vpsnet_snap_free(struct vpsnet_devsnap *s)
{
	kvfree(s);
}

/* Copy one attached device; called with RTNL held. */
struct vpsnet_devsnap *vpsnet_snap_dev(struct vpsnet_dev *vd)
{
	struct net_device *dev = vd->dev;
	struct vpsnet_devsnap *s;
	unsigned int nrx, ntx, i;
	size_t size;

	ASSERT_RTNL();
	nrx = min_t(unsigned int, dev->real_num_rx_queues, VPSNET_MAX_QUEUES);
	ntx = min_t(unsigned int, dev->real_num_tx_queues, VPSNET_MAX_QUEUES);
	size = sizeof(*s) + (nrx + ntx) * sizeof(struct vpsnet_qval) +
	       ntx * sizeof(struct vpsnet_txqval);
	s = kvzalloc(size, GFP_KERNEL);
	if (!s)
		return NULL;
	s->q[VPSNET_RX] = (struct vpsnet_qval *)(s + 1);
	s->q[VPSNET_TX] = s->q[VPSNET_RX] + nrx;
	s->txq = (struct vpsnet_txqval *)(s->q[VPSNET_TX] + ntx);
	s->nq[VPSNET_RX] = nrx;
	s->nq[VPSNET_TX] = ntx;

	strscpy(s->name, dev->name, sizeof(s->name));
	strscpy(s->driver, vd->driver, sizeof(s->driver));
	s->netns = dev_net(dev)->ns.inum;
	s->link_up = vd->link_up;
	s->state = vd->state;
	s->flaps = vd->flaps;
	s->transitions = vd->transitions;
	s->last_change = vd->last_change;

	dev_get_stats(dev, &s->stats);

	for (i = 0; i < ntx; i++) {
		struct netdev_queue *q = netdev_get_tx_queue(dev, i);
		struct vpsnet_txqval *t = &s->txq[i];

		t->stopped = vpsnet_txq_stopped(q);
		t->timeouts = vpsnet_txq_timeouts(q);
		vpsnet_txq_bql(q, &t->inflight, &t->completed);
	}

	if (netif_device_present(dev)) {
		vpsnet_collect_qstats(dev, s);
		vpsnet_collect_ethtool(dev, s);
	}
	return s;
}
