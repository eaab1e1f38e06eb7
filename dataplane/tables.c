/*
 * The bridge from control to data: create the lock-free tables, publish new
 * entries, retire old ones, and release them after an RCU grace period.
 * Nothing else in framegate writes to the tables or frees what workers read.
 * See tables.h for the model.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>
#include <rte_malloc.h>
#include <rte_cycles.h>
#include <rte_mempool.h>

#include "tables.h"

enum fg_entry_kind { FG_ENTRY_TENANT, FG_ENTRY_SINK, FG_ENTRY_DEVICE };

struct fg_retired {
	void *entry;               /* NULL once only the key slot is pending */
	struct rte_hash *h;        /* with pos: key slot to free, else NULL */
	int32_t pos;
	uint8_t kind;
};

/* Key slots and entries each table keeps beyond its capacity for those that
 * wait for a grace period. A long transaction syncs on its own once
 * FG_RETIRE_BATCH are pending, well before the headroom runs out. */
#define FG_RETIRE_BATCH 512

static uint32_t
fg_tables_headroom(uint32_t n)
{
	return n / 8 + 2 * FG_RETIRE_BATCH;
}

static struct rte_hash *
fg_hash_create(const char *prefix, const char *suffix, uint32_t entries,
	       uint32_t key_len, int socket_id)
{
	char name[RTE_HASH_NAMESIZE];
	struct rte_hash_parameters p = {
		.name = name,
		.entries = entries,
		.key_len = key_len,
		.hash_func = rte_hash_crc,
		.hash_func_init_val = 0,
		.socket_id = socket_id,
		.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF |
			      RTE_HASH_EXTRA_FLAGS_EXT_TABLE,
	};

	snprintf(name, sizeof(name), "%.16s_%.3s", prefix, suffix);
	return rte_hash_create(&p);
}

/* Device entries come from a mempool with the "stack" driver: the writer
 * reuses the entry it freed last, which is still warm in cache, and a reader
 * that outlived a grace period would find it rewritten at once rather than
 * thousands of changes later (tests/test_concurrency.c relies on that). */
static struct rte_mempool *
fg_entry_pool_create(const char *name, uint32_t n, uint32_t size, int socket_id)
{
	struct rte_mempool *mp;

	int ret;

	mp = rte_mempool_create_empty(name, n, size, 0, 0, socket_id, 0);
	if (mp == NULL)
		return NULL;
	ret = rte_mempool_set_ops_byname(mp, "stack", NULL);
	if (ret == 0) {
		/* Where the memory ran out, say so (ENOMEM), not ENOTSUP: the
		 * caller tells how much the tables need. */
		ret = rte_mempool_populate_default(mp);
		ret = ret < 0 ? ret : 0;
	}
	if (ret != 0) {
		rte_mempool_free(mp);
		rte_errno = -ret;
		return NULL;
	}
	return mp;
}

/*
 * What rte_hash_create (DPDK 22.11's cuckoo hash) allocates: a ring of free
 * key slots (a power of two of 4-byte slots), buckets of 8 entries (64 bytes)
 * for the entries rounded up to a power of two, as many extendable buckets
 * and a ring of their indexes, the key store (a pointer and the key, in
 * 16-byte steps, per slot), and with lock-free readers a 4-byte slot per key
 * for the extendable buckets to free.
 */
size_t
fg_hash_memsize(uint32_t entries, uint32_t key_len, bool lock_free)
{
	uint64_t slots = (uint64_t)entries + 1;
	uint64_t buckets = rte_align64pow2(entries) / 8;
	uint64_t bytes = rte_align64pow2(slots) * 4 + 2 * buckets * 64 +
			 rte_align64pow2(buckets + 1) * 4 +
			 slots * RTE_ALIGN(sizeof(void *) + key_len, 16) +
			 (lock_free ? slots * 4 : 0);

	return (size_t)bytes;
}

