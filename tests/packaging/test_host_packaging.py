"""Host-side packaging tests: build vpsnet's .deb/.rpm and signed repositories once
per session (into a temp dir, with a private signing key) and check them with the
real tools: dpkg-deb, dkms against the installed 6.1/6.12 headers, lintian,
rpmlint, rpm/rpmkeys, dnf and apt with private state.

The build itself (session fixture `build`) is in conftest.py and
vpsnet_pkg_helpers.py, shared with the guest-side tests (test_guest_apt.py).
"""

from __future__ import annotations

import functools
import gzip
import http.server
import os
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from vpsnet_pkg_helpers import (
    ENV,
    PACKAGING,
    REPO_URL,
    TOP,
    Build,
    broken_dkms_deb,
    kernel_headers_debs,
    kernels,
    run,
    tamper_deb,
    tamper_packages,
)

pytestmark = pytest.mark.packaging


def deb_field(deb: Path, field: str) -> str:
    return run(["dpkg-deb", "-f", str(deb), field]).stdout.strip()


def dkmstree(tmp_path: Path) -> Path:
    tree = tmp_path / "dkms"
    tree.mkdir(exist_ok=True)
    return tree


def extract(deb: Path, dest: Path) -> Path:
    if not dest.exists():
        run(["dpkg-deb", "-x", str(deb), str(dest)])
    return dest


# ---------------------------------------------------------------- build ---


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


# ----------------------------------------------------------------- dkms ---


@pytest.mark.parametrize("kernel", kernels())
def test_dkms_build_for_target_kernel(build: Build, tmp_path: Path, kernel: str) -> None:
    """A real DKMS build of the packaged tree for a kernel that is not the host's."""
    root = extract(build.deb("vpsnet-dkms"), tmp_path / "root")
    tree = dkmstree(tmp_path)
    env = {
        **ENV,
        "mok_signing_key": str(tmp_path / "mok.key"),
        "mok_certificate": str(tmp_path / "mok.pub"),
    }
    common = [
        "-m",
        "vpsnet",
        "-v",
        build.version,
        "-k",
        kernel,
        "--sourcetree",
        str(root / "usr/src"),
        "--dkmstree",
        str(tree),
    ]
    run(["dkms", "build", *common], env=env)
    modules = list((tree / "vpsnet" / build.version / kernel).rglob("vpsnet.ko*"))
    assert modules, "dkms build produced no vpsnet.ko"
    ko = modules[0]
    assert run(["modinfo", "-F", "version", str(ko)]).stdout.strip() == build.version
    assert run(["modinfo", "-F", "vermagic", str(ko)]).stdout.split()[0] == kernel
    status = run(
        ["dkms", "status", "--sourcetree", str(root / "usr/src"), "--dkmstree", str(tree)], env=env
    ).stdout
    assert f"vpsnet/{build.version}, {kernel}" in status and "built" in status


def test_dkms_build_without_headers_is_refused_clearly(build: Build, tmp_path: Path) -> None:
    root = extract(build.deb("vpsnet-dkms"), tmp_path / "root")
    fake = "6.99.0-nohdrs-amd64"
    proc = run(
        [
            "dkms",
            "build",
            "-m",
            "vpsnet",
            "-v",
            build.version,
            "-k",
            fake,
            "--sourcetree",
            str(root / "usr/src"),
            "--dkmstree",
            str(dkmstree(tmp_path)),
        ],
        check=False,
    )
    assert proc.returncode != 0
    assert f"headers for kernel {fake} cannot be found" in proc.stdout + proc.stderr


def test_dkms_unsupported_kernel_is_skipped(build: Build, tmp_path: Path) -> None:
    """BUILD_EXCLUSIVE_KERNEL: kernels older than the probes' floor exit 77 (skipped)."""
    root = extract(build.deb("vpsnet-dkms"), tmp_path / "root")
    proc = run(
        [
            "dkms",
            "build",
            "-m",
            "vpsnet",
            "-v",
            build.version,
            "-k",
            "4.19.0-old-amd64",
            "--sourcetree",
            str(root / "usr/src"),
            "--dkmstree",
            str(dkmstree(tmp_path)),
        ],
        check=False,
    )
    assert proc.returncode == 77


# ---------------------------------------------------------------- lint ---


