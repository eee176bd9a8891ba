/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Local execution: turns a running job and its type into a RunSpec for the runner (argv,
 * credentials, stdin, limits, workspace), and the runner's reports back into job state: log
 * lines to the journal and the Follow stream, the result from stdout, outputs collected from
 * the workspace into the spool, the workspace removed. Which attempt ends how (retry, fail) is
 * the manager's; this module only says what happened.
 */

#include <stdbool.h>

#include "manager.h"
#include "runner.h"

#define EXECUTE_RESULT_MAX (1024u * 1024u)      /* stdout bytes kept as the Result */
#define EXECUTE_OUTPUTS_MAX 1000u               /* files collected from outputs/ */
#define EXECUTE_STOP_TIMEOUT_USEC (UINT64_C(10) * 1000000)

/* The outcome of one attempt, for manager_attempt_ended(). */
typedef struct Outcome {
        JobStatus status;               /* succeeded, failed or cancelled */
        bool retryable;                 /* failed in a way another attempt may fix */
        int exit_status;
        char *result;                   /* JSON text, succeeded only */
        char *error;
        char **outputs;
        uint64_t cpu_usage_nsec, memory_peak_bytes;
        uint64_t retry_after_usec;      /* a worker's Fail: instead of the backoff; 0: backoff */
} Outcome;

void outcome_done(Outcome *o);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Outcome, outcome_done)

/* The job is running (durably). Starts its scope; on a failure to even try, the attempt ends
 * at once through manager_attempt_ended(). */
void execute_start(Manager *m, Job *j);
/* Stops the job's scope; the attempt ends as cancelled when it is gone. -ESRCH if not running. */
int execute_cancel(Manager *m, Job *j);

/* The job's spool folder (created on demand), an fd the caller closes; -errno on failure. */
int execute_open_spool(Manager *m, uint64_t id, bool create);
/* Removes the job's workspace at at_usec (CLOCK_REALTIME; 0 or past: now; UINT64_MAX: never). */
void execute_expire_workspace(Manager *m, uint64_t id, uint64_t at_usec);
/* Removes what a job left in the spool and the workspaces (when it is purged). */
void execute_remove_files(Manager *m, uint64_t id);
