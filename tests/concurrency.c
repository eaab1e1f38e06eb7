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
 * This file is the test's body, free of Criterion: test_concurrency.c runs it
 * in the suite, concurrency_main.c runs it alone (under TSan, which Criterion
 * cannot run under).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_udp.h>

#include "counters.h"
#include "concurrency.h"
#include "framebuild.h"
#include "verdict.h"

#define N_TENANTS 4
#define N_DEVICES 1024
#define DEV_BASE 0x1000
#define BURST 32

static struct fg_tables *tables;
static struct fg_ownership *own;
static struct rte_mempool *pool;
/* The writer's latest acknowledged (tenant << 32 | epoch) per device: a hint
 * that lets the reader send packets that should mostly pass. */
static uint64_t hint[N_DEVICES];
static int writer_done;   /* set by the writer, read by the reader: atomics */
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

static int
setup(struct fg_conc_result *res)
{
	struct fg_err err = { 0 };

	for (uint32_t t = 1; t <= N_TENANTS; t++) {
		if (fg_tenant_add(own, &(struct fg_tenant_spec){ .tenant_id = t }, &err) != 0)
			goto fail;
		for (uint32_t k = 0; k < 3; k++)
			if (fg_sink_add(own, &(struct fg_sink_spec){
				.sink_id = t * 100 + k, .tenant_id = t, .family = AF_INET,
				.addr = { 198, 51, 100, (uint8_t)t }, .port = (uint16_t)(6000 + k) },
				&err) != 0)
				goto fail;
	}
	for (uint32_t i = 0; i < N_DEVICES; i++) {
		struct fg_device_spec s = { .tenant_id = 1 + i % N_TENANTS,
					    .device_id = DEV_BASE + i, .epoch = 1 };

		s.n_sinks = sinks_for(s.tenant_id, s.device_id, 1, s.sinks);
		if (fg_device_put(own, &s, &err) != 0)
			goto fail;
		hint[i] = (uint64_t)s.tenant_id << 32 | 1;
	}
	fg_tables_sync(tables);
	return 0;
fail:
	snprintf(res->error, sizeof(res->error), "set-up: %s", err.msg);
	return -1;
}

/* Moves in batches of 1 to 8, each batch acknowledged by one grace period,
 * as a `load` would: within a batch, an entry retired by one move must not be
 * reused by the next while a reader may still hold it. A device is moved at
 * most once per batch (the hint is its acknowledged state). */
