/*
 * The audit log (control/audit.h, docs/audit.md): changes made through a real
 * router appear in its audit file, in order, with who asked and the op lines
 * as journaled, and `fgctl audit verify` accepts the file; every kind of
 * damage (a changed byte, a deleted record, a reordered pair, a re-hashed
 * record, a torn or foreign line) is found and the first bad record named by
 * line and seq; a restart continues the chain; a torn last line is cut off at
 * open; a path the router cannot append to stops its start; a change the
 * audit log cannot take is not acknowledged and leaves no half record; a
 * rise of sink_mismatch, counted by the verdict engine on corrupted tables,
 * becomes one alarm record with each tenant's total. Device keys never reach
 * the file, only their fingerprints; a change of many op lines is several
 * records of one transaction, proved whole by verify, cut whole at open when
 * a crash left it unfinished, and taken back whole when it fails.
 */
#define _GNU_SOURCE             /* memmem, struct ucred */
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>
#include <sodium.h>

#include "audit.h"
#include "audit_alarm.h"
#include "config.h"
#include "counters.h"
#include "ctl_client.h"
#include "framebuild.h"
#include "router.h"
#include "support.h"
#include "verdict.h"

static struct fg_router_proc rp;
static char audit_path[192];

static void
setup(void)
{
	fg_rp_init(&rp);
	snprintf(audit_path, sizeof(audit_path), "%s/audit.jsonl", rp.dir);
}

static void
teardown(void)
{
	fg_rp_fini(&rp);
}

TestSuite(audit, .init = setup, .fini = teardown, .timeout = 120);

/* ---- helpers ----------------------------------------------------------------- */

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t cap = 0;

	cr_assert_not_null(f, "cannot read %s", path);
	FILE *m = open_memstream(&buf, &cap);
	char chunk[65536];
	size_t n;

	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		fwrite(chunk, 1, n, m);
	fclose(f);
	fclose(m);
	*len = cap;
	return buf;
}

static void
spit(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	cr_assert_eq(fwrite(data, 1, len, f), len);
	fclose(f);
}

/* The router's config with "audit_log" (and more keys) put in front. */
static void
use_audit(const char *extra)
{
	char path[192], *old, *neu;
	size_t len;

	snprintf(path, sizeof(path), "%s/config.json", rp.dir);
	old = slurp(path, &len);
	cr_assert(len > 1 && old[0] == '{');
	cr_assert(asprintf(&neu, "{\"audit_log\": \"%s\", %s%s", audit_path, extra ? extra : "",
			   old + 1) > 0);
	spit(path, neu, strlen(neu));
	free(old);
	free(neu);
}

/* The audit file's records, parsed (an array). */
static json_t *
records(void)
{
	size_t len;
	char *text = slurp(audit_path, &len);
	json_t *a = json_array();

	for (char *p = text, *nl; p < text + len; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(text + len - p));
		cr_assert_not_null(nl, "the audit file ends without a newline");
		json_t *r = json_loadb(p, (size_t)(nl - p), 0, NULL);

		cr_assert_not_null(r, "line %zu of the audit file is not JSON", json_array_size(a) + 1);
		json_array_append_new(a, r);
	}
	free(text);
	return a;
}

static json_t *
call(json_t *req)
{
	json_t *r = fg_ctl_once(rp.sock, req);

	cr_assert_not_null(r, "no response from the router");
	return r;
}

static void
expect_ok(json_t *r, const char *what)
{
	cr_assert(json_is_true(json_object_get(r, "ok")), "%s refused: %s", what,
		  json_string_value(json_object_get(r, "error")));
	json_decref(r);
}

static json_t *
apply(const char *op)
{
	json_t *o = json_loads(op, 0, NULL);

	cr_assert_not_null(o, "bad op in the test: %s", op);
	return json_pack("{s:s, s:o}", "cmd", "apply", "op", o);
}

/* `fgctl [--json] audit verify FILE`: exit status, output in out. */
static int
verify(const char *file, bool json, char *out, size_t len)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "%s %saudit verify '%s'", FG_FGCTL_PATH, json ? "--json " : "",
		 file);
	return fg_test_run(cmd, out, len);
}

/* Record i's op lines must be these ops, as JSON, and each line must be in
 * the journal byte for byte, but for one holding a key's fingerprint: the
 * journal holds the key. */
static void
expect_change(json_t *rec, uint64_t seq, const char *source, const char *const *ops,
	      size_t n_ops, const char *journal, size_t journal_len)
{
	json_t *lines = json_object_get(rec, "ops");

	cr_assert_eq(json_integer_value(json_object_get(rec, "seq")), (json_int_t)seq);
	cr_assert_str_eq(json_string_value(json_object_get(rec, "kind")), "change");
	cr_assert_str_eq(json_string_value(json_object_get(rec, "source")), source,
			 "record %lu: source", (unsigned long)seq);
	cr_assert_eq(json_integer_value(json_object_get(rec, "count")), (json_int_t)n_ops);
	cr_assert_eq(json_array_size(lines), n_ops, "record %lu: %zu ops, not %zu",
		     (unsigned long)seq, json_array_size(lines), n_ops);
	for (size_t i = 0; i < n_ops; i++) {
		const char *line = json_string_value(json_array_get(lines, i));
		json_t *got = json_loads(line, 0, NULL), *want = json_loads(ops[i], 0, NULL);

		cr_assert(json_equal(got, want), "record %lu op %zu: %s, not %s", (unsigned long)seq,
			  i, line, ops[i]);
		if (strstr(line, "\"key_fp\"") == NULL)
			cr_assert_not_null(memmem(journal, journal_len, line, strlen(line)),
					   "record %lu op %zu is not in the journal as %s",
					   (unsigned long)seq, i, line);
		json_decref(got);
		json_decref(want);
	}
	if (strcmp(source, "socket") == 0) {
		json_t *peer = json_object_get(rec, "peer");

		cr_assert_eq(json_integer_value(json_object_get(peer, "uid")), (json_int_t)geteuid());
		cr_assert_eq(json_integer_value(json_object_get(peer, "gid")), (json_int_t)getegid());
		cr_assert_eq(json_integer_value(json_object_get(peer, "pid")), (json_int_t)getpid());
	} else {
		cr_assert_null(json_object_get(rec, "peer"));
	}
	const char *t = json_string_value(json_object_get(rec, "time"));

	cr_assert(t != NULL && strlen(t) == 27 && t[4] == '-' && t[10] == 'T' && t[26] == 'Z',
		  "record %lu: time \"%s\"", (unsigned long)seq, t ? t : "(none)");
}

/* ---- through a real router ------------------------------------------------------ */

