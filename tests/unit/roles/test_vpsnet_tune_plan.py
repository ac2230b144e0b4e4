"""Unit tests of the vpsnet_tune plan filters (BDP, validation, IRQ plan, ethtool)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[3]


def _load(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tune = _load(REPO / "roles/vpsnet_tune/filter_plugins/vpsnet_tune.py", "vpsnet_tune_filters")

ENA_NIC = {
    "name": "ens5",
    "driver": "ena",
    "numa_node": 0,
    "irqs": [
        {"irq": 27 + q, "name": f"ens5-Tx-Rx-{q}", "queue": q, "direction": "rxtx"}
        for q in range(4)
    ],
}
VIRTIO_NIC = {
    "name": "ens4",
    "driver": "virtio_net",
    "numa_node": None,
    "irqs": [
        {"irq": 40, "name": "virtio1-config", "queue": None, "direction": "shared"},
        {"irq": 41, "name": "virtio1-input.0", "queue": 0, "direction": "rx"},
        {"irq": 42, "name": "virtio1-output.0", "queue": 0, "direction": "tx"},
        {"irq": 43, "name": "virtio1-input.1", "queue": 1, "direction": "rx"},
        {"irq": 44, "name": "virtio1-output.1", "queue": 1, "direction": "tx"},
    ],
}


def params(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "rtt_ms": 200,
        "bandwidth_mbit": 1000,
        "buffer_max_bytes": 268435456,
        "online_cpus": "0-3",
        "node_cpus": {"0": "0-3"},
        "reserved_cpus": [],
        "memtotal_mb": 4096,
        "hugepages_2m": 0,
        "hugepages_1g": 0,
        "hugepages_max_percent": 50,
        "nics": [ENA_NIC],
        "nic_profile": "auto",
        "nic_profiles": {},
        "irq_affinity": True,
    }
    base.update(kw)
    return base


def test_buffers_are_two_bdp() -> None:
    out = tune.plan(params())
    assert out["errors"] == []
    bdp = 1000 * 1_000_000 // 8 * 200 // 1000  # 25 MB
    assert out["buffers"]["bdp_bytes"] == bdp
    assert out["buffers"]["tcp_rmem"] == f"4096 131072 {2 * bdp}"
    assert out["buffers"]["tcp_wmem"] == f"4096 16384 {2 * bdp}"
    assert out["buffers"]["rmem_max"] == out["buffers"]["wmem_max"] == 2 * bdp


def test_buffers_capped_and_never_below_debian() -> None:
    capped = tune.buffers(200, 100_000, 64 << 20)
    assert capped["capped"] and capped["rmem_max"] == 64 << 20
    small = tune.buffers(1, 100, 1 << 30)
    assert small["tcp_rmem"] == "4096 131072 6291456"
    assert small["tcp_wmem"] == "4096 16384 4194304"
    assert small["rmem_max"] == 212992


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"rtt_ms": -5}, "vpsnet_tune_rtt_ms=-5 must be >= 0"),
        ({"rtt_ms": "fast"}, "vpsnet_tune_rtt_ms='fast' is not a number"),
        ({"bandwidth_mbit": 0}, "vpsnet_tune_bandwidth_mbit=0 must be > 0"),
        ({"reserved_cpus": [2, 9]}, "vpsnet_tune_reserved_cpus=[2, 9]: CPU(s) 9 do not exist"),
        ({"reserved_cpus": [0, 1, 2, 3]}, "reserves every CPU"),
        ({"hugepages_2m": 1500}, "vpsnet_tune_hugepages_2m=1500"),
        ({"hugepages_1g": 3}, "more than vpsnet_tune_hugepages_max_percent=50%"),
        ({"nic_profile": "turbo"}, "vpsnet_tune_nic_profile='turbo' is not a known NIC profile"),
        ({"nic_profiles": {"ens5": "warp"}}, "vpsnet_tune_nic_profiles['ens5']='warp'"),
        ({"nic_profiles": {"eth9": "ena"}}, "names NIC 'eth9', which this host does not have"),
        ({"fq_maxrate_mbit": -1}, "vpsnet_tune_fq_maxrate_mbit=-1 must be >= 0"),
        ({"fq_maxrate_mbit": 57.5}, "vpsnet_tune_fq_maxrate_mbit=57.5 must be a whole number"),
        ({"fq_maxrate_mbit": 40000}, "vpsnet_tune_fq_maxrate_mbit=40000 must be a whole number"),
        ({"fq_maxrate_mbit": 57, "default_qdisc": "fq_codel"},
         "vpsnet_tune_fq_maxrate_mbit=57 needs vpsnet_tune_default_qdisc=fq (it is 'fq_codel')"),
        ({"fq_maxrate_mbit": 57, "replace_root_qdisc": False},
         "vpsnet_tune_fq_maxrate_mbit=57 needs vpsnet_tune_replace_root_qdisc=true"),
    ],
)
def test_bad_input_named(kw: dict[str, object], needle: str) -> None:
    errors = tune.plan(params(**kw))["errors"]
    assert any(needle in e for e in errors), errors


def test_hugepages_within_budget() -> None:
    out = tune.plan(params(hugepages_2m=512, hugepages_1g=1))
    assert out["errors"] == [] and out["hugepages_mb"] == 2048


def test_irq_plan_round_robin_minus_reserved() -> None:
    out = tune.plan(params(reserved_cpus=[0]))
    assert out["errors"] == []
    (nic,) = out["irq_plan"]
    assert nic["cpus"] == [1, 2, 3] and nic["cpulist"] == "1-3"
    assert [(i["irq"], i["cpu"]) for i in nic["irqs"]] == [(27, 1), (28, 2), (29, 3), (30, 1)]


def test_irq_plan_numa_local_and_virtio_pairs() -> None:
    out = tune.plan(
        params(
            online_cpus="0-7",
            node_cpus={"0": "0-3", "1": "4-7"},
            nics=[dict(ENA_NIC, numa_node=1), VIRTIO_NIC],
        )
    )
    ena, virtio = out["irq_plan"]
    assert ena["cpus"] == [4, 5, 6, 7]
    assert [i["cpu"] for i in ena["irqs"]] == [4, 5, 6, 7]
    # no NUMA node: every online CPU but CPU 0 (two tuned NICs, a pool of 4+ CPUs: cpu0 auto
    # avoids it), and none of the ENA NIC's; rx and tx of one queue share a CPU; config IRQ
    # left alone
    assert out["cpu0_avoided"]
    assert [(i["irq"], i["cpu"]) for i in virtio["irqs"]] == [(41, 1), (42, 1), (43, 2), (44, 2)]


def test_no_cpu_left_on_node() -> None:
    errors = tune.plan(
        params(online_cpus="0-7", node_cpus={"0": "0-1", "1": "2-7"}, reserved_cpus=[0, 1])
    )["errors"]
    assert any("NIC ens5: no CPU left" in e for e in errors)


def test_profile_none_skips_irqs_and_ethtool() -> None:
    out = tune.plan(params(nic_profiles={"ens5": "none"}))
    assert out["profiles"] == {"ens5": "none"} and out["irq_plan"] == []


def test_cpulist_round_trip() -> None:
    assert tune.parse_cpulist("0-3,8,10-11\n") == [0, 1, 2, 3, 8, 10, 11]
    assert tune.format_cpulist([11, 0, 1, 2, 3, 8, 10]) == "0-3,8,10-11"


ETHTOOL_L = """Channel parameters for ens5:
Pre-set maximums:
RX:		n/a
TX:		n/a
Other:		n/a
Combined:	8
Current hardware settings:
RX:		n/a
TX:		n/a
Other:		n/a
Combined:	2
"""
ETHTOOL_G = """Ring parameters for ens5:
Pre-set maximums:
RX:		16384
RX Mini:	n/a
RX Jumbo:	n/a
TX:		1024
Current hardware settings:
RX:		1024
RX Mini:	n/a
RX Jumbo:	n/a
TX:		1024
"""


def test_ethtool_ena_profile() -> None:
    ch = tune.parse_ethtool(ETHTOOL_L)
    rg = tune.parse_ethtool(ETHTOOL_G)
    assert ch["max"]["combined"] == 8 and ch["current"]["combined"] == 2 and ch["max"]["rx"] is None
    target = tune.ethtool_target("ena", ch, rg, 4)
    assert target == {
        "channels": {"combined": 8},
        "rings": {"rx": 16384, "tx": 1024},
        "adaptive_rx": True,
    }
    diff = tune.ethtool_diff(target, ch, rg, tune.parse_adaptive_rx("Adaptive RX: off  TX: off"))
    assert diff == {"channels": {"combined": 8}, "rings": {"rx": 16384}, "adaptive_rx": True}
    # not reported by the NIC: never asked for
    assert tune.ethtool_diff(target, ch, rg, None)["adaptive_rx"] is None


def test_ethtool_virtio_one_pair_per_vcpu_and_readback_clean() -> None:
    ch = tune.parse_ethtool(ETHTOOL_L)
    target = tune.ethtool_target("virtio_net", ch, {}, 4)
    assert target["channels"] == {"combined": 4} and target["rings"] == {}
    after = tune.parse_ethtool(ETHTOOL_L.replace("Combined:\t2", "Combined:\t4"))
    assert tune.ethtool_diff(target, after, {}, None) == {
        "channels": {},
        "rings": {},
        "adaptive_rx": None,
    }


def test_ethtool_gve_separate_rx_tx() -> None:
    ch = {"max": {"rx": 16, "tx": 16, "combined": 0}, "current": {"rx": 4, "tx": 4}}
    assert tune.ethtool_target("gve", ch, {}, 8)["channels"] == {"rx": 16, "tx": 16}


def test_qdisc_spec_carries_the_fq_cap() -> None:
    assert tune.plan(params())["qdisc"] == "fq"
    assert tune.plan(params(fq_maxrate_mbit=4750))["qdisc"] == "fq maxrate 4750mbit"
    assert tune.plan(params(default_qdisc="fq_codel"))["qdisc"] == "fq_codel"
