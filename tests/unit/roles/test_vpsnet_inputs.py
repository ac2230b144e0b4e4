"""Property tests of the roles' inputs, in-process: for every role (but
vpsnet_facts) and every input its tasks/validate.yml checks, generated bad
values of each class (control characters, a trailing newline, NaN/infinity/huge,
negative, a bool for a number, a string for a list, too long a list, a path
outside its prefix or with '..') are rejected by the shared filter with a
message that names the variable and shows the value escaped; the roles'
defaults pass. Versions, URLs, batches and names: test_vpsnet_inputs_formats.py;
keys: test_vpsnet_inputs_keys.py. Counts of bad inputs per class: printed with
-s and checked by the last test."""

from __future__ import annotations

import functools
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from testlib.input_counts import InputCounts
from testlib.vpsnet_inputs_helpers import (
    GOOD_KEY,
    ROLES,
    SETTINGS,
    by_check,
    checks_module,
    errors,
    good_string,
    raw_specs,
    role_defaults,
    spec_of,
)
from testlib.vpsnet_inputs_helpers import rejected as rejected_in

COUNTS = InputCounts("roles' bad inputs (in-process): strings, numbers, lists, paths")
_print_counts = COUNTS.report_fixture()
rejected = functools.partial(rejected_in, COUNTS)

CONTROL = [chr(c) for c in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]] + ["\u2028", "\u2029"]

STRINGY = by_check("string", "identifier", "choice", "path", "url", "version", "address", "ifname",
                   "regex", "openpgp_public_key")
NUMERIC = by_check("int", "number")
NON_NEGATIVE = by_check(
    "int", "number", where=lambda s: (s.get("min") is not None and s["min"] >= 0)
    or (s.get("greater_than") is not None and s["greater_than"] >= 0))
LISTS = by_check("list", "batches")
DICTS = by_check("dict")
BOUNDED_LISTS = by_check("list", where=lambda s: int(s.get("max_len", 64)) <= 64
                         and s.get("elements", {}).get("check") not in (None,))
PATHS = by_check("path")
PREFIXED = by_check("path", where=lambda s: bool(s.get("prefixes")))
BOOLS = by_check("bool")


# ------------------------------------------------------------------ sanity

@pytest.mark.parametrize("role", ROLES)
def test_defaults_pass(role: str) -> None:
    overrides = {"vpsnet_repo_key": GOOD_KEY} if role == "vpsnet_repo" else {}
    assert errors(role, overrides) == []


@pytest.mark.parametrize("role", ROLES)
def test_every_spec_is_known_and_every_role_default_is_checked(role: str) -> None:
    names = {s["name"] for s in raw_specs(role)}
    for spec in raw_specs(role):
        assert spec["check"] in checks_module("dispatch").CHECKS, spec
    for var in role_defaults(role):
        assert any(var in n for n in names), f"{role}: {var} is not validated"


# ------------------------------------------------------------------ classes

@SETTINGS
@given(target=st.sampled_from(STRINGY), data=st.data())
def test_control_characters_are_refused(target: tuple[str, str], data: st.DataObject) -> None:
    role, name = target
    good = good_string(role, name)
    multiline = spec_of(role, name)["check"] == "openpgp_public_key"  # armor has line breaks
    char = data.draw(st.sampled_from([c for c in CONTROL if not (multiline and c in "\n\r\t")]))
    at = data.draw(st.integers(0, len(good)))
    rejected(role, name, good[:at] + char + good[at:], "control character")


@SETTINGS
@given(target=st.sampled_from([t for t in STRINGY if spec_of(*t)["check"] != "openpgp_public_key"]
                              + BOOLS), ending=st.sampled_from(["\n", "\r\n", "\r"]))
def test_a_trailing_newline_is_refused(target: tuple[str, str], ending: str) -> None:
    role, name = target
    good = spec_of(role, name)["value"]
    good = good if isinstance(good, str) and good else "true" if isinstance(good, bool) else "x"
    rejected(role, name, good + ending, "trailing newline")


NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf, "nan", "NaN", "inf", "-Infinity",
                              "1e400", "1_000", " 5", "5 ", "0x10", "\uff15"])


@SETTINGS
@given(target=st.sampled_from(NUMERIC), value=NON_FINITE)
def test_nan_and_infinity_are_refused(target: tuple[str, str], value: Any) -> None:
    rejected(*target, value, "NaN/inf/not a plain number")


