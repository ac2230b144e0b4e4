"""Guest images: a debootstrap base shared by all kernels, then one image per
Debian cloud kernel release. Each is cached under a hash of everything that
goes into it and rebuilt only when that changes.

A series ("6.1") and an exact release ("6.1.0-47-cloud-amd64") both name a
release, and the cache directory is named by the release, so the image for a
series and the image for an older ABI of it live side by side, and asking for
the series' current release by name reuses the series' image."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .paths import IMAGES, LabError

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
SECURITY_MIRROR = "http://deb.debian.org/debian-security"
DISK_SIZE = "4G"
GUEST_FILES = Path(__file__).parent / "guest"
ESP_MB = 128
MIB = 1 << 20
# A uefi-secureboot image boots shim -> grub -> kernel from an ESP; the signed
# binaries come from the guest's own packages, mokutil answers --sb-state.
SECURE_BOOT_PACKAGES = ("shim-signed", "grub-efi-amd64-signed", "mokutil")
# Debian's signed grub looks in /EFI/debian (its prefix), then beside itself.
GRUB_CFG = """set timeout=0
set default=0
menuentry "vpsnet-lab" {
  linux /vmlinuz root=/dev/vda2 rw console=ttyS0,115200 net.ifnames=0 panic=-1 mitigations=off
  initrd /initrd.img
}
"""

# What guests and the roles need offline: the guests reach no mirror.
BASE_PACKAGES = (
    "systemd", "systemd-sysv", "udev", "dbus", "openssh-server", "iproute2", "ethtool",
    "iperf3", "kmod", "python3", "python3-apt", "nftables", "iputils-ping", "procps",
    "curl", "ca-certificates", "gnupg", "netcat-openbsd", "initramfs-tools", "zstd",
    "dkms", "make", "gcc", "libc6-dev", "irqbalance", "python3-prometheus-client",
    "python3-pyelftools", "python3-requests", "less", "sudo",
    # What the WAN benchmark compares against: TuneD's profiles (disabled at boot).
    "tuned",
)


@dataclass(frozen=True)
class Image:
    """A built guest image: disk plus the kernel and initrd to boot it with."""

    series: str
    release: str
    directory: Path
    firmware: str = "bios"

    @property
    def disk(self) -> Path:
        return self.directory / "disk.raw"

    @property
    def kernel(self) -> Path:
        return self.directory / "vmlinuz"

    @property
    def initrd(self) -> Path:
        return self.directory / "initrd.img"


def _digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()[:16]


def _guest_files_digest() -> bytes:
    return b"".join(
        p.name.encode() + p.read_bytes() for p in sorted(GUEST_FILES.iterdir()) if p.is_file()
    )


def base_key() -> str:
    return _digest("base-v1", SUITE, MIRROR, " ".join(BASE_PACKAGES))


def image_key(release: str, firmware: str = "bios") -> str:
    recipe = Path(__file__).read_bytes()
    parts: list[str | bytes] = [base_key(), release, recipe, _guest_files_digest(), DISK_SIZE]
    if firmware != "bios":  # bios keys do not depend on the Secure Boot inputs
        parts += [firmware, " ".join(SECURE_BOOT_PACKAGES), GRUB_CFG, str(ESP_MB)]
    return _digest(*parts)


def _run(cmd: list[str], log: Path, **kw: object) -> None:
    with log.open("a") as out:
        out.write(f"+ {' '.join(cmd)}\n")
        out.flush()
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False, **kw)  # type: ignore[call-overload]
    if proc.returncode != 0:
        tail = "".join(log.read_text().splitlines(keepends=True)[-25:])
        raise LabError(f"image build step failed ({' '.join(cmd[:3])} ...), log {log}:\n{tail}")


def _chroot_env() -> dict[str, str]:
    return {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "DEBIAN_FRONTEND": "noninteractive",
        "LC_ALL": "C.UTF-8",
    }


@contextlib.contextmanager
def _mounted(root: Path) -> Iterator[None]:
    mounts = [("proc", root / "proc", ["-t", "proc", "proc"]),
              ("sys", root / "sys", ["-t", "sysfs", "sysfs"]),
              ("dev", root / "dev", ["--bind", "/dev"]),
              ("devpts", root / "dev/pts", ["--bind", "/dev/pts"])]
    done: list[Path] = []
    try:
        for _, target, args in mounts:
            target.mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", *args, str(target)], check=True)
            done.append(target)
        yield
    finally:
        for target in reversed(done):
            subprocess.run(["umount", "-l", str(target)], check=False)


def _chroot(root: Path, log: Path, *cmd: str) -> None:
    _run(["chroot", str(root), *cmd], log, env=_chroot_env())


def _write_sources(root: Path) -> None:
    (root / "etc/apt/sources.list").write_text(
        f"deb {MIRROR} {SUITE} main\n"
        f"deb {MIRROR} {SUITE}-updates main\n"
        f"deb {SECURITY_MIRROR} {SUITE}-security main\n"
    )


def _apt_install(root: Path, log: Path, packages: tuple[str, ...]) -> None:
    """Install into the chroot from the mirror, no services started, fast dpkg."""
    _write_sources(root)
    (root / "usr/sbin/policy-rc.d").write_text("#!/bin/sh\nexit 101\n")
    (root / "usr/sbin/policy-rc.d").chmod(0o755)
    (root / "etc/dpkg/dpkg.cfg.d/unsafe-io").write_text("force-unsafe-io\n")
    with _mounted(root):
        _chroot(root, log, "apt-get", "update", "-q")
        _chroot(root, log, "apt-get", "install", "-y", "-q", "--no-install-recommends",
                *packages)
        _chroot(root, log, "apt-get", "clean")


def _build_base(log: Path, say: Callable[[str], None]) -> Path:
    tar = IMAGES / f"base-{base_key()}.tar"
    if tar.exists():
        return tar
    IMAGES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=IMAGES, prefix="base-") as tmp:
        root = Path(tmp) / "root"
        say(f"debootstrap {SUITE} (minbase) ...")
        _run(["debootstrap", "--variant=minbase", SUITE, str(root), MIRROR], log)
        say(f"installing {len(BASE_PACKAGES)} guest packages ...")
        _apt_install(root, log, BASE_PACKAGES)
        part = tar.with_suffix(".part")
        _run(["tar", "-C", str(root), "--numeric-owner", "--xattrs", "-cf", str(part), "."], log)
        part.rename(tar)
    return tar


def _configure_guest(root: Path, root_dev: str = "/dev/vda") -> None:
    """Lab plumbing: boot to SSH fast on a serial console, no mirror."""
    (root / "etc/fstab").write_text(f"{root_dev} / ext4 defaults,errors=remount-ro 0 1\n")
    sbin = root / "usr/local/sbin"
    sbin.mkdir(parents=True, exist_ok=True)
    shutil.copy2(GUEST_FILES / "vpsnet-lab-init", sbin / "vpsnet-lab-init")
    units = root / "etc/systemd/system"
    shutil.copy2(GUEST_FILES / "vpsnet-lab-init.service", units / "vpsnet-lab-init.service")
    wants = units / "multi-user.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    (wants / "vpsnet-lab-init.service").symlink_to("/etc/systemd/system/vpsnet-lab-init.service")
    (wants / "systemd-networkd.service").unlink(missing_ok=True)
    (wants / "systemd-networkd.service").symlink_to("/lib/systemd/system/systemd-networkd.service")
    net = root / "etc/systemd/network"
    net.mkdir(parents=True, exist_ok=True)
    shutil.copy2(GUEST_FILES / "10-eth0.network", net / "10-eth0.network")
    # Nothing to wait for: the lab's only route out is the host's loopback.
    (units / "systemd-networkd-wait-online.service").unlink(missing_ok=True)
    (units / "systemd-networkd-wait-online.service").symlink_to("/dev/null")
    (root / "etc/hostname").write_text("vpsnet-guest\n")
    (root / "etc/resolv.conf").unlink(missing_ok=True)
    (root / "etc/resolv.conf").write_text("")
    (root / "etc/ssh/sshd_config.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/ssh/sshd_config.d/vpsnet-lab.conf").write_text(
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n"
    )
    (root / "etc/apt/sources.list").write_text("")
    # TuneD is there to be compared against, not to tune every lab guest.
    (units / "multi-user.target.wants/tuned.service").unlink(missing_ok=True)
    (root / "usr/sbin/policy-rc.d").unlink(missing_ok=True)
    (root / "etc/dpkg/dpkg.cfg.d/unsafe-io").unlink(missing_ok=True)
    for lists in (root / "var/lib/apt/lists").glob("*_dists_*"):
        lists.unlink()


def _flavour(firmware: str) -> str:
    return "" if firmware == "bios" else "sb-"


def image_dir(release: str, images: Path = IMAGES, firmware: str = "bios") -> Path:
    return images / f"{release}-{_flavour(firmware)}{image_key(release, firmware)}"


def stale_dirs(images: Path, keep: Path, release: str, series: str,
               firmware: str = "bios") -> list[Path]:
    """Older builds of exactly this release and firmware (and pre-release-naming
    `<series>-KEY` ones).

    Never another release's or firmware's: a series' image and an older ABI's
    must not delete each other (6.1.0-5-... is not a build of 6.1.0-57-...).
    """
    if firmware == "bios":
        own = re.compile(rf"(?:{re.escape(release)}|{re.escape(series)})-[0-9a-f]{{16}}")
    else:
        own = re.compile(rf"{re.escape(release)}-{_flavour(firmware)}[0-9a-f]{{16}}")
    if not images.is_dir():
        return []
    return sorted(p for p in images.iterdir()
                  if p.is_dir() and p != keep and own.fullmatch(p.name))


def build(kernel: str, say: Callable[[str], None] = print, force: bool = False,
          firmware: str = "bios") -> Image:
    """Build (or find in the cache) the image for a kernel series or exact release."""
    if firmware not in ("bios", "uefi-secureboot"):
        raise LabError(f"unknown firmware {firmware!r} (expected bios or uefi-secureboot)")
    series, release = paths.resolve_kernel(kernel)
    final = image_dir(release, firmware=firmware)
    image = Image(series, release, final, firmware)
    if image.disk.exists() and not force:
        return image
    if os.geteuid() != 0:
        raise LabError("building images needs root (debootstrap, chroot)")
    IMAGES.mkdir(parents=True, exist_ok=True)
    # Labs started at the same time must not build the same image twice.
    with (IMAGES / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if image.disk.exists() and not force:
            return image
        return _build_locked(image, say)


def _build_locked(image: Image, say: Callable[[str], None]) -> Image:
    series, release, final = image.series, image.release, image.directory
    uefi = image.firmware != "bios"
    log = IMAGES / f"build-{release}{'-sb' if uefi else ''}.log"
    log.write_text("")
    started = time.monotonic()
    tar = _build_base(log, say)
    kernel_packages = [f"linux-image-{release}"]
    # Some older ABIs' headers have left the mirror; DKMS tests need them, prebuilt ones do not.
    if paths.apt_knows(f"linux-headers-{release}"):
        kernel_packages.append(f"linux-headers-{release}")
    if uefi:
        kernel_packages += SECURE_BOOT_PACKAGES
    with tempfile.TemporaryDirectory(dir=IMAGES, prefix=f"tmp-{release}-") as tmp:
        work = Path(tmp)
        root = work / "root"
        root.mkdir()
        _run(["tar", "-C", str(root), "--numeric-owner", "--xattrs", "-xf", str(tar)], log)
        say(f"installing {' and '.join(kernel_packages)} ...")
        _apt_install(root, log, tuple(kernel_packages))
        _configure_guest(root, "/dev/vda2" if uefi else "/dev/vda")
        shutil.copy2(root / f"boot/vmlinuz-{release}", work / "vmlinuz")
        shutil.copy2(root / f"boot/initrd.img-{release}", work / "initrd.img")
        extra: dict[str, object] = {}
        if uefi:
            say("making the GPT disk (ESP with shim, grub and the signed kernel; ext4 root) ...")
            extra = _make_efi_disk(root, work, log)
        else:
            say("making the ext4 disk ...")
            _run(["mkfs.ext4", "-q", "-F", "-L", "vpsnet-root", "-d", str(root),
                  str(work / "disk.raw"), DISK_SIZE], log)
        (work / "manifest.json").write_text(json.dumps({
            "series": series, "release": release, "key": final.name,
            "firmware": image.firmware, **extra,
            "packages": list(BASE_PACKAGES), "kernel_packages": kernel_packages,
            "built": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "build_seconds": round(time.monotonic() - started, 1),
        }, indent=2))
        shutil.rmtree(root)
        if final.exists():
            shutil.rmtree(final)
        work.rename(final)
        work.mkdir()  # TemporaryDirectory cleanup expects it
    for stale in stale_dirs(IMAGES, final, release, series, image.firmware):
        shutil.rmtree(stale, ignore_errors=True)
    say(f"image {final.name} ready in {time.monotonic() - started:.0f}s")
    return image


def signers(efi_binary: Path) -> list[str]:
    """Subjects of the certificates that signed a PE binary (sbverify --list)."""
    proc = subprocess.run(["sbverify", "--list", str(efi_binary)], capture_output=True,
                          text=True, check=False)
    return [line.split("subject:", 1)[1].strip() for line in proc.stdout.splitlines()
            if "subject:" in line]


def _make_efi_disk(root: Path, work: Path, log: Path) -> dict[str, object]:
    """GPT: partition 1 the ESP (shim as the removable-media BOOTX64.EFI, grub beside it,
    the kernel and initrd), partition 2 the ext4 root. No loop devices: mtools
    fill the ESP image, mkfs.ext4 writes the root at its offset in the disk file."""
    kernel_signers = signers(work / "vmlinuz")
    if not kernel_signers:
        raise LabError(f"{work / 'vmlinuz'} carries no Authenticode signature: Secure Boot "
                       "would refuse it (is it Debian's signed linux-image package?)")
    (work / "grub.cfg").write_text(GRUB_CFG)
    esp = work / "esp.img"
    with esp.open("wb") as f:
        f.truncate(ESP_MB * MIB)
    _run(["mkfs.vfat", "-F", "32", "-n", "ESP", str(esp)], log)
    _run(["mmd", "-i", str(esp), "::/EFI", "::/EFI/BOOT", "::/EFI/debian"], log)
    # No fbx64.efi: shim would run fallback, write boot entries and reset.
    files = [(root / "usr/lib/shim/shimx64.efi.signed", "::/EFI/BOOT/BOOTX64.EFI"),
             (root / "usr/lib/shim/mmx64.efi.signed", "::/EFI/BOOT/mmx64.efi"),
             (root / "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
              "::/EFI/BOOT/grubx64.efi"),
             (work / "grub.cfg", "::/EFI/debian/grub.cfg"),
             (work / "grub.cfg", "::/EFI/BOOT/grub.cfg"),
             (work / "vmlinuz", "::/vmlinuz"), (work / "initrd.img", "::/initrd.img")]
    for src, dst in files:
        _run(["mcopy", "-i", str(esp), str(src), dst], log)
    disk = work / "disk.raw"
    root_offset = (1 + ESP_MB) * MIB
    root_size = int(DISK_SIZE.removesuffix("G")) << 30
    with disk.open("wb") as f:
        f.truncate(root_offset + root_size + MIB)  # 1 MiB for the backup GPT
    _run(["mkfs.ext4", "-q", "-F", "-L", "vpsnet-root", "-E", f"offset={root_offset},nodiscard",
          "-d", str(root), str(disk), f"{root_size >> 10}k"], log)
    _run(["sgdisk", "-o", "-n", f"1:{MIB // 512}:+{ESP_MB}M", "-t", "1:ef00", "-c", "1:ESP",
          "-n", f"2:{root_offset // 512}:+{root_size >> 10}K", "-t", "2:8300",
          "-c", "2:vpsnet-root", str(disk)], log)
    _run(["dd", f"if={esp}", f"of={disk}", "bs=1M", "seek=1", "conv=notrunc,sparse",
          "status=none"], log)
    info = subprocess.run(["sgdisk", "-i", "2", str(disk)], capture_output=True, text=True,
                          check=False).stdout
    if f"First sector: {root_offset // 512} " not in info:
        raise LabError(f"GPT of {disk} does not put the root at sector {root_offset // 512}:\n"
                       f"{info}")
    esp.unlink()
    return {"kernel_signers": kernel_signers,
            "shim_signers": signers(root / "usr/lib/shim/shimx64.efi.signed"),
            "grub_signers": signers(root / "usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed")}


def main_build(series_list: list[str], force: bool) -> list[Image]:
    return [build(s, say=lambda m: print(f"image: {m}", file=sys.stderr), force=force)
            for s in series_list]
