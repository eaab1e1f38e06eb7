/*
 * The lab of the tests that send real kernel traffic through a router in
 * network namespaces (test_netns.c, test_xdp.c): shell steps, namespace
 * entry, interface MACs, the camera's frame sender and the two-tenant viewer.
 * Each test builds its own namespaces and router; these are the parts they
 * share.
 */
#ifndef FG_TEST_NETNS_LAB_H
#define FG_TEST_NETNS_LAB_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#define FG_LAB_SEQ_MAX (1u << 20)

/* Two namespaces tied to the root one by veth pairs:
 *   cam_ns  [vc] 198.18.1.2/24  <->  rc (root: the router's camera side)
 *   view_ns [vv] 198.18.2.2/24  <->  rv (root: the router's viewer side)
 * The root ends are up, without IPv6 and without addresses; each test adds
 * what its router needs (an address on rc, or a static neighbour). */
struct fg_lab {
	char cam_ns[32], view_ns[32];
	char vc[16], rc[16], vv[16], rv[16];
};

/* Names unique to this process, starting with tag (at most 4 letters). */
void fg_lab_name(struct fg_lab *lab, const char *tag);

/* Make the namespaces and links: 0, or -1 (whatever was made stays for
 * fg_lab_remove). */
int fg_lab_links(const struct fg_lab *lab);

/* Remove the namespaces, and with them the veths. */
void fg_lab_remove(const struct fg_lab *lab);

/* Run a shell command built like printf; its exit status. */
int fg_lab_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The MAC of an interface in namespace ns (NULL: the root namespace). */
void fg_lab_read_mac(const char *ns, const char *ifname, char *mac);

/* Enter a named namespace; for a child process (exits 3 when it cannot). */
void fg_lab_enter_ns(const char *ns);

/* Send one frame as a camera's UDP socket does: its UDP payload (frame
 * header, tag when key is given, payload bytes). bad_version: version 2.
 * Exits 7 when the send fails (a child process). */
void fg_lab_send_frame(int s, const struct sockaddr_in *dst, uint32_t tenant,
		       uint64_t device, uint32_t seq, uint16_t payload,
		       const uint8_t *key, bool bad_version);

/* What the viewer saw, in memory shared with the test. */
struct fg_lab_view {
	unsigned int got[2];          /* frames of the socket's own tenant */
	unsigned int wrong[2];        /* frames of another tenant on it */
	uint8_t (*seen)[FG_LAB_SEQ_MAX];   /* NULL, or [2]: frame_seqs seen per socket */
};

/* The viewer (a child process): in namespace ns, one UDP socket per tenant's
 * sink, 198.18.2.2 port 6000 for tenant 7 and 6001 for tenant 9; writes a
 * byte to ready_fd once bound, then counts until 1.5 s pass without a frame,
 * and exits 0. */
void fg_lab_viewer(const char *ns, struct fg_lab_view *v, int ready_fd)
	__attribute__((noreturn));

#endif
