/*
 * fgctl: the operator's client of the router's control socket (SPEC 4).
 *
 * Every command is a row of the table `fgctl_cmds` below: its words, its
 * arguments (each with the JSON field it fills and the type that checks it),
 * the request it sends, how its answer is shown, and its help. The argument
 * parser, `--help`, the usage lines and the requests are all made from those
 * rows, so a command is added by adding a row.
 *
 * The protocol (framing, commands, exit codes) is include/framegate/ctl.h.
 * Arguments are checked here before anything is sent, so that a typo gets a
 * sentence naming the argument and exit 2 rather than a round trip; the
 * router checks everything again (it is the authority).
 *
 * With --store, the same commands write to the etcd store that routers
 * follow (docs/store.md) instead of to one router: control/store_writer.c.
 * `audit verify` reads the audit log itself (control/audit.c), no router.
 *
 * fgctl links no DPDK code (only its headers, for the op decoder's structs),
 * so it runs on any host that can reach the socket, the store or the file.
 * It also links libpcap (to write `capture` files) and libsodium (base64).
 */
#define _GNU_SOURCE            /* memrchr */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <pcap/pcap.h>
#include <sodium.h>

#include "framegate/ctl.h"
#include "framegate/wire.h"
#include "mapread.h"
#include "store.h"

#include "audit.h"

#define FGCTL "fgctl"
#define FGCTL_MAX_RESPONSE (64u << 20)   /* refuse a longer response */
#define FGCTL_MAX_ARGS 8
#define FGCTL_NAME_MAX 63                /* tenant name bytes (tables.h) */
#define FGCTL_STR_(x) #x
#define FGCTL_STR(x) FGCTL_STR_(x)              /* a number macro as text */

/* The drop reasons in check order, from the one list (SPEC 3). */
static const char *const fgctl_reasons[] = {
#define FG_DROP(name, doc) #name,
#include "framegate/drop_reasons.def"
#undef FG_DROP
};
#define FGCTL_N_REASONS (sizeof(fgctl_reasons) / sizeof(fgctl_reasons[0]))

/* ---- argument types --------------------------------------------------------- */

enum fgctl_type {
	T_ID,          /* tenant, sink, limits: 1..4294967295 */
	T_U32,         /* epoch: 0..4294967295 */
	T_PORT,        /* UDP port: 1..65535 */
	T_U16,         /* egress port: 0..65535 */
	T_DEVICE,      /* "0x" hex or decimal, non-zero; sent as "0x%016llx" */
	T_KEY,         /* 32 hex digits */
	T_SINKS,       /* S1[,S2...]: 1 to FG_MAX_SINKS sink ids */
	T_NAME,        /* tenant name, 1..63 bytes of UTF-8 */
	T_ADDR,        /* IPv4 or IPv6 address */
	T_FILE,        /* a path, opened by the command */
	T_REASON,      /* a drop reason's name (drop_reasons.def) */
	T_COUNT,       /* capture: packets, 1..FG_CTL_CAPTURE_MAX_COUNT */
	T_SECONDS,     /* capture: 1..FG_CTL_CAPTURE_MAX_TIMEOUT */
	T_FLAG,        /* no value */
};

/* Checks one argument; on success *out is its JSON value, on failure msg
 * says what the value is not (the caller names the argument). */
typedef int fgctl_parse_fn(const char *s, uint64_t min, uint64_t max,
			   json_t **out, char *msg, size_t len);

struct fgctl_type_def {
	fgctl_parse_fn *parse;
	uint64_t min, max;
};

/* An unsigned decimal without sign, blanks or excess: 0 or -1. */
static int
fgctl_decimal(const char *s, uint64_t max, uint64_t *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno != 0 || *end != '\0' || *out > max ? -1 : 0;
}

static int
fgctl_parse_number(const char *s, uint64_t min, uint64_t max, json_t **out,
		   char *msg, size_t len)
{
	uint64_t v;

	if (fgctl_decimal(s, max, &v) != 0 || v < min) {
		snprintf(msg, len, "is not a number from %" PRIu64 " to %" PRIu64, min, max);
		return -1;
	}
	*out = json_integer((json_int_t)v);
	return 0;
}

static int
fgctl_parse_device(const char *s, uint64_t min, uint64_t max, json_t **out,
		   char *msg, size_t len)
{
	int hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
	const char *digits = hex ? s + 2 : s;
	uint64_t v = 0;
	char buf[19];
	char *end;

	(void)min;
	if (hex) {
		size_t n = strlen(digits);

		if (n == 0 || n > 16 || strspn(digits, "0123456789abcdefABCDEF") != n)
			v = 0;
		else
			v = strtoull(digits, &end, 16);
	} else if (fgctl_decimal(digits, max, &v) != 0) {
		v = 0;
	}
	if (v == 0) {
		snprintf(msg, len, "is not a device id (\"0x\" and up to 16 hex digits, "
			 "or a decimal number; not zero)");
		return -1;
	}
	snprintf(buf, sizeof(buf), "0x%016llx", (unsigned long long)v);
	*out = json_string(buf);
	return 0;
}

static int
fgctl_parse_key(const char *s, uint64_t min, uint64_t max, json_t **out,
		char *msg, size_t len)
{
	char key[2 * FG_AUTH_KEY_LEN + 1];

	(void)min, (void)max;
	if (strlen(s) != 2 * FG_AUTH_KEY_LEN ||
	    strspn(s, "0123456789abcdefABCDEF") != 2 * FG_AUTH_KEY_LEN) {
		snprintf(msg, len, "is not %d hex digits (a %d-byte key)",
			 2 * FG_AUTH_KEY_LEN, FG_AUTH_KEY_LEN);
		return -1;
	}
	for (int i = 0; i < 2 * FG_AUTH_KEY_LEN; i++)
		key[i] = (char)(s[i] | 0x20);            /* lower case */
	key[2 * FG_AUTH_KEY_LEN] = '\0';
	*out = json_string(key);
	return 0;
}

static int
fgctl_parse_sinks(const char *s, uint64_t min, uint64_t max, json_t **out,
		  char *msg, size_t len)
{
	json_t *a = json_array();
	const char *p = s;

	do {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		char id[24];
		uint64_t v;

		if (json_array_size(a) == FG_MAX_SINKS) {
			snprintf(msg, len, "lists more than %d sinks", FG_MAX_SINKS);
			goto bad;
		}
		snprintf(id, sizeof(id), "%.*s", (int)(n < sizeof(id) - 1 ? n : sizeof(id) - 1), p);
		if (n >= sizeof(id) || fgctl_decimal(id, max, &v) != 0 || v < min) {
			snprintf(msg, len, "is not a list of 1 to %d sink ids from %" PRIu64
				 " to %" PRIu64 " separated by commas", FG_MAX_SINKS, min, max);
			goto bad;
		}
		json_array_append_new(a, json_integer((json_int_t)v));
		p = comma ? comma + 1 : NULL;
	} while (p != NULL);
	*out = a;
	return 0;
bad:
	json_decref(a);
	return -1;
}

static int
fgctl_parse_name(const char *s, uint64_t min, uint64_t max, json_t **out,
		 char *msg, size_t len)
{
	size_t n = strlen(s);

	if (n < min || n > max) {
		snprintf(msg, len, "is not a name of %" PRIu64 " to %" PRIu64 " bytes", min, max);
		return -1;
	}
	*out = json_string(s);
	if (*out == NULL) {
		snprintf(msg, len, "is not UTF-8 text");
		return -1;
	}
	return 0;
}

static int
fgctl_parse_addr(const char *s, uint64_t min, uint64_t max, json_t **out,
		 char *msg, size_t len)
{
	unsigned char a[16];

	(void)min, (void)max;
	if (inet_pton(AF_INET, s, a) != 1 && inet_pton(AF_INET6, s, a) != 1) {
		snprintf(msg, len, "is not an IPv4 or IPv6 address");
		return -1;
	}
	*out = json_string(s);
	return 0;
}

static int
fgctl_parse_string(const char *s, uint64_t min, uint64_t max, json_t **out,
		   char *msg, size_t len)
{
	(void)min, (void)max, (void)msg, (void)len;
	*out = json_string_nocheck(s);
	return 0;
}

static int
fgctl_parse_reason(const char *s, uint64_t min, uint64_t max, json_t **out,
		   char *msg, size_t len)
{
	size_t k;

	(void)min, (void)max;
	for (size_t r = 0; r < FGCTL_N_REASONS; r++)
		if (strcmp(s, fgctl_reasons[r]) == 0) {
			*out = json_string(s);
			return 0;
		}
	k = (size_t)snprintf(msg, len, "is not a drop reason; one of:");
	for (size_t r = 0; r < FGCTL_N_REASONS && k < len; r++)
		k += (size_t)snprintf(msg + k, len - k, " %s", fgctl_reasons[r]);
	return -1;
}

static const struct fgctl_type_def fgctl_types[] = {
	[T_ID] = { fgctl_parse_number, 1, UINT32_MAX },
	[T_U32] = { fgctl_parse_number, 0, UINT32_MAX },
	[T_PORT] = { fgctl_parse_number, 1, 65535 },
	[T_U16] = { fgctl_parse_number, 0, 65535 },
	[T_DEVICE] = { fgctl_parse_device, 1, UINT64_MAX },
	[T_KEY] = { fgctl_parse_key, 0, 0 },
	[T_SINKS] = { fgctl_parse_sinks, 1, UINT32_MAX },
	[T_NAME] = { fgctl_parse_name, 1, FGCTL_NAME_MAX },
	[T_ADDR] = { fgctl_parse_addr, 0, 0 },
	[T_FILE] = { fgctl_parse_string, 0, 0 },
	[T_REASON] = { fgctl_parse_reason, 0, 0 },
	[T_COUNT] = { fgctl_parse_number, 1, FG_CTL_CAPTURE_MAX_COUNT },
	[T_SECONDS] = { fgctl_parse_number, 1, FG_CTL_CAPTURE_MAX_TIMEOUT },
	[T_FLAG] = { NULL, 0, 0 },
};

/* ---- the command rows ------------------------------------------------------- */

enum {
	A_REQUIRED = 1 << 0,
	A_WITH_NEXT = 1 << 1,  /* this option and the next go together */
	A_OR_NEXT = 1 << 2,    /* this option or the next, not both (with
				* A_REQUIRED: exactly one of them) */
};

struct fgctl_arg {
	const char *opt;        /* "--epoch"; NULL for a positional argument */
	const char *meta;       /* "E" (NULL for a flag) */
	enum fgctl_type type;
	const char *field;      /* JSON field it fills; NULL: used by fgctl itself */
	unsigned int flags;
	const char *help;
};

struct fgctl;
struct fgctl_cmd;

/* Runs a command whose arguments are parsed into c->val[]: an exit code. */
typedef int fgctl_run_fn(struct fgctl *c, const struct fgctl_cmd *cmd);
/* Shows a successful answer in human form. */
typedef void fgctl_show_fn(struct fgctl *c, const struct fgctl_cmd *cmd, json_t *res);

struct fgctl_cmd {
	const char *words;                       /* "device move" */
	const struct fgctl_arg args[FGCTL_MAX_ARGS];
	fgctl_run_fn *run;
	const char *help;                        /* one line */
	const char *long_help;
	const char *cmd;                         /* request "cmd" */
	const char *op;                          /* apply: the op's "op" */
	fgctl_show_fn *show;
};

