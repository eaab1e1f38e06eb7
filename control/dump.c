/*
 * The state as mapping-file op lines: what `fgctl dump` prints and what a
 * journal snapshot holds. Loading the lines into empty tables gives the same
 * tenants, sinks and mappings (epochs, keys, sinks) and the same suspended
 * tenants: tenants first, then sinks, then devices, then suspensions.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <rte_hash.h>

#include <framegate/ctl.h>

#include "dump.h"

static int
fg_emit_json(json_t *o, fg_dump_emit_fn *emit, void *ctx)
{
	char *s;
	int ret;

	if (o == NULL)
		return -ENOMEM;
	s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	if (s == NULL)
		return -ENOMEM;
	ret = emit(ctx, s);
	free(s);
	return ret;
}

json_t *
fg_tenant_json(const struct fg_tenant *e)
{
	json_t *o = json_pack("{s:s, s:I}", "op", "tenant", "tenant", (json_int_t)e->tenant_id);

	if (e->name[0])
		json_object_set_new(o, "name", json_string(e->name));
	if (e->max_devices)
		json_object_set_new(o, "max_devices", json_integer(e->max_devices));
	if (e->rate_pps)
		json_object_set_new(o, "rate_pps", json_integer((json_int_t)e->rate_pps));
	if (e->burst)
		json_object_set_new(o, "burst", json_integer((json_int_t)e->burst));
	return o;
}

json_t *
fg_sink_json(const struct fg_sink *e)
{
	char addr[INET6_ADDRSTRLEN];

	inet_ntop(e->family, e->addr, addr, sizeof(addr));
	return json_pack("{s:s, s:I, s:I, s:s, s:i, s:i}", "op", "sink",
			 "sink", (json_int_t)e->sink_id, "tenant", (json_int_t)e->tenant_id,
			 "addr", addr, "port", e->port, "egress", e->egress);
}

json_t *
fg_device_json(const struct fg_device *e, unsigned int flags)
{
	char dev[24], key[2 * FG_AUTH_KEY_LEN + 1];
	json_t *sinks = json_array(), *o;

	snprintf(dev, sizeof(dev), "0x%016" PRIx64, e->device_id);
	for (unsigned int i = 0; i < e->n_sinks; i++)
		json_array_append_new(sinks, json_integer(e->sinks[i]->sink_id));
	o = json_pack("{s:s, s:I, s:s, s:I, s:o}", "op", "device",
		      "tenant", (json_int_t)e->tenant_id, "device", dev,
		      "epoch", (json_int_t)e->epoch, "sinks", sinks);
	if (e->has_key && !(flags & FG_DUMP_KEYS)) {
		json_object_set_new(o, "key", json_string(FG_KEY_WITHHELD));
	} else if (e->has_key) {
		for (int i = 0; i < FG_AUTH_KEY_LEN; i++)
			snprintf(key + 2 * i, 3, "%02x", e->key[i]);
		json_object_set_new(o, "key", json_string(key));
	}
	return o;
}

int
fg_dump(const struct fg_ownership *o, uint32_t tenant, unsigned int flags,
	fg_dump_emit_fn *emit, void *ctx)
{
	const struct fg_tables *t = fg_ownership_tables(o);
	const void *key;
	void *data;
	uint32_t next;
	int ret;

	next = 0;
	while (rte_hash_iterate(t->tenants, &key, &data, &next) >= 0) {
		const struct fg_tenant *e = data;

		if ((tenant == 0 || e->tenant_id == tenant) &&
		    (ret = fg_emit_json(fg_tenant_json(e), emit, ctx)) < 0)
			return ret;
	}
	next = 0;
	while (rte_hash_iterate(t->sinks, &key, &data, &next) >= 0) {
		const struct fg_sink *e = data;

		if ((tenant == 0 || e->tenant_id == tenant) &&
		    (ret = fg_emit_json(fg_sink_json(e), emit, ctx)) < 0)
			return ret;
	}
	next = 0;
	while (rte_hash_iterate(t->devices, &key, &data, &next) >= 0) {
		const struct fg_device *e = data;

		if ((tenant == 0 || e->tenant_id == tenant) &&
		    (ret = fg_emit_json(fg_device_json(e, flags), emit, ctx)) < 0)
			return ret;
	}
	next = 0;
	while (rte_hash_iterate(t->tenants, &key, &data, &next) >= 0) {
		const struct fg_tenant *e = data;

		if (e->suspended && (tenant == 0 || e->tenant_id == tenant) &&
		    (ret = fg_emit_json(json_pack("{s:s, s:I}", "op", "suspend", "tenant",
						  (json_int_t)e->tenant_id), emit, ctx)) < 0)
			return ret;
	}
	/* A store follower's revision goes with the whole state (a snapshot),
	 * not with one tenant's. */
	if (tenant == 0 && fg_ownership_store_revision(o) != 0)
		return fg_emit_json(json_pack("{s:s, s:I}", "op", "store_revision", "revision",
					      (json_int_t)fg_ownership_store_revision(o)), emit, ctx);
	return 0;
}

static int
fg_emit_file(void *ctx, const char *line)
{
	FILE *f = ctx;

	return fprintf(f, "%s\n", line) < 0 ? -EIO : 0;
}

int
fg_dump_file(const struct fg_ownership *o, FILE *out)
{
	return fg_dump(o, 0, FG_DUMP_KEYS, fg_emit_file, out);
}
