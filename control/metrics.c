/*
 * The Prometheus endpoint (see metrics.h).
 *
 * Why MHD runs on the control thread, in its external mode, instead of in a
 * thread of its own: everything a scrape reports beyond the packet counters
 * (the tenant table walked for per-tenant labels, the journal, the request
 * latencies, the connections) belongs to the control thread, which is the
 * tables' only writer. Serving the scrape there reads it all without a lock,
 * a snapshot or a copy, and a scrape sees the state between two control
 * requests, never in the middle of one. The price is that a scrape waits
 * for the control request in progress and delays the next one by the time
 * it takes to render (about a millisecond per thousand tenants): small next
 * to a journal fsync. The control loop calls fg_metrics_poll() after each
 * round of the control socket (at most 10 ms apart), and MHD_run() never
 * blocks. The packet counters are read as `stats` reads them: each worker's
 * block with relaxed atomic loads, once per scrape, so the totals are the
 * sums of the per-worker values printed with them.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>
#include <rte_hash.h>

#include "../dataplane/router.h"
#include "ctlstate.h"
#include "latency.h"
#include "metrics.h"
#include "ownership.h"
#include "server.h"

/*
 * Slow clients. MHD runs in its external mode with epoll on the control
 * thread (above), so a connection that sends half a request and stalls
 * costs nothing but its slot: MHD reads what has arrived and goes on. What
 * makes a scrape wait is a full set of slots (MHD then leaves new
 * connections in the listen queue until one frees). So: slots for many
 * more connections than scrapers ever open, at most a quarter of them for
 * one address (a slow or hostile host cannot take them all; on the default
 * loopback address every client is 127.0.0.1, so this is not lower), and a
 * connection idle for FG_METRICS_IDLE_SECONDS is closed. A scrape sends its
 * request at once and reads at once, so 5 s idle is never a scrape's. A
 * thread per connection or a pool would not help: the scrape is rendered
 * on the control thread in any case. Each slot costs MHD's 32 KiB buffer
 * while held, and a descriptor (256 with the control socket's 64 stay
 * well under the usual 1024).
 */
#define FG_METRICS_MAX_CONNS 256u
#define FG_METRICS_MAX_PER_IP 64u
#define FG_METRICS_IDLE_SECONDS 5u

struct fg_metrics {
	struct MHD_Daemon *mhd;
	int fd;
	uint32_t tenant_labels_max;
	const struct fg_router *router;
	const struct fg_ownership *own;
	const struct fg_server *server;
	struct fg_ctl_state *st;
};

/* ---- the exposition text ------------------------------------------------- */

static void
fg_head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The first reason counted per tenant: before it, the tenant is not known
 * (SPEC 3: checks 1-4, and unknown_tenant). */
#define FG_FIRST_TENANT_REASON FG_DROP_tenant_suspended

