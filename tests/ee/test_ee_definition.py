"""execution-environment.yml against the rest of the tree, without docker: its pins
are requirements.txt's, its collections requirements.yml's, and ee/ee_definition.py
(what scripts/ee-build.sh stages from) refuses an entry it could not stage."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==(\S+)")


def _ee_definition() -> ModuleType:
    spec = importlib.util.spec_from_file_location("ee_definition", REPO / "ee/ee_definition.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


EE = _ee_definition()


def _pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            found[match.group(1).lower()] = match.group(2)
    return found


def _pin(requirement: str) -> tuple[str, str]:
    match = PIN.match(requirement)
    assert match, requirement
    return match.group(1).lower(), match.group(2)


def test_python_pins_are_the_tool_chains() -> None:
    tool_chain = _pins(REPO / "requirements.txt")
    image = _pins(REPO / "ee/requirements.txt")
    image.update(_pin(r) for r in EE.pip_pins(EE.load()))
    assert {"ansible-core", "ansible-runner", "boto3", "botocore", "google-auth",
            "requests"} <= image.keys()
    assert image == {name: tool_chain[name] for name in image}
    # The build stages' pyyaml is the tool chain's too.
    assert _pins(REPO / "ee/build-requirements.txt")["pyyaml"] == tool_chain["pyyaml"]


def test_collections_are_the_fleet_and_required_ones() -> None:
    staged = EE.collections(EE.load())
    assert staged[0] == ("file", "vpsnet", "fleet")
    required = {c["name"] for c in yaml.safe_load((REPO / "requirements.yml").read_text())[
        "collections"]}
    third_party = {f"{namespace}.{name}" for kind, namespace, name in staged[1:]}
    assert {kind for kind, _, _ in staged[1:]} == {"dir"}
    assert {"amazon.aws", "google.cloud"} <= third_party <= required


@pytest.mark.parametrize("entry", [
    {"name": "collections/vpsnet-fleet.tar.gz", "type": "dir"},
    {"name": "collections/amazon-aws", "type": "file"},
    {"name": "amazon.aws", "version": "10.1.2"},
])
def test_an_entry_that_cannot_be_staged_is_refused_by_name(entry: dict[str, Any]) -> None:
    doc = {"dependencies": {"galaxy": {"collections": [entry]}}}
    with pytest.raises(ValueError, match=re.escape(repr(entry["name"]))):
        EE.collections(doc)


def test_galaxy_requirements_round_trip() -> None:
    doc = EE.load()
    assert yaml.safe_load(EE.galaxy_requirements(doc)) == doc["dependencies"]["galaxy"]
