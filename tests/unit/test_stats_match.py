"""The module's ethtool-name matcher (driver-src/vpsnet_match.c), built for userspace
and run on recorded `ethtool -S` text (tests/unit/fixtures/ethtool-S/).

The same C file the module links is compiled with a few userspace stand-ins for
<linux/*.h> (tests/unit/c/shim) and driven by tests/unit/c/match_harness.c. Each
fixture holds a driver's names in the driver's own order (Debian's 6.1 and 6.12
builds of ena, gve and virtio_net); its values are chosen so that a counter
wrongly summed or left out changes a total. Also: look-alike names are ignored,
and the new metric families are an additive change to the 1.0.0 manifest.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from vpsnet_tools import abi

TOP = Path(__file__).resolve().parents[2]
SRC = TOP / "driver-src"
C = Path(__file__).resolve().parent / "c"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
ETHTOOL = FIXTURES / "ethtool-S"
MANIFEST_1_0_0 = FIXTURES / "manifest" / "vpsnet-1.0.0-before-issue22.json"

CC = shutil.which("cc") or shutil.which("gcc")

Key = tuple[str, int, str]  # direction, queue, field


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if CC is None:
        pytest.skip("no C compiler (apt-get install gcc)")
    exe = tmp_path_factory.mktemp("match") / "match_harness"
    r = subprocess.run([CC, "-std=gnu11", "-O1", "-Wall", "-Wextra", "-Werror", "-Wswitch-enum",
                        "-Wmissing-prototypes", "-I", str(C / "shim"), "-I", str(SRC),
                        "-o", str(exe), str(C / "match_harness.c"),
                        str(SRC / "vpsnet_match.c")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return exe


def ethtool_stats(path: Path) -> list[tuple[str, int]]:
    """`ethtool -S` text: '     name: value' lines after 'NIC statistics:'."""
    out: list[tuple[str, int]] = []
    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("#")]
    assert lines[0] == "NIC statistics:", path
    for ln in lines[1:]:
        m = re.fullmatch(r" {5}(\S+): (\d+)", ln)
        assert m, f"{path.name}: not an ethtool -S line: {ln!r}"
        out.append((m[1], int(m[2])))
    return out


def classify(exe: Path, driver: str, names: list[str]) -> dict[str, tuple[str, ...]]:
    r = subprocess.run([str(exe), driver], input="".join(f"{n}\n" for n in names),
                       capture_output=True, text=True, timeout=30, check=True)
    rows = [ln.split("\t") for ln in r.stdout.splitlines()]
    assert [row[0] for row in rows] == [n[:32] for n in names]
    return {n: tuple(row[1:]) for n, row in zip(names, rows, strict=True)}


def totals(exe: Path, driver: str, stats: list[tuple[str, int]]
           ) -> tuple[dict[Key, int], dict[str, int]]:
    """What the module exports from these stats: per-queue sums and device counters."""
    where = classify(exe, driver, [n for n, _ in stats])
    queues: dict[Key, int] = defaultdict(int)
    device: dict[str, int] = defaultdict(int)
    for name, value in stats:
        kind, *rest = where[name]
        if kind == "queue":
            direction, field, q = rest
            queues[(direction, int(q), field)] += value
        elif kind == "device":
            device[rest[0]] += value
        else:
            assert kind == "none", (name, where[name])
    return dict(queues), dict(device)


def _ena_queue(q: int) -> dict[Key, int]:
    k = q + 1
    return {("rx", q, "packets"): 120000 * k + 5, ("rx", q, "bytes"): 150000000 * k + 77,
            # skb_alloc_fail 1 + page_alloc_fail 20 + dma_mapping_err 300 + xdp_drop 4000
            ("rx", q, "drops"): 4321 * k,
            ("tx", q, "packets"): 80000 * k + 17, ("tx", q, "bytes"): 9000000 * k + 123,
            # dma_mapping_err 1 + linearize_failed 10 + prepare_ctx_err 100
            ("tx", q, "drops"): 111 * k}


def _gve_queue(q: int, xdp_drop: bool) -> dict[Key, int]:
    k = q + 1
    # rx_dropped_pkt 1 + rx_queue_drop_cnt 20 + rx_no_buffers_posted 300
    # + rx_drops_packet_over_mru 4000 + rx_drops_invalid_checksum 50000 (+ rx_xdp_drop 600000)
    drops = 54321 * k + (600000 * k if xdp_drop else 0)
    return {("rx", q, "descriptors"): 70001 * k, ("rx", q, "bytes"): 98000000 * k + 11,
            ("rx", q, "drops"): drops,
            ("tx", q, "descriptors"): 90200 * k, ("tx", q, "bytes"): 12000000 * k + 9,
            ("tx", q, "drops"): 5 * k}


def _virtio_queue(q: int, packets_bytes: bool) -> dict[Key, int]:
    k = q + 1
    out = {("rx", q, "drops"): 3 * k, ("tx", q, "drops"): 2 * k}
    if packets_bytes:
        out |= {("rx", q, "packets"): 5000 * k + 1, ("rx", q, "bytes"): 700000 * k + 2,
                ("tx", q, "packets"): 4000 * k + 3, ("tx", q, "bytes"): 600000 * k + 4}
    return out


def _merge(*parts: dict[Key, int]) -> dict[Key, int]:
    out: dict[Key, int] = {}
    for p in parts:
        out |= p
    return out


EXPECTED: dict[str, tuple[str, dict[Key, int], dict[str, int]]] = {
    "ena-6.1-2q.txt": ("ena", _merge(*(_ena_queue(q) for q in range(2))), {
        "bw_in_allowance_exceeded": 1520, "bw_out_allowance_exceeded": 37,
        "pps_allowance_exceeded": 4096, "conntrack_allowance_exceeded": 0,
        "linklocal_allowance_exceeded": 12}),
    # the XDP TX rings queue_4..7_xdp_tx_* are no netdev TX queues: nothing from them
    "ena-6.12-4q-xdp.txt": ("ena", _merge(*(_ena_queue(q) for q in range(4))), {
        "bw_in_allowance_exceeded": 88, "bw_out_allowance_exceeded": 912,
        "pps_allowance_exceeded": 0, "conntrack_allowance_exceeded": 7,
        "linklocal_allowance_exceeded": 3, "conntrack_allowance_available": 31744}),
    # gve: descriptors, never packets (no per-queue packet counter on 6.1 or 6.12)
    "gve-6.1-2q.txt": ("gve", _merge(*(_gve_queue(q, False) for q in range(2))), {}),
    "gve-6.12-2q.txt": ("gve", _merge(*(_gve_queue(q, True) for q in range(2))), {}),
    "virtio_net-6.1-2q.txt": ("virtio_net",
                              _merge(*(_virtio_queue(q, True) for q in range(2))), {}),
    # 6.9+: per-queue packets and bytes come from the queue statistics ops only
    "virtio_net-6.12-2q.txt": ("virtio_net",
                               _merge(*(_virtio_queue(q, False) for q in range(2))), {}),
}


def test_every_fixture_is_expected() -> None:
    assert sorted(p.name for p in ETHTOOL.glob("*.txt")) == sorted(EXPECTED)


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_recorded_ethtool_stats_give_the_expected_fields(harness: Path, fixture: str) -> None:
    driver, want_queues, want_device = EXPECTED[fixture]
    queues, device = totals(harness, driver, ethtool_stats(ETHTOOL / fixture))
    assert queues == want_queues
    assert device == want_device


@pytest.mark.parametrize("fixture", sorted(EXPECTED))
def test_names_belong_to_their_driver_only(harness: Path, fixture: str) -> None:
    """A driver's names mean nothing for another driver (the table is per driver)."""
    names = [n for n, _ in ethtool_stats(ETHTOOL / fixture)]
    for other in {"ena", "gve", "virtio_net", "mlx5_core"} - {EXPECTED[fixture][0]}:
        where = classify(harness, other, names)
        # virtio_net's and gve's names never look like another driver's
        assert {v for v in where.values()} == {("none",)}, other


