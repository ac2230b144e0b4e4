"""vpsnet-abi check, the module side: what a .ko asks of the kernel (.modinfo,
imported symbols with their CRCs, signature). abi_check.py, the CLI and
status_next_boot.py import it.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile

from vpsnet_tools import modsig
from vpsnet_tools.manifest import (
    ELF_MAGIC,
    SECTION,
    InputError,
    elf_sections,
    errors_about,
    manifest_from_sections,
    modinfo_of,
    read_image,
)


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
        data = read_image(Path(path))
    except OSError as e:
        raise InputError(f"{path}: {e.strerror or e}") from e
    if not data.startswith(ELF_MAGIC):
        raise InputError(f"{path}: not an ELF file (not a kernel module)")
    # the structure first: pyelftools reads whatever the headers point at
    with errors_about(str(path)):
        sections = elf_sections(data)
        modinfo = modinfo_of(data, sections)
        if any(s.name == SECTION for s in sections):
            manifest_from_sections(data, sections, modinfo)  # one, agreeing with .modinfo
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
    return KoInfo(str(path), machine, modinfo, versions, undefined, data.endswith(modsig.SIG_MAGIC),
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
