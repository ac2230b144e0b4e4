"""Property tests of the roles' inputs, in-process: for every role (but
vpsnet_facts) and every input its tasks/validate.yml checks, generated bad
values of each class (control characters, a trailing newline, NaN/infinity/huge,
negative, a bool for a number, a string for a list, too long a list, a path
outside its prefix or with '..', bad versions/URLs/batches, private or garbage
keys) are rejected by the shared filter with a message that names the variable
and shows the value escaped; the roles' defaults pass. Counts of bad inputs per
class: printed with -s and checked by the last test."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from input_counts import InputCounts
from vpsnet_inputs_helpers import (
    GOOD_KEY,
    ROLES,
    armor,
    errors,
    inputs_module,
    packet,
    raw_specs,
    specs,
    variables,
)

V = inputs_module()
COUNTS = InputCounts("roles' bad inputs (in-process)")
_print_counts = COUNTS.report_fixture()
SETTINGS = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

CONTROL = [chr(c) for c in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]] + ["\u2028", "\u2029"]


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
VERSIONS = by_check("version")
URLS = by_check("url")
BOOLS = by_check("bool")
CHOICES = by_check("choice")


def rejected(role: str, name: str, value: Any, klass: str,
             overrides: dict[str, Any] | None = None) -> list[str]:
    """Check VALUE for NAME: at least one error names NAME, none carries a raw
    control character; count it under KLASS."""
    errs = errors(role, {**(overrides or {}), name: value})
    assert errs, f"{role}: {name}={value!r} accepted"
    assert any(name in e for e in errs), errs
    for e in errs:
        assert V.control_char(e) is None, e
    COUNTS.add(klass, rejected=True)
    return errs


def good_string(role: str, name: str) -> str:
    value = spec_of(role, name)["value"]
    return value if isinstance(value, str) and value else "x"


# ------------------------------------------------------------------ sanity

@pytest.mark.parametrize("role", ROLES)
def test_defaults_pass(role: str, good_key: str) -> None:
    overrides = {"vpsnet_repo_key": good_key} if role == "vpsnet_repo" else {}
    assert errors(role, overrides) == []


@pytest.mark.parametrize("role", ROLES)
def test_every_spec_is_known_and_every_role_default_is_checked(role: str) -> None:
    names = {s["name"] for s in raw_specs(role)}
    for spec in raw_specs(role):
        assert spec["check"] in V.CHECKS, spec
    defaults = Path(__file__).resolve().parents[3] / "roles" / role / "defaults" / "main.yml"
    import yaml
    for var in yaml.safe_load(defaults.read_text()) or {}:
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


@SETTINGS
@given(target=st.sampled_from(VERSIONS),
       value=st.one_of(st.text(max_size=16), st.sampled_from(
           ["latest", "1", "1.0.0 ", " 1.0.0", "v1.0.0", "1.0.0;reboot", "1..0", "1.0.0-", "1.0.0~",
            "1.0.0/../x", "1.0.0\n", "-1.0.0", "1.0.0.0.0", "\uff11.0.0"])))
def test_bad_versions_are_refused(target: tuple[str, str], value: str) -> None:
    assume(not V.VERSION_RE.fullmatch(value))
    rejected(*target, value, "bad version")


@SETTINGS
@given(target=st.sampled_from(URLS),
       value=st.one_of(st.text(min_size=1, max_size=20), st.sampled_from(
           ["prometheus:9090", "ftp://x", "javascript:alert(1)", "http://", "http://a b",
            "http://x:99999", "http://x:0x50", "http://[::1", "http://-x/", "http://x/\n",
            "gopher://x", "http:/x", "//x", "http://x:9090 http://y"])))
def test_bad_urls_are_refused(target: tuple[str, str], value: str) -> None:
    plain = r"(https?|file)://[A-Za-z0-9.-]+(:[0-9]{1,4})?(/[A-Za-z0-9/_.-]*)?"
    assume(value != "" and not re.fullmatch(plain, value))
    rejected(*target, value, "bad URL")


BAD_BATCH = st.one_of(
    st.integers(-1000, 0), st.integers(1_000_001, 10**30), st.floats(allow_nan=True),
    st.booleans(), st.sampled_from(["0%", "101%", "25 %", " 25%", "25%\n", "25%\r", "1e2%", "25",
                                    "", "%", "050%", "100%%", "\uff4c%", None]))


@SETTINGS
@given(batch=BAD_BATCH, before=st.lists(st.sampled_from([1, "25%", "100%"]), max_size=3))
def test_bad_batches_fail_the_plan(batch: Any, before: list[Any]) -> None:
    errs = rejected("vpsnet_rollout", "vpsnet_rollout_batches", [*before, batch], "bad batch")
    assert any("is neither a host count" in e for e in errs), errs
    # the plan filter the first play runs agrees (full-string match)
    from vpsnet_facts_helpers import load_role_file
    plan = load_role_file("vpsnet_rollout/filter_plugins/vpsnet_rollout.py",
                          "vpsnet_rollout_plan_f")
    assert plan.plan_errors(["h"], {"h": {"vpsnet_region": "r"}}, ["r"], [*before, batch])


@SETTINGS
@given(target=st.sampled_from(BOOLS),
       value=st.one_of(st.sampled_from(["maybe", "ture", "TRUE ", "y", "2", "-1", "", "true\n"]),
                       st.integers(2, 10**6), st.floats(allow_nan=True),
                       st.lists(st.booleans(), max_size=2)))
def test_non_booleans_are_refused(target: tuple[str, str], value: Any) -> None:
    rejected(*target, value, "not a boolean")


@SETTINGS
@given(target=st.sampled_from(CHOICES), value=st.one_of(st.text(max_size=12), st.integers()))
def test_unknown_choices_are_refused(target: tuple[str, str], value: Any) -> None:
    role, name = target
    assume(value not in spec_of(role, name)["choices"])
    rejected(role, name, value, "unknown choice")


@SETTINGS
@given(value=st.sampled_from(["-f", "-c1000", "--help", "1.2.3.4.5", "256.0.0.1", "a..b",
                              "host_name", "x" * 64 + ".example", "fe80::1%eth0\n", "::g"]),
       target=st.sampled_from(by_check("list", where=lambda s: s.get("elements", {}).get("check")
                                       == "address")))
def test_ping_targets_are_addresses_not_options(target: tuple[str, str], value: str) -> None:
    rejected(*target, [value], "bad address / option injection")


@SETTINGS
@given(value=st.one_of(st.text(min_size=1, max_size=15).filter(
    lambda s: not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.:@+-]{0,14}", s)),
    st.from_regex(r"[a-z]{16,30}", fullmatch=True),
    st.sampled_from([".", "..", "eth0/x", "-eth0"])))
def test_bad_interface_names_are_refused(value: str) -> None:
    rejected("vpsnet_guard", "vpsnet_guard_nics", [value], "bad interface name")


# ------------------------------------------------------------------ keys

_packet, _armor = packet, armor


@pytest.fixture(scope="session")
def good_key() -> str:
    return GOOD_KEY


@pytest.fixture(scope="session")
def gpg_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, bytes]]:
    """A real key pair from gpg: public and secret, armored and binary."""
    if shutil.which("gpg") is None:
        pytest.skip("no gpg")
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    run = ["gpg", "--homedir", str(home), "--batch", "--quiet", "--pinentry-mode", "loopback",
           "--passphrase", ""]
    subprocess.run([*run, "--quick-gen-key", "T <t@example>", "ed25519", "sign", "never"],
                   check=True, capture_output=True, timeout=60)
    out = {}
    for name, args in (("pub.asc", ["--armor", "--export"]), ("pub.gpg", ["--export"]),
                       ("sec.asc", ["--armor", "--export-secret-keys"]),
                       ("sec.gpg", ["--export-secret-keys"])):
        out[name] = subprocess.run([*run, *args, "t@example"], check=True, capture_output=True,
                                   timeout=60).stdout
    yield out
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False,
                   capture_output=True, timeout=30)


SECRET = st.builds(
    lambda tag, body, label, lead: _armor(
        (_packet(6, b"\x04" + bytes(8)) if lead else b"") + _packet(tag, b"\x04" + body), label),
    st.sampled_from([5, 7]), st.binary(max_size=60),
    st.sampled_from(["PUBLIC KEY BLOCK", "PRIVATE " "KEY BLOCK"]), st.booleans())
GARBAGE = st.one_of(
    st.text(max_size=200).filter(lambda s: s != ""),
    st.binary(max_size=200).map(lambda b: _armor(b, "PUBLIC KEY BLOCK")),
    st.sampled_from(["-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n"
                     "-----END PGP PUBLIC KEY BLOCK-----",
                     "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
                     "-----BEGIN OPENSSH PRIVATE " "KEY-----\nb3Blbg==\n"
                     "-----END OPENSSH PRIVATE " "KEY-----"]),
    st.binary(max_size=60).map(lambda b: _armor(_packet(6, b"\x09" + b), "PUBLIC KEY BLOCK")),
    st.binary(max_size=60).map(lambda b: _armor(_packet(2, b"\x04" + b), "PUBLIC KEY BLOCK")),
    st.binary(max_size=60).map(lambda b: _armor(b"\x99\xff\xff" + b, "PUBLIC KEY BLOCK")),
)


@SETTINGS
@given(key=SECRET)
def test_private_keys_are_refused(key: str, good_key: str) -> None:
    errs = rejected("vpsnet_repo", "vpsnet_repo_key", key, "private/secret key")
    assert any("PRIVATE" in e or "SECRET" in e for e in errs), errs


@SETTINGS
@given(key=GARBAGE)
def test_garbage_keys_are_refused(key: str) -> None:
    rejected("vpsnet_repo", "vpsnet_repo_key", key, "garbage key")


@SETTINGS
@given(key=GARBAGE.map(lambda k: k.encode() if isinstance(k, str) else k) | SECRET.map(str.encode))
def test_key_files_must_hold_a_public_key(key: bytes,
                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("k") / "key.asc"
    path.write_bytes(key)
    errs = errors("vpsnet_repo", {"vpsnet_repo_key": "", "vpsnet_repo_key_src": str(path),
                                  "__vpsnet_repo_key_path": str(path)})
    assert any("vpsnet_repo_key_src" in e for e in errs), errs
    COUNTS.add("garbage/secret key file", rejected=True)


def test_real_gpg_keys(gpg_keys: dict[str, bytes], tmp_path: Path) -> None:
    assert errors("vpsnet_repo", {"vpsnet_repo_key": gpg_keys["pub.asc"].decode()}) == []
    rejected("vpsnet_repo", "vpsnet_repo_key", gpg_keys["sec.asc"].decode(), "private/secret key")
    for name, ok in (("pub.asc", True), ("pub.gpg", True), ("sec.asc", False), ("sec.gpg", False)):
        path = tmp_path / name
        path.write_bytes(gpg_keys[name])
        errs = errors("vpsnet_repo", {"vpsnet_repo_key": "", "vpsnet_repo_key_src": str(path),
                                      "__vpsnet_repo_key_path": str(path)})
        assert (errs == []) is ok, (name, errs)


def test_both_or_no_key_is_refused(good_key: str) -> None:
    errs = errors("vpsnet_repo", {"vpsnet_repo_key": good_key, "vpsnet_repo_key_src": "/k.asc",
                                  "__vpsnet_repo_key_path": "/nonexistent/k.asc"})
    assert any("set exactly one" in e for e in errs), errs


# ------------------------------------------------------------------ the issue's own cases

@pytest.mark.parametrize(("role", "name", "value", "needle"), [
    ("vpsnet_repo", "vpsnet_repo_suite", "bookworm\nTrusted: yes", "contains a control character"),
    ("vpsnet_exporter", "vpsnet_exporter_metrics_file", "/proc/x\nExecStartPre=+/bin/sh",
     "contains a control character"),
    ("vpsnet_exporter", "vpsnet_exporter_listen_address", "127.0.0.1 --web.listen-address=0.0.0.0",
     "is not an IP address"),
    ("vpsnet_tune", "vpsnet_tune_default_qdisc", "fq\nkernel.panic = 1", "is not a known qdisc"),
    ("vpsnet_tune", "vpsnet_tune_hugepages_max_percent", 150, "is outside 0..100"),
    ("vpsnet_tune", "vpsnet_tune_grub_file", "/etc/default/grub",
     "is not a file under /etc/default/grub.d"),
    ("vpsnet_tune", "vpsnet_tune_reserved_cpus", "0-3", "is not a list (str)"),
    ("vpsnet_tune", "vpsnet_tune_rtt_ms", math.nan, "is not a finite number"),
    ("vpsnet_upgrade", "vpsnet_upgrade_version", "1.1.0\n", "contains a control character"),
    ("vpsnet_rollout", "vpsnet_rollout_batches", [1, "25%\n"], "is neither a host count"),
    ("vpsnet_driver", "vpsnet_driver_interval_ms", 10**100, "is outside 100..60000"),
])
def test_the_issues_cases(role: str, name: str, value: Any, needle: str) -> None:
    errs = rejected(role, name, value, "issue case")
    assert any(needle in e for e in errs), errs


def test_safe_filename() -> None:
    for host in ["web-1.example.net", "i-0abc"]:
        assert V.safe_filename(host) == host
    seen = set()
    for host in ["../../etc/passwd", "a/b", "a_b", ".hidden", "", "x" * 300, "tab\there", "ü", "..",
                 "-rf"]:
        name = V.safe_filename(host)
        assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}", name), (host, name)
        assert name not in seen
        seen.add(name)
        COUNTS.add("unsafe host name in a path", rejected=True)


@SETTINGS
@given(host=st.text(max_size=300))
def test_safe_filename_property(host: str) -> None:
    name = V.safe_filename(host)
    assert re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}", name)
    assert name == host or V.safe_filename(host + "x") != name
    if name != host:
        COUNTS.add("unsafe host name in a path", rejected=True)


@SETTINGS
@given(spec=st.one_of(st.none(), st.text(max_size=5), st.integers(),
                      st.dictionaries(st.sampled_from(["name", "check", "value", "min", "max_len"]),
                                      st.one_of(st.text(max_size=5), st.integers(), st.none()))),
       value=st.one_of(st.floats(allow_nan=True), st.text(max_size=5), st.none(),
                       st.recursive(st.integers(), lambda c: st.lists(c, max_size=3),
                                    max_leaves=10)))
def test_a_wrong_spec_or_value_never_raises(spec: Any, value: Any) -> None:
    for kind in V.CHECKS:
        out = V.check([{"name": "v", "value": value, "check": kind}])
        assert isinstance(out, list)
    assert isinstance(V.check([spec]), list)
    assert isinstance(V.check(spec), list)


def test_zz_counts() -> None:
    """Runs last in this file: every class produced bad inputs, all rejected
    (the table is printed after it, with -s)."""
    for klass in ["control character", "trailing newline", "NaN/inf/not a plain number",
                  "huge number", "negative number", "bool for a number", "string for a list",
                  "too long a list", "path outside prefix / with ..", "bad version", "bad URL",
                  "bad batch", "private/secret key", "garbage key", "unsafe host name in a path"]:
        assert COUNTS[klass].rejected > 0, klass
