/*
 * The control plane, against a real router process over its Unix socket:
 * every operation and every kind of refusal (each invariant, unknown tenant
 * or sink, bad JSON, unknown field, oversized and truncated requests, a peer
 * that may not change state), a load that is one transaction, and crash
 * consistency: kill -9 at random points during loads and single-operation
 * streams, then a restart must hold exactly a prefix of the changes with
 * none of the acknowledged ones missing.
 *
 * FG_CRASH_POINTS (default 20) and FG_BIG_LOAD (lines of the big load,
 * default 1000000; 0 skips it) size the slow parts.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "ctl_client.h"
#include "support.h"

static struct fg_router_proc rp;

static void
setup(void)
{
	fg_rp_init(&rp);
}

static void
teardown(void)
{
	fg_rp_fini(&rp);
}

TestSuite(control, .init = setup, .fini = teardown, .timeout = 600);

static json_t *
call(json_t *req)
{
	json_t *r = fg_ctl_once(rp.sock, req);

	cr_assert_not_null(r, "no response from the router");
	return r;
}

/* The dump, as one string (for before/after comparisons). */
static char *
dump(void)
{
	json_t *r = call(json_pack("{s:s}", "cmd", "dump"));
	char *s = json_dumps(json_object_get(r, "lines"), JSON_COMPACT | JSON_SORT_KEYS);

	json_decref(r);
	return s;
}

/* One row: a request, and the answer it must get. */
struct ctl_case {
	const char *req;          /* JSON */
	const char *code;         /* NULL: ok */
	const char *needle;       /* in the error */
};

static const struct ctl_case cases[] = {
	{ "{\"cmd\":\"apply\",\"op\":{\"op\":\"tenant\",\"tenant\":20,\"name\":\"new\"}}", NULL, NULL },
	{ "{\"cmd\":\"apply\",\"op\":{\"op\":\"tenant\",\"tenant\":20}}", "EEXIST", "tenant 20 already exists" },
	{ "{\"cmd\":\"apply\",\"op\":{\"op\":\"sink\",\"sink\":200,\"tenant\":21,\"addr\":\"192.0.2.9\",\"port\":9,\"egress\":0}}",
	  "ENOENT", "tenant 21 does not exist" },
	{ "{\"cmd\":\"apply\",\"op\":{\"op\":\"sink\",\"sink\":200,\"tenant\":20,\"addr\":\"192.0.2.9\",\"port\":9,\"egress\":0}}", NULL, NULL },
	{ "{\"cmd\":\"apply\",\"op\":{\"op\":\"device\",\"tenant\":20,\"device\":\"0xa1\",\"epoch\":9,\"sinks\":[200]}}",
	  "EEXIST", "held by tenant 7" },
	{ "{\"cmd\":\"apply\",\"op\":{\"op\":\"device\",\"tenant\":20,\"device\":\"0xe1\",\"epoch\":1,\"sinks\":[70]}}",
	  "EXDEV", "sink 70 belongs to tenant 7" },
	{ "{\"cmd\":\"apply\",\"op\":{\"op\":\"device\",\"tenant\":20,\"device\":\"0xe1\",\"epoch\":1,\"sinks\":[999]}}",
	  "ENOENT", "sink 999 does not exist" },
	{ "{\"cmd\":\"apply\",\"op\":{\"op\":\"device\",\"tenant\":20,\"device\":\"0xe1\",\"epoch\":5,\"sinks\":[200]}}", NULL, NULL },
	{ "{\"cmd\":\"apply\",\"op\":{\"op\":\"device\",\"tenant\":20,\"device\":\"0xe1\",\"epoch\":4,\"sinks\":[200]}}",
	  "ERANGE", "epoch 4 is lower than the current 5" },
	{ "{\"cmd\":\"apply\",\"op\":{\"op\":\"move\",\"device\":\"0xe1\",\"from\":7,\"to\":20,\"epoch\":6,\"sinks\":[200]}}",
	  "ESTALE", "held by tenant 20, not by tenant 7" },
	{ "{\"cmd\":\"apply\",\"op\":{\"op\":\"move\",\"device\":\"0xa1\",\"from\":7,\"to\":20,\"epoch\":1,\"sinks\":[200]}}",
	  "ERANGE", "not larger than the current 1" },
	{ "{\"cmd\":\"apply\",\"op\":{\"op\":\"move\",\"device\":\"0xa1\",\"from\":7,\"to\":20,\"epoch\":2,\"sinks\":[200]}}", NULL, NULL },
	{ "{\"cmd\":\"apply\",\"op\":{\"op\":\"del_sink\",\"sink\":200}}", "EBUSY", "in use by 2 device mappings" },
	{ "{\"cmd\":\"apply\",\"op\":{\"op\":\"del_tenant\",\"tenant\":20}}", "EBUSY", "tenant 20 is in use" },
	{ "{\"cmd\":\"apply\",\"op\":{\"op\":\"tenant\",\"tenant\":22,\"colour\":1}}", "EINVAL", "unknown field \"colour\"" },
	{ "{\"cmd\":\"apply\",\"op\":{\"op\":\"tenant\",\"tenant\":\"22\"}}", "EINVAL", "\"tenant\" must be an integer" },
	{ "{\"cmd\":\"apply\"}", "EINVAL", "\"op\" must be a mapping-file operation object" },
	{ "{\"cmd\":\"apply\",\"op\":{\"op\":\"suspend\",\"tenant\":20}}", NULL, NULL },
	{ "{\"cmd\":\"apply\",\"op\":{\"op\":\"resume\",\"tenant\":20}}", NULL, NULL },
	{ "{\"cmd\":\"rekey\",\"tenant\":20,\"device\":\"0xe1\",\"key\":\"000102030405060708090a0b0c0d0e0f\"}", NULL, NULL },
	{ "{\"cmd\":\"rekey\",\"tenant\":7,\"device\":\"0xe1\"}", "ENOENT", "not held by tenant 7" },
	{ "{\"cmd\":\"rekey\",\"tenant\":20,\"device\":\"0xe1\",\"key\":\"00\"}", "EINVAL", "32 hex digits" },
	{ "{\"cmd\":\"apply\",\"op\":{\"op\":\"del_device\",\"tenant\":20,\"device\":\"0xe1\"}}", NULL, NULL },
	{ "{\"cmd\":\"apply\",\"op\":{\"op\":\"del_device\",\"tenant\":20,\"device\":\"0xe1\"}}", "ENOENT", "not held by tenant 20" },
	{ "{\"cmd\":\"dump\",\"tenant\":12345}", "ENOENT", "tenant 12345 does not exist" },
	{ "{\"cmd\":\"drops\",\"tenant\":\"x\"}", "EINVAL", "\"tenant\" must be a tenant id" },
	{ "{\"cmd\":\"frobnicate\"}", "EINVAL", "unknown command \"frobnicate\"" },
	{ "[1,2,3]", "EINVAL", "a request is one JSON object" },
	{ "{\"cmd\":\"load.chunk\",\"text\":\"{}\\n\"}", "EINVAL", "load.chunk without load.begin" },
	{ "{\"cmd\":\"health\"}", NULL, NULL },
	{ "{\"cmd\":\"stats\"}", NULL, NULL },
};

