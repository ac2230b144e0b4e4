"""Input validation for the vpsnet_driver role (unit-tested in
tests/unit/roles/test_vpsnet_driver_validate.py)."""

from __future__ import annotations

import re
from typing import Any

# Debian/RPM upstream versions as vpsnet uses them: 1.0.0, 1.1.0~rc1, 2.0.0+git3
VERSION_RE = re.compile(r"^[0-9]+(\.[0-9]+){1,3}([~+][0-9A-Za-z.]+)?$")
DRIVER_RE = re.compile(r"^[a-z0-9_]{1,31}$")


def validate(params: dict[str, Any]) -> list[str]:
    """Every problem with the role's inputs, each naming the bad value."""
    errors: list[str] = []
    version = params.get("version")
    if not isinstance(version, str) or not VERSION_RE.match(version):
        errors.append(f"vpsnet_driver_version={version!r} is not a version string (like 1.0.0)")
    for name, key in (
        ("interval_ms", "interval_ms_range"),
        ("stall_intervals", "stall_intervals_range"),
    ):
        value = params.get(name)
        lo, hi = params.get(key) or (None, None)
        try:
            number = int(str(value))
        except ValueError:
            errors.append(f"vpsnet_driver_{name}={value!r} is not an integer")
            continue
        if isinstance(value, bool) or str(number) != str(value).strip() or not lo <= number <= hi:
            errors.append(f"vpsnet_driver_{name}={value} is outside {lo}..{hi}")
    drivers = params.get("drivers")
    if not isinstance(drivers, list) or not drivers:
        errors.append(f"vpsnet_driver_drivers={drivers!r} must be a non-empty list of driver names")
    else:
        for driver in drivers:
            if not isinstance(driver, str) or not DRIVER_RE.match(driver):
                errors.append(f"vpsnet_driver_drivers: {driver!r} is not a kernel driver name")
    return errors


class FilterModule:
    """vpsnet_driver filters."""

    def filters(self) -> dict[str, Any]:
        return {"vpsnet_driver_validate": validate}
