"""The lab's address plan: the IPv4 and IPv6 addresses and the network
namespace of every extra NIC of a spec. Used by specparse.py only."""

from __future__ import annotations

import ipaddress
from dataclasses import replace

from .spec import Guest, Link, Nic

# IPv4 in 198.18.0.0/15 (the benchmark range): link k 198.18.k.0/24, tap
# 198.19.(8 * guest + nic).0/24. IPv6 beside them, one ULA /48 (fd42::/48),
# one /64 per subnet id: link k fd42:0:0:k::/64 (k < 0x100), tap
# fd42:0:0:(0x100 + 8 * guest + nic)::/64, with the same ::1 / ::2 ends as IPv4.
ULA_48 = "fd42:0:0"
ULA_TAP_BASE = 0x100


def ula(subnet: int, host: int) -> str:
    """fd42:0:0:<subnet>::<host>/64 written the short way (fd42::1/64 for link 0)."""
    return str(ipaddress.IPv6Interface(f"{ULA_48}:{subnet:x}::{host:x}/64"))


def address_nics(guests: list[Guest], links: tuple[Link, ...], lab: str) -> list[Guest]:
    """GUESTS with every extra NIC addressed; each link's connector gets its NIC
    (appended after its own) here. Needs unique names and known link peers."""
    extra: dict[str, list[Nic]] = {g.name: list(g.nics) for g in guests}
    for link in links:
        _address_link(extra, link)
    return [replace(g, nics=tuple(_address_tap(g, n, lab) for n in extra[g.name]))
            for g in guests]


def _address_link(extra: dict[str, list[Nic]], link: Link) -> None:
    listener, connector = extra[link.listener], extra[link.connector]
    i = next(i for i, n in enumerate(listener) if n.link == link.connector)
    a_addr, b_addr = f"198.18.{link.index}.1/24", f"198.18.{link.index}.2/24"
    a6, b6 = ula(link.index, 1), ula(link.index, 2)
    listener[i] = Nic(listener[i].index, 1, link.connector, a_addr, b_addr,
                      address6=a6, peer_address6=b6)
    connector.append(Nic(len(connector) + 1, 1, link.listener, b_addr, a_addr,
                         address6=b6, peer_address6=a6))


def _address_tap(g: Guest, n: Nic, lab: str) -> Nic:
    if n.kind != "tap":
        return n
    subnet = g.index * 8 + n.index
    net = f"198.19.{subnet}"
    return Nic(n.index, n.queues, None, f"{net}.2/24", f"{net}.1/24",
               f"vpsnet-{lab}-{g.name}-{n.index}-{g.ssh_port}"[:48],
               address6=ula(ULA_TAP_BASE + subnet, 2),
               peer_address6=ula(ULA_TAP_BASE + subnet, 1))
