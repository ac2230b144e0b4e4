"""The interface manifest embedded in vpsnet.ko, read with pyelftools."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from vpsnet_tools.manifest import ManifestError, family_names, parse_manifest, read_manifest

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
    assert parse_manifest(b'{"format": 1}\0trailing')["format"] == 1


def test_read_manifest_errors(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="No such file"):
        read_manifest(tmp_path / "missing.ko")
    bad = tmp_path / "bad.ko"
    bad.write_bytes(b"not an elf")
    with pytest.raises(ManifestError, match="not an ELF"):
        read_manifest(bad)
    with pytest.raises(ManifestError, match=r"no \.vpsnet_abi"):
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
