"""Unit tests of the vpsnet_driver input validation filter."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location(
    "vpsnet_driver_filters", REPO / "roles/vpsnet_driver/filter_plugins/vpsnet_driver.py"
)
assert _spec is not None and _spec.loader is not None
driver = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(driver)


def params(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "version": "1.0.0",
        "interval_ms": 1000,
        "stall_intervals": 3,
        "drivers": ["ena", "virtio_net", "gve"],
        "interval_ms_range": [100, 60000],
        "stall_intervals_range": [2, 100],
    }
    base.update(kw)
    return base


@pytest.mark.parametrize("version", ["1.0.0", "1.1.0~rc1", "2.0.0+git3", "10.2"])
def test_good_versions(version: str) -> None:
    assert driver.validate(params(version=version)) == []


@pytest.mark.parametrize(
    ("kw", "needle"),
    [
        ({"version": "latest"}, "vpsnet_driver_version='latest' is not a version string"),
        ({"version": "1.0.0; rm -rf /"}, "is not a version string"),
        ({"version": "1"}, "vpsnet_driver_version='1'"),
        ({"interval_ms": 50}, "vpsnet_driver_interval_ms=50 is outside 100..60000"),
        ({"interval_ms": 60001}, "outside 100..60000"),
        ({"stall_intervals": 1}, "vpsnet_driver_stall_intervals=1 is outside 2..100"),
        ({"stall_intervals": "x"}, "vpsnet_driver_stall_intervals='x' is not an integer"),
        ({"drivers": []}, "vpsnet_driver_drivers=[] must be a non-empty list"),
        ({"drivers": ["ena", "bad name"]}, "'bad name' is not a kernel driver name"),
    ],
)
def test_bad_input_named(kw: dict[str, object], needle: str) -> None:
    errors = driver.validate(params(**kw))
    assert any(needle in e for e in errors), errors
