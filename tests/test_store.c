/*
 * Routers following an etcd store (docs/store.md), against a real etcd
 * cluster (tests/etcd_lab.c) and real framegate processes:
 *
 *   - two routers follow a 3-member cluster through a stream of changes with
 *     moves, while the leader is killed and restarted, a member is frozen and
 *     thawed, one router is killed -9 and restarted, and the store is
 *     compacted every 100 revisions with a delete landing at each
 *     compaction revision; both converge to the store's state at the same
 *     revision, no delete is missed, and the same traffic replayed through
 *     each router's state gets the same verdicts;
 *   - drift injected behind a router's back is found and repaired by a
 *     reconcile, and reported; a restart resumes from the journaled revision;
 *   - stale_policy closed stops forwarding within the bound when the store
 *     is unreachable, and resumes after it returns;
 *   - bad input: a value written around fgctl, a bad store configuration,
 *     a bad load file, unreachable endpoints.
 *
 * Sizes: FG_STORE_CHANGES changes (default 3000; the full size is
 * FG_STORE_CHANGES=100000, see docs/store.md).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include <pcap/pcap.h>

#include "ctl_client.h"
#include "framebuild.h"
#include "etcd.h"
#include "etcd_lab.h"
#include "store.h"
#include "support.h"

#define PREFIX "/framegate/"

static struct fg_etcd_lab *lab;
static struct fg_router_proc routers[2];
static bool router_used[2];

static const char *const lab_args[] = {
	"--max-txn-ops=100000", "--max-request-bytes=67108864", NULL,
};

static void
teardown(void)
{
	for (int i = 0; i < 2; i++)
		if (router_used[i]) {
			fg_rp_fini(&routers[i]);
			router_used[i] = false;
		}
	fg_etcd_lab_stop(lab);
	lab = NULL;
	unsetenv("FG_TEST_HOOKS");
}

static void
lab_up(unsigned int members)
{
	struct fg_err err = { 0 };

	lab = fg_etcd_lab_start(members, lab_args, &err);
	cr_assert_not_null(lab, "etcd: %s", err.msg);
}

/* A router following the lab, with more "store" settings (or ""). */
static struct fg_router_proc *
router_up(int i, const char *store_extra)
{
	char extra[2048];

	snprintf(extra, sizeof(extra),
		 "\"store\": {\"endpoints\": \"%s\", \"prefix\": \"" PREFIX "\", \"probe_ms\": 100,"
		 " \"backoff_min_ms\": 50, \"backoff_max_ms\": 1000, \"timeout_ms\": 1000%s%s},\n",
		 fg_etcd_lab_endpoints(lab), store_extra[0] ? ", " : "", store_extra);
	fg_rp_init_with(&routers[i], extra);
	router_used[i] = true;
	cr_assert(fg_rp_start(&routers[i], NULL), "router %d did not start", i);
	return &routers[i];
}

static json_t *
ask(struct fg_router_proc *rp, const char *cmd)
{
	/* A dump is compared with the store's keys and all. */
	json_t *res = fg_ctl_once(rp->sock, strcmp(cmd, "dump") == 0
					    ? json_pack("{s:s, s:b}", "cmd", cmd, "with_keys", 1)
					    : json_pack("{s:s}", "cmd", cmd));

	cr_assert_not_null(res, "no answer to %s from %s", cmd, rp->sock);
	return res;
}

static json_int_t
enforced(struct fg_router_proc *rp)
{
	json_t *h = ask(rp, "health");
	json_int_t r = json_integer_value(json_object_get(json_object_get(h, "store"),
							  "revision_enforced"));

	json_decref(h);
	return r;
}

/* Wait until the router enforces at least rev: the seconds it took. */
static double
wait_enforced(struct fg_router_proc *rp, int64_t rev, double limit)
{
	double t0 = fg_test_now();

	while (enforced(rp) < rev) {
		cr_assert(fg_test_now() - t0 < limit, "router %s: revision %" PRId64 " not enforced within %.0f s (at %" JSON_INTEGER_FORMAT ")",
			  rp->sock, rev, limit, enforced(rp));
		usleep(20000);
	}
	return fg_test_now() - t0;
}

/* Sorted op lines (without store_revision) as one string. */
static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *
sorted(json_t *lines)
{
	size_t n = json_array_size(lines), len = 0, k = 0;
	char **v = calloc(n + 1, sizeof(char *)), *out, *p;

	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(lines, i);
		/* The router's dump gives objects, the store's text. */
		char *s = json_is_string(e) ? strdup(json_string_value(e))
					    : json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER);

		if (strstr(s, "\"store_revision\"") != NULL) {
			free(s);
			continue;
		}
		v[k++] = s;
		len += strlen(s) + 1;
	}
	qsort(v, k, sizeof(char *), cmp_str);
	p = out = calloc(1, len + 1);
	for (size_t i = 0; i < k; i++) {
		p += sprintf(p, "%s\n", v[i]);
		free(v[i]);
	}
	free(v);
	return out;
}

static char *
router_state(struct fg_router_proc *rp)
{
	json_t *d = ask(rp, "dump");
	char *s = sorted(json_object_get(d, "lines"));

	json_decref(d);
	return s;
}

static int
collect(void *ctx, const char *line, size_t len)
{
	json_array_append_new(ctx, json_stringn(line, len));
	return 0;
}

static char *
store_state(struct fg_store_writer *w, int64_t *rev)
{
	json_t *a = json_array();
	struct fg_err err = { 0 };
	char *s;

	cr_assert_eq(fg_store_dump(w, 0, collect, a, rev, &err), 0, "store dump: %s", err.msg);
	s = sorted(a);
	json_decref(a);
	return s;
}

/* Ops into the store, batch_max to a transaction (FG_STORE_BATCH in the
 * big test; 1 elsewhere), retried through elections and failovers. */
#define BATCH_MAX 64
static unsigned int batch_max = 1, batch_n;
static char batch_buf[BATCH_MAX][512];

static int64_t
flush(struct fg_store_writer *w)
{
	const char *lines[BATCH_MAX];
	size_t lens[BATCH_MAX];
	struct fg_err err = { 0 };
	int64_t rev = 0;
	double t0 = fg_test_now();

	if (batch_n == 0)
		return 0;
	for (unsigned int i = 0; i < batch_n; i++) {
		lines[i] = batch_buf[i];
		lens[i] = strlen(batch_buf[i]);
	}
	for (;;) {
		int ret = fg_store_apply(w, lines, lens, batch_n, false, &rev, NULL, &err);

		if (ret == 0)
			break;
		/* The store's word on the ops themselves is final; losing a
		 * member or the leader is not. */
		cr_assert(ret == -ECONNREFUSED || ret == -ETIMEDOUT || ret == -EHOSTUNREACH ||
			  ret == -EIO || ret == -ECONNRESET || ret == -EAGAIN,
			  "%s refused: %s", lines[0], err.msg);
		cr_assert(fg_test_now() - t0 < 60, "%s: the store did not come back in 60 s: %s", lines[0], err.msg);
		usleep(50000);
	}
	batch_n = 0;
	return rev;
}

