"""vpsnet.ko as built now against the 1.0.0 manifest from before issue 22: the new
counter families (ENA allowance counters, gve descriptors) are additive for
`vpsnet-abi diff`, and the module's own manifest matches vpsnet_families.h.

Builds once, for the first kernel in .cache/kernels.env (skipped without headers);
the matcher itself is unit-tested in tests/unit/test_stats_match.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from host_build import copy_driver_src, make

from vpsnet_tools.manifest import read_manifest

TOP = Path(__file__).resolve().parents[2]
KERNELS_ENV = TOP / ".cache" / "kernels.env"
MANIFEST_1_0_0 = TOP / "tests/unit/fixtures/manifest/vpsnet-1.0.0-before-issue22.json"
NEW = ["vpsnet_device_allowance_exceeded_total", "vpsnet_device_conntrack_allowance_available",
       "vpsnet_queue_descriptors_total"]

pytestmark = pytest.mark.build


def _kernel() -> str:
    ks = [ln.split("=", 1)[1].strip() for ln in
          (KERNELS_ENV.read_text().splitlines() if KERNELS_ENV.exists() else []) if "=" in ln]
    ks = [k for k in ks if Path(f"/lib/modules/{k}/build/Makefile").exists()]
    if not ks:
        pytest.skip(f"no kernel headers listed in {KERNELS_ENV} are installed")
    return ks[0]


def test_new_counters_are_additive_for_vpsnet_abi_diff(tmp_path: Path) -> None:
    src = copy_driver_src(tmp_path / "driver-src")
    r = make(src, f"KVER={_kernel()}")
    assert r.returncode == 0, r.stdout + r.stderr
    ko = src / "vpsnet.ko"

    d = subprocess.run([sys.executable, "-m", "vpsnet_tools.abi", "diff", "--json",
                        str(MANIFEST_1_0_0), str(ko)], capture_output=True, text=True,
                       timeout=60)
    assert d.returncode == 0, d.stdout + d.stderr
    res = json.loads(d.stdout)
    assert res["verdict"] == "additive" and not res["undeclared_break"]
    assert [(f["severity"], f["subject"]) for f in res["findings"]] == \
        [("additive", n) for n in NEW]

    fams = {m["name"]: m for m in read_manifest(ko)["metrics"]}
    assert fams[NEW[0]]["type"] == "counter"
    assert fams[NEW[0]]["labels"] == ["netns", "device", "driver", "counter"]
    assert fams[NEW[1]]["type"] == "gauge"
    assert fams[NEW[2]]["labels"] == fams["vpsnet_queue_packets_total"]["labels"]
