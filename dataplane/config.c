/*
 * The configuration file (see config.h): decoded with jansson into struct
 * fg_config. Unknown keys are refused, like in mapping files, so a typo never
 * silently leaves a default in place.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "config.h"

void
fg_config_defaults(struct fg_config *c)
{
	memset(c, 0, sizeof(*c));
	c->frame_port = 47474;
	c->ttl = 64;
	snprintf(c->control_socket, sizeof(c->control_socket), "/run/framegate/control.sock");
	snprintf(c->journal_dir, sizeof(c->journal_dir), "/var/lib/framegate");
	c->max_tenants = 65536;
	c->max_sinks = 65536;
	c->max_devices = 1 << 20;
	c->mbufs = 16383;
	c->compact_bytes = 256u << 20;
	c->load_max_mib = 512;
	/* libbpf's default pin root: where DPDK's copy of the shield looks. */
	snprintf(c->shield_pin_dir, sizeof(c->shield_pin_dir), "/sys/fs/bpf");
	snprintf(c->store_prefix, sizeof(c->store_prefix), "/framegate/");
	c->store_stale_bound_ms = 5000;
	c->store_probe_ms = 500;
	c->store_reconcile_ms = 300000;
	c->store_backoff_min_ms = 100;
	c->store_backoff_max_ms = 30000;
	c->store_timeout_ms = 2000;
	/* Loopback by default: the counters name tenants, so exposing them
	 * beyond the host is the operator's choice. */
	snprintf(c->metrics_listen, sizeof(c->metrics_listen), "127.0.0.1:9470");
	c->metrics_tenant_labels_max = 1000;
}

void
fg_config_default_port(struct fg_config *c)
{
	struct fg_port_config *p = &c->ports[0];

	memset(p, 0, sizeof(*p));
	p->port_id = 0;
	p->role = FG_ROLE_BOTH;
	memcpy(p->next_hop.addr_bytes, "\x02\x00\x00\x00\x00\x01", RTE_ETHER_ADDR_LEN);
	p->has_ipv4 = p->has_ipv6 = true;
	inet_pton(AF_INET, "192.0.2.1", p->ipv4);
	inet_pton(AF_INET6, "2001:db8::1", p->ipv6);
	p->rx_queues = 1;
	c->n_ports = 1;
}

const char *
fg_port_role_name(enum fg_port_role r)
{
	switch (r) {
	case FG_ROLE_BOTH: return "both";
	case FG_ROLE_INGRESS: return "ingress";
	case FG_ROLE_EGRESS: return "egress";
	}
	return "?";
}

/* Keys allowed in an object; NULL-terminated. */
static int
fg_only_keys(json_t *o, const char *const *keys, const char *where,
	     struct fg_err *err)
{
	const char *k;
	json_t *v;

	json_object_foreach(o, k, v) {
		int known = 0;

		for (const char *const *p = keys; *p; p++)
			known |= strcmp(*p, k) == 0;
		if (!known)
			return fg_err_set(err, EINVAL, "%s: unknown setting \"%s\"", where, k);
	}
	return 0;
}

static int
fg_uint_setting(json_t *o, const char *key, const char *where, uint64_t min,
		uint64_t max, uint64_t *out, struct fg_err *err)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) < min || (uint64_t)json_integer_value(v) > max)
		return fg_err_set(err, EINVAL, "%s%s: must be an integer from %lu to %lu",
				  where, key, (unsigned long)min, (unsigned long)max);
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int
fg_string_setting(json_t *o, const char *key, const char *where, char *out,
		  size_t len, struct fg_err *err)
{
	json_t *v = json_object_get(o, key);

	if (v == NULL)
		return 0;
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    json_string_length(v) >= len)
		return fg_err_set(err, EINVAL, "%s%s: must be a non-empty string shorter than %zu bytes",
				  where, key, len);
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return 0;
}

static int
fg_port_setting(json_t *o, unsigned int i, struct fg_port_config *p,
		struct fg_err *err)
{
	static const char *const keys[] = { "port", "role", "next_hop_mac", "ipv4",
					    "ipv6", "rx_queues", NULL };
	char where[32];
	const char *s;
	uint64_t v = 0;

