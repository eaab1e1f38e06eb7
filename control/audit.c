/*
 * The audit log (see audit.h for the record format, docs/audit.md for the
 * operator's view). Records are built with jansson, hashed with libsodium's
 * SHA-256, appended with write() to a file opened O_APPEND and made durable
 * with fdatasync() before the caller acknowledges anything. A write that
 * fails is taken back with ftruncate(), so the file never keeps half a
 * record and the chain in memory always matches the file's last line.
 *
 * The same line check serves the router (its last record, at open) and
 * `fgctl audit verify` (every record, in order).
 *
 * Device keys never reach the file: fg_audit_add_change replaces each op's
 * "key" with its fingerprint itself, so that no caller can forget to.
 */
#define _GNU_SOURCE             /* struct ucred */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include <framegate/wire.h>

#include "audit.h"

_Static_assert(FG_AUDIT_KEY_LEN == FG_AUTH_KEY_LEN, "a device key is FG_AUTH_KEY_LEN bytes");

/* `,"hash":"` + 64 hex digits + `"}`: how every record line ends. */
#define FG_AUDIT_TAIL_HEAD ",\"hash\":\""
#define FG_AUDIT_TAIL_LEN (sizeof(FG_AUDIT_TAIL_HEAD) - 1 + FG_AUDIT_HASH_HEX + 2)

struct fg_audit {
	int fd;
	char path[PATH_MAX];
	/* The file as last synced: its size, last seq and last hash. */
	off_t size;
	uint64_t seq;
	char hash[FG_AUDIT_HASH_HEX + 1];
	/* After the records added since (fg_audit_add_change). */
	off_t pend_size;
	uint64_t pend_seq;
	char pend_hash[FG_AUDIT_HASH_HEX + 1];
	/* A failed write that could not be taken back: no more appends. */
	bool broken;
	char broken_msg[200];
};

static void
fg_audit_sha256_hex(const void *data, size_t len, char out[FG_AUDIT_HASH_HEX + 1])
{
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, data, len);
	sodium_bin2hex(out, FG_AUDIT_HASH_HEX + 1, h, sizeof(h));
}

static void
fg_audit_genesis(char out[FG_AUDIT_HASH_HEX + 1])
{
	fg_audit_sha256_hex(FG_AUDIT_GENESIS, strlen(FG_AUDIT_GENESIS), out);
}

static bool
fg_audit_is_hash(const char *s)
{
	return s != NULL && strlen(s) == FG_AUDIT_HASH_HEX &&
	       strspn(s, "0123456789abcdef") == FG_AUDIT_HASH_HEX;
}

const char *
fg_audit_problem_name(enum fg_audit_problem p)
{
	static const char *const names[] = {
		[FG_AUDIT_OK] = "ok",
		[FG_AUDIT_TORN] = "torn_line",
		[FG_AUDIT_BAD_JSON] = "bad_json",
		[FG_AUDIT_BAD_RECORD] = "bad_record",
		[FG_AUDIT_HASH_MISMATCH] = "hash_mismatch",
		[FG_AUDIT_SEQ_GAP] = "sequence_gap",
		[FG_AUDIT_BROKEN_LINK] = "broken_link",
		[FG_AUDIT_BROKEN_TXN] = "broken_txn",
	};

	return (unsigned int)p < sizeof(names) / sizeof(names[0]) ? names[p] : "unknown";
}

/* A record's place in a change of several parts; parts 0: a whole change
 * (or an alarm) in one record. */
struct fg_audit_txn {
	uint64_t txn;
	uint64_t part, parts;
};

/* "txn", "part" and "parts": all three or none, a change's, and txn the seq
 * of part 1 (the parts are consecutive records). A message, or NULL. */
