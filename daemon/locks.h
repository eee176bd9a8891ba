/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Locks (Submit option lock): at most one running attempt per key. Keys are the owner's, as
 * unique keys are: one user's jobs can neither hold up another's nor learn of them. Per key,
 * the holder (the job whose attempt runs) and the waiters (jobs that could start but for the
 * key), best first by job_compare_rank. While nobody holds the key its first waiter is the
 * candidate: the one waiter that may start (the caller makes it pending, the others blocked).
 * lock_table_settle() reports when the candidate changed, so the caller flips exactly those
 * statuses. Borrows the jobs; no I/O, no sd-bus; O(log waiters) an operation.
 */

#include <stdbool.h>
#include <glib.h>

#include "job.h"

typedef struct LockTable LockTable;

LockTable *lock_table_new(void);
LockTable *lock_table_free(LockTable *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(LockTable, lock_table_free)

/* j (with j->lock; neither waiting nor holding) may start but for its key: it waits. */
void lock_table_enqueue(LockTable *t, Job *j);
/* j stops waiting without having started; no-op when it does not wait. */
void lock_table_dequeue(LockTable *t, Job *j);
/* j's attempt starts: it holds its key and no longer waits. false, changing nothing, when
 * another job holds the key. */
bool lock_table_acquire(LockTable *t, Job *j);
/* j's attempt ended: its key is free; no-op when j does not hold it. */
void lock_table_release(LockTable *t, Job *j);

bool lock_table_holds(const Job *j);
bool lock_table_is_waiting(const Job *j);
/* j is its key's candidate as of the last settle */
bool lock_table_is_candidate(const Job *j);
/* whether any job holds or waits for this owner's key */
bool lock_table_busy(LockTable *t, uid_t owner, const char *key);

/* After changes to j's key: *ret_demote was the candidate and must wait again, *ret_promote is
 * the new candidate; both NULL when the candidate is unchanged. */
void lock_table_settle(LockTable *t, const Job *j, Job **ret_demote, Job **ret_promote);
