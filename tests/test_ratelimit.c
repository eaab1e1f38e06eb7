/*
 * Per-tenant rate limits, SPEC 3 check 10.
 *
 *   bucket    the token bucket's arithmetic on a simulated TSC: the rate over
 *             ten seconds, the burst after an idle hour, a TSC that wraps,
 *             the per-worker share and its floor, the default burst, a
 *             limit that changes, limits at the ends of their range;
 *   tables    the generation a tenant's limit gets when it is published:
 *             kept across suspend and resume, new for a re-created tenant or
 *             another tenant in the same slot;
 *   engine    the verdict engine on a real clock: a re-created tenant starts
 *             with a full bucket of its new limit, never the old one's; with
 *             two workers, a tenant whose packets all reach one of them gets
 *             half its rate, and one spread over both gets all of it;
 *   router    a router on two net_ring ports, driven on this lcore: tenant A
 *             limited to R frames per second and offered 4R, tenant B
 *             unlimited on the same worker; over three one-second windows A
 *             forwards R within 5%, B loses nothing, rate_limited counts
 *             exactly A's difference, and every copy leaves.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <criterion/criterion.h>
#include <rte_cycles.h>
#include <rte_eth_ring.h>
#include <rte_ring.h>

#include "framebuild.h"
#include "ratelimit.h"
#include "router.h"
#include "support.h"

/* ---- bucket: the arithmetic on a simulated TSC ------------------------------ */

#define HZ UINT64_C(2000000000)   /* a 2 GHz TSC */

/* Offer n frames at TSC `now`; how many pass. */
static unsigned int
offer(struct fg_rate_bucket *b, const struct fg_rate *r, unsigned int shares,
      uint64_t now, unsigned int n)
{
	unsigned int pass = 0;

	for (unsigned int i = 0; i < n; i++)
		pass += fg_rate_take(b, r, shares, now);
	return pass;
}

/* Offer one frame every `every` cycles from `start` for `secs` seconds. */
static uint64_t
offer_steady(struct fg_rate_bucket *b, const struct fg_rate *r,
	     unsigned int shares, uint64_t start, uint64_t every, unsigned int secs)
{
	uint64_t pass = 0;

	for (uint64_t t = 0; t < secs * HZ; t += every)
		pass += fg_rate_take(b, r, shares, start + t);
	return pass;
}

Test(bucket, passes_the_rate_over_ten_seconds_after_the_burst)
{
	struct fg_rate r;
	struct fg_rate_bucket b = { 0 };
	uint64_t pass;

	fg_rate_prepare(&r, 2000, 200, HZ, 1);
	/* 8000 frames/s offered: the burst, then 2000 a second. */
	pass = offer_steady(&b, &r, 1, 12345, HZ / 8000, 10);
	cr_expect(pass >= 200 + 20000 - 1 && pass <= 200 + 20000 + 1,
		  "%lu frames passed in 10 s at 2000/s with a burst of 200", (unsigned long)pass);
}

Test(bucket, an_idle_bucket_holds_the_burst_and_no_more)
{
	struct fg_rate r;
	struct fg_rate_bucket b = { 0 };

	fg_rate_prepare(&r, 2000, 200, HZ, 1);
	cr_expect_eq(offer(&b, &r, 1, 1000, 1000), 200, "a fresh bucket is full");
	cr_expect_eq(offer(&b, &r, 1, 1000, 10), 0, "an empty bucket at the same instant");
	/* An hour later: full again, not an hour's worth. */
	cr_expect_eq(offer(&b, &r, 1, 1000 + 3600 * HZ, 1000), 200);
	/* 10 ms later: 20 frames earned. */
	cr_expect_eq(offer(&b, &r, 1, 1000 + 3600 * HZ + HZ / 100, 1000), 20);
}

Test(bucket, refills_across_a_tsc_wrap)
{
	struct fg_rate r;
	struct fg_rate_bucket b = { 0 };
	uint64_t before = UINT64_MAX - HZ / 4;     /* a quarter second before the wrap */

	fg_rate_prepare(&r, 2000, 5000, HZ, 1);
	cr_assert_eq(offer(&b, &r, 1, before, 10000), 5000);
	/* Half a second later the TSC has wrapped: 1000 frames earned, not a
	 * full bucket (a signed or wrapped difference would give 5000 or 0). */
	cr_expect_eq(offer(&b, &r, 1, before + HZ / 2, 3000), 1000,
		     "TSC went from %lu to %lu", (unsigned long)before,
		     (unsigned long)(before + HZ / 2));
}

