# SPDX-License-Identifier: GPL-2.0-only
"""The AWX rollout workflow as `awx import` JSON, generated from an inventory's
vpsnet_rollout_regions (docs/awx.md). Standard library and PyYAML only; run as a
script, or loaded by path (tests/unit/awx)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# The region names vpsnet_rollout accepts (roles/vpsnet_inputs' identifier check).
REGION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# What Ansible's inventory plugins replace in a group name (keyed_groups: region_<name>).
GROUP_UNSAFE_RE = re.compile(r"[^A-Za-z0-9_]")
PLAYBOOK = "playbooks/deploy.yml"
# One day to approve the next region; then the approval fails and the workflow stops.
APPROVAL_TIMEOUT = 86400

Json = dict[str, Any]


class WorkflowInputError(ValueError):
    """Bad generator input; the message is one line naming the bad value."""


@dataclass(frozen=True)
class Site:
    """The AWX objects the workflow refers to by name (created before the import)."""

    organization: str = "Default"
    project: str = "vpsnet"
    inventory: str = "vpsnet production"
    credential: str = "vpsnet ssh"
    execution_environment: str = "vpsnet-ee"
    job_template: str = "vpsnet deploy"
    workflow: str = "vpsnet rollout"
    approval_timeout: int = APPROVAL_TIMEOUT


def region_group(region: str) -> str:
    """The inventory group holding REGION's hosts: region_<name>, '-' and '.' as '_'."""
    return "region_" + GROUP_UNSAFE_RE.sub("_", region)


def check_regions(regions: Any) -> list[str]:
    """REGIONS as a list of distinct region names, or WorkflowInputError naming the value."""
    if not isinstance(regions, list) or not regions:
        raise WorkflowInputError(
            f"vpsnet_rollout_regions must be a non-empty list of region names, got {regions!r}")
    for region in regions:
        if not isinstance(region, str) or not REGION_RE.fullmatch(region):
            raise WorkflowInputError(
                f"vpsnet_rollout_regions: {region!r} is not a region name (letters, digits, _ . -)")
    seen: dict[str, str] = {}
    for region in regions:
        group = region_group(region)
        if seen.get(group) == region:
            raise WorkflowInputError(f"vpsnet_rollout_regions names {region!r} more than once")
        if group in seen:
            raise WorkflowInputError(f"vpsnet_rollout_regions: {seen[group]!r} and {region!r} "
                                     f"would share the inventory group {group}")
        seen[group] = region
    return list(regions)


def inventory_regions(path: Path) -> list[str]:
    """vpsnet_rollout_regions of a YAML inventory file (all: vars:), or of the
    group_vars/all.yml beside it."""
    try:
        inventory = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise WorkflowInputError(f"cannot read inventory {str(path)!r}: {e}") from None
    top = inventory.get("all") if isinstance(inventory, dict) else None
    all_vars = top.get("vars") if isinstance(top, dict) else None
    if not isinstance(all_vars, dict) or "vpsnet_rollout_regions" not in all_vars:
        group_vars = path.parent / "group_vars" / "all.yml"
        if group_vars.is_file():
            all_vars = yaml.safe_load(group_vars.read_text()) or {}
    if not isinstance(all_vars, dict) or "vpsnet_rollout_regions" not in all_vars:
        raise WorkflowInputError(f"inventory {str(path)!r} sets no vpsnet_rollout_regions "
                                 f"(in all: vars: or group_vars/all.yml)")
    return check_regions(all_vars["vpsnet_rollout_regions"])


def _key(kind: str, name: str, organization: Json | None) -> Json:
    """AWX's natural key of an object: how the import finds it by name."""
    key: Json = {"name": name, "type": kind}
    if organization is not None:
        key = {"organization": organization, **key}
    return key


def job_template(site: Site) -> Json:
    """One job template running the collection's deploy playbook: never sliced,
    never two at once; the limit is asked so each workflow node picks its region."""
    org = _key("organization", site.organization, None)
    return {
        "name": site.job_template,
        "description": "vpsnet canary rollout (vpsnet.fleet.deploy): one job over the whole "
                       "inventory, or one region per workflow node (limit)",
        "job_type": "run",
        "organization": org,
        "inventory": _key("inventory", site.inventory, org),
        "project": _key("project", site.project, org),
        "playbook": PLAYBOOK,
        "scm_branch": "",
        "forks": 0,
        "limit": "",
        "verbosity": 0,
        # no terminal in AWX: the approval nodes ask instead of the playbook's prompt
        "extra_vars": json.dumps({"vpsnet_rollout_approve_regions": False}),
        "job_tags": "",
        "skip_tags": "",
        "timeout": 0,
        "use_fact_cache": False,
        "execution_environment": _key("execution_environment", site.execution_environment, None),
        "ask_limit_on_launch": True,
        "ask_variables_on_launch": True,
        "ask_inventory_on_launch": False,
        "ask_job_slice_count_on_launch": False,
        "ask_forks_on_launch": False,
        "ask_timeout_on_launch": False,
        "survey_enabled": False,
        "become_enabled": False,
        "allow_simultaneous": False,
        "job_slice_count": 1,
        "natural_key": _key("job_template", site.job_template, org),
        "related": {"credentials": [{
            "organization": org, "name": site.credential,
            "credential_type": {"name": "Machine", "kind": "ssh", "type": "credential_type"},
            "type": "credential"}]},
    }


