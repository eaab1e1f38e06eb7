/*
 * Control-plane test helpers (see ctl_client.h).
 */
#include <errno.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl_client.h"

void
fg_rp_init(struct fg_router_proc *rp)
{
	fg_rp_init_with(rp, NULL);
}

void
fg_rp_init_with(struct fg_router_proc *rp, const char *extra_json)
{
	char path[160];
	FILE *f;

	memset(rp, 0, sizeof(*rp));
	snprintf(rp->dir, sizeof(rp->dir), "/tmp/fg_ctl_test.XXXXXX");
	if (mkdtemp(rp->dir) == NULL)
		abort();
	snprintf(rp->sock, sizeof(rp->sock), "%s/ctl.sock", rp->dir);
	snprintf(path, sizeof(path), "%s/config.json", rp->dir);
	f = fopen(path, "w");
	fprintf(f,
		"{%s\"control_socket\": \"%s\", \"journal_dir\": \"%s/journal\",\n"
		" \"tables\": {\"max_tenants\": 4096, \"max_sinks\": 16384, \"max_devices\": 1100000},\n"
		" \"mbufs\": 2047,\n"
		" \"ports\": [{\"port\": 0, \"role\": \"both\", \"next_hop_mac\": \"02:00:00:00:00:01\",\n"
		"             \"ipv4\": \"192.0.2.1\", \"ipv6\": \"2001:db8::1\"}]}\n",
		extra_json ? extra_json : "", rp->sock, rp->dir);
	fclose(f);
}

pid_t
fg_router_spawn(const char *cmd, bool *serving)
{
	pid_t echo;

	return fg_router_spawn_log(cmd, serving, NULL, &echo);
}

/* A line of the router's stderr: echoed, and kept in log when there is one. */
static void
fg_router_line(const char *line, FILE *log)
{
	fprintf(stderr, "router: %s", line);
	if (log != NULL) {
		fputs(line, log);
		fflush(log);
	}
}

pid_t
fg_router_spawn_log(const char *cmd, bool *serving, const char *log_path, pid_t *echo)
{
	int out[2];
	char line[512];
	FILE *rf, *log = NULL;
	pid_t pid;

	*serving = false;
	*echo = -1;
	if (log_path != NULL && (log = fopen(log_path, "a")) == NULL)
		return -1;
	if (pipe(out) != 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		/* A test that dies (a timeout) takes its router with it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(out[1], 2);
		close(out[0]);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(out[1]);
	rf = fdopen(out[0], "r");
	while (fgets(line, sizeof(line), rf) != NULL) {
		if (strstr(line, "framegate: forwarding") != NULL) {
			*serving = true;
			if (log != NULL)
				fg_router_line(line, log);
			break;
		}
		if (strstr(line, "main lcore forwards") == NULL)
			fg_router_line(line, log);
	}
	/* Keep reading its stderr in the background so it never blocks. */
	*echo = fork();
	if (*echo == 0) {
		while (fgets(line, sizeof(line), rf) != NULL)
			fg_router_line(line, log);
		_exit(0);
	}
	fclose(rf);
	if (log != NULL)
		fclose(log);
	return pid;
}

bool
fg_rp_start(struct fg_router_proc *rp, const char *extra)
{
	char cmd[4096];
	bool serving;

	rp->starts++;
	snprintf(cmd, sizeof(cmd),
		 "exec %s %s --no-huge -m 1024 --no-pci --no-shconf --file-prefix=fgctl%d_%u"
		 " --no-telemetry -l 0 --log-level=*:error"
		 " --vdev net_pcap0,rx_pcap=%s/vectors/packets.pcap,tx_pcap=/dev/null"
		 " -- --config %s/config.json %s > /dev/null",
		 rp->wrap, FG_FRAMEGATE, (int)getpid(), rp->starts, FG_TEST_DIR, rp->dir,
		 extra ? extra : "");
	rp->pid = fg_router_spawn_log(cmd, &serving, rp->log[0] != '\0' ? rp->log : NULL, &rp->echo);
	return rp->pid > 0 && serving;
}

void
fg_rp_kill(struct fg_router_proc *rp, int sig)
{
	char cmd[128];

	if (rp->pid <= 0)
		return;
	kill(rp->pid, sig);
	waitpid(rp->pid, NULL, 0);
	rp->pid = 0;
	if (rp->echo > 0)
		waitpid(rp->echo, NULL, 0);
	rp->echo = 0;
	/* A killed EAL leaves its runtime folder behind. */
	snprintf(cmd, sizeof(cmd), "rm -rf /var/run/dpdk/fgctl%d_%u", (int)getpid(), rp->starts);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", cmd);
}

void
fg_rp_fini(struct fg_router_proc *rp)
{
	char cmd[128];

	fg_rp_kill(rp, SIGTERM);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", rp->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", rp->dir);
}