static void
fg_render_counters(FILE *f, const struct fg_router *r)
{
	static const struct {
		const char *name, *help;
		size_t off;
	} main_ctr[] = {
		{ "rx_packets", "Packets received by the workers.",
		  offsetof(struct fg_counter_totals, rx_packets) },
		{ "forwarded_packets", "Packets that passed every check and were sent to their sinks.",
		  offsetof(struct fg_counter_totals, forwarded_packets) },
		{ "copies_sent", "Copies queued for transmit, one per sink of a forwarded packet.",
		  offsetof(struct fg_counter_totals, copies_sent) },
		{ "tx_full", "Copies that could not be built or queued for transmit.",
		  offsetof(struct fg_counter_totals, tx_full) },
	};
	unsigned int n = r != NULL ? r->n_workers : 0;
	struct fg_counter_totals *w = calloc(n ? n : 1, sizeof(*w));
	struct fg_counter_totals tot = { 0 };
	char name[96];

	if (w == NULL)
		return;
	/* One read of each worker: the totals are the sums of what follows. */
	for (unsigned int i = 0; i < n; i++) {
		struct fg_counters *c = r->workers[i]->ctr;

		fg_counters_sum(&c, 1, &w[i]);
		tot.rx_packets += w[i].rx_packets;
		tot.forwarded_packets += w[i].forwarded_packets;
		tot.copies_sent += w[i].copies_sent;
		tot.tx_full += w[i].tx_full;
		for (int k = 1; k < FG_REASON_END; k++)
			tot.drops[k] += w[i].drops[k];
	}
	for (size_t k = 0; k < RTE_DIM(main_ctr); k++) {
		snprintf(name, sizeof(name), "framegate_%s_total", main_ctr[k].name);
		fg_head(f, name, "counter", main_ctr[k].help);
		fprintf(f, "%s %" PRIu64 "\n", name,
			*(const uint64_t *)((const char *)&tot + main_ctr[k].off));
	}
	fg_head(f, "framegate_drops_total", "counter",
		"Packets dropped, by the first check they failed (docs/drop-reasons.md).");
	for (int k = 1; k < FG_REASON_END; k++)
		fprintf(f, "framegate_drops_total{reason=\"%s\"} %" PRIu64 "\n",
			fg_reason_name(k), tot.drops[k]);

	fg_head(f, "framegate_workers", "gauge", "Worker lcores forwarding packets.");
	fprintf(f, "framegate_workers %u\n", n);
	for (size_t k = 0; k < RTE_DIM(main_ctr); k++) {
		snprintf(name, sizeof(name), "framegate_worker_%s_total", main_ctr[k].name);
		fg_head(f, name, "counter", main_ctr[k].help);
		for (unsigned int i = 0; i < n; i++)
			fprintf(f, "%s{worker=\"%u\"} %" PRIu64 "\n", name, i,
				*(const uint64_t *)((const char *)&w[i] + main_ctr[k].off));
	}
	fg_head(f, "framegate_worker_drops_total", "counter",
		"Packets dropped by each worker, by reason.");
	for (unsigned int i = 0; i < n; i++)
		for (int k = 1; k < FG_REASON_END; k++)
			fprintf(f, "framegate_worker_drops_total{worker=\"%u\",reason=\"%s\"} %" PRIu64 "\n",
				i, fg_reason_name(k), w[i].drops[k]);
	free(w);
}

struct fg_tenant_ref {
	uint32_t id, slot;
};

static int
fg_tenant_ref_cmp(const void *a, const void *b)
{
	uint32_t x = ((const struct fg_tenant_ref *)a)->id, y = ((const struct fg_tenant_ref *)b)->id;

	return (x > y) - (x < y);
}

/* Per tenant, with at most tenant_labels_max tenant label values: the
 * tenants with the lowest ids get their own (so the set stays the same from
 * one scrape to the next while tenants are only added above it), and the
 * others are summed under tenant="other". */
static void
fg_render_tenants(FILE *f, const struct fg_metrics *m)
{
	const struct fg_tables *t = fg_ownership_tables(m->own);
	const struct fg_router *r = m->router;
	uint32_t n_t = fg_tables_count_tenants(t), n = 0, labelled;
	struct fg_counters *w[RTE_MAX_LCORE];
	struct fg_tenant_ref *refs = malloc(((size_t)n_t + 1) * sizeof(*refs));
	fg_tenant_row (*rows) = NULL, other = { 0 };
	const void *key;
	void *data;
	uint32_t next = 0;

	if (refs == NULL)
		return;
	/* The control thread is the tables' writer: walking them is safe. */
	while (n <= n_t && rte_hash_iterate(t->tenants, &key, &data, &next) >= 0) {
		const struct fg_tenant *e = data;

		refs[n++] = (struct fg_tenant_ref){ .id = e->tenant_id, .slot = e->slot };
	}
	qsort(refs, n, sizeof(*refs), fg_tenant_ref_cmp);
	labelled = n < m->tenant_labels_max ? n : m->tenant_labels_max;
	rows = calloc(labelled ? labelled : 1, sizeof(*rows));
	if (rows == NULL) {
		free(refs);
		return;
	}
	for (unsigned int i = 0; r != NULL && i < r->n_workers; i++)
		w[i] = r->workers[i]->ctr;
	for (uint32_t i = 0; r != NULL && i < n; i++) {
		fg_tenant_row row;

		fg_counters_sum_tenant(w, r->n_workers, refs[i].slot, row);
		if (i < labelled) {
			memcpy(rows[i], row, sizeof(row));
		} else {
			for (int k = 0; k < FG_REASON_END; k++)
				other[k] += row[k];
		}
	}
	fg_head(f, "framegate_tenant_label_limit", "gauge",
		"Tenants with a label of their own (metrics.tenant_labels_max); the others are summed under tenant=\"other\".");
	fprintf(f, "framegate_tenant_label_limit %" PRIu32 "\n", m->tenant_labels_max);
	fg_head(f, "framegate_tenant_forwarded_packets_total", "counter",
		"Packets of each tenant forwarded.");
	for (uint32_t i = 0; i < labelled; i++)
		fprintf(f, "framegate_tenant_forwarded_packets_total{tenant=\"%" PRIu32 "\"} %" PRIu64 "\n",
			refs[i].id, rows[i][FG_TENANT_FORWARDED]);
	if (n > labelled)
		fprintf(f, "framegate_tenant_forwarded_packets_total{tenant=\"other\"} %" PRIu64 "\n",
			other[FG_TENANT_FORWARDED]);
	fg_head(f, "framegate_tenant_drops_total", "counter",
		"Packets of each tenant dropped, by reason (the reasons checked once the tenant is known).");
	for (uint32_t i = 0; i < labelled; i++)
		for (int k = FG_FIRST_TENANT_REASON; k < FG_REASON_END; k++)
			fprintf(f, "framegate_tenant_drops_total{tenant=\"%" PRIu32 "\",reason=\"%s\"} %" PRIu64 "\n",
				refs[i].id, fg_reason_name(k), rows[i][k]);
	for (int k = FG_FIRST_TENANT_REASON; n > labelled && k < FG_REASON_END; k++)
		fprintf(f, "framegate_tenant_drops_total{tenant=\"other\",reason=\"%s\"} %" PRIu64 "\n",
			fg_reason_name(k), other[k]);
	free(rows);
	free(refs);
}

