/*
 * EAL start-up for tests, benchmarks and tools that need no ports: no
 * hugepages, no PCI, no telemetry, one lcore, and a per-process file prefix
 * whose runtime folder is removed at exit.
 */
#ifndef FG_EAL_QUICK_H
#define FG_EAL_QUICK_H

/* 0, or -1 with the reason printed. Starting twice is a no-op. */
int fg_eal_quick_start(const char *prog, unsigned int mem_mb);

/* rte_eal_cleanup(), then remove the process's EAL runtime folder. For any
 * process that started EAL with --no-shconf. */
void fg_eal_cleanup(void);

#endif
