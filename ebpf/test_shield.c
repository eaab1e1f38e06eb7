/*
 * The XDP shield, loaded for real and run through BPF_PROG_TEST_RUN (needs
 * root): every conformance vector gets the shield's verdict for its expected
 * reason and is counted in exactly that slot; truncated frames are never
 * redirected; map changes (key, epoch, owner, tenant) take effect on the
 * next packet; SipHash in BPF agrees with libsodium's reference; and an
 * object loaded the way DPDK's xdp_prog= loads it shares the pinned maps,
 * the frame port of fg_config included.
 *
 * Forwarded frames are checked against XDP_REDIRECT itself: an AF_XDP
 * socket bound to lo's queue 0 (copy mode, no traffic) sits in xsks_map, so
 * bpf_redirect_map() finds a socket exactly as on a port (test runs do not
 * carry the redirect out).
 */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>
#include <jansson.h>
#include <linux/if_xdp.h>
/* pcap's classic-BPF header clashes with <linux/bpf.h>; only files are read. */
#define PCAP_DONT_INCLUDE_PCAP_BPF_H
#include <pcap/pcap.h>
#include <sodium/crypto_shorthash_siphash24.h>
#include <sodium/randombytes.h>

#include "eal_quick.h"
#include "shield_fill.h"
#include "shield.h"

#define MAX_PKTS 256

struct vec {
	uint8_t *data;
	uint32_t len;
	char name[96];           /* the vector's "case" */
	enum fg_reason reason;   /* FG_PASS: expected forward */
};

static struct vec vecs[MAX_PKTS];
static size_t nvecs;

static const char *
vector_path(const char *name)
{
	static char path[4096];

	snprintf(path, sizeof(path), "%s/%s", FG_VECTOR_DIR, name);
	return path;
}

/* packets.pcap and expected.jsonl, side by side. */
static void
read_vectors(void)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	struct pcap_pkthdr *h;
	const u_char *data;
	pcap_t *p = pcap_open_offline(vector_path("packets.pcap"), errbuf);
	FILE *f;
	char *line = NULL;
	size_t cap = 0, ne = 0;

	cr_assert_not_null(p, "packets.pcap: %s", errbuf);
	while (nvecs < MAX_PKTS && pcap_next_ex(p, &h, &data) == 1) {
		vecs[nvecs].data = malloc(h->caplen);
		memcpy(vecs[nvecs].data, data, h->caplen);
		vecs[nvecs].len = h->caplen;
		nvecs++;
	}
	pcap_close(p);

	f = fopen(vector_path("expected.jsonl"), "r");
	cr_assert_not_null(f, "expected.jsonl: %s", strerror(errno));
	while (ne < nvecs && getline(&line, &cap, f) > 0) {
		json_error_t jerr;
		json_t *o = json_loads(line, 0, &jerr);
		const char *verdict;

		cr_assert_not_null(o, "expected.jsonl: %s", jerr.text);
		cr_assert_eq(json_integer_value(json_object_get(o, "i")), (json_int_t)ne);
		snprintf(vecs[ne].name, sizeof(vecs[ne].name), "%s",
			 json_string_value(json_object_get(o, "case")));
		verdict = json_string_value(json_object_get(o, "verdict"));
		vecs[ne].reason = FG_PASS;
		if (strcmp(verdict, "forward") != 0) {
			const char *r = json_string_value(json_object_get(o, "reason"));

			vecs[ne].reason = fg_reason_by_name(r);
			cr_assert_neq(vecs[ne].reason, FG_PASS, "unknown reason %s", r);
		}
		json_decref(o);
		ne++;
	}
	free(line);
	fclose(f);
	cr_assert_gt(nvecs, 0);
	cr_assert_eq(ne, nvecs, "%zu packets but %zu expectations", nvecs, ne);
}

static const struct vec *
vector_named(const char *name)
{
	for (size_t i = 0; i < nvecs; i++)
		if (strcmp(vecs[i].name, name) == 0)
			return &vecs[i];
	cr_assert_fail("no vector named '%s'", name);
	return NULL;
}

/* The vectors' mapping file into the shield's maps, through the control
 * plane's own mirror (control/shield_fill.c): what a router would write. */
