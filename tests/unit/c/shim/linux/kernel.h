/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef VPSNET_SHIM_KERNEL_H
#define VPSNET_SHIM_KERNEL_H
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif
