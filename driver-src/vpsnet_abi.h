/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * vpsnet interface ABI: the one source of truth.
 *
 * The constants below, the metric family table (vpsnet_families.h) and
 * the health state table (vpsnet_states.h) drive both the module's
 * behaviour and output and the interface manifest embedded in the
 * .vpsnet_abi ELF section, so the two cannot drift apart.
 */
#ifndef VPSNET_ABI_H
#define VPSNET_ABI_H

#include <linux/stringify.h>

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
#define VPSNET_LS_DIR		VPSNET_LS_DEV ",\"direction\""
#define VPSNET_LS_QUEUE		VPSNET_LS_DEV ",\"queue\",\"direction\""
#define VPSNET_LS_TXQ		VPSNET_LS_DEV ",\"queue\""
#define VPSNET_LS_CPU		"\"cpu\""

#define VPSNET_JPARAM(name, type, min, max, def, desc)			\
	"{\"name\":\"" name "\",\"type\":\"" type "\",\"min\":" min	\
	",\"max\":" max ",\"default\":" def ",\"description\":\"" desc "\"}"

#define VPSNET_JPARAMS							\
	VPSNET_JPARAM("drivers", "charp", "null", "null",		\
		      "\"" VPSNET_DRIVERS_DEFAULT "\"",			\
		      "Comma-separated driver names to attach to") ","	\
	VPSNET_JPARAM("interval_ms", "uint",				\
		      __stringify(VPSNET_INTERVAL_MS_MIN),		\
		      __stringify(VPSNET_INTERVAL_MS_MAX),		\
		      __stringify(VPSNET_INTERVAL_MS_DEFAULT),		\
		      "Health sampling interval in milliseconds") ","	\
	VPSNET_JPARAM("stall_intervals", "uint",			\
		      __stringify(VPSNET_STALL_MIN),			\
		      __stringify(VPSNET_STALL_MAX),			\
		      __stringify(VPSNET_STALL_DEFAULT),		\
		      "Samples without progress before a stall is reported") "," \
	VPSNET_JPARAM("uevents", "bool", "null", "null", "true",	\
		      "Send a KOBJ_CHANGE uevent on every health transition")

#define VPSNET_PROC_PATH(f)	"/proc/net/" VPSNET_PROC_DIR "/" f

/* The manifest is HEAD states MID families TAIL (see vpsnet_main.c) */
#define VPSNET_MANIFEST_HEAD						\
	"{\"format\":" __stringify(VPSNET_MANIFEST_FORMAT)		\
	",\"module\":\"vpsnet\",\"version\":\"" VPSNET_VERSION "\""	\
	",\"abi_major\":" __stringify(VPSNET_ABI_MAJOR)			\
	",\"exposition\":\"text/plain; version=0.0.4\""			\
	",\"parameters\":[" VPSNET_JPARAMS "]"				\
	",\"health_states\":["
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
