"""The lab's IPv6 plan (issue 22): every extra NIC gets a ULA /64 address beside
its IPv4 one, all in fd42::/48 (links fd42:0:0:<link>::/64, taps
fd42:0:0:<0x100 + 8*guest+nic>::/64, ends ::1 and ::2 as in IPv4), handed to
the guest's boot config, the inventory and the tap's host side, and configured
in the guest by vpsnet-lab-init."""

from __future__ import annotations

import base64
import contextlib
import copy
import ipaddress
import json
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from vpsnet_lab import inventory, netns
from vpsnet_lab.qemu import guest_config
from vpsnet_lab.spec import Spec
from vpsnet_lab.specparse import parse

from .test_spec import GOOD

INIT = Path(__file__).resolve().parents[3] / "lab/vpsnet_lab/guest/vpsnet-lab-init"


def three_linked() -> dict[str, Any]:
    """a1 - g1 (link 0), a1 - a2 (link 1), g1 - a2 (link 2); a1 also has a tap."""
    data = copy.deepcopy(GOOD)
    data["guests"][0]["nics"] = [{"queues": 4}, {"link": "g1"}, {"link": "a2"}]
    data["guests"][1]["nics"] = [{"link": "a2"}]
    data["guests"].append({**data["guests"][0], "name": "a2", "nics": [{"queues": 2}],
                           "forwards": []})
    return data


def spec3() -> Spec:
    return parse(three_linked(), "t.yml")


def test_link_zero_is_fd42_1_and_2() -> None:
    spec = parse(GOOD, "t.yml")
    a1, g1 = spec.guests
    link_a, link_g = a1.nics[1], g1.nics[0]
    assert (link_a.address6, link_a.peer_address6) == ("fd42::1/64", "fd42::2/64")
    assert (link_g.address6, link_g.peer_address6) == ("fd42::2/64", "fd42::1/64")
    # the IPv4 plan is untouched
    assert (link_a.address, link_g.address) == ("198.18.0.1/24", "198.18.0.2/24")


def test_taps_get_their_own_64() -> None:
    a1 = parse(GOOD, "t.yml").guests[0]
    tap = a1.nics[0]
    assert tap.kind == "tap"
    assert (tap.address6, tap.peer_address6) == ("fd42:0:0:101::2/64", "fd42:0:0:101::1/64")
    assert (tap.address, tap.peer_address) == ("198.19.1.2/24", "198.19.1.1/24")


def test_every_nic_has_a_unique_ula_64_shared_with_its_peer_only() -> None:
    spec = spec3()
    lab48 = ipaddress.IPv6Network("fd42::/48")
    nets: dict[ipaddress.IPv6Network, list[str]] = {}
    links = []
    for g in spec.guests:
        for n in g.nics:
            assert n.address6 and n.peer_address6, (g.name, n)
            mine = ipaddress.IPv6Interface(n.address6)
            peer = ipaddress.IPv6Interface(n.peer_address6)
            assert mine.network == peer.network and mine.ip != peer.ip
            assert mine.network.prefixlen == 64 and mine.network.subnet_of(lab48)
            assert mine.ip.is_private and not mine.ip.is_link_local
            nets.setdefault(mine.network, []).append(f"{g.name}/eth{n.index}")
            if n.link:
                links.append(n)
    # a link's /64 appears on both ends, a tap's on one guest only
    assert sorted(len(v) for v in nets.values()) == [1, 1, 2, 2, 2]
    assert {str(ipaddress.IPv6Interface(n.address6).network) for n in links} == {
        "fd42::/64", "fd42:0:0:1::/64", "fd42:0:0:2::/64"}


def test_guest_config_carries_address6() -> None:
    spec = parse(GOOD, "t.yml")
    cfg = json.loads(base64.urlsafe_b64decode(guest_config(spec, spec.guests[1], "key")))
    assert cfg["nics"] == [{"name": "eth1", "address": "198.18.0.2/24",
                            "address6": "fd42::2/64", "queues": 1}]


def test_inventory_lists_ipv6_addresses(tmp_path: Path) -> None:
    inv = inventory.build(parse(GOOD, "t.yml"))
    nics = inv["all"]["hosts"]["g1"]["vpsnet_lab_nics"]
    assert nics[0]["address6"] == "fd42::2/64" and nics[0]["peer_address6"] == "fd42::1/64"


def load_init() -> ModuleType:
    loader = SourceFileLoader("vpsnet_lab_init", str(INIT))
    spec = spec_from_loader("vpsnet_lab_init", loader)
    assert spec is not None
    module = module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_guest_init_adds_the_ipv6_address_without_dad() -> None:
    init = load_init()
    cmds = init.nic_commands({"name": "eth1", "address": "198.18.0.1/24",
                              "address6": "fd42::1/64", "queues": 1})
    assert cmds == [
        (["ip", "link", "set", "eth1", "up"], True),
        (["ip", "addr", "replace", "198.18.0.1/24", "dev", "eth1"], True),
        # not required: a guest kernel without IPv6 still boots its IPv4 lab
        (["ip", "-6", "addr", "replace", "fd42::1/64", "dev", "eth1", "nodad"], False),
    ]


def test_guest_init_without_address6_is_as_before() -> None:
    init = load_init()
    cmds = init.nic_commands({"name": "eth1", "address": "198.19.1.2/24", "queues": 4})
    assert [c for c, _ in cmds] == [
        ["ip", "link", "set", "eth1", "up"],
        ["ip", "addr", "replace", "198.19.1.2/24", "dev", "eth1"],
        ["ethtool", "-L", "eth1", "combined", "4"]]


def test_tap_host_side_gets_the_ipv6_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """open_mq_tap addresses the host end of the tap in both families (no root
    needed here: the namespace, tun device and ip are stand-ins)."""
    calls: list[tuple[tuple[str, ...], str | None]] = []
    monkeypatch.setattr(netns, "_inside", lambda name: contextlib.nullcontext())
    monkeypatch.setattr(netns.os, "open", lambda path, flags: 99)
    monkeypatch.setattr(netns.fcntl, "ioctl", lambda fd, req, arg: 0)
    monkeypatch.setattr(netns.os, "set_inheritable", lambda fd, flag: None)
    monkeypatch.setattr(netns, "_ip", lambda *args, netns=None: calls.append((args, netns)))
    fds = netns.open_mq_tap("ns1", "tap1", 2, "198.19.1.1/24", "fd42:0:0:101::1/64")
    assert fds == [99, 99]
    assert calls == [
        (("addr", "add", "198.19.1.1/24", "dev", "tap1"), "ns1"),
        (("addr", "add", "fd42:0:0:101::1/64", "dev", "tap1", "nodad"), "ns1"),
        (("link", "set", "tap1", "up"), "ns1"),
    ]
