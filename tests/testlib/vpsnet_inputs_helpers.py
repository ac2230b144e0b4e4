"""The roles' input specs as the roles run them: each role's tasks/validate.yml
(the list handed to the vpsnet_inputs_check filter), rendered with the role's
defaults and vars plus test values, and checked in-process with the shared
filter (plugins/filter/vpsnet_inputs.py). Also what the
property tests of those inputs share: picking inputs by their check, and
asserting a bad value is rejected with a message that names it."""

from __future__ import annotations

import base64
import contextlib
import functools
import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from ansible_collections.vpsnet.fleet.plugins.filter import vpsnet_inputs
from hypothesis import HealthCheck, settings
from jinja2.nativetypes import NativeEnvironment

from testlib.input_counts import InputCounts
from testlib.vpsnet_facts_helpers import REPO

CHECKS = "ansible_collections.vpsnet.fleet.plugins.plugin_utils.vpsnet_inputs_checks"

ROLES = ["vpsnet_driver", "vpsnet_exporter", "vpsnet_guard", "vpsnet_repo", "vpsnet_rollout",
         "vpsnet_tune", "vpsnet_upgrade"]

# Values the roles' defaults take from elsewhere (the inventory, the play), good ones.
CONTEXT: dict[str, Any] = {
    "vpsnet_region_rtt_ms": 100,
    "vpsnet_region_bandwidth_mbit": 1000,
    "vpsnet_cloud": {"nics": [{"name": "ens5", "driver": "ena"}]},
    "playbook_dir": "/srv/vpsnet",
    "vpsnet_version": "1.1.0",
    "vpsnet_rollout_regions": ["us-east-1", "europe-west4"],
    "vpsnet_rollout_prometheus_url": "http://prometheus.example.net:9090",
    "vpsnet_upgrade_version": "1.1.0",
    "vpsnet_repo_key_src": "",
}

_ENV = NativeEnvironment()


def inputs_module() -> ModuleType:
    """The filter plugin (its `check` and `safe_filename` are the two filters)."""
    return vpsnet_inputs


def checks_module(name: str) -> ModuleType:
    """Module NAME of the checks behind it (plugins/plugin_utils/vpsnet_inputs_checks)."""
    return importlib.import_module(f"{CHECKS}.{name}")


def armor(data: bytes, label: str) -> str:
    """DATA as one ASCII-armored OpenPGP block with its CRC-24 checksum."""
    b64 = base64.b64encode(data).decode()
    lines = [b64[i:i + 64] for i in range(0, len(b64), 64)]
    crc = checks_module("keys").crc24(data).to_bytes(3, "big")
    return "\n".join([f"-----BEGIN PGP {label}-----", "", *lines,
                      "=" + base64.b64encode(crc).decode(), f"-----END PGP {label}-----", ""])


def packet(tag: int, body: bytes) -> bytes:
    """One new-format OpenPGP packet (body shorter than 192 bytes)."""
    assert len(body) < 192
    return bytes([0xC0 | tag, len(body)]) + body


# A synthetic public key (a v4 key packet and a user id): what the parser accepts.
GOOD_KEY = armor(packet(6, b"\x04" + bytes(40)) + packet(13, b"T <t@example>"), "PUBLIC KEY BLOCK")
CONTEXT["vpsnet_repo_key"] = GOOD_KEY


@functools.cache
def _template(text: str) -> Any:
    return _ENV.from_string(text)