Test(audit, changes_through_the_router_in_order)
{
	static const char *const mappings[] = {
		"{\"op\":\"tenant\",\"tenant\":7,\"name\":\"acme\"}",
		"{\"op\":\"sink\",\"sink\":70,\"tenant\":7,\"addr\":\"192.0.2.70\",\"port\":7000,\"egress\":0}",
	};
	static const char *const t20 = "{\"op\":\"tenant\",\"tenant\":20}";
	static const char *const group[] = {
		"{\"op\":\"sink\",\"sink\":200,\"tenant\":20,\"addr\":\"2001:db8::20\",\"port\":9,\"egress\":0}",
		"{\"op\":\"device\",\"tenant\":20,\"device\":\"0x00000000000000e1\",\"epoch\":5,\"sinks\":[200]}",
		"{\"op\":\"suspend\",\"tenant\":20}",
	};
	/* The rekey's op, its key as the fingerprint (fgctl audit fingerprint
	 * 000102030405060708090a0b0c0d0e0f). */
	static const char *const rekeyed =
		"{\"op\":\"device\",\"tenant\":20,\"device\":\"0x00000000000000e1\",\"epoch\":5,\"sinks\":[200],\"key_fp\":\"be45cb2605bf36be\"}";
	static const char *const loaded[] = {
		"{\"op\":\"resume\",\"tenant\":20}",
		"{\"op\":\"device\",\"tenant\":7,\"device\":\"0x00000000000000a1\",\"epoch\":1,\"sinks\":[70]}",
	};
	char mfile[192], jfile[192], out[4096], extra[256];
	json_t *r, *recs;
	size_t jlen;
	char *journal;
	int fd;

	use_audit(NULL);
	snprintf(mfile, sizeof(mfile), "%s/start.jsonl", rp.dir);
	FILE *f = fopen(mfile, "w");

	fprintf(f, "%s\n%s\n", mappings[0], mappings[1]);
	fclose(f);
	snprintf(extra, sizeof(extra), "--mappings %s", mfile);
	cr_assert(fg_rp_start(&rp, extra), "the router did not start");

	expect_ok(call(apply(t20)), "tenant 20");
	/* Refused: never recorded. */
	r = call(apply(t20));
	cr_assert_str_eq(json_string_value(json_object_get(r, "code")), "EEXIST");
	json_decref(r);
	/* Pipelined on one connection: a group commit, one record each. */
	fd = fg_ctl_connect(rp.sock);
	cr_assert(fd >= 0);
	for (size_t i = 0; i < 3; i++)
		cr_assert_eq(fg_ctl_send(fd, apply(group[i])), 0);
	for (size_t i = 0; i < 3; i++)
		expect_ok(fg_ctl_recv(fd), group[i]);
	close(fd);
	expect_ok(call(json_pack("{s:s, s:i, s:s, s:s}", "cmd", "rekey", "tenant", 20, "device",
				 "0xe1", "key", "000102030405060708090a0b0c0d0e0f")),
		  "rekey");
	/* A load is one record; a refused load none. */
	fd = fg_ctl_connect(rp.sock);
	cr_assert(fd >= 0);
	expect_ok(fg_ctl_call(fd, json_pack("{s:s}", "cmd", "load.begin")), "load.begin");
	char *text;

	cr_assert(asprintf(&text, "%s\n%s\n", loaded[0], loaded[1]) > 0);
	expect_ok(fg_ctl_call(fd, json_pack("{s:s, s:s}", "cmd", "load.chunk", "text", text)),
		  "load.chunk");
	free(text);
	expect_ok(fg_ctl_call(fd, json_pack("{s:s}", "cmd", "load.commit")), "load.commit");
	expect_ok(fg_ctl_call(fd, json_pack("{s:s}", "cmd", "load.begin")), "load.begin");
	expect_ok(fg_ctl_call(fd, json_pack("{s:s, s:s}", "cmd", "load.chunk", "text",
					    "{\"op\":\"del_tenant\",\"tenant\":20}\n")),
		  "load.chunk");
	r = fg_ctl_call(fd, json_pack("{s:s}", "cmd", "load.commit"));
	cr_assert_str_eq(json_string_value(json_object_get(r, "code")), "EBUSY");
	json_decref(r);
	close(fd);

	snprintf(jfile, sizeof(jfile), "%s/journal/journal.log", rp.dir);
	journal = slurp(jfile, &jlen);
	recs = records();
	cr_assert_eq(json_array_size(recs), 7, "%zu records, not 7", json_array_size(recs));
	expect_change(json_array_get(recs, 0), 1, "mappings", mappings, 2, journal, jlen);
	expect_change(json_array_get(recs, 1), 2, "socket", &t20, 1, journal, jlen);
	for (size_t i = 0; i < 3; i++)
		expect_change(json_array_get(recs, 2 + i), 3 + i, "socket", &group[i], 1, journal, jlen);
	expect_change(json_array_get(recs, 5), 6, "socket", &rekeyed, 1, journal, jlen);
	expect_change(json_array_get(recs, 6), 7, "socket", loaded, 2, journal, jlen);
	json_decref(recs);
	free(journal);

	cr_assert_eq(verify(audit_path, false, out, sizeof(out)), 0, "%s", out);
	cr_assert_not_null(strstr(out, "chain intact: 7 records, last seq 7"), "%s", out);
}

Test(audit, a_restart_continues_the_chain)
{
	char out[4096];
	json_t *recs;

	use_audit(NULL);
	cr_assert(fg_rp_start(&rp, NULL));
	expect_ok(call(apply("{\"op\":\"tenant\",\"tenant\":1}")), "tenant 1");
	expect_ok(call(apply("{\"op\":\"tenant\",\"tenant\":2}")), "tenant 2");
	fg_rp_kill(&rp, SIGKILL);
	recs = records();
	const char *last = json_string_value(json_object_get(json_array_get(recs, 1), "hash"));
	char last_hash[FG_AUDIT_HASH_HEX + 1];

	cr_assert_not_null(last);
	snprintf(last_hash, sizeof(last_hash), "%s", last);
	json_decref(recs);

	cr_assert(fg_rp_start(&rp, NULL), "the router did not start again");
	expect_ok(call(apply("{\"op\":\"tenant\",\"tenant\":3}")), "tenant 3");
	fg_rp_kill(&rp, SIGTERM);
	recs = records();
	cr_assert_eq(json_array_size(recs), 3);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(recs, 2), "seq")), 3);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(recs, 2), "prev")),
			 last_hash);
	json_decref(recs);
	cr_assert_eq(verify(audit_path, false, out, sizeof(out)), 0, "%s", out);
	cr_assert_not_null(strstr(out, "3 records"), "%s", out);
}

/* A crash in the middle of an append leaves a line without its newline:
 * the router cuts it off at start and goes on from the record before. */
Test(audit, a_torn_last_line_is_cut_off_at_start)
{
	static const char torn[] = "{\"seq\":3,\"time\":\"2026-11-28T07:13:52";
	char out[4096];
	size_t len;
	char *text;
	json_t *recs;

	use_audit(NULL);
	cr_assert(fg_rp_start(&rp, NULL));
	expect_ok(call(apply("{\"op\":\"tenant\",\"tenant\":1}")), "tenant 1");
	expect_ok(call(apply("{\"op\":\"tenant\",\"tenant\":2}")), "tenant 2");
	fg_rp_kill(&rp, SIGKILL);
	text = slurp(audit_path, &len);
	FILE *f = fopen(audit_path, "a");

	fputs(torn, f);
	fclose(f);
	/* fgctl names it ... */
	cr_assert_eq(verify(audit_path, true, out, sizeof(out)), 1, "%s", out);
	cr_assert_not_null(strstr(out, "\"line\":3"), "%s", out);
	cr_assert_not_null(strstr(out, "\"problem\":\"torn_line\""), "%s", out);
	/* ... the router cuts it and continues at seq 3. */
	cr_assert(fg_rp_start(&rp, NULL));
	expect_ok(call(apply("{\"op\":\"tenant\",\"tenant\":3}")), "tenant 3");
	fg_rp_kill(&rp, SIGTERM);
	size_t len2;
	char *text2 = slurp(audit_path, &len2);

	cr_assert(len2 > len && memcmp(text, text2, len) == 0,
		  "the records before the torn line changed");
	cr_assert_null(memmem(text2, len2, torn, strlen(torn)), "the torn bytes are still there");
	free(text);
	free(text2);
	recs = records();
	cr_assert_eq(json_array_size(recs), 3);
	json_decref(recs);
	cr_assert_eq(verify(audit_path, false, out, sizeof(out)), 0, "%s", out);
}