def test_gve_never_reports_descriptors_as_packets(harness: Path) -> None:
    for fixture in ("gve-6.1-2q.txt", "gve-6.12-2q.txt"):
        where = classify(harness, "gve", [n for n, _ in ethtool_stats(ETHTOOL / fixture)])
        assert where["rx_completed_desc[1]"] == ("queue", "rx", "descriptors", "1")
        assert where["tx_completed_desc[0]"] == ("queue", "tx", "descriptors", "0")
        assert not [n for n, w in where.items() if w[:1] == ("queue",) and w[2] == "packets"]


EXACT: dict[str, dict[str, tuple[str, ...]]] = {
    "ena": {
        "queue_1_rx_page_alloc_fail": ("queue", "rx", "drops", "1"),
        "queue_1_rx_dma_mapping_err": ("queue", "rx", "drops", "1"),
        "queue_0_rx_xdp_drop": ("queue", "rx", "drops", "0"),
        "queue_255_rx_cnt": ("queue", "rx", "packets", "255"),
        "queue_10_tx_dma_mapping_err": ("queue", "tx", "drops", "10"),
        "bw_in_allowance_exceeded": ("device", "bw_in_allowance_exceeded"),
        "conntrack_allowance_available": ("device", "conntrack_allowance_available"),
    },
    "gve": {
        "rx_queue_drop_cnt[3]": ("queue", "rx", "drops", "3"),
        "rx_no_buffers_posted[0]": ("queue", "rx", "drops", "0"),
        "rx_drops_packet_over_mru[12]": ("queue", "rx", "drops", "12"),
        "rx_drops_invalid_checksum[1]": ("queue", "rx", "drops", "1"),
        "rx_xdp_drop[0]": ("queue", "rx", "drops", "0"),
    },
}

