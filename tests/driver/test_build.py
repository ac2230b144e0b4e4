"""Host-side build checks: vpsnet.ko builds with zero W=1 warnings and passes make check."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from host_build import copy_driver_src, make

TOP = Path(__file__).resolve().parents[2]
KERNELS_ENV = TOP / ".cache" / "kernels.env"


def _kernels() -> list[str]:
    if not KERNELS_ENV.exists():
        return []
    return [ln.split("=", 1)[1].strip() for ln in KERNELS_ENV.read_text().splitlines()
            if "=" in ln]


@pytest.mark.build
@pytest.mark.parametrize("kver", _kernels() or ["<none>"])
def test_build_and_check(kver: str, tmp_path: Path) -> None:
    if not Path(f"/lib/modules/{kver}/build/Makefile").exists():
        pytest.skip(f"headers for {kver} not installed (see {KERNELS_ENV})")
    src = copy_driver_src(tmp_path / "driver-src")

    r = make(src, f"KVER={kver}", "W=1", timeout=900)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert not re.search(r"\b(warning|error):", out), out
    assert (src / "vpsnet.ko").exists()
    assert f"vermagic:       {kver} " in subprocess.run(
        ["modinfo", str(src / "vpsnet.ko")], capture_output=True, text=True).stdout

    r = make(src, f"KVER={kver}", "check", timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "CHECK" in r.stdout  # sparse ran
    assert r.stdout.count("total: 0 errors, 0 warnings, 0 checks") >= 8

    r = make(src, f"KVER={kver}", "clean", timeout=900)
    assert r.returncode == 0
    assert not (src / "vpsnet.ko").exists()


@pytest.mark.build
def test_test_only_flag_build(tmp_path: Path) -> None:
    kernels = [k for k in _kernels() if Path(f"/lib/modules/{k}/build/Makefile").exists()]
    if not kernels:
        pytest.skip("no kernel headers installed")
    src = copy_driver_src(tmp_path / "driver-src")
    r = make(src, f"KVER={kernels[-1]}", "VPSNET_TEST_FORCE_UNHEALTHY=1", timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    from vpsnet_tools.manifest import read_manifest

    assert read_manifest(src / "vpsnet.ko")["build"] == {"test_force_unhealthy": True,
                                                    "test_unhealthy_after": 0}


def test_make_without_headers_fails_clearly(tmp_path: Path) -> None:
    src = copy_driver_src(tmp_path / "driver-src")
    r = make(src, "KVER=0.0.0-none", timeout=900)
    assert r.returncode != 0
    assert "no kernel headers for '0.0.0-none'" in r.stderr
