/*
 * The sink_mismatch alarm's way into the audit log (docs/audit.md). SPEC 3
 * check 9 can only count when the tables are corrupted, and the count MUST
 * stay 0: the main thread calls fg_audit_watch() from its loop, and about
 * once a second it sums the workers' counters; when sink_mismatch rose it
 * logs an ALARM and appends an alarm record with each tenant's total.
 */
#ifndef FG_AUDIT_ALARM_H
#define FG_AUDIT_ALARM_H

#include <stdint.h>

#include "audit.h"

struct fg_router;

struct fg_audit_watch {
	uint64_t seen;               /* sink_mismatch drops already recorded */
	uint64_t next;               /* timer cycles of the next look; 0: now */
};

/* Look if it is time (w->next); a no-op without an audit log. A failed
 * append is tried again at the next look. Main thread only. */
void fg_audit_watch(struct fg_audit_watch *w, struct fg_audit *a, const struct fg_router *r);

#endif /* FG_AUDIT_ALARM_H */
