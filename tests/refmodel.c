/*
 * The reference model (see refmodel.h). Written from SPEC 1 and 3 alone, in
 * the order the spec lists the checks, one byte read at a time with the
 * bound checked just before; slow and obvious on purpose. Nothing here is
 * shared with dataplane/parse.h or dataplane/verdict.c.
 */
#include <string.h>

#include <sodium/crypto_shorthash_siphash24.h>

#include "refmodel.h"

enum {
	R_FORWARD = 0, R_NOT_IP, R_BAD_L3, R_IP_FRAGMENT, R_NOT_UDP, R_NOT_FRAME,
	R_BAD_L4, R_BAD_HEADER, R_UNKNOWN_TENANT, R_TENANT_SUSPENDED, R_NOT_OWNED,
	R_STALE_EPOCH, R_FUTURE_EPOCH, R_AUTH_MISSING, R_AUTH_FAILED, R_SINK_MISMATCH,
};

static unsigned int
be16(const uint8_t *p)
{
	return (unsigned int)p[0] << 8 | p[1];
}

static uint32_t
be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The Internet checksum of a header, verified: the one's complement sum of
 * all its 16-bit words, checksum included, is 0xffff. */
static bool
ipv4_checksum_ok(const uint8_t *h, size_t len)
{
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += be16(h + i);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return sum == 0xffff;
}

static bool
ipv6_extension(unsigned int nh)
{
	/* Hop-by-hop, routing, fragment, ESP, AH, destination options,
	 * mobility, HIP, shim6, and the two experimental values. */
	return nh == 0 || nh == 43 || nh == 44 || nh == 50 || nh == 51 ||
	       nh == 60 || nh == 135 || nh == 139 || nh == 140 || nh == 253 ||
	       nh == 254;
}

int
ref_verdict(const struct ref_state *s, const uint8_t *p, size_t len, int *mapping)
{
	size_t l3, l4, ip_payload, frame, frame_len, hdr_len;
	unsigned int ethertype, proto;

	*mapping = -1;
	/* 1: Ethernet, at most one 802.1Q tag, then IPv4 or IPv6. */
	if (len < 14)
		return R_NOT_IP;
	ethertype = be16(p + 12);
	l3 = 14;
	if (ethertype == 0x8100) {
		if (len < 18)
			return R_NOT_IP;
		ethertype = be16(p + 16);
		l3 = 18;
	}
	if (ethertype == 0x0800) {
		/* 2: a consistent IPv4 header. */
		if (len < l3 + 20)
			return R_BAD_L3;
		if ((p[l3] >> 4) != 4)
			return R_BAD_L3;
		size_t ihl = (size_t)(p[l3] & 0x0f) * 4;
		size_t total = be16(p + l3 + 2);

		if (ihl < 20 || len < l3 + ihl)
			return R_BAD_L3;
		if (total < ihl || total > len - l3)
			return R_BAD_L3;
		if (!ipv4_checksum_ok(p + l3, ihl))
			return R_BAD_L3;
		unsigned int frag = be16(p + l3 + 6);

		if ((frag & 0x2000) || (frag & 0x1fff))
			return R_IP_FRAGMENT;
		proto = p[l3 + 9];
		l4 = l3 + ihl;
		ip_payload = total - ihl;
	} else if (ethertype == 0x86dd) {
		if (len < l3 + 40)
			return R_BAD_L3;
		if ((p[l3] >> 4) != 6)
			return R_BAD_L3;
		size_t plen = be16(p + l3 + 4);

		if (plen > len - l3 - 40)
			return R_BAD_L3;
		proto = p[l3 + 6];
		if (ipv6_extension(proto))
			return R_BAD_L3;
		l4 = l3 + 40;
		ip_payload = plen;
	} else {
		return R_NOT_IP;
	}
	if (proto != 17)
		return R_NOT_UDP;
	/* 3: the frame port, then the UDP length. */
	if (ip_payload < 8 || len < l4 + 8)
		return R_BAD_L4;
	if (be16(p + l4 + 2) != s->frame_port)
		return R_NOT_FRAME;
	size_t udp_len = be16(p + l4 + 4);

	if (udp_len < 8 || udp_len > ip_payload)
		return R_BAD_L4;
	/* 4: the frame header. */
	frame = l4 + 8;
	frame_len = udp_len - 8;
	if (frame_len < 32 || len < frame + 32)
		return R_BAD_HEADER;
	const uint8_t *h = p + frame;

	if (h[0] != 1 || (h[1] & ~0x07) != 0)
		return R_BAD_HEADER;
	hdr_len = be16(h + 2);
	if (hdr_len != ((h[1] & 1) ? 40u : 32u))
		return R_BAD_HEADER;
	if (frame_len < hdr_len || len < frame + hdr_len)
		return R_BAD_HEADER;
	uint32_t tenant = be32(h + 4);
	uint64_t device = (uint64_t)be32(h + 8) << 32 | be32(h + 12);
	uint32_t epoch = be32(h + 20);
	unsigned int frag_index = be16(h + 28), frag_count = be16(h + 30);

	if (tenant == 0 || device == 0)
		return R_BAD_HEADER;
	if (frag_count == 0 || frag_index >= frag_count)
		return R_BAD_HEADER;
	/* 5: the claimed tenant. */
	const struct ref_tenant *t = NULL;

	for (unsigned int i = 0; i < s->n_tenants; i++)
		if (s->tenants[i].id == tenant)
			t = &s->tenants[i];
	if (t == NULL)
		return R_UNKNOWN_TENANT;
	if (t->suspended)
		return R_TENANT_SUSPENDED;
	/* 6: the device in that tenant's mappings. */
	int m = -1;

	for (unsigned int i = 0; i < s->n_mappings; i++)
		if (s->mappings[i].tenant == tenant && s->mappings[i].device == device)
			m = (int)i;
	if (m < 0)
		return R_NOT_OWNED;
	const struct ref_mapping *mp = &s->mappings[m];

	/* 7: the epoch. */
	if (epoch < mp->epoch)
		return R_STALE_EPOCH;
	if (epoch > mp->epoch)
		return R_FUTURE_EPOCH;
	/* 8: the tag, when the mapping has a key. */
	if (mp->has_key) {
		uint8_t tag[8];

		if (!(h[1] & 1))
			return R_AUTH_MISSING;
		crypto_shorthash_siphash24(tag, h, 32, mp->key);
		if (memcmp(tag, h + 32, 8) != 0)
			return R_AUTH_FAILED;
	}
	/* 9: every sink is the tenant's. */
	for (unsigned int k = 0; k < mp->n_sinks; k++) {
		uint32_t owner = 0;

		for (unsigned int i = 0; i < s->n_sinks; i++)
			if (s->sinks[i].id == mp->sinks[k])
				owner = s->sinks[i].tenant;
		if (owner != tenant)
			return R_SINK_MISMATCH;
	}
	*mapping = m;
	return R_FORWARD;
}
