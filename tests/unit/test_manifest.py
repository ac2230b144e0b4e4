"""The interface manifest embedded in vpsnet.ko, read with pyelftools."""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import json
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from testlib.input_counts import InputCounts

from vpsnet_tools import abi
from vpsnet_tools.cliargs import one_line
from vpsnet_tools.manifest import (
    SIG_MAGIC,
    ElfError,
    ManifestError,
    elf_sections,
    family_names,
    parse_manifest,
    read_manifest,
)

TOP = Path(__file__).resolve().parents[2]

# the status sample, loaded by path (works with or without tests/unit/__init__.py)
_spec = importlib.util.spec_from_file_location("vpsnet_status_sample",
                                               Path(__file__).with_name("test_status.py"))
assert _spec and _spec.loader
_status_sample = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_status_sample)
SAMPLE: str = _status_sample.SAMPLE
sample_families = _status_sample.sample_families
KERNELS_ENV = TOP / ".cache" / "kernels.env"


def _kernels() -> list[str]:
    if not KERNELS_ENV.exists():
        return []
    out = []
    for line in KERNELS_ENV.read_text().splitlines():
        if "=" in line:
            out.append(line.split("=", 1)[1].strip())
    return [k for k in out if Path(f"/lib/modules/{k}/build/Makefile").exists()]


@pytest.fixture(scope="module")
def built_ko(tmp_path_factory: pytest.TempPathFactory) -> Path:
    kernels = _kernels()
    if not kernels:
        pytest.skip(f"no kernel headers listed in {KERNELS_ENV} are installed")
    src = tmp_path_factory.mktemp("vpsnet") / "driver-src"
    shutil.copytree(TOP / "driver-src", src,
                    ignore=shutil.ignore_patterns("*.o", "*.ko", "*.mod*", ".*.cmd",
                                                  "vpsnet_config.h", ".vpsnet_config.id"))
    shutil.copy(TOP / "VERSION", src / "VERSION")
    r = subprocess.run(["make", "-C", str(src), f"KVER={kernels[-1]}"], capture_output=True,
                       text=True, timeout=600, env={**os.environ, "MAKEFLAGS": ""})
    assert r.returncode == 0, r.stdout + r.stderr
    return src / "vpsnet.ko"


def test_parse_rejects_bad_documents() -> None:
    with pytest.raises(ManifestError, match="not valid JSON"):
        parse_manifest(b"{nope\0")
    with pytest.raises(ManifestError, match="format"):
        parse_manifest(b'{"format": 99}\0')
    assert parse_manifest(b'{"format": 1}\0')["format"] == 1
    assert parse_manifest(b'{"format": 1}\n')["format"] == 1  # procfs: no NUL


def test_read_manifest_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="No such file"):
        read_manifest(tmp_path / "missing.ko")
    bad = tmp_path / "bad.ko"
    bad.write_bytes(b"not an elf")
    with pytest.raises(ManifestError, match="not an ELF"):
        read_manifest(bad)
    with pytest.raises(ManifestError, match=r"not a relocatable object"):
        read_manifest("/bin/true")


def test_manifest_from_built_module(built_ko: Path) -> None:
    m: dict[str, Any] = read_manifest(built_ko)
    assert m["format"] == 1
    assert m["module"] == "vpsnet"
    assert m["version"] == (TOP / "VERSION").read_text().strip()
    assert m["abi_major"] == 1
    assert m["health_states"] == ["ok", "rx_silent", "tx_stalled", "carrier_down"]
    assert m["uevent"]["keys"] == ["VPSNET_STATE", "VPSNET_PREV"]
    assert "/proc/net/vpsnet/metrics" in m["proc"]
    assert m["build"] == {"test_force_unhealthy": False, "test_unhealthy_after": 0}
    params = {p["name"]: p for p in m["parameters"]}
    assert params["drivers"]["default"] == "ena,virtio_net,gve"
    assert (params["interval_ms"]["min"], params["interval_ms"]["max"],
            params["interval_ms"]["default"]) == (100, 60000, 1000)
    assert (params["stall_intervals"]["min"], params["stall_intervals"]["max"],
            params["stall_intervals"]["default"]) == (2, 100, 3)
    assert params["uevents"] == {**params["uevents"], "type": "bool", "default": True}
    for fam in m["metrics"]:
        assert re.fullmatch(r"vpsnet_[a-z0-9_]+", fam["name"]), fam
        assert fam["type"] in ("gauge", "counter"), fam
        assert (fam["type"] == "counter") == fam["name"].endswith("_total"), fam
        assert fam["help"], fam
    names = [f["name"] for f in m["metrics"]]
    assert len(names) == len(set(names))


