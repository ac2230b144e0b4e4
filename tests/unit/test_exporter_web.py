"""vpsnet-exporter's server under abuse, with real sockets on 127.0.0.1: slow
clients, the connection cap, the request deadline, the fd limit, basic auth and
TLS from the exporter-toolkit web config, and fuzzed requests and configs.

Every generated bad input is counted per class (BAD); the counts are printed
at the end of the module (pytest -s) for the issue's closing note."""

from __future__ import annotations

import base64
import contextlib
import logging
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from input_counts import InputCounts

from vpsnet_tools import exporter, web

from .vpsnet_exporter_helpers import (
    closed_by_peer,
    cpu_seconds,
    free_port,
    hold,
    http_get,
    metrics_text,
    self_signed,
)

BAD = InputCounts("exporter server bad inputs")  # every one generated and rejected
_print_bad_counts = BAD.report_fixture()
FUZZ = settings(max_examples=120, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@contextlib.contextmanager
def serving(tmp_path: Path, web_config: web.WebConfig | None = None,
            **attrs: float) -> Iterator[tuple[web.Server, int]]:
    """The exporter's server in a thread; ATTRS override server attributes."""
    f = tmp_path / "metrics"
    f.write_text(metrics_text())
    reg, _ = exporter.make_registry(str(f))
    kw = {k: attrs.pop(k) for k in ("max_connections", "request_timeout") if k in attrs}
    srv = exporter.make_server(reg, f"127.0.0.1:{free_port()}", web_config=web_config, **kw)
    srv.registry = reg  # type: ignore[attr-defined]
    for k, v in attrs.items():
        setattr(srv, k, v)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv, int(srv.server_address[1])
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(10)


def closed(srv: web.Server, reason: str) -> int:
    with srv.stats.lock:
        return srv.stats.closed[reason]


# These tests tell "answered" from "blocked" (held until a client timeout of 3-10 s),
# not fast from slow: the bound leaves room for a loaded CI machine. The 1 s figure
# under 500 slow clients is measured by bench/exporter_load.py.
NOT_BLOCKED_S = 2.5


def close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()


def test_slow_clients_do_not_block_scrapes(tmp_path: Path) -> None:
    with serving(tmp_path, max_connections=400) as (srv, port):
        held = hold(port, 250)
        try:
            took = []
            for _ in range(5):
                t = time.monotonic()
                status, _, body = http_get(port)
                took.append(time.monotonic() - t)
                assert status == 200 and b"vpsnet_up 1.0" in body
            assert max(took) < NOT_BLOCKED_S, took
            assert srv.stats.open >= 250
            assert b'vpsnet_exporter_connections ' in http_get(port)[2]
        finally:
            close_all(held)


def test_the_cap_closes_excess_connections_at_once(tmp_path: Path) -> None:
    with serving(tmp_path, max_connections=3, evict_after=60) as (srv, port):
        held = hold(port, 3)
        try:
            time.sleep(0.2)
            t = time.monotonic()
            for _ in range(2):
                try:
                    s = socket.create_connection(("127.0.0.1", port), timeout=5)
                except ConnectionResetError:
                    continue  # reset before connect() even returned: closed at once too
                with s:
                    assert closed_by_peer(s, 2)
            assert time.monotonic() - t < NOT_BLOCKED_S
            assert closed(srv, "cap") == 2
            # the held ones are still open
            assert not closed_by_peer(held[0], 0.2)
        finally:
            close_all(held)
        # once they are gone, there is room again
        time.sleep(0.2)
        assert http_get(port)[0] == 200
        body = http_get(port)[2].decode()
        assert 'vpsnet_exporter_connections_closed_total{reason="cap"} 2.0' in body


def test_at_the_cap_a_scrape_replaces_the_oldest_slow_client(tmp_path: Path) -> None:
    with serving(tmp_path, max_connections=3, evict_after=0.3) as (srv, port):
        held = hold(port, 3)
        try:
            time.sleep(0.5)
            assert http_get(port, timeout=3)[0] == 200
            assert closed(srv, "evicted") == 1 and closed(srv, "cap") == 0
            assert closed_by_peer(held[0], 1)  # the oldest one went
        finally:
            close_all(held)


def test_a_flood_reconnecting_at_the_cap_does_not_lock_scrapes_out(tmp_path: Path) -> None:
    """Slow clients that reconnect as soon as they are closed: every new scrape
    still gets in (it replaces the oldest of them) and is answered at once."""
    with serving(tmp_path, max_connections=20) as (srv, port):
        stop = threading.Event()
        flood_opened = [0]

        def flood() -> None:
            socks: list[socket.socket] = []
            while not stop.is_set():
                for s in list(socks):
                    if closed_by_peer(s, 0.001):
                        socks.remove(s)
                        s.close()
                while len(socks) < 40 and not stop.is_set():
                    try:
                        socks.append(socket.create_connection(("127.0.0.1", port), timeout=1))
                        flood_opened[0] += 1
                    except OSError:
                        pass
            close_all(socks)

        t = threading.Thread(target=flood, daemon=True)
        t.start()
        try:
            time.sleep(0.5)
            for _ in range(5):
                start = time.monotonic()
                assert http_get(port, timeout=3)[0] == 200
                assert time.monotonic() - start < NOT_BLOCKED_S
        finally:
            stop.set()
            t.join(10)
        assert flood_opened[0] > 40 and closed(srv, "evicted") > 20


def test_the_deadline_closes_a_trickling_client(tmp_path: Path) -> None:
    """A byte every 0.1 s keeps a per-recv timeout happy forever; the whole
    request has 1 s here."""
    with serving(tmp_path, request_timeout=1.0) as (srv, port):
        s = socket.create_connection(("127.0.0.1", port))
        start = time.monotonic()
        gone = None
        try:
            for b in b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"a" * 100:
                s.sendall(bytes([b]))
                time.sleep(0.1)
        except (ConnectionResetError, BrokenPipeError):
            gone = time.monotonic() - start
        finally:
            s.close()
        assert gone is not None and 0.9 < gone < NOT_BLOCKED_S + 1.0, gone  # trickle: 10 s
        assert closed(srv, "deadline") == 1
        assert http_get(port)[0] == 200


def test_a_client_that_never_reads_the_answer_holds_no_worker(tmp_path: Path) -> None:
    """Workers only render; sending is the event loop's, so requests that never read
    their answer do not stop other scrapes."""
    with serving(tmp_path) as (_srv, port):
        socks = []
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            s.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
            socks.append(s)
        try:
            t = time.monotonic()
            assert http_get(port)[0] == 200
            assert time.monotonic() - t < NOT_BLOCKED_S
        finally:
            close_all(socks)


# --- basic auth and TLS (exporter-toolkit web config) -------------------------------------

def web_config_file(tmp_path: Path, text: str) -> str:
    p = tmp_path / "web.yml"
    p.write_text(text)
    return str(p)


def basic(user: str, password: str | bytes) -> dict[str, str]:
    pw = password.encode() if isinstance(password, str) else password
    return {"Authorization": "Basic " + base64.b64encode(user.encode() + b":" + pw).decode()}


@pytest.fixture(scope="module")
def hashed() -> str:
    return bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()


def test_basic_auth(tmp_path: Path, hashed: str) -> None:
    cfg = web.load_web_config(web_config_file(
        tmp_path, f"basic_auth_users:\n  prometheus: '{hashed}'\n"))
    with serving(tmp_path, cfg) as (_srv, port):
        assert http_get(port, headers=basic("prometheus", "s3cret"))[0] == 200
        # the second time from the cache, same answer
        assert http_get(port, headers=basic("prometheus", "s3cret"))[0] == 200
        for headers in ({}, basic("prometheus", "wrong"), basic("nobody", "s3cret"),
                        basic("prometheus", b"x" * 100),  # bcrypt 5 refuses > 72 bytes
                        {"Authorization": "Basic !!!"}, {"Authorization": "Bearer abc"},
                        {"Authorization": "Basic " + base64.b64encode(b"nocolon").decode()}):
            status, h, _ = http_get(port, headers=headers)
            assert status == 401, headers
            assert h["www-authenticate"].startswith("Basic ")
            BAD.add("basic_auth", rejected=True)
        assert http_get(port, "/", headers=basic("prometheus", "s3cret"))[0] == 200
        assert http_get(port, "/", headers={})[0] == 401


def test_tls_and_client_certificates(tmp_path: Path, hashed: str) -> None:
    cert, key = self_signed(tmp_path)
    ccert, ckey = self_signed(tmp_path, "client", "prometheus")
    cfg = web.load_web_config(web_config_file(tmp_path, (
        "tls_server_config:\n"
        "  cert_file: server.crt\n"   # relative: to the config file's directory
        f"  key_file: {key}\n"
        "  client_auth_type: RequireAndVerifyClientCert\n"
        "  client_ca_file: client.crt\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n")))
    with serving(tmp_path, cfg) as (srv, port):
        ctx = ssl.create_default_context(cafile=str(cert))
        ctx.load_cert_chain(str(ccert), str(ckey))
        with socket.create_connection(("127.0.0.1", port)) as raw, \
                ctx.wrap_socket(raw, server_hostname="localhost") as s:
            auth = basic("prometheus", "s3cret")["Authorization"]
            s.sendall(f"GET /metrics HTTP/1.1\r\nAuthorization: {auth}\r\n\r\n".encode())
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 ") and b"vpsnet_up 1.0" in answer
        # no client certificate: the handshake fails
        bare = ssl.create_default_context(cafile=str(cert))
        with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)), \
                socket.create_connection(("127.0.0.1", port)) as raw, \
                bare.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
            s.recv(100)
        # plain HTTP to the TLS port: closed, counted, and the server goes on
        with pytest.raises(OSError):
            http_get(port, timeout=3)
        assert closed(srv, "tls") >= 2


