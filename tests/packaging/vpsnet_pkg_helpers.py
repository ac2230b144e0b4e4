"""Helpers shared by the packaging tests (host and guest side): build vpsnet's
packages and signed repositories into a temp dir with a private signing key.

Imported by tests/packaging/conftest.py and the test modules (uniquely named so
it never clashes with another layer's helpers).
"""

from __future__ import annotations

import gzip
import http.server
import os
import re
import shutil
import subprocess
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from vpsnet_lab.paths import kernel_matrix, oldest_abi

TOP = Path(__file__).resolve().parents[2]
PACKAGING = TOP / "packaging"
SYSPATH = "/usr/sbin:/usr/bin:/sbin:/bin"
ENV = {**os.environ, "PATH": SYSPATH}
REPO_URL = "http://10.0.2.101"


def run(cmd: list[str] | str, *, check: bool = True, **kw) -> subprocess.CompletedProcess[str]:
    kw.setdefault("env", ENV)
    proc = subprocess.run(cmd, capture_output=True, text=True, shell=isinstance(cmd, str), **kw)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{cmd!r} failed ({proc.returncode})\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def kernels() -> list[str]:
    env = {}
    for line in (TOP / ".cache" / "kernels.env").read_text().splitlines():
        if "=" in line:
            key, value = line.split("=", 1)
            env[key] = value
    return [env["VPSNET_KERNEL_6_1"], env["VPSNET_KERNEL_6_12"]]


def matrix() -> list[tuple[str, str]]:
    """(series, release) of the kernel matrix as setup resolved it."""
    return kernel_matrix()


def older_abi(release: str) -> str:
    """The oldest ABI of RELEASE's series in the matrix: what a fleet host that
    missed kernel updates runs."""
    return oldest_abi(next(s for s, r in matrix() if r == release))


def kmod_kernels() -> list[str]:
    """The kernels both test versions carry prebuilt modules for: the guests' two
    kernels and one older 6.1 ABI (the first version has the whole matrix)."""
    k61, k612 = kernels()
    return [k61, k612, older_abi(k61)]


def bump_minor(version: str) -> str:
    major, minor, *_ = version.split(".")
    return f"{major}.{int(minor) + 1}.0"


# --------------------------------------------------------------------------
# Stand-ins, used only while driver-src/ or tools/ have not landed yet. The
# test_real_sources_packaged test fails as long as they are in use.

STUB_KBUILD = """obj-m := vpsnet.o
ccflags-y += -DVPSNET_VERSION=\\"$(shell cat $(src)/VERSION)\\"
"""
STUB_MAKEFILE = """KVER ?= $(shell uname -r)
KDIR ?= /lib/modules/$(KVER)/build
all: modules
compat_config.h: configure
\t./configure $(KDIR) > $@
modules: compat_config.h
\t$(MAKE) -C $(KDIR) M=$(CURDIR) modules
clean:
\t$(MAKE) -C $(KDIR) M=$(CURDIR) clean; rm -f compat_config.h
.PHONY: all modules clean
"""
STUB_C = """#include <linux/module.h>
#include "compat_config.h"
static int __init vpsnet_init(void) { return 0; }
static void __exit vpsnet_exit(void) { }
module_init(vpsnet_init);
module_exit(vpsnet_exit);
MODULE_LICENSE("GPL");
MODULE_VERSION(VPSNET_VERSION);
"""
STUB_PYPROJECT = """[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"
[project]
name = "vpsnet-tools"
version = "0.0.0"
[project.scripts]
vpsnet-status = "vpsnet_tools.status:main"
"""
STUB_STATUS = """import argparse
from vpsnet_tools import __version__
def main() -> None:
    p = argparse.ArgumentParser(prog="vpsnet-status", description="stand-in")
    p.add_argument("--version", action="version", version=__version__)
    p.parse_args()
"""


def stub_driver(dest: Path) -> Path:
    dest.mkdir(parents=True)
    (dest / "Kbuild").write_text(STUB_KBUILD)
    (dest / "Makefile").write_text(STUB_MAKEFILE)
    (dest / "configure").write_text('#!/bin/sh\necho "/* probed against $1 */"\n')
    (dest / "configure").chmod(0o755)
    (dest / "vpsnet.c").write_text(STUB_C)
    (dest / "README.md").write_text("vpsnet stand-in module for packaging tests\n")
    return dest