static void
fg_render_latency(FILE *f, const struct fg_server *s)
{
	static const double bounds[FG_LATENCY_N_BOUNDS] = FG_LATENCY_BOUNDS;
	const struct fg_latency *l;
	const char *kind;

	fg_head(f, "framegate_control_request_seconds", "histogram",
		"Time from reading a control request to queueing its reply, by command (for a change: its check, journal fsync, apply and grace period).");
	/* Only the kinds used so far: a router that never saw a load has no
	 * load series (they appear with the first one). */
	for (unsigned int i = 0; s != NULL && (l = fg_server_latency(s, i, &kind)) != NULL; i++) {
		uint64_t cum = 0;

		if (l->count == 0)
			continue;

		for (int b = 0; b < FG_LATENCY_N_BOUNDS; b++) {
			cum += l->bucket[b];
			fprintf(f, "framegate_control_request_seconds_bucket{cmd=\"%s\",le=\"%g\"} %" PRIu64 "\n",
				kind, bounds[b], cum);
		}
		fprintf(f, "framegate_control_request_seconds_bucket{cmd=\"%s\",le=\"+Inf\"} %" PRIu64 "\n",
			kind, l->count);
		fprintf(f, "framegate_control_request_seconds_sum{cmd=\"%s\"} %.9g\n", kind, l->sum);
		fprintf(f, "framegate_control_request_seconds_count{cmd=\"%s\"} %" PRIu64 "\n",
			kind, l->count);
	}
}

