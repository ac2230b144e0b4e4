/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Test-only build flags, set by the Kbuild from make variables
 * (VPSNET_TEST_FORCE_UNHEALTHY=1, VPSNET_TEST_UNHEALTHY_AFTER=S). Both are
 * 0 in every shipped build; the manifest records them so a test build can
 * never pass for a release one.
 */
#ifndef VPSNET_TESTFLAGS_H
#define VPSNET_TESTFLAGS_H

#ifndef VPSNET_TEST_UNHEALTHY_AFTER
#define VPSNET_TEST_UNHEALTHY_AFTER 0
#endif
#ifndef VPSNET_TEST_FORCE_UNHEALTHY
#define VPSNET_TEST_FORCE_UNHEALTHY 0
#endif
#if VPSNET_TEST_FORCE_UNHEALTHY
#define VPSNET_TEST_FORCE_UNHEALTHY_JSON "true"
#else
#define VPSNET_TEST_FORCE_UNHEALTHY_JSON "false"
#endif

#endif /* VPSNET_TESTFLAGS_H */
