/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Percentiles by selection against a sorted reference; what counts as wait and run time; per type. */

#include <stdlib.h>

#include "stats.h"

static int compare_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

/* nearest rank by definition: sort, take element ⌈p·n/100⌉ */
static uint64_t reference(const uint64_t *v, size_t n, unsigned p) {
        g_autofree uint64_t *c = g_memdup2(v, n * sizeof(uint64_t));
        size_t rank = (p * n + 99) / 100;

        qsort(c, n, sizeof(uint64_t), compare_u64);
        return c[rank - 1];
}

static void test_percentile_matches_sort(void) {
        g_autoptr(GRand) rand = g_rand_new_with_seed(42);

        for (size_t n = 1; n <= 120; n++)
                for (unsigned spread = 1; spread <= 1000; spread *= 10) {   /* 1: all equal */
                        g_autofree uint64_t *v = g_new(uint64_t, n), *w = g_new(uint64_t, n);

                        for (size_t i = 0; i < n; i++)
                                v[i] = g_rand_int_range(rand, 0, (gint32) spread);
                        for (unsigned p = 1; p <= 100; p++) {
                                memcpy(w, v, n * sizeof(uint64_t));
                                g_assert_cmpuint(stats_percentile(w, n, p), ==, reference(v, n, p));
                        }
                }
}

static void test_percentile_edges(void) {
        uint64_t sorted[1000], reversed[1000], one = 7;

        for (size_t i = 0; i < G_N_ELEMENTS(sorted); i++) {
                sorted[i] = i + 1;
                reversed[i] = G_N_ELEMENTS(sorted) - i;
        }
        g_assert_cmpuint(stats_percentile(NULL, 0, 50), ==, 0);
        g_assert_cmpuint(stats_percentile(&one, 1, 99), ==, 7);
        g_assert_cmpuint(stats_percentile(sorted, 1000, 50), ==, 500);
        g_assert_cmpuint(stats_percentile(sorted, 1000, 99), ==, 990);
        g_assert_cmpuint(stats_percentile(reversed, 1000, 90), ==, 900);
        g_assert_cmpuint(stats_percentile(reversed, 1000, 100), ==, 1000);
        /* 0 and above 100 are clamped, not out of bounds */
        g_assert_cmpuint(stats_percentile(reversed, 1000, 0), ==, 10);   /* as 1 */
        g_assert_cmpuint(stats_percentile(reversed, 1000, 200), ==, 1000);
}

static Job *mk(uint64_t id, const char *type, JobStatus status, uint64_t submitted, uint64_t started,
               uint64_t finished) {
        Job *j = job_new(id);

        j->type = g_strdup(type);
        j->status = status;
        j->submitted_usec = submitted;
        j->started_usec = started;
        j->finished_usec = finished;
        return j;
}

static void test_figures(void) {
        g_autoptr(Stats) s = stats_new();
        Job *jobs[] = {
                mk(1, "a", JOB_PENDING, 100, 0, 0),              /* waits, no sample yet */
                mk(2, "a", JOB_RUNNING, 100, 130, 0),            /* wait 30, still running */
                mk(3, "a", JOB_SUCCEEDED, 100, 110, 160),        /* wait 10, run 50 */
                mk(4, "b", JOB_FAILED, 200, 400, 500),           /* wait 200, run 100 */
                mk(5, "b", JOB_CANCELLED, 200, 0, 250),          /* cancelled before it started */
                mk(6, "b", JOB_SCHEDULED, 300, 0, 0),
        };
        g_autoptr(GPtrArray) types = NULL;
        StatsFigures f;

        jobs[2]->cpu_usage_nsec = 3000;
        jobs[2]->memory_peak_bytes = 1 << 20;
        jobs[3]->cpu_usage_nsec = 500;
        jobs[3]->memory_peak_bytes = 3 << 20;
        for (size_t i = 0; i < G_N_ELEMENTS(jobs); i++)
                stats_add(s, jobs[i]);

        stats_get(s, NULL, &f);
        g_assert_cmpuint(f.total, ==, 6);
        g_assert_cmpuint(f.by_status[JOB_PENDING], ==, 1);
        g_assert_cmpuint(f.by_status[JOB_SCHEDULED], ==, 1);
        g_assert_cmpuint(f.by_status[JOB_RUNNING], ==, 1);
        g_assert_cmpuint(f.queue_depth, ==, 2);
        g_assert_cmpuint(f.wait.count, ==, 3);
        g_assert_cmpuint(f.wait.total_usec, ==, 240);
        g_assert_cmpuint(f.wait.p50_usec, ==, 30);
        g_assert_cmpuint(f.wait.p99_usec, ==, 200);
        g_assert_cmpuint(f.run.count, ==, 2);
        g_assert_cmpuint(f.run.p50_usec, ==, 50);
        g_assert_cmpuint(f.run.p90_usec, ==, 100);
        g_assert_cmpuint(f.cpu_usage_total_nsec, ==, 3500);
        g_assert_cmpuint(f.memory_peak_total_bytes, ==, 4 << 20);
        g_assert_cmpuint(f.memory_peak_max_bytes, ==, 3 << 20);

        stats_get(s, "b", &f);
        g_assert_cmpuint(f.total, ==, 3);
        g_assert_cmpuint(f.wait.count, ==, 1);
        g_assert_cmpuint(f.wait.p50_usec, ==, 200);
        g_assert_cmpuint(f.run.p99_usec, ==, 100);
        /* asked twice: the same figures (the samples are gone, the results are kept) */
        stats_get(s, "b", &f);
        g_assert_cmpuint(f.run.p99_usec, ==, 100);

        stats_get(s, "nope", &f);
        g_assert_cmpuint(f.total, ==, 0);
        g_assert_cmpuint(f.wait.p50_usec, ==, 0);

        types = stats_types(s);
        g_assert_cmpuint(types->len, ==, 2);
        g_assert_cmpstr(types->pdata[0], ==, "a");
        g_assert_cmpstr(types->pdata[1], ==, "b");

        for (size_t i = 0; i < G_N_ELEMENTS(jobs); i++)
                job_free(jobs[i]);
}

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/stats/percentile-matches-sort", test_percentile_matches_sort);
        g_test_add_func("/stats/percentile-edges", test_percentile_edges);
        g_test_add_func("/stats/figures", test_figures);
        return g_test_run();
}
