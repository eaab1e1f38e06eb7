/*
 * Ownership actions (see ownership.h): check every invariant first, then
 * publish. A refused action leaves the tables and the bookkeeping as they
 * were.
 *
 * Bookkeeping the workers never read lives here, on the writer's side: which
 * tenant holds each device (the one-owner index), how many mappings and
 * sinks each tenant has, and how many mappings name each sink.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <rte_errno.h>
#include <rte_hash.h>
#include <rte_hash_crc.h>

#include "ownership.h"

/* FIFO of free slot numbers: a freed slot is reused as late as possible, so
 * counters of a deleted tenant are not mistaken for a new one's. */
struct fg_slots {
	uint32_t *q;
	uint32_t n, head, count;
};

struct fg_ownership {
	struct fg_tables *t;
	struct rte_hash *owner;          /* device_id -> tenant_id */
	uint32_t *tenant_devices;        /* [tenant slot] */
	uint32_t *tenant_sinks;          /* [tenant slot] */
	uint32_t *sink_refs;             /* [sink slot] */
	struct fg_slots tenant_slots, sink_slots;
};

#define fg_fail fg_err_set

static int
fg_slots_init(struct fg_slots *s, uint32_t n)
{
	s->q = malloc((size_t)n * sizeof(*s->q));
	if (s->q == NULL)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		s->q[i] = i;
	s->n = n;
	s->head = 0;
	s->count = n;
	return 0;
}

static uint32_t
fg_slots_get(struct fg_slots *s)
{
	uint32_t v = s->q[s->head];

	s->head = s->head + 1 == s->n ? 0 : s->head + 1;
	s->count--;
	return v;
}

static void
fg_slots_put(struct fg_slots *s, uint32_t v)
{
	uint32_t tail = s->head + s->count;

	s->q[tail >= s->n ? tail - s->n : tail] = v;
	s->count++;
}

struct fg_ownership *
fg_ownership_create(struct fg_tables *t)
{
	const struct fg_tables_config *cfg = &t->cfg;
	struct fg_ownership *o = calloc(1, sizeof(*o));
	char name[RTE_HASH_NAMESIZE];

	if (o == NULL)
		goto nomem;
	o->t = t;
	snprintf(name, sizeof(name), "%.16s_own", t->name);
	o->owner = rte_hash_create(&(struct rte_hash_parameters){
		.name = name,
		.entries = cfg->max_devices + cfg->max_devices / 8 + 1024,
		.key_len = sizeof(uint64_t),
		.hash_func = rte_hash_crc,
		.socket_id = cfg->socket_id,
		.extra_flag = RTE_HASH_EXTRA_FLAGS_EXT_TABLE,
	});
	o->tenant_devices = calloc(cfg->max_tenants, sizeof(uint32_t));
	o->tenant_sinks = calloc(cfg->max_tenants, sizeof(uint32_t));
	o->sink_refs = calloc(cfg->max_sinks, sizeof(uint32_t));
	if (o->owner == NULL || o->tenant_devices == NULL ||
	    o->tenant_sinks == NULL || o->sink_refs == NULL ||
	    fg_slots_init(&o->tenant_slots, cfg->max_tenants) != 0 ||
	    fg_slots_init(&o->sink_slots, cfg->max_sinks) != 0)
		goto nomem;
	return o;
nomem:
	fg_ownership_free(o);
	rte_errno = ENOMEM;
	return NULL;
}

void
fg_ownership_free(struct fg_ownership *o)
{
	if (o == NULL)
		return;
	rte_hash_free(o->owner);
	free(o->tenant_devices);
	free(o->tenant_sinks);
	free(o->sink_refs);
	free(o->tenant_slots.q);
	free(o->sink_slots.q);
	free(o);
}

struct fg_tables *
fg_ownership_tables(const struct fg_ownership *o)
{
	return o->t;
}

uint32_t
fg_device_owner(const struct fg_ownership *o, uint64_t device_id)
{
	void *data;

	if (rte_hash_lookup_data(o->owner, &device_id, &data) < 0)
		return 0;
	return (uint32_t)(uintptr_t)data;
}

uint32_t
fg_tenant_device_count(const struct fg_ownership *o, uint32_t tenant_id)
{
	const struct fg_tenant *tn = fg_tables_tenant(o->t, tenant_id);

	return tn ? o->tenant_devices[tn->slot] : 0;
}

/* ---- tenants ---------------------------------------------------------- */

