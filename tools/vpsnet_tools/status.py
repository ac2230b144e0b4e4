"""vpsnet-status: health and per-queue drops from /proc/net/vpsnet/metrics.

With --samples N it is the rollout's health gate: it reads the metrics until N
consecutive samples are healthy (the expected version loaded, at least
--min-devices attached, every device ok) or --timeout passes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from vpsnet_tools import __version__

DEFAULT_FILE = "/proc/net/vpsnet/metrics"
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


def sample_problems(st: Status, expect_version: str | None, min_devices: int) -> list[str]:
    """Why one sample is not healthy (empty: healthy)."""
    problems = []
    if expect_version is not None and st.version != expect_version:
        loaded = st.version or "unknown"
        problems.append(f"loaded version is {loaded!r}, expected {expect_version!r}")
    if len(st.devices) < min_devices:
        problems.append(f"{len(st.devices)} device(s) attached, expected at least {min_devices}")
    problems += [f"{d.device} ({d.driver}) is {d.state}" for d in st.devices if d.state != "ok"]
    return problems


@dataclass
class GateResult:
    healthy: bool
    samples: int
    consecutive: int
    reason: str
    status: Status | None


def gate(path: Path, samples: int, interval: float, timeout: float,
         expect_version: str | None, min_devices: int,
         clock: Any = time.monotonic, sleep: Any = time.sleep) -> GateResult:
    """Sample until `samples` consecutive healthy samples, or until `timeout`."""
    deadline = clock() + timeout
    taken = consecutive = 0
    reason = "no sample taken"
    st: Status | None = None
    while True:
        st, _, err = read_status(path)
        taken += 1
        problems = [err] if st is None else sample_problems(st, expect_version, min_devices)
        if problems:
            consecutive, reason = 0, "; ".join(problems)
        else:
            consecutive += 1
            if consecutive >= samples:
                return GateResult(True, taken, consecutive, "", st)
        if clock() + interval > deadline:
            return GateResult(False, taken, consecutive, reason, st)
        sleep(interval)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="vpsnet-status", description="Show vpsnet NIC health and per-queue drops.",
        epilog="exit codes: 0 healthy, 1 a device is not ok (or the gate failed), "
        "2 module not loaded, 3 unparsable metrics or bad arguments",
    )
    ap.add_argument("--file", default=DEFAULT_FILE, help=f"metrics file (default {DEFAULT_FILE})")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    g = ap.add_argument_group("health gate (for rollouts)")
    g.add_argument("--samples", type=int, metavar="N",
                   help="wait for N consecutive healthy samples (enables the gate)")
    g.add_argument("--interval", type=float, default=1.0, metavar="S",
                   help="seconds between samples (default 1)")
    g.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="give up after S seconds (default 60)")
    g.add_argument("--expect-version", metavar="V", help="the loaded module must be version V")
    g.add_argument("--min-devices", type=int, default=0, metavar="M",
                   help="at least M devices must be attached (default 0)")
    args = ap.parse_args(argv)
    path = Path(args.file)

    if args.samples is not None:
        bad = [f"{name} {value!r} must be {rule}" for name, value, rule, ok in (
            ("--samples", args.samples, ">= 1", args.samples >= 1),
            ("--interval", args.interval, "> 0", args.interval > 0),
            ("--timeout", args.timeout, ">= 0", args.timeout >= 0),
            ("--min-devices", args.min_devices, ">= 0", args.min_devices >= 0),
        ) if not ok]
        if bad:
            print("vpsnet-status: " + "; ".join(bad), file=sys.stderr)
            return EXIT_BAD_INPUT
        res = gate(path, args.samples, args.interval, args.timeout,
                   args.expect_version, args.min_devices)
        report = {"healthy": res.healthy, "samples": res.samples,
                  "consecutive": res.consecutive, "reason": res.reason,
                  "status": to_json(res.status) if res.status else None}
        if args.json:
            print(json.dumps(report, indent=2, sort_keys=True))
        elif res.healthy:
            print(f"vpsnet-status: healthy for {res.consecutive} consecutive samples")
        if not res.healthy:
            print(f"vpsnet-status: not healthy after {res.samples} samples: {res.reason}",
                  file=sys.stderr)
        return EXIT_OK if res.healthy else EXIT_UNHEALTHY

    st, code, err = read_status(path)
    if st is None:
        print(f"vpsnet-status: {err}", file=sys.stderr)
        return code
    if args.json:
        print(json.dumps(to_json(st), indent=2, sort_keys=True))
    else:
        print(render_table(st))
    unhealthy = any(d.state != "ok" for d in st.devices)
    return EXIT_UNHEALTHY if unhealthy else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
