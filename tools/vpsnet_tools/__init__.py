"""vpsnet tools: read what the vpsnet kernel module exposes."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path


def _version() -> str:
    try:
        return metadata.version("vpsnet-tools")
    except metadata.PackageNotFoundError:
        top = Path(__file__).resolve().parents[2] / "VERSION"
        try:
            return top.read_text().strip()
        except OSError:
            return "0+unknown"


__version__ = _version()
