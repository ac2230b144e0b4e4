"""WAN benchmark: goodput and p99 RTT under load between two lab guests over an
emulated long-haul link, for Debian's defaults, TuneD's network-throughput
profile and the vpsnet_tune role, side by side in one run.

Run as root: `.venv/bin/python bench/wan.py [--runs 3] [--seconds 20] [--ipv6 clean]`;
boots its own lab (.cache/lab-wan, base_port 19522), always tears it down, writes
bench/results/wan.json and bench/results/wan.png. `--ipv6 PROFILE` also runs that
profile over the link's IPv6 addresses (summary key PROFILE-ipv6). See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from vpsnet_lab import inventory
from vpsnet_lab.fleet import Lab
from vpsnet_lab.paths import CACHE, TOP

RESULTS = TOP / "bench" / "results"
STATE = CACHE / "lab-wan"
CLIENT, SERVER = "wan-a", "wan-b"
SERVER_ADDR = "198.18.0.2"
SERVER_ADDR6 = "fd42::2"  # the lab's IPv6 on the same link (lab/vpsnet_lab/spec.py)
IPV6_SUFFIX = "-ipv6"  # a profile run over IPv6 is reported as e.g. clean-ipv6
NIC = "eth1"  # the stream link on both guests
QDISC_SCRIPT = "/usr/local/sbin/vpsnet-qdisc"  # the role's, copied in
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
CONFIGS = ("defaults", "tuned-network-throughput", "vpsnet")
# --controls: vpsnet with cubic instead of BBR (same sysctls otherwise, same qdisc),
# to tell what BBR costs or brings from what the rest of the tuning does.
CONTROL_CONFIG = "vpsnet-cubic"
# --controls: a second ping marked with this TOS goes round the bottleneck queue
# (its own netem, same delay and loss, no rate) and so measures what the loaded
# guests add to an RTT, without the queue. Echo replies keep the request's TOS.
BYPASS_TOS = "0x10"
# Every sysctl any configuration touches: recorded before, re-applied after each.
KEYS = (
    "net.core.default_qdisc", "net.ipv4.tcp_congestion_control", "net.core.rmem_max",
    "net.core.wmem_max", "net.core.rmem_default", "net.core.wmem_default", "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem", "net.ipv4.tcp_mtu_probing", "net.ipv4.icmp_ratelimit",
    "net.ipv4.icmp_msgs_per_sec", "net.core.somaxconn", "vm.nr_hugepages",
    "net.core.netdev_max_backlog", "kernel.sched_min_granularity_ns",
    "kernel.sched_wakeup_granularity_ns", "vm.dirty_ratio", "vm.dirty_background_ratio",
    "vm.swappiness", "kernel.numa_balancing", "net.ipv4.tcp_fastopen",
)
GUESTS = (CLIENT, SERVER)
PING_INTERVAL = 0.2  # s
# Start-up excluded from the steady-state p99: at 200 ms RTT, slow start or BBR's
# STARTUP and DRAIN take a few seconds (seen as the RTT peak in ping_series).
WARMUP_SECONDS = 5


def say(msg: str) -> None:
    print(f"[wan] {msg}", file=sys.stderr, flush=True)


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


def tune_filters() -> Any:
    """The vpsnet_tune role's plan filters (roles/vpsnet_tune/filter_plugins)."""
    sys.path.insert(0, str(TOP / "roles/vpsnet_tune/filter_plugins"))
    import vpsnet_tune

    return vpsnet_tune


def vpsnet_qdisc(fq_maxrate_mbit: int) -> str:
    """What the role puts on every TX queue (vpsnet-qdisc), as its plan computes it."""
    errors: list[str] = []
    qdisc = str(tune_filters().qdisc_spec(
        {"default_qdisc": "fq", "fq_maxrate_mbit": fq_maxrate_mbit}, errors))
    if errors:
        raise SystemExit("; ".join(errors))
    return qdisc


