"""vpsnet-abi: the module's interface manifest, ABI diffs and "will it load on K" checks.

    vpsnet-abi manifest KO|JSON|loaded
    vpsnet-abi diff OLD NEW [--json]          exit 0 compatible/additive, 3 breaking, 2 bad input
    vpsnet-abi check KO --kernel K [--json]   exit 0 loads, 1 will not load, 2 bad input

See tools/README.md for the verdict rules.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import lzma
import os
import re
import struct
import sys
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from elftools.elf.elffile import ELFFile

from vpsnet_tools import __version__, modsig
from vpsnet_tools.cliargs import CONTROL_RE, one_line
from vpsnet_tools.manifest import (
    SECTION,
    ElfError,
    ManifestError,
    elf_sections,
    manifest_from_elf,
    manifest_from_sections,
    modinfo_of,
    parse_manifest,
)

PROG = "vpsnet-abi"
LOADED_MANIFEST = "/proc/net/vpsnet/manifest"
LOADED_PARAMETERS = Path("/sys/module/vpsnet/parameters")

# exit codes
EXIT_OK = 0  # diff: compatible or additive; check: loads
EXIT_WONT_LOAD = 1  # check: will not load on the kernel
EXIT_USAGE = 2  # bad arguments, unreadable or malformed input
EXIT_BREAKING = 3  # diff: breaking

# diff severities, in increasing order; the verdict is the worst one found
NOTE = "note"  # printed, verdict stays compatible
ADDITIVE = "additive"
BREAKING = "breaking"
_RANK = {NOTE: 0, ADDITIVE: 1, BREAKING: 2}
COMPATIBLE = "compatible"

SIG_MAGIC = modsig.SIG_MAGIC
# What a vpsnet-kmod package records of its kernel's exports (the symbols vpsnet
# imports, from that kernel's Module.symvers at build time): lets a host without
# headers check the module.
KMOD_SYMVERS = Path("/usr/share/vpsnet/kmod")
# EFI variable SecureBoot (global variable GUID): 4 attribute bytes, then 1 = on
SECURE_BOOT_VAR = Path("/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d0-aa0d-00e098032b8c")


class InputError(Exception):
    """An input could not be read or understood (exit code 2)."""


# --------------------------------------------------------------------------- manifests


def load_manifest(spec: str) -> tuple[dict[str, Any], str]:
    """Manifest from a .ko, a manifest JSON file, `loaded` or `-` (stdin).

    Returns the manifest and a description of where it came from.
    """
    if spec == "-":
        return _parse(sys.stdin.buffer.read(), "<stdin>"), "<stdin>"
    if spec == "loaded":
        spec = LOADED_MANIFEST
    path = Path(spec)
    if path.is_dir():
        # /sys/module/vpsnet: the loaded module; sysfs has no manifest, procfs does
        if (path / "parameters").is_dir() or path.name == "vpsnet":
            return load_manifest(LOADED_MANIFEST)[0], f"{spec} ({LOADED_MANIFEST})"
        raise InputError(f"{spec}: is a directory")
    try:
        head = _read_bytes(path)
    except FileNotFoundError as e:
        hint = " (is the vpsnet module loaded?)" if str(path) == LOADED_MANIFEST else ""
        raise InputError(f"{spec}: no such file{hint}") from e
    except OSError as e:
        raise InputError(f"{spec}: {e.strerror or e}") from e
    if head.startswith(b"\x7fELF"):
        return _manifest_from_elf(head, spec), spec
    doc = _parse(head, spec)
    if str(path) == LOADED_MANIFEST:
        _check_loaded_parameters(doc, spec)
    return doc, spec


def _manifest_from_elf(data: bytes, where: str) -> dict[str, Any]:
    """The checked manifest of an (already decompressed) ELF image: one
    .vpsnet_abi section, one document, parameters matching .modinfo."""
    try:
        doc = manifest_from_elf(data)
    except ElfError as e:
        raise InputError(f"{where}: malformed ELF file: {e}") from e
    except ManifestError as e:
        raise InputError(f"{where}: {e}") from e
    _validate(doc, where)
    return doc


def _check_loaded_parameters(doc: dict[str, Any], where: str) -> None:
    """The running module's parameters (all 0444, so all in sysfs) are the manifest's."""
    try:
        have = {p.name for p in LOADED_PARAMETERS.iterdir()}
    except OSError:
        return  # sysfs not there (a copied file, a container): nothing to compare
    declared = {p["name"] for p in doc["parameters"]}
    if have != declared:
        extra, missing = sorted(have - declared), sorted(declared - have)
        raise InputError(f"{where}: manifest disagrees with {LOADED_PARAMETERS}: "
                         f"not in the manifest: {', '.join(extra) or '-'}; "
                         f"not a module parameter: {', '.join(missing) or '-'}")


def _parse(raw: bytes, where: str) -> dict[str, Any]:
    if raw.startswith(b"\x7fELF"):
        raise InputError(f"{where}: an ELF file on stdin is not supported; pass its path")
    try:
        doc = parse_manifest(raw)
    except ManifestError as e:
        raise InputError(f"{where}: {e}") from e
    _validate(doc, where)
    return doc


def _validate(doc: dict[str, Any], where: str) -> None:
    """The keys diff relies on, with the right shapes (a clear error, never a traceback)."""
    checks: list[tuple[str, type | tuple[type, ...]]] = [
        ("module", str), ("abi_major", int), ("parameters", list), ("metrics", list),
    ]
    for key, typ in checks:
        if not isinstance(doc.get(key), typ):
            raise InputError(f"{where}: manifest has no valid {key!r}")
    for what, items in (("parameter", doc["parameters"]), ("metric family", doc["metrics"])):
        seen: set[str] = set()
        for p in items:
            if not isinstance(p, dict) or not isinstance(p.get("name"), str):
                raise InputError(f"{where}: manifest has a {what} without a name")
            if p["name"] in seen:
                # diff matches by name: a second entry would hide the first
                raise InputError(f"{where}: manifest declares {what} {p['name']} twice")
            seen.add(p["name"])
    for m in doc["metrics"]:
        if not isinstance(m.get("labels", []), list):
            raise InputError(f"{where}: metric family {m['name']} has no label list")


# --------------------------------------------------------------------------- diff


@dataclass
class Finding:
    severity: str  # note | additive | breaking
    kind: str  # abi_major, parameter, metric, label, health_state, uevent, proc, build, ...
    subject: str
    message: str


@dataclass
class DiffResult:
    verdict: str  # compatible | additive | breaking
    old_version: str | None
    new_version: str | None
    old_abi_major: int
    new_abi_major: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def abi_major_bumped(self) -> bool:
        return self.new_abi_major > self.old_abi_major

    @property
    def undeclared_break(self) -> bool:
        """Breaking findings other than the major change itself, without a major bump."""
        return not self.abi_major_bumped and any(
            f.severity == BREAKING and f.kind != "abi_major" for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "old": {"version": self.old_version, "abi_major": self.old_abi_major},
            "new": {"version": self.new_version, "abi_major": self.new_abi_major},
            "abi_major_bumped": self.abi_major_bumped,
            "undeclared_break": self.undeclared_break,
            "findings": [asdict(f) for f in self.findings],
        }


def _by_name(items: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["name"]: i for i in items}


def _num(v: Any) -> int | float | None:
    return v if isinstance(v, int | float) and not isinstance(v, bool) else None


def _range_changes(name: str, old: dict[str, Any], new: dict[str, Any]) -> list[Finding]:
    """Narrowed bounds are breaking (a value that loaded before is refused), widened additive."""
    out: list[Finding] = []
    for bound in ("min", "max"):
        o, n = _num(old.get(bound)), _num(new.get(bound))
        if o == n:
            continue
        if o is None:  # unbounded -> bounded
            out.append(Finding(BREAKING, "parameter", name,
                               f"parameter {name}: {bound} bound added ({n}): range narrowed"))
        elif n is None:
            out.append(Finding(ADDITIVE, "parameter", name,
                               f"parameter {name}: {bound} bound {o} removed: range widened"))
        elif (n > o) if bound == "min" else (n < o):
            out.append(Finding(BREAKING, "parameter", name,
                               f"parameter {name}: {bound} {o} -> {n}: range narrowed"))
        else:
            out.append(Finding(ADDITIVE, "parameter", name,
                               f"parameter {name}: {bound} {o} -> {n}: range widened"))
    return out


def _added_removed(kind: str, what: str, old: Iterable[str], new: Iterable[str]) -> list[Finding]:
    o, n = list(old), list(new)
    out = [Finding(BREAKING, kind, x, f"{what} {x} removed") for x in o if x not in n]
    out += [Finding(ADDITIVE, kind, x, f"{what} {x} added") for x in n if x not in o]
    return out


def _strings(v: Any) -> list[str]:
    return [x for x in v if isinstance(x, str)] if isinstance(v, list) else []


def diff_manifests(old: dict[str, Any], new: dict[str, Any]) -> DiffResult:
    """Compare two manifests; one finding per difference, the verdict is the worst."""
    f: list[Finding] = []

    if old.get("module") != new.get("module"):
        f.append(Finding(BREAKING, "module", str(new.get("module")),
                         f"module name {old.get('module')} -> {new.get('module')}"))
    om, nm = int(old["abi_major"]), int(new["abi_major"])
    if om != nm:
        way = "bumped" if nm > om else "lowered"
        f.append(Finding(BREAKING, "abi_major", "abi_major",
                         f"ABI major {way} {om} -> {nm}: declared incompatible"))
    if old.get("exposition") != new.get("exposition"):
        f.append(Finding(BREAKING, "exposition", "exposition",
                         f"metrics exposition format {old.get('exposition')!r} -> "
                         f"{new.get('exposition')!r}"))

    # parameters
    op, np_ = _by_name(old["parameters"]), _by_name(new["parameters"])
    for name, p in op.items():
        q = np_.get(name)
        if q is None:
            f.append(Finding(BREAKING, "parameter", name,
                             f"parameter {name} removed (a modprobe.d option setting it is "
                             "ignored: the kernel logs 'unknown parameter' and loads "
                             "without it)"))
            continue
        if p.get("type") != q.get("type"):
            f.append(Finding(BREAKING, "parameter", name,
                             f"parameter {name} retyped {p.get('type')} -> {q.get('type')}"))
            continue
        f += _range_changes(name, p, q)
        if p.get("default") != q.get("default"):
            f.append(Finding(NOTE, "parameter", name,
                             f"parameter {name}: default {json.dumps(p.get('default'))} -> "
                             f"{json.dumps(q.get('default'))} (behaviour change where unset)"))
    for name, q in np_.items():
        if name not in op:
            f.append(Finding(ADDITIVE, "parameter", name,
                             f"parameter {name} added ({q.get('type')}, default "
                             f"{json.dumps(q.get('default'))})"))

    # metric families
    ofam, nfam = _by_name(old["metrics"]), _by_name(new["metrics"])
    for name, m in ofam.items():
        n = nfam.get(name)
        if n is None:
            f.append(Finding(BREAKING, "metric", name, f"metric family {name} removed"))
            continue
        if m.get("type") != n.get("type"):
            f.append(Finding(BREAKING, "metric", name,
                             f"metric family {name} retyped {m.get('type')} -> {n.get('type')}"))
        ol, nl = _strings(m.get("labels")), _strings(n.get("labels"))
        for lab in ol:
            if lab not in nl:
                f.append(Finding(BREAKING, "label", f"{name}{{{lab}}}",
                                 f"metric family {name}: label {lab} removed"))
        for lab in nl:
            if lab not in ol:
                f.append(Finding(BREAKING, "label", f"{name}{{{lab}}}",
                                 f"metric family {name}: label {lab} added (changes series "
                                 "identity: recording rules, joins and alerts)"))
    for name, n in nfam.items():
        if name not in ofam:
            f.append(Finding(ADDITIVE, "metric", name,
                             f"metric family {name} added ({n.get('type')})"))

    # health states (values of the `state` label and of the uevents)
    f += _added_removed("health_state", "health state",
                        _strings(old.get("health_states")), _strings(new.get("health_states")))

    # uevents
    ou = old.get("uevent") if isinstance(old.get("uevent"), dict) else {}
    nu = new.get("uevent") if isinstance(new.get("uevent"), dict) else {}
    assert isinstance(ou, dict) and isinstance(nu, dict)
    for key in ("action", "subsystem"):
        if ou.get(key) != nu.get(key):
            f.append(Finding(BREAKING, "uevent", key,
                             f"uevent {key} {ou.get(key)!r} -> {nu.get(key)!r}"))
    f += _added_removed("uevent", "uevent key", _strings(ou.get("keys")), _strings(nu.get("keys")))

    # proc paths
    f += _added_removed("proc", "proc path", _strings(old.get("proc")), _strings(new.get("proc")))

    # build flags: reported, never part of the ABI
    ob = old.get("build") if isinstance(old.get("build"), dict) else {}
    nb = new.get("build") if isinstance(new.get("build"), dict) else {}
    assert isinstance(ob, dict) and isinstance(nb, dict)
    for key in sorted(set(ob) | set(nb)):
        if ob.get(key) != nb.get(key):
            f.append(Finding(NOTE, "build", key,
                             f"build flag {key}: {json.dumps(ob.get(key))} -> "
                             f"{json.dumps(nb.get(key))} (not part of the ABI)"))

    worst = max((_RANK[x.severity] for x in f), default=0)
    verdict = {0: COMPATIBLE, 1: ADDITIVE, 2: BREAKING}[worst]
    return DiffResult(verdict, _opt_str(old.get("version")), _opt_str(new.get("version")),
                      om, nm, f)


def _opt_str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


# --------------------------------------------------------------------------- .ko reading


def _read_bytes(path: Path) -> bytes:
    """File contents; .ko.xz / .ko.gz are decompressed (by magic)."""
    data = path.read_bytes()
    try:
        if data.startswith(b"\xfd7zXZ\x00"):
            return lzma.decompress(data)
        if data.startswith(b"\x1f\x8b"):
            return gzip.decompress(data)
    except (lzma.LZMAError, OSError, EOFError) as e:
        raise InputError(f"{path}: corrupt compressed file: {e}") from e
    if data.startswith(b"\x28\xb5\x2f\xfd"):
        raise InputError(f"{path}: zstd-compressed; decompress it first (zstd -d)")
    return data


@dataclass
class KoInfo:
    path: str
    machine: str
    modinfo: dict[str, list[str]]
    versions: dict[str, int]  # imported symbol -> CRC (__versions)
    undefined: set[str]  # undefined symbols of .symtab
    signed: bool
    signature: modsig.Signature | None = None
    signature_error: str = ""

    def first(self, key: str) -> str | None:
        v = self.modinfo.get(key)
        return v[0] if v else None


def read_ko(path: str | Path) -> KoInfo:
    """modinfo, imported symbols with CRCs and signature trailer of a kernel module."""
    try:
        data = _read_bytes(Path(path))
    except OSError as e:
        raise InputError(f"{path}: {e.strerror or e}") from e
    if not data.startswith(b"\x7fELF"):
        raise InputError(f"{path}: not an ELF file (not a kernel module)")
    # the structure first: pyelftools reads whatever the headers point at
    try:
        sections = elf_sections(data)
        modinfo = modinfo_of(data, sections)
        if any(s.name == SECTION for s in sections):
            manifest_from_sections(data, sections, modinfo)  # one, agreeing with .modinfo
    except ElfError as e:
        raise InputError(f"{path}: malformed ELF file: {e}") from e
    except ManifestError as e:
        raise InputError(f"{path}: {e}") from e
    if modinfo is None:
        raise InputError(f"{path}: no .modinfo section (not a kernel module)")
    try:
        elf = ELFFile(io.BytesIO(data))
        machine = str(elf["e_machine"])
        versions = _versions(elf)
        undefined: set[str] = set()
        symtab = elf.get_section_by_name(".symtab")
        if symtab is not None and hasattr(symtab, "iter_symbols"):
            for s in symtab.iter_symbols():
                if (s.name and s["st_shndx"] == "SHN_UNDEF"
                        and s["st_info"]["bind"] in ("STB_GLOBAL", "STB_WEAK")):
                    undefined.add(s.name)
    except InputError:
        raise
    except Exception as e:  # pyelftools raises its own errors on malformed input
        raise InputError(f"{path}: malformed ELF file: {e}") from e
    signature, sig_error = None, ""
    try:
        signature = modsig.split(data)
    except modsig.SignatureError as e:
        sig_error = str(e)
    return KoInfo(str(path), machine, modinfo, versions, undefined, data.endswith(SIG_MAGIC),
                  signature, sig_error)


def _versions(elf: ELFFile) -> dict[str, int]:
    """__versions: struct modversion_info {unsigned long crc; char name[64 - sizeof(long)]}.

    Also reads the extended form (__version_ext_crcs + __version_ext_names, Linux 6.13+).
    """
    out: dict[str, int] = {}
    little = elf.little_endian
    sec = elf.get_section_by_name("__versions")
    if sec is not None:
        word = 8 if elf.elfclass == 64 else 4
        fmt = ("<" if little else ">") + ("Q" if word == 8 else "I")
        raw = sec.data()
        for off in range(0, len(raw) - 63, 64):
            (crc,) = struct.unpack_from(fmt, raw, off)
            name = raw[off + word:off + 64].split(b"\0", 1)[0].decode("utf-8", "replace")
            if name:
                out[name] = crc & 0xFFFFFFFF
    crcs, names = elf.get_section_by_name("__version_ext_crcs"), elf.get_section_by_name(
        "__version_ext_names")
    if crcs is not None and names is not None:
        nlist = [n.decode() for n in names.data().split(b"\0") if n]
        craw = crcs.data()
        for i, name in enumerate(nlist):
            if 4 * i + 4 <= len(craw):
                (crc,) = struct.unpack_from(("<" if little else ">") + "I", craw, 4 * i)
                out[name] = crc
    return out


# --------------------------------------------------------------------------- kernel side


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

    release = None
    for d in trees:
        uts = d / "include/generated/utsrelease.h"
        if uts.is_file():
            m = re.search(r'UTS_RELEASE\s+"([^"]+)"', uts.read_text())
            if m:
                release, src["release"] = m.group(1), str(uts)
                break
    if release is None:
        for d in trees:
            kr = d / "include/config/kernel.release"
            if kr.is_file():
                release, src["release"] = kr.read_text().strip(), str(kr)
                break
    if release is None:
        release, src["release"] = kver, "--kernel"

    cfg_paths = ([Path(config)] if config else
                 [d / ".config" for d in trees] + [Path(f"/boot/config-{kver}"),
                                                   Path(f"/lib/modules/{kver}/config")])
    cfg = None
    for p in cfg_paths:
        if p.is_file():
            cfg, src["config"] = parse_config(_read_text(p)), str(p)
            break
    if cfg is None:
        raise InputError(f"kernel {kver}: no kernel config found (tried "
                         f"{', '.join(map(str, cfg_paths))}); install linux-headers-{kver}")

    sym_paths = ([Path(symvers)] if symvers else
                 [d / "Module.symvers" for d in trees] + [Path(f"/boot/symvers-{kver}.gz"),
                                                          Path(f"/lib/modules/{kver}/symvers.gz"),
                                                          KMOD_SYMVERS / kver / "Module.symvers"])
    syms = None
    for p in sym_paths:
        if p.is_file():
            syms, src["symvers"] = parse_symvers(_read_text(p)), str(p)
            break
    if syms is None:
        raise InputError(f"kernel {kver}: no Module.symvers found (tried "
                         f"{', '.join(map(str, sym_paths))}); install linux-headers-{kver}")

    mdir = Path(moddir) if moddir else Path(f"/lib/modules/{kver}")
    modules: set[str] | None = None
    dep = mdir / "modules.dep"
    if dep.is_file():
        modules = set()
        for name in ("modules.dep", "modules.builtin"):
            p = mdir / name
            if p.is_file():
                for line in p.read_text().splitlines():
                    mod = line.split(":", 1)[0].strip()
                    if mod:
                        modules.add(_modname(mod))
        src["modules"] = str(dep)

    running = os.uname().release == kver
    return KernelInfo(release, cfg, syms, modules, running, src)


def _read_text(p: Path) -> str:
    try:
        data = _read_bytes(p)
    except OSError as e:
        raise InputError(f"{p}: {e.strerror or e}") from e
    return data.decode("utf-8", "replace")


def _modname(path: str) -> str:
    base = path.rsplit("/", 1)[-1]
    base = re.sub(r"\.ko(\.(xz|gz|zst))?$", "", base)
    return base.replace("-", "_")


# --------------------------------------------------------------------------- check

OK, FAIL, UNKNOWN = "ok", "fail", "unknown"
INFO = "note"

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


def secure_boot_enabled(var: Path = SECURE_BOOT_VAR) -> bool:
    try:
        data = var.read_bytes()
    except OSError:
        return False
    return len(data) >= 5 and data[4] == 1


def _sig_enforced(k: KernelInfo) -> tuple[bool | None, str]:
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


def check_module(ko: KoInfo, k: KernelInfo,
                 signature: dict[str, Any] | None = None) -> list[CheckFinding]:
    """Everything the kernel's module loader checks that can be known from files.

    signature: signature_report(); when it was given a trusted certificate, a
    module not signed by it fails the check."""
    out: list[CheckFinding] = []

    want_machine = next((m for c, m in _MACHINES.items() if k.config.get(c) == "y"), None)
    if want_machine is None:
        out.append(CheckFinding(UNKNOWN, "arch", f"module is {ko.machine}; kernel arch unknown"))
    elif ko.machine != want_machine:
        out.append(CheckFinding(FAIL, "arch", f"module is {ko.machine}, kernel is {want_machine}"))

    # vermagic: release, then the flags (SMP preempt mod_unload modversions)
    vm = ko.first("vermagic")
    if vm is None:
        out.append(CheckFinding(FAIL, "vermagic", "module has no vermagic"))
    else:
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
            out.append(CheckFinding(INFO, "vermagic",
                                    f"arch/randstruct tokens not verified: {' '.join(extra)}"))

    # symbols and CRCs
    modversions = k.config.get("CONFIG_MODVERSIONS") == "y"
    imported = sorted(set(ko.versions) | ko.undefined)
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

    # namespaces
    imported_ns = set(ko.modinfo.get("import_ns", []))
    needed: dict[str, list[str]] = {}
    for name in imported:
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

    # depends
    deps = [d for d in ",".join(ko.modinfo.get("depends", [])).split(",") if d]
    if not deps:
        out.append(CheckFinding(OK, "depends", "no module dependencies"))
    elif k.modules is None:
        out.append(CheckFinding(UNKNOWN, "depends",
                                f"{', '.join(deps)}: unknown (no /lib/modules/{k.release}/"
                                "modules.dep)"))
    else:
        missing = [d for d in deps if d.replace("-", "_") not in k.modules]
        if missing:
            out.append(CheckFinding(FAIL, "depends", f"{', '.join(missing)} not in "
                                                      f"{k.sources['modules']}"))
        else:
            out.append(CheckFinding(OK, "depends", f"{', '.join(deps)} present"))

    # signature
    enforced, why = _sig_enforced(k)
    signer = f" by {ko.signature.signer.describe()}" if ko.signature else ""
    if signature is not None and signature["trusted"] is False:
        out.append(CheckFinding(FAIL, "signature", f"not signed by the trusted certificate: "
                                                    f"{signature['detail']}"))
    if signature is not None and signature["trusted"]:
        out.append(CheckFinding(OK, "signature", signature["detail"]))
    if enforced and not ko.signed:
        out.append(CheckFinding(FAIL, "signature", f"kernel requires signed modules ({why}); "
                                                    "module is unsigned"))
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


# --------------------------------------------------------------------------- CLI


def _cmd_manifest(args: argparse.Namespace) -> int:
    doc, _ = load_manifest(args.module)
    print(json.dumps(doc, indent=2))
    return EXIT_OK


def _cmd_diff(args: argparse.Namespace) -> int:
    old, old_src = load_manifest(args.old)
    new, new_src = load_manifest(args.new)
    res = diff_manifests(old, new)
    if args.json:
        doc = res.to_json()
        doc["old"]["source"], doc["new"]["source"] = old_src, new_src
        print(json.dumps(doc, indent=2))
    else:
        print(f"{res.verdict}: {old_src} ({res.old_version}, ABI {res.old_abi_major}) -> "
              f"{new_src} ({res.new_version}, ABI {res.new_abi_major})")
        for f in res.findings:
            print(f"  {f.severity}: {f.message}")
        if res.undeclared_break:
            print(f"  breaking: incompatible changes without an ABI major bump "
                  f"(abi_major stays {res.new_abi_major})")
    return EXIT_BREAKING if res.verdict == BREAKING else EXIT_OK


def _cmd_check(args: argparse.Namespace) -> int:
    ko = read_ko(args.module)
    k = load_kernel(args.kernel, kdir=args.kdir, symvers=args.symvers, config=args.config,
                    moddir=args.modules_dir)
    signature = signature_report(ko, args.trusted_cert)
    findings = check_module(ko, k, signature)
    loads = not any(f.status == FAIL for f in findings)
    enforced, why = _sig_enforced(k)
    signature.update(enforced=enforced, enforced_why=why)
    if args.json:
        print(json.dumps({"module": str(args.module), "kernel": args.kernel,
                          "release": k.release, "loads": loads, "sources": k.sources,
                          "signature": signature,
                          "imports": sorted(set(ko.versions) | ko.undefined),
                          "findings": [asdict(f) for f in findings]}, indent=2))
    else:
        print(f"{'loads' if loads else 'will not load'}: {args.module} on {args.kernel}")
        print(f"  signer: {signature['signer'] or '(unsigned)'}; signatures "
              f"{'enforced' if enforced else 'not enforced'} ({why})")
        for f in findings:
            print(f"  {f.status}: {f.check}: {f.message}")
    return EXIT_OK if loads else EXIT_WONT_LOAD


# A kernel release as uname -r prints it (6.1.0-57-cloud-amd64,
# 5.14.0-427.13.1.el9_4.x86_64; at most 64 bytes, the kernel's UTS length). It
# becomes a file name under /lib/modules, /boot and /usr/share/vpsnet/kmod: no
# '/', no '..' (first character alphanumeric), no control characters.
_KERNEL_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+~-]{0,63}")


def _kernel_arg(text: str) -> str:
    if not _KERNEL_RE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a kernel release (uname -r form)")
    return text


def _path_arg(text: str) -> str:
    """A file name: not empty (Path('') is the current directory), no control
    characters (they would also split the one-line error that names the file)."""
    if not text or CONTROL_RE.search(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a file name")
    return text


def _cert_arg(text: str) -> Path:
    return Path(_path_arg(text))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="vpsnet.ko interface manifest, ABI diff and load check.",
        epilog="exit codes: 0 ok (diff: compatible or additive; check: loads), "
               "1 check: will not load, 2 usage or unreadable input, 3 diff: breaking",
    )
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("manifest", help="print the interface manifest compiled into a module")
    p.add_argument("module", type=_path_arg, help="vpsnet.ko, a manifest JSON file, or 'loaded'")
    p.set_defaults(func=_cmd_manifest)

    p = sub.add_parser("diff", help="compatible / additive / breaking between two manifests")
    p.add_argument("old", type=_path_arg,
                   help="vpsnet.ko, manifest JSON, 'loaded' (/proc/net/vpsnet/manifest), "
                        "/sys/module/vpsnet or -")
    p.add_argument("new", type=_path_arg, help="same forms as OLD")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(func=_cmd_diff)

    p = sub.add_parser("check", help="will the module load on kernel K")
    p.add_argument("module", type=_path_arg, help="a .ko file (.ko.xz/.ko.gz too)")
    p.add_argument("--kernel", required=True, metavar="K", type=_kernel_arg,
                   help="kernel release (uname -r form)")
    p.add_argument("--kdir", type=_path_arg,
                   help="K's build tree (default /lib/modules/K/build, then "
                        "/usr/src/linux-headers-K)")
    p.add_argument("--symvers", type=_path_arg,
                   help="Module.symvers to use (default: build tree, "
                        "/boot/symvers-K.gz, /usr/share/vpsnet/kmod/K/Module.symvers)")
    p.add_argument("--config", type=_path_arg,
                   help="kernel config to use (default: build tree, /boot/config-K)")
    p.add_argument("--modules-dir", type=_path_arg,
                   help="K's module directory (default /lib/modules/K)")
    p.add_argument("--trusted-cert", type=_cert_arg, metavar="FILE",
                   help="X.509 certificate (PEM or DER) the module must be signed with, "
                        "e.g. the fleet's; any other signer or none fails the check")
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(func=_cmd_check)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        rc: int = args.func(args)
        return rc
    except InputError as e:
        print(f"{PROG}: {one_line(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK
    except Exception as e:  # never a traceback for bad input; still exit as "cannot answer"
        print(f"{PROG}: {type(e).__name__}: {one_line(str(e))}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
