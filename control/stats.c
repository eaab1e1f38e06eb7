/*
 * Counters to JSON and the drop-reason docs table (see stats.h).
 */
#include "stats.h"

static json_t *
fg_drops_json(const uint64_t *drops)
{
	json_t *o = json_object();

	for (int r = 1; r < FG_REASON_END; r++)
		json_object_set_new(o, fg_reason_name(r), json_integer((json_int_t)drops[r]));
	return o;
}

json_t *
fg_totals_to_json(const struct fg_counter_totals *t)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:o}",
			 "rx_packets", (json_int_t)t->rx_packets,
			 "forwarded_packets", (json_int_t)t->forwarded_packets,
			 "copies_sent", (json_int_t)t->copies_sent,
			 "tx_full", (json_int_t)t->tx_full,
			 "drops", fg_drops_json(t->drops));
}

json_t *
fg_tenant_row_to_json(const fg_tenant_row row)
{
	return json_pack("{s:I, s:o}",
			 "forwarded_packets", (json_int_t)row[FG_TENANT_FORWARDED],
			 "drops", fg_drops_json(row));
}

void
fg_reasons_markdown(FILE *f)
{
	fprintf(f, "| # | reason | meaning |\n|---|---|---|\n");
	for (int r = 1; r < FG_REASON_END; r++)
		fprintf(f, "| %d | `%s` | %s |\n", r, fg_reason_name(r), fg_reason_doc(r));
}
