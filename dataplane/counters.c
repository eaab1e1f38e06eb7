/*
 * Counter blocks and their sums (slow path: allocation and reading).
 */
#include <string.h>

#include <rte_errno.h>
#include <rte_malloc.h>

#include "counters.h"

struct fg_counters *
fg_counters_create(uint32_t max_tenants, int socket_id)
{
	struct fg_counters *c;

	c = rte_zmalloc_socket("fg_counters", sizeof(*c), RTE_CACHE_LINE_SIZE,
			       socket_id);
	if (c == NULL)
		goto nomem;
	c->tenant = rte_zmalloc_socket("fg_tenant_counters",
				       (size_t)max_tenants * sizeof(fg_tenant_row),
				       RTE_CACHE_LINE_SIZE, socket_id);
	c->rate = rte_zmalloc_socket("fg_rate_buckets",
				     (size_t)max_tenants * sizeof(struct fg_rate_bucket),
				     RTE_CACHE_LINE_SIZE, socket_id);
	if (c->tenant == NULL || c->rate == NULL)
		goto nomem;
	c->max_tenants = max_tenants;
	return c;
nomem:
	fg_counters_free(c);
	rte_errno = ENOMEM;
	return NULL;
}

void
fg_counters_free(struct fg_counters *c)
{
	if (c == NULL)
		return;
	rte_free(c->tenant);
	rte_free(c->rate);
	rte_free(c);
}

void
fg_counters_sum(struct fg_counters *const *workers, unsigned int n,
		struct fg_counter_totals *out)
{
	memset(out, 0, sizeof(*out));
	for (unsigned int w = 0; w < n; w++) {
		const struct fg_counters *c = workers[w];

		out->rx_packets += fg_ctr_read(&c->rx_packets);
		out->forwarded_packets += fg_ctr_read(&c->forwarded_packets);
		out->copies_sent += fg_ctr_read(&c->copies_sent);
		out->tx_full += fg_ctr_read(&c->tx_full);
		for (int r = 1; r < FG_REASON_END; r++)
			out->drops[r] += fg_ctr_read(&c->drops[r]);
	}
}

void
fg_counters_sum_tenant(struct fg_counters *const *workers, unsigned int n,
		       uint32_t slot, fg_tenant_row out)
{
	memset(out, 0, sizeof(fg_tenant_row));
	for (unsigned int w = 0; w < n; w++) {
		if (slot >= workers[w]->max_tenants)
			continue;
		for (int r = 0; r < FG_REASON_END; r++)
			out[r] += fg_ctr_read(&workers[w]->tenant[slot][r]);
	}
}

int
fg_counters_conserved(const struct fg_counter_totals *t)
{
	uint64_t sum = t->forwarded_packets;

	for (int r = 1; r < FG_REASON_END; r++)
		sum += t->drops[r];
	return sum == t->rx_packets;
}