/* The router's start, in a shell: its exit status and output. */
static int
start_fails(char *out, size_t len)
{
	char cmd[2048];

	snprintf(cmd, sizeof(cmd),
		 "{ %s --no-huge -m 1024 --no-pci --no-shconf --file-prefix=fgaudit%d"
		 " --no-telemetry -l 0 --log-level=*:error"
		 " --vdev net_null0 -- --config %s/config.json; st=$?;"
		 " rm -rf /var/run/dpdk/fgaudit%d; exit $st; }",
		 FG_FRAMEGATE, (int)getpid(), rp.dir, (int)getpid());
	return fg_test_run(cmd, out, len);
}

Test(audit, an_unusable_audit_path_stops_the_start)
{
	char out[8192];
	char *damaged;
	int st;

	/* A folder that does not exist. */
	snprintf(audit_path, sizeof(audit_path), "%s/no/such/folder/audit.jsonl", rp.dir);
	use_audit(NULL);
	st = start_fails(out, sizeof(out));
	cr_assert_eq(st, 1, "exit status %d: %s", st, out);
	cr_assert_not_null(strstr(out, "audit log "), "%s", out);
	cr_assert_not_null(strstr(out, "/no/such/folder/audit.jsonl: cannot open it for appending: No such file or directory"),
			   "%s", out);
	cr_assert_null(strstr(out, "forwarding"), "%s", out);

	/* A folder, not a file. */
	fg_rp_fini(&rp);
	fg_rp_init(&rp);
	snprintf(audit_path, sizeof(audit_path), "%s", rp.dir);
	use_audit(NULL);
	st = start_fails(out, sizeof(out));
	cr_assert_eq(st, 1, "exit status %d: %s", st, out);
	cr_assert_not_null(strstr(out, rp.dir), "%s", out);
	cr_assert_not_null(strstr(out, "Is a directory"), "%s", out);

	/* A file whose last record is damaged (not torn): refused, named. */
	fg_rp_fini(&rp);
	fg_rp_init(&rp);
	snprintf(audit_path, sizeof(audit_path), "%s/audit.jsonl", rp.dir);
	use_audit(NULL);
	cr_assert(asprintf(&damaged, "{\"op\":\"tenant\",\"tenant\":1}\n") > 0);
	spit(audit_path, damaged, strlen(damaged));
	free(damaged);
	st = start_fails(out, sizeof(out));
	cr_assert_eq(st, 1, "exit status %d: %s", st, out);
	cr_assert_not_null(strstr(out, audit_path), "%s", out);
	cr_assert_not_null(strstr(out, "its last record (at byte 0) is damaged"), "%s", out);

	/* Not a string in the configuration. */
	fg_rp_fini(&rp);
	fg_rp_init(&rp);
	char path[192], *old, *neu;
	size_t len;

	snprintf(path, sizeof(path), "%s/config.json", rp.dir);
	old = slurp(path, &len);
	cr_assert(asprintf(&neu, "{\"audit_log\": 7, %s", old + 1) > 0);
	spit(path, neu, strlen(neu));
	free(old);
	free(neu);
	st = start_fails(out, sizeof(out));
	cr_assert_eq(st, 1, "exit status %d: %s", st, out);
	cr_assert_not_null(strstr(out, "audit_log: must be a non-empty string"), "%s", out);
}

/* A change the audit log cannot take (here: the file size limit, so that
 * write() fails with EFBIG) is journaled and enforced, but not acknowledged:
 * the answer is EIO naming the audit log, and the file keeps whole records,
 * exactly the acknowledged changes. */
Test(audit, a_change_the_audit_log_cannot_take_is_not_acknowledged)
{
	char cmd[4096], out[4096];
	unsigned int acked = 0, refused = 0;
	bool serving;
	json_t *recs;

	use_audit(NULL);
	/* 4 KiB per file; SIGXFSZ ignored across exec, so write() says EFBIG. */
	snprintf(cmd, sizeof(cmd),
		 "trap '' XFSZ; ulimit -f 8; exec %s --no-huge -m 1024 --no-pci --no-shconf"
		 " --file-prefix=fgauditfs%d --no-telemetry -l 0 --log-level=*:error"
		 " --vdev net_pcap0,rx_pcap=%s/vectors/packets.pcap,tx_pcap=/dev/null"
		 " -- --config %s/config.json > /dev/null",
		 FG_FRAMEGATE, (int)getpid(), FG_TEST_DIR, rp.dir);
	rp.pid = fg_router_spawn(cmd, &serving);
	cr_assert(rp.pid > 0 && serving, "the router did not start");
	for (unsigned int t = 1; t <= 40 && refused < 2; t++) {
		char op[64];

		snprintf(op, sizeof(op), "{\"op\":\"tenant\",\"tenant\":%u}", t);
		json_t *r = call(apply(op));

		if (json_is_true(json_object_get(r, "ok"))) {
			cr_assert_eq(refused, 0, "tenant %u acknowledged after a refusal", t);
			acked++;
		} else {
			const char *e = json_string_value(json_object_get(r, "error"));

			cr_assert_str_eq(json_string_value(json_object_get(r, "code")), "EIO", "%s", e);
			cr_assert_not_null(strstr(e, audit_path), "%s", e);
			cr_assert_not_null(strstr(e, "File too large"), "%s", e);
			cr_assert_not_null(strstr(e, "journaled and enforced, but not acknowledged"), "%s", e);
			refused++;
		}
		json_decref(r);
	}
	cr_assert(acked > 0 && refused == 2, "%u acked, %u refused", acked, refused);
	kill(rp.pid, SIGTERM);
	waitpid(rp.pid, NULL, 0);
	rp.pid = 0;
	snprintf(cmd, sizeof(cmd), "rm -rf /var/run/dpdk/fgauditfs%d", (int)getpid());
	cr_assert_eq(system(cmd), 0);
	recs = records();
	cr_assert_eq(json_array_size(recs), acked, "%zu records for %u acknowledged changes",
		     json_array_size(recs), acked);
	json_decref(recs);
	cr_assert_eq(verify(audit_path, false, out, sizeof(out)), 0, "%s", out);
}

/* ---- damage, found by fgctl audit verify -------------------------------------- */

#define N_RECORDS 5

/* A good file of N_RECORDS records written through the writer's API: four
 * changes (one from a peer) and an alarm. */
static void
write_good(const char *path)
{
	struct ucred who = { .pid = 4242, .uid = 1000, .gid = 1000 };
	struct fg_audit_tenant tenants[] = { { 7, 3 }, { 9, 1 } };
	struct fg_audit_open_info info;
	struct fg_err err = { 0 };
	struct fg_audit *a = fg_audit_open(path, &info, &err);
	char line[128];

	cr_assert_not_null(a, "%s", err.msg);
	cr_assert_eq(info.last_seq, 0);
	for (int i = 1; i <= 3; i++) {
		snprintf(line, sizeof(line), "{\"op\":\"tenant\",\"tenant\":%d}\n{\"op\":\"suspend\",\"tenant\":%d}\n",
			 i, i);
		cr_assert_eq(fg_audit_change(a, i == 2 ? "socket" : "store", i == 2 ? &who : NULL,
					     line, strlen(line), &err), 0, "%s", err.msg);
	}
	cr_assert_eq(fg_audit_alarm(a, "sink_mismatch", 4, 4, tenants, 2, &err), 0, "%s", err.msg);
	cr_assert_eq(fg_audit_change(a, "journal", NULL, "{\"op\":\"resume\",\"tenant\":1}\n", 27,
				     &err), 0, "%s", err.msg);
	fg_audit_close(a);
}

/* The file's lines (each with its '\n'). */
struct lines {
	char *l[16];
	size_t n;
};

