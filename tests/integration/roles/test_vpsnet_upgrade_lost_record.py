"""vpsnet_upgrade's tasks/lost.yml on a real ansible-playbook run: each host a
step lost gets its controller record (the one it had, if any, merged with the
outcome 'unreachable' and when it reverts by itself) at its safe file name, and
summary.json covers them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml
from testlib.vpsnet_facts_helpers import ansible_env

BIN = Path(sys.executable).parent
PLAY = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Record the lost hosts as deploy.yml's step does
      ansible.builtin.include_role:
        name: vpsnet_upgrade
        tasks_from: lost
      vars:
        __vpsnet_upgrade_lost: ["web/1", "db-2"]
"""


def test_lost_hosts_are_recorded_at_their_safe_names(tmp_path: Path) -> None:
    report = tmp_path / "report"
    (report / "hosts").mkdir(parents=True)
    (report / "hosts" / "db-2.json").write_text(json.dumps(
        {"host": "db-2", "region": "r1", "outcome": "reloading"}))
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    (tmp_path / "inv.yml").write_text(yaml.safe_dump({"all": {"hosts": {
        "localhost": local,
        "web/1": {**local, "__vpsnet_upgrade_from": "1.0.0",
                  "__vpsnet_upgrade_revert_deadline": "2026-01-01T00:10:00Z"},
        "db-2": local}}}))
    (tmp_path / "play.yml").write_text(PLAY)
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(tmp_path / "inv.yml"),
         str(tmp_path / "play.yml"), "-e", f"vpsnet_upgrade_report_dir={report}"],
        capture_output=True, text=True, env=ansible_env(tmp_path), timeout=300, check=False,
        cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:]
    files = sorted(p.name for p in (report / "hosts").iterdir())
    assert len(files) == 2 and "db-2.json" in files, files
    web = json.loads(next((report / "hosts").glob("web_1-*.json")).read_text())
    assert web["host"] == "web/1" and web["outcome"] == "unreachable", web
    assert web["failure"] == ("lost during the step: it puts 1.0.0 back by itself at "
                              "2026-01-01T00:10:00Z unless a later run confirms it "
                              "(vpsnet-guard upgrade)"), web
    db = json.loads((report / "hosts" / "db-2.json").read_text())
    assert db["region"] == "r1" and db["outcome"] == "unreachable", db
    assert "puts no vpsnet back by itself at ?" in db["failure"], db
    summary = json.loads((report / "summary.json").read_text())
    assert sorted(r["host"] for r in summary) == ["db-2", "web/1"]
