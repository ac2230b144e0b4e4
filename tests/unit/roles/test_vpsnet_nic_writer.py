"""vpsnet-irq-affinity (roles/vpsnet_tune/files) on a recorded-style sysfs tree:
a gVNIC with the pre-6.3 IRQ names and a 4-queue virtio NIC. --dry-run prints one
line per item off the plan and nothing once applied; `ethtool -L`-style changes
show up item by item; the irqbalance policy bans the same IRQs; old conf files
still work; the installed layout (lib dir + sbin symlink) imports vpsnet_nic."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from testlib.vpsnet_facts_helpers import FIXTURES, REPO
from testlib.vpsnet_tune_helpers import install, load_script

FILES = REPO / "roles/vpsnet_tune/files"


writer = load_script("vpsnet-irq-affinity", "vpsnet_irq_affinity_w")
PCI = "sys/devices/pci0000:00"


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _nic(root: Path, ifname: str, bdf: str, driver: str, irqs: range, queues: int,
         sub: str = "") -> None:
    pci = root / PCI / bdf
    for irq in irqs:
        _write(pci / "msi_irqs" / str(irq), "msix\n")
        _write(root / "proc/irq" / str(irq) / "smp_affinity_list", "0-7\n")
    _write(pci / "numa_node", "-1\n")
    device = pci / sub if sub else pci
    (root / "sys/bus/pci/drivers" / driver).mkdir(parents=True, exist_ok=True)
    device.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(root / "sys/bus/pci/drivers" / driver, device), device / "driver")
    net = root / "sys/class/net" / ifname
    net.mkdir(parents=True)
    os.symlink(os.path.relpath(device, net), net / "device")
    for q in range(queues):
        _write(net / f"queues/tx-{q}/xps_cpus", "00\n")
        _write(net / f"queues/rx-{q}/rps_cpus", "00\n")


CONF = """option xps on
option rps on
option cpu0 avoid
option reserved none
ens4 1-2
ens5 3-6
"""


@pytest.fixture
def host(tmp_path: Path) -> Path:
    root = tmp_path
    interrupts = (FIXTURES / "nic-irqs/gve-6.1.interrupts").read_text()
    virtio = (FIXTURES / "nic-irqs/virtio.interrupts").read_text().splitlines()[1:10]
    _write(root / "proc/interrupts", interrupts + "\n".join(virtio) + "\n")
    _nic(root, "ens4", "0000:00:04.0", "gve", range(33, 38), 2)
    _nic(root, "ens5", "0000:00:05.0", "virtio-pci", range(24, 33), 4, sub="virtio1")
    # virtio_net binds the virtio device, not the PCI function
    (root / PCI / "0000:00:05.0/virtio1/driver").unlink()
    (root / "sys/bus/virtio/drivers/virtio_net").mkdir(parents=True)
    virtio1 = root / PCI / "0000:00:05.0/virtio1"
    os.symlink(os.path.relpath(root / "sys/bus/virtio/drivers/virtio_net", virtio1),
               virtio1 / "driver")
    _write(root / "sys/devices/system/cpu/online", "0-7\n")
    _write(root / "sys/devices/system/node/node0/cpulist", "0-7\n")
    for cpu in range(8):  # SMT pairs 0/4, 1/5, 2/6, 3/7
        _write(root / f"sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list",
               f"{cpu % 4},{cpu % 4 + 4}\n")
    _write(root / "etc/vpsnet/irq-affinity.conf", CONF)
    return root


def run(root: Path, *args: str) -> tuple[int, list[str], str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = writer.main(["--root", str(root), *args])
    return rc, out.getvalue().splitlines(), err.getvalue()


def test_dry_run_one_line_per_item_then_apply_then_clean(host: Path) -> None:
    rc, lines, err = run(host, "--dry-run")
    assert rc == 0 and err == ""
    # old gve names: blocks 0,1 serve tx-0/1, blocks 2,3 rx-0/1; ens4 has CPUs 1-2
    assert lines[:4] == [
        "ens4: irq 33 (eth%d-ntfy-block.0, tx-0) smp_affinity_list 0-7 -> 1",
        "ens4: irq 34 (eth%d-ntfy-block.1, tx-1) smp_affinity_list 0-7 -> 2",
        "ens4: irq 35 (eth%d-ntfy-block.2, rx-0) smp_affinity_list 0-7 -> 1",
        "ens4: irq 36 (eth%d-ntfy-block.3, rx-1) smp_affinity_list 0-7 -> 2",
    ]
    assert "ens4: tx-1 xps_cpus 0 (CPUs none) -> 4 (CPUs 2)" in lines
    # RPS: every CPU but 0 (avoided), minus the IRQ CPUs 1-2 and their siblings 5-6
    assert "ens4: rx-0 rps_cpus 0 (CPUs none) -> 98 (CPUs 3-4,7)" in lines
    assert "ens5: irq 25 (virtio1-input.0, rx-0) smp_affinity_list 0-7 -> 3" in lines
    assert "ens5: tx-3 xps_cpus 0 (CPUs none) -> 40 (CPUs 6)" in lines
    # 4 queues on 7 pool CPUs: RPS on the pool minus 3-6 and siblings 7,1,2 -> none left
    assert "ens5: rx-0 rps_cpus 0 (CPUs none) -> 0 (CPUs none)" not in lines
    assert len(lines) == 4 + 2 + 2 + 8 + 4 == 20
    assert (host / "proc/irq/33/smp_affinity_list").read_text() == "0-7\n"  # dry run: unchanged

    rc, applied, err = run(host)
    assert rc == 0 and err == "" and applied == lines
    assert (host / "proc/irq/33/smp_affinity_list").read_text() == "1\n"
    assert (host / "sys/class/net/ens4/queues/tx-1/xps_cpus").read_text() == "00000004\n"
    assert (host / "sys/class/net/ens4/queues/rx-1/rps_cpus").read_text() == "00000098\n"
    assert run(host, "--dry-run") == (0, [], "")


def test_channel_change_and_kernel_rewrites_show_item_by_item(host: Path) -> None:
    run(host)
    # ethtool -L on virtio_net re-spreads IRQs and rewrites XPS; masks compared by value
    _write(host / "proc/irq/27/smp_affinity_list", "0\n")
    _write(host / "sys/class/net/ens5/queues/tx-1/xps_cpus", "00000000,00000001\n")
    _write(host / "sys/class/net/ens4/queues/tx-0/xps_cpus", "00000000,00000002\n")  # same value
    assert run(host, "--dry-run")[1] == [
        "ens5: irq 27 (virtio1-input.1, rx-1) smp_affinity_list 0 -> 4",
        "ens5: tx-1 xps_cpus 1 (CPUs 0) -> 10 (CPUs 4)",
    ]
    # fewer queues: nothing wanted for the queues that went away
    for q in (2, 3):
        shutil.rmtree(host / f"sys/class/net/ens5/queues/tx-{q}")
        shutil.rmtree(host / f"sys/class/net/ens5/queues/rx-{q}")
    run(host)
    assert run(host, "--dry-run") == (0, [], "")


def test_only_the_named_nic(host: Path) -> None:
    rc, lines, _ = run(host, "--dry-run", "ens4")
    assert rc == 0 and lines and all(line.startswith("ens4: ") for line in lines)
    assert run(host, "--dry-run", "eth7")[1] == []  # not configured: left alone


def test_old_conf_file_pins_irqs_only(host: Path) -> None:
    _write(host / "etc/vpsnet/irq-affinity.conf", "# written by an older role\nens4 0-1\n")
    rc, lines, _ = run(host)
    assert rc == 0 and len(lines) == 4 and all(" irq " in line for line in lines)
    assert (host / "sys/class/net/ens4/queues/tx-0/xps_cpus").read_text() == "00\n"


def test_bad_conf_file_one_line_no_traceback(host: Path) -> None:
    _write(host / "etc/vpsnet/irq-affinity.conf", "option xps maybe\nens4 1\n")
    rc, lines, err = run(host, "--dry-run")
    assert rc == 1 and lines == []
    assert err == ("vpsnet-irq-affinity: /etc/vpsnet/irq-affinity.conf line 1: "
                   "option xps 'maybe' is not one of on, off\n")


def test_irqbalance_policy_bans_the_same_irqs(host: Path) -> None:
    assert run(host, "--policy", "/devices/x", "33")[1] == ["ban=true"]  # old gve name
    assert run(host, "--policy", "/devices/x", "31")[1] == ["ban=true"]  # virtio input.3
    assert run(host, "--policy", "/devices/x", "37")[1] == []  # gve mgmnt
    assert run(host, "--policy", "/devices/x", "24")[1] == []  # virtio config


def test_write_error_named_and_nonzero(host: Path) -> None:
    target = host / "proc/irq/33/smp_affinity_list"
    target.unlink()
    target.mkdir()  # open(..., "w") fails with EISDIR
    rc, lines, err = run(host, "ens4")
    assert rc == 1 and lines[0].startswith("ens4: irq 33 ")
    assert err.startswith("ens4: /proc/irq/33/smp_affinity_list: Is a directory")


def test_installed_layout_finds_vpsnet_nic(host: Path,
                                           tmp_path_factory: pytest.TempPathFactory) -> None:
    """/usr/local/lib/vpsnet/ as the role installs it (its file list) and the sbin
    symlink: Python puts the script's real directory first on sys.path."""
    sbin = install(tmp_path_factory.mktemp("usr-local"), "vpsnet-irq-affinity")
    proc = subprocess.run([sys.executable, str(sbin / "vpsnet-irq-affinity"), "--root", str(host),
                           "--dry-run", "ens4"], capture_output=True, text=True, check=False,
                          env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == (
        "ens4: irq 33 (eth%d-ntfy-block.0, tx-0) smp_affinity_list 0-7 -> 1")


def test_single_queue_device_without_xps_file(host: Path) -> None:
    """A single-queue device has no xps_cpus (the kernel offers no XPS there): its
    IRQ and RPS are still set, nothing is written where no file is, and the
    NIC reads clean afterwards. A multiqueue NIC running one queue keeps its map."""
    for q in range(1, 4):
        for d, f in (("tx", "xps_cpus"), ("rx", "rps_cpus")):
            (host / f"sys/class/net/ens5/queues/{d}-{q}/{f}").unlink()
            (host / f"sys/class/net/ens5/queues/{d}-{q}").rmdir()
    (host / "sys/class/net/ens5/queues/tx-0/xps_cpus").unlink()
    rc, lines, err = run(host, "ens5")
    assert rc == 0 and err == "", err
    assert not [line for line in lines if "xps_cpus" in line]
    assert "ens5: irq 25 (virtio1-input.0, rx-0) smp_affinity_list 0-7 -> 3" in lines
    assert not (host / "sys/class/net/ens5/queues/tx-0/xps_cpus").exists()
    assert run(host, "--dry-run", "ens5") == (0, [], "")
    rc, lines, err = run(host, "ens4")  # two queues: both mapped
    assert rc == 0 and "ens4: tx-0 xps_cpus 0 (CPUs none) -> 2 (CPUs 1)" in lines
