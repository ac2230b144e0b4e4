"""Spec validation: every bad field is refused with its own message."""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from vpsnet_lab import hostcheck, paths, specfile
from vpsnet_lab.hostcheck import check_host
from vpsnet_lab.paths import TOP
from vpsnet_lab.spec import SpecError
from vpsnet_lab.specparse import load, parse

GOOD: dict[str, Any] = {
    "name": "t",
    "base_port": 40022,
    "guests": [
        {"name": "a1", "cloud": "aws", "region": "us-east-1", "zone": "us-east-1a",
         "instance_type": "m5.large", "kernel": "6.1", "vcpus": 1, "memory_mb": 512,
         "nics": [{"queues": 4}, {"link": "g1"}],
         "forwards": [{"guest_port": 9000, "host_port": 40900}]},
        {"name": "g1", "cloud": "gcp", "region": "asia-east1", "zone": "asia-east1-b",
         "instance_type": "e2-standard-2", "kernel": "6.12", "vcpus": 1, "memory_mb": 512},
    ],
}


def problems(data: dict[str, Any], on_host: bool = False) -> list[str]:
    """The problems of DATA; ON_HOST: of running it on this machine too."""
    with pytest.raises(SpecError) as exc:
        spec = parse(data, "t.yml")
        if on_host:
            check_host(spec)
    return exc.value.problems


def mutate(path: tuple[Any, ...], value: Any, base: dict[str, Any] = GOOD) -> dict[str, Any]:
    """A deep copy of BASE with the field at PATH set to VALUE."""
    data = copy.deepcopy(base)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


def test_good_spec_parses_with_links_and_taps() -> None:
    spec = parse(GOOD, "t.yml")
    a1, g1 = spec.guests
    assert [n.kind for n in a1.nics] == ["tap", "link"]
    assert a1.nics[0].queues == 4 and a1.nics[0].netns
    assert g1.nics[0].link == "a1"  # the peer side is added automatically
    assert {a1.nics[1].address, g1.nics[0].address} == {"198.18.0.1/24", "198.18.0.2/24"}
    assert (spec.links[0].listener, spec.links[0].connector) == ("a1", "g1")
    assert (a1.ssh_port, g1.ssh_port) == (40022, 40023)


@pytest.mark.parametrize(("path", "value", "expected"), [
    (("guests", 0, "cloud"), "azure", "guests[0] (a1).cloud: unknown cloud 'azure'"),
    (("guests", 1, "kernel"), "5.10", "guests[1] (g1).kernel: unknown kernel '5.10'"),
    (("guests", 1, "name"), "a1", "guests[1].name: duplicate guest name 'a1'"),
    (("guests", 0, "name"), "A_1", "guests[0].name: 'A_1' is not a valid host name"),
    (("guests", 0, "zone"), "us-west-2a", "zone: 'us-west-2a' is not a zone of region"),
    (("guests", 0, "region"), "useast", "region: 'useast' is not a aws region name"),
    (("guests", 0, "vcpus"), 0, "vcpus: 0 is out of range"),
    (("guests", 0, "memory_mb"), "lots", "memory_mb: 'lots' is not an integer"),
    (("guests", 0, "nics"), [{"queues": 64}], "nics[0].queues: 64 is out of range"),
    (("guests", 0, "nics"), [{"link": "nobody"}], "nics[0].link: no guest named 'nobody'"),
    (("guests", 0, "nics"), [{"link": "a1"}], "a guest cannot link to itself"),
    (("guests", 0, "colour"), "red", "guests[0] (a1).colour: unknown key"),
    (("guests", 1, "ssh_port"), 40022, "ssh_port: port 40022 clashes with guests[0] (a1)"),
    (("guests",), [], "guests: expected a non-empty list"),
    (("guests", 1, "forwards"), [{"guest_port": 80, "host_port": 40900}],
     "guests[1] (g1).forwards[0].host_port: port 40900 clashes with guests[0] (a1).forwards[0]"),
    (("guests", 1, "forwards"), [{"guest_port": 0, "host_port": 40901}],
     "forwards[0].guest_port: 0 is out of range"),
])
def test_each_bad_field_has_its_own_message(path: tuple[Any, ...], value: Any,
                                            expected: str) -> None:
    found = problems(mutate(path, value))
    assert any(expected in p for p in found), found


def test_several_bad_fields_are_all_reported() -> None:
    data = mutate(("guests", 0, "cloud"), "azure")
    data["guests"][1]["kernel"] = "4.19"
    found = problems(data)
    assert len(found) == 2, found
    assert "t.yml" in str(SpecError("t.yml", found))


