"""Unit tests of vpsnet-guard's record (the revert as commands on stdin), arm
--persistent (listed for vpsnet-guard-boot.service under $VPSNET_GUARD_BOOT_DIR),
revert --if-due and boot, against the fake host of testlib.vpsnet_guard_helpers."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from testlib.vpsnet_guard_helpers import (
    GUARD,
    Host,
    units,
)


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)



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
