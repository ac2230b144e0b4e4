/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef VPSNET_SHIM_STRING_H
#define VPSNET_SHIM_STRING_H
#include <string.h>
#endif
