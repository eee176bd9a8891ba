/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Owns the dependency index, the lock table and the queue of ended jobs whose dependents are
 * being settled. Invariants, for every job in m->jobs:
 *  - j->n_unmet > 0 exactly when j is blocked on dependencies (then it is in no type's queue
 *    and waits for no lock);
 *  - j waits in the lock table exactly when it could start but for its lock: pending when it
 *    is its key's candidate, else blocked; it holds its key exactly while its attempt runs;
 *  - j is in the scheduler's expiry set exactly when it is queued with expire_at_usec > 0.
 * Dependents of a job are settled by a loop over a FIFO of ended jobs, never by recursion: a
 * failure cascading down a chain of a million jobs must not need a million stack frames.
 */

#include <inttypes.h>

#include "deps.h"
#include "gate.h"
#include "locks.h"
#include "log.h"
#include "parse-util.h"

struct Gate {
        DepIndex *deps;
        LockTable *locks;
        GArray *ended;                  /* uint64_t ids whose dependents are to be settled */
        bool settling;
        GPtrArray *replayed;            /* Job*: lock waiters of the replay, placed at its end */
};

Gate *gate_new(void) {
        Gate *g = g_new0(Gate, 1);

        g->deps = dep_index_new();
        g->locks = lock_table_new();
        g->ended = g_array_new(FALSE, FALSE, sizeof(uint64_t));
        return g;
}

Gate *gate_free(Gate *g) {
        if (!g)
                return NULL;
        dep_index_free(g->deps);
        lock_table_free(g->locks);
        g_array_unref(g->ended);
        if (g->replayed)
                g_ptr_array_unref(g->replayed);
        return g_free(g), NULL;
}

static uint64_t now_usec(void) {
        return (uint64_t) g_get_real_time();
}

/* ---- dependencies ---- */

const char *gate_dependency_problem(Manager *m, uint64_t id) {
        Job *d = manager_get_job(m, id);

        if (!d)
                return "does not exist";
        if (d->status == JOB_FAILED)
                return "failed";
        if (d->status == JOB_CANCELLED)
                return "was cancelled";
        return NULL;
}

uint64_t gate_failed_dependency(Manager *m, const Job *j, const char **ret_problem) {
        for (guint i = 0; i < j->after->len; i++) {
                uint64_t id = g_array_index(j->after, uint64_t, i);
                const char *problem = gate_dependency_problem(m, id);

                if (problem) {
                        *ret_problem = problem;
                        return id;
                }
        }
        return 0;
}

static void fail_for_dependency(Manager *m, Job *j, uint64_t dep, const char *problem,
                                uint64_t mask, ManagerDoneFn done, void *userdata) {
        g_free(j->error);
        j->error = g_strdup_printf("dependency job %" PRIu64 " %s", dep, problem);
        log_job(LOG_NOTICE, j->id, j->type, "Job %" PRIu64 " failed: %s.", j->id, j->error);
        manager_set_status(m, j, JOB_FAILED, mask | JOB_FIELD_BIT(JOB_FIELD_ERROR), done, userdata);
}

/* Blocked on dependencies, else scheduled until NotBeforeUSec, else it may start (or wait for
 * its lock: gate_before() decides). */
static JobStatus ready_status(const Job *j) {
        if (j->n_unmet > 0)
                return JOB_BLOCKED;
        return j->not_before_usec > now_usec() ? JOB_SCHEDULED : JOB_PENDING;
}

static void settle_one(Manager *m, Job *d) {
        Gate *g = m->gate;
        g_autoptr(GPtrArray) jobs = NULL;

        if (d->status == JOB_SUCCEEDED) {
                jobs = dep_index_met(g->deps, d->id);
                for (guint i = 0; i < jobs->len; i++)
                        manager_set_status(m, jobs->pdata[i], ready_status(jobs->pdata[i]), 0, NULL, NULL);
                return;
        }
        /* the dependent's own end lands in g->ended: its dependents come later in this loop */
        jobs = dep_index_failed(g->deps, d->id);
        for (guint i = 0; i < jobs->len; i++)
                fail_for_dependency(m, jobs->pdata[i], d->id,
                                    d->status == JOB_CANCELLED ? "was cancelled" : "failed", 0, NULL, NULL);
}

static void settle_dependents(Manager *m, Job *j) {
        Gate *g = m->gate;

        g_array_append_val(g->ended, j->id);
        if (g->settling)
                return;
        g->settling = true;
        for (guint i = 0; i < g->ended->len; i++) {
                Job *d = manager_get_job(m, g_array_index(g->ended, uint64_t, i));
                if (d)
                        settle_one(m, d);
        }
        g_array_set_size(g->ended, 0);
        g->settling = false;
}

/* ---- admission ---- */

JobStatus gate_submit_status(Manager *m, const Job *j) {
        for (guint i = 0; i < j->after->len; i++) {
                Job *d = manager_get_job(m, g_array_index(j->after, uint64_t, i));
                if (!d || d->status != JOB_SUCCEEDED)
                        return JOB_BLOCKED;
        }
        if (j->status == JOB_PENDING && j->lock && lock_table_busy(m->gate->locks, j->owner, j->lock))
                return JOB_BLOCKED;
        return j->status;
}