struct fgctl {
	const char *socket;
	const char *store;                       /* --store: etcd endpoints */
	const char *store_prefix;
	bool store_gateway;                      /* --store-gateway */
	bool json;
	double timeout;                          /* --timeout: seconds, 0: none */
	int fd;                                  /* -1: not connected / lost */
	const struct fgctl_cmd *cmd;
	json_t *val[FGCTL_MAX_ARGS];             /* parsed arguments; NULL: absent */
};

static json_t *fgctl_val(struct fgctl *c, const char *opt_or_field);
static fgctl_run_fn fgctl_run_request, fgctl_run_load, fgctl_run_shield_check,
	fgctl_run_audit_verify, fgctl_run_capture;
static fgctl_run_fn fgctl_run_audit_fingerprint, fgctl_run_dump;
static fgctl_show_fn fgctl_show_applied, fgctl_show_rekey,
	fgctl_show_stats, fgctl_show_drops, fgctl_show_health,
	fgctl_show_shield_check, fgctl_show_shield_resync;

#define ARG_TENANT(f, h) { NULL, "T", T_ID, f, A_REQUIRED, h }
#define ARG_DEVICE { NULL, "D", T_DEVICE, "device", A_REQUIRED, \
	"device id: \"0x\" and up to 16 hex digits, or decimal" }
#define ARG_EPOCH { "--epoch", "E", T_U32, "epoch", A_REQUIRED, \
	"the mapping's epoch, 0 to 4294967295 (packets must carry it)" }
#define ARG_SINKS { "--sinks", "S1[,S2...]", T_SINKS, "sinks", A_REQUIRED, \
	"1 to 8 sink ids of the tenant, separated by commas" }
#define ARG_KEY(flags, h) { "--key", "HEX32", T_KEY, "key", flags, h }

static const struct fgctl_cmd fgctl_cmds[] = {
	{ "tenant add", {
		ARG_TENANT("tenant", "tenant id, 1 to 4294967295"),
		{ "--name", "N", T_NAME, "name", 0, "a name for people, up to 63 bytes" },
		{ "--max-devices", "N", T_ID, "max_devices", 0,
		  "most device mappings the tenant may hold (default: no limit)" },
		{ "--rate-pps", "N", T_ID, "rate_pps", A_WITH_NEXT,
		  "frames per second across the router (default: no limit)" },
		{ "--burst", "N", T_ID, "burst", 0, "frames allowed above the rate at once" } },
	  fgctl_run_request, "add a tenant",
	  "Creates tenant T, active, with no sinks and no devices. With a rate, its\n"
	  "frames beyond it are dropped as rate_limited. Each of the router's W\n"
	  "workers enforces its own share: N/W frames per second and a burst of\n"
	  "1/W of --burst (at least 32 frames, or all of --burst when smaller). A\n"
	  "tenant whose frames all reach one worker therefore gets N/W. A tenant\n"
	  "that exists is refused: to change its limit, delete it and add it again.",
	  "apply", "tenant", fgctl_show_applied },
	{ "tenant suspend", { ARG_TENANT("tenant", "tenant id") },
	  fgctl_run_request, "stop forwarding a tenant's frames",
	  "Its frames are dropped as tenant_suspended until `tenant resume`; its\n"
	  "mappings and sinks stay.",
	  "apply", "suspend", fgctl_show_applied },
	{ "tenant resume", { ARG_TENANT("tenant", "tenant id") },
	  fgctl_run_request, "forward a suspended tenant's frames again", "",
	  "apply", "resume", fgctl_show_applied },
	{ "tenant del", { ARG_TENANT("tenant", "tenant id") },
	  fgctl_run_request, "delete a tenant",
	  "Refused while the tenant still has sinks or device mappings.",
	  "apply", "del_tenant", fgctl_show_applied },
	{ "sink add", {
		{ NULL, "S", T_ID, "sink", A_REQUIRED, "sink id, unique across tenants" },
		{ "--tenant", "T", T_ID, "tenant", A_REQUIRED, "the tenant that owns the sink" },
		{ "--addr", "A", T_ADDR, "addr", A_REQUIRED, "destination IPv4 or IPv6 address" },
		{ "--port", "P", T_PORT, "port", A_REQUIRED, "destination UDP port, 1 to 65535" },
		{ "--egress", "E", T_U16, "egress", 0, "egress port of the router (default 0)" } },
	  fgctl_run_request, "add a sink (a destination of copies)",
	  "The address family of the sink decides the IP version of the copies sent\n"
	  "to it.",
	  "apply", "sink", fgctl_show_applied },
	{ "sink del", { { NULL, "S", T_ID, "sink", A_REQUIRED, "sink id" } },
	  fgctl_run_request, "delete a sink",
	  "Refused while a device mapping still sends to it.",
	  "apply", "del_sink", fgctl_show_applied },
	{ "device add", {
		ARG_TENANT("tenant", "the tenant that owns the device"), ARG_DEVICE,
		ARG_EPOCH, ARG_SINKS,
		ARG_KEY(0, "SipHash key, 32 hex digits (default: frames are not authenticated)") },
	  fgctl_run_request, "map a device to its sinks",
	  "For a device the tenant already holds, replaces its sinks and key; the\n"
	  "epoch must not decrease. Refused for a device another tenant holds: use\n"
	  "`device move`.",
	  "apply", "device", fgctl_show_applied },
	{ "device del", { ARG_TENANT("tenant", "the tenant that holds the device"), ARG_DEVICE },
	  fgctl_run_request, "remove a device mapping",
	  "When this returns, no frame of the device is forwarded.",
	  "apply", "del_device", fgctl_show_applied },
	{ "device move", {
		ARG_DEVICE,
		{ "--from", "T1", T_ID, "from", A_REQUIRED, "the tenant that holds the device now" },
		{ "--to", "T2", T_ID, "to", A_REQUIRED, "the tenant that gets it" },
		{ "--epoch", "E", T_U32, "epoch", A_REQUIRED,
		  "the new epoch, larger than the current one" },
		{ "--sinks", "S1[,S2...]", T_SINKS, "sinks", A_REQUIRED,
		  "1 to 8 sink ids of the new tenant, separated by commas" },
		ARG_KEY(0, "a new SipHash key, 32 hex digits (default: the key is kept)") },
	  fgctl_run_request, "move a device to another tenant in one step",
	  "Removes the old mapping and installs the new one at once: no frame is\n"
	  "forwarded under a mix of the two. Refused unless T1 holds the device at\n"
	  "that moment and E is larger than its epoch.",
	  "apply", "move", fgctl_show_applied },
	{ "device rekey", {
		ARG_TENANT("tenant", "the tenant that holds the device"), ARG_DEVICE,
		ARG_KEY(A_REQUIRED | A_OR_NEXT, "the new SipHash key, 32 hex digits"),
		{ "--no-key", NULL, T_FLAG, NULL, 0, "remove the key: frames are no longer authenticated" } },
	  fgctl_run_request, "rotate or remove a device's key",
	  "One of the two is required, so that a forgotten --key never turns\n"
	  "authentication off by accident.",
	  "rekey", NULL, fgctl_show_rekey },
	{ "load", { { NULL, "FILE", T_FILE, NULL, A_REQUIRED,
		      "a mapping file: JSON Lines, one op per line" } },
	  fgctl_run_load, "apply a mapping file as one transaction",
	  "Sends the file in chunks of whole lines; the router checks every line,\n"
	  "in order, against the state the earlier ones produce, and applies all of\n"
	  "them or none. An error names the line as FILE:LINE. Shows progress when\n"
	  "stdout is a terminal.",
	  NULL, NULL, NULL },
	{ "dump", { { "--tenant", "T", T_ID, "tenant", 0, "only this tenant's state" },
		    { "--with-keys", NULL, T_FLAG, "with_keys", 0,
		      "include the devices' SipHash keys (root and the control group only)" } },
	  fgctl_run_dump, "print the state as a mapping file",
	  "One JSON op per line: the output can be given to `fgctl load`. It streams:\n"
	  "neither the router nor fgctl holds the whole state, at any size. Without\n"
	  "--with-keys a keyed device's key reads \"withheld\", which `fgctl load`\n"
	  "refuses by name: a backup to restore from needs --with-keys (and then\n"
	  "holds secrets: keep it as such).",
	  "dump", NULL, NULL },
	{ "stats", { { 0 } },
	  fgctl_run_request, "print the router's counters",
	  "Packets received, forwarded, copies sent, tx_full, and every drop reason\n"
	  "that is not zero (--json: all of them).",
	  "stats", NULL, fgctl_show_stats },
	{ "drops", {
		{ "--tenant", "T", T_ID, "tenant", 0, "only this tenant's drops" },
		{ "--all", NULL, T_FLAG, NULL, 0, "list every reason, zeros included" } },
	  fgctl_run_request, "print the drops per reason",
	  "The reasons are SPEC 3's, in the order the router checks them.",
	  "drops", NULL, fgctl_show_drops },
	{ "health", { { 0 } },
	  fgctl_run_request, "print the state of the router", "",
	  "health", NULL, fgctl_show_health },
	{ "shield check", { { 0 } },
	  fgctl_run_shield_check, "compare the XDP shield's maps with the tables",
	  "Reads every tenant and (tenant, device) mapping of the dataplane tables\n"
	  "and of the shield's BPF maps, and lists each difference: missing from the\n"
	  "maps, extra in the maps, or held with another state, epoch or key (at\n"
	  "most 1000 listed, all counted). Changes nothing. Exit status 0 when they\n"
	  "agree, 1 when they differ (or the router has no shield).",
	  "shield.check", NULL, fgctl_show_shield_check },
	{ "shield resync", { { 0 } },
	  fgctl_run_request, "rewrite the XDP shield's maps from the tables",
	  "Empties the shield's tenant and owner maps and writes every tenant and\n"
	  "mapping of the tables into them again: the way back after a failed map\n"
	  "write (health: shield_in_step false) or an entry changed behind the\n"
	  "router's back. Frames of the router's tenants are dropped by the shield\n"
	  "for the moment it takes.",
	  "shield.resync", NULL, fgctl_show_shield_resync },
	{ "audit verify", { { NULL, "FILE", T_FILE, NULL, A_REQUIRED,
			      "the audit log (audit_log in the router's configuration)" } },
	  fgctl_run_audit_verify, "prove the audit log's hash chain",
	  "Reads FILE itself (no router needed) and checks every record in order:\n"
	  "its JSON, its own SHA-256 hash, its sequence number (one more than the\n"
	  "record before) and its link to the record before. Prints the records\n"
	  "checked and the last hash; keep that hash elsewhere to prove later that\n"
	  "nothing was cut from the end. Exit status 1 names the first bad record\n"
	  "(line and sequence number) and what is wrong with it: bad_json,\n"
	  "bad_record, hash_mismatch, sequence_gap, broken_link or torn_line.",
	  NULL, NULL, NULL },
	{ "audit fingerprint", { { NULL, "HEX32", T_KEY, NULL, A_REQUIRED, "a device key" } },
	  fgctl_run_audit_fingerprint, "print a device key's fingerprint, as the audit log holds it",
	  "The audit log holds a key's \"key_fp\", never the key: the first 8 bytes\n"
	  "of the SHA-256 of the key's 16 bytes, in hex (either case of HEX32 gives\n"
	  "the same). Needs no router. The key is in the process list meanwhile.",
	  NULL, NULL, NULL },
	{ "capture", {
		{ "--reason", "R", T_REASON, "reason", A_REQUIRED,
		  "the drop reason (fgctl drops --all lists them)" },
		{ "--count", "N", T_COUNT, "count", A_REQUIRED,
		  "packets to save, 1 to " FGCTL_STR(FG_CTL_CAPTURE_MAX_COUNT) },
		{ "--out", "FILE.pcap", T_FILE, NULL, A_REQUIRED,
		  "the pcap file fgctl writes (replaced only when the capture is done)" },
		{ "--tenant", "T", T_ID, "tenant", 0,
		  "only drops claiming this tenant (reasons from unknown_tenant on)" },
		{ "--timeout", "S", T_SECONDS, "timeout", 0,
		  "give up after S seconds, 1 to " FGCTL_STR(FG_CTL_CAPTURE_MAX_TIMEOUT)
		  " (default " FGCTL_STR(FG_CTL_CAPTURE_DEFAULT_TIMEOUT) ")" } },
	  fgctl_run_capture, "save dropped packets of one reason to a pcap file",
	  "The router's workers copy the first N packets they drop for reason R\n"
	  "after the capture starts (no sampling; at most " FGCTL_STR(FG_CTL_CAPTURE_SNAPLEN) " bytes of each),\n"
	  "and send them back when N are saved or the timeout passes; fgctl writes\n"
	  "them, with their arrival times in nanoseconds, to FILE.pcap (mode 0600:\n"
	  "it holds tenants' video). One capture runs at a time; interrupting fgctl\n"
	  "cancels it. Root or the control group only. Exit status 0 when N were\n"
	  "saved, 1 when the timeout passed first (the file holds those saved).",
	  "capture", NULL, NULL },
};
#define FGCTL_N_CMDS (sizeof(fgctl_cmds) / sizeof(fgctl_cmds[0]))

