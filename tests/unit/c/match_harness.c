// SPDX-License-Identifier: GPL-2.0-only
/*
 * Runs driver-src/vpsnet_match.c, the module's own ethtool-name matcher,
 * in userspace (tests/unit/test_stats_match.py builds and drives it).
 *
 *   match_harness DRIVER < names   one line per name:
 *       NAME<TAB>none
 *       NAME<TAB>queue<TAB>rx|tx<TAB>FIELD<TAB>QUEUE
 *       NAME<TAB>device<TAB>FIELD
 *   match_harness --dfields        INDEX<TAB>NAME<TAB>exceeded|other
 *
 * Names are cut at ETH_GSTRING_LEN (32) bytes, as the module reads them.
 */
#include <stdio.h>
#include <string.h>
#include "vpsnet_match.h"

#define ETH_GSTRING_LEN 32

/* -Werror=switch: a new field without a name here fails the build */
static const char *qfield_name(enum vpsnet_qfield f)
{
	switch (f) {
	case VPSNET_QF_PACKETS:
		return "packets";
	case VPSNET_QF_BYTES:
		return "bytes";
	case VPSNET_QF_DROPS:
		return "drops";
	case VPSNET_QF_DESCS:
		return "descriptors";
	case VPSNET_NR_QF:
		break;
	}
	return "?";
}

int main(int argc, char **argv)
{
	char line[4096], name[ETH_GSTRING_LEN + 1];
	struct vpsnet_match m;
	unsigned int i;

	if (argc == 2 && !strcmp(argv[1], "--dfields")) {
		for (i = 0; i < VPSNET_NR_DF; i++)
			printf("%u\t%s\t%s\n", i, vpsnet_dfield_names[i],
			       i < VPSNET_DF_NR_EXCEEDED ? "exceeded" : "other");
		return 0;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: match_harness DRIVER < names | --dfields\n");
		return 2;
	}
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = '\0';
		memset(name, 0, sizeof(name));
		strncpy(name, line, ETH_GSTRING_LEN);
		memset(&m, 0xff, sizeof(m));
		switch (vpsnet_match_stat(argv[1], name, &m)) {
		case VPSNET_MATCH_QUEUE:
			printf("%s\tqueue\t%s\t%s\t%u\n", name,
			       m.dir == VPSNET_RX ? "rx" : "tx",
			       qfield_name((enum vpsnet_qfield)m.field), m.queue);
			break;
		case VPSNET_MATCH_DEV:
			printf("%s\tdevice\t%s\n", name,
			       m.field < VPSNET_NR_DF ?
			       vpsnet_dfield_names[m.field] : "?");
			break;
		case VPSNET_MATCH_NONE:
			printf("%s\tnone\n", name);
			break;
		}
	}
	return 0;
}
