#!/usr/bin/python
# SPDX-License-Identifier: GPL-2.0-only
"""The module vpsnet.fleet.vpsnet_rollout_analysis: Ansible's side (parameters, result) of
a rollout step's canary analysis in Prometheus; the logic is the collection's module_utils
vpsnet_rollout_canary. Run on the controller (delegate_to localhost), which has requests."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: vpsnet_rollout_analysis
short_description: Verdict on a rollout step from Prometheus (alerts, and rates against a baseline)
version_added: 1.0.0
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
    answer, or a host with no samples is a fail. Changes nothing.
  - The vpsnet.fleet.vpsnet_rollout role runs it once per step of playbooks/deploy.yml.
author:
  - vpsnet contributors (!UNKNOWN)
requirements:
  - requests (on the host that runs it, usually the controller)
notes:
  - "Run it on the controller (C(delegate_to: localhost)) or another host that reaches Prometheus."
  - Supports check mode (it only reads).
options:
  prometheus_url:
    description: Base URL of Prometheus (http(s)://host:port, without /api/v1).
    type: str
    required: true
  hosts:
    description: The step's upgraded hosts, inventory name to the value of O(host_label).
    type: dict
    required: true
  baseline_hosts:
    description: The region's hosts not yet upgraded, inventory name to the value of O(host_label).
    type: dict
    default: {}
  reloaded_at:
    description: Unix time of each upgraded host's reload; its own baseline is the window before.
    type: dict
    default: {}
  time:
    description: Unix time the window ends (default now).
    type: float
  window:
    description: Seconds of the window (rates and alerts).
    type: int
    default: 300
  timeout:
    description: Seconds per HTTP request.
    type: float
    default: 10
  host_label:
    description: Label naming the host in Prometheus.
    type: str
    default: instance
  job:
    description: Scrape job of vpsnet-exporter (V("") for any).
    type: str
    default: vpsnet
  alerts:
    description:
      - Alert names that fail the step when firing or pending for one of its hosts.
      - Unset, every vpsnet alert but VpsnetVersionSkew, VpsnetAllowanceExceeded and the
        tuning alerts.
    type: list
    elements: str
  thresholds:
    description: Per metric (queue_drops, softnet_dropped, time_squeeze, tx_timeouts,
      health_transitions) a dict of ratio and margin, over the defaults.
    type: dict
    default: {}
  min_scrape_success:
    description: Least fraction of good scrapes (up, vpsnet_up) of each upgraded host.
    type: float
    default: 0.95
"""

EXAMPLES = r"""
- name: Analyse a step of two hosts against the rest of their region
  vpsnet.fleet.vpsnet_rollout_analysis:
    prometheus_url: http://prometheus.example.net:9090
    hosts: {web1: "web1:19462", web2: "web2:19462"}
    baseline_hosts: {web3: "web3:19462"}
    reloaded_at: {web1: 1767000000.5, web2: 1767000003.1}
    window: 300
  delegate_to: localhost
  run_once: true
  register: analysis
"""

RETURN = r"""
verdict:
  description: V(pass) or V(fail).
  type: str
  returned: always
  sample: pass
reasons:
  description: Why the step failed, each with its numbers (empty on a pass).
  type: list
  elements: str
  returned: always
hosts:
  description: Per upgraded host its verdict, reasons and per metric after, before,
    peers_median and limit.
  type: dict
  returned: always
alerts:
  description: The alerts seen for the hosts in the window.
  type: list
  elements: dict
  returned: always
baseline:
  description: Per metric the baseline hosts' values and median.
  type: dict
  returned: always
queries:
  description: The PromQL asked, by purpose.
  type: dict
  returned: always
window:
  description: Seconds of the window analysed, ending at RV(time).
  type: int
  returned: always
time:
  description: Unix time the window ends.
  type: float
  returned: always
prometheus:
  description: The Prometheus asked.
  type: str
  returned: always
host_label:
  description: The label that named the hosts.
  type: str
  returned: always
thresholds:
  description: The ratio and margin used per metric (the defaults with O(thresholds) over them).
  type: dict
  returned: always
min_scrape_success:
  description: The least fraction of good scrapes used.
  type: float
  returned: always
"""

from typing import Any

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.vpsnet.fleet.plugins.module_utils.vpsnet_rollout_canary import (
    ALERTS,
    DEFAULT_MIN_SCRAPE_SUCCESS,
    HAS_REQUESTS,
    analyse,
    thresholds_for,
)


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
    if not HAS_REQUESTS:
        module.fail_json(msg=missing_required_lib("requests"))
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
