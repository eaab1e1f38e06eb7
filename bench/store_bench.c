/*
 * fg-bench-store: how fast routers that follow an etcd store take its
 * changes (issue 8, docs/performance.md "Store (etcd) convergence").
 *
 * 1. Convergence. One etcd member (tests/etcd_lab.c), two real framegate
 *    routers following the same prefix (each on one lcore, a net_null port
 *    that receives nothing), and a poller per router that asks `health` over
 *    the control socket in a loop and records when store.revision_enforced
 *    moved. Writer threads, each with its own fg_store_writer and its own
 *    tenant (so that their transactions never compare keys another writes),
 *    offer mapping changes (adds, epoch changes, deletes, in turn) on a fixed
 *    schedule at each rate. A change's convergence time runs from the moment
 *    its transaction returned (acknowledged, its revision known) to the
 *    first health answer of the later of the two routers that shows that
 *    revision (or a later one) enforced. Answers are read poll_us apart, so
 *    each figure is late by at most one poll period plus one health round
 *    trip; a revision enforced before its writer saw the ack counts as 0.
 *
 * 2. Resync after a compaction. A store holding N mappings (put directly
 *    as fg_store_apply would write them, or with fg_store_apply key by key:
 *    --load, and load_direct() on why); one router syncs them, is killed
 *    (-9), the store changes while it is down (deletes, epoch changes, new
 *    mappings, through fg_store_apply) and is compacted past the router's
 *    revision; the router is started again on its journal, finds its
 *    revision compacted, lists the prefix and applies the difference. The
 *    figure runs from its start to the first health answer whose
 *    revision_enforced is the store's revision; the router's own log says
 *    how long the listing took.
 *
 * Figures go to stdout as plain lines; progress to stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "ctl_client.h"
#include "etcd.h"
#include "etcd_lab.h"
#include "store.h"

#define CONV_PREFIX "/fgbench/"
#define MAX_RATES 4
#define MAX_WRITERS 64
#define WRITER_POOL 1000            /* devices each writer cycles through */
#define CONV_MAX_DEVICES 200000
#define SERVE_WAIT_S 300            /* a router replaying 1,000,000 mappings */
#define CONVERGE_WAIT_S 120

struct opts {
	bool quick;
	unsigned int rates[MAX_RATES], n_rates;
	unsigned int changes;           /* per rate */
	unsigned int writers;           /* at rates above 1,000/s */
	unsigned int low_writers;       /* at rates at or below 1,000/s */
	unsigned int batch;             /* ops per txn of the labelled variant (0: none) */
	unsigned int group_max;         /* most changes a writer sends in one txn */
	bool single;                    /* the one-change-per-txn variant */
	unsigned int mappings;          /* the resync's store */
	unsigned int txn_ops;           /* ops per loading transaction */
	unsigned int loaders;           /* loading threads */
	bool load_direct;               /* the bulk load without fg_store_apply */
	unsigned int poll_us;
	unsigned int mem_mb;            /* EAL -m of the resync router (0: from its size) */
	bool convergence, resync, keep;
};

static char g_work[64];
static bool g_keep;             /* keep g_work at exit (--keep, or a failure) */
/* Each router's one lcore (the main lcore forwards and serves). Floating
 * over both CPUs by default: on a shared machine every DPDK process pinned
 * to CPU 0 would queue behind the others there. */
static const char *g_lcores = "0@(0,1)";
/* Added to the routers' nice value: their one lcore polls without pause,
 * and with two of them on two CPUs etcd and the writers would wait behind
 * them; at a lower priority they take what the others leave. */
static int g_router_nice = 0;
/* The routers' idle_sleep_us: their net_null ports receive nothing, and a
 * one-lcore router that polls without pause takes a whole CPU from etcd. */
static unsigned int g_idle_sleep_us = 50;

static int64_t
now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void
say(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fg-bench-store: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void __attribute__((noreturn))
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fg-bench-store: error: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	/* The routers' configs and logs stay for a look. */
	if (g_work[0]) {
		g_keep = true;
		fprintf(stderr, "fg-bench-store: the work folder %s is kept\n", g_work);
	}
	exit(1);
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Nearest rank on a sorted array. */
static double
pct_ms(const int64_t *sorted, size_t n, double q)
{
	size_t k = (size_t)ceil(q * (double)n);

	if (n == 0)
		return NAN;
	if (k < 1)
		k = 1;
	return (double)sorted[k - 1] / 1e6;
}

/* ---- routers: real framegate processes ------------------------------------------ */

struct router {
	pid_t pid;
	unsigned int idx, starts, mem_mb;
	char dir[128], conf[160], sock[160], log[160], eal_prefix[64];
};

/* What an early exit (die) must not leave behind: the routers (they die
 * with this process anyway), their EAL runtime folders, etcd's folder. */
static struct router *g_routers[4];
static struct fg_etcd_lab *g_lab;

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void
rm_tree(const char *path)
{
	nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
cleanup(void)
{
	char path[128];

	for (unsigned int i = 0; i < 4; i++) {
		struct router *r = g_routers[i];

		if (r == NULL || r->pid <= 0)
			continue;
		kill(r->pid, SIGKILL);
		waitpid(r->pid, NULL, 0);
		r->pid = 0;
		snprintf(path, sizeof(path), "/var/run/dpdk/%s", r->eal_prefix);
		rm_tree(path);
	}
	fg_etcd_lab_stop(g_lab);
	g_lab = NULL;
	if (!g_keep && g_work[0])
		rm_tree(g_work);
}

static void
lab_set(struct fg_etcd_lab *l)
{
	g_lab = l;
}

static void
router_track(struct router *r, bool on)
{
	for (unsigned int i = 0; i < 4; i++) {
		if (on && g_routers[i] == NULL) {
			g_routers[i] = r;
			return;
		}
		if (!on && g_routers[i] == r)
			g_routers[i] = NULL;
	}
}

static void
router_init(struct router *r, unsigned int idx, const char *endpoints, const char *prefix,
	    unsigned int max_devices, unsigned int mem_mb)
{
	FILE *f;

	memset(r, 0, sizeof(*r));
	r->idx = idx;
	r->mem_mb = mem_mb;
	snprintf(r->dir, sizeof(r->dir), "%s/router%u", g_work, idx);
	if (mkdir(r->dir, 0700) != 0 && errno != EEXIST)
		die("mkdir %s: %s", r->dir, strerror(errno));
	snprintf(r->conf, sizeof(r->conf), "%s/config.json", r->dir);
	snprintf(r->sock, sizeof(r->sock), "%s/ctl.sock", r->dir);
	snprintf(r->log, sizeof(r->log), "%s/router.log", r->dir);
	f = fopen(r->conf, "w");
	if (f == NULL)
		die("%s: %s", r->conf, strerror(errno));
	/* The periodic reconcile is off so that it never lands inside a
	 * measurement; everything else is the default. */
	fprintf(f,
		"{\"control_socket\": \"%s\", \"journal_dir\": \"%s/journal\",\n"
		" \"tables\": {\"max_tenants\": 1024, \"max_sinks\": 4096, \"max_devices\": %u},\n"
		" \"mbufs\": 2047, \"idle_sleep_us\": %u,\n"
		" \"ports\": [{\"port\": 0, \"role\": \"both\", \"next_hop_mac\": \"02:00:00:00:00:01\",\n"
		"             \"ipv4\": \"192.0.2.1\", \"ipv6\": \"2001:db8::1\"}],\n"
		" \"store\": {\"endpoints\": \"%s\", \"prefix\": \"%s\", \"reconcile_seconds\": 0}}\n",
		r->sock, r->dir, max_devices, g_idle_sleep_us, endpoints, prefix);
	fclose(f);
}

/* store.revision_enforced and the device count from one health answer. */
static int
health_read(int fd, int64_t *enforced, int64_t *devices)
{
	json_t *res = fg_ctl_call(fd, json_pack("{s:s}", "cmd", "health"));
	json_t *rev = res ? json_object_get(json_object_get(res, "store"), "revision_enforced") : NULL;

	if (rev == NULL || !json_is_integer(rev)) {
		json_decref(res);
		return -1;
	}
	*enforced = json_integer_value(rev);
	if (devices != NULL)
		*devices = json_integer_value(json_object_get(res, "devices"));
	json_decref(res);
	return 0;
}

static void
router_log_tail(const struct router *r)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "tail -5 %s >&2", r->log);
	if (system(cmd) != 0)
		fprintf(stderr, "(no log at %s)\n", r->log);
}

