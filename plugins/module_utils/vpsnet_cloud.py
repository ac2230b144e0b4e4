"""Deciding the cloud as cloud-init's ds-identify does: an ordered list of small
per-cloud checks over the facts collected once (each returns its clues as evidence),
then the metadata service's word. Imported by vpsnet_facts' detection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ansible_collections.vpsnet.fleet.plugins.module_utils.vpsnet_bounds import show
from ansible_collections.vpsnet.fleet.plugins.module_utils.vpsnet_dmi import (
    UUID_RE,
    Dmi,
    swapped_uuid,
)
from ansible_collections.vpsnet.fleet.plugins.module_utils.vpsnet_identity import (
    AWS,
    AWS_TYPE_RE,
    GCP,
    UNKNOWN,
    MetadataResult,
)
from ansible_collections.vpsnet.fleet.plugins.module_utils.vpsnet_inventory import Inventory

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
VENDOR_FIELDS = ("sys_vendor", "bios_vendor", "board_vendor", "chassis_vendor",
                 "chassis_asset_tag")
HYPERVISORS = ("Xen", "QEMU", "Red Hat")

# Evidence lists the clues in the order the facts were collected, whichever check found
# them: the DMI files in this order, then each NIC (PCI id, driver, ethtool), then the
# product_uuid's verdict (it weighs the clues before it).
DMI_ORDER = ("smbios", "sys_vendor", "bios_vendor", "board_vendor", "chassis_vendor",
             "chassis_asset_tag", "product_name", "bios_version", "product_uuid",
             "hypervisor_uuid", "product_serial")
NIC_ORDER = ("pci", "driver", "ethtool")
UUID_AT = 2


def dmi_at(name: str) -> tuple[int, ...]:
    return (0, DMI_ORDER.index(name))


def nic_at(index: int, what: str) -> tuple[int, ...]:
    return (1, index, NIC_ORDER.index(what))


@dataclass
class Host:
    """Every fact the checks look at, read once (vpsnet_detect.collect)."""

    dmi: Dmi
    inventory: Inventory


@dataclass(frozen=True)
class Clue:
    at: tuple[int, ...]  # where in the collected facts: the evidence order
    provider: str | None  # None: for the record, it counts for no cloud
    text: str


@dataclass
class Conclusion:
    """One cloud check's finding: its clues, and what only metadata may confirm."""

    provider: str
    clues: list[Clue] = field(default_factory=list)
    pending: str | None = None  # a clue that counts only once metadata says this cloud

    @property
    def score(self) -> int:
        return sum(1 for clue in self.clues if clue.provider == self.provider)


def _vendor_clues(dmi: Dmi, provider: str, says: Callable[[str], bool]) -> list[Clue]:
    return [Clue(dmi_at(name), provider, f"dmi {name}={show(value)} -> {provider}")
            for name in VENDOR_FIELDS if (value := dmi.values[name]) and says(value)]


def _nic_clues(host: Host, provider: str | None) -> list[Clue]:
    """What each NIC's PCI id and driver say for PROVIDER (None: the generic ones)."""
    clues = []
    for index, nic in enumerate(host.inventory.nics):
        name, pci_id, driver = nic["name"], nic["pci_id"], nic["driver"]
        if pci_id in PCI_IDS and PCI_IDS[pci_id][0] == provider:
            suffix = f"-> {provider}" if provider else "(generic KVM NIC, no cloud implied)"
            clues.append(Clue(nic_at(index, "pci"), provider,
                              f"pci {name} {pci_id} {PCI_IDS[pci_id][1]} {suffix}"))
        if driver in DRIVERS and DRIVERS[driver] == provider:
            suffix = f"-> {provider}" if provider else "(no cloud implied)"
            clues.append(Clue(nic_at(index, "driver"), provider,
                              f"driver {name}={driver} {suffix}"))
    return clues


def ec2_instance_type(dmi: Dmi) -> str | None:
    """product_name when it is an EC2 instance type on Amazon EC2 firmware (Nitro)."""
    product: str = dmi.text("product_name")
    if product and dmi.values["sys_vendor"] == "Amazon EC2" and AWS_TYPE_RE.fullmatch(product):
        return product
    return None


def _ec2_hypervisor(dmi: Dmi) -> bool:
    """The Xen toolstack's uuid starts with ec2 (ds-identify takes it alone as AWS)."""
    return bool(UUID_RE.fullmatch(dmi.hypervisor_uuid)) and dmi.hypervisor_uuid.startswith("ec2")


def _ec2_uuid(dmi: Dmi) -> str | None:
    """How the product_uuid starts with ec2, if it is a UUID that does."""
    uuid = dmi.text("product_uuid").lower()
    if not UUID_RE.fullmatch(uuid):
        return None
    if uuid.startswith("ec2"):
        return "dmi product_uuid starts with ec2"
    if swapped_uuid(uuid).startswith("ec2"):
        return "dmi product_uuid starts with ec2 once byte-swapped"
    return None


