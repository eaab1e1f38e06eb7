/*
 * The durable journal (SPEC 4, "ack means durable"; control/journal.h):
 * records come back byte-identical and in order after a reopen; a torn last
 * record of any length is cut off and the journal goes on; damage in the
 * middle is refused naming the record; a snapshot plus later records
 * restores the state, and a crash between the snapshot's rename and the
 * journal's truncation applies nothing twice; bad directories and garbage
 * files give clear errors, never a crash; and a journal of mapping-file op
 * lines rebuilds real ownership tables. A damaged last record is cut but
 * kept in a file, a torn one is not. A failed write (a full tmpfs, an
 * append-only journal.log) refuses changes naming the cause until
 * fg_journal_recover() succeeds, and recovery refuses damage. Each test
 * works in its own temp directory, removed afterwards.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mount.h>

#include <criterion/criterion.h>

#include "journal.h"
#include "mapfile.h"
#include "support.h"

/* ---- fixtures ------------------------------------------------------------- */

static char tmp[64];      /* the test's temp directory */
static char dir[128];     /* the journal directory inside it */
static char log_path[160];
static char snap_path[160];
static char fs_dir[80];     /* a small tmpfs the test mounted, when mounted */
static bool mounted;
static char append_only[160];   /* a file the test made append-only, or "" */

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
setup(void)
{
	snprintf(tmp, sizeof(tmp), "/tmp/fg_journal_test.XXXXXX");
	cr_assert_not_null(mkdtemp(tmp));
	snprintf(dir, sizeof(dir), "%s/j", tmp);
	snprintf(log_path, sizeof(log_path), "%s/journal.log", dir);
	snprintf(snap_path, sizeof(snap_path), "%s/snapshot.jsonl", dir);
}

static void set_append_only(const char *path, bool on);

static void
teardown(void)
{
	if (append_only[0] != '\0')
		set_append_only(append_only, false);
	/* Detached even while a failed test still holds files open in it. */
	if (mounted)
		umount2(fs_dir, MNT_DETACH);
	nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(journal, .init = setup, .fini = teardown);

/* What an apply callback saw: each call's bytes, in order. */
#define MAX_SEEN 16
struct seen {
	size_t n;
	char *data[MAX_SEEN];
	size_t len[MAX_SEEN];
	size_t fail_at;   /* 1-based call that fails with -EPERM, 0: none */
};

static int
record_apply(void *ctx, const char *lines, size_t len, struct fg_err *err)
{
	struct seen *s = ctx;

	cr_assert_lt(s->n, MAX_SEEN);
	s->data[s->n] = malloc(len);
	cr_assert_not_null(s->data[s->n]);
	memcpy(s->data[s->n], lines, len);
	s->len[s->n] = len;
	s->n++;
	if (s->n == s->fail_at)
		return fg_err_set(err, EPERM, "refused by the test");
	return 0;
}

static void
seen_free(struct seen *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->data[i]);
	memset(s, 0, sizeof(*s));
}

static void
expect_seen(const struct seen *s, size_t i, const char *want)
{
	cr_assert_gt(s->n, i, "only %zu transactions applied, wanted #%zu", s->n, i + 1);
	cr_expect_eq(s->len[i], strlen(want), "transaction %zu: %zu bytes, want %zu",
		     i + 1, s->len[i], strlen(want));
	cr_expect(s->len[i] == strlen(want) && memcmp(s->data[i], want, s->len[i]) == 0,
		  "transaction %zu: \"%.*s\", want \"%s\"", i + 1, (int)s->len[i],
		  s->data[i], want);
}

static const char *R1 = "{\"op\":\"tenant\",\"tenant\":1}\n";
static const char *R2 = "{\"op\":\"tenant\",\"tenant\":2,\"name\":\"acme\"}\n"
			"{\"op\":\"sink\",\"sink\":20,\"tenant\":2,\"addr\":\"10.0.0.2\",\"port\":9,\"egress\":0}\n";
static const char *R3 = "{\"op\":\"device\",\"tenant\":2,\"device\":\"0xa1\",\"epoch\":1,\"sinks\":[20]}\n";

static size_t
rec_size(const char *lines)
{
	return FG_JOURNAL_HEADER_LEN + strlen(lines);
}

static struct fg_journal *
open_ok(void)
{
	struct fg_err err = { 0 };
	struct fg_journal *j = fg_journal_open(dir, &err);

	cr_assert_not_null(j, "fg_journal_open(%s): %s", dir, err.msg);
	return j;
}

static void
append_ok(struct fg_journal *j, const char *lines)
{
	struct fg_err err = { 0 };

	cr_assert_eq(fg_journal_append(j, lines, strlen(lines), &err), 0, "append: %s",
		     err.msg);
}

/* Open, replay into s, and return the open journal. */
static struct fg_journal *
replay_ok(struct seen *s, struct fg_journal_stats *st)
{
	struct fg_journal *j = open_ok();
	struct fg_err err = { 0 };

	cr_assert_eq(fg_journal_replay(j, record_apply, s, st, &err), 0, "replay: %s",
		     err.msg);
	return j;
}

/* Replay the closed journal and expect exactly the transactions listed (a
 * NULL ends the list), in order, in the given generation; close it again.
 * *st (unless NULL) keeps the replay's figures for more checks. */
static void
expect_replay(struct fg_journal_stats *st, uint32_t generation, ...)
{
	struct fg_journal_stats own;
	struct seen s = { 0 };
	struct fg_journal *j;
	const char *want;
	size_t n = 0;
	va_list ap;

	if (st == NULL)
		st = &own;
	j = replay_ok(&s, st);
	va_start(ap, generation);
	while ((want = va_arg(ap, const char *)) != NULL)
		expect_seen(&s, n++, want);
	va_end(ap);
	cr_assert_eq(s.n, n, "%zu transactions replayed, want %zu", s.n, n);
	cr_expect_eq(st->generation, generation);
	fg_journal_close(j);
	seen_free(&s);
}

static void
write_three(void)
{
	struct fg_journal *j = open_ok();
	struct fg_err err = { 0 };
	struct fg_journal_stats st;
	struct seen s = { 0 };

	cr_assert_eq(fg_journal_replay(j, record_apply, &s, &st, &err), 0, "%s", err.msg);
	cr_assert_eq(s.n, 0);
	append_ok(j, R1);
	append_ok(j, R2);
	append_ok(j, R3);
	cr_expect_eq(fg_journal_records(j), 3);
	cr_expect_eq(fg_journal_size(j), rec_size(R1) + rec_size(R2) + rec_size(R3));
	fg_journal_close(j);
}

static long
file_size(const char *path)
{
	struct stat sb;

	cr_assert_eq(stat(path, &sb), 0, "stat %s: %s", path, strerror(errno));
	return (long)sb.st_size;
}

