"""UEFI Secure Boot guests: Debian's OVMF, shim and grub, certificates in MokList.

Chain of trust, all of it Debian's signed binaries offline: OVMF's db holds
Microsoft's UEFI CA (OVMF_VARS_4M.ms.fd, Secure Boot on) -> shimx64.efi.signed
(signed by Microsoft, carries Debian's CA) -> grubx64.efi.signed and the
linux-image-*-cloud-amd64 kernel (both signed by Debian) -> modules, which the
kernel checks against its builtin, secondary and machine keyrings.

The fleet certificate goes into MokList: shim mirrors MokList to MokListRT
and the kernel (CONFIG_INTEGRITY_MACHINE_KEYRING=y, MokListTrustedRT set by
shim by default) loads it into .machine, which upstream module verification
trusts (via the secondary keyring). MokList has to be written NV+BS (no
runtime access) or shim ignores it; virt-fw-vars --add-mok writes it so, which
is what MokManager writes after an interactive enrolment, so no MokManager
screen is needed. A db certificate lands in .platform instead; upstream only
kexec trusts that, but Debian's kernel carries the "use the platform keyring
for module signature verification" patch: measured on 6.1.0-57-cloud-amd64,
a module signed by a db-only certificate loads too. MokList is the path that
does not depend on a distribution patch.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from .paths import CACHE, TOP, LabError

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.secboot.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.ms.fd")
# shim's own GUID: the owner MokManager gives the certificates it enrolls.
SHIM_GUID = "605dab50-e046-4300-abb6-3dd810dd8b23"
SIGNING_KEY_SCRIPT = TOP / "packaging" / "scripts" / "module-signing-key.sh"
SIGNING_DIR = CACHE / "module-signing"
VARS_NAME = "OVMF_VARS.fd"


def fleet_signing_key() -> tuple[Path, Path]:
    """(key, certificate) of the fleet's module-signing key, made once if missing."""
    proc = subprocess.run([str(SIGNING_KEY_SCRIPT), str(SIGNING_DIR)], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise LabError(f"{SIGNING_KEY_SCRIPT.name} failed: {proc.stderr.strip()}")
    key, cert = proc.stdout.split()
    return Path(key), Path(cert)


def _virt_fw_vars() -> str:
    found = shutil.which("virt-fw-vars") or str(Path(sys.executable).parent / "virt-fw-vars")
    if not Path(found).exists():
        raise LabError("virt-fw-vars is missing: pip install virt-firmware (requirements.txt)")
    return found


def make_vars(out: Path, mok_certs: list[Path]) -> Path:
    """A guest's own copy of the Microsoft-keys vars store with `mok_certs` in MokList."""
    for path in (OVMF_CODE, OVMF_VARS):
        if not path.exists():
            raise LabError(f"{path} is missing: apt-get install ovmf")
    cmd = [_virt_fw_vars(), "-i", str(OVMF_VARS), "-o", str(out)]
    for cert in mok_certs:
        cmd += ["--add-mok", SHIM_GUID, str(cert)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise LabError(f"virt-fw-vars could not write {out}: {proc.stderr.strip()[-500:]}")
    return out


def qemu_args(gdir: Path) -> list[str]:
    """Machine and firmware: q35 with SMM so the vars store is writable only from SMM."""
    return ["-machine", "q35,smm=on",
            "-global", "driver=cfi.pflash01,property=secure,value=on",
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}",
            "-drive", f"if=pflash,format=raw,unit=1,file={gdir / VARS_NAME}"]
