/*
 * The drop reasons are named once (drop_reasons.def): the JSON keys are
 * exactly the spec's names, every one present even at zero, and the docs
 * table in docs/drop-reasons.md is the one generated from the list.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "stats.h"

/* SPEC 3, in check order. */
static const char *const spec_names[] = {
	"not_ip", "bad_l3", "ip_fragment", "not_udp", "not_frame", "bad_l4",
	"bad_header", "unknown_tenant", "tenant_suspended", "not_owned",
	"stale_epoch", "future_epoch", "auth_missing", "auth_failed",
	"sink_mismatch", "rate_limited", "store_stale",
};

Test(stats, reasons_are_the_spec_names_in_check_order)
{
	cr_assert_eq(FG_DROP_COUNT, sizeof(spec_names) / sizeof(spec_names[0]));
	for (int r = 1; r < FG_REASON_END; r++) {
		cr_expect_str_eq(fg_reason_name(r), spec_names[r - 1]);
		cr_expect_eq(fg_reason_by_name(spec_names[r - 1]), r);
	}
	cr_expect_eq(fg_reason_by_name("no_such_reason"), FG_PASS);
}

Test(stats, json_has_every_reason_with_its_count)
{
	struct fg_counter_totals t = { .rx_packets = 120, .forwarded_packets = 4 };
	json_t *j, *drops;
	uint64_t sum = t.forwarded_packets;

	for (int r = 1; r < FG_REASON_END; r++) {
		t.drops[r] = (uint64_t)r;      /* distinct per reason */
		sum += (uint64_t)r;
	}
	t.rx_packets = sum;
	j = fg_totals_to_json(&t);
	cr_assert_not_null(j);
	cr_expect_eq(json_integer_value(json_object_get(j, "rx_packets")), (json_int_t)sum);
	cr_expect_eq(json_integer_value(json_object_get(j, "forwarded_packets")), 4);
	drops = json_object_get(j, "drops");
	cr_assert(json_is_object(drops));
	cr_expect_eq(json_object_size(drops), FG_DROP_COUNT);
	for (int r = 1; r < FG_REASON_END; r++)
		cr_expect_eq(json_integer_value(json_object_get(drops, spec_names[r - 1])), r,
			     "%s", spec_names[r - 1]);
	json_decref(j);

	memset(&t, 0, sizeof(t));
	j = fg_totals_to_json(&t);
	cr_expect_eq(json_object_size(json_object_get(j, "drops")), FG_DROP_COUNT,
		     "zeros are listed too");
	json_decref(j);
}

Test(stats, docs_table_is_generated_from_the_list)
{
	char *gen = NULL, *doc = NULL;
	size_t glen = 0, dlen = 0;
	FILE *g = open_memstream(&gen, &glen);
	FILE *d = fopen(FG_TEST_DIR "/../docs/drop-reasons.md", "r");

	cr_assert_not_null(d, "docs/drop-reasons.md is missing");
	fg_reasons_markdown(g);
	fclose(g);
	fseek(d, 0, SEEK_END);
	dlen = (size_t)ftell(d);
	fseek(d, 0, SEEK_SET);
	doc = calloc(1, dlen + 1);
	cr_assert_eq(fread(doc, 1, dlen, d), dlen);
	fclose(d);
	cr_expect(strstr(doc, gen) != NULL,
		  "docs/drop-reasons.md does not hold the generated table; regenerate it "
		  "with `build/tools/fg-verdict --list-reasons`:\n%s", gen);
	free(gen);
	free(doc);
}
