/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Ordering: priority first, then submission order; per type; removal. */

#include "log.h"
#include "scheduler.h"

static void job_destroy(gpointer j) {
        job_free(j);
}

static Job *mk(uint64_t id, const char *type, int prio) {
        Job *j = job_new(id);
        j->type = g_strdup(type);
        j->priority = prio;
        return j;
}

static void test_order(void) {
        g_autoptr(Scheduler) s = scheduler_new();
        Job *jobs[] = { mk(1, "a", 0), mk(2, "a", 50), mk(3, "a", -5), mk(4, "a", 50), mk(5, "b", 1000) };
        uint64_t want[] = { 2, 4, 1, 3 };

        for (size_t i = 0; i < G_N_ELEMENTS(jobs); i++)
                scheduler_add(s, jobs[i]);
        g_assert_cmpuint(scheduler_n_queued(s, "a"), ==, 4);
        g_assert_cmpuint(scheduler_n_queued(s, "b"), ==, 1);
        g_assert_cmpuint(scheduler_n_queued(s, "c"), ==, 0);
        g_assert_null(scheduler_peek(s, "c"));

        for (size_t i = 0; i < G_N_ELEMENTS(want); i++) {
                Job *j = scheduler_peek(s, "a");
                g_assert_nonnull(j);
                g_assert_cmpuint(j->id, ==, want[i]);
                scheduler_remove(s, j);
                g_assert_null(j->sched_node);
        }
        g_assert_null(scheduler_peek(s, "a"));
        g_assert_cmpuint(scheduler_peek(s, "b")->id, ==, 5);

        /* removing what is not queued is harmless */
        scheduler_remove(s, jobs[0]);
        for (size_t i = 0; i < G_N_ELEMENTS(jobs); i++) {
                scheduler_remove(s, jobs[i]);
                job_free(jobs[i]);
        }
}

static void test_many(void) {
        g_autoptr(Scheduler) s = scheduler_new();
        g_autoptr(GPtrArray) all = g_ptr_array_new_with_free_func(job_destroy);
        int last_prio = 1001;
        uint64_t last_id = 0;

        for (uint64_t i = 1; i <= 10000; i++) {
                Job *j = mk(i, "t", (int) (i * 7919 % 201) - 100);
                g_ptr_array_add(all, j);
                scheduler_add(s, j);
        }
        for (unsigned n = 0; n < 10000; n++) {
                Job *j = scheduler_peek(s, "t");
                g_assert_nonnull(j);
                g_assert_true(j->priority < last_prio || (j->priority == last_prio && j->id > last_id));
                last_prio = j->priority;
                last_id = j->id;
                scheduler_remove(s, j);
        }
        g_assert_null(scheduler_peek(s, "t"));
}

static void test_timed(void) {
        g_autoptr(Scheduler) s = scheduler_new();
        Job *a = mk(1, "t", 0), *b = mk(2, "t", 0), *c = mk(3, "t", 0), *p = mk(4, "t", 0);

        a->status = b->status = c->status = JOB_SCHEDULED;
        a->not_before_usec = 300;
        b->not_before_usec = 100;
        c->not_before_usec = 100;
        scheduler_add(s, a);
        scheduler_add(s, b);
        scheduler_add(s, c);
        scheduler_add(s, p);
        /* due order: time, then id; scheduled jobs never show in a type's queue */
        g_assert_true(scheduler_next_due(s) == b);
        g_assert_true(scheduler_peek(s, "t") == p);
        g_assert_cmpuint(scheduler_n_queued(s, "t"), ==, 1);
        scheduler_remove(s, b);
        g_assert_true(scheduler_next_due(s) == c);
        scheduler_remove(s, c);
        g_assert_true(scheduler_next_due(s) == a);
        scheduler_remove(s, a);
        g_assert_null(scheduler_next_due(s));
        scheduler_remove(s, p);
        job_free(a);
        job_free(b);
        job_free(c);
        job_free(p);
}

static void test_expiry(void) {
        g_autoptr(Scheduler) s = scheduler_new();
        g_autoptr(Job) a = mk(1, "t", 0), b = mk(2, "t", 0), c = mk(3, "t", 0), none = mk(4, "t", 0);

        a->expire_at_usec = 500;
        b->expire_at_usec = 200;
        c->expire_at_usec = 200;
        c->status = JOB_SCHEDULED;
        c->not_before_usec = 100;
        /* the expiry set is apart from the queues: a job may be in both */
        scheduler_add(s, a);
        scheduler_add(s, c);
        scheduler_add_expiry(s, a);
        scheduler_add_expiry(s, b);
        scheduler_add_expiry(s, c);
        scheduler_add_expiry(s, none);          /* no deadline: not in the set */
        g_assert_null(none->expire_node);
        g_assert_true(scheduler_next_expiry(s) == b);
        scheduler_remove_expiry(s, b);
        g_assert_null(b->expire_node);
        g_assert_true(scheduler_next_expiry(s) == c);
        g_assert_true(scheduler_next_due(s) == c);
        scheduler_remove(s, c);
        g_assert_true(scheduler_next_expiry(s) == c);
        scheduler_remove_expiry(s, c);
        scheduler_remove_expiry(s, c);          /* not in it any more: harmless */
        g_assert_true(scheduler_next_expiry(s) == a);
        g_assert_true(scheduler_peek(s, "t") == a);
        scheduler_remove_expiry(s, a);
        g_assert_null(scheduler_next_expiry(s));
        scheduler_remove(s, a);
}

int main(int argc, char *argv[]) {
        log_set_target(LOG_TARGET_STDERR);
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/scheduler/order", test_order);
        g_test_add_func("/scheduler/many", test_many);
        g_test_add_func("/scheduler/timed", test_timed);
        g_test_add_func("/scheduler/expiry", test_expiry);
        return g_test_run();
}
