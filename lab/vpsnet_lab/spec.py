"""The typed lab spec: which guests to boot, as frozen dataclasses, with the
limits a spec must keep and SpecError. Everything in the lab (and its users)
imports it; `specparse.load`/`parse` make one, `hostcheck` checks this machine
can run it, `to_data` writes it back as spec data (the state file keeps that).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .fieldcheck import CONTROL_RE
from .paths import LabError

CLOUDS = ("aws", "gcp")
# Checked with fullmatch: `^...$` would let a trailing newline through.
NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,30}")
AWS_REGION_RE = re.compile(r"[a-z]{2}(-gov)?-[a-z]+-\d")
GCP_REGION_RE = re.compile(r"[a-z]+-[a-z]+\d+")
# Goes into QEMU's -smbios option (commas would add options) and the metadata.
INSTANCE_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9.-]{0,63}")
MAX_QUEUES = 16
MAX_VCPUS = 8
MIN_MEMORY_MB = 384
MAX_MEMORY_MB = 1 << 20
# Guest and NIC indexes make MACs (52:54:00:LL:GG:NN) and tap subnets
# (see specaddress.py): at most 32 guests of 7 extra NICs each.
MAX_GUESTS = 32
MAX_NICS = 7
MAX_SERVICES = 16  # at 10.0.2.101 and up
SERVICE_ADDR_BASE = 101  # 10.0.2.100 is the metadata service
DEFAULT_BASE_PORT = 10022
# bios: SeaBIOS, kernel passed by QEMU. uefi-secureboot: OVMF with Secure Boot
# enforcing, shim -> grub -> the Debian-signed kernel, certificates in MokList.
FIRMWARES = ("bios", "uefi-secureboot")


def _one_line(text: str) -> str:
    return CONTROL_RE.sub(lambda m: repr(m.group())[1:-1], text)


class SpecError(LabError):
    """A spec that must not start: every bad field, one line each ("field: message")."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = _one_line(source)
        self.problems = [_one_line(p) for p in problems]
        super().__init__("\n".join(f"{self.source}: {p}" for p in self.problems))


@dataclass(frozen=True)
class Nic:
    index: int
    queues: int = 1
    link: str | None = None  # peer guest name on a loopback socket link
    address: str | None = None
    peer_address: str | None = None  # host side (tap) or peer guest (link)
    netns: str | None = None
    address6: str | None = None  # IPv6 (ULA /64) beside address
    peer_address6: str | None = None

    @property
    def kind(self) -> str:
        return "link" if self.link else "tap"


@dataclass(frozen=True)
class Guest:
    name: str
    cloud: str
    region: str
    zone: str
    instance_type: str
    kernel: str
    vcpus: int
    memory_mb: int
    ssh_port: int
    index: int
    nics: tuple[Nic, ...] = ()
    # Extra TCP ports of the guest forwarded to 127.0.0.1: guest port -> host port.
    forwards: tuple[tuple[int, int], ...] = ()
    firmware: str = "bios"
    # Certificates enrolled in a uefi-secureboot guest's MokList; empty means the
    # fleet's module-signing certificate.
    mok_certs: tuple[str, ...] = ()

    @property
    def uefi(self) -> bool:
        return self.firmware != "bios"

    @property
    def where(self) -> str:
        """The guest as problems name it: guests[0] (a1)."""
        return f"guests[{self.index}] ({self.name})" if self.name else f"guests[{self.index}]"


@dataclass(frozen=True)
class Service:
    """A host loopback service the guests reach at 10.0.2.N:guest_port."""

    name: str
    guest_addr: str
    guest_port: int
    host_port: int


@dataclass(frozen=True)
class Link:
    index: int
    listener: str
    connector: str


@dataclass(frozen=True)
class Spec:
    name: str
    base_port: int
    guests: tuple[Guest, ...]
    links: tuple[Link, ...] = ()
    services: tuple[Service, ...] = ()
    regions: dict[str, dict[str, int]] = field(default_factory=dict)
    accel: str = "auto"  # $VPSNET_LAB_ACCEL overrides it (see accel.py)
    # Where it came from (a file name, or "<...>" for code): named by every problem.
    source: str = field(default="<spec>", compare=False)

    def guest(self, name: str) -> Guest:
        for g in self.guests:
            if g.name == name:
                return g
        known = ", ".join(g.name for g in self.guests)
        raise LabError(f"no guest named {name!r} in lab {self.name!r} (guests: {known})")


def to_data(spec: Spec) -> dict[str, Any]:
    """SPEC as spec data with every default written out, so that parsing it
    again gives SPEC back (the state file keeps this, see fleet.py)."""
    return {
        "name": spec.name, "base_port": spec.base_port, "accel": spec.accel,
        "regions": {name: dict(values) for name, values in spec.regions.items()},
        "services": [{"name": s.name, "guest_port": s.guest_port, "host_port": s.host_port}
                     for s in spec.services],
        "guests": [_guest_data(spec, g) for g in spec.guests],
    }


def _guest_data(spec: Spec, g: Guest) -> dict[str, Any]:
    # A link is written on its listener only: parsing adds the connector's NIC.
    declared = {(lk.listener, lk.connector) for lk in spec.links}
    nics = [{"link": n.link} if n.link else {"queues": n.queues} for n in g.nics
            if n.link is None or (g.name, n.link) in declared]
    return {"name": g.name, "cloud": g.cloud, "region": g.region, "zone": g.zone,
            "instance_type": g.instance_type, "kernel": g.kernel, "vcpus": g.vcpus,
            "memory_mb": g.memory_mb, "ssh_port": g.ssh_port, "nics": nics,
            "forwards": [{"guest_port": gp, "host_port": hp} for gp, hp in g.forwards],
            "firmware": g.firmware, "mok_certs": list(g.mok_certs)}