LOOKALIKES: dict[str, list[str]] = {
    "ena": [
        # real ENA names that are not drops, packets or bytes
        "queue_0_rx_xdp_aborted", "queue_0_rx_xdp_invalid", "queue_0_rx_csum_bad",
        "queue_0_rx_bad_csum", "queue_0_rx_empty_rx_ring", "queue_0_tx_linearize",
        "queue_0_tx_missed_tx", "queue_4_xdp_tx_cnt", "queue_4_xdp_tx_dma_mapping_err",
        "ena_admin_q_aborted_cmd", "ena_srd_tx_pkts", "ena_srd_rx_pkts", "tx_timeout",
        # malformed queue numbers and near misses
        "queue_01_rx_cnt", "queue_00_rx_cnt", "queue_256_rx_cnt",
        "queue_99999999999999999999_rx_cnt", "queue__rx_cnt", "queue_-1_rx_cnt",
        "queue_+1_rx_cnt", "queue_1x_rx_cnt", "queue_0_rx_cnt_", "queue_0_rx_cnt ",
        "Queue_0_rx_cnt", "queue_0_rx_xdp_drops", "queue_0_rx_xdp_drop_",
        "queue_0_rx_page_alloc_failed",
        # device counters: exact names only
        "bw_in_allowance_exceeded_total", "xbw_in_allowance_exceeded",
        "queue_0_bw_in_allowance_exceeded", "bw_in_allowance", "pps_allowance_exceede",
        "conntrack_allowance_available ", "conntrack_allowance_used", "",
    ],
    "gve": [
        # device totals and other per-queue names
        "rx_packets", "tx_packets", "rx_bytes", "rx_dropped", "rx_queue_drop_cnt",
        "rx_posted_desc[0]", "rx_consumed_desc[0]", "tx_posted_desc[1]",
        "rx_hsplit_bytes[0]", "rx_xdp_tx_errors[0]", "rx_xdp_aborted[0]",
        "tx_xdp_xmit_errors[0]", "rx_copied_pkt[0]", "rx_cont_packet_cnt[0]",
        "adminq_dcfg_device_resources_cnt",
        # malformed brackets and queue numbers
        "rx_bytes[0", "rx_bytes0]", "rx_bytes[]", "rx_bytes[00]", "rx_bytes[01]",
        "rx_bytes[0]]", "rx_bytes[ 0]", "rx_bytes[-0]", "rx_bytes[256]",
        "rx_queue_drop_cnt[0]x", "tx_completed_desc[1 ]",
        # ENA's names on a gve device
        "bw_in_allowance_exceeded", "queue_0_rx_xdp_drop",
    ],
}


@pytest.mark.parametrize("driver", sorted(EXACT))
def test_new_names_map_exactly(harness: Path, driver: str) -> None:
    assert classify(harness, driver, list(EXACT[driver])) == EXACT[driver]


@pytest.mark.parametrize("driver", sorted(LOOKALIKES))
def test_lookalikes_are_ignored(harness: Path, driver: str) -> None:
    where = classify(harness, driver, LOOKALIKES[driver])
    assert {n: w for n, w in where.items() if w != ("none",)} == {}