static char *
read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void
write_all(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	cr_assert_eq(fwrite(data, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

/* ---- format ---------------------------------------------------------------- */

Test(journal, the_checksum_is_standard_crc32c)
{
	cr_expect_eq(fg_journal_crc32c("123456789", 9), 0xe3069283u);
	cr_expect_eq(fg_journal_crc32c("", 0), 0u);
	/* A buffer at an odd address and longer than one internal chunk. */
	char *big = malloc(10001);
	uint32_t whole;

	cr_assert_not_null(big);
	for (size_t i = 0; i < 10001; i++)
		big[i] = (char)(i * 7);
	whole = fg_journal_crc32c(big + 1, 10000);
	memmove(big, big + 1, 10000);
	cr_expect_eq(fg_journal_crc32c(big, 10000), whole);
	free(big);
}

Test(journal, a_record_on_disk_is_the_documented_bytes)
{
	struct fg_journal *j;
	struct seen s = { 0 };
	uint8_t want[16 + 2] = { 'F', 'G', 'J', '1', 2, 0, 0, 0, 0, 0, 0, 0 };
	uint8_t crc_in[12 + 2];
	uint32_t crc;
	char *got;
	size_t len;

	j = replay_ok(&s, NULL);
	append_ok(j, "x\n");
	fg_journal_close(j);

	memcpy(crc_in, want, 12);
	memcpy(crc_in + 12, "x\n", 2);
	crc = fg_journal_crc32c(crc_in, sizeof(crc_in));
	want[12] = (uint8_t)crc;
	want[13] = (uint8_t)(crc >> 8);
	want[14] = (uint8_t)(crc >> 16);
	want[15] = (uint8_t)(crc >> 24);
	memcpy(want + 16, "x\n", 2);
	got = read_all(log_path, &len);
	cr_assert_eq(len, sizeof(want));
	cr_expect(memcmp(got, want, sizeof(want)) == 0, "journal.log is not the documented record");
	free(got);
	/* The directory was created 0750 (less what the umask takes). */
	struct stat sb;
	cr_assert_eq(stat(dir, &sb), 0);
	cr_expect_eq(sb.st_mode & 0777 & ~0750u, 0, "directory mode %o", sb.st_mode & 0777);
}

/* ---- a. append, reopen, replay ---------------------------------------------- */

Test(journal, records_come_back_in_order_byte_identical)
{
	struct fg_journal_stats st;
	struct fg_journal *j;
	struct seen s = { 0 };

	write_three();
	j = replay_ok(&s, &st);
	cr_assert_eq(s.n, 3);
	expect_seen(&s, 0, R1);
	expect_seen(&s, 1, R2);
	expect_seen(&s, 2, R3);
	cr_expect_eq(st.records_replayed, 3);
	cr_expect_eq(st.records_skipped, 0);
	cr_expect_eq(st.bytes_discarded, 0);
	cr_expect_eq(st.generation, 0);
	cr_expect_eq(st.snapshot_bytes, 0);
	cr_expect_eq(fg_journal_records(j), 3);
	cr_expect_eq(fg_journal_size(j), rec_size(R1) + rec_size(R2) + rec_size(R3));
	cr_expect_eq(file_size(log_path), (long)fg_journal_size(j));
	fg_journal_close(j);
	seen_free(&s);
}

Test(journal, writes_before_replay_and_bad_lines_are_refused)
{
	struct fg_err err = { 0 };
	struct fg_journal *j = open_ok();
	struct seen s = { 0 };

	cr_expect_eq(fg_journal_append(j, R1, strlen(R1), &err), -EINVAL);
	cr_expect(strstr(err.msg, "replay the journal before writing") != NULL, "%s", err.msg);
	cr_assert_eq(fg_journal_replay(j, record_apply, &s, NULL, &err), 0, "%s", err.msg);
	cr_expect_eq(fg_journal_replay(j, record_apply, &s, NULL, &err), -EALREADY);

	cr_expect_eq(fg_journal_append(j, "", 0, &err), -EINVAL);
	cr_expect(strstr(err.msg, "no op lines") != NULL, "%s", err.msg);
	cr_expect_eq(fg_journal_append(j, "{}", 2, &err), -EINVAL);
	cr_expect(strstr(err.msg, "does not end in") != NULL, "%s", err.msg);
	cr_expect_eq(fg_journal_append(j, "{}\0\n", 4, &err), -EINVAL);
	cr_expect(strstr(err.msg, "NUL byte") != NULL, "%s", err.msg);
	cr_expect_eq(fg_journal_size(j), 0);
	cr_expect_eq(file_size(log_path), 0);

	/* One process at a time: a second open of the same journal is refused. */
	cr_expect_null(fg_journal_open(dir, &err));
	cr_expect_eq(err.code, EBUSY);
	cr_expect(strstr(err.msg, "journal.log: in use by another process") != NULL, "%s",
		  err.msg);
	fg_journal_close(j);
}

/* ---- b. a torn last record of every length ---------------------------------- */

Test(journal, a_torn_last_record_of_any_length_is_cut_off)
{
	size_t end2 = rec_size(R1) + rec_size(R2), total, cuts = 0;
	const char *R4 = "{\"op\":\"suspend\",\"tenant\":2}\n";
	char *full;

	write_three();
	full = read_all(log_path, &total);
	cr_assert_eq(total, end2 + rec_size(R3));

	for (size_t t = end2; t < total; t++, cuts++) {
		struct fg_journal_stats st;
		struct fg_journal *j;
		struct seen s = { 0 };

		write_all(log_path, full, t);
		j = replay_ok(&s, &st);
		cr_assert_eq(s.n, 2, "cut at %zu: %zu records applied", t, s.n);
		expect_seen(&s, 0, R1);
		expect_seen(&s, 1, R2);
		cr_expect_eq(st.records_replayed, 2, "cut at %zu", t);
		cr_expect_eq(st.bytes_discarded, t - end2, "cut at %zu: %lu discarded", t,
			     (unsigned long)st.bytes_discarded);
		cr_expect_eq(file_size(log_path), (long)end2, "cut at %zu: file is %ld bytes",
			     t, file_size(log_path));
		cr_expect_eq(fg_journal_size(j), end2);
		cr_expect_eq(fg_journal_records(j), 2);
		append_ok(j, R4);
		fg_journal_close(j);
		seen_free(&s);

		j = replay_ok(&s, &st);
		cr_assert_eq(s.n, 3, "cut at %zu, then appended: %zu records", t, s.n);
		expect_seen(&s, 0, R1);
		expect_seen(&s, 1, R2);
		expect_seen(&s, 2, R4);
		cr_expect_eq(st.bytes_discarded, 0);
		cr_expect_eq(file_size(log_path), (long)(end2 + rec_size(R4)));
		fg_journal_close(j);
		seen_free(&s);
	}
	cr_expect_eq(cuts, rec_size(R3));
	free(full);
}

/* ---- c. a flipped byte --------------------------------------------------------- */

static void
flip(size_t at)
{
	size_t len;
	char *buf = read_all(log_path, &len);

	cr_assert_lt(at, len);
	buf[at] ^= 0x20;
	write_all(log_path, buf, len);
	free(buf);
}

/* The journal.log.cut-* files in the journal directory. */
static size_t
count_cut_files(void)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;

	cr_assert_not_null(d, "%s: %s", dir, strerror(errno));
	while ((e = readdir(d)) != NULL)
		n += strncmp(e->d_name, "journal.log.cut-", 16) == 0;
	closedir(d);
	return n;
}

/* The last record cut, and when it was damaged rather than torn, kept in a
 * file that holds exactly the cut bytes. */
static void
expect_cut(const struct fg_journal_stats *st, const char *what, const void *cut,
	   size_t cut_len, bool damaged)
{
	char prefix[200];
	size_t len;
	char *kept;

	cr_expect_eq(st->bytes_discarded, cut_len, "%s: %lu bytes discarded, want %zu", what,
		     (unsigned long)st->bytes_discarded, cut_len);
	cr_expect_eq(st->tail_damaged, damaged, "%s: tail_damaged %d", what, st->tail_damaged);
	if (!damaged) {
		cr_expect_str_empty(st->cut_file, "%s", what);
		cr_expect_eq(count_cut_files(), 0, "%s: a torn record was kept", what);
		return;
	}
	snprintf(prefix, sizeof(prefix), "%s/journal.log.cut-", dir);
	cr_assert(strncmp(st->cut_file, prefix, strlen(prefix)) == 0, "%s: cut_file \"%s\"",
		  what, st->cut_file);
	kept = read_all(st->cut_file, &len);
	cr_expect_eq(len, cut_len, "%s: %s holds %zu bytes", what, st->cut_file, len);
	cr_expect(len == cut_len && memcmp(kept, cut, len) == 0,
		  "%s: %s does not hold the cut bytes", what, st->cut_file);
	free(kept);
}

Test(journal, a_flipped_byte_in_the_last_record_is_cut_and_kept)
{
	size_t end2 = rec_size(R1) + rec_size(R2);
	/* A flip that makes the length larger leaves a record that runs past
	 * the end of the file: that is what a torn write looks like, and no
	 * check tells it apart. Every other flip leaves a record there in
	 * full that fails its checks: damage, perhaps to an acknowledged
	 * record. */
	struct { size_t at; bool damaged; } cases[] = {
		{ end2 + 16 + 5, true }, { end2 + 0 /* magic */, true },
		{ end2 + 4 /* length, 70 -> 102 */, false },
		{ end2 + 8 /* generation */, true }, { end2 + 12 /* crc */, true },
	};

	cr_assert_eq(strlen(R3) & 0x20, 0, "the length flip would not make it larger");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fg_journal_stats st;
		struct fg_journal *j;
		struct seen s = { 0 };
		char what[32], *full;
		size_t total;

		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		write_three();
		flip(cases[i].at);
		full = read_all(log_path, &total);
		j = replay_ok(&s, &st);
		snprintf(what, sizeof(what), "flip at %zu", cases[i].at);
		cr_expect_eq(s.n, 2, "%s: %zu applied", what, s.n);
		expect_seen(&s, 0, R1);
		expect_seen(&s, 1, R2);
		expect_cut(&st, what, full + end2, rec_size(R3), cases[i].damaged);
		cr_expect_eq(file_size(log_path), (long)end2);
		fg_journal_close(j);
		seen_free(&s);
		free(full);
	}
}

Test(journal, a_short_last_record_is_torn_a_whole_one_failing_its_crc_is_damaged)
{
	size_t end2 = rec_size(R1) + rec_size(R2), total, len;
	struct fg_journal_stats st;
	struct fg_journal *j;
	struct seen s = { 0 };
	char *full, first[4096], *kept;

	/* Five bytes short: torn, never acknowledged, nothing kept. */
	write_three();
	full = read_all(log_path, &total);
	cr_assert_eq(truncate(log_path, (off_t)total - 5), 0);
	j = replay_ok(&s, &st);
	cr_expect_eq(s.n, 2);
	expect_cut(&st, "short", full + end2, rec_size(R3) - 5, false);
	cr_expect_eq(file_size(log_path), (long)end2);
	fg_journal_close(j);
	seen_free(&s);
	free(full);

	/* Whole length, one payload byte flipped: damaged, cut, kept. */
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	write_three();
	flip(end2 + 16 + 30);
	full = read_all(log_path, &total);
	j = replay_ok(&s, &st);
	cr_expect_eq(s.n, 2);
	expect_cut(&st, "flipped", full + end2, rec_size(R3), true);
	cr_expect_eq(file_size(log_path), (long)end2);
	cr_expect_eq(count_cut_files(), 1);
	snprintf(first, sizeof(first), "%s", st.cut_file);
	/* Cut once: the journal is clean and takes appends after it. */
	append_ok(j, R3);
	fg_journal_close(j);
	seen_free(&s);
	j = replay_ok(&s, &st);
	cr_expect_eq(s.n, 3);
	cr_expect_eq(st.bytes_discarded, 0);
	cr_expect_eq(st.tail_damaged, false);
	cr_expect_eq(count_cut_files(), 1);
	fg_journal_close(j);
	seen_free(&s);

	/* A second damaged tail (within the same second, as a rule) gets a
	 * file of its own; the first copy is left as it was. */
	flip(end2 + 16 + 31);
	free(full);
	full = read_all(log_path, &total);
	j = replay_ok(&s, &st);
	expect_cut(&st, "second", full + end2, rec_size(R3), true);
	cr_expect_str_neq(st.cut_file, first);
	cr_expect_eq(count_cut_files(), 2);
	kept = read_all(first, &len);
	cr_expect_eq(len, rec_size(R3));
	cr_expect(len == rec_size(R3) && memcmp(kept, full + end2, len) != 0 &&
		  kept[16 + 30] != full[end2 + 16 + 30], "the first copy was overwritten");
	free(kept);
	fg_journal_close(j);
	seen_free(&s);
	free(full);
}

Test(journal, a_flipped_byte_in_an_earlier_record_is_refused_and_nothing_applied)
{
	struct { size_t at; const char *names; } cases[] = {
		{ 16 + 3, "record 1 at offset 0: CRC32C mismatch" },
		{ 1, "record 1 at offset 0: bad magic" },
		{ rec_size(R1) + 16 + 40, "record 2 at offset 43: CRC32C mismatch" },
	};

	cr_assert_eq(rec_size(R1), 43);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fg_journal_stats st;
		struct fg_err err = { 0 };
		struct fg_journal *j;
		struct seen s = { 0 };
		size_t total = rec_size(R1) + rec_size(R2) + rec_size(R3);

		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		write_three();
		flip(cases[i].at);
		j = open_ok();
		cr_expect_eq(fg_journal_replay(j, record_apply, &s, &st, &err), -EBADMSG);
		cr_expect_eq(err.code, EBADMSG);
		cr_expect(strncmp(err.msg, log_path, strlen(log_path)) == 0, "%s", err.msg);
		cr_expect(strstr(err.msg, cases[i].names) != NULL, "case %zu: \"%s\" does not say \"%s\"",
			  i, err.msg, cases[i].names);
		cr_expect(strstr(err.msg, "damaged, not torn") != NULL, "%s", err.msg);
		cr_expect_eq(s.n, 0, "case %zu: %zu transactions applied", i, s.n);
		cr_expect_eq(st.records_replayed, 0);
		cr_expect_eq(file_size(log_path), (long)total, "the file was changed");
		/* Not replayed: the journal takes no appends. */
		cr_expect_eq(fg_journal_append(j, R1, strlen(R1), &err), -EINVAL);
		fg_journal_close(j);
	}
}

