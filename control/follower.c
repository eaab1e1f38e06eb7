/*
 * The store follower (see follower.h, docs/store.md).
 *
 * One store change's path, from etcd to enforcement:
 *
 *   watch event(s) of revision R (fg_etcd_watch_poll)
 *   -> the last value of each key touched up to R (a change set)
 *   -> a plan: the op lines that take the tables from what they hold to what
 *      the store holds for those keys (fg_plan), then store_revision R
 *   -> check them all (fg_ops_check_all) -> journal -> apply, grace period
 *   -> enforced revision = R.
 *
 * A listing (start, compaction, reconnect, reconcile) builds the change set
 * from the whole prefix plus every table entry the prefix lacks, and goes
 * down the same path.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <rte_hash.h>
#include <sodium.h>

#include "audit.h"
#include "dump.h"
#include "etcd.h"
#include "follower.h"
#include "mapfile.h"
#include "store.h"

enum fg_fstate { FG_F_RESYNC, FG_F_WATCH, FG_F_BACKOFF, FG_F_BROKEN };

/* One key's wanted state: the value the store holds, or absent. */
struct fg_chg {
	enum fg_store_kind kind;
	uint64_t id;
	uint64_t order;             /* arrival, to keep the last event of a key */
	bool want;                  /* the store holds it */
	struct fg_op op;            /* its value, decoded (when want) */
	char *line;                 /* its value, as stored (when want) */
};

struct fg_chgset {
	struct fg_chg *c;
	size_t n, cap;
	uint64_t next_order;
};

struct fg_follower {
	struct fg_follower_config cfg;
	char endpoints[1024];
	char prefix[FG_STORE_PREFIX_MAX + 1];
	char end[FG_STORE_KEY_MAX];
	struct fg_etcd *watch, *req;  /* the watch has a handle of its own */
	struct fg_ownership *own;
	struct fg_journal *journal;
	struct fg_audit *audit;       /* NULL: no audit log */
	uint32_t *closed;
	enum fg_fstate state;
	unsigned int failures;        /* in a row, for the backoff */
	uint64_t retry_at_ms;
	struct fg_chgset pending;     /* watched, not yet applied */
	bool pending_bad;             /* a value could not be decoded */
	int64_t pending_rev;
	/* freshness */
	int64_t store_rev;            /* the store's revision at the last probe */
	int64_t last_change;          /* P seq's mod_revision at the last probe */
	uint64_t confirmed_ms;        /* last time the tables were known current; 0 never */
	uint64_t next_probe_ms;
	bool stale;
	/* reconcile */
	uint64_t next_reconcile_ms;
	bool reconcile_asked;         /* store.reconcile: run at the next poll */
	uint64_t reconciles, drift_found, drift_last;
	int64_t reconcile_rev;
	uint64_t reconcile_at_ms;
	/* counts */
	uint64_t resyncs, transactions, events;
	char last_error[320];
};

static uint64_t
fg_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- change sets ---------------------------------------------------------------- */

static void
fg_chgset_clear(struct fg_chgset *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->c[i].line);
	s->n = 0;
}

static void
fg_chgset_free(struct fg_chgset *s)
{
	fg_chgset_clear(s);
	free(s->c);
	memset(s, 0, sizeof(*s));
}

static struct fg_chg *
fg_chgset_push(struct fg_chgset *s)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		struct fg_chg *c = realloc(s->c, cap * sizeof(*c));

		if (c == NULL)
			return NULL;
		s->c = c;
		s->cap = cap;
	}
	memset(&s->c[s->n], 0, sizeof(s->c[0]));
	s->c[s->n].order = s->next_order++;
	return &s->c[s->n++];
}

/* A key's value into the set (value NULL: deleted). Keys framegate does not
 * keep in its tables (use/, seq, others) are skipped. */
static int
fg_chgset_add(struct fg_chgset *s, const char *prefix, const char *key, size_t key_len,
	      const char *value, size_t value_len, struct fg_err *err)
{
	uint64_t id;
	enum fg_store_kind k = fg_store_key_parse(prefix, key, key_len, &id);
	struct fg_chg *c;

	if (k != FG_SK_TENANT && k != FG_SK_SINK && k != FG_SK_DEVICE && k != FG_SK_SUSPENDED)
		return 0;
	c = fg_chgset_push(s);
	if (c == NULL)
		return fg_err_set(err, ENOMEM, "out of memory for the store's changes");
	c->kind = k;
	c->id = id;
	if (value == NULL)
		return 0;
	c->want = true;
	if (k == FG_SK_SUSPENDED)
		return 0;               /* presence is the value */
	if (fg_op_parse(value, value_len, &c->op, err) < 0 ||
	    (k == FG_SK_TENANT && (c->op.kind != FG_OP_TENANT || c->op.tenant.tenant_id != id)) ||
	    (k == FG_SK_SINK && (c->op.kind != FG_OP_SINK || c->op.sink.sink_id != id)) ||
	    (k == FG_SK_DEVICE && (c->op.kind != FG_OP_DEVICE || c->op.device.device_id != id))) {
		if (err->code == 0 || c->op.kind != FG_OP_TENANT)
			fg_err_set(err, EPROTO, "its value is not the op line of that %s",
				   k == FG_SK_TENANT ? "tenant" : k == FG_SK_SINK ? "sink" : "device");
		fg_err_prefix(err, "store key %.*s: ", (int)key_len, key);
		s->n--;
		return -EPROTO;
	}
	c->line = strndup(value, value_len);
	if (c->line == NULL) {
		s->n--;
		return fg_err_set(err, ENOMEM, "out of memory for the store's changes");
	}
	return 0;
}