static int
fgctl_n_args(const struct fgctl_cmd *cmd)
{
	int n = 0;

	while (n < FGCTL_MAX_ARGS && (cmd->args[n].opt != NULL || cmd->args[n].meta != NULL))
		n++;
	return n;
}

/* ---- usage and help, from the rows ------------------------------------------ */

/* "D --from T1 --to T2 --epoch E --sinks S1[,S2...] [--key HEX32]" */
static void
fgctl_synopsis(const struct fgctl_cmd *cmd, char *out, size_t len)
{
	int n = fgctl_n_args(cmd);
	size_t k = 0;

	out[0] = '\0';
#define PUT(...) (k += (size_t)snprintf(out + k, k < len ? len - k : 0, __VA_ARGS__))
	for (int i = 0; i < n; i++)
		if (cmd->args[i].opt == NULL)
			PUT(" %s", cmd->args[i].meta);
	for (int i = 0; i < n; i++) {
		const struct fgctl_arg *a = &cmd->args[i];
		bool grouped = i > 0 && (cmd->args[i - 1].flags & (A_WITH_NEXT | A_OR_NEXT));

		if (a->opt == NULL)
			continue;
		bool required = a->flags & A_REQUIRED;

		if (grouped)
			required = cmd->args[i - 1].flags & A_REQUIRED;
		if (!grouped)
			PUT(!required ? " [" : a->flags & A_OR_NEXT ? " {" : " ");
		else
			PUT(cmd->args[i - 1].flags & A_OR_NEXT ? " | " : " ");
		PUT("%s%s%s", a->opt, a->meta ? " " : "", a->meta ? a->meta : "");
		if (!(a->flags & (A_WITH_NEXT | A_OR_NEXT)) && grouped && required)
			PUT("}");
		else if (!(a->flags & (A_WITH_NEXT | A_OR_NEXT)) && !required)
			PUT("]");
	}
#undef PUT
}

static void
fgctl_cmd_help(FILE *f, const struct fgctl_cmd *cmd)
{
	char syn[512];
	int n = fgctl_n_args(cmd);

	fgctl_synopsis(cmd, syn, sizeof(syn));
	fprintf(f, "usage: " FGCTL " [--socket PATH] [--json] %s%s\n\n%s.\n", cmd->words, syn,
		cmd->help);
	if (cmd->long_help[0] != '\0')
		fprintf(f, "\n%s\n", cmd->long_help);
	if (n > 0)
		fprintf(f, "\n");
	for (int i = 0; i < n; i++) {
		const struct fgctl_arg *a = &cmd->args[i];
		char name[64];

		snprintf(name, sizeof(name), "%s%s%s", a->opt ? a->opt : "",
			 a->opt && a->meta ? " " : "", a->meta ? a->meta : "");
		fprintf(f, "  %-22s %s\n", name, a->help);
	}
	if (cmd->op != NULL)
		fprintf(f, "\nSends {\"cmd\":\"%s\",\"op\":{\"op\":\"%s\",...}} (ctl.h).\n",
			cmd->cmd, cmd->op);
	else if (cmd->cmd != NULL)
		fprintf(f, "\nSends {\"cmd\":\"%s\",...} (ctl.h).\n", cmd->cmd);
}

static void
fgctl_help(FILE *f)
{
	fprintf(f,
		"usage: " FGCTL " [--socket PATH] [--timeout S] [--json] COMMAND [ARGUMENTS]\n"
		"       " FGCTL " --store ENDPOINTS [--store-prefix P] [--store-gateway] [--json]\n"
		"             COMMAND [ARGUMENTS]\n"
		"       " FGCTL " COMMAND --help\n"
		"\n"
		"The operator's client of the framegate router's control socket, or with\n"
		"--store of the etcd store that routers follow; and the checker of the\n"
		"router's audit log (audit verify reads the file itself).\n"
		"\n"
		"Commands:\n");
	for (size_t i = 0; i < FGCTL_N_CMDS; i++) {
		char syn[512];

		fgctl_synopsis(&fgctl_cmds[i], syn, sizeof(syn));
		fprintf(f, "  %s%s\n      %s\n", fgctl_cmds[i].words, syn, fgctl_cmds[i].help);
	}
	fprintf(f,
		"\n"
		"Options:\n"
		"  --socket PATH   the router's control socket (default $FG_CTL_SOCKET,\n"
		"                  or " FG_CTL_DEFAULT_SOCKET ")\n"
		"  --store URLS    write to (or read from) the etcd store routers follow\n"
		"                  instead: etcd client URLs separated by commas. The tenant,\n"
		"                  sink and device commands, load (one transaction), dump\n"
		"                  and health work there; stats, drops and shield ask a router\n"
		"  --store-prefix P  the store's key prefix (default $FG_STORE_PREFIX or\n"
		"                  " FG_STORE_PREFIX_DEFAULT ")\n"
		"  --store-gateway write through etcd's JSON gateway only; by default\n"
		"                  transactions go over etcd's gRPC API on the same\n"
		"                  http:// URLs (https:// URLs always use the gateway)\n"
		"  --timeout S     give up when the router sends nothing for S seconds\n"
		"                  (default: wait; a large load's commit can take a while)\n"
		"  --json          print the router's answer as JSON\n"
		"  --help          this text; after a command, that command's help\n"
		"\n"
		"Exit status: 0 done; 1 refused or invalid; 2 usage error; 3 the router\n"
		"(or the store) cannot be reached, or the connection broke.\n");
}

/* ---- the manual page, from the same rows -------------------------------------- */

#ifndef FG_VERSION
#define FG_VERSION ""
#endif

/* Text as roff: backslashes escaped, a dash that starts an option or
 * follows another dash is a minus (\-), a line never starts with a control
 * character, and `code` becomes bold. */
static void
fgctl_man_text(FILE *f, const char *s)
{
	bool bold = false, line_start = true;

	for (const char *p = s; *p != '\0'; p++) {
		if (line_start && (*p == '.' || *p == '\''))
			fputs("\\&", f);
		line_start = *p == '\n';
		if (*p == '\\')
			fputs("\\e", f);
		else if (*p == '-' && (p == s || strchr(" \n[{|(-", p[-1]) != NULL))
			fputs("\\-", f);
		else if (*p == '`')
			fputs((bold = !bold) ? "\\fB" : "\\fR", f);
		else
			fputc(*p, f);
	}
	if (bold)
		fputs("\\fR", f);
}

/* `fgctl --man`: fgctl(8) in roff, one subsection per command row, so a row
 * added to fgctl_cmds is in the page the build installs (man/meson.build). */
static void
fgctl_man(FILE *f)
{
	fprintf(f,
		".\\\" fgctl(8), generated by `fgctl --man` from fgctl's command rows.\n"
		".TH FGCTL 8 \"\" \"framegate %s\" \"framegate\"\n"
		".SH NAME\n"
		"fgctl \\- change and read a running framegate router\n"
		".SH SYNOPSIS\n"
		".B fgctl\n"
		"[\\fB\\-\\-socket\\fR \\fIPATH\\fR] [\\fB\\-\\-json\\fR] \\fICOMMAND\\fR [\\fIARGUMENTS\\fR]\n"
		".br\n"
		".B fgctl\n"
		"\\fICOMMAND\\fR \\fB\\-\\-help\\fR\n"
		".SH DESCRIPTION\n"
		".B fgctl\n"
		"is the client of the control socket of\n"
		".BR framegate (8).\n"
		"Each command below becomes one request; the router answers after the\n"
		"change is in its fsync'd journal and every worker has stopped using what\n"
		"it replaced, so an answer of ok means durable and enforced.\n"
		"Arguments are checked before anything is sent: a bad one is named and\n"
		"nothing is sent. The router checks everything again.\n"
		".PP\n"
		"Changes need root or membership of the router's\n"
		".B control_group\n"
		"(the service's is\n"
		".BR framegate );\n"
		"reads need that or the\n"
		".BR read_group ;\n"
		"see\n"
		".BR framegate.conf (5).\n"
		"Answers are tables for people, or the router's JSON with\n"
		".BR \\-\\-json .\n"
		".SH OPTIONS\n"
		".TP\n"
		".BI \\-\\-socket \" PATH\"\n"
		"The router's control socket. Default: the environment variable\n"
		".BR FG_CTL_SOCKET ,\n"
		"or\n"
		".IR %s .\n"
		".TP\n"
		".BI \\-\\-store \" URLS\"\n"
		"Write to (or read from) the etcd store that routers follow, instead of\n"
		"one router: etcd client URLs separated by commas. The tenant, sink and\n"
		"device commands, load (one transaction), dump and health work there.\n"
		".TP\n"
		".BI \\-\\-store\\-prefix \" P\"\n"
		"The store's key prefix. Default: the environment variable\n"
		".BR FG_STORE_PREFIX ,\n"
		"or\n"
		".IR " FG_STORE_PREFIX_DEFAULT " .\n"
		".TP\n"
		".B \\-\\-store\\-gateway\n"
		"Send everything through etcd's JSON gateway. By default transactions\n"
		"go over etcd's gRPC API on the same http:// URLs.\n"
		".TP\n"
		".B \\-\\-json\n"
		"Print the router's answer as JSON.\n"
		".TP\n"
		".B \\-\\-help\n"
		"List the commands; after a command, describe that command.\n"
		".SH COMMANDS\n",
		FG_VERSION, FG_CTL_DEFAULT_SOCKET);
	for (size_t i = 0; i < FGCTL_N_CMDS; i++) {
		const struct fgctl_cmd *cmd = &fgctl_cmds[i];
		int n = fgctl_n_args(cmd);
		char syn[512];

		fgctl_synopsis(cmd, syn, sizeof(syn));
		fprintf(f, ".SS \"%s\"\n.B fgctl %s\n", cmd->words, cmd->words);
		if (syn[0] != '\0') {
			fgctl_man_text(f, syn + 1);      /* past its leading blank */
			fprintf(f, "\n");
		}
		/* The one-line help is a phrase ("add a tenant"): a sentence here. */
		fprintf(f, ".PP\n%c", toupper((unsigned char)cmd->help[0]));
		fgctl_man_text(f, cmd->help + 1);
		fprintf(f, ".\n");
		if (cmd->long_help[0] != '\0') {
			fprintf(f, ".PP\n");
			fgctl_man_text(f, cmd->long_help);
			fprintf(f, "\n");
		}
		for (int a = 0; a < n; a++) {
			const struct fgctl_arg *arg = &cmd->args[a];

			fprintf(f, ".TP\n");
			if (arg->opt != NULL) {
				fprintf(f, "\\fB");
				fgctl_man_text(f, arg->opt);
				fprintf(f, "\\fR%s%s%s\n", arg->meta ? " \\fI" : "",
					arg->meta ? arg->meta : "", arg->meta ? "\\fR" : "");
			} else {
				fprintf(f, ".I %s\n", arg->meta);
			}
			fgctl_man_text(f, arg->help);
			fprintf(f, "\n");
		}
	}
	fprintf(f,
		".SH ENVIRONMENT\n"
		".TP\n"
		".B FG_CTL_SOCKET\n"
		"The control socket when\n"
		".B \\-\\-socket\n"
		"is not given.\n"
		".SH EXIT STATUS\n"
		".TP\n"
		".B %d\n"
		"Done.\n"
		".TP\n"
		".B %d\n"
		"The router refused the request, or the answer is a failure (a shield that\n"
		"differs from the tables); the message names the input.\n"
		".TP\n"
		".B %d\n"
		"Usage error: an unknown command or option, or a bad argument, named.\n"
		".TP\n"
		".B %d\n"
		"The router cannot be reached, or the connection broke.\n"
		".SH FILES\n"
		".TP\n"
		".I %s\n"
		"The control socket of the packaged service.\n"
		".SH SEE ALSO\n"
		".BR framegate (8),\n"
		".BR framegate.conf (5)\n",
		FG_CTL_EXIT_OK, FG_CTL_EXIT_REFUSED, FG_CTL_EXIT_USAGE,
		FG_CTL_EXIT_UNREACHABLE, FG_CTL_DEFAULT_SOCKET);
}

