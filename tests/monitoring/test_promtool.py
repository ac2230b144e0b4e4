"""promtool check/test rules for monitoring/prometheus (Debian's prometheus package)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

TOP = Path(__file__).resolve().parents[2]
PROM = TOP / "monitoring" / "prometheus"
RULES = PROM / "vpsnet.rules.yml"
TESTS = sorted((PROM / "tests").glob("*.yml"))

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None,
                                reason="promtool not installed (apt-get install prometheus)")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=120)


def alerts() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_check_rules() -> None:
    r = promtool("check", "rules", str(RULES))
    assert r.returncode == 0, r.stdout + r.stderr


def test_unit_tests_pass() -> None:
    assert TESTS
    r = promtool("test", "rules", *map(str, TESTS))
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_alert_documented_and_tested_both_ways() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for t in TESTS:
        for case in yaml.safe_load(t.read_text())["tests"]:
            for a in case.get("alert_rule_test", []):
                (fired if a.get("exp_alerts") else quiet).add(a["alertname"])
    names = {a["alert"] for a in alerts()}
    assert names - fired == set(), "alerts without a test where they fire"
    assert names - quiet == set(), "alerts without a test where they stay quiet"
    for a in alerts():
        assert {"summary", "description", "runbook"} <= set(a["annotations"]), a["alert"]
        assert a["labels"]["severity"] in {"critical", "warning", "info"}


def test_a_broken_threshold_fails_the_unit_tests(tmp_path: Path) -> None:
    """The unit tests have teeth: a rule that fires on healthy series makes them fail."""
    broken = tmp_path / "vpsnet.rules.yml"
    broken.write_text(RULES.read_text().replace("vpsnet_link_up == 0", "vpsnet_link_up >= 0"))
    (tmp_path / "tests").mkdir()
    for t in TESTS:
        (tmp_path / "tests" / t.name).write_text(t.read_text())
    r = promtool("test", "rules", *(str(tmp_path / "tests" / t.name) for t in TESTS))
    assert r.returncode != 0 and "VpsnetLinkDown" in r.stdout + r.stderr


@pytest.mark.parametrize("old, new", [
    # fires on counters that do not move
    ("(increase(vpsnet_device_allowance_exceeded_total[5m])) > 0",
     "(increase(vpsnet_device_allowance_exceeded_total[5m])) >= 0"),
    # one counter left out of the aggregation: the per-counter alerts merge
    ("sum by (instance, device, driver, counter)\n          (increase(vpsnet_device_allowance",
     "sum by (instance, device, driver)\n          (increase(vpsnet_device_allowance"),
])
def test_allowance_alert_tests_have_teeth(tmp_path: Path, old: str, new: str) -> None:
    """A VpsnetAllowanceExceeded that fires on flat counters, or that loses the
    counter label, fails tests/vpsnet_allowance_test.yml."""
    text = RULES.read_text()
    assert text.count(old) == 1, old
    (tmp_path / "vpsnet.rules.yml").write_text(text.replace(old, new))
    (tmp_path / "tests").mkdir()
    t = PROM / "tests" / "vpsnet_allowance_test.yml"
    (tmp_path / "tests" / t.name).write_text(t.read_text())
    r = promtool("test", "rules", str(tmp_path / "tests" / t.name))
    assert r.returncode != 0 and "VpsnetAllowanceExceeded" in r.stdout + r.stderr


def test_dashboard_and_rule_exprs_parse(tmp_path: Path) -> None:
    """promtool parses each expression (as a recording rule); the lab test asks a server too."""
    from .vpsnet_promql import DASHBOARD, dashboard_exprs

    exprs = dashboard_exprs()
    assert len(exprs) >= 15
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"vpsnet:dashboard_expr_{i}", "expr": e} for i, (_, e) in enumerate(exprs)]}]}
    f = tmp_path / "dashboard.rules.yml"
    f.write_text(yaml.safe_dump(rules))
    r = promtool("check", "rules", str(f))
    assert r.returncode == 0, r.stdout + r.stderr
    titles = {p["title"] for p in json.loads(DASHBOARD.read_text())["panels"]}
    for want in ("Health state timeline", "Per-queue drop rate", "Link flaps",
                 "Softnet drops (backlog full)", "Softnet time squeezes",
                 "Module versions across the fleet", "Exporters up",
                 "Allowance exceeded (ENA)", "gVNIC RX drops per queue",
                 "ENA RX drops per queue"):
        assert want in titles
