/*
 * The etcd client (control/etcd.h) against a real 3-member etcd cluster
 * (tests/etcd_lab.h): transactions and both of their branches, a paged range
 * that stays one snapshot while keys change under it, etcd's limits,
 * compaction, the watch (one call per revision, a txn's events together, the
 * end of a watch when its member dies and a new one that resumes without a
 * gap), failover when a member is killed or frozen, and endpoint strings
 * refused before anything is contacted.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "etcd.h"
#include "etcd_lab.h"

static struct fg_etcd_lab *lab;
static struct fg_etcd *handles[4];

static void
teardown(void)
{
	for (size_t i = 0; i < sizeof(handles) / sizeof(handles[0]); i++) {
		fg_etcd_close(handles[i]);
		handles[i] = NULL;
	}
	fg_etcd_lab_stop(lab);
	lab = NULL;
}

TestSuite(etcd, .fini = teardown, .timeout = 90);

static void
lab_up(const char *const *extra)
{
	struct fg_err err = { 0, "" };

	lab = fg_etcd_lab_start(3, extra, &err);
	cr_assert_not_null(lab, "etcd cluster: %s", err.msg);
}

/* FG_TEST_ETCD_GRPC=1 (the etcd-grpc suite): every test again with
 * transactions and the watch over gRPC. */
static bool
o_grpc(void)
{
	const char *g = getenv("FG_TEST_ETCD_GRPC");

	return g != NULL && *g == '1';
}

/* A handle on the endpoints (kept for teardown). */
static struct fg_etcd *
handle_with(const char *endpoints, unsigned int timeout_ms, bool grpc)
{
	struct fg_etcd_opts o = { .endpoints = endpoints, .timeout_ms = timeout_ms,
				  .connect_timeout_ms = 500, .grpc = grpc };
	struct fg_err err = { 0, "" };
	struct fg_etcd *e = fg_etcd_open(&o, &err);
	size_t i;

	cr_assert_not_null(e, "open %s%s: %s", endpoints, grpc ? " over gRPC" : "", err.msg);
	for (i = 0; handles[i] != NULL; i++)
		cr_assert(i + 1 < sizeof(handles) / sizeof(handles[0]));
	handles[i] = e;
	return e;
}

static struct fg_etcd *
handle(const char *endpoints, unsigned int timeout_ms)
{
	return handle_with(endpoints, timeout_ms, o_grpc() && strstr(endpoints, "https://") == NULL);
}

/* Member i's endpoint first, then the others. */
static const char *
endpoints_from(unsigned int first)
{
	static char buf[256];
	size_t n = (size_t)snprintf(buf, sizeof(buf), "%s", fg_etcd_lab_endpoint(lab, first));

	for (unsigned int i = 0; i < 3; i++)
		if (i != first)
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, ",%s",
					      fg_etcd_lab_endpoint(lab, i));
	return buf;
}

static int64_t
put(struct fg_etcd *e, const char *key, const char *value)
{
	struct fg_etcd_op op = { FG_ETCD_PUT, key, value };
	struct fg_err err = { 0, "" };
	int64_t rev = 0;
	bool ok = false;
	int rc = fg_etcd_txn(e, NULL, 0, &op, 1, NULL, 0, &ok, &rev, &err);

	cr_assert_eq(rc, 0, "put %s: %s", key, err.msg);
	cr_assert(ok);
	return rev;
}

/* The value of key, or NULL when absent (a static copy). */
static const char *
get(struct fg_etcd *e, const char *key)
{
	static char value[4096];
	struct fg_err err = { 0, "" };
	struct fg_etcd_kv kv;
	int rc = fg_etcd_get(e, key, &kv, NULL, &err);

	cr_assert_geq(rc, 0, "get %s: %s", key, err.msg);
	if (rc == 0)
		return NULL;
	cr_assert_eq(strlen(kv.value), kv.value_len);
	snprintf(value, sizeof(value), "%s", kv.value);
	return value;
}

static int64_t
count(struct fg_etcd *e, const char *prefix)
{
	char end[256];
	int64_t n = -1;
	struct fg_err err = { 0, "" };

	fg_etcd_prefix_end(prefix, end);
	cr_assert_eq(fg_etcd_count(e, prefix, end, 0, &n, NULL, &err), 0, "%s", err.msg);
	return n;
}

static int64_t
ms_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

Test(etcd, put_get_through_txn)
{
	struct fg_etcd *e;
	struct fg_etcd_kv kv;
	struct fg_etcd_cmp absent = { "/t/a", FG_ETCD_VERSION, FG_ETCD_EQUAL, 0, NULL };
	struct fg_etcd_op ops[] = {
		{ FG_ETCD_PUT, "/t/a", "one" }, { FG_ETCD_PUT, "/t/b", "two" },
	};
	struct fg_err err = { 0, "" };
	int64_t rev = 0, hrev = 0;
	bool ok = false;

	lab_up(NULL);
	e = handle(fg_etcd_lab_endpoints(lab), 5000);
	cr_assert_eq(fg_etcd_txn(e, &absent, 1, ops, 2, NULL, 0, &ok, &rev, &err), 0, "%s", err.msg);
	cr_assert(ok, "the key was absent: the success branch runs");
	cr_assert_gt(rev, 1);
	cr_assert_eq(fg_etcd_get(e, "/t/a", &kv, &hrev, &err), 1, "%s", err.msg);
	cr_assert_str_eq(kv.key, "/t/a");
	cr_assert_str_eq(kv.value, "one");
	cr_assert_eq(kv.value_len, 3);
	cr_assert_eq(kv.mod_revision, rev);
	cr_assert_eq(kv.create_revision, rev);
	cr_assert_eq(kv.version, 1);
	cr_assert_geq(hrev, rev);
	cr_assert_str_eq(get(e, "/t/b"), "two");
	cr_assert_null(get(e, "/t/c"));

	/* Same compare again: the key exists now, so nothing is written. */
	cr_assert_eq(fg_etcd_txn(e, &absent, 1, ops, 1, NULL, 0, &ok, NULL, &err), 0, "%s", err.msg);
	cr_assert(!ok);
	cr_assert_eq(count(e, "/t/"), 2);

	/* A delete, and a value with every byte that base64 must carry. */
	struct fg_etcd_op del = { FG_ETCD_DELETE, "/t/a", NULL };
	cr_assert_eq(fg_etcd_txn(e, NULL, 0, &del, 1, NULL, 0, &ok, NULL, &err), 0, "%s", err.msg);
	cr_assert_null(get(e, "/t/a"));
	put(e, "/t/\xc3\xa9 x", "{\"v\": \"a/b+c=\"}\n");
	cr_assert_str_eq(get(e, "/t/\xc3\xa9 x"), "{\"v\": \"a/b+c=\"}\n");
}

