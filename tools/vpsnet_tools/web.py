"""vpsnet-exporter's HTTP(S) server: one event loop that cannot be knocked over.

A thread per connection (http.server's ThreadingHTTPServer) lets a few
hundred slow clients hold as many threads, and at the file-descriptor limit
its accept loop spins. Here one thread owns every socket (selectors, epoll):

* it accepts, does the TLS handshake and reads the request head without
  blocking, under one deadline per connection for the whole request (a client
  that trickles a byte at a time gains nothing);
* only a complete request goes to a small pool of workers, which render the
  answer (read + parse the metrics file) and check bcrypt passwords; they
  never touch a socket, so a slow reader of the answer holds no worker;
* at most ``max_connections`` are open: at the cap (and at the fd limit) the
  oldest connection still sending its request is closed to make room (a slow
  client: a scrape sends its request at once, so a new scrape is the last one
  this picks, even while a flood reconnects as fast as it is closed); only when
  every connection is past its request (being answered) is the new one closed
  at once. ``evict_after`` (default 0) spares connections younger than that;
* accept() failing with EMFILE/ENFILE pauses accepting with a backoff (the
  pending connection stays in the kernel's backlog) instead of spinning.

Authentication and TLS follow the Prometheus exporter-toolkit web config
(``--web.config.file``): ``tls_server_config`` and ``basic_auth_users``
(bcrypt hashes). Answers are HTTP/1.0-style, one request per connection
(``Connection: close``), as the previous server did.

The parts: web_connection (one connection's I/O and deadlines), web_http (request
heads), web_auth (basic auth), web_stats (the server's counters); the web config
and TLS contexts are web_config and web_tls. Imported by exporter_server and tests.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import heapq
import logging
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from vpsnet_tools.web_auth import BasicAuth
from vpsnet_tools.web_connection import (
    DRAIN_S,
    HANDSHAKE,
    READ,
    WORK,
    Conn,
    Connections,
    abort_socket,
)
from vpsnet_tools.web_http import Request, peer_name
from vpsnet_tools.web_stats import Stats

log = logging.getLogger("vpsnet-exporter")

DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_REQUEST_TIMEOUT_S = 5.0
DEFAULT_WRITE_TIMEOUT_S = 10.0
DEFAULT_WORKERS = 4
FD_RESERVE = 24  # fds kept free for the listener, the wake pipe, workers' files, logging
EVICT_AFTER_S = 0.0  # see the module docstring: a grace here helps a flood, not a scrape
ACCEPT_BATCH = 64
BACKOFF_MIN_S = 0.05
BACKOFF_MAX_S = 0.5
AUTH_QUEUE = 16  # bcrypt checks waiting at most; beyond: 429 at once
FD_LIMIT_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)

Responder = Callable[[str], tuple[int, str, bytes]]


class Server(Connections):
    """The event loop. API as http.server's (serve_forever, shutdown, server_close,
    socket, server_address) so the handoff and the tests use it the same way."""

    def __init__(
        self,
        sock: socket.socket,
        respond: Responder,
        *,
        ssl_context: ssl.SSLContext | None = None,
        auth: BasicAuth | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT_S,
        write_timeout: float = DEFAULT_WRITE_TIMEOUT_S,
        workers: int = DEFAULT_WORKERS,
        evict_after: float = EVICT_AFTER_S,
        server_name: str = "vpsnet-exporter",
    ) -> None:
        super().__init__(Stats(), server_name, write_timeout)
        self.socket = sock
        self.server_address = sock.getsockname()
        self.respond = respond
        self.ssl_context = ssl_context
        self.auth = auth
        self.max_connections = max_connections
        self.request_timeout = request_timeout
        self.evict_after = evict_after
        self.stats.max_connections = max_connections
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="render")
        self._auth_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bcrypt")
        self._auth_pending = 0
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._done: collections.deque[tuple[Conn, Callable[[], None]]] = collections.deque()
        self._accepting = False
        self._accept_resume = 0.0
        self._backoff = BACKOFF_MIN_S
        self._fd_warned = 0.0
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()

    # -- lifecycle ------------------------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._stopped.clear()
        self.socket.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._listen(True)
        stop_at: float | None = None
        try:
            while True:
                now = time.monotonic()
                if self._stop.is_set() and stop_at is None:
                    # finish the scrapes in hand; requests still arriving get a short grace
                    self._listen(False)
                    stop_at = now + DRAIN_S
                    for c in list(self._conns):
                        if c.phase in (HANDSHAKE, READ) and not c.buf:
                            self._set_deadline(c, min(c.deadline, stop_at))
                if stop_at is not None and not self._conns:
                    return
                timeout = self._expire(now)
                if not self._accepting and stop_at is None:
                    if now >= self._accept_resume:
                        self._listen(True)
                    else:
                        timeout = min(timeout, self._accept_resume - now)
                for key, mask in self._sel.select(max(timeout, 0.001)):
                    if key.data is None:
                        self._drain_wake()
                    elif key.data == "listen":
                        self._accept()
                    else:
                        self._event(key.data, mask)
                self._run_done()
        finally:
            for c in list(self._conns):
                self._close(c)
            self._listen(False)
            self._sel.unregister(self._wake_r)
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop accepting, finish the answers in hand, return once serve_forever has."""
        self._stop.set()
        self._wake()
        self._stopped.wait()

    def server_close(self) -> None:
        self._pool.shutdown(wait=True)
        self._auth_pool.shutdown(wait=True, cancel_futures=True)
        self.socket.close()
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()

    # -- accepting ------------------------------------------------------------------------

    def _listen(self, on: bool) -> None:
        if on and not self._accepting:
            self._sel.register(self.socket, selectors.EVENT_READ, "listen")
        elif not on and self._accepting:
            self._sel.unregister(self.socket)
        self._accepting = on

    def _accept(self) -> None:
        for _attempt in range(ACCEPT_BATCH):
            try:
                sock, addr = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EPERM):
                    continue  # that one connection is gone (EPERM: a firewall said no)
                fd_limit = e.errno in FD_LIMIT_ERRNOS
                with self.stats.lock:
                    self.stats.accept_errors["fd_limit" if fd_limit else "other"] += 1
                now = time.monotonic()
                if now - self._fd_warned > 60:
                    self._fd_warned = now
                    log.warning("accept failed (%s) with %d connections open: closing the "
                                "oldest slow client or pausing accept up to %.1f s at a time, "
                                "still serving (logged once a minute)",
                                e.strerror or e, len(self._conns), BACKOFF_MAX_S)
                if fd_limit and self._evict():
                    continue  # a slow client's fd is free now: try again
                self._pause()
                return
            self._backoff = BACKOFF_MIN_S
            if len(self._conns) >= self.max_connections and not self._evict():
                self.stats.count_closed("cap")
                abort_socket(sock)
                continue
            try:
                self._add(sock, addr)
            except Exception:  # one connection never takes the loop down
                log.exception("accepting a connection from %s failed", addr)
                self.stats.count_closed("error")
                abort_socket(sock)

    def _pause(self) -> None:
        """accept() failed (fd limit): leave the connection in the backlog, stop
        polling the listener for a while instead of spinning on it."""
        self._listen(False)
        self._accept_resume = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)

    def _evict(self) -> bool:
        """Close the oldest connection still sending its request (and older than
        evict_after); False when there is none."""
        limit = time.monotonic() - self.evict_after
        for c in self._conns:
            if c.accepted > limit:
                return False
            if c.phase in (HANDSHAKE, READ):
                self.stats.count_closed("evicted")
                self._close(c)
                return True
        return False

    def _add(self, sock: socket.socket, addr: Any) -> None:
        sock.setblocking(False)
        now = time.monotonic()
        peer = peer_name(addr)
        phase = READ
        if self.ssl_context is not None:
            try:
                sock = self.ssl_context.wrap_socket(sock, server_side=True,
                                                    do_handshake_on_connect=False)
            except (OSError, ValueError) as e:
                log.debug("TLS from %s failed: %s", peer, e)
                self.stats.count_closed("tls")
                abort_socket(sock)
                return
            phase = HANDSHAKE
        c = Conn(sock, peer, now, now + self.request_timeout, phase)
        self._conns[c] = None
        with self.stats.lock:
            self.stats.open = len(self._conns)
        self._sel.register(sock, selectors.EVENT_READ, c)
        heapq.heappush(self._timers, (c.deadline, next(self._seq), c))
        # data often arrives with the connection: try at once
        self._event(c, selectors.EVENT_READ)

    # -- a complete request: basic auth, then a worker renders the answer ---------------

    def _dispatch(self, c: Conn, req: Request) -> None:
        c.phase = WORK
        c.head_only = req.method == "HEAD"
        # while the answer is prepared nothing is read; the write deadline starts later
        self._set_deadline(c, time.monotonic() + self.write_timeout)
        self._sel.unregister(c.sock)
        c.events = 0
        if req.method not in ("GET", "HEAD"):
            self._answer(c, 405, "text/plain; charset=utf-8", b"only GET and HEAD\n",
                         [("Allow", "GET, HEAD")])
            return
        if self.auth is not None:
            creds = BasicAuth.credentials(req.headers.get("authorization"))
            if creds is None:
                self._unauthorized(c)
                return
            if not self.auth.cached(*creds):
                if self._auth_pending >= AUTH_QUEUE:
                    self._answer(c, 429, "text/plain; charset=utf-8",
                                 b"too many password checks waiting\n", [("Retry-After", "1")])
                    return
                self._auth_pending += 1
                auth = self.auth

                def check() -> None:
                    ok = auth.check(*creds)
                    self._post(c, lambda: self._authed(c, req, ok))

                self._auth_pool.submit(_guard(check, lambda: self._post(
                    c, lambda: self._authed(c, req, False))))
                return
        self._route(c, req)

    def _authed(self, c: Conn, req: Request, ok: bool) -> None:
        self._auth_pending -= 1
        if c.closed:
            return
        if ok:
            self._route(c, req)
        else:
            self._unauthorized(c)

    def _unauthorized(self, c: Conn) -> None:
        self._answer(c, 401, "text/plain; charset=utf-8", b"Unauthorized\n",
                     [("WWW-Authenticate", 'Basic realm="vpsnet-exporter", charset="UTF-8"')])

    def _route(self, c: Conn, req: Request) -> None:
        def work() -> None:
            try:
                code, ctype, body = self.respond(req.path)
            except Exception:
                log.exception("answering %s failed", req.path)
                code, ctype, body = 500, "text/plain; charset=utf-8", b"internal error\n"
            self._post(c, lambda: self._answer(c, code, ctype, body))

        self._pool.submit(work)

    def _post(self, c: Conn, fn: Callable[[], None]) -> None:
        """From a worker: run fn in the loop."""
        self._done.append((c, fn))
        self._wake()

    def _run_done(self) -> None:
        while self._done:
            c, fn = self._done.popleft()
            try:
                fn()
            except Exception:
                log.exception("finishing an answer to %s failed", c.peer)
                self._close(c)

    # -- waking the loop from a worker ----------------------------------------------------

    def _wake(self) -> None:
        # a full buffer means already awake; OSError: closing
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass


def _guard(fn: Callable[[], None], on_error: Callable[[], None]) -> Callable[[], None]:
    def run() -> None:
        try:
            fn()
        except Exception:
            log.exception("password check failed")
            on_error()

    return run


def nofile_limit() -> int:
    import resource

    try:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except OSError:  # prlimit64 is in older systemd's @resources, which the unit denies
        return 1024  # systemd's default soft limit
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def default_max_connections() -> int:
    """DEFAULT_MAX_CONNECTIONS, lowered to fit the soft fd limit less a reserve."""
    return max(8, min(DEFAULT_MAX_CONNECTIONS, nofile_limit() - FD_RESERVE))
