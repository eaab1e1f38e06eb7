/*
 * The etcd v3 client of control/etcd.h, over etcd's JSON gateway.
 *
 * Requests are POSTs of one JSON object to <endpoint>/v3/..., sent with one
 * libcurl easy handle that the handle keeps (so its connection is reused);
 * the reply is read whole and parsed with jansson. etcd_call() is the one
 * path every request takes: it walks the endpoint list once from the one
 * that answered last, and classifies each answer (move on to the next
 * endpoint, or give the caller a result or an error).
 *
 * The watch is a second easy handle driven by a curl multi handle: the
 * gateway streams newline-separated {"result":{...}} objects, which arrive
 * in pieces of any size. watch_feed() keeps the bytes, watch_parse() takes
 * out each whole object, and each object's events are grouped by revision
 * (etcd never splits one revision over two responses) and handed out one
 * revision per callback.
 *
 * etcd 3.4's gateway prints int64 as JSON strings and field names in
 * snake_case, except the status reply (raftTerm, leader); readers here take
 * strings or numbers, and both spellings where they differ.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "etcd.h"
#include "etcd_grpc.h"
#include "etcd_kv.pb-c.h"

#define ETCD_DEFAULT_TIMEOUT_MS 5000u
#define ETCD_DEFAULT_CONNECT_MS 1000u
#define ETCD_DEFAULT_PAGE 10000u
#define ETCD_B64 sodium_base64_VARIANT_ORIGINAL

/* A growable byte buffer. */
struct etcd_buf {
	char *p;
	size_t len, cap;
};

struct fg_etcd {
	char **eps;                 /* base URLs, without a trailing '/' */
	struct etcd_grpc *grpc;     /* transactions over gRPC, or NULL */
	bool resent;                /* the last request went to a second endpoint
				     * after one that may have taken it */
	size_t n_eps, cur;          /* cur: the endpoint that answered last */
	unsigned int timeout_ms, connect_ms;
	CURL *easy;
	struct curl_slist *hdrs;
	struct etcd_buf reply;      /* the last request's reply body */
	struct etcd_buf scratch;    /* decoded keys and values */
	char *get_key, *get_value;  /* fg_etcd_get's kv, until the next call */

	/* The watch. */
	struct etcd_grpc_stream *wstream;   /* over gRPC, or NULL */
	CURLM *multi;
	CURL *wh;
	bool watching;
	bool created;
	size_t w_ep;                /* the endpoint the watch went to */
	char *w_body;               /* the create request (curl does not copy) */
	struct etcd_buf wbuf;       /* stream bytes not yet parsed */
	size_t w_scanned;           /* bytes of wbuf known to hold no '\n' */
	struct timespec w_started;
	int64_t w_progress;
	/* Revisions parsed but not yet delivered (the callback stopped). */
	struct fg_etcd_event *evs;
	size_t n_evs, cap_evs, ev_next;
	struct etcd_buf w_arena;    /* the events' keys and values */
};

/* ---- small helpers ---- */

static int
buf_reserve(struct etcd_buf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->len + more <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 4096;
	while (cap < b->len + more)
		cap *= 2;
	p = realloc(b->p, cap);
	if (p == NULL)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

static size_t
buf_write_cb(char *data, size_t size, size_t n, void *ud)
{
	struct etcd_buf *b = ud;
	size_t len = size * n;

	if (buf_reserve(b, len + 1) != 0)
		return 0;            /* curl reports CURLE_WRITE_ERROR */
	memcpy(b->p + b->len, data, len);
	b->len += len;
	return len;
}

/* An int64 the gateway printed as a string (or a number). 0 if absent. */
static int64_t
j_i64(const json_t *o, const char *name)
{
	const json_t *v = json_object_get(o, name);

	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_string(v))
		return strtoll(json_string_value(v), NULL, 10);
	return 0;
}

static uint64_t
j_u64(const json_t *o, const char *name)
{
	const json_t *v = json_object_get(o, name);

	if (json_is_integer(v))
		return (uint64_t)json_integer_value(v);
	if (json_is_string(v))
		return strtoull(json_string_value(v), NULL, 10);
	return 0;
}

static int64_t
header_revision(const json_t *reply)
{
	return j_i64(json_object_get(reply, "header"), "revision");
}

/* base64 of len bytes at p, as a new JSON string. */
static json_t *
b64_json(const char *p, size_t len)
{
	size_t cap = sodium_base64_encoded_len(len, ETCD_B64);
	char stack[512], *out = cap <= sizeof(stack) ? stack : malloc(cap);
	json_t *s;

	if (out == NULL)
		return NULL;
	sodium_bin2base64(out, cap, (const unsigned char *)p, len, ETCD_B64);
	s = json_string(out);
	if (out != stack)
		free(out);
	return s;
}

static json_t *
b64_str(const char *s)
{
	return b64_json(s, strlen(s));
}

/* range_end on the wire: "" means etcd's "\0" (every key from key on). */
static json_t *
b64_range_end(const char *range_end)
{
	return range_end[0] == '\0' ? b64_json("", 1) : b64_str(range_end);
}

/* Decode a base64 JSON string (absent: empty) to the end of b, with a NUL
 * after it; *off gets where it starts and *len its length. */
static int
b64_decode_into(struct etcd_buf *b, const json_t *v, size_t *off, size_t *len)
{
	const char *s = json_is_string(v) ? json_string_value(v) : "";
	size_t slen = json_is_string(v) ? json_string_length(v) : 0;
	size_t max = slen / 4 * 3 + 3, n = 0;

	if (buf_reserve(b, max + 1) != 0)
		return -ENOMEM;
	if (slen > 0 && sodium_base642bin((unsigned char *)b->p + b->len, max, s, slen,
					  NULL, &n, NULL, ETCD_B64) != 0)
		return -EPROTO;
	*off = b->len;
	*len = n;
	b->p[b->len + n] = '\0';
	b->len += n + 1;
	return 0;
}

/* ---- endpoints ---- */

/* Check one endpoint: http:// or https://, a host, an optional :port in
 * 1-65535, nothing after it but an optional '/'. NULL if good, else why. */
static const char *
endpoint_problem(const char *s, size_t len)
{
	size_t i, host, port_at = 0;
	unsigned long port = 0;

	if (len >= 7 && strncmp(s, "http://", 7) == 0)
		host = 7;
	else if (len >= 8 && strncmp(s, "https://", 8) == 0)
		host = 8;
	else
		return "must start with http:// or https://";
	if (len > host && s[len - 1] == '/')
		len--;
	if (len == host || s[host] == ':')
		return "has no host";
	for (i = host; i < len; i++) {
		if (s[i] == '/' || s[i] == '?' || s[i] == '#' || s[i] == '@')
			return "must be scheme://host[:port] with no path";
		if (isspace((unsigned char)s[i]))
			return "has a space in it";
		if (s[i] == ':')
			port_at = i;
	}
	if (s[host] == '[') {                   /* [v6]:port */
		const char *close = memchr(s + host, ']', len - host);

		if (close == NULL)
			return "has an unclosed [";
		port_at = (size_t)(close - s) + 1 < len ? (size_t)(close - s) + 1 : 0;
		if (port_at != 0 && s[port_at] != ':')
			return "must be scheme://host[:port] with no path";
	}
	if (port_at == 0)
		return NULL;
	if (port_at + 1 == len)
		return "has an empty port";
	for (i = port_at + 1; i < len; i++) {
		if (!isdigit((unsigned char)s[i]))
			return "has a port that is not a number";
		port = port * 10 + (unsigned long)(s[i] - '0');
		if (port > 65535)
			break;
	}
	if (port == 0 || port > 65535)
		return "has a port outside 1-65535";
	return NULL;
}