Test(control, every_operation_and_refusal)
{
	char extra[4096];

	snprintf(extra, sizeof(extra), "--mappings %s/vectors/mappings.jsonl", FG_TEST_DIR);
	cr_assert(fg_rp_start(&rp, extra), "the router did not start");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *req = json_loads(cases[i].req, 0, NULL), *r;
		char *before = NULL, *after;

		cr_assert_not_null(req, "case %zu: bad test JSON", i);
		if (cases[i].code != NULL)
			before = dump();
		r = call(req);
		if (cases[i].code == NULL) {
			cr_expect(json_is_true(json_object_get(r, "ok")), "case %zu (%s): %s", i,
				  cases[i].req, json_string_value(json_object_get(r, "error")));
		} else {
			const char *code = json_string_value(json_object_get(r, "code"));
			const char *msg = json_string_value(json_object_get(r, "error"));

			cr_expect(json_is_false(json_object_get(r, "ok")), "case %zu accepted", i);
			cr_expect(code && strcmp(code, cases[i].code) == 0, "case %zu: code %s, expected %s (%s)",
				  i, code, cases[i].code, msg);
			cr_expect(msg && strstr(msg, cases[i].needle), "case %zu: \"%s\" does not say \"%s\"",
				  i, msg, cases[i].needle);
			after = dump();
			cr_expect_str_eq(after, before, "case %zu changed the state", i);
			free(after);
			free(before);
		}
		json_decref(r);
	}
	/* The moved device is tenant 20's now, with its sink and epoch. */
	json_t *r = call(json_pack("{s:s, s:i}", "cmd", "dump", "tenant", 20));
	char *s = json_dumps(r, JSON_COMPACT);

	cr_expect(strstr(s, "\"device\":\"0x00000000000000a1\",\"epoch\":2") != NULL ||
		  strstr(s, "0x00000000000000a1") != NULL, "%s", s);
	free(s);
	json_decref(r);
}

/* Malformed frames: the router answers or drops the connection, and keeps
 * serving. */
