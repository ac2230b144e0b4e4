"""Other kernels' packages for the guest tests: headers and images downloaded
once with the host's apt into .cache/kernel-debs/, what a guest would need
besides, and a signed apt repository that serves them."""

from __future__ import annotations

import gzip
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from pkgtest.build import stop_gpg_agent
from pkgtest.host import ENV, PACKAGING, TOP, run

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


def download_once(cache: Path, packages: Callable[[], list[str]]) -> list[Path]:
    """The .debs in CACHE; on the first call only, PACKAGES() fetched there
    with `apt-get download` (a `.complete` file lists what it got)."""
    done = cache / ".complete"
    if not done.exists():
        cache.mkdir(parents=True, exist_ok=True)
        for old in cache.glob("*.deb"):
            old.unlink()
        run(["apt-get", "download", *packages()], cwd=cache)
        done.write_text("\n".join(sorted(p.name for p in cache.glob("*.deb"))) + "\n")
    return sorted(cache.glob("*.deb"))


def kernel_headers_debs(release: str) -> list[Path]:
    """The headers .debs for RELEASE, downloaded once into .cache/kernel-debs/RELEASE/."""
    return download_once(KERNEL_DEBS / release, lambda: headers_closure(release))


def kernel_image_deb(release: str) -> Path:
    """linux-image-RELEASE's .deb, downloaded once into
    .cache/kernel-debs/RELEASE-image/ (RELEASE/ holds only the headers)."""
    debs = download_once(KERNEL_DEBS / f"{release}-image", lambda: [f"linux-image-{release}"])
    return next(p for p in debs if p.name.startswith(f"linux-image-{release}_"))


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
