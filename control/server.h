/*
 * The control server: the router's Unix socket, served from the main thread
 * (never a worker). Protocol in include/framegate/ctl.h.
 */
#ifndef FG_SERVER_H
#define FG_SERVER_H

#include <stdbool.h>
#include <sys/types.h>

#include <framegate/error.h>

#include "journal.h"
#include "ownership.h"

struct fg_router;
struct fg_audit;
struct fg_ctl_values;
struct fg_latency;

struct fg_server_config {
	const char *path;            /* socket path; its folder is created */
	gid_t write_gid;             /* besides root, may change state; -1: none */
	gid_t read_gid;              /* besides those, may read; -1: none */
	uint64_t compact_bytes;      /* snapshot when the journal grows past */
	uint64_t load_max_bytes;     /* op-line bytes all open loads may hold */
	const char *journal_dir;     /* where dumps are written too; NULL: none */
	struct fg_audit *audit;      /* every applied change, before its ack;
				      * NULL: no audit log */
};

struct fg_server;

/* Listen on cfg->path (mode 0660, group write_gid when set; 0666 when
 * there is a read group: every peer is then judged at accept by its
 * credentials). A socket file left by a dead router is replaced; one a live
 * router answers on is not, nor a path that is not a socket.
 * NULL with err naming the path on failure. router may be NULL (no
 * counters to report). */
struct fg_server *fg_server_create(const struct fg_server_config *cfg,
				   struct fg_ownership *own,
				   struct fg_journal *journal,
				   const struct fg_router *router,
				   struct fg_err *err);

/* Serve whatever is ready, waiting up to timeout_ms for something. Changes
 * are applied in arrival order; single changes read in the same round are
 * committed as a group (one journal record, one fsync, one grace period),
 * each still accepted or refused on its own. */
void fg_server_poll(struct fg_server *s, int timeout_ms);

/* The router follows a store (follower.h): changes through the socket are
 * refused (they go to the store), health shows the follower's state. */
struct fg_follower;
void fg_server_set_follower(struct fg_server *s, struct fg_follower *f);
/* The control plane's values for observers (control thread only; they
 * reach other threads through fg_ctl_state_publish). */
void fg_server_values(const struct fg_server *s, struct fg_ctl_values *v);

/* Request latencies of command kind i (0, 1, ... until NULL), and the
 * kind's name ("apply", "stats", ..., "invalid" for requests that name no
 * command). Control thread only. */
const struct fg_latency *fg_server_latency(const struct fg_server *s, unsigned int i,
					   const char **kind);

/* Close every connection and remove the socket file. */
void fg_server_free(struct fg_server *s);

#endif /* FG_SERVER_H */
