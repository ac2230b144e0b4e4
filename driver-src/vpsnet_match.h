/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Driver ethtool statistics names -> vpsnet fields. Pure string matching
 * without kernel state: tests/unit/test_stats_match.py builds
 * vpsnet_match.c for userspace and feeds it recorded `ethtool -S` output.
 */
#ifndef VPSNET_MATCH_H
#define VPSNET_MATCH_H

#include <linux/types.h>

#define VPSNET_MAX_QUEUES	256

enum vpsnet_dir { VPSNET_RX, VPSNET_TX, VPSNET_NR_DIR };

/* per-queue fields; DESCS are descriptors, never counted as packets */
enum vpsnet_qfield {
	VPSNET_QF_PACKETS,
	VPSNET_QF_BYTES,
	VPSNET_QF_DROPS,
	VPSNET_QF_DESCS,
	VPSNET_NR_QF
};

/*
 * Per-device driver counters. The *_EXCEEDED ones come first: they are
 * the "counter" label values of vpsnet_device_allowance_exceeded_total.
 */
enum vpsnet_dfield {
	VPSNET_DF_BW_IN_EXCEEDED,
	VPSNET_DF_BW_OUT_EXCEEDED,
	VPSNET_DF_PPS_EXCEEDED,
	VPSNET_DF_CONNTRACK_EXCEEDED,
	VPSNET_DF_LINKLOCAL_EXCEEDED,
	VPSNET_DF_CONNTRACK_AVAILABLE,
	VPSNET_NR_DF
};

#define VPSNET_DF_NR_EXCEEDED	(VPSNET_DF_LINKLOCAL_EXCEEDED + 1)

enum vpsnet_match_kind {
	VPSNET_MATCH_NONE,
	VPSNET_MATCH_QUEUE,	/* dir, field (vpsnet_qfield), queue */
	VPSNET_MATCH_DEV,	/* field (vpsnet_dfield) */
};

struct vpsnet_match {
	u8 dir;
	u8 field;
	unsigned int queue;
};

/* the ethtool name of each device field, also its label value */
extern const char * const vpsnet_dfield_names[VPSNET_NR_DF];

enum vpsnet_match_kind vpsnet_match_stat(const char *driver, const char *name,
					 struct vpsnet_match *m);

#endif /* VPSNET_MATCH_H */
