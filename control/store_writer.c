/*
 * The store's key layout and its writer (see store.h, docs/store.md).
 *
 * One write's path: decode the op lines (fg_op_parse) -> check each op, in
 * order, against a cache of the keys it reads (read from etcd on first use
 * and kept by the writer, or from one listing of the whole prefix) and
 * record what it changes there -> one etcd transaction: compares on every
 * key read (mod_revision as known, or "absent"), then the puts and deletes,
 * and P seq -> on a failed compare (someone wrote in between) forget the
 * cache, read again and retry.
 */
#define _GNU_SOURCE             /* tdestroy */
#include <errno.h>
#include <inttypes.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <arpa/inet.h>

#include "etcd.h"
#include "mapfile.h"
#include "store.h"

#define FG_STORE_RETRIES 20

static const char *const fg_sk_path[] = {
	[FG_SK_TENANT] = "tenant/",
	[FG_SK_SUSPENDED] = "suspended/",
	[FG_SK_SINK] = "sink/",
	[FG_SK_DEVICE] = "device/",
	[FG_SK_USE_TENANT] = "use/tenant/",
	[FG_SK_USE_SINK] = "use/sink/",
	[FG_SK_SEQ] = "seq",
};

void
fg_store_key(char out[FG_STORE_KEY_MAX], const char *prefix, enum fg_store_kind kind,
	     uint64_t id)
{
	if (kind == FG_SK_SEQ)
		snprintf(out, FG_STORE_KEY_MAX, "%sseq", prefix);
	else if (kind == FG_SK_DEVICE)
		snprintf(out, FG_STORE_KEY_MAX, "%sdevice/%016" PRIx64, prefix, id);
	else
		snprintf(out, FG_STORE_KEY_MAX, "%s%s%" PRIu64, prefix, fg_sk_path[kind], id);
}

enum fg_store_kind
fg_store_key_parse(const char *prefix, const char *key, size_t len, uint64_t *id)
{
	size_t pl = strlen(prefix);
	char buf[FG_STORE_KEY_MAX];

	*id = 0;
	if (len <= pl || len >= sizeof(buf) || memcmp(key, prefix, pl) != 0)
		return FG_SK_OTHER;
	memcpy(buf, key + pl, len - pl);
	buf[len - pl] = '\0';
	if (strcmp(buf, "seq") == 0)
		return FG_SK_SEQ;
	for (int k = FG_SK_TENANT; k <= FG_SK_USE_SINK; k++) {
		size_t kl = strlen(fg_sk_path[k]);
		const char *num = buf + kl;
		char *end;

		if (strncmp(buf, fg_sk_path[k], kl) != 0 || *num == '\0' ||
		    (num[0] == '0' && k != FG_SK_DEVICE))
			continue;
		if (k == FG_SK_DEVICE && strlen(num) != 16)
			return FG_SK_OTHER;
		errno = 0;
		*id = strtoull(num, &end, k == FG_SK_DEVICE ? 16 : 10);
		if (errno || *end != '\0' || *id == 0 ||
		    (k != FG_SK_DEVICE && *id > UINT32_MAX))
			return FG_SK_OTHER;
		return (enum fg_store_kind)k;
	}
	return FG_SK_OTHER;
}

int
fg_store_prefix_check(const char *prefix, struct fg_err *err)
{
	size_t n = strlen(prefix);

	if (n < 1 || prefix[0] != '/' || prefix[n - 1] != '/')
		return fg_err_set(err, EINVAL, "store prefix \"%s\" must start and end with '/'", prefix);
	if (n > FG_STORE_PREFIX_MAX)
		return fg_err_set(err, EINVAL, "store prefix \"%s\" is longer than %d bytes", prefix,
				  FG_STORE_PREFIX_MAX);
	for (size_t i = 0; i < n; i++)
		if (prefix[i] <= ' ' || prefix[i] > '~')
			return fg_err_set(err, EINVAL, "store prefix \"%s\": byte %zu is not printable ASCII",
					  prefix, i + 1);
	return 0;
}

/* ---- a cache of the keys a write reads --------------------------------------- */

struct fg_kv {
	char key[FG_STORE_KEY_MAX];     /* first: a struct fg_kv * is its key */
	json_t *sval;           /* as the store holds it at mod (NULL: absent) */
	int64_t mod;            /* mod_revision of sval */
	bool present;           /* sval's key exists at mod */
	json_t *val;            /* this attempt's value (NULL: absent) */
	bool used;              /* read by this attempt: compared in its txn */
	uint64_t gen;           /* the call that read it from etcd */
	bool dirty;             /* changed by this attempt */
	bool pending;           /* not read yet: absent until the round's reads */
};

/* The keys a writer knows, in a glibc search tree (tsearch) keyed by the
 * key string: hsearch's hash sees only a few bytes of a key, and every key
 * here starts with the same prefix (a chain per prefix: quadratic).
 *
 * The cache outlives a write: a writer that goes on writing (load, the
 * bench's writers) reads a key once, and after that sends one request per
 * write, its transaction. That is safe because every key a write reads is
 * compared in its transaction (mod_revision as known, or "absent"): a key
 * that changed since fails the compare, and the write flushes the cache and
 * runs again on fresh reads. A refusal, or a write that changes nothing,
 * is only reported when every key it read was read by this call. */
struct fg_cache {
	void *root;
	struct fg_kv **e;       /* every entry */
	size_t n, cap;
	struct fg_kv **u;       /* the entries this attempt read */
	size_t n_u, cap_u;
	uint64_t gen;           /* this call's number */
	struct fg_kv **want;    /* pending: read together after the round */
	size_t n_want, cap_want;
	bool collect;           /* a miss is pending, not read on the spot */
	bool whole;             /* every key of the prefix is in the cache */
	bool stale_used;        /* this attempt read an entry not read by this call */
};

#define FG_CACHE_MAX 262144     /* entries a writer keeps between writes */
#define FG_ROUNDS 8             /* rounds of reads for one write */

/* A write whose outcome is unknown: its transaction may have landed (the
 * request timed out or its connection broke, or it was re-sent to another
 * member and the re-send's compares failed, perhaps on the first attempt's
 * own changes). Kept until the same write (the same op lines) is tried
 * again, which first reads whether the store holds exactly what it meant
 * to write; then it has landed, once. */