/* ---- d. snapshots ------------------------------------------------------------- */

static const char *SNAP = "{\"op\":\"tenant\",\"tenant\":1}\n{\"op\":\"tenant\",\"tenant\":2}\n";

static int
dump_text(void *ctx, FILE *out)
{
	fputs(ctx, out);
	return 0;
}

static int
dump_fails(void *ctx, FILE *out)
{
	(void)ctx;
	fputs("{\"op\":", out);
	return -ENOSPC;
}

static void
snapshot_ok(struct fg_journal *j, const char *text)
{
	struct fg_err err = { 0 };

	cr_assert_eq(fg_journal_snapshot(j, dump_text, (void *)text, &err), 0, "snapshot: %s",
		     err.msg);
}

Test(journal, a_snapshot_then_later_records)
{
	struct fg_journal_stats st;
	struct fg_journal *j;
	struct seen s = { 0 };
	char want_header[160], *snap;
	size_t len;

	j = replay_ok(&s, NULL);
	append_ok(j, R1);
	append_ok(j, R2);
	snapshot_ok(j, SNAP);
	cr_expect_eq(fg_journal_size(j), 0);
	cr_expect_eq(fg_journal_records(j), 0);
	cr_expect_eq(fg_journal_generation(j), 1);
	cr_expect_eq(file_size(log_path), 0);
	append_ok(j, R3);
	fg_journal_close(j);

	/* The snapshot is the documented header line, then the dumped lines. */
	snap = read_all(snap_path, &len);
	snprintf(want_header, sizeof(want_header),
		 "{\"framegate_snapshot\":1,\"generation\":1,\"bytes\":%zu,\"crc32c\":\"%08x\"}\n",
		 strlen(SNAP), fg_journal_crc32c(SNAP, strlen(SNAP)));
	cr_expect_eq(len, strlen(want_header) + strlen(SNAP));
	cr_expect(strncmp(snap, want_header, strlen(want_header)) == 0, "%s", snap);
	cr_expect_str_eq(snap + strlen(want_header), SNAP);
	free(snap);

	j = replay_ok(&s, &st);
	cr_assert_eq(s.n, 2);
	expect_seen(&s, 0, SNAP);
	expect_seen(&s, 1, R3);
	cr_expect_eq(st.generation, 1);
	cr_expect_eq(st.snapshot_bytes, strlen(SNAP));
	cr_expect_eq(st.records_replayed, 1);
	cr_expect_eq(st.records_skipped, 0);
	cr_expect_eq(fg_journal_generation(j), 1);

	/* A second compaction: generation 2, an empty state is fine too. */
	snapshot_ok(j, "");
	cr_expect_eq(fg_journal_generation(j), 2);
	fg_journal_close(j);
	seen_free(&s);
	j = replay_ok(&s, &st);
	cr_expect_eq(s.n, 0);
	cr_expect_eq(st.generation, 2);
	fg_journal_close(j);
}

