/*
 * fg-audit: did a router ever deliver a frame across tenants? Reads a mapping
 * file into a model of its own (tenants, sinks, which tenant holds each
 * device, following every operation to the file's final state) and a capture
 * of the copies a router sent, and checks every copy independently of the
 * dataplane: the sink it went to, found by destination address and UDP port,
 * must exist and belong to the tenant in the copy's frame header, and that
 * tenant must hold the frame's device. It also checks the copies' IPv4 header
 * and UDP checksums (SPEC 3, the rewrite).
 *
 * The model keeps the ownership rules of SPEC 2 and 4 itself (a device has
 * one owner, a mapping's sinks are its tenant's, a move is a compare-and-swap
 * that raises the epoch, nothing in use is deleted) and refuses a file that
 * breaks them, naming the line: such a file does not describe what a router
 * holds. It shares only the line decoder, fg_op_parse(), with the router.
 * Its indexes are DPDK rte_hash tables, sized from the file's line count
 * (EAL is started without hugepages, ports or PCI).
 */
#define _GNU_SOURCE               /* sched_getaffinity */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <jansson.h>
#include <pcap/pcap.h>
#include <rte_byteorder.h>
#include <rte_common.h>
#include <rte_errno.h>
#include <rte_ether.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include <framegate/wire.h>

#include "eal_quick.h"
#include "mapfile.h"

/* Exit codes. */
enum {
	AUD_EXIT_CLEAN = 0,
	AUD_EXIT_FOUND = 1,     /* a cross-tenant delivery or a wrong checksum */
	AUD_EXIT_USAGE = 2,
	AUD_EXIT_INPUT = 3,     /* no audit: a file unreadable or refused, no memory */
};

/* Findings printed one by one (on stderr) before the report. */
#define AUD_SHOW_MAX 10
#define AUD_TOP 10
/* Smallest rte_hash (one bucket). */
#define AUD_IDX_MIN 8u
/* Largest copy read (pcap's largest snapshot length). */
#define AUD_PKT_MAX 262144

static const char *prog = "fg-audit";

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: %s --mappings FILE --capture FILE [--json]\n"
		"\n"
		"Checks a capture of the copies a router sent against a mapping file.\n"
		"The mapping file (JSON Lines, SPEC 4) is followed to its final state.\n"
		"Each copy (Ethernet, at most one 802.1Q tag, IPv4 or IPv6, UDP, frame\n"
		"header) is a cross-tenant delivery when no sink has its destination\n"
		"address and UDP port, or that sink belongs to another tenant than the\n"
		"frame header's tenant_id, or that tenant does not hold the header's\n"
		"device_id. A copy that cannot be read that far (not IPv4/IPv6 and UDP,\n"
		"an IP fragment, cut short, lengths that disagree, no room for a frame\n"
		"header) cannot be shown to stay in its tenant and counts as one too.\n"
		"Also counted: copies with a wrong IPv4 header checksum, and with a\n"
		"wrong UDP checksum (0 is allowed over IPv4, not over IPv6).\n"
		"\n"
		"Prints copies read, copies per tenant (top %d), sinks reached and, last,\n"
		"`cross-tenant deliveries: N`; the first %d findings go to stderr.\n"
		"\n"
		"  --mappings FILE   mapping file\n"
		"  --capture FILE    pcap capture of the router's output (Ethernet)\n"
		"  --json            one JSON object with the counts instead\n"
		"  --help            this text\n"
		"\n"
		"Exit status:\n"
		"  0  no cross-tenant delivery and no wrong checksum\n"
		"  1  a cross-tenant delivery or a wrong checksum (only these)\n"
		"  2  usage error\n"
		"  3  no audit: a file that cannot be read, a capture that is not\n"
		"     Ethernet, a mapping file line that does not parse or that the\n"
		"     ownership rules refuse (the message names the file, and the line),\n"
		"     or DPDK could not start or hold the model\n",
		prog, AUD_TOP, AUD_SHOW_MAX);
}

/* ---- growable arrays and 64-bit-keyed indexes ---------------------------- */

/*
 * DPDK memory (MiB, no hugepages) for the indexes of a mapping file of
 * `lines` lines: three indexes with room for every line, and the claimed
 * tenants' index, take about 150 bytes a line (189 MiB for 1.3 million
 * lines). This gives more than three times that, for fragmentation and the
 * claimed tenants' index growing. Without hugepages it is only reserved:
 * what is not allocated is never touched.
 */
static unsigned int
aud_eal_mb(uint64_t lines)
{
	return (unsigned int)RTE_MIN(256 + lines / 2000, (uint64_t)UINT32_MAX);
}

/* Append one zeroed element to *arr (n elements, room for *cap). */
static void *
vec_push(void *arr, size_t *n, size_t *cap, size_t size)
{
	void **a = arr;

	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		void *p = realloc(*a, ncap * size);

		if (p == NULL)
			return NULL;
		*a = p;
		*cap = ncap;
	}
	memset((char *)*a + *n * size, 0, size);
	return (char *)*a + (*n)++ * size;
}

/*
 * Indexes from a 64-bit key (a tenant, sink or device id) to an array
 * position: DPDK's rte_hash, the table the router itself uses, single-threaded
 * here. An rte_hash does not grow, so each is created with room for every key
 * it can hold at once; with the extendable bucket table that room is
 * guaranteed, and a full table says -ENOSPC. Keys of 8 bytes would be
 * compared with memcmp(); idx_key_cmp() compares them as one word.
 */
