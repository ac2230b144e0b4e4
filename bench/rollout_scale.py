"""Rollout cost against fleet size (issue 23): deploy.yml 1.0.0 -> 1.1.0 on
systemd container fleets of 5, 10, 20 and 40 hosts spread round-robin over the
12 declared regions of lab/vpsnet_lab/container_fleet.py, in one run, each fleet
started from the baked 1.0.0 image (container_fleet.baked_image) and removed after
its run (also on failure). Every run has the same batches setting
(vpsnet_rollout_batches ['100%']: each region's canary, then the rest of the
region in one step), so its steps are the plan's (vpsnet_rollout_plan): one per
region with hosts, plus one per region with two or more. Per run: wall time,
the controller's CPU (ansible-playbook's whole process tree: getrusage
RUSAGE_CHILDREN), the containers' CPU (their cgroups), docker's daemons' CPU and
the machine's, steps and wall per step. Writes results/rollout-scale.json and
the plot results/rollout-scale.png.

    sudo .venv/bin/python bench/rollout_scale.py --hosts 5,10,20,40 --forks 10,50 --regions 12
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ansible.plugins.loader import init_plugin_loader
from ansible.utils.collection_loader import AnsibleCollectionConfig

import vpsnet_lab.container_fleet as rf
from vpsnet_lab.paths import TOP

RESULTS = TOP / "bench" / "results"
BATCHES = ["100%"]
VERSION = "1.1.0"
TARGET_RATIO = 1.5
# the docker side of every `docker exec` the controller's connection makes
DOCKER_DAEMONS = ("dockerd", "containerd", "containerd-shim")


def int_list(text: str) -> list[int]:
    """'5,10,20' -> [5, 10, 20]; every value a positive integer."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"every value must be at least 1: {text!r}")
    return values


