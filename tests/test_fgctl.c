/*
 * fgctl, run as the built program, without the router: --help lists every
 * command and a command's --help its usage; usage errors exit 2 naming the
 * argument; an unreachable socket exits 3 naming the path. Against a fake
 * router written here (a Unix socket in a temp dir, served by a child
 * process), each command sends exactly the expected request (compared as
 * JSON), framed as ctl.h says, and shows the answer: ok:false exits 1 with
 * the router's error, a load's line errors come out as FILE:LINE, a refused
 * load is aborted, a broken connection exits 3.
 *
 * fgctl is found next to this test in the build tree (../control/fgctl), or
 * at $FG_FGCTL.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include <framegate/ctl.h>

static char dir[64];
static char fgctl[PATH_MAX];

static void
setup(void)
{
	const char *env = getenv("FG_FGCTL");

	snprintf(dir, sizeof(dir), "/tmp/fg_fgctl_test.XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	if (env != NULL) {
		snprintf(fgctl, sizeof(fgctl), "%s", env);
	} else {
		char self[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

		cr_assert_gt(n, 0);
		self[n] = '\0';
		snprintf(fgctl, sizeof(fgctl), "%s/../control/fgctl", dirname(self));
	}
	cr_assert_eq(access(fgctl, X_OK), 0, "fgctl not found at %s", fgctl);
}

static void
teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_expect_eq(system(cmd), 0);
}

TestSuite(fgctl, .init = setup, .fini = teardown, .timeout = 60);

/* args with D (standing alone before a slash) made this test's folder. */
static void
expand(const char *args, char *out, size_t len)
{
	size_t n = 0;

	for (const char *p = args; *p && n + 1 < len; p++) {
		if (*p == 'D' && p[1] == '/' && (p == args || p[-1] == ' ' || p[-1] == '='))
			n += (size_t)snprintf(out + n, len - n, "%s", dir);
		else
			out[n++] = *p;
	}
	out[n < len ? n : len - 1] = '\0';
}

static void
slurp(const char *path, char *out, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(out, 1, len - 1, f) : 0;

	out[n] = '\0';
	if (f != NULL)
		fclose(f);
}