def test_manifest_matches_module_parameters(built_ko: Path) -> None:
    """Every module_param is declared in the manifest, and nothing else."""
    if not shutil.which("modinfo"):
        pytest.skip("modinfo (kmod) not installed")
    out = subprocess.run(["modinfo", "-F", "parm", str(built_ko)], capture_output=True,
                         text=True, check=True).stdout
    modparams = {ln.split(":", 1)[0] for ln in out.splitlines() if ln}
    assert modparams == {p["name"] for p in read_manifest(built_ko)["parameters"]}
    version = subprocess.run(["modinfo", "-F", "version", str(built_ko)], capture_output=True,
                             text=True, check=True).stdout.strip()
    assert version == (TOP / "VERSION").read_text().strip()


def test_status_sample_matches_manifest(built_ko: Path) -> None:
    """The sample used by test_status.py has exactly the manifest's families and labels."""
    m = read_manifest(built_ko)
    assert sample_families() == family_names(m)
    labels = {f["name"]: f["labels"] for f in m["metrics"]}
    types = {f["name"]: f["type"] for f in m["metrics"]}
    for fam in text_string_to_metric_families(SAMPLE):
        for s in fam.samples:
            assert list(s.labels) == labels[s.name], s
            assert fam.type == types[s.name]


# ------------------------------------------------------------------ one manifest, sound ELF
# Synthetic modules: an ELF64 relocatable object with the sections a vpsnet.ko
# has for this purpose (.modinfo, .vpsnet_abi, .symtab/.strtab), section header
# table at the end, as `ld -r` lays it out. tests/driver/test_abi_ko.py does the
# same cases on real built modules.

PARAMS = [("drivers", "charp", None, None, "ena,virtio_net,gve"),
          ("interval_ms", "uint", 100, 60000, 1000),
          ("stall_intervals", "uint", 2, 100, 3),
          ("uevents", "bool", None, None, True)]
DOC: dict[str, Any] = {
    "format": 1, "module": "vpsnet", "version": "1.0.0", "abi_major": 1,
    "exposition": "text/plain; version=0.0.4",
    "parameters": [{"name": n, "type": t, "min": lo, "max": hi, "default": d,
                    "description": f"{n} text"} for n, t, lo, hi, d in PARAMS],
    "health_states": ["ok", "rx_silent", "tx_stalled", "carrier_down"],
    "metrics": [{"name": "vpsnet_link_up", "type": "gauge",
                 "labels": ["netns", "device", "driver"], "help": "h"}],
    "uevent": {"action": "change", "subsystem": "net", "keys": ["VPSNET_STATE", "VPSNET_PREV"]},
    "proc": ["/proc/net/vpsnet/metrics", "/proc/net/vpsnet/manifest"],
    "build": {"test_force_unhealthy": False, "test_unhealthy_after": 0},
}
MANIFEST = json.dumps(DOC, separators=(",", ":")).encode() + b"\0"
MODINFO = b"".join(
    [b"vpsnet_abi=1\0version=1.0.0\0license=GPL\0"]
    + [f"parm={n}:{n} text\0".encode() for n, *_ in PARAMS]
    + [f"parmtype={n}:{t}\0".encode() for n, t, *_ in PARAMS]
    + [b"name=vpsnet\0vermagic=6.1.0-57-cloud-amd64 SMP preempt mod_unload modversions \0"])
SHDR = struct.Struct("<IIQQQQIIQQ")
SHT_PROGBITS, SHT_SYMTAB, SHT_STRTAB = 1, 2, 3


