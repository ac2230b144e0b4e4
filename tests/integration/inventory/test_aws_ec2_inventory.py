"""inventories/production/aws_ec2.yml run by the real amazon.aws.aws_ec2 plugin
against moto's EC2 API on 127.0.0.1 (the endpoint from AWS_URL, dummy credentials,
no real AWS): edge instances in three regions land in region_* groups named by
tag:Name with vpsnet_region composed, decoys do not, and a playbook over that
inventory orders the rollout by vpsnet_rollout_regions."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import boto3
import pytest
import yaml

from .local_cloud import (
    BIN,
    PRODUCTION,
    ansible_inventory,
    group_members,
    inventory_list,
    offline_env,
    render_inventory,
)

# The regions the rendered copy lists (the production file lists two of them).
REGIONS = ["us-east-1", "ap-northeast-1", "eu-west-1"]
# Running vpsnet-edge instances by region; None: no Name tag (named by its private DNS name)
EDGE: dict[str, list[str | None]] = {
    "us-east-1": ["edge-use1-a1", "edge-use1-b1", "edge-use1-c1"],
    "ap-northeast-1": ["edge-apne1-a1", "edge-apne1-c1"],
    "eu-west-1": ["edge-euw1-a1", None],
}
# Instances the inventory must leave out: another role, stopped, a region not listed.
DECOYS = {"decoy-origin": ("us-east-1", "vpsnet-origin", "running"),
          "decoy-stopped": ("ap-northeast-1", "vpsnet-edge", "stopped"),
          "decoy-unlisted-region": ("sa-east-1", "vpsnet-edge", "running")}
# The rollout's region order: neither the copy's regions order nor alphabetical.
ROLLOUT_REGIONS = ["eu-west-1", "us-east-1", "ap-northeast-1"]
PLAN_PLAY = """
- name: Write the rollout plan of the dynamic inventory
  hosts: aws
  connection: local
  gather_facts: false
  tasks:
    - name: Write it
      run_once: true
      ansible.builtin.copy:
        dest: "{{ plan_file }}"
        content: >-
          {{ ansible_play_hosts_all | vpsnet.fleet.vpsnet_rollout_plan(hostvars,
          vpsnet_rollout_regions, vpsnet_rollout_batches) | to_json }}
        mode: "0644"
"""
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
# moto does not check image ids (listing its AMIs takes seconds a region)
IMAGE = "ami-0123456789abcdef0"


def launch(url: str, region: str, role: str, name: str | None) -> dict[str, Any]:
    ec2 = boto3.client("ec2", region_name=region, endpoint_url=url, **CREDENTIALS)
    tags = [{"Key": "role", "Value": role}] + ([{"Key": "Name", "Value": name}] if name else [])
    instance: dict[str, Any] = ec2.run_instances(
        ImageId=IMAGE, MinCount=1, MaxCount=1, InstanceType="t3.micro",
        TagSpecifications=[{"ResourceType": "instance", "Tags": tags}])["Instances"][0]
    return instance


@pytest.fixture(scope="module")
def fleet(moto_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The instances in moto; the rendered inventory file and the environment to run it."""
    edges = {region: [launch(moto_url, region, "vpsnet-edge", name) for name in names]
             for region, names in EDGE.items()}
    for name, (region, role, state) in DECOYS.items():
        decoy = launch(moto_url, region, role, name)
        if state == "stopped":
            boto3.client("ec2", region_name=region, endpoint_url=moto_url, **CREDENTIALS) \
                .stop_instances(InstanceIds=[decoy["InstanceId"]])
    tmp = tmp_path_factory.mktemp("aws_ec2")
    source = render_inventory("aws_ec2.yml", tmp, regions=REGIONS)
    env = offline_env(tmp, AWS_URL=moto_url, AWS_ACCESS_KEY_ID="testing",
                      AWS_SECRET_ACCESS_KEY="testing")
    hostnames = {region: [name or i["PrivateDnsName"] for name, i in zip(EDGE[region], made,
                                                                        strict=True)]
                 for region, made in edges.items()}
    return {"source": source, "env": env, "hostnames": hostnames, "tmp": tmp,
            "instances": {h: i for r, made in edges.items()
                          for h, i in zip(hostnames[r], made, strict=True)}}