Test(bucket, each_worker_takes_its_share)
{
	struct fg_rate r;
	struct fg_rate_bucket b = { 0 };
	uint64_t pass;

	/* 4 workers: 500 frames/s each, a burst of 400 / 4 = 100. */
	fg_rate_prepare(&r, 2000, 400, HZ, 1);
	cr_expect_eq(offer(&b, &r, 4, 77, 1000), 100);
	pass = offer_steady(&b, &r, 4, 77 + HZ / 1000, HZ / 4000, 10);
	cr_expect(pass >= 5000 - 1 && pass <= 5000 + 1 + 1,
		  "%lu frames passed on one of 4 workers in 10 s at 2000/s", (unsigned long)pass);
}

Test(bucket, a_worker_holds_at_least_the_floor)
{
	struct fg_rate r;
	struct fg_rate_bucket b = { 0 };

	/* 40 over 4 workers would be 10: the floor of 32 applies. */
	fg_rate_prepare(&r, 2000, 40, HZ, 1);
	cr_expect_eq(offer(&b, &r, 4, 5, 100), FG_RATE_MIN_BURST);
	/* A burst below the floor is kept as given. */
	memset(&b, 0, sizeof(b));
	fg_rate_prepare(&r, 2000, 10, HZ, 1);
	cr_expect_eq(offer(&b, &r, 4, 5, 100), 10);
}

Test(bucket, no_burst_means_a_tenth_of_a_second)
{
	struct fg_rate r;
	struct fg_rate_bucket b = { 0 };

	fg_rate_prepare(&r, 1000, 0, HZ, 1);
	cr_expect_eq(offer(&b, &r, 1, 9, 1000), 100);
	fg_rate_prepare(&r, 3, 0, HZ, 2);          /* at least one frame */
	cr_expect_eq(offer(&b, &r, 1, 9, 1000), 1);
}

Test(bucket, no_rate_means_no_cost)
{
	struct fg_rate r;

	fg_rate_prepare(&r, 0, 0, HZ, 7);
	cr_expect_eq(r.cost, 0);
	cr_expect_eq(r.gen, 7);
}

Test(bucket, a_new_generation_starts_afresh_and_the_same_one_does_not)
{
	struct fg_rate r1, r2;
	struct fg_rate_bucket b = { 0 };

	fg_rate_prepare(&r1, 100, 50, HZ, 1);
	cr_assert_eq(offer(&b, &r1, 1, 42, 1000), 50);
	cr_expect_eq(offer(&b, &r1, 1, 42, 1000), 0, "the same limit keeps its empty bucket");
	/* The tenant's limit changed (or the tenant was created again). */
	fg_rate_prepare(&r2, 1000, 70, HZ, 2);
	cr_expect_eq(offer(&b, &r2, 1, 42, 1000), 70);
	cr_expect_eq(offer(&b, &r2, 1, 42 + HZ / 10, 1000), 70,
		     "100 ms at the new rate of 1000/s (capped at the burst)");
}

Test(bucket, limits_at_the_ends_of_the_range_do_not_overflow)
{
	struct fg_rate r;
	struct fg_rate_bucket b = { 0 };
	uint64_t first, pass = 0;
	unsigned int later;

	/* 1 frame/s with the largest burst, over 128 workers: the bucket is
	 * capped at its credit limit (2^62 scaled cycles, about 9.8 hours of a
	 * 2 GHz TSC), so a worker starts with 9.8 h * 1/128 frames/s. */
	fg_rate_prepare(&r, 1, UINT32_MAX, HZ, 1);
	cr_expect_eq(r.cap, FG_RATE_CREDIT_MAX);
	first = offer(&b, &r, 128, 0, 1000000);
	cr_expect(first >= 273 && first <= 275, "%lu passed from a full bucket", (unsigned long)first);
	/* An hour later: 3600 / 128 = 28.1 frames, plus what was left. */
	later = offer(&b, &r, 128, 3600 * HZ, 100);
	cr_expect(later == 28 || later == 29, "%u passed after an hour", later);

	/* 3e9 frames/s on a 2 GHz TSC: a frame costs 2/3 of a cycle. Two
	 * offered every cycle for 1 ms: the rate's 3,000,000 and the floor's
	 * 32, within 0.01%. */
	memset(&b, 0, sizeof(b));
	fg_rate_prepare(&r, 3000000000u, 32, HZ, 2);
	cr_expect_gt(r.cost, 0);
	for (uint64_t t = 0; t < HZ / 1000; t++)
		pass += offer(&b, &r, 1, t, 2);
	cr_expect(pass >= 3000032 - 300 && pass <= 3000032 + 300,
		  "%lu passed in 1 ms at 3e9 frames/s", (unsigned long)pass);
}

