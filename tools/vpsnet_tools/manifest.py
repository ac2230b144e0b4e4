"""Read the interface manifest embedded in vpsnet.ko (ELF section .vpsnet_abi),
or from a manifest JSON file, stdin or the loaded module's procfs file: the one
reader every tool and test uses (load_manifest, read_manifest).

Everything read from a file is checked before it is trusted: the ELF
structure (as the kernel's module loader checks it, plus overlapping
sections), exactly one `.vpsnet_abi` section holding exactly one
NUL-terminated JSON document without duplicate keys, and the manifest's
parameters against the module's own `.modinfo` (`parmtype=` entries, which
`module_param()` writes). Any failure is a ManifestError with one line that
says what is wrong; nothing else escapes.
"""

from __future__ import annotations

import gzip
import itertools
import json
import lzma
import struct
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vpsnet_tools import modsig

SECTION = ".vpsnet_abi"
FORMAT = 1
MAX_MANIFEST = 1 << 20  # the real one is about 4 KiB

SIG_MAGIC = modsig.SIG_MAGIC
ELF_MAGIC = b"\x7fELF"
LOADED_MANIFEST = "/proc/net/vpsnet/manifest"
LOADED_PARAMETERS = Path("/sys/module/vpsnet/parameters")

ET_REL = 1
SHT_NULL, SHT_SYMTAB, SHT_STRTAB, SHT_NOBITS = 0, 2, 3, 8
SHF_COMPRESSED = 0x800


class InputError(Exception):
    """An input could not be read or understood (vpsnet-abi exits 2)."""


class ManifestError(InputError):
    """The file has no readable vpsnet manifest (or is not a sound module)."""


class ElfError(ManifestError):
    """The file is not a well-formed ELF kernel module."""


# --------------------------------------------------------------------------- JSON


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for k, v in pairs:
        if k in doc:
            # json.loads keeps the last one: a decoy could hide the real value
            raise ManifestError(f"manifest has the key {k!r} twice")
        doc[k] = v
    return doc


def _no_constant(name: str) -> Any:
    raise ManifestError(f"manifest is not valid JSON: {name} is not a JSON value")


def parse_manifest(raw: bytes, section: bool = False) -> dict[str, Any]:
    """Parse one manifest document.

    section: raw is the whole .vpsnet_abi section, which must be exactly one
    NUL-terminated document. Otherwise (a JSON file, stdin, procfs) the NUL
    terminator is optional; nothing may follow it either way.
    """
    if len(raw) > MAX_MANIFEST:
        raise ManifestError(f"manifest is {len(raw)} bytes, more than {MAX_MANIFEST}")
    text, nul, rest = raw.partition(b"\0")
    if section and not nul:
        raise ManifestError(f"{SECTION} holds no NUL-terminated manifest")
    if rest:
        what = "a second manifest" if b"{" in rest else "trailing bytes"
        raise ManifestError(f"{len(rest)} bytes after the manifest's NUL terminator "
                            f"({what}); exactly one manifest is allowed")
    try:
        doc = json.loads(text.decode("utf-8"), object_pairs_hook=_no_duplicate_keys,
                         parse_constant=_no_constant)
    except UnicodeDecodeError as e:
        raise ManifestError(f"manifest is not UTF-8: {e.reason} at byte {e.start}") from e
    except RecursionError as e:
        raise ManifestError("manifest is not valid JSON: nested too deeply") from e
    except ValueError as e:  # JSONDecodeError, and ints too long to convert
        raise ManifestError(f"manifest is not valid JSON: {e}") from e
    if not isinstance(doc, dict):
        raise ManifestError("manifest is not a JSON object")
    if doc.get("format") != FORMAT:
        raise ManifestError(f"unsupported manifest format {doc.get('format')!r}")
    return doc


# --------------------------------------------------------------------------- ELF


@dataclass(frozen=True)
class Section:
    index: int
    name: str
    type: int
    flags: int
    offset: int
    size: int
    link: int


def elf_length(data: bytes) -> int:
    """Length of the ELF image: the file without a module signature trailer."""
    try:
        return modsig.trailer(data)[0]
    except modsig.SignatureError as e:
        raise ElfError(str(e)) from None


