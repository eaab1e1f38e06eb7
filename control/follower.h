/*
 * A router that follows a store (docs/store.md): its tables are always the
 * store's prefix at one revision, never a mix.
 *
 *   start:      the journal's store_revision R (0: none) -> watch from R+1
 *               (R = 0, or R compacted: list the prefix, apply the
 *               difference as one transaction)
 *   each poll:  watched revisions -> one transaction up to the last one
 *               delivered (check all, journal with the revision, apply, grace
 *               period); compaction, disconnect, error -> list again at the
 *               latest revision and apply the difference; failures back off
 *               (jittered exponential) before the next try
 *   freshness:  every probe period, read P seq: when its mod_revision is not
 *               above the enforced revision, the router is confirmed fresh
 *   reconcile:  every reconcile period, a digest of the tables against a
 *               digest of the prefix at the enforced revision; a difference
 *               is drift: repaired as one transaction, and reported
 *   stale:      policy "closed": no confirmed freshness for longer than the
 *               bound stops forwarding (store_stale) until it is confirmed
 *
 * Runs on the control thread, from its poll loop. Store requests are
 * blocking with a timeout (the watch is not).
 */
#ifndef FG_FOLLOWER_H
#define FG_FOLLOWER_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include <framegate/error.h>

#include "journal.h"
#include "ownership.h"

struct fg_follower_config {
	const char *endpoints;          /* etcd endpoints, comma-separated */
	const char *prefix;             /* "/framegate/" */
	bool stale_closed;              /* stale_policy "closed" */
	unsigned int stale_bound_ms;    /* freshness older than this is stale */
	unsigned int probe_ms;          /* freshness probe period */
	unsigned int reconcile_ms;      /* 0: no periodic reconcile */
	unsigned int backoff_min_ms, backoff_max_ms;
	unsigned int timeout_ms;        /* per store request */
	bool gateway;                   /* the watch through the JSON gateway,
					 * not over gRPC */
};

struct fg_follower;

/* closed: the dataplane's flag (1 drops frames as store_stale), written
 * here only. journal may be NULL (tests). NULL with err on bad config. */
struct fg_follower *fg_follower_create(const struct fg_follower_config *cfg,
				       struct fg_ownership *own,
				       struct fg_journal *journal,
				       uint32_t *closed, struct fg_err *err);
void fg_follower_free(struct fg_follower *f);

/* Record every change applied from the store in the audit log (source
 * "store"), as the socket's are; NULL: none. */
struct fg_audit;
void fg_follower_set_audit(struct fg_follower *f, struct fg_audit *a);

/* Do what is due; returns within about one store request's timeout. */
void fg_follower_poll(struct fg_follower *f);

/* Run a reconcile now (the next poll), as if its period had passed. */
void fg_follower_reconcile_soon(struct fg_follower *f);

/* Health fields: "store": {...}, and status "stale"/"degraded" when so. */
void fg_follower_health(const struct fg_follower *f, json_t *res);

/* For metrics: enforced revision, the store's revision, seconds since the
 * last confirmed sync (-1: never). */
void fg_follower_lag(const struct fg_follower *f, int64_t *enforced,
		     int64_t *store_rev, double *since_sync_s);

#endif /* FG_FOLLOWER_H */
