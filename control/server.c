/*
 * The control server (see server.h and include/framegate/ctl.h). One control
 * command's path, from the socket to the ack:
 *
 *   read a framed request -> check the peer may run it (SO_PEERCRED)
 *   -> decode the change into op lines with fg_op_parse()
 *   -> check them all as one transaction (fg_ops_check_all)
 *   -> append them to the journal and fsync (ack means durable)
 *   -> apply them and wait for a grace period (ack means enforced)
 *   -> append them to the audit log, if any, and fdatasync (audit.h)
 *   -> reply.
 *
 * Commands are rows of {name, writes, handler}. Everything runs on the main
 * thread, so changes are applied in arrival order.
 *
 * Group commit: single changes (`apply`) that arrive together, pipelined on
 * one connection or from several, are checked one after another against the
 * state the earlier ones leave (each accepted or refused on its own, as if
 * alone), then journaled as one record with one fsync, applied, and given one
 * grace period; then each gets its reply. Any other request first finishes
 * the group in progress, so every connection's replies keep their order.
 *
 * With an XDP shield, every change also goes into the shield's maps
 * (control/ownership.c). A change whose map write failed is in the journal
 * and the tables but not in the maps: it is not acknowledged as done (EIO,
 * naming the entry) and the router raises an alarm; `health` says
 * shield_in_step false until `shield.resync`.
 */
#define _GNU_SOURCE             /* struct ucred, accept4 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <rte_common.h>

#include <framegate/ctl.h>

#include "../dataplane/router.h"
#include "audit.h"
#include "capture_ctl.h"
#include "dump.h"
#include "follower.h"
#include "ctlstate.h"
#include "dump.h"
#include "latency.h"
#include "mapfile.h"
#include "server.h"
#include "shield.h"
#include "stats.h"

#define FG_SERVER_MAX_CONNS 64
#define FG_SERVER_RESERVED 8      /* of them, kept for peers that may change state */
#define FG_PEER_GROUPS_MAX 65536  /* the kernel's NGROUPS_MAX */
#define FG_STREAM_CHUNK (1u << 20) /* bytes of dump text in one reply frame */
#define FG_GROUP_MAX 4096         /* single changes committed together */
#define FG_OUT_HIGH (1u << 20)    /* replies unread by a peer: read no more */
#define FG_CMD_KINDS_MAX 24       /* command rows, and one for invalid requests */

struct fg_load {
	bool active;
	struct fg_op *ops;
	unsigned long *lines;       /* line number (in the load) of each op */
	size_t n, cap;
	char *text;                 /* the op lines, for the journal record */
	size_t text_len, text_cap;
	unsigned long line_no;
};

/* A reply too large to hold: a dump written to an unnamed file and sent in
 * frames as the peer reads them (fg_stream_pump). */
struct fg_stream {
	int fd;                     /* -1: none */
	uint64_t off, size, lines;
};

struct fg_conn {
	int fd;
	uid_t uid;
	struct ucred cred;          /* the peer, for the audit log */
	bool can_write, can_read;   /* judged at accept (SO_PEERCRED, SO_PEERGROUPS) */
	uint8_t *buf;               /* requests read, not yet handled */
	size_t len, cap;
	uint8_t *out;               /* replies not yet written: out[off..len) */
	size_t out_off, out_len, out_cap;
	double last;                /* monotonic seconds of the last byte in or out */
	double partial_since;       /* when the request being read began; 0: none */
	struct fg_load load;
	struct fg_stream stream;
};

/* A single change waiting for the group commit. */
struct fg_pending {
	struct fg_conn *conn;       /* where its reply goes */
	struct fg_op op;
	char *line;                 /* its op line, newline-terminated */
	size_t len;
	bool accepted;              /* checked: goes into the journal record */
	struct fg_err err;          /* err.code != 0: refused (or the shield
				     * could not follow it) */
	double t0;                  /* when it was read, for its latency */
};

struct fg_server {
	struct fg_server_config cfg;
	char path[108];
	int listen_fd;
	struct fg_ownership *own;
	struct fg_journal *journal;
	const struct fg_router *router;
	struct fg_conn conns[FG_SERVER_MAX_CONNS];
	unsigned int n_conns;
	time_t started;
	uint64_t changes;
	struct fg_pending *group;   /* FG_GROUP_MAX of them */
	size_t n_group;
	char *group_text;           /* the accepted ones' lines: one journal record */
	size_t group_text_cap;
	uint64_t groups;            /* group commits, for health */
	struct fg_follower *follower; /* following a store: changes go there */
	bool test_hooks;            /* FG_TEST_HOOKS=1: test.drift is served */
	time_t last_change;         /* when changes were last applied; 0: never */
	/* Each request's time from read to reply, by command row (the last
	 * one: requests that name no command), for the metrics endpoint. */
	struct fg_latency lat[FG_CMD_KINDS_MAX];
	int capture_fd;             /* the connection a capture answers; -1 */
	char *chunk;                /* FG_STREAM_CHUNK bytes: a dump frame's text */
	/* The journal cannot be written (full disk, I/O error): changes are
	 * refused with the cause, forwarding goes on, and recovery is tried
	 * with backoff (SPEC 4, "Degraded, not dead"). */
	struct {
		bool on;
		struct fg_err cause;
		double since, retry_at, backoff;
		uint64_t retries;
	} degraded;
	double compact_retry_at;    /* after a failed compaction */
	double compact_backoff;
	bool compact_failing;
	struct fg_err compact_error;
	uint64_t compact_failures;  /* every failed try, for health */
};

/* A handler's "the reply comes later" (capture). */
#define FG_CMD_LATER 1

enum {
	FG_CMD_WRITES = 1 << 0,       /* root and the control group only */
	FG_CMD_ON_FOLLOWER = 1 << 1,  /* served by a router that follows a store */
};

struct fg_cmd {
	const char *name;
	unsigned int flags;
	const char *fields;         /* the request fields it takes besides "cmd",
				     * space-separated; any other is refused */
	int (*handler)(struct fg_server *s, struct fg_conn *c, json_t *req,
		       json_t *res, struct fg_err *err);
};

static const char *
fg_errno_name(int code)
{
	const char *name = code > 0 ? strerrorname_np(code) : NULL;

	return name != NULL ? name : "EFAULT";
}

/* Monotonic seconds: timeouts never jump with the wall clock. */
static double
fg_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- changes: decode, check, journal, apply -------------------------------- */

static int
fg_load_reset(struct fg_load *l)
{
	free(l->ops);
	free(l->lines);
	free(l->text);
	memset(l, 0, sizeof(*l));
	return 0;
}

/* An op a client may send: the store revision is the follower's alone (a
 * client's would make a following router skip the store's changes). */
static int
fg_op_from_client(const struct fg_op *op, struct fg_err *err)
{
	if (op->kind == FG_OP_STORE_REVISION)
		return fg_err_set(err, EINVAL, "\"store_revision\" ops are written by a router that follows a store, never sent to one");
	return 0;
}

/* Append whole op lines to a pending change, decoding each. */
static int
fg_load_add(struct fg_load *l, const char *text, size_t len, struct fg_err *err)
{
	const char *p = text, *end = text + len;

	if (len > 0 && text[len - 1] != '\n')
		return fg_err_set(err, EINVAL, "line %lu: a chunk must end with a whole line",
				  l->line_no + (unsigned long)(memchr(text, '\n', len) ? 2 : 1));
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)(nl - p);

		l->line_no++;
		if (strspn(p, " \t\r") < n) {
			if (l->n == l->cap) {
				size_t cap = l->cap ? l->cap * 2 : 64;
				struct fg_op *ops = realloc(l->ops, cap * sizeof(*ops));
				unsigned long *ln = ops ? realloc(l->lines, cap * sizeof(*ln)) : NULL;

				if (ops)
					l->ops = ops;
				if (ln == NULL)
					return fg_err_set(err, ENOMEM, "line %lu: out of memory", l->line_no);
				l->lines = ln;
				l->cap = cap;
			}
			if (fg_op_parse(p, n, &l->ops[l->n], err) < 0 ||
			    fg_op_from_client(&l->ops[l->n], err) < 0) {
				fg_err_prefix(err, "line %lu: ", l->line_no);
				return -err->code;
			}
			l->lines[l->n++] = l->line_no;
			if (l->text_len + n + 1 > l->text_cap) {
				size_t cap = RTE_MAX(l->text_cap * 2, l->text_len + n + 1 + 4096);
				char *t = realloc(l->text, cap);

				if (t == NULL)
					return fg_err_set(err, ENOMEM, "line %lu: out of memory", l->line_no);
				l->text = t;
				l->text_cap = cap;
			}
			memcpy(l->text + l->text_len, p, n);
			l->text[l->text_len + n] = '\n';
			l->text_len += n + 1;
		}
		p = nl + 1;
	}
	return 0;
}

