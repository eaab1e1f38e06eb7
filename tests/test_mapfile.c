/*
 * Mapping files (SPEC 4): every kind of malformed line is refused with its
 * file, line and reason, and a file with a malformed line applies nothing.
 * Accepted spellings (device ids as hex or decimal strings or integers) load.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "mapfile.h"
#include "support.h"

static struct fg_test_env env;
static char path[64];

static void
setup(void)
{
	fg_test_env_init(&env, 16, 16, 64);
	snprintf(path, sizeof(path), "/tmp/fg_mapfile_test.XXXXXX");
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	close(fd);
}

static void
teardown(void)
{
	unlink(path);
	fg_test_env_fini(&env);
}

static void
write_file(const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

TestSuite(mapfile, .init = setup, .fini = teardown);

/* A good first line, then the bad one: line 2 is named, nothing applied. */
struct bad_line {
	const char *line;
	const char *reason;
};

static const struct bad_line bad_lines[] = {
	{ "{\"op\":\"tenant\",\"tenant\":2", "not valid JSON" },
	{ "[1,2]", "one JSON object" },
	{ "{\"tenant\":2}", "field \"op\" is missing" },
	{ "{\"op\":\"rename\",\"tenant\":2}", "unknown op \"rename\"" },
	{ "{\"op\":\"tenant\",\"tenant\":2,\"colour\":\"red\"}", "unknown field \"colour\"" },
	{ "{\"op\":\"tenant\",\"tenant\":2,\"tenant\":3}", "not valid JSON" },
	{ "{\"op\":\"tenant\"}", "missing field \"tenant\"" },
	{ "{\"op\":\"tenant\",\"tenant\":0}", "\"tenant\" is 0, outside 1..4294967295" },
	{ "{\"op\":\"tenant\",\"tenant\":4294967296}", "outside 1..4294967295" },
	{ "{\"op\":\"tenant\",\"tenant\":-3}", "\"tenant\" is -3" },
	{ "{\"op\":\"tenant\",\"tenant\":2.0}", "\"tenant\" must be an integer" },
	{ "{\"op\":\"tenant\",\"tenant\":\"2\"}", "\"tenant\" must be an integer" },
	{ "{\"op\":\"tenant\",\"tenant\":2,\"name\":7}", "\"name\" must be a string" },
	{ "{\"op\":\"sink\",\"sink\":5,\"tenant\":1,\"addr\":\"300.1.1.1\",\"port\":1,\"egress\":0}",
	  "\"300.1.1.1\" is not an IPv4 or IPv6 address" },
	{ "{\"op\":\"sink\",\"sink\":5,\"tenant\":1,\"addr\":\"10.0.0.1\",\"port\":70000,\"egress\":0}",
	  "\"port\" is 70000" },
	{ "{\"op\":\"sink\",\"sink\":5,\"tenant\":1,\"addr\":\"10.0.0.1\",\"port\":1}",
	  "missing field \"egress\"" },
	{ "{\"op\":\"device\",\"tenant\":1,\"device\":\"0xzz\",\"epoch\":1,\"sinks\":[5]}",
	  "\"0xzz\" is not a 64-bit device id" },
	{ "{\"op\":\"device\",\"tenant\":1,\"device\":\"0x10000000000000000\",\"epoch\":1,\"sinks\":[5]}",
	  "is not a 64-bit device id" },
	{ "{\"op\":\"device\",\"tenant\":1,\"device\":\"18446744073709551616\",\"epoch\":1,\"sinks\":[5]}",
	  "does not fit in 64 bits" },
	{ "{\"op\":\"device\",\"tenant\":1,\"device\":\"0x0\",\"epoch\":1,\"sinks\":[5]}",
	  "non-zero device id" },
	{ "{\"op\":\"device\",\"tenant\":1,\"device\":1.5,\"epoch\":1,\"sinks\":[5]}",
	  "must be a string" },
	{ "{\"op\":\"device\",\"tenant\":1,\"device\":\"0xa1\",\"epoch\":1,\"sinks\":[]}",
	  "array of 1 to 8 sink ids" },
	{ "{\"op\":\"device\",\"tenant\":1,\"device\":\"0xa1\",\"epoch\":1,\"sinks\":[1,2,3,4,5,6,7,8,9]}",
	  "array of 1 to 8 sink ids" },
	{ "{\"op\":\"device\",\"tenant\":1,\"device\":\"0xa1\",\"epoch\":1,\"sinks\":[\"5\"]}",
	  "element 0 is not a sink id" },
	{ "{\"op\":\"device\",\"tenant\":1,\"device\":\"0xa1\",\"epoch\":1,\"sinks\":[5],\"key\":\"0011\"}",
	  "\"key\" must be 32 hex digits" },
	{ "{\"op\":\"device\",\"tenant\":1,\"device\":\"0xa1\",\"epoch\":1,\"sinks\":[5],\"key\":\"000102030405060708090a0b0c0d0e0g\"}",
	  "\"key\" must be 32 hex digits" },
	{ "{\"op\":\"move\",\"device\":\"0xa1\",\"from\":1,\"epoch\":2,\"sinks\":[5]}",
	  "missing field \"to\"" },
	{ "{\"op\":\"del_sink\",\"sink\":5,\"tenant\":1}", "unknown field \"tenant\"" },
	/* Rate limits (check 10): every bad value names its field. */
	{ "{\"op\":\"tenant\",\"tenant\":2,\"rate_pps\":-5,\"burst\":10}", "\"rate_pps\" is -5" },
	{ "{\"op\":\"tenant\",\"tenant\":2,\"rate_pps\":0,\"burst\":10}",
	  "\"rate_pps\" is 0, outside 1..4294967295" },
	{ "{\"op\":\"tenant\",\"tenant\":2,\"rate_pps\":4294967296,\"burst\":10}",
	  "\"rate_pps\" is 4294967296, outside 1..4294967295" },
	{ "{\"op\":\"tenant\",\"tenant\":2,\"rate_pps\": 99999999999999999999,\"burst\":10}",
	  "field \"rate_pps\": too big integer" },
	{ "{\"op\":\"tenant\",\"tenant\":2,\"rate_pps\":2.5,\"burst\":10}",
	  "\"rate_pps\" must be an integer" },
	{ "{\"op\":\"tenant\",\"tenant\":2,\"rate_pps\":1e3,\"burst\":10}",
	  "\"rate_pps\" must be an integer" },
	{ "{\"op\":\"tenant\",\"tenant\":2,\"rate_pps\":\"100\",\"burst\":10}",
	  "\"rate_pps\" must be an integer" },
	{ "{\"op\":\"tenant\",\"tenant\":2,\"rate_pps\":100,\"burst\":-1}", "\"burst\" is -1" },
	{ "{\"op\":\"tenant\",\"tenant\":2,\"rate_pps\":100,\"burst\":4294967296}",
	  "\"burst\" is 4294967296, outside 1..4294967295" },
	{ "{\"op\":\"tenant\",\"tenant\":2,\"rate_pps\":100,\"burst\":18446744073709551616}",
	  "field \"burst\": too big integer" },
	{ "{\"op\":\"tenant\",\"tenant\":2,\"rate_pps\":100,\"burst\":0.5}",
	  "\"burst\" must be an integer" },
	{ "{\"op\":\"tenant\",\"tenant\":2,\"burst\":10}",
	  "field \"burst\" needs \"rate_pps\"" },
	{ "{\"op\":\"device\",\"tenant\":1,\"device\":1,\"epoch\":1,\"sinks\":[99999999999999999999]}",
	  "not valid JSON: too big integer" },
};