static int
idx_key_cmp(const void *a, const void *b, size_t len __rte_unused)
{
	uint64_t x, y;

	memcpy(&x, a, sizeof(x));
	memcpy(&y, b, sizeof(y));
	return x != y;
}

static struct rte_hash *
idx_create(const char *what, uint32_t entries)
{
	static unsigned int seq;
	char name[RTE_HASH_NAMESIZE];
	struct rte_hash_parameters p = {
		.name = name,
		.entries = RTE_MAX(entries, AUD_IDX_MIN),
		.key_len = sizeof(uint64_t),
		.hash_func = rte_hash_crc,
		.hash_func_init_val = 0,
		.socket_id = SOCKET_ID_ANY,
		.extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE,
	};
	struct rte_hash *h;

	snprintf(name, sizeof(name), "aud_%.12s_%u", what, seq++);
	h = rte_hash_create(&p);
	if (h != NULL)
		rte_hash_set_cmp_func(h, idx_key_cmp);
	return h;
}

static bool
idx_get(const struct rte_hash *h, uint64_t key, uint32_t *val)
{
	void *data;

	if (rte_hash_lookup_data(h, &key, &data) < 0)
		return false;
	*val = (uint32_t)(uintptr_t)data;
	return true;
}

/* Insert or replace: 0, or -ENOSPC when the table is full. */
static int
idx_put(struct rte_hash *h, uint64_t key, uint32_t val)
{
	return rte_hash_add_key_data(h, &key, (void *)(uintptr_t)val);
}

static void
idx_del(struct rte_hash *h, uint64_t key)
{
	rte_hash_del_key(h, &key);
}

/* ---- the model of the mapping file --------------------------------------- */

struct a_tenant {
	uint32_t id;
	uint32_t max_devices;     /* 0: no limit */
	uint32_t n_devices;
	uint32_t n_sinks;
};

struct a_sink {
	uint32_t id;
	uint32_t tenant;
	uint8_t family;
	uint8_t addr[16];
	uint16_t port;
	uint32_t refs;            /* device mappings that list it */
	bool live;
	uint64_t copies;
};

struct a_device {
	uint32_t tenant;
	uint32_t epoch;
	uint8_t n_sinks;
	uint32_t sinks[FG_MAX_SINKS];   /* indexes into model.sink */
};

/* A sink's destination, for finding sinks by (family, address, port). */
struct a_endpoint {
	uint8_t family;
	uint8_t addr[16];
	uint16_t port;
	uint32_t sink;            /* index into model.sink */
};

struct model {
	struct a_tenant *tenant;
	size_t n_tenant, cap_tenant;
	struct a_sink *sink;
	size_t n_sink, cap_sink;
	struct a_device *device;
	size_t n_device, cap_device;
	struct rte_hash *tenants; /* tenant id -> index */
	struct rte_hash *sinks;   /* sink id -> index */
	struct rte_hash *devices; /* device id -> index */
	struct a_endpoint *ep;    /* live sinks, sorted; built at the end */
	size_t n_ep;
	char why[256];            /* the last refusal */
};

static int
refuse(struct model *m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m->why, sizeof(m->why), fmt, ap);
	va_end(ap);
	return -1;
}

static struct a_tenant *
tenant_get(struct model *m, uint32_t id)
{
	uint32_t i;

	return idx_get(m->tenants, id, &i) ? &m->tenant[i] : NULL;
}

static struct a_sink *
sink_get(struct model *m, uint32_t id)
{
	uint32_t i;

	return idx_get(m->sinks, id, &i) ? &m->sink[i] : NULL;
}

static struct a_device *
device_get(struct model *m, uint64_t id)
{
	uint32_t i;

	return idx_get(m->devices, id, &i) ? &m->device[i] : NULL;
}

/* Resolve a mapping's sink ids for tenant into out (sink indexes). */
static int
sinks_check(struct model *m, uint32_t tenant, uint64_t device,
	    const uint32_t *ids, uint8_t n, uint32_t *out)
{
	for (uint8_t i = 0; i < n; i++) {
		uint32_t idx;

		for (uint8_t k = 0; k < i; k++)
			if (ids[k] == ids[i])
				return refuse(m, "device 0x%016" PRIx64 ": sink %" PRIu32 " is listed twice",
					      device, ids[i]);
		if (!idx_get(m->sinks, ids[i], &idx))
			return refuse(m, "device 0x%016" PRIx64 ": sink %" PRIu32 " does not exist",
				      device, ids[i]);
		if (m->sink[idx].tenant != tenant)
			return refuse(m, "device 0x%016" PRIx64 ": sink %" PRIu32 " belongs to tenant %" PRIu32 ", not to tenant %" PRIu32,
				      device, ids[i], m->sink[idx].tenant, tenant);
		out[i] = idx;
	}
	return 0;
}

static void
sink_refs(struct model *m, const struct a_device *d, int delta)
{
	for (uint8_t i = 0; i < d->n_sinks; i++)
		m->sink[d->sinks[i]].refs += (uint32_t)delta;
}

static int
op_tenant(struct model *m, const struct fg_tenant_spec *s)
{
	struct a_tenant *t;

	if (tenant_get(m, s->tenant_id) != NULL)
		return refuse(m, "tenant %" PRIu32 " already exists", s->tenant_id);
	t = vec_push(&m->tenant, &m->n_tenant, &m->cap_tenant, sizeof(*t));
	if (t == NULL || idx_put(m->tenants, s->tenant_id, (uint32_t)(m->n_tenant - 1)))
		return refuse(m, "out of memory");
	t->id = s->tenant_id;
	t->max_devices = s->max_devices;
	return 0;
}

