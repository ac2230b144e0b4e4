"""Unit tests of roles/vpsnet_tune/files/vpsnet-tune (verify, save, restore) against a
fake root: a /proc and /sys tree, and stub `tc`, `ethtool`, `vpsnet-irq-affinity` and
`vpsnet-guard` executables on PATH that print what the test put in their files. The
real thing runs on lab guests (the lead's guest tests)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "roles/vpsnet_tune/files/vpsnet-tune"


def _load() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("vpsnet_tune_cli", str(SCRIPT))
    spec = importlib.util.spec_from_loader("vpsnet_tune_cli", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


vt = _load()

SYSCTLS = {
    "net.core.somaxconn": "4096",
    "net.ipv4.tcp_rmem": "4096 131072 33554432",
    "net.core.default_qdisc": "fq",
    "net.ipv4.tcp_congestion_control": "bbr",
}
CH = """Channel parameters for eth0:
Pre-set maximums:
RX:		n/a
TX:		n/a
Other:		n/a
Combined:	4
Current hardware settings:
RX:		n/a
TX:		n/a
Other:		n/a
Combined:	{combined}
"""
RINGS = """Ring parameters for eth0:
Pre-set maximums:
RX:		1024
TX:		1024
Current hardware settings:
RX:		{rx}
TX:		1024
"""
COALESCE = "Coalesce parameters for eth0:\nAdaptive RX: {adaptive}  TX: off\nrx-usecs: 0\n"
STUB = """#!/bin/sh
# {name} stub: prints $STUBS/{name}<args joined by _>, exits with $STUBS/{name}.rc
key=$(printf '%s_' "$@")
[ -f "$STUBS/{name}.rc" ] && rc=$(cat "$STUBS/{name}.rc") || rc=0
[ -f "$STUBS/{name}_$key" ] && cat "$STUBS/{name}_$key"
[ -f "$STUBS/{name}_any" ] && cat "$STUBS/{name}_any"
echo "$*" >>"$STUBS/{name}.calls"
exit "$rc"
"""
GUARD = """#!/bin/sh
# vpsnet-guard stub: save writes the record, revert logs
echo "$*" >>"$STUBS/guard.calls"
case $1 in
save) mkdir -p "$VPSNET_GUARD_DIR"; shift 2
      echo "# nics $*" >"$VPSNET_GUARD_DIR/vpsnet-tune-original.sh";;
