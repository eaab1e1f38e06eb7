/*
 * The packet parser: SPEC 3 checks 1-4, from the Ethernet header to the frame
 * header, on one contiguous run of bytes.
 *
 * Reads: the packet bytes. Sets: a struct fg_parsed with the frame's fields
 * in host order and the offsets the rewrite needs. Returns FG_PASS or the
 * first failing check's reason. Every read is bounded by the bytes present;
 * lengths the headers claim are checked against the packet's full length.
 *
 * It is inline because the verdict engine calls it once per packet.
 */
#ifndef FG_PARSE_H
#define FG_PARSE_H

#include <stdint.h>
#include <string.h>

#include <rte_byteorder.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include <framegate/reasons.h>
#include <framegate/wire.h>

struct fg_parsed {
	uint64_t device_id;      /* host order, from here on */
	uint32_t tenant_id;
	uint32_t epoch;
	const uint8_t *hdr;      /* frame header in the packet (auth covers it) */
	uint16_t l3_off;         /* IP header */
	uint16_t frame_off;      /* frame header = UDP payload */
	uint16_t frame_len;      /* UDP payload length: header + payload */
	uint8_t ip_version;      /* 4 or 6 */
	uint8_t flags;
};

/* IPv6 next-header values that are extension headers (RFC 8200 4, RFC 5533,
 * RFC 7401, RFC 6275): SPEC 1 drops them as bad_l3 rather than walking them. */
static inline int
fg_ipv6_is_ext_hdr(uint8_t nh)
{
	switch (nh) {
	case 0: case 43: case 44: case 50: case 51: case 60:
	case 135: case 139: case 140: case 253: case 254:
		return 1;
	default:
		return 0;
	}
}

/*
 * p/avail: the bytes that can be read; pkt_len: the packet's full length on
 * the wire (equal to avail for a single-segment packet). frame_port is in
 * network order.
 */
