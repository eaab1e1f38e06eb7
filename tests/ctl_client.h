/*
 * Test helpers for the control plane: start a real framegate router (one
 * lcore, a net_pcap port replaying the vectors once) on a temporary socket
 * and journal, talk the control protocol to it, kill it.
 */
#ifndef FG_TEST_CTL_CLIENT_H
#define FG_TEST_CTL_CLIENT_H

#include <stdbool.h>
#include <sys/types.h>

#include <jansson.h>

struct fg_router_proc {
	pid_t pid;
	char dir[64];           /* socket, journal, config live here */
	char sock[128];
	unsigned int starts;
	char wrap[512];         /* put before the router's path (e.g. "env A=B"), or "" */
	char log[160];          /* a copy of the router's stderr goes here, or "" */
	pid_t echo;             /* the process echoing its stderr */
};

/* Run a router: `sh -c cmd`, its stderr echoed with a "router: " prefix,
 * until it says it is serving (*serving) or ends. Its pid, or -1. */
pid_t fg_router_spawn(const char *cmd, bool *serving);
/* The same; every line of its stderr is also appended to the file log
 * (unless NULL), and *echo is the process that copies them (it ends when
 * the router does). */
pid_t fg_router_spawn_log(const char *cmd, bool *serving, const char *log, pid_t *echo);

/* Make the folder and config; no process yet. extra_json: more top-level
 * configuration keys ("\"compact_bytes\": 4096, "), or NULL. */
void fg_rp_init(struct fg_router_proc *rp);
void fg_rp_init_with(struct fg_router_proc *rp, const char *extra_json);
/* Start the router; waits until it serves. extra: more framegate options
 * (e.g. "--mappings FILE") or NULL. Returns false when it did not start
 * (its output goes to stderr). */
bool fg_rp_start(struct fg_router_proc *rp, const char *extra);
/* SIGKILL (crash) or SIGTERM (clean stop), and wait, for it and for the
 * copy of its stderr (rp->log is whole once this returns). */
void fg_rp_kill(struct fg_router_proc *rp, int sig);
/* Stop, then remove the folder. */
void fg_rp_fini(struct fg_router_proc *rp);

/* Connect to a socket: fd or -1. */
int fg_ctl_connect(const char *path);
/* Send one request (stolen) without waiting: 0, or -1. */
int fg_ctl_send(int fd, json_t *req);
/* Read one response (new reference), or NULL. A dump's frames come back
 * as one object with "lines": [op objects], as the router once sent it. */
json_t *fg_ctl_recv(int fd);
/* Read one frame exactly as sent (new reference), or NULL. */
json_t *fg_ctl_recv_frame(int fd);
/* Send a request (stolen), read the response (new reference), or NULL when
 * the connection failed. */
json_t *fg_ctl_call(int fd, json_t *req);
/* Connect, call, close; the request is stolen. */
json_t *fg_ctl_once(const char *path, json_t *req);

#endif