	snprintf(where, sizeof(where), "ports[%u].", i);
	memset(p, 0, sizeof(*p));
	p->rx_queues = 1;
	if (!json_is_object(o))
		return fg_err_set(err, EINVAL, "ports[%u]: must be an object", i);
	if (fg_only_keys(o, keys, where, err))
		return -EINVAL;
	if (json_object_get(o, "port") == NULL)
		return fg_err_set(err, EINVAL, "%sport: missing (the DPDK port id)", where);
	if (fg_uint_setting(o, "port", where, 0, RTE_MAX_ETHPORTS - 1, &v, err))
		return -EINVAL;
	p->port_id = (uint16_t)v;
	s = json_string_value(json_object_get(o, "role"));
	if (json_object_get(o, "role") != NULL) {
		if (s != NULL && strcmp(s, "both") == 0)
			p->role = FG_ROLE_BOTH;
		else if (s != NULL && strcmp(s, "ingress") == 0)
			p->role = FG_ROLE_INGRESS;
		else if (s != NULL && strcmp(s, "egress") == 0)
			p->role = FG_ROLE_EGRESS;
		else
			return fg_err_set(err, EINVAL, "%srole: must be \"both\", \"ingress\" or \"egress\"",
					  where);
	}
	if (p->role != FG_ROLE_INGRESS) {
		s = json_string_value(json_object_get(o, "next_hop_mac"));
		if (s == NULL || rte_ether_unformat_addr(s, &p->next_hop) != 0)
			return fg_err_set(err, EINVAL, "%snext_hop_mac: an egress port needs the next hop's MAC (\"02:00:00:00:00:01\")",
					  where);
	}
	s = json_string_value(json_object_get(o, "ipv4"));
	if (json_object_get(o, "ipv4") != NULL) {
		if (s == NULL || inet_pton(AF_INET, s, p->ipv4) != 1)
			return fg_err_set(err, EINVAL, "%sipv4: not an IPv4 address", where);
		p->has_ipv4 = true;
	}
	s = json_string_value(json_object_get(o, "ipv6"));
	if (json_object_get(o, "ipv6") != NULL) {
		if (s == NULL || inet_pton(AF_INET6, s, p->ipv6) != 1)
			return fg_err_set(err, EINVAL, "%sipv6: not an IPv6 address", where);
		p->has_ipv6 = true;
	}
	if (p->role != FG_ROLE_INGRESS && !p->has_ipv4 && !p->has_ipv6)
		return fg_err_set(err, EINVAL, "%s: an egress port needs an ipv4 or ipv6 source address",
				  where);
	if (fg_uint_setting(o, "rx_queues", where, 1, 64, &v, err))
		return -EINVAL;
	if (json_object_get(o, "rx_queues"))
		p->rx_queues = (uint16_t)v;
	return 0;
}

/* "shield": {"pin_dir": "/sys/fs/bpf", "interfaces": ["eth1", ...]} */
static int
fg_shield_setting(json_t *o, struct fg_config *c, struct fg_err *err)
{
	static const char *const keys[] = { "pin_dir", "interfaces", NULL };
	json_t *ifs, *v;
	size_t i;

	if (!json_is_object(o))
		return fg_err_set(err, EINVAL, "shield: must be an object (an empty one for the defaults)");
	if (fg_only_keys(o, keys, "shield.", err) ||
	    fg_string_setting(o, "pin_dir", "shield.", c->shield_pin_dir,
			      sizeof(c->shield_pin_dir), err))
		return -EINVAL;
	if (c->shield_pin_dir[0] != '/')
		return fg_err_set(err, EINVAL, "shield.pin_dir: must be an absolute path on a bpffs");
	ifs = json_object_get(o, "interfaces");
	if (ifs == NULL)
		return 0;
	if (!json_is_array(ifs) || json_array_size(ifs) > FG_CONFIG_MAX_SHIELD_IFACES)
		return fg_err_set(err, EINVAL, "shield.interfaces: must be an array of at most %d interface names",
				  FG_CONFIG_MAX_SHIELD_IFACES);
	json_array_foreach(ifs, i, v) {
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) >= sizeof(c->shield_ifaces[0]))
			return fg_err_set(err, EINVAL, "shield.interfaces[%zu]: must be an interface name of 1 to %zu bytes",
					  i, sizeof(c->shield_ifaces[0]) - 1);
		memcpy(c->shield_ifaces[i], json_string_value(v), json_string_length(v) + 1);
	}
	c->n_shield_ifaces = (unsigned int)json_array_size(ifs);
	return 0;
}

