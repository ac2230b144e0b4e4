"""vpsnet_upgrade_probe: kernel log records since the step began, device count."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import pytest
from ansible_collections.vpsnet.fleet.plugins.modules import vpsnet_upgrade_probe


def probe() -> ModuleType:
    return vpsnet_upgrade_probe


PATTERNS = ["^WARNING:", "^BUG:", "Oops", "Call Trace:"]


def test_kmsg_records_and_findings(tmp_path: Path) -> None:
    p = probe()
    assert p.parse_kmsg_record("4,1001,5000000,-;WARNING: CPU: 0 PID: 1 at x\n SUBSYSTEM=net") == (
        5.0, "WARNING: CPU: 0 PID: 1 at x")
    assert p.parse_kmsg_record("garbage") is None
    assert p.parse_kmsg_record("6,1,abc,-;x") is None
    records = [(1.0, "BUG: old, before the step"), (2.5, "vpsnet: attached eth0"),
               (3.0, "WARNING: CPU: 1 PID: 7 at net/core/dev.c:1"),
               (3.5, "vpsnet: loading out-of-tree module taints kernel.")]
    assert p.findings(records, 2.0, PATTERNS) == [
        "[3.000000] WARNING: CPU: 1 PID: 7 at net/core/dev.c:1"]
    assert p.findings(records, 0.0, PATTERNS)[0] == "[1.000000] BUG: old, before the step"
    assert p.findings(records, 0.0, []) == []


def test_kmsg_records_reads_a_record_per_read(tmp_path: Path) -> None:
    """/dev/kmsg returns one record per read(); a FIFO with one record stands in."""
    p = probe()
    fifo = tmp_path / "kmsg"
    os.mkfifo(fifo)
    wfd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    os.write(wfd, b"3,7,4200000,-;BUG: unable to handle page fault\n")
    try:
        assert p.kmsg_records(str(fifo)) == [(4.2, "BUG: unable to handle page fault")]
    finally:
        os.close(wfd)


def test_attached_devices() -> None:
    p = probe()
    metrics = "# TYPE vpsnet_devices_attached gauge\nvpsnet_devices_attached 3\n"
    assert p.attached_devices(metrics) == 3
    assert p.attached_devices(None) == 0


def test_package_manager_busy(tmp_path: Path) -> None:
    """dpkg holds an fcntl lock on lock-frontend while it runs; a child process holds it here."""
    import subprocess
    import sys
    p = probe()
    lock = tmp_path / "lock-frontend"
    lock.touch()
    assert not p.package_manager_busy(str(lock))
    assert not p.package_manager_busy(str(tmp_path / "absent"))
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(lock)!r}, os.O_RDWR)\n"
        "fcntl.lockf(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\ntime.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout and holder.stdout.readline().strip() == "locked"
        assert p.package_manager_busy(str(lock))
    finally:
        holder.kill()
        holder.wait()
    assert not p.package_manager_busy(str(lock))


def test_unit_active_asks_systemctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in systemctl that knows one active unit; absent systemctl means inactive."""
    p = probe()
    fake = tmp_path / "systemctl"
    fake.write_text('#!/bin/sh\n[ "$1 $2 $3" = "is-active --quiet vpsnet-exporter.service" ]\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert p.unit_active("vpsnet-exporter.service")
    assert not p.unit_active("other.service")
    fake.unlink()
    assert not p.unit_active("vpsnet-exporter.service")
