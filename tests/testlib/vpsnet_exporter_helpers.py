"""Realistic /proc/net/vpsnet/metrics text for exporter tests and the benchmark,
a free loopback port, the tools staged as the packages build them, waiting for
an event, and the exporter's server run in a thread for the web tests."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from vpsnet_lab.loopback import cpu_seconds as cpu_seconds
from vpsnet_lab.loopback import free_port as free_port
from vpsnet_lab.sample_metrics import FAMILIES as FAMILIES
from vpsnet_lab.sample_metrics import metrics_text as metrics_text
from vpsnet_tools.exporter_metrics import make_registry
from vpsnet_tools.exporter_server import make_server
from vpsnet_tools.web import Server
from vpsnet_tools.web_config import WebConfig

TOP = Path(__file__).resolve().parents[2]


def wait_for(event: Callable[[], object], what: str, timeout: float = 30) -> None:
    """Poll until EVENT() is true: a generous deadline, never a fixed window."""
    deadline = time.monotonic() + timeout
    while not event():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.02)


def stage_tools(dest: Path, version: str) -> None:
    """tools/ copied to DEST with its version pinned, as packaging/scripts/stage.sh does."""
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(TOP / "tools", dest,
                    ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    subprocess.run([sys.executable, str(TOP / "packaging/scripts/pin-tools-version.py"),
                    str(dest), version], check=True)

# --- the web server (tests/unit/test_exporter_web*.py, bench/exporter_load.py) -----------


@contextlib.contextmanager
def serving(tmp_path: Path, web_config: WebConfig | None = None,
            **attrs: float) -> Iterator[tuple[Server, int]]:
    """The exporter's server in a thread; ATTRS override server attributes."""
    f = tmp_path / "metrics"
    f.write_text(metrics_text())
    reg, _ = make_registry(str(f))
    kw = {k: attrs.pop(k) for k in ("max_connections", "request_timeout") if k in attrs}
    srv = make_server(reg, f"127.0.0.1:{free_port()}", web_config=web_config, **kw)
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


def closed(srv: Server, reason: str) -> int:
    """Connections SRV closed for REASON (its vpsnet_exporter_connections_closed)."""
    with srv.stats.lock:
        return int(srv.stats.closed[reason])


def close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        s.close()


def self_signed(directory: Path, name: str = "server", cn: str = "localhost") -> tuple[Path, Path]:
    """A P-256 certificate for CN/127.0.0.1 and its key, made with the openssl CLI."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", f"/CN={cn}", "-addext",
         "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


def hold(port: int, n: int,
         first_bytes: bytes = b"GET /metrics HTTP/1.1\r\n") -> list[socket.socket]:
    """N slow clients: connected, part of a request sent, never finished."""
    held = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if first_bytes:
            s.sendall(first_bytes)
        held.append(s)
    return held


def closed_by_peer(s: socket.socket, timeout: float) -> bool:
    """True if the server closed S (EOF or reset) within TIMEOUT seconds."""
    s.settimeout(timeout)
    try:
        while True:
            if not s.recv(4096):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False


def http_get(port: int, path: str = "/metrics", headers: dict[str, str] | None = None,
             timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection: (status, headers, body)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()
