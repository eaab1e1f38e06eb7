/*
 * A small etcd v3 client over etcd's JSON gateway (HTTP/1.1, libcurl, with
 * jansson for the bodies; keys and values are base64 on the wire, done with
 * libsodium's sodium_bin2base64/sodium_base642bin). Enough for framegate's
 * store (docs/store.md): range, txn, a streamed watch, compaction and
 * status. Works with etcd 3.4 (Debian 12's etcd-server): paths /v3/kv/range,
 * /v3/kv/txn, /v3/kv/compaction, /v3/watch, /v3/maintenance/status. With
 * fg_etcd_opts.grpc, transactions and the watch go over etcd's gRPC API
 * instead (control/etcd_grpc.c), on the same endpoints.
 *
 * Endpoints: a comma-separated list of base URLs ("http://127.0.0.1:2379,
 * http://127.0.0.1:22379"). A request that cannot reach one endpoint (connect
 * error, timeout, HTTP 5xx, an etcd "not leader"/"no leader" error) is tried
 * on the next, once around the list; the endpoint that answered is kept for
 * the next request.
 *
 * Revisions are int64 in etcd; the gateway prints them as JSON strings, the
 * client accepts both strings and numbers.
 *
 * Errors: 0 or a negative errno, with err filled naming the endpoint and
 * what etcd said:
 *   -ECONNREFUSED / -ETIMEDOUT / -EHOSTUNREACH: no endpoint answered;
 *   -ESTALE: the revision asked for has been compacted (err names that
 *            revision; etcd's range error does not give the compact
 *            revision, the watch does: *compact_rev);
 *   -EPROTO: an answer that is not what the gateway documents;
 *   -E2BIG:  etcd refused the request's size or op count ("too many
 *            operations in txn request", "request is too large");
 *   -EIO:    any other etcd error (its message in err).
 *
 * One thread per handle. A handle owns one watch at most.
 */
#ifndef FG_ETCD_H
#define FG_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <framegate/error.h>

struct fg_etcd;

struct fg_etcd_opts {
	const char *endpoints;       /* comma-separated base URLs */
	unsigned int timeout_ms;     /* per request (not the watch); 0: 5000 */
	unsigned int connect_timeout_ms; /* 0: 1000 */
	/* Transactions (fg_etcd_txn, fg_etcd_get_many) and the watch over
	 * etcd's gRPC API on the same endpoints (http://host:port only);
	 * everything else over the JSON gateway. */
	bool grpc;
};

/* NULL with err naming the bad endpoint (syntax only: nothing is
 * contacted). */
struct fg_etcd *fg_etcd_open(const struct fg_etcd_opts *o, struct fg_err *err);
void fg_etcd_close(struct fg_etcd *e);
/* Whether the last request was sent again to another endpoint after one
 * that failed in a way that may have taken it (a timeout, a broken
 * connection, an error reply; not a refused connection): a txn that then
 * fails its compares may be failing on its own first attempt. */
bool fg_etcd_resent(const struct fg_etcd *e);
/* The endpoint the last request went to. */
const char *fg_etcd_endpoint(const struct fg_etcd *e);

/* A key-value as etcd holds it. key and value are NUL-terminated copies
 * (keys and values here are text), valid during the callback only. */
struct fg_etcd_kv {
	const char *key;
	size_t key_len;
	const char *value;
	size_t value_len;
	int64_t create_revision, mod_revision, version;
};

/* The key range [key, range_end). range_end NULL: the key alone; "" (empty):
 * every key from key on (etcd's "\0"). Use fg_etcd_prefix_end() for "every
 * key starting with key". */
typedef int fg_etcd_kv_fn(void *ctx, const struct fg_etcd_kv *kv);

/* The first key after every key that starts with prefix (etcd's usual
 * prefix range end: the last byte below 0xff incremented, the rest cut;
 * "" when there is none, i.e. to the end). Writes into out (size >=
 * strlen(prefix)+1). */
void fg_etcd_prefix_end(const char *prefix, char *out);

/*
 * Every key in [key, range_end) at one revision: revision > 0 asks for that
 * revision, 0 for the latest. Calls fn for each key in key order (a non-zero
 * return stops and is returned). Large ranges are read in pages of
 * page_size keys (0: 10000), every page at the revision of the first one,
 * so the whole walk is one snapshot. *header_rev (may be NULL) gets that
 * revision. -ESTALE when the revision is compacted.
 */
int fg_etcd_range(struct fg_etcd *e, const char *key, const char *range_end,
		  int64_t revision, unsigned int page_size,
		  fg_etcd_kv_fn *fn, void *ctx, int64_t *header_rev,
		  struct fg_err *err);

/* Only the count of keys in the range at the latest revision, with
 * mod_revision >= min_mod_revision (0: any), and the header revision. */
int fg_etcd_count(struct fg_etcd *e, const char *key, const char *range_end,
		  int64_t min_mod_revision, int64_t *count, int64_t *header_rev,
		  struct fg_err *err);

/* One key: 1 and *kv filled (strings valid until the next call on e), 0 when
 * absent, or -errno. *header_rev (may be NULL) gets the revision read at. */
int fg_etcd_get(struct fg_etcd *e, const char *key, struct fg_etcd_kv *kv,
		int64_t *header_rev, struct fg_err *err);

