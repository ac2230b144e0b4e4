"""vpsnet_irqplan: the NIC queue IRQ, XPS and RPS plan: which CPUs each NIC's
queues go to, the kernel's CPU masks, /etc/vpsnet/irq-affinity.conf, and what
a NIC as read now must change to match. Imported by the vpsnet_tune plan filter
on the controller and, installed beside vpsnet_nic.py in /usr/local/lib/vpsnet,
by vpsnet-irq-affinity and vpsnet-tune (roles/vpsnet_tune/files/vpsnet_irqplan.py
links here), so the plan and the writer never disagree. Standard library only,
Python 3.9+; imports vpsnet_nic from its package, or as a plain module on a host.

Multi-NIC CPU policy (allocate()):

  Each tuned NIC's pool is its NUMA node's online CPUs (all online CPUs when
  the node is unknown) minus the reserved CPUs, minus CPU 0 when CPU 0 is
  avoided. NICs are taken in natural name order (eth2 before eth10) and each
  gets min(queues, pool size) CPUs of its pool, CPUs no NIC has yet first, so
  the NICs of a node get disjoint ranges while CPUs last; when the pool runs
  out, the least shared CPUs are shared again, round-robin from where the
  previous NIC of that pool stopped.
  Queue N of a NIC goes to cpus[N % len(cpus)] (cpus sorted), also for the
  queues beyond its CPU count.

  CPU 0 (vpsnet_tune_irq_cpu0): `avoid` always keeps it off queue IRQs and
  RPS, `use` never does, `auto` avoids it when the host tunes more than one
  NIC and CPU 0's pool has at least 4 CPUs (a 2-vCPU VM keeps both CPUs).
  Google's google_set_multiqueue skips vCPU 0 on multi-NIC shapes as well,
  but only at boot; vpsnet applies the same rule again on hotplug and
  channel changes and gives every NIC its own range.

  XPS: tx-N -> the CPU of the IRQ serving TX queue N (cpus[N % len]); that
  is also where the transmit work lands when the IRQ is shared by rx and tx
  (ENA, idpf TxRx) or by all queues (virtio -virtqueues). Only NICs with more
  than one TX queue (the kernel keeps no map for a single queue).
  RPS: when the pool has more CPUs than the NIC has RX queues, every rx-N
  gets the pool minus the NIC's IRQ CPUs and their SMT siblings (AWS's ENA
  guide); otherwise RPS is 0 (off). Masks are written in the kernel's format
  (comma-separated 32-bit hex words) and compared by value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

if __package__:  # the collection's module_utils, imported by the plan filter
    from .vpsnet_nic import format_cpulist, parse_cpulist
else:  # a plain module beside vpsnet_nic.py (/usr/local/lib/vpsnet, or loaded by path)
    from vpsnet_nic import format_cpulist, parse_cpulist  # type: ignore[no-redef]

CPU0_MODES = ("auto", "avoid", "use")
# auto avoids CPU 0 only when its pool has at least this many CPUs
CPU0_AUTO_MIN_POOL = 4

# --------------------------------------------------------------------------- masks


def format_mask(cpus: Iterable[int]) -> str:
    """CPUs -> the kernel's hex mask: 32-bit words, most significant first,
    comma-separated ('00000004'; '00000001,00000000' for CPU 32; '0' when empty)."""
    value = 0
    for cpu in cpus:
        value |= 1 << int(cpu)
    if not value:
        return "0"
    words = []
    while value:
        words.append(f"{value & 0xFFFFFFFF:08x}")
        value >>= 32
    return ",".join(reversed(words))


def parse_mask(text: str) -> int | None:
    """A kernel hex mask ('00000000,0000000c', 'c') -> its value; None when unreadable."""
    digits = (text or "").strip().replace(",", "")
    if not digits or not re.fullmatch(r"[0-9a-fA-F]{1,2048}", digits):
        return None
    return int(digits, 16)


def mask_cpus(value: int) -> list[int]:
    return [bit for bit in range(value.bit_length()) if value >> bit & 1]


def show_mask(value: int | None) -> str:
    """A mask value for a message: hex without padding, and its CPUs."""
    if value is None:
        return "unreadable"
    return f"{value:x} (CPUs {format_cpulist(mask_cpus(value)) or 'none'})"


# --------------------------------------------------------------------------- the policy


def natural_key(name: str) -> list[Any]:
    """eth2 before eth10."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"([0-9]+)", str(name)) if part]


