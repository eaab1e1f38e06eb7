/*
 * fg_shield, the XDP ownership shield (SPEC 5): SPEC 3 checks 1-8 in the
 * kernel, in front of an AF_XDP port.
 *
 *   - a frame that fails a check is dropped and counted by reason;
 *   - a frame that passes them all is redirected to the AF_XDP socket of its
 *     rx queue (checks 9 and 10, and all of 1-8 again, run in userspace);
 *   - traffic that is not a frame (not IP, not UDP, another UDP port) passes
 *     to the kernel stack, counted under not_ip / not_udp / not_frame, so the
 *     host stays reachable.
 *
 * The parser mirrors dataplane/parse.h rule for rule; ebpf/README.md lists
 * the two places where the shield decides "not a frame, pass" for a packet
 * the userspace parser would count as bad_l3 or ip_fragment.
 *
 * Reads: the packet, fg_config, fg_tenants, fg_owners. Sets: fg_drops.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "shield.h"

/* The ownership maps, the counters and the configuration are pinned by
 * name, so that a second loader of this object (DPDK's net_af_xdp with
 * xdp_prog=) reuses the control plane's maps; fg_shield_open() points the
 * pins at its own folder, or at none. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FG_SHIELD_MAX_TENANTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct fg_shield_tenant);
} fg_tenants SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FG_SHIELD_MAX_OWNERS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, struct fg_shield_owner_key);
	__type(value, struct fg_shield_owner);
} fg_owners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FG_SHIELD_SLOTS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, __u64);
} fg_drops SEC(".maps");

/* The frame port, written by fg_shield_open() (shield.h). An entry left at
 * zero (nobody configured it) means the default port. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, __u32);
	__type(value, struct fg_shield_config);
} fg_config SEC(".maps");

/* Not pinned: its sockets belong to the process that loaded the program. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, FG_SHIELD_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks_map SEC(".maps");

/* What checks 5-8 need of a frame, copied out of the packet by the parser,
 * so that they read no packet bytes (and the verifier needs no packet range
 * past the parser). Ids host order; words as on the wire. */
struct fg_frame_view {
	__u64 device_id;
	__u32 tenant_id;
	__u32 epoch;
	__u8 flags;
	__u64 words[4];     /* header bytes 0..31 as little-endian words */
	__u64 tag;          /* bytes 32..39 likewise, when AUTH is set */
};

/* An 8-byte little-endian word (SipHash's reading of its input and key).
 * One 8-byte load, aligned or not: the verifier allows unaligned packet
 * reads where the CPU does them efficiently (x86-64, arm64; see README). */
typedef __u64 __attribute__((may_alias)) fg_u64_alias;

static __always_inline __u64
fg_le64(const void *p)
{
	__u64 v = *(const fg_u64_alias *)p;

#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	v = __builtin_bswap64(v);
#endif
	return v;
}

/* IPv4 header checksum over ihl bytes (20..60): 1 when it verifies (the one's
 * complement sum is all ones). The caller has checked that the ihl bytes are
 * in the packet; each word's own check against end is for the verifier.
 * Up to 30 16-bit words, unrolled. */