void gate_admit(Manager *m, Job *j, uint64_t mask, ManagerDoneFn done, void *userdata) {
        Gate *g = m->gate;
        const char *problem;
        uint64_t dep;
        JobStatus want;

        dep = gate_failed_dependency(m, j, &problem);
        if (dep > 0) {
                fail_for_dependency(m, j, dep, problem, mask, done, userdata);
                return;
        }
        for (guint i = 0; i < j->after->len; i++)
                if (manager_get_job(m, g_array_index(j->after, uint64_t, i))->status != JOB_SUCCEEDED)
                        dep_index_add(g->deps, j, i);
        scheduler_add_expiry(m->scheduler, j);

        want = ready_status(j);
        if (want == JOB_PENDING && j->lock && g->replayed) {
                lock_table_enqueue(g->locks, j);
                g_ptr_array_add(g->replayed, j);
                return;
        }
        manager_set_status(m, j, want, mask, done, userdata);
}

void gate_replay_begin(Manager *m) {
        m->gate->replayed = g_ptr_array_new();
}

void gate_replayed(Manager *m, Job *j) {
        if (job_status_is_queued(j->status))
                gate_admit(m, j, 0, NULL, NULL);
        else if (j->status == JOB_RUNNING && j->lock && !lock_table_acquire(m->gate->locks, j))
                log_job(LOG_WARNING, j->id, j->type, "Job %" PRIu64 " was running while another job held "
                        "its lock '%s' (a damaged journal?); it does not hold it.", j->id, j->lock);
}

void gate_replay_end(Manager *m) {
        Gate *g = m->gate;
        g_autoptr(GPtrArray) replayed = g_steal_pointer(&g->replayed);

        /* every holder and waiter is known now: one turn per key, and only the waiters whose
         * status the journal has wrong (it was cut short mid-change) get a record */
        for (guint i = 0; i < replayed->len; i++) {
                Job *j = replayed->pdata[i], *demote, *promote;
                JobStatus want;

                lock_table_settle(g->locks, j, &demote, &promote);
                want = lock_table_is_candidate(j) ? JOB_PENDING : JOB_BLOCKED;
                manager_apply_status(m, j, want, 0, NULL, NULL);
        }
}

/* ---- every status change ---- */

JobStatus gate_before(Manager *m, Job *j, JobStatus status, uint64_t *mask, GateStep *ret_step) {
        Gate *g = m->gate;
        bool settle = false;

        *ret_step = (GateStep) { .old = j->status };

        /* leaving: a waiter or holder lets go of its key (a holder only when its attempt ends:
         * one waiting for its retry backoff does not hold it) */
        if (lock_table_is_waiting(j) || (lock_table_holds(j) && status != JOB_RUNNING)) {
                lock_table_dequeue(g->locks, j);
                lock_table_release(g->locks, j);
                settle = true;
        }
        if (!job_status_is_queued(status)) {
                dep_index_drop(g->deps, j);
                scheduler_remove_expiry(m->scheduler, j);
        }
        if (status == JOB_RUNNING && j->expire_at_usec > 0) {
                /* started in time: it never expires now (a Retry sets a new deadline) */
                j->expire_at_usec = 0;
                *mask |= JOB_FIELD_BIT(JOB_FIELD_EXPIRE_AT);
        }

        /* entering */
        if (j->lock && status == JOB_RUNNING && !lock_table_holds(j)) {
                if (!lock_table_acquire(g->locks, j))
                        log_job(LOG_WARNING, j->id, j->type, "Job %" PRIu64 " starts while another job "
                                "holds its lock '%s'.", j->id, j->lock);
                settle = true;
        } else if (j->lock && status == JOB_PENDING) {
                lock_table_enqueue(g->locks, j);
                status = JOB_BLOCKED;   /* unless the settle below makes it the candidate */
                settle = true;
        }
        if (settle) {
                lock_table_settle(g->locks, j, &ret_step->demote, &ret_step->promote);
                if (ret_step->promote == j) {
                        status = JOB_PENDING;
                        ret_step->promote = NULL;
                }
        }
        return status;
}

void gate_after(Manager *m, Job *j, const GateStep *step) {
        if (step->demote)
                manager_apply_status(m, step->demote, JOB_BLOCKED, 0, NULL, NULL);
        if (step->promote)
                manager_apply_status(m, step->promote, JOB_PENDING, 0, NULL, NULL);
        if (job_status_is_finished(j->status) && !job_status_is_finished(step->old))
                settle_dependents(m, j);
}

/* ---- expiry ---- */

void gate_expire(Manager *m, uint64_t now) {
        Job *j;

        while ((j = scheduler_next_expiry(m->scheduler)) && j->expire_at_usec <= now) {
                g_autofree char *span = format_timespan_usec(j->expire_usec);

                g_free(j->error);
                j->error = g_strdup_printf("expired: not started within %s (expire_usec)", span);
                log_job(LOG_NOTICE, j->id, j->type, "Job %" PRIu64 " %s.", j->id, j->error);
                /* leaving the queue takes it out of the expiry set */
                manager_set_status(m, j, JOB_FAILED, JOB_FIELD_BIT(JOB_FIELD_ERROR), NULL, NULL);
        }
}
