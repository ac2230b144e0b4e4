# SPDX-License-Identifier: GPL-2.0-only
"""The documentation fragment vpsnet.fleet.read_only: the attributes of a module that
only reads (check mode as usual, no diff). Used by vpsnet_facts and vpsnet_upgrade_probe."""

from __future__ import annotations


class ModuleDocFragment:
    """Attributes of a read-only module."""

    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description: Runs in check mode as it does otherwise; it only reads.
    support: full
  diff_mode:
    description: No diff; it changes nothing.
    support: none
"""
