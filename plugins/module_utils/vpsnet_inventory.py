"""The NIC inventory of the vpsnet_cloud fact (what vpsnet_tune consumes): each NIC's
driver, PCI function, NUMA node, queues, `ethtool -l` maxima and queue IRQs (named by
vpsnet_nic). Collection only; imported by vpsnet_facts' collection and the module."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ansible_collections.vpsnet.fleet.plugins.module_utils.vpsnet_bounds import (
    MAX_INT,
    MAX_SYSFS,
    Deadline,
    link_basename,
    read_attr,
    small_int,
)
from ansible_collections.vpsnet.fleet.plugins.module_utils.vpsnet_nic import nic_queue_irqs
from ansible_collections.vpsnet.fleet.plugins.module_utils.vpsnet_nic import (
    parse_interrupts as nic_parse_interrupts,
)

PCI_ADDR_RE = re.compile(r"[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]")
MAX_INTERRUPTS = 16 * 1024 * 1024  # many CPUs x many IRQs
ETHTOOL_TIMEOUT = 1.0  # ethtool waits for the RTNL lock, which a stuck driver can hold

Ethtool = Callable[[str], "str | None"]  # `ethtool -l NAME` output, None when it failed


class EthtoolTimeout(Exception):
    """Raised by an ethtool runner that gave up waiting (its NIC's max stays null)."""


@dataclass
class Inventory:
    nics: list[dict[str, Any]] = field(default_factory=list)  # as the fact returns them
    notes: dict[int, str] = field(default_factory=dict)  # NIC index -> what ethtool did


def parse_interrupts(text: str) -> dict[int, str]:
    """IRQ number -> action name from /proc/interrupts, as the fact reads it: the name
    after the per-CPU counts and the chip, IRQ numbers up to MAX_INT (vpsnet_nic's parser)."""
    table: dict[int, str] = nic_parse_interrupts(text, per_cpu_columns=True, max_irq=MAX_INT)
    return table


def parse_ethtool_channels(text: str) -> dict[str, int | None] | None:
    """The 'Pre-set maximums' block of `ethtool -l` (None when there is none)."""
    maxima: dict[str, int | None] = {}
    section = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.lower().startswith("pre-set maximums"):
            section = "max"
            continue
        if stripped.lower().startswith("current hardware settings"):
            section = None
            continue
        if section != "max" or ":" not in stripped:
            continue
        key, _sep, value = stripped.partition(":")
        key = key.strip().lower()
        if key not in ("rx", "tx", "other", "combined"):
            continue
        maxima[key] = small_int(value)  # "n/a", garbage or absurd: None
    if not maxima:
        return None
    return {k: maxima.get(k) for k in ("rx", "tx", "other", "combined")}


def ethtool_runner(binary: str, deadline: Deadline) -> Ethtool:
    """`ethtool -l NAME` bounded by ETHTOOL_TIMEOUT and the time left (killed past it)."""

    def run(name: str) -> str | None:
        wait = min(ETHTOOL_TIMEOUT, deadline.remaining())
        try:
            proc = subprocess.run([binary, "-l", name], capture_output=True, timeout=wait,
                                  check=False, env={"LC_ALL": "C"})
        except subprocess.TimeoutExpired as exc:
            raise EthtoolTimeout(name) from exc
        except OSError:
            return None
        if proc.returncode != 0:
            return None
        return proc.stdout[:MAX_SYSFS].decode("utf-8", errors="replace")

    return run


def _hexid(value: str | None) -> str | None:
    if not value:
        return None
    value = value.lower()
    if value.startswith("0x"):
        value = value[2:]
    return value.zfill(4) if re.fullmatch(r"[0-9a-f]{1,4}", value) else None


def _pci_device(device_path: str) -> str | None:
    """The PCI function that backs a net device (itself or, for virtio, its parent)."""
    path = device_path
    for _level in range(3):
        if PCI_ADDR_RE.fullmatch(os.path.basename(path)):
            return path
        path = os.path.dirname(path)
    return None


def _pci_facts(pci: str) -> tuple[str | None, int | None, set[int] | None]:
    """(vendor:device, NUMA node, MSI IRQs) of a PCI function."""
    vendor = _hexid(read_attr(os.path.join(pci, "vendor")))
    devid = _hexid(read_attr(os.path.join(pci, "device")))
    pci_id = f"{vendor}:{devid}" if vendor and devid else None
    numa = small_int(read_attr(os.path.join(pci, "numa_node")), 4096)  # -1: None
    try:
        entries = os.listdir(os.path.join(pci, "msi_irqs"))
    except OSError:
        return pci_id, numa, None
    return pci_id, numa, {irq for irq in map(small_int, entries) if irq is not None}


def _current_queues(queues_dir: str) -> dict[str, int]:
    try:
        entries = os.listdir(queues_dir)
    except OSError:
        entries = []
    return {
        "rx": sum(1 for q in entries if q.startswith("rx-")),
        "tx": sum(1 for q in entries if q.startswith("tx-")),
    }


def read_nics(root: str, ethtool: Ethtool | None = None,
              deadline: Deadline | None = None) -> Inventory:
    """Describe every NIC backed by a device (lo, bridges, veths are skipped)."""
    interrupts = parse_interrupts(
        read_attr(os.path.join(root, "proc/interrupts"), MAX_INTERRUPTS) or "")
    net = os.path.join(root, "sys/class/net")
    inventory = Inventory()
    try:
        names = sorted(os.listdir(net))
    except OSError:
        return inventory
    for name in names:
        dev_link = os.path.join(net, name, "device")
        if not os.path.exists(dev_link):
            continue
        device = os.path.realpath(dev_link)
        driver = link_basename(os.path.join(dev_link, "driver"))
        pci = _pci_device(device)
        pci_id, numa, msi = _pci_facts(pci) if pci else (None, None, None)
        current = _current_queues(os.path.join(net, name, "queues"))
        maximum = None
        if ethtool is not None and not name.startswith("-"):
            index = len(inventory.nics)
            if deadline is not None and deadline.spent():
                inventory.notes[index] = f"ethtool -l {name}: skipped, time budget spent"
            else:
                try:
                    out = ethtool(name)
                except EthtoolTimeout:
                    inventory.notes[index] = (f"ethtool -l {name}: timed out; "
                                              "not run for later NICs")
                    ethtool = None
                    out = None
                maximum = parse_ethtool_channels(out) if out else None
        inventory.nics.append({
            "name": name,
            "driver": driver,
            "pci_id": pci_id,
            "pci_address": os.path.basename(pci) if pci else None,
            "numa_node": numa,
            "queues": {"current": current, "max": maximum},
            "irqs": nic_queue_irqs(driver, name, os.path.basename(device), interrupts, msi),
        })
    return inventory
