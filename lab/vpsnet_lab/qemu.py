"""The QEMU side of a lab guest, pure and unit-tested: its cloud identity (DMI
and metadata agree on it), MACs, NIC devices, the config vpsnet-lab-init reads
and the full command line. Imported by fleet.py and inventory.py."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from . import accel as accels
from . import image as images
from . import secureboot
from .spec import Guest, Link, Nic, Spec

METADATA_GUEST_ADDR = "10.0.2.100"
BUSYBOX = "/bin/busybox"
QEMU = "qemu-system-x86_64"


def _seed(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()


def identity(spec: Spec, g: Guest) -> dict[str, str]:
    """The instance identity the guest's metadata service and DMI agree on."""
    seed = _seed(spec.name, g.name)
    instance_id = f"i-0{seed[:16]}" if g.cloud == "aws" else str(int(seed[:15], 16))
    return {"cloud": g.cloud, "name": g.name, "region": g.region, "zone": g.zone,
            "instance_type": g.instance_type, "instance_id": instance_id}


def smbios_args(spec: Spec, g: Guest) -> list[str]:
    seed = _seed(spec.name, g.name, "uuid")
    if g.cloud == "aws":
        uuid = f"ec2{seed[3:8]}-{seed[8:12]}-{seed[12:16]}-{seed[16:20]}-{seed[20:32]}"
        vendor, product = "Amazon EC2", g.instance_type
    else:
        uuid = f"{seed[:8]}-{seed[8:12]}-{seed[12:16]}-{seed[16:20]}-{seed[20:32]}"
        vendor, product = "Google", "Google Compute Engine"
    return ["-smbios", f"type=0,vendor={vendor}",
            "-smbios", f"type=1,manufacturer={vendor},product={product},uuid={uuid}",
            "-smbios", f"type=3,manufacturer={vendor},asset={vendor}"]


def mac(spec: Spec, g: Guest, nic: int) -> str:
    lab = int(_seed(spec.name)[:2], 16)
    return f"52:54:00:{lab:02x}:{g.index:02x}:{nic:02x}"


def nic_device(spec: Spec, g: Guest, nic: Nic | None) -> dict[str, Any]:
    index = nic.index if nic else 0
    dev: dict[str, Any] = {"driver": "virtio-net-pci", "netdev": f"n{index}", "id": f"nic{index}",
                           "mac": mac(spec, g, index)}
    if nic and nic.queues > 1:
        dev.update(mq="on", vectors=str(2 * nic.queues + 2))
    return dev


def _device_arg(dev: dict[str, Any]) -> str:
    return ",".join([dev["driver"]] + [f"{k}={v}" for k, v in dev.items() if k != "driver"])


def guest_config(spec: Spec, g: Guest, authorized_key: str) -> str:
    cfg = {
        "hostname": g.name,
        "authorized_key": authorized_key,
        "metadata": METADATA_GUEST_ADDR,
        "nics": [{"name": f"eth{n.index}", "address": n.address, "address6": n.address6,
                  "queues": n.queues} for n in g.nics],
    }
    return base64.urlsafe_b64encode(json.dumps(cfg, separators=(",", ":")).encode()).decode()


def qemu_command(spec: Spec, g: Guest, img: images.Image, gdir: Path, metadata_port: int,
                 authorized_key: str, tap_fds: dict[int, list[int]],
                 accel: str = "tcg") -> list[str]:
    """The full QEMU command line for one guest (pure: unit-tested)."""
    user = [f"user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{g.ssh_port}-:22",
            *(f"hostfwd=tcp:127.0.0.1:{hport}-:{gport}" for gport, hport in g.forwards),
            f"guestfwd=tcp:{METADATA_GUEST_ADDR}:80-cmd:{BUSYBOX} nc 127.0.0.1 {metadata_port}"]
    for svc in spec.services:
        user.append(f"guestfwd=tcp:{svc.guest_addr}:{svc.guest_port}-cmd:"
                    f"{BUSYBOX} nc 127.0.0.1 {svc.host_port}")
    config = f"vpsnet_lab={guest_config(spec, g, authorized_key)}"
    if g.uefi:
        # The firmware boots shim -> grub -> kernel from the disk's ESP, with
        # one grub.cfg for every guest: the guest's own config comes as an
        # SMBIOS OEM string (vpsnet-lab-init reads both).
        machine = secureboot.qemu_args(gdir)
        boot = ["-smbios", f"type=11,value={config}"]
    else:
        append = " ".join(["root=/dev/vda", "rw", "console=ttyS0,115200", "net.ifnames=0",
                           "panic=-1", "mitigations=off", config])
        machine = ["-machine", "pc"]
        boot = ["-kernel", str(img.kernel), "-initrd", str(img.initrd), "-append", append]
    cmd = [
        QEMU, "-name", f"vpsnet-lab-{g.name},process=vpsnet-lab-{g.name}",
        *machine, *accels.QEMU_ARGS[accel],
        "-smp", str(g.vcpus), "-m", str(g.memory_mb),
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot", *boot,
        "-drive", f"file={img.disk},format=raw,if=virtio,snapshot=on,cache=unsafe",
        *smbios_args(spec, g),
        "-netdev", ",".join(user), "-device", _device_arg(nic_device(spec, g, None)),
        "-serial", f"file:{gdir / 'serial.log'}",
        "-qmp", f"unix:{gdir / 'qmp.sock'},server=on,wait=off",
    ]
    for nic in g.nics:
        if nic.link:
            link = next(lk for lk in spec.links
                        if {lk.listener, lk.connector} == {g.name, nic.link})
            # Both ends are clients of the lab's link relay (see daemon.py), so
            # a paused peer backs up this guest's TX ring as a stuck link would.
            netdev = (f"stream,id=n{nic.index},server=off,addr.type=unix,"
                      f"addr.path={link_socket(gdir.parent, link)}")
        else:
            fds = ":".join(str(fd) for fd in tap_fds[nic.index])
            netdev = f"tap,id=n{nic.index},fds={fds},vhost=off"
        cmd += ["-netdev", netdev, "-device", _device_arg(nic_device(spec, g, nic))]
    return cmd


def link_socket(state_dir: Path, link: Link) -> Path:
    """The unix socket of a link's relay (lab helper, see daemon.py)."""
    return state_dir / f"link{link.index}.sock"