static int
fg_chg_cmp(const void *a, const void *b)
{
	const struct fg_chg *x = a, *y = b;

	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	if (x->id != y->id)
		return x->id < y->id ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Sort by key and keep each key's last change. */
static void
fg_chgset_last(struct fg_chgset *s)
{
	size_t o = 0;

	qsort(s->c, s->n, sizeof(s->c[0]), fg_chg_cmp);
	for (size_t i = 0; i < s->n; i++) {
		if (i + 1 < s->n && s->c[i + 1].kind == s->c[i].kind && s->c[i + 1].id == s->c[i].id) {
			free(s->c[i].line);
			continue;
		}
		s->c[o++] = s->c[i];
	}
	s->n = o;
}

static struct fg_chg *
fg_chgset_find(struct fg_chgset *s, enum fg_store_kind kind, uint64_t id)
{
	struct fg_chg key = { .kind = kind, .id = id, .order = 0 };
	size_t lo = 0, hi = s->n;

	/* Sorted and unique by (kind, id): compare without the order. */
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const struct fg_chg *m = &s->c[mid];
		int c = m->kind != key.kind ? (m->kind < key.kind ? -1 : 1)
			: m->id != key.id ? (m->id < key.id ? -1 : 1) : 0;

		if (c == 0)
			return &s->c[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* ---- what the tables hold, against what the store holds ------------------------- */

static bool
fg_tenant_same(const struct fg_tenant *e, const struct fg_op *op)
{
	return strcmp(e->name, op->name) == 0 && e->max_devices == op->tenant.max_devices &&
	       e->rate_pps == op->tenant.rate_pps && e->burst == op->tenant.burst;
}

static bool
fg_sink_same(const struct fg_sink *e, const struct fg_sink_spec *s)
{
	return e->tenant_id == s->tenant_id && e->family == s->family && e->port == s->port &&
	       e->egress == s->egress &&
	       memcmp(e->addr, s->addr, s->family == AF_INET ? 4 : 16) == 0;
}

static bool
fg_device_same(const struct fg_device *e, const struct fg_device_spec *s)
{
	if (e->tenant_id != s->tenant_id || e->epoch != s->epoch || e->n_sinks != s->n_sinks ||
	    e->has_key != s->has_key || (s->has_key && memcmp(e->key, s->key, FG_AUTH_KEY_LEN)))
		return false;
	for (unsigned int i = 0; i < s->n_sinks; i++)
		if (e->sinks[i]->sink_id != s->sinks[i])
			return false;
	return true;
}

static const struct fg_device *
fg_table_device(const struct fg_ownership *own, uint64_t id)
{
	uint32_t owner = fg_device_owner(own, id);

	return owner ? fg_tables_device(fg_ownership_tables(own), owner, id) : NULL;
}

/* The change is already what the tables hold. */
static bool
fg_chg_current(const struct fg_ownership *own, const struct fg_chg *c)
{
	const struct fg_tables *t = fg_ownership_tables(own);
	const struct fg_tenant *te;
	const struct fg_sink *se;
	const struct fg_device *de;

	switch (c->kind) {
	case FG_SK_TENANT:
		te = fg_tables_tenant(t, (uint32_t)c->id);
		return c->want ? te != NULL && fg_tenant_same(te, &c->op) : te == NULL;
	case FG_SK_SUSPENDED:
		te = fg_tables_tenant(t, (uint32_t)c->id);
		return c->want ? te != NULL && te->suspended : te == NULL || !te->suspended;
	case FG_SK_SINK:
		se = fg_tables_sink(t, (uint32_t)c->id);
		return c->want ? se != NULL && fg_sink_same(se, &c->op.sink) : se == NULL;
	case FG_SK_DEVICE:
		de = fg_table_device(own, c->id);
		return c->want ? de != NULL && fg_device_same(de, &c->op.device) : de == NULL;
	default:
		return true;
	}
}

/* ---- the plan ----------------------------------------------------------------------- */

struct fg_text {
	char *buf;
	size_t len, cap;
	size_t lines;
};

static int
fg_text_add(struct fg_text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->cap - t->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -EINVAL;
		if (t->len + (size_t)n + 2 <= t->cap)
			break;
		size_t cap = (t->cap ? t->cap * 2 : 65536) + (size_t)n + 2;
		char *b = realloc(t->buf, cap);

		if (b == NULL)
			return -ENOMEM;
		t->buf = b;
		t->cap = cap;
	}
	t->len += (size_t)n;
	t->buf[t->len++] = '\n';
	t->lines++;
	return 0;
}

static bool
fg_in_sorted(const uint64_t *ids, size_t n, uint64_t id)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (ids[mid] == id)
			return true;
		if (ids[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static int
fg_u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * The op lines that take the tables to the change set (sorted, one change per
 * key), in an order every step of which the actions accept:
 *   1. mappings that go, or that must be re-made (their tenant or a sink of
 *      theirs is re-made, their epoch goes down, or a move cannot express
 *      them); 2. sinks, then 3. tenants that go or are re-made; 4. tenants,
 *   5. sinks that come; 6. mappings that come, change or move (no_moves:
 *   every change of owner is a delete in 1 and an add here, so no tenant
 *   ever holds more than it will at the end); 7. suspensions.
 */
static int
fg_plan(const struct fg_ownership *own, const struct fg_chgset *s, bool no_moves,
	struct fg_text *out, size_t *changed)
{
	const struct fg_tables *t = fg_ownership_tables(own);
	uint64_t *t_gone = calloc(s->n + 1, sizeof(uint64_t)), *s_gone = calloc(s->n + 1, sizeof(uint64_t));
	uint8_t *how = calloc(s->n + 1, 1);   /* devices: 1 put, 2 move, 3 del+put, 4 del */
	size_t n_tg = 0, n_sg = 0;
	int ret = -ENOMEM;

	*changed = 0;
	if (t_gone == NULL || s_gone == NULL || how == NULL)
		goto out;
	/* Tenants that go or are re-made; then sinks that go, are re-made, or
	 * whose tenant is re-made. */
	for (size_t i = 0; i < s->n; i++) {
		const struct fg_chg *c = &s->c[i];

		if (fg_chg_current(own, c))
			continue;
		(*changed)++;
		if (c->kind == FG_SK_TENANT && fg_tables_tenant(t, (uint32_t)c->id) != NULL)
			t_gone[n_tg++] = c->id;
	}
	qsort(t_gone, n_tg, sizeof(uint64_t), fg_u64_cmp);
	for (size_t i = 0; i < s->n; i++) {
		const struct fg_chg *c = &s->c[i];
		const struct fg_sink *se;

		if (c->kind != FG_SK_SINK || (se = fg_tables_sink(t, (uint32_t)c->id)) == NULL)
			continue;
		if (!fg_chg_current(own, c) || fg_in_sorted(t_gone, n_tg, se->tenant_id))
			s_gone[n_sg++] = c->id;
	}
	qsort(s_gone, n_sg, sizeof(uint64_t), fg_u64_cmp);
	/* 1. mappings that go or are re-made (also unchanged ones that hang on
	 * a tenant or sink that is re-made). */
	for (size_t i = 0; i < s->n; i++) {
		const struct fg_chg *c = &s->c[i];
		const struct fg_device *cur;
		bool tangled = false, current;

		if (c->kind != FG_SK_DEVICE)
			continue;
		cur = fg_table_device(own, c->id);
		current = fg_chg_current(own, c);
		if (cur == NULL) {
			how[i] = current ? 0 : 1;
			continue;
		}
		tangled = fg_in_sorted(t_gone, n_tg, cur->tenant_id);
		for (unsigned int k = 0; k < cur->n_sinks && !tangled; k++)
			tangled = fg_in_sorted(s_gone, n_sg, cur->sinks[k]->sink_id);
		if (!c->want) {
			how[i] = 4;
		} else {
			const struct fg_device_spec *d = &c->op.device;

			tangled = tangled || fg_in_sorted(t_gone, n_tg, d->tenant_id);
			for (unsigned int k = 0; k < d->n_sinks && !tangled; k++)
				tangled = fg_in_sorted(s_gone, n_sg, d->sinks[k]);
			if (current && !tangled)
				how[i] = 0;
			else if (!tangled && d->tenant_id == cur->tenant_id && d->epoch >= cur->epoch)
				how[i] = 1;
			else if (!tangled && !no_moves && d->tenant_id != cur->tenant_id &&
				 d->epoch > cur->epoch && (d->has_key || !cur->has_key))
				how[i] = 2;
			else
				how[i] = 3;
		}
		if (how[i] >= 3 &&
		    (ret = fg_text_add(out, "{\"op\":\"del_device\",\"tenant\":%" PRIu32 ",\"device\":\"0x%016" PRIx64 "\"}",
				       cur->tenant_id, c->id)) < 0)
			goto out;
	}
	/* 2, 3. sinks, then tenants that go or are re-made. */
	for (size_t i = 0; i < n_sg; i++)
		if ((ret = fg_text_add(out, "{\"op\":\"del_sink\",\"sink\":%" PRIu64 "}", s_gone[i])) < 0)
			goto out;
	for (size_t i = 0; i < n_tg; i++)
		if ((ret = fg_text_add(out, "{\"op\":\"del_tenant\",\"tenant\":%" PRIu64 "}", t_gone[i])) < 0)
			goto out;
	/* 4, 5. tenants and sinks that come. */
	for (size_t i = 0; i < s->n; i++) {
		const struct fg_chg *c = &s->c[i];

		bool again = c->kind == FG_SK_SINK && fg_in_sorted(s_gone, n_sg, c->id);

		if ((c->kind == FG_SK_TENANT || c->kind == FG_SK_SINK) && c->want &&
		    (again || !fg_chg_current(own, c)) && (ret = fg_text_add(out, "%s", c->line)) < 0)
			goto out;
	}
	/* 6. mappings: moves first, then the rest. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < s->n; i++) {
			const struct fg_chg *c = &s->c[i];
			const struct fg_device_spec *d = &c->op.device;
			const struct fg_device *cur;

			if (c->kind != FG_SK_DEVICE || how[i] == 0 || how[i] == 4 ||
			    (pass == 0) != (how[i] == 2))
				continue;
			if (how[i] != 2) {
				ret = fg_text_add(out, "%s", c->line);
			} else {
				char sinks[8 * 12] = "", key[2 * FG_AUTH_KEY_LEN + 16] = "";
				size_t o = 0;

				cur = fg_table_device(own, c->id);
				for (unsigned int k = 0; k < d->n_sinks; k++)
					o += (size_t)snprintf(sinks + o, sizeof(sinks) - o, "%s%" PRIu32,
							      k ? "," : "", d->sinks[k]);
				if (d->has_key) {
					o = (size_t)snprintf(key, sizeof(key), ",\"key\":\"");
					for (int k = 0; k < FG_AUTH_KEY_LEN; k++)
						o += (size_t)snprintf(key + o, sizeof(key) - o, "%02x", d->key[k]);
					snprintf(key + o, sizeof(key) - o, "\"");
				}
				ret = fg_text_add(out, "{\"op\":\"move\",\"device\":\"0x%016" PRIx64 "\",\"from\":%" PRIu32 ",\"to\":%" PRIu32 ",\"epoch\":%" PRIu32 ",\"sinks\":[%s]%s}",
						  c->id, cur->tenant_id, d->tenant_id, d->epoch, sinks, key);
			}
			if (ret < 0)
				goto out;
		}
	}
	/* 7. suspensions (a tenant re-made comes back active). */
	for (size_t i = 0; i < s->n; i++) {
		const struct fg_chg *c = &s->c[i];
		const struct fg_chg *tc;
		const struct fg_tenant *te;
		bool exists, remade, suspended;

		if (c->kind != FG_SK_SUSPENDED)
			continue;
		te = fg_tables_tenant(t, (uint32_t)c->id);
		tc = fg_chgset_find((struct fg_chgset *)s, FG_SK_TENANT, c->id);
		exists = tc ? tc->want : te != NULL;
		remade = fg_in_sorted(t_gone, n_tg, c->id);
		suspended = te != NULL && te->suspended && !remade;
		if (exists && c->want != suspended &&
		    (ret = fg_text_add(out, "{\"op\":\"%s\",\"tenant\":%" PRIu64 "}",
				       c->want ? "suspend" : "resume", c->id)) < 0)
			goto out;
	}
	/* A re-made tenant whose suspension did not change stays suspended. */
	for (size_t i = 0; i < n_tg; i++) {
		const struct fg_tenant *te = fg_tables_tenant(t, (uint32_t)t_gone[i]);
		const struct fg_chg *tc = fg_chgset_find((struct fg_chgset *)s, FG_SK_TENANT, t_gone[i]);

		if (te != NULL && te->suspended && tc != NULL && tc->want &&
		    fg_chgset_find((struct fg_chgset *)s, FG_SK_SUSPENDED, t_gone[i]) == NULL &&
		    (ret = fg_text_add(out, "{\"op\":\"suspend\",\"tenant\":%" PRIu64 "}", t_gone[i])) < 0)
			goto out;
	}
	ret = 0;
out:
	free(t_gone);
	free(s_gone);
	free(how);
	return ret;
}

/* Lines -> ops; check all; journal; apply; grace period. */
static int
fg_commit_lines(struct fg_follower *f, const struct fg_text *txt, struct fg_err *err)
{
	struct fg_op *ops = NULL;
	size_t n = 0, bad = 0;
	int ret = fg_ops_parse_lines(txt->buf, txt->len, &ops, &n, err);

	if (ret == 0)
		ret = fg_ops_check_all(f->own, ops, n, &bad, err);
	if (ret == 0 && f->journal != NULL)
		ret = fg_journal_append(f->journal, txt->buf, txt->len, err);
	if (ret == 0)
		ret = fg_ops_apply_checked(f->own, ops, n, &bad, err);
	/* Applied and enforced: the audit log has it before the revision
	 * counts as enforced (health, metrics). */
	if (ret == 0 && f->audit != NULL &&
	    (ret = fg_audit_change(f->audit, "store", NULL, txt->buf, txt->len, err)) < 0)
		fprintf(stderr, "framegate: ALARM: audit log: %s\n", err->msg);
	free(ops);
	return ret;
}

/* Take the tables to the change set (sorted, last per key) at revision rev. */
static int
fg_apply_set(struct fg_follower *f, struct fg_chgset *s, int64_t rev, size_t *changed,
	     struct fg_err *err)
{
	struct fg_text txt = { 0 };
	int ret;

	for (int no_moves = 0; no_moves < 2; no_moves++) {
		txt.len = txt.lines = 0;
		ret = fg_plan(f->own, s, no_moves, &txt, changed);
		if (ret < 0) {
			fg_err_set(err, -ret, "out of memory planning revision %" PRId64, rev);
			break;
		}
		ret = fg_text_add(&txt, "{\"op\":\"store_revision\",\"revision\":%" PRId64 "}", rev);
		if (ret == 0)
			ret = fg_commit_lines(f, &txt, err);
		/* A tenant short of room while moves are still to leave it: the
		 * same change without moves cannot be short. */
		if (ret != -ENOSPC)
			break;
	}
	free(txt.buf);
	if (ret == 0)
		f->transactions++;
	else
		fg_err_prefix(err, "store revision %" PRId64 " cannot be applied: ", rev);
	return ret;
}

/* ---- listing the prefix --------------------------------------------------------------- */

struct fg_list_ctx {
	struct fg_follower *f;
	struct fg_chgset *s;
	struct fg_err *err;
};

static int
fg_list_one(void *ctx, const struct fg_etcd_kv *kv)
{
	struct fg_list_ctx *l = ctx;

	return fg_chgset_add(l->s, l->f->prefix, kv->key, kv->key_len, kv->value, kv->value_len,
			     l->err);
}

/* Every table entry the listing lacks: a change to absent. */
static int
fg_add_absent(struct fg_follower *f, struct fg_chgset *s, struct fg_err *err)
{
	const struct fg_tables *t = fg_ownership_tables(f->own);
	const void *key;
	void *data;
	uint32_t next;
	size_t listed = s->n;
	struct {
		const struct rte_hash *h;
		enum fg_store_kind kind;
	} tabs[] = { { t->tenants, FG_SK_TENANT }, { t->sinks, FG_SK_SINK },
		     { t->devices, FG_SK_DEVICE }, { t->tenants, FG_SK_SUSPENDED } };

	for (size_t k = 0; k < RTE_DIM(tabs); k++) {
		next = 0;
		while (rte_hash_iterate(tabs[k].h, &key, &data, &next) >= 0) {
			uint64_t id;
			struct fg_chg *c;

			if (tabs[k].kind == FG_SK_TENANT || tabs[k].kind == FG_SK_SUSPENDED) {
				const struct fg_tenant *e = data;

				if (tabs[k].kind == FG_SK_SUSPENDED && !e->suspended)
					continue;
				id = e->tenant_id;
			} else if (tabs[k].kind == FG_SK_SINK) {
				id = ((const struct fg_sink *)data)->sink_id;
			} else {
				id = ((const struct fg_device *)data)->device_id;
			}
			/* The listing part is sorted: look there only. */
			struct fg_chgset listed_part = { .c = s->c, .n = listed };

			if (fg_chgset_find(&listed_part, tabs[k].kind, id) != NULL)
				continue;
			c = fg_chgset_push(s);
			if (c == NULL)
				return fg_err_set(err, ENOMEM, "out of memory for the store's changes");
			c->kind = tabs[k].kind;
			c->id = id;
		}
	}
	fg_chgset_last(s);
	return 0;
}

/* An order-free digest of entries: the sum of a 64-bit hash of each. */
static uint64_t
fg_mix(const void *p, size_t len, uint32_t kind)
{
	/* SipHash (libsodium) over the bytes: read as bytes, so no aliasing
	 * question arises for the caller's struct. */
	unsigned char key[crypto_shorthash_KEYBYTES] = "framegate-store";
	uint64_t out;

	key[0] ^= (unsigned char)kind;
	crypto_shorthash((unsigned char *)&out, p, len, key);
	return out;
}

struct fg_canon {              /* what an entry's digest covers */
	uint64_t id;
	uint32_t tenant, epoch, max_devices, n;
	uint64_t rate, burst;
	uint8_t key[FG_AUTH_KEY_LEN], addr[16];
	uint32_t sinks[FG_MAX_SINKS];
	uint16_t port, egress;
	uint8_t has_key, family;
	char name[FG_TENANT_NAME_MAX];
};

static uint64_t
fg_digest_chg(const struct fg_chg *c)
{
	struct fg_canon k;

	memset(&k, 0, sizeof(k));
	k.id = c->id;
	if (c->kind == FG_SK_TENANT) {
		snprintf(k.name, sizeof(k.name), "%s", c->op.name);
		k.max_devices = c->op.tenant.max_devices;
		k.rate = c->op.tenant.rate_pps;
		k.burst = c->op.tenant.burst;
	} else if (c->kind == FG_SK_SINK) {
		k.tenant = c->op.sink.tenant_id;
		k.family = c->op.sink.family;
		memcpy(k.addr, c->op.sink.addr, c->op.sink.family == AF_INET ? 4 : 16);
		k.port = c->op.sink.port;
		k.egress = c->op.sink.egress;
	} else if (c->kind == FG_SK_DEVICE) {
		const struct fg_device_spec *d = &c->op.device;

		k.tenant = d->tenant_id;
		k.epoch = d->epoch;
		k.has_key = d->has_key;
		if (d->has_key)
			memcpy(k.key, d->key, FG_AUTH_KEY_LEN);
		k.n = d->n_sinks;
		memcpy(k.sinks, d->sinks, d->n_sinks * sizeof(uint32_t));
	}
	return fg_mix(&k, sizeof(k), c->kind);
}

static uint64_t
fg_digest_tables(const struct fg_ownership *own, uint64_t *entries)
{
	const struct fg_tables *t = fg_ownership_tables(own);
	uint64_t sum = 0, n = 0;
	const void *key;
	void *data;
	uint32_t next = 0;
	struct fg_canon k;

	while (rte_hash_iterate(t->tenants, &key, &data, &next) >= 0) {
		const struct fg_tenant *e = data;

		memset(&k, 0, sizeof(k));
		k.id = e->tenant_id;
		snprintf(k.name, sizeof(k.name), "%s", e->name);
		k.max_devices = e->max_devices;
		k.rate = e->rate_pps;
		k.burst = e->burst;
		sum += fg_mix(&k, sizeof(k), FG_SK_TENANT);
		n++;
		if (e->suspended) {
			memset(&k, 0, sizeof(k));
			k.id = e->tenant_id;
			sum += fg_mix(&k, sizeof(k), FG_SK_SUSPENDED);
			n++;
		}
	}
	next = 0;
	while (rte_hash_iterate(t->sinks, &key, &data, &next) >= 0) {
		const struct fg_sink *e = data;

		memset(&k, 0, sizeof(k));
		k.id = e->sink_id;
		k.tenant = e->tenant_id;
		k.family = e->family;
		memcpy(k.addr, e->addr, e->family == AF_INET ? 4 : 16);
		k.port = e->port;
		k.egress = e->egress;
		sum += fg_mix(&k, sizeof(k), FG_SK_SINK);
		n++;
	}
	next = 0;
	while (rte_hash_iterate(t->devices, &key, &data, &next) >= 0) {
		const struct fg_device *e = data;

		memset(&k, 0, sizeof(k));
		k.id = e->device_id;
		k.tenant = e->tenant_id;
		k.epoch = e->epoch;
		k.has_key = e->has_key;
		if (e->has_key)
			memcpy(k.key, e->key, FG_AUTH_KEY_LEN);
		k.n = e->n_sinks;
		for (unsigned int i = 0; i < e->n_sinks; i++)
			k.sinks[i] = e->sinks[i]->sink_id;
		sum += fg_mix(&k, sizeof(k), FG_SK_DEVICE);
		n++;
	}
	*entries = n;
	return sum;
}

/*
 * List the prefix at rev (0: the latest) and take the tables there. For a
 * reconcile (at the enforced revision), compare digests first and count
 * the entries that differ as drift. 0 or -errno (-ESTALE: rev compacted).
 */
static int
fg_resync(struct fg_follower *f, int64_t rev, bool reconcile, struct fg_err *err)
{
	struct fg_chgset s = { 0 };
	struct fg_list_ctx l = { .f = f, .s = &s, .err = err };
	uint64_t t0 = fg_now_ms(), store_digest = 0, table_digest, n_table;
	size_t changed = 0;
	int64_t at = 0;
	int ret;

	ret = fg_etcd_range(f->req, f->prefix, f->end, rev, 0, fg_list_one, &l, &at, err);
	if (ret < 0)
		goto out;
	for (size_t i = 0; i < s.n; i++)
		store_digest += fg_digest_chg(&s.c[i]);
	table_digest = fg_digest_tables(f->own, &n_table);
	if (reconcile) {
		f->reconciles++;
		f->reconcile_rev = at;
		f->reconcile_at_ms = fg_now_ms();
		if (store_digest == table_digest && (uint64_t)s.n == n_table) {
			f->drift_last = 0;
			goto out;
		}
	}
	fg_chgset_last(&s);
	ret = fg_add_absent(f, &s, err);
	if (ret < 0)
		goto out;
	ret = fg_apply_set(f, &s, at, &changed, err);
	if (ret < 0)
		goto out;
	if (reconcile) {
		f->drift_last = changed;
		f->drift_found += changed;
		fprintf(stderr, "framegate: ALARM: store reconcile at revision %" PRId64 ": %zu entries of the tables differed from the store (digest %016" PRIx64 " against %016" PRIx64 "); repaired\n",
			at, changed, table_digest, store_digest);
	} else {
		f->resyncs++;
		fprintf(stderr, "framegate: store: listed %zu keys at revision %" PRId64 ", %zu changed, in %.3f s\n",
			s.n, at, changed, (double)(fg_now_ms() - t0) / 1000);
	}
out:
	for (size_t i = 0; i < s.n; i++)
		free(s.c[i].line);
	free(s.c);
	return ret;
}

/* ---- the watch ---------------------------------------------------------------------------- */

static int
fg_on_revision(void *ctx, int64_t revision, const struct fg_etcd_event *ev, size_t n)
{
	struct fg_follower *f = ctx;
	struct fg_err err = { 0 };

	for (size_t i = 0; i < n; i++) {
		const struct fg_etcd_kv *kv = &ev[i].kv;
		int ret = fg_chgset_add(&f->pending, f->prefix, kv->key, kv->key_len,
					ev[i].is_delete ? NULL : kv->value, kv->value_len, &err);

		if (ret < 0) {
			snprintf(f->last_error, sizeof(f->last_error), "%s", err.msg);
			f->pending_bad = true;
			return ret;
		}
	}
	f->events += n;
	f->pending_rev = revision;
	return 0;
}

static void
fg_backoff(struct fg_follower *f, const char *what, const struct fg_err *err)
{
	uint64_t cap = f->cfg.backoff_min_ms, jitter = 0;

	for (unsigned int i = 0; i < f->failures && cap < f->cfg.backoff_max_ms; i++)
		cap *= 2;
	if (cap > f->cfg.backoff_max_ms)
		cap = f->cfg.backoff_max_ms;
	/* Full jitter: anywhere in [cap/2, cap], so that routers that lost the
	 * store together do not come back together. */
	if (getrandom(&jitter, sizeof(jitter), GRND_NONBLOCK) != (ssize_t)sizeof(jitter))
		jitter = fg_now_ms() * 2654435761u;
	f->retry_at_ms = fg_now_ms() + cap / 2 + jitter % (cap / 2 + 1);
	f->failures++;
	f->state = FG_F_BACKOFF;
	snprintf(f->last_error, sizeof(f->last_error), "%s: %s", what, err->msg);
	fprintf(stderr, "framegate: store: %s: %s; retrying in %.1f s\n", what, err->msg,
		(double)(f->retry_at_ms - fg_now_ms()) / 1000);
	fg_etcd_watch_stop(f->watch);
	fg_chgset_clear(&f->pending);
}

static void
fg_watch_from(struct fg_follower *f, int64_t from)
{
	struct fg_err err = { 0 };

	if (fg_etcd_watch_start(f->watch, f->prefix, f->end, from, &err) < 0) {
		fg_backoff(f, "cannot watch", &err);
		return;
	}
	f->state = FG_F_WATCH;
}

static void
fg_watch_poll(struct fg_follower *f)
{
	struct fg_err err = { 0 };
	int64_t compact = 0, progress = 0;
	size_t changed = 0;
	int ret;

	f->pending_bad = false;
	ret = fg_etcd_watch_poll(f->watch, 0, fg_on_revision, f, &compact, &progress, &err);
	if (f->pending_bad) {
		/* A revision in part: nothing of it is applied. */
		fprintf(stderr, "framegate: ALARM: store: %s; staying at revision %" PRId64 "\n",
			f->last_error, fg_ownership_store_revision(f->own));
		fg_err_set(&err, EPROTO, "%s", f->last_error);
		fg_backoff(f, "undecodable store value", &err);
		return;
	}
	if (f->pending.n > 0 || (ret > 0 && f->pending_rev > fg_ownership_store_revision(f->own))) {
		int64_t rev = f->pending_rev;
		int aret;

		fg_chgset_last(&f->pending);
		aret = fg_apply_set(f, &f->pending, rev, &changed, &err);
		fg_chgset_clear(&f->pending);
		if (aret < 0) {
			/* The store holds what the actions refuse (written around
			 * fgctl): stay at the last good revision and say so. */
			fprintf(stderr, "framegate: ALARM: %s; staying at revision %" PRId64 "\n",
				err.msg, fg_ownership_store_revision(f->own));
			fg_backoff(f, "apply", &err);
			f->state = FG_F_BACKOFF;
			return;
		}
		f->failures = 0;
	}
	if (ret == -ESTALE) {
		fprintf(stderr, "framegate: store: revision %" PRId64 " was compacted (at %" PRId64 "); listing again\n",
			fg_ownership_store_revision(f->own) + 1, compact);
		f->state = FG_F_RESYNC;
	} else if (ret < 0) {
		fg_backoff(f, "watch ended", &err);
	}
}

/* Freshness: is there a change under the prefix above the enforced revision? */
static void
fg_probe(struct fg_follower *f, uint64_t now)
{
	char k[FG_STORE_KEY_MAX];
	struct fg_etcd_kv kv;
	struct fg_err err = { 0 };
	int64_t hdr = 0;
	int ret;

	f->next_probe_ms = now + f->cfg.probe_ms;
	fg_store_key(k, f->prefix, FG_SK_SEQ, 0);
	ret = fg_etcd_get(f->req, k, &kv, &hdr, &err);
	if (ret < 0) {
		snprintf(f->last_error, sizeof(f->last_error), "freshness probe: %s", err.msg);
		return;
	}
	f->store_rev = hdr;
	f->last_change = ret == 1 ? kv.mod_revision : 0;
	if (f->state == FG_F_WATCH && f->last_change <= fg_ownership_store_revision(f->own))
		f->confirmed_ms = fg_now_ms();
}

static void
fg_stale_update(struct fg_follower *f, uint64_t now)
{
	bool stale = f->confirmed_ms == 0 || now - f->confirmed_ms > f->cfg.stale_bound_ms;

	if (stale != f->stale) {
		f->stale = stale;
		if (f->cfg.stale_closed)
			fprintf(stderr, "framegate: store: %s (stale_policy closed)\n",
				stale ? "freshness not confirmed within the bound: forwarding stops"
				      : "fresh again: forwarding resumes");
	}
	if (f->closed != NULL)
		__atomic_store_n(f->closed, (uint32_t)(f->cfg.stale_closed && stale), __ATOMIC_RELEASE);
}

void
fg_follower_poll(struct fg_follower *f)
{
	uint64_t now = fg_now_ms();
	struct fg_err err = { 0 };
	int ret;

	if (f->state == FG_F_BACKOFF && now >= f->retry_at_ms) {
		int64_t r = fg_ownership_store_revision(f->own);

		/* Resume the watch where the tables are; a compacted revision
		 * comes back as -ESTALE and a listing. */
		if (r > 0)
			fg_watch_from(f, r + 1);
		else
			f->state = FG_F_RESYNC;
	}
	if (f->state == FG_F_RESYNC) {
		ret = fg_resync(f, 0, false, &err);
		if (ret < 0) {
			fg_backoff(f, "listing the store", &err);
		} else {
			f->failures = 0;
			fg_watch_from(f, fg_ownership_store_revision(f->own) + 1);
		}
	}
	if (f->state == FG_F_WATCH)
		fg_watch_poll(f);
	now = fg_now_ms();
	if (f->state == FG_F_WATCH &&
	    (f->reconcile_asked || (f->cfg.reconcile_ms && now >= f->next_reconcile_ms))) {
		f->next_reconcile_ms = now + f->cfg.reconcile_ms;
		f->reconcile_asked = false;
		ret = fg_resync(f, fg_ownership_store_revision(f->own), true, &err);
		if (ret == -ESTALE)
			ret = fg_resync(f, 0, true, &err);   /* compacted: reconcile at the latest */
		if (ret < 0)
			snprintf(f->last_error, sizeof(f->last_error), "reconcile: %s", err.msg);
	}
	if (now >= f->next_probe_ms)
		fg_probe(f, now);
	fg_stale_update(f, fg_now_ms());
}

void
fg_follower_set_audit(struct fg_follower *f, struct fg_audit *a)
{
	f->audit = a;
}

void
fg_follower_reconcile_soon(struct fg_follower *f)
{
	f->reconcile_asked = true;
}

struct fg_follower *
fg_follower_create(const struct fg_follower_config *cfg, struct fg_ownership *own,
		   struct fg_journal *journal, uint32_t *closed, struct fg_err *err)
{
	struct fg_follower *f;
	struct fg_etcd_opts eo;

	if (fg_store_prefix_check(cfg->prefix, err) < 0)
		return NULL;
	f = calloc(1, sizeof(*f));
	if (f == NULL) {
		fg_err_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	f->cfg = *cfg;
	snprintf(f->endpoints, sizeof(f->endpoints), "%s", cfg->endpoints);
	snprintf(f->prefix, sizeof(f->prefix), "%s", cfg->prefix);
	f->cfg.endpoints = f->endpoints;
	f->cfg.prefix = f->prefix;
	if (f->cfg.probe_ms == 0)
		f->cfg.probe_ms = 500;
	if (f->cfg.stale_bound_ms == 0)
		f->cfg.stale_bound_ms = 5000;
	if (f->cfg.backoff_min_ms == 0)
		f->cfg.backoff_min_ms = 100;
	if (f->cfg.backoff_max_ms < f->cfg.backoff_min_ms)
		f->cfg.backoff_max_ms = f->cfg.backoff_min_ms * 300;
	fg_etcd_prefix_end(f->prefix, f->end);
	/* The watch over gRPC (unless told otherwise); listings and probes
	 * through the gateway. */
	eo = (struct fg_etcd_opts){ .endpoints = f->endpoints, .timeout_ms = cfg->timeout_ms,
				    .grpc = !cfg->gateway };
	f->watch = fg_etcd_open(&eo, err);
	eo.grpc = false;
	f->req = f->watch ? fg_etcd_open(&eo, err) : NULL;
	if (f->req == NULL) {
		fg_follower_free(f);
		return NULL;
	}
	f->own = own;
	f->journal = journal;
	f->closed = closed;
	f->next_reconcile_ms = fg_now_ms() + f->cfg.reconcile_ms;
	/* Resume from the journaled revision, or list from nothing. */
	if (fg_ownership_store_revision(own) > 0)
		fg_watch_from(f, fg_ownership_store_revision(own) + 1);
	else
		f->state = FG_F_RESYNC;
	fg_stale_update(f, fg_now_ms());
	return f;
}

void
fg_follower_free(struct fg_follower *f)
{
	if (f == NULL)
		return;
	fg_chgset_free(&f->pending);
	if (f->watch)
		fg_etcd_watch_stop(f->watch);
	fg_etcd_close(f->watch);
	fg_etcd_close(f->req);
	free(f);
}

static const char *
fg_state_name(enum fg_fstate s)
{
	switch (s) {
	case FG_F_RESYNC: return "listing";
	case FG_F_WATCH: return "watching";
	case FG_F_BACKOFF: return "backing off";
	default: return "broken";
	}
}

void
fg_follower_lag(const struct fg_follower *f, int64_t *enforced, int64_t *store_rev,
		double *since_sync_s)
{
	*enforced = fg_ownership_store_revision(f->own);
	*store_rev = f->store_rev;
	*since_sync_s = f->confirmed_ms ? (double)(fg_now_ms() - f->confirmed_ms) / 1000 : -1;
}

void
fg_follower_health(const struct fg_follower *f, json_t *res)
{
	int64_t enforced = fg_ownership_store_revision(f->own);
	json_t *st = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:I, s:I, s:I}",
		"endpoints", f->endpoints, "prefix", f->prefix, "state", fg_state_name(f->state),
		"revision_enforced", (json_int_t)enforced,
		"store_revision", (json_int_t)f->store_rev,
		"last_change_revision", (json_int_t)f->last_change,
		"lag_revisions", (json_int_t)(f->last_change > enforced ? f->last_change - enforced : 0),
		"stale_policy", f->cfg.stale_closed ? "closed" : "open",
		"stale_bound_ms", (json_int_t)f->cfg.stale_bound_ms,
		"resyncs", (json_int_t)f->resyncs, "transactions", (json_int_t)f->transactions);

	json_object_set_new(st, "seconds_since_sync", f->confirmed_ms
		? json_real((double)(fg_now_ms() - f->confirmed_ms) / 1000) : json_null());
	json_object_set_new(st, "stale", json_boolean(f->stale));
	json_object_set_new(st, "forwarding_stopped",
			    json_boolean(f->cfg.stale_closed && f->stale));
	json_object_set_new(st, "reconcile", json_pack("{s:I, s:I, s:I, s:I, s:I}",
		"period_ms", (json_int_t)f->cfg.reconcile_ms, "runs", (json_int_t)f->reconciles,
		"last_revision", (json_int_t)f->reconcile_rev,
		"drift_last", (json_int_t)f->drift_last, "drift_total", (json_int_t)f->drift_found));
	if (f->last_error[0])
		json_object_set_new(st, "last_error", json_string(f->last_error));
	json_object_set_new(res, "store", st);
	if (f->stale || f->state != FG_F_WATCH)
		json_object_set_new(res, "status", json_string(f->cfg.stale_closed && f->stale
							       ? "stale" : "degraded"));
}
