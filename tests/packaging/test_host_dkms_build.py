"""Real `dkms build` of the packaged tree (vpsnet-dkms's /usr/src/vpsnet-<v>)
with a private --sourcetree/--dkmstree: for the 6.1 and 6.12 headers on the
host, and refused clearly without headers or for a kernel too old."""

from __future__ import annotations

from pathlib import Path

import pytest
from pkgtest.build import Build
from pkgtest.host import ENV, kernels, run
from pkgtest.package_files import extract

pytestmark = pytest.mark.packaging


def dkmstree(tmp_path: Path) -> Path:
    tree = tmp_path / "dkms"
    tree.mkdir(exist_ok=True)
    return tree


def dkms_build(build: Build, root: Path, tree: Path, kernel: str) -> list[str]:
    """`dkms build` of the tree unpacked under ROOT for KERNEL, state in TREE."""
    return ["dkms", "build", "-m", "vpsnet", "-v", build.version, "-k", kernel,
            "--sourcetree", str(root / "usr/src"), "--dkmstree", str(tree)]


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
    run(dkms_build(build, root, tree, kernel), env=env)
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
    proc = run(dkms_build(build, root, dkmstree(tmp_path), fake), check=False)
    assert proc.returncode != 0
    assert f"headers for kernel {fake} cannot be found" in proc.stdout + proc.stderr


def test_dkms_unsupported_kernel_is_skipped(build: Build, tmp_path: Path) -> None:
    """BUILD_EXCLUSIVE_KERNEL: kernels older than the probes' floor exit 77 (skipped)."""
    root = extract(build.deb("vpsnet-dkms"), tmp_path / "root")
    proc = run(dkms_build(build, root, dkmstree(tmp_path), "4.19.0-old-amd64"), check=False)
    assert proc.returncode == 77
