/*
 * framegate's mappings in etcd (docs/store.md): the key layout, and the
 * writer that `fgctl --store` uses. No DPDK here: fgctl links it.
 *
 * Under a prefix P (default "/framegate/"):
 *
 *   P tenant/<id>          the tenant's op line  {"op":"tenant",...}
 *   P suspended/<id>       present while the tenant is suspended
 *   P sink/<id>            the sink's op line    {"op":"sink",...}
 *   P device/<16 hex>      the mapping's op line {"op":"device",...}; keyed by
 *                          the device alone, so etcd holds one owner per device
 *   P use/tenant/<id>      {"devices":N,"sinks":M}: what the tenant holds
 *   P use/sink/<id>        {"devices":N}: mappings that send to the sink
 *   P seq                  touched by every write: its mod_revision is the
 *                          last revision that changed the prefix
 *
 * Ids are decimal without leading zeros; devices 16 lowercase hex digits.
 * The use/ keys are the writer's bookkeeping, so that max_devices and "no
 * delete while in use" can be compared inside the transaction.
 */
#ifndef FG_STORE_H
#define FG_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <framegate/error.h>

#define FG_STORE_PREFIX_DEFAULT "/framegate/"
#define FG_STORE_KEY_MAX 160
#define FG_STORE_PREFIX_MAX 96

enum fg_store_kind {
	FG_SK_OTHER = 0,      /* a key framegate does not use (ignored) */
	FG_SK_TENANT,
	FG_SK_SUSPENDED,
	FG_SK_SINK,
	FG_SK_DEVICE,
	FG_SK_USE_TENANT,
	FG_SK_USE_SINK,
	FG_SK_SEQ,
};

/* key = prefix + the kind's path + id. */
void fg_store_key(char out[FG_STORE_KEY_MAX], const char *prefix,
		  enum fg_store_kind kind, uint64_t id);
/* The kind and id of a key under prefix (FG_SK_OTHER for anything else). */
enum fg_store_kind fg_store_key_parse(const char *prefix, const char *key,
				      size_t len, uint64_t *id);
/* A prefix must start and end with '/', and be printable ASCII. */
int fg_store_prefix_check(const char *prefix, struct fg_err *err);

struct fg_store_writer;

/* Endpoints as fg_etcd_open takes them. NULL with err on a bad argument.
 * Transactions go over etcd's gRPC API (fg_etcd_opts.grpc) when every
 * endpoint is http://; fg_store_writer_open_gateway sends everything
 * through the JSON gateway. */
struct fg_store_writer *fg_store_writer_open(const char *endpoints,
					     const char *prefix,
					     unsigned int timeout_ms,
					     struct fg_err *err);
struct fg_store_writer *fg_store_writer_open_gateway(const char *endpoints,
						     const char *prefix,
						     unsigned int timeout_ms,
						     struct fg_err *err);
void fg_store_writer_close(struct fg_store_writer *w);

/*
 * Apply op lines (mapping-file ops, decoded by fg_op_parse) as one etcd
 * transaction: each op is checked, in order, against the state the earlier
 * ones leave (the same rules as a router's, SPEC 2 and 4), then everything
 * is written at once with compares on every key the checks read (a move
 * compares the device key's mod_revision: a compare-and-swap). When the
 * store changed in between, it reads again and retries (up to 20 times).
 * Nothing is written when any op is refused: *failed (if not NULL) is its
 * index. *revision gets the revision the change has in the store.
 *
 * whole_prefix: read the whole prefix once at one revision first, and make
 * the transaction compare only P seq (no write since that revision): for a
 * `load`, whose many reads would each cost a round trip.
 *
 * -E2BIG when the transaction is over the store's limits (etcd's
 * --max-txn-ops and --max-request-bytes): split the file or raise them.
 */
int fg_store_apply(struct fg_store_writer *w, const char *const *lines,
		   const size_t *lens, size_t n, bool whole_prefix,
		   int64_t *revision, size_t *failed, struct fg_err *err);

/* Rotate (key != NULL) or remove a device's key: the mapping is rewritten
 * with everything else kept. */
int fg_store_rekey(struct fg_store_writer *w, uint32_t tenant, uint64_t device,
		   const uint8_t *key, int64_t *revision, struct fg_err *err);

/* The state in the store, as op lines (tenants, sinks, devices, then
 * suspensions), of one tenant or all (tenant 0), at one revision. */
typedef int fg_store_emit_fn(void *ctx, const char *line, size_t len);
int fg_store_dump(struct fg_store_writer *w, uint32_t tenant,
		  fg_store_emit_fn *emit, void *ctx, int64_t *revision,
		  struct fg_err *err);

/* The store's current revision and the revision of the last change under
 * the prefix (0: none yet). */
int fg_store_status(struct fg_store_writer *w, int64_t *revision,
		    int64_t *last_change, struct fg_err *err);

#endif /* FG_STORE_H */
