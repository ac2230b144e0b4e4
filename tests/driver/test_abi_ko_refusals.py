"""vpsnet-abi on real but damaged vpsnet.ko files: manifest drift (a
module_param() added by hand outside vpsnet_params.h: the build refuses it;
built with kbuild directly, vpsnet-abi refuses it), copies of the base module
with .modinfo bytes patched (a parameter retyped, one removed), a second
manifest or a decoy put into .vpsnet_abi with objcopy, section headers past EOF
(truncated, e_shoff patched), overlapping sections and bad name offsets; and
hypothesis fuzz over the real manifest and the real module's headers (only the
tools' own errors, counted per class). Needs kernel headers and binutils only.
"""

from __future__ import annotations

import contextlib
import io
import json
import lzma
import struct
import subprocess
from pathlib import Path

import pytest
from abi_ko_variants import TOP, run_abi, substitute
from host_build import copy_driver_src, make
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from testlib.input_counts import InputCounts

from vpsnet_tools import abi
from vpsnet_tools.manifest import ManifestError, elf_sections, parse_manifest, read_manifest

# the session fixtures kver, other_kver, kos (built once for both files)
pytest_plugins = ["abi_ko_builds"]
pytestmark = pytest.mark.build


# --------------------------------------------------------------------------- manifest drift
# The parameters are declared once (driver-src/vpsnet_params.h), so a parameter
# retyped only in C cannot be built from the table. What can still happen: a
# module_param() written by hand outside the table, or a module whose .modinfo
# was altered after the build. The build's check-manifest and vpsnet-abi both
# refuse those, naming the parameter.

CHECK_MANIFEST = TOP / "driver-src" / "check-manifest"
EXTRA_PARAM = "static int extra_knob = 1;\nmodule_param(extra_knob, int, 0444);\n\n"


@pytest.fixture(scope="session")
def hand_param(kver: str, tmp_path_factory: pytest.TempPathFactory
               ) -> tuple[subprocess.CompletedProcess[str], bool, Path]:
    """A copy of driver-src with a module_param() outside the table: the
    Makefile build's result, whether it left a vpsnet.ko, and the module
    built with kbuild directly (no check step)."""
    src = copy_driver_src(tmp_path_factory.mktemp("hand-param") / "driver-src")
    substitute(src / "vpsnet_main.c", "/* The range of every uint parameter",
         EXTRA_PARAM + "/* The range of every uint parameter")
    made = make(src, f"KVER={kver}")
    left = (src / "vpsnet.ko").exists()
    raw = make(f"/lib/modules/{kver}/build", f"M={src}", "modules")
    assert raw.returncode == 0, raw.stdout + raw.stderr
    return made, left, src / "vpsnet.ko"


def test_build_refuses_a_hand_written_module_param(
        hand_param: tuple[subprocess.CompletedProcess[str], bool, Path]) -> None:
    made, left, _ = hand_param
    assert made.returncode != 0
    assert ("parameter extra_knob: module_param() type int, missing from the manifest "
            "(declare it in vpsnet_params.h)") in made.stderr, made.stderr
    assert "vpsnet.ko removed" in made.stderr
    assert not left


def _refused(ko: Path, base: Path, kver: str, needle: str) -> None:
    """manifest, diff (both ways) and check all exit 2 with one line naming it."""
    for argv in (["manifest", ko], ["diff", base, ko], ["diff", ko, base],
                 ["check", ko, "--kernel", kver]):
        r = run_abi(*argv)
        assert r.returncode == 2, (argv, r.stdout, r.stderr)
        assert needle in r.stderr and r.stderr.count("\n") == 1, (argv, r.stderr)
        assert "Traceback" not in r.stderr and "loads" not in r.stdout


def test_abi_refuses_a_hand_written_module_param(
        hand_param: tuple[subprocess.CompletedProcess[str], bool, Path],
        kos: dict[str, Path], kver: str) -> None:
    ko = hand_param[2]
    _refused(ko, kos["base"], kver, "parameter extra_knob (int) is a module parameter "
                                     "(.modinfo parmtype=) missing from the manifest")
    with pytest.raises(ManifestError, match="extra_knob"):
        read_manifest(ko)


def _patched(src: Path, dst: Path, old: bytes, new: bytes) -> Path:
    data = src.read_bytes()
    assert data.count(old) == 1 and len(old) == len(new), old
    dst.write_bytes(data.replace(old, new))
    return dst


