/*
 * libFuzzer: the control protocol, bytes as a client sends them. Each input
 * is written to a real control server (a Unix socket, a journal on tmpfs,
 * small tables loaded with the vectors' mappings) on a new connection, which
 * then half-closes. Whatever the bytes:
 *   - no crash, no leak, no sanitizer report;
 *   - every complete request gets exactly one reply, in order, each a JSON
 *     object with "ok", and a refusal has a "code" and an "error";
 *   - a length over the limit gets one error reply, then the connection
 *     closes;
 *   - the server keeps serving: `health` answers on a new connection.
 * Accepted changes go through the journal (fsync on tmpfs) and its
 * compaction, so those paths run too. That a refused change changes nothing
 * is fuzz_mapline's property (the same decoder and check).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include <framegate/ctl.h>

#include "dump.h"
#include "eal_quick.h"
#include "journal.h"
#include "mapfile.h"
#include "server.h"

static struct fg_ownership *own;
static struct fg_tables *tables;
static struct fg_journal *journal;
static struct fg_server *server;
static char dir[64], sock[128];
static unsigned long inputs;

static void
fuzz_fini(void)
{
	char cmd[128];

	fg_server_free(server);
	fg_journal_close(journal);
	fg_ownership_free(own);
	fg_tables_free(tables);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

static int
apply_lines(void *ctx, const char *lines, size_t len, struct fg_err *err)
{
	(void)ctx;
	(void)lines;
	(void)len;
	(void)err;
	return 0;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct fg_tables_config cfg = { .name = "fuzzc", .max_tenants = 256, .max_sinks = 256,
					.max_devices = 512, .max_readers = 1,
					.socket_id = SOCKET_ID_ANY };
	struct fg_server_config sc = { .write_gid = (gid_t)-1, .read_gid = (gid_t)-1,
				       .compact_bytes = 65536 };
	struct fg_err err = { 0 };

	(void)argc;
	(void)argv;
	if (fg_eal_quick_start("fgfuzzc", 256) != 0)
		abort();
	atexit(fuzz_fini);
	snprintf(dir, sizeof(dir), "/dev/shm/fg_fuzz_ctl.XXXXXX");
	if (mkdtemp(dir) == NULL)
		abort();
	snprintf(sock, sizeof(sock), "%s/ctl.sock", dir);
	tables = fg_tables_create(&cfg);
	own = tables ? fg_ownership_create(tables) : NULL;
	if (own == NULL || fg_mapfile_load(own, FG_VECTORS "/mappings.jsonl", NULL, &err) != 0)
		abort();
	{
		char jdir[96];

		snprintf(jdir, sizeof(jdir), "%s/journal", dir);
		journal = fg_journal_open(jdir, &err);
		if (journal == NULL ||
		    fg_journal_replay(journal, apply_lines, NULL, NULL, &err) != 0) {
			fprintf(stderr, "journal: %s\n", err.msg);
			abort();
		}
	}
	sc.path = sock;
	server = fg_server_create(&sc, own, journal, NULL, &err);
	if (server == NULL) {
		fprintf(stderr, "server: %s\n", err.msg);
		abort();
	}
	return 0;
}

static int
client(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);

	memcpy(a.sun_path, sock, strlen(sock) + 1);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
		abort();
	return fd;
}

/* Serve and read until the server closes the connection. */
static size_t
exchange(int fd, const uint8_t *data, size_t size, uint8_t **out)
{
	size_t off = 0, got = 0, cap = 65536;
	bool closed = false;

	*out = malloc(cap);
	for (int idle = 0; !closed && idle < 200;) {
		ssize_t n;

		if (off < size) {
			n = write(fd, data + off, size - off);
			if (n > 0)
				off += (size_t)n;
			if (off == size)
				shutdown(fd, SHUT_WR);
		} else if (size == 0) {
			shutdown(fd, SHUT_WR);
		}
		fg_server_poll(server, 0);
		for (;;) {
			if (got == cap) {
				cap *= 2;
				*out = realloc(*out, cap);
			}
			n = read(fd, *out + got, cap - got);
			if (n > 0) {
				got += (size_t)n;
				idle = 0;
				continue;
			}
			if (n == 0)
				closed = true;
			break;
		}
		idle++;
	}
	if (!closed) {
		fprintf(stderr, "the server never closed a connection its peer half-closed\n");
		abort();
	}
	return got;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t expect = 0, off = 0, got, roff = 0, replies = 0;
	bool oversize = false;
	uint8_t *out;
	int fd;

	/* The requests a server must answer: every complete frame, up to and
	 * including one whose length is over the limit. */
	while (off + 4 <= size) {
		size_t len = (size_t)data[off] << 24 | (size_t)data[off + 1] << 16 |
			     (size_t)data[off + 2] << 8 | data[off + 3];

		if (len > FG_CTL_MAX_REQUEST) {
			expect++;
			oversize = true;
			break;
		}
		if (off + 4 + len > size)
			break;
		expect++;
		off += 4 + len;
	}
	fd = client();
	got = exchange(fd, data, size, &out);
	close(fd);
	while (roff + 4 <= got) {
		size_t len = (size_t)out[roff] << 24 | (size_t)out[roff + 1] << 16 |
			     (size_t)out[roff + 2] << 8 | out[roff + 3];
		json_t *r, *ok;

		if (roff + 4 + len > got)
			break;
		r = json_loadb((const char *)out + roff + 4, len, 0, NULL);
		ok = json_object_get(r, "ok");
		if (!json_is_boolean(ok) ||
		    (json_is_false(ok) && (!json_is_string(json_object_get(r, "code")) ||
					   !json_is_string(json_object_get(r, "error"))))) {
			fprintf(stderr, "reply %zu is not a reply: %.*s\n", replies, (int)len,
				(const char *)out + roff + 4);
			abort();
		}
		json_decref(r);
		replies++;
		roff += 4 + len;
	}
	if (roff != got || replies != expect) {
		fprintf(stderr, "%zu complete requests%s, %zu replies (%zu bytes, %zu read)\n", expect,
			oversize ? " (the last over the limit)" : "", replies, got, roff);
		abort();
	}
	free(out);

	/* Still serving. */
	{
		static const uint8_t health[] = "\0\0\0\x10{\"cmd\":\"health\"}";

		fd = client();
		got = exchange(fd, health, sizeof(health) - 1, &out);
		close(fd);
		if (got < 4 || memmem(out, got, "\"ok\":true", 9) == NULL) {
			fprintf(stderr, "health did not answer after an input\n");
			abort();
		}
		free(out);
	}
	inputs++;
	return 0;
}