def make_ko(manifest: bytes = MANIFEST, modinfo: bytes = MODINFO,
            extra: list[tuple[str, int, bytes]] | None = None) -> bytes:
    """A minimal ET_REL module image; .shstrtab is the last section."""
    secs = [(".modinfo", SHT_PROGBITS, modinfo), (".vpsnet_abi", SHT_PROGBITS, manifest),
            (".strtab", SHT_STRTAB, b"\0printk\0"),
            (".symtab", SHT_SYMTAB, bytes(24) + struct.pack("<IBBHQQ", 1, 0x10, 0, 0, 0, 0)),
            *(extra or [])]
    names = b"\0" + b"".join(n.encode() + b"\0" for n, _, _ in secs) + b".shstrtab\0"
    secs.append((".shstrtab", SHT_STRTAB, names))
    body, headers, name_off = bytearray(64), [bytes(64)], 1
    for name, typ, data in secs:
        body += bytes(-len(body) % 8)
        link = 3 if name == ".symtab" else 0
        entsize = 24 if name == ".symtab" else 0
        headers.append(SHDR.pack(name_off if name != ".shstrtab" else len(names) - 10, typ, 0,
                                 0, len(body), len(data), link, 1 if entsize else 0, 1,
                                 entsize))
        name_off += len(name) + 1
        body += data
    body += bytes(-len(body) % 8)
    shoff = len(body)
    ident = b"\x7fELF\x02\x01\x01" + bytes(9)
    ehdr = ident + struct.pack("<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64,
                               len(headers), len(headers) - 1)
    body[:64] = ehdr
    return bytes(body) + b"".join(headers)


def shdr_field(data: bytes, index: int, field: int, value: int) -> bytes:
    """data with field `field` (SHDR order) of section header `index` set to value."""
    shoff = struct.unpack_from("<Q", data, 40)[0]
    fields = list(SHDR.unpack_from(data, shoff + 64 * index))
    fields[field] = value
    out = bytearray(data)
    SHDR.pack_into(out, shoff + 64 * index, *fields)
    return bytes(out)


def ehdr_field(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into("<" + fmt, out, offset, value)
    return bytes(out)


def _read(tmp_path: Path, data: bytes) -> dict[str, Any]:
    p = tmp_path / "vpsnet.ko"
    p.write_bytes(data)
    return read_manifest(p)


def test_synthetic_module_reads(tmp_path: Path) -> None:
    assert _read(tmp_path, make_ko()) == DOC
    assert [s.name for s in elf_sections(make_ko())][1:3] == [".modinfo", ".vpsnet_abi"]


@pytest.mark.parametrize("raw, needle", [
    (MANIFEST + MANIFEST, "after the manifest's NUL terminator (a second manifest)"),
    (b'{"format":1,"module":"decoy"}\0' + MANIFEST, "(a second manifest)"),
    (MANIFEST + b"\0", "1 bytes after the manifest's NUL terminator (trailing bytes)"),
    (MANIFEST + b"x", "(trailing bytes)"),
    (MANIFEST[:-1], "no NUL-terminated manifest"),
    (MANIFEST[:-2] + b',"parameters":[]}\0', "the key 'parameters' twice"),
    (b'{"format":1,"x":NaN}\0', "NaN is not a JSON value"),
    (b"[" * 100000 + b"\0", "not valid JSON"),
    (b'{"format":1,"n":' + b"9" * 5000 + b"}\0", "not valid JSON"),
    (b"\xff\xfe{}\0", "not UTF-8"),
    (b" " * (1 << 20) + b"{}\0", "more than"),
])
def test_section_holds_exactly_one_document(raw: bytes, needle: str) -> None:
    with pytest.raises(ManifestError) as e:
        parse_manifest(raw, section=True)
    assert needle in str(e.value)


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d[:len(d) - 64 * 3], "section header table"),  # truncated: headers past EOF
    (lambda d: ehdr_field(d, 40, "Q", len(d) + 4096), "section header table"),
    (lambda d: ehdr_field(d, 60, "H", 0xFFFF), "section header table"),
    (lambda d: ehdr_field(d, 62, "H", 99), "section name table index 99 out of range"),
    (lambda d: ehdr_field(d, 62, "H", 0), "section name table index 0 out of range"),
    (lambda d: ehdr_field(d, 58, "H", 40), "bad ELF header sizes"),
    (lambda d: ehdr_field(d, 16, "H", 2), "not a relocatable object"),
    (lambda d: shdr_field(d, 2, 5, 1 << 40), "runs past the end of the file"),
    (lambda d: shdr_field(d, 2, 4, len(d) + 1), "runs past the end of the file"),
    (lambda d: shdr_field(d, 2, 0, 1 << 20), "name offset 1048576 is outside"),
    (lambda d: shdr_field(d, 2, 4, shdr(d, 1)[4]), "overlap"),
    (lambda d: shdr_field(d, 1, 4, 8), "the ELF header"),
    (lambda d: shdr_field(d, 4, 6, 1), "not a string table"),
    (lambda d: shdr_field(d, 4, 6, 77), "links to section 77, which does not exist"),
    (lambda d: d[:5] + b"\x09" + d[6:], "bad ELF data encoding"),
    (lambda d: d[:-64 * 6 - 1] + b"x" + d[-64 * 6:], "not a NUL-terminated string table"),
    (lambda d: d[:30], "truncated ELF header"),
])
def test_malformed_elf_refused(tmp_path: Path, mutate: Any, needle: str) -> None:
    bad = mutate(make_ko())
    with pytest.raises(ElfError) as e:
        _read(tmp_path, bad)
    assert needle in str(e.value)
    # vpsnet-abi: exit 2 with that one line, for manifest, diff and check alike
    p = tmp_path / "vpsnet.ko"
    for argv in (["manifest", str(p)], ["diff", str(p), str(p)],
                 ["check", str(p), "--kernel", "6.1.0-57-cloud-amd64"]):
        rc, err = _cli(argv)
        assert rc == 2 and "malformed ELF file" in err and needle in err, (argv, err)


