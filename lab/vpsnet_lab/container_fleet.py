"""The 12-region systemd container fleet of tests/molecule/test_molecule_regions.py: its regions and
hosts, the image with vpsnet 1.0.0 baked in (built once per content hash), the
systemd containers (started and removed with docker), the inventory, and what a
container has installed. Imported by that test and bench/rollout_scale.py."""

from __future__ import annotations

import fcntl
import hashlib
import json
import shlex
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import yaml

from vpsnet_lab.paths import TOP

REPO = TOP
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


def _run_containers(hosts: Iterable[Host], image: str) -> None:
    """One systemd container per host (any left from an earlier run removed first)."""
    hosts = list(hosts)
    remove(hosts)
    for h in hosts:
        subprocess.run([*DOCKER_RUN, "--name", h.name, "--hostname", h.name, image,
                        "/usr/local/sbin/vpsnet-container-init"],
                       capture_output=True, text=True, check=True, timeout=300)


# systemd booted (its bus up first; provision.yml waits for the same), then on hosts with the
# exporter: enabled, started and serving, as the vpsnet_exporter role leaves it
# (its check: vpsnet_up on /metrics).
_BOOTED = ("i=0; until [ -S /run/systemd/private ]; do i=$((i+1)); "
           '[ $i -gt 600 ] && { echo "no systemd bus"; exit 1; }; sleep 0.1; done; '
           "state=$(systemctl is-system-running --wait); "
           'case "$state" in running|degraded) ;; *) echo "systemd: $state"; exit 1;; esac')
_SERVING = f"""
import time, urllib.request
end = time.monotonic() + 60
while True:
    try:
        with urllib.request.urlopen("http://127.0.0.1:{EXPORTER_PORT}/metrics", timeout=5) as r:
            if b"vpsnet_up " in r.read():
                break
    except OSError:
        pass
    if time.monotonic() > end:
        raise SystemExit("vpsnet-exporter does not answer on port {EXPORTER_PORT}")
    time.sleep(0.3)
"""
_EXPORTER_ON = (" && systemctl enable --now vpsnet-exporter.service"
                f" && python3 -c {shlex.quote(_SERVING)}")


# Each booted container's systemd, journald, logind and dbus hold inotify
# instances, all root's: past fs.inotify.max_user_instances (often 128, about 24
# containers) systemd exits at boot.
INOTIFY_PER_CONTAINER = 5


