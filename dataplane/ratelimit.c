/*
 * Per-tenant rate limits, the slow path (see ratelimit.h): turning a limit
 * in frames per second into the per-frame cost and the bucket capacity the
 * workers use. Runs when a tenant is published, never per packet.
 */
#include "ratelimit.h"

void
fg_rate_prepare(struct fg_rate *r, uint64_t rate_pps, uint64_t burst,
		uint64_t tsc_hz, uint32_t gen)
{
	unsigned __int128 cost, cap;

	*r = (struct fg_rate){ .gen = gen };
	if (rate_pps == 0)
		return;                      /* no limit: cost 0 */
	if (burst == 0)
		burst = RTE_MAX(rate_pps / FG_RATE_DEFAULT_BURST_DIV, UINT64_C(1));
	/* Scaled cycles per frame; at least 1 so a frame always costs. */
	cost = ((unsigned __int128)tsc_hz << FG_RATE_SHIFT) / rate_pps;
	if (cost == 0)
		cost = 1;
	if (cost > FG_RATE_CREDIT_MAX / (FG_RATE_MIN_BURST * RTE_MAX_LCORE))
		cost = FG_RATE_CREDIT_MAX / (FG_RATE_MIN_BURST * RTE_MAX_LCORE);
	cap = cost * burst;
	r->cost = (uint64_t)cost;
	r->cap = cap > FG_RATE_CREDIT_MAX ? FG_RATE_CREDIT_MAX : (uint64_t)cap;
	r->floor = (uint32_t)RTE_MIN(burst, (uint64_t)FG_RATE_MIN_BURST);
}
