"""Host builds of vpsnet.ko from a clean copy of driver-src (test_build, test_abi_ko)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]
# what a build in the repo's driver-src may have left there
BUILD_OUTPUT = ("*.o", "*.ko", "*.mod*", ".*.cmd", "vpsnet_config.h", ".vpsnet_config.id",
                ".check.log", "modules.order", "Module.symvers")


def copy_driver_src(src: Path) -> Path:
    """driver-src without build output, plus the top-level VERSION, copied to SRC."""
    shutil.copytree(TOP / "driver-src", src, ignore=shutil.ignore_patterns(*BUILD_OUTPUT))
    shutil.copy(TOP / "VERSION", src / "VERSION")
    return src


def make(directory: Path | str, *args: str, timeout: float = 600
         ) -> subprocess.CompletedProcess[str]:
    """`make -C DIRECTORY ARGS`, outside any outer make, with the repo's .cache."""
    env = {**os.environ, "MAKEFLAGS": "", "VPSNET_CACHE": str(TOP / ".cache")}
    return subprocess.run(["make", "-C", str(directory), *args], capture_output=True,
                          text=True, timeout=timeout, env=env)