def avoid_cpu0(mode: str, tuned_nics: int, pool_size: int) -> bool:
    """The CPU 0 rule: `avoid`, `use`, or `auto` (more than one tuned NIC and a
    pool of at least CPU0_AUTO_MIN_POOL CPUs around CPU 0)."""
    if mode == "avoid":
        return True
    if mode == "use":
        return False
    return tuned_nics > 1 and pool_size >= CPU0_AUTO_MIN_POOL


def nic_pool(node_cpus: list[int] | None, online: list[int], reserved: Iterable[int],
             cpu0_avoided: bool) -> list[int]:
    """The CPUs a NIC may use: its node's online CPUs (every online CPU when the
    node is unknown), minus the reserved ones and CPU 0 when it is avoided."""
    banned = set(reserved) | ({0} if cpu0_avoided else set())
    base = node_cpus if node_cpus else online
    return [c for c in sorted(set(base)) if c in set(online) and c not in banned]


def allocate(nics: list[dict[str, Any]]) -> dict[str, list[int]]:
    """[{name, pool, queues}] -> {name: its sorted CPUs}. NICs in natural name
    order each take min(queues, pool size) CPUs of their pool: CPUs no NIC has
    yet first (so ranges are disjoint while CPUs last, also across pools that
    overlap), then the least shared ones; ties go round-robin from where the
    previous NIC of the same pool stopped."""
    out: dict[str, list[int]] = {}
    usage: dict[int, int] = {}
    starts: dict[tuple[int, ...], int] = {}
    for nic in sorted(nics, key=lambda n: natural_key(n["name"])):
        pool = tuple(sorted(set(nic["pool"])))
        if not pool:
            out[nic["name"]] = []
            continue
        take = min(max(int(nic.get("queues") or 1), 1), len(pool))
        start = starts.get(pool, 0)

        def rank(index: int, start: int = start, pool: tuple[int, ...] = pool) -> tuple[int, int]:
            return usage.get(pool[index], 0), (index - start) % len(pool)

        order = sorted(range(len(pool)), key=rank)
        chosen = order[:take]
        for index in chosen:
            usage[pool[index]] = usage.get(pool[index], 0) + 1
        starts[pool] = (chosen[-1] + 1) % len(pool)
        out[nic["name"]] = sorted(pool[i] for i in chosen)
    return out


def irq_cpu(cpus: list[int], queue: int) -> int:
    return cpus[int(queue) % len(cpus)]


def irq_cpus(cpus: list[int], irqs: list[dict[str, Any]],
             queues: int | None = None) -> list[int]:
    """The CPUs a NIC's queue IRQs land on; with `queues`, only those of the
    queues in use (virtio_net keeps the vectors of the queue pairs `ethtool -L`
    turned off, and they carry nothing)."""
    return sorted({irq_cpu(cpus, i["queue"]) for i in irqs if i.get("queue") is not None
                   and (queues is None or int(i["queue"]) < queues)})


def xps_plan(cpus: list[int], tx_queues: int) -> dict[int, int]:
    """tx-N -> CPU (the CPU of the IRQ serving TX queue N), for every TX queue:
    also a single one running on a multiqueue NIC, so that what is read back
    never depends on the driver's default (virtio_net maps its only queue to
    every CPU). A single-queue device has no xps_cpus file: left out there."""
    if tx_queues < 1 or not cpus:
        return {}
    return {q: irq_cpu(cpus, q) for q in range(tx_queues)}


def rps_plan(pool: list[int], used: list[int], siblings: dict[int, list[int]],
             rx_queues: int) -> list[int]:
    """RPS CPUs for every rx-N: when the pool has more CPUs than RX queues, the
    pool minus the IRQ CPUs and their SMT siblings; else [] (RPS off)."""
    if len(pool) <= rx_queues:
        return []
    busy = set(used)
    for cpu in used:
        busy.update(siblings.get(cpu, [cpu]))
    return [c for c in pool if c not in busy]


