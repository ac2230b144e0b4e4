"""vpsnet_tune_record: `vpsnet-tune save` records the host's own values before
vpsnet_tune changes them (once), `vpsnet-tune restore` puts them back.
Imported by vpsnet-tune beside it in /usr/local/lib/vpsnet.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import json
import os
import re
import subprocess
import sys
import time
from typing import Any

from vpsnet_atomic_file import atomic_write
from vpsnet_irqplan import parse_mask
from vpsnet_nic import msi_irqs, parse_interrupts, pci_function
from vpsnet_tune_host import (
    CONTROL_RE,
    ERROR,
    SYSCTL_RE,
    VerifyError,
    check_ifname,
    norm_sysctl,
    read,
    read_opt,
    rooted,
    sysctl_path,
    write,
)

GUARD = "/usr/local/sbin/vpsnet-guard"
GUARD_ID = "vpsnet-tune-original"
RECORD = "original.json"


def norm_mask(text: str) -> int:
    """A CPU mask as /sys shows it ("00000000,0000000f") -> its value (0 when empty)."""
    return parse_mask(text) or 0


def irq_names(root: str) -> dict[int, str]:
    return parse_interrupts(read_opt(root, "/proc/interrupts") or "")


def save_irqs(root: str, nics: list[str]) -> list[dict[str, Any]]:
    names = irq_names(root)
    out: list[dict[str, Any]] = []
    for nic in nics:
        msi = msi_irqs(pci_function(os.path.realpath(rooted(root, f"/sys/class/net/{nic}/device"))))
        for irq in sorted(msi or ()):
            value = read_opt(root, f"/proc/irq/{irq}/smp_affinity_list")
            if value is not None:
                out.append({"nic": nic, "irq": irq, "name": names.get(irq, ""),
                            "smp_affinity_list": value.strip()})
    return out


def queue_files(root: str, nic: str) -> list[str]:
    base = f"/sys/class/net/{nic}/queues"
    try:
        queues = sorted(os.listdir(rooted(root, base)))
    except OSError:
        return []
    out = []
    for queue in queues:
        name = {"tx": "xps_cpus", "rx": "rps_cpus"}.get(queue[:2], "")
        if name and os.path.exists(rooted(root, f"{base}/{queue}/{name}")):
            out.append(f"{base}/{queue}/{name}")
    return out


def save_queues(root: str, nics: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for nic in nics:
        for path in queue_files(root, nic):
            value = read_opt(root, path)  # xps_cpus is unreadable on a single-queue NIC
            if value is not None:
                out[path] = value.strip()
    return out


def last_match(text: str | None, pattern: str) -> str | None:
    found = [line for line in (text or "").splitlines() if re.match(pattern, line)]
    return found[-1] if found else None


def instance_configs(root: str, path: str | None) -> dict[str, Any]:
    """GCE's guest agent: [InstanceSetup] set_multiqueue as the host had it (None: not set)."""
    text = read_opt(root, path) if path else None
    value = None
    if text is not None:
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        with contextlib.suppress(configparser.Error):
            parser.read_string(text)
            value = parser.get("InstanceSetup", "set_multiqueue", fallback=None)
    return {"path": path, "exists": text is not None, "set_multiqueue": value}


