/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Health states, lowest priority first. No include guard: every
 * consumer defines VPSNET_STATE(name) and VPSNET_SEP, then includes it.
 */
VPSNET_STATE(ok)
VPSNET_SEP
VPSNET_STATE(rx_silent)
VPSNET_SEP
VPSNET_STATE(tx_stalled)
VPSNET_SEP
VPSNET_STATE(carrier_down)
