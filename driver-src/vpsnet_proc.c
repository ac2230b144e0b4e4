// SPDX-License-Identifier: GPL-2.0-only
/*
 * /proc/net/vpsnet/metrics: Prometheus text exposition format 0.0.4.
 *
 * Each open takes a snapshot (vpsnet_snapshot.c); all reads of that file
 * descriptor format the same snapshot, so a reader never sees a
 * half-updated device. The snapshot is freed on release, which also runs
 * when the module is unloaded while the file is open.
 */
#include <linux/cpumask.h>
#include <linux/mm.h>
#include <linux/proc_fs.h>
#include <linux/rtnetlink.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <net/net_namespace.h>
#include "vpsnet.h"

struct vpsnet_family_desc {
	const char *name;
	const char *type;
	const char *help;
	const char *labels;	/* "a","b",... as in the manifest */
};

#define VPSNET_SEP
#define VPSNET_FAMILY(fname, ftype, flabels, fhelp)			\
	[VPSNET_FAM_##fname] = {					\
		.name = "vpsnet_" #fname,				\
		.type = #ftype,						\
		.help = fhelp,						\
		.labels = flabels,					\
	},
static const struct vpsnet_family_desc vpsnet_families[VPSNET_NR_FAMILIES] = {
#include "vpsnet_families.h"
};

#undef VPSNET_FAMILY
#undef VPSNET_SEP

static struct proc_dir_entry *vpsnet_proc_dir;

static void vpsnet_put_escaped(struct seq_file *m, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			seq_putc(m, '\\');
		if (*s == '\n') {
			seq_puts(m, "\\n");
			continue;
		}
		seq_putc(m, *s);
	}
}

static void vpsnet_family(struct seq_file *m, enum vpsnet_family f)
{
	const struct vpsnet_family_desc *d = &vpsnet_families[f];

	seq_printf(m, "# HELP %s %s\n# TYPE %s %s\n", d->name, d->help,
		   d->name, d->type);
}

static unsigned int vpsnet_nlabels(const char *labels)
{
	unsigned int n = 0;

	for (; *labels; labels++)
		n += *labels == '"';
	return n / 2;
}

static void vpsnet_series(struct seq_file *m, enum vpsnet_family f,
			  const char * const *values, unsigned int nvalues,
			  u64 val)
{
	const struct vpsnet_family_desc *d = &vpsnet_families[f];
	const char *l = d->labels;
	unsigned int i;

	if (nvalues != vpsnet_nlabels(l)) {
		pr_err_once("vpsnet: label mismatch in %s\n", d->name);
		return;
	}
	seq_puts(m, d->name);
	if (nvalues) {
		seq_putc(m, '{');
		for (i = 0; i < nvalues; i++) {
			const char *end;

			l = strchr(l, '"') + 1;
			end = strchr(l, '"');
			seq_printf(m, "%s%.*s=\"", i ? "," : "",
				   (int)(end - l), l);
			vpsnet_put_escaped(m, values[i]);
			seq_putc(m, '"');
			l = end + 1;
		}
		seq_putc(m, '}');
	}
	seq_printf(m, " %llu\n", val);
}

/* Label values for a device followed by up to two extra labels */
struct vpsnet_lv {
	char netns[16];
	const char *v[5];
};

static void vpsnet_lv_dev(struct vpsnet_lv *lv, struct vpsnet_devsnap *s)
{
	snprintf(lv->netns, sizeof(lv->netns), "%u", s->netns);
	lv->v[0] = lv->netns;
	lv->v[1] = s->name;
	lv->v[2] = s->driver;
}

static const char * const vpsnet_dir_names[VPSNET_NR_DIR] = { "rx", "tx" };

static void vpsnet_show_dev_simple(struct seq_file *m,
				   struct vpsnet_snapshot *snap,
				   enum vpsnet_family f)
{
	struct vpsnet_lv lv;
	unsigned int i;
	u64 v;

	for (i = 0; i < snap->ndev; i++) {
		struct vpsnet_devsnap *s = snap->dev[i];

		vpsnet_lv_dev(&lv, s);
		switch (f) {
		case VPSNET_FAM_link_up:
			v = s->link_up;
			break;
		case VPSNET_FAM_link_flaps_total:
			v = s->flaps;
			break;
		case VPSNET_FAM_link_last_change_timestamp_seconds:
			v = s->last_change;
			break;
		default:
			v = s->transitions;
			break;
		}
		vpsnet_series(m, f, lv.v, 3, v);
	}
}

static void vpsnet_show_dev_dir(struct seq_file *m,
				struct vpsnet_snapshot *snap,
				enum vpsnet_family f)
{
	struct vpsnet_lv lv;
	unsigned int i;

