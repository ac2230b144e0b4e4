"""vpsnet-exporter: serve /proc/net/vpsnet/metrics to Prometheus.

The module writes Prometheus text to a /proc file, which Prometheus cannot
scrape. This exporter re-exposes the module's metric families over HTTP(S)
(or, with ``--textfile DIR``, as a file for node_exporter's textfile
collector) and adds its own:

* ``vpsnet_up``: 1 if the metrics file was read and parsed completely, else 0
  (module not loaded, file unreadable, malformed or truncated).
* ``vpsnet_exporter_scrape_duration_seconds``: time spent reading and parsing.
* ``vpsnet_exporter_scrape_errors_total{reason}``: reads that failed
  (``read``), files that did not end with a newline (``truncated``) or that
  the parser refused (``parse``).

A scrape is all or nothing: the module's families are exposed only when the
whole file (one ``read`` of one open file: the module snapshots all devices
per ``open()``) parsed without error, so a family is never half-exposed.

Default port 19462: the Prometheus exporter block 9100-9999 is fully
allocated, and 19462 is neither in the project's default port allocations
list nor in /etc/services. Default address: all (``:19462``), as node_exporter:
Prometheus scrapes from another host and the exporter cannot know which
address is the management one; the role restricts sources with systemd's
IPAddressAllow= and can bind one address.

HTTP is served by web.py: one event loop with a bounded worker pool, a
whole-request deadline, a connection cap and no busy loop at the fd limit,
and the exporter-toolkit web config (``--web.config.file``: TLS, client
certificates, basic auth).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import re
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.parser import text_string_to_metric_families

from vpsnet_tools import __version__, handoff, web
from vpsnet_tools.cliargs import finite

DEFAULT_FILE = "/proc/net/vpsnet/metrics"
DEFAULT_PORT = 19462
TEXTFILE_NAME = "vpsnet.prom"
# *.prom files other vpsnet parts write (vpsnet_tune's drift metric), served with
# the module's families: no node_exporter needed (--textfile-include).
TEXTFILE_INCLUDE = "/var/lib/vpsnet/textfile"
ERROR_REASONS = ("read", "truncated", "parse")
MAX_BYTES = 16 * 1024 * 1024  # a sane bound for one snapshot

log = logging.getLogger("vpsnet-exporter")


class VpsnetCollector:
    """Custom collector: the module's families (all or nothing) plus our own."""

    def __init__(self, path: str = DEFAULT_FILE, include: str | None = None) -> None:
        self.path = path
        self.include = include
        self._lock = threading.Lock()
        self._errors = dict.fromkeys(ERROR_REASONS, 0)
        self._state: str | None = None  # last logged state: up, absent, error

    def _log_state(self, state: str, msg: str, level: int) -> None:
        # One line per state change, not one per scrape.
        with self._lock:
            changed = state != self._state
            self._state = state
        if changed:
            log.log(level, msg)

    def _error(self, reason: str, detail: str) -> None:
        with self._lock:
            self._errors[reason] += 1
        # Errors are logged every time (they are unexpected), state or not.
        log.warning("scrape error (%s) reading %s: %s", reason, self.path, detail)
        with self._lock:
            self._state = "error"

    def read_families(self) -> list[Metric] | None:
        """Read and parse the file; None when the module's families are not served."""
        try:
            with open(self.path, "rb") as f:
                raw = f.read(MAX_BYTES + 1)
        except FileNotFoundError:
            self._log_state(
                "absent",
                f"vpsnet module not loaded: {self.path} does not exist "
                "(modprobe vpsnet); serving vpsnet_up 0",
                logging.WARNING,
            )
            return None
        except OSError as e:
            self._error("read", e.strerror or str(e))
            return None
        if len(raw) > MAX_BYTES:
            self._error("read", f"larger than {MAX_BYTES} bytes")
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            self._error("parse", f"not UTF-8: {e}")
            return None
        if text and not text.endswith("\n"):
            self._error("truncated", f"last line has no newline: {text.rsplit(chr(10), 1)[-1]!r}")
            return None
        try:
            fams = list(text_string_to_metric_families(text))
        except Exception as e:  # the parser raises ValueError, KeyError, IndexError...
            self._error("parse", f"{type(e).__name__}: {e}")
            return None
        names = [f.name for f in fams]
        if len(set(names)) != len(names):
            dups = sorted({n for n in names if names.count(n) > 1})
            self._error("parse", f"families repeated: {', '.join(dups)}")
            return None
        if "vpsnet_info" not in names:
            self._error("parse", "no vpsnet_info family: not a vpsnet metrics file")
            return None
        self._log_state("up", f"vpsnet metrics available from {self.path}", logging.INFO)
        return fams

    def collect(self) -> Iterator[Metric]:
        start = time.perf_counter()
        fams = self.read_families()
        duration = time.perf_counter() - start
        if fams is not None:
            yield from fams
        yield from self.included({f.name for f in fams or []})
        up = GaugeMetricFamily(
            "vpsnet_up", "1 if the vpsnet metrics file was read and parsed completely"
        )
        up.add_metric([], 1.0 if fams is not None else 0.0)
        yield up
        dur = GaugeMetricFamily(
            "vpsnet_exporter_scrape_duration_seconds",
            "Time spent reading and parsing the vpsnet metrics file",
        )
        dur.add_metric([], duration)
        yield dur
        errs = CounterMetricFamily(
            "vpsnet_exporter_scrape_errors",
            "Reads of the vpsnet metrics file that failed, were truncated or did not parse",
            labels=["reason"],
        )
        with self._lock:
            counts = dict(self._errors)
        for reason in ERROR_REASONS:
            errs.add_metric([reason], float(counts[reason]))
        yield errs

    def included(self, taken: set[str]) -> Iterator[Metric]:
        """The families of each *.prom file in the include directory, file by file
        whole: one that does not parse, or names a family already served, is left
        out (logged), never half-served."""
        if not self.include:
            return
        try:
            names = sorted(n for n in os.listdir(self.include)
                           if n.endswith(".prom") and n != TEXTFILE_NAME)
        except OSError:
            return  # no directory: nothing to include
        taken = taken | {"vpsnet_up", "vpsnet_exporter_scrape_duration_seconds",
                         "vpsnet_exporter_scrape_errors"}
        for name in names:
            path = os.path.join(self.include, name)
            try:
                with open(path, "rb") as f:
                    raw = f.read(MAX_BYTES + 1)
                if len(raw) > MAX_BYTES:
                    raise ValueError(f"larger than {MAX_BYTES} bytes")
                fams = list(text_string_to_metric_families(raw.decode("utf-8")))
                mine = [f.name for f in fams]
                clash = sorted(set(mine) & taken | {n for n in mine if mine.count(n) > 1})
                if clash:
                    raise ValueError(f"families served already: {', '.join(clash)}")
            except Exception as e:  # the parser raises ValueError, KeyError, IndexError...
                log.warning("textfile %s left out: %s: %s", path, type(e).__name__, e)
                continue
            taken |= set(mine)
            yield from fams

    def describe(self) -> Iterable[Metric]:
        # No describe: the registry must not call collect() at registration.
        return []


