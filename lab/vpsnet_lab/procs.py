"""The processes a lab starts (QEMU, the metadata helper), recorded by PID and
start time so that a later `down` stops exactly those, even after a crash or
a PID reused. Used by fleet.py."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

from .paths import LabError


def start_time(pid: int) -> str | None:
    """The process's start time, or None once it is gone (zombies included)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reap it if it is our own child
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]


def alive(proc: dict[str, Any]) -> bool:
    return start_time(int(proc["pid"])) == str(proc["start"])


def record(pid: int, what: str) -> dict[str, Any]:
    return {"pid": pid, "start": start_time(pid), "what": what}


def stop(proc: dict[str, Any], grace: float = 10.0) -> None:
    if not alive(proc):
        return
    pid = int(proc["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not alive(proc):
            return
        time.sleep(0.1)
    if alive(proc):
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while alive(proc):
            if time.monotonic() > deadline:
                raise LabError(f"{proc['what']} pid {pid} survived SIGKILL")
            time.sleep(0.05)


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"