revert) [ -f "$VPSNET_GUARD_DIR/vpsnet-tune-original.sh" ] || exit 1;;
esac
"""


def _tc(
    queues: int,
    child: str = "fq",
    root: str = "mq",
    maxrate: int | None = None,
    only: int | None = None,
) -> str:
    """tc -j output: ROOT, and under mq CHILD (with MAXRATE) on every queue, or only on
    queue ONLY (1-based, plain fq on the others)."""

    def one(q: int) -> dict[str, object]:
        odd = only is None or q == only
        opts = {"maxrate": maxrate} if maxrate is not None and odd else {}
        return {
            "kind": child if odd else "fq",
            "handle": "0:",
            "parent": f"1:{q:x}",
            "options": opts,
        }

    shown: list[dict[str, object]] = [{"kind": root, "handle": "1:", "root": True, "options": {}}]
    shown += [one(q) for q in range(1, queues + 1)]
    return json.dumps(shown)


class Host:
    """A fake root with one 4-queue virtio NIC eth0 (IRQs 25-33) and stub tools."""

    def __init__(self, base: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = base / "root"
        self.stubs = base / "stubs"
        self.bin = base / "bin"
        for d in (self.root, self.stubs, self.bin):
            d.mkdir()
        for key, value in SYSCTLS.items():
            self.sysctl(key, value.replace(" ", "\t"))
        self.sysctl("vm.nr_hugepages", "0")
        pci = self.root / "sys/devices/pci0000:00/0000:00:03.0"
        (pci / "virtio0").mkdir(parents=True)
        (pci / "msi_irqs").mkdir()
        nic = self.root / "sys/class/net/eth0"
        nic.mkdir(parents=True)
        (nic / "device").symlink_to(pci / "virtio0")
        names = ["virtio0-config"] + [
            f"virtio0-{d}.{q}" for q in range(4) for d in ("input", "output")
        ]
        lines = ["           CPU0       CPU1       CPU2       CPU3"]
        for irq, name in enumerate(names, start=25):
            (pci / "msi_irqs" / str(irq)).write_text("msix\n")
            self.write(f"proc/irq/{irq}/smp_affinity_list", "0-3")
            lines.append(
                f" {irq}:          0          0          0          0  PCI-MSIX-0000:00:03.0"
                f"   {irq - 24}-edge      {name}"
            )
        self.write("proc/interrupts", "\n".join(lines) + "\n")
        for q in range(4):
            self.write(f"sys/class/net/eth0/queues/tx-{q}/xps_cpus", f"{1 << q:x}")
            self.write(f"sys/class/net/eth0/queues/rx-{q}/rps_cpus", "0")
        for name in ("tc", "ethtool", "vpsnet-irq-affinity"):
            path = self.bin / name
            path.write_text(STUB.format(name=name))
            path.chmod(0o755)
        (self.bin / "vpsnet-guard").write_text(GUARD)
        (self.bin / "vpsnet-guard").chmod(0o755)
        monkeypatch.setenv("PATH", f"{self.bin}:{os.environ['PATH']}")
        monkeypatch.setenv("STUBS", str(self.stubs))
        monkeypatch.setenv("VPSNET_TUNE_GUARD", str(self.bin / "vpsnet-guard"))
        self.set_tc(_tc(4))
        self.set_ethtool(combined=4, rx=1024, adaptive="on")
        self.plan = {
            "version": 1,
            "scope": "host",
            "sysctls": dict(SYSCTLS),
            "hugepages": {"nr_hugepages": 0, "nr_hugepages_1g": 0},
            "qdisc": {"eth0": "fq"},
            "ethtool": {
                "eth0": {
                    "channels": {"combined": 4},
                    "rings": {"rx": 1024, "tx": 1024},
                    "adaptive_rx": True,
                }
            },
            "irq_affinity": True,
        }
        self.write_plan()

    def write(self, rel: str, text: str) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text().strip()

    def sysctl(self, key: str, value: str) -> None:
        self.write("proc/sys/" + key.replace(".", "/"), value)

    def stub(self, name: str, text: str) -> None:
        (self.stubs / name).write_text(text)

    def set_tc(self, text: str) -> None:
        self.stub("tc_-j_qdisc_show_dev_eth0_", text)

    def set_ethtool(self, combined: int, rx: int, adaptive: str) -> None:
        self.stub("ethtool_-l_eth0_", CH.format(combined=combined))
        self.stub("ethtool_-g_eth0_", RINGS.format(rx=rx))
        self.stub("ethtool_-c_eth0_", COALESCE.format(adaptive=adaptive))

    def write_plan(self) -> None:
        self.write("etc/vpsnet/tune-plan.json", json.dumps(self.plan))

    def verify(self, *extra: str) -> int:
        return int(vt.main(["verify", "--root", str(self.root), *extra]))


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


# --- save / restore -----------------------------------------------------------


def _request(host: Host) -> str:
    return json.dumps(
        {
            "sysctls": [*SYSCTLS, "vm.nr_hugepages"],
            "nics": ["eth0"],
            "irqbalance_file": "/etc/default/irqbalance",
            "instance_configs_file": "/etc/default/instance_configs.cfg",
            "grub_file": "/etc/default/grub.d/vpsnet.cfg",
            "installed": ["/etc/sysctl.d/90-vpsnet.conf"],
        }
    )


def test_save_then_restore_round_trip(
    host: Host, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = tmp_path / "record"
    host.write("etc/default/irqbalance", '#IRQBALANCE_ARGS=""\nIRQBALANCE_ARGS="--foo"')
    host.write("etc/default/instance_configs.cfg",
               "[Accounts]\nx = 1\n[InstanceSetup]\nset_multiqueue = true")
    root = ["--root", str(host.root), "--dir", str(record)]
    assert vt.main(["save", *root, "--check", "--request", _request(host)]) == 0
    assert not record.exists() and "would record" in capsys.readouterr().out
    assert vt.main(["save", *root, "--request", _request(host)]) == 0
    saved = json.loads((record / "original.json").read_text())
    assert saved["pristine"] is True
    assert saved["sysctls"]["net.ipv4.tcp_rmem"] == "4096 131072 33554432"
    assert saved["irqbalance"] == {
        "path": "/etc/default/irqbalance",
        "exists": True,
        "line": 'IRQBALANCE_ARGS="--foo"',
    }
    assert saved["grub"] == {
        "path": "/etc/default/grub.d/vpsnet.cfg",
        "exists": False,
        "content": None,
    }
    assert (record / "nic/vpsnet-tune-original.sh").exists()
    assert saved["instance_configs"] == {
        "path": "/etc/default/instance_configs.cfg", "exists": True, "set_multiqueue": "true"}
    capsys.readouterr()
    # vpsnet_tune changes things
    host.sysctl("net.core.somaxconn", "8192")
    host.sysctl("vm.nr_hugepages", "64")
    host.write("proc/irq/27/smp_affinity_list", "1")  # virtio0-output.0
    host.write("sys/class/net/eth0/queues/tx-2/xps_cpus", "00000000,00000001")
    host.write("sys/class/net/eth0/queues/rx-1/rps_cpus", "c")
    # a later run records nothing again
    assert vt.main(["save", *root, "--request", _request(host)]) == 0
    assert capsys.readouterr().out == ""
    assert (
        json.loads((record / "original.json").read_text())["sysctls"]["net.core.somaxconn"]
        == "4096"
    )
    # check mode names every change and makes none
    assert vt.main(["restore", *root, "--check"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "would restore sysctl net.core.somaxconn: 4096" in lines
    assert "would restore eth0 tx-2 xps_cpus: 4" in lines
    assert host.read("proc/sys/net/core/somaxconn") == "8192"
    assert vt.main(["restore", *root]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(lines) == sorted(
        [
            "restored sysctl net.core.somaxconn: 4096",
            "restored sysctl vm.nr_hugepages: 0",
            "restored MTU, channels, rings, adaptive RX and qdiscs of eth0",
            "restored irq 27 (virtio0-output.0) smp_affinity_list: 0-3",
            "restored eth0 tx-2 xps_cpus: 4",
            "restored eth0 rx-1 rps_cpus: 0",
        ]
    )
    assert host.read("proc/sys/net/core/somaxconn") == "4096"
    assert host.read("proc/sys/vm/nr_hugepages") == "0"
    assert host.read("proc/irq/27/smp_affinity_list") == "0-3"
    assert host.read("sys/class/net/eth0/queues/tx-2/xps_cpus") == "4"
    assert host.read("sys/class/net/eth0/queues/rx-1/rps_cpus") == "0"
    assert "revert vpsnet-tune-original" in (host.stubs / "guard.calls").read_text()
    # nothing left to do but the NIC revert (the guard's commands check themselves)
    assert vt.main(["restore", *root]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "restored MTU, channels, rings, adaptive RX and qdiscs of eth0"
    ]


def test_save_adds_only_new_sysctl_keys(
    host: Host, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = tmp_path / "record"
    root = ["--root", str(host.root), "--dir", str(record)]
    req = json.loads(_request(host))
    req["sysctls"] = ["net.core.somaxconn"]
    assert vt.main(["save", *root, "--request", json.dumps(req)]) == 0
    host.sysctl("net.core.somaxconn", "8192")
    host.sysctl("net.core.netdev_budget", "300")
    req["sysctls"] = ["net.core.somaxconn", "net.core.netdev_budget"]
    capsys.readouterr()
    assert vt.main(["save", *root, "--request", json.dumps(req)]) == 0
    assert "added" in capsys.readouterr().out
    saved = json.loads((record / "original.json").read_text())["sysctls"]
    assert saved == {"net.core.somaxconn": "4096", "net.core.netdev_budget": "300"}


def test_irq_restored_by_name_after_renumbering(host: Host, tmp_path: Path) -> None:
    record = tmp_path / "record"
    root = ["--root", str(host.root), "--dir", str(record)]
    host.write("proc/irq/26/smp_affinity_list", "2")  # virtio0-input.0, before vpsnet
    assert vt.main(["save", *root, "--request", _request(host)]) == 0
    # a channel change moved virtio0-input.0 to IRQ 40
    text = host.read("proc/interrupts").replace(" 26:", " 40:")
    host.write("proc/interrupts", text)
    host.write("proc/irq/40/smp_affinity_list", "0-3")
    assert vt.main(["restore", *root]) == 0
    assert host.read("proc/irq/40/smp_affinity_list") == "2"


def test_not_pristine_when_vpsnet_files_are_there(
    host: Host, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host.write("etc/sysctl.d/90-vpsnet.conf", "net.core.somaxconn = 4096")
    record = tmp_path / "record"
    assert (
        vt.main(
            ["save", "--root", str(host.root), "--dir", str(record), "--request", _request(host)]
        )
        == 0
    )
    assert json.loads((record / "original.json").read_text())["pristine"] is False
    assert "an earlier vpsnet_tune had tuned this host" in capsys.readouterr().out


def test_restore_without_record_or_with_a_failing_guard(
    host: Host, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = tmp_path / "record"
    root = ["--root", str(host.root), "--dir", str(record)]
    assert vt.main(["restore", *root]) == 2
    assert "no record" in capsys.readouterr().err
    assert vt.main(["save", *root, "--request", _request(host)]) == 0
    (record / "nic/vpsnet-tune-original.sh").unlink()
    assert vt.main(["restore", *root]) == 2
    assert "cannot be put back" in capsys.readouterr().err


@pytest.mark.parametrize(
    "request_text",
    [
        "[]",
        "{bad",
        json.dumps({"sysctls": ["net/../x"]}),
        json.dumps({"nics": ["eth0/x"]}),
        json.dumps({"grub_file": "relative.cfg"}),
    ],
)
def test_bad_request_refused_before_anything(
    host: Host, tmp_path: Path, capsys: pytest.CaptureFixture[str], request_text: str
) -> None:
    record = tmp_path / "record"
    assert (
        vt.main(["save", "--root", str(host.root), "--dir", str(record), "--request", request_text])
        == 2
    )
    assert not record.exists()
    assert "--request" in capsys.readouterr().err


def test_the_recorded_sysctls_are_the_ones_the_role_sets() -> None:
    """original.yml records, before sysctl.yml writes them, the keys sysctl.yml sets:
    a key added there and not here would not come back with vpsnet_tune_state absent."""
    import yaml

    tasks = yaml.safe_load((REPO / "roles/vpsnet_tune/tasks/sysctl.yml").read_text())
    base = next(t for t in tasks if t["name"] == "Collect the sysctls")["vars"]
    sets = set(base["__vpsnet_tune_sysctls_base"])
    tasks = yaml.safe_load((REPO / "roles/vpsnet_tune/tasks/original.yml").read_text())
    save = next(t for t in tasks if "ansible.builtin.script" in t)["vars"]
    records = set(re.findall(r"'([a-z0-9_.]+)'", save["__vpsnet_tune_save_keys_all"]))
    assert sets and sets == records


def test_new_variables_documented_and_checked() -> None:
    """Each new variable: a default, an argument_specs entry with the same default, a
    tasks/validate.yml check."""
    import yaml

    role = REPO / "roles/vpsnet_tune"
    defaults = yaml.safe_load((role / "defaults/main.yml").read_text())
    specs = yaml.safe_load((role / "meta/argument_specs.yml").read_text())
    options = specs["argument_specs"]["main"]["options"]
    validate = (role / "tasks/validate.yml").read_text()
    for name in ("vpsnet_tune_state", "vpsnet_tune_absent_without_record",
                 "vpsnet_tune_verify_interval_seconds", "vpsnet_tune_verify_textfile_dir"):
        assert options[name]["default"] == defaults[name], name
        assert f"{{name: {name}, value:" in validate, name


@pytest.mark.parametrize(("name", "bad", "says"), [
    ("vpsnet_tune_state", "gone", "vpsnet_tune_state"),
    ("vpsnet_tune_state", "absent\n", "vpsnet_tune_state"),
    ("vpsnet_tune_absent_without_record", "maybe", "vpsnet_tune_absent_without_record"),
    ("vpsnet_tune_verify_interval_seconds", 5, "vpsnet_tune_verify_interval_seconds"),
    ("vpsnet_tune_verify_interval_seconds", "300s", "vpsnet_tune_verify_interval_seconds"),
    ("vpsnet_tune_verify_textfile_dir", "var/lib/x", "vpsnet_tune_verify_textfile_dir"),
    ("vpsnet_tune_verify_textfile_dir", "/var/lib/../etc", "vpsnet_tune_verify_textfile_dir"),
])
def test_new_inputs_checked_by_validate_yml(name: str, bad: object, says: str) -> None:
    from vpsnet_inputs_helpers import errors

    assert errors("vpsnet_tune") == []
    assert errors("vpsnet_tune", {"vpsnet_tune_verify_textfile_dir": ""}) == []
    found = errors("vpsnet_tune", {name: bad})
    assert len(found) == 1 and found[0].startswith(says), found


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


@settings(max_examples=60, deadline=None, suppress_health_check=FIXTURES)
@given(text=st.one_of(st.text(max_size=40), st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["sysctls", "nics", "irqbalance_file", "grub_file", "installed", "x"]),
        inner, max_size=4), max_leaves=8).map(json.dumps)))
def test_any_request_never_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    record = tmp_path / "rec"
    rc = vt.main(["save", "--check", "--root", str(tmp_path / "root"), "--dir", str(record),
                  f"--request={text}"])  # "=": a text starting with '-' is the value
    err = capsys.readouterr().err
    assert rc in (0, 2) and "Traceback" not in err and err.count("\n") <= 1, err
    assert not record.exists()


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
