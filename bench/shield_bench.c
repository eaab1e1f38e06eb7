/*
 * fg-bench-shield: the shield's cost per packet, through BPF_PROG_TEST_RUN
 * with `repeat` (the kernel runs the program that many times on one packet
 * and reports the mean duration), next to an XDP program that only passes
 * (pass.bpf.c), measured in the same run: A B A B ..., median of the rounds.
 *
 *   fg-bench-shield [-n REPEAT] [-r ROUNDS] [VECTOR_DIR]
 *
 * The packets are the conformance vectors: every forwarded one and a few
 * drops (one per stage: checks 1-8). Maps are filled from the vectors'
 * mapping file. Needs root.
 *
 * No AF_XDP socket is in xsks_map, so a forwarded frame takes the redirect
 * path up to the socket lookup, finds none and falls back to XDP_PASS; a test
 * run never carries a redirect out, so with a socket the measured work would
 * be the same lookup. The cost of the AF_XDP copy itself is not measured.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <jansson.h>
/* pcap's classic-BPF header clashes with <linux/bpf.h>; only files are read. */
#define PCAP_DONT_INCLUDE_PCAP_BPF_H
#include <pcap/pcap.h>

#include "eal_quick.h"
#include "median.h"
#include "pass.skel.h"
#include "shield.h"
#include "shield_fill.h"

#define MAX_PKTS 256
#define MAX_ROUNDS 101

struct pkt {
	uint8_t *data;
	uint32_t len;
	char name[96];
	enum fg_reason reason;   /* userspace verdict; FG_PASS: forward */
};

