/*
 * gRPC transport for the etcd client (see etcd_grpc.h), on gRPC's C core:
 * a channel per endpoint, made on first use and kept (its HTTP/2
 * connection is reused, and remade by gRPC after a failure, backing off
 * 100 ms to 1 s, each attempt given the handle's connect timeout); one
 * completion queue per client for unary calls, one per stream; each call is one batch
 * (send the request, close, receive the reply and the status) waited for
 * with grpc_completion_queue_pluck up to its deadline.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
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
	unsigned int connect_ms;
	grpc_completion_queue *cq;
};

static pthread_once_t grpc_once = PTHREAD_ONCE_INIT;

static void
grpc_start(void)
{
	grpc_init();
}

struct etcd_grpc *
etcd_grpc_open(char *const *eps, size_t n, unsigned int connect_ms, struct fg_err *err)
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
	g->connect_ms = connect_ms;
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
			/* Also the time a connection attempt is given. */
			{ .type = GRPC_ARG_INTEGER, .key = (char *)GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
			  .value.integer = (int)g->connect_ms },
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

/* ---- streams ---- */

enum { TAG_SEND = 1, TAG_RECV, TAG_STATUS };

struct etcd_grpc_stream {
	grpc_call *call;
	grpc_completion_queue *cq;
	grpc_byte_buffer *send_bb, *recv_bb;
	grpc_metadata_array imd, tmd;
	grpc_status_code status;
	grpc_slice details;
	bool recv_pending, status_pending, send_pending, over;
	char target[128];
};

static int
stream_recv(struct etcd_grpc_stream *s)
{
	grpc_op op;

	memset(&op, 0, sizeof(op));
	op.op = GRPC_OP_RECV_MESSAGE;
	op.data.recv_message.recv_message = &s->recv_bb;
	s->recv_bb = NULL;
	if (grpc_call_start_batch(s->call, &op, 1, (void *)(intptr_t)TAG_RECV, NULL) != GRPC_CALL_OK)
		return -1;
	s->recv_pending = true;
	return 0;
}

