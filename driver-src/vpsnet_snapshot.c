// SPDX-License-Identifier: GPL-2.0-only
/*
 * One consistent copy of everything /proc/net/vpsnet/metrics shows: the
 * softnet counters of every online CPU, then every attached device under
 * RTNL.
 */
#include <linux/cpumask.h>
#include <linux/interrupt.h>
#include <linux/kernel_stat.h>
#include <linux/mm.h>
#include <linux/rtnetlink.h>
#include <linux/slab.h>
#include "vpsnet.h"

void vpsnet_snapshot_free(struct vpsnet_snapshot *snap)
{
	unsigned int i;

	if (!snap)
		return;
	for (i = 0; i < snap->ndev; i++)
		vpsnet_snap_free(snap->dev[i]);
	kvfree(snap->dev);
	kvfree(snap->cpu);
	kfree(snap);
}

struct vpsnet_snapshot *vpsnet_snapshot_take(void)
{
	struct vpsnet_snapshot *snap;
	struct vpsnet_dev *vd;
	unsigned int cpu, n = 0;
	int err;

	snap = kzalloc(sizeof(*snap), GFP_KERNEL);
	if (!snap)
		return ERR_PTR(-ENOMEM);

	snap->cpu = kvcalloc(nr_cpu_ids, sizeof(*snap->cpu), GFP_KERNEL);
	if (!snap->cpu) {
		err = -ENOMEM;
		goto err;
	}
	for_each_online_cpu(cpu) {
		struct softnet_data *sd = &per_cpu(softnet_data, cpu);
		struct vpsnet_cpusnap *c = &snap->cpu[n++];

		c->cpu = cpu;
		c->processed = READ_ONCE(sd->processed);
		c->dropped = vpsnet_softnet_dropped(sd);
		c->squeeze = READ_ONCE(sd->time_squeeze);
		c->net_rx = kstat_softirqs_cpu(NET_RX_SOFTIRQ, cpu);
		if (n == nr_cpu_ids)
			break;
	}
	snap->ncpu = n;

	err = rtnl_lock_killable();
	if (err)
		goto err;
	snap->dev = kvcalloc(max(vpsnet_ndevs, 1U), sizeof(*snap->dev),
			     GFP_KERNEL);
	if (!snap->dev) {
		rtnl_unlock();
		err = -ENOMEM;
		goto err;
	}
	list_for_each_entry(vd, &vpsnet_devs, node) {
		struct vpsnet_devsnap *s = vpsnet_snap_dev(vd);

		if (!s) {
			rtnl_unlock();
			err = -ENOMEM;
			goto err;
		}
		snap->dev[snap->ndev++] = s;
	}
	rtnl_unlock();
	return snap;
err:
	vpsnet_snapshot_free(snap);
	return ERR_PTR(err);
}
