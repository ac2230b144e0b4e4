"""molecule/kvm verify: what provision.yml left on real kernels, read back over SSH,
then again after the boot-time pieces re-apply it (sysctl --system, the IRQ
affinity unit, systemd-modules-load: the lab's snapshot=on/-no-reboot guests
cannot reboot without losing their disk) and after `ethtool -L`."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

RMEM = (4096, 131072, 6291456)  # Debian 12 defaults
WMEM = (4096, 16384, 4194304)
DEBIAN_CORE_MEM_MAX = 212992
BUFFER_CAP = 268435456


def sysctl(host: Any, key: str) -> str:
    return " ".join(host.check_output(f"sysctl -n {key}").split())


def hvars(host: Any) -> dict[str, Any]:
    return host.ansible.get_variables()  # type: ignore[no-any-return]


def expected_buffers(host: Any) -> dict[str, str]:
    v = hvars(host)
    bdp = int(float(v["vpsnet_region_bandwidth_mbit"]) * 1_000_000 / 8
              * float(v["vpsnet_region_rtt_ms"]) / 1000)
    size = min(2 * bdp, BUFFER_CAP)
    return {
        "net.ipv4.tcp_rmem": " ".join(map(str, (*RMEM[:2], max(size, RMEM[2])))),
        "net.ipv4.tcp_wmem": " ".join(map(str, (*WMEM[:2], max(size, WMEM[2])))),
        "net.core.rmem_max": str(max(size, DEBIAN_CORE_MEM_MAX)),
        "net.core.wmem_max": str(max(size, DEBIAN_CORE_MEM_MAX)),
    }


def nics(host: Any) -> list[str]:
    return [n for n in host.check_output("ls /sys/class/net").split() if n != "lo"]


def irq_plan(host: Any) -> dict[int, str]:
    """IRQ -> planned CPU, from the plan the role wrote (/etc/vpsnet/irq-affinity.conf)
    and the NIC's virtio queue IRQs (virtioK-input.N / output.N, round-robin by N)."""
    conf = host.file("/etc/vpsnet/irq-affinity.conf").content_string
    interrupts = host.file("/proc/interrupts").content_string
    plan: dict[int, str] = {}
    for line in conf.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("option "):  # XPS/RPS/CPU 0 options
            continue
        nic, cpulist = line.split()
        cpus: list[int] = []
        for part in cpulist.split(","):
            lo, _, hi = part.partition("-")
            cpus.extend(range(int(lo), int(hi or lo) + 1))
        virtio = host.check_output(f"basename $(readlink -f /sys/class/net/{nic}/device)")
        for row in interrupts.splitlines():
            m = re.match(rf"\s*(\d+):.*\s{virtio}-(input|output)\.(\d+)$", row)
            if m:
                plan[int(m.group(1))] = str(cpus[int(m.group(3)) % len(cpus)])
    return plan


def irq_actual(host: Any, irqs: list[int]) -> dict[int, str]:
    out = host.check_output(" ; ".join(
        f"echo {i} $(cat /proc/irq/{i}/smp_affinity_list)" for i in irqs))
    return {int(a): b for a, b in (line.split() for line in out.splitlines())}


def module_params(host: Any) -> dict[str, str]:
    text = host.file("/etc/modprobe.d/vpsnet.conf").content_string
    line = next(x for x in text.splitlines() if x.startswith("options vpsnet "))
    return dict(p.split("=", 1) for p in line.split()[2:])


def check_all(host: Any) -> None:
    assert sysctl(host, "net.ipv4.tcp_congestion_control") == "bbr"
    assert sysctl(host, "net.core.default_qdisc") == "fq"
    for key, value in expected_buffers(host).items():
        assert sysctl(host, key) == value, key
    # fq's per-flow cap in bytes/s as tc -j shows it (absent: no cap)
    cap = int(hvars(host).get("vpsnet_tune_fq_maxrate_mbit", 0)) * 125_000 or None
    for nic in nics(host):
        # fq on every TX queue: under mq on a multiqueue NIC, at the root otherwise
        queues = len(host.check_output(f"ls -d /sys/class/net/{nic}/queues/tx-*").split())
        shown = json.loads(host.check_output(f"tc -j qdisc show dev {nic}"))
        roots = [q["kind"] for q in shown if q.get("root")]
        leaves = [q for q in shown if "parent" in q] if queues > 1 else shown
        if queues > 1:
            assert roots == ["mq"] and len(leaves) >= queues, f"{nic}: {shown}"
        assert {q["kind"] for q in leaves} == {"fq"}, f"{nic}: {shown}"
        assert {q.get("options", {}).get("maxrate") for q in leaves} == {cap}, f"{nic}: {shown}"
    hp = int(re.search(r"HugePages_Total:\s+(\d+)",
                       host.file("/proc/meminfo").content_string).group(1))  # type: ignore[union-attr]
    assert hp == int(hvars(host)["vpsnet_tune_hugepages_2m"])
    plan = irq_plan(host)
    assert plan, "no queue IRQ in the plan"
    assert irq_actual(host, list(plan)) == plan
    assert host.file("/sys/module/vpsnet").is_directory
    for key, value in module_params(host).items():
        param = host.file(f"/sys/module/vpsnet/parameters/{key}").content_string.strip()
        assert param == value, key


