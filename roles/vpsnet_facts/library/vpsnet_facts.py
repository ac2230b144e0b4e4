#!/usr/bin/python
# Copyright: vpsnet contributors
# GNU General Public License v2.0 only (see https://www.gnu.org/licenses/old-licenses/gpl-2.0.txt)
"""Detect the cloud a host runs in and describe its NICs (the vpsnet_cloud fact).

The detection logic is plain Python (``detect()``) so it can be unit-tested
against recorded sysfs/DMI/proc trees without Ansible; ``main()`` is the thin
AnsibleModule wrapper.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ansible.module_utils.basic import AnsibleModule

try:
    import requests

    HAS_REQUESTS = True
except ImportError:  # pragma: no cover - depends on the managed host
    requests = None  # type: ignore[assignment]
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
  - Metadata time is bounded by O(metadata_timeout) in total, so the module never hangs
    when metadata is unreachable.
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
  metadata_timeout:
    description: Total time budget in seconds for all metadata requests.
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
    "1d0f:ec21": (AWS, "ENA"),
    "1d0f:0ec2": (AWS, "ENA (pre-production)"),
    "1ae0:0042": (GCP, "gVNIC"),
    "1af4:1000": (None, "virtio-net (legacy)"),
    "1af4:1041": (None, "virtio-net (modern)"),
}
DRIVERS: dict[str, str | None] = {"ena": AWS, "gve": GCP, "virtio_net": None, "vif": None}

AWS_REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$")
AWS_ZONE_SUFFIX_RE = re.compile(r"^([a-z]|-[a-z]{3}-\d[a-z])$")  # us-east-1a, us-west-2-lax-1a
AWS_TYPE_RE = re.compile(r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")
GCP_ZONE_RE = re.compile(r"^([a-z]+-[a-z]+\d{1,2})-[a-z]$")
GCP_TYPE_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
AWS_INSTANCE_ID_RE = re.compile(r"^i-[0-9a-f]{1,17}$")
TOKEN_RE = re.compile(r"^[A-Za-z0-9_=+/.-]{1,512}$")
PCI_ADDR_RE = re.compile(r"^[0-9a-f]{4,}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")

CONNECT_TIMEOUT = 0.5
MAX_BODY = 64 * 1024
JOIN_GRACE = 0.2  # seconds past the deadline before a stuck request is abandoned
AWS_TOKEN_TTL = "60"


# --------------------------------------------------------------------------- sysfs


def _read(path: str) -> str | None:
    """First line of a sysfs/DMI file, stripped; None when absent or unreadable."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return None


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
    """Local evidence: (provider or None, text) in the order found."""

    items: list[tuple[str | None, str]] = field(default_factory=list)

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
            clues.add(AWS, f"dmi {name}='{value}' -> aws")
        elif value.startswith("Google"):
            clues.add(GCP, f"dmi {name}='{value}' -> gcp")
        elif name == "sys_vendor" and value in ("Xen", "QEMU", "Red Hat"):
            clues.add(None, f"dmi {name}='{value}' (hypervisor, no cloud implied)")
    product = dmi["product_name"]
    if product == "Google Compute Engine":
        clues.add(GCP, f"dmi product_name='{product}' -> gcp")
    elif product and dmi["sys_vendor"] == "Amazon EC2" and AWS_TYPE_RE.match(product):
        clues.add(AWS, f"dmi product_name='{product}' (EC2 instance type) -> aws")
    bios_version = dmi["bios_version"] or ""
    if "amazon" in bios_version.lower():
        clues.add(AWS, f"dmi bios_version='{bios_version}' -> aws")
    uuid = (dmi["product_uuid"] or "").lower()
    if uuid:
        if uuid.startswith("ec2"):
            clues.add(AWS, "dmi product_uuid starts with ec2 -> aws")
        elif _swapped_uuid(uuid).startswith("ec2"):
            clues.add(AWS, "dmi product_uuid starts with ec2 once byte-swapped -> aws")
    elif os.path.exists(os.path.join(base, "product_uuid")):
        clues.add(None, "dmi product_uuid unreadable (needs root)")
    hv_uuid = (_read(os.path.join(root, "sys/hypervisor/uuid")) or "").lower()
    if hv_uuid.startswith("ec2"):
        clues.add(AWS, "xen hypervisor uuid starts with ec2 -> aws")
    serial = dmi["product_serial"] or ""
    if serial.startswith("GoogleCloud-"):
        clues.add(GCP, "dmi product_serial starts with GoogleCloud- -> gcp")
    return dmi


# --------------------------------------------------------------------------- NICs


