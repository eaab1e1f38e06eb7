/*
 * The Prometheus endpoint: the router's counters, tables, control plane and
 * store follower as text exposition format 0.0.4, over HTTP
 * (libmicrohttpd) at GET /metrics on the configured address. Metric names
 * and labels are listed in docs/observability.md.
 */
#ifndef FG_METRICS_H
#define FG_METRICS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <framegate/error.h>

struct fg_router;
struct fg_ownership;
struct fg_server;
struct fg_ctl_state;

struct fg_metrics_config {
	const char *listen;                 /* as configured, for messages */
	const struct sockaddr *addr;
	socklen_t addr_len;
	uint32_t tenant_labels_max;         /* tenants with a label of their own */
};

struct fg_metrics;

/* Listen on cfg->addr. NULL with err naming the address on failure (in use,
 * not an address of this host, ...). server may be NULL (no control plane:
 * no latency histogram). */
struct fg_metrics *fg_metrics_create(const struct fg_metrics_config *cfg,
				     const struct fg_router *r,
				     const struct fg_ownership *own,
				     const struct fg_server *server,
				     struct fg_ctl_state *st, struct fg_err *err);

/* Serve what is ready, without waiting: called by the control thread
 * after each round of the control socket. NULL: nothing. */
void fg_metrics_poll(struct fg_metrics *m);

/* The exposition text of this moment (malloc'd, *len bytes), or NULL. */
char *fg_metrics_render(struct fg_metrics *m, size_t *len);

/* The etcd follower's position: the store revision the tables enforce, the
 * newest revision the store has, and how long ago the follower last
 * confirmed it is in step with the store (negative: never; that gauge is
 * then left out). Until the first call every store gauge is left out.
 * Any thread; NULL m: nothing. */
void fg_metrics_set_store(struct fg_metrics *m, int64_t enforced, int64_t store_rev,
			  double since_sync_s);

void fg_metrics_free(struct fg_metrics *m);

#endif /* FG_METRICS_H */
