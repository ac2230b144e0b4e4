"""The rollout's gates on IPv6 (issue 22): vpsnet_upgrade's ping targets (IPv6
literals accepted, brackets refused, 'auto' on an IPv6-only host), the step
analysis's Prometheus labels for IPv6 inventory names ([addr]:port, as
Prometheus writes them), a Prometheus URL on an IPv6 literal, and the queries
reaching a fake Prometheus that listens on ::1 only."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from ansible_collections.vpsnet.fleet.plugins.filter import vpsnet_inputs as inputs
from ansible_collections.vpsnet.fleet.plugins.filter import vpsnet_rollout as rollout
from ansible_collections.vpsnet.fleet.plugins.filter import vpsnet_upgrade as upgrade
from ansible_collections.vpsnet.fleet.plugins.module_utils import vpsnet_rollout_canary as canary
from ansible_collections.vpsnet.fleet.plugins.plugin_utils.vpsnet_inputs_checks import addresses
from testlib.vpsnet_facts_helpers import REPO

# --------------------------------------------------------------------------- ping targets


V4 = {"gateway": "10.0.2.2", "interface": "eth0", "address": "10.0.2.15"}
V6_LL = {"gateway": "fe80::1", "interface": "ens5", "address": "2600:1f18::5"}
V6_GLOBAL = {"gateway": "2001:db8::1", "interface": "ens5"}


@pytest.mark.parametrize(("v4", "v6", "targets"), [
    (V4, V6_LL, ["10.0.2.2"]),  # dual-stack: the IPv4 gateway, as before
    (V4, {}, ["10.0.2.2"]),
    ({}, V6_LL, ["fe80::1%ens5"]),  # IPv6-only: link-local needs its interface
    ({}, V6_GLOBAL, ["2001:db8::1"]),
    ({}, {"gateway": "fe80::1%ens6", "interface": "ens5"}, ["fe80::1%ens6"]),
    ({}, {}, []),
    (None, None, []),
    ({"interface": "eth0"}, {"interface": "ens5"}, []),  # no gateway
    ({"gateway": "fe80::1"}, {}, []),  # an IPv6 address is not an IPv4 gateway
    ({}, {"gateway": "fe80::1"}, []),  # link-local without its interface: unusable
    ({}, {"gateway": "fe80::1", "interface": "-f"}, []),
    ({}, {"gateway": "fe80::1", "interface": "eth0;reboot"}, []),
    ({}, {"gateway": "-f", "interface": "eth0"}, []),
    ({}, {"gateway": "fe80::1%;reboot", "interface": "eth0"}, []),
])
def test_auto_ping_targets(v4: Any, v6: Any, targets: list[str]) -> None:
    assert upgrade.ping_targets_auto(v4, v6) == targets


def test_auto_targets_pass_the_roles_own_input_check() -> None:
    for target in ("10.0.2.2", "fe80::1%ens5", "2001:db8::1"):
        assert addresses.check_address("vpsnet_upgrade_ping_targets[0]", target) == []


@pytest.mark.parametrize("target", ["2001:db8::7", "fe80::1%eth1", "fd42::2", "::1"])
def test_ipv6_ping_targets_are_accepted(target: str) -> None:
    assert inputs.check([{"name": "vpsnet_upgrade_ping_targets", "check": "list",
                          "max_len": 16, "elements": {"check": "address"},
                          "value": [target]}]) == []


@pytest.mark.parametrize("target", ["[2001:db8::7]", "[::1]:80", "2001:db8::7/64", "-6"])
def test_bracketed_or_option_like_targets_are_refused(target: str) -> None:
    errors = inputs.check([{"name": "vpsnet_upgrade_ping_targets", "check": "list",
                            "max_len": 16, "elements": {"check": "address"},
                            "value": [target]}])
    assert len(errors) == 1 and "vpsnet_upgrade_ping_targets" in errors[0], errors


def test_role_uses_the_filter_for_auto() -> None:
    main = (REPO / "roles/vpsnet_upgrade/tasks/main.yml").read_text()
    assert "vpsnet_upgrade_ping_auto(ansible_facts['default_ipv6']" in main
    gates = (REPO / "roles/vpsnet_upgrade/tasks/gates.yml").read_text()
    # ping picks the family from the address: no -4 that would refuse IPv6 targets
    assert re.search(r"argv: \[ping, -n, -q, -c", gates) and "-4" not in gates


# --------------------------------------------------------------------------- Prometheus labels


@pytest.mark.parametrize(("host", "label"), [
    ("node-1", "node-1:19462"),
    ("10.0.0.7", "10.0.0.7:19462"),
    ("2001:db8::7", "[2001:db8::7]:19462"),
    ("fd42::2", "[fd42::2]:19462"),
])
def test_labels_of_ipv6_inventory_names_are_bracketed(host: str, label: str) -> None:
    assert rollout.host_port(host, 19462) == label
    args = rollout.step_analysis_args([host], {host: {}}, [host], [host], 300, 1000.0)
    assert args["hosts"] == {host: label}


def test_explicit_ipv6_instance_label_is_kept() -> None:
    hv = {"h": {"vpsnet_rollout_analysis_instance": "[2001:db8::9]:9100"}}
    args = rollout.step_analysis_args(["h"], hv, ["h"], ["h"], 300, 1000.0)
    assert args["hosts"] == {"h": "[2001:db8::9]:9100"}


@pytest.mark.parametrize("url", ["http://[::1]:9090", "https://[2001:db8::1]:9090/prom",
                                 "http://[fd42::1]"])
def test_prometheus_url_on_an_ipv6_literal_is_accepted(url: str) -> None:
    assert addresses.check_url("vpsnet_rollout_prometheus_url", url) == []


@pytest.mark.parametrize("url", ["http://::1:9090", "http://[::1:9090", "http://[::g]:9090"])
def test_unbracketed_or_bad_ipv6_prometheus_url_is_refused(url: str) -> None:
    errors = addresses.check_url("vpsnet_rollout_prometheus_url", url)
    assert errors and errors[0].startswith("vpsnet_rollout_prometheus_url="), errors


# --------------------------------------------------------------------------- queries over IPv6


class _V6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True


@pytest.fixture
def prometheus6() -> Iterator[tuple[int, list[str]]]:
    """A fake Prometheus on ::1 answering every instant query with one sample per
    host regex alternative (the label value it was asked about)."""
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)["query"][0]
            seen.append(query)
            body = json.dumps({"status": "success",
                               "data": {"resultType": "vector", "result": []}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    srv = _V6Server(("::1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield int(srv.server_address[1]), seen
    finally:
        srv.shutdown()
        srv.server_close()


def test_queries_reach_prometheus_on_ipv6_and_select_bracketed_labels(prometheus6) -> None:
    port, seen = prometheus6
    label = rollout.host_port("2001:db8::7", 19462)
    promql = canary.alerts_query("instance", [label], 300)
    assert canary.query(f"http://[::1]:{port}", promql, 1000.0, 5.0) == []
    assert seen == [promql]
    # the selector's regex matches exactly that label (Prometheus anchors it)
    regex = canary.host_regex([label])
    assert re.fullmatch(regex, "[2001:db8::7]:19462")
    assert not re.fullmatch(regex, "2001:db8::7:19462")