/* Several keys, read in one request (a transaction of range requests, up to
 * FG_ETCD_GET_MANY_CHUNK keys each: etcd's default --max-txn-ops): fn is
 * called once per key, in order, with i its index in keys and kv NULL when
 * it is absent (kv's strings valid during the call only). Each chunk reads
 * one revision; different chunks may read different ones. 0 or -errno (fn's
 * nonzero return is passed on). */
#define FG_ETCD_GET_MANY_CHUNK 128
typedef int fg_etcd_many_fn(void *ctx, size_t i, const struct fg_etcd_kv *kv);
int fg_etcd_get_many(struct fg_etcd *e, const char *const *keys, size_t n,
		     fg_etcd_many_fn *fn, void *ctx, struct fg_err *err);

/* Transactions. */
enum fg_etcd_target {
	FG_ETCD_VERSION, FG_ETCD_CREATE, FG_ETCD_MOD, FG_ETCD_VALUE,
};
enum fg_etcd_result {
	FG_ETCD_EQUAL, FG_ETCD_NOT_EQUAL, FG_ETCD_LESS, FG_ETCD_GREATER,
};
struct fg_etcd_cmp {
	const char *key;
	enum fg_etcd_target target;
	enum fg_etcd_result result;
	int64_t number;             /* VERSION, CREATE, MOD */
	const char *value;          /* VALUE */
};
enum fg_etcd_op_type { FG_ETCD_PUT, FG_ETCD_DELETE };
struct fg_etcd_op {
	enum fg_etcd_op_type type;
	const char *key;
	const char *value;          /* PUT */
};

/*
 * if (every cmp holds) then succ else fail, atomically, as one revision.
 * *succeeded tells which branch ran; *revision (may be NULL) gets the
 * header revision (the txn's revision when it wrote). -E2BIG when etcd
 * refuses the size or number of ops (err says which limit).
 */
int fg_etcd_txn(struct fg_etcd *e,
		const struct fg_etcd_cmp *cmp, size_t n_cmp,
		const struct fg_etcd_op *succ, size_t n_succ,
		const struct fg_etcd_op *fail, size_t n_fail,
		bool *succeeded, int64_t *revision, struct fg_err *err);

/* Compact the store's history up to revision (physical: waits until done). */
int fg_etcd_compact(struct fg_etcd *e, int64_t revision, struct fg_err *err);

/* The answering member's status: its member id, the leader's member id (0:
 * none known) and the current revision. endpoint: ask that member only (no
 * failover); NULL: the usual endpoint list. */
struct fg_etcd_status {
	uint64_t member_id, leader_id;
	int64_t revision, raft_term;
};
int fg_etcd_status(struct fg_etcd *e, const char *endpoint,
		   struct fg_etcd_status *st, struct fg_err *err);

/*
 * The watch: a streamed POST /v3/watch, driven without blocking from the
 * caller's poll loop (a curl multi handle).
 */
struct fg_etcd_event {
	bool is_delete;
	struct fg_etcd_kv kv;       /* for a delete: key and mod_revision (the
				     * delete's revision) only */
};

/* Events of one revision, in order, every event of that revision together
 * (a txn's events arrive as one call). A non-zero return stops the poll and
 * is returned by it. */
typedef int fg_etcd_watch_fn(void *ctx, int64_t revision,
			     const struct fg_etcd_event *ev, size_t n);

/* Start watching [key, range_end) from start_revision (events with a
 * mod_revision >= it), with progress notifications. Returns at once: the
 * connection is made by fg_etcd_watch_poll. 0 or -errno. A watch already
 * running on e is stopped first. The watch goes to the endpoint the last
 * request answered on; a watch that ended because its member went away
 * (-ECONNRESET) moves that choice to the next endpoint, so the next watch
 * goes to another member. */
int fg_etcd_watch_start(struct fg_etcd *e, const char *key, const char *range_end,
			int64_t start_revision, struct fg_err *err);

/*
 * Move the watch along: wait up to timeout_ms for data, deliver every whole
 * revision received (fn), and return:
 *   >= 0   the number of revisions delivered;
 *   -ESTALE      start_revision was compacted (*compact_rev, if not NULL,
 *                gets etcd's compact revision); the watch is over;
 *   -ECONNRESET  the stream ended or the member went away (or never
 *                answered the create within the request timeout); the watch
 *                is over;
 *   -EPROTO / -EIO as above; the watch is over.
 * After the watch is over, start a new one. *progress_rev (may be NULL) gets
 * the revision up to which the stream has delivered everything: the latest
 * of the delivered events' revisions and of the progress notifications'
 * header revisions (not the header of an events response, which may run
 * ahead of events still to come), 0 if none yet.
 */
int fg_etcd_watch_poll(struct fg_etcd *e, int timeout_ms,
		       fg_etcd_watch_fn *fn, void *ctx,
		       int64_t *compact_rev, int64_t *progress_rev,
		       struct fg_err *err);
bool fg_etcd_watching(const struct fg_etcd *e);
/* The endpoint the running watch went to, or NULL when none runs. */
const char *fg_etcd_watch_endpoint(const struct fg_etcd *e);
void fg_etcd_watch_stop(struct fg_etcd *e);

#endif /* FG_ETCD_H */
