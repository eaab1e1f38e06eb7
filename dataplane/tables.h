/*
 * Ownership tables (SPEC 2): the tenant directory, the device mappings keyed
 * by (tenant_id, device_id), and the sinks. This header is the bridge between
 * the control plane and the workers, and tables.c is the only code that
 * touches both sides.
 *
 * Readers (workers) look entries up in rte_hash tables created with
 * lock-free reader/writer concurrency; they never lock. Entries are immutable
 * once published: a change publishes a new entry (the hash swaps the data
 * pointer atomically) and retires the old one. Retired entries and freed key
 * slots are released only after an rte_rcu_qsbr grace period, in
 * fg_tables_sync(). There is one writer thread at a time.
 *
 * Device mappings live in one hash whose key carries the tenant id: a packet
 * is looked up by the (tenant_id, device_id) it claims, so it can only ever
 * hit entries of that tenant. One hash with the tenant in the key serves
 * 100,000 tenants without 100,000 hash instances.
 */
#ifndef FG_TABLES_H
#define FG_TABLES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rte_common.h>
#include <rte_rcu_qsbr.h>

#include <framegate/wire.h>

#include "ratelimit.h"

struct rte_hash;
struct rte_mempool;

struct fg_sink {
	uint32_t sink_id;
	uint32_t tenant_id;        /* owner: the fact check 9 compares with */
	uint32_t slot;             /* writer bookkeeping index */
	uint16_t port;             /* UDP destination port, host order */
	uint16_t egress;           /* egress DPDK port id */
	uint8_t family;            /* AF_INET or AF_INET6 */
	uint8_t addr[16];          /* IPv4 uses the first 4 bytes */
};

#define FG_TENANT_NAME_MAX 64

struct fg_tenant {
	uint32_t tenant_id;
	uint32_t slot;             /* index of the tenant's counters */
	uint8_t suspended;
	uint32_t max_devices;      /* 0: no limit */
	struct fg_rate rate;       /* check 10, derived from the two below on publish */
	uint64_t rate_pps;         /* 0: no limit */
	uint64_t burst;            /* 0: the default (ratelimit.h) */
	char name[FG_TENANT_NAME_MAX];
};

/* A device mapping. The first cache line holds everything a fan-out of up to
 * three sinks reads. */
struct fg_device {
	uint64_t device_id;
	uint32_t tenant_id;
	uint32_t epoch;
	uint8_t has_key;
	uint8_t n_sinks;           /* 1..FG_MAX_SINKS */
	uint8_t key[FG_AUTH_KEY_LEN];
	const struct fg_sink *sinks[FG_MAX_SINKS];
} __rte_cache_aligned;

/* Key of the device hash. pad is always zero. */
struct fg_device_key {
	uint32_t tenant_id;
	uint32_t pad;
	uint64_t device_id;
};

struct fg_tables_config {
	const char *name;          /* unique among tables in the process */
	uint32_t max_tenants;
	uint32_t max_sinks;
	uint32_t max_devices;
	uint32_t max_readers;      /* worker threads that will register */
	int socket_id;
};

struct fg_retired;

struct fg_tables {
	struct rte_hash *tenants;  /* uint32_t tenant_id -> struct fg_tenant * */
	struct rte_hash *sinks;    /* uint32_t sink_id   -> struct fg_sink *   */
	struct rte_hash *devices;  /* fg_device_key      -> struct fg_device * */
	struct rte_mempool *device_pool;
	struct rte_rcu_qsbr *qsbr;
	struct fg_tables_config cfg;
	/* writer side only */
	struct fg_retired *retired;
	uint32_t n_retired, cap_retired;
	uint32_t rate_gen;         /* last rate-limit generation given out */
	char name[17];             /* at most 16 bytes: hash and pool names derive from it */
};

/*
 * Publication order. The writer fills an entry, then stores its tenant_id
 * with release ordering just before the hash makes it visible; a reader loads
 * tenant_id with acquire ordering before any other field. C11 needs that
 * pairing on our own data (rte_hash orders its buckets, not our entries); on
 * x86 both are plain moves, and ThreadSanitizer sees the publication that
 * happens inside the uninstrumented rte_hash.
 */
static inline uint32_t
fg_tenant_id_acquire(const struct fg_tenant *e)
{
	return __atomic_load_n(&e->tenant_id, __ATOMIC_ACQUIRE);
}

static inline uint32_t
fg_device_tenant_acquire(const struct fg_device *e)
{
	return __atomic_load_n(&e->tenant_id, __ATOMIC_ACQUIRE);
}

