"""vpsnet_exporter role: the new settings (web config file, IPAddressAllow=,
connection cap, request deadline) are checked by the shared vpsnet_inputs
checks before anything changes, and nothing a check accepts can add a line or
an argument to the unit drop-in or /etc/default/vpsnet-exporter.

The specs are the role's own tasks/validate.yml rendered with its defaults
(tests/unit/roles/vpsnet_inputs_helpers.py, loaded by path); the templates are
rendered with Jinja2 and the role's vars/main.yml. Generated bad inputs are counted per class."""

from __future__ import annotations

import functools
import math
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import Environment, StrictUndefined
from jinja2.nativetypes import NativeEnvironment
from testlib import vpsnet_inputs_helpers as vih
from testlib.input_counts import InputCounts

ROLE = Path(__file__).resolve().parents[2] / "roles" / "vpsnet_exporter"
NEW = ["vpsnet_exporter_web_config_file", "vpsnet_exporter_ip_address_allow",
       "vpsnet_exporter_max_connections", "vpsnet_exporter_request_timeout"]
BAD = InputCounts("vpsnet_exporter role bad inputs")
_print_bad_counts = BAD.report_fixture()
PROPS = settings(max_examples=100, deadline=None, database=None)


@functools.cache
def _base_specs() -> dict[str, dict[str, Any]]:
    """The role's per-variable specs, rendered once with its defaults."""
    names = set(vih.variables("vpsnet_exporter"))
    return {s["name"]: s for s in vih.specs("vpsnet_exporter") if s["name"] in names}


def errors_for(name: str, value: Any, **more: Any) -> list[str]:
    """What the role's validate task says about these values (their own specs: a
    variable's spec depends on no other variable; relations use vih.errors)."""
    specs = []
    for n, v in {name: value, **more}.items():
        specs.append({**_base_specs()[n], "value": v})
    result = vih.inputs_module().check(specs)
    assert isinstance(result, list)
    return result


def test_new_settings_are_in_defaults_specs_and_checks() -> None:
    defaults = yaml.safe_load((ROLE / "defaults/main.yml").read_text())
    options = yaml.safe_load((ROLE / "meta/argument_specs.yml").read_text())[
        "argument_specs"]["main"]["options"]
    checked = vih.variables("vpsnet_exporter")
    for name in NEW:
        assert name in defaults and name in options and name in checked, name
        assert options[name]["default"] == defaults[name], name
    assert vih.errors("vpsnet_exporter") == []


GOOD = {
    "vpsnet_exporter_web_config_file": "/etc/vpsnet/exporter-web.yml",
    "vpsnet_exporter_ip_address_allow": ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "localhost"],
    "vpsnet_exporter_max_connections": 2000,
    "vpsnet_exporter_request_timeout": 2.5,
}


@pytest.mark.parametrize("name", NEW)
def test_good_values_pass(name: str) -> None:
    assert errors_for(name, GOOD[name]) == []


BAD_VALUES: dict[str, list[Any]] = {
    "vpsnet_exporter_web_config_file": [
        "relative/web.yml", "/etc/web.yml\nExecStartPre=+/bin/sh", "/etc/web config.yml",
        "/etc/%d/web.yml", "/etc/$HOME/web.yml", "/etc/../shadow", "/etc/web.yml\x00", ["/a"],
    ],
    "vpsnet_exporter_ip_address_allow": [
        "10.0.0.0/8", ["10.0.0.0/8 any"], ["any"], ["10.0.0.0/33"], ["300.1.1.1"],
        ["10.0.0.1\nIPAddressAllow=any"], ["example.com"], [1], ["10.0.0.1"] * 2,
        ["1.2.3.4"] * 65, {"a": 1},
    ],
    "vpsnet_exporter_max_connections": [0, -1, 100001, "nan", float("nan"), float("inf"), "1e3",
                                        True, "10 --web.config.file=/x", None],
    "vpsnet_exporter_request_timeout": [0, -1, 3601, "nan", float("inf"), "5s", True, None],
}


@pytest.mark.parametrize(("name", "value"), [(n, v) for n, vs in BAD_VALUES.items() for v in vs])
def test_bad_values_are_refused_naming_the_variable(name: str, value: Any) -> None:
    errs = errors_for(name, value)
    assert errs and any(e.startswith(name) for e in errs), errs
    assert all("\n" not in e for e in errs)
    BAD.add(f"{name} (listed)", rejected=True)


def test_web_config_with_textfile_is_refused() -> None:
    errs = vih.errors("vpsnet_exporter", {
        "vpsnet_exporter_web_config_file": "/etc/w.yml",
        "vpsnet_exporter_textfile_dir": "/var/lib/node_exporter"})
    assert any("vpsnet_exporter_web_config_file and vpsnet_exporter_textfile_dir" in e
               for e in errs), errs


