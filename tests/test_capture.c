/*
 * Packet capture, against real routers: a framegate on a net_tap port (the
 * kernel side of the tap is where this test sends its frames, through an
 * AF_PACKET socket), driven with the built fgctl and with raw requests.
 *
 *   - `fgctl capture --reason not_owned --count 5` saves exactly the first
 *     five not_owned drops sent after it started, byte for byte and in
 *     order, among frames of other reasons that claim the same tenant or
 *     the same device ids; the project's parser reads each one back;
 *   - --tenant keeps only the drops claiming that tenant; a request sent on
 *     the same connection after a capture is answered after it;
 *   - a capture whose time runs out says how many it saved, and the file
 *     holds those;
 *   - bad reasons, counts, tenants and paths are refused naming the input;
 *     a peer of the read group may read state but not capture;
 *     a second capture is refused with EBUSY; a refused capture leaves an
 *     existing file as it was and the router not armed; a client that
 *     disconnects disarms it;
 *   - dpdk-dumpcap, attached to a router started with hugepages and
 *     multi-process on, writes a pcapng of the frames the port received.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>
#include <pcap/pcap.h>
#include <sodium.h>

#include <framegate/ctl.h>

#include "ctl_client.h"
#include "framebuild.h"
#include "parse.h"
#include "support.h"

#define DUMPCAP "/usr/bin/dpdk-dumpcap"
#define MAX_SAVED 64

struct capr {
	pid_t pid;
	char dir[64], sock[128], ifname[IFNAMSIZ], prefix[48];
};

static struct capr R;
static char huge_dir[128] = "/dev/hugepages";   /* where hugetlbfs is mounted */

static const char mappings[] =
	"{\"op\":\"tenant\",\"tenant\":7,\"name\":\"acme\"}\n"
	"{\"op\":\"tenant\",\"tenant\":9,\"name\":\"globex\"}\n"
	"{\"op\":\"sink\",\"sink\":70,\"tenant\":7,\"addr\":\"198.51.100.70\",\"port\":6000,\"egress\":0}\n"
	"{\"op\":\"sink\",\"sink\":90,\"tenant\":9,\"addr\":\"198.51.100.90\",\"port\":6000,\"egress\":0}\n"
	"{\"op\":\"device\",\"tenant\":7,\"device\":\"0xa1\",\"epoch\":1,\"sinks\":[70]}\n"
	"{\"op\":\"device\",\"tenant\":9,\"device\":\"0xb1\",\"epoch\":1,\"sinks\":[90]}\n";

/* A router on a fresh tap interface. hugepages: started the way
 * dpdk-dumpcap needs it (hugepages, multi-process on); otherwise the way
 * the other suites start routers (no hugepages, no shared config). */
static void
capr_start(struct capr *r, bool hugepages)
{
	static unsigned int n;
	char path[160], cmd[2048];
	bool serving;
	FILE *f;

	memset(r, 0, sizeof(*r));
	snprintf(r->dir, sizeof(r->dir), "/tmp/fg_capture_test.XXXXXX");
	cr_assert_not_null(mkdtemp(r->dir));
	snprintf(r->sock, sizeof(r->sock), "%s/ctl.sock", r->dir);
	snprintf(r->ifname, sizeof(r->ifname), "fgcap%d", (int)getpid() % 1000000);
	snprintf(r->prefix, sizeof(r->prefix), "fgcap%d_%u", (int)getpid(), n++);
	snprintf(path, sizeof(path), "%s/config.json", r->dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "{\"read_group\": \"nogroup\",\n"
		   " \"control_socket\": \"%s\", \"journal_dir\": \"%s/journal\", \"mbufs\": 2047,\n"
		   " \"tables\": {\"max_tenants\": 64, \"max_sinks\": 64, \"max_devices\": 1024},\n"
		   " \"ports\": [{\"port\": 0, \"role\": \"both\", \"next_hop_mac\": \"02:00:00:00:00:01\",\n"
		   "             \"ipv4\": \"192.0.2.1\"}]}\n", r->sock, r->dir);
	fclose(f);
	snprintf(path, sizeof(path), "%s/map.jsonl", r->dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(mappings, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd),
		 "exec %s %s --no-pci --file-prefix=%s --no-telemetry -l 0 --log-level=*:error"
		 " --vdev net_tap0,iface=%s -- --config %s/config.json --mappings %s/map.jsonl"
		 " > /dev/null",
		 FG_FRAMEGATE,
		 /* The secondary maps the router's memory at the same addresses:
		  * put it far from where either process's libraries and heap
		  * (and, under ASan, its shadow) go. */
		 hugepages ? "-m 128 --base-virtaddr=0x200000000000" : "--no-huge -m 256 --no-shconf",
		 r->prefix,
		 r->ifname, r->dir, r->dir);
	r->pid = fg_router_spawn(cmd, &serving);
	cr_assert(r->pid > 0 && serving, "the router did not start: %s", cmd);
}

