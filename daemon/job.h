/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A job: its persisted state, its status names, and its encoding as journal records. No I/O,
 * no sd-bus. Every persisted field has a JobField tag; the same tags name the D-Bus
 * properties that changed, so one bit mask drives both the UPDATE record and PropertiesChanged.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <glib.h>

#include "record.h"

typedef enum JobStatus {
        JOB_PENDING,
        JOB_SCHEDULED,
        JOB_BLOCKED,
        JOB_RUNNING,
        JOB_SUCCEEDED,
        JOB_FAILED,
        JOB_CANCELLED,
        _JOB_STATUS_MAX,
        _JOB_STATUS_INVALID = -EINVAL,
} JobStatus;

/* Record tags; never renumber, only append. Bits 1..63 of a change mask. */
typedef enum JobField {
        JOB_FIELD_TYPE = 1,
        JOB_FIELD_STATUS,
        JOB_FIELD_OWNER,
        JOB_FIELD_PRIORITY,
        JOB_FIELD_PARAMETERS,
        JOB_FIELD_RESULT,
        JOB_FIELD_ERROR,
        JOB_FIELD_EXIT_STATUS,
        JOB_FIELD_PROGRESS,
        JOB_FIELD_PROGRESS_MESSAGE,
        JOB_FIELD_ATTEMPT,
        JOB_FIELD_MAX_ATTEMPTS,
        JOB_FIELD_WORKER,
        JOB_FIELD_UNIT,
        JOB_FIELD_AFTER,
        JOB_FIELD_OUTPUTS,
        JOB_FIELD_SUBMITTED,
        JOB_FIELD_STARTED,
        JOB_FIELD_FINISHED,
        JOB_FIELD_NOT_BEFORE,
        JOB_FIELD_DEADLINE,
        JOB_FIELD_CPU_USAGE,
        JOB_FIELD_MEMORY_PEAK,
        /* persisted, not properties */
        JOB_FIELD_GID,
        JOB_FIELD_GROUPS,
        JOB_FIELD_TIMEOUT,
        JOB_FIELD_RETRY_BACKOFF,
        JOB_FIELD_RETENTION,
        JOB_FIELD_EXPIRE,
        JOB_FIELD_LOCK,
        JOB_FIELD_UNIQUE_KEY,
        JOB_FIELD_MEMORY_MAX,
        JOB_FIELD_CPU_QUOTA,
        JOB_FIELD_TASKS_MAX,
        JOB_FIELD_NICE,
        JOB_FIELD_TOKEN,
        JOB_FIELD_TRACKED,
        JOB_FIELD_HAS_INPUT,
        JOB_FIELD_EXPIRE_AT,
        JOB_FIELD_WORKER_UID,           /* persisted whenever WORKER is */
        _JOB_FIELD_MAX,
} JobField;

#define JOB_FIELD_BIT(f) (UINT64_C(1) << (f))
#define JOB_NICE_UNSET INT32_MIN
#define JOB_FIELDS_ALL (((UINT64_C(1) << _JOB_FIELD_MAX) - 1) & ~UINT64_C(1))

typedef struct Job {
        uint64_t id;
        char *type;
        JobStatus status;
        uid_t owner;
        gid_t gid;
        GArray *groups;                 /* gid_t, the submitter's supplementary groups */
        int32_t priority;
        char *parameters;
        char *result;
        char *error;
        int32_t exit_status;            /* -1: none */
        uint32_t progress;
        char *progress_message;
        uint32_t attempt, max_attempts;
        char *worker;
        char *unit;
        GArray *after;                  /* uint64_t ids */
        char **outputs;
        uint64_t submitted_usec, started_usec, finished_usec;
        uint64_t not_before_usec, deadline_usec;
        uint64_t cpu_usage_nsec, memory_peak_bytes;
        uint64_t timeout_usec, retry_backoff_usec, retention_usec, expire_usec;
        char *lock, *unique_key;
        uint64_t memory_max, tasks_max;  /* UINT64_MAX: unset */
        uint32_t cpu_quota_percent;      /* 0: unset */
        int32_t nice;                    /* JOB_NICE_UNSET: the type's */
        char *token;                     /* the current attempt's secret; never a property */
        uint32_t tracked;                /* the claim asked for track: lost when its worker leaves */
        uint32_t has_input;              /* spool/ID/input holds the Submit's input */
        uint64_t expire_at_usec;         /* fails unless started by then; 0 once started (or none) */
        uid_t worker_uid;                /* the claiming connection's uid; -1: unknown (older journal) */

        /* runtime only */
        struct Manager *manager;        /* borrowed back-pointer, set when linked */
        uint64_t changed;               /* JOB_FIELD_BIT mask not yet announced on the bus */
        uint64_t changed_seq;           /* its latest entry in the manager's changed_order, 0: none */
        void *sched_node;               /* the scheduler's handle while queued */
        bool sched_timed;               /* … in the timed set (scheduled), not a type's queue */
        bool claimed;                   /* running attempt held by an external worker */
        void *lease_node;               /* the manager's lease set, while claimed */
        uint64_t retained_usec;         /* finished: its key in the retention index; 0: not in it */
        char *input_tmp;                /* Submit: the input copied into the spool, until linked */
        unsigned n_unmet;               /* dependencies not succeeded yet, while blocked on them (deps.c) */
        void *dep_edges;                /* … its links into their waiter lists */
        void *lock_entry;               /* its key's entry while it waits for or holds it (locks.c) */
        void *lock_node;                /* … its place among the key's waiters, while it waits */
        void *expire_node;              /* the scheduler's expiry set, while queued with an expiry */
        int input_fd;                   /* Submit: the caller's input fd, until copied */
} Job;

const char *job_status_to_string(JobStatus s);
JobStatus job_status_from_string(const char *s);
/* succeeded, failed, cancelled */
bool job_status_is_finished(JobStatus s);
/* pending, scheduled, blocked: waiting to run */
bool job_status_is_queued(JobStatus s);

/* Queue order: higher priority first, then lower id (older); a GCompareFunc of Job pointers. */
gint job_compare_rank(gconstpointer a, gconstpointer b);

Job *job_new(uint64_t id);
Job *job_free(Job *j);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Job, job_free)

char *job_path(uint64_t id);
/* the id from an object path below JOBD_JOB_PATH_PREFIX; -EINVAL for anything else */
int job_id_from_path(const char *path, uint64_t *ret);

/* Records: a whole job (NEW), or the fields in mask (UPDATE). */
void job_encode(const Job *j, RecordKind kind, uint64_t mask, GByteArray *out);
/* Applies the fields of a NEW or UPDATE record; -EBADMSG for malformed values. Unknown tags
 * are ignored, so an older jobd reads a newer journal's known fields. */
int job_apply_record(Job *j, RecordReader *r);