Test(mapfile, a_malformed_line_is_named_and_nothing_is_applied)
{
	for (size_t i = 0; i < sizeof(bad_lines) / sizeof(bad_lines[0]); i++) {
		char text[1024], want[128];
		struct fg_err err = { 0 };
		unsigned long line = 0;
		int ret;

		snprintf(text, sizeof(text), "{\"op\":\"tenant\",\"tenant\":1}\n%s\n",
			 bad_lines[i].line);
		write_file(text);
		ret = fg_mapfile_load(env.o, path, &line, &err);
		cr_expect_eq(ret, -EINVAL, "case %zu (%s): returned %d", i,
			     bad_lines[i].line, ret);
		cr_expect_eq(line, 2, "case %zu: line %lu named", i, line);
		snprintf(want, sizeof(want), "%s:2: ", path);
		cr_expect(strncmp(err.msg, want, strlen(want)) == 0,
			  "case %zu: message \"%s\" does not start with \"%s\"", i,
			  err.msg, want);
		cr_expect(strstr(err.msg, bad_lines[i].reason) != NULL,
			  "case %zu: message \"%s\" does not say \"%s\"", i, err.msg,
			  bad_lines[i].reason);
		cr_expect_null(fg_tables_tenant(env.t, 1),
			       "case %zu: line 1 was applied although line 2 is malformed", i);
	}
}

