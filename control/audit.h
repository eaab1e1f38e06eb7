/*
 * The audit log: an append-only, hash-chained record of every change the
 * control plane applied and every sink_mismatch alarm (docs/audit.md).
 *
 * The file is JSON Lines, one record per line, written by the router and
 * checked by `fgctl audit verify`; both use this module, so the record
 * format is written down once, here and in audit.c:
 *
 *   {"seq":N,"time":"2026-11-28T07:13:52.123456Z","kind":"change",
 *    "source":"socket","peer":{"uid":0,"gid":0,"pid":4242},"count":2,
 *    "ops":["{\"op\":\"tenant\",...}","..."],
 *    "prev":"<64 hex>","hash":"<64 hex>"}
 *
 *   {"seq":N,"time":"...","kind":"alarm","reason":"sink_mismatch",
 *    "count":3,"total":5,"tenants":[{"tenant":7,"total":5}],
 *    "prev":"<64 hex>","hash":"<64 hex>"}
 *
 * seq counts from 1 with no gap. "hash" is always the last field: it is the
 * SHA-256 (libsodium) of the line's bytes before `,"hash":`, which hold
 * "prev". "prev" is the previous record's hash; the first record's is the
 * SHA-256 of the genesis string FG_AUDIT_GENESIS. So changing, removing or
 * reordering any record breaks its own hash or the next record's link.
 *
 * "ops" holds a change's op lines as journaled, but never a device key: an
 * op with a "key" is held with "key_fp":"<16 hex>" in its place (see
 * fg_audit_key_fp), re-encoded compactly with its fields in their order;
 * an op without a key is its journal line byte for byte.
 *
 * A change of more than FG_AUDIT_OPS_MAX op lines is several records in a
 * row, its parts, each with "txn" (the seq of its first part), "part" (1,
 * 2, ...) and "parts" (how many) after "kind", and its own "count" and
 * "ops". A change of one record has none of the three. All parts of a
 * change are written under one fdatasync; a change whose last part is
 * missing was never acknowledged.
 *
 * This module needs jansson and libsodium only (no DPDK): fgctl links it.
 */
#ifndef FG_AUDIT_H
#define FG_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include <framegate/error.h>

#define FG_AUDIT_GENESIS "framegate audit log, version 1"
#define FG_AUDIT_HASH_HEX 64    /* hex digits of a SHA-256 */
#define FG_AUDIT_OPS_MAX 1000   /* op lines in one record: a larger change is split */
#define FG_AUDIT_KEY_LEN 16     /* bytes of a device key (FG_AUTH_KEY_LEN) */
#define FG_AUDIT_FP_HEX 16      /* hex digits of a key fingerprint */

struct fg_audit;
struct ucred;                   /* <sys/socket.h>, with _GNU_SOURCE */

/* What fg_audit_open found in an existing file. */
struct fg_audit_open_info {
	uint64_t last_seq;            /* 0: the file was empty or new */
	size_t torn_bytes;            /* bytes cut off the end (0: none): a torn
				       * last line and cut_records */
	uint64_t cut_records;         /* whole parts of a change whose last part
				       * is missing, cut off */
};

/* Open (create, mode 0640) the audit log at path for appending. An existing
 * file continues its chain from its last record, whose own hash is checked.
 * A last line without its newline is the torn write of a crash, never
 * acknowledged: it is cut off (ftruncate + fsync) and reported in info; so
 * are the parts of a change whose last part a crash kept from the file.
 * NULL with err naming the path on failure. info may be NULL. */
struct fg_audit *fg_audit_open(const char *path, struct fg_audit_open_info *info,
			       struct fg_err *err);
void fg_audit_close(struct fg_audit *a);
const char *fg_audit_path(const struct fg_audit *a);

/*
 * A change that was applied: its op lines (each ending in '\n'), exactly as
 * journaled, and who asked: source "socket" with the peer's SO_PEERCRED, or
 * another source ("mappings", "journal", "store", ...) with who NULL.
 * fg_audit_change appends the change's record (or its parts) and fdatasyncs
 * it: 0, or -errno with err naming the file, after which the file is as it
 * was before the call. Keys are replaced by their fingerprints here; a line
 * that names a "key" but cannot be read as an op with a 32-hex-digit key is
 * refused (EINVAL) rather than written.
 *
 * fg_audit_add_change appends without syncing, so that several changes (a
 * group commit) share one fdatasync: fg_audit_commit. A failure of either
 * takes back every record added since the last commit.
 */
int fg_audit_change(struct fg_audit *a, const char *source, const struct ucred *who,
		    const char *lines, size_t len, struct fg_err *err);
int fg_audit_add_change(struct fg_audit *a, const char *source, const struct ucred *who,
			const char *lines, size_t len, struct fg_err *err);
int fg_audit_commit(struct fg_audit *a, struct fg_err *err);

/* One tenant's count in an alarm. */
struct fg_audit_tenant {
	uint32_t tenant;
	uint64_t total;
};

/* An alarm: a drop reason that must stay 0 (sink_mismatch) rose by count
 * to total; tenants holds the per-tenant totals where the tenant is known
 * (n may be 0). Appended and fdatasync'd as fg_audit_change. */
int fg_audit_alarm(struct fg_audit *a, const char *reason, uint64_t count, uint64_t total,
		   const struct fg_audit_tenant *tenants, size_t n, struct fg_err *err);

/* A device key's fingerprint, as "key_fp" holds it: the first 8 bytes of
 * the SHA-256 of the key's 16 bytes (not of its hex text, whose case may
 * differ), in lowercase hex. The same key always gives the same one. */
void fg_audit_key_fp(const uint8_t key[FG_AUDIT_KEY_LEN], char out[FG_AUDIT_FP_HEX + 1]);

/* ---- verification ------------------------------------------------------------ */

enum fg_audit_problem {
	FG_AUDIT_OK,
	FG_AUDIT_TORN,          /* the last line has no newline */
	FG_AUDIT_BAD_JSON,      /* not a JSON object */
	FG_AUDIT_BAD_RECORD,    /* JSON, but not a record (fields, layout) */
	FG_AUDIT_HASH_MISMATCH, /* the bytes do not give the record's hash */
	FG_AUDIT_SEQ_GAP,       /* seq is not the previous one plus 1 */
	FG_AUDIT_BROKEN_LINK,   /* prev is not the previous record's hash */
	FG_AUDIT_BROKEN_TXN,    /* a change's parts are not all there, in order */
};

struct fg_audit_report {
	uint64_t records;                     /* good records before the bad one */
	uint64_t last_seq;                    /* of the last good record */
	char last_hash[FG_AUDIT_HASH_HEX + 1];
	enum fg_audit_problem problem;
	unsigned long line;                   /* first bad line, from 1 */
	int64_t seq;                          /* its seq, -1 when unreadable */
	char msg[256];                        /* what is wrong with it */
};

/* Read the file at path and prove its chain. 0: every record holds (r says
 * how many and the last hash); 1: r names the first bad record (for a
 * change whose parts are not all there in order, its part 1, and the good
 * records are those before it); -errno when the file cannot be read (err
 * names it). */
int fg_audit_verify(const char *path, struct fg_audit_report *r, struct fg_err *err);

/* "hash_mismatch", ... (the JSON name of a problem). */
const char *fg_audit_problem_name(enum fg_audit_problem p);

#endif /* FG_AUDIT_H */
