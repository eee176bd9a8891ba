/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The dependency index: counts of unmet dependencies, who becomes ready, failures that drop a
 * job from every list, and a long chain (no recursion, links freed). */

#include "deps.h"
#include "log.h"

static void job_destroy(gpointer j) {
        job_free(j);
}

static Job *mk(GPtrArray *all, uint64_t id, const uint64_t *after, size_t n) {
        Job *j = job_new(id);

        j->type = g_strdup("t");
        g_array_append_vals(j->after, after, n);
        g_ptr_array_add(all, j);
        return j;
}

static void wait_all(DepIndex *d, Job *j) {
        for (unsigned i = 0; i < j->after->len; i++)
                dep_index_add(d, j, i);
}

static void assert_ids(GPtrArray *jobs, const uint64_t *want, size_t n) {
        g_assert_cmpuint(jobs->len, ==, n);
        for (size_t i = 0; i < n; i++)
                g_assert_cmpuint(((Job *) jobs->pdata[i])->id, ==, want[i]);
        g_ptr_array_unref(jobs);
}

static void test_met(void) {
        g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func(job_destroy);
        g_autoptr(DepIndex) d = dep_index_new();
        Job *a = mk(all, 3, (uint64_t[]) { 1 }, 1), *b = mk(all, 2, (uint64_t[]) { 1, 4 }, 2);
        Job *c = mk(all, 5, (uint64_t[]) { 1 }, 1);

        wait_all(d, a);
        wait_all(d, b);
        wait_all(d, c);
        g_assert_cmpuint(b->n_unmet, ==, 2);
        g_assert_cmpuint(dep_index_n_waiting(d, 1), ==, 3);
        g_assert_cmpuint(dep_index_n_waiting(d, 4), ==, 1);

        /* in id order, and only those waiting for nothing more */
        assert_ids(dep_index_met(d, 1), (uint64_t[]) { 3, 5 }, 2);
        g_assert_cmpuint(dep_index_n_waiting(d, 1), ==, 0);
        g_assert_cmpuint(b->n_unmet, ==, 1);
        g_assert_nonnull(b->dep_edges);
        g_assert_null(a->dep_edges);
        assert_ids(dep_index_met(d, 1), NULL, 0);
        assert_ids(dep_index_met(d, 4), (uint64_t[]) { 2 }, 1);
        g_assert_cmpuint(b->n_unmet, ==, 0);
        g_assert_null(b->dep_edges);
}

static void test_failed_and_drop(void) {
        g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func(job_destroy);
        g_autoptr(DepIndex) d = dep_index_new();
        Job *a = mk(all, 10, (uint64_t[]) { 1, 2 }, 2), *b = mk(all, 11, (uint64_t[]) { 2, 3 }, 2);
        Job *c = mk(all, 12, (uint64_t[]) { 3 }, 1), *e = mk(all, 13, (uint64_t[]) { 2 }, 1);

        wait_all(d, a);
        wait_all(d, b);
        wait_all(d, c);
        wait_all(d, e);

        /* a cancelled waiter leaves every list at once */
        dep_index_drop(d, e);
        g_assert_cmpuint(e->n_unmet, ==, 0);
        g_assert_cmpuint(dep_index_n_waiting(d, 2), ==, 2);
        dep_index_drop(d, e);   /* again: harmless */

        /* a failure drops its waiters from their other lists too */
        assert_ids(dep_index_failed(d, 2), (uint64_t[]) { 10, 11 }, 2);
        g_assert_cmpuint(a->n_unmet, ==, 0);
        g_assert_cmpuint(b->n_unmet, ==, 0);
        g_assert_cmpuint(dep_index_n_waiting(d, 1), ==, 0);
        g_assert_cmpuint(dep_index_n_waiting(d, 3), ==, 1);
        assert_ids(dep_index_failed(d, 2), NULL, 0);
        assert_ids(dep_index_met(d, 3), (uint64_t[]) { 12 }, 1);
}

/* A chain 1 ← 2 ← … ← N: each end touches one list. The index is torn down with jobs still
 * waiting: their links are theirs. */
static void test_chain(void) {
        g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func(job_destroy);
        g_autoptr(DepIndex) d = dep_index_new();
        const uint64_t n = 100000;

        for (uint64_t id = 2; id <= n; id++)
                wait_all(d, mk(all, id, (uint64_t[]) { id - 1 }, 1));
        for (uint64_t id = 1; id < n / 2; id++) {
                g_autoptr(GPtrArray) next = id % 2 ? dep_index_met(d, id) : dep_index_failed(d, id);
                g_assert_cmpuint(next->len, ==, 1);
                g_assert_cmpuint(((Job *) next->pdata[0])->id, ==, id + 1);
        }
        g_assert_cmpuint(dep_index_n_waiting(d, n - 1), ==, 1);
}

int main(int argc, char *argv[]) {
        log_set_target(LOG_TARGET_STDERR);
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/deps/met", test_met);
        g_test_add_func("/deps/failed-and-drop", test_failed_and_drop);
        g_test_add_func("/deps/chain", test_chain);
        return g_test_run();
}
