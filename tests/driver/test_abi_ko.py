"""vpsnet-abi on real vpsnet.ko files built from temporary, patched copies of driver-src.

Variants (all built once per session for one kernel, the first in .cache/kernels.env):
base, an added metric family, a renamed family, ABI major bumped, the
VPSNET_TEST_FORCE_UNHEALTHY test build. `check` runs against the build's own
kernel, the other installed kernel, and altered copies of its Module.symvers
and config.

Manifest drift and malformed modules: a module_param() added by hand outside
vpsnet_params.h (the build refuses it; built with kbuild directly, vpsnet-abi
refuses it), copies of the base module with .modinfo bytes patched (a parameter
retyped, one removed), a second manifest or a decoy put into .vpsnet_abi with
objcopy, section headers past EOF (truncated, e_shoff patched), overlapping
sections and bad name offsets; and hypothesis fuzz over the real manifest and the
real module's headers (only the tools' own errors, counted per class).

Nothing here boots a guest: every test needs only the kernel headers (skipped
with the reason when .cache/kernels.env or the headers are missing) and binutils.
"""

from __future__ import annotations

import contextlib
import io
import json
import lzma
import re
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from host_build import copy_driver_src, make
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from input_counts import InputCounts

from vpsnet_tools import abi
from vpsnet_tools.manifest import ManifestError, elf_sections, parse_manifest, read_manifest

TOP = Path(__file__).resolve().parents[2]
KERNELS_ENV = TOP / ".cache" / "kernels.env"

pytestmark = pytest.mark.build


def _kernels() -> list[str]:
    if not KERNELS_ENV.exists():
        return []
    ks = [ln.split("=", 1)[1].strip() for ln in KERNELS_ENV.read_text().splitlines()
          if "=" in ln]
    return [k for k in ks if Path(f"/lib/modules/{k}/build/Makefile").exists()]


