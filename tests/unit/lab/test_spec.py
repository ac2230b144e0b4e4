"""Spec validation: every bad field is refused with its own message."""

from __future__ import annotations

import copy
import socket
from typing import Any

import pytest

from vpsnet_lab.spec import SpecError, parse

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


def problems(data: dict[str, Any], check_host: bool = False) -> list[str]:
    with pytest.raises(SpecError) as exc:
        parse(data, "t.yml", check_host=check_host)
    return exc.value.problems


def mutate(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


def test_good_spec_parses_with_links_and_taps() -> None:
    spec = parse(GOOD, "t.yml", check_host=False)
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
        found = problems(mutate(("guests", 0, "ssh_port"), busy), check_host=True)
    assert any(f"port {busy} is already in use" in p for p in found), found


def test_more_memory_than_the_machine_has_is_refused() -> None:
    found = problems(mutate(("guests", 0, "memory_mb"), 1 << 20), check_host=True)
    assert any("memory_mb: the guests need" in p for p in found), found


def test_default_spec_is_valid() -> None:
    from vpsnet_lab.paths import TOP
    from vpsnet_lab.spec import load

    spec = load(TOP / "lab/specs/default.yml", check_host=False)
    clouds = [(g.cloud, g.region, g.kernel) for g in spec.guests]
    assert clouds.count(("aws", "us-east-1", "6.1")) == 2
    assert clouds.count(("gcp", "asia-east1", "6.12")) == 2
    assert any(n.queues == 4 for g in spec.guests for n in g.nics)
