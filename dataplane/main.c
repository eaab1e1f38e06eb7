/*
 * framegate: the router program.
 *
 *   framegate [EAL options] -- --config FILE [--mappings FILE]
 *             [--stats FILE] [--duration SECONDS]
 *   framegate replay --mappings FILE --in IN.pcap --out OUT.pcap
 *             [--stats STATS.json] [--config FILE]
 *
 * The first runs the router on the ports EAL found until SIGINT or SIGTERM
 * (or the duration), then drains and prints its counters. The second answers
 * "what would this PoP do with this traffic under these mappings?": the same
 * router on one net_pcap port reading IN.pcap and writing the copies to
 * OUT.pcap, the mapping file loaded through the control plane's loader; it
 * exits when the capture is drained.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pcap/pcap.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_pdump.h>

#include <grp.h>

#include "audit.h"
#include "audit_alarm.h"
#include "config.h"
#include "ctlstate.h"
#include "eal_quick.h"
#include "follower.h"
#include "journal.h"
#include "mapfile.h"
#include "metrics.h"
#include "ownership.h"
#include "router.h"
#include "server.h"
#include "shield.h"
#include "stats.h"
#include "telemetry.h"

/* Exit codes: 0 done; 1 a file or the set-up was refused; 2 usage. */
enum { FG_EXIT_OK = 0, FG_EXIT_FAIL = 1, FG_EXIT_USAGE = 2 };

static volatile sig_atomic_t fg_signalled;

static void
fg_on_signal(int sig)
{
	fg_signalled = sig;
}

/* SIGHUP: a router whose terminal closes, or an operator used to daemons
 * that reload on it, must not lose its forwarding. Said in one line with
 * write(), which a handler may call. */
static void
fg_on_hup(int sig)
{
	static const char msg[] = "framegate: SIGHUP ignored (the configuration is read at start only)\n";

	(void)sig;
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
		/* Nothing to do: stderr is gone. */
	}
}

/*
 * Before anything else, EAL included: SIGPIPE ignored, so that a peer that
 * closes its socket (control, telemetry, metrics) before reading its reply
 * costs a write its EPIPE and not the router its life; SIGHUP logged and
 * ignored. SA_RESTART: the control loop's calls are not cut short by it.
 */
static void
fg_signals_early(void)
{
	struct sigaction sa = { .sa_handler = fg_on_hup, .sa_flags = SA_RESTART };

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGHUP, &sa, NULL);
}

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: framegate [EAL options] -- --config FILE [--mappings FILE]\n"
		"                 [--stats FILE] [--duration SECONDS]\n"
		"       framegate replay --mappings FILE --in IN.pcap --out OUT.pcap\n"
		"                 [--stats STATS.json] [--config FILE]\n"
		"\n"
		"Router mode forwards verified frames between the DPDK ports EAL found\n"
		"(--vdev or --allow), as the configuration file describes them, until\n"
		"SIGINT or SIGTERM or the --duration, then prints its counters. Its\n"
		"counters are also on DPDK's telemetry socket (/framegate/ commands) and,\n"
		"with \"metrics\" in the configuration, at http://ADDRESS:PORT/metrics\n"
		"(docs/observability.md).\n"
		"\n"
		"dpdk-dumpcap can capture a router's ports (dpdk-dumpcap --file-prefix=P\n"
		"-i PORT) only when the router runs on hugepages with EAL multi-process\n"
		"on: give it --file-prefix=P, unique on the host, and none of --no-huge,\n"
		"--no-shconf or --in-memory. `fgctl capture` works on any router.\n"
		"\n"
		"Replay mode runs the same router on one net_pcap port: it reads IN.pcap,\n"
		"writes every copy it sends to OUT.pcap and exits when the capture is\n"
		"drained. Without --config, port 0 has next hop 02:00:00:00:00:01 and\n"
		"sources 192.0.2.1 and 2001:db8::1, and frames use UDP port 47474.\n"
		"\n"
		"  --config FILE      router configuration (docs/configuration.md)\n"
		"  --mappings FILE    mapping file loaded at start (JSON Lines)\n"
		"  --stats FILE       write the final counters as JSON\n"
		"  --duration S       router mode: stop after S seconds\n"
		"  --in, --out FILE   replay mode: input capture, output capture\n"
		"\n"
		"Exit status: 0 done; 1 a file, a port or the set-up was refused; 2 usage.\n");
}