def _sub(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert text.count(old) >= count, f"{old!r} not in {path} (driver-src changed?)"
    path.write_text(text.replace(old, new))


def _add_family(src: Path) -> None:
    with (src / "vpsnet_families.h").open("a") as f:
        f.write('VPSNET_SEP\nVPSNET_FAMILY(softirq_net_tx_total, counter, VPSNET_LS_CPU,\n'
                '\t      "NET_TX softirqs handled by the CPU")\n')


def _rename_family(src: Path) -> None:
    for p in [*src.glob("*.c"), *src.glob("*.h")]:
        if "link_flaps_total" in p.read_text():
            _sub(p, "link_flaps_total", "carrier_flaps_total")


def _bump_major(src: Path) -> None:
    text = (src / "vpsnet_abi.h").read_text()
    new, n = re.subn(r"(#define VPSNET_ABI_MAJOR\s+)1\b", r"\g<1>2", text)
    assert n == 1, "VPSNET_ABI_MAJOR 1 not found in vpsnet_abi.h"
    (src / "vpsnet_abi.h").write_text(new)


VARIANTS: dict[str, tuple[Callable[[Path], None] | None, list[str]]] = {
    "base": (None, []),
    "added": (_add_family, []),
    "renamed": (_rename_family, []),
    "major2": (_bump_major, []),
    "unhealthy": (None, ["VPSNET_TEST_FORCE_UNHEALTHY=1"]),
}


@pytest.fixture(scope="session")
def kver() -> str:
    ks = _kernels()
    if not ks:
        pytest.skip(f"no kernel headers listed in {KERNELS_ENV} are installed")
    return ks[0]


@pytest.fixture(scope="session")
def other_kver(kver: str) -> str:
    others = [k for k in _kernels() if k != kver]
    if not others:
        pytest.skip("needs headers for a second kernel")
    return others[0]


@pytest.fixture(scope="session")
def kos(kver: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every variant built once: name -> vpsnet.ko."""
    root = tmp_path_factory.mktemp("abi-variants")
    out: dict[str, Path] = {}
    for name, (patch, flags) in VARIANTS.items():
        src = copy_driver_src(root / name)
        if patch:
            patch(src)
        r = make(src, f"KVER={kver}", *flags)
        assert r.returncode == 0, f"{name}: {r.stdout}{r.stderr}"
        out[name] = src / "vpsnet.ko"
    return out


def _abi(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The CLI as users run it (the module entry point of the console script)."""
    return subprocess.run([sys.executable, "-m", "vpsnet_tools.abi", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def _diff(old: Path, new: Path) -> tuple[int, dict[str, object]]:
    r = _abi("diff", "--json", old, new)
    assert r.returncode in (0, 3), r.stderr
    assert "Traceback" not in r.stderr
    return r.returncode, json.loads(r.stdout)


def _messages(doc: dict[str, object]) -> list[str]:
    findings = doc["findings"]
    assert isinstance(findings, list)
    return [f"{f['severity']}: {f['message']}" for f in findings]


# --------------------------------------------------------------------------- manifest / diff


def test_manifest_prints_the_embedded_document(kos: dict[str, Path]) -> None:
    r = _abi("manifest", kos["base"])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == read_manifest(kos["base"])


def test_same_build_is_compatible(kos: dict[str, Path]) -> None:
    rc, doc = _diff(kos["base"], kos["base"])
    assert (rc, doc["verdict"], doc["findings"]) == (0, "compatible", [])


def test_added_family_is_additive(kos: dict[str, Path]) -> None:
    rc, doc = _diff(kos["base"], kos["added"])
    assert (rc, doc["verdict"]) == (0, "additive")
    assert _messages(doc) == ["additive: metric family vpsnet_softirq_net_tx_total added "
                              "(counter)"]
    # and the way back (a downgrade) removes it
    rc, doc = _diff(kos["added"], kos["base"])
    assert (rc, doc["verdict"]) == (3, "breaking")
    assert _messages(doc) == ["breaking: metric family vpsnet_softirq_net_tx_total removed"]


def test_renamed_family_is_breaking_and_undeclared(kos: dict[str, Path]) -> None:
    rc, doc = _diff(kos["base"], kos["renamed"])
    assert (rc, doc["verdict"]) == (3, "breaking")
    assert _messages(doc) == ["breaking: metric family vpsnet_link_flaps_total removed",
                              "additive: metric family vpsnet_carrier_flaps_total added "
                              "(counter)"]
    assert doc["undeclared_break"] is True and doc["abi_major_bumped"] is False
    r = _abi("diff", kos["base"], kos["renamed"])
    assert r.returncode == 3
    assert r.stdout.splitlines()[0].startswith("breaking: ")
    assert "  breaking: metric family vpsnet_link_flaps_total removed" in r.stdout


def test_abi_major_bump_is_breaking_and_declared(kos: dict[str, Path]) -> None:
    rc, doc = _diff(kos["base"], kos["major2"])
    assert (rc, doc["verdict"]) == (3, "breaking")
    assert _messages(doc) == ["breaking: ABI major bumped 1 -> 2: declared incompatible"]
    assert doc["abi_major_bumped"] is True and doc["undeclared_break"] is False
    assert doc["new"]["abi_major"] == 2  # type: ignore[index]


def test_force_unhealthy_build_is_compatible(kos: dict[str, Path]) -> None:
    rc, doc = _diff(kos["base"], kos["unhealthy"])
    assert (rc, doc["verdict"]) == (0, "compatible")
    assert _messages(doc) == ["note: build flag test_force_unhealthy: false -> true "
                              "(not part of the ABI)"]


def test_manifest_json_file_and_ko_mix(kos: dict[str, Path], tmp_path: Path) -> None:
    j = tmp_path / "base.json"
    r = _abi("manifest", kos["base"])
    j.write_text(r.stdout)
    rc, doc = _diff(j, kos["added"])
    assert (rc, doc["verdict"]) == (0, "additive")


# --------------------------------------------------------------------------- check


def _check(ko: Path, kver: str, *extra: str | Path) -> tuple[int, dict[str, object]]:
    r = _abi("check", ko, "--kernel", kver, "--json", *extra)
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, json.loads(r.stdout)


def _fails(doc: dict[str, object]) -> list[str]:
    findings = doc["findings"]
    assert isinstance(findings, list)
    return [f"{f['check']}: {f['message']}" for f in findings if f["status"] == "fail"]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_check_loads_on_its_own_kernel(kos: dict[str, Path], kver: str, variant: str) -> None:
    rc, doc = _check(kos[variant], kver)
    assert (rc, doc["loads"], _fails(doc)) == (0, True, [])
    checks = {f["check"] for f in doc["findings"]}  # type: ignore[attr-defined]
    assert {"vermagic", "symbol", "namespace", "depends", "signature"} <= checks


def test_check_text_output(kos: dict[str, Path], kver: str) -> None:
    r = _abi("check", kos["base"], "--kernel", kver)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"loads: {kos['base']} on {kver}"
    assert any(re.match(rf"  ok: vermagic: {re.escape(kver)} SMP .*matches", ln) for ln in lines)
    assert any(re.match(r"  ok: symbol: \d+ imported symbols: CRCs match", ln) for ln in lines)


def test_check_fails_on_the_other_kernel(kos: dict[str, Path], kver: str,
                                         other_kver: str) -> None:
    rc, doc = _check(kos["base"], other_kver)
    assert (rc, doc["loads"]) == (1, False)
    fails = _fails(doc)
    assert fails[0].startswith(f"vermagic: built for {kver}, kernel is {other_kver}")
    # the symbols are named: CRC disagreements (and symbols gone in the other kernel)
    crc = [f for f in fails if re.match(r"symbol: \w+: CRC 0x[0-9a-f]{8} in module, "
                                        r"0x[0-9a-f]{8} in ", f)]
    assert crc, fails
    r = _abi("check", kos["base"], "--kernel", other_kver)
    assert r.returncode == 1 and r.stdout.startswith("will not load: ")


def test_check_fails_on_an_altered_crc(kos: dict[str, Path], kver: str, tmp_path: Path) -> None:
    symvers = Path(f"/lib/modules/{kver}/build/Module.symvers").read_text()
    m = re.search(r"^0x([0-9a-f]+)\t(_printk|printk)\t", symvers, re.M)
    assert m, "printk not in Module.symvers"
    crc, sym = int(m.group(1), 16), m.group(2)
    bad = crc ^ 0x1
    copy = tmp_path / "Module.symvers"
    copy.write_text(symvers.replace(m.group(0), f"0x{bad:08x}\t{sym}\t", 1))
    rc, doc = _check(kos["base"], kver, "--symvers", copy)
    assert (rc, doc["loads"]) == (1, False)
    assert _fails(doc) == [f"symbol: {sym}: CRC 0x{crc:08x} in module, 0x{bad:08x} in {kver} "
                           "(vmlinux) (disagrees about version)"]
    # a symbol the kernel no longer exports
    copy.write_text(symvers.replace(m.group(0), "0x00000001\tsomething_else\t", 1))
    rc, doc = _check(kos["base"], kver, "--symvers", copy)
    assert _fails(doc) == [f"symbol: {sym}: not exported by {kver} (Unknown symbol)"]


def test_check_signature_required(kos: dict[str, Path], kver: str, tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(Path(f"/lib/modules/{kver}/build/.config").read_text()
                      + "CONFIG_MODULE_SIG_FORCE=y\n")
    rc, doc = _check(kos["base"], kver, "--config", config)
    assert rc == 1
    assert _fails(doc) == ["signature: kernel requires signed modules "
                           "(CONFIG_MODULE_SIG_FORCE=y); module is unsigned"]
    signed = tmp_path / "vpsnet.ko"
    signed.write_bytes(kos["base"].read_bytes() + b"\0" * 12 + b"~Module signature appended~\n")
    rc, doc = _check(signed, kver, "--config", config)
    assert (rc, _fails(doc)) == (0, [])


def test_check_compressed_module(kos: dict[str, Path], kver: str, tmp_path: Path) -> None:
    xz = tmp_path / "vpsnet.ko.xz"
    xz.write_bytes(lzma.compress(kos["base"].read_bytes(), format=lzma.FORMAT_XZ))
    rc, doc = _check(xz, kver)
    assert (rc, _fails(doc)) == (0, [])
    assert _abi("manifest", xz).returncode == 0


def test_check_unknown_kernel_is_exit_2(kos: dict[str, Path]) -> None:
    r = _abi("check", kos["base"], "--kernel", "0.0.0-none")
    assert r.returncode == 2
    assert "no kernel config found" in r.stderr and "Traceback" not in r.stderr


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
    _sub(src / "vpsnet_main.c", "/* The range of every uint parameter",
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
        r = _abi(*argv)
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
        r = _abi("check", path, "--kernel", kver, "--json")
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
