/*
 * SPEC 2 invariants through the control-side API: each refusal returns its
 * code, names the input and the invariant, and leaves the state exactly as
 * it was; each accepted change does what it says.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <criterion/criterion.h>

#include "support.h"

static struct fg_test_env env;

/* Tenants 7 (max_devices 2) and 9; sinks 70, 71 of tenant 7 and 90 of 9;
 * device 0xa1 held by tenant 7 at epoch 5 with sink 70 and a key. */
static void
setup(void)
{
	struct fg_err err = { 0 };

	fg_test_env_init(&env, 16, 16, 64);
	cr_assert_eq(fg_tenant_add(env.o, &(struct fg_tenant_spec){
		.tenant_id = 7, .name = "acme", .max_devices = 2 }, &err), 0, "%s", err.msg);
	cr_assert_eq(fg_tenant_add(env.o, &(struct fg_tenant_spec){
		.tenant_id = 9, .name = "globex" }, &err), 0, "%s", err.msg);
	for (uint32_t id = 70; id <= 71; id++)
		cr_assert_eq(fg_sink_add(env.o, &(struct fg_sink_spec){
			.sink_id = id, .tenant_id = 7, .family = AF_INET,
			.addr = { 198, 51, 100, (uint8_t)id }, .port = 6000 }, &err), 0, "%s", err.msg);
	cr_assert_eq(fg_sink_add(env.o, &(struct fg_sink_spec){
		.sink_id = 90, .tenant_id = 9, .family = AF_INET6,
		.addr = { 0x20, 0x01, 0x0d, 0xb8, [15] = 90 }, .port = 6000 }, &err), 0, "%s", err.msg);
	cr_assert_eq(fg_device_put(env.o, &(struct fg_device_spec){
		.tenant_id = 7, .device_id = 0xa1, .epoch = 5, .has_key = true,
		.key = { 1, 2, 3 }, .n_sinks = 1, .sinks = { 70 } }, &err), 0, "%s", err.msg);
	fg_tables_sync(env.t);
}

static void
teardown(void)
{
	fg_test_env_fini(&env);
}

/* Everything a refusal must leave unchanged. */
struct snapshot {
	uint32_t tenants, sinks, devices;
	uint32_t owner_a1, epoch_a1, n_sinks_a1, sink0_a1;
	uint32_t count7, count9;
	uint8_t suspended7;
};

static struct snapshot
snap(void)
{
	const struct fg_device *d = fg_tables_device(env.t, 7, 0xa1);
	struct snapshot s;

	memset(&s, 0, sizeof(s));     /* padding too: snapshots are memcmp'd */
	s.tenants = fg_tables_count_tenants(env.t);
	s.sinks = fg_tables_count_sinks(env.t);
	s.devices = fg_tables_count_devices(env.t);
	s.owner_a1 = fg_device_owner(env.o, 0xa1);
	s.count7 = fg_tenant_device_count(env.o, 7);
	s.count9 = fg_tenant_device_count(env.o, 9);
	s.suspended7 = fg_tables_tenant(env.t, 7)->suspended;

	cr_assert_not_null(d, "device 0xa1 lost from tenant 7");
	s.epoch_a1 = d->epoch;
	s.n_sinks_a1 = d->n_sinks;
	s.sink0_a1 = d->sinks[0]->sink_id;
	return s;
}

static void
expect_refused(int ret, int code, const struct fg_err *err, const char *needle,
	       const struct snapshot *before)
{
	struct snapshot after = snap();

	cr_expect_eq(ret, -code, "returned %d (%s), expected -%d; message: %s",
		     ret, strerror(-ret), code, err->msg);
	cr_expect(strstr(err->msg, needle) != NULL,
		  "message \"%s\" does not name \"%s\"", err->msg, needle);
	cr_expect(memcmp(before, &after, sizeof(after)) == 0,
		  "state changed by a refused action (%s)", err->msg);
	cr_expect_eq(fg_tables_pending(env.t), 0, "a refused action retired entries");
}

TestSuite(ownership, .init = setup, .fini = teardown);

