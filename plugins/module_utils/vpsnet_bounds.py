"""The limits every vpsnet_facts reader keeps: one time budget, capped file reads,
bounded integers and evidence-safe display. Standard library only; any vpsnet_facts
module_utils file and the module may import it."""

from __future__ import annotations

import math
import os
import re
import time

MAX_SYSFS = 64 * 1024  # DMI and PCI attributes are a line
MAX_INT = 2**31 - 1
# ASCII digits only: str.isdigit() accepts "²", which int() refuses
INT_RE = re.compile(r"[0-9]{1,10}")


def small_int(text: str | None, limit: int = MAX_INT) -> int | None:
    """A non-negative decimal of ASCII digits up to limit, else None (no exception)."""
    if text is None:
        return None
    text = text.strip()
    if not INT_RE.fullmatch(text):
        return None
    value = int(text)
    return value if value <= limit else None


def show(value: object, limit: int = 80) -> str:
    """A value for a line of evidence: quoted, control characters escaped, cut at limit."""
    text = value if isinstance(value, str) else repr(value)
    cut = text[:limit]
    shown = cut.encode("unicode_escape").decode("ascii")
    return f"'{shown}'" + ("..." if len(text) > limit else "")


def read_attr(path: str, limit: int = MAX_SYSFS) -> str | None:
    """A sysfs/DMI/proc file (at most limit bytes), stripped; None when absent or unreadable."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit)
    except (OSError, ValueError):
        return None
    return data.decode("utf-8", errors="replace").strip()


def link_basename(path: str) -> str | None:
    """The last part of where a symlink points (a device's driver), None if it is no link."""
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None


class Deadline:
    """One deadline for the whole detection, computed when it starts.

    Requests aim at `soft` (a little before the end) so that the worker has
    returned by the time the caller stops waiting at `hard`.
    """

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.start = time.monotonic()
        if seconds is None:
            self.hard = self.soft = math.inf
        else:
            self.hard = self.start + seconds
            self.soft = self.hard - min(0.1, seconds / 10)

    def remaining(self) -> float:
        """Seconds left before the soft deadline (never negative)."""
        return max(self.soft - time.monotonic(), 0.0)

    def spent(self, reserve: float = 0.0) -> bool:
        return time.monotonic() + reserve >= self.soft

    def elapsed(self) -> float:
        return time.monotonic() - self.start