def parse_interrupts(text: str) -> dict[int, str]:
    """IRQ number -> action name(s) from /proc/interrupts."""
    lines = text.splitlines()
    if not lines:
        return {}
    ncpu = len(lines[0].split())
    result: dict[int, str] = {}
    for line in lines[1:]:
        head, sep, rest = line.partition(":")
        if not sep or not head.strip().isdigit():
            continue
        fields = rest.split()
        tail = fields[ncpu:]
        if len(tail) < 2:
            continue
        # chip, [hwirq,] [type,] name(s): the name is the last field
        result[int(head)] = tail[-1]
    return result


def parse_ethtool_channels(text: str) -> dict[str, int | None] | None:
    """The 'Pre-set maximums' block of `ethtool -l`."""
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
        value = value.strip()
        maxima[key] = int(value) if value.isdigit() else None
    if not maxima:
        return None
    return {k: maxima.get(k) for k in ("rx", "tx", "other", "combined")}


def _queue_irq(driver: str | None, ifname: str, devname: str, irq_name: str,
               restricted: bool) -> tuple[int | None, str] | None:
    """(queue, direction) when irq_name is one of this NIC's queue IRQs, else None.

    `restricted` means the candidate IRQs already belong to the NIC's PCI device
    (from msi_irqs), so the interface/device prefix need not match.
    """
    esc_if = re.escape(ifname)
    if driver == "ena":
        prefix = r".+" if restricted else esc_if
        match = re.fullmatch(prefix + r"-Tx-Rx-(\d+)", irq_name)
        return (int(match.group(1)), "rxtx") if match else None
    if driver == "virtio_net":
        prefix = r"virtio\d+" if restricted else re.escape(devname)
        match = re.fullmatch(prefix + r"-(input|output)\.(\d+)", irq_name)
        if match:
            return int(match.group(2)), "rx" if match.group(1) == "input" else "tx"
        if re.fullmatch(prefix + r"-virtqueues", irq_name):
            return None, "shared"
        return None
    if driver == "gve":
        match = re.fullmatch(r"gve-ntfy-blk(\d+)@pci:.*", irq_name) or re.fullmatch(
            r".+-ntfy-block\.(\d+)", irq_name
        )
        return (int(match.group(1)), "block") if match else None
    # Xen netfront and generic naming ("eth0-q0-tx", "eth0-TxRx-3", "eth0-rx-1")
    match = re.fullmatch(esc_if + r"-q(\d+)-(tx|rx)", irq_name)
    if match:
        return int(match.group(1)), match.group(2)
    match = re.fullmatch(esc_if + r"-(?:Tx-Rx|TxRx|txrx|rxtx)-(\d+)", irq_name)
    if match:
        return int(match.group(1)), "rxtx"
    match = re.fullmatch(esc_if + r"-(rx|tx)-(\d+)", irq_name)
    if match:
        return int(match.group(2)), match.group(1)
    match = re.fullmatch(esc_if + r"-(tx|rx)", irq_name)
    if match:
        return 0, match.group(1)
    return None


def _pci_device(device_path: str) -> str | None:
    """The PCI function that backs a net device (itself or, for virtio, its parent)."""
    path = device_path
    for _ in range(3):
        if PCI_ADDR_RE.match(os.path.basename(path)):
            return path
        path = os.path.dirname(path)
    return None


