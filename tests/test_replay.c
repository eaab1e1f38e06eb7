/*
 * `framegate replay` on the conformance vectors, as an operator runs it: the
 * real program on a net_pcap port. STATS.json counts exactly the expected
 * reasons, and OUT.pcap holds exactly the expected copies, in order: the
 * destination address, port and family of each sink, the frame header and
 * payload byte for byte, fresh and valid headers. Also: a bad start (missing
 * or malformed configuration, mapping file or capture) is refused with a
 * message that names the file and the problem.
 */
#define ALLOW_EXPERIMENTAL_API   /* rte_ipv*_udptcp_cksum_verify */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include "parse.h"
#include "support.h"

static char dir[64];

static void
setup(void)
{
	fg_test_tmpdir(dir, sizeof(dir), "fg_replay_test");
}

static void
teardown(void)
{
	fg_test_rmdir(dir);
}


TestSuite(replay, .init = setup, .fini = teardown, .timeout = 120);

Test(replay, vectors_give_the_expected_stats_and_copies)
{
	static struct fg_test_pkt in[FG_TEST_MAX_PKTS], out[FG_TEST_MAX_PKTS];
	static struct fg_test_expect exp[FG_TEST_MAX_PKTS];
	char cmd[10240], log[8192], outp[128], stats[128];
	size_t nin, nout, ne, k = 0;
	uint64_t expected_copies = 0;
	json_error_t jerr;
	json_t *st, *drops;

	snprintf(outp, sizeof(outp), "%s/out.pcap", dir);
	snprintf(stats, sizeof(stats), "%s/stats.json", dir);
	char map[4096], pcap[4096];

	snprintf(map, sizeof(map), "%s", fg_test_vector_path("mappings.jsonl"));
	snprintf(pcap, sizeof(pcap), "%s", fg_test_vector_path("packets.pcap"));
	snprintf(cmd, sizeof(cmd), "%s replay --mappings %s --in %s --out %s --stats %s",
		 FG_FRAMEGATE, map, pcap, outp, stats);
	cr_assert_eq(fg_test_run(cmd, log, sizeof(log)), 0, "%s\n%s", cmd, log);

	nin = fg_test_read_pcap(fg_test_vector_path("packets.pcap"), in, FG_TEST_MAX_PKTS);
	ne = fg_test_read_expected(fg_test_vector_path("expected.jsonl"), exp, FG_TEST_MAX_PKTS);
	cr_assert_eq(nin, ne);

	/* STATS.json: every reason's count, zeros included; conservation. */
	st = json_load_file(stats, 0, &jerr);
	cr_assert_not_null(st, "%s: %s", stats, jerr.text);
	drops = json_object_get(st, "drops");
	cr_assert_eq(json_object_size(drops), FG_DROP_COUNT);
	for (int r = 1; r < FG_REASON_END; r++) {
		json_int_t want = 0;

		for (size_t i = 0; i < ne; i++)
			want += !exp[i].forward && strcmp(exp[i].reason, fg_reason_name(r)) == 0;
		cr_expect_eq(json_integer_value(json_object_get(drops, fg_reason_name(r))), want,
			     "%s", fg_reason_name(r));
	}
	json_int_t fwd = 0, sum = 0;

	for (size_t i = 0; i < ne; i++) {
		fwd += exp[i].forward;
		expected_copies += exp[i].n_copies;
	}
	cr_expect_eq(json_integer_value(json_object_get(st, "rx_packets")), (json_int_t)nin);
	cr_expect_eq(json_integer_value(json_object_get(st, "forwarded_packets")), fwd);
	sum = json_integer_value(json_object_get(st, "forwarded_packets"));
	for (int r = 1; r < FG_REASON_END; r++)
		sum += json_integer_value(json_object_get(drops, fg_reason_name(r)));
	cr_expect_eq(sum, (json_int_t)nin, "conservation");
	cr_expect_eq(json_integer_value(json_object_get(st, "copies_sent")) +
		     json_integer_value(json_object_get(st, "tx_full")),
		     (json_int_t)expected_copies);
	cr_expect_eq(json_integer_value(json_object_get(st, "tx_full")), 0);
	json_decref(st);

	/* OUT.pcap: the expected copies, in order. */
	nout = fg_test_read_pcap(outp, out, FG_TEST_MAX_PKTS);
	cr_assert_eq(nout, expected_copies, "%zu copies, expected %lu", nout,
		     (unsigned long)expected_copies);
	for (size_t i = 0; i < ne; i++) {
		struct fg_parsed p;

		if (!exp[i].forward)
			continue;
		cr_assert_eq(fg_parse(in[i].data, in[i].len, in[i].len,
				      rte_cpu_to_be_16(FG_DEFAULT_FRAME_PORT), &p), FG_PASS);
		for (unsigned int c = 0; c < exp[i].n_copies; c++, k++) {
			const struct fg_test_copy *want = &exp[i].copies[c];
			const uint8_t *o = out[k].data;
			struct fg_parsed q;
			uint8_t addr[16];
			int v6 = strchr(want->addr, ':') != NULL;

			/* A copy goes to the sink's port: parse it as such. */
			cr_assert_eq(fg_parse(o, out[k].len, out[k].len,
					      rte_cpu_to_be_16(want->port), &q),
				     FG_PASS, "copy %zu does not parse as a frame to port %u",
				     k, want->port);
			/* Ethernet: to the default next hop. */
			cr_expect(memcmp(o, "\x02\x00\x00\x00\x00\x01", 6) == 0, "copy %zu eth dst", k);
			cr_expect_eq(q.ip_version, v6 ? 6 : 4, "copy %zu family", k);
			cr_assert_eq(inet_pton(v6 ? AF_INET6 : AF_INET, want->addr, addr), 1);
			if (v6) {
				const struct rte_ipv6_hdr *ip6 = (const void *)(o + q.l3_off);
				const struct rte_udp_hdr *u = (const void *)(ip6 + 1);
				uint8_t src[16];

				inet_pton(AF_INET6, "2001:db8::1", src);
				cr_expect(memcmp(ip6->dst_addr, addr, 16) == 0, "copy %zu dst", k);
				cr_expect(memcmp(ip6->src_addr, src, 16) == 0, "copy %zu src", k);
				cr_expect_eq(ip6->hop_limits, 64);
				cr_expect_eq(rte_be_to_cpu_16(u->dst_port), want->port);
				cr_expect_eq(rte_be_to_cpu_16(u->src_port), FG_DEFAULT_FRAME_PORT);
				cr_expect_neq(u->dgram_cksum, 0, "copy %zu: IPv6 needs a UDP checksum", k);
				cr_expect_eq(rte_ipv6_udptcp_cksum_verify(ip6, u), 0,
					     "copy %zu: UDP checksum wrong", k);
			} else {
				const struct rte_ipv4_hdr *ip = (const void *)(o + q.l3_off);
				const struct rte_udp_hdr *u = (const void *)(ip + 1);

				cr_expect(memcmp(&ip->dst_addr, addr, 4) == 0, "copy %zu dst", k);
				cr_expect_eq(ip->src_addr, RTE_BE32(0xc0000201), "copy %zu src", k);
				cr_expect_eq(ip->time_to_live, 64);
				cr_expect_eq(rte_raw_cksum(ip, sizeof(*ip)), 0xffff,
					     "copy %zu: IPv4 header checksum wrong", k);
				cr_expect_eq(rte_be_to_cpu_16(u->dst_port), want->port);
				cr_expect_eq(rte_be_to_cpu_16(u->src_port), FG_DEFAULT_FRAME_PORT);
				cr_expect(u->dgram_cksum == 0 ||
					  rte_ipv4_udptcp_cksum_verify(ip, u) == 0,
					  "copy %zu: UDP checksum wrong", k);
			}
			/* The frame, header and payload, byte for byte. */
			cr_expect_eq(q.frame_len, p.frame_len, "copy %zu frame length", k);
			cr_expect(q.frame_len == p.frame_len &&
				  memcmp(o + q.frame_off, in[i].data + p.frame_off, p.frame_len) == 0,
				  "copy %zu (packet %zu, %s): frame bytes differ", k, i, exp[i].name);
			cr_expect_eq(out[k].len, q.frame_off + q.frame_len,
				     "copy %zu has bytes after the frame", k);
		}
	}
	fg_test_free_pkts(in, nin);
	fg_test_free_pkts(out, nout);
}