static const char *
fg_audit_txn_fields(json_t *rec, const char *kind, int64_t seq, struct fg_audit_txn *t)
{
	json_t *txn = json_object_get(rec, "txn"), *part = json_object_get(rec, "part");
	json_t *parts = json_object_get(rec, "parts");

	memset(t, 0, sizeof(*t));
	if (txn == NULL && part == NULL && parts == NULL)
		return NULL;
	if (!json_is_integer(txn) || !json_is_integer(part) || !json_is_integer(parts))
		return "\"txn\", \"part\" and \"parts\" must be integers, all three or none";
	if (strcmp(kind, "change") != 0)
		return "only a change has parts";
	if (json_integer_value(parts) < 2 || json_integer_value(part) < 1 ||
	    json_integer_value(part) > json_integer_value(parts))
		return "\"part\" must be 1 to \"parts\", and \"parts\" at least 2";
	if (json_integer_value(txn) != seq - (json_integer_value(part) - 1))
		return "\"txn\" must be the seq of the change's part 1";
	t->txn = (uint64_t)json_integer_value(txn);
	t->part = (uint64_t)json_integer_value(part);
	t->parts = (uint64_t)json_integer_value(parts);
	return NULL;
}

/*
 * One line (without its newline) as a record. expect_seq 0 takes any seq;
 * prev NULL takes any link. Sets *seq (-1 when unreadable), *t and, when the
 * record holds, hash. The checks go from the record itself (JSON, fields,
 * its own hash) to its place in the chain (seq, then prev); whether a
 * change's parts are all there is the caller's to see, from t.
 */
static enum fg_audit_problem
fg_audit_check_line(const char *line, size_t len, uint64_t expect_seq, const char *prev,
		    int64_t *seq, struct fg_audit_txn *t, char hash[FG_AUDIT_HASH_HEX + 1],
		    char *msg, size_t msglen)
{
	enum fg_audit_problem p = FG_AUDIT_BAD_RECORD;
	char computed[FG_AUDIT_HASH_HEX + 1];
	json_error_t jerr;
	json_t *rec = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	json_t *seq_j, *ops;
	const char *kind, *rprev, *rhash, *bad_txn = NULL;

	*seq = -1;
	memset(t, 0, sizeof(*t));
	if (rec == NULL || !json_is_object(rec)) {
		if (rec == NULL)
			snprintf(msg, msglen, "not JSON: %s (column %d)", jerr.text, jerr.column);
		else
			snprintf(msg, msglen, "not a JSON object");
		json_decref(rec);
		return FG_AUDIT_BAD_JSON;
	}
	seq_j = json_object_get(rec, "seq");
	if (!json_is_integer(seq_j) || json_integer_value(seq_j) < 1) {
		snprintf(msg, msglen, "no \"seq\" (a positive integer): not an audit record");
		goto out;
	}
	*seq = json_integer_value(seq_j);
	kind = json_string_value(json_object_get(rec, "kind"));
	rprev = json_string_value(json_object_get(rec, "prev"));
	rhash = json_string_value(json_object_get(rec, "hash"));
	ops = json_object_get(rec, "ops");
	if (!json_is_string(json_object_get(rec, "time"))) {
		snprintf(msg, msglen, "no \"time\"");
	} else if (kind == NULL || (strcmp(kind, "change") != 0 && strcmp(kind, "alarm") != 0)) {
		snprintf(msg, msglen, "\"kind\" is not \"change\" or \"alarm\"");
	} else if (!json_is_integer(json_object_get(rec, "count"))) {
		snprintf(msg, msglen, "no \"count\"");
	} else if (strcmp(kind, "change") == 0 &&
		   (!json_is_array(ops) ||
		    json_integer_value(json_object_get(rec, "count")) != (json_int_t)json_array_size(ops))) {
		snprintf(msg, msglen, "a change's \"ops\" must be an array of \"count\" op lines");
	} else if (strcmp(kind, "alarm") == 0 && !json_is_string(json_object_get(rec, "reason"))) {
		snprintf(msg, msglen, "an alarm needs a \"reason\"");
	} else if ((bad_txn = fg_audit_txn_fields(rec, kind, *seq, t)) != NULL) {
		snprintf(msg, msglen, "%s", bad_txn);
	} else if (!fg_audit_is_hash(rprev) || !fg_audit_is_hash(rhash)) {
		snprintf(msg, msglen, "\"prev\" and \"hash\" must be %d lowercase hex digits",
			 FG_AUDIT_HASH_HEX);
	} else if (len <= FG_AUDIT_TAIL_LEN ||
		   memcmp(line + len - FG_AUDIT_TAIL_LEN, FG_AUDIT_TAIL_HEAD,
			  sizeof(FG_AUDIT_TAIL_HEAD) - 1) != 0 ||
		   memcmp(line + len - 2 - FG_AUDIT_HASH_HEX, rhash, FG_AUDIT_HASH_HEX) != 0 ||
		   memcmp(line + len - 2, "\"}", 2) != 0) {
		snprintf(msg, msglen, "the line does not end with its \"hash\" field");
	} else {
		fg_audit_sha256_hex(line, len - FG_AUDIT_TAIL_LEN, computed);
		if (strcmp(computed, rhash) != 0) {
			p = FG_AUDIT_HASH_MISMATCH;
			snprintf(msg, msglen, "hash mismatch: the record's bytes hash to %.16s..., its \"hash\" says %.16s... (the record was changed)",
				 computed, rhash);
		} else if (expect_seq != 0 && (uint64_t)*seq != expect_seq) {
			p = FG_AUDIT_SEQ_GAP;
			snprintf(msg, msglen, "sequence gap: seq %" PRId64 " where %" PRIu64 " was expected (a record is missing or out of order)",
				 *seq, expect_seq);
		} else if (prev != NULL && strcmp(prev, rprev) != 0) {
			p = FG_AUDIT_BROKEN_LINK;
			snprintf(msg, msglen, "broken link: its \"prev\" %.16s... is not the hash of the record before it, %.16s...",
				 rprev, prev);
		} else {
			p = FG_AUDIT_OK;
			memcpy(hash, rhash, FG_AUDIT_HASH_HEX + 1);
		}
	}
out:
	json_decref(rec);
	return p;
}

