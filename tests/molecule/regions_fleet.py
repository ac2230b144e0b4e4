"""The 12-region container fleet of test_molecule_regions.py: its regions and
hosts, the systemd containers (started and removed with docker), the inventory,
and what a container has installed. Imported by that test only."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
# Declared rollout order: not alphabetical (the plan must follow the inventory).
REGIONS = (
    "us-east-1", "eu-west-1", "ap-south-1", "sa-east-1", "ca-central-1", "af-south-1",
    "me-south-1", "ap-northeast-1", "eu-north-1", "us-west-2", "il-central-1", "ap-southeast-2",
)
# Regions with a canary and a batch host; the others have one host.
TWO_HOSTS = {"us-east-1", "ap-south-1"}
# The region where release 1.2.0 fails (index in REGIONS, 0-based): its hosts and
# every later region's run the exporter, which 1.2.0 breaks; the regions before
# it run none, so 1.2.0 passes their container gate.
FAIL_REGION = 2
EXPORTER_PORT = 19500
# As molecule/default (no --privileged, no network), without CAP_SYS_PTRACE:
# the exporter then runs with vpsnet_exporter_protect_proc: default.
DOCKER_RUN = [
    "docker", "run", "-d", "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN",
    "--cgroupns", "host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:ro",
    "--tmpfs", "/run", "--tmpfs", "/run/lock", "--network", "none",
    "--stop-signal", "SIGRTMIN+3", "--label", "vpsnet-test=regions",
]


@dataclass(frozen=True)
class Host:
    name: str
    region: str
    exporter: bool


def fleet() -> list[Host]:
    """Every host in inventory order: per region its canary (-a) first."""
    hosts = []
    for i, region in enumerate(REGIONS):
        for suffix in ("a", "b") if region in TWO_HOSTS else ("a",):
            hosts.append(Host(f"vpsnet-reg-{i:02d}-{region}-{suffix}", region, i >= FAIL_REGION))
    return hosts


def _docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check,
                          timeout=300)


def start(hosts: list[Host], image: str) -> None:
    """Start one systemd container per host (any left from an earlier run removed first)."""
    remove(hosts)
    for h in hosts:
        subprocess.run([*DOCKER_RUN, "--name", h.name, "--hostname", h.name, image,
                        "/usr/local/sbin/vpsnet-container-init"],
                       capture_output=True, text=True, check=True, timeout=300)


def remove(hosts: list[Host]) -> None:
    _docker("rm", "-f", "-v", *(h.name for h in hosts), check=False)


def inventory(hosts: list[Host], repo_dir: Path, path: Path) -> Path:
    """The fleet's inventory: a group per region, vpsnet_region per host."""
    groups: dict[str, dict[str, object]] = {}
    for h in hosts:
        group = groups.setdefault("region_" + h.region.replace("-", "_"),
                                  {"hosts": {}, "vars": {"vpsnet_region": h.region}})
        hosts_of = group["hosts"]
        assert isinstance(hosts_of, dict)
        hosts_of[h.name] = {"vpsnet_regions_exporter": h.exporter}
    all_vars = {
        "ansible_connection": "community.docker.docker",
        "ansible_python_interpreter": "/usr/bin/python3",
        # root already; the images have no sudo
        "ansible_become_method": "ansible.builtin.su",
        "vpsnet_regions_repo_dir": str(repo_dir),
        "vpsnet_repo_url": "file:///srv/vpsnet-repo",
        "vpsnet_repo_key_src": str(repo_dir / "vpsnet-archive-keyring.asc"),
        "vpsnet_driver_version": "1.0.0",
        "vpsnet_exporter_install": "package",
        "vpsnet_exporter_listen_address": "127.0.0.1",
        "vpsnet_exporter_port": EXPORTER_PORT,
        "vpsnet_exporter_protect_proc": "default",
        "vpsnet_rollout_regions": list(REGIONS),
        "vpsnet_rollout_prometheus_url": "",
        "vpsnet_rollout_soak_seconds": 1,
        # the repository already holds every release: its index is current
        "vpsnet_upgrade_update_cache": False,
        "vpsnet_upgrade_health_timeout": 30,
    }
    path.write_text(yaml.safe_dump({"all": {"vars": all_vars, "children": groups}}))
    return path


def installed(host: Host) -> str:
    """The vpsnet-tools version installed in the container ('' when none)."""
    proc = _docker("exec", host.name, "dpkg-query", "-W", "-f", "${Version}", "vpsnet-tools",
                   check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def exporter_active(host: Host) -> bool:
    proc = _docker("exec", host.name, "systemctl", "is-active", "vpsnet-exporter.service",
                   check=False)
    return proc.stdout.strip() == "active"


def records(report_dir: Path) -> dict[str, dict[str, object]]:
    """The per-host records of a run, by host."""
    out = {}
    for f in sorted((report_dir / "hosts").glob("*.json")):
        rec = json.loads(f.read_text())
        out[str(rec["host"])] = rec
    return out