/* Run fgctl with args (D/ expanded); its exit status, stdout and stderr. */
static int
run_fgctl(const char *args, char *out, char *err, size_t len)
{
	char a[4096], cmd[PATH_MAX + 4096 + 256], path[128];
	int st;

	expand(args, a, sizeof(a));
	snprintf(cmd, sizeof(cmd), "%s %s >%s/stdout 2>%s/stderr </dev/null", fgctl, a, dir, dir);
	st = system(cmd);
	snprintf(path, sizeof(path), "%s/stdout", dir);
	slurp(path, out, len);
	snprintf(path, sizeof(path), "%s/stderr", dir);
	slurp(path, err, len);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void
write_file(const char *name, const char *text)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

/* ---- (a) help --------------------------------------------------------------- */

static const char *const commands[] = {
	"tenant add T", "tenant suspend T", "tenant resume T", "tenant del T",
	"sink add S", "sink del S", "device add T D", "device del T D",
	"device move D", "device rekey T D", "load FILE", "dump", "stats", "drops",
	"health", "audit verify FILE",
};

Test(fgctl, help_lists_every_command_and_a_commands_usage)
{
	static char out[65536], err[65536];

	cr_assert_eq(run_fgctl("--help", out, err, sizeof(out)), 0, "%s", err);
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		cr_expect(strstr(out, commands[i]) != NULL, "--help does not list \"%s\":\n%s",
			  commands[i], out);
	cr_expect(strstr(out, "--socket PATH") != NULL);

	cr_assert_eq(run_fgctl("device move --help", out, err, sizeof(out)), 0, "%s", err);
	cr_expect(strstr(out, "usage: fgctl [--socket PATH] [--json] device move D --from T1 "
			 "--to T2 --epoch E --sinks S1[,S2...] [--key HEX32]") != NULL, "%s", out);
	cr_expect(strstr(out, "device add") == NULL, "another command's help:\n%s", out);

	cr_assert_eq(run_fgctl("tenant add --help", out, err, sizeof(out)), 0, "%s", err);
	cr_expect(strstr(out, "tenant add T [--name N] [--max-devices N] "
			 "[--rate-pps N --burst N]") != NULL, "%s", out);

	/* No command: the help, on stderr, and a usage error. */
	cr_expect_eq(run_fgctl("", out, err, sizeof(out)), 2);
	cr_expect(strstr(err, "device move D") != NULL, "%s", err);
}

/* ---- (b) usage errors -------------------------------------------------------- */

struct usage_case {
	const char *args;
	const char *needle;      /* in stderr */
};

/* Each with a socket that does not exist: reaching it would exit 3. */
static const struct usage_case usage_cases[] = {
	{ "tenant add", "tenant add: missing T" },
	{ "tenant add x", "tenant \"x\" is not a number from 1 to 4294967295" },
	{ "tenant add 0", "tenant \"0\" is not a number from 1 to 4294967295" },
	{ "tenant add 7 8", "unexpected argument \"8\"" },
	{ "tenant add 7 --bogus 1", "unknown option \"--bogus\"" },
	{ "tenant add 7 --rate-pps 5", "--rate-pps and --burst go together" },
	{ "tenant add 7 --burst 5", "--rate-pps and --burst go together" },
	{ "tenant add 7 --rate-pps -5 --burst 10", "--rate-pps \"-5\" is not a number from 1 to 4294967295" },
	{ "tenant add 7 --rate-pps 0 --burst 10", "--rate-pps \"0\" is not a number from 1 to 4294967295" },
	{ "tenant add 7 --rate-pps 2.5 --burst 10", "--rate-pps \"2.5\" is not a number" },
	{ "tenant add 7 --rate-pps 4294967296 --burst 10", "--rate-pps \"4294967296\" is not a number" },
	{ "tenant add 7 --rate-pps 99999999999999999999 --burst 10",
	  "--rate-pps \"99999999999999999999\" is not a number" },
	{ "tenant add 7 --rate-pps 100 --burst x", "--burst \"x\" is not a number from 1 to 4294967295" },
	{ "tenant add 7 --rate-pps 100 --burst 4294967296", "--burst \"4294967296\" is not a number" },
	{ "tenant add 7 --max-devices many", "--max-devices \"many\" is not a number" },
	{ "tenant suspend", "tenant suspend: missing T" },
	{ "device add 7 zz --epoch 1 --sinks 70", "device \"zz\" is not a device id" },
	{ "device add 7 0 --epoch 1 --sinks 70", "device \"0\" is not a device id" },
	{ "device add 7 0x11112222333344445 --epoch 1 --sinks 70", "device \"0x11112222333344445\"" },
	{ "device add 7 0xa1 --epoch x --sinks 70",
	  "device add: --epoch \"x\" is not a number from 0 to 4294967295" },
	{ "device add 7 0xa1 --epoch 4294967296 --sinks 70", "--epoch \"4294967296\"" },
	{ "device add 7 0xa1 --epoch 1 --sinks 70 --key 0011", "--key \"0011\" is not 32 hex digits" },
	{ "device add 7 0xa1 --epoch 1 --sinks 70 --key 000102030405060708090a0b0c0d0e0g",
	  "--key \"000102030405060708090a0b0c0d0e0g\" is not 32 hex digits" },
	{ "device add 7 0xa1 --epoch 1 --sinks 1,2,3,4,5,6,7,8,9", "lists more than 8 sinks" },
	{ "device add 7 0xa1 --epoch 1 --sinks 1,,2", "--sinks \"1,,2\" is not a list" },
	{ "device add 7 0xa1 --epoch 1", "missing --sinks" },
	{ "device add 7 0xa1 --epoch 1 --epoch 2 --sinks 1", "--epoch is given twice" },
	{ "device add 7 0xa1 --sinks 1 --epoch", "--epoch needs a value" },
	{ "device move 0xa1 --from 7 --to 9 --sinks 90", "device move: missing --epoch" },
	{ "device move 0xa1 --from x --to 9 --epoch 2 --sinks 90", "--from \"x\" is not a number" },
	{ "device rekey 7 0xa1", "give --key HEX32 or --no-key" },
	{ "device rekey 7 0xa1 --key 000102030405060708090a0b0c0d0e0f --no-key",
	  "--key and --no-key exclude each other" },
	{ "sink add 70 --tenant 7 --addr nothere --port 6000",
	  "--addr \"nothere\" is not an IPv4 or IPv6 address" },
	{ "sink add 70 --tenant 7 --addr 10.0.0.1 --port 70000",
	  "--port \"70000\" is not a number from 1 to 65535" },
	{ "sink add 70 --addr 10.0.0.1 --port 6000", "missing --tenant" },
	{ "load", "load: missing FILE" },
	{ "dump --tenant -3", "--tenant \"-3\" is not a number" },
	{ "stats extra", "unexpected argument \"extra\"" },
	{ "frobnicate", "unknown command \"frobnicate\"" },
	{ "tenant frob 7", "unknown command \"tenant frob\"" },
	{ "tenant", "\"tenant\" needs a subcommand" },
	{ "--bogus stats", "unknown option \"--bogus\"" },
};

Test(fgctl, usage_errors_exit_2_naming_the_argument)
{
	static char out[65536], err[65536];

	for (size_t i = 0; i < sizeof(usage_cases) / sizeof(usage_cases[0]); i++) {
		const struct usage_case *u = &usage_cases[i];
		char args[512];
		int st;

		snprintf(args, sizeof(args), "--socket D/nope.sock %s", u->args);
		st = run_fgctl(args, out, err, sizeof(out));
		cr_expect_eq(st, FG_CTL_EXIT_USAGE, "`fgctl %s`: exit %d\n%s", u->args, st, err);
		cr_expect(strstr(err, u->needle) != NULL, "`fgctl %s` does not say \"%s\":\n%s",
			  u->args, u->needle, err);
		cr_expect(strncmp(err, "fgctl: ", 7) == 0, "`fgctl %s`:\n%s", u->args, err);
		cr_expect_eq(out[0], '\0', "`fgctl %s` wrote to stdout:\n%s", u->args, out);
	}
}

/* ---- (c) unreachable ----------------------------------------------------------- */

Test(fgctl, an_unreachable_router_exits_3_naming_the_socket)
{
	static char out[65536], err[65536];
	char want[256], args[256];

	snprintf(want, sizeof(want), "fgctl: cannot reach the router at %s/nope.sock: "
		 "No such file or directory", dir);
	cr_expect_eq(run_fgctl("--socket D/nope.sock stats", out, err, sizeof(out)),
		     FG_CTL_EXIT_UNREACHABLE);
	cr_expect(strstr(err, want) != NULL, "%s", err);

	/* $FG_CTL_SOCKET when there is no --socket. */
	snprintf(args, sizeof(args), "tenant add 7");
	setenv("FG_CTL_SOCKET", "/nonexistent/fg.sock", 1);
	cr_expect_eq(run_fgctl(args, out, err, sizeof(out)), FG_CTL_EXIT_UNREACHABLE);
	unsetenv("FG_CTL_SOCKET");
	cr_expect(strstr(err, "cannot reach the router at /nonexistent/fg.sock") != NULL,
		  "%s", err);

	/* A socket file nobody listens on. */
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/dead.sock", dir);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	cr_expect_eq(run_fgctl("--socket D/dead.sock health", out, err, sizeof(out)),
		     FG_CTL_EXIT_UNREACHABLE);
	cr_expect(strstr(err, "dead.sock: Connection refused") != NULL, "%s", err);
}