static int
endpoints_parse(struct fg_etcd *e, const char *list, struct fg_err *err)
{
	const char *p = list, *end;
	size_t n = 1, i = 0, len;

	for (const char *c = list; *c; c++)
		n += *c == ',';
	e->eps = calloc(n, sizeof(*e->eps));
	if (e->eps == NULL)
		return fg_err_set(err, ENOMEM, "out of memory");
	for (;;) {
		const char *why;

		end = strchr(p, ',');
		if (end == NULL)
			end = p + strlen(p);
		while (p < end && isspace((unsigned char)*p))
			p++;
		len = (size_t)(end - p);
		while (len > 0 && isspace((unsigned char)p[len - 1]))
			len--;
		if (len == 0)
			return fg_err_set(err, EINVAL, "etcd endpoints \"%s\": endpoint %zu is empty",
					  list, i + 1);
		why = endpoint_problem(p, len);
		if (why != NULL)
			return fg_err_set(err, EINVAL, "etcd endpoint \"%.*s\" %s", (int)len, p, why);
		if (p[len - 1] == '/')
			len--;
		e->eps[i] = strndup(p, len);
		if (e->eps[i] == NULL)
			return fg_err_set(err, ENOMEM, "out of memory");
		e->n_eps = ++i;
		if (*end == '\0')
			break;
		p = end + 1;
	}
	return 0;
}

/* ---- the handle ---- */

static void
etcd_global_init(void)
{
	static bool done;

	/* libcurl's own init is not thread-safe before 7.84; the handles here
	 * are one per thread but the first open is made before threads. */
	if (!done) {
		curl_global_init(CURL_GLOBAL_DEFAULT);
		if (sodium_init() < 0)
			abort();
		done = true;
	}
}

struct fg_etcd *
fg_etcd_open(const struct fg_etcd_opts *o, struct fg_err *err)
{
	struct fg_etcd *e;

	if (o == NULL || o->endpoints == NULL) {
		fg_err_set(err, EINVAL, "no etcd endpoints given");
		return NULL;
	}
	etcd_global_init();
	e = calloc(1, sizeof(*e));
	if (e == NULL) {
		fg_err_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	if (endpoints_parse(e, o->endpoints, err) != 0)
		goto fail;
	e->timeout_ms = o->timeout_ms ? o->timeout_ms : ETCD_DEFAULT_TIMEOUT_MS;
	e->connect_ms = o->connect_timeout_ms ? o->connect_timeout_ms : ETCD_DEFAULT_CONNECT_MS;
	e->easy = curl_easy_init();
	e->multi = curl_multi_init();
	/* No "Expect: 100-continue" round trip before large bodies. */
	e->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	if (e->hdrs != NULL)
		e->hdrs = curl_slist_append(e->hdrs, "Expect:");
	if (e->easy == NULL || e->multi == NULL || e->hdrs == NULL) {
		fg_err_set(err, ENOMEM, "cannot set up libcurl");
		goto fail;
	}
	if (o->grpc && (e->grpc = etcd_grpc_open(e->eps, e->n_eps, e->connect_ms, err)) == NULL)
		goto fail;
	return e;
fail:
	fg_etcd_close(e);
	return NULL;
}

void
fg_etcd_close(struct fg_etcd *e)
{
	if (e == NULL)
		return;
	fg_etcd_watch_stop(e);
	etcd_grpc_close(e->grpc);
	if (e->multi != NULL)
		curl_multi_cleanup(e->multi);
	if (e->easy != NULL)
		curl_easy_cleanup(e->easy);
	curl_slist_free_all(e->hdrs);
	for (size_t i = 0; i < e->n_eps; i++)
		free(e->eps[i]);
	free(e->eps);
	free(e->reply.p);
	free(e->scratch.p);
	free(e->w_arena.p);
	free(e->wbuf.p);
	free(e->evs);
	free(e->get_key);
	free(e->get_value);
	free(e);
}

bool
fg_etcd_resent(const struct fg_etcd *e)
{
	return e->resent;
}

const char *
fg_etcd_endpoint(const struct fg_etcd *e)
{
	return e->eps[e->cur];
}

/* ---- one request, with failover ---- */

/* What one endpoint's answer means. */
enum etcd_outcome { ETCD_OK, ETCD_NEXT, ETCD_FAIL };

static int
curl_code_errno(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return ETIMEDOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
		return EHOSTUNREACH;
	default:
		return ECONNREFUSED;
	}
}

/* An etcd error reply's message ("error" or "message"), or the raw body. */
static const char *
etcd_error_message(const json_t *reply, const struct etcd_buf *raw)
{
	const char *m = json_string_value(json_object_get(reply, "message"));

	if (m == NULL)
		m = json_string_value(json_object_get(reply, "error"));
	if (m == NULL && raw->len > 0)
		m = raw->p;
	return m != NULL ? m : "(empty reply)";
}

/* Classify an error etcd gave: go on to the next endpoint, or which errno. */
static enum etcd_outcome
etcd_error_kind(long http, const char *msg, int *code)
{
	if (strstr(msg, "not leader") != NULL || strstr(msg, "no leader") != NULL ||
	    strstr(msg, "leader changed") != NULL) {
		*code = EIO;
		return ETCD_NEXT;
	}
	if (strstr(msg, "has been compacted") != NULL) {
		*code = ESTALE;
		return ETCD_FAIL;
	}
	if (strstr(msg, "too many operations") != NULL || strstr(msg, "too large") != NULL ||
	    strstr(msg, "larger than max") != NULL || http == 413) {
		*code = E2BIG;
		return ETCD_FAIL;
	}
	if (http >= 500) {
		*code = strstr(msg, "timed out") != NULL ? ETIMEDOUT : EIO;
		return ETCD_NEXT;
	}
	*code = EIO;
	return ETCD_FAIL;
}

