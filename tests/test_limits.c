/*
 * Limits and signals, on the real programs: routers (one lcore, a net_pcap
 * port replaying the vectors once), `framegate replay`, fgctl, fg-verdict
 * and fg-audit, on real files, pipes and devices.
 *
 * - Mapping files are read within the limits of control/mapread.h: /dev/zero,
 *   an endless pipe, a line over FG_MAPFILE_MAX_LINE, a file over
 *   FG_MAPFILE_MAX_BYTES and a directory are refused at once, naming the
 *   file, the line and the limit; nothing is journaled or applied.
 * - A file through a pipe is read once: what is loaded is what is journaled.
 * - SIGHUP is logged and ignored; clients that close before reading their
 *   reply (SIGPIPE) do not kill the router.
 * - --duration takes only a finite positive number of seconds.
 * - Tables that do not fit in DPDK's memory are refused saying how much
 *   they need against what EAL was given, and that much is enough.
 * - A load names the line where a table is full; a load that the tables can
 *   hold is not refused for the memory its check needs.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>
#include <rte_malloc.h>

#include "ctl_client.h"
#include "mapread.h"
#include "ownership.h"
#include "support.h"
#include "tables.h"

static struct {
	char dir[64], sock[128], log[128], cfg[128], prefix[48];
	pid_t pid;
	unsigned int starts;
} r;

static void
setup(void)
{
	memset(&r, 0, sizeof(r));
	fg_test_tmpdir(r.dir, sizeof(r.dir), "fg_limits_test");
	snprintf(r.sock, sizeof(r.sock), "%s/ctl.sock", r.dir);
	snprintf(r.log, sizeof(r.log), "%s/router.log", r.dir);
	snprintf(r.cfg, sizeof(r.cfg), "%s/config.json", r.dir);
}

static void
rm_runtime(void)
{
	char cmd[128];

	/* A killed EAL leaves its runtime folder behind. */
	snprintf(cmd, sizeof(cmd), "rm -rf /var/run/dpdk/%s", r.prefix);
	cr_expect_eq(system(cmd), 0);
}

static void
router_stop(int sig)
{
	if (r.pid > 0) {
		kill(r.pid, sig);
		waitpid(r.pid, NULL, 0);
		r.pid = 0;
	}
	if (r.prefix[0] != '\0')
		rm_runtime();
}

static void
teardown(void)
{
	router_stop(SIGKILL);
	fg_test_rmdir(r.dir);
}

TestSuite(limits, .init = setup, .fini = teardown, .timeout = 240);

/* The router's configuration, with these table sizes. */
static void
write_config(unsigned int max_tenants, unsigned int max_sinks, unsigned int max_devices)
{
	FILE *f = fopen(r.cfg, "w");

	cr_assert_not_null(f);
	fprintf(f,
		"{\"control_socket\": \"%s\", \"journal_dir\": \"%s/journal\", \"mbufs\": 2047,\n"
		" \"tables\": {\"max_tenants\": %u, \"max_sinks\": %u, \"max_devices\": %u},\n"
		" \"ports\": [{\"port\": 0, \"role\": \"both\", \"next_hop_mac\": \"02:00:00:00:00:01\",\n"
		"             \"ipv4\": \"192.0.2.1\", \"ipv6\": \"2001:db8::1\"}]}\n",
		r.sock, r.dir, max_tenants, max_sinks, max_devices);
	fclose(f);
}

/* The router's command line: EAL with mem_mb MiB, then extra options. */
static void
router_cmd(char *cmd, size_t len, unsigned int mem_mb, const char *extra)
{
	snprintf(r.prefix, sizeof(r.prefix), "fglim%d_%u", (int)getpid(), ++r.starts);
	snprintf(cmd, len,
		 "%s --no-huge -m %u --no-pci --no-shconf --file-prefix=%s --no-telemetry -l 0"
		 " --log-level=*:error"
		 " --vdev net_pcap0,rx_pcap=%s/vectors/packets.pcap,tx_pcap=/dev/null"
		 " -- --config %s %s",
		 FG_FRAMEGATE, mem_mb, r.prefix, FG_TEST_DIR, r.cfg, extra ? extra : "");
}

