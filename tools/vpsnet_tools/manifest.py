"""Read the interface manifest embedded in vpsnet.ko (ELF section .vpsnet_abi)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from elftools.elf.elffile import ELFFile

SECTION = ".vpsnet_abi"
FORMAT = 1


class ManifestError(Exception):
    """The file has no readable vpsnet manifest."""


def parse_manifest(raw: bytes) -> dict[str, Any]:
    """Parse the NUL-terminated JSON document of the section."""
    text = raw.split(b"\0", 1)[0]
    try:
        doc = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ManifestError(f"manifest is not valid JSON: {e}") from e
    if not isinstance(doc, dict):
        raise ManifestError("manifest is not a JSON object")
    if doc.get("format") != FORMAT:
        raise ManifestError(f"unsupported manifest format {doc.get('format')!r}")
    return doc


def read_manifest(ko: str | Path) -> dict[str, Any]:
    """Return the manifest of a vpsnet .ko file."""
    try:
        with open(ko, "rb") as f:
            elf = ELFFile(f)
            sec = elf.get_section_by_name(SECTION)
            if sec is None:
                raise ManifestError(f"{ko}: no {SECTION} section (not a vpsnet module?)")
            return parse_manifest(sec.data())
    except OSError as e:
        raise ManifestError(f"{ko}: {e.strerror}") from e
    except ManifestError:
        raise
    except Exception as e:  # pyelftools raises its own errors on bad input
        raise ManifestError(f"{ko}: not an ELF file: {e}") from e


def family_names(manifest: dict[str, Any]) -> set[str]:
    """Exposed metric family names declared by the manifest."""
    return {m["name"] for m in manifest["metrics"]}