/* R1 and R2 compacted into SNAP, and the truncation of journal.log that
 * follows the snapshot's rename lost, as in a crash between the two: the
 * journal is closed and journal.log still holds the two old records. */
static void
compact_losing_the_truncation(void)
{
	struct seen s = { 0 };
	struct fg_journal *j = replay_ok(&s, NULL);
	char *old_log;
	size_t old_len;

	append_ok(j, R1);
	append_ok(j, R2);
	old_log = read_all(log_path, &old_len);
	snapshot_ok(j, SNAP);
	fg_journal_close(j);
	write_all(log_path, old_log, old_len);
	free(old_log);
	seen_free(&s);
}

Test(journal, a_crash_between_rename_and_truncation_applies_nothing_twice)
{
	struct fg_journal_stats st;
	struct fg_journal *j;
	struct seen s = { 0 };

	compact_losing_the_truncation();
	j = replay_ok(&s, &st);
	cr_assert_eq(s.n, 1, "%zu transactions: the old records were applied again", s.n);
	expect_seen(&s, 0, SNAP);
	cr_expect_eq(st.records_skipped, 2);
	cr_expect_eq(st.records_replayed, 0);
	cr_expect_eq(fg_journal_records(j), 2);
	/* New records go after the old ones, in the new generation. */
	append_ok(j, R3);
	fg_journal_close(j);
	seen_free(&s);

	j = replay_ok(&s, &st);
	cr_assert_eq(s.n, 2);
	expect_seen(&s, 0, SNAP);
	expect_seen(&s, 1, R3);
	cr_expect_eq(st.records_skipped, 2);
	cr_expect_eq(st.records_replayed, 1);
	/* Compacting again clears the old records away. */
	snapshot_ok(j, "{\"op\":\"tenant\",\"tenant\":3}\n");
	fg_journal_close(j);
	seen_free(&s);
	j = replay_ok(&s, &st);
	cr_assert_eq(s.n, 1);
	expect_seen(&s, 0, "{\"op\":\"tenant\",\"tenant\":3}\n");
	cr_expect_eq(st.records_skipped, 0);
	fg_journal_close(j);
	seen_free(&s);
}

Test(journal, a_crash_before_the_rename_leaves_the_old_state)
{
	char tmp_path[200];
	struct fg_err err = { 0 };
	struct fg_journal *j;
	struct seen s = { 0 };

	j = replay_ok(&s, NULL);
	append_ok(j, R1);
	/* A dump that fails: nothing changes. */
	cr_expect_eq(fg_journal_snapshot(j, dump_fails, NULL, &err), -ENOSPC);
	cr_expect(strstr(err.msg, "writing the state for a snapshot") != NULL, "%s", err.msg);
	cr_expect_eq(access(snap_path, F_OK), -1);
	/* Dumped text that is not whole lines is refused too. */
	cr_expect_eq(fg_journal_snapshot(j, dump_text, "{\"op\":\"tenant\",\"tenant\":1}", &err),
		     -EINVAL);
	cr_expect_eq(fg_journal_generation(j), 0);
	append_ok(j, R2);
	fg_journal_close(j);
	/* A half-written snapshot.tmp of a crashed compaction. */
	snprintf(tmp_path, sizeof(tmp_path), "%s/snapshot.tmp", dir);
	write_all(tmp_path, "{\"framegate_snap", 16);

	expect_replay(NULL, 0, R1, R2, NULL);
	cr_expect_eq(access(tmp_path, F_OK), -1, "snapshot.tmp was not removed");
}

Test(journal, a_damaged_or_missing_snapshot_is_refused)
{
	struct fg_err err = { 0 };
	struct fg_journal *j;
	struct seen s = { 0 };
	char *snap;
	size_t len;

	j = replay_ok(&s, NULL);
	append_ok(j, R1);
	snapshot_ok(j, SNAP);
	append_ok(j, R2);
	fg_journal_close(j);

	/* A flipped byte in the snapshot's op lines. */
	snap = read_all(snap_path, &len);
	snap[len - 3] ^= 0x01;
	write_all(snap_path, snap, len);
	j = open_ok();
	cr_expect_eq(fg_journal_replay(j, record_apply, &s, NULL, &err), -EBADMSG);
	cr_expect(strstr(err.msg, "snapshot.jsonl: CRC32C mismatch") != NULL, "%s", err.msg);
	cr_expect_eq(s.n, 0);
	fg_journal_close(j);

	/* A truncated snapshot. */
	snap[len - 3] ^= 0x01;
	write_all(snap_path, snap, len - 10);
	j = open_ok();
	cr_expect_eq(fg_journal_replay(j, record_apply, &s, NULL, &err), -EBADMSG);
	cr_expect(strstr(err.msg, "snapshot.jsonl: the header says") != NULL, "%s", err.msg);
	fg_journal_close(j);

	/* No snapshot, but records of generation 1. */
	free(snap);
	cr_assert_eq(unlink(snap_path), 0);
	j = open_ok();
	cr_expect_eq(fg_journal_replay(j, record_apply, &s, NULL, &err), -EBADMSG);
	cr_expect(strstr(err.msg, "journal.log: record 1 at offset 0: generation 1 is newer than the snapshot's (0)") != NULL,
		  "%s", err.msg);
	cr_expect_eq(s.n, 0);
	fg_journal_close(j);
}

/* ---- e. bad inputs --------------------------------------------------------- */