static int
op_sink(struct model *m, const struct fg_sink_spec *s)
{
	struct a_tenant *t = tenant_get(m, s->tenant_id);
	struct a_sink *k = sink_get(m, s->sink_id);

	if (k != NULL)
		return refuse(m, "sink %" PRIu32 " already exists (owned by tenant %" PRIu32 ")",
			      s->sink_id, k->tenant);
	if (t == NULL)
		return refuse(m, "sink %" PRIu32 ": tenant %" PRIu32 " does not exist",
			      s->sink_id, s->tenant_id);
	t->n_sinks++;
	k = vec_push(&m->sink, &m->n_sink, &m->cap_sink, sizeof(*k));
	if (k == NULL || idx_put(m->sinks, s->sink_id, (uint32_t)(m->n_sink - 1)))
		return refuse(m, "out of memory");
	k->id = s->sink_id;
	k->tenant = s->tenant_id;
	k->family = s->family;
	memcpy(k->addr, s->addr, sizeof(k->addr));
	k->port = s->port;
	k->live = true;
	return 0;
}

static int
op_device(struct model *m, const struct fg_device_spec *s)
{
	struct a_tenant *t = tenant_get(m, s->tenant_id);
	struct a_device *cur = device_get(m, s->device_id);
	uint32_t sinks[FG_MAX_SINKS];

	if (t == NULL)
		return refuse(m, "device 0x%016" PRIx64 ": tenant %" PRIu32 " does not exist",
			      s->device_id, s->tenant_id);
	if (cur != NULL && cur->tenant != s->tenant_id)
		return refuse(m, "device 0x%016" PRIx64 " is held by tenant %" PRIu32 "; a device has one owner (use move)",
			      s->device_id, cur->tenant);
	if (cur != NULL && s->epoch < cur->epoch)
		return refuse(m, "device 0x%016" PRIx64 ": epoch %" PRIu32 " is lower than the current %" PRIu32,
			      s->device_id, s->epoch, cur->epoch);
	if (cur == NULL && t->max_devices != 0 && t->n_devices >= t->max_devices)
		return refuse(m, "device 0x%016" PRIx64 ": tenant %" PRIu32 " already holds its max_devices (%" PRIu32 ")",
			      s->device_id, s->tenant_id, t->max_devices);
	if (sinks_check(m, s->tenant_id, s->device_id, s->sinks, s->n_sinks, sinks))
		return -1;
	if (cur == NULL) {
		cur = vec_push(&m->device, &m->n_device, &m->cap_device, sizeof(*cur));
		if (cur == NULL ||
		    idx_put(m->devices, s->device_id, (uint32_t)(m->n_device - 1)))
			return refuse(m, "out of memory");
		t->n_devices++;
	} else {
		sink_refs(m, cur, -1);
	}
	cur->tenant = s->tenant_id;
	cur->epoch = s->epoch;
	cur->n_sinks = s->n_sinks;
	memcpy(cur->sinks, sinks, sizeof(sinks));
	sink_refs(m, cur, +1);
	return 0;
}

static int
op_move(struct model *m, const struct fg_move_spec *s)
{
	struct a_device *cur = device_get(m, s->device_id);
	struct a_tenant *to = tenant_get(m, s->to);
	uint32_t sinks[FG_MAX_SINKS];

	if (cur == NULL)
		return refuse(m, "move of device 0x%016" PRIx64 ": no tenant holds it, not tenant %" PRIu32,
			      s->device_id, s->from);
	if (cur->tenant != s->from)
		return refuse(m, "move of device 0x%016" PRIx64 ": it is held by tenant %" PRIu32 ", not by tenant %" PRIu32,
			      s->device_id, cur->tenant, s->from);
	if (s->to == s->from)
		return refuse(m, "move of device 0x%016" PRIx64 ": from and to are both tenant %" PRIu32,
			      s->device_id, s->to);
	if (to == NULL)
		return refuse(m, "move of device 0x%016" PRIx64 ": tenant %" PRIu32 " does not exist",
			      s->device_id, s->to);
	if (s->epoch <= cur->epoch)
		return refuse(m, "move of device 0x%016" PRIx64 ": epoch %" PRIu32 " is not larger than the current %" PRIu32,
			      s->device_id, s->epoch, cur->epoch);
	if (to->max_devices != 0 && to->n_devices >= to->max_devices)
		return refuse(m, "move of device 0x%016" PRIx64 ": tenant %" PRIu32 " already holds its max_devices (%" PRIu32 ")",
			      s->device_id, s->to, to->max_devices);
	if (sinks_check(m, s->to, s->device_id, s->sinks, s->n_sinks, sinks))
		return -1;
	tenant_get(m, s->from)->n_devices--;
	to->n_devices++;
	sink_refs(m, cur, -1);
	cur->tenant = s->to;
	cur->epoch = s->epoch;
	cur->n_sinks = s->n_sinks;
	memcpy(cur->sinks, sinks, sizeof(sinks));
	sink_refs(m, cur, +1);
	return 0;
}

