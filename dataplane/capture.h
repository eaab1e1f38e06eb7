/*
 * Capture of dropped packets (`fgctl capture`): the bridge between the
 * workers, which copy the drops of one reason while a capture is armed, and
 * the control thread, which arms it and collects the copies.
 *
 * While no capture is armed, a worker pays one load of `armed` and one
 * predictable branch per burst (fg_capture_armed()), nothing per packet.
 * While one is armed, fg_capture_burst() looks at the burst's verdicts: for
 * each drop of the asked reason (and tenant), it takes a slot from the
 * budget (an atomic decrement; at most `count` succeed), copies the packet's
 * first FG_CTL_CAPTURE_SNAPLEN bytes into the capture's own mempool, stamps
 * it with the TSC and its length on the wire, and puts it on a
 * multi-producer ring. No sampling: the first `count` matching drops after
 * arming are kept.
 *
 * The control thread never takes a packet from a worker's hands: it disarms,
 * waits a grace period of the tables' RCU (every worker reports quiescence
 * after each poll, so none is still between taking a slot and enqueueing its
 * copy), and only then drains the ring.
 */
#ifndef FG_CAPTURE_H
#define FG_CAPTURE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <rte_branch_prediction.h>
#include <rte_common.h>

#include <framegate/error.h>
#include <framegate/reasons.h>

struct rte_mbuf;
struct rte_mempool;
struct rte_ring;
struct fg_tables;
struct fg_verdict;

/* What a copy carries besides its bytes (in the mbuf's private area). */
struct fg_capture_meta {
	uint64_t tsc;              /* rte_rdtsc() at the burst it came in */
	uint32_t wire_len;         /* the packet's length before the snap */
	uint32_t pad;
};

struct fg_capture {
	/* Read by the workers once per burst; written by the control thread. */
	int armed;
	uint8_t reason;            /* enum fg_reason */
	uint32_t tenant;           /* 0: any tenant */
	uint16_t frame_port_be;    /* to find a drop's tenant again */
	/* Written by the workers while armed, on its own cache line. */
	int64_t budget __rte_cache_aligned;
	/* The control thread's own. */
	struct rte_ring *ring __rte_cache_aligned;
	struct rte_mempool *pool;
	uint32_t count;            /* asked for */
	struct timespec deadline;  /* CLOCK_MONOTONIC */
	struct timespec started;   /* CLOCK_REALTIME, with: */
	uint64_t started_tsc;
};

/* The ring and the pool (named "fg_capture"); NULL with err set. */
struct fg_capture *fg_capture_create(uint16_t frame_port, int socket_id,
				     struct fg_err *err);
void fg_capture_free(struct fg_capture *cap);

/* The worker's test, once per burst. */
static inline bool
fg_capture_armed(const struct fg_capture *cap)
{
	return unlikely(__atomic_load_n(&cap->armed, __ATOMIC_ACQUIRE) != 0);
}

/* Worker, only while armed: copy the burst's drops that match. */
void fg_capture_burst(struct fg_capture *cap, struct rte_mbuf *const *pkts,
		      const struct fg_verdict *v, uint16_t n);

/* Control thread. Arm for `count` (1..FG_CTL_CAPTURE_MAX_COUNT) drops of
 * `reason`, of `tenant` only when not 0, for at most timeout_s seconds.
 * -EBUSY when a capture is armed already. */
int fg_capture_arm(struct fg_capture *cap, enum fg_reason reason,
		   uint32_t tenant, uint32_t count, unsigned int timeout_s);
/* Copies queued so far. */
unsigned int fg_capture_saved(const struct fg_capture *cap);
/* Complete (count saved) or past the deadline. */
bool fg_capture_due(const struct fg_capture *cap, bool *timed_out);

/* One saved packet, as fg_capture_finish() hands it over. */
struct fg_capture_pkt {
	uint64_t ts_ns;            /* CLOCK_REALTIME nanoseconds */
	uint32_t wire_len;
	uint32_t len;              /* bytes in data (<= snap length) */
	const uint8_t *data;
};

/* Disarm, wait for the workers (a grace period of t), then hand every
 * saved packet to fn (in the order they were queued) and free it. With fn
 * NULL, the packets are dropped (the client went away). Returns how many
 * there were. */
unsigned int fg_capture_finish(struct fg_capture *cap, struct fg_tables *t,
			       int (*fn)(void *ctx, const struct fg_capture_pkt *p),
			       void *ctx);

#endif /* FG_CAPTURE_H */