/* ---- tables: the generation of a published limit ----------------------------- */

static struct fg_test_env env;

static void
env_fini(void)
{
	fg_test_env_fini(&env);
}

static void
tenant(uint32_t id, uint64_t rate, uint64_t burst)
{
	struct fg_err err = { 0 };

	cr_assert_eq(fg_tenant_add(env.o, &(struct fg_tenant_spec){
		.tenant_id = id, .rate_pps = rate, .burst = burst }, &err), 0,
		"tenant %u: %s", id, err.msg);
}

static struct fg_rate
rate_of(uint32_t id)
{
	const struct fg_tenant *e = fg_tables_tenant(env.t, id);

	cr_assert_not_null(e, "tenant %u is not published", id);
	return e->rate;
}

/* Two slots only, so a deleted tenant's slot is the next one given. */
static void
two_slots(void)
{
	fg_test_env_init(&env, 2, 4, 4);
}

TestSuite(tables, .init = two_slots, .fini = env_fini);

Test(tables, suspend_and_resume_keep_the_limit_and_its_generation)
{
	struct fg_err err = { 0 };
	struct fg_rate a, b;

	tenant(7, 2000, 200);
	a = rate_of(7);
	cr_expect_neq(a.gen, 0);
	cr_expect_eq(a.cost, ((uint64_t)rte_get_tsc_hz() << FG_RATE_SHIFT) / 2000);
	cr_expect_eq(a.cap, a.cost * 200);
	cr_assert_eq(fg_tenant_set_suspended(env.o, 7, true, &err), 0, "%s", err.msg);
	cr_assert_eq(fg_tenant_set_suspended(env.o, 7, false, &err), 0, "%s", err.msg);
	b = rate_of(7);
	cr_expect_eq(memcmp(&a, &b, sizeof(a)), 0, "suspend and resume changed the limit");
}

Test(tables, a_recreated_tenant_gets_a_new_generation)
{
	struct fg_err err = { 0 };
	struct fg_rate a, b, c;
	uint32_t slot7;

	tenant(7, 2000, 200);
	tenant(8, 0, 0);
	a = rate_of(7);
	slot7 = fg_tables_tenant(env.t, 7)->slot;
	cr_expect_eq(rate_of(8).cost, 0, "a tenant without a limit costs nothing");

	/* The same tenant, deleted and created with the same limit. */
	cr_assert_eq(fg_tenant_del(env.o, 7, &err), 0, "%s", err.msg);
	tenant(7, 2000, 200);
	b = rate_of(7);
	cr_expect_eq(b.cost, a.cost);
	cr_expect_neq(b.gen, a.gen, "a re-created tenant inherits its old limit's buckets");

	/* Another tenant in the same slot, with the same limit. */
	cr_assert_eq(fg_tenant_del(env.o, 7, &err), 0, "%s", err.msg);
	tenant(9, 2000, 200);
	cr_assert_eq(fg_tables_tenant(env.t, 9)->slot, slot7, "the test needs the slot reused");
	c = rate_of(9);
	cr_expect_neq(c.gen, a.gen);
	cr_expect_neq(c.gen, b.gen, "tenant 9 inherits tenant 7's buckets in slot %u", slot7);
}

/* ---- engine: a re-created tenant on a real clock ------------------------------ */

#define SINK_A 10
#define SINK_B 20
#define DEV_A 0xa1
#define DEV_B 0xb1

