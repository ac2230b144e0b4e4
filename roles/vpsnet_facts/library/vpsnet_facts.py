#!/usr/bin/python
# Copyright: vpsnet contributors
# GNU General Public License v2.0 only (see https://www.gnu.org/licenses/old-licenses/gpl-2.0.txt)
"""Detect the cloud a host runs in and describe its NICs (the vpsnet_cloud fact).

The detection logic is plain Python (``detect()``) so it can be unit-tested
against recorded sysfs/DMI/proc trees without Ansible; ``main()`` is the thin
AnsibleModule wrapper.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import math
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vpsnet_nic import nic_queue_irqs

try:
    import requests
    from urllib3.exceptions import HTTPError as Urllib3Error

    HAS_REQUESTS = True
except ImportError:  # pragma: no cover - depends on the managed host
    requests = None  # type: ignore[assignment]
    Urllib3Error = OSError  # type: ignore[assignment,misc]
    HAS_REQUESTS = False

DOCUMENTATION = r"""
---
module: vpsnet_facts
short_description: Detect the cloud provider and describe the NICs of a host
description:
  - Sets the C(vpsnet_cloud) fact from local evidence (DMI, PCI ids, NIC drivers) and,
    when enabled, from the instance metadata service.
  - AWS metadata is read with the IMDSv2 token flow only; IMDSv1 is never used.
  - "GCP metadata is read with C(Metadata-Flavor: Google) and answers must carry that header."
  - The whole detection (sysfs reads, C(ethtool), metadata) is bounded by O(metadata_timeout)
    in total, so the module never hangs when metadata is unreachable.
  - "A C(product_uuid) starting with C(ec2) counts for AWS only when corroborated (as cloud-init's
    ds-identify does): equal to C(product_serial), or beside another AWS clue."
  - Answers that look wrong (HTML, missing header, absurd zone or region) are ignored
    with a warning.
