/*
 * The verdict engine (see verdict.h). A burst goes through three passes:
 *
 *   1. parse each packet (checks 1-4, parse.h), prefetching ahead;
 *   2. look up the claimed tenants and (tenant, device) mappings of the
 *      packets that parsed, in bulk, and prefetch the entries found;
 *   3. check each against its entries (checks 5-9, fg_check_mapping), then
 *      against its tenant's rate on this worker (check 10, fg_check_rate).
 *
 * Every packet leaves through fg_count_verdict() exactly once.
 */
#include <rte_branch_prediction.h>
#include <rte_cycles.h>
#include <rte_hash.h>
#include <rte_mbuf.h>
#include <rte_prefetch.h>

#include "auth.h"
#include "parse.h"
#include "verdict.h"

#define FG_PREFETCH_AHEAD 4

void
fg_engine_init(struct fg_engine *e, const struct fg_tables *t,
	       uint16_t frame_port)
{
	e->tables = t;
	e->frame_port_be = rte_cpu_to_be_16(frame_port);
	e->closed = NULL;
	e->rate_shares = 1;
}

/* SPEC 3 checks 5-9 for a packet that parsed, against the tenant and the
 * mapping its claimed ids found (NULL when absent). */
static inline enum fg_reason
fg_check_mapping(const struct fg_parsed *p, const struct fg_tenant *tn,
		 const struct fg_device *d)
{
	/* 5: the claimed tenant exists and is active. */
	if (unlikely(tn == NULL || fg_tenant_id_acquire(tn) != p->tenant_id))
		return FG_DROP_unknown_tenant;
	if (unlikely(tn->suspended))
		return FG_DROP_tenant_suspended;
	/* 6: the device is in the claimed tenant's table. The entry must
	 * itself say so: a key that found another mapping is no match. */
	if (unlikely(d == NULL || fg_device_tenant_acquire(d) != p->tenant_id ||
		     d->device_id != p->device_id))
		return FG_DROP_not_owned;
	/* 7: the packet's epoch equals the mapping's. */
	if (unlikely(p->epoch < d->epoch))
		return FG_DROP_stale_epoch;
	if (unlikely(p->epoch > d->epoch))
		return FG_DROP_future_epoch;
	/* 8: a mapping with a key requires a tag that verifies; a mapping
	 * without one does not look at the tag. */
	if (d->has_key) {
		if (unlikely(!(p->flags & FG_FLAG_AUTH)))
			return FG_DROP_auth_missing;
		if (unlikely(!fg_auth_verify(p->hdr, d->key)))
			return FG_DROP_auth_failed;
	}
	/* 9: every sink belongs to the packet's tenant. The control plane
	 * never installs anything else, so a failure here means corrupted
	 * state: the whole packet is dropped. */
	for (unsigned int s = 0; s < d->n_sinks; s++)
		if (unlikely(d->sinks[s]->tenant_id != p->tenant_id))
			return FG_DROP_sink_mismatch;
	return FG_PASS;
}

/* SPEC 3 check 10 for a packet that passed 1-9, of a tenant with a limit:
 * a frame from this worker's bucket of the tenant's rate (ratelimit.h). The
 * TSC is read once per burst, at the first limited packet (*now 0 before). */
static inline enum fg_reason
fg_check_rate(const struct fg_engine *e, struct fg_counters *c,
	      const struct fg_tenant *tn, uint64_t *now)
{
	if (unlikely(tn->slot >= c->max_tenants))
		return FG_PASS;   /* a test's block smaller than its tables; a
				   * router sizes its blocks by the tables */
	if (*now == 0)
		*now = rte_rdtsc();
	return fg_rate_take(&c->rate[tn->slot], &tn->rate, e->rate_shares, *now)
		? FG_PASS : FG_DROP_rate_limited;
}

/* Checks 5-10 for one parsed packet, then its count and verdict. Returns 1
 * when it passes. */
static inline uint16_t
fg_verdict_finish(const struct fg_engine *e, struct fg_counters *c,
		  struct fg_verdict *v, const struct fg_parsed *p,
		  const struct fg_tenant *tn, const struct fg_device *d,
		  uint64_t *now, bool closed)
{
	enum fg_reason r = fg_check_mapping(p, tn, d);

	/* After 9: a valid frame of a router closed for a stale store
	 * (before 10, so that it spends no tokens). */
	if (unlikely(closed) && r == FG_PASS)
		r = FG_DROP_store_stale;
	/* 10: only tenants with a limit pay for it. */
	if (r == FG_PASS && tn->rate.cost != 0)
		r = fg_check_rate(e, c, tn, now);

	fg_count_verdict(c, r, r != FG_DROP_unknown_tenant ? tn->slot
							  : UINT32_MAX);
	v->reason = (uint8_t)r;
	if (r != FG_PASS)
		return 0;
	v->dev = d;
	v->l3_off = p->l3_off;
	v->frame_off = p->frame_off;
	v->frame_len = p->frame_len;
	v->ip_version = p->ip_version;
	return 1;
}

