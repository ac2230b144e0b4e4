#!/usr/bin/env python3
"""Package builds for the canary-rollout scenario (molecule/rollout).

  python molecule/rollout/builds.py [DIST_DIR]   build (or reuse) the repository,
                                                 print its path on stdout

One signed repository (apt + dnf, for http://10.0.2.101, suite bookworm, made by
packaging/scripts/mkrepo.sh) carrying vpsnet-dkms, vpsnet-tools and the prebuilt
vpsnet-kmod-<kernel> for the fleet's three kernels in five versions, each packaged
from a patched copy of driver-src/ (driver-src itself is never touched):

  1.0.0  driver-src as it is
  1.1.0  additive: new metric family vpsnet_device_queues (patches/1.1.0-add-metric.patch)
  2.0.0  breaking: 1.1.0 with link_flaps_total renamed to link_flaps, ABI major still 1
         (patches/2.0.0-rename-link-flaps.patch): `vpsnet-abi diff` says breaking,
         undeclared break
  1.2.0  1.1.0 built with VPSNET_TEST_FORCE_UNHEALTHY=1 as the Makefile default
         (patches/1.2.0-force-unhealthy.patch): passes the ABI check, fails a health gate
  1.3.0  1.1.0 built with VPSNET_TEST_UNHEALTHY_AFTER=90 (patches/1.3.0-unhealthy-after.patch):
         healthy for 90 s after its reload, then tx_stalled: a slow failure that only
         the step's soak and analysis catch

The result is cached by a hash of everything that goes into it (this file, the
patches, the packaged files of driver-src/, tools/ and packaging/, VERSIONS, the
signing key's public keyring) in DIST/.stamp; a second call with nothing changed
returns at once. An exclusive flock on DIST/.lock keeps two callers from
building into the same DIST at the same time.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vpsnet_lab.paths import kernel_releases, oldest_abi

TOP = Path(__file__).resolve().parents[2]
CACHE = TOP / ".cache"
PATCHES = Path(__file__).resolve().parent / "patches"
DEFAULT_DIST = CACHE / "molecule-rollout" / "dist"
DEFAULT_GNUPGHOME = os.environ.get("VPSNET_GNUPGHOME", str(CACHE / "signing-gnupg"))
MODULE_SIGNING_DIR = Path(os.environ.get("VPSNET_MODULE_SIGNING_DIR",
                                         str(CACHE / "module-signing")))
REPO_URL = "http://10.0.2.101"
SUITE = "bookworm"
PACKAGES = ("vpsnet-dkms", "vpsnet-tools")
# Debian's tool chain, as packaging/Makefile uses it (never the venv's python3).
SYSPATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# What packaging/ is made from (the hash covers exactly these trees).
HASHED_TREES = ("driver-src", "tools", "packaging")


@dataclass(frozen=True)
class Release:
    version: str
    patches: tuple[str, ...]  # file names under patches/, applied in order with patch -p1
    summary: str


VERSIONS: tuple[Release, ...] = (
    Release("1.0.0", (), "driver-src as is"),
    Release("1.1.0", ("1.1.0-add-metric.patch",),
            "additive: new metric family vpsnet_device_queues"),
    Release("2.0.0", ("1.1.0-add-metric.patch", "2.0.0-rename-link-flaps.patch"),
            "breaking: link_flaps_total renamed to link_flaps, ABI major still 1"),
    Release("1.2.0", ("1.1.0-add-metric.patch", "1.2.0-force-unhealthy.patch"),
            "compatible ABI, built with VPSNET_TEST_FORCE_UNHEALTHY=1 (unhealthy)"),
    Release("1.3.0", ("1.1.0-add-metric.patch", "1.3.0-unhealthy-after.patch"),
            "compatible ABI, built with VPSNET_TEST_UNHEALTHY_AFTER=90 (slow failure)"),
)


def _say(msg: str) -> None:
    print(f"[rollout-builds] {msg}", file=sys.stderr, flush=True)


def _run(cmd: list[str], env: dict[str, str] | None = None) -> None:
    """Run cmd; on failure raise with its output (which is otherwise kept quiet)."""
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode})\n"
                           f"{proc.stdout[-4000:]}{proc.stderr[-4000:]}")


def packaged_files(tree: str) -> list[Path]:
    """Files of TOP/tree as packaging/scripts/stage.sh takes them: tracked plus
    untracked-but-not-ignored, no dotfiles (so kbuild output never counts)."""
    proc = subprocess.run(
        ["git", "-C", str(TOP), "ls-files", "-z", "--cached", "--others", "--exclude-standard",
         "--", tree], capture_output=True, check=True)
    names = sorted({n for n in proc.stdout.decode().split("\0") if n})
    return [TOP / n for n in names
            if not any(part.startswith(".") for part in Path(n).parts) and (TOP / n).is_file()]


def source_digest() -> str:
    """Hash of every input of the build except the signing key."""
    h = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        h.update(f"{label}\0{len(data)}\0".encode())
        h.update(data)

    add("builds.py", Path(__file__).read_bytes())
    add("VERSIONS", repr([(r.version, r.patches) for r in VERSIONS]).encode())
    add("repo", f"{REPO_URL} {SUITE}".encode())
    add("kernels", " ".join(fleet_kernels()).encode())
    for p in sorted(PATCHES.glob("*.patch")):
        add(f"patch:{p.name}", p.read_bytes())
    for tree in HASHED_TREES:
        for f in packaged_files(tree):
            add(str(f.relative_to(TOP)), f.read_bytes())
            add("mode", b"x" if os.access(f, os.X_OK) else b"-")
    return h.hexdigest()


def _key_digest(gnupghome: str) -> str:
    """The signing keys in use: the repository key's home and public keyring, and
    the fleet's module-signing certificate."""
    h = hashlib.sha256(os.path.abspath(gnupghome).encode())
    for ring in (Path(gnupghome) / "pubring.kbx", Path(gnupghome) / "pubring.gpg",
                 MODULE_SIGNING_DIR / "vpsnet-fleet.crt"):
        if ring.is_file():
            h.update(ring.read_bytes())
    return h.hexdigest()


