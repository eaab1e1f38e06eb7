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

#include "audit.h"

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
	};

	return (unsigned int)p < sizeof(names) / sizeof(names[0]) ? names[p] : "unknown";
}

/*
 * One line (without its newline) as a record. expect_seq 0 takes any seq;
 * prev NULL takes any link. Sets *seq (-1 when unreadable) and, when the
 * record holds, hash. The checks go from the record itself (JSON, fields,
 * its own hash) to its place in the chain (seq, then prev).
 */
static enum fg_audit_problem
fg_audit_check_line(const char *line, size_t len, uint64_t expect_seq, const char *prev,
		    int64_t *seq, char hash[FG_AUDIT_HASH_HEX + 1], char *msg, size_t msglen)
{
	enum fg_audit_problem p = FG_AUDIT_BAD_RECORD;
	char computed[FG_AUDIT_HASH_HEX + 1];
	json_error_t jerr;
	json_t *rec = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	json_t *seq_j, *ops;
	const char *kind, *rprev, *rhash;

	*seq = -1;
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
	char prev[FG_AUDIT_HASH_HEX + 1];
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
		r->line++;
		if (line[n - 1] != '\n') {
			r->problem = FG_AUDIT_TORN;
			r->seq = -1;
			snprintf(r->msg, sizeof(r->msg), "torn: the last line has no newline (%zd bytes of a write cut short)",
				 n);
			ret = 1;
			break;
		}
		r->problem = fg_audit_check_line(line, (size_t)n - 1, r->last_seq + 1, prev, &r->seq,
						 prev, r->msg, sizeof(r->msg));
		if (r->problem != FG_AUDIT_OK) {
			ret = 1;
			break;
		}
		r->records++;
		r->last_seq = (uint64_t)r->seq;
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

/* An existing file: cut a torn last line, then take the chain from the last
 * record, checked against its own hash. */
static int
fg_audit_resume(struct fg_audit *a, struct fg_audit_open_info *info, struct fg_err *err)
{
	off_t end = a->size, nl, start;
	char *line;
	int64_t seq;
	char msg[200];

	nl = fg_audit_last_nl(a->fd, end);
	if (nl < -1)
		return fg_err_set(err, (int)(-2 - nl), "audit log %s: read: %s", a->path,
				  strerror((int)(-2 - nl)));
	if (nl + 1 != end) {
		/* The torn write of a crash: never fdatasync'd, never acked. */
		info->torn_bytes = (size_t)(end - (nl + 1));
		end = nl + 1;
		if (ftruncate(a->fd, end) != 0 || fsync(a->fd) != 0)
			return fg_err_set(err, errno, "audit log %s: cannot cut off its torn last line: %s",
					  a->path, strerror(errno));
		a->size = end;
	}
	if (end == 0)
		return 0;
	nl = fg_audit_last_nl(a->fd, end - 1);
	if (nl < -1)
		return fg_err_set(err, (int)(-2 - nl), "audit log %s: read: %s", a->path,
				  strerror((int)(-2 - nl)));
	start = nl + 1;
	line = malloc((size_t)(end - 1 - start) + 1);
	if (line == NULL)
		return fg_err_set(err, ENOMEM, "audit log %s: out of memory for its last record", a->path);
	if (pread(a->fd, line, (size_t)(end - 1 - start), start) != end - 1 - start) {
		free(line);
		return fg_err_set(err, EIO, "audit log %s: cannot read its last record", a->path);
	}
	enum fg_audit_problem p = fg_audit_check_line(line, (size_t)(end - 1 - start), 0, NULL,
						      &seq, a->hash, msg, sizeof(msg));
	free(line);
	if (p != FG_AUDIT_OK)
		return fg_err_set(err, EBADMSG, "audit log %s: its last record (at byte %lld) is damaged: %s; `fgctl audit verify %s` names the first bad record",
				  a->path, (long long)start, msg, a->path);
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

/* A new record: seq, time, kind; the caller adds its fields. */
static json_t *
fg_audit_record(const struct fg_audit *a, const char *kind)
{
	struct timespec ts;
	struct tm tm;
	char when[64];
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + n, sizeof(when) - n, ".%06ldZ", ts.tv_nsec / 1000);
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

	if (rec == NULL)
		return fg_err_set(err, ENOMEM, "audit log %s: out of memory for a record", a->path);
	if (a->broken) {
		json_decref(rec);
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

int
fg_audit_add_change(struct fg_audit *a, const char *source, const struct ucred *who,
		    const char *lines, size_t len, struct fg_err *err)
{
	json_t *rec = fg_audit_record(a, "change");
	json_t *ops = json_array();
	const char *p = lines, *end = lines + len;

	if (rec == NULL || ops == NULL) {
		json_decref(rec);
		json_decref(ops);
		fg_audit_rollback(a);
		return fg_err_set(err, ENOMEM, "audit log %s: out of memory for a record", a->path);
	}
	json_object_set_new(rec, "source", json_string(source));
	if (who != NULL)
		json_object_set_new(rec, "peer", json_pack("{s:I, s:I, s:I}",
							   "uid", (json_int_t)who->uid,
							   "gid", (json_int_t)who->gid,
							   "pid", (json_int_t)who->pid));
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		json_t *s = json_stringn(p, n);

		if (s == NULL) {
			json_decref(rec);
			json_decref(ops);
			fg_audit_rollback(a);
			return fg_err_set(err, EINVAL, "audit log %s: op line %zu is not UTF-8 text",
					  a->path, json_array_size(ops) + 1);
		}
		json_array_append_new(ops, s);
		p += n + 1;
	}
	json_object_set_new(rec, "count", json_integer((json_int_t)json_array_size(ops)));
	json_object_set_new(rec, "ops", ops);
	return fg_audit_append(a, rec, err);
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
	json_t *rec = fg_audit_record(a, "alarm");
	json_t *list = json_array();
	int ret;

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
