"""vpsnet_facts: cloud and NIC detection from recorded sysfs/DMI/proc trees (no metadata)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ansible_collections.vpsnet.fleet.plugins.module_utils import vpsnet_inventory as inventory
from testlib.vpsnet_facts_helpers import FIXTURES, recorded_ethtool


def irq_table(nic: dict) -> list[tuple[int, str, int | None, str]]:
    return [(i["irq"], i["name"], i["queue"], i["direction"]) for i in nic["irqs"]]


def test_aws_nitro_ena(vf):
    root = FIXTURES / "aws-nitro-ena"
    facts = vf.detect(str(root), None, recorded_ethtool(root))
    assert facts["provider"] == "aws"
    assert facts["instance_type"] == "m5.large"
    assert facts["instance_type_source"] == "dmi"
    assert facts["region"] is None and facts["zone"] is None
    assert facts["metadata_reachable"] is False
    assert "dmi sys_vendor='Amazon EC2' -> aws" in facts["evidence"]
    assert "pci ens5 1d0f:ec20 ENA -> aws" in facts["evidence"]
    assert "driver ens5=ena -> aws" in facts["evidence"]
    assert "dmi product_uuid starts with ec2 -> aws" in facts["evidence"]
    assert facts["evidence"][-1] == "decision: aws"
    # lo has no device and is skipped; ens6 is a second ENI
    assert [n["name"] for n in facts["nics"]] == ["ens5", "ens6"]
    nic, second = facts["nics"]
    assert nic["driver"] == "ena"
    assert nic["pci_id"] == "1d0f:ec20"
    assert nic["pci_address"] == "0000:00:05.0"
    assert nic["numa_node"] is None  # -1 in sysfs
    assert nic["queues"] == {"current": {"rx": 2, "tx": 2},
                             "max": {"rx": None, "tx": None, "other": None, "combined": 2}}
    # the management IRQ and the NVMe IRQs are not queue IRQs
    assert irq_table(nic) == [(27, "ens5-Tx-Rx-0", 0, "rxtx"), (28, "ens5-Tx-Rx-1", 1, "rxtx")]
    # each ENI gets only the IRQs of its own PCI function
    assert second["pci_address"] == "0000:00:06.0"
    assert irq_table(second) == [(30, "ens6-Tx-Rx-0", 0, "rxtx"), (31, "ens6-Tx-Rx-1", 1, "rxtx")]
    assert second["queues"]["max"] is None  # no recorded ethtool output for ens6


def test_aws_xen(vf):
    facts = vf.detect(str(FIXTURES / "aws-xen"))
    assert facts["provider"] == "aws"
    assert "dmi product_uuid starts with ec2 -> aws" in facts["evidence"]
    assert "xen hypervisor uuid starts with ec2 -> aws" in facts["evidence"]
    assert "dmi sys_vendor='Xen' (hypervisor, no cloud implied)" in facts["evidence"]
    # product_name is "HVM domU" on Xen: no instance type from DMI
    assert facts["instance_type"] is None
    [nic] = facts["nics"]
    assert (nic["name"], nic["driver"], nic["pci_id"], nic["numa_node"]) == ("eth0", "vif", None,
                                                                             None)
    assert nic["queues"]["current"] == {"rx": 1, "tx": 1}
    assert nic["queues"]["max"] is None  # no ethtool given
    assert irq_table(nic) == [(55, "eth0-rx", 0, "rx"), (54, "eth0-tx", 0, "tx")]


def test_gcp_virtio(vf):
    facts = vf.detect(str(FIXTURES / "gcp-virtio"))
    assert facts["provider"] == "gcp"
    assert "dmi product_name='Google Compute Engine' -> gcp" in facts["evidence"]
    assert ("pci ens4 1af4:1041 virtio-net (modern) (generic KVM NIC, no cloud implied)"
            in facts["evidence"])
    assert facts["instance_type"] is None  # DMI says only "Google Compute Engine"
    [nic] = facts["nics"]
    assert nic["driver"] == "virtio_net"
    # the PCI id comes from the virtio device's PCI parent, not the virtio bus ids
    assert nic["pci_id"] == "1af4:1041"
    assert nic["pci_address"] == "0000:00:04.0"
    assert nic["numa_node"] == 0
    # virtio1-config is not a queue IRQ; virtio0-* belong to the SCSI controller
    assert irq_table(nic) == [
        (28, "virtio1-input.0", 0, "rx"),
        (29, "virtio1-output.0", 0, "tx"),
        (30, "virtio1-input.1", 1, "rx"),
        (31, "virtio1-output.1", 1, "tx"),
    ]


def test_gcp_gvnic(vf):
    facts = vf.detect(str(FIXTURES / "gcp-gvnic"))
    assert facts["provider"] == "gcp"
    assert "pci ens4 1ae0:0042 gVNIC -> gcp" in facts["evidence"]
    assert "driver ens4=gve -> gcp" in facts["evidence"]
    [nic] = facts["nics"]
    assert (nic["driver"], nic["pci_id"], nic["numa_node"]) == ("gve", "1ae0:0042", 0)
    # notify blocks: first half serve tx queues, second half rx; gve-mgmnt excluded
    assert irq_table(nic) == [
        (35, "gve-ntfy-blk2@pci:0000:00:04.0", 0, "rx"),
        (33, "gve-ntfy-blk0@pci:0000:00:04.0", 0, "tx"),
        (36, "gve-ntfy-blk3@pci:0000:00:04.0", 1, "rx"),
        (34, "gve-ntfy-blk1@pci:0000:00:04.0", 1, "tx"),
    ]


def test_kvm_plain_is_unknown(vf):
    facts = vf.detect(str(FIXTURES / "kvm-plain"))
    assert facts["provider"] == "unknown"
    assert facts["instance_type"] is None
    assert "dmi sys_vendor='QEMU' (hypervisor, no cloud implied)" in facts["evidence"]
    assert [n["name"] for n in facts["nics"]] == ["enp1s0"]  # docker0 and lo skipped
    nic = facts["nics"][0]
    assert nic["numa_node"] is None
    assert [i["irq"] for i in nic["irqs"]] == [25, 26, 27, 28]


def test_byte_swapped_ec2_uuid(vf, tmp_path: Path):
    """Some firmware reports the SMBIOS UUID little-endian (cloud-init checks both forms);
    on EC2 Xen the serial repeats the uuid, which corroborates it (ds-identify)."""
    root = tmp_path / "swapped"
    shutil.copytree(FIXTURES / "kvm-plain", root, symlinks=True)
    dmi = root / "sys/class/dmi/id"
    (dmi / "sys_vendor").write_text("Xen\n")
    (dmi / "product_uuid").write_text("45E12AEC-DCD1-B213-94ED-012345ABCDEF\n")
    (dmi / "product_serial").write_text("45e12aec-dcd1-b213-94ed-012345abcdef\n")
    facts = vf.detect(str(root))
    assert facts["provider"] == "aws"
    assert "dmi product_uuid starts with ec2 once byte-swapped -> aws" in facts["evidence"]
    assert "dmi product_uuid corroborated: product_serial equals it" in facts["evidence"]


def test_not_a_cloud_when_nothing_is_there(vf, tmp_path: Path):
    facts = vf.detect(str(tmp_path))
    assert facts["provider"] == "unknown"
    assert facts["nics"] == []
    assert "dmi: /sys/class/dmi/id absent (no SMBIOS)" in facts["evidence"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Channel parameters for eth0:\nPre-set maximums:\nRX:\t\t0\nTX:\t\t0\nOther:\t\t1\n"
         "Combined:\t8\nCurrent hardware settings:\nRX:\t\t0\nTX:\t\t0\nOther:\t\t1\n"
         "Combined:\t4\n", {"rx": 0, "tx": 0, "other": 1, "combined": 8}),
        ("netlink error: Operation not supported\n", None),
    ],
)
def test_parse_ethtool_channels(text, expected):
    assert inventory.parse_ethtool_channels(text) == expected


def test_parse_interrupts():
    text = (FIXTURES / "aws-nitro-ena/proc/interrupts").read_text()
    table = inventory.parse_interrupts(text)
    assert table[26] == "ena-mgmnt@pci:0000:00:05.0"
    assert table[27] == "ens5-Tx-Rx-0"
    assert "NMI" not in table and all(isinstance(k, int) for k in table)