/* Start the router and wait until its control socket answers health. Its
 * stderr goes to its log (read later for the listing's own timing). */
static void
router_start(struct router *r)
{
	char mem[16], fp[80], *argv[32];
	int64_t deadline;
	unsigned int a = 0;
	pid_t parent = getpid();

	r->starts++;
	snprintf(r->eal_prefix, sizeof(r->eal_prefix), "fgbs%d_%u_%u", (int)parent, r->idx,
		 r->starts);
	snprintf(mem, sizeof(mem), "%u", r->mem_mb);
	snprintf(fp, sizeof(fp), "--file-prefix=%s", r->eal_prefix);
	argv[a++] = (char *)"framegate";
	argv[a++] = (char *)"--no-huge";
	argv[a++] = (char *)"-m";
	argv[a++] = mem;
	argv[a++] = (char *)"--no-pci";
	argv[a++] = (char *)"--no-shconf";
	argv[a++] = fp;
	argv[a++] = (char *)"--no-telemetry";
	argv[a++] = (char *)"--lcores";
	argv[a++] = (char *)g_lcores;
	argv[a++] = (char *)"--log-level=*:error";
	argv[a++] = (char *)"--vdev";
	argv[a++] = (char *)"net_null0,no-rx=1";
	argv[a++] = (char *)"--";
	argv[a++] = (char *)"--config";
	argv[a++] = r->conf;
	argv[a] = NULL;
	r->pid = fork();
	if (r->pid < 0)
		die("fork: %s", strerror(errno));
	if (r->pid == 0) {
		int lf = open(r->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		int nf = open("/dev/null", O_RDWR | O_CLOEXEC);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent || lf < 0 || nf < 0)
			_exit(127);
		errno = 0;
		if (nice(g_router_nice) == -1 && errno != 0)
			_exit(127);
		dup2(nf, 0);
		dup2(nf, 1);
		dup2(lf, 2);
		execv(FG_FRAMEGATE, argv);
		dprintf(2, "cannot run %s: %s\n", FG_FRAMEGATE, strerror(errno));
		_exit(127);
	}
	deadline = now_ns() + (int64_t)SERVE_WAIT_S * 1000000000;
	while (now_ns() < deadline) {
		int fd = fg_ctl_connect(r->sock), st;
		int64_t e;

		if (fd >= 0) {
			int ok = health_read(fd, &e, NULL);

			close(fd);
			if (ok == 0)
				return;
		}
		if (waitpid(r->pid, &st, WNOHANG) == r->pid) {
			char path[128];

			r->pid = 0;
			snprintf(path, sizeof(path), "/var/run/dpdk/%s", r->eal_prefix);
			rm_tree(path);
			router_log_tail(r);
			die("router %u (%s) ended before it served (status %d); its log: %s", r->idx,
			    r->conf, st, r->log);
		}
		usleep(20000);
	}
	router_log_tail(r);
	die("router %u did not answer on %s within %d s; its log: %s", r->idx, r->sock,
	    SERVE_WAIT_S, r->log);
}

static void
router_stop(struct router *r, int sig)
{
	char path[128];

	if (r->pid <= 0)
		return;
	kill(r->pid, sig);
	waitpid(r->pid, NULL, 0);
	r->pid = 0;
	/* EAL leaves its runtime folder behind. */
	snprintf(path, sizeof(path), "/var/run/dpdk/%s", r->eal_prefix);
	rm_tree(path);
}

/* ---- pollers: when each revision became enforced ----------------------------------- */

struct poller {
	struct router *r;
	unsigned int poll_us;
	pthread_t th;
	atomic_bool stop;
	_Atomic int64_t latest;
	int64_t *t, *rev;               /* samples where the revision moved */
	size_t n, cap;
	uint64_t asked;
	char err[200];
};

static void *
poller_main(void *arg)
{
	struct poller *p = arg;
	int fd = fg_ctl_connect(p->r->sock);

	if (fd < 0) {
		snprintf(p->err, sizeof(p->err), "cannot connect to %s", p->r->sock);
		return NULL;
	}
	while (!atomic_load(&p->stop)) {
		int64_t e;

		if (health_read(fd, &e, NULL) != 0) {
			snprintf(p->err, sizeof(p->err), "router %u: health on %s failed",
				 p->r->idx, p->r->sock);
			break;
		}
		p->asked++;
		if (p->n == 0 || e != p->rev[p->n - 1]) {
			if (p->n == p->cap) {
				p->cap = p->cap ? p->cap * 2 : 4096;
				p->t = realloc(p->t, p->cap * sizeof(*p->t));
				p->rev = realloc(p->rev, p->cap * sizeof(*p->rev));
				if (p->t == NULL || p->rev == NULL)
					abort();
			}
			p->t[p->n] = now_ns();
			p->rev[p->n++] = e;
			atomic_store(&p->latest, e);
		}
		if (p->poll_us)
			usleep(p->poll_us);
	}
	close(fd);
	return NULL;
}

static void
poller_start(struct poller *p, struct router *r, unsigned int poll_us)
{
	memset(p, 0, sizeof(*p));
	p->r = r;
	p->poll_us = poll_us;
	atomic_store(&p->latest, -1);
	if (pthread_create(&p->th, NULL, poller_main, p) != 0)
		die("pthread_create failed");
}

static void
poller_stop(struct poller *p)
{
	atomic_store(&p->stop, true);
	pthread_join(p->th, NULL);
	if (p->err[0])
		die("%s", p->err);
}

static void
poller_free(struct poller *p)
{
	free(p->t);
	free(p->rev);
}

/* When the router first showed rev (or later) enforced; -1 never. */
static int64_t
poller_when(const struct poller *p, int64_t rev)
{
	size_t lo = 0, hi = p->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (p->rev[mid] >= rev)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo < p->n ? p->t[lo] : -1;
}

/* Wait until the router enforces rev; the time it first showed it, or -1. */
static int64_t
wait_enforced(struct router *r, int64_t rev, unsigned int timeout_s, unsigned int poll_us,
	      int64_t *devices)
{
	int64_t deadline = now_ns() + (int64_t)timeout_s * 1000000000;
	int fd = fg_ctl_connect(r->sock);

	if (fd < 0)
		die("cannot connect to router %u at %s", r->idx, r->sock);
	while (now_ns() < deadline) {
		int64_t e;

		if (health_read(fd, &e, devices) != 0)
			die("router %u: health on %s failed (see %s)", r->idx, r->sock, r->log);
		if (e >= rev) {
			close(fd);
			return now_ns();
		}
		usleep(poll_us);
	}
	close(fd);
	return -1;
}