uint16_t
fg_verdict_burst(const struct fg_engine *e, struct fg_counters *c,
		 struct rte_mbuf *const *pkts, uint16_t n, struct fg_verdict *v)
{
	const struct fg_tables *t = e->tables;
	struct fg_parsed p[FG_BURST_MAX];
	uint32_t tkeys[FG_BURST_MAX];
	struct fg_device_key dkeys[FG_BURST_MAX];
	const void *tkp[FG_BURST_MAX], *dkp[FG_BURST_MAX];
	void *tdata[FG_BURST_MAX], *ddata[FG_BURST_MAX];
	uint8_t idx[FG_BURST_MAX];
	uint64_t thit = 0, dhit = 0, now = 0;
	uint16_t np = 0, passed = 0;
	const bool closed = e->closed != NULL &&
			    __atomic_load_n(e->closed, __ATOMIC_ACQUIRE) != 0;

	if (unlikely(n > FG_BURST_MAX))
		n = FG_BURST_MAX;

	/* Pass 1: parse. */
	for (uint16_t i = 0; i < n && i < FG_PREFETCH_AHEAD; i++)
		rte_prefetch0(rte_pktmbuf_mtod(pkts[i], void *));
	for (uint16_t i = 0; i < n; i++) {
		const struct rte_mbuf *m = pkts[i];
		const uint8_t *data = rte_pktmbuf_mtod(m, const uint8_t *);
		uint32_t avail = m->data_len;
		uint8_t lin[FG_MAX_HEADERS_LEN];
		enum fg_reason r;

		if (i + FG_PREFETCH_AHEAD < n)
			rte_prefetch0(rte_pktmbuf_mtod(pkts[i + FG_PREFETCH_AHEAD],
						       void *));
		/* Headers split across segments are gathered; the tag is
		 * checked below, before lin goes out of scope. */
		if (unlikely(avail < m->pkt_len && avail < FG_MAX_HEADERS_LEN)) {
			avail = RTE_MIN(m->pkt_len, (uint32_t)FG_MAX_HEADERS_LEN);
			data = rte_pktmbuf_read(m, 0, avail, lin);
		}
		r = fg_parse(data, avail, m->pkt_len, e->frame_port_be, &p[i]);
		v[i].dev = NULL;
		v[i].reason = (uint8_t)r;
		if (r != FG_PASS) {
			fg_count_verdict(c, r, UINT32_MAX);
			continue;
		}
		if (unlikely(data == lin)) {
			/* Rare: multi-segment headers. Check now, one packet
			 * at a time, while the gathered copy exists. */
			passed += fg_verdict_finish(e, c, &v[i], &p[i],
				fg_tables_tenant(t, p[i].tenant_id),
				fg_tables_device(t, p[i].tenant_id, p[i].device_id),
				&now, closed);
			continue;
		}
		tkeys[np] = p[i].tenant_id;
		dkeys[np] = fg_device_key(p[i].tenant_id, p[i].device_id);
		tkp[np] = &tkeys[np];
		dkp[np] = &dkeys[np];
		idx[np++] = (uint8_t)i;
	}
	if (np == 0)
		return passed;

	/* Pass 2: bulk lookups, then prefetch what they found in two steps,
	 * so the misses of a whole burst overlap instead of queueing one
	 * packet after another: first the entries, then what they point to
	 * (the first sink, the tenant's counter row, a limited tenant's
	 * bucket). */
	rte_hash_lookup_bulk_data(t->tenants, tkp, np, &thit, tdata);
	rte_hash_lookup_bulk_data(t->devices, dkp, np, &dhit, ddata);
	for (uint16_t k = 0; k < np; k++) {
		if (thit & (1ULL << k))
			rte_prefetch0(tdata[k]);
		if (dhit & (1ULL << k))
			rte_prefetch0(ddata[k]);
	}
	for (uint16_t k = 0; k < np; k++) {
		/* Acquire first: see the publication order in tables.h. */
		if (dhit & (1ULL << k) && fg_device_tenant_acquire(ddata[k]) != 0)
			rte_prefetch0(((const struct fg_device *)ddata[k])->sinks[0]);
		if (thit & (1ULL << k) && fg_tenant_id_acquire(tdata[k]) != 0 &&
		    ((const struct fg_tenant *)tdata[k])->slot < c->max_tenants) {
			const struct fg_tenant *tn = tdata[k];

			rte_prefetch0(&c->tenant[tn->slot]);
			if (tn->rate.cost != 0)
				rte_prefetch0(&c->rate[tn->slot]);
		}
	}

	/* Pass 3: checks 5-10. */
	for (uint16_t k = 0; k < np; k++)
		passed += fg_verdict_finish(e, c, &v[idx[k]], &p[idx[k]],
					    (thit & (1ULL << k)) ? tdata[k] : NULL,
					    (dhit & (1ULL << k)) ? ddata[k] : NULL,
					    &now, closed);
	return passed;
}
