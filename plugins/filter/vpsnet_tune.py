"""Plan computations for the vpsnet_tune role (filters vpsnet.fleet.vpsnet_tune_*):
validation, TCP buffers from the bandwidth-delay product, hugepage budget, and the
read-back checks; the NIC queue IRQ -> CPU rules (module_utils/vpsnet_irqplan.py over
vpsnet_nic.py) and the per-driver ethtool targets (module_utils/vpsnet_ethtool.py) are
the libraries the host-side tools import too (the role's files/ link to them). Pure
functions, unit-tested in tests/unit/roles/test_vpsnet_tune_plan.py; the role's tasks
only apply them.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ansible_collections.vpsnet.fleet.plugins.module_utils import vpsnet_ethtool as ethtool
from ansible_collections.vpsnet.fleet.plugins.module_utils import vpsnet_irqplan as irqplan
from ansible_collections.vpsnet.fleet.plugins.module_utils import vpsnet_nic as inventory

# the filters the tasks use, under the names this module has always had
parse_ethtool = ethtool.parse_ethtool
parse_adaptive_rx = ethtool.parse_adaptive_rx
ethtool_target = ethtool.ethtool_target
ethtool_diff = ethtool.ethtool_diff

# Debian 12's own defaults: the role never sizes below them.
DEBIAN_TCP_RMEM = (4096, 131072, 6291456)
DEBIAN_TCP_WMEM = (4096, 16384, 4194304)
DEBIAN_CORE_MEM_MAX = 212992

PROFILES = ("auto", "ena", "virtio_net", "gve", "none")
# Which profile "auto" picks for a NIC driver.
DRIVER_PROFILES = {"ena": "ena", "virtio_net": "virtio_net", "gve": "gve"}


def parse_cpulist(text: Any) -> list[int]:
    """'0-3,8,10-11' -> [0, 1, 2, 3, 8, 10, 11]; a list of ints passes through."""
    return list(inventory.parse_cpulist(text))


def format_cpulist(cpus: list[int]) -> str:
    """[0, 1, 2, 3, 8] -> '0-3,8' (the kernel's own cpulist format)."""
    return str(inventory.format_cpulist(cpus))


def _number(
    errors: list[str], name: str, value: Any, minimum: float | None = None, strict: bool = False
) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    # float() takes "nan", "inf", True: none of them is a setting
    if isinstance(value, bool) or not math.isfinite(number) or abs(number) > 1e15:
        errors.append(f"{name}={value!r} is not a number" if not isinstance(value, (int, float))
                      or isinstance(value, bool) else f"{name}={value!r} is not a finite number")
        return None
    if minimum is not None and (number <= minimum if strict else number < minimum):
        errors.append(f"{name}={value} must be {'>' if strict else '>='} {minimum:g}")
        return None
    return number


def buffers(rtt_ms: float, bandwidth_mbit: float, max_bytes: int) -> dict[str, Any]:
    """TCP buffer sysctls: 2 x BDP, capped at max_bytes, never below Debian's defaults."""
    bdp = int(bandwidth_mbit * 1_000_000 / 8 * rtt_ms / 1000)
    size = min(2 * bdp, int(max_bytes))
    rmem_top = max(size, DEBIAN_TCP_RMEM[2])
    wmem_top = max(size, DEBIAN_TCP_WMEM[2])
    return {
        "bdp_bytes": bdp,
        "buffer_bytes": size,
        "capped": 2 * bdp > int(max_bytes),
        "tcp_rmem": f"{DEBIAN_TCP_RMEM[0]} {DEBIAN_TCP_RMEM[1]} {rmem_top}",
        "tcp_wmem": f"{DEBIAN_TCP_WMEM[0]} {DEBIAN_TCP_WMEM[1]} {wmem_top}",
        "rmem_max": max(size, DEBIAN_CORE_MEM_MAX),
        "wmem_max": max(size, DEBIAN_CORE_MEM_MAX),
    }


def planned_queues(nic: dict[str, Any], profile: str, vcpus: int) -> int:
    """How many queues the NIC runs once its ethtool profile is applied: the
    profile's channel target when it sets one, else the current count, else
    the number of queues its IRQs serve."""
    queues = nic.get("queues") or {}
    target = ethtool_target(profile, {"max": queues.get("max") or {}}, {}, vcpus)["channels"]
    count = int(target.get("combined") or max(target.get("rx") or 0, target.get("tx") or 0))
    if not count:
        current = queues.get("current") or {}
        count = max(int(current.get("rx") or 0), int(current.get("tx") or 0))
    if not count:
        count = len({i.get("queue") for i in nic.get("irqs") or [] if i.get("queue") is not None})
    return max(count, 1)


def irq_plan(
    nics: list[dict[str, Any]],
    online_cpus: list[int],
    node_cpus: dict[Any, Any],
    reserved: list[int],
    profiles: dict[str, str],
    cpu0: str = "auto",
) -> tuple[list[dict[str, Any]], list[str], bool]:
    """Queue IRQs of every tuned NIC on the CPUs the multi-NIC policy of
    vpsnet_irqplan gives it (the same rules files/vpsnet-irq-affinity
    re-applies at boot and on hotplug): -> (plan, errors, CPU 0 avoided)."""
    nodes = {str(k): parse_cpulist(v) for k, v in (node_cpus or {}).items()}
    tuned = [
        dict(nic, queues=planned_queues(nic, profiles[str(nic.get("name"))], len(online_cpus)))
        for nic in nics
        if profiles.get(str(nic.get("name")), "none") != "none"
    ]
    plan, avoided, errors = irqplan.plan_irqs(tuned, online_cpus, nodes, reserved, cpu0)
    return list(plan), list(errors), bool(avoided)


def queue_maps(nic: dict[str, Any], tx_queues: int, rx_queues: int, xps: bool, rps: bool,
               siblings: dict[Any, Any]) -> dict[str, Any]:
    """XPS and RPS one planned NIC should have for these queue counts
    (vpsnet_irqplan.queue_maps, as the writer asks it)."""
    sib = {int(k): [int(c) for c in v] for k, v in (siblings or {}).items()}
    return dict(irqplan.queue_maps(nic["cpus"], nic["pool"], nic["irqs"], tx_queues,
                                   rx_queues, xps, rps, lambda _used: sib))


def parse_readback(text: str) -> dict[str, Any]:
    """The role's read-back command output: `irq N LIST` and `NIC tx-N MASK` /
    `NIC rx-N MASK` lines -> {'irqs': {N: LIST}, 'queues': {NIC: {'tx': {N: MASK}, 'rx': ...}}}."""
    out: dict[str, Any] = {"irqs": {}, "queues": {}}
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "irq" and inventory.IRQ_RE.fullmatch(fields[1]):
            out["irqs"][int(fields[1])] = fields[2] if len(fields) > 2 else ""
            continue
        if len(fields) == 3:
            match = re.fullmatch(r"(tx|rx)-([0-9]{1,6})", fields[1])
            if match:
                nic = out["queues"].setdefault(fields[0], {"tx": {}, "rx": {}})
                nic[match.group(1)][int(match.group(2))] = fields[2]
    return out


def _cpus_text(text: str) -> str:
    return text or "unreadable"


def readback_problems(plan_out: dict[str, Any], text: str) -> list[str]:
    """Every planned IRQ, XPS and RPS value the host does not have (read back
    after applying; the queue counts are the live ones)."""
    seen = parse_readback(text)
    problems: list[str] = []
    options = plan_out.get("irq_options") or {}
    for nic in plan_out.get("irq_plan") or []:
        for irq in nic["irqs"]:
            live = seen["irqs"].get(int(irq["irq"]), "")
            try:
                same = inventory.parse_cpulist(live) == [irq["cpu"]]
            except ValueError:
                same = False
            if not same:
                problems.append(f"{nic['nic']} IRQ {irq['irq']} ({irq['name']}) has "
                                f"smp_affinity_list {_cpus_text(live)}, planned {irq['cpu']}")
        queues = seen["queues"].get(nic["nic"], {"tx": {}, "rx": {}})
        maps = queue_maps(nic, len(queues["tx"]), len(queues["rx"]), options.get("xps") == "on",
                          options.get("rps") == "on", plan_out.get("siblings") or {})
        for queue, cpu in sorted((maps["xps"] or {}).items()):
            if queues["tx"].get(queue) == "-" and len(queues["tx"]) == 1:
                continue  # no xps_cpus file: a single-queue device has no XPS
            live_mask = irqplan.parse_mask(queues["tx"].get(queue, ""))
            if live_mask != 1 << cpu:
                problems.append(f"{nic['nic']} tx-{queue} xps_cpus "
                                f"{irqplan.show_mask(live_mask)}, planned "
                                f"{irqplan.show_mask(1 << cpu)}")
        if maps["rps"] is not None:
            value = sum(1 << c for c in maps["rps"])
            for queue, mask in sorted(queues["rx"].items()):
                live_mask = irqplan.parse_mask(mask)
                if live_mask != value:
                    problems.append(f"{nic['nic']} rx-{queue} rps_cpus "
                                    f"{irqplan.show_mask(live_mask)}, planned "
                                    f"{irqplan.show_mask(value)}")
    return problems


def google_problems(nics: list[dict[str, Any]], text: str) -> list[str]:
    """vpsnet_tune_gce_multiqueue=google: the guest environment must have put
    each queue IRQ of these NICs on a single CPU and set XPS on every TX queue."""
    seen = parse_readback(text)
    problems: list[str] = []
    why = ("the guest environment's google_set_multiqueue did not set it "
           "(vpsnet_tune_gce_multiqueue=google leaves it to Google; "
           "vpsnet_tune_gce_multiqueue=vpsnet lets vpsnet own it)")
    for nic in nics:
        name = nic.get("name")
        for irq in nic.get("irqs") or []:
            if irq.get("queue") is None:
                continue
            live = seen["irqs"].get(int(irq["irq"]), "")
            try:
                single = len(inventory.parse_cpulist(live)) == 1
            except ValueError:
                single = False
            if not single:
                problems.append(f"NIC {name}: queue IRQ {irq['irq']} ({irq.get('name')}) is on "
                                f"CPUs {_cpus_text(live)}, not one CPU: {why}")
        tx = (seen["queues"].get(name) or {"tx": {}})["tx"]
        if len(tx) > 1:
            for queue, mask in sorted(tx.items()):
                if not irqplan.parse_mask(mask):
                    problems.append(f"NIC {name}: tx-{queue} xps_cpus is {mask or 'unreadable'} "
                                    f"(no CPU): {why}")
    return problems


GCE_MODES = ("google", "vpsnet")
# the drivers Google's guest environment tunes (google_set_multiqueue)
GCE_DRIVERS = ("gve", "virtio_net")


def nic_profiles(
    nics: list[dict[str, Any]], requested: dict[str, Any], default: str, errors: list[str]
) -> dict[str, str]:
    """NIC name -> profile: per-NIC request, else the default ('auto' = by driver)."""
    out: dict[str, str] = {}
    if default not in PROFILES:
        errors.append(
            f"vpsnet_tune_nic_profile={default!r} is not a known NIC profile "
            f"(one of {', '.join(PROFILES)})"
        )
        default = "none"
    for nic_name, profile in (requested or {}).items():
        if profile not in PROFILES:
            errors.append(
                f"vpsnet_tune_nic_profiles[{nic_name!r}]={profile!r} is not a known NIC profile "
                f"(one of {', '.join(PROFILES)})"
            )
    for nic in nics:
        name = str(nic.get("name"))
        profile = (requested or {}).get(name, default)
        if profile not in PROFILES:
            profile = "none"
        if profile == "auto":
            profile = DRIVER_PROFILES.get(str(nic.get("driver")), "none")
        out[name] = profile
    return out


# fq keeps maxrate in bytes/s in a u32 (all ones = no cap).
FQ_MAXRATE_MAX_MBIT = (0xFFFFFFFF - 1) // 125_000


def qdisc_spec(params: dict[str, Any], errors: list[str]) -> str:
    """What vpsnet-qdisc puts on every TX queue: the default qdisc, with fq's
    per-flow cap when vpsnet_tune_fq_maxrate_mbit asks for one."""
    qdisc = str(params.get("default_qdisc", "fq"))
    maxrate = _number(errors, "vpsnet_tune_fq_maxrate_mbit", params.get("fq_maxrate_mbit", 0), 0)
    if not maxrate:
        return qdisc
    name = f"vpsnet_tune_fq_maxrate_mbit={maxrate:g}"
    if maxrate != int(maxrate) or maxrate > FQ_MAXRATE_MAX_MBIT:
        errors.append(f"{name} must be a whole number of Mbit/s from 1 to {FQ_MAXRATE_MAX_MBIT}")
    elif qdisc != "fq":
        errors.append(f"{name} needs vpsnet_tune_default_qdisc=fq (it is {qdisc!r})")
    elif not params.get("replace_root_qdisc", True):
        errors.append(f"{name} needs vpsnet_tune_replace_root_qdisc=true")
    return f"fq maxrate {int(maxrate)}mbit"


def plan(params: dict[str, Any]) -> dict[str, Any]:
    """Validate every input and compute what the role applies. `errors` lists
    every bad input (each naming its value); the role fails on it before any change."""
    errors: list[str] = []
    rtt = _number(errors, "vpsnet_tune_rtt_ms", params.get("rtt_ms"), 0)
    bandwidth = _number(
        errors, "vpsnet_tune_bandwidth_mbit", params.get("bandwidth_mbit"), 0, strict=True
    )
    cap = _number(
        errors, "vpsnet_tune_buffer_max_bytes", params.get("buffer_max_bytes"), 0, strict=True
    )

    online = parse_cpulist(params.get("online_cpus") or [])
    reserved_raw = params.get("reserved_cpus") or []
    try:
        reserved = parse_cpulist(reserved_raw)
    except ValueError:
        errors.append(f"vpsnet_tune_reserved_cpus={reserved_raw!r} is not a CPU list")
        reserved = []
    missing = [c for c in reserved if c not in online]
    if missing and online:
        errors.append(
            f"vpsnet_tune_reserved_cpus={reserved_raw!r}: CPU(s) {format_cpulist(missing)} "
            f"do not exist on this host (online CPUs: {format_cpulist(online)})"
        )
    if online and reserved and not [c for c in online if c not in reserved]:
        errors.append(f"vpsnet_tune_reserved_cpus={reserved_raw!r} reserves every CPU of this host")

    mem_mb = _number(errors, "memory (ansible_memtotal_mb)", params.get("memtotal_mb", 0), 0)
    max_pct = _number(
        errors, "vpsnet_tune_hugepages_max_percent", params.get("hugepages_max_percent"), 0
    )
    pages_2m = _number(errors, "vpsnet_tune_hugepages_2m", params.get("hugepages_2m", 0), 0)
    pages_1g = _number(errors, "vpsnet_tune_hugepages_1g", params.get("hugepages_1g", 0), 0)
    for name, value in (
        ("vpsnet_tune_hugepages_2m", pages_2m),
        ("vpsnet_tune_hugepages_1g", pages_1g),
    ):
        if value is not None and value != int(value):
            errors.append(f"{name}={value!r} is not a whole number of pages")
    huge_mb = None
    if (
        mem_mb is not None
        and max_pct is not None
        and pages_2m is not None
        and pages_1g is not None
    ):
        huge_mb = int(pages_2m) * 2 + int(pages_1g) * 1024
        limit_mb = mem_mb * max_pct / 100
        if huge_mb > limit_mb:
            errors.append(
                f"hugepages: vpsnet_tune_hugepages_2m={int(pages_2m)} and "
                f"vpsnet_tune_hugepages_1g={int(pages_1g)} "
                f"ask for {huge_mb} MiB, more than vpsnet_tune_hugepages_max_percent={max_pct:g}% "
                f"of this host's {int(mem_mb)} MiB RAM ({int(limit_mb)} MiB)"
            )

    nics = list(params.get("nics") or [])
    profiles = nic_profiles(
        nics, params.get("nic_profiles") or {}, str(params.get("nic_profile", "auto")), errors
    )
    known = {str(n.get("name")) for n in nics}
    for name in params.get("nic_profiles") or {}:
        if str(name) not in known:
            errors.append(
                f"vpsnet_tune_nic_profiles names NIC {name!r}, which this host does not have "
                f"(NICs: {', '.join(sorted(known)) or 'none'})"
            )
    cpu0 = str(params.get("irq_cpu0", "auto"))
    if cpu0 not in irqplan.CPU0_MODES:
        errors.append(f"vpsnet_tune_irq_cpu0={cpu0!r} is not one of "
                      f"{', '.join(irqplan.CPU0_MODES)}")
        cpu0 = "auto"
    gce_mode = str(params.get("gce_multiqueue", "vpsnet"))
    if gce_mode not in GCE_MODES:
        errors.append(f"vpsnet_tune_gce_multiqueue={gce_mode!r} is not one of "
                      f"{', '.join(GCE_MODES)}")
        gce_mode = "vpsnet"
    on_gcp = params.get("provider") == "gcp"
    # google on GCP: the guest environment owns the gve/virtio NICs' IRQs and XPS, never both
    google_nics = [n for n in nics if on_gcp and gce_mode == "google"
                   and n.get("driver") in GCE_DRIVERS]
    google_names = {str(n.get("name")) for n in google_nics}
    irq_profiles = {k: ("none" if k in google_names else v) for k, v in profiles.items()}
    irqs: list[dict[str, Any]] = []
    avoided = False
    if params.get("irq_affinity", True) and online:
        irqs, irq_errors, avoided = irq_plan(
            nics, online, params.get("node_cpus") or {}, reserved, irq_profiles, cpu0)
        errors.extend(irq_errors)
    siblings = params.get("siblings") or {}
    if isinstance(siblings, str):
        siblings = inventory.parse_siblings(siblings)
    siblings = {int(k): [int(c) for c in v] for k, v in siblings.items()}
    options = {
        "xps": "on" if params.get("xps", True) else "off",
        "rps": "on" if params.get("rps", True) else "off",
        "cpu0": "avoid" if avoided else "use",
        "reserved": format_cpulist(reserved) or "none",
    }
    by_name = {str(n.get("name")): n for n in nics}
    for nic in irqs:
        # XPS/RPS for the queue count the NIC will run; read back with the live counts
        nic["queues"] = planned_queues(by_name[str(nic["nic"])], profiles[str(nic["nic"])],
                                       len(online))
        nic.update(queue_maps(nic, nic["queues"], nic["queues"], options["xps"] == "on",
                              options["rps"] == "on", siblings))

    result: dict[str, Any] = {
        "errors": errors,
        "qdisc": qdisc_spec(params, errors),
        "reserved_cpus": reserved,
        "profiles": profiles,
        "irq_plan": irqs,
        "irq_options": options,
        "irq_conf": irqplan.format_conf(options, {n["nic"]: n["cpus"] for n in irqs}),
        "cpu0_avoided": avoided,
        "siblings": siblings,
        "gce_multiqueue": gce_mode if on_gcp else None,
        "google_nics": google_nics,
        "hugepages_mb": huge_mb,
    }
    if rtt is not None and bandwidth is not None and cap is not None:
        result["buffers"] = buffers(rtt, bandwidth, int(cap))
    return result


class FilterModule:
    """vpsnet_tune filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "vpsnet_tune_plan": plan,
            "vpsnet_tune_parse_ethtool": parse_ethtool,
            "vpsnet_tune_parse_adaptive_rx": parse_adaptive_rx,
            "vpsnet_tune_ethtool_target": ethtool_target,
            "vpsnet_tune_ethtool_diff": ethtool_diff,
            "vpsnet_tune_cpulist": format_cpulist,
            "vpsnet_tune_parse_cpulist": parse_cpulist,
            "vpsnet_tune_readback_problems": readback_problems,
            "vpsnet_tune_google_problems": google_problems,
        }
