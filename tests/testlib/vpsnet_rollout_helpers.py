"""deploy.yml / rollback.yml run for real by ansible-playbook on local hosts with the
stub vpsnet_upgrade role (tests/unit/roles/fixtures/stub_roles), and what the stub
logged; imported by tests/integration/roles/test_rollout_*.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from testlib.vpsnet_facts_helpers import FIXTURES, REPO, ansible_env

BIN = Path(sys.executable).parent
STUB_ROLES = FIXTURES / "stub_roles"
LOCAL_VARS = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
              "vpsnet_rollout_prometheus_url": "", "vpsnet_rollout_soak_seconds": 0}


def run_playbook(tmp_path: Path, book: str, inventory: dict[str, Any],
                 *args: str) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    """ansible-playbook BOOK (a path under the repository) over INVENTORY; each host's
    logged step as [host, version, purpose, its step's hosts joined by ',']."""
    inv = tmp_path / "inv.json"
    inv.write_text(json.dumps(inventory))
    log = tmp_path / "steps.log"
    for old in tmp_path.glob("steps.log*"):
        old.unlink()
    env = ansible_env(tmp_path, ANSIBLE_ROLES_PATH=f"{STUB_ROLES}:{REPO / 'roles'}")
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inv), str(REPO / book),
         "-e", f"vpsnet_test_log={log}", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    steps = [ln.split() for ln in log.read_text().splitlines()] if log.exists() else []
    return proc, steps


def logged(tmp_path: Path, what: str) -> list[str]:
    """Hosts the stub logged as rolled back, confirmed, lost, or recorded."""
    path = tmp_path / f"steps.log.{what}"
    return path.read_text().splitlines() if path.exists() else []


def step_order(steps: list[list[str]]) -> list[str]:
    """The steps in the order they ran, each as its hosts joined by ','."""
    return list(dict.fromkeys(s[3] for s in steps))
