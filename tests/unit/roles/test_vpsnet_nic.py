"""vpsnet_nic (roles/vpsnet_facts/module_utils): every driver's IRQ naming scheme,
from recorded /proc/interrupts text (fixtures/nic-irqs), the multi-NIC CPU policy
on 1-, 2-, 5- and 9-NIC shapes with one and two NUMA nodes, XPS/RPS and masks,
and the conf file format."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from vpsnet_facts_helpers import FIXTURES, REPO, load_role_file

nic = load_role_file("vpsnet_facts/module_utils/vpsnet_nic.py", "vpsnet_nic_under_test")
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


# --------------------------------------------------------------------------- CPU lists, masks


def test_masks_in_the_kernel_format_and_compared_by_value() -> None:
    assert nic.format_mask([2]) == "00000004"
    assert nic.format_mask([0, 33]) == "00000002,00000001"
    assert nic.format_mask([]) == "0"
    assert nic.parse_mask("00000000,00000004") == nic.parse_mask("4") == 4
    assert nic.parse_mask("00000002,00000001") == (1 << 33) | 1
    assert nic.parse_mask("-") is None and nic.parse_mask("0x4") is None
    assert nic.show_mask(12) == "c (CPUs 2-3)" and nic.show_mask(0) == "0 (CPUs none)"


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


# --------------------------------------------------------------------------- the policy

ONE_NODE = {"0": list(range(8))}
TWO_NODES = {"0": list(range(8)), "1": list(range(8, 16))}


def shape(count: int, queues: int, nodes: dict[str, list[int]]) -> list[dict[str, Any]]:
    """count NICs named eth0.. (alternating nodes when there are two), each with
    `queues` combined queue IRQs."""
    out = []
    for n in range(count):
        node = n % len(nodes)
        out.append({"name": f"eth{n}", "driver": "ena", "numa_node": node, "queues": queues,
                    "irqs": [{"irq": 100 * n + q, "name": f"eth{n}-Tx-Rx-{q}", "queue": q,
                              "direction": "rxtx"} for q in range(queues)]})
    return out


def plan(nics: list[dict[str, Any]], nodes: dict[str, list[int]], reserved: list[int] | None = None,
         cpu0: str = "auto") -> tuple[dict[str, dict[str, Any]], bool]:
    online = sorted(itertools.chain(*nodes.values()))
    out, avoided, errors = nic.plan_irqs(nics, online, nodes, reserved or [], cpu0)
    assert errors == []
    return {p["nic"]: p for p in out}, avoided


@pytest.mark.parametrize("nodes", [ONE_NODE, TWO_NODES], ids=["1node", "2nodes"])
@pytest.mark.parametrize("count", [1, 2, 5, 9])
@pytest.mark.parametrize("queues", [1, 2, 4])
def test_shapes(nodes: dict[str, list[int]], count: int, queues: int) -> None:
    nics = shape(count, queues, nodes)
    reserved = [7]
    out, avoided = plan(nics, nodes, reserved)
    assert avoided == (count > 1)  # 8 CPUs on node 0: auto keeps CPU 0 free with 2+ NICs
    for n in nics:
        p = out[n["name"]]
        local = set(nodes[str(n["numa_node"])]) - set(reserved) - ({0} if avoided else set())
        # node-local, reserved CPUs (and CPU 0 when avoided) honoured
        assert set(p["cpus"]) <= local and p["pool"] == sorted(local)
        assert len(p["cpus"]) == min(queues, len(local))
        # every queue IRQ gets a CPU of the NIC's range
        assert [i["irq"] for i in p["irqs"]] == [i["irq"] for i in n["irqs"]]
        assert all(i["cpu"] == p["cpus"][i["queue"] % len(p["cpus"])] for i in p["irqs"])
    for node in nodes:
        members = [out[n["name"]] for n in nics if str(n["numa_node"]) == node]
        pool = members[0]["pool"] if members else []
        taken = [c for m in members for c in m["cpus"]]
        if sum(min(queues, len(pool)) for _ in members) <= len(pool):
            assert len(taken) == len(set(taken)), "disjoint while CPUs last"
        else:  # shared round-robin: no CPU of the pool used twice before every one once
            counts = [taken.count(c) for c in pool]
            assert max(counts) - min(counts) <= 1, counts


def test_nine_nics_on_one_node_share_round_robin_in_name_order() -> None:
    out, avoided = plan(shape(9, 2, ONE_NODE), ONE_NODE)
    assert avoided
    assert [out[f"eth{n}"]["cpulist"] for n in range(9)] == [
        "1-2", "3-4", "5-6", "1,7", "2-3", "4-5", "6-7", "1-2", "3-4"]


def test_natural_name_order() -> None:
    nics = shape(11, 1, ONE_NODE)
    out, _ = plan(nics, ONE_NODE, cpu0="use")
    assert out["eth2"]["cpus"] == [2] and out["eth10"]["cpus"] == [2]  # eth10 after eth9, wraps


@pytest.mark.parametrize(
    ("cpus", "count", "mode", "avoided"),
    [
        (2, 2, "auto", False),  # a 2-vCPU VM keeps both CPUs
        (4, 2, "auto", True),
        (8, 1, "auto", False),  # one NIC: CPU 0 is fine
        (8, 1, "avoid", True),
        (8, 3, "use", False),
    ],
)
def test_cpu0_rule(cpus: int, count: int, mode: str, avoided: bool) -> None:
    nodes = {"0": list(range(cpus))}
    out, got = plan(shape(count, 2, nodes), nodes, cpu0=mode)
    assert got == avoided
    used = {c for p in out.values() for c in p["cpus"]}
    assert (0 in used) == (not avoided)


def test_cpu0_avoid_that_leaves_nothing_is_an_error() -> None:
    nics = shape(1, 2, {"0": [0]})
    _, _, errors = nic.plan_irqs(nics, [0], {"0": [0]}, [], "avoid")
    assert errors == ["NIC eth0: no CPU left for its queue IRQs: NUMA-local CPUs '0' minus "
                      "vpsnet_tune_reserved_cpus '' minus CPU 0 (vpsnet_tune_irq_cpu0=avoid)"]


def test_overlapping_pools_stay_disjoint_while_cpus_last() -> None:
    """A NIC without a NUMA node may use every CPU: it still takes CPUs no NIC has."""
    nics = shape(2, 2, TWO_NODES)
    nics[0]["numa_node"] = None
    out, _ = plan(nics, TWO_NODES, cpu0="use")
    assert out["eth0"]["cpus"] == [0, 1] and out["eth1"]["cpus"] == [8, 9]


def test_xps_per_tx_queue_on_its_irq_cpu() -> None:
    assert nic.xps_plan([2, 3], 4) == {0: 2, 1: 3, 2: 2, 3: 3}
    assert nic.xps_plan([2, 3], 1) == {0: 2}  # one TX queue too: its IRQ's CPU
    assert nic.xps_plan([], 4) == {} and nic.xps_plan([2, 3], 0) == {}


def test_rps_off_the_irq_cpus_and_their_smt_siblings() -> None:
    pool = list(range(8))
    siblings = {c: [c % 4, c % 4 + 4] for c in range(8)}  # 0/4, 1/5, 2/6, 3/7
    assert nic.rps_plan(pool, [0, 1], siblings, 2) == [2, 3, 6, 7]
    assert nic.rps_plan(pool, [0, 1], {}, 2) == [2, 3, 4, 5, 6, 7]
    assert nic.rps_plan([0, 1], [0, 1], siblings, 2) == []  # no more CPUs than RX queues: off


# --------------------------------------------------------------------------- conf


def test_old_conf_files_read_with_irq_only_defaults() -> None:
    options, nics = nic.parse_conf("# old\neth0 0-1\nens5 2,3\n")
    assert nics == {"eth0": [0, 1], "ens5": [2, 3]}
    assert options == {"xps": "off", "rps": "off", "cpu0": "use", "reserved": "none"}


def test_conf_round_trip() -> None:
    options = {"xps": "on", "rps": "on", "cpu0": "avoid", "reserved": "7"}
    text = nic.format_conf(options, {"eth10": [5], "eth2": [1, 2]})
    assert text == ("option xps on\noption rps on\noption cpu0 avoid\noption reserved 7\n"
                    "eth2 1-2\neth10 5\n")
    assert nic.parse_conf(text) == (options, {"eth2": [1, 2], "eth10": [5]})
    assert nic.reserved_of(options) == [7]


@pytest.mark.parametrize(("line", "needle"), [
    ("option xps maybe", "line 1: option xps 'maybe' is not one of on, off"),
    ("option turbo on", "line 1: 'option turbo on' is not a known option"),
    ("option reserved x", "line 1: reserved 'x' is not a CPU list"),
    ("eth0", "line 1: 'eth0' is not `IFNAME CPULIST`"),
    ("eth0 zero", "line 1: 'zero' is not a CPU list"),
])
def test_bad_conf_lines_named(line: str, needle: str) -> None:
    with pytest.raises(nic.ConfError) as err:
        nic.parse_conf(line + "\n")
    assert str(err.value) == needle


def test_stdlib_only_and_one_copy() -> None:
    """The role ships files/vpsnet_nic.py as a link to the facts role's module_utils copy."""
    link = REPO / "roles/vpsnet_tune/files/vpsnet_nic.py"
    assert link.is_symlink() and link.resolve() == Path(nic.__file__).resolve()
    source = Path(nic.__file__).read_text()
    assert "import ansible" not in source and "from ansible" not in source


def test_rps_counts_only_the_irqs_of_queues_in_use() -> None:
    """virtio_net after `ethtool -L combined 1` keeps the vectors of queue pairs
    1-3: they carry nothing, so RPS may use their CPUs (seen on 6.1 and 6.12)."""
    irqs = [{"irq": 30 + q, "queue": q, "direction": d} for q in range(4) for d in ("rx", "tx")]
    assert nic.irq_cpus([0, 1], irqs) == [0, 1]
    assert nic.irq_cpus([0, 1], irqs, 1) == [0]
    assert nic.rps_plan([0, 1], nic.irq_cpus([0, 1], irqs, 1), {}, 1) == [1]
    assert nic.rps_plan([0, 1], nic.irq_cpus([0, 1], irqs, 2), {}, 2) == []