def test_port_in_use_on_the_host_is_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        found = problems(mutate(("guests", 0, "ssh_port"), busy), on_host=True)
    assert any(f"port {busy} is already in use" in p for p in found), found


def test_more_memory_than_the_machine_has_is_refused() -> None:
    found = problems(mutate(("guests", 0, "memory_mb"), 1 << 20), on_host=True)
    assert any("memory_mb: the guests need" in p for p in found), found


def test_parsing_looks_at_nothing_on_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object) -> bool:
        raise AssertionError("parse looked at the host")

    for module, name in [(hostcheck, "port_in_use"), (hostcheck, "host_memory_mb"),
                         (paths, "apt_knows")]:
        monkeypatch.setattr(module, name, refuse)
    demanding = mutate(("guests", 0, "kernel"), "6.1.0-99-cloud-amd64")
    demanding["guests"][0]["memory_mb"] = 1 << 20
    assert parse(demanding, "t.yml").guests[0].memory_mb == 1 << 20


def test_default_spec_is_valid() -> None:
    spec = load(TOP / "lab/specs/default.yml")
    clouds = [(g.cloud, g.region, g.kernel) for g in spec.guests]
    assert clouds.count(("aws", "us-east-1", "6.1")) == 2
    assert clouds.count(("gcp", "asia-east1", "6.12")) == 2
    assert any(n.queues == 4 for g in spec.guests for n in g.nics)


# --- spec files: every malformed file is refused with one line naming the field ---

def refused(tmp_path: Path, content: str | bytes) -> list[str]:
    path = tmp_path / "bad.yml"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    with pytest.raises(SpecError) as exc:
        load(path)
    assert exc.value.source == str(path)
    for line in str(exc.value).splitlines():
        assert line.startswith(f"{path}: ") and line.isprintable(), line
    return exc.value.problems


def good_text(**changes: Any) -> str:
    data = copy.deepcopy(GOOD)
    data["guests"][0].update(changes)
    return yaml.safe_dump(data, sort_keys=False)


def test_a_dumped_good_spec_loads_as_the_dict_parses(tmp_path: Path) -> None:
    path = tmp_path / "t.yml"
    path.write_text(good_text())
    assert load(path) == parse(GOOD, str(path))


def billion_laughs(levels: int = 9) -> str:
    lines = ['a0: &a0 "lol"']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + f"\nguests: *a{levels}\n"


