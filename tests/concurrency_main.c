/*
 * The concurrency test as a plain program, for ThreadSanitizer (Criterion's
 * sandbox cannot start under TSan). Usage: fg_concurrency [MOVES [PACKETS]].
 * Exits 0 when every promise held; prints the counts either way.
 */
#include <stdlib.h>

#include <rte_errno.h>

#include "concurrency.h"
#include "eal_quick.h"

int
main(int argc, char **argv)
{
	unsigned long moves = argc > 1 ? strtoul(argv[1], NULL, 10) : 100000;
	unsigned long packets = argc > 2 ? strtoul(argv[2], NULL, 10) : 10000000;
	struct fg_tables_config cfg = {
		.name = "conc", .max_tenants = 16, .max_sinks = 64,
		.max_devices = 2048, .max_readers = 4, .socket_id = SOCKET_ID_ANY,
	};
	struct fg_conc_result r;
	struct fg_ownership *o;
	struct fg_tables *t;
	int ok;

	if (fg_eal_quick_start("fgconc", 512) != 0)
		return 2;
	t = fg_tables_create(&cfg);
	o = t ? fg_ownership_create(t) : NULL;
	if (o == NULL) {
		fprintf(stderr, "tables: %s\n", rte_strerror(rte_errno));
		return 2;
	}
	fg_conc_run(t, o, moves, packets, &r);
	fg_conc_print(&r, stdout);
	ok = fg_conc_passed(&r, moves, packets);
	printf("%s\n", ok ? "PASS" : "FAIL");
	fg_ownership_free(o);
	fg_tables_free(t);
	return ok ? 0 : 1;
}