def test_lintian_and_rpmlint_clean(build: Build) -> None:
    for v in (build.version, build.version2):
        proc = run(
            ["make", "-C", str(PACKAGING), "check-packages", f"DIST={build.dist}", f"VERSION={v}"],
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "0 errors, 0 warnings" in proc.stdout


# ----------------------------------------------------------------- rpm ---


def rpmq(rpm: Path, *args: str) -> str:
    return run(["rpm", "-qp", *args, str(rpm)]).stdout


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


def stop_dnf_gpg_agents(cache: Path) -> None:
    """libdnf verifies repomd.xml with a gpg home per repository inside the
    cache and leaves a gpg-agent running there: stop the ones we caused."""
    for home in cache.rglob("pubring"):
        if home.is_dir():
            run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)


def dnf_download(repo: Path, work: Path, pkg: str) -> subprocess.CompletedProcess[str]:
    try:
        return dnf_download_(repo, work, pkg)
    finally:
        stop_dnf_gpg_agents(work / "cache")


def dnf_download_(repo: Path, work: Path, pkg: str) -> subprocess.CompletedProcess[str]:
    return run(
        [
            "dnf",
            "-y",
            f"--installroot={work / 'root'}",
            "--releasever=12",
            "--setopt=reposdir=/dev/null",
            f"--setopt=cachedir={work / 'cache'}",
            "--disableplugin=*",
            "--enableplugin=download",
            f"--repofrompath=vpsnet,file://{repo / 'rpm'}",
            "--setopt=vpsnet.gpgcheck=1",
            "--setopt=vpsnet.repo_gpgcheck=1",
            f"--setopt=vpsnet.gpgkey=file://{repo / 'vpsnet-archive-keyring.asc'}",
            "download",
            f"--destdir={work / 'dl'}",
            pkg,
        ],
        check=False,
    )