static void *
writer(void *arg)
{
	uint64_t rnd = 0x9e3779b97f4a7c15ULL;
	struct fg_conc_result *res = arg;
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
			if (fg_device_move(own, &mv, &err) != 0) {
				fprintf(stderr, "move %lu failed: %s\n", m, err.msg);
				res->failed_moves++;
				continue;
			}
			next[k] = (uint64_t)to << 32 | epoch;
		}
		fg_tables_sync(tables);   /* the ack: every reader has moved on */
		for (uint32_t j = 0; j < k; j++)
			__atomic_store_n(&hint[dev[j]], next[j], __ATOMIC_RELAXED);
	}
	res->moves = m - res->failed_moves;
	__atomic_store_n(&writer_done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *
reader(void *arg)
{
	struct fg_conc_result *res = arg;
	struct fg_counters *ctr = fg_counters_create(16, SOCKET_ID_ANY);
	struct rte_mbuf *m[BURST];
	struct fg_verdict v[BURST];
	uint32_t claim_tenant[BURST], claim_epoch[BURST];
	uint64_t claim_dev[BURST];
	uint64_t rnd = 0x243f6a8885a308d3ULL;
	struct fg_engine eng;
	struct fg_frame_spec spec = { .ip_version = 4, .payload_len = 48,
				      .src_ip = { 192, 0, 2, 1 }, .dst_ip = { 192, 0, 2, 2 } };
	size_t frame_off = fg_frame_offset(&spec);
	uint8_t tmpl[128];
	size_t tlen;

	if (ctr == NULL || fg_tables_reader_register(tables, 0) != 0) {
		snprintf(res->error, sizeof(res->error), "reader set-up failed");
		fg_counters_free(ctr);
		return NULL;
	}
	fg_engine_init(&eng, tables, FG_DEFAULT_FRAME_PORT);
	tlen = fg_frame_build(&spec, tmpl, sizeof(tmpl));
	if (rte_pktmbuf_alloc_bulk(pool, m, BURST) != 0) {
		snprintf(res->error, sizeof(res->error), "no mbufs");
		fg_tables_reader_unregister(tables, 0);
		fg_counters_free(ctr);
		return NULL;
	}
	for (int i = 0; i < BURST; i++)
		memcpy(rte_pktmbuf_append(m[i], (uint16_t)tlen), tmpl, tlen);

	while (res->packets < n_packets || !__atomic_load_n(&writer_done, __ATOMIC_ACQUIRE)) {
		for (int k = 0; k < BURST; k++) {
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
			fg_frame_set_ids(rte_pktmbuf_mtod(m[k], uint8_t *), frame_off,
					 t, DEV_BASE + i, e, NULL);
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
		fg_tables_reader_quiescent(tables, 0);
	}
	fg_tables_reader_unregister(tables, 0);

	fg_counters_sum(&ctr, 1, &res->totals);
	rte_pktmbuf_free_bulk(m, BURST);
	fg_counters_free(ctr);
	return NULL;
}

int
fg_conc_run(struct fg_tables *t, struct fg_ownership *o,
	    unsigned long moves, unsigned long packets, struct fg_conc_result *res)
{
	pthread_attr_t ra, wa;
	cpu_set_t rcpu, wcpu;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	pthread_t rd, wr;

	memset(res, 0, sizeof(*res));
	tables = t;
	own = o;
	n_moves = moves;
	n_packets = packets;
	__atomic_store_n(&writer_done, 0, __ATOMIC_RELEASE);
	pool = rte_pktmbuf_pool_create("fg_conc_mbufs", 255, 0, 0,
				       RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
	if (pool == NULL) {
		snprintf(res->error, sizeof(res->error), "no mbuf pool");
		return -1;
	}
	if (setup(res) != 0)
		goto out;
	/* EAL pinned this thread to one core; as in the router, give the
	 * reader (a worker) and the writer (the control thread) their own
	 * cores where the machine has two. */
	CPU_ZERO(&rcpu);
	CPU_ZERO(&wcpu);
	CPU_SET(ncpu > 1 ? 1 : 0, &rcpu);
	CPU_SET(0, &wcpu);
	pthread_attr_init(&ra);
	pthread_attr_init(&wa);
	pthread_attr_setaffinity_np(&ra, sizeof(rcpu), &rcpu);
	pthread_attr_setaffinity_np(&wa, sizeof(wcpu), &wcpu);
	if (pthread_create(&rd, &ra, reader, res) != 0) {
		snprintf(res->error, sizeof(res->error), "cannot start the reader");
		goto out_attr;
	}
	if (pthread_create(&wr, &wa, writer, res) != 0) {
		__atomic_store_n(&writer_done, 1, __ATOMIC_RELEASE);
		pthread_join(rd, NULL);
		snprintf(res->error, sizeof(res->error), "cannot start the writer");
		goto out_attr;
	}
	pthread_join(wr, NULL);
	pthread_join(rd, NULL);
out_attr:
	pthread_attr_destroy(&ra);
	pthread_attr_destroy(&wa);
out:
	rte_mempool_free(pool);
	return res->error[0] ? -1 : 0;
}

void
fg_conc_print(const struct fg_conc_result *r, FILE *f)
{
	fprintf(f, "concurrency: moves=%lu (refused %lu) packets=%lu forwarded=%lu "
		"cross_tenant=%lu torn=%lu wrong_epoch=%lu sink_mismatch=%lu "
		"not_owned=%lu stale_epoch=%lu%s%s\n",
		r->moves, r->failed_moves, r->packets, r->forwarded,
		r->cross_tenant, r->torn, r->wrong_epoch,
		(unsigned long)r->totals.drops[FG_DROP_sink_mismatch],
		(unsigned long)r->totals.drops[FG_DROP_not_owned],
		(unsigned long)r->totals.drops[FG_DROP_stale_epoch],
		r->error[0] ? " error: " : "", r->error);
}

int
fg_conc_passed(const struct fg_conc_result *r, unsigned long moves,
	       unsigned long packets)
{
	return r->error[0] == '\0' && r->failed_moves == 0 && r->moves == moves &&
	       r->packets >= packets && r->cross_tenant == 0 && r->torn == 0 &&
	       r->wrong_epoch == 0 &&
	       r->totals.drops[FG_DROP_sink_mismatch] == 0 &&
	       r->totals.rx_packets == r->packets &&
	       r->totals.forwarded_packets == r->forwarded &&
	       fg_counters_conserved(&r->totals) &&
	       r->totals.drops[FG_DROP_not_owned] > 0 &&
	       r->totals.drops[FG_DROP_stale_epoch] > 0 &&
	       r->forwarded > r->packets / 4;
}