def elf_sections(data: bytes) -> list[Section]:
    """Check the ELF structure of a kernel module; its sections.

    What the kernel's module loader refuses (elf_validity_check: ET_REL,
    header sizes, section header table and section contents inside the
    file, a NUL-terminated section name table, names inside it), plus
    overlapping sections and bad symbol table links, which pyelftools would
    otherwise read as garbage or fail on.
    """
    n = elf_length(data)
    if n < 16 or data[:4] != b"\x7fELF":
        raise ElfError("not an ELF file")
    cls, enc = data[4], data[5]
    if cls not in (1, 2):
        raise ElfError(f"bad ELF class {cls}")
    if enc not in (1, 2):
        raise ElfError(f"bad ELF data encoding {enc}")
    e = "<" if enc == 1 else ">"
    ehdr = struct.Struct(e + ("HHIQQQIHHHHHH" if cls == 2 else "HHIIIIIHHHHHH"))
    shdr = struct.Struct(e + ("IIQQQQIIQQ" if cls == 2 else "IIIIIIIIII"))
    if n < 16 + ehdr.size:
        raise ElfError(f"truncated ELF header ({n} bytes)")
    (e_type, _machine, _version, _entry, _phoff, shoff, _flags, ehsize, _phentsize, _phnum,
     shentsize, shnum, shstrndx) = ehdr.unpack_from(data, 16)
    if e_type != ET_REL:
        raise ElfError(f"ELF type {e_type} is not a relocatable object (ET_REL): "
                       "not a kernel module")
    if ehsize != 16 + ehdr.size or shentsize != shdr.size:
        raise ElfError(f"bad ELF header sizes (e_ehsize {ehsize}, "
                       f"e_shentsize {shentsize})")
    if shnum == 0:
        raise ElfError("no section headers")
    table_end = shoff + shnum * shentsize
    if shoff < ehsize or table_end > n:
        raise ElfError(f"section header table (offset {shoff}, {shnum} entries) is "
                       f"outside the file ({n} bytes): truncated or corrupt")
    if not 0 < shstrndx < shnum:
        raise ElfError(f"section name table index {shstrndx} out of range "
                       f"(0 < index < {shnum})")
    raw = [shdr.unpack_from(data, shoff + i * shentsize) for i in range(shnum)]
    for i, h in enumerate(raw[1:], 1):
        typ, off, size = h[1], h[4], h[5]
        if typ != SHT_NOBITS and (off > n or size > n - off):
            raise ElfError(f"section {i} (offset {off}, {size} bytes) runs past the end "
                           f"of the file ({n} bytes): truncated or corrupt")
        if h[6] >= shnum:
            raise ElfError(f"section {i} links to section {h[6]}, which does not exist")
    st = raw[shstrndx]
    st_off, st_size = st[4], st[5]
    if st[1] != SHT_STRTAB or st_size == 0 or data[st_off + st_size - 1] != 0:
        raise ElfError(f"section name table (section {shstrndx}) is not a "
                       "NUL-terminated string table")
    out: list[Section] = []
    for i, h in enumerate(raw):
        if h[0] >= st_size:
            raise ElfError(f"section {i}: name offset {h[0]} is outside the section "
                           f"name table ({st_size} bytes)")
        end = data.index(b"\0", st_off + h[0])
        name = data[st_off + h[0]:end].decode("utf-8", "replace")
        out.append(Section(i, name, h[1], h[2], h[4], h[5], h[6]))
    for s in out:
        if s.type == SHT_SYMTAB and out[s.link].type != SHT_STRTAB:
            raise ElfError(f"symbol table {s.name} links to section {s.link}, "
                           "not a string table")
    spans = sorted([(0, ehsize, "the ELF header"),
                    (shoff, table_end, "the section header table")]
                   + [(s.offset, s.offset + s.size, f"section {s.name or s.index}")
                      for s in out[1:] if s.type != SHT_NOBITS and s.size])
    for (a0, a1, a), (b0, _b1, b) in itertools.pairwise(spans):
        if b0 < a1:
            raise ElfError(f"{a} (bytes {a0}-{a1}) and {b} (from byte {b0}) overlap")
    return out


def unique_section(sections: list[Section], name: str) -> Section | None:
    found = [s for s in sections if s.name == name]
    if len(found) > 1:
        raise ElfError(f"{len(found)} sections named {name}; exactly one is allowed")
    if found and (found[0].type == SHT_NOBITS or found[0].flags & SHF_COMPRESSED):
        raise ElfError(f"section {name} has no plain contents (NOBITS or compressed)")
    return found[0] if found else None


