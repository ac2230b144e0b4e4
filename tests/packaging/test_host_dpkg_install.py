"""dpkg for real in a private root (pkgtest/private_root.py): vpsnet-dkms
installed while one kernel's headers are missing, built when they arrive,
upgraded, downgraded, installed from a source that does not compile (dpkg not
left half-configured) and purged."""

from __future__ import annotations

import os

import pytest
from pkgtest.build import Build, broken_dkms_deb
from pkgtest.host import kernels
from pkgtest.private_root import DPKG, DPKG_QUERY, PrivateRoot, Story, running_kernel_has_headers

pytestmark = pytest.mark.packaging


@pytest.fixture(scope="module")
def dpkg_steps(build: Build) -> Story:
    """install (6.1 headers hidden) -> headers appear -> upgrade -> downgrade
    -> broken build -> purge, with dpkg in a private root."""
    k61, _k612 = kernels()
    broken_version = f"{build.version2}.1"
    broken_deb = broken_dkms_deb(build, broken_version, "broken")
    s = Story(PrivateRoot(build.work / "dpkg-root", kernels()), DPKG_QUERY, broken_version)
    # The 6.1 kernel's headers are "not installed yet": its build link is hidden.
    s.step(
        "install",
        f"mv /lib/modules/{k61}/build /lib/modules/{k61}/build.hidden && "
        f"{DPKG} -i {build.deb('vpsnet-dkms')}",
    )
    # Installing linux-headers-<k> runs /etc/kernel/header_postinst.d/dkms <k>.
    s.step(
        "headers",
        f"mv /lib/modules/{k61}/build.hidden /lib/modules/{k61}/build && "
        f"/etc/kernel/header_postinst.d/dkms {k61}",
    )
    s.step("upgrade", f"{DPKG} -i {build.deb('vpsnet-dkms', build.version2)}")
    s.step("downgrade", f"{DPKG} -i {build.deb('vpsnet-dkms')}")
    s.step("broken", f"{DPKG} -i {broken_deb}")
    s.step("purge", f"{DPKG} --purge vpsnet-dkms")
    return s


def test_dpkg_install_builds_for_kernels_with_headers(build: Build, dpkg_steps: Story) -> None:
    k61, k612 = kernels()
    s = dpkg_steps["install"]
    assert s.rc == 0, s.output
    assert s.status == f"ii  {build.version}"
    assert s.modules == {k612: build.version}, s.output
    assert f"vpsnet/{build.version}, {k612}, x86_64: installed" in s.dkms
    assert s.srcdirs == [f"/usr/src/vpsnet-{build.version}"]
    # the kernel without headers is skipped with a message, not a failure
    assert f"Module build for kernel {k61} was skipped" in s.output


def test_dpkg_missing_headers_for_running_kernel_says_what_to_install(dpkg_steps: Story) -> None:
    if running_kernel_has_headers():
        pytest.skip("the host's running kernel has headers")
    s = dpkg_steps["install"]
    assert s.status.startswith("ii ")
    assert f"apt-get install linux-headers-{os.uname().release}" in s.output


def test_dkms_builds_when_headers_are_installed_later(build: Build, dpkg_steps: Story) -> None:
    k61, k612 = kernels()
    s = dpkg_steps["headers"]
    assert s.rc == 0, s.output
    assert s.modules == {k61: build.version, k612: build.version}, s.output


def test_dpkg_upgrade_replaces_old_dkms_tree(build: Build, dpkg_steps: Story) -> None:
    k61, k612 = kernels()
    s = dpkg_steps["upgrade"]
    assert s.rc == 0, s.output
    assert s.status == f"ii  {build.version2}"
    assert s.modules == {k61: build.version2, k612: build.version2}, s.output
    assert f"vpsnet/{build.version}" not in s.dkms
    assert s.srcdirs == [f"/usr/src/vpsnet-{build.version2}"]


def test_dpkg_downgrade(build: Build, dpkg_steps: Story) -> None:
    k61, k612 = kernels()
    s = dpkg_steps["downgrade"]
    assert s.rc == 0, s.output
    assert s.status == f"ii  {build.version}"
    assert s.modules == {k61: build.version, k612: build.version}, s.output
    assert s.srcdirs == [f"/usr/src/vpsnet-{build.version}"]


def test_failed_dkms_build_does_not_leave_dpkg_half_configured(dpkg_steps: Story) -> None:
    s = dpkg_steps["broken"]
    broken_version = dpkg_steps.broken_version
    assert s.rc == 0, s.output
    assert s.status == f"ii  {broken_version}", s.output  # not "iF" (half-configured)
    assert "vpsnet-dkms: ERROR: DKMS could not build or install" in s.output
    assert "installed" not in s.dkms  # `dkms status` tells the roles the truth
    assert s.modules == {}


def test_dpkg_purge_leaves_nothing(dpkg_steps: Story) -> None:
    s = dpkg_steps["purge"]
    assert s.rc == 0, s.output
    assert s.status == ""
    assert s.dkms.strip() == ""
    assert s.modules == {}
    assert s.srcdirs == []