def spread(count: int, regions: int) -> list[rf.Host]:
    """COUNT hosts dealt round-robin over the first REGIONS of rf.REGIONS (host i
    in region i mod REGIONS), in inventory order: region by region in declared
    order, each region's hosts by name, its first (-00) its canary. Every host
    runs the exporter (the container gate then waits for the new release's)."""
    if not 1 <= regions <= len(rf.REGIONS):
        raise ValueError(f"--regions must be 1..{len(rf.REGIONS)}, not {regions}")
    per_region = [count // regions + (r < count % regions) for r in range(regions)]
    return [rf.Host(f"vpsnet-scale-{r:02d}-{rf.REGIONS[r]}-{k:02d}", rf.REGIONS[r], True)
            for r in range(regions) for k in range(per_region[r])]


def plan_steps(hosts: list[rf.Host], regions: int) -> list[int]:
    """The serial step sizes deploy.yml will run: the rollout plan's own filter."""
    # through Ansible's own collection loader, as the playbook finds the filter
    if not AnsibleCollectionConfig.collection_finder:
        init_plugin_loader([str(TOP / ".cache" / "collections")])
    from ansible_collections.vpsnet.fleet.plugins.filter.vpsnet_rollout import (
        vpsnet_rollout_plan,
    )
    hostvars = {h.name: {"vpsnet_region": h.region} for h in hosts}
    plan = vpsnet_rollout_plan([h.name for h in hosts], hostvars,
                               list(rf.REGIONS[:regions]), BATCHES)
    return list(plan["steps"])


def inventory(hosts: list[rf.Host], regions: int, repo_dir: Path, path: Path) -> Path:
    """The regions test's inventory for HOSTS, declaring the first REGIONS regions,
    with the bench's batches setting."""
    written: Path = rf.inventory(hosts, repo_dir, path, {
        "vpsnet_rollout_regions": list(rf.REGIONS[:regions]),
        "vpsnet_rollout_batches": BATCHES,
    })
    return written


def _daemon_cpu() -> float:
    """CPU seconds (user+sys) of docker's daemons and shims so far."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and (proc / "comm").read_text().strip() in DOCKER_DAEMONS:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
                total += int(fields[11]) + int(fields[12])
        except OSError:
            continue  # gone meanwhile
    return total / tick


def _machine_cpu() -> float:
    """CPU seconds every core spent busy so far (/proc/stat: all but idle, iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _container_cpu(hosts: list[rf.Host]) -> float:
    """CPU seconds the containers (and every docker exec in them) used so far."""
    ids = subprocess.run(["docker", "inspect", "-f", "{{.Id}}", *(h.name for h in hosts)],
                         capture_output=True, text=True, check=True).stdout.split()
    total = 0.0
    for cid in ids:
        v1 = Path(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage")
        v2 = [Path(f"/sys/fs/cgroup/docker/{cid}/cpu.stat"),
              Path(f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat")]
        if v1.exists():
            total += int(v1.read_text()) / 1e9
            continue
        stat = next((p for p in v2 if p.exists()), None)
        if stat is None:
            raise RuntimeError(f"no CPU accounting found for container {cid[:12]}")
        usage = dict(line.split() for line in stat.read_text().splitlines())
        total += int(usage["usage_usec"]) / 1e6
    return total


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def record_spans(report_dir: Path) -> tuple[float, float]:
    """(first step's start, last step's end) over a run's per-host records, epoch s."""
    spans = [rf.span(rec) for rec in rf.records(report_dir).values()]
    return min(s for s, _ in spans), max(e for _, e in spans)


def one_run(count: int, forks: int, regions: int, image: str, repo_dir: Path,
            env: dict[str, str], work: Path) -> dict[str, Any]:
    """Start COUNT containers, deploy 1.1.0 with FORKS, measure; containers removed."""
    hosts = spread(count, regions)
    steps = plan_steps(hosts, regions)
    report = work / f"report-{count}-f{forks}"
    inv = inventory(hosts, regions, repo_dir, work / f"inventory-{count}.yml")
    try:
        started = time.monotonic()
        rf.start(hosts, image)
        start_seconds = time.monotonic() - started
        before = (_children_cpu(), _container_cpu(hosts), _daemon_cpu(), _machine_cpu())
        load_before = os.getloadavg()
        wall_start, started = time.time(), time.monotonic()
        proc = subprocess.run(
            ["ansible-playbook", "-f", str(forks), "-i", str(inv), "deploy.yml",
             "-e", f"vpsnet_version={VERSION}", "-e", f"vpsnet_upgrade_report_dir={report}"],
            cwd=TOP, env=env, capture_output=True, text=True, timeout=7200, check=False)
        wall = time.monotonic() - started
        after = (_children_cpu(), _container_cpu(hosts), _daemon_cpu(), _machine_cpu())
        load_after = os.getloadavg()
        (work / f"deploy-{count}-f{forks}.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise RuntimeError(f"deploy.yml on {count} hosts (forks {forks}) failed: "
                               f"{proc.stdout[-3000:]}")
        recs = rf.records(report)
        bad = [h.name for h in hosts if (recs.get(h.name) or {}).get("outcome") != "upgraded"]
        if bad or {rf.installed(h) for h in hosts} != {VERSION}:
            raise RuntimeError(f"{count} hosts: not upgraded to {VERSION}: {bad}")
        first, last = record_spans(report)
    finally:
        rf.remove(hosts)
    per_region = {r: sum(h.region == r for h in hosts) for r in rf.REGIONS[:regions]}
    return {
        "hosts": count, "forks": forks,
        "regions_with_hosts": sum(n > 0 for n in per_region.values()),
        "hosts_per_region": per_region, "steps": len(steps), "step_sizes": steps,
        "wall_seconds": round(wall, 1), "wall_per_step_seconds": round(wall / len(steps), 2),
        # before the first canary: the plan play over every host, and ansible's start
        "plan_seconds": round(first - wall_start, 1),
        "steps_seconds": round(last - first, 1),
        "controller_cpu_seconds": round(after[0] - before[0], 1),
        "containers_cpu_seconds": round(after[1] - before[1], 1),
        "docker_daemons_cpu_seconds": round(after[2] - before[2], 1),
        "machine_cpu_seconds": round(after[3] - before[3], 1),
        "containers_start_seconds": round(start_seconds, 1),
        "load_before": [round(v, 2) for v in load_before],
        "load_after": [round(v, 2) for v in load_after],
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per forks setting: the largest fleet's wall and wall per step over the
    smallest's, and whether the wall ratio meets TARGET_RATIO; the forks setting
    whose ratio is lowest; and for fleets of different sizes but the same number of
    steps, the largest's wall over the smallest's."""
    out: dict[str, Any] = {"target_ratio": TARGET_RATIO, "by_forks": {}}
    for forks in sorted({r["forks"] for r in runs}):
        mine = sorted((r for r in runs if r["forks"] == forks), key=lambda r: r["hosts"])
        small, big = mine[0], mine[-1]
        ratio = round(big["wall_seconds"] / small["wall_seconds"], 2)
        out["by_forks"][str(forks)] = {
            "smallest": small["hosts"], "largest": big["hosts"], "wall_ratio": ratio,
            "steps_ratio": round(big["steps"] / small["steps"], 2),
            "wall_per_step_ratio": round(big["wall_per_step_seconds"]
                                         / small["wall_per_step_seconds"], 2),
            "controller_cpu_ratio": round(big["controller_cpu_seconds"]
                                          / max(small["controller_cpu_seconds"], 0.1), 2),
            "target_met": ratio <= TARGET_RATIO,
        }
    best = min(out["by_forks"].items(), key=lambda kv: kv[1]["wall_ratio"])
    out["closest_forks"] = int(best[0])
    # fleets of different sizes with the same number of steps: hosts alone varied
    out["same_steps"] = []
    for forks, steps in sorted({(r["forks"], r["steps"]) for r in runs}):
        mine = sorted((r for r in runs if (r["forks"], r["steps"]) == (forks, steps)),
                      key=lambda r: r["hosts"])
        if len(mine) > 1:
            ratio = round(mine[-1]["wall_seconds"] / mine[0]["wall_seconds"], 2)
            out["same_steps"].append({
                "forks": forks, "steps": steps, "smallest": mine[0]["hosts"],
                "largest": mine[-1]["hosts"], "wall_ratio": ratio,
                "target_met": ratio <= TARGET_RATIO})
    return out


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (wall_ax, cpu_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    for forks in sorted({r["forks"] for r in runs}):
        mine = sorted((r for r in runs if r["forks"] == forks), key=lambda r: r["hosts"])
        xs = [r["hosts"] for r in mine]
        wall_ax.plot(xs, [r["wall_seconds"] for r in mine], "o-", label=f"forks {forks}")
        for r in mine:
            wall_ax.annotate(f"{r['steps']} steps", (r["hosts"], r["wall_seconds"]),
                             textcoords="offset points", xytext=(4, -10), fontsize=7)
        cpu_ax.plot(xs, [r["controller_cpu_seconds"] for r in mine], "o-",
                    label=f"controller, forks {forks}")
        cpu_ax.plot(xs, [r["containers_cpu_seconds"] for r in mine], "s--",
                    label=f"containers, forks {forks}")
    small = min(runs, key=lambda r: r["hosts"])
    wall_ax.axhline(small["wall_seconds"] * TARGET_RATIO, color="grey", ls=":",
                    label=f"target: {TARGET_RATIO}x the {small['hosts']}-host wall")
    wall_ax.set(xlabel="hosts", ylabel="deploy.yml wall (s)", ylim=(0, None),
                title=f"wall time ({len(small['hosts_per_region'])} regions, batches {BATCHES})")
    cpu_ax.set(xlabel="hosts", ylabel="CPU seconds (user+sys)", ylim=(0, None),
               title="CPU during deploy.yml")
    for ax in (wall_ax, cpu_ax):
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{TOP / '.venv' / 'bin'}:{env.get('PATH', '')}"
    env.update(ANSIBLE_ROLES_PATH=str(TOP / "roles"), ANSIBLE_FORCE_COLOR="0", NO_COLOR="1",
               ANSIBLE_COLLECTIONS_PATH=str(TOP / ".cache" / "collections"))
    return env


def _last_line(cmd: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run(cmd, cwd=TOP, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr[-2000:]}")
    return proc.stdout.strip().splitlines()[-1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("--hosts", type=int_list, default=[5, 10, 20, 40])
    ap.add_argument("--forks", type=int_list, default=[10],
                    help="ansible-playbook -f; a list runs every size with each")
    ap.add_argument("--regions", type=int, default=len(rf.REGIONS))
    ap.add_argument("--out", type=Path, default=RESULTS / "rollout-scale.json")
    ap.add_argument("--plot", type=Path, default=RESULTS / "rollout-scale.png")
    ap.add_argument("--merge", type=Path,
                    help="an earlier results file: its runs of other sizes/forks are kept")
    args = ap.parse_args(argv)
    if not 1 <= args.regions <= len(rf.REGIONS):
        ap.error(f"--regions must be 1..{len(rf.REGIONS)}, not {args.regions}")
    env = _env()
    base = _last_line(["bash", "scripts/molecule-image.sh"], env)
    repo_dir = Path(_last_line(["bash", "molecule/regions/releases.sh"], env))
    image = rf.baked_image(base, repo_dir, env)
    load = os.getloadavg()
    runs: list[dict[str, Any]] = []
    if args.merge:
        mine = {(h, f) for h in args.hosts for f in args.forks}
        runs = [r for r in json.loads(args.merge.read_text())["runs"]
                if (r["hosts"], r["forks"]) not in mine]
    with tempfile.TemporaryDirectory(prefix="rollout-scale-") as tmp:
        # each size's forks settings back to back: the same load for both
        for count in args.hosts:
            for forks in args.forks:
                run = one_run(count, forks, args.regions, image, repo_dir, env, Path(tmp))
                print(json.dumps(run), flush=True)
                runs.append(run)
                write(args, image, load, runs)
    write(args, image, load, runs)
    plot(runs, args.plot)
    return 0


def write(args: argparse.Namespace, image: str, load: tuple[float, float, float],
          runs: list[dict[str, Any]]) -> None:
    """The results so far (after every run: a later failure keeps them)."""
    runs = sorted(runs, key=lambda r: (r["hosts"], r["forks"]))
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(),
                    "load_before": [round(v, 2) for v in load],
                    "load_after": [round(v, 2) for v in os.getloadavg()]},
        "method": {
            "version": f"1.0.0 -> {VERSION}", "image": image, "batches": BATCHES,
            "regions": list(rf.REGIONS[:args.regions]), "spread": "round-robin",
            "controller_cpu": "getrusage(RUSAGE_CHILDREN) delta over ansible-playbook",
            "containers_cpu": "cgroup CPU accounting of the fleet's containers",
            "docker_daemons_cpu": "/proc utime+stime of " + ", ".join(DOCKER_DAEMONS),
            "machine_cpu": "/proc/stat busy time, every core, everything running",
        },
        "runs": runs, "summary": summarise(runs),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    sys.exit(main())
