"""vpsnet-exporter's server and command line given bad input: fuzzed bytes and
malformed HTTP on a real socket, request heads parsed, listen addresses and
numbers refused in one line.

Every generated bad input is counted per class (BAD); the counts are printed
at the end of the module (pytest -s)."""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from testlib.input_counts import InputCounts
from testlib.vpsnet_exporter_helpers import closed, http_get, serving

from vpsnet_tools.exporter_server import parse_listen
from vpsnet_tools.web import Server
from vpsnet_tools.web_http import BadRequest, parse_head

BAD = InputCounts("exporter request bad inputs")  # every one generated and rejected
_print_bad_counts = BAD.report_fixture()
FUZZ = settings(max_examples=120, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


# --- requests: fuzzed bytes and malformed HTTP ---------------------------------------------

def http_ish() -> st.SearchStrategy[bytes]:
    token = st.sampled_from([b"GET", b"HEAD", b"POST", b"get", b"G\x00T", b"", b"GET GET"])
    target = st.one_of(st.sampled_from([b"/metrics", b"/", b"/x", b"*", b"/metrics?x=1"]),
                       st.binary(max_size=40))
    version = st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.1\r", b"",
                               b"HTTP/9", b"http/1.1"])
    header = st.tuples(st.binary(max_size=20), st.binary(max_size=40)).map(
        lambda h: h[0] + b": " + h[1])
    eol = st.sampled_from([b"\r\n", b"\n", b"\r"])
    return st.builds(
        lambda m, t, v, hs, e, tail: m + b" " + t + b" " + v + e + e.join(hs) + e + e + tail,
        token, target, version, st.lists(header, max_size=5), eol, st.binary(max_size=30))


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, int]]:
    with serving(tmp_path_factory.mktemp("fuzz"), request_timeout=2.0) as sp:
        yield sp


def _exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        out = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := s.recv(65536):
                out += chunk
        return out


@FUZZ
@given(st.one_of(st.binary(max_size=400), http_ish()))
def test_fuzzed_requests_answered_or_closed_never_a_traceback(
        fuzz_server: tuple[Server, int], caplog: pytest.LogCaptureFixture, data: bytes
) -> None:
    _srv, port = fuzz_server
    with caplog.at_level(logging.WARNING, logger="vpsnet-exporter"):
        out = _exchange(port, data)
    assert out == b"" or (out[:9] == b"HTTP/1.1 " and out[9:12].isdigit()), out[:80]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    if not out.startswith(b"HTTP/1.1 200 "):
        BAD.add("http_request", rejected=True)


def test_after_the_fuzz_the_server_still_serves(fuzz_server: tuple[Server, int]) -> None:
    srv, port = fuzz_server
    assert http_get(port)[0] == 200
    assert closed(srv, "error") == 0


def test_oversized_head_methods_and_versions(fuzz_server: tuple[Server, int]) -> None:
    _srv, port = fuzz_server
    cases = {
        b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20000: b"431",  # no end: refused at 8 KiB
        b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc": b"405",
        b"GET /metrics HTTP/2.0\r\n\r\n": b"505",
        b"GET /metrics\r\n\r\n": b"400",  # HTTP/0.9
        b"GET /nope HTTP/1.0\r\n\r\n": b"404",
    }
    for request, code in cases.items():
        assert _exchange(port, request)[9:12] == code, request[:40]
        BAD.add("http_request", rejected=True)
    head = _exchange(port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n")


def test_listen_forms() -> None:
    assert parse_listen(":::19462") == ("::", 19462)
    assert parse_listen("exporter.example.net:1") == ("exporter.example.net", 1)
    for bad in ("[nope]:1", "1:2:3:x:80", "-h:80", "a..b:80"):
        with pytest.raises(ValueError):
            parse_listen(bad)
        BAD.add("listen_address", rejected=True)


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(max_size=200))
def test_parse_head_raises_only_bad_request(data: bytes) -> None:
    try:
        parse_head(data)
    except BadRequest as e:
        assert 400 <= e.code < 600


# --- command line: listen address and numbers ---------------------------------------------

CONTROL_OR_SPACE = st.characters(codec="utf-8", categories=["Cc", "Zs", "Zl", "Zp"]) | \
    st.sampled_from(['"', "'", "\\", "$", "%", ";", "`"])


@settings(max_examples=150, deadline=None, database=None)
@given(st.text(max_size=10), CONTROL_OR_SPACE, st.text(max_size=10),
       st.integers(1, 65535))
def test_listen_with_control_or_shell_characters_is_refused(a: str, bad: str, b: str,
                                                             port: int) -> None:
    addr = f"{a}{bad}{b}:{port}"
    with pytest.raises(ValueError) as e:
        parse_listen(addr)
    assert "listen address" in str(e.value)
    BAD.add("listen_address", rejected=True)


@pytest.mark.parametrize("args", [
    ["--listen", "127.0.0.1:80 --file /etc/shadow"],
    ["--listen", "127.0.0.1:80\nExecStartPre=+/bin/sh"],
    ["--listen", "[::1:80"],
    ["--listen", "1.2.3.4:0"],
    ["--web.max-connections", "0"],
    ["--web.max-connections", "1e9"],
    ["--web.request-timeout", "nan"],
    ["--web.request-timeout", "inf"],
    ["--web.request-timeout", "-1"],
    ["--interval", "1e999"],
    ["--web.max-connections", "\r100"],  # int() would skip the control character
    ["--interval", "15\x1c"],
])
def test_bad_arguments_one_line_no_traceback(args: list[str]) -> None:
    r = subprocess.run([sys.executable, "-m", "vpsnet_tools.exporter", *args],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("vpsnet-exporter: error: argument ")
    BAD.add("cli_argument", rejected=True)
