/*
 * framegate's commands on DPDK's telemetry socket
 * (/var/run/dpdk/<file-prefix>/dpdk_telemetry.v2; dpdk-telemetry.py):
 *
 *   /framegate/totals          every counter and every drop reason, summed
 *   /framegate/workers         the number of workers and each one's main counters
 *   /framegate/worker,N        worker N's counters and drop reasons
 *   /framegate/tenant,ID       tenant ID's forwarded packets and drop reasons
 *   /framegate/tables          entries and capacity of each table
 *   /framegate/control         journal, shield, connections, changes
 *
 * Read-only. DPDK runs the callbacks on its telemetry threads (one per
 * client connection), never on the control thread: they read the workers'
 * counters as fg_router_totals does (relaxed atomic loads of blocks only
 * their worker writes), the control plane through the copy it publishes
 * (ctlstate.h), and look a tenant up as an RCU reader that is online only
 * for that lookup.
 */
#ifndef FG_TELEMETRY_H
#define FG_TELEMETRY_H

#include <framegate/error.h>

struct fg_router;
struct fg_tables;
struct fg_ctl_state;

/* Register the commands (once per process; later calls only point them at
 * the new router). reader_id: an RCU reader id of the tables that no worker
 * uses. 0, or -errno with err set. */
int fg_telemetry_start(const struct fg_router *r, struct fg_tables *t,
		       unsigned int reader_id, const struct fg_ctl_state *st,
		       struct fg_err *err);

/* Before the router or tables go away: the commands answer "stopping"
 * from now on (DPDK has no way to unregister them). */
void fg_telemetry_stop(void);

#endif /* FG_TELEMETRY_H */