struct fg_pending {
	char *sig;              /* the write's op lines, joined; NULL: none */
	size_t n;
	char **keys, **vals;    /* vals[i] NULL: deleted */
};

struct fg_store_writer {
	struct fg_etcd *etcd;
	char prefix[FG_STORE_PREFIX_MAX + 1];
	struct fg_cache c;
	struct fg_pending pend;
};

static void
fg_pending_clear(struct fg_pending *p)
{
	for (size_t i = 0; i < p->n; i++) {
		free(p->keys[i]);
		free(p->vals[i]);
	}
	free(p->keys);
	free(p->vals);
	free(p->sig);
	memset(p, 0, sizeof(*p));
}

/* Remember the txn's writes (but seq's, which others rewrite). */
static void
fg_pending_set(struct fg_pending *p, const char *sig, const struct fg_etcd_op *ops, size_t n,
	       const char *seq_key)
{
	fg_pending_clear(p);
	p->keys = calloc(n ? n : 1, sizeof(*p->keys));
	p->vals = calloc(n ? n : 1, sizeof(*p->vals));
	p->sig = strdup(sig);
	if (p->keys == NULL || p->vals == NULL || p->sig == NULL) {
		fg_pending_clear(p);    /* cannot tell later: a plain retry */
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (strcmp(ops[i].key, seq_key) == 0)
			continue;
		p->keys[p->n] = strdup(ops[i].key);
		p->vals[p->n] = ops[i].type == FG_ETCD_PUT ? strdup(ops[i].value) : NULL;
		if (p->keys[p->n] == NULL || (ops[i].type == FG_ETCD_PUT && p->vals[p->n] == NULL)) {
			fg_pending_clear(p);
			return;
		}
		p->n++;
	}
}

struct fg_pending_ctx {
	const struct fg_pending *p;
	bool same;
	int64_t rev;
};

static int
fg_pending_cmp(void *ctx, size_t i, const struct fg_etcd_kv *kv)
{
	struct fg_pending_ctx *x = ctx;
	const char *want = x->p->vals[i];

	if (kv == NULL ? want != NULL
		       : want == NULL || kv->value_len != strlen(want) ||
			 memcmp(kv->value, want, kv->value_len) != 0)
		x->same = false;
	if (kv != NULL && kv->mod_revision > x->rev)
		x->rev = kv->mod_revision;
	return 0;
}

/* 1: the store holds what the pending write meant (its revision in *rev,
 * the newest of its keys'); 0: it does not (or nothing is pending for this
 * write); -errno. The pending write is forgotten either way. */
static int
fg_pending_landed(struct fg_store_writer *w, const char *sig, int64_t *rev, struct fg_err *err)
{
	struct fg_pending_ctx x = { .p = &w->pend, .same = true };
	int ret;

	if (w->pend.sig == NULL || strcmp(w->pend.sig, sig) != 0 || w->pend.n == 0) {
		fg_pending_clear(&w->pend);
		return 0;
	}
	ret = fg_etcd_get_many(w->etcd, (const char *const *)w->pend.keys, w->pend.n,
			       fg_pending_cmp, &x, err);
	fg_pending_clear(&w->pend);
	if (ret < 0)
		return ret;
	if (x.same && rev != NULL)
		*rev = x.rev;
	return x.same ? 1 : 0;
}

static void
fg_tree_node_free(void *p)
{
	(void)p;                /* the entries are freed with c->e */
}

static int
fg_key_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void
fg_cache_free(struct fg_cache *c)
{
	for (size_t i = 0; i < c->n; i++) {
		json_decref(c->e[i]->val);
		json_decref(c->e[i]->sval);
		free(c->e[i]);
	}
	free(c->e);
	free(c->u);
	free(c->want);
	tdestroy(c->root, fg_tree_node_free);
	memset(c, 0, sizeof(*c));
}

static int
fg_grow(void *pp, size_t *cap, size_t need, size_t elem)
{
	void **p = pp;
	size_t n = *cap ? *cap : 64;
	void *q;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	q = realloc(*p, n * elem);
	if (q == NULL)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

static struct fg_kv *
fg_cache_find(struct fg_cache *c, const char *key)
{
	void *const *r = tfind(key, &c->root, fg_key_cmp);

	return r != NULL ? *r : NULL;
}

static struct fg_kv *
fg_cache_add(struct fg_cache *c, const char *key)
{
	struct fg_kv *kv;

	if (fg_grow(&c->e, &c->cap, c->n + 1, sizeof(*c->e)) < 0)
		return NULL;
	kv = calloc(1, sizeof(*kv));
	if (kv == NULL)
		return NULL;
	snprintf(kv->key, sizeof(kv->key), "%s", key);
	if (tsearch(kv, &c->root, fg_key_cmp) == NULL) {
		free(kv);
		return NULL;
	}
	c->e[c->n++] = kv;
	return kv;
}

/* Mark kv read by this attempt. */
static int
fg_cache_use(struct fg_cache *c, struct fg_kv *kv)
{
	if (kv->used)
		return 0;
	if (fg_grow(&c->u, &c->cap_u, c->n_u + 1, sizeof(*c->u)) < 0)
		return -ENOMEM;
	kv->used = true;
	c->u[c->n_u++] = kv;
	if (kv->gen != c->gen && !c->whole)
		c->stale_used = true;
	return 0;
}

/* Start an attempt: what the last one changed goes back to the store's
 * value. A new call (fresh_call) also forgets which entries it read. */
static void
fg_cache_begin(struct fg_cache *c, bool fresh_call)
{
	for (size_t i = 0; i < c->n_u; i++) {
		struct fg_kv *kv = c->u[i];

		json_decref(kv->val);
		kv->val = json_incref(kv->sval);
		kv->used = kv->dirty = false;
	}
	c->n_u = 0;
	c->stale_used = false;
	if (fresh_call)
		c->gen++;
}

/* kv as the store holds it (ekv: present). */
static int
fg_cache_fill(struct fg_kv *kv, const struct fg_etcd_kv *ekv, struct fg_err *err)
{
	json_error_t je;

	kv->present = true;
	kv->mod = ekv->mod_revision;
	kv->sval = json_loadb(ekv->value, ekv->value_len, 0, &je);
	if (kv->sval == NULL)
		return fg_err_set(err, EPROTO, "store key %s does not hold JSON: %s", kv->key, je.text);
	json_decref(kv->val);
	kv->val = json_incref(kv->sval);
	return 0;
}

struct fg_want_ctx {
	struct fg_cache *c;
	struct fg_err *err;
};

static int
fg_want_fill(void *ctx, size_t i, const struct fg_etcd_kv *ekv)
{
	struct fg_want_ctx *x = ctx;
	struct fg_kv *kv = x->c->want[i];

	kv->pending = false;
	return ekv != NULL ? fg_cache_fill(kv, ekv, x->err) : 0;
}

/* Read every pending key of the round, in one request per 128 keys. */
static int
fg_read_wanted(struct fg_store_writer *w, struct fg_err *err)
{
	struct fg_want_ctx x = { .c = &w->c, .err = err };
	const char **keys = calloc(w->c.n_want ? w->c.n_want : 1, sizeof(*keys));
	int ret;

	if (keys == NULL)
		return fg_err_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < w->c.n_want; i++)
		keys[i] = w->c.want[i]->key;
	ret = fg_etcd_get_many(w->etcd, keys, w->c.n_want, fg_want_fill, &x, err);
	free(keys);
	w->c.n_want = 0;
	return ret;
}

