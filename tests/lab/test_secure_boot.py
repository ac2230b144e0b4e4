"""A lab guest booted with UEFI Secure Boot enforcing trusts the fleet's module key.

OVMF (Microsoft keys, Secure Boot on) -> Debian's shim -> Debian's grub ->
Debian's signed cloud kernel, with the fleet certificate in MokList (see
vpsnet_lab/secureboot.py). Under Secure Boot the kernel is locked down and
refuses every module it cannot verify: the fleet-signed vpsnet.ko loads, the
same module signed by another key or not signed at all does not.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vpsnet_lab.fleet import Lab
from vpsnet_lab.paths import CACHE, TOP, resolve_kernel
from vpsnet_lab.secureboot import fleet_signing_key

pytestmark = pytest.mark.lab

KERNEL = os.environ.get("VPSNET_TEST_SB_KERNEL", "6.1")
BASE_PORT = int(os.environ.get("VPSNET_TEST_BASE_PORT", "12022")) + 1500
STATE = CACHE / f"lab-sb-{BASE_PORT}"
GUEST = "sb"
# OVMF with SMM under TCG on a busy 2-core host: SSH took 4-5 min in trials.
BOOT_TIMEOUT = 1200.0
SPEC = {
    "name": "secureboot", "base_port": BASE_PORT,
    "guests": [{"name": GUEST, "cloud": "aws", "region": "us-east-1", "zone": "us-east-1a",
                "instance_type": "m5.large", "kernel": KERNEL, "memory_mb": 1024,
                "firmware": "uefi-secureboot"}],
}


def _say(msg: str) -> None:
    print(f"[sb] {msg}", file=sys.__stderr__, flush=True)


@dataclass(frozen=True)
class Modules:
    fleet: Path
    other: Path
    unsigned: Path
    fleet_cn: str


def _cn(cert: Path) -> str:
    subject = subprocess.run(["openssl", "x509", "-in", str(cert), "-noout", "-subject",
                              "-nameopt", "multiline"], capture_output=True, text=True,
                             check=True).stdout
    m = re.search(r"commonName\s*=\s*(.+)", subject)
    assert m, subject
    return m.group(1).strip()


@pytest.fixture(scope="module")
def modules(tmp_path_factory: pytest.TempPathFactory) -> Modules:
    """vpsnet.ko for the guest's kernel: fleet-signed, signed by a throwaway key, unsigned."""
    _, release = resolve_kernel(KERNEL)
    kdir = Path(f"/lib/modules/{release}/build")
    sign_file = kdir / "scripts" / "sign-file"
    if not sign_file.exists():
        pytest.skip(f"no headers for {release} on this host ({sign_file} missing)")
    work = tmp_path_factory.mktemp("sb-modules")
    # Out of tree, in a copy: other builds use driver-src at the same time.
    shutil.copytree(TOP / "driver-src", work / "driver-src")
    shutil.copy2(TOP / "VERSION", work / "VERSION")
    subprocess.run(["make", "-s", "-C", str(work / "driver-src"), f"KVER={release}"],
                   check=True, capture_output=True)
    built = work / "driver-src" / "vpsnet.ko"
    key, cert = fleet_signing_key()
    subprocess.run(["openssl", "req", "-new", "-nodes", "-utf8", "-sha256", "-days", "30",
                    "-batch", "-x509", "-subj", "/CN=vpsnet throwaway test key/",
                    "-newkey", "rsa:2048", "-keyout", str(work / "other.key"),
                    "-out", str(work / "other.crt")], check=True, capture_output=True)
    out = {}
    for name, signer in (("fleet", (key, cert)), ("other", (work / "other.key",
                                                             work / "other.crt")),
                         ("unsigned", None)):
        ko = work / f"vpsnet-{name}.ko"
        shutil.copy2(built, ko)
        if signer:
            subprocess.run([str(sign_file), "sha256", str(signer[0]), str(signer[1]), str(ko)],
                           check=True)
        out[name] = ko
    signers = {n: subprocess.run(["modinfo", "-F", "signer", str(p)], capture_output=True,
                                 text=True, check=True).stdout.strip() for n, p in out.items()}
    assert signers == {"fleet": _cn(cert), "other": "vpsnet throwaway test key",
                       "unsigned": ""}, signers
    return Modules(out["fleet"], out["other"], out["unsigned"], _cn(cert))


