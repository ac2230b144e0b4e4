"""vpsnet_lab.prometheus: Debian's Prometheus on 127.0.0.1 scraping a local stand-in
exporter, named by the label asked for, with the project's rules at a short `for:`."""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vpsnet_lab import prometheus

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None,
                                reason="prometheus not installed (make setup)")

# a module whose only device has its link down: VpsnetLinkDown after `for:`
METRICS = (b"# TYPE vpsnet_up gauge\nvpsnet_up 1\n"
           b"# TYPE vpsnet_link_up gauge\n"
           b'vpsnet_link_up{device="eth1",driver="virtio_net"} 0\n')


@pytest.fixture
def exporter() -> Iterator[int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(METRICS)))
            self.end_headers()
            self.wfile.write(METRICS)

        def log_message(self, format: str, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield int(srv.server_address[1])
    finally:
        srv.shutdown()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def until(fn: object, timeout: float = 60) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while True:
        got = fn()  # type: ignore[operator]
        if got or time.monotonic() > deadline:
            return list(got)
        time.sleep(0.5)


@pytest.mark.parametrize("label", ["instance", "guest"])
def test_scrapes_the_targets_named_by_the_label_and_fires_the_rules(exporter: int,
                                                                   label: str) -> None:
    with prometheus.running({"web1:19462": exporter}, free_port(), label=label,
                            alert_for="1s") as prom:
        up = until(lambda: prom.query(f'vpsnet_up{{{label}="web1:19462"}} == 1'))
        assert up and up[0]["metric"]["job"] == "vpsnet"  # type: ignore[index]
        firing = until(lambda: [a for a in prom.alerts()
                                if a["labels"]["alertname"] == "VpsnetLinkDown"
                                and a["state"] == "firing"])
        assert firing and firing[0]["labels"][label] == "web1:19462"  # type: ignore[index]
        workdir = prom.workdir
    assert not workdir.exists()  # config and storage gone with the server


def test_a_prometheus_that_cannot_start_says_why() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = int(busy.getsockname()[1])
        with pytest.raises(RuntimeError, match="did not get ready"), \
                prometheus.running({}, port, ready_timeout=20):
            pass
