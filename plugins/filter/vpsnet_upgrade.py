# Copyright: vpsnet contributors
# GNU General Public License v2.0 only (see https://www.gnu.org/licenses/old-licenses/gpl-2.0.txt)
"""vpsnet_upgrade's filter vpsnet.fleet.vpsnet_upgrade_ping_auto: the health gate's
ping targets when they are 'auto'."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

# an interface name as the kernel allows it in practice (IFNAMSIZ - 1), never option-like
IFNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}")


def _gateway(facts: Any, version: int) -> str | None:
    """The default gateway of one family from Ansible's default_ipv4/_ipv6 fact, as
    ping takes it: a link-local IPv6 gateway (how routers advertise themselves)
    needs its interface, fe80::1%eth0. None when absent or not an address."""
    if not isinstance(facts, Mapping):
        return None
    gateway = facts.get("gateway")
    if not isinstance(gateway, str) or not gateway:
        return None
    try:
        address = ipaddress.ip_address(gateway)
    except ValueError:
        return None
    if address.version != version:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.is_link_local:
        interface = address.scope_id or facts.get("interface")
        if not isinstance(interface, str) or not IFNAME_RE.fullmatch(interface):
            return None
        return f"{address.compressed.split('%', maxsplit=1)[0]}%{interface}"
    return str(address)


def ping_targets_auto(default_ipv4: Any, default_ipv6: Any = None) -> list[str]:
    """The targets of vpsnet_upgrade_ping_targets: auto. The IPv4 default gateway;
    on a host without one (IPv6-only), the IPv6 default gateway; else none.
    A dual-stack host pings its IPv4 gateway only, as before: not every cloud's
    IPv6 router answers echo requests."""
    for facts, version in ((default_ipv4, 4), (default_ipv6, 6)):
        gateway = _gateway(facts, version)
        if gateway is not None:
            return [gateway]
    return []


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"vpsnet_upgrade_ping_auto": ping_targets_auto}
