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
list nor in /etc/services.
"""

from __future__ import annotations

import argparse
import http.server
import logging
import os
import signal
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.parser import text_string_to_metric_families

from vpsnet_tools import __version__, handoff

DEFAULT_FILE = "/proc/net/vpsnet/metrics"
DEFAULT_PORT = 19462
TEXTFILE_NAME = "vpsnet.prom"
ERROR_REASONS = ("read", "truncated", "parse")
MAX_BYTES = 16 * 1024 * 1024  # a sane bound for one snapshot

log = logging.getLogger("vpsnet-exporter")


class VpsnetCollector:
    """Custom collector: the module's families (all or nothing) plus our own."""

    def __init__(self, path: str = DEFAULT_FILE) -> None:
        self.path = path
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

    def describe(self) -> Iterable[Metric]:
        # No describe: the registry must not call collect() at registration.
        return []


def make_registry(path: str = DEFAULT_FILE) -> tuple[CollectorRegistry, VpsnetCollector]:
    registry = CollectorRegistry(auto_describe=False)
    collector = VpsnetCollector(path)
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


def _handler(registry: CollectorRegistry) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        server_version = f"vpsnet-exporter/{__version__}"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                try:
                    body = render(registry)
                except Exception:  # never a half-written answer
                    log.exception("rendering metrics failed")
                    self.send_error(500, "rendering metrics failed")
                    return
                ctype = CONTENT_TYPE_LATEST
            elif path == "/":
                body = (
                    b"<html><head><title>vpsnet exporter</title></head><body>"
                    b'<h1>vpsnet exporter</h1><p><a href="/metrics">Metrics</a></p>'
                    b"</body></html>\n"
                )
                ctype = "text/html; charset=utf-8"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

    return Handler


class _Server(http.server.ThreadingHTTPServer):
    # server_close() waits for scrapes in hand: a reload loses none of them
    daemon_threads = False
    ssl_context: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs in the connection's own thread, with a
        # timeout, so a slow or broken client cannot block the accept loop.
        request.settimeout(30)
        if self.ssl_context is not None:
            request = self.ssl_context.wrap_socket(request, server_side=True)
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s failed: %s", client_address, sys.exc_info()[1])


def parse_listen(addr: str) -> tuple[str, int]:
    """'HOST:PORT', '[V6]:PORT' or ':PORT' (all addresses) -> (host, port)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"listen address {addr!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def make_server(
    registry: CollectorRegistry,
    listen: str,
    certfile: str | None = None,
    keyfile: str | None = None,
    inherited: socket.socket | None = None,
) -> http.server.ThreadingHTTPServer:
    """Listen on LISTEN, or serve on INHERITED, the socket a predecessor
    already listens on (handoff.py)."""
    host, port = parse_listen(listen)
    handler = _handler(registry)
    srv: http.server.ThreadingHTTPServer
    if inherited is not None:
        srv = _Server(inherited.getsockname()[:2], handler, bind_and_activate=False)
        srv.socket.close()
        srv.socket = inherited
    elif host in ("", "::"):
        # All addresses: dual-stack IPv6 socket, else IPv4 only.
        try:

            class _V6(_Server):
                address_family = socket.AF_INET6

                def server_bind(self) -> None:
                    self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                    super().server_bind()

            srv = _V6(("::", port), handler)
        except OSError:
            if host == "::":
                raise
            srv = _Server(("0.0.0.0", port), handler)
    elif ":" in host:

        class _V6Only(_Server):
            address_family = socket.AF_INET6

        srv = _V6Only((host, port), handler)
    else:
        srv = _Server((host, port), handler)
    if certfile:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(certfile, keyfile)
        srv.ssl_context = ctx
    return srv


def _announce_ready() -> bool:
    try:
        handoff.announce_ready()
    except handoff.HandoffError as e:
        log.error("reload: %s; the running exporter keeps serving", e)
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="vpsnet-exporter",
        description="Export the vpsnet module's metrics to Prometheus "
        f"(default port {DEFAULT_PORT}).",
    )
    ap.add_argument("--file", default=DEFAULT_FILE, help=f"metrics file (default {DEFAULT_FILE})")
    ap.add_argument(
        "--listen",
        default=f":{DEFAULT_PORT}",
        help=f"HOST:PORT to listen on; ':PORT' means all addresses (default :{DEFAULT_PORT})",
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
        "--interval", type=float, default=15.0, help="seconds between textfile writes (default 15)"
    )
    ap.add_argument("--once", action="store_true", help="with --textfile: write once and exit")
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
    registry, _ = make_registry(args.file)
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
        srv = make_server(registry, args.listen, args.tls_cert, args.tls_key, inherited)
    except (OSError, ValueError, ssl.SSLError) as e:
        log.error("cannot listen on %s: %s", args.listen, e)
        return 1
    successor = handoff.Successor(srv.socket, srv.shutdown)
    signal.signal(signal.SIGHUP, successor.request)
    host, port = srv.server_address[:2]
    log.info(
        "vpsnet-exporter %s serving %s on %s://%s:%s/metrics%s",
        __version__,
        args.file,
        "https" if args.tls_cert else "http",
        host,
        port,
        " (taken over)" if inherited else "",
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
