"""vpsnet-exporter on the host against fake metrics files."""

from __future__ import annotations

import logging
import os
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from testlib.vpsnet_exporter_helpers import (
    FAMILIES,
    free_port,
    metrics_text,
    self_signed,
    stage_tools,
)

from vpsnet_tools import exporter, exporter_metrics, exporter_server

MODULE_FAMILIES = {f"vpsnet_{n}".removesuffix("_total") for n, _, _ in FAMILIES}


def scrape(registry) -> dict[str, list]:
    text = exporter_metrics.render(registry).decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def value(fams: dict, name: str, **labels: str) -> float:
    fam = name.removesuffix("_total")
    for s in fams[fam]:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    raise KeyError(name)


def assert_whole(fams: dict, nics: int = 2, queues: int = 4) -> None:
    """Every module family present and complete: never a partial family."""
    assert set(fams) >= MODULE_FAMILIES
    assert len(fams["vpsnet_queue_drops"]) == nics * queues * 2
    assert len(fams["vpsnet_txq_stopped"]) == nics * queues
    assert len(fams["vpsnet_health_state"]) == nics * 4


def assert_none(fams: dict) -> None:
    assert not MODULE_FAMILIES & set(fams)
    assert value(fams, "vpsnet_up") == 0


def test_healthy_file_is_reexposed(tmp_path: Path) -> None:
    f = tmp_path / "metrics"
    f.write_text(metrics_text())
    reg, _ = exporter_metrics.make_registry(str(f))
    fams = scrape(reg)
    assert_whole(fams)
    assert value(fams, "vpsnet_up") == 1
    assert value(fams, "vpsnet_queue_drops_total", device="eth2", queue="3", direction="tx") == 1004
    assert value(fams, "vpsnet_info", version="1.0.0") == 1
    assert value(fams, "vpsnet_exporter_scrape_duration_seconds") > 0
    assert value(fams, "vpsnet_exporter_scrape_errors_total", reason="parse") == 0


def test_module_absent_keeps_serving_up_0(tmp_path: Path, caplog) -> None:
    reg, _ = exporter_metrics.make_registry(str(tmp_path / "missing"))
    with caplog.at_level(logging.WARNING, logger="vpsnet-exporter"):
        for _ in range(3):
            fams = scrape(reg)
            assert_none(fams)
    # A clear line, once (not one per scrape); absence is no scrape error.
    lines = [r.getMessage() for r in caplog.records if "not loaded" in r.getMessage()]
    assert len(lines) == 1 and "modprobe vpsnet" in lines[0]
    assert sum(s.value for s in fams["vpsnet_exporter_scrape_errors"]) == 0


def test_started_before_module_then_loaded_unloaded_reloaded(tmp_path: Path, caplog) -> None:
    f = tmp_path / "metrics"
    reg, _ = exporter_metrics.make_registry(str(f))
    with caplog.at_level(logging.INFO, logger="vpsnet-exporter"):
        assert_none(scrape(reg))
        f.write_text(metrics_text(seed=1))  # modprobe
        fams = scrape(reg)
        assert_whole(fams)
        assert value(fams, "vpsnet_up") == 1
        f.unlink()  # rmmod
        assert_none(scrape(reg))
        f.write_text(metrics_text(seed=2, version="1.1.0"))  # new version loaded
        fams = scrape(reg)
    assert_whole(fams)
    assert value(fams, "vpsnet_info", version="1.1.0") == 1
    msgs = [r.getMessage() for r in caplog.records]
    assert sum("not loaded" in m for m in msgs) == 2
    assert sum("available" in m for m in msgs) == 2


@pytest.mark.parametrize("cut", [0.3, 0.5, 0.77, 0.999])
def test_truncated_mid_line_is_a_scrape_error(tmp_path: Path, cut: float) -> None:
    text = metrics_text()
    n = int(len(text) * cut)
    while text[n - 1] == "\n":  # make sure the cut is mid-line
        n -= 1
    f = tmp_path / "metrics"
    f.write_text(text[:n])
    reg, _ = exporter_metrics.make_registry(str(f))
    fams = scrape(reg)
    assert_none(fams)
    assert value(fams, "vpsnet_exporter_scrape_errors_total", reason="truncated") == 1
    fams = scrape(reg)
    assert value(fams, "vpsnet_exporter_scrape_errors_total", reason="truncated") == 2


@pytest.mark.parametrize(
    "bad",
    [
        "vpsnet_info{version=\"1.0.0\" 1\n",  # unbalanced braces
        "# TYPE vpsnet_link_up gauge\nvpsnet_link_up{device=\"eth1\"} notanumber\n",
        "\x00\x01garbage\n",
        "hello world\n",
        "# TYPE vpsnet_link_up gauge\nvpsnet_link_up 1\n",  # a family repeated
    ],
)
def test_malformed_is_a_scrape_error_never_a_crash(tmp_path: Path, bad: str) -> None:
    f = tmp_path / "metrics"
    f.write_text(metrics_text() + bad if "vpsnet_info" not in bad else bad)
    reg, _ = exporter_metrics.make_registry(str(f))
    fams = scrape(reg)
    assert_none(fams)
    assert value(fams, "vpsnet_exporter_scrape_errors_total", reason="parse") == 1


def test_not_a_vpsnet_file(tmp_path: Path) -> None:
    f = tmp_path / "metrics"
    f.write_text("# TYPE vpsnet_link_up gauge\nvpsnet_link_up 1\n")
    reg, _ = exporter_metrics.make_registry(str(f))
    fams = scrape(reg)
    assert_none(fams)
    assert value(fams, "vpsnet_exporter_scrape_errors_total", reason="parse") == 1


