"""bench/rollout_scale.py's pure logic (issue 23), without containers: hosts
dealt round-robin over the declared regions, the rollout steps that gives
(the plan's own filter), the inventory it writes, its CLI lists and the summary's
ratios."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from testlib.folder_modules import BENCH, load_from

scale = load_from(BENCH, "rollout_scale")
rf = scale.rf


def test_hosts_are_dealt_round_robin_in_declared_region_order() -> None:
    hosts = scale.spread(40, 12)
    per_region = Counter(h.region for h in hosts)
    # 40 = 3 * 12 + 4: the first four declared regions get a fourth host
    assert [per_region[r] for r in rf.REGIONS] == [4] * 4 + [3] * 8
    # inventory order: region by region as declared (not alphabetical), canary -00 first
    assert [h.region for h in hosts] == sorted((h.region for h in hosts), key=rf.REGIONS.index)
    assert hosts[0].name == "vpsnet-scale-00-us-east-1-00"
    assert len({h.name for h in hosts}) == 40
    small = scale.spread(5, 12)
    assert [h.region for h in small] == list(rf.REGIONS[:5])


def test_steps_follow_the_regions_with_hosts() -> None:
    # one canary per region with hosts, then the rest of it in one step ('100%')
    assert scale.plan_steps(scale.spread(5, 12), 12) == [1] * 5
    assert scale.plan_steps(scale.spread(20, 12), 12) == [1, 1] * 8 + [1] * 4
    assert scale.plan_steps(scale.spread(40, 12), 12) == [1, 3] * 4 + [1, 2] * 8
    assert scale.plan_steps(scale.spread(40, 4), 4) == [1, 9] * 4


def test_too_many_regions_is_refused() -> None:
    with pytest.raises(ValueError, match="not 13"):
        scale.spread(5, 13)


def test_inventory_declares_the_regions_and_the_batches(tmp_path: Path) -> None:
    hosts = scale.spread(10, 3)
    inv = yaml.safe_load(scale.inventory(hosts, 3, tmp_path / "repo", tmp_path / "i.yml")
                         .read_text())["all"]
    assert inv["vars"]["vpsnet_rollout_batches"] == ["100%"]
    assert inv["vars"]["vpsnet_rollout_regions"] == list(rf.REGIONS[:3])
    assert inv["vars"]["vpsnet_driver_version"] == "1.0.0"
    groups = inv["children"]
    assert {g: len(v["hosts"]) for g, v in groups.items()} == {
        "region_us_east_1": 4, "region_eu_west_1": 3, "region_ap_south_1": 3}
    assert all(v["vpsnet_regions_exporter"] for g in groups.values() for v in g["hosts"].values())


@pytest.mark.parametrize("text", ["5,x", "", "5,0", "-1"])
def test_bad_host_lists_name_the_value(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=repr(text).replace("[", r"\[")):
        scale.int_list(text)


def _run(hosts: int, forks: int, wall: float, steps: int) -> dict[str, Any]:
    return {"hosts": hosts, "forks": forks, "wall_seconds": wall, "steps": steps,
            "wall_per_step_seconds": wall / steps, "controller_cpu_seconds": wall / 2}


def test_summary_ratios_and_the_closest_forks() -> None:
    runs = [_run(5, 10, 100, 5), _run(40, 10, 480, 24), _run(5, 50, 100, 5), _run(40, 50, 140, 24)]
    out = scale.summarise(runs)
    assert out["by_forks"]["10"]["wall_ratio"] == 4.8
    assert out["by_forks"]["10"]["steps_ratio"] == 4.8
    assert out["by_forks"]["10"]["wall_per_step_ratio"] == 1.0
    assert not out["by_forks"]["10"]["target_met"]
    assert out["by_forks"]["50"]["target_met"]
    assert out["closest_forks"] == 50


def test_same_steps_compares_only_fleets_with_equal_step_counts() -> None:
    runs = [_run(5, 50, 100, 5), _run(24, 50, 400, 24), _run(40, 50, 440, 24),
            _run(40, 5, 900, 24)]
    same = scale.summarise(runs)["same_steps"]
    assert same == [{"forks": 50, "steps": 24, "smallest": 24, "largest": 40,
                     "wall_ratio": 1.1, "target_met": True}]
