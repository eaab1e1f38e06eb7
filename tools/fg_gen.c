/*
 * fg-gen: a deterministic traffic generator for one PoP. Writes a pcap
 * capture of camera frame packets (SPEC 1) and the mapping file (SPEC 4) that
 * provisions their tenants, sinks and devices, with chosen shares of
 * adversarial packets: a spoofed tenant, a stale epoch, a missing or wrong
 * tag, a malformed frame header. Optionally writes one line per packet saying
 * what it is, so that tests know what the verdict engine must say.
 *
 * The same options and --seed always give the same files. Packets are built
 * with the shared frame builder (framebuild.h); the per-packet loop writes
 * into one buffer and allocates nothing.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <pcap/pcap.h>
#include <rte_byteorder.h>
#include <rte_common.h>

#include <framegate/wire.h>

#include "framebuild.h"

/* Exit codes. */
enum { GEN_EXIT_OK = 0, GEN_EXIT_FAIL = 1, GEN_EXIT_USAGE = 2 };

/* Each tenant's IPv4 sinks share one address of 198.18.0.0/15 (port 6000+k
 * tells them apart), so there are at most this many tenants. */
#define GEN_MAX_TENANTS 131071u
/* Sink ids are tenant * 1000 + k. */
#define GEN_MAX_SINKS_PER_TENANT 1000u
#define GEN_MAX_DEVICES 1000000000u
/* Largest payload that fits in one packet of the largest header stack:
 * Ethernet, VLAN, IPv6, UDP, frame header with tag. */
#define GEN_MAX_PAYLOAD (UINT16_MAX - 14 - 4 - 40 - 8 - FG_HDR_LEN_AUTH)
#define GEN_SNAPLEN 65535
#define GEN_IO_BUF (1u << 20)
/* 2024-01-01T00:00:00Z: packet i is stamped i microseconds later. */
#define GEN_TS_BASE 1704067200u

enum gen_kind {
	GEN_VALID,
	GEN_SPOOFED,
	GEN_STALE,
	GEN_UNAUTH,
	GEN_MALFORMED,
	GEN_KIND_END,
};

static const char *const gen_kind_name[GEN_KIND_END] = {
	[GEN_VALID] = "valid",
	[GEN_SPOOFED] = "spoofed",
	[GEN_STALE] = "stale",
	[GEN_UNAUTH] = "unauth",
	[GEN_MALFORMED] = "malformed",
};

struct gen_opts {
	uint32_t tenants;
	uint32_t devices;
	uint64_t packets;
	uint32_t sinks_per_tenant;
	uint32_t fanout;
	double zipf;
	double keyed_share;
	double share[GEN_KIND_END];   /* adversarial kinds; [GEN_VALID] unused */
	double ipv6_share;
	double vlan_share;
	uint16_t payload;
	uint16_t frame_port;
	uint64_t seed;
	const char *out_pcap;
	const char *out_mappings;
	const char *out_expect;
};

/* The devices, index j in 0..devices-1; j's owner is tenant j % tenants + 1. */
struct gen_devices {
	uint64_t *id;
	uint32_t *epoch;
	uint8_t (*key)[FG_AUTH_KEY_LEN];
	uint8_t *keyed;
	uint32_t *next_keyed;         /* first keyed device at or after j, wrapping */
	uint32_t n_keyed;
	double *cdf;                  /* popularity by index; NULL: uniform */
};

