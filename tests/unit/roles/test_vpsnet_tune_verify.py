"""Unit tests of roles/vpsnet_tune/files/vpsnet-tune verify and nics against a fake
root with stub tools (vpsnet_tune_helpers.Host): each kind of drift on one line,
errors never clean, the textfile metric, exit codes, bad arguments. save and
restore: test_vpsnet_tune_record.py. The real thing runs on lab guests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from testlib.vpsnet_tune_helpers import SCRIPT, Host, _tc, install, vt


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Host:
    return Host(tmp_path, monkeypatch)


def test_clean_host_exits_0_and_prints_nothing(
    host: Host, capsys: pytest.CaptureFixture[str]
) -> None:
    assert host.verify() == 0
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    # the IRQ writer was asked, on the same root
    assert (host.stubs / "vpsnet-irq-affinity.calls").read_text().split() == [
        "--dry-run",
        "--root",
        str(host.root),
    ]


@pytest.mark.parametrize(
    ("change", "line"),
    [
        (
            lambda h: h.sysctl("net.core.somaxconn", "128"),
            "sysctl net.core.somaxconn: 4096 planned, 128 live",
        ),
        (
            lambda h: h.sysctl("net.ipv4.tcp_rmem", "4096\t131072\t6291456"),
            "sysctl net.ipv4.tcp_rmem: 4096 131072 33554432 planned, 4096 131072 6291456 live",
        ),
        (
            lambda h: h.sysctl("vm.nr_hugepages", "16"),
            "hugepages vm.nr_hugepages: 0 planned, 16 live",
        ),
        (lambda h: h.set_tc(_tc(4, root="fq_codel")), "qdisc eth0 root: mq planned, fq_codel live"),
        (
            lambda h: h.set_tc(_tc(4, child="fq_codel", only=3)),
            "qdisc eth0 tx-2: fq planned, fq_codel live",
        ),
        (lambda h: h.set_tc(_tc(3)), "qdisc eth0 tx-3: fq planned, none live"),
        (
            lambda h: h.set_tc(_tc(4, maxrate=57 * 125_000, only=1)),
            "qdisc eth0 tx-0: fq planned, fq maxrate 57mbit live",
        ),
        (
            lambda h: h.set_ethtool(2, 1024, "on"),
            "ethtool eth0 channels combined: 4 planned, 2 live",
        ),
        (lambda h: h.set_ethtool(4, 256, "on"), "ethtool eth0 ring rx: 1024 planned, 256 live"),
        (lambda h: h.set_ethtool(4, 1024, "off"), "ethtool eth0 adaptive-rx: on planned, off live"),
        (
            lambda h: h.stub("vpsnet-irq-affinity_any", "eth0: irq 26 (queue 0) -> cpu 1\n"),
            "affinity eth0: irq 26 (queue 0) -> cpu 1",
        ),
        (
            lambda h: h.stub("vpsnet-irq-affinity_any", "eth0: xps tx-1 -> 2\n"),
            "affinity eth0: xps tx-1 -> 2",
        ),
    ],
)
def test_each_kind_of_drift_is_named_on_one_line(
    host: Host,
    capsys: pytest.CaptureFixture[str],
    change: Callable[[Host], object],
    line: str,
) -> None:
    change(host)
    assert host.verify() == 1
    assert capsys.readouterr().out.splitlines() == [line]


def test_qdisc_parameters_normalised(host: Host, capsys: pytest.CaptureFixture[str]) -> None:
    host.plan["qdisc"] = {"eth0": "fq maxrate 57mbit"}
    host.write_plan()
    host.set_tc(_tc(4, maxrate=57 * 125_000))
    assert host.verify() == 0
    host.set_tc(_tc(4))  # tc shows no maxrate when uncapped
    assert host.verify() == 1
    assert "qdisc eth0 tx-0: fq maxrate 57mbit planned, fq live" in capsys.readouterr().out


def test_single_queue_nic_checks_the_root(host: Host, capsys: pytest.CaptureFixture[str]) -> None:
    for q in range(1, 4):
        (host.root / f"sys/class/net/eth0/queues/tx-{q}/xps_cpus").unlink()
        (host.root / f"sys/class/net/eth0/queues/tx-{q}").rmdir()
    host.set_tc(json.dumps([{"kind": "fq", "handle": "8001:", "root": True, "options": {}}]))
    assert host.verify() == 0
    host.set_tc(json.dumps([{"kind": "pfifo_fast", "handle": "0:", "root": True}]))
    assert host.verify() == 1
    assert capsys.readouterr().out == "qdisc eth0 root: fq planned, pfifo_fast live\n"


def test_several_drifts_all_listed_json(host: Host, capsys: pytest.CaptureFixture[str]) -> None:
    host.sysctl("net.core.somaxconn", "128")
    host.set_ethtool(2, 1024, "on")
    assert host.verify("--json") == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "drift" and doc["errors"] == []
    assert [(d["kind"], d["item"], d["planned"], d["live"]) for d in doc["drift"]] == [
        ("sysctl", "net.core.somaxconn", "4096", "128"),
        ("ethtool", "eth0 channels combined", "4", "2"),
    ]


@pytest.mark.parametrize(
    "plan", [None, "{not json", '{"version": 2}', '{"version": 1, "qdisc": {"eth0": "htb"}}']
)
def test_missing_or_bad_plan_is_an_error(
    host: Host, capsys: pytest.CaptureFixture[str], plan: str | None
) -> None:
    path = host.root / "etc/vpsnet/tune-plan.json"
    if plan is None:
        path.unlink()
    else:
        path.write_text(plan)
    assert host.verify() == 2
    out = capsys.readouterr()
    assert out.out == "" and "vpsnet-tune:" in out.err and "tune-plan.json" in out.err


@pytest.mark.parametrize(
    "break_it",
    [
        lambda h: (h.stubs / "tc.rc").write_text("1"),
        lambda h: (h.stubs / "ethtool.rc").write_text("94"),
        lambda h: (h.stubs / "vpsnet-irq-affinity.rc").write_text("1"),
        lambda h: (h.bin / "vpsnet-irq-affinity").unlink(),
        lambda h: h.set_tc("garbage"),
        lambda h: (h.root / "proc/sys/net/core/somaxconn").write_bytes(b"\xff\xfe"),
    ],
)
def test_a_failing_tool_is_an_error_not_clean(
    host: Host,
    capsys: pytest.CaptureFixture[str],
    break_it: Callable[[Host], object],
) -> None:
    break_it(host)
    assert host.verify() == 2
    assert "vpsnet-tune:" in capsys.readouterr().err


def test_drift_and_error_together_still_lists_the_drift(
    host: Host, capsys: pytest.CaptureFixture[str]
) -> None:
    host.sysctl("net.core.somaxconn", "128")
    (host.stubs / "ethtool.rc").write_text("1")
    assert host.verify() == 2
    out = capsys.readouterr()
    assert "sysctl net.core.somaxconn: 4096 planned, 128 live" in out.out
    assert "ethtool -l eth0: exit 1" in out.err


def _prom(directory: Path) -> dict[str, str]:
    text = (directory / "vpsnet_tune.prom").read_text()
    assert text.endswith("\n")
    return dict(line.split(" ", 1) for line in text.splitlines() if not line.startswith("#"))


def test_textfile(host: Host, tmp_path: Path) -> None:
    out = tmp_path / "textfile"
    out.mkdir()
    assert host.verify("--textfile", str(out)) == 0
    prom = _prom(out)
    assert prom["vpsnet_tune_drift_items"] == "0" and prom["vpsnet_tune_verify_success"] == "1"
    assert float(prom["vpsnet_tune_verify_timestamp_seconds"]) > 1.7e9
    host.sysctl("net.core.somaxconn", "128")
    host.set_ethtool(4, 1024, "off")
    assert host.verify("--textfile", str(out)) == 1
    assert _prom(out)["vpsnet_tune_drift_items"] == "2"
    (host.root / "etc/vpsnet/tune-plan.json").unlink()
    assert host.verify("--textfile", str(out)) == 2
    prom = _prom(out)
    assert prom["vpsnet_tune_drift_items"] == "NaN" and prom["vpsnet_tune_verify_success"] == "0"
    assert sorted(p.name for p in out.iterdir()) == ["vpsnet_tune.prom"]  # no temp file left


def test_textfile_parses_with_prometheus_client(host: Host, tmp_path: Path) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    host.verify("--textfile", str(tmp_path))
    fams = {
        f.name: f
        for f in text_string_to_metric_families((tmp_path / "vpsnet_tune.prom").read_text())
    }
    assert set(fams) == {
        "vpsnet_tune_drift_items",
        "vpsnet_tune_verify_success",
        "vpsnet_tune_verify_timestamp_seconds",
    }
    assert all(f.type == "gauge" for f in fams.values())


def test_cli_exit_codes_as_a_process(host: Host) -> None:
    env = dict(os.environ)
    argv = [sys.executable, str(SCRIPT), "verify", "--root", str(host.root)]
    assert subprocess.run(argv, env=env, check=False).returncode == 0
    host.sysctl("net.core.somaxconn", "1")
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert (
        done.returncode == 1 and done.stdout == "sysctl net.core.somaxconn: 4096 planned, 1 live\n"
    )
    done = subprocess.run(
        [*argv, "--plan", str(host.root / "nope.json")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr and "no plan" in done.stderr


def test_installed_layout_finds_its_libraries(host: Host, tmp_path: Path) -> None:
    """/usr/local/lib/vpsnet as the role installs it and the /usr/local/sbin link: the
    command imports its libraries from its real directory (no copy in the repo's)."""
    sbin = install(tmp_path / "usr-local", "vpsnet-tune")
    host.sysctl("net.core.somaxconn", "1")
    done = subprocess.run([sys.executable, str(sbin / "vpsnet-tune"), "verify", "--root",
                           str(host.root)], capture_output=True, text=True, check=False,
                          cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert done.stdout == "sysctl net.core.somaxconn: 4096 planned, 1 live\n"


FIXTURES = [HealthCheck.function_scoped_fixture]  # tmp_path, capsys reused: nothing is written
BAD_PATHS = st.one_of(st.just(""), st.text(min_size=1, max_size=20).map(lambda t: t + "\n"),
                      st.text(min_size=1, max_size=20).map(lambda t: "/x\x00" + t))


@settings(max_examples=40, deadline=None, suppress_health_check=FIXTURES)
@given(option=st.sampled_from(["--root", "--plan", "--textfile", "--dir"]), value=BAD_PATHS)
def test_bad_path_arguments_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    argv = {"--dir": ["restore", "--dir", value]}.get(option, ["verify", option, value])
    with pytest.raises(SystemExit) as exit_:
        vt.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") <= 3  # argparse's usage + one line
    assert list(tmp_path.iterdir()) == []


def test_nics_puts_back_only_what_drifted(host: Host, capsys: pytest.CaptureFixture[str]) -> None:
    """What a reboot or a hotplug loses: channels, rings and adaptive RX go back
    with one ethtool call each; a NIC as planned gets none."""
    assert vt.main(["nics", "--root", str(host.root)]) == 0
    assert capsys.readouterr().out == ""
    assert "-L" not in (host.stubs / "ethtool.calls").read_text()
    host.set_ethtool(combined=2, rx=256, adaptive="off")
    assert vt.main(["nics", "--root", str(host.root), "eth0"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["ethtool -L eth0 combined 4", "ethtool -G eth0 rx 1024",
                   "ethtool -C eth0 adaptive-rx on"]
    calls = (host.stubs / "ethtool.calls").read_text().splitlines()
    assert calls[-3:] == ["-L eth0 combined 4", "-G eth0 rx 1024", "-C eth0 adaptive-rx on"]


def test_nics_fails_closed(host: Host, capsys: pytest.CaptureFixture[str]) -> None:
    host.set_ethtool(combined=2, rx=1024, adaptive="on")
    (host.stubs / "ethtool.rc").write_text("1")
    assert vt.main(["nics", "--root", str(host.root)]) == 2
    assert "ethtool -l eth0: exit 1" in capsys.readouterr().err
    assert vt.main(["nics", "--root", str(host.root), "--plan", "/nonexistent"]) == 2
    with pytest.raises(SystemExit) as bad:
        vt.main(["nics", "--root", str(host.root), "eth0/../x"])
    assert bad.value.code == 2
