"""The WAN bench's results: the summary of named figures per link profile, the
method text recorded beside them, and the chart. Imported by bench/wan.py and its
unit tests."""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

from wan_guests import CONTROL_CONFIG
from wan_link import (
    BANDWIDTH_MBIT,
    BYPASS_TOS,
    IPV6_SUFFIX,
    MIN_QUEUE_PACKETS,
    PROFILES,
    SERVER_ADDR,
    SERVER_ADDR6,
)
from wan_measure import PING_INTERVAL, WARMUP_SECONDS


def summarise(runs: list[dict[str, Any]], profiles: list[str],
              configs: tuple[str, ...]) -> dict[str, Any]:
    def med(profile: str, config: str, key: str) -> float | None:
        vals = [r[key] for r in runs
                if r["profile"] == profile and r["config"] == config and r.get(key) is not None]
        return round(statistics.median(vals), 3) if vals else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a is not None and b else None

    out: dict[str, Any] = {}
    for p in profiles:
        good = {c: med(p, c, "goodput_mbit") for c in configs}
        clean = med("clean", "vpsnet", "goodput_mbit")
        out[p] = {
            "goodput_mbit": good,
            "vpsnet_vs_defaults": ratio(good["vpsnet"], good["defaults"]),
            "vpsnet_vs_tuned": ratio(good["vpsnet"], good["tuned-network-throughput"]),
            "vpsnet_vs_clean": ratio(good["vpsnet"], clean),
            "p99_rtt_ms": {c: med(p, c, "p99_rtt_ms") for c in configs},
            "p99_rtt_steady_ms": {c: med(p, c, "p99_rtt_steady_ms") for c in configs},
        }
        if any("bypass_p99_rtt_steady_ms" in r for r in runs):
            # what the loaded guests add without the bottleneck queue, and the queue's share
            out[p]["bypass_p99_rtt_steady_ms"] = {
                c: med(p, c, "bypass_p99_rtt_steady_ms") for c in configs}
    return out


def method(args: argparse.Namespace, plan: list[tuple[str, str, bool]],
           qdisc: str) -> dict[str, Any]:
    """How the run was made, in words, for the results file."""
    return {
        "runs_per_configuration": args.runs, "iperf3_seconds": args.seconds,
        "iperf3": "single stream, wan-a -> wan-b over the QEMU stream link (eth1), "
                  f"IPv4 ({SERVER_ADDR})"
                  + (f"; {args.ipv6}{IPV6_SUFFIX}: the same over IPv6 ({SERVER_ADDR6}, "
                     "iperf3 -6, ping -6; 20 more header bytes per packet)"
                     if args.ipv6 else ""),
        "ping": f"ping -i {PING_INTERVAL} wan-a -> wan-b during the iperf3 run; p99 "
                "(nearest rank) of the replies, over the whole run and from "
                f"{WARMUP_SECONDS} s on (steady); every reply in ping_series",
        "netem": "on both guests, ingress of eth1 redirected to ifb0 with netem "
                 "delay RTT/2 and loss/2 (egress root qdisc left to the configuration); "
                 "GRO off on eth1 so that loss applies per segment"
                 + (f"; rate {args.link_mbit:g} Mbit/s on every profile, limit = the "
                    "delay line + one RTT at that rate (at least "
                    f"{MIN_QUEUE_PACKETS} packets)" if args.link_mbit else
                    "; no rate: the guests' CPU (TCG) is the bottleneck"),
        "link_mbit": args.link_mbit,
        "profiles": {label: {"rtt_ms": PROFILES[p][0], "loss_pct": PROFILES[p][1],
                             "ip_version": 6 if v6 else 4}
                     for label, p, v6 in plan},
        "configs": {
            "defaults": "Debian 12 guest as booted: cubic, default_qdisc per systemd "
                        "(fq_codel), default buffers",
            "tuned-network-throughput": "systemctl start tuned; tuned-adm profile "
                                        "network-throughput on both guests",
            "vpsnet": ("the sysctl file vpsnet_tune wrote (ansible-playbook)"
                       if args.with_ansible else
                       "the sysctl file vpsnet_tune writes, rendered from the role's "
                       "defaults, tasks (its plan filter) and template")
                      + f", rtt = profile RTT (1 ms for clean), bandwidth {BANDWIDTH_MBIT} "
                      "Mbit/s, applied with sysctl -p; the role's vpsnet-qdisc puts "
                      f"'{qdisc}' on every NIC",
            **({CONTROL_CONFIG: "vpsnet with net.ipv4.tcp_congestion_control = cubic"}
               if args.controls else {}),
        },
        **({"bypass_ping": f"with --controls: a second ping -Q {BYPASS_TOS} during each "
                           "run; on ifb0 a prio qdisc sends it to its own netem (same "
                           "delay and loss, no rate), so it skips the bottleneck queue"}
           if args.controls else {}),
        "restore": "between configurations: tuned-adm off + stop tuned, recorded sysctls "
                   "re-applied, root qdiscs deleted (kernel default back)",
    }


def chart(summary: dict[str, Any], path: Path, link: str, configs: tuple[str, ...]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("goodput_mbit", "iperf3 goodput, median (Mbit/s, log)"),
              ("p99_rtt_ms", "p99 ping RTT under load, whole run (ms)"),
              ("p99_rtt_steady_ms", f"p99 ping RTT, after the first {WARMUP_SECONDS} s (ms)"))
    fig, axes = plt.subplots(1, len(panels), figsize=(15, 4.2))
    width = 0.8 / len(configs)
    profiles = list(summary)
    for ax, (key, title) in zip(axes, panels, strict=True):
        for i, config in enumerate(configs):
            xs = [p + (i - (len(configs) - 1) / 2) * width for p in range(len(profiles))]
            ax.bar(xs, [summary[p][key][config] or 0 for p in profiles], width, label=config)
        ax.set_xticks(range(len(profiles)), profiles)
        ax.set_title(title, fontsize=10)
    axes[0].set_yscale("log")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"vpsnet WAN bench: two QEMU/TCG guests, {link}, netem on both ends")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