/* ---- messages --------------------------------------------------------------- */

static int
fgctl_usage_error(const struct fgctl_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, FGCTL ": ");
	if (cmd != NULL)
		fprintf(stderr, "%s: ", cmd->words);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(see '" FGCTL " %s%s--help')\n", cmd ? cmd->words : "", cmd ? " " : "");
	return FG_CTL_EXIT_USAGE;
}

/* How an argument is named in messages: its option, or its field. */
static const char *
fgctl_arg_name(const struct fgctl_arg *a)
{
	return a->opt ? a->opt : a->field ? a->field : a->meta;
}

/* ---- parsing a command line ------------------------------------------------- */

static int
fgctl_set_arg(struct fgctl *c, int i, const char *value)
{
	const struct fgctl_cmd *cmd = c->cmd;
	const struct fgctl_arg *a = &cmd->args[i];
	const struct fgctl_type_def *t = &fgctl_types[a->type];
	char msg[512];

	if (c->val[i] != NULL)
		return fgctl_usage_error(cmd, "%s is given twice", fgctl_arg_name(a));
	if (t->parse == NULL) {
		c->val[i] = json_true();
		return 0;
	}
	if (t->parse(value, t->min, t->max, &c->val[i], msg, sizeof(msg)) != 0)
		return fgctl_usage_error(cmd, "%s \"%s\" %s", fgctl_arg_name(a), value, msg);
	return 0;
}

/* argv holds what follows the command words. 0 or an exit code; -1 after
 * --help was served. */
static int
fgctl_parse_args(struct fgctl *c, int argc, char **argv)
{
	const struct fgctl_cmd *cmd = c->cmd;
	int n = fgctl_n_args(cmd), next_pos = 0, ret;

	for (int k = 0; k < argc; k++) {
		const char *s = argv[k];

		if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
			fgctl_cmd_help(stdout, cmd);
			return -1;
		}
		if (strcmp(s, "--json") == 0) {
			c->json = true;
			continue;
		}
		if (s[0] == '-' && s[1] != '\0' && !(s[1] >= '0' && s[1] <= '9')) {
			const char *eq = strchr(s, '=');
			size_t len = eq ? (size_t)(eq - s) : strlen(s);
			int i;

			if (strncmp(s, "--socket", len) == 0 && len == 8) {
				if (eq == NULL && k + 1 == argc)
					return fgctl_usage_error(cmd, "--socket needs a PATH");
				c->socket = eq ? eq + 1 : argv[++k];
				continue;
			}
			for (i = 0; i < n; i++)
				if (cmd->args[i].opt && strlen(cmd->args[i].opt) == len &&
				    strncmp(cmd->args[i].opt, s, len) == 0)
					break;
			if (i == n)
				return fgctl_usage_error(cmd, "unknown option \"%.*s\"", (int)len, s);
			if (cmd->args[i].meta == NULL) {
				if (eq != NULL)
					return fgctl_usage_error(cmd, "%s takes no value", cmd->args[i].opt);
				ret = fgctl_set_arg(c, i, s);
			} else if (eq != NULL) {
				ret = fgctl_set_arg(c, i, eq + 1);
			} else if (k + 1 == argc) {
				return fgctl_usage_error(cmd, "%s needs a value (%s)", cmd->args[i].opt,
							 cmd->args[i].meta);
			} else {
				ret = fgctl_set_arg(c, i, argv[++k]);
			}
			if (ret != 0)
				return ret;
			continue;
		}
		while (next_pos < n && cmd->args[next_pos].opt != NULL)
			next_pos++;
		if (next_pos == n)
			return fgctl_usage_error(cmd, "unexpected argument \"%s\"", s);
		ret = fgctl_set_arg(c, next_pos++, s);
		if (ret != 0)
			return ret;
	}
	for (int i = 0; i < n; i++) {
		const struct fgctl_arg *a = &cmd->args[i];

		if ((a->flags & A_REQUIRED) && (a->flags & A_OR_NEXT)) {
			if (c->val[i] == NULL && c->val[i + 1] == NULL)
				return fgctl_usage_error(cmd, "give %s %s or %s", a->opt, a->meta,
							 cmd->args[i + 1].opt);
		} else if ((a->flags & A_REQUIRED) && c->val[i] == NULL)
			return fgctl_usage_error(cmd, "missing %s%s%s (%s)", a->opt ? a->opt : "",
						 a->opt ? " " : "", a->meta, a->help);
		if ((a->flags & A_WITH_NEXT) && (c->val[i] == NULL) != (c->val[i + 1] == NULL))
			return fgctl_usage_error(cmd, "%s and %s go together",
						 a->opt, cmd->args[i + 1].opt);
		if ((a->flags & A_OR_NEXT) && c->val[i] != NULL && c->val[i + 1] != NULL)
			return fgctl_usage_error(cmd, "%s and %s exclude each other",
						 a->opt, cmd->args[i + 1].opt);
	}
	return 0;
}

/* Words of a row matched by argv: their count, or 0. */
static int
fgctl_match(const struct fgctl_cmd *cmd, int argc, char **argv)
{
	const char *w = cmd->words;
	int k = 0;

	while (*w != '\0') {
		size_t len = strcspn(w, " ");

		if (k == argc || strlen(argv[k]) != len || strncmp(argv[k], w, len) != 0)
			return 0;
		k++;
		w += len;
		w += *w == ' ';
	}
	return k;
}

/* ---- the connection --------------------------------------------------------- */

static int
fgctl_connect(struct fgctl *c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (strlen(c->socket) >= sizeof(sa.sun_path))
		return fgctl_usage_error(NULL, "--socket \"%s\" is longer than %zu bytes", c->socket,
					 sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, c->socket, strlen(c->socket) + 1);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd >= 0 && c->timeout > 0) {
		struct timeval tv = { .tv_sec = (time_t)c->timeout,
				      .tv_usec = (suseconds_t)((c->timeout - (double)(time_t)c->timeout) * 1e6) };

		setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		fprintf(stderr, FGCTL ": cannot reach the router at %s: %s\n", c->socket,
			strerror(errno));
		if (c->fd >= 0)
			close(c->fd);
		c->fd = -1;
		return FG_CTL_EXIT_UNREACHABLE;
	}
	return FG_CTL_EXIT_OK;
}

/* The connection is lost or unusable: say why (err < 0: said already),
 * drop it, exit 3. */
static int
fgctl_lost(struct fgctl *c, int err)
{
	if (err < 0)
		;
	else if ((err == EAGAIN || err == EWOULDBLOCK) && c->timeout > 0)
		fprintf(stderr, FGCTL ": no answer from the router at %s within %g s (--timeout)\n",
			c->socket, c->timeout);
	else if (err == 0 || err == EPIPE || err == ECONNRESET)
		fprintf(stderr, FGCTL ": the router at %s closed the connection\n", c->socket);
	else
		fprintf(stderr, FGCTL ": talking to the router at %s: %s\n", c->socket,
			strerror(err));
	close(c->fd);
	c->fd = -1;
	return FG_CTL_EXIT_UNREACHABLE;
}

/* All len bytes, through EINTR and short writes: 0 or errno. */
static int
fgctl_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Exactly len bytes, through EINTR and short reads: 0, errno, or 0 with
 * *eof set when the peer closed first. */
