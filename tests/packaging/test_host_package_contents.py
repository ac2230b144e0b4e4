"""What the session's build (conftest.py `build`) made and what is in it: both
versions' .deb/.rpm and source packages from the real sources, control fields,
the dkms tree and dkms.conf, the version override reaching every place, the
commands, the udev rule, the exporter's upgrade scripts, lintian and rpmlint."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pkgtest.build import Build
from pkgtest.host import ENV, PACKAGING, TOP, run
from pkgtest.package_files import deb_field, extract, rpmq

pytestmark = pytest.mark.packaging


def test_real_sources_packaged(build: Build) -> None:
    """The packages above were built from driver-src/ and tools/, not stand-ins."""
    assert not build.stub_driver, "driver-src/ has no Makefile yet: built with a stand-in module"
    assert not build.stub_tools, "tools/ has no pyproject.toml yet: built with stand-in tools"


def test_all_artifacts_built(build: Build) -> None:
    for v in (build.version, build.version2):
        for name in ("vpsnet-dkms", "vpsnet-tools"):
            assert build.deb(name, v).is_file()
            assert build.rpm(name, v).is_file()
        assert (build.dist / "source" / f"vpsnet_{v}.dsc").is_file()
        assert (build.dist / "source" / f"vpsnet-{v}-1.src.rpm").is_file()


def test_deb_control(build: Build) -> None:
    dkms = build.deb("vpsnet-dkms")
    tools = build.deb("vpsnet-tools")
    assert deb_field(dkms, "Version") == build.version
    assert deb_field(tools, "Version") == build.version
    assert deb_field(dkms, "Source") == "vpsnet"
    assert deb_field(dkms, "Architecture") == "all"
    assert deb_field(tools, "Architecture") == "all"
    assert "vpsnet-tools" in deb_field(dkms, "Recommends")
    assert re.search(r"\bdkms\b", deb_field(dkms, "Depends"))
    tools_depends = deb_field(tools, "Depends")
    assert "python3-prometheus-client" in tools_depends
    assert "python3-pyelftools" in tools_depends


def test_deb_dkms_contents(build: Build, tmp_path: Path) -> None:
    v = build.version
    listing = run(["dpkg-deb", "-c", str(build.deb("vpsnet-dkms"))]).stdout
    paths = {line.split()[-1] for line in listing.splitlines()}
    srcdir = f"./usr/src/vpsnet-{v}/"
    assert srcdir + "dkms.conf" in paths
    assert srcdir + "VERSION" in paths
    # every source file of the driver (tracked or not ignored by git) is in
    # /usr/src/vpsnet-<v>/
    listed = run(
        [
            "git",
            "-C",
            str(build.driver_src),
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
        ],
        check=False,
    )
    if listed.returncode == 0:
        tracked = [
            f
            for f in listed.stdout.split()
            if not any(part.startswith(".") for part in f.split("/"))
        ]
    else:
        tracked = [
            str(p.relative_to(build.driver_src))
            for p in build.driver_src.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        ]
    assert tracked
    for rel in tracked:
        assert srcdir + rel in paths, f"{rel} missing from vpsnet-dkms"
    assert not [p for p in paths if p.endswith((".o", ".ko", ".cmd"))]
    root = extract(build.deb("vpsnet-dkms"), tmp_path / "root")
    assert (root / f"usr/src/vpsnet-{v}/VERSION").read_text().strip() == v


def dkms_conf(build: Build, tmp_path: Path, version: str | None = None) -> str:
    v = version or build.version
    root = extract(build.deb("vpsnet-dkms", v), tmp_path / f"root-{v}")
    return (root / f"usr/src/vpsnet-{v}/dkms.conf").read_text()


def test_dkms_conf(build: Build, tmp_path: Path) -> None:
    conf = dkms_conf(build, tmp_path)
    assert f'PACKAGE_VERSION="{build.version}"' in conf
    assert 'PACKAGE_NAME="vpsnet"' in conf
    assert 'AUTOINSTALL="yes"' in conf
    assert re.search(r'^DEST_MODULE_LOCATION\[0\]="/updates/dkms"$', conf, re.M)
    active = "\n".join(ln for ln in conf.splitlines() if not ln.lstrip().startswith("#"))
    assert "uname" not in active
    assert "$kernelver" in re.search(r"^MAKE\[0\]=.*$", active, re.M).group(0)


def test_version_override_flows_everywhere(build: Build, tmp_path: Path) -> None:
    """`make packages VERSION=x` changes every version-bearing place, no file edited."""
    v2 = build.version2
    assert deb_field(build.deb("vpsnet-dkms", v2), "Version") == v2
    assert f'PACKAGE_VERSION="{v2}"' in dkms_conf(build, tmp_path, v2)
    changelog = run(
        [
            "dpkg-parsechangelog",
            "-l",
            str(build.dist / "build" / f"vpsnet-{v2}" / "debian" / "changelog"),
            "-S",
            "Version",
        ]
    ).stdout.strip()
    assert changelog == v2
    rpmver = run(["rpm", "-qp", "--qf", "%{VERSION}-%{RELEASE}", str(build.rpm("vpsnet-dkms", v2))])
    assert rpmver.stdout == f"{v2}-1"
    tools = extract(build.deb("vpsnet-tools", v2), tmp_path / "tools2")
    meta = next(tools.glob("usr/lib/python3/dist-packages/vpsnet_tools-*.dist-info/METADATA"))
    assert f"Version: {v2}" in meta.read_text()
    assert (TOP / "VERSION").read_text().strip() == build.version


def test_tools_help_and_version(build: Build, tmp_path: Path) -> None:
    root = extract(build.deb("vpsnet-tools"), tmp_path / "tools")
    commands = sorted((root / "usr/bin").glob("vpsnet-*"))
    assert commands, "vpsnet-tools ships no commands"
    env = {**ENV, "PYTHONPATH": str(root / "usr/lib/python3/dist-packages")}
    for cmd in commands:
        out = run(["/usr/bin/python3", str(cmd), "--help"], env=env).stdout
        assert "usage" in out.lower(), cmd.name
        version = run(["/usr/bin/python3", str(cmd), "--version"], env=env)
        assert build.version in version.stdout + version.stderr, cmd.name


def test_udev_rule_shipped(build: Build, tmp_path: Path) -> None:
    root = extract(build.deb("vpsnet-tools"), tmp_path / "tools")
    rules = list(root.glob("*lib/udev/rules.d/*vpsnet*.rules"))
    assert len(rules) == 1
    text = rules[0].read_text()
    assert 'ENV{VPSNET_STATE}=="?*"' in text and "$env{VPSNET_PREV}" in text
    assert "/usr/bin/logger -t vpsnet" in text
    listing = run(["rpm", "-qlp", str(build.rpm("vpsnet-tools"))]).stdout
    assert "/usr/lib/udev/rules.d/60-vpsnet.rules" in listing.split()


def test_upgrades_reload_the_exporter_they_do_not_stop(build: Build, tmp_path: Path) -> None:
    """Upgrade path of vpsnet-exporter.service, deb and rpm: nothing stops it before
    the upgrade; after it, a running exporter is reloaded (it hands its port to the
    new code, tests/unit/test_exporter_handoff.py), a stopped or disabled one is not
    started. The guest-side run of this is
    test_guest_apt.py::test_upgrade_reloads_a_running_exporter_without_a_refused_scrape."""
    control = tmp_path / "control"
    run(["dpkg-deb", "-e", str(build.deb("vpsnet-tools")), str(control)])
    preinst = control / "preinst"
    assert not preinst.exists() or "vpsnet-exporter" not in preinst.read_text()
    postinst = (control / "postinst").read_text()
    assert "restart 'vpsnet-exporter" not in postinst and "_dh_action" not in postinst, postinst
    assert re.search(r'"\$1" = configure \] && \[ -n "\$2" \].*\n\s+deb-systemd-invoke '
                     r"try-reload-or-restart vpsnet-exporter.service", postinst), postinst
    prerm = (control / "prerm").read_text()
    assert re.search(r'"\$1" = remove \].*\n\s+deb-systemd-invoke stop', prerm), prerm

    scripts = rpmq(build.rpm("vpsnet-tools"), "--scripts")
    postun = scripts.split("postuninstall scriptlet", 1)[1]
    assert re.search(r"\$1 -ge 1 .*\n(.*\n)?.*systemctl try-reload-or-restart "
                     r"vpsnet-exporter.service", postun), postun
    assert "try-restart" not in scripts, scripts


def test_lintian_and_rpmlint_clean(build: Build) -> None:
    for v in (build.version, build.version2):
        proc = run(
            ["make", "-C", str(PACKAGING), "check-packages", f"DIST={build.dist}", f"VERSION={v}"],
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "0 errors, 0 warnings" in proc.stdout