int
fg_audit_verify(const char *path, struct fg_audit_report *r, struct fg_err *err)
{
	char prev[FG_AUDIT_HASH_HEX + 1], before[FG_AUDIT_HASH_HEX + 1];
	/* An open change of several parts, and the report as it was before
	 * its part 1. */
	struct {
		uint64_t txn, part, parts, records, last_seq;
		unsigned long line;
		char prev[FG_AUDIT_HASH_HEX + 1];
		char msg[sizeof(r->msg)];
	} open = { 0 };
	char *line = NULL;
	size_t cap = 0;
	struct stat st;
	ssize_t n;
	FILE *f;
	int ret = 0;

	memset(r, 0, sizeof(*r));
	r->seq = -1;
	if (sodium_init() < 0)
		return fg_err_set(err, EFAULT, "libsodium cannot start");
	f = fopen(path, "r");
	if (f == NULL)
		return fg_err_set(err, errno, "%s: %s", path, strerror(errno));
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
		fclose(f);
		return fg_err_set(err, EINVAL, "%s: not a regular file", path);
	}
	fg_audit_genesis(prev);
	while ((n = getline(&line, &cap, f)) > 0) {
		struct fg_audit_txn t;

		r->line++;
		if (line[n - 1] != '\n') {
			r->problem = FG_AUDIT_TORN;
			r->seq = -1;
			snprintf(r->msg, sizeof(r->msg), "torn: the last line has no newline (%zd bytes of a write cut short)",
				 n);
			ret = 1;
			break;
		}
		memcpy(before, prev, sizeof(before));
		r->problem = fg_audit_check_line(line, (size_t)n - 1, r->last_seq + 1, prev, &r->seq,
						 &t, prev, r->msg, sizeof(r->msg));
		if (r->problem != FG_AUDIT_OK) {
			ret = 1;
			break;
		}
		/* The parts of a change: part 1 opens it, each record then is
		 * its next part until the last. Line and seq make the check:
		 * the per-line one ties txn to seq. */
		if (open.parts != 0 && (t.txn != open.txn || t.parts != open.parts)) {
			snprintf(open.msg, sizeof(open.msg), "broken change: transaction %" PRIu64 " has %" PRIu64 " of its %" PRIu64 " parts; record %" PRId64 " at line %lu is not part %" PRIu64,
				 open.txn, open.part, open.parts, r->seq, r->line, open.part + 1);
			ret = 1;
			break;
		}
		if (open.parts == 0 && t.parts != 0 && t.part != 1) {
			r->problem = FG_AUDIT_BROKEN_TXN;
			snprintf(r->msg, sizeof(r->msg), "broken change: part %" PRIu64 " of %" PRIu64 " of transaction %" PRIu64 " without the parts before it",
				 t.part, t.parts, t.txn);
			ret = 1;
			break;
		}
		if (open.parts == 0 && t.parts != 0) {
			open.txn = t.txn;
			open.parts = t.parts;
			open.line = r->line;
			open.records = r->records;
			open.last_seq = r->last_seq;
			memcpy(open.prev, before, sizeof(open.prev));
		}
		open.part = t.part;
		if (open.part == open.parts)
			open.parts = 0;
		r->records++;
		r->last_seq = (uint64_t)r->seq;
	}
	if (ret == 0 && open.parts != 0)
		snprintf(open.msg, sizeof(open.msg), "broken change: transaction %" PRIu64 " has %" PRIu64 " of its %" PRIu64 " parts, the file ends there (the rest was cut off, or a crash stopped the write and the router has not cut it yet)",
			 open.txn, open.part, open.parts);
	if (open.msg[0] != '\0') {
		/* The change as a whole is the bad record: named by its part 1,
		 * and the records before it are the good ones. */
		r->problem = FG_AUDIT_BROKEN_TXN;
		r->line = open.line;
		r->seq = (int64_t)open.txn;
		r->records = open.records;
		r->last_seq = open.last_seq;
		memcpy(prev, open.prev, sizeof(open.prev));
		snprintf(r->msg, sizeof(r->msg), "%s", open.msg);
		ret = 1;
	}
	if (ret == 0 && ferror(f))
		ret = fg_err_set(err, errno ? errno : EIO, "%s: read: %s", path,
				 strerror(errno ? errno : EIO));
	if (ret == 0) {
		r->line = 0;
		r->seq = -1;
	}
	/* prev is the last good record's hash (or the genesis hash). */
	memcpy(r->last_hash, prev, sizeof(r->last_hash));
	free(line);
	fclose(f);
	return ret;
}