/* Tenant id with one sink (IPv4, port 6000 + id) and one device at epoch 1. */
static void
tenant_with_device(uint32_t id, uint32_t sink, uint64_t dev, uint64_t rate,
		   uint64_t burst)
{
	struct fg_err err = { 0 };

	tenant(id, rate, burst);
	cr_assert_eq(fg_sink_add(env.o, &(struct fg_sink_spec){
		.sink_id = sink, .tenant_id = id, .family = AF_INET,
		.addr = { 198, 51, 100, (uint8_t)sink }, .port = (uint16_t)(6000 + id),
		.egress = 1 }, &err), 0, "%s", err.msg);
	cr_assert_eq(fg_device_put(env.o, &(struct fg_device_spec){
		.tenant_id = id, .device_id = dev, .epoch = 1, .n_sinks = 1,
		.sinks = { sink } }, &err), 0, "%s", err.msg);
	fg_tables_sync(env.t);
}

static void
tenant_remove(uint32_t id, uint32_t sink, uint64_t dev)
{
	struct fg_err err = { 0 };

	cr_assert_eq(fg_device_del(env.o, id, dev, &err), 0, "%s", err.msg);
	cr_assert_eq(fg_sink_del(env.o, sink, &err), 0, "%s", err.msg);
	cr_assert_eq(fg_tenant_del(env.o, id, &err), 0, "%s", err.msg);
	fg_tables_sync(env.t);
}

/* One frame of (tenant, device) as a fresh mbuf. */
static struct rte_mbuf *
frame(uint32_t tenant_id, uint64_t device_id)
{
	struct fg_frame_spec spec = { .ip_version = 4, .payload_len = 64,
				      .tenant_id = tenant_id, .device_id = device_id,
				      .epoch = 1, .src_ip = { 192, 0, 2, 10 },
				      .dst_ip = { 192, 0, 2, 1 } };
	uint8_t buf[256];
	size_t len = fg_frame_build(&spec, buf, sizeof(buf));

	cr_assert_gt(len, 0);
	return fg_test_mbuf(buf, (uint32_t)len);
}

/* n frames of one tenant through the engine in bursts; how many pass. */
static unsigned int
through_engine(const struct fg_engine *eng, struct fg_counters *ctr,
	       uint32_t tenant_id, uint64_t dev, unsigned int n)
{
	struct rte_mbuf *m[FG_BURST_MAX];
	struct fg_verdict v[FG_BURST_MAX];
	unsigned int pass = 0;

	for (unsigned int done = 0; done < n; ) {
		uint16_t k = (uint16_t)RTE_MIN(n - done, (unsigned int)FG_BURST_MAX);

		for (uint16_t i = 0; i < k; i++)
			m[i] = frame(tenant_id, dev);
		pass += fg_verdict_burst(eng, ctr, m, k, v);
		rte_pktmbuf_free_bulk(m, k);
		done += k;
	}
	return pass;
}

TestSuite(engine, .init = two_slots, .fini = env_fini);

Test(engine, a_recreated_tenant_starts_with_its_new_burst)
{
	struct fg_engine eng;
	struct fg_counters *ctr;
	struct fg_counter_totals tot;
	unsigned int pass;

	ctr = fg_counters_create(2, SOCKET_ID_ANY);
	cr_assert_not_null(ctr);
	fg_engine_init(&eng, env.t, FG_DEFAULT_FRAME_PORT);

	/* 1 frame/s: what the work below earns stays under one frame. */
	tenant_with_device(7, SINK_A, DEV_A, 1, 50);
	pass = through_engine(&eng, ctr, 7, DEV_A, 300);
	cr_expect_eq(pass, 50, "the first burst of 300 frames: %u passed", pass);
	cr_expect_eq(through_engine(&eng, ctr, 7, DEV_A, 100), 0, "the bucket is empty");

	/* Re-created with a larger burst: a full bucket of the new limit. */
	tenant_remove(7, SINK_A, DEV_A);
	tenant_with_device(7, SINK_A, DEV_A, 1, 120);
	pass = through_engine(&eng, ctr, 7, DEV_A, 300);
	cr_expect_eq(pass, 120, "after re-creation with burst 120: %u passed", pass);

	/* Re-created with the same limit: full again, not the empty one. */
	tenant_remove(7, SINK_A, DEV_A);
	tenant_with_device(7, SINK_A, DEV_A, 1, 120);
	pass = through_engine(&eng, ctr, 7, DEV_A, 300);
	cr_expect_eq(pass, 120, "after re-creation with the same limit: %u passed", pass);

	/* Counted under rate_limited only; conservation holds. */
	fg_counters_sum(&ctr, 1, &tot);
	cr_expect_eq(tot.rx_packets, 1000);
	cr_expect_eq(tot.forwarded_packets, 290);
	cr_expect_eq(tot.drops[FG_DROP_rate_limited], 710);
	cr_expect(fg_counters_conserved(&tot));
	fg_counters_free(ctr);
}

