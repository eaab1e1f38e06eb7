/*
 * EAL start-up for tests (see eal_start.h).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <rte_common.h>
#include <rte_eal.h>
#include <rte_errno.h>

#include "eal_start.h"

/* Remove this process's EAL runtime folder (its files are all flat). */
static void
fg_test_eal_cleanup(void)
{
	const char *dir = rte_eal_get_runtime_dir();
	struct dirent *de;
	DIR *d;

	rte_eal_cleanup();
	d = opendir(dir);
	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		char path[4096];

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

int
fg_test_eal_start(void)
{
	static int done;
	char prefix[64];
	/* --in-memory does not combine with --no-huge here (it implies legacy
	 * memory); no shared config and a per-process prefix keep parallel
	 * test processes apart instead. */
	char *argv[] = {
		"fg_test", "--no-huge", "-m", "512", "--no-pci", "--no-shconf",
		prefix, "--no-telemetry", "--log-level=*:warning", "-l", "0", NULL,
	};

	if (done)
		return 0;
	snprintf(prefix, sizeof(prefix), "--file-prefix=fgtest%d", (int)getpid());
	if (rte_eal_init((int)RTE_DIM(argv) - 1, argv) < 0) {
		fprintf(stderr, "rte_eal_init: %s\n", rte_strerror(rte_errno));
		return -1;
	}
	atexit(fg_test_eal_cleanup);
	done = 1;
	return 0;
}
