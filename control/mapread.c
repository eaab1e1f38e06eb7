/*
 * Reading mapping files within limits (see mapread.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mapread.h"

/* Room for a whole line and its newline, and as much again to read into,
 * so that reading a file of short lines takes few system calls. */
#define FG_MAPREAD_BUF (2 * (size_t)FG_MAPFILE_MAX_LINE + 2)

int
fg_mapread_open(struct fg_mapread *r, const char *path, struct fg_err *err)
{
	struct stat st;
	int e;

	memset(r, 0, sizeof(*r));
	r->path = path;
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0) {
		e = errno;
		return fg_err_set(err, e, "%s: %s", path, strerror(e));
	}
	if (fstat(r->fd, &st) != 0) {
		e = errno;
		fg_mapread_close(r);
		return fg_err_set(err, e, "%s: %s", path, strerror(e));
	}
	if (S_ISDIR(st.st_mode)) {
		fg_mapread_close(r);
		return fg_err_set(err, EISDIR, "%s: is a directory, not a mapping file", path);
	}
	if (S_ISREG(st.st_mode)) {
		r->regular = true;
		r->size = (uint64_t)st.st_size;
		if (r->size > FG_MAPFILE_MAX_BYTES) {
			fg_mapread_close(r);
			return fg_err_set(err, EFBIG, "%s: %" PRIu64 " bytes, more than the %" PRIu64 " (16 GiB) a mapping file may hold: split it into several loads",
					  path, (uint64_t)st.st_size, FG_MAPFILE_MAX_BYTES);
		}
	} else if (!S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode)) {
		/* A block device would be read to its end, gigabytes of it. */
		fg_mapread_close(r);
		return fg_err_set(err, EINVAL, "%s: not a regular file, a pipe or a character device", path);
	}
	r->buf = malloc(FG_MAPREAD_BUF);
	if (r->buf == NULL) {
		fg_mapread_close(r);
		return fg_err_set(err, ENOMEM, "%s: out of memory", path);
	}
	r->cap = FG_MAPREAD_BUF;
	return 0;
}

/* Read what comes next after the unread bytes: 0, or -errno. */
static int
fg_mapread_more(struct fg_mapread *r, struct fg_err *err)
{
	size_t avail = r->end - r->start;
	ssize_t n;

	if (r->start > 0) {
		memmove(r->buf, r->buf + r->start, avail);
		r->start = 0;
		r->end = avail;
	}
	/* One byte kept for the terminator of a last line without newline. */
	do
		n = read(r->fd, r->buf + r->end, r->cap - 1 - r->end);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		int e = errno;

		return fg_err_set(err, e, "%s:%lu: read error: %s", r->path, r->line + 1, strerror(e));
	}
	r->eof = n == 0;
	r->end += (size_t)n;
	r->bytes += (uint64_t)n;
	/* A regular file's size was checked at open; this ends streams. */
	if (r->bytes > FG_MAPFILE_MAX_BYTES)
		return fg_err_set(err, EFBIG, "%s: more than %" PRIu64 " bytes (16 GiB), the most a mapping file may hold: split it into several loads",
				  r->path, FG_MAPFILE_MAX_BYTES);
	return 0;
}

int
fg_mapread_line(struct fg_mapread *r, const char **line, size_t *len, struct fg_err *err)
{
	for (;;) {
		char *p = r->buf + r->start;
		size_t avail = r->end - r->start;
		char *nl = memchr(p, '\n', avail);
		size_t l = nl != NULL ? (size_t)(nl - p) : avail;
		unsigned long no = r->line + 1;
		int ret;

		/* Checked on what has arrived, before reading on: /dev/zero is
		 * refused at its first read. */
		if (memchr(p, '\0', l) != NULL)
			return fg_err_set(err, EINVAL, "%s:%lu: not a mapping file: a NUL byte at line %lu",
					  r->path, no, no);
		if (l > FG_MAPFILE_MAX_LINE)
			return fg_err_set(err, EINVAL, "%s:%lu: line %lu is longer than %u bytes, the longest a mapping line may be: not a mapping file",
					  r->path, no, no, FG_MAPFILE_MAX_LINE);
		if (nl != NULL || (r->eof && avail > 0)) {
			if (no > FG_MAPFILE_MAX_LINES)
				return fg_err_set(err, EFBIG, "%s:%lu: more than %lu lines, the most a mapping file may have: split it into several loads",
						  r->path, no, FG_MAPFILE_MAX_LINES);
			r->line = no;
			p[l] = '\0';
			r->start += l + (nl != NULL);
			*line = p;
			*len = l;
			return 1;
		}
		if (r->eof)
			return 0;
		ret = fg_mapread_more(r, err);
		if (ret < 0)
			return ret;
	}
}

void
fg_mapread_close(struct fg_mapread *r)
{
	if (r->fd >= 0)
		close(r->fd);
	r->fd = -1;
	free(r->buf);
	r->buf = NULL;
}

int
fg_mapfile_read(const char *path, char **text, size_t *len, unsigned long *lines,
		struct fg_err *err)
{
	struct fg_mapread r;
	const char *line;
	size_t l, n = 0, cap;
	char *out;
	int ret = fg_mapread_open(&r, path, err);

	*text = NULL;
	*len = 0;
	*lines = 0;
	if (ret < 0)
		return ret;
	/* A regular file's size is known: one allocation, a byte more for a
	 * newline the last line may lack. */
	cap = r.regular ? (size_t)r.size + 1 : 4096;
	out = malloc(cap);
	while (out != NULL && (ret = fg_mapread_line(&r, &line, &l, err)) > 0) {
		if (n + l + 1 > cap) {
			size_t ncap = cap * 2 > n + l + 1 ? cap * 2 : n + l + 1;
			char *o2 = realloc(out, ncap);

			if (o2 == NULL) {
				free(out);
				out = NULL;
				break;
			}
			out = o2;
			cap = ncap;
		}
		memcpy(out + n, line, l);
		out[n + l] = '\n';
		n += l + 1;
	}
	if (out == NULL)
		ret = fg_err_set(err, ENOMEM, "%s: out of memory after %lu lines (%zu bytes)", path,
				 r.line, n);
	if (ret < 0) {
		free(out);
		fg_mapread_close(&r);
		return ret;
	}
	*text = out;
	*len = n;
	*lines = r.line;
	fg_mapread_close(&r);
	return 0;
}

bool
fg_mapline_blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return false;
	return true;
}
