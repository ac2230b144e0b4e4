# SPDX-License-Identifier: GPL-2.0-only
"""The checks behind the vpsnet.fleet.vpsnet_inputs_check filter, one module per kind
of input. Imported by plugins/filter/vpsnet_inputs.py (and the unit tests); its
modules import only each other and the standard library."""