static void
capr_stop(struct capr *r)
{
	char cmd[512];

	if (r->pid > 0) {
		/* A router that does not stop in 20 s is killed: the suite goes on. */
		kill(r->pid, SIGTERM);
		for (int i = 0; i < 2000 && waitpid(r->pid, NULL, WNOHANG) == 0; i++)
			usleep(10000);
		if (kill(r->pid, 0) == 0) {
			fprintf(stderr, "the router did not stop on SIGTERM in 20 s: killed\n");
			kill(r->pid, SIGKILL);
			waitpid(r->pid, NULL, 0);
		}
		r->pid = 0;
	}
	/* EAL leaves its runtime folder, and a router on hugepages its page
	 * files (which a secondary maps), behind. */
	snprintf(cmd, sizeof(cmd), "rm -rf %s /var/run/dpdk/%s %s/%smap_*", r->dir,
		 r->prefix, huge_dir, r->prefix);
	if (r->dir[0] != '\0' && system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", r->dir);
}

static void
teardown(void)
{
	capr_stop(&R);
}

/* ---- frames ------------------------------------------------------------------ */

struct frame {
	uint8_t b[256];
	size_t len;
};

static struct frame
frame(uint32_t tenant, uint64_t device, uint32_t epoch, uint16_t port, uint32_t seq)
{
	struct fg_frame_spec s = {
		.ip_version = 4, .frame_port = port, .tenant_id = tenant, .device_id = device,
		.epoch = epoch, .frame_seq = seq, .payload_len = 64,
		.src_ip = { 10, 20, 0, 1 }, .dst_ip = { 10, 0, 0, 1 },
	};
	struct frame f;

	f.len = fg_frame_build(&s, f.b, sizeof(f.b));
	cr_assert_gt(f.len, 0);
	return f;
}

static void
send_frames(const struct frame *f, size_t n)
{
	struct sockaddr_ll a = { .sll_family = AF_PACKET, .sll_halen = 6,
				 .sll_ifindex = (int)if_nametoindex(R.ifname) };
	int s = socket(AF_PACKET, SOCK_RAW, 0);

	cr_assert_geq(s, 0, "AF_PACKET socket: %s", strerror(errno));
	cr_assert_gt(a.sll_ifindex, 0, "no interface %s", R.ifname);
	for (size_t i = 0; i < n; i++)
		cr_assert_eq(sendto(s, f[i].b, f[i].len, 0, (struct sockaddr *)&a, sizeof(a)),
			     (ssize_t)f[i].len, "sendto %s: %s", R.ifname, strerror(errno));
	close(s);
}

/* ---- the router's side -------------------------------------------------------- */

static json_t *
call(json_t *req)
{
	json_t *res = fg_ctl_once(R.sock, req);

	cr_assert_not_null(res, "the router did not answer");
	return res;
}

/* The capture the router reports as armed (health), or NULL. */
static json_t *
armed(void)
{
	json_t *h = call(json_pack("{s:s}", "cmd", "health"));
	json_t *c = json_incref(json_object_get(h, "capture"));

	json_decref(h);
	return c;
}

static void
wait_armed(bool want)
{
	for (int i = 0; i < 500; i++) {
		json_t *c = armed();

		json_decref(c);
		if ((c != NULL) == want)
			return;
		usleep(10000);
	}
	cr_assert_fail("the router's capture did not become %s", want ? "armed" : "disarmed");
}

/* fgctl in the background, its output in DIR/NAME.log. */
static pid_t
fgctl_bg(const char *name, const char *args)
{
	char cmd[1024];
	pid_t pid;

	snprintf(cmd, sizeof(cmd), "exec %s --socket %s %s > %s/%s.log 2>&1", FG_FGCTL_PATH,
		 R.sock, args, R.dir, name);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* Its exit status (after at most 30 s), and its output in out. */
static int
fgctl_wait(pid_t pid, const char *name, char *out, size_t len)
{
	char path[160];
	int st = 0;
	FILE *f;
	size_t n = 0;

	for (int i = 0; i < 3000 && waitpid(pid, &st, WNOHANG) == 0; i++)
		usleep(10000);
	if (waitpid(pid, &st, WNOHANG) == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		cr_assert_fail("fgctl %s did not end within 30 s", name);
	}
	snprintf(path, sizeof(path), "%s/%s.log", R.dir, name);
	f = fopen(path, "r");
	if (f != NULL) {
		n = fread(out, 1, len - 1, f);
		fclose(f);
	}
	out[n] = '\0';
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int
fgctl_run(const char *args, char *out, size_t len)
{
	return fgctl_wait(fgctl_bg("fg", args), "fg", out, len);
}

/* ---- reading captures ----------------------------------------------------------- */

struct saved {
	uint64_t ts_ns;
	uint32_t caplen, len;
	uint8_t b[2048];
};

/* The packets of a pcap or pcapng file (libpcap reads both). */
static size_t
read_capture(const char *path, struct saved *s, size_t max)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	pcap_t *p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO,
							    errbuf);
	struct pcap_pkthdr *h;
	const u_char *d;
	size_t n = 0;

	cr_assert_not_null(p, "%s: %s", path, errbuf);
	cr_assert_eq(pcap_datalink(p), DLT_EN10MB);
	while (pcap_next_ex(p, &h, &d) == 1) {
		cr_assert_lt(n, max, "%s holds more than %zu packets", path, max);
		s[n].ts_ns = (uint64_t)h->ts.tv_sec * 1000000000u + (uint64_t)h->ts.tv_usec;
		s[n].caplen = h->caplen;
		s[n].len = h->len;
		memcpy(s[n].b, d, h->caplen < sizeof(s[n].b) ? h->caplen : sizeof(s[n].b));
		n++;
	}
	pcap_close(p);
	return n;
}

static uint64_t
now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

/* A saved packet is exactly the frame sent, and the parser reads from it
 * the tenant and the device the frame claimed. */
static void
expect_frame(const struct saved *s, const struct frame *f, uint32_t tenant, uint64_t device)
{
	struct fg_parsed p;

	cr_expect_eq(s->len, f->len);
	cr_expect_eq(s->caplen, f->len);
	cr_expect_eq(memcmp(s->b, f->b, f->len), 0, "the saved bytes differ from the frame sent");
	cr_assert_eq(fg_parse(s->b, s->caplen, s->len, rte_cpu_to_be_16(FG_DEFAULT_FRAME_PORT), &p),
		     FG_PASS);
	cr_expect_eq(p.tenant_id, tenant);
	cr_expect_eq(p.device_id, device);
}

static void
file_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

static bool
file_is(const char *path, const char *text)
{
	char buf[256] = "";
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return strcmp(buf, text) == 0;
}

/* ---- the tests ------------------------------------------------------------------- */

TestSuite(capture, .fini = teardown, .timeout = 90);

Test(capture, saves_exactly_count_drops_of_the_asked_reason)
{
	struct frame f[40], owned[8];
	struct saved s[MAX_SAVED];
	char out[2048], path[160], args[512];
	size_t n = 0, k = 0, got;
	uint64_t t0;
	pid_t pid;
	int ret;

	capr_start(&R, false);
	snprintf(path, sizeof(path), "%s/not_owned.pcap", R.dir);
	snprintf(args, sizeof(args), "capture --reason not_owned --count 5 --out %s --timeout 20",
		 path);
	pid = fgctl_bg("capture", args);
	wait_armed(true);
	t0 = now_ns();
	/* Eight not_owned among frames that forward or drop for other
	 * reasons, claiming the same tenant or the same device ids. */
	for (uint32_t i = 0; i < 8; i++) {
		owned[i] = frame(7, 0xbad0 + i, 1, 0, i);
		f[n++] = frame(7, 0xa1, 1, 0, 100 + i);           /* forwarded */
		f[n++] = owned[i];                                /* not_owned */
		f[n++] = frame(99, 0xbad0 + i, 1, 0, 200 + i);    /* unknown_tenant */
		f[n++] = frame(7, 0xa1, 0, 0, 300 + i);           /* stale_epoch */
		f[n++] = frame(7, 0xbad0 + i, 1, 9999, 400 + i);  /* not_frame */
	}
	send_frames(f, n);
	ret = fgctl_wait(pid, "capture", out, sizeof(out));
	cr_assert_eq(ret, 0, "fgctl capture exited %d: %s", ret, out);
	cr_expect(strstr(out, "saved 5 not_owned drops to") != NULL, "%s", out);

	got = read_capture(path, s, MAX_SAVED);
	cr_assert_eq(got, 5, "%s holds %zu packets, not 5", path, got);
	for (k = 0; k < got; k++) {
		/* The first five not_owned drops, in the order they came. */
		expect_frame(&s[k], &owned[k], 7, 0xbad0 + k);
		cr_expect(s[k].ts_ns >= t0 - 1000000000u && s[k].ts_ns <= now_ns(),
			  "packet %zu has time %lu, outside the test's", k, (unsigned long)s[k].ts_ns);
	}
	/* The capture is over: the router is not armed, and the stats still
	 * count every drop. */
	wait_armed(false);
	{
		json_t *st = call(json_pack("{s:s}", "cmd", "stats"));

		cr_expect_geq(json_integer_value(json_object_get(json_object_get(st, "drops"),
								 "not_owned")), 8);
		json_decref(st);
	}
}

Test(capture, tenant_filter_and_replies_in_order)
{
	struct frame f[8], t9[3];
	json_t *res, *h;
	size_t n = 0, len;
	int fd;

	capr_start(&R, false);
	/* Raw protocol: the capture, then a health on the same connection,
	 * whose reply must come after the capture's. */
	fd = fg_ctl_connect(R.sock);
	cr_assert_geq(fd, 0);
	cr_assert_eq(fg_ctl_send(fd, json_pack("{s:s, s:s, s:i, s:i, s:i}", "cmd", "capture",
					       "reason", "not_owned", "count", 3, "tenant", 9,
					       "timeout", 20)), 0);
	wait_armed(true);
	cr_assert_eq(fg_ctl_send(fd, json_pack("{s:s}", "cmd", "health")), 0);
	for (uint32_t i = 0; i < 3; i++) {
		t9[i] = frame(9, 0x9bad0 + i, 1, 0, i);
		f[n++] = frame(7, 0xbad0 + i, 1, 0, i);   /* not_owned, tenant 7 */
		f[n++] = t9[i];                           /* not_owned, tenant 9 */
	}
	send_frames(f, n);
	res = fg_ctl_recv(fd);
	cr_assert_not_null(res);
	cr_assert(json_is_true(json_object_get(res, "ok")), "%s", json_dumps(res, 0));
	cr_expect_eq(json_integer_value(json_object_get(res, "saved")), 3);
	cr_expect_eq(json_integer_value(json_object_get(res, "tenant")), 9);
	cr_expect(json_is_false(json_object_get(res, "timed_out")));
	cr_assert_eq(json_array_size(json_object_get(res, "packets")), 3);
	for (size_t i = 0; i < 3; i++) {
		json_t *p = json_array_get(json_object_get(res, "packets"), i);
		const char *b64 = json_string_value(json_object_get(p, "data"));
		struct saved s = { .len = (uint32_t)json_integer_value(json_object_get(p, "len")) };

		cr_assert_not_null(b64);
		/* base64 back to bytes, with the router's own library. */
		cr_assert_eq(sodium_base642bin(s.b, sizeof(s.b), b64, strlen(b64), NULL, &len, NULL,
					       sodium_base64_VARIANT_ORIGINAL), 0);
		s.caplen = (uint32_t)len;
		expect_frame(&s, &t9[i], 9, 0x9bad0 + i);
	}
	json_decref(res);
	h = fg_ctl_recv(fd);
	cr_assert_not_null(h);
	cr_expect_not_null(json_object_get(h, "uptime_seconds"), "the second reply is not health's");
	cr_expect_null(json_object_get(h, "capture"), "health, sent after the capture, still sees it armed");
	json_decref(h);
	close(fd);
}

Test(capture, a_timeout_says_how_many_were_saved)
{
	struct frame f[6];
	struct saved s[MAX_SAVED];
	char out[2048], path[160], args[512];
	size_t n = 0;
	pid_t pid;
	int ret;

	capr_start(&R, false);
	snprintf(path, sizeof(path), "%s/few.pcap", R.dir);
	snprintf(args, sizeof(args), "capture --reason not_owned --count 5 --timeout 2 --out %s",
		 path);
	pid = fgctl_bg("few", args);
	wait_armed(true);
	for (uint32_t i = 0; i < 3; i++) {
		f[n++] = frame(7, 0xbad0 + i, 1, 0, i);     /* not_owned */
		f[n++] = frame(7, 0xa1, 0, 0, i);           /* stale_epoch */
	}
	send_frames(f, n);
	ret = fgctl_wait(pid, "few", out, sizeof(out));
	cr_expect_eq(ret, 1, "fgctl exited %d: %s", ret, out);
	cr_expect(strstr(out, "saved 3 of 5 not_owned drops to") != NULL, "%s", out);
	cr_expect(strstr(out, "timeout") != NULL, "%s", out);
	cr_assert_eq(read_capture(path, s, MAX_SAVED), 3);
	for (size_t k = 0; k < 3; k++)
		expect_frame(&s[k], &f[2 * k], 7, 0xbad0 + k);
	wait_armed(false);
}

/* Requests the router must refuse, each with the words its error names. */
static const struct {
	const char *req;
	const char *code, *says;
} bad_requests[] = {
	{ "{\"cmd\":\"capture\",\"reason\":\"not_owned_\",\"count\":5}", "EINVAL", "\"not_owned_\" is not a drop reason; one of: not_ip" },
	{ "{\"cmd\":\"capture\",\"reason\":\"pass\",\"count\":5}", "EINVAL", "\"pass\" is not a drop reason" },
	{ "{\"cmd\":\"capture\",\"reason\":7,\"count\":5}", "EINVAL", "\"reason\"" },
	{ "{\"cmd\":\"capture\",\"reason\":\"not_owned\"}", "EINVAL", "\"count\" is required" },
	{ "{\"cmd\":\"capture\",\"reason\":\"not_owned\",\"count\":0}", "EINVAL", "\"count\" must be a number from 1 to 1024" },
	{ "{\"cmd\":\"capture\",\"reason\":\"not_owned\",\"count\":1025}", "EINVAL", "\"count\" must be a number from 1 to 1024" },
	{ "{\"cmd\":\"capture\",\"reason\":\"not_owned\",\"count\":\"5\"}", "EINVAL", "\"count\"" },
	{ "{\"cmd\":\"capture\",\"reason\":\"not_owned\",\"count\":5,\"tenant\":0}", "EINVAL", "\"tenant\"" },
	{ "{\"cmd\":\"capture\",\"reason\":\"not_owned\",\"count\":5,\"timeout\":0}", "EINVAL", "\"timeout\" must be a number from 1 to 3600" },
	{ "{\"cmd\":\"capture\",\"reason\":\"not_owned\",\"count\":5,\"timeout\":3601}", "EINVAL", "\"timeout\"" },
	{ "{\"cmd\":\"capture\",\"reason\":\"bad_l3\",\"count\":5,\"tenant\":7}", "EINVAL", "reason bad_l3 drops a packet before its tenant is read" },
};

/* fgctl command lines it must refuse before asking the router. */
static const struct {
	const char *args;
	int exit;
	const char *says;
} bad_args[] = {
	{ "capture --reason bogus --count 5 --out %s/x.pcap", 2, "--reason \"bogus\" is not a drop reason; one of: not_ip bad_l3" },
	{ "capture --reason not_owned --count 0 --out %s/x.pcap", 2, "--count \"0\" is not a number from 1 to 1024" },
	{ "capture --reason not_owned --count 1025 --out %s/x.pcap", 2, "--count \"1025\" is not a number from 1 to 1024" },
	{ "capture --reason not_owned --count 5", 2, "missing --out" },
	{ "capture --reason not_owned --count 5 --timeout 0 --out %s/x.pcap", 2, "--timeout \"0\"" },
	{ "capture --reason not_owned --count 5 --out %s/no/such/dir/x.pcap", 1, "cannot write %s/no/such/dir/x.pcap: No such file or directory" },
};

Test(capture, bad_requests_are_refused_and_change_nothing)
{
	char out[4096], args[512], says[512], keep[160];
	json_t *res;
	pid_t pid;
	int fd, ret;

	capr_start(&R, false);
	for (size_t i = 0; i < sizeof(bad_requests) / sizeof(bad_requests[0]); i++) {
		res = call(json_loads(bad_requests[i].req, 0, NULL));
		cr_expect(json_is_false(json_object_get(res, "ok")), "%s was accepted", bad_requests[i].req);
		cr_expect_str_eq(json_string_value(json_object_get(res, "code")), bad_requests[i].code,
				 "%s", bad_requests[i].req);
		cr_expect(strstr(json_string_value(json_object_get(res, "error")) ?: "",
				 bad_requests[i].says) != NULL, "%s: \"%s\" does not say \"%s\"",
			  bad_requests[i].req, json_string_value(json_object_get(res, "error")),
			  bad_requests[i].says);
		json_decref(res);
		json_decref(armed());
		cr_expect_null(armed(), "%s left the capture armed", bad_requests[i].req);
	}
	for (size_t i = 0; i < sizeof(bad_args) / sizeof(bad_args[0]); i++) {
		snprintf(args, sizeof(args), bad_args[i].args, R.dir);
		snprintf(says, sizeof(says), bad_args[i].says, R.dir);
		ret = fgctl_run(args, out, sizeof(out));
		cr_expect_eq(ret, bad_args[i].exit, "%s: exit %d: %s", args, ret, out);
		cr_expect(strstr(out, says) != NULL, "%s: \"%s\" does not say \"%s\"", args, out, says);
		cr_expect_null(armed(), "%s armed a capture", args);
	}

	/* Packets carry tenants' video: the read group (nogroup here) may
	 * read state, and may not capture. */
	cr_assert_eq(chmod(R.sock, 0666), 0);
	cr_assert_eq(chmod(R.dir, 0755), 0);
	pid = fork();
	if (pid == 0) {
		json_t *h, *c;
		const char *code;

		if (setgid(65534) != 0 || setuid(65534) != 0)
			_exit(10);
		h = fg_ctl_once(R.sock, json_pack("{s:s}", "cmd", "health"));
		if (h == NULL || !json_is_true(json_object_get(h, "ok")))
			_exit(11);
		c = fg_ctl_once(R.sock, json_pack("{s:s, s:s, s:i}", "cmd", "capture",
						  "reason", "not_owned", "count", 1));
		code = c ? json_string_value(json_object_get(c, "code")) : NULL;
		if (code == NULL || strcmp(code, "EPERM") != 0)
			_exit(12);
		_exit(strstr(json_string_value(json_object_get(c, "error")),
			     "capture: uid 65534 may not change state") ? 0 : 13);
	}
	cr_assert_eq(waitpid(pid, &ret, 0), pid);
	cr_expect(WIFEXITED(ret) && WEXITSTATUS(ret) == 0, "the read group's peer: exit %d",
		  WEXITSTATUS(ret));
	cr_expect_null(armed(), "the read group armed a capture");

	/* One capture at a time: a second is refused with EBUSY, and its
	 * --out, an existing file, is left as it was. */
	fd = fg_ctl_connect(R.sock);
	cr_assert_geq(fd, 0);
	cr_assert_eq(fg_ctl_send(fd, json_pack("{s:s, s:s, s:i}", "cmd", "capture",
					       "reason", "auth_failed", "count", 5)), 0);
	wait_armed(true);
	snprintf(keep, sizeof(keep), "%s/keep.pcap", R.dir);
	file_text(keep, "an earlier capture\n");
	snprintf(args, sizeof(args), "capture --reason not_owned --count 1 --timeout 1 --out %s", keep);
	ret = fgctl_run(args, out, sizeof(out));
	cr_expect_eq(ret, 1, "exit %d: %s", ret, out);
	cr_expect(strstr(out, "a capture is running already (auth_failed, 0 of 5 saved)") != NULL,
		  "%s", out);
	cr_expect(file_is(keep, "an earlier capture\n"), "the refused capture changed %s", keep);
	res = call(json_pack("{s:s, s:s, s:i}", "cmd", "capture", "reason", "not_owned", "count", 1));
	cr_expect_str_eq(json_string_value(json_object_get(res, "code")), "EBUSY");
	json_decref(res);
	{
		json_t *c = armed();

		cr_expect_str_eq(json_string_value(json_object_get(c, "reason")), "auth_failed",
				 "the refused capture replaced the running one");
		json_decref(c);
	}

	/* The client goes away: the capture is disarmed, and another may run. */
	close(fd);
	wait_armed(false);
	snprintf(args, sizeof(args), "capture --reason not_owned --count 1 --timeout 20 --out %s", keep);
	pid = fgctl_bg("after", args);
	wait_armed(true);
	{
		struct frame f = frame(7, 0xbad0, 1, 0, 1);
		struct saved s[4];

		send_frames(&f, 1);
		ret = fgctl_wait(pid, "after", out, sizeof(out));
		cr_expect_eq(ret, 0, "exit %d: %s", ret, out);
		cr_assert_eq(read_capture(keep, s, 4), 1);
		expect_frame(&s[0], &f, 7, 0xbad0);
	}
	/* An interrupted fgctl cancels its capture and leaves no file. */
	snprintf(args, sizeof(args), "capture --reason not_owned --count 1 --out %s/gone.pcap", R.dir);
	pid = fgctl_bg("gone", args);
	wait_armed(true);
	kill(pid, SIGINT);
	ret = fgctl_wait(pid, "gone", out, sizeof(out));
	cr_expect_eq(ret, 128, "fgctl was not ended by SIGINT (%d)", ret);
	wait_armed(false);
	snprintf(args, sizeof(args), "ls %s | grep gone.pcap", R.dir);
	cr_expect_eq(fg_test_run(args, out, sizeof(out)), 1, "a file of the interrupted capture was left: %s", out);
}

/* Hugepages dpdk-dumpcap can share with the router (it cannot attach to a
 * router without them: it starts EAL with hugepages, always). */
static bool
hugepages_free(unsigned long need_mb, char *why, size_t len)
{
	unsigned long free_pages = 0, size_kb = 0;
	char line[256];
	bool mounted = false;
	FILE *f = fopen("/proc/meminfo", "r");

	while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
		sscanf(line, "HugePages_Free: %lu", &free_pages);
		sscanf(line, "Hugepagesize: %lu kB", &size_kb);
	}
	if (f != NULL)
		fclose(f);
	f = fopen("/proc/mounts", "r");
	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, " hugetlbfs ") != NULL && !mounted)
			mounted = sscanf(line, "%*s %127s", huge_dir) == 1;
	if (f != NULL)
		fclose(f);
	snprintf(why, len, "%lu MiB of hugepages free, hugetlbfs %smounted; %lu MiB needed",
		 free_pages * size_kb / 1024, mounted ? "" : "not ", need_mb);
	return mounted && free_pages * size_kb / 1024 >= need_mb;
}