static const char *prog = "fg-gen";

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: %s --out-pcap FILE --out-mappings FILE [options]\n"
		"\n"
		"Writes a pcap capture of camera frame packets and the mapping file (JSON\n"
		"Lines, SPEC 4) of the tenants, sinks and devices they belong to. The same\n"
		"options and seed always give the same files. Ends with a one-line summary\n"
		"on stderr.\n"
		"\n"
		"Population:\n"
		"  --tenants N           tenants 1..N (default 10, at most %u)\n"
		"  --devices M           devices, dealt round-robin over the tenants\n"
		"                        (default 1000); each tenant's max_devices is\n"
		"                        twice its share, leaving room for moves\n"
		"  --sinks-per-tenant K  sinks of each tenant T: id T*1000+k for k < K;\n"
		"                        even k IPv4 198.18.0.0+T, odd k IPv6\n"
		"                        2001:db8::T:k; port 6000+k; egress 0\n"
		"                        (default 2, at most %u)\n"
		"  --fanout F            sinks per device mapping, 1..8, capped at K\n"
		"                        (default 1)\n"
		"  --keyed-share R       share of devices with a 16-byte key; their\n"
		"                        packets carry a SipHash tag (default 0.5)\n"
		"  --seed X              seed of every random choice: device ids, keys,\n"
		"                        epochs (2 and up), packets (default 1)\n"
		"\n"
		"Packets:\n"
		"  --packets P           packets to write (default 10000)\n"
		"  --zipf S              Zipf exponent of device popularity, device 0\n"
		"                        the most popular; 0 is uniform (default 1.0)\n"
		"  --ipv6-share R        share of packets over IPv6 (default 0.5)\n"
		"  --vlan-share R        share with one 802.1Q tag (default 0.2)\n"
		"  --payload BYTES       frame payload after the header (default 100,\n"
		"                        at most %d)\n"
		"  --frame-port N        UDP destination port (default %d)\n"
		"\n"
		"Adversarial shares of the packets (each 0..1, together at most 1,\n"
		"default 0); the rest are valid and should be forwarded:\n"
		"  --spoofed R           claims a tenant other than the owner (not_owned)\n"
		"  --stale R             epoch one below the mapping's (stale_epoch)\n"
		"  --unauth R            keyed device, alternately without AUTH\n"
		"                        (auth_missing) and with a wrong tag (auth_failed)\n"
		"  --malformed R         alternately version 2, an unknown flag bit, and\n"
		"                        frag_index >= frag_count (bad_header)\n"
		"\n"
		"Output:\n"
		"  --out-pcap FILE       the capture (Ethernet link type)\n"
		"  --out-mappings FILE   the mapping file: tenants, then sinks, then devices\n"
		"  --out-expect FILE     optional: one JSON line per packet,\n"
		"                        {\"i\":N,\"tenant\":T,\"device\":\"0x...\",\"kind\":K},\n"
		"                        i from 0, tenant as claimed, K one of valid,\n"
		"                        spoofed, stale, unauth, malformed\n"
		"  --help                this text\n"
		"\n"
		"Exit status: 0 done; 1 a file could not be written or memory ran out;\n"
		"2 usage error.\n",
		prog, GEN_MAX_TENANTS, GEN_MAX_SINKS_PER_TENANT, GEN_MAX_PAYLOAD,
		FG_DEFAULT_FRAME_PORT);
}

/* ---- option values ------------------------------------------------------ */