static inline struct fg_device_key
fg_device_key(uint32_t tenant_id, uint64_t device_id)
{
	struct fg_device_key k = { .tenant_id = tenant_id, .pad = 0,
				   .device_id = device_id };
	return k;
}

/* Constructor: NULL and rte_errno set on failure. */
struct fg_tables *fg_tables_create(const struct fg_tables_config *cfg);

/* Bytes of DPDK memory (EAL -m, or hugepages) an rte_hash of `entries` keys
 * of key_len bytes takes, with (lock_free) or without the lock-free
 * readers' bookkeeping, and the tables of cfg take: estimates within a few
 * percent, for saying how much memory a configuration needs when
 * fg_tables_create fails with ENOMEM. */
size_t fg_hash_memsize(uint32_t entries, uint32_t key_len, bool lock_free);
size_t fg_tables_memsize(const struct fg_tables_config *cfg);
void fg_tables_free(struct fg_tables *t);

/* Readers: register once, then report quiescence after each burst. Entries a
 * reader got from a lookup stay valid until its next quiescent report. */
int fg_tables_reader_register(struct fg_tables *t, unsigned int reader_id);
void fg_tables_reader_unregister(struct fg_tables *t, unsigned int reader_id);

static inline void
fg_tables_reader_quiescent(struct fg_tables *t, unsigned int reader_id)
{
	rte_rcu_qsbr_quiescent(t->qsbr, reader_id);
}

/* A reader that stops looking entries up for a while (the main lcore when it
 * also serves the control socket) goes offline, so grace periods do not wait
 * for it, and online again before its next lookup. */
static inline void
fg_tables_reader_offline(struct fg_tables *t, unsigned int reader_id)
{
	rte_rcu_qsbr_thread_offline(t->qsbr, reader_id);
}

static inline void
fg_tables_reader_online(struct fg_tables *t, unsigned int reader_id)
{
	rte_rcu_qsbr_thread_online(t->qsbr, reader_id);
}

/* Single lookups: for the writer thread, and for a reader's rare slow path
 * (readers normally look up in bulk). */
const struct fg_tenant *fg_tables_tenant(const struct fg_tables *t,
					 uint32_t tenant_id);
const struct fg_sink *fg_tables_sink(const struct fg_tables *t, uint32_t sink_id);
const struct fg_device *fg_tables_device(const struct fg_tables *t,
					 uint32_t tenant_id, uint64_t device_id);

/* Writer: allocate an entry to fill in, then publish it. An entry that is not
 * published must be given back with fg_tables_*_discard. */
struct fg_tenant *fg_tables_tenant_alloc(struct fg_tables *t);
struct fg_sink *fg_tables_sink_alloc(struct fg_tables *t);
struct fg_device *fg_tables_device_alloc(struct fg_tables *t);
void fg_tables_tenant_discard(struct fg_tables *t, struct fg_tenant *e);
void fg_tables_sink_discard(struct fg_tables *t, struct fg_sink *e);
void fg_tables_device_discard(struct fg_tables *t, struct fg_device *e);

/* Publish adds or replaces (the old entry is retired); unpublish removes the
 * key and retires the entry. Return 0 or -errno (-ENOSPC: table full,
 * -ENOENT: no such key). A tenant's publish fills its `rate` from rate_pps
 * and burst: the published entry it replaces keeps its generation when both
 * are unchanged, anything else gets a new one (ratelimit.h). */
int fg_tables_tenant_publish(struct fg_tables *t, struct fg_tenant *e);
int fg_tables_sink_publish(struct fg_tables *t, struct fg_sink *e);
int fg_tables_device_publish(struct fg_tables *t, struct fg_device *e);
int fg_tables_tenant_unpublish(struct fg_tables *t, uint32_t tenant_id);
int fg_tables_sink_unpublish(struct fg_tables *t, uint32_t sink_id);
int fg_tables_device_unpublish(struct fg_tables *t, uint32_t tenant_id,
			       uint64_t device_id);

/* Wait until every registered reader has passed a quiescent point since the
 * last publish, then release everything retired before. After it returns,
 * no reader can see a state older than the current one. */
void fg_tables_sync(struct fg_tables *t);

/* Entries retired and not yet released (for tests and stats). */
static inline uint32_t
fg_tables_pending(const struct fg_tables *t)
{
	return t->n_retired;
}

/* Entries in each table. */
uint32_t fg_tables_count_tenants(const struct fg_tables *t);
uint32_t fg_tables_count_sinks(const struct fg_tables *t);
uint32_t fg_tables_count_devices(const struct fg_tables *t);

#endif /* FG_TABLES_H */
