/*
 * Reading mapping files within limits. Every reader of a mapping file (the
 * router's --mappings, `framegate replay`, fg-verdict, fg-audit and `fgctl
 * load`) goes through fg_mapread, so that no file makes any of them grow
 * without end: not /dev/zero, not an endless pipe, not a file of one huge
 * line. No DPDK code: fgctl links it too.
 */
#ifndef FG_MAPREAD_H
#define FG_MAPREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <framegate/error.h>

/*
 * The longest line, without its newline. The longest valid op is under
 * 1 KiB (a tenant whose 63-byte name is written in \u escapes: about 450
 * bytes; a move with a key and eight sinks: about 300). 64 KiB leaves room
 * for any spacing a generator may add, while a line that long is plainly not
 * a mapping line (a binary file, a whole JSON document on one line).
 */
#define FG_MAPFILE_MAX_LINE (64u << 10)

/*
 * The most lines a file may have. The largest tables a configuration may ask
 * for hold 2^26 devices, 2^24 tenants and 2^24 sinks (dataplane/config.c):
 * about 100 million entries, one line each. 2^27 lines fill them with room
 * for moves and deletions; the loader keeps one decoded op per line (about
 * 150 bytes), so this also bounds what a load holds in memory.
 */
#define FG_MAPFILE_MAX_LINES (1ul << 27)

/*
 * The most bytes a file may have: the most lines at 128 bytes each, 16 GiB.
 * A tenant or sink line is 40-100 bytes and a device line 60-200: a real file
 * of FG_MAPFILE_MAX_LINES averages below this, and a file beyond it cannot be
 * the mappings of any router. It ends endless streams (a pipe that never
 * closes) that the line limits alone would not: a stream of blank lines.
 */
#define FG_MAPFILE_MAX_BYTES ((uint64_t)FG_MAPFILE_MAX_LINES * 128)

struct fg_mapread {
	const char *path;
	int fd;
	bool eof;
	bool regular;           /* a regular file: size is its length */
	uint64_t size;          /* bytes, of a regular file (else 0) */
	uint64_t bytes;         /* bytes read so far */
	unsigned long line;     /* number of the last line returned (1-based) */
	char *buf;
	size_t start, end, cap; /* unread bytes are buf[start, end) */
};

/* Open a mapping file: regular files, pipes and character devices (a
 * stream is read up to the limits). A directory is refused as "PATH: is a
 * directory", a file over FG_MAPFILE_MAX_BYTES naming the limit. 0, or
 * -errno with err naming the path. */
int fg_mapread_open(struct fg_mapread *r, const char *path, struct fg_err *err);

/*
 * The next line: 1 with *line (NUL-terminated, without its newline; valid
 * until the next call) and *len; 0 at the end; -errno with err saying
 * "PATH:LINE: why" (a line longer than FG_MAPFILE_MAX_LINE, a NUL byte, more
 * lines or bytes than the limits, a read error). A last line without a
 * newline is a line. r->line is the line's number.
 */
int fg_mapread_line(struct fg_mapread *r, const char **line, size_t *len,
		    struct fg_err *err);

void fg_mapread_close(struct fg_mapread *r);

/* A whole mapping file in memory: every line (blank ones too, so that line
 * numbers hold) ending in '\n', *len bytes, *lines lines; free *text. 0, or
 * -errno with err as fg_mapread_line says. */
int fg_mapfile_read(const char *path, char **text, size_t *len, unsigned long *lines,
		    struct fg_err *err);

/* A line of nothing but spaces, tabs and line ends (skipped by loaders). */
bool fg_mapline_blank(const char *s, size_t len);

#endif /* FG_MAPREAD_H */