def _stamp_text(sources: str, gnupghome: str) -> str:
    return f"{sources} {_key_digest(gnupghome)}\n"


def _is_built(dist: Path, stamp_text: str) -> bool:
    stamp = dist / ".stamp"
    try:
        return (stamp.read_text() == stamp_text
                and (dist / "repo" / "apt" / "dists" / SUITE / "InRelease").is_file()
                and (dist / "repo" / "rpm" / "repodata" / "repomd.xml.asc").is_file())
    except OSError:
        return False


def _clear(dist: Path) -> None:
    """Remove a previous build, keeping the lock file."""
    for child in dist.iterdir():
        if child.name == ".lock":
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def patched_source(release: Release, dest: Path) -> Path:
    """A copy of driver-src (the files stage.sh would package) with release's patches."""
    src = dest / "driver-src"
    for f in packaged_files("driver-src"):
        target = src / f.relative_to(TOP / "driver-src")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)
    for name in release.patches:
        _run(["patch", "-p1", "--forward", "--batch", "--no-backup-if-mismatch", "-s",
              "-d", str(src), "-i", str(PATCHES / name)])
    return src


def _build(dist: Path, gnupghome: str) -> None:
    env = {**os.environ, "MAKEFLAGS": "", "MAKELEVEL": ""}
    with tempfile.TemporaryDirectory(prefix="vpsnet-rollout-src-") as tmp:
        # stage.sh copies a tree that is inside a git work tree with git ls-files:
        # the patched copies must live outside one.
        if subprocess.run(["git", "-C", tmp, "rev-parse", "--is-inside-work-tree"],
                          capture_output=True, check=False).returncode == 0:
            raise RuntimeError(f"{tmp} is inside a git work tree: set TMPDIR elsewhere")
        for release in VERSIONS:
            _say(f"{release.version}: {release.summary}")
            src = patched_source(release, Path(tmp) / release.version)
            _run(["make", "-s", "-C", str(TOP / "packaging"), "packages",
                  f"VERSION={release.version}", f"DRIVER_SRC={src}",
                  f"TOOLS_SRC={TOP / 'tools'}", f"DIST={dist}",
                  f"KERNELS={','.join(fleet_kernels())}"], env=env)
    _run(["bash", str(TOP / "packaging" / "scripts" / "mkrepo.sh"), str(dist), gnupghome,
          REPO_URL, SUITE], env={**env, "PATH": SYSPATH, "VPSNET_MODULE_CERT": module_cert()})


def fleet_kernels() -> list[str]:
    """The kernels the rollout fleet boots (the newest of each series and the
    oldest 6.1 ABI, rolloutlab.py): the prebuilt modules are built for these
    only, not the whole matrix."""
    return sorted({*kernel_releases().values(), oldest_abi("6.1")})


def module_cert() -> str:
    out = subprocess.run([str(TOP / "packaging" / "scripts" / "module-signing-key.sh"),
                          str(MODULE_SIGNING_DIR)], capture_output=True, text=True, check=True)
    return out.stdout.split()[1]


def build_rollout_repo(dist: Path = DEFAULT_DIST, gnupghome: str = DEFAULT_GNUPGHOME) -> Path:
    """Build (or reuse) the rollout repository under dist; returns dist/repo.

    Packages land in dist/ (vpsnet-{dkms,tools}_<v>_all.deb, *-<v>-1.noarch.rpm),
    the signed repository in dist/repo/ (layout: packaging/README.md).
    """
    dist = Path(dist).resolve()
    dist.mkdir(parents=True, exist_ok=True)
    with (dist / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        sources = source_digest()
        if _is_built(dist, _stamp_text(sources, gnupghome)):
            return dist / "repo"
        (dist / ".stamp").unlink(missing_ok=True)
        _clear(dist)
        _build(dist, gnupghome)
        # The key may have been created by this build: stamp what was used.
        (dist / ".stamp").write_text(_stamp_text(sources, gnupghome))
    return dist / "repo"


def main(argv: list[str]) -> int:
    if len(argv) > 1 or argv[:1] in (["-h"], ["--help"]):
        print(__doc__, file=sys.stderr)
        return 2
    dist = Path(argv[0]) if argv else DEFAULT_DIST
    print(build_rollout_repo(dist))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
