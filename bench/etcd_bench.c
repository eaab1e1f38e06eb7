/*
 * fg-bench-etcd: how long fg_etcd_range takes to list a large prefix, beside
 * a baseline measured in the same run: the same pages fetched with bare
 * libcurl and thrown away unparsed (what etcd's gateway and HTTP cost by
 * themselves). The difference is what the client adds (JSON parsing, base64
 * decoding, the callbacks).
 *
 *   fg-bench-etcd [KEYS [VALUE_BYTES [PAGE [RUNS]]]]   (1000000, 200, 10000, 3)
 *
 * FG_BENCH_ETCDCTL=1 also times `etcdctl get --prefix` (etcd's gRPC client)
 * on the same keys.
 *
 * Starts its own 1-member etcd (tests/etcd_lab.h) with the limits raised,
 * loads KEYS keys "/bench/%07u" in transactions of 10000 puts, then times
 * each listing (best of RUNS).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <sodium.h>

#include "etcd.h"
#include "etcd_lab.h"

#define BATCH 10000u

static double
clock_s(clockid_t id)
{
	struct timespec t;

	clock_gettime(id, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double
now_s(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

/* This process's CPU time (etcd's is not in it). */
static double
cpu_s(void)
{
	return clock_s(CLOCK_PROCESS_CPUTIME_ID);
}

struct tally {
	uint64_t keys, bytes;
};

static int
count_kv(void *ctx, const struct fg_etcd_kv *kv)
{
	struct tally *t = ctx;

	t->keys++;
	t->bytes += kv->key_len + kv->value_len;
	return 0;
}

static size_t
discard(char *p, size_t size, size_t n, void *ud)
{
	(void)p;
	*(uint64_t *)ud += size * n;
	return size * n;
}

/* The same pages as fg_etcd_range, with bare libcurl, unparsed. */
static int
baseline(const char *endpoint, unsigned int keys, unsigned int page, int64_t rev,
	 uint64_t *bytes)
{
	CURL *c = curl_easy_init();
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	char url[128], body[256], key[32], k64[64];
	int rc = 0;

	h = curl_slist_append(h, "Expect:");
	snprintf(url, sizeof(url), "%s/v3/kv/range", endpoint);
	*bytes = 0;
	for (unsigned int first = 0; first < keys; first += page) {
		snprintf(key, sizeof(key), "/bench/%07u", first);
		sodium_bin2base64(k64, sizeof(k64), (const unsigned char *)key, strlen(key),
				  sodium_base64_VARIANT_ORIGINAL);
		/* range_end "/bench0" is L2JlbmNoMA== */
		snprintf(body, sizeof(body),
			 "{\"key\":\"%s\",\"range_end\":\"L2JlbmNoMA==\",\"limit\":%u,\"revision\":%" PRId64 "}",
			 k64, page, rev);
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, bytes);
		curl_easy_setopt(c, CURLOPT_PROXY, "");
		if (curl_easy_perform(c) != CURLE_OK) {
			rc = -EIO;
			break;
		}
	}
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return rc;
}

