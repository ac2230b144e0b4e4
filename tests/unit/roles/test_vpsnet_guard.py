"""Unit tests of roles/vpsnet_guard/files/vpsnet-guard's save and revert against
fake `tc`, `ethtool` and `ip` that print a NIC's state from files and log what
they are asked to set, and of the race between disarm and the timer's revert
(fake `systemctl`/`systemd-run`; the real script, its lock and state files);
see test_vpsnet_guard_persistent.py for record, arm --persistent (listed for
vpsnet-guard-boot.service under $VPSNET_GUARD_BOOT_DIR), revert --if-due and boot.
The timer and real NICs: tests/roles/test_vpsnet_guard_guest.py."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import pytest
from testlib.vpsnet_guard_helpers import (
    GUARD,
    MQ_TREE,
    NIC,
    Host,
    units,
    wait_until,
)


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)


def mtu() -> str:
    return Path(f"/sys/class/net/{NIC}/mtu").read_text().strip()


def test_every_tx_queue_qdisc_comes_back_under_a_new_mq(host: Host) -> None:
    host.set(tc=MQ_TREE, rx=256, adaptive="off")
    assert host.guard("save", "t", NIC).returncode == 0
    host.set(tc="qdisc mq 8001: root\n")  # what a new mq looks like when the lines run
    r = host.guard("revert", "t")
    assert r.returncode == 0, r.stderr
    assert host.calls() == [
        f"ip link set dev {NIC} mtu {mtu()}",
        f"ethtool -L {NIC} combined 4",
        f"tc qdisc replace dev {NIC} root mq",
        f"tc qdisc replace dev {NIC} parent 8001:1 fq maxrate 19Mbit",
        f"tc qdisc replace dev {NIC} parent 8001:2 pfifo_fast",
        # fq keeps an old cap on replace unless told: "uncapped" is spelled out
        f"tc qdisc replace dev {NIC} parent 8001:3 fq maxrate 4294967295Bps",
    ]
    assert host.guard("status", "t").stdout.strip() == "reverted"


def test_rings_and_adaptive_rx_are_set_only_where_they_changed(host: Host) -> None:
    host.set(tc="qdisc fq_codel 0: root refcnt 2 limit 10240p\n", rx=256, adaptive="off")
    assert host.guard("save", "t", NIC).returncode == 0
    assert host.guard("revert", "t").returncode == 0
    unchanged = host.calls()
    assert not [c for c in unchanged if c.startswith(("ethtool -G", "ethtool -C"))], unchanged

    host.set(rx=128, adaptive="on")
    assert host.guard("revert", "t").returncode == 0
    changed = host.calls()
    assert f"ethtool -G {NIC} rx 256 tx 512" in changed
    assert f"ethtool -C {NIC} adaptive-rx off" in changed
    assert f"tc qdisc replace dev {NIC} root fq_codel" in changed


def test_what_the_nic_does_not_report_is_not_recorded(host: Host) -> None:
    host.set(tc="qdisc noqueue 0: root refcnt 2\n", channels=False)  # no -l/-g/-c output
    assert host.guard("save", "t", NIC).returncode == 0
    assert host.guard("revert", "t").returncode == 0
    assert host.calls() == [f"ip link set dev {NIC} mtu {mtu()}"]


def test_a_failed_line_is_logged_and_the_rest_still_runs(host: Host) -> None:
    host.set(tc="qdisc fq 0: root maxrate 5Mbit\n")
    assert host.guard("save", "t", NIC).returncode == 0
    record = Path(host.env["VPSNET_GUARD_DIR"]) / "t.sh"
    lines = record.read_text().splitlines()
    record.write_text("\n".join([lines[0], "fail now", *lines[1:]]) + "\n")
    r = host.guard("revert", "t")
    assert r.returncode == 1
    assert "failed: fail now" in r.stdout
    assert host.calls()[-1] == f"tc qdisc replace dev {NIC} root fq maxrate 5Mbit"
    # neither the change nor the old state: not "reverted", and a late disarm says so
    assert host.guard("status", "t").stdout.strip() == "revert_failed"
    late = host.guard("disarm", "t")
    assert late.returncode == 3 and "a command of it failed" in late.stderr


@pytest.mark.parametrize("nic", ["no-such-nic", "eth0;reboot"])
def test_save_refuses_an_unknown_nic_and_records_nothing(host: Host, nic: str) -> None:
    r = host.guard("save", "t", nic)
    assert r.returncode == 2 and f"no NIC '{nic}'" in r.stderr
    assert not os.path.exists(Path(host.env["VPSNET_GUARD_DIR"]) / "t.sh")


# ---------------------------------------------------------------- disarm against the timer's revert


def armed(host: Host) -> Path:
    """t saved and armed for 60 s (fake systemd-run); its guard directory."""
    host.set(tc="qdisc fq 0: root maxrate 5Mbit\n", channels=False)
    assert host.guard("save", "t", NIC).returncode == 0
    r = host.guard("arm", "t", "60")
    assert r.returncode == 0, r.stderr
    assert host.status() == "armed"
    host.calls()
    (host.state / "units").unlink()
    return Path(host.env["VPSNET_GUARD_DIR"])


def test_arm_starts_the_timer_on_the_revert(host: Host) -> None:
    armed(host)
    host.set(tc="qdisc fq 0: root\n")
    assert host.guard("arm", "t", "30").returncode == 0
    assert units(host) == [
        "systemctl stop vpsnet-guard-t.timer vpsnet-guard-t.service",
        "systemctl reset-failed vpsnet-guard-t.timer vpsnet-guard-t.service",
        "systemd-run --quiet --unit vpsnet-guard-t --on-active=30 --timer-property=AccuracySec=1s "
        f"--setenv=VPSNET_GUARD_DIR={host.env['VPSNET_GUARD_DIR']} {GUARD} revert t"]


def test_disarm_during_the_revert_reports_it_and_never_succeeds(host: Host) -> None:
    armed(host)
    (host.state / "block").touch()
    revert = host.start("revert", "t")
    try:
        wait_until(lambda: (host.state / "calls").exists(), "the revert's first command")
        assert host.status() == "reverting"
        r = host.guard("disarm", "t")
        assert r.returncode == 3, (r.stdout, r.stderr)
        assert "the timer fired before the confirmation: the change is being reverted" in r.stderr
        assert host.status() == "reverting"  # not "disarmed": the revert goes on
    finally:
        (host.state / "block").unlink()
        _, err = revert.communicate(timeout=30)
    assert revert.returncode == 0, err
    assert host.status() == "reverted"
    assert host.calls()[-1] == f"tc qdisc replace dev {NIC} root fq maxrate 5Mbit"
    again = host.guard("disarm", "t")
    assert again.returncode == 3 and "the change was reverted" in again.stderr
    assert host.status() == "reverted"
    assert units(host) == []


def test_disarm_waits_for_the_lock_and_decides_on_the_state_under_it(host: Host) -> None:
    """The revert took the lock and has not written 'reverting' yet: disarm must
    not read 'armed' and win; it waits, then sees what the revert did."""
    guard_dir = armed(host)
    with open(guard_dir / "t.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        disarm = host.start("disarm", "t")
        time.sleep(0.5)
        assert disarm.poll() is None, "disarm did not wait for the lock"
        (guard_dir / "t.state").write_text("reverted\n")
        fcntl.flock(lock, fcntl.LOCK_UN)
    _, err = disarm.communicate(timeout=30)
    assert disarm.returncode == 3 and "the change was reverted" in err
    assert host.status() == "reverted"


def test_a_revert_that_died_half_way_is_not_disarmed(host: Host) -> None:
    guard_dir = armed(host)
    (guard_dir / "t.state").write_text("reverting\n")  # lock free: its process is gone
    r = host.guard("disarm", "t")
    assert r.returncode == 3 and "did not finish: the change is partly reverted" in r.stderr


def test_a_timer_that_fires_after_the_disarm_reverts_nothing(host: Host) -> None:
    armed(host)
    r = host.guard("disarm", "t")
    assert r.returncode == 0, r.stderr
    assert units(host) == ["systemctl stop vpsnet-guard-t.timer"]
    late = host.guard("revert", "t")
    assert late.returncode == 0, late.stderr
    assert "the change was kept, nothing reverted" in late.stdout
    assert host.calls() == []
    assert host.status() == "disarmed"


def test_disarm_stuck_behind_the_lock_leaves_the_timer_armed(host: Host) -> None:
    guard_dir = armed(host)
    host.env["VPSNET_GUARD_LOCK_WAIT"] = "1"
    with open(guard_dir / "t.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        r = host.guard("disarm", "t")
    assert r.returncode == 4 and "still held" in r.stderr
    assert host.status() == "armed"
    assert units(host) == []


def test_disarm_and_revert_started_together_agree(host: Host) -> None:
    """Whichever wins, the controller's answer matches the host: disarm 0 with
    nothing reverted, or disarm 3 with the change reverted."""
    outcomes = set()
    for _ in range(8):
        armed(host)
        revert, disarm = host.start("revert", "t"), host.start("disarm", "t")
        assert revert.wait(timeout=30) == 0
        disarm.communicate(timeout=30)
        reverted = bool(host.calls())
        assert (disarm.returncode, host.status()) == \
            ((3, "reverted") if reverted else (0, "disarmed"))
        outcomes.add(disarm.returncode)
    assert outcomes <= {0, 3}
