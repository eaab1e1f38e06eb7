/*
 * The XDP shield with the router (SPEC 5, issue 6): real routers, real maps.
 *
 *   mirror      a router with a shield (maps pinned in a folder of its own,
 *               no interface) takes adds, moves, deletes, suspends, a rekey
 *               and a load over its socket: `shield check` finds the maps
 *               equal to the tables; an owner deleted from the pinned map
 *               behind its back is reported, exactly that entry (socket,
 *               fgctl, fgctl --json, exit 1); `shield resync` repairs it;
 *               after kill -9 and a restart the maps are the journal's again.
 *   failure     a map that refuses writes (frozen): the change is answered
 *               EIO, not ok; health says shield_in_step false.
 *   end to end  two namespaces tied to the root one by veth pairs, as in
 *               test_netns.c, but the camera side is a net_af_xdp port whose
 *               program is the shield (xdp_prog=): each viewer gets exactly
 *               its tenant's frames, the spoofed and malformed frames end in
 *               the shield's counters and never reach framegate's rx, and a
 *               ping to the router-side address is answered by the kernel
 *               through the same interface. The frame port is not the
 *               default one, so DPDK's copy of the program can only filter
 *               right by reading the pinned fg_config map.
 *
 * Needs root. Removes its namespaces, veths, pins and folders, also when a
 * test fails.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <criterion/criterion.h>

#include "ctl_client.h"
#include "framebuild.h"
#include "netns_lab.h"
#include "shield.h"
#include "support.h"

/* ---- talking to a router ------------------------------------------------------ */

static json_t *
call(const char *sock, const char *req)
{
	json_error_t jerr;
	json_t *r = json_loads(req, 0, &jerr);

	cr_assert_not_null(r, "bad request in the test: %s: %s", req, jerr.text);
	return fg_ctl_once(sock, r);
}

static void
call_ok(const char *sock, const char *req)
{
	json_t *r = call(sock, req);

	cr_assert_not_null(r, "no answer to %s", req);
	cr_assert(json_is_true(json_object_get(r, "ok")), "%s: %s", req,
		  json_string_value(json_object_get(r, "error")));
	json_decref(r);
}

static void
apply_ok(const char *sock, const char *op)
{
	char req[1024];

	snprintf(req, sizeof(req), "{\"cmd\":\"apply\",\"op\":%s}", op);
	call_ok(sock, req);
}

/* `shield.check`: the number of differences; *listed the list (new ref). */
static json_int_t
check(const char *sock, json_t **listed)
{
	json_t *r = call(sock, "{\"cmd\":\"shield.check\"}");
	json_int_t n;

	cr_assert_not_null(r, "no answer to shield.check");
	cr_assert(json_is_true(json_object_get(r, "ok")), "shield.check: %s",
		  json_string_value(json_object_get(r, "error")));
	n = json_integer_value(json_object_get(r, "differences"));
	cr_assert_eq(json_is_true(json_object_get(r, "in_step")), n == 0);
	if (listed != NULL)
		*listed = json_incref(json_object_get(r, "listed"));
	json_decref(r);
	return n;
}

static void
expect_in_step(const char *sock, const char *when)
{
	json_t *l = NULL;
	json_int_t n = check(sock, &l);
	char *s = json_dumps(l, JSON_COMPACT);

	cr_expect_eq(n, 0, "%s: the shield differs from the tables: %s", when, s);
	free(s);
	json_decref(l);
}

/* A field of `health`. */
static json_t *
health(const char *sock)
{
	json_t *r = call(sock, "{\"cmd\":\"health\"}");

	cr_assert_not_null(r, "no answer to health");
	return r;
}

/* fgctl's exit status and output. */
static int
fgctl(const char *sock, const char *args, char *out, size_t len)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "%s --socket %s %s 2>&1", FG_FGCTL_PATH, sock, args);
	return fg_test_run(cmd, out, len);
}

/* ---- the pinned maps, reached the way another tool would ------------------- */

static int
pinned(const char *dir, const char *map)
{
	char path[256];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, map);
	fd = bpf_obj_get(path);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	return fd;
}

