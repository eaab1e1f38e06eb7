/*
 * Real kernel traffic through the router. Two network namespaces, each tied
 * to the root namespace by a veth pair:
 *
 *   cam ns [vc] 198.18.1.2  <->  rc [framegate port 0, ingress]
 *   view ns [vv] 198.18.2.2 <->  rv [framegate port 1, egress]
 *
 * framegate runs in the root namespace on net_af_packet over rc and rv. A
 * camera process in the cam namespace sends frames of two tenants (and
 * spoofed ones) with an ordinary UDP socket; a viewer process in the view
 * namespace receives on two ordinary UDP sockets, one per tenant's sink. Each
 * viewer socket must get exactly its own tenant's frames. The namespaces are
 * removed afterwards, also when the test fails.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "ctl_client.h"
#include "framebuild.h"
#include "netns_lab.h"

#define N_PER_TENANT 300
#define N_SPOOFED 100

static struct fg_lab lab;
static char dir[64];
static pid_t router = -1;

static void
cleanup(void)
{
	if (router > 0) {
		kill(router, SIGKILL);
		waitpid(router, NULL, 0);
		router = -1;
	}
	fg_lab_remove(&lab);
	fg_lab_sh("rm -rf %s", dir);
}

/* A failed set-up step removes what was made: Criterion does not run the
 * suite's fini after a failed init. */
