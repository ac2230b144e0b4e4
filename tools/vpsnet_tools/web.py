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
"""

from __future__ import annotations

import base64
import binascii
import collections
import contextlib
import errno
import hashlib
import heapq
import itertools
import logging
import re
import selectors
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

log = logging.getLogger("vpsnet-exporter")

DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_REQUEST_TIMEOUT_S = 5.0
DEFAULT_WRITE_TIMEOUT_S = 10.0
DEFAULT_WORKERS = 4
FD_RESERVE = 24  # fds kept free for the listener, the wake pipe, workers' files, logging
MAX_HEAD_BYTES = 8192
MAX_HEADERS = 64
EVICT_AFTER_S = 0.0  # see the module docstring: a grace here helps a flood, not a scrape
DRAIN_S = 1.0  # after the answer: read what the client still sends, so close() sends no RST
ACCEPT_BATCH = 64
BACKOFF_MIN_S = 0.05
BACKOFF_MAX_S = 0.5
AUTH_QUEUE = 16  # bcrypt checks waiting at most; beyond: 429 at once
AUTH_CACHE = 256
MAX_WEB_CONFIG_BYTES = 64 * 1024
CLOSE_REASONS = ("cap", "evicted", "deadline", "bad_request", "tls", "error")
FD_LIMIT_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)

Responder = Callable[[str], tuple[int, str, bytes]]


# --- web config (exporter-toolkit convention) --------------------------------------------

class WebConfigError(ValueError):
    """A bad web config: the message names the file and the field."""


CLIENT_AUTH = {
    "": ssl.CERT_NONE,
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# exporter-toolkit types Python's ssl module cannot do (ask for a certificate without
# verifying it)
CLIENT_AUTH_UNSUPPORTED = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
TLS_KEYS = ("cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version",
            "max_version")
# exporter-toolkit keys this exporter does not implement: refused, never silently ignored
TLS_KEYS_UNSUPPORTED = ("cert", "key", "client_ca", "cipher_suites", "curve_preferences",
                        "prefer_server_cipher_suites", "client_allowed_sans")
TOP_KEYS = ("tls_server_config", "basic_auth_users")
TOP_KEYS_UNSUPPORTED = ("http_server_config", "rate_limit")
BCRYPT_HASH = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
USER_NAME = re.compile(r"[^\x00-\x20\x7f:]{1,128}")  # no control chars, spaces or ':'


@dataclass
class WebConfig:
    path: str = ""
    ssl_context: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash


def _escape(value: object) -> str:
    return repr(value) if isinstance(value, str) else repr(str(value))


def _field(key: str) -> str:
    """A key as it appears in a message: plain names plain, anything else escaped."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]{1,64}", key) else repr(key)


def _unique_key_loader() -> type:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader: Any, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if not isinstance(key, str):
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is not a string", key_node.start_mark)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} repeated", key_node.start_mark)
            seen.add(key)
        return dict(loader.construct_pairs(node, deep=deep))

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return Loader


