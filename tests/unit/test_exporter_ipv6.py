"""vpsnet-exporter on IPv6 (issue 22): with no listen address it serves IPv4 and
IPv6 clients on one dual-stack socket ([::], IPV6_V6ONLY off); on [::1] IPv6
only; client addresses are logged as [addr]:port. Loopback only."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from testlib.ipv6_loopback import ipv6_loopback
from testlib.vpsnet_exporter_helpers import free_port, metrics_text

from vpsnet_tools.exporter_metrics import make_registry
from vpsnet_tools.exporter_server import make_server
from vpsnet_tools.web import Server
from vpsnet_tools.web_http import peer_name

pytestmark = pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")


@contextlib.contextmanager
def serving(tmp_path: Path, listen: str) -> Iterator[Server]:
    f = tmp_path / "metrics"
    f.write_text(metrics_text())
    reg, _ = make_registry(str(f))
    srv = make_server(reg, listen)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(10)


def get(host: str, port: int) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def test_all_addresses_is_one_dual_stack_socket(tmp_path: Path) -> None:
    port = free_port()
    with serving(tmp_path, f":{port}") as srv:
        sock = srv.socket
        assert sock.family == socket.AF_INET6
        assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
        for host in ("127.0.0.1", "::1"):
            status, body = get(host, port)
            assert status == 200, host
            assert b"vpsnet_" in body, host


def test_ipv6_loopback_only(tmp_path: Path) -> None:
    port = free_port()
    with serving(tmp_path, f"[::1]:{port}"):
        assert get("::1", port)[0] == 200
        with pytest.raises(OSError):
            get("127.0.0.1", port)


@pytest.mark.parametrize(("addr", "shown"), [
    (("::1", 40000, 0, 0), "[::1]:40000"),
    (("2001:db8::7", 5, 0, 0), "[2001:db8::7]:5"),
    (("::ffff:192.0.2.7", 6, 0, 0), "192.0.2.7:6"),  # IPv4 client of a dual-stack socket
    (("192.0.2.7", 7), "192.0.2.7:7"),
    ("/run/x.sock", "/run/x.sock"),
])
def test_peer_names(addr: object, shown: str) -> None:
    assert peer_name(addr) == shown
