/*
 * The tools, run as built programs: fg-gen gives the same files for the same
 * options and seed and other files for another seed; its adversarial shares
 * come out of `framegate replay` as exactly the drop reasons they stand for,
 * and its valid packets as the forwarded ones; fg-audit finds no
 * cross-tenant delivery in that replay's output, and does find one when a
 * single copy (IPv4 or IPv6, checksums made right again) is redirected to
 * another tenant's sink, and a copy with a wrong IPv4 header checksum. Bad
 * inputs exit 3 naming the file (and line), usage errors exit 2, so a test
 * that expects fg-audit's 1 for a leak cannot pass on a typo.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>
#include <pcap/pcap.h>
#include <rte_byteorder.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include <framegate/wire.h>

#include "support.h"

static char dir[64];

static void
setup(void)
{
	fg_test_tmpdir(dir, sizeof(dir), "fg_tools_test");
}

static void
teardown(void)
{
	fg_test_rmdir(dir);
}


/* A file of this test's folder (one of four rotating buffers). */
static const char *
at(const char *name)
{
	static char buf[4][160];
	static unsigned int k;
	char *p = buf[k++ % 4];

	snprintf(p, sizeof(buf[0]), "%s/%s", dir, name);
	return p;
}

/* The whole file, NUL-terminated; *len its size. */
static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	cr_assert_not_null(f, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n, "cannot read %s", path);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static bool
same_bytes(const char *a, const char *b)
{
	size_t la, lb;
	char *x = slurp(a, &la), *y = slurp(b, &lb);
	bool same = la == lb && memcmp(x, y, la) == 0;

	free(x);
	free(y);
	return same;
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f, "cannot create %s", path);
	fputs(text, f);
	fclose(f);
}

/* Every adversarial kind, two sinks per device, a few thousand packets. */
#define GEN_ARGS "--tenants 20 --devices 1000 --packets 4000 --fanout 2 " \
	"--spoofed 0.05 --stale 0.05 --unauth 0.05 --malformed 0.05 --seed 11"

/* fg-gen into in.pcap, m.jsonl, expect.jsonl; framegate replay into
 * out.pcap and stats.json. */
static void
gen_and_replay(void)
{
	char cmd[2048], log[16384];
	int st;

	snprintf(cmd, sizeof(cmd), "%s " GEN_ARGS " --out-pcap %s --out-mappings %s --out-expect %s",
		 FG_GEN, at("in.pcap"), at("m.jsonl"), at("expect.jsonl"));
	st = fg_test_run(cmd, log, sizeof(log));
	cr_assert_eq(st, 0, "fg-gen exit %d\n%s\n%s", st, cmd, log);
	snprintf(cmd, sizeof(cmd), "%s replay --mappings %s --in %s --out %s --stats %s",
		 FG_FRAMEGATE, at("m.jsonl"), at("in.pcap"), at("out.pcap"), at("stats.json"));
	st = fg_test_run(cmd, log, sizeof(log));
	cr_assert_eq(st, 0, "framegate replay exit %d\n%s\n%s", st, cmd, log);
}

TestSuite(tools, .init = setup, .fini = teardown, .timeout = 60);

Test(tools, fg_gen_is_deterministic_per_seed)
{
	static const char *const out[][3] = {
		{ "a.pcap", "a.jsonl", "a.expect" },
		{ "b.pcap", "b.jsonl", "b.expect" },
		{ "c.pcap", "c.jsonl", "c.expect" },
	};
	static const int seed[] = { 11, 11, 12 };
	char cmd[2048], log[16384];

	for (int r = 0; r < 3; r++) {
		int st;

		snprintf(cmd, sizeof(cmd), "%s " GEN_ARGS " --seed %d --out-pcap %s --out-mappings %s --out-expect %s",
			 FG_GEN, seed[r], at(out[r][0]), at(out[r][1]), at(out[r][2]));
		st = fg_test_run(cmd, log, sizeof(log));
		cr_assert_eq(st, 0, "run %d: fg-gen exit %d\n%s\n%s", r, st, cmd, log);
	}
	for (int f = 0; f < 3; f++) {
		cr_expect(same_bytes(at(out[0][f]), at(out[1][f])),
			  "same seed twice: %s and %s differ", out[0][f], out[1][f]);
		cr_expect(!same_bytes(at(out[0][f]), at(out[2][f])),
			  "seeds 11 and 12: %s and %s are the same", out[0][f], out[2][f]);
	}
}