static void
split(const char *path, struct lines *ls)
{
	size_t len;
	char *text = slurp(path, &len);

	ls->n = 0;
	for (char *p = text; p < text + len;) {
		char *nl = memchr(p, '\n', (size_t)(text + len - p));
		size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(text + len - p);

		ls->l[ls->n++] = strndup(p, n);
		p += n;
	}
	free(text);
}

static void
join(const char *path, struct lines *ls)
{
	FILE *f = fopen(path, "w");

	for (size_t i = 0; i < ls->n; i++) {
		fputs(ls->l[i], f);
		free(ls->l[i]);
	}
	fclose(f);
}

/* Set a record line's hash to the SHA-256 of its bytes before `,"hash":`
 * (what a forger would do): its own check holds, the next link breaks. */
static void
rehash(char *line)
{
	char *tail = strstr(line, ",\"hash\":\"");
	unsigned char h[crypto_hash_sha256_BYTES];
	char hex[FG_AUDIT_HASH_HEX + 1];

	cr_assert_not_null(tail);
	crypto_hash_sha256(h, (unsigned char *)line, (size_t)(tail - line));
	sodium_bin2hex(hex, sizeof(hex), h, sizeof(h));
	memcpy(tail + 9, hex, FG_AUDIT_HASH_HEX);
}

static void
damage_byte(struct lines *ls)
{
	char *p = strstr(ls->l[2], "\\\"tenant\\\":3");

	cr_assert_not_null(p);
	p[11] = '4';                     /* tenant 3 becomes tenant 4 */
}

static void
damage_delete(struct lines *ls)
{
	free(ls->l[2]);
	memmove(&ls->l[2], &ls->l[3], (ls->n - 3) * sizeof(ls->l[0]));
	ls->n--;
}

static void
damage_delete_first(struct lines *ls)
{
	free(ls->l[0]);
	memmove(&ls->l[0], &ls->l[1], (ls->n - 1) * sizeof(ls->l[0]));
	ls->n--;
}

static void
damage_swap(struct lines *ls)
{
	char *t = ls->l[1];

	ls->l[1] = ls->l[2];
	ls->l[2] = t;
}

static void
damage_truncate(struct lines *ls)
{
	ls->l[ls->n - 1][strlen(ls->l[ls->n - 1]) - 10] = '\0';
}

static void
damage_rehash(struct lines *ls)
{
	damage_byte(ls);
	rehash(ls->l[2]);
}

static void
damage_not_json(struct lines *ls)
{
	free(ls->l[3]);
	ls->l[3] = strdup("this is not JSON\n");
}

static void
damage_field(struct lines *ls)
{
	/* A field after "hash": the hash is no longer the last field. */
	char *old = ls->l[1];

	cr_assert(asprintf(&ls->l[1], "%.*s,\"x\":1}\n", (int)(strrchr(old, '}') - old), old) > 0);
	free(old);
}

static void
damage_seq(struct lines *ls)
{
	/* seq 4 renumbered 5, and re-hashed: its own hash holds. */
	char *p = strstr(ls->l[3], "\"seq\":4");

	cr_assert_not_null(p);
	p[6] = '5';
	rehash(ls->l[3]);
}

struct damage_case {
	const char *name;
	void (*damage)(struct lines *ls);
	unsigned long line;        /* first bad line */
	long seq;                  /* its seq; -1: none */
	const char *problem;
	const char *needle;        /* in the message */
};

static const struct damage_case damage_cases[] = {
	{ "a changed byte in a middle record's ops", damage_byte, 3, 3, "hash_mismatch",
	  "hash mismatch" },
	{ "a deleted middle record", damage_delete, 3, 4, "sequence_gap",
	  "seq 4 where 3 was expected" },
	{ "a deleted first record", damage_delete_first, 1, 2, "sequence_gap",
	  "seq 2 where 1 was expected" },
	{ "a reordered pair", damage_swap, 2, 3, "sequence_gap", "seq 3 where 2 was expected" },
	{ "a truncated last line", damage_truncate, N_RECORDS, -1, "torn_line", "no newline" },
	{ "a changed record given a new hash", damage_rehash, 4, 4, "broken_link",
	  "is not the hash of the record before it" },
	{ "a line that is not JSON", damage_not_json, 4, -1, "bad_json", "not JSON" },
	{ "a field after the hash", damage_field, 2, 2, "bad_record",
	  "does not end with its \"hash\"" },
	{ "a renumbered record given a new hash", damage_seq, 4, 5, "sequence_gap",
	  "seq 5 where 4 was expected" },
};

Test(audit, damage_is_found_and_the_first_bad_record_named)
{
	char good[192], bad[192], out[4096], want[256];
	struct lines ls;
	int st;

	snprintf(good, sizeof(good), "%s/good.jsonl", rp.dir);
	write_good(good);
	st = verify(good, false, out, sizeof(out));
	cr_assert_eq(st, 0, "the good file: %s", out);
	snprintf(want, sizeof(want), "chain intact: %d records", N_RECORDS);
	cr_assert_not_null(strstr(out, want), "%s", out);

	for (size_t i = 0; i < sizeof(damage_cases) / sizeof(damage_cases[0]); i++) {
		const struct damage_case *dc = &damage_cases[i];
		json_t *res, *b;

		snprintf(bad, sizeof(bad), "%s/bad%zu.jsonl", rp.dir, i);
		split(good, &ls);
		cr_assert_eq(ls.n, N_RECORDS);
		dc->damage(&ls);
		join(bad, &ls);

		/* Human form: FILE:LINE: record SEQ: message. */
		st = verify(bad, false, out, sizeof(out));
		cr_assert_eq(st, 1, "%s: exit status %d: %s", dc->name, st, out);
		if (dc->seq >= 0)
			snprintf(want, sizeof(want), "%s:%lu: record %ld: ", bad, dc->line, dc->seq);
		else
			snprintf(want, sizeof(want), "%s:%lu: ", bad, dc->line);
		cr_assert_not_null(strstr(out, want), "%s: no \"%s\" in: %s", dc->name, want, out);
		cr_assert_not_null(strstr(out, dc->needle), "%s: no \"%s\" in: %s", dc->name,
				   dc->needle, out);

		/* JSON form (the message goes to stderr, the object is the last line). */
		st = verify(bad, true, out, sizeof(out));
		cr_assert_eq(st, 1, "%s: exit status %d", dc->name, st);
		cr_assert_not_null(strstr(out, "{\"file\""), "%s: no JSON in: %s", dc->name, out);
		res = json_loads(strstr(out, "{\"file\""), 0, NULL);
		cr_assert_not_null(res, "%s: not JSON: %s", dc->name, out);
		b = json_object_get(res, "bad");
		cr_assert(json_is_false(json_object_get(res, "intact")), "%s", dc->name);
		cr_assert_eq(json_integer_value(json_object_get(res, "records")),
			     (json_int_t)dc->line - 1, "%s: records before the bad one", dc->name);
		cr_assert_eq(json_integer_value(json_object_get(b, "line")), (json_int_t)dc->line,
			     "%s: line", dc->name);
		if (dc->seq >= 0)
			cr_assert_eq(json_integer_value(json_object_get(b, "seq")), dc->seq, "%s: seq",
				     dc->name);
		else
			cr_assert(json_is_null(json_object_get(b, "seq")), "%s: seq", dc->name);
		cr_assert_str_eq(json_string_value(json_object_get(b, "problem")), dc->problem,
				 "%s: problem", dc->name);
		json_decref(res);
	}
}

