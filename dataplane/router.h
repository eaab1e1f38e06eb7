/*
 * The router: ports, workers and the per-packet story that ties the verdict
 * engine to transmit. struct fg_router is shared and read-only once the
 * workers run; struct fg_worker is one worker's own state.
 */
#ifndef FG_ROUTER_H
#define FG_ROUTER_H

#include <stdbool.h>
#include <stdint.h>

#include <rte_ethdev.h>
#include <rte_ether.h>

#include "capture.h"
#include "config.h"
#include "counters.h"
#include "tables.h"
#include "verdict.h"

#define FG_RX_BURST 32
#define FG_MAX_RX_PER_WORKER 16

/* What a copy leaving through a port gets as its source (SPEC 3). */
struct fg_egress {
	struct rte_ether_addr mac;        /* the port's own MAC */
	struct rte_ether_addr next_hop;   /* configured next hop */
	uint8_t ipv6[16];
	rte_be32_t ipv4;
	bool enabled, has_ipv4, has_ipv6;
	bool ipv4_cksum_offload;          /* the port computes IPv4 checksums */
};

struct fg_router;

struct fg_worker {
	const struct fg_router *router;
	unsigned int id;                  /* RCU reader id */
	unsigned int lcore;
	uint16_t n_rx;
	struct {
		uint16_t port, queue;
	} rx[FG_MAX_RX_PER_WORKER];
	uint16_t txq;                     /* this worker's queue on every egress port */
	struct rte_eth_dev_tx_buffer *txb[RTE_MAX_ETHPORTS];
	uint16_t n_tx;                    /* egress ports with a buffer: */
	uint16_t tx_ports[RTE_MAX_ETHPORTS];
	struct fg_counters *ctr;
	uint64_t idle_polls;              /* consecutive polls that received nothing */
} __rte_cache_aligned;

struct fg_router {
	struct fg_engine engine;
	struct fg_tables *tables;
	struct fg_egress egress[RTE_MAX_ETHPORTS];
	rte_be16_t frame_port_be;
	uint8_t ttl;
	struct rte_mempool *rx_pool;      /* packets, and copies of split frames */
	struct rte_mempool *hdr_pool;     /* one fresh header segment per copy */
	struct rte_mempool *clone_pool;   /* indirect mbufs sharing a payload */
	struct fg_capture *capture;       /* fgctl capture: armed or not */
	unsigned int n_workers;
	struct fg_worker *workers[RTE_MAX_LCORE];
	int stop;                         /* set by the main thread: atomics */
};

/* Set up the router's ports and workers from the configuration: mempools,
 * queues (one rx queue set per port as configured, one tx queue per worker
 * on every egress port), MAC addresses, and the assignment of (port, queue)
 * pairs to worker lcores (the main lcore works when there is no other).
 * 0, or -errno with err naming the port and the problem. */
int fg_router_init(struct fg_router *r, const struct fg_config *cfg,
		   struct fg_tables *t, unsigned int pool_size, struct fg_err *err);

/* Run the workers until fg_router_stop(): on the worker lcores, or on the
 * calling (main) lcore when there are none. With on_main set, returns only
 * after the stop; otherwise returns at once. */
void fg_router_start(struct fg_router *r, bool *on_main);
void fg_router_stop(struct fg_router *r);
/* Wait for the workers, flush what they queued, stop the ports. */
void fg_router_join(struct fg_router *r);
void fg_router_close(struct fg_router *r);

/* The worker loop: rx, verdict, copies, tx, quiescent; until stop. */
int fg_worker_main(void *arg);

/* Poll until `expected` packets were received or nothing came for max_idle
 * polls in a row; returns the packets received (replay mode). */
uint64_t fg_worker_drain(struct fg_worker *w, uint64_t expected,
			 uint64_t max_idle);

/* Sum every worker's counters. */
void fg_router_totals(const struct fg_router *r, struct fg_counter_totals *t);

#endif /* FG_ROUTER_H */
