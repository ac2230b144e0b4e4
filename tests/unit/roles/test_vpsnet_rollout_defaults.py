"""Each default of the rollout roles written in one place: the role's defaults
(vpsnet_rollout's defaults/main/ directory, whose batches.yml the batch plays'
`serial` loads too), with meta/argument_specs.yml stating the same values and
the canary analysis module's own defaults equal to the role's."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from testlib.vpsnet_facts_helpers import REPO, load_role_file
from testlib.vpsnet_inputs_helpers import role_defaults

ana = load_role_file("vpsnet_rollout/module_utils/vpsnet_rollout_canary.py",
                     "vpsnet_rollout_canary")


def test_role_defaults_are_the_modules() -> None:
    defaults = role_defaults("vpsnet_rollout")
    assert defaults["vpsnet_rollout_analysis_alerts"] == list(ana.ALERTS)
    assert defaults["vpsnet_rollout_analysis_thresholds"] == ana.DEFAULT_THRESHOLDS
    assert defaults["vpsnet_rollout_analysis_min_scrape_success"] == \
        ana.DEFAULT_MIN_SCRAPE_SUCCESS


@pytest.mark.parametrize("role", ["vpsnet_rollout", "vpsnet_upgrade"])
def test_argument_specs_state_the_role_defaults(role: str) -> None:
    spec = yaml.safe_load((REPO / "roles" / role / "meta/argument_specs.yml").read_text())
    options: dict[str, Any] = spec["argument_specs"]["main"]["options"]
    defaults = role_defaults(role)
    for name, option in options.items():
        if "default" in option:
            assert name in defaults and option["default"] == defaults[name], name


def test_the_batch_plays_serial_is_the_role_default() -> None:
    plays = yaml.safe_load((REPO / "playbooks/rollout_region.yml").read_text())
    batch_play = plays[1]
    assert batch_play["serial"] == "{{ vpsnet_rollout_batches }}"
    [vars_file] = batch_play["vars_files"]
    loaded = yaml.safe_load((REPO / "playbooks" / vars_file).read_text())
    assert loaded == {"vpsnet_rollout_batches": role_defaults("vpsnet_rollout")[
        "vpsnet_rollout_batches"]}
    assert (REPO / "playbooks" / vars_file).resolve().parent == \
        REPO / "roles/vpsnet_rollout/defaults/main"
