/*
 * Capture of dropped packets (see capture.h): the workers' side, entered only
 * while a capture is armed, and the control thread's arm, wait and drain.
 */
#include <errno.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <framegate/ctl.h>

#include "capture.h"
#include "parse.h"
#include "tables.h"
#include "verdict.h"

struct fg_capture *
fg_capture_create(uint16_t frame_port, int socket_id, struct fg_err *err)
{
	struct fg_capture *cap = rte_zmalloc_socket("fg_capture", sizeof(*cap),
						    RTE_CACHE_LINE_SIZE, socket_id);

	if (cap == NULL) {
		fg_err_set(err, ENOMEM, "capture: out of memory");
		return NULL;
	}
	cap->frame_port_be = rte_cpu_to_be_16(frame_port);
	/* A copy is held only between its worker and the next drain, and at
	 * most `count` are taken per capture: the pool never runs dry. */
	cap->pool = rte_pktmbuf_pool_create("fg_capture", FG_CTL_CAPTURE_MAX_COUNT, 0,
					    sizeof(struct fg_capture_meta),
					    RTE_PKTMBUF_HEADROOM + FG_CTL_CAPTURE_SNAPLEN,
					    socket_id);
	cap->ring = rte_ring_create("fg_capture", FG_CTL_CAPTURE_MAX_COUNT, socket_id,
				    RING_F_SC_DEQ | RING_F_EXACT_SZ);
	if (cap->pool == NULL || cap->ring == NULL) {
		fg_err_set(err, ENOMEM, "capture: cannot create its pool and ring of %u packets: %s",
			   FG_CTL_CAPTURE_MAX_COUNT, rte_strerror(rte_errno));
		fg_capture_free(cap);
		return NULL;
	}
	return cap;
}

void
fg_capture_free(struct fg_capture *cap)
{
	struct rte_mbuf *m;

	if (cap == NULL)
		return;
	while (cap->ring != NULL && rte_ring_sc_dequeue(cap->ring, (void **)&m) == 0)
		rte_pktmbuf_free(m);
	rte_ring_free(cap->ring);
	rte_mempool_free(cap->pool);
	rte_free(cap);
}

/* The tenant a dropped packet claims, or 0 when its header did not parse. */
static uint32_t
fg_capture_tenant(const struct fg_capture *cap, const struct rte_mbuf *m)
{
	uint8_t lin[FG_MAX_HEADERS_LEN];
	uint32_t avail = RTE_MIN(m->pkt_len, (uint32_t)FG_MAX_HEADERS_LEN);
	const uint8_t *data = rte_pktmbuf_read(m, 0, avail, lin);
	struct fg_parsed p;

	if (data == NULL || fg_parse(data, avail, m->pkt_len, cap->frame_port_be, &p) != FG_PASS)
		return 0;
	return p.tenant_id;
}

void
fg_capture_burst(struct fg_capture *cap, struct rte_mbuf *const *pkts,
		 const struct fg_verdict *v, uint16_t n)
{
	uint64_t now = rte_rdtsc();
	uint8_t reason = cap->reason;
	uint32_t tenant = cap->tenant;

	for (uint16_t i = 0; i < n; i++) {
		struct fg_capture_meta *meta;
		struct rte_mbuf *c;

		if (v[i].reason != reason)
			continue;
		if (tenant != 0 && fg_capture_tenant(cap, pkts[i]) != tenant)
			continue;
		/* A slot of the budget, or the capture is full. */
		if (__atomic_load_n(&cap->budget, __ATOMIC_RELAXED) <= 0 ||
		    __atomic_fetch_sub(&cap->budget, 1, __ATOMIC_RELAXED) <= 0)
			return;
		c = rte_pktmbuf_copy(pkts[i], cap->pool, 0, FG_CTL_CAPTURE_SNAPLEN);
		if (unlikely(c == NULL)) {
			/* Give the slot back: a later drop takes it. */
			__atomic_fetch_add(&cap->budget, 1, __ATOMIC_RELAXED);
			continue;
		}
		meta = rte_mbuf_to_priv(c);
		meta->tsc = now;
		meta->wire_len = pkts[i]->pkt_len;
		if (unlikely(rte_ring_mp_enqueue(cap->ring, c) != 0)) {
			rte_pktmbuf_free(c);
			__atomic_fetch_add(&cap->budget, 1, __ATOMIC_RELAXED);
		}
	}
}

int
fg_capture_arm(struct fg_capture *cap, enum fg_reason reason, uint32_t tenant,
	       uint32_t count, unsigned int timeout_s)
{
	if (__atomic_load_n(&cap->armed, __ATOMIC_RELAXED))
		return -EBUSY;
	if (count == 0 || count > FG_CTL_CAPTURE_MAX_COUNT)
		return -EINVAL;
	cap->reason = (uint8_t)reason;
	cap->tenant = tenant;
	cap->count = count;
	__atomic_store_n(&cap->budget, (int64_t)count, __ATOMIC_RELAXED);
	clock_gettime(CLOCK_REALTIME, &cap->started);
	cap->started_tsc = rte_rdtsc();
	clock_gettime(CLOCK_MONOTONIC, &cap->deadline);
	cap->deadline.tv_sec += timeout_s;
	/* The filter and the budget before the flag (the workers acquire). */
	__atomic_store_n(&cap->armed, 1, __ATOMIC_RELEASE);
	return 0;
}

unsigned int
fg_capture_saved(const struct fg_capture *cap)
{
	return rte_ring_count(cap->ring);
}

bool
fg_capture_due(const struct fg_capture *cap, bool *timed_out)
{
	struct timespec now;

	*timed_out = false;
	if (fg_capture_saved(cap) >= cap->count)
		return true;
	clock_gettime(CLOCK_MONOTONIC, &now);
	*timed_out = now.tv_sec > cap->deadline.tv_sec ||
		     (now.tv_sec == cap->deadline.tv_sec && now.tv_nsec >= cap->deadline.tv_nsec);
	return *timed_out;
}

unsigned int
fg_capture_finish(struct fg_capture *cap, struct fg_tables *t,
		  int (*fn)(void *ctx, const struct fg_capture_pkt *p), void *ctx)
{
	uint64_t hz = rte_get_tsc_hz();
	uint64_t start_ns = (uint64_t)cap->started.tv_sec * 1000000000u +
			    (uint64_t)cap->started.tv_nsec;
	uint8_t buf[FG_CTL_CAPTURE_SNAPLEN];
	unsigned int n = 0;
	struct rte_mbuf *m;

	__atomic_store_n(&cap->armed, 0, __ATOMIC_RELEASE);
	/* No worker is still inside fg_capture_burst() after this. */
	fg_tables_sync(t);
	while (rte_ring_sc_dequeue(cap->ring, (void **)&m) == 0) {
		const struct fg_capture_meta *meta = rte_mbuf_to_priv(m);
		uint64_t dt = meta->tsc > cap->started_tsc ? meta->tsc - cap->started_tsc : 0;
		struct fg_capture_pkt p = {
			.ts_ns = start_ns + dt / hz * 1000000000u +
				 dt % hz * 1000000000u / hz,
			.wire_len = meta->wire_len,
			.len = m->pkt_len,
			.data = rte_pktmbuf_read(m, 0, m->pkt_len, buf),
		};

		if (fn != NULL && p.data != NULL)
			fn(ctx, &p);
		rte_pktmbuf_free(m);
		n++;
	}
	return n;
}