Test(journal, a_directory_that_cannot_be_created_is_named)
{
	char file[128], bad[160];
	struct fg_err err = { 0 };

	snprintf(file, sizeof(file), "%s/plain", tmp);
	write_all(file, "x", 1);
	snprintf(bad, sizeof(bad), "%s/j", file);
	cr_expect_null(fg_journal_open(bad, &err));
	cr_expect_eq(err.code, ENOTDIR);
	cr_expect(strstr(err.msg, bad) == err.msg && strstr(err.msg, "cannot create the journal directory") != NULL,
		  "%s", err.msg);

	snprintf(bad, sizeof(bad), "%s/missing/j", tmp);
	cr_expect_null(fg_journal_open(bad, &err));
	cr_expect_eq(err.code, ENOENT);
	cr_expect(strstr(err.msg, bad) == err.msg, "%s", err.msg);

	/* The journal path is a regular file. */
	cr_expect_null(fg_journal_open(file, &err));
	cr_expect_eq(err.code, ENOTDIR, "%d %s", err.code, err.msg);
	cr_expect(strstr(err.msg, file) == err.msg, "%s", err.msg);
}

Test(journal, garbage_is_cut_off_or_refused_never_a_crash)
{
	struct fg_journal_stats st;
	struct fg_err err = { 0 };
	struct fg_journal *j;
	struct seen s = { 0 };
	unsigned char junk[4096];
	char *good;
	size_t good_len;

	cr_assert_eq(mkdir(dir, 0750), 0);
	srand(1);
	/* Random files of random lengths, some starting with the magic. */
	for (int round = 0; round < 300; round++) {
		size_t n = (size_t)(rand() % (int)sizeof(junk));

		for (size_t i = 0; i < n; i++)
			junk[i] = (unsigned char)rand();
		if (round % 3 == 0 && n >= 4)
			memcpy(junk, "FGJ1", 4);
		write_all(log_path, junk, n);
		j = open_ok();
		cr_expect_eq(fg_journal_replay(j, record_apply, &s, &st, &err), 0,
			     "round %d: %s", round, err.msg);
		cr_expect_eq(s.n, 0);
		cr_expect_eq(st.bytes_discarded, n);
		cr_expect_eq(file_size(log_path), 0);
		/* Fewer than 16 bytes is a torn header; what is kept is all of it. */
		if (n < 16)
			cr_expect_eq(st.tail_damaged, false, "round %d", round);
		if (st.tail_damaged) {
			cr_expect_eq(file_size(st.cut_file), (long)n, "round %d", round);
			cr_expect_eq(unlink(st.cut_file), 0);
		}
		cr_expect_eq(count_cut_files(), 0, "round %d", round);
		fg_journal_close(j);
	}

	/* Garbage, then a whole record: damage, not a torn write. */
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	write_three();
	good = read_all(log_path, &good_len);
	memcpy(junk, "garbage!", 8);
	memcpy(junk + 8, good, good_len);
	write_all(log_path, junk, 8 + good_len);
	free(good);
	j = open_ok();
	cr_expect_eq(fg_journal_replay(j, record_apply, &s, NULL, &err), -EBADMSG);
	cr_expect(strstr(err.msg, "record 1 at offset 0: bad magic, but a whole record follows at offset 8") != NULL,
		  "%s", err.msg);
	cr_expect_eq(s.n, 0);
	fg_journal_close(j);

	/* A garbage snapshot. */
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	cr_assert_eq(mkdir(dir, 0750), 0);
	write_all(snap_path, "not json\n{\"op\":\"tenant\",\"tenant\":1}\n", 36);
	j = open_ok();
	cr_expect_eq(fg_journal_replay(j, record_apply, &s, NULL, &err), -EBADMSG);
	cr_expect(strstr(err.msg, "snapshot.jsonl: bad header line") != NULL, "%s", err.msg);
	fg_journal_close(j);
	write_all(snap_path, "{\"framegate_snapshot\":1}", 24);
	j = open_ok();
	cr_expect_eq(fg_journal_replay(j, record_apply, &s, NULL, &err), -EBADMSG);
	cr_expect(strstr(err.msg, "snapshot.jsonl: no header line") != NULL, "%s", err.msg);
	fg_journal_close(j);
	seen_free(&s);
}

/* ---- f. the callback refuses ---------------------------------------------------- */

Test(journal, an_apply_error_stops_the_replay_and_names_the_record)
{
	struct fg_journal_stats st;
	struct fg_err err = { 0 };
	struct fg_journal *j;
	struct seen s = { .fail_at = 2 };
	char want[256];
	long size;

	write_three();
	size = file_size(log_path);
	j = open_ok();
	cr_expect_eq(fg_journal_replay(j, record_apply, &s, &st, &err), -EPERM);
	snprintf(want, sizeof(want), "%s: record 2 at offset %zu: refused by the test",
		 log_path, rec_size(R1));
	cr_expect_str_eq(err.msg, want);
	cr_expect_eq(err.code, EPERM);
	cr_expect_eq(s.n, 2, "record 3 was applied after the error");
	cr_expect_eq(st.records_replayed, 1);
	cr_expect_eq(file_size(log_path), size);
	cr_expect_eq(fg_journal_append(j, R1, strlen(R1), &err), -EINVAL);
	fg_journal_close(j);
	seen_free(&s);

	/* A refusal of the snapshot names the snapshot. */
	j = replay_ok(&s, NULL);
	snapshot_ok(j, SNAP);
	fg_journal_close(j);
	seen_free(&s);
	s.fail_at = 1;
	j = open_ok();
	cr_expect_eq(fg_journal_replay(j, record_apply, &s, NULL, &err), -EPERM);
	snprintf(want, sizeof(want), "%s: refused by the test", snap_path);
	cr_expect_str_eq(err.msg, want);
	fg_journal_close(j);
	seen_free(&s);
}

/* ---- g. a failed write, and recovery without a reopen ------------------------ */

/* Put the journal on a 2 MiB tmpfs of its own (skip without one). */
static void
mount_small(void)
{
	snprintf(fs_dir, sizeof(fs_dir), "%s/fs", tmp);
	cr_assert_eq(mkdir(fs_dir, 0700), 0);
	if (mount("tmpfs", fs_dir, "tmpfs", 0, "size=2m,mode=0700") != 0)
		cr_skip_test("cannot mount a tmpfs on %s: %s", fs_dir, strerror(errno));
	mounted = true;
	snprintf(dir, sizeof(dir), "%s/j", fs_dir);
	snprintf(log_path, sizeof(log_path), "%s/journal.log", dir);
	snprintf(snap_path, sizeof(snap_path), "%s/snapshot.jsonl", dir);
}

/* Fill the tmpfs with a file beside the journal, leaving about keep bytes
 * free; its path goes to path. */
