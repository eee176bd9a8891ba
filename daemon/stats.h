/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Statistics over the jobs jobd knows (those not purged by Retention=), for GetStats: counts by
 * status, wait and run time percentiles, CPU and memory totals; in all and per type. One pass over
 * the jobs (stats_add() each), then exact nearest-rank percentiles by selection, so a call costs
 * O(jobs) time and at most 32 bytes a job of scratch (a wait and a run sample, kept for all jobs
 * and for the job's type). No I/O, no sd-bus.
 *
 * Wait: from SubmittedUSec to StartedUSec (the latest attempt's start) of jobs that started.
 * Run: from StartedUSec to FinishedUSec of finished jobs that started. CPU and memory: what ended
 * attempts of local jobs recorded (CPUUsageNSec, MemoryPeakBytes); external workers report none.
 */

#include <stddef.h>
#include <stdint.h>
#include <glib.h>

#include "job.h"

typedef struct StatsTimes {
        unsigned count;
        uint64_t total_usec;
        uint64_t p50_usec, p90_usec, p99_usec;  /* 0 when count is 0 */
} StatsTimes;

typedef struct StatsFigures {
        unsigned by_status[_JOB_STATUS_MAX];
        unsigned total;
        unsigned queue_depth;                   /* pending, scheduled, blocked */
        StatsTimes wait, run;
        uint64_t cpu_usage_total_nsec;
        uint64_t memory_peak_total_bytes;
        uint64_t memory_peak_max_bytes;
} StatsFigures;

typedef struct Stats Stats;

Stats *stats_new(void);
Stats *stats_free(Stats *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Stats, stats_free)

void stats_add(Stats *s, const Job *j);
/* The figures of all jobs added (type NULL) or of those of one type (zeros if none); percentiles
 * are computed on the first call for each and kept. */
void stats_get(Stats *s, const char *type, StatsFigures *ret);
/* The types of the jobs added, sorted; the strings are the jobs' (valid while they are). */
GPtrArray *stats_types(Stats *s);

/* The nearest-rank percentile (1..100) of n values: the smallest value with at least percent % of
 * the values at or below it. Reorders v. 0 when n is 0. Expected O(n). */
uint64_t stats_percentile(uint64_t *v, size_t n, unsigned percent);
