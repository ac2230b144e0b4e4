"""vpsnet_nic (plugins/module_utils): every driver's IRQ naming scheme,
from recorded /proc/interrupts text (fixtures/nic-irqs), /proc/interrupts read
loosely and as the facts module reads it, and CPU lists. The plan built on it:
test_vpsnet_irqplan.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.vpsnet.fleet.plugins.module_utils import vpsnet_nic as nic
from testlib.vpsnet_facts_helpers import FIXTURES, REPO

IRQS = FIXTURES / "nic-irqs"


def table(name: str) -> dict[int, str]:
    return nic.parse_interrupts((IRQS / name).read_text())


def found(driver: str, ifname: str, devname: str, name: str,
          msi: set[int] | None) -> list[tuple[int, int | None, str]]:
    return [(i["irq"], i["queue"], i["direction"])
            for i in nic.nic_queue_irqs(driver, ifname, devname, table(name), msi)]


# --------------------------------------------------------------------------- names


def test_ena_queues_not_the_management_irq() -> None:
    want = [(25, 0, "rxtx"), (26, 1, "rxtx"), (27, 2, "rxtx"), (28, 3, "rxtx")]
    assert found("ena", "ens5", "0000:00:05.0", "ena.interrupts", None) == want
    # msi_irqs of the PCI function: the interface part need not match (renamed NIC)
    assert found("ena", "eth9", "0000:00:05.0", "ena.interrupts", set(range(24, 29))) == want
    assert nic.queue_irq("ena", "ens5", "x", "ena-mgmnt@pci:0000:00:05.0", True) is None


def test_virtio_per_queue_vectors_config_is_no_queue() -> None:
    want = [(25, 0, "rx"), (26, 0, "tx"), (27, 1, "rx"), (28, 1, "tx"),
            (29, 2, "rx"), (30, 2, "tx"), (31, 3, "rx"), (32, 3, "tx")]
    assert found("virtio_net", "ens4", "virtio1", "virtio.interrupts", None) == want
    assert found("virtio_net", "ens4", "virtio1", "virtio.interrupts", set(range(24, 33))) == want


def test_virtio_shared_virtqueues_vector() -> None:
    shared = [(34, None, "shared")]
    assert found("virtio_net", "ens6", "virtio2", "virtio.interrupts", None) == shared
    assert nic.queue_irq("virtio_net", "ens6", "virtio2", "virtio2-config", False) is None


@pytest.mark.parametrize("fixture", ["gve-6.1.interrupts", "gve-6.12.interrupts"])
@pytest.mark.parametrize("restricted", [True, False])
def test_gve_both_naming_schemes(fixture: str, restricted: bool) -> None:
    """Before 6.3 `eth%d-ntfy-block.<i>` (named before register_netdev), after it
    `gve-ntfy-blk<i>@pci:<bdf>`; blocks 0..n/2-1 serve tx, the rest rx; mgmnt is no queue."""
    msi = set(range(33, 38)) if restricted else None
    assert found("gve", "ens4", "0000:00:04.0", fixture, msi) == [
        (35, 0, "rx"), (33, 0, "tx"), (36, 1, "rx"), (34, 1, "tx")]


def test_gve_names_of_another_device_are_not_ours() -> None:
    assert found("gve", "ens4", "0000:00:05.0", "gve-6.12.interrupts", None) == []
    assert nic.queue_irq("gve", "ens4", "0000:00:04.0", "ens4-ntfy-block.2", False) == (2, "block")
    assert nic.queue_irq("gve", "ens4", "0000:00:04.0", "eth%d-mgmnt", True) is None
    assert nic.queue_irq("gve", "ens4", "0000:00:04.0", "gve-mgmnt@pci:0000:00:04.0", True) is None


@pytest.mark.parametrize("fixture", ["idpf-msix-index.interrupts", "idpf-qvector-index.interrupts"])
def test_idpf_vectors_numbered_by_rank(fixture: str) -> None:
    """idpf-<if>-TxRx-<v>, -Tx-<v>, -Rx-<v>: <v> was the MSI-X index (mailbox first),
    now the q_vector index; either way q_vector i serves queue i."""
    want = [(68, 0, "rxtx"), (69, 1, "rxtx"), (70, 2, "rxtx"), (71, 3, "tx")]
    assert found("idpf", "eth1", "0000:1a:00.0", fixture, None) == want
    assert found("idpf", "eth1", "0000:1a:00.0", fixture, set(range(67, 72))) == want
    assert nic.queue_irq("idpf", "eth1", "x", "idpf-Mailbox-0", True) is None


def test_xen_and_generic_names() -> None:
    assert found("vif", "eth0", "vif-0", "xen.interrupts", None) == [
        (49, 0, "rx"), (48, 0, "tx"), (51, 1, "rx"), (50, 1, "tx")]
    for name, want in [("eth0-TxRx-3", (3, "rxtx")), ("eth0-rx-1", (1, "rx")),
                       ("eth0-tx", (0, "tx")), ("eth1-tx", None), ("eth0-Tx-Rx-²", None)]:
        assert nic.queue_irq(None, "eth0", "x", name, False) == want, name


def test_interrupts_lines_without_a_number_are_skipped() -> None:
    assert 0 in table("ena.interrupts") and "NMI" not in str(list(table("ena.interrupts")))
    assert nic.parse_interrupts("CPU0\n ²7: 1 PCI-MSI x\n 99999999999: 1 y\n") == {}



def test_interrupts_as_the_facts_module_reads_them() -> None:
    """per_cpu_columns skips the count columns and wants a chip and a name after
    them; max_irq leaves out larger IRQ numbers."""
    text = ("   CPU0  CPU1\n 24:  1  2  PCI-MSIX  ens5-Tx-Rx-0\n 25:  1  2\n"
            " 26:  1  2  ens5-Tx-Rx-1\n 2147483648:  1  2  PCI-MSIX  big\n")
    assert nic.parse_interrupts(text) == {24: "ens5-Tx-Rx-0", 25: "2", 26: "ens5-Tx-Rx-1",
                                          2147483648: "big"}
    assert nic.parse_interrupts(text, per_cpu_columns=True, max_irq=2**31 - 1) == {
        24: "ens5-Tx-Rx-0"}
    assert nic.parse_interrupts("", per_cpu_columns=True) == {}


# --------------------------------------------------------------------------- CPU lists


def test_cpulists() -> None:
    assert nic.parse_cpulist("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]
    assert nic.format_cpulist([11, 0, 1, 2, 3, 8, 10]) == "0-3,8,10-11"
    for bad in ("a", "1-", "0x3", "²", "9000"):
        with pytest.raises(ValueError):
            nic.parse_cpulist(bad)


def test_siblings_from_one_grep() -> None:
    text = ("cpu0/topology/thread_siblings_list:0,4\ncpu4/topology/thread_siblings_list:0,4\n"
            "cpu1/topology/thread_siblings_list:1-2\ngarbage\n")
    assert nic.parse_siblings(text) == {0: [0, 4], 4: [0, 4], 1: [1, 2]}



def test_stdlib_only_and_one_copy() -> None:
    """The role ships files/vpsnet_nic.py as a link to the collection's module_utils copy."""
    link = REPO / "roles/vpsnet_tune/files/vpsnet_nic.py"
    assert link.is_symlink() and link.resolve() == Path(nic.__file__).resolve()
    source = Path(nic.__file__).read_text()
    assert "import ansible" not in source and "from ansible" not in source

