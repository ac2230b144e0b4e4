"""vpsnet_nic: the NIC inventory: queue IRQ names per driver, /proc/interrupts,
CPU lists and the live NIC and CPU topology as sysfs shows them.

Imported by the vpsnet_facts module (as the collection's module_utils), by
vpsnet_tune's IRQ plan (files/vpsnet_irqplan.py, which holds the queue -> CPU
rules) and, installed beside them in /usr/local/lib/vpsnet, by vpsnet-tune and
vpsnet-irq-affinity. Standard library only, Python 3.9+, no Ansible imports.

IRQ names (the kernel's request_irq() names, as /proc/interrupts shows them):

  ena         <ifname>-Tx-Rx-<N>             queue N, rx+tx; ena-mgmnt@pci:<bdf> is no queue
  virtio_net  virtio<K>-input.<N>            rx queue N
              virtio<K>-output.<N>           tx queue N
              virtio<K>-virtqueues           every queue on one vector (shared)
              virtio<K>-config               config changes, no queue
  gve < 6.3   <netdev>-ntfy-block.<i>        notify block i; requested before
              <netdev>-mgmnt                 register_netdev, so <netdev> is
                                             literally "eth%d"; mgmnt is no queue
  gve >= 6.3  gve-ntfy-blk<i>@pci:<bdf>      notify block i
              gve-mgmnt@pci:<bdf>            no queue
              (blocks 0..n/2-1 serve tx queues 0.., blocks n/2..n-1 rx queues 0..)
  idpf        idpf-<ifname>-TxRx-<v>         q_vector serving rx and tx queue
              idpf-<ifname>-Tx-<v> / -Rx-<v> tx-only / rx-only q_vector
              idpf-Mailbox-0                 no queue
              (<v> was the MSI-X index, mailbox first, until the fix that made
              it the q_vector index; q_vector i serves queue i, so queues are
              numbered by rank of <v>)
  Xen/generic <ifname>-q<N>-tx|rx, <ifname>-TxRx-<N> (-Tx-Rx, -txrx, -rxtx),
              <ifname>-rx|tx-<N>, <ifname>-tx|rx (one queue)
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

# queue numbers in IRQ names: ASCII and bounded (\d also takes other scripts' digits)
_Q = r"([0-9]{1,6})"
# An IRQ number: ASCII digits, bounded (isdigit() takes "²", which int() refuses).
IRQ_RE = re.compile(r"[0-9]{1,10}")
DIRECTIONS = ("rx", "tx", "rxtx", "shared", "block")
MAX_CPU = 8191

# --------------------------------------------------------------------------- names


def queue_irq(driver: str | None, ifname: str, devname: str, irq_name: str,
              restricted: bool) -> tuple[int | None, str] | None:
    """(queue, direction) when irq_name is one of this NIC's queue IRQs, else None.

    `devname` is the basename of the NIC's device (virtioK, or the PCI address
    for gve). `restricted` means the candidate IRQs already belong to the NIC's
    device (its msi_irqs), so a name's interface/device part need not match.
    gve returns the notify block with direction "block" and idpf the vector
    number: fix_queues() turns both into queue numbers for the whole NIC.
    """
    esc_if = re.escape(ifname)
    if driver == "ena":
        prefix = r".+" if restricted else esc_if
        match = re.fullmatch(prefix + r"-Tx-Rx-" + _Q, irq_name)
        return (int(match.group(1)), "rxtx") if match else None
    if driver == "virtio_net":
        prefix = r"virtio[0-9]{1,6}" if restricted else re.escape(devname)
        match = re.fullmatch(prefix + r"-(input|output)\." + _Q, irq_name)
        if match:
            return int(match.group(2)), "rx" if match.group(1) == "input" else "tx"
        if re.fullmatch(prefix + r"-virtqueues", irq_name):
            return None, "shared"
        return None
    if driver == "gve":
        pci = r".+" if restricted else re.escape(devname)
        # before Linux 6.3 the name was taken before register_netdev: "eth%d"
        netdev = r".+" if restricted else "(?:" + esc_if + r"|eth%d)"
        match = re.fullmatch(r"gve-ntfy-blk" + _Q + r"@pci:" + pci, irq_name) or re.fullmatch(
            netdev + r"-ntfy-block\." + _Q, irq_name)
        return (int(match.group(1)), "block") if match else None
    if driver == "idpf":
        prefix = r"idpf-" + (r".+" if restricted else esc_if)
        match = re.fullmatch(prefix + r"-(TxRx|Tx|Rx)-" + _Q, irq_name)
        if match:
            return int(match.group(2)), {"TxRx": "rxtx", "Tx": "tx", "Rx": "rx"}[match.group(1)]
        return None
    # Xen netfront and generic naming ("eth0-q0-tx", "eth0-TxRx-3", "eth0-rx-1")
    match = re.fullmatch(esc_if + r"-q" + _Q + r"-(tx|rx)", irq_name)
    if match:
        return int(match.group(1)), match.group(2)
    match = re.fullmatch(esc_if + r"-(?:Tx-Rx|TxRx|txrx|rxtx)-" + _Q, irq_name)
    if match:
        return int(match.group(1)), "rxtx"
    match = re.fullmatch(esc_if + r"-(rx|tx)-" + _Q, irq_name)
    if match:
        return int(match.group(2)), match.group(1)
    match = re.fullmatch(esc_if + r"-(tx|rx)", irq_name)
    if match:
        return 0, match.group(1)
    return None


def _sort_key(item: dict[str, Any]) -> tuple[int, str, int]:
    queue = item.get("queue")
    return (queue if queue is not None else -1, str(item.get("direction")), int(item["irq"]))


def fix_queues(driver: str | None, irqs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Queue numbers for a whole NIC's [{irq, name, queue, direction}] (in place,
    also returned, sorted by queue): gve notify blocks 0..n/2-1 serve tx queues,
    n/2..n-1 rx queues; idpf vectors are numbered by rank (q_vector i serves
    queue i, whether the name carries the MSI-X index or the q_vector index)."""
    blocks = [i for i in irqs if i.get("direction") == "block"]
    if blocks:
        half = max(len(blocks) // 2, 1)
        for item in blocks:
            index = int(item["queue"])
            item["direction"] = "tx" if index < half else "rx"
            item["queue"] = index % half
    if driver == "idpf":
        ranked = sorted((i for i in irqs if i.get("queue") is not None),
                        key=lambda i: (int(i["queue"]), int(i["irq"])))
        for rank, item in enumerate(ranked):
            item["queue"] = rank
    irqs.sort(key=_sort_key)
    return irqs


def nic_queue_irqs(driver: str | None, ifname: str, devname: str,
                   interrupts: dict[int, str], msi: set[int] | None) -> list[dict[str, Any]]:
    """The NIC's queue IRQs from an IRQ -> name table, queue numbers fixed up.
    `msi`: the IRQs of the NIC's device (msi_irqs), None when unknown."""
    irqs: list[dict[str, Any]] = []
    for irq, irq_name in sorted(interrupts.items()):
        if msi is not None and irq not in msi:
            continue
        found = queue_irq(driver, ifname, devname, irq_name, msi is not None)
        if found is not None:
            irqs.append({"irq": irq, "name": irq_name, "queue": found[0], "direction": found[1]})
    return fix_queues(driver, irqs)


def parse_interrupts(text: str, *, per_cpu_columns: bool = False,
                     max_irq: int | None = None) -> dict[int, str]:
    """/proc/interrupts -> {irq: name}; the name is the last field of the line.

    per_cpu_columns: skip the count columns (one per CPU of the header line)
    and keep only lines with a chip and a name after them; max_irq: leave out
    larger IRQ numbers. Lines that are no IRQ line are skipped, never raised on."""
    lines = (text or "").splitlines()
    counts = len(lines[0].split()) if lines and per_cpu_columns else 0
    out: dict[int, str] = {}
    for line in lines[1:]:
        head, _sep, rest = line.partition(":")
        head = head.strip()
        if not IRQ_RE.fullmatch(head) or (max_irq is not None and int(head) > max_irq):
            continue
        fields = rest.split()[counts:]
        if len(fields) >= (2 if per_cpu_columns else 1):
            out[int(head)] = fields[-1]
    return out


# --------------------------------------------------------------------------- CPU lists


def parse_cpulist(text: Any) -> list[int]:
    """'0-3,8,10-11' -> [0, 1, 2, 3, 8, 10, 11]; a list of ints passes through.
    Raises ValueError on anything else (also CPUs past MAX_CPU)."""
    if isinstance(text, (list, tuple, set)):
        cpus = {int(c) for c in text}
    else:
        cpus = set()
        for part in str(text).strip().split(","):
            part = part.strip()
            if not part:
                continue
            lo, sep, hi = part.partition("-")
            if not re.fullmatch(r"[0-9]{1,5}", lo) or (sep and not re.fullmatch(r"[0-9]{1,5}", hi)):
                raise ValueError(f"{part!r} is not a CPU or CPU range")
            cpus.update(range(int(lo), int(hi if sep else lo) + 1))
    if any(c < 0 or c > MAX_CPU for c in cpus):
        raise ValueError(f"CPU numbers must be 0..{MAX_CPU}")
    return sorted(cpus)


def format_cpulist(cpus: Iterable[int]) -> str:
    """[0, 1, 2, 3, 8] -> '0-3,8' (the kernel's cpulist format; '' when empty)."""
    out: list[str] = []
    run: list[int] = []
    for cpu in sorted(set(cpus)):
        if run and cpu == run[-1] + 1:
            run.append(cpu)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [cpu]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def parse_siblings(text: str) -> dict[int, list[int]]:
    """`grep -H . cpu*/topology/thread_siblings_list` output (path:list lines,
    any directory prefix) -> {cpu: [its SMT siblings, itself included]}."""
    out: dict[int, list[int]] = {}
    for line in (text or "").splitlines():
        path, sep, value = line.rpartition(":")
        match = re.search(r"cpu([0-9]{1,5})/topology/thread_siblings_list$", path)
        if not sep or not match:
            continue
        try:
            out[int(match.group(1))] = parse_cpulist(value)
        except ValueError:
            continue
    return out


# --------------------------------------------------------------------------- the live host


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def _queue_numbers(names: Iterable[str], prefix: str) -> list[int]:
    out = []
    for name in names:
        match = re.fullmatch(re.escape(prefix) + _Q, name)
        if match:
            out.append(int(match.group(1)))
    return sorted(out)


def pci_function(device: str) -> str:
    """The directory with the msi_irqs of a NIC's (realpath'd) device: the device
    itself, or for virtio (virtioN sits under the PCI function) its parent."""
    if os.path.isdir(os.path.join(device, "msi_irqs")):
        return device
    return os.path.dirname(device)


def msi_irqs(pci: str) -> set[int] | None:
    """The IRQs of a PCI function's msi_irqs; None when it has none to list."""
    try:
        return {int(i) for i in os.listdir(os.path.join(pci, "msi_irqs")) if IRQ_RE.fullmatch(i)}
    except OSError:
        return None


def read_nic(root: str, ifname: str, interrupts: dict[int, str]) -> dict[str, Any] | None:
    """A NIC as it is now: driver, device, NUMA node, queue IRQs (with their
    smp_affinity_list), tx/rx queue numbers. None when it has no device."""
    net = os.path.join(root, "sys/class/net", ifname)
    dev = os.path.join(net, "device")
    if not os.path.exists(dev):
        return None
    driver = os.path.basename(os.path.realpath(os.path.join(dev, "driver")))
    device = os.path.realpath(dev)
    pci = pci_function(device)
    msi = msi_irqs(pci)
    node_text = (_read(os.path.join(pci, "numa_node")) or "").strip()
    node = int(node_text) if re.fullmatch(r"[0-9]{1,4}", node_text) else None
    irqs = nic_queue_irqs(driver, ifname, os.path.basename(device), interrupts, msi)
    for item in irqs:
        item["affinity"] = (_read(os.path.join(root, "proc/irq", str(item["irq"]),
                                               "smp_affinity_list")) or "").strip()
    try:
        queues = os.listdir(os.path.join(net, "queues"))
    except OSError:
        queues = []
    return {"name": ifname, "driver": driver, "numa_node": node, "irqs": irqs,
            "tx": _queue_numbers(queues, "tx-"), "rx": _queue_numbers(queues, "rx-")}


def read_topology(root: str) -> tuple[list[int], dict[int, list[int]]]:
    """(online CPUs, {node: its CPUs})."""
    try:
        online = parse_cpulist(_read(os.path.join(root, "sys/devices/system/cpu/online")) or "")
    except ValueError:
        online = []
    nodes: dict[int, list[int]] = {}
    base = os.path.join(root, "sys/devices/system/node")
    try:
        entries = os.listdir(base)
    except OSError:
        entries = []
    for entry in entries:
        match = re.fullmatch(r"node([0-9]{1,4})", entry)
        if match:
            try:
                nodes[int(match.group(1))] = parse_cpulist(
                    _read(os.path.join(base, entry, "cpulist")) or "")
            except ValueError:
                continue
    return online, nodes


def read_siblings(root: str, cpus: Iterable[int]) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for cpu in cpus:
        text = _read(os.path.join(root, f"sys/devices/system/cpu/cpu{cpu}/topology/"
                                        "thread_siblings_list"))
        try:
            out[cpu] = parse_cpulist(text) if text else [cpu]
        except ValueError:
            out[cpu] = [cpu]
    return out