Test(ownership, a_second_owner_is_refused)
{
	struct snapshot s = snap();
	struct fg_err err = { 0 };
	int ret = fg_device_put(env.o, &(struct fg_device_spec){
		.tenant_id = 9, .device_id = 0xa1, .epoch = 9, .n_sinks = 1,
		.sinks = { 90 } }, &err);

	expect_refused(ret, EEXIST, &err, "held by tenant 7", &s);
	cr_expect_null(fg_tables_device(env.t, 9, 0xa1));
}

Test(ownership, a_sink_of_another_tenant_is_refused)
{
	struct snapshot s = snap();
	struct fg_err err = { 0 };
	int ret = fg_device_put(env.o, &(struct fg_device_spec){
		.tenant_id = 7, .device_id = 0xa2, .epoch = 1, .n_sinks = 2,
		.sinks = { 70, 90 } }, &err);

	expect_refused(ret, EXDEV, &err, "sink 90 belongs to tenant 9", &s);
	cr_expect_null(fg_tables_device(env.t, 7, 0xa2));
	cr_expect_eq(fg_device_owner(env.o, 0xa2), 0);

	/* Replacing an existing mapping's sinks with a foreign one too. */
	ret = fg_device_put(env.o, &(struct fg_device_spec){
		.tenant_id = 7, .device_id = 0xa1, .epoch = 5, .n_sinks = 1,
		.sinks = { 90 } }, &err);
	expect_refused(ret, EXDEV, &err, "sink 90", &s);
}

Test(ownership, max_devices_is_enforced)
{
	struct fg_err err = { 0 };
	struct snapshot s;

	cr_assert_eq(fg_device_put(env.o, &(struct fg_device_spec){
		.tenant_id = 7, .device_id = 0xa2, .epoch = 1, .n_sinks = 1,
		.sinks = { 71 } }, &err), 0, "%s", err.msg);
	s = snap();
	expect_refused(fg_device_put(env.o, &(struct fg_device_spec){
		.tenant_id = 7, .device_id = 0xa3, .epoch = 1, .n_sinks = 1,
		.sinks = { 71 } }, &err), ENOSPC, &err, "max_devices (2)", &s);
	/* A move into the full tenant is refused the same way. */
	cr_assert_eq(fg_device_put(env.o, &(struct fg_device_spec){
		.tenant_id = 9, .device_id = 0xb1, .epoch = 1, .n_sinks = 1,
		.sinks = { 90 } }, &err), 0, "%s", err.msg);
	s = snap();
	expect_refused(fg_device_move(env.o, &(struct fg_move_spec){
		.device_id = 0xb1, .from = 9, .to = 7, .epoch = 2, .n_sinks = 1,
		.sinks = { 70 } }, &err), ENOSPC, &err, "max_devices", &s);
	cr_expect_eq(fg_device_owner(env.o, 0xb1), 9);
	/* Replacing a held mapping needs no room. */
	cr_expect_eq(fg_device_put(env.o, &(struct fg_device_spec){
		.tenant_id = 7, .device_id = 0xa2, .epoch = 2, .n_sinks = 2,
		.sinks = { 70, 71 } }, &err), 0, "%s", err.msg);
}

Test(ownership, an_epoch_never_decreases)
{
	struct snapshot s = snap();
	struct fg_err err = { 0 };

	expect_refused(fg_device_put(env.o, &(struct fg_device_spec){
		.tenant_id = 7, .device_id = 0xa1, .epoch = 4, .n_sinks = 1,
		.sinks = { 71 } }, &err), ERANGE, &err, "epoch 4 is lower than the current 5", &s);
	/* Same epoch: sinks and key are replaced. */
	cr_assert_eq(fg_device_put(env.o, &(struct fg_device_spec){
		.tenant_id = 7, .device_id = 0xa1, .epoch = 5, .n_sinks = 2,
		.sinks = { 71, 70 } }, &err), 0, "%s", err.msg);
	const struct fg_device *d = fg_tables_device(env.t, 7, 0xa1);
	cr_expect_eq(d->n_sinks, 2);
	cr_expect_eq(d->sinks[0]->sink_id, 71);
	cr_expect_eq(d->has_key, 0, "a device op without key replaces the key");
	cr_expect_eq(fg_tenant_device_count(env.o, 7), 1);
}

