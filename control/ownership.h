/*
 * The control-side ownership API (SPEC 2): one action function per
 * operation, shared by the socket handler, `load`, journal replay and the
 * tests. Each checks the invariants against the current state, then changes
 * the tables through the bridge (dataplane/tables.h), or refuses and changes
 * nothing:
 *
 *   - a device_id has at most one owning tenant at any moment;
 *   - every sink of a mapping belongs to the mapping's tenant;
 *   - a tenant holds at most max_devices mappings;
 *   - a mapping's epoch never decreases; a move strictly increases it;
 *   - a tenant or sink that is still in use cannot be deleted.
 *
 * Actions publish but do not wait: the caller acknowledges a change only
 * after fg_tables_sync() (SPEC 4, ack means enforced). One writer thread.
 *
 * The XDP shield (SPEC 5, ebpf/): when one is set, every action also writes
 * its change into the shield's maps, right after the table publish, in the
 * same order (a move: the new owner, then the old one's removal). The tables
 * stay the truth: a map write that fails does not undo the table change
 * (which the caller has already journaled); it is counted as a mirror fault
 * and kept, so that the caller refuses to acknowledge the change as done
 * (fg_ownership_shield_faults) until the maps are rewritten from the tables
 * (fg_ownership_shield_resync) or refilled at the next start.
 */
#ifndef FG_OWNERSHIP_H
#define FG_OWNERSHIP_H

#include <stdbool.h>
#include <stdint.h>

#include <framegate/error.h>
#include <framegate/wire.h>

#include "../dataplane/tables.h"

struct fg_tenant_spec {
	uint32_t tenant_id;
	const char *name;          /* NULL: none */
	uint32_t max_devices;      /* 0: no limit */
	uint64_t rate_pps;         /* 0: no limit */
	uint64_t burst;
};

struct fg_sink_spec {
	uint32_t sink_id;
	uint32_t tenant_id;
	uint8_t family;            /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	uint16_t port;             /* host order */
	uint16_t egress;
};

struct fg_device_spec {
	uint32_t tenant_id;
	uint64_t device_id;
	uint32_t epoch;
	bool has_key;
	uint8_t key[FG_AUTH_KEY_LEN];
	uint8_t n_sinks;
	uint32_t sinks[FG_MAX_SINKS];
};

struct fg_move_spec {
	uint64_t device_id;
	uint32_t from, to;
	uint32_t epoch;
	bool has_key;              /* false: the device keeps its key */
	uint8_t key[FG_AUTH_KEY_LEN];
	uint8_t n_sinks;
	uint32_t sinks[FG_MAX_SINKS];
};

struct fg_ownership;
struct fg_shield;

/* Constructor over existing tables: NULL and rte_errno on failure. */
struct fg_ownership *fg_ownership_create(struct fg_tables *t);

/* Bytes of DPDK memory fg_ownership_create takes for tables of cfg (the
 * owner index; see fg_tables_memsize). */
size_t fg_ownership_memsize(const struct fg_tables_config *cfg);
void fg_ownership_free(struct fg_ownership *o);
struct fg_tables *fg_ownership_tables(const struct fg_ownership *o);

/* Mirror every later change into the shield's maps (NULL: no shield, the
 * default). The handle stays the caller's. Set it while the tables and the
 * maps agree (both empty, at start), or resync afterwards. */
void fg_ownership_set_shield(struct fg_ownership *o, struct fg_shield *s);
struct fg_shield *fg_ownership_shield(const struct fg_ownership *o);
/* Mirror writes that failed since the shield was set or last resynced: 0
 * when the maps hold every change; otherwise last (if not NULL) is the
 * latest failure, naming the entry and the map. */
uint64_t fg_ownership_shield_faults(const struct fg_ownership *o,
				    struct fg_err *last);
/* Rewrite the maps from the tables (empty them, then put every tenant and
 * mapping) and clear the fault count: 0, or -errno with err filled. */
int fg_ownership_shield_resync(struct fg_ownership *o, struct fg_err *err);

/* One difference between the shield's maps and the tables. */
enum fg_shield_diff_kind {
	FG_SHIELD_MISSING,      /* in the tables, not in the maps */
	FG_SHIELD_EXTRA,        /* in the maps, not in the tables */
	FG_SHIELD_DIFFERS,      /* in both, with other values */
};

struct fg_shield_diff {
	enum fg_shield_diff_kind kind;
	uint32_t tenant_id;
	uint64_t device_id;     /* 0: a tenant entry */
	/* The two sides (what exists of them): for a tenant its state, for a
	 * mapping its epoch and key. */
	bool table_suspended, map_suspended;
	uint32_t table_epoch, map_epoch;
	bool table_has_key, map_has_key;
	bool key_differs;
};

