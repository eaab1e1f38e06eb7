/*
 * framegate's telemetry commands (see telemetry.h). Each callback takes the
 * one mutex of this file: telemetry clients are served by a thread each, and
 * the router may be stopping. Nothing here runs on a worker or the control
 * thread, so the mutex never delays a packet or a change.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rte_telemetry.h>

#include "../dataplane/router.h"
#include "ctlstate.h"
#include "telemetry.h"

static struct {
	pthread_mutex_t lock;
	const struct fg_router *router;     /* NULL: stopped */
	struct fg_tables *tables;
	unsigned int reader_id;
	const struct fg_ctl_state *state;
	bool registered;
} fg_tel = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* "drops/<reason>" for every reason, zeros included. */
static void
fg_tel_drops(struct rte_tel_data *d, const uint64_t *drops)
{
	char key[64];

	for (int r = 1; r < FG_REASON_END; r++) {
		snprintf(key, sizeof(key), "drops/%s", fg_reason_name(r));
		rte_tel_data_add_dict_u64(d, key, drops[r]);
	}
}

static void
fg_tel_counters(struct rte_tel_data *d, const struct fg_counter_totals *t)
{
	rte_tel_data_add_dict_u64(d, "rx_packets", t->rx_packets);
	rte_tel_data_add_dict_u64(d, "forwarded_packets", t->forwarded_packets);
	rte_tel_data_add_dict_u64(d, "copies_sent", t->copies_sent);
	rte_tel_data_add_dict_u64(d, "tx_full", t->tx_full);
	fg_tel_drops(d, t->drops);
}

/* A parameter that must be a decimal number up to max: 0, or -1. */
static int
fg_tel_number(const char *params, uint64_t max, uint64_t *out)
{
	char *end;

	if (params == NULL || params[0] < '0' || params[0] > '9')
		return -1;
	errno = 0;
	*out = strtoull(params, &end, 10);
	return *end != '\0' || errno != 0 || *out > max ? -1 : 0;
}