INJECT = st.sampled_from(["\n", "\r", " ", "\t", "\x00", '"', "%", "$", "\x85", "\u2028", ";"])


@PROPS
@given(st.text(max_size=12), INJECT, st.text(max_size=12))
def test_generated_paths_with_control_or_specials_are_refused(a: str, bad: str, b: str) -> None:
    errs = errors_for("vpsnet_exporter_web_config_file", f"/etc/{a}{bad}{b}")
    assert any(e.startswith("vpsnet_exporter_web_config_file") for e in errs)
    BAD.add("web_config_file path", rejected=True)


@PROPS
@given(st.lists(st.text(max_size=20), min_size=1, max_size=4), INJECT)
def test_generated_allow_entries_with_control_or_specials_are_refused(
        entries: list[str], bad: str) -> None:
    entries = [*entries[:-1], entries[-1] + bad + "10.0.0.1"]
    errs = errors_for("vpsnet_exporter_ip_address_allow", entries)
    assert any(e.startswith("vpsnet_exporter_ip_address_allow") for e in errs)
    BAD.add("ip_address_allow entry", rejected=True)


@PROPS
@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True).filter(
    lambda x: not (math.isfinite(x) and 1 <= x <= 100000 and x == int(x))),
    st.integers().filter(lambda n: not 1 <= n <= 100000),
    st.text(max_size=8).filter(lambda s: not re.fullmatch(r"[0-9]+", s.strip())),
    st.booleans()))
def test_generated_bad_caps_are_refused(value: Any) -> None:
    errs = errors_for("vpsnet_exporter_max_connections", value)
    assert any(e.startswith("vpsnet_exporter_max_connections") for e in errs), (value, errs)
    BAD.add("max_connections number", rejected=True)


# --- what the templates write ------------------------------------------------------------

def _regex(value: str, pattern: str, match_type: str = "search") -> bool:
    return bool(getattr(re, match_type)(pattern, value))


@functools.cache
def _role_yaml(name: str) -> Any:
    return yaml.safe_load((ROLE / name).read_text())


def _env(cls: type[Environment]) -> Environment:
    env = cls(undefined=StrictUndefined, keep_trailing_newline=True)
    env.tests["regex"] = _regex
    env.filters["unique"] = lambda xs: list(dict.fromkeys(xs))
    env.filters["bool"] = lambda v: v if isinstance(v, bool) else str(v).lower() in (
        "true", "yes", "1", "on")
    return env


def render(template: str, overrides: dict[str, Any]) -> str:
    """TEMPLATE with the role's defaults, OVERRIDES and vars/main.yml (evaluated to
    native types, as ansible-core 2.19 does)."""
    native = _env(NativeEnvironment)
    ctx: dict[str, Any] = {"ansible_managed": "managed", "role_path": str(ROLE)}
    ctx.update(_role_yaml("defaults/main.yml"))
    ctx.update(overrides)
    skip = ("pid1", "capeff", "unit_present", "restart_pending")
    for _ in range(3):  # internal vars refer to each other
        for k, v in _role_yaml("vars/main.yml").items():
            if isinstance(v, str) and "{{" in v:
                if any(x in k for x in skip):
                    continue
                try:
                    out = native.from_string(v.strip()).render(**ctx)
                except Exception:
                    continue
                ctx[k] = out.strip() if isinstance(out, str) else out
            else:
                ctx.setdefault(k, v)
    return _env(Environment).from_string(
        (ROLE / "templates" / template).read_text()).render(**ctx)


def test_dropin_with_web_config_and_allow_list() -> None:
    text = render("override.conf.j2", {
        "vpsnet_exporter_web_config_file": "/etc/vpsnet/web.yml",
        "vpsnet_exporter_tls_cert": "/etc/ssl/e.crt", "vpsnet_exporter_tls_key": "/etc/ssl/e.key",
        "vpsnet_exporter_listen_address": "10.0.0.5",
        "vpsnet_exporter_ip_address_allow": ["10.1.0.0/16"],
    })
    lines = [x for x in text.splitlines() if x and not x.startswith("#")]
    assert "ExecStart=/usr/bin/vpsnet-exporter $VPSNET_EXPORTER_ARGS --web.config.file " \
           "%d/web-config.yml" in lines
    assert "LoadCredential=web-config.yml:/etc/vpsnet/web.yml" in lines
    assert "LoadCredential=tls.key:/etc/ssl/e.key" in lines
    assert not any("--tls-cert" in x for x in lines)  # TLS is the web config's then
    assert "IPAddressDeny=any" in lines
    assert "IPAddressAllow=localhost 10.0.0.5 10.1.0.0/16" in lines
    assert "LimitNOFILE=1064" in lines


