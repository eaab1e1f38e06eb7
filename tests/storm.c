/*
 * fg-storm: the isolation storm (issue 5). A real framegate router, in its own
 * process, forwards frames between two net_memif ports while this program
 * plays cameras, operators and viewers at once, on one lcore:
 *
 *   cameras    send frames on the router's ingress port: most with the
 *              credentials the operator last gave them, the rest stale,
 *              spoofed, badly tagged or from the future;
 *   operators  change ownership through the control socket, pipelined
 *              (moves with epoch bumps, deletes, re-adds, key rotations,
 *              sink changes, sink adds and deletes, tenant suspends);
 *   viewers    read every copy the router sends and check it.
 *
 * Halfway, a reconnect storm: every camera falls silent, a share of the
 * devices move, and once the moves are acknowledged every camera sends at
 * once, the moved ones with the tenant, epoch and key they had before.
 * With --kill N the router is killed (SIGKILL) N times in the middle of it
 * all, restarted from its journal, and the storm resumes.
 *
 * The checker. Everything here runs on one thread, so a counter (the clock)
 * orders every event: a frame sent, a change submitted, a change's ack read,
 * a copy received. Each frame carries its send time in its payload. A copy of
 * a frame sent at s and received at r was decided under the state after the
 * first k changes for some k from lo = (changes acknowledged before s: ack
 * means enforced) to hi = (changes submitted before r). For each k in that
 * window where the device's or the tenant's history changes, the checker
 * rebuilds that state's view of the device and asks the reference model
 * (tests/refmodel.c) for the verdict on the frame. A copy is
 *   - justified when some k forwards the frame to the copy's sink;
 *   - cross-tenant when under no k the copy's sink belongs to the device's
 *     owner;
 *   - after removal when the claimed mapping was removed by a change
 *     acknowledged before the frame left and not re-added since.
 * The copies of one frame must be exactly the sinks of one state (no mix of
 * two). At the end the router's counters must be conserved and equal what
 * was sent and received, and its dump must equal the model.
 *
 * Usage: fg-storm [--reduced] [--devices N] [--tenants N] [--frames N]
 *                 [--changes N] [--kill N] [--stale-share PCT] [--seed N]
 *                 [--keep DIR] [--self-check]
 * Exit: 0 all checks held (with --self-check: the checker caught the lie);
 * 1 a check failed; 2 usage or set-up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_cycles.h>

#include <framegate/wire.h>

#include "../tools/framebuild.h"
#include "ctl_client.h"
#include "refmodel.h"

#define MAX_SINKS 3                 /* sinks of one mapping, here */
#define SINKS_PER_TENANT 8          /* sink ids t*8+j; j 0..2 always there */
#define BURST 32
#define WINDOW 1024                 /* changes in flight on the socket */
#define SINK_PORT 7000
#define PAYLOAD 32                  /* frame_idx, send clock, kind, pad */

enum kind { K_CURRENT, K_PREVIOUS, K_SPOOF, K_BADTAG, K_FUTURE, K_RECONNECT,
	    K_RECONNECT_STALE, K_KINDS };
static const char *kind_names[K_KINDS] = { "current", "previous", "spoofed", "bad tag",
	"future epoch", "reconnect", "reconnect with pre-move credentials" };

enum change_kind { C_MOVE, C_DEL, C_READD, C_REKEY, C_SINKS, C_SINK_ADD, C_SINK_DEL,
		   C_SUSPEND, C_RESUME, C_KINDS };
static const char *change_names[C_KINDS] = { "move", "del_device", "re-add", "key rotation",
	"sink set", "sink add", "sink del", "suspend", "resume" };

/* ---- options ---------------------------------------------------------------- */

static struct {
	unsigned int devices, tenants, kills, stale_pct;
	uint64_t frames, changes, seed;
	const char *keep;
	bool self_check;            /* the checker believes acks come at once */
} opt = { 100000, 10000, 0, 10, 10000000, 1000000, 1, NULL, false };

/* ---- the model: histories of every device, tenant and sink ------------------ */

struct dev_ver {
	uint32_t idx;               /* the change that made it; 0: initial */
	uint32_t tenant;            /* 0: no tenant holds the device */
	uint32_t epoch;
	uint8_t has_key, n_sinks;
	uint8_t key[16];
	uint32_t sinks[MAX_SINKS];
};

struct flag_ver {
	uint32_t idx;
	bool on;                    /* tenant: suspended; sink: exists */
};

struct dev_hist { struct dev_ver *v; uint32_t n, cap; };
struct flag_hist { struct flag_ver *v; uint32_t n, cap; };

static struct dev_hist *devs;       /* [devices] */
static struct flag_hist *tenants;   /* [tenants + 1], suspended */
static struct flag_hist *sinks;     /* [(tenants + 1) * 8], exists */
static uint32_t *sink_refs;         /* mappings using each sink (model) */
static uint32_t *suspended_list, n_suspended;

struct change {
	uint8_t kind;
	uint32_t obj;               /* device index, tenant id or sink id */
};
static struct change *changes;      /* [1 .. opt.changes] */
static uint64_t *submit_clock, *ack_clock;
static uint64_t n_submitted, n_acked;
static uint64_t clk;
static uint64_t change_counts[C_KINDS];

static uint64_t rng = 88172645463325252ull;

static uint64_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static uint64_t
device_id(uint32_t i)
{
	return 0x5700000000ull + i;
}

static const struct dev_ver *
dev_cur(uint32_t i)
{
	return &devs[i].v[devs[i].n - 1];
}

static void
dev_push(uint32_t i, const struct dev_ver *v)
{
	struct dev_hist *h = &devs[i];

	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 4;
		h->v = realloc(h->v, h->cap * sizeof(*h->v));
		if (h->v == NULL)
			abort();
	}
	h->v[h->n++] = *v;
}

static void
flag_push(struct flag_hist *h, uint32_t idx, bool on)
{
	if (h->n == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 2;
		h->v = realloc(h->v, h->cap * sizeof(*h->v));
		if (h->v == NULL)
			abort();
	}
	h->v[h->n++] = (struct flag_ver){ idx, on };
}

static bool
flag_cur(const struct flag_hist *h)
{
	return h->n > 0 && h->v[h->n - 1].on;
}

/* The version in force after the first k changes. */
static const struct dev_ver *
dev_at(uint32_t i, uint64_t k)
{
	const struct dev_hist *h = &devs[i];
	uint32_t lo = 0, hi = h->n;         /* last v with idx <= k */

	while (hi - lo > 1) {
		uint32_t mid = (lo + hi) / 2;

		if (h->v[mid].idx <= k)
			lo = mid;
		else
			hi = mid;
	}
	return &h->v[lo];
}

static bool
flag_at(const struct flag_hist *h, uint64_t k)
{
	bool on = false;

	for (uint32_t j = 0; j < h->n && h->v[j].idx <= k; j++)
		on = h->v[j].on;
	return on;
}

static uint32_t
sink_tenant(uint32_t sink)
{
	return sink / SINKS_PER_TENANT;
}

static bool
sink_v6(uint32_t sink)
{
	return sink % 3 == 2;
}

static void
random_key(uint8_t key[16])
{
	uint64_t a = rnd(), b = rnd();

	memcpy(key, &a, 8);
	memcpy(key + 8, &b, 8);
}

/* 1..3 distinct sinks of tenant t that exist in the model. */
static void
pick_sinks(uint32_t t, struct dev_ver *v)
{
	uint32_t alive[SINKS_PER_TENANT], n = 0;

	for (uint32_t j = 0; j < SINKS_PER_TENANT; j++)
		if (flag_cur(&sinks[t * SINKS_PER_TENANT + j]))
			alive[n++] = t * SINKS_PER_TENANT + j;
	v->n_sinks = (uint8_t)(1 + rnd() % MAX_SINKS);
	for (uint32_t j = 0; j < v->n_sinks; j++) {
		uint32_t r = j + (uint32_t)(rnd() % (n - j)), tmp = alive[j];

		alive[j] = alive[r];
		alive[r] = tmp;
		v->sinks[j] = alive[j];
	}
}

static void
refs_add(const struct dev_ver *v, int d)
{
	if (v->tenant == 0)
		return;
	for (uint32_t j = 0; j < v->n_sinks; j++)
		sink_refs[v->sinks[j]] += (uint32_t)d;
}

/* ---- the initial mapping file ---------------------------------------------- */

