"""Each default of the rollout roles written in one place: the role's defaults
(vpsnet_rollout's defaults/main/ directory, whose batches.yml the plan resolves
into deploy.yml's `serial`), with meta/argument_specs.yml stating the same values
and the canary analysis module's own defaults equal to the role's."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from ansible_collections.vpsnet.fleet.plugins.module_utils import vpsnet_rollout_canary as ana
from testlib.vpsnet_facts_helpers import REPO
from testlib.vpsnet_inputs_helpers import role_defaults


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


def test_the_rollout_plays_serial_is_the_plan() -> None:
    """The rollout play's serial is the plan's steps, which the plan made from the role's
    vpsnet_rollout_batches; no playbook loads or re-types the batches."""
    plays = yaml.safe_load((REPO / "playbooks/deploy.yml").read_text())
    [rollout] = [p for p in plays if p.get("hosts") == "vpsnet_rollout_order"]
    assert rollout["serial"] == (
        "{{ hostvars[groups['vpsnet_rollout_order'][0]]['__vpsnet_rollout_plan']['steps']"
        " | default([1]) }}")
    assert rollout["order"] == "inventory" and rollout["max_fail_percentage"] == 0
    for book in ["deploy.yml", "rollback.yml", "playbooks/deploy.yml", "playbooks/rollback.yml"]:
        text = (REPO / book).read_text()
        assert "vpsnet_rollout_batches:" not in text and "vars_files" not in text, book
    loaded = yaml.safe_load((REPO / "roles/vpsnet_rollout/defaults/main/batches.yml").read_text())
    assert loaded == {"vpsnet_rollout_batches": role_defaults("vpsnet_rollout")[
        "vpsnet_rollout_batches"]}