/* POST body to one endpoint. */
static enum etcd_outcome
etcd_post(struct fg_etcd *e, size_t ep, const char *path, const char *body,
	  size_t body_len, json_t **out, struct fg_err *err)
{
	char url[512];
	json_error_t jerr;
	json_t *reply;
	CURLcode rc;
	long http = 0;
	int code;

	snprintf(url, sizeof(url), "%s%s", e->eps[ep], path);
	e->reply.len = 0;
	curl_easy_reset(e->easy);
	curl_easy_setopt(e->easy, CURLOPT_URL, url);
	curl_easy_setopt(e->easy, CURLOPT_HTTPHEADER, e->hdrs);
	curl_easy_setopt(e->easy, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(e->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
	curl_easy_setopt(e->easy, CURLOPT_WRITEFUNCTION, buf_write_cb);
	curl_easy_setopt(e->easy, CURLOPT_WRITEDATA, &e->reply);
	curl_easy_setopt(e->easy, CURLOPT_TIMEOUT_MS, (long)e->timeout_ms);
	curl_easy_setopt(e->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)e->connect_ms);
	curl_easy_setopt(e->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e->easy, CURLOPT_PROXY, "");
	rc = curl_easy_perform(e->easy);
	if (rc != CURLE_OK) {
		if (rc == CURLE_WRITE_ERROR) {
			fg_err_set(err, ENOMEM, "etcd %s%s: out of memory for the reply",
				   e->eps[ep], path);
			return ETCD_FAIL;
		}
		fg_err_set(err, curl_code_errno(rc), "etcd %s%s: %s", e->eps[ep], path,
			   curl_easy_strerror(rc));
		return ETCD_NEXT;
	}
	curl_easy_getinfo(e->easy, CURLINFO_RESPONSE_CODE, &http);
	if (buf_reserve(&e->reply, 1) != 0) {
		fg_err_set(err, ENOMEM, "out of memory");
		return ETCD_FAIL;
	}
	e->reply.p[e->reply.len] = '\0';
	reply = json_loadb(e->reply.p, e->reply.len, 0, &jerr);
	if (http == 200 && json_is_object(reply)) {
		*out = reply;
		return ETCD_OK;
	}
	if (http == 200) {
		fg_err_set(err, EPROTO, "etcd %s%s: reply is not a JSON object (%s)",
			   e->eps[ep], path, jerr.text);
		json_decref(reply);
		return ETCD_FAIL;
	}
	{
		const char *msg = etcd_error_message(reply, &e->reply);
		enum etcd_outcome k = etcd_error_kind(http, msg, &code);

		fg_err_set(err, code, "etcd %s%s: HTTP %ld: %.120s", e->eps[ep], path, http, msg);
		json_decref(reply);
		return k;
	}
}

/* One try of a request on endpoint ep: what the answer means (etcd_post,
 * grpc_post). */
typedef enum etcd_outcome etcd_try_fn(struct fg_etcd *e, size_t ep, void *req,
				      struct fg_err *err);

/*
 * The one way a request goes out, over either transport: tried on each
 * endpoint once around the list, starting from the one that answered last.
 * 0, or -errno with err set. Notes in e->resent whether it went to a second
 * endpoint after one that may have taken it.
 */
static int
etcd_walk(struct fg_etcd *e, etcd_try_fn *try, void *req, struct fg_err *err)
{
	struct fg_err last = { 0, "" };

	e->resent = false;
	for (size_t i = 0; i < e->n_eps; i++) {
		size_t ep = (e->cur + i) % e->n_eps;
		enum etcd_outcome k;

		if (i > 0 && last.code != ECONNREFUSED && last.code != EHOSTUNREACH)
			e->resent = true;
		k = try(e, ep, req, &last);
		if (k == ETCD_OK) {
			e->cur = ep;
			return 0;
		}
		if (k == ETCD_FAIL) {
			e->cur = ep;
			if (err != NULL)
				*err = last;
			return -last.code;
		}
	}
	if (err != NULL) {
		*err = last;
		if (e->n_eps > 1)
			fg_err_prefix(err, "no etcd endpoint of %zu answered; last: ", e->n_eps);
	}
	return -last.code;
}

struct etcd_post_req {
	const char *path, *text;
	size_t len;
	json_t **out;
};

static enum etcd_outcome
etcd_post_try(struct fg_etcd *e, size_t ep, void *req, struct fg_err *err)
{
	struct etcd_post_req *r = req;

	return etcd_post(e, ep, r->path, r->text, r->len, r->out, err);
}

/* A gateway request: the body (stolen) to path. 0 and *out (a new
 * reference), or -errno with err set. */
static int
etcd_call(struct fg_etcd *e, const char *path, json_t *body, json_t **out,
	  struct fg_err *err)
{
	char *text = json_dumps(body, JSON_COMPACT);
	struct etcd_post_req r = { .path = path, .text = text, .len = text ? strlen(text) : 0,
				   .out = out };
	int rc;

	json_decref(body);
	*out = NULL;
	if (text == NULL)
		return fg_err_set(err, ENOMEM, "out of memory for an etcd request");
	rc = etcd_walk(e, etcd_post_try, &r, err);
	free(text);
	return rc;
}

/* ---- kv ---- */

void
fg_etcd_prefix_end(const char *prefix, char *out)
{
	size_t n = strlen(prefix);

	memcpy(out, prefix, n + 1);
	while (n > 0) {
		if ((unsigned char)out[n - 1] < 0xff) {
			out[n - 1]++;
			out[n] = '\0';
			return;
		}
		n--;
	}
	out[0] = '\0';          /* all 0xff (or empty): to the end of the keys */
}

/* Decode a JSON kv into e->scratch and fill kv (pointers into scratch,
 * valid until the next decode on e). */
static int
kv_decode(struct etcd_buf *b, const json_t *j, struct fg_etcd_kv *kv)
{
	size_t koff, klen, voff, vlen;
	int rc;

	b->len = 0;
	rc = b64_decode_into(b, json_object_get(j, "key"), &koff, &klen);
	if (rc == 0)
		rc = b64_decode_into(b, json_object_get(j, "value"), &voff, &vlen);
	if (rc != 0)
		return rc;
	kv->key = b->p + koff;
	kv->key_len = klen;
	kv->value = b->p + voff;
	kv->value_len = vlen;
	kv->create_revision = j_i64(j, "create_revision");
	kv->mod_revision = j_i64(j, "mod_revision");
	kv->version = j_i64(j, "version");
	return 0;
}

static json_t *
range_request(const char *key, size_t key_len, const char *range_end, int64_t revision)
{
	json_t *req = json_object();

	json_object_set_new(req, "key", b64_json(key, key_len));
	if (range_end != NULL)
		json_object_set_new(req, "range_end", b64_range_end(range_end));
	if (revision > 0)
		json_object_set_new(req, "revision", json_integer(revision));
	return req;
}

static int
stale_error(struct fg_err *err, int64_t revision)
{
	char was[sizeof(err->msg)];

	if (err == NULL)
		return -ESTALE;
	snprintf(was, sizeof(was), "%s", err->msg);
	return fg_err_set(err, ESTALE, "etcd revision %" PRId64 " has been compacted (%.180s)",
			  revision, was);
}

int
fg_etcd_range(struct fg_etcd *e, const char *key, const char *range_end,
	      int64_t revision, unsigned int page_size,
	      fg_etcd_kv_fn *fn, void *ctx, int64_t *header_rev,
	      struct fg_err *err)
{
	size_t next_len = strlen(key);
	char *next = malloc(next_len + 1);
	int64_t at = revision;
	bool more = true;
	int rc = 0;

	if (next == NULL)
		return fg_err_set(err, ENOMEM, "out of memory");
	memcpy(next, key, next_len + 1);
	if (page_size == 0)
		page_size = ETCD_DEFAULT_PAGE;
	if (header_rev != NULL)
		*header_rev = 0;
	while (more) {
		json_t *req = range_request(next, next_len, range_end, at), *reply, *kvs, *j;
		size_t i;

		if (range_end != NULL)
			json_object_set_new(req, "limit", json_integer(page_size));
		rc = etcd_call(e, "/v3/kv/range", req, &reply, err);
		if (rc == -ESTALE)
			rc = stale_error(err, at);
		if (rc != 0)
			break;
		/* The first page fixes the revision every later page reads at
		 * (with a revision asked for, the header shows the latest). */
		if (at == 0)
			at = header_revision(reply);
		if (header_rev != NULL)
			*header_rev = at;
		kvs = json_object_get(reply, "kvs");
		more = range_end != NULL && json_is_true(json_object_get(reply, "more"));
		json_array_foreach(kvs, i, j) {
			struct fg_etcd_kv kv;

			rc = kv_decode(&e->scratch, j, &kv);
			if (rc != 0) {
				fg_err_set(err, -rc, "etcd %s/v3/kv/range: a key or value is not base64",
					   fg_etcd_endpoint(e));
				break;
			}
			rc = fn(ctx, &kv);
			if (rc != 0)
				break;
			if (i + 1 == json_array_size(kvs) && more) {
				/* The next page starts just after this key. */
				char *n = realloc(next, kv.key_len + 2);

				if (n == NULL) {
					rc = fg_err_set(err, ENOMEM, "out of memory");
					break;
				}
				next = n;
				memcpy(next, kv.key, kv.key_len);
				next[kv.key_len] = '\0';
				next_len = kv.key_len + 1;
			}
		}
		if (rc == 0 && more && json_array_size(kvs) == 0)
			rc = fg_err_set(err, EPROTO, "etcd %s/v3/kv/range: \"more\" with no keys",
					fg_etcd_endpoint(e));
		json_decref(reply);
		if (rc != 0)
			break;
	}
	free(next);
	return rc;
}

int
fg_etcd_count(struct fg_etcd *e, const char *key, const char *range_end,
	      int64_t min_mod_revision, int64_t *count, int64_t *header_rev,
	      struct fg_err *err)
{
	json_t *req = range_request(key, strlen(key), range_end, 0), *reply;
	int rc;

	json_object_set_new(req, "count_only", json_true());
	if (min_mod_revision > 0)
		json_object_set_new(req, "min_mod_revision", json_integer(min_mod_revision));
	rc = etcd_call(e, "/v3/kv/range", req, &reply, err);
	if (rc != 0)
		return rc;
	if (count != NULL)
		*count = j_i64(reply, "count");
	if (header_rev != NULL)
		*header_rev = header_revision(reply);
	json_decref(reply);
	return 0;
}

int
fg_etcd_get(struct fg_etcd *e, const char *key, struct fg_etcd_kv *kv,
	    int64_t *header_rev, struct fg_err *err)
{
	json_t *reply, *kvs;
	int rc;

	rc = etcd_call(e, "/v3/kv/range", range_request(key, strlen(key), NULL, 0),
		       &reply, err);
	if (rc != 0)
		return rc;
	if (header_rev != NULL)
		*header_rev = header_revision(reply);
	kvs = json_object_get(reply, "kvs");
	if (json_array_size(kvs) == 0) {
		json_decref(reply);
		return 0;
	}
	rc = kv_decode(&e->scratch, json_array_get(kvs, 0), kv);
	json_decref(reply);
	if (rc != 0)
		return fg_err_set(err, -rc, "etcd %s/v3/kv/range: key \"%s\" is not base64",
				  fg_etcd_endpoint(e), key);
	/* Copies that outlive the next request's use of scratch. */
	free(e->get_key);
	free(e->get_value);
	e->get_key = strndup(kv->key, kv->key_len);
	e->get_value = strndup(kv->value, kv->value_len);
	if (e->get_key == NULL || e->get_value == NULL)
		return fg_err_set(err, ENOMEM, "out of memory");
	kv->key = e->get_key;
	kv->value = e->get_value;
	return 1;
}

/* ---- the same over gRPC (transactions only) ---- */

/* What a gRPC status means: a member that cannot answer (unavailable,
 * past the deadline, no leader) is passed over, unless the request itself
 * was too large; anything else is etcd's answer, classed as the gateway's. */
static enum etcd_outcome
grpc_status_kind(int st, const char *msg, int *code)
{
	if (st != ETCD_GRPC_UNAVAILABLE && st != ETCD_GRPC_DEADLINE_EXCEEDED)
		return etcd_error_kind(0, msg, code);
	if (strstr(msg, "too large") != NULL || strstr(msg, "larger than max") != NULL) {
		*code = E2BIG;
		return ETCD_FAIL;
	}
	*code = strstr(msg, "leader") != NULL ? EIO
		: st == ETCD_GRPC_UNAVAILABLE ? ECONNREFUSED : ETIMEDOUT;
	return ETCD_NEXT;
}

struct grpc_post_req {
	const char *method;
	const uint8_t *req;
	size_t len;
	uint8_t **reply;
	size_t *reply_len;
};

static enum etcd_outcome
grpc_post_try(struct fg_etcd *e, size_t ep, void *req, struct fg_err *err)
{
	struct grpc_post_req *r = req;
	char msg[200];
	int code, st = etcd_grpc_unary(e->grpc, ep, r->method, r->req, r->len, e->timeout_ms,
				       r->reply, r->reply_len, msg, sizeof(msg));
	enum etcd_outcome k;

	if (st == 0)
		return ETCD_OK;
	k = grpc_status_kind(st, msg, &code);
	fg_err_set(err, code, "etcd %s (gRPC) %s: status %d: %.120s", e->eps[ep], r->method, st, msg);
	return k;
}

/* A packed request to method over gRPC. 0 and *reply (malloc'd), or -errno
 * with err set. */
static int
etcd_grpc_call(struct fg_etcd *e, const char *method, const uint8_t *req, size_t len,
	       uint8_t **reply, size_t *reply_len, struct fg_err *err)
{
	struct grpc_post_req r = { .method = method, .req = req, .len = len, .reply = reply,
				   .reply_len = reply_len };

	return etcd_walk(e, grpc_post_try, &r, err);
}

/* Requests of a gRPC txn: ops in out (the protobuf-c structs point into the
 * caller's strings; nothing is copied). */
struct grpc_ops {
	Etcdserverpb__RequestOp *op, **opp;
	Etcdserverpb__PutRequest *put;
	Etcdserverpb__DeleteRangeRequest *del;
	Etcdserverpb__RangeRequest *range;
};

static int
grpc_ops_alloc(struct grpc_ops *g, size_t n)
{
	memset(g, 0, sizeof(*g));
	n = n ? n : 1;
	g->op = calloc(n, sizeof(*g->op));
	g->opp = calloc(n, sizeof(*g->opp));
	g->put = calloc(n, sizeof(*g->put));
	g->del = calloc(n, sizeof(*g->del));
	g->range = calloc(n, sizeof(*g->range));
	return g->op && g->opp && g->put && g->del && g->range ? 0 : -ENOMEM;
}

static void
grpc_ops_free(struct grpc_ops *g)
{
	free(g->op);
	free(g->opp);
	free(g->put);
	free(g->del);
	free(g->range);
}

static ProtobufCBinaryData
pb_bytes(const char *s)
{
	return (ProtobufCBinaryData){ .len = strlen(s), .data = (uint8_t *)s };
}

static void
grpc_ops_fill(struct grpc_ops *g, const struct fg_etcd_op *ops, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;

		g->op[i] = op;
		if (ops[i].type == FG_ETCD_PUT) {
			Etcdserverpb__PutRequest p = ETCDSERVERPB__PUT_REQUEST__INIT;

			g->put[i] = p;
			g->put[i].key = pb_bytes(ops[i].key);
			g->put[i].value = pb_bytes(ops[i].value ? ops[i].value : "");
			g->op[i].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT;
			g->op[i].request_put = &g->put[i];
		} else {
			Etcdserverpb__DeleteRangeRequest d = ETCDSERVERPB__DELETE_RANGE_REQUEST__INIT;

			g->del[i] = d;
			g->del[i].key = pb_bytes(ops[i].key);
			g->op[i].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
			g->op[i].request_delete_range = &g->del[i];
		}
		g->opp[i] = &g->op[i];
	}
}