/* ---- the writer --------------------------------------------------------------- */

/* Offset of the last '\n' in [0, end) of fd, -1 when there is none, or
 * -2 - errno on a read error. */
static off_t
fg_audit_last_nl(int fd, off_t end)
{
	char buf[65536];

	while (end > 0) {
		off_t start = end > (off_t)sizeof(buf) ? end - (off_t)sizeof(buf) : 0;
		ssize_t n = pread(fd, buf, (size_t)(end - start), start);

		if (n != end - start)
			return -2 - (n < 0 ? errno : EIO);
		for (ssize_t i = n; i-- > 0;)
			if (buf[i] == '\n')
				return start + i;
		end = start;
	}
	return -1;
}

static int
fg_audit_fsync_dir(const char *path)
{
	char copy[PATH_MAX];
	int fd, ret;

	snprintf(copy, sizeof(copy), "%s", path);
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = fsync(fd) != 0 ? -errno : 0;
	close(fd);
	return ret;
}

/* The record line [start, end) of a's file (end excludes its '\n'),
 * checked by itself: FG_AUDIT_OK or the problem, with msg; -errno on a
 * read error (err set). */
static int
fg_audit_read_record(struct fg_audit *a, off_t start, off_t end, int64_t *seq,
		     struct fg_audit_txn *t, char hash[FG_AUDIT_HASH_HEX + 1], char *msg,
		     size_t msglen, struct fg_err *err)
{
	size_t len = (size_t)(end - start);
	char *line = malloc(len + 1);
	enum fg_audit_problem p;

	if (line == NULL)
		return fg_err_set(err, ENOMEM, "audit log %s: out of memory for a record", a->path);
	if (pread(a->fd, line, len, start) != (ssize_t)len) {
		free(line);
		return fg_err_set(err, EIO, "audit log %s: cannot read the record at byte %lld",
				  a->path, (long long)start);
	}
	p = fg_audit_check_line(line, len, 0, NULL, seq, t, hash, msg, msglen);
	free(line);
	return (int)p;
}

/* The start of the line that ends (with its '\n') at end; -1 when a read
 * fails (err set). */
static off_t
fg_audit_line_start(struct fg_audit *a, off_t end, struct fg_err *err)
{
	off_t nl = fg_audit_last_nl(a->fd, end - 1);

	if (nl < -1) {
		fg_err_set(err, (int)(-2 - nl), "audit log %s: read: %s", a->path,
			   strerror((int)(-2 - nl)));
		return -1;
	}
	return nl + 1;
}

