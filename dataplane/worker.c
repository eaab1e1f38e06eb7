/*
 * The worker: the packet's whole story, read top to bottom in
 * fg_worker_poll(): receive a burst, give each packet its verdict, send a
 * copy to each sink of a packet that passed, flush transmit, report a
 * quiescent state. Everything here runs per packet: no locks, no system
 * calls, no allocation beyond mempools, no logging, no division.
 *
 * A copy is new headers (Ethernet, IPv4 or IPv6 by the sink's family, UDP)
 * in front of the frame (header and payload as received). The frame is
 * shared, not copied: every sink but the last gets a fresh header segment
 * chained to an indirect clone; the last gets the received mbuf itself, its
 * new headers written into its headroom in place of the old ones, so a
 * frame with one sink costs no allocation at all.
 */
#include <string.h>

#include <rte_branch_prediction.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <rte_udp.h>

#include "router.h"

/* Make m hold exactly the frame (header and payload): strip the received
 * headers and any Ethernet padding. A frame that starts beyond the first
 * segment, or padding beyond the last, is copied out instead. Returns the
 * mbuf to use (m or its copy), or NULL when no copy could be made. */
static inline struct rte_mbuf *
fg_frame_only(const struct fg_router *r, struct rte_mbuf *m,
	      const struct fg_verdict *v)
{
	uint32_t tail = m->pkt_len - v->frame_off - v->frame_len;
	struct rte_mbuf *c;

	if (likely(v->frame_off < m->data_len &&
		   rte_pktmbuf_lastseg(m)->data_len > tail)) {
		rte_pktmbuf_adj(m, v->frame_off);
		if (tail)
			rte_pktmbuf_trim(m, (uint16_t)tail);
		return m;
	}
	c = rte_pktmbuf_copy(m, r->rx_pool, v->frame_off, v->frame_len);
	rte_pktmbuf_free(m);
	return c;
}

/* One's complement sum folded to 16 bits. */
static inline uint16_t
fg_fold(uint32_t s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

/* Headers of an IPv4 copy. */
static inline void
fg_build_ipv4(const struct fg_router *r, const struct fg_egress *eg,
	      const struct fg_sink *k, struct rte_mbuf *h, uint16_t frame_len)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(h, struct rte_ether_hdr *);
	struct rte_ipv4_hdr *ip = (struct rte_ipv4_hdr *)(eth + 1);
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip + 1);

	eth->dst_addr = eg->next_hop;
	eth->src_addr = eg->mac;
	eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV4);
	ip->version_ihl = RTE_IPV4_VHL_DEF;
	ip->type_of_service = 0;
	ip->total_length = rte_cpu_to_be_16((uint16_t)(sizeof(*ip) + sizeof(*udp) + frame_len));
	ip->packet_id = 0;
	ip->fragment_offset = 0;
	ip->time_to_live = r->ttl;
	ip->next_proto_id = IPPROTO_UDP;
	ip->hdr_checksum = 0;
	ip->src_addr = eg->ipv4;
	memcpy(&ip->dst_addr, k->addr, 4);
	udp->src_port = r->frame_port_be;
	udp->dst_port = rte_cpu_to_be_16(k->port);
	udp->dgram_len = rte_cpu_to_be_16((uint16_t)(sizeof(*udp) + frame_len));
	udp->dgram_cksum = 0;              /* SPEC 3: 0 is allowed for IPv4 */
	if (eg->ipv4_cksum_offload) {
		h->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
		h->l2_len = sizeof(*eth);
		h->l3_len = sizeof(*ip);
	} else {
		ip->hdr_checksum = rte_ipv4_cksum(ip);
	}
}

/* Headers of an IPv6 copy; payload_sum is the frame's raw sum. */
static inline void
fg_build_ipv6(const struct fg_router *r, const struct fg_egress *eg,
	      const struct fg_sink *k, struct rte_mbuf *h, uint16_t frame_len,
	      uint16_t payload_sum)
{
	struct rte_ether_hdr *eth = rte_pktmbuf_mtod(h, struct rte_ether_hdr *);
	struct rte_ipv6_hdr *ip6 = (struct rte_ipv6_hdr *)(eth + 1);
	struct rte_udp_hdr *udp = (struct rte_udp_hdr *)(ip6 + 1);
	uint16_t cksum;

	eth->dst_addr = eg->next_hop;
	eth->src_addr = eg->mac;
	eth->ether_type = RTE_BE16(RTE_ETHER_TYPE_IPV6);
	ip6->vtc_flow = RTE_BE32(6u << 28);
	ip6->payload_len = rte_cpu_to_be_16((uint16_t)(sizeof(*udp) + frame_len));
	ip6->proto = IPPROTO_UDP;
	ip6->hop_limits = r->ttl;
	memcpy(ip6->src_addr, eg->ipv6, 16);
	memcpy(ip6->dst_addr, k->addr, 16);
	udp->src_port = r->frame_port_be;
	udp->dst_port = rte_cpu_to_be_16(k->port);
	udp->dgram_len = ip6->payload_len;
	udp->dgram_cksum = 0;
	/* SPEC 3: a correct UDP checksum over the pseudo-header, the UDP
	 * header and the frame, whose sum is shared by all copies. */
	cksum = (uint16_t)~fg_fold((uint32_t)rte_ipv6_phdr_cksum(ip6, 0) +
				   rte_raw_cksum(udp, sizeof(*udp)) + payload_sum);
	udp->dgram_cksum = cksum == 0 ? 0xffff : cksum;
}

/* One copy per sink of a packet that passed (SPEC 3). A copy that cannot be
 * built or queued counts as tx_full. */