/* Pack and send a TxnRequest; *out is the unpacked reply (free with
 * etcdserverpb__txn_response__free_unpacked). */
static int
grpc_txn_call(struct fg_etcd *e, const Etcdserverpb__TxnRequest *tr,
	      Etcdserverpb__TxnResponse **out, struct fg_err *err)
{
	size_t len = etcdserverpb__txn_request__get_packed_size(tr), rlen = 0;
	uint8_t *buf = malloc(len ? len : 1), *reply = NULL;
	int rc;

	*out = NULL;
	if (buf == NULL)
		return fg_err_set(err, ENOMEM, "out of memory for an etcd request");
	etcdserverpb__txn_request__pack(tr, buf);
	rc = etcd_grpc_call(e, "/etcdserverpb.KV/Txn", buf, len, &reply, &rlen, err);
	free(buf);
	if (rc != 0)
		return rc;
	*out = etcdserverpb__txn_response__unpack(NULL, rlen, reply);
	free(reply);
	if (*out == NULL || (*out)->header == NULL) {
		if (*out != NULL)
			etcdserverpb__txn_response__free_unpacked(*out, NULL);
		*out = NULL;
		return fg_err_set(err, EPROTO, "etcd %s (gRPC): a Txn reply that does not decode",
				  fg_etcd_endpoint(e));
	}
	return 0;
}

static int
grpc_txn(struct fg_etcd *e,
	 const struct fg_etcd_cmp *cmp, size_t n_cmp,
	 const struct fg_etcd_op *succ, size_t n_succ,
	 const struct fg_etcd_op *fail, size_t n_fail,
	 bool *succeeded, int64_t *revision, struct fg_err *err)
{
	static const Etcdserverpb__Compare__CompareTarget targets[] = {
		[FG_ETCD_VERSION] = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VERSION,
		[FG_ETCD_CREATE] = ETCDSERVERPB__COMPARE__COMPARE_TARGET__CREATE,
		[FG_ETCD_MOD] = ETCDSERVERPB__COMPARE__COMPARE_TARGET__MOD,
		[FG_ETCD_VALUE] = ETCDSERVERPB__COMPARE__COMPARE_TARGET__VALUE,
	};
	static const Etcdserverpb__Compare__CompareResult results[] = {
		[FG_ETCD_EQUAL] = ETCDSERVERPB__COMPARE__COMPARE_RESULT__EQUAL,
		[FG_ETCD_NOT_EQUAL] = ETCDSERVERPB__COMPARE__COMPARE_RESULT__NOT_EQUAL,
		[FG_ETCD_LESS] = ETCDSERVERPB__COMPARE__COMPARE_RESULT__LESS,
		[FG_ETCD_GREATER] = ETCDSERVERPB__COMPARE__COMPARE_RESULT__GREATER,
	};
	Etcdserverpb__TxnRequest tr = ETCDSERVERPB__TXN_REQUEST__INIT;
	Etcdserverpb__TxnResponse *r = NULL;
	Etcdserverpb__Compare *c = calloc(n_cmp ? n_cmp : 1, sizeof(*c));
	Etcdserverpb__Compare **cp = calloc(n_cmp ? n_cmp : 1, sizeof(*cp));
	struct grpc_ops gs, gf;
	int rc;

	if (grpc_ops_alloc(&gs, n_succ) != 0 || grpc_ops_alloc(&gf, n_fail) != 0 ||
	    c == NULL || cp == NULL) {
		rc = fg_err_set(err, ENOMEM, "out of memory for an etcd request");
		goto out;
	}
	for (size_t i = 0; i < n_cmp; i++) {
		Etcdserverpb__Compare z = ETCDSERVERPB__COMPARE__INIT;

		if ((unsigned int)cmp[i].target > FG_ETCD_VALUE ||
		    (unsigned int)cmp[i].result > FG_ETCD_GREATER) {
			rc = fg_err_set(err, EINVAL, "etcd txn: compare %zu on \"%s\" has no such target or result",
					i + 1, cmp[i].key);
			goto out;
		}
		c[i] = z;
		c[i].key = pb_bytes(cmp[i].key);
		c[i].target = targets[cmp[i].target];
		c[i].result = results[cmp[i].result];
		switch (cmp[i].target) {
		case FG_ETCD_VERSION:
			c[i].target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VERSION;
			c[i].version = cmp[i].number;
			break;
		case FG_ETCD_CREATE:
			c[i].target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_CREATE_REVISION;
			c[i].create_revision = cmp[i].number;
			break;
		case FG_ETCD_MOD:
			c[i].target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_MOD_REVISION;
			c[i].mod_revision = cmp[i].number;
			break;
		case FG_ETCD_VALUE:
			c[i].target_union_case = ETCDSERVERPB__COMPARE__TARGET_UNION_VALUE;
			c[i].value = pb_bytes(cmp[i].value ? cmp[i].value : "");
			break;
		}
		cp[i] = &c[i];
	}
	grpc_ops_fill(&gs, succ, n_succ);
	grpc_ops_fill(&gf, fail, n_fail);
	tr.n_compare = n_cmp;
	tr.compare = cp;
	tr.n_success = n_succ;
	tr.success = gs.opp;
	tr.n_failure = n_fail;
	tr.failure = gf.opp;
	rc = grpc_txn_call(e, &tr, &r, err);
	if (rc == -E2BIG && err != NULL)
		fg_err_prefix(err, "txn of %zu compares, %zu/%zu ops refused: ", n_cmp, n_succ, n_fail);
	if (rc != 0)
		goto out;
	if (succeeded != NULL)
		*succeeded = r->succeeded;
	if (revision != NULL)
		*revision = r->header->revision;
	etcdserverpb__txn_response__free_unpacked(r, NULL);
out:
	grpc_ops_free(&gs);
	grpc_ops_free(&gf);
	free(c);
	free(cp);
	return rc;
}