@pytest.mark.parametrize(("content", "expected"), [
    (billion_laughs(), "a0 (line 1): anchor &a0: anchors and aliases are not allowed"),
    ("guests:\n  - &g {name: a1}\n  - *g\n", "guests[0] (line 2): anchor &g"),
    ("guests: *nowhere\n", "guests (line 1): alias *nowhere: anchors and aliases"),
    ("guests: " + "[" * 5000 + "]" * 5000 + "\n", "nested deeper than 16 levels"),
    ("guests:\n" + "".join("  " * i + f"- k{i}:\n" for i in range(40)),
     "guests[0].k0[0].k1[0].k2[0].k3[0].k4[0].k5[0].k6[0] (line 9): nested deeper than 16 "
     "levels"),
    (b"name: caf\xe9\nguests: []\n", "line 1: not UTF-8 (byte 0xe9)"),
    (b"\xff\xfen\x00a\x00", "line 1: not UTF-8 (byte 0xff)"),
    ("guests: [" + "{}, " * 6000 + "]\n", "guests[4997] (line 1): more than 5000 values"),
    ("1: x\nguests: []\n", "top level (line 1): key '1' is a number, not a string"),
    ("guests:\n  - {name: a1, true: 1}\n", "guests[0] (line 2): key 'true' is a boolean"),
    ("guests:\n  - {name: a1, null: 1}\n", "key 'null' is null"),
    ("? [a, b]\n: 1\n", "top level (line 1): a key is a list"),
    ("<<: {name: x}\nguests: []\n", "key '<<' is a merge"),
    ("name: a\nguests: []\nname: b\n", "name (line 3): duplicate key (first on line 1)"),
    ("guests: [{name: a1}]\nregions: {us-east-1: {rtt_ms: 1, rtt_ms: 2}}\n",
     "regions.us-east-1.rtt_ms (line 2): duplicate key"),
    ("name: 2024-13-45\n", "name (line 1): '2024-13-45' is a YAML timestamp"),
    ("name: !!binary aGk=\n", "is a YAML binary"),
    ("name: !!python/object:os.system x\n", "is a YAML python/object:os.system"),
    ("guests: !!set {a}\n", "guests (line 1): a YAML set"),
    ("name: !!int abc\n", "name (line 1): 'abc' is not a valid int"),
    ("name: !!int\n", "name (line 1): '' is not a valid int"),  # found by the fuzzer
    ("name: !!float ''\n", "name (line 1): '' is not a valid float"),
    ("name: !!bool maybe\n", "name (line 1): 'maybe' is not a valid bool"),
    ("base_port: " + "9" * 5000 + "\n", "base_port (line 1): '99999"),
    ("guests: [\n", "line 2, column 1: invalid YAML: while parsing a flow node"),
    ("a: b: c\n", "line 1, column 5: invalid YAML: mapping values are not allowed here"),
    ("name: a\x07\n", "line 1: character '\\x07' is not allowed in YAML"),
    # YAML reads NEL and U+2028 in a quoted value as a space (found by the fuzzer)
    ("guests: []\nname: 'a\x85'\n",
     "name (line 2): character '\\x85' is not allowed in a lab spec"),
    ("name: 'a\u2028b'\n", "name (line 1): character '\\u2028' is not allowed in a lab spec"),
    ("--- {}\n--- {}\n", "invalid YAML: expected a single document"),
    (good_text(kernel=6.10).replace("6.1\n", "6.10\n"),
     'guests[0] (a1).kernel: the number 6.10 (YAML reads it as 6.1): kernel versions must be '
     'strings, quote it: kernel: "6.10"'),
    (good_text().replace("kernel: '6.1'", "kernel: 6.1"), 'quote it: kernel: "6.1"'),
    (good_text().replace("vcpus: 1", "vcpus: yes"), "guests[0] (a1).vcpus: True is not an "
                                                    "integer (a boolean)"),
    (good_text().replace("vcpus: 1", "vcpus: .nan"), "guests[0] (a1).vcpus: .nan is not an "
                                                     "integer"),
    (good_text().replace("memory_mb: 512", "memory_mb: 1.0e+3"),
     "memory_mb: 1.0e+3 is not an integer"),
    (good_text().replace("name: a1", 'name: "a1\\n"'), "guests[0].name: 'a1\\n' is not a valid"),
    (good_text().replace("m5.large", '"m5.large,serial=x"'),
     "instance_type: 'm5.large,serial=x' is not an instance type"),
])
def test_each_malformed_file_has_a_one_line_error(tmp_path: Path, content: str | bytes,
                                                  expected: str) -> None:
    found = refused(tmp_path, content)
    assert any(expected in p for p in found), found