def read_nics(root: str, clues: Clues, interrupts: dict[int, str],
              ethtool: Callable[[str], str | None] | None) -> list[dict[str, Any]]:
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
            raw_numa = _read(os.path.join(pci, "numa_node"))
            if raw_numa and raw_numa.lstrip("-").isdigit() and int(raw_numa) >= 0:
                numa = int(raw_numa)
            try:
                msi = {int(n) for n in os.listdir(os.path.join(pci, "msi_irqs")) if n.isdigit()}
            except OSError:
                msi = None
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
        if ethtool is not None:
            out = ethtool(name)
            maximum = parse_ethtool_channels(out) if out else None

        irqs: list[dict[str, Any]] = []
        devname = os.path.basename(device)
        for irq, irq_name in sorted(interrupts.items()):
            if msi is not None and irq not in msi:
                continue
            found = _queue_irq(driver, name, devname, irq_name, msi is not None)
            if found is None:
                continue
            irqs.append({"irq": irq, "name": irq_name, "queue": found[0], "direction": found[1]})
        blocks = [i for i in irqs if i["direction"] == "block"]
        if blocks:
            # gve: notify blocks 0..n/2-1 serve tx queues, n/2..n-1 rx queues
            half = max(len(blocks) // 2, 1)
            for item in blocks:
                index = item["queue"]
                item["direction"] = "tx" if index < half else "rx"
                item["queue"] = index % half
        irqs.sort(key=lambda i: (i["queue"] if i["queue"] is not None else -1, i["direction"]))
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


@dataclass
class MetadataProbe:
    """Bounded metadata queries: every request shares one deadline."""

    base_url: str
    budget: float = 2.0
    evidence: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reachable: bool = False  # a service answered in its cloud's protocol (token / header)
    _deadline: float = 0.0
    _down: bool = False
    _session: Any = None

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        self._deadline = time.monotonic() + self.budget

    def _timeout(self) -> tuple[float, float] | None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0.05:
            return None
        return (min(CONNECT_TIMEOUT, remaining), remaining)

    def _request(self, cloud: str, method: str, path: str,
                 headers: dict[str, str]) -> Answer | None:
        """One request within the budget, or None (evidence says why).

        The body is streamed and the deadline checked between chunks, so a server
        that drips bytes cannot stretch the budget; bodies over MAX_BODY are refused.
        """
        if self._down:
            return None
        timeout = self._timeout()
        if timeout is None:
            self.evidence.append(f"metadata {cloud}: time budget spent before {method} {path}")
            return None
        if self._session is None:
            self._session = requests.Session()
            self._session.trust_env = False  # never a proxy for a link-local service
        try:
            with self._session.request(method, self.base_url + path, headers=headers,
                                       timeout=timeout, allow_redirects=False,
                                       stream=True) as response:
                body = b""
                for chunk in response.iter_content(1024):
                    body += chunk
                    if len(body) > MAX_BODY:
                        self._garbage(cloud, f"{path}: body over {MAX_BODY} bytes")
                        return None
                    if time.monotonic() > self._deadline:
                        self.evidence.append(f"metadata {cloud}: {method} {path} "
                                             "failed (budget spent while reading)")
                        return None
                text = body.decode("utf-8", errors="replace")
                return Answer(response.status_code, response.headers, text)
        except requests.exceptions.ConnectionError as exc:
            # refused, unroutable or ConnectTimeout: nobody answers at that address
            self._down = True
            kind = type(exc).__name__
            self.evidence.append(f"metadata {cloud}: {method} {path} failed ({kind})")
            return None
        except requests.exceptions.RequestException as exc:
            kind = type(exc).__name__
            self.evidence.append(f"metadata {cloud}: {method} {path} failed ({kind})")
            return None

    def run(self, order: list[str]) -> tuple[MetadataResult | None, list[str], bool]:
        """Ask the clouds in order; (result, evidence, reachable) within the budget.

        Socket timeouts bound each wait, but not a server that drips bytes or a
        slow name lookup, so the queries run in a worker thread that is abandoned
        (daemon) once the budget is spent: the caller never waits much longer.
        """
        box: list[MetadataResult] = []

        def work() -> None:
            for cloud in order:
                result = self.aws() if cloud == AWS else self.gcp()
                if result is not None:
                    box.append(result)
                    return

        worker = threading.Thread(target=work, name="vpsnet-facts-metadata", daemon=True)
        worker.start()
        worker.join(max(self._deadline - time.monotonic(), 0.0) + JOIN_GRACE)
        evidence = list(self.evidence)
        if worker.is_alive():
            evidence.append("metadata: gave up, time budget spent with a request still running")
            return None, evidence, False
        return (box[0] if box else None), evidence, self.reachable

    def _garbage(self, cloud: str, what: str) -> None:
        msg = f"metadata {cloud}: ignored a garbage answer ({what})"
        self.evidence.append(msg)
        self.warnings.append(f"vpsnet_facts: {msg}")

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
            self.evidence.append(f"metadata aws: IMDSv2 token refused (HTTP "
                                 f"{response.status_code}); IMDSv1 not tried by design")
            return None
        if self._looks_html(response) or not TOKEN_RE.match(token):
            self._garbage(AWS, "token is not a token")
            return None
        self.reachable = True
        response = self._request(AWS, "GET", "/latest/dynamic/instance-identity/document",
                                 {"X-aws-ec2-metadata-token": token})
        if response is None:
            return None
        if response.status_code != 200:
            self.evidence.append(f"metadata aws: identity document HTTP {response.status_code}")
            return None
        try:
            doc = json.loads(response.text)
        except ValueError:
            doc = None
        if not isinstance(doc, dict):
            self._garbage(AWS, "identity document is not JSON")
            return None
        region = doc.get("region")
        zone = doc.get("availabilityZone")
        itype = doc.get("instanceType")
        iid = doc.get("instanceId")
        if not (isinstance(region, str) and AWS_REGION_RE.match(region)):
            self._garbage(AWS, f"region {region!r}")
            return None
        if not (isinstance(zone, str) and zone.startswith(region)
                and AWS_ZONE_SUFFIX_RE.match(zone[len(region):])):
            self._garbage(AWS, f"zone {zone!r} for region {region}")
            return None
        if not (isinstance(itype, str) and AWS_TYPE_RE.match(itype)):
            self._garbage(AWS, f"instance type {itype!r}")
            itype = None
        if not (isinstance(iid, str) and AWS_INSTANCE_ID_RE.match(iid)):
            iid = None
        self.evidence.append(f"metadata aws: IMDSv2 identity document says region={region} "
                             f"zone={zone} instance_type={itype} -> aws")
        return MetadataResult(AWS, region, zone, itype, iid)

    def _gcp_get(self, key: str) -> str | None:
        response = self._request(GCP, "GET", f"/computeMetadata/v1/instance/{key}",
                                 {"Metadata-Flavor": "Google"})
        if response is None:
            return None
        if response.headers.get("Metadata-Flavor") != "Google":
            if response.status_code == 200:
                self._garbage(GCP, f"{key}: answer lacks the Metadata-Flavor: Google header")
            else:
                self.evidence.append(f"metadata gcp: not a GCP metadata service (HTTP "
                                     f"{response.status_code} without Metadata-Flavor: Google)")
            return None
        self.reachable = True
        if response.status_code != 200:
            self.evidence.append(f"metadata gcp: {key} HTTP {response.status_code}")
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
        match = GCP_ZONE_RE.match(zone)
        if not match:
            self._garbage(GCP, f"zone {zone_path!r}")
            return None
        itype = None
        type_path = self._gcp_get("machine-type")
        if type_path is not None:
            candidate = type_path.rsplit("/", 1)[-1]
            if GCP_TYPE_RE.match(candidate):
                itype = candidate
            else:
                self._garbage(GCP, f"machine-type {type_path!r}")
        iid = self._gcp_get("id")
        if iid is not None and not iid.isdigit():
            iid = None
        self.evidence.append(f"metadata gcp: zone={zone} machine_type={itype} -> gcp")
        return MetadataResult(GCP, match.group(1), zone, itype, iid)


# --------------------------------------------------------------------------- decision


def _dmi_instance_type(provider: str, dmi: dict[str, str | None]) -> str | None:
    product = dmi.get("product_name") or ""
    if provider == AWS and dmi.get("sys_vendor") == "Amazon EC2" and AWS_TYPE_RE.match(product):
        return product
    return None


def detect(root: str = "/", probe: MetadataProbe | None = None,
           ethtool: Callable[[str], str | None] | None = None) -> dict[str, Any]:
    """Build the vpsnet_cloud fact. `probe` None means no metadata queries."""
    clues = Clues()
    dmi = read_dmi(root, clues)
    interrupts = parse_interrupts(_read(os.path.join(root, "proc/interrupts")) or "")
    nics = read_nics(root, clues, interrupts, ethtool)

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
        meta, probe_evidence, reachable = probe.run(order)
        evidence.extend(probe_evidence)
    else:
        evidence.append("metadata: not queried (disabled)")

    provider = local
    if meta is not None:
        if local not in (UNKNOWN, meta.provider):
            evidence.append(f"metadata says {meta.provider}, overriding local clues ({local})")
        provider = meta.provider
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


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "root": {"type": "path", "default": "/"},
            "metadata": {"type": "bool", "default": True},
            "metadata_url": {"type": "str", "default": "http://169.254.169.254"},
            "metadata_timeout": {"type": "float", "default": 2.0},
        },
        supports_check_mode=True,
    )
    root = module.params["root"]
    timeout = module.params["metadata_timeout"]
    if timeout <= 0:
        module.fail_json(msg=f"metadata_timeout must be positive, got {timeout}")

    probe = None
    if module.params["metadata"]:
        if HAS_REQUESTS:
            probe = MetadataProbe(module.params["metadata_url"], timeout)
        else:
            module.warn("vpsnet_facts: python requests is missing; metadata not queried")

    ethtool = None
    ethtool_bin = module.get_bin_path("ethtool") if os.path.realpath(root) == "/" else None
    if ethtool_bin:

        def ethtool(name: str) -> str | None:
            rc, out, _ = module.run_command([ethtool_bin, "-l", name])
            return out if rc == 0 else None

    facts = detect(root, probe, ethtool)
    for warning in probe.warnings if probe else []:
        module.warn(warning)
    module.exit_json(changed=False, ansible_facts={"vpsnet_cloud": facts})


if __name__ == "__main__":
    main()
