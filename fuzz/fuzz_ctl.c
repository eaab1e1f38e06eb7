/*
 * libFuzzer: the control protocol, bytes as clients send them and the ways
 * they leave. Each input drives a real control server (a Unix socket, a
 * journal on tmpfs, small tables loaded with the vectors' mappings) in the
 * same process, in one of two forms:
 *
 *   - a stream (first byte 0, as every framed request begins): the bytes as
 *     they are, on one connection, which then half-closes;
 *   - a script (any other first byte): up to four connections, which the
 *     script's steps write (raw bytes or framed requests), let the server
 *     serve, read (in part or all), half-close, close at any point (mid
 *     header, mid body, after a whole request before its reply, in the
 *     middle of a reply of many frames) and open again, interleaved.
 *     The format is below, at fuzz_script.
 *
 * Whatever the bytes and the order:
 *   - no crash, no leak, no sanitizer report. SIGPIPE is not ignored here:
 *     the server writing to a peer that left would kill a router, so it is
 *     a crash (abort, with the input saved) and this harness never raises
 *     it itself (its sends are MSG_NOSIGNAL);
 *   - every reply frame read is a JSON object with "ok", and a refusal has
 *     a "code" and an "error";
 *   - a connection that stays until the server closes it (after its
 *     half-close, or a length over the limit) gets exactly one reply per
 *     complete request it sent, in order, up to and including the one over
 *     the limit; one its client closes first gets no more than that;
 *   - the server keeps serving: `health` answers on a new connection.
 * Accepted changes go through the journal (fsync on tmpfs) and its
 * compaction, so those paths run too. That a refused change changes nothing
 * is fuzz_mapline's property (the same decoder and check).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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

/* The server wrote to a connection its peer had closed: a router would die
 * here, so this is a crash, with the input kept. */
static void
fuzz_sigpipe(int sig)
{
	static const char msg[] = "SIGPIPE: the control server wrote to a connection whose peer had closed it\n";
	ssize_t n = write(2, msg, sizeof(msg) - 1);    /* as a signal handler may */

	(void)sig;
	(void)n;
	abort();
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
	struct sigaction sa = { .sa_handler = fuzz_sigpipe };

	(void)argc;
	(void)argv;
	if (sigaction(SIGPIPE, &sa, NULL) != 0)
		abort();
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

/* ---- connections ------------------------------------------------------------ */

#define FUZZ_CONNS 4           /* connections a script drives at once */
#define FUZZ_OPENS 16          /* new connections a script may open */
#define FUZZ_IDLE 200          /* rounds without progress before giving up */
#define FUZZ_AWAIT 16          /* rounds a step waits for a reply */

/* One client connection, and all it sent and read over its life. */
struct fuzz_conn {
	int fd;                  /* -1: closed */
	bool shut;               /* half-closed (SHUT_WR) */
	bool eof;                /* the server closed it */
	uint8_t *sent, *got;
	size_t sent_len, sent_cap, got_len, got_cap;
};

static void
grow(uint8_t **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return;
	*cap = need > 2 * *cap ? need : 2 * *cap;
	*buf = realloc(*buf, *cap);
	if (*buf == NULL)
		abort();
}

static void
serve(unsigned int rounds)
{
	for (unsigned int i = 0; i < rounds; i++)
		fg_server_poll(server, 0);
}

/* Read what is there, at most max bytes. The bytes read, or 0. */
static size_t
conn_read(struct fuzz_conn *c, size_t max)
{
	size_t total = 0;

	while (c->fd >= 0 && !c->eof && total < max) {
		size_t want = max - total < 65536 ? max - total : 65536;
		ssize_t n;

		grow(&c->got, &c->got_cap, c->got_len + want);
		n = recv(c->fd, c->got + c->got_len, want, MSG_DONTWAIT);
		if (n > 0) {
			c->got_len += (size_t)n;
			total += (size_t)n;
		} else {
			/* 0: the server closed it; ECONNRESET: the same, with
			 * bytes it never read. */
			if (n == 0 || errno == ECONNRESET)
				c->eof = true;
			break;
		}
	}
	return total;
}

/* Connect a new connection; the server accepts one per round, so a full
 * backlog waits for it. */
static void
conn_open(struct fuzz_conn *c)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };

	memset(c, 0, sizeof(*c));
	memcpy(a.sun_path, sock, strlen(sock) + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	if (c->fd < 0)
		abort();
	for (int tries = 0; connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0; tries++) {
		if (errno != EAGAIN || tries == FUZZ_IDLE) {
			fprintf(stderr, "cannot connect to the server: %s\n", strerror(errno));
			abort();
		}
		serve(1);
	}
}