static void
fill_disk(size_t keep, char *path, size_t path_size)
{
	static char zeros[64 * 1024];
	off_t size = 0;
	ssize_t n;
	int fd;

	snprintf(path, path_size, "%s/filler", fs_dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	while ((n = write(fd, zeros, sizeof(zeros))) > 0)
		size += n;
	cr_assert_eq(errno, ENOSPC, "filling %s: %s", path, strerror(errno));
	cr_assert_gt(size, (off_t)keep);
	cr_assert_eq(ftruncate(fd, size - (off_t)keep), 0);
	cr_assert_eq(close(fd), 0);
}

/* A record's op lines of about 1 KiB: tenant i. */
static char *
big_lines(unsigned int i)
{
	char *text;

	cr_assert_gt(asprintf(&text, "{\"op\":\"tenant\",\"tenant\":%u,\"name\":\"%0960u\"}\n", i, i),
		     0);
	return text;
}

/* What a replay must hand over: exactly these transactions, in order. */
struct expected {
	char **text;
	size_t n;        /* how many there are */
	size_t got;      /* how many the replay handed over */
	size_t bad;      /* 1-based first one that differed, 0: none */
};

static int
expected_apply(void *ctx, const char *lines, size_t len, struct fg_err *err)
{
	struct expected *e = ctx;

	(void)err;
	if (e->bad == 0 && (e->got >= e->n || strlen(e->text[e->got]) != len ||
			    memcmp(e->text[e->got], lines, len) != 0))
		e->bad = e->got + 1;
	e->got++;
	return 0;
}

Test(journal, a_full_disk_refuses_changes_until_recovered_and_loses_nothing)
{
	enum { CAP = 512 };
	char *acked[CAP], filler[200], want[512], *text;
	struct expected e = { .text = acked };
	struct fg_journal_stats st;
	struct fg_err err = { 0 };
	struct fg_journal *j;
	size_t bytes = 0, len;
	const char *msg;
	int ret = 0, code;
	unsigned int i;

	mount_small();
	j = open_ok();
	cr_assert_eq(fg_journal_replay(j, expected_apply, &e, NULL, &err), 0, "%s", err.msg);
	fill_disk(96 * 1024, filler, sizeof(filler));

	/* Append until the disk is full; only the ones that returned 0 count. */
	for (i = 1; i <= CAP; i++) {
		text = big_lines(i);
		ret = fg_journal_append(j, text, strlen(text), &err);
		if (ret < 0) {
			free(text);
			break;
		}
		acked[e.n++] = text;
		bytes += rec_size(text);
	}
	cr_assert_eq(ret, -ENOSPC, "append %u: %d %s", i, ret, err.msg);
	cr_assert_geq(e.n, 20, "only %zu records before the disk was full", e.n);
	cr_expect_eq(err.code, ENOSPC);
	snprintf(want, sizeof(want), "%s: appending record %zu at offset %zu: No space left on device",
		 log_path, e.n + 1, bytes);
	cr_expect_str_eq(err.msg, want);
	/* The failed append is not in the file. */
	cr_expect_eq(file_size(log_path), (long)bytes);
	cr_expect_eq(fg_journal_size(j), bytes);
	cr_expect_eq(fg_journal_records(j), e.n);
	cr_expect(fg_journal_failed(j));
	msg = fg_journal_last_error(j, &code);
	cr_assert_not_null(msg);
	cr_expect_eq(code, ENOSPC);
	cr_expect_str_eq(msg, want);

	/* Later changes are refused, naming the first failure. */
	cr_expect_eq(fg_journal_append(j, R1, strlen(R1), &err), -ENOSPC);
	snprintf(want, sizeof(want), "%s: refusing changes since appending record %zu at offset %zu"
		 " failed: No space left on device (the router retries; see health)",
		 log_path, e.n + 1, bytes);
	cr_expect_str_eq(err.msg, want);
	cr_expect_eq(fg_journal_snapshot(j, dump_text, (void *)SNAP, &err), -ENOSPC);
	cr_expect_str_eq(err.msg, want);
	cr_expect_eq(file_size(log_path), (long)bytes);

	/* Still full: recovery fails and says so; nothing changes. */
	cr_expect_eq(fg_journal_recover(j, &err), -ENOSPC);
	cr_expect_eq(err.code, ENOSPC);
	snprintf(want, sizeof(want), "%s: still cannot write: No space left on device", dir);
	cr_expect_str_eq(err.msg, want);
	cr_expect(fg_journal_failed(j));
	cr_expect_eq(fg_journal_append(j, R1, strlen(R1), &err), -ENOSPC);
	cr_expect(strstr(err.msg, "refusing changes since appending record") != NULL, "%s", err.msg);

	/* Space comes back: recovery succeeds and appends work again. */
	cr_assert_eq(unlink(filler), 0);
	cr_assert_eq(fg_journal_recover(j, &err), 0, "recover: %s", err.msg);
	cr_expect_not(fg_journal_failed(j));
	cr_expect_null(fg_journal_last_error(j, &code));
	cr_expect_eq(code, 0);
	for (unsigned int k = 0; k < 3; k++) {
		acked[e.n] = big_lines(10000 + k);
		append_ok(j, acked[e.n]);
		bytes += rec_size(acked[e.n++]);
	}
	cr_expect_eq(file_size(log_path), (long)bytes);
	fg_journal_close(j);

	/* A restart finds exactly the acknowledged records, in order. */
	j = open_ok();
	e.got = 0;
	cr_assert_eq(fg_journal_replay(j, expected_apply, &e, &st, &err), 0, "%s", err.msg);
	cr_expect_eq(e.got, e.n, "%zu records replayed, %zu acknowledged", e.got, e.n);
	cr_expect_eq(e.bad, 0, "record %zu is not the acknowledged one", e.bad);
	cr_expect_eq(st.records_replayed, e.n);
	cr_expect_eq(st.bytes_discarded, 0);
	fg_journal_close(j);
	len = e.n;
	for (size_t k = 0; k < len; k++)
		free(acked[k]);
}

/* Append big records until one fails for want of space; how many made it. */
static size_t
append_until_full(struct fg_journal *j, struct fg_err *err)
{
	size_t n = 0;

	for (unsigned int i = 1; i <= 512; i++) {
		char *text = big_lines(i);
		int ret = fg_journal_append(j, text, strlen(text), err);

		free(text);
		if (ret < 0) {
			cr_assert_eq(ret, -ENOSPC, "append %u: %s", i, err->msg);
			return n;
		}
		n++;
	}
	cr_assert_fail("the disk never filled");
	return n;
}

Test(journal, recovery_refuses_a_journal_damaged_on_disk)
{
	char filler[200], want[512], *good;
	struct fg_err err = { 0 };
	struct fg_journal *j;
	struct seen s = { 0 };
	size_t n, good_len, at;
	int fd;

	mount_small();
	j = replay_ok(&s, NULL);
	append_ok(j, R1);
	append_ok(j, R2);
	fill_disk(32 * 1024, filler, sizeof(filler));
	n = append_until_full(j, &err);
	cr_assert(fg_journal_failed(j));
	cr_assert_eq(unlink(filler), 0);
	good = read_all(log_path, &good_len);
	cr_assert_eq(good_len, fg_journal_size(j));
	cr_assert_eq(fg_journal_records(j), 2 + n);

	/* A byte of record 2 changes on disk after it was acknowledged. */
	at = rec_size(R1) + 16 + 10;
	fd = open(log_path, O_WRONLY);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, "#", 1, (off_t)at), 1);
	cr_assert_eq(close(fd), 0);
	cr_expect_eq(fg_journal_recover(j, &err), -EBADMSG);
	cr_expect_eq(err.code, EBADMSG);
	snprintf(want, sizeof(want), "%s: record 2 at offset %zu: CRC32C mismatch: the journal is"
		 " damaged; it cannot be recovered by retrying", log_path, rec_size(R1));
	cr_expect_str_eq(err.msg, want);
	cr_expect(fg_journal_failed(j));
	cr_expect_eq(fg_journal_append(j, R3, strlen(R3), &err), -ENOSPC, "%s", err.msg);

	/* Acknowledged bytes missing from the end: damage too. */
	write_all(log_path, good, good_len - 10);
	cr_expect_eq(fg_journal_recover(j, &err), -EBADMSG);
	snprintf(want, sizeof(want), "%s: holds %zu bytes, but the written records end at %zu",
		 log_path, good_len - 10, good_len);
	cr_expect(strncmp(err.msg, want, strlen(want)) == 0, "\"%s\" does not start with \"%s\"",
		  err.msg, want);
	cr_expect(fg_journal_failed(j));

	/* The bytes as they were: recovery succeeds (the refusal was the damage). */
	write_all(log_path, good, good_len);
	cr_expect_eq(fg_journal_recover(j, &err), 0, "%s", err.msg);
	cr_expect_not(fg_journal_failed(j));
	append_ok(j, R3);
	fg_journal_close(j);
	free(good);
}

