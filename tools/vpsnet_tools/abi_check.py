"""vpsnet-abi check: will a module (abi_module.read_ko) load on a kernel
(abi_kernel.load_kernel)? One finding per loader check; any `fail` means it will
not load. The CLI (abi.py) and status_next_boot.py import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vpsnet_tools import modsig
from vpsnet_tools.abi_kernel import KernelInfo, signatures_enforced
from vpsnet_tools.abi_module import KoInfo
from vpsnet_tools.manifest import InputError

# finding statuses; NOTE is said but never fails the check (as a diff NOTE never breaks)
OK, FAIL, UNKNOWN, NOTE = "ok", "fail", "unknown", "note"

_MACHINES = {"CONFIG_X86_64": "EM_X86_64", "CONFIG_ARM64": "EM_AARCH64",
             "CONFIG_PPC64": "EM_PPC64", "CONFIG_S390": "EM_S390", "CONFIG_RISCV": "EM_RISCV"}
_GPL_COMPATIBLE = {"GPL", "GPL v2", "GPL and additional rights", "Dual BSD/GPL", "Dual MIT/GPL",
                   "Dual MPL/GPL"}
_VERMAGIC_FLAGS = ("SMP", "preempt", "preempt_rt", "mod_unload", "modversions")


@dataclass
class CheckFinding:
    status: str  # ok | fail | unknown | note
    check: str  # arch, vermagic, symbol, namespace, license, depends, signature
    message: str


def expected_vermagic_flags(cfg: dict[str, str]) -> list[str]:
    y = {k for k, v in cfg.items() if v == "y"}
    flags = []
    if "CONFIG_SMP" in y:
        flags.append("SMP")
    if "CONFIG_PREEMPT_BUILD" in y:
        flags.append("preempt")
    elif "CONFIG_PREEMPT_RT" in y:
        flags.append("preempt_rt")
    if "CONFIG_MODULE_UNLOAD" in y:
        flags.append("mod_unload")
    if "CONFIG_MODVERSIONS" in y:
        flags.append("modversions")
    return flags


def signature_report(ko: KoInfo, trusted_cert: Path | None) -> dict[str, Any]:
    """Who signed the module and, given a certificate, whether it was that key."""
    sig = ko.signature
    doc: dict[str, Any] = {"signed": ko.signed, "signer": None, "hash": None, "trusted": None,
                           "detail": ko.signature_error or ("unsigned" if not ko.signed else "")}
    if sig is not None:
        doc.update(signer=sig.signer.describe(), hash=sig.signer.hash)
    if trusted_cert is not None:
        if sig is None:
            doc.update(trusted=False, detail=doc["detail"] or "unsigned")
        else:
            try:
                ok, why = modsig.verify(sig, trusted_cert)
            except (OSError, modsig.SignatureError) as e:
                raise InputError(f"{trusted_cert}: {e}") from e
            doc.update(trusted=ok, detail=why)
    return doc


def imported_symbols(ko: KoInfo) -> list[str]:
    """Every symbol the module takes from the kernel (__versions and undefined)."""
    return sorted(set(ko.versions) | ko.undefined)


def _arch(ko: KoInfo, k: KernelInfo) -> list[CheckFinding]:
    want_machine = next((m for c, m in _MACHINES.items() if k.config.get(c) == "y"), None)
    if want_machine is None:
        return [CheckFinding(UNKNOWN, "arch", f"module is {ko.machine}; kernel arch unknown")]
    if ko.machine != want_machine:
        return [CheckFinding(FAIL, "arch", f"module is {ko.machine}, kernel is {want_machine}")]
    return []


def _vermagic(ko: KoInfo, k: KernelInfo) -> list[CheckFinding]:
    """The release, then the flags (SMP preempt mod_unload modversions)."""
    vm = ko.first("vermagic")
    if vm is None:
        return [CheckFinding(FAIL, "vermagic", "module has no vermagic")]
    out: list[CheckFinding] = []
    release, *flags = vm.split()
    if release != k.release:
        out.append(CheckFinding(
            FAIL, "vermagic",
            f"built for {release}, kernel is {k.release} (modprobe looks in "
            f"/lib/modules/{k.release}; rebuild with DKMS for this kernel)"))
    want = expected_vermagic_flags(k.config)
    have = [x for x in flags if x in _VERMAGIC_FLAGS]
    if have != want:
        out.append(CheckFinding(FAIL, "vermagic",
                                f"flags {' '.join(have) or '(none)'} != kernel's "
                                f"{' '.join(want) or '(none)'}"))
    if release == k.release and have == want:
        out.append(CheckFinding(OK, "vermagic", f"{vm.strip()} matches"))
    extra = [x for x in flags if x not in _VERMAGIC_FLAGS]
    if extra:
        out.append(CheckFinding(NOTE, "vermagic",
                                f"arch/randstruct tokens not verified: {' '.join(extra)}"))
    return out


def _symbols(ko: KoInfo, k: KernelInfo) -> list[CheckFinding]:
    """Every import exported by K, with the same CRC, GPL-only ones to a GPL module."""
    out: list[CheckFinding] = []
    modversions = k.config.get("CONFIG_MODVERSIONS") == "y"
    imported = imported_symbols(ko)
    if modversions and ko.undefined and not ko.versions:
        out.append(CheckFinding(FAIL, "symbol",
                                "module has no symbol versions (__versions) and the kernel has "
                                "CONFIG_MODVERSIONS (refused unless forced)"))
    bad_sym = 0
    gpl = (ko.first("license") or "") in _GPL_COMPATIBLE
    for name in imported:
        exp = k.symvers.get(name)
        if exp is None:
            if name in ko.undefined:
                out.append(CheckFinding(FAIL, "symbol",
                                        f"{name}: not exported by {k.release} (Unknown symbol)"))
                bad_sym += 1
            continue  # only in __versions (e.g. module_layout on kernels without it)
        crc = ko.versions.get(name)
        if modversions and crc is not None and exp.crc and crc != exp.crc:
            out.append(CheckFinding(FAIL, "symbol",
                                    f"{name}: CRC 0x{crc:08x} in module, 0x{exp.crc:08x} in "
                                    f"{k.release} ({exp.module}) (disagrees about version)"))
            bad_sym += 1
        if exp.kind.endswith("_GPL") and not gpl:
            out.append(CheckFinding(FAIL, "license",
                                    f"{name}: GPL-only export, module license is "
                                    f"{ko.first('license')!r}"))
            bad_sym += 1
    if bad_sym == 0:
        what = "CRCs match" if modversions else "all exported (kernel without modversions)"
        out.append(CheckFinding(OK, "symbol",
                                f"{len(imported)} imported symbols: {what} "
                                f"({k.sources['symvers']})"))
    return out


def _namespaces(ko: KoInfo, k: KernelInfo) -> list[CheckFinding]:
    out: list[CheckFinding] = []
    imported_ns = set(ko.modinfo.get("import_ns", []))
    needed: dict[str, list[str]] = {}
    for name in imported_symbols(ko):
        exp = k.symvers.get(name)
        if exp is not None and exp.namespace:
            needed.setdefault(exp.namespace, []).append(name)
    for ns, syms in sorted(needed.items()):
        if ns not in imported_ns:
            out.append(CheckFinding(FAIL, "namespace",
                                    f"{', '.join(syms)} in namespace {ns}, module lacks "
                                    f"MODULE_IMPORT_NS({ns})"))
    if all(ns in imported_ns for ns in needed):
        out.append(CheckFinding(OK, "namespace",
                                f"namespaces {', '.join(sorted(needed))} imported" if needed
                                else "no symbol namespaces needed"))
    return out


def _depends(ko: KoInfo, k: KernelInfo) -> CheckFinding:
    deps = [d for d in ",".join(ko.modinfo.get("depends", [])).split(",") if d]
    if not deps:
        return CheckFinding(OK, "depends", "no module dependencies")
    if k.modules is None:
        return CheckFinding(UNKNOWN, "depends",
                            f"{', '.join(deps)}: unknown (no /lib/modules/{k.release}/"
                            "modules.dep)")
    missing = [d for d in deps if d.replace("-", "_") not in k.modules]
    if missing:
        return CheckFinding(FAIL, "depends", f"{', '.join(missing)} not in "
                                             f"{k.sources['modules']}")
    return CheckFinding(OK, "depends", f"{', '.join(deps)} present")


def _signature(ko: KoInfo, k: KernelInfo,
               signature: dict[str, Any] | None) -> list[CheckFinding]:
    out: list[CheckFinding] = []
    enforced, why = signatures_enforced(k)
    signer = f" by {ko.signature.signer.describe()}" if ko.signature else ""
    if signature is not None and signature["trusted"] is False:
        out.append(CheckFinding(FAIL, "signature",
                                f"not signed by the trusted certificate: {signature['detail']}"))
    if signature is not None and signature["trusted"]:
        out.append(CheckFinding(OK, "signature", signature["detail"]))
    if enforced and not ko.signed:
        out.append(CheckFinding(FAIL, "signature",
                                f"kernel requires signed modules ({why}); module is unsigned"))
    elif enforced:
        trust = "" if signature and signature["trusted"] is not None else \
            "; key trust not verified"
        out.append(CheckFinding(OK, "signature", f"signed{signer}; required ({why}){trust}"))
    elif ko.signed:
        out.append(CheckFinding(OK, "signature", f"signed{signer}; not required ({why})"))
    else:
        note = " (loads, taints the kernel)" if k.config.get("CONFIG_MODULE_SIG") == "y" else ""
        out.append(CheckFinding(OK, "signature", f"unsigned{note}; not required ({why})"))
    return out


def check_module(ko: KoInfo, k: KernelInfo,
                 signature: dict[str, Any] | None = None) -> list[CheckFinding]:
    """Everything the kernel's module loader checks that can be known from files.

    signature: signature_report(); when it was given a trusted certificate, a
    module not signed by it fails the check."""
    return [*_arch(ko, k), *_vermagic(ko, k), *_symbols(ko, k), *_namespaces(ko, k),
            _depends(ko, k), *_signature(ko, k, signature)]
