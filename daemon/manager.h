/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The manager owns the event loop, the bus connection, the configuration, the job types, the
 * store, the scheduler and the table of jobs. The bus-*.c files translate calls into the
 * operations declared here; the operations persist through the store and then announce the
 * change on the bus. A job exists (is visible, listed, addressable) only once its Submit
 * record is durable.
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <glib.h>

#include "config.h"
#include "follow.h"
#include "idle.h"
#include "job.h"
#include "jobtype.h"
#include "recurring.h"
#include "runner.h"
#include "scheduler.h"
#include "store.h"

typedef struct Outcome Outcome;
typedef struct Gate Gate;

typedef struct Manager {
        sd_event *event;
        sd_bus *bus;
        bool user_mode;

        char *state_dir;
        char *config_path;
        char **type_dirs;               /* precedence order */
        Config config;
        GHashTable *types;              /* name → JobType* */

        Store *store;
        Scheduler *scheduler;
        Gate *gate;                     /* dependencies, locks, expiry (gate.h) */
        GTree *jobs;                    /* &job->id → Job*, owns the jobs */
        uint64_t next_id;
        GHashTable *n_unfinished_by_owner; /* uid → count of jobs not finished (quota) */

        GArray *changed_order;          /* ChangedEntry: jobs with signals to send, in change order */
        uint64_t change_seq;
        sd_event_source *emit_source;
        GHashTable *user_names;         /* uid → name cache for List */
        GHashTable *callers;            /* unique bus name → Caller (bus-util.h) */
        GHashTable *unique_keys;        /* "uid:key" (owned) → &id of the unfinished job holding it */
        GHashTable *paused_types;       /* type names (owned) that start and hand out nothing */

        /* local execution */
        Runner *runner;
        int spool_fd, workspaces_fd;    /* state/spool, state/workspaces */
        GHashTable *executions;         /* &id → Execution* of running local jobs */
        GHashTable *cancel_requested;   /* &id set: cancelled before their scope existed */
        GHashTable *streams;            /* &id (owned) → FollowStream* */
        GHashTable *followers_by_sender; /* unique name (owned) → open Follow streams (bus-job.c) */
        unsigned n_followers;
        unsigned n_running;
        GHashTable *running_by_type;    /* type name (owned) → count */
        sd_event_source *dispatch_source;
        sd_event_source *due_source;    /* the earliest scheduled job's NotBeforeUSec */
        sd_event_source *sweep_source;  /* closes streams of finished jobs nobody follows any more */
        GTree *finished;                /* finished Job* by (FinishedUSec, id): retention.c */
        sd_event_source *purge_source;  /* the oldest finished job's end of retention */

        /* the timers of types with [Schedule] (NULL until the bus is connected) */
        Recurring *recurring;

        /* external workers (lease.c) */
        GQueue *waiters;                /* Waiter*: parked Claims, oldest first */
        GHashTable *waiters_by_sender;  /* unique name (owned) → count */
        GTree *leases;                  /* claimed Job* by (deadline_usec, id) */
        sd_event_source *lease_source;
        GHashTable *tracked;            /* unique name (owned) → TrackedWorker* */

        Idle *idle;                     /* idle exit, shutdown, STATUS= (idle.c) */

        sd_bus_slot *slots[3];

        /* authorization (auth.c): the polkit client and the filter that asks it before dispatch */
        struct Polkit *polkit;
        sd_bus_slot *auth_filter;
} Manager;

/* error 0 or -errno; j is NULL after a failed Submit */
typedef void (*ManagerDoneFn)(Manager *m, int error, Job *j, void *userdata);

int manager_new(Manager **ret, bool user_mode);
Manager *manager_free(Manager *m);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Manager, manager_free)

/* config, types, store replay, bus objects, then the bus name */
int manager_start(Manager *m);
int manager_run(Manager *m);

/* Re-reads jobd.conf and the type files. Problems are logged; never fails the daemon. */
void manager_reload(Manager *m, GPtrArray *ret_problems);

JobType *manager_get_type(Manager *m, const char *name);
Job *manager_get_job(Manager *m, uint64_t id);
unsigned manager_n_unfinished_of(Manager *m, uid_t owner);
/* the user name for uid, or the uid as text; cached */
const char *manager_user_name(Manager *m, uid_t uid);

/* Copies a Submit's input (j->input_fd) into a temporary spool file (j->input_tmp), bounded by
 * MaxInputBytes (-EFBIG). manager_submit() links it under the job once the job is durable. */
int manager_spool_input(Manager *m, Job *j);