static int
grpc_get_many(struct fg_etcd *e, const char *const *keys, size_t n,
	      fg_etcd_many_fn *fn, void *ctx, struct fg_err *err)
{
	for (size_t at = 0; at < n; at += FG_ETCD_GET_MANY_CHUNK) {
		size_t m = n - at < FG_ETCD_GET_MANY_CHUNK ? n - at : FG_ETCD_GET_MANY_CHUNK;
		Etcdserverpb__TxnRequest tr = ETCDSERVERPB__TXN_REQUEST__INIT;
		Etcdserverpb__TxnResponse *r = NULL;
		struct grpc_ops g;
		int rc = 0;

		if (grpc_ops_alloc(&g, m) != 0) {
			grpc_ops_free(&g);
			return fg_err_set(err, ENOMEM, "out of memory for an etcd request");
		}
		for (size_t i = 0; i < m; i++) {
			Etcdserverpb__RequestOp op = ETCDSERVERPB__REQUEST_OP__INIT;
			Etcdserverpb__RangeRequest rq = ETCDSERVERPB__RANGE_REQUEST__INIT;

			g.range[i] = rq;
			g.range[i].key = pb_bytes(keys[at + i]);
			g.op[i] = op;
			g.op[i].request_case = ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_RANGE;
			g.op[i].request_range = &g.range[i];
			g.opp[i] = &g.op[i];
		}
		tr.n_success = m;
		tr.success = g.opp;
		rc = grpc_txn_call(e, &tr, &r, err);
		grpc_ops_free(&g);
		if (rc != 0)
			return rc;
		if (r->n_responses != m) {
			rc = fg_err_set(err, EPROTO, "etcd %s (gRPC): %zu answers to %zu reads",
					fg_etcd_endpoint(e), r->n_responses, m);
			etcdserverpb__txn_response__free_unpacked(r, NULL);
			return rc;
		}
		for (size_t i = 0; i < m && rc == 0; i++) {
			const Etcdserverpb__ResponseOp *ro = r->responses[i];
			const Etcdserverpb__RangeResponse *rr =
				ro->response_case == ETCDSERVERPB__RESPONSE_OP__RESPONSE_RESPONSE_RANGE
				? ro->response_range : NULL;
			const Etcdserverpb__KeyValue *kv;
			struct fg_etcd_kv out;

			if (rr == NULL || rr->n_kvs == 0) {
				rc = fn(ctx, at + i, NULL);
				continue;
			}
			kv = rr->kvs[0];
			/* NUL-terminated copies in scratch, as kv_decode gives. */
			e->scratch.len = 0;
			if (buf_reserve(&e->scratch, kv->key.len + kv->value.len + 2) != 0) {
				rc = fg_err_set(err, ENOMEM, "out of memory");
				break;
			}
			memcpy(e->scratch.p, kv->key.data, kv->key.len);
			e->scratch.p[kv->key.len] = '\0';
			memcpy(e->scratch.p + kv->key.len + 1, kv->value.data, kv->value.len);
			e->scratch.p[kv->key.len + 1 + kv->value.len] = '\0';
			out = (struct fg_etcd_kv){
				.key = e->scratch.p, .key_len = kv->key.len,
				.value = e->scratch.p + kv->key.len + 1, .value_len = kv->value.len,
				.create_revision = kv->create_revision, .mod_revision = kv->mod_revision,
				.version = kv->version,
			};
			rc = fn(ctx, at + i, &out);
		}
		etcdserverpb__txn_response__free_unpacked(r, NULL);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* ---- txn ---- */

int
fg_etcd_get_many(struct fg_etcd *e, const char *const *keys, size_t n,
		 fg_etcd_many_fn *fn, void *ctx, struct fg_err *err)
{
	if (e->grpc != NULL)
		return grpc_get_many(e, keys, n, fn, ctx, err);
	for (size_t at = 0; at < n; at += FG_ETCD_GET_MANY_CHUNK) {
		size_t m = n - at < FG_ETCD_GET_MANY_CHUNK ? n - at : FG_ETCD_GET_MANY_CHUNK;
		json_t *req = json_object(), *ops = json_array(), *reply, *resps;
		int rc;

		for (size_t i = 0; i < m; i++)
			json_array_append_new(ops, json_pack("{s:o}", "request_range",
							     range_request(keys[at + i], strlen(keys[at + i]),
									   NULL, 0)));
		json_object_set_new(req, "success", ops);
		rc = etcd_call(e, "/v3/kv/txn", req, &reply, err);
		if (rc != 0)
			return rc;
		resps = json_object_get(reply, "responses");
		if (json_array_size(resps) != m) {
			json_decref(reply);
			return fg_err_set(err, EPROTO, "etcd %s/v3/kv/txn: %zu answers to %zu reads",
					  fg_etcd_endpoint(e), json_array_size(resps), m);
		}
		for (size_t i = 0; i < m && rc == 0; i++) {
			json_t *kvs = json_object_get(json_object_get(json_array_get(resps, i),
								      "response_range"), "kvs");
			struct fg_etcd_kv kv;

			if (json_array_size(kvs) == 0) {
				rc = fn(ctx, at + i, NULL);
				continue;
			}
			rc = kv_decode(&e->scratch, json_array_get(kvs, 0), &kv);
			if (rc != 0) {
				rc = fg_err_set(err, -rc, "etcd %s/v3/kv/txn: key \"%s\" is not base64",
						fg_etcd_endpoint(e), keys[at + i]);
				break;
			}
			rc = fn(ctx, at + i, &kv);
		}
		json_decref(reply);
		if (rc != 0)
			return rc;
	}
	return 0;
}

static json_t *
txn_ops(const struct fg_etcd_op *ops, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n; i++) {
		json_t *r = json_object();

		json_object_set_new(r, "key", b64_str(ops[i].key));
		if (ops[i].type == FG_ETCD_PUT) {
			json_object_set_new(r, "value", b64_str(ops[i].value ? ops[i].value : ""));
			json_array_append_new(a, json_pack("{s:o}", "request_put", r));
		} else {
			json_array_append_new(a, json_pack("{s:o}", "request_delete_range", r));
		}
	}
	return a;
}

int
fg_etcd_txn(struct fg_etcd *e,
	    const struct fg_etcd_cmp *cmp, size_t n_cmp,
	    const struct fg_etcd_op *succ, size_t n_succ,
	    const struct fg_etcd_op *fail, size_t n_fail,
	    bool *succeeded, int64_t *revision, struct fg_err *err)
{
	static const char *const targets[] = {
		[FG_ETCD_VERSION] = "VERSION", [FG_ETCD_CREATE] = "CREATE",
		[FG_ETCD_MOD] = "MOD", [FG_ETCD_VALUE] = "VALUE",
	};
	static const char *const fields[] = {
		[FG_ETCD_VERSION] = "version", [FG_ETCD_CREATE] = "create_revision",
		[FG_ETCD_MOD] = "mod_revision", [FG_ETCD_VALUE] = "value",
	};
	static const char *const results[] = {
		[FG_ETCD_EQUAL] = "EQUAL", [FG_ETCD_NOT_EQUAL] = "NOT_EQUAL",
		[FG_ETCD_LESS] = "LESS", [FG_ETCD_GREATER] = "GREATER",
	};
	json_t *req, *cmps, *reply;
	int rc;

	if (e->grpc != NULL)
		return grpc_txn(e, cmp, n_cmp, succ, n_succ, fail, n_fail, succeeded, revision, err);
	req = json_object();
	cmps = json_array();
	for (size_t i = 0; i < n_cmp; i++) {
		const struct fg_etcd_cmp *c = &cmp[i];
		json_t *j;

		if ((unsigned int)c->target > FG_ETCD_VALUE || (unsigned int)c->result > FG_ETCD_GREATER) {
			json_decref(req);
			json_decref(cmps);
			return fg_err_set(err, EINVAL, "etcd txn: compare %zu on \"%s\" has no such target or result",
					  i + 1, c->key);
		}
		j = json_pack("{s:o,s:s,s:s}", "key", b64_str(c->key),
			      "target", targets[c->target], "result", results[c->result]);
		if (c->target == FG_ETCD_VALUE)
			json_object_set_new(j, fields[c->target], b64_str(c->value ? c->value : ""));
		else
			json_object_set_new(j, fields[c->target], json_integer(c->number));
		json_array_append_new(cmps, j);
	}
	json_object_set_new(req, "compare", cmps);
	json_object_set_new(req, "success", txn_ops(succ, n_succ));
	json_object_set_new(req, "failure", txn_ops(fail, n_fail));
	rc = etcd_call(e, "/v3/kv/txn", req, &reply, err);
	if (rc == -E2BIG && err != NULL)
		fg_err_prefix(err, "txn of %zu compares, %zu/%zu ops refused: ",
			      n_cmp, n_succ, n_fail);
	if (rc != 0)
		return rc;
	/* The gateway leaves "succeeded" out when it is false. */
	if (succeeded != NULL)
		*succeeded = json_is_true(json_object_get(reply, "succeeded"));
	if (revision != NULL)
		*revision = header_revision(reply);
	json_decref(reply);
	return 0;
}

int
fg_etcd_compact(struct fg_etcd *e, int64_t revision, struct fg_err *err)
{
	json_t *req = json_pack("{s:I,s:b}", "revision", (json_int_t)revision, "physical", 1);
	json_t *reply;
	int rc = etcd_call(e, "/v3/kv/compaction", req, &reply, err);

	if (rc == -ESTALE)
		return stale_error(err, revision);
	if (rc == 0)
		json_decref(reply);
	return rc;
}

int
fg_etcd_status(struct fg_etcd *e, const char *endpoint,
	       struct fg_etcd_status *st, struct fg_err *err)
{
	json_t *reply = NULL, *h;
	int rc;

	if (endpoint == NULL) {
		rc = etcd_call(e, "/v3/maintenance/status", json_object(), &reply, err);
	} else {
		/* One member only: no failover. */
		struct fg_etcd one = *e;
		char *eps[1] = { (char *)endpoint };

		one.eps = eps;
		one.n_eps = 1;
		one.cur = 0;
		rc = etcd_call(&one, "/v3/maintenance/status", json_object(), &reply, err);
		e->reply = one.reply;   /* the buffer may have moved */
	}
	if (rc != 0)
		return rc;
	h = json_object_get(reply, "header");
	st->member_id = j_u64(h, "member_id");
	st->leader_id = j_u64(reply, "leader");
	st->revision = j_i64(h, "revision");
	st->raft_term = j_i64(reply, "raftTerm");
	if (st->raft_term == 0)
		st->raft_term = j_i64(reply, "raft_term");
	json_decref(reply);
	return 0;
}

/* ---- the watch ---- */

static int64_t
ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(now.tv_sec - t0->tv_sec) * 1000 +
	       (now.tv_nsec - t0->tv_nsec) / 1000000;
}

