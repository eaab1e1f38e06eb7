/*
 * The shield's userspace side (see shield.h): opens and loads the XDP
 * program through its skeleton, and keeps its maps: tenants, owners, the
 * AF_XDP sockets, and the per-CPU counters read back summed.
 *
 * Loader order, as in libbpf-bootstrap: open, configure (frame port, pins),
 * load; anything failing goes to one cleanup.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/magic.h>

#include "shield.h"
#include "shield.skel.h"

struct fg_shield {
	struct fg_shield_bpf *skel;
	int ncpus;                 /* possible CPUs: per-CPU value count */
	char pin_dir[PATH_MAX];    /* "" when the maps are not pinned */
	uint16_t frame_port;       /* what fg_config holds */
};

#define FG_BPFFS_ROOT "/sys/fs/bpf"

/* The maps that are pinned when pin_dir is given (see shield.bpf.c). */
#define FG_SHIELD_NPINNED 4

static void
fg_shield__pinned_maps(const struct fg_shield *s,
		       struct bpf_map *maps[FG_SHIELD_NPINNED])
{
	maps[0] = s->skel->maps.fg_tenants;
	maps[1] = s->skel->maps.fg_owners;
	maps[2] = s->skel->maps.fg_drops;
	maps[3] = s->skel->maps.fg_config;
}

static int
fg_shield__is_bpffs(const char *path)
{
	struct statfs st;

	return statfs(path, &st) == 0 && st.f_type == BPF_FS_MAGIC;
}

/* Make pin_dir a folder on a bpffs: mount /sys/fs/bpf first if the folder is
 * it or under it and nothing is mounted there yet. */
static int
fg_shield__prepare_pin_dir(const char *dir, struct fg_err *err)
{
	if ((strcmp(dir, FG_BPFFS_ROOT) == 0 ||
	     strncmp(dir, FG_BPFFS_ROOT "/", sizeof(FG_BPFFS_ROOT)) == 0) &&
	    !fg_shield__is_bpffs(FG_BPFFS_ROOT)) {
		if (mkdir(FG_BPFFS_ROOT, 0700) < 0 && errno != EEXIST)
			return fg_err_set(err, errno, "shield: cannot create %s: %s",
					  FG_BPFFS_ROOT, strerror(errno));
		if (mount("bpf", FG_BPFFS_ROOT, "bpf", 0, "mode=0700") < 0)
			return fg_err_set(err, errno, "shield: cannot mount bpffs at %s: %s",
					  FG_BPFFS_ROOT, strerror(errno));
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return fg_err_set(err, errno, "shield: cannot create pin folder %s: %s",
				  dir, strerror(errno));
	if (!fg_shield__is_bpffs(dir))
		return fg_err_set(err, EINVAL, "shield: pin folder %s is not on a bpffs",
				  dir);
	return 0;
}

struct fg_shield *
fg_shield_open(const struct fg_shield_opts *opts, struct fg_err *err)
{
	struct fg_shield *s;
	struct bpf_map *maps[FG_SHIELD_NPINNED];
	int ret;

	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		fg_err_set(err, ENOMEM, "shield: out of memory");
		return NULL;
	}
	s->ncpus = libbpf_num_possible_cpus();
	if (s->ncpus <= 0) {
		fg_err_set(err, -s->ncpus, "shield: cannot count the CPUs: %s",
			   strerror(-s->ncpus));
		goto cleanup;
	}

	s->skel = fg_shield_bpf__open();
	if (s->skel == NULL) {
		fg_err_set(err, errno, "shield: cannot open the BPF object: %s",
			   strerror(errno));
		goto cleanup;
	}

	/* Configure: the pins (the frame port goes into fg_config after
	 * load, where every copy of the program reads it). */
	s->frame_port = opts != NULL && opts->frame_port != 0 ? opts->frame_port
							      : FG_DEFAULT_FRAME_PORT;
	fg_shield__pinned_maps(s, maps);
	if (opts != NULL && opts->pin_dir != NULL) {
		size_t len = strlen(opts->pin_dir);

		if (len == 0 || len + 16 >= sizeof(s->pin_dir)) {
			fg_err_set(err, EINVAL, "shield: pin folder '%s' is empty or too long",
				   opts->pin_dir);
			goto cleanup;
		}
		memcpy(s->pin_dir, opts->pin_dir, len + 1);
		if (fg_shield__prepare_pin_dir(s->pin_dir, err) < 0)
			goto cleanup;
	}
	for (unsigned int i = 0; i < FG_SHIELD_NPINNED; i++) {
		char path[PATH_MAX + 64];

		if (s->pin_dir[0] == '\0') {
			ret = bpf_map__set_pin_path(maps[i], NULL);
		} else {
			snprintf(path, sizeof(path), "%s/%s", s->pin_dir,
				 bpf_map__name(maps[i]));
			ret = bpf_map__set_pin_path(maps[i], path);
		}
		if (ret < 0) {
			fg_err_set(err, -ret, "shield: cannot set the pin of %s: %s",
				   bpf_map__name(maps[i]), strerror(-ret));
			goto cleanup;
		}
	}

	/* Load: maps pinned already in pin_dir are reused (libbpf checks that
	 * their type, sizes and flags match), new ones are pinned. */
	ret = fg_shield_bpf__load(s->skel);
	if (ret < 0) {
		fg_err_set(err, -ret, "shield: cannot load the XDP program%s%s: %s "
			   "(the verifier's log is on stderr)",
			   s->pin_dir[0] ? " with maps pinned in " : "", s->pin_dir,
			   strerror(-ret));
		goto cleanup;
	}
	const uint32_t zero = 0;
	const struct fg_shield_config cfg = { .frame_port = s->frame_port };

	ret = bpf_map__update_elem(s->skel->maps.fg_config, &zero, sizeof(zero), &cfg,
				   sizeof(cfg), BPF_ANY);
	if (ret == 0 && opts != NULL && opts->clear)
		ret = fg_shield_clear(s);
	if (ret < 0) {
		fg_err_set(err, -ret, "shield: cannot write its maps%s%s: %s",
			   s->pin_dir[0] ? " pinned in " : "", s->pin_dir, strerror(-ret));
		goto cleanup;
	}
	return s;

cleanup:
	fg_shield_close(s);
	return NULL;
}