static int
op_del_device(struct model *m, uint32_t tenant, uint64_t device)
{
	struct a_device *cur = device_get(m, device);

	if (cur == NULL || cur->tenant != tenant)
		return refuse(m, "device 0x%016" PRIx64 " is not held by tenant %" PRIu32,
			      device, tenant);
	sink_refs(m, cur, -1);
	tenant_get(m, tenant)->n_devices--;
	idx_del(m->devices, device);
	return 0;
}

static int
op_del_sink(struct model *m, uint32_t id)
{
	struct a_sink *k = sink_get(m, id);

	if (k == NULL)
		return refuse(m, "sink %" PRIu32 " does not exist", id);
	if (k->refs != 0)
		return refuse(m, "sink %" PRIu32 " is in use by %" PRIu32 " device mappings",
			      id, k->refs);
	tenant_get(m, k->tenant)->n_sinks--;
	k->live = false;
	idx_del(m->sinks, id);
	return 0;
}

static int
op_del_tenant(struct model *m, uint32_t id)
{
	struct a_tenant *t = tenant_get(m, id);

	if (t == NULL)
		return refuse(m, "tenant %" PRIu32 " does not exist", id);
	if (t->n_devices != 0 || t->n_sinks != 0)
		return refuse(m, "tenant %" PRIu32 " is in use: it still holds %" PRIu32 " devices and %" PRIu32 " sinks",
			      id, t->n_devices, t->n_sinks);
	idx_del(m->tenants, id);
	return 0;
}

static int
model_apply(struct model *m, const struct fg_op *op)
{
	switch (op->kind) {
	case FG_OP_TENANT:
		return op_tenant(m, &op->tenant);
	case FG_OP_SINK:
		return op_sink(m, &op->sink);
	case FG_OP_DEVICE:
		return op_device(m, &op->device);
	case FG_OP_MOVE:
		return op_move(m, &op->move);
	case FG_OP_DEL_DEVICE:
		return op_del_device(m, op->del_device.tenant_id,
				     op->del_device.device_id);
	case FG_OP_DEL_SINK:
		return op_del_sink(m, op->id);
	case FG_OP_STORE_REVISION:
		return 0;       /* a follower's bookkeeping: no ownership */
	case FG_OP_SUSPEND:
	case FG_OP_RESUME:
		/* Suspension drops frames; it changes no ownership. */
		return tenant_get(m, op->id) ? 0
			: refuse(m, "tenant %" PRIu32 " does not exist", op->id);
	case FG_OP_DEL_TENANT:
		return op_del_tenant(m, op->id);
	}
	return refuse(m, "unknown operation kind %d", (int)op->kind);
}

static int
ep_cmp(const void *a, const void *b)
{
	const struct a_endpoint *x = a, *y = b;
	int c;

	if (x->family != y->family)
		return x->family < y->family ? -1 : 1;
	c = memcmp(x->addr, y->addr, sizeof(x->addr));
	if (c != 0)
		return c;
	if (x->port != y->port)
		return x->port < y->port ? -1 : 1;
	return 0;
}

/* Index the live sinks by destination. */
static int
model_index(struct model *m)
{
	m->ep = calloc(m->n_sink ? m->n_sink : 1, sizeof(*m->ep));
	if (m->ep == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < m->n_sink; i++) {
		const struct a_sink *k = &m->sink[i];

		if (!k->live)
			continue;
		m->ep[m->n_ep].family = k->family;
		memcpy(m->ep[m->n_ep].addr, k->addr, sizeof(k->addr));
		m->ep[m->n_ep].port = k->port;
		m->ep[m->n_ep].sink = (uint32_t)i;
		m->n_ep++;
	}
	qsort(m->ep, m->n_ep, sizeof(*m->ep), ep_cmp);
	return 0;
}

/*
 * The sink at a destination: of several sinks sharing it, one of the frame's
 * tenant if there is one. NULL when none.
 */
static struct a_sink *
model_sink_at(struct model *m, uint8_t family, const uint8_t *addr,
	      uint16_t port, uint32_t tenant)
{
	struct a_endpoint key = { .family = family, .port = port };
	struct a_sink *found = NULL;
	size_t lo = 0, hi = m->n_ep;

	memcpy(key.addr, addr, family == AF_INET ? 4 : 16);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ep_cmp(&m->ep[mid], &key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < m->n_ep && ep_cmp(&m->ep[lo], &key) == 0; lo++) {
		struct a_sink *k = &m->sink[m->ep[lo].sink];

		if (found == NULL || k->tenant == tenant)
			found = k;
		if (k->tenant == tenant)
			break;
	}
	return found;
}

static void
model_free(struct model *m)
{
	free(m->tenant);
	free(m->sink);
	free(m->device);
	free(m->ep);
	rte_hash_free(m->tenants);
	rte_hash_free(m->sinks);
	rte_hash_free(m->devices);
}

/*
 * The mapping file, read once before the model is built, within the limits
 * of mapread.h (a directory, /dev/zero or an endless pipe is refused): each
 * line adds at most one tenant, sink or device, so no index of the model
 * ever holds more keys than its line count.
 */
static int
read_mappings(const char *path, char **text, size_t *len, uint64_t *lines)
{
	struct fg_err err = { 0 };
	unsigned long n;

	if (fg_mapfile_read(path, text, len, &n, &err) != 0) {
		char opening[512];

		/* A file that cannot be opened is said as this tool always
		 * said it; the reader's own refusals as the reader says them. */
		snprintf(opening, sizeof(opening), "%s: %s", path, strerror(err.code));
		if (strcmp(err.msg, opening) == 0)
			fprintf(stderr, "%s: %s: cannot open: %s\n", prog, path, strerror(err.code));
		else
			fprintf(stderr, "%s: %s\n", prog, err.msg);
		return -1;
	}
	*lines = n;
	return 0;
}