static int
fgctl_read_all(int fd, void *buf, size_t len, bool *eof)
{
	char *p = buf;

	*eof = false;
	while (len > 0) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno;
		if (n == 0) {
			*eof = true;
			return 0;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * One request, one response (ctl.h framing). Returns FG_CTL_EXIT_OK with
 * *res the response (ok:true), FG_CTL_EXIT_REFUSED with *res (ok:false, not
 * yet reported), or another exit code after reporting. Takes req.
 */
static int fgctl_recv(struct fgctl *c, json_t **res);
static json_t *fgctl_val(struct fgctl *c, const char *opt_or_field);

static int
fgctl_call(struct fgctl *c, json_t *req, json_t **res)
{
	char *text = json_dumps(req, JSON_COMPACT);
	size_t len = text ? strlen(text) : 0;
	uint8_t hdr[4];
	int err;

	json_decref(req);
	*res = NULL;
	if (text == NULL) {
		fprintf(stderr, FGCTL ": out of memory\n");
		return FG_CTL_EXIT_REFUSED;
	}
	if (len > FG_CTL_MAX_REQUEST) {
		fprintf(stderr, FGCTL ": the request is %zu bytes, more than the %u a message may have\n",
			len, FG_CTL_MAX_REQUEST);
		free(text);
		return FG_CTL_EXIT_REFUSED;
	}
	hdr[0] = (uint8_t)(len >> 24), hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8), hdr[3] = (uint8_t)len;
	err = fgctl_write_all(c->fd, hdr, 4);
	if (err == 0)
		err = fgctl_write_all(c->fd, text, len);
	free(text);
	if (err != 0)
		return fgctl_lost(c, err);
	return fgctl_recv(c, res);
}

/* One response (ctl.h framing), as fgctl_call returns it. */
static int
fgctl_recv(struct fgctl *c, json_t **res)
{
	uint8_t hdr[4];
	json_error_t jerr;
	size_t len;
	bool eof;
	char *buf;
	int err;

	*res = NULL;
	err = fgctl_read_all(c->fd, hdr, 4, &eof);
	if (err != 0 || eof)
		return fgctl_lost(c, err);
	len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 | (size_t)hdr[2] << 8 | hdr[3];
	if (len > FGCTL_MAX_RESPONSE) {
		fprintf(stderr, FGCTL ": the router at %s announced a response of %zu bytes, "
			"more than %u; giving up\n", c->socket, len, FGCTL_MAX_RESPONSE);
		return fgctl_lost(c, -1);
	}
	buf = malloc(len ? len : 1);
	if (buf == NULL) {
		fprintf(stderr, FGCTL ": out of memory for a response of %zu bytes\n", len);
		return fgctl_lost(c, ENOMEM);
	}
	err = fgctl_read_all(c->fd, buf, len, &eof);
	if (err != 0 || eof) {
		free(buf);
		return fgctl_lost(c, err);
	}
	*res = json_loadb(buf, len, 0, &jerr);
	free(buf);
	if (!json_is_object(*res) || !json_is_boolean(json_object_get(*res, "ok"))) {
		fprintf(stderr, FGCTL ": the router at %s sent a response that is not a JSON object "
			"with \"ok\"%s%s\n", c->socket, *res ? "" : ": ", *res ? "" : jerr.text);
		json_decref(*res);
		*res = NULL;
		return fgctl_lost(c, -1);
	}
	return json_is_true(json_object_get(*res, "ok")) ? FG_CTL_EXIT_OK : FG_CTL_EXIT_REFUSED;
}

/* The router's refusal, in its own words. */
static void
fgctl_print_refusal(json_t *res)
{
	const char *msg = json_string_value(json_object_get(res, "error"));
	const char *code = json_string_value(json_object_get(res, "code"));

	if (msg != NULL)
		fprintf(stderr, FGCTL ": %s\n", msg);
	else
		fprintf(stderr, FGCTL ": the router refused the request (%s)\n",
			code ? code : "no reason given");
}

/* --json: the response without "ok", compact, on stdout. */
static void
fgctl_print_json(json_t *res)
{
	char *s;

	json_object_del(res, "ok");
	s = json_dumps(res, JSON_COMPACT);
	if (s != NULL)
		puts(s);
	free(s);
}

/* ---- requests made from the rows ---------------------------------------- */

/* Fields of the arguments that have one, in row order. */
static json_t *
fgctl_fields(struct fgctl *c, json_t *obj)
{
	for (int i = 0; i < fgctl_n_args(c->cmd); i++)
		if (c->cmd->args[i].field != NULL && c->val[i] != NULL)
			json_object_set(obj, c->cmd->args[i].field, c->val[i]);
	return obj;
}

/* The mapping-file op of an apply row (SPEC 4 "Mapping file"). */
static json_t *
fgctl_op(struct fgctl *c, const struct fgctl_cmd *cmd)
{
	json_t *op = fgctl_fields(c, json_pack("{s:s}", "op", cmd->op));

	/* The sink op requires egress; fgctl's default is port 0. */
	if (strcmp(cmd->op, "sink") == 0 && json_object_get(op, "egress") == NULL)
		json_object_set_new(op, "egress", json_integer(0));
	return op;
}

/* ---- store mode (--store) ------------------------------------------------------ */

static struct fg_store_writer *
fgctl_store_open(struct fgctl *c, int *ret)
{
	struct fg_err err = { 0 };
	struct fg_store_writer *w = c->store_gateway
		? fg_store_writer_open_gateway(c->store, c->store_prefix, 5000, &err)
		: fg_store_writer_open(c->store, c->store_prefix, 5000, &err);

	if (w == NULL) {
		fprintf(stderr, FGCTL ": --store: %s\n", err.msg);
		*ret = FG_CTL_EXIT_USAGE;
	}
	return w;
}

/* A store error's exit code: unreachable (3) or refused (1). */
static int
fgctl_store_fail(const struct fg_err *err)
{
	fprintf(stderr, FGCTL ": %s\n", err->msg);
	switch (err->code) {
	case ECONNREFUSED: case ETIMEDOUT: case EHOSTUNREACH: case ECONNRESET:
		return FG_CTL_EXIT_UNREACHABLE;
	default:
		return FG_CTL_EXIT_REFUSED;
	}
}

static int
fgctl_store_emit(void *ctx, const char *line, size_t len)
{
	json_t *op = ctx != NULL ? NULL : json_loadb(line, len, 0, NULL);
	char *redacted = NULL;
	int ret;

	/* ctx: keys wanted. Otherwise a keyed device's key is withheld, as the
	 * router's own dump does. */
	if (json_is_string(json_object_get(op, "key"))) {
		json_object_set_new(op, "key", json_string(FG_KEY_WITHHELD));
		redacted = json_dumps(op, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (redacted == NULL) {
			json_decref(op);
			return -ENOMEM;
		}
		line = redacted;
		len = strlen(redacted);
	}
	json_decref(op);
	ret = fwrite(line, 1, len, stdout) == len && putchar('\n') != EOF ? 0 : -EIO;
	free(redacted);
	return ret;
}

static int
fgctl_store_request(struct fgctl *c, const struct fgctl_cmd *cmd)
{
	struct fg_err err = { 0 };
	struct fg_store_writer *w;
	int64_t rev = 0, last = 0;
	int ret = FG_CTL_EXIT_OK;

	if (cmd->op == NULL && strcmp(cmd->cmd, "rekey") != 0 && strcmp(cmd->cmd, "dump") != 0 &&
	    strcmp(cmd->cmd, "health") != 0) {
		fprintf(stderr, FGCTL ": %s asks a router, not the store: give --socket instead of --store\n",
			cmd->words);
		return FG_CTL_EXIT_USAGE;
	}
	if ((w = fgctl_store_open(c, &ret)) == NULL)
		return ret;
	if (cmd->op != NULL) {
		json_t *op = fgctl_op(c, cmd);
		char *line = json_dumps(op, JSON_COMPACT | JSON_PRESERVE_ORDER);
		const char *lines[1] = { line };
		size_t lens[1] = { line ? strlen(line) : 0 };

		if (line == NULL || fg_store_apply(w, lines, lens, 1, false, &rev, NULL, &err) < 0)
			ret = line ? fgctl_store_fail(&err) : FG_CTL_EXIT_REFUSED;
		else if (c->json)
			printf("{\"revision\":%" PRId64 "}\n", rev);
		else
			printf("applied %s at store revision %" PRId64 "\n", line, rev);
		free(line);
		json_decref(op);
	} else if (strcmp(cmd->cmd, "rekey") == 0) {
		uint8_t key[FG_AUTH_KEY_LEN];
		json_t *k = fgctl_val(c, "--key");
		const char *hex = k ? json_string_value(k) : NULL;

		for (int i = 0; hex != NULL && i < FG_AUTH_KEY_LEN; i++)
			sscanf(hex + 2 * i, "%2hhx", &key[i]);
		if (fg_store_rekey(w, (uint32_t)json_integer_value(fgctl_val(c, "tenant")),
				   strtoull(json_string_value(fgctl_val(c, "device")), NULL, 0),
				   hex ? key : NULL, &rev, &err) < 0)
			ret = fgctl_store_fail(&err);
		else if (c->json)
			printf("{\"revision\":%" PRId64 "}\n", rev);
		else
			printf("%s at store revision %" PRId64 "\n", hex ? "key rotated" : "key removed", rev);
	} else if (strcmp(cmd->cmd, "dump") == 0) {
		json_t *t = fgctl_val(c, "tenant");

		if (fg_store_dump(w, t ? (uint32_t)json_integer_value(t) : 0, fgctl_store_emit,
				  json_is_true(fgctl_val(c, "with_keys")) ? (void *)c : NULL,
				  &rev, &err) < 0)
			ret = fgctl_store_fail(&err);
	} else {
		if (fg_store_status(w, &rev, &last, &err) < 0)
			ret = fgctl_store_fail(&err);
		else if (c->json)
			printf("{\"store\":\"%s\",\"prefix\":\"%s\",\"revision\":%" PRId64 ",\"last_change_revision\":%" PRId64 "}\n",
			       c->store, c->store_prefix, rev, last);
		else
			printf("store %s, prefix %s: revision %" PRId64 ", last change under the prefix at %" PRId64 "\n",
			       c->store, c->store_prefix, rev, last);
	}
	fg_store_writer_close(w);
	return ret;
}

/* load FILE into the store: one transaction (docs/store.md). */
static int
fgctl_store_load(struct fgctl *c, const char *file)
{
	struct fg_err err = { 0 };
	struct fg_store_writer *w;
	struct fg_mapread rd;
	const char **lines = NULL;
	const char *line;
	size_t *lens = NULL, *line_no = NULL, n = 0, cap = 0, len, failed = 0;
	int64_t rev = 0;
	int ret = FG_CTL_EXIT_OK, got;

	/* The file is read within the limits of mapread.h (line length, NUL
	 * bytes, size): /dev/zero or an endless pipe is refused, not held. */
	if (fg_mapread_open(&rd, file, &err) < 0) {
		fprintf(stderr, FGCTL ": load: cannot read %s\n", err.msg);
		return FG_CTL_EXIT_REFUSED;
	}
	while ((got = fg_mapread_line(&rd, &line, &len, &err)) > 0) {
		while (len > 0 && line[len - 1] == '\r')
			len--;
		if (fg_mapline_blank(line, len))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 1024;
			lines = realloc(lines, cap * sizeof(*lines));
			lens = realloc(lens, cap * sizeof(*lens));
			line_no = realloc(line_no, cap * sizeof(*line_no));
			if (lines == NULL || lens == NULL || line_no == NULL) {
				fprintf(stderr, FGCTL ": out of memory\n");
				exit(FG_CTL_EXIT_REFUSED);
			}
		}
		lines[n] = strndup(line, len);
		if (lines[n] == NULL) {
			fprintf(stderr, FGCTL ": out of memory\n");
			exit(FG_CTL_EXIT_REFUSED);
		}
		lens[n] = len;
		line_no[n++] = rd.line;
	}
	if (got < 0) {
		fprintf(stderr, FGCTL ": load: %s\n", err.msg);
		ret = FG_CTL_EXIT_REFUSED;
	}
	fg_mapread_close(&rd);
	if (ret == FG_CTL_EXIT_OK && (w = fgctl_store_open(c, &ret)) != NULL) {
		if (fg_store_apply(w, lines, lens, n, true, &rev, &failed, &err) < 0) {
			if (failed < n && (err.code == EINVAL || err.code == EEXIST || err.code == ENOENT ||
					   err.code == ESTALE || err.code == ERANGE || err.code == EXDEV ||
					   err.code == EBUSY || err.code == ENOSPC)) {
				fprintf(stderr, "%s:%zu: %s\n", file, line_no[failed], err.msg);
				fprintf(stderr, FGCTL ": load: nothing was written to the store\n");
				ret = FG_CTL_EXIT_REFUSED;
			} else {
				ret = fgctl_store_fail(&err);
			}
		} else if (c->json) {
			printf("{\"applied\":%zu,\"revision\":%" PRId64 "}\n", n, rev);
		} else {
			printf("loaded %zu operations from %s at store revision %" PRId64 "\n", n, file, rev);
		}
		fg_store_writer_close(w);
	}
	for (size_t i = 0; i < n; i++)
		free((char *)lines[i]);
	free(lines);
	free(lens);
	free(line_no);
	return ret;
}

static int
fgctl_run_request(struct fgctl *c, const struct fgctl_cmd *cmd)
{
	json_t *req, *res;
	int ret;

	if (c->store != NULL)
		return fgctl_store_request(c, cmd);
	if (cmd->op != NULL) {
		req = json_pack("{s:s, s:o}", "cmd", cmd->cmd, "op", fgctl_op(c, cmd));
	} else {
		req = fgctl_fields(c, json_pack("{s:s}", "cmd", cmd->cmd));
	}
	ret = fgctl_connect(c);
	if (ret != 0) {
		json_decref(req);
		return ret;
	}
	ret = fgctl_call(c, req, &res);
	if (ret == FG_CTL_EXIT_REFUSED && res != NULL) {
		fgctl_print_refusal(res);
		if (c->json)
			fgctl_print_json(res);
	} else if (ret == FG_CTL_EXIT_OK) {
		if (c->json)
			fgctl_print_json(res);
		else
			cmd->show(c, cmd, res);
	}
	json_decref(res);
	return ret;
}

/* dump: the router's frames written out as they come (ctl.h), so that fgctl
 * holds one frame at a time, never the state. */
static int
fgctl_run_dump(struct fgctl *c, const struct fgctl_cmd *cmd)
{
	json_t *req, *res = NULL;
	uint64_t bytes = 0;
	int ret;

	if (c->store != NULL)
		return fgctl_store_request(c, cmd);
	req = fgctl_fields(c, json_pack("{s:s}", "cmd", cmd->cmd));
	ret = fgctl_connect(c);
	if (ret != 0) {
		json_decref(req);
		return ret;
	}
	for (ret = fgctl_call(c, req, &res); ret == FG_CTL_EXIT_OK; ret = fgctl_recv(c, &res)) {
		json_t *text = json_object_get(res, "text");

		if (!json_is_true(json_object_get(res, "more")))
			break;
		if (!json_is_string(text) ||
		    fwrite(json_string_value(text), 1, json_string_length(text), stdout) !=
			    json_string_length(text)) {
			if (json_is_string(text))
				fprintf(stderr, FGCTL ": writing the dump: %s\n", strerror(errno));
			else
				fprintf(stderr, FGCTL ": the router sent a dump frame without its text\n");
			json_decref(res);
			return FG_CTL_EXIT_REFUSED;
		}
		bytes += json_string_length(text);
		json_decref(res);
		res = NULL;
	}
	if (ret == FG_CTL_EXIT_OK &&
	    (uint64_t)json_integer_value(json_object_get(res, "bytes")) != bytes) {
		fprintf(stderr, FGCTL ": the dump ended after %" PRIu64 " bytes, the router sent %" JSON_INTEGER_FORMAT "\n",
			bytes, json_integer_value(json_object_get(res, "bytes")));
		ret = FG_CTL_EXIT_REFUSED;
	} else if (ret == FG_CTL_EXIT_REFUSED && res != NULL) {
		fgctl_print_refusal(res);
		if (bytes > 0)
			fprintf(stderr, FGCTL ": the dump is incomplete: it stopped after %" PRIu64 " bytes\n",
				bytes);
	}
	json_decref(res);
	return ret;
}

/* ---- showing answers -------------------------------------------------------- */

static json_t *
fgctl_val(struct fgctl *c, const char *opt_or_field)
{
	for (int i = 0; i < fgctl_n_args(c->cmd); i++) {
		const struct fgctl_arg *a = &c->cmd->args[i];

		if ((a->opt && strcmp(a->opt, opt_or_field) == 0) ||
		    (a->field && strcmp(a->field, opt_or_field) == 0))
			return c->val[i];
	}
	return NULL;
}

static void
fgctl_show_applied(struct fgctl *c, const struct fgctl_cmd *cmd, json_t *res)
{
	json_t *op = fgctl_op(c, cmd);
	char *s;

	(void)res;
	s = json_dumps(op, JSON_COMPACT | JSON_PRESERVE_ORDER);
	printf("applied %s\n", s ? s : cmd->words);
	free(s);
	json_decref(op);
}

static void
fgctl_show_rekey(struct fgctl *c, const struct fgctl_cmd *cmd, json_t *res)
{
	(void)cmd, (void)res;
	printf("tenant %" JSON_INTEGER_FORMAT " device %s: %s\n",
	       json_integer_value(fgctl_val(c, "tenant")),
	       json_string_value(fgctl_val(c, "device")),
	       fgctl_val(c, "key") ? "new key installed" : "key removed");
}

static void
fgctl_row(const char *name, json_t *v)
{
	if (json_is_integer(v)) {
		printf("%-20s %16" JSON_INTEGER_FORMAT "\n", name, json_integer_value(v));
	} else {
		char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

		printf("%-20s %16s\n", name, s ? s : "?");
		free(s);
	}
}

static bool
fgctl_is_zero(json_t *v)
{
	return json_is_integer(v) && json_integer_value(v) == 0;
}

/* Reasons in check order, then any the router knows and fgctl does not. */
static void
fgctl_reason_rows(json_t *drops, bool all)
{
	const char *key;
	json_t *v;

	for (size_t r = 0; r < FGCTL_N_REASONS; r++) {
		v = json_object_get(drops, fgctl_reasons[r]);
		if (all ? v != NULL : v != NULL && !fgctl_is_zero(v))
			fgctl_row(fgctl_reasons[r], v);
	}
	json_object_foreach(drops, key, v) {
		size_t r = 0;

		while (r < FGCTL_N_REASONS && strcmp(fgctl_reasons[r], key) != 0)
			r++;
		if (r == FGCTL_N_REASONS && (all || !fgctl_is_zero(v)))
			fgctl_row(key, v);
	}
}

static void
fgctl_show_stats(struct fgctl *c, const struct fgctl_cmd *cmd, json_t *res)
{
	static const char *const totals[] = {
		"rx_packets", "forwarded_packets", "copies_sent", "tx_full",
	};

	(void)c, (void)cmd;
	for (size_t i = 0; i < sizeof(totals) / sizeof(totals[0]); i++)
		fgctl_row(totals[i], json_object_get(res, totals[i]));
	fgctl_reason_rows(json_object_get(res, "drops"), false);
}

static void
fgctl_show_drops(struct fgctl *c, const struct fgctl_cmd *cmd, json_t *res)
{
	json_t *drops = json_object_get(res, "drops"), *v;
	bool all = fgctl_val(c, "--all") != NULL;
	bool nested = false;
	const char *key;

	(void)cmd;
	json_object_foreach(drops, key, v)
		nested |= json_is_object(v);
	if (json_is_integer(json_object_get(res, "tenant")))
		printf("tenant %" JSON_INTEGER_FORMAT ", forwarded_packets %" JSON_INTEGER_FORMAT "\n",
		       json_integer_value(json_object_get(res, "tenant")),
		       json_integer_value(json_object_get(res, "forwarded_packets")));
	printf("%-20s %16s\n", "reason", "count");
	if (!nested) {
		fgctl_reason_rows(drops, all);
		return;
	}
	/* Per tenant (or other grouping): one block per key. */
	json_object_foreach(drops, key, v) {
		printf("%s:\n", key);
		fgctl_reason_rows(json_is_object(v) ? v : drops, all);
	}
}

static void
fgctl_key_values(const char *prefix, json_t *obj)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		char name[256];

		snprintf(name, sizeof(name), "%s%s%s", prefix, prefix[0] ? "." : "", key);
		if (strcmp(name, "ok") == 0)
			continue;
		if (json_is_object(v)) {
			fgctl_key_values(name, v);
		} else if (json_is_string(v)) {
			printf("%s: %s\n", name, json_string_value(v));
		} else {
			char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

			printf("%s: %s\n", name, s ? s : "?");
			free(s);
		}
	}
}