def graph_groups(graph: str) -> dict[str, list[str]]:
    """ansible-inventory --graph's top-level groups and their direct hosts."""
    groups: dict[str, list[str]] = {}
    current = ""
    for line in graph.splitlines():
        match = re.fullmatch(r"((?:  |\s*\|)*)\s*\|--(@?)([^:]+):?", line)
        if not match:
            continue
        depth = match.group(1).count("|")
        if match.group(2) and depth == 0:
            current = match.group(3)
            groups[current] = []
        elif not match.group(2) and depth == 1 and current:
            groups[current].append(match.group(3))
    return groups


def region_group(region: str) -> str:
    return "region_" + region.replace("-", "_")


def test_graph_shows_a_group_per_region_and_no_decoys(fleet: dict[str, Any]) -> None:
    graph = ansible_inventory(fleet["source"], fleet["env"], "--graph")
    groups = graph_groups(graph)
    for region in REGIONS:
        assert sorted(groups[region_group(region)]) == sorted(fleet["hostnames"][region]), graph
    assert sorted(groups["aws"]) == sorted(fleet["instances"]), graph
    assert {g for g in groups if g.startswith("region_")} == {region_group(r) for r in REGIONS}
    for decoy in DECOYS:
        assert decoy not in graph
    assert "sa_east_1" not in graph


def test_hostvars_compose_the_region_and_the_private_address(fleet: dict[str, Any]) -> None:
    listed = inventory_list(fleet["source"], fleet["env"])
    hostvars = listed["_meta"]["hostvars"]
    assert sorted(hostvars) == sorted(fleet["instances"])
    for region, names in fleet["hostnames"].items():
        assert sorted(group_members(listed, region_group(region))) == sorted(names)
        for name in names:
            instance = fleet["instances"][name]
            assert hostvars[name]["vpsnet_region"] == region
            assert hostvars[name]["placement"]["region"] == region
            assert hostvars[name]["ansible_host"] == instance["PrivateIpAddress"]
            assert hostvars[name]["instance_id"] == instance["InstanceId"]
    # the untagged one falls back to its private DNS name (hostnames' second entry)
    unnamed = fleet["hostnames"]["eu-west-1"][1]
    assert unnamed == fleet["instances"][unnamed]["PrivateDnsName"]
    assert unnamed.endswith(".internal")
    assert sorted(group_members(listed, "aws")) == sorted(fleet["instances"])


def test_the_production_file_is_what_ran_but_its_regions(fleet: dict[str, Any]) -> None:
    production = yaml.safe_load((PRODUCTION / "aws_ec2.yml").read_text())
    rendered = yaml.safe_load(fleet["source"].read_text())
    assert {k: v for k, v in rendered.items() if k != "regions"} == \
        {k: v for k, v in production.items() if k != "regions"}
    assert set(production["regions"]) < set(REGIONS)


def test_the_rollout_plan_follows_vpsnet_rollout_regions(fleet: dict[str, Any]) -> None:
    tmp = fleet["tmp"]
    (tmp / "plan.yml").write_text(PLAN_PLAY)
    (tmp / "vars.json").write_text(json.dumps({
        "plan_file": str(tmp / "plan.json"), "ansible_python_interpreter": sys.executable,
        "vpsnet_rollout_regions": ROLLOUT_REGIONS, "vpsnet_rollout_batches": ["100%"]}))
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(fleet["source"]), "-e", "@vars.json",
         "plan.yml"], cwd=tmp, env=fleet["env"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    plan = json.loads((tmp / "plan.json").read_text())
    hostnames = fleet["hostnames"]
    assert sorted(plan["hosts"]) == sorted(fleet["instances"])
    assert plan["regions"] == {h: r for r, names in hostnames.items() for h in names}
    # regions one after another, in the declared order; each opens with its canary alone
    visited = [plan["regions"][h] for h in plan["hosts"]]
    assert sorted(visited, key=ROLLOUT_REGIONS.index) == visited
    assert [plan["regions"][c] for c in plan["canaries"]] == ROLLOUT_REGIONS
    starts = [plan["hosts"].index(c) for c in plan["canaries"]]
    assert starts == [visited.index(r) for r in ROLLOUT_REGIONS]
    assert sum(plan["steps"]) == len(plan["hosts"])
    step_starts, at = [], 0
    for size in plan["steps"]:
        step_starts.append(at)
        at += size
    for start in starts:
        assert start in step_starts and plan["steps"][step_starts.index(start)] == 1
    # each region's canary, then its other hosts at once (100%): 2, 3 and 2 hosts
    assert plan["steps"] == [1, 1, 1, 2, 1, 1]
