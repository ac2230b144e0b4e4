"""Helpers for the guest tests of vpsnet.ko: build, load, read metrics, wait.

Building and loading are vpsnet_lab.guest_module's (bench/overhead.py uses them
too), re-exported here; the rest only depends on the Lab API.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client.parser import text_string_to_metric_families

from vpsnet_lab.fleet import Lab
from vpsnet_lab.guest_module import GUEST_SRC as GUEST_SRC
from vpsnet_lab.guest_module import KO as KO
from vpsnet_lab.guest_module import METRICS as METRICS
from vpsnet_lab.guest_module import build_in_guest as build_in_guest
from vpsnet_lab.guest_module import build_on_host_for_guest as build_on_host_for_guest
from vpsnet_lab.guest_module import load as load
from vpsnet_lab.guest_module import loaded as loaded
from vpsnet_lab.guest_module import unload as unload

MANIFEST = "/proc/net/vpsnet/manifest"

T = TypeVar("T")

GUESTS = ("aws61", "gcp612")
# The socket link of the session lab: guest -> (its NIC, peer, peer's NIC)
LINK = {"aws61": ("eth2", "gcp612", "eth1"), "gcp612": ("eth1", "aws61", "eth2")}


def dmesg_mark(lab: Lab, name: str, tag: str) -> str:
    """Write a unique marker into the kernel log; return it."""
    mark = f"vpsnet-test-mark {tag} {time.time():.6f}"
    lab.ssh(name, f"echo {shlex.quote(mark)} > /dev/kmsg", check=True)
    return mark


def dmesg_since(lab: Lab, name: str, mark: str, levels: str = "") -> list[str]:
    """Kernel log lines after the marker (optionally only some levels)."""
    opt = f"--level={levels}" if levels else ""
    out = lab.ssh(name, f"dmesg {opt} ; echo ===; dmesg", check=True).stdout
    selected, _, full = out.partition("===\n")
    # position of the mark in the full log decides which selected lines count
    full_lines = full.splitlines()
    idx = max((i for i, ln in enumerate(full_lines) if mark in ln), default=-1)
    after = set(full_lines[idx + 1:]) if idx >= 0 else set(full_lines)
    return [ln for ln in selected.splitlines() if ln in after]


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Samples keyed by (sample name, sorted labels); duplicates raise."""
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            if key in out:
                raise AssertionError(f"duplicate series {key}")
            out[key] = s.value
    return out


def metrics_text(lab: Lab, name: str) -> str:
    return str(lab.ssh(name, f"cat {METRICS}", check=True).stdout)


def metrics(lab: Lab, name: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return parse_metrics(metrics_text(lab, name))


def series(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], metric: str,
           **labels: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Samples of one metric whose labels include the given ones."""
    return {lk: v for (n, lk), v in samples.items()
            if n == metric and all(dict(lk).get(k) == val for k, val in labels.items())}


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], metric: str,
          **labels: str) -> float:
    found = series(samples, metric, **labels)
    assert len(found) == 1, f"{metric}{labels}: {len(found)} series"
    return next(iter(found.values()))


def health(lab: Lab, name: str, dev: str) -> str:
    """Current health state of a device, from the metrics file."""
    cur = series(metrics(lab, name), "vpsnet_health_state", device=dev)
    up = [dict(lk)["state"] for lk, v in cur.items() if v == 1]
    assert len(up) == 1, f"{name} {dev}: health states {cur}"
    return up[0]


def wait_for(what: str, probe: Callable[[], T | None], timeout: float,
             interval: float = 0.2) -> tuple[T, float]:
    """Poll probe until it returns a truthy value; return it and the time taken."""
    start = time.monotonic()
    while True:
        got = probe()
        if got:
            return got, time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def ethtool_stats(lab: Lab, name: str, dev: str) -> dict[str, int]:
    out = lab.ssh(name, f"ethtool -S {dev}", check=True).stdout
    stats = {}
    for ln in out.splitlines()[1:]:
        k, _, v = ln.strip().rpartition(":")
        if k and v.strip().lstrip("-").isdigit():
            stats[k.strip()] = int(v)
    return stats


def link_stats(lab: Lab, name: str, dev: str) -> dict[str, int]:
    """`ip -s link` totals of a device (JSON output)."""
    out = lab.ssh(name, f"ip -j -s link show dev {dev}", check=True).stdout
    st: dict[str, Any] = json.loads(out)[0]["stats64"]
    return {f"{d}_{k}": int(st[d][k]) for d in ("rx", "tx") for k in ("packets", "bytes")}