/* ---- writers -------------------------------------------------------------------------- */

/* One change: when it was due (offered), sent and acknowledged, and the
 * revision of its transaction. */
struct wrec {
	int64_t rev, t_due, t_send, t_ack;
};

struct writer {
	pthread_t th;
	unsigned int idx, n_writers, batch;
	bool grouped;                   /* batch is a cap: send what has come due */
	uint32_t tenant, sink;
	uint64_t id_base;
	double rate;                    /* changes per second, all writers together */
	size_t n_changes, n_txns;
	int64_t t0;
	const char *endpoints;
	struct wrec *rec;               /* one per change */
	char err[400];
};

/* Change c of a writer: its pool's devices are added, then given a higher
 * epoch, then deleted, in turn. */
static int
change_line(const struct writer *w, uint64_t c, char *out, size_t cap)
{
	uint64_t k = c % WRITER_POOL, round = c / WRITER_POOL, dev = w->id_base + k + 1;

	switch (round % 3) {
	case 0:
	case 1:
		return snprintf(out, cap,
				"{\"op\":\"device\",\"tenant\":%" PRIu32 ",\"device\":\"0x%016" PRIx64 "\",\"epoch\":%" PRIu64 ",\"sinks\":[%" PRIu32 "]}",
				w->tenant, dev, round + 1, w->sink);
	default:
		return snprintf(out, cap,
				"{\"op\":\"del_device\",\"tenant\":%" PRIu32 ",\"device\":\"0x%016" PRIx64 "\"}",
				w->tenant, dev);
	}
}

/* The writers' changes interleave on one schedule: change c of writer i is
 * the schedule's change c * W + i. */
static int64_t
change_due(const struct writer *w, size_t c)
{
	return w->t0 + (int64_t)((double)((uint64_t)c * w->n_writers + w->idx) * (1e9 / w->rate));
}

static void
sleep_until(int64_t t_ns)
{
	int64_t t;

	while ((t = now_ns()) < t_ns) {
		struct timespec d = { .tv_sec = (t_ns - t) / 1000000000,
				      .tv_nsec = (t_ns - t) % 1000000000 };
		nanosleep(&d, NULL);
	}
}

static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	struct fg_err err = { 0 };
	struct fg_store_writer *sw = fg_store_writer_open(w->endpoints, CONV_PREFIX, 5000, &err);
	char (*buf)[256] = calloc(w->batch, sizeof(*buf));
	const char **lines = calloc(w->batch, sizeof(*lines));
	size_t *lens = calloc(w->batch, sizeof(*lens));

	if (sw == NULL || buf == NULL || lines == NULL || lens == NULL) {
		snprintf(w->err, sizeof(w->err), "writer %u: %s", w->idx,
			 sw == NULL ? err.msg : "out of memory");
		goto out;
	}
	for (size_t c = 0; c < w->n_changes;) {
		size_t m = w->n_changes - c < w->batch ? w->n_changes - c : w->batch, failed = 0;
		int64_t rev = 0, t_send, t_ack;

		if (w->grouped) {
			/* What has come due since the last transaction, at
			 * least the next change, at most batch. */
			int64_t t;

			sleep_until(change_due(w, c));
			t = now_ns();
			for (size_t k = 1; k < m; k++)
				if (change_due(w, c + k) > t) {
					m = k;
					break;
				}
		} else {
			sleep_until(change_due(w, c + m - 1));
		}
		for (size_t k = 0; k < m; k++) {
			lens[k] = (size_t)change_line(w, c + k, buf[k], sizeof(buf[k]));
			lines[k] = buf[k];
		}
		t_send = now_ns();
		if (fg_store_apply(sw, lines, lens, m, false, &rev, &failed, &err) != 0) {
			snprintf(w->err, sizeof(w->err), "writer %u, change %zu (%.*s): %s",
				 w->idx, c + failed, (int)lens[failed], lines[failed], err.msg);
			goto out;
		}
		t_ack = now_ns();
		for (size_t k = 0; k < m; k++)
			w->rec[c + k] = (struct wrec){ .rev = rev, .t_due = change_due(w, c + k),
						       .t_send = t_send, .t_ack = t_ack };
		c += m;
		w->n_txns++;
	}
out:
	fg_store_writer_close(sw);
	free(buf);
	free(lines);
	free(lens);
	return NULL;
}

/* Apply op lines as one transaction (or fail the bench). */
static int64_t
store_apply_or_die(struct fg_store_writer *sw, char **lines, size_t n, bool whole,
		   const char *what)
{
	size_t *lens = calloc(n ? n : 1, sizeof(*lens)), failed = 0;
	struct fg_err err = { 0 };
	int64_t rev = 0;

	if (lens == NULL)
		die("out of memory");
	for (size_t i = 0; i < n; i++)
		lens[i] = strlen(lines[i]);
	if (fg_store_apply(sw, (const char *const *)lines, lens, n, whole, &rev, &failed, &err) != 0)
		die("%s: op %zu of %zu (%s): %s", what, failed + 1, n,
		    failed < n ? lines[failed] : "?", err.msg);
	free(lens);
	return rev;
}

/* ---- 1. convergence ------------------------------------------------------------------ */