int
main(int argc, char **argv)
{
	static const char *const extra[] = {
		"--max-txn-ops", "100000", "--max-request-bytes", "67108864",
		"--quota-backend-bytes", "8589934592", "--auto-compaction-retention", "0",
		NULL,
	};
	unsigned int keys = argc > 1 ? (unsigned int)strtoul(argv[1], NULL, 10) : 1000000;
	unsigned int vbytes = argc > 2 ? (unsigned int)strtoul(argv[2], NULL, 10) : 200;
	unsigned int page = argc > 3 ? (unsigned int)strtoul(argv[3], NULL, 10) : 10000;
	unsigned int runs = argc > 4 ? (unsigned int)strtoul(argv[4], NULL, 10) : 3;
	struct fg_err err = { 0, "" };
	struct fg_etcd_lab *lab;
	struct fg_etcd *e;
	struct fg_etcd_op *ops;
	char (*names)[16], *value;
	double t0, c0, best_client = 1e9, best_base = 1e9, best_cpu = 1e9, best_base_cpu = 1e9;
	int64_t rev = 0;
	int status = 1;

	if (keys == 0 || vbytes == 0 || page == 0 || runs == 0) {
		fprintf(stderr, "usage: fg-bench-etcd [KEYS [VALUE_BYTES [PAGE [RUNS]]]]\n");
		return 2;
	}
	lab = fg_etcd_lab_start(1, extra, &err);
	if (lab == NULL) {
		fprintf(stderr, "fg-bench-etcd: %s\n", err.msg);
		return 1;
	}
	e = fg_etcd_open(&(struct fg_etcd_opts){ .endpoints = fg_etcd_lab_endpoints(lab),
						 .timeout_ms = 60000 }, &err);
	ops = calloc(BATCH, sizeof(*ops));
	names = calloc(BATCH, sizeof(*names));
	value = malloc(vbytes + 1);
	if (e == NULL || ops == NULL || names == NULL || value == NULL)
		goto out;
	memset(value, 'v', vbytes);
	value[vbytes] = '\0';

	t0 = now_s();
	for (unsigned int first = 0; first < keys; first += BATCH) {
		unsigned int n = keys - first < BATCH ? keys - first : BATCH;
		bool ok;

		for (unsigned int i = 0; i < n; i++) {
			snprintf(names[i], sizeof(names[i]), "/bench/%07u", first + i);
			ops[i] = (struct fg_etcd_op){ FG_ETCD_PUT, names[i], value };
		}
		if (fg_etcd_txn(e, NULL, 0, ops, n, NULL, 0, &ok, &rev, &err) != 0) {
			fprintf(stderr, "fg-bench-etcd: load: %s\n", err.msg);
			goto out;
		}
	}
	printf("loaded %u keys of %u-byte values in %.1f s (revision %" PRId64 ")\n",
	       keys, vbytes, now_s() - t0, rev);

	for (unsigned int run = 0; run < runs; run++) {
		struct tally t = { 0, 0 };
		uint64_t raw = 0;
		double d;

		t0 = now_s();
		c0 = cpu_s();
		if (baseline(fg_etcd_lab_endpoint(lab, 0), keys, page, rev, &raw) != 0) {
			fprintf(stderr, "fg-bench-etcd: baseline fetch failed\n");
			goto out;
		}
		d = now_s() - t0;
		best_base = d < best_base ? d : best_base;
		c0 = cpu_s() - c0;
		best_base_cpu = c0 < best_base_cpu ? c0 : best_base_cpu;
		printf("run %u: baseline (bare libcurl, unparsed): %.2f s (client CPU %.2f s), %.0f MB of JSON\n",
		       run + 1, d, c0, (double)raw / 1e6);

		t0 = now_s();
		c0 = cpu_s();
		if (fg_etcd_range(e, "/bench/", "/bench0", rev, page, count_kv, &t, NULL, &err) != 0) {
			fprintf(stderr, "fg-bench-etcd: range: %s\n", err.msg);
			goto out;
		}
		d = now_s() - t0;
		best_client = d < best_client ? d : best_client;
		c0 = cpu_s() - c0;
		best_cpu = c0 < best_cpu ? c0 : best_cpu;
		printf("run %u: fg_etcd_range: %.2f s (client CPU %.2f s), %" PRIu64 " keys, %.0f MB of keys and values\n",
		       run + 1, d, c0, t.keys, (double)t.bytes / 1e6);
		if (t.keys != keys) {
			fprintf(stderr, "fg-bench-etcd: listed %" PRIu64 " keys, loaded %u\n", t.keys, keys);
			goto out;
		}
	}
	printf("best: fg_etcd_range %.2f s (%.0f keys/s), client CPU %.2f s; baseline %.2f s, client CPU %.2f s\n",
	       best_client, keys / best_client, best_cpu, best_base, best_base_cpu);
	if (getenv("FG_BENCH_ETCDCTL") != NULL) {
		/* etcd's own gRPC client, one range, for comparison. */
		char cmd[256];

		snprintf(cmd, sizeof(cmd),
			 "ETCDCTL_API=3 etcdctl --command-timeout=600s --endpoints=%s get --prefix /bench/ >/dev/null",
			 fg_etcd_lab_endpoint(lab, 0));
		t0 = now_s();
		if (system(cmd) == 0)
			printf("etcdctl get --prefix over gRPC (FG_BENCH_ETCDCTL): %.2f s\n",
			       now_s() - t0);
	}
	status = 0;
out:
	free(ops);
	free(names);
	free(value);
	fg_etcd_close(e);
	fg_etcd_lab_stop(lab);
	return status;
}