Test(audit, bad_arguments_to_verify)
{
	static const struct {
		const char *args;
		int status;
		const char *needle;
	} cases[] = {
		{ "audit verify /nonexistent/audit.jsonl", 1,
		  "cannot read /nonexistent/audit.jsonl: No such file or directory" },
		{ "audit verify /tmp", 1, "/tmp: not a regular file" },
		{ "audit verify", 2, "missing FILE" },
		{ "audit verify a b", 2, "unexpected argument \"b\"" },
		{ "audit verify --frob x", 2, "unknown option \"--frob\"" },
		{ "audit", 2, "\"audit\" needs a subcommand: 'audit verify'" },
	};
	char cmd[512], out[4096], file[192];
	int st;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(cmd, sizeof(cmd), "%s %s", FG_FGCTL_PATH, cases[i].args);
		st = fg_test_run(cmd, out, sizeof(out));
		cr_assert_eq(st, cases[i].status, "%s: exit status %d: %s", cases[i].args, st, out);
		cr_assert_not_null(strstr(out, cases[i].needle), "%s: no \"%s\" in: %s",
				   cases[i].args, cases[i].needle, out);
	}
	/* A mapping file is JSON Lines, but not an audit log. */
	snprintf(file, sizeof(file), "%s/m.jsonl", rp.dir);
	spit(file, "{\"op\":\"tenant\",\"tenant\":7}\n", 27);
	st = verify(file, false, out, sizeof(out));
	cr_assert_eq(st, 1, "%s", out);
	cr_assert_not_null(strstr(out, ":1: no \"seq\" (a positive integer): not an audit record"), "%s", out);
	/* A binary file. */
	snprintf(file, sizeof(file), "%s/b.bin", rp.dir);
	spit(file, "\x7f" "ELF\x02\x01\n\x00\x00", 9);
	st = verify(file, false, out, sizeof(out));
	cr_assert_eq(st, 1, "%s", out);
	cr_assert_not_null(strstr(out, ":1: not JSON: "), "%s", out);
}

/* ---- the writer's API ---------------------------------------------------------- */

Test(audit, the_api_reopens_cuts_a_torn_line_and_records_alarms)
{
	char path[192], out[4096];
	struct fg_audit_open_info info;
	struct fg_err err = { 0 };
	struct fg_audit *a;
	json_t *recs, *alarm;
	FILE *f;

	snprintf(path, sizeof(path), "%s/api.jsonl", rp.dir);
	snprintf(audit_path, sizeof(audit_path), "%s", path);
	write_good(path);
	f = fopen(path, "a");
	fputs("{\"seq\":6,\"ti", f);
	fclose(f);
	a = fg_audit_open(path, &info, &err);
	cr_assert_not_null(a, "%s", err.msg);
	cr_assert_eq(info.last_seq, N_RECORDS);
	cr_assert_eq(info.torn_bytes, 12);
	cr_assert_eq(fg_audit_change(a, "store", NULL, "{\"op\":\"tenant\",\"tenant\":8}\n", 27, &err),
		     0, "%s", err.msg);
	/* Not UTF-8: refused, nothing written. */
	cr_assert_eq(fg_audit_change(a, "store", NULL, "\xff\n", 2, &err), -EINVAL);
	cr_assert_not_null(strstr(err.msg, "op line 1 is not UTF-8"), "%s", err.msg);
	fg_audit_close(a);
	recs = records();
	cr_assert_eq(json_array_size(recs), N_RECORDS + 1);
	alarm = json_array_get(recs, 3);
	cr_assert_str_eq(json_string_value(json_object_get(alarm, "kind")), "alarm");
	cr_assert_str_eq(json_string_value(json_object_get(alarm, "reason")), "sink_mismatch");
	cr_assert_eq(json_integer_value(json_object_get(alarm, "count")), 4);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(json_object_get(alarm, "tenants"), 0),
							"tenant")), 7);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(json_object_get(alarm, "tenants"), 1),
							"total")), 1);
	json_decref(recs);
	cr_assert_eq(verify(path, false, out, sizeof(out)), 0, "%s", out);
	cr_assert_not_null(strstr(out, "6 records, last seq 6"), "%s", out);
}

/* ---- keys and parts ------------------------------------------------------------- */

/* The fingerprint as docs/audit.md documents it: the first 8 bytes of the
 * SHA-256 of the key's 16 bytes, in lowercase hex. */
static void
fingerprint(const char *hex, char fp[FG_AUDIT_FP_HEX + 1])
{
	unsigned char key[16], h[crypto_hash_sha256_BYTES];

	cr_assert_eq(sodium_hex2bin(key, sizeof(key), hex, strlen(hex), NULL, NULL, NULL), 0,
		     "bad key in the test: %s", hex);
	crypto_hash_sha256(h, key, sizeof(key));
	sodium_bin2hex(fp, FG_AUDIT_FP_HEX + 1, h, FG_AUDIT_FP_HEX / 2);
}

/* Not one of the keys' hex is anywhere in the file's bytes, in any case. */
static void
expect_no_keys(const char *path, const char *const *keys, size_t n)
{
	size_t len;
	char *text = slurp(path, &len);

	for (size_t i = 0; i < len; i++)
		text[i] = (char)tolower((unsigned char)text[i]);
	for (size_t i = 0; i < n; i++) {
		char low[2 * 16 + 1];

		cr_assert_eq(strlen(keys[i]), 32);
		for (size_t k = 0; k <= 32; k++)
			low[k] = (char)tolower((unsigned char)keys[i][k]);
		cr_assert_null(memmem(text, len, low, 32), "key %s is in the audit file", keys[i]);
	}
	free(text);
}

/* Every op of every change record, in order, holds no "key"; those with a
 * "key_fp" hold the fingerprints of keys[0..n), in that order. */
static void
expect_fingerprints(json_t *recs, const char *const *keys, size_t n)
{
	size_t i, k = 0;
	json_t *rec;

	json_array_foreach(recs, i, rec) {
		size_t j;
		json_t *line;

		json_array_foreach(json_object_get(rec, "ops"), j, line) {
			json_t *op = json_loads(json_string_value(line), 0, NULL);
			const char *fp;
			char want[FG_AUDIT_FP_HEX + 1];

			cr_assert_not_null(op, "record %zu op %zu is not JSON", i + 1, j);
			cr_assert_null(json_object_get(op, "key"), "record %zu op %zu has a key: %s",
				       i + 1, j, json_string_value(line));
			fp = json_string_value(json_object_get(op, "key_fp"));
			if (fp != NULL) {
				cr_assert(k < n, "record %zu op %zu: one fingerprint too many", i + 1, j);
				fingerprint(keys[k++], want);
				cr_assert_str_eq(fp, want, "record %zu op %zu: the fingerprint of key %s",
						 i + 1, j, keys[k - 1]);
			}
			json_decref(op);
		}
	}
	cr_assert_eq(k, n, "%zu fingerprints in the file, not %zu", k, n);
}

/* A load on one connection: begin, one chunk, commit, acknowledged. */
static void
load(const char *text)
{
	int fd = fg_ctl_connect(rp.sock);

	cr_assert(fd >= 0);
	expect_ok(fg_ctl_call(fd, json_pack("{s:s}", "cmd", "load.begin")), "load.begin");
	expect_ok(fg_ctl_call(fd, json_pack("{s:s, s:s}", "cmd", "load.chunk", "text", text)),
		  "load.chunk");
	expect_ok(fg_ctl_call(fd, json_pack("{s:s}", "cmd", "load.commit")), "load.commit");
	close(fd);
}

