// SPDX-License-Identifier: GPL-2.0-only
/*
 * Device statistics collection: rtnl_link_stats64, TX queue state and
 * per-queue counters from the queue statistics ops or from the driver's
 * own ethtool statistics names.
 */
#include <linux/ethtool.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/rtnetlink.h>
#include <net/net_namespace.h>
#include "vpsnet.h"

/*
 * ethtool name patterns: prefix, queue number, suffix. Values of every
 * matching name are summed into the field. Names seen in the drivers:
 *   virtio_net <= 6.8: rx_queue_N_packets, tx_queue_N_bytes, ...
 *   virtio_net >= 6.9: rxN_drops, txN_xdp_tx_drops (packets and bytes
 *                      moved to the queue statistics ops)
 *   ena:               queue_N_rx_cnt, queue_N_tx_bytes, ...
 *   gve:               rx_completed_desc[N], tx_bytes[N], ...
 */
struct vpsnet_qpat {
	const char *driver;
	const char *prefix;
	const char *suffix;
	u8 dir;
	u8 field;
};

#define QP(drv, pre, suf, d, f) \
	{ drv, pre, suf, VPSNET_##d, VPSNET_QF_##f }

static const struct vpsnet_qpat vpsnet_qpats[] = {
	QP("virtio_net", "rx_queue_", "_packets", RX, PACKETS),
	QP("virtio_net", "rx_queue_", "_bytes", RX, BYTES),
	QP("virtio_net", "rx_queue_", "_drops", RX, DROPS),
	QP("virtio_net", "tx_queue_", "_packets", TX, PACKETS),
	QP("virtio_net", "tx_queue_", "_bytes", TX, BYTES),
	QP("virtio_net", "tx_queue_", "_xdp_tx_drops", TX, DROPS),
	QP("virtio_net", "rx", "_packets", RX, PACKETS),
	QP("virtio_net", "rx", "_bytes", RX, BYTES),
	QP("virtio_net", "rx", "_drops", RX, DROPS),
	QP("virtio_net", "rx", "_hw_drops", RX, DROPS),
	QP("virtio_net", "tx", "_packets", TX, PACKETS),
	QP("virtio_net", "tx", "_bytes", TX, BYTES),
	QP("virtio_net", "tx", "_xdp_tx_drops", TX, DROPS),
	QP("virtio_net", "tx", "_hw_drops", TX, DROPS),
	QP("ena", "queue_", "_rx_cnt", RX, PACKETS),
	QP("ena", "queue_", "_rx_bytes", RX, BYTES),
	QP("ena", "queue_", "_rx_skb_alloc_fail", RX, DROPS),
	QP("ena", "queue_", "_tx_cnt", TX, PACKETS),
	QP("ena", "queue_", "_tx_bytes", TX, BYTES),
	QP("ena", "queue_", "_tx_dma_mapping_err", TX, DROPS),
	QP("ena", "queue_", "_tx_linearize_failed", TX, DROPS),
	QP("ena", "queue_", "_tx_prepare_ctx_err", TX, DROPS),
	QP("gve", "rx_completed_desc[", "]", RX, PACKETS),
	QP("gve", "rx_bytes[", "]", RX, BYTES),
	QP("gve", "rx_dropped_pkt[", "]", RX, DROPS),
	QP("gve", "tx_completed_desc[", "]", TX, PACKETS),
	QP("gve", "tx_bytes[", "]", TX, BYTES),
	QP("gve", "tx_dma_mapping_error[", "]", TX, DROPS),
};

/* Match "<prefix><digits><suffix>" exactly; return the queue or -1 */
static int vpsnet_qpat_match(const struct vpsnet_qpat *p, const char *name)
{
	size_t plen = strlen(p->prefix);
	unsigned int q = 0;
	const char *s;

	if (strncmp(name, p->prefix, plen))
		return -1;
	s = name + plen;
	if (!isdigit(*s))
		return -1;
	while (isdigit(*s)) {
		q = q * 10 + (*s - '0');
		if (q >= VPSNET_MAX_QUEUES)
			return -1;
		s++;
	}
	if (strcmp(s, p->suffix))
		return -1;
	return q;
}

static void vpsnet_qpat_apply(struct vpsnet_devsnap *s, const char *name,
			      u64 val)
{
	const struct vpsnet_qpat *p;
	struct vpsnet_qval *qv;
	int q;

	for (p = vpsnet_qpats; p < vpsnet_qpats + ARRAY_SIZE(vpsnet_qpats);
	     p++) {
		if (strcmp(p->driver, s->driver))
			continue;
		q = vpsnet_qpat_match(p, name);
		if (q < 0 || q >= s->nq[p->dir])
			continue;
		qv = &s->q[p->dir][q];
		if (qv->qstat & BIT(p->field))
			return;
		if (!(qv->valid & BIT(p->field)))
			qv->val[p->field] = 0;
		qv->val[p->field] += val;
		qv->valid |= BIT(p->field);
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
		vpsnet_qpat_apply(s, name, data[i]);
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
