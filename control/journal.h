/*
 * The control plane's durable journal (SPEC 4, "ack means durable"). Every
 * control change is a mapping-file op line (mapfile.h); before a change is
 * acknowledged its lines are appended to the journal as one record and
 * fdatasync'd. At start the journal is replayed: the snapshot, then every
 * record in order, through a callback that decodes the lines with
 * fg_op_parse() and applies them with fg_op_apply(). This module only stores
 * and checks bytes; it does not know the ownership tables.
 *
 * A journal is a directory holding:
 *
 *   journal.log     records, appended in order. A record is a 16-byte header
 *                   and a payload; integers are little-endian:
 *
 *                     offset 0   4 bytes  magic, the ASCII bytes "FGJ1"
 *                     offset 4   u32      payload length in bytes (1..2^30)
 *                     offset 8   u32      generation (see below)
 *                     offset 12  u32      CRC32C (Castagnoli, the standard
 *                                         one: "123456789" gives 0xe3069283)
 *                                         of header bytes 0..11, then of the
 *                                         payload
 *                     offset 16  payload  one or more op lines, the exact
 *                                         JSON text, each ending in '\n'
 *
 *                   A record is one transaction: its lines are handed to the
 *                   apply callback together (a `load` is one record).
 *
 *   snapshot.jsonl  the whole state at the last compaction (optional). The
 *                   first line is a header,
 *                     {"framegate_snapshot":1,"generation":G,"bytes":N,"crc32c":"xxxxxxxx"}
 *                   and the N bytes after it are op lines (CRC32C over them,
 *                   8 lowercase hex digits). `tail -n +2 snapshot.jsonl` is a
 *                   mapping file. It is written to snapshot.tmp, fsync'd and
 *                   renamed, so it is whole or absent, never torn.
 *
 * Generations. The journal's generation is the snapshot's (0 without one);
 * each record carries the generation it was appended in. Compaction writes a
 * snapshot of generation G+1, which already holds every record of generation
 * G, and only then truncates journal.log. Replay skips records older than
 * the snapshot, so a crash between the rename and the truncation applies
 * nothing twice. A record newer than the snapshot cannot happen without
 * damage (a lost snapshot) and is refused.
 *
 * Torn and damaged records. Replay reads every record before applying any.
 * At the first record that is not whole (fewer than 16 bytes left, wrong
 * magic, a length running past the end of the file, a zero length or a
 * payload not ending in '\n' or holding a NUL, a CRC that does not match),
 * it looks for any whole record further on:
 *   - none, and the file ends before the record its header announces (fewer
 *     than 16 bytes, or a good header whose payload runs past the end): this
 *     is the torn last record of a crash mid-append; it was never
 *     acknowledged. It is discarded: journal.log is truncated to the end of
 *     the last whole record and fsync'd, and the stats say how many bytes
 *     went.
 *   - none, but the last record is there in full (or its header is not a
 *     header) and fails its checks: a crash does not produce that, damage
 *     on disk does, and the record may have been acknowledged. It is cut off
 *     too, so that the router starts, but first its bytes are written to
 *     journal.log.cut-<unix time> (".1", ".2"... appended when taken) beside
 *     journal.log and fsync'd; the stats set tail_damaged and name that file
 *     so the caller can say that an acknowledged change may have been lost.
 *     (A flipped bit that makes the length larger looks like a torn record:
 *     no check can tell the two apart.)
 *   - some: the journal is damaged in the middle, which no crash produces.
 *     Replay refuses with -EBADMSG naming the record number and offset, and
 *     applies nothing, so the router does not start on a state that silently
 *     lacks acknowledged changes.
 * A damaged snapshot.jsonl is likewise refused with -EBADMSG.
 *
 * Failed writes. When an append's write or sync fails (a full disk, an I/O
 * error), what reached the disk is unknown: the partial record is cut off if
 * possible and the journal is marked failed. It then refuses every append
 * and snapshot, naming the first failure's cause, until fg_journal_recover()
 * succeeds: that cuts journal.log back to the last acknowledged record,
 * checks every record on disk again, and checks that the disk takes writes,
 * so that the process goes on without a restart and without losing an
 * acknowledged change. Recovery never guesses: damage it finds is -EBADMSG,
 * which waiting does not cure.
 *
 * Use: open, replay once, then append and snapshot. Append and snapshot
 * before the replay are refused (the torn tail must be cut off before
 * anything is appended after it). One process at a time: open takes an
 * exclusive flock on journal.log. One thread at a time per journal.
 */
#ifndef FG_JOURNAL_H
#define FG_JOURNAL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <framegate/error.h>

#define FG_JOURNAL_HEADER_LEN 16u
#define FG_JOURNAL_RECORD_MAX (1u << 30)   /* payload bytes of one record */
/* Space fg_journal_recover() reserves to tell that the disk takes writes
 * again: room for a few ordinary records, not just the next one. */
#define FG_JOURNAL_PROBE_BYTES (1u << 20)

struct fg_journal;

/* What a replay found. */
struct fg_journal_stats {
	uint32_t generation;        /* the snapshot's generation, 0: no snapshot */
	uint64_t snapshot_bytes;    /* op-line bytes applied from the snapshot */
	uint64_t records_replayed;  /* records passed to apply */
	uint64_t records_skipped;   /* records already in the snapshot */
	uint64_t bytes_discarded;   /* torn or damaged tail cut off journal.log */
	bool tail_damaged;          /* the cut tail was a damaged record, which
				     * may have been acknowledged */
	char cut_file[PATH_MAX];    /* when tail_damaged: the file holding the
				     * cut bytes (the journal directory's path,
				     * '/', journal.log.cut-...) */
};

