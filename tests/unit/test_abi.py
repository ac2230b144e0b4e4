"""vpsnet-abi: diff verdicts on manifests and CLI errors (test_abi_check.py: the
load-check logic)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from vpsnet_tools import manifest
from vpsnet_tools.abi import main
from vpsnet_tools.abi_diff import ADDITIVE, BREAKING, COMPATIBLE, NOTE, DiffResult, diff_manifests

BASE: dict[str, Any] = {
    "format": 1,
    "module": "vpsnet",
    "version": "1.0.0",
    "abi_major": 1,
    "exposition": "text/plain; version=0.0.4",
    "parameters": [
        {"name": "drivers", "type": "charp", "min": None, "max": None,
         "default": "ena,virtio_net,gve", "description": "d"},
        {"name": "interval_ms", "type": "uint", "min": 100, "max": 60000, "default": 1000,
         "description": "i"},
        {"name": "uevents", "type": "bool", "min": None, "max": None, "default": True,
         "description": "u"},
    ],
    "health_states": ["ok", "rx_silent", "tx_stalled", "carrier_down"],
    "metrics": [
        {"name": "vpsnet_link_up", "type": "gauge", "labels": ["netns", "device", "driver"],
         "help": "h"},
        {"name": "vpsnet_link_flaps_total", "type": "counter",
         "labels": ["netns", "device", "driver"], "help": "h"},
    ],
    "uevent": {"action": "change", "subsystem": "net", "keys": ["VPSNET_STATE", "VPSNET_PREV"]},
    "proc": ["/proc/net/vpsnet/metrics", "/proc/net/vpsnet/manifest"],
    "build": {"test_force_unhealthy": False},
}


def _new() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def _param(m: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in m["parameters"] if p["name"] == name)


def _kinds(res: DiffResult) -> list[tuple[str, str, str]]:
    return [(f.severity, f.kind, f.subject) for f in res.findings]


def test_identical_is_compatible_without_findings() -> None:
    res = diff_manifests(BASE, _new())
    assert res.verdict == COMPATIBLE and res.findings == []


def test_version_and_description_changes_are_not_findings() -> None:
    new = _new()
    new["version"] = "1.0.1"
    new["parameters"][0]["description"] = "other words"
    new["metrics"][0]["help"] = "other help"
    new["metrics"][0]["labels"] = ["driver", "device", "netns"]  # order is not identity
    assert diff_manifests(BASE, new).findings == []


def test_build_flag_is_a_note_and_stays_compatible() -> None:
    new = _new()
    new["build"]["test_force_unhealthy"] = True
    res = diff_manifests(BASE, new)
    assert res.verdict == COMPATIBLE
    assert _kinds(res) == [(NOTE, "build", "test_force_unhealthy")]
    assert "not part of the ABI" in res.findings[0].message


def test_changed_default_is_a_note() -> None:
    new = _new()
    _param(new, "interval_ms")["default"] = 2000
    res = diff_manifests(BASE, new)
    assert res.verdict == COMPATIBLE
    assert _kinds(res) == [(NOTE, "parameter", "interval_ms")]
    assert "default 1000 -> 2000" in res.findings[0].message


@pytest.mark.parametrize("change, severity, needle", [
    ({"min": 50}, ADDITIVE, "min 100 -> 50: range widened"),
    ({"max": 120000}, ADDITIVE, "max 60000 -> 120000: range widened"),
    ({"max": None}, ADDITIVE, "max bound 60000 removed: range widened"),
    ({"min": 200}, BREAKING, "min 100 -> 200: range narrowed"),
    ({"max": 30000}, BREAKING, "max 60000 -> 30000: range narrowed"),
])
def test_ranges(change: dict[str, Any], severity: str, needle: str) -> None:
    new = _new()
    _param(new, "interval_ms").update(change)
    res = diff_manifests(BASE, new)
    assert res.verdict == severity
    assert [f.message for f in res.findings] == [f"parameter interval_ms: {needle}"]


def test_bound_added_to_unbounded_parameter_is_breaking() -> None:
    new = _new()
    _param(new, "drivers")["max"] = 8
    res = diff_manifests(BASE, new)
    assert res.verdict == BREAKING and "bound added" in res.findings[0].message


def test_additive_changes() -> None:
    new = _new()
    new["metrics"].append({"name": "vpsnet_new_total", "type": "counter", "labels": ["cpu"]})
    new["parameters"].append({"name": "quiet", "type": "bool", "min": None, "max": None,
                              "default": False})
    new["uevent"]["keys"].append("VPSNET_REASON")
    new["proc"].append("/proc/net/vpsnet/queues")
    new["health_states"].append("degraded")
    res = diff_manifests(BASE, new)
    assert res.verdict == ADDITIVE
    assert sorted(_kinds(res)) == sorted([
        (ADDITIVE, "metric", "vpsnet_new_total"),
        (ADDITIVE, "parameter", "quiet"),
        (ADDITIVE, "uevent", "VPSNET_REASON"),
        (ADDITIVE, "proc", "/proc/net/vpsnet/queues"),
        (ADDITIVE, "health_state", "degraded"),
    ])
    assert not res.abi_major_bumped and not res.undeclared_break


def test_renamed_family_is_removed_plus_added_and_breaking() -> None:
    new = _new()
    new["metrics"][1]["name"] = "vpsnet_carrier_flaps_total"
    res = diff_manifests(BASE, new)
    assert res.verdict == BREAKING
    assert _kinds(res) == [(BREAKING, "metric", "vpsnet_link_flaps_total"),
                           (ADDITIVE, "metric", "vpsnet_carrier_flaps_total")]
    assert res.undeclared_break  # abi_major was not bumped


@pytest.mark.parametrize("mutate, kind, needle", [
    (lambda m: m["parameters"].pop(1), "parameter", "parameter interval_ms removed"),
    (lambda m: _param(m, "interval_ms").update(type="ulong"), "parameter",
     "parameter interval_ms retyped uint -> ulong"),
    (lambda m: m["metrics"].pop(0), "metric", "metric family vpsnet_link_up removed"),
    (lambda m: m["metrics"][0].update(type="counter"), "metric",
     "metric family vpsnet_link_up retyped gauge -> counter"),
    (lambda m: m["metrics"][0]["labels"].remove("driver"), "label",
     "metric family vpsnet_link_up: label driver removed"),
    (lambda m: m["metrics"][0]["labels"].append("pci"), "label",
     "metric family vpsnet_link_up: label pci added"),
    (lambda m: m["uevent"]["keys"].remove("VPSNET_PREV"), "uevent",
     "uevent key VPSNET_PREV removed"),
    (lambda m: m["uevent"].update(action="add"), "uevent", "uevent action 'change' -> 'add'"),
    (lambda m: m["proc"].remove("/proc/net/vpsnet/manifest"), "proc",
     "proc path /proc/net/vpsnet/manifest removed"),
    (lambda m: m["health_states"].remove("rx_silent"), "health_state",
     "health state rx_silent removed"),
    (lambda m: m.update(exposition="application/openmetrics-text"), "exposition",
     "metrics exposition format"),
])
def test_breaking_changes(mutate: Any, kind: str, needle: str) -> None:
    new = _new()
    mutate(new)
    res = diff_manifests(BASE, new)
    assert res.verdict == BREAKING
    breaking = [f for f in res.findings if f.severity == BREAKING]
    assert len(breaking) == 1 and breaking[0].kind == kind
    assert breaking[0].message.startswith(needle)


def test_abi_major_bump_alone_is_breaking_and_declared() -> None:
    new = _new()
    new["abi_major"] = 2
    res = diff_manifests(BASE, new)
    assert res.verdict == BREAKING
    assert _kinds(res) == [(BREAKING, "abi_major", "abi_major")]
    assert res.abi_major_bumped and not res.undeclared_break
    new["metrics"].pop()
    res = diff_manifests(BASE, new)
    assert res.abi_major_bumped and not res.undeclared_break
    assert len(res.findings) == 2


# --------------------------------------------------------------------------- CLI


def _write(tmp_path: Path, name: str, doc: dict[str, Any]) -> str:
    p = tmp_path / name
    p.write_bytes(json.dumps(doc).encode() + b"\0")  # NUL-terminated, as procfs serves it
    return str(p)


def test_cli_diff_exit_codes_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    old = _write(tmp_path, "old.json", BASE)
    added = _new()
    added["metrics"].append({"name": "vpsnet_x", "type": "gauge", "labels": []})
    renamed = _new()
    renamed["metrics"][0]["name"] = "vpsnet_carrier_up"

    assert main(["diff", old, old]) == 0
    assert capsys.readouterr().out.startswith("compatible: ")
    assert main(["diff", old, _write(tmp_path, "add.json", added)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("additive: ") and "  additive: metric family vpsnet_x added" in out
    assert main(["diff", "--json", old, _write(tmp_path, "ren.json", renamed)]) == 3
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "breaking" and doc["undeclared_break"] is True
    assert doc["old"] == {"version": "1.0.0", "abi_major": 1, "source": old}
    assert {"severity": "breaking", "kind": "metric", "subject": "vpsnet_link_up",
            "message": "metric family vpsnet_link_up removed"} in doc["findings"]


@pytest.mark.parametrize("content, needle", [
    (b"\x7fELF\x02\x01\x01garbage", "malformed ELF"),
    (b"\x7fELF", "malformed ELF"),
    (b"not json at all", "not valid JSON"),
    (b'{"format": 1, "module": "vpsnet"}', "no valid 'abi_major'"),
    (b'{"format": 7}', "unsupported manifest format"),
    (b"[1, 2]", "not a JSON object"),
])
def test_malformed_inputs_give_one_line_and_exit_2(tmp_path: Path, content: bytes, needle: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.ko"
    bad.write_bytes(content)
    good = _write(tmp_path, "good.json", BASE)
    for argv in (["manifest", str(bad)], ["diff", good, str(bad)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err and err.count("\n") == 1, err


def test_check_on_malformed_and_missing_inputs(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.ko"
    bad.write_bytes(b"\x7fELF\x02\x01\x01" + b"\0" * 9 + b"junk")
    assert main(["check", str(bad), "--kernel", "6.1.0-56-cloud-amd64"]) == 2
    err = capsys.readouterr().err
    assert "malformed ELF" in err and "Traceback" not in err
    txt = tmp_path / "x.ko"
    txt.write_text("hello")
    assert main(["check", str(txt), "--kernel", "x"]) == 2
    assert "not an ELF file" in capsys.readouterr().err
    assert main(["check", str(tmp_path / "none.ko"), "--kernel", "x"]) == 2
    assert "No such file" in capsys.readouterr().err
    assert main(["diff", "loaded", str(txt)]) == 2 or Path(manifest.LOADED_MANIFEST).exists()


def test_usage_error_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["diff", "only-one"])
    assert e.value.code == 2


# ---------------------------------------------------------------- one manifest, real parameters


def test_removed_parameter_message_says_what_the_kernel_does() -> None:
    new = _new()
    new["parameters"].pop(1)
    (f,) = diff_manifests(BASE, new).findings
    assert f.severity == BREAKING
    assert "ignored: the kernel logs 'unknown parameter' and loads without it" in f.message
    assert "fails the load" not in f.message


@pytest.mark.parametrize("raw, needle", [
    (json.dumps({**BASE, "parameters": BASE["parameters"] + [BASE["parameters"][0]]}),
     "manifest declares parameter drivers twice"),
    (json.dumps({**BASE, "metrics": BASE["metrics"] + [BASE["metrics"][0]]}),
     "manifest declares metric family vpsnet_link_up twice"),
    (json.dumps(BASE)[:-1] + ', "parameters": []}', "the key 'parameters' twice"),
    (json.dumps(BASE) + "\0" + json.dumps(BASE), "(a second manifest)"),
    (json.dumps(BASE) + "\0\n", "(trailing bytes)"),
])
def test_decoys_and_duplicates_are_refused(tmp_path: Path, raw: str, needle: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(raw)
    good = _write(tmp_path, "good.json", BASE)
    for argv in (["manifest", str(bad)], ["diff", good, str(bad)], ["diff", str(bad), good]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err


def test_loaded_manifest_checked_against_sysfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    proc = tmp_path / "manifest"
    proc.write_text(json.dumps(BASE) + "\n")  # as procfs serves it
    params = tmp_path / "parameters"
    params.mkdir()
    for p in BASE["parameters"]:
        (params / p["name"]).write_text("x\n")
    monkeypatch.setattr(manifest, "LOADED_MANIFEST", str(proc))
    monkeypatch.setattr(manifest, "LOADED_PARAMETERS", params)
    assert main(["diff", "loaded", "loaded"]) == 0
    capsys.readouterr()
    (params / "extra_knob").write_text("1\n")
    (params / "uevents").unlink()
    assert main(["diff", "loaded", _write(tmp_path, "b.json", BASE)]) == 2
    err = capsys.readouterr().err
    assert ("manifest disagrees with" in err and "not in the manifest: extra_knob" in err
            and "not a module parameter: uevents" in err), err