def stub_tools(dest: Path) -> Path:
    (dest / "vpsnet_tools").mkdir(parents=True)
    (dest / "pyproject.toml").write_text(STUB_PYPROJECT)
    (dest / "vpsnet_tools" / "__init__.py").write_text('__version__ = "0.0.0"\n')
    (dest / "vpsnet_tools" / "status.py").write_text(STUB_STATUS)
    return dest


def broken_copy(src: Path, dest: Path) -> Path:
    """The driver source with a compile error, for the failed-build test."""
    shutil.copytree(
        src, dest, ignore=shutil.ignore_patterns("*.o", "*.ko", "*.mod", "*.mod.c", ".*")
    )
    c_file = next(p for p in sorted(dest.glob("*.c")) if "MODULE_LICENSE" in p.read_text())
    c_file.write_text(c_file.read_text() + "\n#error vpsnet packaging test: broken build\n")
    return dest


@dataclass
class Build:
    version: str
    version2: str
    dist: Path
    gnupghome: Path
    driver_src: Path
    tools_src: Path
    stub_driver: bool
    stub_tools: bool
    work: Path

    @property
    def repo(self) -> Path:
        return self.dist / "repo"

    def deb(self, name: str, version: str | None = None) -> Path:
        return self.dist / f"{name}_{version or self.version}_all.deb"

    def rpm(self, name: str, version: str | None = None) -> Path:
        return self.dist / f"{name}-{version or self.version}-1.noarch.rpm"

    def kmod_deb(self, kernel: str, version: str | None = None) -> Path:
        return self.dist / f"vpsnet-kmod-{kernel}_{version or self.version}_amd64.deb"

    def kmod_rpm(self, kernel: str, version: str | None = None) -> Path:
        return self.dist / f"vpsnet-kmod-{kernel}-{version or self.version}-1.x86_64.rpm"


def make(target: str, b_dist: Path, gnupghome: Path, **variables: str) -> None:
    args = [f"{k}={v}" for k, v in variables.items()]
    run(
        [
            "make",
            "-s",
            "-C",
            str(PACKAGING),
            target,
            f"DIST={b_dist}",
            f"SIGNING_GNUPGHOME={gnupghome}",
            f"REPO_URL={REPO_URL}",
            *args,
        ]
    )


def sections(text: str) -> dict[str, str]:
    """A guest script's `echo @key`-separated output -> {key: text}."""
    out: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        if line.startswith("@"):
            key = line[1:]
            out[key] = ""
        elif key:
            out[key] += line + "\n"
    return {k: v.strip() for k, v in out.items()}


