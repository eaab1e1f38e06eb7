/*
 * Packet counters, one block per worker, summed only when read. The block
 * also holds the worker's rate-limit buckets (check 10, ratelimit.h), which
 * share the counters' indexing by tenant slot and their owner: each is
 * written by its worker only and never summed.
 *
 * A worker is the only writer of its block; it bumps a counter with a relaxed
 * atomic store of the incremented value (a plain add and mov on x86, no lock
 * prefix), and readers load with relaxed atomics, so a sum taken while
 * workers run is made of whole values. Per-tenant counters are indexed by the
 * tenant's slot (struct fg_tenant.slot): column 0 counts forwarded packets,
 * column r counts drops for reason r.
 *
 * Conservation (SPEC 3) holds by construction: every packet the verdict
 * engine receives goes through fg_count_verdict() exactly once, which adds it
 * to rx and to exactly one of forwarded or drops[reason].
 */
#ifndef FG_COUNTERS_H
#define FG_COUNTERS_H

#include <stdint.h>

#include <rte_common.h>

#include <framegate/reasons.h>

#include "ratelimit.h"

#define FG_TENANT_FORWARDED 0   /* column of forwarded packets per tenant */

typedef uint64_t fg_tenant_row[FG_REASON_END];

struct fg_counters {
	uint64_t rx_packets;
	uint64_t forwarded_packets;
	uint64_t drops[FG_REASON_END];    /* [0] unused */
	uint64_t copies_sent;
	uint64_t tx_full;
	fg_tenant_row *tenant;            /* [max_tenants] */
	struct fg_rate_bucket *rate;      /* [max_tenants] */
	uint32_t max_tenants;
} __rte_cache_aligned;

/* Totals over all workers, in the same shape (tenant rows not included). */
struct fg_counter_totals {
	uint64_t rx_packets;
	uint64_t forwarded_packets;
	uint64_t drops[FG_REASON_END];
	uint64_t copies_sent;
	uint64_t tx_full;
};

static inline void
fg_ctr_add(uint64_t *c, uint64_t n)
{
	__atomic_store_n(c, *c + n, __ATOMIC_RELAXED);
}

static inline uint64_t
fg_ctr_read(const uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

/* Count one packet's verdict. tenant_slot is UINT32_MAX when the tenant is
 * not known (drops before check 5 and unknown_tenant). */
static inline void
fg_count_verdict(struct fg_counters *c, enum fg_reason r, uint32_t tenant_slot)
{
	fg_ctr_add(&c->rx_packets, 1);
	if (r == FG_PASS)
		fg_ctr_add(&c->forwarded_packets, 1);
	else
		fg_ctr_add(&c->drops[r], 1);
	if (tenant_slot < c->max_tenants)
		fg_ctr_add(&c->tenant[tenant_slot][r], 1);
}

/* Allocate / free one worker's block (NULL and rte_errno on failure). */
struct fg_counters *fg_counters_create(uint32_t max_tenants, int socket_id);
void fg_counters_free(struct fg_counters *c);

/* Sum n workers' blocks. */
void fg_counters_sum(struct fg_counters *const *workers, unsigned int n,
		     struct fg_counter_totals *out);

/* Sum one tenant slot's row over n workers. */
void fg_counters_sum_tenant(struct fg_counters *const *workers, unsigned int n,
			    uint32_t slot, fg_tenant_row out);

/* Does conservation hold? rx = forwarded + sum of drops. */
int fg_counters_conserved(const struct fg_counter_totals *t);

#endif /* FG_COUNTERS_H */