/* After applying: did the shield's maps take every change since `before`
 * faults were counted? Otherwise the change is in the journal and the
 * tables, but the maps differ: raise the alarm and refuse to call it done. */
static int
fg_shield_lagged(struct fg_server *s, uint64_t before, struct fg_err *err)
{
	struct fg_err last;
	uint64_t now = fg_ownership_shield_faults(s->own, &last);

	if (now == before)
		return 0;
	fprintf(stderr, "framegate: ALARM: %s; the shield's maps differ from the tables (fgctl shield check; fgctl shield resync)\n",
		last.msg);
	return fg_err_set(err, EIO, "%s: the change is journaled and enforced by the dataplane, but the shield's maps do not hold it (fgctl shield check lists the differences; fgctl shield resync rewrites the maps)",
			  last.msg);
}

/* The audit log could not take an applied change: it is journaled and
 * enforced, but not acknowledged (EIO), and the router raises an alarm. */
static int
fg_audit_failed(struct fg_err *err)
{
	fprintf(stderr, "framegate: ALARM: %s; a change is journaled and enforced but missing from the audit log\n",
		err->msg);
	fg_err_prefix(err, "the change is journaled and enforced, but not acknowledged: ");
	err->code = EIO;
	return -EIO;
}

/* An applied change's record in the audit log (if any), before its ack. */
static int
fg_audited(struct fg_server *s, const struct fg_conn *c, const char *lines, size_t len,
	   struct fg_err *err)
{
	if (s->cfg.audit == NULL ||
	    fg_audit_change(s->cfg.audit, "socket", &c->cred, lines, len, err) == 0)
		return 0;
	return fg_audit_failed(err);
}

/* ---- degraded: the journal cannot be written ------------------------------- */

#define FG_RETRY_MIN 1.0          /* seconds between recovery tries, doubling */
#define FG_RETRY_MAX 30.0

/* An append failed: refuse changes (with the cause) until the journal
 * recovers. One log line when the state changes, none per change. */
static void
fg_degrade(struct fg_server *s, const struct fg_err *cause)
{
	double now = fg_mono();

	if (!s->degraded.on) {
		s->degraded.on = true;
		s->degraded.since = now;
		s->degraded.backoff = FG_RETRY_MIN;
		s->degraded.retries = 0;
		s->degraded.cause = *cause;
		fprintf(stderr, "framegate: ALARM: degraded: %s; changes are refused until the journal can be written again (forwarding goes on)\n",
			cause->msg);
	}
	s->degraded.retry_at = now + s->degraded.backoff;
}

/* May a change be journaled now? While degraded, try to recover when the
 * backoff allows, or at once for a change (a try on a disk still full costs
 * one failed reservation); 0 once the journal takes writes again, else
 * -errno naming the cause. */
static int
fg_journal_ready(struct fg_server *s, bool asked, struct fg_err *err)
{
	struct fg_err rerr = { 0 };
	double now;

	if (!s->degraded.on || s->journal == NULL)
		return 0;
	now = fg_mono();
	if (asked || now >= s->degraded.retry_at) {
		s->degraded.retries++;
		if (fg_journal_recover(s->journal, &rerr) == 0) {
			fprintf(stderr, "framegate: the journal can be written again after %.1f s (%" PRIu64 " tries): changes are accepted; no acknowledged change was lost\n",
				now - s->degraded.since, s->degraded.retries);
			s->degraded.on = false;
			s->compact_retry_at = 0;    /* space is back: compact when due */
			return 0;
		}
		s->degraded.backoff = RTE_MIN(s->degraded.backoff * 2, FG_RETRY_MAX);
		s->degraded.retry_at = now + s->degraded.backoff;
		if (rerr.code == EBADMSG && s->degraded.cause.code != EBADMSG) {
			s->degraded.cause = rerr;   /* waiting will not mend it */
			fprintf(stderr, "framegate: ALARM: %s\n", rerr.msg);
		}
	}
	return fg_err_set(err, s->degraded.cause.code,
			  "changes are refused while the journal cannot be written: %s (the router retries; fgctl health shows the state)",
			  s->degraded.cause.msg);
}

/* Append a change's lines to the journal, or refuse it. */
static int
fg_journaled(struct fg_server *s, const char *text, size_t len, struct fg_err *err)
{
	int ret;

	if (s->journal == NULL)
		return 0;
	ret = fg_journal_ready(s, true, err);
	if (ret < 0)
		return ret;
	ret = fg_journal_append(s->journal, text, len, err);
	if (ret < 0 && fg_journal_failed(s->journal))
		fg_degrade(s, err);
	return ret;
}

/* The change path: check, journal, apply, grace period, audit. */
static int
fg_commit(struct fg_server *s, const struct fg_conn *c, struct fg_load *l, bool name_lines,
	  struct fg_err *err)
{
	size_t bad = 0;
	int ret;

	if (l->n == 0)
		return 0;
	ret = fg_ops_check_all(s->own, l->ops, l->n, &bad, err);
	if (ret < 0) {
		if (name_lines)
			fg_err_prefix(err, "line %lu: ", l->lines[bad]);
		return ret;
	}
	ret = fg_journaled(s, l->text, l->text_len, err);
	if (ret < 0)
		return ret;
	uint64_t faults = fg_ownership_shield_faults(s->own, NULL);

	ret = fg_ops_apply_checked(s->own, l->ops, l->n, &bad, err);
	if (ret < 0)
		return ret;
	s->changes += l->n;
	s->last_change = time(NULL);
	ret = fg_audited(s, c, l->text, l->text_len, err);
	return ret < 0 ? ret : fg_shield_lagged(s, faults, err);
}

/* One change given as an op object: its op line (newline-terminated, to
 * free) and its decoded op. */
static int
fg_op_from_json(json_t *op, char **line_out, size_t *len_out, struct fg_op *parsed,
		struct fg_err *err)
{
	char *line, *nl;
	size_t len;
	int ret;

	*line_out = NULL;
	if (!json_is_object(op))
		return fg_err_set(err, EINVAL, "\"op\" must be a mapping-file operation object");
	line = json_dumps(op, JSON_COMPACT | JSON_PRESERVE_ORDER);
	nl = line ? realloc(line, strlen(line) + 2) : NULL;
	if (nl == NULL) {
		free(line);
		return fg_err_set(err, ENOMEM, "out of memory");
	}
	line = nl;
	len = strlen(line);
	/* One op is not a file: its errors need no line number. */
	ret = fg_op_parse(line, len, parsed, err);
	if (ret == 0)
		ret = fg_op_from_client(parsed, err);
	if (ret < 0) {
		free(line);
		return ret;
	}
	line[len++] = '\n';
	line[len] = '\0';
	*line_out = line;
	*len_out = len;
	return 0;
}

/* One change given as an op object, committed on its own. */
static int
fg_commit_op(struct fg_server *s, const struct fg_conn *c, json_t *op, struct fg_err *err)
{
	struct fg_load l = { 0 };
	char *line;
	size_t len;
	int ret = fg_op_from_json(op, &line, &len, &(struct fg_op){ 0 }, err);

	if (ret < 0)
		return ret;
	ret = fg_load_add(&l, line, len, err);
	free(line);
	if (ret == 0)
		ret = fg_commit(s, c, &l, false, err);
	fg_load_reset(&l);
	return ret;
}

/* ---- group commit ----------------------------------------------------------- */

struct fg_conn;
static void fg_send(struct fg_conn *c, json_t *msg);
static void fg_reply_error(struct fg_conn *c, const struct fg_err *err);

/* Commit the single changes waiting: check each on the state the earlier
 * accepted ones leave, journal the accepted as one record (one fsync), apply
 * them (one grace period), then reply to each in arrival order. */
