// SPDX-License-Identifier: GPL-2.0-only
/*
 * The interface manifest and the health state names, both expanded from
 * the one set of tables (vpsnet_params.h, vpsnet_states.h,
 * vpsnet_families.h) that the metrics and the parameters are built from.
 */
#include "vpsnet.h"

/*
 * The interface manifest, readable from the .ko file alone: a
 * NUL-terminated JSON document in its own ELF section.
 */
#define VPSNET_SEP	","
#define VPSNET_PARAM_SEP(...)	VPSNET_SEP
#define VPSNET_PARAM_END(...)
#define VPSNET_PARAM	VPSNET_PARAM_JSON
#define VPSNET_STATE(name)	"\"" #name "\""
#define VPSNET_FAMILY(name, type, labels, help)				\
	"{\"name\":\"vpsnet_" #name "\",\"type\":\"" #type		\
	"\",\"labels\":[" labels "],\"help\":\"" help "\"}"
const char vpsnet_manifest[] __used __section(".vpsnet_abi") =
	VPSNET_MANIFEST_HEAD
#include "vpsnet_params.h"
	VPSNET_MANIFEST_STATES
#include "vpsnet_states.h"
	VPSNET_MANIFEST_MID
#include "vpsnet_families.h"
	VPSNET_MANIFEST_TAIL;
#undef VPSNET_PARAM
#undef VPSNET_PARAM_SEP
#undef VPSNET_PARAM_END
#undef VPSNET_STATE
#undef VPSNET_FAMILY
#undef VPSNET_SEP

#define VPSNET_SEP
#define VPSNET_STATE(name)						\
	[VPSNET_ST_##name] = #name,
const char * const vpsnet_state_names[VPSNET_NR_STATES] = {
#include "vpsnet_states.h"
};

#undef VPSNET_STATE
#undef VPSNET_SEP