def test_unreadable_is_a_read_error(tmp_path: Path) -> None:
    d = tmp_path / "metrics"
    d.mkdir()  # open() of a directory: IsADirectoryError
    reg, _ = exporter_metrics.make_registry(str(d))
    fams = scrape(reg)
    assert_none(fams)
    assert value(fams, "vpsnet_exporter_scrape_errors_total", reason="read") == 1


def test_file_replaced_while_scraping_never_partial(tmp_path: Path) -> None:
    """A writer swaps the file (reload) and truncates it (bad reads) while we scrape."""
    f = tmp_path / "metrics"
    good = [metrics_text(seed=s, version=f"1.{s}.0") for s in (1, 2)]
    f.write_text(good[0])
    reg, _ = exporter_metrics.make_registry(str(f))
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            tmp = tmp_path / "metrics.new"
            if i % 3 == 0:
                f.unlink(missing_ok=True)  # unloaded
            elif i % 3 == 1:
                tmp.write_text(good[i % 2])
                os.replace(tmp, f)  # (re)loaded, new version
            else:
                with open(f, "w") as fh:  # torn in-place rewrite
                    fh.write(good[i % 2][: len(good[0]) // 2 + 7])
                    fh.flush()
                    time.sleep(0.0005)
                    fh.write(good[i % 2][len(good[0]) // 2 + 7:])
            time.sleep(0.0005)

    t = threading.Thread(target=writer)
    t.start()
    seen = {"up": 0, "down": 0}
    try:
        for _ in range(400):
            fams = scrape(reg)
            if value(fams, "vpsnet_up") == 1:
                assert_whole(fams)
                versions = {s.labels["version"] for s in fams["vpsnet_info"]}
                assert len(versions) == 1
                seen["up"] += 1
            else:
                assert_none(fams)
                seen["down"] += 1
    finally:
        stop.set()
        t.join()
    assert seen["up"] > 0 and seen["down"] > 0


def test_http_server_and_404(tmp_path: Path) -> None:
    f = tmp_path / "metrics"
    f.write_text(metrics_text())
    reg, _ = exporter_metrics.make_registry(str(f))
    srv = exporter_server.make_server(reg, f"127.0.0.1:{free_port()}")
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}"
        with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
            assert r.headers["Content-Type"].startswith("text/plain")
            body = r.read().decode()
        assert "vpsnet_queue_drops_total{" in body and "vpsnet_up 1.0" in body
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(url + "/nope", timeout=5)
        assert e.value.code == 404
    finally:
        srv.shutdown()
        srv.server_close()


def test_tls(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    f = tmp_path / "metrics"
    f.write_text(metrics_text())
    reg, _ = exporter_metrics.make_registry(str(f))
    srv = exporter_server.make_server(reg, f"127.0.0.1:{free_port()}", str(cert), str(key))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        url = f"https://127.0.0.1:{srv.server_address[1]}/metrics"
        with urllib.request.urlopen(url, timeout=5, context=ctx) as r:
            assert b"vpsnet_up 1.0" in r.read()
        with pytest.raises(OSError):  # plain HTTP is refused
            urllib.request.urlopen(url.replace("https", "http"), timeout=5)
    finally:
        srv.shutdown()
        srv.server_close()


def test_textfile_atomic(tmp_path: Path) -> None:
    f = tmp_path / "metrics"
    f.write_text(metrics_text())
    out = tmp_path / "textfile"
    out.mkdir()
    assert exporter.main(["--file", str(f), "--textfile", str(out), "--once"]) == 0
    assert [p.name for p in out.iterdir()] == ["vpsnet.prom"]  # no temp file left
    fams = {m.name: m.samples for m in text_string_to_metric_families((out / "vpsnet.prom")
                                                                      .read_text())}
    assert_whole(fams)
    # The file is replaced by rename: a reader holding the old one keeps a whole file.
    with open(out / "vpsnet.prom") as old:
        f.unlink()
        exporter.main(["--file", str(f), "--textfile", str(out), "--once"])
        assert "vpsnet_up 1.0" in old.read()
    assert "vpsnet_up 0.0" in (out / "vpsnet.prom").read_text()


def test_cli_serves_and_logs(tmp_path: Path) -> None:
    port = free_port()
    p = subprocess.Popen(
        ["vpsnet-exporter", "--file", str(tmp_path / "absent"), "--listen", f"127.0.0.1:{port}"],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
                break
            except OSError:
                assert time.monotonic() < deadline and p.poll() is None
                time.sleep(0.1)
        assert b"vpsnet_up 0.0" in body
    finally:
        p.terminate()
        _, err = p.communicate(timeout=10)
    assert "vpsnet module not loaded" in err and f"127.0.0.1:{port}" in err


def test_parse_listen() -> None:
    assert exporter_server.parse_listen(":19462") == ("", 19462)
    assert exporter_server.parse_listen("[::1]:80") == ("::1", 80)
    assert exporter_server.parse_listen("10.0.0.1:9") == ("10.0.0.1", 9)
    for bad in ("19462", "x:y", ":0", ":70000"):
        with pytest.raises(ValueError):
            exporter_server.parse_listen(bad)


def test_packaged_exporter_starts_without_importlib_metadata(tmp_path: Path) -> None:
    """A restart after an upgrade is a gap in the scrapes: the packaged tools (version
    pinned by the staging step) must not pay for importing importlib.metadata."""
    stage_tools(tmp_path / "tools", "9.8.7")
    probe = ("import sys, vpsnet_tools.exporter as e; "
             "print(e.__version__, 'importlib.metadata' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path / "tools", check=True,
                         capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(tmp_path / "tools")}).stdout
    assert out.split() == ["9.8.7", "False"]
