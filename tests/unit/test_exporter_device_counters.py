"""vpsnet-exporter serves the module's issue-22 counters as Prometheus metrics:
ENA's allowance counters per device and counter, the conntrack allowance gauge,
gVNIC's per-queue descriptors and RX drops (families and help as vpsnet_families.h
declares them, series as vpsnet_proc.c writes them)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from vpsnet_tools.exporter_metrics import make_registry, render

from .test_stats_match import families_from_source

DEV_ENA = 'netns="4026531840",device="eth0",driver="ena"'
DEV_GVE = 'netns="4026531840",device="ens4",driver="gve"'
SERIES = {
    "vpsnet_info": ['{version="1.0.0",abi="1"} 1'],
    "vpsnet_device_allowance_exceeded_total": [
        f'{{{DEV_ENA},counter="bw_in_allowance_exceeded"}} 1520',
        f'{{{DEV_ENA},counter="bw_out_allowance_exceeded"}} 37',
        f'{{{DEV_ENA},counter="pps_allowance_exceeded"}} 4096',
        f'{{{DEV_ENA},counter="conntrack_allowance_exceeded"}} 0',
        f'{{{DEV_ENA},counter="linklocal_allowance_exceeded"}} 12'],
    "vpsnet_device_conntrack_allowance_available": [f"{{{DEV_ENA}}} 31744"],
    "vpsnet_queue_drops_total": [f'{{{DEV_GVE},queue="1",direction="rx"}} 108642'],
    "vpsnet_queue_descriptors_total": [f'{{{DEV_GVE},queue="1",direction="rx"}} 140002',
                                       f'{{{DEV_GVE},queue="1",direction="tx"}} 180400'],
}


def module_text() -> str:
    """The families in the module's order, with its HELP and TYPE lines."""
    out = []
    for fam in families_from_source():
        name = str(fam["name"])
        out += [f"# HELP {name} {fam['help']}", f"# TYPE {name} {fam['type']}"]
        out += [name + s for s in SERIES.get(name, [])]
    return "\n".join(out) + "\n"


def test_exporter_serves_the_new_counters(tmp_path: Path) -> None:
    f = tmp_path / "metrics"
    f.write_text(module_text())
    registry, _ = make_registry(str(f))
    fams = {m.name: m for m in text_string_to_metric_families(render(registry).decode())}
    assert fams["vpsnet_up"].samples[0].value == 1

    exceeded = fams["vpsnet_device_allowance_exceeded"]
    assert exceeded.type == "counter"
    got = {(s.labels["device"], s.labels["driver"], s.labels["counter"]): s.value
           for s in exceeded.samples if s.name.endswith("_total")}
    assert got == {("eth0", "ena", "bw_in_allowance_exceeded"): 1520,
                   ("eth0", "ena", "bw_out_allowance_exceeded"): 37,
                   ("eth0", "ena", "pps_allowance_exceeded"): 4096,
                   ("eth0", "ena", "conntrack_allowance_exceeded"): 0,
                   ("eth0", "ena", "linklocal_allowance_exceeded"): 12}
    assert "allowance" in exceeded.documentation

    avail = fams["vpsnet_device_conntrack_allowance_available"]
    assert avail.type == "gauge" and [s.value for s in avail.samples] == [31744]

    desc = fams["vpsnet_queue_descriptors"]
    assert desc.type == "counter"
    assert {(s.labels["queue"], s.labels["direction"]): s.value for s in desc.samples
            if s.name.endswith("_total")} == {("1", "rx"): 140002, ("1", "tx"): 180400}
    # gve's descriptors are not packets: nothing turns them into queue packets
    assert not fams["vpsnet_queue_packets"].samples