/* Two workers' blocks fed on this thread, on a real clock: tenant 7's
 * packets all reach worker 0 (one flow, or RSS skew), tenant 8's are spread
 * evenly over both. Each tenant is limited to 2000/s and offered twice that
 * on each worker it reaches. Over a one-second window after the bursts are
 * spent, tenant 7 gets a worker's share, 1000, and tenant 8 all of 2000. */
Test(engine, a_tenant_on_one_worker_gets_its_share_and_a_spread_one_the_rate)
{
	enum { RATE = 2000, WARMUP_MS = 300 };
	struct fg_engine eng;
	struct fg_counters *ctr[2];
	uint64_t hz = rte_get_tsc_hz(), start, el, sent = 0, w0 = 0, w1 = 0;
	fg_tenant_row row;
	uint64_t fwd7[2] = { 0 }, fwd8[2] = { 0 };
	double secs;
	bool started = false;

	tenant_with_device(7, SINK_A, DEV_A, RATE, 200);
	tenant_with_device(8, SINK_B, DEV_B, RATE, 200);
	fg_engine_init(&eng, env.t, FG_DEFAULT_FRAME_PORT);
	eng.rate_shares = 2;
	ctr[0] = fg_counters_create(2, SOCKET_ID_ANY);
	ctr[1] = fg_counters_create(2, SOCKET_ID_ANY);
	cr_assert(ctr[0] && ctr[1]);

	/* Every millisecond, the packets due at 2 * RATE per worker reached. */
	start = rte_rdtsc();
	do {
		uint64_t due;

		el = rte_rdtsc() - start;
		due = el * 2 * RATE / hz;
		for (; sent < due; sent++) {
			through_engine(&eng, ctr[0], 7, DEV_A, 1);
			through_engine(&eng, ctr[0], 8, DEV_B, 1);
			through_engine(&eng, ctr[1], 8, DEV_B, 1);
		}
		if (!started && el >= hz * WARMUP_MS / 1000) {
			started = true;
			w0 = el;
			for (int w = 0; w < 2; w++) {
				fg_counters_sum_tenant(&ctr[w], 1, fg_tables_tenant(env.t, 7)->slot, row);
				fwd7[0] += row[FG_TENANT_FORWARDED];
				fg_counters_sum_tenant(&ctr[w], 1, fg_tables_tenant(env.t, 8)->slot, row);
				fwd8[0] += row[FG_TENANT_FORWARDED];
			}
		}
		rte_delay_us_sleep(1000);
	} while (el < hz * WARMUP_MS / 1000 + hz);
	w1 = el;
	fg_counters_sum_tenant(ctr, 2, fg_tables_tenant(env.t, 7)->slot, row);
	fwd7[1] = row[FG_TENANT_FORWARDED];
	fg_counters_sum_tenant(ctr, 2, fg_tables_tenant(env.t, 8)->slot, row);
	fwd8[1] = row[FG_TENANT_FORWARDED];

	secs = (double)(w1 - w0) / (double)hz;
	cr_log_info("%.4f s: tenant 7 on one worker forwarded %lu, tenant 8 on both %lu",
		    secs, (unsigned long)(fwd7[1] - fwd7[0]), (unsigned long)(fwd8[1] - fwd8[0]));
	cr_expect((double)(fwd7[1] - fwd7[0]) >= RATE / 2 * secs * 0.95 &&
		  (double)(fwd7[1] - fwd7[0]) <= RATE / 2 * secs * 1.05,
		  "tenant 7, all on one of 2 workers, forwarded %lu in %.4f s, not %.0f",
		  (unsigned long)(fwd7[1] - fwd7[0]), secs, RATE / 2 * secs);
	cr_expect((double)(fwd8[1] - fwd8[0]) >= RATE * secs * 0.95 &&
		  (double)(fwd8[1] - fwd8[0]) <= RATE * secs * 1.05,
		  "tenant 8, spread over 2 workers, forwarded %lu in %.4f s, not %.0f",
		  (unsigned long)(fwd8[1] - fwd8[0]), secs, RATE * secs);
	fg_counters_free(ctr[0]);
	fg_counters_free(ctr[1]);
}

