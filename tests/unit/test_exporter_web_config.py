"""vpsnet-exporter's exporter-toolkit web config, served for real on 127.0.0.1:
basic auth, TLS and client certificates, and bad or fuzzed config files (one
line naming the file and the field, nothing listening).

Every generated bad input is counted per class (BAD); the counts are printed
at the end of the module (pytest -s)."""

from __future__ import annotations

import base64
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import bcrypt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from testlib.input_counts import InputCounts
from testlib.vpsnet_exporter_helpers import (
    closed,
    closed_by_peer,
    free_port,
    http_get,
    self_signed,
    serving,
)

from vpsnet_tools.web_config import WebConfigError, load_web_config

BAD = InputCounts("exporter web config bad inputs")  # every one generated and rejected
_print_bad_counts = BAD.report_fixture()
FUZZ = settings(max_examples=120, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


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
    cfg = load_web_config(web_config_file(
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
    cfg = load_web_config(web_config_file(tmp_path, (
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
    cfg = load_web_config(web_config_file(
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
        cfg = load_web_config(str(p))
    except WebConfigError as e:
        assert str(p) in str(e) and "\n" not in str(e)
        BAD.add("web_config_fuzz", rejected=True)
    else:
        assert cfg.ssl_context is None and not cfg.users  # only empty configs pass