Test(control, oversized_and_truncated_requests_leave_the_router_running)
{
	uint8_t hdr[4];
	int fd;

	cr_assert(fg_rp_start(&rp, NULL));
	/* Over the limit: an error, then the connection is closed. */
	fd = fg_ctl_connect(rp.sock);
	cr_assert_geq(fd, 0);
	hdr[0] = 0x7f; hdr[1] = hdr[2] = hdr[3] = 0xff;
	cr_assert_eq(write(fd, hdr, 4), 4);
	uint8_t buf[512];
	ssize_t n = read(fd, buf, sizeof(buf));

	cr_expect_gt(n, 4, "no error reply to an oversized request");
	buf[n > 0 ? n : 0] = '\0';
	cr_expect(n > 4 && strstr((char *)buf + 4, "EMSGSIZE") != NULL, "%s", buf + 4);
	close(fd);
	/* Truncated: half a request, then the peer goes. */
	fd = fg_ctl_connect(rp.sock);
	hdr[0] = 0; hdr[1] = 0; hdr[2] = 0; hdr[3] = 100;
	cr_assert_eq(write(fd, hdr, 4), 4);
	cr_assert_eq(write(fd, "{\"cmd\":", 7), 7);
	close(fd);
	/* Not JSON at all. */
	fd = fg_ctl_connect(rp.sock);
	hdr[3] = 5;
	cr_assert_eq(write(fd, hdr, 4), 4);
	cr_assert_eq(write(fd, "hello", 5), 5);
	n = read(fd, buf, sizeof(buf));
	buf[n > 0 ? n : 0] = '\0';
	cr_expect(n > 4 && strstr((char *)buf + 4, "not valid JSON") != NULL, "%s", buf + 4);
	close(fd);
	/* Not UTF-8 (found by fuzz_ctl: the error quoted the bytes, and the
	 * reply was lost): an error all the same, the bytes shown as '?'. */
	{
		static const char bad[] = "{\"cmd\":\"apply\",\"op\":{\"op\":\"ten\xff\xfe\"}}";

		fd = fg_ctl_connect(rp.sock);
		hdr[3] = (uint8_t)(sizeof(bad) - 1);
		cr_assert_eq(write(fd, hdr, 4), 4);
		cr_assert_eq(write(fd, bad, sizeof(bad) - 1), (ssize_t)sizeof(bad) - 1);
		n = read(fd, buf, sizeof(buf) - 1);
		buf[n > 0 ? n : 0] = '\0';
		cr_expect(n > 4 && strstr((char *)buf + 4, "\"EINVAL\"") != NULL &&
			  strstr((char *)buf + 4, "not valid JSON") != NULL,
			  "no clear error for a request that is not UTF-8: %s", n > 4 ? (char *)buf + 4 : "");
		close(fd);
	}
	/* Still serving. */
	json_t *r = call(json_pack("{s:s}", "cmd", "health"));

	cr_expect_str_eq(json_string_value(json_object_get(r, "status")), "ok");
	json_decref(r);
}

/* A peer that is neither root nor in the control group may not change
 * state, nor read it without the read group. */
Test(control, an_unauthorized_peer_is_refused)
{
	int st;
	pid_t pid;

	cr_assert(fg_rp_start(&rp, NULL));
	/* Let any user reach the socket, so SO_PEERCRED is what refuses. */
	cr_assert_eq(chmod(rp.sock, 0666), 0);
	cr_assert_eq(chmod(rp.dir, 0755), 0);
	pid = fork();
	if (pid == 0) {
		json_t *r;
		const char *code;

		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(10);
		r = fg_ctl_once(rp.sock, json_pack("{s:s, s:{s:s, s:i}}", "cmd", "apply",
						   "op", "op", "tenant", "tenant", 30));
		code = r ? json_string_value(json_object_get(r, "code")) : NULL;
		if (code == NULL || strcmp(code, "EPERM") != 0)
			_exit(11);
		if (strstr(json_string_value(json_object_get(r, "error")), "uid 65534 may not change state") == NULL)
			_exit(12);
		r = fg_ctl_once(rp.sock, json_pack("{s:s}", "cmd", "dump"));
		code = r ? json_string_value(json_object_get(r, "code")) : NULL;
		_exit(code != NULL && strcmp(code, "EPERM") == 0 ? 0 : 13);
	}
	waitpid(pid, &st, 0);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the unprivileged peer: exit %d",
		  WEXITSTATUS(st));
	/* Nothing changed; root still may. */
	json_t *r = call(json_pack("{s:s, s:i}", "cmd", "dump", "tenant", 30));

	cr_expect_str_eq(json_string_value(json_object_get(r, "code")), "ENOENT");
	json_decref(r);
}

/* Write a mapping file of n lines: 100 tenants (ids base+1..base+100), 10
 * sinks each, then devices; line bad_line (1-based, 0: none) names a sink
 * that does not exist. */
#define BIG_FIXED 1100                  /* tenant and sink lines */

