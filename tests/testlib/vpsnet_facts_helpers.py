"""Paths and helpers shared by the role unit tests (imported by conftest and tests)."""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "unit" / "roles" / "fixtures"


def recorded_ethtool(root: Path) -> Callable[[str], str | None]:
    """An `ethtool -l NAME` stand-in that reads recorded output under <root>/ethtool-l/."""

    def run(name: str) -> str | None:
        path = root / "ethtool-l" / name
        return path.read_text() if path.exists() else None

    return run


def ansible_env(tmp_path: Path, *, prepend_path: Path | None = None,
                **overrides: str) -> dict[str, str]:
    """The environment of an ansible-playbook run in a test: this venv, the repo's
    roles and collections, private state dirs under TMP_PATH, plain output."""
    bin_dir = Path(sys.executable).parent
    path = [str(prepend_path)] if prepend_path else []
    env = dict(os.environ)
    env.update({
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_ROLES_PATH": str(REPO / "roles"),
        "ANSIBLE_COLLECTIONS_PATH": str(REPO / ".cache" / "collections"),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "PATH": os.pathsep.join([*path, str(bin_dir), env.get("PATH", "")]),
        **overrides,
    })
    return env


# (status, headers, body) for one request
Response = tuple[int, dict[str, str], bytes]


@contextmanager
def http_server(respond: Callable[[str, str], Response]) -> Iterator[int]:
    """A threaded HTTP server on 127.0.0.1 that answers every GET and PUT with
    respond(method, path); yields its port and shuts down on exit."""
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            status, headers, body = respond(self.command, self.path)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_PUT = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield int(srv.server_address[1])
    finally:
        srv.shutdown()
        srv.server_close()


# handler(method, path, send, stop): writes the answer with send(bytes); stop is set on exit
RawHandler = Callable[[str, str, Callable[[bytes], None], threading.Event], None]


@contextmanager
def raw_http_server(handler: RawHandler) -> Iterator[int]:
    """A TCP server on 127.0.0.1 that reads each request's head and lets handler write
    whatever bytes it likes, as slowly as it likes (tricklers, silent servers); yields its
    port. Connections are closed and handler threads told to stop on exit."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            try:
                head = b""
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    data = conn.recv(4096)
                    if not data:
                        return
                    head += data
                words = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
                method, path = words[0], words[1] if len(words) > 1 else ""
                handler(method, path, conn.sendall, stop)
                stop.wait()  # keep the connection open until the test is done
            except OSError:
                pass

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        stop.set()
        listener.close()


def trickle(send: Callable[[bytes], None], stop: threading.Event, data: bytes,
            interval: float) -> None:
    """Send data one byte every interval until it is all sent or stop is set."""
    for i in range(len(data)):
        if stop.wait(interval):
            return
        send(data[i : i + 1])