def test_names_are_read_as_the_module_reads_them(harness: Path) -> None:
    """The module sees at most ETH_GSTRING_LEN (32) bytes of a name: a 32-byte
    name (gve's adminq_dcfg_device_resources_cnt) is whole, longer ones are cut."""
    long_name = "rx_drops_invalid_checksum[1]" + "_" * 10
    where = classify(harness, "gve", ["adminq_dcfg_device_resources_cnt", long_name])
    assert where == {"adminq_dcfg_device_resources_cnt": ("none",), long_name: ("none",)}


def test_device_counter_labels(harness: Path) -> None:
    """The `counter` label values of vpsnet_device_allowance_exceeded_total are ENA's five
    allowance counters; conntrack_allowance_available is its own (gauge) family."""
    r = subprocess.run([str(harness), "--dfields"], capture_output=True, text=True,
                       check=True, timeout=30)
    rows = [ln.split("\t") for ln in r.stdout.splitlines()]
    assert [(name, kind) for _, name, kind in rows] == [
        ("bw_in_allowance_exceeded", "exceeded"), ("bw_out_allowance_exceeded", "exceeded"),
        ("pps_allowance_exceeded", "exceeded"), ("conntrack_allowance_exceeded", "exceeded"),
        ("linklocal_allowance_exceeded", "exceeded"), ("conntrack_allowance_available", "other"),
    ]


# --------------------------------------------------------------------------- ABI


def _c_string_macros(text: str) -> dict[str, str]:
    """#define NAME <string literals and earlier NAMEs> from vpsnet_abi.h, concatenated."""
    out: dict[str, str] = {}
    for name, body in re.findall(r"^#define\s+(VPSNET_LS_\w+)\s+(.*)$", text, re.M):
        value = ""
        for lit, ref in re.findall(r'"((?:[^"\\]|\\.)*)"|(\w+)', body):
            value += json.loads(f'"{lit}"') if not ref else out[ref]
        out[name] = value
    return out


def families_from_source() -> list[dict[str, object]]:
    """The manifest's "metrics" as the module compiles them from vpsnet_families.h."""
    ls = _c_string_macros((SRC / "vpsnet_abi.h").read_text())
    text = (SRC / "vpsnet_families.h").read_text()
    fams = re.findall(r'VPSNET_FAMILY\((\w+),\s*(\w+),\s*(\w+),\s*"((?:[^"\\]|\\.)*)"\)', text)
    assert len(fams) == text.count("VPSNET_FAMILY(") - 1  # minus the one in the comment
    return [{"name": f"vpsnet_{n}", "type": t, "labels": json.loads(f"[{ls[lab]}]"), "help": h}
            for n, t, lab, h in fams]


def test_new_families_are_an_additive_abi_change() -> None:
    old = json.loads(MANIFEST_1_0_0.read_text())
    new = {**old, "metrics": families_from_source()}
    res = abi.diff_manifests(old, new)
    assert res.verdict == abi.ADDITIVE, [f.message for f in res.findings]
    assert [(f.severity, f.subject) for f in res.findings] == [
        (abi.ADDITIVE, "vpsnet_device_allowance_exceeded_total"),
        (abi.ADDITIVE, "vpsnet_device_conntrack_allowance_available"),
        (abi.ADDITIVE, "vpsnet_queue_descriptors_total"),
    ]
    fams = {m["name"]: m for m in new["metrics"]}
    assert fams["vpsnet_device_allowance_exceeded_total"]["labels"] == [
        "netns", "device", "driver", "counter"]
    assert fams["vpsnet_queue_descriptors_total"]["labels"] == \
        fams["vpsnet_queue_packets_total"]["labels"]


def test_the_abi_check_has_teeth() -> None:
    """Renaming a label of a new family, or dropping an old family, is not additive."""
    old = json.loads(MANIFEST_1_0_0.read_text())
    metrics = families_from_source()
    renamed = [dict(m, labels=["netns", "device", "driver", "direction"])
               if m["name"] == "vpsnet_queue_packets_total" else m for m in metrics]
    assert abi.diff_manifests(old, {**old, "metrics": renamed}).verdict == abi.BREAKING
    dropped = [m for m in metrics if m["name"] != "vpsnet_queue_packets_total"]
    assert abi.diff_manifests(old, {**old, "metrics": dropped}).verdict == abi.BREAKING