/* ---- (d) against a fake router ---------------------------------------------------- */

enum reply_mode {
	REPLY,           /* the canned response, framed */
	CLOSE_MID,       /* half a length prefix, then close */
	HUGE,            /* a length of 4 GiB - 1, then wait for the close */
};

struct exchange {
	const char *expect;      /* the request, as JSON; "@chunk": the load file */
	const char *reply;
	enum reply_mode mode;
};

struct router_case {
	const char *args;        /* D/ is the folder; D/ctl.sock the fake router */
	const char *file_text;   /* written to D/map.jsonl when not NULL */
	struct exchange ex[5];
	int exit;
	const char *out_exact;   /* stdout, when not NULL */
	const char *out_needle;
	const char *err_needle;  /* stderr; NULL: stderr is empty */
};

#define MAP3 \
	"{\"op\":\"tenant\",\"tenant\":7,\"name\":\"acme\"}\n" \
	"{\"op\":\"sink\",\"sink\":70,\"tenant\":7,\"addr\":\"2001:db8::7\",\"port\":6000,\"egress\":0}\n" \
	"{\"op\":\"device\",\"tenant\":7,\"device\":\"0xa1\",\"epoch\":1,\"sinks\":[70]}\n"
#define BEGIN { "{\"cmd\":\"load.begin\"}", "{\"ok\":true}", REPLY }
#define ABORT { "{\"cmd\":\"load.abort\"}", "{\"ok\":true}", REPLY }
#define TENANT_ADD_7 "{\"cmd\":\"apply\",\"op\":{\"op\":\"tenant\",\"tenant\":7,\"name\":\"acme\",\"max_devices\":10}}"
#define MOVE_A1 "{\"cmd\":\"apply\",\"op\":{\"op\":\"move\",\"device\":\"0x00000000000000a1\"," \
	"\"from\":7,\"to\":9,\"epoch\":2,\"sinks\":[90,91],\"key\":\"000102030405060708090a0b0c0d0e0f\"}}"
#define KEY "000102030405060708090a0b0c0d0e0f"
#define STATS_REPLY "{\"ok\":true,\"rx_packets\":10,\"forwarded_packets\":7,\"copies_sent\":9," \
	"\"tx_full\":0,\"drops\":{\"not_ip\":0,\"not_owned\":2,\"auth_failed\":1,\"rate_limited\":0}}"

