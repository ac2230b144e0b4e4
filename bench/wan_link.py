"""The WAN bench's two guests, their link and its profiles: the lab spec, the
emulated long-haul link (netem on both ends) and the legs of a run.
Imported by bench/wan*.py and their unit tests."""

from __future__ import annotations

import math
from typing import Any

CLIENT, SERVER = "wan-a", "wan-b"
GUESTS = (CLIENT, SERVER)
SERVER_ADDR = "198.18.0.2"
SERVER_ADDR6 = "fd42::2"  # the lab's IPv6 on the same link (lab/vpsnet_lab/specaddress.py)
IPV6_SUFFIX = "-ipv6"  # a profile run over IPv6 is reported as e.g. clean-ipv6
NIC = "eth1"  # the stream link on both guests
BANDWIDTH_MBIT = 1000  # what the vpsnet buffers are sized for, every profile
# With --link-mbit, a bottleneck buffer beyond netem's delay line of one RTT at
# that rate, at least this many packets.
MIN_QUEUE_PACKETS = 1000
# name: (RTT ms, loss %): netem delay RTT/2 and loss/2 on each end.
PROFILES: dict[str, tuple[float, float]] = {
    "transpacific": (200, 1.0),
    "regional": (60, 0.1),
    "clean": (0, 0.0),
}
# --controls: a second ping marked with this TOS goes round the bottleneck queue
# (its own netem, same delay and loss, no rate) and so measures what the loaded
# guests add to an RTT, without the queue. Echo replies keep the request's TOS.
BYPASS_TOS = "0x10"


def spec(base_port: int) -> dict[str, Any]:
    guest = {"cloud": "aws", "region": "us-east-1", "instance_type": "m5.large",
             "kernel": "6.1", "vcpus": 1, "memory_mb": 1024}
    return {
        "name": "wan",
        "base_port": base_port,
        "regions": {"us-east-1": {"rtt_ms": 200, "bandwidth_mbit": BANDWIDTH_MBIT}},
        "guests": [
            {**guest, "name": CLIENT, "zone": "us-east-1a", "nics": [{"link": SERVER}]},
            {**guest, "name": SERVER, "zone": "us-east-1b"},
        ],
    }


def legs(profiles: list[str], ipv6: str | None) -> list[tuple[str, str, bool]]:
    """(summary label, link profile, over IPv6) of each leg of the run: every
    profile over IPv4, then IPV6's profile over IPv6 (label PROFILE-ipv6)."""
    out = [(p, p, False) for p in profiles]
    if ipv6:
        out.append((ipv6 + IPV6_SUFFIX, ipv6, True))
    return out


def netem_limit(rtt_ms: float, rate_mbit: float) -> int:
    """netem's limit counts the packets in its delay line (RTT/2 at the link rate)
    too: that plus a bottleneck buffer of one RTT, at least MIN_QUEUE_PACKETS."""
    packets_per_ms = rate_mbit * 1e3 / (1514 * 8)
    return math.ceil(rtt_ms / 2 * packets_per_ms
                     + max(rtt_ms * packets_per_ms, MIN_QUEUE_PACKETS))


def netem_reset() -> str:
    """Each guest's command that takes the emulated link away."""
    # GRO off: netem on ingress must drop single segments, not GRO super-packets
    # (with GRO on, 1 % "loss" drops 1 % of ~40-segment aggregates).
    return (f"tc qdisc del dev {NIC} ingress 2>/dev/null; ip link del ifb0 "
            f"2>/dev/null; ethtool -K {NIC} gro off; true")


def netem_setup(rtt_ms: float, loss_pct: float, rate_mbit: float | None,
                controls: bool) -> str | None:
    """Each guest's command that puts delay, loss and (rate_mbit) a bottleneck rate
    on the receive side of the link (ifb), so that the egress root qdisc stays the
    configuration's own (fq, pfifo_fast...); None for a clean link without a rate."""
    if rtt_ms <= 0 and loss_pct <= 0 and not rate_mbit:
        return None
    shape = (f"rate {rate_mbit:g}mbit limit {netem_limit(rtt_ms, rate_mbit)}"
             if rate_mbit else "limit 200000")
    wan = f"netem delay {rtt_ms / 2:g}ms loss {loss_pct / 2:g}%"
    if controls:
        # band 1:1 (TOS-marked pings): the same delay and loss, no queue
        root = (f"tc qdisc add dev ifb0 root handle 1: prio bands 2 "
                f"priomap {' '.join(['1'] * 16)}; "
                f"tc qdisc add dev ifb0 parent 1:1 {wan} limit 1000; "
                f"tc qdisc add dev ifb0 parent 1:2 {wan} {shape}; "
                f"tc filter add dev ifb0 parent 1: protocol ip u32 "
                f"match ip tos {BYPASS_TOS} 0xff flowid 1:1; "
                # the IPv6 ping's traffic class (ping -6 -Q sets it)
                f"tc filter add dev ifb0 parent 1: protocol ipv6 u32 "
                f"match ip6 priority {BYPASS_TOS} 0xff flowid 1:1")
    else:
        root = f"tc qdisc add dev ifb0 root {wan} {shape}"
    return (f"modprobe ifb numifbs=0; modprobe sch_netem; ip link add ifb0 type ifb; "
            f"ip link set ifb0 up; tc qdisc add dev {NIC} handle ffff: ingress; "
            f"tc filter add dev {NIC} parent ffff: matchall "
            f"action mirred egress redirect dev ifb0; {root}")