Test(audit, keys_are_recorded_as_fingerprints_only)
{
	/* In the order the changes use them; some in capitals. */
	static const char *const keys[] = {
		"5f4dcc3b5aa765d61d8327deb882cf99",      /* --mappings */
		"C0FFEE00DEADBEEF0123456789ABCDEF",      /* apply */
		"a1b2c3d4e5f60718293a4b5c6d7e8f90",      /* rekey */
		"0F1E2D3C4B5A69788796A5B4C3D2E1F0",      /* load: device */
		"d41d8cd98f00b204e9800998ecf8427e",      /* load: move */
	};
	char mfile[192], extra[256], out[4096], fp[FG_AUDIT_FP_HEX + 1], *text;
	json_t *recs, *res;
	FILE *f;

	use_audit(NULL);
	snprintf(mfile, sizeof(mfile), "%s/start.jsonl", rp.dir);
	f = fopen(mfile, "w");
	fprintf(f, "{\"op\":\"tenant\",\"tenant\":7}\n"
		   "{\"op\":\"sink\",\"sink\":70,\"tenant\":7,\"addr\":\"192.0.2.70\",\"port\":7000,\"egress\":0}\n"
		   "{\"op\":\"device\",\"tenant\":7,\"device\":\"0xa1\",\"epoch\":1,\"key\":\"%s\",\"sinks\":[70]}\n",
		keys[0]);
	fclose(f);
	snprintf(extra, sizeof(extra), "--mappings %s", mfile);
	cr_assert(fg_rp_start(&rp, extra), "the router did not start");

	cr_assert(asprintf(&text, "{\"op\":\"device\",\"tenant\":7,\"device\":\"0xa2\",\"epoch\":1,\"sinks\":[70],\"key\":\"%s\"}",
			   keys[1]) > 0);
	expect_ok(call(apply(text)), "device 0xa2");
	free(text);
	expect_ok(call(json_pack("{s:s, s:i, s:s, s:s}", "cmd", "rekey", "tenant", 7, "device",
				 "0xa1", "key", keys[2])),
		  "rekey");
	cr_assert(asprintf(&text,
			   "{\"op\":\"tenant\",\"tenant\":8}\n"
			   "{\"op\":\"sink\",\"sink\":80,\"tenant\":8,\"addr\":\"192.0.2.80\",\"port\":8000,\"egress\":0}\n"
			   "{\"op\":\"device\",\"tenant\":7,\"device\":\"0xa3\",\"epoch\":1,\"sinks\":[70],\"key\":\"%s\"}\n"
			   "{\"op\":\"move\",\"device\":\"0xa2\",\"from\":7,\"to\":8,\"epoch\":2,\"sinks\":[80],\"key\":\"%s\"}\n",
			   keys[3], keys[4]) > 0);
	load(text);
	free(text);
	fg_rp_kill(&rp, SIGTERM);

	expect_no_keys(audit_path, keys, 5);
	recs = records();
	cr_assert_eq(json_array_size(recs), 4, "%zu records, not 4", json_array_size(recs));
	expect_fingerprints(recs, keys, 5);
	json_decref(recs);
	cr_assert_eq(verify(audit_path, false, out, sizeof(out)), 0, "%s", out);
	cr_assert_not_null(strstr(out, "chain intact: 4 records"), "%s", out);

	/* fgctl gives the same fingerprint, whatever the case of the key. */
	fingerprint(keys[1], fp);
	snprintf(extra, sizeof(extra), "%s audit fingerprint %s", FG_FGCTL_PATH, keys[1]);
	cr_assert_eq(fg_test_run(extra, out, sizeof(out)), 0, "%s", out);
	cr_assert_eq(strlen(out), FG_AUDIT_FP_HEX + 1, "%s", out);
	cr_assert(strncmp(out, fp, FG_AUDIT_FP_HEX) == 0, "fgctl says %s, not %s", out, fp);
	for (size_t i = 0; i < 32; i++)
		extra[strlen(extra) - 32 + i] = (char)tolower((unsigned char)keys[1][i]);
	cr_assert_eq(fg_test_run(extra, out, sizeof(out)), 0, "%s", out);
	cr_assert(strncmp(out, fp, FG_AUDIT_FP_HEX) == 0, "fgctl says %s, not %s", out, fp);
	snprintf(extra, sizeof(extra), "%s --json audit fingerprint %s", FG_FGCTL_PATH, keys[2]);
	cr_assert_eq(fg_test_run(extra, out, sizeof(out)), 0, "%s", out);
	res = json_loads(out, 0, NULL);
	fingerprint(keys[2], fp);
	cr_assert_str_eq(json_string_value(json_object_get(res, "key_fp")), fp, "%s", out);
	json_decref(res);
	snprintf(extra, sizeof(extra), "%s audit fingerprint 0123", FG_FGCTL_PATH);
	cr_assert_eq(fg_test_run(extra, out, sizeof(out)), 2, "%s", out);
	cr_assert_not_null(strstr(out, "is not 32 hex digits"), "%s", out);
}

#define BIG_LOAD 2500

/* Device i's key in a big load: distinct, every third one in capitals. */
static void
big_key(unsigned int i, char hex[33])
{
	snprintf(hex, 33, i % 3 ? "%08x%08xa5a5%012x" : "%08X%08XA5A5%012X", 0x5eed0000u + i,
		 i * 2654435761u, i * 7919u + 13);
}

/* A load of BIG_LOAD lines: tenant 9, its sink, then devices with keys. */
static char *
big_load(char keys[][33])
{
	char *text = NULL;
	size_t cap = 0;
	FILE *m = open_memstream(&text, &cap);

	fprintf(m, "{\"op\":\"tenant\",\"tenant\":9}\n"
		   "{\"op\":\"sink\",\"sink\":90,\"tenant\":9,\"addr\":\"2001:db8::90\",\"port\":9000,\"egress\":0}\n");
	for (unsigned int i = 0; i < BIG_LOAD - 2; i++) {
		big_key(i, keys[i]);
		fprintf(m, "{\"op\":\"device\",\"tenant\":9,\"device\":%u,\"epoch\":1,\"sinks\":[90],\"key\":\"%s\"}\n",
			1000 + i, keys[i]);
	}
	fclose(m);
	return text;
}

Test(audit, a_large_load_is_one_transaction_in_parts)
{
	static char keys[BIG_LOAD - 2][33];
	const char *key_ptr[BIG_LOAD - 2];
	char *text = big_load(keys), out[4096];
	json_t *recs, *first;
	size_t n = 0;

	use_audit(NULL);
	cr_assert(fg_rp_start(&rp, NULL), "the router did not start");
	expect_ok(call(apply("{\"op\":\"tenant\",\"tenant\":1}")), "tenant 1");
	load(text);
	expect_ok(call(apply("{\"op\":\"tenant\",\"tenant\":2}")), "tenant 2");
	fg_rp_kill(&rp, SIGTERM);

	recs = records();
	cr_assert_eq(json_array_size(recs), 5, "%zu records, not 5", json_array_size(recs));
	first = json_array_get(recs, 1);
	for (int part = 1; part <= 3; part++) {
		json_t *rec = json_array_get(recs, (size_t)part);
		json_t *ops = json_object_get(rec, "ops");
		size_t want = part < 3 ? FG_AUDIT_OPS_MAX : BIG_LOAD - 2 * FG_AUDIT_OPS_MAX;

		cr_assert_eq(json_integer_value(json_object_get(rec, "seq")), 1 + part);
		cr_assert_eq(json_integer_value(json_object_get(rec, "txn")), 2, "part %d: txn", part);
		cr_assert_eq(json_integer_value(json_object_get(rec, "part")), part);
		cr_assert_eq(json_integer_value(json_object_get(rec, "parts")), 3);
		cr_assert_eq(json_integer_value(json_object_get(rec, "count")), (json_int_t)want);
		cr_assert_eq(json_array_size(ops), want, "part %d: %zu ops", part, json_array_size(ops));
		cr_assert_str_eq(json_string_value(json_object_get(rec, "source")), "socket");
		cr_assert_eq(json_integer_value(json_object_get(json_object_get(rec, "peer"), "pid")),
			     getpid());
		cr_assert_str_eq(json_string_value(json_object_get(rec, "time")),
				 json_string_value(json_object_get(first, "time")), "one time for all parts");
		n += json_array_size(ops);
	}
	cr_assert_eq(n, BIG_LOAD);
	/* The ops in load order: without a key, byte for byte. */
	cr_assert_str_eq(json_string_value(json_array_get(json_object_get(first, "ops"), 0)),
			 "{\"op\":\"tenant\",\"tenant\":9}");
	/* A change of one record has none of txn, part, parts. */
	cr_assert_null(json_object_get(json_array_get(recs, 0), "txn"));
	cr_assert_null(json_object_get(json_array_get(recs, 4), "part"));
	for (size_t i = 0; i < BIG_LOAD - 2; i++)
		key_ptr[i] = keys[i];
	expect_fingerprints(recs, key_ptr, BIG_LOAD - 2);
	json_decref(recs);
	expect_no_keys(audit_path, key_ptr, BIG_LOAD - 2);
	free(text);
	cr_assert_eq(verify(audit_path, false, out, sizeof(out)), 0, "%s", out);
	cr_assert_not_null(strstr(out, "chain intact: 5 records, last seq 5"), "%s", out);
}