typedef int fg_shield_diff_fn(void *ctx, const struct fg_shield_diff *d);

/* Compare the shield's maps with the tables: every tenant (exists, state)
 * and every (tenant, device) mapping (exists, epoch, key), both ways. Calls
 * fn for each difference (a non-zero return stops the walk and is
 * returned). 0 when done, -errno when the maps cannot be read (err filled).
 * counts (if not NULL) gets the entries seen: [0] table tenants, [1] map
 * tenants, [2] table mappings, [3] map owners. Read-only. */
int fg_ownership_shield_check(const struct fg_ownership *o,
			      fg_shield_diff_fn *fn, void *ctx,
			      uint64_t counts[4], struct fg_err *err);

/* Actions: 0, or -errno with err filled (err may be NULL). */
int fg_tenant_add(struct fg_ownership *o, const struct fg_tenant_spec *s,
		  struct fg_err *err);
int fg_tenant_set_suspended(struct fg_ownership *o, uint32_t tenant_id,
			    bool suspended, struct fg_err *err);
int fg_tenant_del(struct fg_ownership *o, uint32_t tenant_id,
		  struct fg_err *err);
int fg_sink_add(struct fg_ownership *o, const struct fg_sink_spec *s,
		struct fg_err *err);
int fg_sink_del(struct fg_ownership *o, uint32_t sink_id, struct fg_err *err);
int fg_device_put(struct fg_ownership *o, const struct fg_device_spec *s,
		  struct fg_err *err);
int fg_device_del(struct fg_ownership *o, uint32_t tenant_id,
		  uint64_t device_id, struct fg_err *err);
int fg_device_move(struct fg_ownership *o, const struct fg_move_spec *s,
		   struct fg_err *err);

/*
 * Transactions: check a sequence of operations against the state it would
 * produce, without publishing anything. Each *_check() with a transaction
 * checks one operation on top of the ones checked before it in the same
 * transaction and records its effect there; with x == NULL it checks against
 * the current state only (the actions above do that first). A sequence whose
 * every check passed can then be applied with the actions, in the same order,
 * on the same state, and will be accepted.
 */
struct fg_txn;

/* A transaction (max_ops: how many operations it will check, a hint). Its
 * overlay is in the process heap and grows as operations are checked, so a
 * lack of memory is reported by the check that met it. NULL and rte_errno on
 * failure. */
struct fg_txn *fg_txn_begin(struct fg_ownership *o, uint32_t max_ops);
void fg_txn_free(struct fg_txn *x);

int fg_tenant_add_check(struct fg_ownership *o, struct fg_txn *x,
			const struct fg_tenant_spec *s, struct fg_err *err);
int fg_tenant_set_suspended_check(struct fg_ownership *o, struct fg_txn *x,
				  uint32_t tenant_id, bool suspended,
				  struct fg_err *err);
int fg_tenant_del_check(struct fg_ownership *o, struct fg_txn *x,
			uint32_t tenant_id, struct fg_err *err);
int fg_sink_add_check(struct fg_ownership *o, struct fg_txn *x,
		      const struct fg_sink_spec *s, struct fg_err *err);
int fg_sink_del_check(struct fg_ownership *o, struct fg_txn *x,
		      uint32_t sink_id, struct fg_err *err);
int fg_device_put_check(struct fg_ownership *o, struct fg_txn *x,
			const struct fg_device_spec *s, struct fg_err *err);
int fg_device_del_check(struct fg_ownership *o, struct fg_txn *x,
			uint32_t tenant_id, uint64_t device_id,
			struct fg_err *err);
int fg_device_move_check(struct fg_ownership *o, struct fg_txn *x,
			 const struct fg_move_spec *s, struct fg_err *err);

/* The store revision the state equals, for a router that follows a store
 * (docs/store.md); 0 for one that does not. Kept with the state: journaled
 * and dumped as a store_revision op. */
int64_t fg_ownership_store_revision(const struct fg_ownership *o);
void fg_ownership_set_store_revision(struct fg_ownership *o, int64_t revision);

/* The tenant that holds device_id, or 0 when none does. */
uint32_t fg_device_owner(const struct fg_ownership *o, uint64_t device_id);
/* Mappings a tenant holds (0 for an unknown tenant). */
uint32_t fg_tenant_device_count(const struct fg_ownership *o, uint32_t tenant_id);

#endif /* FG_OWNERSHIP_H */