def plan_irqs(nics: list[dict[str, Any]], online: list[int], nodes: dict[Any, list[int]],
              reserved: list[int], cpu0_mode: str) -> tuple[list[dict[str, Any]], bool, list[str]]:
    """The controller's plan for the tuned NICs [{name, driver, numa_node, irqs,
    queues}] (queues: how many the NIC will run) -> ([{nic, driver, numa_node,
    pool, cpus, irqs: [{irq, name, queue, direction, cpu}]}], CPU 0 avoided, errors)."""
    errors: list[str] = []
    node_map = {str(k): list(v) for k, v in (nodes or {}).items()}

    def local(nic: dict[str, Any]) -> list[int] | None:
        node = nic.get("numa_node")
        if node is None or int(node) < 0:
            return None
        return node_map.get(str(int(node)))

    zero = next((cpus for cpus in node_map.values() if 0 in cpus), None)
    pool0 = nic_pool(zero, online, reserved, False)
    avoided = 0 in pool0 and avoid_cpu0(cpu0_mode, len(nics), len(pool0))
    pools: list[dict[str, Any]] = []
    for nic in nics:
        pool = nic_pool(local(nic), online, reserved, avoided)
        if not pool:
            base = nic_pool(local(nic), online, [], False)
            errors.append(
                f"NIC {nic['name']}: no CPU left for its queue IRQs: NUMA-local CPUs "
                f"{format_cpulist(base)!r} minus vpsnet_tune_reserved_cpus "
                f"{format_cpulist(reserved)!r}" + (" minus CPU 0 (vpsnet_tune_irq_cpu0="
                                                   f"{cpu0_mode})" if avoided else ""))
            continue
        pools.append({"name": nic["name"], "pool": pool, "queues": nic.get("queues") or 1})
    cpus_of = allocate(pools)
    plan = []
    for nic in nics:
        if nic["name"] not in cpus_of:
            continue
        cpus = cpus_of[nic["name"]]
        irqs = [dict(i, cpu=irq_cpu(cpus, i["queue"])) for i in nic.get("irqs") or []
                if i.get("queue") is not None]
        plan.append({"nic": nic["name"], "driver": nic.get("driver"),
                     "numa_node": nic.get("numa_node"),
                     "pool": next(p["pool"] for p in pools if p["name"] == nic["name"]),
                     "cpus": cpus, "cpulist": format_cpulist(cpus), "irqs": irqs})
    return plan, avoided, errors


# --------------------------------------------------------------------------- the conf file

# /etc/vpsnet/irq-affinity.conf: `IFNAME CPULIST` lines (the NIC's CPUs, queue
# N on CPULIST[N % len]) and `option NAME VALUE` lines. Files written before
# the options existed carry none: IRQs only, as then.
OPTION_DEFAULTS = {"xps": "off", "rps": "off", "cpu0": "use", "reserved": "none"}
OPTION_VALUES = {"xps": ("on", "off"), "rps": ("on", "off"), "cpu0": ("avoid", "use")}


class ConfError(ValueError):
    """A line of the conf file that cannot be read."""


