"""The vpsnet.fleet collection as a user gets it: scripts/build-collection.sh (make
collection) builds the tarball into a temporary directory, ansible-galaxy installs it
offline, and ansible-playbook runs the collection's playbooks from that install alone
(cwd outside the repository, its own ansible.cfg, no roles_path, and on the collections
path only the third-party collections, never the checkout's vpsnet.fleet link), and
ansible-lint's production profile passes on the install."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from testlib.collection_install import BIN, Install, install_collection, run

REPO = Path(__file__).resolve().parents[3]
VERSION = (REPO / "VERSION").read_text().strip()

# What the roles and playbooks need at run time: the collection's own directories and
# files, and the two trees the roles read through role_path/../.. (the exporter role
# copies tools/vpsnet_tools to hosts and installs the unit; vpsnet_inputs reads
# tools/vpsnet_tools/release_version.py).
RUNTIME_PATHS = ["roles", "playbooks", "plugins", "meta", "changelogs", "docs", "README.md",
                 "LICENSE", "CHANGELOG.rst", "tools/vpsnet_tools",
                 "packaging/systemd/vpsnet-exporter.service"]
DEV_TREE = ["tests", "lab", "bench", "driver-src", "molecule", ".cache", "inventories",
            "scripts", "awx", "ee", "Makefile", "galaxy.yml"]
PLAYBOOKS = ["deploy", "provision", "rollback"]

INVENTORY = {
    "all": {
        "vars": {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            "vpsnet_rollout_prometheus_url": "http://127.0.0.1:9",
            "vpsnet_rollout_regions": ["test-1"],
        },
        "hosts": {"edge-1": {"vpsnet_region": "test-1"}},
    },
}


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Install:
    return install_collection(tmp_path_factory.mktemp("collection"))


def _tar_files(tarball: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(tarball) as tar:
        return {m.name: m for m in tar.getmembers() if not m.isdir()}


def _committed(paths: list[str]) -> set[str]:
    out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--", *paths],
                         capture_output=True, text=True, check=True).stdout
    return {p for p in out.split("\0") if p}


def test_galaxy_version_is_the_release_in_version() -> None:
    galaxy = yaml.safe_load((REPO / "galaxy.yml").read_text())
    assert str(galaxy["version"]) == VERSION


def test_manifest_names_vpsnet_fleet_at_version(install: Install) -> None:
    with tarfile.open(install.tarball) as tar:
        member = tar.extractfile("MANIFEST.json")
        assert member is not None
        info = json.load(member)["collection_info"]
    assert (info["namespace"], info["name"], info["version"]) == ("vpsnet", "fleet", VERSION)
    assert info["license"] == ["GPL-2.0-only"]


def test_tarball_holds_exactly_the_committed_runtime_files(install: Install) -> None:
    files = set(_tar_files(install.tarball)) - {"MANIFEST.json", "FILES.json"}
    expected = _committed(RUNTIME_PATHS)
    assert sorted(files - expected) == [], "in the tarball, not committed run-time files"
    assert sorted(expected - files) == [], "committed run-time files missing from the tarball"
    for required in ["LICENSE", "CHANGELOG.rst", "README.md", "meta/runtime.yml",
                     "tools/vpsnet_tools/release_version.py",
                     "packaging/systemd/vpsnet-exporter.service"]:
        assert required in files
    leaked = sorted(f for f in files for d in DEV_TREE if f == d or f.startswith(d + "/"))
    assert leaked == []


def test_symlinks_stay_links_inside_the_collection_and_resolve(install: Install) -> None:
    links = {name: m.linkname for name, m in _tar_files(install.tarball).items() if m.issym()}
    assert "roles/vpsnet_tune/files/vpsnet_nic.py" in links
    root = install.collection.resolve()
    for name in links:
        installed = install.collection / name
        assert installed.is_symlink(), name
        target = installed.resolve(strict=True)
        assert target.is_relative_to(root) and target.is_file(), f"{name} -> {target}"


def test_install_is_what_ansible_finds(install: Install) -> None:
    listed = run([str(BIN / "ansible-galaxy"), "collection", "list", "vpsnet.fleet",
                  "--format", "json"], install.env, install.cwd)
    assert listed.returncode == 0, listed.stderr
    found = json.loads(listed.stdout)
    where = str(install.collection.parents[1])  # TMP/install/ansible_collections
    assert list(found) == [where]
    assert found[where]["vpsnet.fleet"]["version"] == VERSION


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_syntax_from_the_install(install: Install, playbook: str) -> None:
    proc = run([str(BIN / "ansible-playbook"), f"vpsnet.fleet.{playbook}", "--syntax-check",
                "-i", "localhost,"], install.env, install.cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"playbook: {install.collection}/playbooks/{playbook}.yml" in proc.stdout


def test_deploy_from_the_install_refuses_a_bad_version_in_the_plan(install: Install) -> None:
    """The plan play's input check (the collection's filters, loaded from the install)
    names the bad value; the failing task comes from the install, nothing changed."""
    inventory = install.cwd / "inventory.yml"
    inventory.write_text(yaml.safe_dump(INVENTORY))
    proc = run([str(BIN / "ansible-playbook"), "vpsnet.fleet.deploy", "-i", str(inventory),
                "-e", "vpsnet_version=not-a-version"], install.env, install.cwd)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "vpsnet_version='not-a-version' is not a version" in out
    plays = re.findall(r"^PLAY \[(.+?)\]", proc.stdout, re.M)
    assert plays[-1] == "Plan the rollout", plays
    origins = re.findall(r"^Origin: (\S+?):\d+:\d+$", proc.stdout, re.M)
    assert origins and all(o.startswith(f"{install.collection}/") for o in origins), origins
    assert f"{REPO}/roles" not in out and f"{REPO}/plugins" not in out
    assert re.search(r"edge-1\s+: ok=\d+\s+changed=0 .*failed=1", proc.stdout), proc.stdout


def test_ansible_lint_production_on_the_install(install: Install) -> None:
    proc = run([str(BIN / "ansible-lint"), "--profile", "production", "--offline", "--nocolor"],
               install.env, install.collection)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "Profile 'production' was required, and it passed" in out