def test_dnf_resolves_and_downloads_with_gpg_checks(build: Build, tmp_path: Path) -> None:
    proc = dnf_download(build.repo, tmp_path, "vpsnet-dkms")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    got = sorted(p.name for p in (tmp_path / "dl").glob("*.rpm"))
    # the newest version in the repository wins
    assert got == [build.rpm("vpsnet-dkms", build.version2).name]
    proc = dnf_download(build.repo, tmp_path / "old", f"vpsnet-dkms-{build.version}")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dnf_refuses_tampered_repomd(build: Build, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(build.repo, repo)
    repomd = repo / "rpm/repodata/repomd.xml"
    repomd.write_text(repomd.read_text() + "<!-- tampered -->\n")
    proc = dnf_download(repo, tmp_path / "w", "vpsnet-dkms")
    assert proc.returncode != 0
    assert "GPG signature verification error" in proc.stdout + proc.stderr


def test_dnf_repo_file(build: Build) -> None:
    text = (build.repo / "vpsnet.repo").read_text()
    assert "gpgcheck=1" in text.split() and "repo_gpgcheck=1" in text.split()
    assert f"baseurl={REPO_URL}/rpm" in text
    assert f"gpgkey={REPO_URL}/vpsnet-archive-keyring.asc" in text


# ----------------------------------------------------------------- apt ---


def test_no_private_key_exported(build: Build) -> None:
    for path in build.repo.rglob("*"):
        if path.is_file():
            # spelled in two parts so that secret scanners do not flag this test
            assert b"PRIVATE " + b"KEY" not in path.read_bytes(), path
    packets = run(["gpg", "--list-packets", str(build.repo / "vpsnet-archive-keyring.gpg")]).stdout
    assert ":public key packet:" in packets and "secret" not in packets


def test_inrelease_signature_gpgv(build: Build, tmp_path: Path) -> None:
    key = str(build.repo / "vpsnet-archive-keyring.gpg")
    dists = build.repo / "apt/dists/bookworm"
    run(["gpgv", "--keyring", key, str(dists / "InRelease")])
    run(["gpgv", "--keyring", key, str(dists / "Release.gpg"), str(dists / "Release")])
    bad = tmp_path / "InRelease"
    bad.write_text((dists / "InRelease").read_text().replace("Label: vpsnet", "Label: evil"))
    assert run(["gpgv", "--keyring", key, str(bad)], check=False).returncode != 0


def test_apt_sources_file(build: Build) -> None:
    text = (build.repo / "vpsnet.sources").read_text()
    assert "Types: deb" in text
    assert f"URIs: {REPO_URL}/apt" in text
    assert "Signed-By: /etc/apt/keyrings/vpsnet-archive-keyring.gpg" in text
    assert "trusted" not in text.lower().replace("# key", "")


def test_packages_index_lists_both_versions(build: Build) -> None:
    packages = gzip.decompress(
        (build.repo / "apt/dists/bookworm/main/binary-amd64/Packages.gz").read_bytes()
    ).decode()
    stanzas = [dict(re.findall(r"^(\S+): (.*)$", st, re.M)) for st in packages.split("\n\n")]
    versions = {(st.get("Package"), st.get("Version")) for st in stanzas}
    for v in (build.version, build.version2):
        assert ("vpsnet-dkms", v) in versions and ("vpsnet-tools", v) in versions


class Apt:
    """apt-get/apt-cache with all state under a private directory."""

    def __init__(self, repo: Path, work: Path, uri: str | None = None) -> None:
        self.work = work
        etc = work / "etc/apt"
        for d in (
            "etc/apt/sources.list.d",
            "etc/apt/preferences.d",
            "etc/apt/apt.conf.d",
            "etc/apt/trusted.gpg.d",
            "state/lists/partial",
            "cache/archives/partial",
            "dl",
        ):
            (work / d).mkdir(parents=True, exist_ok=True)
        (work / "status").touch()
        (etc / "sources.list.d/vpsnet.sources").write_text(
            (build_sources := (repo / "vpsnet.sources").read_text())
            .replace(f"{REPO_URL}/apt", uri or f"file:{repo / 'apt'}")
            .replace(
                "/etc/apt/keyrings/vpsnet-archive-keyring.gpg",
                str(repo / "vpsnet-archive-keyring.gpg"),
            )
        )
        assert f"URIs: {REPO_URL}" not in (etc / "sources.list.d/vpsnet.sources").read_text(), (
            build_sources
        )
        self.opts = [
            f"-oDir={work}",
            f"-oDir::Etc={etc}",
            "-oDir::Etc::sourcelist=/dev/null",
            f"-oDir::Etc::sourceparts={etc / 'sources.list.d'}",
            f"-oDir::State={work / 'state'}",
            f"-oDir::State::status={work / 'status'}",
            f"-oDir::Cache={work / 'cache'}",
            "-oDebug::NoLocking=1",
            "-oAPT::Architecture=amd64",
            "-oAPT::Sandbox::User=root",
        ]

    def __call__(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        return run([tool, *self.opts, *args], check=False, cwd=self.work / "dl")


def test_apt_update_and_download_with_signed_by(build: Build, tmp_path: Path) -> None:
    apt = Apt(build.repo, tmp_path)
    up = apt("apt-get", "update")
    assert up.returncode == 0 and "W:" not in up.stderr and "E:" not in up.stderr, up.stderr
    policy = apt("apt-cache", "policy", "vpsnet-dkms").stdout
    assert f"Candidate: {build.version2}" in policy
    dl = apt("apt-get", "download", f"vpsnet-dkms={build.version}")
    assert dl.returncode == 0, dl.stderr
    assert (tmp_path / "dl" / build.deb("vpsnet-dkms").name).is_file()


def test_apt_over_http_from_loopback(build: Build, tmp_path: Path) -> None:
    """The repository works served as plain files over HTTP (how the lab guests
    reach it: a host loopback port forwarded to http://10.0.2.101/)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(build.repo))
    handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        apt = Apt(build.repo, tmp_path, uri=f"{base}/apt")
        up = apt("apt-get", "update")
        assert up.returncode == 0 and "E:" not in up.stderr, up.stdout + up.stderr
        assert f"Candidate: {build.version2}" in apt("apt-cache", "policy", "vpsnet-dkms").stdout
        dl = apt("apt-get", "download", "vpsnet-dkms", "vpsnet-tools")
        assert dl.returncode == 0, dl.stderr
        dnf = run(
            [
                "dnf",
                "-y",
                f"--installroot={tmp_path / 'root'}",
                "--releasever=12",
                "--setopt=reposdir=/dev/null",
                f"--setopt=cachedir={tmp_path / 'cache'}",
                "--disableplugin=*",
                "--enableplugin=download",
                f"--repofrompath=vpsnet,{base}/rpm",
                "--setopt=vpsnet.gpgcheck=1",
                "--setopt=vpsnet.repo_gpgcheck=1",
                f"--setopt=vpsnet.gpgkey={base}/vpsnet-archive-keyring.asc",
                "download",
                f"--destdir={tmp_path / 'dl'}",
                "vpsnet-dkms",
            ],
            check=False,
        )
        assert dnf.returncode == 0, dnf.stdout + dnf.stderr
    finally:
        stop_dnf_gpg_agents(tmp_path / "cache")
        server.shutdown()
        server.server_close()


def test_apt_refuses_tampered_packages(build: Build, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(build.repo, repo)
    tamper_packages(repo)
    apt = Apt(repo, tmp_path / "apt")
    up = apt("apt-get", "update")
    assert up.returncode != 0
    assert "Hash Sum mismatch" in up.stdout + up.stderr or "File has unexpected size" in (
        up.stdout + up.stderr
    )
    assert (
        "Candidate: (none)" in apt("apt-cache", "policy", "vpsnet-dkms").stdout
        or "vpsnet-dkms" not in apt("apt-cache", "policy", "vpsnet-dkms").stdout
    )


def test_apt_refuses_tampered_deb(build: Build, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(build.repo, repo)
    deb = tamper_deb(repo, build.deb("vpsnet-dkms").name)
    apt = Apt(repo, tmp_path / "apt")
    assert apt("apt-get", "update").returncode == 0
    dl = apt("apt-get", "download", f"vpsnet-dkms={build.version}")
    assert dl.returncode != 0
    assert "Hash Sum mismatch" in dl.stdout + dl.stderr
    assert not (tmp_path / "apt/dl" / deb.name).exists()


def test_apt_refuses_unsigned_by_other_key(build: Build, tmp_path: Path) -> None:
    """A repository signed with some other key is rejected (Signed-By pins our key)."""
    other = tmp_path / "other-gnupg"
    other.mkdir(mode=0o700)
    genv = {**ENV, "GNUPGHOME": str(other)}
    run(
        [
            "gpg",
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            "intruder <x@example.org>",
            "ed25519",
            "sign",
            "1d",
        ],
        env=genv,
    )
    repo = tmp_path / "repo"
    shutil.copytree(build.repo, repo)
    dists = repo / "apt/dists/bookworm"
    (dists / "InRelease").unlink()
    (dists / "Release.gpg").unlink()
    run(
        ["gpg", "--batch", "--clearsign", "-o", str(dists / "InRelease"), str(dists / "Release")],
        env=genv,
    )
    run(["gpgconf", "--kill", "gpg-agent"], env=genv, check=False)
    apt = Apt(repo, tmp_path / "apt")
    up = apt("apt-get", "update")
    assert "NO_PUBKEY" in up.stdout + up.stderr or "not signed" in up.stdout + up.stderr
    assert "Candidate" not in apt("apt-cache", "policy", "vpsnet-dkms").stdout


# ------------------------------------------- install in a private root ---
#
# dpkg and rpm run for real, with their maintainer scripts and the real dkms,
# in a private mount namespace whose /usr, /etc, /var/lib and /var/log are
# overlays: the host's files are never written. The host's own
# running kernel has no headers, which is the "headers missing" case. Headers
# of any other kernel left on the host (an older ABI after a point release)
# are hidden, so DKMS builds for exactly the kernels under test.

# /var/lib whole: dpkg, dkms and the kernel hook's records (/var/lib/vpsnet).
OVERLAID = ("/usr", "/etc", "/var/lib", "/var/log")


def running_kernel_has_headers() -> bool:
    return Path(f"/lib/modules/{os.uname().release}/build/include").exists()


class PrivateRoot:
    def __init__(self, state: Path, kernels: list[str]) -> None:
        self.state = state
        self.kernels = kernels
        state.mkdir(parents=True, exist_ok=True)

    def __call__(self, script: str) -> subprocess.CompletedProcess[str]:
        s = self.state
        mounts = []
        for d in OVERLAID:
            if Path(d).is_dir():
                mounts.append(
                    f'mkdir -p "{s}/up{d}" "{s}/work{d}" && mount -t overlay overlay '
                    f'-o "lowerdir={d},upperdir={s}/up{d},workdir={s}/work{d}" "{d}"'
                )
            else:
                mounts.append(f'mkdir -p "{s}/up{d}" && mount --bind "{s}/up{d}" "{d}"')
        prelude = "\n".join(
            [
                "set -e",
                *mounts,
                f'export mok_signing_key="{s}/mok.key" mok_certificate="{s}/mok.pub"',
                # /lib is /usr/lib here, so this removes the links in the overlay only.
                'for b in /lib/modules/*/build; do case "$b" in '
                + "|".join(f"/lib/modules/{k}/build" for k in self.kernels)
                + ') ;; *) rm -f "$b" ;; esac; done',
                "set +e",
            ]
        )
        return run(
            [
                "unshare",
                "--mount",
                "--propagation",
                "private",
                "bash",
                "-c",
                prelude + "\n" + script,
            ],
            check=False,
        )


def module_versions(root: PrivateRoot) -> dict[str, str]:
    """kernel -> version of the vpsnet.ko DKMS installed for it."""
    out = root(
        'for f in /lib/modules/*/updates/dkms/vpsnet.ko*; do [ -e "$f" ] || continue; '
        'echo "$f $(modinfo -F version "$f")"; done'
    ).stdout
    return {line.split("/")[3]: line.split()[1] for line in out.splitlines()}


@dataclass
class Step:
    proc: subprocess.CompletedProcess[str]
    status: str
    dkms: str
    modules: dict[str, str]
    srcdirs: list[str]

    @property
    def output(self) -> str:
        return self.proc.stdout + self.proc.stderr


DPKG_QUERY = "dpkg-query -W -f='${db:Status-Abbrev} ${Version}' vpsnet-dkms 2>/dev/null"
DPKG = "dpkg --log=/dev/null --force-depends"


def snapshot(root: PrivateRoot, proc: subprocess.CompletedProcess[str], query: str) -> Step:
    return Step(
        proc=proc,
        status=root(query).stdout.strip(),
        dkms=root("dkms status vpsnet 2>/dev/null").stdout,
        modules=module_versions(root),
        srcdirs=sorted(root("ls -d /usr/src/vpsnet-* 2>/dev/null").stdout.split()),
    )


@pytest.fixture(scope="module")
def dpkg_steps(build: Build) -> dict[str, Step]:
    """install (6.1 headers hidden) -> headers appear -> upgrade -> downgrade
    -> broken build -> purge, with dpkg in a private root."""
    k61, _k612 = kernels()
    broken_version = f"{build.version2}.1"
    broken_deb = broken_dkms_deb(build, broken_version, "broken")
    root = PrivateRoot(build.work / "dpkg-root", kernels())
    query, dpkg = DPKG_QUERY, DPKG
    steps: dict[str, Step] = {}

    def step(name: str, script: str) -> None:
        steps[name] = snapshot(root, root(script), query)

    # The 6.1 kernel's headers are "not installed yet": its build link is hidden.
    step(
        "install",
        f"mv /lib/modules/{k61}/build /lib/modules/{k61}/build.hidden && "
        f"{dpkg} -i {build.deb('vpsnet-dkms')}",
    )
    # Installing linux-headers-<k> runs /etc/kernel/header_postinst.d/dkms <k>.
    step(
        "headers",
        f"mv /lib/modules/{k61}/build.hidden /lib/modules/{k61}/build && "
        f"/etc/kernel/header_postinst.d/dkms {k61}",
    )
    step("upgrade", f"{dpkg} -i {build.deb('vpsnet-dkms', build.version2)}")
    step("downgrade", f"{dpkg} -i {build.deb('vpsnet-dkms')}")
    step("broken", f"{dpkg} -i {broken_deb}")
    steps["broken"].proc.args = broken_version  # remember which version it was
    step("purge", f"{dpkg} --purge vpsnet-dkms")
    return steps


def test_dpkg_install_builds_for_kernels_with_headers(build: Build, dpkg_steps) -> None:
    k61, k612 = kernels()
    s = dpkg_steps["install"]
    assert s.proc.returncode == 0, s.output
    assert s.status == f"ii  {build.version}"
    assert s.modules == {k612: build.version}, s.output
    assert f"vpsnet/{build.version}, {k612}, x86_64: installed" in s.dkms
    assert s.srcdirs == [f"/usr/src/vpsnet-{build.version}"]
    # the kernel without headers is skipped with a message, not a failure
    assert f"Module build for kernel {k61} was skipped" in s.output


def test_dpkg_missing_headers_for_running_kernel_says_what_to_install(dpkg_steps) -> None:
    if running_kernel_has_headers():
        pytest.skip("the host's running kernel has headers")
    s = dpkg_steps["install"]
    assert s.status.startswith("ii ")
    assert f"apt-get install linux-headers-{os.uname().release}" in s.output


def test_dkms_builds_when_headers_are_installed_later(build: Build, dpkg_steps) -> None:
    k61, k612 = kernels()
    s = dpkg_steps["headers"]
    assert s.proc.returncode == 0, s.output
    assert s.modules == {k61: build.version, k612: build.version}, s.output


def test_dpkg_upgrade_replaces_old_dkms_tree(build: Build, dpkg_steps) -> None:
    k61, k612 = kernels()
    s = dpkg_steps["upgrade"]
    assert s.proc.returncode == 0, s.output
    assert s.status == f"ii  {build.version2}"
    assert s.modules == {k61: build.version2, k612: build.version2}, s.output
    assert f"vpsnet/{build.version}" not in s.dkms
    assert s.srcdirs == [f"/usr/src/vpsnet-{build.version2}"]


def test_dpkg_downgrade(build: Build, dpkg_steps) -> None:
    k61, k612 = kernels()
    s = dpkg_steps["downgrade"]
    assert s.proc.returncode == 0, s.output
    assert s.status == f"ii  {build.version}"
    assert s.modules == {k61: build.version, k612: build.version}, s.output
    assert s.srcdirs == [f"/usr/src/vpsnet-{build.version}"]


def test_failed_dkms_build_does_not_leave_dpkg_half_configured(dpkg_steps) -> None:
    s = dpkg_steps["broken"]
    broken_version = s.proc.args
    assert s.proc.returncode == 0, s.output
    assert s.status == f"ii  {broken_version}", s.output  # not "iF" (half-configured)
    assert "vpsnet-dkms: ERROR: DKMS could not build or install" in s.output
    assert "installed" not in s.dkms  # `dkms status` tells the roles the truth
    assert s.modules == {}


def test_dpkg_purge_leaves_nothing(dpkg_steps) -> None:
    s = dpkg_steps["purge"]
    assert s.proc.returncode == 0, s.output
    assert s.status == ""
    assert s.dkms.strip() == ""
    assert s.modules == {}
    assert s.srcdirs == []


@pytest.fixture(scope="module")
def rpm_steps(build: Build) -> dict[str, Step]:
    """rpm -i, -U (upgrade), --reinstall (same version), -e in a private root.

    --nodeps: the rpm database is a private, empty one; dkms itself is the
    host's (Debian's) dkms, which the scriptlets call.
    """
    root = PrivateRoot(build.work / "rpm-root", kernels())
    db = build.work / "rpm-root" / "rpmdb"
    db.mkdir(parents=True, exist_ok=True)
    rpm = f"rpm --dbpath {db} --nodeps --nosignature"
    query = f"rpm --dbpath {db} -q --qf '%{{VERSION}}-%{{RELEASE}}' vpsnet-dkms"
    steps: dict[str, Step] = {}

    def step(name: str, script: str) -> None:
        steps[name] = snapshot(root, root(script), query)

    step("install", f"{rpm} -i {build.rpm('vpsnet-dkms')}")
    step("upgrade", f"{rpm} -U {build.rpm('vpsnet-dkms', build.version2)}")
    step("reinstall", f"{rpm} --reinstall {build.rpm('vpsnet-dkms', build.version2)}")
    step("erase", f"{rpm} -e vpsnet-dkms")
    return steps


def test_rpm_install_builds_module(build: Build, rpm_steps) -> None:
    k61, k612 = kernels()
    s = rpm_steps["install"]
    assert s.proc.returncode == 0, s.output
    assert s.status == f"{build.version}-1"
    assert s.modules == {k61: build.version, k612: build.version}, s.output


def test_rpm_upgrade_keeps_new_module(build: Build, rpm_steps) -> None:
    k61, k612 = kernels()
    s = rpm_steps["upgrade"]
    assert s.proc.returncode == 0, s.output
    assert s.status == f"{build.version2}-1"
    assert s.modules == {k61: build.version2, k612: build.version2}, s.output
    assert f"vpsnet/{build.version}," not in s.dkms
    assert s.srcdirs == [f"/usr/src/vpsnet-{build.version2}"]


def test_rpm_reinstall_same_version_keeps_module(build: Build, rpm_steps) -> None:
    """The old package's %preun runs after the new %post: --rpm_safe_upgrade and
    the %posttrans install keep the module that both packages share."""
    k61, k612 = kernels()
    s = rpm_steps["reinstall"]
    assert s.proc.returncode == 0, s.output
    assert s.modules == {k61: build.version2, k612: build.version2}, s.output
    assert f"vpsnet/{build.version2}, {k612}, x86_64: installed" in s.dkms


def test_rpm_erase_leaves_nothing(rpm_steps) -> None:
    s = rpm_steps["erase"]
    assert s.proc.returncode == 0, s.output
    assert "not installed" in s.status
    assert s.dkms.strip() == ""
    assert s.modules == {}
    assert s.srcdirs == []


# ------------------------------------------------ a new kernel's hooks ---
#
# Installing linux-image-K / linux-headers-K runs
# `run-parts --report --exit-on-error --arg=K /etc/kernel/{postinst.d,header_postinst.d}`;
# DKMS's hook there runs `dkms autoinstall --kernelver K`, which exits 11 when
# vpsnet fails to build for K, and the kernel package's postinst fails with it.
# vpsnet-dkms's 05vpsnet-dkms hooks run first, record the failure and make
# dkms.conf leave AUTOINSTALL empty for K.

OLD_KERNEL = "4.19.0-old-amd64"  # outside BUILD_EXCLUSIVE_KERNEL


def header_hooks(kernel: str, regex: str | None = None) -> str:
    only = f"--regex '{regex}' " if regex else ""
    return f"run-parts --report --exit-on-error {only}--arg={kernel} /etc/kernel/header_postinst.d"


@pytest.fixture(scope="module")
def kernel_hook_steps(build: Build) -> dict[str, Step]:
    """A vpsnet version that does not build, then one that does, with the
    kernel hooks run by run-parts as the kernel packages run them, and a real
    linux-headers package installed with dpkg, in a private root."""
    k61, _k612 = kernels()
    broken = f"{build.version2}.2"
    broken_deb = broken_dkms_deb(build, broken, "broken-hooks")
    headers_deb = next(
        p for p in kernel_headers_debs(k61) if p.name.startswith(f"linux-headers-{k61}_")
    )
    root = PrivateRoot(build.work / "hooks-root", kernels())
    query, dpkg = DPKG_QUERY, DPKG
    hidden = f"/lib/modules/{k61}/build"
    steps: dict[str, Step] = {}

    def step(name: str, script: str) -> None:
        steps[name] = snapshot(root, root(script), query)

    # K = 6.1: its headers "arrive" after vpsnet-dkms is installed.
    step("install-broken", f"mv {hidden} {hidden}.hidden && {dpkg} -i "
         f"{broken_deb}; mv {hidden}.hidden {hidden}")
    # Control: DKMS's own hook alone (what happened before vpsnet's hooks).
    step("dkms-hook-alone", header_hooks(k61, "^dkms$"))
    step("headers-hooks", header_hooks(k61))
    # The image's hooks: ours and DKMS's only (initramfs-tools and
    # update-grub would write the host's /boot, which is not overlaid).
    step("image-hooks", f"run-parts --report --exit-on-error --regex '^(05vpsnet-dkms|dkms)$' "
         f"--arg={k61} --arg=/boot/vmlinuz-{k61} /etc/kernel/postinst.d")
    # (removed again: PrivateRoot's prelude cannot rm a build directory)
    step("unsupported-kernel", f"mkdir -p /lib/modules/{OLD_KERNEL}/build/include && "
         f"{header_hooks(OLD_KERNEL)}; rc=$?; rm -rf /lib/modules/{OLD_KERNEL}; exit $rc")
    # A real linux-headers package (its postinst runs header_postinst.d).
    step("dpkg-headers",
         f"{dpkg} -i {headers_deb}; rc=$?; echo \"AUDIT[$(dpkg --audit)]\"; exit $rc")
    step("records", "find /var/lib/vpsnet -type f | sort; "
         f"cat /var/lib/vpsnet/dkms-failed/{broken}/{k61}")
    # A version that builds: installed with 6.1's headers hidden again, then
    # the same hooks build it for 6.1.
    step("install-good", f"mv {hidden} {hidden}.hidden && {dpkg} -i {build.deb('vpsnet-dkms')}; "
         f"mv {hidden}.hidden {hidden}; find /var/lib/vpsnet -type f")
    step("good-headers-hooks",
         f"{header_hooks(k61)}; rc=$?; find /var/lib/vpsnet -type f; exit $rc")
    step("purge", f"{dpkg} --purge vpsnet-dkms; ls -d /var/lib/vpsnet 2>&1")
    steps["broken"] = steps["install-broken"]
    steps["broken"].proc.args = broken
    return steps


def test_control_dkms_hook_alone_fails_the_kernel_package(kernel_hook_steps) -> None:
    """What the hooks guard against, shown with DKMS's hook alone: autoinstall
    exits 11 and run-parts (so the kernel's postinst) fails."""
    s = kernel_hook_steps["dkms-hook-alone"]
    assert s.proc.returncode != 0, s.output
    assert "dkms exited with return code 11" in s.output, s.output


def test_new_kernel_headers_whose_build_fails_leave_run_parts_ok(kernel_hook_steps) -> None:
    k61, _k612 = kernels()
    broken = kernel_hook_steps["broken"].proc.args
    s = kernel_hook_steps["headers-hooks"]
    assert s.proc.returncode == 0, s.output
    assert f"ERROR: vpsnet {broken} failed to build for kernel {k61}" in s.output
    assert f"/var/lib/dkms/vpsnet/{broken}/build/make.log" in s.output
    assert f"vpsnet will not load on {k61}; the next-boot gate" in s.output
    assert f"recorded in /var/lib/vpsnet/dkms-failed/{broken}/{k61}" in s.output
    # DKMS's hook ran too (after ours: run-parts order, tests/unit) and skipped
    # vpsnet instead of failing. run-parts --report names a script on the
    # stream it writes first: ours stderr, dkms's stdout.
    assert "header_postinst.d/05vpsnet-dkms:" in s.proc.stderr, s.output
    assert f"dkms: autoinstall for kernel: {k61}." in s.proc.stdout, s.output
    assert "One or more modules failed to install during autoinstall" not in s.output
    assert f"{k61}, x86_64: installed" not in s.dkms and "installed" not in s.dkms, s.dkms
    assert s.modules == {}, s.output


def test_new_kernel_image_whose_build_fails_leaves_run_parts_ok(kernel_hook_steps) -> None:
    k61, _ = kernels()
    s = kernel_hook_steps["image-hooks"]
    assert s.proc.returncode == 0, s.output
    assert f"failed to build for kernel {k61}" in s.output
    assert "installed" not in s.dkms and s.modules == {}


def test_kernel_outside_build_exclusive_leaves_run_parts_ok(kernel_hook_steps) -> None:
    """dkms 3.0.10's autoinstall counts BUILD_EXCLUSIVE (exit 77) as a failure:
    dkms.conf leaves AUTOINSTALL empty for such a kernel."""
    s = kernel_hook_steps["unsupported-kernel"]
    assert s.proc.returncode == 0, s.output
    assert f"kernel {OLD_KERNEL} is outside the kernels vpsnet" in s.output
    assert "One or more modules failed" not in s.output


def test_dpkg_kernel_headers_install_whose_build_fails_leaves_dpkg_clean(kernel_hook_steps) -> None:
    k61, _ = kernels()
    s = kernel_hook_steps["dpkg-headers"]
    assert s.proc.returncode == 0, s.output  # dpkg -i of linux-headers-<6.1>
    assert "AUDIT[]" in s.proc.stdout, s.output  # `dpkg --audit` empty
    assert f"failed to build for kernel {k61}" in s.output
    assert s.status.startswith("ii "), s.status
    assert "installed" not in s.dkms


def test_failed_build_is_recorded_with_its_make_log(kernel_hook_steps) -> None:
    k61, _ = kernels()
    broken = kernel_hook_steps["broken"].proc.args
    s = kernel_hook_steps["records"]
    record = f"/var/lib/vpsnet/dkms-failed/{broken}/{k61}"
    assert s.proc.stdout.splitlines()[:2] == [record, f"{record}.make.log"], s.output
    assert f"vpsnet {broken} failed to build for kernel {k61}" in s.proc.stdout
    assert "#error vpsnet packaging test: broken build" in s.proc.stdout


def test_version_that_builds_is_built_by_the_same_hooks(build: Build, kernel_hook_steps) -> None:
    k61, k612 = kernels()
    s = kernel_hook_steps["install-good"]
    assert s.proc.returncode == 0, s.output
    assert s.status == f"ii  {build.version}"
    assert s.modules == {k612: build.version}, s.output
    # the broken version's records went with it (postinst of another version)
    assert "/var/lib/vpsnet/" not in s.proc.stdout, s.proc.stdout
    s = kernel_hook_steps["good-headers-hooks"]
    assert s.proc.returncode == 0, s.output
    assert f"building vpsnet {build.version} for kernel {k61}" in s.output
    assert s.modules == {k61: build.version, k612: build.version}, s.output
    assert f"vpsnet/{build.version}, {k61}, x86_64: installed" in s.dkms
    assert "ERROR" not in s.output
    assert "/var/lib/vpsnet/" not in s.proc.stdout, s.proc.stdout  # nothing recorded


def test_purge_removes_the_records(kernel_hook_steps) -> None:
    s = kernel_hook_steps["purge"]
    assert s.status == "" and s.modules == {}
    assert "No such file or directory" in s.proc.stdout + s.proc.stderr
