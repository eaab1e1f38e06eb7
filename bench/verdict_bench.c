/*
 * Verdict engine cost against a bare rte_hash bulk lookup, in one run.
 *
 * Builds tables of N mappings over T tenants (one sink each) through the
 * control-side API, then a sequence of P uniformly chosen devices, so the
 * lookups miss the cache the way a large table does in service. Packets live
 * in a small ring of mbufs, as after an rx burst: before each burst the
 * untimed step writes the next 32 devices' ids into them (a PMD would have
 * just written them too), then the timed step runs. Each round runs,
 * alternately:
 *   A  fg_verdict_burst on each burst of 32 (parse + checks 1-9, tenant and
 *      device bulk lookups, entry reads, counters);
 *   B  rte_hash_lookup_bulk_data on the device table for the same 32 keys,
 *      already extracted;
 *   C  A again with every tenant rate-limited (check 10) at a rate no packet
 *      reaches, so each packet also reads the TSC's share and takes from its
 *      tenant's bucket; the limits are published before C and taken off
 *      after it, untimed.
 * and prints TSC cycles per packet for each, their medians and the ratios
 * A/B and C/A. Absolute cycles drift on a shared machine; the ratios are the
 * figures.
 *
 * Usage: fg-bench-verdict [-n MAPPINGS] [-t TENANTS] [-p PACKETS] [-r ROUNDS]
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_mbuf.h>

#include "counters.h"
#include "eal_quick.h"
#include "framebuild.h"
#include "median.h"
#include "ownership.h"
#include "verdict.h"

#define BURST 32
#define RING (64 * BURST)   /* packets in flight, as after rx bursts */

static uint64_t
splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static void
usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s [-n MAPPINGS] [-t TENANTS] [-p PACKETS] [-r ROUNDS]\n"
		"  -n  device mappings in the table (default 1000000)\n"
		"  -t  tenants they are spread over (default 100000)\n"
		"  -p  packets per round, each for a uniformly chosen device (default 1048576)\n"
		"  -r  rounds of A (engine), B (bare lookup), C (engine, every tenant\n"
		"      rate-limited) (default 5)\n",
		prog);
}

/* One round of the engine over the whole sequence: cycles per packet, or -1
 * when not every packet passed (the bench would measure drops). */
static double
engine_round(const struct fg_engine *eng, struct fg_counters *ctr,
	     struct rte_mbuf **ring, const uint32_t *seq, uint32_t n_bursts,
	     uint32_t n_ten, size_t frame_off)
{
	struct fg_verdict v[BURST];
	uint64_t passed = 0, cycles = 0, c0;

	for (uint32_t k = 0; k < n_bursts; k++) {
		struct rte_mbuf **m = &ring[(k * BURST) % RING];

		for (uint32_t j = 0; j < BURST; j++) {
			uint32_t d = seq[k * BURST + j];

			fg_frame_set_ids(rte_pktmbuf_mtod(m[j], uint8_t *), frame_off,
					 1 + d % n_ten, splitmix64(d) | 1, 1, NULL);
		}
		c0 = rte_rdtsc();
		passed += fg_verdict_burst(eng, ctr, m, BURST, v);
		cycles += rte_rdtsc() - c0;
	}
	if (passed != (uint64_t)n_bursts * BURST) {
		fprintf(stderr, "only %lu of %u packets passed: the bench is broken\n",
			(unsigned long)passed, n_bursts * BURST);
		return -1;
	}
	return (double)cycles / (n_bursts * BURST);
}

/* Publish every tenant again with a limit (rate_pps UINT32_MAX and the
 * largest burst: nothing is dropped) or without one, as the control plane
 * would: a new entry that the tables swap in. */
static int
set_limits(struct fg_tables *t, uint32_t n_ten, bool limited)
{
	for (uint32_t i = 1; i <= n_ten; i++) {
		struct fg_tenant *e = fg_tables_tenant_alloc(t);

		if (e == NULL)
			return -1;
		*e = *fg_tables_tenant(t, i);
		e->rate_pps = limited ? UINT32_MAX : 0;
		e->burst = limited ? UINT32_MAX : 0;
		if (fg_tables_tenant_publish(t, e) != 0)
			return -1;
	}
	fg_tables_sync(t);
	return 0;
}