static int
opt_uint(const char *name, const char *s, uint64_t min, uint64_t max,
	 uint64_t *out)
{
	unsigned long long v;
	char *end;
	int base = 10;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		base = 16;
	errno = 0;
	v = strtoull(s, &end, base);
	if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 ||
	    v < min || v > max) {
		fprintf(stderr, "%s: --%s: \"%s\" is not a whole number from %" PRIu64 " to %" PRIu64 ".\n",
			prog, name, s, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

static int
opt_real(const char *name, const char *s, double min, double max, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end != '\0' || errno != 0 || !isfinite(v) ||
	    v < min || v > max) {
		fprintf(stderr, "%s: --%s: \"%s\" is not a number from %g to %g.\n",
			prog, name, s, min, max);
		return -1;
	}
	*out = v;
	return 0;
}

/* ---- deterministic randomness ------------------------------------------- */

#define GEN_GAMMA 0x9e3779b97f4a7c15ull

/* splitmix64's output function: a bijection of 64-bit values. */
static inline uint64_t
gen_mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t
gen_next(uint64_t *state)
{
	*state += GEN_GAMMA;
	return gen_mix64(*state);
}

/* Uniform in [0, 1). */
static inline double
gen_unit(uint64_t *state)
{
	return (double)(gen_next(state) >> 11) * 0x1.0p-53;
}

/* Uniform in [0, n). */
static inline uint32_t
gen_below(uint64_t *state, uint32_t n)
{
	return (uint32_t)(((unsigned __int128)gen_next(state) * n) >> 64);
}

/* Independent streams of the one seed. */
static uint64_t
gen_stream(uint64_t seed, uint64_t which)
{
	return gen_mix64(seed ^ gen_mix64(which * GEN_GAMMA + 0x5eed));
}

/* ---- the population ----------------------------------------------------- */

static uint32_t
tenant_of(const struct gen_opts *o, uint32_t j)
{
	return j % o->tenants + 1;
}

static uint32_t
tenant_devices(const struct gen_opts *o, uint32_t t)
{
	return o->devices / o->tenants + (t - 1 < o->devices % o->tenants ? 1 : 0);
}

static void
sink_addr(uint32_t t, uint32_t k, int *family, uint8_t addr[16])
{
	memset(addr, 0, 16);
	if (k % 2 == 0) {
		uint32_t a = (198u << 24 | 18u << 16) + t;   /* in 198.18.0.0/15 */

		*family = AF_INET;
		a = rte_cpu_to_be_32(a);
		memcpy(addr, &a, 4);
	} else {
		/* 2001:db8::T_hi:T_lo:k */
		*family = AF_INET6;
		addr[0] = 0x20;
		addr[1] = 0x01;
		addr[2] = 0x0d;
		addr[3] = 0xb8;
		addr[10] = (uint8_t)(t >> 24);
		addr[11] = (uint8_t)(t >> 16);
		addr[12] = (uint8_t)(t >> 8);
		addr[13] = (uint8_t)t;
		addr[14] = (uint8_t)(k >> 8);
		addr[15] = (uint8_t)k;
	}
}

static void *
gen_alloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (p == NULL)
		fprintf(stderr, "%s: out of memory for %zu entries of %zu bytes\n",
			prog, n, size);
	return p;
}

static int
devices_make(const struct gen_opts *o, struct gen_devices *d)
{
	uint64_t id_base = gen_stream(o->seed, 1);
	uint64_t attr = gen_stream(o->seed, 2);
	uint64_t keys = gen_stream(o->seed, 3);
	uint32_t m = o->devices;

	d->id = gen_alloc(m, sizeof(*d->id));
	d->epoch = gen_alloc(m, sizeof(*d->epoch));
	d->key = gen_alloc(m, sizeof(*d->key));
	d->keyed = gen_alloc(m, sizeof(*d->keyed));
	d->next_keyed = gen_alloc(m, sizeof(*d->next_keyed));
	if (!d->id || !d->epoch || !d->key || !d->keyed || !d->next_keyed)
		return -1;

	/* Distinct and non-zero: gen_mix64 is a bijection and the inputs
	 * differ; the one input that maps to 0, if used, is replaced by the
	 * next one past the end. */
	for (uint32_t j = 0; j < m; j++) {
		d->id[j] = gen_mix64(id_base + (uint64_t)(j + 1) * GEN_GAMMA);
		if (d->id[j] == 0)
			d->id[j] = gen_mix64(id_base + ((uint64_t)m + 1) * GEN_GAMMA);
		d->epoch[j] = 2 + (uint32_t)(gen_next(&attr) % 8);
		d->keyed[j] = gen_unit(&attr) < o->keyed_share;
		if (d->keyed[j]) {
			uint64_t k0 = gen_next(&keys), k1 = gen_next(&keys);

			memcpy(d->key[j], &k0, 8);
			memcpy(d->key[j] + 8, &k1, 8);
			d->n_keyed++;
		}
	}

	uint32_t next = 0;

	for (uint32_t j = 0; j < m; j++) {
		if (d->keyed[j]) {
			next = j;
			break;
		}
	}
	for (uint32_t j = m; j-- > 0;) {
		if (d->keyed[j])
			next = j;
		d->next_keyed[j] = next;
	}

	if (o->zipf > 0) {
		double sum = 0;

		d->cdf = gen_alloc(m, sizeof(*d->cdf));
		if (d->cdf == NULL)
			return -1;
		for (uint32_t j = 0; j < m; j++) {
			sum += pow((double)j + 1, -o->zipf);
			d->cdf[j] = sum;
		}
		for (uint32_t j = 0; j < m; j++)
			d->cdf[j] /= sum;
		d->cdf[m - 1] = 1.0;
	}
	return 0;
}

