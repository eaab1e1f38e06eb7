/*
 * Test fixtures (see support.h).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>
#include <pcap/pcap.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_mbuf.h>

#include "eal_quick.h"
#include "support.h"

void
fg_test_eal(void)
{
	cr_assert_eq(fg_eal_quick_start("fgtest", 512), 0, "EAL did not start");
}

const char *
fg_test_vector_path(const char *name)
{
	static char path[4096];

	snprintf(path, sizeof(path), "%s/vectors/%s", FG_TEST_DIR, name);
	return path;
}

size_t
fg_test_read_pcap(const char *path, struct fg_test_pkt *pkts, size_t max)
{
	char errbuf[PCAP_ERRBUF_SIZE];
	struct pcap_pkthdr *h;
	const u_char *data;
	pcap_t *p = pcap_open_offline(path, errbuf);
	size_t n = 0;

	cr_assert_not_null(p, "%s: %s", path, errbuf);
	while (n < max && pcap_next_ex(p, &h, &data) == 1) {
		pkts[n].data = malloc(h->caplen);
		memcpy(pkts[n].data, data, h->caplen);
		pkts[n].len = h->caplen;
		n++;
	}
	pcap_close(p);
	return n;
}

void
fg_test_free_pkts(struct fg_test_pkt *pkts, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(pkts[i].data);
}

size_t
fg_test_read_expected(const char *path, struct fg_test_expect *e, size_t max)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, n = 0;

	cr_assert_not_null(f, "cannot open %s", path);
	while (n < max && getline(&line, &cap, f) > 0) {
		json_error_t jerr;
		json_t *o = json_loads(line, 0, &jerr), *copies, *c;
		size_t k;

		cr_assert_not_null(o, "%s: %s", path, jerr.text);
		memset(&e[n], 0, sizeof(e[n]));
		e[n].i = (unsigned int)json_integer_value(json_object_get(o, "i"));
		snprintf(e[n].name, sizeof(e[n].name), "%s",
			 json_string_value(json_object_get(o, "case")));
		e[n].forward = strcmp(json_string_value(json_object_get(o, "verdict")),
				      "forward") == 0;
		if (!e[n].forward)
			snprintf(e[n].reason, sizeof(e[n].reason), "%s",
				 json_string_value(json_object_get(o, "reason")));
		copies = json_object_get(o, "copies");
		json_array_foreach(copies, k, c) {
			struct fg_test_copy *cp = &e[n].copies[k];

			cp->sink = (uint32_t)json_integer_value(json_object_get(c, "sink"));
			cp->tenant = (uint32_t)json_integer_value(json_object_get(c, "tenant"));
			snprintf(cp->addr, sizeof(cp->addr), "%s",
				 json_string_value(json_object_get(c, "addr")));
			cp->port = (uint16_t)json_integer_value(json_object_get(c, "port"));
			cp->egress = (uint16_t)json_integer_value(json_object_get(c, "egress"));
			e[n].n_copies++;
		}
		json_decref(o);
		n++;
	}
	free(line);
	fclose(f);
	return n;
}

struct rte_mempool *
fg_test_pool(void)
{
	static struct rte_mempool *mp;

	if (mp == NULL) {
		mp = rte_pktmbuf_pool_create("fg_test_mbufs", 4095, 0, 0,
					     RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
		cr_assert_not_null(mp, "mbuf pool: %s", rte_strerror(rte_errno));
	}
	return mp;
}

struct rte_mbuf *
fg_test_mbuf(const uint8_t *data, uint32_t len)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(fg_test_pool());
	char *p;

	cr_assert_not_null(m);
	p = rte_pktmbuf_append(m, (uint16_t)len);
	cr_assert(len == 0 || p != NULL);
	if (len)
		memcpy(p, data, len);
	return m;
}

static void
fg_test_extbuf_free(void *addr, void *opaque)
{
	(void)addr;
	(void)opaque;
}

struct rte_mbuf *
fg_test_mbuf_ext(uint8_t *data, uint32_t len)
{
	static struct rte_mbuf_ext_shared_info shinfo = {
		.free_cb = fg_test_extbuf_free,
	};
	struct rte_mbuf *m = rte_pktmbuf_alloc(fg_test_pool());

	cr_assert_not_null(m);
	rte_mbuf_ext_refcnt_set(&shinfo, 2);  /* never reaches 0: not freed */
	rte_pktmbuf_attach_extbuf(m, data, RTE_BAD_IOVA, (uint16_t)len, &shinfo);
	m->data_off = 0;
	m->data_len = (uint16_t)len;
	m->pkt_len = len;
	return m;
}

struct rte_mbuf *
fg_test_mbuf_split(const uint8_t *data, uint32_t len, uint32_t split)
{
	struct rte_mbuf *a = fg_test_mbuf(data, split);
	struct rte_mbuf *b = fg_test_mbuf(data + split, len - split);

	cr_assert_eq(rte_pktmbuf_chain(a, b), 0);
	return a;
}

void
fg_test_tmpdir(char *dir, size_t len, const char *prefix)
{
	snprintf(dir, len, "/tmp/%s.XXXXXX", prefix);
	cr_assert_not_null(mkdtemp(dir), "mkdtemp %s", dir);
}

void
fg_test_rmdir(const char *dir)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_expect_eq(system(cmd), 0, "cannot remove %s", dir);
}

int
fg_test_run(const char *cmd, char *out, size_t len)
{
	char full[16384];
	FILE *p;
	size_t n;
	int st;

	snprintf(full, sizeof(full), "%s 2>&1", cmd);
	p = popen(full, "r");
	cr_assert_not_null(p);
	n = fread(out, 1, len - 1, p);
	out[n] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

void
fg_test_env_init(struct fg_test_env *env, uint32_t max_tenants,
		 uint32_t max_sinks, uint32_t max_devices)
{
	static unsigned int seq;
	char name[17];
	struct fg_tables_config cfg = {
		.name = name,
		.max_tenants = max_tenants,
		.max_sinks = max_sinks,
		.max_devices = max_devices,
		.max_readers = 4,
		.socket_id = SOCKET_ID_ANY,
	};

	fg_test_eal();
	snprintf(name, sizeof(name), "t%u", seq++);
	env->t = fg_tables_create(&cfg);
	cr_assert_not_null(env->t, "fg_tables_create: %s", rte_strerror(rte_errno));
	env->o = fg_ownership_create(env->t);
	cr_assert_not_null(env->o, "fg_ownership_create: %s", rte_strerror(rte_errno));
}

void
fg_test_env_fini(struct fg_test_env *env)
{
	fg_ownership_free(env->o);
	fg_tables_free(env->t);
}

double
fg_test_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