static void
fg_group_flush(struct fg_server *s)
{
	struct fg_txn *x;
	size_t n = s->n_group, n_ok = 0, text_len = 0;
	bool applied = false;
	struct fg_err err = { 0 };
	int ret = 0;

	if (n == 0)
		return;
	for (size_t i = 0; i < n; i++)
		text_len += s->group[i].len;
	if (text_len > s->group_text_cap) {
		char *t = realloc(s->group_text, text_len);

		if (t != NULL) {
			s->group_text = t;
			s->group_text_cap = text_len;
		}
	}
	text_len = 0;
	x = s->group_text != NULL ? fg_txn_begin(s->own, (uint32_t)n) : NULL;
	for (size_t i = 0; i < n; i++) {
		struct fg_pending *p = &s->group[i];

		if (x == NULL) {
			fg_err_set(&p->err, ENOMEM, "out of memory for a group of %zu changes", n);
			continue;
		}
		if (fg_op_check(s->own, x, &p->op, &p->err) < 0) {
			/* A refused check leaves the transaction as it was, but
			 * for a lack of memory, after which none can go on. */
			if (p->err.code == ENOMEM) {
				fg_txn_free(x);
				x = NULL;
			}
			continue;
		}
		p->accepted = true;
		n_ok++;
		memcpy(s->group_text + text_len, p->line, p->len);
		text_len += p->len;
	}
	fg_txn_free(x);
	if (n_ok > 0)
		ret = fg_journaled(s, s->group_text, text_len, &err);
	/* Apply in order (as fg_ops_apply_checked does), one grace period for
	 * all; a change the shield could not follow gets its own error. */
	for (size_t i = 0; i < n && n_ok > 0 && ret == 0; i++) {
		struct fg_pending *p = &s->group[i];
		uint64_t faults = fg_ownership_shield_faults(s->own, NULL);

		if (!p->accepted)
			continue;
		ret = fg_op_apply(s->own, &p->op, &err);
		if (ret == 0)
			fg_shield_lagged(s, faults, &p->err);
		applied = true;
	}
	if (applied)
		fg_tables_sync(fg_ownership_tables(s->own));
	/* Each applied change is one audit record, all under one fdatasync. */
	if (applied && ret == 0 && s->cfg.audit != NULL) {
		struct fg_err aerr = { 0 };
		int aret = 0;

		for (size_t i = 0; i < n && aret == 0; i++)
			if (s->group[i].accepted)
				aret = fg_audit_add_change(s->cfg.audit, "socket", &s->group[i].conn->cred,
							   s->group[i].line, s->group[i].len, &aerr);
		if (aret == 0)
			aret = fg_audit_commit(s->cfg.audit, &aerr);
		if (aret < 0) {
			fg_audit_failed(&aerr);
			for (size_t i = 0; i < n; i++)
				if (s->group[i].accepted && s->group[i].err.code == 0)
					s->group[i].err = aerr;
		}
	}
	if (ret == 0) {
		s->changes += n_ok;
		s->groups += n_ok > 0;
		if (n_ok > 0)
			s->last_change = time(NULL);
	}
	for (size_t i = 0; i < n; i++) {
		struct fg_pending *p = &s->group[i];

		if (p->err.code != 0) {
			fg_reply_error(p->conn, &p->err);
		} else if (ret < 0) {
			fg_reply_error(p->conn, &err);
		} else {
			json_t *r = json_pack("{s:i, s:b}", "applied", 1, "ok", 1);

			fg_send(p->conn, r);
			json_decref(r);
		}
		fg_latency_record(&s->lat[0], fg_latency_now() - p->t0);   /* apply */
		free(p->line);
	}
	s->n_group = 0;
}

/* Queue one `apply` for the group commit. */
static void
fg_group_add(struct fg_server *s, struct fg_conn *c, json_t *req, double t0)
{
	struct fg_pending *p;
	struct fg_err err = { 0 };
	struct fg_op op;
	char *line;
	size_t len;

	if (fg_op_from_json(json_object_get(req, "op"), &line, &len, &op, &err) < 0) {
		fg_group_flush(s);          /* its reply comes after theirs */
		fg_reply_error(c, &err);
		fg_latency_record(&s->lat[0], fg_latency_now() - t0);
		return;
	}
	if (s->n_group == FG_GROUP_MAX)
		fg_group_flush(s);
	p = &s->group[s->n_group++];
	*p = (struct fg_pending){ .conn = c, .op = op, .line = line, .len = len, .t0 = t0 };
}

/* ---- commands -------------------------------------------------------------- */

static int
fg_cmd_apply(struct fg_server *s, struct fg_conn *c, json_t *req, json_t *res,
	     struct fg_err *err)
{
	int ret;

	ret = fg_commit_op(s, c, json_object_get(req, "op"), err);
	if (ret == 0)
		json_object_set_new(res, "applied", json_integer(1));
	return ret;
}

/* Key rotation: the device's mapping as it is, with a new key (or none). */
static int
fg_cmd_rekey(struct fg_server *s, struct fg_conn *c, json_t *req, json_t *res,
	     struct fg_err *err)
{
	json_t *t = json_object_get(req, "tenant"), *d = json_object_get(req, "device");
	json_t *k = json_object_get(req, "key"), *op, *probe;
	const struct fg_device *cur;
	struct fg_op parsed;
	int ret;

	/* Decode tenant and device as a del_device op would. */
	probe = json_pack("{s:s, s:O, s:O}", "op", "del_device", "tenant", t ? t : json_null(),
			  "device", d ? d : json_null());
	char *line = json_dumps(probe, JSON_COMPACT);

	json_decref(probe);
	ret = fg_op_parse(line, strlen(line), &parsed, err);
	free(line);
	if (ret < 0)
		return ret;
	if (fg_device_owner(s->own, parsed.del_device.device_id) != parsed.del_device.tenant_id)
		return fg_err_set(err, ENOENT, "device 0x%016" PRIx64 " is not held by tenant %" PRIu32,
				  parsed.del_device.device_id, parsed.del_device.tenant_id);
	cur = fg_tables_device(fg_ownership_tables(s->own), parsed.del_device.tenant_id,
			       parsed.del_device.device_id);
	op = fg_device_json(cur, FG_DUMP_KEYS);
	if (k != NULL)
		json_object_set(op, "key", k);
	else
		json_object_del(op, "key");
	ret = fg_commit_op(s, c, op, err);
	json_decref(op);
	if (ret == 0)
		json_object_set_new(res, "applied", json_integer(1));
	return ret;
}

static int
fg_cmd_load_begin(struct fg_server *s, struct fg_conn *c, json_t *req, json_t *res,
		  struct fg_err *err)
{
	(void)s;
	(void)req;
	(void)res;
	(void)err;
	fg_load_reset(&c->load);
	c->load.active = true;
	return 0;
}

static int
fg_cmd_load_chunk(struct fg_server *s, struct fg_conn *c, json_t *req, json_t *res,
		  struct fg_err *err)
{
	json_t *text = json_object_get(req, "text");
	size_t held = 0;
	int ret;

	if (!c->load.active)
		return fg_err_set(err, EINVAL, "load.chunk without load.begin");
	if (!json_is_string(text))
		return fg_err_set(err, EINVAL, "\"text\" must be a string of op lines");
	/* A load holds its decoded ops until commit: bound what all open loads
	 * hold, so that a large one is refused rather than the router killed. */
	for (unsigned int i = 0; i < s->n_conns; i++)
		held += s->conns[i].load.text_len;
	if (held + json_string_length(text) > s->cfg.load_max_bytes) {
		unsigned long line = c->load.line_no;

		fg_load_reset(&c->load);      /* the load is over: nothing applied */
		return fg_err_set(err, E2BIG, "line %lu: the load is over the router's limit of %" PRIu64 " MiB of op lines (load_max_mib; %zu MiB held by all loads in progress); nothing was applied: split the file into smaller loads, each one transaction (e.g. split -l 1000000 FILE)",
				  line + 1, s->cfg.load_max_bytes >> 20, held >> 20);
	}
	ret = fg_load_add(&c->load, json_string_value(text), json_string_length(text), err);
	if (ret < 0) {
		fg_load_reset(&c->load);      /* the load is over: nothing applied */
		return ret;
	}
	json_object_set_new(res, "lines", json_integer((json_int_t)c->load.line_no));
	return 0;
}

static int
fg_cmd_load_commit(struct fg_server *s, struct fg_conn *c, json_t *req, json_t *res,
		   struct fg_err *err)
{
	size_t n = c->load.n;
	int ret;

	(void)req;
	if (!c->load.active)
		return fg_err_set(err, EINVAL, "load.commit without load.begin");
	ret = fg_commit(s, c, &c->load, true, err);
	fg_load_reset(&c->load);
	if (ret == 0)
		json_object_set_new(res, "applied", json_integer((json_int_t)n));
	return ret;
}

static int
fg_cmd_load_abort(struct fg_server *s, struct fg_conn *c, json_t *req, json_t *res,
		  struct fg_err *err)
{
	(void)s;
	(void)req;
	(void)res;
	(void)err;
	return fg_load_reset(&c->load);
}

