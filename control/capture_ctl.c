/*
 * The `capture` command's control side (see capture_ctl.h). The packets go
 * back to the client in the reply, base64 in JSON, and fgctl writes the
 * capture file: the router never opens a path a client chose.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include <framegate/ctl.h>
#include <framegate/reasons.h>

#include "capture.h"
#include "capture_ctl.h"

/* An optional integer field in [min, max]: 0 (def when absent) or -EINVAL. */
static int
fg_capture_int(json_t *req, const char *field, json_int_t min, json_int_t max,
	       json_int_t def, json_int_t *out, struct fg_err *err)
{
	json_t *v = json_object_get(req, field);

	*out = def;
	if (v == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return fg_err_set(err, EINVAL, "\"%s\" must be a number from %" JSON_INTEGER_FORMAT
				  " to %" JSON_INTEGER_FORMAT, field, min, max);
	*out = json_integer_value(v);
	return 0;
}

/* "X is not a drop reason; one of: ..." */
static int
fg_capture_bad_reason(const char *name, struct fg_err *err)
{
	char list[256];
	size_t k = 0;

	list[0] = '\0';
	for (int r = 1; r < FG_REASON_END; r++)
		k += (size_t)snprintf(list + k, k < sizeof(list) ? sizeof(list) - k : 0, "%s%s",
				      r > 1 ? " " : "", fg_reason_name((enum fg_reason)r));
	return fg_err_set(err, EINVAL, "reason \"%.16s\" is not a drop reason; one of: %s",
			  name, list);
}

int
fg_capture_start(struct fg_capture *cap, json_t *req, struct fg_err *err)
{
	json_t *reason = json_object_get(req, "reason");
	json_int_t count, tenant, timeout;
	enum fg_reason r;
	int ret;

	if (!json_is_string(reason))
		return fg_err_set(err, EINVAL, "\"reason\" must be the name of a drop reason");
	r = fg_reason_by_name(json_string_value(reason));
	if (r == FG_PASS)
		return fg_capture_bad_reason(json_string_value(reason), err);
	if (json_object_get(req, "count") == NULL)
		return fg_err_set(err, EINVAL, "\"count\" is required (1 to %u)",
				  FG_CTL_CAPTURE_MAX_COUNT);
	if (fg_capture_int(req, "count", 1, FG_CTL_CAPTURE_MAX_COUNT, 0, &count, err) < 0 ||
	    fg_capture_int(req, "tenant", 1, UINT32_MAX, 0, &tenant, err) < 0 ||
	    fg_capture_int(req, "timeout", 1, FG_CTL_CAPTURE_MAX_TIMEOUT,
			   FG_CTL_CAPTURE_DEFAULT_TIMEOUT, &timeout, err) < 0)
		return -EINVAL;
	/* Drops before check 5 have no tenant to match (SPEC 3). */
	if (tenant != 0 && r < FG_DROP_unknown_tenant)
		return fg_err_set(err, EINVAL, "reason %s drops a packet before its tenant is read; capture it without \"tenant\"",
				  fg_reason_name(r));
	ret = fg_capture_arm(cap, r, (uint32_t)tenant, (uint32_t)count, (unsigned int)timeout);
	if (ret == -EBUSY)
		return fg_err_set(err, EBUSY, "a capture is running already (%s, %u of %u saved); one at a time",
				  fg_reason_name((enum fg_reason)cap->reason), fg_capture_saved(cap),
				  cap->count);
	return ret < 0 ? fg_err_set(err, -ret, "cannot start the capture") : 0;
}

static int
fg_capture_add(void *ctx, const struct fg_capture_pkt *p)
{
	char b64[sodium_base64_ENCODED_LEN(FG_CTL_CAPTURE_SNAPLEN, sodium_base64_VARIANT_ORIGINAL)];

	sodium_bin2base64(b64, sizeof(b64), p->data, p->len, sodium_base64_VARIANT_ORIGINAL);
	return json_array_append_new(ctx, json_pack("{s:I, s:I, s:s}",
		"ts_ns", (json_int_t)p->ts_ns, "len", (json_int_t)p->wire_len, "data", b64));
}

json_t *
fg_capture_result(struct fg_capture *cap, struct fg_tables *t, bool timed_out)
{
	json_t *pkts = json_array();
	unsigned int n = fg_capture_finish(cap, t, fg_capture_add, pkts);
	json_t *res = json_pack("{s:s, s:I, s:I, s:b, s:I}",
		"reason", fg_reason_name((enum fg_reason)cap->reason),
		"count", (json_int_t)cap->count, "saved", (json_int_t)n,
		"timed_out", timed_out && n < cap->count,
		"snaplen", (json_int_t)FG_CTL_CAPTURE_SNAPLEN);

	if (cap->tenant != 0)
		json_object_set_new(res, "tenant", json_integer(cap->tenant));
	json_object_set_new(res, "packets", pkts);
	return res;
}