size_t
fg_tables_memsize(const struct fg_tables_config *cfg)
{
	uint32_t nt = cfg->max_tenants + fg_tables_headroom(cfg->max_tenants);
	uint32_t ns = cfg->max_sinks + fg_tables_headroom(cfg->max_sinks);
	uint32_t nd = cfg->max_devices + fg_tables_headroom(cfg->max_devices);
	struct rte_mempool_objsz sz;
	uint64_t bytes;

	/* Each device entry with its mempool header, and its pointer in the
	 * stack driver's array. Tenant and sink entries are allocated as
	 * they are added, not here. */
	bytes = (uint64_t)nd * (rte_mempool_calc_obj_size(sizeof(struct fg_device), 0, &sz) +
				sizeof(void *));
	bytes += fg_hash_memsize(nt, sizeof(uint32_t), true) +
		 fg_hash_memsize(ns, sizeof(uint32_t), true) +
		 fg_hash_memsize(nd, sizeof(struct fg_device_key), true) +
		 rte_rcu_qsbr_get_memsize(cfg->max_readers);
	/* Objects kept within pages, allocator headers: a few percent. */
	return (size_t)(bytes + bytes / 32);
}

struct fg_tables *
fg_tables_create(const struct fg_tables_config *cfg)
{
	struct fg_tables *t;
	char name[RTE_MEMPOOL_NAMESIZE];
	size_t qsz;

	if (cfg == NULL || cfg->name == NULL || strlen(cfg->name) > 16 ||
	    cfg->max_tenants == 0 || cfg->max_sinks == 0 ||
	    cfg->max_devices == 0 || cfg->max_readers == 0) {
		rte_errno = EINVAL;
		return NULL;
	}
	t = rte_zmalloc_socket("fg_tables", sizeof(*t), RTE_CACHE_LINE_SIZE,
			       cfg->socket_id);
	if (t == NULL) {
		rte_errno = ENOMEM;
		return NULL;
	}
	t->cfg = *cfg;
	snprintf(t->name, sizeof(t->name), "%s", cfg->name);
	t->cfg.name = t->name;

	t->tenants = fg_hash_create(t->name, "ten",
				    cfg->max_tenants + fg_tables_headroom(cfg->max_tenants),
				    sizeof(uint32_t), cfg->socket_id);
	t->sinks = fg_hash_create(t->name, "snk",
				  cfg->max_sinks + fg_tables_headroom(cfg->max_sinks),
				  sizeof(uint32_t), cfg->socket_id);
	t->devices = fg_hash_create(t->name, "dev",
				    cfg->max_devices + fg_tables_headroom(cfg->max_devices),
				    sizeof(struct fg_device_key), cfg->socket_id);
	snprintf(name, sizeof(name), "%.16s_dpool", t->name);
	t->device_pool = fg_entry_pool_create(name,
					      cfg->max_devices + fg_tables_headroom(cfg->max_devices),
					      sizeof(struct fg_device), cfg->socket_id);
	qsz = rte_rcu_qsbr_get_memsize(cfg->max_readers);
	t->qsbr = rte_zmalloc_socket("fg_qsbr", qsz, RTE_CACHE_LINE_SIZE,
				     cfg->socket_id);
	if (t->tenants == NULL || t->sinks == NULL || t->devices == NULL ||
	    t->device_pool == NULL || t->qsbr == NULL ||
	    rte_rcu_qsbr_init(t->qsbr, cfg->max_readers) != 0) {
		int err = rte_errno ? rte_errno : ENOMEM;

		fg_tables_free(t);
		rte_errno = err;
		return NULL;
	}
	return t;
}

static void
fg_entry_release(struct fg_tables *t, uint8_t kind, void *entry)
{
	if (entry == NULL)
		return;
	if (kind == FG_ENTRY_DEVICE)
		rte_mempool_put(t->device_pool, entry);
	else
		rte_free(entry);
}

static void
fg_release_retired(struct fg_tables *t)
{
	for (uint32_t i = 0; i < t->n_retired; i++) {
		struct fg_retired *r = &t->retired[i];

		if (r->h != NULL)
			rte_hash_free_key_with_position(r->h, r->pos);
		fg_entry_release(t, r->kind, r->entry);
	}
	t->n_retired = 0;
}

/* Free every entry still published (used when destroying the tables). */
static void
fg_release_hash(struct fg_tables *t, struct rte_hash *h, uint8_t kind)
{
	const void *key;
	void *data;
	uint32_t next = 0;

	if (h == NULL)
		return;
	while (rte_hash_iterate(h, &key, &data, &next) >= 0)
		fg_entry_release(t, kind, data);
	rte_hash_free(h);
}

