"""What a rollout step's analysis is asked about and what fails the step
(the collection's plugins/filter/vpsnet_rollout.py: step_analysis_args and
step_problems, used by tasks/step.yml). The step run for real:
test_rollout_playbook.py."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.vpsnet.fleet.plugins.filter import vpsnet_rollout as rollout

NOW = 10_000.0
PASS = {"verdict": "pass", "local_gate": "pass", "local_gate_detail": "", "reasons": []}


def region() -> dict[str, dict[str, Any]]:
    """r1's hosts: c (canary, upgraded by an earlier step), s1 and s2 in this step
    (reloaded at 9800 and 9900), b1 (its own analysis instance) and b2 not touched."""
    return {
        "c": {"__vpsnet_upgrade_started": "1", "__vpsnet_upgrade_reloaded_ts": "9000.0"},
        "s1": {"__vpsnet_upgrade_started": "1", "__vpsnet_upgrade_reloaded_ts": "9800.5"},
        "s2": {"__vpsnet_upgrade_started": "1", "__vpsnet_upgrade_reloaded_ts": 9900.25},
        "b1": {"vpsnet_rollout_analysis_instance": "10.0.0.7:9100"},
        "b2": {},
    }


REGION = ["c", "s1", "s2", "b1", "b2"]


def args(batch: list[str], hostvars: dict[str, dict[str, Any]], step: list[str],
         window: Any = 300, now: Any = NOW, **kw: Any) -> dict[str, Any]:
    return rollout.step_analysis_args(batch, hostvars, step, REGION, window, now, **kw)


def test_baseline_is_the_region_hosts_neither_in_the_step_nor_touched() -> None:
    res = args(["s1", "s2"], region(), ["s1", "s2"])
    assert res["hosts"] == {"s1": "s1:19462", "s2": "s2:19462"}
    assert res["baseline_hosts"] == {"b1": "10.0.0.7:9100", "b2": "b2:19462"}  # not c


def test_a_step_host_not_started_is_no_baseline() -> None:
    """A step host that failed before __vpsnet_upgrade_started (or was lost) is
    in the step, so never the baseline, even without the fact."""
    hv = region()
    hv["s2"] = {}
    res = args(["s1"], hv, ["s1", "s2"])
    assert list(res["hosts"]) == ["s1"]
    assert list(res["baseline_hosts"]) == ["b1", "b2"]


def test_labels_use_the_instance_or_the_port() -> None:
    hv = region()
    hv["s1"]["vpsnet_rollout_analysis_instance"] = "s1.example:9999"
    hv["s2"]["vpsnet_rollout_analysis_instance"] = ""  # unset: the default
    res = args(["s1", "s2"], hv, ["s1", "s2"], port="19500")  # a string, as Jinja gives it
    assert res["hosts"] == {"s1": "s1.example:9999", "s2": "s2:19500"}
    assert res["baseline_hosts"] == {"b1": "10.0.0.7:9100", "b2": "b2:19500"}


def test_reloaded_at_only_for_hosts_that_reloaded() -> None:
    hv = region()
    del hv["s2"]["__vpsnet_upgrade_reloaded_ts"]  # failed before its reload
    res = args(["s1", "s2"], hv, ["s1", "s2"])
    assert res["reloaded_at"] == {"s1": 9800.5}
    assert isinstance(res["reloaded_at"]["s1"], float)


@pytest.mark.parametrize(
    ("window", "now", "expected"),
    [
        (300, NOW, 99),  # 10000 - 9900.25, the step's last reload (s2), not s1's
        ("300", str(NOW), 99),  # as Jinja passes them
        (60, NOW, 60),  # the reload was longer ago than the window
        (99, NOW, 99),
    ],
)
def test_window_starts_after_the_last_reload(window: Any, now: Any, expected: int) -> None:
    res = args(["s1", "s2"], region(), ["s1", "s2"], window=window, now=now)
    assert res["window"] == expected
    assert isinstance(res["window"], int)


def test_the_full_window_when_no_host_reloaded() -> None:
    hv = region()
    for h in ("s1", "s2"):
        del hv[h]["__vpsnet_upgrade_reloaded_ts"]
    res = args(["s1", "s2"], hv, ["s1", "s2"], window="300")
    assert (res["reloaded_at"], res["window"]) == ({}, 300)


# ------------------------------------------------------------------------------ step_problems


def verdicts(**per_host: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {h: {"__vpsnet_upgrade_analysis": v} for h, v in per_host.items()}


def test_no_problems_when_all_pass() -> None:
    hv = verdicts(s1=PASS, s2=PASS)
    assert rollout.step_problems(["s1", "s2"], hv, ["s1", "s2"], "http://prom:9090") == []
    assert rollout.step_problems(["s1", "s2"], hv, ["s1", "s2"], "") == []


def test_a_lost_host_is_named() -> None:
    hv = verdicts(s1=PASS, s2=PASS, s3=PASS)
    assert rollout.step_problems(["s1"], hv, ["s1", "s2", "s3"], "") == [
        "lost s2, s3 (unreachable: it reverts by itself)"]


def test_a_host_that_failed_its_own_upgrade_is_not_called_lost() -> None:
    hv = verdicts(s1=PASS, s2=PASS, s3=PASS)
    hv["s2"]["__vpsnet_upgrade_failure"] = "the health gate: carrier down\n"
    assert rollout.step_problems(["s1"], hv, ["s1", "s2", "s3"], "") == [
        "s2 failed its upgrade and was rolled back: the health gate: carrier down",
        "lost s3 (unreachable: it reverts by itself)"]


def test_a_failed_local_gate_gives_its_detail() -> None:
    failed = {**PASS, "local_gate": "fail", "local_gate_detail": "eth0: tx_stalled; eth1: down"}
    hv = verdicts(s1=PASS, s2=failed)
    assert rollout.step_problems(["s1", "s2"], hv, ["s1", "s2"], "") == [
        "s2 failed its check after the soak: eth0: tx_stalled; eth1: down"]


@pytest.mark.parametrize("analysis", [None, {}, {"verdict": "pass"}])
def test_a_host_without_a_verdict_failed(analysis: dict[str, Any] | None) -> None:
    hv: dict[str, dict[str, Any]] = {"s1": {"__vpsnet_upgrade_analysis": PASS}, "s2": {}}
    if analysis is not None:
        hv["s2"]["__vpsnet_upgrade_analysis"] = analysis
    assert rollout.step_problems(["s1", "s2"], hv, ["s1", "s2"], "") == [
        "s2 failed its check after the soak: no verdict"]


def test_a_failed_analysis_gives_its_reasons() -> None:
    failed = {**PASS, "verdict": "fail",
              "reasons": ["alert VpsnetTxStalled firing for s1", "tx_drops 3.0x the baseline"]}
    hv = verdicts(s1=failed, s2=failed)
    assert rollout.step_problems(["s1", "s2"], hv, ["s1", "s2"], "http://prom:9090") == [
        "analysis: alert VpsnetTxStalled firing for s1; tx_drops 3.0x the baseline"]
    # no Prometheus: only the local gate counts
    assert rollout.step_problems(["s1", "s2"], hv, ["s1", "s2"], "") == []


def test_an_unanswered_analysis_fails_the_step() -> None:
    unanswered = {**PASS, "verdict": "fail", "reasons": ["prometheus: connection refused"]}
    hv = verdicts(s1=unanswered)
    assert rollout.step_problems(["s1"], hv, ["s1"], "http://prom:9090") == [
        "analysis: prometheus: connection refused"]
    hv = verdicts(s1={**PASS, "verdict": "", "reasons": []})
    assert rollout.step_problems(["s1"], hv, ["s1"], "http://prom:9090") == [
        "analysis: no verdict"]


def test_every_problem_at_once() -> None:
    hv = verdicts(s1={"verdict": "fail", "reasons": ["r"], "local_gate": "fail",
                      "local_gate_detail": "d"}, s2=PASS)
    assert rollout.step_problems(["s1"], hv, ["s1", "s2"], "http://prom:9090") == [
        "lost s2 (unreachable: it reverts by itself)",
        "s1 failed its check after the soak: d",
        "analysis: r",
    ]


def test_the_filters_are_registered() -> None:
    filters = rollout.FilterModule().filters()
    assert filters["vpsnet_rollout_step_analysis_args"] is rollout.step_analysis_args
    assert filters["vpsnet_rollout_step_problems"] is rollout.step_problems
