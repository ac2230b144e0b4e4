"""vpsnet-exporter scrape cost: latency (median, p99) and the exporter's CPU time per scrape.

Runs on the host, not in a guest: the exporter (`python -m vpsnet_tools.exporter`)
serves a generated metrics file shaped like the module's output for 2 NICs x 4
queues (2 CPUs), and a client makes 1,000 scrapes over fresh HTTP connections
(as Prometheus does against an HTTP/1.0 server), after 50 warm-up scrapes. The
exporter's CPU time is read from /proc/<pid>/stat (utime + stime) around the
1,000 scrapes. In-process render time (read + parse + render, no HTTP) is
measured too, for comparison.

Run: `.venv/bin/python bench/exporter.py`; writes bench/results/exporter.json.
Absolute numbers on a shared 2-core machine are noisy: read them as orders of
magnitude.
"""

from __future__ import annotations

import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vpsnet_lab.loopback import cpu_seconds, free_port
from vpsnet_lab.paths import TOP
from vpsnet_lab.sample_metrics import metrics_text
from vpsnet_tools import exporter

RESULTS = TOP / "bench" / "results" / "exporter.json"
SCRAPES = int(os.environ.get("VPSNET_BENCH_SCRAPES", "1000"))
WARMUP = 50
NICS, QUEUES, CPUS = 2, 4, 2


def scrape(port: int) -> tuple[float, int]:
    t = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    took = time.perf_counter() - t
    assert resp.status == 200 and b"vpsnet_up 1.0" in body
    return took, len(body)


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def main() -> None:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="vpsnet-bench-") as tmp:
        mfile = Path(tmp) / "metrics"
        text = metrics_text(nics=NICS, queues=QUEUES, cpus=CPUS)
        mfile.write_text(text)

        reg, _ = exporter.make_registry(str(mfile))
        render = []
        for _ in range(SCRAPES):
            t = time.perf_counter()
            exporter.render(reg)
            render.append(time.perf_counter() - t)

        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "vpsnet_tools.exporter", "--file", str(mfile),
             "--listen", f"127.0.0.1:{port}", "--log-level", "warning"])
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    scrape(port)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            for _ in range(WARMUP):
                scrape(port)
            cpu0 = cpu_seconds(proc.pid)
            wall0 = time.perf_counter()
            lat, size = [], 0
            for _ in range(SCRAPES):
                took, size = scrape(port)
                lat.append(took)
            wall = time.perf_counter() - wall0
            cpu = cpu_seconds(proc.pid) - cpu0
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    ms = [x * 1000 for x in lat]
    summary = {
        "where": "host (loopback HTTP), generated metrics file shaped like the module's",
        "nics": NICS,
        "queues_per_nic": QUEUES,
        "cpus_in_file": CPUS,
        "scrapes": SCRAPES,
        "metrics_file_bytes": len(text.encode()),
        "response_bytes": size,
        "scrape_latency_median_ms": round(statistics.median(ms), 3),
        "scrape_latency_p99_ms": round(pct(ms, 99), 3),
        "scrape_latency_max_ms": round(max(ms), 3),
        "exporter_cpu_ms_per_scrape": round(cpu / SCRAPES * 1000, 3),
        "render_in_process_median_ms": round(statistics.median(render) * 1000, 3),
        "scrapes_per_second": round(SCRAPES / wall, 1),
        # The machine is shared: the 1-minute load average around the run.
        "host_load_avg_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "summary": summary,
        "runs": {"scrape_latency_ms": [round(x, 4) for x in ms],
                 "render_ms": [round(x * 1000, 4) for x in render]},
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "clock_ticks_per_second": os.sysconf("SC_CLK_TCK"),
    }, indent=1) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
