/*
 * Counters as JSON (jansson), with the drop reasons' spec names as keys, and
 * the drop-reason table for the docs. Both come from drop_reasons.def.
 */
#ifndef FG_STATS_H
#define FG_STATS_H

#include <stdio.h>

#include <jansson.h>

#include "../dataplane/counters.h"

/* {"rx_packets":N,"forwarded_packets":N,"copies_sent":N,"tx_full":N,
 *  "drops":{"not_ip":N,...every reason, zeros included}}. New reference. */
json_t *fg_totals_to_json(const struct fg_counter_totals *t);

/* {"forwarded_packets":N,"drops":{...}} for one tenant's row. */
json_t *fg_tenant_row_to_json(const fg_tenant_row row);

/* The Markdown table of drop reasons (check order, name, meaning). */
void fg_reasons_markdown(FILE *f);

#endif /* FG_STATS_H */