static void
load_mappings(struct fg_shield *s)
{
	struct fg_err err = { 0 };

	cr_assert_eq(fg_eal_quick_start("fgshieldtest", 128), 0, "EAL did not start");
	cr_assert_eq(fg_shield_fill(s, vector_path("mappings.jsonl"), &err), 0, "%s", err.msg);
}

/* An AF_XDP socket bound to lo's rx queue 0 in copy mode: enough for
 * bpf_redirect_map() to find a socket. Its rings are never mapped. */
static int
xsk_on_lo(void)
{
	static void *umem;
	const size_t frames = 64, frame_size = 4096;
	struct xdp_umem_reg reg = { 0 };
	struct sockaddr_xdp sxdp = { 0 };
	int fd, ring = 64;

	fd = socket(AF_XDP, SOCK_RAW, 0);
	cr_assert_geq(fd, 0, "AF_XDP socket: %s", strerror(errno));
	umem = mmap(NULL, frames * frame_size, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(umem, MAP_FAILED);
	reg.addr = (uint64_t)(uintptr_t)umem;
	reg.len = frames * frame_size;
	reg.chunk_size = frame_size;
	cr_assert_eq(setsockopt(fd, SOL_XDP, XDP_UMEM_REG, &reg, sizeof(reg)), 0,
		     "XDP_UMEM_REG: %s", strerror(errno));
	cr_assert_eq(setsockopt(fd, SOL_XDP, XDP_UMEM_FILL_RING, &ring, sizeof(ring)), 0);
	cr_assert_eq(setsockopt(fd, SOL_XDP, XDP_UMEM_COMPLETION_RING, &ring,
				sizeof(ring)), 0);
	cr_assert_eq(setsockopt(fd, SOL_XDP, XDP_RX_RING, &ring, sizeof(ring)), 0);
	sxdp.sxdp_family = AF_XDP;
	sxdp.sxdp_ifindex = if_nametoindex("lo");
	sxdp.sxdp_queue_id = 0;
	sxdp.sxdp_flags = XDP_COPY;
	cr_assert_eq(bind(fd, (struct sockaddr *)&sxdp, sizeof(sxdp)), 0,
		     "bind AF_XDP to lo: %s", strerror(errno));
	return fd;
}

static struct fg_shield *shield;
static int xsk_fd = -1;

static struct fg_shield *
open_shield(const char *pin_dir)
{
	struct fg_shield_opts opts = { .frame_port = 0, .pin_dir = pin_dir };
	struct fg_err err = { 0 };
	struct fg_shield *s = fg_shield_open(&opts, &err);

	cr_assert_not_null(s, "%s", err.msg);
	return s;
}

static void
setup(void)
{
	read_vectors();
	shield = open_shield(NULL);
	load_mappings(shield);
	xsk_fd = xsk_on_lo();
	cr_assert_eq(fg_shield_xsk_put(shield, 0, xsk_fd), 0);
}

static void
teardown(void)
{
	fg_shield_close(shield);
	if (xsk_fd >= 0)
		close(xsk_fd);
	for (size_t i = 0; i < nvecs; i++)
		free(vecs[i].data);
}

/* One packet through a program as received on lo, queue 0: its action, and
 * the counter slot that grew (asserting that exactly one grew, by one). */
static int
run_prog(int prog_fd, const uint8_t *pkt, uint32_t len, int *action)
{
	struct xdp_md ctx = {
		.data_end = len,
		.ingress_ifindex = if_nametoindex("lo"),
		.rx_queue_index = 0,
	};
	LIBBPF_OPTS(bpf_test_run_opts, o,
		.data_in = pkt,
		.data_size_in = len,
		.ctx_in = &ctx,
		.ctx_size_in = sizeof(ctx),
		.repeat = 1);
	int ret = bpf_prog_test_run_opts(prog_fd, &o);

	*action = (int)o.retval;
	return ret;
}

static int
run_counted(const uint8_t *pkt, uint32_t len, enum fg_reason *slot)
{
	uint64_t before[FG_SHIELD_SLOTS], after[FG_SHIELD_SLOTS];
	int action, grew = -1;

	cr_assert_eq(fg_shield_counters(shield, before), 0);
	cr_assert_eq(run_prog(fg_shield_prog_fd(shield), pkt, len, &action), 0,
		     "test run: %s", strerror(errno));
	cr_assert_eq(fg_shield_counters(shield, after), 0);
	for (int r = 0; r < FG_SHIELD_SLOTS; r++) {
		if (after[r] == before[r])
			continue;
		cr_assert_eq(after[r], before[r] + 1, "slot %s grew by %lu",
			     fg_reason_name(r), (unsigned long)(after[r] - before[r]));
		cr_assert_eq(grew, -1, "two slots grew: %s and %s",
			     fg_reason_name(grew), fg_reason_name(r));
		grew = r;
	}
	cr_assert_neq(grew, -1, "no counter grew");
	*slot = (enum fg_reason)grew;
	return action;
}

/* The frame header offset of an untagged IPv4 packet without options, the
 * shape of the vectors used for the key tests (checked, not assumed). */
static uint32_t
frame_off_v4(const uint8_t *p, uint32_t len)
{
	cr_assert_gt(len, 42 + FG_HDR_LEN);
	cr_assert(p[12] == 0x08 && p[13] == 0x00 && p[14] == 0x45,
		  "not plain IPv4");
	return 14 + 20 + 8;
}

/*
 * What the shield does with a packet whose userspace verdict is `reason`:
 * the action and the counter slot. README.md "Verdicts" is the table.
 */
struct shield_expect {
	int action;
	enum fg_reason slot;
};

static struct shield_expect
shield_expectation(const struct vec *v)
{
	const uint8_t *p = v->data;
	uint32_t l3 = 14;

	switch (v->reason) {
	case FG_PASS:
	case FG_DROP_sink_mismatch:     /* checks 9 and 10 are userspace's */
	case FG_DROP_rate_limited:
		return (struct shield_expect){ XDP_REDIRECT, FG_PASS };
	case FG_DROP_not_ip:
	case FG_DROP_not_udp:
	case FG_DROP_not_frame:
		return (struct shield_expect){ XDP_PASS, v->reason };
	default:
		break;
	}
	if (v->len >= 18 && p[12] == 0x81 && p[13] == 0x00)
		l3 = 18;
	/* An IPv6 extension header, or a fragment of another protocol than
	 * UDP, is no frame for the shield: the kernel gets it. */
	if (v->reason == FG_DROP_bad_l3 && v->len >= l3 + 40 &&
	    p[l3 - 2] == 0x86 && p[l3 - 1] == 0xdd && (p[l3] >> 4) == 6 &&
	    p[l3 + 6] != 17)
		return (struct shield_expect){ XDP_PASS, FG_DROP_not_udp };
	if (v->reason == FG_DROP_ip_fragment && v->len >= l3 + 20 &&
	    p[l3 + 9] != 17)
		return (struct shield_expect){ XDP_PASS, FG_DROP_not_udp };
	return (struct shield_expect){ XDP_DROP, v->reason };
}

static const char *
action_name(int a)
{
	static const char *const names[] = { "ABORTED", "DROP", "PASS", "TX",
					     "REDIRECT" };

	return a >= 0 && a <= 4 ? names[a] : "?";
}

TestSuite(shield, .init = setup, .fini = teardown, .timeout = 60);

Test(shield, every_vector_gets_its_verdict_and_slot)
{
	unsigned int n_redirect = 0, n_pass = 0, n_drop = 0;

	for (size_t i = 0; i < nvecs; i++) {
		const struct vec *v = &vecs[i];
		struct shield_expect want = shield_expectation(v);
		enum fg_reason slot;
		int action = run_counted(v->data, v->len, &slot);

		cr_expect_eq(action, want.action, "packet %zu (%s): %s, expected %s",
			     i, v->name, action_name(action), action_name(want.action));
		cr_expect_eq(slot, want.slot, "packet %zu (%s): counted as %s, expected %s",
			     i, v->name, fg_reason_name(slot), fg_reason_name(want.slot));
		n_redirect += action == XDP_REDIRECT;
		n_pass += action == XDP_PASS;
		n_drop += action == XDP_DROP;
	}
	cr_log_info("shield: %zu vectors: %u redirected, %u passed, %u dropped",
		    nvecs, n_redirect, n_pass, n_drop);
	cr_expect_gt(n_redirect, 0);
	cr_expect_gt(n_pass, 0);
	cr_expect_gt(n_drop, 0);
}

/* Every prefix of a forwarded vector is dropped as a bad_* reason or, when
 * too short to be seen as a frame at all, passed as not_ip; never
 * redirected. A test run refuses packets shorter than an Ethernet header
 * (EINVAL): the parser's own check for those is not reachable from here. */
Test(shield, truncated_frames_are_never_redirected)
{
	unsigned int runs = 0;

	for (size_t i = 0; i < nvecs; i++) {
		const struct vec *v = &vecs[i];

		if (v->reason != FG_PASS)
			continue;
		for (uint32_t len = 14; len < v->len; len++) {
			enum fg_reason slot;
			int action = run_counted(v->data, len, &slot);

			runs++;
			cr_assert_neq(action, XDP_REDIRECT, "packet %zu (%s) cut to %u: redirected",
				      i, v->name, len);
			if (action == XDP_PASS) {
				cr_expect_eq(slot, FG_DROP_not_ip, "packet %zu cut to %u: passed as %s",
					     i, len, fg_reason_name(slot));
				continue;
			}
			cr_expect_eq(action, XDP_DROP);
			cr_expect(slot == FG_DROP_bad_l3 || slot == FG_DROP_bad_l4 ||
				  slot == FG_DROP_bad_header,
				  "packet %zu (%s) cut to %u: dropped as %s", i, v->name,
				  len, fg_reason_name(slot));
		}
	}
	cr_log_info("shield: %u truncations", runs);
	cr_expect_gt(runs, 0);
}

/* SPEC 1: trailing Ethernet padding is ignored. */
Test(shield, padded_frames_are_still_redirected)
{
	for (size_t i = 0; i < nvecs; i++) {
		const struct vec *v = &vecs[i];
		uint8_t buf[4096];
		enum fg_reason slot;

		if (v->reason != FG_PASS || v->len + 32 > sizeof(buf))
			continue;
		memcpy(buf, v->data, v->len);
		memset(buf + v->len, 0, 32);
		cr_expect_eq(run_counted(buf, v->len + 32, &slot), XDP_REDIRECT,
			     "packet %zu (%s) with 32 bytes of padding", i, v->name);
	}
}

/* Map changes take effect on the next packet. */
Test(shield, map_changes_take_effect)
{
	const struct vec *v = vector_named("auth fan-out to v4 and v6 sinks");
	const uint8_t *fh = v->data + frame_off_v4(v->data, v->len);
	uint32_t tenant = ((uint32_t)fh[4] << 24) | ((uint32_t)fh[5] << 16) |
			  ((uint32_t)fh[6] << 8) | fh[7];
	uint64_t device = 0;
	uint32_t epoch = ((uint32_t)fh[20] << 24) | ((uint32_t)fh[21] << 16) |
			 ((uint32_t)fh[22] << 8) | fh[23];
	struct fg_shield_owner own;
	uint8_t other_key[FG_AUTH_KEY_LEN];
	enum fg_reason slot;

	for (int k = 0; k < 8; k++)
		device = device << 8 | fh[8 + k];
	cr_assert_eq(fg_shield_owner_get(shield, tenant, device, &own), 0);
	cr_assert(own.flags & FG_SHIELD_OWNER_HAS_KEY, "the vector's device has a key");
	cr_assert_eq(run_counted(v->data, v->len, &slot), XDP_REDIRECT);

	/* Key rotation: the old tag no longer verifies. */
	memcpy(other_key, own.key, sizeof(other_key));
	other_key[0] ^= 0x5a;
	cr_assert_eq(fg_shield_owner_put(shield, tenant, device, epoch, other_key), 0);
	cr_expect_eq(run_counted(v->data, v->len, &slot), XDP_DROP);
	cr_expect_eq(slot, FG_DROP_auth_failed, "counted as %s", fg_reason_name(slot));
	/* Back to the key the tag was made with. */
	cr_assert_eq(fg_shield_owner_put(shield, tenant, device, epoch, own.key), 0);
	cr_expect_eq(run_counted(v->data, v->len, &slot), XDP_REDIRECT);
	/* A mapping without a key does not look at the tag. */
	cr_assert_eq(fg_shield_owner_put(shield, tenant, device, epoch, NULL), 0);
	cr_expect_eq(run_counted(v->data, v->len, &slot), XDP_REDIRECT);
	/* Epochs: the mapping's moves past the packet's, then behind it. */
	cr_assert_eq(fg_shield_owner_put(shield, tenant, device, epoch + 1, own.key), 0);
	cr_expect_eq(run_counted(v->data, v->len, &slot), XDP_DROP);
	cr_expect_eq(slot, FG_DROP_stale_epoch, "counted as %s", fg_reason_name(slot));
	cr_assert_eq(fg_shield_owner_put(shield, tenant, device, epoch - 1, own.key), 0);
	cr_expect_eq(run_counted(v->data, v->len, &slot), XDP_DROP);
	cr_expect_eq(slot, FG_DROP_future_epoch, "counted as %s", fg_reason_name(slot));
	/* Device deleted: not_owned. */
	cr_assert_eq(fg_shield_owner_del(shield, tenant, device), 0);
	cr_expect_eq(run_counted(v->data, v->len, &slot), XDP_DROP);
	cr_expect_eq(slot, FG_DROP_not_owned, "counted as %s", fg_reason_name(slot));
	cr_expect_eq(fg_shield_owner_get(shield, tenant, device, &own), -ENOENT);
	/* Tenant suspended, then deleted. */
	cr_assert_eq(fg_shield_owner_put(shield, tenant, device, epoch, NULL), 0);
	cr_assert_eq(fg_shield_tenant_put(shield, tenant, true), 0);
	cr_expect_eq(run_counted(v->data, v->len, &slot), XDP_DROP);
	cr_expect_eq(slot, FG_DROP_tenant_suspended, "counted as %s", fg_reason_name(slot));
	cr_assert_eq(fg_shield_tenant_del(shield, tenant), 0);
	cr_expect_eq(run_counted(v->data, v->len, &slot), XDP_DROP);
	cr_expect_eq(slot, FG_DROP_unknown_tenant, "counted as %s", fg_reason_name(slot));
	cr_assert_eq(fg_shield_tenant_put(shield, tenant, false), 0);
	cr_expect_eq(run_counted(v->data, v->len, &slot), XDP_REDIRECT);
}

/* The BPF SipHash against libsodium's (the reference algorithm): random
 * keys and random header fields, tag made by libsodium; one flipped tag bit
 * fails. */
Test(shield, siphash_agrees_with_the_reference)
{
	const struct vec *v = vector_named("auth fan-out to v4 and v6 sinks");
	uint32_t off = frame_off_v4(v->data, v->len);
	uint8_t pkt[2048];
	uint8_t *fh = pkt + off;
	uint32_t tenant;
	uint64_t device = 0;
	uint32_t epoch;

	cr_assert_leq(v->len, sizeof(pkt));
	memcpy(pkt, v->data, v->len);
	tenant = ((uint32_t)fh[4] << 24) | ((uint32_t)fh[5] << 16) |
		 ((uint32_t)fh[6] << 8) | fh[7];
	for (int k = 0; k < 8; k++)
		device = device << 8 | fh[8 + k];
	epoch = ((uint32_t)fh[20] << 24) | ((uint32_t)fh[21] << 16) |
		((uint32_t)fh[22] << 8) | fh[23];
	for (int round = 0; round < 200; round++) {
		uint8_t key[FG_AUTH_KEY_LEN];
		enum fg_reason slot;

		randombytes_buf(key, sizeof(key));
		randombytes_buf(fh + 16, 4);      /* stream_id */
		randombytes_buf(fh + 24, 4);      /* frame_seq */
		fh[1] = (uint8_t)(FG_FLAG_AUTH | (round & 6)); /* keyframe, eof */
		cr_assert_eq(crypto_shorthash_siphash24(fh + FG_HDR_LEN, fh,
							FG_AUTH_COVERED_LEN, key), 0);
		cr_assert_eq(fg_shield_owner_put(shield, tenant, device, epoch, key), 0);
		cr_assert_eq(run_counted(pkt, v->len, &slot), XDP_REDIRECT,
			     "round %d: counted as %s", round, fg_reason_name(slot));
		fh[FG_HDR_LEN + (round % 8)] ^= (uint8_t)(1u << (round % 7));
		cr_assert_eq(run_counted(pkt, v->len, &slot), XDP_DROP);
		cr_assert_eq(slot, FG_DROP_auth_failed);
	}
}

/*
 * Pinned maps (SPEC 5: the control plane keeps the maps of the program DPDK
 * loads): the object loaded with plain libbpf, as net_af_xdp does with
 * xdp_prog= (bpf_object__open_file, then the map named xsks_map), reuses the
 * maps pinned by fg_shield_open; so does a second handle on the same folder.
 */
Test(shield, pinned_maps_are_shared_with_another_loader)
{
	char dir[128];
	struct fg_shield *a, *b;
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct fg_shield_owner own;
	const struct vec *fwd = vector_named("ipv4 forward");
	const struct vec *bad = vector_named("device claimed by wrong tenant");
	uint64_t before[FG_SHIELD_SLOTS], after[FG_SHIELD_SLOTS];
	int action;

	snprintf(dir, sizeof(dir), "/sys/fs/bpf/fg-test-shield-%d", (int)getpid());
	a = open_shield(dir);
	load_mappings(a);
	b = open_shield(dir);
	cr_expect_eq(fg_shield_owner_get(b, 7, 0xa1, &own), 0,
		     "the second handle does not see the first's owners");

	LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = dir);
	obj = bpf_object__open_file(FG_SHIELD_OBJ, &oo);
	cr_assert_not_null(obj, "open %s: %s", FG_SHIELD_OBJ, strerror(errno));
	cr_assert_not_null(bpf_object__find_map_by_name(obj, "xsks_map"),
			   "no xsks_map: DPDK's net_af_xdp would refuse the object");
	cr_assert_eq(bpf_object__load(obj), 0, "load like DPDK: %s", strerror(errno));
	prog = bpf_object__find_program_by_name(obj, "fg_shield");
	cr_assert_not_null(prog);

	cr_assert_eq(fg_shield_counters(a, before), 0);
	/* Its xsks_map is empty: a frame falls back to the kernel. */
	cr_assert_eq(run_prog(bpf_program__fd(prog), fwd->data, fwd->len, &action), 0);
	cr_expect_eq(action, XDP_PASS);
	cr_assert_eq(run_prog(bpf_program__fd(prog), bad->data, bad->len, &action), 0);
	cr_expect_eq(action, XDP_DROP);
	cr_assert_eq(fg_shield_counters(a, after), 0);
	cr_expect_eq(after[FG_PASS], before[FG_PASS] + 1);
	cr_expect_eq(after[FG_DROP_not_owned], before[FG_DROP_not_owned] + 1);

	/* A change through the library is seen by the other loader's program. */
	cr_assert_eq(fg_shield_owner_del(b, 7, 0xa1), 0);
	cr_assert_eq(run_prog(bpf_program__fd(prog), fwd->data, fwd->len, &action), 0);
	cr_expect_eq(action, XDP_DROP);

	bpf_object__close(obj);
	fg_shield_close(b);
	cr_expect_eq(fg_shield_unpin(a), 0);
	fg_shield_close(a);
	cr_expect_eq(access(dir, F_OK), -1, "%s is still there", dir);
}