def load_web_config(path: str, *, tls_from_flags: bool = False) -> WebConfig:
    """Read and check PATH completely (files, hashes, certificates) or raise WebConfigError.
    Relative file names are relative to PATH's directory (as in exporter-toolkit)."""

    def bad(where: str, msg: str) -> WebConfigError:
        return WebConfigError(f"web config {path}: {where}: {msg}" if where
                              else f"web config {path}: {msg}")

    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_WEB_CONFIG_BYTES + 1)
    except OSError as e:
        raise bad("", f"cannot read: {e.strerror or e}") from None
    if len(raw) > MAX_WEB_CONFIG_BYTES:
        raise bad("", f"larger than {MAX_WEB_CONFIG_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise bad("", f"not UTF-8 (byte {e.start})") from None
    try:
        import yaml
    except ImportError:
        raise bad("", "needs PyYAML (python3-yaml)") from None
    try:
        doc = yaml.load(text, Loader=_unique_key_loader())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise bad(where, f"not valid YAML: {problem}") from None
    except RecursionError:
        raise bad("", "nested too deeply") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise bad("", f"must be a mapping, not {type(doc).__name__}")
    for key in doc:
        if key in TOP_KEYS_UNSUPPORTED:
            raise bad(key, "not supported by vpsnet-exporter")
        if key not in TOP_KEYS:
            raise bad(_field(key), f"unknown field (known: {', '.join(TOP_KEYS)})")
    base = Path(path).parent
    cfg = WebConfig(path=path)

    users = doc.get("basic_auth_users")
    if users is not None:
        if not isinstance(users, dict):
            raise bad("basic_auth_users", "must be a mapping of user: bcrypt hash")
        for user, hashed in users.items():
            if not USER_NAME.fullmatch(user):
                raise bad(f"basic_auth_users.{_field(user)}",
                          "user names have 1-128 characters, no ':', spaces or control "
                          "characters")
            if not isinstance(hashed, str) or not BCRYPT_HASH.fullmatch(hashed):
                raise bad(f"basic_auth_users.{_field(user)}",
                          f"{_escape(hashed)[:20]}... is not a bcrypt hash ($2y$10$ + 53 "
                          "characters; htpasswd -nBC 10 USER)")
            cfg.users[user] = hashed.encode()
        if cfg.users:
            try:
                import bcrypt  # noqa: F401
            except ImportError:
                raise bad("basic_auth_users", "needs the bcrypt module (python3-bcrypt)") from None

    tls = doc.get("tls_server_config")
    if tls is not None:
        if not isinstance(tls, dict):
            raise bad("tls_server_config", "must be a mapping")
        if tls_from_flags:
            raise bad("tls_server_config", "given together with --tls-cert: use one of them")
        for key, value in tls.items():
            where = f"tls_server_config.{_field(key)}"
            if key in TLS_KEYS_UNSUPPORTED:
                raise bad(where, "not supported by vpsnet-exporter")
            if key not in TLS_KEYS:
                raise bad(where, f"unknown field (known: {', '.join(TLS_KEYS)})")
            if not isinstance(value, str):
                raise bad(where, f"must be a string, not {type(value).__name__}")
            if any(ord(c) < 0x20 or c == "\x7f" for c in value):
                raise bad(where, f"{_escape(value)} has control characters")
        cfg.ssl_context = _tls_context(tls, base, bad)
    return cfg


def _tls_context(tls: dict[str, str], base: Path,
                 bad: Callable[[str, str], WebConfigError]) -> ssl.SSLContext:
    def file(key: str) -> str:
        p = base / tls[key]
        if not p.is_file():
            raise bad(f"tls_server_config.{key}", f"{str(p)!r}: no such file")
        return str(p)

    for key in ("cert_file", "key_file"):
        if not tls.get(key):
            raise bad(f"tls_server_config.{key}", "missing (cert_file and key_file are needed)")
    auth = tls.get("client_auth_type", "")
    if auth in CLIENT_AUTH_UNSUPPORTED:
        raise bad("tls_server_config.client_auth_type",
                  f"{auth!r} is not supported by vpsnet-exporter (it cannot ask for a "
                  "certificate without verifying it): use VerifyClientCertIfGiven or "
                  "RequireAndVerifyClientCert")
    if auth not in CLIENT_AUTH:
        raise bad("tls_server_config.client_auth_type",
                  f"{auth!r} is not one of {', '.join(k for k in CLIENT_AUTH if k)}")
    verify = CLIENT_AUTH[auth]
    if verify != ssl.CERT_NONE and not tls.get("client_ca_file"):
        raise bad("tls_server_config.client_ca_file", f"needed with client_auth_type {auth}")
    if verify == ssl.CERT_NONE and tls.get("client_ca_file"):
        raise bad("tls_server_config.client_auth_type",
                  "client_ca_file given without a client_auth_type that verifies")
    versions = {}
    for key, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
        v = tls.get(key, default)
        if v not in TLS_VERSIONS:
            raise bad(f"tls_server_config.{key}", f"{v!r} is not one of TLS12, TLS13")
        versions[key] = TLS_VERSIONS[v]
    if versions["min_version"] > versions["max_version"]:
        raise bad("tls_server_config.min_version", "is above max_version")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = versions["min_version"]
    ctx.maximum_version = versions["max_version"]
    cert, key = file("cert_file"), file("key_file")
    try:
        ctx.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as e:
        raise bad("tls_server_config.cert_file",
                  f"{cert!r} with key_file {key!r}: {getattr(e, 'reason', None) or e}") from None
    if verify != ssl.CERT_NONE:
        ca = file("client_ca_file")
        try:
            ctx.load_verify_locations(cafile=ca)
        except (ssl.SSLError, OSError) as e:
            raise bad("tls_server_config.client_ca_file",
                      f"{ca!r}: {getattr(e, 'reason', None) or e}") from None
        ctx.verify_mode = verify
    return ctx


def tls_context_from_files(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    """--tls-cert/--tls-key (the older flags): TLS 1.2+, no client certificates."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile, keyfile)
    return ctx


# --- basic auth ----------------------------------------------------------------------------

class BasicAuth:
    """exporter-toolkit's basic_auth_users: bcrypt checks are slow on purpose, so
    a verified (user, password) is remembered (as its SHA-256) and the checks
    run in one thread of their own with a bounded queue: a password guesser
    costs one core at most and never delays a scrape that authenticates."""

    def __init__(self, users: dict[str, bytes]) -> None:
        self.users = users
        self._ok: collections.OrderedDict[bytes, None] = collections.OrderedDict()
        self._lock = threading.Lock()
        # unknown users are checked against a real hash too: equal timing
        self._decoy = next(iter(users.values()))

    @staticmethod
    def credentials(header: str | None) -> tuple[str, bytes] | None:
        if not header:
            return None
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            raw = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            return None
        user, sep, password = raw.partition(b":")
        if not sep:
            return None
        try:
            return user.decode("utf-8"), password
        except UnicodeDecodeError:
            return None

    @staticmethod
    def _key(user: str, password: bytes) -> bytes:
        return hashlib.sha256(user.encode() + b"\0" + password).digest()

    def cached(self, user: str, password: bytes) -> bool:
        with self._lock:
            return self._key(user, password) in self._ok

    def check(self, user: str, password: bytes) -> bool:
        """The slow check (a worker runs it)."""
        import bcrypt

        hashed = self.users.get(user)
        try:
            ok = bcrypt.checkpw(password, hashed or self._decoy) and hashed is not None
        except ValueError:  # bcrypt 5 refuses passwords over 72 bytes
            ok = False
        if ok:
            with self._lock:
                self._ok[self._key(user, password)] = None
                while len(self._ok) > AUTH_CACHE:
                    self._ok.popitem(last=False)
        return ok


# --- the server ----------------------------------------------------------------------------

class Stats:
    """The server's own counters, exposed as vpsnet_exporter_* families."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open = 0
        self.closed = dict.fromkeys(CLOSE_REASONS, 0)
        self.accept_errors = {"fd_limit": 0, "other": 0}
        self.responses: collections.Counter[str] = collections.Counter()
        self.max_connections = 0

    def count_closed(self, reason: str) -> None:
        with self.lock:
            self.closed[reason] += 1

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            closed, errs = dict(self.closed), dict(self.accept_errors)
            responses, open_now = dict(self.responses), self.open
        g = GaugeMetricFamily("vpsnet_exporter_connections",
                              "HTTP connections open now (all phases)")
        g.add_metric([], float(open_now))
        yield g
        g = GaugeMetricFamily("vpsnet_exporter_max_connections",
                              "Connection cap (--web.max-connections)")
        g.add_metric([], float(self.max_connections))
        yield g
        c = CounterMetricFamily(
            "vpsnet_exporter_connections_closed",
            "Connections the exporter ended early: closed at the cap (cap), to make "
            "room for a new one (evicted), past the request deadline (deadline), malformed "
            "(bad_request, answered 4xx), failed TLS handshake (tls), other errors (error)",
            labels=["reason"])
        for reason in CLOSE_REASONS:
            c.add_metric([reason], float(closed[reason]))
        yield c
        c = CounterMetricFamily(
            "vpsnet_exporter_accept_errors",
            "accept() failures: out of file descriptors or memory (fd_limit), other",
            labels=["reason"])
        for reason, n in errs.items():
            c.add_metric([reason], float(n))
        yield c
        c = CounterMetricFamily("vpsnet_exporter_http_responses",
                                "HTTP answers sent, by status code", labels=["code"])
        for code, n in sorted(responses.items()):
            c.add_metric([code], float(n))
        yield c

    def describe(self) -> Iterable[Metric]:
        return []


HANDSHAKE, READ, WORK, WRITE, DRAIN = "handshake", "read", "work", "write", "drain"
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
           405: "Method Not Allowed", 408: "Request Timeout",
           429: "Too Many Requests", 431: "Request Header Fields Too Large",
           500: "Internal Server Error", 503: "Service Unavailable",
           505: "HTTP Version Not Supported"}
TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
TARGET = re.compile(r"[\x21-\x7e]{1,2048}")


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


class Request:
    def __init__(self, method: str, target: str, headers: dict[str, str]) -> None:
        self.method = method
        self.target = target
        self.path = target.split("?", 1)[0]
        self.headers = headers


class BadRequest(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code


def parse_head(head: bytes) -> Request:
    """The request line and headers (HTTP/1.0 or 1.1); BadRequest for anything else."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # latin-1 decodes every byte; kept for clarity
        raise BadRequest(400, "undecodable") from None
    lines = text.split("\r\n") if "\r\n" in text else text.split("\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise BadRequest(400, "malformed request line")
    method, target, version = parts
    if not TOKEN.fullmatch(method) or not TARGET.fullmatch(target):
        raise BadRequest(400, "malformed request line")
    if not re.fullmatch(r"HTTP/1\.[01]", version):
        if re.fullmatch(r"HTTP/[0-9]\.[0-9]", version):
            raise BadRequest(505, f"{version} not supported")
        raise BadRequest(400, "malformed request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not TOKEN.fullmatch(name):
            raise BadRequest(400, "malformed header")
        if any((ord(c) < 0x20 and c != "\t") or c == "\x7f" for c in value):
            raise BadRequest(400, "control character in a header")
        if len(headers) >= MAX_HEADERS:
            raise BadRequest(431, "too many headers")
        headers[name.lower()] = value.strip()
    return Request(method, target, headers)


def peer_name(addr: Any) -> str:
    """A client address for the log: host:port, an IPv6 host in brackets
    ([2001:db8::7]:40000); an IPv4 client of a dual-stack listener
    (::ffff:192.0.2.7) as plain IPv4."""
    if not isinstance(addr, tuple) or len(addr) < 2:
        return str(addr)
    host, port = str(addr[0]), addr[1]
    if ":" not in host:
        return f"{host}:{port}"
    if host.lower().startswith("::ffff:") and "." in host:
        return f"{host[7:]}:{port}"
    return f"[{host}]:{port}"


class Server:
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
        self.socket = sock
        self.server_address = sock.getsockname()
        self.respond = respond
        self.ssl_context = ssl_context
        self.auth = auth
        self.max_connections = max_connections
        self.request_timeout = request_timeout
        self.write_timeout = write_timeout
        self.evict_after = evict_after
        self.server_name = server_name
        self.stats = Stats()
        self.stats.max_connections = max_connections
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="render")
        self._auth_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bcrypt")
        self._auth_pending = 0
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._done: collections.deque[tuple[Conn, Callable[[], None]]] = collections.deque()
        self._conns: dict[Conn, None] = {}  # accept order: the oldest first
        self._timers: list[tuple[float, int, Conn]] = []
        self._seq = itertools.count()
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
        for _ in range(ACCEPT_BATCH):
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
                _abort(sock)
                continue
            try:
                self._add(sock, addr)
            except Exception:  # one connection never takes the loop down
                log.exception("accepting a connection from %s failed", addr)
                self.stats.count_closed("error")
                _abort(sock)

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
                _abort(sock)
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
        for _ in range(16):
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
            when, _, c = self._timers[0]
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

    # -- plumbing -------------------------------------------------------------------------

    def _close(self, c: Conn) -> None:
        if c.closed:
            return
        c.closed = True
        if c.events:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(c.sock)
        c.events = 0
        _abort(c.sock, graceful=c.phase == DRAIN)
        self._conns.pop(c, None)
        with self.stats.lock:
            self.stats.open = len(self._conns)

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


def _abort(sock: socket.socket, graceful: bool = False) -> None:
    """Close now; a connection refused or cut short gets no lingering FIN_WAIT."""
    try:
        if not graceful:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    with contextlib.suppress(OSError):
        sock.close()


def nofile_limit() -> int:
    import resource

    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except OSError:  # prlimit64 is in older systemd's @resources, which the unit denies
        return 1024  # systemd's default soft limit
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def default_max_connections() -> int:
    """DEFAULT_MAX_CONNECTIONS, lowered to fit the soft fd limit less a reserve."""
    return max(8, min(DEFAULT_MAX_CONNECTIONS, nofile_limit() - FD_RESERVE))

