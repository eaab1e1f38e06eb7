/*
 * The worker loop's cost per packet, for comparing two builds of it (such as
 * before and after a change to dataplane/worker.c) in one session: run this
 * program from each build alternately (bench/capture_cost.sh does) and
 * compare the medians.
 *
 * One router on a net_null port, the main lcore working: the PMD hands over
 * bursts of 32 packets without writing them, and the parser drops them at
 * once, so the work per packet is the least the loop does and a cost per
 * burst shows most. fg_worker_drain() (the worker's own loop) runs for
 * SAMPLES stretches of CHUNK packets each; each stretch is timed with the TSC
 * and the median cycles per packet is printed (a median of many short
 * stretches, so that the moments another process had the core fall out).
 *
 * Usage: fg-bench-worker [-s SAMPLES] [-c CHUNK]
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>

#include "config.h"
#include "eal_quick.h"
#include "median.h"
#include "router.h"
#include "tables.h"

int
main(int argc, char **argv)
{
	unsigned int samples = 2000, chunk = 4096;
	struct fg_tables_config tc = { .name = "fgwb", .max_tenants = 64, .max_sinks = 64,
				       .max_devices = 1024, .max_readers = 4 };
	struct fg_config cfg;
	struct fg_err err = { 0 };
	struct fg_router r;
	struct fg_tables *t;
	struct fg_worker *w;
	char prefix[64];
	double *cpp;
	int opt;

	while ((opt = getopt(argc, argv, "s:c:h")) != -1) {
		switch (opt) {
		case 's': samples = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'c': chunk = (unsigned int)strtoul(optarg, NULL, 10); break;
		default:
			fprintf(stderr, "usage: %s [-s SAMPLES] [-c CHUNK]\n", argv[0]);
			return 2;
		}
	}
	if (samples == 0 || chunk == 0) {
		fprintf(stderr, "%s: -s and -c must be positive\n", argv[0]);
		return 2;
	}
	snprintf(prefix, sizeof(prefix), "--file-prefix=fgwb%d", (int)getpid());
	char *eal[] = { argv[0], "--no-huge", "-m", "256", "--no-pci", "--no-shconf", prefix,
			"--no-telemetry", "-l", "0", "--log-level=*:error", "--vdev", "net_null0",
			NULL };
	if (rte_eal_init((int)(sizeof(eal) / sizeof(eal[0])) - 1, eal) < 0) {
		fprintf(stderr, "%s: cannot start DPDK: %s\n", argv[0], rte_strerror(rte_errno));
		return 1;
	}
	fg_config_defaults(&cfg);
	fg_config_default_port(&cfg);
	tc.socket_id = (int)rte_socket_id();
	t = fg_tables_create(&tc);
	if (t == NULL || fg_router_init(&r, &cfg, t, 8191, &err) != 0) {
		fprintf(stderr, "%s: %s\n", argv[0], t ? err.msg : "cannot create the tables");
		return 1;
	}
	w = r.workers[0];
	cpp = calloc(samples, sizeof(*cpp));
	fg_worker_drain(w, 100000, 1000);          /* warm up */
	for (unsigned int i = 0; i < samples; i++) {
		uint64_t rx = fg_ctr_read(&w->ctr->rx_packets), t0 = rte_rdtsc(), got;

		got = fg_worker_drain(w, rx + chunk, 1000) - rx;
		cpp[i] = (double)(rte_rdtsc() - t0) / (double)(got ? got : 1);
	}
	printf("worker loop, net_null, %u x %u packets: median %.2f cycles/packet\n", samples,
	       chunk, fg_median(cpp, samples));
	free(cpp);
	fg_router_join(&r);
	fg_router_close(&r);
	fg_tables_free(t);
	fg_eal_cleanup();
	return 0;
}