static void
run_convergence(const struct opts *o)
{
	/* Room for the variant's transactions (etcd's default is 128 ops). */
	static const char *const extra[] = { "--quota-backend-bytes", "8589934592",
					     "--max-txn-ops", "10000", NULL };
	struct fg_err err = { 0 };
	struct fg_etcd_lab *lab;
	struct fg_store_writer *sw;
	struct router r[2];
	unsigned int max_w = o->writers > o->low_writers ? o->writers : o->low_writers, run_no = 0;
	char *setup[2 * MAX_WRITERS];
	size_t n_setup = 0;
	struct {
		unsigned int rate, writers, batch;
		bool grouped;
	} runs[MAX_RATES + 2];
	unsigned int n_runs = 0;

	/* Each rate with writers that send what has come due (up to
	 * group_max changes a transaction); then the variants: the first
	 * rate one change per transaction (the store's ceiling for single
	 * writes here), the last with batch changes per transaction. */
	for (unsigned int i = 0; i < o->n_rates; i++)
		runs[n_runs++] = (typeof(runs[0])){ o->rates[i], o->rates[i] > 1000 ? o->writers : o->low_writers,
						    o->group_max, o->group_max > 1 };
	if (o->group_max > 1 && o->single)
		runs[n_runs++] = (typeof(runs[0])){ o->rates[0], o->rates[0] > 1000 ? o->writers : o->low_writers,
						    1, false };
	if (o->batch > 1)
		runs[n_runs++] = (typeof(runs[0])){ o->rates[o->n_rates - 1], o->writers, o->batch, false };

	say("convergence: starting etcd (1 member)");
	lab = fg_etcd_lab_start(1, extra, &err);
	if (lab == NULL)
		die("etcd: %s", err.msg);
	lab_set(lab);
	/* One tenant and one sink per writer. */
	sw = fg_store_writer_open(fg_etcd_lab_endpoints(lab), CONV_PREFIX, 10000, &err);
	if (sw == NULL)
		die("store writer: %s", err.msg);
	for (unsigned int t = 1; t <= max_w; t++) {
		if (asprintf(&setup[n_setup++], "{\"op\":\"tenant\",\"tenant\":%u,\"name\":\"w%u\",\"max_devices\":1000000}", t, t) < 0 ||
		    asprintf(&setup[n_setup++], "{\"op\":\"sink\",\"sink\":%u,\"tenant\":%u,\"addr\":\"198.51.100.%u\",\"port\":6000,\"egress\":0}", 100 + t, t, t % 250 + 1) < 0)
			die("out of memory");
	}
	store_apply_or_die(sw, setup, n_setup, true, "tenants and sinks");
	for (size_t i = 0; i < n_setup; i++)
		free(setup[i]);
	fg_store_writer_close(sw);

	for (unsigned int i = 0; i < 2; i++) {
		router_init(&r[i], i, fg_etcd_lab_endpoints(lab), CONV_PREFIX, CONV_MAX_DEVICES, 512);
		router_track(&r[i], true);
		router_start(&r[i]);
	}
	say("convergence: two routers serve (%s, %s)", r[0].log, r[1].log);

	for (unsigned int ri = 0; ri < n_runs; ri++, run_no++) {
		unsigned int W = runs[ri].writers, B = runs[ri].batch;
		bool grouped = runs[ri].grouped;
		size_t n_all = 0, n_txns = 0, early = 0;
		struct writer *w = calloc(W, sizeof(*w));
		struct poller p[2];
		int64_t *lat, *wlat, *qlat, *lat_r[2], last_rev = 0, t0, t_end = 0;

		say("convergence: %u changes at %u/s offered, %u writer%s, %s%u change%s per transaction",
		    o->changes, runs[ri].rate, W, W > 1 ? "s" : "", grouped ? "up to " : "", B, B > 1 ? "s" : "");
		for (unsigned int i = 0; i < 2; i++)
			poller_start(&p[i], &r[i], o->poll_us);
		usleep(200000);
		t0 = now_ns() + 100000000;
		for (unsigned int i = 0; i < W; i++) {
			w[i] = (struct writer){
				.idx = i, .n_writers = W, .batch = B, .grouped = grouped,
				.tenant = i + 1, .sink = 101 + i,
				.id_base = ((uint64_t)(run_no + 1) << 40) | ((uint64_t)(i + 1) << 24),
				.rate = runs[ri].rate, .t0 = t0,
				.n_changes = o->changes / W + (i < o->changes % W),
				.endpoints = fg_etcd_lab_endpoints(lab),
			};
			w[i].rec = calloc(w[i].n_changes + 1, sizeof(struct wrec));
			if (w[i].rec == NULL || pthread_create(&w[i].th, NULL, writer_main, &w[i]) != 0)
				die("cannot start writer %u", i);
		}
		for (unsigned int i = 0; i < W; i++)
			pthread_join(w[i].th, NULL);
		for (unsigned int i = 0; i < W; i++) {
			if (w[i].err[0])
				die("%s", w[i].err);
			for (size_t j = 0; j < w[i].n_changes; j++) {
				if (w[i].rec[j].rev > last_rev)
					last_rev = w[i].rec[j].rev;
				if (w[i].rec[j].t_ack > t_end)
					t_end = w[i].rec[j].t_ack;
			}
			n_all += w[i].n_changes;
			n_txns += w[i].n_txns;
		}
		/* Both routers must get to the last revision. */
		for (int64_t deadline = now_ns() + (int64_t)CONVERGE_WAIT_S * 1000000000;;) {
			if (atomic_load(&p[0].latest) >= last_rev && atomic_load(&p[1].latest) >= last_rev)
				break;
			if (now_ns() > deadline)
				die("convergence at %u/s: after %d s router 0 enforces revision %" PRId64 ", router 1 %" PRId64 ", the store is at %" PRId64 " (logs %s, %s)",
				    runs[ri].rate, CONVERGE_WAIT_S, atomic_load(&p[0].latest),
				    atomic_load(&p[1].latest), last_rev, r[0].log, r[1].log);
			usleep(10000);
		}
		for (unsigned int i = 0; i < 2; i++)
			poller_stop(&p[i]);

		lat = calloc(n_all, sizeof(*lat));
		wlat = calloc(n_all, sizeof(*wlat));
		qlat = calloc(n_all, sizeof(*qlat));
		lat_r[0] = calloc(n_all, sizeof(int64_t));
		lat_r[1] = calloc(n_all, sizeof(int64_t));
		if (lat == NULL || wlat == NULL || qlat == NULL || lat_r[0] == NULL || lat_r[1] == NULL)
			die("out of memory");
		n_all = 0;
		for (unsigned int i = 0; i < W; i++) {
			for (size_t j = 0; j < w[i].n_changes; j++) {
				const struct wrec *x = &w[i].rec[j];
				int64_t a = poller_when(&p[0], x->rev), b = poller_when(&p[1], x->rev);
				int64_t la = a - x->t_ack, lb = b - x->t_ack, l = (a > b ? a : b) - x->t_ack;

				if (a < 0 || b < 0)
					die("revision %" PRId64 " was never seen enforced", x->rev);
				if (l < 0)
					early++;
				lat[n_all] = l < 0 ? 0 : l;
				lat_r[0][n_all] = la < 0 ? 0 : la;
				lat_r[1][n_all] = lb < 0 ? 0 : lb;
				qlat[n_all] = x->t_ack - x->t_due;
				wlat[n_all++] = x->t_ack - x->t_send;
			}
		}
		qsort(lat, n_all, sizeof(*lat), cmp_i64);
		qsort(wlat, n_all, sizeof(*wlat), cmp_i64);
		qsort(qlat, n_all, sizeof(*qlat), cmp_i64);
		qsort(lat_r[0], n_all, sizeof(int64_t), cmp_i64);
		qsort(lat_r[1], n_all, sizeof(int64_t), cmp_i64);
		{
			double secs = (double)(t_end - t0) / 1e9;
			char label[96], how[160];

			if (grouped)
				label[0] = '\0';
			else if (B > 1)
				snprintf(label, sizeof(label), " [variant: %u changes per transaction]", B);
			else
				snprintf(label, sizeof(label), " [variant: one change per transaction]");
			if (grouped)
				snprintf(how, sizeof(how), "%zu transactions: each writer sends what has come due, up to %u, mean %.1f changes a transaction",
					 n_txns, B, (double)n_all / (double)n_txns);
			else
				snprintf(how, sizeof(how), "%zu transactions", n_txns);
			printf("convergence %u/s%s: achieved %.0f/s (%zu changes in %.1f s, %u writer%s, %s), p50 %.1f ms, p99 %.1f ms, max %.1f ms (each change, from its ack to the later router's enforcement)\n",
			       runs[ri].rate, label, (double)n_all / secs, n_all, secs, W,
			       W > 1 ? "s" : "", how, pct_ms(lat, n_all, 0.5), pct_ms(lat, n_all, 0.99),
			       pct_ms(lat, n_all, 1.0));
			printf("  per router p50/p99: router 0 %.1f/%.1f ms, router 1 %.1f/%.1f ms; etcd write (send to ack) p50 %.1f ms, p99 %.1f ms; due to ack p50 %.1f ms, p99 %.1f ms; %zu of %zu enforced on both before the writer saw its ack (counted as 0); health polled every %u us (%" PRIu64 " and %" PRIu64 " answers)\n",
			       pct_ms(lat_r[0], n_all, 0.5), pct_ms(lat_r[0], n_all, 0.99),
			       pct_ms(lat_r[1], n_all, 0.5), pct_ms(lat_r[1], n_all, 0.99),
			       pct_ms(wlat, n_all, 0.5), pct_ms(wlat, n_all, 0.99),
			       pct_ms(qlat, n_all, 0.5), pct_ms(qlat, n_all, 0.99), early, n_all,
			       o->poll_us, p[0].asked, p[1].asked);
			fflush(stdout);
		}
		for (unsigned int i = 0; i < W; i++)
			free(w[i].rec);
		free(w);
		free(lat);
		free(wlat);
		free(qlat);
		free(lat_r[0]);
		free(lat_r[1]);
		poller_free(&p[0]);
		poller_free(&p[1]);
	}
	for (unsigned int i = 0; i < 2; i++) {
		router_stop(&r[i], SIGTERM);
		router_track(&r[i], false);
	}
	lab_set(NULL);
	fg_etcd_lab_stop(lab);
}