Test(etcd, txn_failed_compare_runs_the_failure_branch_only)
{
	struct fg_etcd *e;
	struct fg_err err = { 0, "" };
	int64_t before, rev = 0, hrev = 0;
	bool ok = true;

	lab_up(NULL);
	e = handle(fg_etcd_lab_endpoints(lab), 5000);
	put(e, "/f/k", "old");
	before = put(e, "/f/x", "keep");
	struct fg_etcd_cmp cmp[] = {
		{ "/f/x", FG_ETCD_MOD, FG_ETCD_EQUAL, before, NULL },      /* holds */
		{ "/f/k", FG_ETCD_VALUE, FG_ETCD_EQUAL, 0, "other" },      /* fails */
	};
	struct fg_etcd_op succ[] = {
		{ FG_ETCD_PUT, "/f/k", "new" }, { FG_ETCD_DELETE, "/f/x", NULL },
		{ FG_ETCD_PUT, "/f/y", "new" },
	};
	struct fg_etcd_op fail[] = { { FG_ETCD_PUT, "/f/failed", "1" } };

	cr_assert_eq(fg_etcd_txn(e, cmp, 2, succ, 3, fail, 1, &ok, &rev, &err), 0, "%s", err.msg);
	cr_assert(!ok, "one compare failed");
	cr_assert_eq(rev, before + 1, "the failure branch wrote one revision");
	cr_assert_str_eq(get(e, "/f/k"), "old");
	cr_assert_str_eq(get(e, "/f/x"), "keep");
	cr_assert_null(get(e, "/f/y"));
	cr_assert_str_eq(get(e, "/f/failed"), "1");
	cr_assert_eq(count(e, "/f/"), 3);

	/* A failure branch with nothing in it writes no revision. */
	cr_assert_eq(fg_etcd_txn(e, cmp, 2, succ, 3, NULL, 0, &ok, &rev, &err), 0, "%s", err.msg);
	cr_assert(!ok);
	cr_assert_eq(fg_etcd_count(e, "/f/", "/f0", 0, NULL, &hrev, &err), 0);
	cr_assert_eq(hrev, before + 1);
	cr_assert_eq(rev, before + 1);
}

/* Range walk state: every key and value seen, writing under the walk after
 * the first page. */
struct walk {
	struct fg_etcd *writer;
	unsigned int seen;
	char keys[64][16];
	char values[64][16];
	int64_t max_mod;
};

static int
walk_kv(void *ctx, const struct fg_etcd_kv *kv)
{
	struct walk *w = ctx;

	cr_assert_lt(w->seen, 64);
	snprintf(w->keys[w->seen], sizeof(w->keys[0]), "%s", kv->key);
	snprintf(w->values[w->seen], sizeof(w->values[0]), "%s", kv->value);
	if (kv->mod_revision > w->max_mod)
		w->max_mod = kv->mod_revision;
	if (++w->seen == 4 && w->writer != NULL) {
		/* After the first page (4 keys): insert in the middle, change a
		 * later key, delete the last. */
		put(w->writer, "/p/05a", "inserted");
		put(w->writer, "/p/20", "changed");
		struct fg_etcd_op del = { FG_ETCD_DELETE, "/p/24", NULL };
		bool ok;
		cr_assert_eq(fg_etcd_txn(w->writer, NULL, 0, &del, 1, NULL, 0, &ok, NULL, NULL), 0);
		put(w->writer, "/p/99", "appended");
	}
	return 0;
}

Test(etcd, paged_range_is_one_snapshot)
{
	struct fg_etcd *e, *w;
	struct fg_err err = { 0, "" };
	struct walk *walk = calloc(1, sizeof(*walk));
	int64_t snap = 0, last = 0, hrev = 0;
	char key[16], value[16], end[16];

	lab_up(NULL);
	e = handle(fg_etcd_lab_endpoints(lab), 5000);
	w = handle(fg_etcd_lab_endpoints(lab), 5000);
	for (int i = 0; i < 25; i++) {
		snprintf(key, sizeof(key), "/p/%02d", i);
		snprintf(value, sizeof(value), "v%d", i);
		last = put(e, key, value);
	}
	put(e, "/q", "outside the prefix");
	fg_etcd_prefix_end("/p/", end);
	cr_assert_str_eq(end, "/p0");

	walk->writer = w;
	cr_assert_eq(fg_etcd_range(e, "/p/", end, 0, 4, walk_kv, walk, &snap, &err), 0, "%s", err.msg);
	cr_assert_eq(snap, last + 1, "the snapshot is the first page's revision");
	cr_assert_eq(walk->seen, 25, "7 pages of 4: the 25 keys of the snapshot, no more, no less");
	for (int i = 0; i < 25; i++) {
		snprintf(key, sizeof(key), "/p/%02d", i);
		snprintf(value, sizeof(value), "v%d", i);
		cr_assert_str_eq(walk->keys[i], key);
		cr_assert_str_eq(walk->values[i], value);
	}
	cr_assert_leq(walk->max_mod, snap);

	/* Now: the writes are there. */
	memset(walk, 0, sizeof(*walk));
	cr_assert_eq(fg_etcd_range(e, "/p/", end, 0, 4, walk_kv, walk, &hrev, &err), 0, "%s", err.msg);
	cr_assert_eq(hrev, snap + 4);
	cr_assert_eq(walk->seen, 26);
	cr_assert_str_eq(walk->keys[6], "/p/05a");
	cr_assert_str_eq(walk->values[21], "changed");
	cr_assert_str_eq(walk->keys[25], "/p/99");

	/* The old snapshot by its revision, in pages of 3. */
	memset(walk, 0, sizeof(*walk));
	cr_assert_eq(fg_etcd_range(e, "/p/", end, snap, 3, walk_kv, walk, &hrev, &err), 0, "%s", err.msg);
	cr_assert_eq(hrev, snap);
	cr_assert_eq(walk->seen, 25);
	cr_assert_str_eq(walk->values[20], "v20");

	/* "" as range end: every key from /p/ on, /q included. */
	memset(walk, 0, sizeof(*walk));
	cr_assert_eq(fg_etcd_range(e, "/p/", "", 0, 0, walk_kv, walk, NULL, &err), 0, "%s", err.msg);
	cr_assert_eq(walk->seen, 27);
	cr_assert_str_eq(walk->keys[26], "/q");
	free(walk);
}

