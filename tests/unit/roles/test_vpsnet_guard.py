"""Unit tests of roles/vpsnet_guard/files/vpsnet-guard's save and revert against
fake `tc`, `ethtool` and `ip` that print a NIC's state from files and log what
they are asked to set, and of the race between disarm and the timer's revert
(fake `systemctl`/`systemd-run`; the real script, its lock and state files);
record (the revert as commands on stdin), arm --persistent (listed for
vpsnet-guard-boot.service under $VPSNET_GUARD_BOOT_DIR), revert --if-due and boot.
The timer and real NICs: tests/roles/test_vpsnet_guard_guest.py."""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
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


def units(host: Host) -> list[str]:
    path = host.state / "units"
    return path.read_text().splitlines() if path.exists() else []


def wait_until(cond: Callable[[], bool], what: str, timeout: float = 10) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.02)


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


# -------------------------------------------------------- record, arm --persistent, revert --if-due

# each appends its word to $STATE/ran: what ran, and in which order
RECORDED = ['echo one >>"$STATE/ran"', 'echo "two words" >>"$STATE/ran"',
            'printf "%s\\n" three >>"$STATE/ran"']
UNIT = "vpsnet-guard-t"


def recorded(host: Host) -> Path:
    """t recorded from stdin (RECORDED); its guard directory."""
    r = host.guard("record", "t", stdin="\n".join(RECORDED) + "\n")
    assert r.returncode == 0, r.stderr
    assert host.status() == "saved"
    return Path(host.env["VPSNET_GUARD_DIR"])


def ran(host: Host) -> list[str]:
    path = host.state / "ran"
    return path.read_text().splitlines() if path.exists() else []


def persistent(host: Host, seconds: str = "60") -> Path:
    """t recorded and armed --persistent; the unit log emptied; its guard directory."""
    guard_dir = recorded(host)
    r = host.guard("arm", "t", seconds, "--persistent")
    assert r.returncode == 0, r.stderr
    assert host.status() == "armed"
    (host.state / "units").unlink()
    return guard_dir


def unit_files(host: Host) -> list[str]:
    return sorted(p.name for p in host.units.iterdir())


def listed(host: Host) -> dict[str, str]:
    """id -> guard directory of each guard listed for the boot check."""
    if not host.boot.exists():
        return {}
    return {p.name: p.read_text().strip() for p in host.boot.iterdir()}


def timer(host: Host, seconds: int | str, *revert_args: str,
          guard_dir: str | None = None) -> str:
    """The systemd-run line that times t's revert in SECONDS."""
    return (f"systemd-run --quiet --unit {UNIT} --on-active={seconds} "
            "--timer-property=AccuracySec=1s "
            f"--setenv=VPSNET_GUARD_DIR={guard_dir or host.env['VPSNET_GUARD_DIR']} "
            + " ".join([str(GUARD), "revert", "t", *revert_args]))


def test_record_then_revert_runs_exactly_the_recorded_commands_in_order(host: Host) -> None:
    guard_dir = recorded(host)
    text = (guard_dir / "t.sh").read_text().splitlines()
    assert text[0].startswith("# recorded ") and text[1:] == RECORDED
    r = host.guard("revert", "t")
    assert r.returncode == 0, r.stderr
    assert ran(host) == ["one", "two words", "three"]
    assert host.status() == "reverted"
    assert host.calls() == []  # nothing but the recorded commands


@pytest.mark.parametrize("stdin", ["", "\n\n", "  \n# only a comment\n"])
def test_record_with_nothing_on_stdin_saves_nothing(host: Host, stdin: str) -> None:
    r = host.guard("record", "t", stdin=stdin)
    assert r.returncode == 2 and "no commands on stdin" in r.stderr
    guard_dir = Path(host.env["VPSNET_GUARD_DIR"])
    assert not (guard_dir / "t.sh").exists() and not (guard_dir / "t.sh.tmp").exists()
    assert host.status() == "unknown"
    assert host.guard("arm", "t", "60").returncode == 1  # nothing saved to arm