/* Replies that are a sentence, not a dict: the bad input named. */
static int
fg_tel_say(struct rte_tel_data *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int
fg_tel_say(struct rte_tel_data *d, const char *fmt, ...)
{
	char msg[RTE_TEL_MAX_STRING_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	rte_tel_data_string(d, msg);
	return 0;
}

static int
fg_tel_totals(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct fg_counter_totals t;

	(void)cmd;
	(void)params;
	pthread_mutex_lock(&fg_tel.lock);
	if (fg_tel.router == NULL) {
		pthread_mutex_unlock(&fg_tel.lock);
		return fg_tel_say(d, "the router is stopping");
	}
	fg_router_totals(fg_tel.router, &t);
	pthread_mutex_unlock(&fg_tel.lock);
	rte_tel_data_start_dict(d);
	fg_tel_counters(d, &t);
	return 0;
}

static int
fg_tel_workers(const char *cmd, const char *params, struct rte_tel_data *d)
{
	static const char *const names[] = { "rx_packets", "forwarded_packets",
					     "copies_sent", "tx_full", "dropped" };
	struct rte_tel_data *col[RTE_DIM(names)];
	unsigned int n;

	(void)cmd;
	(void)params;
	pthread_mutex_lock(&fg_tel.lock);
	if (fg_tel.router == NULL) {
		pthread_mutex_unlock(&fg_tel.lock);
		return fg_tel_say(d, "the router is stopping");
	}
	n = fg_tel.router->n_workers;
	for (unsigned int k = 0; k < RTE_DIM(names); k++) {
		col[k] = rte_tel_data_alloc();
		if (col[k] != NULL)
			rte_tel_data_start_array(col[k], RTE_TEL_U64_VAL);
	}
	for (unsigned int i = 0; i < n && i < RTE_TEL_MAX_ARRAY_ENTRIES; i++) {
		struct fg_counters *c = fg_tel.router->workers[i]->ctr;
		struct fg_counter_totals t;
		uint64_t dropped = 0;

		fg_counters_sum(&c, 1, &t);
		for (int r = 1; r < FG_REASON_END; r++)
			dropped += t.drops[r];
		uint64_t v[] = { t.rx_packets, t.forwarded_packets, t.copies_sent,
				 t.tx_full, dropped };

		for (unsigned int k = 0; k < RTE_DIM(names); k++)
			if (col[k] != NULL)
				rte_tel_data_add_array_u64(col[k], v[k]);
	}
	pthread_mutex_unlock(&fg_tel.lock);
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_u64(d, "workers", n);
	for (unsigned int k = 0; k < RTE_DIM(names); k++)
		if (col[k] != NULL)
			rte_tel_data_add_dict_container(d, names[k], col[k], 0);
	return 0;
}

static int
fg_tel_worker(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct fg_counter_totals t;
	struct fg_counters *c;
	uint64_t w;

	(void)cmd;
	pthread_mutex_lock(&fg_tel.lock);
	if (fg_tel.router == NULL) {
		pthread_mutex_unlock(&fg_tel.lock);
		return fg_tel_say(d, "the router is stopping");
	}
	if (fg_tel_number(params, UINT32_MAX, &w) != 0 || w >= fg_tel.router->n_workers) {
		unsigned int n = fg_tel.router->n_workers;

		pthread_mutex_unlock(&fg_tel.lock);
		return fg_tel_say(d, "worker \"%s\": give a worker number from 0 to %u",
				  params ? params : "", n - 1);
	}
	c = fg_tel.router->workers[w]->ctr;
	fg_counters_sum(&c, 1, &t);
	pthread_mutex_unlock(&fg_tel.lock);
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_u64(d, "worker", w);
	fg_tel_counters(d, &t);
	return 0;
}

static int
fg_tel_tenant(const char *cmd, const char *params, struct rte_tel_data *d)
{
	const struct fg_tenant *tn;
	fg_tenant_row row;
	uint32_t slot = 0;
	uint64_t id;
	bool found;

	(void)cmd;
	if (fg_tel_number(params, UINT32_MAX, &id) != 0 || id == 0)
		return fg_tel_say(d, "tenant \"%s\": give a tenant id from 1 to 4294967295",
				  params ? params : "");
	pthread_mutex_lock(&fg_tel.lock);
	if (fg_tel.router == NULL) {
		pthread_mutex_unlock(&fg_tel.lock);
		return fg_tel_say(d, "the router is stopping");
	}
	/* The entry may be retired by the control thread meanwhile: read it
	 * as an RCU reader, online only for the lookup, so a grace period
	 * waits for it and never for an idle telemetry thread. */
	fg_tables_reader_online(fg_tel.tables, fg_tel.reader_id);
	tn = fg_tables_tenant(fg_tel.tables, (uint32_t)id);
	found = tn != NULL;
	if (found)
		slot = tn->slot;
	fg_tables_reader_offline(fg_tel.tables, fg_tel.reader_id);
	if (found) {
		struct fg_counters *w[RTE_MAX_LCORE];

		for (unsigned int i = 0; i < fg_tel.router->n_workers; i++)
			w[i] = fg_tel.router->workers[i]->ctr;
		fg_counters_sum_tenant(w, fg_tel.router->n_workers, slot, row);
	}
	pthread_mutex_unlock(&fg_tel.lock);
	if (!found)
		return fg_tel_say(d, "tenant %" PRIu64 " does not exist", id);
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_u64(d, "tenant", id);
	rte_tel_data_add_dict_u64(d, "forwarded_packets", row[FG_TENANT_FORWARDED]);
	fg_tel_drops(d, row);
	return 0;
}

/* The published control-plane state, or -1 when stopping. */
static int
fg_tel_state(struct fg_ctl_values *v)
{
	struct fg_store_values st;
	int ret = -1;

	pthread_mutex_lock(&fg_tel.lock);
	if (fg_tel.router != NULL) {
		fg_ctl_state_read(fg_tel.state, v, &st);
		ret = 0;
	}
	pthread_mutex_unlock(&fg_tel.lock);
	return ret;
}

static int
fg_tel_tables(const char *cmd, const char *params, struct rte_tel_data *d)
{
	struct fg_ctl_values v;

	(void)cmd;
	(void)params;
	if (fg_tel_state(&v) != 0)
		return fg_tel_say(d, "the router is stopping");
	rte_tel_data_start_dict(d);
	rte_tel_data_add_dict_u64(d, "tenants", v.tenants);
	rte_tel_data_add_dict_u64(d, "max_tenants", v.max_tenants);
	rte_tel_data_add_dict_u64(d, "sinks", v.sinks);
	rte_tel_data_add_dict_u64(d, "max_sinks", v.max_sinks);
	rte_tel_data_add_dict_u64(d, "devices", v.devices);
	rte_tel_data_add_dict_u64(d, "max_devices", v.max_devices);
	return 0;
}

static int
fg_tel_control(const char *cmd, const char *params, struct rte_tel_data *d)
{
	static const char *const shield[] = {
		[FG_SHIELD_STATE_NONE] = "none",
		[FG_SHIELD_STATE_IN_STEP] = "in_step",
		[FG_SHIELD_STATE_DEGRADED] = "degraded",
	};
	struct fg_ctl_values v;

	(void)cmd;
	(void)params;
	if (fg_tel_state(&v) != 0)
		return fg_tel_say(d, "the router is stopping");
	rte_tel_data_start_dict(d);
	if (v.has_journal) {
		rte_tel_data_add_dict_u64(d, "journal_bytes", v.journal_bytes);
		rte_tel_data_add_dict_u64(d, "journal_records", v.journal_records);
		rte_tel_data_add_dict_u64(d, "journal_generation", v.journal_generation);
	}
	rte_tel_data_add_dict_string(d, "shield", shield[v.shield]);
	rte_tel_data_add_dict_u64(d, "shield_map_write_failures", v.shield_faults);
	rte_tel_data_add_dict_u64(d, "connections", v.connections);
	rte_tel_data_add_dict_u64(d, "changes_applied", v.changes_applied);
	rte_tel_data_add_dict_u64(d, "group_commits", v.group_commits);
	rte_tel_data_add_dict_u64(d, "started_unix", (uint64_t)v.started_unix);
	rte_tel_data_add_dict_u64(d, "last_change_unix", (uint64_t)v.last_change_unix);
	return 0;
}

static const struct {
	const char *name;
	telemetry_cb fn;
	const char *help;
} fg_tel_cmds[] = {
	{ "/framegate/totals", fg_tel_totals,
	  "Every counter and drop reason, summed over the workers. Takes no parameters" },
	{ "/framegate/workers", fg_tel_workers,
	  "The number of workers, and each one's received, forwarded, copies, tx_full and dropped. Takes no parameters" },
	{ "/framegate/worker", fg_tel_worker,
	  "One worker's counters and drop reasons. Parameters: int worker number" },
	{ "/framegate/tenant", fg_tel_tenant,
	  "One tenant's forwarded packets and drop reasons. Parameters: int tenant id" },
	{ "/framegate/tables", fg_tel_tables,
	  "Entries and capacity of the tenant, sink and device tables. Takes no parameters" },
	{ "/framegate/control", fg_tel_control,
	  "Journal size, shield state, control connections, changes applied, last change. Takes no parameters" },
};

int
fg_telemetry_start(const struct fg_router *r, struct fg_tables *t, unsigned int reader_id,
		   const struct fg_ctl_state *st, struct fg_err *err)
{
	int ret = fg_tables_reader_register(t, reader_id);

	if (ret != 0)
		return fg_err_set(err, -ret, "telemetry: cannot register RCU reader %u: %s",
				  reader_id, strerror(-ret));
	/* Registered readers start online: this one is online only while it
	 * looks a tenant up. */
	fg_tables_reader_offline(t, reader_id);
	pthread_mutex_lock(&fg_tel.lock);
	fg_tel.router = r;
	fg_tel.tables = t;
	fg_tel.reader_id = reader_id;
	fg_tel.state = st;
	pthread_mutex_unlock(&fg_tel.lock);
	if (fg_tel.registered)
		return 0;
	for (size_t i = 0; i < RTE_DIM(fg_tel_cmds); i++) {
		ret = rte_telemetry_register_cmd(fg_tel_cmds[i].name, fg_tel_cmds[i].fn,
						 fg_tel_cmds[i].help);
		if (ret != 0)
			return fg_err_set(err, -ret, "telemetry: cannot register %s: %s",
					  fg_tel_cmds[i].name, strerror(-ret));
	}
	fg_tel.registered = true;
	return 0;
}

void
fg_telemetry_stop(void)
{
	pthread_mutex_lock(&fg_tel.lock);
	if (fg_tel.router != NULL)
		fg_tables_reader_unregister(fg_tel.tables, fg_tel.reader_id);
	fg_tel.router = NULL;
	fg_tel.tables = NULL;
	fg_tel.state = NULL;
	pthread_mutex_unlock(&fg_tel.lock);
}
