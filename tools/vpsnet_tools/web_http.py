"""HTTP/1.x request heads for the exporter's server: parsed strictly, refused
with a status code. Imported by web and web_connection."""

from __future__ import annotations

import re
from typing import Any

MAX_HEAD_BYTES = 8192
MAX_HEADERS = 64
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
           405: "Method Not Allowed", 408: "Request Timeout",
           429: "Too Many Requests", 431: "Request Header Fields Too Large",
           500: "Internal Server Error", 503: "Service Unavailable",
           505: "HTTP Version Not Supported"}
TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
TARGET = re.compile(r"[\x21-\x7e]{1,2048}")


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