static int
write_initial(const char *path)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return -1;
	for (uint32_t t = 1; t <= opt.tenants; t++) {
		fprintf(f, "{\"op\":\"tenant\",\"tenant\":%u,\"name\":\"storm%u\"}\n", t, t);
		flag_push(&tenants[t], 0, false);
		for (uint32_t j = 0; j < 3; j++) {
			uint32_t s = t * SINKS_PER_TENANT + j;

			if (sink_v6(s))
				fprintf(f, "{\"op\":\"sink\",\"sink\":%u,\"tenant\":%u,\"addr\":\"2001:db8:5::%x:%x\",\"port\":%u,\"egress\":1}\n",
					s, t, s >> 16, s & 0xffff, SINK_PORT);
			else
				fprintf(f, "{\"op\":\"sink\",\"sink\":%u,\"tenant\":%u,\"addr\":\"10.%u.%u.%u\",\"port\":%u,\"egress\":1}\n",
					s, t, (s >> 16) & 255, (s >> 8) & 255, s & 255, SINK_PORT);
			flag_push(&sinks[s], 0, true);
		}
	}
	for (uint32_t i = 0; i < opt.devices; i++) {
		struct dev_ver v = { .idx = 0, .tenant = 1 + i % opt.tenants, .epoch = 1 };

		v.has_key = i % 2 == 0;
		if (v.has_key)
			random_key(v.key);
		pick_sinks(v.tenant, &v);
		fprintf(f, "{\"op\":\"device\",\"tenant\":%u,\"device\":\"0x%" PRIx64 "\",\"epoch\":1",
			v.tenant, device_id(i));
		if (v.has_key) {
			fprintf(f, ",\"key\":\"");
			for (int b = 0; b < 16; b++)
				fprintf(f, "%02x", v.key[b]);
			fprintf(f, "\"");
		}
		fprintf(f, ",\"sinks\":[");
		for (uint32_t j = 0; j < v.n_sinks; j++)
			fprintf(f, "%s%u", j ? "," : "", v.sinks[j]);
		fprintf(f, "]}\n");
		dev_push(i, &v);
		refs_add(&v, 1);
	}
	return fclose(f);
}

/* ---- the control connection ------------------------------------------------- */

static struct {
	int fd;
	char *out;
	size_t out_len, out_off, out_cap;
	uint8_t *in;
	size_t in_len, in_cap;
} ctl = { .fd = -1 };

static void
out_printf(const char *fmt, ...)
{
	va_list ap;
	char body[512];
	int n;

	va_start(ap, fmt);
	n = vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	if (ctl.out_len + 4 + (size_t)n > ctl.out_cap) {
		ctl.out_cap = (ctl.out_cap + 4 + (size_t)n) * 2;
		ctl.out = realloc(ctl.out, ctl.out_cap);
		if (ctl.out == NULL)
			abort();
	}
	ctl.out[ctl.out_len++] = (char)(n >> 24);
	ctl.out[ctl.out_len++] = (char)(n >> 16);
	ctl.out[ctl.out_len++] = (char)(n >> 8);
	ctl.out[ctl.out_len++] = (char)n;
	memcpy(ctl.out + ctl.out_len, body, (size_t)n);
	ctl.out_len += (size_t)n;
}