/* Through the API: a change, a change of 2500 lines, a change. */
static void
write_parts(const char *path)
{
	static char keys[BIG_LOAD - 2][33];
	char *text = big_load(keys);
	struct fg_err err = { 0 };
	struct fg_audit *a = fg_audit_open(path, NULL, &err);

	cr_assert_not_null(a, "%s", err.msg);
	cr_assert_eq(fg_audit_change(a, "store", NULL, "{\"op\":\"tenant\",\"tenant\":1}\n", 27, &err),
		     0, "%s", err.msg);
	cr_assert_eq(fg_audit_change(a, "store", NULL, text, strlen(text), &err), 0, "%s", err.msg);
	cr_assert_eq(fg_audit_change(a, "store", NULL, "{\"op\":\"tenant\",\"tenant\":2}\n", 27, &err),
		     0, "%s", err.msg);
	fg_audit_close(a);
	free(text);
}

/* verify's JSON answer for a bad file: its problem, line, seq and the good
 * records before it. */
static void
expect_bad(const char *file, const char *problem, unsigned long line, long seq, long records)
{
	char out[4096];
	json_t *res, *b;

	cr_assert_eq(verify(file, true, out, sizeof(out)), 1, "%s", out);
	res = json_loads(strstr(out, "{\"file\"") ? strstr(out, "{\"file\"") : out, 0, NULL);
	cr_assert_not_null(res, "%s", out);
	b = json_object_get(res, "bad");
	cr_assert_str_eq(json_string_value(json_object_get(b, "problem")), problem, "%s", out);
	cr_assert_eq(json_integer_value(json_object_get(b, "line")), (json_int_t)line, "%s", out);
	cr_assert_eq(json_integer_value(json_object_get(b, "seq")), seq, "%s", out);
	cr_assert_eq(json_integer_value(json_object_get(res, "records")), records, "%s", out);
	json_decref(res);
}

Test(audit, verify_proves_a_transaction_whole)
{
	char good[192], bad[192], out[4096];
	struct fg_audit_open_info info;
	struct fg_err err = { 0 };
	struct fg_audit *a;
	struct lines ls;
	size_t cut;

	snprintf(good, sizeof(good), "%s/parts.jsonl", rp.dir);
	write_parts(good);
	cr_assert_eq(verify(good, false, out, sizeof(out)), 0, "%s", out);
	cr_assert_not_null(strstr(out, "chain intact: 5 records"), "%s", out);

	/* A changed byte in part 2: its hash. */
	snprintf(bad, sizeof(bad), "%s/part_changed.jsonl", rp.dir);
	split(good, &ls);
	cr_assert_eq(ls.n, 5);
	char *p = strstr(ls.l[2], "\\\"device\\\":1");

	cr_assert_not_null(p);
	p[12] = p[12] == '9' ? '8' : '9';
	join(bad, &ls);
	expect_bad(bad, "hash_mismatch", 3, 3, 2);

	/* The last part cut off the end: the transaction is named by its part
	 * 1, and only the record before it holds. */
	snprintf(bad, sizeof(bad), "%s/part_missing.jsonl", rp.dir);
	split(good, &ls);
	free(ls.l[4]);
	free(ls.l[3]);
	ls.n = 3;
	cut = strlen(ls.l[1]) + strlen(ls.l[2]);
	join(bad, &ls);
	expect_bad(bad, "broken_txn", 2, 2, 1);
	cr_assert_eq(verify(bad, false, out, sizeof(out)), 1, "%s", out);
	cr_assert_not_null(strstr(out, ":2: record 2: broken change: transaction 2 has 2 of its 3 parts"),
			   "%s", out);

	/* A part taken from the middle and the chain made again after it
	 * (what a forger would do): the parts are not in order. */
	snprintf(bad, sizeof(bad), "%s/part_swapped.jsonl", rp.dir);
	split(good, &ls);
	free(ls.l[3]);
	ls.l[3] = ls.l[4];
	ls.n = 4;
	{
		/* Record 5 renumbered 4, linked to record 3, re-hashed. */
		json_t *r3 = json_loadb(ls.l[2], strlen(ls.l[2]) - 1, 0, NULL);
		char *s = strstr(ls.l[3], "\"seq\":5"), *pv = strstr(ls.l[3], "\"prev\":\"");

		cr_assert(r3 && s && pv);
		s[6] = '4';
		memcpy(pv + 8, json_string_value(json_object_get(r3, "hash")), FG_AUDIT_HASH_HEX);
		rehash(ls.l[3]);
		json_decref(r3);
	}
	join(bad, &ls);
	expect_bad(bad, "broken_txn", 2, 2, 1);

	/* The router's open cuts an unfinished transaction, as a crash leaves
	 * it (its parts were never fdatasync'd, never acknowledged). */
	snprintf(bad, sizeof(bad), "%s/part_missing.jsonl", rp.dir);
	a = fg_audit_open(bad, &info, &err);
	cr_assert_not_null(a, "%s", err.msg);
	cr_assert_eq(info.last_seq, 1);
	cr_assert_eq(info.cut_records, 2);
	cr_assert_eq(info.torn_bytes, cut);
	cr_assert_eq(fg_audit_change(a, "store", NULL, "{\"op\":\"tenant\",\"tenant\":3}\n", 27, &err),
		     0, "%s", err.msg);
	fg_audit_close(a);
	cr_assert_eq(verify(bad, false, out, sizeof(out)), 0, "%s", out);
	cr_assert_not_null(strstr(out, "chain intact: 2 records, last seq 2"), "%s", out);
}

