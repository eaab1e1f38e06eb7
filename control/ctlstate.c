/*
 * The published control-plane state (see ctlstate.h).
 */
#define ALLOW_EXPERIMENTAL_API   /* rte_seqlock_* (DPDK 22.11) */
#include <stdlib.h>

#include <rte_seqlock.h>

#include "ctlstate.h"

/* The seqlock stays in this file: its API is experimental in DPDK 22.11. */
struct fg_ctl_state {
	rte_seqlock_t lock;
	struct fg_ctl_values v;
	struct fg_store_values store;
};

struct fg_ctl_state *
fg_ctl_state_create(void)
{
	struct fg_ctl_state *s = calloc(1, sizeof(*s));

	if (s != NULL)
		rte_seqlock_init(&s->lock);
	return s;
}

void
fg_ctl_state_free(struct fg_ctl_state *s)
{
	free(s);
}

void
fg_ctl_state_publish(struct fg_ctl_state *s, const struct fg_ctl_values *v)
{
	rte_seqlock_write_lock(&s->lock);
	s->v = *v;
	rte_seqlock_write_unlock(&s->lock);
}

void
fg_ctl_state_set_store(struct fg_ctl_state *s, const struct fg_store_values *st)
{
	rte_seqlock_write_lock(&s->lock);
	s->store = *st;
	rte_seqlock_write_unlock(&s->lock);
}

void
fg_ctl_state_read(const struct fg_ctl_state *s, struct fg_ctl_values *v,
		  struct fg_store_values *st)
{
	uint32_t sn;

	do {
		sn = rte_seqlock_read_begin(&s->lock);
		*v = s->v;
		*st = s->store;
	} while (rte_seqlock_read_retry(&s->lock, sn));
}
