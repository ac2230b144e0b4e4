"""Reading built packages on the host: a .deb's control fields and files, an
.rpm's query output. For the host-side packaging tests."""

from __future__ import annotations

from pathlib import Path

from pkgtest.host import run


def deb_field(deb: Path, field: str) -> str:
    return run(["dpkg-deb", "-f", str(deb), field]).stdout.strip()


def extract(deb: Path, dest: Path) -> Path:
    """DEB's files under DEST (unpacked once: a second call reuses them)."""
    if not dest.exists():
        run(["dpkg-deb", "-x", str(deb), str(dest)])
    return dest


def rpmq(rpm: Path, *args: str) -> str:
    return run(["rpm", "-qp", *args, str(rpm)]).stdout
