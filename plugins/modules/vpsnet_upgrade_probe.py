#!/usr/bin/python
# SPDX-License-Identifier: GPL-2.0-only
"""Read-only probe of a host's vpsnet state for the rollout: the module
vpsnet.fleet.vpsnet_upgrade_probe, which the vpsnet_upgrade role runs."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: vpsnet_upgrade_probe
short_description: What vpsnet version a host has installed and loaded, and new kernel warnings
description:
  - Reads the installed versions of vpsnet-dkms, vpsnet-kmod-<running kernel> and
    vpsnet-tools (dpkg or rpm), the loaded module's version
    (/sys/module/vpsnet/version), the number of attached devices, the kernel uptime,
    whether dpkg was interrupted, whether the exporter unit is active, kernel log
    records since a point in time that match the given patterns (/dev/kmsg), the
    host's record of its last rollout step and the state of its host-side revert.
    Changes nothing.
options:
  package:
    description: The DKMS package whose installed version is reported.
    type: str
    default: vpsnet-dkms
  kmod_package:
    description: The prebuilt module package; default vpsnet-kmod-<running kernel>.
    type: str
  exporter_unit:
    description: systemd unit of the metrics exporter whose state is reported.
    type: str
    default: vpsnet-exporter.service
  kmsg_since:
    description: Kernel uptime in seconds; report matching kernel log records logged after it.
    type: float
  kmsg_patterns:
    description: Regular expressions for kernel log records that count as findings.
    type: list
    elements: str
    default: []
  step_record:
    description: JSON record of the host's last rollout step (written by vpsnet_upgrade).
    type: path
    default: /var/lib/vpsnet/rollout/step.json
  guard_state:
    description: State file of the step's host-side revert (vpsnet-guard).
    type: path
    default: /var/lib/vpsnet/guard/upgrade.state
extends_documentation_fragment:
  - vpsnet.fleet.read_only
version_added: "1.0.0"
author: vpsnet contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Record what the host runs before the step
  vpsnet.fleet.vpsnet_upgrade_probe:
    package: vpsnet-dkms
    exporter_unit: vpsnet-exporter.service
  register: before

- name: Kernel warnings and errors logged since the step began
  vpsnet.fleet.vpsnet_upgrade_probe:
    kmsg_since: "{{ before.uptime }}"
    kmsg_patterns:
      - "vpsnet.*(WARN|BUG|Oops)"
  become: true
  register: after
"""

RETURN = r"""
installed:
  description: version of the package whose module modprobe loads (the prebuilt one when
    installed, it wins over DKMS), or null
  type: str
  returned: always
installed_dkms: {description: installed vpsnet-dkms version or null, type: str, returned: always}
installed_kmod:
  {description: installed vpsnet-kmod-<running kernel> version or null, type: str, returned: always}
installed_tools: {description: installed vpsnet-tools version or null, type: str, returned: always}
kmod_package: {description: the prebuilt package name probed, type: str, returned: always}
method:
  {description: "prebuilt, dkms, or null (neither package installed)", type: str, returned: always}
loaded: {description: loaded module version or null, type: str, returned: always}
devices: {description: devices the loaded module is attached to, type: int, returned: always}
kernel: {description: running kernel release, type: str, returned: always}
uptime: {description: kernel uptime in seconds, type: float, returned: always}
dpkg_interrupted:
  {description: dpkg --audit found a half-done operation, type: bool, returned: always}
kmsg_findings:
  {description: matching kernel log records since kmsg_since, type: list, returned: always}
package_manager_busy:
  {description: another apt/dpkg run holds the dpkg lock, type: bool, returned: always}
exporter_active:
  {description: systemd reports exporter_unit active, type: bool, returned: always}
step:
  description: the host's record of its last rollout step (from, target, restore, phase), or
    null when there is none or it cannot be read (then step_error says why)
  type: dict
  returned: always
step_error:
  {description: 'why step_record could not be read, or ""', type: str, returned: always}
guard:
  {description: "state of the host-side revert (armed, disarmed, reverted, ...) or unknown",
   type: str, returned: always}
"""

import errno
import fcntl
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule

SYS_VERSION = "/sys/module/vpsnet/version"
METRICS = "/proc/net/vpsnet/metrics"


def _read(path: str) -> str | None:
    """PATH's text (bad bytes replaced), or None when it cannot be read."""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def installed_version(package: str) -> str | None:
    if shutil.which("dpkg-query"):
        cmd = ["dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", package]
        r = subprocess.run(cmd, capture_output=True, text=True, check=False)
        status, _sep, version = r.stdout.strip().partition(" ")
        # half-installed or unpacked counts as installed: a rollback must see it
        return version if r.returncode == 0 and status not in ("", "not-installed",
                                                               "config-files") else None
    if shutil.which("rpm"):
        r = subprocess.run(["rpm", "-q", "--qf", "%{VERSION}", package],
                           capture_output=True, text=True, check=False)
        return r.stdout.strip() if r.returncode == 0 else None
    return None