/* Cut the file at end (ftruncate + fsync). */
static int
fg_audit_cut(struct fg_audit *a, off_t end, const char *what, struct fg_err *err)
{
	if (ftruncate(a->fd, end) != 0 || fsync(a->fd) != 0)
		return fg_err_set(err, errno, "audit log %s: cannot cut off %s: %s", a->path, what,
				  strerror(errno));
	a->size = end;
	return 0;
}

/* An existing file: cut a torn last line and the parts of a change whose
 * last part is missing (both what a crash in an append leaves, neither
 * fdatasync'd as a whole, so never acknowledged), then take the chain from
 * the last record, checked against its own hash. */
static int
fg_audit_resume(struct fg_audit *a, struct fg_audit_open_info *info, struct fg_err *err)
{
	off_t end = a->size, nl, start, first, line_end;
	struct fg_audit_txn t, t1;
	int64_t seq, seq1;
	char msg[200], hash[FG_AUDIT_HASH_HEX + 1];
	int p;

	nl = fg_audit_last_nl(a->fd, end);
	if (nl < -1)
		return fg_err_set(err, (int)(-2 - nl), "audit log %s: read: %s", a->path,
				  strerror((int)(-2 - nl)));
	if (nl + 1 != end) {
		info->torn_bytes = (size_t)(end - (nl + 1));
		end = nl + 1;
		if (fg_audit_cut(a, end, "its torn last line", err) < 0)
			return -err->code;
	}
	for (;;) {
		if (end == 0)
			return 0;       /* a->hash is still the genesis hash */
		start = fg_audit_line_start(a, end, err);
		if (start < 0)
			return -err->code;
		p = fg_audit_read_record(a, start, end - 1, &seq, &t, hash, msg, sizeof(msg), err);
		if (p < 0)
			return p;
		if (p != FG_AUDIT_OK)
			return fg_err_set(err, EBADMSG, "audit log %s: its last record (at byte %lld) is damaged: %s; `fgctl audit verify %s` names the first bad record",
					  a->path, (long long)start, msg, a->path);
		if (t.parts == 0 || t.part == t.parts)
			break;
		/* Parts 1..part of an unfinished change: part 1 is part - 1
		 * lines back, and must say so. */
		first = start;
		line_end = end;
		p = FG_AUDIT_OK;
		for (uint64_t k = 1; k < t.part && p == FG_AUDIT_OK; k++) {
			if (first == 0) {
				p = FG_AUDIT_BAD_RECORD;
				break;
			}
			line_end = first;
			if ((first = fg_audit_line_start(a, line_end, err)) < 0)
				return -err->code;
		}
		if (p == FG_AUDIT_OK)
			p = fg_audit_read_record(a, first, line_end - 1, &seq1, &t1, hash, msg,
						 sizeof(msg), err);
		if (p < 0)
			return p;
		if (p != FG_AUDIT_OK || t1.txn != t.txn || t1.part != 1)
			return fg_err_set(err, EBADMSG, "audit log %s: its last record (at byte %lld) is part %" PRIu64 " of %" PRIu64 " of transaction %" PRIu64 ", but its part 1 is not %" PRIu64 " records before it; `fgctl audit verify %s` names the first bad record",
					  a->path, (long long)start, t.part, t.parts, t.txn, t.part - 1,
					  a->path);
		info->torn_bytes += (size_t)(end - first);
		info->cut_records += t.part;
		end = first;
		if (fg_audit_cut(a, end, "the parts of an unfinished change", err) < 0)
			return -err->code;
	}
	memcpy(a->hash, hash, sizeof(hash));
	a->seq = (uint64_t)seq;
	info->last_seq = a->seq;
	return 0;
}

