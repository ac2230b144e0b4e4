/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef VPSNET_H
#define VPSNET_H

#include <linux/list.h>
#include <linux/netdevice.h>
#include <linux/ratelimit.h>
#include <linux/time64.h>
#include "vpsnet_compat.h"
#include "vpsnet_abi.h"
#include "vpsnet_match.h"

#define VPSNET_DRV_LEN		32
#define VPSNET_MAX_DRIVERS	16

#define VPSNET_SEP
#define VPSNET_STATE(name)		VPSNET_ST_##name,
enum vpsnet_state {
#include "vpsnet_states.h"
	VPSNET_NR_STATES
};

#undef VPSNET_STATE

#define VPSNET_FAMILY(name, ...)	VPSNET_FAM_##name,
enum vpsnet_family {
#include "vpsnet_families.h"
	VPSNET_NR_FAMILIES
};

#undef VPSNET_FAMILY
#undef VPSNET_SEP

/* per-queue values; valid and qstat are bit masks of enum vpsnet_qfield */
struct vpsnet_qval {
	u64 val[VPSNET_NR_QF];
	u8 valid;
	u8 qstat;
};

struct vpsnet_txqval {
	u64 timeouts;
	u64 inflight;
	u32 completed;
	bool stopped;
};

/* A consistent copy of one device, taken under RTNL */
struct vpsnet_devsnap {
	char name[IFNAMSIZ];
	char driver[VPSNET_DRV_LEN];
	u32 netns;
	bool link_up;
	enum vpsnet_state state;
	u64 flaps;
	u64 transitions;
	/* per-device driver counters; dvalid: bit mask of vpsnet_dfield */
	u64 dval[VPSNET_NR_DF];
	u32 dvalid;
	time64_t last_change;
	struct rtnl_link_stats64 stats;
	unsigned int nq[VPSNET_NR_DIR];
	struct vpsnet_qval *q[VPSNET_NR_DIR];
	struct vpsnet_txqval *txq;
};

struct vpsnet_txhist {
	u64 tx_done;	/* TX packets, else descriptors, completed */
	unsigned long timeouts;
	u32 completed;
	unsigned int stall;
};

/* An attached device; every field is protected by RTNL */
struct vpsnet_dev {
	struct list_head node;
	struct net_device *dev;
	struct vpsnet_ref ref;
	char driver[VPSNET_DRV_LEN];
	bool link_up;
	enum vpsnet_state state;
	u64 flaps;
	u64 transitions;
	time64_t last_change;
	struct ratelimit_state rs;
	/* traffic channel */
	bool primed;
	u64 prev_rx;
	u64 prev_tx;
	unsigned int rx_flat;
	unsigned int tx_idle;
	unsigned int timeout_hold;
	struct vpsnet_txhist hist[VPSNET_MAX_QUEUES];
};

extern struct list_head vpsnet_devs;
extern unsigned int vpsnet_ndevs;
extern const char vpsnet_manifest[];
extern const char * const vpsnet_state_names[VPSNET_NR_STATES];

/* vpsnet_stats.c */
struct vpsnet_devsnap *vpsnet_snap_dev(struct vpsnet_dev *vd);
void vpsnet_snap_free(struct vpsnet_devsnap *s);

struct vpsnet_cpusnap {
	unsigned int cpu;
	u64 processed;
	u64 dropped;
	u64 squeeze;
	u64 net_rx;
};

struct vpsnet_snapshot {
	unsigned int ndev;
	struct vpsnet_devsnap **dev;
	unsigned int ncpu;
	struct vpsnet_cpusnap *cpu;
};

/* vpsnet_snapshot.c */
struct vpsnet_snapshot *vpsnet_snapshot_take(void);
void vpsnet_snapshot_free(struct vpsnet_snapshot *snap);

/* vpsnet_proc.c */
int vpsnet_proc_init(void);
void vpsnet_proc_exit(void);

#endif /* VPSNET_H */