static void
fgctl_show_health(struct fgctl *c, const struct fgctl_cmd *cmd, json_t *res)
{
	(void)c, (void)cmd;
	fgctl_key_values("", res);
}

/* ---- the shield --------------------------------------------------------------- */

/* "owner tenant 7 device 0x00000000000000a1" or "tenant 7". */
static void
fgctl_diff_entry(json_t *d, char *out, size_t len)
{
	if (json_is_string(json_object_get(d, "device")))
		snprintf(out, len, "owner tenant %" JSON_INTEGER_FORMAT " device %s",
			 json_integer_value(json_object_get(d, "tenant")),
			 json_string_value(json_object_get(d, "device")));
	else
		snprintf(out, len, "tenant %" JSON_INTEGER_FORMAT,
			 json_integer_value(json_object_get(d, "tenant")));
}

/* "epoch 3, key" / "suspended" */
static void
fgctl_diff_side(json_t *side, char *out, size_t len)
{
	if (json_is_string(json_object_get(side, "state")))
		snprintf(out, len, "%s", json_string_value(json_object_get(side, "state")));
	else
		snprintf(out, len, "epoch %" JSON_INTEGER_FORMAT ", %s",
			 json_integer_value(json_object_get(side, "epoch")),
			 json_is_true(json_object_get(side, "key")) ? "key" : "no key");
}

static void
fgctl_show_shield_check(struct fgctl *c, const struct fgctl_cmd *cmd, json_t *res)
{
	json_t *d, *t = json_object_get(res, "tables"), *m = json_object_get(res, "shield");
	json_int_t n = json_integer_value(json_object_get(res, "differences"));
	size_t i;

	(void)c, (void)cmd;
	printf("tables: %" JSON_INTEGER_FORMAT " tenants, %" JSON_INTEGER_FORMAT " mappings; "
	       "shield: %" JSON_INTEGER_FORMAT " tenants, %" JSON_INTEGER_FORMAT " owners\n",
	       json_integer_value(json_object_get(t, "tenants")),
	       json_integer_value(json_object_get(t, "mappings")),
	       json_integer_value(json_object_get(m, "tenants")),
	       json_integer_value(json_object_get(m, "owners")));
	json_array_foreach(json_object_get(res, "listed"), i, d) {
		const char *p = json_string_value(json_object_get(d, "problem"));
		char entry[96], a[64], b[64];

		fgctl_diff_entry(d, entry, sizeof(entry));
		fgctl_diff_side(json_object_get(d, "tables"), a, sizeof(a));
		fgctl_diff_side(json_object_get(d, "shield"), b, sizeof(b));
		if (p != NULL && strcmp(p, "missing") == 0)
			printf("missing in the shield: %s (tables: %s)\n", entry, a);
		else if (p != NULL && strcmp(p, "extra") == 0)
			printf("extra in the shield:   %s (shield: %s)\n", entry, b);
		else
			printf("differs:               %s (tables: %s; shield: %s%s)\n", entry, a, b,
			       json_is_true(json_object_get(d, "key_differs")) ? ", another key" : "");
	}
	if (n > (json_int_t)json_array_size(json_object_get(res, "listed")))
		printf("... and %" JSON_INTEGER_FORMAT " more\n",
		       n - (json_int_t)json_array_size(json_object_get(res, "listed")));
	if (n == 0)
		printf("in step: the shield's maps hold exactly the tables' tenants and mappings\n");
	else
		printf("%" JSON_INTEGER_FORMAT " difference%s\n", n, n == 1 ? "" : "s");
}

/* Like any request, but the answer decides the exit status: 1 when the maps
 * differ from the tables. */
