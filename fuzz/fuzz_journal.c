/*
 * libFuzzer: arbitrary bytes as a journal.log. Replay must refuse them or
 * cut them to the last good record, never crash and never half-load: when
 * it refuses, nothing was applied; when it accepts, a second open and replay
 * finds the same records and nothing more to cut, and a damaged tail's bytes
 * were kept in a file of their size (removed after each input).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"

static char dir[64];

struct seen {
	unsigned long records;
	size_t bytes;
};

static int
apply(void *ctx, const char *lines, size_t len, struct fg_err *err)
{
	struct seen *s = ctx;

	(void)err;
	if (len == 0 || lines[len - 1] != '\n')
		abort();            /* the journal hands over whole lines only */
	s->records++;
	s->bytes += len;
	return 0;
}

static void
rm_dir(void)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/journal.log", dir);
	unlink(path);
	rmdir(dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	snprintf(dir, sizeof(dir), "/tmp/fg_fuzz_journal.XXXXXX");
	if (mkdtemp(dir) == NULL)
		abort();
	atexit(rm_dir);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fg_journal_stats st, st2;
	struct seen a = { 0 }, b = { 0 };
	struct fg_err err = { 0 };
	struct fg_journal *j;
	char path[128];
	FILE *f;
	int ret;

	snprintf(path, sizeof(path), "%s/journal.log", dir);
	f = fopen(path, "w");
	if (f == NULL || fwrite(data, 1, size, f) != size)
		abort();
	fclose(f);
	j = fg_journal_open(dir, &err);
	if (j == NULL)
		abort();
	ret = fg_journal_replay(j, apply, &a, &st, &err);
	fg_journal_close(j);
	if (ret == -EBADMSG) {
		if (a.records != 0)
			abort();    /* refused, yet something was applied */
		return 0;
	}
	if (ret != 0)
		abort();
	if (st.tail_damaged) {
		struct stat sb;

		if (stat(st.cut_file, &sb) != 0 || (uint64_t)sb.st_size != st.bytes_discarded)
			abort();    /* the cut bytes were not kept */
		unlink(st.cut_file);
	}
	j = fg_journal_open(dir, &err);
	if (j == NULL || fg_journal_replay(j, apply, &b, &st2, &err) != 0)
		abort();
	fg_journal_close(j);
	if (b.records != a.records || b.bytes != a.bytes || st2.bytes_discarded != 0)
		abort();            /* the cut did not leave a clean journal */
	return 0;
}
