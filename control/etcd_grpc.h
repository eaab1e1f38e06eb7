/*
 * The gRPC transport of the etcd client (control/etcd.c): one channel per
 * endpoint, unary calls with a deadline. It knows nothing of etcd's
 * messages; etcd.c packs and unpacks them (control/etcd_kv.proto) and
 * decides what a status means.
 */
#ifndef FG_ETCD_GRPC_H
#define FG_ETCD_GRPC_H

#include <stddef.h>
#include <stdint.h>

#include <framegate/error.h>

struct etcd_grpc;

/* Channels for endpoints given as base URLs (http://host:port); nothing
 * connects until the first call. NULL with err naming an endpoint that is
 * not plain http://host:port (gRPC here is without TLS). A connection
 * that has not been made within connect_ms is given up. */
struct etcd_grpc *etcd_grpc_open(char *const *eps, size_t n, unsigned int connect_ms,
				 struct fg_err *err);
void etcd_grpc_close(struct etcd_grpc *g);

/* One unary call of method (e.g. "/etcdserverpb.KV/Txn") on endpoint ep.
 * 0: *reply (malloc'd, the caller frees it) and *reply_len. Otherwise the
 * call's gRPC status code (> 0) with its message in msg. */
int etcd_grpc_unary(struct etcd_grpc *g, size_t ep, const char *method,
		    const uint8_t *req, size_t req_len, unsigned int timeout_ms,
		    uint8_t **reply, size_t *reply_len, char *msg, size_t msg_cap);

/* A bidirectional stream (etcd's Watch): the first message is sent at
 * open, then replies are read one at a time without blocking longer than
 * asked. */
struct etcd_grpc_stream;

/* NULL with msg set when the call cannot start. */
struct etcd_grpc_stream *etcd_grpc_stream_open(struct etcd_grpc *g, size_t ep,
					       const char *method,
					       const uint8_t *first, size_t first_len,
					       char *msg, size_t msg_cap);
/* Wait up to timeout_ms (0: only what has come) for the next reply.
 * 1 and *out (malloc'd) / *out_len; 0 nothing yet; -1 the stream is over,
 * *status its gRPC status and msg its message. */
int etcd_grpc_stream_next(struct etcd_grpc_stream *s, int timeout_ms,
			  uint8_t **out, size_t *out_len, int *status,
			  char *msg, size_t msg_cap);
/* Cancel (if running) and free. NULL is fine. */
void etcd_grpc_stream_close(struct etcd_grpc_stream *s);

/* gRPC status codes etcd.c tells apart (grpc/status.h's values). */
#define ETCD_GRPC_DEADLINE_EXCEEDED 4
#define ETCD_GRPC_UNAVAILABLE 14

#endif /* FG_ETCD_GRPC_H */
