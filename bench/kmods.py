"""The whole kernel matrix: vpsnet.ko built, signed, checked and packaged for
every kernel of packaging/kernels.yml, timed on this machine (target: today's
12 ABIs in at most 3 min on 2 cores). Also one kernel alone, for the
per-kernel cost without contention, and the machine's load while it ran.

Run as root after `make setup`: `.venv/bin/python bench/kmods.py`; writes
bench/results/kmods.json. Absolute seconds on a shared 2-core machine are
noisy: the load average is recorded beside them.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

TOP = Path(__file__).resolve().parents[1]
RESULTS = TOP / "bench" / "results" / "kmods.json"
VERSION = "0.0.1"


def build(dist: Path, kernels: str = "") -> tuple[float, dict]:
    started = time.monotonic()
    subprocess.run(["make", "-s", "-C", str(TOP / "packaging"), "kmods", f"DIST={dist}",
                    f"VERSION={VERSION}", f"KERNELS={kernels}"], check=True,
                   capture_output=True, text=True)
    took = time.monotonic() - started
    report = json.loads((dist / "build" / f"kmod-{VERSION}" / "report.json").read_text())
    return took, report


def main() -> None:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="vpsnet-bench-kmods-") as tmp:
        whole, report = build(Path(tmp) / "all")
        one_kernel = report["kernels"][-1]["release"]
        single, single_report = build(Path(tmp) / "one", one_kernel)
    kernels = report["kernels"]
    steps = ("build", "sign", "check", "package")
    summary = {
        "kernels": len(kernels),
        "all_ok": all(k["ok"] for k in kernels),
        "matrix_seconds": round(whole, 1),
        "matrix_target_seconds": 180,
        "one_kernel_seconds": round(single, 1),
        "jobs": report["jobs"],
        "median_step_seconds": {s: round(statistics.median(k["seconds"].get(s, 0)
                                                           for k in kernels), 1) for s in steps},
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }
    RESULTS.write_text(json.dumps({"summary": summary, "matrix": report,
                                   "one_kernel": single_report, "cpus": os.cpu_count()},
                                  indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