bool
fg_etcd_watching(const struct fg_etcd *e)
{
	return e->watching;
}

const char *
fg_etcd_watch_endpoint(const struct fg_etcd *e)
{
	return e->watching ? e->eps[e->w_ep] : NULL;
}

void
fg_etcd_watch_stop(struct fg_etcd *e)
{
	etcd_grpc_stream_close(e->wstream);
	e->wstream = NULL;
	if (e->wh != NULL) {
		curl_multi_remove_handle(e->multi, e->wh);
		curl_easy_cleanup(e->wh);
		e->wh = NULL;
	}
	free(e->w_body);
	e->w_body = NULL;
	e->watching = false;
	e->wbuf.len = 0;
	e->w_scanned = 0;
	e->n_evs = e->ev_next = 0;
}

/* The watch is over: a later watch starts at the next endpoint, unless the
 * member itself said why (compaction, a refusal). */
static int
watch_over(struct fg_etcd *e, int rc, bool member_gone)
{
	if (member_gone && e->n_eps > 1)
		e->cur = (e->w_ep + 1) % e->n_eps;
	fg_etcd_watch_stop(e);
	return rc;
}

static int watch_deliver(struct fg_etcd *e, fg_etcd_watch_fn *fn, void *ctx, int *delivered);

/* The watch over gRPC: the create request goes out at once on a stream to
 * the endpoint that answered last. */
static int
grpc_watch_start(struct fg_etcd *e, const char *key, const char *range_end,
		 int64_t start_revision, struct fg_err *err)
{
	Etcdserverpb__WatchCreateRequest cr = ETCDSERVERPB__WATCH_CREATE_REQUEST__INIT;
	Etcdserverpb__WatchRequest wr = ETCDSERVERPB__WATCH_REQUEST__INIT;
	char end[8] = "";
	uint8_t *buf;
	size_t len;
	char msg[200];

	cr.key = pb_bytes(key);
	if (range_end != NULL)
		/* "" is every key from key on: etcd's "\0". */
		cr.range_end = range_end[0] ? pb_bytes(range_end)
			: (ProtobufCBinaryData){ .len = 1, .data = (uint8_t *)end };
	cr.start_revision = start_revision > 0 ? start_revision : 0;
	cr.progress_notify = true;
	wr.request_union_case = ETCDSERVERPB__WATCH_REQUEST__REQUEST_UNION_CREATE_REQUEST;
	wr.create_request = &cr;
	len = etcdserverpb__watch_request__get_packed_size(&wr);
	buf = malloc(len ? len : 1);
	if (buf == NULL)
		return fg_err_set(err, ENOMEM, "out of memory for an etcd watch");
	etcdserverpb__watch_request__pack(&wr, buf);
	e->w_ep = e->cur;
	e->wstream = etcd_grpc_stream_open(e->grpc, e->w_ep, "/etcdserverpb.Watch/Watch",
					   buf, len, msg, sizeof(msg));
	free(buf);
	if (e->wstream == NULL)
		return fg_err_set(err, ENOMEM, "etcd %s (gRPC) watch: %s", e->eps[e->w_ep], msg);
	e->watching = true;
	e->created = false;
	e->w_progress = 0;
	clock_gettime(CLOCK_MONOTONIC, &e->w_started);
	return 0;
}

/* Room for n events of one response, the arena emptied; the offsets
 * (key, value) of each event's strings in the arena, to fill; NULL: no
 * memory. */
