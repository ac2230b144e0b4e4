"""Scrape vpsnet-exporter from inside a lab guest, as Prometheus would, and log
every answer: the tests read the log to prove no scrape was refused while the
exporter was reloaded or the module replaced.

The file is also the guest-side program (stdlib only): copied to the guest and
run with python3, it prints one line per scrape,
``<unix time> ok <vpsnet_up> <module version> <exporter version>`` or
``<unix time> error <exception type>``.
"""

from __future__ import annotations

import re
import sys
import time
import urllib.request
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the guest side has no lab package
    from vpsnet_lab.fleet import Lab

URL = "http://127.0.0.1:19462/metrics"
REMOTE = "/run/vpsnet-test-scrape"


@dataclass(frozen=True)
class Scrape:
    at: float
    ok: bool
    up: str = "-"
    module_version: str = "-"
    exporter_version: str = "-"

    @classmethod
    def parse(cls, line: str) -> Scrape:
        f = line.split()
        if len(f) >= 5 and f[1] == "ok":
            return cls(float(f[0]), True, f[2], f[3], f[4])
        return cls(float(f[0]), False)


def max_gap(scrapes: list[Scrape]) -> float:
    """Longest time in seconds between two answered scrapes."""
    answered = [s.at for s in scrapes if s.ok]
    return max((b - a for a, b in pairwise(answered)), default=0.0)


def start(lab: Lab, guest: str, interval: float = 0.5) -> None:
    """Copy this program to GUEST and start it in the background."""
    script = Path(__file__).read_text()
    lab.ssh(guest, f"cat > {REMOTE}.py <<'EOF'\n{script}\nEOF\n"
                   f"rm -f {REMOTE}.log; setsid nohup python3 {REMOTE}.py {URL} {interval} "
                   f">{REMOTE}.log 2>&1 & echo $! >{REMOTE}.pid", timeout=120, check=True)


def stop(lab: Lab, guest: str) -> list[Scrape]:
    """Stop the program on GUEST; every scrape it logged."""
    out = lab.ssh(guest, f"kill $(cat {REMOTE}.pid); sleep 1; cat {REMOTE}.log",
                  timeout=120, check=True).stdout
    return [Scrape.parse(ln) for ln in out.splitlines() if ln.strip()]


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        body = r.read().decode()
        server = r.headers.get("Server", "-").split()[0]
    up = re.search(r"^vpsnet_up (\S+)", body, re.M)
    ver = re.search(r'^vpsnet_info\{[^}]*version="([^"]+)"', body, re.M)
    version = server.rpartition("/")[2] or "-"
    return f"ok {up.group(1) if up else '-'} {ver.group(1) if ver else '-'} {version}"


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else URL
    interval = float(sys.argv[2]) if len(sys.argv) > 2 else 0.5
    while True:
        try:
            line = _scrape(url)
        except Exception as e:  # every failure is a logged line, never an exit
            line = "error " + type(e).__name__
        print(f"{time.time():.2f} {line}", flush=True)
        time.sleep(interval)


if __name__ == "__main__":
    main()
