/*
 * Fill a shield's maps from a mapping file through the control plane's own
 * path: the file is loaded into scratch tables whose ownership mirrors every
 * action into the shield (the same code a router runs). For the shield's
 * suite and bench, which need maps that hold a file and no router.
 */
#ifndef FG_SHIELD_FILL_H
#define FG_SHIELD_FILL_H

#include <framegate/error.h>

struct fg_shield;

/* 0, or -errno with err naming the file and line, or the map write that
 * failed. Needs EAL started (the scratch tables are rte_hash tables). */
int fg_shield_fill(struct fg_shield *s, const char *mapping_file, struct fg_err *err);

#endif
