"""Property tests of the roles' inputs, in-process (as test_vpsnet_inputs.py):
bad versions, URLs, rollout batches, booleans, choices, ping targets and
interface names are rejected with a message naming the variable; the issue's
own cases; host names made safe for a file name; a wrong spec or value never
raises. Counts of bad inputs per class: printed with -s and checked by the last
test."""

from __future__ import annotations

import functools
import math
import re
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from testlib.input_counts import InputCounts
from testlib.vpsnet_inputs_helpers import SETTINGS, by_check, checks_module, inputs_module, spec_of
from testlib.vpsnet_inputs_helpers import rejected as rejected_in

COUNTS = InputCounts("roles' bad inputs (in-process): formats and names")
_print_counts = COUNTS.report_fixture()
rejected = functools.partial(rejected_in, COUNTS)
V = inputs_module()

VERSIONS = by_check("version")
URLS = by_check("url")
BOOLS = by_check("bool")
CHOICES = by_check("choice")


@SETTINGS
@given(target=st.sampled_from(VERSIONS),
       value=st.one_of(st.text(max_size=16), st.sampled_from(
           ["latest", "1", "1.0.0 ", " 1.0.0", "v1.0.0", "1.0.0;reboot", "1..0", "1.0.0-", "1.0.0~",
            "1.0.0/../x", "1.0.0\n", "-1.0.0", "1.0.0.0.0", "\uff11.0.0"])))
def test_bad_versions_are_refused(target: tuple[str, str], value: str) -> None:
    assume(not checks_module("values").VERSION_RE.fullmatch(value))
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
def test_bad_batches_are_refused(batch: Any, before: list[Any]) -> None:
    errs = rejected("vpsnet_rollout", "vpsnet_rollout_batches", [*before, batch], "bad batch")
    assert any("is neither a host count" in e for e in errs), errs


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
    for kind in checks_module("dispatch").CHECKS:
        out = V.check([{"name": "v", "value": value, "check": kind}])
        assert isinstance(out, list)
    assert isinstance(V.check([spec]), list)
    assert isinstance(V.check(spec), list)


def test_zz_counts() -> None:
    """Runs last in this file: every class produced bad inputs, all rejected
    (the table is printed after it, with -s)."""
    for klass in ["bad version", "bad URL", "bad batch", "unsafe host name in a path"]:
        assert COUNTS[klass].rejected > 0, klass