static void
fill_ops(struct fg_etcd_op *ops, char (*keys)[16], unsigned int n, const char *value)
{
	for (unsigned int i = 0; i < n; i++) {
		snprintf(keys[i], 16, "/big/%05u", i);
		ops[i] = (struct fg_etcd_op){ FG_ETCD_PUT, keys[i], value };
	}
}

Test(etcd, limits_refused_with_e2big_and_nothing_written)
{
	static const char *const extra[] = {
		"--max-txn-ops", "50", "--max-request-bytes", "65536", NULL,
	};
	static struct fg_etcd_op ops[51];
	static char keys[51][16];
	struct fg_etcd *e;
	struct fg_err err = { 0, "" };
	int64_t rev0 = 0, rev = 0;
	bool ok;
	char *huge;

	lab_up(extra);
	e = handle(fg_etcd_lab_endpoints(lab), 5000);
	rev0 = put(e, "/other", "x");
	fill_ops(ops, keys, 51, "v");
	cr_assert_eq(fg_etcd_txn(e, NULL, 0, ops, 51, NULL, 0, &ok, &rev, &err), -E2BIG);
	cr_assert_eq(err.code, E2BIG);
	cr_assert_not_null(strstr(err.msg, "too many operations"), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "51"), "the message names the op count: %s", err.msg);
	cr_assert_eq(count(e, "/big/"), 0);

	/* One value over --max-request-bytes. */
	huge = malloc(100 * 1024 + 1);
	memset(huge, 'h', 100 * 1024);
	huge[100 * 1024] = '\0';
	ops[0].value = huge;
	memset(&err, 0, sizeof(err));
	cr_assert_eq(fg_etcd_txn(e, NULL, 0, ops, 1, NULL, 0, &ok, &rev, &err), -E2BIG);
	cr_assert_not_null(strstr(err.msg, "too large"), "%s", err.msg);
	free(huge);
	cr_assert_eq(count(e, "/big/"), 0);
	cr_assert_eq(fg_etcd_count(e, "/", "", 0, NULL, &rev, &err), 0);
	cr_assert_eq(rev, rev0, "no revision was written");

	/* At the limit it goes through, as one revision. */
	fill_ops(ops, keys, 50, "v");
	cr_assert_eq(fg_etcd_txn(e, NULL, 0, ops, 50, NULL, 0, &ok, &rev, &err), 0, "%s", err.msg);
	cr_assert_eq(rev, rev0 + 1);
	cr_assert_eq(count(e, "/big/"), 50);
}

/* Watch results: one row per callback. */
#define SEEN_MAX 256
struct seen {
	unsigned int calls;
	size_t events;
	int64_t rev[SEEN_MAX];
	size_t n[SEEN_MAX];
	char evs[SEEN_MAX][128];    /* "+key=value -key ..." (cut at 127) */
	bool in_order;              /* every event's key after the one before */
	char last_key[64];
};

static int
watch_fn(void *ctx, int64_t revision, const struct fg_etcd_event *ev, size_t n)
{
	struct seen *s = ctx;
	FILE *f;

	cr_assert_lt(s->calls, SEEN_MAX);
	cr_assert_gt(n, 0);
	s->rev[s->calls] = revision;
	s->n[s->calls] = n;
	s->events += n;
	f = fmemopen(s->evs[s->calls], sizeof(s->evs[0]), "w");
	cr_assert_not_null(f);
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(ev[i].kv.mod_revision, revision);
		cr_assert_eq(strlen(ev[i].kv.key), ev[i].kv.key_len);
		if (ev[i].is_delete)
			fprintf(f, "%s-%s", i ? " " : "", ev[i].kv.key);
		else
			fprintf(f, "%s+%s=%s", i ? " " : "", ev[i].kv.key, ev[i].kv.value);
		if (strcmp(ev[i].kv.key, s->last_key) <= 0)
			s->in_order = false;
		snprintf(s->last_key, sizeof(s->last_key), "%s", ev[i].kv.key);
	}
	fclose(f);
	s->calls++;
	return 0;
}

/* Poll until want calls were seen or the watch ends: the last poll's code. */
static int
watch_until(struct fg_etcd *e, struct seen *s, unsigned int want, int64_t *compact,
	    int64_t *progress, struct fg_err *err)
{
	int64_t deadline = ms_now() + 10000;
	int rc = 0;

	while (s->calls < want && ms_now() < deadline) {
		rc = fg_etcd_watch_poll(e, 200, watch_fn, s, compact, progress, err);
		if (rc < 0)
			return rc;
	}
	return rc;
}

