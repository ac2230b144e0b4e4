// SPDX-License-Identifier: GPL-2.0-only
/*
 * vpsnet: NIC health and telemetry companion for cloud NIC drivers
 * (ena, virtio_net, gve). vpsnet is never in the packet path: it only
 * watches the devices those drivers create.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/ctype.h>
#include <linux/ethtool.h>
#include <linux/kobject.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/rtnetlink.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/timekeeping.h>
#include <linux/workqueue.h>
#include "vpsnet.h"

/* Module parameters, from the one table (vpsnet_params.h) */
#define VPSNET_PARAM_SEP(end)	end
#define VPSNET_PARAM_END(end)	end
#define VPSNET_PARAM(pname, ptype, pdef, ...)				\
	VPSNET_PT_VAR_##ptype(pname, pdef)
#include "vpsnet_params.h"
#undef VPSNET_PARAM
#define VPSNET_PARAM(pname, ptype, ...)	module_param(pname, ptype, 0444)
#include "vpsnet_params.h"
#undef VPSNET_PARAM
#define VPSNET_PARAM(pname, ptype, pdef, pmin, pmax, pdesc)		\
	MODULE_PARM_DESC(pname, pdesc VPSNET_PT_DESC_##ptype(pdef, pmin, pmax))
#include "vpsnet_params.h"
#undef VPSNET_PARAM
#undef VPSNET_PARAM_SEP
#undef VPSNET_PARAM_END

/* The range of every uint parameter, checked before anything happens */
struct vpsnet_uint_param {
	const char *name;
	const unsigned int *val;
	unsigned int def;
	unsigned int min;
	unsigned int max;
};

#define VPSNET_RANGE_charp(...)
#define VPSNET_RANGE_bool(...)
#define VPSNET_RANGE_uint(pname, pdef, pmin, pmax)			\
	{ .name = #pname, .val = &(pname), .def = (pdef),		\
	  .min = (pmin), .max = (pmax) },
#define VPSNET_PARAM_SEP(...)
#define VPSNET_PARAM_END(...)
#define VPSNET_PARAM(pname, ptype, pdef, pmin, pmax, ...)		\
	VPSNET_RANGE_##ptype(pname, pdef, pmin, pmax)
static const struct vpsnet_uint_param vpsnet_uint_params[] = {
#include "vpsnet_params.h"
};

#undef VPSNET_PARAM
#undef VPSNET_PARAM_SEP
#undef VPSNET_PARAM_END

LIST_HEAD(vpsnet_devs);
unsigned int vpsnet_ndevs;

static char vpsnet_drv[VPSNET_MAX_DRIVERS][VPSNET_DRV_LEN];
static unsigned int vpsnet_ndrv;

static void vpsnet_sample(struct work_struct *work);
static DECLARE_DELAYED_WORK(vpsnet_work, vpsnet_sample);
static unsigned long vpsnet_next_run;
static unsigned long vpsnet_loaded_at;

/* Parse and check the drivers parameter; one message on error */
static int vpsnet_parse_drivers(void)
{
	const char *p = drivers ? drivers : "";
	unsigned int len;

	vpsnet_ndrv = 0;
	if (!*p)
		goto bad;
	while (*p) {
		len = strcspn(p, ",");
		if (!len || len >= VPSNET_DRV_LEN ||
		    vpsnet_ndrv >= VPSNET_MAX_DRIVERS)
			goto bad;
		memcpy(vpsnet_drv[vpsnet_ndrv], p, len);
		vpsnet_drv[vpsnet_ndrv][len] = '\0';
		vpsnet_ndrv++;
		p += len;
		if (*p == ',' && !*++p)
			goto bad;
	}
	return 0;
bad:
	pr_err("invalid parameter drivers=\"%s\": need a comma-separated list of 1 to %d driver names\n",
	       drivers ? drivers : "", VPSNET_MAX_DRIVERS);
	return -EINVAL;
}

static int vpsnet_check_params(void)
{
	const struct vpsnet_uint_param *p;
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(vpsnet_uint_params); i++) {
		p = &vpsnet_uint_params[i];
		if (*p->val < p->min || *p->val > p->max) {
			pr_err("invalid parameter %s=%u: must be %u..%u (default %u)\n",
			       p->name, *p->val, p->min, p->max, p->def);
			return -EINVAL;
		}
	}
	return vpsnet_parse_drivers();
}

