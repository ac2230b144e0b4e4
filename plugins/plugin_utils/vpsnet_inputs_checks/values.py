# SPDX-License-Identifier: GPL-2.0-only
"""Checks of one value: strings, choices, names, booleans, numbers, and the
formats vpsnet takes (release versions, regular expressions, Ansible serial
batches). Imported by dispatch.py."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .rules import (
    INT_LIMIT,
    NUMBER_LIMIT,
    STRING_MAX,
    Errors,
    parse_number,
    range_errors,
    show,
    string_error,
    string_verdict,
    type_name,
)

IDENTIFIER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
BATCH_PERCENT_RE = re.compile(r"(100|[1-9][0-9]?)%")
BOOL_STRINGS = {"true": True, "yes": True, "on": True, "1": True,
                "false": False, "no": False, "off": False, "0": False}


def _release_version_re() -> re.Pattern[str]:
    """VERSION_RE of tools/vpsnet_tools/release_version.py, the one definition
    vpsnet-status shares: loaded by path (no sys.path edits)."""
    path = Path(__file__).resolve().parents[3] / "tools" / "vpsnet_tools" / "release_version.py"
    spec = importlib.util.spec_from_file_location("vpsnet_inputs_release_version", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    pattern: re.Pattern[str] = module.VERSION_RE
    return pattern


VERSION_RE = _release_version_re()


def check_string(name: str, value: Any, *, pattern: str | None = None, what: str = "",
                 min_len: int = 0, max_len: int = STRING_MAX, allow_empty: bool = True,
                 choices: Sequence[str] | None = None, numbers: bool = False) -> Errors:
    """A string without control characters, of bounded length; PATTERN (fully
    matched) or CHOICES when given. An empty string passes when ALLOW_EMPTY;
    with NUMBERS a finite int or float is read as its decimal text."""
    if numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
        parsed = parse_number(value, integer=False)
        if isinstance(parsed, str):
            return [f"{name}={show(value)} {parsed}"]
        value = str(value)
    if allow_empty and value == "":
        return []
    error = string_error(name, value, max_len, max(min_len, 0 if allow_empty else 1))
    if error:
        return [error]
    if choices is not None and value not in choices:
        return [f"{name}={show(value)} is not a known {what or 'value'} "
                f"(one of {', '.join(map(str, choices))})"]
    if pattern is not None and not re.fullmatch(pattern, value):
        return [f"{name}={show(value)} is not {what or 'a value matching ' + pattern}"]
    return []


def check_choice(name: str, value: Any, *, choices: Sequence[Any], what: str = "") -> Errors:
    """One of CHOICES exactly (strings compared as they are: no stripping)."""
    if isinstance(value, bool) or value not in list(choices):
        listed = ", ".join(map(str, choices))
        if what:
            return [f"{name}={show(value)} is not a known {what} (one of {listed})"]
        return [f"{name}={show(value)} is not one of {listed}"]
    return []


def check_identifier(name: str, value: Any, *, pattern: str | None = None, what: str = "",
                     max_len: int = 64, allow_empty: bool = False) -> Errors:
    """A name: letters, digits, '_', '.', '-' (or PATTERN), no whitespace."""
    return check_string(name, value, pattern=pattern or IDENTIFIER_RE.pattern,
                        what=what or "a name (letters, digits, _ . -)", max_len=max_len,
                        allow_empty=allow_empty)


def check_bool(name: str, value: Any) -> Errors:
    """True/False, or a string Ansible's bool filter reads the same way."""
    if isinstance(value, bool):
        return []
    if isinstance(value, str) and value.lower() in BOOL_STRINGS:
        return []
    return [f"{name}={show(value)} is not a boolean (true or false)"]


def check_int(name: str, value: Any, *, min: int | None = None,
              max: int | None = None, greater_than: int | None = None) -> Errors:
    """An integer (int, integral float, or a decimal string) in MIN..MAX."""
    parsed = parse_number(value, integer=True)
    if isinstance(parsed, str):
        return [f"{name}={show(value)} {parsed}"]
    hi = INT_LIMIT if max is None else max
    lo = -INT_LIMIT if min is None and greater_than is None else min
    return range_errors(name, parsed, lo, hi, greater_than)


def check_number(name: str, value: Any, *, min: float | None = None,
                 max: float | None = None,
                 greater_than: float | None = None) -> Errors:
    """A finite number (int, float, or a plain decimal string) in MIN..MAX
    (or above GREATER_THAN): no NaN, no infinity, no bool."""
    parsed = parse_number(value, integer=False)
    if isinstance(parsed, str):
        return [f"{name}={show(value)} {parsed}"]
    hi = NUMBER_LIMIT if max is None else max
    lo = -NUMBER_LIMIT if min is None and greater_than is None else min
    return range_errors(name, float(parsed), lo, hi, greater_than)


def check_version(name: str, value: Any, *, allow_empty: bool = False) -> Errors:
    """A vpsnet release version such as 1.0.0, 1.1.0~rc1, 2.0.0+git3, 1.0.0-1."""
    verdict = string_verdict(name, value, 160, allow_empty)
    if verdict is not None:
        return verdict
    if not VERSION_RE.fullmatch(value):
        return [f"{name}={show(value)} is not a version string (like 1.0.0)"]
    return []


def check_regex(name: str, value: Any, *, max_len: int = 256) -> Errors:
    """A Python regular expression that compiles."""
    verdict = string_verdict(name, value, max_len, allow_empty=False)
    if verdict is not None:
        return verdict
    try:
        re.compile(value)
    except (re.error, RecursionError, OverflowError) as exc:
        return [f"{name}={show(value)} is not a regular expression ({exc})"]
    return []


def check_batches(name: str, value: Any, *, max_len: int = 100,
                  max_count: int = 1_000_000) -> Errors:
    """Ansible serial batches: a non-empty list of host counts >= 1 or percentages 1%..100%."""
    if not isinstance(value, list):
        return [f"{name}={show(value)} is not a list ({type_name(value)})"]
    if not value or len(value) > max_len:
        return [f"{name}={show(value)} must list 1 to {max_len} batches"]
    errors: Errors = []
    for index, item in enumerate(value):
        ok = (isinstance(item, int) and not isinstance(item, bool) and 1 <= item <= max_count) \
            or (isinstance(item, str) and bool(BATCH_PERCENT_RE.fullmatch(item)))
        if not ok:
            errors.append(f"{name}[{index}]={show(item)} is neither a host count 1..{max_count} "
                          "nor a percentage 1%..100%")
    return errors