def playbook_env() -> dict[str, str]:
    """The whole environment of an ansible-playbook run against lab guests from a
    test: this repo's venv, roles, collections and ansible.cfg, plain output."""
    return {"PATH": f"{TOP / '.venv' / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin",
            "ANSIBLE_ROLES_PATH": str(TOP / "roles"),
            "ANSIBLE_COLLECTIONS_PATH": str(TOP / ".cache" / "collections"),
            "ANSIBLE_CONFIG": str(TOP / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0",
            "HOME": "/root"}


def broken_dkms_deb(build: Build, version: str, name: str) -> Path:
    """vpsnet-dkms at VERSION from a driver source that does not compile (the
    failed-build tests, host and guest)."""
    dist = build.work / f"dist-{name}"
    make("deb", dist, build.gnupghome, VERSION=version,
         DRIVER_SRC=str(broken_copy(build.driver_src, build.work / f"{name}-driver")),
         TOOLS_SRC=str(build.tools_src))
    return dist / f"vpsnet-dkms_{version}_all.deb"


def build_packages(work: Path) -> Build:
    """Packages for VERSION and the next minor version, and one signed repository
    with both, built into WORK with a private signing key."""
    version = (TOP / "VERSION").read_text().strip()
    driver_src = TOP / "driver-src"
    tools_src = TOP / "tools"
    use_stub_driver = not (driver_src / "Makefile").is_file()
    use_stub_tools = not (tools_src / "pyproject.toml").is_file()
    if use_stub_driver:
        driver_src = stub_driver(work / "stub-driver")
    if use_stub_tools:
        tools_src = stub_tools(work / "stub-tools")
    b = Build(
        version=version,
        version2=bump_minor(version),
        dist=work / "dist",
        gnupghome=work / "gnupg",
        driver_src=driver_src,
        tools_src=tools_src,
        stub_driver=use_stub_driver,
        stub_tools=use_stub_tools,
        work=work,
    )
    src = {"DRIVER_SRC": str(driver_src), "TOOLS_SRC": str(tools_src)}
    # The first version prebuilt for the whole kernel matrix, the next one for
    # the kernels the guest tests boot.
    make("packages", b.dist, b.gnupghome, KERNELS="", **src)
    # The same tree again as the next version, by override only (no file edited).
    make("packages", b.dist, b.gnupghome, VERSION=b.version2, KERNELS=",".join(kmod_kernels()),
         **src)
    make("repo", b.dist, b.gnupghome)
    return b


def stop_gpg_agent(gnupghome: Path) -> None:
    run(["gpgconf", "--homedir", str(gnupghome), "--kill", "gpg-agent"], check=False)


# ------------------------------------------------ repository variants ---


def apt_pool(repo: Path) -> Path:
    return repo / "apt/pool/main/v/vpsnet"


def tamper_deb(repo: Path, deb_name: str) -> Path:
    """Change one byte of a .deb in the repository's pool (indexes untouched)."""
    deb = apt_pool(repo) / deb_name
    data = bytearray(deb.read_bytes())
    data[-10] ^= 0xFF
    deb.write_bytes(bytes(data))
    return deb


def tamper_packages(repo: Path, suite: str = "bookworm") -> None:
    """Change the Packages indexes (same size, so only the signed hashes tell)."""
    for arch_dir in (repo / f"apt/dists/{suite}/main").glob("binary-*"):
        for name in ("Packages", "Packages.gz"):
            idx = arch_dir / name
            text = gzip.decompress(idx.read_bytes()) if name.endswith(".gz") else idx.read_bytes()
            changed = text.replace(b"Priority: optional", b"Priority: required")
            assert changed != text, f"nothing to tamper with in {idx}"
            idx.write_bytes(gzip.compress(changed) if name.endswith(".gz") else changed)


def repo_variant(build: Build, dest: Path, versions: list[str]) -> Path:
    """A signed repository (same key) that carries only VERSIONS: `make repo`
    on a private dist holding just those packages. Returns its repo dir."""
    dist = dest / "dist"
    dist.mkdir(parents=True)
    for v in versions:
        for name in ("vpsnet-dkms", "vpsnet-tools"):
            shutil.copy2(build.deb(name, v), dist)
            shutil.copy2(build.rpm(name, v), dist)
    make("repo", dist, build.gnupghome)
    return dist / "repo"


# ------------------------------------------- other kernels' headers ---

KERNEL_DEBS = TOP / ".cache" / "kernel-debs"


def headers_closure(release: str) -> list[str]:
    """linux-headers-RELEASE and the linux-* packages it needs (common headers,
    kbuild, compiler meta-package); not the image, not toolchain packages that
    every guest already has."""
    seen: list[str] = []
    todo = [f"linux-headers-{release}"]
    while todo:
        pkg = todo.pop()
        if pkg in seen:
            continue
        seen.append(pkg)
        out = run(["apt-cache", "depends", "--important", pkg]).stdout
        for line in out.splitlines():
            m = re.match(r"\s*\|?(?:Pre)?Depends: (\S+)$", line)
            if not m or m.group(1).startswith("<"):
                continue
            dep = m.group(1)
            if dep.startswith("linux-") and not dep.startswith(
                ("linux-image-", "linux-base", "linux-libc-dev")
            ):
                todo.append(dep)
    return seen


def kernel_headers_debs(release: str) -> list[Path]:
    """The headers .debs for RELEASE, downloaded once (apt-get download) into
    .cache/kernel-debs/RELEASE/."""
    cache = KERNEL_DEBS / release
    done = cache / ".complete"
    if not done.exists():
        cache.mkdir(parents=True, exist_ok=True)
        for old in cache.glob("*.deb"):
            old.unlink()
        run(["apt-get", "download", *headers_closure(release)], cwd=cache)
        done.write_text("\n".join(sorted(p.name for p in cache.glob("*.deb"))) + "\n")
    return sorted(cache.glob("*.deb"))


def kernel_image_deb(release: str) -> Path:
    """linux-image-RELEASE's .deb, downloaded once (apt-get download) into
    .cache/kernel-debs/RELEASE-image/ (RELEASE/ holds only the headers)."""
    cache = KERNEL_DEBS / f"{release}-image"
    done = cache / ".complete"
    if not done.exists():
        cache.mkdir(parents=True, exist_ok=True)
        for old in cache.glob("*.deb"):
            old.unlink()
        run(["apt-get", "download", f"linux-image-{release}"], cwd=cache)
        done.write_text("\n".join(sorted(p.name for p in cache.glob("*.deb"))) + "\n")
    return next(cache.glob(f"linux-image-{release}_*.deb"))


def apt_would_install(packages: list[str], dpkg_status: Path) -> list[tuple[str, str]]:
    """(name, version) of every package `apt-get install PACKAGES` would install
    on a machine whose dpkg status file is DPKG_STATUS (a guest's), resolved by
    the host's apt from the host's lists (the mirror the guest images come from)."""
    out = run(["apt-get", "-s", "-q", "-o", f"Dir::State::status={dpkg_status}",
               "-o", "APT::Install-Recommends=false", "install", *packages]).stdout
    return re.findall(r"^Inst (\S+) (?:\[\S+\] )?\((\S+) ", out, re.M)


def signed_deb_repo(debs: list[Path], dest: Path, gnupghome: Path, suite: str = "bookworm") -> Path:
    """A flat apt repository (pool + dists/SUITE/main/binary-amd64) of DEBS,
    InRelease signed with the vpsnet signing key of GNUPGHOME."""
    pool = dest / "pool/main"
    pool.mkdir(parents=True)
    for deb in debs:
        shutil.copy2(deb, pool)
    d = dest / f"dists/{suite}/main/binary-amd64"
    d.mkdir(parents=True)
    packages = run(["apt-ftparchive", "--arch", "amd64", "packages", "pool"], cwd=dest).stdout
    (d / "Packages").write_text(packages)
    (d / "Packages.gz").write_bytes(gzip.compress(packages.encode()))
    release = run(
        [
            "apt-ftparchive",
            "-o", "APT::FTPArchive::Release::Origin=vpsnet-lab",
            "-o", f"APT::FTPArchive::Release::Suite={suite}",
            "-o", f"APT::FTPArchive::Release::Codename={suite}",
            "-o", "APT::FTPArchive::Release::Architectures=amd64",
            "-o", "APT::FTPArchive::Release::Components=main",
            "release", f"dists/{suite}",
        ],
        cwd=dest,
    ).stdout
    (dest / f"dists/{suite}/Release").write_text(release)
    fpr = run([str(PACKAGING / "scripts/signing-key.sh"), str(gnupghome)]).stdout.split()[-1]
    genv = {**ENV, "GNUPGHOME": str(gnupghome)}
    try:
        run(
            ["gpg", "--batch", "--yes", "--local-user", fpr, "--digest-algo", "SHA512",
             "--clearsign", "-o", f"dists/{suite}/InRelease", f"dists/{suite}/Release"],
            cwd=dest, env=genv,
        )
    finally:
        stop_gpg_agent(gnupghome)
    return dest


# ------------------------------------------------------------- server ---


class RepoServer:
    """HTTP on 127.0.0.1:PORT (the guests' http://10.0.2.101/). /<guest>/kernels/
    is the kernel headers repository; any other /<guest>/... is served from the
    directory currently routed to that guest (None: 404)."""

    def __init__(self, port: int) -> None:
        self.routes: dict[str, Path | None] = {}
        self.kernels: Path | None = None
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def translate_path(self, path: str) -> str:
                parts = [
                    urllib.parse.unquote(p)
                    for p in urllib.parse.urlsplit(path).path.split("/")
                    if p not in ("", ".", "..")
                ]
                if not parts:
                    return "/nonexistent"
                guest, rest = parts[0], parts[1:]
                base = server.routes.get(guest)
                if rest[:1] == ["kernels"]:
                    base, rest = server.kernels, rest[1:]
                return str(base.joinpath(*rest)) if base else "/nonexistent"

            def send_head(self):  # type: ignore[no-untyped-def]
                # Variants are copies with old mtimes: a 304 to apt's
                # If-Modified-Since would hide the swap of a repository.
                del self.headers["If-Modified-Since"]
                return super().send_head()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