Test(ownership, move_is_a_compare_and_swap_with_a_larger_epoch)
{
	struct snapshot s = snap();
	struct fg_err err = { 0 };
	struct fg_move_spec mv = { .device_id = 0xa1, .from = 9, .to = 7,
				   .epoch = 6, .n_sinks = 1, .sinks = { 70 } };

	expect_refused(fg_device_move(env.o, &mv, &err), ESTALE, &err,
		       "held by tenant 7, not by tenant 9", &s);
	mv = (struct fg_move_spec){ .device_id = 0xa1, .from = 7, .to = 9,
				    .epoch = 5, .n_sinks = 1, .sinks = { 90 } };
	expect_refused(fg_device_move(env.o, &mv, &err), ERANGE, &err,
		       "not larger than the current 5", &s);
	mv.epoch = 6;
	mv.sinks[0] = 70;
	expect_refused(fg_device_move(env.o, &mv, &err), EXDEV, &err,
		       "sink 70 belongs to tenant 7, not to tenant 9", &s);
	mv.device_id = 0xee;
	expect_refused(fg_device_move(env.o, &mv, &err), ENOENT, &err,
		       "no tenant holds it", &s);
	mv = (struct fg_move_spec){ .device_id = 0xa1, .from = 7, .to = 12,
				    .epoch = 6, .n_sinks = 1, .sinks = { 90 } };
	expect_refused(fg_device_move(env.o, &mv, &err), ENOENT, &err,
		       "tenant 12 does not exist", &s);
}

Test(ownership, move_transfers_the_device_and_keeps_its_key)
{
	struct fg_err err = { 0 };
	const struct fg_device *d;

	cr_assert_eq(fg_device_move(env.o, &(struct fg_move_spec){
		.device_id = 0xa1, .from = 7, .to = 9, .epoch = 6, .n_sinks = 1,
		.sinks = { 90 } }, &err), 0, "%s", err.msg);
	fg_tables_sync(env.t);
	cr_expect_null(fg_tables_device(env.t, 7, 0xa1));
	d = fg_tables_device(env.t, 9, 0xa1);
	cr_assert_not_null(d);
	cr_expect_eq(d->epoch, 6);
	cr_expect_eq(d->tenant_id, 9);
	cr_expect_eq(d->sinks[0]->sink_id, 90);
	cr_expect_eq(d->has_key, 1);
	cr_expect_eq(d->key[2], 3);
	cr_expect_eq(fg_device_owner(env.o, 0xa1), 9);
	cr_expect_eq(fg_tenant_device_count(env.o, 7), 0);
	cr_expect_eq(fg_tenant_device_count(env.o, 9), 1);
	cr_expect_eq(fg_tables_count_devices(env.t), 1);
	cr_expect_eq(fg_tables_pending(env.t), 0);
	/* Sink 70 is free now; 90 is in use. */
	cr_expect_eq(fg_sink_del(env.o, 70, &err), 0, "%s", err.msg);
	cr_expect_eq(fg_sink_del(env.o, 90, &err), -EBUSY);
	cr_expect(strstr(err.msg, "in use by 1 device") != NULL, "%s", err.msg);
}

Test(ownership, in_use_tenants_and_sinks_cannot_be_deleted)
{
	struct snapshot s = snap();
	struct fg_err err = { 0 };

	expect_refused(fg_tenant_del(env.o, 7, &err), EBUSY, &err,
		       "tenant 7 is in use: it still holds 1 devices and 2 sinks", &s);
	expect_refused(fg_sink_del(env.o, 70, &err), EBUSY, &err,
		       "sink 70 is in use by 1 device mappings", &s);
	/* Emptied, they go. */
	cr_assert_eq(fg_device_del(env.o, 7, 0xa1, &err), 0, "%s", err.msg);
	cr_assert_eq(fg_sink_del(env.o, 70, &err), 0, "%s", err.msg);
	cr_assert_eq(fg_sink_del(env.o, 71, &err), 0, "%s", err.msg);
	cr_assert_eq(fg_tenant_del(env.o, 7, &err), 0, "%s", err.msg);
	fg_tables_sync(env.t);
	cr_expect_null(fg_tables_tenant(env.t, 7));
	cr_expect_eq(fg_tables_count_devices(env.t), 0);
	cr_expect_eq(fg_tables_count_sinks(env.t), 1);
	cr_expect_eq(fg_device_owner(env.o, 0xa1), 0);
}

