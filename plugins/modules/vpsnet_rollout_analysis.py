#!/usr/bin/python
# SPDX-License-Identifier: GPL-2.0-only
"""Canary analysis of a rollout step against Prometheus (vpsnet_rollout role). Runs on the
controller (delegate_to localhost): "python" in the shebang so that Ansible runs it with
the controller's interpreter, which has requests."""

from __future__ import annotations

from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.vpsnet_rollout_canary import (
    ALERTS,
    DEFAULT_MIN_SCRAPE_SUCCESS,
    analyse,
    thresholds_for,
)

DOCUMENTATION = r"""
module: vpsnet_rollout_analysis
short_description: Verdict on a rollout step from Prometheus (alerts, and rates against a baseline)
description:
  - Asks Prometheus's HTTP API (GET /api/v1/query at a given time) whether any vpsnet alert was
    firing or pending for the step's hosts during the window (the ALERTS series), and compares
    each upgraded host's worst per-queue drop rate, softnet drops and time_squeeze, TX
    timeouts and health-state transitions with the region's hosts not yet upgraded (median) and
    with the host's own window before its reload; scrape success (up, vpsnet_up) is absolute.
  - A metric fails when the host exceeds ratio x (the larger baseline) + margin; with no
    baseline at all, the margin alone.
  - Fails closed, and the task fails with the reasons and all the numbers in the result,
    when the verdict is fail. Prometheus unreachable, an HTTP error, a non-success or malformed
    answer, or a host with no samples is a fail. Run it on the controller (delegate_to
    localhost). Changes nothing.
options:
  prometheus_url: {description: Base URL of Prometheus (no /api/v1)., type: str, required: true}
  hosts:
    description: The step's upgraded hosts, inventory name to the value of host_label.
    type: dict
    required: true
  baseline_hosts:
    description: The region's hosts not yet upgraded, inventory name to the value of host_label.
    type: dict
    default: {}
  reloaded_at:
    description: Unix time of each upgraded host's reload; its own baseline is the window before.
    type: dict
    default: {}
  time: {description: Unix time the window ends (default now)., type: float}
  window: {description: Seconds of the window (rates and alerts)., type: int, default: 300}
  timeout: {description: Seconds per HTTP request., type: float, default: 10}
  host_label: {description: Label naming the host in Prometheus., type: str, default: instance}
  job: {description: Scrape job of vpsnet-exporter ("" for any)., type: str, default: vpsnet}
  alerts: {description: Alert names that fail the step., type: list, elements: str}
  thresholds:
    description: Per metric ratio and margin, over the defaults.
    type: dict
    default: {}
  min_scrape_success: {description: Least fraction of good scrapes., type: float, default: 0.95}
"""

RETURN = r"""
verdict: {description: pass or fail, type: str, returned: always}
reasons: {description: why it failed, each with the numbers, type: list, returned: always}
hosts:
  description: per upgraded host, verdict, reasons and per metric after, before, peers_median, limit
  type: dict
  returned: always
alerts: {description: alerts seen for the hosts in the window, type: list, returned: always}
baseline:
  {description: per metric the baseline hosts' values and median, type: dict, returned: always}
queries: {description: the PromQL asked, type: dict, returned: always}
"""


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "prometheus_url": {"type": "str", "required": True},
            "hosts": {"type": "dict", "required": True},
            "baseline_hosts": {"type": "dict", "default": {}},
            "reloaded_at": {"type": "dict", "default": {}},
            "time": {"type": "float"},
            "window": {"type": "int", "default": 300},
            "timeout": {"type": "float", "default": 10.0},
            "host_label": {"type": "str", "default": "instance"},
            "job": {"type": "str", "default": "vpsnet"},
            "alerts": {"type": "list", "elements": "str"},
            "thresholds": {"type": "dict", "default": {}},
            "min_scrape_success": {"type": "float", "default": DEFAULT_MIN_SCRAPE_SUCCESS},
        },
        supports_check_mode=True,
    )
    p: dict[str, Any] = module.params
    if not p["prometheus_url"].startswith(("http://", "https://")):
        module.fail_json(msg=f"prometheus_url={p['prometheus_url']!r}: want http(s)://...")
    try:
        thresholds_for(p["thresholds"])
        reloaded = {h: float(t) for h, t in p["reloaded_at"].items()}
    except (TypeError, ValueError) as e:
        module.fail_json(msg=f"vpsnet_rollout_analysis: {e}")
    result = analyse(
        p["prometheus_url"], {h: str(v) for h, v in p["hosts"].items()},
        baseline_hosts={h: str(v) for h, v in p["baseline_hosts"].items()},
        reloaded_at=reloaded, at=p["time"], window=p["window"], timeout=p["timeout"],
        host_label=p["host_label"], job=p["job"],
        alerts=p["alerts"] if p["alerts"] is not None else ALERTS,
        thresholds=p["thresholds"], min_scrape_success=p["min_scrape_success"])
    if result["verdict"] != "pass":
        module.fail_json(msg="vpsnet_rollout_analysis: " + "; ".join(result["reasons"]),
                         changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
