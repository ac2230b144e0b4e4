"""deploy.yml / rollback.yml structure with a stub vpsnet_upgrade role on local
hosts: region order, one canary per region, batches, a failure stopping every
later batch and region, and bad input refused before any host is touched.
Also the vpsnet_rollout_plan filter itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from vpsnet_facts_helpers import REPO, ansible_env, load_role_file

BIN = Path(sys.executable).parent
STUB_ROLES = Path(__file__).parent / "fixtures" / "stub_roles"
INVENTORY = {
    "all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                 "vpsnet_rollout_regions": ["r2", "r1"]},
        "hosts": {
            "a1": {"vpsnet_region": "r1"}, "a2": {"vpsnet_region": "r1"},
            "b1": {"vpsnet_region": "r2"}, "b2": {"vpsnet_region": "r2"},
            "b3": {"vpsnet_region": "r2"}, "b4": {"vpsnet_region": "r2"},
            "b5": {"vpsnet_region": "r2"},
        },
    }
}


def playbook(tmp_path: Path, book: str, *args: str,
             inventory: dict[str, Any] | None = None) -> tuple[subprocess.CompletedProcess[str],
                                                              list[list[str]]]:
    inv = tmp_path / "inv.json"
    inv.write_text(json.dumps(inventory or INVENTORY))
    log = tmp_path / "steps.log"
    log.unlink(missing_ok=True)
    (tmp_path / "steps.log.rollback").unlink(missing_ok=True)
    env = ansible_env(tmp_path, ANSIBLE_ROLES_PATH=f"{STUB_ROLES}:{REPO / 'roles'}")
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inv), str(REPO / book),
         "-e", f"vpsnet_test_log={log}", *args],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    steps = [ln.split() for ln in log.read_text().splitlines()] if log.exists() else []
    return proc, steps


def test_regions_in_declared_order_canary_first_then_batches(tmp_path: Path) -> None:
    proc, steps = playbook(tmp_path, "deploy.yml", "-e", "vpsnet_version=1.1.0")
    assert proc.returncode == 0, proc.stdout[-3000:]
    # r2 first (declared order), canary b1 alone, then 25% of 4 = 1, then the rest; then r1
    assert [s[0] for s in steps][:2] == ["b1", "b2"]
    assert sorted(s[0] for s in steps[2:5]) == ["b3", "b4", "b5"]
    assert [s[0] for s in steps[5:]] == ["a1", "a2"]
    batches = [s[3] for s in steps]
    assert batches[0] == "b1" and batches[1] == "b2" and batches[5] == "a1"
    assert set(batches[2:5]) == {"b3,b4,b5"}
    assert all(s[1:3] == ["1.1.0", "upgrade"] for s in steps)


def test_batches_can_be_overridden(tmp_path: Path) -> None:
    proc, steps = playbook(tmp_path, "deploy.yml", "-e", "vpsnet_version=1.1.0",
                           "-e", '{"vpsnet_rollout_batches": [2, "100%"]}')
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert [s[3] for s in steps[:5]] == ["b1", "b2,b3", "b2,b3", "b4,b5", "b4,b5"]


@pytest.mark.parametrize(("fail", "done"), [
    ("b1", ["b1"]),  # canary of the first region: nothing else is touched
    ("a1", ["b1", "b2", "b3", "b4", "b5", "a1"]),  # second region's canary
    ("b2", ["b1", "b2"]),  # first batch after the canary: later batches untouched
])
def test_a_failed_host_stops_every_later_batch_and_region(tmp_path: Path, fail: str,
                                                          done: list[str]) -> None:
    proc, steps = playbook(tmp_path, "deploy.yml", "-e", "vpsnet_version=1.1.0",
                           "-e", json.dumps({"vpsnet_test_fail": [fail]}))
    assert proc.returncode != 0
    assert sorted(s[0] for s in steps) == sorted(done), proc.stdout[-3000:]
    assert "Summarise the rollout" not in proc.stdout
    # the failed host's whole rescue ran (rollback, then the explicit failure)
    rollback = tmp_path / "steps.log.rollback"
    assert rollback.exists() and rollback.read_text().split() == [fail], proc.stdout[-3000:]
    assert f"stub: {fail} rolled back" in proc.stdout


def test_rollback_pins_a_region(tmp_path: Path) -> None:
    proc, steps = playbook(tmp_path, "rollback.yml", "-e", "vpsnet_version=1.0.0",
                           "-l", "a1,a2")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert [s[:3] for s in steps] == [["a1", "1.0.0", "rollback"], ["a2", "1.0.0", "rollback"]]


@pytest.mark.parametrize(("args", "needle"), [
    (["-e", "vpsnet_version=1.x"], 'vpsnet_version="1.x" (want a version such as 1.1.0'),
    ([], 'vpsnet_version="(not set)"'),
    (["-e", "vpsnet_version=1.1.0", "-e", '{"vpsnet_rollout_batches": ["0%"]}'],
     "'0%' is neither a host count"),
    (["-e", "vpsnet_version=1.1.0", "-e", '{"vpsnet_rollout_regions": ["r2"]}'],
     "host a1 is in region 'r1', which vpsnet_rollout_regions (r2) does not list"),
])
def test_bad_input_touches_no_host(tmp_path: Path, args: list[str], needle: str) -> None:
    proc, steps = playbook(tmp_path, "deploy.yml", *args)
    assert proc.returncode != 0
    assert needle in " ".join(proc.stdout.split()), proc.stdout[-3000:]
    assert steps == []


def plan_filter() -> Any:
    return load_role_file("vpsnet_rollout/filter_plugins/vpsnet_rollout.py",
                          "vpsnet_rollout_filter")


def test_plan_filter() -> None:
    f = plan_filter()
    hv = {"x": {"vpsnet_region": "b"}, "y": {"vpsnet_region": "a"}, "z": {"vpsnet_region": "b"}}
    assert f.vpsnet_rollout_plan(["x", "y", "z"], hv, ["b", "a"]) == {
        "x": "00_canary", "z": "00_rest", "y": "01_canary"}
    hv = {"x": {"vpsnet_region": "c"}, "q": {}}
    errors = f.plan_errors(["x", "q"], hv, ["a", "a"], [0, True])
    assert errors == [
        "vpsnet_rollout_regions names a more than once",
        "vpsnet_rollout_batches: 0 is neither a host count >= 1 nor a percentage 1%..100%",
        "vpsnet_rollout_batches: True is neither a host count >= 1 nor a percentage 1%..100%",
        "host x is in region 'c', which vpsnet_rollout_regions (a, a) does not list",
        "host q has no vpsnet_region",
    ]
