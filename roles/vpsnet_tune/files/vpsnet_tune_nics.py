"""vpsnet_tune_nics: the NICs' planned ethtool channels, rings and adaptive RX:
what differs on a NIC now (verify reports it) and the ethtool commands that put
it back (`vpsnet-tune nics`, at boot and on NIC add). Imported by vpsnet-tune and
vpsnet_tune_verify beside it in /usr/local/lib/vpsnet.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from vpsnet_ethtool import ethtool_fields, parse_adaptive_rx
from vpsnet_tune_host import ERROR, VerifyError, rooted, run
from vpsnet_tune_planfile import PLAN, load_plan


def ethtool_diffs(nic: str, target: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(setting, key, planned, live) for each ethtool setting of NIC off its
    target; setting is "channels", "rings" or "adaptive-rx"."""
    out: list[tuple[str, str, str, str]] = []
    for option, part in (("-l", "channels"), ("-g", "rings")):
        want = target.get(part) or {}
        if not want:
            continue
        live = ethtool_fields(run(["ethtool", option, nic]))["current"]
        for key, value in sorted(want.items()):
            have = live.get(key, "n/a")
            if have != str(value):
                out.append((part, key, str(value), have))
    adaptive = target.get("adaptive_rx")
    if adaptive is not None:
        state = parse_adaptive_rx(run(["ethtool", "-c", nic]))
        want = "on" if adaptive else "off"
        have = "n/a" if state is None else "on" if state else "off"
        if have != want:
            out.append(("adaptive-rx", "", want, have))
    return out


def nic_commands(nic: str, diffs: list[tuple[str, str, str, str]]) -> list[list[str]]:
    """ethtool commands that put a NIC's drifted channels, rings and adaptive RX
    back to the planned values (ethtool_diffs' items)."""
    channels = [arg for part, key, want, _have in diffs if part == "channels"
                for arg in (key, want)]
    rings = [arg for part, key, want, _have in diffs if part == "rings" for arg in (key, want)]
    # channels first: rings and coalescing apply per queue
    return ([["ethtool", "-L", nic, *channels]] if channels else []) + \
        ([["ethtool", "-G", nic, *rings]] if rings else []) + \
        [["ethtool", "-C", nic, "adaptive-rx", want]
         for part, _key, want, _have in diffs if part == "adaptive-rx"]


def cmd_nics(args: argparse.Namespace) -> int:
    plan = load_plan(args.plan or rooted(args.root, PLAN))
    targets = plan.get("ethtool") or {}
    status = 0
    for nic in args.ifnames or sorted(targets):
        target = targets.get(nic)
        if not target or not os.path.exists(rooted(args.root, f"sys/class/net/{nic}")):
            continue
        try:
            for argv in nic_commands(nic, ethtool_diffs(nic, target)):
                print(" ".join(argv))
                run(argv)
        except VerifyError as err:
            print(f"vpsnet-tune: {err}", file=sys.stderr)
            status = ERROR
    return status
