"""vpsnet tools: read what the vpsnet kernel module exposes."""

from __future__ import annotations

from pathlib import Path


def _version() -> str:
    # Imported here, not at the top: packages pin __version__ to a literal
    # (packaging/scripts/pin-tools-version.py), and the exporter's start is
    # slow on a loaded TCG guest (importlib.metadata: median 3.6 -> 3.1 s for
    # the exporter's imports).
    from importlib import metadata

    try:
        return metadata.version("vpsnet-tools")
    except metadata.PackageNotFoundError:
        top = Path(__file__).resolve().parents[2] / "VERSION"
        try:
            return top.read_text().strip()
        except OSError:
            return "0+unknown"


__version__ = _version()
