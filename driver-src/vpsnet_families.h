/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Metric families: the one table behind the metrics output and the
 * manifest. No include guard: every consumer defines VPSNET_FAMILY(name,
 * type, labels, help) and VPSNET_SEP, then includes this file. The
 * exposed name is "vpsnet_" followed by the first field.
 */
VPSNET_FAMILY(info, gauge, VPSNET_LS_INFO,
	      "vpsnet module version and interface ABI major (always 1)")
VPSNET_SEP
VPSNET_FAMILY(devices_attached, gauge, VPSNET_LS_NONE,
	      "Network devices vpsnet is attached to")
VPSNET_SEP
VPSNET_FAMILY(link_up, gauge, VPSNET_LS_DEV,
	      "1 if the device is administratively up and has carrier")
VPSNET_SEP
VPSNET_FAMILY(link_flaps_total, counter, VPSNET_LS_DEV,
	      "Carrier losses seen since attach")
VPSNET_SEP
VPSNET_FAMILY(link_last_change_timestamp_seconds, gauge, VPSNET_LS_DEV,
	      "Unix time of the last carrier change or of attach")
VPSNET_SEP
VPSNET_FAMILY(health_state, gauge, VPSNET_LS_STATE,
	      "Health state: 1 for the current state, else 0")
VPSNET_SEP
VPSNET_FAMILY(health_transitions_total, counter, VPSNET_LS_DEV,
	      "Health state transitions since attach")
VPSNET_SEP
VPSNET_FAMILY(device_packets_total, counter, VPSNET_LS_DIR,
	      "Device packets (rtnl_link_stats64)")
VPSNET_SEP
VPSNET_FAMILY(device_bytes_total, counter, VPSNET_LS_DIR,
	      "Device bytes (rtnl_link_stats64)")
VPSNET_SEP
VPSNET_FAMILY(device_drops_total, counter, VPSNET_LS_DIR,
	      "Device dropped packets (rtnl_link_stats64)")
VPSNET_SEP
VPSNET_FAMILY(device_errors_total, counter, VPSNET_LS_DIR,
	      "Device errors (rtnl_link_stats64)")
VPSNET_SEP
VPSNET_FAMILY(device_allowance_exceeded_total, counter, VPSNET_LS_COUNTER,
	      "Packets queued or dropped because an instance allowance was exceeded (ENA)")
VPSNET_SEP
VPSNET_FAMILY(device_conntrack_allowance_available, gauge, VPSNET_LS_DEV,
	      "Connections the instance can still track before its conntrack allowance (ENA)")
VPSNET_SEP
VPSNET_FAMILY(queue_packets_total, counter, VPSNET_LS_QUEUE,
	      "Per-queue packets from the driver statistics")
VPSNET_SEP
VPSNET_FAMILY(queue_bytes_total, counter, VPSNET_LS_QUEUE,
	      "Per-queue bytes from the driver statistics")
VPSNET_SEP
VPSNET_FAMILY(queue_drops_total, counter, VPSNET_LS_QUEUE,
	      "Per-queue drops from the driver statistics")
VPSNET_SEP
VPSNET_FAMILY(queue_descriptors_total, counter, VPSNET_LS_QUEUE,
	      "Per-queue descriptors completed (gve, which counts no packets per queue)")
VPSNET_SEP
VPSNET_FAMILY(txq_stopped, gauge, VPSNET_LS_TXQ,
	      "1 if the TX queue is stopped")
VPSNET_SEP
VPSNET_FAMILY(txq_timeouts_total, counter, VPSNET_LS_TXQ,
	      "TX watchdog timeouts of the queue")
VPSNET_SEP
VPSNET_FAMILY(txq_bql_inflight_bytes, gauge, VPSNET_LS_TXQ,
	      "Bytes queued to the device and not yet completed (BQL)")
VPSNET_SEP
VPSNET_FAMILY(softnet_processed_total, counter, VPSNET_LS_CPU,
	      "Packets processed by the CPU backlog (softnet_data)")
VPSNET_SEP
VPSNET_FAMILY(softnet_dropped_total, counter, VPSNET_LS_CPU,
	      "Packets dropped because the CPU backlog was full")
VPSNET_SEP
VPSNET_FAMILY(softnet_time_squeeze_total, counter, VPSNET_LS_CPU,
	      "NET_RX runs that ended with work left (budget or time)")
VPSNET_SEP
VPSNET_FAMILY(softirq_net_rx_total, counter, VPSNET_LS_CPU,
	      "NET_RX softirqs handled by the CPU")