static int
fg_tenant_arg(json_t *req, uint32_t *tenant, struct fg_err *err)
{
	json_t *t = json_object_get(req, "tenant");

	*tenant = 0;
	if (t == NULL)
		return 0;
	if (!json_is_integer(t) || json_integer_value(t) < 1 ||
	    json_integer_value(t) > UINT32_MAX)
		return fg_err_set(err, EINVAL, "\"tenant\" must be a tenant id (1..4294967295)");
	*tenant = (uint32_t)json_integer_value(t);
	return 0;
}

struct fg_dump_out {
	FILE *f;
	uint64_t lines;
};

static int
fg_emit_line(void *ctx, const char *line)
{
	struct fg_dump_out *d = ctx;

	d->lines++;
	return fputs(line, d->f) < 0 || putc('\n', d->f) == EOF ? -errno : 0;
}

/*
 * The dump written to an unnamed file: in the journal's folder (the state's
 * own disk), else in /var/tmp or /tmp (a full journal disk must not stop a
 * backup). The file vanishes when closed, or with the process. Its fd, or
 * -errno with err naming the last folder tried.
 */
static int
fg_dump_to_file(const struct fg_server *s, uint32_t tenant, unsigned int flags,
		struct fg_stream *st, struct fg_err *err)
{
	const char *dirs[] = { s->cfg.journal_dir, "/var/tmp", "/tmp" };
	int ret = -ENOENT;

	for (size_t i = 0; i < RTE_DIM(dirs); i++) {
		struct fg_dump_out d = { 0 };
		struct stat sb;
		int fd;

		if (dirs[i] == NULL)
			continue;
		fd = open(dirs[i], O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		d.f = fd >= 0 ? fdopen(dup(fd), "w") : NULL;
		if (d.f == NULL) {
			ret = fg_err_set(err, errno, "dump: cannot make a file for it in %s: %s",
					 dirs[i], strerror(errno));
			if (fd >= 0)
				close(fd);
			continue;
		}
		setvbuf(d.f, s->chunk, _IOFBF, FG_STREAM_CHUNK);   /* free until it streams */
		ret = fg_dump(s->own, tenant, flags, fg_emit_line, &d);
		if (fclose(d.f) != 0 && ret == 0)
			ret = -errno;
		if (ret == 0 && fstat(fd, &sb) != 0)
			ret = -errno;
		if (ret == 0) {
			*st = (struct fg_stream){ .fd = fd, .size = (uint64_t)sb.st_size,
						  .lines = d.lines };
			return fd;
		}
		close(fd);
		ret = fg_err_set(err, -ret, "dump: writing it to a file in %s: %s", dirs[i],
				 strerror(-ret));
	}
	return ret;
}

/*
 * The state (or a tenant's) as op lines. The whole dump is written at once
 * to an unnamed file, so that it is one consistent state, and sent from
 * there in frames as the peer reads them ({"ok":true,"more":true,"text":
 * LINES}, then {"ok":true,"ops":N,"bytes":B}): the router holds one frame
 * per dump, never the dump, however large the state and however slow the
 * reader. Keys only with "with_keys", and only to root and the control group.
 */
static int
fg_cmd_dump(struct fg_server *s, struct fg_conn *c, json_t *req, json_t *res,
	    struct fg_err *err)
{
	json_t *wk = json_object_get(req, "with_keys");
	uint32_t tenant;

	(void)res;
	if (fg_tenant_arg(req, &tenant, err) < 0)
		return -EINVAL;
	if (wk != NULL && !json_is_boolean(wk))
		return fg_err_set(err, EINVAL, "\"with_keys\" must be true or false");
	if (json_is_true(wk) && !c->can_write)
		return fg_err_set(err, EPERM, "dump with keys: uid %u may not see device keys (root or the control group only; without --with-keys a keyed device shows \"key\":\"" FG_KEY_WITHHELD "\")",
				  (unsigned int)c->uid);
	if (tenant && fg_tables_tenant(fg_ownership_tables(s->own), tenant) == NULL)
		return fg_err_set(err, ENOENT, "tenant %" PRIu32 " does not exist", tenant);
	if (fg_dump_to_file(s, tenant, json_is_true(wk) ? FG_DUMP_KEYS : 0, &c->stream, err) < 0)
		return -err->code;
	return FG_CMD_LATER;
}

static int
fg_cmd_stats(struct fg_server *s, struct fg_conn *c, json_t *req, json_t *res,
	     struct fg_err *err)
{
	struct fg_counter_totals t = { 0 };

	(void)c;
	(void)req;
	(void)err;
	if (s->router != NULL)
		fg_router_totals(s->router, &t);
	json_t *j = fg_totals_to_json(&t);

	json_object_update(res, j);
	json_decref(j);
	return 0;
}

static int
fg_cmd_drops(struct fg_server *s, struct fg_conn *c, json_t *req, json_t *res,
	     struct fg_err *err)
{
	uint32_t tenant;

	(void)c;
	if (fg_tenant_arg(req, &tenant, err) < 0)
		return -EINVAL;
	if (tenant == 0) {
		struct fg_counter_totals t = { 0 };
		json_t *j;

		if (s->router != NULL)
			fg_router_totals(s->router, &t);
		j = fg_totals_to_json(&t);
		json_object_set(res, "drops", json_object_get(j, "drops"));
		json_decref(j);
		return 0;
	}
	const struct fg_tenant *tn = fg_tables_tenant(fg_ownership_tables(s->own), tenant);
	fg_tenant_row row = { 0 };

	if (tn == NULL)
		return fg_err_set(err, ENOENT, "tenant %" PRIu32 " does not exist", tenant);
	if (s->router != NULL) {
		struct fg_counters *w[RTE_MAX_LCORE];

		for (unsigned int i = 0; i < s->router->n_workers; i++)
			w[i] = s->router->workers[i]->ctr;
		fg_counters_sum_tenant(w, s->router->n_workers, tn->slot, row);
	}
	json_t *j = fg_tenant_row_to_json(row);

	json_object_set_new(res, "tenant", json_integer(tenant));
	json_object_update(res, j);
	json_decref(j);
	return 0;
}

static int
fg_cmd_health(struct fg_server *s, struct fg_conn *c, json_t *req, json_t *res,
	      struct fg_err *err)
{
	const struct fg_tables *t = fg_ownership_tables(s->own);

	(void)c;
	(void)req;
	(void)err;
	json_object_set_new(res, "status", json_string(s->degraded.on || s->compact_failing ? "degraded" : "ok"));
	if (s->degraded.on)
		json_object_set_new(res, "degraded", json_pack("{s:s, s:s, s:s, s:f, s:I}",
			"cause", s->degraded.cause.msg, "code", fg_errno_name(s->degraded.cause.code),
			"changes", "refused", "since_seconds", fg_mono() - s->degraded.since,
			"retries", (json_int_t)s->degraded.retries));
	else if (s->compact_failing)
		json_object_set_new(res, "degraded", json_pack("{s:s, s:s, s:s}",
			"cause", s->compact_error.msg, "code", fg_errno_name(s->compact_error.code),
			"changes", "accepted"));
	json_object_set_new(res, "uptime_seconds", json_integer(time(NULL) - s->started));
	json_object_set_new(res, "workers", json_integer(s->router ? s->router->n_workers : 0));
	json_object_set_new(res, "tenants", json_integer(fg_tables_count_tenants(t)));
	json_object_set_new(res, "sinks", json_integer(fg_tables_count_sinks(t)));
	json_object_set_new(res, "devices", json_integer(fg_tables_count_devices(t)));
	json_object_set_new(res, "changes_applied", json_integer((json_int_t)s->changes));
	json_object_set_new(res, "group_commits", json_integer((json_int_t)s->groups));
	if (s->capture_fd >= 0)
		json_object_set_new(res, "capture", json_pack("{s:s, s:I, s:I}",
			"reason", fg_reason_name((enum fg_reason)s->router->capture->reason),
			"count", (json_int_t)s->router->capture->count,
			"saved", (json_int_t)fg_capture_saved(s->router->capture)));
	if (s->journal != NULL)
		json_object_set_new(res, "journal", json_pack("{s:I, s:I, s:I, s:I}",
			"bytes", (json_int_t)fg_journal_size(s->journal),
			"records", (json_int_t)fg_journal_records(s->journal),
			"generation", (json_int_t)fg_journal_generation(s->journal),
			"compaction_failures", (json_int_t)s->compact_failures));
	if (fg_ownership_shield(s->own) != NULL) {
		struct fg_err last;
		uint64_t faults = fg_ownership_shield_faults(s->own, &last);
		uint64_t ctr[FG_SHIELD_SLOTS];
		json_t *sh = json_pack("{s:b, s:I, s:i}", "in_step", faults == 0,
				       "map_write_failures", (json_int_t)faults,
				       "frame_port", fg_shield_frame_port(fg_ownership_shield(s->own)));

		/* The control plane's own account: every change it applied
		 * reached the maps. `shield.check` compares them entry by entry. */
		json_object_set_new(res, "shield_in_step", json_boolean(faults == 0));
		if (faults != 0) {
			json_object_set_new(res, "status", json_string("degraded"));
			json_object_set_new(sh, "last_failure", json_string(last.msg));
		}
		if (fg_shield_counters(fg_ownership_shield(s->own), ctr) == 0) {
			json_t *k = json_object();

			for (int r = 0; r < FG_SHIELD_SLOTS; r++)
				json_object_set_new(k, r == FG_PASS ? "redirected" : fg_reason_name(r),
						    json_integer((json_int_t)ctr[r]));
			json_object_set_new(sh, "counters", k);
		}
		json_object_set_new(res, "shield", sh);
	}
	if (s->follower != NULL)
		fg_follower_health(s->follower, res);
	return 0;
}

/* ---- following a store --------------------------------------------------------- */

static int
fg_cmd_store_reconcile(struct fg_server *s, struct fg_conn *c, json_t *req, json_t *res,
		       struct fg_err *err)
{
	(void)c;
	(void)req;
	(void)res;
	if (s->follower == NULL)
		return fg_err_set(err, ENOENT, "this router does not follow a store (no \"store\" in its configuration)");
	fg_follower_reconcile_soon(s->follower);
	return 0;
}

/*
 * Tests only (FG_TEST_HOOKS=1 in the router's environment): change one
 * mapping's epoch, or remove it, in the tables behind the control plane's
 * back (no journal, no store), as corruption would. A reconcile must find
 * it.
 */
static int
fg_cmd_test_drift(struct fg_server *s, struct fg_conn *c, json_t *req, json_t *res,
		  struct fg_err *err)
{
	struct fg_op op;
	json_t *o = json_object_get(req, "op");
	char *line;
	int ret;

