"""Every PromQL expression of monitoring/: the alert rules and the Grafana dashboard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

TOP = Path(__file__).resolve().parents[2]
RULES = TOP / "monitoring" / "prometheus" / "vpsnet.rules.yml"
DASHBOARD = TOP / "monitoring" / "grafana" / "vpsnet.json"
# Grafana's variables, replaced as Grafana would before sending the query.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h",
                "${datasource}": "", "$instance": ".*"}


def grafana_expr(expr: str) -> str:
    for k, v in GRAFANA_VARS.items():
        expr = expr.replace(k, v)
    return expr


def _walk_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for p in panels:
        out.append(p)
        out += _walk_panels(p.get("panels", []))
    return out


def dashboard_exprs() -> list[tuple[str, str]]:
    """(where, expr) for every panel target and annotation query of the dashboard."""
    d = json.loads(DASHBOARD.read_text())
    out = []
    for p in _walk_panels(d["panels"]):
        for t in p.get("targets", []):
            out.append((f"panel {p['title']!r} {t['refId']}", grafana_expr(t["expr"])))
    for a in d.get("annotations", {}).get("list", []):
        if "expr" in a:
            out.append((f"annotation {a['name']!r}", grafana_expr(a["expr"])))
    return out


def rule_exprs() -> list[tuple[str, str]]:
    doc = yaml.safe_load(RULES.read_text())
    return [(f"rule {r.get('alert') or r.get('record')}", r["expr"])
            for g in doc["groups"] for r in g["rules"]]


def all_exprs() -> list[tuple[str, str]]:
    return rule_exprs() + dashboard_exprs()