	for (i = 0; i < snap->ndev; i++) {
		struct rtnl_link_stats64 *st = &snap->dev[i]->stats;
		u64 rx, tx;

		switch (f) {
		case VPSNET_FAM_device_packets_total:
			rx = st->rx_packets;
			tx = st->tx_packets;
			break;
		case VPSNET_FAM_device_bytes_total:
			rx = st->rx_bytes;
			tx = st->tx_bytes;
			break;
		case VPSNET_FAM_device_drops_total:
			rx = st->rx_dropped;
			tx = st->tx_dropped;
			break;
		default:
			rx = st->rx_errors;
			tx = st->tx_errors;
			break;
		}
		vpsnet_lv_dev(&lv, snap->dev[i]);
		lv.v[3] = vpsnet_dir_names[VPSNET_RX];
		vpsnet_series(m, f, lv.v, 4, rx);
		lv.v[3] = vpsnet_dir_names[VPSNET_TX];
		vpsnet_series(m, f, lv.v, 4, tx);
	}
}

/* The per-queue field each vpsnet_queue_* family shows */
static enum vpsnet_qfield vpsnet_queue_field(enum vpsnet_family f)
{
	switch (f) {
	case VPSNET_FAM_queue_bytes_total:
		return VPSNET_QF_BYTES;
	case VPSNET_FAM_queue_drops_total:
		return VPSNET_QF_DROPS;
	case VPSNET_FAM_queue_descriptors_total:
		return VPSNET_QF_DESCS;
	default:
		return VPSNET_QF_PACKETS;
	}
}

static void vpsnet_show_queue(struct seq_file *m,
			      struct vpsnet_snapshot *snap,
			      enum vpsnet_family f)
{
	enum vpsnet_qfield field = vpsnet_queue_field(f);
	struct vpsnet_lv lv;
	char qbuf[12];
	unsigned int i, d, q;

	for (i = 0; i < snap->ndev; i++) {
		struct vpsnet_devsnap *s = snap->dev[i];

		vpsnet_lv_dev(&lv, s);
		lv.v[3] = qbuf;
		for (d = 0; d < VPSNET_NR_DIR; d++) {
			lv.v[4] = vpsnet_dir_names[d];
			for (q = 0; q < s->nq[d]; q++) {
				struct vpsnet_qval *qv = &s->q[d][q];

				if (!(qv->valid & BIT(field)))
					continue;
				snprintf(qbuf, sizeof(qbuf), "%u", q);
				vpsnet_series(m, f, lv.v, 5, qv->val[field]);
			}
		}
	}
}

/* Per-device driver counters: series only where the driver reports them */
static void vpsnet_show_dev_counter(struct seq_file *m,
				    struct vpsnet_snapshot *snap,
				    enum vpsnet_family f)
{
	struct vpsnet_lv lv;
	unsigned int i, c;

	for (i = 0; i < snap->ndev; i++) {
		struct vpsnet_devsnap *s = snap->dev[i];

		vpsnet_lv_dev(&lv, s);
		if (f == VPSNET_FAM_device_conntrack_allowance_available) {
			c = VPSNET_DF_CONNTRACK_AVAILABLE;
			if (s->dvalid & BIT(c))
				vpsnet_series(m, f, lv.v, 3, s->dval[c]);
			continue;
		}
		for (c = 0; c < VPSNET_DF_NR_EXCEEDED; c++) {
			if (!(s->dvalid & BIT(c)))
				continue;
			lv.v[3] = vpsnet_dfield_names[c];
			vpsnet_series(m, f, lv.v, 4, s->dval[c]);
		}
	}
}

static void vpsnet_show_txq(struct seq_file *m, struct vpsnet_snapshot *snap,
			    enum vpsnet_family f)
{
	struct vpsnet_lv lv;
	char qbuf[12];
	unsigned int i, q;
	u64 v;

	for (i = 0; i < snap->ndev; i++) {
		struct vpsnet_devsnap *s = snap->dev[i];

		vpsnet_lv_dev(&lv, s);
		lv.v[3] = qbuf;
		for (q = 0; q < s->nq[VPSNET_TX]; q++) {
			struct vpsnet_txqval *t = &s->txq[q];

			if (f == VPSNET_FAM_txq_stopped)
				v = t->stopped;
			else if (f == VPSNET_FAM_txq_timeouts_total)
				v = t->timeouts;
			else
				v = t->inflight;
			snprintf(qbuf, sizeof(qbuf), "%u", q);
			vpsnet_series(m, f, lv.v, 4, v);
		}
	}
}

static void vpsnet_show_cpu(struct seq_file *m, struct vpsnet_snapshot *snap,
			    enum vpsnet_family f)
{
	const char *lv[1];
	char cbuf[12];
	unsigned int i;
	u64 v;

