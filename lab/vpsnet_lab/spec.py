"""Lab specs: which guests to boot, validated before anything starts.

`load` reads a file through the bounded reader of specfile.py; `parse` turns
plain data (from a file or a dict built in code) into a typed `Spec`, naming
every bad field; `host_problems` then checks what this machine must provide
(free ports, memory, kernel packages, certificate files).
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import paths
from .accel import CHOICES as ACCELS
from .fieldcheck import CONTROL_RE, Checker, shown
from .paths import KERNEL_SERIES, LabError
from .specfile import SpecFileError, join
from .specfile import read as read_file

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
# 198.19.(8 * guest + nic): at most 32 guests of 7 extra NICs each.
# IPv6 beside them, one ULA /48 (fd42::/48), one /64 per subnet id: link k
# fd42:0:0:k::/64 (k < 0x100), tap fd42:0:0:(0x100 + 8 * guest + nic)::/64,
# with the same ::1 / ::2 ends as IPv4.
ULA_48 = "fd42:0:0"
ULA_TAP_BASE = 0x100
MAX_GUESTS = 32
MAX_NICS = 7
MAX_SERVICES = 16  # at 10.0.2.101 and up
HOST_MEMORY_RESERVE_MB = 2048
DEFAULT_BASE_PORT = 10022

GUEST_KEYS = {"name", "cloud", "region", "zone", "instance_type", "kernel", "vcpus",
              "memory_mb", "nics", "ssh_port", "forwards", "firmware", "mok_certs"}
# bios: SeaBIOS, kernel passed by QEMU. uefi-secureboot: OVMF with Secure Boot
# enforcing, shim -> grub -> the Debian-signed kernel, certificates in MokList.
FIRMWARES = ("bios", "uefi-secureboot")
FORWARD_KEYS = {"guest_port", "host_port"}
TOP_KEYS = {"name", "base_port", "guests", "regions", "services", "accel"}
NIC_KEYS = {"queues", "link"}
SERVICE_KEYS = {"name", "guest_port", "host_port"}
REGION_KEYS = {"rtt_ms", "bandwidth_mbit"}
SERVICE_ADDR_BASE = 101  # 10.0.2.100 is the metadata service


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

    def guest(self, name: str) -> Guest:
        for g in self.guests:
            if g.name == name:
                return g
        known = ", ".join(g.name for g in self.guests)
        raise LabError(f"no guest named {name!r} in lab {self.name!r} (guests: {known})")


def _host_memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 0


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _region_ok(cloud: str, region: str) -> bool:
    return bool((AWS_REGION_RE if cloud == "aws" else GCP_REGION_RE).fullmatch(region))


def _zone_ok(cloud: str, region: str, zone: str) -> bool:
    suffix = zone.removeprefix(region)
    if suffix == zone:
        return False
    return bool(re.fullmatch(r"[a-z]" if cloud == "aws" else r"-[a-z]", suffix))


class _Parser(Checker):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []

    def guest(self, raw: Any, i: int, names: list[str], base_port: int) -> Guest | None:
        where = f"guests[{i}]"
        if self.mapping(raw, where, "a mapping of guest fields") is None:
            return None
        name = self.string(raw.get("name"), f"{where}.name", NAME_RE,
                           "a valid host name ([a-z][a-z0-9-]*, at most 31 characters)")
        if name and names.index(name) != i:
            self.add(f"{where}.name", f"duplicate guest name {name!r}")
        if name:
            where = f"guests[{i}] ({name})"
        self.keys(raw, GUEST_KEYS, where)
        known_cloud = self.choice(raw.get("cloud"), f"{where}.cloud", CLOUDS, "cloud")
        cloud = known_cloud or "aws"
        region = self.string(raw.get("region"), f"{where}.region")
        if known_cloud and region and not _region_ok(cloud, region):
            self.add(f"{where}.region", f"{shown(region)} is not a {cloud} region name")
        zone = self.string(raw.get("zone"), f"{where}.zone")
        if known_cloud and zone and region and not _zone_ok(cloud, region, zone):
            self.add(f"{where}.zone", f"{shown(zone)} is not a zone of region {region!r}")
        itype = self.string(raw.get("instance_type"), f"{where}.instance_type",
                            INSTANCE_TYPE_RE, "an instance type ([a-z0-9.-], e.g. m5.large)")
        kernel = self.kernel(raw.get("kernel"), f"{where}.kernel")
        vcpus = self.integer(raw.get("vcpus", 1), f"{where}.vcpus", 1, MAX_VCPUS) or 1
        memory = self.integer(raw.get("memory_mb", 1024), f"{where}.memory_mb", MIN_MEMORY_MB,
                              MAX_MEMORY_MB) or MIN_MEMORY_MB
        ssh_port = self.integer(raw.get("ssh_port", base_port + i), f"{where}.ssh_port", 1024,
                                65535) or base_port + i
        nics = self.nics(raw.get("nics", []), f"{where}.nics", name, names)
        forwards = self.forwards(raw.get("forwards", []), f"{where}.forwards")
        firmware = self.choice(raw.get("firmware", "bios"), f"{where}.firmware", FIRMWARES,
                               "firmware") or "bios"
        mok_certs = [self.string(c, f"{where}.mok_certs[{j}]") for j, c in
                     enumerate(self.items(raw.get("mok_certs", []), f"{where}.mok_certs",
                                          "certificate paths"))]
        if mok_certs and firmware == "bios":
            self.add(f"{where}.mok_certs", "only a uefi-secureboot guest has a MokList")
        return Guest(name=name, cloud=cloud, region=region, zone=zone, instance_type=itype,
                     kernel=kernel, vcpus=vcpus, memory_mb=memory, ssh_port=ssh_port, index=i,
                     nics=tuple(nics), forwards=tuple(forwards), firmware=firmware,
                     mok_certs=tuple(mok_certs))

    def nics(self, value: Any, where: str, name: str, names: list[str]) -> list[Nic]:
        nics: list[Nic] = []
        for j, nic in enumerate(self.items(value, where, "NICs")):
            nwhere = f"{where}[{j}]"
            if self.mapping(nic, nwhere, "a mapping with queues or link") is None:
                continue
            self.keys(nic, NIC_KEYS, nwhere)
            queues = self.integer(nic.get("queues", 1), f"{nwhere}.queues", 1, MAX_QUEUES) or 1
            link = nic.get("link")
            if link is None:
                nics.append(Nic(index=len(nics) + 1, queues=queues))
            elif not isinstance(link, str) or link not in names:
                self.add(f"{nwhere}.link", f"no guest named {shown(link)}")
            elif link == name:
                self.add(f"{nwhere}.link", "a guest cannot link to itself")
            elif queues != 1:
                self.add(f"{nwhere}.queues", "socket links have one queue")
            elif (name, link) in self.links or (link, name) in self.links:
                self.add(f"{nwhere}.link", f"{name} and {link} are already linked")
            elif name:
                self.links.append((name, link))
                nics.append(Nic(index=len(nics) + 1, link=link))
        return nics

    def forwards(self, value: Any, where: str) -> list[tuple[int, int]]:
        out: list[tuple[int, int]] = []
        for j, fwd in enumerate(self.items(value, where, "port forwards")):
            fwhere = f"{where}[{j}]"
            if self.mapping(fwd, fwhere, "a mapping with guest_port and host_port") is None:
                continue
            self.keys(fwd, FORWARD_KEYS, fwhere)
            gport = self.integer(fwd.get("guest_port"), f"{fwhere}.guest_port", 1, 65535)
            hport = self.integer(fwd.get("host_port"), f"{fwhere}.host_port", 1024, 65535)
            if gport and hport:
                out.append((gport, hport))
        return out

    def regions(self, value: Any) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        raw = self.mapping({} if value is None else value, "regions",
                           "a mapping of region name to rtt_ms/bandwidth_mbit") or {}
        for rname, rvars in raw.items():
            if not isinstance(rname, str):
                self.add("regions", f"key {shown(rname)} is not a string")
                continue
            rwhere = join("regions", rname)
            if not (AWS_REGION_RE.fullmatch(rname) or GCP_REGION_RE.fullmatch(rname)):
                self.add(rwhere, f"{shown(rname)} is not an aws or gcp region name")
            if self.mapping(rvars, rwhere, "a mapping with rtt_ms and bandwidth_mbit") is None:
                continue
            self.keys(rvars, REGION_KEYS, rwhere)
            rtt = self.integer(rvars.get("rtt_ms", 1), f"{rwhere}.rtt_ms", 0, 2000)
            bw = self.integer(rvars.get("bandwidth_mbit", 1000), f"{rwhere}.bandwidth_mbit", 1,
                              400000)
            out[rname] = {"rtt_ms": rtt or 0, "bandwidth_mbit": bw or 1}
        return out

    def services(self, value: Any) -> list[Service]:
        out: list[Service] = []
        items = self.items([] if value is None else value, "services", "services")
        if len(items) > MAX_SERVICES:
            self.add("services", f"{len(items)} services: at most {MAX_SERVICES}")
            return out
        for k, svc in enumerate(items):
            swhere = f"services[{k}]"
            if self.mapping(svc, swhere, "a mapping with name, guest_port, host_port") is None:
                continue
            self.keys(svc, SERVICE_KEYS, swhere)
            sname = self.string(svc.get("name"), f"{swhere}.name", NAME_RE, "a valid name")
            gport = self.integer(svc.get("guest_port", 80), f"{swhere}.guest_port", 1,
                                 65535) or 80
            hport = self.integer(svc.get("host_port"), f"{swhere}.host_port", 1024, 65535) or 0
            out.append(Service(sname, f"10.0.2.{SERVICE_ADDR_BASE + k}", gport, hport))
        return out

    def port_clashes(self, guests: list[Guest]) -> None:
        ports: dict[int, str] = {}
        for g in guests:
            gwhere = f"guests[{g.index}] ({g.name})" if g.name else f"guests[{g.index}]"
            wanted = [(f"{gwhere}.ssh_port", g.ssh_port)] + [
                (f"{gwhere}.forwards[{j}].host_port", h) for j, (_, h) in enumerate(g.forwards)]
            for where, port in wanted:
                if port in ports:
                    self.add(where, f"port {port} clashes with {ports[port]}")
                ports.setdefault(port, where)


def parse(data: Any, source: str = "<spec>", check_host: bool = True) -> Spec:
    """Validate a spec; raise SpecError naming every bad field."""
    p = _Parser()
    top = p.mapping(data, "top level", "a mapping with 'guests'")
    if top is None:
        raise SpecError(source, p.problems)
    p.keys(top, TOP_KEYS, "")
    stem = Path(source).stem if source != "<spec>" else "lab"
    lab_name = p.string(top.get("name", stem), "name", NAME_RE,
                        "a valid lab name ([a-z][a-z0-9-]*, at most 31 characters)") or "lab"
    base_port = p.integer(top.get("base_port", DEFAULT_BASE_PORT), "base_port", 1024,
                          60000) or DEFAULT_BASE_PORT
    accel = p.choice(top.get("accel", "auto"), "accel", ACCELS, "accelerator") or "auto"
    raw_guests = top.get("guests")
    if not isinstance(raw_guests, list) or not raw_guests:
        p.add("guests", "expected a non-empty list of guests")
        raise SpecError(source, p.problems)
    if len(raw_guests) > MAX_GUESTS:
        p.add("guests", f"{len(raw_guests)} guests: at most {MAX_GUESTS}")
        raise SpecError(source, p.problems)
    names = [str(g["name"]) if isinstance(g, dict) and isinstance(g.get("name"), str) else ""
             for g in raw_guests]
    guests = [g for i, raw in enumerate(raw_guests)
              if (g := p.guest(raw, i, names, base_port)) is not None]
    regions = p.regions(top.get("regions", {}))
    services = p.services(top.get("services", []))
    p.port_clashes(guests)
    if p.problems:  # before addressing: that needs unique names and known link peers
        raise SpecError(source, p.problems)
    links = tuple(Link(index=k, listener=a, connector=b) for k, (a, b) in enumerate(p.links))
    guests = _address_nics(guests, links, lab_name)
    for g in guests:
        if len(g.nics) > MAX_NICS:
            p.add(f"guests[{g.index}] ({g.name}).nics", f"{len(g.nics)} extra NICs (links "
                  f"from other guests included): at most {MAX_NICS}")
    if p.problems:
        raise SpecError(source, p.problems)
    spec = Spec(name=lab_name, base_port=base_port, guests=tuple(guests), links=links,
                services=tuple(services), regions=regions, accel=accel)
    if check_host:
        problems = host_problems(spec)
        if problems:
            raise SpecError(source, problems)
    return spec


def host_problems(spec: Spec) -> list[str]:
    """What this machine lacks to run SPEC: kernel packages, files, ports, memory."""
    problems: list[str] = []
    for g in spec.guests:
        where = f"guests[{g.index}] ({g.name})"
        if g.kernel not in KERNEL_SERIES and not paths.apt_knows(f"linux-image-{g.kernel}"):
            problems.append(f"{where}.kernel: apt knows no package linux-image-{g.kernel}")
        problems += [f"{where}.mok_certs: cannot read {c}" for c in g.mok_certs
                     if not os.access(c, os.R_OK)]
    ports = {g.ssh_port: f"guests[{g.index}] ({g.name}).ssh_port" for g in spec.guests}
    ports.update({h: f"guests[{g.index}] ({g.name}).forwards[{j}].host_port"
                  for g in spec.guests for j, (_, h) in enumerate(g.forwards)})
    for port, where in sorted(ports.items()):
        if port_in_use(port):
            problems.append(f"{where}: port {port} is already in use on 127.0.0.1")
    total = sum(g.memory_mb for g in spec.guests)
    avail = _host_memory_mb() - HOST_MEMORY_RESERVE_MB
    if total > avail:
        problems.append(f"guests[*].memory_mb: the guests need {total} MiB in all but the "
                        f"machine has {avail} MiB to spare "
                        f"(MemAvailable less {HOST_MEMORY_RESERVE_MB} MiB)")
    cpus = os.cpu_count() or 1
    problems += [f"guests[{g.index}] ({g.name}).vcpus: {g.vcpus} vCPUs on a {cpus}-core machine"
                 for g in spec.guests if g.vcpus > cpus * 4]
    return problems


def ula(subnet: int, host: int) -> str:
    """fd42:0:0:<subnet>::<host>/64 written the short way (fd42::1/64 for link 0)."""
    return str(ipaddress.IPv6Interface(f"{ULA_48}:{subnet:x}::{host:x}/64"))


def _address_nics(guests: list[Guest], links: tuple[Link, ...], lab: str) -> list[Guest]:
    """Give every extra NIC its lab addresses: IPv4 in 198.18.0.0/15 (the benchmark
    range) and IPv6 in the ULA fd42::/48 (see ULA_48)."""
    extra: dict[str, list[Nic]] = {g.name: list(g.nics) for g in guests}
    for link in links:
        a_side = next(n for n in extra[link.listener] if n.link == link.connector)
        i = extra[link.listener].index(a_side)
        a_addr, b_addr = f"198.18.{link.index}.1/24", f"198.18.{link.index}.2/24"
        a6, b6 = ula(link.index, 1), ula(link.index, 2)
        extra[link.listener][i] = Nic(a_side.index, 1, link.connector, a_addr, b_addr,
                                      address6=a6, peer_address6=b6)
        extra[link.connector].append(
            Nic(len(extra[link.connector]) + 1, 1, link.listener, b_addr, a_addr,
                address6=b6, peer_address6=a6))
    out = []
    for g in guests:
        nics = []
        for n in extra[g.name]:
            if n.kind == "tap":
                subnet = g.index * 8 + n.index
                net = f"198.19.{subnet}"
                n = Nic(n.index, n.queues, None, f"{net}.2/24", f"{net}.1/24",
                        f"vpsnet-{lab}-{g.name}-{n.index}-{g.ssh_port}"[:48],
                        address6=ula(ULA_TAP_BASE + subnet, 2),
                        peer_address6=ula(ULA_TAP_BASE + subnet, 1))
            nics.append(n)
        out.append(Guest(**{**g.__dict__, "nics": tuple(nics)}))
    return out


def read(path: str | Path) -> Any:
    """The data of spec file PATH, read bounded (see specfile.py); SpecError if refused."""
    try:
        return read_file(Path(path))
    except SpecFileError as exc:
        raise SpecError(str(path), [str(exc)]) from None


def load(path: str | Path, check_host: bool = True) -> Spec:
    return parse(read(path), str(path), check_host=check_host)