def test_tls_handshake_is_under_the_deadline(tmp_path: Path) -> None:
    """A client that connects to the TLS port and sends nothing is closed at the deadline."""
    cert, key = self_signed(tmp_path)
    cfg = web.load_web_config(web_config_file(
        tmp_path, f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"))
    with serving(tmp_path, cfg, request_timeout=0.5) as (srv, port):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"\x16\x03\x01")  # the start of a ClientHello, never finished
        assert closed_by_peer(s, 3)
        s.close()
        assert closed(srv, "deadline") == 1


BAD_WEB_CONFIGS = {
    "not yaml": ("a: [", "line"),
    "not a mapping": ("- 1\n", "mapping"),
    "unknown key": ("tls_config: {}\n", "tls_config: unknown field"),
    "repeated key": ("basic_auth_users: {}\nbasic_auth_users: {}\n", "repeated"),
    "unsupported http_server_config": ("http_server_config: {http2: false}\n",
                                       "http_server_config"),
    "users not a mapping": ("basic_auth_users: [a]\n", "basic_auth_users"),
    "plain password": ("basic_auth_users: {u: secret}\n", "basic_auth_users.u"),
    "hash with a newline": ("basic_auth_users: {u: \"$2y$10$" + "a" * 53 + "\\n\"}\n",
                            "basic_auth_users.u"),
    "user with a colon": ("basic_auth_users: {'a:b': x}\n", "basic_auth_users"),
    "no key_file": ("tls_server_config: {cert_file: c.pem}\n", "tls_server_config.key_file"),
    "missing cert": ("tls_server_config: {cert_file: nope.pem, key_file: nope.key}\n",
                     "tls_server_config.cert_file"),
    "bad client auth": ("tls_server_config: {cert_file: a, key_file: b, client_auth_type: "
                        "Maybe}\n", "tls_server_config.client_auth_type"),
    "request client cert": ("tls_server_config: {cert_file: a, key_file: b, client_auth_type: "
                            "RequestClientCert}\n", "tls_server_config.client_auth_type"),
    "verify without CA": ("tls_server_config: {cert_file: a, key_file: b, client_auth_type: "
                          "RequireAndVerifyClientCert}\n", "tls_server_config.client_ca_file"),
    "bad version": ("tls_server_config: {cert_file: a, key_file: b, min_version: TLS10}\n",
                    "tls_server_config.min_version"),
    "number for a path": ("tls_server_config: {cert_file: 1, key_file: b}\n",
                          "tls_server_config.cert_file"),
    "unsupported cipher_suites": ("tls_server_config: {cipher_suites: [x]}\n",
                                  "tls_server_config.cipher_suites"),
    "not UTF-8": (b"basic_auth_users: {\xff: x}\n", "UTF-8"),
}


@pytest.mark.parametrize("name", list(BAD_WEB_CONFIGS))
def test_bad_web_config_one_line_no_listener(tmp_path: Path, name: str) -> None:
    text, field = BAD_WEB_CONFIGS[name]
    p = tmp_path / "web.yml"
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    port = free_port()
    r = subprocess.run(
        [sys.executable, "-m", "vpsnet_tools.exporter", "--file", str(tmp_path / "m"),
         "--listen", f"127.0.0.1:{port}", "--web.config.file", str(p)],
        capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert str(p) in lines[0] and field in lines[0], lines[0]
    with socket.socket() as s:  # nothing listened
        s.bind(("127.0.0.1", port))
    BAD.add("web_config_file", rejected=True)


@FUZZ
@given(st.one_of(st.binary(max_size=300),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                              lambda c: st.lists(c, max_size=4)
                              | st.dictionaries(st.text(max_size=20), c, max_size=4),
                              max_leaves=20).map(lambda d: repr(d).encode())))
def test_fuzzed_web_config_only_web_config_errors(tmp_path: Path, data: bytes) -> None:
    p = tmp_path / "fuzz.yml"
    p.write_bytes(data)
    try:
        cfg = web.load_web_config(str(p))
    except web.WebConfigError as e:
        assert str(p) in str(e) and "\n" not in str(e)
        BAD.add("web_config_fuzz", rejected=True)
    else:
        assert cfg.ssl_context is None and not cfg.users  # only empty configs pass


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
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[web.Server, int]]:
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
        fuzz_server: tuple[web.Server, int], caplog: pytest.LogCaptureFixture, data: bytes
) -> None:
    _srv, port = fuzz_server
    with caplog.at_level(logging.WARNING, logger="vpsnet-exporter"):
        out = _exchange(port, data)
    assert out == b"" or (out[:9] == b"HTTP/1.1 " and out[9:12].isdigit()), out[:80]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    if not out.startswith(b"HTTP/1.1 200 "):
        BAD.add("http_request", rejected=True)


