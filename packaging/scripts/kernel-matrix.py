#!/usr/bin/python3
# SPDX-License-Identifier: GPL-2.0-only
"""Resolve the kernel matrix (packaging/kernels.yml) against apt.

  kernel-matrix.py [--matrix FILE] [--only RELEASE,...]   one "series release" per line

The releases are those apt has linux-headers-<release> and the signed
linux-image-<release> for (run `apt-get update` first) that match a series'
`releases` pattern,
newest first cut to `newest`, printed oldest first. --only keeps a subset and
fails naming any release that is not in the matrix. Runs with Debian's python3
(python3-yaml), before any venv exists, so that scripts/setup.sh can install
the headers it needs.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

DEFAULT_MATRIX = Path(__file__).resolve().parents[1] / "kernels.yml"


class MatrixError(Exception):
    pass


@dataclass(frozen=True)
class Series:
    name: str
    releases: re.Pattern[str]
    newest: int | None  # None: all


def release_key(release: str) -> tuple[int, ...]:
    """Order releases the way their versions go: 6.1.0-47 < 6.1.0-57, 6.12.107 < 6.12.117."""
    return tuple(int(n) for n in re.findall(r"[0-9]+", release))


def load(path: Path) -> list[Series]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise MatrixError(f"{path}: {e}") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("series"), list) or not doc["series"]:
        raise MatrixError(f"{path}: want a mapping with a non-empty list 'series'")
    out: list[Series] = []
    for i, s in enumerate(doc["series"]):
        where = f"{path}: series[{i}]"
        if not isinstance(s, dict) or set(s) - {"name", "releases", "newest"}:
            raise MatrixError(f"{where}: want keys name, releases, newest; got {s!r}")
        name, pattern, newest = s.get("name"), s.get("releases"), s.get("newest", "all")
        if not isinstance(name, str) or not re.fullmatch(r"[0-9]+\.[0-9]+", name):
            raise MatrixError(f"{where}: name {name!r} is not a kernel series such as '6.1'")
        if not isinstance(pattern, str) or not pattern:
            raise MatrixError(f"{where}: releases {pattern!r} is not a regular expression")
        try:
            rx = re.compile(pattern)
        except re.error as e:
            raise MatrixError(f"{where}: releases {pattern!r}: {e}") from e
        if newest != "all" and (isinstance(newest, bool) or not isinstance(newest, int)
                                or newest < 1):
            raise MatrixError(f"{where}: newest {newest!r} is neither 'all' nor a count >= 1")
        out.append(Series(name, rx, None if newest == "all" else newest))
    if len({s.name for s in out}) != len(out):
        raise MatrixError(f"{path}: a series is listed twice")
    return out


def apt_releases() -> list[str]:
    """Releases apt has both linux-headers-<release> and the signed
    linux-image-<release> for. A release whose signed image is not on the mirror
    yet (only linux-image-<release>-unsigned, as 6.12.118 was on 2026-12-02) is
    not one a fleet host boots, and a vpsnet-kmod package for it, which depends on
    exactly that image, could not be installed."""
    proc = subprocess.run(["apt-cache", "search", "--names-only", "^linux-(headers|image)-"],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise MatrixError(f"apt-cache search failed: {proc.stderr.strip()}")
    return usable_releases(line.split()[0] for line in proc.stdout.splitlines() if line.strip())


def usable_releases(packages: Iterable[str]) -> list[str]:
    """The releases of PACKAGES (package names) that have both a headers and an image package."""
    names = set(packages)
    return sorted(n.removeprefix("linux-headers-") for n in names
                  if n.startswith("linux-headers-")
                  and "linux-image-" + n.removeprefix("linux-headers-") in names)


def resolve(series: list[Series], available: list[str]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for s in series:
        found = sorted({r for r in available if s.releases.fullmatch(r)}, key=release_key)
        if not found:
            raise MatrixError(f"series {s.name}: apt knows no linux-headers-<release> with its "
                              f"linux-image-<release> matching "
                              f"{s.releases.pattern!r} (run apt-get update?)")
        if s.newest is not None:
            found = found[-s.newest:]
        out.extend((s.name, r) for r in found)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--matrix", type=Path, default=DEFAULT_MATRIX)
    ap.add_argument("--only", default="", help="comma-separated releases to keep")
    args = ap.parse_args(argv)
    try:
        matrix = resolve(load(args.matrix), apt_releases())
        if args.only:
            wanted = [r for r in args.only.split(",") if r]
            unknown = [r for r in wanted if r not in {rel for _, rel in matrix}]
            if unknown:
                raise MatrixError(f"not in the kernel matrix ({args.matrix}): "
                                  f"{', '.join(unknown)}")
            matrix = [(s, r) for s, r in matrix if r in wanted]
    except MatrixError as e:
        print(f"kernel-matrix.py: {e}", file=sys.stderr)
        return 1
    for s, r in matrix:
        print(s, r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
