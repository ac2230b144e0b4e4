"""docs/awx.md's regenerate command, run as documented (a real python process from the
repository root): it reproduces the committed workflow byte for byte, --check passes on
it, and a bad inventory is refused with one line and no file written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TOP = Path(__file__).resolve().parents[3]
COMMITTED = TOP / "awx" / "production-workflow.json"


def generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "awx/vpsnet_awx_workflow.py", *args], cwd=TOP,
                          capture_output=True, text=True, timeout=60, check=False)


def test_documented_command_reproduces_the_committed_workflow(tmp_path):
    out = tmp_path / "workflow.json"
    done = generate("inventories/production/hosts.yml", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == COMMITTED.read_bytes()
    checked = generate("inventories/production/hosts.yml", "--check",
                       "-o", "awx/production-workflow.json")
    assert checked.returncode == 0, checked.stderr


def test_duplicate_region_is_refused_and_nothing_written(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  vars:\n"
                         "    vpsnet_rollout_regions: [eu-west-1, us-east-1, eu-west-1]\n")
    out = tmp_path / "workflow.json"
    done = generate(str(inventory), "-o", str(out))
    assert done.returncode == 2
    assert done.stderr == ("vpsnet_awx_workflow: vpsnet_rollout_regions names 'eu-west-1' "
                           "more than once\n")
    assert done.stdout == "" and not out.exists()