def parse_conf(text: str) -> tuple[dict[str, str], dict[str, list[int]]]:
    """-> (options, {ifname: cpus}). Raises ConfError naming the bad line."""
    options = dict(OPTION_DEFAULTS)
    nics: dict[str, list[int]] = {}
    for number, raw in enumerate((text or "").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        if fields[0] == "option":
            if len(fields) not in (2, 3) or fields[1] not in OPTION_DEFAULTS:
                raise ConfError(f"line {number}: {line!r} is not a known option")
            name, value = fields[1], fields[2] if len(fields) == 3 else ""
            if name == "reserved":
                try:
                    parse_cpulist("" if value == "none" else value)
                except ValueError:
                    raise ConfError(
                        f"line {number}: reserved {value!r} is not a CPU list") from None
            elif value not in OPTION_VALUES[name]:
                raise ConfError(f"line {number}: option {name} {value!r} is not one of "
                                f"{', '.join(OPTION_VALUES[name])}")
            options[name] = value or "none"
            continue
        if len(fields) != 2:
            raise ConfError(f"line {number}: {line!r} is not `IFNAME CPULIST`")
        try:
            cpus = parse_cpulist(fields[1])
        except ValueError:
            cpus = []
        if not cpus:
            raise ConfError(f"line {number}: {fields[1]!r} is not a CPU list")
        nics[fields[0]] = cpus
    return options, nics


def format_conf(options: dict[str, str], nics: dict[str, list[int]]) -> str:
    lines = [f"option {name} {options.get(name, default)}"
             for name, default in OPTION_DEFAULTS.items()]
    lines += [f"{name} {format_cpulist(cpus)}"
              for name, cpus in sorted(nics.items(), key=lambda kv: natural_key(kv[0]))]
    return "\n".join(lines) + "\n"


def reserved_of(options: dict[str, str]) -> list[int]:
    value = options.get("reserved", "none")
    return [] if value in ("", "none") else parse_cpulist(value)


# --------------------------------------------------------------------------- plan vs. live


def wanted(nic: dict[str, Any], cpus: list[int], options: dict[str, str], online: list[int],
           nodes: dict[int, list[int]], siblings: Callable[[list[int]], dict[int, list[int]]]
           ) -> dict[str, Any]:
    """What a NIC (as read_nic() saw it) should have, given its CPUs from the
    conf file: {irq: cpu}, {tx queue: cpu} (None: XPS left alone), RPS CPUs
    (None: left alone)."""
    node = nic.get("numa_node")
    pool = nic_pool(nodes.get(node) if node is not None else None, online,
                    reserved_of(options), options.get("cpu0") == "avoid")
    irqs = {int(i["irq"]): irq_cpu(cpus, i["queue"]) for i in nic["irqs"]
            if i.get("queue") is not None}
    maps = queue_maps(cpus, pool, nic["irqs"], len(nic["tx"]), len(nic["rx"]),
                      options.get("xps") == "on", options.get("rps") == "on", siblings)
    return {"irqs": irqs, **maps}


def queue_maps(cpus: list[int], pool: list[int], irqs: list[dict[str, Any]], tx_queues: int,
               rx_queues: int, xps: bool, rps: bool,
               siblings: Callable[[list[int]], dict[int, list[int]]]) -> dict[str, Any]:
    """XPS (tx queue -> CPU) and RPS CPUs of a NIC with these CPUs, pool and
    queue counts; None where they are left alone. The plan and the writer both
    ask this, so they cannot disagree."""
    rps_cpus = None
    if rps:
        used = irq_cpus(cpus, irqs, rx_queues)
        rps_cpus = rps_plan(pool, used, siblings(used), rx_queues)
    return {"xps": xps_plan(cpus, tx_queues) if xps else None, "rps": rps_cpus}


def drift(nic: dict[str, Any], want: dict[str, Any],
          read: Callable[[str], str | None]) -> list[tuple[str, str, str]]:
    """[(path relative to the root, value to write, message)] for every item of
    the NIC that differs from `want`; `read(relative path)` reads the live value."""
    name = nic["name"]
    out: list[tuple[str, str, str]] = []
    by_irq = {int(i["irq"]): i for i in nic["irqs"]}
    for irq, cpu in sorted(want["irqs"].items()):
        path = f"proc/irq/{irq}/smp_affinity_list"
        current = (read(path) or "").strip()
        try:
            same = parse_cpulist(current) == [cpu]
        except ValueError:
            same = False
        if not same:
            item = by_irq[irq]
            queue = item["direction"] + ("" if item["queue"] is None else f"-{item['queue']}")
            out.append((path, str(cpu), f"{name}: irq {irq} ({item['name']}, {queue}) "
                                        f"smp_affinity_list {current or 'unreadable'} -> {cpu}"))
    for queue, cpu in sorted((want["xps"] or {}).items()):
        path = f"sys/class/net/{name}/queues/tx-{queue}/xps_cpus"
        live = read(path)
        if live is None and len(nic["tx"]) == 1:
            continue  # no xps_cpus: the kernel offers no XPS on a single-queue device
        mask = parse_mask(live or "")
        if mask != 1 << cpu:
            out.append((path, format_mask([cpu]), f"{name}: tx-{queue} xps_cpus "
                                                  f"{show_mask(mask)} -> {show_mask(1 << cpu)}"))
    if want["rps"] is not None:
        value = 0
        for cpu in want["rps"]:
            value |= 1 << cpu
        for queue in nic["rx"]:
            path = f"sys/class/net/{name}/queues/rx-{queue}/rps_cpus"
            mask = parse_mask(read(path) or "")
            if mask != value:
                message = (f"{name}: rx-{queue} rps_cpus {show_mask(mask)} -> "
                           f"{show_mask(value)}")
                out.append((path, format_mask(want["rps"]), message))
    return out
