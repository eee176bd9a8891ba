/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What holds a queued job back besides its NotBeforeUSec, on the manager's side: dependencies
 * (after: blocked until each succeeded; one that fails or is cancelled fails the job, and so on
 * down the chain), locks (lock: blocked while another job of the owner's key runs; waiters
 * start by priority, then age) and expiry (expire_usec: failed unless started in time).
 * deps.c and locks.c keep the indexes and the scheduler the expiry deadlines; this module
 * decides the statuses. Every status change passes gate_before() and gate_after() in
 * manager_set_status(); the gates' own flips of lock waiters go straight to
 * manager_apply_status().
 */

#include <stdint.h>

#include "manager.h"

/* Gate is declared in manager.h, which owns one. */

/* what manager_set_status() carries from gate_before() to gate_after() */
typedef struct GateStep {
        JobStatus old;
        Job *demote, *promote;          /* lock waiters whose turn changed */
} GateStep;

Gate *gate_new(void);
Gate *gate_free(Gate *g);

/* Why job id cannot be waited for: "does not exist", "failed", "was cancelled"; NULL when it
 * can (unfinished, or succeeded). */
const char *gate_dependency_problem(Manager *m, uint64_t id);
/* The first of j's dependencies with a problem, 0 if none. */
uint64_t gate_failed_dependency(Manager *m, const Job *j, const char **ret_problem);
/* The status a Submit's job starts in, from the jobs of now. gate_admit() has the last word
 * once it is durable. */
JobStatus gate_submit_status(Manager *m, const Job *j);

/* j (re)enters the queue: its Submit is durable, or it is retried. Its gates are taken from the
 * jobs of now: blocked on dependencies, scheduled, pending, or blocked behind its lock; failed
 * at once if a dependency failed meanwhile. Commits mask with the status (nothing when nothing
 * changed) and calls done once durable. */
void gate_admit(Manager *m, Job *j, uint64_t mask, ManagerDoneFn done, void *userdata);

/* Replay: begin, each job as the journal has it (in id order), end. Lock waiters take their
 * turns at the end, when every holder and waiter is known. */
void gate_replay_begin(Manager *m);
void gate_replayed(Manager *m, Job *j);
void gate_replay_end(Manager *m);

/* For manager_set_status(): j leaves its status for status. Returns the status j takes (a job
 * that may run but for its lock is blocked instead of pending). */
JobStatus gate_before(Manager *m, Job *j, JobStatus status, uint64_t *mask, GateStep *ret_step);
/* … after the change: the lock's next turn, and the dependents of a job that ended. */
void gate_after(Manager *m, Job *j, const GateStep *step);

/* Fails the queued jobs whose expiry is at or before now. */
void gate_expire(Manager *m, uint64_t now);
