"""The one package builder of the packaging tests: `make -C packaging` into a
temp dist with a private signing key. build_packages() is what the session
fixture `build` (conftest.py) runs once; the variants (another version from a
broken source, a repository with fewer packages) reuse its key and sources."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from pkgtest.host import PACKAGING, REPO_URL, TOP, kmod_kernels, run
from pkgtest.stubs import broken_copy, stub_driver, stub_tools


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
    run(["make", "-s", "-C", str(PACKAGING), target, f"DIST={b_dist}",
         f"SIGNING_GNUPGHOME={gnupghome}", f"REPO_URL={REPO_URL}", *args])


def bump_minor(version: str) -> str:
    major, minor, *_ = version.split(".")
    return f"{major}.{int(minor) + 1}.0"


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


def broken_dkms_deb(build: Build, version: str, name: str) -> Path:
    """vpsnet-dkms at VERSION from a driver source that does not compile (the
    failed-build tests, host and guest)."""
    dist = build.work / f"dist-{name}"
    make("deb", dist, build.gnupghome, VERSION=version,
         DRIVER_SRC=str(broken_copy(build.driver_src, build.work / f"{name}-driver")),
         TOOLS_SRC=str(build.tools_src))
    return dist / f"vpsnet-dkms_{version}_all.deb"


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


def without_kmods(build: Build, dest: Path) -> Path:
    """The same signed repository minus every vpsnet-kmod package: what a host
    on a kernel outside the matrix sees."""
    dist = dest / "dist"
    dist.mkdir(parents=True)
    for p in build.dist.glob("vpsnet-*"):
        if p.is_file() and not p.name.startswith("vpsnet-kmod-"):
            shutil.copy2(p, dist)
    make("repo", dist, build.gnupghome)
    return dist / "repo"
