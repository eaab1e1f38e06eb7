/*
 * Ownership actions (see ownership.h): check every invariant first, then
 * publish. A refused action leaves the tables and the bookkeeping as they
 * were.
 *
 * Bookkeeping the workers never read lives here, on the writer's side: which
 * tenant holds each device (the one-owner index), how many mappings and
 * sinks each tenant has, and how many mappings name each sink.
 *
 * With a shield set, each action then writes the same change into the
 * shield's BPF maps (the mirror, below), and fg_ownership_shield_check()
 * compares the two.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>

#include "ownership.h"
#include "shield.h"

/* FIFO of free slot numbers: a freed slot is reused as late as possible, so
 * counters of a deleted tenant are not mistaken for a new one's. */
struct fg_slots {
	uint32_t *q;
	uint32_t n, head, count;
};

struct fg_ownership {
	struct fg_tables *t;
	struct rte_hash *owner;          /* device_id -> tenant_id */
	uint32_t *tenant_devices;        /* [tenant slot] */
	uint32_t *tenant_sinks;          /* [tenant slot] */
	uint32_t *sink_refs;             /* [sink slot] */
	struct fg_slots tenant_slots, sink_slots;
	struct fg_shield *shield;        /* NULL: no mirror */
	uint64_t shield_faults;          /* mirror writes failed since resync */
	struct fg_err shield_last;       /* the latest of them */
	int64_t store_revision;          /* 0: not following a store */
};

#define fg_fail fg_err_set