/* "store": {"endpoints": "http://h:p,...", "prefix": "/framegate/", ...} */
static int
fg_store_setting(json_t *o, struct fg_config *c, struct fg_err *err)
{
	static const char *const keys[] = { "endpoints", "prefix", "stale_policy",
					    "stale_bound_ms", "probe_ms", "reconcile_seconds",
					    "backoff_min_ms", "backoff_max_ms", "timeout_ms", "transport",
					    NULL };
	const char *s;
	uint64_t v;

	if (!json_is_object(o))
		return fg_err_set(err, EINVAL, "store: must be an object");
	if (fg_only_keys(o, keys, "store.", err))
		return -EINVAL;
	if (json_object_get(o, "endpoints") == NULL)
		return fg_err_set(err, EINVAL, "store.endpoints: missing (\"http://host:2379,...\", etcd's client URLs)");
	if (fg_string_setting(o, "endpoints", "store.", c->store_endpoints,
			      sizeof(c->store_endpoints), err) ||
	    fg_string_setting(o, "prefix", "store.", c->store_prefix,
			      sizeof(c->store_prefix), err))
		return -EINVAL;
	if (strncmp(c->store_endpoints, "http://", 7) != 0)
		return fg_err_set(err, EINVAL, "store.endpoints: \"%s\" must be http:// URLs separated by commas",
				  c->store_endpoints);
	size_t pl = strlen(c->store_prefix);

	if (c->store_prefix[0] != '/' || c->store_prefix[pl - 1] != '/')
		return fg_err_set(err, EINVAL, "store.prefix: \"%s\" must start and end with '/'",
				  c->store_prefix);
	s = json_string_value(json_object_get(o, "stale_policy"));
	if (json_object_get(o, "stale_policy") != NULL) {
		if (s != NULL && strcmp(s, "open") == 0)
			c->store_stale_closed = false;
		else if (s != NULL && strcmp(s, "closed") == 0)
			c->store_stale_closed = true;
		else
			return fg_err_set(err, EINVAL, "store.stale_policy: must be \"open\" (keep forwarding under the last confirmed revision) or \"closed\" (stop forwarding)");
	}
	s = json_string_value(json_object_get(o, "transport"));
	if (json_object_get(o, "transport") != NULL) {
		if (s != NULL && strcmp(s, "grpc") == 0)
			c->store_gateway = false;
		else if (s != NULL && strcmp(s, "gateway") == 0)
			c->store_gateway = true;
		else
			return fg_err_set(err, EINVAL, "store.transport: must be \"grpc\" (the watch over etcd's gRPC API) or \"gateway\" (everything through etcd's JSON gateway)");
	}
	struct {
		const char *key;
		uint64_t min, max, scale;
		uint32_t *out;
	} nums[] = {
		{ "stale_bound_ms", 100, 86400000, 1, &c->store_stale_bound_ms },
		{ "probe_ms", 10, 60000, 1, &c->store_probe_ms },
		{ "reconcile_seconds", 0, 86400, 1000, &c->store_reconcile_ms },
		{ "backoff_min_ms", 1, 60000, 1, &c->store_backoff_min_ms },
		{ "backoff_max_ms", 1, 600000, 1, &c->store_backoff_max_ms },
		{ "timeout_ms", 50, 60000, 1, &c->store_timeout_ms },
	};
	for (size_t i = 0; i < RTE_DIM(nums); i++) {
		v = *nums[i].out / nums[i].scale;
		if (fg_uint_setting(o, nums[i].key, "store.", nums[i].min, nums[i].max, &v, err))
			return -EINVAL;
		*nums[i].out = (uint32_t)(v * nums[i].scale);
	}
	if (c->store_backoff_max_ms < c->store_backoff_min_ms)
		return fg_err_set(err, EINVAL, "store.backoff_max_ms (%u) is below store.backoff_min_ms (%u)",
				  c->store_backoff_max_ms, c->store_backoff_min_ms);
	if (c->store_probe_ms * 2 > c->store_stale_bound_ms)
		return fg_err_set(err, EINVAL, "store.stale_bound_ms (%u) must be at least twice store.probe_ms (%u)",
				  c->store_stale_bound_ms, c->store_probe_ms);
	return 0;
}