def module_state(versions: dict[str, str | None]) -> dict[str, Any]:
    """Method and version from the installed versions {dkms, kmod}: the running
    kernel's prebuilt package wins (its depmod.d override), then DKMS."""
    kmod, dkms = versions.get("kmod"), versions.get("dkms")
    return {
        "installed_dkms": dkms,
        "installed_kmod": kmod,
        "installed": kmod or dkms,
        "method": "prebuilt" if kmod else "dkms" if dkms else None,
    }


def attached_devices(metrics: str | None) -> int:
    m = re.search(r"^vpsnet_devices_attached (\d+)", metrics or "", re.M)
    return int(m.group(1)) if m else 0


def package_manager_busy(lock: str = "/var/lib/dpkg/lock-frontend") -> bool:
    """Whether another apt/dpkg run holds the dpkg frontend lock (fcntl, as dpkg does)."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # also releases the lock if we took it
    return False


def unit_active(unit: str) -> bool:
    if not shutil.which("systemctl"):
        return False
    r = subprocess.run(["systemctl", "is-active", "--quiet", unit], check=False)
    return r.returncode == 0


def dpkg_interrupted() -> bool:
    if not shutil.which("dpkg"):
        return False
    r = subprocess.run(["dpkg", "--audit"], capture_output=True, text=True, check=False)
    return bool(r.stdout.strip())


def parse_kmsg_record(record: str) -> tuple[float, str] | None:
    """'prio,seq,usec,flags;message' -> (seconds since boot, message)."""
    head, sep, msg = record.partition(";")
    fields = head.split(",")
    if not sep or len(fields) < 3 or not fields[2].isdigit():
        return None
    return int(fields[2]) / 1e6, msg.split("\n", 1)[0]


def kmsg_records(path: str = "/dev/kmsg") -> list[tuple[float, str]]:
    """Every record still in the kernel ring buffer (non-blocking read)."""
    out = []
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        while True:
            try:
                data = os.read(fd, 8192)
            except OSError as e:
                if e.errno == errno.EAGAIN:
                    break
                if e.errno == errno.EPIPE:  # overwritten while reading: go on
                    continue
                raise
            if not data:
                break
            rec = parse_kmsg_record(data.decode("utf-8", "replace"))
            if rec:
                out.append(rec)
    finally:
        os.close(fd)
    return out


def findings(records: list[tuple[float, str]], since: float, patterns: list[str]) -> list[str]:
    rx = [re.compile(p) for p in patterns]
    return [f"[{t:.6f}] {msg}" for t, msg in records
            if t > since and any(r.search(msg) for r in rx)]


def step_record(path: str) -> tuple[dict[str, Any] | None, str]:
    """The step record, or None and why not (absent is no error)."""
    text = _read(path)
    if text is None:
        return None, ""
    try:
        record = json.loads(text)
    except ValueError as e:
        return None, f"{path}: not JSON ({e})"
    if not isinstance(record, dict):
        return None, f"{path}: not a JSON object"
    return record, ""


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "package": {"type": "str", "default": "vpsnet-dkms"},
            "kmod_package": {"type": "str"},
            "exporter_unit": {"type": "str", "default": "vpsnet-exporter.service"},
            "kmsg_since": {"type": "float"},
            "kmsg_patterns": {"type": "list", "elements": "str", "default": []},
            "step_record": {"type": "path", "default": "/var/lib/vpsnet/rollout/step.json"},
            "guard_state": {"type": "path", "default": "/var/lib/vpsnet/guard/upgrade.state"},
        },
        supports_check_mode=True,
    )
    p: dict[str, Any] = module.params
    for pat in p["kmsg_patterns"]:
        try:
            re.compile(pat)
        except re.error as e:
            module.fail_json(msg=f"kmsg_patterns: bad regular expression {pat!r}: {e}")
    uptime_text = _read("/proc/uptime") or "0"
    kernel = os.uname().release
    kmod_package = p["kmod_package"] or f"vpsnet-kmod-{kernel}"
    versions = {"dkms": installed_version(p["package"]),
                "kmod": installed_version(kmod_package)}
    result: dict[str, Any] = {
        "changed": False,
        **module_state(versions),
        "installed_tools": installed_version("vpsnet-tools"),
        "kmod_package": kmod_package,
        "loaded": (_read(SYS_VERSION) or "").strip() or None,
        "devices": attached_devices(_read(METRICS)),
        "kernel": kernel,
        "uptime": float(uptime_text.split()[0]),
        "package_manager_busy": package_manager_busy(),
        "dpkg_interrupted": dpkg_interrupted(),
        "exporter_active": unit_active(p["exporter_unit"]),
        "kmsg_findings": [],
        "guard": (_read(p["guard_state"]) or "unknown").strip() or "unknown",
    }
    result["step"], result["step_error"] = step_record(p["step_record"])
    if p["kmsg_since"] is not None:
        try:
            result["kmsg_findings"] = findings(kmsg_records(), p["kmsg_since"],
                                               p["kmsg_patterns"])
        except OSError as e:
            module.fail_json(msg=f"cannot read /dev/kmsg: {e.strerror} (run with become)",
                             **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
