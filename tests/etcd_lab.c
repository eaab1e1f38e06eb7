/*
 * The etcd test cluster (etcd_lab.h): ports, folders, processes, and the
 * waits on them. Members are asked through the etcd client itself
 * (control/etcd.h), one member per handle: a member serves once it reports
 * a leader and answers a linearizable read.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "etcd.h"
#include "etcd_lab.h"

#define LAB_WAIT_MS 30000
#define LAB_MAX_EXTRA 32

struct lab_member {
	pid_t pid;                  /* 0: not running */
	unsigned int client_port, peer_port;
	char endpoint[64];
	char name[16];
	char data[256];
	char log[256];
	uint64_t member_id;
};

struct fg_etcd_lab {
	struct fg_etcd_lab *next_live;  /* labs not yet stopped (atexit) */
	pid_t owner;                /* the process that started it */
	unsigned int n;
	char dir[128];
	char endpoints[FG_ETCD_LAB_MAX * 64];
	char cluster[FG_ETCD_LAB_MAX * 96];   /* --initial-cluster */
	char *extra[LAB_MAX_EXTRA + 1];
	struct lab_member m[FG_ETCD_LAB_MAX];
};

/* Labs still running, stopped at exit() by the process that started them
 * (a test that exits early, a bench that gives up): no folder left behind.
 * A process killed by a signal still loses its members (PR_SET_PDEATHSIG)
 * but leaves its folder. */
static struct fg_etcd_lab *live_labs;

static void
lab_stop_all_at_exit(void)
{
	while (live_labs != NULL && live_labs->owner == getpid())
		fg_etcd_lab_stop(live_labs);
}

static void
lab_track(struct fg_etcd_lab *l)
{
	static bool registered;

	if (!registered) {
		atexit(lab_stop_all_at_exit);
		registered = true;
	}
	l->owner = getpid();
	l->next_live = live_labs;
	live_labs = l;
}

static void
lab_untrack(struct fg_etcd_lab *l)
{
	for (struct fg_etcd_lab **p = &live_labs; *p != NULL; p = &(*p)->next_live) {
		if (*p == l) {
			*p = l->next_live;
			return;
		}
	}
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw);

/* Folders of labs whose process died by a signal (no exit handler ran):
 * /tmp/fg-etcd-<pid>-XXXXXX with no process <pid> any more. */