static json_int_t
drop(json_t *stats, const char *reason)
{
	json_t *v = json_object_get(json_object_get(stats, "drops"), reason);

	cr_assert(json_is_integer(v), "stats.json has no drops.%s", reason);
	return json_integer_value(v);
}

Test(tools, fg_gen_kinds_come_out_as_their_verdicts)
{
	static const char *const kinds[] = { "valid", "spoofed", "stale", "unauth", "malformed" };
	json_int_t n[5] = { 0 }, total = 0, other = 0;
	char *line = NULL;
	size_t cap = 0;
	json_error_t jerr;
	json_t *st, *drops, *v;
	const char *reason;
	FILE *f;

	gen_and_replay();

	f = fopen(at("expect.jsonl"), "r");
	cr_assert_not_null(f);
	while (getline(&line, &cap, f) > 0) {
		json_t *o = json_loads(line, 0, &jerr);
		const char *k;
		int i;

		cr_assert_not_null(o, "expect.jsonl line %" JSON_INTEGER_FORMAT ": %s", total + 1, jerr.text);
		k = json_string_value(json_object_get(o, "kind"));
		cr_assert_not_null(k, "expect.jsonl line %" JSON_INTEGER_FORMAT ": no kind", total + 1);
		for (i = 0; i < 5 && strcmp(k, kinds[i]) != 0; i++)
			;
		cr_assert_lt(i, 5, "expect.jsonl: unknown kind \"%s\"", k);
		n[i]++;
		total++;
		json_decref(o);
	}
	free(line);
	fclose(f);
	cr_assert_eq(total, 4000, "expect.jsonl has %" JSON_INTEGER_FORMAT " lines, not 4000", total);
	for (int i = 1; i < 5; i++)
		cr_assert_gt(n[i], 0, "no %s packet was generated: the test would prove nothing", kinds[i]);

	st = json_load_file(at("stats.json"), 0, &jerr);
	cr_assert_not_null(st, "stats.json: %s", jerr.text);
	cr_expect_eq(json_integer_value(json_object_get(st, "rx_packets")), total, "rx_packets");
	cr_expect_eq(json_integer_value(json_object_get(st, "forwarded_packets")), n[0],
		     "forwarded_packets %" JSON_INTEGER_FORMAT ", valid packets %" JSON_INTEGER_FORMAT,
		     json_integer_value(json_object_get(st, "forwarded_packets")), n[0]);
	cr_expect_eq(json_integer_value(json_object_get(st, "copies_sent")), 2 * n[0],
		     "copies_sent: two sinks per valid packet");
	cr_expect_eq(drop(st, "not_owned"), n[1], "spoofed -> not_owned: %" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT,
		     drop(st, "not_owned"), n[1]);
	cr_expect_eq(drop(st, "stale_epoch"), n[2], "stale -> stale_epoch: %" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT,
		     drop(st, "stale_epoch"), n[2]);
	cr_expect_eq(drop(st, "auth_missing") + drop(st, "auth_failed"), n[3],
		     "unauth -> auth_missing %" JSON_INTEGER_FORMAT " + auth_failed %" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT,
		     drop(st, "auth_missing"), drop(st, "auth_failed"), n[3]);
	cr_expect_gt(drop(st, "auth_missing"), 0, "unauth: some without AUTH");
	cr_expect_gt(drop(st, "auth_failed"), 0, "unauth: some with a wrong tag");
	cr_expect_eq(drop(st, "bad_header"), n[4], "malformed -> bad_header: %" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT,
		     drop(st, "bad_header"), n[4]);

	/* No packet under any other reason. */
	drops = json_object_get(st, "drops");
	json_object_foreach(drops, reason, v) {
		if (strcmp(reason, "not_owned") && strcmp(reason, "stale_epoch") &&
		    strcmp(reason, "auth_missing") && strcmp(reason, "auth_failed") &&
		    strcmp(reason, "bad_header")) {
			cr_expect_eq(json_integer_value(v), 0, "no packet was meant to be %s", reason);
			other += json_integer_value(v);
		}
	}
	cr_expect_eq(other, 0);
	json_decref(st);
}