Test(ownership, malformed_requests_are_refused_by_name)
{
	struct snapshot s = snap();
	struct fg_err err = { 0 };

	expect_refused(fg_tenant_add(env.o, &(struct fg_tenant_spec){ .tenant_id = 7 }, &err),
		       EEXIST, &err, "tenant 7 already exists", &s);
	expect_refused(fg_tenant_add(env.o, &(struct fg_tenant_spec){ .tenant_id = 0 }, &err),
		       EINVAL, &err, "tenant id 0", &s);
	expect_refused(fg_sink_add(env.o, &(struct fg_sink_spec){
		.sink_id = 70, .tenant_id = 9, .family = AF_INET, .port = 1 }, &err),
		EEXIST, &err, "sink 70 already exists (owned by tenant 7)", &s);
	expect_refused(fg_sink_add(env.o, &(struct fg_sink_spec){
		.sink_id = 72, .tenant_id = 8, .family = AF_INET, .port = 1 }, &err),
		ENOENT, &err, "tenant 8 does not exist", &s);
	expect_refused(fg_sink_add(env.o, &(struct fg_sink_spec){
		.sink_id = 72, .tenant_id = 7, .family = AF_INET, .port = 0 }, &err),
		EINVAL, &err, "port 0", &s);
	expect_refused(fg_device_put(env.o, &(struct fg_device_spec){
		.tenant_id = 7, .device_id = 0xa2, .epoch = 1, .n_sinks = 1,
		.sinks = { 75 } }, &err), ENOENT, &err, "sink 75 does not exist", &s);
	expect_refused(fg_device_put(env.o, &(struct fg_device_spec){
		.tenant_id = 7, .device_id = 0xa2, .epoch = 1, .n_sinks = 2,
		.sinks = { 70, 70 } }, &err), EINVAL, &err, "sink 70 is listed twice", &s);
	expect_refused(fg_device_put(env.o, &(struct fg_device_spec){
		.tenant_id = 7, .device_id = 0xa2, .epoch = 1, .n_sinks = 0 }, &err),
		EINVAL, &err, "1 to 8 sinks", &s);
	expect_refused(fg_device_put(env.o, &(struct fg_device_spec){
		.tenant_id = 8, .device_id = 0xa2, .epoch = 1, .n_sinks = 1,
		.sinks = { 70 } }, &err), ENOENT, &err, "tenant 8 does not exist", &s);
	expect_refused(fg_device_put(env.o, &(struct fg_device_spec){
		.tenant_id = 7, .device_id = 0, .epoch = 1, .n_sinks = 1,
		.sinks = { 70 } }, &err), EINVAL, &err, "device id 0", &s);
	expect_refused(fg_device_del(env.o, 9, 0xa1, &err), ENOENT, &err,
		       "not held by tenant 9", &s);
	expect_refused(fg_tenant_set_suspended(env.o, 8, true, &err), ENOENT, &err,
		       "tenant 8 does not exist", &s);
}

Test(ownership, suspend_and_resume_republish_the_tenant)
{
	struct fg_err err = { 0 };

	cr_assert_eq(fg_tenant_set_suspended(env.o, 7, true, &err), 0);
	cr_expect_eq(fg_tables_tenant(env.t, 7)->suspended, 1);
	cr_expect_str_eq(fg_tables_tenant(env.t, 7)->name, "acme");
	cr_assert_eq(fg_tenant_set_suspended(env.o, 7, false, &err), 0);
	cr_expect_eq(fg_tables_tenant(env.t, 7)->suspended, 0);
	fg_tables_sync(env.t);
	cr_expect_eq(fg_tables_pending(env.t), 0);
	cr_expect_not_null(fg_tables_device(env.t, 7, 0xa1));
}