/* The cached key, read from the store on first use. NULL: error in err. */
static struct fg_kv *
fg_get(struct fg_store_writer *w, enum fg_store_kind kind, uint64_t id, struct fg_err *err)
{
	char key[FG_STORE_KEY_MAX];
	struct fg_etcd_kv ekv;
	struct fg_kv *kv;
	int ret;

	fg_store_key(key, w->prefix, kind, id);
	kv = fg_cache_find(&w->c, key);
	if (kv == NULL) {
		kv = fg_cache_add(&w->c, key);
		if (kv == NULL) {
			fg_err_set(err, ENOMEM, "out of memory for the keys of one write");
			return NULL;
		}
		if (w->c.collect) {
			/* Read with the round's other misses (fg_read_wanted). */
			if (fg_grow(&w->c.want, &w->c.cap_want, w->c.n_want + 1, sizeof(*w->c.want)) < 0) {
				fg_err_set(err, ENOMEM, "out of memory for the keys of one write");
				return NULL;
			}
			kv->pending = true;
			kv->gen = w->c.gen;
			w->c.want[w->c.n_want++] = kv;
		} else if (!w->c.whole) {      /* listed: absent */
			ret = fg_etcd_get(w->etcd, key, &ekv, NULL, err);
			if (ret < 0)
				return NULL;
			kv->gen = w->c.gen;
			if (ret == 1 && fg_cache_fill(kv, &ekv, err) < 0)
				return NULL;
		}
	}
	if (fg_cache_use(&w->c, kv) < 0) {
		fg_err_set(err, ENOMEM, "out of memory for the keys of one write");
		return NULL;
	}
	return kv;
}

static void
fg_set(struct fg_kv *kv, json_t *val)
{
	json_decref(kv->val);
	kv->val = val;
	kv->dirty = true;
}

static json_int_t
fg_num(json_t *o, const char *field)
{
	return json_integer_value(json_object_get(o, field));
}

/* Add delta to a counter field of a use/ key (created when absent). */
static int
fg_use_add(struct fg_store_writer *w, enum fg_store_kind kind, uint64_t id,
	   const char *field, int delta, struct fg_err *err)
{
	struct fg_kv *kv = fg_get(w, kind, id, err);
	json_t *o;

	if (kv == NULL)
		return -err->code;
	o = kv->val ? json_deep_copy(kv->val) : json_object();
	json_object_set_new(o, field, json_integer(fg_num(o, field) + delta));
	fg_set(kv, o);
	return 0;
}

/* ---- canonical values ---------------------------------------------------------- */

static json_t *
fg_tenant_value(const struct fg_op *op)
{
	json_t *o = json_pack("{s:s, s:I}", "op", "tenant", "tenant", (json_int_t)op->tenant.tenant_id);

	if (op->name[0])
		json_object_set_new(o, "name", json_string(op->name));
	if (op->tenant.max_devices)
		json_object_set_new(o, "max_devices", json_integer(op->tenant.max_devices));
	if (op->tenant.rate_pps)
		json_object_set_new(o, "rate_pps", json_integer((json_int_t)op->tenant.rate_pps));
	if (op->tenant.burst)
		json_object_set_new(o, "burst", json_integer((json_int_t)op->tenant.burst));
	return o;
}

static json_t *
fg_sink_value(const struct fg_sink_spec *s)
{
	char addr[INET6_ADDRSTRLEN];

	inet_ntop(s->family, s->addr, addr, sizeof(addr));
	return json_pack("{s:s, s:I, s:I, s:s, s:i, s:i}", "op", "sink",
			 "sink", (json_int_t)s->sink_id, "tenant", (json_int_t)s->tenant_id,
			 "addr", addr, "port", s->port, "egress", s->egress);
}

static json_t *
fg_device_value(uint32_t tenant, uint64_t device, uint32_t epoch, const uint32_t *sinks,
		unsigned int n_sinks, bool has_key, const uint8_t *key)
{
	char dev[24], hex[2 * FG_AUTH_KEY_LEN + 1];
	json_t *a = json_array(), *o;

	snprintf(dev, sizeof(dev), "0x%016" PRIx64, device);
	for (unsigned int i = 0; i < n_sinks; i++)
		json_array_append_new(a, json_integer(sinks[i]));
	o = json_pack("{s:s, s:I, s:s, s:I, s:o}", "op", "device", "tenant", (json_int_t)tenant,
		      "device", dev, "epoch", (json_int_t)epoch, "sinks", a);
	if (has_key) {
		for (int i = 0; i < FG_AUTH_KEY_LEN; i++)
			snprintf(hex + 2 * i, 3, "%02x", key[i]);
		json_object_set_new(o, "key", json_string(hex));
	}
	return o;
}