Test(tools, fg_audit_finds_no_cross_tenant_delivery_in_a_replay)
{
	char cmd[2048], log[16384];
	int st;

	gen_and_replay();
	snprintf(cmd, sizeof(cmd), "%s --mappings %s --capture %s", FG_AUDIT,
		 at("m.jsonl"), at("out.pcap"));
	st = fg_test_run(cmd, log, sizeof(log));
	cr_expect_eq(st, 0, "clean replay: fg-audit exit %d\n%s\n%s", st, cmd, log);
	cr_expect(strstr(log, "\ncross-tenant deliveries: 0\n") != NULL,
		  "clean replay: no \"cross-tenant deliveries: 0\":\n%s", log);
	cr_expect(strstr(log, "IPv4 header checksum wrong: 0\n") != NULL &&
		  strstr(log, "UDP checksum wrong: 0 ") != NULL,
		  "clean replay: wrong checksums:\n%s", log);
	cr_expect(strstr(log, "copies read: 0 ") == NULL, "clean replay: no copies:\n%s", log);
}

/* ---- editing one copy of a capture --------------------------------------- */

struct sink {
	uint32_t id, tenant;
	int family;
	uint8_t addr[16];
	uint16_t port;
};

/* The sinks of the mapping file (fg-gen writes no deletions). */
static size_t
read_sinks(const char *path, struct sink *s, size_t max)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, n = 0;

	cr_assert_not_null(f, "cannot open %s", path);
	while (n < max && getline(&line, &cap, f) > 0) {
		json_error_t jerr;
		json_t *o = json_loads(line, 0, &jerr);
		const char *addr;

		cr_assert_not_null(o, "%s: %s", path, jerr.text);
		if (strcmp(json_string_value(json_object_get(o, "op")), "sink") == 0) {
			s[n].id = (uint32_t)json_integer_value(json_object_get(o, "sink"));
			s[n].tenant = (uint32_t)json_integer_value(json_object_get(o, "tenant"));
			s[n].port = (uint16_t)json_integer_value(json_object_get(o, "port"));
			addr = json_string_value(json_object_get(o, "addr"));
			s[n].family = strchr(addr, ':') ? AF_INET6 : AF_INET;
			cr_assert_eq(inet_pton(s[n].family, addr, s[n].addr), 1, "sink address %s", addr);
			n++;
		}
		json_decref(o);
	}
	free(line);
	fclose(f);
	return n;
}

/* Where a copy's headers are: IP version (0: none), IP and UDP offsets. */
struct layout {
	int version;
	uint32_t l3, l4;
};

static struct layout
layout_of(const uint8_t *p, uint32_t len)
{
	struct layout l = { 0 };
	uint32_t off = sizeof(struct rte_ether_hdr);
	uint16_t type;

	if (len < off)
		return l;
	type = (uint16_t)(p[12] << 8 | p[13]);
	if (type == RTE_ETHER_TYPE_VLAN && len >= off + 4) {
		type = (uint16_t)(p[16] << 8 | p[17]);
		off += 4;
	}
	if (type == RTE_ETHER_TYPE_IPV4 && len >= off + sizeof(struct rte_ipv4_hdr)) {
		l.version = 4;
		l.l3 = off;
		l.l4 = off + rte_ipv4_hdr_len((const struct rte_ipv4_hdr *)(p + off));
	} else if (type == RTE_ETHER_TYPE_IPV6 && len >= off + sizeof(struct rte_ipv6_hdr)) {
		l.version = 6;
		l.l3 = off;
		l.l4 = off + sizeof(struct rte_ipv6_hdr);
	}
	if (l.version && len < l.l4 + sizeof(struct rte_udp_hdr) + FG_HDR_LEN)
		l.version = 0;
	return l;
}