Test(journal, a_snapshot_failing_on_a_full_disk_leaves_the_journal_appendable)
{
	char filler[200], tmp_path[200], *state;
	struct fg_err err = { 0 };
	struct fg_journal *j;
	struct seen s = { 0 };
	size_t size;

	mount_small();
	j = replay_ok(&s, NULL);
	append_ok(j, R1);
	append_ok(j, R2);
	size = fg_journal_size(j);
	fill_disk(0, filler, sizeof(filler));

	/* A state bigger than any space left: snapshot.tmp cannot be written,
	 * which is before the rename, so nothing changes. */
	state = malloc(256 * 1024 + 1);
	cr_assert_not_null(state);
	for (size_t i = 0; i < 256 * 1024; i += 64)
		snprintf(state + i, 65, "{\"op\":\"tenant\",\"tenant\":1%07zu,\"name\":\"%020zu\"}\n",
			 i, i);
	cr_assert_eq(strlen(state), 256 * 1024);
	cr_expect_eq(fg_journal_snapshot(j, dump_text, state, &err), -ENOSPC);
	cr_expect(strstr(err.msg, "snapshot.tmp: No space left on device") != NULL, "%s", err.msg);
	cr_expect_not(fg_journal_failed(j));
	cr_expect_eq(fg_journal_generation(j), 0);
	cr_expect_eq(access(snap_path, F_OK), -1);
	snprintf(tmp_path, sizeof(tmp_path), "%s/snapshot.tmp", dir);
	cr_expect_eq(access(tmp_path, F_OK), -1, "snapshot.tmp was left behind");
	cr_expect_eq(file_size(log_path), (long)size);
	/* Recovery tells whether the disk takes writes; it fails nothing. */
	cr_expect_eq(fg_journal_recover(j, &err), -ENOSPC);
	cr_expect(strstr(err.msg, "still cannot write: No space left on device") != NULL, "%s",
		  err.msg);
	cr_expect_not(fg_journal_failed(j));

	/* Space back: the journal takes the next change without a recovery. */
	cr_assert_eq(unlink(filler), 0);
	append_ok(j, R3);
	cr_expect_eq(fg_journal_recover(j, &err), 0, "%s", err.msg);
	snapshot_ok(j, state);
	cr_expect_eq(fg_journal_generation(j), 1);
	append_ok(j, R1);
	fg_journal_close(j);
	expect_replay(NULL, 1, state, R1, NULL);
	free(state);
}

/* Set or clear FS_APPEND_FL (chattr +a): ftruncate then fails with EPERM. */
static void
set_append_only(const char *path, bool on)
{
	int fd = open(path, O_RDONLY), flags = 0, ret;

	if (fd < 0)
		return;
	ret = ioctl(fd, FS_IOC_GETFLAGS, &flags);
	if (ret == 0) {
		flags = on ? flags | FS_APPEND_FL : flags & ~FS_APPEND_FL;
		ret = ioctl(fd, FS_IOC_SETFLAGS, &flags);
	}
	close(fd);
	if (ret != 0 && on)
		cr_skip_test("chattr +a %s: %s", path, strerror(errno));
	if (ret == 0)
		snprintf(append_only, sizeof(append_only), "%s", on ? path : "");
}

Test(journal, recovery_finishes_a_compaction_that_failed_after_its_rename)
{
	struct fg_journal_stats st;
	struct fg_err err = { 0 };
	struct fg_journal *j;
	struct seen s = { 0 };
	char want[300];
	size_t size;

	j = replay_ok(&s, NULL);
	append_ok(j, R1);
	append_ok(j, R2);
	size = fg_journal_size(j);
	/* journal.log cannot be truncated: the compaction fails after it
	 * renamed the snapshot in. */
	set_append_only(log_path, true);
	cr_expect_eq(fg_journal_snapshot(j, dump_text, (void *)SNAP, &err), -EPERM);
	snprintf(want, sizeof(want), "%s: truncating journal.log after the snapshot: "
		 "Operation not permitted", log_path);
	cr_expect_str_eq(err.msg, want);
	cr_expect(fg_journal_failed(j));
	cr_expect_eq(fg_journal_generation(j), 1);
	cr_expect_eq(access(snap_path, F_OK), 0);
	cr_expect_eq(file_size(log_path), (long)size);
	cr_expect_eq(fg_journal_append(j, R3, strlen(R3), &err), -EPERM);
	snprintf(want, sizeof(want), "%s: refusing changes since truncating journal.log after the"
		 " snapshot failed: Operation not permitted (the router retries; see health)",
		 log_path);
	cr_expect_str_eq(err.msg, want);
	cr_expect_eq(fg_journal_recover(j, &err), -EPERM);
	cr_expect(fg_journal_failed(j));

	set_append_only(log_path, false);
	cr_assert_eq(fg_journal_recover(j, &err), 0, "%s", err.msg);
	cr_expect_not(fg_journal_failed(j));
	cr_expect_eq(fg_journal_size(j), 0);
	cr_expect_eq(fg_journal_records(j), 0);
	cr_expect_eq(file_size(log_path), 0);
	append_ok(j, R3);
	fg_journal_close(j);
	expect_replay(&st, 1, SNAP, R3, NULL);
	cr_expect_eq(st.records_skipped, 0);
}

Test(journal, recovery_accepts_records_a_snapshot_superseded)
{
	struct fg_err err = { 0 };
	struct fg_journal *j;
	struct seen s = { 0 };
	char *old_log, want[512];
	size_t old_len;

	compact_losing_the_truncation();
	j = replay_ok(&s, NULL);
	cr_assert_eq(fg_journal_generation(j), 1);
	cr_assert_eq(fg_journal_records(j), 2);
	/* Records of generation 0 under a journal of generation 1: replay skips
	 * them, so the check takes them as whole. */
	cr_expect_eq(fg_journal_recover(j, &err), 0, "%s", err.msg);
	append_ok(j, R3);
	/* A record of a generation newer than the journal's is not. */
	fg_journal_close(j);
	old_log = read_all(log_path, &old_len);
	old_log[8] = 2;   /* record 1's generation, then its CRC again */
	{
		uint8_t crc_in[12 + 64];
		uint32_t crc;

		cr_assert_lt(strlen(R1), 64);
		memcpy(crc_in, old_log, 12);
		memcpy(crc_in + 12, old_log + 16, strlen(R1));
		crc = fg_journal_crc32c(crc_in, 12 + strlen(R1));
		for (int b = 0; b < 4; b++)
			old_log[12 + b] = (char)(crc >> (8 * b));
	}
	seen_free(&s);
	j = replay_ok(&s, NULL);
	write_all(log_path, old_log, old_len);
	cr_expect_eq(fg_journal_recover(j, &err), -EBADMSG);
	snprintf(want, sizeof(want), "%s: record 1 at offset 0: generation 2 is newer than the"
		 " journal's (1)", log_path);
	cr_expect(strncmp(err.msg, want, strlen(want)) == 0, "%s", err.msg);
	fg_journal_close(j);
	seen_free(&s);
	free(old_log);
}

