/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef VPSNET_SHIM_CTYPE_H
#define VPSNET_SHIM_CTYPE_H
/* the kernel's isdigit() is ASCII-only, as is the C locale's */
#include <ctype.h>
#endif