static size_t *
watch_evs_begin(struct fg_etcd *e, size_t n)
{
	e->n_evs = e->ev_next = 0;
	e->w_arena.len = 0;
	if (n > e->cap_evs) {
		struct fg_etcd_event *p = realloc(e->evs, n * sizeof(*p));

		if (p == NULL)
			return NULL;
		e->evs = p;
		e->cap_evs = n;
	}
	return calloc(n ? 2 * n : 1, sizeof(size_t));
}

/* The arena has stopped moving: point the events into it. */
static void
watch_evs_end(struct fg_etcd *e, size_t *offs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		e->evs[i].kv.key = e->w_arena.p + offs[2 * i];
		e->evs[i].kv.value = e->w_arena.p + offs[2 * i + 1];
	}
	free(offs);
	e->n_evs = n;
}

/* One WatchResponse's events into e->evs, like watch_take_events. */
static int
grpc_watch_take_events(struct fg_etcd *e, const Etcdserverpb__WatchResponse *r)
{
	size_t n = r->n_events, *offs;

	offs = watch_evs_begin(e, n);
	if (offs == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const Etcdserverpb__Event *ev = r->events[i];
		const Etcdserverpb__KeyValue *kv = ev->kv;
		struct fg_etcd_event *out = &e->evs[i];
		size_t kl = kv ? kv->key.len : 0, vl = kv ? kv->value.len : 0;

		memset(out, 0, sizeof(*out));
		out->is_delete = ev->type == ETCDSERVERPB__EVENT__EVENT_TYPE__DELETE;
		if (buf_reserve(&e->w_arena, kl + vl + 2) != 0) {
			free(offs);
			return -ENOMEM;
		}
		offs[2 * i] = e->w_arena.len;
		if (kl)
			memcpy(e->w_arena.p + e->w_arena.len, kv->key.data, kl);
		e->w_arena.p[e->w_arena.len + kl] = '\0';
		e->w_arena.len += kl + 1;
		offs[2 * i + 1] = e->w_arena.len;
		if (vl)
			memcpy(e->w_arena.p + e->w_arena.len, kv->value.data, vl);
		e->w_arena.p[e->w_arena.len + vl] = '\0';
		e->w_arena.len += vl + 1;
		out->kv.key_len = kl;
		out->kv.value_len = vl;
		if (kv != NULL) {
			out->kv.create_revision = kv->create_revision;
			out->kv.mod_revision = kv->mod_revision;
			out->kv.version = kv->version;
		}
	}
	watch_evs_end(e, offs, n);
	return 0;
}

/* One reply of the stream, as watch_object does for the gateway's. */
static int
grpc_watch_reply(struct fg_etcd *e, const Etcdserverpb__WatchResponse *r, int64_t *compact_rev,
		 int *over_rc, struct fg_err *err)
{
	const char *ep = e->eps[e->w_ep];

	if (r->canceled) {
		if (r->compact_revision > 0) {
			if (compact_rev != NULL)
				*compact_rev = r->compact_revision;
			*over_rc = fg_err_set(err, ESTALE,
					      "etcd %s (gRPC) watch: the start revision has been compacted (compact revision %" PRId64 ")",
					      ep, (int64_t)r->compact_revision);
		} else {
			*over_rc = fg_err_set(err, EIO, "etcd %s (gRPC) watch: canceled: %.150s", ep,
					      r->cancel_reason && *r->cancel_reason ? r->cancel_reason
										  : "(no reason)");
		}
		return 1;
	}
	if (r->created) {
		e->created = true;
		return 0;
	}
	if (r->n_events == 0) {
		/* A progress notification. */
		if (r->header != NULL && r->header->revision > e->w_progress)
			e->w_progress = r->header->revision;
		return 0;
	}
	if (grpc_watch_take_events(e, r) != 0) {
		*over_rc = fg_err_set(err, ENOMEM, "out of memory for the watch's events");
		return 1;
	}
	return 0;
}

/* fg_etcd_watch_poll over gRPC: the watch's status, or 0. */
static int
grpc_watch_poll(struct fg_etcd *e, int timeout_ms, fg_etcd_watch_fn *fn, void *ctx,
		int *delivered, int64_t *compact_rev, struct fg_err *err)
{
	bool waited = false;

	for (;;) {
		uint8_t *msg_buf = NULL;
		size_t len = 0;
		int status = 0, over_rc = 0, got;
		char msg[200];

		got = etcd_grpc_stream_next(e->wstream, waited ? 0 : timeout_ms, &msg_buf, &len,
					    &status, msg, sizeof(msg));
		if (got < 0) {
			over_rc = fg_err_set(err, ECONNRESET, "etcd %s (gRPC) watch: the stream ended (status %d: %.120s)",
					     e->eps[e->w_ep], status, msg);
			return watch_over(e, over_rc, true);
		}
		if (got == 0) {
			if (!e->created && ms_since(&e->w_started) > (int64_t)e->timeout_ms) {
				over_rc = fg_err_set(err, ECONNRESET,
						     "etcd %s (gRPC) watch: no answer to the watch within %u ms",
						     e->eps[e->w_ep], e->timeout_ms);
				return watch_over(e, over_rc, true);
			}
			if (*delivered > 0 || waited)
				return 0;
			waited = true;
			continue;
		}
		{
			Etcdserverpb__WatchResponse *r = etcdserverpb__watch_response__unpack(NULL, len, msg_buf);
			int k;

			free(msg_buf);
			if (r == NULL) {
				over_rc = fg_err_set(err, EPROTO, "etcd %s (gRPC) watch: a reply that does not decode",
						     e->eps[e->w_ep]);
				return watch_over(e, over_rc, false);
			}
			k = grpc_watch_reply(e, r, compact_rev, &over_rc, err);
			etcdserverpb__watch_response__free_unpacked(r, NULL);
			if (k != 0)
				return watch_over(e, over_rc, false);
		}
		over_rc = watch_deliver(e, fn, ctx, delivered);
		if (over_rc != 0)
			return over_rc;
		waited = true;          /* take what has come, without waiting again */
	}
}

int
fg_etcd_watch_start(struct fg_etcd *e, const char *key, const char *range_end,
		    int64_t start_revision, struct fg_err *err)
{
	json_t *create, *req;
	char url[512];

	fg_etcd_watch_stop(e);
	if (e->grpc != NULL)
		return grpc_watch_start(e, key, range_end, start_revision, err);
	create = range_request(key, strlen(key), range_end, 0);
	if (start_revision > 0)
		json_object_set_new(create, "start_revision", json_integer(start_revision));
	json_object_set_new(create, "progress_notify", json_true());
	req = json_pack("{s:o}", "create_request", create);
	e->w_body = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	e->wh = curl_easy_init();
	if (e->w_body == NULL || e->wh == NULL) {
		fg_etcd_watch_stop(e);
		return fg_err_set(err, ENOMEM, "out of memory for an etcd watch");
	}
	e->w_ep = e->cur;
	snprintf(url, sizeof(url), "%s/v3/watch", e->eps[e->w_ep]);
	curl_easy_setopt(e->wh, CURLOPT_URL, url);
	curl_easy_setopt(e->wh, CURLOPT_HTTPHEADER, e->hdrs);
	curl_easy_setopt(e->wh, CURLOPT_POSTFIELDS, e->w_body);
	curl_easy_setopt(e->wh, CURLOPT_WRITEFUNCTION, buf_write_cb);
	curl_easy_setopt(e->wh, CURLOPT_WRITEDATA, &e->wbuf);
	curl_easy_setopt(e->wh, CURLOPT_CONNECTTIMEOUT_MS, (long)e->connect_ms);
	curl_easy_setopt(e->wh, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e->wh, CURLOPT_PROXY, "");
	curl_easy_setopt(e->wh, CURLOPT_TCP_KEEPALIVE, 1L);
	if (curl_multi_add_handle(e->multi, e->wh) != CURLM_OK) {
		fg_etcd_watch_stop(e);
		return fg_err_set(err, ENOMEM, "cannot start an etcd watch");
	}
	e->watching = true;
	e->created = false;
	e->w_progress = 0;
	clock_gettime(CLOCK_MONOTONIC, &e->w_started);
	return 0;
}