def test_no_allow_list_no_ip_filter() -> None:
    text = render("override.conf.j2", {})
    assert "IPAddressDeny" not in text and "IPAddressAllow" not in text
    # the exporter's own defaults are not passed: an older pinned package would not start
    args = render("vpsnet-exporter.default.j2", {})
    assert "--web." not in args
    args = render("vpsnet-exporter.default.j2", {"vpsnet_exporter_max_connections": 2000,
                                                 "vpsnet_exporter_request_timeout": 2.5})
    assert '--web.max-connections 2000 --web.request-timeout 2.5"' in args


def near(good: st.SearchStrategy[str], alphabet: str, size: int) -> st.SearchStrategy[str]:
    """Valid-looking values, and those with a character from anywhere spliced in."""
    plain = st.one_of(good, st.text(alphabet, min_size=1, max_size=size))
    spliced = st.tuples(plain, st.characters(), st.integers(0, size)).map(
        lambda t: t[0][:t[2]] + t[1] + t[0][t[2]:])
    return st.one_of(good, plain, spliced)


PATHS = near(st.lists(st.text("abz09_-+,@=:~.", min_size=1, max_size=8).filter(
    lambda x: x.strip(".")), min_size=1, max_size=3).map("/".join), "abcz09/._-+,@=:~", 30)
ALLOW = near(st.sampled_from(["10.0.0.0/8", "192.0.2.1", "2001:db8::/32", "localhost", "::1"]),
             "0123456789abcdef.:/", 20)
LISTEN = near(st.sampled_from(["", "10.0.0.5", "::1", "exporter.example.net", "0.0.0.0"]),
              "0123456789abcdef.:-", 20)


@settings(max_examples=300, deadline=None, database=None)
@given(PATHS, st.lists(ALLOW, max_size=3), LISTEN)
def test_whatever_the_checks_accept_adds_no_line_or_argument(
        path: str, allow: list[str], listen: str) -> None:
    """Random values: those the checks refuse never reach a template (the role
    stops first); those they accept render each value inside its own line, so
    the drop-in and the options file have exactly the expected lines and args."""
    over = {"vpsnet_exporter_web_config_file": "/etc/" + path,
            "vpsnet_exporter_ip_address_allow": allow,
            "vpsnet_exporter_listen_address": listen}
    if errors_for(*next(iter(over.items())), **dict(list(over.items())[1:])):
        BAD.add("generated template inputs", rejected=True)
        return
    BAD.add("generated template inputs", rejected=False)  # both sides ran
    dropin = render("override.conf.j2", over)
    keys = [x.split("=", 1)[0] for x in dropin.splitlines() if x and not x.startswith("#")]
    assert keys == ["[Service]", "ProtectProc", "ExecStart", "ExecStart", "LoadCredential",
                    "LimitNOFILE"] + (["IPAddressDeny", "IPAddressAllow"] if allow else [])
    options = render("vpsnet-exporter.default.j2", over)
    line = next(x for x in options.splitlines() if x.startswith("VPSNET_EXPORTER_ARGS="))
    args = line.split("=", 1)[1].strip('"').split()
    assert args[::2] == ["--file", "--log-level", "--listen"]


def test_ansible_stops_at_validation_before_any_change(tmp_path: Path) -> None:
    """A real ansible-playbook run (check mode, localhost, gather_facts off): a newline in
    an IPAddressAllow= entry and a NaN deadline fail at the first task, naming both
    variables, with nothing changed and no other task run."""
    import json
    import subprocess

    from testlib.vpsnet_facts_helpers import ansible_env

    play = tmp_path / "play.yml"
    play.write_text("- hosts: localhost\n  gather_facts: false\n  roles:\n"
                    "    - role: vpsnet_exporter\n")
    bad = {"vpsnet_exporter_ip_address_allow": ["10.0.0.1\nIPAddressAllow=any"],
           "vpsnet_exporter_request_timeout": "nan",
           "vpsnet_exporter_web_config_file": "/etc/web config.yml"}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c",
         "local", "--check", "--diff", "-e", f"ansible_python_interpreter={sys.executable}",
         "-e", json.dumps(bad), str(play)],
        capture_output=True, text=True, env=ansible_env(tmp_path), timeout=300, check=False,
        cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "vpsnet_exporter_ip_address_allow[0]='10.0.0.1\\\\nIPAddressAllow=any'" in out, out
    assert "vpsnet_exporter_request_timeout='nan' is not a number" in out, out
    assert "vpsnet_exporter_web_config_file='/etc/web config.yml'" in out, out
    # only the argument spec check ran before (it touches nothing)
    assert "changed=0" in out and "failed=1" in out and "ok=1 " in out, out
    assert "Traceback" not in out
    BAD.add("ansible run", 3, rejected=True)
