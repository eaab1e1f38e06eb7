/*
 * Frame packet builder (see framebuild.h).
 */
#include <string.h>

#include <rte_byteorder.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include "../dataplane/auth.h"
#include "framebuild.h"

size_t
fg_frame_offset(const struct fg_frame_spec *spec)
{
	return sizeof(struct rte_ether_hdr) + (spec->vlan ? sizeof(struct rte_vlan_hdr) : 0) +
	       (spec->ip_version == 6 ? sizeof(struct rte_ipv6_hdr)
				      : sizeof(struct rte_ipv4_hdr)) +
	       sizeof(struct rte_udp_hdr);
}

size_t
fg_frame_build(const struct fg_frame_spec *spec, uint8_t *buf, size_t cap)
{
	size_t hdr_len = spec->key ? FG_HDR_LEN_AUTH : FG_HDR_LEN;
	size_t frame_off = fg_frame_offset(spec);
	size_t len = frame_off + hdr_len + spec->payload_len;
	size_t l3 = sizeof(struct rte_ether_hdr) + (spec->vlan ? sizeof(struct rte_vlan_hdr) : 0);
	struct rte_ether_hdr *eth = (void *)buf;
	struct rte_udp_hdr *udp;
	struct fg_frame_hdr *fh;
	uint16_t l4_len = (uint16_t)(sizeof(*udp) + hdr_len + spec->payload_len);
	uint16_t ether_type = spec->ip_version == 6 ? RTE_ETHER_TYPE_IPV6 : RTE_ETHER_TYPE_IPV4;

	if (len > cap || len > UINT16_MAX)
		return 0;
	memset(buf, 0, len);
	memcpy(eth->dst_addr.addr_bytes, "\x02\x00\x00\x00\x00\x01", 6);
	memcpy(eth->src_addr.addr_bytes, "\x02\x00\x00\x00\x00\x02", 6);
	if (spec->vlan) {
		struct rte_vlan_hdr *vh = (void *)(eth + 1);

		eth->ether_type = rte_cpu_to_be_16(RTE_ETHER_TYPE_VLAN);
		vh->vlan_tci = rte_cpu_to_be_16(100);
		vh->eth_proto = rte_cpu_to_be_16(ether_type);
	} else {
		eth->ether_type = rte_cpu_to_be_16(ether_type);
	}
	if (spec->ip_version == 6) {
		struct rte_ipv6_hdr *ip6 = (void *)(buf + l3);

		ip6->vtc_flow = rte_cpu_to_be_32(6u << 28);
		ip6->payload_len = rte_cpu_to_be_16(l4_len);
		ip6->proto = IPPROTO_UDP;
		ip6->hop_limits = 64;
		memcpy(ip6->src_addr, spec->src_ip, 16);
		memcpy(ip6->dst_addr, spec->dst_ip, 16);
	} else {
		struct rte_ipv4_hdr *ip = (void *)(buf + l3);

		ip->version_ihl = 0x45;
		ip->total_length = rte_cpu_to_be_16((uint16_t)(sizeof(*ip) + l4_len));
		ip->time_to_live = 64;
		ip->next_proto_id = IPPROTO_UDP;
		memcpy(&ip->src_addr, spec->src_ip, 4);
		memcpy(&ip->dst_addr, spec->dst_ip, 4);
		ip->hdr_checksum = rte_ipv4_cksum(ip);
	}
	udp = (void *)(buf + frame_off - sizeof(*udp));
	udp->src_port = rte_cpu_to_be_16(40000);
	udp->dst_port = rte_cpu_to_be_16(spec->frame_port ? spec->frame_port
							  : FG_DEFAULT_FRAME_PORT);
	udp->dgram_len = rte_cpu_to_be_16(l4_len);
	fh = (void *)(buf + frame_off);
	fh->version = FG_WIRE_VERSION;
	fh->flags = (uint8_t)((spec->flags & ~FG_FLAG_AUTH) | (spec->key ? FG_FLAG_AUTH : 0));
	fh->hdr_len = rte_cpu_to_be_16((uint16_t)hdr_len);
	fh->stream_id = rte_cpu_to_be_32(spec->stream_id);
	fh->frame_seq = rte_cpu_to_be_32(spec->frame_seq);
	fh->frag_index = 0;
	fh->frag_count = rte_cpu_to_be_16(1);
	for (size_t i = 0; i < spec->payload_len; i++)
		buf[frame_off + hdr_len + i] = (uint8_t)i;
	fg_frame_set_ids(buf, frame_off, spec->tenant_id, spec->device_id,
			 spec->epoch, spec->key);
	return len;
}

void
fg_frame_set_ids(uint8_t *pkt, size_t frame_off, uint32_t tenant_id,
		 uint64_t device_id, uint32_t epoch, const uint8_t *key)
{
	struct fg_frame_hdr *fh = (void *)(pkt + frame_off);

	fh->tenant_id = rte_cpu_to_be_32(tenant_id);
	fh->device_id = rte_cpu_to_be_64(device_id);
	fh->epoch = rte_cpu_to_be_32(epoch);
	if (key != NULL)
		fg_auth_tag(pkt + frame_off + FG_HDR_LEN, pkt + frame_off, key);
}
