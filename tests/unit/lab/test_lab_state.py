"""The lab's state file: a damaged one is a clear error, the spec is kept as
spec data that parses back to the same Spec (older labs' raw specs too), and
the record is parsed once per Lab, not on every ssh, qmp or status call."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vpsnet_lab import fleet
from vpsnet_lab.fleet import Lab
from vpsnet_lab.paths import LabError
from vpsnet_lab.spec import to_data
from vpsnet_lab.specparse import parse

from .test_spec import GOOD


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b"[1, 2]", b""])
def test_a_damaged_state_file_is_a_lab_error_naming_it(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "state.json").write_bytes(content)
    with pytest.raises(LabError, match=r"state\.json: unreadable lab state"):
        Lab(tmp_path)


def test_the_recorded_spec_is_parsed_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "state.json").write_text(json.dumps({"spec": GOOD, "source": "t.yml"}))
    calls: list[str] = []
    real = fleet.parse

    def counting(*args: object, **kwargs: object) -> object:
        calls.append("parse")
        return real(*args, **kwargs)

    monkeypatch.setattr(fleet, "parse", counting)
    lab = Lab(tmp_path)
    names = [g.name for g in lab.spec.guests]
    assert names and [g.name for g in lab.spec.guests] == names
    assert calls == ["parse"]
    lab.state = {"spec": dict(GOOD), "source": "t.yml"}  # a new record is parsed again
    assert [g.name for g in lab.spec.guests] == names
    assert calls == ["parse", "parse"]


def test_the_state_keeps_the_spec_as_data_that_parses_back(tmp_path: Path) -> None:
    spec = parse(GOOD, "t.yml")
    record = json.loads(json.dumps(to_data(spec)))  # what Lab.up writes to state.json
    (tmp_path / "state.json").write_text(json.dumps({"spec": record, "source": "t.yml"}))
    assert Lab(tmp_path).spec == spec
    assert to_data(parse(record, "t.yml")) == record