def make_registry(
    path: str = DEFAULT_FILE, include: str | None = None
) -> tuple[CollectorRegistry, VpsnetCollector]:
    registry = CollectorRegistry(auto_describe=False)
    collector = VpsnetCollector(path, include)
    registry.register(collector)
    return registry, collector


def render(registry: CollectorRegistry) -> bytes:
    """One scrape's full answer, rendered before anything is sent."""
    return generate_latest(registry)


def write_textfile(registry: CollectorRegistry, directory: Path) -> Path:
    """Write DIR/vpsnet.prom atomically (temp file in DIR, fsync, rename)."""
    body = render(registry)
    target = directory / TEXTFILE_NAME
    # node_exporter only reads *.prom: the temp name does not match.
    fd, tmp = tempfile.mkstemp(prefix=f".{TEXTFILE_NAME}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


INDEX_HTML = (
    b"<html><head><title>vpsnet exporter</title></head><body>"
    b'<h1>vpsnet exporter</h1><p><a href="/metrics">Metrics</a></p>'
    b"</body></html>\n"
)


def _responder(registry: CollectorRegistry) -> web.Responder:
    """The answer for a path (run by a worker, never by the event loop)."""

    def respond(path: str) -> tuple[int, str, bytes]:
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, render(registry)  # rendered whole, then sent
        if path == "/":
            return 200, "text/html; charset=utf-8", INDEX_HTML
        return 404, "text/plain; charset=utf-8", b"404 page not found\n"

    return respond


# Hosts: an IP literal or a DNS name; never whitespace, quotes or control characters
# (the address reaches a systemd command line through the role).
_HOSTNAME = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")


def parse_listen(addr: str) -> tuple[str, int]:
    """'HOST:PORT', '[V6]:PORT' or ':PORT' (all addresses) -> (host, port)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not re.fullmatch(r"[0-9]{1,5}", port) or not 0 < int(port) < 65536:
        raise ValueError(f"listen address {addr!r} is not HOST:PORT (port 1-65535)")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"listen address {addr!r}: {host!r} is not an IPv6 address") from None
    elif ":" in host:
        try:  # ':::19462' (all, IPv6) was accepted before brackets were required
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(
                f"listen address {addr!r}: write an IPv6 address in brackets") from None
    elif host:
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            if not _HOSTNAME.fullmatch(host):
                raise ValueError(
                    f"listen address {addr!r}: {host!r} is neither an IP address nor a host name"
                ) from None
    return host, int(port)


def _bind(host: str, port: int) -> socket.socket:
    def sock(family: socket.AddressFamily, v6only: int | None) -> socket.socket:
        s = socket.socket(family, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if v6only is not None:
                s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
            s.bind((host or ("::" if family == socket.AF_INET6 else "0.0.0.0"), port))
            # a long backlog: what waits there during a reload or at the fd limit is not refused
            s.listen(socket.SOMAXCONN)
        except BaseException:
            s.close()
            raise
        return s

    if host in ("", "::"):
        # All addresses: dual-stack IPv6 socket, else IPv4 only.
        try:
            return sock(socket.AF_INET6, 0)
        except OSError:
            if host == "::":
                raise
            return sock(socket.AF_INET, None)
    if ":" in host:
        return sock(socket.AF_INET6, None)
    return sock(socket.AF_INET, None)


def make_server(
    registry: CollectorRegistry,
    listen: str,
    certfile: str | None = None,
    keyfile: str | None = None,
    inherited: socket.socket | None = None,
    *,
    web_config: web.WebConfig | None = None,
    max_connections: int | None = None,
    request_timeout: float = web.DEFAULT_REQUEST_TIMEOUT_S,
    evict_after: float = web.EVICT_AFTER_S,
    workers: int = web.DEFAULT_WORKERS,
) -> web.Server:
    """Listen on LISTEN, or serve on INHERITED, the socket a predecessor
    already listens on (handoff.py)."""
    host, port = parse_listen(listen)
    ctx = web_config.ssl_context if web_config else None
    if certfile:
        ctx = web.tls_context_from_files(certfile, keyfile)
    auth = web.BasicAuth(web_config.users) if web_config and web_config.users else None
    sock = inherited if inherited is not None else _bind(host, port)
    srv = web.Server(
        sock,
        _responder(registry),
        ssl_context=ctx,
        auth=auth,
        max_connections=max_connections or web.default_max_connections(),
        request_timeout=request_timeout,
        evict_after=evict_after,
        workers=workers,
        server_name=f"vpsnet-exporter/{__version__}",
    )
    registry.register(srv.stats)
    return srv


def _announce_ready() -> bool:
    try:
        handoff.announce_ready()
    except handoff.HandoffError as e:
        log.error("reload: %s; the running exporter keeps serving", e)
        return False
    return True


def _listen_arg(text: str) -> str:
    try:
        parse_listen(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="vpsnet-exporter",
        description="Export the vpsnet module's metrics to Prometheus "
        f"(default port {DEFAULT_PORT}).",
    )
    ap.add_argument("--file", default=DEFAULT_FILE, help=f"metrics file (default {DEFAULT_FILE})")
    ap.add_argument(
        "--listen",
        "--web.listen-address",
        dest="listen",
        type=_listen_arg,
        default=f":{DEFAULT_PORT}",
        help=f"HOST:PORT to listen on; ':PORT' means all addresses, as node_exporter does "
        f"(default :{DEFAULT_PORT})",
    )
    ap.add_argument(
        "--web.config.file",
        dest="web_config",
        metavar="FILE",
        help="exporter-toolkit web config (YAML): tls_server_config (cert_file, key_file, "
        "client_auth_type, client_ca_file, min_version, max_version) and basic_auth_users "
        "(user: bcrypt hash); relative file names are relative to FILE's directory",
    )
    ap.add_argument(
        "--web.max-connections",
        dest="max_connections",
        type=finite(int, 1, 1_000_000),
        help=f"connections open at most; at the cap the oldest slow client makes room, else "
        f"the new connection is closed at once (default {web.DEFAULT_MAX_CONNECTIONS}, less "
        f"if the open-files limit is lower)",
    )
    ap.add_argument(
        "--web.request-timeout",
        dest="request_timeout",
        type=finite(float, 0.1, 3600),
        default=web.DEFAULT_REQUEST_TIMEOUT_S,
        help="seconds a client has from connecting to the end of its request, TLS handshake "
        f"included (default {web.DEFAULT_REQUEST_TIMEOUT_S:g})",
    )
    ap.add_argument(
        "--web.evict-after",
        dest="evict_after",
        type=finite(float, 0, 3600),
        default=web.EVICT_AFTER_S,
        help="at the cap or the open-files limit, the oldest client still sending its request "
        "is closed to make room if it has been connected this many seconds (default "
        f"{web.EVICT_AFTER_S:g}: any); else the new connection is closed at once",
    )
    ap.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (chain)")
    ap.add_argument("--tls-key", help="private key for --tls-cert (default: in the cert file)")
    ap.add_argument(
        "--textfile",
        metavar="DIR",
        help=f"write DIR/{TEXTFILE_NAME} for node_exporter's textfile collector "
        "(atomically) instead of serving HTTP",
    )
    ap.add_argument(
        "--interval", type=finite(float, 0.1, 86400), default=15.0,
        help="seconds between textfile writes (default 15)",
    )
    ap.add_argument("--once", action="store_true", help="with --textfile: write once and exit")
    ap.add_argument(
        "--textfile-include", metavar="DIR", default=TEXTFILE_INCLUDE,
        help=f"also serve the *.prom files of DIR (each whole, or left out when it does not "
        f"parse or repeats a family; default {TEXTFILE_INCLUDE}, '' for none)",
    )
    ap.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="vpsnet-exporter: %(levelname)s: %(message)s"
    )
    if args.tls_key and not args.tls_cert:
        ap.error("--tls-key needs --tls-cert")
    if args.textfile and args.web_config:
        ap.error("--web.config.file is for HTTP: not with --textfile")
    web_config = None
    if args.web_config:
        # checked whole (YAML, hashes, certificates) before anything listens
        try:
            web_config = web.load_web_config(args.web_config, tls_from_flags=bool(args.tls_cert))
        except web.WebConfigError as e:
            log.error("%s", e)
            return 1
    max_connections = args.max_connections
    if max_connections is None:
        max_connections = web.default_max_connections()
    elif max_connections > web.nofile_limit() - web.FD_RESERVE:
        log.warning("--web.max-connections %d is above the open-files limit (%d) less %d: at "
                    "the limit accepting pauses and slow clients are closed first",
                    max_connections, web.nofile_limit(), web.FD_RESERVE)
    registry, _ = make_registry(args.file, args.textfile_include)
    try:
        inherited = handoff.inherited_socket()
    except (OSError, ValueError) as e:
        log.error("cannot take over the listening socket: %s", e)
        return 1
    stop = threading.Event()

    if args.textfile:
        directory = Path(args.textfile)
        if not directory.is_dir():
            ap.error(f"--textfile {directory}: not a directory")
        successor = handoff.Successor(None, stop.set)
        signal.signal(signal.SIGHUP, successor.request)
        if not _announce_ready():
            return 1
        while not stop.is_set():
            try:
                target = write_textfile(registry, directory)
                log.debug("wrote %s", target)
            except OSError as e:
                log.error("cannot write %s/%s: %s", directory, TEXTFILE_NAME, e)
                if args.once:
                    return 1
            if args.once:
                return 0
            stop.wait(args.interval)
        return 0

    try:
        srv = make_server(registry, args.listen, args.tls_cert, args.tls_key, inherited,
                          web_config=web_config, max_connections=max_connections,
                          request_timeout=args.request_timeout, evict_after=args.evict_after)
    except (OSError, ValueError, ssl.SSLError) as e:
        log.error("cannot listen on %s: %s", args.listen, e)
        return 1
    successor = handoff.Successor(srv.socket, srv.shutdown)
    signal.signal(signal.SIGHUP, successor.request)
    host, port = srv.server_address[:2]
    log.info(
        "vpsnet-exporter %s serving %s on %s://%s:%s/metrics%s%s (at most %d connections, "
        "%g s per request)",
        __version__,
        args.file,
        "https" if srv.ssl_context else "http",
        host,
        port,
        " with basic auth" if srv.auth else "",
        " (taken over)" if inherited else "",
        max_connections,
        args.request_timeout,
    )
    try:
        if not _announce_ready():
            return 1
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