static int
fg_slots_init(struct fg_slots *s, uint32_t n)
{
	s->q = malloc((size_t)n * sizeof(*s->q));
	if (s->q == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		s->q[i] = i;
	s->n = n;
	s->head = 0;
	s->count = n;
	return 0;
}

static uint32_t
fg_slots_get(struct fg_slots *s)
{
	uint32_t v = s->q[s->head];

	s->head = s->head + 1 == s->n ? 0 : s->head + 1;
	s->count--;
	return v;
}

static void
fg_slots_put(struct fg_slots *s, uint32_t v)
{
	uint32_t tail = s->head + s->count;

	s->q[tail >= s->n ? tail - s->n : tail] = v;
	s->count++;
}

/* Entries of the owner index: the devices, and room for those a
 * transaction replaces before the old ones leave. */
static uint32_t
fg_owner_entries(const struct fg_tables_config *cfg)
{
	return cfg->max_devices + cfg->max_devices / 8 + 1024;
}

size_t
fg_ownership_memsize(const struct fg_tables_config *cfg)
{
	return fg_hash_memsize(fg_owner_entries(cfg), sizeof(uint64_t), false);
}

struct fg_ownership *
fg_ownership_create(struct fg_tables *t)
{
	const struct fg_tables_config *cfg = &t->cfg;
	struct fg_ownership *o = calloc(1, sizeof(*o));
	char name[RTE_HASH_NAMESIZE];

	if (o == NULL)
		goto nomem;
	o->t = t;
	snprintf(name, sizeof(name), "%.16s_own", t->name);
	o->owner = rte_hash_create(&(struct rte_hash_parameters){
		.name = name,
		.entries = fg_owner_entries(cfg),
		.key_len = sizeof(uint64_t),
		.hash_func = rte_hash_crc,
		.socket_id = cfg->socket_id,
		.extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE,
	});
	o->tenant_devices = calloc(cfg->max_tenants, sizeof(uint32_t));
	o->tenant_sinks = calloc(cfg->max_tenants, sizeof(uint32_t));
	o->sink_refs = calloc(cfg->max_sinks, sizeof(uint32_t));
	if (o->owner == NULL || o->tenant_devices == NULL ||
	    o->tenant_sinks == NULL || o->sink_refs == NULL ||
	    fg_slots_init(&o->tenant_slots, cfg->max_tenants) != 0 ||
	    fg_slots_init(&o->sink_slots, cfg->max_sinks) != 0)
		goto nomem;
	return o;
nomem:
	fg_ownership_free(o);
	rte_errno = ENOMEM;
	return NULL;
}

void
fg_ownership_free(struct fg_ownership *o)
{
	if (o == NULL)
		return;
	rte_hash_free(o->owner);
	free(o->tenant_devices);
	free(o->tenant_sinks);
	free(o->sink_refs);
	free(o->tenant_slots.q);
	free(o->sink_slots.q);
	free(o);
}

struct fg_tables *
fg_ownership_tables(const struct fg_ownership *o)
{
	return o->t;
}

int64_t
fg_ownership_store_revision(const struct fg_ownership *o)
{
	return o->store_revision;
}

void
fg_ownership_set_store_revision(struct fg_ownership *o, int64_t revision)
{
	o->store_revision = revision;
}

uint32_t
fg_device_owner(const struct fg_ownership *o, uint64_t device_id)
{
	void *data;

	if (rte_hash_lookup_data(o->owner, &device_id, &data) < 0)
		return 0;
	return (uint32_t)(uintptr_t)data;
}

uint32_t
fg_tenant_device_count(const struct fg_ownership *o, uint32_t tenant_id)
{
	const struct fg_tenant *tn = fg_tables_tenant(o->t, tenant_id);

	return tn ? o->tenant_devices[tn->slot] : 0;
}

/* ---- the shield mirror ------------------------------------------------------ */

/*
 * Each action calls these after its table publish, with the entry it
 * published. A failed write is kept as a fault, never returned: the table
 * change is done and journaled, and undoing it would make the tables differ
 * from the journal. The caller sees the fault count grow and does not
 * acknowledge the change as done. Deleting what is already absent is no
 * fault: the map then holds what the tables hold.
 */
static void
fg_mirror_fault(struct fg_ownership *o, int ret, const char *map, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
fg_mirror_fault(struct fg_ownership *o, int ret, const char *map, const char *fmt, ...)
{
	char what[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	o->shield_faults++;
	fg_err_set(&o->shield_last, -ret, "shield: %s: cannot write %s: %s", what, map,
		   strerror(-ret));
}

static void
fg_mirror_tenant(struct fg_ownership *o, uint32_t tenant_id, bool suspended)
{
	int ret;

	if (o->shield == NULL)
		return;
	ret = fg_shield_tenant_put(o->shield, tenant_id, suspended);
	if (ret < 0)
		fg_mirror_fault(o, ret, "fg_tenants", "tenant %" PRIu32, tenant_id);
}

static void
fg_mirror_tenant_del(struct fg_ownership *o, uint32_t tenant_id)
{
	int ret;

	if (o->shield == NULL)
		return;
	ret = fg_shield_tenant_del(o->shield, tenant_id);
	if (ret < 0 && ret != -ENOENT)
		fg_mirror_fault(o, ret, "fg_tenants", "tenant %" PRIu32 " (delete)", tenant_id);
}

static int
fg_mirror_put(struct fg_shield *sh, const struct fg_device *e)
{
	return fg_shield_owner_put(sh, e->tenant_id, e->device_id, e->epoch,
				   e->has_key ? e->key : NULL);
}

static void
fg_mirror_owner(struct fg_ownership *o, const struct fg_device *e)
{
	int ret;

	if (o->shield == NULL)
		return;
	ret = fg_mirror_put(o->shield, e);
	if (ret < 0)
		fg_mirror_fault(o, ret, "fg_owners", "tenant %" PRIu32 " device 0x%016" PRIx64,
				e->tenant_id, e->device_id);
}

static void
fg_mirror_owner_del(struct fg_ownership *o, uint32_t tenant_id, uint64_t device_id)
{
	int ret;

	if (o->shield == NULL)
		return;
	ret = fg_shield_owner_del(o->shield, tenant_id, device_id);
	if (ret < 0 && ret != -ENOENT)
		fg_mirror_fault(o, ret, "fg_owners", "tenant %" PRIu32 " device 0x%016" PRIx64 " (delete)",
				tenant_id, device_id);
}

/* A move: the new owner first, then the old one goes (the order the shield's
 * README gives; a frame of the device passes the shield under either tenant
 * for that moment, and the dataplane, which never holds both, decides). A
 * map that is full cannot take the new owner before the old one leaves: then
 * the old one goes first. */
static void
fg_mirror_move(struct fg_ownership *o, const struct fg_device *e, uint32_t from)
{
	int ret;

	if (o->shield == NULL)
		return;
	ret = fg_mirror_put(o->shield, e);
	if (ret == -E2BIG) {
		fg_mirror_owner_del(o, from, e->device_id);
		fg_mirror_owner(o, e);
		return;
	}
	if (ret < 0)
		fg_mirror_fault(o, ret, "fg_owners", "tenant %" PRIu32 " device 0x%016" PRIx64,
				e->tenant_id, e->device_id);
	fg_mirror_owner_del(o, from, e->device_id);
}

void
fg_ownership_set_shield(struct fg_ownership *o, struct fg_shield *s)
{
	o->shield = s;
	o->shield_faults = 0;
	memset(&o->shield_last, 0, sizeof(o->shield_last));
}

struct fg_shield *
fg_ownership_shield(const struct fg_ownership *o)
{
	return o->shield;
}

uint64_t
fg_ownership_shield_faults(const struct fg_ownership *o, struct fg_err *last)
{
	if (last != NULL)
		*last = o->shield_last;
	return o->shield_faults;
}

int
fg_ownership_shield_resync(struct fg_ownership *o, struct fg_err *err)
{
	const struct fg_tables *t = o->t;
	const void *key;
	void *data;
	uint32_t next = 0;
	int ret;

	if (o->shield == NULL)
		return fg_fail(err, ENOENT, "this router runs without a shield");
	ret = fg_shield_clear(o->shield);
	if (ret < 0)
		return fg_fail(err, -ret, "shield: cannot empty its maps: %s", strerror(-ret));
	while (rte_hash_iterate(t->tenants, &key, &data, &next) >= 0) {
		const struct fg_tenant *e = data;

		ret = fg_shield_tenant_put(o->shield, e->tenant_id, e->suspended);
		if (ret < 0)
			return fg_fail(err, -ret, "shield: tenant %" PRIu32 ": cannot write fg_tenants: %s",
				       e->tenant_id, strerror(-ret));
	}
	next = 0;
	while (rte_hash_iterate(t->devices, &key, &data, &next) >= 0) {
		const struct fg_device *e = data;

		ret = fg_mirror_put(o->shield, e);
		if (ret < 0)
			return fg_fail(err, -ret, "shield: tenant %" PRIu32 " device 0x%016" PRIx64 ": cannot write fg_owners: %s",
				       e->tenant_id, e->device_id, strerror(-ret));
	}
	o->shield_faults = 0;
	memset(&o->shield_last, 0, sizeof(o->shield_last));
	return 0;
}

/* The maps' side of the check: walks fg_tenants and fg_owners for entries
 * the tables do not hold. */
struct fg_check_walk {
	const struct fg_ownership *o;
	fg_shield_diff_fn *fn;
	void *ctx;
	uint64_t n;
	int stop;                        /* what fn returned to stop the walk */
};

static int
fg_check_map_tenant(void *ctx, uint32_t tenant_id, const struct fg_shield_tenant *v)
{
	struct fg_check_walk *w = ctx;

	w->n++;
	if (fg_tables_tenant(w->o->t, tenant_id) != NULL)
		return 0;
	w->stop = w->fn(w->ctx, &(struct fg_shield_diff){
		.kind = FG_SHIELD_EXTRA, .tenant_id = tenant_id,
		.map_suspended = v->state != FG_SHIELD_TENANT_ACTIVE });
	return w->stop;
}

static int
fg_check_map_owner(void *ctx, uint32_t tenant_id, uint64_t device_id,
		   const struct fg_shield_owner *v)
{
	struct fg_check_walk *w = ctx;

	w->n++;
	if (fg_tables_device(w->o->t, tenant_id, device_id) != NULL)
		return 0;
	w->stop = w->fn(w->ctx, &(struct fg_shield_diff){
		.kind = FG_SHIELD_EXTRA, .tenant_id = tenant_id, .device_id = device_id,
		.map_epoch = v->epoch, .map_has_key = v->flags & FG_SHIELD_OWNER_HAS_KEY });
	return w->stop;
}

int
fg_ownership_shield_check(const struct fg_ownership *o, fg_shield_diff_fn *fn,
			  void *ctx, uint64_t counts[4], struct fg_err *err)
{
	const struct fg_tables *t = o->t;
	struct fg_check_walk w = { .o = o, .fn = fn, .ctx = ctx };
	uint64_t n[4] = { 0 };
	const void *key;
	void *data;
	uint32_t next = 0;
	int ret, stop = 0;

	if (o->shield == NULL)
		return fg_fail(err, ENOENT, "this router runs without a shield (no \"shield\" in its configuration)");
	/* The tables' side: each entry looked up in the maps. */
	while (stop == 0 && rte_hash_iterate(t->tenants, &key, &data, &next) >= 0) {
		const struct fg_tenant *e = data;
		struct fg_shield_diff d = { .tenant_id = e->tenant_id,
					    .table_suspended = e->suspended };
		struct fg_shield_tenant v;

		n[0]++;
		ret = fg_shield_tenant_get(o->shield, e->tenant_id, &v);
		if (ret < 0 && ret != -ENOENT)
			goto fail;
		d.map_suspended = ret == 0 && v.state != FG_SHIELD_TENANT_ACTIVE;
		if (ret == -ENOENT)
			d.kind = FG_SHIELD_MISSING;
		else if (d.map_suspended != d.table_suspended)
			d.kind = FG_SHIELD_DIFFERS;
		else
			continue;
		stop = fn(ctx, &d);
	}
	next = 0;
	while (stop == 0 && rte_hash_iterate(t->devices, &key, &data, &next) >= 0) {
		const struct fg_device *e = data;
		struct fg_shield_diff d = { .tenant_id = e->tenant_id, .device_id = e->device_id,
					    .table_epoch = e->epoch, .table_has_key = e->has_key };
		struct fg_shield_owner v;

		n[2]++;
		ret = fg_shield_owner_get(o->shield, e->tenant_id, e->device_id, &v);
		if (ret < 0 && ret != -ENOENT)
			goto fail;
		if (ret == -ENOENT) {
			d.kind = FG_SHIELD_MISSING;
		} else {
			d.map_epoch = v.epoch;
			d.map_has_key = v.flags & FG_SHIELD_OWNER_HAS_KEY;
			d.key_differs = d.map_has_key && e->has_key &&
					memcmp(v.key, e->key, FG_AUTH_KEY_LEN) != 0;
			if (d.map_epoch == d.table_epoch && d.map_has_key == d.table_has_key &&
			    !d.key_differs && (v.flags & ~FG_SHIELD_OWNER_HAS_KEY) == 0)
				continue;
			d.kind = FG_SHIELD_DIFFERS;
		}
		stop = fn(ctx, &d);
	}
	if (stop != 0)
		return stop;
	/* The maps' side: what the tables do not hold. A callback's stop and a
	 * map error both end a walk; w.stop tells them apart. */
	ret = fg_shield_tenant_foreach(o->shield, fg_check_map_tenant, &w);
	n[1] = w.n;
	w.n = 0;
	if (ret == 0)
		ret = fg_shield_owner_foreach(o->shield, fg_check_map_owner, &w);
	n[3] = w.n;
	if (w.stop != 0)
		return w.stop;
	if (ret < 0)
		goto fail;
	if (counts != NULL)
		memcpy(counts, n, sizeof(n));
	return 0;
fail:
	return fg_fail(err, -ret, "shield: cannot read its maps: %s", strerror(-ret));
}

/* ---- views: the facts the checks read ---------------------------------- */

/*
 * Every check reads the state through views. Outside a transaction a view is
 * read from the tables and the bookkeeping; inside one (struct fg_txn), the
 * views of what earlier operations of the transaction changed are kept in an
 * overlay and read first, so that a whole file is checked against the state
 * it would produce, without publishing anything.
 */
struct fg_tenant_view {
	bool exists, suspended;
	uint32_t max_devices, n_devices, n_sinks;
};

struct fg_sink_view {
	bool exists;
	uint32_t tenant_id, refs;
};

struct fg_device_view {
	uint32_t owner;                  /* 0: no tenant holds the device */
	uint32_t epoch;
	bool has_key;
	uint8_t key[FG_AUTH_KEY_LEN];
	uint8_t n_sinks;
	uint32_t sinks[FG_MAX_SINKS];
};

/*
 * The overlay's maps: id -> view, open addressing in the process heap. Not
 * in DPDK memory (rte_hash): the EAL's memory is sized for the tables, and a
 * load of a million lines would need an index as large again before its
 * first line is checked. These grow as operations are checked, so a lack of
 * memory shows at the operation that needed it.
 */
struct fg_vmap {
	size_t vsize;                    /* bytes of a view */
	size_t cap, n;                   /* cap: 0 or a power of 2 */
	uint64_t *keys;
	uint8_t *used;
	char *vals;
};

static size_t
fg_vmap_slot(const struct fg_vmap *m, uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ULL;
	k ^= k >> 33;
	return (size_t)k & (m->cap - 1);
}

static void *
fg_vmap_find(const struct fg_vmap *m, uint64_t key)
{
	if (m->cap == 0)
		return NULL;
	for (size_t i = fg_vmap_slot(m, key);; i = (i + 1) & (m->cap - 1)) {
		if (!m->used[i])
			return NULL;
		if (m->keys[i] == key)
			return m->vals + i * m->vsize;
	}
}

/* A free slot for key, which is not in the map. */
static void *
fg_vmap_claim(struct fg_vmap *m, uint64_t key)
{
	size_t i = fg_vmap_slot(m, key);

	while (m->used[i])
		i = (i + 1) & (m->cap - 1);
	m->used[i] = 1;
	m->keys[i] = key;
	m->n++;
	return m->vals + i * m->vsize;
}

static int
fg_vmap_grow(struct fg_vmap *m)
{
	struct fg_vmap g = { .vsize = m->vsize, .cap = m->cap ? m->cap * 2 : 64 };

	g.keys = malloc(g.cap * sizeof(*g.keys));
	g.used = calloc(g.cap, 1);
	g.vals = malloc(g.cap * g.vsize);
	if (g.keys == NULL || g.used == NULL || g.vals == NULL) {
		free(g.keys);
		free(g.used);
		free(g.vals);
		return -ENOMEM;
	}
	for (size_t i = 0; i < m->cap; i++)
		if (m->used[i])
			memcpy(fg_vmap_claim(&g, m->keys[i]), m->vals + i * m->vsize, m->vsize);
	free(m->keys);
	free(m->used);
	free(m->vals);
	*m = g;
	return 0;
}

static int
fg_vmap_put(struct fg_vmap *m, uint64_t key, const void *v)
{
	void *p = fg_vmap_find(m, key);

	if (p == NULL) {
		/* At most three quarters full: probes stay short. */
		if (4 * (m->n + 1) > 3 * m->cap && fg_vmap_grow(m) < 0)
			return -ENOMEM;
		p = fg_vmap_claim(m, key);
	}
	memcpy(p, v, m->vsize);
	return 0;
}

static void
fg_vmap_free(struct fg_vmap *m)
{
	free(m->keys);
	free(m->used);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

struct fg_txn {
	struct fg_ownership *o;
	struct fg_vmap tenants;          /* tenant_id -> struct fg_tenant_view */
	struct fg_vmap sinks;            /* sink_id -> struct fg_sink_view */
	struct fg_vmap devices;          /* device_id -> struct fg_device_view */
	int64_t tenant_net, sink_net, device_net;   /* entries added - removed */
};

static struct fg_tenant_view
fg_tenant_base(const struct fg_ownership *o, uint32_t id)
{
	const struct fg_tenant *e = fg_tables_tenant(o->t, id);
	struct fg_tenant_view v = { 0 };

	if (e != NULL) {
		v.exists = true;
		v.suspended = e->suspended;
		v.max_devices = e->max_devices;
		v.n_devices = o->tenant_devices[e->slot];
		v.n_sinks = o->tenant_sinks[e->slot];
	}
	return v;
}

static struct fg_sink_view
fg_sink_base(const struct fg_ownership *o, uint32_t id)
{
	const struct fg_sink *e = fg_tables_sink(o->t, id);
	struct fg_sink_view v = { 0 };

	if (e != NULL) {
		v.exists = true;
		v.tenant_id = e->tenant_id;
		v.refs = o->sink_refs[e->slot];
	}
	return v;
}

static struct fg_device_view
fg_device_base(const struct fg_ownership *o, uint64_t id)
{
	struct fg_device_view v = { 0 };
	const struct fg_device *d;

	v.owner = fg_device_owner(o, id);
	d = v.owner ? fg_tables_device(o->t, v.owner, id) : NULL;
	if (d != NULL) {
		v.epoch = d->epoch;
		v.has_key = d->has_key;
		memcpy(v.key, d->key, sizeof(v.key));
		v.n_sinks = d->n_sinks;
		for (unsigned int i = 0; i < d->n_sinks; i++)
			v.sinks[i] = d->sinks[i]->sink_id;
	}
	return v;
}

/* Read a view: the transaction's overlay first, then the tables. */
#define FG_VIEW_GET(kind, idtype)                                               \
static struct fg_##kind##_view                                                  \
fg_##kind##_view(const struct fg_ownership *o, const struct fg_txn *x,         \
		 idtype id)                                                     \
{                                                                               \
	const void *p = x != NULL ? fg_vmap_find(&x->kind##s, id) : NULL;      \
                                                                                \
	if (p != NULL)                                                          \
		return *(const struct fg_##kind##_view *)p;                     \
	return fg_##kind##_base(o, id);                                         \
}                                                                               \
                                                                                \
/* Record a view in the transaction (a no-op outside one). */                  \
static int                                                                      \
fg_##kind##_view_set(struct fg_txn *x, idtype id,                              \
		     const struct fg_##kind##_view *v)                          \
{                                                                               \
	return x != NULL ? fg_vmap_put(&x->kind##s, id, v) : 0;                 \
}

FG_VIEW_GET(tenant, uint32_t)
FG_VIEW_GET(sink, uint32_t)
FG_VIEW_GET(device, uint64_t)

struct fg_txn *
fg_txn_begin(struct fg_ownership *o, uint32_t max_ops)
{
	struct fg_txn *x = calloc(1, sizeof(*x));

	/* The overlay grows as operations are checked: max_ops bounds nothing. */
	(void)max_ops;
	if (x == NULL) {
		rte_errno = ENOMEM;
		return NULL;
	}
	x->o = o;
	x->tenants.vsize = sizeof(struct fg_tenant_view);
	x->sinks.vsize = sizeof(struct fg_sink_view);
	x->devices.vsize = sizeof(struct fg_device_view);
	return x;
}

void
fg_txn_free(struct fg_txn *x)
{
	if (x == NULL)
		return;
	fg_vmap_free(&x->tenants);
	fg_vmap_free(&x->sinks);
	fg_vmap_free(&x->devices);
	free(x);
}

static int
fg_txn_nomem(struct fg_err *err)
{
	/* The overlay is in the process heap, not DPDK's memory (-m). */
	return fg_fail(err, ENOMEM, "out of memory checking the transaction: the host has no memory left for it; load the file in parts");
}

/* ---- checks: one per operation, on views ---------------------------------- */

int
fg_tenant_add_check(struct fg_ownership *o, struct fg_txn *x,
		    const struct fg_tenant_spec *s, struct fg_err *err)
{
	struct fg_tenant_view v;

	if (s->tenant_id == 0)
		return fg_fail(err, EINVAL, "tenant id 0 is reserved");
	if (s->name != NULL && strlen(s->name) >= FG_TENANT_NAME_MAX)
		return fg_fail(err, EINVAL, "tenant %" PRIu32 ": name longer than %d bytes",
			       s->tenant_id, FG_TENANT_NAME_MAX - 1);
	v = fg_tenant_view(o, x, s->tenant_id);
	if (v.exists)
		return fg_fail(err, EEXIST, "tenant %" PRIu32 " already exists",
			       s->tenant_id);
	if ((int64_t)o->tenant_slots.count - (x ? x->tenant_net : 0) <= 0)
		return fg_fail(err, ENOSPC, "tenant %" PRIu32 ": table full: max_tenants %" PRIu32 " (raise tables.max_tenants in the configuration)",
			       s->tenant_id, o->t->cfg.max_tenants);
	v = (struct fg_tenant_view){ .exists = true, .max_devices = s->max_devices };
	if (fg_tenant_view_set(x, s->tenant_id, &v))
		return fg_txn_nomem(err);
	if (x)
		x->tenant_net++;
	return 0;
}

int
fg_tenant_set_suspended_check(struct fg_ownership *o, struct fg_txn *x,
			      uint32_t tenant_id, bool suspended, struct fg_err *err)
{
	struct fg_tenant_view v = fg_tenant_view(o, x, tenant_id);

	if (!v.exists)
		return fg_fail(err, ENOENT, "tenant %" PRIu32 " does not exist", tenant_id);
	v.suspended = suspended;
	return fg_tenant_view_set(x, tenant_id, &v) ? fg_txn_nomem(err) : 0;
}

int
fg_tenant_del_check(struct fg_ownership *o, struct fg_txn *x, uint32_t tenant_id,
		    struct fg_err *err)
{
	struct fg_tenant_view v = fg_tenant_view(o, x, tenant_id);

	if (!v.exists)
		return fg_fail(err, ENOENT, "tenant %" PRIu32 " does not exist", tenant_id);
	if (v.n_devices != 0 || v.n_sinks != 0)
		return fg_fail(err, EBUSY, "tenant %" PRIu32 " is in use: it still holds %" PRIu32 " devices and %" PRIu32 " sinks",
			       tenant_id, v.n_devices, v.n_sinks);
	v = (struct fg_tenant_view){ .exists = false };
	if (fg_tenant_view_set(x, tenant_id, &v))
		return fg_txn_nomem(err);
	if (x)
		x->tenant_net--;
	return 0;
}

int
fg_sink_add_check(struct fg_ownership *o, struct fg_txn *x,
		  const struct fg_sink_spec *s, struct fg_err *err)
{
	struct fg_sink_view v;
	struct fg_tenant_view tv;

	if (s->sink_id == 0)
		return fg_fail(err, EINVAL, "sink id 0 is reserved");
	if (s->family != AF_INET && s->family != AF_INET6)
		return fg_fail(err, EINVAL, "sink %" PRIu32 ": address family must be IPv4 or IPv6",
			       s->sink_id);
	if (s->port == 0)
		return fg_fail(err, EINVAL, "sink %" PRIu32 ": UDP port 0 is not a destination",
			       s->sink_id);
	v = fg_sink_view(o, x, s->sink_id);
	if (v.exists)
		return fg_fail(err, EEXIST, "sink %" PRIu32 " already exists (owned by tenant %" PRIu32 ")",
			       s->sink_id, v.tenant_id);
	tv = fg_tenant_view(o, x, s->tenant_id);
	if (!tv.exists)
		return fg_fail(err, ENOENT, "sink %" PRIu32 ": tenant %" PRIu32 " does not exist",
			       s->sink_id, s->tenant_id);
	if ((int64_t)o->sink_slots.count - (x ? x->sink_net : 0) <= 0)
		return fg_fail(err, ENOSPC, "sink %" PRIu32 ": table full: max_sinks %" PRIu32 " (raise tables.max_sinks in the configuration)",
			       s->sink_id, o->t->cfg.max_sinks);
	v = (struct fg_sink_view){ .exists = true, .tenant_id = s->tenant_id };
	tv.n_sinks++;
	if (fg_sink_view_set(x, s->sink_id, &v) || fg_tenant_view_set(x, s->tenant_id, &tv))
		return fg_txn_nomem(err);
	if (x)
		x->sink_net++;
	return 0;
}

int
fg_sink_del_check(struct fg_ownership *o, struct fg_txn *x, uint32_t sink_id,
		  struct fg_err *err)
{
	struct fg_sink_view v = fg_sink_view(o, x, sink_id);
	struct fg_tenant_view tv;

	if (!v.exists)
		return fg_fail(err, ENOENT, "sink %" PRIu32 " does not exist", sink_id);
	if (v.refs != 0)
		return fg_fail(err, EBUSY, "sink %" PRIu32 " is in use by %" PRIu32 " device mappings",
			       sink_id, v.refs);
	tv = fg_tenant_view(o, x, v.tenant_id);
	if (tv.exists)
		tv.n_sinks--;
	v.exists = false;
	if (fg_sink_view_set(x, sink_id, &v) ||
	    (tv.exists && fg_tenant_view_set(x, v.tenant_id, &tv)))
		return fg_txn_nomem(err);
	if (x)
		x->sink_net--;
	return 0;
}

/* A mapping's sink list: 1 to 8 distinct sinks, all of tenant_id. */
static int
fg_check_sinks(struct fg_ownership *o, const struct fg_txn *x, uint32_t tenant_id,
	       uint64_t device_id, const uint32_t *ids, uint8_t n, const char *what,
	       struct fg_err *err)
{
	if (n == 0 || n > FG_MAX_SINKS)
		return fg_fail(err, EINVAL, "%sdevice 0x%016" PRIx64 ": a mapping needs 1 to %d sinks, not %u",
			       what, device_id, FG_MAX_SINKS, n);
	for (uint8_t i = 0; i < n; i++) {
		struct fg_sink_view v = fg_sink_view(o, x, ids[i]);

		for (uint8_t j = 0; j < i; j++)
			if (ids[j] == ids[i])
				return fg_fail(err, EINVAL, "%sdevice 0x%016" PRIx64 ": sink %" PRIu32 " is listed twice",
					       what, device_id, ids[i]);
		if (!v.exists)
			return fg_fail(err, ENOENT, "%sdevice 0x%016" PRIx64 ": sink %" PRIu32 " does not exist",
				       what, device_id, ids[i]);
		if (v.tenant_id != tenant_id)
			return fg_fail(err, EXDEV, "%sdevice 0x%016" PRIx64 ": sink %" PRIu32 " belongs to tenant %" PRIu32 ", not to tenant %" PRIu32 " (every sink of a mapping must belong to its tenant)",
				       what, device_id, ids[i], v.tenant_id, tenant_id);
	}
	return 0;
}

/* Room for one more mapping in the tenant and in the device table. */
static int
fg_check_room(struct fg_ownership *o, const struct fg_txn *x, uint32_t tenant_id,
	      const struct fg_tenant_view *tv, uint64_t device_id, const char *what,
	      struct fg_err *err)
{
	if (tv->max_devices != 0 && tv->n_devices >= tv->max_devices)
		return fg_fail(err, ENOSPC, "%sdevice 0x%016" PRIx64 ": tenant %" PRIu32 " already holds its max_devices (%" PRIu32 ") mappings",
			       what, device_id, tenant_id, tv->max_devices);
	if ((int64_t)rte_hash_count(o->owner) + (x ? x->device_net : 0) >=
	    (int64_t)o->t->cfg.max_devices)
		return fg_fail(err, ENOSPC, "%sdevice 0x%016" PRIx64 ": table full: max_devices %" PRIu32 " (raise tables.max_devices in the configuration)",
			       what, device_id, o->t->cfg.max_devices);
	return 0;
}

/* Move the sink references of a mapping from `old` to `new` in the overlay. */
static int
fg_txn_refs(struct fg_ownership *o, struct fg_txn *x, const struct fg_device_view *old,
	    const struct fg_device_view *new)
{
	if (x == NULL)
		return 0;
	for (unsigned int i = 0; old != NULL && i < old->n_sinks; i++) {
		struct fg_sink_view v = fg_sink_view(o, x, old->sinks[i]);

		v.refs--;
		if (fg_sink_view_set(x, old->sinks[i], &v))
			return -ENOMEM;
	}
	for (unsigned int i = 0; new != NULL && i < new->n_sinks; i++) {
		struct fg_sink_view v = fg_sink_view(o, x, new->sinks[i]);

		v.refs++;
		if (fg_sink_view_set(x, new->sinks[i], &v))
			return -ENOMEM;
	}
	return 0;
}

int
fg_device_put_check(struct fg_ownership *o, struct fg_txn *x,
		    const struct fg_device_spec *s, struct fg_err *err)
{
	struct fg_tenant_view tv;
	struct fg_device_view cur, nv;
	int ret;

	if (s->device_id == 0)
		return fg_fail(err, EINVAL, "device id 0 is reserved");
	tv = fg_tenant_view(o, x, s->tenant_id);
	if (!tv.exists)
		return fg_fail(err, ENOENT, "device 0x%016" PRIx64 ": tenant %" PRIu32 " does not exist",
			       s->device_id, s->tenant_id);
	cur = fg_device_view(o, x, s->device_id);
	if (cur.owner != 0 && cur.owner != s->tenant_id)
		return fg_fail(err, EEXIST, "device 0x%016" PRIx64 " is held by tenant %" PRIu32 "; a device has one owner (use move)",
			       s->device_id, cur.owner);
	if (cur.owner != 0 && s->epoch < cur.epoch)
		return fg_fail(err, ERANGE, "device 0x%016" PRIx64 ": epoch %" PRIu32 " is lower than the current %" PRIu32 " (an epoch never decreases)",
			       s->device_id, s->epoch, cur.epoch);
	if (cur.owner == 0 &&
	    (ret = fg_check_room(o, x, s->tenant_id, &tv, s->device_id, "", err)) < 0)
		return ret;
	ret = fg_check_sinks(o, x, s->tenant_id, s->device_id, s->sinks, s->n_sinks, "", err);
	if (ret < 0 || x == NULL)
		return ret;
	nv = (struct fg_device_view){ .owner = s->tenant_id, .epoch = s->epoch,
				      .has_key = s->has_key, .n_sinks = s->n_sinks };
	memcpy(nv.key, s->key, sizeof(nv.key));
	memcpy(nv.sinks, s->sinks, sizeof(nv.sinks));
	if (fg_txn_refs(o, x, cur.owner ? &cur : NULL, &nv) ||
	    fg_device_view_set(x, s->device_id, &nv))
		return fg_txn_nomem(err);
	if (cur.owner == 0) {
		tv.n_devices++;
		x->device_net++;
		if (fg_tenant_view_set(x, s->tenant_id, &tv))
			return fg_txn_nomem(err);
	}
	return 0;
}

int
fg_device_del_check(struct fg_ownership *o, struct fg_txn *x, uint32_t tenant_id,
		    uint64_t device_id, struct fg_err *err)
{
	struct fg_device_view cur = fg_device_view(o, x, device_id);
	struct fg_tenant_view tv;

	if (cur.owner != tenant_id || tenant_id == 0)
		return fg_fail(err, ENOENT, "device 0x%016" PRIx64 " is not held by tenant %" PRIu32,
			       device_id, tenant_id);
	if (x == NULL)
		return 0;
	tv = fg_tenant_view(o, x, tenant_id);
	tv.n_devices--;
	x->device_net--;
	if (fg_txn_refs(o, x, &cur, NULL) || fg_tenant_view_set(x, tenant_id, &tv) ||
	    fg_device_view_set(x, device_id, &(struct fg_device_view){ .owner = 0 }))
		return fg_txn_nomem(err);
	return 0;
}

int
fg_device_move_check(struct fg_ownership *o, struct fg_txn *x,
		     const struct fg_move_spec *s, struct fg_err *err)
{
	struct fg_device_view cur = fg_device_view(o, x, s->device_id), nv;
	struct fg_tenant_view from, to;
	int ret;

	/* Compare-and-swap: `from` must hold the device now. */
	if (cur.owner == 0)
		return fg_fail(err, ENOENT, "move of device 0x%016" PRIx64 ": no tenant holds it, not tenant %" PRIu32,
			       s->device_id, s->from);
	if (cur.owner != s->from)
		return fg_fail(err, ESTALE, "move of device 0x%016" PRIx64 ": it is held by tenant %" PRIu32 ", not by tenant %" PRIu32,
			       s->device_id, cur.owner, s->from);
	if (s->to == s->from)
		return fg_fail(err, EINVAL, "move of device 0x%016" PRIx64 ": from and to are both tenant %" PRIu32,
			       s->device_id, s->to);
	to = fg_tenant_view(o, x, s->to);
	if (!to.exists)
		return fg_fail(err, ENOENT, "move of device 0x%016" PRIx64 ": tenant %" PRIu32 " does not exist",
			       s->device_id, s->to);
	if (s->epoch <= cur.epoch)
		return fg_fail(err, ERANGE, "move of device 0x%016" PRIx64 ": epoch %" PRIu32 " is not larger than the current %" PRIu32 " (a move must raise the epoch)",
			       s->device_id, s->epoch, cur.epoch);
	if (to.max_devices != 0 && to.n_devices >= to.max_devices)
		return fg_fail(err, ENOSPC, "move of device 0x%016" PRIx64 ": tenant %" PRIu32 " already holds its max_devices (%" PRIu32 ") mappings",
			       s->device_id, s->to, to.max_devices);
	ret = fg_check_sinks(o, x, s->to, s->device_id, s->sinks, s->n_sinks, "move of ", err);
	if (ret < 0 || x == NULL)
		return ret;
	nv = (struct fg_device_view){ .owner = s->to, .epoch = s->epoch,
				      .has_key = s->has_key ? true : cur.has_key,
				      .n_sinks = s->n_sinks };
	memcpy(nv.key, s->has_key ? s->key : cur.key, sizeof(nv.key));
	memcpy(nv.sinks, s->sinks, sizeof(nv.sinks));
	from = fg_tenant_view(o, x, s->from);
	from.n_devices--;
	if (fg_tenant_view_set(x, s->from, &from))
		return fg_txn_nomem(err);
	to = fg_tenant_view(o, x, s->to);
	to.n_devices++;
	if (fg_tenant_view_set(x, s->to, &to) || fg_txn_refs(o, x, &cur, &nv) ||
	    fg_device_view_set(x, s->device_id, &nv))
		return fg_txn_nomem(err);
	return 0;
}

/* ---- actions: check, then publish ----------------------------------------- */

int
fg_tenant_add(struct fg_ownership *o, const struct fg_tenant_spec *s,
	      struct fg_err *err)
{
	struct fg_tenant *e;
	int ret = fg_tenant_add_check(o, NULL, s, err);

	if (ret < 0)
		return ret;
	e = fg_tables_tenant_alloc(o->t);
	if (e == NULL)
		return fg_fail(err, ENOMEM, "tenant %" PRIu32 ": out of memory", s->tenant_id);
	e->tenant_id = s->tenant_id;
	e->max_devices = s->max_devices;
	e->rate_pps = s->rate_pps;
	e->burst = s->burst;
	if (s->name != NULL)
		snprintf(e->name, sizeof(e->name), "%s", s->name);
	e->slot = fg_slots_get(&o->tenant_slots);
	ret = fg_tables_tenant_publish(o->t, e);
	if (ret < 0) {
		fg_slots_put(&o->tenant_slots, e->slot);
		fg_tables_tenant_discard(o->t, e);
		return fg_fail(err, -ret, "tenant %" PRIu32 ": cannot publish: %s",
			       s->tenant_id, strerror(-ret));
	}
	o->tenant_devices[e->slot] = 0;
	o->tenant_sinks[e->slot] = 0;
	fg_mirror_tenant(o, s->tenant_id, false);
	return 0;
}

int
fg_tenant_set_suspended(struct fg_ownership *o, uint32_t tenant_id,
			bool suspended, struct fg_err *err)
{
	const struct fg_tenant *cur;
	struct fg_tenant *e;
	int ret = fg_tenant_set_suspended_check(o, NULL, tenant_id, suspended, err);

	if (ret < 0)
		return ret;
	cur = fg_tables_tenant(o->t, tenant_id);
	if (cur->suspended == suspended) {
		fg_mirror_tenant(o, tenant_id, suspended);   /* the same: a no-op */
		return 0;
	}
	e = fg_tables_tenant_alloc(o->t);
	if (e == NULL)
		return fg_fail(err, ENOMEM, "tenant %" PRIu32 ": out of memory", tenant_id);
	*e = *cur;
	e->suspended = suspended;
	ret = fg_tables_tenant_publish(o->t, e);
	if (ret < 0) {
		fg_tables_tenant_discard(o->t, e);
		return fg_fail(err, -ret, "tenant %" PRIu32 ": cannot publish: %s",
			       tenant_id, strerror(-ret));
	}
	fg_mirror_tenant(o, tenant_id, suspended);
	return 0;
}

int
fg_tenant_del(struct fg_ownership *o, uint32_t tenant_id, struct fg_err *err)
{
	int ret = fg_tenant_del_check(o, NULL, tenant_id, err);
	uint32_t slot;

	if (ret < 0)
		return ret;
	slot = fg_tables_tenant(o->t, tenant_id)->slot;
	fg_tables_tenant_unpublish(o->t, tenant_id);
	fg_slots_put(&o->tenant_slots, slot);
	fg_mirror_tenant_del(o, tenant_id);
	return 0;
}

int
fg_sink_add(struct fg_ownership *o, const struct fg_sink_spec *s,
	    struct fg_err *err)
{
	const struct fg_tenant *tn;
	struct fg_sink *e;
	int ret = fg_sink_add_check(o, NULL, s, err);

	if (ret < 0)
		return ret;
	tn = fg_tables_tenant(o->t, s->tenant_id);
	e = fg_tables_sink_alloc(o->t);
	if (e == NULL)
		return fg_fail(err, ENOMEM, "sink %" PRIu32 ": out of memory", s->sink_id);
	e->sink_id = s->sink_id;
	e->tenant_id = s->tenant_id;
	e->family = s->family;
	memcpy(e->addr, s->addr, sizeof(e->addr));
	e->port = s->port;
	e->egress = s->egress;
	e->slot = fg_slots_get(&o->sink_slots);
	ret = fg_tables_sink_publish(o->t, e);
	if (ret < 0) {
		fg_slots_put(&o->sink_slots, e->slot);
		fg_tables_sink_discard(o->t, e);
		return fg_fail(err, -ret, "sink %" PRIu32 ": cannot publish: %s",
			       s->sink_id, strerror(-ret));
	}
	o->sink_refs[e->slot] = 0;
	o->tenant_sinks[tn->slot]++;
	return 0;
}

int
fg_sink_del(struct fg_ownership *o, uint32_t sink_id, struct fg_err *err)
{
	const struct fg_sink *cur;
	const struct fg_tenant *tn;
	uint32_t slot;
	int ret = fg_sink_del_check(o, NULL, sink_id, err);

	if (ret < 0)
		return ret;
	cur = fg_tables_sink(o->t, sink_id);
	slot = cur->slot;
	tn = fg_tables_tenant(o->t, cur->tenant_id);
	if (tn != NULL)
		o->tenant_sinks[tn->slot]--;
	fg_tables_sink_unpublish(o->t, sink_id);
	fg_slots_put(&o->sink_slots, slot);
	return 0;
}

/* Fill a new entry's sink pointers (the ids were checked). */
static void
fg_resolve_sinks(struct fg_ownership *o, const uint32_t *ids, uint8_t n,
		 struct fg_device *e)
{
	for (uint8_t i = 0; i < n; i++)
		e->sinks[i] = fg_tables_sink(o->t, ids[i]);
	e->n_sinks = n;
}

static void
fg_sink_refs_add(struct fg_ownership *o, const struct fg_device *d, int delta)
{
	for (unsigned int i = 0; i < d->n_sinks; i++)
		o->sink_refs[d->sinks[i]->slot] += (uint32_t)delta;
}

int
fg_device_put(struct fg_ownership *o, const struct fg_device_spec *s,
	      struct fg_err *err)
{
	const struct fg_tenant *tn;
	const struct fg_device *cur;
	struct fg_device *e;
	int ret = fg_device_put_check(o, NULL, s, err);

	if (ret < 0)
		return ret;
	tn = fg_tables_tenant(o->t, s->tenant_id);
	cur = fg_tables_device(o->t, s->tenant_id, s->device_id);
	e = fg_tables_device_alloc(o->t);
	if (e == NULL)
		return fg_fail(err, ENOSPC, "device 0x%016" PRIx64 ": no free device entry",
			       s->device_id);
	fg_resolve_sinks(o, s->sinks, s->n_sinks, e);
	e->device_id = s->device_id;
	e->tenant_id = s->tenant_id;
	e->epoch = s->epoch;
	e->has_key = s->has_key;
	if (s->has_key)
		memcpy(e->key, s->key, sizeof(e->key));
	if (cur == NULL && rte_hash_add_key_data(o->owner, &s->device_id,
						 (void *)(uintptr_t)s->tenant_id) < 0) {
		fg_tables_device_discard(o->t, e);
		return fg_fail(err, ENOSPC, "device 0x%016" PRIx64 ": the owner index is full",
			       s->device_id);
	}
	fg_sink_refs_add(o, e, +1);
	if (cur != NULL)
		fg_sink_refs_add(o, cur, -1);   /* cur stays readable until sync */
	ret = fg_tables_device_publish(o->t, e);
	if (ret < 0) {
		fg_sink_refs_add(o, e, -1);
		if (cur != NULL)
			fg_sink_refs_add(o, cur, +1);
		else
			rte_hash_del_key(o->owner, &s->device_id);
		fg_tables_device_discard(o->t, e);
		return fg_fail(err, -ret, "device 0x%016" PRIx64 ": cannot publish: %s",
			       s->device_id, strerror(-ret));
	}
	if (cur == NULL)
		o->tenant_devices[tn->slot]++;
	fg_mirror_owner(o, e);
	return 0;
}

int
fg_device_del(struct fg_ownership *o, uint32_t tenant_id, uint64_t device_id,
	      struct fg_err *err)
{
	const struct fg_device *cur;
	const struct fg_tenant *tn;
	int ret = fg_device_del_check(o, NULL, tenant_id, device_id, err);

	if (ret < 0)
		return ret;
	cur = fg_tables_device(o->t, tenant_id, device_id);
	tn = fg_tables_tenant(o->t, tenant_id);
	fg_sink_refs_add(o, cur, -1);
	fg_tables_device_unpublish(o->t, tenant_id, device_id);
	rte_hash_del_key(o->owner, &device_id);
	o->tenant_devices[tn->slot]--;
	fg_mirror_owner_del(o, tenant_id, device_id);
	return 0;
}

int
fg_device_move(struct fg_ownership *o, const struct fg_move_spec *s,
	       struct fg_err *err)
{
	const struct fg_tenant *from, *to;
	const struct fg_device *cur;
	struct fg_device *e;
	int ret = fg_device_move_check(o, NULL, s, err);

	if (ret < 0)
		return ret;
	from = fg_tables_tenant(o->t, s->from);
	to = fg_tables_tenant(o->t, s->to);
	cur = fg_tables_device(o->t, s->from, s->device_id);
	e = fg_tables_device_alloc(o->t);
	if (e == NULL)
		return fg_fail(err, ENOSPC, "move of device 0x%016" PRIx64 ": no free device entry",
			       s->device_id);
	fg_resolve_sinks(o, s->sinks, s->n_sinks, e);
	e->device_id = s->device_id;
	e->tenant_id = s->to;
	e->epoch = s->epoch;
	e->has_key = s->has_key ? 1 : cur->has_key;
	memcpy(e->key, s->has_key ? s->key : cur->key, sizeof(e->key));

	/* SPEC 2: one owner at any moment. The old mapping goes first, so no
	 * reader ever finds the device under both tenants; in between, its
	 * frames are dropped as not_owned. cur is retired by the unpublish and
	 * may be released by the publish's own sync: keep a copy. */
	const struct fg_device old = *cur;

	fg_sink_refs_add(o, &old, -1);
	fg_tables_device_unpublish(o->t, s->from, s->device_id);
	ret = fg_tables_device_publish(o->t, e);
	if (ret < 0) {
		/* Cannot happen with the table's headroom; put the old
		 * mapping back rather than lose it. */
		*e = old;
		fg_tables_device_publish(o->t, e);
		fg_sink_refs_add(o, e, +1);
		return fg_fail(err, -ret, "move of device 0x%016" PRIx64 ": cannot publish: %s",
			       s->device_id, strerror(-ret));
	}
	fg_sink_refs_add(o, e, +1);
	rte_hash_add_key_data(o->owner, &s->device_id, (void *)(uintptr_t)s->to);
	o->tenant_devices[from->slot]--;
	o->tenant_devices[to->slot]++;
	fg_mirror_move(o, e, s->from);
	return 0;
}