/* Queue one op; the revision when its batch was written, else 0. */
static int64_t
put(struct fg_store_writer *w, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(batch_buf[batch_n++], sizeof(batch_buf[0]), fmt, ap);
	va_end(ap);
	return batch_n < batch_max ? 0 : flush(w);
}

/* The changes' own model of who holds what. */
#define N_TENANTS 8
#define N_DEVICES 400

struct dev {
	uint32_t tenant;        /* 0: deleted / never added */
	uint32_t epoch;
	bool ever_deleted;
	bool keyed;
};

static const uint8_t dev_key[16] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };

static uint32_t
sink_of(uint32_t tenant, unsigned int k)
{
	return tenant * 10 + k;
}

static int64_t
populate(struct fg_store_writer *w)
{
	int64_t rev = 0;

	for (uint32_t t = 1; t <= N_TENANTS; t++) {
		put(w, "{\"op\":\"tenant\",\"tenant\":%u}", t);
		for (unsigned int k = 0; k < 2; k++)
			rev = put(w, "{\"op\":\"sink\",\"sink\":%u,\"tenant\":%u,\"addr\":\"10.0.%u.%u\",\"port\":%u,\"egress\":0}",
				  sink_of(t, k), t, t, k + 1, 6000 + k);
	}
	return rev;
}

/* One random change that the store must accept, per the model. */
static int64_t
change(struct fg_store_writer *w, struct dev *d, unsigned int *seed, bool want_delete)
{
	unsigned int i = (unsigned int)rand_r(seed) % N_DEVICES, kind = (unsigned int)rand_r(seed) % 10;
	uint32_t t = 1 + (uint32_t)rand_r(seed) % N_TENANTS;
	struct dev *x = &d[i];
	uint64_t id = 0x1000 + i;

	if (want_delete) {
		for (unsigned int k = 0; k < N_DEVICES && x->tenant == 0; k++)
			x = &d[i = (i + 1) % N_DEVICES], id = 0x1000 + i;
		if (x->tenant != 0)
			kind = 0;
	}
	if (x->tenant == 0) {            /* add */
		x->tenant = t;
		x->epoch = 1 + (uint32_t)rand_r(seed) % 3;
		x->keyed = false;
		return put(w, "{\"op\":\"device\",\"tenant\":%u,\"device\":\"0x%" PRIx64 "\",\"epoch\":%u,\"sinks\":[%u]}",
			   t, id, x->epoch, sink_of(t, 0));
	}
	if (kind == 0) {                 /* delete */
		uint32_t from = x->tenant;

		x->tenant = 0;
		x->ever_deleted = true;
		return put(w, "{\"op\":\"del_device\",\"tenant\":%u,\"device\":\"0x%" PRIx64 "\"}", from, id);
	}
	if (kind <= 4 && t != x->tenant) { /* move */
		uint32_t from = x->tenant;

		x->tenant = t;
		x->epoch++;                  /* a move keeps the key */
		return put(w, "{\"op\":\"move\",\"device\":\"0x%" PRIx64 "\",\"from\":%u,\"to\":%u,\"epoch\":%u,\"sinks\":[%u,%u]}",
			   id, from, t, x->epoch, sink_of(t, 1), sink_of(t, 0));
	}
	x->epoch += kind & 1;            /* update in place, sometimes a new epoch */
	x->keyed = kind == 7;
	return put(w, "{\"op\":\"device\",\"tenant\":%u,\"device\":\"0x%" PRIx64 "\",\"epoch\":%u,\"sinks\":[%u]%s}",
		   x->tenant, id, x->epoch, sink_of(x->tenant, kind & 1),
		   kind == 7 ? ",\"key\":\"000102030405060708090a0b0c0d0e0f\"" : "");
}

/* A frame for every (tenant, device slot) pair, with the device's epoch
 * and key as the model has them: a router that holds exactly the model
 * forwards one frame per held device and drops the rest as not_owned. */
static void
write_frames(const char *path, const struct dev *d, unsigned int n_devices)
{
	pcap_t *p = pcap_open_dead(DLT_EN10MB, 65535);
	pcap_dumper_t *pd = pcap_dump_open(p, path);
	uint8_t buf[512];

	cr_assert_not_null(pd, "%s: %s", path, pcap_geterr(p));
	for (unsigned int i = 0; i < n_devices; i++)
		for (uint32_t t = 1; t <= N_TENANTS; t++) {
			struct fg_frame_spec fs = {
				.ip_version = 4, .tenant_id = t, .device_id = 0x1000 + i,
				.stream_id = 1, .epoch = d[i].epoch ? d[i].epoch : 1,
				.key = d[i].keyed ? dev_key : NULL, .payload_len = 64,
				.src_ip = { 10, 9, 0, 1 }, .dst_ip = { 192, 0, 2, 1 },
			};
			struct pcap_pkthdr h = { .caplen = 0 };

			h.caplen = h.len = (bpf_u_int32)fg_frame_build(&fs, buf, sizeof(buf));
			pcap_dump((u_char *)pd, &h, buf);
		}
	pcap_dump_close(pd);
	pcap_close(p);
}

/* Replay the test's frames through a router's state: its dump, in the
 * router's order (a mapping file), loaded by `framegate replay`. */
static void
replay_stats(struct fg_router_proc *rp, const char *tag, char *stats, size_t len)
{
	char cmd[2048], map[256], out[256], sp[256];
	json_t *d = ask(rp, "dump"), *e;
	size_t i;
	FILE *f;

	snprintf(map, sizeof(map), "/tmp/fg_store_%d_%s.jsonl", (int)getpid(), tag);
	snprintf(out, sizeof(out), "/tmp/fg_store_%d_%s.pcap", (int)getpid(), tag);
	snprintf(sp, sizeof(sp), "/tmp/fg_store_%d_%s.json", (int)getpid(), tag);
	f = fopen(map, "w");
	json_array_foreach(json_object_get(d, "lines"), i, e) {
		char *line = json_is_string(e) ? strdup(json_string_value(e)) : json_dumps(e, JSON_COMPACT);

		fprintf(f, "%s\n", line);
		free(line);
	}
	fclose(f);
	json_decref(d);
	snprintf(cmd, sizeof(cmd), "%s replay --mappings %s --in /tmp/fg_store_%d_in.pcap --out %s --stats %s > /dev/null",
		 FG_FRAMEGATE, map, (int)getpid(), out, sp);
	cr_assert_eq(system(cmd), 0, "replay through %s's state failed", tag);
	f = fopen(sp, "r");
	stats[fread(stats, 1, len - 1, f)] = '\0';
	fclose(f);
	unlink(map);
	unlink(out);
	unlink(sp);
}