Test(etcd, compacted_revision_is_estale_for_range_and_watch)
{
	struct fg_etcd *e;
	struct fg_err err = { 0, "" };
	struct seen s = { 0 };
	int64_t r[5], compact = 0, hrev;
	char end[8];
	struct walk *walk = calloc(1, sizeof(*walk));

	lab_up(NULL);
	e = handle(fg_etcd_lab_endpoints(lab), 5000);
	for (int i = 0; i < 5; i++) {
		char v[8];

		snprintf(v, sizeof(v), "v%d", i);
		r[i] = put(e, "/c/x", v);
	}
	cr_assert_eq(fg_etcd_compact(e, r[2], &err), 0, "%s", err.msg);
	fg_etcd_prefix_end("/c/", end);

	cr_assert_eq(fg_etcd_range(e, "/c/", end, r[1], 0, walk_kv, walk, &hrev, &err), -ESTALE);
	cr_assert_eq(err.code, ESTALE);
	cr_assert_not_null(strstr(err.msg, "compacted"), "%s", err.msg);
	cr_assert_eq(walk->seen, 0);
	/* The compact revision itself is still there. */
	cr_assert_eq(fg_etcd_range(e, "/c/", end, r[2], 0, walk_kv, walk, &hrev, &err), 0, "%s", err.msg);
	cr_assert_eq(walk->seen, 1);
	cr_assert_str_eq(walk->values[0], "v2");
	/* Compacting again below it is stale too. */
	cr_assert_eq(fg_etcd_compact(e, r[1], &err), -ESTALE);

	cr_assert_eq(fg_etcd_watch_start(e, "/c/", end, r[1], &err), 0, "%s", err.msg);
	cr_assert_eq(watch_until(e, &s, 1, &compact, NULL, &err), -ESTALE, "%s", err.msg);
	cr_assert_eq(compact, r[2]);
	cr_assert_eq(s.calls, 0);
	cr_assert_not_null(strstr(err.msg, "compact revision"), "%s", err.msg);
	cr_assert(!fg_etcd_watching(e));

	/* From the compact revision on, the watch replays the history. */
	cr_assert_eq(fg_etcd_watch_start(e, "/c/", end, r[2], &err), 0, "%s", err.msg);
	cr_assert_geq(watch_until(e, &s, 3, &compact, NULL, &err), 0, "%s", err.msg);
	cr_assert_eq(s.calls, 3);
	cr_assert_eq(s.rev[0], r[2]);
	cr_assert_eq(s.rev[2], r[4]);
	cr_assert_str_eq(s.evs[2], "+/c/x=v4");
	free(walk);
}

Test(etcd, watch_delivers_a_txn_as_one_revision)
{
	struct fg_etcd *e, *w;
	struct fg_err err = { 0, "" };
	struct seen s = { 0 };
	int64_t r0, rev = 0, progress = 0;
	bool ok;
	struct fg_etcd_op ops[] = {
		{ FG_ETCD_PUT, "/w/b", "2" }, { FG_ETCD_PUT, "/w/a", "1" },
		{ FG_ETCD_DELETE, "/w/d", NULL }, { FG_ETCD_PUT, "/w/c", "3" },
	};

	lab_up(NULL);
	e = handle(fg_etcd_lab_endpoints(lab), 5000);
	w = handle(fg_etcd_lab_endpoints(lab), 5000);
	r0 = put(e, "/w/d", "old");
	put(e, "/x", "not watched");
	cr_assert_eq(fg_etcd_watch_start(w, "/w/", "/w0", r0 + 1, &err), 0, "%s", err.msg);
	cr_assert(fg_etcd_watching(w));
	/* Connected and created before the writes (not needed: the start
	 * revision covers them, but this also exercises an empty poll). */
	cr_assert_eq(fg_etcd_watch_poll(w, 300, watch_fn, &s, NULL, &progress, &err), 0, "%s", err.msg);
	cr_assert_eq(fg_etcd_txn(e, NULL, 0, ops, 4, NULL, 0, &ok, &rev, &err), 0, "%s", err.msg);
	put(e, "/w/e", "5");
	cr_assert_geq(watch_until(w, &s, 2, NULL, &progress, &err), 0, "%s", err.msg);
	cr_assert_eq(s.calls, 2);
	cr_assert_eq(s.rev[0], rev);
	cr_assert_eq(s.n[0], 4);
	cr_assert_str_eq(s.evs[0], "+/w/b=2 +/w/a=1 -/w/d +/w/c=3");
	cr_assert_eq(s.rev[1], rev + 1);
	cr_assert_str_eq(s.evs[1], "+/w/e=5");
	cr_assert_eq(progress, rev + 1);
}

Test(etcd, watch_reassembles_large_and_batched_responses)
{
	static const char *const extra[] = {
		"--max-txn-ops", "1000", "--max-request-bytes", "8388608", NULL,
	};
	static struct fg_etcd_op ops[600];
	static char keys[600][16];
	struct fg_etcd *e, *w;
	struct fg_err err = { 0, "" };
	struct seen *s = calloc(2, sizeof(*s));
	char *value = malloc(2049), key[16];
	int64_t r0, big = 0, last = 0, progress = 0;
	bool ok;

	lab_up(extra);
	e = handle(fg_etcd_lab_endpoints(lab), 10000);
	w = handle(fg_etcd_lab_endpoints(lab), 10000);
	r0 = put(e, "/other", "x");
	cr_assert_eq(fg_etcd_watch_start(w, "/r/", "/r0", r0 + 1, &err), 0, "%s", err.msg);
	cr_assert_eq(fg_etcd_watch_poll(w, 300, watch_fn, &s[0], NULL, NULL, &err), 0, "%s", err.msg);

	/* One revision of 600 events of 2 KiB: one response of about 1.7 MB,
	 * which reaches the client in many pieces. */
	memset(value, 'z', 2048);
	value[2048] = '\0';
	for (unsigned int i = 0; i < 600; i++) {
		snprintf(keys[i], sizeof(keys[i]), "/r/big/%03u", i);
		ops[i] = (struct fg_etcd_op){ FG_ETCD_PUT, keys[i], value };
	}
	cr_assert_eq(fg_etcd_txn(e, NULL, 0, ops, 600, NULL, 0, &ok, &big, &err), 0, "%s", err.msg);
	/* Then 150 small revisions in a row, which arrive several to a read. */
	for (int i = 0; i < 150; i++) {
		snprintf(key, sizeof(key), "/r/s/%03d", i);
		last = put(e, key, "s");
	}
	s[0].in_order = true;
	cr_assert_geq(watch_until(w, &s[0], 151, NULL, &progress, &err), 0, "%s", err.msg);
	cr_assert_eq(s[0].calls, 151);
	cr_assert_eq(s[0].rev[0], big);
	cr_assert_eq(s[0].n[0], 600, "the big txn is one call");
	cr_assert_eq(s[0].events, 750);
	cr_assert(s[0].in_order, "events in key order as written");
	for (int i = 1; i <= 150; i++)
		cr_assert_eq(s[0].rev[i], big + i);
	cr_assert_eq(progress, last);

	/* Catching up from the start: etcd sends many revisions per response. */
	s[1].in_order = true;
	cr_assert_eq(fg_etcd_watch_start(w, "/r/", "/r0", r0 + 1, &err), 0, "%s", err.msg);
	cr_assert_geq(watch_until(w, &s[1], 151, NULL, &progress, &err), 0, "%s", err.msg);
	cr_assert_eq(s[1].calls, 151);
	cr_assert_eq(s[1].n[0], 600);
	cr_assert_eq(s[1].rev[150], last);
	cr_assert(s[1].in_order);
	free(value);
	free(s);
}