	(void)c;
	(void)res;
	if (!s->test_hooks)
		return fg_err_set(err, EPERM, "test.drift is served only with FG_TEST_HOOKS=1");
	line = o ? json_dumps(o, JSON_COMPACT) : NULL;
	if (line == NULL)
		return fg_err_set(err, EINVAL, "test.drift: field \"op\" must be an op object");
	ret = fg_op_parse(line, strlen(line), &op, err);
	free(line);
	if (ret == 0)
		ret = fg_op_apply(s->own, &op, err);
	if (ret == 0)
		fg_tables_sync(fg_ownership_tables(s->own));
	return ret;
}

void
fg_server_set_follower(struct fg_server *s, struct fg_follower *f)
{
	s->follower = f;
}

/* ---- the shield ------------------------------------------------------------ */

#define FG_SHIELD_CHECK_LIST 1000   /* differences listed in one reply */

static const char *const fg_diff_kinds[] = {
	[FG_SHIELD_MISSING] = "missing",
	[FG_SHIELD_EXTRA] = "extra",
	[FG_SHIELD_DIFFERS] = "differs",
};

struct fg_diff_list {
	json_t *list;
	uint64_t n;
};

/* One side of a difference: what the tables or the maps hold. */
static json_t *
fg_diff_side(const struct fg_shield_diff *d, bool map)
{
	if (d->device_id == 0)
		return json_pack("{s:s}", "state",
				 (map ? d->map_suspended : d->table_suspended) ? "suspended" : "active");
	return json_pack("{s:I, s:b}", "epoch", (json_int_t)(map ? d->map_epoch : d->table_epoch),
			 "key", map ? d->map_has_key : d->table_has_key);
}

static int
fg_diff_add(void *ctx, const struct fg_shield_diff *d)
{
	struct fg_diff_list *l = ctx;
	json_t *o;

	if (l->n++ >= FG_SHIELD_CHECK_LIST)
		return 0;              /* counted, not listed */
	o = json_pack("{s:s, s:s, s:I}", "entry", d->device_id ? "owner" : "tenant",
		      "problem", fg_diff_kinds[d->kind], "tenant", (json_int_t)d->tenant_id);
	if (d->device_id != 0) {
		char dev[24];

		snprintf(dev, sizeof(dev), "0x%016" PRIx64, d->device_id);
		json_object_set_new(o, "device", json_string(dev));
	}
	if (d->kind != FG_SHIELD_EXTRA)
		json_object_set_new(o, "tables", fg_diff_side(d, false));
	if (d->kind != FG_SHIELD_MISSING)
		json_object_set_new(o, "shield", fg_diff_side(d, true));
	if (d->key_differs)
		json_object_set_new(o, "key_differs", json_true());
	json_array_append_new(l->list, o);
	return 0;
}

/* Read-only: the maps against the tables, every difference named. */
static int
fg_cmd_shield_check(struct fg_server *s, struct fg_conn *c, json_t *req, json_t *res,
		    struct fg_err *err)
{
	struct fg_diff_list l = { .list = json_array() };
	uint64_t counts[4] = { 0 };
	int ret;

	(void)c;
	(void)req;
	ret = fg_ownership_shield_check(s->own, fg_diff_add, &l, counts, err);
	if (ret < 0) {
		json_decref(l.list);
		return ret;
	}
	json_object_set_new(res, "in_step", json_boolean(l.n == 0));
	json_object_set_new(res, "differences", json_integer((json_int_t)l.n));
	json_object_set_new(res, "listed", l.list);
	json_object_set_new(res, "tables", json_pack("{s:I, s:I}", "tenants", (json_int_t)counts[0],
						     "mappings", (json_int_t)counts[2]));
	json_object_set_new(res, "shield", json_pack("{s:I, s:I}", "tenants", (json_int_t)counts[1],
						     "owners", (json_int_t)counts[3]));
	return 0;
}

/* Rewrite the maps from the tables (after a failed map write, or an entry
 * changed behind the control plane's back). */
static int
fg_cmd_shield_resync(struct fg_server *s, struct fg_conn *c, json_t *req, json_t *res,
		     struct fg_err *err)
{
	const struct fg_tables *t = fg_ownership_tables(s->own);
	int ret;

	(void)c;
	(void)req;
	ret = fg_ownership_shield_resync(s->own, err);
	if (ret < 0) {
		fprintf(stderr, "framegate: ALARM: %s\n", err->msg);
		return ret;
	}
	json_object_set_new(res, "tenants", json_integer(fg_tables_count_tenants(t)));
	json_object_set_new(res, "owners", json_integer(fg_tables_count_devices(t)));
	return 0;
}

/* ---- capture --------------------------------------------------------------- */

/* Arm the capture; the reply waits until it is complete or its time is up
 * (fg_capture_service). Packets carry tenants' video: a write command. */
static int
fg_cmd_capture(struct fg_server *s, struct fg_conn *c, json_t *req, json_t *res,
	       struct fg_err *err)
{
	(void)res;
	if (s->router == NULL)
		return fg_err_set(err, ENOENT, "this router has no ports to capture on");
	if (fg_capture_start(s->router->capture, req, err) < 0)
		return -err->code;
	s->capture_fd = c->fd;
	return FG_CMD_LATER;
}

#define W FG_CMD_WRITES
#define F FG_CMD_ON_FOLLOWER
static const struct fg_cmd fg_cmds[] = {
	{ "apply", W, "op", fg_cmd_apply },
	{ "rekey", W, "tenant device key", fg_cmd_rekey },
	{ "load.begin", W, "", fg_cmd_load_begin },
	{ "load.chunk", W, "text", fg_cmd_load_chunk },
	{ "load.commit", W, "", fg_cmd_load_commit },
	{ "load.abort", W, "", fg_cmd_load_abort },
	{ "dump", F, "tenant with_keys", fg_cmd_dump },
	{ "stats", F, "", fg_cmd_stats },
	{ "drops", F, "tenant", fg_cmd_drops },
	{ "health", F, "", fg_cmd_health },
	{ "shield.check", F, "", fg_cmd_shield_check },
	{ "shield.resync", W | F, "", fg_cmd_shield_resync },
	{ "store.reconcile", W | F, "", fg_cmd_store_reconcile },
	{ "test.drift", W | F, "op", fg_cmd_test_drift },
	{ "capture", W | F, "reason count tenant timeout", fg_cmd_capture },
};
#undef W
#undef F

/* Row 0 is apply (the group commit records it as such); the row after the
 * last counts requests that name no command. */
_Static_assert(RTE_DIM(fg_cmds) + 1 <= FG_CMD_KINDS_MAX, "FG_CMD_KINDS_MAX too small");
#define FG_KIND_INVALID RTE_DIM(fg_cmds)

/* ---- the socket ------------------------------------------------------------- */

/* Write what a connection's peer will take now. -1: the peer is gone.
 * MSG_NOSIGNAL: a peer that closed without reading its replies is a closed
 * connection, never a SIGPIPE for the router. */
static int
fg_conn_write(struct fg_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL);

