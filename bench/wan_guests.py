"""The WAN bench on its two booted guests: their recorded sysctls and the way
back to them, the three configurations (and the cubic control) applied, the
link emulated, and one measured run. Imported by bench/wan.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from wan_link import (
    BANDWIDTH_MBIT,
    CLIENT,
    GUESTS,
    NIC,
    PROFILES,
    SERVER,
    SERVER_ADDR6,
    netem_reset,
    netem_setup,
)
from wan_measure import PING_INTERVAL, measure_command, ping_series, rtt_stats
from wan_role import bench_vars, sysctl_file, sysctl_keys

from vpsnet_lab import inventory
from vpsnet_lab.fleet import Lab
from vpsnet_lab.paths import CACHE, TOP

QDISC_SCRIPT = "/usr/local/sbin/vpsnet-qdisc"  # the role's, copied in
CONFIGS = ("defaults", "tuned-network-throughput", "vpsnet")
# --controls: vpsnet with cubic instead of BBR (same sysctls otherwise, same qdisc),
# to tell what BBR costs or brings from what the rest of the tuning does.
CONTROL_CONFIG = "vpsnet-cubic"
# Every sysctl any configuration touches: recorded before, re-applied after each
# (with any other key the role's sysctl file sets: baseline_keys).
KEYS = (
    "net.core.default_qdisc", "net.ipv4.tcp_congestion_control", "net.core.rmem_max",
    "net.core.wmem_max", "net.core.rmem_default", "net.core.wmem_default", "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem", "net.ipv4.tcp_mtu_probing", "net.ipv4.icmp_ratelimit",
    "net.ipv4.icmp_msgs_per_sec", "net.core.somaxconn", "vm.nr_hugepages",
    "net.core.netdev_max_backlog", "kernel.sched_min_granularity_ns",
    "kernel.sched_wakeup_granularity_ns", "vm.dirty_ratio", "vm.dirty_background_ratio",
    "vm.swappiness", "kernel.numa_balancing", "net.ipv4.tcp_fastopen",
)


def say(msg: str) -> None:
    print(f"[wan] {msg}", file=sys.stderr, flush=True)


def baseline_keys() -> tuple[str, ...]:
    """KEYS, then the keys the role's sysctl file sets beyond them."""
    role_keys = sysctl_keys(sysctl_file(1, BANDWIDTH_MBIT))
    return KEYS + tuple(k for k in role_keys if k not in KEYS)


def sysctl_values(out: str) -> dict[str, str]:
    """`sysctl` output -> key -> value (whitespace collapsed)."""
    return {k.strip(): " ".join(v.split())
            for k, _, v in (ln.partition("=") for ln in out.splitlines()) if v}


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
    def record_baseline(self, keys: tuple[str, ...]) -> None:
        for g in GUESTS:
            self.baseline[g] = sysctl_values(self.sh(g, "sysctl -e " + " ".join(keys)))

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
        return {**sysctl_values(out), "root_qdisc": qdisc[1] if len(qdisc) > 1 else None}

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
                 "vars": bench_vars(max(PROFILES[profile][0], 1), BANDWIDTH_MBIT)},
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

    def plan_from_role_files(self, profiles: list[str]) -> dict[str, str]:
        """The same sysctl file, rendered from the role's defaults, tasks and template
        (bench/wan_role.py): quicker than ansible-playbook on a loaded machine."""
        return {p: sysctl_file(max(PROFILES[p][0], 1), BANDWIDTH_MBIT) for p in profiles}

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
        """The link's delay, loss and bottleneck rate on both guests (wan_link.netem_setup)."""
        setup = netem_setup(rtt_ms, loss_pct, rate_mbit, self.controls)
        for g in GUESTS:
            self.sh(g, netem_reset())
            if setup is not None:
                self.sh(g, setup)

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
