"""vpsnet_tune_planfile: the plan the role writes (/etc/vpsnet/tune-plan.json),
read and checked, and the qdisc specs it holds. Imported by vpsnet_tune_verify
and vpsnet_tune_nics beside it in /usr/local/lib/vpsnet.
"""

from __future__ import annotations

import json
import re
from typing import Any

from vpsnet_tune_host import SYSCTL_RE, VerifyError, check_ifname

PLAN = "etc/vpsnet/tune-plan.json"
# fq keeps maxrate as a u32 in bytes/s; all ones means "no cap" (as vpsnet-qdisc).
FQ_UNCAPPED = 0xFFFFFFFF
KINDS = ("fq", "fq_codel", "fq_pie", "cake", "codel", "pie", "sfq", "pfifo_fast", "pfifo", "bfifo")


def parse_spec(spec: str) -> tuple[str, int | None]:
    """`fq maxrate 57mbit` -> ("fq", bytes/s); `fq` -> ("fq", FQ_UNCAPPED); else (kind, None)."""
    kind, *rest = spec.split()
    if kind not in KINDS:
        raise ValueError(f"unknown qdisc {kind!r}")
    if kind != "fq":
        if rest:
            raise ValueError(f"{spec!r}: only fq takes parameters")
        return kind, None
    if not rest:
        return kind, FQ_UNCAPPED
    match = re.fullmatch(r"maxrate ([0-9]{1,5})mbit", " ".join(rest))
    if match is None:
        raise ValueError(f"{spec!r}: expected 'fq maxrate NUMmbit'")
    return kind, int(match.group(1)) * 125_000


def load_plan(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            plan = json.load(handle)
    except FileNotFoundError:
        raise VerifyError(f"no plan {path}: vpsnet_tune has not run on this host "
                          "(or was undone)") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise VerifyError(f"cannot read the plan {path}: {err}") from None
    if not isinstance(plan, dict) or plan.get("version") != 1:
        raise VerifyError(f"{path}: not a vpsnet_tune plan (version 1)")
    problems: list[str] = []
    sysctls = plan.get("sysctls") or {}
    if not isinstance(sysctls, dict) or not all(
            isinstance(k, str) and SYSCTL_RE.fullmatch(k) for k in sysctls):
        problems.append("sysctls: not a map of sysctl keys")

    def qdisc_entry(nic: Any, spec: Any) -> None:
        try:
            check_ifname(nic)
            parse_spec(str(spec))
        except ValueError as err:
            problems.append(f"qdisc {nic!r}: {err}")

    def ethtool_entry(nic: Any, target: Any) -> None:
        try:
            check_ifname(nic)
        except ValueError as err:
            problems.append(f"ethtool: {err}")
        if not isinstance(target, dict):
            problems.append(f"ethtool {nic!r}: not a map")

    for key, what, entry in (("qdisc", "spec", qdisc_entry), ("ethtool", "targets", ethtool_entry)):
        section = plan.get(key) or {}
        if not isinstance(section, dict):
            problems.append(f"{key}: not a map NIC -> {what}")
            continue
        for nic, value in section.items():
            entry(nic, value)
    huge = plan.get("hugepages")
    if huge is not None and not (isinstance(huge, dict) and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in huge.values())):
        problems.append("hugepages: not a map of page counts")
    if problems:
        raise VerifyError(f"{path}: {'; '.join(problems)}")
    return plan