		if (n > 0) {
			c->out_off += (size_t)n;
			c->last = fg_mono();
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		return -1;
	}
	if (c->out_off == c->out_len)
		c->out_off = c->out_len = 0;
	return 0;
}

/* Queue a framed reply. The poll round writes what the peer takes, once
 * for all its replies; the rest goes out as the peer reads (the server
 * never waits for one peer). */
static void
fg_send(struct fg_conn *c, json_t *msg)
{
	char *body = json_dumps(msg, JSON_COMPACT);
	size_t len = body ? strlen(body) : 0;

	if (body == NULL || c->fd < 0)
		goto out;
	if (c->out_off > 0 && c->out_off >= c->out_len / 2) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	if (c->out_len + 4 + len > c->out_cap) {
		size_t cap = RTE_MAX(c->out_cap * 2, c->out_len + 4 + len);
		uint8_t *o = realloc(c->out, cap);

		if (o == NULL)
			goto out;       /* the peer sees no reply; the change stands */
		c->out = o;
		c->out_cap = cap;
	}
	c->out[c->out_len++] = (uint8_t)(len >> 24);
	c->out[c->out_len++] = (uint8_t)(len >> 16);
	c->out[c->out_len++] = (uint8_t)(len >> 8);
	c->out[c->out_len++] = (uint8_t)len;
	memcpy(c->out + c->out_len, body, len);
	c->out_len += len;
out:
	free(body);
}

static json_t *
fg_error_json(const struct fg_err *err)
{
	json_t *msg = json_string(err->msg);

	/* A message that quotes the request (a JSON error near some bytes)
	 * may not be UTF-8: those bytes are shown as '?', never dropped with
	 * the whole reply. */
	if (msg == NULL) {
		char clean[sizeof(err->msg)];
		size_t i;

		for (i = 0; i + 1 < sizeof(clean) && err->msg[i] != '\0'; i++)
			clean[i] = (unsigned char)err->msg[i] < 0x20 ||
				   (unsigned char)err->msg[i] >= 0x7f ? '?' : err->msg[i];
		clean[i] = '\0';
		msg = json_string(clean);
	}
	return json_pack("{s:b, s:s, s:o}", "ok", 0, "code", fg_errno_name(err->code),
			 "error", msg);
}

static void
fg_reply_error(struct fg_conn *c, const struct fg_err *err)
{
	json_t *r = fg_error_json(err);

	fg_send(c, r);
	json_decref(r);
}

static void
fg_conn_close(struct fg_server *s, unsigned int i)
{
	/* Its capture ends with it: disarmed, the copies dropped. */
	if (s->conns[i].fd == s->capture_fd) {
		fg_capture_finish(s->router->capture, fg_ownership_tables(s->own), NULL, NULL);
		s->capture_fd = -1;
	}
	close(s->conns[i].fd);
	if (s->conns[i].stream.fd >= 0)
		close(s->conns[i].stream.fd);
	free(s->conns[i].buf);
	free(s->conns[i].out);
	fg_load_reset(&s->conns[i].load);
	s->conns[i] = s->conns[--s->n_conns];
	memset(&s->conns[s->n_conns], 0, sizeof(s->conns[0]));
}

/*
 * The peer's supplementary groups as the kernel recorded them at connect
 * (SO_PEERGROUPS): whatever the peer's process does later, or whichever
 * process gets its pid, changes nothing. *n, or -errno.
 */
static int
fg_peer_groups(int fd, gid_t **groups, int *n)
{
	socklen_t len = 64 * sizeof(gid_t);

	*groups = NULL;
	for (;;) {
		gid_t *g = realloc(*groups, len ? len : sizeof(gid_t));

		if (g == NULL)
			return -ENOMEM;
		*groups = g;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) == 0)
			break;
		if (errno != ERANGE || len > FG_PEER_GROUPS_MAX * sizeof(gid_t))
			return -errno;
	}
	*n = (int)(len / sizeof(gid_t));
	return 0;
}

static bool
fg_in_group(gid_t gid, gid_t primary, const gid_t *groups, int n)
{
	if (gid == (gid_t)-1)
		return false;
	if (gid == primary)
		return true;
	for (int i = 0; i < n; i++)
		if (groups[i] == gid)
			return true;
	return false;
}

/* Say why in one try, then close. */
static void
fg_refuse_conn(int fd, int code, const char *why)
{
	struct fg_conn once = { .fd = fd, .stream.fd = -1 };
	struct fg_err err;

	fg_err_set(&err, code, "%s", why);
	fg_reply_error(&once, &err);
	fg_conn_write(&once);
	free(once.out);
	close(fd);
}

/*
 * A new peer, judged once, here, by what the kernel recorded when it
 * connected: its uid and primary gid (SO_PEERCRED) and its supplementary
 * groups (SO_PEERGROUPS). Peers that may only read, or not even that, get
 * at most FG_SERVER_MAX_CONNS - FG_SERVER_RESERVED connections, so that
 * they can never lock root and the control group out.
 */
static void
fg_accept(struct fg_server *s)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct fg_conn *c;
	gid_t *groups = NULL;
	int n_groups = 0;
	bool can_write, can_read;
	char why[256];
	int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
	    fg_peer_groups(fd, &groups, &n_groups) != 0) {
		snprintf(why, sizeof(why), "the router cannot tell who the peer is: %s", strerror(errno));
		free(groups);
		fg_refuse_conn(fd, EACCES, why);
		return;
	}
	can_write = cred.uid == 0 || fg_in_group(s->cfg.write_gid, cred.gid, groups, n_groups);
	can_read = can_write || fg_in_group(s->cfg.read_gid, cred.gid, groups, n_groups);
	free(groups);
	if (s->n_conns == FG_SERVER_MAX_CONNS ||
	    (!can_write && s->n_conns >= FG_SERVER_MAX_CONNS - FG_SERVER_RESERVED)) {
		snprintf(why, sizeof(why), "the router serves %d connections at most, the last %d of them for root and the control group",
			 FG_SERVER_MAX_CONNS, FG_SERVER_RESERVED);
		fg_refuse_conn(fd, EBUSY, why);
		return;
	}
	c = &s->conns[s->n_conns++];
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->uid = cred.uid;
	c->cred = cred;
	c->can_write = can_write;
	c->can_read = can_read;
	c->last = fg_mono();
	c->stream.fd = -1;
}

/* A request field the command does not take is refused by name, as an
 * op's are: a misspelt "tenant" must not widen a dump to every tenant. */
static int
fg_request_fields(const struct fg_cmd *cmd, json_t *req, struct fg_err *err)
{
	const char *key;
	json_t *v;

	json_object_foreach(req, key, v) {
		const char *f = cmd->fields;
		size_t len = strlen(key);
		bool known = strcmp(key, "cmd") == 0;

		while (!known && (f = strstr(f, key)) != NULL) {
			known = (f == cmd->fields || f[-1] == ' ') && (f[len] == ' ' || f[len] == '\0');
			f += len;
		}
		if (!known)
			return fg_err_set(err, EINVAL, "%s: unknown field \"%s\"%s%s%s", cmd->name, key,
					  cmd->fields[0] ? " (it takes: " : " (it takes none)",
					  cmd->fields, cmd->fields[0] ? ")" : "");
	}
	return 0;
}

/*
 * Send a streamed dump's next frames while the peer has less than a frame
 * unread; after the last, the closing frame with the count. The router
 * holds at most about two frames per dump, whatever the dump's size.
 */