static inline void
fg_send_copies(const struct fg_router *r, struct fg_worker *w,
	       struct rte_mbuf *m, const struct fg_verdict *v)
{
	const struct fg_device *d = v->dev;
	uint16_t payload_sum = 0;
	bool have_sum = false, handed = false;
	unsigned int last = d->n_sinks - 1;

	m = fg_frame_only(r, m, v);
	if (unlikely(m == NULL)) {
		fg_ctr_add(&w->ctr->tx_full, d->n_sinks);
		return;
	}
	for (unsigned int s = 0; s <= last; s++) {
		const struct fg_sink *k = d->sinks[s];
		const struct fg_egress *eg = &r->egress[k->egress];
		bool v6 = k->family == AF_INET6;
		struct rte_mbuf *body, *h;
		uint16_t hlen = (uint16_t)(sizeof(struct rte_ether_hdr) + sizeof(struct rte_udp_hdr) +
					   (v6 ? sizeof(struct rte_ipv6_hdr)
					       : sizeof(struct rte_ipv4_hdr)));

		if (unlikely(k->egress >= RTE_MAX_ETHPORTS || !eg->enabled ||
			     (v6 ? !eg->has_ipv6 : !eg->has_ipv4))) {
			fg_ctr_add(&w->ctr->tx_full, 1);
			continue;
		}
		if (s == last && likely(RTE_MBUF_DIRECT(m) && m->nb_segs == 1 &&
					rte_pktmbuf_headroom(m) >= hlen)) {
			/* The last copy, in place: the clones before it see
			 * only the frame, never the headroom. */
			if (v6 && !have_sum) {
				rte_raw_cksum_mbuf(m, 0, m->pkt_len, &payload_sum);
				have_sum = true;
			}
			body = m;
			h = m;
			rte_pktmbuf_prepend(m, hlen);
			m->ol_flags = 0;
		} else {
			body = s == last ? m : rte_pktmbuf_clone(m, r->clone_pool);
			h = body ? rte_pktmbuf_alloc(r->hdr_pool) : NULL;
			if (unlikely(h == NULL)) {
				if (body != NULL && body != m)
					rte_pktmbuf_free(body);
				fg_ctr_add(&w->ctr->tx_full, 1);
				continue;
			}
			rte_pktmbuf_append(h, hlen);
		}
		{
			uint16_t frame_len = (uint16_t)(body->pkt_len - (h == body ? hlen : 0));

			if (v6) {
				if (!have_sum) {
					rte_raw_cksum_mbuf(m, 0, m->pkt_len, &payload_sum);
					have_sum = true;
				}
				fg_build_ipv6(r, eg, k, h, frame_len, payload_sum);
			} else {
				fg_build_ipv4(r, eg, k, h, frame_len);
			}
		}
		if (h != body) {
			h->next = body;
			h->nb_segs = (uint16_t)(1 + body->nb_segs);
			h->pkt_len = hlen + body->pkt_len;
		}
		handed |= body == m;
		fg_ctr_add(&w->ctr->copies_sent,
			   rte_eth_tx_buffer(k->egress, w->txq, w->txb[k->egress], h));
	}
	/* The last sink could not take the frame itself: drop our reference
	 * (clones keep the data alive). */
	if (unlikely(!handed))
		rte_pktmbuf_free(m);
}

/* One poll of every rx queue the worker owns: the packet's story. */
static inline void
fg_worker_poll(const struct fg_router *r, struct fg_worker *w)
{
	struct rte_mbuf *pkts[FG_RX_BURST], *dropped[FG_RX_BURST];
	struct fg_verdict v[FG_RX_BURST];
	uint16_t received = 0;

	for (uint16_t q = 0; q < w->n_rx; q++) {
		uint16_t n = rte_eth_rx_burst(w->rx[q].port, w->rx[q].queue, pkts,
					      FG_RX_BURST);
		uint16_t nd = 0;

		if (n == 0)
			continue;
		received += n;
		/* SPEC 3 checks 1-9; every packet counted once. */
		fg_verdict_burst(&r->engine, w->ctr, pkts, n, v);
		/* fgctl capture: while off, this one branch per burst. */
		if (fg_capture_armed(r->capture))
			fg_capture_burst(r->capture, pkts, v, n);
		for (uint16_t i = 0; i < n; i++) {
			if (v[i].reason == FG_PASS)
				fg_send_copies(r, w, pkts[i], &v[i]);
			else
				dropped[nd++] = pkts[i];
		}
		if (nd)
			rte_pktmbuf_free_bulk(dropped, nd);
	}
	for (uint16_t i = 0; i < w->n_tx; i++) {
		uint16_t p = w->tx_ports[i];

		if (w->txb[p]->length)
			fg_ctr_add(&w->ctr->copies_sent,
				   rte_eth_tx_buffer_flush(p, w->txq, w->txb[p]));
	}
	/* Entries this burst looked up are no longer held. */
	fg_tables_reader_quiescent(r->tables, w->id);
	w->idle_polls = received ? 0 : w->idle_polls + 1;
}

int
fg_worker_main(void *arg)
{
	struct fg_worker *w = arg;
	const struct fg_router *r = w->router;

	while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED))
		fg_worker_poll(r, w);
	return 0;
}

/* Replay: poll on the calling lcore until `expected` packets came in, or
 * until nothing has come for max_idle polls in a row. Returns the packets
 * received. */
uint64_t
fg_worker_drain(struct fg_worker *w, uint64_t expected, uint64_t max_idle)
{
	const struct fg_router *r = w->router;

	w->idle_polls = 0;
	while (fg_ctr_read(&w->ctr->rx_packets) < expected && w->idle_polls < max_idle)
		fg_worker_poll(r, w);
	return fg_ctr_read(&w->ctr->rx_packets);
}
