"""Lab timings: guest image build (cached and forced) and boot to SSH for 1 and 4 guests.

Run as root: `.venv/bin/python bench/lab_boot.py`; writes bench/results/lab_boot.json.
Absolute seconds on a shared 2-core machine are noisy: read them as orders of magnitude.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import yaml

from vpsnet_lab import image
from vpsnet_lab.fleet import Lab
from vpsnet_lab.paths import CACHE, TOP

RESULTS = TOP / "bench" / "results" / "lab_boot.json"
RUNS = int(os.environ.get("VPSNET_BENCH_RUNS", "2"))


def boot(spec: dict, state: Path) -> float:
    Lab(state).down()
    started = time.monotonic()
    lab = Lab.up(spec, "bench", state_dir=state)
    took = time.monotonic() - started
    lab.down()
    return took


def main() -> None:
    cached = []
    for series in ("6.1", "6.12"):
        t = time.monotonic()
        image.build(series)
        cached.append(time.monotonic() - t)
    default = yaml.safe_load((TOP / "lab/specs/default.yml").read_text())
    default["base_port"] = 17022
    one = {**default, "guests": default["guests"][1:2]}
    state = CACHE / "lab-bench"
    runs = {"1_guest": [boot(one, state) for _ in range(RUNS)],
            "4_guests": [boot(default, state) for _ in range(RUNS)]}
    manifests = [json.loads(p.read_text()) for p in (CACHE / "images").glob("*/manifest.json")]
    summary = {
        "boot_to_ssh_1_guest_s": round(statistics.median(runs["1_guest"]), 1),
        "boot_to_ssh_4_guests_s": round(statistics.median(runs["4_guests"]), 1),
        "image_lookup_cached_s": round(max(cached), 3),
        "image_build_s": {m["series"]: m["build_seconds"] for m in manifests},
    }
    RESULTS.write_text(json.dumps({"summary": summary, "runs": runs, "cpus": os.cpu_count()},
                                  indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