static void vpsnet_driver_name(struct net_device *dev, char *buf)
{
	const struct ethtool_ops *ops = dev->ethtool_ops;
	struct ethtool_drvinfo info = { .cmd = ETHTOOL_GDRVINFO };

	buf[0] = '\0';
	if (ops && ops->get_drvinfo) {
		ops->get_drvinfo(dev, &info);
		strscpy(buf, info.driver, VPSNET_DRV_LEN);
	} else if (dev->dev.parent && dev->dev.parent->driver) {
		strscpy(buf, dev->dev.parent->driver->name, VPSNET_DRV_LEN);
	}
}

static bool vpsnet_wanted(const char *driver)
{
	unsigned int i;

	for (i = 0; i < vpsnet_ndrv; i++)
		if (!strcmp(driver, vpsnet_drv[i]))
			return true;
	return false;
}

static struct vpsnet_dev *vpsnet_find(struct net_device *dev)
{
	struct vpsnet_dev *vd;

	list_for_each_entry(vd, &vpsnet_devs, node)
		if (vd->dev == dev)
			return vd;
	return NULL;
}

static bool vpsnet_link_up(struct net_device *dev)
{
	return netif_running(dev) && netif_carrier_ok(dev);
}

static void vpsnet_set_state(struct vpsnet_dev *vd, enum vpsnet_state st)
{
	struct net_device *dev = vd->dev;
	enum vpsnet_state prev = vd->state;
	char env_state[32], env_prev[32];
	char *envp[3];

	if (st == prev)
		return;
	vd->state = st;
	vd->transitions++;

	if (__ratelimit(&vd->rs)) {
		if (st == VPSNET_ST_ok)
			netdev_info(dev, "vpsnet: health %s -> %s\n",
				    vpsnet_state_names[prev],
				    vpsnet_state_names[st]);
		else
			netdev_warn(dev, "vpsnet: health %s -> %s\n",
				    vpsnet_state_names[prev],
				    vpsnet_state_names[st]);
	}
	if (!uevents)
		return;
	envp[0] = env_state;
	envp[1] = env_prev;
	envp[2] = NULL;
	snprintf(env_state, sizeof(env_state), VPSNET_UEVENT_STATE "=%s",
		 vpsnet_state_names[st]);
	snprintf(env_prev, sizeof(env_prev), VPSNET_UEVENT_PREV "=%s",
		 vpsnet_state_names[prev]);
	kobject_uevent_env(&dev->dev.kobj, KOBJ_CHANGE, envp);
}

/* Test-only builds: unhealthy at once, or VPSNET_TEST_UNHEALTHY_AFTER s after load */
static bool vpsnet_test_unhealthy(void)
{
	if (VPSNET_TEST_FORCE_UNHEALTHY)
		return true;
	return VPSNET_TEST_UNHEALTHY_AFTER &&
	       time_after(jiffies, vpsnet_loaded_at +
			  (unsigned long)VPSNET_TEST_UNHEALTHY_AFTER * HZ);
}

static void vpsnet_reset_traffic(struct vpsnet_dev *vd)
{
	vd->primed = false;
	vd->rx_flat = 0;
	vd->tx_idle = 0;
	vd->timeout_hold = 0;
}

