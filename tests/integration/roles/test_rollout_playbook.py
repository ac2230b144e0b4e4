"""deploy.yml / rollback.yml structure with a stub vpsnet_upgrade role on local
hosts: region order, one canary per region, batches, a failure stopping every
later batch and region, and bad input refused before any host is touched.
Each step's soak, check and analysis (the real vpsnet_rollout tasks/step.yml and
its analysis module against a fake Prometheus on 127.0.0.1): a failed check, a
failed or unanswered analysis, or a host lost (its ssh refused) fails and rolls
back the whole step and stops the rollout. Also the rollout filters themselves."""

from __future__ import annotations

import json
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from ansible_collections.vpsnet.fleet.plugins.filter import vpsnet_rollout as rollout
from testlib.vpsnet_facts_helpers import Response, http_server
from testlib.vpsnet_rollout_helpers import LOCAL_VARS, logged, run_playbook

INVENTORY = {
    "all": {
        "vars": {**LOCAL_VARS, "vpsnet_rollout_regions": ["r2", "r1"]},
        "hosts": {
            "a1": {"vpsnet_region": "r1"}, "a2": {"vpsnet_region": "r1"},
            "b1": {"vpsnet_region": "r2"}, "b2": {"vpsnet_region": "r2"},
            "b3": {"vpsnet_region": "r2"}, "b4": {"vpsnet_region": "r2"},
            "b5": {"vpsnet_region": "r2"},
        },
    }
}


def playbook(tmp_path: Path, book: str, *args: str,
             inventory: dict[str, Any] | None = None) -> tuple[subprocess.CompletedProcess[str],
                                                              list[list[str]]]:
    return run_playbook(tmp_path, book, inventory or INVENTORY, *args)


def test_regions_in_declared_order_canary_first_then_batches(tmp_path: Path) -> None:
    proc, steps = playbook(tmp_path, "deploy.yml", "-e", "vpsnet_version=1.1.0")
    assert proc.returncode == 0, proc.stdout[-3000:]
    # r2 first (declared order), canary b1 alone, then 25% of 4 = 1, then the rest; then r1
    assert [s[0] for s in steps][:2] == ["b1", "b2"]
    assert sorted(s[0] for s in steps[2:5]) == ["b3", "b4", "b5"]
    assert [s[0] for s in steps[5:]] == ["a1", "a2"]
    batches = [s[3] for s in steps]
    assert batches[0] == "b1" and batches[1] == "b2" and batches[5] == "a1"
    assert set(batches[2:5]) == {"b3,b4,b5"}
    assert all(s[1:3] == ["1.1.0", "upgrade"] for s in steps)


def test_batches_can_be_overridden(tmp_path: Path) -> None:
    proc, steps = playbook(tmp_path, "deploy.yml", "-e", "vpsnet_version=1.1.0",
                           "-e", '{"vpsnet_rollout_batches": [2, "100%"]}')
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert [s[3] for s in steps[:5]] == ["b1", "b2,b3", "b2,b3", "b4,b5", "b4,b5"]


@pytest.mark.parametrize(("fail", "done"), [
    ("b1", ["b1"]),  # canary of the first region: nothing else is touched
    ("a1", ["b1", "b2", "b3", "b4", "b5", "a1"]),  # second region's canary
    ("b2", ["b1", "b2"]),  # first batch after the canary: later batches untouched
])
def test_a_failed_host_stops_every_later_batch_and_region(tmp_path: Path, fail: str,
                                                          done: list[str]) -> None:
    proc, steps = playbook(tmp_path, "deploy.yml", "-e", "vpsnet_version=1.1.0",
                           "-e", json.dumps({"vpsnet_test_fail": [fail]}))
    assert proc.returncode != 0
    assert sorted(s[0] for s in steps) == sorted(done), proc.stdout[-3000:]
    assert "Summarise the rollout" not in proc.stdout
    # the failed host's whole rescue ran (rollback, then the explicit failure)
    rollback = tmp_path / "steps.log.rollback"
    assert rollback.exists() and rollback.read_text().split() == [fail], proc.stdout[-3000:]
    assert f"stub: {fail} rolled back" in proc.stdout


def test_rollback_pins_a_region(tmp_path: Path) -> None:
    proc, steps = playbook(tmp_path, "rollback.yml", "-e", "vpsnet_version=1.0.0",
                           "-l", "a1,a2")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert [s[:3] for s in steps] == [["a1", "1.0.0", "rollback"], ["a2", "1.0.0", "rollback"]]