Test(mapfile, a_refused_operation_names_its_line)
{
	struct fg_err err = { 0 };
	unsigned long line = 0;

	write_file("{\"op\":\"tenant\",\"tenant\":1}\n"
		   "\n"
		   "{\"op\":\"tenant\",\"tenant\":2}\n"
		   "{\"op\":\"sink\",\"sink\":20,\"tenant\":2,\"addr\":\"10.0.0.2\",\"port\":9,\"egress\":0}\n"
		   "{\"op\":\"device\",\"tenant\":1,\"device\":\"0xa1\",\"epoch\":1,\"sinks\":[20]}\n");
	cr_assert_eq(fg_mapfile_load(env.o, path, &line, &err), -EXDEV);
	cr_expect_eq(line, 5);
	cr_expect(strstr(err.msg, ":5: device 0x00000000000000a1: sink 20 belongs to tenant 2") != NULL,
		  "%s", err.msg);
	/* One transaction: the lines before the refused one are not applied. */
	cr_expect_null(fg_tables_device(env.t, 1, 0xa1));
	cr_expect_null(fg_tables_tenant(env.t, 1));
	cr_expect_null(fg_tables_tenant(env.t, 2));
	cr_expect_null(fg_tables_sink(env.t, 20));
	cr_expect_eq(fg_tables_pending(env.t), 0);
}

/* Each operation is checked against the state the earlier ones of the file
 * produce, not the state before the file. */
struct txn_case {
	const char *text;
	unsigned long line;          /* 0: loads */
	const char *reason;
};