def atomic_json(path: str, data: Any) -> None:
    atomic_write(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def guard(directory: str, *argv: str) -> None:
    env = dict(os.environ, VPSNET_GUARD_DIR=os.path.join(directory, "nic"))
    tool = os.environ.get("VPSNET_TUNE_GUARD", GUARD)
    try:
        done = subprocess.run([tool, *argv], capture_output=True, text=True, env=env,
                              timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise VerifyError(f"{tool}: {err}") from None
    if done.returncode != 0:
        raise VerifyError(f"{tool} {' '.join(argv)}: exit {done.returncode}: "
                          f"{(done.stderr or done.stdout).strip()}")


def parse_request(text: str) -> dict[str, Any]:
    try:
        req = json.loads(text)
    except ValueError as err:
        raise VerifyError(f"--request is not JSON: {err}") from None
    if not isinstance(req, dict):
        raise VerifyError("--request is not a JSON object")
    for key in ("sysctls", "nics", "installed"):
        if not isinstance(req.get(key, []), list):
            raise VerifyError(f"--request: {key} is not a list")
    if not all(isinstance(p, str) and p.startswith("/") for p in req.get("installed", [])):
        raise VerifyError("--request: installed is not a list of absolute paths")
    bad = [f"sysctl {k!r}" for k in req.get("sysctls", []) if not isinstance(k, str)
           or not SYSCTL_RE.fullmatch(k)]
    for nic in req.get("nics", []):
        try:
            check_ifname(nic)
        except ValueError as err:
            bad.append(str(err))
    for key in ("irqbalance_file", "grub_file", "instance_configs_file"):
        value = req.get(key)
        if value is not None and (not isinstance(value, str) or not value.startswith("/")
                                  or CONTROL_RE.search(value)):
            bad.append(f"{key} {value!r} is not an absolute path")
    if bad:
        raise VerifyError(f"--request: {'; '.join(bad)}")
    return req


def cmd_save(args: argparse.Namespace) -> int:
    req = parse_request(args.request)
    root, directory = args.root, args.dir
    record_path = os.path.join(directory, RECORD)
    keys = list(dict.fromkeys(req.get("sysctls", [])))
    if os.path.exists(record_path):
        # Recorded once: only keys the plan gained since (vpsnet never set them) are added.
        with open(record_path, encoding="utf-8") as handle:
            record = json.load(handle)
        new = [k for k in keys if k not in record["sysctls"]
               and os.path.exists(rooted(root, sysctl_path(k)))]
        if not new:
            return 0
        print(f"{'would add' if args.check else 'added'} to {record_path}: sysctl {', '.join(new)}")
        if not args.check:
            for key in new:
                record["sysctls"][key] = norm_sysctl(read(root, sysctl_path(key)))
            atomic_json(record_path, record)
        return 0
    # A host an older vpsnet_tune (without this record) had tuned: these are its values.
    pristine = not any(os.path.exists(rooted(root, p)) for p in req.get("installed", []))
    print(f"{'would record' if args.check else 'recorded'} the pre-vpsnet state in {directory}"
          + ("" if pristine else " (an earlier vpsnet_tune had tuned this host: its values)"))
    if args.check:
        return 0
    nics = list(dict.fromkeys(req.get("nics", [])))
    irqbalance = req.get("irqbalance_file")
    irqbalance_text = read_opt(root, irqbalance) if irqbalance else None
    grub = req.get("grub_file")
    grub_text = read_opt(root, grub) if grub else None
    record = {
        "version": 1,
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "pristine": pristine,
        "sysctls": {k: norm_sysctl(read(root, sysctl_path(k))) for k in keys
                    if os.path.exists(rooted(root, sysctl_path(k)))},
        "nics": nics,
        "irqs": save_irqs(root, nics),
        "queues": save_queues(root, nics),
        "irqbalance": {"path": irqbalance, "exists": irqbalance_text is not None,
                       "line": last_match(irqbalance_text, r"#?\s*IRQBALANCE_ARGS=")},
        "grub": {"path": grub, "exists": grub_text is not None, "content": grub_text},
        "instance_configs": instance_configs(root, req.get("instance_configs_file")),
    }
    os.makedirs(directory, mode=0o700, exist_ok=True)
    if nics:
        guard(directory, "save", GUARD_ID, *nics)
    atomic_json(record_path, record)  # last: its presence means the record is whole
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    root, directory = args.root, args.dir
    record_path = os.path.join(directory, RECORD)
    try:
        with open(record_path, encoding="utf-8") as handle:
            record = json.load(handle)
    except FileNotFoundError:
        raise VerifyError(f"no record {record_path}: nothing saved to restore") from None
    except (OSError, ValueError) as err:
        raise VerifyError(f"cannot read {record_path}: {err}") from None
    verb = "would restore" if args.check else "restored"
    errors: list[str] = []

    def put(what: str, path: str, value: str, same: bool) -> None:
        if same:
            return
        print(f"{verb} {what}: {value}")
        if not args.check:
            try:
                write(root, path, value)
            except VerifyError as err:
                errors.append(str(err))

    # sysctls first: default_qdisc is what a qdisc the NIC revert puts back defaults to
    for key, value in sorted(record.get("sysctls", {}).items()):
        path = sysctl_path(key)
        if not os.path.exists(rooted(root, path)):
            print(f"vpsnet-tune: sysctl {key} no longer exists: not restored", file=sys.stderr)
            continue
        live = read_opt(root, path)
        put(f"sysctl {key}", path, value, live is not None and norm_sysctl(live) == value)
    if record.get("nics"):
        if not os.path.exists(os.path.join(directory, "nic", GUARD_ID + ".sh")):
            raise VerifyError(f"{directory}/nic/{GUARD_ID}.sh is missing: the NICs' "
                              "recorded state cannot be put back")
        # channels first: they re-create the queue IRQs whose affinity follows
        print(f"{verb} MTU, channels, rings, adaptive RX and qdiscs of {', '.join(record['nics'])}")
        if not args.check:
            try:
                guard(directory, "revert", GUARD_ID)
            except VerifyError as err:
                errors.append(str(err))
    names = irq_names(root)
    by_name: dict[str, list[int]] = {}
    for irq, name in names.items():
        by_name.setdefault(name, []).append(irq)
    for item in record.get("irqs", []):
        # an IRQ keeps its name across a channel change, not always its number
        same_name = by_name.get(item["name"], [])
        irq = same_name[0] if len(same_name) == 1 else item["irq"]
        if names.get(irq) != item["name"]:
            continue  # gone with its queue
        path = f"/proc/irq/{irq}/smp_affinity_list"
        live = read_opt(root, path)
        put(f"irq {irq} ({item['name']}) smp_affinity_list", path, item["smp_affinity_list"],
            live is not None and live.strip() == item["smp_affinity_list"])
    for path, value in sorted(record.get("queues", {}).items()):
        live = read_opt(root, path)
        if live is None and not os.path.exists(rooted(root, path)):
            continue  # a queue the NIC no longer has
        what = path.split("/queues/", 1)[-1].replace("/", " ")
        put(f"{path.split('/')[4]} {what}", path, value,
            live is not None and norm_mask(live) == norm_mask(value))
    for error in errors:
        print(f"vpsnet-tune: {error}", file=sys.stderr)
    return ERROR if errors else 0
