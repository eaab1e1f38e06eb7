/*
 * The decision matrix: every combination of {tenant known, tenant active,
 * device known, device owned by the claimed tenant, epoch equal / lower /
 * higher, key present, tag present, tag valid, every sink of the tenant}
 * gives the forward SPEC 3 allows, or the reason of the first check that
 * fails, from the engine and from the reference model alike.
 *
 * "Every sink of the tenant" cannot be false through the control plane (it
 * refuses such a mapping), so that case is made the way it would happen:
 * by corrupting a published entry in place.
 */
#include <string.h>
#include <sys/socket.h>

#include <criterion/criterion.h>
#include <rte_mbuf.h>

#include "counters.h"
#include "framebuild.h"
#include "refmodel.h"
#include "support.h"
#include "verdict.h"

enum { T_CLAIMED = 1, T_OTHER = 2, T_SUSPENDED = 3, T_UNKNOWN = 99 };

static const uint8_t key[16] = { 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6 };

Test(matrix, every_combination_gets_the_spec_verdict)
{
	struct fg_test_env env;
	struct fg_engine eng;
	struct fg_counters *ctr;
	struct fg_err err = { 0 };
	struct ref_state ref = { .frame_port = FG_DEFAULT_FRAME_PORT };
	unsigned int combos = 0, forwards = 0, per_reason[FG_REASON_END] = { 0 };
	uint64_t dev = 0x5000;

	fg_test_env_init(&env, 16, 16, 1024);
	fg_engine_init(&eng, env.t, FG_DEFAULT_FRAME_PORT);
	ctr = fg_counters_create(16, SOCKET_ID_ANY);
	for (uint32_t t = 1; t <= 3; t++) {
		cr_assert_eq(fg_tenant_add(env.o, &(struct fg_tenant_spec){ .tenant_id = t }, &err), 0);
		cr_assert_eq(fg_sink_add(env.o, &(struct fg_sink_spec){ .sink_id = 10 * t, .tenant_id = t,
			.family = AF_INET, .addr = { 198, 51, 100, (uint8_t)t }, .port = 6000 }, &err), 0);
		ref.tenants[ref.n_tenants++] = (struct ref_tenant){ .id = t, .suspended = t == T_SUSPENDED };
		ref.sinks[ref.n_sinks++] = (struct ref_sink){ .id = 10 * t, .tenant = t };
	}
	cr_assert_eq(fg_tenant_set_suspended(env.o, T_SUSPENDED, true, &err), 0);
	fg_tables_sync(env.t);

	for (int known = 0; known < 2; known++)
	for (int active = 0; active < 2; active++)
	for (int dev_known = 0; dev_known < 2; dev_known++)
	for (int owned = 0; owned < 2; owned++)
	for (int epoch = 0; epoch < 3; epoch++)          /* equal, lower, higher */
	for (int has_key = 0; has_key < 2; has_key++)
	for (int tag = 0; tag < 2; tag++)
	for (int tag_ok = 0; tag_ok < 2; tag_ok++)
	for (int sinks_ok = 0; sinks_ok < 2; sinks_ok++) {
		uint32_t claimed = !known ? T_UNKNOWN : active ? T_CLAIMED : T_SUSPENDED;
		/* Who holds the device: the claimed tenant, another, or none. */
		uint32_t holder = !dev_known ? 0 : (owned && known) ? claimed : T_OTHER;
		struct fg_device *entry = NULL;
		const struct fg_sink *saved = NULL;
		enum fg_reason want;

		dev++;
		ref.n_mappings = 0;
		if (holder != 0) {
			struct fg_device_spec s = { .tenant_id = holder, .device_id = dev, .epoch = 10,
						    .has_key = has_key, .n_sinks = 1,
						    .sinks = { 10 * holder } };

			memcpy(s.key, key, 16);
			cr_assert_eq(fg_device_put(env.o, &s, &err), 0, "%s", err.msg);
			ref.mappings[ref.n_mappings++] = (struct ref_mapping){
				.tenant = holder, .device = dev, .epoch = 10, .has_key = has_key,
				.n_sinks = 1, .sinks = { 10 * holder } };
			memcpy(ref.mappings[0].key, key, 16);
			if (!sinks_ok) {
				/* Corruption: a sink of another tenant in place. */
				entry = (struct fg_device *)fg_tables_device(env.t, holder, dev);
				saved = entry->sinks[0];
				entry->sinks[0] = fg_tables_sink(env.t, holder == T_OTHER ? 10 * T_CLAIMED
											  : 10 * T_OTHER);
				ref.mappings[0].sinks[0] = entry->sinks[0]->sink_id;
			}
		}
		fg_tables_sync(env.t);

		/* The packet. */
		struct fg_frame_spec spec = { .ip_version = 4, .payload_len = 40,
					      .tenant_id = claimed, .device_id = dev,
					      .epoch = epoch == 0 ? 10 : epoch == 1 ? 9 : 11,
					      .key = tag ? key : NULL };
		uint8_t pkt[256];
		size_t len = fg_frame_build(&spec, pkt, sizeof(pkt));
		size_t off = fg_frame_offset(&spec);

		if (tag && !tag_ok)
			pkt[off + FG_HDR_LEN] ^= 0x5a;   /* a wrong tag */

		/* SPEC 3: the first check that fails, in order. */
		if (!known)
			want = FG_DROP_unknown_tenant;
		else if (!active)
			want = FG_DROP_tenant_suspended;
		else if (holder != claimed)
			want = FG_DROP_not_owned;
		else if (epoch == 1)
			want = FG_DROP_stale_epoch;
		else if (epoch == 2)
			want = FG_DROP_future_epoch;
		else if (has_key && !tag)
			want = FG_DROP_auth_missing;
		else if (has_key && !tag_ok)
			want = FG_DROP_auth_failed;
		else if (!sinks_ok)
			want = FG_DROP_sink_mismatch;
		else
			want = FG_PASS;

		struct rte_mbuf *m = fg_test_mbuf(pkt, (uint32_t)len);
		struct fg_verdict v;
		int mi;

		fg_verdict_burst(&eng, ctr, &m, 1, &v);
		int r = ref_verdict(&ref, pkt, len, &mi);

		cr_expect_eq(v.reason, want,
			     "known=%d active=%d dev_known=%d owned=%d epoch=%d key=%d tag=%d tag_ok=%d sinks_ok=%d: engine %s, spec %s",
			     known, active, dev_known, owned, epoch, has_key, tag, tag_ok, sinks_ok,
			     fg_reason_name(v.reason), fg_reason_name(want));
		cr_expect_eq(r, (int)want,
			     "known=%d active=%d dev_known=%d owned=%d epoch=%d key=%d tag=%d tag_ok=%d sinks_ok=%d: model %s, spec %s",
			     known, active, dev_known, owned, epoch, has_key, tag, tag_ok, sinks_ok,
			     fg_reason_name(r), fg_reason_name(want));
		if (want == FG_PASS) {
			cr_expect_eq(v.dev->tenant_id, claimed);
			cr_expect_eq(v.dev->sinks[0]->tenant_id, claimed);
			forwards++;
		}
		per_reason[want]++;
		combos++;
		rte_pktmbuf_free(m);

		if (entry != NULL)
			entry->sinks[0] = saved;
		if (holder != 0)
			cr_assert_eq(fg_device_del(env.o, holder, dev, &err), 0, "%s", err.msg);
	}
	cr_assert_eq(combos, 2 * 2 * 2 * 2 * 3 * 2 * 2 * 2 * 2);
	cr_expect_gt(forwards, 0);
	for (int r = FG_DROP_unknown_tenant; r <= FG_DROP_sink_mismatch; r++)
		cr_expect_gt(per_reason[r], 0, "no combination reached %s", fg_reason_name(r));
	fg_counters_free(ctr);
	fg_test_env_fini(&env);
}

