/*
 * Per-tenant rate limits (SPEC 3 check 10): a token bucket per tenant on
 * each worker, so no worker ever writes what another reads.
 *
 * A tenant's limit, rate_pps frames per second with a burst of `burst`
 * frames across the router, is shared evenly by the workers: each worker
 * refills its own bucket at rate_pps / n_workers and holds at most
 * burst / n_workers frames, but never fewer than min(burst,
 * FG_RATE_MIN_BURST), since a worker takes up to that many packets at once.
 *
 * Credit is kept in TSC cycles, scaled by 2^FG_RATE_SHIFT for sub-cycle
 * precision: a frame costs the time in which the worker earns one frame,
 * and a bucket earns one unit per scaled cycle. The division from frames per
 * second to cycles per frame is done once, when the tenant is published
 * (fg_rate_prepare, called by tables.c); per packet there are only
 * subtractions, shifts, multiplications and compares, and only for tenants
 * that have a limit (rate.cost != 0).
 *
 * rte_meter (srTCM/trTCM) was considered: it divides the elapsed time by the
 * refill period on every packet, meters bytes with two buckets and colours
 * we do not use, and would need a profile per worker share. This bucket does
 * one job with a multiply and a shift.
 *
 * A bucket remembers the generation of the limit it was filled under. A
 * tenant published with another rate or burst, or deleted and created again
 * (even with the same limit, possibly in the same slot), gets a new
 * generation, and each worker starts that tenant's bucket afresh, full, at
 * its next frame: no bucket is inherited from an earlier limit or tenant.
 */
#ifndef FG_RATELIMIT_H
#define FG_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_common.h>

#define FG_RATE_SHIFT 16
/* Largest credit a bucket holds (about 13 hours of a 3 GHz TSC at any
 * rate); a burst larger than that many seconds' worth is cut to it. */
#define FG_RATE_CREDIT_MAX (UINT64_C(1) << 62)
/* Per-worker burst floor, in frames: one receive burst. */
#define FG_RATE_MIN_BURST 32
/* Burst when a limit gives none: a tenth of a second at the rate. */
#define FG_RATE_DEFAULT_BURST_DIV 10

/* A tenant's limit as the workers use it; derived from rate_pps and burst
 * by fg_rate_prepare when the tenant is published, read-only after. */
struct fg_rate {
	uint64_t cost;    /* 0: no limit. Scaled TSC cycles per frame at rate_pps */
	uint64_t cap;     /* burst * cost, saturated at FG_RATE_CREDIT_MAX */
	uint32_t floor;   /* per-worker capacity floor, frames */
	uint32_t gen;     /* the limit's generation, never 0 when cost != 0 */
};

/* One worker's bucket for one tenant slot. Written only by its worker. */
struct fg_rate_bucket {
	uint64_t credit;  /* scaled cycles of credit */
	uint64_t last;    /* TSC of the last refill */
	uint32_t gen;     /* generation of the limit filled under; 0: never */
	uint32_t pad;
} __rte_aligned(32);

/* Slow path: derive r from a limit of rate_pps frames per second (0: none)
 * and burst frames (0: rate_pps / FG_RATE_DEFAULT_BURST_DIV, at least 1)
 * on a TSC of tsc_hz. gen is stored as given. */
void fg_rate_prepare(struct fg_rate *r, uint64_t rate_pps, uint64_t burst,
		     uint64_t tsc_hz, uint32_t gen);

/* Take one frame from a worker's bucket for a limit shared by `shares`
 * workers, at TSC `now`. true: the frame may pass. The TSC may wrap: the
 * elapsed time is an unsigned difference. */
static inline bool
fg_rate_take(struct fg_rate_bucket *b, const struct fg_rate *r,
	     unsigned int shares, uint64_t now)
{
	uint64_t cost = r->cost * shares;          /* this worker's share */
	uint64_t cap = RTE_MAX(r->cap, (uint64_t)r->floor * cost);
	uint64_t credit;

	if (b->gen != r->gen) {
		/* A new limit or a new tenant: start full. */
		b->gen = r->gen;
		credit = cap;
	} else {
		uint64_t elapsed = now - b->last;

		/* Past the time that fills the bucket, it is full; below it,
		 * elapsed << FG_RATE_SHIFT cannot overflow. */
		credit = elapsed > (cap >> FG_RATE_SHIFT)
			? cap
			: RTE_MIN(cap, b->credit + (elapsed << FG_RATE_SHIFT));
	}
	b->last = now;
	if (credit < cost) {
		b->credit = credit;
		return false;
	}
	b->credit = credit - cost;
	return true;
}

#endif /* FG_RATELIMIT_H */
