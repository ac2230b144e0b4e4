"""Session fixtures of test_abi_ko*.py: kver, other_kver and kos, every variant
of abi_ko_variants.py built once per session for one kernel (the first in
.cache/kernels.env). Those test files load it with pytest_plugins, so both
share one build."""

from __future__ import annotations

from pathlib import Path

import pytest
from abi_ko_variants import TOP, VARIANTS
from host_build import copy_driver_src, make

KERNELS_ENV = TOP / ".cache" / "kernels.env"


def _kernels() -> list[str]:
    if not KERNELS_ENV.exists():
        return []
    ks = [ln.split("=", 1)[1].strip() for ln in KERNELS_ENV.read_text().splitlines()
          if "=" in ln]
    return [k for k in ks if Path(f"/lib/modules/{k}/build/Makefile").exists()]

@pytest.fixture(scope="session")
def kver() -> str:
    ks = _kernels()
    if not ks:
        pytest.skip(f"no kernel headers listed in {KERNELS_ENV} are installed")
    return ks[0]


@pytest.fixture(scope="session")
def other_kver(kver: str) -> str:
    others = [k for k in _kernels() if k != kver]
    if not others:
        pytest.skip("needs headers for a second kernel")
    return others[0]


@pytest.fixture(scope="session")
def kos(kver: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every variant built once: name -> vpsnet.ko."""
    root = tmp_path_factory.mktemp("abi-variants")
    out: dict[str, Path] = {}
    for name, (patch, flags) in VARIANTS.items():
        src = copy_driver_src(root / name)
        if patch:
            patch(src)
        r = make(src, f"KVER={kver}", *flags)
        assert r.returncode == 0, f"{name}: {r.stdout}{r.stderr}"
        out[name] = src / "vpsnet.ko"
    return out