static void
write_big(const char *path, unsigned long n, unsigned long bad_line, unsigned int base)
{
	FILE *f = fopen(path, "w");
	unsigned long line = 0;

	cr_assert_not_null(f);
	for (unsigned int t = base + 1; t <= base + 100; t++, line++)
		fprintf(f, "{\"op\":\"tenant\",\"tenant\":%u}\n", t);
	for (unsigned int t = base + 1; t <= base + 100; t++)
		for (unsigned int k = 0; k < 10; k++, line++)
			fprintf(f, "{\"op\":\"sink\",\"sink\":%u,\"tenant\":%u,\"addr\":\"198.18.%u.%u\",\"port\":%u,\"egress\":0}\n",
				t * 10 + k, t, t % 256, k + 1, 6000 + k);
	for (unsigned long d = 1; line < n; d++) {
		unsigned int t = base + 1 + (unsigned int)(d % 100);

		line++;
		fprintf(f, "{\"op\":\"device\",\"tenant\":%u,\"device\":\"0x%08x%08lx\",\"epoch\":1,\"sinks\":[%u]}\n",
			t, base + 1, d, line == bad_line ? 5 : t * 10 + (unsigned int)(d % 10));
	}
	fclose(f);
}

/* Stream a file as load.begin, chunks of whole lines, load.commit. No
 * Criterion calls: forked clients use it too. NULL when the router went. */
static json_t *
load_file_raw(const char *path)
{
	static char chunk[1 << 20];
	FILE *f = fopen(path, "r");
	size_t used = 0;
	char line[512];
	int fd = fg_ctl_connect(rp.sock);
	json_t *r = NULL;

	if (f == NULL || fd < 0)
		goto out;
	json_decref(fg_ctl_call(fd, json_pack("{s:s}", "cmd", "load.begin")));
	while (fgets(line, sizeof(line), f) != NULL) {
		size_t l = strlen(line);

		if (used + l > sizeof(chunk) - 1) {
			r = fg_ctl_call(fd, json_pack("{s:s, s:s%}", "cmd", "load.chunk", "text", chunk, used));
			if (r == NULL || !json_is_true(json_object_get(r, "ok")))
				goto out;
			json_decref(r);
			r = NULL;
			used = 0;
		}
		memcpy(chunk + used, line, l);
		used += l;
	}
	if (used) {
		r = fg_ctl_call(fd, json_pack("{s:s, s:s%}", "cmd", "load.chunk", "text", chunk, used));
		if (r == NULL || !json_is_true(json_object_get(r, "ok")))
			goto out;
		json_decref(r);
	}
	r = fg_ctl_call(fd, json_pack("{s:s}", "cmd", "load.commit"));
out:
	if (f != NULL)
		fclose(f);
	if (fd >= 0)
		close(fd);
	return r;
}

static json_t *
load_file(const char *path)
{
	json_t *r = load_file_raw(path);

	cr_assert_not_null(r, "the load of %s got no answer", path);
	return r;
}

static json_int_t
devices(void)
{
	json_t *r = call(json_pack("{s:s}", "cmd", "health"));
	json_int_t n = json_integer_value(json_object_get(r, "devices"));

	json_decref(r);
	return n;
}

Test(control, a_big_load_is_one_transaction)
{
	const char *e = getenv("FG_BIG_LOAD");
	unsigned long n = e ? strtoul(e, NULL, 10) : 1000000;
	char path[160];
	double t0, t1;
	json_t *r;

	if (n == 0)
		cr_skip_test("FG_BIG_LOAD=0");
	cr_assert(fg_rp_start(&rp, NULL));
	snprintf(path, sizeof(path), "%s/big.jsonl", rp.dir);
	/* The same file with a bad line just before the end applies nothing. */
	write_big(path, n, n - 1, 0);
	r = load_file(path);
	cr_expect(json_is_false(json_object_get(r, "ok")));
	char want[64];

	snprintf(want, sizeof(want), "line %lu: ", n - 1);
	cr_expect(strncmp(json_string_value(json_object_get(r, "error")), want, strlen(want)) == 0,
		  "%s", json_string_value(json_object_get(r, "error")));
	cr_expect(strstr(json_string_value(json_object_get(r, "error")), "sink 5 does not exist") != NULL,
		  "%s", json_string_value(json_object_get(r, "error")));
	json_decref(r);
	cr_expect_eq(devices(), 0, "a refused load applied devices");

	write_big(path, n, 0, 0);
	t0 = fg_test_now();
	r = load_file(path);
	t1 = fg_test_now();
	cr_expect(json_is_true(json_object_get(r, "ok")), "%s",
		  json_string_value(json_object_get(r, "error")));
	cr_expect_eq(json_integer_value(json_object_get(r, "applied")), (json_int_t)n);
	json_decref(r);
	cr_expect_eq(devices(), (json_int_t)(n - BIG_FIXED));
	fprintf(stderr, "control: loaded %lu lines in %.2f s (%.0f mappings/s, including the fsync and the grace period)\n",
		n, t1 - t0, n / (t1 - t0));

	/* Restart: the journal gives back the same state. */
	char *before = dump(), *after;

	fg_rp_kill(&rp, SIGTERM);
	t0 = fg_test_now();
	cr_assert(fg_rp_start(&rp, NULL), "no restart");
	t1 = fg_test_now();
	fprintf(stderr, "control: restart with %lu mappings in the journal: serving after %.2f s\n",
		n - BIG_FIXED, t1 - t0);
	after = dump();
	cr_expect(strcmp(before, after) == 0, "the restart changed the state");
	free(before);
	free(after);
}