void
fg_tables_free(struct fg_tables *t)
{
	if (t == NULL)
		return;
	fg_release_retired(t);
	fg_release_hash(t, t->devices, FG_ENTRY_DEVICE);
	fg_release_hash(t, t->sinks, FG_ENTRY_SINK);
	fg_release_hash(t, t->tenants, FG_ENTRY_TENANT);
	rte_mempool_free(t->device_pool);
	rte_free(t->qsbr);
	free(t->retired);
	rte_free(t);
}

int
fg_tables_reader_register(struct fg_tables *t, unsigned int reader_id)
{
	int ret = rte_rcu_qsbr_thread_register(t->qsbr, reader_id);

	if (ret != 0)
		return -rte_errno;
	rte_rcu_qsbr_thread_online(t->qsbr, reader_id);
	return 0;
}

void
fg_tables_reader_unregister(struct fg_tables *t, unsigned int reader_id)
{
	rte_rcu_qsbr_thread_offline(t->qsbr, reader_id);
	rte_rcu_qsbr_thread_unregister(t->qsbr, reader_id);
}

static void *
fg_lookup(const struct rte_hash *h, const void *key)
{
	void *data;

	return rte_hash_lookup_data(h, key, &data) >= 0 ? data : NULL;
}

const struct fg_tenant *
fg_tables_tenant(const struct fg_tables *t, uint32_t tenant_id)
{
	return fg_lookup(t->tenants, &tenant_id);
}

const struct fg_sink *
fg_tables_sink(const struct fg_tables *t, uint32_t sink_id)
{
	return fg_lookup(t->sinks, &sink_id);
}

const struct fg_device *
fg_tables_device(const struct fg_tables *t, uint32_t tenant_id,
		 uint64_t device_id)
{
	struct fg_device_key k = fg_device_key(tenant_id, device_id);

	return fg_lookup(t->devices, &k);
}

struct fg_tenant *
fg_tables_tenant_alloc(struct fg_tables *t)
{
	return rte_zmalloc_socket("fg_tenant", sizeof(struct fg_tenant), 0,
				  t->cfg.socket_id);
}

struct fg_sink *
fg_tables_sink_alloc(struct fg_tables *t)
{
	return rte_zmalloc_socket("fg_sink", sizeof(struct fg_sink), 0,
				  t->cfg.socket_id);
}

struct fg_device *
fg_tables_device_alloc(struct fg_tables *t)
{
	void *e;

	/* A long transaction may hold many replaced entries: release them
	 * before the pool runs dry. */
	if (t->n_retired >= FG_RETIRE_BATCH)
		fg_tables_sync(t);
	if (rte_mempool_get(t->device_pool, &e) != 0)
		return NULL;
	memset(e, 0, sizeof(struct fg_device));
	return e;
}

void
fg_tables_tenant_discard(struct fg_tables *t, struct fg_tenant *e)
{
	fg_entry_release(t, FG_ENTRY_TENANT, e);
}

void
fg_tables_sink_discard(struct fg_tables *t, struct fg_sink *e)
{
	fg_entry_release(t, FG_ENTRY_SINK, e);
}

void
fg_tables_device_discard(struct fg_tables *t, struct fg_device *e)
{
	fg_entry_release(t, FG_ENTRY_DEVICE, e);
}

static int
fg_retire_reserve(struct fg_tables *t)
{
	if (t->n_retired < t->cap_retired)
		return 0;
	uint32_t cap = t->cap_retired ? t->cap_retired * 2 : 256;
	struct fg_retired *r = realloc(t->retired, cap * sizeof(*r));

	if (r == NULL)
		return -ENOMEM;
	t->retired = r;
	t->cap_retired = cap;
	return 0;
}

static void
fg_retire(struct fg_tables *t, uint8_t kind, void *entry, struct rte_hash *h,
	  int32_t pos)
{
	t->retired[t->n_retired++] = (struct fg_retired){
		.entry = entry, .h = h, .pos = pos, .kind = kind,
	};
}

