/*
 * Readers against a writer: a writer thread moves devices between tenants
 * (epoch bump and new sinks each time, every move acknowledged with a grace
 * period) while a reader thread pushes packets for those devices through the
 * verdict engine. Every forward must be consistent with one state of the
 * table: the packet's tenant, the mapping's tenant and every sink's tenant
 * equal, and the sink list exactly the one the writer installed for that
 * (tenant, device, epoch), never a mix of two.
 *
 * The test is sensitive: with device entries released before the grace
 * period ends, the reader sees rewritten entries within seconds.
 *
 * FG_CONC_MOVES and FG_CONC_PACKETS in the environment change the sizes
 * (defaults: 100,000 moves, 10,000,000 packets).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_udp.h>

#include "counters.h"
#include "support.h"
#include "verdict.h"

#define N_TENANTS 4
#define N_DEVICES 1024
#define DEV_BASE 0x1000
#define BURST 32

static struct fg_test_env env;
/* The writer's latest acknowledged (tenant << 32 | epoch) per device: a hint
 * that lets the reader send packets that should mostly pass. */
static uint64_t hint[N_DEVICES];
static volatile int writer_done;
static unsigned long n_moves, n_packets;

/* The sinks the writer installs for (tenant, device, epoch): 1 to 3 of the
 * tenant's three sinks, rotating with the epoch. */
static uint8_t
sinks_for(uint32_t tenant, uint64_t device, uint32_t epoch, uint32_t *ids)
{
	uint8_t n = (uint8_t)(1 + (device + epoch) % 3);

	for (uint8_t j = 0; j < n; j++)
		ids[j] = tenant * 100 + (uint32_t)((device + epoch + j) % 3);
	return n;
}

static uint64_t
xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void
setup(void)
{
	struct fg_err err = { 0 };

	fg_test_env_init(&env, 16, 64, N_DEVICES * 2);
	for (uint32_t t = 1; t <= N_TENANTS; t++) {
		cr_assert_eq(fg_tenant_add(env.o, &(struct fg_tenant_spec){ .tenant_id = t },
					   &err), 0, "%s", err.msg);
		for (uint32_t k = 0; k < 3; k++)
			cr_assert_eq(fg_sink_add(env.o, &(struct fg_sink_spec){
				.sink_id = t * 100 + k, .tenant_id = t, .family = AF_INET,
				.addr = { 198, 51, 100, (uint8_t)t }, .port = (uint16_t)(6000 + k) },
				&err), 0, "%s", err.msg);
	}
	for (uint32_t i = 0; i < N_DEVICES; i++) {
		struct fg_device_spec s = { .tenant_id = 1 + i % N_TENANTS,
					    .device_id = DEV_BASE + i, .epoch = 1 };

		s.n_sinks = sinks_for(s.tenant_id, s.device_id, 1, s.sinks);
		cr_assert_eq(fg_device_put(env.o, &s, &err), 0, "%s", err.msg);
		hint[i] = (uint64_t)s.tenant_id << 32 | 1;
	}
	fg_tables_sync(env.t);
}

/* Moves in batches of 1 to 8, each batch acknowledged by one grace period,
 * as a `load` would: within a batch, an entry retired by one move must not be
 * reused by the next while a reader may still hold it. A device is moved at
 * most once per batch (the hint is its acknowledged state). */
static void *
writer(void *arg)
{
	uint64_t rnd = 0x9e3779b97f4a7c15ULL;
	unsigned long *failures = arg;
	unsigned long m = 0;

	while (m < n_moves) {
		uint32_t batch = 1 + (uint32_t)(xorshift(&rnd) % 8);
		uint32_t dev[8];
		uint64_t next[8];
		uint32_t k = 0;

		for (; k < batch && m < n_moves; k++, m++) {
			uint32_t i = (uint32_t)((xorshift(&rnd) % (N_DEVICES / 8)) * 8 + k);
			uint64_t h = __atomic_load_n(&hint[i], __ATOMIC_RELAXED);
			uint32_t from = (uint32_t)(h >> 32), epoch = (uint32_t)h + 1;
			uint32_t to = 1 + (from + (uint32_t)(xorshift(&rnd) % (N_TENANTS - 1))) % N_TENANTS;
			struct fg_move_spec mv = { .device_id = DEV_BASE + i, .from = from,
						   .to = to, .epoch = epoch };
			struct fg_err err;

			mv.n_sinks = sinks_for(to, mv.device_id, epoch, mv.sinks);
			dev[k] = i;
			next[k] = h;
			if (fg_device_move(env.o, &mv, &err) != 0) {
				fprintf(stderr, "move %lu failed: %s\n", m, err.msg);
				(*failures)++;
				continue;
			}
			next[k] = (uint64_t)to << 32 | epoch;
		}
		fg_tables_sync(env.t);   /* the ack: every reader has moved on */
		for (uint32_t j = 0; j < k; j++)
			__atomic_store_n(&hint[dev[j]], next[j], __ATOMIC_RELAXED);
	}
	writer_done = 1;
	return NULL;
}