Test(etcd, progress_notifications_move_progress_rev)
{
	static const char *const extra[] = {
		"--experimental-watch-progress-notify-interval", "300ms", NULL,
	};
	struct fg_etcd *e, *w;
	struct fg_err err = { 0, "" };
	struct seen s = { 0 };
	int64_t r, progress = 0, deadline;
	int rc = 0;

	lab_up(extra);
	e = handle(fg_etcd_lab_endpoints(lab), 5000);
	w = handle(fg_etcd_lab_endpoints(lab), 5000);
	put(e, "/w/a", "1");
	r = put(e, "/elsewhere", "2");
	/* Nothing under /w/ changes from r on: only notifications come. */
	cr_assert_eq(fg_etcd_watch_start(w, "/w/", "/w0", r, &err), 0, "%s", err.msg);
	deadline = ms_now() + 5000;
	while (progress < r && ms_now() < deadline && rc >= 0)
		rc = fg_etcd_watch_poll(w, 200, watch_fn, &s, NULL, &progress, &err);
	cr_assert_geq(rc, 0, "%s", err.msg);
	cr_assert_eq(s.calls, 0);
	cr_assert_eq(progress, r, "a notification says everything up to %ld was sent", (long)r);
}

Test(etcd, watch_ends_when_its_member_dies_and_resumes_elsewhere)
{
	struct fg_etcd *w, *writer;
	struct fg_err err = { 0, "" };
	struct seen s = { 0 };
	int64_t revs[10], progress = 0;
	int f, rc;

	lab_up(NULL);
	f = fg_etcd_lab_follower(lab);
	cr_assert_geq(f, 0);
	writer = handle(fg_etcd_lab_endpoints(lab), 5000);
	w = handle(endpoints_from((unsigned int)f), 5000);
	for (int i = 0; i < 5; i++) {
		char k[16];

		snprintf(k, sizeof(k), "/k/%d", i);
		revs[i] = put(writer, k, "before");
	}
	cr_assert_eq(fg_etcd_watch_start(w, "/k/", "/k0", revs[0], &err), 0, "%s", err.msg);
	cr_assert_str_eq(fg_etcd_watch_endpoint(w), fg_etcd_lab_endpoint(lab, (unsigned int)f));
	cr_assert_geq(watch_until(w, &s, 5, NULL, &progress, &err), 0, "%s", err.msg);
	cr_assert_eq(s.calls, 5, "%s", err.msg);
	cr_assert_eq(progress, revs[4]);

	cr_assert_eq(fg_etcd_lab_kill(lab, (unsigned int)f), 0);
	for (int i = 5; i < 10; i++) {
		char k[16];

		snprintf(k, sizeof(k), "/k/%d", i);
		revs[i] = put(writer, k, "after");
	}
	rc = watch_until(w, &s, 6, NULL, &progress, &err);
	cr_assert_eq(rc, -ECONNRESET, "the watch ends: %d %s", rc, err.msg);
	cr_assert_not_null(strstr(err.msg, fg_etcd_lab_endpoint(lab, (unsigned int)f)),
			   "the message names the member: %s", err.msg);
	cr_assert(!fg_etcd_watching(w));
	cr_assert_eq(s.calls, 5, "nothing from the dead member");

	/* Resume after the last revision seen, on another member. */
	cr_assert_eq(fg_etcd_watch_start(w, "/k/", "/k0", progress + 1, &err), 0, "%s", err.msg);
	cr_assert_str_neq(fg_etcd_watch_endpoint(w), fg_etcd_lab_endpoint(lab, (unsigned int)f));
	rc = watch_until(w, &s, 10, NULL, &progress, &err);
	cr_assert_geq(rc, 0, "%s", err.msg);
	cr_assert_eq(s.calls, 10);
	for (int i = 0; i < 10; i++) {
		cr_assert_eq(s.rev[i], revs[i], "revision %d: %ld, wrote %ld", i,
			     (long)s.rev[i], (long)revs[i]);
		cr_assert_eq(s.n[i], 1);
	}
}

Test(etcd, requests_fail_over_from_a_killed_member)
{
	struct fg_etcd *e;
	int f;
	int64_t t0;

	lab_up(NULL);
	f = fg_etcd_lab_follower(lab);
	cr_assert_geq(f, 0);
	e = handle(endpoints_from((unsigned int)f), 2000);
	put(e, "/k", "1");
	cr_assert_str_eq(fg_etcd_endpoint(e), fg_etcd_lab_endpoint(lab, (unsigned int)f));
	cr_assert_eq(fg_etcd_lab_kill(lab, (unsigned int)f), 0);
	t0 = ms_now();
	put(e, "/k", "2");
	cr_assert_lt(ms_now() - t0, 1500, "a refused connection moves on at once");
	cr_assert_str_neq(fg_etcd_endpoint(e), fg_etcd_lab_endpoint(lab, (unsigned int)f));
	cr_assert_str_eq(get(e, "/k"), "2");

	/* Back on its data, it serves the writes it missed. */
	cr_assert_eq(fg_etcd_lab_restart(lab, (unsigned int)f), 0);
	struct fg_etcd *one = handle(fg_etcd_lab_endpoint(lab, (unsigned int)f), 2000);
	cr_assert_str_eq(get(one, "/k"), "2");
}

