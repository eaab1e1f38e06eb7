/*
 * The op-line decoder, fg_op_parse() (see mapfile.h). Operations are rows of
 * {name, fields, decoder}: the row says which fields the op takes, so an
 * unknown or missing field is refused by name before any value is read.
 * Apart from the loader (mapfile.c) because it needs no DPDK: fgctl's store
 * mode decodes lines with it too.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <framegate/ctl.h>

#include "mapfile.h"

#define fg_bad(err, ...) fg_err_set(err, EINVAL, __VA_ARGS__)

/* ---- field decoders ------------------------------------------------------ */

static int
fg_get_uint(json_t *obj, const char *field, uint64_t min, uint64_t max,
	    uint64_t *out, struct fg_err *err)
{
	json_t *v = json_object_get(obj, field);
	json_int_t i;

	if (!json_is_integer(v))
		return fg_bad(err, "field \"%s\" must be an integer", field);
	i = json_integer_value(v);
	if (i < 0 || (uint64_t)i < min || (uint64_t)i > max)
		return fg_bad(err, "field \"%s\" is %" JSON_INTEGER_FORMAT ", outside %" PRIu64 "..%" PRIu64,
			      field, i, min, max);
	*out = (uint64_t)i;
	return 0;
}

static int
fg_get_u32(json_t *obj, const char *field, uint32_t min, uint32_t *out,
	   struct fg_err *err)
{
	uint64_t v = 0;
	int ret = fg_get_uint(obj, field, min, UINT32_MAX, &v, err);

	if (ret == 0)
		*out = (uint32_t)v;
	return ret;
}

/* device: a string ("0x" hex or decimal) or an exact JSON integer. */
static int
fg_get_device(json_t *obj, const char *field, uint64_t *out, struct fg_err *err)
{
	json_t *v = json_object_get(obj, field);

	if (json_is_integer(v)) {
		if (json_integer_value(v) <= 0)
			return fg_bad(err, "field \"%s\" must be a non-zero device id", field);
		*out = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		int hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
		const char *digits = hex ? s + 2 : s;
		char *end;

		if (*digits == '\0' || strlen(digits) > (hex ? 16u : 20u) ||
		    strspn(digits, hex ? "0123456789abcdefABCDEF" : "0123456789") !=
			    strlen(digits))
			return fg_bad(err, "field \"%s\": \"%s\" is not a 64-bit device id (\"0x\" and up to 16 hex digits, or decimal)",
				      field, s);
		errno = 0;
		*out = strtoull(digits, &end, hex ? 16 : 10);
		if (errno != 0)
			return fg_bad(err, "field \"%s\": \"%s\" does not fit in 64 bits", field, s);
		if (*out == 0)
			return fg_bad(err, "field \"%s\" must be a non-zero device id", field);
		return 0;
	}
	return fg_bad(err, "field \"%s\" must be a string (\"0x...\" or decimal) or an integer", field);
}

static int
fg_get_key(json_t *obj, const char *field, uint8_t key[FG_AUTH_KEY_LEN],
	   struct fg_err *err)
{
	json_t *v = json_object_get(obj, field);
	const char *s = json_string_value(v);

	/* A dump made without --with-keys marks keyed devices so; loading it
	 * would turn their authentication off without a word. */
	if (s != NULL && strcmp(s, FG_KEY_WITHHELD) == 0)
		return fg_bad(err, "field \"%s\": the key was withheld from the dump this line comes from (dump with --with-keys, as root or the control group, to keep keys)",
			      field);
	if (s == NULL || strlen(s) != 2 * FG_AUTH_KEY_LEN ||
	    strspn(s, "0123456789abcdefABCDEF") != 2 * FG_AUTH_KEY_LEN)
		return fg_bad(err, "field \"%s\" must be %d hex digits", field,
			      2 * FG_AUTH_KEY_LEN);
	for (int i = 0; i < FG_AUTH_KEY_LEN; i++) {
		char byte[3] = { s[2 * i], s[2 * i + 1], 0 };

		key[i] = (uint8_t)strtoul(byte, NULL, 16);
	}
	return 0;
}