static void
fg_stream_pump(struct fg_conn *c, char *chunk)
{
	struct fg_stream *st = &c->stream;

	while (st->fd >= 0 && c->out_len - c->out_off < FG_STREAM_CHUNK) {
		size_t want = (size_t)RTE_MIN((uint64_t)FG_STREAM_CHUNK, st->size - st->off), len;
		struct fg_err err = { 0 };
		json_t *f = NULL;
		ssize_t n = 0;

		if (want == 0) {
			f = json_pack("{s:b, s:I, s:I}", "ok", 1, "ops", (json_int_t)st->lines,
				      "bytes", (json_int_t)st->size);
		} else {
			n = pread(st->fd, chunk, want, (off_t)st->off);
			len = n > 0 ? (size_t)n : 0;
			while (len > 0 && chunk[len - 1] != '\n')
				len--;      /* whole lines only: the rest goes next */
			if (len > 0)
				f = json_pack("{s:b, s:b, s:s%}", "ok", 1, "more", 1, "text", chunk, len);
			if (f == NULL)
				fg_err_set(&err, n < 0 ? errno : EIO,
					   "dump: reading it back at byte %" PRIu64 ": %s", st->off,
					   n < 0 ? strerror(errno) : "not whole lines of UTF-8");
			st->off += len;
		}
		if (f != NULL) {
			fg_send(c, f);
			json_decref(f);
		} else {
			fg_reply_error(c, &err);
		}
		if (want == 0 || f == NULL) {
			close(st->fd);
			st->fd = -1;
		}
	}
}

/* One complete request. */
static void
fg_handle(struct fg_server *s, struct fg_conn *c, const uint8_t *body, size_t len)
{
	struct fg_err err = { 0 };
	const struct fg_cmd *cmd = NULL;
	json_error_t jerr;
	double t0 = fg_latency_now();
	json_t *req = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES, &jerr);
	json_t *res;
	const char *name;
	int ret;

	if (req == NULL || !json_is_object(req)) {
		fg_group_flush(s);
		if (req == NULL)
			fg_err_set(&err, EINVAL, "the request is not valid JSON: %s (column %d)",
				   jerr.text, jerr.column);
		else
			fg_err_set(&err, EINVAL, "a request is one JSON object");
		fg_reply_error(c, &err);
		json_decref(req);
		fg_latency_record(&s->lat[FG_KIND_INVALID], fg_latency_now() - t0);
		return;
	}
	name = json_string_value(json_object_get(req, "cmd"));
	for (size_t i = 0; name != NULL && i < RTE_DIM(fg_cmds); i++)
		if (strcmp(fg_cmds[i].name, name) == 0)
			cmd = &fg_cmds[i];
	if (cmd == NULL) {
		fg_err_set(&err, EINVAL, "unknown command \"%s\"", name ? name : "(none)");
	} else if ((cmd->flags & FG_CMD_WRITES) ? !c->can_write : !c->can_read) {
		fg_err_set(&err, EPERM, "%s: uid %u may not %s (root or the control group may change state%s)",
			   cmd->name, (unsigned int)c->uid,
			   (cmd->flags & FG_CMD_WRITES) ? "change state" : "read state",
			   s->cfg.read_gid != (gid_t)-1 ? "; the read group may read it" : "");
	} else if (s->follower != NULL && !(cmd->flags & FG_CMD_ON_FOLLOWER)) {
		fg_err_set(&err, EROFS, "%s: this router follows a store; its mappings change only there (fgctl --store ENDPOINTS ...)",
			   cmd->name);
	} else {
		fg_request_fields(cmd, req, &err);
	}
	if (err.code == 0 && cmd->handler == fg_cmd_apply) {
		fg_group_add(s, c, req, t0);
		json_decref(req);
		return;
	}
	/* Anything else waits for the changes before it. */
	fg_group_flush(s);
	if (err.code) {
		fg_reply_error(c, &err);
		json_decref(req);
		fg_latency_record(&s->lat[cmd ? (size_t)(cmd - fg_cmds) : FG_KIND_INVALID],
				  fg_latency_now() - t0);
		return;
	}
	res = json_object();
	ret = cmd->handler(s, c, req, res, &err);
	if (ret < 0) {
		fg_reply_error(c, &err);
	} else if (ret == FG_CMD_LATER && c->stream.fd >= 0) {
		fg_stream_pump(c, s->chunk);
	} else if (ret != FG_CMD_LATER) {
		json_object_set_new(res, "ok", json_true());
		fg_send(c, res);
	}
	json_decref(res);
	json_decref(req);
	fg_latency_record(&s->lat[cmd - fg_cmds], fg_latency_now() - t0);
}

static int fg_conn_requests(struct fg_server *s, struct fg_conn *c);

/* Read what is there; handle every complete request. -1: close. */
static int
fg_conn_read(struct fg_server *s, struct fg_conn *c)
{
	bool eof = false;

	for (;;) {
		ssize_t n;

		if (c->cap - c->len < 65536) {
			size_t cap = c->cap ? c->cap * 2 : 65536;
			uint8_t *b;

			if (cap > FG_CTL_MAX_REQUEST + 4 + 65536)
				cap = FG_CTL_MAX_REQUEST + 4 + 65536;
			if (cap <= c->cap)
				break;
			b = realloc(c->buf, cap);
			if (b == NULL)
				return -1;
			c->buf = b;
			c->cap = cap;
		}
		n = read(c->fd, c->buf + c->len, c->cap - c->len);
		if (n == 0) {
			eof = true;         /* answer what came before it */
			break;
		}
		if (n < 0)
			break;
		c->len += (size_t)n;
		c->last = fg_mono();
	}
	return fg_conn_requests(s, c) < 0 || eof ? -1 : 0;
}

/* Handle every complete request read; -1: close. Requests after a capture
 * wait for its reply, so that every reply comes in order. */
static int
fg_conn_requests(struct fg_server *s, struct fg_conn *c)
{
	while (c->len >= 4 && c->fd != s->capture_fd && c->stream.fd < 0) {
		size_t mlen = (size_t)c->buf[0] << 24 | (size_t)c->buf[1] << 16 |
			      (size_t)c->buf[2] << 8 | c->buf[3];

		if (mlen > FG_CTL_MAX_REQUEST) {
			struct fg_err err;

			fg_err_set(&err, EMSGSIZE, "a request of %zu bytes is over the %u-byte limit (send a load in chunks)",
				   mlen, FG_CTL_MAX_REQUEST);
			fg_group_flush(s);
			fg_reply_error(c, &err);
			return -1;
		}
		if (c->len < 4 + mlen)
			break;
		fg_handle(s, c, c->buf + 4, mlen);
		memmove(c->buf, c->buf + 4 + mlen, c->len - 4 - mlen);
		c->len -= 4 + mlen;
		c->partial_since = 0;
	}
	/* A request begun and not finished starts its clock (one waiting
	 * behind a capture or a dump is not the peer's delay). */
	if (c->len == 0 || c->fd == s->capture_fd || c->stream.fd >= 0)
		c->partial_since = 0;
	else if (c->partial_since == 0)
		c->partial_since = fg_mono();
	return 0;
}

/* A capture that is complete or out of time: its reply, then the requests
 * its connection sent after it. */
static void
fg_capture_service(struct fg_server *s)
{
	bool timed_out;

	if (s->capture_fd < 0 || !fg_capture_due(s->router->capture, &timed_out))
		return;
	for (unsigned int i = 0; i < s->n_conns; i++) {
		struct fg_conn *c = &s->conns[i];
		json_t *res;

		if (c->fd != s->capture_fd)
			continue;
		res = fg_capture_result(s->router->capture, fg_ownership_tables(s->own),
					timed_out);
		s->capture_fd = -1;
		json_object_set_new(res, "ok", json_true());
		fg_send(c, res);
		json_decref(res);
		c->last = fg_mono();
		if (fg_conn_requests(s, c) < 0)
			c->len = 0;     /* oversized: refused; closed when idle */
		fg_group_flush(s);
		fg_conn_write(c);
		return;
	}
}

