/*
 * Frame authentication (SPEC 1): SipHash-2-4 with 64-bit output, keyed with
 * the device's 128-bit key, over header bytes 0..31 as on the wire.
 *
 * libsodium's crypto_shorthash_siphash24 is the reference algorithm with the
 * reference byte conventions (k0, k1 read little-endian from the key; the tag
 * is the reference implementation's 8 output bytes), so it is used as is.
 */
#ifndef FG_AUTH_H
#define FG_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <sodium/crypto_shorthash_siphash24.h>

#include <framegate/wire.h>

static inline void
fg_siphash24(uint8_t out[8], const void *msg, size_t len,
	     const uint8_t key[FG_AUTH_KEY_LEN])
{
	crypto_shorthash_siphash24(out, msg, len, key);
}

/* Tag of a frame header (its first FG_AUTH_COVERED_LEN bytes). */
static inline void
fg_auth_tag(uint8_t tag[FG_AUTH_TAG_LEN], const uint8_t *hdr,
	    const uint8_t key[FG_AUTH_KEY_LEN])
{
	fg_siphash24(tag, hdr, FG_AUTH_COVERED_LEN, key);
}

/* Does the tag after the header's first 32 bytes verify? The comparison
 * takes the same time whichever byte differs. */
static inline int
fg_auth_verify(const uint8_t *hdr, const uint8_t key[FG_AUTH_KEY_LEN])
{
	uint8_t tag[FG_AUTH_TAG_LEN];
	uint64_t a, b;

	fg_auth_tag(tag, hdr, key);
	memcpy(&a, tag, sizeof(a));
	memcpy(&b, hdr + FG_AUTH_COVERED_LEN, sizeof(b));
	return a == b;
}

#endif /* FG_AUTH_H */