struct reader_result {
	unsigned long packets, forwarded, cross_tenant, torn, wrong_epoch;
};

/* IPv4 UDP frame without AUTH; tenant, device and epoch rewritten per packet. */
static void
build_template(uint8_t *p, uint16_t len)
{
	struct rte_ipv4_hdr *ip = (void *)(p + 14);
	struct rte_udp_hdr *udp = (void *)(p + 34);
	struct fg_frame_hdr *fh = (void *)(p + 42);

	memset(p, 0, len);
	p[12] = 0x08;
	ip->version_ihl = 0x45;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(len - 14));
	ip->time_to_live = 64;
	ip->next_proto_id = IPPROTO_UDP;
	ip->src_addr = RTE_BE32(0xc0000201);
	ip->dst_addr = RTE_BE32(0xc0000202);
	ip->hdr_checksum = rte_ipv4_cksum(ip);
	udp->src_port = RTE_BE16(5000);
	udp->dst_port = rte_cpu_to_be_16(FG_DEFAULT_FRAME_PORT);
	udp->dgram_len = rte_cpu_to_be_16((uint16_t)(len - 34));
	fh->version = 1;
	fh->hdr_len = rte_cpu_to_be_16(FG_HDR_LEN);
	fh->frag_count = RTE_BE16(1);
}

static void *
reader(void *arg)
{
	struct reader_result *res = arg;
	struct fg_counters *ctr = fg_counters_create(16, SOCKET_ID_ANY);
	struct rte_mbuf *m[BURST];
	struct fg_verdict v[BURST];
	uint32_t claim_tenant[BURST], claim_epoch[BURST];
	uint64_t claim_dev[BURST];
	uint64_t rnd = 0x243f6a8885a308d3ULL;
	struct fg_engine eng;
	uint8_t tmpl[90];

	/* Only cr_expect in threads: a failed cr_assert ends the test from
	 * the main thread's context. */
	cr_expect_not_null(ctr);
	if (ctr == NULL || fg_tables_reader_register(env.t, 0) != 0) {
		cr_expect_fail("reader set-up failed");
		writer_done = 1;
		return NULL;
	}
	fg_engine_init(&eng, env.t, FG_DEFAULT_FRAME_PORT);
	build_template(tmpl, sizeof(tmpl));
	for (int i = 0; i < BURST; i++)
		m[i] = fg_test_mbuf(tmpl, sizeof(tmpl));

	while (res->packets < n_packets || !writer_done) {
		for (int k = 0; k < BURST; k++) {
			struct fg_frame_hdr *fh = rte_pktmbuf_mtod_offset(m[k], void *, 42);
			uint64_t r = xorshift(&rnd);
			uint32_t i = (uint32_t)(r % N_DEVICES);
			uint64_t h = __atomic_load_n(&hint[i], __ATOMIC_RELAXED);
			uint32_t t = (uint32_t)(h >> 32), e = (uint32_t)h;

			/* 3/4 as the device's owner, 1/8 claiming another
			 * tenant, 1/8 with an older epoch. */
			switch ((r >> 32) & 7) {
			case 0:
				t = 1 + t % N_TENANTS;
				break;
			case 1:
				e = e - 1;
				break;
			}
			claim_tenant[k] = t;
			claim_epoch[k] = e;
			claim_dev[k] = DEV_BASE + i;
			fh->tenant_id = rte_cpu_to_be_32(t);
			fh->device_id = rte_cpu_to_be_64(DEV_BASE + i);
			fh->epoch = rte_cpu_to_be_32(e);
		}
		fg_verdict_burst(&eng, ctr, m, BURST, v);
		for (int k = 0; k < BURST; k++) {
			const struct fg_device *d = v[k].dev;
			uint32_t ids[FG_MAX_SINKS];
			uint8_t n;
			int bad = 0;

			if (v[k].reason != FG_PASS)
				continue;
			res->forwarded++;
			if (d->tenant_id != claim_tenant[k] || d->device_id != claim_dev[k])
				bad = 1;
			for (unsigned int s = 0; s < d->n_sinks; s++)
				if (d->sinks[s]->tenant_id != claim_tenant[k])
					bad = 1;
			res->cross_tenant += bad;
			if (d->epoch != claim_epoch[k])
				res->wrong_epoch++;
			n = sinks_for(d->tenant_id, d->device_id, d->epoch, ids);
			if (n != d->n_sinks) {
				res->torn++;
				continue;
			}
			for (uint8_t s = 0; s < n; s++)
				if (d->sinks[s]->sink_id != ids[s]) {
					res->torn++;
					break;
				}
		}
		res->packets += BURST;
		fg_tables_reader_quiescent(env.t, 0);
	}
	fg_tables_reader_unregister(env.t, 0);

	struct fg_counter_totals tot;

	fg_counters_sum(&ctr, 1, &tot);
	cr_expect_eq(tot.rx_packets, res->packets);
	cr_expect_eq(tot.forwarded_packets, res->forwarded);
	cr_expect(fg_counters_conserved(&tot));
	cr_expect_eq(tot.drops[FG_DROP_sink_mismatch], 0,
		     "sink_mismatch drops: %lu", (unsigned long)tot.drops[FG_DROP_sink_mismatch]);
	cr_expect_gt(tot.drops[FG_DROP_not_owned], 0, "no packet claimed a wrong tenant");
	cr_expect_gt(tot.drops[FG_DROP_stale_epoch], 0, "no stale packet was sent");
	rte_pktmbuf_free_bulk(m, BURST);
	fg_counters_free(ctr);
	return NULL;
}