/* A stored device value, decoded. */
static int
fg_stored_device(const struct fg_kv *kv, struct fg_device_spec *d, struct fg_err *err)
{
	char *s = json_dumps(kv->val, JSON_COMPACT);
	struct fg_op op;
	int ret;

	if (s == NULL)
		return fg_err_set(err, ENOMEM, "out of memory");
	ret = fg_op_parse(s, strlen(s), &op, err);
	free(s);
	if (ret == 0 && op.kind != FG_OP_DEVICE)
		ret = fg_err_set(err, EPROTO, "not a device op");
	if (ret < 0) {
		fg_err_prefix(err, "store key %s: ", kv->key);
		return ret;
	}
	*d = op.device;
	return 0;
}

/* ---- the ops, over the cache ------------------------------------------------- */

/* Every sink exists and is the tenant's (and none is listed twice). */
static int
fg_sinks_check(struct fg_store_writer *w, const char *what, uint64_t device, uint32_t tenant,
	       const uint32_t *sinks, unsigned int n, struct fg_err *err)
{
	for (unsigned int i = 0; i < n; i++) {
		struct fg_kv *kv;

		for (unsigned int j = 0; j < i; j++)
			if (sinks[j] == sinks[i])
				return fg_err_set(err, EINVAL, "%sdevice 0x%016" PRIx64 ": sink %" PRIu32 " is listed twice",
						  what, device, sinks[i]);
		kv = fg_get(w, FG_SK_SINK, sinks[i], err);
		if (kv == NULL)
			return -err->code;
		if (kv->val == NULL)
			return fg_err_set(err, ENOENT, "%sdevice 0x%016" PRIx64 ": sink %" PRIu32 " does not exist",
					  what, device, sinks[i]);
		if ((uint32_t)fg_num(kv->val, "tenant") != tenant)
			return fg_err_set(err, EXDEV, "%sdevice 0x%016" PRIx64 ": sink %" PRIu32 " belongs to tenant %" PRIu32 ", not to tenant %" PRIu32 " (every sink of a mapping must belong to its tenant)",
					  what, device, sinks[i], (uint32_t)fg_num(kv->val, "tenant"), tenant);
	}
	return 0;
}

static int
fg_sink_refs(struct fg_store_writer *w, const uint32_t *sinks, unsigned int n, int delta,
	     struct fg_err *err)
{
	for (unsigned int i = 0; i < n; i++)
		if (fg_use_add(w, FG_SK_USE_SINK, sinks[i], "devices", delta, err) < 0)
			return -err->code;
	return 0;
}

/* Room for one more mapping in the tenant (its max_devices). */
static int
fg_room(struct fg_store_writer *w, const char *what, uint64_t device, struct fg_kv *tenant,
	uint32_t tenant_id, struct fg_err *err)
{
	json_int_t max = fg_num(tenant->val, "max_devices");
	struct fg_kv *use;

	if (max == 0)
		return 0;
	use = fg_get(w, FG_SK_USE_TENANT, tenant_id, err);
	if (use == NULL)
		return -err->code;
	if (use->val != NULL && fg_num(use->val, "devices") >= max)
		return fg_err_set(err, ENOSPC, "%sdevice 0x%016" PRIx64 ": tenant %" PRIu32 " already holds its max_devices (%" PRIu32 ") mappings",
				  what, device, tenant_id, (uint32_t)max);
	return 0;
}

static struct fg_kv *
fg_tenant_get(struct fg_store_writer *w, uint32_t id, struct fg_err *err)
{
	struct fg_kv *kv = fg_get(w, FG_SK_TENANT, id, err);

	if (kv != NULL && kv->val == NULL) {
		fg_err_set(err, ENOENT, "tenant %" PRIu32 " does not exist", id);
		return NULL;
	}
	return kv;
}