class Bench:
    def __init__(self, lab: Lab, seconds: int, qdisc: str, controls: bool = False) -> None:
        self.lab = lab
        self.seconds = seconds
        self.qdisc = qdisc
        self.controls = controls
        self.baseline: dict[str, dict[str, str]] = {}
        self.vpsnet_conf: dict[str, str] = {}

    def sh(self, guest: str, cmd: str, timeout: float = 120) -> str:
        return str(self.lab.ssh(guest, cmd, timeout=timeout, check=True).stdout)

    def both(self, cmd: str) -> None:
        for g in GUESTS:
            self.sh(g, cmd)

    def nics(self, guest: str) -> list[str]:
        # Not lo, and not the ifb carrying the link's netem (not a NIC of the config).
        return [n for n in self.sh(guest, "ls /sys/class/net").split()
                if n != "lo" and not n.startswith("ifb")]

    # --- state ---------------------------------------------------------------
    def record_baseline(self) -> None:
        for g in GUESTS:
            out = self.sh(g, "sysctl -e " + " ".join(KEYS))
            self.baseline[g] = {k.strip(): " ".join(v.split())
                                for k, _, v in (ln.partition("=") for ln in out.splitlines()) if v}

    def restore(self) -> None:
        """Back to Debian's defaults: TuneD off, recorded sysctls, default root qdisc."""
        for g in GUESTS:
            self.sh(g, "if systemctl is-active -q tuned; then tuned-adm off; "
                       "systemctl stop tuned; fi")
            args = " ".join(f"'{k}={v}'" for k, v in self.baseline[g].items())
            self.sh(g, f"sysctl -q -w {args}")
            for nic in self.nics(g):
                self.sh(g, f"tc qdisc del dev {nic} root 2>/dev/null || true")

    def state(self, guest: str) -> dict[str, Any]:
        out = self.sh(guest, "sysctl -e net.ipv4.tcp_congestion_control net.ipv4.tcp_rmem "
                             "net.ipv4.tcp_wmem net.core.rmem_max net.core.wmem_max")
        qdisc = self.sh(guest, f"tc qdisc show dev {NIC} root").split()
        return {**{k.strip(): " ".join(v.split())
                   for k, _, v in (ln.partition("=") for ln in out.splitlines()) if v},
                "root_qdisc": qdisc[1] if len(qdisc) > 1 else None}

    # --- configurations ------------------------------------------------------
    def install_qdisc_script(self) -> None:
        for g in GUESTS:
            self.lab.put(g, TOP / "roles/vpsnet_tune/files/vpsnet-qdisc", QDISC_SCRIPT)
            self.sh(g, f"chmod 0755 {QDISC_SCRIPT}")

    def plan_vpsnet(self, profiles: list[str]) -> dict[str, str]:
        """Run the vpsnet_tune role on both guests once per profile (its RTT), in one
        ansible-playbook; keep the sysctl file each run wrote (applied later as-is),
        then undo it."""
        tasks: list[dict[str, Any]] = []
        for profile in profiles:
            tasks += [
                {"name": f"vpsnet_tune for {profile}",
                 "ansible.builtin.include_role": {"name": "vpsnet_tune"},
                 "vars": {"vpsnet_tune_rtt_ms": max(PROFILES[profile][0], 1),
                          "vpsnet_tune_bandwidth_mbit": BANDWIDTH_MBIT,
                          "vpsnet_tune_irq_affinity": False, "vpsnet_tune_nic_profile": "none"}},
                {"name": f"keep the sysctl file for {profile}", "ansible.builtin.copy": {
                    "src": "/etc/sysctl.d/90-vpsnet.conf", "remote_src": True,
                    "dest": f"/root/vpsnet-{profile}.conf", "mode": "0644"}},
            ]
        with tempfile.TemporaryDirectory() as tmp:
            inv = inventory.write(self.lab.spec, Path(tmp) / "hosts.yml")
            play = Path(tmp) / "tune.yml"
            play.write_text(yaml.safe_dump([{
                "name": "vpsnet_tune for the WAN bench", "hosts": "all", "become": True,
                "gather_facts": True, "tasks": tasks}]))
            env = dict(os.environ, ANSIBLE_ROLES_PATH=str(TOP / "roles"),
                       ANSIBLE_COLLECTIONS_PATH=str(CACHE / "collections"),
                       ANSIBLE_CONFIG=str(TOP / "ansible.cfg"), ANSIBLE_FORCE_COLOR="0")
            started = time.monotonic()
            proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"),
                                   "-i", str(inv), str(play)], env=env, cwd=TOP,
                                  capture_output=True, text=True, timeout=1200)
            if proc.returncode != 0:
                raise RuntimeError(f"vpsnet_tune failed:\n{proc.stdout[-3000:]}{proc.stderr}")
            say(f"vpsnet_tune applied by ansible-playbook for {', '.join(profiles)} in "
                f"{time.monotonic() - started:.0f}s")
        confs = {p: self.sh(CLIENT, f"cat /root/vpsnet-{p}.conf") for p in profiles}
        self.both("rm -f /etc/sysctl.d/90-vpsnet.conf")
        self.restore()
        return confs

    def plan_from_filter(self, profiles: list[str]) -> dict[str, str]:
        """The same sysctl file, computed by the role's own plan filter
        (roles/vpsnet_tune/filter_plugins) with the role's defaults: quicker than
        ansible-playbook on a loaded machine."""
        vpsnet_tune = tune_filters()
        confs = {}
        for profile in profiles:
            buf = vpsnet_tune.buffers(max(PROFILES[profile][0], 1), BANDWIDTH_MBIT, 268435456)
            keys = {
                "net.core.default_qdisc": "fq", "net.ipv4.tcp_congestion_control": "bbr",
                "net.core.rmem_max": buf["rmem_max"], "net.core.wmem_max": buf["wmem_max"],
                "net.ipv4.tcp_rmem": buf["tcp_rmem"], "net.ipv4.tcp_wmem": buf["tcp_wmem"],
                "net.ipv4.tcp_mtu_probing": 1, "net.ipv4.icmp_ratelimit": 1000,
                "net.ipv4.icmp_msgs_per_sec": 1000, "net.core.somaxconn": 4096,
            }
            confs[profile] = "".join(f"{k} = {v}\n" for k, v in keys.items())
        return confs

    def apply(self, config: str, profile: str) -> None:
        if config == "tuned-network-throughput":
            self.both("systemctl start tuned && tuned-adm profile network-throughput")
        elif config in ("vpsnet", CONTROL_CONFIG):
            conf = self.vpsnet_conf[profile]
            if config == CONTROL_CONFIG:
                conf += "net.ipv4.tcp_congestion_control = cubic\n"
            for g in GUESTS:
                self.sh(g, f"modprobe tcp_bbr; cat > /run/vpsnet-bench.conf <<'EOF'\n{conf}EOF\n"
                           "sysctl -q -p /run/vpsnet-bench.conf")
                nics = " ".join(self.nics(g))
                self.sh(g, f"{QDISC_SCRIPT} --qdisc '{self.qdisc}' {nics}")

    # --- the link ------------------------------------------------------------
    def netem(self, rtt_ms: float, loss_pct: float, rate_mbit: float | None) -> None:
        """Delay, loss and (rate_mbit) a bottleneck rate on the receive side of the link
        on both guests (ifb), so that the egress root qdisc stays the configuration's
        own (fq, pfifo_fast...)."""
        for g in GUESTS:
            # GRO off: netem on ingress must drop single segments, not GRO super-packets
            # (with GRO on, 1 % "loss" drops 1 % of ~40-segment aggregates).
            self.sh(g, f"tc qdisc del dev {NIC} ingress 2>/dev/null; ip link del ifb0 "
                       f"2>/dev/null; ethtool -K {NIC} gro off; true")
            if rtt_ms <= 0 and loss_pct <= 0 and not rate_mbit:
                continue
            shape = (f"rate {rate_mbit:g}mbit limit {netem_limit(rtt_ms, rate_mbit)}"
                     if rate_mbit else "limit 200000")
            wan = f"netem delay {rtt_ms / 2:g}ms loss {loss_pct / 2:g}%"
            if self.controls:
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
            self.sh(g, f"modprobe ifb numifbs=0; modprobe sch_netem; ip link add ifb0 type ifb; "
                       f"ip link set ifb0 up; tc qdisc add dev {NIC} handle ffff: ingress; "
                       f"tc filter add dev {NIC} parent ffff: matchall "
                       f"action mirred egress redirect dev ifb0; {root}")

    def check_ipv6(self) -> None:
        """Fail at once, saying why, when the link has no IPv6 (a lab image from
        before the guests' links carried it, or a guest kernel without IPv6)."""
        out = self.lab.ssh(CLIENT, f"ping -6 -n -c 1 -W 3 {SERVER_ADDR6}", timeout=30)
        if out.rc != 0:
            raise SystemExit(f"--ipv6: {CLIENT} cannot ping {SERVER_ADDR6} over {NIC} "
                             f"({' '.join(str(out.stdout).split())[-200:]}); the lab's guests "
                             "get their link's IPv6 address from vpsnet-lab-init at boot")

    def measure(self, ipv6: bool = False) -> dict[str, Any]:
        self.sh(SERVER, "pkill -x iperf3 || true; iperf3 -s -D -1 >/dev/null 2>&1; sleep 0.5")
        out = self.sh(CLIENT, measure_command(self.seconds, self.controls, ipv6),
                      timeout=self.seconds * 3 + 120)
        n = int(self.seconds / PING_INTERVAL)
        result = json.loads(out[out.index("{"):])
        series = ping_series(self.sh(CLIENT, "cat /tmp/ping.txt"))
        end = result["end"]
        m = {
            "goodput_mbit": round(end["sum_received"]["bits_per_second"] / 1e6, 3),
            "retransmits": end["sum_sent"].get("retransmits"),
            "ping_sent": n,
            **rtt_stats(series),
            "ping_series": series,
        }
        if self.controls:
            bypass_series = ping_series(self.sh(CLIENT, "cat /tmp/ping-bypass.txt"))
            m.update({f"bypass_{k}": v for k, v in rtt_stats(bypass_series).items()},
                     bypass_ping_series=bypass_series)
        return m


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--base-port", type=int, default=19522)
    parser.add_argument("--profiles", default=",".join(PROFILES))
    parser.add_argument("--link-mbit", type=float, default=None,
                        help="bottleneck rate of the emulated link (netem rate, every profile); "
                             "default: none, the TCG guests' CPU limits it; results go to "
                             "wan-<N>mbit.json/png instead of wan.json/png")
    parser.add_argument("--fq-maxrate-mbit", type=int, default=0,
                        help="vpsnet_tune_fq_maxrate_mbit for the vpsnet configuration: fq "
                             "caps every flow at this rate; results get a -maxrate<N> suffix")
    parser.add_argument("--controls", action="store_true",
                        help="with --link-mbit: also run vpsnet with cubic instead of BBR, and "
                             "a second ping that goes round the bottleneck queue; results get "
                             "a -controls suffix")
    parser.add_argument("--ipv6", metavar="PROFILE", choices=list(PROFILES), default=None,
                        help="also run this link profile over the link's IPv6 addresses "
                             f"({SERVER_ADDR6}: iperf3 -6, ping -6); reported as "
                             f"PROFILE{IPV6_SUFFIX} in the summary")
    parser.add_argument("--with-ansible", action="store_true",
                        help="run the vpsnet_tune role with ansible-playbook to get its sysctl "
                             "file (default: the role's plan filter computes the same file)")
    args = parser.parse_args()
    profiles = args.profiles.split(",")
    unknown = [p for p in profiles if p not in PROFILES]
    if unknown:
        parser.error(f"--profiles: unknown {', '.join(unknown)} (known: {', '.join(PROFILES)})")
    plan = legs(profiles, args.ipv6)
    link_profiles = list(dict.fromkeys(p for _, p, _ in plan))
    if args.controls and not args.link_mbit:
        parser.error("--controls needs --link-mbit: without a rate there is no bottleneck "
                     "queue to go round")
    configs = (*CONFIGS, CONTROL_CONFIG) if args.controls else CONFIGS
    qdisc = vpsnet_qdisc(args.fq_maxrate_mbit)
    started = time.monotonic()
    Lab(STATE).down(say=say)
    lab = Lab.up(spec(args.base_port), "bench/wan.py", state_dir=STATE, say=say)
    runs: list[dict[str, Any]] = []
    setup: dict[str, Any] = {}
    try:
        b = Bench(lab, args.seconds, qdisc, args.controls)
        b.record_baseline()
        b.install_qdisc_script()
        if args.ipv6:
            b.check_ipv6()
        b.vpsnet_conf = (b.plan_vpsnet(link_profiles) if args.with_ansible
                         else b.plan_from_filter(link_profiles))
        setup = {
            "guests": {g: b.sh(g, "uname -r").strip() for g in GUESTS},
            "baseline_sysctls": b.baseline,
            "vpsnet_sysctl_files": b.vpsnet_conf,
            "states": {},
        }
        for label, profile, ipv6 in plan:
            rtt, loss = PROFILES[profile]
            b.restore()
            b.netem(rtt, loss, args.link_mbit)
            for run in range(args.runs):
                shift = run % len(configs)
                order = configs[shift:] + configs[:shift]  # interleaved, rotated
                for config in order:
                    b.restore()
                    b.apply(config, profile)
                    setup["states"].setdefault(config, {g: b.state(g) for g in GUESTS})
                    m = b.measure(ipv6)
                    m.update(profile=label, link_profile=profile, ip_version=6 if ipv6 else 4,
                             config=config, run=run)
                    say(f"{label} run {run} {config}: {m['goodput_mbit']} Mbit/s, "
                        f"p99 {m['p99_rtt_ms']} ms (steady {m['p99_rtt_steady_ms']} ms)")
                    runs.append(m)
            b.restore()
        b.netem(0, 0, None)
    finally:
        lab.down(say=say)
    summary = summarise(runs, [label for label, _, _ in plan], configs)
    doc = {
        "summary": summary,
        "method": {
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
                           "the sysctls the vpsnet_tune plan filter computes (role defaults)")
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
        },
        "setup": setup,
        "runs": runs,
        "wall_seconds": round(time.monotonic() - started),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"wan-{args.link_mbit:g}mbit" if args.link_mbit else "wan"
    if args.fq_maxrate_mbit:
        name += f"-maxrate{args.fq_maxrate_mbit:g}"
    if args.controls:
        name += "-controls"
    (RESULTS / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
    chart(summary, RESULTS / f"{name}.png",
          f"a {args.link_mbit:g} Mbit/s link" if args.link_mbit else "CPU-bound link", configs)
    print(json.dumps(summary, indent=2))
    return 0


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


if __name__ == "__main__":
    sys.exit(main())
