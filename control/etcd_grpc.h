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
 * not plain http://host:port (gRPC here is without TLS). */
struct etcd_grpc *etcd_grpc_open(char *const *eps, size_t n, struct fg_err *err);
void etcd_grpc_close(struct etcd_grpc *g);

/* One unary call of method (e.g. "/etcdserverpb.KV/Txn") on endpoint ep.
 * 0: *reply (malloc'd, the caller frees it) and *reply_len. Otherwise the
 * call's gRPC status code (> 0) with its message in msg. */
int etcd_grpc_unary(struct etcd_grpc *g, size_t ep, const char *method,
		    const uint8_t *req, size_t req_len, unsigned int timeout_ms,
		    uint8_t **reply, size_t *reply_len, char *msg, size_t msg_cap);

/* gRPC status codes etcd.c tells apart (grpc/status.h's values). */
#define ETCD_GRPC_DEADLINE_EXCEEDED 4
#define ETCD_GRPC_RESOURCE_EXHAUSTED 8
#define ETCD_GRPC_UNAVAILABLE 14

#endif /* FG_ETCD_GRPC_H */
