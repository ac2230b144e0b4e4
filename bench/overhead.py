#!/usr/bin/env python3
"""Module overhead bench: iperf3 throughput with vpsnet.ko loaded vs not loaded
(same guest, interleaved runs) and the cost of a sampling pass and a metrics read.

Usage (root, from the repository top):
    .venv/bin/python bench/overhead.py [--runs 3] [--seconds 5] [--state DIR]
Boots the session lab spec under .cache/lab-bench-overhead (unless --state
names a lab that is already up, which is then left running) and writes
bench/results/overhead.json. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from vpsnet_lab.fleet import Lab
from vpsnet_lab.guest_module import METRICS, build_on_host_for_guest, load, unload
from vpsnet_lab.paths import TOP

GUEST = "aws61"
PORT = 5298
# Times N open()+close() (the open takes the snapshot of every attached
# device under RTNL: the same per-device work a sampling pass does) and N
# open()+read()+close() of the metrics file, inside the guest.
TIMER = f"""
import json, time
N = 300
def t(read):
    best = []
    for _ in range(5):
        t0 = time.perf_counter_ns()
        for _ in range(N):
            with open("{METRICS}", "rb", buffering=0) as f:
                if read:
                    while f.read(65536):
                        pass
        best.append((time.perf_counter_ns() - t0) / N / 1000)
    return min(best), best
print(json.dumps(t(False))); print(json.dumps(t(True)))
"""


def say(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def iperf(lab: Lab, peer: str, seconds: int) -> float:
    r = lab.ssh(GUEST, f"iperf3 -c {peer} -p {PORT} -P 4 -t {seconds} -J",
                timeout=seconds + 60, check=True)
    return float(json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"]) / 1e6


def run(lab: Lab, runs: int, seconds: int, work: Path) -> dict[str, Any]:
    b = build_on_host_for_guest(lab, GUEST, work)
    if b.rc != 0:
        raise SystemExit(f"build failed:\n{b.stdout[-2000:]}")
    nic = lab.spec.guest(GUEST).nics[0]
    assert nic.netns and nic.peer_address
    peer = nic.peer_address.split("/")[0]
    srv = subprocess.Popen(["ip", "netns", "exec", nic.netns, "iperf3", "-s", "-B", peer,
                            "-p", str(PORT)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    raw: list[dict[str, Any]] = []
    try:
        time.sleep(1)
        iperf(lab, peer, 2)  # warm-up
        for i in range(runs):
            for cfg in (("unloaded", "loaded") if i % 2 == 0 else ("loaded", "unloaded")):
                if cfg == "loaded":
                    load(lab, GUEST)
                else:
                    unload(lab, GUEST)
                mbit = iperf(lab, peer, seconds)
                say(f"run {i} {cfg}: {mbit:.1f} Mbit/s")
                raw.append({"run": i, "config": cfg, "mbit_per_s": round(mbit, 2)})
        load(lab, GUEST)
        out = lab.ssh(GUEST, f"python3 -c '{TIMER}'", timeout=600, check=True).stdout
        snap, read = (json.loads(ln) for ln in out.splitlines()[:2])
        topo = lab.ssh(GUEST, f"grep -c '^vpsnet_txq_stopped' {METRICS}; "
                       f"grep '^vpsnet_devices_attached' {METRICS}", check=True).stdout.split()
    finally:
        srv.terminate()
        srv.wait()
        unload(lab, GUEST)
    med = {c: statistics.median(r["mbit_per_s"] for r in raw if r["config"] == c)
           for c in ("loaded", "unloaded")}
    return {
        "bench": "overhead",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "guest": GUEST,
        "kernel": lab.ssh(GUEST, "uname -r").stdout.strip(),
        "setup": {"iperf3": f"guest -> host netns over the 4-queue virtio tap NIC, -P 4, "
                            f"{seconds} s per run, runs interleaved (order alternates)",
                  "module_params": "defaults (interval_ms=1000)",
                  "attached_devices": int(topo[-1]), "tx_queues_total": int(topo[0]),
                  "sample_pass": "best of 5 x 300 open()+close() of the metrics file: the "
                                 "open snapshots every attached device under RTNL "
                                 "(vpsnet_snap_dev, the per-device work of a sampling "
                                 "pass), includes syscall overhead",
                  "metrics_read": "best of 5 x 300 open()+read()+close() of the metrics file",
                  "machine": "QEMU TCG guest (2 vCPUs) on a 2-core shared host"},
        "raw": {"iperf3": raw, "sample_pass_us_runs": snap[1], "metrics_read_us_runs": read[1]},
        "summary": {
            "throughput_ratio_loaded_vs_unloaded": round(med["loaded"] / med["unloaded"], 4),
            "throughput_mbit_median": {k: round(v, 1) for k, v in med.items()},
            "sample_pass_us": round(snap[0], 1),
            "metrics_read_us": round(read[0], 1),
        },
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--state", type=Path, help="use this running lab (left up)")
    ap.add_argument("--out", type=Path, default=TOP / "bench" / "results" / "overhead.json")
    args = ap.parse_args()
    work = TOP / ".cache" / "bench-overhead"
    work.mkdir(parents=True, exist_ok=True)
    if args.state:
        result = run(Lab(args.state), args.runs, args.seconds, work)
    else:
        spec = yaml.safe_load((TOP / "tests" / "specs" / "session.yml").read_text())
        spec["base_port"] = 15022
        state = TOP / ".cache" / "lab-bench-overhead"
        Lab(state).down(say=say)
        lab = Lab.up(spec, "tests/specs/session.yml", state_dir=state, say=say)
        try:
            result = run(lab, args.runs, args.seconds, work)
        finally:
            lab.down(say=say)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    say(json.dumps(result["summary"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