Test(journal, recovery_needs_a_replay_first)
{
	struct fg_err err = { 0 };
	struct fg_journal *j = open_ok();

	cr_expect_eq(fg_journal_recover(j, &err), -EINVAL);
	cr_expect(strstr(err.msg, "replay the journal before recovering it") != NULL, "%s",
		  err.msg);
	cr_expect_not(fg_journal_failed(j));
	cr_expect_null(fg_journal_last_error(j, NULL));
	fg_journal_close(j);
}

/* ---- end to end: op lines through the ownership API ------------------------------ */

/* The control plane's apply: decode every line, then apply them all, then
 * synchronise (a record is one transaction; the journal holds only lines
 * that were valid when they were acknowledged). */
static int
ownership_apply(void *ctx, const char *lines, size_t len, struct fg_err *err)
{
	struct fg_ownership *o = ctx;
	struct fg_op ops[16];
	size_t n = 0, i;
	int ret = 0;

	for (const char *p = lines, *end = lines + len; p < end; n++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		cr_assert_not_null(nl);
		cr_assert_lt(n, 16);
		ret = fg_op_parse(p, (size_t)(nl - p), &ops[n], err);
		if (ret < 0) {
			fg_err_prefix(err, "line %zu: ", n + 1);
			return ret;
		}
		p = nl + 1;
	}
	for (i = 0; i < n && ret == 0; i++)
		ret = fg_op_apply(o, &ops[i], err);
	if (ret < 0)
		fg_err_prefix(err, "line %zu: ", i);
	fg_tables_sync(fg_ownership_tables(o));
	return ret;
}

static const char *LOAD7 =
	"{\"op\":\"tenant\",\"tenant\":7,\"name\":\"acme\"}\n"
	"{\"op\":\"sink\",\"sink\":70,\"tenant\":7,\"addr\":\"2001:db8::7\",\"port\":6000,\"egress\":0}\n"
	"{\"op\":\"device\",\"tenant\":7,\"device\":\"0x00000000000000a1\",\"epoch\":1,\"key\":\"000102030405060708090a0b0c0d0e0f\",\"sinks\":[70]}\n";
static const char *LOAD9 =
	"{\"op\":\"tenant\",\"tenant\":9}\n"
	"{\"op\":\"sink\",\"sink\":90,\"tenant\":9,\"addr\":\"10.0.0.9\",\"port\":6000,\"egress\":0}\n";
static const char *MOVE =
	"{\"op\":\"move\",\"device\":\"0x00000000000000a1\",\"from\":7,\"to\":9,\"epoch\":2,\"sinks\":[90]}\n";

static void
check_moved(struct fg_test_env *env, uint32_t devices_of_7)
{
	const struct fg_device *d = fg_tables_device(env->t, 9, 0xa1);

	cr_assert_not_null(d, "device 0xa1 is not under tenant 9");
	cr_expect_eq(d->epoch, 2);
	cr_expect_eq(d->has_key, 1);
	cr_expect_eq(d->key[15], 0x0f);
	cr_expect_eq(d->n_sinks, 1);
	cr_expect_eq(d->sinks[0]->sink_id, 90);
	cr_expect_null(fg_tables_device(env->t, 7, 0xa1));
	cr_expect_eq(fg_device_owner(env->o, 0xa1), 9);
	cr_expect_eq(fg_tenant_device_count(env->o, 7), devices_of_7);
	cr_expect_eq(fg_tenant_device_count(env->o, 9), 1);
	cr_expect_not_null(fg_tables_tenant(env->t, 7));
	cr_expect_not_null(fg_tables_sink(env->t, 70));
}

Test(journal, a_journal_of_op_lines_rebuilds_the_ownership_tables)
{
	struct fg_test_env env;
	struct fg_journal_stats st;
	struct fg_err err = { 0 };
	struct fg_journal *j;
	struct seen s = { 0 };
	size_t end3;

	j = replay_ok(&s, NULL);
	append_ok(j, LOAD7);
	append_ok(j, LOAD9);
	append_ok(j, MOVE);
	end3 = fg_journal_size(j);
	append_ok(j, "{\"op\":\"suspend\",\"tenant\":9}\n");
	fg_journal_close(j);
	/* The last record torn: its suspend was never acknowledged. */
	cr_assert_eq(truncate(log_path, (off_t)end3 + 20), 0);

	fg_test_env_init(&env, 16, 16, 64);
	j = open_ok();
	cr_assert_eq(fg_journal_replay(j, ownership_apply, env.o, &st, &err), 0, "%s", err.msg);
	cr_expect_eq(st.records_replayed, 3);
	cr_expect_eq(st.bytes_discarded, 20);
	check_moved(&env, 0);
	cr_expect_eq(fg_tables_tenant(env.t, 9)->suspended, 0);

	/* Compact with the state as op lines, one more change, and restart. */
	char dump[2048];
	snprintf(dump, sizeof(dump), "%s%s"
		 "{\"op\":\"device\",\"tenant\":9,\"device\":\"0xa1\",\"epoch\":2,\"key\":\"000102030405060708090a0b0c0d0e0f\",\"sinks\":[90]}\n",
		 "{\"op\":\"tenant\",\"tenant\":7,\"name\":\"acme\"}\n"
		 "{\"op\":\"sink\",\"sink\":70,\"tenant\":7,\"addr\":\"2001:db8::7\",\"port\":6000,\"egress\":0}\n",
		 LOAD9);
	snapshot_ok(j, dump);
	append_ok(j, "{\"op\":\"device\",\"tenant\":7,\"device\":\"0xb2\",\"epoch\":5,\"sinks\":[70]}\n");
	fg_journal_close(j);
	fg_test_env_fini(&env);

	fg_test_env_init(&env, 16, 16, 64);
	j = open_ok();
	cr_assert_eq(fg_journal_replay(j, ownership_apply, env.o, &st, &err), 0, "%s", err.msg);
	cr_expect_eq(st.generation, 1);
	cr_expect_eq(st.records_replayed, 1);
	check_moved(&env, 1);
	cr_assert_not_null(fg_tables_device(env.t, 7, 0xb2));
	cr_expect_eq(fg_tables_device(env.t, 7, 0xb2)->epoch, 5);
	fg_journal_close(j);
	fg_test_env_fini(&env);
}

Test(journal, a_record_the_ownership_rules_refuse_is_named)
{
	struct fg_test_env env;
	struct fg_err err = { 0 };
	struct fg_journal *j;
	struct seen s = { 0 };
	char want[256];

	j = replay_ok(&s, NULL);
	append_ok(j, LOAD7);
	append_ok(j, LOAD9);
	/* Epoch 1 is not larger than the current one: the move is refused. */
	append_ok(j, "{\"op\":\"move\",\"device\":\"0xa1\",\"from\":7,\"to\":9,\"epoch\":1,\"sinks\":[90]}\n");
	fg_journal_close(j);

	fg_test_env_init(&env, 16, 16, 64);
	j = open_ok();
	cr_expect_lt(fg_journal_replay(j, ownership_apply, env.o, NULL, &err), 0);
	snprintf(want, sizeof(want), "%s: record 3 at offset %zu: line 1: ", log_path,
		 rec_size(LOAD7) + rec_size(LOAD9));
	cr_expect(strncmp(err.msg, want, strlen(want)) == 0, "\"%s\" does not start with \"%s\"",
		  err.msg, want);
	cr_expect_eq(fg_device_owner(env.o, 0xa1), 7);
	fg_journal_close(j);
	fg_test_env_fini(&env);
}
