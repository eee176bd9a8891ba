/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The runner: puts one local job attempt into its own transient systemd scope and reports how it
 * ended. Asynchronous throughout (sd-bus calls to systemd, sd-event sources); it never blocks
 * the loop. It knows nothing of the store, the scheduler or the job table: the manager hands it
 * a RunSpec and gets callbacks.
 *
 * Per attempt: fork a supervisor that waits on a pipe; match JobRemoved, then StartTransientUnit
 * "jobd-<id>.scope" in the slice with the supervisor's pid and the limits; when systemd's job for
 * it is done, release the supervisor. The supervisor (still jobd's code, no exec) sets up the
 * job's process: new mount namespace with the workspace bind-mounted on /tmp, environment,
 * nice, credentials, stdin, stdout/stderr pipes; forks and execs it, waits for it, reports its
 * wait status to jobd over a pipe, and then stays alive until jobd released it, so the scope's
 * cgroup (CPU and peak memory accounting) is still there when jobd reads it. The supervisor
 * ignores SIGTERM for that reason; it exits when jobd closes its hold pipe or dies.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <glib.h>

typedef struct Runner Runner;
typedef struct Execution Execution;

typedef enum RunEnd {
        RUN_EXITED,             /* exit_status holds the exit code */
        RUN_SIGNALED,           /* killed by term_signal (not by us) */
        RUN_TIMED_OUT,          /* runtime_max_usec passed; the scope was stopped */
        RUN_CANCELLED,          /* execution_cancel() stopped the scope */
        RUN_OOM,                /* the kernel's OOM killer, at MemoryMax */
        RUN_FAILED_TO_START,    /* fork, StartTransientUnit, credentials, namespace or exec failed */
        RUN_LOST,               /* the supervisor died without a report (e.g. SIGKILL after the
                                 * stop timeout) */
        _RUN_END_MAX,
} RunEnd;

typedef struct RunSpec {
        uint64_t job_id;
        const char *type;               /* for the Description and log fields */
        const char *unit_name;          /* "jobd-<id>.scope" */
        const char *slice;              /* "jobd.slice" (of the system or the user manager); NULL: the default */
        const char *description;        /* "jobd job 42 (resize)" */
        char **argv;                    /* argv[0] absolute, or searched in PATH for exec jobs */
        char **env;                     /* extra NAME=value, added to a minimal clean environment */
        const char *cwd;                /* NULL: the workspace */
        uid_t uid;
        gid_t gid;
        const gid_t *groups;
        size_t n_groups;
        int nice;                       /* applied with setpriority() */
        int stdin_fd;                   /* borrowed; -1: /dev/null */
        const char *workspace;          /* created by the caller, 0700, owned by uid; bind-mounted on /tmp */
        uint64_t memory_max;            /* UINT64_MAX: none */
        uint64_t tasks_max;             /* UINT64_MAX: none */
        uint32_t cpu_quota_percent;     /* 0: none */
        uint64_t runtime_max_usec;      /* 0: none */
        uint64_t stop_timeout_usec;     /* SIGTERM → SIGKILL; 0: systemd's default */
        size_t result_max;              /* stdout bytes kept; beyond: truncated, flagged */
} RunSpec;

typedef struct RunResult {
        RunEnd end;
        int exit_status;                /* RUN_EXITED: the code; else -1 */
        int term_signal;                /* RUN_SIGNALED: the signal; else 0 */
        char *error;                    /* human text for everything but a clean exit 0, or NULL */
        char *stdout_data;              /* NUL-terminated; may hold arbitrary bytes before it */
        size_t stdout_size;
        bool stdout_truncated;
        uint64_t cpu_usage_nsec;        /* from the scope's cgroup; 0 if unknown */
        uint64_t memory_peak_bytes;     /* likewise */
        bool tasks_max_hit;             /* a fork was refused by TasksMax */
        uint64_t started_usec;          /* CLOCK_REALTIME when the job's process was released */
} RunResult;

/* Called for each line the job writes on stderr (without the newline; long lines split). */
typedef void (*RunnerLogFn)(Execution *e, const char *line, size_t size, void *userdata);
/* Called once when the job's process was released into its scope (it now runs). */
typedef void (*RunnerStartedFn)(Execution *e, void *userdata);
/* Called exactly once at the end; result is the callee's to read only during the call. The
 * execution is freed after the callback returns. */
typedef void (*RunnerDoneFn)(Execution *e, const RunResult *result, void *userdata);

int runner_new(Runner **ret, sd_event *event, sd_bus *bus);
Runner *runner_free(Runner *r);         /* leaves running scopes alone (re-adopted or stopped later) */

int runner_start(Runner *r, const RunSpec *spec, RunnerStartedFn started, RunnerLogFn log,
                 RunnerDoneFn done, void *userdata, Execution **ret);
/* Stops the scope (SIGTERM, SIGKILL after the stop timeout); done comes with RUN_CANCELLED. */
int execution_cancel(Execution *e);
uint64_t execution_job_id(Execution *e);
/* runner_free() frees executions without calling done(): their userdata is still the caller's,
 * reachable through this until then. */
void *execution_get_userdata(Execution *e);

/* Asks systemd to stop unit_name if it is loaded, and calls done once systemd's stop job is over
 * (never from inside this call): 1 if the unit was stopped, 0 if it was not loaded, -errno on
 * failure. runner_free() drops pending stops without calling done. */
typedef void (*RunnerStopFn)(const char *unit_name, int r, void *userdata);
int runner_stop_unit(Runner *r, const char *unit_name, RunnerStopFn done, void *userdata);
/* Crash recovery: the same for a job's scope left from a previous jobd. */
int runner_stop_stale_scope(Runner *r, const char *unit_name, RunnerStopFn done, void *userdata);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Runner, runner_free)
