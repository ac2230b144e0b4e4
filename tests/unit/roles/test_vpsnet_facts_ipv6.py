"""vpsnet_facts on IPv6-only and dual-stack hosts (issue 22), and ENA's PCI ids.

The IP version of the metadata request is decided from the host's own route
tables (recorded here as text); the IPv6 endpoint is a fake service on ::1,
never a real address: the tests override it as the IPv4 tests override
169.254.169.254 with 127.0.0.1.
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import pytest
from ansible_collections.vpsnet.fleet.plugins.module_utils import vpsnet_metadata_route as routes
from testlib.ipv6_loopback import ipv6_loopback
from testlib.vpsnet_facts_helpers import FIXTURES

HEADER = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
# 10.0.2.0/24 on eth0 and the default route via 10.0.2.2
ROUTE_DEFAULT = (HEADER + "eth0\t00000000\t0202000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
                 "eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n")
# the lab's guests: no default route, a host route to 169.254.169.254 only
ROUTE_LAB = (HEADER + "eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
             "eth0\tFEA9FEA9\t0202000A\t0007\t0\t0\t0\tFFFFFFFF\t0\t0\t0\n")
ROUTE_LAN_ONLY = HEADER + "eth0\t0002000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
# a default route that is down (flags 0) or a reject route counts for nothing
ROUTE_DEAD = (HEADER + "eth0\t00000000\t0202000A\t0002\t0\t0\t0\t00000000\t0\t0\t0\n"
              "lo\t00000000\t00000000\t0201\t0\t0\t0\t00000000\t0\t0\t0\n")

Z32 = "0" * 32


def v6(dest: str, plen: int, flags: int, dev: str) -> str:
    return f"{dest} {plen:02x} {Z32} 00 {Z32} 00000400 00000001 00000000 {flags:08x} {dev:>8}\n"


# IPv6-only EC2: the default route from the router advertisement
IPV6_DEFAULT = (v6("fe800000000000000000000000000000", 64, 0x1, "ens5")
                + v6(Z32, 0, 0x450003, "ens5"))
# the lab's ULA link and the kernel's unreachable default on lo
IPV6_ULA_ONLY = (v6("fd420000000000000000000000000000", 64, 0x1, "eth1")
                 + v6(Z32, 0, 0x200200, "lo"))


def tree(tmp_path: Path, base: str, route: str | None, ipv6_route: str | None) -> Path:
    """A recorded host (FIXTURES/base) with the given route tables."""
    root = tmp_path / base
    shutil.copytree(FIXTURES / base, root, symlinks=True)
    net = root / "proc" / "net"
    net.mkdir(parents=True, exist_ok=True)
    if route is not None:
        (net / "route").write_text(route)
    if ipv6_route is not None:
        (net / "ipv6_route").write_text(ipv6_route)
    return root




needs_ipv6 = pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")




# --------------------------------------------------------------------------- PCI ids


@pytest.mark.parametrize(("device", "label"), [
    ("0x1ec2", "ENA LLQ PF"), ("0x0ec2", "ENA PF"), ("0xec20", "ENA"), ("0xec21", "ENA LLQ VF")])
def test_every_ena_pci_id_of_the_driver_table_is_aws(vf, tmp_path, device, label):
    """ena_pci_id_tbl.h: PF 0ec2, LLQ PF 1ec2, VF ec20, LLQ VF ec21."""
    root = tree(tmp_path, "aws-nitro-ena", None, None)
    for dmi in (root / "sys/class/dmi/id").iterdir():
        dmi.write_text("\n")  # no DMI clue: only the NIC speaks
    pci = (root / "sys/class/net/ens5/device").resolve()
    (pci / "device").write_text(device + "\n")
    facts = vf.detect(str(root))
    assert f"pci ens5 1d0f:{device[2:]} {label} -> aws" in facts["evidence"], facts["evidence"]
    assert facts["nics"][0]["pci_id"] == f"1d0f:{device[2:]}"
    assert facts["provider"] == "aws"


# --------------------------------------------------------------------------- routes


@pytest.mark.parametrize(("text", "via"), [
    (ROUTE_DEFAULT, "eth0"), (ROUTE_LAB, "eth0"), (ROUTE_LAN_ONLY, None), (ROUTE_DEAD, None),
    (HEADER, None), ("", None), (HEADER + "eth0 zz 0 1 0 0 0 yy\nshort line\n", None)])
def test_ipv4_route_to_the_metadata_address(text, via):
    assert routes.ipv4_route_to(text, "169.254.169.254") == via


@pytest.mark.parametrize(("text", "via"), [
    (IPV6_DEFAULT, "ens5"), (IPV6_ULA_ONLY, None), ("", None),
    (v6("fd000ec2000000000000000000000000", 64, 0x1, "ens5"), "ens5"),
    (v6("fd000ec2000000000000000000000254", 128, 0x1, "ens5"), "ens5"),  # its /128
    (v6("fd000ec2000000000000000000000253", 128, 0x1, "ens5"), None),  # another /128
    ("zz " * 10 + "\n", None)])
def test_ipv6_route_to_the_metadata_address(text, via):
    assert routes.ipv6_route_to(text, "fd00:ec2::254") == via


@pytest.mark.parametrize(("route", "route6", "family", "why"), [
    (ROUTE_DEFAULT, IPV6_DEFAULT, "4", "IPv4 route to 169.254.169.254 via 'eth0'"),  # dual-stack
    (ROUTE_LAB, IPV6_ULA_ONLY, "4", "IPv4 route"),  # the lab's guests
    (None, IPV6_DEFAULT, "4", "no proc/net/route"),  # recorded trees without routes
    (HEADER, IPV6_DEFAULT, "6", "IPv6 route to fd00:ec2::254 via 'ens5'"),  # IPv6-only
    (ROUTE_LAN_ONLY, IPV6_DEFAULT, "6", "no IPv4 route to 169.254.169.254"),
    (HEADER, IPV6_ULA_ONLY, "4", "no route to 169.254.169.254 nor to fd00:ec2::254"),
    (HEADER, None, "4", "no route"),
])
def test_auto_family_from_the_hosts_routes(tmp_path, route, route6, family, why):
    root = tree(tmp_path, "kvm-plain", route, route6)
    got, evidence = routes.metadata_family(str(root))
    assert got == family
    assert evidence.startswith(f"metadata: IPv{family} (auto: ")
    assert why in evidence


@pytest.mark.parametrize("forced", ["4", "6"])
def test_forced_family_ignores_the_routes(tmp_path, forced):
    root = tree(tmp_path, "kvm-plain", ROUTE_DEFAULT if forced == "6" else HEADER, IPV6_DEFAULT)
    assert routes.metadata_family(str(root), forced) == (
        forced, f"metadata: IPv{forced} (forced by metadata_ip_version)")


# --------------------------------------------------------------------------- metadata over IPv6


@needs_ipv6
def test_ipv6_only_host_reads_imdsv2_on_the_ipv6_endpoint(vf, tmp_path, aws6, closed_port):
    srv, seen = aws6
    root = tree(tmp_path, "aws-nitro-ena", HEADER, IPV6_DEFAULT)
    probe = vf.MetadataProbe(f"http://127.0.0.1:{closed_port}", 2.0,
                             base_url6=f"http://[::1]:{srv.port}")
    facts = vf.detect(str(root), probe)
    assert (facts["region"], facts["zone"], facts["instance_type"]) == (
        "us-east-1", "us-east-1a", "m5.large")
    assert facts["metadata_reachable"] is True
    assert any(e.startswith("metadata: IPv6 (auto: ") for e in facts["evidence"])
    # IMDSv2 over IPv6 too: the token first, every GET carries it
    assert seen.requests[0][:2] == ("PUT", "/latest/api/token")
    assert all(r[2].get("X-aws-ec2-metadata-token") for r in seen.requests if r[0] == "GET")


@needs_ipv6
def test_dual_stack_host_keeps_ipv4(vf, tmp_path, aws_server, aws6):
    srv4, seen4 = aws_server
    srv6, seen6 = aws6
    root = tree(tmp_path, "aws-nitro-ena", ROUTE_DEFAULT, IPV6_DEFAULT)
    probe = vf.MetadataProbe(f"http://127.0.0.1:{srv4.port}", 2.0,
                             base_url6=f"http://[::1]:{srv6.port}")
    facts = vf.detect(str(root), probe)
    assert facts["region"] == "us-east-1"
    assert seen4.requests and not seen6.requests


@needs_ipv6
@pytest.mark.parametrize("forced", ["4", "6"])
def test_forcing_the_version(vf, tmp_path, aws_server, aws6, forced):
    srv4, seen4 = aws_server
    srv6, seen6 = aws6
    # routes that would pick the other version
    root = tree(tmp_path, "aws-nitro-ena", ROUTE_DEFAULT if forced == "6" else HEADER,
                IPV6_DEFAULT)
    probe = vf.MetadataProbe(f"http://127.0.0.1:{srv4.port}", 2.0,
                             base_url6=f"http://[::1]:{srv6.port}", ip_version=forced)
    facts = vf.detect(str(root), probe)
    assert facts["region"] == "us-east-1"
    assert bool(seen6.requests) == (forced == "6")
    assert bool(seen4.requests) == (forced == "4")


def test_gcp_is_not_asked_over_ipv6(vf, tmp_path, gcp_server):
    """GCP documents its metadata server on IPv4 only: local evidence decides."""
    srv, seen = gcp_server
    root = tree(tmp_path, "gcp-gvnic", HEADER, IPV6_DEFAULT)
    probe = vf.MetadataProbe(f"http://127.0.0.1:{srv.port}", 2.0,
                             base_url6=f"http://127.0.0.1:{srv.port}")
    facts = vf.detect(str(root), probe)
    assert facts["provider"] == "gcp"
    assert facts["zone"] is None and facts["metadata_reachable"] is False
    assert seen.requests == []
    assert any("not asked over IPv6" in e for e in facts["evidence"])


@needs_ipv6
def test_unknown_host_over_ipv6_asks_aws_only(vf, tmp_path, aws6):
    srv, seen = aws6
    root = tree(tmp_path, "kvm-plain", HEADER, IPV6_DEFAULT)
    probe = vf.MetadataProbe("http://127.0.0.1:9", 2.0, base_url6=f"http://[::1]:{srv.port}")
    facts = vf.detect(str(root), probe)
    assert facts["provider"] == "aws"
    assert not any(r[1].startswith("/computeMetadata") for r in seen.requests)


@needs_ipv6
@pytest.mark.parametrize("budget", [1.0, 2.0])
def test_silent_ipv6_endpoint_is_bounded_by_the_deadline(vf, tmp_path, budget):
    """A listener on ::1 that never answers: detection still ends within its budget."""
    root = tree(tmp_path, "aws-nitro-ena", HEADER, IPV6_DEFAULT)
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::1", 0))
        sock.listen(16)
        port = sock.getsockname()[1]
        probe = vf.MetadataProbe("http://127.0.0.1:9", budget, base_url6=f"http://[::1]:{port}")
        start = time.monotonic()
        facts = vf.detect(str(root), probe)
        wall = time.monotonic() - start
    assert wall < budget + 1.0, (wall, facts["evidence"])
    assert facts["provider"] == "aws" and facts["region"] is None
    assert facts["evidence"][-1] == "decision: aws"


@needs_ipv6
def test_closed_ipv6_endpoint_fails_fast(vf, tmp_path):
    with socket.socket(socket.AF_INET6) as sock:
        sock.bind(("::1", 0))
        port = sock.getsockname()[1]
    root = tree(tmp_path, "aws-nitro-ena", HEADER, IPV6_DEFAULT)
    probe = vf.MetadataProbe("http://127.0.0.1:9", 2.0, base_url6=f"http://[::1]:{port}")
    start = time.monotonic()
    facts = vf.detect(str(root), probe)
    assert time.monotonic() - start < 1.0
    assert any("ConnectionError" in e for e in facts["evidence"]), facts["evidence"]


# --------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(("params", "message"), [
    ({"metadata_url_ipv6": "http://[fd00:ec2::254"}, "metadata_url_ipv6 must be a plain http"),
    ({"metadata_url_ipv6": "http://[fd00:ec2::254]\n"}, "metadata_url_ipv6 must be a plain http"),
    ({"metadata_url_ipv6": "ftp://[::1]"}, "metadata_url_ipv6 must be a plain http(s) URL (not an"),
    ({"metadata_ip_version": "5"}, "metadata_ip_version must be one of auto, 4, 6, got '5'"),
    ({"metadata_ip_version": 6}, "metadata_ip_version must be one of auto, 4, 6, got '6'"),
])
def test_bad_ipv6_parameters_are_named(vf, params, message):
    base = {"metadata_timeout": 2.0, "metadata_url": "http://169.254.169.254",
            "metadata_url_ipv6": "http://[fd00:ec2::254]", "metadata_ip_version": "auto",
            "root": str(FIXTURES / "kvm-plain")}
    problem = vf.check_params({**base, **params})
    assert problem is not None and problem.startswith(message), problem


def test_default_ipv6_parameters_pass(vf):
    assert vf.check_params({"metadata_timeout": 2.0, "metadata_url": "http://169.254.169.254",
                            "metadata_url_ipv6": vf.AWS_IMDS_IPV6_URL,
                            "metadata_ip_version": "auto", "root": "/"}) is None
    assert vf.AWS_IMDS_IPV6_URL == "http://[fd00:ec2::254]"


@needs_ipv6
def test_unreachable_ipv4_endpoint_falls_back_to_ipv6(vf, tmp_path, aws6, closed_port):
    """A route to 169.254.169.254 (say a 169.254/16 link route on an IPv6-only
    instance) but nothing answers there: AWS is asked over IPv6 within the budget."""
    srv, seen = aws6
    root = tree(tmp_path, "aws-nitro-ena", ROUTE_LAB, IPV6_DEFAULT)
    probe = vf.MetadataProbe(f"http://127.0.0.1:{closed_port}", 2.0,
                             base_url6=f"http://[::1]:{srv.port}")
    facts = vf.detect(str(root), probe)
    assert facts["region"] == "us-east-1" and facts["metadata_reachable"] is True
    assert any(e.startswith("metadata: IPv4 endpoint unreachable; trying AWS over IPv6")
               for e in facts["evidence"]), facts["evidence"]
    assert seen.requests


@pytest.mark.parametrize(("route6", "forced"), [(IPV6_ULA_ONLY, "auto"), (IPV6_DEFAULT, "4"),
                                                (None, "auto")])
def test_no_ipv6_fallback_without_a_route_or_when_forced(vf, tmp_path, closed_port, route6,
                                                         forced):
    root = tree(tmp_path, "aws-nitro-ena", ROUTE_LAB, route6)
    probe = vf.MetadataProbe(f"http://127.0.0.1:{closed_port}", 2.0,
                             base_url6="http://127.0.0.1:9", ip_version=forced)
    facts = vf.detect(str(root), probe)
    assert not any("trying AWS over IPv6" in e for e in facts["evidence"])
    assert facts["region"] is None