void
fg_shield_close(struct fg_shield *s)
{
	if (s == NULL)
		return;
	fg_shield_bpf__destroy(s->skel);
	free(s);
}

int
fg_shield_prog_fd(const struct fg_shield *s)
{
	return bpf_program__fd(s->skel->progs.fg_shield);
}

/* libbpf 1.x returns -errno from its map calls. */
int
fg_shield_tenant_put(struct fg_shield *s, uint32_t tenant_id, bool suspended)
{
	struct fg_shield_tenant v = {
		.state = suspended ? FG_SHIELD_TENANT_SUSPENDED
				   : FG_SHIELD_TENANT_ACTIVE,
	};

	if (tenant_id == 0)
		return -EINVAL;
	return bpf_map__update_elem(s->skel->maps.fg_tenants, &tenant_id,
				    sizeof(tenant_id), &v, sizeof(v), BPF_ANY);
}

int
fg_shield_tenant_del(struct fg_shield *s, uint32_t tenant_id)
{
	return bpf_map__delete_elem(s->skel->maps.fg_tenants, &tenant_id,
				    sizeof(tenant_id), 0);
}

int
fg_shield_tenant_get(const struct fg_shield *s, uint32_t tenant_id,
		     struct fg_shield_tenant *out)
{
	return bpf_map__lookup_elem(s->skel->maps.fg_tenants, &tenant_id,
				    sizeof(tenant_id), out, sizeof(*out), 0);
}

static struct fg_shield_owner_key
fg_shield__owner_key(uint32_t tenant_id, uint64_t device_id)
{
	struct fg_shield_owner_key k;

	memset(&k, 0, sizeof(k));   /* pad is hashed too */
	k.tenant_id = tenant_id;
	k.device_id = device_id;
	return k;
}

int
fg_shield_owner_put(struct fg_shield *s, uint32_t tenant_id,
		    uint64_t device_id, uint32_t epoch,
		    const uint8_t key[FG_AUTH_KEY_LEN])
{
	struct fg_shield_owner_key k = fg_shield__owner_key(tenant_id, device_id);
	struct fg_shield_owner v;

	if (tenant_id == 0 || device_id == 0)
		return -EINVAL;
	memset(&v, 0, sizeof(v));
	v.epoch = epoch;
	if (key != NULL) {
		v.flags = FG_SHIELD_OWNER_HAS_KEY;
		memcpy(v.key, key, FG_AUTH_KEY_LEN);
	}
	return bpf_map__update_elem(s->skel->maps.fg_owners, &k, sizeof(k), &v,
				    sizeof(v), BPF_ANY);
}

int
fg_shield_owner_del(struct fg_shield *s, uint32_t tenant_id,
		    uint64_t device_id)
{
	struct fg_shield_owner_key k = fg_shield__owner_key(tenant_id, device_id);

	return bpf_map__delete_elem(s->skel->maps.fg_owners, &k, sizeof(k), 0);
}