@pytest.mark.parametrize(("args", "needle"), [
    (["-e", "vpsnet_version=1.x"], "vpsnet_version='1.x' is not a version string (like 1.0.0)"),
    ([], "vpsnet_version is not set"),
    (["-e", "vpsnet_version=1.1.0", "-e", '{"vpsnet_rollout_batches": ["0%"]}'],
     "'0%' is neither a host count"),
    (["-e", "vpsnet_version=1.1.0", "-e", '{"vpsnet_rollout_regions": ["r2"]}'],
     "host a1 is in region 'r1', which vpsnet_rollout_regions (r2) does not list"),
])
def test_bad_input_touches_no_host(tmp_path: Path, args: list[str], needle: str) -> None:
    proc, steps = playbook(tmp_path, "deploy.yml", *args)
    assert proc.returncode != 0
    assert needle in " ".join(proc.stdout.split()), proc.stdout[-3000:]
    assert steps == []


def test_plan_filter() -> None:
    hv = {"x": {"vpsnet_region": "b"}, "y": {"vpsnet_region": "a"}, "z": {"vpsnet_region": "b"}}
    assert rollout.vpsnet_rollout_plan(["x", "y", "z"], hv, ["b", "a"], ["100%"]) == {
        "hosts": ["x", "z", "y"], "steps": [1, 1, 1], "canaries": ["x", "y"],
        "regions": {"x": "b", "z": "b", "y": "a"}}
    hv = {"x": {"vpsnet_region": "c"}, "q": {}}
    errors = rollout.plan_errors(["x", "q"], hv, ["a", "a"])
    assert errors == [
        "vpsnet_rollout_regions names a more than once",
        "host x is in region 'c', which vpsnet_rollout_regions (a, a) does not list",
        "host q has no vpsnet_region",
    ]


# ------------------------------------------------------------ each step's soak and analysis


def test_every_step_is_checked_again_then_confirmed(tmp_path: Path) -> None:
    proc, _ = playbook(tmp_path, "deploy.yml", "-e", "vpsnet_version=1.1.0")
    assert proc.returncode == 0, proc.stdout[-3000:]
    # confirmed only after the step's check, in step order (b3-b5 are one step)
    confirmed = logged(tmp_path, "confirm")
    assert confirmed[:2] == ["b1", "b2"] and sorted(confirmed[2:5]) == ["b3", "b4", "b5"]
    assert confirmed[5:] == ["a1", "a2"]
    records = [json.loads(ln.split(" ", 2)[2]) for ln in logged(tmp_path, "record")]
    assert len(records) == 7
    assert all(r["local_gate"] == "pass" and r["verdict"].startswith("skipped: no Prometheus")
               and r["lost_hosts"] == [] for r in records), records
    assert "WARNING: vpsnet_rollout_prometheus_url is" in proc.stdout, proc.stdout[-3000:]


def test_a_failed_check_after_the_soak_rolls_back_its_whole_step(tmp_path: Path) -> None:
    proc, steps = playbook(tmp_path, "deploy.yml", "-e", "vpsnet_version=1.1.0",
                           "-e", '{"vpsnet_test_recheck_fail": ["b4"]}')
    assert proc.returncode != 0
    assert sorted(logged(tmp_path, "rollback")) == ["b3", "b4", "b5"], proc.stdout[-3000:]
    assert logged(tmp_path, "confirm") == ["b1", "b2"]
    assert not [s for s in steps if s[0].startswith("a")]  # the next region is untouched
    assert "b4 failed its check after the soak: stub: unhealthy after the soak" in \
        " ".join(proc.stdout.split())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_lost_host_fails_its_step_and_stops_the_rollout(tmp_path: Path) -> None:
    inventory = json.loads(json.dumps(INVENTORY))
    # b4's ssh is refused from its step's first connection on: the stand-in for the reload
    inventory["all"]["hosts"]["b4"].update({
        "ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": free_port(),
        "ansible_timeout": 5})
    proc, steps = playbook(tmp_path, "deploy.yml", "-e", "vpsnet_version=1.1.0",
                           inventory=inventory)
    assert proc.returncode != 0
    assert "UNREACHABLE" in proc.stdout
    assert logged(tmp_path, "lost") == ["b4"], proc.stdout[-3000:]
    # the rest of its step is rolled back; b4 reverts by itself (the real role's guard)
    assert sorted(logged(tmp_path, "rollback")) == ["b3", "b5"], proc.stdout[-3000:]
    assert logged(tmp_path, "confirm") == ["b1", "b2"]
    assert not [s for s in steps if s[0].startswith("a")]
    assert "lost b4 (unreachable: it reverts by itself)" in " ".join(proc.stdout.split())


class FakeProm:
    """Answers every instant query of the analysis for the hosts it selects: all
    healthy (scrapes up, no drops), plus ALERTS firing for the hosts in `alerting`."""

    def __init__(self) -> None:
        self.alerting: set[str] = set()
        self.asked: list[str] = []

    def answer(self, promql: str, at: float) -> dict[str, Any]:
        self.asked.append(promql)
        m = re.search(r'instance=~"((?:[^"\\]|\\.)*)"', promql)
        alternation = m.group(1).replace("\\\\", "\\").split("|") if m else []
        hosts = [re.sub(r"\\(.)", r"\1", h) for h in alternation]
        if promql.startswith("max_over_time(ALERTS{"):
            samples = [({"alertname": "VpsnetTxStalled", "alertstate": "firing", "instance": h}, 1)
                       for h in hosts if h in self.alerting]
        else:
            value = 1.0 if re.search(r"\((up|vpsnet_up)\{", promql) else 0.0
            samples = [({"instance": h}, value) for h in hosts]
        return {"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": labels, "value": [at, str(v)]} for labels, v in samples]}}


