"""Host-side build checks: vpsnet.ko builds with zero W=1 warnings and passes make check."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

TOP = Path(__file__).resolve().parents[2]
KERNELS_ENV = TOP / ".cache" / "kernels.env"


def _kernels() -> list[str]:
    if not KERNELS_ENV.exists():
        return []
    return [ln.split("=", 1)[1].strip() for ln in KERNELS_ENV.read_text().splitlines()
            if "=" in ln]


def _copy_src(dst: Path) -> Path:
    src = dst / "driver-src"
    shutil.copytree(TOP / "driver-src", src,
                    ignore=shutil.ignore_patterns("*.o", "*.ko", "*.mod*", ".*.cmd",
                                                  "vpsnet_config.h", ".vpsnet_config.id",
                                                  ".check.log", "modules.order",
                                                  "Module.symvers"))
    shutil.copy(TOP / "VERSION", src / "VERSION")
    return src


def _make(src: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MAKEFLAGS": "", "VPSNET_CACHE": str(TOP / ".cache")}
    return subprocess.run(["make", "-C", str(src), *args], capture_output=True, text=True,
                          timeout=900, env=env)


@pytest.mark.build
@pytest.mark.parametrize("kver", _kernels() or ["<none>"])
def test_build_and_check(kver: str, tmp_path: Path) -> None:
    if not Path(f"/lib/modules/{kver}/build/Makefile").exists():
        pytest.skip(f"headers for {kver} not installed (see {KERNELS_ENV})")
    src = _copy_src(tmp_path)

    r = _make(src, f"KVER={kver}", "W=1")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert not re.search(r"\b(warning|error):", out), out
    assert (src / "vpsnet.ko").exists()
    assert f"vermagic:       {kver} " in subprocess.run(
        ["modinfo", str(src / "vpsnet.ko")], capture_output=True, text=True).stdout

    r = _make(src, f"KVER={kver}", "check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "CHECK" in r.stdout  # sparse ran
    assert r.stdout.count("total: 0 errors, 0 warnings, 0 checks") >= 8

    r = _make(src, f"KVER={kver}", "clean")
    assert r.returncode == 0
    assert not (src / "vpsnet.ko").exists()


@pytest.mark.build
def test_test_only_flag_build(tmp_path: Path) -> None:
    kernels = [k for k in _kernels() if Path(f"/lib/modules/{k}/build/Makefile").exists()]
    if not kernels:
        pytest.skip("no kernel headers installed")
    src = _copy_src(tmp_path)
    r = _make(src, f"KVER={kernels[-1]}", "VPSNET_TEST_FORCE_UNHEALTHY=1")
    assert r.returncode == 0, r.stdout + r.stderr
    from vpsnet_tools.manifest import read_manifest

    assert read_manifest(src / "vpsnet.ko")["build"] == {"test_force_unhealthy": True,
                                                    "test_unhealthy_after": 0}


def test_make_without_headers_fails_clearly(tmp_path: Path) -> None:
    src = _copy_src(tmp_path)
    r = _make(src, "KVER=0.0.0-none")
    assert r.returncode != 0
    assert "no kernel headers for '0.0.0-none'" in r.stderr