Test(store, two_routers_converge_through_faults_and_compactions, .fini = teardown, .timeout = 3600)
{
	const char *env = getenv("FG_STORE_CHANGES"), *benv = getenv("FG_STORE_BATCH");
	unsigned int n_changes = env ? (unsigned int)strtoul(env, NULL, 10) : 3000, seed = 7;
	unsigned int batch = benv ? (unsigned int)strtoul(benv, NULL, 10) : 1;
	struct dev *d = calloc(N_DEVICES, sizeof(*d));
	struct fg_err err = { 0 };
	struct fg_store_writer *w;
	struct fg_etcd *admin;
	struct fg_etcd_opts eo;
	int64_t rev = 0, last_compact = 0;
	unsigned int compactions = 0, deletes_at_compaction = 0;
	int leader = -1, frozen = -1;
	double t0 = fg_test_now();

	lab_up(3);
	w = fg_store_writer_open(fg_etcd_lab_endpoints(lab), PREFIX, 2000, &err);
	cr_assert_not_null(w, "%s", err.msg);
	eo = (struct fg_etcd_opts){ .endpoints = fg_etcd_lab_endpoints(lab), .timeout_ms = 2000 };
	admin = fg_etcd_open(&eo, &err);
	cr_assert_not_null(admin, "%s", err.msg);
	populate(w);
	/* Router 0 watches over gRPC (the default), router 1 through the JSON
	 * gateway: both must end at the same state. */
	router_up(0, "");
	router_up(1, "\"transport\": \"gateway\"");
	cr_assert(batch >= 1 && batch <= BATCH_MAX, "FG_STORE_BATCH: 1 to %d", BATCH_MAX);
	batch_max = batch;

	for (unsigned int c = 0; c < n_changes; c++) {
		unsigned int pct = c * 100 / n_changes;

		if (pct == 20 && leader < 0) {
			leader = fg_etcd_lab_leader(lab);
			cr_assert_geq(leader, 0, "no etcd leader");
			cr_assert_eq(fg_etcd_lab_kill(lab, (unsigned int)leader), 0);
			fprintf(stderr, "store test: killed the etcd leader (member %d) at change %u\n", leader, c);
		} else if (pct == 30 && leader >= 0 && frozen == -1) {
			cr_assert_eq(fg_etcd_lab_restart(lab, (unsigned int)leader), 0, "leader restart");
			frozen = fg_etcd_lab_leader(lab);
			cr_assert_geq(frozen, 0, "no etcd leader after the restart");
			cr_assert_eq(fg_etcd_lab_freeze(lab, (unsigned int)frozen), 0);
			fprintf(stderr, "store test: restarted member %d, froze the leader (member %d) at change %u\n",
				leader, frozen, c);
		} else if (pct == 45 && frozen >= 0) {
			cr_assert_eq(fg_etcd_lab_thaw(lab, (unsigned int)frozen), 0);
			fprintf(stderr, "store test: thawed member %d at change %u\n", frozen, c);
			frozen = -2;
		} else if (pct == 60 && routers[0].pid > 0) {
			fg_rp_kill(&routers[0], SIGKILL);
			fprintf(stderr, "store test: killed router 0 at change %u\n", c);
		} else if (pct == 70 && routers[0].pid <= 0) {
			cr_assert(fg_rp_start(&routers[0], NULL), "router 0 did not restart");
			fprintf(stderr, "store test: restarted router 0 at change %u\n", c);
		}
		int64_t r = change(w, d, &seed, false);

		rev = r ? r : rev;
		/* Every 100 revisions: a delete alone, and a compaction at
		 * exactly its revision. */
		if (r && rev - last_compact >= 100) {
			int64_t del;

			flush(w);
			batch_max = 1;
			del = change(w, d, &seed, true);
			batch_max = batch;

			if (fg_etcd_compact(admin, del, &err) == 0) {
				compactions++;
				deletes_at_compaction++;
				last_compact = del;
			}
			rev = del;
		}
	}
	{
		int64_t r = flush(w);

		rev = r ? r : rev;
	}
	batch_max = 1;
	fprintf(stderr, "store test: %u changes in transactions of %u, %u compactions, last revision %" PRId64 ", %.1f s\n",
		n_changes, batch, compactions, rev, fg_test_now() - t0);
	cr_expect_gt(compactions, 0, "no compaction happened");

	/* Both routers converge on the store at the same revision. */
	double ta = wait_enforced(&routers[0], rev, 120), tb = wait_enforced(&routers[1], rev, 120);
	int64_t srev = 0;
	char *s = store_state(w, &srev), *a = router_state(&routers[0]), *b = router_state(&routers[1]);

	fprintf(stderr, "store test: converged at revision %" PRId64 " (%.2f s and %.2f s after the last write)\n",
		rev, ta, tb);
	cr_assert_eq(enforced(&routers[0]), enforced(&routers[1]), "the routers are at different revisions");
	cr_assert_str_eq(a, s, "router 0 differs from the store");
	cr_assert_str_eq(b, s, "router 1 differs from the store");

	/* No delete is missed: each deleted device is absent from both. */
	unsigned int deleted = 0;

	for (unsigned int i = 0; i < N_DEVICES; i++) {
		char needle[64];

		snprintf(needle, sizeof(needle), "\"device\":\"0x%016x\"", 0x1000 + i);
		cr_assert_eq(strstr(a, needle) != NULL, d[i].tenant != 0,
			     "device 0x%x: held by tenant %u in the model, %s router 0", 0x1000 + i,
			     d[i].tenant, strstr(a, needle) ? "present in" : "absent from");
		deleted += d[i].tenant == 0 && d[i].ever_deleted;
	}
	cr_expect_gt(deleted, 0, "no device ended deleted");

	/* The same traffic through each router's state: the same verdicts, and
	 * exactly the model's (every deleted device's frames not_owned). */
	char in[128], sa[8192], sb[8192];
	unsigned int held = 0;

	for (unsigned int i = 0; i < N_DEVICES; i++)
		held += d[i].tenant != 0;
	snprintf(in, sizeof(in), "/tmp/fg_store_%d_in.pcap", (int)getpid());
	write_frames(in, d, N_DEVICES);
	replay_stats(&routers[0], "a", sa, sizeof(sa));
	replay_stats(&routers[1], "b", sb, sizeof(sb));
	unlink(in);
	cr_assert_str_eq(sa, sb, "the two routers' states give different verdicts");
	json_t *st = json_loads(sa, 0, NULL);

	cr_assert_not_null(st, "replay stats: %s", sa);
	cr_expect_eq(json_integer_value(json_object_get(st, "forwarded_packets")), held,
		     "forwarded %" JSON_INTEGER_FORMAT " frames, the model holds %u devices: %s",
		     json_integer_value(json_object_get(st, "forwarded_packets")), held, sa);
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(st, "drops"), "not_owned")),
		     N_DEVICES * N_TENANTS - held, "not_owned: %s", sa);
	json_decref(st);
	fprintf(stderr, "store test: %u devices ended deleted, %u deletes landed at a compaction revision\n",
		deleted, deletes_at_compaction);
	free(s);
	free(a);
	free(b);
	free(d);
	fg_etcd_close(admin);
	fg_store_writer_close(w);
}