static void
fg_render_control(FILE *f, const struct fg_ctl_values *v, const struct fg_store_values *st)
{
	static const char *const tables[] = { "tenants", "sinks", "devices" };
	const uint32_t used[] = { v->tenants, v->sinks, v->devices };
	const uint32_t cap[] = { v->max_tenants, v->max_sinks, v->max_devices };

	fg_head(f, "framegate_table_entries", "gauge", "Entries in each ownership table.");
	for (int i = 0; i < 3; i++)
		fprintf(f, "framegate_table_entries{table=\"%s\"} %" PRIu32 "\n", tables[i], used[i]);
	fg_head(f, "framegate_table_capacity", "gauge",
		"Capacity of each ownership table (tables.max_* in the configuration).");
	for (int i = 0; i < 3; i++)
		fprintf(f, "framegate_table_capacity{table=\"%s\"} %" PRIu32 "\n", tables[i], cap[i]);
	fg_head(f, "framegate_control_connections", "gauge", "Open connections to the control socket.");
	fprintf(f, "framegate_control_connections %" PRIu32 "\n", v->connections);
	fg_head(f, "framegate_control_changes_applied_total", "counter",
		"Changes applied (acknowledged) since the router started.");
	fprintf(f, "framegate_control_changes_applied_total %" PRIu64 "\n", v->changes_applied);
	fg_head(f, "framegate_control_group_commits_total", "counter",
		"Group commits that carried single changes.");
	fprintf(f, "framegate_control_group_commits_total %" PRIu64 "\n", v->group_commits);
	fg_head(f, "framegate_control_start_time_seconds", "gauge",
		"When the control server started, in seconds since the epoch.");
	fprintf(f, "framegate_control_start_time_seconds %" PRId64 "\n", v->started_unix);
	fg_head(f, "framegate_control_last_change_time_seconds", "gauge",
		"When a change was last applied, in seconds since the epoch; 0 when none since the start.");
	fprintf(f, "framegate_control_last_change_time_seconds %" PRId64 "\n", v->last_change_unix);
	if (v->has_journal) {
		fg_head(f, "framegate_journal_bytes", "gauge",
			"Size of journal.log (compacted into a snapshot past compact_bytes).");
		fprintf(f, "framegate_journal_bytes %" PRIu64 "\n", v->journal_bytes);
		fg_head(f, "framegate_journal_records", "gauge", "Records in journal.log.");
		fprintf(f, "framegate_journal_records %" PRIu64 "\n", v->journal_records);
		fg_head(f, "framegate_journal_generation", "gauge",
			"Journal generation (one more after each compaction).");
		fprintf(f, "framegate_journal_generation %" PRIu32 "\n", v->journal_generation);
	}
	if (v->shield != FG_SHIELD_STATE_NONE) {
		fg_head(f, "framegate_shield_in_step", "gauge",
			"1 when every change reached the XDP shield's maps, 0 after a failed map write until a resync.");
		fprintf(f, "framegate_shield_in_step %d\n", v->shield == FG_SHIELD_STATE_IN_STEP);
		fg_head(f, "framegate_shield_map_write_failures_total", "counter",
			"Writes to the shield's maps that failed since the last resync.");
		fprintf(f, "framegate_shield_map_write_failures_total %" PRIu64 "\n", v->shield_faults);
	}
	if (st->following) {
		struct timespec now;

		clock_gettime(CLOCK_REALTIME, &now);
		fg_head(f, "framegate_store_revision", "gauge",
			"The store revision the tables enforce.");
		fprintf(f, "framegate_store_revision %" PRId64 "\n", st->enforced_revision);
		fg_head(f, "framegate_store_lag_revisions", "gauge",
			"Revisions the store has that the tables do not enforce yet.");
		fprintf(f, "framegate_store_lag_revisions %" PRId64 "\n",
			st->store_revision - st->enforced_revision);
		if (st->synced_at >= 0) {
			fg_head(f, "framegate_store_last_sync_seconds", "gauge",
				"Seconds since the follower last confirmed it is in step with the store.");
			fprintf(f, "framegate_store_last_sync_seconds %.3f\n",
				(double)now.tv_sec + now.tv_nsec / 1e9 - st->synced_at);
		}
	}
}