struct fg_server *
fg_server_create(const struct fg_server_config *cfg, struct fg_ownership *own,
		 struct fg_journal *journal, const struct fg_router *router,
		 struct fg_err *err)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct fg_server *s;
	char dir[sizeof(addr.sun_path)];
	struct stat sb;
	char *slash;
	int fd;

	if (strlen(cfg->path) >= sizeof(addr.sun_path)) {
		fg_err_set(err, ENAMETOOLONG, "%s: a socket path has at most %zu bytes",
			   cfg->path, sizeof(addr.sun_path) - 1);
		return NULL;
	}
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", cfg->path);
	snprintf(dir, sizeof(dir), "%s", cfg->path);
	slash = strrchr(dir, '/');
	if (slash != NULL && slash != dir) {
		*slash = '\0';
		mkdir(dir, 0755);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		fg_err_set(err, errno, "%s: socket: %s", cfg->path, strerror(errno));
		return NULL;
	}
	/* A live router answers on the path: refuse; a dead one's file goes. */
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 || errno == EAGAIN) {
		close(fd);
		fg_err_set(err, EADDRINUSE, "%s: another router is serving this socket", cfg->path);
		return NULL;
	}
	close(fd);
	/* Only a dead router's socket is replaced, never another file. */
	if (lstat(cfg->path, &sb) == 0 && !S_ISSOCK(sb.st_mode)) {
		fg_err_set(err, ENOTSOCK, "%s: exists and is not a socket; refusing to replace it (remove it, or set control_socket to another path)",
			   cfg->path);
		return NULL;
	}
	unlink(cfg->path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	/* With a read group, any local user may connect: each peer is judged at
	 * accept by the kernel's record of its credentials, and a peer in
	 * neither group may do nothing. */
	if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
	    chmod(cfg->path, cfg->read_gid != (gid_t)-1 ? 0666 : 0660) != 0 ||
	    (cfg->write_gid != (gid_t)-1 && chown(cfg->path, (uid_t)-1, cfg->write_gid) != 0) ||
	    listen(fd, 16) != 0) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		fg_err_set(err, e, "%s: cannot listen: %s", cfg->path, strerror(e));
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		close(fd);
		fg_err_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	s->cfg = *cfg;
	snprintf(s->path, sizeof(s->path), "%s", cfg->path);
	s->cfg.path = s->path;
	s->listen_fd = fd;
	s->own = own;
	s->journal = journal;
	s->router = router;
	s->started = time(NULL);
	s->test_hooks = getenv("FG_TEST_HOOKS") != NULL && strcmp(getenv("FG_TEST_HOOKS"), "1") == 0;
	s->capture_fd = -1;
	s->group = calloc(FG_GROUP_MAX, sizeof(*s->group));
	s->chunk = malloc(FG_STREAM_CHUNK);
	if (s->group == NULL || s->chunk == NULL) {
		fg_server_free(s);
		fg_err_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	return s;
}

static int
fg_emit_snapshot(void *ctx, FILE *out)
{
	return fg_dump_file(ctx, out);
}

/* A streamed dump: its next frames; once it is over, the requests its
 * connection sent after it. -1: close the connection. */
static int
fg_stream_service(struct fg_server *s, struct fg_conn *c)
{
	if (c->stream.fd < 0)
		return 0;
	fg_stream_pump(c, s->chunk);
	return c->stream.fd < 0 ? fg_conn_requests(s, c) : 0;
}

/* Compaction, off the ack path, when the journal has grown; a failure
 * backs off (doubling, up to 5 minutes) and is logged once, not per try. */
static void
fg_compact(struct fg_server *s, double now)
{
	struct fg_err err = { 0 };

	if (s->journal == NULL || s->cfg.compact_bytes == 0 || s->degraded.on ||
	    fg_journal_size(s->journal) <= s->cfg.compact_bytes || now < s->compact_retry_at)
		return;
	if (fg_journal_snapshot(s->journal, fg_emit_snapshot, s->own, &err) == 0) {
		if (s->compact_failing)
			fprintf(stderr, "framegate: journal compaction works again\n");
		s->compact_failing = false;
		s->compact_backoff = 0;
		return;
	}
	if (!s->compact_failing)
		fprintf(stderr, "framegate: ALARM: journal compaction failed: %s; retrying with backoff (changes are still journaled)\n",
			err.msg);
	s->compact_failing = true;
	s->compact_failures++;
	s->compact_error = err;
	s->compact_backoff = RTE_MIN(RTE_MAX(s->compact_backoff * 2, FG_RETRY_MIN), 300.0);
	s->compact_retry_at = now + s->compact_backoff;
	if (fg_journal_failed(s->journal))
		fg_degrade(s, &err);
}

void
fg_server_poll(struct fg_server *s, int timeout_ms)
{
	struct pollfd pfd[FG_SERVER_MAX_CONNS + 1];
	unsigned int n = s->n_conns;
	double now;

	bool closing[FG_SERVER_MAX_CONNS] = { false };

	pfd[0] = (struct pollfd){ .fd = s->listen_fd, .events = POLLIN };
	for (unsigned int i = 0; i < n; i++) {
		const struct fg_conn *c = &s->conns[i];
		size_t unread = c->out_len - c->out_off;

		/* A peer that leaves its replies unread is sent no more work. A
		 * streamed dump with all its frames written wakes the round at
		 * once (POLLOUT), so that its next frames are made. */
		pfd[i + 1] = (struct pollfd){ .fd = c->fd,
			.events = (short)((unread < FG_OUT_HIGH ? POLLIN : 0) |
					  (unread > 0 || c->stream.fd >= 0 ? POLLOUT : 0)) };
	}
	if (poll(pfd, n + 1, timeout_ms) <= 0)
		goto idle;
	/* Connections first (from the last, as closing moves the last one into
	 * the freed place), then new ones. */
	for (unsigned int i = n; i-- > 0;) {
		short ev = pfd[i + 1].revents;

		if (ev & POLLOUT)
			closing[i] = fg_conn_write(&s->conns[i]) < 0;
		if (!closing[i] && (ev & ~POLLOUT))
			closing[i] = fg_conn_read(s, &s->conns[i]) < 0;
		if (!closing[i])
			closing[i] = fg_stream_service(s, &s->conns[i]) < 0;
	}
	/* The changes read this round commit together, before any reply
	 * socket closes. */
	fg_group_flush(s);
	for (unsigned int i = n; i-- > 0;) {
		if (s->conns[i].out_len > 0 && fg_conn_write(&s->conns[i]) < 0)
			closing[i] = true;
		if (closing[i])
			fg_conn_close(s, i);
	}
	if (pfd[0].revents & POLLIN)
		fg_accept(s);
idle:
	fg_capture_service(s);
	now = fg_mono();
	for (unsigned int i = s->n_conns; i-- > 0;) {
		struct fg_conn *c = &s->conns[i];

		if (c->fd == s->capture_fd)
			continue;
		if (c->partial_since != 0 && now - c->partial_since > FG_CTL_REQUEST_SECONDS) {
			struct fg_err err;

			fg_err_set(&err, ETIMEDOUT, "a request must arrive whole within %d s; closing the connection",
				   FG_CTL_REQUEST_SECONDS);
			fg_reply_error(c, &err);
			fg_conn_write(c);
			fg_conn_close(s, i);
		} else if (now - c->last > FG_CTL_IDLE_SECONDS) {
			fg_conn_close(s, i);
		}
	}
	if (s->degraded.on && now >= s->degraded.retry_at)
		fg_journal_ready(s, false, &(struct fg_err){ 0 });
	fg_compact(s, now);
}

void
fg_server_free(struct fg_server *s)
{
	if (s == NULL)
		return;
	fg_group_flush(s);
	s->capture_fd = -1;         /* the router's capture may be gone already */
	while (s->n_conns > 0)
		fg_conn_close(s, s->n_conns - 1);
	close(s->listen_fd);
	unlink(s->path);
	free(s->group);
	free(s->chunk);
	free(s->group_text);
	free(s);
}

/* ---- what observers see (ctlstate.h, control/metrics.c) --------------------- */

void
fg_server_values(const struct fg_server *s, struct fg_ctl_values *v)
{
	const struct fg_tables *t = fg_ownership_tables(s->own);

	memset(v, 0, sizeof(*v));
	v->tenants = fg_tables_count_tenants(t);
	v->sinks = fg_tables_count_sinks(t);
	v->devices = fg_tables_count_devices(t);
	v->max_tenants = t->cfg.max_tenants;
	v->max_sinks = t->cfg.max_sinks;
	v->max_devices = t->cfg.max_devices;
	if (s->journal != NULL) {
		v->has_journal = true;
		v->journal_bytes = fg_journal_size(s->journal);
		v->journal_records = fg_journal_records(s->journal);
		v->journal_generation = fg_journal_generation(s->journal);
	}
	if (fg_ownership_shield(s->own) != NULL) {
		v->shield_faults = fg_ownership_shield_faults(s->own, NULL);
		v->shield = v->shield_faults ? FG_SHIELD_STATE_DEGRADED : FG_SHIELD_STATE_IN_STEP;
	}
	v->connections = s->n_conns;
	v->changes_applied = s->changes;
	v->group_commits = s->groups;
	v->started_unix = s->started;
	v->last_change_unix = s->last_change;
}

const struct fg_latency *
fg_server_latency(const struct fg_server *s, unsigned int i, const char **kind)
{
	if (i > FG_KIND_INVALID)
		return NULL;
	*kind = i == FG_KIND_INVALID ? "invalid" : fg_cmds[i].name;
	return &s->lat[i];
}
