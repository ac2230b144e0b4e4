# SPDX-License-Identifier: GPL-2.0-only
"""The one set of input checks every vpsnet role runs first, on the controller.

Each role's tasks/validate.yml hands a list of specs to the
`vpsnet.fleet.vpsnet_inputs_check` filter, one per variable:

    {name: vpsnet_repo_suite, value: "{{ vpsnet_repo_suite }}", check: identifier}

and fails before its first task that touches a host when the list of errors it
returns is not empty. Every error names the variable and shows the bad value
(repr, so control characters are escaped; truncated). Plain typed Python with
no Ansible import: unit-tested in-process (tests/unit/roles/test_vpsnet_inputs*.py).

Rules shared by every check: full-string matching only (re.fullmatch: `$`
accepts a trailing newline), no control characters in any string (C0, DEL,
C1, line/paragraph separators, surrogates), numbers finite and in a range (a
bool is not a number), a list is a real list (a string is not one) of bounded
length. The checks live in ../plugin_utils/vpsnet_inputs_checks (one module per
kind of input), outside plugins/filter/ because Ansible loads every .py there as a
plugin.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ansible_collections.vpsnet.fleet.plugins.plugin_utils.vpsnet_inputs_checks.dispatch import (
    check,
)


def safe_filename(name: Any, max_len: int = 100) -> str:
    """NAME (an inventory host name) as one safe file name: only letters,
    digits, '.', '_' and '-', never hidden, '.' or '..'; a name that had to
    change gets a hash of the original, so two hosts never share a file."""
    text = str(name)
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", text).lstrip(".-")
    if safe == text and 0 < len(safe) <= max_len:
        return safe
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{safe[: max_len - 13] or 'host'}-{digest}"


class FilterModule:
    """vpsnet_inputs filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "vpsnet_inputs_check": check,
            "vpsnet_inputs_safe_filename": safe_filename,
        }
