"""vpsnet-exporter under a slow-client load: 500 slow clients held open while a
scraper polls once a second; every scrape's latency and the exporter's CPU.

The exporter runs as its own process (`python -m vpsnet_tools.exporter`, the
role's settings: 1000 connections at most, a 5 s request deadline, open-files
limit 1064 as the role's LimitNOFILE=) on 127.0.0.1, serving a generated
metrics file shaped like the module's (2 NICs x 4 queues). One thread holds
CLIENTS connections open: half trickle their request a byte a second, half
connect and send nothing. When the exporter closes one (its request deadline),
the holder opens another at once, so CLIENTS stay held the whole time (an
attacker reconnects too). Meanwhile a scraper makes one GET /metrics a second
on a fresh connection (timeout 10 s) for SECONDS, after a 5 s phase without
slow clients (the baseline). The exporter's CPU time comes from
/proc/<pid>/stat around the loaded window; each scrape also reads the
exporter's own `vpsnet_exporter_connections` gauge (the connections it holds
at that moment, this scrape included).

`--compare-ref REF` runs the same load against the exporter of git REF
(`git archive`) afterwards, for a before/after in one run.

Run: `.venv/bin/python bench/exporter_load.py [--compare-ref REF]`; writes
bench/results/exporter_load.json. Loopback only; every loop is bounded in time;
it stops by itself (about 40 s, twice that with --compare-ref).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import resource
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vpsnet_lab.loopback import cpu_seconds, free_port
from vpsnet_lab.paths import TOP
from vpsnet_lab.sample_metrics import metrics_text

RESULTS = TOP / "bench" / "results" / "exporter_load.json"
CLIENTS = 500
SECONDS = 30
OVERLOAD_CLIENTS = 1100  # beyond the exporter's open-files limit: accept() fails with EMFILE
OVERLOAD_SECONDS = 15
BASELINE_SECONDS = 5
EXPORTER_NOFILE = 1064  # the role's LimitNOFILE= for vpsnet_exporter_max_connections 1000
PARTIAL = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


@dataclass
class Slow:
    trickle: bool
    connected: bool = False
    sent: int = 0


@dataclass
class Holder:
    """CLIENTS slow connections, reopened as soon as the exporter closes one."""

    port: int
    clients: int
    stop: threading.Event = field(default_factory=threading.Event)
    opened: int = 0
    closed_by_server: int = 0
    connect_failures: int = 0
    connected_samples: list[int] = field(default_factory=list)

    def run(self) -> None:
        sel = selectors.DefaultSelector()
        addr = ("127.0.0.1", self.port)

        def open_one(trickle: bool) -> None:
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(addr)
            sel.register(s, selectors.EVENT_WRITE, Slow(trickle))
            self.opened += 1

        def reopen(s: socket.socket, st: Slow) -> None:
            sel.unregister(s)
            s.close()
            if not self.stop.is_set():
                open_one(st.trickle)

        for i in range(self.clients):
            open_one(i % 2 == 0)
        next_trickle = next_sample = time.monotonic() + 1
        hard_stop = time.monotonic() + 600  # bounded whatever happens
        while not self.stop.is_set() and time.monotonic() < hard_stop:
            for key, mask in sel.select(0.05):
                s, st = key.fileobj, key.data
                assert isinstance(s, socket.socket) and isinstance(st, Slow)
                if not st.connected:
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        self.connect_failures += 1
                        reopen(s, st)
                        continue
                    st.connected = True
                    sel.modify(s, selectors.EVENT_READ, st)
                    if st.trickle:
                        self._send(s, st)
                elif mask & selectors.EVENT_READ:
                    try:
                        data = s.recv(4096)
                    except OSError:
                        data = b""
                    if not data:
                        self.closed_by_server += 1
                        reopen(s, st)
            now = time.monotonic()
            if now >= next_trickle:
                next_trickle = now + 1
                for key in list(sel.get_map().values()):
                    st = key.data
                    if isinstance(st, Slow) and st.connected and st.trickle:
                        self._send(key.fileobj, st)  # type: ignore[arg-type]
            if now >= next_sample:
                next_sample = now + 1
                self.connected_samples.append(sum(
                    1 for k in sel.get_map().values() if isinstance(k.data, Slow)
                    and k.data.connected))
        for key in list(sel.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        sel.close()

    @staticmethod
    def _send(s: socket.socket, st: Slow) -> None:
        # the head first, then one byte a second, never the blank line
        chunk = PARTIAL if st.sent == 0 else b"a"
        try:
            s.send(chunk)
            st.sent += len(chunk)
        except OSError:
            pass  # the read side notices the close


def scrape(port: int) -> tuple[float, int | str, float | None]:
    """(seconds, status or error, the exporter's vpsnet_exporter_connections)."""
    t = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        body = r.read()
        status: int | str = r.status
    except OSError as e:
        return time.perf_counter() - t, f"error: {e}", None
    finally:
        conn.close()
    took = time.perf_counter() - t
    held = None
    for line in body.decode(errors="replace").splitlines():
        if line.startswith("vpsnet_exporter_connections "):
            held = float(line.split()[1])
    return took, status, held


def server_sockets(port: int) -> dict[str, int]:
    """The exporter's side of its TCP connections by state, from /proc/net/tcp{,6}:
    established (accepted or waiting in the backlog) and syn_recv (the client thinks it
    is connected; the server dropped its ACK because the backlog was full)."""
    states = {"01": "established", "03": "syn_recv"}
    out = dict.fromkeys(states.values(), 0)
    for name in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{name}").read_text().splitlines()[1:]:
            f = line.split()
            if int(f[1].rsplit(":", 1)[1], 16) == port and f[3] in states:
                out[states[f[3]]] += 1
    return out


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def start_exporter(tools: Path, mfile: Path, port: int) -> subprocess.Popen[bytes]:
    code = ("import resource, sys; "
            f"resource.setrlimit(resource.RLIMIT_NOFILE, ({EXPORTER_NOFILE}, {EXPORTER_NOFILE})); "
            "from vpsnet_tools.exporter import main; sys.exit(main(sys.argv[1:]))")
    return subprocess.Popen(
        [sys.executable, "-c", code, "--file", str(mfile), "--listen", f"127.0.0.1:{port}",
         "--log-level", "warning"],
        env={**os.environ, "PYTHONPATH": str(tools)}, stderr=subprocess.PIPE)


def poll(port: int, seconds: float) -> list[dict[str, Any]]:
    """One scrape a second for SECONDS (a slow scrape delays the next one, never two at once)."""
    out = []
    start = time.monotonic()
    while (now := time.monotonic()) - start < seconds:
        took, status, held = scrape(port)
        out.append({"t": round(now - start, 3), "seconds": round(took, 5), "status": status,
                    "exporter_connections": held})
        time.sleep(max(0.0, 1.0 - (time.monotonic() - now)))
    return out


def run_load(tools: Path, mfile: Path, clients: int, seconds: int) -> dict[str, Any]:
    port = free_port()
    proc = start_exporter(tools, mfile, port)
    holder = Holder(port, clients)
    thread = threading.Thread(target=holder.run, daemon=True)
    try:
        deadline = time.monotonic() + 30
        while scrape(port)[1] != 200:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the exporter did not start")
            time.sleep(0.1)
        cpu0, wall0 = cpu_seconds(proc.pid), time.monotonic()
        baseline = poll(port, BASELINE_SECONDS)
        base_cpu = (cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - wall0)
        thread.start()
        time.sleep(2)  # all held (or queued) before the loaded window
        cpu0, wall0 = cpu_seconds(proc.pid), time.monotonic()
        loaded = poll(port, seconds)
        wall = time.monotonic() - wall0
        cpu = cpu_seconds(proc.pid) - cpu0
        status = dict(line.split(":", 1) for line in
                      Path(f"/proc/{proc.pid}/status").read_text().splitlines() if ":" in line)
        sockets = server_sockets(port)
    finally:
        holder.stop.set()
        if thread.is_alive():
            thread.join(30)
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    lat = [s["seconds"] for s in loaded]
    ok = [s for s in loaded if s["status"] == 200]
    held = [s["exporter_connections"] - 1 for s in ok if s["exporter_connections"] is not None]
    summary = {
        "scrapes": len(loaded),
        "scrapes_ok": len(ok),
        "scrapes_over_1s": sum(1 for s in loaded if s["status"] != 200 or s["seconds"] > 1.0),
        "max_scrape_s": round(max(lat), 4),
        "p99_scrape_s": round(pct(lat, 99), 4),
        "median_scrape_s": round(statistics.median(lat), 4),
        "exporter_cpu_percent": round(cpu / wall * 100, 2),
        "exporter_cpu_seconds": round(cpu, 3),
        "window_seconds": round(wall, 2),
        # slow clients the exporter held, from its own gauge at each scrape (less the scrape)
        "clients_held": round(statistics.median(held)) if held else None,
        "clients_held_min": round(min(held)) if held else None,
        # at the end of the window, by the kernel's count (works for any exporter version)
        "server_established_at_end": sockets["established"],
        "server_syn_recv_at_end": sockets["syn_recv"],
        "clients_configured": clients,
        "slow_connections_opened": holder.opened,
        "slow_connections_closed_by_exporter": holder.closed_by_server,
        "slow_connect_failures": holder.connect_failures,
        "holder_connected_median": (round(statistics.median(holder.connected_samples))
                                    if holder.connected_samples else 0),
        "exporter_threads": int(status["Threads"]),
        "exporter_rss_mib": round(int(status["VmRSS"].split()[0]) / 1024, 1),
        "baseline_max_scrape_s": round(max(s["seconds"] for s in baseline), 4),
        "baseline_cpu_percent": round(base_cpu * 100, 2),
    }
    return {"summary": summary, "scrapes": loaded, "baseline_scrapes": baseline,
            "exporter_stderr_tail": err.decode(errors="replace").splitlines()[-5:]}


def stage_ref(ref: str, dest: Path) -> Path:
    """tools/ of git REF, unpacked under DEST."""
    archive = subprocess.run(["git", "-C", str(TOP), "archive", ref, "tools"],
                             stdout=subprocess.PIPE, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "tools"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=CLIENTS)
    ap.add_argument("--seconds", type=int, default=SECONDS)
    ap.add_argument("--overload-clients", type=int, default=OVERLOAD_CLIENTS,
                    help="then as many slow clients as that, beyond the exporter's open-files "
                    f"limit (default {OVERLOAD_CLIENTS}; 0: skip)")
    ap.add_argument("--overload-seconds", type=int, default=OVERLOAD_SECONDS)
    ap.add_argument("--compare-ref", help="also run the exporter of this git ref")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if not 1 <= args.clients <= 5000 or not 5 <= args.seconds <= 600:
        ap.error("--clients 1..5000, --seconds 5..600")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.clients + 256
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="vpsnet-bench-load-") as tmp:
        mfile = Path(tmp) / "metrics"
        mfile.write_text(metrics_text(nics=2, queues=4, cpus=2))
        result = run_load(TOP / "tools", mfile, args.clients, args.seconds)
        if args.overload_clients:
            result["overload"] = run_load(TOP / "tools", mfile, args.overload_clients,
                                          args.overload_seconds)
        before = None
        if args.compare_ref:
            old = stage_ref(args.compare_ref, Path(tmp))
            before = run_load(old, mfile, args.clients, args.seconds)
            if args.overload_clients:
                before["overload"] = run_load(old, mfile, args.overload_clients,
                                              args.overload_seconds)
            rev = subprocess.run(["git", "-C", str(TOP), "rev-parse", "--short",
                                  args.compare_ref], capture_output=True, text=True).stdout
            before["ref"] = f"{args.compare_ref} ({rev.strip()})"
    summary = {
        "where": "host, loopback; exporter with the role's settings (1000 connections, "
                 "5 s request deadline, open-files limit 1064)",
        **result["summary"],
        "every_scrape_within_1s": result["summary"]["scrapes_over_1s"] == 0,
        "host_load_avg_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    keys = ("clients_configured", "scrapes", "scrapes_ok", "scrapes_over_1s", "max_scrape_s",
            "p99_scrape_s", "exporter_cpu_percent", "clients_held", "holder_connected_median",
            "server_established_at_end", "server_syn_recv_at_end", "exporter_threads",
            "exporter_rss_mib")
    if "overload" in result:
        summary["overload"] = {k: result["overload"]["summary"][k] for k in keys}
    if before is not None:
        summary["before"] = {"ref": before["ref"],
                             **{k: before["summary"][k] for k in keys}}
        if "overload" in before:
            summary["before"]["overload"] = {k: before["overload"]["summary"][k] for k in keys}
    out = {
        "summary": summary,
        "runs": {"scrapes": result["scrapes"], "baseline_scrapes": result["baseline_scrapes"],
                 "exporter_stderr_tail": result["exporter_stderr_tail"],
                 "overload": result.get("overload")},
        "before": before,
        "clients": args.clients,
        "seconds": args.seconds,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
