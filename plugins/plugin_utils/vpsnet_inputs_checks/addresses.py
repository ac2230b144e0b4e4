# SPDX-License-Identifier: GPL-2.0-only
"""Checks of where things are: absolute paths, URLs, IP addresses and host
names, network interface names. Imported by dispatch.py."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Any

from .rules import Errors, show, string_verdict

# Characters a path may hold: nothing a shell, a systemd unit (% specifiers,
# quotes, whitespace), an apt/dnf/sysctl/modprobe file or a glob reads specially.
PATH_RE = re.compile(r"/[A-Za-z0-9_.+,@=:~/-]*")
HOSTNAME_RE = re.compile(
    r"(?=.{1,253}\.?\Z)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
)
IFNAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:@+-]{0,14}")
URL_CHARS_RE = re.compile(r"[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]+")
URL_RE = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<authority>[^/?#]*)(?P<rest>[/?#].*)?", re.S)


def check_path(name: str, value: Any, *, prefixes: Sequence[str] | None = None,
               suffix: str | None = None, allow_empty: bool = False,
               max_len: int = 1024) -> Errors:
    """An absolute path of plain characters (no whitespace, quotes, %, $, globs),
    without '.' or '..' components or '//' and, with PREFIXES, strictly under one of them."""
    verdict = string_verdict(name, value, max_len, allow_empty)
    if verdict is not None:
        return verdict
    if not PATH_RE.fullmatch(value):
        return [f"{name}={show(value)} is not an absolute path of plain characters "
                "(letters, digits, / _ . + , @ = : ~ -)"]
    parts = value.split("/")[1:]
    if any(p in (".", "..") for p in parts) or "//" in value:
        return [f"{name}={show(value)} has a '.', '..' or empty component"]
    if prefixes:
        under = [p for p in prefixes if value.startswith(p.rstrip("/") + "/")
                 and len(value) > len(p.rstrip("/")) + 1 and not value.endswith("/")]
        if not under:
            return [f"{name}={show(value)} is not a file under {' or '.join(prefixes)}"]
    if suffix is not None and not value.endswith(suffix):
        return [f"{name}={show(value)} does not end with {suffix}"]
    return []


def check_url(name: str, value: Any, *, schemes: Sequence[str] = ("http", "https"),
              allow_empty: bool = False, max_len: int = 2048) -> Errors:
    """SCHEME://authority/path with only URL characters (no whitespace or
    quotes); http(s) needs a host (and a port 1..65535 when given), file:// a path."""
    verdict = string_verdict(name, value, max_len, allow_empty)
    if verdict is not None:
        return verdict
    match = URL_RE.fullmatch(value)
    if not URL_CHARS_RE.fullmatch(value) or match is None:
        return [f"{name}={show(value)} is not a URL ({'/'.join(schemes)}://...)"]
    scheme, authority = match.group("scheme"), match.group("authority")
    if scheme not in schemes:
        return [f"{name}={show(value)}: scheme {scheme!r} is not one of {', '.join(schemes)}"]
    if scheme == "file":
        path = (match.group("rest") or "")
        if authority not in ("", "localhost") or check_path(name, path.rstrip("/") or "/"):
            return [f"{name}={show(value)} is not a file:// URL of an absolute plain path"]
        return []
    hostport = authority.rsplit("@", 1)[-1]
    host, port = hostport, ""
    if hostport.startswith("["):
        host, bracket, port = hostport[1:].partition("]")
        if not bracket:
            return [f"{name}={show(value)} has an unclosed '[' in its host"]
        port = port[1:] if port.startswith(":") else ("x" if port else "")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return [f"{name}={show(value)} has a bad IPv6 address {host!r}"]
    elif ":" in hostport:
        host, _sep, port = hostport.partition(":")
    if not host or (not hostport.startswith("[") and not HOSTNAME_RE.fullmatch(host)):
        return [f"{name}={show(value)} has no valid host"]
    if port and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        return [f"{name}={show(value)} has a bad port {port!r}"]
    return []


def check_address(name: str, value: Any, *, allow_empty: bool = False,
                  allow_hostname: bool = True) -> Errors:
    """An IPv4 or IPv6 address, or (ALLOW_HOSTNAME) a DNS name; never something
    that starts with '-' (an option to the command it is handed to)."""
    verdict = string_verdict(name, value, 253, allow_empty)
    if verdict is not None:
        return verdict
    try:
        ipaddress.ip_address(value)
        return []
    except ValueError:
        pass
    if allow_hostname and HOSTNAME_RE.fullmatch(value) and not value.replace(".", "").isdigit():
        return []
    what = "an IP address or a host name" if allow_hostname else "an IP address"
    return [f"{name}={show(value)} is not {what}"]


def check_ifname(name: str, value: Any) -> Errors:
    """A Linux network interface name (at most 15 characters, no '/' or whitespace)."""
    verdict = string_verdict(name, value, 15, allow_empty=False)
    if verdict is not None:
        return verdict
    if not IFNAME_RE.fullmatch(value) or value in (".", ".."):
        return [f"{name}={show(value)} is not a network interface name"]
    return []