static json_t *
health_store(struct fg_router_proc *rp)
{
	json_t *h = ask(rp, "health"), *st = json_incref(json_object_get(h, "store"));

	json_decref(h);
	cr_assert_not_null(st, "health has no store section");
	return st;
}

static json_int_t
store_num(struct fg_router_proc *rp, const char *a, const char *b)
{
	json_t *st = health_store(rp);
	json_t *v = json_object_get(st, a);
	json_int_t n;

	if (b != NULL)
		v = json_object_get(v, b);
	n = json_integer_value(v);
	json_decref(st);
	return n;
}

Test(store, drift_is_found_repaired_and_reported_and_a_restart_resumes, .fini = teardown,
     .timeout = 300)
{
	struct fg_err err = { 0 };
	struct fg_store_writer *w;
	struct fg_router_proc *r;
	struct dev d[N_DEVICES] = { 0 };
	unsigned int seed = 11;
	int64_t rev = 0, srev = 0;
	json_t *res;

	lab_up(1);
	w = fg_store_writer_open(fg_etcd_lab_endpoints(lab), PREFIX, 2000, &err);
	cr_assert_not_null(w, "%s", err.msg);
	populate(w);
	for (int i = 0; i < 200; i++)
		rev = change(w, d, &seed, false);
	setenv("FG_TEST_HOOKS", "1", 1);
	r = router_up(0, "\"reconcile_seconds\": 0");
	wait_enforced(r, rev, 30);

	/* Behind the control plane's back: one mapping removed, another's
	 * epoch raised. */
	unsigned int gone = 0, raised = 1;

	while (d[gone].tenant == 0)
		gone++;
	raised = gone + 1;
	while (d[raised].tenant == 0)
		raised++;
	char dev[32], line[256];

	snprintf(dev, sizeof(dev), "0x%x", 0x1000 + gone);
	res = fg_ctl_once(r->sock, json_pack("{s:s, s:{s:s, s:i, s:s}}", "cmd", "test.drift", "op",
					      "op", "del_device", "tenant", (int)d[gone].tenant,
					      "device", dev));
	cr_assert(json_is_true(json_object_get(res, "ok")), "drift hook refused: %s",
		  json_string_value(json_object_get(res, "error")));
	json_decref(res);
	snprintf(line, sizeof(line), "{\"op\":\"device\",\"tenant\":%u,\"device\":\"0x%x\",\"epoch\":%u,\"sinks\":[%u]}",
		 d[raised].tenant, 0x1000 + raised, d[raised].epoch + 5, sink_of(d[raised].tenant, 0));
	res = fg_ctl_once(r->sock, json_pack("{s:s, s:o}", "cmd", "test.drift", "op", json_loads(line, 0, NULL)));
	cr_assert(json_is_true(json_object_get(res, "ok")), "drift hook refused: %s",
		  json_string_value(json_object_get(res, "error")));
	json_decref(res);
	char *s = store_state(w, &srev), *a = router_state(r);

	cr_assert_str_neq(a, s, "the drift did not change the tables");
	free(a);

	/* The next reconcile finds both and repairs them. */
	json_int_t runs = store_num(r, "reconcile", "runs");

	res = ask(r, "store.reconcile");
	json_decref(res);
	for (int i = 0; i < 200 && store_num(r, "reconcile", "runs") == runs; i++)
		usleep(20000);
	cr_assert_gt(store_num(r, "reconcile", "runs"), runs, "no reconcile ran");
	cr_expect_eq(store_num(r, "reconcile", "drift_last"), 2, "drift found: %" JSON_INTEGER_FORMAT,
		     store_num(r, "reconcile", "drift_last"));
	a = router_state(r);
	cr_assert_str_eq(a, s, "the reconcile did not repair the tables");
	free(a);
	/* A clean reconcile finds nothing. */
	runs = store_num(r, "reconcile", "runs");
	json_decref(ask(r, "store.reconcile"));
	for (int i = 0; i < 200 && store_num(r, "reconcile", "runs") == runs; i++)
		usleep(20000);
	cr_expect_eq(store_num(r, "reconcile", "drift_last"), 0, "a clean table reported drift");

	/* kill -9, changes meanwhile, restart: it resumes from the journaled
	 * revision (no listing) and catches up through the watch. */
	int64_t before = enforced(r);

	fg_rp_kill(r, SIGKILL);
	for (int i = 0; i < 50; i++)
		rev = change(w, d, &seed, false);
	cr_assert(fg_rp_start(r, NULL), "router did not restart");
	json_t *st = health_store(r);
	json_int_t at_start = json_integer_value(json_object_get(st, "revision_enforced"));

	json_decref(st);
	cr_expect_geq(at_start, before, "restarted at revision %" JSON_INTEGER_FORMAT ", journaled %" PRId64,
		      at_start, before);
	wait_enforced(r, rev, 30);
	cr_expect_eq(store_num(r, "resyncs", NULL), 0, "the restart listed the store instead of resuming");
	free(s);
	s = store_state(w, &srev);
	a = router_state(r);
	cr_assert_str_eq(a, s, "after the restart the router differs from the store");
	free(a);
	free(s);
	fg_store_writer_close(w);
}

static json_int_t
stat_of(struct fg_router_proc *rp, const char *reason)
{
	json_t *st = ask(rp, "stats");
	json_int_t v = reason ? json_integer_value(json_object_get(json_object_get(st, "drops"), reason))
			      : json_integer_value(json_object_get(st, "forwarded_packets"));

	json_decref(st);
	return v;
}

