/*
 * framegate wire format, version 1 (SPEC 1): the frame header that follows
 * the UDP header of every camera packet.
 *
 * This is the one definition of the format. The dataplane, the control plane
 * and the XDP program (ebpf/) all include it, so it uses only the kernel's
 * fixed-width types from <linux/types.h>, which exist both in user space and
 * under clang -target bpf. Multi-byte fields are big-endian on the wire.
 */
#ifndef FRAMEGATE_WIRE_H
#define FRAMEGATE_WIRE_H

#include <linux/types.h>

#define FG_WIRE_VERSION 1

/* Default UDP destination port of frames (configurable per router). */
#define FG_DEFAULT_FRAME_PORT 47474

/* flags (SPEC 1): every other bit must be zero. */
#define FG_FLAG_AUTH 0x01         /* an 8-byte SipHash-2-4 tag follows */
#define FG_FLAG_KEYFRAME 0x02
#define FG_FLAG_END_OF_FRAME 0x04
#define FG_FLAGS_KNOWN (FG_FLAG_AUTH | FG_FLAG_KEYFRAME | FG_FLAG_END_OF_FRAME)

/* hdr_len takes exactly one of these two values. */
#define FG_HDR_LEN 32             /* without AUTH */
#define FG_HDR_LEN_AUTH 40        /* with AUTH: FG_HDR_LEN + tag */
#define FG_AUTH_TAG_LEN 8
#define FG_AUTH_KEY_LEN 16

/* Bytes covered by the tag: header bytes 0..31 exactly as on the wire. */
#define FG_AUTH_COVERED_LEN FG_HDR_LEN

/* A device mapping names between 1 and this many sinks (SPEC 2). */
#define FG_MAX_SINKS 8

struct fg_frame_hdr {
	__u8 version;
	__u8 flags;
	__be16 hdr_len;
	__be32 tenant_id;
	__be64 device_id;
	__be32 stream_id;
	__be32 epoch;
	__be32 frame_seq;
	__be16 frag_index;
	__be16 frag_count;
	/* __u8 auth_tag[8] follows when FG_FLAG_AUTH is set */
} __attribute__((packed));

_Static_assert(sizeof(struct fg_frame_hdr) == FG_HDR_LEN,
	       "frame header must be 32 bytes");

/* Largest span of headers the parser may need to read before the frame
 * payload: Ethernet + one VLAN tag (18) + IPv4 with full options (60) + UDP (8)
 * + frame header with tag (40). IPv6 (40) is shorter than IPv4's maximum. */
#define FG_MAX_HEADERS_LEN (18 + 60 + 8 + FG_HDR_LEN_AUTH)

#endif /* FRAMEGATE_WIRE_H */
