"""HTTP servers of a built repository on host loopback: RepoServer, the guests'
http://10.0.2.101/ with one route per guest, and serve_directory() for the
host-side HTTP test. For the packaging tests."""

from __future__ import annotations

import functools
import http.server
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def serve_directory(root: Path) -> Iterator[str]:
    """ROOT's files over HTTP on an ephemeral loopback port; yields the base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class RepoServer:
    """HTTP on 127.0.0.1:PORT (the guests' http://10.0.2.101/). /<guest>/kernels/
    is the kernel headers repository; any other /<guest>/... is served from the
    directory currently routed to that guest (None: 404)."""

    def __init__(self, port: int) -> None:
        self.routes: dict[str, Path | None] = {}
        self.kernels: Path | None = None
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def translate_path(self, path: str) -> str:
                parts = [
                    urllib.parse.unquote(p)
                    for p in urllib.parse.urlsplit(path).path.split("/")
                    if p not in ("", ".", "..")
                ]
                if not parts:
                    return "/nonexistent"
                guest, rest = parts[0], parts[1:]
                base = server.routes.get(guest)
                if rest[:1] == ["kernels"]:
                    base, rest = server.kernels, rest[1:]
                return str(base.joinpath(*rest)) if base else "/nonexistent"

            def send_head(self):  # type: ignore[no-untyped-def]
                # Variants are copies with old mtimes: a 304 to apt's
                # If-Modified-Since would hide the swap of a repository.
                del self.headers["If-Modified-Since"]
                return super().send_head()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