/* ---- crash consistency ------------------------------------------------------ */

/* Tenants + sinks + devices the router holds. */
static json_int_t
objects(void)
{
	json_t *r = call(json_pack("{s:s}", "cmd", "health"));
	json_int_t n = json_integer_value(json_object_get(r, "tenants")) +
		       json_integer_value(json_object_get(r, "sinks")) +
		       json_integer_value(json_object_get(r, "devices"));

	json_decref(r);
	return n;
}

/* The i-th change of the single-op stream: each adds one object (8
 * tenants, 8 sinks, then devices), so the objects held tell how long a
 * prefix of the stream is applied. */
static json_t *
stream_op(unsigned int i)
{
	unsigned int t = 900001 + i % 8;
	char dev[24];

	if (i < 8)
		return json_pack("{s:s, s:i}", "op", "tenant", "tenant", t);
	if (i < 16)
		return json_pack("{s:s, s:i, s:i, s:s, s:i, s:i}", "op", "sink", "sink", 9000000 + t,
				 "tenant", t, "addr", "192.0.2.7", "port", 6000 + i, "egress", 0);
	snprintf(dev, sizeof(dev), "0xfeed%08x", i);
	return json_pack("{s:s, s:i, s:s, s:i, s:[i]}", "op", "device", "tenant", t,
			 "device", dev, "epoch", 1, "sinks", 9000000 + t);
}

#define LOAD_LINES (BIG_FIXED + 100000)

Test(control, kill_9_keeps_exactly_a_prefix_of_the_changes)
{
	const char *e = getenv("FG_CRASH_POINTS");
	unsigned int points = e ? (unsigned int)strtoul(e, NULL, 10) : 20;
	unsigned int stream_done = 0, loads = 0, acked_total = 0;
	json_int_t load_objects = 0;
	char path[160];

	srand((unsigned int)getpid());
	snprintf(path, sizeof(path), "%s/load.jsonl", rp.dir);
	cr_assert(fg_rp_start(&rp, NULL));
	for (unsigned int p = 0; p < points; p++) {
		int acked_pipe[2];
		pid_t client;
		unsigned int acked = 0;
		bool load = p % 2 == 1;
		json_int_t before = objects();
		char c;

		cr_assert_eq(pipe(acked_pipe), 0);
		if (load)
			write_big(path, LOAD_LINES, 0, 1000 + 100 * loads);
		client = fork();
		if (client == 0) {
			/* The client: send changes, report each ack. */
			close(acked_pipe[0]);
			if (load) {
				json_t *r = load_file_raw(path);

				if (r != NULL && json_is_true(json_object_get(r, "ok")) &&
				    write(acked_pipe[1], "L", 1) != 1)
					_exit(1);
				_exit(0);
			}
			for (unsigned int i = stream_done;; i++) {
				json_t *r = fg_ctl_once(rp.sock, json_pack("{s:s, s:o}", "cmd", "apply",
									   "op", stream_op(i)));

				if (r == NULL || !json_is_true(json_object_get(r, "ok")))
					_exit(0);
				if (write(acked_pipe[1], "a", 1) != 1)
					_exit(1);
				json_decref(r);
			}
		}
		close(acked_pipe[1]);
		/* Crash at a random moment: 20-700 ms into a stream, 0.1-3 s
		 * into a load (which takes about 2 s: sent, checked, journaled,
		 * applied), so loads die at every stage, and some finish. */
		usleep(load ? 100000 + (unsigned int)(rand() % 2900000)
			    : 20000 + (unsigned int)(rand() % 680000));
		fg_rp_kill(&rp, SIGKILL);
		while (read(acked_pipe[0], &c, 1) == 1)
			acked++;
		close(acked_pipe[0]);
		waitpid(client, NULL, 0);
		cr_assert(fg_rp_start(&rp, NULL), "point %u: no restart after kill -9", p);

		json_int_t got = objects();

		if (load) {
			/* All or nothing; all when acknowledged. */
			cr_expect(got == before || got == before + LOAD_LINES,
				  "point %u: %ld objects after a crashed load (before %ld)", p,
				  (long)got, (long)before);
			if (acked)
				cr_expect_eq(got, before + LOAD_LINES,
					     "point %u: an acknowledged load is missing", p);
			fprintf(stderr, "crash point %u (load of %d lines): acknowledged %s, objects %ld -> %ld\n",
				p, LOAD_LINES, acked ? "yes" : "no", (long)before, (long)got);
			if (got != before) {
				loads++;
				load_objects += LOAD_LINES;
			}
			acked_total += acked;
		} else {
			/* A prefix of the stream: every acknowledged change, and
			 * at most the one in flight when the router died. */
			json_int_t applied = got - load_objects;

			cr_expect(applied >= stream_done + acked && applied <= stream_done + acked + 1,
				  "point %u: %ld stream changes held; %u acknowledged before, %u now",
				  p, (long)applied, stream_done, acked);
			fprintf(stderr, "crash point %u (stream): %u acknowledged, %ld held (of %u..%u allowed)\n",
				p, acked, (long)applied - stream_done, acked, acked + 1);
			stream_done = (unsigned int)applied;
			acked_total += acked;
		}
	}
	cr_expect_gt(acked_total, 0, "no change was ever acknowledged before a crash");
}