Test(audit, a_failed_change_takes_back_all_its_parts)
{
	static char keys[BIG_LOAD - 2][33];
	char *text = big_load(keys), *bad_key, out[4096];
	struct fg_err err = { 0 };
	struct fg_audit *a;
	struct stat st;
	off_t size;
	json_t *recs;

	a = fg_audit_open(audit_path, NULL, &err);
	cr_assert_not_null(a, "%s", err.msg);
	cr_assert_eq(fg_audit_change(a, "store", NULL, "{\"op\":\"tenant\",\"tenant\":1}\n", 27, &err),
		     0, "%s", err.msg);
	cr_assert_eq(stat(audit_path, &st), 0);
	size = st.st_size;

	/* Line 1500 has a key that is not one: refused in part 2, with part 1
	 * already written; both go. */
	bad_key = strstr(text, keys[1497]);
	cr_assert_not_null(bad_key);
	bad_key[5] = 'x';
	cr_assert_eq(fg_audit_change(a, "store", NULL, text, strlen(text), &err), -EINVAL);
	cr_assert_not_null(strstr(err.msg, "op line 1500: its \"key\" is not 32 hex digits"), "%s",
			   err.msg);
	cr_assert_eq(stat(audit_path, &st), 0);
	cr_assert_eq(st.st_size, size, "%lld bytes left of a refused change",
		     (long long)(st.st_size - size));
	/* A line that names a key but is no op is refused, not written. */
	cr_assert_eq(fg_audit_change(a, "store", NULL, "key 000102030405060708090a0b0c0d0e0f\n", 37,
				     &err), -EINVAL);
	cr_assert_not_null(strstr(err.msg, "op line 1 is not a JSON object but may name a key"), "%s",
			   err.msg);

	/* In a group: a failure takes back the changes added before it. */
	cr_assert_eq(fg_audit_add_change(a, "store", NULL, "{\"op\":\"tenant\",\"tenant\":2}\n", 27,
					 &err), 0, "%s", err.msg);
	cr_assert_eq(fg_audit_add_change(a, "store", NULL, text, strlen(text), &err), -EINVAL);
	cr_assert_eq(fg_audit_commit(a, &err), 0, "%s", err.msg);
	cr_assert_eq(stat(audit_path, &st), 0);
	cr_assert_eq(st.st_size, size);

	/* And the chain goes on from the last committed record. */
	bad_key[5] = keys[1497][5];
	cr_assert_eq(fg_audit_add_change(a, "store", NULL, text, strlen(text), &err), 0, "%s",
		     err.msg);
	cr_assert_eq(fg_audit_add_change(a, "store", NULL, "{\"op\":\"tenant\",\"tenant\":3}\n", 27,
					 &err), 0, "%s", err.msg);
	cr_assert_eq(fg_audit_commit(a, &err), 0, "%s", err.msg);
	fg_audit_close(a);
	free(text);
	recs = records();
	cr_assert_eq(json_array_size(recs), 5);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(recs, 1), "txn")), 2);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(recs, 4), "seq")), 5);
	cr_assert_null(json_object_get(json_array_get(recs, 4), "txn"));
	json_decref(recs);
	cr_assert_eq(verify(audit_path, false, out, sizeof(out)), 0, "%s", out);
}

/* ---- the sink_mismatch alarm ----------------------------------------------------- */

/* Frames of tenant 1's device 0x5001 through the verdict engine, counted in
 * the worker's block; the mapping's sink was corrupted to tenant 2's. */
static void
send_frames(struct fg_engine *eng, struct fg_counters *ctr, unsigned int n)
{
	struct fg_frame_spec spec = { .ip_version = 4, .payload_len = 40, .tenant_id = 1,
				      .device_id = 0x5001, .epoch = 10 };
	uint8_t pkt[256];
	size_t len = fg_frame_build(&spec, pkt, sizeof(pkt));

	for (unsigned int i = 0; i < n; i++) {
		struct rte_mbuf *m = fg_test_mbuf(pkt, (uint32_t)len);
		struct fg_verdict v;

		fg_verdict_burst(eng, ctr, &m, 1, &v);
		cr_assert_eq(v.reason, FG_DROP_sink_mismatch, "verdict %d", v.reason);
		rte_pktmbuf_free(m);
	}
}

static void
expect_alarm(json_t *rec, uint64_t seq, uint64_t count, uint64_t total)
{
	json_t *tenants = json_object_get(rec, "tenants");

	cr_assert_eq(json_integer_value(json_object_get(rec, "seq")), (json_int_t)seq);
	cr_assert_str_eq(json_string_value(json_object_get(rec, "kind")), "alarm");
	cr_assert_str_eq(json_string_value(json_object_get(rec, "reason")), "sink_mismatch");
	cr_assert_eq(json_integer_value(json_object_get(rec, "count")), (json_int_t)count);
	cr_assert_eq(json_integer_value(json_object_get(rec, "total")), (json_int_t)total);
	cr_assert_eq(json_array_size(tenants), 1);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(tenants, 0), "tenant")), 1);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(tenants, 0), "total")),
		     (json_int_t)total);
}

Test(audit, a_sink_mismatch_rise_is_one_alarm_record)
{
	struct fg_device_spec dev = { .tenant_id = 1, .device_id = 0x5001, .epoch = 10,
				      .n_sinks = 1, .sinks = { 10 } };
	struct fg_router *r = calloc(1, sizeof(*r));
	struct fg_worker *w = calloc(1, sizeof(*w));
	struct fg_audit_watch watch = { 0 };
	struct fg_test_env env;
	struct fg_engine eng;
	struct fg_err err = { 0 };
	struct fg_audit *a;
	struct fg_device *entry;
	char out[4096];
	json_t *recs;

	cr_assert(r != NULL && w != NULL);
	fg_test_env_init(&env, 16, 16, 64);
	fg_engine_init(&eng, env.t, FG_DEFAULT_FRAME_PORT);
	for (uint32_t t = 1; t <= 2; t++) {
		cr_assert_eq(fg_tenant_add(env.o, &(struct fg_tenant_spec){ .tenant_id = t }, &err), 0,
			     "%s", err.msg);
		cr_assert_eq(fg_sink_add(env.o, &(struct fg_sink_spec){ .sink_id = 10 * t,
			.tenant_id = t, .family = AF_INET, .addr = { 198, 51, 100, (uint8_t)t },
			.port = 6000 }, &err), 0, "%s", err.msg);
	}
	cr_assert_eq(fg_device_put(env.o, &dev, &err), 0, "%s", err.msg);
	/* Corruption no control path can make: tenant 2's sink in the entry. */
	entry = (struct fg_device *)fg_tables_device(env.t, 1, 0x5001);
	entry->sinks[0] = fg_tables_sink(env.t, 20);
	fg_tables_sync(env.t);
	/* The watch reads a router's workers and tables: one worker here. */
	w->ctr = fg_counters_create(16, SOCKET_ID_ANY);
	cr_assert_not_null(w->ctr);
	r->tables = env.t;
	r->n_workers = 1;
	r->workers[0] = w;
	a = fg_audit_open(audit_path, NULL, &err);
	cr_assert_not_null(a, "%s", err.msg);

	fg_audit_watch(&watch, a, r);              /* nothing yet: no record */
	send_frames(&eng, w->ctr, 3);
	fg_audit_watch(&watch, a, r);              /* within the second: no look */
	watch.next = 0;
	fg_audit_watch(&watch, a, r);              /* 3: one record */
	watch.next = 0;
	fg_audit_watch(&watch, a, r);              /* no rise: no record */
	send_frames(&eng, w->ctr, 2);
	watch.next = 0;
	fg_audit_watch(&watch, a, r);              /* 2 more: one record */
	fg_audit_close(a);

	recs = records();
	cr_assert_eq(json_array_size(recs), 2, "%zu records, not 2", json_array_size(recs));
	expect_alarm(json_array_get(recs, 0), 1, 3, 3);
	expect_alarm(json_array_get(recs, 1), 2, 2, 5);
	json_decref(recs);
	cr_assert_eq(verify(audit_path, false, out, sizeof(out)), 0, "%s", out);

	fg_counters_free(w->ctr);
	free(w);
	free(r);
	fg_test_env_fini(&env);              /* EAL's own folder goes at exit */
}
