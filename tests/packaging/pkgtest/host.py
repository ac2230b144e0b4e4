"""The build host as the packaging tests see it: repository paths, a plain PATH,
`run`, and the kernels setup resolved. Stdlib and vpsnet_lab only, because
tests/integration/test_rollout_builds.py loads this file by path; any test may import it."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vpsnet_lab.paths import kernel_matrix, oldest_abi

TOP = Path(__file__).resolve().parents[3]
PACKAGING = TOP / "packaging"
SYSPATH = "/usr/sbin:/usr/bin:/sbin:/bin"
ENV = {**os.environ, "PATH": SYSPATH}
REPO_URL = "http://10.0.2.101"


@dataclass
class Result:
    """What a command returned (a typed record, kept after the process is gone)."""

    rc: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run(cmd: list[str] | str, *, check: bool = True, **kw: Any) -> subprocess.CompletedProcess[str]:
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
