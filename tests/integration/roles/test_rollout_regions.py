"""Any number of regions in deploy.yml (one rollout play, the plan's steps as its serial),
run by ansible-playbook on local hosts with the stub vpsnet_upgrade role: regions of
different sizes in the declared order, whatever the inventory order; each region's
canary alone first, then its batches, never a batch across two regions; a failure in
the second region's batch rolls that step back and stops every later step; 12 regions;
the playbooks from a checkout's wrappers and as the collection's vpsnet.fleet.*."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from testlib.vpsnet_facts_helpers import REPO, ansible_env
from testlib.vpsnet_rollout_helpers import BIN, LOCAL_VARS, logged, run_playbook, step_order

# Inventory order mixes the regions; each region's first host in it is its canary.
HOSTS = ["e2", "w3", "n1", "w1", "e1", "w6", "e5", "w2", "e3", "n2", "w5", "e4", "w4"]
REGION = {"w": "west", "e": "east", "n": "north"}
INVENTORY = {"all": {
    "vars": {**LOCAL_VARS, "vpsnet_rollout_regions": ["west", "east", "north"]},
    "hosts": {h: {"vpsnet_region": REGION[h[0]]} for h in HOSTS},
}}
# [1, "50%"]: west's 5 after its canary go 1, int(0.5 * 5) = 2, 2; east's 4 go 1, 2, 1
STEPS = ["w3", "w1", "w2,w4", "w5,w6", "e2", "e1", "e3,e4", "e5", "n1", "n2"]
BATCHES = ["-e", '{"vpsnet_rollout_batches": [1, "50%"]}']


def deploy(tmp_path: Path, *args: str,
           inventory: dict[str, Any] | None = None) -> tuple[subprocess.CompletedProcess[str],
                                                            list[list[str]]]:
    return run_playbook(tmp_path, "deploy.yml", inventory or INVENTORY,
                        "-e", "vpsnet_version=1.1.0", *args)


def plan_lines(stdout: str) -> list[str]:
    """The plan as the playbook shows it (one "region: hosts" per step)."""
    start = stdout.index("Show the plan")
    block = stdout[start:stdout.index("TASK [", start)]
    return re.findall(r'^\s*"([^"]+: [^"]+)",?$', block, re.MULTILINE)


def test_three_regions_canary_first_then_batches_in_declared_order(tmp_path: Path) -> None:
    proc, steps = deploy(tmp_path, *BATCHES)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert step_order(steps) == STEPS
    # every host ran in its own step, once, in that order
    assert [s[0] for s in steps if "," not in s[3]] == [s for s in STEPS if "," not in s]
    assert sorted(s[0] for s in steps) == sorted(HOSTS)
    assert plan_lines(proc.stdout) == [f"{REGION[s[0]]}: {s}" for s in STEPS]
    assert logged(tmp_path, "confirm")[:2] == ["w3", "w1"] and logged(tmp_path, "rollback") == []


def test_a_failure_in_the_second_regions_batch_stops_everything_after_it(
        tmp_path: Path) -> None:
    proc, steps = deploy(tmp_path, *BATCHES, "-e", json.dumps({"vpsnet_test_fail": ["e3"]}))
    assert proc.returncode != 0
    ran = step_order(steps)
    assert ran == STEPS[:STEPS.index("e3,e4") + 1], proc.stdout[-3000:]
    # the failed step is rolled back as a whole; nothing before it is, nothing after it ran
    assert sorted(logged(tmp_path, "rollback")) == ["e3", "e4"], proc.stdout[-3000:]
    assert sorted(logged(tmp_path, "confirm")) == ["e1", "e2", "w1", "w2", "w3", "w4", "w5", "w6"]
    assert "Summarise the rollout" not in proc.stdout


def test_twelve_regions(tmp_path: Path) -> None:
    regions = [f"reg{i:02d}" for i in range(12)]
    sizes = [2, 1, 3, 1, 2, 1, 1, 2, 1, 1, 3, 1]
    hosts = {f"{r}h{j}": {"vpsnet_region": r}
             for r, n in zip(regions, sizes, strict=True) for j in range(n)}
    declared = regions[5:] + regions[:5]
    inventory = {"all": {"vars": {**LOCAL_VARS, "vpsnet_rollout_regions": declared},
                         "hosts": hosts}}
    proc, steps = deploy(tmp_path, "-e", '{"vpsnet_rollout_batches": ["100%"]}',
                         inventory=inventory)
    assert proc.returncode == 0, proc.stdout[-3000:]
    expected = []
    for r, n in sorted(zip(regions, sizes, strict=True), key=lambda rn: declared.index(rn[0])):
        expected.append(f"{r}h0")
        if n > 1:
            expected.append(",".join(f"{r}h{j}" for j in range(1, n)))
    assert step_order(steps) == expected
    assert len(expected) == 17  # 12 canaries, 5 regions with more hosts


def test_an_unapproved_later_region_is_not_started(tmp_path: Path) -> None:
    proc, steps = deploy(tmp_path, *BATCHES, "-e", '{"vpsnet_rollout_approve_regions": true}')
    assert proc.returncode != 0
    assert step_order(steps) == STEPS[:4], proc.stdout[-3000:]
    assert "region east not approved" in " ".join(proc.stdout.split())


@pytest.mark.parametrize("book", [
    "deploy.yml", "provision.yml", "rollback.yml",
    "playbooks/deploy.yml", "playbooks/provision.yml", "playbooks/rollback.yml",
    "molecule/rollout/converge.yml", "molecule/rollout/prepare.yml", "molecule/kvm/converge.yml",
])
def test_syntax(book: str, tmp_path: Path) -> None:
    proc, _ = run_playbook(tmp_path, book, INVENTORY, "--syntax-check")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


@pytest.mark.parametrize("book", ["vpsnet.fleet.deploy", str(REPO / "deploy.yml")])
def test_records_default_to_the_current_directory(tmp_path: Path, book: str) -> None:
    """The collection's playbook by its name (found through the collection path) and the
    checkout's wrapper: the records go to rollout-report/ in the directory
    ansible-playbook runs in, never into the collection. No vpsnet_version: the plan
    play stops right after choosing the directory, before any host changes."""
    inv = tmp_path / "inv.json"
    inv.write_text(json.dumps(INVENTORY))
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-v", "-i", str(inv), book],
                          cwd=tmp_path, env=ansible_env(tmp_path), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0
    assert "vpsnet_version is not set" in proc.stdout, proc.stdout[-3000:]
    out = " ".join(proc.stdout.split())
    assert f"__vpsnet_rollout_report_dir: {tmp_path.resolve()}/rollout-report" in out or \
        f'"__vpsnet_rollout_report_dir": "{tmp_path.resolve()}/rollout-report"' in out, \
        proc.stdout[-3000:]
