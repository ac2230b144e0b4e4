# SPDX-License-Identifier: GPL-2.0-only
"""Rollout plan: which hosts are each region's canary, in the declared region order."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError

BATCH_RE = re.compile(r"^(100|[1-9][0-9]?)%$")


def plan_errors(hosts: Sequence[str], hostvars: Mapping[str, Any],
                regions: Any, batches: Any) -> list[str]:
    """Everything wrong with the rollout inputs, one message per bad value."""
    errors: list[str] = []
    if not isinstance(regions, list) or not regions or \
            not all(isinstance(r, str) and r for r in regions):
        errors.append(f"vpsnet_rollout_regions must be a non-empty list of region names, "
                      f"got {regions!r}")
        regions = []
    dup = sorted({r for r in regions if regions.count(r) > 1})
    if dup:
        errors.append(f"vpsnet_rollout_regions names {', '.join(dup)} more than once")
    if not isinstance(batches, list) or not batches:
        errors.append(f"vpsnet_rollout_batches must be a non-empty list, got {batches!r}")
    else:
        for b in batches:
            ok = (isinstance(b, int) and not isinstance(b, bool) and b >= 1) or \
                 (isinstance(b, str) and bool(BATCH_RE.match(b)))
            if not ok:
                errors.append(f"vpsnet_rollout_batches: {b!r} is neither a host count >= 1 "
                              f"nor a percentage 1%..100%")
    for h in hosts:
        region = hostvars.get(h, {}).get("vpsnet_region")
        if not region:
            errors.append(f"host {h} has no vpsnet_region")
        elif regions and region not in regions:
            errors.append(f"host {h} is in region {region!r}, which vpsnet_rollout_regions "
                          f"({', '.join(regions)}) does not list")
    return errors


def vpsnet_rollout_plan(hosts: Sequence[str], hostvars: Mapping[str, Any],
                        regions: Any, batches: Any = None) -> dict[str, str]:
    """host -> 'NN_canary' | 'NN_rest', NN the region's place in the rollout order.

    The first host of each region (inventory order) is its canary."""
    batches = ["25%", "100%"] if batches is None else batches
    errors = plan_errors(hosts, hostvars, regions, batches)
    if errors:
        raise AnsibleFilterError("vpsnet_rollout: " + "; ".join(errors))
    plan: dict[str, str] = {}
    for index, region in enumerate(regions):
        members = [h for h in hosts if hostvars[h]["vpsnet_region"] == region]
        for n, h in enumerate(members):
            plan[h] = f"{index:02d}_{'canary' if n == 0 else 'rest'}"
    return plan


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"vpsnet_rollout_plan": vpsnet_rollout_plan}
