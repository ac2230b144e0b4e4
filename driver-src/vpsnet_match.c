// SPDX-License-Identifier: GPL-2.0-only
/*
 * Which driver ethtool statistics vpsnet exports, and as what. Only
 * string matching on the names get_strings() returns: no kernel state,
 * so the unit tests build this file for userspace and run it on
 * recorded `ethtool -S` output (tests/unit/test_stats_match.py).
 */
#include <linux/ctype.h>
#include <linux/kernel.h>
#include <linux/string.h>
#include "vpsnet_match.h"

const char * const vpsnet_dfield_names[VPSNET_NR_DF] = {
	[VPSNET_DF_BW_IN_EXCEEDED] = "bw_in_allowance_exceeded",
	[VPSNET_DF_BW_OUT_EXCEEDED] = "bw_out_allowance_exceeded",
	[VPSNET_DF_PPS_EXCEEDED] = "pps_allowance_exceeded",
	[VPSNET_DF_CONNTRACK_EXCEEDED] = "conntrack_allowance_exceeded",
	[VPSNET_DF_LINKLOCAL_EXCEEDED] = "linklocal_allowance_exceeded",
	[VPSNET_DF_CONNTRACK_AVAILABLE] = "conntrack_allowance_available",
};

/*
 * Per-device counters: a driver and a field, matched on the field's exact
 * ethtool name. ENA reports the allowance counters when the device has
 * ENI statistics (6.1) or customer metrics (6.12, which adds
 * conntrack_allowance_available).
 */
struct vpsnet_dpat {
	const char *driver;
	u8 field;
};

#define DP(drv, f)	{ drv, VPSNET_DF_##f }

static const struct vpsnet_dpat vpsnet_dpats[] = {
	DP("ena", BW_IN_EXCEEDED),
	DP("ena", BW_OUT_EXCEEDED),
	DP("ena", PPS_EXCEEDED),
	DP("ena", CONNTRACK_EXCEEDED),
	DP("ena", LINKLOCAL_EXCEEDED),
	DP("ena", CONNTRACK_AVAILABLE),
};

/*
 * Per-queue patterns: prefix, queue number, suffix. Values of every
 * matching name are summed into the field. Names seen in the drivers:
 *   virtio_net <= 6.8: rx_queue_N_packets, tx_queue_N_bytes, ...
 *   virtio_net >= 6.9: rxN_drops, txN_xdp_tx_drops (packets and bytes
 *                      moved to the queue statistics ops)
 *   ena:               queue_N_rx_cnt, queue_N_tx_bytes, ...
 *   gve:               rx_completed_desc[N], tx_bytes[N], ... gve has
 *                      no per-queue packet counter in ethtool (6.1,
 *                      6.12): its completed descriptors are DESCS.
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
	/* RX buffer refill failures and the XDP program's drops */
	QP("ena", "queue_", "_rx_page_alloc_fail", RX, DROPS),
	QP("ena", "queue_", "_rx_dma_mapping_err", RX, DROPS),
	QP("ena", "queue_", "_rx_xdp_drop", RX, DROPS),
	QP("ena", "queue_", "_tx_cnt", TX, PACKETS),
	QP("ena", "queue_", "_tx_bytes", TX, BYTES),
	QP("ena", "queue_", "_tx_dma_mapping_err", TX, DROPS),
	QP("ena", "queue_", "_tx_linearize_failed", TX, DROPS),
	QP("ena", "queue_", "_tx_prepare_ctx_err", TX, DROPS),
	QP("gve", "rx_completed_desc[", "]", RX, DESCS),
	QP("gve", "rx_bytes[", "]", RX, BYTES),
	QP("gve", "rx_dropped_pkt[", "]", RX, DROPS),
	/* the virtual NIC's own drops, from gve's stats report */
	QP("gve", "rx_queue_drop_cnt[", "]", RX, DROPS),
	QP("gve", "rx_no_buffers_posted[", "]", RX, DROPS),
	QP("gve", "rx_drops_packet_over_mru[", "]", RX, DROPS),
	QP("gve", "rx_drops_invalid_checksum[", "]", RX, DROPS),
	QP("gve", "rx_xdp_drop[", "]", RX, DROPS),
	QP("gve", "tx_completed_desc[", "]", TX, DESCS),
	QP("gve", "tx_bytes[", "]", TX, BYTES),
	QP("gve", "tx_dma_mapping_error[", "]", TX, DROPS),
};

/*
 * Match "<prefix><queue><suffix>" exactly, the queue written as the
 * drivers print it (%u: no sign, no leading zero); the queue or -1.
 */
static int vpsnet_qpat_match(const struct vpsnet_qpat *p, const char *name)
{
	size_t plen = strlen(p->prefix);
	unsigned int q = 0;
	const char *s;

	if (strncmp(name, p->prefix, plen))
		return -1;
	s = name + plen;
	if (!isdigit(*s) || (s[0] == '0' && isdigit(s[1])))
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

enum vpsnet_match_kind vpsnet_match_stat(const char *driver, const char *name,
					 struct vpsnet_match *m)
{
	const struct vpsnet_dpat *d;
	const struct vpsnet_qpat *p;
	int q;

	for (d = vpsnet_dpats; d < vpsnet_dpats + ARRAY_SIZE(vpsnet_dpats);
	     d++) {
		if (strcmp(d->driver, driver) ||
		    strcmp(vpsnet_dfield_names[d->field], name))
			continue;
		m->field = d->field;
		return VPSNET_MATCH_DEV;
	}
	for (p = vpsnet_qpats; p < vpsnet_qpats + ARRAY_SIZE(vpsnet_qpats);
	     p++) {
		if (strcmp(p->driver, driver))
			continue;
		q = vpsnet_qpat_match(p, name);
		if (q < 0)
			continue;
		m->dir = p->dir;
		m->field = p->field;
		m->queue = q;
		return VPSNET_MATCH_QUEUE;
	}
	return VPSNET_MATCH_NONE;
}