@pytest.fixture(scope="module")
def sb_lab(modules: Modules) -> Iterator[Lab]:
    Lab(STATE).down(say=_say)
    lab = Lab.up(SPEC, "tests/lab/test_secure_boot.py", state_dir=STATE,
                 boot_timeout=BOOT_TIMEOUT, say=_say)
    try:
        boot = {"kernel": KERNEL, "ssh_seconds": lab.state["up_seconds"], "accel": lab.accel,
                "load_average": os.getloadavg()[0]}
        # pytest captures stderr; the timing is kept beside the lab's state.
        (STATE / "last-boot.json").write_text(json.dumps(boot) + "\n")
        _say(f"Secure Boot guest: {boot}")
        for ko in (modules.fleet, modules.other, modules.unsigned):
            lab.put(GUEST, ko, f"/root/{ko.name}")
        yield lab
    finally:
        lab.down(say=_say)


def _insmod(lab: Lab, ko: Path) -> tuple[int, str, str]:
    lab.ssh(GUEST, "rmmod vpsnet 2>/dev/null; dmesg -C")
    r = lab.ssh(GUEST, f"insmod /root/{ko.name}")
    return r.rc, r.stderr, lab.ssh(GUEST, "dmesg").stdout


def test_secure_boot_is_enforcing(sb_lab: Lab) -> None:
    assert "SecureBoot enabled" in sb_lab.ssh(GUEST, "mokutil --sb-state", check=True).stdout
    lockdown = sb_lab.ssh(GUEST, "cat /sys/kernel/security/lockdown", check=True).stdout
    assert "[none]" not in lockdown and re.search(r"\[(integrity|confidentiality)\]", lockdown)
    boot_log = sb_lab.ssh(GUEST, "journalctl -k -b --no-pager -q", check=True).stdout
    assert "Kernel is locked down from EFI Secure Boot" in boot_log


def test_fleet_certificate_is_enrolled_in_the_machine_keyring(sb_lab: Lab,
                                                              modules: Modules) -> None:
    enrolled = sb_lab.ssh(GUEST, "mokutil --list-enrolled", check=True).stdout
    assert f"CN={modules.fleet_cn}" in enrolled.replace(" = ", "="), enrolled
    boot_log = sb_lab.ssh(GUEST, "journalctl -k -b --no-pager -q", check=True).stdout
    # Loaded from MokListRT (shim's mirror of MokList), i.e. into .machine, not .platform.
    assert re.search(r"Loading X\.509 certificate: UEFI:MokListRT.*\n.*Loaded X\.509 cert "
                     rf"'{re.escape(modules.fleet_cn)}", boot_log), boot_log


def test_module_signed_by_another_key_is_refused(sb_lab: Lab, modules: Modules) -> None:
    rc, err, log = _insmod(sb_lab, modules.other)
    assert rc != 0 and "Key was rejected by service" in err, (rc, err)
    assert "Loading of module with unavailable key is rejected" in log, log
    assert sb_lab.ssh(GUEST, "grep -c '^vpsnet ' /proc/modules").stdout.strip() == "0"


def test_unsigned_module_is_refused(sb_lab: Lab, modules: Modules) -> None:
    rc, err, log = _insmod(sb_lab, modules.unsigned)
    assert rc != 0 and "Key was rejected by service" in err, (rc, err)
    assert "Loading of unsigned module is rejected" in log, log


def test_fleet_signed_module_loads(sb_lab: Lab, modules: Modules) -> None:
    rc, err, _ = _insmod(sb_lab, modules.fleet)
    assert rc == 0, err
    try:
        metrics = sb_lab.ssh(GUEST, "cat /proc/net/vpsnet/metrics", check=True).stdout
        assert "vpsnet_" in metrics
        # Verified, so not tainted as unsigned ("E"); out-of-tree ("O") it is.
        taint = sb_lab.ssh(GUEST, "cat /sys/module/vpsnet/taint", check=True).stdout.strip()
        assert "E" not in taint and "O" in taint, taint
    finally:
        sb_lab.ssh(GUEST, "rmmod vpsnet")