static const struct txn_case txn_cases[] = {
	/* depends on earlier lines: accepted */
	{ "{\"op\":\"tenant\",\"tenant\":1}\n"
	  "{\"op\":\"tenant\",\"tenant\":2}\n"
	  "{\"op\":\"sink\",\"sink\":10,\"tenant\":1,\"addr\":\"192.0.2.1\",\"port\":9,\"egress\":0}\n"
	  "{\"op\":\"sink\",\"sink\":20,\"tenant\":2,\"addr\":\"192.0.2.2\",\"port\":9,\"egress\":0}\n"
	  "{\"op\":\"device\",\"tenant\":1,\"device\":\"0xa1\",\"epoch\":1,\"sinks\":[10]}\n"
	  "{\"op\":\"move\",\"device\":\"0xa1\",\"from\":1,\"to\":2,\"epoch\":2,\"sinks\":[20]}\n"
	  "{\"op\":\"move\",\"device\":\"0xa1\",\"from\":2,\"to\":1,\"epoch\":3,\"sinks\":[10]}\n"
	  "{\"op\":\"del_device\",\"tenant\":1,\"device\":\"0xa1\"}\n"
	  "{\"op\":\"del_sink\",\"sink\":20}\n"
	  "{\"op\":\"del_tenant\",\"tenant\":2}\n"
	  "{\"op\":\"tenant\",\"tenant\":2}\n", 0, NULL },
	/* a move whose `from` is stale after an earlier move */
	{ "{\"op\":\"tenant\",\"tenant\":1}\n"
	  "{\"op\":\"tenant\",\"tenant\":2}\n"
	  "{\"op\":\"sink\",\"sink\":10,\"tenant\":1,\"addr\":\"192.0.2.1\",\"port\":9,\"egress\":0}\n"
	  "{\"op\":\"sink\",\"sink\":20,\"tenant\":2,\"addr\":\"192.0.2.2\",\"port\":9,\"egress\":0}\n"
	  "{\"op\":\"device\",\"tenant\":1,\"device\":\"0xa1\",\"epoch\":1,\"sinks\":[10]}\n"
	  "{\"op\":\"move\",\"device\":\"0xa1\",\"from\":1,\"to\":2,\"epoch\":2,\"sinks\":[20]}\n"
	  "{\"op\":\"move\",\"device\":\"0xa1\",\"from\":1,\"to\":2,\"epoch\":3,\"sinks\":[20]}\n",
	  7, "held by tenant 2, not by tenant 1" },
	/* a sink deleted earlier in the file */
	{ "{\"op\":\"tenant\",\"tenant\":1}\n"
	  "{\"op\":\"sink\",\"sink\":10,\"tenant\":1,\"addr\":\"192.0.2.1\",\"port\":9,\"egress\":0}\n"
	  "{\"op\":\"del_sink\",\"sink\":10}\n"
	  "{\"op\":\"device\",\"tenant\":1,\"device\":\"0xa1\",\"epoch\":1,\"sinks\":[10]}\n",
	  4, "sink 10 does not exist" },
	/* a sink in use by a mapping made earlier in the file */
	{ "{\"op\":\"tenant\",\"tenant\":1}\n"
	  "{\"op\":\"sink\",\"sink\":10,\"tenant\":1,\"addr\":\"192.0.2.1\",\"port\":9,\"egress\":0}\n"
	  "{\"op\":\"device\",\"tenant\":1,\"device\":\"0xa1\",\"epoch\":1,\"sinks\":[10]}\n"
	  "{\"op\":\"del_sink\",\"sink\":10}\n",
	  4, "sink 10 is in use by 1 device mappings" },
	/* max_devices counted across the file */
	{ "{\"op\":\"tenant\",\"tenant\":1,\"max_devices\":2}\n"
	  "{\"op\":\"sink\",\"sink\":10,\"tenant\":1,\"addr\":\"192.0.2.1\",\"port\":9,\"egress\":0}\n"
	  "{\"op\":\"device\",\"tenant\":1,\"device\":\"0xa1\",\"epoch\":1,\"sinks\":[10]}\n"
	  "{\"op\":\"device\",\"tenant\":1,\"device\":\"0xa2\",\"epoch\":1,\"sinks\":[10]}\n"
	  "{\"op\":\"device\",\"tenant\":1,\"device\":\"0xa3\",\"epoch\":1,\"sinks\":[10]}\n",
	  5, "max_devices (2)" },
	/* a second owner created within the file */
	{ "{\"op\":\"tenant\",\"tenant\":1}\n"
	  "{\"op\":\"tenant\",\"tenant\":2}\n"
	  "{\"op\":\"sink\",\"sink\":10,\"tenant\":1,\"addr\":\"192.0.2.1\",\"port\":9,\"egress\":0}\n"
	  "{\"op\":\"sink\",\"sink\":20,\"tenant\":2,\"addr\":\"192.0.2.2\",\"port\":9,\"egress\":0}\n"
	  "{\"op\":\"device\",\"tenant\":1,\"device\":\"0xa1\",\"epoch\":1,\"sinks\":[10]}\n"
	  "{\"op\":\"device\",\"tenant\":2,\"device\":\"0xa1\",\"epoch\":1,\"sinks\":[20]}\n",
	  6, "held by tenant 1" },
	/* an epoch lowered within the file */
	{ "{\"op\":\"tenant\",\"tenant\":1}\n"
	  "{\"op\":\"sink\",\"sink\":10,\"tenant\":1,\"addr\":\"192.0.2.1\",\"port\":9,\"egress\":0}\n"
	  "{\"op\":\"device\",\"tenant\":1,\"device\":\"0xa1\",\"epoch\":5,\"sinks\":[10]}\n"
	  "{\"op\":\"device\",\"tenant\":1,\"device\":\"0xa1\",\"epoch\":4,\"sinks\":[10]}\n",
	  4, "epoch 4 is lower than the current 5" },
	/* a tenant deleted while a sink added in the file is still there */
	{ "{\"op\":\"tenant\",\"tenant\":1}\n"
	  "{\"op\":\"sink\",\"sink\":10,\"tenant\":1,\"addr\":\"192.0.2.1\",\"port\":9,\"egress\":0}\n"
	  "{\"op\":\"del_tenant\",\"tenant\":1}\n",
	  3, "tenant 1 is in use" },
};