/* "A.B.C.D:PORT" or "[IPv6]:PORT" into a socket address; 0 or -EINVAL. */
static int
fg_listen_addr(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[64];
	const char *colon;
	unsigned long port;
	char *end;

	memset(ss, 0, sizeof(*ss));
	if (text[0] == '[') {
		const char *close = strchr(text, ']');

		if (close == NULL || close[1] != ':' || (size_t)(close - text - 1) >= sizeof(host))
			return -EINVAL;
		memcpy(host, text + 1, (size_t)(close - text - 1));
		host[close - text - 1] = '\0';
		colon = close + 1;
	} else {
		colon = strrchr(text, ':');
		if (colon == NULL || (size_t)(colon - text) >= sizeof(host))
			return -EINVAL;
		memcpy(host, text, (size_t)(colon - text));
		host[colon - text] = '\0';
	}
	if (colon[1] < '0' || colon[1] > '9')
		return -EINVAL;
	port = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || port < 1 || port > 65535)
		return -EINVAL;
	if (text[0] == '[') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			return -EINVAL;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		*len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			return -EINVAL;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		*len = sizeof(*a);
	}
	return 0;
}

/* "metrics": {"listen": "127.0.0.1:9470", "tenant_labels_max": 1000} */
static int
fg_metrics_setting(json_t *o, struct fg_config *c, struct fg_err *err)
{
	static const char *const keys[] = { "listen", "tenant_labels_max", NULL };
	uint64_t v = c->metrics_tenant_labels_max;
	json_t *l;

	if (!json_is_object(o))
		return fg_err_set(err, EINVAL, "metrics: must be an object (an empty one for the defaults)");
	if (fg_only_keys(o, keys, "metrics", err))
		return -EINVAL;
	l = json_object_get(o, "listen");
	if (l != NULL && (!json_is_string(l) ||
			  json_string_length(l) >= sizeof(c->metrics_listen)))
		return fg_err_set(err, EINVAL, "metrics.listen: must be a string \"ADDRESS:PORT\" (\"127.0.0.1:9470\", \"[::1]:9470\")");
	if (l != NULL)
		memcpy(c->metrics_listen, json_string_value(l), json_string_length(l) + 1);
	if (fg_listen_addr(c->metrics_listen, &c->metrics_addr, &c->metrics_addr_len) != 0)
		return fg_err_set(err, EINVAL, "metrics.listen: \"%s\" is not ADDRESS:PORT with a numeric IPv4 address or a bracketed IPv6 one and a port from 1 to 65535",
				  c->metrics_listen);
	if (fg_uint_setting(o, "tenant_labels_max", "metrics.", 0, 1000000, &v, err))
		return -EINVAL;
	c->metrics_tenant_labels_max = (uint32_t)v;
	return 0;
}

