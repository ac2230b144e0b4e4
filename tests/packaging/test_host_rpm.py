"""The .rpm packages: requires, provides and scriptlets of vpsnet-dkms, and
the repository's signed rpms checked with rpmkeys in a private --dbpath."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pkgtest.build import Build
from pkgtest.host import run
from pkgtest.package_files import rpmq

pytestmark = pytest.mark.packaging


def test_rpm_requires_provides(build: Build) -> None:
    dkms = build.rpm("vpsnet-dkms")
    reqs = rpmq(dkms, "--qf", "[%{REQUIREFLAGS:deptype} %{REQUIRENAME}\n]").split("\n")
    assert "post dkms" in reqs
    assert "preun dkms" in reqs
    assert any(r.endswith(" dkms") and r.startswith(("manual", "requires")) for r in reqs)
    assert "vpsnet-tools" in rpmq(dkms, "--recommends")
    assert f"vpsnet-dkms = {build.version}-1" in rpmq(dkms, "--provides")
    assert rpmq(dkms, "--qf", "%{ARCH}") == "noarch"
    tools = build.rpm("vpsnet-tools")
    treqs = rpmq(tools, "--requires")
    assert "python3-prometheus_client" in treqs and "python3-pyelftools" in treqs
    files = rpmq(dkms, "-l").split()
    assert f"/usr/src/vpsnet-{build.version}/dkms.conf" in files


def test_rpm_scriptlets(build: Build) -> None:
    scripts = rpmq(build.rpm("vpsnet-dkms"), "--scripts")
    sections = dict(
        re.findall(r"^(\w+) scriptlet[^\n]*:\n(.*?)(?=^\w+ scriptlet|\Z)", scripts, re.M | re.S)
    )
    assert set(sections) >= {"postinstall", "preuninstall", "posttrans"}
    add = sections["postinstall"]
    assert f"dkms add -m vpsnet -v {build.version}" in add and "--rpm_safe_upgrade" in add
    rm = sections["preuninstall"]
    assert f"dkms remove -m vpsnet -v {build.version}" in rm and "--rpm_safe_upgrade" in rm
    assert "--all" in rm
    post = sections["posttrans"]
    assert f"dkms install -m vpsnet -v {build.version}" in post
    assert "/build/include" in post and "uname" not in post
    for body in sections.values():
        assert "uname -r" not in body


@pytest.fixture()
def rpmdb(build: Build, tmp_path: Path) -> Path:
    db = tmp_path / "rpmdb"
    db.mkdir()
    run(
        ["rpmkeys", "--dbpath", str(db), "--import", str(build.repo / "vpsnet-archive-keyring.asc")]
    )
    return db


def test_rpm_signature_verifies(build: Build, rpmdb: Path) -> None:
    for rpm in sorted((build.repo / "rpm").glob("*.rpm")):
        proc = run(["rpmkeys", "--dbpath", str(rpmdb), "--checksig", "-v", str(rpm)])
        assert "Header V4 RSA/SHA512 Signature, key ID" in proc.stdout
        assert ": OK" in proc.stdout and "NOKEY" not in proc.stdout


def test_rpm_signature_fails_when_modified(build: Build, rpmdb: Path, tmp_path: Path) -> None:
    rpm = build.repo / "rpm" / build.rpm("vpsnet-dkms").name
    data = bytearray(rpm.read_bytes())
    data[-100] ^= 0xFF  # inside the payload
    bad = tmp_path / rpm.name
    bad.write_bytes(bytes(data))
    proc = run(["rpmkeys", "--dbpath", str(rpmdb), "--checksig", str(bad)], check=False)
    assert proc.returncode != 0


def test_rpm_signature_needs_the_key(build: Build, tmp_path: Path) -> None:
    empty = tmp_path / "emptydb"
    empty.mkdir()
    rpm = build.repo / "rpm" / build.rpm("vpsnet-dkms").name
    proc = run(["rpmkeys", "--dbpath", str(empty), "--checksig", str(rpm)], check=False)
    assert proc.returncode != 0
