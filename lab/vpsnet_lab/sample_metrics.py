"""Realistic /proc/net/vpsnet/metrics text (the module's families, labels and
shape) for the exporter's unit tests and bench/exporter*.py; imports nothing of the lab."""

from __future__ import annotations

FAMILIES = [
    ("info", "gauge", "vpsnet module version and interface ABI major (always 1)"),
    ("devices_attached", "gauge", "Network devices vpsnet is attached to"),
    ("link_up", "gauge", "1 if the device is administratively up and has carrier"),
    ("link_flaps_total", "counter", "Carrier losses seen since attach"),
    ("link_last_change_timestamp_seconds", "gauge", "Unix time of the last carrier change"),
    ("health_state", "gauge", "Health state: 1 for the current state, else 0"),
    ("health_transitions_total", "counter", "Health state transitions since attach"),
    ("device_packets_total", "counter", "Device packets (rtnl_link_stats64)"),
    ("device_bytes_total", "counter", "Device bytes (rtnl_link_stats64)"),
    ("device_drops_total", "counter", "Device dropped packets (rtnl_link_stats64)"),
    ("device_errors_total", "counter", "Device errors (rtnl_link_stats64)"),
    ("queue_packets_total", "counter", "Per-queue packets from the driver statistics"),
    ("queue_bytes_total", "counter", "Per-queue bytes from the driver statistics"),
    ("queue_drops_total", "counter", "Per-queue drops from the driver statistics"),
    ("txq_stopped", "gauge", "1 if the TX queue is stopped"),
    ("txq_timeouts_total", "counter", "TX watchdog timeouts of the queue"),
    ("txq_bql_inflight_bytes", "gauge", "Bytes queued to the device and not yet completed"),
    ("softnet_processed_total", "counter", "Packets processed by the CPU backlog"),
    ("softnet_dropped_total", "counter", "Packets dropped because the CPU backlog was full"),
    ("softnet_time_squeeze_total", "counter", "NET_RX runs that ended with work left"),
    ("softirq_net_rx_total", "counter", "NET_RX softirqs handled by the CPU"),
]
STATES = ["ok", "rx_silent", "tx_stalled", "carrier_down"]


def metrics_text(nics: int = 2, queues: int = 4, cpus: int = 2, seed: int = 1,
                 version: str = "1.0.0", state: str = "ok") -> str:
    """One snapshot as the module writes it: nics devices with queues each."""
    devs = [(f"eth{i + 1}", "virtio_net", "4026531840") for i in range(nics)]
    out: list[str] = []
    for name, typ, help_ in FAMILIES:
        full = f"vpsnet_{name}"
        out += [f"# HELP {full} {help_}", f"# TYPE {full} {typ}"]
        for di, (dev, drv, ns) in enumerate(devs):
            dl = f'netns="{ns}",device="{dev}",driver="{drv}"'
            v = seed * 1000 + di
            if name == "link_up":
                out.append(f"{full}{{{dl}}} 1")
            elif name == "link_flaps_total":
                out.append(f"{full}{{{dl}}} {seed}")
            elif name == "link_last_change_timestamp_seconds":
                out.append(f"{full}{{{dl}}} 1764070000")
            elif name == "health_state":
                out += [f'{full}{{{dl},state="{s}"}} {int(s == state)}' for s in STATES]
            elif name == "health_transitions_total":
                out.append(f"{full}{{{dl}}} {seed}")
            elif name.startswith("device_"):
                out += [f'{full}{{{dl},direction="{d}"}} {v}' for d in ("rx", "tx")]
            elif name.startswith("queue_"):
                out += [f'{full}{{{dl},queue="{q}",direction="{d}"}} {v + q}'
                        for q in range(queues) for d in ("rx", "tx")]
            elif name.startswith("txq_"):
                out += [f'{full}{{{dl},queue="{q}"}} 0' for q in range(queues)]
        if name == "info":
            out.append(f'{full}{{version="{version}",abi="1"}} 1')
        elif name == "devices_attached":
            out.append(f"{full} {nics}")
        elif name.startswith(("softnet_", "softirq_")):
            out += [f'{full}{{cpu="{c}"}} {seed * 100 + c}' for c in range(cpus)]
    return "\n".join(out) + "\n"
