"""The rollout's canary analysis (plugins/module_utils/vpsnet_rollout_canary.py and the
module vpsnet.fleet.vpsnet_rollout_analysis): the PromQL it builds, checked against the
module's metric families, the alert rules and promtool; verdicts from Prometheus answers in the
API's JSON served by a local fake Prometheus on 127.0.0.1 (thresholds, baselines, alerts,
missing data); and failing closed when Prometheus is down, silent, erroring or malformed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import yaml
from ansible_collections.vpsnet.fleet.plugins.module_utils import vpsnet_rollout_canary as ana
from testlib.vpsnet_facts_helpers import REPO, Response, ansible_env, http_server

BIN = Path(sys.executable).parent

NOW = 1_700_000_000.0
RELOAD = NOW - 600  # both upgraded hosts reloaded 10 min ago; window 300 s
UPGRADED = {"web1": "10.0.0.1:19462", "web2": "web2.example:19462"}
PEERS = {"web3": "10.0.0.3:19462", "web4": "10.0.0.4:19462", "web5": "10.0.0.5:19462"}
ALL = {**UPGRADED, **PEERS}
FAMILY = {m.name: re.search(r"\((\w+)\{sel\}", m.promql).group(1)  # type: ignore[union-attr]
          for m in ana.METRICS}

# ------------------------------------------------------------------ the fake Prometheus

Values = dict[str, dict[str, float]]  # metric name -> host -> value


def healthy() -> Values:
    """What every host shows on a quiet fleet."""
    per = {"queue_drops": 0.2, "softnet_dropped": 0.0, "time_squeeze": 0.5, "tx_timeouts": 0.0,
           "health_transitions": 0.0, "scrape_success": 1.0, "module_up": 1.0}
    return {m: dict.fromkeys(ALL, v) for m, v in per.items()}


def vector(samples: list[tuple[dict[str, str], float | str]], at: float) -> dict[str, Any]:
    """An instant query's answer as Prometheus writes it."""
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": labels, "value": [at, str(v)]} for labels, v in samples]}}


def hosts_in(promql: str, label: str = "instance") -> list[str]:
    """The label values a query selects (its RE2 alternation, unescaped)."""
    m = re.search(label + r'=~"((?:[^"\\]|\\.)*)"', promql)
    assert m, promql
    literal = m.group(1).replace("\\\\", "\\")
    return [re.sub(r"\\(.)", r"\1", alt) for alt in literal.split("|")]


class FakeProm:
    """Answers /api/v1/query from `after` (at the analysis time) and `before`
    (at any other time: a host's reload), per metric and host; `alerts` are
    ALERTS series. `answer` overrides everything: (query, time) -> (status, body)."""

    def __init__(self) -> None:
        self.after: Values = healthy()
        self.before: Values = healthy()
        self.alerts: list[dict[str, str]] = []
        self.answer: Callable[[str, float], tuple[int, Any]] | None = None
        self.asked: list[tuple[str, float]] = []
        self.url = ""

    def respond(self, promql: str, at: float) -> tuple[int, Any]:
        self.asked.append((promql, at))
        if self.answer:
            return self.answer(promql, at)
        names = {v: h for h, v in ALL.items()}
        wanted = hosts_in(promql)
        if promql.startswith("max_over_time(ALERTS{"):
            return 200, vector([(a, 1) for a in self.alerts if a["instance"] in wanted], at)
        metric = next(m for m, fam in FAMILY.items() if f"({fam}{{" in promql)
        values = self.after if at == NOW else self.before
        return 200, vector([({"instance": inst}, values[metric][names[inst]])
                            for inst in wanted if names[inst] in values[metric]], at)


@pytest.fixture
def prom() -> Iterator[FakeProm]:
    fake = FakeProm()

    def respond(_method: str, path: str) -> Response:
        url = urlparse(path)
        qs = parse_qs(url.query)
        if url.path != "/api/v1/query":
            status, body = 404, "404 page not found"
        else:
            status, body = fake.respond(qs["query"][0], float(qs["time"][0]))
        kind = "text/plain" if isinstance(body, str) else "application/json"
        data = (body if isinstance(body, str) else json.dumps(body)).encode()
        return status, {"Content-Type": kind}, data

    with http_server(respond) as port:
        fake.url = f"http://127.0.0.1:{port}"
        yield fake


