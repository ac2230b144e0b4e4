"""vpsnet.ko in real guests: attach, per-queue series, counters, metrics vs manifest."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from vpsnet_guest_helpers import GUESTS, KO, MANIFEST, METRICS, load, metrics, parse_metrics, series

from vpsnet_lab.fleet import Lab
from vpsnet_tools.manifest import family_names, read_manifest

pytestmark = pytest.mark.lab
SEP = "@@@vpsnet@@@"


def virtio_nics(lab: Lab, name: str) -> dict[str, tuple[int, int]]:
    """virtio_net devices of the guest -> (rx queues, tx queues) from sysfs."""
    out = lab.ssh(name, "for d in /sys/class/net/*; do "
                  "[ \"$(basename $(readlink -f $d/device/driver) 2>/dev/null)\" = virtio_net ] "
                  "|| continue; echo $(basename $d) $(ls -d $d/queues/rx-* | wc -l) "
                  "$(ls -d $d/queues/tx-* | wc -l); done", check=True).stdout
    return {p[0]: (int(p[1]), int(p[2])) for p in (ln.split() for ln in out.splitlines())}


@pytest.mark.parametrize("name", GUESTS)
def test_attaches_every_virtio_nic_and_queue(guests: Lab, name: str) -> None:
    load(guests, name, interval_ms=200)
    nics = virtio_nics(guests, name)
    assert len(nics) >= 2
    if name == "aws61":
        assert nics["eth1"] == (4, 4), "the session lab's 4-queue NIC"
    m = metrics(guests, name)
    assert m[("vpsnet_devices_attached", ())] == len(nics)
    for dev, (nrx, ntx) in nics.items():
        for fam in ("vpsnet_queue_packets_total", "vpsnet_queue_bytes_total"):
            for direction, n in (("rx", nrx), ("tx", ntx)):
                queues = {dict(lk)["queue"] for lk in
                          series(m, fam, device=dev, direction=direction)}
                assert queues == {str(q) for q in range(n)}, (dev, fam, direction)
        assert len(series(m, "vpsnet_txq_stopped", device=dev)) == ntx
        assert sum(series(m, "vpsnet_health_state", device=dev, state="ok").values()) == 1


def _bracketed_read(lab: Lab, name: str, dev: str) -> tuple[dict[str, int], dict[str, int],
                                                           str, dict[str, int], dict[str, int]]:
    """Device totals and ethtool stats, then the metrics file, then both again,
    in one guest command: whatever moved between the reads bounds the error."""
    part = (f"ip -j -s link show dev {dev}; echo {SEP}; ethtool -S {dev}; echo {SEP}; ")
    out = lab.ssh(name, f"{part} cat {METRICS}; echo {SEP}; {part}", check=True).stdout
    ip1, et1, text, ip2, et2, _ = out.split(SEP + "\n")
    return _ip(ip1), _ethtool(et1), text, _ip(ip2), _ethtool(et2)


def _ip(out: str) -> dict[str, int]:
    st = json.loads(out)[0]["stats64"]
    return {f"{d}_{k}": int(st[d][k]) for d in ("rx", "tx") for k in ("packets", "bytes")}


def _ethtool(out: str) -> dict[str, int]:
    stats = {}
    for ln in out.splitlines()[1:]:
        k, _, v = ln.strip().rpartition(":")
        if k and v.strip().isdigit():
            stats[k.strip()] = int(v)
    return stats


def _check_read(name: str, dev: str, read: tuple[dict[str, int], dict[str, int], str,
                                                 dict[str, int], dict[str, int]]) -> None:
    ip1, et1, text, ip2, et2 = read
    m = parse_metrics(text)
    for d in ("rx", "tx"):
        for k in ("packets", "bytes"):
            dev_total = m[(f"vpsnet_device_{k}_total",
                           tuple(sorted({"netns": _netns(m, dev), "device": dev,
                                         "driver": "virtio_net", "direction": d}.items())))]
            assert ip1[f"{d}_{k}"] <= dev_total <= ip2[f"{d}_{k}"], (name, dev, d, k)
            queues = series(m, f"vpsnet_queue_{k}_total", device=dev, direction=d)
            qsum = sum(queues.values())
            assert ip1[f"{d}_{k}"] <= qsum <= ip2[f"{d}_{k}"], (name, dev, d, k, queues)
            for lk, v in queues.items():
                ename = f"{d}_queue_{dict(lk)['queue']}_{k}"
                if ename in et1:  # virtio_net <= 6.8 has per-queue ethtool names
                    assert et1[ename] <= v <= et2[ename], (name, ename)


def _netns(m: dict[tuple[str, tuple[tuple[str, str], ...]], float], dev: str) -> str:
    return next(dict(lk)["netns"] for lk in series(m, "vpsnet_link_up", device=dev))


@pytest.mark.parametrize(("name", "dev"), [("aws61", "eth1"), ("aws61", "eth2"),
                                           ("gcp612", "eth1")])
def test_counters_agree_with_ethtool_and_ip_link(guests: Lab, name: str, dev: str) -> None:
    load(guests, name, interval_ms=200)
    before = _bracketed_read(guests, name, dev)
    _check_read(name, dev, before)
    if name == "aws61" and dev == "eth1":
        nic = guests.spec.guest(name).nics[0]
        assert nic.netns and nic.peer_address
        peer = nic.peer_address.split("/")[0]
        srv = subprocess.run(["ip", "netns", "exec", nic.netns, "iperf3", "-s", "-1", "-D",
                              "-B", peer, "-p", "5299"], capture_output=True, text=True)
        assert srv.returncode == 0, srv.stderr
        # 2 vCPUs on 4 queues: virtio_net's XPS gives each CPU two queues and
        # iperf3 sends from one thread, so each flow picks one of two by hash.
        # 4 flows all landed on one queue in CI (1 run in 8); 16 make it 1 in 2^15.
        r = guests.ssh(name, f"iperf3 -c {peer} -p 5299 -P 16 -t 3 -J", timeout=120)
        assert r.rc == 0, r.stdout[-2000:]
    else:
        peer = guests.spec.guest(name).nics[-1].peer_address
        assert peer
        r = guests.ssh(name, f"ping -q -c 200 -i 0.01 -s 1000 {peer.split('/')[0]}")
        assert r.rc == 0, r.stdout
    after = _bracketed_read(guests, name, dev)
    _check_read(name, dev, after)
    # the traffic shows up in the module's counters as in the device's
    m0, m1 = parse_metrics(before[2]), parse_metrics(after[2])
    for d in ("rx", "tx"):
        q0 = sum(series(m0, "vpsnet_queue_packets_total", device=dev, direction=d).values())
        q1 = sum(series(m1, "vpsnet_queue_packets_total", device=dev, direction=d).values())
        ip_delta_max = after[3][f"{d}_packets"] - before[0][f"{d}_packets"]
        ip_delta_min = after[0][f"{d}_packets"] - before[3][f"{d}_packets"]
        assert ip_delta_min >= 200, (d, ip_delta_min)
        assert ip_delta_min <= q1 - q0 <= ip_delta_max
    if dev == "eth1" and name == "aws61":
        busy = [lk for lk, v in series(m1, "vpsnet_queue_packets_total", device=dev,
                                       direction="tx").items()
                if v - m0.get(("vpsnet_queue_packets_total", lk), 0) > 10]
        assert len(busy) >= 2, "16 flows should use more than one TX queue"


@pytest.mark.parametrize("name", GUESTS)
def test_metrics_parse_and_match_manifest(guests: Lab, name: str, tmp_path: Path) -> None:
    load(guests, name)
    text = guests.ssh(name, f"cat {METRICS}", check=True).stdout
    parse_metrics(text)  # raises on a duplicate series
    families = {f.name: f for f in text_string_to_metric_families(text)}
    proc_manifest = json.loads(guests.ssh(name, f"cat {MANIFEST}", check=True).stdout)
    ko = tmp_path / "vpsnet.ko"
    ko.write_bytes(base64.b64decode(guests.ssh(name, f"base64 -w0 {KO}", check=True).stdout))
    ko_manifest = read_manifest(ko)
    assert ko_manifest == proc_manifest
    declared = {m["name"]: m for m in proc_manifest["metrics"]}
    assert family_names(proc_manifest) == set(declared)
    exposed = {(n + "_total" if f.type == "counter" else n) for n, f in families.items()}
    assert exposed == set(declared)
    for n, f in families.items():
        d = declared[n + "_total" if f.type == "counter" else n]
        assert f.type == d["type"]
        assert f.documentation == d["help"]
        for s in f.samples:
            assert list(s.labels) == d["labels"], (n, s.labels)
    assert families["vpsnet_info"].samples[0].labels == {
        "version": proc_manifest["version"], "abi": str(proc_manifest["abi_major"])}