def test_installed_from_the_signed_repo(host: Any) -> None:
    sources = host.file("/etc/apt/sources.list.d/vpsnet.sources").content_string
    assert "Signed-By:" in sources and "http://10.0.2.101" in sources
    kernel = host.check_output("uname -r")
    tools, kmod = host.package("vpsnet-tools"), host.package(f"vpsnet-kmod-{kernel}")
    assert tools.is_installed
    if kmod.is_installed:  # the repository has vpsnet prebuilt for this kernel
        assert kmod.version == tools.version
        assert not host.package("vpsnet-dkms").is_installed
        assert host.check_output("modinfo -n vpsnet") == f"/lib/modules/{kernel}/updates/vpsnet.ko"
    else:
        status = host.check_output("dkms status vpsnet")
        assert f"{kernel}" in status and "installed" in status, status
    assert host.check_output("modinfo -F version vpsnet") == tools.version


def test_tuned_state(host: Any) -> None:
    check_all(host)


def test_aws_queue_irqs_cover_the_multiqueue_nic(host: Any) -> None:
    if hvars(host)["inventory_hostname"] != "aws61":
        pytest.skip("the 4-queue NIC is on aws61")
    assert len(irq_plan(host)) >= 8  # eth1: input.0-3 + output.0-3 at least


def test_still_true_after_boot_time_pieces_rerun(host: Any) -> None:
    """What a reboot re-applies, re-run after scrambling it: sysctl --system,
    the IRQ affinity and qdisc units, systemd-modules-load with /etc/modprobe.d."""
    host.run_expect([0], "sysctl -q -w net.ipv4.tcp_congestion_control=cubic "
                    "net.core.default_qdisc=pfifo_fast net.ipv4.tcp_rmem='4096 131072 6291456' "
                    "net.ipv4.tcp_wmem='4096 16384 4194304' net.core.rmem_max=212992 "
                    "net.core.wmem_max=212992 vm.nr_hugepages=0")
    plan = irq_plan(host)
    for irq in plan:
        host.run(f"echo 0 > /proc/irq/{irq}/smp_affinity_list")
    for nic in nics(host):  # the kernel's own qdiscs, as after a boot
        host.run_expect([0], f"tc qdisc del dev {nic} root")
    host.run_expect([0], "systemctl stop vpsnet-irq-affinity.timer")
    host.run_expect([0], "modprobe -r vpsnet")
    assert not host.file("/sys/module/vpsnet").exists
    # The boot-time pieces, in boot order.
    host.run_expect([0], "systemctl restart systemd-modules-load.service")
    host.run_expect([0], "sysctl --system")
    host.run_expect([0], "systemctl restart vpsnet-irq-affinity.service")
    host.run_expect([0], "systemctl restart vpsnet-qdisc.service")
    host.run_expect([0], "systemctl start vpsnet-irq-affinity.timer")
    assert host.service("vpsnet-irq-affinity.service").is_enabled
    assert host.service("vpsnet-irq-affinity.timer").is_enabled
    assert host.service("vpsnet-qdisc.service").is_enabled
    check_all(host)


def _wait_irqs(host: Any, timeout: float = 90) -> tuple[dict[int, str], dict[int, str]]:
    deadline = time.monotonic() + timeout
    while True:
        plan = irq_plan(host)
        actual = irq_actual(host, list(plan))
        if actual == plan or time.monotonic() > deadline:
            return plan, actual
        time.sleep(2)


def test_still_true_after_ethtool_channels(host: Any) -> None:
    """`ethtool -L` makes virtio_net re-spread its IRQs; the udev rule / re-check
    timer put them back on the planned CPUs (vpsnet_tune_irq_recheck_seconds is 5
    here and the role sets AccuracySec to a tenth of it, at least 1 s; with
    systemd's default of 1 min the re-check would come up to a minute late)."""
    nic = next((n for n in nics(host)
                if re.search(r"Combined:\s+([2-9]|\d\d)",
                             host.check_output(f"ethtool -l {n} | sed -n '2,6p'"))), None)
    if nic is None:
        pytest.skip("no multiqueue NIC on this guest")
    current = re.findall(r"Combined:\s+(\d+)", host.check_output(f"ethtool -l {nic}"))[1]
    host.run_expect([0], f"ethtool -L {nic} combined 1")
    plan, actual = _wait_irqs(host)
    assert actual == plan
    host.run_expect([0], f"ethtool -L {nic} combined {current}")
    plan, actual = _wait_irqs(host)
    assert actual == plan
    check_all(host)