int
fg_shield_owner_get(const struct fg_shield *s, uint32_t tenant_id,
		    uint64_t device_id, struct fg_shield_owner *out)
{
	struct fg_shield_owner_key k = fg_shield__owner_key(tenant_id, device_id);

	return bpf_map__lookup_elem(s->skel->maps.fg_owners, &k, sizeof(k), out,
				    sizeof(*out), 0);
}

int
fg_shield_tenant_foreach(const struct fg_shield *s, fg_shield_tenant_cb cb,
			 void *ctx)
{
	const struct bpf_map *m = s->skel->maps.fg_tenants;
	uint32_t key, next;
	const uint32_t *prev = NULL;
	int ret;

	while ((ret = bpf_map__get_next_key(m, prev, &next, sizeof(next))) == 0) {
		struct fg_shield_tenant v;

		key = next;
		prev = &key;
		ret = bpf_map__lookup_elem(m, &key, sizeof(key), &v, sizeof(v), 0);
		if (ret == -ENOENT)
			continue;      /* deleted since: skip it */
		if (ret < 0)
			return ret;
		ret = cb(ctx, key, &v);
		if (ret != 0)
			return ret;
	}
	return ret == -ENOENT ? 0 : ret;
}

int
fg_shield_owner_foreach(const struct fg_shield *s, fg_shield_owner_cb cb,
			void *ctx)
{
	const struct bpf_map *m = s->skel->maps.fg_owners;
	struct fg_shield_owner_key key, next;
	const struct fg_shield_owner_key *prev = NULL;
	int ret;

	while ((ret = bpf_map__get_next_key(m, prev, &next, sizeof(next))) == 0) {
		struct fg_shield_owner v;

		key = next;
		prev = &key;
		ret = bpf_map__lookup_elem(m, &key, sizeof(key), &v, sizeof(v), 0);
		if (ret == -ENOENT)
			continue;
		if (ret < 0)
			return ret;
		ret = cb(ctx, key.tenant_id, key.device_id, &v);
		if (ret != 0)
			return ret;
	}
	return ret == -ENOENT ? 0 : ret;
}

/* Delete every entry of a hash map. Keys are taken one at a time from the
 * start, as each delete changes what "next" means. */
static int
fg_shield__empty(const struct bpf_map *m, size_t key_size)
{
	uint8_t key[32];
	int ret;

	while ((ret = bpf_map__get_next_key(m, NULL, key, key_size)) == 0) {
		ret = bpf_map__delete_elem(m, key, key_size, 0);
		if (ret < 0 && ret != -ENOENT)
			return ret;
	}
	return ret == -ENOENT ? 0 : ret;
}

int
fg_shield_clear(struct fg_shield *s)
{
	int ret = fg_shield__empty(s->skel->maps.fg_owners,
				   sizeof(struct fg_shield_owner_key));

	return ret < 0 ? ret : fg_shield__empty(s->skel->maps.fg_tenants, sizeof(uint32_t));
}

uint16_t
fg_shield_frame_port(const struct fg_shield *s)
{
	return s->frame_port;
}

/* The XDP program of an interface in whichever mode it is attached:
 * its id and the mode's attach flag, or 0 for none. */
static int
fg_shield__xdp_prog(const char *ifname, int *ifindex, uint32_t *prog_id,
		    uint32_t *mode_flag, struct fg_err *err)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	int ret;

	*ifindex = (int)if_nametoindex(ifname);
	if (*ifindex == 0)
		return fg_err_set(err, ENODEV, "shield: no interface named %s", ifname);
	ret = bpf_xdp_query(*ifindex, 0, &q);
	if (ret < 0)
		return fg_err_set(err, -ret, "shield: cannot query the XDP program of %s: %s",
				  ifname, strerror(-ret));
	*prog_id = 0;
	*mode_flag = 0;
	if (q.drv_prog_id) {
		*prog_id = q.drv_prog_id;
		*mode_flag = XDP_FLAGS_DRV_MODE;
	} else if (q.skb_prog_id) {
		*prog_id = q.skb_prog_id;
		*mode_flag = XDP_FLAGS_SKB_MODE;
	} else if (q.hw_prog_id) {
		*prog_id = q.hw_prog_id;
		*mode_flag = XDP_FLAGS_HW_MODE;
	}
	return 0;
}

/* Does program prog_id read this handle's fg_owners? 1 yes, 0 no; its name
 * in name. */
