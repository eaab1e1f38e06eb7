/*
 * The router's configuration file: what EAL does not know. JSON, read with
 * jansson; every key is documented in docs/configuration.md.
 *
 *   {
 *     "frame_port": 47474,
 *     "ttl": 64,
 *     "control_socket": "/run/framegate/control.sock",
 *     "journal_dir": "/var/lib/framegate",
 *     "control_group": "framegate", "read_group": "adm",
 *     "compact_bytes": 268435456,
 *     "audit_log": "/var/log/framegate/audit.jsonl",
 *     "mbufs": 16383,
 *     "idle_sleep_us": 0,
 *     "tables": {"max_tenants": 65536, "max_sinks": 65536, "max_devices": 1048576},
 *     "ports": [
 *       {"port": 0, "role": "both", "next_hop_mac": "02:00:00:00:00:01",
 *        "ipv4": "192.0.2.1", "ipv6": "2001:db8::1", "rx_queues": 1}
 *     ],
 *     "shield": {"pin_dir": "/sys/fs/bpf", "interfaces": ["eth1"]},
 *     "store": {"endpoints": "http://10.0.0.1:2379,http://10.0.0.2:2379",
 *               "prefix": "/framegate/", "stale_policy": "open",
 *               "stale_bound_ms": 5000, "probe_ms": 500,
 *               "reconcile_seconds": 300, "backoff_min_ms": 100,
 *               "backoff_max_ms": 30000, "timeout_ms": 2000,
 *               "transport": "grpc"}
 *     "metrics": {"listen": "127.0.0.1:9470", "tenant_labels_max": 1000}
 *   }
 */
#ifndef FG_CONFIG_H
#define FG_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include <sys/socket.h>

#include <rte_ether.h>

#include <framegate/error.h>

#define FG_CONFIG_MAX_PORTS 32
#define FG_CONFIG_MAX_SHIELD_IFACES 8

enum fg_port_role {
	FG_ROLE_BOTH,        /* receives frames and sends copies */
	FG_ROLE_INGRESS,     /* receives frames only */
	FG_ROLE_EGRESS,      /* sends copies only */
};

struct fg_port_config {
	uint16_t port_id;
	enum fg_port_role role;
	struct rte_ether_addr next_hop;   /* destination MAC of copies */
	bool has_ipv4, has_ipv6;
	uint8_t ipv4[4];                  /* source address of IPv4 copies */
	uint8_t ipv6[16];                 /* source address of IPv6 copies */
	uint16_t rx_queues;
};

struct fg_config {
	uint16_t frame_port;
	uint8_t ttl;
	char control_socket[108];
	char journal_dir[256];
	char control_group[64];           /* may change state (besides root) */
	char read_group[64];              /* may read state */
	uint64_t compact_bytes;           /* journal size that triggers a snapshot */
	uint32_t load_max_mib;            /* op-line MiB that open loads may hold */
	char audit_log[256];              /* control/audit.h; "": no audit log */
	uint32_t max_tenants, max_sinks, max_devices;
	uint32_t mbufs;                   /* per pool: received, headers, clones */
	/* One lcore only: a pass that received nothing sleeps this long
	 * before the next (0: polls without pause). */
	uint32_t idle_sleep_us;
	unsigned int n_ports;
	struct fg_port_config ports[FG_CONFIG_MAX_PORTS];
	/* The XDP shield (ebpf/): its maps, kept by the control plane, pinned
	 * in shield_pin_dir for the copy of the program DPDK's net_af_xdp loads
	 * (xdp_prog=) on each of shield_ifaces. */
	bool shield;
	char shield_pin_dir[256];
	unsigned int n_shield_ifaces;
	char shield_ifaces[FG_CONFIG_MAX_SHIELD_IFACES][16];
	/* Following a store (docs/store.md): the tables are the prefix of an
	 * etcd cluster; fgctl changes go to the store, not to this router. */
	bool store;
	char store_endpoints[1024];
	char store_prefix[97];
	bool store_stale_closed;          /* stale_policy "closed" */
	bool store_gateway;               /* transport "gateway": no gRPC */
	uint32_t store_stale_bound_ms;
	uint32_t store_probe_ms;
	uint32_t store_reconcile_ms;      /* 0: off */
	uint32_t store_backoff_min_ms, store_backoff_max_ms;
	uint32_t store_timeout_ms;
	/* The Prometheus endpoint (control/metrics.c): off unless the file
	 * has a "metrics" object. metrics_listen is the address as written,
	 * for messages; metrics_addr the same, decoded. */
	bool metrics;
	char metrics_listen[64];
	struct sockaddr_storage metrics_addr;
	socklen_t metrics_addr_len;
	uint32_t metrics_tenant_labels_max;   /* tenants with their own label */
};

/* Defaults: frame port 47474, TTL 64, no ports. */
void fg_config_defaults(struct fg_config *c);

/* The port used when there is no configuration file (replay): port 0, both
 * roles, next hop 02:00:00:00:00:01, 192.0.2.1 and 2001:db8::1. */
void fg_config_default_port(struct fg_config *c);

/* Read a configuration file over the defaults. 0, or -errno with err naming
 * the file, the line (for syntax errors) or the setting, and the problem. */
int fg_config_load(struct fg_config *c, const char *path, struct fg_err *err);

const char *fg_port_role_name(enum fg_port_role r);

#endif /* FG_CONFIG_H */