/* Bad starts: each refused with exit status 1 and a message naming the
 * file and the problem. In args, V stands for the vectors folder and D for
 * this test's folder, where `bad` holds file_text. */
struct bad_start {
	const char *file_text;       /* written to D/bad (NULL: not created) */
	const char *args;
	const char *needle;          /* must appear in the message */
};

static const struct bad_start bad_starts[] = {
	{ NULL, "replay --mappings V/mappings.jsonl --in D/missing.pcap --out D/o.pcap",
	  "missing.pcap" },
	{ NULL, "replay --mappings D/missing.jsonl --in V/packets.pcap --out D/o.pcap",
	  "missing.jsonl: No such file or directory" },
	{ "{\"op\":\"tenant\",\"tenant\":1}\n{\"op\":\"tenant\",\"tenant\":\"x\"}\n",
	  "replay --mappings D/bad --in V/packets.pcap --out D/o.pcap",
	  "bad:2: op \"tenant\": field \"tenant\" must be an integer" },
	{ "{\"ports\": [ {\"port\": 0,, } ]}\n",
	  "replay --config D/bad --mappings V/mappings.jsonl --in V/packets.pcap --out D/o.pcap",
	  "bad:1:" },
	{ "{\"ports\": [{\"port\": 0, \"role\": \"both\", \"next_hop_mac\": \"02:00:00:00:00:01\",\n"
	  "  \"ipv4\": \"300.0.0.1\"}]}\n",
	  "replay --config D/bad --mappings V/mappings.jsonl --in V/packets.pcap --out D/o.pcap",
	  "bad: ports[0].ipv4: not an IPv4 address" },
	{ "{\"ports\": [{\"port\": 0, \"colour\": 1}]}\n",
	  "replay --config D/bad --mappings V/mappings.jsonl --in V/packets.pcap --out D/o.pcap",
	  "unknown setting \"colour\"" },
	{ "{\"idle_sleep_us\": 200000, \"ports\": [{\"port\": 0}]}\n",
	  "replay --config D/bad --mappings V/mappings.jsonl --in V/packets.pcap --out D/o.pcap",
	  "bad: idle_sleep_us: must be an integer from 0 to 100000" },
	{ "{\"store\": {\"endpoints\": \"http://127.0.0.1:2379\", \"transport\": \"pigeon\"}, \"ports\": [{\"port\": 0, \"role\": \"ingress\"}]}\n",
	  "replay --config D/bad --mappings V/mappings.jsonl --in V/packets.pcap --out D/o.pcap",
	  "store.transport: must be \"grpc\"" },
	{ NULL, "replay --config D/nope.json --mappings V/mappings.jsonl --in V/packets.pcap --out D/o.pcap",
	  "nope.json: No such file or directory" },
};

