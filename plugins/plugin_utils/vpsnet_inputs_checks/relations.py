# SPDX-License-Identifier: GPL-2.0-only
"""Checks of how settings go together (all or none, exactly one, increasing, a
relation the role computed). Imported by dispatch.py."""

from __future__ import annotations

import itertools
from typing import Any

from .rules import Errors, SpecError, number_text, parse_number, show


def check_all_or_none(name: str, value: Any) -> Errors:
    """VALUE, a list of settings that go together: all set (non-empty) or none."""
    if not isinstance(value, list):
        raise SpecError(f"all_or_none for {name} needs a list of values")
    set_ = [bool(v) for v in value]
    if any(set_) and not all(set_):
        which = "both or neither" if len(value) == 2 else "all of them or none"
        return [f"{name}: set {which} (got {', '.join(show(v) for v in value)})"]
    return []


def check_one_of(name: str, value: Any) -> Errors:
    """VALUE, a list of settings of which exactly one must be set (non-empty)."""
    if not isinstance(value, list):
        raise SpecError(f"one_of for {name} needs a list of values")
    if sum(1 for v in value if v) != 1:
        return [f"{name}: set exactly one of them (got {', '.join(show(v) for v in value)})"]
    return []


def check_ordered(name: str, value: Any, *, msg: str = "") -> Errors:
    """VALUE, a list of numbers that must be strictly increasing (a value that
    is not a number is left to its own check)."""
    if not isinstance(value, list):
        raise SpecError(f"ordered for {name} needs a list of values")
    numbers = [parse_number(v, integer=False) for v in value]
    if any(isinstance(n, str) for n in numbers):
        return []
    if all(float(a) < float(b) for a, b in itertools.pairwise(numbers)):
        return []
    got = ", ".join(number_text(float(n)) for n in numbers)
    return [f"{name}: {msg or 'must increase'} (got {got})"]


def check_relation(name: str, value: Any, *, msg: str = "") -> Errors:
    """A relation between settings the role computed (VALUE true: fine); MSG says what is wrong."""
    return [] if value is True else [f"{name}: {msg or 'not satisfied'}"]