/* Send len bytes, as many as the server takes: a full socket lets the
 * server serve (and the replies be read, so that it reads on) until it
 * takes more, closes, or stops making progress. Only bytes the socket took
 * count as sent. */
static void
conn_send(struct fuzz_conn *c, const uint8_t *data, size_t len)
{
	size_t off = 0;

	for (int idle = 0; c->fd >= 0 && !c->shut && off < len && idle < FUZZ_IDLE;) {
		ssize_t n = send(c->fd, data + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			grow(&c->sent, &c->sent_cap, c->sent_len + (size_t)n);
			memcpy(c->sent + c->sent_len, data + off, (size_t)n);
			c->sent_len += (size_t)n;
			off += (size_t)n;
			idle = 0;
			continue;
		}
		if (n < 0 && errno != EAGAIN)
			break;          /* EPIPE, ECONNRESET: the server closed it */
		serve(1);
		idle = conn_read(c, SIZE_MAX) > 0 ? 0 : idle + 1;
	}
}

/* Complete requests in what a connection sent: every whole frame, up to and
 * including one whose length is over the limit (the server answers it and
 * closes). */
static size_t
requests(const struct fuzz_conn *c, bool *oversize)
{
	size_t off = 0, n = 0;

	*oversize = false;
	while (off + 4 <= c->sent_len) {
		size_t len = (size_t)c->sent[off] << 24 | (size_t)c->sent[off + 1] << 16 |
			     (size_t)c->sent[off + 2] << 8 | c->sent[off + 3];

		if (len > FG_CTL_MAX_REQUEST) {
			*oversize = true;
			return n + 1;
		}
		if (off + 4 + len > c->sent_len)
			break;
		n++;
		off += 4 + len;
	}
	return n;
}

/* The replies a connection read: each whole frame a reply, but for a
 * dump's parts ("more"); all of them, and
 * nothing more, when the server closed it (whole), else no more than its
 * requests. */
static void
check_replies(const struct fuzz_conn *c, bool whole)
{
	bool oversize;
	size_t expect = requests(c, &oversize), off = 0, replies = 0;

	while (off + 4 <= c->got_len) {
		size_t len = (size_t)c->got[off] << 24 | (size_t)c->got[off + 1] << 16 |
			     (size_t)c->got[off + 2] << 8 | c->got[off + 3];
		json_t *r, *ok;

		if (off + 4 + len > c->got_len)
			break;
		r = json_loadb((const char *)c->got + off + 4, len, 0, NULL);
		ok = json_object_get(r, "ok");
		if (!json_is_boolean(ok) ||
		    (json_is_false(ok) && (!json_is_string(json_object_get(r, "code")) ||
					   !json_is_string(json_object_get(r, "error"))))) {
			fprintf(stderr, "reply %zu is not a reply: %.*s\n", replies, (int)len,
				(const char *)c->got + off + 4);
			abort();
		}
		/* A dump's parts ({"more":true}) come before its one closing
		 * reply: they are not replies of their own. */
		replies += !json_is_true(json_object_get(r, "more"));
		json_decref(r);
		off += 4 + len;
	}
	if (replies > expect || (whole && (off != c->got_len || replies != expect))) {
		fprintf(stderr, "%zu complete requests%s, %zu replies (%zu bytes, %zu in whole frames)%s\n",
			expect, oversize ? " (the last over the limit)" : "", replies, c->got_len, off,
			whole ? "" : " on a connection its client closed");
		abort();
	}
}

