# ruff: noqa: E501  (SAMPLE reproduces the module output line for line)
"""vpsnet-status: parsing with prometheus_client, table, JSON, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from vpsnet_tools import status, status_metrics

# A metrics file as vpsnet.ko prints it (one virtio NIC with 2 queue pairs
# that is tx_stalled, one ENA NIC without per-queue series in another netns that is ok, 1 CPU).
# test_manifest.py checks these families against a freshly built module.
SAMPLE = """\
# HELP vpsnet_info vpsnet module version and interface ABI major (always 1)
# TYPE vpsnet_info gauge
vpsnet_info{version="1.0.0",abi="1"} 1
# HELP vpsnet_devices_attached Network devices vpsnet is attached to
# TYPE vpsnet_devices_attached gauge
vpsnet_devices_attached 2
# HELP vpsnet_link_up 1 if the device is administratively up and has carrier
# TYPE vpsnet_link_up gauge
vpsnet_link_up{netns="4026531840",device="eth0",driver="virtio_net"} 1
vpsnet_link_up{netns="4026532281",device="eth1",driver="ena"} 1
# HELP vpsnet_link_flaps_total Carrier losses seen since attach
# TYPE vpsnet_link_flaps_total counter
vpsnet_link_flaps_total{netns="4026531840",device="eth0",driver="virtio_net"} 2
vpsnet_link_flaps_total{netns="4026532281",device="eth1",driver="ena"} 0
# HELP vpsnet_link_last_change_timestamp_seconds Unix time of the last carrier change or of attach
# TYPE vpsnet_link_last_change_timestamp_seconds gauge
vpsnet_link_last_change_timestamp_seconds{netns="4026531840",device="eth0",driver="virtio_net"} 1764070000
vpsnet_link_last_change_timestamp_seconds{netns="4026532281",device="eth1",driver="ena"} 1764070001
# HELP vpsnet_health_state Health state: 1 for the current state, else 0
# TYPE vpsnet_health_state gauge
vpsnet_health_state{netns="4026531840",device="eth0",driver="virtio_net",state="ok"} 0
vpsnet_health_state{netns="4026531840",device="eth0",driver="virtio_net",state="rx_silent"} 0
vpsnet_health_state{netns="4026531840",device="eth0",driver="virtio_net",state="tx_stalled"} 1
vpsnet_health_state{netns="4026531840",device="eth0",driver="virtio_net",state="carrier_down"} 0
vpsnet_health_state{netns="4026532281",device="eth1",driver="ena",state="ok"} 1
vpsnet_health_state{netns="4026532281",device="eth1",driver="ena",state="rx_silent"} 0
vpsnet_health_state{netns="4026532281",device="eth1",driver="ena",state="tx_stalled"} 0
vpsnet_health_state{netns="4026532281",device="eth1",driver="ena",state="carrier_down"} 0
# HELP vpsnet_health_transitions_total Health state transitions since attach
# TYPE vpsnet_health_transitions_total counter
vpsnet_health_transitions_total{netns="4026531840",device="eth0",driver="virtio_net"} 5
vpsnet_health_transitions_total{netns="4026532281",device="eth1",driver="ena"} 0
# HELP vpsnet_device_packets_total Device packets (rtnl_link_stats64)
# TYPE vpsnet_device_packets_total counter
vpsnet_device_packets_total{netns="4026531840",device="eth0",driver="virtio_net",direction="rx"} 1000
vpsnet_device_packets_total{netns="4026531840",device="eth0",driver="virtio_net",direction="tx"} 900
# HELP vpsnet_device_bytes_total Device bytes (rtnl_link_stats64)
# TYPE vpsnet_device_bytes_total counter
vpsnet_device_bytes_total{netns="4026531840",device="eth0",driver="virtio_net",direction="rx"} 150000
vpsnet_device_bytes_total{netns="4026531840",device="eth0",driver="virtio_net",direction="tx"} 90000
# HELP vpsnet_device_drops_total Device dropped packets (rtnl_link_stats64)
# TYPE vpsnet_device_drops_total counter
vpsnet_device_drops_total{netns="4026531840",device="eth0",driver="virtio_net",direction="rx"} 3
vpsnet_device_drops_total{netns="4026531840",device="eth0",driver="virtio_net",direction="tx"} 0
# HELP vpsnet_device_errors_total Device errors (rtnl_link_stats64)
# TYPE vpsnet_device_errors_total counter
vpsnet_device_errors_total{netns="4026531840",device="eth0",driver="virtio_net",direction="rx"} 0
vpsnet_device_errors_total{netns="4026531840",device="eth0",driver="virtio_net",direction="tx"} 0
# HELP vpsnet_device_allowance_exceeded_total Packets queued or dropped because an instance allowance was exceeded (ENA)
# TYPE vpsnet_device_allowance_exceeded_total counter
vpsnet_device_allowance_exceeded_total{netns="4026532281",device="eth1",driver="ena",counter="bw_in_allowance_exceeded"} 0
vpsnet_device_allowance_exceeded_total{netns="4026532281",device="eth1",driver="ena",counter="pps_allowance_exceeded"} 12
# HELP vpsnet_device_conntrack_allowance_available Connections the instance can still track before its conntrack allowance (ENA)
# TYPE vpsnet_device_conntrack_allowance_available gauge
# HELP vpsnet_queue_packets_total Per-queue packets from the driver statistics
# TYPE vpsnet_queue_packets_total counter
vpsnet_queue_packets_total{netns="4026531840",device="eth0",driver="virtio_net",queue="0",direction="rx"} 600
vpsnet_queue_packets_total{netns="4026531840",device="eth0",driver="virtio_net",queue="1",direction="rx"} 400
vpsnet_queue_packets_total{netns="4026531840",device="eth0",driver="virtio_net",queue="0",direction="tx"} 500
vpsnet_queue_packets_total{netns="4026531840",device="eth0",driver="virtio_net",queue="1",direction="tx"} 400
# HELP vpsnet_queue_bytes_total Per-queue bytes from the driver statistics
# TYPE vpsnet_queue_bytes_total counter
vpsnet_queue_bytes_total{netns="4026531840",device="eth0",driver="virtio_net",queue="0",direction="rx"} 90000
vpsnet_queue_bytes_total{netns="4026531840",device="eth0",driver="virtio_net",queue="1",direction="rx"} 60000
# HELP vpsnet_queue_drops_total Per-queue drops from the driver statistics
# TYPE vpsnet_queue_drops_total counter
vpsnet_queue_drops_total{netns="4026531840",device="eth0",driver="virtio_net",queue="0",direction="rx"} 1
vpsnet_queue_drops_total{netns="4026531840",device="eth0",driver="virtio_net",queue="1",direction="rx"} 2
vpsnet_queue_drops_total{netns="4026531840",device="eth0",driver="virtio_net",queue="0",direction="tx"} 0
# HELP vpsnet_queue_descriptors_total Per-queue descriptors completed (gve, which counts no packets per queue)
# TYPE vpsnet_queue_descriptors_total counter
# HELP vpsnet_txq_stopped 1 if the TX queue is stopped
# TYPE vpsnet_txq_stopped gauge
vpsnet_txq_stopped{netns="4026531840",device="eth0",driver="virtio_net",queue="0"} 1
# HELP vpsnet_txq_timeouts_total TX watchdog timeouts of the queue
# TYPE vpsnet_txq_timeouts_total counter
vpsnet_txq_timeouts_total{netns="4026531840",device="eth0",driver="virtio_net",queue="0"} 1
# HELP vpsnet_txq_bql_inflight_bytes Bytes queued to the device and not yet completed (BQL)
# TYPE vpsnet_txq_bql_inflight_bytes gauge
vpsnet_txq_bql_inflight_bytes{netns="4026531840",device="eth0",driver="virtio_net",queue="0"} 4096
# HELP vpsnet_softnet_processed_total Packets processed by the CPU backlog (softnet_data)
# TYPE vpsnet_softnet_processed_total counter
vpsnet_softnet_processed_total{cpu="0"} 12345
# HELP vpsnet_softnet_dropped_total Packets dropped because the CPU backlog was full
# TYPE vpsnet_softnet_dropped_total counter
vpsnet_softnet_dropped_total{cpu="0"} 0
# HELP vpsnet_softnet_time_squeeze_total NET_RX runs that ended with work left (budget or time)
# TYPE vpsnet_softnet_time_squeeze_total counter
vpsnet_softnet_time_squeeze_total{cpu="0"} 7
# HELP vpsnet_softirq_net_rx_total NET_RX softirqs handled by the CPU
# TYPE vpsnet_softirq_net_rx_total counter
vpsnet_softirq_net_rx_total{cpu="0"} 4242
"""


def sample_families() -> set[str]:
    """Exposed family names of SAMPLE (the # TYPE lines)."""
    return {ln.split()[2] for ln in SAMPLE.splitlines() if ln.startswith("# TYPE ")}


def test_sample_is_valid_exposition_without_duplicates() -> None:
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for fam in text_string_to_metric_families(SAMPLE):
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            assert key not in seen, key
            seen.add(key)
    assert len(seen) > 40


def test_parse_metrics() -> None:
    st = status_metrics.parse_metrics(SAMPLE)
    assert (st.version, st.abi) == ("1.0.0", "1")
    assert [d.device for d in st.devices] == ["eth0", "eth1"]
    eth0, eth1 = st.devices
    assert (eth0.driver, eth0.state, eth0.link_up, eth0.flaps, eth0.transitions) == (
        "virtio_net", "tx_stalled", True, 2, 5)
    assert (eth1.driver, eth1.state, eth1.link_up, eth1.flaps) == ("ena", "ok", True, 0)
    assert eth1.netns == "4026532281"
    q = {(x.direction, x.queue): x for x in eth0.queues}
    assert sorted(q) == [("rx", 0), ("rx", 1), ("tx", 0), ("tx", 1)]
    assert (q["rx", 1].packets, q["rx", 1].bytes, q["rx", 1].drops) == (400, 60000, 2)
    assert (q["tx", 1].packets, q["tx", 1].bytes, q["tx", 1].drops) == (400, None, None)
    assert eth1.queues == []


def test_table() -> None:
    out = status_metrics.render_table(status_metrics.parse_metrics(SAMPLE))
    lines = out.splitlines()
    assert lines[0] == "vpsnet 1.0.0 (abi 1): 2 device(s)"
    assert lines[1].split() == ["DEVICE", "DRIVER", "NETNS", "LINK", "STATE", "FLAPS",
                                "TRANSITIONS"]
    assert lines[2].split() == ["eth0", "virtio_net", "4026531840", "up", "tx_stalled", "2", "5"]
    assert lines[3].split() == ["eth1", "ena", "4026532281", "up", "ok", "0", "0"]
    assert "eth0 (virtio_net) queues:" in lines
    assert any(ln.split() == ["rx1", "400", "60000", "2"] for ln in lines)
    assert any(ln.split() == ["tx1", "400", "-", "-"] for ln in lines)


def test_main_table_and_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "metrics"
    f.write_text(SAMPLE)
    assert status.main(["--file", str(f)]) == status.EXIT_UNHEALTHY
    assert "tx_stalled" in capsys.readouterr().out

    healthy = SAMPLE.replace('state="ok"} 0', 'state="ok"} 1').replace(
        'state="tx_stalled"} 1', 'state="tx_stalled"} 0')
    f.write_text(healthy)
    assert status.main(["--file", str(f)]) == status.EXIT_OK


def test_main_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "metrics"
    f.write_text(SAMPLE)
    status.main(["--file", str(f), "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert doc["version"] == "1.0.0"
    assert doc["devices"][0]["state"] == "tx_stalled"
    assert doc["devices"][0]["queues"][0] == {
        "queue": 0, "direction": "rx", "packets": 600, "bytes": 90000, "drops": 1}


def test_missing_file_means_module_not_loaded(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    rc = status.main(["--file", str(tmp_path / "nope")])
    assert rc == status.EXIT_NO_MODULE
    assert "is the vpsnet module loaded" in capsys.readouterr().err


def test_garbage_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "metrics"
    f.write_text('vpsnet_link_up{device="eth0" 1\n')
    assert status.main(["--file", str(f)]) == status.EXIT_BAD_INPUT
    assert "unparsable" in capsys.readouterr().err


def test_empty_module_output() -> None:
    text = SAMPLE.split("# HELP vpsnet_link_up")[0]
    st = status_metrics.parse_metrics(text)
    assert st.devices == []
    assert "0 device(s)" in status_metrics.render_table(st)


HEALTHY = SAMPLE.replace('state="ok"} 0', 'state="ok"} 1').replace(
    'state="tx_stalled"} 1', 'state="tx_stalled"} 0')


class FakeClock:
    """Time that only moves when the gate sleeps; each sleep may rewrite the file."""

    def __init__(self, on_sleep: list[str], f: Path) -> None:
        self.now = 0.0
        self.on_sleep = on_sleep
        self.f = f

    def clock(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.now += s
        if self.on_sleep:
            self.f.write_text(self.on_sleep.pop(0))


def run_gate(tmp_path: Path, first: str, then: list[str], **kw: object) -> status.GateResult:
    f = tmp_path / "metrics"
    f.write_text(first)
    fc = FakeClock(list(then), f)
    args: dict[str, object] = {"samples": 3, "interval": 1.0, "timeout": 10.0,
                               "expect_version": "1.0.0", "min_devices": 2}
    args.update(kw)
    return status.gate(f, clock=fc.clock, sleep=fc.sleep, **args)  # type: ignore[arg-type]


def test_gate_needs_consecutive_healthy_samples(tmp_path: Path) -> None:
    # healthy, unhealthy, then healthy three times: the flap resets the count
    res = run_gate(tmp_path, HEALTHY, [SAMPLE, HEALTHY, HEALTHY, HEALTHY])
    assert res.healthy and res.samples == 5 and res.consecutive == 3


def test_gate_times_out_with_the_reason(tmp_path: Path) -> None:
    res = run_gate(tmp_path, SAMPLE, [], timeout=4.0)
    assert not res.healthy
    assert res.samples == 5  # t = 0..4
    assert res.reason == "eth0 (virtio_net) is tx_stalled"


def test_gate_checks_version_and_devices(tmp_path: Path) -> None:
    res = run_gate(tmp_path, HEALTHY, [], timeout=0, expect_version="1.1.0", min_devices=3)
    assert not res.healthy
    assert "loaded version is '1.0.0', expected '1.1.0'" in res.reason
    assert "2 device(s) attached, expected at least 3" in res.reason


def test_gate_waits_for_the_module(tmp_path: Path) -> None:
    f = tmp_path / "metrics"
    fc = FakeClock([HEALTHY], f)  # appears after the first sleep
    res = status.gate(f, 1, 1.0, 5.0, "1.0.0", 1, clock=fc.clock, sleep=fc.sleep)
    assert res.healthy and res.samples == 2


def test_gate_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "metrics"
    f.write_text(HEALTHY)
    args = ["--file", str(f), "--samples", "2", "--interval", "0.01", "--timeout", "1"]
    assert status.main([*args, "--expect-version", "1.0.0", "--json"]) == status.EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["healthy"] and doc["consecutive"] == 2 and doc["status"]["version"] == "1.0.0"
    assert status.main([*args, "--expect-version", "9.9.9"]) == status.EXIT_UNHEALTHY
    assert "expected '9.9.9'" in capsys.readouterr().err
    assert status.main(["--file", str(f), "--samples", "0"]) == status.EXIT_BAD_INPUT
    assert "--samples 0 must be >= 1" in capsys.readouterr().err