static void
die(const char *fmt, const char *arg)
{
	fprintf(stderr, "fg-bench-shield: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	exit(1);
}

static size_t
read_vectors(const char *dir, struct pkt *pkts)
{
	char path[4096], errbuf[PCAP_ERRBUF_SIZE];
	struct pcap_pkthdr *h;
	const u_char *data;
	pcap_t *p;
	FILE *f;
	char *line = NULL;
	size_t cap = 0, n = 0, ne = 0;

	snprintf(path, sizeof(path), "%s/packets.pcap", dir);
	p = pcap_open_offline(path, errbuf);
	if (p == NULL)
		die("%s", errbuf);
	while (n < MAX_PKTS && pcap_next_ex(p, &h, &data) == 1) {
		pkts[n].data = malloc(h->caplen);
		memcpy(pkts[n].data, data, h->caplen);
		pkts[n].len = h->caplen;
		n++;
	}
	pcap_close(p);

	snprintf(path, sizeof(path), "%s/expected.jsonl", dir);
	f = fopen(path, "r");
	if (f == NULL)
		die("cannot open %s", path);
	while (ne < n && getline(&line, &cap, f) > 0) {
		json_t *o = json_loads(line, 0, NULL);
		const char *r;

		if (o == NULL)
			die("%s: bad JSON line", path);
		snprintf(pkts[ne].name, sizeof(pkts[ne].name), "%s",
			 json_string_value(json_object_get(o, "case")));
		r = json_string_value(json_object_get(o, "reason"));
		pkts[ne].reason = r != NULL ? fg_reason_by_name(r) : FG_PASS;
		json_decref(o);
		ne++;
	}
	free(line);
	fclose(f);
	if (ne != n)
		die("%s: not one line per packet", path);
	return n;
}

/* The vectors' mapping file into the maps, through the control plane's own
 * mirror (control/shield_fill.c). */
static void
load_mappings(struct fg_shield *s, const char *dir)
{
	struct fg_err err = { 0 };
	char path[4096];

	snprintf(path, sizeof(path), "%s/mappings.jsonl", dir);
	if (fg_eal_quick_start("fgshieldbench", 128) != 0)
		die("%s", "EAL did not start");
	if (fg_shield_fill(s, path, &err) != 0)
		die("%s", err.msg);
}

/* Mean ns per run of `repeat` runs of one packet, and the action. */
static double
time_prog(int prog_fd, const struct pkt *p, unsigned int repeat, int *action)
{
	LIBBPF_OPTS(bpf_test_run_opts, o,
		.data_in = p->data,
		.data_size_in = p->len,
		.repeat = repeat);

	if (bpf_prog_test_run_opts(prog_fd, &o) < 0)
		die("test run: %s", strerror(errno));
	*action = (int)o.retval;
	return (double)o.duration;
}

/* The drops measured: the first vector of each of these reasons. */
static const enum fg_reason bench_drops[] = {
	FG_DROP_not_frame, FG_DROP_bad_header, FG_DROP_unknown_tenant,
	FG_DROP_not_owned, FG_DROP_stale_epoch, FG_DROP_auth_failed,
};

int
main(int argc, char **argv)
{
	static struct pkt pkts[MAX_PKTS];
	const char *dir = FG_VECTOR_DIR;
	unsigned int repeat = 1000000, rounds = 5;
	struct fg_err err = { 0 };
	struct fg_shield *s;
	struct fg_pass_bpf *pass;
	size_t n, sel[MAX_PKTS], nsel = 0;
	int opt;

	while ((opt = getopt(argc, argv, "n:r:h")) != -1) {
		switch (opt) {
		case 'n':
			repeat = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'r':
			rounds = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		default:
			fprintf(stderr, "usage: fg-bench-shield [-n REPEAT] [-r ROUNDS] [VECTOR_DIR]\n");
			return opt == 'h' ? 0 : 2;
		}
	}
	if (optind < argc)
		dir = argv[optind];
	if (repeat == 0 || rounds == 0 || rounds > MAX_ROUNDS)
		die("%s", "REPEAT must be > 0 and ROUNDS 1..101");

	n = read_vectors(dir, pkts);
	s = fg_shield_open(NULL, &err);
	if (s == NULL)
		die("%s", err.msg);
	load_mappings(s, dir);
	pass = fg_pass_bpf__open_and_load();
	if (pass == NULL)
		die("cannot load pass.bpf.o: %s", strerror(errno));

	for (size_t i = 0; i < n; i++)
		if (pkts[i].reason == FG_PASS)
			sel[nsel++] = i;
	for (size_t d = 0; d < sizeof(bench_drops) / sizeof(bench_drops[0]); d++)
		for (size_t i = 0; i < n; i++)
			if (pkts[i].reason == bench_drops[d]) {
				sel[nsel++] = i;
				break;
			}

	printf("fg-bench-shield: BPF_PROG_TEST_RUN, repeat %u, median of %u rounds "
	       "(A=shield, B=pass, alternating)\n", repeat, rounds);
	printf("%-40s %5s %-9s %9s %9s %9s\n", "vector", "bytes", "verdict",
	       "shield_ns", "pass_ns", "ratio");
	double sum_fwd_a = 0, sum_fwd_b = 0;
	unsigned int nfwd = 0;

	for (size_t k = 0; k < nsel; k++) {
		const struct pkt *p = &pkts[sel[k]];
		double a[MAX_ROUNDS], b[MAX_ROUNDS], ma, mb;
		int act_a = 0, act_b = 0;

		for (unsigned int r = 0; r < rounds; r++) {
			a[r] = time_prog(fg_shield_prog_fd(s), p, repeat, &act_a);
			b[r] = time_prog(bpf_program__fd(pass->progs.fg_pass), p,
					 repeat, &act_b);
		}
		ma = fg_median(a, rounds);
		mb = fg_median(b, rounds);
		printf("%-40.40s %5u %-9s %9.1f %9.1f %9.2f\n", p->name, p->len,
		       act_a == XDP_DROP ? "drop" : act_a == XDP_PASS
		       ? (p->reason == FG_PASS ? "fwd*" : "pass") : "other",
		       ma, mb, ma / mb);
		if (p->reason == FG_PASS) {
			sum_fwd_a += ma;
			sum_fwd_b += mb;
			nfwd++;
		}
	}
	if (nfwd > 0)
		printf("forwarded frames, mean of medians: shield %.1f ns, pass %.1f ns, "
		       "ratio %.2f, shield minus pass %.1f ns\n",
		       sum_fwd_a / nfwd, sum_fwd_b / nfwd, sum_fwd_a / sum_fwd_b,
		       (sum_fwd_a - sum_fwd_b) / nfwd);
	printf("fwd*: redirect path taken; no AF_XDP socket, so the fallback XDP_PASS\n");

	fg_pass_bpf__destroy(pass);
	fg_shield_close(s);
	for (size_t i = 0; i < n; i++)
		free(pkts[i].data);
	return 0;
}