struct fg_audit *
fg_audit_open(const char *path, struct fg_audit_open_info *info, struct fg_err *err)
{
	struct fg_audit_open_info dummy;
	struct fg_audit *a;
	struct stat st;
	bool existed;
	int ret;

	if (info == NULL)
		info = &dummy;
	memset(info, 0, sizeof(*info));
	if (sodium_init() < 0) {
		fg_err_set(err, EFAULT, "audit log %s: libsodium cannot start", path);
		return NULL;
	}
	if (strlen(path) >= PATH_MAX) {
		fg_err_set(err, ENAMETOOLONG, "audit log %s: the path is too long", path);
		return NULL;
	}
	a = calloc(1, sizeof(*a));
	if (a == NULL) {
		fg_err_set(err, ENOMEM, "audit log %s: out of memory", path);
		return NULL;
	}
	snprintf(a->path, sizeof(a->path), "%s", path);
	existed = access(path, F_OK) == 0;
	a->fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (a->fd < 0) {
		fg_err_set(err, errno, "audit log %s: cannot open it for appending: %s", path,
			   strerror(errno));
		free(a);
		return NULL;
	}
	if (fstat(a->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		fg_err_set(err, EINVAL, "audit log %s: not a regular file", path);
		goto fail;
	}
	if (!existed && (ret = fg_audit_fsync_dir(path)) < 0) {
		fg_err_set(err, -ret, "audit log %s: cannot make its folder entry durable: %s", path,
			   strerror(-ret));
		goto fail;
	}
	a->size = st.st_size;
	fg_audit_genesis(a->hash);
	if (fg_audit_resume(a, info, err) < 0)
		goto fail;
	a->pend_size = a->size;
	a->pend_seq = a->seq;
	memcpy(a->pend_hash, a->hash, sizeof(a->hash));
	return a;
fail:
	close(a->fd);
	free(a);
	return NULL;
}

void
fg_audit_close(struct fg_audit *a)
{
	if (a == NULL)
		return;
	close(a->fd);
	free(a);
}

const char *
fg_audit_path(const struct fg_audit *a)
{
	return a->path;
}

/* Take back every record added since the last sync, and any part of one
 * that a failed write left (the file may be longer than pend_size). */
static void
fg_audit_rollback(struct fg_audit *a)
{
	if (ftruncate(a->fd, a->size) != 0 && !a->broken) {
		a->broken = true;
		snprintf(a->broken_msg, sizeof(a->broken_msg),
			 "a failed write could not be taken back (ftruncate: %s)", strerror(errno));
	}
	a->pend_size = a->size;
	a->pend_seq = a->seq;
	memcpy(a->pend_hash, a->hash, sizeof(a->hash));
}

/* Now, as a record's "time": UTC, microseconds. */
static void
fg_audit_now(char when[40])
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(when, 40, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + n, 40 - n, ".%06ldZ", ts.tv_nsec / 1000);
}

/* A new record: seq, time, kind; the caller adds its fields. */
static json_t *
fg_audit_record(const struct fg_audit *a, const char *when, const char *kind)
{
	return json_pack("{s:I, s:s, s:s}", "seq", (json_int_t)(a->pend_seq + 1), "time", when,
			 "kind", kind);
}

/* Close the record with prev and hash, and append it (no sync). Takes rec. */
static int
fg_audit_append(struct fg_audit *a, json_t *rec, struct fg_err *err)
{
	char hash[FG_AUDIT_HASH_HEX + 1];
	char *body, *line;
	size_t len, off = 0;

	if (rec == NULL) {
		fg_audit_rollback(a);
		return fg_err_set(err, ENOMEM, "audit log %s: out of memory for a record", a->path);
	}
	if (a->broken) {
		json_decref(rec);
		fg_audit_rollback(a);
		return fg_err_set(err, EIO, "audit log %s: %s; restart the router to go on",
				  a->path, a->broken_msg);
	}
	json_object_set_new(rec, "prev", json_string(a->pend_hash));
	body = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(rec);
	len = body ? strlen(body) : 0;
	/* body minus its '}', the tail, '\n' and sprintf's '\0'. */
	line = body ? malloc(len - 1 + FG_AUDIT_TAIL_LEN + 2) : NULL;
	if (line == NULL) {
		free(body);
		fg_audit_rollback(a);
		return fg_err_set(err, ENOMEM, "audit log %s: out of memory for a record", a->path);
	}
	/* body is {...,"prev":"..."}: the hash covers it without its '}'. */
	fg_audit_sha256_hex(body, len - 1, hash);
	memcpy(line, body, len - 1);
	len = len - 1 + (size_t)sprintf(line + len - 1, FG_AUDIT_TAIL_HEAD "%s\"}\n", hash);
	free(body);
	while (off < len) {
		ssize_t n = write(a->fd, line + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;

			free(line);
			fg_audit_rollback(a);
			return fg_err_set(err, e, "audit log %s: write: %s", a->path, strerror(e));
		}
		off += (size_t)n;
	}
	free(line);
	a->pend_size += (off_t)len;
	a->pend_seq++;
	memcpy(a->pend_hash, hash, sizeof(hash));
	return 0;
}