def shdr(data: bytes, index: int) -> tuple[int, ...]:
    shoff = struct.unpack_from("<Q", data, 40)[0]
    return tuple(SHDR.unpack_from(data, shoff + 64 * index))


def test_second_vpsnet_abi_section_refused(tmp_path: Path) -> None:
    decoy = json.dumps({**DOC, "parameters": []}).encode() + b"\0"
    with pytest.raises(ElfError, match=r"2 sections named \.vpsnet_abi"):
        _read(tmp_path, make_ko(extra=[(".vpsnet_abi", SHT_PROGBITS, decoy)]))
    with pytest.raises(ElfError, match=r"2 sections named \.modinfo"):
        _read(tmp_path, make_ko(extra=[(".modinfo", SHT_PROGBITS, b"parmtype=x:int\0")]))


@pytest.mark.parametrize("modinfo, needle", [
    (MODINFO.replace(b"parmtype=stall_intervals:uint", b"parmtype=stall_intervals:long"),
     "parameter stall_intervals: manifest type uint, module parmtype=stall_intervals:long"),
    (MODINFO.replace(b"parmtype=uevents:bool\0", b""),
     "parameter uevents (bool) is in the manifest but not a module parameter"),
    (MODINFO + b"parmtype=extra_knob:int\0",
     "parameter extra_knob (int) is a module parameter (.modinfo parmtype=) missing from"),
    (MODINFO + b"parm=ghost:boo\0", "parameter ghost has a description"),
    (MODINFO + b"parmtype=uevents:bool\0", ".modinfo declares parameter uevents twice"),
    (MODINFO + b"parmtype=nocolon\0", "malformed .modinfo entry"),
    (MODINFO.replace(b"version=1.0.0", b"version=9.9.9"),
     "manifest version '1.0.0', .modinfo version=9.9.9"),
    (MODINFO.replace(b"name=vpsnet", b"name=decoy"), "manifest module 'vpsnet', .modinfo name"),
    (MODINFO.replace(b"vpsnet_abi=1", b"vpsnet_abi=2"), "manifest abi_major 1"),
    # a name with a newline (found by the fuzzer): the tool's message stays one line
    (MODINFO + b"parm=\nghost:boo\0", "parameter \nghost has a description"),
])
def test_manifest_must_match_modinfo(tmp_path: Path, modinfo: bytes, needle: str) -> None:
    with pytest.raises(ManifestError) as e:
        _read(tmp_path, make_ko(modinfo=modinfo))
    assert needle in str(e.value)
    p = tmp_path / "vpsnet.ko"
    for argv in (["manifest", str(p)], ["diff", str(p), str(p)],
                 ["check", str(p), "--kernel", "6.1.0-57-cloud-amd64"]):
        rc, err = _cli(argv)
        assert rc == 2 and one_line(needle) in err, (argv, err)


def test_duplicate_parameter_in_manifest_refused(tmp_path: Path) -> None:
    doc = copy.deepcopy(DOC)
    doc["parameters"].append(dict(doc["parameters"][1], type="ulong"))
    raw = json.dumps(doc).encode() + b"\0"
    with pytest.raises(ManifestError, match="declares parameter interval_ms twice"):
        _read(tmp_path, make_ko(manifest=raw))


