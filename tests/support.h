/*
 * Shared test fixtures: EAL start-up without hugepages, the conformance
 * vectors (read from tests/vectors/), packets as mbufs, and a fresh set of
 * tables with the ownership API on top.
 */
#ifndef FG_TEST_SUPPORT_H
#define FG_TEST_SUPPORT_H

#include <stddef.h>
#include <stdint.h>

#include <rte_mbuf.h>

#include "ownership.h"
#include "tables.h"

#define FG_TEST_MAX_PKTS 256

struct fg_test_pkt {
	uint8_t *data;
	uint32_t len;
};

struct fg_test_copy {
	uint32_t sink, tenant;
	char addr[64];
	uint16_t port, egress;
};

struct fg_test_expect {
	unsigned int i;
	char name[96];        /* the vector's "case" */
	int forward;
	char reason[32];
	unsigned int n_copies;
	struct fg_test_copy copies[8];
};

/* Start EAL once per process (no hugepages, no PCI, in memory). */
void fg_test_eal(void);

/* Path of a file in tests/vectors/. */
const char *fg_test_vector_path(const char *name);

/* Read a pcap file; returns the number of packets (at most max). */
size_t fg_test_read_pcap(const char *path, struct fg_test_pkt *pkts, size_t max);
void fg_test_free_pkts(struct fg_test_pkt *pkts, size_t n);

/* Read expected.jsonl; returns the number of entries. */
size_t fg_test_read_expected(const char *path, struct fg_test_expect *e, size_t max);

/* A pktmbuf pool for tests, created on first use. */
struct rte_mempool *fg_test_pool(void);
/* One mbuf holding the bytes (single segment). */
struct rte_mbuf *fg_test_mbuf(const uint8_t *data, uint32_t len);
/* An mbuf whose data is the caller's buffer itself (an external buffer):
 * under ASan, a read past len is caught. The buffer must outlive the mbuf. */
struct rte_mbuf *fg_test_mbuf_ext(uint8_t *data, uint32_t len);
/* The bytes as a chain of two segments split at `split`. */
struct rte_mbuf *fg_test_mbuf_split(const uint8_t *data, uint32_t len, uint32_t split);

/* A temporary folder (made from a mkdtemp template in dir) and its removal. */
/* Seconds on the monotonic clock. */
double fg_test_now(void);

void fg_test_tmpdir(char *dir, size_t len, const char *prefix);
void fg_test_rmdir(const char *dir);

/* Run a shell command: its exit status (128 when killed), and its stdout and
 * stderr together in out. */
int fg_test_run(const char *cmd, char *out, size_t len);

/* Fresh tables (unique name) and ownership state for a test. */
struct fg_test_env {
	struct fg_tables *t;
	struct fg_ownership *o;
};
void fg_test_env_init(struct fg_test_env *env, uint32_t max_tenants,
		      uint32_t max_sinks, uint32_t max_devices);
void fg_test_env_fini(struct fg_test_env *env);

#endif /* FG_TEST_SUPPORT_H */
