# SPDX-License-Identifier: GPL-2.0-only
"""Running a role's specs: the table of checks by name, one spec's run (a wrong
spec is one error line, never a traceback), and the two checks whose elements
are specs themselves (list, dict). Imported by plugins/filter/vpsnet_inputs.py."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .addresses import check_address, check_ifname, check_path, check_url
from .keys import check_openpgp_public_key, check_openpgp_public_key_file, check_pem
from .relations import check_all_or_none, check_one_of, check_ordered, check_relation
from .rules import LIST_MAX, Errors, SpecError, show, spec_bound, type_name
from .values import (
    check_batches,
    check_bool,
    check_choice,
    check_identifier,
    check_int,
    check_number,
    check_regex,
    check_string,
    check_version,
)


def _element_errors(name: str, value: Any, spec: Mapping[str, Any] | None) -> Errors:
    """An element of a list or dict (or a key) against SPEC, a spec without name/value."""
    if not spec:
        return []
    spec = dict(spec)
    kind = spec.pop("check", "string")
    return run_check(kind, name, value, spec)


def check_list(name: str, value: Any, *, min_len: Any = 0, max_len: Any = LIST_MAX,
               elements: Mapping[str, Any] | None = None, unique: bool = False,
               max_joined: int | None = None, joiner: str = ",") -> Errors:
    """A real list (not a string, not a mapping) of MIN_LEN..MAX_LEN elements,
    each passing ELEMENTS (a spec without name/value); MAX_JOINED bounds the
    length of the elements joined with JOINER (a module parameter)."""
    if value is None:
        return [f"{name} is not set"]
    if not isinstance(value, list):
        return [f"{name}={show(value)} is not a list ({type_name(value)})"]
    min_len, max_len = int(spec_bound(min_len) or 0), int(spec_bound(max_len) or 0)
    if len(value) > max_len:
        return [f"{name} has {len(value)} elements, more than the {max_len} it may have"]
    if len(value) < min_len:
        if not value:
            return [f"{name}={show(value)} must be a non-empty list"]
        return [f"{name}={show(value)} has fewer than {min_len} elements"]
    errors: Errors = []
    for index, item in enumerate(value):
        errors.extend(_element_errors(f"{name}[{index}]", item, elements))
    if unique and not errors:
        seen = [str(v) for v in value]
        dup = sorted({v for v in seen if seen.count(v) > 1})
        if dup:
            errors.append(f"{name} names {', '.join(map(show, dup))} more than once")
    if max_joined is not None and not errors:
        joined = joiner.join(str(v) for v in value)
        if len(joined) > max_joined:
            errors.append(f"{name}: {len(joined)} characters joined, more than {max_joined}")
    return errors


def check_dict(name: str, value: Any, *, max_len: int = LIST_MAX,
               keys: Mapping[str, Any] | None = None,
               values: Mapping[str, Any] | None = None,
               allowed_keys: Sequence[str] | None = None) -> Errors:
    """A mapping of at most MAX_LEN entries; each key passes KEYS (default: a
    string without control characters) and each value VALUES."""
    if not isinstance(value, Mapping):
        return [f"{name}={show(value)} is not a mapping ({type_name(value)})"]
    if len(value) > max_len:
        return [f"{name} has {len(value)} entries, more than the {max_len} it may have"]
    errors: Errors = []
    for key, item in value.items():
        key_name = f"{name} key {show(key)}"
        key_spec = keys or {"check": "string", "allow_empty": False}
        errors.extend(_element_errors(key_name, key, key_spec))
        if allowed_keys is not None and key not in allowed_keys:
            errors.append(f"{key_name} is not one of {', '.join(allowed_keys)}")
        errors.extend(_element_errors(f"{name}[{show(key)}]", item, values))
    return errors


CHECKS: dict[str, Callable[..., Errors]] = {
    "string": check_string,
    "choice": check_choice,
    "identifier": check_identifier,
    "bool": check_bool,
    "int": check_int,
    "number": check_number,
    "list": check_list,
    "dict": check_dict,
    "path": check_path,
    "url": check_url,
    "version": check_version,
    "address": check_address,
    "ifname": check_ifname,
    "regex": check_regex,
    "batches": check_batches,
    "all_or_none": check_all_or_none,
    "one_of": check_one_of,
    "relation": check_relation,
    "ordered": check_ordered,
    "openpgp_public_key": check_openpgp_public_key,
    "openpgp_public_key_file": check_openpgp_public_key_file,
    "pem": check_pem,
}


def run_check(kind: Any, name: str, value: Any, options: Mapping[str, Any]) -> Errors:
    """One check by its name; a wrong spec is one error line, never a traceback."""
    func = CHECKS.get(kind) if isinstance(kind, str) else None
    if func is None:
        return [f"vpsnet_inputs: {name}: unknown check {show(kind)} (one of {', '.join(CHECKS)})"]
    try:
        return func(name, value, **dict(options))
    except (SpecError, TypeError) as exc:
        return [f"vpsnet_inputs: bad spec for {name}: {exc}"]
    except (RecursionError, OverflowError, ValueError, MemoryError) as exc:
        return [f"{name}={show(value)} cannot be checked ({type(exc).__name__})"]


def check(specs: Any, role: str = "") -> Errors:
    """Every error of SPECS, a list of {name, value, check, **options}
    (a mapping name -> spec works too); ROLE prefixes nothing, it only names a bad spec."""
    if isinstance(specs, Mapping):
        specs = [{"name": k, **v} if isinstance(v, Mapping) else v for k, v in specs.items()]
    if not isinstance(specs, list):
        return [f"vpsnet_inputs: {role or 'a role'} passed {type_name(specs)}, "
                "not a list of specs"]
    errors: Errors = []
    for spec in specs:
        if not isinstance(spec, Mapping) or "name" not in spec or "check" not in spec:
            errors.append(f"vpsnet_inputs: {role or 'a role'}: bad spec {show(spec)}")
            continue
        options = {k: v for k, v in spec.items() if k not in ("name", "value", "check")}
        errors.extend(run_check(spec["check"], str(spec["name"]), spec.get("value"), options))
    return errors