/* fgctl against the real router: the operator's commands, their refusals
 * and exit codes, a load whose bad line is named as FILE:LINE. */
static int
fgctl(char *out, size_t len, const char *fmt, ...)
{
	char args[2048], cmd[4096];
	va_list ap;
	FILE *p;
	size_t n;
	int st;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof(cmd), "%s --socket %s %s 2>&1", FG_FGCTL_PATH, rp.sock, args);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	n = fread(out, 1, len - 1, p);
	out[n] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

Test(control, fgctl_drives_the_router)
{
	char out[65536], path[160];
	FILE *f;

	cr_assert(fg_rp_start(&rp, NULL));
	cr_expect_eq(fgctl(out, sizeof(out), "tenant add 55 --name zeta --max-devices 10"), 0, "%s", out);
	cr_expect_eq(fgctl(out, sizeof(out), "tenant add 55"), 1, "%s", out);
	cr_expect(strstr(out, "tenant 55 already exists") != NULL, "%s", out);
	cr_expect_eq(fgctl(out, sizeof(out), "sink add 550 --tenant 55 --addr 2001:db8::55 --port 7000"), 0, "%s", out);
	cr_expect_eq(fgctl(out, sizeof(out), "device add 55 0x55 --epoch 3 --sinks 550 --key 000102030405060708090a0b0c0d0e0f"), 0, "%s", out);
	cr_expect_eq(fgctl(out, sizeof(out), "device add 55 0x55 --epoch 2 --sinks 550"), 1, "%s", out);
	cr_expect(strstr(out, "epoch 2 is lower than the current 3") != NULL, "%s", out);
	cr_expect_eq(fgctl(out, sizeof(out), "device rekey 55 0x55 --no-key"), 0, "%s", out);
	cr_expect_eq(fgctl(out, sizeof(out), "dump --tenant 55"), 0, "%s", out);
	cr_expect(strstr(out, "\"device\":\"0x0000000000000055\"") != NULL, "%s", out);
	cr_expect(strstr(out, "\"key\"") == NULL, "the key was not removed: %s", out);
	cr_expect_eq(fgctl(out, sizeof(out), "--json health"), 0, "%s", out);
	cr_expect(strstr(out, "\"devices\":1") != NULL, "%s", out);

	/* A load with a bad third line: named as FILE:3, nothing applied. */
	snprintf(path, sizeof(path), "%s/l.jsonl", rp.dir);
	f = fopen(path, "w");
	fprintf(f, "{\"op\":\"tenant\",\"tenant\":56}\n"
		   "{\"op\":\"sink\",\"sink\":560,\"tenant\":56,\"addr\":\"192.0.2.56\",\"port\":7000,\"egress\":0}\n"
		   "{\"op\":\"device\",\"tenant\":56,\"device\":\"0x56\",\"epoch\":1,\"sinks\":[550]}\n");
	fclose(f);
	cr_expect_eq(fgctl(out, sizeof(out), "load %s", path), 1, "%s", out);
	char want[200];

	snprintf(want, sizeof(want), "%s:3:", path);
	cr_expect(strstr(out, want) != NULL && strstr(out, "sink 550 belongs to tenant 55") != NULL,
		  "%s", out);
	cr_expect_eq(fgctl(out, sizeof(out), "dump --tenant 56"), 1, "tenant 56 exists after a refused load: %s", out);
	cr_expect_eq(fgctl(out, sizeof(out), "tenant del 55"), 1, "%s", out);
	cr_expect(strstr(out, "tenant 55 is in use") != NULL, "%s", out);
	fg_rp_kill(&rp, SIGTERM);
	cr_expect_eq(fgctl(out, sizeof(out), "health"), 3, "%s", out);
	cr_expect(strstr(out, rp.sock) != NULL, "%s", out);
}

/* Compaction: once the journal passes compact_bytes, the router writes a
 * snapshot and empties the log; a restart gives back the same state. */
