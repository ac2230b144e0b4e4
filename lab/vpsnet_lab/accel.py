"""Which QEMU accelerator the lab uses: KVM when it really runs a guest, else TCG.

"Really" is the point: /dev/kvm can exist, open, and even create a VM and a
vCPU while no ordinary guest can run. On the lab's build machines the host
kernel has kvm-pvm (KVM on a CPU without vmx/svm): KVM_CREATE_VM succeeds,
yet QEMU with `-cpu host` aborts setting MSR 0x10a and any other CPU model
stops at "KVM internal error. Suberror: 1". So the probe boots the lab's own
kernel under `-accel kvm -cpu host` and waits for it to run to its
no-root-filesystem panic; only that counts as working.
"""

from __future__ import annotations

import errno
import fcntl
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .paths import LabError

ENV = "VPSNET_LAB_ACCEL"
CHOICES = ("auto", "kvm", "tcg")
KVM_DEV = Path("/dev/kvm")
QEMU = "qemu-system-x86_64"
PROBE_TIMEOUT = 20.0
# The kernel reached this only if the accelerator ran its whole early boot.
PROBE_MARK = "VFS: Unable to mount root fs"

# ioctl numbers from linux/kvm.h (_IO(KVMIO, n), KVMIO = 0xAE).
KVM_GET_API_VERSION = 0xAE00
KVM_CREATE_VM = 0xAE01
KVM_API_VERSION = 12

# QEMU arguments per accelerator: TCG emulates every feature it can ("max");
# KVM passes the host CPU through.
QEMU_ARGS = {"kvm": ["-accel", "kvm", "-cpu", "host"], "tcg": ["-accel", "tcg", "-cpu", "max"]}


@dataclass(frozen=True)
class Accel:
    name: str  # "kvm" or "tcg"
    requested: str  # what the spec / environment asked for
    reason: str  # why this one, for `up`, `status` and the state file

    @property
    def qemu_args(self) -> list[str]:
        return list(QEMU_ARGS[self.name])

    def as_dict(self) -> dict[str, str]:
        return {"accel": self.name, "requested": self.requested, "reason": self.reason}


class AccelError(LabError):
    pass


# A probe returns None when KVM works, else why it does not.
Probe = Callable[[], "str | None"]


def kvm_device_problem(dev: Path = KVM_DEV) -> str | None:
    """The cheap part: can this process open /dev/kvm and create a VM?"""
    try:
        fd = os.open(dev, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return f"cannot open {dev}: {exc.strerror}"
    try:
        version = fcntl.ioctl(fd, KVM_GET_API_VERSION, 0)
        if version != KVM_API_VERSION:
            return f"{dev} speaks KVM API {version}, not {KVM_API_VERSION}"
        try:
            vm = fcntl.ioctl(fd, KVM_CREATE_VM, 0)
        except OSError as exc:
            return f"KVM_CREATE_VM failed: {errno.errorcode.get(exc.errno or 0, exc.errno)}"
        os.close(vm)
        return None
    finally:
        os.close(fd)


def kvm_boot_problem(kernel: Path, timeout: float = PROBE_TIMEOUT) -> str | None:
    """The real test: boot `kernel` under `-accel kvm -cpu host` to its root-fs panic."""
    with tempfile.TemporaryDirectory(prefix="vpsnet-kvm-probe-") as tmp:
        serial = Path(tmp) / "serial.log"
        cmd = [QEMU, *QEMU_ARGS["kvm"], "-machine", "pc", "-m", "256", "-smp", "1",
               "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
               "-net", "none", "-kernel", str(kernel),
               "-append", "console=ttyS0 panic=-1 root=/dev/null",
               "-serial", f"file:{serial}"]
        with (Path(tmp) / "qemu.log").open("w+") as log:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            deadline = time.monotonic() + timeout
            try:
                while proc.poll() is None and time.monotonic() < deadline:
                    log.seek(0)
                    # QEMU pauses the VM on an internal error instead of exiting.
                    if "KVM internal error" in log.read():
                        break
                    time.sleep(0.1)
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
            log.seek(0)
            err = " ".join(line.strip() for line in log.read().splitlines()[:2])
        out = serial.read_text(errors="replace") if serial.exists() else ""
    if PROBE_MARK in out:
        return None
    if err:
        return f"QEMU -accel kvm -cpu host cannot run a guest: {err}"
    return f"a test guest under KVM did not reach its first panic within {timeout:.0f}s"


def cpu_flags_note() -> str:
    """Why KVM might work or not, for humans: the CPU's virtualisation flags."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    found = [f for f in ("vmx", "svm") if f in flags]
    return f"CPU flags {'/'.join(found)}" if found else "CPU has no vmx/svm"


def default_probe(kernel: Path) -> Probe:
    def probe() -> str | None:
        return kvm_device_problem() or kvm_boot_problem(kernel)
    return probe


def requested(spec_value: str | None = None, env: dict[str, str] | None = None) -> str:
    """The accelerator asked for: $VPSNET_LAB_ACCEL, else the spec's `accel`, else auto."""
    environ = os.environ if env is None else env
    value = environ.get(ENV) or spec_value or "auto"
    if value not in CHOICES:
        source = f"${ENV}" if environ.get(ENV) else "spec accel"
        raise AccelError(f"{source}: unknown accelerator {value!r} "
                         f"(expected one of {', '.join(CHOICES)})")
    return value


def choose(want: str, probe: Probe) -> Accel:
    """Decide; `kvm` that does not work is an error, not a silent fallback."""
    if want not in CHOICES:
        raise AccelError(f"unknown accelerator {want!r} (expected one of {', '.join(CHOICES)})")
    if want == "tcg":
        return Accel("tcg", want, "TCG requested")
    problem = probe()
    if problem is None:
        return Accel("kvm", want, "KVM runs guests here")
    if want == "kvm":
        raise AccelError(f"KVM was requested but is not usable: {problem}")
    note = cpu_flags_note()
    return Accel("tcg", want, f"KVM unusable ({problem}{'; ' + note if note else ''})")