/* The optional "key": *has set when present. */
static int
fg_get_opt_key(json_t *obj, uint8_t key[FG_AUTH_KEY_LEN], bool *has, struct fg_err *err)
{
	if (json_object_get(obj, "key") == NULL)
		return 0;
	if (fg_get_key(obj, "key", key, err))
		return -EINVAL;
	*has = true;
	return 0;
}

static int
fg_get_sinks(json_t *obj, const char *field, uint32_t *ids, uint8_t *n,
	     struct fg_err *err)
{
	json_t *a = json_object_get(obj, field);
	size_t i;
	json_t *v;

	if (!json_is_array(a) || json_array_size(a) == 0 ||
	    json_array_size(a) > FG_MAX_SINKS)
		return fg_bad(err, "field \"%s\" must be an array of 1 to %d sink ids",
			      field, FG_MAX_SINKS);
	json_array_foreach(a, i, v) {
		json_int_t x = json_integer_value(v);

		if (!json_is_integer(v) || x < 1 || x > UINT32_MAX)
			return fg_bad(err, "field \"%s\": element %zu is not a sink id (1..4294967295)",
				      field, i);
		ids[i] = (uint32_t)x;
	}
	*n = (uint8_t)json_array_size(a);
	return 0;
}

/* ---- one decoder per op --------------------------------------------------- */

static int
fg_dec_tenant(json_t *o, struct fg_op *op, struct fg_err *err)
{
	struct fg_tenant_spec *s = &op->tenant;
	json_t *name = json_object_get(o, "name");
	uint64_t v = 0;

	if (fg_get_u32(o, "tenant", 1, &s->tenant_id, err))
		return -EINVAL;
	if (name != NULL) {
		if (!json_is_string(name) || strlen(json_string_value(name)) >= FG_TENANT_NAME_MAX)
			return fg_bad(err, "field \"name\" must be a string of at most %d bytes",
				      FG_TENANT_NAME_MAX - 1);
		/* The spec's name pointer is set where the op is used: ops
		 * are copied and moved (arrays grow), their name with them. */
		snprintf(op->name, sizeof(op->name), "%s", json_string_value(name));
	}
	if (json_object_get(o, "max_devices") &&
	    fg_get_u32(o, "max_devices", 1, &s->max_devices, err))
		return -EINVAL;
	if (json_object_get(o, "rate_pps")) {
		if (fg_get_uint(o, "rate_pps", 1, UINT32_MAX, &v, err))
			return -EINVAL;
		s->rate_pps = v;
	}
	if (json_object_get(o, "burst")) {
		if (fg_get_uint(o, "burst", 1, UINT32_MAX, &v, err))
			return -EINVAL;
		/* A burst is the depth of a rate's bucket: alone it means
		 * nothing, and ignoring it would hide a forgotten rate. */
		if (s->rate_pps == 0)
			return fg_bad(err, "field \"burst\" needs \"rate_pps\" (a burst without a rate limits nothing)");
		s->burst = v;
	}
	return 0;
}

static int
fg_dec_sink(json_t *o, struct fg_op *op, struct fg_err *err)
{
	struct fg_sink_spec *s = &op->sink;
	const char *addr = json_string_value(json_object_get(o, "addr"));
	uint64_t v = 0;

	if (fg_get_u32(o, "sink", 1, &s->sink_id, err) ||
	    fg_get_u32(o, "tenant", 1, &s->tenant_id, err))
		return -EINVAL;
	if (addr == NULL)
		return fg_bad(err, "field \"addr\" must be a string");
	if (inet_pton(AF_INET, addr, s->addr) == 1)
		s->family = AF_INET;
	else if (inet_pton(AF_INET6, addr, s->addr) == 1)
		s->family = AF_INET6;
	else
		return fg_bad(err, "field \"addr\": \"%s\" is not an IPv4 or IPv6 address", addr);
	if (fg_get_uint(o, "port", 1, 65535, &v, err))
		return -EINVAL;
	s->port = (uint16_t)v;
	if (fg_get_uint(o, "egress", 0, 65535, &v, err))
		return -EINVAL;
	s->egress = (uint16_t)v;
	return 0;
}