static const struct router_case router_cases[] = {
	/* apply: tenant add */
	{ "tenant add 7 --name acme --max-devices 10", NULL,
	  { { TENANT_ADD_7, "{\"ok\":true,\"applied\":1}", REPLY } }, 0,
	  NULL, "applied {\"op\":\"tenant\",\"tenant\":7,\"name\":\"acme\",\"max_devices\":10}", NULL },
	{ "tenant add 7 --name acme --max-devices 10", NULL,
	  { { TENANT_ADD_7, "{\"ok\":false,\"code\":\"EEXIST\",\"error\":\"tenant 7 already exists\"}",
	      REPLY } }, 1, "", NULL, "fgctl: tenant 7 already exists\n" },
	{ "--json tenant add 7 --max-devices=10 --name=acme", NULL,
	  { { TENANT_ADD_7, "{\"ok\":true,\"applied\":1}", REPLY } }, 0, "{\"applied\":1}\n", NULL, NULL },
	{ "tenant add 7 --rate-pps 50000 --burst 5000", NULL,
	  { { "{\"cmd\":\"apply\",\"op\":{\"op\":\"tenant\",\"tenant\":7,\"rate_pps\":50000,\"burst\":5000}}",
	      "{\"ok\":true,\"applied\":1}", REPLY } }, 0, NULL, "applied", NULL },
	{ "tenant suspend 7", NULL,
	  { { "{\"cmd\":\"apply\",\"op\":{\"op\":\"suspend\",\"tenant\":7}}", "{\"ok\":true,\"applied\":1}",
	      REPLY } }, 0, NULL, "applied", NULL },
	{ "tenant del 7", NULL,
	  { { "{\"cmd\":\"apply\",\"op\":{\"op\":\"del_tenant\",\"tenant\":7}}",
	      "{\"ok\":false,\"code\":\"EBUSY\",\"error\":\"tenant 7 still has 1 sink\"}", REPLY } },
	  1, NULL, NULL, "fgctl: tenant 7 still has 1 sink" },
	{ "sink add 70 --tenant 7 --addr 2001:db8::7 --port 6000", NULL,
	  { { "{\"cmd\":\"apply\",\"op\":{\"op\":\"sink\",\"sink\":70,\"tenant\":7,\"addr\":\"2001:db8::7\","
	      "\"port\":6000,\"egress\":0}}", "{\"ok\":true,\"applied\":1}", REPLY } }, 0, NULL, "applied", NULL },
	{ "sink del 70", NULL,
	  { { "{\"cmd\":\"apply\",\"op\":{\"op\":\"del_sink\",\"sink\":70}}", "{\"ok\":true,\"applied\":1}",
	      REPLY } }, 0, NULL, "applied", NULL },
	{ "device add 7 161 --epoch 1 --sinks 70 --key 000102030405060708090A0B0C0D0E0F", NULL,
	  { { "{\"cmd\":\"apply\",\"op\":{\"op\":\"device\",\"tenant\":7,\"device\":\"0x00000000000000a1\","
	      "\"epoch\":1,\"sinks\":[70],\"key\":\"" KEY "\"}}", "{\"ok\":true,\"applied\":1}", REPLY } },
	  0, NULL, "applied", NULL },
	{ "device del 7 0xA1", NULL,
	  { { "{\"cmd\":\"apply\",\"op\":{\"op\":\"del_device\",\"tenant\":7,\"device\":\"0x00000000000000a1\"}}",
	      "{\"ok\":true,\"applied\":1}", REPLY } }, 0, NULL, "applied", NULL },
	/* apply: device move */
	{ "device move 0xa1 --from 7 --to 9 --epoch 2 --sinks 90,91 --key " KEY, NULL,
	  { { MOVE_A1, "{\"ok\":true,\"applied\":1}", REPLY } }, 0, NULL, "applied", NULL },
	{ "device move 161 --from 7 --to 9 --epoch 2 --sinks 90,91 --key " KEY, NULL,
	  { { MOVE_A1, "{\"ok\":false,\"code\":\"ESTALE\",\"error\":\"move: epoch 2 is not larger than "
	      "the current 5\"}", REPLY } }, 1, "", NULL,
	  "fgctl: move: epoch 2 is not larger than the current 5\n" },
	{ "--json device move 0xa1 --from 7 --to 9 --epoch 2 --sinks 90,91 --key " KEY, NULL,
	  { { MOVE_A1, "{\"ok\":false,\"code\":\"EPERM\",\"error\":\"not allowed\"}", REPLY } }, 1,
	  "{\"code\":\"EPERM\",\"error\":\"not allowed\"}\n", NULL, "fgctl: not allowed" },
	/* rekey */
	{ "device rekey 7 0xa1 --key " KEY, NULL,
	  { { "{\"cmd\":\"rekey\",\"tenant\":7,\"device\":\"0x00000000000000a1\",\"key\":\"" KEY "\"}",
	      "{\"ok\":true}", REPLY } }, 0, NULL, "new key", NULL },
	{ "device rekey 7 0xa1 --no-key", NULL,
	  { { "{\"cmd\":\"rekey\",\"tenant\":7,\"device\":\"0x00000000000000a1\"}", "{\"ok\":true}", REPLY } },
	  0, NULL, "key removed", NULL },
	/* load */
	{ "load D/map.jsonl", MAP3,
	  { BEGIN, { "@chunk", "{\"ok\":true,\"lines\":3}", REPLY },
	    { "{\"cmd\":\"load.commit\"}", "{\"ok\":true,\"applied\":3}", REPLY } },
	  0, NULL, "loaded 3 operations from D/map.jsonl", NULL },
	{ "--json load D/map.jsonl", MAP3,
	  { BEGIN, { "@chunk", "{\"ok\":true,\"lines\":3}", REPLY },
	    { "{\"cmd\":\"load.commit\"}", "{\"ok\":true,\"applied\":3}", REPLY } },
	  0, "{\"applied\":3}\n", NULL, NULL },
	{ "load D/map.jsonl", MAP3,
	  { BEGIN, { "@chunk", "{\"ok\":false,\"code\":\"EINVAL\",\"error\":\"line 2: op \\\"sink\\\": "
		     "field \\\"port\\\" is 0, outside 1..65535\"}", REPLY }, ABORT },
	  1, "", NULL, "D/map.jsonl:2: op \"sink\": field \"port\" is 0, outside 1..65535\n" },
	{ "load D/map.jsonl", MAP3,
	  { BEGIN, { "@chunk", "{\"ok\":true,\"lines\":3}", REPLY },
	    { "{\"cmd\":\"load.commit\"}", "{\"ok\":false,\"code\":\"ENOENT\",\"error\":\"line 3: "
	      "sink 70 does not exist\"}", REPLY }, ABORT },
	  1, "", NULL, "D/map.jsonl:3: sink 70 does not exist\n" },
	{ "load D/map.jsonl", MAP3,
	  { { "{\"cmd\":\"load.begin\"}", "{\"ok\":false,\"code\":\"EPERM\",\"error\":\"uid 1000 may not "
	      "change the state\"}", REPLY }, ABORT },
	  1, "", NULL, "fgctl: uid 1000 may not change the state\n" },
	/* The last line without its newline still goes, as a whole line. */
	{ "load D/map.jsonl", "{\"op\":\"suspend\",\"tenant\":7}",
	  { BEGIN, { "{\"cmd\":\"load.chunk\",\"text\":\"{\\\"op\\\":\\\"suspend\\\",\\\"tenant\\\":7}\\n\"}",
		     "{\"ok\":true,\"lines\":1}", REPLY },
	    { "{\"cmd\":\"load.commit\"}", "{\"ok\":true,\"applied\":1}", REPLY } },
	  0, NULL, "loaded 1 operations", NULL },
	/* dump, stats, drops, health */
	/* A dump comes in frames (a reply of several lines is several frames). */
	{ "dump --tenant 7", NULL,
	  { { "{\"cmd\":\"dump\",\"tenant\":7}",
	      "{\"ok\":true,\"more\":true,\"text\":\"{\\\"op\\\":\\\"tenant\\\",\\\"tenant\\\":7}\\n\"}\n"
	      "{\"ok\":true,\"more\":true,\"text\":\"{\\\"op\\\":\\\"suspend\\\",\\\"tenant\\\":7}\\n\"}\n"
	      "{\"ok\":true,\"ops\":2,\"bytes\":55}", REPLY } }, 0,
	  "{\"op\":\"tenant\",\"tenant\":7}\n{\"op\":\"suspend\",\"tenant\":7}\n", NULL, NULL },
	{ "dump --with-keys", NULL,
	  { { "{\"cmd\":\"dump\",\"with_keys\":true}", "{\"ok\":true,\"ops\":0,\"bytes\":0}", REPLY } },
	  0, "", NULL, NULL },
	/* A dump that breaks off: what came is out, and fgctl says it is cut. */
	{ "dump", NULL,
	  { { "{\"cmd\":\"dump\"}",
	      "{\"ok\":true,\"more\":true,\"text\":\"{\\\"op\\\":\\\"tenant\\\",\\\"tenant\\\":7}\\n\"}\n"
	      "{\"ok\":false,\"code\":\"EIO\",\"error\":\"dump: reading it back\"}", REPLY } }, 1,
	  "{\"op\":\"tenant\",\"tenant\":7}\n", NULL, "the dump is incomplete: it stopped after 27 bytes" },
	{ "dump", NULL,
	  { { "{\"cmd\":\"dump\"}",
	      "{\"ok\":true,\"more\":true,\"text\":\"{\\\"op\\\":\\\"tenant\\\",\\\"tenant\\\":7}\\n\"}\n"
	      "{\"ok\":true,\"ops\":2,\"bytes\":55}", REPLY } }, 1,
	  NULL, NULL, "the dump ended after 27 bytes, the router sent 55" },
	{ "stats", NULL, { { "{\"cmd\":\"stats\"}", STATS_REPLY, REPLY } }, 0, NULL,
	  "not_owned", NULL },
	{ "--json stats", NULL, { { "{\"cmd\":\"stats\"}", STATS_REPLY, REPLY } }, 0,
	  "{\"rx_packets\":10,\"forwarded_packets\":7,\"copies_sent\":9,\"tx_full\":0,\"drops\":"
	  "{\"not_ip\":0,\"not_owned\":2,\"auth_failed\":1,\"rate_limited\":0}}\n", NULL, NULL },
	{ "drops --tenant 7 --all", NULL,
	  { { "{\"cmd\":\"drops\",\"tenant\":7}", "{\"ok\":true,\"drops\":{\"not_ip\":0,\"not_owned\":2}}",
	      REPLY } }, 0, NULL, "not_ip", NULL },
	{ "health", NULL,
	  { { "{\"cmd\":\"health\"}", "{\"ok\":true,\"state\":\"running\",\"workers\":{\"count\":2}}",
	      REPLY } }, 0, "state: running\nworkers.count: 2\n", NULL, NULL },
	/* A broken conversation exits 3. */
	{ "stats", NULL, { { "{\"cmd\":\"stats\"}", NULL, CLOSE_MID } }, 3, "", NULL,
	  "closed the connection" },
	{ "stats", NULL, { { "{\"cmd\":\"stats\"}", NULL, HUGE } }, 3, "", NULL, "more than 67108864" },
	{ "stats", NULL, { { "{\"cmd\":\"stats\"}", "[1,2]", REPLY } }, 3, "", NULL,
	  "not a JSON object with \"ok\"" },
};