static int
fgctl_run_shield_check(struct fgctl *c, const struct fgctl_cmd *cmd)
{
	json_t *res = NULL;
	int ret = fgctl_connect(c);

	if (ret != 0)
		return ret;
	ret = fgctl_call(c, json_pack("{s:s}", "cmd", cmd->cmd), &res);
	if (ret == FG_CTL_EXIT_REFUSED && res != NULL)
		fgctl_print_refusal(res);
	if (ret == FG_CTL_EXIT_OK || (ret == FG_CTL_EXIT_REFUSED && res != NULL)) {
		if (c->json)
			fgctl_print_json(res);
		else if (ret == FG_CTL_EXIT_OK)
			cmd->show(c, cmd, res);
	}
	if (ret == FG_CTL_EXIT_OK && !json_is_true(json_object_get(res, "in_step")))
		ret = FG_CTL_EXIT_REFUSED;
	json_decref(res);
	return ret;
}

static void
fgctl_show_shield_resync(struct fgctl *c, const struct fgctl_cmd *cmd, json_t *res)
{
	(void)c, (void)cmd;
	printf("shield rewritten: %" JSON_INTEGER_FORMAT " tenants, %" JSON_INTEGER_FORMAT " owners\n",
	       json_integer_value(json_object_get(res, "tenants")),
	       json_integer_value(json_object_get(res, "owners")));
}

/* ---- load ------------------------------------------------------------------- */

struct fgctl_progress {
	bool on;
	off_t size, sent;
	struct timespec last;
};

static void
fgctl_progress(struct fgctl_progress *p, bool force)
{
	struct timespec now;
	int width = 30, done;
	double frac;

	if (!p->on)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!force && (now.tv_sec - p->last.tv_sec) * 1000000000L +
			      (now.tv_nsec - p->last.tv_nsec) < 100000000L)
		return;             /* at most ten updates a second */
	p->last = now;
	frac = p->size > 0 ? (double)p->sent / (double)p->size : 1.0;
	if (frac > 1.0)
		frac = 1.0;
	done = (int)(frac * width);
	fprintf(stderr, "\r[%.*s%*s] %3d%%  %.1f / %.1f MiB", done,
		"##############################", width - done, "", (int)(frac * 100),
		(double)p->sent / (1 << 20), (double)p->size / (1 << 20));
	fflush(stderr);
}

/* The refusal of a load: "FILE:LINE: reason" when the router names the line
 * ("line N: reason"), counted in the load, which is the file as sent. */
static void
fgctl_print_load_refusal(const char *file, json_t *res)
{
	const char *msg = json_string_value(json_object_get(res, "error"));
	unsigned long line;
	int used = 0;

	if (msg != NULL && sscanf(msg, "line %lu: %n", &line, &used) == 1 && used > 0) {
		fprintf(stderr, "%s:%lu: %s\n", file, line, msg + used);
		return;
	}
	fgctl_print_refusal(res);
}

/* A line of the chunk (counted from first_line) that is not UTF-8. */
static unsigned long
fgctl_bad_utf8_line(const char *text, size_t len, unsigned long first_line)
{
	const char *p = text, *end = text + len;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		json_t *s = json_stringn(p, n);

		if (s == NULL)
			break;
		json_decref(s);
		p += n + 1;
		first_line++;
	}
	return first_line;
}

/* A whole line and its newline always fit in a chunk. */
_Static_assert(FG_MAPFILE_MAX_LINE + 1 <= FG_CTL_LOAD_CHUNK, "a mapping line fits in a load chunk");

static int
fgctl_run_load(struct fgctl *c, const struct fgctl_cmd *cmd)
{
	const char *file = json_string_value(c->val[0]);
	struct fgctl_progress prog = { .on = isatty(STDOUT_FILENO) && isatty(STDERR_FILENO) };
	unsigned long lines = 0;         /* lines sent so far */
	struct fg_err err = { 0 };
	struct fg_mapread rd;
	const char *line = NULL;
	size_t held = 0, len = 0;
	json_t *res = NULL;
	char *buf;
	int ret, got;

	(void)cmd;
	if (c->store != NULL)
		return fgctl_store_load(c, file);
	/* Read within the limits of mapread.h: a directory, /dev/zero, a line
	 * over FG_MAPFILE_MAX_LINE or a stream over FG_MAPFILE_MAX_BYTES is
	 * refused, naming the file and the limit. */
	if (fg_mapread_open(&rd, file, &err) < 0) {
		fprintf(stderr, FGCTL ": load: cannot read %s\n", err.msg);
		return FG_CTL_EXIT_REFUSED;
	}
	prog.size = (off_t)rd.size;
	/* The first line before the router hears of the load: a file that is
	 * no mapping file at all is refused without it. */
	got = fg_mapread_line(&rd, &line, &len, &err);
	if (got < 0) {
		fprintf(stderr, FGCTL ": load: %s\n", err.msg);
		fg_mapread_close(&rd);
		return FG_CTL_EXIT_REFUSED;
	}
	buf = malloc(FG_CTL_LOAD_CHUNK);
	if (buf == NULL) {
		fg_mapread_close(&rd);
		fprintf(stderr, FGCTL ": out of memory\n");
		return FG_CTL_EXIT_REFUSED;
	}
	ret = fgctl_connect(c);
	if (ret != 0)
		goto out;
	ret = fgctl_call(c, json_pack("{s:s}", "cmd", "load.begin"), &res);
	if (ret == FG_CTL_EXIT_REFUSED && res != NULL)
		fgctl_print_refusal(res);
	if (ret != 0)
		goto fail;
	fgctl_progress(&prog, true);

	/* Chunks of whole lines (blank ones too, so that the router counts
	 * the file's lines), at most FG_CTL_LOAD_CHUNK bytes, so the router
	 * decodes every line whole (ctl.h). got == 1: `line` is read and not
	 * yet in a chunk. */
	for (;;) {
		json_t *text;

		while (got > 0 && held + len + 1 <= FG_CTL_LOAD_CHUNK) {
			memcpy(buf + held, line, len);
			buf[held + len] = '\n';
			held += len + 1;
			got = fg_mapread_line(&rd, &line, &len, &err);
		}
		if (got < 0) {
			fprintf(stderr, FGCTL ": load: %s\n", err.msg);
			ret = FG_CTL_EXIT_REFUSED;
			goto fail;
		}
		if (held == 0)
			break;
		text = json_stringn(buf, held);
		if (text == NULL) {
			fprintf(stderr, "%s:%lu: the line is not UTF-8 text\n", file,
				fgctl_bad_utf8_line(buf, held, lines + 1));
			ret = FG_CTL_EXIT_REFUSED;
			goto fail;
		}
		for (size_t i = 0; i < held; i++)
			lines += buf[i] == '\n';
		json_decref(res);
		ret = fgctl_call(c, json_pack("{s:s, s:o}", "cmd", "load.chunk", "text", text), &res);
		if (ret == FG_CTL_EXIT_REFUSED && res != NULL)
			fgctl_print_load_refusal(file, res);
		if (ret != 0)
			goto fail;
		prog.sent += (off_t)held;
		held = 0;
		fgctl_progress(&prog, false);
	}
	fgctl_progress(&prog, true);
	if (prog.on) {
		fprintf(stderr, "\r\033[Kcommitting...");
		fflush(stderr);
	}
	json_decref(res);
	ret = fgctl_call(c, json_pack("{s:s}", "cmd", "load.commit"), &res);
	if (prog.on)
		fprintf(stderr, "\r\033[K");
	if (ret == FG_CTL_EXIT_REFUSED && res != NULL)
		fgctl_print_load_refusal(file, res);
	if (ret != 0)
		goto fail;
	if (c->json)
		fgctl_print_json(res);
	else
		printf("loaded %" JSON_INTEGER_FORMAT " operations from %s\n",
		       json_integer_value(json_object_get(res, "applied")), file);
	goto out;

fail:
	if (prog.on)
		fprintf(stderr, "\r\033[K");
	if (c->json && ret == FG_CTL_EXIT_REFUSED && res != NULL)
		fgctl_print_json(res);
	/* Nothing is applied without a commit; say so to the router while it
	 * still listens, and ignore its answer. */
	if (c->fd >= 0) {
		json_t *ab = NULL;

		json_decref(res);
		res = NULL;
		if (fgctl_call(c, json_pack("{s:s}", "cmd", "load.abort"), &ab) !=
		    FG_CTL_EXIT_UNREACHABLE)
			json_decref(ab);
	}
out:
	json_decref(res);
	free(buf);
	fg_mapread_close(&rd);
	return ret;
}

/* ---- the audit log ------------------------------------------------------------ */

static int
fgctl_run_audit_verify(struct fgctl *c, const struct fgctl_cmd *cmd)
{
	const char *file = json_string_value(c->val[0]);
	struct fg_audit_report r;
	struct fg_err err = { 0 };
	int ret = fg_audit_verify(file, &r, &err);
	json_t *out;

	(void)cmd;
	if (ret < 0) {
		fprintf(stderr, FGCTL ": audit verify: cannot read %s\n", err.msg);
		if (c->json) {
			out = json_pack("{s:s, s:s}", "file", file, "error", err.msg);
			fgctl_print_json(out);
			json_decref(out);
		}
		return FG_CTL_EXIT_REFUSED;
	}
	if (ret > 0 && r.seq >= 0)
		fprintf(stderr, "%s:%lu: record %" PRId64 ": %s\n", file, r.line, r.seq, r.msg);
	else if (ret > 0)
		fprintf(stderr, "%s:%lu: %s\n", file, r.line, r.msg);
	if (c->json) {
		out = json_pack("{s:s, s:b, s:I, s:I, s:s}", "file", file, "intact", ret == 0,
				"records", (json_int_t)r.records, "last_seq",
				(json_int_t)r.last_seq, "last_hash", r.last_hash);
		if (ret > 0)
			json_object_set_new(out, "bad", json_pack("{s:I, s:o, s:s, s:s}",
				"line", (json_int_t)r.line,
				"seq", r.seq < 0 ? json_null() : json_integer(r.seq),
				"problem", fg_audit_problem_name(r.problem), "error", r.msg));
		fgctl_print_json(out);
		json_decref(out);
	} else if (ret == 0) {
		printf("%s: chain intact: %" PRIu64 " records, last seq %" PRIu64 ", last hash %s\n",
		       file, r.records, r.last_seq, r.last_hash);
	} else {
		printf("%s: chain broken at line %lu: %" PRIu64 " records before it hold (last hash %s)\n",
		       file, r.line, r.records, r.last_hash);
	}
	return ret == 0 ? FG_CTL_EXIT_OK : FG_CTL_EXIT_REFUSED;
}

static int
fgctl_run_audit_fingerprint(struct fgctl *c, const struct fgctl_cmd *cmd)
{
	uint8_t key[FG_AUDIT_KEY_LEN];
	char fp[FG_AUDIT_FP_HEX + 1];
	const char *hex = json_string_value(c->val[0]);

	(void)cmd;
	if (sodium_init() < 0 ||
	    sodium_hex2bin(key, sizeof(key), hex, strlen(hex), NULL, NULL, NULL) != 0) {
		fprintf(stderr, FGCTL ": audit fingerprint: cannot read the key\n");
		return FG_CTL_EXIT_REFUSED;
	}
	fg_audit_key_fp(key, fp);
	sodium_memzero(key, sizeof(key));
	if (c->json) {
		json_t *out = json_pack("{s:s}", "key_fp", fp);

		fgctl_print_json(out);
		json_decref(out);
	} else {
		printf("%s\n", fp);
	}
	return FG_CTL_EXIT_OK;
}

/* ---- capture ---------------------------------------------------------------- */

/* The file being written, removed if fgctl is interrupted (which also
 * cancels the capture: the router sees the connection close). */