Test(mapfile, a_file_is_checked_against_the_state_it_produces)
{
	for (size_t i = 0; i < sizeof(txn_cases) / sizeof(txn_cases[0]); i++) {
		struct fg_test_env e2;
		struct fg_err err = { 0 };
		unsigned long line = 0;
		int ret;

		fg_test_env_init(&e2, 16, 16, 64);
		write_file(txn_cases[i].text);
		ret = fg_mapfile_load(e2.o, path, &line, &err);
		if (txn_cases[i].line == 0) {
			cr_expect_eq(ret, 0, "case %zu: %s", i, err.msg);
			cr_expect_not_null(fg_tables_tenant(e2.t, 2), "case %zu", i);
			cr_expect_null(fg_tables_device(e2.t, 1, 0xa1), "case %zu", i);
			cr_expect_eq(fg_tables_count_sinks(e2.t), 1, "case %zu", i);
		} else {
			cr_expect_lt(ret, 0, "case %zu loaded", i);
			cr_expect_eq(line, txn_cases[i].line, "case %zu: line %lu (%s)", i,
				     line, err.msg);
			cr_expect(strstr(err.msg, txn_cases[i].reason) != NULL,
				  "case %zu: \"%s\" does not say \"%s\"", i, err.msg,
				  txn_cases[i].reason);
			cr_expect_eq(fg_tables_count_tenants(e2.t), 0,
				     "case %zu: something was applied", i);
			cr_expect_eq(fg_tables_count_sinks(e2.t), 0, "case %zu", i);
			cr_expect_eq(fg_tables_count_devices(e2.t), 0, "case %zu", i);
		}
		fg_test_env_fini(&e2);
	}
}

/* A refused line near the end of a long file applies nothing. */
Test(mapfile, a_long_file_with_a_bad_line_near_the_end_applies_nothing)
{
	FILE *f = fopen(path, "w");
	struct fg_err err = { 0 };
	unsigned long line = 0;
	const unsigned int n = 20000;

	cr_assert_not_null(f);
	fprintf(f, "{\"op\":\"tenant\",\"tenant\":1}\n"
		   "{\"op\":\"sink\",\"sink\":10,\"tenant\":1,\"addr\":\"192.0.2.1\",\"port\":9,\"egress\":0}\n");
	for (unsigned int i = 1; i <= n; i++)
		fprintf(f, "{\"op\":\"device\",\"tenant\":1,\"device\":%u,\"epoch\":1,\"sinks\":[%u]}\n",
			i, i == n - 1 ? 11 : 10);
	fclose(f);
	fg_test_env_fini(&env);
	fg_test_env_init(&env, 16, 16, n + 16);
	cr_assert_eq(fg_mapfile_load(env.o, path, &line, &err), -ENOENT, "%s", err.msg);
	cr_expect_eq(line, n + 1, "%s", err.msg);
	cr_expect(strstr(err.msg, "sink 11 does not exist") != NULL, "%s", err.msg);
	cr_expect_eq(fg_tables_count_devices(env.t), 0);
	cr_expect_eq(fg_tables_count_tenants(env.t), 0);
	/* Without the bad line, the same file loads whole. */
	f = fopen(path, "w");
	fprintf(f, "{\"op\":\"tenant\",\"tenant\":1}\n"
		   "{\"op\":\"sink\",\"sink\":10,\"tenant\":1,\"addr\":\"192.0.2.1\",\"port\":9,\"egress\":0}\n");
	for (unsigned int i = 1; i <= n; i++)
		fprintf(f, "{\"op\":\"device\",\"tenant\":1,\"device\":%u,\"epoch\":1,\"sinks\":[10]}\n", i);
	fclose(f);
	cr_assert_eq(fg_mapfile_load(env.o, path, &line, &err), 0, "%s", err.msg);
	cr_expect_eq(fg_tables_count_devices(env.t), n);
}