def run(url: str, **kw: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"baseline_hosts": PEERS, "reloaded_at": dict.fromkeys(UPGRADED, RELOAD),
                            "at": NOW, "window": 300, "timeout": 5}
    args.update(kw)
    hosts = args.pop("hosts", UPGRADED)
    return dict(ana.analyse(url, hosts, **args))


# ------------------------------------------------------------------ PromQL


def test_promql_for_the_step_hosts() -> None:
    values = list(UPGRADED.values())
    assert ana.alerts_query("instance", values, 300) == (
        'max_over_time(ALERTS{instance=~"10\\\\.0\\\\.0\\\\.1:19462|web2\\\\.example:19462",'
        'alertname=~"VpsnetLinkDown|VpsnetRxSilent|VpsnetTxStalled|VpsnetLinkFlapping|'
        'VpsnetQueueDrops|VpsnetSoftnetTimeSqueeze|VpsnetExporterDown|VpsnetModuleMissing|'
        'VpsnetExporterScrapeErrors",alertstate=~"firing|pending"}[300s])')
    queries = {m.name: ana.metric_query(m, "instance", values, 300) for m in ana.METRICS}
    sel = '{job="vpsnet",instance=~"10\\\\.0\\\\.0\\\\.1:19462|web2\\\\.example:19462"}'
    assert queries == {
        "queue_drops": f"max by (instance) (rate(vpsnet_queue_drops_total{sel}[300s]))",
        "softnet_dropped": f"sum by (instance) (rate(vpsnet_softnet_dropped_total{sel}[300s]))",
        "time_squeeze":
            f"sum by (instance) (rate(vpsnet_softnet_time_squeeze_total{sel}[300s]))",
        "tx_timeouts": f"sum by (instance) (increase(vpsnet_txq_timeouts_total{sel}[300s]))",
        "health_transitions":
            f"sum by (instance) (increase(vpsnet_health_transitions_total{sel}[300s]))",
        "scrape_success": f"min by (instance) (avg_over_time(up{sel}[300s]))",
        "module_up": f"min by (instance) (avg_over_time(vpsnet_up{sel}[300s]))",
    }
    # another label (a relabelled fleet), any job
    q = ana.metric_query(ana.METRICS[0], "host", ["a\"b"], 60, job="")
    assert q == 'max by (host) (rate(vpsnet_queue_drops_total{host=~"a\\"b"}[60s]))'


def test_the_host_regex_selects_exactly_the_hosts() -> None:
    values = ["10.0.0.1:19462", "web(1)+.x:1"]
    pattern = ana.host_regex(values)
    for v in values:
        assert re.fullmatch(pattern, v)
    for other in ["10.0.0.11:19462", "10a0b0c1:19462", "web1.x:1", ""]:
        assert not re.fullmatch(pattern, other)
    assert hosts_in(ana.selector("instance", values)) == sorted(values)
    with pytest.raises(ValueError):
        ana.host_regex([])


def test_metrics_are_the_modules_and_exporters() -> None:
    families = set(re.findall(r"VPSNET_FAMILY\((\w+),",
                              (REPO / "driver-src/vpsnet_families.h").read_text()))
    exporter = (REPO / "tools/vpsnet_tools/exporter_metrics.py").read_text()
    for name, fam in FAMILY.items():
        if fam == "up":
            continue  # Prometheus's own
        if fam == "vpsnet_up":
            assert '"vpsnet_up"' in exporter, name
        else:
            assert fam.removeprefix("vpsnet_") in families, (name, fam)


def test_alerts_are_the_rules_but_version_skew() -> None:
    rules = yaml.safe_load((REPO / "monitoring/prometheus/vpsnet.rules.yml").read_text())
    names = [r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r]
    # VpsnetAllowanceExceeded: the workload against its instance type; VpsnetTune*:
    # the host's tuning against its plan; neither is the module
    assert list(ana.ALERTS) == [n for n in names
                                if n not in ("VpsnetVersionSkew", "VpsnetAllowanceExceeded",
                                             "VpsnetTuneDrift", "VpsnetTuneVerifyFailing")]
    # every one of them carries the host label the analysis selects on
    for g in rules["groups"]:
        for r in g["rules"]:
            if r["alert"] in ana.ALERTS and " by (" in r["expr"]:
                assert re.search(r"by \([^)]*\binstance\b", r["expr"]), r["alert"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="no promtool")
