"""vpsnet_tune_host: what every vpsnet-tune command shares: its error, reading
and writing under --root, running a tool, sysctl paths and values, name checks.
Imported by the vpsnet_tune_* modules beside it in /usr/local/lib/vpsnet.
"""

from __future__ import annotations

import os
import re
import subprocess
from typing import Any

CLEAN, DRIFT, ERROR = 0, 1, 2
SYSCTL_RE = re.compile(r"[a-z][a-z0-9_]*(\.[A-Za-z0-9_@:+-]+)+")
IFNAME_RE = re.compile(r"(?!-)(?!\.\.?\Z)[^/:\s\x00-\x1f\x7f-\x9f]{1,15}")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
TOOL_TIMEOUT = 30


class VerifyError(Exception):
    """Something could not be read: the result is unknown, never clean."""


def rooted(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


def read(root: str, path: str) -> str:
    try:
        with open(rooted(root, path), encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError) as err:
        raise VerifyError(f"cannot read {path}: {getattr(err, 'strerror', None) or err}") from None


def sysctl_path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def norm_sysctl(value: Any) -> str:
    """sysctl files and /proc/sys differ in whitespace (tabs in tcp_rmem)."""
    if isinstance(value, bool):
        value = int(value)
    return " ".join(str(value).split())


def run(argv: list[str]) -> str:
    """A tool's stdout; its failure (or absence) is an error, never "nothing"."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise VerifyError(f"{' '.join(argv)}: {err}") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise VerifyError(f"{' '.join(argv)}: exit {done.returncode}"
                          + (f": {detail[-1]}" if detail else ""))
    return done.stdout


def read_opt(root: str, path: str) -> str | None:
    try:
        return read(root, path)
    except VerifyError:
        return None


def write(root: str, path: str, value: str) -> None:
    try:
        with open(rooted(root, path), "w", encoding="utf-8") as handle:
            handle.write(value + "\n")
    except OSError as err:
        raise VerifyError(f"cannot write {value!r} to {path}: {err.strerror or err}") from None


def check_ifname(name: Any) -> str:
    if not isinstance(name, str) or not IFNAME_RE.fullmatch(name) or len(name.encode()) > 15:
        raise ValueError(f"{name!r} is not an interface name")
    return name