Test(etcd, requests_fail_over_from_a_frozen_member)
{
	struct fg_etcd *e, *other;
	int f;
	int64_t t0, took;

	lab_up(NULL);
	f = fg_etcd_lab_follower(lab);
	cr_assert_geq(f, 0);
	e = handle(endpoints_from((unsigned int)f), 1000);
	put(e, "/k", "1");
	cr_assert_str_eq(fg_etcd_endpoint(e), fg_etcd_lab_endpoint(lab, (unsigned int)f));
	cr_assert_eq(fg_etcd_lab_freeze(lab, (unsigned int)f), 0);
	t0 = ms_now();
	put(e, "/k", "2");
	took = ms_now() - t0;
	cr_assert_geq(took, 900, "the frozen member held the request until the timeout (%ld ms)",
		      (long)took);
	cr_assert_lt(took, 4000, "%ld ms", (long)took);
	cr_assert_str_neq(fg_etcd_endpoint(e), fg_etcd_lab_endpoint(lab, (unsigned int)f));
	/* The next request stays on the member that answered: no wait. */
	t0 = ms_now();
	cr_assert_str_eq(get(e, "/k"), "2");
	cr_assert_lt(ms_now() - t0, 900);

	/* With the frozen member alone, the timeout is the error. */
	other = handle(fg_etcd_lab_endpoint(lab, (unsigned int)f), 500);
	struct fg_err err = { 0, "" };
	struct fg_etcd_kv kv;
	cr_assert_eq(fg_etcd_get(other, "/k", &kv, NULL, &err), -ETIMEDOUT, "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, fg_etcd_lab_endpoint(lab, (unsigned int)f)), "%s", err.msg);

	/* A watch sent to it gets no answer: over after the request timeout,
	 * and the next watch goes to another member. */
	struct fg_etcd *w = handle(endpoints_from((unsigned int)f), 700);
	struct seen *s = calloc(1, sizeof(*s));
	int rc = 0;
	cr_assert_eq(fg_etcd_watch_start(w, "/k", NULL, 1, &err), 0, "%s", err.msg);
	cr_assert_str_eq(fg_etcd_watch_endpoint(w), fg_etcd_lab_endpoint(lab, (unsigned int)f));
	t0 = ms_now();
	while (rc >= 0 && ms_now() - t0 < 5000)
		rc = fg_etcd_watch_poll(w, 100, watch_fn, s, NULL, NULL, &err);
	cr_assert_eq(rc, -ECONNRESET, "%s", err.msg);
	/* Over the gateway the watch waits for the request timeout (700 ms);
	 * over gRPC its connection attempt is given the connect timeout
	 * (500 ms) and fails first. */
	if (o_grpc()) {
		cr_assert_geq(ms_now() - t0, 400, "over after %ld ms: %s", (long)(ms_now() - t0), err.msg);
		cr_assert_not_null(strstr(err.msg, "connect"), "%s", err.msg);
	} else {
		cr_assert_geq(ms_now() - t0, 600, "over after %ld ms: %s", (long)(ms_now() - t0), err.msg);
		cr_assert_not_null(strstr(err.msg, "no answer"), "%s", err.msg);
	}
	cr_assert_eq(fg_etcd_watch_start(w, "/k", NULL, 1, &err), 0, "%s", err.msg);
	cr_assert_str_neq(fg_etcd_watch_endpoint(w), fg_etcd_lab_endpoint(lab, (unsigned int)f));
	cr_assert_geq(watch_until(w, s, 2, NULL, NULL, &err), 0, "%s", err.msg);
	/* Both puts of /k, from revision 1. The second may be there twice:
	 * under load the member can pass the first attempt on before it
	 * freezes, and the client then sends it again elsewhere (the store's
	 * own writes compare revisions, so a repeat changes nothing there). */
	cr_assert_geq(s->calls, 2, "both puts of /k, from revision 1");
	cr_assert_str_eq(s->evs[1], "+/k=2");
	free(s);

	cr_assert_eq(fg_etcd_lab_thaw(lab, (unsigned int)f), 0);
	cr_assert_str_eq(get(other, "/k"), "2");
}

Test(etcd, bad_endpoints_are_refused_naming_the_bad_part)
{
	static const struct {
		const char *endpoints, *named, *why;
	} cases[] = {
		{ "", "endpoint 1", "empty" },
		{ "127.0.0.1:2379", "\"127.0.0.1:2379\"", "http://" },
		{ "http://127.0.0.1:2379,,http://127.0.0.1:2380", "endpoint 2", "empty" },
		{ "http://127.0.0.1:2379, ", "endpoint 2", "empty" },
		{ "http://a:1,ftp://b:2", "\"ftp://b:2\"", "http://" },
		{ "http://", "\"http://\"", "no host" },
		{ "http://:2379", "\"http://:2379\"", "no host" },
		{ "http://h:99999", "\"http://h:99999\"", "1-65535" },
		{ "http://h:0", "\"http://h:0\"", "1-65535" },
		{ "http://h:23x", "\"http://h:23x\"", "not a number" },
		{ "http://h:", "\"http://h:\"", "empty port" },
		{ "http://h:1/v3", "\"http://h:1/v3\"", "no path" },
		{ "http://h :1", "\"http://h :1\"", "space" },
	};
	struct fg_etcd *e;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fg_etcd_opts o = { .endpoints = cases[i].endpoints };
		struct fg_err err = { 0, "" };

		e = fg_etcd_open(&o, &err);
		cr_assert_null(e, "\"%s\" accepted", cases[i].endpoints);
		cr_assert_eq(err.code, EINVAL);
		cr_assert_not_null(strstr(err.msg, cases[i].named), "\"%s\": %s",
				   cases[i].endpoints, err.msg);
		cr_assert_not_null(strstr(err.msg, cases[i].why), "\"%s\": %s",
				   cases[i].endpoints, err.msg);
	}

	/* Good ones, with spaces and a trailing '/'; nothing is contacted. */
	struct fg_etcd_opts good = { .endpoints = " http://127.0.0.1:1/ , https://[::1]:2,http://h" };
	struct fg_err err = { 0, "" };
	e = handle(good.endpoints, 300);
	cr_assert_str_eq(fg_etcd_endpoint(e), "http://127.0.0.1:1");

	/* Nothing listens there: refused, naming the endpoint, nothing waits. */
	struct fg_etcd *dead = handle("http://127.0.0.1:1", 300);
	struct fg_etcd_kv kv;
	cr_assert_eq(fg_etcd_get(dead, "/k", &kv, NULL, &err), -ECONNREFUSED, "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "http://127.0.0.1:1/v3/kv/range"), "%s", err.msg);
}

/* A process still alive (not gone, not a zombie). */
static bool
alive(pid_t pid)
{
	char path[64], stat[256];
	FILE *f;
	bool live = false;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return false;
	if (fgets(stat, sizeof(stat), f) != NULL) {
		const char *state = strrchr(stat, ')');

		live = state != NULL && state[1] == ' ' && state[2] != 'Z' && state[2] != 'X';
	}
	fclose(f);
	return live;
}

/* A child starts a 1-member lab, reports its folder and member, then ends
 * by exit() or by SIGKILL without stopping the lab. */
static void
orphan_lab(int how, char *dir, size_t dir_len, pid_t *member)
{
	int fds[2], status;
	char line[256] = "";
	pid_t child;
	FILE *f;

	cr_assert_eq(pipe(fds), 0);
	child = fork();
	cr_assert_geq(child, 0);
	if (child == 0) {
		struct fg_err err = { 0, "" };
		struct fg_etcd_lab *l = fg_etcd_lab_start(1, NULL, &err);

		close(fds[0]);
		if (l == NULL)
			_exit(3);
		dprintf(fds[1], "%d %s\n", fg_etcd_lab_pid(l, 0), fg_etcd_lab_dir(l));
		close(fds[1]);
		if (how == SIGKILL)
			raise(SIGKILL);
		exit(0);
	}
	close(fds[1]);
	f = fdopen(fds[0], "r");
	cr_assert(fgets(line, sizeof(line), f) != NULL, "the child started no lab");
	fclose(f);
	cr_assert_eq(waitpid(child, &status, 0), child);
	cr_assert_eq(sscanf(line, "%d %255s", member, line), 2);
	snprintf(dir, dir_len, "%s", line);
	cr_assert_gt(*member, 0);
}

Test(etcd, lab_leaves_nothing_behind_when_its_process_ends)
{
	char dir[256];
	struct stat st;
	pid_t member;
	int64_t deadline;

	/* exit() without a stop: the members and the folder go. */
	orphan_lab(0, dir, sizeof(dir), &member);
	cr_assert(!alive(member), "member %d still runs", (int)member);
	cr_assert_neq(stat(dir, &st), 0, "%s is left behind", dir);

	/* SIGKILL: the members die with it; the folder stays until the next
	 * lab starts. */
	orphan_lab(SIGKILL, dir, sizeof(dir), &member);
	deadline = ms_now() + 5000;
	while (alive(member) && ms_now() < deadline)
		usleep(20 * 1000);
	cr_assert(!alive(member), "member %d outlived its starter", (int)member);
	cr_assert_eq(stat(dir, &st), 0);
	struct fg_err err = { 0, "" };
	lab = fg_etcd_lab_start(1, NULL, &err);
	cr_assert_not_null(lab, "%s", err.msg);
	cr_assert_neq(stat(dir, &st), 0, "%s is left behind", dir);
	cr_assert_eq(stat(fg_etcd_lab_dir(lab), &st), 0);
}

/* fg_etcd_get_many: 300 keys (three requests of at most 128), every other
 * one present; each key is answered once, in order, with its own value and
 * mod_revision, and an absent key as NULL. */
struct many_seen {
	unsigned int calls;
	int64_t rev[300];
	bool present[300], in_order;
	char value[300][32];
};

static int
many_cb(void *ctx, size_t i, const struct fg_etcd_kv *kv)
{
	struct many_seen *s = ctx;

	if (i != s->calls)
		s->in_order = false;
	s->calls++;
	if (i >= 300)
		return -EINVAL;
	s->present[i] = kv != NULL;
	if (kv != NULL) {
		s->rev[i] = kv->mod_revision;
		snprintf(s->value[i], sizeof(s->value[i]), "%.*s", (int)kv->value_len, kv->value);
	}
	return 0;
}

static int
many_stop_cb(void *ctx, size_t i, const struct fg_etcd_kv *kv)
{
	(void)kv;
	*(size_t *)ctx = i;
	return i == 5 ? -ECANCELED : 0;
}

Test(etcd, get_many_reads_every_key_in_few_requests)
{
	static struct many_seen seen = { .in_order = true };
	static char keys[300][32];
	const char *kp[300];
	int64_t revs[300] = { 0 };
	struct fg_err err = { 0, "" };
	struct fg_etcd *e;
	size_t stopped_at = 0;

	lab_up(NULL);
	e = handle(fg_etcd_lab_endpoints(lab), 5000);
	for (unsigned int i = 0; i < 300; i++) {
		snprintf(keys[i], sizeof(keys[i]), "/many/%03u", i);
		kp[i] = keys[i];
		if (i % 2 == 0) {
			char v[32];

			snprintf(v, sizeof(v), "value-%u", i);
			revs[i] = put(e, keys[i], v);
		}
	}
	cr_assert_eq(fg_etcd_get_many(e, kp, 300, many_cb, &seen, &err), 0, "%s", err.msg);
	cr_expect_eq(seen.calls, 300, "%u answers to 300 keys", seen.calls);
	cr_expect(seen.in_order, "the answers came out of order");
	for (unsigned int i = 0; i < 300; i++) {
		char want[32];

		snprintf(want, sizeof(want), "value-%u", i);
		cr_expect_eq(seen.present[i], i % 2 == 0, "key %s: present %d", keys[i], seen.present[i]);
		if (i % 2 == 0) {
			cr_expect_str_eq(seen.value[i], want, "key %s", keys[i]);
			cr_expect_eq(seen.rev[i], revs[i], "key %s: mod_revision", keys[i]);
		}
	}
	/* The callback's error stops the reads and is passed on. */
	cr_expect_eq(fg_etcd_get_many(e, kp, 300, many_stop_cb, &stopped_at, &err), -ECANCELED);
	cr_expect_eq(stopped_at, 5, "went on after the callback's error (at %zu)", stopped_at);
	/* Nothing to read: no request, no call. */
	cr_expect_eq(fg_etcd_get_many(e, kp, 0, many_cb, &seen, &err), 0);
}

/* ---- transactions over gRPC (fg_etcd_opts.grpc) ---- */

static struct fg_etcd *
handle_grpc(const char *endpoints, unsigned int timeout_ms)
{
	return handle_with(endpoints, timeout_ms, true);
}

/* The same transactions as over the gateway: both branches, deletes, the
 * revision, reads of many keys; read back through the gateway. */
Test(etcd, grpc_transactions_take_both_branches_and_read_many)
{
	struct fg_etcd *g, *h;
	struct fg_etcd_kv kv;
	struct fg_etcd_cmp absent = { "/g/a", FG_ETCD_VERSION, FG_ETCD_EQUAL, 0, NULL };
	struct fg_etcd_op ops[] = {
		{ FG_ETCD_PUT, "/g/a", "one" }, { FG_ETCD_PUT, "/g/b", "two\n\"x\"" },
	};
	struct fg_etcd_op on_fail = { FG_ETCD_PUT, "/g/failed", "yes" };
	struct fg_etcd_op del = { FG_ETCD_DELETE, "/g/a", NULL };
	static struct many_seen seen = { .in_order = true };
	const char *keys[] = { "/g/a", "/g/b", "/g/nothing" };
	struct fg_err err = { 0, "" };
	int64_t rev = 0, rev2 = 0;
	bool ok = false;

	lab_up(NULL);
	g = handle_grpc(endpoints_from(1), 5000);
	h = handle(fg_etcd_lab_endpoints(lab), 5000);
	cr_assert_eq(fg_etcd_txn(g, &absent, 1, ops, 2, &on_fail, 1, &ok, &rev, &err), 0, "%s", err.msg);
	cr_assert(ok, "the key was absent: the success branch runs");
	cr_assert_eq(fg_etcd_get(h, "/g/a", &kv, NULL, &err), 1, "%s", err.msg);
	cr_assert_str_eq(kv.value, "one");
	cr_assert_eq(kv.mod_revision, rev, "the txn's revision is the keys' mod_revision");
	cr_assert_str_eq(get(h, "/g/b"), "two\n\"x\"");
	cr_assert_null(get(h, "/g/failed"));

	/* The compare fails now: only the failure branch runs. */
	cr_assert_eq(fg_etcd_txn(g, &absent, 1, ops, 1, &on_fail, 1, &ok, &rev2, &err), 0, "%s", err.msg);
	cr_assert(!ok);
	cr_assert_gt(rev2, rev);
	cr_assert_str_eq(get(h, "/g/failed"), "yes");
	cr_assert_str_eq(get(h, "/g/a"), "one");

	/* A compare on the mod_revision, then a delete. */
	struct fg_etcd_cmp same = { "/g/b", FG_ETCD_MOD, FG_ETCD_EQUAL, rev, NULL };
	cr_assert_eq(fg_etcd_txn(g, &same, 1, &del, 1, NULL, 0, &ok, NULL, &err), 0, "%s", err.msg);
	cr_assert(ok);
	cr_assert_null(get(h, "/g/a"));

	/* Many keys in one request: absent, present, absent. */
	cr_assert_eq(fg_etcd_get_many(g, keys, 3, many_cb, &seen, &err), 0, "%s", err.msg);
	cr_expect_eq(seen.calls, 3);
	cr_expect(!seen.present[0] && seen.present[1] && !seen.present[2]);
	cr_expect_str_eq(seen.value[1], "two\n\"x\"");
	cr_expect_eq(seen.rev[1], rev);
}

/* etcd's limits over gRPC: refused as E2BIG, named, nothing written; a dead
 * first endpoint is passed over; no endpoint at all is an error naming it;
 * an https:// endpoint is refused for gRPC at open. */
Test(etcd, grpc_limits_failover_and_bad_endpoints)
{
	static const char *const extra[] = {
		"--max-txn-ops", "50", "--max-request-bytes", "65536", NULL,
	};
	static struct fg_etcd_op ops[51];
	static char keys[51][16];
	char eps[512];
	struct fg_etcd *g, *h;
	struct fg_etcd_opts bad = { .endpoints = "https://127.0.0.1:2379", .grpc = true };
	struct fg_err err = { 0, "" };
	int64_t rev = 0;
	bool ok;

	lab_up(extra);
	h = handle(fg_etcd_lab_endpoints(lab), 5000);
	g = handle_grpc(fg_etcd_lab_endpoints(lab), 5000);
	fill_ops(ops, keys, 51, "v");
	cr_assert_eq(fg_etcd_txn(g, NULL, 0, ops, 51, NULL, 0, &ok, &rev, &err), -E2BIG, "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "too many operations"), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "51"), "the refusal does not say how many: %s", err.msg);
	cr_expect_null(get(h, keys[0]), "a refused txn wrote %s", keys[0]);

	/* The first endpoint answers nothing: the next one takes the txn. */
	snprintf(eps, sizeof(eps), "http://127.0.0.1:1,%s", fg_etcd_lab_endpoints(lab));
	g = handle_grpc(eps, 2000);
	cr_assert_eq(fg_etcd_txn(g, NULL, 0, ops, 1, NULL, 0, &ok, &rev, &err), 0, "%s", err.msg);
	cr_assert(ok);
	cr_assert_str_eq(get(h, keys[0]), "v");

	/* Nothing answers. */
	g = handle_grpc("http://127.0.0.1:1", 1000);
	cr_assert_lt(fg_etcd_txn(g, NULL, 0, ops, 1, NULL, 0, &ok, &rev, &err), 0);
	cr_expect(err.code == ECONNREFUSED || err.code == ETIMEDOUT, "code %d: %s", err.code, err.msg);
	cr_expect_not_null(strstr(err.msg, "127.0.0.1:1"), "%s", err.msg);
	cr_expect_not_null(strstr(err.msg, "gRPC"), "%s", err.msg);

	cr_assert_null(fg_etcd_open(&bad, &err));
	cr_expect_eq(err.code, EINVAL);
	cr_expect_not_null(strstr(err.msg, "https://127.0.0.1:2379"), "%s", err.msg);
}
