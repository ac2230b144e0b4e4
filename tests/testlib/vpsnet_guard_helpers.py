"""The fake host vpsnet-guard runs against in the unit tests: fake tc, ethtool,
ip, systemctl and systemd-run that print a NIC's state from files and log
what they are asked to do (tests/unit/roles/test_vpsnet_guard*.py)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GUARD = REPO / "roles/vpsnet_guard/files/vpsnet-guard"
NIC = "lo"  # must exist in /sys/class/net; the fakes stand in for everything else

FAKE = """#!/bin/sh
# prints $STATE/<tool><first args>, logs every other call to $STATE/calls
state=$STATE/$(basename "$0")
case "$(basename "$0") $*" in
"tc qdisc show dev $NIC root") head -n 1 "$state-show";;
"tc qdisc show dev $NIC") cat "$state-show";;
"ethtool -l $NIC"|"ethtool -g $NIC"|"ethtool -c $NIC") cat "$state$1" 2>/dev/null || exit 94;;
*) echo "$(basename "$0") $*" >>"$STATE/calls"
   # a revert in progress: the test holds it here while $STATE/block exists
   while [ -e "$STATE/block" ]; do sleep 0.02; done;;
esac
"""
# systemctl and systemd-run: only logged (the timer itself is the guest test's);
# $STATE/fail-<tool> makes one fail
UNITS = ('#!/bin/sh\necho "$(basename "$0") $*" >>"$STATE/units"\n'
         '[ ! -e "$STATE/fail-$(basename "$0")" ]\n')


RINGS = """Ring parameters for lo:
Pre-set maximums:
RX:\t\t1024
RX Mini:\tn/a
TX:\t\t1024
Current hardware settings:
RX:\t\t{rx}
RX Mini:\tn/a
RX Jumbo:\tn/a
TX:\t\t512
TX Push:\toff
"""
COALESCE = "Coalesce parameters for lo:\nAdaptive RX: {adaptive}  TX: n/a\n"
CHANNELS = "Current hardware settings:\nRX:\t\tn/a\nCombined:\t4\n"
# the kernel's own mq (handle 0:), one queue capped, one uncapped, and an
# ingress qdisc that is not a TX queue's
MQ_TREE = """qdisc mq 0: root
qdisc fq 0: parent :1 limit 10000p flow_limit 100p buckets 1024 maxrate 19Mbit
qdisc pfifo_fast 0: parent :2 bands 3 priomap 1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1
qdisc fq 0: parent :3 limit 10000p flow_limit 100p buckets 1024 horizon 10s
qdisc ingress ffff: parent ffff:fff1 ----------------
"""


class Host:
    def __init__(self, tmp: Path) -> None:
        self.state = tmp / "state"
        self.state.mkdir()
        fakes = tmp / "bin"
        fakes.mkdir()
        for tool in ("tc", "ethtool", "ip", "logger", "systemctl", "systemd-run"):
            (fakes / tool).write_text("#!/bin/sh\n" if tool == "logger" else
                                      UNITS if tool.startswith("system") else
                                      FAKE.replace("$NIC", NIC))
            (fakes / tool).chmod(0o755)
        self.units = tmp / "units"  # where an older vpsnet-guard wrote unit pairs
        self.units.mkdir()
        self.boot = tmp / "boot"  # the persistent guards vpsnet-guard-boot.service reads
        self.env = {"PATH": f"{fakes}:/usr/bin:/bin", "STATE": str(self.state),
                    "VPSNET_GUARD_DIR": str(tmp / "guard"),
                    "VPSNET_GUARD_UNIT_DIR": str(self.units),
                    "VPSNET_GUARD_BOOT_DIR": str(self.boot)}

    def set(self, tc: str | None = None, rx: int | None = None, adaptive: str | None = None,
            channels: bool = True) -> None:
        if tc is not None:
            (self.state / "tc-show").write_text(tc)
        if rx is not None:
            (self.state / "ethtool-g").write_text(RINGS.format(rx=rx))
        if adaptive is not None:
            (self.state / "ethtool-c").write_text(COALESCE.format(adaptive=adaptive))
        if channels:
            (self.state / "ethtool-l").write_text(CHANNELS)

    def guard(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(["sh", str(GUARD), *args], env=self.env, capture_output=True,
                              text=True, check=False, input=stdin)

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(["sh", str(GUARD), *args], env=self.env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def status(self) -> str:
        return self.guard("status", "t").stdout.strip()

    def calls(self) -> list[str]:
        path = self.state / "calls"
        calls = path.read_text().splitlines() if path.exists() else []
        path.unlink(missing_ok=True)
        return calls


def units(host: Host) -> list[str]:
    path = host.state / "units"
    return path.read_text().splitlines() if path.exists() else []


def wait_until(cond: Callable[[], bool], what: str, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)