@pytest.fixture
def prom() -> Iterator[tuple[FakeProm, str]]:
    fake = FakeProm()

    def respond(_method: str, path: str) -> Response:
        qs = parse_qs(urlparse(path).query)
        body = json.dumps(fake.answer(qs["query"][0], float(qs["time"][0]))).encode()
        return 200, {"Content-Type": "application/json"}, body

    with http_server(respond) as port:
        yield fake, f"http://127.0.0.1:{port}"


def analysed(url: str) -> list[str]:
    return ["-e", "vpsnet_version=1.1.0", "-e", json.dumps({"vpsnet_rollout_prometheus_url": url})]


def test_a_passing_analysis_confirms_every_step(tmp_path: Path,
                                                prom: tuple[FakeProm, str]) -> None:
    fake, url = prom
    proc, _ = playbook(tmp_path, "deploy.yml", *analysed(url))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert len(logged(tmp_path, "confirm")) == 7
    records = [json.loads(ln.split(" ", 2)[2]) for ln in logged(tmp_path, "record")]
    assert [r["verdict"] for r in records] == ["pass"] * 7, records
    # the canary of r2 was compared with the rest of its region, not yet upgraded
    assert any('instance=~"b2:19462|b3:19462|b4:19462|b5:19462"' in q for q in fake.asked)
    assert "WARNING" not in proc.stdout


def test_an_alert_in_the_analysis_rolls_back_the_canary(tmp_path: Path,
                                                        prom: tuple[FakeProm, str]) -> None:
    fake, url = prom
    fake.alerting = {"b1:19462"}
    proc, steps = playbook(tmp_path, "deploy.yml", *analysed(url))
    assert proc.returncode != 0
    assert logged(tmp_path, "rollback") == ["b1"], proc.stdout[-3000:]
    assert [s[0] for s in steps] == ["b1"] and logged(tmp_path, "confirm") == []
    assert "VpsnetTxStalled" in proc.stdout


def test_a_prometheus_that_does_not_answer_fails_the_step(tmp_path: Path) -> None:
    proc, steps = playbook(tmp_path, "deploy.yml", *analysed(f"http://127.0.0.1:{free_port()}"))
    assert proc.returncode != 0
    assert logged(tmp_path, "rollback") == ["b1"], proc.stdout[-3000:]
    assert [s[0] for s in steps] == ["b1"]


@pytest.mark.parametrize(("extra", "needle"), [
    ({"vpsnet_rollout_prometheus_url": "prometheus:9090"},
     "vpsnet_rollout_prometheus_url='prometheus:9090' is not a URL (http/https://...)"),
    ({"vpsnet_rollout_prometheus_url": "http://p:9090\nx"},
     "vpsnet_rollout_prometheus_url='http://p:9090\\nx' contains a control character"),
    ({"vpsnet_rollout_soak_seconds": -1}, "vpsnet_rollout_soak_seconds=-1 is outside 0..999999"),
])
def test_bad_step_settings_touch_no_host(tmp_path: Path, extra: dict[str, Any],
                                         needle: str) -> None:
    proc, steps = playbook(tmp_path, "deploy.yml", "-e", "vpsnet_version=1.1.0",
                           "-e", json.dumps(extra))
    assert proc.returncode != 0
    assert needle in " ".join(proc.stdout.split()), proc.stdout[-3000:]
    assert steps == []


def test_no_prometheus_setting_at_all_is_refused(tmp_path: Path) -> None:
    inventory = json.loads(json.dumps(INVENTORY))
    del inventory["all"]["vars"]["vpsnet_rollout_prometheus_url"]
    proc, steps = playbook(tmp_path, "deploy.yml", "-e", "vpsnet_version=1.1.0",
                           inventory=inventory)
    assert proc.returncode != 0
    assert "vpsnet_rollout_prometheus_url" in proc.stdout, proc.stdout[-3000:]
    assert steps == []


def test_an_unapproved_region_is_not_started(tmp_path: Path) -> None:
    # no terminal: nobody can type yes, so r1 (the second region) is not started
    proc, steps = playbook(tmp_path, "deploy.yml", "-e", "vpsnet_version=1.1.0",
                           "-e", '{"vpsnet_rollout_approve_regions": true}')
    assert proc.returncode != 0
    assert sorted(s[0] for s in steps) == ["b1", "b2", "b3", "b4", "b5"], proc.stdout[-3000:]
    assert "region r1 not approved" in " ".join(proc.stdout.split())
