/*
 * The mapping-file loader and the op actions (see mapfile.h); the line
 * decoder is in opparse.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_common.h>

#include "mapfile.h"
#include "mapread.h"

#define fg_bad(err, ...) fg_err_set(err, EINVAL, __VA_ARGS__)

int
fg_ops_parse_lines(const char *text, size_t len, struct fg_op **ops_out, size_t *n_out,
		   struct fg_err *err)
{
	const char *p = text, *end = text + len;
	size_t n = 0, cap = 0;
	struct fg_op *ops = NULL;
	int ret = 0;

	while (p < end && ret == 0) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);

		if (n == cap) {
			struct fg_op *o2 = realloc(ops, (cap = cap ? cap * 2 : 64) * sizeof(*ops));

			if (o2 == NULL) {
				ret = fg_err_set(err, ENOMEM, "out of memory decoding %zu op lines", n);
				break;
			}
			ops = o2;
		}
		ret = fg_op_parse(p, l, &ops[n++], err);
		if (ret < 0)
			fg_err_prefix(err, "line %zu: ", n);
		p += l + 1;
	}
	if (ret < 0) {
		free(ops);
		return ret;
	}
	*ops_out = ops;
	*n_out = n;
	return 0;
}

int
fg_op_apply(struct fg_ownership *o, const struct fg_op *op, struct fg_err *err)
{
	struct fg_tenant_spec tenant;

	switch (op->kind) {
	case FG_OP_TENANT:
		tenant = op->tenant;
		tenant.name = op->name[0] ? op->name : NULL;
		return fg_tenant_add(o, &tenant, err);
	case FG_OP_SINK:
		return fg_sink_add(o, &op->sink, err);
	case FG_OP_DEVICE:
		return fg_device_put(o, &op->device, err);
	case FG_OP_MOVE:
		return fg_device_move(o, &op->move, err);
	case FG_OP_DEL_DEVICE:
		return fg_device_del(o, op->del_device.tenant_id,
				     op->del_device.device_id, err);
	case FG_OP_DEL_SINK:
		return fg_sink_del(o, op->id, err);
	case FG_OP_SUSPEND:
		return fg_tenant_set_suspended(o, op->id, true, err);
	case FG_OP_RESUME:
		return fg_tenant_set_suspended(o, op->id, false, err);
	case FG_OP_DEL_TENANT:
		return fg_tenant_del(o, op->id, err);
	case FG_OP_STORE_REVISION:
		fg_ownership_set_store_revision(o, op->revision);
		return 0;
	}
	return fg_bad(err, "unknown operation kind %d", (int)op->kind);
}

int
fg_op_check(struct fg_ownership *o, struct fg_txn *x, const struct fg_op *op,
	    struct fg_err *err)
{
	struct fg_tenant_spec tenant;

	switch (op->kind) {
	case FG_OP_TENANT:
		tenant = op->tenant;
		tenant.name = op->name[0] ? op->name : NULL;
		return fg_tenant_add_check(o, x, &tenant, err);
	case FG_OP_SINK:
		return fg_sink_add_check(o, x, &op->sink, err);
	case FG_OP_DEVICE:
		return fg_device_put_check(o, x, &op->device, err);
	case FG_OP_MOVE:
		return fg_device_move_check(o, x, &op->move, err);
	case FG_OP_DEL_DEVICE:
		return fg_device_del_check(o, x, op->del_device.tenant_id,
					   op->del_device.device_id, err);
	case FG_OP_DEL_SINK:
		return fg_sink_del_check(o, x, op->id, err);
	case FG_OP_SUSPEND:
		return fg_tenant_set_suspended_check(o, x, op->id, true, err);
	case FG_OP_RESUME:
		return fg_tenant_set_suspended_check(o, x, op->id, false, err);
	case FG_OP_DEL_TENANT:
		return fg_tenant_del_check(o, x, op->id, err);
	case FG_OP_STORE_REVISION:
		return 0;
	}
	return fg_bad(err, "unknown operation kind %d", (int)op->kind);
}

int
fg_ops_check_all(struct fg_ownership *o, const struct fg_op *ops, size_t n,
		 size_t *failed, struct fg_err *err)
{
	struct fg_txn *x = fg_txn_begin(o, (uint32_t)RTE_MIN(n, (size_t)UINT32_MAX));
	int ret = 0;

	if (x == NULL)
		return fg_err_set(err, ENOMEM, "out of memory for a transaction of %zu operations", n);
	for (size_t i = 0; i < n && ret == 0; i++) {
		ret = fg_op_check(o, x, &ops[i], err);
		if (ret < 0 && failed != NULL)
			*failed = i;
	}
	fg_txn_free(x);
	return ret;
}

int
fg_ops_apply_checked(struct fg_ownership *o, const struct fg_op *ops, size_t n,
		     size_t *failed, struct fg_err *err)
{
	int ret = 0;

	/* Every operation passed its check on the state the earlier ones
	 * produce: applying them in order is accepted. */
	for (size_t i = 0; i < n; i++) {
		ret = fg_op_apply(o, &ops[i], err);
		if (ret < 0) {
			/* Only an allocation can fail here. */
			if (failed != NULL)
				*failed = i;
			break;
		}
	}
	fg_tables_sync(fg_ownership_tables(o));
	return ret;
}