def test_arm_persistent_lists_the_guard_for_boot_and_needs_no_daemon_reload(host: Host) -> None:
    guard_dir = recorded(host)
    before = int(time.time())
    r = host.guard("arm", "t", "60", "--persistent")
    assert r.returncode == 0, r.stderr
    assert host.status() == "armed"
    deadline = int((guard_dir / "t.deadline").read_text())
    assert before + 60 <= deadline <= int(time.time()) + 60
    assert listed(host) == {"t": str(guard_dir)}
    calls = units(host)
    assert calls[-1] == timer(host, 60, "--if-due")
    assert not [c for c in calls if "daemon-reload" in c or "enable" in c], calls
    assert unit_files(host) == []
    assert ran(host) == []


def test_arm_without_persistent_is_not_listed_for_boot(host: Host) -> None:
    recorded(host)
    r = host.guard("arm", "t", "60")
    assert r.returncode == 0, r.stderr
    assert units(host)[-1] == timer(host, 60)
    assert listed(host) == {} and unit_files(host) == []


@pytest.mark.parametrize("args", [["60", "--bogus"], ["60", "--persistent", "x"], ["0"],
                                  ["soon", "--persistent"]])
def test_arm_refuses_bad_arguments(host: Host, args: list[str]) -> None:
    recorded(host)
    r = host.guard("arm", "t", *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert host.status() == "saved"
    assert units(host) == [] and listed(host) == {}


def test_arm_persistent_whose_timer_cannot_start_is_not_armed_nor_listed(host: Host) -> None:
    recorded(host)
    (host.state / "fail-systemd-run").touch()
    r = host.guard("arm", "t", "60", "--persistent")
    assert r.returncode == 1 and "not armed" in r.stderr
    assert host.status() == "saved" and listed(host) == {}


def test_revert_if_due_before_the_deadline_does_nothing(host: Host) -> None:
    guard_dir = persistent(host)
    r = host.guard("revert", "t", "--if-due")
    assert r.returncode == 0, r.stderr
    assert "not due before" in r.stdout
    assert host.status() == "armed"
    assert ran(host) == [] and units(host) == []
    assert listed(host) == {"t": str(guard_dir)}  # still armed


def test_revert_if_due_past_the_deadline_reverts_and_unlists(host: Host) -> None:
    guard_dir = persistent(host)
    (guard_dir / "t.deadline").write_text(f"{int(time.time()) - 5}\n")  # e.g. after a reboot
    r = host.guard("revert", "t", "--if-due")
    assert r.returncode == 0, r.stderr
    assert ran(host) == ["one", "two words", "three"]
    assert host.status() == "reverted"
    assert listed(host) == {} and units(host) == []


@pytest.mark.parametrize("state", ["disarmed", "saved", "reverted"])
def test_revert_if_due_when_not_armed_runs_nothing(host: Host, state: str) -> None:
    guard_dir = persistent(host)
    if state == "disarmed":
        assert host.guard("disarm", "t").returncode == 0
    else:
        (guard_dir / "t.state").write_text(f"{state}\n")
    (guard_dir / "t.deadline").write_text("1\n")  # long past: only the state holds it back
    r = host.guard("revert", "t", "--if-due")
    assert r.returncode == 0, r.stderr
    assert ran(host) == []
    assert host.status() == state


def test_disarm_after_a_persistent_arm_stops_the_timer_and_unlists(host: Host) -> None:
    persistent(host)
    r = host.guard("disarm", "t")
    assert r.returncode == 0, r.stderr
    assert host.status() == "disarmed"
    assert listed(host) == {}
    assert units(host) == [f"systemctl stop {UNIT}.timer"]
    assert ran(host) == []


def test_a_finished_revert_after_a_persistent_arm_unlists_and_refuses_disarm(
        host: Host) -> None:
    persistent(host)
    r = host.guard("revert", "t")
    assert r.returncode == 0, r.stderr
    assert ran(host) == ["one", "two words", "three"]
    assert host.status() == "reverted"
    assert listed(host) == {}
    late = host.guard("disarm", "t")
    assert late.returncode == 3 and "the change was reverted" in late.stderr
    assert host.status() == "reverted"


def test_rearm_persistent_replaces_the_previous_timer(host: Host) -> None:
    guard_dir = persistent(host, "60")
    r = host.guard("arm", "t", "600", "--persistent")
    assert r.returncode == 0, r.stderr
    assert units(host) == [f"systemctl stop {UNIT}.timer {UNIT}.service",
                           f"systemctl reset-failed {UNIT}.timer {UNIT}.service",
                           timer(host, 600, "--if-due")]
    assert listed(host) == {"t": str(guard_dir)}


def test_an_older_guards_unit_pair_is_removed_on_the_next_arm(host: Host) -> None:
    recorded(host)
    for suffix in ("service", "timer"):
        (host.units / f"{UNIT}.{suffix}").write_text("[Unit]\n")
    r = host.guard("arm", "t", "60", "--persistent")
    assert r.returncode == 0, r.stderr
    assert unit_files(host) == []
    calls = units(host)
    assert calls[:2] == [f"systemctl disable --now --quiet {UNIT}.timer",
                         "systemctl daemon-reload"], calls


# ------------------------------------------------------------------------------ boot


def boot(host: Host) -> subprocess.CompletedProcess[str]:
    (host.state / "units").unlink(missing_ok=True)
    return host.guard("boot")


def test_boot_reverts_a_guard_whose_deadline_passed_while_the_host_was_down(
        host: Host) -> None:
    guard_dir = persistent(host)
    (guard_dir / "t.deadline").write_text(f"{int(time.time()) - 5}\n")
    r = boot(host)
    assert r.returncode == 0, r.stderr
    assert ran(host) == ["one", "two words", "three"]
    assert host.status() == "reverted" and listed(host) == {}
    assert units(host) == []  # no timer for a guard that is done


def test_boot_times_a_guard_that_is_not_due_again_for_what_is_left(host: Host) -> None:
    guard_dir = persistent(host, "600")
    deadline = int((guard_dir / "t.deadline").read_text())
    r = boot(host)
    assert r.returncode == 0, r.stderr
    assert ran(host) == [] and host.status() == "armed"
    assert listed(host) == {"t": str(guard_dir)}
    run = units(host)[-1]
    left = int(run.split("--on-active=")[1].split()[0])
    assert deadline - int(time.time()) - 2 <= left <= deadline - int(time.time()) + 1
    assert run == timer(host, left, "--if-due")
    assert "armed across the reboot" in r.stdout


def test_boot_reverts_at_once_a_guard_it_cannot_time_again(host: Host) -> None:
    persistent(host, "600")
    (host.state / "fail-systemd-run").touch()
    r = boot(host)
    assert r.returncode == 0, r.stderr
    assert ran(host) == ["one", "two words", "three"]
    assert host.status() == "reverted" and listed(host) == {}


def test_boot_unlists_a_guard_that_was_disarmed_and_runs_nothing(host: Host) -> None:
    guard_dir = persistent(host)
    host.boot.joinpath("t").write_text(f"{guard_dir}\n")  # e.g. a disarm cut short
    (guard_dir / "t.state").write_text("disarmed\n")
    r = boot(host)
    assert r.returncode == 0, r.stderr
    assert ran(host) == [] and listed(host) == {} and units(host) == []


def test_boot_handles_each_listed_guard_in_its_own_directory(host: Host, tmp_path: Path) -> None:
    due = persistent(host)
    (due / "t.deadline").write_text("1\n")
    other = tmp_path / "other-guard"
    host.env["VPSNET_GUARD_DIR"] = str(other)
    host.guard("record", "t", stdin='echo other >>"$STATE/ran"\n')
    assert host.guard("arm", "t", "600", "--persistent").returncode == 0
    # one id in two directories cannot be listed twice: the second arm took the entry
    assert listed(host) == {"t": str(other)}
    host.boot.joinpath("u").write_text(f"{due}\n")
    (due / "u.sh").write_text((due / "t.sh").read_text())
    (due / "u.state").write_text("armed\n")
    (due / "u.deadline").write_text("1\n")
    r = boot(host)
    assert r.returncode == 0, r.stderr
    assert ran(host) == ["one", "two words", "three"]  # u's revert, in the first directory
    assert listed(host) == {"t": str(other)}  # t, not due, timed again in its own
    assert units(host)[-1].startswith(f"systemd-run --quiet --unit {UNIT} ")
    assert f"--setenv=VPSNET_GUARD_DIR={other} " in units(host)[-1]