struct etcd_grpc_stream *
etcd_grpc_stream_open(struct etcd_grpc *g, size_t ep, const char *method,
		      const uint8_t *first, size_t first_len, char *msg, size_t msg_cap)
{
	struct etcd_grpc_stream *s = calloc(1, sizeof(*s));
	grpc_slice sl;
	grpc_op ops[3];

	if (s == NULL) {
		snprintf(msg, msg_cap, "out of memory");
		return NULL;
	}
	snprintf(s->target, sizeof(s->target), "%s", g->targets[ep]);
	s->details = grpc_empty_slice();
	grpc_metadata_array_init(&s->imd);
	grpc_metadata_array_init(&s->tmd);
	s->cq = grpc_completion_queue_create_for_next(NULL);
	s->call = grpc_channel_create_call(channel(g, ep), NULL, GRPC_PROPAGATE_DEFAULTS, s->cq,
					   grpc_slice_from_static_string(method), NULL,
					   gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
	if (s->call == NULL)
		goto fail;
	sl = grpc_slice_from_copied_buffer((const char *)first, first_len);
	s->send_bb = grpc_raw_byte_buffer_create(&sl, 1);
	grpc_slice_unref(sl);
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
	ops[1].op = GRPC_OP_SEND_MESSAGE;
	ops[1].data.send_message.send_message = s->send_bb;
	ops[2].op = GRPC_OP_RECV_INITIAL_METADATA;
	ops[2].data.recv_initial_metadata.recv_initial_metadata = &s->imd;
	if (grpc_call_start_batch(s->call, ops, 3, (void *)(intptr_t)TAG_SEND, NULL) != GRPC_CALL_OK)
		goto fail;
	s->send_pending = true;
	memset(ops, 0, sizeof(ops));
	ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
	ops[0].data.recv_status_on_client.trailing_metadata = &s->tmd;
	ops[0].data.recv_status_on_client.status = &s->status;
	ops[0].data.recv_status_on_client.status_details = &s->details;
	if (grpc_call_start_batch(s->call, ops, 1, (void *)(intptr_t)TAG_STATUS, NULL) != GRPC_CALL_OK)
		goto fail;
	s->status_pending = true;
	if (stream_recv(s) != 0)
		goto fail;
	return s;
fail:
	snprintf(msg, msg_cap, "cannot start a gRPC stream to %s", g->targets[ep]);
	etcd_grpc_stream_close(s);
	return NULL;
}

int
etcd_grpc_stream_next(struct etcd_grpc_stream *s, int timeout_ms, uint8_t **out,
		      size_t *out_len, int *status, char *msg, size_t msg_cap)
{
	gpr_timespec deadline = timeout_ms <= 0 ? gpr_time_0(GPR_CLOCK_MONOTONIC)
		: gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
			       gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));

	*out = NULL;
	*out_len = 0;
	for (;;) {
		grpc_event ev;

		if (s->over && !s->status_pending) {
			char *d = grpc_slice_to_c_string(s->details);

			*status = (int)s->status;
			snprintf(msg, msg_cap, "%s", d != NULL && *d ? d : "the stream ended");
			gpr_free(d);
			return -1;
		}
		ev = grpc_completion_queue_next(s->cq, deadline, NULL);
		if (ev.type == GRPC_QUEUE_TIMEOUT)
			return 0;
		if (ev.type != GRPC_OP_COMPLETE) {
			s->over = true;
			s->status_pending = false;
			s->status = GRPC_STATUS_UNAVAILABLE;
			continue;
		}
		switch ((intptr_t)ev.tag) {
		case TAG_SEND:
			s->send_pending = false;
			break;
		case TAG_STATUS:
			s->status_pending = false;
			s->over = true;
			break;
		case TAG_RECV:
			s->recv_pending = false;
			if (!ev.success || s->recv_bb == NULL) {
				s->over = true;         /* the status follows */
				break;
			}
			{
				grpc_byte_buffer_reader rd;
				grpc_slice all;
				bool ok = grpc_byte_buffer_reader_init(&rd, s->recv_bb);

				if (!ok) {
					grpc_byte_buffer_destroy(s->recv_bb);
					s->recv_bb = NULL;
					s->over = true;
					break;
				}
				all = grpc_byte_buffer_reader_readall(&rd);
				grpc_byte_buffer_reader_destroy(&rd);
				grpc_byte_buffer_destroy(s->recv_bb);
				s->recv_bb = NULL;
				*out_len = GRPC_SLICE_LENGTH(all);
				*out = malloc(*out_len ? *out_len : 1);
				if (*out != NULL)
					memcpy(*out, GRPC_SLICE_START_PTR(all), *out_len);
				grpc_slice_unref(all);
				if (*out == NULL || stream_recv(s) != 0) {
					free(*out);
					*out = NULL;
					grpc_call_cancel(s->call, NULL);
					s->over = true;
					break;
				}
				return 1;
			}
		}
	}
}

void
etcd_grpc_stream_close(struct etcd_grpc_stream *s)
{
	if (s == NULL)
		return;
	if (s->call != NULL) {
		grpc_call_cancel(s->call, NULL);
		/* Every started batch completes (cancelled) before the call
		 * and the queue go. */
		while (s->recv_pending || s->status_pending || s->send_pending) {
			grpc_event ev = grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);

			if (ev.type != GRPC_OP_COMPLETE)
				break;
			if ((intptr_t)ev.tag == TAG_RECV)
				s->recv_pending = false;
			else if ((intptr_t)ev.tag == TAG_STATUS)
				s->status_pending = false;
			else
				s->send_pending = false;
		}
		grpc_call_unref(s->call);
	}
	if (s->cq != NULL) {
		grpc_completion_queue_shutdown(s->cq);
		while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME),
						  NULL).type != GRPC_QUEUE_SHUTDOWN)
			;
		grpc_completion_queue_destroy(s->cq);
	}
	if (s->send_bb != NULL)
		grpc_byte_buffer_destroy(s->send_bb);
	if (s->recv_bb != NULL)
		grpc_byte_buffer_destroy(s->recv_bb);
	grpc_slice_unref(s->details);
	grpc_metadata_array_destroy(&s->imd);
	grpc_metadata_array_destroy(&s->tmd);
	free(s);
}
