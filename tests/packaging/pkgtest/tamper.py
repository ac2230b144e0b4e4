"""Tampered copies of a built repository: one byte of a .deb, or the Packages
indexes, changed behind the signature. For the host and guest apt tests."""

from __future__ import annotations

import gzip
from pathlib import Path


def apt_pool(repo: Path) -> Path:
    return repo / "apt/pool/main/v/vpsnet"


def tamper_deb(repo: Path, deb_name: str) -> Path:
    """Change one byte of a .deb in the repository's pool (indexes untouched)."""
    deb = apt_pool(repo) / deb_name
    data = bytearray(deb.read_bytes())
    data[-10] ^= 0xFF
    deb.write_bytes(bytes(data))
    return deb


def tamper_packages(repo: Path, suite: str = "bookworm") -> None:
    """Change the Packages indexes (same size, so only the signed hashes tell)."""
    for arch_dir in (repo / f"apt/dists/{suite}/main").glob("binary-*"):
        for name in ("Packages", "Packages.gz"):
            idx = arch_dir / name
            text = gzip.decompress(idx.read_bytes()) if name.endswith(".gz") else idx.read_bytes()
            changed = text.replace(b"Priority: optional", b"Priority: required")
            assert changed != text, f"nothing to tamper with in {idx}"
            idx.write_bytes(gzip.compress(changed) if name.endswith(".gz") else changed)