/* The unfinished job (durable or on its way) that holds this owner's unique key: 0 if none. */
uint64_t manager_unique_holder(Manager *m, uid_t owner, const char *key);
/* Calls done once everything appended so far is durable (a no-op record rides the group
 * commit: callbacks run in append order). */
void manager_when_durable(Manager *m, ManagerDoneFn done, void *userdata);

/* Pauses or resumes a type (persisted; survives restarts and reloads). done once durable. */
void manager_set_paused(Manager *m, const char *type, bool paused, ManagerDoneFn done, void *userdata);
bool manager_type_paused(Manager *m, const char *type);

/* Whether changes are accepted now: not while the store is failed and rewriting its state. */
bool manager_accepts_changes(Manager *m);

/* Takes j (without id). Assigns the id, persists the job, and only then makes it visible,
 * announces JobNew and calls done. On failure the job is dropped and done gets NULL; an id is
 * only consumed once the record was queued. The job counts against its owner's quota from this
 * call on, so Submits waiting for their fsync cannot overrun MaxPendingPerUser. */
void manager_submit(Manager *m, Job *j, ManagerDoneFn done, void *userdata);
/* The fields in mask were changed on j already: persists them, then announces them
 * (PropertiesChanged; JobChanged when Status is in mask) and calls done (may be NULL). */
void manager_commit(Manager *m, Job *j, uint64_t mask, ManagerDoneFn done, void *userdata);
/* The same for a change nobody waits on (progress, a heartbeat's deadline): its record rides the
 * next batch, or gets its own within 50 ms; announced once durable. */
void manager_commit_advisory(Manager *m, Job *j, uint64_t mask);
/* Starts what may start now (from an idle-priority defer source). */
void manager_queue_dispatch(Manager *m);
/* Retries wait RetryBackoff=, doubled per attempt up to this. */
#define RETRY_BACKOFF_MAX_USEC (UINT64_C(3600) * 1000000)
/* An attempt ended (local job or, later, worker): retry after backoff while attempts remain and
 * the failure is retryable, else finish. Frees nothing of o's but takes its strings. */
void manager_attempt_ended(Manager *m, Job *j, Outcome *o);
/* … and calls done once the end is durable (NULL: no one waits). */
void manager_attempt_ended_full(Manager *m, Job *j, Outcome *o, ManagerDoneFn done, void *userdata);
/* An external worker takes j (pending): a new attempt held by sender. done once durable. */
void manager_claim(Manager *m, Job *j, const char *sender, bool track, ManagerDoneFn done, void *userdata);
/* The worker gives j back untouched: no attempt charged; pending again after delay_usec. */
void manager_release(Manager *m, Job *j, uint64_t delay_usec, ManagerDoneFn done, void *userdata);
/* The best pending job of one of these types, NULL if none; with without_input, only jobs
 * without input (for a claimer whose connection cannot carry fds, e.g. over SSH). */
Job *manager_pick_pending(Manager *m, char *const *types, bool without_input);
/* A job's Follow stream; created (with its spool folder) when create is set. NULL on failure. */
FollowStream *manager_get_stream(Manager *m, Job *j, bool create);
/* Cancels a running job: stops its scope, or keeps it from starting. */
int manager_cancel_running(Manager *m, Job *j);
/* Re-queues a failed or cancelled job with a fresh attempt count. */
void manager_retry(Manager *m, Job *j, ManagerDoneFn done, void *userdata);
/* Removes a finished job for good: a PURGE record, its spool folder and workspace, its Follow
 * stream (followers get EOF) and its object. */
void manager_purge(Manager *m, Job *j);
/* One line of a job's log (its stderr, or a worker's Log): to the journal with JOBD_JOB_ID=,
 * JOBD_TYPE= (and JOBD_WORKER= for a worker's), and into its Follow stream. size counts bytes; the
 * line may hold any, NULs included. */
void manager_job_log(Manager *m, Job *j, const char *line, size_t size);
/* Records a progress report of the running attempt and announces it. */
void manager_progress(Manager *m, Job *j, unsigned percent, const char *message);

/* Sets the status, keeps the scheduler, the gates (dependencies, locks, expiry) and counters in
 * line, and commits with extra. A job that may start but for its lock becomes blocked instead of
 * pending; a job that ends settles its dependents. */
void manager_set_status(Manager *m, Job *j, JobStatus status, uint64_t extra_mask,
                        ManagerDoneFn done, void *userdata);
/* The same without the gates: for gate.c's own changes. When the status is j's already and
 * nothing else changed (no extra, no done), only places j in the queues: nothing to record. */
void manager_apply_status(Manager *m, Job *j, JobStatus status, uint64_t extra_mask,
                          ManagerDoneFn done, void *userdata);