def parse_modinfo(raw: bytes) -> dict[str, list[str]]:
    """key -> values of a .modinfo section (NUL-separated key=value strings)."""
    info: dict[str, list[str]] = {}
    for entry in raw.split(b"\0"):
        if b"=" in entry:
            k, v = entry.decode("utf-8", "replace").split("=", 1)
            info.setdefault(k, []).append(v)
    return info


def check_against_modinfo(doc: dict[str, Any], modinfo: dict[str, list[str]]) -> None:
    """The manifest must describe this module: its parameters are exactly the
    module's parmtype= entries, with the same types; module name, version and
    ABI major agree where .modinfo has them."""
    params = doc.get("parameters")
    if not isinstance(params, list):
        raise ManifestError("manifest has no valid 'parameters'")
    declared: dict[str, str] = {}
    for p in params:
        if not (isinstance(p, dict) and isinstance(p.get("name"), str)
                and isinstance(p.get("type"), str)):
            raise ManifestError("manifest has a parameter without a name and type")
        if p["name"] in declared:
            raise ManifestError(f"manifest declares parameter {p['name']} twice")
        declared[p["name"]] = p["type"]
    actual: dict[str, str] = {}
    for entry in modinfo.get("parmtype", []):
        name, sep, typ = entry.partition(":")
        if not sep or not name:
            raise ManifestError(f"malformed .modinfo entry parmtype={entry!r}")
        if name in actual:
            raise ManifestError(f".modinfo declares parameter {name} twice")
        actual[name] = typ
    bad = []
    for name in sorted(set(declared) | set(actual)):
        if name not in declared:
            bad.append(f"parameter {name} ({actual[name]}) is a module parameter "
                       "(.modinfo parmtype=) missing from the manifest")
        elif name not in actual:
            bad.append(f"parameter {name} ({declared[name]}) is in the manifest but not a "
                       "module parameter (no .modinfo parmtype=)")
        elif declared[name] != actual[name]:
            bad.append(f"parameter {name}: manifest type {declared[name]}, module "
                       f"parmtype={name}:{actual[name]}")
    for entry in modinfo.get("parm", []):
        name = entry.partition(":")[0]
        if name not in declared:
            bad.append(f"parameter {name} has a description (.modinfo parm=) but is not "
                       "in the manifest")
    for key, mkey in (("module", "name"), ("version", "version"), ("abi_major", "vpsnet_abi")):
        values = modinfo.get(mkey)
        if values and str(doc.get(key)) not in values:
            bad.append(f"manifest {key} {doc.get(key)!r}, .modinfo {mkey}={values[0]}")
    if bad:
        raise ManifestError("manifest disagrees with the module's .modinfo: " + "; ".join(bad))


def modinfo_of(data: bytes, sections: list[Section]) -> dict[str, list[str]] | None:
    """The parsed .modinfo of a checked image (elf_sections), None if it has none."""
    mi = unique_section(sections, ".modinfo")
    return None if mi is None else parse_modinfo(data[mi.offset:mi.offset + mi.size])


def manifest_from_sections(data: bytes, sections: list[Section],
                           modinfo: dict[str, list[str]] | None) -> dict[str, Any]:
    """The checked manifest of an image whose structure and .modinfo the caller
    has already read (elf_sections, modinfo_of)."""
    sec = unique_section(sections, SECTION)
    if sec is None:
        raise ManifestError(f"no {SECTION} section (not a vpsnet module?)")
    doc = parse_manifest(data[sec.offset:sec.offset + sec.size], section=True)
    if modinfo is None:
        raise ManifestError("no .modinfo section (not a kernel module)")
    check_against_modinfo(doc, modinfo)
    return doc


def manifest_from_elf(data: bytes) -> dict[str, Any]:
    """The checked manifest of an (uncompressed) module image."""
    sections = elf_sections(data)
    return manifest_from_sections(data, sections, modinfo_of(data, sections))


# --------------------------------------------------------------------------- loading


def read_image(path: Path) -> bytes:
    """File contents; .ko.xz / .ko.gz are decompressed (by magic). OSError when
    the file cannot be read, ManifestError when it cannot be decompressed."""
    data = path.read_bytes()
    try:
        if data.startswith(b"\xfd7zXZ\x00"):
            return lzma.decompress(data)
        if data.startswith(b"\x1f\x8b"):
            return gzip.decompress(data)
    except (lzma.LZMAError, OSError, EOFError) as e:
        raise ManifestError(f"{path}: corrupt compressed file: {e}") from e
    if data.startswith(b"\x28\xb5\x2f\xfd"):
        raise ManifestError(f"{path}: zstd-compressed; decompress it first (zstd -d)")
    return data