@SETTINGS
@given(target=st.sampled_from(NUMERIC),
       value=st.one_of(st.integers(10**10, 10**400).map(lambda n: n * 10**9),
                       st.floats(1e16, 1e308), st.integers(10**20, 10**25).map(str)))
def test_huge_numbers_are_refused(target: tuple[str, str], value: Any) -> None:
    rejected(*target, value, "huge number")


@SETTINGS
@given(target=st.sampled_from(NON_NEGATIVE),
       value=st.one_of(st.integers(-(10**12), -1), st.floats(-1e12, -1e-6),
                       st.integers(-(10**6), -1).map(str)))
def test_negative_numbers_are_refused(target: tuple[str, str], value: Any) -> None:
    rejected(*target, value, "negative number")


@SETTINGS
@given(target=st.sampled_from(NUMERIC), value=st.booleans())
def test_a_bool_is_not_a_number(target: tuple[str, str], value: bool) -> None:
    rejected(*target, value, "bool for a number")


@SETTINGS
@given(target=st.sampled_from(LISTS + DICTS),
       value=st.one_of(st.text(max_size=30),
                       st.sampled_from(["ena,gve", "[1, '25%']", "{}", "a: b"])))
def test_a_string_is_not_a_list(target: tuple[str, str], value: str) -> None:
    rejected(*target, value, "string for a list")


@SETTINGS
@given(target=st.sampled_from(BOUNDED_LISTS + by_check("batches")), extra=st.integers(1, 40))
def test_too_long_lists_are_refused(target: tuple[str, str], extra: int) -> None:
    role, name = target
    spec = spec_of(role, name)
    limit = int(spec.get("max_len", 100 if spec["check"] == "batches" else 64))
    sample = {"batches": 1, "int": 1, "address": "192.0.2.1", "ifname": "eth0", "regex": "x",
              "identifier": "a"}
    element = sample.get(spec.get("elements", {}).get("check", spec["check"]), "a")
    if spec.get("unique"):
        items: list[Any] = [f"n{i}" for i in range(limit + extra)]
    else:
        items = [element] * (limit + extra)
    rejected(role, name, items, "too long a list")


def test_more_driver_names_than_the_module_takes_are_refused() -> None:
    errs = rejected("vpsnet_driver", "vpsnet_driver_drivers", [f"drv{i}" for i in range(17)],
                    "too long a list")
    assert "more than the 16 it may have" in errs[0]
    assert errors("vpsnet_driver", {"vpsnet_driver_drivers": [f"drv{i}" for i in range(16)]}) == []


@SETTINGS
@given(target=st.sampled_from(PREFIXED), data=st.data())
def test_paths_outside_their_prefix_are_refused(target: tuple[str, str],
                                                data: st.DataObject) -> None:
    role, name = target
    prefix = spec_of(role, name)["prefixes"][0].rstrip("/")
    tail = data.draw(st.from_regex(r"[a-z0-9_]{1,12}\.cfg", fullmatch=True))
    value = data.draw(st.sampled_from([
        f"{prefix}/../{tail}", f"{prefix}/./{tail}", f"{prefix}//{tail}", f"{prefix}/", prefix,
        f"/etc/{tail}", f"/boot/{tail}", f"{prefix}x/{tail}", f"{prefix}/../../etc/default/{tail}",
        f"etc/default/grub.d/{tail}", f"{prefix}/{tail} x", f"{prefix}/%n{tail}",
        f"{prefix}/$x{tail}"]))
    rejected(role, name, value, "path outside prefix / with ..")


@SETTINGS
@given(target=st.sampled_from(PATHS), data=st.data())
def test_unsafe_paths_are_refused(target: tuple[str, str], data: st.DataObject) -> None:
    role, name = target
    word = data.draw(st.from_regex(r"[a-z]{1,8}", fullmatch=True))
    value = data.draw(st.sampled_from([
        f"/etc/{word}/../shadow", f"relative/{word}", f"/etc/{word} file", f"/run/%i{word}",
        f"/etc/\"{word}", f"/etc/{word}$HOME", f"/etc/{word}\\n", f"/etc/*{word}", "/../" + word]))
    rejected(role, name, value, "path outside prefix / with ..")




def test_zz_counts() -> None:
    """Runs last in this file: every class produced bad inputs, all rejected
    (the table is printed after it, with -s)."""
    for klass in ["control character", "trailing newline", "NaN/inf/not a plain number",
                  "huge number", "negative number", "bool for a number", "string for a list",
                  "too long a list", "path outside prefix / with .."]:
        assert COUNTS[klass].rejected > 0, klass
