# SPDX-License-Identifier: GPL-2.0-only
"""Canary analysis of a rollout step against Prometheus's HTTP API.

For the step's upgraded hosts: (1) no vpsnet alert firing or pending
(the ALERTS series of monitoring/prometheus/vpsnet.rules.yml's alerts) during the
window, and (2) per-host rates no worse than a baseline: the region's hosts not
yet upgraded (median, same window) and the host's own window before its reload.
A metric fails when the host is worse than every baseline it has, by more than
`ratio` x baseline + `margin` (a regression shows against both; a region-wide
surge or a host that was always noisy does not). Scrape success is absolute.

Fails closed: Prometheus unreachable, an HTTP error, a non-success answer, a
malformed one, or a host without samples gives verdict "fail", never "pass".
Imported by the module vpsnet.fleet.vpsnet_rollout_analysis (plugins/modules/) and
its tests (tests/unit/roles/test_vpsnet_rollout_analysis.py).
"""

from __future__ import annotations

import math
import re
import statistics
import time as _time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

try:
    import requests

    HAS_REQUESTS = True
except ImportError:  # pragma: no cover - the module reports it (missing_required_lib)
    requests = None  # type: ignore[assignment]
    HAS_REQUESTS = False

# The project's alerts (monitoring/prometheus/vpsnet.rules.yml) that a step's
# host can raise. VpsnetVersionSkew is left out: it has no host, and is pending
# during every rollout by design. VpsnetAllowanceExceeded too: it measures the
# workload against its instance type (ENA), not the module; and VpsnetTuneDrift /
# VpsnetTuneVerifyFailing, which compare the host's tuning with vpsnet_tune's plan.
ALERTS = (
    "VpsnetLinkDown", "VpsnetRxSilent", "VpsnetTxStalled", "VpsnetLinkFlapping",
    "VpsnetQueueDrops", "VpsnetSoftnetTimeSqueeze", "VpsnetExporterDown",
    "VpsnetModuleMissing", "VpsnetExporterScrapeErrors",
)


@dataclass(frozen=True)
class Metric:
    name: str
    promql: str  # {L}: the host label, {sel}: the label matchers, {w}: the window
    unit: str
    kind: str = "rate"  # "rate": compared with the baselines; "ratio": absolute minimum


# The module's families as vpsnet-exporter serves them (driver-src/vpsnet_families.h).
METRICS = (
    # the worst queue of the host (one series per device, queue and direction)
    Metric("queue_drops", "max by ({L}) (rate(vpsnet_queue_drops_total{sel}[{w}s]))",
           "drops/s on the worst queue"),
    Metric("softnet_dropped", "sum by ({L}) (rate(vpsnet_softnet_dropped_total{sel}[{w}s]))",
           "backlog drops/s"),
    Metric("time_squeeze",
           "sum by ({L}) (rate(vpsnet_softnet_time_squeeze_total{sel}[{w}s]))",
           "time squeezes/s"),
    Metric("tx_timeouts", "sum by ({L}) (increase(vpsnet_txq_timeouts_total{sel}[{w}s]))",
           "TX watchdog timeouts in the window"),
    Metric("health_transitions",
           "sum by ({L}) (increase(vpsnet_health_transitions_total{sel}[{w}s]))",
           "health state transitions in the window"),
    Metric("scrape_success", "min by ({L}) (avg_over_time(up{sel}[{w}s]))",
           "fraction of scrapes that succeeded", kind="ratio"),
    Metric("module_up", "min by ({L}) (avg_over_time(vpsnet_up{sel}[{w}s]))",
           "fraction of scrapes with the module's metrics", kind="ratio"),
)