static __always_inline int
fg_ipv4_csum_ok(const void *ip, __u32 ihl, const void *end)
{
	const __u16 *w = ip;
	__u32 sum = 0;

#pragma unroll
	for (__u32 i = 0; i < 30; i++)
		if (i * 2 < ihl && (const void *)(w + i + 1) <= end)
			sum += w[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return sum == 0xffff;
}

/* IPv6 next headers that are extension headers (the list of parse.h). */
static __always_inline int
fg_ipv6_is_ext_hdr(__u8 nh)
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
 * SPEC 3 checks 1-4, from the Ethernet header to the frame header: FG_PASS
 * with f filled, or the reason. Mirrors dataplane/parse.h. An XDP buffer
 * without frags is linear, so the bytes present are the packet's full length.
 */
static __always_inline enum fg_reason
fg_shield_parse(const void *data, const void *end, __u16 frame_port,
		struct fg_frame_view *f)
{
	const struct ethhdr *eth = data;
	const void *l3, *l4;
	__u32 ip_payload;   /* bytes after the IP header, as claimed */
	__u16 proto;
	__u8 l4_proto;

	/* 1 not_ip: Ethernet, at most one 802.1Q tag, then IPv4/IPv6. */
	if ((const void *)(eth + 1) > end)
		return FG_DROP_not_ip;
	proto = eth->h_proto;
	l3 = eth + 1;
	if (proto == bpf_htons(ETH_P_8021Q)) {
		const __be16 *tag = l3;   /* TCI, then the inner EtherType */

		if ((const void *)(tag + 2) > end)
			return FG_DROP_not_ip;
		proto = tag[1];
		l3 = tag + 2;
	}

	/* 2 bad_l3, ip_fragment, not_udp. */
	if (proto == bpf_htons(ETH_P_IP)) {
		const struct iphdr *ip = l3;
		__u32 ihl, tot;

		if ((const void *)(ip + 1) > end || ip->version != 4)
			return FG_DROP_bad_l3;
		ihl = (__u32)ip->ihl * 4;
		if (ihl < sizeof(*ip) || l3 + ihl > end)
			return FG_DROP_bad_l3;
		/* Trailing Ethernet padding is allowed: the IP length may be
		 * shorter than the packet, never longer. */
		tot = bpf_ntohs(ip->tot_len);
		if (tot < ihl || tot > (__u32)(end - l3))
			return FG_DROP_bad_l3;
		if (!fg_ipv4_csum_ok(ip, ihl, end))
			return FG_DROP_bad_l3;
		/* A fragment of another protocol is no frame: the kernel
		 * gets it (counted as not_udp). A UDP fragment may be a piece
		 * of a frame, and frames are never fragmented (SPEC 1). */
		if (ip->frag_off & bpf_htons(0x3fff))  /* MF | offset */
			return ip->protocol == IPPROTO_UDP ? FG_DROP_ip_fragment
							   : FG_DROP_not_udp;
		l4_proto = ip->protocol;
		l4 = l3 + ihl;
		ip_payload = tot - ihl;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		const struct ipv6hdr *ip6 = l3;
		__u32 plen;

		if ((const void *)(ip6 + 1) > end || ip6->version != 6)
			return FG_DROP_bad_l3;
		plen = bpf_ntohs(ip6->payload_len);
		if (plen > (__u32)(end - (const void *)(ip6 + 1)))
			return FG_DROP_bad_l3;
		/* Userspace drops extension headers as bad_l3 (SPEC 1); here
		 * they pass to the kernel (counted as not_udp): MLD queries
		 * carry a hop-by-hop header and the host needs them. Such a
		 * packet never reaches the AF_XDP socket. */
		l4_proto = ip6->nexthdr;
		if (fg_ipv6_is_ext_hdr(l4_proto))
			return FG_DROP_not_udp;
		l4 = ip6 + 1;
		ip_payload = plen;
	} else {
		return FG_DROP_not_ip;
	}
	if (l4_proto != IPPROTO_UDP)
		return FG_DROP_not_udp;

	/* 3 not_frame, then bad_l4. A UDP header that does not fit in the IP
	 * payload cannot name a port: its length is inconsistent. */
	const struct udphdr *udp = l4;
	__u32 udp_len;

	if (ip_payload < sizeof(*udp) || (const void *)(udp + 1) > end)
		return FG_DROP_bad_l4;
	if (udp->dest != bpf_htons(frame_port))
		return FG_DROP_not_frame;
	udp_len = bpf_ntohs(udp->len);
	if (udp_len < sizeof(*udp) || udp_len > ip_payload)
		return FG_DROP_bad_l4;

	/* 4 bad_header. */
	const struct fg_frame_hdr *fh = (const void *)(udp + 1);
	__u32 frame_len = udp_len - sizeof(*udp);
	__u32 hdr_len;

	if (frame_len < FG_HDR_LEN || (const void *)(fh + 1) > end)
		return FG_DROP_bad_header;
	if (fh->version != FG_WIRE_VERSION || (fh->flags & ~FG_FLAGS_KNOWN))
		return FG_DROP_bad_header;
	hdr_len = bpf_ntohs(fh->hdr_len);
	if (hdr_len != ((fh->flags & FG_FLAG_AUTH) ? FG_HDR_LEN_AUTH : FG_HDR_LEN))
		return FG_DROP_bad_header;
	if (frame_len < hdr_len)
		return FG_DROP_bad_header;
	if (fh->tenant_id == 0 || fh->device_id == 0)
		return FG_DROP_bad_header;
	if (fh->frag_count == 0 ||
	    bpf_ntohs(fh->frag_index) >= bpf_ntohs(fh->frag_count))
		return FG_DROP_bad_header;

	f->tenant_id = bpf_ntohl(fh->tenant_id);
	f->device_id = bpf_be64_to_cpu(fh->device_id);
	f->epoch = bpf_ntohl(fh->epoch);
	f->flags = fh->flags;
	f->words[0] = fg_le64((const __u8 *)fh);
	f->words[1] = fg_le64((const __u8 *)fh + 8);
	f->words[2] = fg_le64((const __u8 *)fh + 16);
	f->words[3] = fg_le64((const __u8 *)fh + 24);
	f->tag = 0;
	if (fh->flags & FG_FLAG_AUTH) {
		/* hdr_len is 40 and fits in the UDP payload, hence in the
		 * packet; said again for the verifier. */
		if ((const void *)fh + FG_HDR_LEN_AUTH > end)
			return FG_DROP_bad_header;
		f->tag = fg_le64((const __u8 *)fh + FG_HDR_LEN);
	}
	return FG_PASS;
}

/* SipHash-2-4 (the reference algorithm) of the 32-byte header, as words, with
 * k0, k1 the key's two little-endian halves. A fixed 32-byte input: four
 * message blocks and the length block, no tail; fully unrolled. */
#define FG_ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define FG_SIPROUND                                                           \
	do {                                                                  \
		v0 += v1; v1 = FG_ROTL(v1, 13); v1 ^= v0; v0 = FG_ROTL(v0, 32); \
		v2 += v3; v3 = FG_ROTL(v3, 16); v3 ^= v2;                     \
		v0 += v3; v3 = FG_ROTL(v3, 21); v3 ^= v0;                     \
		v2 += v1; v1 = FG_ROTL(v1, 17); v1 ^= v2; v2 = FG_ROTL(v2, 32); \
	} while (0)

static __always_inline __u64
fg_siphash24_32(__u64 k0, __u64 k1, const __u64 m[4])
{
	__u64 v0 = 0x736f6d6570736575ULL ^ k0;
	__u64 v1 = 0x646f72616e646f6dULL ^ k1;
	__u64 v2 = 0x6c7967656e657261ULL ^ k0;
	__u64 v3 = 0x7465646279746573ULL ^ k1;
	const __u64 b = (__u64)FG_AUTH_COVERED_LEN << 56;

#pragma unroll
	for (int i = 0; i < 4; i++) {
		v3 ^= m[i];
		FG_SIPROUND;
		FG_SIPROUND;
		v0 ^= m[i];
	}
	v3 ^= b;
	FG_SIPROUND;
	FG_SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	FG_SIPROUND;
	FG_SIPROUND;
	FG_SIPROUND;
	FG_SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
}

/* SPEC 3 checks 5-8 against the claimed tenant's entries: FG_PASS or the
 * reason. Mirrors fg_check_mapping() in dataplane/verdict.c. */
static __always_inline enum fg_reason
fg_shield_own(const struct fg_frame_view *f)
{
	const struct fg_shield_tenant *tn;
	const struct fg_shield_owner *ow;
	struct fg_shield_owner_key k = {
		.tenant_id = f->tenant_id,
		.pad = 0,
		.device_id = f->device_id,
	};

	/* 5: the claimed tenant exists and is active. */
	tn = bpf_map_lookup_elem(&fg_tenants, &f->tenant_id);
	if (!tn)
		return FG_DROP_unknown_tenant;
	if (tn->state != FG_SHIELD_TENANT_ACTIVE)
		return FG_DROP_tenant_suspended;
	/* 6: the device is in the claimed tenant's table. */
	ow = bpf_map_lookup_elem(&fg_owners, &k);
	if (!ow)
		return FG_DROP_not_owned;
	/* 7: the packet's epoch equals the mapping's. */
	if (f->epoch < ow->epoch)
		return FG_DROP_stale_epoch;
	if (f->epoch > ow->epoch)
		return FG_DROP_future_epoch;
	/* 8: a mapping with a key requires a tag that verifies; a mapping
	 * without one does not look at the tag. */
	if (ow->flags & FG_SHIELD_OWNER_HAS_KEY) {
		if (!(f->flags & FG_FLAG_AUTH))
			return FG_DROP_auth_missing;
		if (fg_siphash24_32(fg_le64(ow->key), fg_le64(ow->key + 8),
				    f->words) != f->tag)
			return FG_DROP_auth_failed;
	}
	return FG_PASS;
}

/* Every packet ends here: counted in its slot, then its action. */
static __always_inline int
fg_shield_verdict(struct xdp_md *ctx, enum fg_reason r)
{
	__u32 slot = r;
	__u64 *c = bpf_map_lookup_elem(&fg_drops, &slot);

	if (c)
		*c += 1;
	switch (r) {
	case FG_PASS:
		/* A queue without a socket falls back to the kernel. */
		return bpf_redirect_map(&xsks_map, ctx->rx_queue_index, XDP_PASS);
	case FG_DROP_not_ip:
	case FG_DROP_not_udp:
	case FG_DROP_not_frame:
		return XDP_PASS;
	default:
		return XDP_DROP;
	}
}

SEC("xdp")
int fg_shield(struct xdp_md *ctx)
{
	const void *data = (const void *)(long)ctx->data;
	const void *end = (const void *)(long)ctx->data_end;
	const __u32 zero = 0;
	const struct fg_shield_config *cfg = bpf_map_lookup_elem(&fg_config, &zero);
	__u16 port = cfg && cfg->frame_port ? cfg->frame_port : FG_DEFAULT_FRAME_PORT;
	struct fg_frame_view f;
	enum fg_reason r;

	r = fg_shield_parse(data, end, port, &f);  /* checks 1-4 */
	if (r == FG_PASS)
		r = fg_shield_own(&f);             /* checks 5-8 */
	return fg_shield_verdict(ctx, r);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