int
main(int argc, char **argv)
{
	uint32_t n_map = 1000000, n_ten = 100000, n_pkt = 1048576, rounds = 5;
	struct fg_err err = { 0 };
	int opt;

	while ((opt = getopt(argc, argv, "n:t:p:r:h")) != -1) {
		switch (opt) {
		case 'n': n_map = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 't': n_ten = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'p': n_pkt = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'r': rounds = (uint32_t)strtoul(optarg, NULL, 10); break;
		default: usage(argv[0]); return opt == 'h' ? 0 : 2;
		}
	}
	if (n_map == 0 || n_ten == 0 || n_ten > n_map || n_pkt < BURST ||
	    rounds == 0 || rounds > 100) {
		usage(argv[0]);
		return 2;
	}
	if (fg_eal_quick_start("fgbench", 4096) != 0)
		return 1;

	struct fg_tables_config cfg = {
		.name = "bench", .max_tenants = n_ten, .max_sinks = n_ten,
		.max_devices = n_map, .max_readers = 1, .socket_id = SOCKET_ID_ANY,
	};
	struct fg_tables *t = fg_tables_create(&cfg);
	struct fg_ownership *o = t ? fg_ownership_create(t) : NULL;

	if (o == NULL) {
		fprintf(stderr, "tables of %u mappings: %s\n", n_map, rte_strerror(rte_errno));
		return 1;
	}

	/* The table, through the same actions `load` uses. */
	uint64_t t0 = rte_rdtsc();

	for (uint32_t i = 1; i <= n_ten; i++) {
		if (fg_tenant_add(o, &(struct fg_tenant_spec){ .tenant_id = i }, &err) ||
		    fg_sink_add(o, &(struct fg_sink_spec){ .sink_id = i, .tenant_id = i,
			.family = AF_INET, .addr = { 198, 51, 100, 1 }, .port = 6000 }, &err))
			goto fail;
	}
	for (uint32_t i = 0; i < n_map; i++) {
		struct fg_device_spec s = { .tenant_id = 1 + i % n_ten,
					    .device_id = splitmix64(i) | 1, .epoch = 1,
					    .n_sinks = 1 };

		s.sinks[0] = s.tenant_id;
		if (fg_device_put(o, &s, &err))
			goto fail;
	}
	fg_tables_sync(t);
	double load_s = (double)(rte_rdtsc() - t0) / (double)rte_get_tsc_hz();

	printf("table: %u mappings over %u tenants, built in %.2f s (%.0f mappings/s)\n",
	       n_map, n_ten, load_s, n_map / load_s);

	/* The device sequence, the keys for B, and a small ring of packets. */
	struct rte_mempool *mp = rte_pktmbuf_pool_create("bench_mbufs", RING + 1, 0, 0,
							 256 + RTE_PKTMBUF_HEADROOM,
							 SOCKET_ID_ANY);
	struct rte_mbuf *ring[RING];
	uint32_t *seq = calloc(n_pkt, sizeof(*seq));
	struct fg_device_key *keys = calloc(n_pkt, sizeof(*keys));
	const void **kp = calloc(n_pkt, sizeof(*kp));
	struct fg_frame_spec spec = { .ip_version = 4, .payload_len = 58, .tenant_id = 1,
				      .device_id = 1, .src_ip = { 192, 0, 2, 1 },
				      .dst_ip = { 192, 0, 2, 2 } };
	size_t frame_off = fg_frame_offset(&spec), len;
	uint8_t buf[256];

	if (mp == NULL || seq == NULL || keys == NULL || kp == NULL ||
	    rte_pktmbuf_alloc_bulk(mp, ring, RING) != 0) {
		fprintf(stderr, "cannot allocate %u packets\n", n_pkt);
		return 1;
	}
	len = fg_frame_build(&spec, buf, sizeof(buf));
	for (uint32_t i = 0; i < RING; i++)
		memcpy(rte_pktmbuf_append(ring[i], (uint16_t)len), buf, len);
	for (uint32_t i = 0; i < n_pkt; i++) {
		seq[i] = (uint32_t)(splitmix64(0xbe5c0000ULL + i) % n_map);
		keys[i] = fg_device_key(1 + seq[i] % n_ten, splitmix64(seq[i]) | 1);
		kp[i] = &keys[i];
	}
	printf("packets: %u of %zu bytes, uniform over the %u devices\n", n_pkt,
	       len, n_map);

	struct fg_engine eng;
	struct fg_counters *ctr = fg_counters_create(n_ten, SOCKET_ID_ANY);
	uint32_t n_bursts = n_pkt / BURST;
	double a[100], b[100], c[100];
	uint64_t sink = 0;

	fg_engine_init(&eng, t, FG_DEFAULT_FRAME_PORT);
	printf("round  A engine cyc/pkt  B rte_hash_lookup_bulk_data cyc/pkt  A/B"
	       "  C engine, all limited cyc/pkt  C/A\n");
	for (uint32_t r = 0; r < rounds; r++) {
		void *data[BURST];
		uint64_t hits, cb = 0, c0;

		a[r] = engine_round(&eng, ctr, ring, seq, n_bursts, n_ten, frame_off);
		if (a[r] < 0)
			return 1;
		for (uint32_t k = 0; k < n_bursts; k++) {
			c0 = rte_rdtsc();
			rte_hash_lookup_bulk_data(t->devices, &kp[k * BURST], BURST, &hits, data);
			cb += rte_rdtsc() - c0;
			sink += hits + (uintptr_t)data[0];
		}
		b[r] = (double)cb / (n_bursts * BURST);
		if (set_limits(t, n_ten, true) != 0)
			goto nomem;
		c[r] = engine_round(&eng, ctr, ring, seq, n_bursts, n_ten, frame_off);
		if (c[r] < 0 || set_limits(t, n_ten, false) != 0)
			return 1;
		printf("%5u  %16.1f  %36.1f  %4.2f  %30.1f  %4.2f\n", r + 1, a[r], b[r],
		       a[r] / b[r], c[r], c[r] / a[r]);
	}
	double ma = fg_median(a, rounds), mb = fg_median(b, rounds);
	double mc = fg_median(c, rounds);

	printf("median %15.1f  %36.1f  %4.2f  %30.1f  %4.2f\n", ma, mb, ma / mb, mc, mc / ma);
	printf("verdict engine: %.1f cycles/packet; bare lookup: %.1f cycles/packet; ratio %.2f (TSC %.2f GHz)\n",
	       ma, mb, ma / mb, rte_get_tsc_hz() / 1e9);
	printf("with every tenant rate-limited: %.1f cycles/packet; ratio to no limits %.2f\n",
	       mc, mc / ma);
	(void)sink;
	return 0;
fail:
	fprintf(stderr, "building the table: %s\n", err.msg);
	return 1;
nomem:
	fprintf(stderr, "publishing the tenants' limits: out of table space\n");
	return 1;
}
