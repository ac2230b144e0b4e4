"""Inventory generation and the QEMU command line's network rules."""

from __future__ import annotations

from pathlib import Path

import yaml

from vpsnet_lab import inventory
from vpsnet_lab.image import Image
from vpsnet_lab.qemu import guest_config, qemu_command, smbios_args
from vpsnet_lab.specparse import parse

from .test_spec import GOOD

SPEC = parse({**GOOD, "regions": {"us-east-1": {"rtt_ms": 180, "bandwidth_mbit": 1000}},
              "services": [{"name": "repo", "guest_port": 80, "host_port": 48080}]},
             "t.yml")


def test_inventory_groups_by_cloud_and_region(tmp_path: Path) -> None:
    path = inventory.write(SPEC, tmp_path / "hosts.yml")
    inv = yaml.safe_load(path.read_text())["all"]
    assert set(inv["hosts"]) == {"a1", "g1"}
    assert inv["hosts"]["a1"]["ansible_port"] == 40022
    assert inv["hosts"]["a1"]["ansible_host"] == "127.0.0.1"
    children = inv["children"]
    assert list(children["aws"]["hosts"]) == ["a1"]
    assert list(children["gcp"]["hosts"]) == ["g1"]
    use1 = children["region_us_east_1"]
    assert list(use1["hosts"]) == ["a1"]
    assert use1["vars"] == {"vpsnet_region": "us-east-1", "vpsnet_region_rtt_ms": 180,
                            "vpsnet_region_bandwidth_mbit": 1000}
    assert children["region_asia_east1"]["vars"] == {"vpsnet_region": "asia-east1"}
    assert inv["vars"]["vpsnet_rollout_regions"] == ["us-east-1", "asia-east1"]
    nics = inv["hosts"]["a1"]["vpsnet_lab_nics"]
    assert [(n["name"], n["kind"], n["queues"]) for n in nics] == [
        ("eth1", "tap", 4), ("eth2", "link", 1)]


def _cmd() -> list[str]:
    img = Image("6.1", "6.1.0-0-cloud-amd64", Path("/img"))
    a1 = SPEC.guests[0]
    return qemu_command(SPEC, a1, img, Path("/state/a1"), 50000, "ssh-ed25519 AAAA k",
                        {1: [7, 8, 9, 10]})


def test_user_networking_is_restricted_to_host_loopback() -> None:
    cmd = _cmd()
    netdevs = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "-netdev"]
    user = [n for n in netdevs if n.startswith("user,")]
    assert len(user) == 1
    opts = user[0].split(",")
    assert "restrict=on" in opts
    fwds = [o for o in opts if o.startswith(("hostfwd=", "guestfwd="))]
    assert "hostfwd=tcp:127.0.0.1:40022-:22" in fwds
    assert "hostfwd=tcp:127.0.0.1:40900-:9000" in fwds
    assert "guestfwd=tcp:10.0.2.100:80-cmd:/bin/busybox nc 127.0.0.1 50000" in fwds
    assert "guestfwd=tcp:10.0.2.101:80-cmd:/bin/busybox nc 127.0.0.1 48080" in fwds
    for fwd in fwds:  # every forward ends on the host's loopback
        assert "127.0.0.1" in fwd, fwd
    links = [n for n in netdevs if n.startswith("stream,")]
    # guest links go through the lab helper's relay on a unix socket: nothing on the network
    assert links == ["stream,id=n2,server=off,addr.type=unix,addr.path=/state/link0.sock"]
    assert "tap,id=n1,fds=7:8:9:10,vhost=off" in netdevs


def test_multiqueue_device_and_cloud_identity() -> None:
    cmd = _cmd()
    devices = [cmd[i + 1] for i, arg in enumerate(cmd) if arg == "-device"]
    assert any("netdev=n1" in d and "mq=on" in d and "vectors=10" in d for d in devices)
    smbios = smbios_args(SPEC, SPEC.guests[0])
    assert "manufacturer=Amazon EC2,product=m5.large" in smbios[3]
    assert "uuid=ec2" in smbios[3]
    assert "manufacturer=Google,product=Google Compute Engine" in smbios_args(
        SPEC, SPEC.guests[1])[3]
    assert cmd[cmd.index("-accel"):cmd.index("-accel") + 2] == ["-accel", "tcg"]


def test_guest_config_round_trips() -> None:
    import base64
    import json

    cfg = json.loads(base64.urlsafe_b64decode(guest_config(SPEC, SPEC.guests[0], "key")))
    assert cfg["hostname"] == "a1" and cfg["metadata"] == "10.0.2.100"
    assert cfg["nics"][0] == {"name": "eth1", "address": "198.19.1.2/24",
                              "address6": "fd42:0:0:101::2/64", "queues": 4}