static inline enum fg_reason
fg_parse(const uint8_t *p, uint32_t avail, uint32_t pkt_len,
	 uint16_t frame_port_be, struct fg_parsed *out)
{
	uint32_t off = sizeof(struct rte_ether_hdr);
	uint32_t ip_payload;   /* bytes after the IP header, as claimed */
	uint32_t l4_off;
	uint16_t ether_type;
	uint8_t proto;

	if (avail > pkt_len)
		avail = pkt_len;

	/* SPEC 3.1 not_ip: Ethernet, at most one 802.1Q tag, then IPv4/IPv6. */
	if (unlikely(avail < off))
		return FG_DROP_not_ip;
	ether_type = ((const struct rte_ether_hdr *)p)->ether_type;
	if (ether_type == RTE_BE16(RTE_ETHER_TYPE_VLAN)) {
		if (unlikely(avail < off + sizeof(struct rte_vlan_hdr)))
			return FG_DROP_not_ip;
		ether_type = ((const struct rte_vlan_hdr *)(p + off))->eth_proto;
		off += sizeof(struct rte_vlan_hdr);
	}
	out->l3_off = (uint16_t)off;

	/* SPEC 3.2 bad_l3, ip_fragment, not_udp. */
	if (ether_type == RTE_BE16(RTE_ETHER_TYPE_IPV4)) {
		const struct rte_ipv4_hdr *ip = (const void *)(p + off);
		uint32_t ihl, tot;

		if (unlikely(avail < off + sizeof(*ip)))
			return FG_DROP_bad_l3;
		if (unlikely((ip->version_ihl >> 4) != 4))
			return FG_DROP_bad_l3;
		ihl = (uint32_t)(ip->version_ihl & 0x0f) * 4;
		tot = rte_be_to_cpu_16(ip->total_length);
		if (unlikely(ihl < sizeof(*ip) || avail < off + ihl))
			return FG_DROP_bad_l3;
		/* Trailing Ethernet padding is allowed: the IP length may be
		 * shorter than the frame, never longer. */
		if (unlikely(tot < ihl || tot > pkt_len - off))
			return FG_DROP_bad_l3;
		if (unlikely(rte_raw_cksum(ip, ihl) != 0xffff))
			return FG_DROP_bad_l3;
		if (unlikely(ip->fragment_offset &
			     RTE_BE16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)))
			return FG_DROP_ip_fragment;
		proto = ip->next_proto_id;
		l4_off = off + ihl;
		ip_payload = tot - ihl;
		out->ip_version = 4;
	} else if (ether_type == RTE_BE16(RTE_ETHER_TYPE_IPV6)) {
		const struct rte_ipv6_hdr *ip6 = (const void *)(p + off);
		uint32_t plen;

		if (unlikely(avail < off + sizeof(*ip6)))
			return FG_DROP_bad_l3;
		if (unlikely((rte_be_to_cpu_32(ip6->vtc_flow) >> 28) != 6))
			return FG_DROP_bad_l3;
		plen = rte_be_to_cpu_16(ip6->payload_len);
		if (unlikely(plen > pkt_len - off - sizeof(*ip6)))
			return FG_DROP_bad_l3;
		proto = ip6->proto;
		if (unlikely(fg_ipv6_is_ext_hdr(proto)))
			return FG_DROP_bad_l3;
		l4_off = off + sizeof(*ip6);
		ip_payload = plen;
		out->ip_version = 6;
	} else {
		return FG_DROP_not_ip;
	}
	if (unlikely(proto != IPPROTO_UDP))
		return FG_DROP_not_udp;

	/* SPEC 3.3 not_frame, then bad_l4. A UDP header that does not fit in
	 * the IP payload cannot name a port: its length is inconsistent. */
	const struct rte_udp_hdr *udp = (const void *)(p + l4_off);
	uint32_t udp_len;

	if (unlikely(ip_payload < sizeof(*udp) || avail < l4_off + sizeof(*udp)))
		return FG_DROP_bad_l4;
	if (udp->dst_port != frame_port_be)
		return FG_DROP_not_frame;
	udp_len = rte_be_to_cpu_16(udp->dgram_len);
	if (unlikely(udp_len < sizeof(*udp) || udp_len > ip_payload))
		return FG_DROP_bad_l4;

	/* SPEC 3.4 bad_header. */
	uint32_t frame_off = l4_off + sizeof(*udp);
	uint32_t frame_len = udp_len - sizeof(*udp);
	const struct fg_frame_hdr *fh = (const void *)(p + frame_off);
	uint32_t hdr_len;

	if (unlikely(frame_len < FG_HDR_LEN || avail < frame_off + FG_HDR_LEN))
		return FG_DROP_bad_header;
	if (unlikely(fh->version != FG_WIRE_VERSION ||
		     (fh->flags & ~FG_FLAGS_KNOWN) != 0))
		return FG_DROP_bad_header;
	hdr_len = rte_be_to_cpu_16(fh->hdr_len);
	if (unlikely(hdr_len != ((fh->flags & FG_FLAG_AUTH) ? FG_HDR_LEN_AUTH
							    : FG_HDR_LEN)))
		return FG_DROP_bad_header;
	if (unlikely(frame_len < hdr_len || avail < frame_off + hdr_len))
		return FG_DROP_bad_header;
	if (unlikely(fh->tenant_id == 0 || fh->device_id == 0))
		return FG_DROP_bad_header;
	if (unlikely(fh->frag_count == 0 ||
		     rte_be_to_cpu_16(fh->frag_index) >=
			     rte_be_to_cpu_16(fh->frag_count)))
		return FG_DROP_bad_header;

	out->tenant_id = rte_be_to_cpu_32(fh->tenant_id);
	out->device_id = rte_be_to_cpu_64(fh->device_id);
	out->epoch = rte_be_to_cpu_32(fh->epoch);
	out->flags = fh->flags;
	out->hdr = (const uint8_t *)fh;
	out->frame_off = (uint16_t)frame_off;
	out->frame_len = (uint16_t)frame_len;
	return FG_PASS;
}

#endif /* FG_PARSE_H */
