"""Fixtures of the inventory tests: moto's EC2 API on 127.0.0.1 (skipped, with the
reason, when moto is not installed)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator

import pytest

from .local_cloud import free_port, server_process


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """The base URL of a moto server (all AWS services, every region) on 127.0.0.1."""
    if any(importlib.util.find_spec(m) is None for m in ("moto", "flask", "flask_cors")):
        pytest.skip("moto[server] is not installed (requirements.txt pins it)")
    port = free_port()
    with server_process([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                         "-p", str(port)], port) as url:
        yield url