Test(control, the_journal_is_compacted_and_restores_the_same_state)
{
	char *before, *after;
	json_t *r;

	fg_rp_fini(&rp);
	fg_rp_init_with(&rp, "\"compact_bytes\": 2048, ");
	cr_assert(fg_rp_start(&rp, NULL));
	for (int t = 1; t <= 60; t++) {
		r = call(json_pack("{s:s, s:{s:s, s:i, s:s}}", "cmd", "apply", "op", "op", "tenant",
				   "tenant", t, "name", "compaction-test-tenant"));
		cr_assert(json_is_true(json_object_get(r, "ok")));
		json_decref(r);
	}
	r = call(json_pack("{s:s}", "cmd", "health"));
	json_t *j = json_object_get(r, "journal");

	cr_expect_gt(json_integer_value(json_object_get(j, "generation")), 0,
		     "no snapshot was taken");
	cr_expect_lt(json_integer_value(json_object_get(j, "bytes")), 2048 + 200,
		     "the log was not emptied: %ld bytes",
		     (long)json_integer_value(json_object_get(j, "bytes")));
	json_decref(r);
	before = dump();
	fg_rp_kill(&rp, SIGKILL);
	cr_assert(fg_rp_start(&rp, NULL));
	after = dump();
	cr_expect_str_eq(after, before, "the restart after compaction changed the state");
	free(before);
	free(after);
}

/* Group commit: changes pipelined on one connection (and a second one) are
 * each accepted or refused as if alone, on the state the earlier ones leave;
 * a read in the middle sees exactly the changes before it; the replies keep
 * their order; and a restart from the journal holds the same state. */
Test(control, pipelined_changes_commit_in_groups_each_with_its_own_answer)
{
	enum { DEVICES = 300 };
	int fd, fd2;
	unsigned int sent = 0, expect_ok[2 * DEVICES + 16];
	char dev[24];
	char *before, *after;

	cr_assert(fg_rp_start(&rp, NULL), "the router did not start");
	fd = fg_ctl_connect(rp.sock);
	fd2 = fg_ctl_connect(rp.sock);
	cr_assert(fd >= 0 && fd2 >= 0);
#define SEND(ok, ...) do { \
		cr_assert_eq(fg_ctl_send(fd, json_pack(__VA_ARGS__)), 0); \
		expect_ok[sent++] = (ok); \
	} while (0)
	SEND(1, "{s:s, s:{s:s, s:i}}", "cmd", "apply", "op", "op", "tenant", "tenant", 501);
	SEND(1, "{s:s, s:{s:s, s:i, s:i}}", "cmd", "apply", "op", "op", "tenant", "tenant", 502,
	     "max_devices", DEVICES);
	SEND(1, "{s:s, s:{s:s, s:i, s:i, s:s, s:i, s:i}}", "cmd", "apply", "op", "op", "sink",
	     "sink", 5010, "tenant", 501, "addr", "192.0.2.50", "port", 6000, "egress", 0);
	SEND(1, "{s:s, s:{s:s, s:i, s:i, s:s, s:i, s:i}}", "cmd", "apply", "op", "op", "sink",
	     "sink", 5020, "tenant", 502, "addr", "192.0.2.51", "port", 6000, "egress", 0);
	for (unsigned int i = 1; i <= DEVICES; i++) {
		snprintf(dev, sizeof(dev), "0x%x", 0x5000 + i);
		SEND(1, "{s:s, s:{s:s, s:i, s:s, s:i, s:[i]}}", "cmd", "apply", "op", "op", "device",
		     "tenant", 501, "device", dev, "epoch", 1, "sinks", 5010);
	}
	/* Refused on the state the earlier changes of the pipeline leave. */
	SEND(0, "{s:s, s:{s:s, s:i, s:s, s:i, s:[i]}}", "cmd", "apply", "op", "op", "device",
	     "tenant", 502, "device", "0x5001", "epoch", 1, "sinks", 5020);
	SEND(0, "{s:s, s:{s:s, s:i}}", "cmd", "apply", "op", "op", "del_sink", "sink", 5010);
	SEND(1, "{s:s, s:{s:s, s:s, s:i, s:i, s:i, s:[i]}}", "cmd", "apply", "op", "op", "move",
	     "device", "0x5001", "from", 501, "to", 502, "epoch", 2, "sinks", 5020);
	SEND(0, "{s:s, s:{s:s, s:s, s:i, s:i, s:i, s:[i]}}", "cmd", "apply", "op", "op", "move",
	     "device", "0x5001", "from", 501, "to", 502, "epoch", 3, "sinks", 5020);
	/* A read in the middle: after the changes before it. */
	SEND(1, "{s:s, s:i}", "cmd", "dump", "tenant", 502);
	for (unsigned int i = 2; i <= DEVICES; i++) {
		snprintf(dev, sizeof(dev), "0x%x", 0x5000 + i);
		SEND(1, "{s:s, s:{s:s, s:s, s:i, s:i, s:i, s:[i]}}", "cmd", "apply", "op", "op", "move",
		     "device", dev, "from", 501, "to", 502, "epoch", 2, "sinks", 5020);
	}
	/* max_devices of tenant 502 is full now. */
	SEND(0, "{s:s, s:{s:s, s:i, s:s, s:i, s:[i]}}", "cmd", "apply", "op", "op", "device",
	     "tenant", 502, "device", "0x9999", "epoch", 1, "sinks", 5020);
	SEND(0, "{s:s, s:{s:s, s:i}}", "cmd", "apply", "op", "op", "del_tenant", "tenant", 502);
	SEND(1, "{s:s, s:{s:s, s:i}}", "cmd", "apply", "op", "op", "del_sink", "sink", 5010);
	SEND(1, "{s:s, s:{s:s, s:i}}", "cmd", "apply", "op", "op", "suspend", "tenant", 502);