int
fg_config_load(struct fg_config *c, const char *path, struct fg_err *err)
{
	static const char *const keys[] = { "frame_port", "ttl", "control_socket",
					    "journal_dir", "tables", "ports", "mbufs",
					    "control_group", "read_group", "compact_bytes",
					    "shield", "store", "audit_log", "metrics",
					    "idle_sleep_us", "load_max_mib", NULL };
	static const char *const tkeys[] = { "max_tenants", "max_sinks", "max_devices",
					     NULL };
	json_error_t jerr;
	json_t *root, *ports, *tables, *p;
	uint64_t v;
	size_t i;
	int ret = -EINVAL;

	root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		FILE *f = fopen(path, "r");

		if (f == NULL)
			return fg_err_set(err, errno, "%s: %s", path, strerror(errno));
		fclose(f);
		return fg_err_set(err, EINVAL, "%s:%d:%d: %s", path, jerr.line,
				  jerr.column, jerr.text);
	}
	if (!json_is_object(root)) {
		fg_err_set(err, EINVAL, "the file must hold one JSON object");
		goto out;
	}
	if (fg_only_keys(root, keys, "", err))
		goto out;
	v = c->frame_port;
	if (fg_uint_setting(root, "frame_port", "", 1, 65535, &v, err))
		goto out;
	c->frame_port = (uint16_t)v;
	v = c->ttl;
	if (fg_uint_setting(root, "ttl", "", 1, 255, &v, err))
		goto out;
	c->ttl = (uint8_t)v;
	v = c->mbufs;
	if (fg_uint_setting(root, "mbufs", "", 1023, 1 << 24, &v, err))
		goto out;
	c->mbufs = (uint32_t)v;
	v = c->idle_sleep_us;
	if (fg_uint_setting(root, "idle_sleep_us", "", 0, 100000, &v, err))
		goto out;
	c->idle_sleep_us = (uint32_t)v;
	if (fg_string_setting(root, "control_socket", "", c->control_socket,
			      sizeof(c->control_socket), err) ||
	    fg_string_setting(root, "journal_dir", "", c->journal_dir,
			      sizeof(c->journal_dir), err) ||
	    fg_string_setting(root, "control_group", "", c->control_group,
			      sizeof(c->control_group), err) ||
	    fg_string_setting(root, "read_group", "", c->read_group,
			      sizeof(c->read_group), err) ||
	    fg_string_setting(root, "audit_log", "", c->audit_log,
			      sizeof(c->audit_log), err))
		goto out;
	v = c->compact_bytes;
	if (fg_uint_setting(root, "compact_bytes", "", 0, UINT64_MAX >> 1, &v, err))
		goto out;
	c->compact_bytes = v;
	v = c->load_max_mib;
	if (fg_uint_setting(root, "load_max_mib", "", 1, 1u << 20, &v, err))
		goto out;
	c->load_max_mib = (uint32_t)v;
	tables = json_object_get(root, "tables");
	if (tables != NULL) {
		if (!json_is_object(tables)) {
			fg_err_set(err, EINVAL, "tables: must be an object");
			goto out;
		}
		if (fg_only_keys(tables, tkeys, "tables.", err))
			goto out;
		v = c->max_tenants;
		if (fg_uint_setting(tables, "max_tenants", "tables.", 1, 1 << 24, &v, err))
			goto out;
		c->max_tenants = (uint32_t)v;
		v = c->max_sinks;
		if (fg_uint_setting(tables, "max_sinks", "tables.", 1, 1 << 24, &v, err))
			goto out;
		c->max_sinks = (uint32_t)v;
		v = c->max_devices;
		if (fg_uint_setting(tables, "max_devices", "tables.", 1, 1 << 26, &v, err))
			goto out;
		c->max_devices = (uint32_t)v;
	}
	ports = json_object_get(root, "ports");
	if (!json_is_array(ports) || json_array_size(ports) == 0 ||
	    json_array_size(ports) > FG_CONFIG_MAX_PORTS) {
		fg_err_set(err, EINVAL, "ports: must be an array of 1 to %d ports",
			   FG_CONFIG_MAX_PORTS);
		goto out;
	}
	json_array_foreach(ports, i, p) {
		if (fg_port_setting(p, (unsigned int)i, &c->ports[i], err))
			goto out;
		for (size_t j = 0; j < i; j++)
			if (c->ports[j].port_id == c->ports[i].port_id) {
				fg_err_set(err, EINVAL, "ports[%zu].port: port %u is listed twice",
					   i, c->ports[i].port_id);
				goto out;
			}
	}
	c->n_ports = (unsigned int)json_array_size(ports);
	if (json_object_get(root, "shield") != NULL) {
		if (fg_shield_setting(json_object_get(root, "shield"), c, err))
			goto out;
		c->shield = true;
	}
	if (json_object_get(root, "store") != NULL) {
		if (fg_store_setting(json_object_get(root, "store"), c, err))
			goto out;
		c->store = true;
	}
	if (json_object_get(root, "metrics") != NULL) {
		if (fg_metrics_setting(json_object_get(root, "metrics"), c, err))
			goto out;
		c->metrics = true;
	}
	ret = 0;
out:
	if (ret < 0)
		fg_err_prefix(err, "%s: ", path);
	json_decref(root);
	return ret;
}
