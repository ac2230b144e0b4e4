"""Whether this machine has an IPv6 loopback (the IPv6 tests skip without one)."""

from __future__ import annotations

import socket


def ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True