/* An edit of one copy: 1 if it edited this one, 0 to look at the next. */
typedef int (*edit_fn)(uint8_t *p, uint32_t len, void *arg);

/* in to out, with edit() applied to the first copy it accepts; that copy's
 * index (the test fails if none accepts). */
static size_t
rewrite_capture(const char *in, const char *out, edit_fn edit, void *arg)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	pcap_t *r = pcap_open_offline(in, errbuf), *dead;
	struct pcap_pkthdr *h;
	const u_char *data;
	pcap_dumper_t *w;
	size_t i = 0, edited = SIZE_MAX;

	cr_assert_not_null(r, "%s: %s", in, errbuf);
	dead = pcap_open_dead(DLT_EN10MB, 65535);
	cr_assert_not_null(dead);
	w = pcap_dump_open(dead, out);
	cr_assert_not_null(w, "%s: %s", out, pcap_geterr(dead));
	while (pcap_next_ex(r, &h, &data) == 1) {
		static uint8_t buf[65536];
		struct pcap_pkthdr hh = *h;

		cr_assert_leq(h->caplen, sizeof(buf));
		memcpy(buf, data, h->caplen);
		if (edited == SIZE_MAX && edit(buf, h->caplen, arg))
			edited = i;
		pcap_dump((u_char *)w, &hh, buf);
		i++;
	}
	pcap_dump_close(w);
	pcap_close(dead);
	pcap_close(r);
	cr_assert_neq(edited, SIZE_MAX, "%s: no copy to edit among %zu", in, i);
	return edited;
}

struct redirect {
	int version;                /* of the copy to edit */
	const struct sink *sinks;
	size_t n_sinks;
	uint32_t from_tenant;       /* filled in: the copy's tenant */
	const struct sink *to;      /* filled in: the other tenant's sink */
};

/* Send the first copy of r->version to a sink of another tenant of the same
 * address family, with correct checksums. */
static int
edit_redirect(uint8_t *p, uint32_t len, void *arg)
{
	struct redirect *r = arg;
	struct layout l = layout_of(p, len);
	struct rte_udp_hdr *udp;
	const struct fg_frame_hdr *fh;
	const struct sink *to = NULL;
	uint32_t tenant;

	if (l.version != r->version)
		return 0;
	udp = (void *)(p + l.l4);
	fh = (const void *)(udp + 1);
	tenant = rte_be_to_cpu_32(fh->tenant_id);
	for (size_t i = 0; i < r->n_sinks && to == NULL; i++)
		if (r->sinks[i].tenant != tenant &&
		    r->sinks[i].family == (l.version == 4 ? AF_INET : AF_INET6))
			to = &r->sinks[i];
	cr_assert_not_null(to, "no IPv%d sink of a tenant other than %u", l.version, tenant);
	udp->dst_port = rte_cpu_to_be_16(to->port);
	if (l.version == 4) {
		struct rte_ipv4_hdr *ip = (void *)(p + l.l3);

		memcpy(&ip->dst_addr, to->addr, 4);
		ip->hdr_checksum = 0;
		ip->hdr_checksum = rte_ipv4_cksum(ip);
		if (udp->dgram_cksum != 0) {
			udp->dgram_cksum = 0;
			udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
		}
	} else {
		struct rte_ipv6_hdr *ip6 = (void *)(p + l.l3);

		memcpy(ip6->dst_addr, to->addr, 16);
		udp->dgram_cksum = 0;
		udp->dgram_cksum = rte_ipv6_udptcp_cksum(ip6, udp);
	}
	r->from_tenant = tenant;
	r->to = to;
	return 1;
}

/* Break the IPv4 header checksum of the first IPv4 copy. */
static int
edit_ipv4_cksum(uint8_t *p, uint32_t len, void *arg)
{
	struct layout l = layout_of(p, len);
	struct rte_ipv4_hdr *ip = (void *)(p + l.l3);

	(void)arg;
	if (l.version != 4)
		return 0;
	ip->hdr_checksum ^= RTE_BE16(0x0101);
	return 1;
}