Test(store, stale_policy_closed_stops_forwarding_within_the_bound_and_resumes, .fini = teardown,
     .timeout = 300)
{
	struct fg_err err = { 0 };
	struct fg_store_writer *w;
	struct fg_router_proc *r = &routers[0];
	struct dev d[N_DEVICES] = { 0 };
	char extra[1024], cmd[4096], pcap[128];
	bool serving;
	int64_t rev = 0;
	const unsigned int bound_ms = 1000;

	lab_up(1);
	w = fg_store_writer_open(fg_etcd_lab_endpoints(lab), PREFIX, 2000, &err);
	cr_assert_not_null(w, "%s", err.msg);
	populate(w);
	rev = put(w, "{\"op\":\"device\",\"tenant\":1,\"device\":\"0x1000\",\"epoch\":1,\"sinks\":[10]}");
	d[0] = (struct dev){ .tenant = 1, .epoch = 1 };
	snprintf(pcap, sizeof(pcap), "/tmp/fg_store_%d_stale.pcap", (int)getpid());
	write_frames(pcap, d, 1);
	/* Frames of the one device, over and over (infinite_rx). */
	snprintf(extra, sizeof(extra),
		 "\"store\": {\"endpoints\": \"%s\", \"stale_policy\": \"closed\", \"stale_bound_ms\": %u,"
		 " \"probe_ms\": 100, \"timeout_ms\": 200, \"backoff_min_ms\": 50, \"backoff_max_ms\": 500},\n",
		 fg_etcd_lab_endpoints(lab), bound_ms);
	fg_rp_init_with(r, extra);
	router_used[0] = true;
	snprintf(cmd, sizeof(cmd),
		 "exec %s --no-huge -m 1024 --no-pci --no-shconf --file-prefix=fgstale%d"
		 " --no-telemetry -l 0 --log-level=*:error"
		 " --vdev net_pcap0,rx_pcap=%s,tx_pcap=/dev/null,infinite_rx=1"
		 " -- --config %s/config.json > /dev/null",
		 FG_FRAMEGATE, (int)getpid(), pcap, r->dir);
	r->pid = fg_router_spawn(cmd, &serving);
	cr_assert(r->pid > 0 && serving, "router did not start");
	wait_enforced(r, rev, 30);
	/* Forwarding: the forwarded count grows. */
	json_int_t f0 = stat_of(r, NULL);

	usleep(300000);
	{
		json_t *st = ask(r, "stats");
		char *j = json_dumps(st, JSON_COMPACT);

		fprintf(stderr, "store test: stats while fresh: %s\n", j);
		free(j);
		json_decref(st);
	}
	cr_assert_gt(stat_of(r, NULL), f0, "the router does not forward while fresh");

	/* The store goes away: within the bound (plus one probe and its
	 * timeout) forwarding stops and frames count as store_stale. */
	cr_assert_eq(fg_etcd_lab_freeze(lab, 0), 0);
	double t0 = fg_test_now(), stopped = -1;

	while (fg_test_now() - t0 < 10) {
		json_t *st = health_store(r);
		bool off = json_is_true(json_object_get(st, "forwarding_stopped"));

		json_decref(st);
		if (off) {
			stopped = fg_test_now() - t0;
			break;
		}
		usleep(20000);
	}
	fprintf(stderr, "store test: forwarding stopped %.3f s after the store froze (bound %u ms)\n",
		stopped, bound_ms);
	cr_assert_geq(stopped, 0, "forwarding never stopped");
	cr_expect_leq(stopped, (bound_ms + 100 + 200 + 300) / 1000.0,
		      "forwarding stopped %.3f s after the store froze, bound %u ms", stopped, bound_ms);
	cr_expect_geq(stopped, bound_ms / 1000.0 - 0.2, "forwarding stopped before the bound");
	json_int_t s1 = stat_of(r, "store_stale"), f1 = stat_of(r, NULL);

	usleep(300000);
	cr_assert_gt(stat_of(r, "store_stale"), s1, "frames are not counted as store_stale");
	cr_assert_eq(stat_of(r, NULL), f1, "frames are still forwarded while stale");

	/* The store comes back: forwarding resumes after the resync. */
	cr_assert_eq(fg_etcd_lab_thaw(lab, 0), 0);
	t0 = fg_test_now();
	for (;;) {
		json_t *st = health_store(r);
		bool off = json_is_true(json_object_get(st, "forwarding_stopped"));

		json_decref(st);
		if (!off)
			break;
		cr_assert(fg_test_now() - t0 < 15, "forwarding did not resume within 15 s");
		usleep(20000);
	}
	f1 = stat_of(r, NULL);
	usleep(300000);
	cr_assert_gt(stat_of(r, NULL), f1, "forwarding did not resume");
	fprintf(stderr, "store test: forwarding resumed %.3f s after the store thawed\n", fg_test_now() - t0);
	unlink(pcap);
	fg_store_writer_close(w);
}