@contextmanager
def errors_about(where: str) -> Iterator[None]:
    """Errors raised inside name the file they are about (same class)."""
    try:
        yield
    except ElfError as e:
        raise ElfError(f"{where}: malformed ELF file: {e}") from e
    except ManifestError as e:
        raise ManifestError(f"{where}: {e}") from e


def validate(doc: dict[str, Any], where: str) -> None:
    """The keys diff relies on, with the right shapes (a clear error, never a traceback)."""
    checks: list[tuple[str, type | tuple[type, ...]]] = [
        ("module", str), ("abi_major", int), ("parameters", list), ("metrics", list),
    ]
    for key, typ in checks:
        if not isinstance(doc.get(key), typ):
            raise ManifestError(f"{where}: manifest has no valid {key!r}")
    for what, items in (("parameter", doc["parameters"]), ("metric family", doc["metrics"])):
        seen: set[str] = set()
        for p in items:
            if not isinstance(p, dict) or not isinstance(p.get("name"), str):
                raise ManifestError(f"{where}: manifest has a {what} without a name")
            if p["name"] in seen:
                # diff matches by name: a second entry would hide the first
                raise ManifestError(f"{where}: manifest declares {what} {p['name']} twice")
            seen.add(p["name"])
    for m in doc["metrics"]:
        if not isinstance(m.get("labels", []), list):
            raise ManifestError(f"{where}: metric family {m['name']} has no label list")


def manifest_of_image(data: bytes, where: str) -> dict[str, Any]:
    """The checked manifest of an (already decompressed) ELF image: one
    .vpsnet_abi section, one document, parameters matching .modinfo."""
    with errors_about(where):
        doc = manifest_from_elf(data)
    validate(doc, where)
    return doc


def _document(raw: bytes, where: str) -> dict[str, Any]:
    """The checked manifest of a JSON document (a file, stdin, procfs)."""
    if raw.startswith(ELF_MAGIC):
        raise ManifestError(f"{where}: an ELF file on stdin is not supported; pass its path")
    with errors_about(where):
        doc = parse_manifest(raw)
    validate(doc, where)
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
        raise ManifestError(f"{where}: manifest disagrees with {LOADED_PARAMETERS}: "
                            f"not in the manifest: {', '.join(extra) or '-'}; "
                            f"not a module parameter: {', '.join(missing) or '-'}")


def load_manifest(spec: str) -> tuple[dict[str, Any], str]:
    """Manifest from a .ko (.ko.xz/.ko.gz too), a manifest JSON file, `loaded`,
    /sys/module/vpsnet or `-` (stdin).

    Returns the manifest and a description of where it came from.
    """
    if spec == "-":
        return _document(sys.stdin.buffer.read(), "<stdin>"), "<stdin>"
    if spec == "loaded":
        spec = LOADED_MANIFEST
    path = Path(spec)
    if path.is_dir():
        # /sys/module/vpsnet: the loaded module; sysfs has no manifest, procfs does
        if (path / "parameters").is_dir() or path.name == "vpsnet":
            return load_manifest(LOADED_MANIFEST)[0], f"{spec} ({LOADED_MANIFEST})"
        raise InputError(f"{spec}: is a directory")
    try:
        head = read_image(path)
    except FileNotFoundError as e:
        hint = " (is the vpsnet module loaded?)" if str(path) == LOADED_MANIFEST else ""
        raise InputError(f"{spec}: no such file{hint}") from e
    except OSError as e:
        raise InputError(f"{spec}: {e.strerror or e}") from e
    if head.startswith(ELF_MAGIC):
        return manifest_of_image(head, spec), spec
    doc = _document(head, spec)
    if str(path) == LOADED_MANIFEST:
        _check_loaded_parameters(doc, spec)
    return doc, spec


def read_manifest(ko: str | Path) -> dict[str, Any]:
    """The checked manifest of a vpsnet .ko file (.ko.xz/.ko.gz too)."""
    try:
        data = read_image(Path(ko))
    except OSError as e:
        raise ManifestError(f"{ko}: {e.strerror or e}") from e
    return manifest_of_image(data, str(ko))


def family_names(manifest: dict[str, Any]) -> set[str]:
    """Exposed metric family names declared by the manifest."""
    return {m["name"] for m in manifest["metrics"]}