int
fg_tenant_add(struct fg_ownership *o, const struct fg_tenant_spec *s,
	      struct fg_err *err)
{
	struct fg_tenant *e;
	int ret;

	if (s->tenant_id == 0)
		return fg_fail(err, EINVAL, "tenant id 0 is reserved");
	if (s->name != NULL && strlen(s->name) >= FG_TENANT_NAME_MAX)
		return fg_fail(err, EINVAL, "tenant %" PRIu32 ": name longer than %d bytes",
			       s->tenant_id, FG_TENANT_NAME_MAX - 1);
	if (fg_tables_tenant(o->t, s->tenant_id) != NULL)
		return fg_fail(err, EEXIST, "tenant %" PRIu32 " already exists",
			       s->tenant_id);
	if (o->tenant_slots.count == 0)
		return fg_fail(err, ENOSPC, "tenant %" PRIu32 ": the tenant directory is full (%" PRIu32 " tenants)",
			       s->tenant_id, o->t->cfg.max_tenants);
	e = fg_tables_tenant_alloc(o->t);
	if (e == NULL)
		return fg_fail(err, ENOMEM, "tenant %" PRIu32 ": out of memory", s->tenant_id);
	e->tenant_id = s->tenant_id;
	e->max_devices = s->max_devices;
	e->rate_pps = s->rate_pps;
	e->burst = s->burst;
	if (s->name != NULL)
		snprintf(e->name, sizeof(e->name), "%s", s->name);
	e->slot = fg_slots_get(&o->tenant_slots);
	ret = fg_tables_tenant_publish(o->t, e);
	if (ret < 0) {
		fg_slots_put(&o->tenant_slots, e->slot);
		fg_tables_tenant_discard(o->t, e);
		return fg_fail(err, -ret, "tenant %" PRIu32 ": cannot publish: %s",
			       s->tenant_id, strerror(-ret));
	}
	o->tenant_devices[e->slot] = 0;
	o->tenant_sinks[e->slot] = 0;
	return 0;
}

int
fg_tenant_set_suspended(struct fg_ownership *o, uint32_t tenant_id,
			bool suspended, struct fg_err *err)
{
	const struct fg_tenant *cur = fg_tables_tenant(o->t, tenant_id);
	struct fg_tenant *e;
	int ret;

	if (cur == NULL)
		return fg_fail(err, ENOENT, "tenant %" PRIu32 " does not exist", tenant_id);
	if (cur->suspended == suspended)
		return 0;
	e = fg_tables_tenant_alloc(o->t);
	if (e == NULL)
		return fg_fail(err, ENOMEM, "tenant %" PRIu32 ": out of memory", tenant_id);
	*e = *cur;
	e->suspended = suspended;
	ret = fg_tables_tenant_publish(o->t, e);
	if (ret < 0) {
		fg_tables_tenant_discard(o->t, e);
		return fg_fail(err, -ret, "tenant %" PRIu32 ": cannot publish: %s",
			       tenant_id, strerror(-ret));
	}
	return 0;
}

int
fg_tenant_del(struct fg_ownership *o, uint32_t tenant_id, struct fg_err *err)
{
	const struct fg_tenant *cur = fg_tables_tenant(o->t, tenant_id);
	uint32_t slot;

	if (cur == NULL)
		return fg_fail(err, ENOENT, "tenant %" PRIu32 " does not exist", tenant_id);
	slot = cur->slot;
	if (o->tenant_devices[slot] != 0 || o->tenant_sinks[slot] != 0)
		return fg_fail(err, EBUSY, "tenant %" PRIu32 " is in use: it still holds %" PRIu32 " devices and %" PRIu32 " sinks",
			       tenant_id, o->tenant_devices[slot], o->tenant_sinks[slot]);
	fg_tables_tenant_unpublish(o->t, tenant_id);
	fg_slots_put(&o->tenant_slots, slot);
	return 0;
}

/* ---- sinks ------------------------------------------------------------ */

int
fg_sink_add(struct fg_ownership *o, const struct fg_sink_spec *s,
	    struct fg_err *err)
{
	const struct fg_tenant *tn;
	const struct fg_sink *cur;
	struct fg_sink *e;
	int ret;

