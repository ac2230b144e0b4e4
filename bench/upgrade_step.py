"""One host's upgrade step, prebuilt against DKMS, on the same lab guest in one run.

A guest of its own (aws, the newest 6.1 kernel, 1 vCPU; state in
.cache/lab-bench-upgrade-step, ports from 16022) and the rollout repository
(molecule/rollout/builds.py: vpsnet 1.0.0 and 1.1.0, prebuilt for the fleet's
kernels and as DKMS source):

1. provision.yml at 1.0.0 (role `auto`: prebuilt)
2. deploy.yml to 1.1.0, prebuilt                     <- the prebuilt step
3. rollback.yml to 1.0.0 with vpsnet_upgrade_method=dkms (DKMS builds 1.0.0)
4. deploy.yml to 1.1.0 with vpsnet_upgrade_method=dkms <- the DKMS step

Each step's seconds are the rollout record's own (`seconds` in summary.json:
install, ABI check, reload and health gate of that host), beside the
playbook's wall time. Targets (issue 19): the prebuilt step at most 1/5 of the
DKMS one and at most 90 s.

Run as root after `make setup`: `.venv/bin/python bench/upgrade_step.py`;
writes bench/results/upgrade_step.json; the playbooks' whole output (with
profile_tasks) goes to .cache/bench-upgrade-step/*.log. The guest is torn down
at the end, also on failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from vpsnet_lab import inventory, molecule_lab
from vpsnet_lab.ansible_env import mitogen_env
from vpsnet_lab.fleet import Lab
from vpsnet_lab.paths import TOP

RESULTS = TOP / "bench" / "results" / "upgrade_step.json"
WORK = TOP / ".cache" / "bench-upgrade-step"
STATE = WORK / "lab"
BASE_PORT = 16022
HOST = "bench-aws61"
TARGET_RATIO, TARGET_SECONDS = 0.2, 90


def spec() -> dict[str, Any]:
    return molecule_lab.scenario_spec("bench-upgrade-step", BASE_PORT, [{
        "name": HOST, "cloud": "aws", "region": "us-east-1", "zone": "us-east-1a",
        "instance_type": "m5.large", "kernel": "6.1", "vcpus": 1, "memory_mb": 1024,
        "nics": [{"queues": 2}]}])


def playbook(name: str, book: str, *args: str) -> tuple[float, list[dict[str, Any]]]:
    """(wall seconds, rollout records) of one ansible-playbook run."""
    report = WORK / f"report-{name}"
    subprocess.run(["rm", "-rf", str(report)], check=True)
    env = dict(os.environ, **mitogen_env(), ANSIBLE_FORCE_COLOR="0",
               PATH=f"{TOP / '.venv' / 'bin'}:{os.environ.get('PATH', '')}",
               ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks")
    started = time.monotonic()
    with (WORK / f"{name}.log").open("w") as log:
        r = subprocess.run(["ansible-playbook", "-i", str(WORK / "hosts.yml"), book,
                            "-e", f"vpsnet_upgrade_report_dir={report}", *args],
                           cwd=TOP, env=env, stdout=log, stderr=subprocess.STDOUT)
    took = time.monotonic() - started
    if r.returncode != 0:
        raise SystemExit(f"{name}: {book} failed (rc={r.returncode}): see {WORK / name}.log")
    summary = report / "summary.json"
    return took, json.loads(summary.read_text()) if summary.exists() else []


def step(name: str, book: str, *args: str) -> dict[str, Any]:
    wall, records = playbook(name, book, *args)
    rec = next((r for r in records if r["host"] == HOST), {})
    out = {"wall_seconds": round(wall, 1), "step_seconds": float(rec.get("seconds", 0)) or None,
           "outcome": rec.get("outcome"), "method": rec.get("method"),
           "before": rec.get("before"), "after": rec.get("after")}
    print(f"{name}: {json.dumps(out)}", flush=True)
    return out


def main() -> None:
    load_before = os.getloadavg()
    WORK.mkdir(parents=True, exist_ok=True)
    # molecule/rollout/builds.py, run as a program, prints the repository's path
    repo = Path(subprocess.run([sys.executable, str(TOP / "molecule/rollout/builds.py")],
                               stdout=subprocess.PIPE, text=True, check=True)
                .stdout.strip().splitlines()[-1])  # the lab group_vars' vpsnet_repo_key_src
    raw = spec()
    molecule_lab.start_repo_server(STATE, repo, BASE_PORT + molecule_lab.REPO_PORT_OFFSET)
    lab: Lab | None = None
    try:
        lab = Lab.up(raw, "<bench-upgrade-step>", state_dir=STATE, boot_timeout=1200,
                     say=lambda m: print(f"[lab] {m}", flush=True))
        # two levels under TOP, as inventories/lab is: its group_vars find the key
        inventory.write(lab.spec, WORK / "hosts.yml")
        (WORK / "group_vars").unlink(missing_ok=True)
        (WORK / "group_vars").symlink_to(TOP / "inventories" / "lab" / "group_vars")
        # the host's own step, without the rollout's soak (the operator's choice of wait)
        no_soak = ("-e", "vpsnet_rollout_soak_seconds=0")
        steps = {
            "provision_prebuilt": step("provision_prebuilt", "provision.yml",
                                       "-e", "vpsnet_version=1.0.0"),
            "upgrade_prebuilt": step("upgrade_prebuilt", "deploy.yml",
                                     "-e", "vpsnet_version=1.1.0", *no_soak),
            "rollback_to_dkms": step("rollback_to_dkms", "rollback.yml",
                                     "-e", "vpsnet_version=1.0.0",
                                     "-e", "vpsnet_upgrade_method=dkms", *no_soak),
            "upgrade_dkms": step("upgrade_dkms", "deploy.yml", "-e", "vpsnet_version=1.1.0",
                                 "-e", "vpsnet_upgrade_method=dkms", *no_soak),
        }
        accel = lab.accel
    finally:
        if lab is not None:
            lab.down()
        molecule_lab.stop_repo_server(STATE)
    pre, dkms = steps["upgrade_prebuilt"], steps["upgrade_dkms"]
    assert (pre["method"], dkms["method"]) == ("prebuilt", "dkms"), (pre, dkms)
    ratio = pre["step_seconds"] / dkms["step_seconds"]
    summary = {
        "accelerator": accel,
        "prebuilt_step_seconds": pre["step_seconds"],
        "dkms_step_seconds": dkms["step_seconds"],
        "ratio_prebuilt_vs_dkms": round(ratio, 3),
        "targets": {"ratio_at_most": TARGET_RATIO, "prebuilt_seconds_at_most": TARGET_SECONDS},
        "within_targets": ratio <= TARGET_RATIO and pre["step_seconds"] <= TARGET_SECONDS,
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    RESULTS.write_text(json.dumps({"summary": summary, "steps": steps,
                                   "cpus": os.cpu_count()}, indent=2) + "\n")
    print(json.dumps(summary, indent=2))

if __name__ == "__main__":
    main()
