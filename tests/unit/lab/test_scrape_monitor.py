"""The guest-side scrape monitor, run for real against a local exporter."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from testlib.vpsnet_exporter_helpers import free_port, metrics_text

from vpsnet_lab import scrape_monitor
from vpsnet_lab.scrape_monitor import Scrape, max_gap
from vpsnet_tools import __version__, exporter


def _run_monitor(url: str, lines: int, deadline: float = 60.0) -> list[Scrape]:
    """The monitor's first LINES lines: waits for them, not for a fixed time (a
    loaded machine took more than 0.5 s to start Python), up to DEADLINE."""
    proc = subprocess.Popen([sys.executable, scrape_monitor.__file__, url, "0.05"],
                            stdout=subprocess.PIPE, text=True)
    watchdog = threading.Timer(deadline, proc.terminate)
    watchdog.start()
    got: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            got.append(line)
            if len(got) >= lines:
                break
    finally:
        watchdog.cancel()
        proc.terminate()
        proc.communicate(timeout=10)
    return [Scrape.parse(line) for line in got]


def test_monitor_logs_answers_and_refusals(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics"
    metrics.write_text(metrics_text())
    reg, _ = exporter.make_registry(str(metrics))
    srv = exporter.make_server(reg, f"127.0.0.1:{free_port()}")
    url = f"http://127.0.0.1:{srv.server_address[1]}/metrics"
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        answered = _run_monitor(url, 5)
    finally:
        srv.shutdown()
        srv.server_close()
    assert answered and all(s.ok for s in answered), answered
    assert {(s.up, s.exporter_version) for s in answered} == {("1.0", __version__)}
    assert answered[0].module_version not in ("", "-")
    refused = _run_monitor(url, 3)
    assert refused and not any(s.ok for s in refused), refused


def test_max_gap_counts_only_answers() -> None:
    lines = ["1.00 ok 1.0 1.0.0 1.0.0", "2.00 error URLError", "9.50 error TimeoutError",
             "12.00 ok 0.0 - 1.1.0", "12.50 ok 1.0 1.1.0 1.1.0"]
    scrapes = [Scrape.parse(line) for line in lines]
    assert [s.ok for s in scrapes] == [True, False, False, True, True]
    assert max_gap(scrapes) == 11.0
    assert scrapes[-1].module_version == "1.1.0" and scrapes[3].up == "0.0"