def start(hosts: list[Host], image: str) -> None:
    """A booted container per host from IMAGE (baked_image()), the exporter on where
    the host has it; all at once. Raises naming the first host not ready."""
    limit = int(Path("/proc/sys/fs/inotify/max_user_instances").read_text())
    if len(hosts) * INOTIFY_PER_CONTAINER > limit:
        raise RuntimeError(
            f"fs.inotify.max_user_instances is {limit}: {len(hosts)} systemd containers need "
            f"about {len(hosts) * INOTIFY_PER_CONTAINER} (sysctl -w "
            f"fs.inotify.max_user_instances={2 * len(hosts) * INOTIFY_PER_CONTAINER})")
    _run_containers(hosts, image)
    procs = [subprocess.Popen(["docker", "exec", h.name, "sh", "-c",
                               _BOOTED + (_EXPORTER_ON if h.exporter else "")],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for h in hosts]
    failed = []
    for h, proc in zip(hosts, procs, strict=True):
        out, _ = proc.communicate(timeout=300)
        if proc.returncode != 0:
            failed.append(f"{h.name}: {out.strip()[-500:]}")
    if failed:
        raise RuntimeError("containers not ready: " + "; ".join(failed))


def remove(hosts: Iterable[Host]) -> None:
    _docker("rm", "-f", "-v", *(h.name for h in hosts), check=False)


def _fleet_vars() -> dict[str, object]:
    """The inventory's vars but the repository's path."""
    return {
        "ansible_connection": "community.docker.docker",
        "ansible_python_interpreter": "/usr/bin/python3",
        # root already; the images have no sudo
        "ansible_become_method": "ansible.builtin.su",
        "vpsnet_repo_url": "file:///srv/vpsnet-repo",
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


def inventory(hosts: list[Host], repo_dir: Path, path: Path,
              extra: dict[str, object] | None = None) -> Path:
    """The fleet's inventory: a group per region, vpsnet_region per host; EXTRA
    added to (or overriding) the group all's vars."""
    groups: dict[str, dict[str, object]] = {}
    for h in hosts:
        group = groups.setdefault("region_" + h.region.replace("-", "_"),
                                  {"hosts": {}, "vars": {"vpsnet_region": h.region}})
        hosts_of = group["hosts"]
        assert isinstance(hosts_of, dict)
        hosts_of[h.name] = {"vpsnet_regions_exporter": h.exporter}
    all_vars = {**_fleet_vars(), "vpsnet_regions_repo_dir": str(repo_dir),
                "vpsnet_repo_key_src": str(repo_dir / "vpsnet-archive-keyring.asc"),
                **(extra or {})}
    path.write_text(yaml.safe_dump({"all": {"vars": all_vars, "children": groups}}))
    return path


# What the baked image is made of besides molecule's image and the repository:
# a change to any of them bakes a new one. BAKE_REVISION: the steps of baked_image().
BAKE_INPUTS = ("molecule/regions/provision.yml", "roles/vpsnet_inputs", "roles/vpsnet_repo",
               "roles/vpsnet_driver", "roles/vpsnet_exporter", "plugins")
BAKE_REVISION = "1"


def _digest(h: hashlib._Hash, root: Path) -> None:
    files = sorted(f for f in root.rglob("*") if f.is_file() and "__pycache__" not in f.parts)
    for f in files if root.is_dir() else [root]:
        h.update(f"{f.relative_to(root) if root.is_dir() else root.name}\0".encode())
        h.update(f.read_bytes())


def baked_tag(base_image: str, repo_dir: Path) -> str:
    """vpsnet-regions:HASH, the hash over BASE_IMAGE's id, the repository's files,
    BAKE_INPUTS and the inventory vars provision.yml runs with."""
    h = hashlib.sha256(BAKE_REVISION.encode())
    h.update(_docker("image", "inspect", "-f", "{{.Id}}", base_image).stdout.encode())
    h.update(json.dumps(_fleet_vars(), sort_keys=True).encode())
    for root in (repo_dir, *(REPO / p for p in BAKE_INPUTS)):
        _digest(h, root)
    return f"vpsnet-regions:{h.hexdigest()[:16]}"


def baked_image(base_image: str, repo_dir: Path, env: dict[str, str]) -> str:
    """BASE_IMAGE with the repository in /srv/vpsnet-repo and vpsnet 1.0.0
    installed by provision.yml on one container, then `docker commit`; built once
    per baked_tag(). The exporter is installed and configured by its role but
    disabled (vpsnet_exporter_enabled: false): start() turns it on per host."""
    tag = baked_tag(base_image, repo_dir)
    if _docker("image", "inspect", tag, check=False).returncode == 0:
        return tag
    cache = REPO / ".cache" / "molecule-regions"
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / "bake.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one baker at a time (parallel sessions)
        if _docker("image", "inspect", tag, check=False).returncode == 0:
            return tag
        host = Host("vpsnet-regions-bake", REGIONS[0], exporter=True)
        _run_containers([host], base_image)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                inv = inventory([host], repo_dir, Path(tmp) / "inventory.yml",
                                {"vpsnet_exporter_enabled": False})
                prov = subprocess.run(
                    ["ansible-playbook", "-i", str(inv), "molecule/regions/provision.yml"],
                    cwd=REPO, env=env, capture_output=True, text=True, timeout=1800, check=False)
            if prov.returncode != 0:
                raise RuntimeError(f"baking {tag}: provision.yml failed\n{prov.stdout[-6000:]}")
            # An empty machine-id: systemd gives each container its own at boot
            # (not a first boot: no presets applied). /run is a tmpfs: not committed.
            _docker("exec", host.name, "sh", "-c",
                    ": >/etc/machine-id && ln -sf /etc/machine-id /var/lib/dbus/machine-id")
            _docker("stop", host.name)
            _docker("commit", host.name, tag)
        finally:
            remove([host])
    return tag


def installed(host: Host) -> str:
    """The vpsnet-tools version installed in the container ('' when none)."""
    proc = _docker("exec", host.name, "dpkg-query", "-W", "-f", "${Version}", "vpsnet-tools",
                   check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def exporter_active(host: Host) -> bool:
    proc = _docker("exec", host.name, "systemctl", "is-active", "vpsnet-exporter.service",
                   check=False)
    return proc.stdout.strip() == "active"


def machine_id(host: Host) -> str:
    return _docker("exec", host.name, "cat", "/etc/machine-id").stdout.strip()


def span(rec: dict[str, object]) -> tuple[float, float]:
    """A host record's step as (start, end), epoch seconds."""
    start = datetime.fromisoformat(str(rec["started"])).timestamp()
    return start, start + float(str(rec["seconds"]))


def records(report_dir: Path) -> dict[str, dict[str, object]]:
    """The per-host records of a run, by host."""
    out = {}
    for f in sorted((report_dir / "hosts").glob("*.json")):
        rec = json.loads(f.read_text())
        out[str(rec["host"])] = rec
    return out
