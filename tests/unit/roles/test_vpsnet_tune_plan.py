"""Unit tests of the vpsnet_tune plan filters (BDP, validation, IRQ plan, ethtool)."""

from __future__ import annotations

import pytest
from ansible_collections.vpsnet.fleet.plugins.filter import vpsnet_tune as tune

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


GVE_NIC = {
    "name": "ens4",
    "driver": "gve",
    "numa_node": None,
    "queues": {"current": {"rx": 2, "tx": 2}, "max": {"rx": 2, "tx": 2, "other": None,
                                                      "combined": None}},
    "irqs": [
        {"irq": 35, "name": "eth%d-ntfy-block.2", "queue": 0, "direction": "rx"},
        {"irq": 33, "name": "eth%d-ntfy-block.0", "queue": 0, "direction": "tx"},
        {"irq": 36, "name": "eth%d-ntfy-block.3", "queue": 1, "direction": "rx"},
        {"irq": 34, "name": "eth%d-ntfy-block.1", "queue": 1, "direction": "tx"},
    ],
}


def test_plan_writes_the_conf_the_writer_reads() -> None:
    out = tune.plan(params(online_cpus="0-7", node_cpus={"0": "0-7"},
                           nics=[ENA_NIC, dict(VIRTIO_NIC, numa_node=0)]))
    assert out["errors"] == [] and out["cpu0_avoided"]
    options, nics = tune.irqplan.parse_conf(out["irq_conf"])
    assert options == {"xps": "on", "rps": "on", "cpu0": "avoid", "reserved": "none"}
    # ens4 (virtio, 2 queues) first in name order, then ens5 (ENA, 4 queues): disjoint
    assert nics == {"ens4": [1, 2], "ens5": [3, 4, 5, 6]}


def test_plan_xps_and_rps_from_smt_siblings() -> None:
    siblings = "".join(f"cpu{c}/topology/thread_siblings_list:{c % 4},{c % 4 + 4}\n"
                       for c in range(8))
    out = tune.plan(params(online_cpus="0-7", node_cpus={"0": "0-7"}, siblings=siblings,
                           nics=[dict(ENA_NIC, irqs=ENA_NIC["irqs"][:2])]))
    (nic,) = out["irq_plan"]
    assert nic["cpus"] == [0, 1] and nic["xps"] == {0: 0, 1: 1}
    assert nic["rps"] == [2, 3, 6, 7]  # off 0, 1 and their siblings 4, 5
    off = tune.plan(params(xps=False, rps=False, nics=[ENA_NIC]))
    assert off["irq_plan"][0]["xps"] is None and off["irq_plan"][0]["rps"] is None
    assert "option xps off\noption rps off\n" in off["irq_conf"]


def test_planned_queues_follow_the_ethtool_profile() -> None:
    virtio = dict(VIRTIO_NIC, queues={"current": {"rx": 1, "tx": 1},
                                      "max": {"combined": 8, "rx": None, "tx": None}})
    assert tune.planned_queues(virtio, "virtio_net", 4) == 4  # one pair per vCPU
    assert tune.planned_queues(virtio, "none", 4) == 1  # current count
    assert tune.planned_queues(ENA_NIC, "ena", 4) == 4  # no counts: its queue IRQs


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"irq_cpu0": "never"}, "vpsnet_tune_irq_cpu0='never' is not one of auto, avoid, use"),
        ({"gce_multiqueue": "both"}, "vpsnet_tune_gce_multiqueue='both' is not one of google"),
    ],
)
def test_bad_irq_options_named(kw: dict[str, object], needle: str) -> None:
    assert any(needle in e for e in tune.plan(params(**kw))["errors"])


def test_gce_google_leaves_gve_and_virtio_to_the_guest_environment() -> None:
    nics = [GVE_NIC, dict(VIRTIO_NIC, name="ens6")]
    google = tune.plan(params(nics=nics, provider="gcp", gce_multiqueue="google"))
    assert google["gce_multiqueue"] == "google" and google["irq_plan"] == []
    assert [n["name"] for n in google["google_nics"]] == ["ens4", "ens6"]
    assert "ens4 " not in google["irq_conf"] and "ens6 " not in google["irq_conf"]
    vpsnet = tune.plan(params(nics=nics, provider="gcp"))
    assert vpsnet["gce_multiqueue"] == "vpsnet" and vpsnet["google_nics"] == []
    assert [n["nic"] for n in vpsnet["irq_plan"]] == ["ens4", "ens6"]
    # not GCP: the option does not apply
    aws = tune.plan(params(nics=[ENA_NIC], provider="aws", gce_multiqueue="google"))
    assert aws["gce_multiqueue"] is None and len(aws["irq_plan"]) == 1


def test_readback_problems_name_each_item() -> None:
    out = tune.plan(params(nics=[ENA_NIC], reserved_cpus=[0]))
    cpus = [1, 2, 3, 1]
    good = "\n".join([f"irq {27 + q} {cpus[q]}" for q in range(4)]
                     + [f"ens5 tx-{q} {tune.irqplan.format_mask([cpus[q]])}" for q in range(4)]
                     + [f"ens5 rx-{q} 0" for q in range(4)])
    assert tune.readback_problems(out, good) == []
    bad = good.replace("irq 28 2", "irq 28 0-3").replace("ens5 tx-3 00000002", "ens5 tx-3 -")
    assert tune.readback_problems(out, bad) == [
        "ens5 IRQ 28 (ens5-Tx-Rx-1) has smp_affinity_list 0-3, planned 2",
        "ens5 tx-3 xps_cpus unreadable, planned 2 (CPUs 1)",
    ]


def test_readback_rps_for_the_live_queue_count() -> None:
    """Two queues live (after a channel change) on 8 CPUs: RPS over the 6 CPUs the IRQs leave."""
    out = tune.plan(params(online_cpus="0-7", node_cpus={"0": "0-7"},
                           nics=[dict(ENA_NIC, irqs=ENA_NIC["irqs"][:2])]))
    text = "irq 27 0\nirq 28 1\nens5 tx-0 1\nens5 tx-1 2\nens5 rx-0 000000fc\nens5 rx-1 0\n"
    assert tune.readback_problems(out, text) == [
        "ens5 rx-1 rps_cpus 0 (CPUs none), planned fc (CPUs 2-7)"]


def test_google_problems_name_the_nic() -> None:
    text = "irq 33 1\nirq 34 0-3\nirq 35 2\nirq 36 3\nens4 tx-0 00000002\nens4 tx-1 00000000\n"
    assert tune.google_problems([GVE_NIC], text) == [
        "NIC ens4: queue IRQ 34 (eth%d-ntfy-block.1) is on CPUs 0-3, not one CPU: the guest "
        "environment's google_set_multiqueue did not set it (vpsnet_tune_gce_multiqueue=google "
        "leaves it to Google; vpsnet_tune_gce_multiqueue=vpsnet lets vpsnet own it)",
        "NIC ens4: tx-1 xps_cpus is 00000000 (no CPU): the guest environment's "
        "google_set_multiqueue did not set it (vpsnet_tune_gce_multiqueue=google leaves it to "
        "Google; vpsnet_tune_gce_multiqueue=vpsnet lets vpsnet own it)",
    ]
    fixed = text.replace("0-3", "1").replace("0000000\n", "0000004\n")
    assert tune.google_problems([GVE_NIC], fixed) == []