/* ---- 2. resync after a compaction --------------------------------------------------- */

/* The mapping of device i (1-based) of n: tenant i % T + 1, one of its two
 * sinks, every other one keyed. */
static char *
mapping_line(uint64_t i, uint32_t tenants, uint32_t epoch)
{
	uint32_t t = (uint32_t)(i % tenants) + 1;
	char *s = NULL;
	int rc;

	if (i % 2)
		rc = asprintf(&s, "{\"op\":\"device\",\"tenant\":%" PRIu32 ",\"device\":\"0x%016" PRIx64 "\",\"epoch\":%" PRIu32 ",\"sinks\":[%" PRIu32 "]}",
			      t, i, epoch, t * 10 + 1);
	else
		rc = asprintf(&s, "{\"op\":\"device\",\"tenant\":%" PRIu32 ",\"device\":\"0x%016" PRIx64 "\",\"epoch\":%" PRIu32 ",\"sinks\":[%" PRIu32 ",%" PRIu32 "],\"key\":\"%016" PRIx64 "%016" PRIx64 "\"}",
			      t, i, epoch, t * 10 + 1, t * 10 + 2, (uint64_t)(i * UINT64_C(0x9e3779b97f4a7c15)),
			      (uint64_t)(~i * UINT64_C(0xc2b2ae3d27d4eb4f)));
	if (rc < 0)
		die("out of memory");
	return s;
}

/* "listed N keys at revision R, C changed, in S s" and "restored ... in S s"
 * from the router's log, after offset. */
static void
log_lines(const struct router *r, long offset, char *listed, size_t lcap, char *restored,
	  size_t rcap)
{
	FILE *f = fopen(r->log, "r");
	char line[512];

	listed[0] = restored[0] = '\0';
	if (f == NULL)
		return;
	fseek(f, offset, SEEK_SET);
	while (fgets(line, sizeof(line), f) != NULL) {
		char *p;

		line[strcspn(line, "\n")] = '\0';
		if ((p = strstr(line, "store: listed ")) != NULL && listed[0] == '\0')
			snprintf(listed, lcap, "%s", p + 7);
		if ((p = strstr(line, ": restored ")) != NULL)
			snprintf(restored, rcap, "%s", p + 2);
	}
	fclose(f);
}

static long
file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long)st.st_size : 0;
}

/*
 * Loaders: threads that write a set of changes through fg_store_apply, each
 * with its own writer and its own tenants (those with (tenant - 1) % loaders
 * == its index), so that their transactions never compare a key another one
 * writes. Transactions read key by key (not whole_prefix): see
 * docs/performance.md on why.
 */
struct loader {
	pthread_t th;
	unsigned int idx, n_loaders, txn_ops;
	uint32_t tenants;
	uint64_t n, m;                  /* mappings in the store; changes while down */
	bool changes;                   /* false: load 1..n; true: the changes */
	const char *endpoints;
	int64_t rev;                    /* the last transaction's revision */
	uint64_t applied;
	bool finished;
	char err[400];
};

/* The change of device i while the router is down: the first third of
 * 1..m deleted, the second third given epoch 2, n+1..n+m/3 added. */
static char *
change_for(const struct loader *l, uint64_t i)
{
	uint64_t third = l->m / 3;
	char *s = NULL;

	if (i <= third) {
		if (asprintf(&s, "{\"op\":\"del_device\",\"tenant\":%" PRIu32 ",\"device\":\"0x%016" PRIx64 "\"}",
			     (uint32_t)(i % l->tenants) + 1, i) < 0)
			die("out of memory");
		return s;
	}
	if (i <= 2 * third)
		return mapping_line(i, l->tenants, 2);
	return mapping_line(i, l->tenants, 1);
}

/* The device ids a load goes through: 1..n; the changes: 1..2m/3, then
 * n+1..n+m/3. 0 after the last. */
static uint64_t
next_id(const struct loader *l, uint64_t prev)
{
	uint64_t third = l->m / 3, i = prev + 1;

	if (!l->changes)
		return i <= l->n ? i : 0;
	if (i == 2 * third + 1)
		i = l->n + 1;
	return i <= 2 * third || (i > l->n && i <= l->n + third) ? i : 0;
}

static void *
loader_main(void *arg)
{
	struct loader *l = arg;
	struct fg_err err = { 0 };
	struct fg_store_writer *sw = fg_store_writer_open(l->endpoints, CONV_PREFIX, 120000, &err);
	char **lines = calloc(l->txn_ops, sizeof(char *));
	size_t *lens = calloc(l->txn_ops, sizeof(size_t));
	uint64_t i = next_id(l, 0);
	size_t k = 0;

	if (sw == NULL || lines == NULL || lens == NULL) {
		snprintf(l->err, sizeof(l->err), "loader %u: %s", l->idx,
			 sw == NULL ? err.msg : "out of memory");
		goto out;
	}
	while (i != 0 || k > 0) {
		if (i != 0 && (i % l->tenants) % l->n_loaders == l->idx) {
			lines[k] = l->changes ? change_for(l, i) : mapping_line(i, l->tenants, 1);
			lens[k] = strlen(lines[k]);
			k++;
		}
		if (i != 0)
			i = next_id(l, i);
		if (k == l->txn_ops || (i == 0 && k > 0)) {
			size_t failed = 0;

			if (fg_store_apply(sw, (const char *const *)lines, lens, k, false, &l->rev,
					   &failed, &err) != 0) {
				snprintf(l->err, sizeof(l->err), "loader %u: op %zu of %zu (%s): %s",
					 l->idx, failed + 1, k, lines[failed], err.msg);
				goto out;
			}
			__atomic_add_fetch(&l->applied, k, __ATOMIC_RELAXED);
			while (k > 0)
				free(lines[--k]);
		}
	}
out:
	while (k > 0)
		free(lines[--k]);
	free(lines);
	free(lens);
	fg_store_writer_close(sw);
	__atomic_store_n(&l->finished, true, __ATOMIC_RELEASE);
	return NULL;
}

/*
 * The direct load (--load direct, the default): the same keys and values
 * fg_store_apply writes for these mappings (device/<id>: the op line;
 * use/tenant/<id>, use/sink/<id>: the counts; seq), put in transactions of
 * DIRECT_TXN_OPS without compares: a whole_prefix write lists the whole
 * prefix first, so a million loaded in parts would be listed once per part
 * (docs/performance.md). The changes made while the router is down still go
 * through fg_store_apply, which reads these counts back.
 */
#define DIRECT_TXN_OPS 20000

