"""vpsnet tools: read what the vpsnet kernel module exposes."""

from __future__ import annotations

from pathlib import Path


def _version() -> str:
    # Imported here, not at the top: packages pin __version__ to a literal
    # (packaging/scripts/pin-tools-version.py), and importing importlib.metadata
    # alone took ~3 s of the exporter's ~12 s restart on a loaded TCG guest.
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