/*
 * The frame port lives in the pinned fg_config map, not in read-only data:
 * a copy loaded from the file the way DPDK does it (which cannot set rodata)
 * reads the port the library configured. A handle opened with `clear` on the
 * same pins starts from empty ownership maps and keeps the counters.
 */
Test(shield, a_copy_loaded_from_the_file_reads_the_configured_port)
{
	char dir[128];
	struct fg_shield_opts opts = { .frame_port = 5000 };
	struct fg_err err = { 0 };
	struct fg_shield *a, *b;
	struct bpf_object *obj;
	struct fg_shield_owner own;
	const struct vec *fwd = vector_named("ipv4 forward");
	uint64_t before[FG_SHIELD_SLOTS], after[FG_SHIELD_SLOTS];
	uint8_t pkt[2048];
	int action, prog_fd;

	snprintf(dir, sizeof(dir), "/sys/fs/bpf/fg-test-port-%d", (int)getpid());
	opts.pin_dir = dir;
	a = fg_shield_open(&opts, &err);
	cr_assert_not_null(a, "%s", err.msg);
	cr_expect_eq(fg_shield_frame_port(a), 5000);
	load_mappings(a);

	LIBBPF_OPTS(bpf_object_open_opts, oo, .pin_root_path = dir);
	obj = bpf_object__open_file(FG_SHIELD_OBJ, &oo);
	cr_assert_not_null(obj);
	cr_assert_eq(bpf_object__load(obj), 0, "load like DPDK: %s", strerror(errno));
	prog_fd = bpf_program__fd(bpf_object__find_program_by_name(obj, "fg_shield"));

	/* The vector, to 47474: no longer the frame port. */
	cr_assert_eq(fg_shield_counters(a, before), 0);
	cr_assert_eq(run_prog(prog_fd, fwd->data, fwd->len, &action), 0);
	cr_expect_eq(action, XDP_PASS);
	cr_assert_eq(fg_shield_counters(a, after), 0);
	cr_expect_eq(after[FG_DROP_not_frame], before[FG_DROP_not_frame] + 1,
		     "a frame to 47474 was not counted as not_frame with port 5000");
	/* The same frame to 5000 (UDP checksum 0 or not checked): a frame that
	 * passes, falling back to the kernel (no socket in this copy). */
	cr_assert_leq(fwd->len, sizeof(pkt));
	memcpy(pkt, fwd->data, fwd->len);
	frame_off_v4(pkt, fwd->len);
	pkt[14 + 20 + 2] = 5000 >> 8;
	pkt[14 + 20 + 3] = 5000 & 0xff;
	cr_assert_eq(run_prog(prog_fd, pkt, fwd->len, &action), 0);
	cr_assert_eq(fg_shield_counters(a, before), 0);
	cr_expect_eq(before[FG_PASS], after[FG_PASS] + 1, "a frame to port 5000 did not pass");

	/* A second handle with `clear`: empty ownership maps, same counters,
	 * and the default port written back. */
	opts.frame_port = 0;
	opts.clear = true;
	b = fg_shield_open(&opts, &err);
	cr_assert_not_null(b, "%s", err.msg);
	cr_expect_eq(fg_shield_owner_get(a, 7, 0xa1, &own), -ENOENT, "clear left an owner");
	cr_assert_eq(fg_shield_counters(b, after), 0);
	cr_expect_eq(after[FG_PASS], before[FG_PASS]);
	cr_assert_eq(run_prog(prog_fd, fwd->data, fwd->len, &action), 0);
	cr_expect_eq(action, XDP_DROP, "47474 is the frame port again: unknown_tenant");

	bpf_object__close(obj);
	fg_shield_close(b);
	cr_expect_eq(fg_shield_unpin(a), 0);
	fg_shield_close(a);
	cr_expect_eq(access(dir, F_OK), -1, "%s is still there", dir);
}

