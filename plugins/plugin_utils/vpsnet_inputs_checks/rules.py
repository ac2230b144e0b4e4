# SPDX-License-Identifier: GPL-2.0-only
"""The rules every check shares: limits, how a bad value is shown, no control
characters in a string, and what counts as a number. Imported by the other
modules of this package."""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any

Errors = list[str]

SHOW_MAX = 72
INT_LIMIT = 2**63 - 1
NUMBER_LIMIT = 1e15
STRING_MAX = 256
LIST_MAX = 64

INT_RE = re.compile(r"[+-]?[0-9]{1,19}")
NUMBER_RE = re.compile(r"[+-]?([0-9]{1,16}(\.[0-9]{0,12})?|\.[0-9]{1,12})")


class SpecError(ValueError):
    """A role's spec is wrong (a programming error, still reported in one line)."""


def show(value: Any) -> str:
    """The value as an error shows it: repr (control characters escaped), truncated."""
    try:
        text = repr(value)
    except Exception:
        text = f"<{type_name(value)}>"
    return text if len(text) <= SHOW_MAX else text[: SHOW_MAX - 3] + "..."


def type_name(value: Any) -> str:
    """The plain type name (Ansible wraps values in tagged subclasses of str, list...)."""
    for base in type(value).__mro__:
        if base.__module__ == "builtins" and base is not object:
            return base.__name__
    return type(value).__name__


def number_text(number: float) -> str:
    """A number for a message: integral ones without a fraction, huge ones by size."""
    if isinstance(number, int) and number.bit_length() > 64:
        return f"<{number.bit_length()}-bit integer>"
    if isinstance(number, int) or (math.isfinite(number) and number == int(number)
                                   and abs(number) < 1e16):
        return str(int(number))
    return repr(number)


def control_char(text: str) -> int | None:
    """Index of the first control character (C0, DEL, C1, U+2028/2029, surrogate), or None."""
    for index, char in enumerate(text):
        code = ord(char)
        if code < 0x20 or 0x7F <= code <= 0x9F or code in (0x2028, 0x2029):
            return index
        if 0xD800 <= code <= 0xDFFF or unicodedata.category(char) in ("Zl", "Zp"):
            return index
    return None


def string_error(name: str, value: Any, max_len: int, min_len: int) -> str | None:
    """Errors common to every string check, as one message (None: fine)."""
    if value is None:
        return f"{name} is not set"
    if not isinstance(value, str):
        return f"{name}={show(value)} is not a string ({type_name(value)})"
    bad = control_char(value)
    if bad is not None:
        return f"{name}={show(value)} contains a control character ({value[bad]!r} at {bad})"
    if len(value) > max_len:
        return f"{name}={show(value)} is longer than {max_len} characters ({len(value)})"
    if len(value) < min_len:
        return f"{name}={show(value)} is empty" if min_len == 1 and not value else \
            f"{name}={show(value)} is shorter than {min_len} characters"
    return None


def string_verdict(name: str, value: Any, max_len: int, allow_empty: bool) -> Errors | None:
    """What a check of a non-empty string returns when the common rules decide
    already: [] for an empty string ALLOW_EMPTY lets pass, [error] for a bad
    one; None when VALUE is a plain string the check goes on with."""
    if allow_empty and value == "":
        return []
    error = string_error(name, value, max_len, 1)
    return [error] if error else None


def parse_number(value: Any, integer: bool) -> float | int | str:
    """The number VALUE holds, or why not (a str). Strings: plain decimal only
    (float() would take 'nan', 'inf', '1_0', ' 5')."""
    if isinstance(value, bool):
        return "is a boolean, not a number"
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return "is not a finite number"
        if integer and value != int(value):
            return "is not a whole number"
        return int(value) if integer else value
    if isinstance(value, str):
        if integer:
            if INT_RE.fullmatch(value):
                return int(value)
            if NUMBER_RE.fullmatch(value):
                return "is not a whole number"
            return "is not an integer"
        if NUMBER_RE.fullmatch(value):
            return float(value)
        return "is not a number"
    return f"is not a number ({type_name(value)})"


def spec_bound(bound: Any) -> float | None:
    """A range bound from a spec (templated values may come as strings)."""
    if bound is None:
        return None
    parsed = parse_number(bound, integer=False)
    if isinstance(parsed, str):
        raise SpecError(f"range bound {bound!r} {parsed}")
    return int(parsed) if float(parsed).is_integer() else float(parsed)


def range_errors(name: str, number: float, minimum: Any, maximum: Any,
                 greater_than: Any) -> Errors:
    """NUMBER against the spec's bounds (MINIMUM..MAXIMUM, or above GREATER_THAN)."""
    minimum, maximum = spec_bound(minimum), spec_bound(maximum)
    greater_than = spec_bound(greater_than)
    lo = "" if minimum is None and greater_than is None else number_text(
        greater_than if minimum is None else minimum)
    hi = "" if maximum is None else number_text(maximum)
    bad = (minimum is not None and number < minimum) or (maximum is not None and number > maximum) \
        or (greater_than is not None and number <= greater_than)
    if not bad:
        return []
    if greater_than is not None and minimum is None:
        span = f"must be > {lo}" + (f" and <= {hi}" if hi else "")
        return [f"{name}={number_text(number)} {span}"]
    return [f"{name}={number_text(number)} is outside {lo}..{hi}"]