def test_files_that_cannot_be_read_are_refused(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    def problem(path: Path) -> str:
        with pytest.raises(SpecError) as exc:
            load(path)
        assert len(exc.value.problems) == 1
        return exc.value.problems[0]

    assert problem(tmp_path / "missing.yml") == "cannot read: No such file or directory"
    assert problem(tmp_path) == "cannot read: a directory"
    os.mkfifo(tmp_path / "fifo")  # must not block in open()
    assert problem(tmp_path / "fifo") == "cannot read: not a regular file"
    big = tmp_path / "big.yml"
    big.write_text("# " + "x" * specfile.MAX_BYTES)
    assert problem(big) == f"larger than {specfile.MAX_BYTES} bytes: not a lab spec"

    def denied(*_: Any) -> int:  # the tests run as root, where chmod 000 still reads
        raise PermissionError(13, "Permission denied")
    monkeypatch.setattr(specfile.os, "open", denied)
    assert problem(big) == "cannot read: Permission denied"


@pytest.mark.parametrize(("path", "value", "expected"), [
    (("name",), "t\n", "name: 't\\n' is not a valid lab name"),
    (("guests", 0, "name"), "a1\n", "guests[0].name: 'a1\\n' is not a valid host name"),
    (("guests", 0, "region"), "us-east-1\n", "region: 'us-east-1\\n' holds control characters"),
    (("guests", 0, "zone"), "us-east-1a\n", "zone: 'us-east-1a\\n' holds control"),
    (("guests", 0, "kernel"), "6.1.0-47-cloud-amd64\n", "kernel: unknown kernel "
                                                        "'6.1.0-47-cloud-amd64\\n'"),
    (("guests", 0, "kernel"), 6.1, 'kernel: the number 6.1: kernel versions must be strings'),
    (("guests", 0, "kernel"), 6, 'quote it: kernel: "6"'),
    (("guests", 0, "instance_type"), "m5.large\n", "instance_type: 'm5.large\\n' is not"),
    (("guests", 0, "cloud"), "aws\n", "cloud: unknown cloud 'aws\\n'"),
    (("guests", 0, "nics"), [{"link": "g1\n"}], "nics[0].link: no guest named 'g1\\n'"),
    (("guests", 0, "vcpus"), True, "vcpus: True is not an integer (a boolean)"),
    (("guests", 0, "vcpus"), float("nan"), "vcpus: nan is not an integer"),
    (("guests", 0, "memory_mb"), float("inf"), "memory_mb: inf is not an integer"),
    pytest.param(("guests", 0, "memory_mb"), 10 ** 5000,
                 "memory_mb: an integer of 16610 bits is out", id="huge-int"),
    (("guests", 0, "ssh_port"), 70000, "ssh_port: 70000 is out of range 1024..65535"),
    (("guests", 0, "nics"), [{"queues": 17}], "queues: 17 is out of range 1..16"),
    (("base_port",), 1.5, "base_port: 1.5 is not an integer"),
    (("regions",), {"us-east-1": {"rtt_ms": -1}}, "regions.us-east-1.rtt_ms: -1 is out"),
    (("regions",), {"mars\n": {}}, "regions.'mars\\n': 'mars\\n' is not an aws or gcp region"),
    (("services",), [{"name": "repo", "host_port": False}], "host_port: False is not an int"),
    (("guests", 1, "mok_certs"), ["/x\n.der"], "mok_certs[0]: '/x\\n.der' holds control"),
    (("guests",), [{"name": f"g{i}"} for i in range(33)], "guests: 33 guests: at most 32"),
    (("services",), [{"name": "s", "host_port": 2000 + i} for i in range(17)],
     "services: 17 services: at most 16"),
])
def test_field_types_full_matches_and_ranges(path: tuple[Any, ...], value: Any,
                                             expected: str) -> None:
    found = problems(mutate(path, value))
    assert any(expected in p for p in found), found
    assert all(p.isprintable() for p in found), found


def test_keys_of_any_type_from_code_are_refused_not_crashed() -> None:
    data: dict[Any, Any] = {**GOOD, 1: "x", None: 2, (1, 2): 3}
    data["guests"] = [{**GOOD["guests"][1], False: 1}]
    data["regions"] = {7: {}}
    found = problems(data)
    assert {"top level: key 1 is not a string", "top level: key None is not a string",
            "top level: a key is a list, not a string", "guests[0] (g1): key False is not a string",
            "regions: key 7 is not a string"} <= set(found), found


def test_links_beyond_the_nic_limit_are_refused() -> None:
    hub = {**GOOD["guests"][0], "name": "hub", "nics": [], "forwards": []}
    spokes = [{**GOOD["guests"][1], "name": f"s{i}", "nics": [{"link": "hub"}]}
              for i in range(8)]
    found = problems({"name": "t", "base_port": 40022, "guests": [hub, *spokes]})
    assert found == ["guests[0] (hub).nics: 8 extra NICs (links from other guests included): "
                     "at most 7"], found


CLI_CASES = {
    "bomb.yml": (billion_laughs(), "a0 (line 1): anchor &a0"),
    "latin1.yml": (b"name: caf\xe9\n", "line 1: not UTF-8 (byte 0xe9)"),
    "kernel.yml": (good_text().replace("kernel: '6.1'", "kernel: 6.10"),
                   'guests[0] (a1).kernel: the number 6.10 (YAML reads it as 6.1)'),
    "keys.yml": ("1: x\n", "top level (line 1): key '1' is a number"),
    "deep.yml": ("guests: " + "[" * 3000 + "]" * 3000, "nested deeper than 16 levels"),
    "missing.yml": (None, "cannot read: No such file or directory"),
    "dir.yml": ("dir", "cannot read: a directory"),
}


def test_cli_up_prints_one_line_per_problem_and_exits_2(tmp_path: Path) -> None:
    for name, (content, expected) in CLI_CASES.items():
        path = tmp_path / name
        if content == "dir":
            path.mkdir()
        elif content is not None:
            path.write_bytes(content.encode() if isinstance(content, str) else content)
        proc = subprocess.run(
            [sys.executable, "-m", "vpsnet_lab.cli", "--state", str(tmp_path / "state"), "up",
             "--no-inventory", str(path)], capture_output=True, text=True, check=False,
            env={**os.environ, "PYTHONPATH": str(TOP / "lab")}, timeout=120)
        assert proc.returncode == 2, (name, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stdout == "", (name, proc.stderr)
        lines = proc.stderr.splitlines()
        assert lines and all(line.startswith(f"vpsnet-lab: {path}: ") for line in lines), lines
        assert any(expected in line for line in lines), (name, lines)
    assert not (tmp_path / "state").exists()  # nothing started