static unsigned long
env_size(const char *name, unsigned long dflt)
{
	const char *s = getenv(name);

	return s != NULL && *s != '\0' ? strtoul(s, NULL, 10) : dflt;
}

Test(concurrency, moves_under_readers_never_cross_tenants, .init = setup, .timeout = 900)
{
	struct reader_result res = { 0 };
	unsigned long failures = 0;
	pthread_t rd, wr;

	n_moves = env_size("FG_CONC_MOVES", 100000);
	n_packets = env_size("FG_CONC_PACKETS", 10000000);
	/* EAL pinned this thread to one core; as in the router, give the
	 * reader (a worker) and the writer (the control thread) their own
	 * cores where the machine has two. */
	pthread_attr_t ra, wa;
	cpu_set_t rcpu, wcpu;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	CPU_ZERO(&rcpu);
	CPU_ZERO(&wcpu);
	CPU_SET(ncpu > 1 ? 1 : 0, &rcpu);
	CPU_SET(0, &wcpu);
	pthread_attr_init(&ra);
	pthread_attr_init(&wa);
	pthread_attr_setaffinity_np(&ra, sizeof(rcpu), &rcpu);
	pthread_attr_setaffinity_np(&wa, sizeof(wcpu), &wcpu);
	cr_assert_eq(pthread_create(&rd, &ra, reader, &res), 0);
	cr_assert_eq(pthread_create(&wr, &wa, writer, &failures), 0);
	pthread_join(wr, NULL);
	pthread_join(rd, NULL);

	fprintf(stderr,
		"concurrency: moves=%lu (failed %lu) packets=%lu forwarded=%lu "
		"cross_tenant=%lu torn=%lu wrong_epoch=%lu\n",
		n_moves - failures, failures, res.packets, res.forwarded,
		res.cross_tenant, res.torn, res.wrong_epoch);
	cr_expect_eq(failures, 0, "%lu moves were refused", failures);
	cr_expect_geq(res.packets, n_packets);
	cr_expect_eq(res.cross_tenant, 0, "cross-tenant verdicts");
	cr_expect_eq(res.torn, 0, "forwards under a mix of two states");
	cr_expect_eq(res.wrong_epoch, 0, "forwards under another epoch");
	/* Not vacuous: most packets claim the current owner and epoch. */
	cr_expect_gt(res.forwarded, res.packets / 4, "only %lu of %lu forwarded",
		     res.forwarded, res.packets);
	fg_test_env_fini(&env);
}
