/*
 * The control plane's state as other threads may read it. The control
 * thread owns the journal, the server and the writer side of the tables;
 * DPDK's telemetry threads must not touch them. So the control thread
 * publishes a copy of the values an operator watches (table sizes, journal
 * size, shield state, connections, last change) after each poll round, under
 * a DPDK seqlock: a reader copies the values and retries if a publish ran
 * meanwhile, so it never blocks the control thread and never sees half of
 * two rounds. The store follower's gauges go through the same lock.
 */
#ifndef FG_CTLSTATE_H
#define FG_CTLSTATE_H

#include <stdbool.h>
#include <stdint.h>

enum fg_shield_state {
	FG_SHIELD_STATE_NONE,        /* no shield configured */
	FG_SHIELD_STATE_IN_STEP,     /* every change reached the maps */
	FG_SHIELD_STATE_DEGRADED,    /* a map write failed since the last resync */
};

struct fg_ctl_values {
	uint32_t tenants, sinks, devices;             /* entries in each table */
	uint32_t max_tenants, max_sinks, max_devices; /* capacities */
	bool has_journal;
	uint64_t journal_bytes, journal_records;
	uint32_t journal_generation;
	enum fg_shield_state shield;
	uint64_t shield_faults;                       /* map writes that failed */
	uint32_t connections;                         /* control connections open */
	uint64_t changes_applied, group_commits;
	int64_t started_unix;                         /* the control server's start */
	int64_t last_change_unix;                     /* 0: no change since start */
};

/* The store follower's position (etcd, SPEC 5), when there is one. */
struct fg_store_values {
	bool following;
	int64_t enforced_revision;   /* the store revision the tables hold */
	int64_t store_revision;      /* the newest revision the store has */
	double synced_at;            /* CLOCK_REALTIME seconds of the last sync;
				      * negative: never */
};

struct fg_ctl_state;

/* Constructor (NULL when out of memory) and destructor. */
struct fg_ctl_state *fg_ctl_state_create(void);
void fg_ctl_state_free(struct fg_ctl_state *s);

/* Writers: the control thread after each round; the store follower. */
void fg_ctl_state_publish(struct fg_ctl_state *s, const struct fg_ctl_values *v);
void fg_ctl_state_set_store(struct fg_ctl_state *s, const struct fg_store_values *st);

/* Any thread: a consistent copy of one publish. */
void fg_ctl_state_read(const struct fg_ctl_state *s, struct fg_ctl_values *v,
		       struct fg_store_values *st);

#endif /* FG_CTLSTATE_H */