def test_after_the_fuzz_the_server_still_serves(fuzz_server: tuple[web.Server, int]) -> None:
    srv, port = fuzz_server
    assert http_get(port)[0] == 200
    assert closed(srv, "error") == 0


def test_oversized_head_methods_and_versions(fuzz_server: tuple[web.Server, int]) -> None:
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
    assert exporter.parse_listen(":::19462") == ("::", 19462)
    assert exporter.parse_listen("exporter.example.net:1") == ("exporter.example.net", 1)
    for bad in ("[nope]:1", "1:2:3:x:80", "-h:80", "a..b:80"):
        with pytest.raises(ValueError):
            exporter.parse_listen(bad)
        BAD.add("listen_address", rejected=True)


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(max_size=200))
def test_parse_head_raises_only_bad_request(data: bytes) -> None:
    try:
        web.parse_head(data)
    except web.BadRequest as e:
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
        exporter.parse_listen(addr)
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


# --- the fd limit ----------------------------------------------------------------------------

FD_LIMIT = 64


@pytest.mark.parametrize("evict_after", ["3600", "0"], ids=["backoff-only", "evicting"])
def test_at_the_fd_limit_no_busy_loop_and_scrapes_come_back(tmp_path: Path,
                                                             evict_after: str) -> None:
    """RLIMIT_NOFILE 64 in the exporter's process, 150 clients held: accept()
    fails with EMFILE. The exporter must not spin (CPU time over a 2 s window,
    and accept attempts counted by its own metric) and must answer again once
    fds free up. backoff-only: slow clients are never evicted, so the limit
    holds for the whole window; evicting (the default): slow clients make
    room, so a scrape is answered even while they are held."""
    metrics = tmp_path / "metrics"
    metrics.write_text(metrics_text())
    port = free_port()
    code = ("import resource, sys; "
            f"resource.setrlimit(resource.RLIMIT_NOFILE, ({FD_LIMIT}, {FD_LIMIT})); "
            "from vpsnet_tools.exporter import main; sys.exit(main(sys.argv[1:]))")
    p = subprocess.Popen(
        [sys.executable, "-c", code, "--file", str(metrics), "--listen", f"127.0.0.1:{port}",
         "--web.max-connections", "1000", "--web.request-timeout", "60",
         "--web.evict-after", evict_after],
        stderr=subprocess.PIPE, text=True)
    held: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                assert http_get(port, timeout=2)[0] == 200
                break
            except OSError:
                assert time.monotonic() < deadline and p.poll() is None
                time.sleep(0.1)
        held = hold(port, 150, b"")
        time.sleep(1.0)
        cpu0, t0 = cpu_seconds(p.pid), time.monotonic()
        time.sleep(2.0)
        ratio = (cpu_seconds(p.pid) - cpu0) / (time.monotonic() - t0)
        # measured: 0.00-0.01 here; the old thread-per-connection server spun at 0.29 of a core
        # on this loaded 2-core machine (1.0 when idle)
        assert ratio < 0.1, ratio
        during = None
        if evict_after == "0":
            t = time.monotonic()
            assert http_get(port, timeout=20)[0] == 200
            during = time.monotonic() - t
        close_all(held)
        held = []
        t = time.monotonic()
        status, _, body = http_get(port, timeout=5)
        after = time.monotonic() - t
        assert status == 200 and after < 2.0
        text = body.decode()
        fd_errors = float(next(
            line for line in text.splitlines()
            if line.startswith('vpsnet_exporter_accept_errors_total{reason="fd_limit"}')
        ).split()[-1])
        # bounded: a spinning loop counts millions in these seconds
        assert 1 <= fd_errors < (100 if evict_after == "3600" else 2000), fd_errors
        evicted = 'vpsnet_exporter_connections_closed_total{reason="evicted"} 0.0' not in text
        assert evicted == (evict_after == "0")
        print(f"\nfd limit {FD_LIMIT}, evict after {evict_after} s: cpu ratio {ratio:.3f}, "
              f"accept errors {fd_errors:.0f}, scrape while held {during}, after "
              f"{after:.3f} s")
    finally:
        close_all(held)
        p.terminate()
        _, err = p.communicate(timeout=10)
    assert "Traceback" not in err
    assert err.count("accept failed") == 1  # logged once a minute, not per attempt
    BAD.add("fd_exhaustion", rejected=True)


def test_default_cap_fits_the_fd_limit() -> None:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert web.default_max_connections() <= max(8, soft - web.FD_RESERVE)
    assert web.default_max_connections() <= web.DEFAULT_MAX_CONNECTIONS