Test(tools, fg_audit_catches_a_copy_sent_to_another_tenant)
{
	static struct sink sinks[256];
	char cmd[2048], log[16384];
	size_t n = 0;

	gen_and_replay();
	n = read_sinks(at("m.jsonl"), sinks, 256);
	cr_assert_eq(n, 40, "m.jsonl: %zu sinks, expected 2 for each of 20 tenants", n);

	for (int version = 4; version <= 6; version += 2) {
		struct redirect r = { .version = version, .sinks = sinks, .n_sinks = n };
		char name[32];
		size_t copy;
		int st;

		snprintf(name, sizeof(name), "leak%d.pcap", version);
		copy = rewrite_capture(at("out.pcap"), at(name), edit_redirect, &r);
		snprintf(cmd, sizeof(cmd), "%s --mappings %s --capture %s", FG_AUDIT,
			 at("m.jsonl"), at(name));
		st = fg_test_run(cmd, log, sizeof(log));
		cr_expect_eq(st, 1, "IPv%d copy %zu of tenant %u sent to sink %u of tenant %u: fg-audit exit %d\n%s",
			     version, copy, r.from_tenant, r.to->id, r.to->tenant, st, log);
		cr_expect(strstr(log, "\ncross-tenant deliveries: 1\n") != NULL,
			  "IPv%d redirected copy: no \"cross-tenant deliveries: 1\":\n%s", version, log);
		cr_expect(strstr(log, "  to a sink of another tenant: 1\n") != NULL,
			  "IPv%d redirected copy: not counted as to a sink of another tenant:\n%s",
			  version, log);
		/* The checksums were made right: the leak alone is the finding. */
		cr_expect(strstr(log, "IPv4 header checksum wrong: 0\n") != NULL &&
			  strstr(log, "UDP checksum wrong: 0 ") != NULL,
			  "IPv%d redirected copy: a checksum was left wrong:\n%s", version, log);
	}
}

Test(tools, fg_audit_catches_a_wrong_ipv4_header_checksum)
{
	char cmd[2048], log[16384];
	size_t copy;
	int st;

	gen_and_replay();
	copy = rewrite_capture(at("out.pcap"), at("cksum.pcap"), edit_ipv4_cksum, NULL);
	snprintf(cmd, sizeof(cmd), "%s --mappings %s --capture %s", FG_AUDIT,
		 at("m.jsonl"), at("cksum.pcap"));
	st = fg_test_run(cmd, log, sizeof(log));
	cr_expect_eq(st, 1, "broken IPv4 header checksum in copy %zu: fg-audit exit %d\n%s",
		     copy, st, log);
	cr_expect(strstr(log, "IPv4 header checksum wrong: 1\n") != NULL,
		  "broken IPv4 header checksum: not counted:\n%s", log);
	cr_expect(strstr(log, "\ncross-tenant deliveries: 0\n") != NULL,
		  "broken IPv4 header checksum: counted as a delivery:\n%s", log);
}

/* ---- bad inputs ----------------------------------------------------------- */

/* In args, D/ stands for this test's folder. */
struct bad_input {
	const char *tool;           /* FG_GEN or FG_AUDIT */
	const char *args;
	int status;
	const char *needle;         /* must appear in the message */
};

