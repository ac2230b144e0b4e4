"""The fake host the vpsnet-tune unit tests run against (test_vpsnet_tune_verify.py,
test_vpsnet_tune_record.py): a /proc and /sys tree, and stub `tc`, `ethtool`,
`vpsnet-irq-affinity` and `vpsnet-guard` executables on PATH that print what the
test put in their files; roles/vpsnet_tune/files/vpsnet-tune loaded as `vt`; the
role's install layout (install()); a loader for the role's commands."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import shutil
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "roles/vpsnet_tune/files/vpsnet-tune"


def load_script(name: str, module_name: str) -> ModuleType:
    """roles/vpsnet_tune/files/NAME, a command without .py, imported as MODULE_NAME."""
    path = str(REPO / "roles/vpsnet_tune/files" / name)
    loader = importlib.machinery.SourceFileLoader(module_name, path)
    spec = importlib.util.spec_from_loader(module_name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


vt = load_script("vpsnet-tune", "vpsnet_tune_cli")

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


def install(prefix: Path, *commands: str) -> Path:
    """The role's layout under PREFIX: every file of __vpsnet_tune_lib_files (the
    role's install list) in lib/vpsnet, and sbin/COMMAND links to them.
    -> the sbin directory."""
    import yaml

    files = yaml.safe_load((REPO / "roles/vpsnet_tune/vars/main.yml").read_text())
    lib, sbin = prefix / "lib/vpsnet", prefix / "sbin"
    lib.mkdir(parents=True)
    sbin.mkdir()
    for item in files["__vpsnet_tune_lib_files"]:
        shutil.copy(REPO / "roles/vpsnet_tune/files" / item["src"], lib / item["src"])
        (lib / item["src"]).chmod(int(item["mode"], 8))
    for command in commands:
        os.symlink(lib / command, sbin / command)
    return sbin