static void
lab_sweep_dead(void)
{
	glob_t g;

	if (glob("/tmp/fg-etcd-*-*", GLOB_NOSORT, NULL, &g) != 0)
		return;
	for (size_t i = 0; i < g.gl_pathc; i++) {
		long pid = strtol(g.gl_pathv[i] + strlen("/tmp/fg-etcd-"), NULL, 10);

		if (pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH)
			nftw(g.gl_pathv[i], rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
	globfree(&g);
}

static int64_t
now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* n free loopback TCP ports, held open together so they differ. */
static int
free_ports(unsigned int *ports, unsigned int n)
{
	int fds[2 * FG_ETCD_LAB_MAX];
	unsigned int i;
	int rc = 0;

	for (i = 0; i < n; i++) {
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t len = sizeof(a);

		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&a, sizeof(a)) != 0 ||
		    getsockname(fds[i], (struct sockaddr *)&a, &len) != 0) {
			rc = -errno;
			i++;
			break;
		}
		ports[i] = ntohs(a.sin_port);
	}
	while (i-- > 0)
		close(fds[i]);
	return rc;
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static int
lab_spawn(struct fg_etcd_lab *l, unsigned int i)
{
	struct lab_member *m = &l->m[i];
	char client[64], peer[64], token[64];
	const char *argv[24 + LAB_MAX_EXTRA];
	unsigned int a = 0;
	pid_t parent = getpid(), pid;

	snprintf(client, sizeof(client), "http://127.0.0.1:%u", m->client_port);
	snprintf(peer, sizeof(peer), "http://127.0.0.1:%u", m->peer_port);
	snprintf(token, sizeof(token), "fg-lab-%d-%u", (int)parent, l->m[0].client_port);
	argv[a++] = "etcd";
	argv[a++] = "--name";
	argv[a++] = m->name;
	argv[a++] = "--data-dir";
	argv[a++] = m->data;
	argv[a++] = "--listen-client-urls";
	argv[a++] = client;
	argv[a++] = "--advertise-client-urls";
	argv[a++] = client;
	argv[a++] = "--listen-peer-urls";
	argv[a++] = peer;
	argv[a++] = "--initial-advertise-peer-urls";
	argv[a++] = peer;
	argv[a++] = "--initial-cluster";
	argv[a++] = l->cluster;
	argv[a++] = "--initial-cluster-state";
	argv[a++] = "new";
	argv[a++] = "--initial-cluster-token";
	argv[a++] = token;
	for (unsigned int k = 0; l->extra[k] != NULL; k++)
		argv[a++] = l->extra[k];
	argv[a] = NULL;

	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(m->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

		/* Dies with the test process, whatever becomes of it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		if (fd < 0 || null < 0)
			_exit(127);
		dup2(null, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		execvp("etcd", (char *const *)argv);
		dprintf(2, "etcd_lab: cannot run etcd: %s\n", strerror(errno));
		_exit(127);
	}
	m->pid = pid;
	return 0;
}

/* 1 once member i reports a leader and answers a linearizable read, 0 not
 * yet, -1 when its process has ended. */
static int
lab_serving(struct fg_etcd_lab *l, unsigned int i)
{
	struct lab_member *m = &l->m[i];
	struct fg_etcd_opts o = { .endpoints = m->endpoint, .timeout_ms = 1000,
				  .connect_timeout_ms = 300 };
	struct fg_etcd_status st;
	struct fg_etcd_kv kv;
	struct fg_etcd *e;
	int status, ok = 0;

	if (m->pid <= 0 || waitpid(m->pid, &status, WNOHANG) == m->pid) {
		m->pid = 0;
		return -1;
	}
	e = fg_etcd_open(&o, NULL);
	if (e == NULL)
		return 0;
	if (fg_etcd_status(e, m->endpoint, &st, NULL) == 0 && st.leader_id != 0 &&
	    fg_etcd_get(e, "fg-lab-probe", &kv, NULL, NULL) >= 0) {
		m->member_id = st.member_id;
		ok = 1;
	}
	fg_etcd_close(e);
	return ok;
}

/* Wait until each member in [from, to) serves. */
static int
lab_wait(struct fg_etcd_lab *l, unsigned int from, unsigned int to, struct fg_err *err)
{
	int64_t deadline = now_ms() + LAB_WAIT_MS;

	for (unsigned int i = from; i < to; i++) {
		int s;

		while ((s = lab_serving(l, i)) == 0 && now_ms() < deadline)
			usleep(50 * 1000);
		if (s == -1)
			return fg_err_set(err, ECHILD, "etcd member %s ended (see %s)",
					  l->m[i].name, l->m[i].log);
		if (s == 0)
			return fg_err_set(err, ETIMEDOUT,
					  "etcd member %s did not serve within %d ms (see %s)",
					  l->m[i].name, LAB_WAIT_MS, l->m[i].log);
	}
	return 0;
}

struct fg_etcd_lab *
fg_etcd_lab_start(unsigned int members, const char *const *extra_args, struct fg_err *err)
{
	unsigned int ports[2 * FG_ETCD_LAB_MAX], k = 0;
	struct fg_etcd_lab *l;
	size_t el = 0, cl = 0;

	if (members == 0 || members > FG_ETCD_LAB_MAX) {
		fg_err_set(err, EINVAL, "etcd lab: %u members (1 to %d)", members, FG_ETCD_LAB_MAX);
		return NULL;
	}
	l = calloc(1, sizeof(*l));
	if (l == NULL) {
		fg_err_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	l->n = members;
	lab_track(l);
	for (; extra_args != NULL && extra_args[k] != NULL; k++) {
		if (k == LAB_MAX_EXTRA) {
			fg_err_set(err, E2BIG, "etcd lab: more than %d extra arguments", LAB_MAX_EXTRA);
			goto fail;
		}
		l->extra[k] = strdup(extra_args[k]);
	}
	lab_sweep_dead();
	snprintf(l->dir, sizeof(l->dir), "/tmp/fg-etcd-%d-XXXXXX", (int)getpid());
	if (mkdtemp(l->dir) == NULL) {
		fg_err_set(err, errno, "etcd lab: mkdtemp %s: %s", l->dir, strerror(errno));
		l->dir[0] = '\0';
		goto fail;
	}
	if (free_ports(ports, 2 * members) != 0) {
		fg_err_set(err, EADDRINUSE, "etcd lab: no free loopback ports");
		goto fail;
	}
	for (unsigned int i = 0; i < members; i++) {
		struct lab_member *m = &l->m[i];

		m->client_port = ports[2 * i];
		m->peer_port = ports[2 * i + 1];
		snprintf(m->name, sizeof(m->name), "m%u", i);
		snprintf(m->endpoint, sizeof(m->endpoint), "http://127.0.0.1:%u", m->client_port);
		snprintf(m->data, sizeof(m->data), "%s/%s", l->dir, m->name);
		snprintf(m->log, sizeof(m->log), "%s/%s.log", l->dir, m->name);
		el += (size_t)snprintf(l->endpoints + el, sizeof(l->endpoints) - el, "%s%s",
				       i ? "," : "", m->endpoint);
		cl += (size_t)snprintf(l->cluster + cl, sizeof(l->cluster) - cl,
				       "%s%s=http://127.0.0.1:%u", i ? "," : "", m->name,
				       m->peer_port);
	}
	for (unsigned int i = 0; i < members; i++) {
		if (lab_spawn(l, i) != 0) {
			fg_err_set(err, errno, "etcd lab: fork: %s", strerror(errno));
			goto fail;
		}
	}
	if (lab_wait(l, 0, members, err) != 0)
		goto fail;
	return l;
fail:
	fg_etcd_lab_stop(l);
	return NULL;
}

const char *
fg_etcd_lab_endpoints(const struct fg_etcd_lab *l)
{
	return l->endpoints;
}

const char *
fg_etcd_lab_endpoint(const struct fg_etcd_lab *l, unsigned int i)
{
	return i < l->n ? l->m[i].endpoint : NULL;
}

int
fg_etcd_lab_pid(const struct fg_etcd_lab *l, unsigned int i)
{
	return i < l->n ? (int)l->m[i].pid : 0;
}

const char *
fg_etcd_lab_dir(const struct fg_etcd_lab *l)
{
	return l->dir;
}

int
fg_etcd_lab_leader(struct fg_etcd_lab *l)
{
	struct fg_etcd_opts o = { .endpoints = l->endpoints, .timeout_ms = 1000,
				  .connect_timeout_ms = 300 };
	struct fg_etcd *e = fg_etcd_open(&o, NULL);
	int leader = -1;

	if (e == NULL)
		return -1;
	for (unsigned int i = 0; i < l->n && leader < 0; i++) {
		struct fg_etcd_status st;

		if (l->m[i].pid <= 0 || fg_etcd_status(e, l->m[i].endpoint, &st, NULL) != 0 ||
		    st.leader_id == 0)
			continue;
		for (unsigned int j = 0; j < l->n; j++)
			if (l->m[j].member_id == st.leader_id)
				leader = (int)j;
	}
	fg_etcd_close(e);
	return leader;
}

int
fg_etcd_lab_follower(struct fg_etcd_lab *l)
{
	int leader = fg_etcd_lab_leader(l);

	for (unsigned int i = 0; i < l->n; i++)
		if ((int)i != leader && l->m[i].pid > 0)
			return (int)i;
	return -1;
}

int
fg_etcd_lab_kill(struct fg_etcd_lab *l, unsigned int i)
{
	if (i >= l->n || l->m[i].pid <= 0)
		return -ESRCH;
	kill(l->m[i].pid, SIGKILL);
	waitpid(l->m[i].pid, NULL, 0);
	l->m[i].pid = 0;
	return 0;
}

int
fg_etcd_lab_restart(struct fg_etcd_lab *l, unsigned int i)
{
	int rc;

	if (i >= l->n || l->m[i].pid > 0)
		return -EBUSY;
	rc = lab_spawn(l, i);
	if (rc == 0)
		rc = lab_wait(l, i, i + 1, NULL);
	return rc;
}

int
fg_etcd_lab_freeze(struct fg_etcd_lab *l, unsigned int i)
{
	if (i >= l->n || l->m[i].pid <= 0)
		return -ESRCH;
	return kill(l->m[i].pid, SIGSTOP) == 0 ? 0 : -errno;
}

int
fg_etcd_lab_thaw(struct fg_etcd_lab *l, unsigned int i)
{
	if (i >= l->n || l->m[i].pid <= 0)
		return -ESRCH;
	return kill(l->m[i].pid, SIGCONT) == 0 ? 0 : -errno;
}

void
fg_etcd_lab_stop(struct fg_etcd_lab *l)
{
	if (l == NULL)
		return;
	lab_untrack(l);
	/* In a forked copy, the members and folder are the starter's. */
	if (l->owner == getpid()) {
		for (unsigned int i = 0; i < l->n; i++)
			if (l->m[i].pid > 0)
				fg_etcd_lab_kill(l, i);
		if (l->dir[0] != '\0')
			nftw(l->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
	for (unsigned int k = 0; l->extra[k] != NULL; k++)
		free(l->extra[k]);
	free(l);
}
