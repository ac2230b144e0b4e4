"""The vpsnet.ko variants test_abi_ko*.py run vpsnet-abi on (patches to
temporary copies of driver-src), and the CLI as users run it. abi_ko_builds.py
builds the variants; only those files import this one."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

TOP = Path(__file__).resolve().parents[2]


def substitute(path: Path, old: str, new: str, count: int = 1) -> None:
    text = path.read_text()
    assert text.count(old) >= count, f"{old!r} not in {path} (driver-src changed?)"
    path.write_text(text.replace(old, new))


def _add_family(src: Path) -> None:
    with (src / "vpsnet_families.h").open("a") as f:
        f.write('VPSNET_SEP\nVPSNET_FAMILY(softirq_net_tx_total, counter, VPSNET_LS_CPU,\n'
                '\t      "NET_TX softirqs handled by the CPU")\n')


def _rename_family(src: Path) -> None:
    for p in [*src.glob("*.c"), *src.glob("*.h")]:
        if "link_flaps_total" in p.read_text():
            substitute(p, "link_flaps_total", "carrier_flaps_total")


def _bump_major(src: Path) -> None:
    text = (src / "vpsnet_abi.h").read_text()
    new, n = re.subn(r"(#define VPSNET_ABI_MAJOR\s+)1\b", r"\g<1>2", text)
    assert n == 1, "VPSNET_ABI_MAJOR 1 not found in vpsnet_abi.h"
    (src / "vpsnet_abi.h").write_text(new)


VARIANTS: dict[str, tuple[Callable[[Path], None] | None, list[str]]] = {
    "base": (None, []),
    "added": (_add_family, []),
    "renamed": (_rename_family, []),
    "major2": (_bump_major, []),
    "unhealthy": (None, ["VPSNET_TEST_FORCE_UNHEALTHY=1"]),
}


def run_abi(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """The CLI as users run it (the module entry point of the console script)."""
    return subprocess.run([sys.executable, "-m", "vpsnet_tools.abi", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def diff_json(old: Path, new: Path) -> tuple[int, dict[str, object]]:
    r = run_abi("diff", "--json", old, new)
    assert r.returncode in (0, 3), r.stderr
    assert "Traceback" not in r.stderr
    return r.returncode, json.loads(r.stdout)


def finding_messages(doc: dict[str, object]) -> list[str]:
    findings = doc["findings"]
    assert isinstance(findings, list)
    return [f"{f['severity']}: {f['message']}" for f in findings]