static int
fg_shield__prog_uses_owners(const struct fg_shield *s, uint32_t prog_id,
			    char name[BPF_OBJ_NAME_LEN])
{
	struct bpf_map_info mi = { 0 };
	struct bpf_prog_info pi = { 0 };
	uint32_t ids[64], len = sizeof(mi);
	int fd, ret, found = 0;

	ret = bpf_obj_get_info_by_fd(bpf_map__fd(s->skel->maps.fg_owners), &mi, &len);
	if (ret < 0)
		return ret;
	fd = bpf_prog_get_fd_by_id(prog_id);
	if (fd < 0)
		return fd;
	pi.nr_map_ids = sizeof(ids) / sizeof(ids[0]);
	pi.map_ids = (uint64_t)(uintptr_t)ids;
	len = sizeof(pi);
	ret = bpf_obj_get_info_by_fd(fd, &pi, &len);
	close(fd);
	if (ret < 0)
		return ret;
	snprintf(name, BPF_OBJ_NAME_LEN, "%s", pi.name);
	for (uint32_t i = 0; i < pi.nr_map_ids && i < sizeof(ids) / sizeof(ids[0]); i++)
		found |= ids[i] == mi.id;
	return found;
}

int
fg_shield_attached(const struct fg_shield *s, const char *ifname,
		   struct fg_err *err)
{
	char name[BPF_OBJ_NAME_LEN] = "";
	uint32_t prog_id = 0, mode = 0;
	int ifindex, ret;

	ret = fg_shield__xdp_prog(ifname, &ifindex, &prog_id, &mode, err);
	if (ret < 0 || prog_id == 0)
		return ret;
	ret = fg_shield__prog_uses_owners(s, prog_id, name);
	if (ret < 0)
		return fg_err_set(err, -ret, "shield: cannot inspect XDP program %u on %s: %s",
				  prog_id, ifname, strerror(-ret));
	if (ret == 0)
		return fg_err_set(err, EEXIST, "shield: %s runs XDP program %u (\"%s\"), which does not use the shield's maps%s%s",
				  ifname, prog_id, name, s->pin_dir[0] ? " pinned in " : "",
				  s->pin_dir);
	return 1;
}

int
fg_shield_detach_stale(const struct fg_shield *s, const char *ifname,
		       struct fg_err *err)
{
	uint32_t prog_id = 0, mode = 0;
	int ifindex, ret = fg_shield_attached(s, ifname, err);

	if (ret <= 0)
		return ret;
	if (fg_shield__xdp_prog(ifname, &ifindex, &prog_id, &mode, err) < 0)
		return -err->code;
	ret = bpf_xdp_detach(ifindex, mode, NULL);
	if (ret < 0)
		return fg_err_set(err, -ret, "shield: cannot detach XDP program %u from %s: %s",
				  prog_id, ifname, strerror(-ret));
	return 1;
}

int
fg_shield_counters(const struct fg_shield *s, uint64_t out[FG_SHIELD_SLOTS])
{
	size_t vsize = (size_t)s->ncpus * sizeof(uint64_t);
	uint64_t *percpu = malloc(vsize);

	if (percpu == NULL)
		return -ENOMEM;
	for (uint32_t slot = 0; slot < FG_SHIELD_SLOTS; slot++) {
		int ret = bpf_map__lookup_elem(s->skel->maps.fg_drops, &slot,
					       sizeof(slot), percpu, vsize, 0);

		if (ret < 0) {
			free(percpu);
			return ret;
		}
		out[slot] = 0;
		for (int c = 0; c < s->ncpus; c++)
			out[slot] += percpu[c];
	}
	free(percpu);
	return 0;
}

int
fg_shield_xsk_put(struct fg_shield *s, uint32_t queue, int xsk_fd)
{
	uint32_t fd = (uint32_t)xsk_fd;

	return bpf_map__update_elem(s->skel->maps.xsks_map, &queue, sizeof(queue),
				    &fd, sizeof(fd), BPF_ANY);
}

int
fg_shield_xsk_del(struct fg_shield *s, uint32_t queue)
{
	return bpf_map__delete_elem(s->skel->maps.xsks_map, &queue,
				    sizeof(queue), 0);
}

int
fg_shield_unpin(struct fg_shield *s)
{
	struct bpf_map *maps[FG_SHIELD_NPINNED];
	int first = 0;

	if (s->pin_dir[0] == '\0')
		return 0;
	fg_shield__pinned_maps(s, maps);
	for (unsigned int i = 0; i < FG_SHIELD_NPINNED; i++) {
		int ret = bpf_map__unpin(maps[i], NULL);

		if (ret < 0 && ret != -ENOENT && first == 0)
			first = ret;
	}
	if (rmdir(s->pin_dir) < 0 && errno != ENOTEMPTY && errno != ENOENT &&
	    errno != EBUSY &&
	    first == 0)
		first = -errno;
	s->pin_dir[0] = '\0';
	return first;
}
