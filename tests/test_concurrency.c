/*
 * Readers against a writer, in the suite: see concurrency.c for what runs.
 * FG_CONC_MOVES and FG_CONC_PACKETS in the environment change the sizes
 * (defaults: 100,000 moves, 10,000,000 packets).
 */
#include <stdlib.h>

#include <criterion/criterion.h>

#include "concurrency.h"
#include "support.h"

static unsigned long
env_size(const char *name, unsigned long dflt)
{
	const char *s = getenv(name);

	return s != NULL && *s != '\0' ? strtoul(s, NULL, 10) : dflt;
}

Test(concurrency, moves_under_readers_never_cross_tenants, .timeout = 900)
{
	unsigned long moves = env_size("FG_CONC_MOVES", 100000);
	unsigned long packets = env_size("FG_CONC_PACKETS", 10000000);
	struct fg_conc_result r;
	struct fg_test_env env;

	fg_test_env_init(&env, 16, 64, 2048);
	cr_assert_eq(fg_conc_run(env.t, env.o, moves, packets, &r), 0, "%s", r.error);
	fg_conc_print(&r, stderr);
	cr_expect_eq(r.failed_moves, 0, "%lu moves were refused", r.failed_moves);
	cr_expect_eq(r.moves, moves);
	cr_expect_geq(r.packets, packets);
	cr_expect_eq(r.cross_tenant, 0, "cross-tenant verdicts");
	cr_expect_eq(r.torn, 0, "forwards under a mix of two states");
	cr_expect_eq(r.wrong_epoch, 0, "forwards under another epoch");
	cr_expect_eq(r.totals.drops[FG_DROP_sink_mismatch], 0);
	cr_expect_eq(r.totals.rx_packets, r.packets);
	cr_expect_eq(r.totals.forwarded_packets, r.forwarded);
	cr_expect(fg_counters_conserved(&r.totals));
	/* Not vacuous: wrong tenants and old epochs were sent and dropped,
	 * and most packets, claiming the current owner, passed. */
	cr_expect_gt(r.totals.drops[FG_DROP_not_owned], 0);
	cr_expect_gt(r.totals.drops[FG_DROP_stale_epoch], 0);
	cr_expect_gt(r.forwarded, r.packets / 4, "only %lu of %lu forwarded",
		     r.forwarded, r.packets);
	cr_expect(fg_conc_passed(&r, moves, packets));
	fg_test_env_fini(&env);
}