static int
srv_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
srv_read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = read(fd, p, len);

		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One framed request (the peer's JSON), or NULL at EOF; *eof_clean when the
 * peer closed between messages. */
static json_t *
srv_recv(int fd, bool *eof_clean)
{
	uint8_t h[4];
	ssize_t n = read(fd, h, 1);
	json_t *j;
	size_t len;
	char *buf;

	*eof_clean = n == 0;
	if (n != 1 || srv_read_all(fd, h + 1, 3) != 0)
		return NULL;
	len = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
	if (len > FG_CTL_MAX_REQUEST)
		return NULL;
	buf = malloc(len + 1);
	if (buf == NULL || srv_read_all(fd, buf, len) != 0) {
		free(buf);
		return NULL;
	}
	j = json_loadb(buf, len, 0, NULL);
	free(buf);
	return j;
}

static int
srv_send(int fd, const char *text)
{
	/* Several lines: several frames (a dump's). */
	for (;;) {
		size_t len = strcspn(text, "\n");
		uint8_t h[4] = { (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
				 (uint8_t)len };

		if (srv_write_all(fd, h, 4) || srv_write_all(fd, text, len))
			return -1;
		if (text[len] == '\0')
			return 0;
		text += len + 1;
	}
}

/* The fake router, in the child: serve one connection through the script;
 * any deviation is written to log and exits 1. */
static void __attribute__((noreturn))
serve(int lfd, const struct exchange *ex, const char *file_text, FILE *log)
{
	struct timeval tv = { .tv_sec = 20 };
	json_t *got = NULL;
	bool eof;
	int fd;

	alarm(30);
	setsockopt(lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	fd = accept(lfd, NULL, NULL);
	if (fd < 0) {
		fprintf(log, "accept: %s\n", strerror(errno));
		_exit(1);
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (size_t i = 0; i < 5 && ex[i].expect != NULL; i++) {
		json_t *want;
		char *s;

		if (got == NULL)
			got = srv_recv(fd, &eof);
		if (got == NULL) {
			fprintf(log, "request %zu: none (the client closed or sent a bad frame); "
				"expected %s\n", i, ex[i].expect);
			_exit(1);
		}
		if (strcmp(ex[i].expect, "@chunk") == 0)
			want = json_pack("{s:s, s:s}", "cmd", "load.chunk", "text", file_text);
		else
			want = json_loads(ex[i].expect, 0, NULL);
		if (want == NULL || !json_equal(got, want)) {
			s = json_dumps(got, JSON_COMPACT);
			fprintf(log, "request %zu: got %s\n     expected %s\n", i, s,
				strcmp(ex[i].expect, "@chunk") == 0 ? "the file" : ex[i].expect);
			_exit(1);
		}
		json_decref(want);
		json_decref(got);
		got = NULL;
		switch (ex[i].mode) {
		case REPLY:
			if (srv_send(fd, ex[i].reply) != 0) {
				fprintf(log, "reply %zu: %s\n", i, strerror(errno));
				_exit(1);
			}
			break;
		case CLOSE_MID:
			srv_write_all(fd, "\0\0", 2);
			close(fd);
			_exit(0);
		case HUGE:
			srv_write_all(fd, "\xff\xff\xff\xff", 4);
			break;
		}
	}
	/* No more requests: the client closes. */
	got = srv_recv(fd, &eof);
	if (got != NULL || !eof) {
		char *s = got ? json_dumps(got, JSON_COMPACT) : NULL;

		fprintf(log, "after the script: %s\n", s ? s : "a bad frame, not a close");
		_exit(1);
	}
	_exit(0);
}

static int
listen_at(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	cr_assert_geq(fd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "%s", strerror(errno));
	cr_assert_eq(listen(fd, 4), 0);
	return fd;
}

Test(fgctl, requests_and_answers_against_a_fake_router)
{
	static char out[65536], err[65536], want[4096], logtext[8192];
	char sock[128], logpath[128], args[1024];

	snprintf(sock, sizeof(sock), "%s/ctl.sock", dir);
	snprintf(logpath, sizeof(logpath), "%s/server.log", dir);
	for (size_t i = 0; i < sizeof(router_cases) / sizeof(router_cases[0]); i++) {
		const struct router_case *rc = &router_cases[i];
		int lfd, st, code;
		FILE *log;
		pid_t pid;

		if (rc->file_text != NULL)
			write_file("map.jsonl", rc->file_text);
		lfd = listen_at(sock);
		log = fopen(logpath, "w");
		cr_assert_not_null(log);
		pid = fork();
		cr_assert_geq(pid, 0);
		if (pid == 0) {
			setvbuf(log, NULL, _IONBF, 0);
			serve(lfd, rc->ex, rc->file_text, log);
		}
		fclose(log);
		close(lfd);
		snprintf(args, sizeof(args), "--socket D/ctl.sock %s", rc->args);
		code = run_fgctl(args, out, err, sizeof(out));
		cr_assert_eq(waitpid(pid, &st, 0), pid);
		slurp(logpath, logtext, sizeof(logtext));
		cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0,
			  "`fgctl %s`: the fake router says:\n%s", rc->args, logtext);
		cr_expect_eq(code, rc->exit, "`fgctl %s`: exit %d, expected %d\nstdout:\n%s\nstderr:\n%s",
			     rc->args, code, rc->exit, out, err);
		if (rc->out_exact != NULL)
			cr_expect_str_eq(out, rc->out_exact, "`fgctl %s`", rc->args);
		if (rc->out_needle != NULL) {
			expand(rc->out_needle, want, sizeof(want));
			cr_expect(strstr(out, want) != NULL, "`fgctl %s`: stdout does not say \"%s\":\n%s",
				  rc->args, want, out);
		}
		if (rc->err_needle != NULL) {
			expand(rc->err_needle, want, sizeof(want));
			cr_expect(strstr(err, want) != NULL, "`fgctl %s`: stderr does not say \"%s\":\n%s",
				  rc->args, want, err);
		} else {
			cr_expect_str_eq(err, "", "`fgctl %s`", rc->args);
		}
	}
	unlink(sock);
}

/* The human tables: stats shows the totals and the non-zero reasons only;
 * drops --all shows every reason the router sent. */
Test(fgctl, stats_and_drops_tables)
{
	static char out[65536], err[65536];
	static const struct exchange stats[] = { { "{\"cmd\":\"stats\"}", STATS_REPLY, REPLY }, { 0 } };
	static const struct exchange drops[] = {
		{ "{\"cmd\":\"drops\"}", "{\"ok\":true,\"drops\":{\"not_ip\":0,\"not_owned\":2}}", REPLY },
		{ 0 } };
	char sock[128];
	int lfd, st;
	pid_t pid;

	snprintf(sock, sizeof(sock), "%s/ctl.sock", dir);
	lfd = listen_at(sock);
	pid = fork();
	if (pid == 0)
		serve(lfd, stats, NULL, stderr);
	cr_expect_eq(run_fgctl("--socket D/ctl.sock stats", out, err, sizeof(out)), 0, "%s", err);
	waitpid(pid, &st, 0);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	for (const char *const *k = (const char *const[]){ "rx_packets", "forwarded_packets",
			"copies_sent", "tx_full", "not_owned", "auth_failed", NULL }; *k; k++)
		cr_expect(strstr(out, *k) != NULL, "stats does not show %s:\n%s", *k, out);
	cr_expect(strstr(out, "not_ip") == NULL, "a zero reason is shown:\n%s", out);
	cr_expect(strstr(out, "rate_limited") == NULL, "a zero reason is shown:\n%s", out);
	/* not_owned (check 6) before auth_failed (check 8): the spec's order. */
	cr_expect(strstr(out, "not_owned") < strstr(out, "auth_failed"), "%s", out);

	pid = fork();
	if (pid == 0)
		serve(lfd, drops, NULL, stderr);
	cr_expect_eq(run_fgctl("--socket D/ctl.sock drops", out, err, sizeof(out)), 0, "%s", err);
	waitpid(pid, &st, 0);
	cr_expect(strstr(out, "not_owned") != NULL && strstr(out, "not_ip") == NULL, "%s", out);
	pid = fork();
	if (pid == 0)
		serve(lfd, drops, NULL, stderr);
	cr_expect_eq(run_fgctl("--socket D/ctl.sock drops --all", out, err, sizeof(out)), 0, "%s", err);
	waitpid(pid, &st, 0);
	cr_expect(strstr(out, "not_owned") != NULL && strstr(out, "not_ip") != NULL, "%s", out);
	close(lfd);
}

/* A file larger than one chunk goes in several chunks, each of whole lines
 * and at most FG_CTL_LOAD_CHUNK bytes, that add up to the file. */
Test(fgctl, a_large_load_goes_in_chunks_of_whole_lines)
{
	static char out[65536], err[65536];
	size_t want_len = 0, got_len = 0, n_chunks = 0;
	char sock[128], path[128];
	char *text, *got;
	int lfd, st;
	pid_t pid;

	/* 3 MiB of lines of different lengths. */
	text = malloc(4u << 20);
	got = malloc(4u << 20);
	cr_assert(text && got);
	for (unsigned int i = 1; want_len < (3u << 20); i++)
		want_len += (size_t)sprintf(text + want_len,
					    "{\"op\":\"suspend\",\"tenant\":%u}%*s\n", i, (int)(i % 97), "");
	snprintf(path, sizeof(path), "%s/big.jsonl", dir);
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	cr_assert_eq(fwrite(text, 1, want_len, f), want_len);
	fclose(f);

	snprintf(sock, sizeof(sock), "%s/ctl.sock", dir);
	lfd = listen_at(sock);
	pid = fork();
	if (pid == 0) {
		json_t *req;
		bool eof;
		int fd;

		alarm(30);
		fd = accept(lfd, NULL, NULL);
		req = srv_recv(fd, &eof);
		if (!req || strcmp(json_string_value(json_object_get(req, "cmd")), "load.begin") != 0)
			_exit(1);
		srv_send(fd, "{\"ok\":true}");
		for (;;) {
			const char *cmd, *t;
			size_t len;

			req = srv_recv(fd, &eof);
			cmd = json_string_value(json_object_get(req, "cmd"));
			if (cmd == NULL)
				_exit(2);
			if (strcmp(cmd, "load.commit") == 0)
				break;
			t = json_string_value(json_object_get(req, "text"));
			len = json_string_length(json_object_get(req, "text"));
			if (strcmp(cmd, "load.chunk") != 0 || t == NULL || len == 0 ||
			    len > FG_CTL_LOAD_CHUNK || t[len - 1] != '\n')
				_exit(3);
			memcpy(got + got_len, t, len);
			got_len += len;
			n_chunks++;
			srv_send(fd, "{\"ok\":true,\"lines\":1}");
			json_decref(req);
		}
		if (got_len != want_len || memcmp(got, text, want_len) != 0)
			_exit(4);
		if (n_chunks < 3)
			_exit(5);
		srv_send(fd, "{\"ok\":true,\"applied\":12345}");
		req = srv_recv(fd, &eof);
		_exit(req == NULL && eof ? 0 : 6);
	}
	close(lfd);
	cr_expect_eq(run_fgctl("--socket D/ctl.sock load D/big.jsonl", out, err, sizeof(out)), 0,
		     "%s", err);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the fake router's check %d failed",
		  WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	cr_expect(strstr(out, "loaded 12345 operations from") != NULL, "%s", out);
	cr_expect_str_eq(err, "", "no progress bar when stdout is not a terminal");
	free(text);
	free(got);
}