static void
devices_free(struct gen_devices *d)
{
	free(d->id);
	free(d->epoch);
	free(d->key);
	free(d->keyed);
	free(d->next_keyed);
	free(d->cdf);
}

/* A device by popularity: the first index whose CDF exceeds a uniform draw. */
static inline uint32_t
pick_device(const struct gen_opts *o, const struct gen_devices *d,
	    uint64_t *rng)
{
	uint32_t lo = 0, hi = o->devices - 1;
	double u;

	if (d->cdf == NULL)
		return gen_below(rng, o->devices);
	u = gen_unit(rng);
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (d->cdf[mid] > u)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* ---- output files -------------------------------------------------------- */

/* Open for writing with a large buffer, set before any output. */
static FILE *
out_open(const char *path, char **buf)
{
	FILE *f = fopen(path, "w");

	if (f == NULL) {
		fprintf(stderr, "%s: cannot create %s: %s\n", prog, path, strerror(errno));
		return NULL;
	}
	*buf = malloc(GEN_IO_BUF);
	if (*buf != NULL)
		setvbuf(f, *buf, _IOFBF, GEN_IO_BUF);
	return f;
}

/* Close, and say so if anything failed to reach the file. */
static int
out_close(FILE *f, const char *path, char *buf)
{
	int bad = ferror(f);
	int e = errno;

	if (fclose(f) != 0) {
		bad = 1;
		e = errno;
	}
	free(buf);
	if (bad) {
		fprintf(stderr, "%s: cannot write %s: %s\n", prog, path, strerror(e));
		return -1;
	}
	return 0;
}

static int
write_mappings(const struct gen_opts *o, const struct gen_devices *d)
{
	uint32_t fanout = RTE_MIN(o->fanout, o->sinks_per_tenant);
	char *buf = NULL;
	FILE *f = out_open(o->out_mappings, &buf);

	if (f == NULL)
		return -1;
	for (uint32_t t = 1; t <= o->tenants; t++)
		fprintf(f, "{\"op\":\"tenant\",\"tenant\":%" PRIu32 ",\"name\":\"tenant-%" PRIu32 "\",\"max_devices\":%" PRIu32 "}\n",
			t, t, RTE_MAX(2 * tenant_devices(o, t), 2u));
	for (uint32_t t = 1; t <= o->tenants; t++) {
		for (uint32_t k = 0; k < o->sinks_per_tenant; k++) {
			char text[INET6_ADDRSTRLEN];
			uint8_t addr[16];
			int family;

			sink_addr(t, k, &family, addr);
			inet_ntop(family, addr, text, sizeof(text));
			fprintf(f, "{\"op\":\"sink\",\"sink\":%" PRIu32 ",\"tenant\":%" PRIu32 ",\"addr\":\"%s\",\"port\":%" PRIu32 ",\"egress\":0}\n",
				t * 1000 + k, t, text, 6000 + k);
		}
	}
	for (uint32_t j = 0; j < o->devices; j++) {
		uint32_t t = tenant_of(o, j);
		uint32_t first = (j / o->tenants) % o->sinks_per_tenant;

		fprintf(f, "{\"op\":\"device\",\"tenant\":%" PRIu32 ",\"device\":\"0x%016" PRIx64 "\",\"epoch\":%" PRIu32 ",\"sinks\":[",
			t, d->id[j], d->epoch[j]);
		for (uint32_t s = 0; s < fanout; s++)
			fprintf(f, "%s%" PRIu32, s ? "," : "",
				t * 1000 + (first + s) % o->sinks_per_tenant);
		fputc(']', f);
		if (d->keyed[j]) {
			fputs(",\"key\":\"", f);
			for (int b = 0; b < FG_AUTH_KEY_LEN; b++)
				fprintf(f, "%02x", d->key[j][b]);
			fputc('"', f);
		}
		fputs("}\n", f);
	}
	return out_close(f, o->out_mappings, buf);
}

/* ---- packets ------------------------------------------------------------- */

struct gen_counts {
	uint64_t kind[GEN_KIND_END];
	uint64_t ipv6, vlan;
};

static enum gen_kind
pick_kind(const struct gen_opts *o, uint64_t *rng)
{
	double u = gen_unit(rng), acc = 0;

	for (int k = GEN_SPOOFED; k < GEN_KIND_END; k++) {
		acc += o->share[k];
		if (u < acc)
			return (enum gen_kind)k;
	}
	return GEN_VALID;
}

static void
progress(uint64_t done, uint64_t total)
{
	fprintf(stderr, "\r%s: %" PRIu64 "/%" PRIu64 " packets (%d%%)", prog, done,
		total, total ? (int)(done * 100 / total) : 100);
}

static int
write_packets(const struct gen_opts *o, const struct gen_devices *d,
	      struct gen_counts *c)
{
	static uint8_t pkt[GEN_SNAPLEN];
	uint64_t rng = gen_stream(o->seed, 4);
	uint64_t alt[GEN_KIND_END] = { 0 };
	bool tty = isatty(STDERR_FILENO);
	char *pcap_buf = NULL, *exp_buf = NULL;
	FILE *pf, *ef = NULL;
	pcap_dumper_t *dump;
	pcap_t *dead;
	int ret = 0;

	pf = out_open(o->out_pcap, &pcap_buf);
	if (pf == NULL)
		return -1;
	dead = pcap_open_dead(DLT_EN10MB, GEN_SNAPLEN);
	dump = dead ? pcap_dump_fopen(dead, pf) : NULL;
	if (dump == NULL) {
		fprintf(stderr, "%s: cannot start a capture in %s: %s\n", prog,
			o->out_pcap, dead ? pcap_geterr(dead) : "pcap_open_dead failed");
		fclose(pf);
		free(pcap_buf);
		if (dead)
			pcap_close(dead);
		return -1;
	}
	if (o->out_expect != NULL) {
		ef = out_open(o->out_expect, &exp_buf);
		if (ef == NULL) {
			pcap_dump_close(dump);
			pcap_close(dead);
			free(pcap_buf);
			return -1;
		}
	}

	for (uint64_t i = 0; i < o->packets; i++) {
		enum gen_kind kind = pick_kind(o, &rng);
		uint32_t j = pick_device(o, d, &rng);
		struct fg_frame_spec spec = { 0 };
		struct pcap_pkthdr h;
		size_t off, len;

		if (kind == GEN_UNAUTH)
			j = d->next_keyed[j];
		spec.ip_version = gen_unit(&rng) < o->ipv6_share ? 6 : 4;
		spec.vlan = gen_unit(&rng) < o->vlan_share;
		spec.frame_port = o->frame_port;
		spec.tenant_id = tenant_of(o, j);
		spec.device_id = d->id[j];
		spec.stream_id = (uint32_t)(i % 3);
		spec.epoch = d->epoch[j];
		spec.frame_seq = (uint32_t)i;
		spec.flags = FG_FLAG_END_OF_FRAME | (i % 30 == 0 ? FG_FLAG_KEYFRAME : 0);
		spec.key = d->keyed[j] ? d->key[j] : NULL;
		spec.payload_len = o->payload;
		if (spec.ip_version == 6) {
			/* 2001:db8:ca::x, x = j + 1 -> 2001:db8:ca::fe */
			uint32_t x = rte_cpu_to_be_32(j + 1);

			memcpy(spec.src_ip, "\x20\x01\x0d\xb8\x00\xca", 6);
			memcpy(spec.src_ip + 12, &x, 4);
			memcpy(spec.dst_ip, "\x20\x01\x0d\xb8\x00\xca", 6);
			spec.dst_ip[15] = 0xfe;
		} else {
			/* 192.0.2.x, x in 1..253 -> 192.0.2.254 */
			memcpy(spec.src_ip, "\xc0\x00\x02", 3);
			spec.src_ip[3] = (uint8_t)(1 + j % 253);
			memcpy(spec.dst_ip, "\xc0\x00\x02\xfe", 4);
		}

		switch (kind) {
		case GEN_SPOOFED:
			/* Any other existing tenant. */
			spec.tenant_id = (spec.tenant_id - 1 + 1 +
					  gen_below(&rng, o->tenants - 1)) % o->tenants + 1;
			break;
		case GEN_STALE:
			spec.epoch--;
			break;
		case GEN_UNAUTH:
			if (alt[kind] % 2 == 0)
				spec.key = NULL;    /* AUTH missing */
			break;
		default:
			break;
		}

		len = fg_frame_build(&spec, pkt, sizeof(pkt));
		off = fg_frame_offset(&spec);
		if (kind == GEN_UNAUTH && alt[kind] % 2 == 1) {
			pkt[off + FG_HDR_LEN] ^= 0x01;  /* wrong tag */
		} else if (kind == GEN_MALFORMED) {
			struct fg_frame_hdr *fh = (void *)(pkt + off);

			switch (alt[kind] % 3) {
			case 0: fh->version = 2; break;
			case 1: fh->flags |= 0x08; break;
			default: fh->frag_index = rte_cpu_to_be_16(1); break;
			}
			/* Tag the bad header, so that only the header is wrong. */
			if (spec.key != NULL)
				fg_frame_set_ids(pkt, off, spec.tenant_id, spec.device_id,
						 spec.epoch, spec.key);
		}
		alt[kind]++;
		c->kind[kind]++;
		c->ipv6 += spec.ip_version == 6;
		c->vlan += spec.vlan;

		h.ts.tv_sec = GEN_TS_BASE + (time_t)(i / 1000000);
		h.ts.tv_usec = (suseconds_t)(i % 1000000);
		h.caplen = h.len = (bpf_u_int32)len;
		pcap_dump((u_char *)dump, &h, pkt);
		if (ef != NULL)
			fprintf(ef, "{\"i\":%" PRIu64 ",\"tenant\":%" PRIu32 ",\"device\":\"0x%016" PRIx64 "\",\"kind\":\"%s\"}\n",
				i, spec.tenant_id, spec.device_id, gen_kind_name[kind]);
		if (tty && (i & 0xffff) == 0xffff)
			progress(i + 1, o->packets);
	}
	if (tty && o->packets > 0xffff) {
		progress(o->packets, o->packets);
		fputc('\n', stderr);
	}

	if (pcap_dump_flush(dump) != 0 || ferror(pcap_dump_file(dump))) {
		fprintf(stderr, "%s: cannot write %s: %s\n", prog, o->out_pcap,
			strerror(errno));
		ret = -1;
	}
	pcap_dump_close(dump);      /* closes pf */
	pcap_close(dead);
	free(pcap_buf);
	if (ef != NULL && out_close(ef, o->out_expect, exp_buf) != 0)
		ret = -1;
	return ret;
}

int
main(int argc, char **argv)
{
	enum {
		OPT_TENANTS = 256, OPT_DEVICES, OPT_PACKETS, OPT_SINKS, OPT_FANOUT,
		OPT_ZIPF, OPT_SEED, OPT_KEYED, OPT_SPOOFED, OPT_STALE, OPT_UNAUTH,
		OPT_MALFORMED, OPT_IPV6, OPT_VLAN, OPT_PAYLOAD, OPT_PORT,
		OPT_PCAP, OPT_MAPPINGS, OPT_EXPECT,
	};
	static const struct option opts[] = {
		{ "tenants", required_argument, NULL, OPT_TENANTS },
		{ "devices", required_argument, NULL, OPT_DEVICES },
		{ "packets", required_argument, NULL, OPT_PACKETS },
		{ "sinks-per-tenant", required_argument, NULL, OPT_SINKS },
		{ "fanout", required_argument, NULL, OPT_FANOUT },
		{ "zipf", required_argument, NULL, OPT_ZIPF },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "keyed-share", required_argument, NULL, OPT_KEYED },
		{ "spoofed", required_argument, NULL, OPT_SPOOFED },
		{ "stale", required_argument, NULL, OPT_STALE },
		{ "unauth", required_argument, NULL, OPT_UNAUTH },
		{ "malformed", required_argument, NULL, OPT_MALFORMED },
		{ "ipv6-share", required_argument, NULL, OPT_IPV6 },
		{ "vlan-share", required_argument, NULL, OPT_VLAN },
		{ "payload", required_argument, NULL, OPT_PAYLOAD },
		{ "frame-port", required_argument, NULL, OPT_PORT },
		{ "out-pcap", required_argument, NULL, OPT_PCAP },
		{ "out-mappings", required_argument, NULL, OPT_MAPPINGS },
		{ "out-expect", required_argument, NULL, OPT_EXPECT },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	struct gen_opts o = {
		.tenants = 10, .devices = 1000, .packets = 10000,
		.sinks_per_tenant = 2, .fanout = 1, .zipf = 1.0, .seed = 1,
		.keyed_share = 0.5, .ipv6_share = 0.5, .vlan_share = 0.2,
		.payload = 100, .frame_port = FG_DEFAULT_FRAME_PORT,
	};
	struct gen_devices d = { 0 };
	struct gen_counts c = { 0 };
	const char *name;
	uint64_t v = 0;
	double adversarial = 0;
	int opt, idx, bad = 0;

	while ((opt = getopt_long(argc, argv, "h", opts, &idx)) != -1) {
		name = opt >= OPT_TENANTS ? opts[idx].name : "";
		switch (opt) {
		case OPT_TENANTS:
			bad |= opt_uint(name, optarg, 1, GEN_MAX_TENANTS, &v);
			o.tenants = (uint32_t)v;
			break;
		case OPT_DEVICES:
			bad |= opt_uint(name, optarg, 1, GEN_MAX_DEVICES, &v);
			o.devices = (uint32_t)v;
			break;
		case OPT_PACKETS:
			bad |= opt_uint(name, optarg, 0, UINT64_MAX, &o.packets);
			break;
		case OPT_SINKS:
			bad |= opt_uint(name, optarg, 1, GEN_MAX_SINKS_PER_TENANT, &v);
			o.sinks_per_tenant = (uint32_t)v;
			break;
		case OPT_FANOUT:
			bad |= opt_uint(name, optarg, 1, FG_MAX_SINKS, &v);
			o.fanout = (uint32_t)v;
			break;
		case OPT_ZIPF:
			bad |= opt_real(name, optarg, 0, 100, &o.zipf);
			break;
		case OPT_SEED:
			bad |= opt_uint(name, optarg, 0, UINT64_MAX, &o.seed);
			break;
		case OPT_KEYED:
			bad |= opt_real(name, optarg, 0, 1, &o.keyed_share);
			break;
		case OPT_SPOOFED:
			bad |= opt_real(name, optarg, 0, 1, &o.share[GEN_SPOOFED]);
			break;
		case OPT_STALE:
			bad |= opt_real(name, optarg, 0, 1, &o.share[GEN_STALE]);
			break;
		case OPT_UNAUTH:
			bad |= opt_real(name, optarg, 0, 1, &o.share[GEN_UNAUTH]);
			break;
		case OPT_MALFORMED:
			bad |= opt_real(name, optarg, 0, 1, &o.share[GEN_MALFORMED]);
			break;
		case OPT_IPV6:
			bad |= opt_real(name, optarg, 0, 1, &o.ipv6_share);
			break;
		case OPT_VLAN:
			bad |= opt_real(name, optarg, 0, 1, &o.vlan_share);
			break;
		case OPT_PAYLOAD:
			bad |= opt_uint(name, optarg, 0, GEN_MAX_PAYLOAD, &v);
			o.payload = (uint16_t)v;
			break;
		case OPT_PORT:
			bad |= opt_uint(name, optarg, 1, UINT16_MAX, &v);
			o.frame_port = (uint16_t)v;
			break;
		case OPT_PCAP: o.out_pcap = optarg; break;
		case OPT_MAPPINGS: o.out_mappings = optarg; break;
		case OPT_EXPECT: o.out_expect = optarg; break;
		case 'h':
			usage(stdout);
			return GEN_EXIT_OK;
		default:
			fprintf(stderr, "Try '%s --help'.\n", prog);
			return GEN_EXIT_USAGE;
		}
		if (bad)
			return GEN_EXIT_USAGE;
	}
	if (optind != argc) {
		fprintf(stderr, "%s: unexpected argument \"%s\" (options only; see --help).\n",
			prog, argv[optind]);
		return GEN_EXIT_USAGE;
	}
	if (o.out_pcap == NULL || o.out_mappings == NULL) {
		fprintf(stderr, "%s: --out-pcap and --out-mappings are both required (see --help).\n",
			prog);
		return GEN_EXIT_USAGE;
	}
	for (int k = GEN_SPOOFED; k < GEN_KIND_END; k++)
		adversarial += o.share[k];
	if (adversarial > 1.0 + 1e-9) {
		fprintf(stderr, "%s: --spoofed, --stale, --unauth and --malformed add up to %g, more than 1.\n",
			prog, adversarial);
		return GEN_EXIT_USAGE;
	}
	if (o.share[GEN_SPOOFED] > 0 && o.tenants < 2) {
		fprintf(stderr, "%s: --spoofed %g needs another tenant to claim, but --tenants is 1.\n",
			prog, o.share[GEN_SPOOFED]);
		return GEN_EXIT_USAGE;
	}

	if (devices_make(&o, &d) != 0) {
		devices_free(&d);
		return GEN_EXIT_FAIL;
	}
	if (o.share[GEN_UNAUTH] > 0 && d.n_keyed == 0) {
		fprintf(stderr, "%s: --unauth %g needs keyed devices, but --keyed-share %g gave none of %" PRIu32 ".\n",
			prog, o.share[GEN_UNAUTH], o.keyed_share, o.devices);
		devices_free(&d);
		return GEN_EXIT_USAGE;
	}
	if (write_mappings(&o, &d) != 0 || write_packets(&o, &d, &c) != 0) {
		devices_free(&d);
		return GEN_EXIT_FAIL;
	}
	fprintf(stderr, "%s: %" PRIu64 " packets (valid %" PRIu64 ", spoofed %" PRIu64 ", stale %" PRIu64 ", unauth %" PRIu64 ", malformed %" PRIu64 "; ipv6 %" PRIu64 ", vlan %" PRIu64 ") to %s; %" PRIu32 " tenants, %" PRIu64 " sinks, %" PRIu32 " devices (%" PRIu32 " keyed) to %s\n",
		prog, o.packets, c.kind[GEN_VALID], c.kind[GEN_SPOOFED],
		c.kind[GEN_STALE], c.kind[GEN_UNAUTH], c.kind[GEN_MALFORMED],
		c.ipv6, c.vlan, o.out_pcap, o.tenants,
		(uint64_t)o.tenants * o.sinks_per_tenant, o.devices, d.n_keyed,
		o.out_mappings);
	devices_free(&d);
	return GEN_EXIT_OK;
}
