"""Where the lab keeps its cache, state and keys, and which kernels it boots."""

from __future__ import annotations

import os
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("VPSNET_CACHE", TOP / ".cache"))
IMAGES = CACHE / "images"
STATE = Path(os.environ.get("VPSNET_LAB_STATE", CACHE / "lab"))
INVENTORY = TOP / "inventories" / "lab" / "hosts.yml"
KERNELS_ENV = CACHE / "kernels.env"

KERNEL_SERIES = ("6.1", "6.12")


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