/* Put one response's events into e->evs (keys and values in w_arena). */
static int
watch_take_events(struct fg_etcd *e, const json_t *events)
{
	size_t n = json_array_size(events), i;
	const json_t *ev;
	size_t *offs;

	offs = watch_evs_begin(e, n);
	if (offs == NULL)
		return -ENOMEM;
	json_array_foreach(events, i, ev) {
		const json_t *kv = json_object_get(ev, "kv");
		struct fg_etcd_event *out = &e->evs[i];
		const char *type = json_string_value(json_object_get(ev, "type"));
		int rc;

		memset(out, 0, sizeof(*out));
		out->is_delete = type != NULL && strcmp(type, "DELETE") == 0;
		rc = b64_decode_into(&e->w_arena, json_object_get(kv, "key"), &offs[2 * i],
				     &out->kv.key_len);
		if (rc == 0)
			rc = b64_decode_into(&e->w_arena, json_object_get(kv, "value"),
					     &offs[2 * i + 1], &out->kv.value_len);
		if (rc != 0) {
			free(offs);
			return rc;
		}
		out->kv.create_revision = j_i64(kv, "create_revision");
		out->kv.mod_revision = j_i64(kv, "mod_revision");
		out->kv.version = j_i64(kv, "version");
	}
	watch_evs_end(e, offs, n);
	return 0;
}

/* Hand out the parsed revisions, one callback each. The number handed
 * out, or the callback's non-zero return (the rest stays for later). */
static int
watch_deliver(struct fg_etcd *e, fg_etcd_watch_fn *fn, void *ctx, int *delivered)
{
	while (e->ev_next < e->n_evs) {
		size_t first = e->ev_next, end = first + 1;
		int64_t rev = e->evs[first].kv.mod_revision;
		int rc;

		while (end < e->n_evs && e->evs[end].kv.mod_revision == rev)
			end++;
		e->ev_next = end;
		if (rev > e->w_progress)
			e->w_progress = rev;
		(*delivered)++;
		rc = fn(ctx, rev, &e->evs[first], end - first);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* One {"result":...} (or {"error":...}) object of the stream. 0 to go on,
 * 1 when the watch is over (rc in *over_rc). */
static int
watch_object(struct fg_etcd *e, const json_t *o, int64_t *compact_rev,
	     int *over_rc, struct fg_err *err)
{
	const json_t *r = json_object_get(o, "result"), *events;
	const char *ep = e->eps[e->w_ep];

	if (r == NULL) {
		const json_t *eo = json_object_get(o, "error");
		const char *msg = json_string_value(json_object_get(eo, "message"));

		if (msg == NULL)
			msg = json_string_value(eo);
		*over_rc = fg_err_set(err, ECONNRESET, "etcd %s/v3/watch: the stream failed: %.150s",
				      ep, msg ? msg : "(no message)");
		return 1;
	}
	if (json_is_true(json_object_get(r, "canceled"))) {
		int64_t c = j_i64(r, "compact_revision");
		const char *why = json_string_value(json_object_get(r, "cancel_reason"));

		if (c > 0) {
			if (compact_rev != NULL)
				*compact_rev = c;
			*over_rc = fg_err_set(err, ESTALE,
					      "etcd %s/v3/watch: the start revision has been compacted (compact revision %" PRId64 ")",
					      ep, c);
		} else {
			*over_rc = fg_err_set(err, EIO, "etcd %s/v3/watch: canceled: %.150s", ep,
					      why ? why : "(no reason)");
		}
		return 1;
	}
	if (json_is_true(json_object_get(r, "created"))) {
		e->created = true;
		return 0;
	}
	events = json_object_get(r, "events");
	if (json_array_size(events) == 0) {
		/* A progress notification: every event up to its revision has
		 * been sent. */
		int64_t rev = header_revision(r);

		if (rev > e->w_progress)
			e->w_progress = rev;
		return 0;
	}
	if (watch_take_events(e, events) != 0) {
		*over_rc = fg_err_set(err, EPROTO, "etcd %s/v3/watch: an event's key or value is not base64",
				      ep);
		return 1;
	}
	return 0;
}

/*
 * Parse whole objects from the stream's bytes, delivering each response's
 * revisions before reading the next response. Returns 0 to go on, 1 when the
 * watch is over (*over_rc), or 2 when a callback stopped (*over_rc its code).
 */
static int
watch_parse(struct fg_etcd *e, fg_etcd_watch_fn *fn, void *ctx, int *delivered,
	    int64_t *compact_rev, int *over_rc, struct fg_err *err)
{
	size_t pos = 0;
	int r = 0;

	for (;;) {
		json_error_t jerr;
		json_t *o;

		while (pos < e->wbuf.len && isspace((unsigned char)e->wbuf.p[pos]))
			pos++;
		if (pos == e->wbuf.len)
			break;
		/* The gateway ends each object with '\n': wait for one
		 * rather than parse a half object again and again. */
		if (memchr(e->wbuf.p + pos + e->w_scanned, '\n',
			   e->wbuf.len - pos - e->w_scanned) == NULL) {
			e->w_scanned = e->wbuf.len - pos;
			break;
		}
		o = json_loadb(e->wbuf.p + pos, e->wbuf.len - pos, JSON_DISABLE_EOF_CHECK, &jerr);
		if (o == NULL) {
			if (json_error_code(&jerr) == json_error_premature_end_of_input) {
				e->w_scanned = e->wbuf.len - pos;
				break;
			}
			*over_rc = fg_err_set(err, EPROTO, "etcd %s/v3/watch: the stream is not JSON: %s",
					      e->eps[e->w_ep], jerr.text);
			r = 1;
			break;
		}
		pos += (size_t)jerr.position;
		e->w_scanned = 0;
		r = watch_object(e, o, compact_rev, over_rc, err);
		json_decref(o);
		if (r != 0)
			break;
		*over_rc = watch_deliver(e, fn, ctx, delivered);
		if (*over_rc != 0) {
			r = 2;
			break;
		}
	}
	if (pos > 0) {
		memmove(e->wbuf.p, e->wbuf.p + pos, e->wbuf.len - pos);
		e->wbuf.len -= pos;
	}
	return r;
}

int
fg_etcd_watch_poll(struct fg_etcd *e, int timeout_ms,
		   fg_etcd_watch_fn *fn, void *ctx,
		   int64_t *compact_rev, int64_t *progress_rev,
		   struct fg_err *err)
{
	int delivered = 0, over_rc = 0, running = 0, r;
	bool waited = false;

	if (!e->watching)
		return fg_err_set(err, EINVAL, "no etcd watch is running");
	/* What a stopped callback left. */
	over_rc = watch_deliver(e, fn, ctx, &delivered);
	if (over_rc != 0)
		goto out;
	if (e->wstream != NULL) {
		over_rc = grpc_watch_poll(e, timeout_ms, fn, ctx, &delivered, compact_rev, err);
		goto out;
	}
	for (;;) {
		CURLMsg *m;
		int left;

		curl_multi_perform(e->multi, &running);
		r = watch_parse(e, fn, ctx, &delivered, compact_rev, &over_rc, err);
		if (r == 1) {
			over_rc = watch_over(e, over_rc, false);
			goto out;
		}
		if (r == 2)
			goto out;
		while ((m = curl_multi_info_read(e->multi, &left)) != NULL) {
			long http = 0;

			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(e->wh, CURLINFO_RESPONSE_CODE, &http);
			if (m->data.result != CURLE_OK)
				over_rc = fg_err_set(err, ECONNRESET, "etcd %s/v3/watch: %s",
						     e->eps[e->w_ep],
						     curl_easy_strerror(m->data.result));
			else
				over_rc = fg_err_set(err, ECONNRESET,
						     "etcd %s/v3/watch: the stream ended (HTTP %ld)",
						     e->eps[e->w_ep], http);
			over_rc = watch_over(e, over_rc, true);
			goto out;
		}
		if (!e->created && ms_since(&e->w_started) > (int64_t)e->timeout_ms) {
			over_rc = fg_err_set(err, ECONNRESET,
					     "etcd %s/v3/watch: no answer to the watch within %u ms",
					     e->eps[e->w_ep], e->timeout_ms);
			over_rc = watch_over(e, over_rc, true);
			goto out;
		}
		if (delivered > 0 || waited)
			break;
		waited = true;
		curl_multi_poll(e->multi, NULL, 0, timeout_ms, NULL);
	}
out:
	if (progress_rev != NULL)
		*progress_rev = e->w_progress;
	return over_rc != 0 ? over_rc : delivered;
}
