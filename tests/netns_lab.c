/*
 * The namespace lab's shared parts (see netns_lab.h).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "framebuild.h"
#include "netns_lab.h"

int
fg_lab_sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

void
fg_lab_name(struct fg_lab *lab, const char *tag)
{
	int pid = (int)getpid();

	snprintf(lab->cam_ns, sizeof(lab->cam_ns), "%scam%d", tag, pid);
	snprintf(lab->view_ns, sizeof(lab->view_ns), "%sview%d", tag, pid);
	snprintf(lab->vc, sizeof(lab->vc), "%svc%d", tag, pid);
	snprintf(lab->rc, sizeof(lab->rc), "%src%d", tag, pid);
	snprintf(lab->vv, sizeof(lab->vv), "%svv%d", tag, pid);
	snprintf(lab->rv, sizeof(lab->rv), "%srv%d", tag, pid);
}

int
fg_lab_links(const struct fg_lab *l)
{
	if (fg_lab_sh("ip netns add %s && ip netns add %s", l->cam_ns, l->view_ns) != 0 ||
	    fg_lab_sh("ip link add %s type veth peer name %s netns %s", l->rc, l->vc, l->cam_ns) != 0 ||
	    fg_lab_sh("ip link add %s type veth peer name %s netns %s", l->rv, l->vv, l->view_ns) != 0 ||
	    /* The router's ends: no IPv6 chatter. */
	    fg_lab_sh("sysctl -qw net.ipv6.conf.%s.disable_ipv6=1 net.ipv6.conf.%s.disable_ipv6=1"
		      " && ip link set %s up && ip link set %s up", l->rc, l->rv, l->rc, l->rv) != 0 ||
	    fg_lab_sh("ip -n %s link set lo up && ip -n %s link set %s up"
		      " && ip -n %s addr add 198.18.1.2/24 dev %s",
		      l->cam_ns, l->cam_ns, l->vc, l->cam_ns, l->vc) != 0 ||
	    fg_lab_sh("ip -n %s link set lo up && ip -n %s link set %s up"
		      " && ip -n %s addr add 198.18.2.2/24 dev %s",
		      l->view_ns, l->view_ns, l->vv, l->view_ns, l->vv) != 0)
		return -1;
	return 0;
}

void
fg_lab_remove(const struct fg_lab *l)
{
	if (l->cam_ns[0] == '\0')
		return;
	fg_lab_sh("ip netns del %s 2>/dev/null", l->cam_ns);
	fg_lab_sh("ip netns del %s 2>/dev/null", l->view_ns);
	fg_lab_sh("ip link del %s 2>/dev/null", l->rc);
	fg_lab_sh("ip link del %s 2>/dev/null", l->rv);
}

void
fg_lab_read_mac(const char *ns, const char *ifname, char *mac)
{
	char path[128], cmd[256];
	FILE *p;

	snprintf(path, sizeof(path), "/sys/class/net/%s/address", ifname);
	if (ns != NULL)
		snprintf(cmd, sizeof(cmd), "ip netns exec %s cat %s", ns, path);
	else
		snprintf(cmd, sizeof(cmd), "cat %s", path);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	cr_assert_not_null(fgets(mac, 32, p));
	mac[strcspn(mac, "\n")] = '\0';
	pclose(p);
}

void
fg_lab_enter_ns(const char *ns)
{
	char path[128];
	int fd;

	snprintf(path, sizeof(path), "/var/run/netns/%s", ns);
	fd = open(path, O_RDONLY);
	if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
		perror(path);
		_exit(3);
	}
	close(fd);
}

void
fg_lab_send_frame(int s, const struct sockaddr_in *dst, uint32_t tenant, uint64_t device,
		  uint32_t seq, uint16_t payload, const uint8_t *key, bool bad_version)
{
	struct fg_frame_spec spec = { .ip_version = 4, .payload_len = payload, .epoch = 1,
				      .frame_seq = seq, .tenant_id = tenant,
				      .device_id = device, .key = key };
	uint8_t pkt[2048];
	size_t len = fg_frame_build(&spec, pkt, sizeof(pkt));
	size_t off = fg_frame_offset(&spec);

	if (bad_version)
		pkt[off] = 2;
	if (sendto(s, pkt + off, len - off, 0, (const struct sockaddr *)dst, sizeof(*dst)) < 0)
		_exit(7);
}

void
fg_lab_viewer(const char *ns, struct fg_lab_view *v, int ready_fd)
{
	struct pollfd pfd[2];
	const uint32_t tenant[2] = { 7, 9 };

	fg_lab_enter_ns(ns);
	for (int i = 0; i < 2; i++) {
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_port = htons((uint16_t)(6000 + i)) };

		inet_pton(AF_INET, "198.18.2.2", &a.sin_addr);
		pfd[i].fd = socket(AF_INET, SOCK_DGRAM, 0);
		pfd[i].events = POLLIN;
		if (bind(pfd[i].fd, (struct sockaddr *)&a, sizeof(a)) != 0)
			_exit(4);
	}
	if (write(ready_fd, "r", 1) != 1)
		_exit(5);
	while (poll(pfd, 2, 1500) > 0) {
		for (int i = 0; i < 2; i++) {
			uint8_t buf[2048];
			ssize_t n;

			if (!(pfd[i].revents & POLLIN))
				continue;
			n = recv(pfd[i].fd, buf, sizeof(buf), 0);
			if (n < (ssize_t)sizeof(struct fg_frame_hdr))
				continue;
			const struct fg_frame_hdr *h = (const void *)buf;
			uint32_t seq = ntohl(h->frame_seq);

			if (ntohl(h->tenant_id) == tenant[i])
				v->got[i]++;
			else
				v->wrong[i]++;
			if (v->seen != NULL && seq < FG_LAB_SEQ_MAX)
				v->seen[i][seq] = 1;
		}
	}
	_exit(0);
}