/* args with V and D (standing alone before a slash) expanded. */
static void
expand(const char *args, const char *v, const char *d, char *out, size_t len)
{
	size_t n = 0;

	for (const char *p = args; *p && n + 1 < len; p++) {
		const char *rep = NULL;

		if ((*p == 'V' || *p == 'D') && p[1] == '/' && (p == args || p[-1] == ' '))
			rep = *p == 'V' ? v : d;
		if (rep != NULL)
			n += (size_t)snprintf(out + n, len - n, "%s", rep);
		else
			out[n++] = *p;
	}
	out[n < len ? n : len - 1] = '\0';
}

Test(replay, a_bad_start_names_the_file_and_the_problem)
{
	char vec[4096];

	snprintf(vec, sizeof(vec), "%s", fg_test_vector_path(""));
	vec[strlen(vec) - 1] = '\0';            /* no trailing slash */
	for (size_t i = 0; i < sizeof(bad_starts) / sizeof(bad_starts[0]); i++) {
		const struct bad_start *b = &bad_starts[i];
		char args[4096], cmd[8192], log[8192], path[160];
		int st;

		snprintf(path, sizeof(path), "%s/bad", dir);
		unlink(path);
		if (b->file_text != NULL) {
			FILE *f = fopen(path, "w");

			cr_assert_not_null(f);
			fputs(b->file_text, f);
			fclose(f);
		}
		expand(b->args, vec, dir, args, sizeof(args));
		snprintf(cmd, sizeof(cmd), "%s %s", FG_FRAMEGATE, args);
		st = fg_test_run(cmd, log, sizeof(log));
		cr_expect_eq(st, 1, "case %zu: exit %d\n%s\n%s", i, st, cmd, log);
		cr_expect(strstr(log, b->needle) != NULL,
			  "case %zu: the message does not say \"%s\":\n%s", i, b->needle, log);
		cr_expect(strstr(log, "EAL:") == NULL, "case %zu: EAL noise:\n%s", i, log);
	}
}

Test(replay, usage_errors_exit_2)
{
	char log[8192];

	cr_expect_eq(fg_test_run(FG_FRAMEGATE " replay --in x.pcap", log, sizeof(log)), 2, "%s", log);
	cr_expect(strstr(log, "--mappings, --in and --out are required") != NULL, "%s", log);
	cr_expect_eq(fg_test_run(FG_FRAMEGATE " --help", log, sizeof(log)), 0, "%s", log);
	cr_expect(strstr(log, "framegate replay --mappings FILE") != NULL, "%s", log);
}
