/*
 * Building frame packets (SPEC 1) for tools, benchmarks and tests: Ethernet,
 * an optional 802.1Q tag, IPv4 or IPv6, UDP, the frame header (with its
 * SipHash tag when a key is given) and a payload pattern. The one place
 * outside the parser that knows the packet layout.
 */
#ifndef FG_FRAMEBUILD_H
#define FG_FRAMEBUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <framegate/wire.h>

struct fg_frame_spec {
	uint8_t ip_version;          /* 4 or 6 */
	bool vlan;                   /* one 802.1Q tag (VLAN id 100) */
	uint16_t frame_port;         /* UDP destination; 0: the default */
	uint32_t tenant_id;
	uint64_t device_id;
	uint32_t stream_id;
	uint32_t epoch;
	uint32_t frame_seq;
	uint8_t flags;               /* KEYFRAME, END_OF_FRAME; AUTH set when key */
	const uint8_t *key;          /* non-NULL: AUTH with this 16-byte key */
	uint16_t payload_len;        /* bytes after the frame header */
	uint8_t src_ip[16], dst_ip[16];   /* first 4 bytes for IPv4 */
};

/* Offset of the frame header in a packet built from spec. */
size_t fg_frame_offset(const struct fg_frame_spec *spec);

/* Write the packet into buf (cap bytes); returns its length, or 0 when it
 * does not fit. */
size_t fg_frame_build(const struct fg_frame_spec *spec, uint8_t *buf, size_t cap);

/* Rewrite tenant, device and epoch of a built packet in place (and its tag,
 * when key is non-NULL). */
void fg_frame_set_ids(uint8_t *pkt, size_t frame_off, uint32_t tenant_id,
		      uint64_t device_id, uint32_t epoch, const uint8_t *key);

#endif /* FG_FRAMEBUILD_H */
