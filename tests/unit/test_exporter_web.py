"""vpsnet-exporter's server under abuse, with real sockets on 127.0.0.1: slow
clients, the connection cap, the request deadline and the fd limit. The web
config (auth, TLS) is in test_exporter_web_config.py, malformed and fuzzed
requests and flags in test_exporter_web_requests.py.

Every generated bad input is counted per class (BAD); the counts are printed
at the end of the module (pytest -s) for the issue's closing note."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from testlib.input_counts import InputCounts
from testlib.vpsnet_exporter_helpers import (
    close_all,
    closed,
    closed_by_peer,
    cpu_seconds,
    free_port,
    hold,
    http_get,
    metrics_text,
    serving,
    wait_for,
)

from vpsnet_tools import web

BAD = InputCounts("exporter server bad inputs")  # every one generated and rejected
_print_bad_counts = BAD.report_fixture()

# These tests tell "answered" from "blocked" (held until a client timeout of 3-10 s),
# not fast from slow: the bound leaves room for a loaded CI machine. The 1 s figure
# under 500 slow clients is measured by bench/exporter_load.py.
NOT_BLOCKED_S = 2.5


def test_slow_clients_do_not_block_scrapes(tmp_path: Path) -> None:
    with serving(tmp_path, max_connections=400) as (srv, port):
        held = hold(port, 250)
        try:
            took = []
            for _ in range(5):
                t = time.monotonic()
                status, _, body = http_get(port)
                took.append(time.monotonic() - t)
                assert status == 200 and b"vpsnet_up 1.0" in body
            assert max(took) < NOT_BLOCKED_S, took
            assert srv.stats.open >= 250
            assert b'vpsnet_exporter_connections ' in http_get(port)[2]
        finally:
            close_all(held)


def test_the_cap_closes_excess_connections_at_once(tmp_path: Path) -> None:
    with serving(tmp_path, max_connections=3, evict_after=60) as (srv, port):
        held = hold(port, 3)
        try:
            wait_for(lambda: srv.stats.open == 3, "the 3 slow clients accepted")
            t = time.monotonic()
            for _ in range(2):
                try:
                    s = socket.create_connection(("127.0.0.1", port), timeout=5)
                except ConnectionResetError:
                    continue  # reset before connect() even returned: closed at once too
                with s:
                    assert closed_by_peer(s, 2)
            assert time.monotonic() - t < NOT_BLOCKED_S
            assert closed(srv, "cap") == 2
            # the held ones are still open
            assert not closed_by_peer(held[0], 0.2)
        finally:
            close_all(held)
        # once they are gone, there is room again
        wait_for(lambda: srv.stats.open == 0, "the slow clients' connections closed")
        assert http_get(port)[0] == 200
        body = http_get(port)[2].decode()
        assert 'vpsnet_exporter_connections_closed_total{reason="cap"} 2.0' in body


def test_at_the_cap_a_scrape_replaces_the_oldest_slow_client(tmp_path: Path) -> None:
    with serving(tmp_path, max_connections=3, evict_after=0.3) as (srv, port):
        held = hold(port, 3)
        try:
            wait_for(lambda: srv.stats.open == 3, "the 3 slow clients accepted")
            time.sleep(0.5)  # a minimum age: all three now older than evict_after
            assert http_get(port, timeout=3)[0] == 200
            assert closed(srv, "evicted") == 1 and closed(srv, "cap") == 0
            assert closed_by_peer(held[0], 1)  # the oldest one went
        finally:
            close_all(held)


def test_a_flood_reconnecting_at_the_cap_does_not_lock_scrapes_out(tmp_path: Path) -> None:
    """Slow clients that reconnect as soon as they are closed: every new scrape
    still gets in (it replaces the oldest of them) and is answered at once."""
    with serving(tmp_path, max_connections=20) as (srv, port):
        stop = threading.Event()
        flood_opened = [0]

        def flood() -> None:
            socks: list[socket.socket] = []
            while not stop.is_set():
                for s in list(socks):
                    if closed_by_peer(s, 0.001):
                        socks.remove(s)
                        s.close()
                while len(socks) < 40 and not stop.is_set():
                    try:
                        socks.append(socket.create_connection(("127.0.0.1", port), timeout=1))
                        flood_opened[0] += 1
                    except OSError:
                        pass
            close_all(socks)

        t = threading.Thread(target=flood, daemon=True)
        t.start()
        try:
            wait_for(lambda: flood_opened[0] > 40 and closed(srv, "evicted") > 20,
                     "the flood churning at the cap")
            for _ in range(5):
                start = time.monotonic()
                assert http_get(port, timeout=3)[0] == 200
                assert time.monotonic() - start < NOT_BLOCKED_S
        finally:
            stop.set()
            t.join(10)
        assert flood_opened[0] > 40 and closed(srv, "evicted") > 20


def test_the_deadline_closes_a_trickling_client(tmp_path: Path) -> None:
    """A byte every 0.1 s keeps a per-recv timeout happy forever; the whole
    request has 1 s here."""
    with serving(tmp_path, request_timeout=1.0) as (srv, port):
        s = socket.create_connection(("127.0.0.1", port))
        start = time.monotonic()
        gone = None
        try:
            for b in b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"a" * 100:
                s.sendall(bytes([b]))
                time.sleep(0.1)
        except (ConnectionResetError, BrokenPipeError):
            gone = time.monotonic() - start
        finally:
            s.close()
        assert gone is not None and 0.9 < gone < NOT_BLOCKED_S + 1.0, gone  # trickle: 10 s
        assert closed(srv, "deadline") == 1
        assert http_get(port)[0] == 200


def test_a_client_that_never_reads_the_answer_holds_no_worker(tmp_path: Path) -> None:
    """Workers only render; sending is the event loop's, so requests that never read
    their answer do not stop other scrapes."""
    with serving(tmp_path) as (_srv, port):
        socks = []
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", port))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            s.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
            socks.append(s)
        try:
            t = time.monotonic()
            assert http_get(port)[0] == 200
            assert time.monotonic() - t < NOT_BLOCKED_S
        finally:
            close_all(socks)


# --- the fd limit ----------------------------------------------------------------------------

FD_LIMIT = 64


@pytest.mark.parametrize("evict_after", ["3600", "0"], ids=["backoff-only", "evicting"])
def test_at_the_fd_limit_no_busy_loop_and_scrapes_come_back(tmp_path: Path,
                                                             evict_after: str) -> None:
    """RLIMIT_NOFILE 64 in the exporter's process, 150 clients held: accept()
    fails with EMFILE. The exporter must not spin (CPU time over a 2 s window,
    and accept attempts counted by its own metric) and must answer again once
    fds free up. backoff-only: slow clients are never evicted, so the limit
    holds for the whole window; evicting (the default): slow clients make
    room, so a scrape is answered even while they are held."""
    metrics = tmp_path / "metrics"
    metrics.write_text(metrics_text())
    port = free_port()
    code = ("import resource, sys; "
            f"resource.setrlimit(resource.RLIMIT_NOFILE, ({FD_LIMIT}, {FD_LIMIT})); "
            "from vpsnet_tools.exporter import main; sys.exit(main(sys.argv[1:]))")
    p = subprocess.Popen(
        [sys.executable, "-c", code, "--file", str(metrics), "--listen", f"127.0.0.1:{port}",
         "--web.max-connections", "1000", "--web.request-timeout", "60",
         "--web.evict-after", evict_after],
        stderr=subprocess.PIPE, text=True)
    stderr = p.stderr
    assert stderr is not None
    lines: list[str] = []  # its log, read as it comes: the fd limit is an event there
    reader = threading.Thread(target=lambda: lines.extend(iter(stderr.readline, "")),
                              daemon=True)
    reader.start()
    held: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                assert http_get(port, timeout=2)[0] == 200
                break
            except OSError:
                assert time.monotonic() < deadline and p.poll() is None
                time.sleep(0.1)
        held = hold(port, 150, b"")
        wait_for(lambda: any("accept failed" in line for line in lines),
                 "the exporter to reach the fd limit")
        cpu0, t0 = cpu_seconds(p.pid), time.monotonic()
        time.sleep(2.0)
        ratio = (cpu_seconds(p.pid) - cpu0) / (time.monotonic() - t0)
        # measured: 0.00-0.01 here; the old thread-per-connection server spun at 0.29 of a core
        # on this loaded 2-core machine (1.0 when idle)
        assert ratio < 0.1, ratio
        during = None
        if evict_after == "0":
            t = time.monotonic()
            assert http_get(port, timeout=20)[0] == 200
            during = time.monotonic() - t
        close_all(held)
        held = []
        t = time.monotonic()
        status, _, body = http_get(port, timeout=5)
        after = time.monotonic() - t
        assert status == 200 and after < 2.0
        text = body.decode()
        fd_errors = float(next(
            line for line in text.splitlines()
            if line.startswith('vpsnet_exporter_accept_errors_total{reason="fd_limit"}')
        ).split()[-1])
        # bounded: a spinning loop counts millions in these seconds
        assert 1 <= fd_errors < (100 if evict_after == "3600" else 2000), fd_errors
        evicted = 'vpsnet_exporter_connections_closed_total{reason="evicted"} 0.0' not in text
        assert evicted == (evict_after == "0")
        print(f"\nfd limit {FD_LIMIT}, evict after {evict_after} s: cpu ratio {ratio:.3f}, "
              f"accept errors {fd_errors:.0f}, scrape while held {during}, after "
              f"{after:.3f} s")
    finally:
        close_all(held)
        p.terminate()
        p.wait(timeout=10)
        reader.join(10)
    err = "".join(lines)
    assert "Traceback" not in err
    assert err.count("accept failed") == 1  # logged once a minute, not per attempt
    BAD.add("fd_exhaustion", rejected=True)


def test_default_cap_fits_the_fd_limit() -> None:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert web.default_max_connections() <= max(8, soft - web.FD_RESERVE)
    assert web.default_max_connections() <= web.DEFAULT_MAX_CONNECTIONS

