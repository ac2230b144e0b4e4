"""The rollout plan filter (plugins/filter/vpsnet_rollout.py, vpsnet.fleet.vpsnet_rollout_plan):
its serial steps cut the hosts exactly as Ansible's own serial batching would cut each
region (PlaybookExecutor._get_serialized_batches and pct_to_int, called here), checked
on generated fleets (hypothesis); no step crosses a region; bad input refused with the
bad value named. The playbooks that run it: tests/integration/roles/test_rollout_regions.py."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible.executor.playbook_executor import PlaybookExecutor
from ansible.utils.helpers import pct_to_int
from ansible_collections.vpsnet.fleet.plugins.filter import vpsnet_rollout as rollout
from hypothesis import given, settings
from hypothesis import strategies as st


def ansible_batches(hosts: list[str], serial: list[Any]) -> list[list[str]]:
    """The batches Ansible's executor makes of HOSTS (in play order) with SERIAL."""
    inventory = SimpleNamespace(get_hosts=lambda pattern, order=None: list(hosts))
    play = SimpleNamespace(hosts="vpsnet_rollout_order", order="inventory", serial=serial)
    executor = SimpleNamespace(_inventory=inventory)
    return PlaybookExecutor._get_serialized_batches(executor, play)  # type: ignore[arg-type]


def cut(hosts: list[str], steps: list[int]) -> list[list[str]]:
    out, start = [], 0
    for n in steps:
        out.append(hosts[start:start + n])
        start += n
    return out


batch = st.one_of(st.integers(1, 12), st.integers(1, 100).map(lambda n: f"{n}%"))
fleet = st.lists(st.integers(1, 15), min_size=1, max_size=14)  # hosts per region


@settings(max_examples=300, deadline=None)
@given(sizes=fleet, batches=st.lists(batch, min_size=1, max_size=5), data=st.data())
def test_steps_are_ansibles_own_serial_batches_per_region(sizes: list[int], batches: list[Any],
                                                          data: st.DataObject) -> None:
    regions = [f"r{i}" for i in range(len(sizes))]
    hostvars = {f"{r}-h{j:02d}": {"vpsnet_region": r}
                for r, n in zip(regions, sizes, strict=True) for j in range(n)}
    # any inventory order, any declared region order
    hosts = data.draw(st.permutations(list(hostvars)))
    declared = data.draw(st.permutations(regions))
    plan = rollout.vpsnet_rollout_plan(hosts, hostvars, declared, batches)

    assert sorted(plan["hosts"]) == sorted(hosts) and sum(plan["steps"]) == len(hosts)
    # what the rollout play runs: the plan's hosts cut by serial = the plan's steps
    steps = ansible_batches(plan["hosts"], plan["steps"])
    assert steps == cut(plan["hosts"], plan["steps"])
    expected: list[list[str]] = []
    for region in declared:
        members = [h for h in hosts if hostvars[h]["vpsnet_region"] == region]
        rest = sorted(members[1:])
        expected.append(members[:1])  # the canary alone: the region's first host
        expected.extend(ansible_batches(rest, batches) if rest else [])
    assert steps == expected
    assert plan["canaries"] == [
        next(h for h in hosts if hostvars[h]["vpsnet_region"] == r) for r in declared]
    assert plan["regions"] == {h: hostvars[h]["vpsnet_region"] for h in hosts}
    for step in steps:  # never across a region
        assert len({plan["regions"][h] for h in step}) == 1


@given(value=st.integers(1, 100), hosts=st.integers(0, 5000))
def test_a_percentage_is_resolved_as_pct_to_int(value: int, hosts: int) -> None:
    assert rollout.batch_size(f"{value}%", hosts) == pct_to_int(f"{value}%", hosts)


def test_twelve_regions_in_declared_order() -> None:
    regions = [f"region-{i:02d}" for i in range(12)]
    sizes = [1, 2, 3, 5, 8, 13, 1, 4, 6, 9, 2, 7]
    hostvars = {f"{r}-{j}": {"vpsnet_region": r}
                for r, n in zip(regions, sizes, strict=True) for j in range(n)}
    plan = rollout.vpsnet_rollout_plan(list(hostvars), hostvars, regions[::-1],
                                       [1, "25%", "100%"])
    assert plan["canaries"] == [f"{r}-0" for r in regions[::-1]]
    lines = rollout.plan_steps(plan)
    assert lines[:4] == ["region-11: region-11-0", "region-11: region-11-1",
                         "region-11: region-11-2", "region-11: region-11-3,region-11-4,region-11-5,"
                         "region-11-6"]
    assert lines[-1] == "region-00: region-00-0"
    assert len(plan["steps"]) == len(lines) == sum(
        1 + len(ansible_batches([""] * (n - 1), [1, "25%", "100%"])) for n in sizes)


def test_a_region_without_targeted_hosts_is_skipped() -> None:
    hostvars = {"a": {"vpsnet_region": "x"}, "b": {"vpsnet_region": "y"}}
    plan = rollout.vpsnet_rollout_plan(["b"], hostvars, ["x", "y"], ["100%"])
    assert plan == {"hosts": ["b"], "steps": [1], "canaries": ["b"], "regions": {"b": "y"}}


@pytest.mark.parametrize(("regions", "batches", "needle"), [
    (["x"], [0], "vpsnet_rollout_batches has 0, neither a host count nor 1%..100%"),
    (["x"], ["101%"], "vpsnet_rollout_batches has '101%'"),
    (["x"], [True], "vpsnet_rollout_batches has True"),
    (["x"], [], "vpsnet_rollout_batches must be a non-empty list, got []"),
    (["x"], "25%", "vpsnet_rollout_batches must be a non-empty list, got '25%'"),
    ("x", ["25%"], "vpsnet_rollout_regions must be a non-empty list of region names, got 'x'"),
    (["y"], ["25%"], "host a is in region 'x', which vpsnet_rollout_regions (y) does not list"),
])
def test_bad_input_names_the_bad_value(regions: Any, batches: Any, needle: str) -> None:
    with pytest.raises(AnsibleFilterError) as err:
        rollout.vpsnet_rollout_plan(["a"], {"a": {"vpsnet_region": "x"}}, regions, batches)
    assert needle in str(err.value)
