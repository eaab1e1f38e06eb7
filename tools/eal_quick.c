/*
 * EAL start-up without ports (see eal_quick.h).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <rte_common.h>
#include <rte_eal.h>
#include <rte_errno.h>

#include "eal_quick.h"

/* Clean EAL up and remove this process's runtime folder (its files are all
 * flat): with --no-shconf, EAL still makes one and leaves it behind. */
void
fg_eal_cleanup(void)
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
fg_eal_quick_start(const char *prog, unsigned int mem_mb)
{
	static int done;
	char prefix[64], mem[16];
	/* --in-memory does not combine with --no-huge here (it implies legacy
	 * memory); no shared config and a per-process prefix keep parallel
	 * test processes apart instead. */
	char *argv[] = {
		(char *)prog, "--no-huge", "-m", mem, "--no-pci", "--no-shconf",
		prefix, "--no-telemetry", "--log-level=*:warning", "-l", "0", NULL,
	};

	if (done)
		return 0;
	snprintf(prefix, sizeof(prefix), "--file-prefix=%.32s%d", prog, (int)getpid());
	snprintf(mem, sizeof(mem), "%u", mem_mb);
	if (rte_eal_init((int)RTE_DIM(argv) - 1, argv) < 0) {
		fprintf(stderr, "rte_eal_init: %s\n", rte_strerror(rte_errno));
		return -1;
	}
	atexit(fg_eal_cleanup);
	done = 1;
	return 0;
}