static bool
log_has(const char *what)
{
	char buf[65536];
	FILE *f = fopen(r.log, "r");
	size_t n;

	if (f == NULL)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return strstr(buf, what) != NULL;
}

/* Start a router, its stderr appended to r.log; true once it forwards,
 * false when it ended first (its log says why). */
static bool
router_start(unsigned int mem_mb, const char *extra)
{
	char cmd[4096], full[4200];
	int st, log_fd;

	router_cmd(cmd, sizeof(cmd), mem_mb, extra);
	snprintf(full, sizeof(full), "exec %s", cmd);
	/* Emptied here, before the router runs: the last one's words are not
	 * taken for this one's. */
	log_fd = open(r.log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert(log_fd >= 0);
	r.pid = fork();
	cr_assert(r.pid >= 0);
	if (r.pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		/* A test that dies takes its router with it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (null < 0 || dup2(log_fd, 2) < 0 || dup2(null, 1) < 0)
			_exit(127);
		/* exec: the signals the tests send reach the router itself. */
		execl("/bin/sh", "sh", "-c", full, (char *)NULL);
		_exit(127);
	}
	close(log_fd);
	/* Up to 150 s: a router that loads a million mappings. */
	for (int i = 0; i < 3000; i++) {
		if (log_has("framegate: forwarding"))
			return true;
		if (waitpid(r.pid, &st, WNOHANG) == r.pid) {
			r.pid = 0;
			rm_runtime();
			return false;
		}
		usleep(50000);
	}
	return false;
}

static const char *
router_log(void)
{
	static char buf[16384];
	FILE *f = fopen(r.log, "r");
	size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

	buf[n] = '\0';
	if (f != NULL)
		fclose(f);
	return buf;
}

static json_t *
ctl(const char *cmd)
{
	json_t *res = fg_ctl_once(r.sock, json_pack("{s:s}", "cmd", cmd));

	cr_assert_not_null(res, "no answer to %s", cmd);
	cr_assert(json_is_true(json_object_get(res, "ok")), "%s refused: %s", cmd,
		  json_string_value(json_object_get(res, "error")));
	return res;
}

static json_int_t
devices(void)
{
	json_t *h = ctl("health");
	json_int_t n = json_integer_value(json_object_get(h, "devices"));

	json_decref(h);
	return n;
}

static json_t *
dump(void)
{
	json_t *d = ctl("dump"), *lines = json_incref(json_object_get(d, "lines"));

	json_decref(d);
	return lines;
}

/* Run a command (stdout and stderr in out): its exit status; *secs its
 * time. */
static int
run_timed(const char *cmd, char *out, size_t len, double *secs)
{
	double t0 = fg_test_now();
	int st = fg_test_run(cmd, out, len);

	*secs = fg_test_now() - t0;
	return st;
}

/* A router refused at start: its exit status and output; the runtime
 * folder removed. */
static int
router_refused(unsigned int mem_mb, const char *extra, char *out, size_t len, double *secs)
{
	char cmd[4096];
	int st;

	router_cmd(cmd, sizeof(cmd), mem_mb, extra);
	st = run_timed(cmd, out, len, secs);
	rm_runtime();
	return st;
}

static void
expect_in(const char *out, const char *want)
{
	cr_expect(strstr(out, want) != NULL, "no \"%s\" in:\n%s", want, out);
}

/* fgctl load of file on the running router: refused (exit 1) within
 * max_secs, its output naming want, and the state still `before` (a dump
 * taken before; released here). */
static void
expect_load_refused(const char *file, const char *want, double max_secs, json_t *before)
{
	char cmd[4096], out[16384];
	double secs;
	json_t *after;
	int st;

	snprintf(cmd, sizeof(cmd), "%s --socket %s load %s", FG_FGCTL_PATH, r.sock, file);
	st = run_timed(cmd, out, sizeof(out), &secs);
	cr_expect_eq(st, 1, "exit %d:\n%s", st, out);
	expect_in(out, want);
	cr_expect_lt(secs, max_secs, "%.1f s", secs);
	after = dump();
	cr_expect(json_equal(before, after), "a refused load changed the state");
	cr_expect_gt(json_array_size(after), 0);
	json_decref(before);
	json_decref(after);
}

/* The journal holds nothing: a router started on it has no mapping. */
static void
expect_nothing_journaled(void)
{
	cr_assert(router_start(256, NULL), "the router did not start:\n%s", router_log());
	cr_expect_eq(devices(), 0, "a refused file left mappings in the journal");
	router_stop(SIGTERM);
}

/* ---- mapping files ---------------------------------------------------------- */

Test(limits, dev_zero_is_refused_at_once_by_every_reader)
{
	char cmd[4096], out[16384], outp[160];
	const char *want = "/dev/zero:1: not a mapping file: a NUL byte at line 1";
	const char *pcap = FG_TEST_DIR "/vectors/packets.pcap";
	double secs;
	struct stat sb;
	int st;

	write_config(64, 64, 1024);
	/* The router: refused before anything is journaled. */
	st = router_refused(256, "--mappings /dev/zero", out, sizeof(out), &secs);
	cr_expect_eq(st, 1, "exit %d:\n%s", st, out);
	expect_in(out, want);
	cr_expect_lt(secs, 30, "%.1f s", secs);
	expect_nothing_journaled();

	/* Replay: refused before DPDK starts, no output written. */
	snprintf(outp, sizeof(outp), "%s/out.pcap", r.dir);
	snprintf(cmd, sizeof(cmd), "%s replay --mappings /dev/zero --in %s --out %s",
		 FG_FRAMEGATE, pcap, outp);
	st = run_timed(cmd, out, sizeof(out), &secs);
	cr_expect_eq(st, 1, "exit %d:\n%s", st, out);
	expect_in(out, want);
	cr_expect_lt(secs, 5, "%.1f s", secs);
	cr_expect_neq(stat(outp, &sb), 0, "replay wrote %s", outp);

	/* The tools. */
	snprintf(cmd, sizeof(cmd), "%s --mappings /dev/zero --in %s", FG_VERDICT, pcap);
	st = run_timed(cmd, out, sizeof(out), &secs);
	cr_expect_eq(st, 1, "exit %d:\n%s", st, out);
	expect_in(out, want);
	cr_expect_lt(secs, 5, "%.1f s", secs);
	snprintf(cmd, sizeof(cmd), "%s --mappings /dev/zero --capture %s", FG_AUDIT, pcap);
	st = run_timed(cmd, out, sizeof(out), &secs);
	cr_expect_neq(st, 0, "exit %d:\n%s", st, out);
	expect_in(out, want);
	cr_expect_lt(secs, 5, "%.1f s", secs);

	/* fgctl load, to a router and to a store (which it reads before it
	 * looks for the store): refused, the router's state as it was. */
	cr_assert(router_start(256, "--mappings " FG_TEST_DIR "/vectors/mappings.jsonl"),
		  "%s", router_log());
	expect_load_refused("/dev/zero", want, 5, dump());
	snprintf(cmd, sizeof(cmd), "%s --store http://127.0.0.1:9 load /dev/zero", FG_FGCTL_PATH);
	st = run_timed(cmd, out, sizeof(out), &secs);
	cr_expect_eq(st, 1, "exit %d:\n%s", st, out);
	expect_in(out, want);
}

Test(limits, an_endless_pipe_ends_at_the_line_limit)
{
	char fifo[160], cmd[4096], out[16384];
	double secs;
	int st;

	snprintf(fifo, sizeof(fifo), "%s/endless", r.dir);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	/* "yyyy..." for ever, without a newline. */
	snprintf(cmd, sizeof(cmd), "(yes | tr -d '\\n' > %s) 2>/dev/null &", fifo);
	cr_assert_eq(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "%s replay --mappings %s --in %s/vectors/packets.pcap --out %s/o.pcap",
		 FG_FRAMEGATE, fifo, FG_TEST_DIR, r.dir);
	st = run_timed(cmd, out, sizeof(out), &secs);
	cr_expect_eq(st, 1, "exit %d:\n%s", st, out);
	expect_in(out, "endless:1: line 1 is longer than 65536 bytes");
	cr_expect_lt(secs, 10, "%.1f s", secs);

	/* fgctl load, on a running router: refused, nothing applied. */
	write_config(64, 64, 1024);
	cr_assert(router_start(256, "--mappings " FG_TEST_DIR "/vectors/mappings.jsonl"),
		  "%s", router_log());
	json_t *before = dump();

	snprintf(cmd, sizeof(cmd), "(yes '{\"op\":\"suspend\",\"tenant\":7}' | tr -d '\\n' > %s) 2>/dev/null &",
		 fifo);
	cr_assert_eq(system(cmd), 0);
	expect_load_refused(fifo, "endless:1: line 1 is longer than 65536 bytes", 10, before);
}

Test(limits, a_directory_and_a_file_over_the_size_limit_are_named)
{
	char big[160], cmd[4096], out[16384], want[256], extra[256];
	double secs;
	int st, fd;

	write_config(64, 64, 1024);
	snprintf(extra, sizeof(extra), "--mappings %s", r.dir);
	st = router_refused(256, extra, out, sizeof(out), &secs);
	cr_expect_eq(st, 1, "exit %d:\n%s", st, out);
	snprintf(want, sizeof(want), "%s: is a directory", r.dir);
	expect_in(out, want);
	cr_expect(strstr(out, "read error") == NULL, "%s", out);
	snprintf(cmd, sizeof(cmd), "%s replay --mappings %s --in %s/vectors/packets.pcap --out %s/o.pcap",
		 FG_FRAMEGATE, r.dir, FG_TEST_DIR, r.dir);
	st = run_timed(cmd, out, sizeof(out), &secs);
	cr_expect_eq(st, 1, "exit %d:\n%s", st, out);
	expect_in(out, want);

	/* A byte over FG_MAPFILE_MAX_BYTES (sparse: it takes no disk). */
	snprintf(big, sizeof(big), "%s/big.jsonl", r.dir);
	fd = open(big, O_WRONLY | O_CREAT, 0644);
	cr_assert(fd >= 0 && ftruncate(fd, (off_t)FG_MAPFILE_MAX_BYTES + 1) == 0);
	close(fd);
	snprintf(extra, sizeof(extra), "--mappings %s", big);
	st = router_refused(256, extra, out, sizeof(out), &secs);
	cr_expect_eq(st, 1, "exit %d:\n%s", st, out);
	snprintf(want, sizeof(want), "%s: 17179869185 bytes, more than the 17179869184 (16 GiB)",
		 big);
	expect_in(out, want);
	cr_expect_lt(secs, 30, "%.1f s", secs);
	snprintf(cmd, sizeof(cmd), "%s replay --mappings %s --in %s/vectors/packets.pcap --out %s/o.pcap",
		 FG_FRAMEGATE, big, FG_TEST_DIR, r.dir);
	st = run_timed(cmd, out, sizeof(out), &secs);
	cr_expect_eq(st, 1, "exit %d:\n%s", st, out);
	expect_in(out, want);
	cr_expect_lt(secs, 5, "%.1f s", secs);
	expect_nothing_journaled();

	cr_assert(router_start(256, NULL), "%s", router_log());
	snprintf(cmd, sizeof(cmd), "%s --socket %s load %s", FG_FGCTL_PATH, r.sock, big);
	st = run_timed(cmd, out, sizeof(out), &secs);
	cr_expect_eq(st, 1, "exit %d:\n%s", st, out);
	expect_in(out, want);
	snprintf(cmd, sizeof(cmd), "%s --socket %s load %s", FG_FGCTL_PATH, r.sock, r.dir);
	st = run_timed(cmd, out, sizeof(out), &secs);
	cr_expect_eq(st, 1, "exit %d:\n%s", st, out);
	snprintf(want, sizeof(want), "%s: is a directory", r.dir);
	expect_in(out, want);
	cr_expect_eq(devices(), 0);
}

/* The vectors' mapping file, then a blank line of n spaces, then one more
 * op. */
static void
file_with_long_line(const char *path, size_t n)
{
	FILE *in = fopen(FG_TEST_DIR "/vectors/mappings.jsonl", "r"), *f = fopen(path, "w");
	char buf[4096];
	size_t k;

	cr_assert(in != NULL && f != NULL);
	while ((k = fread(buf, 1, sizeof(buf), in)) > 0)
		fwrite(buf, 1, k, f);
	fclose(in);
	for (size_t i = 0; i < n; i++)
		fputc(' ', f);
	fputs("\n{\"op\":\"suspend\",\"tenant\":7}\n", f);
	fclose(f);
}

static unsigned long
lines_of(const char *path)
{
	unsigned long n = 0;
	FILE *f = fopen(path, "r");
	int c;

	cr_assert_not_null(f);
	while ((c = fgetc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

Test(limits, a_line_over_the_limit_is_named_by_file_and_line)
{
	char path[160], extra[256], out[16384], want[256], cmd[4096];
	unsigned long line;
	double secs;
	int st;

	/* 65536 bytes is a line (blank, skipped): the file loads. */
	snprintf(path, sizeof(path), "%s/ok.jsonl", r.dir);
	file_with_long_line(path, FG_MAPFILE_MAX_LINE);
	write_config(64, 64, 1024);
	snprintf(extra, sizeof(extra), "--mappings %s", path);
	cr_assert(router_start(256, extra), "a line of exactly the limit was refused:\n%s",
		  router_log());
	json_t *before = dump();

	cr_expect_gt(json_array_size(before), 0);

	/* One byte more is refused, naming the file, the line and the limit,
	 * by the loader of a running router (through fgctl)... */
	snprintf(path, sizeof(path), "%s/long.jsonl", r.dir);
	file_with_long_line(path, FG_MAPFILE_MAX_LINE + 1);
	line = lines_of(FG_TEST_DIR "/vectors/mappings.jsonl") + 1;
	snprintf(want, sizeof(want), "%s:%lu: line %lu is longer than 65536 bytes", path, line, line);
	expect_load_refused(path, want, 60, before);
	router_stop(SIGTERM);

	/* ... and at start, with nothing journaled. */
	snprintf(cmd, sizeof(cmd), "rm -rf %s/journal", r.dir);
	cr_assert_eq(system(cmd), 0);
	snprintf(extra, sizeof(extra), "--mappings %s", path);
	st = router_refused(256, extra, out, sizeof(out), &secs);
	cr_expect_eq(st, 1, "exit %d:\n%s", st, out);
	expect_in(out, want);
	expect_nothing_journaled();
}

Test(limits, a_mapping_file_through_a_pipe_is_loaded_and_journaled)
{
	char fifo[160], cmd[4096], extra[256];
	json_t *loaded, *restored;

	snprintf(fifo, sizeof(fifo), "%s/mappings.fifo", r.dir);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	snprintf(cmd, sizeof(cmd), "cat %s/vectors/mappings.jsonl > %s &", FG_TEST_DIR, fifo);
	cr_assert_eq(system(cmd), 0);
	write_config(64, 64, 1024);
	snprintf(extra, sizeof(extra), "--mappings %s", fifo);
	cr_assert(router_start(256, extra), "%s", router_log());
	loaded = dump();
	cr_expect_gt(devices(), 0);
	/* Read once: the journal holds what was loaded. */
	router_stop(SIGKILL);
	cr_assert(router_start(256, NULL), "%s", router_log());
	restored = dump();
	cr_expect(json_equal(loaded, restored), "the journal differs from what was loaded");
	json_decref(loaded);
	json_decref(restored);
}

/* ---- signals ----------------------------------------------------------------- */

Test(limits, sighup_is_logged_and_the_router_serves_on)
{
	int st;

	write_config(64, 64, 1024);
	cr_assert(router_start(256, "--mappings " FG_TEST_DIR "/vectors/mappings.jsonl"),
		  "%s", router_log());
	cr_assert_eq(kill(r.pid, SIGHUP), 0);
	usleep(300000);
	cr_assert_eq(waitpid(r.pid, &st, WNOHANG), 0, "SIGHUP ended the router (signal %d):\n%s",
		     WIFSIGNALED(st) ? WTERMSIG(st) : 0, router_log());
	cr_expect_gt(devices(), 0);
	cr_expect(log_has("framegate: SIGHUP ignored (the configuration is read at start only)\n"),
		  "%s", router_log());
	/* And again: not a one-shot handler. */
	cr_assert_eq(kill(r.pid, SIGHUP), 0);
	usleep(300000);
	cr_assert_eq(waitpid(r.pid, &st, WNOHANG), 0, "a second SIGHUP ended the router");
	cr_expect_gt(devices(), 0);
	/* SIGTERM still stops it, cleanly. */
	kill(r.pid, SIGTERM);
	cr_assert_eq(waitpid(r.pid, &st, 0), r.pid);
	r.pid = 0;
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
	rm_runtime();
}

Test(limits, clients_that_close_before_their_reply_do_not_kill_the_router)
{
	static const char *const cmds[] = { "health", "dump" };
	json_t *before, *after;
	int st;

	write_config(64, 64, 1024);
	cr_assert(router_start(256, "--mappings " FG_TEST_DIR "/vectors/mappings.jsonl"),
		  "%s", router_log());
	before = dump();
	for (size_t c = 0; c < 2; c++)
		for (int i = 0; i < 200; i++) {
			int fd = fg_ctl_connect(r.sock);

			cr_assert(fd >= 0, "connection %d refused: %s\n%s", i, strerror(errno),
				  router_log());
			/* One whole request, then gone before the reply. */
			cr_assert_eq(fg_ctl_send(fd, json_pack("{s:s}", "cmd", cmds[c])), 0);
			close(fd);
		}
	usleep(200000);
	cr_assert_eq(waitpid(r.pid, &st, WNOHANG), 0,
		     "the router ended (status %d, signal %d):\n%s", st,
		     WIFSIGNALED(st) ? WTERMSIG(st) : 0, router_log());
	after = dump();
	cr_expect(json_equal(before, after));
	cr_expect_gt(devices(), 0);
	json_decref(before);
	json_decref(after);
}

/* ---- --duration -------------------------------------------------------------- */

Test(limits, duration_is_a_finite_positive_number_of_seconds)
{
	static const char *const bad[] = { "nan", "NaN", "inf", "-inf", "infinity", "1e400",
					   "-0", "0", "-1", "0x0", "", "1s", "1e-400" };
	char extra[128], out[16384], want[160];
	double secs;
	int st;

	write_config(64, 64, 1024);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(extra, sizeof(extra), "--duration '%s'", bad[i]);
		st = router_refused(64, extra, out, sizeof(out), &secs);
		cr_expect_eq(st, 2, "--duration %s: exit %d:\n%s", bad[i], st, out);
		snprintf(want, sizeof(want),
			 "--duration: \"%s\" is not a finite positive number of seconds", bad[i]);
		expect_in(out, want);
		cr_expect(strstr(out, "forwarding") == NULL, "--duration %s ran:\n%s", bad[i], out);
	}
	/* A good one runs for that long and stops. */
	st = router_refused(256, "--duration 0.5", out, sizeof(out), &secs);
	cr_expect_eq(st, 0, "exit %d:\n%s", st, out);
	expect_in(out, "framegate: forwarding");
	cr_expect_lt(secs, 30, "%.1f s", secs);
}

/* ---- memory and full tables -------------------------------------------------- */

Test(limits, the_tables_memory_estimate_is_close)
{
	struct fg_tables_config tc = {
		.name = "limest", .max_tenants = 4096, .max_sinks = 16384, .max_devices = 300000,
		.max_readers = RTE_MAX_LCORE, .socket_id = SOCKET_ID_ANY,
	};
	struct rte_malloc_socket_stats s0, s1;
	struct fg_tables *t;
	struct fg_ownership *o;
	double used, est;

	fg_test_eal();
	cr_assert_eq(rte_malloc_get_socket_stats(0, &s0), 0);
	t = fg_tables_create(&tc);
	o = t ? fg_ownership_create(t) : NULL;
	cr_assert_not_null(o);
	cr_assert_eq(rte_malloc_get_socket_stats(0, &s1), 0);
	used = (double)(s1.heap_allocsz_bytes - s0.heap_allocsz_bytes);
	est = (double)(fg_tables_memsize(&tc) + fg_ownership_memsize(&tc));
	cr_expect(est >= used && est <= used * 1.10, "estimated %.1f MiB, used %.1f MiB",
		  est / (1 << 20), used / (1 << 20));
	fg_ownership_free(o);
	fg_tables_free(t);
}

Test(limits, tables_larger_than_the_memory_say_what_they_need)
{
	char out[16384], *p;
	unsigned long need = 0, at_least = 0;
	double secs;
	int st;

	write_config(4096, 16384, 1100000);
	st = router_refused(256, NULL, out, sizeof(out), &secs);
	cr_expect_eq(st, 1, "exit %d:\n%s", st, out);
	cr_expect(strstr(out, "Operation not supported") == NULL, "%s", out);
	p = strstr(out, "the tables for 1100000 mappings");
	cr_assert_not_null(p, "%s", out);
	cr_assert(sscanf(strstr(p, "need about "), "need about %lu MiB", &need) == 1, "%s", out);
	expect_in(p, "EAL was given 256 MiB (-m");
	cr_assert(sscanf(strstr(p, "give -m at least "), "give -m at least %lu", &at_least) == 1,
		  "%s", out);
	cr_expect(need > 256 && at_least >= need, "%s", out);
	/* That much (and the 2047 mbufs of each of the three pools) is enough. */
	cr_assert(router_start((unsigned int)at_least + 32, NULL),
		  "-m %lu, as advised, was not enough:\n%s", at_least + 32, router_log());
	cr_expect_eq(devices(), 0);
}

/* Tenant 4001 and its sink 40010 (neither in the vectors), then n devices
 * 1000001 to 1000000 + n: the device of line L is 1000000 + L - 2. */
static void
write_devices(const char *path, unsigned long n)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	fputs("{\"op\":\"tenant\",\"tenant\":4001}\n"
	      "{\"op\":\"sink\",\"sink\":40010,\"tenant\":4001,\"addr\":\"192.0.2.7\",\"port\":6000,\"egress\":0}\n",
	      f);
	for (unsigned long i = 1; i <= n; i++)
		fprintf(f, "{\"op\":\"device\",\"tenant\":4001,\"device\":%lu,\"epoch\":1,\"sinks\":[40010]}\n",
			i + 1000000);
	fclose(f);
}

Test(limits, a_full_table_is_named_at_the_line_that_overflows_it)
{
	char path[160], extra[256], out[16384], want[256];
	double secs;
	int st;

	/* 1000 mappings at most: line 1003 holds the 1001st device. */
	snprintf(path, sizeof(path), "%s/devices.jsonl", r.dir);
	write_devices(path, 1001);
	write_config(64, 64, 1000);
	snprintf(want, sizeof(want), "%s:1003: device 0x%016lx: table full: max_devices 1000",
		 path, 1000000ul + 1001);
	snprintf(extra, sizeof(extra), "--mappings %s", path);
	st = router_refused(256, extra, out, sizeof(out), &secs);
	cr_expect_eq(st, 1, "exit %d:\n%s", st, out);
	expect_in(out, want);
	expect_nothing_journaled();

	/* Through fgctl to a running router: the same line, nothing applied. */
	cr_assert(router_start(256, "--mappings " FG_TEST_DIR "/vectors/mappings.jsonl"),
		  "%s", router_log());
	json_t *before = dump();

	write_devices(path, 1000 - (unsigned long)devices() + 1);
	snprintf(want, sizeof(want), "%s:%lu: device 0x%016lx: table full: max_devices 1000", path,
		 lines_of(path), 1000000 + lines_of(path) - 2);
	expect_load_refused(path, want, 60, before);
}

Test(limits, a_load_the_tables_hold_is_not_refused_for_memory, .timeout = 600)
{
	char path[160], cmd[4096], out[16384];
	double secs;
	int st;

	/* The tables of 1.1 million mappings take about 393 MiB of the 440:
	 * the check of a million-line load once needed about 60 MiB more in
	 * DPDK's memory, before its first line ("FILE:1: out of memory"). */
	snprintf(path, sizeof(path), "%s/million.jsonl", r.dir);
	write_devices(path, 1000000);
	write_config(4096, 16384, 1100000);
	cr_assert(router_start(440, NULL), "%s", router_log());
	snprintf(cmd, sizeof(cmd), "%s --socket %s load %s", FG_FGCTL_PATH, r.sock, path);
	st = run_timed(cmd, out, sizeof(out), &secs);
	cr_expect_eq(st, 0, "exit %d:\n%s", st, out);
	expect_in(out, "loaded 1000002 operations");
	cr_expect_eq(devices(), 1000000);
	/* Nothing lost: a restart replays the journal's million-line record
	 * through the same check. */
	router_stop(SIGKILL);
	cr_assert(router_start(440, NULL), "%s", router_log());
	cr_expect_eq(devices(), 1000000);
}
