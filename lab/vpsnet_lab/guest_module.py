"""vpsnet.ko in a lab guest: the tracked sources as a tarball, built in the guest
or on the host with the guest kernel's headers and copied in, loaded and unloaded.
Only the Lab API; for tests/driver and bench/overhead.py."""

from __future__ import annotations

import io
import shlex
import subprocess
import tarfile
from pathlib import Path

from vpsnet_lab.fleet import Lab, Result
from vpsnet_lab.paths import TOP

GUEST_SRC = "/root/vpsnet-src"
KO = f"{GUEST_SRC}/vpsnet.ko"
METRICS = "/proc/net/vpsnet/metrics"


def source_tarball() -> bytes:
    """driver-src/ as git tracks it (what the packages ship; no build output)
    plus the top-level VERSION, as a tar."""
    tracked = subprocess.run(["git", "-C", str(TOP), "ls-files", "-z", "driver-src"],
                             capture_output=True, check=True).stdout.decode().split("\0")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in sorted(filter(None, tracked)):
            p = TOP / name
            if p.is_file() and p.parent == TOP / "driver-src":
                tar.add(p, arcname=p.name)
        tar.add(TOP / "VERSION", arcname="VERSION")
    return buf.getvalue()


def build_in_guest(lab: Lab, name: str, workdir: Path, extra: str = "") -> Result:
    """Copy the sources into the guest and build for its running kernel."""
    tarball = workdir / f"vpsnet-src-{name}.tar"
    tarball.write_bytes(source_tarball())
    lab.ssh(name, f"rm -rf {GUEST_SRC} && mkdir -p {GUEST_SRC}", check=True)
    lab.put(name, tarball, "/root/vpsnet-src.tar")
    return lab.ssh(name, f"tar -xf /root/vpsnet-src.tar -C {GUEST_SRC} && "
                   f"make -C {GUEST_SRC} KVER=$(uname -r) {extra} 2>&1", timeout=600)


def build_on_host_for_guest(lab: Lab, name: str, workdir: Path) -> Result:
    """Build with the host's copy of the guest kernel's headers (the same Debian
    package the guest has) and copy the .ko into the guest at KO."""
    kver = lab.ssh(name, "uname -r", check=True).stdout.strip()
    src = workdir / f"src-{kver}"
    src.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(source_tarball())) as tar:
        tar.extractall(src)  # our own tarball
    r = subprocess.run(["make", "-C", str(src), f"KVER={kver}"], capture_output=True,
                       text=True, timeout=600, env={"PATH": "/usr/bin:/bin", "MAKEFLAGS": ""})
    out = r.stdout + r.stderr
    if r.returncode == 0:
        lab.ssh(name, f"mkdir -p {GUEST_SRC}", check=True)
        lab.put(name, src / "vpsnet.ko", KO)
    return Result(r.returncode, out, "")


def loaded(lab: Lab, name: str) -> bool:
    return bool(lab.ssh(name, "test -d /sys/module/vpsnet").rc == 0)


def unload(lab: Lab, name: str) -> None:
    if loaded(lab, name):
        lab.ssh(name, "rmmod vpsnet", check=True)


def load(lab: Lab, name: str, **params: object) -> None:
    """(Re)load the module with the given parameters."""
    unload(lab, name)
    args = " ".join(f"{k}={shlex.quote(str(v))}" for k, v in params.items())
    lab.ssh(name, f"insmod {KO} {args}", check=True)
