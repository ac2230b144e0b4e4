"""vpsnet-exporter: serve /proc/net/vpsnet/metrics to Prometheus.

The module writes Prometheus text to a /proc file, which Prometheus cannot
scrape. This exporter re-exposes the module's metric families over HTTP(S)
(or, with ``--textfile DIR``, as a file for node_exporter's textfile
collector) and adds its own (``vpsnet_up``, scrape duration and errors: see
exporter_metrics.py).

A scrape is all or nothing: the module's families are exposed only when the
whole file (one ``read`` of one open file: the module snapshots all devices
per ``open()``) parsed without error, so a family is never half-exposed.

Default port 19462: the Prometheus exporter block 9100-9999 is fully
allocated, and 19462 is neither in the project's default port allocations
list nor in /etc/services. Default address: all (``:19462``), as node_exporter:
Prometheus scrapes from another host and the exporter cannot know which
address is the management one; the role restricts sources with systemd's
IPAddressAllow= and can bind one address.

This file is the command (flags, textfile loop, serving, reload handoff); the
listener is exporter_server.py. HTTP is served by web.py: one event loop with
a bounded worker pool, a whole-request deadline, a connection cap and no busy
loop at the fd limit, and the exporter-toolkit web config
(``--web.config.file``: TLS, client certificates, basic auth; web_config.py).
"""

from __future__ import annotations

import argparse
import logging
import signal
import ssl
import sys
import threading
from pathlib import Path

from vpsnet_tools import __version__, handoff, web
from vpsnet_tools.cliargs import finite
from vpsnet_tools.exporter_metrics import (
    DEFAULT_FILE,
    TEXTFILE_NAME,
    make_registry,
    render,
    write_textfile,
)
from vpsnet_tools.exporter_server import make_server, parse_listen
from vpsnet_tools.web_config import WebConfigError, load_web_config

# make_registry, render, make_server, parse_listen: also what bench/ and the lab's tests call
__all__ = ["main", "make_registry", "make_server", "parse_listen", "render"]

DEFAULT_PORT = 19462
# *.prom files other vpsnet parts write (vpsnet_tune's drift metric), served with
# the module's families: no node_exporter needed (--textfile-include).
TEXTFILE_INCLUDE = "/var/lib/vpsnet/textfile"

log = logging.getLogger("vpsnet-exporter")


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


def _add_seconds_flag(ap: argparse.ArgumentParser, flag: str, low: float, default: float,
                      text: str) -> None:
    """A --web.* duration in seconds, LOW to an hour; dest from the flag's name."""
    ap.add_argument(flag, dest=flag.removeprefix("--web.").replace("-", "_"),
                    type=finite(float, low, 3600), default=default, help=text)


def _parser() -> argparse.ArgumentParser:
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
    _add_seconds_flag(
        ap, "--web.request-timeout", 0.1, web.DEFAULT_REQUEST_TIMEOUT_S,
        "seconds a client has from connecting to the end of its request, TLS handshake "
        f"included (default {web.DEFAULT_REQUEST_TIMEOUT_S:g})",
    )
    _add_seconds_flag(
        ap, "--web.evict-after", 0, web.EVICT_AFTER_S,
        "at the cap or the open-files limit, the oldest client still sending its request "
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
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = _parser()
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
            web_config = load_web_config(args.web_config, tls_from_flags=bool(args.tls_cert))
        except WebConfigError as e:
            log.error("%s", e)
            return 1
    max_connections = args.max_connections
    if max_connections is None:
        max_connections = web.default_max_connections()
    elif max_connections > web.nofile_limit() - web.FD_RESERVE:
        log.warning("--web.max-connections %d is above the open-files limit (%d) less %d: at "
                    "the limit accepting pauses and slow clients are closed first",
                    max_connections, web.nofile_limit(), web.FD_RESERVE)
    registry = make_registry(args.file, args.textfile_include)[0]
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
