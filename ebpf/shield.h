/*
 * The XDP ownership shield (SPEC 5): the layouts of its BPF maps, included by
 * the XDP program (shield.bpf.c) and by the userspace library (shield.c), and
 * below, outside BPF, that library's API. Nothing here is written twice: the
 * program and the library read the same structs.
 *
 * Maps (names are the ones in the object file; keep them short, libbpf and
 * bpffs show them as is):
 *
 *   fg_tenants  HASH   tenant_id (u32, host order) -> struct fg_shield_tenant
 *   fg_owners   HASH   struct fg_shield_owner_key  -> struct fg_shield_owner
 *   fg_drops    PERCPU_ARRAY, FG_SHIELD_SLOTS u64 counters, indexed by
 *               enum fg_reason (drop_reasons.def numbering); slot FG_PASS
 *               counts the frames handed to the AF_XDP redirect
 *   fg_config   ARRAY, 1 entry: struct fg_shield_config (the frame port)
 *   xsks_map    XSKMAP rx queue -> AF_XDP socket (the name DPDK's net_af_xdp
 *               PMD looks up in an xdp_prog= object)
 */
#ifndef FG_SHIELD_H
#define FG_SHIELD_H

#include <linux/types.h>

#include <framegate/reasons.h>
#include <framegate/wire.h>

/* fg_tenants value. A tenant absent from the map is unknown_tenant; one in
 * any state but ACTIVE is tenant_suspended (an unset value fails closed). */
#define FG_SHIELD_TENANT_ACTIVE 1
#define FG_SHIELD_TENANT_SUSPENDED 2

struct fg_shield_tenant {
	__u32 state;
};

/* fg_owners key: the (tenant, device) a packet claims, host order. pad must
 * be zero: the hash covers all 16 bytes. */
struct fg_shield_owner_key {
	__u32 tenant_id;
	__u32 pad;
	__u64 device_id;
};

/* fg_owners value: the mapping's epoch and optional device key (SPEC 2). */
#define FG_SHIELD_OWNER_HAS_KEY 0x1

struct fg_shield_owner {
	__u32 epoch;
	__u32 flags;
	__u8 key[FG_AUTH_KEY_LEN];
};

/* fg_config's one entry (key 0): what the loader configures. It is a pinned
 * map rather than read-only data so that a copy of the program loaded from
 * the object file by someone else (DPDK's xdp_prog=, which cannot set
 * rodata) reads the same settings as the control plane wrote. */
struct fg_shield_config {
	__u16 frame_port;   /* host order; 0: FG_DEFAULT_FRAME_PORT */
	__u16 pad;
	__u32 pad2;
};

/* fg_drops has one slot per enum fg_reason, FG_PASS included. */
#define FG_SHIELD_SLOTS FG_REASON_END

/* Map sizes. The hash maps are not preallocated (BPF_F_NO_PREALLOC): memory
 * follows the entries present, and an element replaced or deleted is freed
 * only after an RCU grace period, so a packet never reads an entry that is
 * being reused for another (tenant, device). */
#define FG_SHIELD_MAX_TENANTS 65536
#define FG_SHIELD_MAX_OWNERS (1u << 20)
#define FG_SHIELD_MAX_QUEUES 256

#ifndef __bpf__
#include <stdbool.h>
#include <stdint.h>

#include <framegate/error.h>

struct fg_shield;

struct fg_shield_opts {
	/* UDP destination port of frames, host order; 0: FG_DEFAULT_FRAME_PORT.
	 * Written into fg_config at open (so into the pinned one too). */
	uint16_t frame_port;
	/* NULL: the maps belong to this handle alone. Otherwise a folder on a
	 * bpffs (created if absent; /sys/fs/bpf is mounted if it is not yet)
	 * where fg_tenants, fg_owners, fg_drops and fg_config are pinned, or
	 * reused when already pinned there: another loader of shield.bpf.o
	 * (DPDK's xdp_prog=, with libbpf's default pin root /sys/fs/bpf) then
	 * shares them. */
	const char *pin_dir;
	/* Empty fg_tenants and fg_owners at open (pinned maps keep what an
	 * earlier process left there): the control plane then fills them again
	 * from its journal. The counters are kept. */
	bool clear;
};

