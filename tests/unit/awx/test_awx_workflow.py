"""The AWX rollout workflow committed as awx/production-workflow.json: its region order,
approvals and edges against inventories/production as Ansible reads it, its job template
settings, that it is the generator's output, and the generator's refusals."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.vars.manager import VariableManager
from ansible_collections.vpsnet.fleet.plugins.filter.vpsnet_rollout import vpsnet_rollout_plan
from testlib.folder_modules import load_from

TOP = Path(__file__).resolve().parents[3]
WORKFLOW = TOP / "awx" / "production-workflow.json"
INVENTORY = TOP / "inventories" / "production" / "hosts.yml"
BATCHES = TOP / "roles" / "vpsnet_rollout" / "defaults" / "main" / "batches.yml"
gen = load_from(TOP / "awx", "vpsnet_awx_workflow")


class Production:
    """inventories/production as ansible-playbook reads it (group_vars included)."""

    def __init__(self) -> None:
        loader = DataLoader()
        self.inventory = InventoryManager(loader=loader, sources=[str(INVENTORY)])
        variables = VariableManager(loader=loader, inventory=self.inventory)
        hosts = self.inventory.get_hosts("all")
        self.regions: list[str] = list(variables.get_vars(host=hosts[0])["vpsnet_rollout_regions"])
        self.region_of = {h.name: variables.get_vars(host=h)["vpsnet_region"] for h in hosts}

    def targets(self, limit: str) -> set[str]:
        """The hosts a job with this limit targets."""
        return {h.name for h in self.inventory.get_hosts(limit)}

    def hosts_in(self, region: str) -> set[str]:
        return {h for h, r in self.region_of.items() if r == region}


@pytest.fixture(scope="module")
def production() -> Production:
    return Production()


@pytest.fixture
def committed() -> dict[str, Any]:
    return json.loads(WORKFLOW.read_text())


def nodes_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    (workflow,) = doc["workflow_job_templates"]
    return workflow["related"]["workflow_nodes"]


def walk(doc: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The nodes from the one root along success edges, and every problem with the graph:
    not one root, a failure or always edge, a fork, a cycle, a node off the chain."""
    nodes = {n["identifier"]: n for n in nodes_of(doc)}
    problems, children = [], set()
    for ident, node in nodes.items():
        related = node["related"]
        for kind in ("failure_nodes", "always_nodes"):
            if related.get(kind):
                problems.append(f"{ident} has {kind}")
        if len(related["success_nodes"]) > 1:
            problems.append(f"{ident} forks into {len(related['success_nodes'])} nodes")
        children |= {edge["identifier"] for edge in related["success_nodes"]}
    roots = [i for i in nodes if i not in children]
    if len(roots) != 1:
        return [], [*problems, f"roots {roots}, not one"]
    chain = [nodes[roots[0]]]
    while chain[-1]["related"]["success_nodes"]:
        nxt = chain[-1]["related"]["success_nodes"][0]["identifier"]
        if nxt not in nodes or nodes[nxt] in chain:
            return chain, [*problems, f"edge to {nxt}: missing or a cycle"]
        chain.append(nodes[nxt])
    if len(chain) != len(nodes):
        problems.append(f"{len(nodes) - len(chain)} node(s) off the chain")
    return chain, problems


def is_approval(node: dict[str, Any]) -> bool:
    return "unified_job_template" not in node and "create_approval_template" in node["related"]


