"""`make demo` end to end, timed phase by phase, with Ansible's own per-task
timings (ansible.posix.profile_tasks): the packages and repository, the fleet's
boot, `provision.yml` on the default fleet, the canary `deploy.yml` and each
host's upgrade step as its rollout record says.

Targets on this 2-core machine under TCG (issue 19): `make demo` at most 30 min,
`provision.yml` at most 12 min, a host's upgrade step at most 90 s.

Run as root: `.venv/bin/python bench/demo.py`; writes bench/results/demo.json
and keeps the whole output in .cache/bench-demo.log. Absolute seconds on a
shared machine are noisy: the load average is recorded beside them.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

TOP = Path(__file__).resolve().parents[1]
RESULTS = TOP / "bench" / "results" / "demo.json"
LOG = TOP / ".cache" / "bench-demo.log"
REPORT = TOP / ".cache" / "demo-rollout-report" / "summary.json"
TARGETS = {"demo_seconds": 1800, "provision_seconds": 720, "host_upgrade_step_seconds": 90}
# profile_tasks: "role : task name ------- 12.34s"
TASK_TIME = re.compile(r"^(?P<task>\S.*?) -{3,} (?P<seconds>\d+\.\d+)s$")
ACCEL = re.compile(r"accelerator: (\w+)")


def run_demo() -> tuple[float, list[tuple[float, str]]]:
    """(total seconds, [(seconds since start, line)]) of `make demo`."""
    env = dict(os.environ, ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks",
               PROFILE_TASKS_TASK_OUTPUT_LIMIT="all")
    lines: list[tuple[float, str]] = []
    started = time.monotonic()
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with LOG.open("w") as log, subprocess.Popen(
            ["make", "demo"], cwd=TOP, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            lines.append((time.monotonic() - started, line.rstrip("\n")))
    if proc.returncode != 0:
        raise SystemExit(f"make demo failed (rc={proc.returncode}): see {LOG}")
    return time.monotonic() - started, lines


def phases(lines: list[tuple[float, str]], total: float) -> dict[str, float]:
    """Seconds from each '== phase' banner of scripts/demo.sh to the next."""
    marks = [(t, line[3:]) for t, line in lines if line.startswith("== ")]
    ends = [t for t, _ in marks[1:]] + [total]
    return {name: round(end - t, 1) for (t, name), end in zip(marks, ends, strict=True)}


def playbook_tasks(lines: list[tuple[float, str]], banner: str) -> list[tuple[str, float]]:
    """profile_tasks' table of the playbook run after BANNER."""
    start = next(i for i, (_, line) in enumerate(lines) if line.startswith(f"== {banner}"))
    out = []
    for _, line in lines[start + 1:]:
        if line.startswith("== "):
            break
        if m := TASK_TIME.match(line.strip()):
            out.append((m["task"], float(m["seconds"])))
    return out


def task_summary(tasks: list[tuple[str, float]]) -> dict[str, Any]:
    by_role: defaultdict[str, float] = defaultdict(float)
    for name, seconds in tasks:
        by_role[name.split(" : ")[0] if " : " in name else "(play)"] += seconds
    return {"tasks": len(tasks), "task_seconds": round(sum(s for _, s in tasks), 1),
            "by_role_seconds": {k: round(v, 1) for k, v in
                                sorted(by_role.items(), key=lambda x: -x[1])},
            "slowest": [[n, s] for n, s in sorted(tasks, key=lambda x: -x[1])[:15]]}


def main() -> None:
    load_before = os.getloadavg()
    total, lines = run_demo()
    parts = phases(lines, total)
    provision = next(v for k, v in parts.items() if k.startswith("provision.yml"))
    records = json.loads(REPORT.read_text())
    steps = {r["host"]: float(r["seconds"]) for r in records}
    accel = next((m.group(1) for _, line in lines if (m := ACCEL.search(line))), "unknown")
    summary = {
        "accelerator": accel.lower(),
        "demo_seconds": round(total, 1),
        "provision_seconds": provision,
        "host_upgrade_step_seconds": steps,
        "host_upgrade_step_max_seconds": max(steps.values()),
        "methods": {r["host"]: r.get("method") for r in records},
        "targets": TARGETS,
        "within_targets": {
            "demo": total <= TARGETS["demo_seconds"],
            "provision": provision <= TARGETS["provision_seconds"],
            "host_upgrade_step": max(steps.values()) <= TARGETS["host_upgrade_step_seconds"]},
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    RESULTS.write_text(json.dumps({
        "summary": summary, "phases_seconds": parts, "rollout_records": records,
        "provision_tasks": task_summary(playbook_tasks(lines, "provision.yml")),
        "deploy_tasks": task_summary(playbook_tasks(lines, "deploy.yml")),
        "cpus": os.cpu_count()}, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
