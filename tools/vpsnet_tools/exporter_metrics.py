"""What vpsnet-exporter serves: the module's metrics file read and parsed all or
nothing, the included *.prom files, the exporter's own families; rendered for a
scrape or written as a textfile. Imported by exporter, exporter_server and tests.

* ``vpsnet_up``: 1 if the metrics file was read and parsed completely, else 0
  (module not loaded, file unreadable, malformed or truncated).
* ``vpsnet_exporter_scrape_duration_seconds``: time spent reading and parsing.
* ``vpsnet_exporter_scrape_errors_total{reason}``: reads that failed
  (``read``), files that did not end with a newline (``truncated``) or that
  the parser refused (``parse``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from prometheus_client.parser import text_string_to_metric_families

from vpsnet_tools.atomic_file import atomic_write

DEFAULT_FILE = "/proc/net/vpsnet/metrics"
TEXTFILE_NAME = "vpsnet.prom"
ERROR_REASONS = ("read", "truncated", "parse")
MAX_BYTES = 16 * 1024 * 1024  # a sane bound for one snapshot

log = logging.getLogger("vpsnet-exporter")


class VpsnetCollector:
    """Custom collector: the module's families (all or nothing) plus our own."""

    def __init__(self, path: str = DEFAULT_FILE, include: str | None = None) -> None:
        self.path = path
        self.include = include
        self._lock = threading.Lock()
        self._errors = dict.fromkeys(ERROR_REASONS, 0)
        self._state: str | None = None  # last logged state: up, absent, error

    def _log_state(self, state: str, msg: str, level: int) -> None:
        # One line per state change, not one per scrape.
        with self._lock:
            changed = state != self._state
            self._state = state
        if changed:
            log.log(level, msg)

    def _error(self, reason: str, detail: str) -> None:
        with self._lock:
            self._errors[reason] += 1
        # Errors are logged every time (they are unexpected), state or not.
        log.warning("scrape error (%s) reading %s: %s", reason, self.path, detail)
        with self._lock:
            self._state = "error"

    def read_families(self) -> list[Metric] | None:
        """Read and parse the file; None when the module's families are not served."""
        try:
            with open(self.path, "rb") as f:
                raw = f.read(MAX_BYTES + 1)
        except FileNotFoundError:
            self._log_state(
                "absent",
                f"vpsnet module not loaded: {self.path} does not exist "
                "(modprobe vpsnet); serving vpsnet_up 0",
                logging.WARNING,
            )
            return None
        except OSError as e:
            self._error("read", e.strerror or str(e))
            return None
        if len(raw) > MAX_BYTES:
            self._error("read", f"larger than {MAX_BYTES} bytes")
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            self._error("parse", f"not UTF-8: {e}")
            return None
        if text and not text.endswith("\n"):
            self._error("truncated", f"last line has no newline: {text.rsplit(chr(10), 1)[-1]!r}")
            return None
        try:
            fams = list(text_string_to_metric_families(text))
        except Exception as e:  # the parser raises ValueError, KeyError, IndexError...
            self._error("parse", f"{type(e).__name__}: {e}")
            return None
        names = [f.name for f in fams]
        if len(set(names)) != len(names):
            dups = sorted({n for n in names if names.count(n) > 1})
            self._error("parse", f"families repeated: {', '.join(dups)}")
            return None
        if "vpsnet_info" not in names:
            self._error("parse", "no vpsnet_info family: not a vpsnet metrics file")
            return None
        self._log_state("up", f"vpsnet metrics available from {self.path}", logging.INFO)
        return fams

    def collect(self) -> Iterator[Metric]:
        start = time.perf_counter()
        fams = self.read_families()
        duration = time.perf_counter() - start
        if fams is not None:
            yield from fams
        yield from self.included({f.name for f in fams or []})
        up = GaugeMetricFamily(
            "vpsnet_up", "1 if the vpsnet metrics file was read and parsed completely"
        )
        up.add_metric([], 1.0 if fams is not None else 0.0)
        yield up
        dur = GaugeMetricFamily(
            "vpsnet_exporter_scrape_duration_seconds",
            "Time spent reading and parsing the vpsnet metrics file",
        )
        dur.add_metric([], duration)
        yield dur
        errs = CounterMetricFamily(
            "vpsnet_exporter_scrape_errors",
            "Reads of the vpsnet metrics file that failed, were truncated or did not parse",
            labels=["reason"],
        )
        with self._lock:
            counts = dict(self._errors)
        for reason in ERROR_REASONS:
            errs.add_metric([reason], float(counts[reason]))
        yield errs

    def included(self, taken: set[str]) -> Iterator[Metric]:
        """The families of each *.prom file in the include directory, file by file
        whole: one that does not parse, or names a family already served, is left
        out (logged), never half-served."""
        if not self.include:
            return
        try:
            names = sorted(n for n in os.listdir(self.include)
                           if n.endswith(".prom") and n != TEXTFILE_NAME)
        except OSError:
            return  # no directory: nothing to include
        taken = taken | {"vpsnet_up", "vpsnet_exporter_scrape_duration_seconds",
                         "vpsnet_exporter_scrape_errors"}
        for name in names:
            path = os.path.join(self.include, name)
            try:
                with open(path, "rb") as f:
                    raw = f.read(MAX_BYTES + 1)
                if len(raw) > MAX_BYTES:
                    raise ValueError(f"larger than {MAX_BYTES} bytes")
                fams = list(text_string_to_metric_families(raw.decode("utf-8")))
                mine = [f.name for f in fams]
                clash = sorted(set(mine) & taken | {n for n in mine if mine.count(n) > 1})
                if clash:
                    raise ValueError(f"families served already: {', '.join(clash)}")
            except Exception as e:  # the parser raises ValueError, KeyError, IndexError...
                log.warning("textfile %s left out: %s: %s", path, type(e).__name__, e)
                continue
            taken |= set(mine)
            yield from fams

    def describe(self) -> Iterable[Metric]:
        # No describe: the registry must not call collect() at registration.
        return []


def make_registry(
    path: str = DEFAULT_FILE, include: str | None = None
) -> tuple[CollectorRegistry, VpsnetCollector]:
    registry = CollectorRegistry(auto_describe=False)
    collector = VpsnetCollector(path, include)
    registry.register(collector)
    return registry, collector


def render(registry: CollectorRegistry) -> bytes:
    """One scrape's full answer, rendered before anything is sent."""
    return generate_latest(registry)


def write_textfile(registry: CollectorRegistry, directory: Path) -> Path:
    """Write DIR/vpsnet.prom atomically (temp file in DIR, fsync, rename)."""
    body = render(registry)
    target = directory / TEXTFILE_NAME
    # node_exporter only reads *.prom: the temp name does not match.
    atomic_write(target, body)
    return target