# ratio x baseline + margin is the most an upgraded host may show. TX timeouts
# and health transitions: none beyond the baseline's.
DEFAULT_THRESHOLDS: dict[str, dict[str, float]] = {
    "queue_drops": {"ratio": 1.5, "margin": 1.0},
    "softnet_dropped": {"ratio": 1.5, "margin": 1.0},
    "time_squeeze": {"ratio": 1.5, "margin": 2.0},
    "tx_timeouts": {"ratio": 1.0, "margin": 0.0},
    "health_transitions": {"ratio": 1.0, "margin": 0.0},
}
DEFAULT_MIN_SCRAPE_SUCCESS = 0.95


class PrometheusError(Exception):
    """Prometheus did not give a usable answer."""


# --------------------------------------------------------------------------- PromQL


def _string(value: str) -> str:
    """A PromQL double-quoted string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def host_regex(values: Sequence[str]) -> str:
    """An RE2 alternation matching exactly these label values (Prometheus anchors it)."""
    if not values:
        raise ValueError("no hosts to select")
    return "|".join(re.escape(v) for v in sorted(set(values)))


def selector(host_label: str, values: Sequence[str], job: str = "vpsnet",
             extra: str = "") -> str:
    """{job="...",L=~"a|b"[,extra]}; job "" selects every job."""
    parts = [f"job={_string(job)}"] if job else []
    parts.append(f"{host_label}=~{_string(host_regex(values))}")
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}"


def alerts_query(host_label: str, values: Sequence[str], window: int,
                 alerts: Sequence[str] = ALERTS) -> str:
    """Every vpsnet alert firing or pending for these hosts at any time in the
    window (ALERTS exists only while an alert is pending or firing). The rules
    aggregate by instance, so their alerts carry no job: no job matcher."""
    names = _string("|".join(re.escape(a) for a in alerts))
    sel = selector(host_label, values, job="",
                   extra=f'alertname=~{names},alertstate=~"firing|pending"')
    return f"max_over_time(ALERTS{sel}[{int(window)}s])"


def metric_query(metric: Metric, host_label: str, values: Sequence[str], window: int,
                 job: str = "vpsnet") -> str:
    sel = selector(host_label, values, job)
    return (metric.promql.replace("{L}", host_label).replace("{sel}", sel)
            .replace("{w}", str(int(window))))


# --------------------------------------------------------------------------- HTTP


def query(url: str, promql: str, at: float, timeout: float,
          session: requests.Session | None = None) -> list[dict[str, Any]]:
    """GET /api/v1/query at time `at`: the vector's samples. Anything but a
    success with a vector raises PrometheusError."""
    get = (session or requests).get
    try:
        r = get(url.rstrip("/") + "/api/v1/query", params={"query": promql, "time": f"{at:.3f}"},
                timeout=timeout)
    except requests.RequestException as e:
        raise PrometheusError(f"Prometheus at {url} did not answer: {e}") from e
    try:
        body = r.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise PrometheusError(f"Prometheus at {url}: HTTP {r.status_code}, not a JSON answer "
                              f"to {promql!r}: {r.text[:200]!r}")
    if r.status_code != 200 or body.get("status") != "success":
        raise PrometheusError(
            f"Prometheus at {url}: HTTP {r.status_code}, status {body.get('status')!r} for "
            f"{promql!r}: {body.get('errorType', '')} {body.get('error', '')}".rstrip())
    data = body.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "vector" or \
            not isinstance(data.get("result"), list):
        raise PrometheusError(f"Prometheus at {url}: no vector in the answer to {promql!r}")
    return list(data["result"])


def by_host(samples: list[dict[str, Any]], host_label: str,
            hosts: Mapping[str, str]) -> dict[str, float]:
    """host -> value, for samples of the hosts (label value -> host name). NaN
    counts as no sample."""
    names = {v: h for h, v in hosts.items()}
    out: dict[str, float] = {}
    for s in samples:
        host = names.get(str(s.get("metric", {}).get(host_label)))
        try:
            value = float(s["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        if host is not None and not math.isnan(value):
            out[host] = value
    return out


# --------------------------------------------------------------------------- analysis


def thresholds_for(given: Mapping[str, Any] | None) -> dict[str, dict[str, float]]:
    """DEFAULT_THRESHOLDS with the given ones over them; unknown names or keys are errors."""
    out = {k: dict(v) for k, v in DEFAULT_THRESHOLDS.items()}
    for name, th in (given or {}).items():
        if name not in out or not isinstance(th, Mapping) or set(th) - {"ratio", "margin"}:
            raise ValueError(f"thresholds: {name!r}: {th!r} (want one of {', '.join(out)} "
                             "with ratio and/or margin)")
        for key, value in th.items():
            number = float(value)
            if number < 0 or math.isnan(number) or math.isinf(number):
                raise ValueError(f"thresholds: {name}.{key}={value!r} is not a number >= 0")
            out[name][key] = number
    return out


def analyse(url: str, hosts: Mapping[str, str], *, baseline_hosts: Mapping[str, str] | None = None,
            reloaded_at: Mapping[str, float] | None = None, at: float | None = None,
            window: int = 300, timeout: float = 10.0, host_label: str = "instance",
            job: str = "vpsnet", alerts: Sequence[str] = ALERTS,
            thresholds: Mapping[str, Any] | None = None,
            min_scrape_success: float = DEFAULT_MIN_SCRAPE_SUCCESS,
            session: requests.Session | None = None) -> dict[str, Any]:
    """The verdict on a step. hosts / baseline_hosts: inventory name -> value of
    host_label in Prometheus (e.g. "web1:19462"); reloaded_at: host -> Unix time
    of its reload, for its own "before" window (the `window` seconds before it)."""
    at = _time.time() if at is None else float(at)
    baseline_hosts = dict(baseline_hosts or {})
    reloaded_at = {h: float(t) for h, t in (reloaded_at or {}).items()}
    limits = thresholds_for(thresholds)
    result: dict[str, Any] = {
        "verdict": "fail", "reasons": [], "prometheus": url, "time": at, "window": window,
        "host_label": host_label, "alerts": [], "hosts": {}, "baseline": {}, "queries": {},
        "thresholds": limits, "min_scrape_success": min_scrape_success,
    }
    reasons: list[str] = result["reasons"]
    if not hosts:
        reasons.append("no upgraded hosts to analyse")
        return result
    if window < 1:
        reasons.append(f"window={window}: want seconds >= 1")
        return result
    if overlap := set(hosts) & set(baseline_hosts):
        reasons.append(f"{', '.join(sorted(overlap))}: both upgraded and baseline")
        return result
    for h in sorted(hosts):
        if h in reloaded_at and at - window < reloaded_at[h]:
            reasons.append(f"{h}: the window ({window} s before {at:.0f}) starts before its "
                           f"reload at {reloaded_at[h]:.0f}: soak longer or shorten the window")
    if reasons:
        return result
    try:
        _analyse(url, dict(hosts), baseline_hosts, reloaded_at, at, window, timeout,
                 host_label, job, alerts, limits, min_scrape_success, session, result)
    except PrometheusError as e:
        reasons.append(str(e))
        result["verdict"] = "fail"
        return result
    result["verdict"] = "fail" if reasons else "pass"
    return result


def _analyse(url: str, hosts: dict[str, str], baseline_hosts: dict[str, str],
             reloaded_at: dict[str, float], at: float, window: int, timeout: float,
             host_label: str, job: str, alerts: Sequence[str],
             limits: dict[str, dict[str, float]], min_scrape_success: float,
             session: requests.Session | None, result: dict[str, Any]) -> None:
    reasons: list[str] = result["reasons"]
    queries: dict[str, str] = result["queries"]

    def run(key: str, promql: str, when: float) -> list[dict[str, Any]]:
        queries[key] = promql
        return query(url, promql, when, timeout, session)

    # 1. alerts
    q = alerts_query(host_label, list(hosts.values()), window, alerts)
    names = {v: h for h, v in hosts.items()}
    per_host: dict[str, dict[str, Any]] = {h: {"verdict": "pass", "reasons": [], "metrics": {}}
                                           for h in sorted(hosts)}
    for s in run("alerts", q, at):
        labels = s.get("metric", {})
        host = names.get(str(labels.get(host_label)), str(labels.get(host_label)))
        alert = {"host": host, "alertname": labels.get("alertname"),
                 "alertstate": labels.get("alertstate"),
                 **{k: labels[k] for k in ("device", "queue", "direction") if k in labels}}
        result["alerts"].append(alert)
        why = (f"{host}: alert {alert['alertname']} {alert['alertstate']} in the window"
               + (f" on {alert['device']}" if "device" in alert else ""))
        per_host.get(host, {"reasons": reasons})["reasons"].append(why)

    # 2. metrics: after (upgraded, now), peers (baseline hosts, now), before (own, at reload)
    by_reload: dict[float, dict[str, str]] = {}
    for h, t in reloaded_at.items():
        if h in hosts:
            by_reload.setdefault(t, {})[h] = hosts[h]
    for m in METRICS:
        after = by_host(run(f"{m.name}", metric_query(m, host_label, list(hosts.values()),
                                                      window, job), at), host_label, hosts)
        peers: dict[str, float] = {}
        if baseline_hosts:
            peers = by_host(run(f"{m.name}_baseline",
                                metric_query(m, host_label, list(baseline_hosts.values()),
                                             window, job), at), host_label, baseline_hosts)
        before: dict[str, float] = {}
        for i, (t, group) in enumerate(sorted(by_reload.items())):
            before.update(by_host(run(f"{m.name}_before_{i}",
                                      metric_query(m, host_label, list(group.values()), window,
                                                   job), t), host_label, group))
        peer_median = statistics.median(peers.values()) if peers else None
        result["baseline"][m.name] = {"peers": peers, "median": peer_median,
                                      "missing": sorted(set(baseline_hosts) - set(peers))}
        for h, rec in per_host.items():
            entry: dict[str, Any] = {"after": after.get(h), "before": before.get(h),
                                     "peers_median": peer_median, "unit": m.unit}
            rec["metrics"][m.name] = entry
            problem = _judge(m, h, entry, h in reloaded_at, limits, min_scrape_success)
            if problem:
                entry["verdict"] = "fail"
                rec["reasons"].append(problem)
            else:
                entry.setdefault("verdict", "pass")
    for rec in per_host.values():
        if rec["reasons"]:
            rec["verdict"] = "fail"
            reasons.extend(rec["reasons"])
    result["hosts"] = per_host


def _judge(m: Metric, host: str, entry: dict[str, Any], has_before: bool,
           limits: dict[str, dict[str, float]], min_scrape_success: float) -> str:
    """'' when the host passes on the metric, else why not (with the numbers)."""
    after, before, median = entry["after"], entry["before"], entry["peers_median"]
    if after is None:
        if m.kind == "rate" and has_before and before is None:
            entry["verdict"] = "n/a"  # not exported by this host before the step either
            return ""
        return f"{host}: no samples of {m.name} in the window (Prometheus has no data for it)"
    if m.kind == "ratio":
        entry["limit"] = min_scrape_success
        if after < min_scrape_success:
            return (f"{host}: {m.name} {after:.3f} < {min_scrape_success} ({m.unit})")
        return ""
    th = limits[m.name]
    bases = [b for b in (median, before) if b is not None]
    limit = max(bases, default=0.0) * th["ratio"] + th["margin"]
    entry["limit"] = limit
    if after > limit:
        against = ", ".join(f"{name} {b:.3g}" for name, b in
                            (("region median", median), ("own before", before)) if b is not None)
        return (f"{host}: {m.name} {after:.3g} > limit {limit:.3g} ({m.unit}; baseline: "
                f"{against or 'none'}; ratio {th['ratio']:g}, margin {th['margin']:g})")
    return ""
