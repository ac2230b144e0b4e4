"""Parsing a lab spec: plain data (from a file through specfile.py's bounded
reader, or a dict built in code) into a typed Spec, one small function per
section. Pure: nothing on this machine is looked at (that is hostcheck.py).
SpecError names every bad field and its value. Imported by the CLI and users.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, NoReturn

from .accel import CHOICES as ACCELS
from .fieldcheck import Checker, shown
from .spec import (
    AWS_REGION_RE,
    CLOUDS,
    DEFAULT_BASE_PORT,
    FIRMWARES,
    GCP_REGION_RE,
    INSTANCE_TYPE_RE,
    MAX_GUESTS,
    MAX_MEMORY_MB,
    MAX_NICS,
    MAX_QUEUES,
    MAX_SERVICES,
    MAX_VCPUS,
    MIN_MEMORY_MB,
    NAME_RE,
    SERVICE_ADDR_BASE,
    Guest,
    Link,
    Nic,
    Service,
    Spec,
    SpecError,
)
from .specaddress import address_nics
from .specfile import SpecFileError, join
from .specfile import read as read_file

TOP_KEYS = {"name", "base_port", "guests", "regions", "services", "accel"}
GUEST_KEYS = {"name", "cloud", "region", "zone", "instance_type", "kernel", "vcpus",
              "memory_mb", "nics", "ssh_port", "forwards", "firmware", "mok_certs"}
NIC_KEYS = {"queues", "link"}
FORWARD_KEYS = {"guest_port", "host_port"}
SERVICE_KEYS = {"name", "guest_port", "host_port"}
REGION_KEYS = {"rtt_ms", "bandwidth_mbit"}


def read(path: str | Path) -> Any:
    """The data of spec file PATH, read bounded (see specfile.py); SpecError if refused."""
    try:
        return read_file(Path(path))
    except SpecFileError as exc:
        raise SpecError(str(path), [str(exc)]) from None


def load(path: str | Path) -> Spec:
    """The spec in file PATH (host checks are hostcheck.check_host's)."""
    return parse(read(path), str(path))


def parse(data: Any, source: str = "<spec>") -> Spec:
    """Validate DATA into a Spec; raise SpecError naming every bad field."""
    p = _Parser(source)
    top = p.mapping(data, "top level", "a mapping with 'guests'")
    if top is None:
        p.stop()
    p.keys(top, TOP_KEYS, "")
    name, base_port, accel = p.header(top)
    raw_guests = p.guest_list(top.get("guests"))
    names = [str(g["name"]) if isinstance(g, dict) and isinstance(g.get("name"), str) else ""
             for g in raw_guests]
    guests = [g for i, raw in enumerate(raw_guests)
              if (g := p.guest(raw, i, names, base_port)) is not None]
    regions = p.regions(top.get("regions", {}))
    services = p.services(top.get("services", []))
    p.port_clashes(guests)
    p.stop_on_problems()  # before addressing: that needs unique names and known link peers
    links = tuple(Link(index=k, listener=a, connector=b) for k, (a, b) in enumerate(p.links))
    guests = address_nics(guests, links, name)
    p.nic_counts(guests)
    p.stop_on_problems()
    return Spec(name=name, base_port=base_port, guests=tuple(guests), links=links,
                services=tuple(services), regions=regions, accel=accel, source=source)


def _region_ok(cloud: str, region: str) -> bool:
    return bool((AWS_REGION_RE if cloud == "aws" else GCP_REGION_RE).fullmatch(region))


def _zone_ok(cloud: str, region: str, zone: str) -> bool:
    suffix = zone.removeprefix(region)
    if suffix == zone:
        return False
    return bool(re.fullmatch(r"[a-z]" if cloud == "aws" else r"-[a-z]", suffix))


class _Parser(Checker):
    """The field checks of one spec, section by section; the links the guests
    declare are collected as (listener, connector) on the way."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source
        self.links: list[tuple[str, str]] = []

    def stop(self) -> NoReturn:
        raise SpecError(self.source, self.problems)

    def stop_on_problems(self) -> None:
        if self.problems:
            self.stop()

    # --- top level -------------------------------------------------------------
    def header(self, top: dict[Any, Any]) -> tuple[str, int, str]:
        """The lab's name (the file's stem by default), base port and accelerator."""
        stem = Path(self.source).stem if self.source != "<spec>" else "lab"
        name = self.string(top.get("name", stem), "name", NAME_RE,
                           "a valid lab name ([a-z][a-z0-9-]*, at most 31 characters)") or "lab"
        base_port = self.integer(top.get("base_port", DEFAULT_BASE_PORT), "base_port", 1024,
                                 60000) or DEFAULT_BASE_PORT
        accel = self.choice(top.get("accel", "auto"), "accel", ACCELS, "accelerator") or "auto"
        return name, base_port, accel

    def guest_list(self, value: Any) -> list[Any]:
        """The raw guests; stops here when there are none or too many."""
        if not isinstance(value, list) or not value:
            self.add("guests", "expected a non-empty list of guests")
            self.stop()
        if len(value) > MAX_GUESTS:
            self.add("guests", f"{len(value)} guests: at most {MAX_GUESTS}")
            self.stop()
        return value

    # --- guests ----------------------------------------------------------------
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
        cloud, region, zone = self.placement(raw, where)
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
        firmware, mok_certs = self.firmware(raw, where)
        return Guest(name=name, cloud=cloud, region=region, zone=zone, instance_type=itype,
                     kernel=kernel, vcpus=vcpus, memory_mb=memory, ssh_port=ssh_port, index=i,
                     nics=tuple(nics), forwards=tuple(forwards), firmware=firmware,
                     mok_certs=tuple(mok_certs))

    def placement(self, raw: dict[Any, Any], where: str) -> tuple[str, str, str]:
        """Cloud, region and zone; no region/zone complaints on top of an unknown cloud."""
        known_cloud = self.choice(raw.get("cloud"), f"{where}.cloud", CLOUDS, "cloud")
        cloud = known_cloud or "aws"
        region = self.string(raw.get("region"), f"{where}.region")
        if known_cloud and region and not _region_ok(cloud, region):
            self.add(f"{where}.region", f"{shown(region)} is not a {cloud} region name")
        zone = self.string(raw.get("zone"), f"{where}.zone")
        if known_cloud and zone and region and not _zone_ok(cloud, region, zone):
            self.add(f"{where}.zone", f"{shown(zone)} is not a zone of region {region!r}")
        return cloud, region, zone

    def firmware(self, raw: dict[Any, Any], where: str) -> tuple[str, list[str]]:
        firmware = self.choice(raw.get("firmware", "bios"), f"{where}.firmware", FIRMWARES,
                               "firmware") or "bios"
        mok_certs = [self.string(c, f"{where}.mok_certs[{j}]") for j, c in
                     enumerate(self.items(raw.get("mok_certs", []), f"{where}.mok_certs",
                                          "certificate paths"))]
        if mok_certs and firmware == "bios":
            self.add(f"{where}.mok_certs", "only a uefi-secureboot guest has a MokList")
        return firmware, mok_certs

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
            elif self.link_ok(link, queues, nwhere, name, names):
                self.links.append((name, link))
                nics.append(Nic(index=len(nics) + 1, link=link))
        return nics

    def link_ok(self, link: Any, queues: int, where: str, name: str, names: list[str]) -> bool:
        if not isinstance(link, str) or link not in names:
            self.add(f"{where}.link", f"no guest named {shown(link)}")
        elif link == name:
            self.add(f"{where}.link", "a guest cannot link to itself")
        elif queues != 1:
            self.add(f"{where}.queues", "socket links have one queue")
        elif (name, link) in self.links or (link, name) in self.links:
            self.add(f"{where}.link", f"{name} and {link} are already linked")
        else:
            return bool(name)
        return False

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

    def port_clashes(self, guests: list[Guest]) -> None:
        ports: dict[int, str] = {}
        for g in guests:
            wanted = [(f"{g.where}.ssh_port", g.ssh_port)] + [
                (f"{g.where}.forwards[{j}].host_port", h) for j, (_, h) in enumerate(g.forwards)]
            for where, port in wanted:
                if port in ports:
                    self.add(where, f"port {port} clashes with {ports[port]}")
                ports.setdefault(port, where)

    def nic_counts(self, guests: list[Guest]) -> None:
        for g in guests:
            if len(g.nics) > MAX_NICS:
                self.add(f"{g.where}.nics", f"{len(g.nics)} extra NICs (links from other "
                         f"guests included): at most {MAX_NICS}")

    # --- regions and services --------------------------------------------------
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