def chain_problems(doc: dict[str, Any], production: Production) -> list[str]:
    """Everything that keeps the chain from being: region 1's job, then (approval,
    region k's job) for every later region, each job targeting exactly its region."""
    chain, problems = walk(doc)
    seen: list[str] = []
    for position, node in enumerate(chain):
        if position % 2 == 1:
            if not is_approval(node):
                problems.append(f"{node['identifier']} at {position} is not an approval")
            elif not node["related"]["create_approval_template"]["timeout"] > 0:
                problems.append(f"{node['identifier']} never times out")
            continue
        if is_approval(node) or node["unified_job_template"]["type"] != "job_template":
            problems.append(f"{node['identifier']} at {position} is not a job")
            continue
        hosts = production.targets(node.get("limit") or "all")
        regions = {production.region_of[h] for h in hosts}
        if len(regions) != 1 or hosts != production.hosts_in(min(regions)):
            problems.append(f"{node['identifier']} targets {sorted(hosts)}, not one region")
            continue
        seen.append(min(regions))
    if seen != production.regions:
        problems.append(f"regions in order {seen}, inventory says {production.regions}")
    return problems


def template_problems(doc: dict[str, Any]) -> list[str]:
    """Settings that would slice the rollout, run two at once, or override the nodes'
    regions."""
    problems = []
    for jt in doc["job_templates"]:
        expected = {"job_slice_count": 1, "allow_simultaneous": False,
                    "ask_job_slice_count_on_launch": False, "ask_limit_on_launch": True,
                    "playbook": "playbooks/deploy.yml"}
        problems += [f"job template {jt['name']}: {k}={jt.get(k)!r}"
                     for k, v in expected.items() if jt.get(k) != v]
    for wf in doc["workflow_job_templates"]:
        expected = {"allow_simultaneous": False, "ask_limit_on_launch": False,
                    "ask_inventory_on_launch": False, "limit": None, "inventory": None}
        problems += [f"workflow {wf['name']}: {k}={wf.get(k)!r}"
                     for k, v in expected.items() if wf.get(k) != v]
    for node in nodes_of(doc):
        if node.get("job_slice_count") not in (None, 1):
            problems.append(f"node {node['identifier']} slices")
    return problems


def test_chain_follows_the_production_regions(committed, production):
    assert len(production.regions) >= 2, "the production inventory lists regions"
    assert chain_problems(committed, production) == []
    assert len(nodes_of(committed)) == 2 * len(production.regions) - 1


def test_templates_never_slice_nor_run_twice(committed):
    assert template_problems(committed) == []
    (jt,) = committed["job_templates"]
    jobs = [n for n in nodes_of(committed) if not is_approval(n)]
    assert {json.dumps(n["unified_job_template"]) for n in jobs} == \
        {json.dumps(jt["natural_key"])}


def test_region_jobs_plan_what_one_job_plans(committed, production):
    """Each region job, limited to its group, plans the canary and batches that the one
    job over the whole inventory plans for that region; chained, the same rollout."""
    batches = yaml.safe_load(BATCHES.read_text())["vpsnet_rollout_batches"]
    hostvars = {h: {"vpsnet_region": r} for h, r in production.region_of.items()}
    in_order = list(production.region_of)
    whole = vpsnet_rollout_plan(in_order, hostvars, production.regions, batches)
    chained: dict[str, list[Any]] = {"hosts": [], "steps": [], "canaries": []}
    for node in walk(committed)[0][::2]:
        targets = production.targets(node["limit"])
        part = vpsnet_rollout_plan([h for h in in_order if h in targets], hostvars,
                                   production.regions, batches)
        assert len(part["canaries"]) == 1
        for key, values in chained.items():
            values += part[key]
    assert chained == {key: whole[key] for key in chained}
    assert len(whole["canaries"]) == len(production.regions)


def test_job_template_runs_the_collections_deploy_playbook(committed):
    (jt,) = committed["job_templates"]
    plays = yaml.safe_load((TOP / jt["playbook"]).read_text())
    # the plan play covers every host the job targets: the node's limit decides the plan
    assert plays[0]["hosts"] == "all"


def _swap_two_regions(doc):
    jobs = [n for n in nodes_of(doc) if not is_approval(n)]
    jobs[0]["limit"], jobs[1]["limit"] = jobs[1]["limit"], jobs[0]["limit"]


def _failure_edge(doc):
    first = nodes_of(doc)[0]
    first["related"]["failure_nodes"] = list(first["related"]["success_nodes"])