static char fgctl_capture_tmp[4096];

static void
fgctl_capture_interrupted(int sig)
{
	unlink(fgctl_capture_tmp);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* The reply's packets into an open pcap file: 0, or -1 with the reason
 * printed. Timestamps in nanoseconds, as the router took them. */
static int
fgctl_write_pcap(FILE *f, const char *out, json_t *res)
{
	pcap_t *p = pcap_open_dead_with_tstamp_precision(DLT_EN10MB, FG_CTL_CAPTURE_SNAPLEN,
							 PCAP_TSTAMP_PRECISION_NANO);
	pcap_dumper_t *d = p ? pcap_dump_fopen(p, f) : NULL;
	uint8_t bytes[FG_CTL_CAPTURE_SNAPLEN];
	json_t *pkt;
	size_t i;
	int ret = 0;

	if (d == NULL) {
		fprintf(stderr, FGCTL ": capture: cannot write %s: %s\n", out,
			p ? pcap_geterr(p) : "out of memory");
		if (p != NULL)
			pcap_close(p);
		fclose(f);
		return -1;
	}
	json_array_foreach(json_object_get(res, "packets"), i, pkt) {
		const char *b64 = json_string_value(json_object_get(pkt, "data"));
		json_int_t ts = json_integer_value(json_object_get(pkt, "ts_ns"));
		json_int_t len = json_integer_value(json_object_get(pkt, "len"));
		struct pcap_pkthdr h = { 0 };
		size_t n;

		if (b64 == NULL || ts < 0 || len < 1 ||
		    sodium_base642bin(bytes, sizeof(bytes), b64, strlen(b64), NULL, &n, NULL,
				      sodium_base64_VARIANT_ORIGINAL) != 0 || (json_int_t)n > len) {
			fprintf(stderr, FGCTL ": capture: packet %zu of the router's answer is malformed\n",
				i + 1);
			ret = -1;
			break;
		}
		h.ts.tv_sec = (time_t)(ts / 1000000000);
		h.ts.tv_usec = (suseconds_t)(ts % 1000000000);   /* ns: nano precision */
		h.caplen = (bpf_u_int32)n;
		h.len = (bpf_u_int32)len;
		pcap_dump((u_char *)d, &h, bytes);
	}
	if (ret == 0 && (pcap_dump_flush(d) != 0 || fsync(fileno(f)) != 0)) {
		fprintf(stderr, FGCTL ": capture: writing %s: %s\n", out, strerror(errno));
		ret = -1;
	}
	pcap_dump_close(d);       /* closes f */
	pcap_close(p);
	return ret;
}

/* Arm a capture and wait for its packets; write them to --out. The file is
 * written under a temporary name beside it and renamed when complete, so a
 * refused, failed or interrupted capture leaves an existing file as it was. */
static int
fgctl_run_capture(struct fgctl *c, const struct fgctl_cmd *cmd)
{
	const char *out = json_string_value(fgctl_val(c, "--out"));
	json_t *req = fgctl_fields(c, json_pack("{s:s}", "cmd", cmd->cmd)), *res = NULL;
	json_int_t saved, count;
	FILE *f;
	int fd, ret;

	if ((size_t)snprintf(fgctl_capture_tmp, sizeof(fgctl_capture_tmp), "%s.XXXXXX", out) >=
	    sizeof(fgctl_capture_tmp)) {
		json_decref(req);
		return fgctl_usage_error(cmd, "--out \"%s\" is too long a path", out);
	}
	fd = mkstemp(fgctl_capture_tmp);
	f = fd >= 0 ? fdopen(fd, "wb") : NULL;
	if (f == NULL) {
		fprintf(stderr, FGCTL ": capture: cannot write %s: %s\n", out, strerror(errno));
		if (fd >= 0) {
			close(fd);
			unlink(fgctl_capture_tmp);
		}
		json_decref(req);
		return FG_CTL_EXIT_REFUSED;
	}
	signal(SIGINT, fgctl_capture_interrupted);
	signal(SIGTERM, fgctl_capture_interrupted);
	signal(SIGHUP, fgctl_capture_interrupted);
	ret = fgctl_connect(c);
	if (ret == 0)
		ret = fgctl_call(c, req, &res);
	else
		json_decref(req);
	if (ret == FG_CTL_EXIT_REFUSED && res != NULL) {
		fgctl_print_refusal(res);
		if (c->json)
			fgctl_print_json(res);
	}
	if (ret != FG_CTL_EXIT_OK) {
		fclose(f);
		unlink(fgctl_capture_tmp);
		json_decref(res);
		return ret;
	}
	ret = fgctl_write_pcap(f, out, res);
	if (ret == 0 && rename(fgctl_capture_tmp, out) != 0) {
		fprintf(stderr, FGCTL ": capture: cannot write %s: %s\n", out, strerror(errno));
		ret = -1;
	}
	if (ret != 0) {
		unlink(fgctl_capture_tmp);
		json_decref(res);
		return FG_CTL_EXIT_REFUSED;
	}
	saved = json_integer_value(json_object_get(res, "saved"));
	count = json_integer_value(json_object_get(res, "count"));
	if (c->json) {
		json_object_del(res, "packets");        /* they are in the file */
		json_object_set_new(res, "out", json_string(out));
		fgctl_print_json(res);
	} else if (saved == count) {
		printf("saved %" JSON_INTEGER_FORMAT " %s drops to %s\n", saved,
		       json_string_value(json_object_get(res, "reason")), out);
	}
	if (saved != count)
		fprintf(stderr, FGCTL ": capture: saved %" JSON_INTEGER_FORMAT " of %" JSON_INTEGER_FORMAT
			" %s drops to %s: the timeout passed first\n", saved, count,
			json_string_value(json_object_get(res, "reason")), out);
	json_decref(res);
	return saved == count ? FG_CTL_EXIT_OK : FG_CTL_EXIT_REFUSED;
}

/* ---- main ------------------------------------------------------------------- */

int
main(int argc, char **argv)
{
	struct fgctl c = { .socket = getenv("FG_CTL_SOCKET"), .fd = -1,
			   .store_prefix = getenv("FG_STORE_PREFIX") };
	int k = 1, best = 0, ret;

	if (c.socket == NULL || c.socket[0] == '\0')
		c.socket = FG_CTL_DEFAULT_SOCKET;
	/* A router that closes the socket makes write() fail with EPIPE, which
	 * is reported, rather than kill fgctl. */
	signal(SIGPIPE, SIG_IGN);

	for (; k < argc && argv[k][0] == '-'; k++) {
		const char *s = argv[k];

		if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
			fgctl_help(stdout);
			return FG_CTL_EXIT_OK;
		} else if (strcmp(s, "--man") == 0) {
			/* Hidden: the build makes fgctl.8 with it. */
			fgctl_man(stdout);
			return FG_CTL_EXIT_OK;
		} else if (strcmp(s, "--json") == 0) {
			c.json = true;
		} else if (strcmp(s, "--socket") == 0 && k + 1 < argc) {
			c.socket = argv[++k];
		} else if (strncmp(s, "--socket=", 9) == 0) {
			c.socket = s + 9;
		} else if (strcmp(s, "--socket") == 0) {
			return fgctl_usage_error(NULL, "--socket needs a PATH");
		} else if (strcmp(s, "--store") == 0 && k + 1 < argc) {
			c.store = argv[++k];
		} else if (strncmp(s, "--store=", 8) == 0) {
			c.store = s + 8;
		} else if (strcmp(s, "--store-prefix") == 0 && k + 1 < argc) {
			c.store_prefix = argv[++k];
		} else if (strncmp(s, "--store-prefix=", 15) == 0) {
			c.store_prefix = s + 15;
		} else if (strcmp(s, "--timeout") == 0 || strncmp(s, "--timeout=", 10) == 0) {
			const char *v = s[9] == '=' ? s + 10 : k + 1 < argc ? argv[++k] : NULL;
			char *end;

			c.timeout = v ? strtod(v, &end) : 0;
			if (v == NULL || end == v || *end != '\0' || !(c.timeout > 0 && c.timeout <= 86400))
				return fgctl_usage_error(NULL, "--timeout needs a number of seconds above 0, at most 86400%s%s%s",
							 v ? " (not \"" : "", v ? v : "", v ? "\")" : "");
		} else if (strcmp(s, "--store-gateway") == 0) {
			c.store_gateway = true;
		} else if (strcmp(s, "--store") == 0 || strcmp(s, "--store-prefix") == 0) {
			return fgctl_usage_error(NULL, "%s needs a value", s);
		} else {
			return fgctl_usage_error(NULL, "unknown option \"%s\"", s);
		}
	}
	if (k == argc) {
		fgctl_help(stderr);
		return FG_CTL_EXIT_USAGE;
	}
	if (c.store_prefix == NULL || c.store_prefix[0] == '\0')
		c.store_prefix = FG_STORE_PREFIX_DEFAULT;
	if (c.store != NULL && c.store[0] == '\0')
		return fgctl_usage_error(NULL, "--store needs etcd endpoints (http://host:2379,...)");
	for (size_t i = 0; i < FGCTL_N_CMDS; i++) {
		int m = fgctl_match(&fgctl_cmds[i], argc - k, argv + k);

		if (m > best)
			best = m, c.cmd = &fgctl_cmds[i];
	}
	if (c.cmd == NULL) {
		/* "tenant" alone, or "tenant frob": name the commands it starts. */
		char known[512] = "";
		size_t n = 0, len = strlen(argv[k]);

		for (size_t i = 0; i < FGCTL_N_CMDS; i++)
			if (strncmp(fgctl_cmds[i].words, argv[k], len) == 0 &&
			    fgctl_cmds[i].words[len] == ' ')
				n += (size_t)snprintf(known + n, n < sizeof(known) ? sizeof(known) - n : 0,
						      "%s'%s'", n ? ", " : "", fgctl_cmds[i].words);
		if (n == 0)
			return fgctl_usage_error(NULL, "unknown command \"%s\"", argv[k]);
		if (k + 1 < argc && (strcmp(argv[k + 1], "--help") == 0 ||
				     strcmp(argv[k + 1], "-h") == 0)) {
			for (size_t i = 0; i < FGCTL_N_CMDS; i++)
				if (strncmp(fgctl_cmds[i].words, argv[k], len) == 0 &&
				    fgctl_cmds[i].words[len] == ' ')
					fgctl_cmd_help(stdout, &fgctl_cmds[i]), puts("");
			return FG_CTL_EXIT_OK;
		}
		if (k + 1 == argc || argv[k + 1][0] == '-')
			return fgctl_usage_error(NULL, "\"%s\" needs a subcommand: %s", argv[k], known);
		return fgctl_usage_error(NULL, "unknown command \"%s %s\" (%s has %s)", argv[k],
					 argv[k + 1], argv[k], known);
	}
	ret = fgctl_parse_args(&c, argc - k - best, argv + k + best);
	if (ret == 0)
		ret = c.cmd->run(&c, c.cmd);
	else if (ret < 0)
		ret = FG_CTL_EXIT_OK;    /* --help */
	for (int i = 0; i < FGCTL_MAX_ARGS; i++)
		json_decref(c.val[i]);
	if (c.fd >= 0)
		close(c.fd);
	if (fflush(stdout) != 0 && ret == FG_CTL_EXIT_OK) {
		fprintf(stderr, FGCTL ": writing the output: %s\n", strerror(errno));
		ret = FG_CTL_EXIT_REFUSED;
	}
	return ret;
}
