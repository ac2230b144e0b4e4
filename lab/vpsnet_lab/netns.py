"""Multiqueue tap NICs inside network namespaces the lab owns.

QEMU itself stays in the host namespace (its SSH forward must be on the
host's loopback); only the tap lives in the lab namespace. We open the tap's
queues from inside that namespace and hand QEMU the file descriptors.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import struct
import subprocess
from collections.abc import Iterator

from .paths import LabError

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_MULTI_QUEUE = 0x0100
IFF_VNET_HDR = 0x4000

_libc = ctypes.CDLL(None, use_errno=True)


def _ip(*args: str, netns: str | None = None) -> None:
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LabError(f"{' '.join(cmd)} failed: {proc.stderr.strip()}")


def exists(name: str) -> bool:
    return os.path.exists(f"/run/netns/{name}")


def create(name: str) -> None:
    if exists(name):
        delete(name)
    _ip("netns", "add", name)
    _ip("link", "set", "lo", "up", netns=name)


def delete(name: str) -> None:
    if exists(name):
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


@contextlib.contextmanager
def _inside(name: str) -> Iterator[None]:
    """Run the calling thread inside a namespace, then return it home."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise LabError(f"setns into {name}: {os.strerror(ctypes.get_errno())}")
        try:
            yield
        finally:
            if _libc.setns(home, CLONE_NEWNET) != 0:
                raise LabError(f"setns back from {name}: {os.strerror(ctypes.get_errno())}")
    finally:
        os.close(target)
        os.close(home)


def open_mq_tap(netns: str, ifname: str, queues: int, host_address: str,
                host_address6: str | None = None) -> list[int]:
    """Create a multiqueue tap in netns; return one fd per queue (inheritable)."""
    fds: list[int] = []
    flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (IFF_MULTI_QUEUE if queues > 1 else 0)
    ifreq = struct.pack("16sH22x", ifname.encode(), flags)
    with _inside(netns):
        try:
            for _ in range(queues):
                fd = os.open("/dev/net/tun", os.O_RDWR)
                fds.append(fd)
                fcntl.ioctl(fd, TUNSETIFF, ifreq)
                os.set_inheritable(fd, True)
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            raise LabError(f"cannot open tap {ifname} in {netns}: {exc.strerror}") from exc
    _ip("addr", "add", host_address, "dev", ifname, netns=netns)
    if host_address6:
        # nodad: usable at once, a lab /64 has no other claimant
        _ip("addr", "add", host_address6, "dev", ifname, "nodad", netns=netns)
    _ip("link", "set", ifname, "up", netns=netns)
    return fds
