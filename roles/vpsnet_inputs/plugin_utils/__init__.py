# SPDX-License-Identifier: GPL-2.0-only
"""The checks behind the vpsnet_inputs_check filter, one module per kind of input.
Loaded by path as package vpsnet_inputs_checks by filter_plugins/vpsnet_inputs.py
(and the unit tests); its modules import only each other and the standard library."""