static int
fg_do_op(struct fg_store_writer *w, const struct fg_op *op, struct fg_err *err)
{
	struct fg_kv *kv, *t;
	struct fg_device_spec cur;

	switch (op->kind) {
	case FG_OP_TENANT:
		if ((kv = fg_get(w, FG_SK_TENANT, op->tenant.tenant_id, err)) == NULL)
			return -err->code;
		if (kv->val != NULL)
			return fg_err_set(err, EEXIST, "tenant %" PRIu32 " already exists", op->tenant.tenant_id);
		fg_set(kv, fg_tenant_value(op));
		if ((kv = fg_get(w, FG_SK_USE_TENANT, op->tenant.tenant_id, err)) == NULL)
			return -err->code;
		fg_set(kv, json_pack("{s:i, s:i}", "devices", 0, "sinks", 0));
		return 0;
	case FG_OP_SUSPEND:
	case FG_OP_RESUME:
		if (fg_tenant_get(w, op->id, err) == NULL ||
		    (kv = fg_get(w, FG_SK_SUSPENDED, op->id, err)) == NULL)
			return -err->code;
		if ((kv->val != NULL) != (op->kind == FG_OP_SUSPEND))
			fg_set(kv, op->kind == FG_OP_SUSPEND
				   ? json_pack("{s:s, s:I}", "op", "suspend", "tenant", (json_int_t)op->id)
				   : NULL);
		return 0;
	case FG_OP_DEL_TENANT:
		if ((t = fg_tenant_get(w, op->id, err)) == NULL ||
		    (kv = fg_get(w, FG_SK_USE_TENANT, op->id, err)) == NULL)
			return -err->code;
		if (kv->val != NULL && (fg_num(kv->val, "devices") || fg_num(kv->val, "sinks")))
			return fg_err_set(err, EBUSY, "tenant %" PRIu32 " is in use: it still holds %" PRIu32 " devices and %" PRIu32 " sinks",
					  op->id, (uint32_t)fg_num(kv->val, "devices"),
					  (uint32_t)fg_num(kv->val, "sinks"));
		fg_set(kv, NULL);
		fg_set(t, NULL);
		if ((kv = fg_get(w, FG_SK_SUSPENDED, op->id, err)) == NULL)
			return -err->code;
		if (kv->val != NULL)
			fg_set(kv, NULL);
		return 0;
	case FG_OP_SINK:
		if ((kv = fg_get(w, FG_SK_SINK, op->sink.sink_id, err)) == NULL)
			return -err->code;
		if (kv->val != NULL)
			return fg_err_set(err, EEXIST, "sink %" PRIu32 " already exists (owned by tenant %" PRIu32 ")",
					  op->sink.sink_id, (uint32_t)fg_num(kv->val, "tenant"));
		if (fg_tenant_get(w, op->sink.tenant_id, err) == NULL) {
			fg_err_prefix(err, "sink %" PRIu32 ": ", op->sink.sink_id);
			return -err->code;
		}
		fg_set(kv, fg_sink_value(&op->sink));
		if ((kv = fg_get(w, FG_SK_USE_SINK, op->sink.sink_id, err)) == NULL)
			return -err->code;
		fg_set(kv, json_pack("{s:i}", "devices", 0));
		return fg_use_add(w, FG_SK_USE_TENANT, op->sink.tenant_id, "sinks", 1, err);
	case FG_OP_DEL_SINK:
		if ((kv = fg_get(w, FG_SK_SINK, op->id, err)) == NULL)
			return -err->code;
		if (kv->val == NULL)
			return fg_err_set(err, ENOENT, "sink %" PRIu32 " does not exist", op->id);
		uint32_t owner = (uint32_t)fg_num(kv->val, "tenant");
		struct fg_kv *use = fg_get(w, FG_SK_USE_SINK, op->id, err);

		if (use == NULL)
			return -err->code;
		if (use->val != NULL && fg_num(use->val, "devices") > 0)
			return fg_err_set(err, EBUSY, "sink %" PRIu32 " is in use by %" PRIu32 " device mappings",
					  op->id, (uint32_t)fg_num(use->val, "devices"));
		fg_set(kv, NULL);
		fg_set(use, NULL);
		return fg_use_add(w, FG_SK_USE_TENANT, owner, "sinks", -1, err);
	case FG_OP_DEVICE: {
		const struct fg_device_spec *d = &op->device;

		if (d->device_id == 0)
			return fg_err_set(err, EINVAL, "device id 0 is reserved");
		if ((t = fg_tenant_get(w, d->tenant_id, err)) == NULL) {
			fg_err_prefix(err, "device 0x%016" PRIx64 ": ", d->device_id);
			return -err->code;
		}
		if ((kv = fg_get(w, FG_SK_DEVICE, d->device_id, err)) == NULL)
			return -err->code;
		if (fg_sinks_check(w, "", d->device_id, d->tenant_id, d->sinks, d->n_sinks, err) < 0)
			return -err->code;
		if (kv->val != NULL) {
			if (fg_stored_device(kv, &cur, err) < 0)
				return -err->code;
			if (cur.tenant_id != d->tenant_id)
				return fg_err_set(err, EEXIST, "device 0x%016" PRIx64 " is held by tenant %" PRIu32 "; a device has one owner (use move)",
						  d->device_id, cur.tenant_id);
			if (d->epoch < cur.epoch)
				return fg_err_set(err, ERANGE, "device 0x%016" PRIx64 ": epoch %" PRIu32 " is lower than the current %" PRIu32 " (an epoch never decreases)",
						  d->device_id, d->epoch, cur.epoch);
			if (fg_sink_refs(w, cur.sinks, cur.n_sinks, -1, err) < 0)
				return -err->code;
		} else {
			if (fg_room(w, "", d->device_id, t, d->tenant_id, err) < 0 ||
			    fg_use_add(w, FG_SK_USE_TENANT, d->tenant_id, "devices", 1, err) < 0)
				return -err->code;
		}
		if (fg_sink_refs(w, d->sinks, d->n_sinks, 1, err) < 0)
			return -err->code;
		fg_set(kv, fg_device_value(d->tenant_id, d->device_id, d->epoch, d->sinks,
					   d->n_sinks, d->has_key, d->key));
		return 0;
	}
	case FG_OP_DEL_DEVICE:
		if ((kv = fg_get(w, FG_SK_DEVICE, op->del_device.device_id, err)) == NULL)
			return -err->code;
		if (kv->val != NULL && fg_stored_device(kv, &cur, err) < 0)
			return -err->code;
		if (kv->val == NULL || cur.tenant_id != op->del_device.tenant_id)
			return fg_err_set(err, ENOENT, "device 0x%016" PRIx64 " is not held by tenant %" PRIu32,
					  op->del_device.device_id, op->del_device.tenant_id);
		fg_set(kv, NULL);
		if (fg_sink_refs(w, cur.sinks, cur.n_sinks, -1, err) < 0)
			return -err->code;
		return fg_use_add(w, FG_SK_USE_TENANT, cur.tenant_id, "devices", -1, err);
	case FG_OP_MOVE: {
		const struct fg_move_spec *m = &op->move;
		const char *what = "move of ";

		if ((kv = fg_get(w, FG_SK_DEVICE, m->device_id, err)) == NULL)
			return -err->code;
		if (kv->val == NULL)
			return fg_err_set(err, ENOENT, "move of device 0x%016" PRIx64 ": no tenant holds it, not tenant %" PRIu32,
					  m->device_id, m->from);
		if (fg_stored_device(kv, &cur, err) < 0)
			return -err->code;
		if (cur.tenant_id != m->from)
			return fg_err_set(err, ESTALE, "move of device 0x%016" PRIx64 ": it is held by tenant %" PRIu32 ", not by tenant %" PRIu32,
					  m->device_id, cur.tenant_id, m->from);
		if (m->from == m->to)
			return fg_err_set(err, EINVAL, "move of device 0x%016" PRIx64 ": from and to are both tenant %" PRIu32,
					  m->device_id, m->to);
		if ((t = fg_tenant_get(w, m->to, err)) == NULL) {
			fg_err_prefix(err, "move of device 0x%016" PRIx64 ": ", m->device_id);
			return -err->code;
		}
		if (m->epoch <= cur.epoch)
			return fg_err_set(err, ERANGE, "move of device 0x%016" PRIx64 ": epoch %" PRIu32 " is not larger than the current %" PRIu32 " (a move must raise the epoch)",
					  m->device_id, m->epoch, cur.epoch);
		if (fg_room(w, what, m->device_id, t, m->to, err) < 0 ||
		    fg_sinks_check(w, what, m->device_id, m->to, m->sinks, m->n_sinks, err) < 0 ||
		    fg_sink_refs(w, cur.sinks, cur.n_sinks, -1, err) < 0 ||
		    fg_sink_refs(w, m->sinks, m->n_sinks, 1, err) < 0 ||
		    fg_use_add(w, FG_SK_USE_TENANT, m->from, "devices", -1, err) < 0 ||
		    fg_use_add(w, FG_SK_USE_TENANT, m->to, "devices", 1, err) < 0)
			return -err->code;
		fg_set(kv, fg_device_value(m->to, m->device_id, m->epoch, m->sinks, m->n_sinks,
					   m->has_key ? true : cur.has_key,
					   m->has_key ? m->key : cur.key));
		return 0;
	}
	case FG_OP_STORE_REVISION:
		return fg_err_set(err, EINVAL, "op \"store_revision\" is a router's own record, not a change to the store");
	}
	return fg_err_set(err, EINVAL, "unknown operation kind %d", (int)op->kind);
}

