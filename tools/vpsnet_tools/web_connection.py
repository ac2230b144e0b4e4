"""One client connection of the exporter's event loop, from the TLS handshake to the
drained close: reading the request head, writing the answer, the deadlines.
Imported by web, whose Server adds accepting, authentication and routing."""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import selectors
import socket
import ssl
import struct
import time
from dataclasses import dataclass, field
from email.utils import formatdate

from vpsnet_tools.web_http import MAX_HEAD_BYTES, REASONS, BadRequest, Request, parse_head
from vpsnet_tools.web_stats import Stats

log = logging.getLogger("vpsnet-exporter")

DRAIN_S = 1.0  # after the answer: read what the client still sends, so close() sends no RST
HANDSHAKE, READ, WORK, WRITE, DRAIN = "handshake", "read", "work", "write", "drain"


@dataclass(eq=False)
class Conn:
    sock: socket.socket
    peer: str
    accepted: float
    deadline: float
    phase: str = READ
    events: int = selectors.EVENT_READ
    buf: bytearray = field(default_factory=bytearray)
    out: bytes = b""
    sent: int = 0
    closed: bool = False
    head_only: bool = False


class Connections:
    """The open connections, their selector and deadlines, and each one's I/O.
    A complete request head goes to _dispatch, which the server provides."""

    def __init__(self, stats: Stats, server_name: str, write_timeout: float) -> None:
        self.stats = stats
        self.server_name = server_name
        self.write_timeout = write_timeout
        self._sel = selectors.DefaultSelector()
        self._conns: dict[Conn, None] = {}  # accept order: the oldest first
        self._timers: list[tuple[float, int, Conn]] = []
        self._seq = itertools.count()

    def _dispatch(self, c: Conn, req: Request) -> None:
        raise NotImplementedError

    # -- per connection -------------------------------------------------------------------

    def _event(self, c: Conn, mask: int) -> None:
        try:
            if c.phase == HANDSHAKE:
                self._handshake(c)
            if c.phase == READ:
                self._read(c)
            elif c.phase == WRITE:
                self._write(c)
            elif c.phase == DRAIN:
                self._drain(c)
        except BadRequest as e:
            self.stats.count_closed("bad_request")
            log.debug("bad request from %s: %s", c.peer, e)
            self._answer(c, e.code, "text/plain; charset=utf-8", f"{e}\n".encode())
        except ssl.SSLError as e:
            log.debug("TLS from %s failed: %s", c.peer, e)
            self.stats.count_closed("tls")
            self._close(c)
        except OSError as e:
            log.debug("connection from %s: %s", c.peer, e)
            self._close(c)
        except Exception:  # never let one connection take the loop down
            log.exception("connection from %s failed", c.peer)
            self.stats.count_closed("error")
            self._close(c)

    def _want(self, c: Conn, events: int) -> None:
        if not c.closed and events != c.events:
            self._sel.modify(c.sock, events, c)
            c.events = events

    def _handshake(self, c: Conn) -> None:
        assert isinstance(c.sock, ssl.SSLSocket)
        try:
            c.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._want(c, selectors.EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._want(c, selectors.EVENT_WRITE)
            return
        c.phase = READ
        self._want(c, selectors.EVENT_READ)

    def _recv(self, c: Conn, size: int = 65536) -> bytes | None:
        """Bytes, b'' at EOF, None when nothing more is there now."""
        try:
            return c.sock.recv(size)
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError):
            self._want(c, selectors.EVENT_READ)
        except ssl.SSLWantWriteError:
            self._want(c, selectors.EVENT_WRITE)
        except ssl.SSLZeroReturnError:
            return b""
        return None

    def _read(self, c: Conn) -> None:
        while True:
            # never more than a request head's worth buffered per connection
            data = self._recv(c, MAX_HEAD_BYTES + 1 - len(c.buf))
            if data is None:
                return
            if not data:  # the client went away before its request was complete
                self._close(c)
                return
            c.buf += data
            end = c.buf.find(b"\r\n\r\n")
            sep = 4
            if end < 0:
                end, sep = c.buf.find(b"\n\n"), 2
            if end < 0:
                if len(c.buf) > MAX_HEAD_BYTES:
                    raise BadRequest(431, "request head too large")
                continue
            if end > MAX_HEAD_BYTES:
                raise BadRequest(431, "request head too large")
            self._dispatch(c, parse_head(bytes(c.buf[:end + sep])))
            return

    def _answer(self, c: Conn, code: int, ctype: str, body: bytes,
                extra: list[tuple[str, str]] | None = None) -> None:
        if c.closed:
            return
        with self.stats.lock:
            self.stats.responses[str(code)] += 1
        head = [f"HTTP/1.1 {code} {REASONS.get(code, '')}",
                f"Server: {self.server_name}",
                f"Date: {formatdate(usegmt=True)}",
                f"Content-Type: {ctype}",
                f"Content-Length: {len(body)}",
                "Connection: close"]
        head += [f"{k}: {v}" for k, v in extra or []]
        c.out = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (
            b"" if c.head_only else body)
        c.sent = 0
        c.phase = WRITE
        self._set_deadline(c, time.monotonic() + self.write_timeout)
        if c.events == 0:
            self._sel.register(c.sock, selectors.EVENT_WRITE, c)
            c.events = selectors.EVENT_WRITE
        self._write(c)

    def _write(self, c: Conn) -> None:
        while c.sent < len(c.out):
            try:
                n = c.sock.send(c.out[c.sent:c.sent + 262144])
            except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError):
                self._want(c, selectors.EVENT_WRITE)
                return
            except ssl.SSLWantReadError:
                self._want(c, selectors.EVENT_READ)
                return
            c.sent += n
        # all sent: half-close and read what the client still sends for a moment,
        # so that closing does not reset the connection under the answer
        c.phase = DRAIN
        c.out = b""
        try:
            c.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._close(c)
            return
        self._set_deadline(c, time.monotonic() + DRAIN_S)
        self._want(c, selectors.EVENT_READ)
        self._drain(c)

    def _drain(self, c: Conn) -> None:
        for _attempt in range(16):
            try:
                data = c.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            if not data:
                break
        self._close(c)

    # -- deadlines ------------------------------------------------------------------------

    def _set_deadline(self, c: Conn, when: float) -> None:
        c.deadline = when
        heapq.heappush(self._timers, (when, next(self._seq), c))

    def _expire(self, now: float) -> float:
        """Close connections past their deadline; seconds until the next one."""
        while self._timers:
            when, _seq, c = self._timers[0]
            if c.closed or when != c.deadline:
                heapq.heappop(self._timers)
                continue
            if when > now:
                return min(when - now, 1.0)
            heapq.heappop(self._timers)
            if c.phase in (HANDSHAKE, READ, WRITE):
                self.stats.count_closed("deadline")
                log.debug("connection from %s: no complete %s within its deadline", c.peer,
                          "answer sent" if c.phase == WRITE else "request")
            if c.phase == WORK:
                continue  # a worker has it; the answer gets its own deadline
            self._close(c)
        return 1.0

    def _close(self, c: Conn) -> None:
        if c.closed:
            return
        c.closed = True
        if c.events:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(c.sock)
        c.events = 0
        abort_socket(c.sock, graceful=c.phase == DRAIN)
        self._conns.pop(c, None)
        with self.stats.lock:
            self.stats.open = len(self._conns)


def abort_socket(sock: socket.socket, graceful: bool = False) -> None:
    """Close now; a connection refused or cut short gets no lingering FIN_WAIT."""
    try:
        if not graceful:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sock.close()
