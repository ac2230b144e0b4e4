"""Where the lab keeps its cache, state and keys, and which kernels it boots."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("VPSNET_CACHE", TOP / ".cache"))
IMAGES = CACHE / "images"
STATE = Path(os.environ.get("VPSNET_LAB_STATE", CACHE / "lab"))
INVENTORY = TOP / "inventories" / "lab" / "hosts.yml"
KERNEL_MATRIX = CACHE / "kernel-matrix.txt"
KERNELS_ENV = CACHE / "kernels.env"

KERNEL_SERIES = ("6.1", "6.12")
# An exact Debian 12 cloud kernel release (an ABI): 6.1.0-47-cloud-amd64,
# 6.12.107+deb12-cloud-amd64. Only these two forms come from the suites the
# guest images install from (bookworm, -updates, -security).
# Used with fullmatch ($ would let a trailing newline through); [0-9], not \d,
# which takes other scripts' digits.
RELEASE_RE = re.compile(r"(?P<series>[0-9]+\.[0-9]+)\.[0-9]+(?:-[0-9]+|\+deb[0-9]+)-cloud-amd64")
KERNEL_HELP = f"{', '.join(KERNEL_SERIES)} or an exact release such as 6.1.0-47-cloud-amd64"


class LabError(Exception):
    """An error the lab reports to the user as one clear line."""


def kernel_releases() -> dict[str, str]:
    """Kernel series -> Debian release name, as resolved by scripts/setup.sh."""
    if not KERNELS_ENV.exists():
        raise LabError(f"{KERNELS_ENV} is missing: run scripts/setup.sh (make setup) first")
    found: dict[str, str] = {}
    for line in KERNELS_ENV.read_text().splitlines():
        key, _, value = line.partition("=")
        if key.startswith("VPSNET_KERNEL_") and value:
            found[key.removeprefix("VPSNET_KERNEL_").replace("_", ".")] = value.strip()
    missing = [s for s in KERNEL_SERIES if s not in found]
    if missing:
        raise LabError(f"{KERNELS_ENV} names no kernel for series {', '.join(missing)}")
    return found


def kernel_matrix() -> list[tuple[str, str]]:
    """(series, release) of every kernel of packaging/kernels.yml, oldest first
    in each series, as scripts/setup.sh resolved it."""
    if not KERNEL_MATRIX.exists():
        raise LabError(f"{KERNEL_MATRIX} is missing: run scripts/setup.sh (make setup) first")
    rows = [line.split() for line in KERNEL_MATRIX.read_text().splitlines() if line.strip()]
    return [(row[0], row[1]) for row in rows]


def oldest_abi(series: str) -> str:
    """The oldest ABI of SERIES in the matrix: what a fleet host that missed
    kernel updates runs; never the newest one."""
    older = [r for s, r in kernel_matrix() if s == series and r != kernel_releases()[series]]
    if not older:
        raise LabError(f"the kernel matrix has one ABI of series {series} only")
    return older[0]


def release_series(value: str) -> str | None:
    """The series of an exact release name (6.1.0-47-cloud-amd64 -> 6.1), else None."""
    m = RELEASE_RE.fullmatch(value)
    return m["series"] if m and m["series"] in KERNEL_SERIES else None


def kernel_syntax_ok(value: str) -> bool:
    return value in KERNEL_SERIES or release_series(value) is not None


def apt_knows(package: str) -> bool:
    """Whether the host's apt lists have `package` (the image installs from the same mirror)."""
    proc = subprocess.run(["apt-cache", "show", "--no-all-versions", package],
                          capture_output=True, text=True, check=False)
    return proc.returncode == 0 and f"Package: {package}\n" in proc.stdout


def resolve_kernel(value: str) -> tuple[str, str]:
    """A spec's `kernel:` (series or exact release) -> (series, release)."""
    if value in KERNEL_SERIES:
        return value, kernel_releases()[value]
    series = release_series(value)
    if series is None:
        raise LabError(f"unknown kernel {value!r}: expected {KERNEL_HELP}")
    if not apt_knows(f"linux-image-{value}"):
        raise LabError(f"kernel {value!r}: apt knows no package linux-image-{value} "
                       "(apt-cache search '^linux-image-.*-cloud-amd64$' lists the ones it has)")
    return series, value
