"""The form of a vpsnet release version, defined once: vpsnet-status's
--expect-version and the roles' input checks (roles/vpsnet_inputs loads this
file by path) both use it. Standard library only."""

from __future__ import annotations

import re

# Debian/RPM upstream version as vpsnet uses it, with an optional Debian revision:
# 1.0.0, 10.2, 1.1.0~rc1, 2.0.0+git3, 1.0.0-1. Match with fullmatch only (`$`
# accepts a trailing newline).
VERSION_RE = re.compile(
    r"[0-9]{1,9}(\.[0-9]{1,9}){1,3}([~+][0-9A-Za-z.~+]{1,64})?(-[0-9A-Za-z.~+]{1,32})?")