@pytest.mark.parametrize("old, new, needle, script_needle", [
    (b"parmtype=stall_intervals:uint", b"parmtype=stall_intervals:long",
     "parameter stall_intervals: manifest type uint, module parmtype=stall_intervals:long",
     "parameter stall_intervals: module_param() type long, manifest type uint"),
    (b"parmtype=uevents:bool", b"parmtypX=uevents:bool",
     "parameter uevents (bool) is in the manifest but not a module parameter",
     "parameter uevents: in the manifest (bool) but not a module parameter"),
    (b"parmtype=interval_ms:uint", b"parmtype=interval_mz:uint",
     "parameter interval_mz (uint) is a module parameter (.modinfo parmtype=) missing",
     "parameter interval_mz: module_param() type uint, missing from the manifest"),
])
def test_altered_modinfo_is_refused(kos: dict[str, Path], kver: str, tmp_path: Path,
                                    old: bytes, new: bytes, needle: str,
                                    script_needle: str) -> None:
    ko = _patched(kos["base"], tmp_path / "vpsnet.ko", old, new)
    _refused(ko, kos["base"], kver, needle)
    r = subprocess.run(["sh", str(CHECK_MANIFEST), str(ko)], capture_output=True, text=True)
    assert r.returncode == 1 and script_needle in r.stderr, r.stderr


def test_build_check_passes_on_every_variant(kos: dict[str, Path]) -> None:
    for name, ko in kos.items():
        r = subprocess.run(["sh", str(CHECK_MANIFEST), str(ko)], capture_output=True,
                           text=True)
        assert r.returncode == 0 and "4 parameters match .modinfo" in r.stdout, (name, r)


# --------------------------------------------------------------------------- one manifest


def _section(ko: Path, name: str) -> bytes:
    out = subprocess.run(["objcopy", "-O", "binary", f"--only-section={name}", str(ko),
                          "/dev/stdout"], capture_output=True, check=True)
    return out.stdout


def _update(ko: Path, dst: Path, content: bytes) -> Path:
    blob = dst.with_suffix(".section")
    blob.write_bytes(content)
    subprocess.run(["objcopy", f"--update-section=.vpsnet_abi={blob}", str(ko), str(dst)],
                   check=True, capture_output=True)
    return dst


@pytest.mark.parametrize("how, needle", [
    ("second", "(a second manifest); exactly one manifest is allowed"),
    ("decoy-first", "(a second manifest); exactly one manifest is allowed"),
    ("trailing", "(trailing bytes); exactly one manifest is allowed"),
    ("duplicate-key", "manifest has the key 'parameters' twice"),
])
def test_second_manifest_in_the_section_is_refused(kos: dict[str, Path], kver: str,
                                                   tmp_path: Path, how: str,
                                                   needle: str) -> None:
    real = _section(kos["base"], ".vpsnet_abi")
    doc = json.loads(real[:-1])
    decoy = json.dumps({**doc, "parameters": []}, separators=(",", ":")).encode() + b"\0"
    content = {"second": real + decoy, "decoy-first": decoy + real,
               "trailing": real + b"\0\0\0\0",
               "duplicate-key": real[:-2] + b',"parameters":[]}\0'}[how]
    ko = _update(kos["base"], tmp_path / "vpsnet.ko", content)
    assert _section(ko, ".vpsnet_abi") == content
    _refused(ko, kos["base"], kver, needle)
    if how != "duplicate-key":  # the build step counts NULs; JSON keys are vpsnet-abi's
        r = subprocess.run(["sh", str(CHECK_MANIFEST), str(ko)], capture_output=True,
                           text=True)
        assert r.returncode == 1 and "exactly one NUL-terminated manifest" in r.stderr


# --------------------------------------------------------------------------- malformed ELF

_SHDR = struct.Struct("<IIQQQQIIQQ")


def _shdr_set(data: bytes, name: str, field: int, value: int | None = None,
              copy_from: str | None = None) -> bytes:
    secs = {s.name: s.index for s in elf_sections(data)}
    shoff = struct.unpack_from("<Q", data, 40)[0]
    out = bytearray(data)
    fields = list(_SHDR.unpack_from(out, shoff + 64 * secs[name]))
    if copy_from is not None:
        value = _SHDR.unpack_from(out, shoff + 64 * secs[copy_from])[field]
    assert value is not None
    fields[field] = value
    _SHDR.pack_into(out, shoff + 64 * secs[name], *fields)
    return bytes(out)