/* Empty indexes with room for a file of `lines` lines. */
static int
model_init(struct model *m, const char *path, uint64_t lines)
{
	uint32_t room = (uint32_t)RTE_MIN(lines, (uint64_t)RTE_HASH_ENTRIES_MAX);

	if (lines > RTE_HASH_ENTRIES_MAX) {
		fprintf(stderr, "%s: %s: %" PRIu64 " lines, more than the %u this tool can index\n",
			prog, path, lines, (unsigned int)RTE_HASH_ENTRIES_MAX);
		return -1;
	}
	m->tenants = idx_create("tenants", room);
	m->sinks = idx_create("sinks", room);
	m->devices = idx_create("devices", room);
	if (m->tenants == NULL || m->sinks == NULL || m->devices == NULL) {
		fprintf(stderr, "%s: %s: no memory to index %" PRIu64 " lines: %s\n",
			prog, path, lines, rte_strerror(rte_errno));
		return -1;
	}
	return 0;
}

static int
load_mappings(struct model *m, const char *path, const char *text, size_t len)
{
	const char *p = text, *end = text + len;
	unsigned long lineno = 0;
	int ret = 0;

	while (p < end && ret == 0) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		struct fg_err err = { 0 };
		struct fg_op op;

		lineno++;
		if (fg_mapline_blank(p, l)) {
			p += l + 1;
			continue;
		}
		if (fg_op_parse(p, l, &op, &err) != 0) {
			fprintf(stderr, "%s:%lu: %s\n", path, lineno, err.msg);
			ret = -1;
		} else if (model_apply(m, &op) != 0) {
			fprintf(stderr, "%s:%lu: %s\n", path, lineno, m->why);
			ret = -1;
		}
		p += l + 1;
	}
	if (ret == 0 && model_index(m) != 0) {
		fprintf(stderr, "%s: %s: out of memory\n", prog, path);
		ret = -1;
	}
	return ret;
}

/* ---- the copies ---------------------------------------------------------- */

/* Per claimed tenant (from frame headers, known to the model or not). */
struct t_count {
	uint32_t tenant;
	uint64_t copies;
};

struct audit {
	uint64_t copies;
	uint64_t ipv4, ipv6;
	uint64_t unreadable;
	uint64_t unknown_sink;
	uint64_t sink_other_tenant;
	uint64_t device_not_held;
	uint64_t cross;
	uint64_t ipv4_cksum_bad;
	uint64_t udp_cksum_bad;
	uint64_t udp_cksum_zero;          /* IPv4 copies without a checksum */
	uint64_t shown;
	struct t_count *per_tenant;
	size_t n_per_tenant, cap_per_tenant;
	struct rte_hash *per_tenant_idx;  /* tenant -> index */
	uint32_t per_tenant_room;         /* keys per_tenant_idx can hold */
	bool json;
	const char *capture;
};