Test(store, bad_input_is_refused_by_name_and_changes_nothing, .fini = teardown, .timeout = 300)
{
	struct fg_err err = { 0 };
	struct fg_store_writer *w;
	struct fg_router_proc *r;
	struct fg_etcd *raw;
	struct fg_etcd_opts eo;
	int64_t rev = 0, rev2 = 0, last = 0;
	char cmd[2048], file[128], out[4096];
	FILE *f;

	lab_up(1);
	w = fg_store_writer_open(fg_etcd_lab_endpoints(lab), PREFIX, 2000, &err);
	cr_assert_not_null(w, "%s", err.msg);
	rev = populate(w);
	r = router_up(0, "");
	wait_enforced(r, rev, 30);

	/* A load with a bad line: named, nothing written. */
	snprintf(file, sizeof(file), "/tmp/fg_store_%d_bad.jsonl", (int)getpid());
	f = fopen(file, "w");
	fprintf(f, "{\"op\":\"device\",\"tenant\":1,\"device\":\"0x77\",\"epoch\":1,\"sinks\":[10]}\n\n"
		   "{\"op\":\"device\",\"tenant\":2,\"device\":\"0x78\",\"epoch\":1,\"sinks\":[10]}\n");
	fclose(f);
	cr_assert_eq(fg_store_status(w, &rev, &last, &err), 0, "%s", err.msg);
	snprintf(cmd, sizeof(cmd), "%s --store %s load %s 2>&1", FG_FGCTL_PATH,
		 fg_etcd_lab_endpoints(lab), file);
	f = popen(cmd, "r");
	out[fread(out, 1, sizeof(out) - 1, f)] = '\0';
	cr_assert_eq(WEXITSTATUS(pclose(f)), 1, "fgctl load: %s", out);
	cr_assert(strstr(out, ":3: device 0x0000000000000078: sink 10 belongs to tenant 1, not to tenant 2") != NULL,
		  "the error does not name the line and the reason: %s", out);
	cr_assert_eq(fg_store_status(w, &rev2, &last, &err), 0, "%s", err.msg);
	cr_assert_eq(rev2, rev, "a refused load changed the store (revision %" PRId64 " -> %" PRId64 ")",
		     rev, rev2);
	unlink(file);

	/* Unreachable endpoints and a bad endpoint list: exit 3 and 2. */
	snprintf(cmd, sizeof(cmd), "%s --store http://127.0.0.1:1 tenant add 50 2>&1", FG_FGCTL_PATH);
	f = popen(cmd, "r");
	out[fread(out, 1, sizeof(out) - 1, f)] = '\0';
	cr_expect_eq(WEXITSTATUS(pclose(f)), 3, "unreachable store: %s", out);
	snprintf(cmd, sizeof(cmd), "%s --store ftp://x tenant add 50 2>&1", FG_FGCTL_PATH);
	f = popen(cmd, "r");
	out[fread(out, 1, sizeof(out) - 1, f)] = '\0';
	cr_expect_eq(WEXITSTATUS(pclose(f)), 2, "bad endpoints: %s", out);
	cr_expect(strstr(out, "ftp://x") != NULL, "the bad endpoint is not named: %s", out);
	snprintf(cmd, sizeof(cmd), "%s --store http://127.0.0.1:1 --store-gateway tenant add 50 2>&1",
		 FG_FGCTL_PATH);
	f = popen(cmd, "r");
	out[fread(out, 1, sizeof(out) - 1, f)] = '\0';
	cr_expect_eq(WEXITSTATUS(pclose(f)), 3, "unreachable store (gateway): %s", out);
	cr_expect(strstr(out, "127.0.0.1:1") != NULL, "the endpoint is not named: %s", out);
	/* The gateway alone (--store-gateway) writes the same way. */
	snprintf(cmd, sizeof(cmd), "%s --store %s --store-gateway tenant add 51 2>&1", FG_FGCTL_PATH,
		 fg_etcd_lab_endpoints(lab));
	f = popen(cmd, "r");
	out[fread(out, 1, sizeof(out) - 1, f)] = '\0';
	cr_expect_eq(WEXITSTATUS(pclose(f)), 0, "tenant add through the gateway: %s", out);
	snprintf(cmd, sizeof(cmd), "%s --store %s --store-gateway tenant add 51 2>&1", FG_FGCTL_PATH,
		 fg_etcd_lab_endpoints(lab));
	f = popen(cmd, "r");
	out[fread(out, 1, sizeof(out) - 1, f)] = '\0';
	cr_expect_eq(WEXITSTATUS(pclose(f)), 1, "a second tenant add 51 was not refused: %s", out);
	cr_expect(strstr(out, "tenant 51 already exists") != NULL, "%s", out);
	/* A change sent to a following router is refused: it goes to the store. */
	snprintf(cmd, sizeof(cmd), "%s --socket %s tenant add 50 2>&1", FG_FGCTL_PATH, r->sock);
	f = popen(cmd, "r");
	out[fread(out, 1, sizeof(out) - 1, f)] = '\0';
	cr_expect_eq(WEXITSTATUS(pclose(f)), 1, "a change to a follower: %s", out);
	cr_expect(strstr(out, "follows a store") != NULL, "%s", out);

	/* A value written around fgctl that the actions refuse: the router
	 * stays at its revision, says why, and catches up once it is gone. */
	char *before = router_state(r);
	int64_t at = enforced(r);
	struct fg_etcd_op op = { .type = FG_ETCD_PUT, .key = PREFIX "device/0000000000000099",
				 .value = "{\"op\":\"device\",\"tenant\":1,\"device\":\"0x99\",\"epoch\":1,\"sinks\":[20]}" };
	bool ok = false;

	eo = (struct fg_etcd_opts){ .endpoints = fg_etcd_lab_endpoints(lab) };
	raw = fg_etcd_open(&eo, &err);
	cr_assert_not_null(raw, "%s", err.msg);
	cr_assert_eq(fg_etcd_txn(raw, NULL, 0, &op, 1, NULL, 0, &ok, &rev, &err), 0, "%s", err.msg);
	usleep(1000000);
	char *after = router_state(r);
	json_t *st = health_store(r);

	cr_expect_str_eq(after, before, "a refused store value changed the tables");
	cr_expect_eq(enforced(r), at, "the router moved past a revision it could not apply");
	cr_expect(strstr(json_string_value(json_object_get(st, "last_error")) ?: "", "belongs to tenant 2") != NULL,
		  "health does not say why: %s", json_dumps(st, 0));
	json_decref(st);
	free(after);
	op = (struct fg_etcd_op){ .type = FG_ETCD_DELETE, .key = PREFIX "device/0000000000000099" };
	cr_assert_eq(fg_etcd_txn(raw, NULL, 0, &op, 1, NULL, 0, &ok, &rev, &err), 0, "%s", err.msg);
	rev = put(w, "{\"op\":\"tenant\",\"tenant\":60}");
	wait_enforced(r, rev, 30);
	after = router_state(r);
	cr_expect(strstr(after, "\"tenant\":60") != NULL, "the router did not catch up: %s", after);
	free(after);
	free(before);
	fg_etcd_close(raw);

	/* A bad store configuration: the router does not start, naming it. */
	fg_rp_fini(r);
	router_used[0] = false;
	fg_rp_init_with(r, "\"store\": {\"endpoints\": \"http://127.0.0.1:2379\", \"stale_policy\": \"ajar\"},\n");
	router_used[0] = true;
	cr_expect(!fg_rp_start(r, NULL), "a router with stale_policy \"ajar\" started");
	fg_store_writer_close(w);
}

/* ---- a writer's cache ------------------------------------------------------------ */

/* One op through writer w: 0, or -errno with the message in msg. */
static int
one(struct fg_store_writer *w, char *msg, size_t cap, const char *fmt, ...)
{
	char line[512];
	const char *lines[1] = { line };
	size_t lens[1];
	struct fg_err err = { 0 };
	int64_t rev = 0;
	va_list ap;
	int ret;

	va_start(ap, fmt);
	lens[0] = (size_t)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	ret = fg_store_apply(w, lines, lens, 1, false, &rev, NULL, &err);
	if (msg != NULL)
		snprintf(msg, cap, "%s", ret < 0 ? err.msg : "");
	return ret;
}

/* Tenants 1 and 2, with sinks 10 and 20, through writer w. */
static void
two_tenants(struct fg_store_writer *w)
{
	static const char *const ops[] = {
		"{\"op\":\"tenant\",\"tenant\":1}",
		"{\"op\":\"tenant\",\"tenant\":2}",
		"{\"op\":\"sink\",\"sink\":10,\"tenant\":1,\"addr\":\"10.0.0.1\",\"port\":6000,\"egress\":0}",
		"{\"op\":\"sink\",\"sink\":20,\"tenant\":2,\"addr\":\"10.0.0.2\",\"port\":6000,\"egress\":0}",
	};
	char msg[512];

	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		cr_assert_eq(one(w, msg, sizeof(msg), "%s", ops[i]), 0, "%s: %s", ops[i], msg);
}

