"""The HTTP server's own counters, served as vpsnet_exporter_* families.
Imported by web (the server) and web_connection."""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterable, Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

CLOSE_REASONS = ("cap", "evicted", "deadline", "bad_request", "tls", "error")


class Stats:
    """The server's own counters, exposed as vpsnet_exporter_* families."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open = 0
        self.closed = dict.fromkeys(CLOSE_REASONS, 0)
        self.accept_errors = {"fd_limit": 0, "other": 0}
        self.responses: collections.Counter[str] = collections.Counter()
        self.max_connections = 0

    def count_closed(self, reason: str) -> None:
        with self.lock:
            self.closed[reason] += 1

    def collect(self) -> Iterator[Metric]:
        with self.lock:
            closed, errs = dict(self.closed), dict(self.accept_errors)
            responses, open_now = dict(self.responses), self.open
        g = GaugeMetricFamily("vpsnet_exporter_connections",
                              "HTTP connections open now (all phases)")
        g.add_metric([], float(open_now))
        yield g
        g = GaugeMetricFamily("vpsnet_exporter_max_connections",
                              "Connection cap (--web.max-connections)")
        g.add_metric([], float(self.max_connections))
        yield g
        c = CounterMetricFamily(
            "vpsnet_exporter_connections_closed",
            "Connections the exporter ended early: closed at the cap (cap), to make "
            "room for a new one (evicted), past the request deadline (deadline), malformed "
            "(bad_request, answered 4xx), failed TLS handshake (tls), other errors (error)",
            labels=["reason"])
        for reason in CLOSE_REASONS:
            c.add_metric([reason], float(closed[reason]))
        yield c
        c = CounterMetricFamily(
            "vpsnet_exporter_accept_errors",
            "accept() failures: out of file descriptors or memory (fd_limit), other",
            labels=["reason"])
        for reason, n in errs.items():
            c.add_metric([reason], float(n))
        yield c
        c = CounterMetricFamily("vpsnet_exporter_http_responses",
                                "HTTP answers sent, by status code", labels=["code"])
        for code, n in sorted(responses.items()):
            c.add_metric([code], float(n))
        yield c

    def describe(self) -> Iterable[Metric]:
        return []