int
fg_ctl_connect(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static int
fg_full(int fd, void *buf, size_t len, bool wr)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = wr ? write(fd, (char *)buf + off, len - off)
			       : read(fd, (char *)buf + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

int
fg_ctl_send(int fd, json_t *req)
{
	char *body = json_dumps(req, JSON_COMPACT);
	uint32_t len = (uint32_t)strlen(body);
	uint8_t hdr[4] = { (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
			   (uint8_t)len };
	int ret = fg_full(fd, hdr, 4, true) || fg_full(fd, body, len, true) ? -1 : 0;

	json_decref(req);
	free(body);
	return ret;
}

/* One frame as the router sent it, or NULL. */
json_t *
fg_ctl_recv_frame(int fd)
{
	uint8_t hdr[4];
	json_t *res = NULL;
	uint32_t len;
	char *rb;

	if (fg_full(fd, hdr, 4, false))
		return NULL;
	len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];
	rb = malloc(len ? len : 1);
	if (rb != NULL && fg_full(fd, rb, len, false) == 0)
		res = json_loadb(rb, len, 0, NULL);
	free(rb);
	return res;
}

/* A response; a dump's frames (include/framegate/ctl.h) come back as one
 * object whose "lines" is the array of its op objects, the closing frame's
 * "ops" and "bytes" checked against what came. */
json_t *
fg_ctl_recv(int fd)
{
	json_t *res = fg_ctl_recv_frame(fd), *lines = NULL;
	size_t bytes = 0;

	while (json_is_true(json_object_get(res, "more"))) {
		const char *t = json_string_value(json_object_get(res, "text"));

		if (lines == NULL)
			lines = json_array();
		for (const char *p = t; p != NULL && *p != '\0';) {
			const char *nl = strchr(p, '\n');
			size_t n = nl ? (size_t)(nl - p) : strlen(p);

			json_array_append_new(lines, json_loadb(p, n, 0, NULL));
			bytes += n + 1;
			p += n + (nl != NULL);
		}
		json_decref(res);
		res = fg_ctl_recv_frame(fd);
	}
	if (json_is_true(json_object_get(res, "ok")) && json_object_get(res, "ops") != NULL &&
	    json_object_get(res, "bytes") != NULL) {
		if (lines == NULL)
			lines = json_array();
		if ((size_t)json_integer_value(json_object_get(res, "ops")) != json_array_size(lines) ||
		    (size_t)json_integer_value(json_object_get(res, "bytes")) != bytes) {
			fprintf(stderr, "dump: %zu lines and %zu bytes came, the router says %" JSON_INTEGER_FORMAT " and %" JSON_INTEGER_FORMAT "\n",
				json_array_size(lines), bytes,
				json_integer_value(json_object_get(res, "ops")),
				json_integer_value(json_object_get(res, "bytes")));
			json_decref(lines);
			json_decref(res);
			return NULL;
		}
		json_object_set_new(res, "lines", lines);
		lines = NULL;
	}
	json_decref(lines);
	return res;
}

json_t *
fg_ctl_call(int fd, json_t *req)
{
	return fg_ctl_send(fd, req) < 0 ? NULL : fg_ctl_recv(fd);
}

json_t *
fg_ctl_once(const char *path, json_t *req)
{
	int fd = fg_ctl_connect(path);
	json_t *res = NULL;

	if (fd >= 0) {
		res = fg_ctl_call(fd, req);
		close(fd);
	} else {
		json_decref(req);
	}
	return res;
}
