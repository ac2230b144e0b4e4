# SPDX-License-Identifier: GPL-2.0-only
"""The rollout plan (region order, one canary per region, each region's batches as one
serial list) and what a step's analysis is asked about. Filters of vpsnet.fleet, used by
playbooks/deploy.yml and roles/vpsnet_rollout; imported by their tests."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError


def plan_errors(hosts: Sequence[str], hostvars: Mapping[str, Any], regions: Any) -> list[str]:
    """Everything wrong with the plan's inputs, one message per bad value: the
    regions, and each host's vpsnet_region (the batches are batch_errors')."""
    errors: list[str] = []
    if not isinstance(regions, list) or not regions or \
            not all(isinstance(r, str) and r for r in regions):
        errors.append(f"vpsnet_rollout_regions must be a non-empty list of region names, "
                      f"got {regions!r}")
        regions = []
    dup = sorted({r for r in regions if regions.count(r) > 1})
    if dup:
        errors.append(f"vpsnet_rollout_regions names {', '.join(dup)} more than once")
    for h in hosts:
        region = hostvars.get(h, {}).get("vpsnet_region")
        h = h if str(h).isprintable() else repr(h)
        if not region:
            errors.append(f"host {h} has no vpsnet_region")
        elif regions and region not in regions:
            errors.append(f"host {h} is in region {region!r}, which vpsnet_rollout_regions "
                          f"({', '.join(regions)}) does not list")
    return errors


def batch_size(batch: int | str, hosts: int) -> int:
    """One serial item as Ansible resolves it against HOSTS hosts
    (ansible.utils.helpers.pct_to_int): 'N%' is int(N / 100.0 * HOSTS), at least 1."""
    if isinstance(batch, str):
        return int((int(batch[:-1]) / 100.0) * hosts) or 1
    return int(batch)


def batch_errors(batches: Any) -> list[str]:
    """The batches the plan can resolve: a non-empty list of host counts >= 1 or
    'N%' with N 1..100 (tasks/validate.yml says the same, with more words)."""
    if not isinstance(batches, list) or not batches:
        return [f"vpsnet_rollout_batches must be a non-empty list, got {batches!r}"]
    bad = [b for b in batches
           if not (isinstance(b, int) and not isinstance(b, bool) and b >= 1)
           and not (isinstance(b, str) and b.endswith("%") and b[:-1].isdigit()
                    and 1 <= int(b[:-1]) <= 100)]
    return [f"vpsnet_rollout_batches has {b!r}, neither a host count nor 1%..100%" for b in bad]


def region_steps(rest: int, batches: Sequence[int | str]) -> list[int]:
    """The batch sizes of a region's REST hosts (those after its canary), as Ansible's
    serial batching cuts them (PlaybookExecutor._get_serialized_batches): each item
    against REST, the last item repeated, the last batch what is left."""
    steps: list[int] = []
    left, item = rest, 0
    while left > 0:
        size = min(batch_size(batches[item], rest), left)
        steps.append(size)
        left -= size
        item = min(item + 1, len(batches) - 1)
    return steps


def vpsnet_rollout_plan(hosts: Sequence[str], hostvars: Mapping[str, Any], regions: Any,
                        batches: Any) -> dict[str, Any]:
    """The rollout of HOSTS (the plan play's hosts, inventory order): regions in the
    order REGIONS declares; in each, its canary (its first host in HOSTS) alone, then
    the rest by name in BATCHES. hosts: every host in rollout order; steps: the
    serial list of absolute step sizes over that order (1 per canary, then its
    region's batches; no step crosses a region); canaries: in region order;
    regions: host -> region."""
    errors = plan_errors(hosts, hostvars, regions) + batch_errors(batches)
    if errors:
        raise AnsibleFilterError("vpsnet_rollout: " + "; ".join(errors))
    plan: dict[str, Any] = {"hosts": [], "steps": [], "canaries": [], "regions": {}}
    for region in regions:
        members = [h for h in hosts if hostvars[h]["vpsnet_region"] == region]
        if not members:
            continue
        ordered = members[:1] + sorted(members[1:])
        plan["hosts"].extend(ordered)
        plan["steps"].extend([1, *region_steps(len(ordered) - 1, batches)])
        plan["canaries"].append(ordered[0])
        plan["regions"].update(dict.fromkeys(ordered, region))
    return plan


def plan_steps(plan: Mapping[str, Any]) -> list[str]:
    """The plan as one line per step, in rollout order: 'REGION: HOST,HOST'."""
    lines: list[str] = []
    start = 0
    for size in plan["steps"]:
        step = plan["hosts"][start:start + size]
        lines.append(f"{plan['regions'][step[0]]}: {','.join(step)}")
        start += size
    return lines


def host_port(host: str, port: int) -> str:
    """HOST:PORT as in a URL and in Prometheus's instance label: an IPv6 literal
    (an inventory name like 2001:db8::7) in brackets, [2001:db8::7]:PORT."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"{host}:{port}"
    return f"[{host}]:{port}" if address.version == 6 else f"{host}:{port}"


def step_analysis_args(batch: Sequence[str], hostvars: Mapping[str, Any],
                       step_hosts: Sequence[str], region_hosts: Sequence[str],
                       window: Any, now: Any, port: Any = 19462) -> dict[str, Any]:
    """vpsnet_rollout_analysis's hosts, baseline_hosts, reloaded_at and window for a
    step: BATCH, the step's hosts still in the play; the baseline, the region's
    hosts that no step of this run has touched (no __vpsnet_upgrade_started) and
    that are not in the step (STEP_HOSTS, the batch as it started); the window
    ends at NOW and starts after the step's last reload (at most WINDOW s). A host's
    label: its vpsnet_rollout_analysis_instance, else its name and PORT (role
    defaults are not in hostvars, so the default is applied here), an IPv6
    literal name in brackets as Prometheus writes it ([2001:db8::7]:19462)."""
    def label(h: str) -> str:
        return str(hostvars[h].get("vpsnet_rollout_analysis_instance")
                   or host_port(h, int(port)))

    touched = set(step_hosts)
    baseline = [h for h in region_hosts
                if h not in touched and "__vpsnet_upgrade_started" not in hostvars[h]]
    reloads = {h: float(hostvars[h]["__vpsnet_upgrade_reloaded_ts"]) for h in batch
               if "__vpsnet_upgrade_reloaded_ts" in hostvars[h]}
    span = int(window)
    if reloads:
        span = min(span, int(float(now) - max(reloads.values())))
    return {"hosts": {h: label(h) for h in batch},
            "baseline_hosts": {h: label(h) for h in baseline},
            "reloaded_at": reloads, "window": span}


def step_problems(batch: Sequence[str], hostvars: Mapping[str, Any],
                  step_hosts: Sequence[str], prometheus_url: str) -> list[str]:
    """Everything wrong with a step after its soak, from each host's
    __vpsnet_upgrade_analysis (tasks/step.yml): hosts of STEP_HOSTS no longer in
    BATCH (failed in their own upgrade, which rolled them back, or else lost),
    hosts whose local gate failed, a failed analysis. A host without a verdict
    counts as failed."""
    problems: list[str] = []
    gone = {h: str(hostvars.get(h, {}).get("__vpsnet_upgrade_failure") or "").strip()
            for h in step_hosts if h not in batch}
    problems += [f"{h} failed its upgrade and was rolled back: {failure}"
                 for h, failure in gone.items() if failure]
    lost = [h for h, failure in gone.items() if not failure]
    if lost:
        problems.append(f"lost {', '.join(lost)} (unreachable: it reverts by itself)")
    verdicts = {h: hostvars[h].get("__vpsnet_upgrade_analysis") or {} for h in batch}
    for h, v in verdicts.items():
        if v.get("local_gate") != "pass":
            detail = v.get("local_gate_detail") or "no verdict"
            problems.append(f"{h} failed its check after the soak: {detail}")
    if prometheus_url:
        first = verdicts[batch[0]] if batch else {}
        if first.get("verdict") != "pass":
            reasons = first.get("reasons") or ["no verdict"]
            problems.append("analysis: " + "; ".join(str(r) for r in reasons))
    return problems


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"vpsnet_rollout_plan": vpsnet_rollout_plan,
                "vpsnet_rollout_plan_steps": plan_steps,
                "vpsnet_rollout_step_analysis_args": step_analysis_args,
                "vpsnet_rollout_step_problems": step_problems}