def _skip_first_approval(doc):
    nodes = nodes_of(doc)
    nodes[0]["related"]["success_nodes"] = nodes[1]["related"]["success_nodes"]
    del nodes[1]


def _two_regions_in_one_job(doc):
    jobs = [n for n in nodes_of(doc) if not is_approval(n)]
    jobs[0]["limit"] = f"{jobs[0]['limit']}:{jobs[1]['limit']}"


def _no_limit(doc):
    nodes_of(doc)[0].pop("limit")


@pytest.mark.parametrize("breaking", [_swap_two_regions, _failure_edge, _skip_first_approval,
                                      _two_regions_in_one_job, _no_limit])
def test_chain_check_catches_a_broken_workflow(committed, production, breaking: Callable):
    broken = copy.deepcopy(committed)
    breaking(broken)
    assert chain_problems(broken, production) != []


@pytest.mark.parametrize("section,key,value", [
    ("job_templates", "job_slice_count", 2), ("job_templates", "allow_simultaneous", True),
    ("workflow_job_templates", "allow_simultaneous", True),
    ("workflow_job_templates", "limit", "region_us_east_1")])
def test_template_check_catches_unsafe_settings(committed, section, key, value):
    broken = copy.deepcopy(committed)
    broken[section][0][key] = value
    assert template_problems(broken) != []


def test_committed_file_is_the_generators_output(production):
    assert gen.inventory_regions(INVENTORY) == production.regions
    assert WORKFLOW.read_text() == gen.render(gen.workflow_assets(production.regions))
    assert gen.main([str(INVENTORY), "--check", "-o", str(WORKFLOW)]) == 0


def test_check_reports_a_stale_file(tmp_path, capsys):
    stale = tmp_path / "workflow.json"
    stale.write_text(WORKFLOW.read_text().replace("region_us_east_1", "region_us_west_2"))
    assert gen.main([str(INVENTORY), "--check", "-o", str(stale)]) == 1
    assert "stale" in capsys.readouterr().err


@pytest.mark.parametrize("regions,named", [
    ([], "[]"), ("us-east-1", "'us-east-1'"), (["us east"], "'us east'"),
    (["us-east-1", "eu-west-1", "us-east-1"], "'us-east-1' more than once"),
    (["us-east-1", "us.east-1"], "'us-east-1' and 'us.east-1'"), ([None], "None")])
def test_generator_refuses_bad_regions(regions, named):
    with pytest.raises(gen.WorkflowInputError) as refused:
        gen.workflow_assets(regions)
    assert named in str(refused.value) and "\n" not in str(refused.value)


def _write_inventory(path: Path, regions: Any) -> Path:
    path.write_text(json.dumps({"all": {"vars": {"vpsnet_rollout_regions": regions}}}))
    return path


@pytest.mark.parametrize("regions,named", [([], "[]"), (["a-1", "a-1"], "'a-1' more than once")])
def test_cli_refuses_bad_inventory_and_writes_nothing(tmp_path, capsys, regions, named):
    out = tmp_path / "workflow.json"
    assert gen.main([str(_write_inventory(tmp_path / "hosts.yml", regions)),
                     "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert named in err and err.count("\n") == 1
    assert not out.exists()


def test_cli_refuses_an_inventory_without_regions(tmp_path, capsys):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all:\n  hosts:\n    a.example.net:\n")
    assert gen.main([str(inventory)]) == 2
    assert str(inventory) in capsys.readouterr().err


def test_any_number_of_regions_chain_in_order(tmp_path):
    regions = [f"r{i:02d}-x" for i in range(31)]
    nodes = nodes_of(gen.workflow_assets(regions))
    chain, problems = walk({"workflow_job_templates": [
        {"related": {"workflow_nodes": nodes}}]})
    assert problems == []
    assert [n.get("limit") for n in chain[::2]] == [gen.region_group(r) for r in regions]
    assert all(is_approval(n) for n in chain[1::2])
