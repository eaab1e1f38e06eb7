/*
 * The control plane's durable journal (see journal.h for the on-disk format
 * and the rules): records appended to journal.log with pwrite + fdatasync, a
 * snapshot written with write + fsync + rename + directory fsync, and a
 * replay that checks every record (CRC32C from DPDK's rte_hash_crc) before
 * applying any, cutting off a torn tail (keeping a damaged one's bytes in a
 * file) and refusing damage in the middle; and the recovery of a journal
 * whose write failed: cut back, probe the disk, check the records again.
 */
#define _GNU_SOURCE               /* memmem, O_TMPFILE */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <rte_hash_crc.h>

#include "journal.h"

#define FG_JOURNAL_LOG "journal.log"
#define FG_JOURNAL_SNAP "snapshot.jsonl"
#define FG_JOURNAL_TMP "snapshot.tmp"
#define FG_JOURNAL_PROBE "journal.probe"   /* where O_TMPFILE is not supported */
#define FG_JOURNAL_CUT FG_JOURNAL_LOG ".cut-"
#define FG_JOURNAL_CHUNK (1u << 20)       /* bytes read at a time by recovery */
#define FG_JOURNAL_SNAP_HEADER_MAX 256   /* bytes of the snapshot's first line */

static const char fg_journal_magic[4] = { 'F', 'G', 'J', '1' };

struct fg_journal {
	char *dir;          /* as given, for messages */
	int dirfd;
	int fd;             /* journal.log, flock'ed */
	uint64_t end;       /* end of the last whole record */
	uint64_t records;   /* records in journal.log */
	uint32_t gen;       /* generation of new records: the snapshot's */
	bool replayed;      /* appends and snapshots are allowed */
	bool failed;        /* a write or sync failed: refuse writes until recovered */
	bool snap_pending;  /* a snapshot was renamed in, but the directory fsync
			     * or the truncation of journal.log after it failed */
	int fail_code;      /* errno of the failure that set failed */
	char fail_what[96]; /* what failed, for the refusals: "appending record 12" */
	char fail_msg[256]; /* that failure's whole message */
};

/* ---- CRC32C and byte order ------------------------------------------------ */

/* rte_hash_crc() reads 8, 4, 2 bytes at a time through typed pointers, so it
 * is fed from an aligned buffer; CRC32C is a byte stream, so the chunks chain. */
static uint32_t
fg_crc_update(uint32_t crc, const void *data, size_t len)
{
	uint64_t chunk[512];
	const uint8_t *p = data;

	while (len > 0) {
		size_t n = len < sizeof(chunk) ? len : sizeof(chunk);

		memcpy(chunk, p, n);
		crc = rte_hash_crc(chunk, (uint32_t)n, crc);
		p += n;
		len -= n;
	}
	return crc;
}

uint32_t
fg_journal_crc32c(const void *data, size_t len)
{
	return ~fg_crc_update(UINT32_MAX, data, len);
}

static uint32_t
fg_record_crc(const uint8_t *header, const void *payload, size_t len)
{
	return ~fg_crc_update(fg_crc_update(UINT32_MAX, header, 12), payload, len);
}

static void
fg_put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t
fg_get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* ---- small I/O helpers ---------------------------------------------------- */

static int
fg_pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* len bytes of fd from offset off: 0, or -errno (-EIO when it ends first). */
static int
fg_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;   /* shorter than fstat said */
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Lines as the journal takes them: non-empty, ending in '\n', no NUL. */
static const char *
fg_lines_problem(const char *lines, size_t len)
{
	if (len == 0)
		return "no op lines";
	if (lines[len - 1] != '\n')
		return "the last line does not end in '\\n'";
	if (memchr(lines, '\0', len) != NULL)
		return "a NUL byte in the op lines";
	return NULL;
}

/* ---- open and close ------------------------------------------------------- */

/* Make a new directory entry durable: fsync the directory that holds path. */
static int
fg_fsync_parent(const char *path)
{
	char *copy = strdup(path);
	int fd, ret = 0;

	if (copy == NULL)
		return -ENOMEM;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) != 0)
		ret = -errno;
	if (fd >= 0)
		close(fd);
	free(copy);
	return ret;
}

