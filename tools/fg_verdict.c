/*
 * fg-verdict: what would the verdict engine say about each packet of a
 * capture under a mapping file? Loads the mappings through the same action
 * functions the control plane uses, runs the packets through the engine in
 * bursts, and prints one line per packet and a count per drop reason.
 *
 * No ports are opened: this is the engine alone, for operators' questions
 * and for the demo until the router itself (the dataplane) exists.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pcap/pcap.h>
#include <rte_errno.h>
#include <rte_mbuf.h>

#include "counters.h"
#include "eal_quick.h"
#include "mapfile.h"
#include "stats.h"
#include "verdict.h"

/* Exit codes. */
enum { FG_EXIT_OK = 0, FG_EXIT_INVALID = 1, FG_EXIT_USAGE = 2 };

static void
usage(FILE *f, const char *prog)
{
	fprintf(f,
		"usage: %s --mappings FILE --in CAPTURE.pcap [--json] [--frame-port N]\n"
		"       %s --list-reasons\n"
		"\n"
		"Loads the mapping file (JSON Lines, one operation per line), then gives\n"
		"every packet of the capture its verdict: forward, with the sinks that\n"
		"would receive a copy, or drop, with the reason. Ends with the count of\n"
		"each reason and checks that rx = forwarded + drops.\n"
		"\n"
		"  --mappings FILE    mapping file to load first\n"
		"  --in FILE          pcap capture (Ethernet link type)\n"
		"  --json             one JSON object per packet, then the totals\n"
		"  --frame-port N     UDP port of frames (default %d)\n"
		"  --list-reasons     print the drop reasons as a Markdown table\n"
		"\n"
		"Exit status: 0 done; 1 a file could not be read or loaded;\n"
		"2 usage error.\n",
		prog, prog, FG_DEFAULT_FRAME_PORT);
}

struct fg_pkt_out {
	unsigned long index;
	int json;
};

