/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The scheduler: which queued job runs next, and which waiting job is due next. Per type, an
 * ordered set of pending jobs: higher priority first, then lower id (submission order), so
 * equal priorities are FIFO and never starve. Apart, the scheduled jobs (not before a time, or
 * backing off) ordered by NotBeforeUSec then id, so the manager keeps one timer for the
 * earliest; and, whatever their status, the queued jobs that expire (expire_at_usec), ordered
 * by that deadline, so the same timer serves the earliest expiry. Borrows the jobs; no I/O, no
 * sd-bus. Everything is O(log n). A job's priority, id, not_before_usec and expire_at_usec must
 * not change while it is in a set.
 */

#include <glib.h>

#include "job.h"

typedef struct Scheduler Scheduler;

Scheduler *scheduler_new(void);
Scheduler *scheduler_free(Scheduler *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Scheduler, scheduler_free)

/* the job must be pending or scheduled, and not yet queued */
void scheduler_add(Scheduler *s, Job *j);
/* no-op for a job that is not queued */
void scheduler_remove(Scheduler *s, Job *j);
/* the next pending job of this type, NULL if none */
Job *scheduler_peek(Scheduler *s, const char *type);
unsigned scheduler_n_queued(Scheduler *s, const char *type);
/* the first pending job of this type, in order, for which accept(j, userdata) is true */
Job *scheduler_find(Scheduler *s, const char *type, bool (*accept)(const Job *j, void *userdata), void *userdata);
/* the scheduled job with the earliest NotBeforeUSec, NULL if none */
Job *scheduler_next_due(Scheduler *s);

/* j (expire_at_usec > 0, not yet in the set) may expire; no-op without a deadline */
void scheduler_add_expiry(Scheduler *s, Job *j);
/* no-op for a job not in the set */
void scheduler_remove_expiry(Scheduler *s, Job *j);
/* the job that expires first, NULL if none */
Job *scheduler_next_expiry(Scheduler *s);