static int
fg_dec_device(json_t *o, struct fg_op *op, struct fg_err *err)
{
	struct fg_device_spec *s = &op->device;

	if (fg_get_u32(o, "tenant", 1, &s->tenant_id, err) ||
	    fg_get_device(o, "device", &s->device_id, err) ||
	    fg_get_u32(o, "epoch", 0, &s->epoch, err) ||
	    fg_get_sinks(o, "sinks", s->sinks, &s->n_sinks, err) ||
	    fg_get_opt_key(o, s->key, &s->has_key, err))
		return -EINVAL;
	return 0;
}

static int
fg_dec_move(json_t *o, struct fg_op *op, struct fg_err *err)
{
	struct fg_move_spec *s = &op->move;

	if (fg_get_device(o, "device", &s->device_id, err) ||
	    fg_get_u32(o, "from", 1, &s->from, err) ||
	    fg_get_u32(o, "to", 1, &s->to, err) ||
	    fg_get_u32(o, "epoch", 0, &s->epoch, err) ||
	    fg_get_sinks(o, "sinks", s->sinks, &s->n_sinks, err) ||
	    fg_get_opt_key(o, s->key, &s->has_key, err))
		return -EINVAL;
	return 0;
}

static int
fg_dec_del_device(json_t *o, struct fg_op *op, struct fg_err *err)
{
	if (fg_get_u32(o, "tenant", 1, &op->del_device.tenant_id, err) ||
	    fg_get_device(o, "device", &op->del_device.device_id, err))
		return -EINVAL;
	return 0;
}

static int
fg_dec_sink_id(json_t *o, struct fg_op *op, struct fg_err *err)
{
	return fg_get_u32(o, "sink", 1, &op->id, err) ? -EINVAL : 0;
}

static int
fg_dec_tenant_id(json_t *o, struct fg_op *op, struct fg_err *err)
{
	return fg_get_u32(o, "tenant", 1, &op->id, err) ? -EINVAL : 0;
}

static int
fg_dec_store_revision(json_t *o, struct fg_op *op, struct fg_err *err)
{
	uint64_t v = 0;

	if (fg_get_uint(o, "revision", 1, INT64_MAX, &v, err))
		return -EINVAL;
	op->revision = (int64_t)v;
	return 0;
}

/* Each op: the fields it requires, those it allows, and its decoder. */
struct fg_op_row {
	const char *name;
	enum fg_op_kind kind;
	const char *required[7];
	const char *optional[5];
	int (*decode)(json_t *o, struct fg_op *op, struct fg_err *err);
};

static const struct fg_op_row fg_op_rows[] = {
	{ "tenant", FG_OP_TENANT, { "tenant" },
	  { "name", "max_devices", "rate_pps", "burst" }, fg_dec_tenant },
	{ "sink", FG_OP_SINK, { "sink", "tenant", "addr", "port", "egress" },
	  { 0 }, fg_dec_sink },
	{ "device", FG_OP_DEVICE, { "tenant", "device", "epoch", "sinks" },
	  { "key" }, fg_dec_device },
	{ "move", FG_OP_MOVE, { "device", "from", "to", "epoch", "sinks" },
	  { "key" }, fg_dec_move },
	{ "del_device", FG_OP_DEL_DEVICE, { "tenant", "device" }, { 0 },
	  fg_dec_del_device },
	{ "del_sink", FG_OP_DEL_SINK, { "sink" }, { 0 }, fg_dec_sink_id },
	{ "suspend", FG_OP_SUSPEND, { "tenant" }, { 0 }, fg_dec_tenant_id },
	{ "resume", FG_OP_RESUME, { "tenant" }, { 0 }, fg_dec_tenant_id },
	{ "del_tenant", FG_OP_DEL_TENANT, { "tenant" }, { 0 }, fg_dec_tenant_id },
	{ "store_revision", FG_OP_STORE_REVISION, { "revision" }, { 0 },
	  fg_dec_store_revision },
};