static void
print_verdict(const struct fg_pkt_out *po, const struct fg_verdict *v)
{
	if (po->json) {
		json_t *o = json_pack("{s:I, s:s}", "i", (json_int_t)po->index, "verdict",
				      v->reason == FG_PASS ? "forward" : "drop");

		if (v->reason != FG_PASS) {
			json_object_set_new(o, "reason", json_string(fg_reason_name(v->reason)));
		} else {
			json_t *copies = json_array();

			for (unsigned int s = 0; s < v->dev->n_sinks; s++) {
				const struct fg_sink *k = v->dev->sinks[s];
				char addr[INET6_ADDRSTRLEN];

				inet_ntop(k->family, k->addr, addr, sizeof(addr));
				json_array_append_new(copies, json_pack("{s:I, s:I, s:s, s:i, s:i}",
					"sink", (json_int_t)k->sink_id, "tenant", (json_int_t)k->tenant_id,
					"addr", addr, "port", k->port, "egress", k->egress));
			}
			json_object_set_new(o, "copies", copies);
		}
		char *s = json_dumps(o, JSON_COMPACT);

		puts(s);
		free(s);
		json_decref(o);
		return;
	}
	if (v->reason != FG_PASS) {
		printf("%5lu  drop     %s\n", po->index, fg_reason_name(v->reason));
		return;
	}
	printf("%5lu  forward  tenant %u device 0x%016lx epoch %u ->", po->index,
	       v->dev->tenant_id, (unsigned long)v->dev->device_id, v->dev->epoch);
	for (unsigned int s = 0; s < v->dev->n_sinks; s++) {
		const struct fg_sink *k = v->dev->sinks[s];
		char addr[INET6_ADDRSTRLEN];

		inet_ntop(k->family, k->addr, addr, sizeof(addr));
		printf(" sink %u (%s%s%s:%u, egress %u)", k->sink_id,
		       k->family == AF_INET6 ? "[" : "", addr,
		       k->family == AF_INET6 ? "]" : "", k->port, k->egress);
	}
	printf("\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "mappings", required_argument, NULL, 'm' },
		{ "in", required_argument, NULL, 'i' },
		{ "json", no_argument, NULL, 'j' },
		{ "frame-port", required_argument, NULL, 'p' },
		{ "list-reasons", no_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *mappings = NULL, *in = NULL;
	unsigned long frame_port = FG_DEFAULT_FRAME_PORT;
	struct fg_pkt_out po = { 0 };
	char *end;
	int opt;

	while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (opt) {
		case 'm': mappings = optarg; break;
		case 'i': in = optarg; break;
		case 'j': po.json = 1; break;
		case 'p':
			frame_port = strtoul(optarg, &end, 10);
			if (*end != '\0' || frame_port == 0 || frame_port > 65535) {
				fprintf(stderr, "%s: --frame-port: \"%s\" is not a UDP port (1-65535)\n",
					argv[0], optarg);
				return FG_EXIT_USAGE;
			}
			break;
		case 'l':
			fg_reasons_markdown(stdout);
			return FG_EXIT_OK;
		case 'h':
			usage(stdout, argv[0]);
			return FG_EXIT_OK;
		default:
			usage(stderr, argv[0]);
			return FG_EXIT_USAGE;
		}
	}
	if (mappings == NULL || in == NULL || optind != argc) {
		usage(stderr, argv[0]);
		return FG_EXIT_USAGE;
	}

	char errbuf[PCAP_ERRBUF_SIZE];
	pcap_t *pc = pcap_open_offline(in, errbuf);

	if (pc == NULL) {
		fprintf(stderr, "%s: %s\n", in, errbuf);
		return FG_EXIT_INVALID;
	}
	if (pcap_datalink(pc) != DLT_EN10MB) {
		fprintf(stderr, "%s: link type %s, not Ethernet\n", in,
			pcap_datalink_val_to_name(pcap_datalink(pc)));
		pcap_close(pc);
		return FG_EXIT_INVALID;
	}
	/* Size the tables (and EAL's memory) by the mapping file: no
	 * operation adds more than one entry. Read once, within the limits
	 * of mapread.h, and loaded from memory. */
	struct fg_err err = { 0 };
	unsigned long lines;
	size_t map_len;
	char *map_text;

	if (fg_mapfile_read(mappings, &map_text, &map_len, &lines, &err) != 0) {
		fprintf(stderr, "%s\n", err.msg);
		pcap_close(pc);
		return FG_EXIT_INVALID;
	}
	lines++;
	if (fg_eal_quick_start("fgverdict", 256 + (unsigned int)(lines / 1000)) != 0) {
		free(map_text);
		return FG_EXIT_INVALID;
	}

	struct fg_tables_config cfg = {
		.name = "verdict", .max_tenants = (uint32_t)lines + 64,
		.max_sinks = (uint32_t)lines + 64, .max_devices = (uint32_t)lines + 64,
		.max_readers = 1, .socket_id = SOCKET_ID_ANY,
	};
	struct fg_tables *t = fg_tables_create(&cfg);
	struct fg_ownership *o = t ? fg_ownership_create(t) : NULL;
	struct rte_mempool *mp = rte_pktmbuf_pool_create("verdict_mbufs", 2 * FG_BURST_MAX - 1,
							 0, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
							 SOCKET_ID_ANY);
	struct fg_counters *ctr = fg_counters_create(cfg.max_tenants, SOCKET_ID_ANY);

	if (o == NULL || mp == NULL || ctr == NULL) {
		fprintf(stderr, "%s: cannot set up tables: %s\n", argv[0],
			rte_strerror(rte_errno));
		return FG_EXIT_INVALID;
	}
	if (fg_mapfile_load_buf(o, mappings, map_text, map_len, NULL, &err) != 0) {
		fprintf(stderr, "%s\n", err.msg);
		free(map_text);
		return FG_EXIT_INVALID;
	}
	free(map_text);

	struct fg_engine eng;
	struct rte_mbuf *m[FG_BURST_MAX];
	struct fg_verdict v[FG_BURST_MAX];
	struct pcap_pkthdr *h;
	const u_char *data;
	uint16_t n = 0;
	int ret;

	fg_engine_init(&eng, t, (uint16_t)frame_port);
	do {
		ret = pcap_next_ex(pc, &h, &data);
		if (ret == 1) {
			m[n] = rte_pktmbuf_alloc(mp);
			char *p = m[n] ? rte_pktmbuf_append(m[n], (uint16_t)h->caplen) : NULL;

			if (p == NULL) {
				fprintf(stderr, "%s: packet %lu: %u bytes do not fit in an mbuf\n",
					in, po.index + n, h->caplen);
				return FG_EXIT_INVALID;
			}
			memcpy(p, data, h->caplen);
			n++;
		}
		if (n == FG_BURST_MAX || (ret != 1 && n > 0)) {
			fg_verdict_burst(&eng, ctr, m, n, v);
			for (uint16_t i = 0; i < n; i++, po.index++)
				print_verdict(&po, &v[i]);
			rte_pktmbuf_free_bulk(m, n);
			n = 0;
		}
	} while (ret == 1);
	if (ret == PCAP_ERROR) {
		fprintf(stderr, "%s: %s\n", in, pcap_geterr(pc));
		return FG_EXIT_INVALID;
	}
	pcap_close(pc);

	struct fg_counter_totals tot;

	fg_counters_sum(&ctr, 1, &tot);
	if (po.json) {
		json_t *j = json_pack("{s:o}", "totals", fg_totals_to_json(&tot));
		char *s = json_dumps(j, JSON_COMPACT);

		puts(s);
		free(s);
		json_decref(j);
	} else {
		printf("\n%-18s %10s\n", "reason", "packets");
		printf("%-18s %10lu\n", "forwarded", (unsigned long)tot.forwarded_packets);
		for (int r = 1; r < FG_REASON_END; r++)
			if (tot.drops[r] != 0)
				printf("%-18s %10lu\n", fg_reason_name(r), (unsigned long)tot.drops[r]);
		printf("%-18s %10lu\n", "rx (total)", (unsigned long)tot.rx_packets);
		printf("conservation: rx = forwarded + drops: %s\n",
		       fg_counters_conserved(&tot) ? "holds" : "BROKEN");
	}
	return fg_counters_conserved(&tot) ? FG_EXIT_OK : FG_EXIT_INVALID;
}
