"""Reading the firmware's identity (SMBIOS/DMI, the Xen hypervisor uuid): collection
only, no conclusions. Imported by vpsnet_facts' collection and its cloud checks."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ansible_collections.vpsnet.fleet.plugins.module_utils.vpsnet_bounds import read_attr

DMI_NAMES = ("sys_vendor", "product_name", "bios_vendor", "bios_version", "board_vendor",
             "chassis_asset_tag", "chassis_vendor", "product_uuid", "product_serial")
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class Dmi:
    """What the firmware says about the machine, as read."""

    present: bool  # /sys/class/dmi/id exists: the host has SMBIOS
    values: dict[str, str | None] = field(default_factory=dict)  # DMI_NAMES -> text or None
    uuid_file: bool = False  # product_uuid exists (unreadable without root)
    hypervisor_uuid: str = ""  # sys/hypervisor/uuid, lower case; "" when absent

    def text(self, name: str) -> str:
        """A DMI value, "" when absent."""
        return self.values.get(name) or ""


def read_dmi(root: str) -> Dmi:
    """The DMI identity files under ROOT; without SMBIOS nothing more is read."""
    base = os.path.join(root, "sys/class/dmi/id")
    values = {name: read_attr(os.path.join(base, name)) for name in DMI_NAMES}
    if not os.path.isdir(base):
        return Dmi(False, values)
    return Dmi(True, values,
               uuid_file=os.path.exists(os.path.join(base, "product_uuid")),
               hypervisor_uuid=(read_attr(os.path.join(root, "sys/hypervisor/uuid"))
                                or "").lower())


def swapped_uuid(uuid: str) -> str:
    """The SMBIOS UUID with its first three fields byte-swapped (little-endian firmware)."""
    parts = uuid.split("-")
    if len(parts) != 5:
        return uuid

    def swap(hexstr: str) -> str:
        return "".join(reversed([hexstr[i : i + 2] for i in range(0, len(hexstr), 2)]))

    return "-".join([swap(parts[0]), swap(parts[1]), swap(parts[2]), parts[3], parts[4]])