	if (s->sink_id == 0)
		return fg_fail(err, EINVAL, "sink id 0 is reserved");
	if (s->family != AF_INET && s->family != AF_INET6)
		return fg_fail(err, EINVAL, "sink %" PRIu32 ": address family must be IPv4 or IPv6",
			       s->sink_id);
	if (s->port == 0)
		return fg_fail(err, EINVAL, "sink %" PRIu32 ": UDP port 0 is not a destination",
			       s->sink_id);
	cur = fg_tables_sink(o->t, s->sink_id);
	if (cur != NULL)
		return fg_fail(err, EEXIST, "sink %" PRIu32 " already exists (owned by tenant %" PRIu32 ")",
			       s->sink_id, cur->tenant_id);
	tn = fg_tables_tenant(o->t, s->tenant_id);
	if (tn == NULL)
		return fg_fail(err, ENOENT, "sink %" PRIu32 ": tenant %" PRIu32 " does not exist",
			       s->sink_id, s->tenant_id);
	if (o->sink_slots.count == 0)
		return fg_fail(err, ENOSPC, "sink %" PRIu32 ": the sink table is full (%" PRIu32 " sinks)",
			       s->sink_id, o->t->cfg.max_sinks);
	e = fg_tables_sink_alloc(o->t);
	if (e == NULL)
		return fg_fail(err, ENOMEM, "sink %" PRIu32 ": out of memory", s->sink_id);
	e->sink_id = s->sink_id;
	e->tenant_id = s->tenant_id;
	e->family = s->family;
	memcpy(e->addr, s->addr, sizeof(e->addr));
	e->port = s->port;
	e->egress = s->egress;
	e->slot = fg_slots_get(&o->sink_slots);
	ret = fg_tables_sink_publish(o->t, e);
	if (ret < 0) {
		fg_slots_put(&o->sink_slots, e->slot);
		fg_tables_sink_discard(o->t, e);
		return fg_fail(err, -ret, "sink %" PRIu32 ": cannot publish: %s",
			       s->sink_id, strerror(-ret));
	}
	o->sink_refs[e->slot] = 0;
	o->tenant_sinks[tn->slot]++;
	return 0;
}

int
fg_sink_del(struct fg_ownership *o, uint32_t sink_id, struct fg_err *err)
{
	const struct fg_sink *cur = fg_tables_sink(o->t, sink_id);
	const struct fg_tenant *tn;
	uint32_t slot;

	if (cur == NULL)
		return fg_fail(err, ENOENT, "sink %" PRIu32 " does not exist", sink_id);
	slot = cur->slot;
	if (o->sink_refs[slot] != 0)
		return fg_fail(err, EBUSY, "sink %" PRIu32 " is in use by %" PRIu32 " device mappings",
			       sink_id, o->sink_refs[slot]);
	tn = fg_tables_tenant(o->t, cur->tenant_id);
	if (tn != NULL)
		o->tenant_sinks[tn->slot]--;
	fg_tables_sink_unpublish(o->t, sink_id);
	fg_slots_put(&o->sink_slots, slot);
	return 0;
}

/* ---- devices ---------------------------------------------------------- */

/* Check a mapping's sink list for tenant_id and fill the entry's pointers. */
static int
fg_resolve_sinks(struct fg_ownership *o, uint32_t tenant_id, uint64_t device_id,
		 const uint32_t *ids, uint8_t n, struct fg_device *e,
		 struct fg_err *err)
{
	if (n == 0 || n > FG_MAX_SINKS)
		return fg_fail(err, EINVAL, "device 0x%016" PRIx64 ": a mapping needs 1 to %d sinks, not %u",
			       device_id, FG_MAX_SINKS, n);
	for (uint8_t i = 0; i < n; i++) {
		const struct fg_sink *s = fg_tables_sink(o->t, ids[i]);

		for (uint8_t j = 0; j < i; j++)
			if (ids[j] == ids[i])
				return fg_fail(err, EINVAL, "device 0x%016" PRIx64 ": sink %" PRIu32 " is listed twice",
					       device_id, ids[i]);
		if (s == NULL)
			return fg_fail(err, ENOENT, "device 0x%016" PRIx64 ": sink %" PRIu32 " does not exist",
				       device_id, ids[i]);
		if (s->tenant_id != tenant_id)
			return fg_fail(err, EXDEV, "device 0x%016" PRIx64 ": sink %" PRIu32 " belongs to tenant %" PRIu32 ", not to tenant %" PRIu32 " (every sink of a mapping must belong to its tenant)",
				       device_id, ids[i], s->tenant_id, tenant_id);
		e->sinks[i] = s;
	}
	e->n_sinks = n;
	return 0;
}

