/*
 * SipHash-2-4 as SPEC 1 defines it: the vectors' siphash.txt (key 00..0f,
 * message 00 01 .. len-1) give exactly the listed output bytes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "auth.h"
#include "support.h"

Test(siphash, reproduces_the_vectors)
{
	FILE *f = fopen(fg_test_vector_path("siphash.txt"), "r");
	uint8_t key[16], msg[256];
	char line[256];
	unsigned int n = 0;

	cr_assert_not_null(f);
	for (int i = 0; i < 16; i++)
		key[i] = (uint8_t)i;
	for (int i = 0; i < 256; i++)
		msg[i] = (uint8_t)i;
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned int len;
		char hex[64], got[17];
		uint8_t out[8];

		if (line[0] == '#')
			continue;
		cr_assert_eq(sscanf(line, "%u %63s", &len, hex), 2, "bad line: %s", line);
		cr_assert_lt(len, sizeof(msg));
		fg_siphash24(out, msg, len, key);
		for (int i = 0; i < 8; i++)
			sprintf(got + 2 * i, "%02x", out[i]);
		cr_expect_str_eq(got, hex, "length %u", len);
		n++;
	}
	fclose(f);
	cr_assert_geq(n, 7, "only %u vectors read", n);
}

/* A frame header tag verifies with its key, and not with a changed byte of
 * the header, of the tag or of the key. */
Test(siphash, frame_tag_verifies_only_unchanged)
{
	uint8_t hdr[FG_HDR_LEN_AUTH], key[16];

	for (int i = 0; i < FG_HDR_LEN; i++)
		hdr[i] = (uint8_t)(i * 7 + 1);
	for (int i = 0; i < 16; i++)
		key[i] = (uint8_t)(0xa0 + i);
	fg_auth_tag(hdr + FG_HDR_LEN, hdr, key);
	cr_assert(fg_auth_verify(hdr, key));
	for (int i = 0; i < FG_HDR_LEN_AUTH; i++) {
		hdr[i] ^= 0x01;
		cr_expect(!fg_auth_verify(hdr, key), "byte %d flipped still verifies", i);
		hdr[i] ^= 0x01;
	}
	for (int i = 0; i < 16; i++) {
		key[i] ^= 0x80;
		cr_expect(!fg_auth_verify(hdr, key), "key byte %d flipped still verifies", i);
		key[i] ^= 0x80;
	}
}