#undef SEND
	/* The second connection, meanwhile. */
	json_t *r2 = fg_ctl_call(fd2, json_pack("{s:s, s:{s:s, s:i}}", "cmd", "apply", "op", "op",
						 "tenant", "tenant", 503));
	cr_assert(json_is_true(json_object_get(r2, "ok")));
	json_decref(r2);

	for (unsigned int i = 0; i < sent; i++) {
		json_t *r = fg_ctl_recv(fd);

		cr_assert_not_null(r, "reply %u missing", i);
		cr_expect_eq(json_is_true(json_object_get(r, "ok")), expect_ok[i] != 0,
			     "reply %u: %s", i, json_string_value(json_object_get(r, "error")));
		if (json_object_get(r, "lines") != NULL) {
			/* The dump after the move: device 0x5001 only. */
			cr_expect_eq(json_array_size(json_object_get(r, "lines")), 3,
				     "the dump in the middle saw %zu lines",
				     json_array_size(json_object_get(r, "lines")));
		}
		json_decref(r);
	}
	close(fd);
	close(fd2);

	json_t *h = call(json_pack("{s:s}", "cmd", "health"));
	json_int_t groups = json_integer_value(json_object_get(h, "group_commits"));
	json_int_t changes = json_integer_value(json_object_get(h, "changes_applied"));

	cr_expect_eq(changes, 4 + DEVICES + 1 + (DEVICES - 1) + 2 + 1, "changes %lld", (long long)changes);
	cr_expect(groups < changes / 4, "%lld group commits for %lld changes: not grouped",
		  (long long)groups, (long long)changes);
	printf("pipelined: %lld changes in %lld group commits\n", (long long)changes, (long long)groups);
	json_decref(h);

	before = dump();
	cr_expect(strstr(before, "\"suspended\":true") != NULL || strstr(before, "suspend") != NULL,
		  "%s", before);
	fg_rp_kill(&rp, SIGKILL);
	cr_assert(fg_rp_start(&rp, NULL), "the router did not restart");
	after = dump();
	cr_expect_str_eq(after, before, "the restart does not hold the acknowledged state");
	free(before);
	free(after);
}

/* idle_sleep_us: a one-lcore router that sleeps between passes that got
 * nothing still takes every frame (the same counts as the suite's router,
 * which polls without pause) and still answers its socket. */
Test(control, a_router_that_sleeps_when_idle_takes_every_frame_and_serves)
{
	struct fg_router_proc idle;
	json_t *a, *b, *r;
	char *sa, *sb;

	cr_assert(fg_rp_start(&rp, NULL));
	a = call(json_pack("{s:s}", "cmd", "stats"));
	fg_rp_init_with(&idle, "\"idle_sleep_us\": 2000, ");
	cr_assert(fg_rp_start(&idle, NULL), "the router with idle_sleep_us did not start");
	for (int i = 0; i < 3; i++) {   /* several passes, each sleeping */
		r = fg_ctl_once(idle.sock, json_pack("{s:s, s:{s:s, s:i}}", "cmd", "apply", "op",
						      "op", "tenant", "tenant", 900 + i));
		cr_assert(json_is_true(json_object_get(r, "ok")), "apply on the sleeping router failed");
		json_decref(r);
	}
	b = fg_ctl_once(idle.sock, json_pack("{s:s}", "cmd", "stats"));
	cr_assert_not_null(b);
	cr_assert_gt(json_integer_value(json_object_get(a, "rx_packets")), 0,
		     "the suite's router received nothing: nothing to compare");
	sa = json_dumps(json_object_get(a, "drops"), JSON_SORT_KEYS);
	sb = json_dumps(json_object_get(b, "drops"), JSON_SORT_KEYS);
	cr_expect_eq(json_integer_value(json_object_get(b, "rx_packets")),
		     json_integer_value(json_object_get(a, "rx_packets")),
		     "received %lld frames while sleeping when idle, %lld without",
		     (long long)json_integer_value(json_object_get(b, "rx_packets")),
		     (long long)json_integer_value(json_object_get(a, "rx_packets")));
	cr_expect_str_eq(sb, sa, "other verdicts while sleeping when idle");
	free(sa);
	free(sb);
	json_decref(a);
	json_decref(b);
	fg_rp_fini(&idle);
}