/* The client closes, whatever is unread or unsent. */
static void
conn_close(struct fuzz_conn *c)
{
	if (c->fd < 0)
		return;
	check_replies(c, c->eof);
	close(c->fd);
	free(c->sent);
	free(c->got);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

/* Half-close, then serve and read until the server closes the connection. */
static void
conn_drain(struct fuzz_conn *c)
{
	if (c->fd < 0)
		return;
	if (!c->shut)
		shutdown(c->fd, SHUT_WR);
	c->shut = true;
	for (int idle = 0; !c->eof && idle < FUZZ_IDLE;) {
		serve(1);
		idle = conn_read(c, SIZE_MAX) > 0 ? 0 : idle + 1;
	}
	if (!c->eof) {
		fprintf(stderr, "the server never closed a connection its peer half-closed\n");
		abort();
	}
}

/* The end of a connection that stays: every complete request answered. */
static void
conn_finish(struct fuzz_conn *c)
{
	conn_drain(c);
	conn_close(c);
}

/* Serve until the connection has bytes to read (or is closed), without
 * reading them; a few rounds only, as no reply may be coming. */
static void
conn_await(struct fuzz_conn *c)
{
	for (int round = 0; c->fd >= 0 && round < FUZZ_AWAIT; round++) {
		uint8_t b;
		ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

		if (n >= 0 || errno != EAGAIN)
			return;
		serve(1);
	}
}

/* ---- inputs ----------------------------------------------------------------- */

enum fuzz_step {
	STEP_SEND,      /* next byte + 256 * arg bytes of the input, raw */
	STEP_FRAME,     /* the same, after a length header saying how many */
	STEP_SERVE,     /* arg + 1 server rounds */
	STEP_READ,      /* what is there: at most 4 << arg bytes, all of it (7) */
	STEP_SHUT,      /* shutdown(SHUT_WR) */
	STEP_CLOSE,     /* close now, whatever is unread or unsent */
	STEP_OPEN,      /* a new connection where one was closed */
	STEP_AWAIT,     /* serve until a reply is there, then read arg bytes */
};

/*
 * A script: byte 0 gives 1 + (byte & 3) connections, all open at the start;
 * then steps, each one byte: the step in its top 3 bits (enum fuzz_step),
 * an argument (0..7) in the next 3, the connection in the low 2 (modulo the
 * count), and for SEND and FRAME one more byte of length, then the bytes.
 * At the end every open connection half-closes and is read to its end.
 */
static void
fuzz_script(const uint8_t *data, size_t size)
{
	struct fuzz_conn conns[FUZZ_CONNS];
	size_t n = 1 + (data[0] & 3u), off = 1;
	unsigned int opens = 0;

	for (size_t i = 0; i < n; i++)
		conn_open(&conns[i]);
	while (off < size) {
		uint8_t b = data[off++];
		struct fuzz_conn *c = &conns[(b & 3u) % n];
		unsigned int arg = (b >> 2) & 7u;
		size_t len;

		switch ((enum fuzz_step)(b >> 5)) {
		case STEP_SEND:
		case STEP_FRAME:
			len = off < size ? data[off++] + 256u * arg : 0;
			if (len > size - off)
				len = size - off;
			if ((b >> 5) == STEP_FRAME) {
				uint8_t hdr[4] = { (uint8_t)(len >> 24), (uint8_t)(len >> 16),
						   (uint8_t)(len >> 8), (uint8_t)len };

				conn_send(c, hdr, sizeof(hdr));
			}
			conn_send(c, data + off, len);
			off += len;
			break;
		case STEP_SERVE:
			serve(arg + 1);
			break;
		case STEP_READ:
			conn_read(c, arg == 7 ? SIZE_MAX : (size_t)4 << arg);
			break;
		case STEP_SHUT:
			if (c->fd >= 0 && !c->shut) {
				shutdown(c->fd, SHUT_WR);
				c->shut = true;
			}
			break;
		case STEP_CLOSE:
			conn_close(c);
			break;
		case STEP_OPEN:
			if (c->fd < 0 && opens < FUZZ_OPENS) {
				conn_open(c);
				opens++;
			}
			break;
		case STEP_AWAIT:
			conn_await(c);
			conn_read(c, arg);
			break;
		}
	}
	for (size_t i = 0; i < n; i++)
		conn_finish(&conns[i]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t health[] = "\0\0\0\x10{\"cmd\":\"health\"}";
	struct fuzz_conn c;

	if (size > 0 && data[0] != 0) {
		fuzz_script(data, size);
	} else {
		conn_open(&c);
		conn_send(&c, data, size);
		conn_finish(&c);
	}

	/* Still serving. */
	conn_open(&c);
	conn_send(&c, health, sizeof(health) - 1);
	conn_drain(&c);
	if (c.got_len < 4 || memmem(c.got, c.got_len, "\"ok\":true", 9) == NULL) {
		fprintf(stderr, "health did not answer after an input\n");
		abort();
	}
	conn_close(&c);
	inputs++;
	return 0;
}