struct fg_opts {
	const char *config, *mappings, *stats, *in, *out;
	double duration;
	char *map_text;         /* replay: the mapping file, read once */
	size_t map_len;
};

static int
fg_parse_opts(int argc, char **argv, bool replay, struct fg_opts *o)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "mappings", required_argument, NULL, 'm' },
		{ "stats", required_argument, NULL, 's' },
		{ "duration", required_argument, NULL, 'd' },
		{ "in", required_argument, NULL, 'i' },
		{ "out", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	char *end;
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': o->config = optarg; break;
		case 'm': o->mappings = optarg; break;
		case 's': o->stats = optarg; break;
		case 'i': o->in = optarg; break;
		case 'o': o->out = optarg; break;
		case 'd':
			o->duration = strtod(optarg, &end);
			/* Not nan, inf (1e400 too) or -0, which would run
			 * for ever or not at all. */
			if (end == optarg || *end != '\0' || !isfinite(o->duration) ||
			    !(o->duration > 0)) {
				fprintf(stderr, "framegate: --duration: \"%s\" is not a finite positive number of seconds\n",
					optarg);
				return -1;
			}
			break;
		case 'h':
			usage(stdout);
			exit(FG_EXIT_OK);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "framegate: unexpected argument \"%s\"\n", argv[optind]);
		return -1;
	}
	if (replay && (o->mappings == NULL || o->in == NULL || o->out == NULL)) {
		fprintf(stderr, "framegate replay: --mappings, --in and --out are required\n");
		return -1;
	}
	if (!replay && o->config == NULL) {
		fprintf(stderr, "framegate: --config is required (after --, following the EAL options)\n");
		return -1;
	}
	if (!replay && (o->in || o->out)) {
		fprintf(stderr, "framegate: --in and --out belong to replay mode\n");
		return -1;
	}
	return 0;
}

/* Packets in a capture, or -1 with the reason printed. */
static long
fg_count_packets(const char *path)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	struct pcap_pkthdr *h;
	const u_char *d;
	pcap_t *p = pcap_open_offline(path, errbuf);
	long n = 0;
	int ret;

	if (p == NULL) {
		/* libpcap names the file in some errors, not in others. */
		if (strstr(errbuf, path) != NULL)
			fprintf(stderr, "framegate replay: %s\n", errbuf);
		else
			fprintf(stderr, "framegate replay: %s: %s\n", path, errbuf);
		return -1;
	}
	if (pcap_datalink(p) != DLT_EN10MB) {
		fprintf(stderr, "framegate replay: %s: link type %s, not Ethernet\n", path,
			pcap_datalink_val_to_name(pcap_datalink(p)));
		pcap_close(p);
		return -1;
	}
	while ((ret = pcap_next_ex(p, &h, &d)) == 1)
		n++;
	if (ret == PCAP_ERROR) {
		fprintf(stderr, "framegate replay: %s: %s\n", path, pcap_geterr(p));
		n = -1;
	}
	pcap_close(p);
	return n;
}

static void
fg_print_totals(FILE *f, const struct fg_counter_totals *t, double seconds)
{
	fprintf(f, "%-18s %12lu\n", "rx_packets", (unsigned long)t->rx_packets);
	fprintf(f, "%-18s %12lu\n", "forwarded_packets", (unsigned long)t->forwarded_packets);
	fprintf(f, "%-18s %12lu\n", "copies_sent", (unsigned long)t->copies_sent);
	fprintf(f, "%-18s %12lu\n", "tx_full", (unsigned long)t->tx_full);
	for (int r = 1; r < FG_REASON_END; r++)
		if (t->drops[r])
			fprintf(f, "%-18s %12lu\n", fg_reason_name(r), (unsigned long)t->drops[r]);
	fprintf(f, "conservation: rx = forwarded + drops: %s\n",
		fg_counters_conserved(t) ? "holds" : "BROKEN");
	if (seconds > 0)
		fprintf(f, "rate: %.3f Mpps received, %.3f Mpps forwarded over %.2f s\n",
			t->rx_packets / seconds / 1e6, t->forwarded_packets / seconds / 1e6,
			seconds);
}

static int
fg_write_stats(const char *path, const struct fg_counter_totals *t)
{
	json_t *j = fg_totals_to_json(t);
	int ret = json_dump_file(j, path, JSON_INDENT(2));

	json_decref(j);
	if (ret != 0)
		fprintf(stderr, "framegate: cannot write %s: %s\n", path, strerror(errno));
	return ret;
}

