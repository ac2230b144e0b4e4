"""vpsnet_tune_verify: `vpsnet-tune verify`: the live host against the plan
(sysctls, hugepages, qdiscs, ethtool, IRQ/XPS/RPS through vpsnet-irq-affinity
--dry-run), one drift item per difference, and the Prometheus textfile.
Imported by vpsnet-tune beside it in /usr/local/lib/vpsnet.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from typing import Any

from vpsnet_atomic_file import atomic_write
from vpsnet_tune_host import (
    CLEAN,
    DRIFT,
    ERROR,
    VerifyError,
    norm_sysctl,
    read,
    rooted,
    run,
    sysctl_path,
)
from vpsnet_tune_nics import ethtool_diffs
from vpsnet_tune_planfile import FQ_UNCAPPED, PLAN, load_plan, parse_spec

PROM = "vpsnet_tune.prom"
IRQ_TOOL = "vpsnet-irq-affinity"

# --- the checks: each returns drift items (kind, item, planned, live) ----------

Drift = tuple[str, str, str, str]


def check_sysctls(root: str, sysctls: dict[str, Any]) -> list[Drift]:
    out: list[Drift] = []
    for key, want in sysctls.items():
        path = rooted(root, sysctl_path(key))
        if not os.path.exists(path):
            out.append(("sysctl", key, norm_sysctl(want), "missing"))
            continue
        live = norm_sysctl(read(root, sysctl_path(key)))
        if live != norm_sysctl(want):
            out.append(("sysctl", key, norm_sysctl(want), live))
    return out


def check_hugepages(root: str, huge: dict[str, int]) -> list[Drift]:
    out: list[Drift] = []
    if "nr_hugepages" in huge:
        live = read(root, "/proc/sys/vm/nr_hugepages").strip()
        if live != str(huge["nr_hugepages"]):
            out.append(("hugepages", "vm.nr_hugepages", str(huge["nr_hugepages"]), live))
    if huge.get("nr_hugepages_1g"):
        path = "/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages"
        live = read(root, path).strip() if os.path.exists(rooted(root, path)) else "0"
        if live != str(huge["nr_hugepages_1g"]):
            out.append(("hugepages", "1G pages", str(huge["nr_hugepages_1g"]), live))
    return out


def describe(kind: str | None, maxrate: int | None) -> str:
    if kind is None:
        return "none"
    if kind != "fq" or maxrate is None or maxrate >= FQ_UNCAPPED:
        return kind
    rate = f"{maxrate // 125_000}mbit" if maxrate % 125_000 == 0 else f"{maxrate}Bps"
    return f"fq maxrate {rate}"


def shown(q: dict[str, Any] | None) -> str:
    if q is None:
        return "none"
    kind = str(q.get("kind"))
    rate = (q.get("options") or {}).get("maxrate") if kind == "fq" else None
    return describe(kind, rate if isinstance(rate, int) else FQ_UNCAPPED if kind == "fq" else None)


def major(handle: str) -> str:
    return handle.split(":", 1)[0].lstrip("0")


def check_qdisc(root: str, nic: str, spec: str) -> list[Drift]:
    """As vpsnet-qdisc sets it: the qdisc at the root of a single-queue NIC, else
    mq at the root and the qdisc on every TX queue."""
    kind, maxrate = parse_spec(spec)
    want = describe(kind, maxrate)
    queues_dir = rooted(root, f"/sys/class/net/{nic}/queues")
    if not os.path.isdir(rooted(root, f"/sys/class/net/{nic}")):
        return [("qdisc", nic, want, "no such NIC")]
    try:
        queues = len([q for q in os.listdir(queues_dir) if q.startswith("tx-")])
    except OSError as err:
        raise VerifyError(f"{nic}: cannot list its queues: {err.strerror}") from None
    try:
        qdiscs = json.loads(run(["tc", "-j", "qdisc", "show", "dev", nic]) or "[]")
    except ValueError as err:
        raise VerifyError(f"tc -j qdisc show dev {nic}: not JSON: {err}") from None
    if not isinstance(qdiscs, list) or not all(isinstance(q, dict) for q in qdiscs):
        raise VerifyError(f"tc -j qdisc show dev {nic}: not a list of qdiscs")
    roots = [q for q in qdiscs if q.get("root")]
    if [q.get("kind") for q in roots] == ["noqueue"]:
        return []

    def same(q: dict[str, Any] | None) -> bool:
        return q is not None and shown(q) == want

    if queues <= 1:
        top = roots[0] if len(roots) == 1 else None
        return [] if same(top) else [("qdisc", f"{nic} root", want, shown(top))]
    if [q.get("kind") for q in roots] != ["mq"]:
        return [("qdisc", f"{nic} root", "mq", shown(roots[0] if roots else None))]
    handle = major(str(roots[0].get("handle", "")))
    children: dict[int, dict[str, Any]] = {}
    for q in qdiscs:
        parent = str(q.get("parent", ""))
        if ":" in parent and major(parent) == handle:
            try:
                children[int(parent.split(":", 1)[1], 16)] = q
            except ValueError:
                continue
    return [("qdisc", f"{nic} tx-{n - 1}", want, shown(children.get(n)))
            for n in range(1, queues + 1) if not same(children.get(n))]


def check_ethtool(nic: str, target: dict[str, Any]) -> list[Drift]:
    names = {"channels": "channels ", "rings": "ring ", "adaptive-rx": "adaptive-rx"}
    return [("ethtool", f"{nic} {names[part]}{key}", want, have)
            for part, key, want, have in ethtool_diffs(nic, target)]


def irq_tool() -> str:
    found = shutil.which(IRQ_TOOL) or shutil.which(IRQ_TOOL, path="/usr/local/sbin")
    if found is None:
        raise VerifyError(f"{IRQ_TOOL} not found (PATH or /usr/local/sbin)")
    return found


def check_affinity(root: str) -> list[str]:
    """vpsnet-irq-affinity --dry-run: one line per IRQ/XPS/RPS item not as planned."""
    argv = [irq_tool(), "--dry-run"] + (["--root", root] if root != "/" else [])
    return [line.strip() for line in run(argv).splitlines() if line.strip()]


def verify(root: str, plan_path: str) -> tuple[list[dict[str, str]], list[str]]:
    """(drift items, errors): every check runs, an error in one does not hide the rest."""
    drift: list[dict[str, str]] = []
    errors: list[str] = []
    try:
        plan = load_plan(plan_path)
    except VerifyError as err:
        return drift, [str(err)]

    def add(items: list[Drift]) -> None:
        for kind, item, want, live in items:
            drift.append({"kind": kind, "item": item, "planned": want, "live": live,
                          "line": f"{kind} {item}: {want} planned, {live} live"})

    sysctls = plan.get("sysctls") or {}
    checks: list[tuple[str, Any]] = [("sysctls", lambda: add(check_sysctls(root, sysctls)))]
    if plan.get("hugepages"):
        checks.append(("hugepages", lambda: add(check_hugepages(root, plan["hugepages"]))))
    for nic, spec in sorted((plan.get("qdisc") or {}).items()):
        checks.append((f"qdisc {nic}", lambda n=nic, s=spec: add(check_qdisc(root, n, str(s)))))
    for nic, target in sorted((plan.get("ethtool") or {}).items()):
        checks.append((f"ethtool {nic}", lambda n=nic, t=target: add(check_ethtool(n, t))))
    if plan.get("irq_affinity"):
        def affinity() -> None:
            for line in check_affinity(root):
                drift.append({"kind": "affinity", "item": line, "planned": "", "live": "",
                              "line": f"affinity {line}"})
        checks.append(("affinity", affinity))
    for _name, check in checks:
        try:
            check()
        except VerifyError as err:
            errors.append(str(err))
    return drift, errors


def write_textfile(directory: str, drift: int | None, ok: bool) -> str:
    """DIR/vpsnet_tune.prom, atomically (a temp file the collector does not read, then rename)."""
    value = "NaN" if drift is None else str(drift)
    body = (
        "# HELP vpsnet_tune_drift_items Items whose live state differs from the vpsnet_tune plan "
        "(NaN: the last verify could not read everything).\n"
        "# TYPE vpsnet_tune_drift_items gauge\n"
        f"vpsnet_tune_drift_items {value}\n"
        "# HELP vpsnet_tune_verify_success 1 when the last verify read every item, else 0.\n"
        "# TYPE vpsnet_tune_verify_success gauge\n"
        f"vpsnet_tune_verify_success {1 if ok else 0}\n"
        "# HELP vpsnet_tune_verify_timestamp_seconds When the last verify ran (Unix time).\n"
        "# TYPE vpsnet_tune_verify_timestamp_seconds gauge\n"
        f"vpsnet_tune_verify_timestamp_seconds {time.time():.3f}\n"
    )
    target = os.path.join(directory, PROM)
    atomic_write(target, body)
    return target


def cmd_verify(args: argparse.Namespace) -> int:
    plan_path = args.plan or rooted(args.root, PLAN)
    drift, errors = verify(args.root, plan_path)
    status = ERROR if errors else DRIFT if drift else CLEAN
    if args.json:
        print(json.dumps({"status": ["clean", "drift", "error"][status], "plan": plan_path,
                          "drift": drift, "errors": errors}, indent=2))
    else:
        for item in drift:
            print(item["line"])
    for error in errors:
        print(f"vpsnet-tune: {error}", file=sys.stderr)
    if args.textfile:
        try:
            write_textfile(args.textfile, None if errors else len(drift), not errors)
        except OSError as err:
            print(f"vpsnet-tune: cannot write {args.textfile}/{PROM}: {err}", file=sys.stderr)
            return ERROR
    return status
