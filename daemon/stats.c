/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Owns, per GetStats call, an accumulator for all jobs and one per type: counts and sums as the
 * jobs are added, and the wait and run samples until their percentiles are taken (then freed).
 * Percentiles are exact (nearest rank) by selection, not by sorting: three selections on the same
 * array cost O(n) expected, where a sort would cost O(n log n), and need no histogram whose buckets
 * would blur the figures a person checks against jobs they ran.
 */

#include <string.h>
#include <sys/types.h>

#include "stats.h"

typedef struct Acc {
        StatsFigures f;
        GArray *wait, *run;             /* uint64_t µs; NULL once the percentiles were taken */
} Acc;

struct Stats {
        Acc all;
        GHashTable *by_type;            /* type name (borrowed from the jobs) → Acc* */
};

static void acc_init(Acc *a) {
        *a = (Acc) {
                .wait = g_array_new(FALSE, FALSE, sizeof(uint64_t)),
                .run = g_array_new(FALSE, FALSE, sizeof(uint64_t)),
        };
}

static void acc_done(Acc *a) {
        if (a->wait)
                g_array_unref(a->wait);
        if (a->run)
                g_array_unref(a->run);
        a->wait = a->run = NULL;
}

static void acc_free(gpointer p) {
        acc_done(p);
        g_free(p);
}

Stats *stats_new(void) {
        Stats *s = g_new0(Stats, 1);

        acc_init(&s->all);
        s->by_type = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, acc_free);
        return s;
}

Stats *stats_free(Stats *s) {
        if (!s)
                return NULL;
        acc_done(&s->all);
        g_hash_table_unref(s->by_type);
        return g_free(s), NULL;
}

static void times_add(StatsTimes *t, GArray *samples, uint64_t usec) {
        t->count++;
        t->total_usec = usec > UINT64_MAX - t->total_usec ? UINT64_MAX : t->total_usec + usec;
        g_array_append_val(samples, usec);
}

static void acc_add(Acc *a, const Job *j) {
        StatsFigures *f = &a->f;

        if (j->status >= 0 && j->status < _JOB_STATUS_MAX)
                f->by_status[j->status]++;
        f->total++;
        if (job_status_is_queued(j->status))
                f->queue_depth++;

        if (j->started_usec > 0 && j->started_usec >= j->submitted_usec)
                times_add(&f->wait, a->wait, j->started_usec - j->submitted_usec);
        if (job_status_is_finished(j->status) && j->started_usec > 0 && j->finished_usec >= j->started_usec)
                times_add(&f->run, a->run, j->finished_usec - j->started_usec);

        f->cpu_usage_total_nsec += j->cpu_usage_nsec;
        f->memory_peak_total_bytes += j->memory_peak_bytes;
        f->memory_peak_max_bytes = MAX(f->memory_peak_max_bytes, j->memory_peak_bytes);
}

void stats_add(Stats *s, const Job *j) {
        Acc *a = g_hash_table_lookup(s->by_type, j->type);

        if (!a) {
                a = g_new(Acc, 1);
                acc_init(a);
                g_hash_table_insert(s->by_type, j->type, a);
        }
        acc_add(&s->all, j);
        acc_add(a, j);
}

static void times_finish(StatsTimes *t, GArray *samples) {
        uint64_t *v = (uint64_t *) (void *) samples->data;

        t->p50_usec = stats_percentile(v, samples->len, 50);
        t->p90_usec = stats_percentile(v, samples->len, 90);
        t->p99_usec = stats_percentile(v, samples->len, 99);
}

void stats_get(Stats *s, const char *type, StatsFigures *ret) {
        Acc *a = type ? g_hash_table_lookup(s->by_type, type) : &s->all;

        if (!a) {
                *ret = (StatsFigures) {};
                return;
        }
        if (a->wait) {
                times_finish(&a->f.wait, a->wait);
                times_finish(&a->f.run, a->run);
                acc_done(a);
        }
        *ret = a->f;
}

static gint compare_names(gconstpointer a, gconstpointer b) {
        return strcmp(*(const char *const *) a, *(const char *const *) b);
}

GPtrArray *stats_types(Stats *s) {
        GPtrArray *names = g_ptr_array_new();
        GHashTableIter it;
        gpointer key;

        g_hash_table_iter_init(&it, s->by_type);
        while (g_hash_table_iter_next(&it, &key, NULL))
                g_ptr_array_add(names, key);
        g_ptr_array_sort(names, compare_names);
        return names;
}

static void swap(uint64_t *a, uint64_t *b) {
        uint64_t t = *a;

        *a = *b;
        *b = t;
}

uint64_t stats_percentile(uint64_t *v, size_t n, unsigned percent) {
        ssize_t lo = 0, hi, k;

        if (n == 0)
                return 0;
        percent = CLAMP(percent, 1u, 100u);
        k = (ssize_t) (((uint64_t) percent * n + 99) / 100) - 1;    /* rank ⌈p·n/100⌉, from 0 */
        hi = (ssize_t) n - 1;

        /* Hoare selection; the median of three as the pivot keeps sorted and reversed input linear
         * and puts sentinels at both ends, so the scans below stay within [lo, hi] */
        while (lo < hi) {
                ssize_t mid = lo + (hi - lo) / 2, i = lo, j = hi;
                uint64_t pivot;

                if (v[mid] < v[lo])
                        swap(&v[mid], &v[lo]);
                if (v[hi] < v[lo])
                        swap(&v[hi], &v[lo]);
                if (v[hi] < v[mid])
                        swap(&v[hi], &v[mid]);
                pivot = v[mid];

                while (i <= j) {
                        while (v[i] < pivot)
                                i++;
                        while (v[j] > pivot)
                                j--;
                        if (i <= j)
                                swap(&v[i++], &v[j--]);
                }
                /* [lo, j] ≤ pivot ≤ [i, hi]; anything between equals the pivot */
                if (k <= j)
                        hi = j;
                else if (k >= i)
                        lo = i;
                else
                        return v[k];
        }
        return v[k];
}
