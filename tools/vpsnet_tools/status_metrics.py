"""vpsnet-status, the metrics: /proc/net/vpsnet/metrics parsed into devices and
queues, and shown as a table or JSON. status.py (the CLI and its health gate)
and status_next_boot.py import it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

# vpsnet-status's exit codes (--next-boot adds status_next_boot.EXIT_NEXT_BOOT_UNKNOWN)
EXIT_OK = 0
EXIT_UNHEALTHY = 1
EXIT_NO_MODULE = 2
EXIT_BAD_INPUT = 3


@dataclass
class Queue:
    queue: int
    direction: str
    packets: int | None = None
    bytes: int | None = None
    drops: int | None = None


@dataclass
class Device:
    netns: str
    device: str
    driver: str
    link_up: bool = False
    state: str = "unknown"
    flaps: int = 0
    transitions: int = 0
    queues: list[Queue] = field(default_factory=list)


@dataclass
class Status:
    version: str = ""
    abi: str = ""
    devices: list[Device] = field(default_factory=list)


def _key(labels: dict[str, str]) -> tuple[str, str, str]:
    return (labels["netns"], labels["device"], labels["driver"])


def parse_metrics(text: str) -> Status:
    """Build a Status from the exposition text (prometheus_client's parser)."""
    st = Status()
    devs: dict[tuple[str, str, str], Device] = {}
    queues: dict[tuple[tuple[str, str, str], int, str], Queue] = {}

    def dev(labels: dict[str, str]) -> Device:
        k = _key(labels)
        if k not in devs:
            devs[k] = Device(netns=k[0], device=k[1], driver=k[2])
        return devs[k]

    def queue(labels: dict[str, str]) -> Queue:
        k = (_key(labels), int(labels["queue"]), labels["direction"])
        if k not in queues:
            queues[k] = Queue(queue=k[1], direction=k[2])
            dev(labels).queues.append(queues[k])
        return queues[k]

    qfields = {
        "vpsnet_queue_packets_total": "packets",
        "vpsnet_queue_bytes_total": "bytes",
        "vpsnet_queue_drops_total": "drops",
    }
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            lb = s.labels
            if s.name == "vpsnet_info":
                st.version, st.abi = lb.get("version", ""), lb.get("abi", "")
            elif s.name == "vpsnet_link_up":
                dev(lb).link_up = s.value == 1
            elif s.name == "vpsnet_link_flaps_total":
                dev(lb).flaps = int(s.value)
            elif s.name == "vpsnet_health_transitions_total":
                dev(lb).transitions = int(s.value)
            elif s.name == "vpsnet_health_state":
                if s.value == 1:
                    dev(lb).state = lb["state"]
                else:
                    dev(lb)
            elif s.name in qfields:
                setattr(queue(lb), qfields[s.name], int(s.value))
    for d in devs.values():
        d.queues.sort(key=lambda q: (q.direction, q.queue))
    st.devices = sorted(devs.values(), key=lambda d: (d.netns, d.device))
    return st


def _fmt(v: int | None) -> str:
    return "-" if v is None else str(v)


def _table(hdr: tuple[str, ...], rows: list[tuple[str, ...]], indent: str = "") -> list[str]:
    widths = [max(len(r[i]) for r in [hdr, *rows]) for i in range(len(hdr))]
    return [
        indent + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [hdr, *rows]
    ]


def render_table(st: Status) -> str:
    """A readable table: one row per device, then its per-queue counters."""
    lines = [f"vpsnet {st.version} (abi {st.abi}): {len(st.devices)} device(s)"]
    if not st.devices:
        return "\n".join(lines)
    lines += _table(
        ("DEVICE", "DRIVER", "NETNS", "LINK", "STATE", "FLAPS", "TRANSITIONS"),
        [
            (
                d.device,
                d.driver,
                d.netns,
                "up" if d.link_up else "down",
                d.state,
                str(d.flaps),
                str(d.transitions),
            )
            for d in st.devices
        ],
    )
    for d in st.devices:
        if not d.queues:
            continue
        lines += ["", f"{d.device} ({d.driver}) queues:"]
        lines += _table(
            ("QUEUE", "PACKETS", "BYTES", "DROPS"),
            [
                (f"{q.direction}{q.queue}", _fmt(q.packets), _fmt(q.bytes), _fmt(q.drops))
                for q in d.queues
            ],
            indent="  ",
        )
    return "\n".join(lines)


def to_json(st: Status) -> dict[str, Any]:
    return asdict(st)


def read_status(path: Path) -> tuple[Status | None, int, str]:
    """The parsed metrics, or None with an exit code and the reason."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None, EXIT_NO_MODULE, (
            f"{path} not found: is the vpsnet module loaded? (modprobe vpsnet)")
    except OSError as e:
        return None, EXIT_NO_MODULE, f"cannot read {path}: {e.strerror}"
    try:
        return parse_metrics(text), EXIT_OK, ""
    except (ValueError, KeyError) as e:
        return None, EXIT_BAD_INPUT, f"{path}: unparsable metrics: {e}"
