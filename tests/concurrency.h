/*
 * The readers-against-a-writer concurrency test body (see concurrency.c).
 */
#ifndef FG_TEST_CONCURRENCY_H
#define FG_TEST_CONCURRENCY_H

#include <stdio.h>

#include "counters.h"
#include "ownership.h"
#include "tables.h"

struct fg_conc_result {
	unsigned long moves, failed_moves;
	unsigned long packets, forwarded;
	unsigned long cross_tenant;   /* forwards whose tenants differ */
	unsigned long torn;           /* forwards under a mix of two states */
	unsigned long wrong_epoch;    /* forwards under another epoch */
	struct fg_counter_totals totals;   /* the reader's counters */
	char error[320];
};

/* Run `moves` moves against a reader of at least `packets` packets on fresh
 * tables (at least 16 tenants, 64 sinks, 2048 devices). 0 when it ran. */
int fg_conc_run(struct fg_tables *t, struct fg_ownership *o,
		unsigned long moves, unsigned long packets,
		struct fg_conc_result *res);
void fg_conc_print(const struct fg_conc_result *r, FILE *f);
/* Every promise held, and the run was not vacuous. */
int fg_conc_passed(const struct fg_conc_result *r, unsigned long moves,
		   unsigned long packets);

#endif
