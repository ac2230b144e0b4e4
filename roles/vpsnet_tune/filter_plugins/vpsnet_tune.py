"""Plan computations for the vpsnet_tune role: validation, TCP buffers from the
bandwidth-delay product, hugepage budget, the NIC queue IRQ -> CPU plan and the
per-driver ethtool targets. Pure functions, unit-tested in
tests/unit/roles/test_vpsnet_tune_plan.py; the role's tasks only apply them.
"""

from __future__ import annotations

import math
import re
from typing import Any

# Debian 12's own defaults: the role never sizes below them.
DEBIAN_TCP_RMEM = (4096, 131072, 6291456)
DEBIAN_TCP_WMEM = (4096, 16384, 4194304)
DEBIAN_CORE_MEM_MAX = 212992

PROFILES = ("auto", "ena", "virtio_net", "gve", "none")
# Which profile "auto" picks for a NIC driver.
DRIVER_PROFILES = {"ena": "ena", "virtio_net": "virtio_net", "gve": "gve"}


def parse_cpulist(text: Any) -> list[int]:
    """'0-3,8,10-11' -> [0, 1, 2, 3, 8, 10, 11]; a list of ints passes through."""
    if isinstance(text, (list, tuple)):
        return sorted({int(c) for c in text})
    cpus: set[int] = set()
    for part in str(text).replace("\n", "").split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            cpus.update(range(int(lo), int(hi) + 1))
        else:
            cpus.add(int(part))
    return sorted(cpus)


def format_cpulist(cpus: list[int]) -> str:
    """[0, 1, 2, 3, 8] -> '0-3,8' (the kernel's own cpulist format)."""
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


def irq_plan(
    nics: list[dict[str, Any]],
    online_cpus: list[int],
    node_cpus: dict[Any, Any],
    reserved: list[int],
    profiles: dict[str, str],
) -> tuple[list[dict[str, Any]], list[str]]:
    """Queue IRQs of every tuned NIC spread round-robin (by queue number) over
    the NIC's NUMA-local CPUs minus the reserved ones. Same rule as
    files/vpsnet-irq-affinity, which re-applies it at boot and on hotplug.
    """
    errors: list[str] = []
    plan: list[dict[str, Any]] = []
    nodes = {str(k): parse_cpulist(v) for k, v in (node_cpus or {}).items()}
    for nic in nics:
        name = nic.get("name")
        if profiles.get(str(name), "none") == "none":
            continue
        node = nic.get("numa_node")
        local = nodes.get(str(node)) if node is not None and int(node) >= 0 else None
        base = [c for c in (local or online_cpus) if c in online_cpus]
        cpus = [c for c in base if c not in reserved]
        if not cpus:
            errors.append(
                f"NIC {name}: no CPU left for its queue IRQs: NUMA-local CPUs "
                f"{format_cpulist(base)!r} minus vpsnet_tune_reserved_cpus "
                f"{format_cpulist(reserved)!r}"
            )
            continue
        irqs = []
        for item in nic.get("irqs") or []:
            queue = item.get("queue")
            if queue is None:
                continue
            irqs.append(
                {
                    "irq": int(item["irq"]),
                    "name": item.get("name"),
                    "queue": int(queue),
                    "cpu": cpus[int(queue) % len(cpus)],
                }
            )
        plan.append(
            {
                "nic": name,
                "driver": nic.get("driver"),
                "numa_node": node,
                "cpus": cpus,
                "cpulist": format_cpulist(cpus),
                "irqs": irqs,
            }
        )
    return plan, errors


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
    if None not in (mem_mb, max_pct, pages_2m, pages_1g):
        assert (
            mem_mb is not None
            and max_pct is not None
            and pages_2m is not None
            and pages_1g is not None
        )
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
    irqs: list[dict[str, Any]] = []
    if params.get("irq_affinity", True) and online:
        irqs, irq_errors = irq_plan(nics, online, params.get("node_cpus") or {}, reserved, profiles)
        errors.extend(irq_errors)

    result: dict[str, Any] = {
        "errors": errors,
        "qdisc": qdisc_spec(params, errors),
        "reserved_cpus": reserved,
        "profiles": profiles,
        "irq_plan": irqs,
        "hugepages_mb": huge_mb,
    }
    if rtt is not None and bandwidth is not None and cap is not None:
        result["buffers"] = buffers(rtt, bandwidth, int(cap))
    return result


_SECTION_RE = re.compile(r"^(Pre-set maximums|Current hardware settings)\s*:", re.I)
_FIELD_RE = re.compile(r"^\s*(RX|TX|Other|Combined|RX Mini|RX Jumbo)\s*:\s*(\S+)", re.I)


def parse_ethtool(text: str) -> dict[str, dict[str, int | None]]:
    """`ethtool -l` or `ethtool -g` output -> {'max': {...}, 'current': {...}}
    with keys rx, tx, other, combined, rx_mini, rx_jumbo (None when n/a)."""
    out: dict[str, dict[str, int | None]] = {"max": {}, "current": {}}
    section: str | None = None
    for line in (text or "").splitlines():
        match = _SECTION_RE.match(line.strip())
        if match:
            section = "max" if match.group(1).lower().startswith("pre-set") else "current"
            continue
        match = _FIELD_RE.match(line)
        if match and section:
            key = match.group(1).lower().replace(" ", "_")
            value = match.group(2)
            # ASCII digits, bounded: isdigit() takes "²" and int() refuses 4300+ digits
            ok = value.isascii() and value.isdigit() and len(value) <= 10
            out[section][key] = int(value) if ok else None
    return out


def ethtool_target(
    profile: str, channels: dict[str, Any], rings: dict[str, Any], vcpus: int
) -> dict[str, Any]:
    """What the NIC profile asks for, given parsed `ethtool -l` / `-g` output.
    Only settings the NIC reports (max > 0) are included."""
    chmax = (channels or {}).get("max", {})
    rgmax = (rings or {}).get("max", {})
    target: dict[str, Any] = {"channels": {}, "rings": {}, "adaptive_rx": None}
    if profile == "none":
        return target
    combined = chmax.get("combined") or 0
    if profile == "virtio_net":
        if combined:
            target["channels"]["combined"] = min(int(vcpus), combined)
    elif combined:
        target["channels"]["combined"] = combined
    else:
        for key in ("rx", "tx"):
            if chmax.get(key):
                target["channels"][key] = chmax[key]
    if profile == "ena":
        for key in ("rx", "tx"):
            if rgmax.get(key):
                target["rings"][key] = rgmax[key]
        target["adaptive_rx"] = True
    return target


def ethtool_diff(
    target: dict[str, Any], channels: dict[str, Any], rings: dict[str, Any], adaptive_rx: Any = None
) -> dict[str, Any]:
    """The part of `target` that differs from the current settings."""
    cur_ch = (channels or {}).get("current", {})
    cur_rg = (rings or {}).get("current", {})
    out: dict[str, Any] = {
        "channels": {k: v for k, v in target.get("channels", {}).items() if cur_ch.get(k) != v},
        "rings": {k: v for k, v in target.get("rings", {}).items() if cur_rg.get(k) != v},
        "adaptive_rx": None,
    }
    want = target.get("adaptive_rx")
    if want is not None and adaptive_rx is not None and bool(adaptive_rx) != bool(want):
        out["adaptive_rx"] = want
    return out


def parse_adaptive_rx(text: str) -> bool | None:
    """`ethtool -c` output -> Adaptive RX on/off (None when not reported)."""
    match = re.search(r"Adaptive RX:\s*(on|off)", text or "")
    return None if match is None else match.group(1) == "on"


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
        }
