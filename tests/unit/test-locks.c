/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The lock table: one holder per (owner, key), the candidate is the best waiter while the key
 * is free, settle reports exactly the turns that changed, entries go when unused. */

#include "locks.h"
#include "log.h"

static Job *mk(uint64_t id, uid_t owner, const char *key, int prio) {
        Job *j = job_new(id);

        j->type = g_strdup("t");
        j->owner = owner;
        j->lock = g_strdup(key);
        j->priority = prio;
        return j;
}

static void settle(LockTable *t, const Job *j, const Job *want_demote, const Job *want_promote) {
        Job *demote, *promote;

        lock_table_settle(t, j, &demote, &promote);
        g_assert_true(demote == want_demote);
        g_assert_true(promote == want_promote);
}

static void test_turns(void) {
        g_autoptr(LockTable) t = lock_table_new();
        g_autoptr(Job) a = mk(1, 1000, "db", 0), b = mk(2, 1000, "db", 10), c = mk(3, 1000, "db", 10);

        lock_table_enqueue(t, a);
        settle(t, a, NULL, a);
        g_assert_true(lock_table_is_candidate(a));
        settle(t, a, NULL, NULL);               /* nothing changed: nothing to report */

        /* a better waiter takes the turn from a candidate that has not started */
        lock_table_enqueue(t, b);
        settle(t, b, a, b);
        g_assert_false(lock_table_is_candidate(a));
        g_assert_true(lock_table_is_waiting(a));

        g_assert_true(lock_table_acquire(t, b));
        g_assert_true(lock_table_holds(b));
        g_assert_false(lock_table_is_waiting(b));
        settle(t, b, NULL, NULL);
        lock_table_enqueue(t, c);
        settle(t, c, NULL, NULL);               /* held: nobody's turn */

        /* equal priority: the older first; a's lower priority waits */
        lock_table_release(t, b);
        g_assert_false(lock_table_holds(b));
        settle(t, b, NULL, c);
        lock_table_dequeue(t, c);               /* cancelled before it started */
        settle(t, c, NULL, a);
        g_assert_true(lock_table_acquire(t, a));
        lock_table_release(t, a);
        settle(t, a, NULL, NULL);
        g_assert_false(lock_table_busy(t, 1000, "db"));
}

static void test_owners_and_conflicts(void) {
        g_autoptr(LockTable) t = lock_table_new();
        g_autoptr(Job) a = mk(1, 1000, "db", 0), b = mk(2, 1001, "db", 0), c = mk(3, 1000, "db", 0);
        g_autoptr(Job) nolock = job_new(4);
        Job *demote, *promote;

        /* another owner's key of the same name is another key */
        g_assert_true(lock_table_acquire(t, a));
        g_assert_true(lock_table_acquire(t, b));
        g_assert_true(lock_table_busy(t, 1001, "db"));
        g_assert_false(lock_table_busy(t, 1002, "db"));

        /* a second holder is refused and nothing changes */
        g_assert_false(lock_table_acquire(t, c));
        g_assert_false(lock_table_holds(c));
        g_assert_null(c->lock_entry);
        lock_table_release(t, c);               /* not the holder: no-op */
        g_assert_true(lock_table_holds(a));

        lock_table_release(t, a);
        lock_table_release(t, b);
        g_assert_false(lock_table_busy(t, 1000, "db"));
        g_assert_false(lock_table_busy(t, 1001, "db"));
        lock_table_settle(t, nolock, &demote, &promote);
        g_assert_null(demote);
        g_assert_null(promote);
}

/* Freed with waiters and holders still in: the jobs are the caller's. */
static void test_teardown(void) {
        g_autoptr(Job) a = mk(1, 0, "k", 0), b = mk(2, 0, "k", 0);
        LockTable *t = lock_table_new();

        lock_table_acquire(t, a);
        lock_table_enqueue(t, b);
        lock_table_free(t);
}

int main(int argc, char *argv[]) {
        log_set_target(LOG_TARGET_STDERR);
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/locks/turns", test_turns);
        g_test_add_func("/locks/owners-and-conflicts", test_owners_and_conflicts);
        g_test_add_func("/locks/teardown", test_teardown);
        return g_test_run();
}
