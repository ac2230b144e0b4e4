"""vpsnet-guard, the vpsnet_guard role's host-side revert timer, on the session's
guests (both kernels): everything a guarded change can alter on a NIC (MTU,
channels, rings, adaptive RX, the root qdisc and the qdisc of every TX queue
with fq's maxrate) is recorded, changed, and put back by the armed timer on
its own, as on a host the controller can no longer reach."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.vpsnet.fleet.plugins.filter import vpsnet_tune

from vpsnet_lab.fleet import Lab

pytestmark = pytest.mark.lab

ROLES = Path(__file__).resolve().parents[2] / "roles"
GUARD = ROLES / "vpsnet_guard/files/vpsnet-guard"
REMOTE = "/usr/local/sbin/vpsnet-guard"
ID = "vpsnet-test"


@dataclass(frozen=True)
class Case:
    guest: str
    nic: str
    before: str  # shell: the state the guard records
    change: str  # shell: the risky change it must undo
    reset: str  # shell: the guest's NIC as the other tests expect it


CASES = [
    # 6.1, 4 TX queues: vpsnet-qdisc's per-queue fq over a mixed tree, fewer
    # channels, a lower MTU
    Case("aws61", "eth1",
         before="tc qdisc replace dev eth1 root handle 1: mq\n"
                "tc qdisc replace dev eth1 parent 1:1 fq maxrate 19mbit\n"
                "tc qdisc replace dev eth1 parent 1:2 pfifo_fast\n"
                "tc qdisc replace dev eth1 parent 1:3 fq_codel\n"
                "tc qdisc replace dev eth1 parent 1:4 fq\n",
         change="ethtool -L eth1 combined 2\nip link set dev eth1 mtu 1400\n"
                "for q in 1 2 3 4; do\n"
                "  tc qdisc replace dev eth1 parent 1:$q fq maxrate 5mbit\n"
                "done\n",
         reset="ethtool -L eth1 combined 4; ip link set dev eth1 mtu 1500; "
               "tc qdisc del dev eth1 root"),
    # 6.12, one queue: an uncapped root fq given a cap (fq keeps a cap it is
    # not told to drop), smaller rings, adaptive RX on
    Case("gcp612", "eth1",
         before="tc qdisc replace dev eth1 root fq\n",
         change="tc qdisc replace dev eth1 root fq maxrate 5mbit\n"
                "ethtool -G eth1 rx 128 tx 128\nethtool -C eth1 adaptive-rx on\n",
         reset="ethtool -G eth1 rx 256 tx 256; ethtool -C eth1 adaptive-rx off; "
               "tc qdisc del dev eth1 root"),
]


# vpsnet_tune's ethtool parsers: the ones the role itself reads NICs with
tune = vpsnet_tune


def qdisc_tree(tc_text: str) -> list[tuple[str, str, str]]:
    """(where, kind, maxrate) for the root and each TX queue's qdisc; handles,
    which a revert cannot keep, left out."""
    tree = []
    for line in tc_text.splitlines():
        f = line.split()
        if len(f) < 4:
            continue
        where = "root" if f[3] == "root" else "txq " + f[4].split(":")[1]
        maxrate = f[f.index("maxrate") + 1] if "maxrate" in f else ""
        tree.append((where, f[1], maxrate))
    return sorted(tree)


def nic_state(lab: Lab, case: Case) -> dict[str, Any]:
    nic = case.nic
    out = lab.ssh(case.guest, f"cat /sys/class/net/{nic}/mtu; echo @@; ethtool -l {nic}; echo @@; "
                              f"ethtool -g {nic}; echo @@; ethtool -c {nic}; echo @@; "
                              f"tc qdisc show dev {nic}", check=True).stdout
    mtu, channels, rings, coalesce, qdiscs = out.split("@@")
    return {"mtu": mtu.strip(), "channels": tune.parse_ethtool(channels)["current"],
            "rings": tune.parse_ethtool(rings)["current"],
            "adaptive_rx": tune.parse_adaptive_rx(coalesce), "qdiscs": qdisc_tree(qdiscs)}


def guard(lab: Lab, guest: str, args: str) -> str:
    return str(lab.ssh(guest, f"{REMOTE} {args}", check=True).stdout).strip()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.guest)
def test_the_armed_timer_puts_every_recorded_setting_back(lab: Lab, case: Case) -> None:
    lab.put(case.guest, GUARD, REMOTE)
    lab.ssh(case.guest, f"chmod 755 {REMOTE}", check=True)
    try:
        lab.ssh(case.guest, f"set -e\n{case.before}", check=True)
        before = nic_state(lab, case)
        guard(lab, case.guest, f"save {ID} {case.nic}")
        lab.ssh(case.guest, f"set -e\n{case.change}", check=True)
        changed = nic_state(lab, case)
        assert changed != before

        guard(lab, case.guest, f"arm {ID} 3")
        deadline = time.monotonic() + 90
        while guard(lab, case.guest, f"status {ID}") != "reverted" and time.monotonic() < deadline:
            time.sleep(2)
        assert guard(lab, case.guest, f"status {ID}") == "reverted"
        after = nic_state(lab, case)
        # every field named, so a failure shows which setting did not come back
        for key in before:
            assert after[key] == before[key], (key, changed[key])
        journal = lab.ssh(case.guest, "journalctl -t vpsnet-guard --no-pager", check=True).stdout
        assert f"{ID}: reverting" in journal
    finally:
        lab.ssh(case.guest, f"systemctl stop vpsnet-guard-{ID}.timer; {case.reset}; "
                            f"rm -f /run/vpsnet/guard/{ID}.*")


BOOT_UNIT = ROLES / "vpsnet_guard/files/vpsnet-guard-boot.service"
BOOT_ID = "vpsnet-test-boot"
BOOT_DIR = "/var/lib/vpsnet/guard-test"  # survives a reboot, as a persistent guard's must
BOOT_MARK = "/var/lib/vpsnet/guard-test-reverted"


def test_a_persistent_guard_is_reverted_or_timed_again_by_the_boot_unit(lab: Lab) -> None:
    """Real systemd: arm --persistent starts a transient timer (no unit file, no
    daemon-reload) and lists the guard; vpsnet-guard-boot.service, started as at
    boot with the transient timer gone, times a guard that is not due again and
    reverts one whose deadline passed while the host was down."""
    guest, env = "gcp612", f"VPSNET_GUARD_DIR={BOOT_DIR}"
    unit = f"vpsnet-guard-{BOOT_ID}"
    lab.put(guest, GUARD, REMOTE)
    lab.put(guest, BOOT_UNIT, "/etc/systemd/system/vpsnet-guard-boot.service")
    sh = lab.ssh
    sh(guest, f"chmod 755 {REMOTE}; systemctl daemon-reload; "
              "systemctl enable --quiet vpsnet-guard-boot.service", check=True)
    try:
        sh(guest, f"rm -rf {BOOT_DIR} {BOOT_MARK}; printf 'touch {BOOT_MARK}\\n' | "
                  f"{env} {REMOTE} record {BOOT_ID}", check=True)
        sh(guest, f"{env} {REMOTE} arm {BOOT_ID} 600 --persistent", check=True)
        assert sh(guest, f"systemctl is-active {unit}.timer").stdout.strip() == "active"
        assert sh(guest, f"cat /var/lib/vpsnet/guard-boot/{BOOT_ID}",
                  check=True).stdout.strip() == BOOT_DIR
        assert sh(guest, f"ls /etc/systemd/system/{unit}.* 2>/dev/null").stdout == ""

        # "a reboot" before the deadline: the transient timer is gone
        sh(guest, f"systemctl stop {unit}.timer", check=True)
        sh(guest, "systemctl start vpsnet-guard-boot.service", check=True)
        assert sh(guest, f"systemctl is-active {unit}.timer").stdout.strip() == "active"
        assert sh(guest, f"{env} {REMOTE} status {BOOT_ID}").stdout.strip() == "armed"
        assert sh(guest, f"test -e {BOOT_MARK}").rc != 0

        # and one after it
        sh(guest, f"systemctl stop {unit}.timer; echo 1 >{BOOT_DIR}/{BOOT_ID}.deadline",
           check=True)
        sh(guest, "systemctl start vpsnet-guard-boot.service", check=True)
        assert sh(guest, f"{env} {REMOTE} status {BOOT_ID}").stdout.strip() == "reverted"
        assert sh(guest, f"test -e {BOOT_MARK}").rc == 0
        assert sh(guest, f"test -e /var/lib/vpsnet/guard-boot/{BOOT_ID}").rc != 0
        journal = sh(guest, "journalctl -t vpsnet-guard --no-pager", check=True).stdout
        assert "armed across the reboot" in journal and f"{BOOT_ID}: reverting" in journal
    finally:
        sh(guest, f"systemctl stop {unit}.timer 2>/dev/null; "
                  "systemctl disable --quiet vpsnet-guard-boot.service; "
                  "rm -f /etc/systemd/system/vpsnet-guard-boot.service; systemctl daemon-reload; "
                  f"rm -rf {BOOT_DIR} {BOOT_MARK} /var/lib/vpsnet/guard-boot/{BOOT_ID}")
