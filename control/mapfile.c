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

static int
fg_blank(const char *s, size_t n)
{
	return strspn(s, " \t\r\n") == n;
}

int
fg_mapfile_load(struct fg_ownership *o, const char *path,
		unsigned long *failed_line, struct fg_err *err)
{
	struct fg_op *ops = NULL;
	unsigned long *lines = NULL;
	size_t n = 0, cap = 0, bufcap = 0;
	unsigned long lineno = 0;
	char *buf = NULL;
	ssize_t len;
	int ret = 0;
	FILE *f;

	if (failed_line != NULL)
		*failed_line = 0;
	f = fopen(path, "r");
	if (f == NULL) {
		int e = errno;

		if (err != NULL) {
			err->code = e;
			snprintf(err->msg, sizeof(err->msg), "%s: %s", path, strerror(e));
		}
		return -e;
	}
	/* Decode every line first: a malformed line applies nothing. */
	while ((len = getline(&buf, &bufcap, f)) >= 0) {
		lineno++;
		if (fg_blank(buf, (size_t)len))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 1024;
			struct fg_op *nops = realloc(ops, ncap * sizeof(*ops));
			unsigned long *nlines = nops ? realloc(lines, ncap * sizeof(*lines)) : NULL;

			if (nops != NULL)
				ops = nops;
			if (nlines == NULL) {
				ret = -ENOMEM;
				if (err != NULL) {
					err->code = ENOMEM;
					snprintf(err->msg, sizeof(err->msg), "%s:%lu: out of memory", path, lineno);
				}
				goto fail;
			}
			lines = nlines;
			cap = ncap;
		}
		ret = fg_op_parse(buf, (size_t)len, &ops[n], err);
		if (ret < 0)
			goto fail;
		lines[n++] = lineno;
	}
	if (ferror(f)) {
		ret = -EIO;
		if (err != NULL) {
			err->code = EIO;
			snprintf(err->msg, sizeof(err->msg), "%s: read error", path);
		}
		lineno = 0;
		goto fail;
	}
	size_t bad = 0;

	ret = fg_ops_apply_all(o, ops, n, &bad, err);
	if (ret < 0)
		lineno = lines[bad];
fail:
	if (ret < 0 && lineno != 0)
		fg_err_prefix(err, "%s:%lu: ", path, lineno);
	if (ret < 0 && failed_line != NULL)
		*failed_line = lineno;
	free(buf);
	free(ops);
	free(lines);
	fclose(f);
	return ret;
}

long
fg_mapfile_lines(const char *path)
{
	static char buf[1 << 16];
	FILE *f = fopen(path, "r");
	char last = '\n';
	long n = 0;
	size_t len;
	int e;

	if (f == NULL)
		return -errno;
	while ((len = fread(buf, 1, sizeof(buf), f)) > 0) {
		for (const char *p = buf; (p = memchr(p, '\n', len - (size_t)(p - buf))) != NULL; p++)
			n++;
		last = buf[len - 1];
	}
	e = ferror(f) ? EIO : 0;
	fclose(f);
	return e ? -e : n + (last != '\n');
}
