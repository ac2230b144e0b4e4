"""Which IP version to ask the metadata service over, chosen from the host's routes
(proc/net/route, proc/net/ipv6_route). Standard library only; imported by the
metadata client and the module (the IPv6 URL default)."""

from __future__ import annotations

import ipaddress
import os

from ansible_collections.vpsnet.fleet.plugins.module_utils.vpsnet_bounds import read_attr, show

# The metadata addresses over each family: IMDS and GCE share the IPv4 one;
# fd00:ec2::254 is AWS's (Nitro instances, HttpProtocolIpv6 enabled).
METADATA_IPV4 = "169.254.169.254"
METADATA_IPV6 = "fd00:ec2::254"
AWS_IMDS_IPV6_URL = f"http://[{METADATA_IPV6}]"
IP_VERSIONS = ("auto", "4", "6")
MAX_ROUTES = 1024 * 1024  # route tables a VPS has are a few lines
RTF_UP, RTF_REJECT = 0x0001, 0x0200


def ipv4_route_to(text: str, address: str) -> str | None:
    """The interface of the first usable route in /proc/net/route text that covers
    ADDRESS (default route included), else None. The file prints each address as
    the host-order value of its network-order bytes (little-endian: reversed)."""
    target = int.from_bytes(ipaddress.IPv4Address(address).packed, "little")
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            dest, flags, mask = (int(fields[i], 16) for i in (1, 3, 7))
        except ValueError:
            continue
        if flags & RTF_UP and not flags & RTF_REJECT and target & mask == dest & mask:
            return fields[0]
    return None


def ipv6_route_to(text: str, address: str) -> str | None:
    """The interface of the first usable route in /proc/net/ipv6_route text that
    covers ADDRESS (default route included), else None. Unreachable/prohibit
    routes (RTF_REJECT, on lo) do not count."""
    target = int(ipaddress.IPv6Address(address))
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 10:
            continue
        try:
            dest, plen, flags = int(fields[0], 16), int(fields[1], 16), int(fields[8], 16)
        except ValueError:
            continue
        if plen > 128 or not flags & RTF_UP or flags & RTF_REJECT:
            continue
        if target >> (128 - plen) == dest >> (128 - plen):
            return fields[9]
    return None


def ipv6_route_to_metadata(root: str) -> str | None:
    """The interface of an IPv6 route to fd00:ec2::254 on the host at ROOT, else None."""
    text = read_attr(os.path.join(root, "proc/net/ipv6_route"), MAX_ROUTES) or ""
    return ipv6_route_to(text, METADATA_IPV6)


def metadata_family(root: str, wanted: str = "auto") -> tuple[str, str]:
    """("4" or "6", evidence): the IP version to ask metadata over.

    auto: IPv4 when the host has a usable IPv4 route to 169.254.169.254 (a
    default route or one to the link-local address: the lab's guests have only
    the latter); else IPv6 when an IPv6 route covers fd00:ec2::254; else IPv4
    (as before: nothing routes, the request fails at once). A missing route
    file (a recorded tree without them) means IPv4. When IPv4 is chosen but
    its endpoint refuses or cannot be reached, MetadataProbe tries AWS over
    IPv6 if an IPv6 route covers fd00:ec2::254 (see ipv6_route_to_metadata)."""
    if wanted in ("4", "6"):
        return wanted, f"metadata: IPv{wanted} (forced by metadata_ip_version)"
    v4 = read_attr(os.path.join(root, "proc/net/route"), MAX_ROUTES)
    if v4 is None:
        return "4", "metadata: IPv4 (auto: no proc/net/route to read)"
    via4 = ipv4_route_to(v4, METADATA_IPV4)
    if via4 is not None:
        return "4", f"metadata: IPv4 (auto: IPv4 route to {METADATA_IPV4} via {show(via4)})"
    via6 = ipv6_route_to_metadata(root)
    if via6 is not None:
        return "6", (f"metadata: IPv6 (auto: no IPv4 route to {METADATA_IPV4}, IPv6 route to "
                     f"{METADATA_IPV6} via {show(via6)})")
    return "4", (f"metadata: IPv4 (auto: no route to {METADATA_IPV4} nor to {METADATA_IPV6}; "
                 "IPv4 tried as before)")