/*
 * Apply one transaction: len bytes of op lines, each ending in '\n' (not
 * NUL-terminated; valid only during the call). Return 0, or -errno with err
 * filled, which stops the replay. Applying the lines all or nothing is the
 * callback's part (decode them all with fg_op_parse() before applying any).
 */
typedef int fg_journal_apply_fn(void *ctx, const char *lines, size_t len,
				struct fg_err *err);

/* Write the whole current state as op lines to out; 0 or -errno. */
typedef int fg_journal_dump_fn(void *ctx, FILE *out);

/*
 * Open the journal in dir, creating dir (mode 0750; its parent must exist)
 * and journal.log (0640) if absent, and removing a snapshot.tmp left by a
 * crash. NULL on error with err naming the path (-EBUSY in err->code when
 * another process has the journal open).
 */
struct fg_journal *fg_journal_open(const char *dir, struct fg_err *err);

/*
 * Replay: the snapshot's op lines (if any) as one transaction, then each
 * record of the current generation in order, each as one transaction. Then
 * a torn or damaged tail is cut off (see above). Once per open. 0, or -errno
 * with err naming the file, and for a record its number (1-based, counted
 * from the start of journal.log) and byte offset: -EBADMSG for damage
 * (nothing applied), or the callback's error, or an error keeping a damaged
 * tail's bytes (then the records stay applied, journal.log is left as it
 * was, and the journal cannot be appended to: the caller is expected to
 * refuse to start). st (may be NULL) is filled in every case.
 */
int fg_journal_replay(struct fg_journal *j, fg_journal_apply_fn *apply,
		      void *ctx, struct fg_journal_stats *st,
		      struct fg_err *err);

/*
 * Append one record (len bytes of op lines, each ending in '\n', no NUL
 * byte, at most FG_JOURNAL_RECORD_MAX) and fdatasync it: when this returns
 * 0 the change is durable and may be acknowledged. On a write or sync error
 * (-errno: -ENOSPC, -EIO...) the partial record is cut off if possible and
 * the journal is failed: every later append and snapshot is refused with
 * the first failure's code, naming its cause, until fg_journal_recover()
 * succeeds.
 */
int fg_journal_append(struct fg_journal *j, const char *lines, size_t len,
		      struct fg_err *err);

/*
 * Compaction: dump writes the full current state (which must be exactly the
 * state the journal holds); it is written as the snapshot of the next
 * generation (snapshot.tmp, fsync, rename over snapshot.jsonl, fsync of the
 * directory), then journal.log is truncated to 0 and fsync'd. 0 or -errno.
 * A failure before the rename changes nothing (the journal stays
 * writable); one after it (syncing the directory, truncating journal.log)
 * fails the journal, as for append, and fg_journal_recover() finishes the
 * compaction.
 */
int fg_journal_snapshot(struct fg_journal *j, fg_journal_dump_fn *dump,
			void *ctx, struct fg_err *err);

/*
 * Make a failed journal writable again, without a reopen: the caller retries
 * it (with backoff) after a failure. In order:
 *   - a compaction that failed after its rename is finished (the directory
 *     fsync'd, journal.log truncated and fsync'd);
 *   - journal.log is cut back to the end of the last acknowledged record if
 *     it is longer (shorter is damage), and fsync'd;
 *   - a probe file of FG_JOURNAL_PROBE_BYTES is reserved in the directory
 *     (O_TMPFILE, or a named file unlinked at once where that is not
 *     supported) and dropped: the disk takes writes again;
 *   - what is on disk is checked: each record is whole (magic, length,
 *     CRC32C, op lines) and of no generation newer than the snapshot's,
 *     read in bounded chunks (a journal can be gigabytes; the probe comes
 *     first so that a disk that is still full costs no read of it).
 * 0 clears the failure. Otherwise -errno with err naming the file and the
 * cause ("DIR: still cannot write: No space left on device"), the journal
 * still failed: retry later. -EBADMSG (naming the record's number and
 * offset) is damage, which no retry cures. -EINVAL before the replay. On a
 * journal that has not failed it runs the same checks (a way to tell that
 * the disk takes writes after a snapshot that failed before its rename).
 */
int fg_journal_recover(struct fg_journal *j, struct fg_err *err);

/* Whether appends and snapshots are refused after a failed write. */
bool fg_journal_failed(const struct fg_journal *j);

/* The message of the failure that failed the journal, and its code in *code
 * (code may be NULL); NULL and 0 when it has not failed. Valid until the
 * next call on j. */
const char *fg_journal_last_error(const struct fg_journal *j, int *code);

/* Closes the files and releases the lock; j may be NULL. */
void fg_journal_close(struct fg_journal *j);

/* Bytes in journal.log and records in it (every generation), as known to
 * this process: before the replay, the file's size and 0. */
uint64_t fg_journal_size(const struct fg_journal *j);
uint64_t fg_journal_records(const struct fg_journal *j);
/* The generation new records get (the snapshot's). */
uint32_t fg_journal_generation(const struct fg_journal *j);

/* Standard CRC32C of a buffer (rte_hash_crc with the usual pre- and
 * post-inversion), as used in the on-disk format. */
uint32_t fg_journal_crc32c(const void *data, size_t len);

#endif /* FG_JOURNAL_H */