static int
ctl_connect(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (strlen(path) >= sizeof(a.sun_path)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	memcpy(a.sun_path, path, strlen(path) + 1);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

static void
ctl_reset(void)
{
	if (ctl.fd >= 0)
		close(ctl.fd);
	ctl.fd = -1;
	ctl.out_len = ctl.out_off = ctl.in_len = 0;
}

/* Write what the socket takes. */
static void
ctl_write(void)
{
	while (ctl.out_off < ctl.out_len) {
		ssize_t n = write(ctl.fd, ctl.out + ctl.out_off, ctl.out_len - ctl.out_off);

		if (n <= 0)
			break;
		ctl.out_off += (size_t)n;
	}
	if (ctl.out_off == ctl.out_len)
		ctl.out_off = ctl.out_len = 0;
}

/* One whole response, if there is one: a new reference, or NULL. */
static json_t *
ctl_take(void)
{
	size_t len;
	json_t *r;

	if (ctl.in_len < 4)
		return NULL;
	len = (size_t)ctl.in[0] << 24 | (size_t)ctl.in[1] << 16 | (size_t)ctl.in[2] << 8 | ctl.in[3];
	if (ctl.in_len < 4 + len)
		return NULL;
	r = json_loadb((const char *)ctl.in + 4, len, 0, NULL);
	memmove(ctl.in, ctl.in + 4 + len, ctl.in_len - 4 - len);
	ctl.in_len -= 4 + len;
	return r ? r : json_null();
}

static void
ctl_read(void)
{
	for (;;) {
		ssize_t n;

		if (ctl.in_cap - ctl.in_len < 65536) {
			ctl.in_cap = ctl.in_cap * 2 + 65536;
			ctl.in = realloc(ctl.in, ctl.in_cap);
			if (ctl.in == NULL)
				abort();
		}
		n = read(ctl.fd, ctl.in + ctl.in_len, ctl.in_cap - ctl.in_len);
		if (n <= 0)
			break;
		ctl.in_len += (size_t)n;
	}
}

/* A blocking call on its own connection (reads: stats, dump; a dump's
 * frames come back as one object, see ctl_client.h). */
static json_t *
ctl_call(const char *sock, const char *req)
{
	return fg_ctl_once(sock, json_loads(req, 0, NULL));
}

/* ---- the operator: the next change, from the model ------------------------- */

static void
put_key(char *p, size_t cap, const struct dev_ver *v)
{
	if (!v->has_key) {
		p[0] = '\0';
		return;
	}
	size_t n = (size_t)snprintf(p, cap, ",\"key\":\"");

	for (int b = 0; b < 16; b++)
		n += (size_t)snprintf(p + n, cap - n, "%02x", v->key[b]);
	snprintf(p + n, cap - n, "\"");
}

static void
put_sinks(char *p, size_t cap, const struct dev_ver *v)
{
	size_t n = (size_t)snprintf(p, cap, "[");

	for (uint32_t j = 0; j < v->n_sinks; j++)
		n += (size_t)snprintf(p + n, cap - n, "%s%u", j ? "," : "", v->sinks[j]);
	snprintf(p + n, cap - n, "]");
}

/* Make change number idx (1-based) from the model as it stands after the
 * ones before it, record it in the histories, and queue its request. */
static void
next_change(uint32_t idx, bool move_only, uint32_t force_dev)
{
	char key[64], sk[64];
	uint32_t r = (uint32_t)(rnd() % 100);
	uint32_t i = force_dev != UINT32_MAX ? force_dev : (uint32_t)(rnd() % opt.devices);
	struct dev_ver cur = *dev_cur(i), nv = cur;
	struct change *c = &changes[idx];

	nv.idx = idx;
	if (move_only)
		r = 0;
	if (r < 35 || (cur.tenant == 0 && r < 85)) {
		if (cur.tenant == 0) {                       /* re-add */
			nv.tenant = 1 + (uint32_t)(rnd() % opt.tenants);
			nv.epoch = cur.epoch + 1;
			nv.has_key = rnd() % 2;
			if (nv.has_key)
				random_key(nv.key);
			pick_sinks(nv.tenant, &nv);
			put_key(key, sizeof(key), &nv);
			put_sinks(sk, sizeof(sk), &nv);
			out_printf("{\"cmd\":\"apply\",\"op\":{\"op\":\"device\",\"tenant\":%u,\"device\":\"0x%" PRIx64 "\",\"epoch\":%u%s,\"sinks\":%s}}",
				   nv.tenant, device_id(i), nv.epoch, key, sk);
			c->kind = C_READD;
		} else {                                     /* move */
			do
				nv.tenant = 1 + (uint32_t)(rnd() % opt.tenants);
			while (nv.tenant == cur.tenant);
			nv.epoch = cur.epoch + 1;
			if (rnd() % 2) {
				nv.has_key = 1;
				random_key(nv.key);
				put_key(key, sizeof(key), &nv);
			} else {
				key[0] = '\0';               /* keeps its key */
			}
			pick_sinks(nv.tenant, &nv);
			put_sinks(sk, sizeof(sk), &nv);
			out_printf("{\"cmd\":\"apply\",\"op\":{\"op\":\"move\",\"device\":\"0x%" PRIx64 "\",\"from\":%u,\"to\":%u,\"epoch\":%u%s,\"sinks\":%s}}",
				   device_id(i), cur.tenant, nv.tenant, nv.epoch, key, sk);
			c->kind = C_MOVE;
		}
	} else if (r < 45 && cur.tenant != 0) {
		nv.tenant = 0;
		nv.n_sinks = 0;
		out_printf("{\"cmd\":\"apply\",\"op\":{\"op\":\"del_device\",\"tenant\":%u,\"device\":\"0x%" PRIx64 "\"}}",
			   cur.tenant, device_id(i));
		c->kind = C_DEL;
	} else if (r < 85 && cur.tenant != 0) {
		if (r < 70) {                                /* key rotation */
			nv.has_key = rnd() % 8 != 0;
			if (nv.has_key)
				random_key(nv.key);
			c->kind = C_REKEY;
		} else {                                     /* another sink set */
			pick_sinks(cur.tenant, &nv);
			c->kind = C_SINKS;
		}
		put_key(key, sizeof(key), &nv);
		put_sinks(sk, sizeof(sk), &nv);
		out_printf("{\"cmd\":\"apply\",\"op\":{\"op\":\"device\",\"tenant\":%u,\"device\":\"0x%" PRIx64 "\",\"epoch\":%u%s,\"sinks\":%s}}",
			   nv.tenant, device_id(i), nv.epoch, key, sk);
	} else if (r < 90 || cur.tenant == 0) {              /* a sink comes or goes */
		uint32_t t = 1 + (uint32_t)(rnd() % opt.tenants);
		uint32_t s = t * SINKS_PER_TENANT + 3 + (uint32_t)(rnd() % (SINKS_PER_TENANT - 3));

		if (!flag_cur(&sinks[s])) {
			if (sink_v6(s))
				out_printf("{\"cmd\":\"apply\",\"op\":{\"op\":\"sink\",\"sink\":%u,\"tenant\":%u,\"addr\":\"2001:db8:5::%x:%x\",\"port\":%u,\"egress\":1}}",
					   s, t, s >> 16, s & 0xffff, SINK_PORT);
			else
				out_printf("{\"cmd\":\"apply\",\"op\":{\"op\":\"sink\",\"sink\":%u,\"tenant\":%u,\"addr\":\"10.%u.%u.%u\",\"port\":%u,\"egress\":1}}",
					   s, t, (s >> 16) & 255, (s >> 8) & 255, s & 255, SINK_PORT);
			flag_push(&sinks[s], idx, true);
			c->kind = C_SINK_ADD;
		} else if (sink_refs[s] == 0) {
			out_printf("{\"cmd\":\"apply\",\"op\":{\"op\":\"del_sink\",\"sink\":%u}}", s);
			flag_push(&sinks[s], idx, false);
			c->kind = C_SINK_DEL;
		} else {
			/* In use: a suspend or resume instead. */
			goto tenant_state;
		}
		c->obj = s;
		change_counts[c->kind]++;
		return;
	} else {
tenant_state:;
		uint32_t t;

		if (n_suspended < opt.tenants / 50 + 1) {
			do
				t = 1 + (uint32_t)(rnd() % opt.tenants);
			while (flag_cur(&tenants[t]));
			suspended_list[n_suspended++] = t;
			out_printf("{\"cmd\":\"apply\",\"op\":{\"op\":\"suspend\",\"tenant\":%u}}", t);
			flag_push(&tenants[t], idx, true);
			c->kind = C_SUSPEND;
		} else {
			uint32_t j = (uint32_t)(rnd() % n_suspended);

			t = suspended_list[j];
			suspended_list[j] = suspended_list[--n_suspended];
			out_printf("{\"cmd\":\"apply\",\"op\":{\"op\":\"resume\",\"tenant\":%u}}", t);
			flag_push(&tenants[t], idx, false);
			c->kind = C_RESUME;
		}
		c->obj = t;
		change_counts[c->kind]++;
		return;
	}
	c->obj = i;
	change_counts[c->kind]++;
	refs_add(&cur, -1);
	refs_add(&nv, 1);
	dev_push(i, &nv);
}

/* ---- the router process ----------------------------------------------------- */

static struct {
	char dir[128], sock[160], config[160];
	pid_t pid;
	unsigned int starts;
	FILE *err;                  /* its stderr, read by a child that echoes alarms */
} router;

static void
router_prefix(char *buf, size_t cap, unsigned int start)
{
	snprintf(buf, cap, "fgstorm%d_%u", (int)getpid(), start);
}

static void
router_runtime_cleanup(unsigned int start)
{
	char prefix[64], cmd[160];

	router_prefix(prefix, sizeof(prefix), start);
	snprintf(cmd, sizeof(cmd), "rm -rf /var/run/dpdk/%s", prefix);
	if (system(cmd) != 0)
		fprintf(stderr, "fg-storm: cannot remove /var/run/dpdk/%s\n", prefix);
}

static bool
router_start(const char *mappings)
{
	char cmd[4096], prefix[64];
	bool serving;

	router.starts++;
	router_prefix(prefix, sizeof(prefix), router.starts);
	snprintf(cmd, sizeof(cmd),
		 "exec %s --no-huge -m 1024 --no-pci --file-prefix=%s --no-telemetry -l 0"
		 " --log-level=*:error"
		 " --vdev net_memif0,role=client,socket=%s/cam.sock,id=0,rsize=10"
		 " --vdev net_memif1,role=client,socket=%s/view.sock,id=1,rsize=14"
		 " -- --config %s %s%s > %s/router%u.out",
		 FG_FRAMEGATE, prefix, router.dir, router.dir, router.config,
		 mappings ? "--mappings " : "", mappings ? mappings : "", router.dir,
		 router.starts);
	router.pid = fg_router_spawn(cmd, &serving);
	return router.pid > 0 && serving;
}

static void
router_kill(int sig)
{
	if (router.pid <= 0)
		return;
	kill(router.pid, sig);
	waitpid(router.pid, NULL, 0);
	router.pid = 0;
	router_runtime_cleanup(router.starts);
}

/* ---- the wire --------------------------------------------------------------- */

static struct rte_mempool *pool;
static const uint16_t CAM = 0, VIEW = 1;

struct frame_info {              /* what a frame carries in its payload */
	uint64_t frame_idx;
	uint64_t sent;              /* the clock when it left */
	uint8_t kind;
};

static uint64_t frames_sent, frames_sent_seg, frames_backpressure;
static uint64_t sent_by_kind[K_KINDS];

static bool
send_one(struct rte_mbuf **m, uint32_t i, enum kind kind, const struct dev_ver *creds,
	 uint32_t tenant, uint32_t epoch, bool bad_tag)
{
	struct fg_frame_spec spec = {
		.ip_version = 4, .tenant_id = tenant, .device_id = device_id(i),
		.stream_id = 1, .epoch = epoch, .frame_seq = (uint32_t)frames_sent,
		.flags = FG_FLAG_END_OF_FRAME, .key = creds->has_key || bad_tag ? creds->key : NULL,
		.payload_len = PAYLOAD + (uint16_t)(rnd() % 64),
		.src_ip = { 198, 51, 100, (uint8_t)(1 + i % 250) }, .dst_ip = { 192, 0, 2, 1 },
	};
	uint8_t badkey[16];
	size_t off = fg_frame_offset(&spec), len;
	uint8_t *p;

	if (bad_tag) {
		memcpy(badkey, creds->key, 16);
		badkey[rnd() % 16] ^= (uint8_t)(1 + rnd() % 255);
		spec.key = badkey;
	}
	*m = rte_pktmbuf_alloc(pool);
	if (*m == NULL)
		return false;
	p = rte_pktmbuf_mtod(*m, uint8_t *);
	len = fg_frame_build(&spec, p, rte_pktmbuf_tailroom(*m));
	(*m)->data_len = (uint16_t)len;
	(*m)->pkt_len = (uint32_t)len;
	{
		struct frame_info fi = { frames_sent, clk, (uint8_t)kind };
		uint8_t *pl = p + off + (spec.key ? FG_HDR_LEN_AUTH : FG_HDR_LEN);

		memcpy(pl, &fi.frame_idx, 8);
		memcpy(pl + 8, &fi.sent, 8);
		pl[16] = fi.kind;
	}
	(*m)->hash.usr = kind;
	sent_by_kind[kind]++;
	frames_sent++;
	return true;
}

/* One camera frame of device i, of a kind drawn by the traffic mix. */
static bool
camera_frame(struct rte_mbuf **m, uint32_t i, int forced_kind)
{
	const struct dev_hist *h = &devs[i];
	const struct dev_ver *cur = dev_cur(i), *prev = h->n > 1 ? &h->v[h->n - 2] : cur;
	uint32_t r = (uint32_t)(rnd() % 100);
	enum kind kind;

	if (forced_kind == K_RECONNECT_STALE)
		return send_one(m, i, K_RECONNECT_STALE, prev, prev->tenant, prev->epoch, false);
	if (cur->tenant == 0)       /* deleted: it still sends what it had */
		return send_one(m, i, K_PREVIOUS, prev, prev->tenant ? prev->tenant : 1,
				prev->epoch, false);
	if (forced_kind == K_RECONNECT)
		return send_one(m, i, K_RECONNECT, cur, cur->tenant, cur->epoch, false);
	kind = r < 80 ? K_CURRENT : r < 88 ? K_PREVIOUS : r < 92 ? K_SPOOF : r < 96 ? K_BADTAG : K_FUTURE;
	switch (kind) {
	case K_PREVIOUS:
		return send_one(m, i, kind, prev, prev->tenant ? prev->tenant : cur->tenant,
				prev->epoch, false);
	case K_SPOOF: {
		uint32_t t = 1 + (uint32_t)(rnd() % opt.tenants);

		return send_one(m, i, kind, cur, t, cur->epoch, false);
	}
	case K_BADTAG:
		return send_one(m, i, kind, cur, cur->tenant, cur->epoch, cur->has_key);
	case K_FUTURE:
		return send_one(m, i, kind, cur, cur->tenant, cur->epoch + 1, false);
	default:
		return send_one(m, i, kind, cur, cur->tenant, cur->epoch, false);
	}
}

/* Frames the ring had no room for, sent first next time (with the clock
 * of that time: they had not left). */
static struct rte_mbuf *held[BURST];
static unsigned int n_held;

static void
send_burst(struct rte_mbuf **m, unsigned int n)
{
	unsigned int sent = rte_eth_tx_burst(CAM, 0, m, (uint16_t)n);

	frames_sent_seg += sent;
	for (unsigned int j = sent; j < n; j++)
		held[n_held++] = m[j];
	frames_backpressure += n - sent;
}

/* Retry the held frames; true when none is left. */
static bool
send_held(void)
{
	unsigned int sent;

	if (n_held == 0)
		return true;
	clk++;
	for (unsigned int j = 0; j < n_held; j++) {
		uint8_t *p = rte_pktmbuf_mtod(held[j], uint8_t *);
		unsigned int hl = (unsigned int)p[42 + 2] << 8 | p[42 + 3];

		memcpy(p + 42 + hl + 8, &clk, 8);
	}
	sent = rte_eth_tx_burst(CAM, 0, held, (uint16_t)n_held);
	frames_sent_seg += sent;
	memmove(held, held + sent, (n_held - sent) * sizeof(held[0]));
	n_held -= sent;
	return n_held == 0;
}

/* Frames still held when the router goes away never left. */
static void
drop_held(void)
{
	for (unsigned int j = 0; j < n_held; j++)
		sent_by_kind[held[j]->hash.usr]--;
	frames_sent -= n_held;
	rte_pktmbuf_free_bulk(held, n_held);
	n_held = 0;
}

/* ---- the viewer: every copy, checked ---------------------------------------- */

static struct {
	uint64_t copies, copies_seg, frames, cross_tenant, after_removal, unjustified,
		 mixed, incomplete, bad_copy, stale_reconnect_copies;
	uint64_t by_kind[K_KINDS];        /* frames forwarded, by kind */
	uint64_t window_max;               /* largest hi - lo seen */
} chk;

static struct {                        /* the copies of one frame so far */
	bool open;
	uint64_t frame_idx, sent, hi;
	uint8_t kind;
	uint8_t hdr[FG_HDR_LEN_AUTH];
	uint16_t hdr_len;
	uint32_t sinks[8];
	unsigned int n;
} grp;

static uint64_t
acked_before(uint64_t t)
{
	uint64_t lo = 0, hi = opt.self_check ? n_submitted : n_acked;
	const uint64_t *at = opt.self_check ? submit_clock : ack_clock;

	/* The number of changes acknowledged before t. With --self-check, a
	 * lie: every change counts as acknowledged when it is sent, so copies
	 * decided just before a change lands must be found wrong. */
	while (lo < hi) {
		uint64_t mid = (lo + hi) / 2;

		if (at[mid + 1] < t)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t
get64(const uint8_t *p)
{
	return (uint64_t)get32(p) << 32 | get32(p + 4);
}

/* The ingress packet the reference model judges: a plain IPv4/UDP packet
 * to the frame port around the frame header as the copy carries it (the
 * model's checks 5-9 read only the header; 1-4 pass for any packet the
 * cameras build). */
static size_t
rewrap(uint8_t *pkt, const uint8_t *hdr, size_t hdr_len)
{
	size_t len = 14 + 20 + 8 + hdr_len;
	uint32_t sum = 0;

	memset(pkt, 0, 42);
	pkt[12] = 0x08;
	pkt[14] = 0x45;
	pkt[16] = (uint8_t)((len - 14) >> 8);
	pkt[17] = (uint8_t)(len - 14);
	pkt[22] = 64;
	pkt[23] = 17;
	memcpy(pkt + 26, (uint8_t[]){ 198, 51, 100, 1, 192, 0, 2, 1 }, 8);
	for (int i = 14; i < 34; i += 2)
		sum += (uint32_t)pkt[i] << 8 | pkt[i + 1];
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	pkt[24] = (uint8_t)(~sum >> 8);
	pkt[25] = (uint8_t)~sum;
	pkt[34] = 0xbb;
	pkt[35] = 0xbb;
	pkt[36] = (uint8_t)(FG_DEFAULT_FRAME_PORT >> 8);
	pkt[37] = (uint8_t)FG_DEFAULT_FRAME_PORT;
	pkt[38] = (uint8_t)((8 + hdr_len) >> 8);
	pkt[39] = (uint8_t)(8 + hdr_len);
	memcpy(pkt + 42, hdr, hdr_len);
	return len;
}

static struct ref_state ref;

/* The reference model's verdict on the frame under the state after k
 * changes; on forward, the sinks. */
static bool
verdict_at(uint64_t k, uint32_t dev, uint32_t tenant, const uint8_t *pkt, size_t len,
	   const struct dev_ver **mapping)
{
	const struct dev_ver *v = dev_at(dev, k);
	int m;

	ref.n_tenants = ref.n_sinks = ref.n_mappings = 0;
	ref.frame_port = FG_DEFAULT_FRAME_PORT;
	if (tenant >= 1 && tenant <= opt.tenants)
		ref.tenants[ref.n_tenants++] = (struct ref_tenant){ tenant, flag_at(&tenants[tenant], k) };
	if (v->tenant != 0 && v->tenant == tenant) {
		struct ref_mapping *rm = &ref.mappings[ref.n_mappings++];

		rm->tenant = v->tenant;
		rm->device = device_id(dev);
		rm->epoch = v->epoch;
		rm->has_key = v->has_key;
		memcpy(rm->key, v->key, 16);
		rm->n_sinks = v->n_sinks;
		for (uint32_t j = 0; j < v->n_sinks; j++) {
			rm->sinks[j] = v->sinks[j];
			ref.sinks[ref.n_sinks++] = (struct ref_sink){ v->sinks[j], sink_tenant(v->sinks[j]) };
		}
	}
	*mapping = v;
	return ref_verdict(&ref, pkt, len, &m) == 0;
}

static bool
has_sink(const struct dev_ver *v, uint32_t s)
{
	for (uint32_t j = 0; j < v->n_sinks; j++)
		if (v->sinks[j] == s)
			return true;
	return false;
}

/* Judge the copies of one frame. */
static void
group_close(void)
{
	uint32_t tenant = get32(grp.hdr + 4);
	uint64_t device = get64(grp.hdr + 8);
	uint32_t dev = (uint32_t)(device - device_id(0));
	uint64_t lo = acked_before(grp.sent), hi = grp.hi;
	uint64_t ks[64];
	unsigned int nk = 0;
	uint8_t pkt[128];
	size_t len = rewrap(pkt, grp.hdr, grp.hdr_len);
	bool exact = false, subset = false;
	bool justified[8] = { false }, owner_match[8] = { false };

	grp.open = false;
	chk.frames++;
	chk.by_kind[grp.kind]++;
	if (device < device_id(0) || dev >= opt.devices) {
		chk.bad_copy += grp.n;
		return;
	}
	if (hi - lo > chk.window_max)
		chk.window_max = hi - lo;
	/* The states to try: lo, and each change in (lo, hi] that touched the
	 * device or the tenant. */
	ks[nk++] = lo;
	for (uint32_t j = 0; j < devs[dev].n && nk < 63; j++)
		if (devs[dev].v[j].idx > lo && devs[dev].v[j].idx <= hi)
			ks[nk++] = devs[dev].v[j].idx;
	if (tenant >= 1 && tenant <= opt.tenants)
		for (uint32_t j = 0; j < tenants[tenant].n && nk < 63; j++)
			if (tenants[tenant].v[j].idx > lo && tenants[tenant].v[j].idx <= hi)
				ks[nk++] = tenants[tenant].v[j].idx;
	for (unsigned int a = 0; a < nk; a++) {
		const struct dev_ver *v;
		bool fwd = verdict_at(ks[a], dev, tenant, pkt, len, &v);
		bool all = true;

		for (unsigned int c = 0; c < grp.n; c++) {
			bool in = fwd && has_sink(v, grp.sinks[c]);

			justified[c] |= in;
			all &= in;
			owner_match[c] |= v->tenant != 0 && v->tenant == sink_tenant(grp.sinks[c]);
		}
		subset |= all;
		exact |= all && grp.n == v->n_sinks;
	}
	for (unsigned int c = 0; c < grp.n; c++) {
		if (!owner_match[c])
			chk.cross_tenant++;
		if (!justified[c]) {
			const struct dev_ver *at_lo = dev_at(dev, lo);
			bool held = false;

			chk.unjustified++;
			for (uint32_t j = 0; j < devs[dev].n && devs[dev].v[j].idx <= lo; j++)
				held |= devs[dev].v[j].tenant == tenant;
			if (at_lo->tenant != tenant && held)
				chk.after_removal++;
			if (chk.unjustified <= 5)
				fprintf(stderr, "fg-storm: UNJUSTIFIED copy: frame %" PRIu64 " (%s) tenant %u device %u epoch %u to sink %u (tenant %u); states %" PRIu64 "..%" PRIu64 "; device at lo: tenant %u epoch %u\n",
					grp.frame_idx, kind_names[grp.kind], tenant, dev,
					get32(grp.hdr + 20), grp.sinks[c], sink_tenant(grp.sinks[c]),
					lo, hi, at_lo->tenant, at_lo->epoch);
		}
	}
	if (grp.kind == K_RECONNECT_STALE)
		chk.stale_reconnect_copies += grp.n;
	if (!subset)
		chk.mixed++;
	else if (!exact)
		chk.incomplete++;
}

/* One copy off the viewer port. */
static void
viewer_copy(const uint8_t *p, size_t len)
{
	size_t l4;
	uint32_t sink;
	const uint8_t *hdr, *pl;
	uint16_t hdr_len;
	struct frame_info fi;

	chk.copies++;
	chk.copies_seg++;
	if (len < 14 + 20 + 8 + FG_HDR_LEN + PAYLOAD)
		goto bad;
	if (p[12] == 0x08 && p[13] == 0x00) {
		l4 = 14 + (size_t)(p[14] & 15) * 4;
		sink = (uint32_t)p[31] << 16 | (uint32_t)p[32] << 8 | p[33];
		if (p[30] != 10 || sink_v6(sink))
			goto bad;
	} else if (p[12] == 0x86 && p[13] == 0xdd && len >= 14 + 40 + 8 + FG_HDR_LEN + PAYLOAD) {
		l4 = 14 + 40;
		sink = (uint32_t)p[14 + 24 + 12] << 24 | (uint32_t)p[14 + 24 + 13] << 16 |
		       (uint32_t)p[14 + 24 + 14] << 8 | p[14 + 24 + 15];
		if (!sink_v6(sink))
			goto bad;
	} else {
		goto bad;
	}
	if ((p[l4 + 2] << 8 | p[l4 + 3]) != SINK_PORT)
		goto bad;
	hdr = p + l4 + 8;
	hdr_len = (uint16_t)(hdr[2] << 8 | hdr[3]);
	if (hdr_len != FG_HDR_LEN && hdr_len != FG_HDR_LEN_AUTH)
		goto bad;
	pl = hdr + hdr_len;
	if ((size_t)(pl + PAYLOAD - p) > len)
		goto bad;
	memcpy(&fi.frame_idx, pl, 8);
	memcpy(&fi.sent, pl + 8, 8);
	fi.kind = pl[16];
	if (fi.kind >= K_KINDS)
		goto bad;
	if (grp.open && grp.frame_idx != fi.frame_idx)
		group_close();
	if (!grp.open) {
		grp.open = true;
		grp.frame_idx = fi.frame_idx;
		grp.sent = fi.sent;
		grp.kind = fi.kind;
		grp.hi = n_submitted;
		grp.n = 0;
		grp.hdr_len = hdr_len;
		memcpy(grp.hdr, hdr, hdr_len);
	}
	if (grp.n < 8)
		grp.sinks[grp.n++] = sink;
	else
		chk.mixed++;
	return;
bad:
	chk.bad_copy++;
	if (chk.bad_copy <= 3)
		fprintf(stderr, "fg-storm: a copy the viewer cannot read (%zu bytes)\n", len);
}

static void
viewer_poll(void)
{
	struct rte_mbuf *m[BURST];
	uint16_t n;

	for (int round = 0; round < 64; round++) {
		n = rte_eth_rx_burst(VIEW, 0, m, BURST);
		clk++;
		for (uint16_t j = 0; j < n; j++) {
			struct rte_mbuf *c = m[j];

			if (rte_pktmbuf_is_contiguous(c)) {
				viewer_copy(rte_pktmbuf_mtod(c, uint8_t *), rte_pktmbuf_data_len(c));
			} else {
				uint8_t buf[2048];
				const uint8_t *d = rte_pktmbuf_read(c, 0, RTE_MIN(c->pkt_len, 2048u), buf);

				viewer_copy(d, RTE_MIN(c->pkt_len, 2048u));
			}
		}
		rte_pktmbuf_free_bulk(m, n);
		if (n < BURST)
			break;
	}
	/* Drain the camera port's receive side too (nothing comes back). */
	n = rte_eth_rx_burst(CAM, 0, m, BURST);
	rte_pktmbuf_free_bulk(m, n);
}

/* ---- the control side of the loop -------------------------------------------- */

static uint64_t refused;

static void
ctl_poll(uint64_t limit)
{
	json_t *r;

	for (int made = 0; made < 128 && n_submitted < limit && n_submitted - n_acked < WINDOW; made++) {
		n_submitted++;
		next_change((uint32_t)n_submitted, false, UINT32_MAX);
		submit_clock[n_submitted] = ++clk;
	}
	if (ctl.fd < 0)
		return;
	ctl_write();
	ctl_read();
	while ((r = ctl_take()) != NULL) {
		n_acked++;
		ack_clock[n_acked] = ++clk;
		if (!json_is_true(json_object_get(r, "ok"))) {
			refused++;
			if (refused <= 5)
				fprintf(stderr, "fg-storm: change %" PRIu64 " (%s) refused: %s\n", n_acked,
					change_names[changes[n_acked].kind],
					json_string_value(json_object_get(r, "error")));
		}
		json_decref(r);
	}
}

static bool
links_up(void)
{
	struct rte_eth_link a, b;

	return rte_eth_link_get_nowait(CAM, &a) == 0 && rte_eth_link_get_nowait(VIEW, &b) == 0 &&
	       a.link_status && b.link_status;
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Wait for both memif links, polling so nothing piles up. */
static bool
wait_links(void)
{
	uint64_t t0 = now_ms();

	while (!links_up()) {
		if (now_ms() - t0 > 20000)
			return false;
		viewer_poll();
		usleep(1000);
	}
	return true;
}

/* ---- a kill -9 and the restart ---------------------------------------------- */

static uint64_t lost_unacked, kill_restart_ms[16];

/* Does a device's dump line (NULL: not held) say what version v says? */
static bool
dump_matches(const struct dev_ver *v, json_t *o)
{
	json_t *sk;
	const char *key;
	char hex[33];

	if (v->tenant == 0 || o == NULL)
		return v->tenant == 0 && o == NULL;
	sk = json_object_get(o, "sinks");
	key = json_string_value(json_object_get(o, "key"));
	if (json_integer_value(json_object_get(o, "tenant")) != v->tenant ||
	    json_integer_value(json_object_get(o, "epoch")) != v->epoch ||
	    (key != NULL) != (v->has_key != 0) || json_array_size(sk) != v->n_sinks)
		return false;
	for (uint32_t j = 0; j < v->n_sinks; j++)
		if ((uint32_t)json_integer_value(json_array_get(sk, j)) != v->sinks[j])
			return false;
	if (key != NULL) {
		for (int b = 0; b < 16; b++)
			snprintf(hex + 2 * b, 3, "%02x", v->key[b]);
		if (strcmp(hex, key) != 0)
			return false;
	}
	return true;
}

/* After a restart the router holds the acknowledged changes and maybe some
 * of the ones in flight (journaled, their ack never read): find how many
 * from its dump, and forget the rest. */
static int
resync_after_restart(void)
{
	json_t *d = ctl_call(router.sock, "{\"cmd\":\"dump\",\"with_keys\":true}"), *lines, *line;
	size_t i;
	uint64_t k;
	uint32_t *dev_line;
	uint8_t *suspended, *sink_there;
	int ret = -1;

	if (d == NULL || (lines = json_object_get(d, "lines")) == NULL) {
		fprintf(stderr, "fg-storm: no dump after the restart\n");
		json_decref(d);
		return -1;
	}
	/* From the dump: device index -> its line + 1 (0: not held), the
	 * suspended tenants, the sinks that exist. */
	dev_line = calloc(opt.devices, sizeof(*dev_line));
	suspended = calloc(opt.tenants + 1, 1);
	sink_there = calloc((size_t)(opt.tenants + 1) * SINKS_PER_TENANT, 1);
	json_array_foreach(lines, i, line) {
		const char *op = json_string_value(json_object_get(line, "op"));
		const char *ds = json_string_value(json_object_get(line, "device"));
		json_int_t t = json_integer_value(json_object_get(line, "tenant"));
		json_int_t sk = json_integer_value(json_object_get(line, "sink"));

		if (op == NULL)
			continue;
		if (strcmp(op, "device") == 0 && ds) {
			uint64_t id = strtoull(ds, NULL, 0);

			if (id >= device_id(0) && id - device_id(0) < opt.devices)
				dev_line[id - device_id(0)] = (uint32_t)i + 1;
		} else if (strcmp(op, "suspend") == 0 && t >= 1 && t <= opt.tenants) {
			suspended[t] = 1;
		} else if (strcmp(op, "sink") == 0 && sk >= 0 &&
			   sk < (json_int_t)(opt.tenants + 1) * SINKS_PER_TENANT) {
			sink_there[sk] = 1;
		}
	}
	/* The largest k in [acked, submitted] whose every in-flight object
	 * matches the dump. */
	for (k = n_submitted + 1; k-- > n_acked;) {
		bool match = true;

		for (uint64_t c = n_acked + 1; c <= n_submitted && match; c++) {
			const struct change *ch = &changes[c];

			switch (ch->kind) {
			case C_SINK_ADD:
			case C_SINK_DEL:
				match = flag_at(&sinks[ch->obj], k) == (sink_there[ch->obj] != 0);
				break;
			case C_SUSPEND:
			case C_RESUME:
				match = flag_at(&tenants[ch->obj], k) == (suspended[ch->obj] != 0);
				break;
			default: {
				uint32_t l = dev_line[ch->obj];

				match = dump_matches(dev_at(ch->obj, k),
						     l ? json_array_get(lines, l - 1) : NULL);
			}
			}
		}
		if (match)
			break;
	}
	if (k + 1 == n_acked) {
		fprintf(stderr, "fg-storm: the restarted router matches no state between %" PRIu64 " and %" PRIu64 " changes\n",
			n_acked, n_submitted);
		goto out;
	}
	/* Forget the changes after k: they were never applied. */
	for (uint64_t c = n_submitted; c > k; c--) {
		const struct change *ch = &changes[c];

		switch (ch->kind) {
		case C_SINK_ADD:
		case C_SINK_DEL:
			sinks[ch->obj].n--;
			break;
		case C_SUSPEND:
		case C_RESUME:
			tenants[ch->obj].n--;
			break;
		default:
			devs[ch->obj].n--;
		}
		change_counts[ch->kind]--;
	}
	lost_unacked += n_submitted - k;
	fprintf(stderr, "fg-storm: restarted router holds %" PRIu64 " changes: %" PRIu64 " acknowledged, %" PRIu64 " in flight applied, %" PRIu64 " in flight lost\n",
		k, n_acked, k - n_acked, n_submitted - k);
	for (uint64_t c = n_acked + 1; c <= k; c++)
		ack_clock[c] = ++clk;            /* known applied from now */
	n_submitted = n_acked = k;
	/* The model's derived state, again from the histories. */
	memset(sink_refs, 0, (size_t)(opt.tenants + 1) * SINKS_PER_TENANT * sizeof(*sink_refs));
	for (uint32_t d2 = 0; d2 < opt.devices; d2++)
		refs_add(dev_cur(d2), 1);
	n_suspended = 0;
	for (uint32_t t = 1; t <= opt.tenants; t++)
		if (flag_cur(&tenants[t]))
			suspended_list[n_suspended++] = t;
	ret = 0;
out:
	free(dev_line);
	free(suspended);
	free(sink_there);
	json_decref(d);
	return ret;
}

static int
kill_and_restart(unsigned int nth)
{
	uint64_t t0;

	fprintf(stderr, "fg-storm: kill -9 of the router (%u of %u) at %" PRIu64 " changes submitted, %" PRIu64 " acknowledged, %" PRIu64 " frames sent\n",
		nth, opt.kills, n_submitted, n_acked, frames_sent);
	router_kill(SIGKILL);
	drop_held();
	ctl_reset();
	t0 = now_ms();
	if (!router_start(NULL)) {
		fprintf(stderr, "fg-storm: the router did not restart\n");
		return -1;
	}
	if ((ctl.fd = ctl_connect(router.sock)) < 0 || !wait_links()) {
		fprintf(stderr, "fg-storm: cannot reach the restarted router\n");
		return -1;
	}
	if (nth - 1 < 16)
		kill_restart_ms[nth - 1] = now_ms() - t0;
	frames_sent_seg = 0;
	chk.copies_seg = 0;
	return resync_after_restart();
}

/* ---- the run ----------------------------------------------------------------- */

static int
check_end_state(void)
{
	json_t *d = ctl_call(router.sock, "{\"cmd\":\"dump\",\"with_keys\":true}"), *lines, *line;
	uint64_t held = 0, model = 0, wrong = 0;
	size_t i;

	if (d == NULL || (lines = json_object_get(d, "lines")) == NULL)
		return -1;
	uint64_t susp = 0, susp_model = 0, sinks_held = 0, sinks_model = 0, other_wrong = 0;

	json_array_foreach(lines, i, line) {
		const char *op = json_string_value(json_object_get(line, "op"));
		const char *ds = json_string_value(json_object_get(line, "device"));
		json_int_t t = json_integer_value(json_object_get(line, "tenant"));
		json_int_t sk = json_integer_value(json_object_get(line, "sink"));

		if (op != NULL && strcmp(op, "suspend") == 0) {
			susp++;
			other_wrong += t < 1 || t > opt.tenants || !flag_cur(&tenants[t]);
			continue;
		}
		if (op != NULL && strcmp(op, "sink") == 0) {
			sinks_held++;
			other_wrong += sk < 0 || sk >= (json_int_t)(opt.tenants + 1) * SINKS_PER_TENANT ||
				       !flag_cur(&sinks[sk]) || sink_tenant((uint32_t)sk) != t;
			continue;
		}
		if (op == NULL || strcmp(op, "device") != 0 || ds == NULL)
			continue;
		uint64_t id = strtoull(ds, NULL, 0);
		uint32_t dv = (uint32_t)(id - device_id(0));

		held++;
		if (id < device_id(0) || dv >= opt.devices) {
			wrong++;
			continue;
		}
		wrong += !dump_matches(dev_cur(dv), line);
	}
	for (uint32_t dv = 0; dv < opt.devices; dv++)
		model += dev_cur(dv)->tenant != 0;
	for (uint32_t t = 1; t <= opt.tenants; t++)
		susp_model += flag_cur(&tenants[t]);
	for (uint32_t sk = 0; sk < (opt.tenants + 1) * SINKS_PER_TENANT; sk++)
		sinks_model += flag_cur(&sinks[sk]);
	json_decref(d);
	printf("end state: router holds %" PRIu64 " mappings, the model %" PRIu64 ", %" PRIu64 " differ; sinks %" PRIu64 " / %" PRIu64 ", suspended tenants %" PRIu64 " / %" PRIu64 ", %" PRIu64 " differ\n",
	       held, model, wrong, sinks_held, sinks_model, susp, susp_model, other_wrong);
	return held == model && wrong == 0 && sinks_held == sinks_model && susp == susp_model &&
	       other_wrong == 0 ? 0 : -1;
}

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: fg-storm [--reduced] [--devices N] [--tenants N] [--frames N] [--changes N]\n"
		"                [--kill N] [--stale-share PCT] [--seed N] [--keep DIR] [--self-check]\n"
		"Runs a framegate router on two net_memif ports and storms it: camera traffic,\n"
		"pipelined ownership changes on the control socket, a reconnect storm, and\n"
		"with --kill N, N kill -9 restarts; checks every copy against the reference\n"
		"model and the acknowledged change log. Full size by default (100,000 devices,\n"
		"10,000 tenants, 10,000,000 frames, 1,000,000 changes); --reduced is the CI\n"
		"size (10,000 / 1,000 / 1,000,000 / 100,000). --keep DIR keeps the router's\n"
		"folder (journal, config, output) in DIR. --self-check tests the checker: it\n"
		"believes every change acknowledged the moment it is sent, so it must find\n"
		"copies no state allows (exit 0 when it does).\n"
		"Exit 0: every check held; 1: one failed; 2: usage or set-up.\n");
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "reduced", no_argument, NULL, 'r' }, { "devices", required_argument, NULL, 'd' },
		{ "tenants", required_argument, NULL, 't' }, { "frames", required_argument, NULL, 'f' },
		{ "changes", required_argument, NULL, 'c' }, { "kill", required_argument, NULL, 'k' },
		{ "stale-share", required_argument, NULL, 's' }, { "seed", required_argument, NULL, 'S' },
		{ "keep", required_argument, NULL, 'K' }, { "help", no_argument, NULL, 'h' },
		{ "self-check", no_argument, NULL, 'X' },
		{ NULL, 0, NULL, 0 },
	};
	char eal_prefix[64], vdev0[256], vdev1[256], path[256];
	char *eal[16];
	int c, eal_n = 0, status = 1;
	uint64_t t_start, t_changes_end = 0, reconnect_at, next_kill_at = UINT64_MAX;
	unsigned int kills_done = 0;
	uint64_t reconnect_devices = 0, reconnect_stale = 0;
	bool reconnect_done = false;
	struct rte_mbuf *m[BURST];

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'r':
			opt.devices = 10000, opt.tenants = 1000;
			opt.frames = 1000000, opt.changes = 100000;
			break;
		case 'd': opt.devices = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 't': opt.tenants = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'f': opt.frames = strtoull(optarg, NULL, 10); break;
		case 'c': opt.changes = strtoull(optarg, NULL, 10); break;
		case 'k': opt.kills = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 's': opt.stale_pct = (unsigned int)strtoul(optarg, NULL, 10); break;
		case 'S': opt.seed = strtoull(optarg, NULL, 10); break;
		case 'K': opt.keep = optarg; break;
		case 'X': opt.self_check = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || opt.devices < 10 || opt.tenants < 2 || opt.tenants > 2000000 ||
	    opt.devices > 10000000 || opt.stale_pct > 100 || opt.kills > 16 || opt.changes < 100) {
		fprintf(stderr, "fg-storm: devices >= 10, tenants 2..2,000,000, changes >= 100, kill <= 16, stale-share <= 100\n");
		usage(stderr);
		return 2;
	}
	rng ^= opt.seed * 0x9e3779b97f4a7c15ull;

	/* The work folder: sockets, config, journal. */
	snprintf(router.dir, sizeof(router.dir), "%s", opt.keep ? opt.keep : "/tmp/fg_storm.XXXXXX");
	if (opt.keep ? (mkdir(router.dir, 0755) != 0 && errno != EEXIST) : mkdtemp(router.dir) == NULL) {
		perror(router.dir);
		return 2;
	}
	snprintf(router.sock, sizeof(router.sock), "%s/ctl.sock", router.dir);
	snprintf(router.config, sizeof(router.config), "%s/config.json", router.dir);
	{
		FILE *f = fopen(router.config, "w");

		fprintf(f,
			"{\"control_socket\": \"%s\", \"journal_dir\": \"%s/journal\",\n"
			" \"compact_bytes\": 67108864, \"mbufs\": 16383,\n"
			" \"tables\": {\"max_tenants\": %u, \"max_sinks\": %u, \"max_devices\": %u},\n"
			" \"ports\": [{\"port\": 0, \"role\": \"ingress\"},\n"
			"             {\"port\": 1, \"role\": \"egress\", \"next_hop_mac\": \"02:00:00:00:00:01\",\n"
			"              \"ipv4\": \"192.0.2.1\", \"ipv6\": \"2001:db8::1\"}]}\n",
			router.sock, router.dir, opt.tenants + 16,
			(opt.tenants + 1) * SINKS_PER_TENANT + 16, opt.devices + 16);
		fclose(f);
	}

	/* The model. */
	devs = calloc(opt.devices, sizeof(*devs));
	tenants = calloc(opt.tenants + 1, sizeof(*tenants));
	sinks = calloc((size_t)(opt.tenants + 1) * SINKS_PER_TENANT, sizeof(*sinks));
	sink_refs = calloc((size_t)(opt.tenants + 1) * SINKS_PER_TENANT, sizeof(*sink_refs));
	suspended_list = calloc(opt.tenants + 1, sizeof(*suspended_list));
	changes = calloc(opt.changes + opt.devices + 2, sizeof(*changes));
	submit_clock = calloc(opt.changes + opt.devices + 2, sizeof(*submit_clock));
	ack_clock = calloc(opt.changes + opt.devices + 2, sizeof(*ack_clock));
	if (!devs || !tenants || !sinks || !sink_refs || !suspended_list || !changes ||
	    !submit_clock || !ack_clock) {
		fprintf(stderr, "fg-storm: out of memory\n");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/initial.jsonl", router.dir);
	if (write_initial(path) != 0) {
		perror(path);
		return 2;
	}

	/* This process's EAL: the memif servers the router connects to. */
	snprintf(eal_prefix, sizeof(eal_prefix), "--file-prefix=fgstormdrv%d", (int)getpid());
	snprintf(vdev0, sizeof(vdev0), "net_memif0,role=server,socket=%s/cam.sock,id=0,rsize=10", router.dir);
	snprintf(vdev1, sizeof(vdev1), "net_memif1,role=server,socket=%s/view.sock,id=1,rsize=14", router.dir);
	eal[eal_n++] = argv[0];
	eal[eal_n++] = "--no-huge";
	eal[eal_n++] = "-m";
	eal[eal_n++] = "512";
	eal[eal_n++] = "--no-pci";
	eal[eal_n++] = "--no-telemetry";
	eal[eal_n++] = "-l";
	eal[eal_n++] = "1";
	eal[eal_n++] = "--log-level=*:error";
	eal[eal_n++] = eal_prefix;
	eal[eal_n++] = "--vdev";
	eal[eal_n++] = vdev0;
	eal[eal_n++] = "--vdev";
	eal[eal_n++] = vdev1;
	if (rte_eal_init(eal_n, eal) < 0) {
		fprintf(stderr, "fg-storm: EAL: %s\n", rte_strerror(rte_errno));
		return 2;
	}
	pool = rte_pktmbuf_pool_create("storm", 16383, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
				       (int)rte_socket_id());
	for (uint16_t p = 0; p < 2 && pool; p++) {
		struct rte_eth_conf conf = { 0 };

		if (rte_eth_dev_configure(p, 1, 1, &conf) != 0 ||
		    rte_eth_rx_queue_setup(p, 0, 1024, (unsigned int)rte_socket_id(), NULL, pool) != 0 ||
		    rte_eth_tx_queue_setup(p, 0, 1024, (unsigned int)rte_socket_id(), NULL) != 0 ||
		    rte_eth_dev_start(p) != 0) {
			fprintf(stderr, "fg-storm: cannot start port %u\n", p);
			goto out;
		}
	}
	if (pool == NULL)
		goto out;

	printf("storm: %u devices, %u tenants, %u sinks; %" PRIu64 " frames, %" PRIu64 " changes, %u kill -9 restarts\n",
	       opt.devices, opt.tenants, opt.tenants * 3, opt.frames, opt.changes, opt.kills);
	if (!router_start(path) || (ctl.fd = ctl_connect(router.sock)) < 0 || !wait_links()) {
		fprintf(stderr, "fg-storm: the router did not start (its output: %s/router1.out)\n",
			router.dir);
		goto out;
	}

	t_start = now_ms();
	reconnect_at = opt.frames / 2;
	if (opt.kills > 0)
		next_kill_at = opt.changes / (opt.kills + 1);
	/* The storm: until every frame and every change is through. */
	while (frames_sent < opt.frames || n_acked < opt.changes) {
		unsigned int n = 0;

		if (n_submitted >= next_kill_at && kills_done < opt.kills) {
			if (kill_and_restart(++kills_done) != 0)
				goto out;
			next_kill_at = opt.changes * (kills_done + 1) / (opt.kills + 1);
		}
		if (send_held() && frames_sent < opt.frames) {
			clk++;
			while (n < BURST) {
				if (!camera_frame(&m[n], (uint32_t)(rnd() % opt.devices), -1))
					break;
				n++;
			}
			send_burst(m, n);
		}
		viewer_poll();
		ctl_poll(opt.changes);
		if (n_acked >= opt.changes && t_changes_end == 0)
			t_changes_end = now_ms();

		if (!reconnect_done && frames_sent >= reconnect_at) {
			/* The reconnect storm. Silence; a share of the devices
			 * move while their cameras are away; once the moves are
			 * acknowledged, every camera sends at once. */
			uint64_t want, before, t0 = now_ms();
			uint32_t share = (uint32_t)((uint64_t)opt.devices * opt.stale_pct / 100);
			uint8_t *moved = calloc(opt.devices, 1);

			reconnect_done = true;
			while (n_acked < n_submitted && now_ms() - t0 < 30000) {
				viewer_poll();
				ctl_poll(n_submitted);
			}
			before = n_submitted;
			for (uint32_t j = 0; j < share; j++) {
				uint32_t d = (uint32_t)(rnd() % opt.devices);

				if (moved[d] || dev_cur(d)->tenant == 0)
					continue;
				moved[d] = 1;
				n_submitted++;
				next_change((uint32_t)n_submitted, true, d);
				submit_clock[n_submitted] = ++clk;
				if (n_submitted - n_acked >= WINDOW)
					ctl_poll(n_submitted);
			}
			want = n_submitted;
			while (n_acked < want && now_ms() - t0 < 60000) {
				viewer_poll();
				ctl_poll(want);
			}
			printf("reconnect storm: silent for %" PRIu64 " ms while %" PRIu64 " devices moved\n",
			       now_ms() - t0, want - before);
			for (uint32_t d = 0; d < opt.devices;) {
				n = 0;
				clk++;
				while (n < BURST && d < opt.devices) {
					bool stale = moved[d];

					if (!camera_frame(&m[n], d, stale ? K_RECONNECT_STALE : K_RECONNECT))
						break;
					reconnect_stale += stale;
					reconnect_devices++;
					n++;
					d++;
				}
				while (!send_held())
					viewer_poll();
				send_burst(m, n);
				viewer_poll();
			}
			free(moved);
		}
	}
	uint64_t t_frames_end = now_ms();

	/* Drain: the router has everything sent; every copy is read. */
	{
		uint64_t t0 = now_ms(), rx = 0, copies = 0;
		json_t *st = NULL;

		for (;;) {
			send_held();
			viewer_poll();
			ctl_poll(n_submitted);
			json_decref(st);
			st = ctl_call(router.sock, "{\"cmd\":\"stats\"}");
			rx = (uint64_t)json_integer_value(json_object_get(st, "rx_packets"));
			copies = (uint64_t)json_integer_value(json_object_get(st, "copies_sent"));
			if ((rx == frames_sent_seg && copies == chk.copies_seg) || now_ms() - t0 > 20000)
				break;
			usleep(2000);
		}
		for (int i = 0; i < 50; i++)
			viewer_poll();
		if (grp.open)
			group_close();

		uint64_t fwd = (uint64_t)json_integer_value(json_object_get(st, "forwarded_packets"));
		uint64_t txf = (uint64_t)json_integer_value(json_object_get(st, "tx_full"));
		uint64_t drops = 0;
		const char *rname;
		json_t *rv;

		json_object_foreach(json_object_get(st, "drops"), rname, rv)
			drops += (uint64_t)json_integer_value(rv);
		double secs = (double)(t_frames_end - t_start) / 1000;
		double csecs = (double)((t_changes_end ? t_changes_end : t_frames_end) - t_start) / 1000;

		printf("frames: %" PRIu64 " sent (%" PRIu64 " times the ring was full and a frame waited), %.0f per second\n",
		       frames_sent, frames_backpressure, (double)frames_sent / secs);
		for (int k = 0; k < K_KINDS; k++)
			if (sent_by_kind[k] || chk.by_kind[k])
				printf("  %-36s sent %10" PRIu64 ", forwarded %10" PRIu64 "\n", kind_names[k],
				       sent_by_kind[k], chk.by_kind[k]);
		printf("changes: %" PRIu64 " acknowledged in %.1f s = %.0f per second, %" PRIu64 " refused; in flight at kills and lost: %" PRIu64 "\n",
		       n_acked, csecs, (double)n_acked / csecs, refused, lost_unacked);
		for (int k = 0; k < C_KINDS; k++)
			printf("  %-14s %" PRIu64 "\n", change_names[k], change_counts[k]);
		printf("reconnect storm: %" PRIu64 " devices resent at once, %" PRIu64 " of them with pre-move credentials; copies of those: %" PRIu64 "\n",
		       reconnect_devices, reconnect_stale, chk.stale_reconnect_copies);
		for (unsigned int k = 0; k < kills_done && k < 16; k++)
			printf("kill -9 %u: restarted and serving after %" PRIu64 " ms\n", k + 1, kill_restart_ms[k]);
		printf("copies: %" PRIu64 " read, of %" PRIu64 " forwarded frames; widest window of states %" PRIu64 " changes\n",
		       chk.copies, chk.frames, chk.window_max);
		printf("cross-tenant copies: %" PRIu64 "\n", chk.cross_tenant);
		printf("copies after an acknowledged removal: %" PRIu64 "\n", chk.after_removal);
		printf("copies no state allows: %" PRIu64 "; frames under a mix of states: %" PRIu64 "; incomplete: %" PRIu64 "; unreadable copies: %" PRIu64 "\n",
		       chk.unjustified, chk.mixed, chk.incomplete, chk.bad_copy);
		printf("conservation (router, %s): rx %" PRIu64 " = sent %" PRIu64 "; rx = forwarded %" PRIu64 " + drops %" PRIu64 "; copies_sent %" PRIu64 " + tx_full %" PRIu64 " = copies read %" PRIu64 "\n",
		       kills_done ? "since the last restart" : "whole run", rx, frames_sent_seg, fwd, drops,
		       copies, txf, chk.copies_seg);
		bool conserved = rx == frames_sent_seg && rx == fwd + drops && copies == chk.copies_seg &&
				 txf == 0;
		bool end_ok = check_end_state() == 0;

		status = chk.cross_tenant == 0 && chk.after_removal == 0 && chk.unjustified == 0 &&
			 chk.mixed == 0 && chk.incomplete == 0 && chk.bad_copy == 0 &&
			 chk.stale_reconnect_copies == 0 && refused == 0 && conserved && end_ok &&
			 frames_sent >= opt.frames && n_acked >= opt.changes ? 0 : 1;
		if (opt.self_check) {
			/* The lie must be caught, and only the checker fooled. */
			printf("self-check: told every change is acknowledged when sent, the checker found %" PRIu64 " copies no state allows\n",
			       chk.unjustified);
			/* Here every copy the router sent must have been read; a
			 * copy it could not queue (tx_full, a burst on the
			 * memif ring) bears on the router, which the run without
			 * --self-check holds to zero, not on the checker. */
			bool counted = rx == frames_sent_seg && rx == fwd + drops &&
				       copies == chk.copies_seg;

			status = chk.unjustified > 0 && chk.bad_copy == 0 && refused == 0 && counted &&
				 end_ok ? 0 : 1;
		}
		json_decref(st);
	}
	printf("storm%s: %s\n", opt.self_check ? " self-check" : "", status == 0 ? "PASS" : "FAIL");
out:
	router_kill(SIGTERM);
	for (uint16_t p = 0; p < 2; p++) {
		rte_eth_dev_stop(p);
		rte_eth_dev_close(p);
	}
	rte_eal_cleanup();
	{
		char cmd[300];

		snprintf(cmd, sizeof(cmd), "rm -rf /var/run/dpdk/fgstormdrv%d%s%s", (int)getpid(),
			 opt.keep ? "" : " ", opt.keep ? "" : router.dir);
		if (system(cmd) != 0)
			fprintf(stderr, "fg-storm: cannot clean up\n");
	}
	return status;
}