def test_every_query_parses(tmp_path: Path) -> None:
    values = list(UPGRADED.values())
    exprs = [ana.alerts_query("instance", values, 300)] + \
        [ana.metric_query(m, "instance", values, 300) for m in ana.METRICS]
    rules = tmp_path / "q.yml"
    rules.write_text(yaml.safe_dump({"groups": [{"name": "q", "rules": [
        {"record": f"q:{i}", "expr": e} for i, e in enumerate(exprs)]}]}))
    r = subprocess.run(["promtool", "check", "rules", str(rules)], capture_output=True,
                       text=True, check=False, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


# ------------------------------------------------------------------ verdicts


def test_a_quiet_step_passes_with_its_numbers(prom: FakeProm) -> None:
    res = run(prom.url)
    assert res["verdict"] == "pass", res["reasons"]
    assert res["reasons"] == [] and res["alerts"] == []
    drops = res["hosts"]["web1"]["metrics"]["queue_drops"]
    assert drops == {"after": 0.2, "before": 0.2, "peers_median": 0.2, "unit": drops["unit"],
                     "limit": pytest.approx(0.2 * 1.5 + 1.0), "verdict": "pass"}
    assert res["baseline"]["queue_drops"]["peers"] == dict.fromkeys(PEERS, 0.2)
    # the after and the peers at the analysis time, the own window at the reload
    times = {t for _, t in prom.asked}
    assert times == {NOW, RELOAD}
    assert all(hosts_in(q) == sorted(UPGRADED.values()) for q, t in prom.asked if t == RELOAD)


def test_a_host_dropping_more_than_region_and_itself_fails(prom: FakeProm) -> None:
    prom.after["queue_drops"]["web2"] = 50.0
    res = run(prom.url)
    assert res["verdict"] == "fail"
    assert res["hosts"]["web1"]["verdict"] == "pass"
    assert res["hosts"]["web2"]["verdict"] == "fail"
    assert res["reasons"] == [
        "web2: queue_drops 50 > limit 1.3 (drops/s on the worst queue; baseline: region median "
        "0.2, own before 0.2; ratio 1.5, margin 1)"]


def test_worse_than_the_region_but_not_than_itself_passes(prom: FakeProm) -> None:
    """A host that always drops more (its traffic) is not the release's fault."""
    prom.after["queue_drops"]["web1"] = prom.before["queue_drops"]["web1"] = 8.0
    assert run(prom.url)["verdict"] == "pass"


def test_a_region_wide_surge_passes(prom: FakeProm) -> None:
    for h in ALL:
        prom.after["time_squeeze"][h] = 40.0
    res = run(prom.url)
    assert res["verdict"] == "pass", res["reasons"]


def test_one_tx_timeout_over_a_clean_baseline_fails(prom: FakeProm) -> None:
    prom.after["tx_timeouts"]["web1"] = 1.0
    prom.after["health_transitions"]["web1"] = 2.0
    res = run(prom.url)
    assert res["verdict"] == "fail"
    assert [r.split(" ")[1] for r in res["hosts"]["web1"]["reasons"]] == \
        ["tx_timeouts", "health_transitions"]


def test_thresholds_are_parameters(prom: FakeProm) -> None:
    prom.after["queue_drops"]["web2"] = 50.0
    assert run(prom.url, thresholds={"queue_drops": {"margin": 60}})["verdict"] == "pass"
    prom.after["queue_drops"]["web2"] = 0.5  # 2.5 x the baseline, under the default margin
    assert run(prom.url)["verdict"] == "pass"
    res = run(prom.url, thresholds={"queue_drops": {"ratio": 2, "margin": 0}})
    assert res["verdict"] == "fail" and "limit 0.4" in res["reasons"][0]
    with pytest.raises(ValueError):
        run(prom.url, thresholds={"drops": {"ratio": 1}})
    with pytest.raises(ValueError):
        run(prom.url, thresholds={"queue_drops": {"ratio": -1}})


def test_without_any_baseline_the_margin_is_the_limit(prom: FakeProm) -> None:
    """The last batch of a region has no peers, and no reload times: absolute limits."""
    prom.after["softnet_dropped"]["web1"] = 1.5
    res = run(prom.url, baseline_hosts={}, reloaded_at={})
    assert res["verdict"] == "fail"
    assert res["reasons"] == ["web1: softnet_dropped 1.5 > limit 1 (backlog drops/s; baseline: "
                              "none; ratio 1.5, margin 1)"]


def test_scrape_success_is_absolute(prom: FakeProm) -> None:
    prom.after["scrape_success"]["web1"] = 0.9
    prom.after["module_up"]["web2"] = 0.0
    res = run(prom.url)
    assert res["verdict"] == "fail"
    assert res["reasons"] == [
        "web1: scrape_success 0.900 < 0.95 (fraction of scrapes that succeeded)",
        "web2: module_up 0.000 < 0.95 (fraction of scrapes with the module's metrics)"]
    assert run(prom.url, min_scrape_success=0.0)["verdict"] == "pass"


def test_an_alert_pending_for_a_step_host_fails_it(prom: FakeProm) -> None:
    prom.alerts = [
        {"alertname": "VpsnetRxSilent", "alertstate": "pending", "instance": UPGRADED["web2"],
         "device": "eth1", "driver": "ena", "netns": "0", "state": "rx_silent", "job": "vpsnet"},
        {"alertname": "VpsnetLinkDown", "alertstate": "firing", "instance": PEERS["web3"]},
    ]
    res = run(prom.url)
    assert res["verdict"] == "fail"
    assert res["alerts"] == [{"host": "web2", "alertname": "VpsnetRxSilent",
                              "alertstate": "pending", "device": "eth1"}]
    assert res["reasons"] == ["web2: alert VpsnetRxSilent pending in the window on eth1"]
    assert res["hosts"]["web2"]["verdict"] == "fail"
    assert res["hosts"]["web1"]["verdict"] == "pass"


# ------------------------------------------------------------------ missing data


def test_a_host_prometheus_does_not_scrape_fails(prom: FakeProm) -> None:
    for values in (prom.after, prom.before):
        for metric in values.values():
            metric.pop("web1")
    res = run(prom.url)
    assert res["verdict"] == "fail"
    assert "web1: no samples of scrape_success in the window (Prometheus has no data for it)" \
        in res["reasons"]
    assert res["hosts"]["web2"]["verdict"] == "pass"


def test_a_metric_gone_after_the_reload_fails(prom: FakeProm) -> None:
    del prom.after["tx_timeouts"]["web1"]
    res = run(prom.url)
    assert res["reasons"] == [
        "web1: no samples of tx_timeouts in the window (Prometheus has no data for it)"]


def test_a_metric_the_host_never_had_is_not_compared(prom: FakeProm) -> None:
    """A driver without per-queue statistics: no queue series before or after."""
    del prom.after["queue_drops"]["web1"], prom.before["queue_drops"]["web1"]
    res = run(prom.url)
    assert res["verdict"] == "pass", res["reasons"]
    assert res["hosts"]["web1"]["metrics"]["queue_drops"]["verdict"] == "n/a"
    # without its own window there is nothing to show it never had them: fail
    assert run(prom.url, reloaded_at={})["verdict"] == "fail"


def test_nan_is_no_sample(prom: FakeProm) -> None:
    prom.after["module_up"]["web2"] = float("nan")
    res = run(prom.url)
    assert res["reasons"] == [
        "web2: no samples of module_up in the window (Prometheus has no data for it)"]


def test_a_silent_peer_is_left_out_of_the_median(prom: FakeProm) -> None:
    del prom.after["queue_drops"]["web5"]
    res = run(prom.url)
    assert res["verdict"] == "pass"
    assert res["baseline"]["queue_drops"]["missing"] == ["web5"]


def test_bad_inputs_fail(prom: FakeProm) -> None:
    assert run(prom.url, hosts={})["reasons"] == ["no upgraded hosts to analyse"]
    res = run(prom.url, reloaded_at={"web1": NOW - 100})
    assert res["verdict"] == "fail"
    assert "web1: the window (300 s before 1700000000) starts before its reload" in \
        res["reasons"][0]
    assert run(prom.url, baseline_hosts=ALL)["verdict"] == "fail"
    assert prom.asked == []  # refused before asking


# ------------------------------------------------------------------ Prometheus down


def test_prometheus_refusing_connections_fails(closed_port: int) -> None:
    res = run(f"http://127.0.0.1:{closed_port}")
    assert res["verdict"] == "fail" and res["hosts"] == {}
    assert res["reasons"][0].startswith(f"Prometheus at http://127.0.0.1:{closed_port} did not "
                                        "answer")


def test_prometheus_that_never_answers_fails_in_time(silent_port: int) -> None:
    res = run(f"http://127.0.0.1:{silent_port}", timeout=0.5)
    assert res["verdict"] == "fail" and "did not answer" in res["reasons"][0]


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        (503, "Service Unavailable", "HTTP 503, not a JSON answer"),
        (400, {"status": "error", "errorType": "bad_data", "error": "parse error at char 3"},
         "HTTP 400, status 'error'"),
        (200, {"status": "error", "errorType": "timeout", "error": "query timed out"},
         "status 'error'"),
        (200, {"status": "success", "data": {"resultType": "matrix", "result": []}},
         "no vector in the answer"),
        (200, [], "not a JSON answer"),
    ],
)
def test_an_unusable_answer_fails(prom: FakeProm, status: int, body: Any, said: str) -> None:
    prom.answer = lambda q, t: (status, body)
    res = run(prom.url)
    assert res["verdict"] == "fail" and res["hosts"] == {}
    assert said in res["reasons"][0], res["reasons"]