/* A counter field of a use/ key, as the store holds it (-1: key absent). */
static json_int_t
use_count(struct fg_etcd *raw, const char *which, uint32_t id, const char *field)
{
	char key[128];
	struct fg_etcd_kv kv;
	struct fg_err err = { 0 };
	json_t *o;
	json_int_t n;
	int ret;

	snprintf(key, sizeof(key), PREFIX "use/%s/%u", which, id);
	ret = fg_etcd_get(raw, key, &kv, NULL, &err);
	cr_assert_geq(ret, 0, "get %s: %s", key, err.msg);
	if (ret == 0)
		return -1;
	o = json_loadb(kv.value, kv.value_len, 0, NULL);
	cr_assert_not_null(o, "%s does not hold JSON", key);
	n = json_integer_value(json_object_get(o, field));
	json_decref(o);
	return n;
}

static bool
store_has(struct fg_etcd *raw, const char *key)
{
	struct fg_etcd_kv kv;
	struct fg_err err = { 0 };
	int ret = fg_etcd_get(raw, key, &kv, NULL, &err);

	cr_assert_geq(ret, 0, "get %s: %s", key, err.msg);
	return ret == 1;
}

/* A writer keeps the keys it read between writes (one request per write
 * after the first). Another writer changes those keys behind its back: the
 * first writer's next write must be judged on the store's values, not on
 * its cache, whether it writes, refuses or finds nothing to change, and the
 * use counts must stay exact. */
Test(store, a_writer_never_decides_on_a_stale_cache, .fini = teardown, .timeout = 120)
{
	struct fg_err err = { 0 };
	struct fg_store_writer *a, *b;
	struct fg_etcd_opts eo = { 0 };
	struct fg_etcd *raw;
	char msg[512];

	lab_up(1);
	a = fg_store_writer_open(fg_etcd_lab_endpoints(lab), PREFIX, 2000, &err);
	cr_assert_not_null(a, "%s", err.msg);
	b = fg_store_writer_open(fg_etcd_lab_endpoints(lab), PREFIX, 2000, &err);
	cr_assert_not_null(b, "%s", err.msg);
	eo.endpoints = fg_etcd_lab_endpoints(lab);
	raw = fg_etcd_open(&eo, &err);
	cr_assert_not_null(raw, "%s", err.msg);

	two_tenants(a);

	/* 1. A refusal on a stale value would be wrong: a holds device 5 as
	 * tenant 1's, b moves it to tenant 2, a deletes it as tenant 2's. */
	cr_assert_eq(one(a, msg, sizeof(msg), "{\"op\":\"device\",\"tenant\":1,\"device\":\"0x5\",\"epoch\":1,\"sinks\":[10]}"), 0, "%s", msg);
	cr_assert_eq(one(b, msg, sizeof(msg), "{\"op\":\"move\",\"device\":\"0x5\",\"from\":1,\"to\":2,\"epoch\":2,\"sinks\":[20]}"), 0, "%s", msg);
	cr_assert_eq(one(a, msg, sizeof(msg), "{\"op\":\"del_device\",\"tenant\":2,\"device\":\"0x5\"}"), 0,
		     "a refused on its cache (the device was moved by another writer): %s", msg);
	cr_expect_not(store_has(raw, PREFIX "device/0000000000000005"), "device 5 is still in the store");
	cr_expect_eq(use_count(raw, "tenant", 1, "devices"), 0);
	cr_expect_eq(use_count(raw, "tenant", 2, "devices"), 0);
	cr_expect_eq(use_count(raw, "sink", 10, "devices"), 0);
	cr_expect_eq(use_count(raw, "sink", 20, "devices"), 0);

	/* 2. A write on a stale value must fail its compare and run again: a
	 * adds device 6, b deletes it, a sets it again (an update on the
	 * cache, an add in the store). */
	cr_assert_eq(one(a, msg, sizeof(msg), "{\"op\":\"device\",\"tenant\":1,\"device\":\"0x6\",\"epoch\":1,\"sinks\":[10]}"), 0, "%s", msg);
	cr_assert_eq(one(b, msg, sizeof(msg), "{\"op\":\"del_device\",\"tenant\":1,\"device\":\"0x6\"}"), 0, "%s", msg);
	cr_assert_eq(one(a, msg, sizeof(msg), "{\"op\":\"device\",\"tenant\":1,\"device\":\"0x6\",\"epoch\":3,\"sinks\":[10]}"), 0, "%s", msg);
	cr_expect(store_has(raw, PREFIX "device/0000000000000006"), "device 6 is not in the store");
	cr_expect_eq(use_count(raw, "tenant", 1, "devices"), 1, "tenant 1's device count is not 1");
	cr_expect_eq(use_count(raw, "sink", 10, "devices"), 1, "sink 10's device count is not 1");

	/* 3. "Nothing to change" on a stale value would lose the write: a
	 * resumes tenant 1 (not suspended), b suspends it, a resumes it. */
	cr_assert_eq(one(a, msg, sizeof(msg), "{\"op\":\"resume\",\"tenant\":1}"), 0, "%s", msg);
	cr_assert_eq(one(b, msg, sizeof(msg), "{\"op\":\"suspend\",\"tenant\":1}"), 0, "%s", msg);
	cr_assert(store_has(raw, PREFIX "suspended/1"));
	cr_assert_eq(one(a, msg, sizeof(msg), "{\"op\":\"resume\",\"tenant\":1}"), 0, "%s", msg);
	cr_expect_not(store_has(raw, PREFIX "suspended/1"),
		      "a's resume was taken for a no-op on its cache: tenant 1 is still suspended");

	/* 4. A refusal on fresh values stands, named, and changes nothing: b
	 * raises device 6's epoch (a's cache is stale again), and a's delete
	 * of it as tenant 2's is refused: it is tenant 1's. */
	cr_assert_eq(one(b, msg, sizeof(msg), "{\"op\":\"device\",\"tenant\":1,\"device\":\"0x6\",\"epoch\":4,\"sinks\":[10]}"), 0, "%s", msg);
	cr_expect_eq(one(a, msg, sizeof(msg), "{\"op\":\"del_device\",\"tenant\":2,\"device\":\"0x6\"}"), -ENOENT, "%s", msg);
	cr_expect(strstr(msg, "device 0x0000000000000006 is not held by tenant 2") != NULL, "%s", msg);
	cr_expect(store_has(raw, PREFIX "device/0000000000000006"));
	cr_expect_eq(use_count(raw, "tenant", 1, "devices"), 1);
	cr_expect_eq(use_count(raw, "sink", 10, "devices"), 1);

	fg_etcd_close(raw);
	fg_store_writer_close(a);
	fg_store_writer_close(b);
}

