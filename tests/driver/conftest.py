"""Fixtures for the guest tests of vpsnet.ko (tests/driver/test_guest_*.py)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from vpsnet_guest_helpers import GUESTS, LINK, build_in_guest, build_on_host_for_guest, unload

from vpsnet_lab.fleet import Lab, Result


@pytest.fixture(scope="session")
def glab(request: pytest.FixtureRequest) -> Lab:
    """The session lab, or (while iterating) an already running lab given by
    VPSNET_DRIVER_DEV_STATE=<state dir> (see bench/README.md)."""
    dev = os.environ.get("VPSNET_DRIVER_DEV_STATE")
    if dev:
        return Lab(Path(dev))
    lab: Lab = request.getfixturevalue("lab")
    return lab


@pytest.fixture(scope="session")
def vpsnet_built(glab: Lab, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    """vpsnet.ko for each guest's running kernel, at vpsnet_guest_helpers.KO.

    By default built on the host against the host's copy of the guest
    kernel's headers (same Debian package; seconds instead of minutes under
    TCG). VPSNET_DRIVER_BUILD_IN_GUEST=1 copies driver-src/ + VERSION into the
    guests and runs `make KVER=$(uname -r)` there, in parallel."""
    work = tmp_path_factory.mktemp("vpsnet-src")
    results: dict[str, Result] = {}

    def build(name: str) -> None:
        if os.environ.get("VPSNET_DRIVER_BUILD_IN_GUEST") == "1":
            results[name] = build_in_guest(glab, name, work)
        else:
            results[name] = build_on_host_for_guest(glab, name, work / name)

    threads = [threading.Thread(target=build, args=(g,)) for g in GUESTS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for g in GUESTS:
        assert results[g].rc == 0, f"{g}: build failed:\n{results[g].stdout[-3000:]}"
        assert "warning:" not in results[g].stdout, results[g].stdout
    return results


def restore_guests(lab: Lab) -> None:
    """Leave both guests as the session lab booted them."""
    for g in GUESTS:
        lab.resume(g)
    for g, (nic, _, _) in LINK.items():
        lab.link(g, nic, up=True)
    for g in GUESTS:
        lab.ssh(g, "pkill -x iperf3; pkill -x ping; pkill -f '[v]psnet-flood'; "
                "pkill -f '[v]psnet-reader'; pkill -x udevadm; true", timeout=60)
        lab.ssh(g, f"tc qdisc del dev {LINK[g][0]} root 2>/dev/null; true", timeout=60)
        unload(lab, g)


@pytest.fixture(scope="module")
def guests(glab: Lab, vpsnet_built: dict[str, Result]) -> Iterator[Lab]:
    """The lab with vpsnet built in both guests; restored after the module."""
    restore_guests(glab)
    try:
        yield glab
    finally:
        restore_guests(glab)