version_added: "0.1.0"
author: vpsnet contributors
options:
  root:
    description:
      - Path prefix under which C(sys/) and C(proc/) are read. Tests point it at recorded trees.
      - C(ethtool) is only run when this is C(/).
    type: path
    default: /
  metadata:
    description: Query the instance metadata service.
    type: bool
    default: true
  metadata_url:
    description:
      - Base URL of the metadata service (both clouds answer on the link-local address).
      - A literal IP address is best, since name resolution is not covered by the time budget.
    type: str
    default: http://169.254.169.254
  metadata_url_ipv6:
    description:
      - Base URL of the metadata service over IPv6 (AWS IMDS's IPv6 endpoint), used when
        O(metadata_ip_version) is C(6), or C(auto) and the host has no IPv4 route to
        169.254.169.254 but an IPv6 route to fd00:ec2::254 (read from C(proc/net/route) and
        C(proc/net/ipv6_route)).
      - Only AWS is asked over IPv6; GCP documents its metadata server on IPv4 only.
    type: str
    default: http://[fd00:ec2::254]
  metadata_ip_version:
    description:
      - Which metadata URL to use. C(auto) decides from the host's routes
        (see O(metadata_url_ipv6)).
    type: str
    choices: [auto, "4", "6"]
    default: auto
  metadata_timeout:
    description:
      - Total time budget in seconds for the whole detection, local reads and metadata
        requests together (more than 0, at most 60).
    type: float
    default: 2.0
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
requirements:
  - python requests (for metadata; without it metadata is skipped with a warning)
"""

EXAMPLES = r"""
- name: Detect the cloud
  vpsnet_facts:

- name: Detect from local evidence only
  vpsnet_facts:
    metadata: false
"""

RETURN = r"""
ansible_facts:
  description: Facts added to the host.
  returned: always
  type: dict
  contains:
    vpsnet_cloud:
      description: Cloud provider, how it was decided, placement and NICs.
      returned: always
      type: dict
      sample:
        provider: aws
        evidence:
          - "dmi sys_vendor='Amazon EC2' -> aws"
        region: us-east-1
        zone: us-east-1a
        instance_type: m5.large
        instance_type_source: metadata
        instance_id: i-0abc
        metadata_reachable: true
        nics:
          - name: ens5
            driver: ena
            pci_id: "1d0f:ec20"
            pci_address: "0000:00:05.0"
            numa_node: null
            queues:
              current: {rx: 2, tx: 2}
              max: {rx: null, tx: null, other: null, combined: 2}
            irqs:
              - {irq: 27, name: ens5-Tx-Rx-0, queue: 0, direction: rxtx}
"""

AWS = "aws"
GCP = "gcp"
UNKNOWN = "unknown"

# PCI vendor:device -> (provider or None, label)
PCI_IDS: dict[str, tuple[str | None, str]] = {
    "1d0f:ec20": (AWS, "ENA"),
    "1d0f:ec21": (AWS, "ENA LLQ VF"),
    # names as in the ENA driver's ena_pci_id_tbl.h (PF 0ec2, LLQ PF 1ec2, VF ec20, LLQ VF ec21)
    "1d0f:0ec2": (AWS, "ENA PF"),
    "1d0f:1ec2": (AWS, "ENA LLQ PF"),
    "1ae0:0042": (GCP, "gVNIC"),
    "1af4:1000": (None, "virtio-net (legacy)"),
    "1af4:1041": (None, "virtio-net (modern)"),
}
DRIVERS: dict[str, str | None] = {"ena": AWS, "gve": GCP, "virtio_net": None, "vif": None}

# Every pattern is used with re.fullmatch: "$" would let a trailing newline through.
AWS_REGION_RE = re.compile(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}")
AWS_ZONE_SUFFIX_RE = re.compile(r"[a-z]|-[a-z]{3}-[0-9][a-z]")  # us-east-1a, us-west-2-lax-1a
# family (m5, m7i-flex, u-6tb1, mac2-m2pro) "." size (large, 24xlarge, metal, metal-24xl)
AWS_TYPE_RE = re.compile(
    r"[a-z][a-z0-9]{0,15}(?:-[a-z0-9]{1,15}){0,2}"
    r"\.(?:nano|micro|small|medium|large|xlarge|[0-9]{1,3}xlarge|metal(?:-[0-9]{1,3}xl)?)"
)
GCP_ZONE_RE = re.compile(r"([a-z]+-[a-z]+[0-9]{1,2})-[a-z]")
GCP_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
GCP_ID_RE = re.compile(r"[0-9]{1,20}")
AWS_INSTANCE_ID_RE = re.compile(r"i-[0-9a-f]{1,17}")
TOKEN_RE = re.compile(r"[A-Za-z0-9_=+/.-]{1,512}")
PCI_ADDR_RE = re.compile(r"[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]")
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# ASCII digits only: str.isdigit() accepts "²", which int() refuses
INT_RE = re.compile(r"[0-9]{1,10}")

# The metadata addresses over each family: IMDS and GCE share the IPv4 one;
# fd00:ec2::254 is AWS's (Nitro instances, HttpProtocolIpv6 enabled).
METADATA_IPV4 = "169.254.169.254"
METADATA_IPV6 = "fd00:ec2::254"
AWS_IMDS_IPV6_URL = f"http://[{METADATA_IPV6}]"
IP_VERSIONS = ("auto", "4", "6")
MAX_ROUTES = 1024 * 1024  # route tables a VPS has are a few lines
RTF_UP, RTF_REJECT = 0x0001, 0x0200

CONNECT_TIMEOUT = 0.5
MAX_BODY = 64 * 1024
MAX_JSON_DEPTH = 16  # the identity document is 2 levels deep
MAX_SYSFS = 64 * 1024  # DMI and PCI attributes are a line
MAX_INTERRUPTS = 16 * 1024 * 1024  # many CPUs x many IRQs
MAX_INT = 2**31 - 1
ETHTOOL_TIMEOUT = 1.0  # ethtool waits for the RTNL lock, which a stuck driver can hold
AWS_TOKEN_TTL = "60"
_JSON_TOKEN_RE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def _small_int(text: str | None, limit: int = MAX_INT) -> int | None:
    """A non-negative decimal of ASCII digits up to limit, else None (no exception)."""
    if text is None:
        return None
    text = text.strip()
    if not INT_RE.fullmatch(text):
        return None
    value = int(text)
    return value if value <= limit else None


def _show(value: object, limit: int = 80) -> str:
    """A value for a line of evidence: quoted, control characters escaped, cut at limit."""
    text = value if isinstance(value, str) else repr(value)
    cut = text[:limit]
    shown = cut.encode("unicode_escape").decode("ascii")
    return f"'{shown}'" + ("..." if len(text) > limit else "")


# --------------------------------------------------------------------------- time budget


class Deadline:
    """One deadline for the whole detection, computed when it starts.

    Requests aim at `soft` (a little before the end) so that the worker has
    returned by the time the caller stops waiting at `hard`.
    """

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.start = time.monotonic()
        if seconds is None:
            self.hard = self.soft = math.inf
        else:
            self.hard = self.start + seconds
            self.soft = self.hard - min(0.1, seconds / 10)

    def remaining(self) -> float:
        """Seconds left before the soft deadline (never negative)."""
        return max(self.soft - time.monotonic(), 0.0)

    def spent(self, reserve: float = 0.0) -> bool:
        return time.monotonic() + reserve >= self.soft

    def elapsed(self) -> float:
        return time.monotonic() - self.start


# --------------------------------------------------------------------------- sysfs


def _read(path: str, limit: int = MAX_SYSFS) -> str | None:
    """A sysfs/DMI file (at most limit bytes), stripped; None when absent or unreadable."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit)
    except (OSError, ValueError):
        return None
    return data.decode("utf-8", errors="replace").strip()


def _link_basename(path: str) -> str | None:
    try:
        return os.path.basename(os.readlink(path))
    except OSError:
        return None


def _hexid(value: str | None) -> str | None:
    if not value:
        return None
    value = value.lower()
    if value.startswith("0x"):
        value = value[2:]
    return value.zfill(4) if re.fullmatch(r"[0-9a-f]{1,4}", value) else None


def _swapped_uuid(uuid: str) -> str:
    """The SMBIOS UUID with its first three fields byte-swapped (little-endian firmware)."""
    parts = uuid.split("-")
    if len(parts) != 5:
        return uuid

    def swap(hexstr: str) -> str:
        return "".join(reversed([hexstr[i : i + 2] for i in range(0, len(hexstr), 2)]))

    return "-".join([swap(parts[0]), swap(parts[1]), swap(parts[2]), parts[3], parts[4]])


@dataclass
class Clues:
    """Local evidence: (provider or None, text) in the order found.

    `uuid_clue` holds an `ec2` product_uuid until it is corroborated (see
    settle_uuid): a random UUID starts with ec2 once in 4096.
    """

    items: list[tuple[str | None, str]] = field(default_factory=list)
    uuid_clue: str | None = None
    uuid_serial_match: bool = False

    def add(self, provider: str | None, text: str) -> None:
        self.items.append((provider, text))

    def score(self, provider: str) -> int:
        return sum(1 for p, _ in self.items if p == provider)


def read_dmi(root: str, clues: Clues) -> dict[str, str | None]:
    """Read DMI identity files and record what each says."""
    base = os.path.join(root, "sys/class/dmi/id")
    names = ("sys_vendor", "product_name", "bios_vendor", "bios_version", "board_vendor",
             "chassis_asset_tag", "chassis_vendor", "product_uuid", "product_serial")
    dmi = {name: _read(os.path.join(base, name)) for name in names}
    if not os.path.isdir(base):
        clues.add(None, "dmi: /sys/class/dmi/id absent (no SMBIOS)")
        return dmi
    for name in ("sys_vendor", "bios_vendor", "board_vendor", "chassis_vendor",
                 "chassis_asset_tag"):
        value = dmi[name]
        if not value:
            continue
        if value == "Amazon EC2":
            clues.add(AWS, f"dmi {name}={_show(value)} -> aws")
        elif value.startswith("Google"):
            clues.add(GCP, f"dmi {name}={_show(value)} -> gcp")
        elif name == "sys_vendor" and value in ("Xen", "QEMU", "Red Hat"):
            clues.add(None, f"dmi {name}={_show(value)} (hypervisor, no cloud implied)")
    product = dmi["product_name"]
    if product == "Google Compute Engine":
        clues.add(GCP, f"dmi product_name={_show(product)} -> gcp")
    elif product and dmi["sys_vendor"] == "Amazon EC2" and AWS_TYPE_RE.fullmatch(product):
        clues.add(AWS, f"dmi product_name={_show(product)} (EC2 instance type) -> aws")
    bios_version = dmi["bios_version"] or ""
    if "amazon" in bios_version.lower():
        clues.add(AWS, f"dmi bios_version={_show(bios_version)} -> aws")
    uuid = (dmi["product_uuid"] or "").lower()
    if UUID_RE.fullmatch(uuid):
        if uuid.startswith("ec2"):
            clues.uuid_clue = "dmi product_uuid starts with ec2"
        elif _swapped_uuid(uuid).startswith("ec2"):
            clues.uuid_clue = "dmi product_uuid starts with ec2 once byte-swapped"
        # ds-identify: on EC2 Xen the serial is the uuid again
        serial = (dmi["product_serial"] or "").lower()
        clues.uuid_serial_match = serial == uuid
    elif uuid:
        clues.add(None, f"dmi product_uuid {_show(uuid)} is not a UUID (ignored)")
    elif os.path.exists(os.path.join(base, "product_uuid")):
        clues.add(None, "dmi product_uuid unreadable (needs root)")
    hv_uuid = (_read(os.path.join(root, "sys/hypervisor/uuid")) or "").lower()
    if UUID_RE.fullmatch(hv_uuid) and hv_uuid.startswith("ec2"):
        # the Xen toolstack sets it; ds-identify takes it alone as AWS
        clues.add(AWS, "xen hypervisor uuid starts with ec2 -> aws")
    serial = dmi["product_serial"] or ""
    if serial.startswith("GoogleCloud-"):
        clues.add(GCP, "dmi product_serial starts with GoogleCloud- -> gcp")
    return dmi


def settle_uuid(clues: Clues) -> None:
    """Count an ec2 product_uuid only when something else says AWS too.

    As cloud-init's ds-identify: the uuid equal to the serial, or the Xen
    hypervisor uuid starting with ec2; or any other AWS clue already found
    (DMI vendor, bios, ENA PCI id or driver). Call after the NICs are read.
    """
    if clues.uuid_clue is None:
        return
    why = None
    others = clues.score(AWS)
    if clues.uuid_serial_match:
        why = "product_serial equals it"
    elif any(text.startswith("xen hypervisor uuid") for _, text in clues.items):
        why = "xen hypervisor uuid starts with ec2"
    elif others:
        why = f"{others} other aws clue(s)"
    if why is None:
        clues.add(None, f"{clues.uuid_clue}, uncorroborated (no equal product_serial, no ec2 "
                        "hypervisor uuid, no other aws clue): not counted")
        return
    clues.add(AWS, f"{clues.uuid_clue} -> aws")
    clues.add(None, f"dmi product_uuid corroborated: {why}")
    clues.uuid_clue = None


# --------------------------------------------------------------------------- NICs


def parse_interrupts(text: str) -> dict[int, str]:
    """IRQ number -> action name(s) from /proc/interrupts. Lines that are not an
    IRQ line (NMI, LOC, garbage, absurd numbers) are skipped, never raised on."""
    lines = text.splitlines()
    if not lines:
        return {}
    ncpu = len(lines[0].split())
    result: dict[int, str] = {}
    for line in lines[1:]:
        head, sep, rest = line.partition(":")
        irq = _small_int(head) if sep else None
        if irq is None:
            continue
        fields = rest.split()
        tail = fields[ncpu:]
        if len(tail) < 2:
            continue
        # chip, [hwirq,] [type,] name(s): the name is the last field
        result[irq] = tail[-1]
    return result


def parse_ethtool_channels(text: str) -> dict[str, int | None] | None:
    """The 'Pre-set maximums' block of `ethtool -l` (None when there is none)."""
    maxima: dict[str, int | None] = {}
    section = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.lower().startswith("pre-set maximums"):
            section = "max"
            continue
        if stripped.lower().startswith("current hardware settings"):
            section = None
            continue
        if section != "max" or ":" not in stripped:
            continue
        key, _, value = stripped.partition(":")
        key = key.strip().lower()
        if key not in ("rx", "tx", "other", "combined"):
            continue
        maxima[key] = _small_int(value)  # "n/a", garbage or absurd: None
    if not maxima:
        return None
    return {k: maxima.get(k) for k in ("rx", "tx", "other", "combined")}


def _pci_device(device_path: str) -> str | None:
    """The PCI function that backs a net device (itself or, for virtio, its parent)."""
    path = device_path
    for _ in range(3):
        if PCI_ADDR_RE.fullmatch(os.path.basename(path)):
            return path
        path = os.path.dirname(path)
    return None


class EthtoolTimeout(Exception):
    """Raised by an ethtool runner that gave up waiting (its NIC's max stays null)."""


def read_nics(root: str, clues: Clues, interrupts: dict[int, str],
              ethtool: Callable[[str], str | None] | None,
              deadline: Deadline | None = None) -> list[dict[str, Any]]:
    """Describe every NIC backed by a device (lo, bridges, veths are skipped)."""
    net = os.path.join(root, "sys/class/net")
    try:
        names = sorted(os.listdir(net))
    except OSError:
        return []
    nics = []
    for name in names:
        dev_link = os.path.join(net, name, "device")
        if not os.path.exists(dev_link):
            continue
        device = os.path.realpath(dev_link)
        driver = _link_basename(os.path.join(dev_link, "driver"))
        pci = _pci_device(device)
        pci_id = None
        numa: int | None = None
        msi: set[int] | None = None
        if pci:
            vendor = _hexid(_read(os.path.join(pci, "vendor")))
            devid = _hexid(_read(os.path.join(pci, "device")))
            pci_id = f"{vendor}:{devid}" if vendor and devid else None
            numa = _small_int(_read(os.path.join(pci, "numa_node")), 4096)  # -1: None
            try:
                entries = os.listdir(os.path.join(pci, "msi_irqs"))
            except OSError:
                msi = None
            else:
                msi = {irq for irq in map(_small_int, entries) if irq is not None}
        if pci_id in PCI_IDS:
            provider, label = PCI_IDS[pci_id]
            suffix = f"-> {provider}" if provider else "(generic KVM NIC, no cloud implied)"
            clues.add(provider, f"pci {name} {pci_id} {label} {suffix}")
        if driver in DRIVERS:
            provider = DRIVERS[driver]
            suffix = f"-> {provider}" if provider else "(no cloud implied)"
            clues.add(provider, f"driver {name}={driver} {suffix}")

        queues_dir = os.path.join(net, name, "queues")
        try:
            qentries = os.listdir(queues_dir)
        except OSError:
            qentries = []
        current = {
            "rx": sum(1 for q in qentries if q.startswith("rx-")),
            "tx": sum(1 for q in qentries if q.startswith("tx-")),
        }
        maximum = None
        if ethtool is not None and not name.startswith("-"):
            if deadline is not None and deadline.spent():
                clues.add(None, f"ethtool -l {name}: skipped, time budget spent")
            else:
                try:
                    out = ethtool(name)
                except EthtoolTimeout:
                    clues.add(None, f"ethtool -l {name}: timed out; not run for later NICs")
                    ethtool = None
                    out = None
                maximum = parse_ethtool_channels(out) if out else None

        irqs = nic_queue_irqs(driver, name, os.path.basename(device), interrupts, msi)
        nics.append({
            "name": name,
            "driver": driver,
            "pci_id": pci_id,
            "pci_address": os.path.basename(pci) if pci else None,
            "numa_node": numa,
            "queues": {"current": current, "max": maximum},
            "irqs": irqs,
        })
    return nics


# --------------------------------------------------------------------------- metadata


@dataclass
class MetadataResult:
    provider: str
    region: str | None = None
    zone: str | None = None
    instance_type: str | None = None
    instance_id: str | None = None


@dataclass
class Answer:
    """What one metadata request returned."""

    status_code: int
    headers: Mapping[str, str]  # case-insensitive (requests' CaseInsensitiveDict)
    text: str


def load_json_bounded(text: str, max_depth: int = MAX_JSON_DEPTH) -> tuple[Any, str | None]:
    """(value, None), or (None, why) for text that is not JSON or is nested deeper than
    max_depth (the C scanner recurses: deep nesting would raise RecursionError).
    Bodies are already capped at MAX_BODY; integers over 40 digits are refused."""
    depth = 0
    for token in _JSON_TOKEN_RE.finditer(text):
        char = token.group()
        if char in "[{":
            depth += 1
            if depth > max_depth:
                return None, f"JSON nested deeper than {max_depth} levels"
        elif char in "]}":
            depth -= 1

    def bounded_int(digits: str) -> int:
        if len(digits) > 40:
            raise ValueError("integer too long")
        return int(digits)

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        return json.loads(text, parse_int=bounded_int, parse_constant=no_constant), None
    except RecursionError:  # belt and braces: the depth scan should have refused it
        return None, "JSON too deeply nested"
    except ValueError as exc:
        return None, f"not JSON ({_show(str(exc), 60)})"


def aws_identity(doc: Any) -> tuple[MetadataResult | None, list[str]]:
    """The AWS identity document's placement: (result or None, what was wrong).

    region and zone must have AWS's format or the document is refused; a bad
    instance type or id is dropped (null) and reported."""
    problems: list[str] = []
    if not isinstance(doc, dict):
        return None, [f"identity document is a {type(doc).__name__}, not an object"]
    region = doc.get("region")
    zone = doc.get("availabilityZone")
    itype = doc.get("instanceType")
    iid = doc.get("instanceId")
    if not (isinstance(region, str) and AWS_REGION_RE.fullmatch(region)):
        return None, [f"region {_show(region)}"]
    if not (isinstance(zone, str) and zone.startswith(region)
            and AWS_ZONE_SUFFIX_RE.fullmatch(zone[len(region):])):
        return None, [f"zone {_show(zone)} for region {region}"]
    if not (isinstance(itype, str) and AWS_TYPE_RE.fullmatch(itype)):
        problems.append(f"instance type {_show(itype)}")
        itype = None
    if not (isinstance(iid, str) and AWS_INSTANCE_ID_RE.fullmatch(iid)):
        iid = None
    return MetadataResult(AWS, region, zone, itype, iid), problems


def _ipv4_route_to(text: str, address: str) -> str | None:
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


def _ipv6_route_to(text: str, address: str) -> str | None:
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
    v4 = _read(os.path.join(root, "proc/net/route"), MAX_ROUTES)
    if v4 is None:
        return "4", "metadata: IPv4 (auto: no proc/net/route to read)"
    via4 = _ipv4_route_to(v4, METADATA_IPV4)
    if via4 is not None:
        return "4", f"metadata: IPv4 (auto: IPv4 route to {METADATA_IPV4} via {_show(via4)})"
    via6 = ipv6_route_to_metadata(root)
    if via6 is not None:
        return "6", (f"metadata: IPv6 (auto: no IPv4 route to {METADATA_IPV4}, IPv6 route to "
                     f"{METADATA_IPV6} via {_show(via6)})")
    return "4", (f"metadata: IPv4 (auto: no route to {METADATA_IPV4} nor to {METADATA_IPV6}; "
                 "IPv4 tried as before)")


def ipv6_route_to_metadata(root: str) -> str | None:
    """The interface of an IPv6 route to fd00:ec2::254 on the host at ROOT, else None."""
    text = _read(os.path.join(root, "proc/net/ipv6_route"), MAX_ROUTES) or ""
    return _ipv6_route_to(text, METADATA_IPV6)


@dataclass
class MetadataProbe:
    """Bounded metadata queries: every request shares the detection's one deadline."""

    base_url: str
    budget: float = 2.0
    base_url6: str = AWS_IMDS_IPV6_URL
    ip_version: str = "auto"  # auto, 4 or 6: see metadata_family
    evidence: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reachable: bool = False  # a service answered in its cloud's protocol (token / header)
    deadline: Deadline = field(init=False)
    _down: bool = False
    _closed: bool = False  # set when the caller stopped waiting: the worker says no more
    _session: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    family: str = "4"  # the IP version chosen by select()
    fallback6: bool = False  # auto chose IPv4, and an IPv6 route to the AWS endpoint exists
    url: str = field(init=False)  # the base URL of that family

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self.base_url6 = self.base_url6.rstrip("/")
        self.url = self.base_url
        self.deadline = Deadline(self.budget)

    def select(self, root: str) -> None:
        """Choose the IP version (and URL) from the host's routes, with evidence."""
        self.family, why = metadata_family(root, self.ip_version)
        self.url = self.base_url6 if self.family == "6" else self.base_url
        self.evidence.append(why)
        self.fallback6 = (self.ip_version == "auto" and self.family == "4"
                          and ipv6_route_to_metadata(root) is not None)

    def _note(self, text: str, warn: bool = False) -> None:
        with self._lock:
            if self._closed:
                return
            self.evidence.append(text)
            if warn:
                self.warnings.append(f"vpsnet_facts: {text}")

    def _timeout(self) -> tuple[float, float] | None:
        remaining = self.deadline.remaining()
        if remaining <= 0.05:
            return None
        return (min(CONNECT_TIMEOUT, remaining), remaining)

    def _request(self, cloud: str, method: str, path: str,
                 headers: dict[str, str]) -> Answer | None:
        """One request within the budget, or None (evidence says why).

        Connect and read timeouts come from the time left; the body is read in
        pieces as they arrive and the deadline checked between them, so a
        server that drips bytes is cut off; bodies over MAX_BODY are refused.
        """
        if self._down:
            return None
        timeout = self._timeout()
        if timeout is None:
            self._note(f"metadata {cloud}: time budget spent before {method} {path}")
            return None
        if self._session is None:
            self._session = requests.Session()
            self._session.trust_env = False  # never a proxy for a link-local service
        # identity: a compressed body could expand past MAX_BODY after the check
        headers = {**headers, "Accept-Encoding": "identity"}
        try:
            with self._session.request(method, self.url + path, headers=headers,
                                       timeout=timeout, allow_redirects=False,
                                       stream=True) as response:
                encoding = response.headers.get("Content-Encoding", "identity").lower()
                if encoding not in ("", "identity"):
                    self._garbage(cloud, f"{path}: Content-Encoding {_show(encoding)}")
                    return None
                length = _small_int(response.headers.get("Content-Length"), 2**62)
                if length is not None and length > MAX_BODY:
                    self._garbage(cloud, f"{path}: body over {MAX_BODY} bytes")
                    return None
                raw = response.raw
                # read1 returns what has arrived; read(n) would wait for all n bytes
                read = getattr(raw, "read1", None) or raw.read
                body = b""
                while True:
                    chunk = read(4096)
                    if not chunk:
                        break
                    body += chunk
                    if len(body) > MAX_BODY:
                        self._garbage(cloud, f"{path}: body over {MAX_BODY} bytes")
                        return None
                    if self.deadline.spent():
                        self._note(f"metadata {cloud}: {method} {path} failed "
                                   "(budget spent while reading)")
                        return None
                text = body.decode("utf-8", errors="replace")
                return Answer(response.status_code, response.headers, text)
        except requests.exceptions.ConnectionError as exc:
            # refused, unroutable or ConnectTimeout: nobody answers at that address
            self._down = True
            self._note(f"metadata {cloud}: {method} {path} failed ({type(exc).__name__})")
            return None
        except (requests.exceptions.RequestException, Urllib3Error, http.client.HTTPException,
                OSError, ValueError) as exc:
            # reading response.raw raises urllib3's own errors (ReadTimeoutError, ...)
            self._note(f"metadata {cloud}: {method} {path} failed ({type(exc).__name__})")
            return None

    def run(self, order: list[str]) -> tuple[MetadataResult | None, list[str], bool]:
        """Ask the clouds in order; (result, evidence, reachable) by the deadline.

        Socket timeouts bound each wait, but not a server that drips header
        bytes or a slow name lookup, so the queries run in a worker thread the
        caller stops waiting for at the hard deadline (it is a daemon thread,
        and says nothing more once abandoned).
        """
        box: list[MetadataResult] = []

        def work() -> None:
            try:
                for cloud in order:
                    result = self.aws() if cloud == AWS else self.gcp()
                    if result is not None:
                        box.append(result)
                        return
                if self.fallback6 and self._down and AWS in order:
                    # a dual-stack host whose IPv4 endpoint is unreachable
                    self._note(f"metadata: IPv4 endpoint unreachable; trying AWS over IPv6 "
                               f"(route to {METADATA_IPV6})")
                    self.family, self.url, self._down = "6", self.base_url6, False
                    result = self.aws()
                    if result is not None:
                        box.append(result)
            except Exception as exc:
                self._note(f"metadata: internal error ({type(exc).__name__}); no metadata used")

        if self.deadline.spent(0.05):
            self.evidence.append("metadata: not queried, time budget spent on local reads")
            return None, list(self.evidence), False
        if self.family == "6" and GCP in order:
            # GCP documents 169.254.169.254 (metadata.google.internal) only
            order = [cloud for cloud in order if cloud != GCP]
            self.evidence.append("metadata gcp: not asked over IPv6 (GCP's metadata server "
                                 "is documented on IPv4 only)")
            if not order:
                return None, list(self.evidence), False
        worker = threading.Thread(target=work, name="vpsnet-facts-metadata", daemon=True)
        worker.start()
        worker.join(max(self.deadline.hard - time.monotonic() - 0.01, 0.0))
        with self._lock:
            self._closed = True
            evidence = list(self.evidence)
            abandoned = worker.is_alive()
        if abandoned:
            evidence.append("metadata: gave up, time budget spent with a request still running")
            return None, evidence, False
        return (box[0] if box else None), evidence, self.reachable

    def _garbage(self, cloud: str, what: str) -> None:
        self._note(f"metadata {cloud}: ignored a garbage answer ({what})", warn=True)

    @staticmethod
    def _looks_html(response: Answer) -> bool:
        ctype = response.headers.get("Content-Type", "")
        return "html" in ctype.lower() or response.text.lstrip()[:1] == "<"

    def aws(self) -> MetadataResult | None:
        """IMDSv2 only: a token, then GETs that carry it. Never IMDSv1."""
        response = self._request(AWS, "PUT", "/latest/api/token",
                                 {"X-aws-ec2-metadata-token-ttl-seconds": AWS_TOKEN_TTL})
        if response is None:
            return None
        token = response.text.strip()
        if response.status_code != 200:
            self._note(f"metadata aws: IMDSv2 token refused (HTTP {response.status_code}); "
                       "IMDSv1 not tried by design")
            return None
        if self._looks_html(response) or not TOKEN_RE.fullmatch(token):
            self._garbage(AWS, "token is not a token")
            return None
        self.reachable = True
        response = self._request(AWS, "GET", "/latest/dynamic/instance-identity/document",
                                 {"X-aws-ec2-metadata-token": token})
        if response is None:
            return None
        if response.status_code != 200:
            self._note(f"metadata aws: identity document HTTP {response.status_code}")
            return None
        doc, why = load_json_bounded(response.text)
        if why is not None:
            self._garbage(AWS, f"identity document: {why}")
            return None
        result, problems = aws_identity(doc)
        for problem in problems:
            self._garbage(AWS, problem)
        if result is None:
            return None
        self._note(f"metadata aws: IMDSv2 identity document says region={result.region} "
                   f"zone={result.zone} instance_type={result.instance_type} -> aws")
        return result

    def _gcp_get(self, key: str) -> str | None:
        response = self._request(GCP, "GET", f"/computeMetadata/v1/instance/{key}",
                                 {"Metadata-Flavor": "Google"})
        if response is None:
            return None
        if response.headers.get("Metadata-Flavor") != "Google":
            if response.status_code == 200:
                self._garbage(GCP, f"{key}: answer lacks the Metadata-Flavor: Google header")
            else:
                self._note(f"metadata gcp: not a GCP metadata service (HTTP "
                           f"{response.status_code} without Metadata-Flavor: Google)")
            return None
        self.reachable = True
        if response.status_code != 200:
            self._note(f"metadata gcp: {key} HTTP {response.status_code}")
            return None
        if self._looks_html(response):
            self._garbage(GCP, f"{key}: HTML body")
            return None
        return str(response.text.strip())

    def gcp(self) -> MetadataResult | None:
        """computeMetadata/v1 with Metadata-Flavor: Google, checked on every answer."""
        zone_path = self._gcp_get("zone")
        if zone_path is None:
            return None
        zone = zone_path.rsplit("/", 1)[-1]
        match = GCP_ZONE_RE.fullmatch(zone)
        if not match:
            self._garbage(GCP, f"zone {_show(zone_path)}")
            return None
        itype = None
        type_path = self._gcp_get("machine-type")
        if type_path is not None:
            candidate = type_path.rsplit("/", 1)[-1]
            if GCP_TYPE_RE.fullmatch(candidate):
                itype = candidate
            else:
                self._garbage(GCP, f"machine-type {_show(type_path)}")
        iid = self._gcp_get("id")
        if iid is not None and not GCP_ID_RE.fullmatch(iid):
            iid = None
        self._note(f"metadata gcp: zone={zone} machine_type={itype} -> gcp")
        return MetadataResult(GCP, match.group(1), zone, itype, iid)


# --------------------------------------------------------------------------- decision


def _dmi_instance_type(provider: str, dmi: dict[str, str | None]) -> str | None:
    product = dmi.get("product_name") or ""
    if (provider == AWS and dmi.get("sys_vendor") == "Amazon EC2"
            and AWS_TYPE_RE.fullmatch(product)):
        return product
    return None


def detect(root: str = "/", probe: MetadataProbe | None = None,
           ethtool: Callable[[str], str | None] | None = None,
           deadline: Deadline | None = None) -> dict[str, Any]:
    """Build the vpsnet_cloud fact. `probe` None means no metadata queries.

    One deadline covers all of it, local reads included: `deadline`, else one
    started now from the probe's budget (no limit without a probe).
    """
    if deadline is None:
        deadline = Deadline(probe.budget if probe is not None else None)
    if probe is not None:
        probe.deadline = deadline
    clues = Clues()
    dmi = read_dmi(root, clues)
    interrupts = parse_interrupts(
        _read(os.path.join(root, "proc/interrupts"), MAX_INTERRUPTS) or "")
    nics = read_nics(root, clues, interrupts, ethtool, deadline)
    settle_uuid(clues)

    aws_score, gcp_score = clues.score(AWS), clues.score(GCP)
    if aws_score > gcp_score:
        local = AWS
    elif gcp_score > aws_score:
        local = GCP
    else:
        local = UNKNOWN
    evidence = [text for _, text in clues.items]
    if aws_score and gcp_score:
        evidence.append(f"local clues conflict: aws={aws_score} gcp={gcp_score}")

    meta: MetadataResult | None = None
    reachable = False
    if probe is not None:
        order = {AWS: [AWS], GCP: [GCP], UNKNOWN: [AWS, GCP]}[local]
        probe.select(root)
        meta, probe_evidence, reachable = probe.run(order)
        evidence.extend(probe_evidence)
    else:
        evidence.append("metadata: not queried (disabled)")

    provider = local
    if meta is not None:
        if local not in (UNKNOWN, meta.provider):
            evidence.append(f"metadata says {meta.provider}, overriding local clues ({local})")
        if meta.provider == AWS and clues.uuid_clue is not None:
            evidence.append("metadata aws corroborates the ec2 product_uuid")
        provider = meta.provider
    if deadline.seconds is not None:
        evidence.append(f"timing: detection took {deadline.elapsed():.2f} s of its "
                        f"{deadline.seconds:g} s budget")
    evidence.append(f"decision: {provider}")

    instance_type = meta.instance_type if meta else None
    source = "metadata" if instance_type else None
    if instance_type is None:
        instance_type = _dmi_instance_type(provider, dmi)
        source = "dmi" if instance_type else None
    return {
        "provider": provider,
        "evidence": evidence,
        "region": meta.region if meta else None,
        "zone": meta.zone if meta else None,
        "instance_type": instance_type,
        "instance_type_source": source,
        "instance_id": meta.instance_id if meta else None,
        "metadata_reachable": reachable,
        "nics": nics,
    }


# --------------------------------------------------------------------------- module

MAX_TIMEOUT = 60.0  # a bigger budget would hold every play for minutes on hosts without metadata


def _url_problem(url: Any) -> str | None:
    """What makes URL unfit as a metadata base URL, or None."""
    if not isinstance(url, str) or any(not c.isprintable() or c.isspace() for c in url):
        return "control characters or spaces"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "not a URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "not an http:// or https:// URL with a host"
    if parts.username is not None or parts.query or parts.fragment:
        return "credentials, a query or a fragment"
    if port == 0:
        return "port 0"
    return None


def check_params(params: Mapping[str, Any]) -> str | None:
    """The first bad parameter as a one-line message naming it, or None."""
    timeout = params["metadata_timeout"]
    if not (isinstance(timeout, float) and math.isfinite(timeout)
            and 0 < timeout <= MAX_TIMEOUT):
        return (f"metadata_timeout must be a number of seconds in (0, {MAX_TIMEOUT:g}], "
                f"got {_show(timeout)}")
    for name in ("metadata_url", "metadata_url_ipv6"):
        url = params.get(name, AWS_IMDS_IPV6_URL)
        problem = _url_problem(url)
        if problem:
            return f"{name} must be a plain http(s) URL ({problem}), got {_show(url)}"
    version = params.get("metadata_ip_version", "auto")
    if version not in IP_VERSIONS:
        return f"metadata_ip_version must be one of auto, 4, 6, got {_show(version)}"
    root = params["root"]
    if not os.path.isdir(root):
        return f"root must be an existing directory, got {_show(root)}"
    return None


def ethtool_runner(binary: str, deadline: Deadline) -> Callable[[str], str | None]:
    """`ethtool -l NAME` bounded by ETHTOOL_TIMEOUT and the time left (killed past it)."""

    def run(name: str) -> str | None:
        wait = min(ETHTOOL_TIMEOUT, deadline.remaining())
        try:
            proc = subprocess.run([binary, "-l", name], capture_output=True, timeout=wait,
                                  check=False, env={"LC_ALL": "C"})
        except subprocess.TimeoutExpired as exc:
            raise EthtoolTimeout(name) from exc
        except OSError:
            return None
        if proc.returncode != 0:
            return None
        return proc.stdout[:MAX_SYSFS].decode("utf-8", errors="replace")

    return run


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "default": "/"},
            "metadata": {"type": "bool", "default": True},
            "metadata_url": {"type": "str", "default": "http://169.254.169.254"},
            "metadata_url_ipv6": {"type": "str", "default": AWS_IMDS_IPV6_URL},
            "metadata_ip_version": {"type": "str", "default": "auto"},  # check_params: one line
            "metadata_timeout": {"type": "float", "default": 2.0},
        },
        supports_check_mode=True,
    )
    problem = check_params(module.params)
    if problem:
        module.fail_json(msg=f"vpsnet_facts: {problem}")
    root = module.params["root"]
    deadline = Deadline(module.params["metadata_timeout"])

    probe = None
    if module.params["metadata"]:
        if HAS_REQUESTS:
            probe = MetadataProbe(module.params["metadata_url"], deadline.seconds or 2.0,
                                  base_url6=module.params["metadata_url_ipv6"],
                                  ip_version=module.params["metadata_ip_version"])
        else:
            module.warn("vpsnet_facts: python requests is missing; metadata not queried")

    ethtool = None
    ethtool_bin = module.get_bin_path("ethtool") if os.path.realpath(root) == "/" else None
    if ethtool_bin:
        ethtool = ethtool_runner(ethtool_bin, deadline)

    try:
        facts = detect(root, probe, ethtool, deadline)
    except Exception as exc:
        module.fail_json(msg=f"vpsnet_facts: detection failed ({type(exc).__name__}: "
                             f"{_show(str(exc))})")
    for warning in probe.warnings if probe else []:
        module.warn(warning)
    module.exit_json(changed=False, ansible_facts={"vpsnet_cloud": facts})


if __name__ == "__main__":
    main()