/* Carrier channel: called from the notifier and from the sampler */
static void vpsnet_carrier(struct vpsnet_dev *vd)
{
	bool up = vpsnet_link_up(vd->dev);

	if (up == vd->link_up)
		return;
	vd->link_up = up;
	vd->last_change = ktime_get_real_seconds();
	if (!up) {
		vd->flaps++;
		vpsnet_set_state(vd, VPSNET_ST_carrier_down);
	} else {
		vpsnet_reset_traffic(vd);
		vpsnet_set_state(vd, vpsnet_test_unhealthy() ?
				 VPSNET_ST_tx_stalled : VPSNET_ST_ok);
	}
}

static void vpsnet_attach(struct net_device *dev)
{
	char driver[VPSNET_DRV_LEN];
	struct vpsnet_dev *vd;

	if (vpsnet_find(dev))
		return;
	vpsnet_driver_name(dev, driver);
	if (!vpsnet_wanted(driver))
		return;
	vd = kzalloc(sizeof(*vd), GFP_KERNEL);
	if (!vd) {
		netdev_err(dev, "vpsnet: out of memory, not attached\n");
		return;
	}
	vd->dev = dev;
	strscpy(vd->driver, driver, sizeof(vd->driver));
	vd->link_up = vpsnet_link_up(dev);
	vd->state = vd->link_up ? VPSNET_ST_ok : VPSNET_ST_carrier_down;
	vd->last_change = ktime_get_real_seconds();
	ratelimit_state_init(&vd->rs, 5 * HZ, 10);
	vpsnet_dev_hold(&vd->ref, dev);
	list_add_tail(&vd->node, &vpsnet_devs);
	vpsnet_ndevs++;
	netdev_info(dev, "vpsnet: attached (driver %s)\n", driver);
}

static void vpsnet_detach(struct vpsnet_dev *vd, bool log)
{
	list_del(&vd->node);
	vpsnet_ndevs--;
	if (log)
		netdev_info(vd->dev, "vpsnet: detached\n");
	vpsnet_dev_put(&vd->ref);
	kfree(vd);
}

static int vpsnet_netdev_event(struct notifier_block *nb, unsigned long event,
			       void *ptr)
{
	struct net_device *dev = netdev_notifier_info_to_dev(ptr);
	struct vpsnet_dev *vd;

	ASSERT_RTNL();
	switch (event) {
	case NETDEV_REGISTER:
		vpsnet_attach(dev);
		break;
	case NETDEV_UNREGISTER:
		vd = vpsnet_find(dev);
		if (vd)
			vpsnet_detach(vd, true);
		break;
	case NETDEV_UP:
	case NETDEV_CHANGE:
		vd = vpsnet_find(dev);
		if (vd)
			vpsnet_carrier(vd);
		break;
	}
	return NOTIFY_DONE;
}

static struct notifier_block vpsnet_notifier = {
	.notifier_call = vpsnet_netdev_event,
};