static int64_t
load_direct(const char *endpoints, uint32_t tenants, uint64_t n)
{
	struct fg_etcd_opts eo = { .endpoints = endpoints, .timeout_ms = 120000 };
	struct fg_err err = { 0 };
	struct fg_etcd *e = fg_etcd_open(&eo, &err);
	struct fg_etcd_op *ops = calloc(DIRECT_TXN_OPS + 3 * tenants + 1, sizeof(*ops));
	char (*keys)[FG_STORE_KEY_MAX] = calloc(DIRECT_TXN_OPS + 3 * tenants + 1, sizeof(*keys));
	char **vals = calloc(DIRECT_TXN_OPS + 3 * tenants + 1, sizeof(char *));
	uint64_t *t_dev = calloc(tenants + 1, sizeof(uint64_t)), *t_two = calloc(tenants + 1, sizeof(uint64_t));
	int64_t rev = 0;
	size_t k = 0;
	bool ok;

	if (e == NULL || ops == NULL || keys == NULL || vals == NULL || t_dev == NULL || t_two == NULL)
		die("direct load: %s", e == NULL ? err.msg : "out of memory");
	for (uint64_t i = 1; i <= n + 1; i++) {
		if (i <= n) {
			uint32_t t = (uint32_t)(i % tenants) + 1;

			t_dev[t]++;
			t_two[t] += i % 2 == 0;
			fg_store_key(keys[k], CONV_PREFIX, FG_SK_DEVICE, i);
			vals[k] = mapping_line(i, tenants, 1);
			ops[k] = (struct fg_etcd_op){ .type = FG_ETCD_PUT, .key = keys[k], .value = vals[k] };
			k++;
		} else {
			/* The bookkeeping fg_store_apply keeps, then seq. */
			for (uint32_t t = 1; t <= tenants; t++) {
				fg_store_key(keys[k], CONV_PREFIX, FG_SK_USE_TENANT, t);
				if (asprintf(&vals[k], "{\"devices\":%" PRIu64 ",\"sinks\":2}", t_dev[t]) < 0)
					die("out of memory");
				ops[k] = (struct fg_etcd_op){ .type = FG_ETCD_PUT, .key = keys[k], .value = vals[k] };
				k++;
				fg_store_key(keys[k], CONV_PREFIX, FG_SK_USE_SINK, t * 10 + 1);
				if (asprintf(&vals[k], "{\"devices\":%" PRIu64 "}", t_dev[t]) < 0)
					die("out of memory");
				ops[k] = (struct fg_etcd_op){ .type = FG_ETCD_PUT, .key = keys[k], .value = vals[k] };
				k++;
				fg_store_key(keys[k], CONV_PREFIX, FG_SK_USE_SINK, t * 10 + 2);
				if (asprintf(&vals[k], "{\"devices\":%" PRIu64 "}", t_two[t]) < 0)
					die("out of memory");
				ops[k] = (struct fg_etcd_op){ .type = FG_ETCD_PUT, .key = keys[k], .value = vals[k] };
				k++;
			}
			fg_store_key(keys[k], CONV_PREFIX, FG_SK_SEQ, 0);
			if (asprintf(&vals[k], "{\"ops\":%" PRIu64 ",\"at\":%ld}", n, (long)time(NULL)) < 0)
				die("out of memory");
			ops[k] = (struct fg_etcd_op){ .type = FG_ETCD_PUT, .key = keys[k], .value = vals[k] };
			k++;
		}
		if (k >= DIRECT_TXN_OPS || i == n + 1) {
			if (fg_etcd_txn(e, NULL, 0, ops, k, NULL, 0, &ok, &rev, &err) != 0 || !ok)
				die("direct load, transaction ending at device %" PRIu64 ": %s", i,
				    ok ? err.msg : "refused");
			while (k > 0)
				free(vals[--k]);
			if (i % 100000 < DIRECT_TXN_OPS && i <= n)
				say("resync: %" PRIu64 " of %" PRIu64 " mappings in the store", i, n);
		}
	}
	fg_etcd_close(e);
	free(ops);
	free(keys);
	free(vals);
	free(t_dev);
	free(t_two);
	return rev;
}

/* Run the loaders; the last revision written. */
static int64_t
run_loaders(const struct opts *o, const char *endpoints, uint32_t tenants, uint64_t n,
	    uint64_t m, bool changes)
{
	struct loader *l = calloc(o->loaders, sizeof(*l));
	int64_t rev = 0, t0 = now_ns();
	uint64_t done = 0, total = changes ? 3 * (m / 3) : n;

	if (l == NULL)
		die("out of memory");
	for (unsigned int i = 0; i < o->loaders; i++) {
		l[i] = (struct loader){ .idx = i, .n_loaders = o->loaders, .txn_ops = o->txn_ops,
					.tenants = tenants, .n = n, .m = m, .changes = changes,
					.endpoints = endpoints };
		if (pthread_create(&l[i].th, NULL, loader_main, &l[i]) != 0)
			die("cannot start loader %u", i);
	}
	/* Progress while they run. */
	for (bool all = false; !all;) {
		uint64_t a = 0;

		usleep(500000);
		all = true;
		for (unsigned int i = 0; i < o->loaders; i++) {
			a += __atomic_load_n(&l[i].applied, __ATOMIC_RELAXED);
			all = all && __atomic_load_n(&l[i].finished, __ATOMIC_ACQUIRE);
		}
		if (!changes && a / 100000 != done / 100000)
			say("resync: %" PRIu64 " of %" PRIu64 " mappings in the store (%.0f s)", a, total,
			    (double)(now_ns() - t0) / 1e9);
		done = a;
	}
	for (unsigned int i = 0; i < o->loaders; i++) {
		pthread_join(l[i].th, NULL);
	}
	for (unsigned int i = 0; i < o->loaders; i++) {
		if (l[i].err[0])
			die("%s", l[i].err);
		if (l[i].rev > rev)
			rev = l[i].rev;
	}
	free(l);
	return rev;
}

