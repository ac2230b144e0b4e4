"""argparse value types shared by the vpsnet command-line tools."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

# int() and float() skip surrounding whitespace ("\r", "\x1c" included): refuse
# every control character (and the Unicode line breaks) before they look.
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def finite(kind: type[int] | type[float], low: float | None = None,
           high: float | None = None) -> Callable[[str], int | float]:
    """argparse type: a number of KIND, never nan or inf (1e999 is inf), within
    [low, high] when given."""

    def parse(text: str) -> int | float:
        try:
            if CONTROL_RE.search(text):
                raise ValueError(text)
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if (low is not None and value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text!r} is not in {low:g}..{high:g}")
        return value

    return parse


def one_line(text: str) -> str:
    """TEXT for a one-line message: control characters (a newline read from a
    damaged file, say) shown escaped, as Python writes them."""
    return CONTROL_RE.sub(lambda m: repr(m.group())[1:-1], text)
