/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The only place where kernel API differences are handled. The HAVE_*
 * symbols come from compile probes run by ./configure against the
 * target kernel's headers (vpsnet_config.h); there are no kernel
 * version checks anywhere in vpsnet.
 */
#ifndef VPSNET_COMPAT_H
#define VPSNET_COMPAT_H

#include <linux/netdevice.h>
#include <linux/proc_fs.h>
#include "vpsnet_config.h"

#ifdef HAVE_NETDEV_STAT_OPS
#include <net/netdev_queues.h>
#endif

#ifndef HAVE_PROC_OPS
#error "vpsnet needs struct proc_ops (Linux 5.6 or newer)"
#endif

/* Device references */
struct vpsnet_ref {
	struct net_device *dev;
#ifdef HAVE_NETDEV_HOLD
	netdevice_tracker tracker;
#endif
};

static inline void vpsnet_dev_hold(struct vpsnet_ref *ref,
				   struct net_device *dev)
{
	ref->dev = dev;
#ifdef HAVE_NETDEV_HOLD
	netdev_hold(dev, &ref->tracker, GFP_KERNEL);
#else
	dev_hold(dev);
#endif
}

static inline void vpsnet_dev_put(struct vpsnet_ref *ref)
{
#ifdef HAVE_NETDEV_HOLD
	netdev_put(ref->dev, &ref->tracker);
#else
	dev_put(ref->dev);
#endif
}

/* TX queue state */
static inline unsigned long vpsnet_txq_timeouts(struct netdev_queue *q)
{
#ifdef HAVE_TXQ_TRANS_TIMEOUT_ATOMIC
	return atomic_long_read(&q->trans_timeout);
#else
	return READ_ONCE(q->trans_timeout);
#endif
}

static inline bool vpsnet_txq_stopped(const struct netdev_queue *q)
{
#ifdef HAVE_NETIF_XMIT_STOPPED
	return netif_xmit_stopped(q);
#else
	return netif_tx_queue_stopped(q);
#endif
}

/* BQL: bytes in flight and a completion progress marker */
static inline void vpsnet_txq_bql(struct netdev_queue *q, u64 *inflight,
				  u32 *completed)
{
#ifdef CONFIG_BQL
	u32 queued = READ_ONCE(q->dql.num_queued);
	u32 done = READ_ONCE(q->dql.num_completed);

	*inflight = queued - done;
	*completed = done;
#else
	*inflight = 0;
	*completed = 0;
#endif
}

/* softnet_data */
static inline u64 vpsnet_softnet_dropped(struct softnet_data *sd)
{
#ifdef HAVE_SOFTNET_DROPPED_ATOMIC
	return (unsigned int)atomic_read(&sd->dropped);
#else
	return READ_ONCE(sd->dropped);
#endif
}

/*
 * Per-queue packets/bytes from the queue statistics ops, where the
 * driver has them. Returns false if nothing was reported; a value of
 * U64_MAX means "not reported".
 */
static inline bool vpsnet_qstats(struct net_device *dev, bool rx, int idx,
				 u64 *packets, u64 *bytes)
{
#ifdef HAVE_NETDEV_STAT_OPS
	const struct netdev_stat_ops *ops = dev->stat_ops;

	if (!ops)
		return false;
	if (rx && ops->get_queue_stats_rx) {
		struct netdev_queue_stats_rx s;

		memset(&s, 0xff, sizeof(s));
		ops->get_queue_stats_rx(dev, idx, &s);
		*packets = s.packets;
		*bytes = s.bytes;
		return true;
	}
	if (!rx && ops->get_queue_stats_tx) {
		struct netdev_queue_stats_tx s;

		memset(&s, 0xff, sizeof(s));
		ops->get_queue_stats_tx(dev, idx, &s);
		*packets = s.packets;
		*bytes = s.bytes;
		return true;
	}
#endif
	return false;
}

#endif /* VPSNET_COMPAT_H */