static void
finding(struct audit *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Say what is wrong with copy number a->copies - 1 (the first few only). */
static void
finding(struct audit *a, const char *fmt, ...)
{
	va_list ap;

	if (a->json || a->shown++ >= AUD_SHOW_MAX)
		return;
	fprintf(stderr, "%s: copy %" PRIu64 ": ", a->capture, a->copies - 1);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/*
 * The index of claimed tenants starts with room for the mapping file's
 * tenants; a capture may claim any others, so it is rebuilt twice as large
 * when full.
 */
static int
per_tenant_init(struct audit *a, uint32_t room)
{
	struct rte_hash *h;

	room = RTE_MAX(room, AUD_IDX_MIN);
	if (room > RTE_HASH_ENTRIES_MAX)
		return -ENOMEM;
	h = idx_create("per_tenant", room);
	if (h == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < a->n_per_tenant; i++) {
		if (idx_put(h, a->per_tenant[i].tenant, (uint32_t)i) != 0) {
			rte_hash_free(h);
			return -ENOMEM;
		}
	}
	rte_hash_free(a->per_tenant_idx);
	a->per_tenant_idx = h;
	a->per_tenant_room = room;
	return 0;
}

static int
count_tenant(struct audit *a, uint32_t tenant)
{
	struct t_count *c;
	uint32_t i;

	if (idx_get(a->per_tenant_idx, tenant, &i)) {
		a->per_tenant[i].copies++;
		return 0;
	}
	if (a->n_per_tenant >= a->per_tenant_room &&
	    per_tenant_init(a, 2 * a->per_tenant_room) != 0)
		return -ENOMEM;
	c = vec_push(&a->per_tenant, &a->n_per_tenant, &a->cap_per_tenant, sizeof(*c));
	if (c == NULL ||
	    idx_put(a->per_tenant_idx, tenant, (uint32_t)(a->n_per_tenant - 1)) != 0)
		return -ENOMEM;
	c->tenant = tenant;
	c->copies = 1;
	return 0;
}

/* A copy not readable as a frame to a sink; returns 0 (audited). */
static int
unreadable(struct audit *a, const char *why)
{
	a->unreadable++;
	a->cross++;
	finding(a, "unreadable (%s): counted as a cross-tenant delivery", why);
	return 0;
}

/*
 * One copy; p is a private, writable copy of its caplen bytes (checksums are
 * recomputed in place with the field zeroed, as the DPDK helpers expect).
 */
static int
audit_copy(struct audit *a, struct model *m, uint8_t *p, uint32_t caplen,
	   uint32_t wirelen)
{
	const struct rte_ether_hdr *eth = (const void *)p;
	struct rte_udp_hdr *udp;
	const struct fg_frame_hdr *fh;
	uint32_t off = sizeof(*eth), l4_avail, udp_len;
	uint16_t type;
	uint8_t family;
	const uint8_t *dst;
	char addr[INET6_ADDRSTRLEN];

	a->copies++;
	if (caplen < wirelen)
		return unreadable(a, "cut short in the capture");
	if (caplen < off)
		return unreadable(a, "shorter than an Ethernet header");
	type = rte_be_to_cpu_16(eth->ether_type);
	if (type == RTE_ETHER_TYPE_VLAN) {
		const struct rte_vlan_hdr *vh = (const void *)(p + off);

		if (caplen < off + sizeof(*vh))
			return unreadable(a, "VLAN tag cut short");
		type = rte_be_to_cpu_16(vh->eth_proto);
		off += sizeof(*vh);
	}

	if (type == RTE_ETHER_TYPE_IPV4) {
		struct rte_ipv4_hdr *ip = (void *)(p + off);
		uint16_t sum, ihl, total;

		if (caplen < off + sizeof(*ip) || (ip->version_ihl >> 4) != 4)
			return unreadable(a, "IPv4 header cut short or not version 4");
		ihl = rte_ipv4_hdr_len(ip);
		total = rte_be_to_cpu_16(ip->total_length);
		if (ihl < sizeof(*ip) || caplen < off + ihl || total < ihl ||
		    caplen < off + total)
			return unreadable(a, "IPv4 header or total length inconsistent");
		if (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG |
							   RTE_IPV4_HDR_OFFSET_MASK))
			return unreadable(a, "IPv4 fragment");
		if (ip->next_proto_id != IPPROTO_UDP)
			return unreadable(a, "not UDP");
		a->ipv4++;
		sum = ip->hdr_checksum;
		ip->hdr_checksum = 0;
		if (rte_ipv4_cksum(ip) != sum) {
			a->ipv4_cksum_bad++;
			finding(a, "IPv4 header checksum 0x%04x, should be 0x%04x",
				rte_be_to_cpu_16(sum), rte_be_to_cpu_16(rte_ipv4_cksum(ip)));
		}
		ip->hdr_checksum = sum;
		udp = (void *)(p + off + ihl);
		l4_avail = total - ihl;
		if (l4_avail < sizeof(*udp))
			return unreadable(a, "no room for a UDP header");
		udp_len = rte_be_to_cpu_16(udp->dgram_len);
		if (udp_len < sizeof(*udp) || udp_len > l4_avail)
			return unreadable(a, "UDP length inconsistent");
		sum = udp->dgram_cksum;
		if (sum == 0) {
			a->udp_cksum_zero++;
		} else {
			/* The helper sums the IP payload: make it the datagram. */
			ip->total_length = rte_cpu_to_be_16((uint16_t)(ihl + udp_len));
			udp->dgram_cksum = 0;
			if (rte_ipv4_udptcp_cksum(ip, udp) != sum) {
				a->udp_cksum_bad++;
				finding(a, "UDP checksum 0x%04x, should be 0x%04x",
					rte_be_to_cpu_16(sum),
					rte_be_to_cpu_16(rte_ipv4_udptcp_cksum(ip, udp)));
			}
			udp->dgram_cksum = sum;
			ip->total_length = rte_cpu_to_be_16(total);
		}
		family = AF_INET;
		dst = (const uint8_t *)&ip->dst_addr;
	} else if (type == RTE_ETHER_TYPE_IPV6) {
		struct rte_ipv6_hdr *ip6 = (void *)(p + off);
		uint16_t sum, plen;

		if (caplen < off + sizeof(*ip6) ||
		    (rte_be_to_cpu_32(ip6->vtc_flow) >> 28) != 6)
			return unreadable(a, "IPv6 header cut short or not version 6");
		plen = rte_be_to_cpu_16(ip6->payload_len);
		if (caplen < off + sizeof(*ip6) + plen)
			return unreadable(a, "IPv6 payload length beyond the packet");
		if (ip6->proto != IPPROTO_UDP)
			return unreadable(a, "not UDP right after the IPv6 header");
		a->ipv6++;
		udp = (void *)(p + off + sizeof(*ip6));
		l4_avail = plen;
		if (l4_avail < sizeof(*udp))
			return unreadable(a, "no room for a UDP header");
		udp_len = rte_be_to_cpu_16(udp->dgram_len);
		if (udp_len < sizeof(*udp) || udp_len > l4_avail)
			return unreadable(a, "UDP length inconsistent");
		/* Over IPv6 a checksum of 0 is wrong (RFC 8200 8.1). */
		sum = udp->dgram_cksum;
		ip6->payload_len = rte_cpu_to_be_16((uint16_t)udp_len);
		udp->dgram_cksum = 0;
		if (rte_ipv6_udptcp_cksum(ip6, udp) != sum) {
			a->udp_cksum_bad++;
			finding(a, "UDP checksum 0x%04x over IPv6, should be 0x%04x",
				rte_be_to_cpu_16(sum),
				rte_be_to_cpu_16(rte_ipv6_udptcp_cksum(ip6, udp)));
		}
		udp->dgram_cksum = sum;
		ip6->payload_len = rte_cpu_to_be_16(plen);
		family = AF_INET6;
		dst = ip6->dst_addr;
	} else {
		return unreadable(a, "neither IPv4 nor IPv6");
	}

	if (udp_len < sizeof(*udp) + FG_HDR_LEN)
		return unreadable(a, "no room for a frame header");
	fh = (const void *)(udp + 1);

	uint32_t tenant = rte_be_to_cpu_32(fh->tenant_id);
	uint64_t device = rte_be_to_cpu_64(fh->device_id);
	uint16_t port = rte_be_to_cpu_16(udp->dst_port);
	struct a_sink *k = model_sink_at(m, family, dst, port, tenant);
	struct a_device *d = device_get(m, device);

	if (count_tenant(a, tenant) != 0)
		return -ENOMEM;
	inet_ntop(family, dst, addr, sizeof(addr));
	if (k == NULL) {
		a->unknown_sink++;
		a->cross++;
		finding(a, "frame of tenant %" PRIu32 " device 0x%016" PRIx64 " sent to %s%s%s:%u, which is no sink",
			tenant, device, family == AF_INET6 ? "[" : "", addr,
			family == AF_INET6 ? "]" : "", port);
		return 0;
	}
	k->copies++;
	if (k->tenant != tenant) {
		a->sink_other_tenant++;
		a->cross++;
		finding(a, "frame of tenant %" PRIu32 " device 0x%016" PRIx64 " sent to sink %" PRIu32 " of tenant %" PRIu32,
			tenant, device, k->id, k->tenant);
	} else if (d == NULL || d->tenant != tenant) {
		a->device_not_held++;
		a->cross++;
		if (d == NULL)
			finding(a, "frame of tenant %" PRIu32 " device 0x%016" PRIx64 " sent to sink %" PRIu32 ", but no tenant holds that device",
				tenant, device, k->id);
		else
			finding(a, "frame of tenant %" PRIu32 " device 0x%016" PRIx64 " sent to sink %" PRIu32 ", but tenant %" PRIu32 " holds that device",
				tenant, device, k->id, d->tenant);
	}
	return 0;
}

static int
t_count_cmp(const void *a, const void *b)
{
	const struct t_count *x = a, *y = b;

	if (x->copies != y->copies)
		return x->copies > y->copies ? -1 : 1;
	return x->tenant < y->tenant ? -1 : x->tenant > y->tenant;
}

static void
report(const struct audit *a, const struct model *m, const char *mappings)
{
	size_t top = RTE_MIN(a->n_per_tenant, (size_t)AUD_TOP);
	uint64_t reached = 0;

	for (size_t i = 0; i < m->n_sink; i++)
		reached += m->sink[i].live && m->sink[i].copies != 0;

	if (a->json) {
		json_t *o = json_object(), *tl = json_array();
		char *s;

		json_object_set_new(o, "capture", json_string(a->capture));
		json_object_set_new(o, "mappings", json_string(mappings));
		json_object_set_new(o, "copies", json_integer((json_int_t)a->copies));
		json_object_set_new(o, "ipv4", json_integer((json_int_t)a->ipv4));
		json_object_set_new(o, "ipv6", json_integer((json_int_t)a->ipv6));
		json_object_set_new(o, "tenants_in_copies", json_integer((json_int_t)a->n_per_tenant));
		for (size_t i = 0; i < top; i++)
			json_array_append_new(tl, json_pack("{s:I, s:I}",
				"tenant", (json_int_t)a->per_tenant[i].tenant,
				"copies", (json_int_t)a->per_tenant[i].copies));
		json_object_set_new(o, "top_tenants", tl);
		json_object_set_new(o, "sinks", json_integer((json_int_t)m->n_ep));
		json_object_set_new(o, "sinks_reached", json_integer((json_int_t)reached));
		json_object_set_new(o, "unreadable", json_integer((json_int_t)a->unreadable));
		json_object_set_new(o, "unknown_sink", json_integer((json_int_t)a->unknown_sink));
		json_object_set_new(o, "sink_other_tenant", json_integer((json_int_t)a->sink_other_tenant));
		json_object_set_new(o, "device_not_held", json_integer((json_int_t)a->device_not_held));
		json_object_set_new(o, "cross_tenant", json_integer((json_int_t)a->cross));
		json_object_set_new(o, "ipv4_cksum_bad", json_integer((json_int_t)a->ipv4_cksum_bad));
		json_object_set_new(o, "udp_cksum_bad", json_integer((json_int_t)a->udp_cksum_bad));
		json_object_set_new(o, "udp_cksum_zero", json_integer((json_int_t)a->udp_cksum_zero));
		s = json_dumps(o, JSON_COMPACT);
		if (s != NULL)
			puts(s);
		free(s);
		json_decref(o);
		return;
	}
	printf("mappings: %s (final state: %zu sinks, %zu devices)\n", mappings,
	       m->n_ep, (size_t)rte_hash_count(m->devices));
	printf("capture: %s\n", a->capture);
	printf("copies read: %" PRIu64 " (IPv4 %" PRIu64 ", IPv6 %" PRIu64 ")\n",
	       a->copies, a->ipv4, a->ipv6);
	printf("copies per tenant (top %zu of %zu):\n", top, a->n_per_tenant);
	for (size_t i = 0; i < top; i++)
		printf("  tenant %-10" PRIu32 " %12" PRIu64 "\n",
		       a->per_tenant[i].tenant, a->per_tenant[i].copies);
	printf("sinks reached: %" PRIu64 " of %zu\n", reached, m->n_ep);
	printf("IPv4 header checksum wrong: %" PRIu64 "\n", a->ipv4_cksum_bad);
	printf("UDP checksum wrong: %" PRIu64 " (IPv4 copies without one: %" PRIu64 ")\n",
	       a->udp_cksum_bad, a->udp_cksum_zero);
	printf("cross-tenant, by cause:\n");
	printf("  to no sink: %" PRIu64 "\n", a->unknown_sink);
	printf("  to a sink of another tenant: %" PRIu64 "\n", a->sink_other_tenant);
	printf("  of a device the tenant does not hold: %" PRIu64 "\n", a->device_not_held);
	printf("  unreadable: %" PRIu64 "\n", a->unreadable);
	printf("cross-tenant deliveries: %" PRIu64 "\n", a->cross);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mappings", required_argument, NULL, 'm' },
		{ "capture", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	static uint8_t pkt[AUD_PKT_MAX];
	const char *mappings = NULL;
	struct model m = { 0 };
	struct audit a = { 0 };
	char errbuf[PCAP_ERRBUF_SIZE];
	struct pcap_pkthdr *h;
	const u_char *data;
	uint64_t lines;
	char *map_text = NULL;
	size_t map_len = 0;
	cpu_set_t cpus;
	pcap_t *pc;
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'm': mappings = optarg; break;
		case 'c': a.capture = optarg; break;
		case 'j': a.json = true; break;
		case 'h':
			usage(stdout);
			return AUD_EXIT_CLEAN;
		default:
			fprintf(stderr, "Try '%s --help'.\n", prog);
			return AUD_EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "%s: unexpected argument \"%s\" (options only; see --help).\n",
			prog, argv[optind]);
		return AUD_EXIT_USAGE;
	}
	if (mappings == NULL || a.capture == NULL) {
		fprintf(stderr, "%s: --mappings and --capture are both required (see --help).\n",
			prog);
		return AUD_EXIT_USAGE;
	}

	/* Room for the model first: the indexes are sized from the line count,
	 * and DPDK's memory from that. */
	if (read_mappings(mappings, &map_text, &map_len, &lines) != 0)
		return AUD_EXIT_INPUT;
	/* EAL pins this thread to one CPU; the tool uses no per-lcore state,
	 * so it runs where it did before, like any other program. */
	if (sched_getaffinity(0, sizeof(cpus), &cpus) != 0)
		CPU_ZERO(&cpus);
	if (fg_eal_quick_start("fgaudit", aud_eal_mb(lines)) != 0) {
		free(map_text);
		return AUD_EXIT_INPUT;
	}
	if (CPU_COUNT(&cpus) != 0)
		sched_setaffinity(0, sizeof(cpus), &cpus);
	if (model_init(&m, mappings, lines) != 0 ||
	    load_mappings(&m, mappings, map_text, map_len) != 0)
		goto input_error;
	free(map_text);
	map_text = NULL;
	if (per_tenant_init(&a, (uint32_t)m.n_tenant) != 0) {
		fprintf(stderr, "%s: %s: out of memory\n", prog, mappings);
		goto input_error;
	}
	pc = pcap_open_offline(a.capture, errbuf);
	if (pc == NULL) {
		/* libpcap names the file in some messages, not in others. */
		if (strncmp(errbuf, a.capture, strlen(a.capture)) == 0)
			fprintf(stderr, "%s: %s\n", prog, errbuf);
		else
			fprintf(stderr, "%s: %s: %s\n", prog, a.capture, errbuf);
		goto input_error;
	}
	if (pcap_datalink(pc) != DLT_EN10MB) {
		fprintf(stderr, "%s: %s: link type %s, not Ethernet\n", prog, a.capture,
			pcap_datalink_val_to_name(pcap_datalink(pc)));
		pcap_close(pc);
		goto input_error;
	}
	while ((ret = pcap_next_ex(pc, &h, &data)) == 1) {
		uint32_t len = RTE_MIN(h->caplen, (uint32_t)sizeof(pkt));

		memcpy(pkt, data, len);
		if (audit_copy(&a, &m, pkt, len, h->len) != 0)
			break;
	}
	if (ret != PCAP_ERROR_BREAK) {
		if (ret == 1)
			fprintf(stderr, "%s: %s: out of memory\n", prog, a.capture);
		else
			fprintf(stderr, "%s: %s: after %" PRIu64 " copies: %s\n", prog,
				a.capture, a.copies, pcap_geterr(pc));
		pcap_close(pc);
		goto input_error;
	}
	pcap_close(pc);

	qsort(a.per_tenant, a.n_per_tenant, sizeof(*a.per_tenant), t_count_cmp);
	report(&a, &m, mappings);
	ret = a.cross == 0 && a.ipv4_cksum_bad == 0 && a.udp_cksum_bad == 0
		? AUD_EXIT_CLEAN : AUD_EXIT_FOUND;
	free(a.per_tenant);
	rte_hash_free(a.per_tenant_idx);
	model_free(&m);
	return ret;

input_error:
	/* Not a finding: the audit could not be done. */
	free(map_text);
	free(a.per_tenant);
	rte_hash_free(a.per_tenant_idx);
	model_free(&m);
	return AUD_EXIT_INPUT;
}