/* ---- router: two tenants on one worker over one-second windows -------------- */

#define RATE_A 2000u                /* tenant A's limit, frames/s */
#define BURST_A 200u
#define OFFER_A (4 * RATE_A)        /* what A's cameras send */
#define OFFER_B 1000u               /* tenant B, unlimited */
#define WARMUP_MS 500               /* A's burst spent before the windows */
#define WINDOWS 3
#define RING_SIZE 4096

struct counts {
	uint64_t fwd, limited, other;   /* per tenant */
};

static struct counts
tenant_counts(struct fg_counters *c, uint32_t tenant_id)
{
	fg_tenant_row row;
	struct counts k = { 0 };

	fg_counters_sum_tenant(&c, 1, fg_tables_tenant(env.t, tenant_id)->slot, row);
	k.fwd = row[FG_TENANT_FORWARDED];
	k.limited = row[FG_DROP_rate_limited];
	for (int r = 1; r < FG_REASON_END; r++)
		if (r != FG_DROP_rate_limited)
			k.other += row[r];
	return k;
}

/* Tenant of a copy: the frame header's tenant_id behind Ethernet, IPv4
 * without options and UDP. */
static uint32_t
copy_tenant(const struct rte_mbuf *m)
{
	uint8_t b[4];
	const uint8_t *p = rte_pktmbuf_read(m, 14 + 20 + 8 + 4, 4, b);

	return p ? (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3] : 0;
}

static void
read_copies(struct rte_ring *tx, uint64_t *copies_a, uint64_t *copies_b)
{
	void *m[64];
	unsigned int n;

	while ((n = rte_ring_dequeue_burst(tx, m, 64, NULL)) > 0) {
		for (unsigned int i = 0; i < n; i++) {
			uint32_t t = copy_tenant(m[i]);

			*copies_a += t == 1;
			*copies_b += t == 2;
		}
		rte_pktmbuf_free_bulk((struct rte_mbuf **)m, n);
	}
}

static void
router_env(void)
{
	fg_test_env_init(&env, 16, 16, 16);
}

TestSuite(router, .init = router_env, .fini = env_fini, .timeout = 60);