static void
run_resync(const struct opts *o)
{
	char maxops[16], reqbytes[24];
	const char *extra[] = { "--max-txn-ops", maxops, "--max-request-bytes", reqbytes,
				"--quota-backend-bytes", "17179869184", NULL };
	const uint32_t tenants = o->mappings >= 100000 ? 100 : 10;
	const uint64_t n = o->mappings, m = n / 100 < 30 ? 30 : n / 100;
	const unsigned int max_devices = (unsigned int)(n + n / 10 + 1000);
	unsigned int mem = o->mem_mb ? o->mem_mb : 256 + (unsigned int)((uint64_t)max_devices * 700 / 1000000);
	struct fg_err err = { 0 };
	struct fg_etcd_lab *lab;
	struct fg_store_writer *sw;
	struct fg_etcd *e;
	struct fg_etcd_opts eo = { .timeout_ms = 120000 };
	struct router r;
	char **lines = calloc(o->txn_ops + 3 * tenants + 1, sizeof(char *));
	char listed[256], restored[256];
	int64_t rev = 0, t, t_start, t_done, devices = -1, t_load;
	size_t k = 0;
	long off;

	if (lines == NULL)
		die("out of memory");
	unsigned int most = o->txn_ops > DIRECT_TXN_OPS ? o->txn_ops : DIRECT_TXN_OPS;

	snprintf(maxops, sizeof(maxops), "%u", most + 3 * tenants + 64);
	/* About 250 bytes per op on the gateway's JSON (keys and values in
	 * base64), with room. */
	snprintf(reqbytes, sizeof(reqbytes), "%u", most * 400 + (1u << 20));
	say("resync: starting etcd (1 member; --max-txn-ops %s --max-request-bytes %s --quota-backend-bytes 17179869184)",
	    maxops, reqbytes);
	lab = fg_etcd_lab_start(1, extra, &err);
	if (lab == NULL)
		die("etcd: %s", err.msg);
	lab_set(lab);
	sw = fg_store_writer_open(fg_etcd_lab_endpoints(lab), CONV_PREFIX, 120000, &err);
	if (sw == NULL)
		die("store writer: %s", err.msg);

	/* The store: tenants and sinks, then n mappings in transactions of
	 * txn_ops, each read against the whole prefix once. */
	t_load = now_ns();
	for (uint32_t i = 1; i <= tenants; i++) {
		if (asprintf(&lines[k++], "{\"op\":\"tenant\",\"tenant\":%" PRIu32 ",\"name\":\"t%" PRIu32 "\",\"max_devices\":%u}", i, i, max_devices) < 0 ||
		    asprintf(&lines[k++], "{\"op\":\"sink\",\"sink\":%" PRIu32 ",\"tenant\":%" PRIu32 ",\"addr\":\"198.51.100.%" PRIu32 "\",\"port\":6000,\"egress\":0}", i * 10 + 1, i, i % 250 + 1) < 0 ||
		    asprintf(&lines[k++], "{\"op\":\"sink\",\"sink\":%" PRIu32 ",\"tenant\":%" PRIu32 ",\"addr\":\"2001:db8::%" PRIx32 "\",\"port\":6001,\"egress\":0}", i * 10 + 2, i, i) < 0)
			die("out of memory");
	}
	store_apply_or_die(sw, lines, k, true, "tenants and sinks");
	for (size_t i = 0; i < k; i++)
		free(lines[i]);
	fg_store_writer_close(sw);
	rev = o->load_direct ? load_direct(fg_etcd_lab_endpoints(lab), tenants, n)
			     : run_loaders(o, fg_etcd_lab_endpoints(lab), tenants, n, m, false);
	t = now_ns();
	if (o->load_direct)
		printf("resync: the store was loaded with %" PRIu64 " mappings of %" PRIu32 " tenants in %.1f s (%.0f mappings/s; direct puts of fg_store_apply's keys, transactions of %d ops: see --load)\n",
		       n, tenants, (double)(t - t_load) / 1e9, (double)n / ((double)(t - t_load) / 1e9),
		       DIRECT_TXN_OPS);
	else
		printf("resync: the store was loaded with %" PRIu64 " mappings of %" PRIu32 " tenants in %.1f s (%.0f mappings/s; fg_store_apply, %u loaders, transactions of %u ops read key by key)\n",
		       n, tenants, (double)(t - t_load) / 1e9, (double)n / ((double)(t - t_load) / 1e9),
		       o->loaders, o->txn_ops);
	fflush(stdout);

	/* A router syncs the whole store from nothing. */
	router_init(&r, 9, fg_etcd_lab_endpoints(lab), CONV_PREFIX, max_devices, mem);
	router_track(&r, true);
	t_start = now_ns();
	router_start(&r);
	t_done = wait_enforced(&r, rev, SERVE_WAIT_S, 2000, &devices);
	if (t_done < 0)
		die("the router did not enforce revision %" PRId64 " within %d s (log %s)", rev,
		    SERVE_WAIT_S, r.log);
	log_lines(&r, 0, listed, sizeof(listed), restored, sizeof(restored));
	printf("resync: initial sync of an empty router: %.1f s from its start to revision %" PRId64 " enforced (%" PRId64 " devices; router: %s)\n",
	       (double)(t_done - t_start) / 1e9, rev, devices, listed);
	fflush(stdout);
	if ((uint64_t)devices != n)
		die("the router holds %" PRId64 " devices, the store %" PRIu64, devices, n);

	/* Down: kill -9, change the store, compact past the router's revision. */
	router_stop(&r, SIGKILL);
	rev = run_loaders(o, fg_etcd_lab_endpoints(lab), tenants, n, m, true);
	eo.endpoints = fg_etcd_lab_endpoints(lab);
	e = fg_etcd_open(&eo, &err);
	if (e == NULL || fg_etcd_compact(e, rev, &err) != 0)
		die("compacting the store at revision %" PRId64 ": %s", rev, err.msg);
	fg_etcd_close(e);
	say("resync: router killed; %" PRIu64 " changes (%" PRIu64 " deletes, %" PRIu64 " epoch changes, %" PRIu64 " adds), store compacted at revision %" PRId64,
	    3 * (m / 3), m / 3, m / 3, m / 3, rev);

	/* Up again: journal, then a listing (its revision is compacted). */
	off = file_size(r.log);
	t_start = now_ns();
	router_start(&r);
	t = now_ns();
	t_done = wait_enforced(&r, rev, SERVE_WAIT_S, 2000, &devices);
	if (t_done < 0)
		die("the restarted router did not enforce revision %" PRId64 " within %d s (log %s)",
		    rev, SERVE_WAIT_S, r.log);
	log_lines(&r, off, listed, sizeof(listed), restored, sizeof(restored));
	printf("resync %" PRIu64 " mappings after a compaction: %.1f s from the restart to revision %" PRId64 " enforced (serving after %.1f s; router: %s; %s)\n",
	       n, (double)(t_done - t_start) / 1e9, rev, (double)(t - t_start) / 1e9,
	       restored[0] ? restored : "no journal line", listed[0] ? listed : "no listing line");
	printf("  router: tables.max_devices %u, EAL -m %u --no-huge --lcores %s; %" PRId64 " devices after the resync (the store holds %" PRIu64 ")\n",
	       max_devices, mem, g_lcores, devices, n);
	fflush(stdout);
	if ((uint64_t)devices != n)
		die("the router holds %" PRId64 " devices after the resync, the store %" PRIu64, devices, n);
	if (listed[0] == '\0')
		die("the restarted router logged no listing (did it resync?): see %s", r.log);
	router_stop(&r, SIGTERM);
	router_track(&r, false);
	lab_set(NULL);
	fg_etcd_lab_stop(lab);
	free(lines);
}