int
fg_audit_commit(struct fg_audit *a, struct fg_err *err)
{
	if (a->pend_size == a->size)
		return 0;
	if (fdatasync(a->fd) != 0) {
		int e = errno;

		fg_audit_rollback(a);
		return fg_err_set(err, e, "audit log %s: fdatasync: %s", a->path, strerror(e));
	}
	a->size = a->pend_size;
	a->seq = a->pend_seq;
	memcpy(a->hash, a->pend_hash, sizeof(a->hash));
	return 0;
}

void
fg_audit_key_fp(const uint8_t key[FG_AUDIT_KEY_LEN], char out[FG_AUDIT_FP_HEX + 1])
{
	unsigned char h[crypto_hash_sha256_BYTES];

	crypto_hash_sha256(h, key, FG_AUDIT_KEY_LEN);
	sodium_bin2hex(out, FG_AUDIT_FP_HEX + 1, h, FG_AUDIT_FP_HEX / 2);
	sodium_memzero(h, sizeof(h));
}

/*
 * Op line no (from 1) as "ops" holds it (a JSON string): the line itself,
 * or, when it has a "key", the op re-encoded with "key_fp" in the key's
 * place. A line that names a key but cannot be read as an op with one is
 * refused rather than written: the file must never hold a key. A member
 * named key is spelt `key` in the text or holds an escape, so a line with
 * neither needs no parsing.
 */
static json_t *
fg_audit_op(const struct fg_audit *a, const char *line, size_t n, size_t no, struct fg_err *err)
{
	uint8_t key[FG_AUDIT_KEY_LEN];
	char fp[FG_AUDIT_FP_HEX + 1];
	json_error_t jerr;
	json_t *o, *v, *out, *s = json_stringn(line, n);
	const char *field, *hex;
	char *text;

	if (s == NULL) {
		fg_err_set(err, EINVAL, "audit log %s: op line %zu is not UTF-8 text", a->path, no);
		return NULL;
	}
	if (memmem(line, n, "key", 3) == NULL && memchr(line, '\\', n) == NULL)
		return s;
	o = json_loadb(line, n, JSON_REJECT_DUPLICATES, &jerr);
	if (o == NULL || !json_is_object(o)) {
		json_decref(o);
		if (memmem(line, n, "key", 3) == NULL)
			return s;      /* not an op, and no key in it either */
		json_decref(s);
		fg_err_set(err, EINVAL, "audit log %s: op line %zu is not a JSON object but may name a key, so it is not recorded",
			   a->path, no);
		return NULL;
	}
	v = json_object_get(o, "key");
	if (v == NULL) {
		json_decref(o);
		return s;
	}
	json_decref(s);
	hex = json_string_value(v);
	if (hex == NULL || strlen(hex) != 2 * FG_AUDIT_KEY_LEN ||
	    sodium_hex2bin(key, sizeof(key), hex, strlen(hex), NULL, NULL, NULL) != 0) {
		json_decref(o);
		fg_err_set(err, EINVAL, "audit log %s: op line %zu: its \"key\" is not %d hex digits, so the line is not recorded",
			   a->path, no, 2 * FG_AUDIT_KEY_LEN);
		return NULL;
	}
	fg_audit_key_fp(key, fp);
	sodium_memzero(key, sizeof(key));
	out = json_object();
	json_object_foreach(o, field, v) {
		if (strcmp(field, "key") == 0)
			json_object_set_new(out, "key_fp", json_string(fp));
		else
			json_object_set(out, field, v);
	}
	json_decref(o);
	text = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(out);
	s = text ? json_string(text) : NULL;
	free(text);
	if (s == NULL)
		fg_err_set(err, ENOMEM, "audit log %s: out of memory for a record", a->path);
	return s;
}

