/*
 * Preloaded into a router under test (LD_PRELOAD): its wall clock runs
 * FG_WALL_SPEED times fast (100 unless set) from FG_WALL_FROM (seconds
 * since the epoch; the moment it starts unless set), while CLOCK_MONOTONIC and every other clock stay true. A timeout that
 * reads the wall clock then fires a hundred times early; one that reads
 * the monotonic clock does not move.
 *
 * The real clocks are read with the system call, not the vDSO, so the
 * shim needs no dlsym (which allocates, and deadlocks against an
 * allocator that reads the clock while it initialises).
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static struct timespec start;
static double speed;

static void
real_clock(clockid_t id, struct timespec *ts)
{
	syscall(SYS_clock_gettime, id, ts);
}

__attribute__((constructor)) static void
fast_wallclock_init(void)
{
	const char *s = getenv("FG_WALL_SPEED"), *from = getenv("FG_WALL_FROM");

	speed = s != NULL ? strtod(s, NULL) : 100.0;
	real_clock(CLOCK_REALTIME, &start);
	if (from != NULL)
		start.tv_sec = (time_t)strtoll(from, NULL, 10);
}

static void
fast_wall(clockid_t id, struct timespec *ts)
{
	double d;

	real_clock(id, ts);
	d = (double)(ts->tv_sec - start.tv_sec) + (ts->tv_nsec - start.tv_nsec) / 1e9;
	d *= speed - 1.0;
	ts->tv_sec += (time_t)d;
	ts->tv_nsec += (long)((d - (double)(time_t)d) * 1e9);
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

int
clock_gettime(clockid_t id, struct timespec *ts)
{
	if (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)
		fast_wall(id, ts);
	else
		real_clock(id, ts);
	return 0;
}

time_t
time(time_t *t)
{
	struct timespec ts;

	fast_wall(CLOCK_REALTIME, &ts);
	if (t != NULL)
		*t = ts.tv_sec;
	return ts.tv_sec;
}

int
gettimeofday(struct timeval *restrict tv, void *restrict tz)
{
	struct timespec ts;

	(void)tz;
	fast_wall(CLOCK_REALTIME, &ts);
	tv->tv_sec = ts.tv_sec;
	tv->tv_usec = ts.tv_nsec / 1000;
	return 0;
}

int
timespec_get(struct timespec *ts, int base)
{
	if (base != TIME_UTC)
		return 0;
	fast_wall(CLOCK_REALTIME, ts);
	return base;
}
