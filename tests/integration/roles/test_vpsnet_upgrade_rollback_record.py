"""vpsnet_upgrade's rollback path (tasks/rollback.yml) on a real ansible-playbook
run against localhost, with stand-ins for modprobe and vpsnet-status and the
step record kept under tmp_path: a failed reinstall of the previous version
is recorded in summary.json (outcome rollback_failed, with the reason) and the
host's step record stays resumable; after a reinstall, the exporter that ran
before the step is checked again and a dead one makes the rollback unhealthy.
The inventory name is not safe in a path: the record's file name is made safe,
nothing is written outside the report directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from testlib.vpsnet_facts_helpers import ansible_env

BIN = Path(sys.executable).parent
HOST = "web-1/../../escaped"
PLAY = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: Roll back as the rescue of a failed step does
      ansible.builtin.include_role:
        name: vpsnet_upgrade
        tasks_from: rollback
"""


def rollback(tmp_path: Path, os_family: str) -> tuple[subprocess.CompletedProcess[str],
                                                     list[dict[str, Any]], Path]:
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for name in ("modprobe", "vpsnet-status"):
        (stubs / name).write_text(f"#!/bin/sh\necho {name} \"$@\" >> {tmp_path}/calls.log\n")
        (stubs / name).chmod(0o755)
    report = tmp_path / "report"
    state = tmp_path / "state"
    state.mkdir()
    extra = {
        "ansible_facts": {"kernel": "6.1.0-test", "os_family": os_family},
        "vpsnet_upgrade_version": "1.1.0", "vpsnet_upgrade_report_dir": str(report),
        "vpsnet_upgrade_exporter_unit": "vpsnet-test-absent.service",
        "vpsnet_upgrade_health_timeout": 1, "vpsnet_upgrade_health_samples": 1,
        "__vpsnet_upgrade_step_record": str(state / "step.json"),
        "__vpsnet_upgrade_resumed": False, "__vpsnet_upgrade_had_module": True,
        "__vpsnet_upgrade_from": "1.0.0", "__vpsnet_upgrade_devices_before": 1,
        "__vpsnet_upgrade_restore": {"dkms": "1.0.0", "kmod": "", "tools": "1.0.0",
                                     "headers": False},
        "__vpsnet_upgrade_before": {"exporter_active": True, "method": "dkms"},
        "__vpsnet_upgrade_health": "not checked", "__vpsnet_upgrade_method": "dkms",
        "__vpsnet_upgrade_abi": {"verdict": "n/a", "findings": []},
        "__vpsnet_upgrade_started": "2026-01-01T00:00:00+00:00",
        "__vpsnet_upgrade_started_ts": 0,
    }
    (tmp_path / "extra.yml").write_text(yaml.safe_dump(extra))
    (tmp_path / "inv.yml").write_text(yaml.safe_dump({"all": {"hosts": {HOST: {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    (tmp_path / "play.yml").write_text(PLAY)
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(tmp_path / "inv.yml"), str(tmp_path / "play.yml"),
         "-e", "@" + str(tmp_path / "extra.yml")],
        capture_output=True, text=True, env=ansible_env(tmp_path, prepend_path=stubs), timeout=300,
        check=False, cwd=tmp_path)
    summary = report / "summary.json"
    records = json.loads(summary.read_text()) if summary.exists() else []
    return proc, records, state / "step.json"


def only_inside(tmp_path: Path) -> None:
    """Nothing named after the host outside the report's hosts/ directory."""
    for path in tmp_path.rglob("*escaped*"):
        assert path.parent == tmp_path / "report" / "hosts", path
    assert not (tmp_path / "escaped.json").exists()


def test_a_failed_reinstall_is_recorded(tmp_path: Path) -> None:
    # RedHat facts on a host without dnf: the reinstall fails (and changes nothing)
    proc, records, step = rollback(tmp_path, "RedHat")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert len(records) == 1, out
    rec = records[0]
    assert rec["host"] == HOST and rec["outcome"] == "rollback_failed", rec
    assert any("reinstall of 1.0.0 failed" in p for p in rec["rollback_problems"]), rec
    assert "rollback to 1.0.0: reinstall of 1.0.0 failed" in " ".join(out.split()), out[-3000:]
    assert json.loads(step.read_text())["phase"] == "rollback_failed"
    # nothing was reloaded on top of a failed reinstall
    calls = (tmp_path / "calls.log").read_text() if (tmp_path / "calls.log").exists() else ""
    assert "modprobe" not in calls, calls
    only_inside(tmp_path)


def test_the_exporter_is_checked_again_after_a_rollback(tmp_path: Path) -> None:
    # no package manager family: nothing to reinstall; the stand-ins reload and gate
    proc, records, step = rollback(tmp_path, "Other")
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    rec = records[0]
    assert rec["outcome"] == "rollback_unhealthy", rec
    assert rec["rollback_problems"] == [
        "the exporter vpsnet-test-absent.service that ran before is not active"], rec
    assert json.loads(step.read_text())["phase"] == "rolled_back"
    calls = (tmp_path / "calls.log").read_text()
    assert "modprobe -r vpsnet" in calls and "vpsnet-status" in calls, calls
    only_inside(tmp_path)
