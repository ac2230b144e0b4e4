"""vpsnet-abi on real vpsnet.ko files (abi_ko_variants.py, abi_ko_builds.py):
manifest and diff across the variants (base, an added metric family, a renamed family,
ABI major bumped, the VPSNET_TEST_FORCE_UNHEALTHY test build), and `check`
against the build's own kernel, the other installed kernel, and altered copies
of its Module.symvers and config. test_abi_ko_refusals.py has the modules
vpsnet-abi must refuse.

Nothing here boots a guest: every test needs only the kernel headers (skipped
with the reason when .cache/kernels.env or the headers are missing) and binutils.
"""

from __future__ import annotations

import json
import lzma
import re
from pathlib import Path

import pytest
from abi_ko_variants import VARIANTS, diff_json, finding_messages, run_abi

from vpsnet_tools.manifest import read_manifest

# the session fixtures kver, other_kver, kos (built once for both files)
pytest_plugins = ["abi_ko_builds"]
pytestmark = pytest.mark.build


# --------------------------------------------------------------------------- manifest / diff


def test_manifest_prints_the_embedded_document(kos: dict[str, Path]) -> None:
    r = run_abi("manifest", kos["base"])
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == read_manifest(kos["base"])


def test_same_build_is_compatible(kos: dict[str, Path]) -> None:
    rc, doc = diff_json(kos["base"], kos["base"])
    assert (rc, doc["verdict"], doc["findings"]) == (0, "compatible", [])


def test_added_family_is_additive(kos: dict[str, Path]) -> None:
    rc, doc = diff_json(kos["base"], kos["added"])
    assert (rc, doc["verdict"]) == (0, "additive")
    assert finding_messages(doc) == ["additive: metric family vpsnet_softirq_net_tx_total added "
                              "(counter)"]
    # and the way back (a downgrade) removes it
    rc, doc = diff_json(kos["added"], kos["base"])
    assert (rc, doc["verdict"]) == (3, "breaking")
    assert finding_messages(doc) == ["breaking: metric family vpsnet_softirq_net_tx_total removed"]


def test_renamed_family_is_breaking_and_undeclared(kos: dict[str, Path]) -> None:
    rc, doc = diff_json(kos["base"], kos["renamed"])
    assert (rc, doc["verdict"]) == (3, "breaking")
    assert finding_messages(doc) == ["breaking: metric family vpsnet_link_flaps_total removed",
                              "additive: metric family vpsnet_carrier_flaps_total added "
                              "(counter)"]
    assert doc["undeclared_break"] is True and doc["abi_major_bumped"] is False
    r = run_abi("diff", kos["base"], kos["renamed"])
    assert r.returncode == 3
    assert r.stdout.splitlines()[0].startswith("breaking: ")
    assert "  breaking: metric family vpsnet_link_flaps_total removed" in r.stdout


def test_abi_major_bump_is_breaking_and_declared(kos: dict[str, Path]) -> None:
    rc, doc = diff_json(kos["base"], kos["major2"])
    assert (rc, doc["verdict"]) == (3, "breaking")
    assert finding_messages(doc) == ["breaking: ABI major bumped 1 -> 2: declared incompatible"]
    assert doc["abi_major_bumped"] is True and doc["undeclared_break"] is False
    assert doc["new"]["abi_major"] == 2  # type: ignore[index]


def test_force_unhealthy_build_is_compatible(kos: dict[str, Path]) -> None:
    rc, doc = diff_json(kos["base"], kos["unhealthy"])
    assert (rc, doc["verdict"]) == (0, "compatible")
    assert finding_messages(doc) == ["note: build flag test_force_unhealthy: false -> true "
                              "(not part of the ABI)"]


def test_manifest_json_file_and_ko_mix(kos: dict[str, Path], tmp_path: Path) -> None:
    j = tmp_path / "base.json"
    r = run_abi("manifest", kos["base"])
    j.write_text(r.stdout)
    rc, doc = diff_json(j, kos["added"])
    assert (rc, doc["verdict"]) == (0, "additive")


# --------------------------------------------------------------------------- check


def _check(ko: Path, kver: str, *extra: str | Path) -> tuple[int, dict[str, object]]:
    r = run_abi("check", ko, "--kernel", kver, "--json", *extra)
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
    r = run_abi("check", kos["base"], "--kernel", kver)
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
    r = run_abi("check", kos["base"], "--kernel", other_kver)
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
    assert run_abi("manifest", xz).returncode == 0


def test_check_unknown_kernel_is_exit_2(kos: dict[str, Path]) -> None:
    r = run_abi("check", kos["base"], "--kernel", "0.0.0-none")
    assert r.returncode == 2
    assert "no kernel config found" in r.stderr and "Traceback" not in r.stderr
