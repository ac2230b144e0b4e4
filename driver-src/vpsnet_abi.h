/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * vpsnet interface ABI: the one source of truth.
 *
 * The constants below, the parameter table (vpsnet_params.h), the
 * metric family table (vpsnet_families.h) and the health state table
 * (vpsnet_states.h) drive both the module's behaviour and output and
 * the interface manifest embedded in the .vpsnet_abi ELF section, so
 * the two cannot drift apart.
 */
#ifndef VPSNET_ABI_H
#define VPSNET_ABI_H

#include <linux/stringify.h>
#include "vpsnet_testflags.h"

#define VPSNET_ABI_MAJOR		1
#define VPSNET_MANIFEST_FORMAT		1

#define VPSNET_DRIVERS_DEFAULT		"ena,virtio_net,gve"
#define VPSNET_INTERVAL_MS_MIN		100
#define VPSNET_INTERVAL_MS_MAX		60000
#define VPSNET_INTERVAL_MS_DEFAULT	1000
#define VPSNET_STALL_MIN		2
#define VPSNET_STALL_MAX		100
#define VPSNET_STALL_DEFAULT		3

#define VPSNET_UEVENT_STATE		"VPSNET_STATE"
#define VPSNET_UEVENT_PREV		"VPSNET_PREV"

#define VPSNET_PROC_DIR			"vpsnet"
#define VPSNET_PROC_METRICS		"metrics"
#define VPSNET_PROC_MANIFEST		"manifest"

/*
 * Label sets, written as the JSON array body the manifest carries; the
 * metrics output reads the label names from the same strings.
 */
#define VPSNET_LS_NONE		""
#define VPSNET_LS_INFO		"\"version\",\"abi\""
#define VPSNET_LS_DEV		"\"netns\",\"device\",\"driver\""
#define VPSNET_LS_STATE		VPSNET_LS_DEV ",\"state\""
#define VPSNET_LS_COUNTER	VPSNET_LS_DEV ",\"counter\""
#define VPSNET_LS_DIR		VPSNET_LS_DEV ",\"direction\""
#define VPSNET_LS_QUEUE		VPSNET_LS_DEV ",\"queue\",\"direction\""
#define VPSNET_LS_TXQ		VPSNET_LS_DEV ",\"queue\""
#define VPSNET_LS_CPU		"\"cpu\""

/*
 * Per module_param() type (see vpsnet_params.h): the variable, the
 * default as JSON, and the range and default MODULE_PARM_DESC() adds.
 * A type without these does not compile.
 */
#define VPSNET_PT_VAR_charp(name, def)	static char *(name) = def
#define VPSNET_PT_VAR_uint(name, def)	static unsigned int name = def
#define VPSNET_PT_VAR_bool(name, def)	static bool name = def
#define VPSNET_PT_JSON_charp(def)	"\"" def "\""
#define VPSNET_PT_JSON_uint(def)	__stringify(def)
#define VPSNET_PT_JSON_bool(def)	__stringify(def)
#define VPSNET_PT_DESC_charp(def, ...)	" (default " def ")"
#define VPSNET_PT_DESC_uint(def, min, max)				\
	" (" __stringify(min) ".." __stringify(max) ", default "	\
	__stringify(def) ")"
#define VPSNET_PT_DESC_bool(def, ...)	" (default " __stringify(def) ")"

/* One manifest "parameters" entry of vpsnet_params.h */
#define VPSNET_PARAM_JSON(name, type, def, min, max, desc)		\
	"{\"name\":\"" #name "\",\"type\":\"" #type "\",\"min\":"	\
	__stringify(min) ",\"max\":" __stringify(max)			\
	",\"default\":" VPSNET_PT_JSON_##type(def)			\
	",\"description\":\"" desc "\"}"

#define VPSNET_PROC_PATH(f)	"/proc/net/" VPSNET_PROC_DIR "/" f

/*
 * The manifest is HEAD parameters STATES states MID families TAIL (see
 * vpsnet_main.c)
 */
#define VPSNET_MANIFEST_HEAD						\
	"{\"format\":" __stringify(VPSNET_MANIFEST_FORMAT)		\
	",\"module\":\"vpsnet\",\"version\":\"" VPSNET_VERSION "\""	\
	",\"abi_major\":" __stringify(VPSNET_ABI_MAJOR)			\
	",\"exposition\":\"text/plain; version=0.0.4\""			\
	",\"parameters\":["
#define VPSNET_MANIFEST_STATES	"],\"health_states\":["
#define VPSNET_MANIFEST_MID	"],\"metrics\":["
#define VPSNET_MANIFEST_TAIL						\
	"],\"uevent\":{\"action\":\"change\",\"subsystem\":\"net\""	\
	",\"keys\":[\"" VPSNET_UEVENT_STATE "\",\"" VPSNET_UEVENT_PREV "\"]}" \
	",\"proc\":[\"" VPSNET_PROC_PATH(VPSNET_PROC_METRICS) "\",\""	\
	VPSNET_PROC_PATH(VPSNET_PROC_MANIFEST) "\"]"			\
	",\"build\":{\"test_force_unhealthy\":"				\
	VPSNET_TEST_FORCE_UNHEALTHY_JSON				\
	",\"test_unhealthy_after\":"					\
	__stringify(VPSNET_TEST_UNHEALTHY_AFTER) "}}"

#endif /* VPSNET_ABI_H */