static int
fg_publish(struct fg_tables *t, struct rte_hash *h, const void *key,
	   void *entry, uint8_t kind)
{
	void *old = NULL;
	int ret;

	if (t->n_retired >= FG_RETIRE_BATCH)
		fg_tables_sync(t);
	if (fg_retire_reserve(t) != 0)
		return -ENOMEM;
	if (rte_hash_lookup_data(h, key, &old) < 0)
		old = NULL;
	/* With lock-free concurrency this swaps the data pointer atomically:
	 * a reader sees the old entry or the new one, whole. */
	ret = rte_hash_add_key_data(h, key, entry);
	if (ret < 0)
		return ret;
	if (old != NULL)
		fg_retire(t, kind, old, NULL, -1);
	return 0;
}

static int
fg_unpublish(struct fg_tables *t, struct rte_hash *h, const void *key,
	     uint8_t kind)
{
	void *old;
	int32_t pos;

	if (t->n_retired >= FG_RETIRE_BATCH)
		fg_tables_sync(t);
	if (fg_retire_reserve(t) != 0)
		return -ENOMEM;
	if (rte_hash_lookup_data(h, key, &old) < 0)
		return -ENOENT;
	pos = rte_hash_del_key(h, key);
	if (pos < 0)
		return pos;
	/* The key slot stays reserved until readers are done with it. */
	fg_retire(t, kind, old, h, pos);
	return 0;
}

int
fg_tables_tenant_publish(struct fg_tables *t, struct fg_tenant *e)
{
	const struct fg_tenant *old = fg_tables_tenant(t, e->tenant_id);

	/* Check 10's limit: the same limit on the same tenant (a suspend or
	 * resume) keeps the workers' buckets; a new limit, or a tenant new in
	 * this id (deleted and created again), starts them afresh. */
	if (old != NULL && old->rate_pps == e->rate_pps && old->burst == e->burst) {
		e->rate = old->rate;
	} else {
		if (++t->rate_gen == 0)
			t->rate_gen = 1;
		fg_rate_prepare(&e->rate, e->rate_pps, e->burst, rte_get_tsc_hz(),
				t->rate_gen);
	}
	__atomic_store_n(&e->tenant_id, e->tenant_id, __ATOMIC_RELEASE);
	return fg_publish(t, t->tenants, &e->tenant_id, e, FG_ENTRY_TENANT);
}

int
fg_tables_sink_publish(struct fg_tables *t, struct fg_sink *e)
{
	return fg_publish(t, t->sinks, &e->sink_id, e, FG_ENTRY_SINK);
}

int
fg_tables_device_publish(struct fg_tables *t, struct fg_device *e)
{
	struct fg_device_key k = fg_device_key(e->tenant_id, e->device_id);

	__atomic_store_n(&e->tenant_id, e->tenant_id, __ATOMIC_RELEASE);
	return fg_publish(t, t->devices, &k, e, FG_ENTRY_DEVICE);
}

int
fg_tables_tenant_unpublish(struct fg_tables *t, uint32_t tenant_id)
{
	return fg_unpublish(t, t->tenants, &tenant_id, FG_ENTRY_TENANT);
}

int
fg_tables_sink_unpublish(struct fg_tables *t, uint32_t sink_id)
{
	return fg_unpublish(t, t->sinks, &sink_id, FG_ENTRY_SINK);
}

int
fg_tables_device_unpublish(struct fg_tables *t, uint32_t tenant_id,
			   uint64_t device_id)
{
	struct fg_device_key k = fg_device_key(tenant_id, device_id);

	return fg_unpublish(t, t->devices, &k, FG_ENTRY_DEVICE);
}

void
fg_tables_sync(struct fg_tables *t)
{
	uint64_t token = rte_rcu_qsbr_start(t->qsbr);

	/* Yield while waiting: the writer may share a core with a reader, and
	 * a busy wait would then last a whole scheduler time slice. */
	while (!rte_rcu_qsbr_check(t->qsbr, token, false))
		sched_yield();
	fg_release_retired(t);
}

uint32_t
fg_tables_count_tenants(const struct fg_tables *t)
{
	return (uint32_t)rte_hash_count(t->tenants);
}

uint32_t
fg_tables_count_sinks(const struct fg_tables *t)
{
	return (uint32_t)rte_hash_count(t->sinks);
}

uint32_t
fg_tables_count_devices(const struct fg_tables *t)
{
	return (uint32_t)rte_hash_count(t->devices);
}
