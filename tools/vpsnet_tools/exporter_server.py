"""Where and how vpsnet-exporter listens: the listen address checked, the socket
bound (or inherited, handoff.py), and the web server with its TLS and basic auth.
Imported by exporter and tests."""

from __future__ import annotations

import ipaddress
import re
import socket

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from vpsnet_tools import __version__, web
from vpsnet_tools.exporter_metrics import render
from vpsnet_tools.web_auth import BasicAuth
from vpsnet_tools.web_config import WebConfig
from vpsnet_tools.web_tls import tls_context_from_files

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
    web_config: WebConfig | None = None,
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
        ctx = tls_context_from_files(certfile, keyfile)
    auth = BasicAuth(web_config.users) if web_config and web_config.users else None
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
