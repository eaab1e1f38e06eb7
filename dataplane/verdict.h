/*
 * The verdict engine: SPEC 3 checks 1-10, in order, on a burst of packets
 * (and store_stale, between 9 and 10, when the router is closed for a stale
 * store).
 *
 * Reads: the packets, the ownership tables (lock-free, inside the caller's
 * RCU read side), the TSC when a limited tenant's packet is seen. Sets: one
 * struct fg_verdict per packet, the caller's counters (every packet counted
 * exactly once) and its rate buckets. The device pointer of a
 * forwarded packet stays valid until the caller reports quiescence.
 */
#ifndef FG_VERDICT_H
#define FG_VERDICT_H

#include <stdint.h>

#include <framegate/reasons.h>

#include "counters.h"
#include "tables.h"

struct rte_mbuf;

/* Largest burst fg_verdict_burst takes (one bulk hash lookup). */
#define FG_BURST_MAX 64

struct fg_engine {
	const struct fg_tables *tables;
	uint16_t frame_port_be;    /* UDP port of frames, network order */
	/* Non-zero: the router follows a store whose freshness it cannot
	 * confirm, under stale_policy "closed" (docs/store.md): a frame that
	 * passes checks 1-9 is dropped as store_stale. Written by the control
	 * thread; read once per burst. NULL: never. */
	const uint32_t *closed;
	unsigned int rate_shares;  /* workers a tenant's rate is divided among */
};

struct fg_verdict {
	const struct fg_device *dev;   /* the mapping when forwarded, else NULL */
	uint16_t l3_off;               /* offsets into the packet */
	uint16_t frame_off;            /* frame header */
	uint16_t frame_len;            /* frame header + payload */
	uint8_t ip_version;
	uint8_t reason;                /* FG_PASS or the drop reason */
};

/* One share of each rate limit: set rate_shares to the number of workers
 * when there are more. */
void fg_engine_init(struct fg_engine *e, const struct fg_tables *t,
		    uint16_t frame_port);

/* Give a verdict to each of n (<= FG_BURST_MAX) packets; returns how many
 * pass. */
uint16_t fg_verdict_burst(const struct fg_engine *e, struct fg_counters *c,
			  struct rte_mbuf *const *pkts, uint16_t n,
			  struct fg_verdict *v);

#endif /* FG_VERDICT_H */
