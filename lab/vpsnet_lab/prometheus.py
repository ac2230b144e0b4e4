"""A real Prometheus (Debian's `prometheus`) on 127.0.0.1 for the lab's tests: it
scrapes the guests' exporters through their forwarded ports and evaluates a
copy of monitoring/prometheus/vpsnet.rules.yml whose `for:` durations are
shortened, so that alerts fire within seconds. Config and storage live in a
temporary directory; the server is stopped when the context ends."""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
import yaml

from .paths import TOP

RULES = TOP / "monitoring" / "prometheus" / "vpsnet.rules.yml"


class Prometheus:
    def __init__(self, url: str, workdir: Path) -> None:
        self.url = url
        self.workdir = workdir

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = at
        r = requests.get(f"{self.url}/api/v1/query", params=params, timeout=10)
        r.raise_for_status()
        return list(r.json()["data"]["result"])

    def alerts(self) -> list[dict[str, Any]]:
        r = requests.get(f"{self.url}/api/v1/alerts", timeout=10)
        r.raise_for_status()
        return list(r.json()["data"]["alerts"])

    def log(self) -> str:
        return (self.workdir / "prometheus.log").read_text(errors="replace")


def config(targets: Mapping[str, int], rules: Path, scrape_interval: str,
           label: str = "instance") -> dict[str, Any]:
    """Prometheus's configuration: one job `vpsnet` with every target on
    127.0.0.1:<port>, LABEL set to the target's name (with the default, instance:
    named as Prometheus would name the host in a fleet, e.g. "web1:19462")."""
    return {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval,
                   "scrape_timeout": "900ms"},
        "rule_files": [str(rules)],
        "scrape_configs": [{"job_name": "vpsnet", "static_configs": [
            {"targets": [f"127.0.0.1:{port}"], "labels": {label: name}}
            for name, port in targets.items()]}],
    }


@contextmanager
def running(targets: Mapping[str, int], port: int, *, label: str = "instance",
            alert_for: str = "2s", scrape_interval: str = "1s",
            ready_timeout: float = 60) -> Iterator[Prometheus]:
    """Prometheus on 127.0.0.1:PORT scraping TARGETS (name -> host port; the name
    is the target's LABEL), with the project's alert rules, every `for:` set to
    ALERT_FOR."""
    with tempfile.TemporaryDirectory(prefix="vpsnet-prom-") as tmp:
        d = Path(tmp)
        rules = d / "vpsnet.rules.yml"
        rules.write_text(re.sub(r"for: \d+[smh]", f"for: {alert_for}", RULES.read_text()))
        (d / "prometheus.yml").write_text(
            yaml.safe_dump(config(targets, rules, scrape_interval, label)))
        with (d / "prometheus.log").open("w") as log:
            proc = subprocess.Popen(
                ["prometheus", f"--config.file={d / 'prometheus.yml'}",
                 f"--storage.tsdb.path={d / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                 "--storage.tsdb.retention.time=1d"],
                stdout=log, stderr=subprocess.STDOUT)
            prom = Prometheus(f"http://127.0.0.1:{port}", d)
            try:
                deadline = time.monotonic() + ready_timeout
                while not _ready(prom.url):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"prometheus did not get ready on {prom.url}:\n"
                                           f"{prom.log()[-2000:]}")
                    time.sleep(0.5)
                yield prom
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/-/ready", timeout=2).status_code == 200
    except requests.RequestException:
        return False
