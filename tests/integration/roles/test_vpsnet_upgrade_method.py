"""vpsnet_upgrade and the prebuilt/DKMS choice: the probe's method from the
installed packages, the rollback's restore set (exactly what the host had), and
the real role in check mode against localhost (the shared decision and package
tasks wired in, nothing changed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.vpsnet.fleet.plugins.filter import vpsnet_driver as driver
from ansible_collections.vpsnet.fleet.plugins.modules import vpsnet_upgrade_probe as probe
from testlib.vpsnet_facts_helpers import ansible_env

BIN = Path(sys.executable).parent
K = "6.1.0-57-cloud-amd64"


@pytest.mark.parametrize(
    ("dkms", "kmod", "method", "installed"),
    [(None, None, None, None), ("1.0.0", None, "dkms", "1.0.0"),
     (None, "1.1.0", "prebuilt", "1.1.0"), ("1.0.0", "1.1.0", "prebuilt", "1.1.0")],
)
def test_probe_method(dkms: str | None, kmod: str | None, method: str | None,
                      installed: str | None) -> None:
    st = probe.module_state({"dkms": dkms, "kmod": kmod})
    assert (st["method"], st["installed"]) == (method, installed)
    assert (st["installed_dkms"], st["installed_kmod"]) == (dkms, kmod)


def before(dkms: str | None = None, kmod: str | None = None,
           tools: str | None = None) -> dict[str, str | None]:
    return {"installed_dkms": dkms, "installed_kmod": kmod, "installed_tools": tools}


def installed_after(restore: dict[str, object]) -> set[str]:
    s = driver.package_set({**restore, "kernel": K, "os_family": "Debian"})
    assert not set(s["install"]) & set(s["remove_first"] + s["remove_after"])
    return set(s["install"])


@pytest.mark.parametrize(
    ("had", "version", "want"),
    [
        # prebuilt 1.1.0 -> failed 1.2.0 -> prebuilt 1.1.0, no vpsnet-dkms
        (before(kmod="1.1.0", tools="1.1.0"), "1.1.0",
         {f"vpsnet-kmod-{K}=1.1.0", "vpsnet-tools=1.1.0"}),
        # a DKMS host stays DKMS (the failed step went prebuilt)
        (before(dkms="1.0.0", tools="1.0.0"), "1.0.0", {"vpsnet-dkms=1.0.0", "vpsnet-tools=1.0.0"}),
        # both installed before: both put back
        (before(dkms="1.0.0", kmod="1.0.0", tools="1.0.0"), "1.0.0",
         {"vpsnet-dkms=1.0.0", f"vpsnet-kmod-{K}=1.0.0", "vpsnet-tools=1.0.0"}),
        # no vpsnet before: none after
        (before(), "", set()),
        # the loaded version wins over an installed one (an interrupted earlier step)
        (before(kmod="1.2.0", tools="1.2.0"), "1.1.0",
         {f"vpsnet-kmod-{K}=1.1.0", "vpsnet-tools=1.1.0"}),
        # a module loaded without packages: DKMS and tools at that version, as before
        (before(), "1.0.0", {"vpsnet-dkms=1.0.0", "vpsnet-tools=1.0.0"}),
    ],
)
def test_restore_set_is_exactly_what_the_host_had(had: dict[str, str | None], version: str,
                                                  want: set[str]) -> None:
    restore = driver.restore_set(had, version)
    assert installed_after(restore) == want
    assert restore["headers"] is False


def test_restore_removes_what_the_failed_step_added() -> None:
    s = driver.package_set({**driver.restore_set(before(dkms="1.0.0", tools="1.0.0"), "1.0.0"),
                            "kernel": K, "os_family": "Debian"})
    assert s["remove_first"] == [f"vpsnet-kmod-{K}"]  # before vpsnet-dkms is reinstalled


PLAY = """\
- hosts: localhost
  gather_facts: false
  roles:
    - role: vpsnet_upgrade
      vars:
        vpsnet_upgrade_version: "1.1.0"
        vpsnet_upgrade_method: "{method}"
        vpsnet_upgrade_update_cache: false
        vpsnet_upgrade_report_dir: "{report}"
  post_tasks:
    - name: Show the choice
      ansible.builtin.debug:
        msg: "METHOD={{{{ __vpsnet_upgrade_method }}}} NEEDED={{{{ __vpsnet_upgrade_needed }}}}"
"""


@pytest.mark.skipif(not Path("/etc/debian_version").exists(), reason="apt host")
@pytest.mark.parametrize("method", ["auto", "prebuilt"])
def test_role_in_check_mode_changes_nothing(tmp_path: Path, method: str) -> None:
    """This machine has no vpsnet repository: check mode assumes (auto: DKMS) and
    reports the install as a change; nothing is written, no report either."""
    play = tmp_path / "play.yml"
    play.write_text(PLAY.format(method=method, report=tmp_path / "report"))
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local", "--check", "--diff",
         "-e", f"ansible_python_interpreter={sys.executable}", str(play)],
        capture_output=True, text=True, env=ansible_env(tmp_path), timeout=300, check=False,
        cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    want = "dkms" if method == "auto" else "prebuilt"
    assert f"METHOD={want} NEEDED=True" in out, out[-4000:]
    assert "check mode: the package index knows no vpsnet-tools" in out
    assert not (tmp_path / "report").exists()
