"""vpsnet-abi check, the kernel side: what kernel K offers a module (release,
config, exported symbols, module names) and whether it enforces signatures.
abi_check.py and the CLI import it; packaging/scripts/kmods.py uses parse_config.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from vpsnet_tools.manifest import InputError, read_image

# What a vpsnet-kmod package records of its kernel's exports (the symbols vpsnet
# imports, from that kernel's Module.symvers at build time): lets a host without
# headers check the module.
KMOD_SYMVERS = Path("/usr/share/vpsnet/kmod")
# EFI variable SecureBoot (global variable GUID): 4 attribute bytes, then 1 = on
SECURE_BOOT_VAR = Path("/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d0-aa0d-00e098032b8c")


@dataclass
class Export:
    crc: int
    module: str
    kind: str  # EXPORT_SYMBOL / EXPORT_SYMBOL_GPL
    namespace: str


@dataclass
class KernelInfo:
    release: str
    config: dict[str, str]
    symvers: dict[str, Export]
    modules: set[str] | None  # module names of K (modules.dep + modules.builtin); None unknown
    running: bool
    sources: dict[str, str]


def _candidates(kver: str, kdir: str | None) -> list[Path]:
    if kdir:
        return [Path(kdir)]
    return [Path(f"/lib/modules/{kver}/build"), Path(f"/usr/src/linux-headers-{kver}")]


def parse_symvers(text: str) -> dict[str, Export]:
    out: dict[str, Export] = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 4:
            continue
        try:
            crc = int(parts[0], 16)
        except ValueError:
            continue
        ns = parts[4].strip().strip('"') if len(parts) > 4 else ""
        out[parts[1]] = Export(crc, parts[2], parts[3], ns)
    return out


def parse_config(text: str) -> dict[str, str]:
    cfg: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            k, v = line.split("=", 1)
            cfg[k] = v.strip().strip('"')
    return cfg


def load_kernel(kver: str, kdir: str | None = None, symvers: str | None = None,
                config: str | None = None, moddir: str | None = None) -> KernelInfo:
    """What K's build tree (or /boot) says: release, config, exported symbols, modules."""
    src: dict[str, str] = {}
    trees = [d for d in _candidates(kver, kdir) if d.is_dir()]
    release = _release(kver, trees, src)

    cfg_file = _first_file(kver, "kernel config", [Path(config)] if config else
                           [d / ".config" for d in trees] + [Path(f"/boot/config-{kver}"),
                                                             Path(f"/lib/modules/{kver}/config")])
    cfg, src["config"] = parse_config(_read_text(cfg_file)), str(cfg_file)

    sym_file = _first_file(kver, "Module.symvers", [Path(symvers)] if symvers else
                           [d / "Module.symvers" for d in trees]
                           + [Path(f"/boot/symvers-{kver}.gz"),
                              Path(f"/lib/modules/{kver}/symvers.gz"),
                              KMOD_SYMVERS / kver / "Module.symvers"])
    syms, src["symvers"] = parse_symvers(_read_text(sym_file)), str(sym_file)

    modules = _module_names(Path(moddir) if moddir else Path(f"/lib/modules/{kver}"), src)
    running = os.uname().release == kver
    return KernelInfo(release, cfg, syms, modules, running, src)


def _release(kver: str, trees: list[Path], src: dict[str, str]) -> str:
    """K's release from its build tree (utsrelease.h, then kernel.release), else KVER."""
    for d in trees:
        uts = d / "include/generated/utsrelease.h"
        if uts.is_file():
            m = re.search(r'UTS_RELEASE\s+"([^"]+)"', uts.read_text())
            if m:
                src["release"] = str(uts)
                return m.group(1)
    for d in trees:
        kr = d / "include/config/kernel.release"
        if kr.is_file():
            src["release"] = str(kr)
            return kr.read_text().strip()
    src["release"] = "--kernel"
    return kver


def _first_file(kver: str, what: str, paths: list[Path]) -> Path:
    """The first of PATHS that is a file; none: an error naming them all."""
    found = next((p for p in paths if p.is_file()), None)
    if found is None:
        raise InputError(f"kernel {kver}: no {what} found (tried "
                         f"{', '.join(map(str, paths))}); install linux-headers-{kver}")
    return found


def _module_names(mdir: Path, src: dict[str, str]) -> set[str] | None:
    """K's modules (modules.dep and modules.builtin); None without modules.dep."""
    dep = mdir / "modules.dep"
    if not dep.is_file():
        return None
    modules: set[str] = set()
    for name in ("modules.dep", "modules.builtin"):
        p = mdir / name
        if p.is_file():
            for line in p.read_text().splitlines():
                mod = line.split(":", 1)[0].strip()
                if mod:
                    modules.add(_modname(mod))
    src["modules"] = str(dep)
    return modules


def _read_text(p: Path) -> str:
    try:
        data = read_image(p)
    except OSError as e:
        raise InputError(f"{p}: {e.strerror or e}") from e
    return data.decode("utf-8", "replace")


def _modname(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    base = re.sub(r"\.ko(\.(xz|gz|zst))?$", "", base)
    return base.replace("-", "_")


def secure_boot_enabled(var: Path = SECURE_BOOT_VAR) -> bool:
    try:
        data = var.read_bytes()
    except OSError:
        return False
    return len(data) >= 5 and data[4] == 1


def signatures_enforced(k: KernelInfo) -> tuple[bool, str]:
    """Does K refuse unsigned modules, and why."""
    if k.config.get("CONFIG_MODULE_SIG_FORCE") == "y":
        return True, "CONFIG_MODULE_SIG_FORCE=y"
    if (k.config.get("CONFIG_LOCK_DOWN_IN_EFI_SECURE_BOOT") == "y"
            and k.config.get("CONFIG_MODULE_SIG") == "y" and secure_boot_enabled()):
        return True, "UEFI Secure Boot is on and the kernel locks down under it"
    if not k.running:
        if k.config.get("CONFIG_MODULE_SIG") == "y":
            return False, ("CONFIG_MODULE_SIG_FORCE unset; module.sig_enforce=1 or "
                           "lockdown at boot would require one")
        return False, "module signatures not configured"
    try:
        if Path("/sys/module/module/parameters/sig_enforce").read_text().strip() == "Y":
            return True, "sig_enforce=Y on the running kernel"
    except OSError:
        pass
    try:
        lock = Path("/sys/kernel/security/lockdown").read_text()
        m = re.search(r"\[(\w+)\]", lock)
        if m and m.group(1) != "none" and k.config.get("CONFIG_MODULE_SIG") == "y":
            return True, f"lockdown={m.group(1)} on the running kernel"
    except OSError:
        pass
    return False, "not enforced on the running kernel"