/* The walks see what was put (the later consistency check's input). */
static int
count_owner(void *ctx, uint32_t tenant, uint64_t device,
	    const struct fg_shield_owner *o)
{
	(void)o;
	if (tenant == 0 || device == 0)
		return -1;
	(*(unsigned int *)ctx)++;
	return 0;
}

static int
count_tenant(void *ctx, uint32_t tenant, const struct fg_shield_tenant *t)
{
	(void)tenant;
	((unsigned int *)ctx)[t->state == FG_SHIELD_TENANT_SUSPENDED]++;
	return 0;
}

Test(shield, walks_see_the_mapping_file)
{
	unsigned int owners = 0, tenants[2] = { 0, 0 };

	cr_assert_eq(fg_shield_owner_foreach(shield, count_owner, &owners), 0);
	cr_assert_eq(fg_shield_tenant_foreach(shield, count_tenant, tenants), 0);
	/* mappings.jsonl: 6 devices (one moved), 4 tenants, one suspended. */
	cr_expect_eq(owners, 6);
	cr_expect_eq(tenants[0], 3);
	cr_expect_eq(tenants[1], 1);
}

/* A pin folder that is not on a bpffs is refused with a sentence naming it. */
Test(shield, pin_folder_off_bpffs_is_refused)
{
	char dir[] = "/tmp/fg-test-shield-XXXXXX";
	struct fg_shield_opts opts = { .pin_dir = dir };
	struct fg_err err = { 0 };

	cr_assert_not_null(mkdtemp(dir));
	cr_expect_null(fg_shield_open(&opts, &err));
	cr_expect_eq(err.code, EINVAL);
	cr_expect(strstr(err.msg, dir) != NULL, "message: %s", err.msg);
	rmdir(dir);
}
