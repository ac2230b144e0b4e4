"""Lab specs: which guests to boot, validated before anything starts."""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import paths
from .accel import CHOICES as ACCELS
from .paths import KERNEL_HELP, KERNEL_SERIES, LabError, kernel_syntax_ok

CLOUDS = ("aws", "gcp")
NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
AWS_REGION_RE = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-\d$")
GCP_REGION_RE = re.compile(r"^[a-z]+-[a-z]+\d+$")
MAX_QUEUES = 16
MAX_VCPUS = 8
MIN_MEMORY_MB = 384
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


class SpecError(LabError):
    """A spec that must not start: every bad field, one line each."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(f"bad lab spec {source}:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class Nic:
    index: int
    queues: int = 1
    link: str | None = None  # peer guest name on a loopback socket link
    address: str | None = None
    peer_address: str | None = None  # host side (tap) or peer guest (link)
    netns: str | None = None

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


def _int(value: Any, where: str, lo: int, hi: int, problems: list[str]) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(f"{where}: {value!r} is not an integer")
        return None
    if not lo <= value <= hi:
        problems.append(f"{where}: {value} is out of range {lo}..{hi}")
        return None
    return value


def _str(raw: dict[str, Any], key: str, where: str, problems: list[str]) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        problems.append(f"{where}.{key}: missing or empty")
        return ""
    return value


def _region_ok(cloud: str, region: str) -> bool:
    return bool((AWS_REGION_RE if cloud == "aws" else GCP_REGION_RE).match(region))


def _zone_ok(cloud: str, region: str, zone: str) -> bool:
    suffix = zone.removeprefix(region)
    if suffix == zone:
        return False
    return bool(re.fullmatch(r"[a-z]" if cloud == "aws" else r"-[a-z]", suffix))


def parse(data: Any, source: str = "<spec>", check_host: bool = True) -> Spec:
    """Validate a spec; raise SpecError naming every bad field."""
    problems: list[str] = []
    if not isinstance(data, dict):
        raise SpecError(source, ["top level: expected a mapping with 'guests'"])
    for key in sorted(set(data) - TOP_KEYS):
        problems.append(f"{key}: unknown key (expected one of {', '.join(sorted(TOP_KEYS))})")
    lab_name = data.get("name", Path(source).stem if source != "<spec>" else "lab")
    if not isinstance(lab_name, str) or not NAME_RE.match(lab_name):
        problems.append(f"name: {lab_name!r} is not a valid lab name ([a-z][a-z0-9-]*)")
        lab_name = "lab"
    base_port = _int(data.get("base_port", DEFAULT_BASE_PORT), "base_port", 1024, 60000, problems)
    base_port = base_port or DEFAULT_BASE_PORT
    accel = data.get("accel", "auto")
    if accel not in ACCELS:
        problems.append(f"accel: unknown accelerator {accel!r} (expected one of "
                        f"{', '.join(ACCELS)})")
        accel = "auto"
    raw_guests = data.get("guests")
    if not isinstance(raw_guests, list) or not raw_guests:
        problems.append("guests: expected a non-empty list of guests")
        raise SpecError(source, problems)

    names = [raw.get("name", "") if isinstance(raw, dict) else "" for raw in raw_guests]
    guests: list[Guest] = []
    link_pairs: list[tuple[str, str]] = []
    raw_links: dict[str, list[int]] = {}
    for i, raw in enumerate(raw_guests):
        where = f"guests[{i}]"
        if not isinstance(raw, dict):
            problems.append(f"{where}: expected a mapping")
            continue
        name = _str(raw, "name", where, problems)
        if name and not NAME_RE.match(name):
            problems.append(f"{where}.name: {name!r} is not a valid host name ([a-z][a-z0-9-]*)")
        if name and names.count(name) > 1 and names.index(name) != i:
            problems.append(f"{where}.name: duplicate guest name {name!r}")
        if name:
            where = f"guests[{i}] ({name})"
        for key in sorted(set(raw) - GUEST_KEYS):
            problems.append(f"{where}.{key}: unknown key")
        cloud = raw.get("cloud")
        if cloud not in CLOUDS:
            problems.append(f"{where}.cloud: unknown cloud {cloud!r} (expected aws or gcp)")
            cloud = "aws"
        region = _str(raw, "region", where, problems)
        if region and not _region_ok(cloud, region):
            problems.append(f"{where}.region: {region!r} is not a {cloud} region name")
        zone = _str(raw, "zone", where, problems)
        if zone and region and not _zone_ok(cloud, region, zone):
            problems.append(f"{where}.zone: {zone!r} is not a zone of region {region!r}")
        itype = _str(raw, "instance_type", where, problems)
        kernel = str(raw.get("kernel", ""))
        if not kernel_syntax_ok(kernel):
            problems.append(f"{where}.kernel: unknown kernel {raw.get('kernel')!r} "
                            f"(expected {KERNEL_HELP})")
        elif (check_host and kernel not in KERNEL_SERIES
              and not paths.apt_knows(f"linux-image-{kernel}")):
            problems.append(f"{where}.kernel: apt knows no package linux-image-{kernel}")
        vcpus = _int(raw.get("vcpus", 1), f"{where}.vcpus", 1, MAX_VCPUS, problems) or 1
        memory = _int(raw.get("memory_mb", 1024), f"{where}.memory_mb", MIN_MEMORY_MB,
                      1 << 20, problems) or MIN_MEMORY_MB
        ssh_port = _int(raw.get("ssh_port", base_port + i), f"{where}.ssh_port", 1024, 65535,
                        problems) or base_port + i
        nics: list[Nic] = []
        raw_nics = raw.get("nics", [])
        if not isinstance(raw_nics, list):
            problems.append(f"{where}.nics: expected a list")
            raw_nics = []
        for j, nic in enumerate(raw_nics):
            nwhere = f"{where}.nics[{j}]"
            if not isinstance(nic, dict):
                problems.append(f"{nwhere}: expected a mapping with queues or link")
                continue
            for key in sorted(set(nic) - NIC_KEYS):
                problems.append(f"{nwhere}.{key}: unknown key")
            queues = _int(nic.get("queues", 1), f"{nwhere}.queues", 1, MAX_QUEUES, problems) or 1
            link = nic.get("link")
            if link is not None:
                if link == name:
                    problems.append(f"{nwhere}.link: a guest cannot link to itself")
                elif link not in names:
                    problems.append(f"{nwhere}.link: no guest named {link!r}")
                elif queues != 1:
                    problems.append(f"{nwhere}.queues: socket links have one queue")
                else:
                    pair = (name, link)
                    if pair in link_pairs or pair[::-1] in link_pairs:
                        problems.append(f"{nwhere}.link: {name} and {link} are already linked")
                    else:
                        link_pairs.append(pair)
                        raw_links.setdefault(name, []).append(len(nics) + 1)
                        nics.append(Nic(index=len(nics) + 1, link=link))
                        continue
                continue
            nics.append(Nic(index=len(nics) + 1, queues=queues))
        forwards: list[tuple[int, int]] = []
        raw_fwds = raw.get("forwards", [])
        for j, fwd in enumerate(raw_fwds if isinstance(raw_fwds, list) else [None]):
            fwhere = f"{where}.forwards[{j}]"
            if not isinstance(fwd, dict):
                problems.append(f"{fwhere}: expected a mapping with guest_port and host_port")
                continue
            for key in sorted(set(fwd) - FORWARD_KEYS):
                problems.append(f"{fwhere}.{key}: unknown key")
            gport = _int(fwd.get("guest_port"), f"{fwhere}.guest_port", 1, 65535, problems)
            hport = _int(fwd.get("host_port"), f"{fwhere}.host_port", 1024, 65535, problems)
            if gport and hport:
                forwards.append((gport, hport))
        firmware = raw.get("firmware", "bios")
        if firmware not in FIRMWARES:
            problems.append(f"{where}.firmware: unknown firmware {firmware!r} "
                            f"(expected one of {', '.join(FIRMWARES)})")
            firmware = "bios"
        mok_certs = raw.get("mok_certs", [])
        if not isinstance(mok_certs, list) or not all(isinstance(c, str) for c in mok_certs):
            problems.append(f"{where}.mok_certs: expected a list of certificate paths")
            mok_certs = []
        elif mok_certs and firmware == "bios":
            problems.append(f"{where}.mok_certs: only a uefi-secureboot guest has a MokList")
        elif check_host:
            problems += [f"{where}.mok_certs: cannot read {c}" for c in mok_certs
                         if not os.access(c, os.R_OK)]
        guests.append(Guest(name=name, cloud=cloud, region=region, zone=zone,
                            instance_type=itype, kernel=kernel, vcpus=vcpus, memory_mb=memory,
                            ssh_port=ssh_port, index=i, nics=tuple(nics),
                            forwards=tuple(forwards), firmware=firmware,
                            mok_certs=tuple(mok_certs)))

    regions: dict[str, dict[str, int]] = {}
    raw_regions = data.get("regions", {}) or {}
    if not isinstance(raw_regions, dict):
        problems.append("regions: expected a mapping of region name to rtt_ms/bandwidth_mbit")
        raw_regions = {}
    for rname, rvars in raw_regions.items():
        if not isinstance(rvars, dict):
            problems.append(f"regions.{rname}: expected a mapping")
            continue
        for key in sorted(set(rvars) - REGION_KEYS):
            problems.append(f"regions.{rname}.{key}: unknown key")
        rtt = _int(rvars.get("rtt_ms", 1), f"regions.{rname}.rtt_ms", 0, 2000, problems)
        bw = _int(rvars.get("bandwidth_mbit", 1000), f"regions.{rname}.bandwidth_mbit", 1,
                  400000, problems)
        regions[rname] = {"rtt_ms": rtt or 0, "bandwidth_mbit": bw or 1}

    services: list[Service] = []
    raw_services = data.get("services", []) or []
    for k, svc in enumerate(raw_services if isinstance(raw_services, list) else []):
        swhere = f"services[{k}]"
        if not isinstance(svc, dict):
            problems.append(f"{swhere}: expected a mapping")
            continue
        for key in sorted(set(svc) - SERVICE_KEYS):
            problems.append(f"{swhere}.{key}: unknown key")
        sname = _str(svc, "name", swhere, problems)
        gport = _int(svc.get("guest_port", 80), f"{swhere}.guest_port", 1, 65535, problems) or 80
        hport = _int(svc.get("host_port"), f"{swhere}.host_port", 1024, 65535, problems) or 0
        services.append(Service(sname, f"10.0.2.{SERVICE_ADDR_BASE + k}", gport, hport))

    links = tuple(Link(index=k, listener=a, connector=b)
                  for k, (a, b) in enumerate(link_pairs))
    guests = _address_nics(guests, links, lab_name)

    # Ports the lab will bind: SSH forwards.
    ports: dict[int, str] = {}
    for g in guests:
        where = f"guests[{g.index}] ({g.name}).ssh_port"
        if g.ssh_port in ports:
            problems.append(f"{where}: port {g.ssh_port} clashes with {ports[g.ssh_port]}")
        ports.setdefault(g.ssh_port, where)
        for j, (_, hport) in enumerate(g.forwards):
            fwhere = f"guests[{g.index}] ({g.name}).forwards[{j}].host_port"
            if hport in ports:
                problems.append(f"{fwhere}: port {hport} clashes with {ports[hport]}")
            ports.setdefault(hport, fwhere)
    if check_host:
        for port, where in sorted(ports.items()):
            if port_in_use(port):
                problems.append(f"{where}: port {port} is already in use on 127.0.0.1")
        total = sum(g.memory_mb for g in guests)
        avail = _host_memory_mb() - HOST_MEMORY_RESERVE_MB
        if total > avail:
            problems.append(f"guests[*].memory_mb: the guests need {total} MiB in all but the "
                            f"machine has {avail} MiB to spare "
                            f"(MemAvailable less {HOST_MEMORY_RESERVE_MB} MiB)")
        cpus = os.cpu_count() or 1
        for g in guests:
            if g.vcpus > cpus * 4:
                problems.append(f"guests[{g.index}] ({g.name}).vcpus: {g.vcpus} vCPUs on a "
                                f"{cpus}-core machine")
    if problems:
        raise SpecError(source, problems)
    return Spec(name=lab_name, base_port=base_port, guests=tuple(guests), links=links,
                services=tuple(services), regions=regions, accel=accel)


def _address_nics(guests: list[Guest], links: tuple[Link, ...], lab: str) -> list[Guest]:
    """Give every extra NIC its lab addresses (198.18.0.0/15, the benchmark range)."""
    extra: dict[str, list[Nic]] = {g.name: list(g.nics) for g in guests}
    for link in links:
        a_side = next(n for n in extra[link.listener] if n.link == link.connector)
        i = extra[link.listener].index(a_side)
        a_addr, b_addr = f"198.18.{link.index}.1/24", f"198.18.{link.index}.2/24"
        extra[link.listener][i] = Nic(a_side.index, 1, link.connector, a_addr, b_addr)
        extra[link.connector].append(
            Nic(len(extra[link.connector]) + 1, 1, link.listener, b_addr, a_addr))
    out = []
    for g in guests:
        nics = []
        for n in extra[g.name]:
            if n.kind == "tap":
                net = f"198.19.{g.index * 8 + n.index}"
                n = Nic(n.index, n.queues, None, f"{net}.2/24", f"{net}.1/24",
                        f"vpsnet-{lab}-{g.name}-{n.index}-{g.ssh_port}"[:48])
            nics.append(n)
        out.append(Guest(**{**g.__dict__, "nics": tuple(nics)}))
    return out


def load(path: str | Path, check_host: bool = True) -> Spec:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise LabError(f"cannot read lab spec {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise LabError(f"lab spec {path} is not valid YAML: {exc}") from exc
    return parse(data, str(path), check_host=check_host)