Test(capture, dpdk_dumpcap_captures_a_running_routers_port, .timeout = 120)
{
	struct frame f[200];
	struct saved s[MAX_SAVED];
	char why[160], cmd[1024], out[4096], path[160];
	size_t n, sent = 0;
	pid_t dump;
	int st = 0;

	if (access(DUMPCAP, X_OK) != 0)
		cr_skip_test("%s is not installed (Debian package dpdk)", DUMPCAP);
	if (!hugepages_free(160, why, sizeof(why)))
		cr_skip_test("dpdk-dumpcap needs a router on hugepages: %s", why);
	capr_start(&R, true);
	snprintf(path, sizeof(path), "%s/dump.pcapng", R.dir);
	/* Frames only: the copies the router sends back out of the same port
	 * (to port 6000) and the kernel's own packets are filtered out. */
	snprintf(cmd, sizeof(cmd), "exec %s --file-prefix=%s -i 0 -f 'udp dst port %u' -c 6 -q -w %s"
		 " > %s/dumpcap.log 2>&1", DUMPCAP, R.prefix, FG_DEFAULT_FRAME_PORT, path, R.dir);
	dump = fork();
	cr_assert_geq(dump, 0);
	if (dump == 0) {
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	/* dumpcap says nothing when it is attached: send numbered frames until
	 * it has its six. */
	while (sent < 200 && waitpid(dump, &st, WNOHANG) == 0) {
		f[sent] = frame(7, 0xa1, 1, 0, (uint32_t)sent);
		send_frames(&f[sent], 1);
		sent++;
		usleep(50000);
	}
	if (waitpid(dump, &st, WNOHANG) == 0) {
		kill(dump, SIGINT);
		waitpid(dump, &st, 0);
	}
	snprintf(cmd, sizeof(cmd), "cat %s/dumpcap.log", R.dir);
	fg_test_run(cmd, out, sizeof(out));
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "dpdk-dumpcap failed: %s", out);
	n = read_capture(path, s, MAX_SAVED);
	cr_assert_eq(n, 6, "%s holds %zu packets: %s", path, n, out);
	/* Six frames sent one after the other, each exactly as sent. */
	{
		struct fg_parsed p;
		uint32_t first;

		cr_assert_eq(fg_parse(s[0].b, s[0].caplen, s[0].len,
				      rte_cpu_to_be_16(FG_DEFAULT_FRAME_PORT), &p), FG_PASS);
		first = rte_be_to_cpu_32(((const struct fg_frame_hdr *)p.hdr)->frame_seq);
		cr_assert_lt(first + 5, sent);
		for (size_t k = 0; k < n; k++)
			expect_frame(&s[k], &f[first + k], 7, 0xa1);
	}
}