/* ---- the writer ---------------------------------------------------------------- */

/* gRPC is only for plain http:// endpoints (no TLS here). */
static bool
fg_all_http(const char *endpoints)
{
	for (const char *p = endpoints; p != NULL && *p; ) {
		while (*p == ' ' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		if (strncmp(p, "http://", 7) != 0)
			return false;
		p = strchr(p, ',');
	}
	return true;
}

static struct fg_store_writer *
fg_writer_open(const char *endpoints, const char *prefix, unsigned int timeout_ms, bool grpc,
	       struct fg_err *err)
{
	struct fg_etcd_opts eo = { .endpoints = endpoints, .timeout_ms = timeout_ms,
				   .grpc = grpc && fg_all_http(endpoints) };
	struct fg_store_writer *w;

	if (fg_store_prefix_check(prefix, err) < 0)
		return NULL;
	w = calloc(1, sizeof(*w));
	if (w == NULL) {
		fg_err_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	snprintf(w->prefix, sizeof(w->prefix), "%s", prefix);
	w->etcd = fg_etcd_open(&eo, err);
	if (w->etcd == NULL) {
		free(w);
		return NULL;
	}
	return w;
}

struct fg_store_writer *
fg_store_writer_open(const char *endpoints, const char *prefix, unsigned int timeout_ms,
		     struct fg_err *err)
{
	return fg_writer_open(endpoints, prefix, timeout_ms, true, err);
}

struct fg_store_writer *
fg_store_writer_open_gateway(const char *endpoints, const char *prefix, unsigned int timeout_ms,
			     struct fg_err *err)
{
	return fg_writer_open(endpoints, prefix, timeout_ms, false, err);
}

void
fg_store_writer_close(struct fg_store_writer *w)
{
	if (w == NULL)
		return;
	fg_cache_free(&w->c);
	fg_pending_clear(&w->pend);
	fg_etcd_close(w->etcd);
	free(w);
}

static int
fg_list_into_cache(void *ctx, const struct fg_etcd_kv *ekv)
{
	struct fg_store_writer *w = ctx;
	struct fg_kv *kv = fg_cache_add(&w->c, ekv->key);

	if (kv == NULL)
		return -ENOMEM;
	kv->present = true;
	kv->mod = ekv->mod_revision;
	kv->sval = json_loadb(ekv->value, ekv->value_len, 0, NULL);
	kv->val = json_incref(kv->sval);
	return kv->sval == NULL ? -EPROTO : 0;
}

/* After a written transaction at revision rev: what it wrote is what the
 * store holds. */
static void
fg_cache_commit(struct fg_cache *c, int64_t rev)
{
	for (size_t i = 0; i < c->n_u; i++) {
		struct fg_kv *kv = c->u[i];

		if (!kv->dirty || (kv->val == NULL && !kv->present))
			continue;
		json_decref(kv->sval);
		kv->sval = json_incref(kv->val);
		kv->present = kv->val != NULL;
		kv->mod = rev;
	}
}

/* One attempt: 1 written, 0 the store changed in between (retry), -errno. */
static int
fg_try(struct fg_store_writer *w, const struct fg_op *ops, size_t n, bool whole,
       bool first, const char *sig, int64_t *revision, size_t *failed, struct fg_err *err)
{
	char seq_key[FG_STORE_KEY_MAX], end[FG_STORE_KEY_MAX], *seq_val = NULL;
	struct fg_etcd_cmp *cmp = NULL;
	struct fg_etcd_op *wops = NULL;
	char **vals = NULL;
	size_t n_cmp = 0, n_ops = 0, n_u;
	bool ok = false;
	int ret;

	fg_store_key(seq_key, w->prefix, FG_SK_SEQ, 0);
	if (w->pend.sig != NULL) {
		ret = fg_pending_landed(w, sig, revision, err);
		if (ret != 0)
			return ret;     /* landed (1), or the store cannot say (-errno) */
	}
	if (whole || w->c.n > FG_CACHE_MAX)
		fg_cache_free(&w->c);
	fg_cache_begin(&w->c, first);
	if (whole) {
		ret = fg_etcd_range(w->etcd, w->prefix, (fg_etcd_prefix_end(w->prefix, end), end),
				    0, 0, fg_list_into_cache, w, NULL, err);
		if (ret < 0)
			return ret == -ENOMEM || ret == -EPROTO
				? fg_err_set(err, -ret, "store prefix %s: a key does not hold JSON, or out of memory", w->prefix)
				: ret;
		w->c.whole = true;
	}
	/* Rounds: the ops run on the cache, and the keys it misses are read
	 * together after the round (absent during it); then the ops run
	 * again, until a round misses nothing. A few rounds, as a key read
	 * leads to others (a device's old sinks); past FG_ROUNDS a miss is
	 * read on the spot. */
	for (int round = 0;; round++) {
		size_t bad = SIZE_MAX;

		w->c.collect = !whole && round < FG_ROUNDS;
		w->c.n_want = 0;
		for (size_t i = 0; i < n; i++) {
			ret = fg_do_op(w, &ops[i], err);
			if (ret < 0 && w->c.n_want == 0) {
				bad = i;        /* judged on keys read: stands */
				break;
			}
			/* else judged on a pending key: go on, to find more */
		}
		w->c.collect = false;
		if (w->c.n_want == 0 && bad != SIZE_MAX) {
			if (w->c.stale_used)
				return 0;       /* judged on cached keys: again on fresh reads */
			if (failed != NULL)
				*failed = bad;
			return ret;
		}
		if (w->c.n_want == 0)
			break;
		ret = fg_read_wanted(w, err);
		if (ret < 0)
			return ret;
		fg_cache_begin(&w->c, false);
	}
	n_u = w->c.n_u;
	cmp = calloc(n_u + 1, sizeof(*cmp));
	wops = calloc(n_u + 1, sizeof(*wops));
	vals = calloc(n_u + 1, sizeof(*vals));
	if (cmp == NULL || wops == NULL || vals == NULL) {
		ret = fg_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	if (whole) {
		struct fg_kv *s = fg_cache_find(&w->c, seq_key);

		cmp[n_cmp++] = s ? (struct fg_etcd_cmp){ .key = seq_key, .target = FG_ETCD_MOD,
							 .result = FG_ETCD_EQUAL, .number = s->mod }
				 : (struct fg_etcd_cmp){ .key = seq_key, .target = FG_ETCD_VERSION,
							 .result = FG_ETCD_EQUAL, .number = 0 };
	}
	for (size_t i = 0; i < n_u; i++) {
		struct fg_kv *kv = w->c.u[i];

		if (!whole && strcmp(kv->key, seq_key) != 0)
			cmp[n_cmp++] = kv->present
				? (struct fg_etcd_cmp){ .key = kv->key, .target = FG_ETCD_MOD,
							.result = FG_ETCD_EQUAL, .number = kv->mod }
				: (struct fg_etcd_cmp){ .key = kv->key, .target = FG_ETCD_VERSION,
							.result = FG_ETCD_EQUAL, .number = 0 };
		if (!kv->dirty || (kv->val == NULL && !kv->present))
			continue;
		if (kv->val == NULL) {
			wops[n_ops++] = (struct fg_etcd_op){ .type = FG_ETCD_DELETE, .key = kv->key };
		} else {
			vals[i] = json_dumps(kv->val, JSON_COMPACT | JSON_PRESERVE_ORDER);
			if (vals[i] == NULL) {
				ret = fg_err_set(err, ENOMEM, "out of memory");
				goto out;
			}
			wops[n_ops++] = (struct fg_etcd_op){ .type = FG_ETCD_PUT, .key = kv->key,
							     .value = vals[i] };
		}
	}
	if (n_ops == 0) {               /* nothing changes (a resume of an active tenant) */
		int64_t rev = 0, last = 0;

		if (w->c.stale_used) {
			ret = 0;        /* judged on cached keys: again on fresh reads */
			goto out;
		}
		ret = fg_store_status(w, &rev, &last, err);
		if (ret == 0 && revision != NULL)
			*revision = rev;
		ret = ret < 0 ? ret : 1;
		goto out;
	}
	if (asprintf(&seq_val, "{\"ops\":%zu,\"at\":%ld}", n, (long)time(NULL)) < 0) {
		seq_val = NULL;
		ret = fg_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	wops[n_ops++] = (struct fg_etcd_op){ .type = FG_ETCD_PUT, .key = seq_key, .value = seq_val };
	{
		int64_t rev = 0;

		ret = fg_etcd_txn(w->etcd, cmp, n_cmp, wops, n_ops, NULL, 0, &ok, &rev, err);
		if (ret == 0 && ok) {
			fg_cache_commit(&w->c, rev);
			fg_pending_clear(&w->pend);
			if (revision != NULL)
				*revision = rev;
		} else if ((ret == 0 && fg_etcd_resent(w->etcd)) ||
			   ret == -ETIMEDOUT || ret == -EIO || ret == -ECONNRESET ||
			   (ret < 0 && fg_etcd_resent(w->etcd))) {
			/* Perhaps landed: the next try of this write looks first. */
			fg_pending_set(&w->pend, sig, wops, n_ops, seq_key);
		}
	}
	if (ret == 0)
		ret = ok ? 1 : 0;
out:
	if (vals != NULL)
		for (size_t i = 0; i < n_u + 1; i++)
			free(vals[i]);
	free(vals);
	free(cmp);
	free(wops);
	free(seq_val);
	return ret;
}

int
fg_store_apply(struct fg_store_writer *w, const char *const *lines, const size_t *lens,
	       size_t n, bool whole_prefix, int64_t *revision, size_t *failed,
	       struct fg_err *err)
{
	struct fg_op *ops = calloc(n ? n : 1, sizeof(*ops));
	char *sig = NULL;
	int ret = 0;

	if (ops == NULL)
		return fg_err_set(err, ENOMEM, "out of memory for %zu operations", n);
	for (size_t i = 0; i < n && ret == 0; i++) {
		ret = fg_op_parse(lines[i], lens[i], &ops[i], err);
		if (ret < 0 && failed != NULL)
			*failed = i;
	}
	/* The write's signature: its op lines, to know a retry of it. */
	size_t sig_len = 2;

	for (size_t i = 0; i < n; i++)
		sig_len += lens[i] + 1;
	sig = ret == 0 ? malloc(sig_len) : NULL;
	if (ret == 0 && sig == NULL)
		ret = fg_err_set(err, ENOMEM, "out of memory for %zu operations", n);
	if (sig != NULL) {
		size_t at = 0;

		sig[at++] = whole_prefix ? 'W' : 'P';
		for (size_t i = 0; i < n; i++) {
			memcpy(sig + at, lines[i], lens[i]);
			at += lens[i];
			sig[at++] = '\n';
		}
		sig[at] = '\0';
	}
	for (int attempt = 0; ret == 0; attempt++) {
		ret = fg_try(w, ops, n, whole_prefix, attempt == 0, sig, revision, failed, err);
		if (ret == 1) {
			ret = 0;
			break;
		}
		if (ret == 0)
			fg_cache_free(&w->c);   /* read everything again */
		if (ret == 0 && attempt + 1 == FG_STORE_RETRIES) {
			ret = fg_err_set(err, EAGAIN, "the store kept changing under the write: %d attempts, none applied",
					 FG_STORE_RETRIES);
			break;
		}
	}
	/* A listing of the whole prefix is not kept; nor is anything after an
	 * error, when a transaction may or may not have landed. */
	if (ret < 0 || whole_prefix)
		fg_cache_free(&w->c);
	else
		fg_cache_begin(&w->c, false);
	free(sig);
	free(ops);
	return ret;
}

int
fg_store_rekey(struct fg_store_writer *w, uint32_t tenant, uint64_t device, const uint8_t *key,
	       int64_t *revision, struct fg_err *err)
{
	char k[FG_STORE_KEY_MAX], *line;
	struct fg_etcd_kv ekv;
	struct fg_device_spec cur;
	struct fg_kv tmp = { 0 };
	json_t *v;
	int ret;

	for (int attempt = 0; attempt < FG_STORE_RETRIES; attempt++) {
		fg_store_key(k, w->prefix, FG_SK_DEVICE, device);
		ret = fg_etcd_get(w->etcd, k, &ekv, NULL, err);
		if (ret < 0)
			return ret;
		snprintf(tmp.key, sizeof(tmp.key), "%s", k);
		tmp.val = ret == 1 ? json_loadb(ekv.value, ekv.value_len, 0, NULL) : NULL;
		if (tmp.val != NULL)
			ret = fg_stored_device(&tmp, &cur, err);
		json_decref(tmp.val);
		if (ret < 0)
			return ret;
		if (ret == 0 || cur.tenant_id != tenant)
			return fg_err_set(err, ENOENT, "device 0x%016" PRIx64 " is not held by tenant %" PRIu32,
					  device, tenant);
		int64_t mod = ekv.mod_revision;

		v = fg_device_value(tenant, device, cur.epoch, cur.sinks, cur.n_sinks, key != NULL, key);
		line = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
		json_decref(v);
		if (line == NULL)
			return fg_err_set(err, ENOMEM, "out of memory");
		/* The same write as a device op, with a compare on the key as read. */
		struct fg_etcd_cmp cmp = { .key = k, .target = FG_ETCD_MOD, .result = FG_ETCD_EQUAL,
					   .number = mod };
		char seq_key[FG_STORE_KEY_MAX];
		struct fg_etcd_op ops[2] = {
			{ .type = FG_ETCD_PUT, .key = k, .value = line },
			{ .type = FG_ETCD_PUT, .key = seq_key, .value = "{\"ops\":1}" },
		};
		bool ok = false;

		fg_store_key(seq_key, w->prefix, FG_SK_SEQ, 0);
		ret = fg_etcd_txn(w->etcd, &cmp, 1, ops, 2, NULL, 0, &ok, revision, err);
		free(line);
		if (ret < 0 || ok)
			return ret;
	}
	return fg_err_set(err, EAGAIN, "the store kept changing under the write: %d attempts, none applied",
			  FG_STORE_RETRIES);
}

/* ---- reading ------------------------------------------------------------------- */

struct fg_dump_ctx {
	const char *prefix;
	uint32_t tenant;
	json_t *by_kind[FG_SK_SEQ + 1];
};

static int
fg_dump_collect(void *ctx, const struct fg_etcd_kv *ekv)
{
	struct fg_dump_ctx *d = ctx;
	uint64_t id;
	enum fg_store_kind k = fg_store_key_parse(d->prefix, ekv->key, ekv->key_len, &id);
	json_t *v;

	if (k != FG_SK_TENANT && k != FG_SK_SINK && k != FG_SK_DEVICE && k != FG_SK_SUSPENDED)
		return 0;
	v = json_loadb(ekv->value, ekv->value_len, 0, NULL);
	if (v == NULL)
		return -EPROTO;
	if (d->tenant != 0 && (uint32_t)fg_num(v, "tenant") != d->tenant) {
		json_decref(v);
		return 0;
	}
	json_array_append_new(d->by_kind[k], v);
	return 0;
}

int
fg_store_dump(struct fg_store_writer *w, uint32_t tenant, fg_store_emit_fn *emit, void *ctx,
	      int64_t *revision, struct fg_err *err)
{
	static const enum fg_store_kind order[] = { FG_SK_TENANT, FG_SK_SINK, FG_SK_DEVICE,
						    FG_SK_SUSPENDED };
	struct fg_dump_ctx d = { .prefix = w->prefix, .tenant = tenant };
	char end[FG_STORE_KEY_MAX];
	int ret;

	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++)
		d.by_kind[order[i]] = json_array();
	fg_etcd_prefix_end(w->prefix, end);
	ret = fg_etcd_range(w->etcd, w->prefix, end, 0, 0, fg_dump_collect, &d, revision, err);
	if (ret == -EPROTO)
		fg_err_set(err, EPROTO, "store prefix %s: a key does not hold JSON", w->prefix);
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		size_t j;
		json_t *v;

		json_array_foreach(d.by_kind[order[i]], j, v) {
			char *s;

			if (ret < 0)
				break;
			s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
			if (s == NULL) {
				ret = fg_err_set(err, ENOMEM, "out of memory");
				break;
			}
			ret = emit(ctx, s, strlen(s));
			free(s);
			if (ret < 0)
				fg_err_set(err, -ret, "cannot write the dump");
		}
		json_decref(d.by_kind[order[i]]);
	}
	return ret;
}

int
fg_store_status(struct fg_store_writer *w, int64_t *revision, int64_t *last_change,
		struct fg_err *err)
{
	char k[FG_STORE_KEY_MAX];
	struct fg_etcd_kv kv;
	int ret;

	fg_store_key(k, w->prefix, FG_SK_SEQ, 0);
	ret = fg_etcd_get(w->etcd, k, &kv, revision, err);
	if (ret < 0)
		return ret;
	*last_change = ret == 1 ? kv.mod_revision : 0;
	return 0;
}