static int
fg_listed(const char *const *list, size_t n, const char *field)
{
	for (size_t i = 0; i < n && list[i] != NULL; i++)
		if (strcmp(list[i], field) == 0)
			return 1;
	return 0;
}

/* jansson refuses an integer beyond 64 bits before any field is read, with
 * the position just after it. Name the field it belongs to, when the text
 * before it is plainly `"field": digits` (else len is 0). */
static size_t
fg_overflow_field(const char *line, size_t len, int pos, const char **field)
{
	size_t i = pos > 0 && (size_t)pos <= len ? (size_t)pos : 0, end;

	while (i > 0 && ((line[i - 1] >= '0' && line[i - 1] <= '9') || line[i - 1] == '-'))
		i--;
	while (i > 0 && (line[i - 1] == ' ' || line[i - 1] == '\t'))
		i--;
	if (i == 0 || line[--i] != ':')
		return 0;
	while (i > 0 && (line[i - 1] == ' ' || line[i - 1] == '\t'))
		i--;
	if (i == 0 || line[--i] != '"')
		return 0;
	end = i;
	while (i > 0 && line[i - 1] != '"' && line[i - 1] != '\\')
		i--;
	if (i == 0 || line[i - 1] != '"' || i == end)
		return 0;
	*field = line + i;
	return end - i;
}

int
fg_op_parse(const char *line, size_t len, struct fg_op *op, struct fg_err *err)
{
	const struct fg_op_row *row = NULL;
	json_error_t jerr;
	const char *field, *opname;
	json_t *o, *v;
	int ret = -EINVAL;

	memset(op, 0, sizeof(*op));
	o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (o == NULL) {
		size_t n = json_error_code(&jerr) == json_error_numeric_overflow
			? fg_overflow_field(line, len, jerr.position, &field) : 0;

		if (n > 0)
			return fg_bad(err, "field \"%.*s\": %s (column %d)", (int)n, field,
				      jerr.text, jerr.column);
		return fg_bad(err, "not valid JSON: %s (column %d)", jerr.text,
			      jerr.column);
	}
	if (!json_is_object(o)) {
		fg_bad(err, "a line must hold one JSON object");
		goto out;
	}
	opname = json_string_value(json_object_get(o, "op"));
	if (opname == NULL) {
		fg_bad(err, "field \"op\" is missing or not a string");
		goto out;
	}
	for (size_t i = 0; i < RTE_DIM(fg_op_rows); i++)
		if (strcmp(fg_op_rows[i].name, opname) == 0)
			row = &fg_op_rows[i];
	if (row == NULL) {
		fg_bad(err, "unknown op \"%s\"", opname);
		goto out;
	}
	json_object_foreach(o, field, v) {
		if (strcmp(field, "op") != 0 &&
		    !fg_listed(row->required, RTE_DIM(row->required), field) &&
		    !fg_listed(row->optional, RTE_DIM(row->optional), field)) {
			fg_bad(err, "op \"%s\": unknown field \"%s\"", opname, field);
			goto out;
		}
	}
	for (size_t i = 0; i < RTE_DIM(row->required) && row->required[i]; i++) {
		if (json_object_get(o, row->required[i]) == NULL) {
			fg_bad(err, "op \"%s\": missing field \"%s\"", opname,
			       row->required[i]);
			goto out;
		}
	}
	op->kind = row->kind;
	ret = row->decode(o, op, err);
	if (ret < 0)
		fg_err_prefix(err, "op \"%s\": ", opname);
out:
	json_decref(o);
	return ret;
}