def test_a_failure_mid_way_fails_the_whole_analysis(prom: FakeProm) -> None:
    """The first queries answered, then Prometheus went away: no partial pass."""
    def answer(q: str, t: float) -> tuple[int, Any]:
        if "softnet" in q:
            return 503, "overloaded"
        prom.answer = None
        try:
            return prom.respond(q, t)
        finally:
            prom.answer = answer
    prom.answer = answer
    res = run(prom.url)
    assert res["verdict"] == "fail" and res["hosts"] == {}
    assert "HTTP 503" in res["reasons"][0]


# ------------------------------------------------------------------ the Ansible module

PLAY = """\
- hosts: localhost
  gather_facts: false
  tasks:
    - name: A quiet step
      vpsnet.fleet.vpsnet_rollout_analysis:
        prometheus_url: "{url}"
        hosts: {upgraded}
        baseline_hosts: {peers}
        reloaded_at: {reloaded}
        time: {now}
      register: quiet
    - name: A step analysed against a Prometheus that is down
      vpsnet.fleet.vpsnet_rollout_analysis:
        prometheus_url: "http://127.0.0.1:{closed}"
        hosts: {upgraded}
        timeout: 2
      register: down
      ignore_errors: true
    - name: Show
      ansible.builtin.debug:
        msg: >-
          QUIET={{{{ quiet.verdict }}}} DOWN={{{{ down.verdict }}}} FAILED={{{{ down.failed }}}}
"""


def test_the_ansible_module(prom: FakeProm, closed_port: int, tmp_path: Path) -> None:
    """Run by ansible-playbook: the module (by its FQCN, from the collection) finds its
    module_utils, passes a quiet step and fails the task on a Prometheus that is down."""
    play = tmp_path / "play.yml"
    play.write_text(PLAY.format(url=prom.url, upgraded=json.dumps(UPGRADED),
                                peers=json.dumps(PEERS), now=NOW, closed=closed_port,
                                reloaded=json.dumps(dict.fromkeys(UPGRADED, RELOAD))))
    env = ansible_env(tmp_path)
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
         "-e", f"ansible_python_interpreter={sys.executable}", str(play)],
        capture_output=True, text=True, env=env, timeout=300, check=False, cwd=tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "QUIET=pass DOWN=fail FAILED=True" in out, out[-4000:]
    assert f"vpsnet_rollout_analysis: Prometheus at http://127.0.0.1:{closed_port} did not " \
           "answer" in out
