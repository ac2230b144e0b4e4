/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Module parameters: the one table behind the variables, module_param(),
 * MODULE_PARM_DESC(), the range checks at load and the manifest's
 * "parameters", so none of them can drift from the others. No include
 * guard: every consumer defines VPSNET_PARAM(name, type, default, min,
 * max, description), VPSNET_PARAM_SEP(...) and VPSNET_PARAM_END(...),
 * then includes this file. The separators carry the ';' that consumers
 * declaring C objects need; string consumers drop it.
 *
 * type is a module_param() type with VPSNET_PT_* helpers in
 * vpsnet_abi.h (charp, uint, bool); min and max bound uint parameters
 * and are null for the others. All parameters are read-only (0444).
 * Every build cross-checks the manifest with .modinfo (check-manifest).
 */
VPSNET_PARAM(drivers, charp, VPSNET_DRIVERS_DEFAULT, null, null,
	     "Comma-separated driver names to attach to")
VPSNET_PARAM_SEP(;)
VPSNET_PARAM(interval_ms, uint, VPSNET_INTERVAL_MS_DEFAULT,
	     VPSNET_INTERVAL_MS_MIN, VPSNET_INTERVAL_MS_MAX,
	     "Health sampling interval in milliseconds")
VPSNET_PARAM_SEP(;)
VPSNET_PARAM(stall_intervals, uint, VPSNET_STALL_DEFAULT,
	     VPSNET_STALL_MIN, VPSNET_STALL_MAX,
	     "Samples without progress before a stall is reported")
VPSNET_PARAM_SEP(;)
VPSNET_PARAM(uevents, bool, true, null, null,
	     "Send a KOBJ_CHANGE uevent on every health transition")
VPSNET_PARAM_END(;)