/* ---- main ------------------------------------------------------------------------------ */

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: fg-bench-store [--quick] [--rates R1,R2] [--changes N] [--writers W]\n"
		"                      [--group-max B] [--no-single] [--batch B] [--mappings N] [--load direct|writer]\n"
		"                      [--txn-ops N] [--loaders N]\n"
		"                      [--poll-us US]\n"
		"                      [--low-writers W] [--idle-sleep-us US]\n"
		"                      [--mem MB] [--lcores SPEC] [--router-nice N]\n"
		"                      [--only convergence|resync] [--keep]\n"
		"\n"
		"Starts its own etcd (one member, tests/etcd_lab.c) and real framegate routers\n"
		"(" FG_FRAMEGATE ") and prints:\n"
		"  1. convergence: two routers follow one prefix; writer threads offer N mapping\n"
		"     changes (adds, epoch changes, deletes) at each rate, each writer sending\n"
		"     in one transaction what has come due (up to --group-max changes);\n"
		"     p50/p99/max from each change's ack to its revision enforced on both\n"
		"     routers (health's store.revision_enforced), and the rate achieved; then\n"
		"     the first rate again with one change per transaction (a variant);\n"
		"  2. resync: a store of N mappings, a router killed, changes and a compaction\n"
		"     while it is down; the time from its restart to the store's revision\n"
		"     enforced.\n"
		"\n"
		"  --quick          small sizes: 2000 changes per rate, 100000 mappings\n"
		"  --rates LIST     offered changes per second (default 1000,10000)\n"
		"  --changes N      changes per rate (default 20000; quick 2000)\n"
		"  --writers W      writer threads at rates above 1000/s, each with its own\n"
		"                   fg_store_writer and tenant (default 8)\n"
		"  --low-writers W  the same at rates at or below 1000/s (default 4)\n"
		"  --group-max B    most changes a writer sends in one transaction (default\n"
		"                   100; 1: one change per transaction, and no variant)\n"
		"  --no-single      leave out the one-change-per-transaction variant\n"
		"  --batch B        also run the highest rate with exactly B changes per\n"
		"                   transaction, labelled as a variant (default 0: not run)\n"
		"  --mappings N     mappings in the resync's store (default 1000000; quick 100000)\n"
		"  --load HOW       how the resync's store is filled: direct (default: puts\n"
		"                   of the keys fg_store_apply would write, 20000 a\n"
		"                   transaction) or writer (fg_store_apply itself, key by key;\n"
		"                   slow: docs/performance.md says why)\n"
		"  --txn-ops N      ops per fg_store_apply transaction while loading with the\n"
		"                   writer, and for the changes while the router is down\n"
		"                   (default 2000)\n"
		"  --loaders N      threads running fg_store_apply for those, each with its own\n"
		"                   writer and tenants (default 4)\n"
		"  --poll-us US     pause between a poller's health requests (default 250)\n"
		"  --mem MB         EAL -m of the resync's router (default: from its table size)\n"
		"  --lcores SPEC    EAL --lcores of each router: one lcore, 0, that forwards\n"
		"                   and serves (default 0@(0,1): on either CPU; 0@1 pins it)\n"
		"  --idle-sleep-us US  the routers' idle_sleep_us (default 50; 0: they poll\n"
		"                   without pause, each taking a CPU from etcd)\n"
		"  --router-nice N  added to the routers' nice value (default 0); above 0: below etcd\n"
		"                   and the writers, which would otherwise wait behind two\n"
		"                   lcores that poll without pause\n"
		"  --only WHAT      run only convergence or only resync\n"
		"  --keep           keep the work folder (routers' configs, journals, logs)\n");
}

static unsigned int
num_arg(const char *opt, const char *s, unsigned int min, unsigned int max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end != '\0' || v < min || v > max)
		die("%s: \"%s\" is not a number from %u to %u", opt, s, min, max);
	return (unsigned int)v;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "quick", no_argument, NULL, 'q' }, { "rates", required_argument, NULL, 'r' },
		{ "changes", required_argument, NULL, 'c' }, { "writers", required_argument, NULL, 'w' },
		{ "low-writers", required_argument, NULL, 'W' }, { "group-max", required_argument, NULL, 'G' },
		{ "no-single", no_argument, NULL, 'S' }, { "idle-sleep-us", required_argument, NULL, 'I' },
		{ "batch", required_argument, NULL, 'b' }, { "mappings", required_argument, NULL, 'm' },
		{ "txn-ops", required_argument, NULL, 't' }, { "poll-us", required_argument, NULL, 'p' },
		{ "loaders", required_argument, NULL, 'l' }, { "load", required_argument, NULL, 'D' }, { "mem", required_argument, NULL, 'M' }, { "only", required_argument, NULL, 'o' },
		{ "keep", no_argument, NULL, 'k' }, { "lcores", required_argument, NULL, 'L' },
		{ "router-nice", required_argument, NULL, 'N' }, { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .writers = 8, .low_writers = 4, .batch = 0, .group_max = 100, .single = true, .txn_ops = 2000, .loaders = 4, .load_direct = true, .poll_us = 250,
			  .convergence = true, .resync = true };
	long changes = -1, mappings = -1;
	char *rates = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'q': o.quick = true; break;
		case 'r': rates = optarg; break;
		case 'c': changes = num_arg("--changes", optarg, 1, 10000000); break;
		case 'w': o.writers = num_arg("--writers", optarg, 1, MAX_WRITERS); break;
		case 'G': o.group_max = num_arg("--group-max", optarg, 1, 1000); break;
		case 'S': o.single = false; break;
		case 'W': o.low_writers = num_arg("--low-writers", optarg, 1, MAX_WRITERS); break;
		case 'I': g_idle_sleep_us = num_arg("--idle-sleep-us", optarg, 0, 100000); break;
		case 'b': o.batch = num_arg("--batch", optarg, 0, 1000); break;
		case 'm': mappings = num_arg("--mappings", optarg, 100, 5000000); break;
		case 't': o.txn_ops = num_arg("--txn-ops", optarg, 100, 200000); break;
		case 'p': o.poll_us = num_arg("--poll-us", optarg, 0, 1000000); break;
		case 'D':
			if (strcmp(optarg, "direct") == 0)
				o.load_direct = true;
			else if (strcmp(optarg, "writer") == 0)
				o.load_direct = false;
			else
				die("--load: \"%s\" is neither direct nor writer", optarg);
			break;
		case 'l': o.loaders = num_arg("--loaders", optarg, 1, 10); break;
		case 'M': o.mem_mb = num_arg("--mem", optarg, 64, 65536); break;
		case 'o':
			if (strcmp(optarg, "convergence") == 0)
				o.resync = false;
			else if (strcmp(optarg, "resync") == 0)
				o.convergence = false;
			else
				die("--only: \"%s\" is neither convergence nor resync", optarg);
			break;
		case 'k': o.keep = true; break;
		case 'L': g_lcores = optarg; break;
		case 'N': g_router_nice = (int)num_arg("--router-nice", optarg, 0, 19); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc)
		die("unexpected argument \"%s\" (see --help)", argv[optind]);
	o.changes = changes > 0 ? (unsigned int)changes : o.quick ? 2000 : 20000;
	o.mappings = mappings > 0 ? (unsigned int)mappings : o.quick ? 100000 : 1000000;
	char rate_list[256];

	snprintf(rate_list, sizeof(rate_list), "%s", rates ? rates : "1000,10000");
	for (char *s = rate_list, *tok, *save = NULL; (tok = strtok_r(s, ",", &save)) != NULL;
	     s = NULL) {
		if (o.n_rates == MAX_RATES)
			die("--rates: at most %d rates", MAX_RATES);
		o.rates[o.n_rates++] = num_arg("--rates", tok, 1, 1000000);
	}
	if (o.n_rates == 0)
		die("--rates: no rate given");

	snprintf(g_work, sizeof(g_work), "/tmp/fg-bench-store.XXXXXX");
	if (mkdtemp(g_work) == NULL)
		die("mkdtemp %s: %s", g_work, strerror(errno));
	g_keep = o.keep;
	atexit(cleanup);
	say("work folder %s%s", g_work, o.keep ? " (kept)" : "");
	{
		double l[3] = { 0 };

		/* A shared machine: the figures depend on what else runs. */
		if (getloadavg(l, 3) == 3)
			printf("machine: %ld CPUs, load average %.1f %.1f %.1f at the start; routers on EAL --lcores %s, nice +%d, idle_sleep_us %u\n",
			       sysconf(_SC_NPROCESSORS_ONLN), l[0], l[1], l[2], g_lcores, g_router_nice,
			       g_idle_sleep_us);
		fflush(stdout);
	}
	if (o.convergence)
		run_convergence(&o);
	if (o.resync)
		run_resync(&o);
	return 0;   /* cleanup() at exit */
}