/* Journal replay: one record's op lines as one transaction. */
static int
fg_replay_record(void *ctx, const char *lines, size_t len, struct fg_err *err)
{
	struct fg_op *ops = NULL;
	size_t n = 0, bad = 0;
	int ret = fg_ops_parse_lines(lines, len, &ops, &n, err);

	if (ret == 0)
		ret = fg_ops_apply_all(ctx, ops, n, &bad, err);
	free(ops);
	return ret;
}

static int
fg_group_id(const char *name, gid_t *gid, struct fg_err *err)
{
	struct group *g;

	*gid = (gid_t)-1;
	if (name[0] == '\0')
		return 0;
	g = getgrnam(name);
	if (g == NULL && name[strspn(name, "0123456789")] == '\0' && strlen(name) < 11 &&
	    strtoull(name, NULL, 10) < UINT32_MAX) {
		*gid = (gid_t)strtoull(name, NULL, 10);    /* a gid without a name */
		return 0;
	}
	if (g == NULL)
		return fg_err_set(err, ENOENT, "group \"%s\" does not exist on this host (give a group name or a numeric gid)",
				  name);
	*gid = g->gr_gid;
	return 0;
}

/* The non-blank lines of a mapping file read by fg_mapfile_read (each
 * ending in '\n'), for the journal: moved to the front of text, in place.
 * Their length. */
static size_t
fg_nonblank_lines(char *text, size_t len)
{
	size_t out = 0;

	for (size_t i = 0; i < len;) {
		char *nl = memchr(text + i, '\n', len - i);
		size_t l = (size_t)(nl - (text + i)) + 1;

		if (!fg_mapline_blank(text + i, l)) {
			memmove(text + out, text + i, l);
			out += l;
		}
		i += l;
	}
	return out;
}

/*
 * The XDP shield (configuration "shield"): open its maps in the pin folder
 * (reused if pinned there already, as after a restart) and empty them, then
 * hand them to the control plane, which refills them from the journal as it
 * replays it. Before DPDK starts its ports.
 */
static int
fg_shield_start(const struct fg_config *cfg, struct fg_ownership *own,
		struct fg_shield **sp, struct fg_err *err)
{
	struct fg_shield_opts so = { .frame_port = cfg->frame_port,
				     .pin_dir = cfg->shield_pin_dir, .clear = true };
	struct fg_shield *s;

	/* A full map would leave the shield behind the tables: refuse tables
	 * the maps cannot hold (their sizes are fixed in the object, which
	 * DPDK loads from the file). */
	if (cfg->max_devices > FG_SHIELD_MAX_OWNERS || cfg->max_tenants > FG_SHIELD_MAX_TENANTS)
		return fg_err_set(err, EINVAL, "shield: tables.max_devices (%u) and tables.max_tenants (%u) must fit in the shield's maps (%u and %u)",
				  cfg->max_devices, cfg->max_tenants, FG_SHIELD_MAX_OWNERS,
				  FG_SHIELD_MAX_TENANTS);
	s = fg_shield_open(&so, err);
	if (s == NULL)
		return -err->code;
	*sp = s;
	/* A shield left on an interface by a router that was killed holds it:
	 * DPDK attaches only where no program is (XDP_FLAGS_UPDATE_IF_NOEXIST). */
	for (unsigned int i = 0; i < cfg->n_shield_ifaces; i++) {
		int ret = fg_shield_detach_stale(s, cfg->shield_ifaces[i], err);

		if (ret < 0 && ret != -ENODEV) {
			fg_err_prefix(err, "%s", ret == -EEXIST ? "refusing to replace it: " : "");
			return ret;
		}
		if (ret == 1)
			fprintf(stderr, "framegate: shield: detached the shield an earlier router left on %s\n",
				cfg->shield_ifaces[i]);
	}
	fg_ownership_set_shield(own, s);
	fprintf(stderr, "framegate: shield: maps pinned in %s, frame port %u\n",
		cfg->shield_pin_dir, fg_shield_frame_port(s));
	return 0;
}

/* After the ports started: each configured interface runs the shield on
 * these maps (DPDK loaded it from xdp_prog=), or the router does not run. */