@functools.cache
def _yaml_text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def _yaml(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(_yaml_text(path)) or {}
    assert isinstance(data, dict)
    return data


def role_defaults(role: str) -> dict[str, Any]:
    """ROLE's defaults as Ansible reads them: defaults/main.yml, or every file
    of a defaults/main/ directory in name order."""
    main = REPO / "roles" / role / "defaults" / "main"
    out: dict[str, Any] = {}
    for path in sorted(main.glob("*.yml")) if main.is_dir() else [main.with_suffix(".yml")]:
        out.update(_yaml(path))
    return out


@functools.cache
def validate_task(role: str) -> dict[str, Any]:
    """The assert task of ROLE's tasks/validate.yml."""
    tasks = yaml.safe_load((REPO / "roles" / role / "tasks" / "validate.yml").read_text())
    assert isinstance(tasks, list) and len(tasks) == 1
    task = tasks[0]
    assert isinstance(task, dict)
    return task


def raw_specs(role: str) -> list[dict[str, Any]]:
    """The spec list, unrendered (values are still '{{ var }}' templates)."""
    task_vars = validate_task(role)["vars"]
    specs = task_vars[f"__{role}_inputs"]
    assert isinstance(specs, list)
    return specs


@functools.cache
def variables(role: str) -> list[str]:
    """The role's public inputs checked one by one (specs whose value is just '{{ name }}')."""
    out = []
    for spec in raw_specs(role):
        value = spec.get("value")
        if isinstance(value, str) and value.replace(" ", "") == "{{" + spec["name"] + "}}":
            out.append(spec["name"])
    return out


def render(value: Any, context: dict[str, Any]) -> Any:
    if isinstance(value, str) and "{{" in value:
        return _template(value).render(**context)
    if isinstance(value, list):
        return [render(v, context) for v in value]
    if isinstance(value, dict):
        return {k: render(v, context) for k, v in value.items()}
    return value


@functools.cache
def _base_context(role: str) -> dict[str, Any]:
    return _context(role, None)


def context(role: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Role defaults, role vars, CONTEXT and OVERRIDES (highest), templates resolved."""
    return {**_base_context(role), **(overrides or {})}


def _context(role: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    ctx: dict[str, Any] = {}
    ctx.update(role_defaults(role))
    ctx.update(_yaml(REPO / "roles" / role / "vars" / "main.yml"))
    ctx.update(CONTEXT)
    ctx.update(validate_task(role)["vars"])
    ctx.update(overrides or {})
    fixed = set(overrides or {})
    for _ in range(3):
        for key, value in list(ctx.items()):
            if key in fixed or key.endswith("_inputs") or key.endswith("_input_errors"):
                continue
            text = str(value)
            if isinstance(value, (str, dict)) and "{{" in text and "ansible_facts" not in text:
                # values only the host's facts resolve stay templates
                with contextlib.suppress(Exception):
                    ctx[key] = render(value, ctx)
    return ctx


def specs(role: str, overrides: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The role's spec list rendered with OVERRIDES (a bad value is passed as
    itself, not through a template, as Ansible passes a variable's value)."""
    ctx = context(role, overrides)
    out = []
    for spec in raw_specs(role):
        rendered = {k: render(v, ctx) for k, v in spec.items() if k != "value"}
        name = spec["name"]
        if overrides and name in overrides and name in variables(role):
            rendered["value"] = overrides[name]
        else:
            rendered["value"] = render(spec.get("value"), ctx)
        out.append(rendered)
    return out


def errors(role: str, overrides: dict[str, Any] | None = None) -> list[str]:
    result = inputs_module().check(specs(role, overrides))
    assert isinstance(result, list)
    return result


# Property tests: enough examples to find a class's bad values, no deadline
# (a loaded machine), no example database in the tree.
SETTINGS = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def spec_of(role: str, name: str) -> dict[str, Any]:
    return next(s for s in specs(role) if s["name"] == name)


def by_check(*kinds: str, where: Any = None) -> list[tuple[str, str]]:
    """(role, variable) for every single-variable input whose check is one of KINDS."""
    out = []
    for role in ROLES:
        for name in variables(role):
            spec = spec_of(role, name)
            if spec["check"] in kinds and (where is None or where(spec)):
                out.append((role, name))
    assert out, kinds
    return out


def rejected(counts: InputCounts, role: str, name: str, value: Any, klass: str,
             overrides: dict[str, Any] | None = None) -> list[str]:
    """Check VALUE for NAME: at least one error names NAME, none carries a raw
    control character; count it under KLASS in COUNTS."""
    errs = errors(role, {**(overrides or {}), name: value})
    assert errs, f"{role}: {name}={value!r} accepted"
    assert any(name in e for e in errs), errs
    for e in errs:
        assert checks_module("rules").control_char(e) is None, e
    counts.add(klass, rejected=True)
    return errs


def good_string(role: str, name: str) -> str:
    value = spec_of(role, name)["value"]
    return value if isinstance(value, str) and value else "x"