static const struct bad_input bad_inputs[] = {
	/* Input errors: exit 3, the file named (and the line). */
	{ FG_AUDIT, "--mappings D/m.jsonl --capture D/missing.pcap", 3,
	  "missing.pcap" },
	{ FG_AUDIT, "--mappings D/missing.jsonl --capture D/in.pcap", 3,
	  "missing.jsonl: cannot open: No such file or directory" },
	{ FG_AUDIT, "--mappings D/bad.jsonl --capture D/in.pcap", 3,
	  "bad.jsonl:2: op \"tenant\": field \"tenant\" must be an integer" },
	{ FG_AUDIT, "--mappings D/refused.jsonl --capture D/in.pcap", 3,
	  "refused.jsonl:2: sink 5: tenant 2 does not exist" },
	{ FG_AUDIT, "--mappings D/m.jsonl --capture D/m.jsonl", 3,
	  "m.jsonl" },
	/* Usage errors: exit 2. */
	{ FG_AUDIT, "", 2, "--mappings and --capture are both required" },
	{ FG_AUDIT, "--mappings D/m.jsonl", 2, "--mappings and --capture are both required" },
	{ FG_AUDIT, "--mappings D/m.jsonl --capture D/in.pcap extra", 2,
	  "unexpected argument \"extra\"" },
	{ FG_AUDIT, "--frobnicate", 2, "Try 'fg-audit --help'" },
	{ FG_GEN, "--spoofed 2 --out-pcap D/x.pcap --out-mappings D/x.jsonl", 2,
	  "--spoofed: \"2\" is not a number from 0 to 1" },
	{ FG_GEN, "--spoofed 0.6 --stale 0.6 --out-pcap D/x.pcap --out-mappings D/x.jsonl", 2,
	  "add up to 1.2, more than 1" },
	{ FG_GEN, "--tenants 0 --out-pcap D/x.pcap --out-mappings D/x.jsonl", 2,
	  "--tenants: \"0\" is not a whole number" },
	{ FG_GEN, "--out-pcap D/x.pcap", 2,
	  "--out-pcap and --out-mappings are both required" },
};

/* args with D/ (standing alone) expanded. */
static void
expand(const char *args, char *out, size_t len)
{
	size_t n = 0;

	for (const char *p = args; *p && n + 1 < len; p++) {
		if (*p == 'D' && p[1] == '/' && (p == args || p[-1] == ' '))
			n += (size_t)snprintf(out + n, len - n, "%s", dir);
		else
			out[n++] = *p;
	}
	out[n < len ? n : len - 1] = '\0';
}

Test(tools, bad_inputs_exit_3_and_usage_errors_exit_2)
{
	char cmd[4096], log[16384];
	int st;

	snprintf(cmd, sizeof(cmd), "%s --tenants 3 --devices 20 --packets 20 --out-pcap %s --out-mappings %s",
		 FG_GEN, at("in.pcap"), at("m.jsonl"));
	st = fg_test_run(cmd, log, sizeof(log));
	cr_assert_eq(st, 0, "fg-gen exit %d\n%s", st, log);
	write_file(at("bad.jsonl"),
		   "{\"op\":\"tenant\",\"tenant\":1}\n{\"op\":\"tenant\",\"tenant\":\"x\"}\n");
	write_file(at("refused.jsonl"),
		   "{\"op\":\"tenant\",\"tenant\":1}\n"
		   "{\"op\":\"sink\",\"sink\":5,\"tenant\":2,\"addr\":\"10.0.0.1\",\"port\":1,\"egress\":0}\n");

	for (size_t i = 0; i < sizeof(bad_inputs) / sizeof(bad_inputs[0]); i++) {
		const struct bad_input *b = &bad_inputs[i];
		char args[2048];

		expand(b->args, args, sizeof(args));
		snprintf(cmd, sizeof(cmd), "%s %s", b->tool, args);
		st = fg_test_run(cmd, log, sizeof(log));
		cr_expect_eq(st, b->status, "case %zu: exit %d, expected %d\n%s\n%s",
			     i, st, b->status, cmd, log);
		cr_expect(strstr(log, b->needle) != NULL,
			  "case %zu: the message does not say \"%s\":\n%s\n%s", i, b->needle, cmd, log);
		cr_expect(strstr(log, "EAL:") == NULL, "case %zu: EAL noise:\n%s", i, log);
	}

	/* --help says what each exit status means. */
	st = fg_test_run(FG_AUDIT " --help", log, sizeof(log));
	cr_expect_eq(st, 0, "fg-audit --help: exit %d", st);
	cr_expect(strstr(log, "  1  a cross-tenant delivery or a wrong checksum (only these)") != NULL &&
		  strstr(log, "  3  no audit: a file that cannot be read") != NULL,
		  "fg-audit --help does not give exit statuses 1 and 3:\n%s", log);
}
