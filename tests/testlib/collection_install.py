"""vpsnet.fleet built by `make collection`'s script and installed with ansible-galaxy
into a temporary directory, with the environment and ansible.cfg that run its playbooks
from that install alone. Used by tests/integration/collection and tests/molecule."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
VERSION = (REPO / "VERSION").read_text().strip()
THIRD_PARTY = REPO / ".cache" / "collections" / "ansible_collections"


@dataclass(frozen=True)
class Install:
    tarball: Path
    collection: Path  # TMP/install/ansible_collections/vpsnet/fleet
    cwd: Path  # outside the repository, holds the run's ansible.cfg
    env: dict[str, str]


def run(cmd: list[str], env: dict[str, str], cwd: Path,
        timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)


def clean_env(tmp: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """BASE (default: this process's environment) with this venv first on PATH and no
    ANSIBLE_* or PYTHONPATH (make test exports the checkout's collections and roles
    paths, which would hide the install)."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if not k.startswith("ANSIBLE_") and k != "PYTHONPATH"}
    env.update({
        "PATH": os.pathsep.join([str(BIN), env.get("PATH", "")]),
        "ANSIBLE_HOME": str(tmp / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
    })
    return env


def install_collection(tmp: Path, base_env: dict[str, str] | None = None) -> Install:
    """Build the tarball into TMP/dist, install it offline into TMP/install, and write
    TMP/cwd/ansible.cfg: collections from that install and the unpacked third-party
    ones (every namespace but vpsnet), an empty roles path."""
    env = clean_env(tmp, base_env)
    built = run(["bash", str(REPO / "scripts" / "build-collection.sh"), str(tmp / "dist")],
                env, tmp)
    assert built.returncode == 0, built.stderr
    tarball = tmp / "dist" / f"vpsnet-fleet-{VERSION}.tar.gz"
    installed = run([str(BIN / "ansible-galaxy"), "collection", "install", str(tarball),
                     "-p", str(tmp / "install"), "--no-deps", "--offline", "--force"], env, tmp)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    third_party = tmp / "third-party" / "ansible_collections"
    third_party.mkdir(parents=True)
    for namespace in sorted(THIRD_PARTY.iterdir()):
        if namespace.name != "vpsnet":
            (third_party / namespace.name).symlink_to(namespace)
    cwd = tmp / "cwd"
    (cwd / "roles").mkdir(parents=True)
    cfg = cwd / "ansible.cfg"
    cfg.write_text(
        "[defaults]\n"
        f"collections_path = {tmp / 'install'}:{third_party.parent}\n"
        f"roles_path = {cwd / 'roles'}\n"
        "interpreter_python = auto_silent\n")
    env["ANSIBLE_CONFIG"] = str(cfg)
    return Install(tarball, tmp / "install" / "ansible_collections" / "vpsnet" / "fleet", cwd, env)
