"""What one WAN bench run measures and how it is read: the client's ping and
iperf3 command, the ping replies, and RTT percentiles (whole run and steady).
Imported by bench/wan*.py and their unit tests."""

from __future__ import annotations

import math
import re
from typing import Any

from wan_link import BYPASS_TOS, SERVER_ADDR, SERVER_ADDR6

PING_INTERVAL = 0.2  # s
# Start-up excluded from the steady-state p99: at 200 ms RTT, slow start or BBR's
# STARTUP and DRAIN take a few seconds (seen as the RTT peak in ping_series).
WARMUP_SECONDS = 5


def measure_command(seconds: int, controls: bool, ipv6: bool) -> str:
    """The client's shell command of one run: ping (and the bypass ping with
    --controls) in the background, iperf3 in the foreground; over the link's
    IPv4 or, with ipv6, its IPv6 addresses (ping -6, iperf3 -6)."""
    n = int(seconds / PING_INTERVAL)
    addr, family = (SERVER_ADDR6, "-6 ") if ipv6 else (SERVER_ADDR, "")
    ping = f"ping {family}-n -i {PING_INTERVAL} -c {n}"
    bypass = (f"{ping} -Q {BYPASS_TOS} {addr} > /tmp/ping-bypass.txt 2>&1 & "
              if controls else "")
    return (f"{ping} {addr} > /tmp/ping.txt 2>&1 & {bypass}"
            f"iperf3 {family}-c {addr} -t {seconds} -J; wait")


def ping_series(text: str) -> list[tuple[int, float]]:
    """(icmp_seq, RTT ms) of every reply; ping sends seq k at (k - 1) * interval."""
    return [(int(seq), float(ms))
            for seq, ms in re.findall(r"icmp_seq=(\d+) .*time=([\d.]+) ms", text)]


def nearest_rank(values: list[float], pct: float) -> float | None:
    """The pct-th percentile by nearest rank (p99 of 100 samples is the 99th, not the max)."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)], 2)


def rtt_stats(series: list[tuple[int, float]]) -> dict[str, Any]:
    """Whole-run percentiles, and the same after the sender's start-up (the first
    WARMUP_SECONDS: slow start or BBR's STARTUP), when the load is steady."""
    first_steady_seq = int(WARMUP_SECONDS / PING_INTERVAL) + 1
    every = [ms for _, ms in series]
    steady = [ms for seq, ms in series if seq >= first_steady_seq]
    return {
        "rtt_samples": len(every),
        "p50_rtt_ms": nearest_rank(every, 50),
        "p99_rtt_ms": nearest_rank(every, 99),
        "max_rtt_ms": max(every, default=None),
        "steady_rtt_samples": len(steady),
        "p99_rtt_steady_ms": nearest_rank(steady, 99),
    }