static void
fg_sink_refs_add(struct fg_ownership *o, const struct fg_device *d, int delta)
{
	for (unsigned int i = 0; i < d->n_sinks; i++)
		o->sink_refs[d->sinks[i]->slot] += (uint32_t)delta;
}

/* The tenant's room for one more mapping. */
static int
fg_check_room(struct fg_ownership *o, const struct fg_tenant *tn,
	      uint64_t device_id, struct fg_err *err)
{
	if (tn->max_devices != 0 && o->tenant_devices[tn->slot] >= tn->max_devices)
		return fg_fail(err, ENOSPC, "device 0x%016" PRIx64 ": tenant %" PRIu32 " already holds its max_devices (%" PRIu32 ") mappings",
			       device_id, tn->tenant_id, tn->max_devices);
	if (rte_hash_count(o->owner) >= (int32_t)o->t->cfg.max_devices)
		return fg_fail(err, ENOSPC, "device 0x%016" PRIx64 ": the device table is full (%" PRIu32 " mappings)",
			       device_id, o->t->cfg.max_devices);
	return 0;
}

int
fg_device_put(struct fg_ownership *o, const struct fg_device_spec *s,
	      struct fg_err *err)
{
	const struct fg_tenant *tn;
	const struct fg_device *cur;
	struct fg_device *e;
	uint32_t owner;
	int ret;

	if (s->device_id == 0)
		return fg_fail(err, EINVAL, "device id 0 is reserved");
	tn = fg_tables_tenant(o->t, s->tenant_id);
	if (tn == NULL)
		return fg_fail(err, ENOENT, "device 0x%016" PRIx64 ": tenant %" PRIu32 " does not exist",
			       s->device_id, s->tenant_id);
	owner = fg_device_owner(o, s->device_id);
	if (owner != 0 && owner != s->tenant_id)
		return fg_fail(err, EEXIST, "device 0x%016" PRIx64 " is held by tenant %" PRIu32 "; a device has one owner (use move)",
			       s->device_id, owner);
	cur = owner ? fg_tables_device(o->t, s->tenant_id, s->device_id) : NULL;
	if (cur != NULL && s->epoch < cur->epoch)
		return fg_fail(err, ERANGE, "device 0x%016" PRIx64 ": epoch %" PRIu32 " is lower than the current %" PRIu32 " (an epoch never decreases)",
			       s->device_id, s->epoch, cur->epoch);
	if (cur == NULL && (ret = fg_check_room(o, tn, s->device_id, err)) < 0)
		return ret;

	e = fg_tables_device_alloc(o->t);
	if (e == NULL)
		return fg_fail(err, ENOSPC, "device 0x%016" PRIx64 ": no free device entry",
			       s->device_id);
	ret = fg_resolve_sinks(o, s->tenant_id, s->device_id, s->sinks,
			       s->n_sinks, e, err);
	if (ret < 0) {
		fg_tables_device_discard(o->t, e);
		return ret;
	}
	e->device_id = s->device_id;
	e->tenant_id = s->tenant_id;
	e->epoch = s->epoch;
	e->has_key = s->has_key;
	if (s->has_key)
		memcpy(e->key, s->key, sizeof(e->key));
	if (cur == NULL && rte_hash_add_key_data(o->owner, &s->device_id,
						 (void *)(uintptr_t)s->tenant_id) < 0) {
		fg_tables_device_discard(o->t, e);
		return fg_fail(err, ENOSPC, "device 0x%016" PRIx64 ": the owner index is full",
			       s->device_id);
	}
	fg_sink_refs_add(o, e, +1);
	if (cur != NULL)
		fg_sink_refs_add(o, cur, -1);   /* cur stays readable until sync */
	ret = fg_tables_device_publish(o->t, e);
	if (ret < 0) {
		fg_sink_refs_add(o, e, -1);
		if (cur != NULL)
			fg_sink_refs_add(o, cur, +1);
		else
			rte_hash_del_key(o->owner, &s->device_id);
		fg_tables_device_discard(o->t, e);
		return fg_fail(err, -ret, "device 0x%016" PRIx64 ": cannot publish: %s",
			       s->device_id, strerror(-ret));
	}
	if (cur == NULL)
		o->tenant_devices[tn->slot]++;
	return 0;
}

int
fg_device_del(struct fg_ownership *o, uint32_t tenant_id, uint64_t device_id,
	      struct fg_err *err)
{
	const struct fg_device *cur;
	const struct fg_tenant *tn;
	uint32_t owner = fg_device_owner(o, device_id);