char *
fg_metrics_render(struct fg_metrics *m, size_t *len)
{
	struct fg_ctl_values v;
	struct fg_store_values st;
	char *text = NULL;
	FILE *f = open_memstream(&text, len);

	if (f == NULL)
		return NULL;
	fg_ctl_state_read(m->st, &v, &st);
	fg_render_counters(f, m->router);
	fg_render_tenants(f, m);
	fg_render_latency(f, m->server);
	fg_render_control(f, &v, &st);
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* ---- HTTP ------------------------------------------------------------------ */

static enum MHD_Result
fg_metrics_answer(void *cls, struct MHD_Connection *c, const char *url,
		  const char *method, const char *version, const char *upload_data,
		  size_t *upload_data_size, void **req_cls)
{
	static const char not_found[] = "framegate serves its metrics at /metrics\n";
	static const char bad_method[] = "only GET and HEAD\n";
	struct fg_metrics *m = cls;
	struct MHD_Response *res;
	enum MHD_Result ret;
	unsigned int status = MHD_HTTP_OK;
	size_t len = 0;
	char *text;

	(void)version;
	(void)upload_data;
	(void)upload_data_size;
	(void)req_cls;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		status = MHD_HTTP_METHOD_NOT_ALLOWED;
		res = MHD_create_response_from_buffer(sizeof(bad_method) - 1, (void *)bad_method,
						      MHD_RESPMEM_PERSISTENT);
	} else if (strcmp(url, "/metrics") != 0) {
		status = MHD_HTTP_NOT_FOUND;
		res = MHD_create_response_from_buffer(sizeof(not_found) - 1, (void *)not_found,
						      MHD_RESPMEM_PERSISTENT);
	} else {
		text = fg_metrics_render(m, &len);
		if (text == NULL)
			return MHD_NO;
		res = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
		if (res != NULL)
			MHD_add_response_header(res, MHD_HTTP_HEADER_CONTENT_TYPE,
						"text/plain; version=0.0.4; charset=utf-8");
		else
			free(text);
	}
	if (res == NULL)
		return MHD_NO;
	ret = MHD_queue_response(c, status, res);
	MHD_destroy_response(res);
	return ret;
}

struct fg_metrics *
fg_metrics_create(const struct fg_metrics_config *cfg, const struct fg_router *r,
		  const struct fg_ownership *own, const struct fg_server *server,
		  struct fg_ctl_state *st, struct fg_err *err)
{
	struct fg_metrics *m = calloc(1, sizeof(*m));
	int one = 1, fd;

	if (m == NULL) {
		fg_err_set(err, ENOMEM, "metrics: out of memory");
		return NULL;
	}
	/* Our own socket, so that a port in use or an address this host does
	 * not have is named in the error; MHD serves on it. */
	fd = socket(cfg->addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, cfg->addr, cfg->addr_len) != 0 || listen(fd, FG_METRICS_MAX_CONNS) != 0) {
		int e = errno;

		if (fd >= 0)
			close(fd);
		free(m);
		fg_err_set(err, e, "metrics.listen %s: cannot listen: %s", cfg->listen, strerror(e));
		return NULL;
	}
	m->fd = fd;
	m->tenant_labels_max = cfg->tenant_labels_max;
	m->router = r;
	m->own = own;
	m->server = server;
	m->st = st;
	/* No MHD_USE_INTERNAL_POLLING_THREAD: MHD runs when fg_metrics_poll
	 * calls it, on the control thread. epoll rather than select(), which
	 * cannot watch a descriptor numbered past FD_SETSIZE. */
	m->mhd = MHD_start_daemon(MHD_USE_EPOLL |
				  (cfg->addr->sa_family == AF_INET6 ? MHD_USE_IPv6 : 0),
				  0, NULL, NULL, fg_metrics_answer, m,
				  MHD_OPTION_LISTEN_SOCKET, fd,
				  MHD_OPTION_CONNECTION_LIMIT, FG_METRICS_MAX_CONNS,
				  MHD_OPTION_PER_IP_CONNECTION_LIMIT, FG_METRICS_MAX_PER_IP,
				  MHD_OPTION_CONNECTION_TIMEOUT, FG_METRICS_IDLE_SECONDS,
				  MHD_OPTION_END);
	if (m->mhd == NULL) {
		close(fd);
		free(m);
		fg_err_set(err, EIO, "metrics.listen %s: libmicrohttpd would not start", cfg->listen);
		return NULL;
	}
	return m;
}

void
fg_metrics_poll(struct fg_metrics *m)
{
	if (m != NULL)
		MHD_run(m->mhd);
}

void
fg_metrics_set_store(struct fg_metrics *m, int64_t enforced, int64_t store_rev,
		     double since_sync_s)
{
	struct fg_store_values st = { .following = true, .enforced_revision = enforced,
				      .store_revision = store_rev };
	struct timespec now;

	if (m == NULL)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	st.synced_at = since_sync_s < 0 ? -1 : (double)now.tv_sec + now.tv_nsec / 1e9 - since_sync_s;
	fg_ctl_state_set_store(m->st, &st);
}

void
fg_metrics_free(struct fg_metrics *m)
{
	if (m == NULL)
		return;
	MHD_stop_daemon(m->mhd);      /* closes the listening socket too */
	free(m);
}
