/*
 * Latency histograms of control requests, one per command kind, kept by the
 * control server (control/server.c) on its own thread and read by the
 * Prometheus endpoint (control/metrics.c) on the same thread: plain fields,
 * no atomics. Buckets are cumulative only when exported; here each counts
 * the requests that fell between the previous bound and its own.
 */
#ifndef FG_LATENCY_H
#define FG_LATENCY_H

#include <stdint.h>
#include <time.h>

/* Upper bounds in seconds: 50 us (a read of a small table) to 10 s (a load
 * of millions of lines); the last bucket is everything above. */
#define FG_LATENCY_BOUNDS \
	{ 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, \
	  0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10 }
#define FG_LATENCY_N_BOUNDS 17

struct fg_latency {
	uint64_t count;
	double sum;                                  /* seconds */
	uint64_t bucket[FG_LATENCY_N_BOUNDS + 1];    /* last: above every bound */
};

static inline double
fg_latency_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void
fg_latency_record(struct fg_latency *l, double seconds)
{
	static const double bounds[FG_LATENCY_N_BOUNDS] = FG_LATENCY_BOUNDS;
	unsigned int i = 0;

	while (i < FG_LATENCY_N_BOUNDS && seconds > bounds[i])
		i++;
	l->bucket[i]++;
	l->count++;
	l->sum += seconds;
}

#endif /* FG_LATENCY_H */
