"""Lab guests as the instances of a molecule scenario (delegated driver): boot a
spec, serve a signed package repository to the guests on loopback, and write
molecule's instance config; tear both down again. Used by the scenarios'
lab helpers (molecule/*/…lab.py), called from their create.yml / destroy.yml."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from vpsnet_lab.fleet import SSH_KEY, Lab, Say
from vpsnet_lab.specparse import parse


def _server_pid_file(state: Path) -> Path:
    return state.parent / (state.name + "-repo-server.pid")


def stop_repo_server(state: Path) -> None:
    pid_file = _server_pid_file(state)
    try:
        pid = int(pid_file.read_text())
    except (OSError, ValueError):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    pid_file.unlink(missing_ok=True)


def start_repo_server(state: Path, repo: Path, port: int) -> None:
    """http://127.0.0.1:PORT/ serving REPO (the guests' http://10.0.2.101/)."""
    state.parent.mkdir(parents=True, exist_ok=True)
    log = (state.parent / (state.name + "-repo-server.log")).open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port), "-d", str(repo)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
    _server_pid_file(state).write_text(str(server.pid))


BOOT_TIMEOUT = 900
REPO_PORT_OFFSET = 300  # host port of the repository: the scenario's base_port + this


def scenario_spec(name: str, base_port: int, guests: list[dict[str, Any]]) -> dict[str, Any]:
    """A scenario's lab spec: the two lab regions, the repository service (the
    guests' http://10.0.2.101) and GUESTS."""
    return {
        "name": name,
        "base_port": base_port,
        "regions": {
            "us-east-1": {"rtt_ms": 180, "bandwidth_mbit": 1000},
            "asia-east1": {"rtt_ms": 60, "bandwidth_mbit": 2000},
        },
        "services": [{"name": "repo", "guest_port": 80,
                      "host_port": base_port + REPO_PORT_OFFSET}],
        "guests": guests,
    }


def up(spec: dict[str, Any], source: str, state: Path, repo: Path,
       instance_config: Path, say: Say) -> Lab:
    down(state, say)
    lab_spec = parse(spec, source)
    start_repo_server(state, repo, lab_spec.base_port + REPO_PORT_OFFSET)
    started = time.monotonic()
    try:
        # several TCG guests booting at once on 2 cores: minutes each
        lab = Lab.up(lab_spec, state_dir=state, boot_timeout=BOOT_TIMEOUT, say=say)
    except BaseException:
        stop_repo_server(state)
        raise
    say(f"guests up in {time.monotonic() - started:.0f}s")
    config = [{"instance": g.name, "address": "127.0.0.1", "user": "root", "port": g.ssh_port,
               "identity_file": str(SSH_KEY)} for g in lab.spec.guests]
    instance_config.write_text(yaml.safe_dump(config, sort_keys=False))
    return lab


def down(state: Path, say: Say) -> None:
    Lab(state).down(say=say)
    stop_repo_server(state)


def main(argv: list[str], usage: str, spec: dict[str, Any], source: str, state: Path,
         build_repo: Callable[[], Path], say: Say) -> int:
    """The helpers' command line: `up INSTANCE_CONFIG` or `down`."""
    if argv[:1] == ["up"] and len(argv) == 2:
        up(spec, source, state, build_repo(), Path(argv[1]), say)
    elif argv == ["down"]:
        down(state, say)
    else:
        print(usage, file=sys.stderr)
        return 2
    return 0
