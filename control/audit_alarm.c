/*
 * fg_audit_watch (see audit_alarm.h): read the workers' counters the way
 * `stats` does (relaxed loads of each worker's own block, summed here), off
 * the packet path, on the main thread that also serves the control socket.
 */
#include <stdio.h>
#include <stdlib.h>

#include <rte_cycles.h>
#include <rte_hash.h>

#include "../dataplane/router.h"
#include "audit_alarm.h"

void
fg_audit_watch(struct fg_audit_watch *w, struct fg_audit *a, const struct fg_router *r)
{
	struct fg_counters *ctr[RTE_MAX_LCORE];
	struct fg_audit_tenant *tenants;
	struct fg_counter_totals tot;
	struct fg_err err = { 0 };
	uint64_t now = rte_get_timer_cycles(), n;
	const void *key;
	void *data;
	size_t k = 0;
	uint32_t next = 0;

	if (a == NULL || now < w->next)
		return;
	w->next = now + rte_get_timer_hz();
	fg_router_totals(r, &tot);
	n = tot.drops[FG_DROP_sink_mismatch];
	if (n <= w->seen)
		return;
	for (unsigned int i = 0; i < r->n_workers; i++)
		ctr[i] = r->workers[i]->ctr;
	/* Each tenant's total, where the packet's tenant was known. */
	tenants = calloc((size_t)rte_hash_count(r->tables->tenants) + 1, sizeof(*tenants));
	while (tenants != NULL && rte_hash_iterate(r->tables->tenants, &key, &data, &next) >= 0) {
		const struct fg_tenant *tn = data;
		fg_tenant_row row;

		fg_counters_sum_tenant(ctr, r->n_workers, tn->slot, row);
		if (row[FG_DROP_sink_mismatch] != 0)
			tenants[k++] = (struct fg_audit_tenant){ tn->tenant_id,
								 row[FG_DROP_sink_mismatch] };
	}
	fprintf(stderr, "framegate: ALARM: %lu more packets had a sink of another tenant (%lu in all): the tables are corrupted\n",
		(unsigned long)(n - w->seen), (unsigned long)n);
	if (fg_audit_alarm(a, "sink_mismatch", n - w->seen, n, tenants, k, &err) != 0)
		fprintf(stderr, "framegate: ALARM: the sink_mismatch alarm is not in the audit log: %s\n",
			err.msg);
	else
		w->seen = n;
	free(tenants);
}
