"""Fixtures shared by every test layer: the one lab fleet a session boots."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from vpsnet_lab.fleet import Lab
from vpsnet_lab.paths import CACHE, TOP

SESSION_SPEC = TOP / "tests" / "specs" / "session.yml"
SESSION_STATE = CACHE / "lab-test"


def _say(msg: str) -> None:
    print(f"[lab] {msg}", file=sys.__stderr__, flush=True)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """The session's guests (see tests/specs/session.yml), always torn down."""
    Lab(SESSION_STATE).down(say=_say)  # leftovers of a killed run
    fleet = Lab.up(yaml.safe_load(SESSION_SPEC.read_text()), str(SESSION_SPEC),
                   state_dir=SESSION_STATE, say=_say)
    try:
        yield fleet
    finally:
        fleet.down(say=_say)


@pytest.fixture(scope="session")
def lab_state_dir() -> Path:
    return SESSION_STATE
