/*
 * The reference model: SPEC 3's verdict written as plainly as possible, over
 * plain arrays of tenants, sinks and mappings, apart from the engine. It
 * shares no code with dataplane/ (only the wire constants and SipHash, whose
 * reference implementation the vectors check). Tests and fuzzers compare the
 * engine with it on every input.
 */
#ifndef FG_REFMODEL_H
#define FG_REFMODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REF_MAX 64

struct ref_tenant {
	uint32_t id;
	bool suspended;
};

struct ref_sink {
	uint32_t id;
	uint32_t tenant;
};

struct ref_mapping {
	uint32_t tenant;
	uint64_t device;
	uint32_t epoch;
	bool has_key;
	uint8_t key[16];
	unsigned int n_sinks;
	uint32_t sinks[8];
};

struct ref_state {
	unsigned int n_tenants, n_sinks, n_mappings;
	struct ref_tenant tenants[REF_MAX];
	struct ref_sink sinks[REF_MAX];
	struct ref_mapping mappings[REF_MAX];
	uint16_t frame_port;
};

/* The verdict: 0 forward (and *mapping set to the index of the mapping), or
 * the drop reason's number in SPEC 3 order (1 not_ip ... 15 sink_mismatch,
 * the same numbering as drop_reasons.def). */
int ref_verdict(const struct ref_state *s, const uint8_t *pkt, size_t len,
		int *mapping);

#endif
