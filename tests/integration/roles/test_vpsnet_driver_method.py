"""Prebuilt or DKMS: the decision, the package set and its shell commands (the host-side
revert's) in plugins/filter/vpsnet_driver.py, which vpsnet_driver and vpsnet_upgrade share,
and tasks/method.yml run for real by ansible-playbook against localhost with a stand-in
apt-cache."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from ansible_collections.vpsnet.fleet.plugins.filter import vpsnet_driver as driver
from testlib.vpsnet_facts_helpers import ansible_env

BIN = Path(sys.executable).parent

K = "6.1.0-57-cloud-amd64"
K612 = "6.12.117+deb12-cloud-amd64"
MADISON = f"""\
vpsnet-tools |      1.1.0 | file:/srv/vpsnet-repo bookworm/main amd64 Packages
vpsnet-tools |      1.0.0 | file:/srv/vpsnet-repo bookworm/main amd64 Packages
vpsnet-kmod-{K} |      1.1.0 | file:/srv/vpsnet-repo bookworm/main amd64 Packages
vpsnet-kmod-{K612} |      1.0.0 | file:/srv/vpsnet-repo bookworm/main amd64 Packages
"""


def choose(requested: str, version: str = "1.1.0", kernel: str = K, available: str = MADISON,
           check_mode: bool = False) -> dict[str, object]:
    return driver.choose_method({"requested": requested, "version": version, "kernel": kernel,
                                 "available": available, "check_mode": check_mode})


def test_parse_available_apt_and_dnf() -> None:
    assert driver.parse_available(MADISON) == {
        "vpsnet-tools": ["1.1.0", "1.0.0"], f"vpsnet-kmod-{K}": ["1.1.0"],
        f"vpsnet-kmod-{K612}": ["1.0.0"]}
    dnf = "vpsnet-tools | 1.1.0\nvpsnet-kmod-5.14.0-427.el9.x86_64 | 1.1.0\n"
    assert driver.parse_available(dnf)["vpsnet-kmod-5.14.0-427.el9.x86_64"] == ["1.1.0"]
    assert driver.parse_available("") == {}
    assert driver.parse_available("N: Unable to locate package vpsnet-kmod-x\n") == {}


@pytest.mark.parametrize(
    ("requested", "version", "kernel", "method"),
    [
        ("auto", "1.1.0", K, "prebuilt"),
        ("auto", "1.0.0", K, "dkms"),  # the repository has the kmod, not at this version
        ("auto", "1.1.0", K612, "dkms"),  # only 1.0.0 for that kernel
        ("auto", "1.0.0", K612, "prebuilt"),
        ("auto", "1.1.0", "6.1.0-47-cloud-amd64", "dkms"),  # kernel outside the matrix
        ("prebuilt", "1.1.0", K, "prebuilt"),
        ("dkms", "1.1.0", K, "dkms"),  # available, but DKMS was asked for
    ],
)
def test_choice(requested: str, version: str, kernel: str, method: str) -> None:
    res = choose(requested, version, kernel)
    assert (res["method"], res["error"]) == (method, "")
    assert res["kmod_package"] == f"vpsnet-kmod-{kernel}"


def test_prebuilt_without_the_package_names_kernel_and_version() -> None:
    res = choose("prebuilt", "1.1.0", K612)
    assert res["error"] == (
        f"vpsnet_driver_method=prebuilt: the repository has no vpsnet-kmod-{K612} at version "
        f"1.1.0 for the running kernel {K612} (it has 1.0.0); use vpsnet_driver_method=auto or "
        "dkms, or publish that package")
    assert "it has none" in str(choose("prebuilt", "1.1.0", "6.1.0-47-cloud-amd64")["error"])


def test_check_mode_on_a_fresh_host_assumes_instead_of_failing() -> None:
    """No vpsnet-tools in the index: the repository is not configured yet."""
    for requested, method in (("auto", "dkms"), ("prebuilt", "prebuilt"), ("dkms", "dkms")):
        res = choose(requested, available="", check_mode=True)
        assert (res["method"], res["error"]) == (method, ""), res
    assert "check mode" in str(choose("auto", available="", check_mode=True)["note"])
    # outside check mode, or with a configured repository, prebuilt is checked for real
    assert choose("prebuilt", available="", check_mode=False)["error"]
    assert choose("prebuilt", kernel=K612, check_mode=True)["error"]


def test_bad_method_is_named() -> None:
    assert "vpsnet_driver_method='kmod'" in str(choose("kmod")["error"])


@pytest.mark.parametrize(
    ("want", "expected"),
    [
        # DKMS host going prebuilt: kmod in first, vpsnet-dkms out after
        ({"dkms": "", "kmod": "1.1.0", "tools": "1.1.0"},
         {"remove_first": [], "install": [f"vpsnet-kmod-{K}=1.1.0", "vpsnet-tools=1.1.0"],
          "remove_after": ["vpsnet-dkms"]}),
        # prebuilt host going DKMS: the running kernel's kmod out before vpsnet-dkms builds
        ({"dkms": "1.1.0", "kmod": "", "tools": "1.1.0"},
         {"remove_first": [f"vpsnet-kmod-{K}"],
          "install": ["vpsnet-dkms=1.1.0", "vpsnet-tools=1.1.0"], "remove_after": []}),
        # a rollback to a host that had both
        ({"dkms": "1.0.0", "kmod": "1.0.0", "tools": "1.0.0"},
         {"remove_first": [], "install": [f"vpsnet-kmod-{K}=1.0.0", "vpsnet-dkms=1.0.0",
                                          "vpsnet-tools=1.0.0"], "remove_after": []}),
        # a rollback to a host that had none
        ({"dkms": "", "kmod": "", "tools": ""},
         {"remove_first": [f"vpsnet-kmod-{K}"], "install": [],
          "remove_after": ["vpsnet-dkms", "vpsnet-tools"]}),
    ],
)
def test_package_set(want: dict[str, str], expected: dict[str, list[str]]) -> None:
    assert driver.package_set({**want, "kernel": K, "os_family": "Debian"}) == expected


def test_package_set_headers_only_for_dkms() -> None:
    want = {"dkms": "1.1.0", "kmod": "", "tools": "1.1.0", "headers": True, "kernel": K,
            "os_family": "Debian"}
    assert driver.package_set(want)["install"][0] == f"linux-headers-{K}"
    assert driver.package_set({**want, "os_family": "RedHat"})["install"][0] == f"kernel-devel-{K}"
    assert driver.package_set({**want, "headers": False})["install"][0] == "vpsnet-dkms=1.1.0"
    prebuilt = {**want, "dkms": "", "kmod": "1.1.0"}
    assert not any("headers" in p for p in driver.package_set(prebuilt)["install"])


def test_package_set_rpm_pins_with_a_dash() -> None:
    res = driver.package_set({"dkms": "", "kmod": "1.1.0", "tools": "1.1.0",
                              "kernel": "5.14.0-427.el9.x86_64", "os_family": "RedHat"})
    assert res["install"] == ["vpsnet-kmod-5.14.0-427.el9.x86_64-1.1.0", "vpsnet-tools-1.1.0"]


# --------------------------------------------------------------------------- method.yml for real

PLAY = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - name: The facts the decision reads
      ansible.builtin.setup:
        gather_subset: ["!all", "!min", kernel, os_family]
    - name: The shared decision
      ansible.builtin.include_role:
        name: vpsnet_driver
        tasks_from: method
      vars:
        vpsnet_driver_method: "{method}"
        vpsnet_driver_version: "{version}"
    - name: Show it
      ansible.builtin.debug:
        msg: "METHOD={{{{ vpsnet_driver_method_used }}}} PKG={{{{ vpsnet_driver_kmod_package }}}}"
"""
HERE = os.uname().release  # the kernel the playbook's facts report


