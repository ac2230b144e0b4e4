"""bench/wan.py's IPv6 leg (issue 22), without booting guests: the legs of a
run, the client's command over IPv4 (unchanged) and IPv6 (ping -6, iperf3 -6 to
the link's IPv6 address), the summary key PROFILE-ipv6, and the address the
bench aims at being the one the lab gives the server's end of the link."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from testlib.folder_modules import BENCH, load_from

from vpsnet_lab.specparse import parse

wan = load_from(BENCH, "wan")
link = load_from(BENCH, "wan_link")
measure = load_from(BENCH, "wan_measure")
summary_of = load_from(BENCH, "wan_summary")
guests = load_from(BENCH, "wan_guests")


def test_legs_add_one_ipv6_profile_last() -> None:
    assert link.legs(["transpacific", "clean"], None) == [
        ("transpacific", "transpacific", False), ("clean", "clean", False)]
    assert link.legs(["transpacific", "clean"], "clean") == [
        ("transpacific", "transpacific", False), ("clean", "clean", False),
        ("clean-ipv6", "clean", True)]
    # an IPv6 profile need not be among the IPv4 ones
    assert link.legs(["clean"], "regional")[-1] == ("regional-ipv6", "regional", True)


def test_ipv4_command_is_as_before() -> None:
    assert measure.measure_command(20, False, False) == (
        "ping -n -i 0.2 -c 100 198.18.0.2 > /tmp/ping.txt 2>&1 & "
        "iperf3 -c 198.18.0.2 -t 20 -J; wait")


def test_ipv6_command_uses_the_links_ipv6_address() -> None:
    cmd = measure.measure_command(20, True, True)
    assert cmd == (
        "ping -6 -n -i 0.2 -c 100 fd42::2 > /tmp/ping.txt 2>&1 & "
        "ping -6 -n -i 0.2 -c 100 -Q 0x10 fd42::2 > /tmp/ping-bypass.txt 2>&1 & "
        "iperf3 -6 -c fd42::2 -t 20 -J; wait")
    assert "198.18" not in cmd


def test_bench_aims_at_the_servers_end_of_the_link() -> None:
    lab = parse(link.spec(19522), "bench/wan.py")
    server_nic = lab.guest(link.SERVER).nics[0]
    assert server_nic.address.split("/")[0] == link.SERVER_ADDR
    assert server_nic.address6.split("/")[0] == link.SERVER_ADDR6
    client_nic = lab.guest(link.CLIENT).nics[0]
    assert client_nic.peer_address6.split("/")[0] == link.SERVER_ADDR6


def test_ipv6_ping_output_is_parsed() -> None:
    text = ("PING fd42::2(fd42::2) 56 data bytes\n"
            "64 bytes from fd42::2: icmp_seq=1 ttl=64 time=0.512 ms\n"
            "64 bytes from fd42::2: icmp_seq=2 ttl=64 time=1.25 ms\n")
    assert measure.ping_series(text) == [(1, 0.512), (2, 1.25)]


def run(profile: str, config: str, goodput: float, p99: float) -> dict[str, Any]:
    return {"profile": profile, "config": config, "goodput_mbit": goodput, "p99_rtt_ms": p99,
            "p99_rtt_steady_ms": p99}


def test_summary_has_the_ipv6_profile_beside_the_others() -> None:
    runs = [run(p, c, g, r) for p, scale in (("clean", 1.0), ("clean-ipv6", 0.9))
            for c, g, r in (("defaults", 100 * scale, 50), ("tuned-network-throughput",
                                                              110 * scale, 60),
                            ("vpsnet", 100 * scale, 5))]
    summary = summary_of.summarise(runs, ["clean", "clean-ipv6"], guests.CONFIGS)
    assert list(summary) == ["clean", "clean-ipv6"]
    assert summary["clean-ipv6"]["goodput_mbit"]["vpsnet"] == 90.0
    assert summary["clean-ipv6"]["vpsnet_vs_clean"] == 0.9  # against IPv4's clean vpsnet


def test_ipv6_flag_refuses_unknown_profiles(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["wan.py", "--ipv6", "lunar"])
    with pytest.raises(SystemExit) as exc:
        wan.main()
    assert exc.value.code == 2
    assert "--ipv6: invalid choice: 'lunar'" in capsys.readouterr().err