int
fg_ops_apply_all(struct fg_ownership *o, const struct fg_op *ops, size_t n,
		 size_t *failed, struct fg_err *err)
{
	int ret = fg_ops_check_all(o, ops, n, failed, err);

	return ret < 0 ? ret : fg_ops_apply_checked(o, ops, n, failed, err);
}

int
fg_mapfile_load_buf(struct fg_ownership *o, const char *path, const char *text, size_t len,
		    unsigned long *failed_line, struct fg_err *err)
{
	const char *p = text, *end = text + len;
	unsigned long lineno = 0, *lines = NULL;
	size_t n = 0, cap = 1, bad = SIZE_MAX;
	struct fg_op *ops = NULL;
	int ret = 0;

	if (failed_line != NULL)
		*failed_line = 0;
	/* One op per line at most: the arrays are sized once. */
	for (const char *q = text; (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++)
		cap++;
	ops = calloc(cap, sizeof(*ops));
	lines = malloc(cap * sizeof(*lines));
	if (ops == NULL || lines == NULL) {
		ret = fg_err_set(err, ENOMEM, "out of memory for the ops of %zu lines", cap);
		goto out;
	}
	/* Decode every line first: a malformed line applies nothing. */
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);

		lineno++;
		if (!fg_mapline_blank(p, l)) {
			ret = fg_op_parse(p, l, &ops[n], err);
			if (ret < 0)
				goto out;
			lines[n++] = lineno;
		}
		p += l + 1;
	}
	/* A failure that no line caused (bad left as it was) names none. */
	ret = fg_ops_apply_all(o, ops, n, &bad, err);
	lineno = ret < 0 && bad < n ? lines[bad] : 0;
out:
	if (ret < 0 && lineno != 0)
		fg_err_prefix(err, "%s:%lu: ", path, lineno);
	else if (ret < 0)
		fg_err_prefix(err, "%s: ", path);
	if (ret < 0 && failed_line != NULL)
		*failed_line = lineno;
	free(ops);
	free(lines);
	return ret;
}

int
fg_mapfile_load(struct fg_ownership *o, const char *path,
		unsigned long *failed_line, struct fg_err *err)
{
	unsigned long n_lines;
	size_t len;
	char *text;
	int ret;

	if (failed_line != NULL)
		*failed_line = 0;
	ret = fg_mapfile_read(path, &text, &len, &n_lines, err);
	if (ret < 0)
		return ret;
	ret = fg_mapfile_load_buf(o, path, text, len, failed_line, err);
	free(text);
	return ret;
}