def run_method(tmp_path: Path, method: str, version: str, madison: str) -> tuple[int, str]:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "madison.txt").write_text(madison)
    # prints the lines of the packages asked for, like apt-cache madison
    (fake / "apt-cache").write_text(
        "#!/bin/sh\nshift\nfor p; do grep -F \"$p |\" " + json.dumps(str(fake / "madison.txt"))
        + "; done\nexit 0\n")
    (fake / "apt-cache").chmod(0o755)
    play = tmp_path / "play.yml"
    play.write_text(PLAY.format(method=method, version=version))
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}", str(play)],
        capture_output=True, text=True, env=ansible_env(tmp_path, prepend_path=fake),
        timeout=300, check=False, cwd=tmp_path)
    return proc.returncode, proc.stdout + proc.stderr


pytestmark_debian = pytest.mark.skipif(not Path("/etc/debian_version").exists(),
                                       reason="the play asks apt-cache (Debian)")


@pytestmark_debian
def test_method_yml_auto_picks_prebuilt(tmp_path: Path) -> None:
    rc, out = run_method(tmp_path, "auto", "1.1.0", MADISON.replace(K, HERE))
    assert rc == 0, out
    assert f"METHOD=prebuilt PKG=vpsnet-kmod-{HERE}" in out, out


@pytestmark_debian
def test_method_yml_auto_falls_back_to_dkms(tmp_path: Path) -> None:
    rc, out = run_method(tmp_path, "auto", "1.1.0", MADISON)
    assert rc == 0, out
    assert "METHOD=dkms" in out, out


@pytestmark_debian
def test_method_yml_prebuilt_missing_fails_naming_kernel_and_version(tmp_path: Path) -> None:
    rc, out = run_method(tmp_path, "prebuilt", "1.2.0", MADISON.replace(K, HERE))
    assert rc != 0, out
    assert f"no vpsnet-kmod-{HERE} at version 1.2.0 for the running kernel {HERE}" in out, out
    assert "(it has 1.1.0)" in out and "changed=0" in out, out


