"""rpm for real in a private root (pkgtest/private_root.py): vpsnet-dkms
installed, upgraded, reinstalled at the same version (the module both packages
share is kept) and erased, with the scriptlets calling the host's dkms."""

from __future__ import annotations

import pytest
from pkgtest.build import Build
from pkgtest.host import kernels
from pkgtest.private_root import PrivateRoot, Story

pytestmark = pytest.mark.packaging


@pytest.fixture(scope="module")
def rpm_steps(build: Build) -> Story:
    """rpm -i, -U (upgrade), --reinstall (same version), -e in a private root.

    --nodeps: the rpm database is a private, empty one; dkms itself is the
    host's (Debian's) dkms, which the scriptlets call.
    """
    root = PrivateRoot(build.work / "rpm-root", kernels())
    db = build.work / "rpm-root" / "rpmdb"
    db.mkdir(parents=True, exist_ok=True)
    rpm = f"rpm --dbpath {db} --nodeps --nosignature"
    s = Story(root, f"rpm --dbpath {db} -q --qf '%{{VERSION}}-%{{RELEASE}}' vpsnet-dkms")
    s.step("install", f"{rpm} -i {build.rpm('vpsnet-dkms')}")
    s.step("upgrade", f"{rpm} -U {build.rpm('vpsnet-dkms', build.version2)}")
    s.step("reinstall", f"{rpm} --reinstall {build.rpm('vpsnet-dkms', build.version2)}")
    s.step("erase", f"{rpm} -e vpsnet-dkms")
    return s


def test_rpm_install_builds_module(build: Build, rpm_steps: Story) -> None:
    k61, k612 = kernels()
    s = rpm_steps["install"]
    assert s.rc == 0, s.output
    assert s.status == f"{build.version}-1"
    assert s.modules == {k61: build.version, k612: build.version}, s.output


def test_rpm_upgrade_keeps_new_module(build: Build, rpm_steps: Story) -> None:
    k61, k612 = kernels()
    s = rpm_steps["upgrade"]
    assert s.rc == 0, s.output
    assert s.status == f"{build.version2}-1"
    assert s.modules == {k61: build.version2, k612: build.version2}, s.output
    assert f"vpsnet/{build.version}," not in s.dkms
    assert s.srcdirs == [f"/usr/src/vpsnet-{build.version2}"]


def test_rpm_reinstall_same_version_keeps_module(build: Build, rpm_steps: Story) -> None:
    """The old package's %preun runs after the new %post: --rpm_safe_upgrade and
    the %posttrans install keep the module that both packages share."""
    k61, k612 = kernels()
    s = rpm_steps["reinstall"]
    assert s.rc == 0, s.output
    assert s.modules == {k61: build.version2, k612: build.version2}, s.output
    assert f"vpsnet/{build.version2}, {k612}, x86_64: installed" in s.dkms


def test_rpm_erase_leaves_nothing(rpm_steps: Story) -> None:
    s = rpm_steps["erase"]
    assert s.rc == 0, s.output
    assert "not installed" in s.status
    assert s.dkms.strip() == ""
    assert s.modules == {}
    assert s.srcdirs == []
