"""Field checks for lab specs: each failure is recorded as one "field: message"
line that shows the bad value short, escaped and as the user wrote it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .paths import KERNEL_HELP, kernel_syntax_ok
from .specfile import YamlFloat, YamlInt, join, short

CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def shown(value: Any) -> str:
    """A bad value in a message: short, on one line, as the user wrote it."""
    if isinstance(value, YamlFloat | YamlInt):
        return value.text if len(value.text) <= 60 else value.text[:57] + "..."
    if isinstance(value, list | tuple | dict | set):
        return _kind(value)  # repr() of a deep structure recurses without bound
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"  # str() refuses > 4300 digits
    return short(value)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {value} (YAML reads unquoted yes/no/on/off/true/false so)"
    if isinstance(value, int | float):
        return f"the number {shown(value)}"
    if isinstance(value, list | tuple | set):
        return "a list"
    return "a mapping" if isinstance(value, dict) else shown(value)


class Checker:
    """Field checks that record one "field: message" line per failure."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.problems.append(f"{where}: {message}")

    def keys(self, raw: dict[Any, Any], allowed: set[str], where: str) -> None:
        bad = [k for k in raw if not isinstance(k, str)]
        for key in bad:
            self.add(where or "top level", f"a key is {_kind(key)}, not a string"
                     if isinstance(key, tuple | frozenset) else f"key {shown(key)} is not a string")
        for key in sorted(set(raw) - allowed - set(bad)):
            self.add(join(where, key), f"unknown key (expected one of "
                                       f"{', '.join(sorted(allowed))})")

    def mapping(self, value: Any, where: str, what: str) -> dict[Any, Any] | None:
        if isinstance(value, dict):
            return value
        self.add(where, f"expected {what}, got {_kind(value)}")
        return None

    def items(self, value: Any, where: str, what: str) -> list[Any]:
        if isinstance(value, list):
            return value
        self.add(where, f"expected a list of {what}, got {_kind(value)}")
        return []

    def integer(self, value: Any, where: str, lo: int, hi: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(where, f"missing (an integer {lo}..{hi})" if value is None else
                     f"{shown(value)} is not an integer" +
                     (" (a boolean)" if isinstance(value, bool) else ""))
            return None
        if not lo <= value <= hi:
            self.add(where, f"{shown(value)} is out of range {lo}..{hi}")
            return None
        return int(value)

    def string(self, value: Any, where: str, pattern: re.Pattern[str] | None = None,
               what: str = "") -> str:
        """A non-empty string (fully matching PATTERN), else "" and a problem."""
        if not isinstance(value, str) or not value:
            self.add(where, "missing or empty" if value in (None, "") else
                     f"expected a string, got {_kind(value)}")
            return ""
        if pattern is not None and not pattern.fullmatch(value):
            self.add(where, f"{shown(value)} is not {what}")
            return ""
        if CONTROL_RE.search(value):
            self.add(where, f"{shown(value)} holds control characters")
            return ""
        return value

    def choice(self, value: Any, where: str, choices: Iterable[str], what: str) -> str | None:
        choices = tuple(choices)
        if isinstance(value, str) and value in choices:
            return value
        self.add(where, f"missing (expected one of {', '.join(choices)})" if value is None else
                 f"unknown {what} {shown(value)} (expected one of {', '.join(choices)})")
        return None

    def kernel(self, value: Any, where: str) -> str:
        if isinstance(value, str) and kernel_syntax_ok(value):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            text = shown(value)
            number = int(value) if isinstance(value, int) else float(value)
            read = f" (YAML reads it as {number!r})" if text != repr(number) else ""
            self.add(where, f"the number {text}{read}: kernel versions must be strings, "
                            f"quote it: kernel: \"{text}\"")
        elif value is None:
            self.add(where, f"missing (expected {KERNEL_HELP})")
        else:
            self.add(where, f"unknown kernel {shown(value)} (expected {KERNEL_HELP})")
        return ""