# ------------------------------------------------------- package_commands: the host-side revert

APT = ("DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=300 "
       "-o Dpkg::Options::=--force-confold")
APT_INSTALL = f"{APT} --no-install-recommends --allow-downgrades install"
RELOAD = "modprobe -r vpsnet; modprobe vpsnet"
EL9 = "5.14.0-427.el9.x86_64"


def back_to(before: dict[str, bool], version: str, kernel: str = K,
            os_family: str = "Debian") -> dict[str, list[str]]:
    """package_set of restore_set: what a rollout step's revert puts back."""
    want = driver.restore_set(before, version)
    return driver.package_set({**want, "kernel": kernel, "os_family": os_family})


def test_package_commands_prebuilt_host_back_to_1_0_0() -> None:
    pset = back_to({"installed_kmod": True, "installed_tools": True}, "1.0.0")
    assert driver.package_commands(pset) == [
        f"{APT_INSTALL} vpsnet-kmod-{K}=1.0.0 vpsnet-tools=1.0.0",
        f"{APT} purge vpsnet-dkms",
        RELOAD,
    ]


def test_package_commands_dkms_host_back_to_1_0_0() -> None:
    pset = back_to({"installed_dkms": True, "installed_tools": True}, "1.0.0")
    assert driver.package_commands(pset, "Debian", True) == [
        f"{APT} purge vpsnet-kmod-{K}",  # before vpsnet-dkms builds its module
        f"{APT_INSTALL} vpsnet-dkms=1.0.0 vpsnet-tools=1.0.0",
        RELOAD,
    ]


def test_package_commands_fresh_host_only_purges_and_unloads() -> None:
    pset = back_to({}, "")  # nothing installed before the step: nothing to go back to
    assert driver.package_commands(pset, reload=False) == [
        f"{APT} purge vpsnet-kmod-{K}",
        f"{APT} purge vpsnet-dkms vpsnet-tools",
        "modprobe -r vpsnet",
    ]


def test_package_commands_redhat() -> None:
    pset = back_to({"installed_kmod": True, "installed_tools": True}, "1.0.0", EL9, "RedHat")
    assert driver.package_commands(pset, "RedHat") == [
        f"dnf -y -q --setopt=install_weak_deps=False install vpsnet-kmod-{EL9}-1.0.0 "
        "vpsnet-tools-1.0.0",
        "dnf -y -q remove vpsnet-dkms",
        RELOAD,
    ]
    pset = back_to({"installed_dkms": True}, "1.0.0", EL9, "RedHat")
    assert driver.package_commands(pset, "RedHat", False) == [
        f"dnf -y -q remove vpsnet-kmod-{EL9}",
        "dnf -y -q --setopt=install_weak_deps=False install vpsnet-dkms-1.0.0",
        "dnf -y -q remove vpsnet-tools",
        "modprobe -r vpsnet",
    ]


def test_package_commands_unknown_os_family_is_named() -> None:
    pset = back_to({"installed_dkms": True}, "1.0.0")
    with pytest.raises(ValueError, match="os_family='Suse'"):
        driver.package_commands(pset, "Suse")


def test_package_commands_quote_what_the_shell_would_read() -> None:
    evil = "vpsnet-tools=1.0.0; reboot"
    lines = driver.package_commands({"remove_first": ["$(touch /tmp/x)"], "install": [evil],
                                     "remove_after": []})
    assert lines[0] == f"{APT} purge '$(touch /tmp/x)'"
    assert lines[1] == f"{APT_INSTALL} 'vpsnet-tools=1.0.0; reboot'"
    assert shlex.split(lines[1])[-1] == evil  # one word, as given
    assert lines[2] == RELOAD


def test_package_commands_lines_are_valid_shell(tmp_path: Path) -> None:
    pset = back_to({"installed_kmod": True, "installed_tools": True}, "1.0.0", K612)
    lines = driver.package_commands(pset)
    assert f"vpsnet-kmod-{K612}=1.0.0" in lines[0]  # '+' in the kernel release, unquoted
    for line in lines:
        check = subprocess.run(["sh", "-n", "-c", line], capture_output=True, text=True,
                               check=False)
        assert check.returncode == 0, (line, check.stderr)
    # and what it runs: the words apt-get gets, with a stand-in apt-get that prints them
    fake = tmp_path / "apt-get"
    fake.write_text('#!/bin/sh\nprintf "%s\\n" "$@"\n')
    fake.chmod(0o755)
    out = subprocess.run(["sh", "-c", lines[0]], capture_output=True, text=True, check=True,
                         env={"PATH": f"{tmp_path}:/usr/bin:/bin"}).stdout.splitlines()
    assert out[-3:] == ["install", f"vpsnet-kmod-{K612}=1.0.0", "vpsnet-tools=1.0.0"]
