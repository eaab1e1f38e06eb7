/*
 * The state as mapping-file op lines (see dump.c).
 */
#ifndef FG_DUMP_H
#define FG_DUMP_H

#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "ownership.h"

/* Receives one op line (no newline); 0 or -errno to stop. */
typedef int fg_dump_emit_fn(void *ctx, const char *line);

/* What a dump holds besides the mappings. */
enum {
	FG_DUMP_KEYS = 1 << 0,   /* device keys in clear; without it a keyed
				  * device's "key" is FG_KEY_WITHHELD */
};

/* Every op line of the state, or of one tenant (tenant != 0). 0 or -errno. */
int fg_dump(const struct fg_ownership *o, uint32_t tenant, unsigned int flags,
	    fg_dump_emit_fn *emit, void *ctx);

/* The whole state to a file, one line each, keys included (a journal
 * snapshot). */
int fg_dump_file(const struct fg_ownership *o, FILE *out);

/* A tenant, a sink, a device mapping as its op object (new reference). */
json_t *fg_tenant_json(const struct fg_tenant *e);
json_t *fg_sink_json(const struct fg_sink *e);
json_t *fg_device_json(const struct fg_device *e, unsigned int flags);

#endif /* FG_DUMP_H */
