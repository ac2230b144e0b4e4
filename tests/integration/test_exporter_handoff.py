"""vpsnet-exporter reload (SIGHUP): the installed code takes the listening
socket over without refusing a scrape, and tells systemd its PID first.

The exporter runs as a real process from a staged copy of the tools (version
pinned as in the packages); a unix datagram socket stands in for systemd's
notify socket, answering barriers the way systemd does (closing the fd)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from testlib.vpsnet_exporter_helpers import free_port, metrics_text, stage_tools, wait_for


class FakeSystemd:
    """Records sd_notify messages; closes barrier fds once recorded."""

    def __init__(self, path: Path, answer_barriers: bool = True) -> None:
        self.path = path
        self.answer_barriers = answer_barriers
        self.held_fds: list[int] = []
        self.messages: list[str] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                msg, fds, _flags, _addr = socket.recv_fds(self.sock, 4096, 8)
            except TimeoutError:
                continue
            self.messages.append(msg.decode())
            if self.answer_barriers:
                for fd in fds:
                    os.close(fd)
            else:
                self.held_fds.extend(fds)

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in m for m in self.messages):
            assert time.monotonic() < deadline, (text, self.messages)
            time.sleep(0.05)

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()
        for fd in self.held_fds:
            os.close(fd)


@dataclass
class Scraper:
    url: str
    results: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=5) as r:
                    r.read()
                    self.results.append(r.headers["Server"].split()[0])
            except OSError as e:
                self.results.append(f"error {e}")
            time.sleep(0.02)


@dataclass
class Exporter:
    proc: subprocess.Popen[bytes]
    systemd: FakeSystemd
    tools: Path
    log: Path
    port: int

    def mainpid_claims(self) -> list[int]:
        """Every MAINPID= systemd was sent, in order."""
        return [int(line.split("=", 1)[1]) for m in self.systemd.messages
                for line in m.splitlines() if line.startswith("MAINPID=")]

    def pids_to_reap(self) -> list[int]:
        return [self.proc.pid, *self.mainpid_claims()]


def start(tmp_path: Path, *args: str, port: int = 0, systemd_answers_barriers: bool = True
          ) -> Exporter:
    tools = tmp_path / "tools"
    stage_tools(tools, "1.0.0")
    metrics = tmp_path / "metrics"
    metrics.write_text(metrics_text())
    systemd = FakeSystemd(tmp_path / "notify", systemd_answers_barriers)
    log = tmp_path / "exporter.log"
    env = {**os.environ, "PYTHONPATH": str(tools), "NOTIFY_SOCKET": str(systemd.path)}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vpsnet_tools.exporter", "--file", str(metrics), *args],
            env=env, stderr=out, cwd=tmp_path)
    systemd.wait_for("READY=1")
    return Exporter(proc, systemd, tools, log, port)


def stop(e: Exporter) -> None:
    for pid in e.pids_to_reap():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    e.proc.wait(timeout=30)
    e.systemd.close()


def start_http(tmp_path: Path, systemd_answers_barriers: bool = True) -> Exporter:
    port = free_port()
    return start(tmp_path, "--listen", f"127.0.0.1:{port}", port=port,
                 systemd_answers_barriers=systemd_answers_barriers)


@pytest.fixture()
def http_exporter(tmp_path: Path) -> Iterator[Exporter]:
    e = start_http(tmp_path)
    try:
        yield e
    finally:
        stop(e)


def scrape_while(e: Exporter, action) -> list[str]:
    scraper = Scraper(f"http://127.0.0.1:{e.port}/metrics")
    t = threading.Thread(target=scraper.run, daemon=True)
    t.start()
    try:
        # scrapes answered before the action and after it, however slow the machine
        wait_for(lambda: len(scraper.results) >= 3, "scrapes before the action", 60)
        action()
        after = len(scraper.results) + 3
        wait_for(lambda: len(scraper.results) >= after, "scrapes after the action", 60)
    finally:
        scraper.stop.set()
        t.join()
    return scraper.results


def reload_until_the_old_one_keeps_serving(e: Exporter) -> None:
    """SIGHUP, then wait for the old process to log that the handoff failed."""
    e.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 60
    while "this one keeps serving" not in e.log.read_text():
        assert time.monotonic() < deadline, e.log.read_text()
        time.sleep(0.1)


def test_reload_hands_the_socket_to_the_new_code_without_refusing_a_scrape(
    http_exporter: Exporter,
) -> None:
    e = http_exporter
    stage_tools(e.tools, "1.1.0")  # the upgrade put new code on disk

    def reload() -> None:
        e.proc.send_signal(signal.SIGHUP)
        assert e.proc.wait(timeout=60) == 0, e.log.read_text()
        # systemd learned the new main PID before the old one was gone (barrier)
        assert any(m.startswith("MAINPID=") for m in e.systemd.messages), e.systemd.messages

    results = scrape_while(e, reload)
    assert [r for r in results if r.startswith("error")] == [], results
    served = [v for i, v in enumerate(results) if i == 0 or v != results[i - 1]]
    assert served == ["vpsnet-exporter/1.0.0", "vpsnet-exporter/1.1.0"], served
    new_pid = e.pids_to_reap()[-1]
    assert new_pid != e.proc.pid
    os.kill(new_pid, 0)  # the successor is alive and serving
    assert f"handed over to pid {new_pid}" in e.log.read_text()


def test_a_successor_that_fails_leaves_the_old_exporter_serving(
    http_exporter: Exporter,
) -> None:
    e = http_exporter
    (e.tools / "vpsnet_tools" / "exporter.py").write_text("raise SystemExit(3)\n")
    results = scrape_while(e, lambda: reload_until_the_old_one_keeps_serving(e))
    assert e.proc.poll() is None
    assert results and set(results) == {"vpsnet-exporter/1.0.0"}, results
    assert "exited with status 3; this one keeps serving" in e.log.read_text()
    assert not any(m.startswith("MAINPID=") for m in e.systemd.messages)


def test_a_successor_systemd_does_not_confirm_gives_the_main_pid_back(tmp_path: Path) -> None:
    """If systemd never confirms MAINPID= (barrier unanswered), the old process
    must not exit, or systemd would take that for the service's end."""
    e = start_http(tmp_path, systemd_answers_barriers=False)
    try:
        stage_tools(e.tools, "1.1.0")
        results = scrape_while(e, lambda: reload_until_the_old_one_keeps_serving(e))
        assert e.proc.poll() is None
        assert results and set(results) == {"vpsnet-exporter/1.0.0"}, results
        log = e.log.read_text()
        assert "did not confirm MAINPID=" in log, log
        assert "exited with status 1; this one keeps serving" in log, log
        claims = e.mainpid_claims()
        assert len(claims) == 2 and claims[-1] == e.proc.pid, claims
    finally:
        stop(e)


def test_textfile_mode_reloads_too(tmp_path: Path) -> None:
    out = tmp_path / "textfile"
    out.mkdir()
    e = start(tmp_path, "--textfile", str(out), "--interval", "0.2")
    try:
        stage_tools(e.tools, "1.1.0")
        e.proc.send_signal(signal.SIGHUP)
        assert e.proc.wait(timeout=60) == 0, e.log.read_text()
        new_pid = e.pids_to_reap()[-1]
        assert new_pid != e.proc.pid
        os.kill(new_pid, 0)
        prom = out / "vpsnet.prom"
        wait_for(lambda: prom.exists() and "vpsnet_up 1.0" in prom.read_text(),
                 "the successor's textfile", 60)
    finally:
        stop(e)