static void
owner_delete_behind(const char *dir, uint32_t tenant, uint64_t device)
{
	struct fg_shield_owner_key k = { .tenant_id = tenant, .pad = 0, .device_id = device };
	int fd = pinned(dir, "fg_owners");

	cr_assert_eq(bpf_map_delete_elem(fd, &k), 0, "delete (%u, 0x%lx): %s", tenant,
		     (unsigned long)device, strerror(errno));
	close(fd);
}

static void
owner_put_behind(const char *dir, uint32_t tenant, uint64_t device, uint32_t epoch)
{
	struct fg_shield_owner_key k = { .tenant_id = tenant, .pad = 0, .device_id = device };
	struct fg_shield_owner v = { .epoch = epoch };
	int fd = pinned(dir, "fg_owners");

	cr_assert_eq(bpf_map_update_elem(fd, &k, &v, BPF_ANY), 0, "%s", strerror(errno));
	close(fd);
}

/* ---- a router with a shield on a pcap port ----------------------------------- */

static struct fg_router_proc rp;
static char pin_dir[128];

/* fg_rp_init's configuration, with a shield and tables that fit its maps. */
static void
rp_with_shield(void)
{
	char path[256];
	FILE *f;

	if (geteuid() != 0)
		cr_skip_test("needs root for BPF maps");
	fg_rp_init(&rp);
	snprintf(pin_dir, sizeof(pin_dir), "/sys/fs/bpf/fg-test-xdp-%d", (int)getpid());
	snprintf(path, sizeof(path), "%s/config.json", rp.dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f,
		"{\"control_socket\": \"%s\", \"journal_dir\": \"%s/journal\",\n"
		" \"tables\": {\"max_tenants\": 4096, \"max_sinks\": 16384, \"max_devices\": 65536},\n"
		" \"mbufs\": 2047, \"shield\": {\"pin_dir\": \"%s\"},\n"
		" \"ports\": [{\"port\": 0, \"role\": \"both\", \"next_hop_mac\": \"02:00:00:00:00:01\",\n"
		"             \"ipv4\": \"192.0.2.1\", \"ipv6\": \"2001:db8::1\"}]}\n",
		rp.sock, rp.dir, pin_dir);
	fclose(f);
}

static void
rp_cleanup(void)
{
	fg_rp_fini(&rp);
	if (pin_dir[0] != '\0')
		fg_lab_sh("rm -rf %s", pin_dir);
}

TestSuite(xdp, .timeout = 240);

