/*
 * The median of a benchmark's rounds, for the bench programs.
 */
#ifndef FG_BENCH_MEDIAN_H
#define FG_BENCH_MEDIAN_H

#include <stdlib.h>

static int
fg_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Sorts v. */
static inline double
fg_median(double *v, unsigned int n)
{
	qsort(v, n, sizeof(*v), fg_cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#endif
