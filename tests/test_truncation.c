/*
 * Every truncation of every forwarded vector packet is dropped, never
 * forwarded and never read past its end (this runs under ASan+UBSan in CI).
 * A packet cut inside the Ethernet header (or its VLAN tag) carries no
 * ethertype, so it is not_ip; cut anywhere later, the IP and UDP lengths no
 * longer fit and it is bad_l3 (or bad_l4/bad_header when only those notice).
 *
 * Each truncated packet is an exact-size heap buffer attached to an mbuf as
 * an external buffer, so under ASan any read past its end is caught.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "counters.h"
#include "mapfile.h"
#include "support.h"
#include "verdict.h"

static int
is_bad_reason(uint8_t r)
{
	return r == FG_DROP_bad_l3 || r == FG_DROP_bad_l4 ||
	       r == FG_DROP_bad_header;
}

Test(truncation, every_length_of_every_forwarded_vector_is_dropped)
{
	static struct fg_test_pkt pkts[FG_TEST_MAX_PKTS];
	static struct fg_test_expect exp[FG_TEST_MAX_PKTS];
	struct fg_test_env env;
	struct fg_engine eng;
	struct fg_counters *ctr;
	struct fg_counter_totals tot;
	struct fg_err err = { 0 };
	size_t np;
	unsigned long cases = 0, forwarded_vectors = 0;

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
		if (!exp[i].forward)
			continue;
		forwarded_vectors++;
		/* l2: where the ethertype that names IP ends. */
		uint32_t l2 = (pkts[i].data[12] == 0x81 && pkts[i].data[13] == 0x00) ? 18 : 14;

		for (uint32_t len = 0; len < pkts[i].len; len++) {
			/* An exact-size heap copy: ASan traps reads past it. */
			uint8_t *copy = malloc(len);
			struct rte_mbuf *m;
			struct fg_verdict v;

			memcpy(copy, pkts[i].data, len);
			m = fg_test_mbuf_ext(copy, len);
			fg_verdict_burst(&eng, ctr, &m, 1, &v);
			cr_expect_neq(v.reason, FG_PASS,
				      "packet %zu (%s) cut to %u bytes was forwarded",
				      i, exp[i].name, len);
			if (len < l2)
				cr_expect_eq(v.reason, FG_DROP_not_ip,
					     "packet %zu cut to %u: %s", i, len,
					     fg_reason_name(v.reason));
			else
				cr_expect(is_bad_reason(v.reason),
					  "packet %zu cut to %u: %s, expected a bad_* reason",
					  i, len, fg_reason_name(v.reason));
			rte_pktmbuf_free(m);
			free(copy);
			cases++;
		}
	}
	fg_counters_sum(&ctr, 1, &tot);
	cr_assert_eq(tot.forwarded_packets, 0);
	cr_assert_eq(tot.rx_packets, cases);
	cr_assert(fg_counters_conserved(&tot));
	cr_assert_gt(forwarded_vectors, 0);
	cr_log_info("truncation: %lu truncated packets from %lu forwarded vectors, none forwarded",
		    cases, forwarded_vectors);
	fg_counters_free(ctr);
	fg_test_free_pkts(pkts, np);
	fg_test_env_fini(&env);
}

/* The parser alone, on exact-size buffers with no mbuf around them. */
#include "parse.h"

Test(truncation, parser_reads_only_what_is_there)
{
	static struct fg_test_pkt pkts[FG_TEST_MAX_PKTS];
	size_t np = fg_test_read_pcap(fg_test_vector_path("packets.pcap"), pkts,
				      FG_TEST_MAX_PKTS);
	unsigned long n = 0;

	for (size_t i = 0; i < np; i++) {
		for (uint32_t len = 0; len <= pkts[i].len; len++) {
			uint8_t *copy = malloc(len);
			struct fg_parsed p;
			enum fg_reason r;

			memcpy(copy, pkts[i].data, len);
			r = fg_parse(copy, len, len, rte_cpu_to_be_16(FG_DEFAULT_FRAME_PORT), &p);
			if (len < pkts[i].len)
				cr_expect_neq(r, FG_PASS, "packet %zu cut to %u parsed", i, len);
			free(copy);
			n++;
		}
	}
	cr_assert_gt(n, np);
	fg_test_free_pkts(pkts, np);
}