	if (owner != tenant_id)
		return fg_fail(err, ENOENT, "device 0x%016" PRIx64 " is not held by tenant %" PRIu32,
			       device_id, tenant_id);
	cur = fg_tables_device(o->t, tenant_id, device_id);
	tn = fg_tables_tenant(o->t, tenant_id);
	fg_sink_refs_add(o, cur, -1);
	fg_tables_device_unpublish(o->t, tenant_id, device_id);
	rte_hash_del_key(o->owner, &device_id);
	o->tenant_devices[tn->slot]--;
	return 0;
}

int
fg_device_move(struct fg_ownership *o, const struct fg_move_spec *s,
	       struct fg_err *err)
{
	const struct fg_tenant *from, *to;
	const struct fg_device *cur;
	struct fg_device *e;
	uint32_t owner = fg_device_owner(o, s->device_id);
	int ret;

	/* Compare-and-swap: `from` must hold the device now. */
	if (owner != s->from || owner == 0) {
		if (owner == 0)
			return fg_fail(err, ENOENT, "move of device 0x%016" PRIx64 ": no tenant holds it, not tenant %" PRIu32,
				       s->device_id, s->from);
		return fg_fail(err, ESTALE, "move of device 0x%016" PRIx64 ": it is held by tenant %" PRIu32 ", not by tenant %" PRIu32,
			       s->device_id, owner, s->from);
	}
	if (s->to == s->from)
		return fg_fail(err, EINVAL, "move of device 0x%016" PRIx64 ": from and to are both tenant %" PRIu32,
			       s->device_id, s->to);
	to = fg_tables_tenant(o->t, s->to);
	if (to == NULL)
		return fg_fail(err, ENOENT, "move of device 0x%016" PRIx64 ": tenant %" PRIu32 " does not exist",
			       s->device_id, s->to);
	from = fg_tables_tenant(o->t, s->from);
	cur = fg_tables_device(o->t, s->from, s->device_id);
	if (s->epoch <= cur->epoch)
		return fg_fail(err, ERANGE, "move of device 0x%016" PRIx64 ": epoch %" PRIu32 " is not larger than the current %" PRIu32 " (a move must raise the epoch)",
			       s->device_id, s->epoch, cur->epoch);
	if (to->max_devices != 0 && o->tenant_devices[to->slot] >= to->max_devices)
		return fg_fail(err, ENOSPC, "move of device 0x%016" PRIx64 ": tenant %" PRIu32 " already holds its max_devices (%" PRIu32 ") mappings",
			       s->device_id, s->to, to->max_devices);

	e = fg_tables_device_alloc(o->t);
	if (e == NULL)
		return fg_fail(err, ENOSPC, "move of device 0x%016" PRIx64 ": no free device entry",
			       s->device_id);
	ret = fg_resolve_sinks(o, s->to, s->device_id, s->sinks, s->n_sinks, e, err);
	if (ret < 0) {
		fg_tables_device_discard(o->t, e);
		return ret;
	}
	e->device_id = s->device_id;
	e->tenant_id = s->to;
	e->epoch = s->epoch;
	e->has_key = s->has_key ? 1 : cur->has_key;
	memcpy(e->key, s->has_key ? s->key : cur->key, sizeof(e->key));

	/* SPEC 2: one owner at any moment. The old mapping goes first, so no
	 * reader ever finds the device under both tenants; in between, its
	 * frames are dropped as not_owned. cur is retired by the unpublish and
	 * may be released by the publish's own sync: keep a copy. */
	const struct fg_device old = *cur;

	fg_sink_refs_add(o, &old, -1);
	fg_tables_device_unpublish(o->t, s->from, s->device_id);
	ret = fg_tables_device_publish(o->t, e);
	if (ret < 0) {
		/* Cannot happen with the table's headroom; put the old
		 * mapping back rather than lose it. */
		*e = old;
		fg_tables_device_publish(o->t, e);
		fg_sink_refs_add(o, e, +1);
		return fg_fail(err, -ret, "move of device 0x%016" PRIx64 ": cannot publish: %s",
			       s->device_id, strerror(-ret));
	}
	fg_sink_refs_add(o, e, +1);
	rte_hash_add_key_data(o->owner, &s->device_id, (void *)(uintptr_t)s->to);
	o->tenant_devices[from->slot]--;
	o->tenant_devices[to->slot]++;
	return 0;
}