/* Traffic channel: one sample of one device */
static void vpsnet_sample_dev(struct vpsnet_dev *vd)
{
	enum vpsnet_state st = VPSNET_ST_ok;
	struct vpsnet_devsnap *s;
	bool tx_stalled = false;
	unsigned int i;
	u64 rx, tx;

	vpsnet_carrier(vd);
	if (!vd->link_up) {
		vpsnet_set_state(vd, VPSNET_ST_carrier_down);
		return;
	}
	s = vpsnet_snap_dev(vd);
	if (!s)
		return;

	for (i = 0; i < s->nq[VPSNET_TX]; i++) {
		struct vpsnet_txqval *t = &s->txq[i];
		struct vpsnet_qval *qv = &s->q[VPSNET_TX][i];
		struct vpsnet_txhist *h = &vd->hist[i];
		unsigned int f = VPSNET_QF_PACKETS;
		bool progress;
		u64 pk;

		/* completed descriptors where the driver counts no packets */
		if (!(qv->valid & BIT(f)))
			f = VPSNET_QF_DESCS;
		pk = qv->val[f];
		progress = t->completed != h->completed ||
			   ((qv->valid & BIT(f)) && pk != h->tx_done);
		if (vd->primed && t->stopped && !progress)
			h->stall++;
		else
			h->stall = 0;
		if (h->stall >= stall_intervals)
			tx_stalled = true;
		if (vd->primed && t->timeouts > h->timeouts)
			vd->timeout_hold = stall_intervals;
		h->completed = t->completed;
		h->tx_done = pk;
		h->timeouts = t->timeouts;
	}
	if (vd->timeout_hold) {
		tx_stalled = true;
		vd->timeout_hold--;
	}

	rx = s->stats.rx_packets;
	tx = s->stats.tx_packets;
	if (vd->primed) {
		if (rx != vd->prev_rx) {
			vd->rx_flat = 0;
			vd->tx_idle = 0;
		} else if (tx != vd->prev_tx) {
			vd->rx_flat++;
			vd->tx_idle = 0;
		} else if (++vd->tx_idle > stall_intervals) {
			vd->rx_flat = 0;
		}
	}
	vd->prev_rx = rx;
	vd->prev_tx = tx;
	vd->primed = true;
	vpsnet_snap_free(s);

	if (vd->rx_flat >= stall_intervals)
		st = VPSNET_ST_rx_silent;
	if (tx_stalled || vpsnet_test_unhealthy())
		st = VPSNET_ST_tx_stalled;
	vpsnet_set_state(vd, st);
}

static void vpsnet_sample(struct work_struct *work)
{
	unsigned long interval = msecs_to_jiffies(interval_ms);
	struct vpsnet_dev *vd;
	long delay;

	rtnl_lock();
	list_for_each_entry(vd, &vpsnet_devs, node)
		vpsnet_sample_dev(vd);
	rtnl_unlock();

	/* fixed rate: no drift from the time a pass takes */
	vpsnet_next_run += interval;
	delay = (long)(vpsnet_next_run - jiffies);
	if (delay <= 0) {
		vpsnet_next_run = jiffies + interval;
		delay = interval;
	}
	schedule_delayed_work(&vpsnet_work, delay);
}

static int __init vpsnet_init(void)
{
	int err;

	err = vpsnet_check_params();
	if (err)
		return err;

	vpsnet_loaded_at = jiffies;
	err = register_netdevice_notifier(&vpsnet_notifier);
	if (err)
		return err;

	err = vpsnet_proc_init();
	if (err)
		goto err_notifier;

	vpsnet_next_run = jiffies + msecs_to_jiffies(interval_ms);
	schedule_delayed_work(&vpsnet_work, msecs_to_jiffies(interval_ms));
	pr_info("version %s loaded (abi %d, drivers %s, interval_ms %u, stall_intervals %u)\n",
		VPSNET_VERSION, VPSNET_ABI_MAJOR, drivers, interval_ms,
		stall_intervals);
	return 0;

err_notifier:
	unregister_netdevice_notifier(&vpsnet_notifier);
	return err;
}

static void __exit vpsnet_exit(void)
{
	struct vpsnet_dev *vd, *tmp;

	/* waits for readers; open files are released here */
	vpsnet_proc_exit();
	cancel_delayed_work_sync(&vpsnet_work);
	/* replays NETDEV_UNREGISTER for every device in every netns */
	unregister_netdevice_notifier(&vpsnet_notifier);

	rtnl_lock();
	list_for_each_entry_safe(vd, tmp, &vpsnet_devs, node)
		vpsnet_detach(vd, false);
	rtnl_unlock();
	pr_info("unloaded\n");
}

module_init(vpsnet_init);
module_exit(vpsnet_exit);

MODULE_DESCRIPTION("NIC health and telemetry companion for cloud NIC drivers");
MODULE_AUTHOR("vpsnet project");
MODULE_LICENSE("GPL");
MODULE_VERSION(VPSNET_VERSION);
MODULE_INFO(vpsnet_abi, __stringify(VPSNET_ABI_MAJOR));
