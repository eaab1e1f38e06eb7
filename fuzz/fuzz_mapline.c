/*
 * libFuzzer: mapping-file lines (and control requests' ops, the same
 * decoder) through fg_op_parse, then checked and applied on small tables.
 * Whatever the input: no crash, and a refused operation changes nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dump.h"
#include "eal_quick.h"
#include "mapfile.h"

static struct fg_ownership *own;
static struct fg_tables *tables;

/* Free what Initialize made, so LeakSanitizer reports only real leaks. */
static void
fuzz_fini(void)
{
	fg_ownership_free(own);
	fg_tables_free(tables);
}

static int
count(void *ctx, const char *line)
{
	(void)line;
	(*(unsigned long *)ctx)++;
	return 0;
}

static unsigned long
state(void)
{
	unsigned long n = 0;

	fg_dump(own, 0, FG_DUMP_KEYS, count, &n);
	return n;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct fg_tables_config cfg = { .name = "fuzzm", .max_tenants = 256, .max_sinks = 256,
					.max_devices = 256, .max_readers = 1,
					.socket_id = SOCKET_ID_ANY };
	struct fg_err err = { 0 };
	struct fg_tables *t;

	(void)argc;
	(void)argv;
	if (fg_eal_quick_start("fgfuzzm", 256) != 0)
		abort();
	atexit(fuzz_fini);        /* runs before EAL's own clean-up */
	t = tables = fg_tables_create(&cfg);
	own = t ? fg_ownership_create(t) : NULL;
	if (own == NULL || fg_mapfile_load(own, FG_VECTORS "/mappings.jsonl", NULL, &err) != 0)
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fg_err err = { 0 };
	struct fg_op op;
	unsigned long before;

	if (fg_op_parse((const char *)data, size, &op, &err) != 0)
		return 0;
	before = state();
	if (fg_ops_apply_all(own, &op, 1, NULL, &err) != 0 && state() != before) {
		fprintf(stderr, "a refused operation changed the state: %s\n", err.msg);
		abort();
	}
	return 0;
}
