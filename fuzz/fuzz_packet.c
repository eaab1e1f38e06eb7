/*
 * libFuzzer: packet bytes through the verdict engine, compared with the
 * reference model (tests/refmodel.c) on every input; a disagreement aborts.
 * The tables hold the conformance vectors' mappings. The packet is an
 * exact-size heap copy attached to the mbuf as an external buffer, so ASan
 * catches any read past its end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_hash.h>
#include <rte_mbuf.h>

#include "counters.h"
#include "eal_quick.h"
#include "mapfile.h"
#include "refmodel.h"
#include "verdict.h"

static struct fg_engine eng;
static struct fg_counters *ctr;
static struct rte_mempool *pool;
static struct ref_state ref = { .frame_port = FG_DEFAULT_FRAME_PORT };
static struct fg_tables *tables;
static struct fg_ownership *own;

/* Free what Initialize made, so LeakSanitizer reports only real leaks. */
static void
fuzz_fini(void)
{
	fg_counters_free(ctr);
	fg_ownership_free(own);
	fg_tables_free(tables);
}

/* The model's state, copied from the tables' entries. */
static void
mirror(const struct fg_tables *t)
{
	const void *key;
	void *data;
	uint32_t next = 0;

	while (rte_hash_iterate(t->tenants, &key, &data, &next) >= 0) {
		const struct fg_tenant *e = data;

		ref.tenants[ref.n_tenants++] = (struct ref_tenant){ e->tenant_id, e->suspended };
	}
	next = 0;
	while (rte_hash_iterate(t->sinks, &key, &data, &next) >= 0) {
		const struct fg_sink *e = data;

		ref.sinks[ref.n_sinks++] = (struct ref_sink){ e->sink_id, e->tenant_id };
	}
	next = 0;
	while (rte_hash_iterate(t->devices, &key, &data, &next) >= 0) {
		const struct fg_device *e = data;
		struct ref_mapping *m = &ref.mappings[ref.n_mappings++];

		*m = (struct ref_mapping){ .tenant = e->tenant_id, .device = e->device_id,
					   .epoch = e->epoch, .has_key = e->has_key,
					   .n_sinks = e->n_sinks };
		memcpy(m->key, e->key, 16);
		for (unsigned int i = 0; i < e->n_sinks; i++)
			m->sinks[i] = e->sinks[i]->sink_id;
	}
}

static void
extbuf_free(void *addr, void *opaque)
{
	(void)addr;
	(void)opaque;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct fg_tables_config cfg = { .name = "fuzz", .max_tenants = 64, .max_sinks = 64,
					.max_devices = 64, .max_readers = 1,
					.socket_id = SOCKET_ID_ANY };
	struct fg_err err = { 0 };
	struct fg_tables *t;
	struct fg_ownership *o;

	(void)argc;
	(void)argv;
	if (fg_eal_quick_start("fgfuzz", 256) != 0)
		abort();
	atexit(fuzz_fini);        /* runs before EAL's own clean-up */
	t = fg_tables_create(&cfg);
	o = t ? fg_ownership_create(t) : NULL;
	if (o == NULL || fg_mapfile_load(o, FG_VECTORS "/mappings.jsonl", NULL, &err) != 0) {
		fprintf(stderr, "fuzz set-up: %s\n", err.msg);
		abort();
	}
	tables = t;
	own = o;
	mirror(t);
	fg_engine_init(&eng, t, FG_DEFAULT_FRAME_PORT);
	ctr = fg_counters_create(64, SOCKET_ID_ANY);
	pool = rte_pktmbuf_pool_create("fuzz_mbufs", 63, 0, 0, 0, SOCKET_ID_ANY);
	if (ctr == NULL || pool == NULL)
		abort();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct rte_mbuf_ext_shared_info shinfo = { .free_cb = extbuf_free };
	struct rte_mbuf *m;
	struct fg_verdict v;
	uint8_t *copy;
	int mi, r;

	if (size > 9000)
		return 0;
	copy = malloc(size ? size : 1);
	memcpy(copy, data, size);
	m = rte_pktmbuf_alloc(pool);
	rte_mbuf_ext_refcnt_set(&shinfo, 2);
	rte_pktmbuf_attach_extbuf(m, copy, RTE_BAD_IOVA, (uint16_t)size, &shinfo);
	m->data_off = 0;
	m->data_len = (uint16_t)size;
	m->pkt_len = (uint32_t)size;
	fg_verdict_burst(&eng, ctr, &m, 1, &v);
	r = ref_verdict(&ref, copy, size, &mi);
	if (r != v.reason) {
		fprintf(stderr, "oracle disagreement: engine %s, model %s\n",
			fg_reason_name(v.reason), fg_reason_name(r));
		abort();
	}
	if (r == 0 && (v.dev->tenant_id != ref.mappings[mi].tenant ||
		       v.dev->device_id != ref.mappings[mi].device)) {
		fprintf(stderr, "oracle disagreement: different mappings\n");
		abort();
	}
	rte_pktmbuf_free(m);
	free(copy);
	return 0;
}
