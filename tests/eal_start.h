/*
 * EAL start-up for test programs: no hugepages, no PCI, no telemetry, one
 * lcore, and a per-process file prefix whose runtime folder is removed at
 * exit. Free of Criterion, so plain programs (the TSan runner) use it too.
 */
#ifndef FG_TEST_EAL_START_H
#define FG_TEST_EAL_START_H

/* 0, or -1 with the reason printed. Starting twice is a no-op. */
int fg_test_eal_start(void);

#endif
