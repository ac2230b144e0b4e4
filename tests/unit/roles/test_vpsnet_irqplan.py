"""vpsnet_irqplan (plugins/module_utils; roles/vpsnet_tune/files links to it): the
multi-NIC CPU policy on 1-, 2-, 5- and 9-NIC shapes with one and two NUMA nodes,
XPS/RPS and masks, and the conf file format. The NIC inventory it builds on:
test_vpsnet_nic.py."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.vpsnet.fleet.plugins.module_utils import vpsnet_irqplan as rules

# --------------------------------------------------------------------------- masks


def test_masks_in_the_kernel_format_and_compared_by_value() -> None:
    assert rules.format_mask([2]) == "00000004"
    assert rules.format_mask([0, 33]) == "00000002,00000001"
    assert rules.format_mask([]) == "0"
    assert rules.parse_mask("00000000,00000004") == rules.parse_mask("4") == 4
    assert rules.parse_mask("00000002,00000001") == (1 << 33) | 1
    assert rules.parse_mask("-") is None and rules.parse_mask("0x4") is None
    assert rules.show_mask(12) == "c (CPUs 2-3)" and rules.show_mask(0) == "0 (CPUs none)"



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
    out, avoided, errors = rules.plan_irqs(nics, online, nodes, reserved or [], cpu0)
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
    _, _, errors = rules.plan_irqs(nics, [0], {"0": [0]}, [], "avoid")
    assert errors == ["NIC eth0: no CPU left for its queue IRQs: NUMA-local CPUs '0' minus "
                      "vpsnet_tune_reserved_cpus '' minus CPU 0 (vpsnet_tune_irq_cpu0=avoid)"]


def test_overlapping_pools_stay_disjoint_while_cpus_last() -> None:
    """A NIC without a NUMA node may use every CPU: it still takes CPUs no NIC has."""
    nics = shape(2, 2, TWO_NODES)
    nics[0]["numa_node"] = None
    out, _ = plan(nics, TWO_NODES, cpu0="use")
    assert out["eth0"]["cpus"] == [0, 1] and out["eth1"]["cpus"] == [8, 9]


def test_xps_per_tx_queue_on_its_irq_cpu() -> None:
    assert rules.xps_plan([2, 3], 4) == {0: 2, 1: 3, 2: 2, 3: 3}
    assert rules.xps_plan([2, 3], 1) == {0: 2}  # one TX queue too: its IRQ's CPU
    assert rules.xps_plan([], 4) == {} and rules.xps_plan([2, 3], 0) == {}


def test_rps_off_the_irq_cpus_and_their_smt_siblings() -> None:
    pool = list(range(8))
    siblings = {c: [c % 4, c % 4 + 4] for c in range(8)}  # 0/4, 1/5, 2/6, 3/7
    assert rules.rps_plan(pool, [0, 1], siblings, 2) == [2, 3, 6, 7]
    assert rules.rps_plan(pool, [0, 1], {}, 2) == [2, 3, 4, 5, 6, 7]
    assert rules.rps_plan([0, 1], [0, 1], siblings, 2) == []  # no more CPUs than RX queues: off



# --------------------------------------------------------------------------- conf


def test_old_conf_files_read_with_irq_only_defaults() -> None:
    options, nics = rules.parse_conf("# old\neth0 0-1\nens5 2,3\n")
    assert nics == {"eth0": [0, 1], "ens5": [2, 3]}
    assert options == {"xps": "off", "rps": "off", "cpu0": "use", "reserved": "none"}


def test_conf_round_trip() -> None:
    options = {"xps": "on", "rps": "on", "cpu0": "avoid", "reserved": "7"}
    text = rules.format_conf(options, {"eth10": [5], "eth2": [1, 2]})
    assert text == ("option xps on\noption rps on\noption cpu0 avoid\noption reserved 7\n"
                    "eth2 1-2\neth10 5\n")
    assert rules.parse_conf(text) == (options, {"eth2": [1, 2], "eth10": [5]})
    assert rules.reserved_of(options) == [7]


@pytest.mark.parametrize(("line", "needle"), [
    ("option xps maybe", "line 1: option xps 'maybe' is not one of on, off"),
    ("option turbo on", "line 1: 'option turbo on' is not a known option"),
    ("option reserved x", "line 1: reserved 'x' is not a CPU list"),
    ("eth0", "line 1: 'eth0' is not `IFNAME CPULIST`"),
    ("eth0 zero", "line 1: 'zero' is not a CPU list"),
])
def test_bad_conf_lines_named(line: str, needle: str) -> None:
    with pytest.raises(rules.ConfError) as err:
        rules.parse_conf(line + "\n")
    assert str(err.value) == needle



def test_rps_counts_only_the_irqs_of_queues_in_use() -> None:
    """virtio_net after `ethtool -L combined 1` keeps the vectors of queue pairs
    1-3: they carry nothing, so RPS may use their CPUs (seen on 6.1 and 6.12)."""
    irqs = [{"irq": 30 + q, "queue": q, "direction": d} for q in range(4) for d in ("rx", "tx")]
    assert rules.irq_cpus([0, 1], irqs) == [0, 1]
    assert rules.irq_cpus([0, 1], irqs, 1) == [0]
    assert rules.rps_plan([0, 1], rules.irq_cpus([0, 1], irqs, 1), {}, 1) == [1]
    assert rules.rps_plan([0, 1], rules.irq_cpus([0, 1], irqs, 2), {}, 2) == []


@pytest.mark.parametrize("name", ["vpsnet_irqplan", "vpsnet_ethtool"])
def test_stdlib_only_and_one_copy(name: str) -> None:
    """The tune role ships files/NAME.py as a link to the collection's module_utils
    copy, the one the plan filter imports."""
    library = Path(rules.__file__).with_name(f"{name}.py")
    link = Path(rules.__file__).parents[2] / "roles/vpsnet_tune/files" / f"{name}.py"
    assert link.is_symlink() and link.resolve() == library.resolve()
    source = library.read_text()
    assert "import ansible" not in source and "from ansible" not in source
