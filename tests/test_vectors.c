/*
 * The conformance vectors: every packet of packets.pcap, after mappings.jsonl
 * is loaded through the control-side API, gets exactly the verdict, reason
 * and sinks of expected.jsonl. Also: tests/vectors/ is byte-identical to
 * ../shared/vectors/ whenever that folder exists.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <criterion/criterion.h>

#include "counters.h"
#include "mapfile.h"
#include "support.h"
#include "verdict.h"

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	*len = fread(buf, 1, (size_t)n, f);
	fclose(f);
	return buf;
}

Test(vectors, copy_matches_shared)
{
	char shared[4096], mine[4096];
	struct dirent *de;
	unsigned int n = 0;
	DIR *d;

	snprintf(shared, sizeof(shared), "%s/../../shared/vectors", FG_TEST_DIR);
	d = opendir(shared);
	if (d == NULL)
		cr_skip_test("%s does not exist: nothing to compare with", shared);
	/* Every shared file has a byte-identical copy here... */
	while ((de = readdir(d)) != NULL) {
		char a[8192], b[8192];
		size_t la = 0, lb = 0;
		char *x, *y;

		if (de->d_name[0] == '.')
			continue;
		snprintf(a, sizeof(a), "%s/%s", shared, de->d_name);
		snprintf(b, sizeof(b), "%s", fg_test_vector_path(de->d_name));
		x = slurp(a, &la);
		y = slurp(b, &lb);
		cr_assert_not_null(x, "cannot read %s", a);
		cr_assert_not_null(y, "%s is in ../shared/vectors but not in tests/vectors: copy it",
				   de->d_name);
		cr_expect(la == lb && memcmp(x, y, la) == 0,
			  "tests/vectors/%s differs from ../shared/vectors/%s: copy the new version",
			  de->d_name, de->d_name);
		free(x);
		free(y);
		n++;
	}
	closedir(d);
	cr_assert_gt(n, 0, "no vector files in %s", shared);
	/* ...and nothing here is missing there. */
	snprintf(mine, sizeof(mine), "%s/vectors", FG_TEST_DIR);
	d = opendir(mine);
	cr_assert_not_null(d);
	while ((de = readdir(d)) != NULL) {
		char a[8192];
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		snprintf(a, sizeof(a), "%s/%s", shared, de->d_name);
		cr_expect(stat(a, &st) == 0,
			  "tests/vectors/%s is not in ../shared/vectors", de->d_name);
	}
	closedir(d);
}

static void
sink_addr(const struct fg_sink *s, char *buf, size_t len)
{
	inet_ntop(s->family, s->addr, buf, (socklen_t)len);
}