/* ---- a write that landed but was not acknowledged ------------------------------- */

/* A TCP proxy in front of one etcd endpoint that, once told to, still
 * passes requests on but throws the answers away: a write through it lands
 * and its writer never hears. */
struct proxy {
	int lfd, port;
	const char *target_host;
	int target_port;
	volatile int drop, stop;
	pthread_t th;
};

struct proxy_conn {
	int c, sfd;
	struct proxy *p;
};

static void *
proxy_conn(void *arg)
{
	struct proxy_conn *k = arg;
	char buf[65536];

	for (;;) {
		struct pollfd pf[2] = { { .fd = k->c, .events = POLLIN },
					{ .fd = k->sfd, .events = POLLIN } };

		if (k->p->stop || poll(pf, 2, 100) < 0)
			break;
		if (pf[0].revents) {
			ssize_t n = read(k->c, buf, sizeof(buf));

			if (n <= 0 || write(k->sfd, buf, (size_t)n) != n)
				break;
		}
		if (pf[1].revents) {
			ssize_t n = read(k->sfd, buf, sizeof(buf));

			if (n <= 0)
				break;
			if (!k->p->drop && write(k->c, buf, (size_t)n) != n)
				break;
		}
	}
	close(k->c);
	close(k->sfd);
	free(k);
	return NULL;
}

static void *
proxy_main(void *arg)
{
	struct proxy *p = arg;

	while (!p->stop) {
		struct pollfd pf = { .fd = p->lfd, .events = POLLIN };
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)p->target_port) };
		struct proxy_conn *k;
		pthread_t t;
		int c, sfd;

		if (poll(&pf, 1, 100) <= 0)
			continue;
		c = accept(p->lfd, NULL, NULL);
		if (c < 0)
			continue;
		sfd = socket(AF_INET, SOCK_STREAM, 0);
		inet_pton(AF_INET, p->target_host, &sa.sin_addr);
		k = malloc(sizeof(*k));
		if (k == NULL || connect(sfd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
			free(k);
			close(c);
			close(sfd);
			continue;
		}
		*k = (struct proxy_conn){ .c = c, .sfd = sfd, .p = p };
		pthread_create(&t, NULL, proxy_conn, k);
		pthread_detach(t);
	}
	return NULL;
}

static void
proxy_start(struct proxy *p, const char *endpoint)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	static char host[64];

	cr_assert_eq(sscanf(endpoint, "http://%63[^:]:%d", host, &p->target_port), 2, "%s", endpoint);
	p->target_host = host;
	p->lfd = socket(AF_INET, SOCK_STREAM, 0);
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	cr_assert_eq(bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(p->lfd, 16), 0);
	getsockname(p->lfd, (struct sockaddr *)&sa, &len);
	p->port = ntohs(sa.sin_port);
	cr_assert_eq(pthread_create(&p->th, NULL, proxy_main, p), 0);
}

static void
proxy_stop(struct proxy *p)
{
	p->stop = 1;
	pthread_join(p->th, NULL);
	close(p->lfd);
	usleep(200000);         /* the connections see stop */
}

/* The writer's transaction reaches etcd and lands, its answer is lost, the
 * request times out and goes to the next member, where its compares fail
 * on the first attempt's own changes. Read afresh, the move is "refused"
 * (the device is already the new tenant's) unless the writer first looks
 * whether the store holds exactly what it meant to write: then the write
 * has landed, once, and that is its answer. */
Test(store, a_write_that_landed_unacknowledged_is_not_refused_on_retry, .fini = teardown,
     .timeout = 120)
{
	static struct proxy px;
	struct fg_err err = { 0 };
	struct fg_store_writer *w;
	struct fg_etcd_opts eo = { 0 };
	struct fg_etcd *raw;
	char eps[256], msg[512];
	double t0;

	lab_up(1);
	proxy_start(&px, fg_etcd_lab_endpoint(lab, 0));
	snprintf(eps, sizeof(eps), "http://127.0.0.1:%d,%s", px.port, fg_etcd_lab_endpoint(lab, 0));
	/* The gateway: its HTTP/1.1 request goes through the proxy whole. */
	w = fg_store_writer_open_gateway(eps, PREFIX, 1000, &err);
	cr_assert_not_null(w, "%s", err.msg);
	eo.endpoints = fg_etcd_lab_endpoints(lab);
	raw = fg_etcd_open(&eo, &err);
	cr_assert_not_null(raw, "%s", err.msg);

	/* Through the proxy, answers passed: every key the move reads is then
	 * known to the writer, so the move is one request, its txn. */
	two_tenants(w);
	cr_assert_eq(one(w, msg, sizeof(msg), "{\"op\":\"device\",\"tenant\":1,\"device\":\"0x5\",\"epoch\":1,\"sinks\":[10]}"), 0, "%s", msg);
	cr_assert_eq(one(w, msg, sizeof(msg), "{\"op\":\"device\",\"tenant\":2,\"device\":\"0x6\",\"epoch\":1,\"sinks\":[20]}"), 0, "%s", msg);

	px.drop = 1;
	t0 = fg_test_now();
	cr_assert_eq(one(w, msg, sizeof(msg), "{\"op\":\"move\",\"device\":\"0x5\",\"from\":1,\"to\":2,\"epoch\":2,\"sinks\":[20]}"), 0,
		     "the move landed on its first attempt, and its retry was refused: %s", msg);
	cr_expect_geq(fg_test_now() - t0, 0.9, "the first attempt's answer was not lost (%.2f s): the test did not test",
		      fg_test_now() - t0);
	cr_expect_eq(use_count(raw, "tenant", 1, "devices"), 0, "tenant 1 still counts a device");
	cr_expect_eq(use_count(raw, "tenant", 2, "devices"), 2, "tenant 2 does not count 2 devices");
	cr_expect_eq(use_count(raw, "sink", 10, "devices"), 0);
	cr_expect_eq(use_count(raw, "sink", 20, "devices"), 2);
	{
		struct fg_etcd_kv kv;

		cr_assert_eq(fg_etcd_get(raw, PREFIX "device/0000000000000005", &kv, NULL, &err), 1, "%s", err.msg);
		cr_expect(strstr(kv.value, "\"tenant\":2") != NULL && strstr(kv.value, "\"epoch\":2") != NULL,
			  "device 5: %s", kv.value);
	}
	fg_store_writer_close(w);
	fg_etcd_close(raw);
	proxy_stop(&px);
}