@pytest.mark.parametrize("how, needle", [
    ("truncated", "section header table"),
    ("shoff-past-eof", "section header table"),
    ("shnum-huge", "section header table"),
    ("section-past-eof", "runs past the end of the file"),
    ("overlap", "overlap"),
    ("bad-name-offset", "is outside the section name table"),
    ("shstrndx", "section name table index"),
])
def test_malformed_module_never_loads(kos: dict[str, Path], kver: str, tmp_path: Path,
                                      how: str, needle: str) -> None:
    data = kos["base"].read_bytes()
    bad = {
        "truncated": lambda d: d[:len(d) - 200],
        "shoff-past-eof": lambda d: d[:40] + struct.pack("<Q", len(d) + 64) + d[48:],
        "shnum-huge": lambda d: d[:60] + struct.pack("<H", 0xFFF0) + d[62:],
        "section-past-eof": lambda d: _shdr_set(d, ".vpsnet_abi", 5, len(d)),
        "overlap": lambda d: _shdr_set(d, ".vpsnet_abi", 4, copy_from=".modinfo"),
        "bad-name-offset": lambda d: _shdr_set(d, ".modinfo", 0, 1 << 24),
        "shstrndx": lambda d: d[:62] + struct.pack("<H", 0xFFFF) + d[64:],
    }[how](data)
    ko = tmp_path / "vpsnet.ko"
    ko.write_bytes(bad)
    xz = tmp_path / "vpsnet.ko.xz"
    xz.write_bytes(lzma.compress(bad, format=lzma.FORMAT_XZ))
    for path in (ko, xz):
        r = run_abi("check", path, "--kernel", kver, "--json")
        assert r.returncode == 2 and r.stdout == "", (how, r.stdout, r.stderr)
        assert "malformed ELF file" in r.stderr and needle in r.stderr, r.stderr
        assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1
    _refused(ko, kos["base"], kver, needle)


# --------------------------------------------------------------------------- fuzz (real module)

FUZZ = InputCounts("real-module fuzz")
_print_fuzz_counts = FUZZ.report_fixture()
FUZZ_SETTINGS = settings(max_examples=150, deadline=None, database=None,
                         suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def real_manifest(kos: dict[str, Path]) -> bytes:
    return _section(kos["base"], ".vpsnet_abi")


@FUZZ_SETTINGS
@given(data=st.data())
def test_fuzz_real_manifest(real_manifest: bytes, data: st.DataObject) -> None:
    real = real_manifest
    kind = data.draw(st.sampled_from(["flip", "insert", "delete", "truncate", "append",
                                      "random"]))
    pos = data.draw(st.integers(0, len(real)))
    blob = data.draw(st.binary(min_size=1, max_size=64))
    raw = {"flip": real[:pos] + blob[:1] + real[pos + 1:],
           "insert": real[:pos] + blob + real[pos:],
           "delete": real[:pos] + real[pos + len(blob):],
           "truncate": real[:pos], "append": real + blob,
           "random": blob}[kind]
    doc = FUZZ.call(f"real manifest ({kind})", ManifestError, parse_manifest, raw, True)
    if doc is not None:
        assert raw.count(b"\0") == 1 and raw.endswith(b"\0")


@FUZZ_SETTINGS
@given(data=st.data())
def test_fuzz_real_module_headers(kos: dict[str, Path], tmp_path_factory:
                                  pytest.TempPathFactory, data: st.DataObject) -> None:
    ko = kos["base"].read_bytes()
    shoff = struct.unpack_from("<Q", ko, 40)[0]
    region = data.draw(st.sampled_from(["ehdr", "shdr"]))
    lo, hi = (16, 64) if region == "ehdr" else (shoff, len(ko))
    out = bytearray(ko)
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(lo, hi - 1))
        width = data.draw(st.sampled_from([1, 2, 4, 8]))
        out[pos:pos + width] = data.draw(st.binary(min_size=width, max_size=width))
    p = tmp_path_factory.getbasetemp() / "fuzz-vpsnet.ko"
    p.write_bytes(bytes(out))
    doc = FUZZ.call(f"real module ({region})", ManifestError, read_manifest, p)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = abi.main(["manifest", str(p)])
    assert "Traceback" not in err.getvalue() and err.getvalue().count("\n") <= 1
    assert rc == (0 if doc is not None else 2), err.getvalue()
