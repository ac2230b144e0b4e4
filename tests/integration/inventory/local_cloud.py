"""Helpers for the inventory tests: a server subprocess on a free 127.0.0.1 port,
an environment that can reach no cloud, a production inventory file rendered with
a few keys changed, and ansible-inventory / ansible-playbook runs over it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
PRODUCTION = REPO / "inventories" / "production"
BIN = Path(sys.executable).parent
# Where any request that ignores the endpoint override would go: nothing listens
# on the discard port, so it fails at once instead of leaving the machine.
DEAD_PROXY = "http://127.0.0.1:9"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server_process(argv: list[str], port: int, timeout: float = 90) -> Iterator[str]:
    """Run ARGV (a server that listens on 127.0.0.1:PORT) until the port answers;
    yield its base URL; always stop it."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[:3]} exited {proc.returncode}: "
                                   f"{proc.stderr.read() if proc.stderr else ''}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, f"{argv[:3]}: no answer on {port}"
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=15)
        proc.kill()  # nothing if it has exited
        proc.wait()


def offline_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """This venv and the repo's collections, no AWS_* / GCP_* / GOOGLE_* settings of
    the caller's (no credentials or profile files), proxies that go nowhere except
    for 127.0.0.1, plain output; then OVERRIDES."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "GCP_", "GOOGLE_", "CLOUDSDK_"))
           and k.lower() not in ("http_proxy", "https_proxy", "no_proxy", "all_proxy")}
    env.update({
        "PATH": os.pathsep.join([str(BIN), env.get("PATH", "")]),
        "HOME": str(tmp_path),
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_COLLECTIONS_PATH": str(REPO / ".cache" / "collections"),
        "ANSIBLE_DEPRECATION_WARNINGS": "false",
        "ANSIBLE_NOCOLOR": "1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "HTTP_PROXY": DEAD_PROXY, "HTTPS_PROXY": DEAD_PROXY,
        "http_proxy": DEAD_PROXY, "https_proxy": DEAD_PROXY,
        "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1",
        **overrides,
    })
    return env


def render_inventory(name: str, dest_dir: Path, **changes: Any) -> Path:
    """inventories/production/NAME with only the top-level keys CHANGES replaced,
    written to DEST_DIR under the same name (the plugins want their file names)."""
    config = yaml.safe_load((PRODUCTION / name).read_text())
    unknown = set(changes) - set(config)
    assert not unknown, f"{name} has no {sorted(unknown)} to replace"
    config.update(changes)
    dest = dest_dir / name
    dest.write_text(yaml.safe_dump(config, sort_keys=False))
    return dest


def plain(value: Any) -> Any:
    """VALUE from ansible-inventory --list with its {"__ansible_unsafe": x} markers dropped."""
    if isinstance(value, Mapping):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def ansible_inventory(source: Path, env: Mapping[str, str], *args: str) -> str:
    """ansible-inventory -i SOURCE ARGS: its stdout; fails on any plugin warning
    (a source the plugin could not parse is only a warning to ansible-inventory)."""
    proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(source), *args],
                          env=dict(env), cwd=source.parent, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Failed to parse" not in proc.stderr and "Unable to parse" not in proc.stderr, \
        proc.stderr[-3000:]
    return proc.stdout


def inventory_list(source: Path, env: Mapping[str, str]) -> dict[str, Any]:
    listed: dict[str, Any] = plain(json.loads(ansible_inventory(source, env, "--list")))
    return listed


def group_members(listed: Mapping[str, Any], group: str) -> list[str]:
    members: list[str] = listed.get(group, {}).get("hosts", [])
    return members