def _weigh_ec2_uuid(dmi: Dmi, found: Conclusion) -> Conclusion:
    """Count an ec2 product_uuid only when something else says AWS too (a random UUID
    starts with ec2 once in 4096). As cloud-init's ds-identify: the uuid equal to the
    serial, or the Xen hypervisor uuid starting with ec2; or any other AWS clue found
    (DMI vendor, bios, ENA PCI id or driver)."""
    uuid_clue = _ec2_uuid(dmi)
    if uuid_clue is None:
        return found
    others = found.score
    if dmi.text("product_serial").lower() == dmi.text("product_uuid").lower():
        why = "product_serial equals it"  # ds-identify: on EC2 Xen the serial is the uuid
    elif _ec2_hypervisor(dmi):
        why = "xen hypervisor uuid starts with ec2"
    elif others:
        why = f"{others} other aws clue(s)"
    else:
        found.clues.append(Clue(
            (UUID_AT, 0), None, f"{uuid_clue}, uncorroborated (no equal product_serial, no ec2 "
                                "hypervisor uuid, no other aws clue): not counted"))
        found.pending = "the ec2 product_uuid"
        return found
    found.clues.append(Clue((UUID_AT, 0), AWS, f"{uuid_clue} -> aws"))
    found.clues.append(Clue((UUID_AT, 1), None, f"dmi product_uuid corroborated: {why}"))
    return found


def aws_check(host: Host) -> Conclusion:
    dmi = host.dmi
    clues = _vendor_clues(dmi, AWS, lambda value: value == "Amazon EC2")
    itype = ec2_instance_type(dmi)
    if itype:
        clues.append(Clue(dmi_at("product_name"), AWS,
                          f"dmi product_name={show(itype)} (EC2 instance type) -> aws"))
    bios_version = dmi.text("bios_version")
    if "amazon" in bios_version.lower():
        clues.append(Clue(dmi_at("bios_version"), AWS,
                          f"dmi bios_version={show(bios_version)} -> aws"))
    if _ec2_hypervisor(dmi):
        clues.append(Clue(dmi_at("hypervisor_uuid"), AWS,
                          "xen hypervisor uuid starts with ec2 -> aws"))
    clues += _nic_clues(host, AWS)
    return _weigh_ec2_uuid(dmi, Conclusion(AWS, clues))


def gcp_check(host: Host) -> Conclusion:
    dmi = host.dmi
    clues = _vendor_clues(dmi, GCP, lambda value: value.startswith("Google"))
    product = dmi.values["product_name"]
    if product == "Google Compute Engine":
        clues.append(Clue(dmi_at("product_name"), GCP, f"dmi product_name={show(product)} -> gcp"))
    if dmi.text("product_serial").startswith("GoogleCloud-"):
        clues.append(Clue(dmi_at("product_serial"), GCP,
                          "dmi product_serial starts with GoogleCloud- -> gcp"))
    clues += _nic_clues(host, GCP)
    return Conclusion(GCP, clues)


# In this order; it is also the order metadata is asked in when the clues do not decide.
CHECKS: tuple[Callable[[Host], Conclusion], ...] = (aws_check, gcp_check)


def neutral_clues(host: Host) -> list[Clue]:
    """For the record: what implies no cloud (a hypervisor, a generic NIC), what could
    not be read, and where `ethtool` was skipped."""
    dmi = host.dmi
    clues = []
    if not dmi.present:
        clues.append(Clue(dmi_at("smbios"), None, "dmi: /sys/class/dmi/id absent (no SMBIOS)"))
    elif dmi.values["sys_vendor"] in HYPERVISORS:
        clues.append(Clue(dmi_at("sys_vendor"), None, f"dmi sys_vendor="
                          f"{show(dmi.values['sys_vendor'])} (hypervisor, no cloud implied)"))
    uuid = dmi.text("product_uuid").lower()
    if uuid and not UUID_RE.fullmatch(uuid):
        clues.append(Clue(dmi_at("product_uuid"), None,
                          f"dmi product_uuid {show(uuid)} is not a UUID (ignored)"))
    elif not uuid and dmi.uuid_file:
        clues.append(Clue(dmi_at("product_uuid"), None, "dmi product_uuid unreadable (needs root)"))
    clues += _nic_clues(host, None)
    clues += [Clue(nic_at(index, "ethtool"), None, text)
              for index, text in host.inventory.notes.items()]
    return clues


@dataclass
class Verdict:
    """What the local facts say: a provider (or unknown), each check's finding, evidence."""

    provider: str
    conclusions: list[Conclusion]
    evidence: list[str]

    def metadata_order(self) -> list[str]:
        """The clouds to ask: the one the clues chose, else every check's in order."""
        if self.provider != UNKNOWN:
            return [self.provider]
        return [found.provider for found in self.conclusions]


def decide_locally(host: Host) -> Verdict:
    """Run every check: the cloud with the most clues wins, a tie is unknown."""
    conclusions = [check(host) for check in CHECKS]
    clues = neutral_clues(host) + [clue for found in conclusions for clue in found.clues]
    evidence = [clue.text for clue in sorted(clues, key=lambda clue: clue.at)]
    best = max(found.score for found in conclusions)
    winners = [found.provider for found in conclusions if found.score == best]
    provider = winners[0] if best and len(winners) == 1 else UNKNOWN
    if sum(1 for found in conclusions if found.score) > 1:
        evidence.append("local clues conflict: " + " ".join(
            f"{found.provider}={found.score}" for found in conclusions))
    return Verdict(provider, conclusions, evidence)


def conclude(verdict: Verdict, meta: MetadataResult | None) -> tuple[str, list[str]]:
    """The provider once metadata has answered (its word wins), and the lines saying so."""
    if meta is None:
        return verdict.provider, []
    lines = []
    if verdict.provider not in (UNKNOWN, meta.provider):
        lines.append(f"metadata says {meta.provider}, overriding local clues "
                     f"({verdict.provider})")
    lines += [f"metadata {meta.provider} corroborates {found.pending}"
              for found in verdict.conclusions
              if found.provider == meta.provider and found.pending]
    return meta.provider, lines