/* The number of lines in lines[0, len): the last may lack its '\n'. */
static size_t
fg_audit_count_lines(const char *lines, size_t len)
{
	const char *p = lines, *end = lines + len;
	size_t n = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		p = nl ? nl + 1 : end;
		n++;
	}
	return n;
}

int
fg_audit_add_change(struct fg_audit *a, const char *source, const struct ucred *who,
		    const char *lines, size_t len, struct fg_err *err)
{
	size_t total = fg_audit_count_lines(lines, len), no = 0;
	size_t parts = total <= FG_AUDIT_OPS_MAX ? 1 : (total + FG_AUDIT_OPS_MAX - 1) / FG_AUDIT_OPS_MAX;
	const char *p = lines, *end = lines + len;
	uint64_t txn = a->pend_seq + 1;
	char when[40];
	int ret;

	/* One time for the change: its parts are one event. */
	fg_audit_now(when);
	for (size_t part = 1; part <= parts; part++) {
		json_t *rec = fg_audit_record(a, when, "change");
		json_t *ops = json_array();

		if (rec == NULL || ops == NULL) {
			json_decref(rec);
			json_decref(ops);
			fg_audit_rollback(a);
			return fg_err_set(err, ENOMEM, "audit log %s: out of memory for a record", a->path);
		}
		for (size_t k = 0; k < FG_AUDIT_OPS_MAX && p < end; k++) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
			json_t *s = fg_audit_op(a, p, n, ++no, err);

			if (s == NULL || json_array_append_new(ops, s) != 0) {
				json_decref(rec);
				json_decref(ops);
				fg_audit_rollback(a);
				return s == NULL ? -err->code
						 : fg_err_set(err, ENOMEM, "audit log %s: out of memory for a record",
							      a->path);
			}
			p += n + 1;
		}
		if (parts > 1) {
			json_object_set_new(rec, "txn", json_integer((json_int_t)txn));
			json_object_set_new(rec, "part", json_integer((json_int_t)part));
			json_object_set_new(rec, "parts", json_integer((json_int_t)parts));
		}
		json_object_set_new(rec, "source", json_string(source));
		if (who != NULL)
			json_object_set_new(rec, "peer", json_pack("{s:I, s:I, s:I}",
								   "uid", (json_int_t)who->uid,
								   "gid", (json_int_t)who->gid,
								   "pid", (json_int_t)who->pid));
		json_object_set_new(rec, "count", json_integer((json_int_t)json_array_size(ops)));
		json_object_set_new(rec, "ops", ops);
		/* A failed append takes back the parts before it too. */
		ret = fg_audit_append(a, rec, err);
		if (ret < 0)
			return ret;
	}
	return 0;
}

int
fg_audit_change(struct fg_audit *a, const char *source, const struct ucred *who,
		const char *lines, size_t len, struct fg_err *err)
{
	int ret = fg_audit_add_change(a, source, who, lines, len, err);

	return ret < 0 ? ret : fg_audit_commit(a, err);
}

int
fg_audit_alarm(struct fg_audit *a, const char *reason, uint64_t count, uint64_t total,
	       const struct fg_audit_tenant *tenants, size_t n, struct fg_err *err)
{
	json_t *list = json_array();
	char when[40];
	json_t *rec;
	int ret;

	fg_audit_now(when);
	rec = fg_audit_record(a, when, "alarm");
	if (rec == NULL || list == NULL) {
		json_decref(rec);
		json_decref(list);
		return fg_err_set(err, ENOMEM, "audit log %s: out of memory for a record", a->path);
	}
	for (size_t i = 0; i < n; i++)
		json_array_append_new(list, json_pack("{s:I, s:I}", "tenant",
						      (json_int_t)tenants[i].tenant, "total",
						      (json_int_t)tenants[i].total));
	json_object_set_new(rec, "reason", json_string(reason));
	json_object_set_new(rec, "count", json_integer((json_int_t)count));
	json_object_set_new(rec, "total", json_integer((json_int_t)total));
	json_object_set_new(rec, "tenants", list);
	ret = fg_audit_append(a, rec, err);
	return ret < 0 ? ret : fg_audit_commit(a, err);
}