def test_signed_module_trailer_is_not_part_of_the_image(tmp_path: Path) -> None:
    signed = make_ko() + b"S" * 300 + struct.pack(">BBBBB3xI", 0, 0, 2, 0, 0, 300) + SIG_MAGIC
    assert _read(tmp_path, signed) == DOC
    lying = make_ko() + struct.pack(">BBBBB3xI", 0, 0, 2, 0, 0, 1 << 30) + SIG_MAGIC
    with pytest.raises(ElfError, match="longer than the file"):
        _read(tmp_path, lying)


def _cli(argv: list[str]) -> tuple[int, str]:
    """vpsnet-abi in-process; (exit code, stderr), stderr a single line without traceback."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        rc = abi.main(argv)
    text = err.getvalue()
    assert "Traceback" not in text and text.count("\n") <= 1, text
    return rc, text


# --------------------------------------------------------------------------- fuzz
# Every input is counted per class; the counts are printed at the end of the
# module (pytest -s) and each class must have produced rejected inputs.

FUZZ = InputCounts("manifest fuzz")
_print_fuzz_counts = FUZZ.report_fixture()
FUZZ_SETTINGS = settings(max_examples=300, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.too_slow])


@FUZZ_SETTINGS
@given(raw=st.binary(max_size=600), section=st.booleans())
def test_fuzz_parse_random_bytes(raw: bytes, section: bool) -> None:
    doc = FUZZ.call("random bytes", ManifestError, parse_manifest, raw, section)
    assert doc is None or isinstance(doc, dict)


def _mutate(data: bytes, draw: Any) -> bytes:
    kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "append", "splice"]))
    pos = draw(st.integers(0, len(data)))
    blob = draw(st.binary(min_size=1, max_size=40))
    if kind == "flip" and pos < len(data):
        return data[:pos] + bytes([data[pos] ^ draw(st.integers(1, 255))]) + data[pos + 1:]
    if kind == "insert":
        return data[:pos] + blob + data[pos:]
    if kind == "delete":
        return data[:pos] + data[pos + len(blob):]
    if kind == "truncate":
        return data[:pos]
    if kind == "splice":  # a second (partial) manifest somewhere
        return data[:pos] + MANIFEST[:draw(st.integers(1, len(MANIFEST)))] + data[pos:]
    return data + blob


@FUZZ_SETTINGS
@given(data=st.data())
def test_fuzz_parse_mutated_manifest(data: st.DataObject) -> None:
    raw = _mutate(MANIFEST, data.draw)
    doc = FUZZ.call("mutated manifest", ManifestError, parse_manifest, raw, True)
    if doc is not None:  # what is accepted is exactly one document
        assert raw.count(b"\0") == 1 and raw.endswith(b"\0")


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ_SETTINGS
@given(data=st.data())
def test_fuzz_mutated_module(fuzz_dir: Path, data: st.DataObject) -> None:
    """Mutations of the ELF header and section headers (and of anything, less
    often): the reader and the CLI give their own one-line error or a manifest."""
    ko = make_ko()
    shoff = struct.unpack_from("<Q", ko, 40)[0]
    region = data.draw(st.sampled_from(["ehdr", "shdr", "any"]))
    lo, hi = {"ehdr": (16, 64), "shdr": (shoff, len(ko)), "any": (0, len(ko))}[region]
    out = bytearray(ko)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(lo, hi - 1))
        width = data.draw(st.sampled_from([1, 2, 4, 8]))
        out[pos:pos + width] = data.draw(st.binary(min_size=width, max_size=width))
    if data.draw(st.booleans()):
        out = out[:data.draw(st.integers(0, len(out)))]
    bad = bytes(out)
    p = fuzz_dir / "vpsnet.ko"
    p.write_bytes(bad)
    doc = FUZZ.call(f"mutated module ({region})", ManifestError, read_manifest, p)
    if doc is not None:
        for s in elf_sections(bad)[1:]:  # accepted: every section inside the file
            assert s.type == 8 or s.offset + s.size <= len(bad)
    for argv in (["manifest", str(p)], ["check", str(p), "--kernel", "0.0.0-none"]):
        rc, err = _cli(argv)
        assert rc == 2 or (rc == 0 and doc is not None), (argv, rc, err)


def test_fuzz_counts_cover_every_class() -> None:
    if not FUZZ:
        pytest.skip("run with the fuzz tests")
    for cls in FUZZ.classes():
        assert FUZZ[cls].rejected > 0, cls