/* Open and load the program and its maps. NULL with err filled on failure
 * (needs CAP_BPF and CAP_NET_ADMIN, or root). */
struct fg_shield *fg_shield_open(const struct fg_shield_opts *opts,
				 struct fg_err *err);
/* Close the handle. Pinned maps stay pinned (see fg_shield_unpin). */
void fg_shield_close(struct fg_shield *s);

/* The XDP program's fd, to attach (bpf_xdp_attach) or to test-run. */
int fg_shield_prog_fd(const struct fg_shield *s);

/*
 * Mirror of the ownership tables. All return 0 or -errno. A put replaces
 * the whole entry at once: a packet sees the old value or the new one,
 * never a mix of the two.
 */
int fg_shield_tenant_put(struct fg_shield *s, uint32_t tenant_id,
			 bool suspended);
int fg_shield_tenant_del(struct fg_shield *s, uint32_t tenant_id);
/* The entry of a tenant: 0, or -ENOENT when absent. */
int fg_shield_tenant_get(const struct fg_shield *s, uint32_t tenant_id,
			 struct fg_shield_tenant *out);
/* key: the device's 16-byte key, or NULL for a mapping without one. */
int fg_shield_owner_put(struct fg_shield *s, uint32_t tenant_id,
			uint64_t device_id, uint32_t epoch,
			const uint8_t key[FG_AUTH_KEY_LEN]);
int fg_shield_owner_del(struct fg_shield *s, uint32_t tenant_id,
			uint64_t device_id);
/* The entry of (tenant, device): 0, or -ENOENT when absent. */
int fg_shield_owner_get(const struct fg_shield *s, uint32_t tenant_id,
			uint64_t device_id, struct fg_shield_owner *out);

/*
 * Walks for a consistency check against the dataplane tables. The callback
 * returns 0 to go on, anything else to stop (that value is returned). A walk
 * concurrent with deletions may miss or repeat entries: check a quiet state.
 */
typedef int (*fg_shield_tenant_cb)(void *ctx, uint32_t tenant_id,
				   const struct fg_shield_tenant *t);
typedef int (*fg_shield_owner_cb)(void *ctx, uint32_t tenant_id,
				  uint64_t device_id,
				  const struct fg_shield_owner *o);
int fg_shield_tenant_foreach(const struct fg_shield *s, fg_shield_tenant_cb cb,
			     void *ctx);
int fg_shield_owner_foreach(const struct fg_shield *s, fg_shield_owner_cb cb,
			    void *ctx);

/* The per-CPU counters summed: out[FG_PASS] frames redirected, out[r] the
 * packets that ended with reason r (passed to the kernel for not_ip,
 * not_udp and not_frame, dropped for the others). 0 or -errno. */
int fg_shield_counters(const struct fg_shield *s,
		       uint64_t out[FG_SHIELD_SLOTS]);

/* The AF_XDP socket of an rx queue (what DPDK's PMD does itself when it
 * loads the object): 0 or -errno. */
int fg_shield_xsk_put(struct fg_shield *s, uint32_t queue, int xsk_fd);
int fg_shield_xsk_del(struct fg_shield *s, uint32_t queue);

/* Empty fg_tenants and fg_owners: 0 or -errno. */
int fg_shield_clear(struct fg_shield *s);

/* The frame port the maps are configured with (fg_config). */
uint16_t fg_shield_frame_port(const struct fg_shield *s);

/*
 * The interface's XDP program, as the router checks it at start: 1 when the
 * attached program (any mode) reads this handle's fg_owners map (it is the
 * shield, sharing these maps), 0 when no program is attached, -EEXIST when
 * another program is (err names it), or -errno.
 */
int fg_shield_attached(const struct fg_shield *s, const char *ifname,
		       struct fg_err *err);
/* Detach the interface's XDP program if it is a shield on these maps (one
 * left behind by a router that was killed): 1 detached, 0 nothing to do,
 * -EEXIST when another program is attached (left alone), or -errno. */
int fg_shield_detach_stale(const struct fg_shield *s, const char *ifname,
			   struct fg_err *err);

/* Remove the pins of a handle opened with pin_dir (and the folder when it
 * is then empty): 0 or -errno. The maps live on while the handle is open. */
int fg_shield_unpin(struct fg_shield *s);
#endif /* !__bpf__ */

#endif /* FG_SHIELD_H */