Test(xdp, the_maps_follow_every_change_and_the_check_names_each_difference,
     .fini = rp_cleanup)
{
	char out[8192], path[200];
	json_t *l, *d, *h;
	FILE *f;

	rp_with_shield();
	cr_assert(fg_rp_start(&rp, NULL), "the router did not start");
	expect_in_step(rp.sock, "empty");

	/* Adds, a suspend and a resume, moves, deletes, a rekey. */
	apply_ok(rp.sock, "{\"op\":\"tenant\",\"tenant\":7}");
	apply_ok(rp.sock, "{\"op\":\"tenant\",\"tenant\":9}");
	apply_ok(rp.sock, "{\"op\":\"tenant\",\"tenant\":11}");
	apply_ok(rp.sock, "{\"op\":\"sink\",\"sink\":70,\"tenant\":7,\"addr\":\"192.0.2.70\",\"port\":6000,\"egress\":0}");
	apply_ok(rp.sock, "{\"op\":\"sink\",\"sink\":90,\"tenant\":9,\"addr\":\"2001:db8::90\",\"port\":6000,\"egress\":0}");
	apply_ok(rp.sock, "{\"op\":\"sink\",\"sink\":110,\"tenant\":11,\"addr\":\"192.0.2.110\",\"port\":6000,\"egress\":0}");
	for (int i = 1; i <= 20; i++) {
		char op[256];

		snprintf(op, sizeof(op), "{\"op\":\"device\",\"tenant\":%d,\"device\":\"0x%x\",\"epoch\":%d,%s\"sinks\":[%d]}",
			 i % 2 ? 7 : 9, 0xa00 + i, i,
			 i % 3 ? "" : "\"key\":\"000102030405060708090a0b0c0d0e0f\",",
			 i % 2 ? 70 : 90);
		apply_ok(rp.sock, op);
	}
	apply_ok(rp.sock, "{\"op\":\"suspend\",\"tenant\":9}");
	apply_ok(rp.sock, "{\"op\":\"move\",\"device\":\"0xa01\",\"from\":7,\"to\":11,\"epoch\":40,\"sinks\":[110]}");
	apply_ok(rp.sock, "{\"op\":\"move\",\"device\":\"0xa03\",\"from\":7,\"to\":9,\"epoch\":41,\"sinks\":[90],"
			  "\"key\":\"ffeeddccbbaa99887766554433221100\"}");
	apply_ok(rp.sock, "{\"op\":\"del_device\",\"tenant\":9,\"device\":\"0xa02\"}");
	apply_ok(rp.sock, "{\"op\":\"device\",\"tenant\":7,\"device\":\"0xa05\",\"epoch\":50,\"sinks\":[70]}");
	call_ok(rp.sock, "{\"cmd\":\"rekey\",\"tenant\":7,\"device\":\"0xa07\",\"key\":\"0f0e0d0c0b0a09080706050403020100\"}");
	apply_ok(rp.sock, "{\"op\":\"resume\",\"tenant\":9}");
	apply_ok(rp.sock, "{\"op\":\"suspend\",\"tenant\":11}");
	expect_in_step(rp.sock, "after single changes");

	/* A load: one transaction of adds, a move, deletes and a tenant gone. */
	snprintf(path, sizeof(path), "%s/load.jsonl", rp.dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f,
		"{\"op\":\"tenant\",\"tenant\":13}\n"
		"{\"op\":\"sink\",\"sink\":130,\"tenant\":13,\"addr\":\"192.0.2.130\",\"port\":6000,\"egress\":0}\n"
		"{\"op\":\"device\",\"tenant\":13,\"device\":\"0xb01\",\"epoch\":1,\"sinks\":[130]}\n"
		"{\"op\":\"device\",\"tenant\":13,\"device\":\"0xb02\",\"epoch\":1,\"key\":\"00112233445566778899aabbccddeeff\",\"sinks\":[130]}\n"
		"{\"op\":\"move\",\"device\":\"0xa04\",\"from\":9,\"to\":13,\"epoch\":60,\"sinks\":[130]}\n"
		"{\"op\":\"del_device\",\"tenant\":11,\"device\":\"0xa01\"}\n"
		"{\"op\":\"del_sink\",\"sink\":110}\n"
		"{\"op\":\"del_tenant\",\"tenant\":11}\n");
	fclose(f);
	char args[300];

	snprintf(args, sizeof(args), "load %s", path);
	cr_assert_eq(fgctl(rp.sock, args, out, sizeof(out)), 0, "fgctl load: %s", out);
	expect_in_step(rp.sock, "after a load");
	cr_expect_eq(fgctl(rp.sock, "shield check", out, sizeof(out)), 0, "%s", out);
	cr_expect(strstr(out, "in step") != NULL, "%s", out);

	/* One owner removed from the pinned map behind the router's back: the
	 * check names exactly it, on the socket and through fgctl. */
	owner_delete_behind(pin_dir, 13, 0xb02);
	cr_assert_eq(check(rp.sock, &l), 1);
	d = json_array_get(l, 0);
	cr_expect_str_eq(json_string_value(json_object_get(d, "entry")), "owner");
	cr_expect_str_eq(json_string_value(json_object_get(d, "problem")), "missing");
	cr_expect_eq(json_integer_value(json_object_get(d, "tenant")), 13);
	cr_expect_str_eq(json_string_value(json_object_get(d, "device")), "0x0000000000000b02");
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(d, "tables"), "epoch")), 1);
	json_decref(l);
	cr_expect_eq(fgctl(rp.sock, "shield check", out, sizeof(out)), 1, "%s", out);
	cr_expect(strstr(out, "missing in the shield: owner tenant 13 device 0x0000000000000b02 (tables: epoch 1, key)") != NULL,
		  "%s", out);
	cr_expect(strstr(out, "1 difference\n") != NULL, "%s", out);
	cr_expect_eq(fgctl(rp.sock, "--json shield check", out, sizeof(out)), 1, "%s", out);
	cr_expect(strstr(out, "\"in_step\": false") != NULL || strstr(out, "\"in_step\":false") != NULL,
		  "%s", out);

	/* Resync writes the tables into the maps again. */
	cr_expect_eq(fgctl(rp.sock, "shield resync", out, sizeof(out)), 0, "%s", out);
	expect_in_step(rp.sock, "after resync");

	/* Every kind: an extra owner, another epoch, a tenant's state. */
	owner_put_behind(pin_dir, 5, 0x55, 1);
	owner_put_behind(pin_dir, 7, 0xa05, 49);
	cr_assert_eq(check(rp.sock, &l), 2);
	cr_expect_eq(fgctl(rp.sock, "shield check", out, sizeof(out)), 1, "%s", out);
	cr_expect(strstr(out, "extra in the shield:   owner tenant 5 device 0x0000000000000055") != NULL, "%s", out);
	cr_expect(strstr(out, "differs:               owner tenant 7 device 0x0000000000000a05 (tables: epoch 50, no key; shield: epoch 49, no key)") != NULL,
		  "%s", out);
	json_decref(l);
	h = health(rp.sock);
	cr_expect(json_is_true(json_object_get(h, "shield_in_step")),
		  "health: the router's own writes all succeeded");
	json_decref(h);

	/* kill -9 with the maps wrong, then a restart: the maps are emptied
	 * and refilled from the journal. */
	owner_delete_behind(pin_dir, 7, 0xa07);
	fg_rp_kill(&rp, SIGKILL);
	cr_assert(fg_rp_start(&rp, NULL), "the router did not start again");
	expect_in_step(rp.sock, "after kill -9 and a restart");
	json_t *r = call(rp.sock, "{\"cmd\":\"shield.check\"}");

	cr_expect_eq(json_integer_value(json_object_get(json_object_get(r, "shield"), "owners")), 20,
		     "owners after restart");
	cr_expect_eq(json_integer_value(json_object_get(json_object_get(r, "shield"), "tenants")), 3);
	json_decref(r);
}