Test(router, a_limited_tenant_gets_its_rate_and_its_neighbour_loses_nothing)
{
	struct rte_ring *cam_rx, *cam_tx, *view_rx, *view_tx;
	struct fg_config cfg;
	struct fg_router r;
	struct fg_err err = { 0 };
	struct fg_worker *w;
	struct fg_counter_totals tot;
	uint64_t hz = rte_get_tsc_hz(), start, sent_a = 0, sent_b = 0;
	uint64_t copies_a = 0, copies_b = 0, mark[WINDOWS + 1];
	struct counts at[WINDOWS + 1], end_a, end_b;
	int cam, view, k = 0;

	/* Port 0 takes the cameras' frames, port 1 sends the copies. */
	cam_rx = rte_ring_create("cam_rx", RING_SIZE, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
	cam_tx = rte_ring_create("cam_tx", RING_SIZE, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
	view_rx = rte_ring_create("view_rx", RING_SIZE, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
	view_tx = rte_ring_create("view_tx", RING_SIZE, SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
	cr_assert(cam_rx && cam_tx && view_rx && view_tx, "rings: %s", rte_strerror(rte_errno));
	cam = rte_eth_from_rings("net_ring_cam", &cam_rx, 1, &cam_tx, 1, SOCKET_ID_ANY);
	view = rte_eth_from_rings("net_ring_view", &view_rx, 1, &view_tx, 1, SOCKET_ID_ANY);
	cr_assert(cam == 0 && view == 1, "ring ports %d and %d", cam, view);
	fg_config_defaults(&cfg);
	cfg.n_ports = 2;
	cfg.ports[0] = (struct fg_port_config){ .port_id = 0, .role = FG_ROLE_INGRESS,
						.rx_queues = 1 };
	cfg.ports[1] = (struct fg_port_config){ .port_id = 1, .role = FG_ROLE_EGRESS,
						.rx_queues = 1, .has_ipv4 = true,
						.ipv4 = { 192, 0, 2, 1 },
						.next_hop = {{ 2, 0, 0, 0, 0, 1 }} };
	/* The tenants first: once the router runs, this lcore is its worker,
	 * and a grace period would wait for it. */
	tenant_with_device(1, SINK_A, DEV_A, RATE_A, BURST_A);
	tenant_with_device(2, SINK_B, DEV_B, 0, 0);
	cr_assert_eq(fg_router_init(&r, &cfg, env.t, 4095, &err), 0, "%s", err.msg);
	cr_assert_eq(r.n_workers, 1);
	w = r.workers[0];

	/* Every millisecond, the frames due by now from both tenants' cameras
	 * (interleaved), then the worker polls until it has taken them all.
	 * The windows' ends are marked on the TSC after a poll. */
	start = rte_rdtsc();
	for (;;) {
		uint64_t el = rte_rdtsc() - start;
		uint64_t due_a = el * OFFER_A / hz, due_b = el * OFFER_B / hz;
		struct rte_mbuf *m[256];
		unsigned int n = 0;

		while (n < 256 && (sent_a < due_a || sent_b < due_b)) {
			if (sent_a < due_a) {
				m[n++] = frame(1, DEV_A);
				sent_a++;
			}
			if (n < 256 && sent_b < due_b) {
				m[n++] = frame(2, DEV_B);
				sent_b++;
			}
		}
		cr_assert_eq(rte_ring_enqueue_burst(cam_rx, (void **)m, n, NULL), n,
			     "the router fell behind by %u frames", RING_SIZE);
		fg_worker_drain(w, sent_a + sent_b, 1000000);
		cr_assert_eq(fg_ctr_read(&w->ctr->rx_packets), sent_a + sent_b);
		read_copies(view_tx, &copies_a, &copies_b);
		if (n == 256)
			continue;                     /* catching up after a stall */
		el = rte_rdtsc() - start;
		if (el >= hz * WARMUP_MS / 1000 + (uint64_t)k * hz) {
			mark[k] = el;
			at[k] = tenant_counts(w->ctr, 1);
			if (k++ == WINDOWS)
				break;
		}
		rte_delay_us_sleep(1000);
	}

	for (int i = 0; i < WINDOWS; i++) {
		double secs = (double)(mark[i + 1] - mark[i]) / (double)hz;
		uint64_t got = at[i + 1].fwd - at[i].fwd;
		double want = RATE_A * secs;

		cr_log_info("window %d: %.4f s, tenant A forwarded %lu (rate %u/s: %.0f), limited %lu",
			    i + 1, secs, (unsigned long)got, RATE_A, want,
			    (unsigned long)(at[i + 1].limited - at[i].limited));
		cr_expect(got >= want * 0.95 && got <= want * 1.05,
			  "window %d (%.4f s): tenant A forwarded %lu, not %.0f within 5%%",
			  i + 1, secs, (unsigned long)got, want);
	}

	end_a = tenant_counts(w->ctr, 1);
	end_b = tenant_counts(w->ctr, 2);
	cr_expect_eq(end_b.fwd, sent_b, "tenant B sent %lu, forwarded %lu",
		     (unsigned long)sent_b, (unsigned long)end_b.fwd);
	cr_expect_eq(end_b.limited + end_b.other, 0, "tenant B lost frames");
	cr_expect_eq(end_a.other, 0, "tenant A dropped for another reason");
	cr_expect_eq(end_a.limited, sent_a - end_a.fwd,
		     "tenant A sent %lu, forwarded %lu, rate_limited %lu",
		     (unsigned long)sent_a, (unsigned long)end_a.fwd, (unsigned long)end_a.limited);
	cr_expect_gt(end_a.limited, sent_a / 2, "A was offered 4x its rate");
	fg_router_totals(&r, &tot);
	cr_expect(fg_counters_conserved(&tot));
	cr_expect_eq(tot.drops[FG_DROP_rate_limited], end_a.limited);
	cr_expect_eq(tot.rx_packets, sent_a + sent_b);
	/* Every forwarded frame's one copy left through the egress port. */
	cr_expect_eq(copies_a, end_a.fwd);
	cr_expect_eq(copies_b, sent_b);
	cr_expect_eq(tot.copies_sent, end_a.fwd + sent_b);
	cr_expect_eq(tot.tx_full, 0);

	fg_router_stop(&r);
	fg_router_join(&r);
	fg_router_close(&r);
}