struct fg_journal *
fg_journal_open(const char *dir, struct fg_err *err)
{
	struct fg_journal *j = calloc(1, sizeof(*j));
	bool created = false;
	struct stat sb;
	int ret;

	if (j == NULL || (j->dir = strdup(dir)) == NULL) {
		fg_err_set(err, ENOMEM, "%s: out of memory", dir);
		free(j);
		return NULL;
	}
	j->dirfd = j->fd = -1;

	if (mkdir(dir, 0750) == 0) {
		ret = fg_fsync_parent(dir);
		if (ret < 0) {
			fg_err_set(err, -ret, "%s: syncing the parent directory: %s",
				   dir, strerror(-ret));
			goto fail;
		}
	} else if (errno != EEXIST) {
		fg_err_set(err, errno, "%s: cannot create the journal directory: %s",
			   dir, strerror(errno));
		goto fail;
	}
	j->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (j->dirfd < 0) {
		fg_err_set(err, errno, "%s: %s", dir, strerror(errno));
		goto fail;
	}

	j->fd = openat(j->dirfd, FG_JOURNAL_LOG,
		       O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (j->fd >= 0)
		created = true;
	else if (errno == EEXIST)
		j->fd = openat(j->dirfd, FG_JOURNAL_LOG, O_RDWR | O_CLOEXEC);
	if (j->fd < 0) {
		fg_err_set(err, errno, "%s/" FG_JOURNAL_LOG ": %s", dir, strerror(errno));
		goto fail;
	}
	if (flock(j->fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno == EWOULDBLOCK)
			fg_err_set(err, EBUSY, "%s/" FG_JOURNAL_LOG ": in use by another process",
				   dir);
		else
			fg_err_set(err, errno, "%s/" FG_JOURNAL_LOG ": flock: %s", dir,
				   strerror(errno));
		goto fail;
	}
	if (fstat(j->fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		fg_err_set(err, EINVAL, "%s/" FG_JOURNAL_LOG ": not a regular file", dir);
		goto fail;
	}
	j->end = (uint64_t)sb.st_size;
	if (created && fsync(j->dirfd) != 0) {
		fg_err_set(err, errno, "%s: fsync: %s", dir, strerror(errno));
		goto fail;
	}
	/* Only now, holding the lock: a snapshot.tmp is a crashed compaction's,
	 * a journal.probe a crashed recovery's. */
	if (unlinkat(j->dirfd, FG_JOURNAL_TMP, 0) != 0 && errno != ENOENT) {
		fg_err_set(err, errno, "%s/" FG_JOURNAL_TMP ": cannot remove: %s", dir,
			   strerror(errno));
		goto fail;
	}
	if (unlinkat(j->dirfd, FG_JOURNAL_PROBE, 0) != 0 && errno != ENOENT) {
		fg_err_set(err, errno, "%s/" FG_JOURNAL_PROBE ": cannot remove: %s", dir,
			   strerror(errno));
		goto fail;
	}
	return j;
fail:
	fg_journal_close(j);
	return NULL;
}

void
fg_journal_close(struct fg_journal *j)
{
	if (j == NULL)
		return;
	if (j->fd >= 0)
		close(j->fd);
	if (j->dirfd >= 0)
		close(j->dirfd);
	free(j->dir);
	free(j);
}

uint64_t
fg_journal_size(const struct fg_journal *j)
{
	return j->end;
}

uint64_t
fg_journal_records(const struct fg_journal *j)
{
	return j->records;
}

uint32_t
fg_journal_generation(const struct fg_journal *j)
{
	return j->gen;
}

/* ---- replay --------------------------------------------------------------- */

/*
 * Read snapshot.jsonl if present: *buf holds the file (free it), *body and
 * *body_len its op lines, *gen its generation (0 and NULL without a file).
 */
static int
fg_snapshot_read(struct fg_journal *j, char **buf, const char **body,
		 size_t *body_len, uint32_t *gen, struct fg_err *err)
{
	json_int_t version, generation, bytes;
	const char *crc_text;
	json_error_t jerr;
	struct stat sb;
	size_t size, hlen;
	char *nl;
	json_t *header;
	uint32_t crc;
	int fd, ret;

	*buf = NULL;
	*body = NULL;
	*body_len = 0;
	*gen = 0;
	fd = openat(j->dirfd, FG_JOURNAL_SNAP, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT)
		return 0;
	if (fd < 0)
		return fg_err_set(err, errno, "%s/" FG_JOURNAL_SNAP ": %s", j->dir,
				  strerror(errno));
	if (fstat(fd, &sb) != 0) {
		ret = fg_err_set(err, errno, "%s/" FG_JOURNAL_SNAP ": %s", j->dir,
				 strerror(errno));
		close(fd);
		return ret;
	}
	size = (size_t)sb.st_size;
	*buf = malloc(size + 1);
	if (*buf == NULL) {
		close(fd);
		return fg_err_set(err, ENOMEM, "%s/" FG_JOURNAL_SNAP ": out of memory",
				  j->dir);
	}
	ret = fg_pread_all(fd, *buf, size, 0);
	close(fd);
	if (ret < 0)
		return fg_err_set(err, -ret, "%s/" FG_JOURNAL_SNAP ": read: %s", j->dir,
				  strerror(-ret));

	nl = memchr(*buf, '\n', size < FG_JOURNAL_SNAP_HEADER_MAX ? size
								  : FG_JOURNAL_SNAP_HEADER_MAX);
	if (nl == NULL)
		return fg_err_set(err, EBADMSG, "%s/" FG_JOURNAL_SNAP ": no header line",
				  j->dir);
	hlen = (size_t)(nl - *buf) + 1;
	header = json_loadb(*buf, hlen - 1, JSON_REJECT_DUPLICATES, &jerr);
	if (header == NULL ||
	    json_unpack_ex(header, &jerr, 0, "{s:I, s:I, s:I, s:s !}",
			   "framegate_snapshot", &version, "generation", &generation,
			   "bytes", &bytes, "crc32c", &crc_text) != 0) {
		json_decref(header);
		return fg_err_set(err, EBADMSG, "%s/" FG_JOURNAL_SNAP ": bad header line: %s",
				  j->dir, jerr.text);
	}
	crc = (uint32_t)strtoul(crc_text, NULL, 16);
	if (version != 1 || generation < 1 || generation > UINT32_MAX ||
	    strlen(crc_text) != 8 || strspn(crc_text, "0123456789abcdef") != 8) {
		json_decref(header);
		return fg_err_set(err, EBADMSG, "%s/" FG_JOURNAL_SNAP ": bad header line",
				  j->dir);
	}
	json_decref(header);
	if (bytes < 0 || (uint64_t)bytes != size - hlen)
		return fg_err_set(err, EBADMSG,
				  "%s/" FG_JOURNAL_SNAP ": the header says %" JSON_INTEGER_FORMAT
				  " bytes of op lines, the file holds %zu",
				  j->dir, bytes, size - hlen);
	if (fg_journal_crc32c(*buf + hlen, size - hlen) != crc)
		return fg_err_set(err, EBADMSG, "%s/" FG_JOURNAL_SNAP ": CRC32C mismatch",
				  j->dir);
	if (size > hlen && fg_lines_problem(*buf + hlen, size - hlen) != NULL)
		return fg_err_set(err, EBADMSG, "%s/" FG_JOURNAL_SNAP ": %s", j->dir,
				  fg_lines_problem(*buf + hlen, size - hlen));
	*body = *buf + hlen;
	*body_len = size - hlen;
	*gen = (uint32_t)generation;
	return 0;
}

/* Why a record is not whole; FG_REC_WHOLE when it is. */
enum fg_rec_fault {
	FG_REC_WHOLE,
	FG_REC_SHORT_HEADER,
	FG_REC_BAD_MAGIC,
	FG_REC_BAD_LENGTH,
	FG_REC_SHORT_PAYLOAD,
	FG_REC_BAD_CRC,
	FG_REC_NOT_LINES,
};

static const char *const fg_rec_fault_names[] = {
	[FG_REC_WHOLE] = "whole",
	[FG_REC_SHORT_HEADER] = "short header",
	[FG_REC_BAD_MAGIC] = "bad magic",
	[FG_REC_BAD_LENGTH] = "bad length",
	[FG_REC_SHORT_PAYLOAD] = "short payload",
	[FG_REC_BAD_CRC] = "CRC32C mismatch",
	[FG_REC_NOT_LINES] = "payload is not op lines",
};

/* The file ends before the record its header announces: what a crash in
 * the middle of an append leaves. Any other fault can be damage to an
 * acknowledged record, so it is not taken for a torn write. */
static bool
fg_rec_fault_torn(enum fg_rec_fault f)
{
	return f == FG_REC_SHORT_HEADER || f == FG_REC_SHORT_PAYLOAD;
}

/*
 * The header at h, left bytes of the file from it on (h is read only when
 * left >= 16): magic, length, and whether the payload fits. *len and *gen
 * are set from the header once the magic matches.
 */
static enum fg_rec_fault
fg_record_header(const uint8_t *h, uint64_t left, uint32_t *len, uint32_t *gen)
{
	if (left < FG_JOURNAL_HEADER_LEN)
		return FG_REC_SHORT_HEADER;
	if (memcmp(h, fg_journal_magic, 4) != 0)
		return FG_REC_BAD_MAGIC;
	*len = fg_get_le32(h + 4);
	*gen = fg_get_le32(h + 8);
	if (*len == 0 || *len > FG_JOURNAL_RECORD_MAX)
		return FG_REC_BAD_LENGTH;
	if (*len > left - FG_JOURNAL_HEADER_LEN)
		return FG_REC_SHORT_PAYLOAD;
	return FG_REC_WHOLE;
}

/* The payload's checks, given what was computed over it (in one piece or
 * in chunks): crc, the record CRC (finished); has_nul, a NUL byte in it;
 * last, its last byte. The CRC comes first: a payload that fails it is
 * damaged whatever it holds. */
static enum fg_rec_fault
fg_record_payload(const uint8_t *h, uint32_t crc, bool has_nul, uint8_t last)
{
	if (crc != fg_get_le32(h + 12))
		return FG_REC_BAD_CRC;
	if (has_nul || last != '\n')
		return FG_REC_NOT_LINES;
	return FG_REC_WHOLE;
}

/* Is there a whole record at off of the size bytes at base? */
static enum fg_rec_fault
fg_record_whole(const uint8_t *base, uint64_t size, uint64_t off,
		uint32_t *len, uint32_t *gen)
{
	const uint8_t *h = base + off, *p = h + FG_JOURNAL_HEADER_LEN;
	enum fg_rec_fault f = fg_record_header(h, size - off, len, gen);

	if (f != FG_REC_WHOLE)
		return f;
	return fg_record_payload(h, fg_record_crc(h, p, *len), memchr(p, '\0', *len) != NULL,
				 p[*len - 1]);
}

/* The offset of the first whole record after off, or 0 when there is none. */
static uint64_t
fg_record_next_whole(const uint8_t *base, uint64_t size, uint64_t off)
{
	for (uint64_t p = off + 1; p + FG_JOURNAL_HEADER_LEN <= size; p++) {
		const uint8_t *m = memmem(base + p, size - p, fg_journal_magic, 4);
		uint32_t len, gen;

		if (m == NULL)
			return 0;
		p = (uint64_t)(m - base);
		if (fg_record_whole(base, size, p, &len, &gen) == FG_REC_WHOLE)
			return p;
	}
	return 0;
}

/*
 * Keep the len bytes of a damaged last record in journal.log.cut-<unix
 * time> (".1", ".2"... when taken: never over an earlier copy) before they
 * are cut off, written and fsync'd with its directory entry. path gets the
 * file's path for the caller's message.
 */
static int
fg_keep_cut(struct fg_journal *j, const uint8_t *data, uint64_t len, char *path,
	    size_t path_size, struct fg_err *err)
{
	long long now = (long long)time(NULL);
	char name[64];
	int fd = -1, ret;

	for (unsigned int k = 0; k < 1000 && fd < 0; k++) {
		if (k == 0)
			snprintf(name, sizeof(name), FG_JOURNAL_CUT "%lld", now);
		else
			snprintf(name, sizeof(name), FG_JOURNAL_CUT "%lld.%u", now, k);
		fd = openat(j->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
		if (fd < 0 && errno != EEXIST)
			break;
	}
	snprintf(path, path_size, "%s/%s", j->dir, name);
	if (fd < 0)
		return fg_err_set(err, errno, "%s: cannot create it: %s", path, strerror(errno));
	ret = fg_pwrite_all(fd, data, len, 0);
	if (ret == 0 && fsync(fd) != 0)
		ret = -errno;
	if (close(fd) != 0 && ret == 0)
		ret = -errno;
	if (ret == 0 && fsync(j->dirfd) != 0)
		ret = -errno;
	if (ret < 0) {
		unlinkat(j->dirfd, name, 0);
		return fg_err_set(err, -ret, "%s: %s", path, strerror(-ret));
	}
	return 0;
}

int
fg_journal_replay(struct fg_journal *j, fg_journal_apply_fn *apply, void *ctx,
		  struct fg_journal_stats *st, struct fg_err *err)
{
	struct fg_journal_stats s = { 0 };
	enum fg_rec_fault fault = FG_REC_WHOLE;
	const char *body;
	uint8_t *map = NULL;
	uint64_t size, off = 0, n = 0;
	size_t body_len;
	char *snap = NULL;
	struct stat sb;
	uint32_t len, gen;
	int ret;

	if (j->replayed)
		return fg_err_set(err, EALREADY, "%s: the journal has already been replayed",
				  j->dir);
	ret = fg_snapshot_read(j, &snap, &body, &body_len, &s.generation, err);
	if (ret < 0)
		goto out;
	if (fstat(j->fd, &sb) != 0) {
		ret = fg_err_set(err, errno, "%s/" FG_JOURNAL_LOG ": %s", j->dir,
				 strerror(errno));
		goto out;
	}
	size = (uint64_t)sb.st_size;
	if (size > 0) {
		map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, j->fd, 0);
		if (map == MAP_FAILED) {
			map = NULL;
			ret = fg_err_set(err, errno, "%s/" FG_JOURNAL_LOG ": mmap: %s", j->dir,
					 strerror(errno));
			goto out;
		}
	}

	/* First pass: every record is whole and of a known generation. */
	while (off < size && (fault = fg_record_whole(map, size, off, &len, &gen)) == FG_REC_WHOLE) {
		if (gen > s.generation) {
			ret = fg_err_set(err, EBADMSG,
					 "%s/" FG_JOURNAL_LOG ": record %" PRIu64 " at offset %" PRIu64
					 ": generation %" PRIu32 " is newer than the snapshot's (%" PRIu32
					 "): is " FG_JOURNAL_SNAP " missing? Refusing to replay",
					 j->dir, n + 1, off, gen, s.generation);
			goto out;
		}
		off += FG_JOURNAL_HEADER_LEN + len;
		n++;
	}
	if (off < size) {
		uint64_t next = fg_record_next_whole(map, size, off);

		if (next != 0) {
			ret = fg_err_set(err, EBADMSG,
					 "%s/" FG_JOURNAL_LOG ": record %" PRIu64 " at offset %" PRIu64
					 ": %s, but a whole record follows at offset %" PRIu64
					 ": the journal is damaged, not torn; refusing to replay it",
					 j->dir, n + 1, off, fg_rec_fault_names[fault], next);
			goto out;
		}
		s.bytes_discarded = size - off;
		s.tail_damaged = !fg_rec_fault_torn(fault);
	}

	/* Second pass: apply. */
	if (body_len > 0) {
		ret = apply(ctx, body, body_len, err);
		if (ret < 0) {
			fg_err_prefix(err, "%s/" FG_JOURNAL_SNAP ": ", j->dir);
			goto out;
		}
		s.snapshot_bytes = body_len;
	}
	for (uint64_t o = 0, i = 1; o < off; o += FG_JOURNAL_HEADER_LEN + len, i++) {
		len = fg_get_le32(map + o + 4);
		gen = fg_get_le32(map + o + 8);
		if (gen < s.generation) {
			s.records_skipped++;
			continue;
		}
		ret = apply(ctx, (const char *)map + o + FG_JOURNAL_HEADER_LEN, len, err);
		if (ret < 0) {
			fg_err_prefix(err, "%s/" FG_JOURNAL_LOG ": record %" PRIu64
				      " at offset %" PRIu64 ": ", j->dir, i, o);
			goto out;
		}
		s.records_replayed++;
	}

	/* Cut off the tail: a torn one was never acknowledged; a damaged one may
	 * have been, so its bytes are kept first. */
	if (s.tail_damaged) {
		ret = fg_keep_cut(j, map + off, size - off, s.cut_file, sizeof(s.cut_file), err);
		if (ret < 0) {
			fg_err_prefix(err, "%s/" FG_JOURNAL_LOG ": keeping the damaged last record %"
				      PRIu64 " at offset %" PRIu64 " (%s) before cutting it off: ",
				      j->dir, n + 1, off, fg_rec_fault_names[fault]);
			goto out;
		}
	}
	if (map != NULL) {
		munmap(map, size);
		map = NULL;
	}
	if (s.bytes_discarded > 0 && (ftruncate(j->fd, (off_t)off) != 0 || fsync(j->fd) != 0)) {
		ret = fg_err_set(err, errno, "%s/" FG_JOURNAL_LOG
				 ": cutting off the %s last record at offset %" PRIu64 ": %s",
				 j->dir, s.tail_damaged ? "damaged" : "torn", off, strerror(errno));
		goto out;
	}
	j->end = off;
	j->records = n;
	j->gen = s.generation;
	j->replayed = true;
	ret = 0;
out:
	if (map != NULL)
		munmap(map, size);
	free(snap);
	if (st != NULL)
		*st = s;
	return ret;
}

/* ---- append and snapshot -------------------------------------------------- */

static int fg_snapshot_finish(struct fg_journal *j, struct fg_err *err);

/*
 * A write or sync failed: refuse changes until fg_journal_recover(). file is
 * the file that failed (NULL: the directory), what says what was being done
 * ("appending record 12 at offset 1234"). The first cause is kept: later
 * refusals and health name it, not the refusals that follow from it.
 */
static int
fg_journal_fail(struct fg_journal *j, int code, const char *file, const char *what,
		struct fg_err *err)
{
	char msg[sizeof(j->fail_msg)];

	snprintf(msg, sizeof(msg), "%s%s%s: %s: %s", j->dir, file != NULL ? "/" : "",
		 file != NULL ? file : "", what, strerror(code));
	if (!j->failed) {
		j->failed = true;
		j->fail_code = code;
		snprintf(j->fail_what, sizeof(j->fail_what), "%s", what);
		snprintf(j->fail_msg, sizeof(j->fail_msg), "%s", msg);
	}
	return fg_err_set(err, code, "%s", msg);
}

static int
fg_journal_writable(const struct fg_journal *j, struct fg_err *err)
{
	if (!j->replayed)
		return fg_err_set(err, EINVAL, "%s: replay the journal before writing to it",
				  j->dir);
	if (j->failed)
		return fg_err_set(err, j->fail_code,
				  "%s/" FG_JOURNAL_LOG ": refusing changes since %s failed: %s"
				  " (the router retries; see health)",
				  j->dir, j->fail_what, strerror(j->fail_code));
	return 0;
}

bool
fg_journal_failed(const struct fg_journal *j)
{
	return j->failed;
}

const char *
fg_journal_last_error(const struct fg_journal *j, int *code)
{
	if (code != NULL)
		*code = j->failed ? j->fail_code : 0;
	return j->failed ? j->fail_msg : NULL;
}

int
fg_journal_append(struct fg_journal *j, const char *lines, size_t len,
		  struct fg_err *err)
{
	const char *problem = fg_lines_problem(lines, len);
	uint8_t *rec;
	int ret;

	ret = fg_journal_writable(j, err);
	if (ret < 0)
		return ret;
	if (problem != NULL || len > FG_JOURNAL_RECORD_MAX)
		return fg_err_set(err, EINVAL, "%s/" FG_JOURNAL_LOG ": cannot append: %s",
				  j->dir, problem != NULL ? problem : "record too large");
	rec = malloc(FG_JOURNAL_HEADER_LEN + len);
	if (rec == NULL)
		return fg_err_set(err, ENOMEM, "%s/" FG_JOURNAL_LOG ": out of memory", j->dir);
	memcpy(rec, fg_journal_magic, 4);
	fg_put_le32(rec + 4, (uint32_t)len);
	fg_put_le32(rec + 8, j->gen);
	memcpy(rec + FG_JOURNAL_HEADER_LEN, lines, len);
	fg_put_le32(rec + 12, fg_record_crc(rec, rec + FG_JOURNAL_HEADER_LEN, len));

	ret = fg_pwrite_all(j->fd, rec, FG_JOURNAL_HEADER_LEN + len, j->end);
	if (ret == 0 && fdatasync(j->fd) != 0)
		ret = -errno;
	free(rec);
	if (ret < 0) {
		char what[64];

		/* Unknown what reached the disk: cut it off, then write no more
		 * until fg_journal_recover() has checked the disk. */
		if (ftruncate(j->fd, (off_t)j->end) != 0) {
			/* recovery cuts it again */
		}
		snprintf(what, sizeof(what), "appending record %" PRIu64 " at offset %" PRIu64,
			 j->records + 1, j->end);
		return fg_journal_fail(j, -ret, FG_JOURNAL_LOG, what, err);
	}
	j->end += FG_JOURNAL_HEADER_LEN + len;
	j->records++;
	return 0;
}

int
fg_journal_snapshot(struct fg_journal *j, fg_journal_dump_fn *dump, void *ctx,
		    struct fg_err *err)
{
	char header[FG_JOURNAL_SNAP_HEADER_MAX];
	const char *problem;
	char *body = NULL;
	size_t body_len = 0;
	int hlen, fd, ret;
	FILE *out;

	ret = fg_journal_writable(j, err);
	if (ret < 0)
		return ret;
	if (j->gen == UINT32_MAX)
		return fg_err_set(err, EOVERFLOW, "%s: no generation left", j->dir);

	out = open_memstream(&body, &body_len);
	if (out == NULL)
		return fg_err_set(err, errno, "%s: open_memstream: %s", j->dir, strerror(errno));
	ret = dump(ctx, out);
	if (fclose(out) != 0 && ret == 0)
		ret = -ENOMEM;
	if (ret < 0) {
		free(body);
		return fg_err_set(err, -ret, "%s: writing the state for a snapshot: %s",
				  j->dir, strerror(-ret));
	}
	problem = body_len > 0 ? fg_lines_problem(body, body_len) : NULL;
	if (problem != NULL) {
		free(body);
		return fg_err_set(err, EINVAL, "%s: the state for a snapshot: %s", j->dir,
				  problem);
	}
	hlen = snprintf(header, sizeof(header),
			"{\"framegate_snapshot\":1,\"generation\":%" PRIu32
			",\"bytes\":%zu,\"crc32c\":\"%08" PRIx32 "\"}\n",
			j->gen + 1, body_len, fg_journal_crc32c(body, body_len));

	/* snapshot.tmp, whole and synced, then renamed: never a torn snapshot. */
	fd = openat(j->dirfd, FG_JOURNAL_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0640);
	if (fd < 0) {
		ret = -errno;
	} else {
		ret = fg_pwrite_all(fd, header, (size_t)hlen, 0);
		if (ret == 0)
			ret = fg_pwrite_all(fd, body, body_len, (uint64_t)hlen);
		if (ret == 0 && fsync(fd) != 0)
			ret = -errno;
		if (close(fd) != 0 && ret == 0)
			ret = -errno;
	}
	free(body);
	if (ret == 0 && renameat(j->dirfd, FG_JOURNAL_TMP, j->dirfd, FG_JOURNAL_SNAP) != 0)
		ret = -errno;
	if (ret < 0) {
		unlinkat(j->dirfd, FG_JOURNAL_TMP, 0);
		return fg_err_set(err, -ret, "%s/" FG_JOURNAL_TMP ": %s", j->dir,
				  strerror(-ret));
	}

	/* From the rename on, the old records are superseded (older generation). */
	j->gen++;
	return fg_snapshot_finish(j, err);
}

/* After the snapshot's rename: make the rename durable, then empty
 * journal.log. Until both are done, appends would go after records whose
 * snapshot may not survive a crash, so a failure fails the journal and
 * fg_journal_recover() calls this again. */
static int
fg_snapshot_finish(struct fg_journal *j, struct fg_err *err)
{
	j->snap_pending = true;
	if (fsync(j->dirfd) != 0)
		return fg_journal_fail(j, errno, NULL,
				       "syncing the directory after renaming " FG_JOURNAL_SNAP, err);
	if (ftruncate(j->fd, 0) != 0 || fsync(j->fd) != 0)
		return fg_journal_fail(j, errno, FG_JOURNAL_LOG,
				       "truncating journal.log after the snapshot", err);
	j->end = 0;
	j->records = 0;
	j->snap_pending = false;
	return 0;
}

/* ---- recovery after a failed write ----------------------------------------- */

/*
 * Does the disk take writes? Reserve FG_JOURNAL_PROBE_BYTES in a file of the
 * journal's directory, then drop it. The file has no name (O_TMPFILE), so
 * nothing is left behind by a crash; where the file system lacks O_TMPFILE
 * a named file is unlinked at once (a crash in between leaves one, which
 * open removes). 0 or -errno (-ENOSPC: still full).
 */
static int
fg_journal_probe(struct fg_journal *j)
{
	int fd, ret;

	fd = openat(j->dirfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR)) {
		fd = openat(j->dirfd, FG_JOURNAL_PROBE, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
			    0600);
		if (fd >= 0 && unlinkat(j->dirfd, FG_JOURNAL_PROBE, 0) != 0) {
			ret = -errno;
			close(fd);
			return ret;
		}
	}
	if (fd < 0)
		return -errno;
	ret = -posix_fallocate(fd, 0, FG_JOURNAL_PROBE_BYTES);
	if (close(fd) != 0 && ret == 0)
		ret = -errno;
	return ret;
}

/* journal.log read from the start in chunks of FG_JOURNAL_CHUNK: the bytes
 * from buf + pos to buf + have are the file's from off on. */
struct fg_reader {
	int fd;
	uint8_t *buf;
	size_t pos, have;
	uint64_t off;       /* file offset of buf + pos */
	uint64_t next;      /* file offset of buf + have: where the next read starts */
	uint64_t size;      /* where reading stops */
};

/* Make at least want bytes (at most FG_JOURNAL_CHUNK) available from pos,
 * reading as much as fits; the caller never asks past size. */
static int
fg_reader_fill(struct fg_reader *r, size_t want)
{
	if (r->have - r->pos >= want)
		return 0;
	memmove(r->buf, r->buf + r->pos, r->have - r->pos);
	r->have -= r->pos;
	r->pos = 0;
	uint64_t left = r->size - r->next;
	size_t room = FG_JOURNAL_CHUNK - r->have, n = left < room ? (size_t)left : room;
	int ret = fg_pread_all(r->fd, r->buf + r->have, n, r->next);

	if (ret < 0)
		return ret;
	r->have += n;
	r->next += n;
	return r->have >= want ? 0 : -EIO;
}

/*
 * Check the size bytes of journal.log on disk: every record whole and of no
 * generation newer than the journal's, and as many as were acknowledged.
 * Reads in bounded chunks, a record's payload too (a record can be 1 GiB).
 */
static int
fg_journal_verify(struct fg_journal *j, uint64_t size, struct fg_err *err)
{
	struct fg_reader r = { .fd = j->fd, .size = size };
	enum fg_rec_fault fault = FG_REC_WHOLE;
	uint64_t n = 0;
	uint32_t newer = 0;   /* a record's generation newer than the journal's */
	int ret = 0;

	r.buf = malloc(FG_JOURNAL_CHUNK);
	if (r.buf == NULL)
		return fg_err_set(err, ENOMEM, "%s/" FG_JOURNAL_LOG ": out of memory", j->dir);
	while (r.off < size) {
		uint64_t at = r.off, left = size - at;
		uint8_t h[FG_JOURNAL_HEADER_LEN], last = 0;
		uint32_t len = 0, gen = 0, crc;
		bool has_nul = false;

		ret = fg_reader_fill(&r, left < FG_JOURNAL_HEADER_LEN ? (size_t)left
								  : FG_JOURNAL_HEADER_LEN);
		if (ret < 0)
			break;
		if (left >= FG_JOURNAL_HEADER_LEN)
			memcpy(h, r.buf + r.pos, FG_JOURNAL_HEADER_LEN);
		fault = fg_record_header(h, left, &len, &gen);
		if (fault != FG_REC_WHOLE)
			break;
		if (gen > j->gen) {
			newer = gen;
			break;
		}
		r.pos += FG_JOURNAL_HEADER_LEN;
		r.off += FG_JOURNAL_HEADER_LEN;
		crc = fg_crc_update(UINT32_MAX, h, 12);
		for (uint32_t todo = len; todo > 0;) {
			size_t take;

			ret = fg_reader_fill(&r, todo < FG_JOURNAL_CHUNK ? todo : FG_JOURNAL_CHUNK);
			if (ret < 0)
				break;
			take = r.have - r.pos < todo ? r.have - r.pos : todo;
			crc = fg_crc_update(crc, r.buf + r.pos, take);
			has_nul |= memchr(r.buf + r.pos, '\0', take) != NULL;
			last = r.buf[r.pos + take - 1];
			r.pos += take;
			r.off += take;
			todo -= (uint32_t)take;
		}
		if (ret < 0)
			break;
		fault = fg_record_payload(h, ~crc, has_nul, last);
		if (fault != FG_REC_WHOLE) {
			r.off = at;
			break;
		}
		n++;
	}
	free(r.buf);
	if (newer != 0)
		return fg_err_set(err, EBADMSG,
				  "%s/" FG_JOURNAL_LOG ": record %" PRIu64 " at offset %" PRIu64
				  ": generation %" PRIu32 " is newer than the journal's (%" PRIu32
				  "): the journal is damaged; it cannot be recovered by retrying",
				  j->dir, n + 1, r.off, newer, j->gen);
	if (ret < 0)
		return fg_err_set(err, -ret, "%s/" FG_JOURNAL_LOG ": reading it back: %s", j->dir,
				  strerror(-ret));
	if (fault != FG_REC_WHOLE)
		return fg_err_set(err, EBADMSG,
				  "%s/" FG_JOURNAL_LOG ": record %" PRIu64 " at offset %" PRIu64
				  ": %s: the journal is damaged; it cannot be recovered by retrying",
				  j->dir, n + 1, r.off, fg_rec_fault_names[fault]);
	if (n != j->records)
		return fg_err_set(err, EBADMSG,
				  "%s/" FG_JOURNAL_LOG ": holds %" PRIu64 " whole records, %" PRIu64
				  " were written: the journal is damaged; it cannot be recovered by retrying",
				  j->dir, n, j->records);
	return 0;
}

int
fg_journal_recover(struct fg_journal *j, struct fg_err *err)
{
	struct stat sb;
	uint64_t size;
	int ret;

	if (!j->replayed)
		return fg_err_set(err, EINVAL, "%s: replay the journal before recovering it",
				  j->dir);
	if (j->snap_pending) {
		ret = fg_snapshot_finish(j, err);
		if (ret < 0)
			return ret;
	}
	if (fstat(j->fd, &sb) != 0)
		return fg_err_set(err, errno, "%s/" FG_JOURNAL_LOG ": %s", j->dir, strerror(errno));
	size = (uint64_t)sb.st_size;
	if (size < j->end)
		return fg_err_set(err, EBADMSG,
				  "%s/" FG_JOURNAL_LOG ": holds %" PRIu64 " bytes, but the written"
				  " records end at %" PRIu64 ": the journal is damaged; it cannot be"
				  " recovered by retrying", j->dir, size, j->end);
	/* What a failed append left after the last acknowledged record. */
	if (size > j->end && ftruncate(j->fd, (off_t)j->end) != 0)
		return fg_err_set(err, errno, "%s/" FG_JOURNAL_LOG ": still cannot cut it back to %"
				  PRIu64 " bytes: %s", j->dir, j->end, strerror(errno));
	if (fsync(j->fd) != 0)
		return fg_err_set(err, errno, "%s/" FG_JOURNAL_LOG ": still cannot sync: %s",
				  j->dir, strerror(errno));
	ret = fg_journal_probe(j);
	if (ret < 0)
		return fg_err_set(err, -ret, "%s: still cannot write: %s", j->dir, strerror(-ret));
	/* The pages are clean after the fsync: drop them, so that the check
	 * reads what is on the disk rather than what a failed write left in
	 * the page cache. */
	(void)posix_fadvise(j->fd, 0, 0, POSIX_FADV_DONTNEED);
	ret = fg_journal_verify(j, j->end, err);
	if (ret < 0)
		return ret;
	j->failed = false;
	j->fail_code = 0;
	j->fail_what[0] = '\0';
	j->fail_msg[0] = '\0';
	return 0;
}