/* A map that refuses writes: the change is journaled and in the tables, but
 * it is not acknowledged as done, and health says so until a resync. */
Test(xdp, a_change_the_maps_refuse_is_not_acknowledged, .fini = rp_cleanup)
{
	json_t *r, *l;
	int fd;

	rp_with_shield();
	cr_assert(fg_rp_start(&rp, NULL), "the router did not start");
	apply_ok(rp.sock, "{\"op\":\"tenant\",\"tenant\":7}");
	apply_ok(rp.sock, "{\"op\":\"sink\",\"sink\":70,\"tenant\":7,\"addr\":\"192.0.2.70\",\"port\":6000,\"egress\":0}");
	/* Frozen: no more writes from userspace, ever (the pins go with the
	 * test). */
	fd = pinned(pin_dir, "fg_owners");
	cr_assert_eq(bpf_map_freeze(fd), 0, "freeze: %s", strerror(errno));
	close(fd);

	r = call(rp.sock, "{\"cmd\":\"apply\",\"op\":{\"op\":\"device\",\"tenant\":7,\"device\":\"0xa1\",\"epoch\":1,\"sinks\":[70]}}");
	cr_assert_not_null(r);
	cr_expect(json_is_false(json_object_get(r, "ok")), "acknowledged while the map refused it");
	cr_expect_str_eq(json_string_value(json_object_get(r, "code")), "EIO");
	cr_expect(strstr(json_string_value(json_object_get(r, "error")),
			 "tenant 7 device 0x00000000000000a1: cannot write fg_owners") != NULL,
		  "%s", json_string_value(json_object_get(r, "error")));
	json_decref(r);

	r = health(rp.sock);
	cr_expect(json_is_false(json_object_get(r, "shield_in_step")));
	cr_expect_str_eq(json_string_value(json_object_get(r, "status")), "degraded");
	cr_expect_eq(json_integer_value(json_object_get(r, "devices")), 1,
		     "the tables hold the change (it is journaled)");
	json_decref(r);
	cr_assert_eq(check(rp.sock, &l), 1);
	cr_expect_str_eq(json_string_value(json_object_get(json_array_get(l, 0), "problem")), "missing");
	json_decref(l);

	/* A resync cannot write a frozen map either: it says so. */
	r = call(rp.sock, "{\"cmd\":\"shield.resync\"}");
	cr_expect(json_is_false(json_object_get(r, "ok")));
	json_decref(r);
}

