/*
 * A mapping file into a shield's maps (see shield_fill.h).
 */
#include <errno.h>
#include <stdio.h>

#include <rte_memory.h>

#include "mapfile.h"
#include "ownership.h"
#include "shield_fill.h"

int
fg_shield_fill(struct fg_shield *s, const char *mapping_file, struct fg_err *err)
{
	static unsigned int n;
	char name[17];
	struct fg_tables_config cfg = { .name = name, .max_tenants = 4096, .max_sinks = 4096,
					.max_devices = 65536, .max_readers = 1,
					.socket_id = SOCKET_ID_ANY };
	struct fg_tables *t;
	struct fg_ownership *o;
	int ret;

	snprintf(name, sizeof(name), "shfill%u", n++);
	t = fg_tables_create(&cfg);
	o = t ? fg_ownership_create(t) : NULL;
	if (o == NULL) {
		fg_tables_free(t);
		return fg_err_set(err, ENOMEM, "%s: no memory for scratch tables", mapping_file);
	}
	fg_ownership_set_shield(o, s);
	ret = fg_mapfile_load(o, mapping_file, NULL, err);
	if (ret == 0 && fg_ownership_shield_faults(o, err) != 0)
		ret = -(err->code ? err->code : EIO);
	fg_ownership_free(o);
	fg_tables_free(t);
	return ret;
}