#define SETUP_OK(cond)                                                      \
	do {                                                                \
		if (!(cond)) {                                              \
			cleanup();                                          \
			cr_assert_fail("network set-up failed: %s", #cond); \
		}                                                           \
	} while (0)

static void
setup(void)
{
	char mac_rc[32], mac_vv[32];

	fg_lab_name(&lab, "fg");
	snprintf(dir, sizeof(dir), "/tmp/fg_netns.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	if (geteuid() != 0)
		cr_skip_test("needs root for network namespaces");

	SETUP_OK(fg_lab_links(&lab) == 0);
	fg_lab_read_mac(NULL, lab.rc, mac_rc);
	/* The router's end has no address: the camera host knows its MAC. */
	SETUP_OK(fg_lab_sh("ip -n %s neigh replace 198.18.1.1 lladdr %s dev %s nud permanent",
			   lab.cam_ns, mac_rc, lab.vc) == 0);
	fg_lab_read_mac(lab.view_ns, lab.vv, mac_vv);

	/* Mappings: tenant 7's camera 0xa1 to sink 6000, tenant 9's 0xb1 to
	 * sink 6001, both on the viewer host. */
	FILE *f;
	char path[128];

	snprintf(path, sizeof(path), "%s/mappings.jsonl", dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f,
		"{\"op\":\"tenant\",\"tenant\":7,\"name\":\"acme\"}\n"
		"{\"op\":\"tenant\",\"tenant\":9,\"name\":\"globex\"}\n"
		"{\"op\":\"sink\",\"sink\":70,\"tenant\":7,\"addr\":\"198.18.2.2\",\"port\":6000,\"egress\":1}\n"
		"{\"op\":\"sink\",\"sink\":90,\"tenant\":9,\"addr\":\"198.18.2.2\",\"port\":6001,\"egress\":1}\n"
		"{\"op\":\"device\",\"tenant\":7,\"device\":\"0xa1\",\"epoch\":1,\"sinks\":[70]}\n"
		"{\"op\":\"device\",\"tenant\":9,\"device\":\"0xb1\",\"epoch\":1,\"sinks\":[90]}\n");
	fclose(f);
	/* config.json, and the same with idle_sleep_us (config_idle.json). */
	for (int idle = 0; idle < 2; idle++) {
		snprintf(path, sizeof(path), "%s/config%s.json", dir, idle ? "_idle" : "");
		f = fopen(path, "w");
		cr_assert_not_null(f);
		fprintf(f,
			"{\"tables\": {\"max_tenants\": 64, \"max_sinks\": 64, \"max_devices\": 1024},\n"
			" \"journal_dir\": \"%s/journal\", \"control_socket\": \"%s/ctl.sock\",\n"
			"%s"
			" \"ports\": [\n"
			"  {\"port\": 0, \"role\": \"ingress\"},\n"
			"  {\"port\": 1, \"role\": \"egress\", \"next_hop_mac\": \"%s\", \"ipv4\": \"198.18.2.1\"}\n"
			" ]}\n", dir, dir, idle ? " \"idle_sleep_us\": 1000,\n" : "", mac_vv);
		fclose(f);
	}
}

TestSuite(netns, .init = setup, .fini = cleanup, .timeout = 120);

/* Shared between the test, the camera and the viewer. */
struct shared {
	uint32_t cam_seq;             /* the seq the camera is about to send */
	int stop;                     /* the camera stops */
	struct fg_lab_view view;      /* what the viewer counted */
	uint8_t seen[2][FG_LAB_SEQ_MAX];   /* seqs the viewer got, per tenant socket */
};

/* The camera's socket, in the camera namespace, aimed at the router. */
static int
camera_socket(struct sockaddr_in *dst)
{
	fg_lab_enter_ns(lab.cam_ns);
	*dst = (struct sockaddr_in){ .sin_family = AF_INET,
				     .sin_port = htons(FG_DEFAULT_FRAME_PORT) };
	inet_pton(AF_INET, "198.18.1.1", &dst->sin_addr);
	return socket(AF_INET, SOCK_DGRAM, 0);
}

/* Camera: the UDP payload (frame header and payload) of each frame. */
static void
camera(void)
{
	struct sockaddr_in dst;
	int s = camera_socket(&dst);

	for (unsigned int i = 0; i < 2 * N_PER_TENANT + N_SPOOFED; i++) {
		/* 7/0xa1, 9/0xb1, and 7 claiming 9's camera 0xb1. */
		unsigned int kind = i < 2 * N_PER_TENANT ? i % 2 : 2;

		fg_lab_send_frame(s, &dst, kind == 1 ? 9 : 7, kind == 0 ? 0xa1 : 0xb1, i, 200, NULL, false);
		usleep(200);
	}
	_exit(0);
}

/* The camera sends a frame every 200 us through a veth pair; each viewer
 * must get exactly its tenant's frames, all of them. config: the router's
 * configuration file in dir. */
static void
viewers_get_their_frames(const char *config)
{
	struct shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	int ready[2], out[2];
	char cmd[2048], line[512], eal[512];
	pid_t vpid, cpid;
	FILE *rf;
	int st, started = 0;

	snprintf(eal, sizeof(eal),
		 "--no-huge -m 512 --no-pci --no-shconf --file-prefix=fgns%d --no-telemetry -l 0"
		 " --log-level=*:error --vdev net_af_packet0,iface=%s,framecnt=4096 --vdev net_af_packet1,iface=%s,framecnt=4096",
		 (int)getpid(), lab.rc, lab.rv);
	snprintf(cmd, sizeof(cmd), "%s --config %s/%s --mappings %s/mappings.jsonl"
		 " --stats %s/stats.json --duration 60", FG_FRAMEGATE, dir, config, dir, dir);

	/* The router, its stderr and stdout on a pipe. */
	cr_assert_eq(pipe(out), 0);
	router = fork();
	cr_assert_geq(router, 0);
	if (router == 0) {
		char full[4096];

		dup2(out[1], 1);
		dup2(out[1], 2);
		close(out[0]);
		snprintf(full, sizeof(full), "exec %s %s -- %s",
			 FG_FRAMEGATE, eal, strchr(cmd, ' ') + 1);
		execl("/bin/sh", "sh", "-c", full, (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	rf = fdopen(out[0], "r");
	while (fgets(line, sizeof(line), rf) != NULL) {
		if (strstr(line, "framegate: forwarding") != NULL) {
			started = 1;
			break;
		}
		fprintf(stderr, "router: %s", line);
	}
	cr_assert(started, "the router did not start");

	cr_assert(sh != MAP_FAILED);
	cr_assert_eq(pipe(ready), 0);
	vpid = fork();
	if (vpid == 0)
		fg_lab_viewer(lab.view_ns, &sh->view, ready[1]);
	cr_assert_eq(read(ready[0], line, 1), 1, "the viewer did not start");
	cpid = fork();
	if (cpid == 0)
		camera();
	waitpid(cpid, &st, 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "camera failed: %d", st);
	waitpid(vpid, &st, 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "viewer failed: %d", st);
	const unsigned int *got = sh->view.got, *wrong = sh->view.wrong;

	kill(router, SIGTERM);
	while (fgets(line, sizeof(line), rf) != NULL)
		fprintf(stderr, "router: %s", line);
	waitpid(router, &st, 0);
	router = -1;
	fclose(rf);

	fprintf(stderr, "netns: viewer of tenant 7 got %u (wrong %u), of tenant 9 got %u (wrong %u)\n",
		got[0], wrong[0], got[1], wrong[1]);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "router exit %d", st);
	cr_expect_eq(wrong[0], 0, "tenant 9's frames reached tenant 7's viewer");
	cr_expect_eq(wrong[1], 0, "tenant 7's frames reached tenant 9's viewer");
	cr_expect_eq(got[0], N_PER_TENANT, "tenant 7's viewer got %u of %u",
		     got[0], N_PER_TENANT);
	cr_expect_eq(got[1], N_PER_TENANT, "tenant 9's viewer got %u of %u",
		     got[1], N_PER_TENANT);

	/* The router's own count agrees: the spoofed frames were not_owned. */
	char stats[160], buf[4096];
	FILE *sf;
	size_t n;

	snprintf(stats, sizeof(stats), "%s/stats.json", dir);
	sf = fopen(stats, "r");
	cr_assert_not_null(sf, "no stats written");
	n = fread(buf, 1, sizeof(buf) - 1, sf);
	buf[n] = '\0';
	fclose(sf);
	snprintf(line, sizeof(line), "\"not_owned\": %d", N_SPOOFED);
	cr_expect(strstr(buf, line) != NULL, "stats: %s", buf);
	snprintf(line, sizeof(line), "\"forwarded_packets\": %d", 2 * N_PER_TENANT);
	cr_expect(strstr(buf, line) != NULL, "stats: %s", buf);
	munmap(sh, sizeof(*sh));
}

Test(netns, each_viewer_gets_exactly_its_tenants_frames)
{
	viewers_get_their_frames("config.json");
}

/* idle_sleep_us 1000: the router sleeps a millisecond whenever a pass got
 * nothing, so the frames that come 200 us apart wait in the port's ring
 * and are taken when it wakes: still every one, and only to its tenant. */
Test(netns, a_router_that_sleeps_when_idle_still_forwards_every_frame)
{
	viewers_get_their_frames("config_idle.json");
}

/* ---- ack means enforced ------------------------------------------------------ */

static void
stream_camera(struct shared *sh)
{
	struct sockaddr_in dst;
	int s = camera_socket(&dst);

	for (uint32_t seq = 0; seq < FG_LAB_SEQ_MAX && !__atomic_load_n(&sh->stop, __ATOMIC_ACQUIRE); seq++) {
		__atomic_store_n(&sh->cam_seq, seq, __ATOMIC_RELEASE);
		fg_lab_send_frame(s, &dst, 7, 0xa1, seq, 64, NULL, false);
		fg_lab_send_frame(s, &dst, 9, 0xb1, seq, 64, NULL, false);
		usleep(200);
	}
	_exit(0);
}

/* With frames flowing, `device del` returns; afterwards not one frame of
 * that device leaves the router. Frames carry an increasing frame_seq: those
 * sent after the ack (seq above what the camera had reached when the ack came)
 * must never reach the viewer, while the other tenant's keep flowing. */
Test(netns, after_device_del_returns_no_frame_of_it_is_forwarded)
{
	struct shared *sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	char cmd[4096], line[512], sock[128];
	int out[2], ready[2], st, started = 0;
	pid_t vpid, cpid;
	uint32_t cut;
	FILE *rf;

	cr_assert(sh != MAP_FAILED);
	sh->view.seen = sh->seen;
	cr_assert_eq(pipe(out), 0);
	router = fork();
	if (router == 0) {
		dup2(out[1], 2);
		close(out[0]);
		snprintf(cmd, sizeof(cmd),
			 "exec %s --no-huge -m 512 --no-pci --no-shconf --file-prefix=fgnsa%d --no-telemetry -l 0"
			 " --log-level=*:error --vdev net_af_packet0,iface=%s,framecnt=4096 --vdev net_af_packet1,iface=%s,framecnt=4096"
			 " -- --config %s/config.json --mappings %s/mappings.jsonl --duration 60 >/dev/null",
			 FG_FRAMEGATE, (int)getppid(), lab.rc, lab.rv, dir, dir);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	rf = fdopen(out[0], "r");
	while (fgets(line, sizeof(line), rf) != NULL)
		if (strstr(line, "framegate: forwarding") != NULL) {
			started = 1;
			break;
		}
	cr_assert(started, "the router did not start");

	cr_assert_eq(pipe(ready), 0);
	vpid = fork();
	if (vpid == 0)
		fg_lab_viewer(lab.view_ns, &sh->view, ready[1]);
	cr_assert_eq(read(ready[0], line, 1), 1);
	cpid = fork();
	if (cpid == 0)
		stream_camera(sh);
	usleep(500000);

	snprintf(sock, sizeof(sock), "%s/ctl.sock", dir);
	json_t *r = fg_ctl_once(sock, json_pack("{s:s, s:{s:s, s:i, s:s}}", "cmd", "apply", "op",
						"op", "del_device", "tenant", 7, "device", "0xa1"));

	/* Everything from here on was sent after the ack. */
	cut = __atomic_load_n(&sh->cam_seq, __ATOMIC_ACQUIRE) + 1;
	cr_assert_not_null(r, "no answer to device del");
	cr_assert(json_is_true(json_object_get(r, "ok")), "%s",
		  json_string_value(json_object_get(r, "error")));
	json_decref(r);
	usleep(300000);
	__atomic_store_n(&sh->stop, 1, __ATOMIC_RELEASE);
	waitpid(cpid, &st, 0);
	waitpid(vpid, &st, 0);
	kill(router, SIGTERM);
	waitpid(router, NULL, 0);
	router = -1;
	fclose(rf);

	unsigned int before7 = 0, after7 = 0, after9 = 0;
	uint32_t last = __atomic_load_n(&sh->cam_seq, __ATOMIC_ACQUIRE);

	for (uint32_t s = 0; s <= last && s < FG_LAB_SEQ_MAX; s++) {
		if (s < cut)
			before7 += sh->seen[0][s];
		else
			after7 += sh->seen[0][s];
		after9 += s >= cut && sh->seen[1][s];
	}
	fprintf(stderr, "ack enforced: device del acknowledged at seq %u; tenant 7 frames received before %u, after %u;"
		" tenant 9 frames after %u (camera reached seq %u)\n", cut, before7, after7, after9, last);
	cr_expect_eq(after7, 0, "%u frames of the deleted device were forwarded after the ack", after7);
	cr_expect_gt(before7, 100, "too few frames before the delete to mean anything");
	cr_expect_gt(after9, 100, "the other tenant's frames stopped too");
	munmap(sh, sizeof(*sh));
}