def _node(workflow_key: Json, identifier: str, next_identifier: str | None,
          fields: Json) -> Json:
    """A workflow node with FIELDS (the prompts it sets; none: the job template's own),
    a success edge to NEXT_IDENTIFIER and no other edge."""
    success = [] if next_identifier is None else [
        {"workflow_job_template": workflow_key, "identifier": next_identifier,
         "type": "workflow_job_template_node"}]
    return {
        "identifier": identifier, **fields,
        "extra_data": {}, "all_parents_must_converge": False,
        "natural_key": {"workflow_job_template": workflow_key, "identifier": identifier,
                        "type": "workflow_job_template_node"},
        "related": {"credentials": [], "success_nodes": success,
                    "failure_nodes": [], "always_nodes": []},
    }


def workflow_nodes(regions: list[str], site: Site, workflow_key: Json) -> list[Json]:
    """Region 1's job, then (approval, region k's job) for every later region,
    chained by success edges: a failed job or a denied or expired approval ends it."""
    jt_key = _key("job_template", site.job_template, _key("organization", site.organization, None))
    nodes: list[Json] = []
    for index, region in enumerate(regions):
        later = regions[index + 1] if index + 1 < len(regions) else None
        nodes.append(_node(workflow_key, f"region {region}",
                           None if later is None else f"approve {later}",
                           {"unified_job_template": jt_key, "limit": region_group(region)}))
        if later is not None:
            # an approval node has no unified_job_template: the import creates its
            # approval template from related.create_approval_template
            approval = _node(workflow_key, f"approve {later}", f"region {later}", {})
            approval["related"]["create_approval_template"] = {
                "name": f"vpsnet: roll out to {later}?",
                "description": f"{region} is done; approve to start {later} "
                               f"({index + 2} of {len(regions)})",
                "timeout": site.approval_timeout}
            nodes.append(approval)
    return nodes


def workflow_assets(regions: Any, site: Site = Site()) -> Json:
    """The `awx import` document: the job template and the rollout workflow."""
    regions = check_regions(regions)
    if not isinstance(site.approval_timeout, int) or site.approval_timeout < 0:
        raise WorkflowInputError(
            f"approval timeout must be whole seconds >= 0, got {site.approval_timeout!r}")
    org = _key("organization", site.organization, None)
    workflow_key = _key("workflow_job_template", site.workflow, org)
    survey = {"name": "", "description": "", "spec": [{
        "question_name": "Release to roll out (vpsnet_version)", "question_description": "",
        "required": True, "type": "text", "variable": "vpsnet_version",
        "min": 1, "max": 64, "default": "", "choices": "", "new_question": True}]}
    workflow = {
        "name": site.workflow,
        "description": f"vpsnet rollout, one job per region in order: {', '.join(regions)}",
        "organization": org, "extra_vars": "", "survey_enabled": True,
        "allow_simultaneous": False, "ask_variables_on_launch": False,
        # a workflow-level inventory or limit would override every node's region
        "inventory": None, "limit": None, "scm_branch": "",
        "ask_inventory_on_launch": False, "ask_limit_on_launch": False,
        "ask_scm_branch_on_launch": False,
        "natural_key": workflow_key,
        "related": {"survey_spec": survey,
                    "workflow_nodes": workflow_nodes(regions, site, workflow_key)},
    }
    return {"job_templates": [job_template(site)], "workflow_job_templates": [workflow]}


def _compact(value: Any, indent: int, lead: int = 0) -> str:
    """VALUE as JSON at INDENT after LEAD columns (its key): on one line when that fits
    in 100 columns, else one item a line."""
    flat = json.dumps(value, ensure_ascii=False)
    if indent + lead + len(flat) <= 100 or not isinstance(value, dict | list) or not value:
        return flat
    pad = " " * (indent + 2)
    if isinstance(value, list):
        items = [pad + _compact(v, indent + 2) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"
    items = [f"{pad}{json.dumps(k)}: {_compact(v, indent + 2, len(k) + 4)}"
             for k, v in value.items()]
    return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"


def render(assets: Json) -> str:
    """The committed text: JSON, short objects on one line, one trailing newline."""
    return _compact(assets, 0) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    d = Site()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("inventory", type=Path, help="inventory file setting vpsnet_rollout_regions")
    p.add_argument("-o", "--output", type=Path, help="write here (default: standard output)")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if --output differs from what would be written")
    for field in ("organization", "project", "inventory_name", "credential",
                  "execution_environment", "job_template", "workflow"):
        default = getattr(d, "inventory" if field == "inventory_name" else field)
        p.add_argument("--" + field.replace("_", "-"), default=default,
                       help=f"AWX {field.replace('_', ' ')} name (default: {default})")
    p.add_argument("--approval-timeout", type=int, default=d.approval_timeout,
                   help=f"seconds to approve each region, 0: none (default: {d.approval_timeout})")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.check and args.output is None:
        print("vpsnet_awx_workflow: --check needs --output FILE", file=sys.stderr)
        return 2
    site = Site(args.organization, args.project, args.inventory_name, args.credential,
                args.execution_environment, args.job_template, args.workflow,
                args.approval_timeout)
    try:
        text = render(workflow_assets(inventory_regions(args.inventory), site))
    except WorkflowInputError as e:
        print(f"vpsnet_awx_workflow: {e}", file=sys.stderr)
        return 2
    if args.check:
        current = args.output.read_text() if args.output.is_file() else None
        if current != text:
            print(f"vpsnet_awx_workflow: {args.output} is stale; regenerate it", file=sys.stderr)
            return 1
        return 0
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