/* ---- end to end: net_af_xdp with the shield ----------------------------------- */

#define N_PER_TENANT 300
#define N_SPOOFED 100
#define N_BAD 50
#define N_OTHER_PORT 20
#define N_PINGS 3
#define FRAME_PORT 47480      /* not the default: DPDK's copy must read fg_config */

static const uint8_t key9[16] = { 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
				  0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f };

static struct fg_lab lab;
static char dir[64], prefix[32];
static pid_t router = -1;

static void
rm_default_pins(void)
{
	static const char *const maps[] = { "fg_tenants", "fg_owners", "fg_drops", "fg_config" };

	for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		char path[64];

		snprintf(path, sizeof(path), "/sys/fs/bpf/%s", maps[i]);
		unlink(path);
	}
}

static void
e2e_cleanup(void)
{
	if (router > 0) {
		kill(router, SIGKILL);
		waitpid(router, NULL, 0);
		router = -1;
	}
	fg_lab_remove(&lab);
	fg_lab_sh("rm -rf %s /var/run/dpdk/%s", dir, prefix);
	rm_default_pins();
}

#define SETUP_OK(cond)                                                      \
	do {                                                                \
		if (!(cond)) {                                              \
			e2e_cleanup();                                      \
			cr_assert_fail("network set-up failed: %s", #cond); \
		}                                                           \
	} while (0)

static void
e2e_setup(void)
{
	int pid = (int)getpid();
	char mac_vv[32], path[128];
	FILE *f;

	if (geteuid() != 0)
		cr_skip_test("needs root for namespaces, XDP and BPF maps");
	fg_lab_name(&lab, "fx");
	snprintf(prefix, sizeof(prefix), "fgxdp%d", pid);
	snprintf(dir, sizeof(dir), "/tmp/fg_xdp.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));

	/* Camera side: the router's end rc carries the host address (what ping
	 * reaches), and the shield, attached by DPDK. */
	SETUP_OK(fg_lab_links(&lab) == 0);
	SETUP_OK(fg_lab_sh("ip addr add 198.18.1.1/24 dev %s", lab.rc) == 0);
	fg_lab_read_mac(lab.view_ns, lab.vv, mac_vv);

	/* Tenant 7's camera 0xa1 without a key, tenant 9's 0xb1 with one. */
	snprintf(path, sizeof(path), "%s/mappings.jsonl", dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f,
		"{\"op\":\"tenant\",\"tenant\":7,\"name\":\"acme\"}\n"
		"{\"op\":\"tenant\",\"tenant\":9,\"name\":\"globex\"}\n"
		"{\"op\":\"sink\",\"sink\":70,\"tenant\":7,\"addr\":\"198.18.2.2\",\"port\":6000,\"egress\":1}\n"
		"{\"op\":\"sink\",\"sink\":90,\"tenant\":9,\"addr\":\"198.18.2.2\",\"port\":6001,\"egress\":1}\n"
		"{\"op\":\"device\",\"tenant\":7,\"device\":\"0xa1\",\"epoch\":1,\"sinks\":[70]}\n"
		"{\"op\":\"device\",\"tenant\":9,\"device\":\"0xb1\",\"epoch\":1,"
		"\"key\":\"101112131415161718191a1b1c1d1e1f\",\"sinks\":[90]}\n");
	fclose(f);
	snprintf(path, sizeof(path), "%s/config.json", dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f,
		"{\"tables\": {\"max_tenants\": 64, \"max_sinks\": 64, \"max_devices\": 1024},\n"
		" \"frame_port\": %d,\n"
		" \"journal_dir\": \"%s/journal\", \"control_socket\": \"%s/ctl.sock\",\n"
		" \"shield\": {\"pin_dir\": \"/sys/fs/bpf\", \"interfaces\": [\"%s\"]},\n"
		" \"ports\": [\n"
		"  {\"port\": 0, \"role\": \"ingress\"},\n"
		"  {\"port\": 1, \"role\": \"egress\", \"next_hop_mac\": \"%s\", \"ipv4\": \"198.18.2.1\"}\n"
		" ]}\n", FRAME_PORT, dir, dir, lab.rc, mac_vv);
	fclose(f);
}

struct shared {
	struct fg_lab_view view;      /* what the viewer counted */
	unsigned int pongs;           /* echo replies the camera host got */
};

static uint16_t
icmp_csum(const void *p, size_t len)
{
	const uint16_t *w = p;
	uint32_t sum = 0;

	for (; len > 1; len -= 2)
		sum += *w++;
	if (len)
		sum += *(const uint8_t *)w;
	sum = (sum & 0xffff) + (sum >> 16);
	sum += sum >> 16;
	return (uint16_t)~sum;
}

/* One ICMP echo to 198.18.1.1 (the router-side host address), from the
 * camera host: 1 when the reply came within a second. There is no ping(8)
 * on every host, so this is ping's core. */
static int
ping_once(uint16_t seq)
{
	struct sockaddr_in dst = { .sin_family = AF_INET };
	struct icmphdr req = { .type = ICMP_ECHO };
	struct pollfd pfd;
	int s = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP), ok = 0;

	if (s < 0)
		return 0;
	inet_pton(AF_INET, "198.18.1.1", &dst.sin_addr);
	req.un.echo.id = htons((uint16_t)getpid());
	req.un.echo.sequence = htons(seq);
	req.checksum = icmp_csum(&req, sizeof(req));
	if (sendto(s, &req, sizeof(req), 0, (struct sockaddr *)&dst, sizeof(dst)) < 0) {
		close(s);
		return 0;
	}
	pfd = (struct pollfd){ .fd = s, .events = POLLIN };
	while (!ok && poll(&pfd, 1, 1000) > 0) {
		uint8_t buf[512];
		ssize_t n = recv(s, buf, sizeof(buf), 0);
		const struct iphdr *ip = (const void *)buf;
		const struct icmphdr *r;

		if (n < (ssize_t)sizeof(*ip) || n < (ssize_t)(ip->ihl * 4 + sizeof(*r)))
			continue;
		r = (const void *)(buf + ip->ihl * 4);
		ok = r->type == ICMP_ECHOREPLY && r->un.echo.id == req.un.echo.id &&
		     r->un.echo.sequence == req.un.echo.sequence;
	}
	close(s);
	return ok;
}

/* Camera host: pings (which also resolve the router's address by ARP through
 * the shield), the two tenants' frames, spoofed ones (tenant 7 claiming 9's
 * camera), malformed ones, UDP to another port, pings again. */
static void
camera(struct shared *s)
{
	struct sockaddr_in dst = { .sin_family = AF_INET, .sin_port = htons(FRAME_PORT) };
	struct sockaddr_in other = { .sin_family = AF_INET, .sin_port = htons(9999) };
	int fd;

	fg_lab_enter_ns(lab.cam_ns);
	for (uint16_t i = 0; i < N_PINGS; i++)
		s->pongs += (unsigned int)ping_once(i);
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	inet_pton(AF_INET, "198.18.1.1", &dst.sin_addr);
	other.sin_addr = dst.sin_addr;
	for (unsigned int i = 0; i < 2 * N_PER_TENANT + N_SPOOFED + N_BAD; i++) {
		if (i < 2 * N_PER_TENANT && i % 2 == 0)
			fg_lab_send_frame(fd, &dst, 7, 0xa1, i, 200, NULL, false);
		else if (i < 2 * N_PER_TENANT)
			fg_lab_send_frame(fd, &dst, 9, 0xb1, i, 200, key9, false);
		else if (i < 2 * N_PER_TENANT + N_SPOOFED)
			fg_lab_send_frame(fd, &dst, 7, 0xb1, i, 200, NULL, false);
		else
			fg_lab_send_frame(fd, &dst, 7, 0xa1, i, 200, NULL, true);
		usleep(200);
	}
	for (unsigned int i = 0; i < N_OTHER_PORT; i++)
		if (sendto(fd, "not a frame", 11, 0, (struct sockaddr *)&other, sizeof(other)) < 0)
			_exit(8);
	for (uint16_t i = 0; i < N_PINGS; i++)
		s->pongs += (unsigned int)ping_once((uint16_t)(N_PINGS + i));
	_exit(0);
}

/* A number in the router's stats file. */
static long
stat(const char *buf, const char *key)
{
	char k[64];
	const char *p;

	snprintf(k, sizeof(k), "\"%s\":", key);
	p = strstr(buf, k);
	return p ? strtol(p + strlen(k), NULL, 10) : -1;
}

static json_int_t
counter(json_t *health, const char *name)
{
	json_t *c = json_object_get(json_object_get(json_object_get(health, "shield"), "counters"), name);

	cr_assert(json_is_integer(c), "health has no shield counter %s", name);
	return json_integer_value(c);
}

Test(xdp, shield_on_af_xdp_drops_in_the_kernel_and_the_host_stays_reachable,
     .init = e2e_setup, .fini = e2e_cleanup)
{
	struct shared *s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	char cmd[4096], line[512], sock[128];
	int out[2], ready[2], st, started = 0;
	pid_t vpid, cpid;
	json_t *h0, *h1;
	FILE *rf;

	cr_assert(s != MAP_FAILED);
	snprintf(sock, sizeof(sock), "%s/ctl.sock", dir);
	/* Under ASan: DPDK 22.11's net_af_xdp never closes the bpf_object it
	 * loads for xdp_prog= (load_custom_xdp_prog), nor frees libxdp's umem
	 * struct; those allocations are made inside libbpf and libxdp, whose
	 * frames LSan can name (the router's own libbpf use is checked without
	 * this, in the tests above and in the `shield` suite). */
	snprintf(cmd, sizeof(cmd), "%s/lsan.supp", dir);
	FILE *supp = fopen(cmd, "w");

	cr_assert_not_null(supp);
	fputs("leak:libbpf.so\nleak:libxdp.so\n", supp);
	fclose(supp);
	cr_assert_eq(pipe(out), 0);
	router = fork();
	cr_assert_geq(router, 0);
	if (router == 0) {
		dup2(out[1], 1);
		dup2(out[1], 2);
		close(out[0]);
		snprintf(cmd, sizeof(cmd),
			 "LSAN_OPTIONS=suppressions=%s/lsan.supp"
			 " exec %s --no-huge -m 512 --no-pci --no-shconf --file-prefix=%s --no-telemetry -l 0"
			 " --log-level=*:error"
			 " --vdev net_af_xdp0,iface=%s,start_queue=0,queue_count=1,xdp_prog=%s"
			 " --vdev net_af_packet1,iface=%s,framecnt=4096"
			 " -- --config %s/config.json --mappings %s/mappings.jsonl --stats %s/stats.json"
			 " --duration 60",
			 dir, FG_FRAMEGATE, prefix, lab.rc, FG_SHIELD_OBJ, lab.rv, dir, dir, dir);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	rf = fdopen(out[0], "r");
	while (fgets(line, sizeof(line), rf) != NULL) {
		fprintf(stderr, "router: %s", line);
		if (strstr(line, "framegate: forwarding") != NULL) {
			started = 1;
			break;
		}
	}
	cr_assert(started, "the router did not start");
	/* Its output from here on, in the background. */
	if (fork() == 0) {
		while (fgets(line, sizeof(line), rf) != NULL)
			fprintf(stderr, "router: %s", line);
		_exit(0);
	}
	fclose(rf);
	snprintf(cmd, sizeof(cmd), "ip link show %s | grep -q 'prog/xdp.*fg_shield'", lab.rc);
	cr_expect_eq(fg_lab_sh("%s", cmd), 0, "%s does not run fg_shield", lab.rc);
	expect_in_step(sock, "after start");
	h0 = health(sock);

	cr_assert_eq(pipe(ready), 0);
	vpid = fork();
	if (vpid == 0)
		fg_lab_viewer(lab.view_ns, &s->view, ready[1]);
	cr_assert_eq(read(ready[0], line, 1), 1, "the viewer did not start");
	cpid = fork();
	if (cpid == 0)
		camera(s);
	waitpid(cpid, &st, 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "camera failed: %d", st);
	waitpid(vpid, &st, 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "viewer failed: %d", st);
	h1 = health(sock);

	kill(router, SIGTERM);
	waitpid(router, &st, 0);
	router = -1;
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "router exit %d", st);

	fprintf(stderr, "xdp: viewer of tenant 7 got %u (wrong %u), of tenant 9 got %u (wrong %u); "
		"%u of %u pings answered; shield: redirected %lld, not_owned %lld, bad_header %lld,"
		" not_frame %lld, not_udp %lld, not_ip %lld\n",
		s->view.got[0], s->view.wrong[0], s->view.got[1], s->view.wrong[1], s->pongs, 2 * N_PINGS,
		(long long)(counter(h1, "redirected") - counter(h0, "redirected")),
		(long long)(counter(h1, "not_owned") - counter(h0, "not_owned")),
		(long long)(counter(h1, "bad_header") - counter(h0, "bad_header")),
		(long long)(counter(h1, "not_frame") - counter(h0, "not_frame")),
		(long long)(counter(h1, "not_udp") - counter(h0, "not_udp")),
		(long long)(counter(h1, "not_ip") - counter(h0, "not_ip")));
	cr_expect_eq(s->view.wrong[0], 0, "tenant 9's frames reached tenant 7's viewer");
	cr_expect_eq(s->view.wrong[1], 0, "tenant 7's frames reached tenant 9's viewer");
	cr_expect_eq(s->view.got[0], N_PER_TENANT, "tenant 7's viewer got %u of %u", s->view.got[0], N_PER_TENANT);
	cr_expect_eq(s->view.got[1], N_PER_TENANT, "tenant 9's viewer got %u of %u", s->view.got[1], N_PER_TENANT);
	cr_expect_eq(s->pongs, 2 * N_PINGS, "the host answered %u of %u pings through the shield",
		     s->pongs, 2 * N_PINGS);

	/* In the kernel: the valid frames redirected, the spoofed and malformed
	 * ones dropped, the rest passed to the stack. */
	cr_expect_eq(counter(h1, "redirected") - counter(h0, "redirected"), 2 * N_PER_TENANT);
	cr_expect_eq(counter(h1, "not_owned") - counter(h0, "not_owned"), N_SPOOFED);
	cr_expect_eq(counter(h1, "bad_header") - counter(h0, "bad_header"), N_BAD);
	cr_expect_eq(counter(h1, "not_frame") - counter(h0, "not_frame"), N_OTHER_PORT);
	cr_expect_geq(counter(h1, "not_udp") - counter(h0, "not_udp"), 2 * N_PINGS,
		      "the pings were not seen as passing traffic");
	json_decref(h0);
	json_decref(h1);

	/* framegate itself saw only the valid frames: nothing to drop. */
	char stats[160], buf[4096];
	FILE *sf;
	size_t n;

	snprintf(stats, sizeof(stats), "%s/stats.json", dir);
	sf = fopen(stats, "r");
	cr_assert_not_null(sf, "no stats written");
	n = fread(buf, 1, sizeof(buf) - 1, sf);
	buf[n] = '\0';
	fclose(sf);
	cr_expect_eq(stat(buf, "rx_packets"), 2 * N_PER_TENANT,
		     "framegate received more than the valid frames: %s", buf);
	cr_expect_eq(stat(buf, "forwarded_packets"), 2 * N_PER_TENANT, "stats: %s", buf);
	cr_expect_eq(stat(buf, "not_owned"), 0, "stats: %s", buf);
	munmap(s, sizeof(*s));
}