	lv[0] = cbuf;
	for (i = 0; i < snap->ncpu; i++) {
		struct vpsnet_cpusnap *c = &snap->cpu[i];

		if (f == VPSNET_FAM_softnet_processed_total)
			v = c->processed;
		else if (f == VPSNET_FAM_softnet_dropped_total)
			v = c->dropped;
		else if (f == VPSNET_FAM_softnet_time_squeeze_total)
			v = c->squeeze;
		else
			v = c->net_rx;
		snprintf(cbuf, sizeof(cbuf), "%u", c->cpu);
		vpsnet_series(m, f, lv, 1, v);
	}
}

static int vpsnet_metrics_show(struct seq_file *m, void *v)
{
	struct vpsnet_snapshot *snap = m->private;
	const char *info[2] = { VPSNET_VERSION, __stringify(VPSNET_ABI_MAJOR) };
	struct vpsnet_lv lv;
	unsigned int f, i, st;

	for (f = 0; f < VPSNET_NR_FAMILIES; f++) {
		vpsnet_family(m, f);
		switch (f) {
		case VPSNET_FAM_info:
			vpsnet_series(m, f, info, 2, 1);
			break;
		case VPSNET_FAM_devices_attached:
			vpsnet_series(m, f, NULL, 0, snap->ndev);
			break;
		case VPSNET_FAM_link_up:
		case VPSNET_FAM_link_flaps_total:
		case VPSNET_FAM_link_last_change_timestamp_seconds:
		case VPSNET_FAM_health_transitions_total:
			vpsnet_show_dev_simple(m, snap, f);
			break;
		case VPSNET_FAM_health_state:
			for (i = 0; i < snap->ndev; i++) {
				vpsnet_lv_dev(&lv, snap->dev[i]);
				for (st = 0; st < VPSNET_NR_STATES; st++) {
					lv.v[3] = vpsnet_state_names[st];
					vpsnet_series(m, f, lv.v, 4,
						      snap->dev[i]->state == st);
				}
			}
			break;
		case VPSNET_FAM_device_packets_total:
		case VPSNET_FAM_device_bytes_total:
		case VPSNET_FAM_device_drops_total:
		case VPSNET_FAM_device_errors_total:
			vpsnet_show_dev_dir(m, snap, f);
			break;
		case VPSNET_FAM_queue_packets_total:
		case VPSNET_FAM_queue_bytes_total:
		case VPSNET_FAM_queue_drops_total:
		case VPSNET_FAM_queue_descriptors_total:
			vpsnet_show_queue(m, snap, f);
			break;
		case VPSNET_FAM_device_allowance_exceeded_total:
		case VPSNET_FAM_device_conntrack_allowance_available:
			vpsnet_show_dev_counter(m, snap, f);
			break;
		case VPSNET_FAM_txq_stopped:
		case VPSNET_FAM_txq_timeouts_total:
		case VPSNET_FAM_txq_bql_inflight_bytes:
			vpsnet_show_txq(m, snap, f);
			break;
		default:
			vpsnet_show_cpu(m, snap, f);
			break;
		}
	}
	return 0;
}

static int vpsnet_metrics_open(struct inode *inode, struct file *file)
{
	struct vpsnet_snapshot *snap = vpsnet_snapshot_take();
	int err;

	if (IS_ERR(snap))
		return PTR_ERR(snap);
	err = single_open(file, vpsnet_metrics_show, snap);
	if (err)
		vpsnet_snapshot_free(snap);
	return err;
}

static int vpsnet_metrics_release(struct inode *inode, struct file *file)
{
	struct seq_file *m = file->private_data;

	vpsnet_snapshot_free(m->private);
	return single_release(inode, file);
}

static const struct proc_ops vpsnet_metrics_ops = {
	.proc_open = vpsnet_metrics_open,
	.proc_read = seq_read,
	.proc_lseek = seq_lseek,
	.proc_release = vpsnet_metrics_release,
};

static int vpsnet_manifest_show(struct seq_file *m, void *v)
{
	seq_puts(m, vpsnet_manifest);
	seq_putc(m, '\n');
	return 0;
}

int vpsnet_proc_init(void)
{
	vpsnet_proc_dir = proc_mkdir(VPSNET_PROC_DIR, init_net.proc_net);
	if (!vpsnet_proc_dir)
		return -ENOMEM;
	if (!proc_create(VPSNET_PROC_METRICS, 0444, vpsnet_proc_dir,
			 &vpsnet_metrics_ops) ||
	    !proc_create_single(VPSNET_PROC_MANIFEST, 0444, vpsnet_proc_dir,
				vpsnet_manifest_show)) {
		proc_remove(vpsnet_proc_dir);
		return -ENOMEM;
	}
	return 0;
}

void vpsnet_proc_exit(void)
{
	proc_remove(vpsnet_proc_dir);
}