Test(mapfile, a_missing_file_is_named)
{
	struct fg_err err = { 0 };

	cr_assert_eq(fg_mapfile_load(env.o, "/nonexistent/m.jsonl", NULL, &err), -ENOENT);
	cr_expect_str_eq(err.msg, "/nonexistent/m.jsonl: No such file or directory");
}

Test(mapfile, every_op_and_id_spelling_loads)
{
	struct fg_err err = { 0 };
	const struct fg_device *d;

	write_file("{\"op\":\"tenant\",\"tenant\":1,\"name\":\"a\",\"max_devices\":10,\"rate_pps\":100,\"burst\":10}\n"
		   "{\"op\":\"tenant\",\"tenant\":2}\n"
		   "{\"op\":\"sink\",\"sink\":10,\"tenant\":1,\"addr\":\"192.0.2.1\",\"port\":9,\"egress\":0}\n"
		   "{\"op\":\"sink\",\"sink\":11,\"tenant\":1,\"addr\":\"2001:db8::1\",\"port\":9,\"egress\":1}\n"
		   "{\"op\":\"sink\",\"sink\":20,\"tenant\":2,\"addr\":\"192.0.2.2\",\"port\":9,\"egress\":0}\n"
		   "{\"op\":\"device\",\"tenant\":1,\"device\":\"0xA1\",\"epoch\":1,\"sinks\":[10]}\n"
		   "{\"op\":\"device\",\"tenant\":1,\"device\":\"162\",\"epoch\":1,\"sinks\":[10,11]}\n"
		   "{\"op\":\"device\",\"tenant\":1,\"device\":163,\"epoch\":1,\"sinks\":[11],\"key\":\"000102030405060708090A0B0C0D0E0F\"}\n"
		   "{\"op\":\"device\",\"tenant\":1,\"device\":\"0xffffffffffffffff\",\"epoch\":1,\"sinks\":[11]}\n"
		   "{\"op\":\"move\",\"device\":\"0xa3\",\"from\":1,\"to\":2,\"epoch\":2,\"sinks\":[20]}\n"
		   "{\"op\":\"del_device\",\"tenant\":1,\"device\":\"0xa2\"}\n"
		   "{\"op\":\"suspend\",\"tenant\":2}\n"
		   "{\"op\":\"resume\",\"tenant\":2}\n"
		   "{\"op\":\"suspend\",\"tenant\":1}\n"
		   "{\"op\":\"tenant\",\"tenant\":3}\n"
		   "{\"op\":\"del_tenant\",\"tenant\":3}\n"
		   "{\"op\":\"sink\",\"sink\":12,\"tenant\":1,\"addr\":\"192.0.2.3\",\"port\":9,\"egress\":0}\n"
		   "{\"op\":\"del_sink\",\"sink\":12}\n");
	cr_assert_eq(fg_mapfile_load(env.o, path, NULL, &err), 0, "%s", err.msg);
	cr_expect_not_null(fg_tables_device(env.t, 1, 0xa1));
	cr_expect_null(fg_tables_device(env.t, 1, 0xa2));
	cr_expect_not_null(fg_tables_device(env.t, 1, UINT64_MAX));
	d = fg_tables_device(env.t, 2, 0xa3);
	cr_assert_not_null(d);
	cr_expect_eq(d->epoch, 2);
	cr_expect_eq(d->has_key, 1, "a move keeps the key");
	cr_expect_eq(d->key[15], 0x0f);
	cr_expect_eq(fg_tables_tenant(env.t, 1)->suspended, 1);
	cr_expect_eq(fg_tables_tenant(env.t, 2)->suspended, 0);
	cr_expect_eq(fg_tables_tenant(env.t, 1)->rate_pps, 100);
	cr_expect_str_eq(fg_tables_tenant(env.t, 1)->name, "a");
	cr_expect_null(fg_tables_tenant(env.t, 3));
	cr_expect_null(fg_tables_sink(env.t, 12));
	cr_expect_eq(fg_tables_sink(env.t, 11)->family, AF_INET6);
	cr_expect_eq(fg_tables_sink(env.t, 11)->egress, 1);
	cr_expect_eq(fg_tables_pending(env.t), 0, "load ends synchronised");
}