Test(vectors, every_packet_gets_its_expected_verdict)
{
	static struct fg_test_pkt pkts[FG_TEST_MAX_PKTS];
	static struct fg_test_expect exp[FG_TEST_MAX_PKTS];
	struct fg_test_env env;
	struct fg_engine eng;
	struct fg_counters *ctr;
	struct fg_counter_totals tot;
	struct fg_err err = { 0 };
	unsigned long line;
	size_t np, ne;
	unsigned int forwards = 0, drops = 0;

	fg_test_env_init(&env, 64, 64, 1024);
	cr_assert_eq(fg_mapfile_load(env.o, fg_test_vector_path("mappings.jsonl"),
				     &line, &err), 0, "load: %s", err.msg);
	np = fg_test_read_pcap(fg_test_vector_path("packets.pcap"), pkts,
			       FG_TEST_MAX_PKTS);
	ne = fg_test_read_expected(fg_test_vector_path("expected.jsonl"), exp,
				   FG_TEST_MAX_PKTS);
	cr_assert_gt(np, 0);
	cr_assert_eq(np, ne, "%zu packets but %zu expectations", np, ne);

	fg_engine_init(&eng, env.t, FG_DEFAULT_FRAME_PORT);
	ctr = fg_counters_create(64, SOCKET_ID_ANY);
	cr_assert_not_null(ctr);

	/* All packets in bursts of up to FG_BURST_MAX, as a worker would. */
	for (size_t base = 0; base < np; base += FG_BURST_MAX) {
		uint16_t n = (uint16_t)RTE_MIN((size_t)FG_BURST_MAX, np - base);
		struct rte_mbuf *m[FG_BURST_MAX];
		struct fg_verdict v[FG_BURST_MAX];

		for (uint16_t i = 0; i < n; i++)
			m[i] = fg_test_mbuf(pkts[base + i].data, pkts[base + i].len);
		fg_verdict_burst(&eng, ctr, m, n, v);
		for (uint16_t i = 0; i < n; i++) {
			const struct fg_test_expect *e = &exp[base + i];

			cr_assert_eq(e->i, base + i);
			if (!e->forward) {
				cr_expect_str_eq(fg_reason_name(v[i].reason), e->reason,
						 "packet %u (%s): got %s, expected drop %s",
						 e->i, e->name, fg_reason_name(v[i].reason),
						 e->reason);
				cr_expect_null(v[i].dev);
				drops++;
				continue;
			}
			cr_expect_eq(v[i].reason, FG_PASS,
				     "packet %u (%s): dropped as %s, expected forward",
				     e->i, e->name, fg_reason_name(v[i].reason));
			if (v[i].reason != FG_PASS)
				continue;
			forwards++;
			cr_expect_eq(v[i].dev->n_sinks, e->n_copies,
				     "packet %u (%s): %u sinks, expected %u", e->i,
				     e->name, v[i].dev->n_sinks, e->n_copies);
			for (unsigned int k = 0; k < e->n_copies && k < v[i].dev->n_sinks; k++) {
				const struct fg_sink *s = v[i].dev->sinks[k];
				char addr[64];

				sink_addr(s, addr, sizeof(addr));
				cr_expect_eq(s->sink_id, e->copies[k].sink, "packet %u sink", e->i);
				cr_expect_eq(s->tenant_id, e->copies[k].tenant, "packet %u tenant", e->i);
				cr_expect_str_eq(addr, e->copies[k].addr, "packet %u addr", e->i);
				cr_expect_eq(s->port, e->copies[k].port, "packet %u port", e->i);
				cr_expect_eq(s->egress, e->copies[k].egress, "packet %u egress", e->i);
			}
		}
		rte_pktmbuf_free_bulk(m, n);
	}

	/* The counters say the same, and conservation holds. */
	fg_counters_sum(&ctr, 1, &tot);
	cr_expect_eq(tot.rx_packets, np);
	cr_expect_eq(tot.forwarded_packets, forwards);
	cr_expect(fg_counters_conserved(&tot));
	for (int r = 1; r < FG_REASON_END; r++) {
		uint64_t want = 0;

		for (size_t i = 0; i < ne; i++)
			want += !exp[i].forward && strcmp(exp[i].reason, fg_reason_name(r)) == 0;
		cr_expect_eq(tot.drops[r], want, "%s: counted %lu, expected %lu",
			     fg_reason_name(r), (unsigned long)tot.drops[r],
			     (unsigned long)want);
	}
	cr_log_info("vectors: %zu packets, %u forwarded, %u dropped", np, forwards, drops);

	/* Per tenant: the rows add up to the totals for every reason counted
	 * once the tenant is known, and the suspended tenant's drop is its own. */
	fg_tenant_row row, sum = { 0 };
	const uint32_t tenants[] = { 7, 9, 11, 15 };

	for (size_t k = 0; k < sizeof(tenants) / sizeof(tenants[0]); k++) {
		const struct fg_tenant *tn = fg_tables_tenant(env.t, tenants[k]);

		cr_assert_not_null(tn);
		fg_counters_sum_tenant(&ctr, 1, tn->slot, row);
		for (int r = 0; r < FG_REASON_END; r++)
			sum[r] += row[r];
		if (tenants[k] == 15)
			cr_expect_eq(row[FG_DROP_tenant_suspended], 1);
		if (tenants[k] == 11)
			cr_expect_eq(row[FG_TENANT_FORWARDED], 0);
	}
	cr_expect_eq(sum[FG_TENANT_FORWARDED], tot.forwarded_packets);
	for (int r = FG_DROP_tenant_suspended; r < FG_REASON_END; r++)
		cr_expect_eq(sum[r], tot.drops[r], "per-tenant %s: %lu, total %lu",
			     fg_reason_name(r), (unsigned long)sum[r],
			     (unsigned long)tot.drops[r]);
	for (int r = 1; r < FG_DROP_tenant_suspended; r++)
		cr_expect_eq(sum[r], 0, "%s counted per tenant before the tenant is known",
			     fg_reason_name(r));

	fg_counters_free(ctr);
	fg_test_free_pkts(pkts, np);
	fg_test_env_fini(&env);
}

/* The same verdicts when the headers are split across two segments at every
 * possible point (the engine's gather path). */
Test(vectors, split_segments_give_the_same_verdicts)
{
	static struct fg_test_pkt pkts[FG_TEST_MAX_PKTS];
	static struct fg_test_expect exp[FG_TEST_MAX_PKTS];
	struct fg_test_env env;
	struct fg_engine eng;
	struct fg_counters *ctr;
	struct fg_err err = { 0 };
	size_t np;
	unsigned long checked = 0;

	fg_test_env_init(&env, 64, 64, 1024);
	cr_assert_eq(fg_mapfile_load(env.o, fg_test_vector_path("mappings.jsonl"),
				     NULL, &err), 0, "load: %s", err.msg);
	np = fg_test_read_pcap(fg_test_vector_path("packets.pcap"), pkts,
			       FG_TEST_MAX_PKTS);
	fg_test_read_expected(fg_test_vector_path("expected.jsonl"), exp,
			      FG_TEST_MAX_PKTS);
	fg_engine_init(&eng, env.t, FG_DEFAULT_FRAME_PORT);
	ctr = fg_counters_create(64, SOCKET_ID_ANY);

	for (size_t i = 0; i < np; i++) {
		for (uint32_t split = 1; split < pkts[i].len; split++) {
			struct rte_mbuf *m = fg_test_mbuf_split(pkts[i].data,
								pkts[i].len, split);
			struct fg_verdict v;

			fg_verdict_burst(&eng, ctr, &m, 1, &v);
			if (exp[i].forward)
				cr_expect_eq(v.reason, FG_PASS,
					     "packet %zu split at %u: %s", i, split,
					     fg_reason_name(v.reason));
			else
				cr_expect_str_eq(fg_reason_name(v.reason), exp[i].reason,
						 "packet %zu split at %u", i, split);
			rte_pktmbuf_free(m);
			checked++;
		}
	}
	cr_assert_gt(checked, np);
	fg_counters_free(ctr);
	fg_test_free_pkts(pkts, np);
	fg_test_env_fini(&env);
}
