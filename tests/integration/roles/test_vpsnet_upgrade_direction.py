"""Rollback direction: vpsnet_driver's Debian version order (plugins/filter/vpsnet_driver.py,
cross-checked with dpkg where it exists), the decision a rollback takes from it, and the
real vpsnet_upgrade tasks (tasks/direction.yml, and main.yml in check mode) refusing a
rollback to a newer version before any change."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.vpsnet.fleet.plugins.filter import vpsnet_driver as driver
from testlib.vpsnet_facts_helpers import ansible_env

BIN = Path(sys.executable).parent

# (a, b, sign of a - b), in Debian's order
ORDER = [
    ("1.0.0", "1.0.0", 0),
    ("1.0.0", "1.1.0", -1),
    ("1.10.0", "1.9.0", 1),  # numbers, not text
    ("1.2.0", "1.10.0", -1),
    ("1.1.0~rc1", "1.1.0", -1),  # a release candidate comes before its release
    ("1.1.0~rc2", "1.1.0~rc10", -1),
    ("1.1.0~~", "1.1.0~rc1", -1),
    ("1.1.0+git3", "1.1.0", 1),
    ("1.1.0+git3", "1.1.1", -1),
    ("1.1.0", "1.1", 1),
    ("1.01.0", "1.1.0", 0),
    ("1.1.0-1", "1.1.0-2", -1),  # Debian revisions
    ("1.1.0-10", "1.1.0-9", 1),
    ("1:1.0.0", "2.0.0", 1),  # an epoch wins over everything
    ("1.1.0a", "1.1.0+", -1),  # letters before other characters
]


@pytest.mark.parametrize(("a", "b", "sign"), ORDER)
def test_version_order(a: str, b: str, sign: int) -> None:
    assert driver.version_compare(a, b) == sign
    assert driver.version_compare(b, a) == -sign


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="no dpkg to compare with")
def test_version_order_is_dpkgs() -> None:
    for a, b, sign in ORDER:
        op = {-1: "lt", 0: "eq", 1: "gt"}[sign]
        r = subprocess.run(["dpkg", "--compare-versions", a, op, b], check=False)
        assert r.returncode == 0, f"dpkg disagrees: {a} {op} {b}"


@pytest.mark.parametrize("bad", ["", "  ", "x:1.0", None])
def test_no_version_is_an_error_not_an_order(bad: str | None) -> None:
    with pytest.raises(ValueError):
        driver.version_compare(bad, "1.0.0")


@pytest.mark.parametrize(
    ("running", "target", "allowed"),
    [
        ("1.1.0", "1.0.0", True),
        ("1.1.0", "1.1.0", True),  # a re-run of a rollback that got there
        ("1.1.0", "1.1.0~rc1", True),
        ("1.10.0", "1.9.0", True),
        ("1.1.0~rc1", "1.1.0", False),
        ("1.9.0", "1.10.0", False),  # text order would allow it
        ("1.0.0", "1.1.0", False),
    ],
)
def test_rollback_only_goes_back(running: str, target: str, allowed: bool) -> None:
    error = driver.rollback_error(running, target)
    assert (error == "") is allowed, error
    if not allowed:
        assert f"rollback to {target} refused: it is newer than {running}" in error


@pytest.mark.parametrize("running", [None, ""])
def test_nothing_to_roll_back(running: str | None) -> None:
    assert "runs no vpsnet" in driver.rollback_error(running, "1.0.0")


DIRECTION_PLAY = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: The direction check, as main.yml includes it
      ansible.builtin.include_role:
        name: vpsnet_upgrade
        tasks_from: direction
      vars:
        vpsnet_upgrade_version: "1.1.0"
        vpsnet_upgrade_purpose: rollback
    - name: Reached only when allowed
      ansible.builtin.debug:
        msg: "ALLOWED {{ inventory_hostname }}"
"""


def test_direction_tasks_refuse_a_newer_version(tmp_path: Path) -> None:
    """One run, one local host per case: what the role's assert does with each."""
    cases = {"older": "1.2.0", "same": "1.1.0", "newer": "1.0.0", "rc": "1.1.0~rc1",
             "none": ""}
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n" + "".join(
        f"    {name}: {{ansible_connection: local, ansible_python_interpreter: {sys.executable}, "
        f"__vpsnet_upgrade_from: '{running}'}}\n" for name, running in cases.items()))
    play = tmp_path / "play.yml"
    play.write_text(DIRECTION_PLAY)
    env = ansible_env(tmp_path)
    proc = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory), str(play)],
                          capture_output=True, text=True, env=env, timeout=300, check=False,
                          cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-4000:]
    for name in ("older", "same"):
        assert f"ALLOWED {name}" in out, out[-4000:]
    for name in ("newer", "rc", "none"):
        assert f"ALLOWED {name}" not in out, out[-4000:]
    assert "rollback to 1.1.0 refused: it is newer than 1.0.0, the version the host runs" in out
    assert "rollback to 1.1.0 refused: it is newer than 1.1.0~rc1" in out
    assert "the host runs no vpsnet" in out


MAIN_PLAY = """\
- hosts: localhost
  gather_facts: false
  roles:
    - role: vpsnet_upgrade
      vars:
        vpsnet_upgrade_version: "1.1.0"
        vpsnet_upgrade_purpose: rollback
        vpsnet_upgrade_update_cache: false
        vpsnet_upgrade_report_dir: "{report}"
"""


@pytest.mark.skipif(not Path("/etc/debian_version").exists(), reason="apt host")
@pytest.mark.skipif(Path("/sys/module/vpsnet").exists(), reason="vpsnet is loaded here")
def test_the_role_refuses_a_rollback_on_a_host_without_vpsnet(tmp_path: Path) -> None:
    """main.yml wires the check in, after the probe and before anything changes."""
    play = tmp_path / "play.yml"
    play.write_text(MAIN_PLAY.format(report=tmp_path / "report"))
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", "--check",
         "-e", f"ansible_python_interpreter={sys.executable}", str(play)],
        capture_output=True, text=True, env=ansible_env(tmp_path), timeout=300, check=False,
        cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out[-4000:]
    assert "rollback to 1.1.0: the host runs no vpsnet" in out, out[-4000:]
    assert "Refuse a rollback to a version newer than the host runs" in out
    assert "Decide whether the host needs the step" not in out
