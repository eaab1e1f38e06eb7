/*
 * gRPC transport for the etcd client (see etcd_grpc.h), on gRPC's C core:
 * a channel per endpoint, made on first use and kept (its HTTP/2
 * connection is reused, and remade by gRPC after a failure, backing off
 * 100 ms to 1 s); one completion queue per client; each call is one batch
 * (send the request, close, receive the reply and the status) waited for
 * with grpc_completion_queue_pluck up to its deadline.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "etcd_grpc.h"

struct etcd_grpc {
	size_t n;
	char **targets;                 /* host:port */
	grpc_channel **ch;              /* NULL until first used */
	grpc_completion_queue *cq;
};

static pthread_once_t grpc_once = PTHREAD_ONCE_INIT;

static void
grpc_start(void)
{
	grpc_init();
}

struct etcd_grpc *
etcd_grpc_open(char *const *eps, size_t n, struct fg_err *err)
{
	struct etcd_grpc *g;

	pthread_once(&grpc_once, grpc_start);
	g = calloc(1, sizeof(*g));
	if (g == NULL || (g->targets = calloc(n, sizeof(*g->targets))) == NULL ||
	    (g->ch = calloc(n, sizeof(*g->ch))) == NULL) {
		etcd_grpc_close(g);
		fg_err_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	g->n = n;
	for (size_t i = 0; i < n; i++) {
		const char *hp = eps[i];

		if (strncmp(hp, "http://", 7) != 0 || strchr(hp + 7, '/') != NULL || hp[7] == '\0') {
			etcd_grpc_close(g);
			fg_err_set(err, EINVAL, "etcd endpoint \"%s\": gRPC needs http://host:port", eps[i]);
			return NULL;
		}
		g->targets[i] = strdup(hp + 7);
		if (g->targets[i] == NULL) {
			etcd_grpc_close(g);
			fg_err_set(err, ENOMEM, "out of memory");
			return NULL;
		}
	}
	g->cq = grpc_completion_queue_create_for_pluck(NULL);
	return g;
}

void
etcd_grpc_close(struct etcd_grpc *g)
{
	if (g == NULL)
		return;
	for (size_t i = 0; i < g->n; i++) {
		if (g->ch != NULL && g->ch[i] != NULL)
			grpc_channel_destroy(g->ch[i]);
		if (g->targets != NULL)
			free(g->targets[i]);
	}
	if (g->cq != NULL) {
		grpc_completion_queue_shutdown(g->cq);
		while (grpc_completion_queue_pluck(g->cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME),
						   NULL).type != GRPC_QUEUE_SHUTDOWN)
			;
		grpc_completion_queue_destroy(g->cq);
	}
	free(g->ch);
	free(g->targets);
	free(g);
}

static grpc_channel *
channel(struct etcd_grpc *g, size_t ep)
{
	if (g->ch[ep] == NULL) {
		grpc_arg a[] = {
			/* Each client its own connection. */
			{ .type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL,
			  .value.integer = 1 },
			{ .type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
			  .value.integer = -1 },
			{ .type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
			  .value.integer = -1 },
			{ .type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
			  .value.integer = 100 },
			{ .type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
			  .value.integer = 100 },
			{ .type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
			  .value.integer = 1000 },
		};
		grpc_channel_args args = { sizeof(a) / sizeof(a[0]), a };
		grpc_channel_credentials *cr = grpc_insecure_credentials_create();

		g->ch[ep] = grpc_channel_create(g->targets[ep], cr, &args);
		grpc_channel_credentials_release(cr);
	}
	return g->ch[ep];
}

int
etcd_grpc_unary(struct etcd_grpc *g, size_t ep, const char *method,
		const uint8_t *req, size_t req_len, unsigned int timeout_ms,
		uint8_t **reply, size_t *reply_len, char *msg, size_t msg_cap)
{
	gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
					     gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
	grpc_slice req_slice = grpc_slice_from_copied_buffer((const char *)req, req_len);
	grpc_byte_buffer *req_bb = grpc_raw_byte_buffer_create(&req_slice, 1), *resp_bb = NULL;
	grpc_metadata_array imd, tmd;
	grpc_status_code status = GRPC_STATUS_UNKNOWN;
	grpc_slice details = grpc_empty_slice();
	grpc_op ops[6];
	grpc_call *call;
	grpc_event ev;
	int ret;

	*reply = NULL;
	*reply_len = 0;
	grpc_slice_unref(req_slice);
	grpc_metadata_array_init(&imd);
	grpc_metadata_array_init(&tmd);
	call = grpc_channel_create_call(channel(g, ep), NULL, GRPC_PROPAGATE_DEFAULTS, g->cq,
					grpc_slice_from_static_string(method), NULL, deadline, NULL);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = req_bb;
	ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
	ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[3].data.recv_initial_metadata.recv_initial_metadata = &imd;
	ops[4].op = GRPC_OP_RECV_MESSAGE;
	ops[4].data.recv_message.recv_message = &resp_bb;
	ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[5].data.recv_status_on_client.trailing_metadata = &tmd;
	ops[5].data.recv_status_on_client.status = &status;
	ops[5].data.recv_status_on_client.status_details = &details;
	if (call == NULL || grpc_call_start_batch(call, ops, 6, call, NULL) != GRPC_CALL_OK) {
		snprintf(msg, msg_cap, "cannot start a gRPC call to %s", g->targets[ep]);
		ret = ETCD_GRPC_UNAVAILABLE;
		goto out;
	}
	/* The call has its deadline: it completes by then. */
	ev = grpc_completion_queue_pluck(g->cq, call, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	if (ev.type != GRPC_OP_COMPLETE) {
		snprintf(msg, msg_cap, "gRPC call to %s did not complete", g->targets[ep]);
		ret = ETCD_GRPC_UNAVAILABLE;
		goto out;
	}
	if (status != GRPC_STATUS_OK || resp_bb == NULL) {
		char *d = grpc_slice_to_c_string(details);

		snprintf(msg, msg_cap, "%s", d != NULL && *d ? d : "no reply");
		gpr_free(d);
		ret = status != GRPC_STATUS_OK ? (int)status : ETCD_GRPC_UNAVAILABLE;
		goto out;
	}
	{
		grpc_byte_buffer_reader rd;
		grpc_slice all;

		if (!grpc_byte_buffer_reader_init(&rd, resp_bb)) {
			snprintf(msg, msg_cap, "unreadable gRPC reply from %s", g->targets[ep]);
			ret = GRPC_STATUS_INTERNAL;
			goto out;
		}
		all = grpc_byte_buffer_reader_readall(&rd);
		grpc_byte_buffer_reader_destroy(&rd);
		*reply_len = GRPC_SLICE_LENGTH(all);
		*reply = malloc(*reply_len ? *reply_len : 1);
		if (*reply == NULL) {
			grpc_slice_unref(all);
			snprintf(msg, msg_cap, "out of memory for a gRPC reply");
			ret = GRPC_STATUS_RESOURCE_EXHAUSTED;
			goto out;
		}
		memcpy(*reply, GRPC_SLICE_START_PTR(all), *reply_len);
		grpc_slice_unref(all);
	}
	ret = 0;
out:
	grpc_slice_unref(details);
	grpc_metadata_array_destroy(&imd);
	grpc_metadata_array_destroy(&tmd);
	grpc_byte_buffer_destroy(req_bb);
	if (resp_bb != NULL)
		grpc_byte_buffer_destroy(resp_bb);
	if (call != NULL)
		grpc_call_unref(call);
	return ret;
}
