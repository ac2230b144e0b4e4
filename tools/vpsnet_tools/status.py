"""vpsnet-status: health and per-queue drops from /proc/net/vpsnet/metrics.

With --samples N it is the rollout's health gate: it reads the metrics until N
consecutive samples are healthy (the expected version loaded, at least
--min-devices attached, every device ok) or --timeout passes.

With --next-boot it is the reboot gate (status_next_boot.py). This file holds the
command line and the health gate; status_metrics.py reads and shows the metrics.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vpsnet_tools import __version__
from vpsnet_tools.cliargs import CONTROL_RE, finite
from vpsnet_tools.release_version import VERSION_RE
from vpsnet_tools.status_metrics import (
    EXIT_BAD_INPUT,
    EXIT_NO_MODULE,
    EXIT_OK,
    EXIT_UNHEALTHY,
    Status,
    read_status,
    render_table,
    to_json,
)
from vpsnet_tools.status_next_boot import EXIT_NEXT_BOOT_UNKNOWN, check_next_boot

__all__ = ["EXIT_BAD_INPUT", "EXIT_NEXT_BOOT_UNKNOWN", "EXIT_NO_MODULE", "EXIT_OK",
           "EXIT_UNHEALTHY", "GateResult", "gate", "main"]

DEFAULT_FILE = "/proc/net/vpsnet/metrics"


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
        st, _code, err = read_status(path)
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


def argument_problems(args: argparse.Namespace) -> list[str]:
    """Every bad argument, named with its value (escaped); empty: all good. Checked
    before anything is read, whatever the mode."""
    ranges: tuple[tuple[str, float | None, float, float, str], ...] = (
        ("--samples", args.samples, 1, 100_000, ">= 1 and <= 100000"),
        ("--interval", args.interval, 0, 3600, "> 0 and <= 3600"),
        ("--timeout", args.timeout, 0, 86_400, ">= 0 and <= 86400"),
        ("--min-devices", args.min_devices, 0, 100_000, ">= 0 and <= 100000"),
    )
    bad = [f"{name} {value!r} must be {rule}" for name, value, low, high, rule in ranges
           if value is not None and not (low <= value <= high
                                         and (name != "--interval" or value > 0))]
    if args.expect_version is not None and not VERSION_RE.fullmatch(args.expect_version):
        bad.append(f"--expect-version {args.expect_version!r} is not a version (e.g. 1.0.0)")
    for name, value in (("--file", args.file), ("--root", args.root)):
        # a newline in a path would also split the one-line error that names it
        if not value or CONTROL_RE.search(value):
            bad.append(f"{name} {value!r} must be a path without control characters")
    return bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="vpsnet-status", description="Show vpsnet NIC health and per-queue drops.",
        epilog="exit codes: 0 healthy, 1 a device is not ok (or the gate failed; --next-boot: "
        "no loadable vpsnet for the next kernel), 2 module not loaded, 3 unparsable metrics or "
        "bad arguments (--next-boot: cannot tell)",
    )
    ap.add_argument("--file", default=DEFAULT_FILE, help=f"metrics file (default {DEFAULT_FILE})")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    g = ap.add_argument_group("health gate (for rollouts)")
    g.add_argument("--samples", type=finite(int), metavar="N",
                   help="wait for N consecutive healthy samples (enables the gate)")
    g.add_argument("--interval", type=finite(float), default=1.0, metavar="S",
                   help="seconds between samples (default 1)")
    g.add_argument("--timeout", type=finite(float), default=60.0, metavar="S",
                   help="give up after S seconds (default 60)")
    g.add_argument("--expect-version", metavar="V", help="the loaded module must be version V")
    g.add_argument("--min-devices", type=finite(int), default=0, metavar="M",
                   help="at least M devices must be attached (default 0)")
    n = ap.add_argument_group("next-boot gate (before a reboot)")
    n.add_argument("--next-boot", action="store_true",
                   help="check the kernel the host boots next has a vpsnet module that loads "
                        "(exit 0 yes, 1 no, 3 cannot tell)")
    n.add_argument("--root", default="/", metavar="DIR",
                   help="read /boot and /lib/modules under DIR (default /)")
    args = ap.parse_args(argv)
    bad = argument_problems(args)
    if bad:
        print("vpsnet-status: " + "; ".join(bad), file=sys.stderr)
        return EXIT_BAD_INPUT
    path = Path(args.file)

    if args.next_boot:
        nb = check_next_boot(Path(args.root))
        if args.json:
            print(json.dumps(asdict(nb), indent=2, sort_keys=True))
        elif nb.ok:
            print(f"vpsnet-status: {nb.reason}")
        if not nb.ok:
            print(f"vpsnet-status: {nb.reason}", file=sys.stderr)
        return nb.code

    if args.samples is not None:
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