/* The model agrees with the engine on every vector, and on every
 * truncation of every vector. */
Test(matrix, the_model_agrees_on_the_vectors)
{
	static struct fg_test_pkt pkts[FG_TEST_MAX_PKTS];
	static struct fg_test_expect exp[FG_TEST_MAX_PKTS];
	size_t np = fg_test_read_pcap(fg_test_vector_path("packets.pcap"), pkts, FG_TEST_MAX_PKTS);
	struct ref_state ref = { .frame_port = FG_DEFAULT_FRAME_PORT };
	unsigned long checked = 0;

	fg_test_read_expected(fg_test_vector_path("expected.jsonl"), exp, FG_TEST_MAX_PKTS);
	/* The vectors' mappings, final state, by hand from mappings.jsonl. */
	const uint32_t tenants[] = { 7, 9, 11, 15 };

	for (int i = 0; i < 4; i++)
		ref.tenants[ref.n_tenants++] = (struct ref_tenant){ .id = tenants[i],
								    .suspended = tenants[i] == 15 };
	const uint32_t sinks[][2] = { { 70, 7 }, { 71, 7 }, { 90, 9 }, { 110, 11 }, { 150, 15 } };

	for (int i = 0; i < 5; i++)
		ref.sinks[ref.n_sinks++] = (struct ref_sink){ .id = sinks[i][0], .tenant = sinks[i][1] };
	ref.mappings[ref.n_mappings++] = (struct ref_mapping){ .tenant = 7, .device = 0xa1, .epoch = 1,
							       .n_sinks = 1, .sinks = { 70 } };
	ref.mappings[ref.n_mappings] = (struct ref_mapping){ .tenant = 7, .device = 0xa2, .epoch = 3,
							     .has_key = true, .n_sinks = 2, .sinks = { 70, 71 } };
	for (int i = 0; i < 16; i++)
		ref.mappings[ref.n_mappings].key[i] = (uint8_t)i;
	ref.n_mappings++;
	ref.mappings[ref.n_mappings++] = (struct ref_mapping){ .tenant = 9, .device = 0xb1, .epoch = 1,
							       .n_sinks = 1, .sinks = { 90 } };
	ref.mappings[ref.n_mappings++] = (struct ref_mapping){ .tenant = 11, .device = 0xc1, .epoch = 5,
							       .n_sinks = 1, .sinks = { 110 } };
	ref.mappings[ref.n_mappings++] = (struct ref_mapping){ .tenant = 7, .device = 0xb2, .epoch = 2,
							       .n_sinks = 1, .sinks = { 70 } };
	ref.mappings[ref.n_mappings++] = (struct ref_mapping){ .tenant = 15, .device = 0xd1, .epoch = 1,
							       .n_sinks = 1, .sinks = { 150 } };
	for (size_t i = 0; i < np; i++) {
		int m, r = ref_verdict(&ref, pkts[i].data, pkts[i].len, &m);

		if (exp[i].forward)
			cr_expect_eq(r, 0, "vector %zu (%s): model says %s", i, exp[i].name,
				     fg_reason_name(r));
		else
			cr_expect_str_eq(fg_reason_name(r), exp[i].reason, "vector %zu (%s)", i,
					 exp[i].name);
		for (uint32_t len = 0; len < pkts[i].len; len++, checked++)
			cr_expect_neq(ref_verdict(&ref, pkts[i].data, len, &m), 0,
				      "vector %zu cut to %u forwarded by the model", i, len);
	}
	cr_assert_gt(checked, np);
	fg_test_free_pkts(pkts, np);
}