static int
fg_shield_check_ports(const struct fg_config *cfg, const struct fg_shield *s,
		      struct fg_err *err)
{
	for (unsigned int i = 0; i < cfg->n_shield_ifaces; i++) {
		int ret = fg_shield_attached(s, cfg->shield_ifaces[i], err);

		if (ret == 0)
			return fg_err_set(err, ENOENT, "shield: %s has no XDP program: give its net_af_xdp port xdp_prog=PATH/shield.bpf.o",
					  cfg->shield_ifaces[i]);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* The control plane's word on the shield after replay or a load. */
static void
fg_shield_alarm(const struct fg_ownership *own)
{
	struct fg_err last;
	uint64_t n = fg_ownership_shield_faults(own, &last);

	if (n != 0)
		fprintf(stderr, "framegate: ALARM: %lu shield map writes failed, the last: %s; the shield differs from the tables (fgctl shield check; fgctl shield resync)\n",
			(unsigned long)n, last.msg);
}

/* The audit log (configuration "audit_log"), before the journal: a path the
 * router cannot append to stops the start, naming it. */
static int
fg_audit_start(const struct fg_config *cfg, struct fg_audit **ap, struct fg_err *err)
{
	struct fg_audit_open_info info;

	*ap = fg_audit_open(cfg->audit_log, &info, err);
	if (*ap == NULL)
		return -err->code;
	if (info.torn_bytes)
		fprintf(stderr, "framegate: audit log %s: cut off a torn last line (%zu bytes of a write a crash cut short, never acknowledged)\n",
			cfg->audit_log, info.torn_bytes);
	fprintf(stderr, "framegate: audit log %s: %s at record %lu\n", cfg->audit_log,
		info.last_seq ? "continuing the chain" : "starting a chain",
		(unsigned long)info.last_seq + 1);
	return 0;
}

/* Router mode's control plane: the journal replayed into the tables, the
 * initial mapping file (only into an empty journal, and then into the audit
 * log), then the socket. */
static int
fg_control_start(const struct fg_config *cfg, const struct fg_opts *o,
		 struct fg_ownership *own, struct fg_audit *audit, struct fg_journal **jp,
		 struct fg_err *err)
{
	struct fg_journal_stats st = { 0 };
	uint64_t t0 = rte_get_timer_cycles();
	struct fg_journal *j;
	int ret;

	j = fg_journal_open(cfg->journal_dir, err);
	if (j == NULL)
		return -err->code;
	*jp = j;
	ret = fg_journal_replay(j, fg_replay_record, own, &st, err);
	if (ret < 0)
		return ret;
	if (st.records_replayed || st.snapshot_bytes)
		fprintf(stderr, "framegate: journal %s: restored %u devices from %lu records%s in %.2f s\n",
			cfg->journal_dir, fg_tables_count_devices(fg_ownership_tables(own)),
			(unsigned long)st.records_replayed, st.snapshot_bytes ? " and a snapshot" : "",
			(double)(rte_get_timer_cycles() - t0) / rte_get_timer_hz());
	if (st.tail_damaged)
		fprintf(stderr, "framegate: ALARM: journal %s: cut off a damaged last record (%lu bytes): an acknowledged change may have been lost; the cut bytes are kept in %s\n",
			cfg->journal_dir, (unsigned long)st.bytes_discarded, st.cut_file);
	else if (st.bytes_discarded)
		fprintf(stderr, "framegate: journal %s: discarded a torn last record (%lu bytes, never acknowledged)\n",
			cfg->journal_dir, (unsigned long)st.bytes_discarded);
	if (o->mappings == NULL)
		return 0;
	if (cfg->store)
		return fg_err_set(err, EINVAL, "--mappings %s: this router follows the store at %s; load the file there (fgctl --store ... load)",
				  o->mappings, cfg->store_endpoints);
	if (st.records_replayed || st.snapshot_bytes)
		return fg_err_set(err, EEXIST, "--mappings %s: the journal in %s already holds the state; change it with fgctl load",
				  o->mappings, cfg->journal_dir);
	/* Read once (a pipe can be read only once), within the limits of
	 * mapread.h: what is loaded is what is journaled. */
	unsigned long lines;
	size_t len = 0;
	char *text;

	ret = fg_mapfile_read(o->mappings, &text, &len, &lines, err);
	if (ret < 0)
		return ret;
	ret = fg_mapfile_load_buf(own, o->mappings, text, len, NULL, err);
	if (ret == 0)
		len = fg_nonblank_lines(text, len);
	if (ret == 0 && len)
		ret = fg_journal_append(j, text, len, err);
	if (ret == 0 && len && audit != NULL)
		ret = fg_audit_change(audit, "mappings", NULL, text, len, err);
	free(text);
	return ret;
}

/* Observers (router mode): DPDK telemetry commands, always; the Prometheus
 * endpoint when configured. After the control server, before the ports. */
static int
fg_observers_start(const struct fg_config *cfg, const struct fg_router *r,
		   struct fg_ownership *own, const struct fg_server *server,
		   struct fg_ctl_state **stp, struct fg_metrics **mp, struct fg_err *err)
{
	struct fg_tables *t = fg_ownership_tables(own);
	struct fg_ctl_state *st = fg_ctl_state_create();
	struct fg_ctl_values v;

	if (st == NULL)
		return fg_err_set(err, ENOMEM, "out of memory");
	*stp = st;
	fg_server_values(server, &v);
	fg_ctl_state_publish(st, &v);
	/* The last RCU reader id: the workers take the first ones. */
	if (fg_telemetry_start(r, t, t->cfg.max_readers - 1, st, err) != 0)
		return -err->code;
	if (cfg->metrics) {
		struct fg_metrics_config mc = {
			.listen = cfg->metrics_listen,
			.addr = (const struct sockaddr *)&cfg->metrics_addr,
			.addr_len = cfg->metrics_addr_len,
			.tenant_labels_max = cfg->metrics_tenant_labels_max,
		};

		*mp = fg_metrics_create(&mc, r, own, server, st, err);
		if (*mp == NULL)
			return -err->code;
		fprintf(stderr, "framegate: metrics at http://%s/metrics\n", cfg->metrics_listen);
	}
	return 0;
}

/* After each round of the control socket: publish the control plane's state
 * for the telemetry threads, and serve the metrics endpoint. */
static void
fg_observers_tick(const struct fg_server *server, struct fg_ctl_state *st,
		  struct fg_metrics *m, const struct fg_follower *f)
{
	struct fg_ctl_values v;

	fg_server_values(server, &v);
	fg_ctl_state_publish(st, &v);
	if (m != NULL && f != NULL) {
		int64_t enforced, store_rev;
		double since;

		fg_follower_lag(f, &enforced, &store_rev, &since);
		fg_metrics_set_store(m, enforced, store_rev, since);
	}
	fg_metrics_poll(m);
}

/* The tables could not be created (rte_errno e): when memory ran out, how
 * much they need against what EAL holds, and what to change. */
static void
fg_tables_no_room(const struct fg_tables_config *tc, int e)
{
	size_t need = fg_tables_memsize(tc) + fg_ownership_memsize(tc), total = 0, free_b = 0;
	struct rte_malloc_socket_stats ms;

	if (e != ENOMEM) {
		fprintf(stderr, "framegate: cannot create tables for %u mappings: %s\n",
			tc->max_devices, rte_strerror(e));
		return;
	}
	for (int s = 0; s < RTE_MAX_NUMA_NODES; s++)
		if (rte_malloc_get_socket_stats(s, &ms) == 0) {
			total += ms.heap_totalsz_bytes;
			free_b += ms.heap_freesz_bytes;
		}
	fprintf(stderr, "framegate: the tables for %u mappings, %u tenants and %u sinks (tables.max_devices, max_tenants, max_sinks) need about %zu MiB of DPDK memory; EAL was given %zu MiB (-m, or the hugepages it could map), %zu MiB of it free: give -m at least %zu plus what the ports' mbufs take, or more hugepages, or make the tables smaller\n",
		tc->max_devices, tc->max_tenants, tc->max_sinks, need >> 20, total >> 20,
		free_b >> 20, ((total - free_b + need) >> 20) + 1);
}

/* Everything after EAL: tables, mappings, ports, workers, the run, the end. */
static int
fg_run(const struct fg_config *cfg, const struct fg_opts *o, long expected)
{
	struct fg_tables_config tc = {
		.name = "fg", .max_tenants = cfg->max_tenants, .max_sinks = cfg->max_sinks,
		.max_devices = cfg->max_devices, .max_readers = RTE_MAX_LCORE,
		.socket_id = (int)rte_socket_id(),
	};
	struct fg_counter_totals tot;
	struct fg_err err = { 0 };
	struct fg_router r;
	struct fg_tables *t;
	struct fg_ownership *own = NULL;
	struct fg_journal *journal = NULL;
	struct fg_server *server = NULL;
	struct fg_shield *shield = NULL;
	struct fg_follower *follower = NULL;
	static uint32_t store_closed;       /* the dataplane's store_stale switch */
	struct fg_audit *audit = NULL;
	struct fg_audit_watch watch = { 0 };
	struct fg_metrics *metrics = NULL;
	struct fg_ctl_state *ctl_state = NULL;  /* read by telemetry threads */
	int ret = FG_EXIT_FAIL;
	uint64_t t0, t1;
	bool on_main;

	t = fg_tables_create(&tc);
	own = t ? fg_ownership_create(t) : NULL;
	if (own == NULL) {
		int e = rte_errno;

		/* What is free once the tables that were made are gone. */
		fg_tables_free(t);
		t = NULL;
		fg_tables_no_room(&tc, e);
		goto out;
	}
	if (expected >= 0 &&
	    fg_mapfile_load_buf(own, o->mappings, o->map_text, o->map_len, NULL, &err) != 0) {
		fprintf(stderr, "framegate: %s\n", err.msg);
		goto out;
	}
	/* Replay mode leaves any shield alone: it only answers "what would
	 * this PoP do", and must not touch a running router's maps. */
	if (expected < 0 && cfg->shield && fg_shield_start(cfg, own, &shield, &err) != 0) {
		fprintf(stderr, "framegate: %s\n", err.msg);
		goto out;
	}
	if (expected < 0 && cfg->audit_log[0] != '\0' && fg_audit_start(cfg, &audit, &err) != 0) {
		fprintf(stderr, "framegate: %s\n", err.msg);
		goto out;
	}
	if (expected < 0 && fg_control_start(cfg, o, own, audit, &journal, &err) != 0) {
		fprintf(stderr, "framegate: %s\n", err.msg);
		goto out;
	}
	if (shield != NULL)
		fg_shield_alarm(own);
	if (fg_router_init(&r, cfg, t, cfg->mbufs, &err) != 0) {
		fprintf(stderr, "framegate: %s\n", err.msg);
		fg_router_close(&r);
		goto out;
	}
	if (shield != NULL && fg_shield_check_ports(cfg, shield, &err) != 0) {
		fprintf(stderr, "framegate: %s\n", err.msg);
		fg_router_close(&r);
		goto out;
	}
	if (expected < 0) {
		struct fg_server_config sc = { .path = cfg->control_socket,
					       .compact_bytes = cfg->compact_bytes,
					       .load_max_bytes = (uint64_t)cfg->load_max_mib << 20,
					       .journal_dir = journal ? cfg->journal_dir : NULL,
					       .audit = audit };

		if (fg_group_id(cfg->control_group, &sc.write_gid, &err) != 0 ||
		    fg_group_id(cfg->read_group, &sc.read_gid, &err) != 0 ||
		    (server = fg_server_create(&sc, own, journal, &r, &err)) == NULL ||
		    fg_observers_start(cfg, &r, own, server, &ctl_state, &metrics, &err) != 0) {
			fprintf(stderr, "framegate: %s\n", err.msg);
			fg_telemetry_stop();
			fg_router_close(&r);
			goto out;
		}
	}
	if (expected < 0 && cfg->store) {
		struct fg_follower_config fc = {
			.endpoints = cfg->store_endpoints, .prefix = cfg->store_prefix,
			.stale_closed = cfg->store_stale_closed,
			.stale_bound_ms = cfg->store_stale_bound_ms, .probe_ms = cfg->store_probe_ms,
			.reconcile_ms = cfg->store_reconcile_ms,
			.backoff_min_ms = cfg->store_backoff_min_ms,
			.backoff_max_ms = cfg->store_backoff_max_ms,
			.timeout_ms = cfg->store_timeout_ms,
			.gateway = cfg->store_gateway,
		};

		follower = fg_follower_create(&fc, own, journal, &store_closed, &err);
		if (follower == NULL) {
			fprintf(stderr, "framegate: store: %s\n", err.msg);
			fg_router_close(&r);
			goto out;
		}
		r.engine.closed = &store_closed;
		fg_follower_set_audit(follower, audit);
		fg_server_set_follower(server, follower);
		fprintf(stderr, "framegate: following the store at %s, prefix %s, from revision %ld (stale_policy %s)\n",
			cfg->store_endpoints, cfg->store_prefix,
			(long)fg_ownership_store_revision(own), cfg->store_stale_closed ? "closed" : "open");
	}
	signal(SIGINT, fg_on_signal);
	signal(SIGTERM, fg_on_signal);

	t0 = rte_get_timer_cycles();
	fg_router_start(&r, &on_main);
	if (expected < 0)
		fprintf(stderr, "framegate: forwarding on %u ports with %u workers, %u mappings loaded\n",
			rte_eth_dev_count_avail(), r.n_workers, fg_tables_count_devices(t));
	if (expected >= 0) {
		/* Replay: a drained pcap port returns nothing, ever after. */
		uint64_t got = fg_worker_drain(r.workers[0], (uint64_t)expected, 1000000);

		if (got != (uint64_t)expected)
			fprintf(stderr, "framegate replay: received %lu of %ld packets\n",
				(unsigned long)got, expected);
	} else if (on_main) {
		/* One lcore: it forwards, and between bursts serves the control
		 * socket, offline for the tables meanwhile (a grace period must
		 * not wait for the thread that is waiting for it). */
		fprintf(stderr, "framegate: no worker lcore; the main lcore forwards and serves the control socket (give -l two lcores to keep them apart)\n");
		bool idle = false;

		while (!fg_signalled &&
		       (o->duration <= 0 ||
			(rte_get_timer_cycles() - t0) < o->duration * rte_get_timer_hz())) {
			/* Until traffic pauses, or at most 32768 packets (the
			 * count is cumulative): the socket waits no longer.
			 * Idle (idle_sleep_us), a few polls tell whether
			 * traffic is back. */
			uint64_t rx = fg_ctr_read(&r.workers[0]->ctr->rx_packets);

			fg_worker_drain(r.workers[0], rx + 32768, idle ? 32 : 4096);
			fg_tables_reader_offline(t, r.workers[0]->id);
			fg_server_poll(server, 0);
			if (follower != NULL)
				fg_follower_poll(follower);
			fg_observers_tick(server, ctl_state, metrics, follower);
			/* Nothing came: give the CPU back for a while (idle_sleep_us). */
			idle = cfg->idle_sleep_us > 0 &&
			       fg_ctr_read(&r.workers[0]->ctr->rx_packets) == rx;
			if (idle)
				usleep(cfg->idle_sleep_us);
			fg_tables_reader_online(t, r.workers[0]->id);
			fg_audit_watch(&watch, audit, &r);
		}
	} else {
		if (cfg->idle_sleep_us > 0)
			fprintf(stderr, "framegate: idle_sleep_us is for a router on one lcore; its workers poll without pause\n");
		while (!fg_signalled &&
		       (o->duration <= 0 ||
			(rte_get_timer_cycles() - t0) < o->duration * rte_get_timer_hz())) {
			fg_server_poll(server, follower != NULL ? 2 : 10);
			if (follower != NULL)
				fg_follower_poll(follower);
			fg_audit_watch(&watch, audit, &r);
			fg_observers_tick(server, ctl_state, metrics, follower);
		}
		fg_router_stop(&r);
	}
	t1 = rte_get_timer_cycles();
	fg_router_join(&r);
	watch.next = 0;                 /* the last second's alarm too */
	fg_audit_watch(&watch, audit, &r);
	fg_router_totals(&r, &tot);
	fg_telemetry_stop();
	fg_router_close(&r);
	if (fg_signalled)
		fprintf(stderr, "framegate: stopped by signal %d\n", (int)fg_signalled);
	fg_print_totals(stdout, &tot, expected >= 0 ? 0 : (double)(t1 - t0) / rte_get_timer_hz());
	if (tot.drops[FG_DROP_sink_mismatch])
		fprintf(stderr, "framegate: ALARM: %lu packets had a sink of another tenant: the tables are corrupted\n",
			(unsigned long)tot.drops[FG_DROP_sink_mismatch]);
	if (o->stats != NULL && fg_write_stats(o->stats, &tot) != 0)
		goto out;
	ret = fg_counters_conserved(&tot) ? FG_EXIT_OK : FG_EXIT_FAIL;
out:
	fg_telemetry_stop();
	fg_metrics_free(metrics);
	fg_ctl_state_free(ctl_state);
	fg_server_free(server);
	fg_follower_free(follower);
	fg_journal_close(journal);
	fg_audit_close(audit);
	fg_ownership_free(own);
	fg_shield_close(shield);      /* the pins stay, for the next start */
	fg_tables_free(t);
	return ret;
}

static int
fg_replay(int argc, char **argv)
{
	struct fg_opts o = { 0 };
	struct fg_config cfg;
	struct fg_err err = { 0 };
	char vdev[2 * 4096 + 64], mem[16], prefix[64];
	unsigned long lines;
	long packets;
	int ret;

	if (fg_parse_opts(argc, argv, true, &o) != 0)
		return FG_EXIT_USAGE;
	fg_config_defaults(&cfg);
	if (o.config != NULL) {
		if (fg_config_load(&cfg, o.config, &err) != 0) {
			fprintf(stderr, "framegate replay: %s\n", err.msg);
			return FG_EXIT_FAIL;
		}
		if (cfg.n_ports != 1 || cfg.ports[0].port_id != 0 ||
		    cfg.ports[0].role != FG_ROLE_BOTH || cfg.ports[0].rx_queues != 1) {
			fprintf(stderr, "framegate replay: %s: replay has one port, 0, with role \"both\" and one rx queue\n",
				o.config);
			return FG_EXIT_FAIL;
		}
	} else {
		fg_config_default_port(&cfg);
	}
	/* Read once, within the limits of mapread.h: its lines size the
	 * tables, and the same text is loaded. */
	if (fg_mapfile_read(o.mappings, &o.map_text, &o.map_len, &lines, &err) != 0) {
		fprintf(stderr, "framegate replay: %s\n", err.msg);
		return FG_EXIT_FAIL;
	}
	packets = fg_count_packets(o.in);
	if (packets < 0) {
		free(o.map_text);
		return FG_EXIT_FAIL;
	}
	if (strchr(o.in, ',') || strchr(o.out, ',')) {
		fprintf(stderr, "framegate replay: file names with a comma cannot be given to net_pcap\n");
		free(o.map_text);
		return FG_EXIT_FAIL;
	}
	/* Tables sized by the file: no line adds more than one entry. */
	if (o.config == NULL) {
		cfg.max_tenants = cfg.max_sinks = (uint32_t)lines + 64;
		cfg.max_devices = (uint32_t)lines + 64;
	}
	snprintf(vdev, sizeof(vdev), "net_pcap0,rx_pcap=%s,tx_pcap=%s", o.in, o.out);
	snprintf(mem, sizeof(mem), "%lu", 512 + (unsigned long)cfg.max_devices / 2000);
	snprintf(prefix, sizeof(prefix), "--file-prefix=fgreplay%d", (int)getpid());
	char *eal[] = {
		argv[0], "--no-huge", "-m", mem, "--no-pci", "--no-shconf", prefix,
		"--no-telemetry", "-l", "0", "--log-level=*:error", "--vdev", vdev, NULL,
	};
	if (rte_eal_init((int)RTE_DIM(eal) - 1, eal) < 0) {
		fprintf(stderr, "framegate replay: cannot start DPDK: %s\n", rte_strerror(rte_errno));
		free(o.map_text);
		return FG_EXIT_FAIL;
	}
	if (o.config == NULL)
		cfg.mbufs = 8191;
	ret = fg_run(&cfg, &o, packets);
	free(o.map_text);
	fg_eal_cleanup();
	return ret;
}

int
main(int argc, char **argv)
{
	struct fg_opts o = { 0 };
	struct fg_config cfg;
	struct fg_err err = { 0 };
	int n, ret;

	fg_signals_early();
	if (argc > 1 && strcmp(argv[1], "replay") == 0)
		return fg_replay(argc - 1, argv + 1);
	if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return FG_EXIT_OK;
	}
	n = rte_eal_init(argc, argv);
	if (n < 0) {
		fprintf(stderr, "framegate: cannot start DPDK: %s (see the EAL options above)\n",
			rte_strerror(rte_errno));
		return FG_EXIT_USAGE;
	}
	argv[n] = argv[0];
	/* EAL runs from here: each way out cleans it up (its ports too). */
	if (fg_parse_opts(argc - n, argv + n, false, &o) != 0) {
		fg_eal_cleanup();
		return FG_EXIT_USAGE;
	}
	/* dpdk-dumpcap attaches to a running router as a secondary process
	 * (docs/configuration.md, "Capturing"): it needs the router started
	 * with multi-process on (no --no-shconf, no --in-memory). Without it
	 * this registers nothing, and dumpcap cannot attach. */
	if (rte_pdump_init() != 0)
		fprintf(stderr, "framegate: dpdk-dumpcap cannot attach: %s\n",
			rte_strerror(rte_errno));
	fg_config_defaults(&cfg);
	if (fg_config_load(&cfg, o.config, &err) != 0) {
		fprintf(stderr, "framegate: %s\n", err.msg);
		rte_pdump_uninit();
		fg_eal_cleanup();
		return FG_EXIT_FAIL;
	}
	ret = fg_run(&cfg, &o, -1);
	rte_pdump_uninit();
	fg_eal_cleanup();
	return ret;
}
