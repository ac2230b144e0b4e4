"""vpsnet_ethtool: `ethtool -l/-g/-c` output read the same way everywhere, and
what each NIC profile sets with ethtool (channels, rings, adaptive RX).
Imported by the vpsnet_tune plan filter on the controller and, installed in
/usr/local/lib/vpsnet, by vpsnet-tune (verify, nics); roles/vpsnet_tune/files/
vpsnet_ethtool.py links here. Standard library only.
"""

from __future__ import annotations

import re
from typing import Any

SECTION_RE = re.compile(r"^(Pre-set maximums|Current hardware settings)\s*:", re.I)
FIELD_RE = re.compile(r"^\s*(RX|TX|Other|Combined|RX Mini|RX Jumbo)\s*:\s*(\S+)", re.I)


def ethtool_fields(text: str) -> dict[str, dict[str, str]]:
    """`ethtool -l` or `ethtool -g` output -> {'max': {...}, 'current': {...}}
    with keys rx, tx, other, combined, rx_mini, rx_jumbo, values as printed."""
    out: dict[str, dict[str, str]] = {"max": {}, "current": {}}
    section: str | None = None
    for line in (text or "").splitlines():
        match = SECTION_RE.match(line.strip())
        if match:
            section = "max" if match.group(1).lower().startswith("pre-set") else "current"
            continue
        match = FIELD_RE.match(line)
        if match and section:
            out[section][match.group(1).lower().replace(" ", "_")] = match.group(2)
    return out


def parse_ethtool(text: str) -> dict[str, dict[str, int | None]]:
    """ethtool_fields() with numbers (None when n/a)."""
    # ASCII digits, bounded: isdigit() takes "²" and int() refuses 4300+ digits
    return {section: {key: int(value) if value.isascii() and value.isdigit() and len(value) <= 10
                      else None for key, value in fields.items()}
            for section, fields in ethtool_fields(text).items()}


def parse_adaptive_rx(text: str) -> bool | None:
    """`ethtool -c` output -> Adaptive RX on/off (None when not reported)."""
    match = re.search(r"Adaptive RX:\s*(on|off)", text or "")
    return None if match is None else match.group(1) == "on"


def ethtool_target(
    profile: str, channels: dict[str, Any], rings: dict[str, Any], vcpus: int
) -> dict[str, Any]:
    """What the NIC profile asks for, given parsed `ethtool -l` / `-g` output.
    Only settings the NIC reports (max > 0) are included."""
    chmax = (channels or {}).get("max", {})
    rgmax = (rings or {}).get("max", {})
    target: dict[str, Any] = {"channels": {}, "rings": {}, "adaptive_rx": None}
    if profile == "none":
        return target
    combined = chmax.get("combined") or 0
    if profile == "virtio_net":
        if combined:
            target["channels"]["combined"] = min(int(vcpus), combined)
    elif combined:
        target["channels"]["combined"] = combined
    else:
        for key in ("rx", "tx"):
            if chmax.get(key):
                target["channels"][key] = chmax[key]
    if profile == "ena":
        for key in ("rx", "tx"):
            if rgmax.get(key):
                target["rings"][key] = rgmax[key]
        target["adaptive_rx"] = True
    return target


def ethtool_diff(
    target: dict[str, Any], channels: dict[str, Any], rings: dict[str, Any], adaptive_rx: Any = None
) -> dict[str, Any]:
    """The part of `target` that differs from the current settings."""
    cur_ch = (channels or {}).get("current", {})
    cur_rg = (rings or {}).get("current", {})
    out: dict[str, Any] = {
        "channels": {k: v for k, v in target.get("channels", {}).items() if cur_ch.get(k) != v},
        "rings": {k: v for k, v in target.get("rings", {}).items() if cur_rg.get(k) != v},
        "adaptive_rx": None,
    }
    want = target.get("adaptive_rx")
    if want is not None and adaptive_rx is not None and bool(adaptive_rx) != bool(want):
        out["adaptive_rx"] = want
    return out
