"""Fixtures shared by every test layer: the one lab fleet a session boots."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from vpsnet_lab.fleet import Lab
from vpsnet_lab.paths import CACHE, TOP

# Ansible's collection finder first (vpsnet.fleet as Ansible loads it), then the
# role tests' fixtures (fake metadata services), for every layer.
pytest_plugins = ["testlib.ansible_collections_finder", "testlib.metadata_fixtures"]

SESSION_SPEC = TOP / "tests" / "specs" / "session.yml"
# Parallel test runs on one machine each need their own lab: set
# VPSNET_TEST_LAB=name and VPSNET_TEST_BASE_PORT=port.
SESSION_STATE = CACHE / "-".join(filter(None, ["lab-test", os.environ.get("VPSNET_TEST_LAB")]))
REPO_SERVICE = "repo"


def session_spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(SESSION_SPEC.read_text())
    spec["base_port"] = int(os.environ.get("VPSNET_TEST_BASE_PORT", spec["base_port"]))
    # Guests reach a host-side apt/dnf repository at 10.0.2.101:80.
    spec["services"] = [{"name": REPO_SERVICE, "guest_port": 80,
                         "host_port": spec["base_port"] + 300}]
    # Guest TCP forwards (e.g. vpsnet-exporter) follow base_port too.
    for i, g in enumerate(spec["guests"]):
        for j, fwd in enumerate(g.get("forwards", [])):
            fwd["host_port"] = spec["base_port"] + 400 + 10 * i + j
    return spec


def _say(msg: str) -> None:
    print(f"[lab] {msg}", file=sys.__stderr__, flush=True)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """The session's guests (see tests/specs/session.yml), always torn down."""
    Lab(SESSION_STATE).down(say=_say)  # leftovers of a killed run
    fleet = Lab.up(session_spec(), str(SESSION_SPEC), state_dir=SESSION_STATE, say=_say)
    try:
        yield fleet
    finally:
        fleet.down(say=_say)


@pytest.fixture(scope="session")
def lab_state_dir() -> Path:
    return SESSION_STATE


@pytest.fixture(scope="session")
def repo_host_port(lab: Lab) -> int:
    """Host loopback port whose server the guests see at http://10.0.2.101/."""
    svc = next(s for s in lab.spec.services if s.name == REPO_SERVICE)
    return svc.host_port
