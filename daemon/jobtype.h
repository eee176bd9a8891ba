/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Job types: parsed from key files NAME.type (see DESIGN.md section 3), loaded from a list of
 * directories where an earlier directory overrides a later one (/etc, /run, vendor). Pure
 * GLib code: GError, no sd-bus. A bad file is reported with file and line and skipped.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

#define JOBTYPE_NAME_MAX 64         /* [A-Za-z0-9_.-]{1,64}, not starting with '.' or '-' */
#define JOBTYPE_ON_CALENDAR_MAX 512u        /* bytes of OnCalendar= */
#define JOBTYPE_SCHEDULE_PARAMETERS_MAX 4096u /* bytes of [Schedule] Parameters=: they travel in argv */
#define JOBTYPE_BUILTIN_EXEC "exec"

typedef enum JobTypeStdin {
        JOBTYPE_STDIN_PARAMETERS,
        JOBTYPE_STDIN_INPUT,
        JOBTYPE_STDIN_NONE,
        _JOBTYPE_STDIN_MAX,
        _JOBTYPE_STDIN_INVALID = -EINVAL,
} JobTypeStdin;

typedef struct JobType {
        char *name;
        char *path;                 /* the file it came from; NULL for built-ins */
        char *description;
        char **exec;                /* argv (split like a shell, quotes honoured); NULL: external workers */
        JobTypeStdin stdin_mode;    /* default: parameters */
        char *user;                 /* NULL: root (or the caller for the built-in exec type) */
        unsigned concurrency;       /* 0: unlimited (bounded by MaxRunning) */
        uint64_t timeout_usec;      /* 0: none */
        unsigned max_attempts;      /* default 1 */
        uint64_t retry_backoff_usec;
        uint64_t workspace_retention_usec;
        char **submit_users, **submit_groups;   /* both empty: everyone */
        char **worker_users, **worker_groups;   /* both empty: root only */
        uint64_t memory_max;        /* bytes; UINT64_MAX: unset */
        unsigned cpu_quota_percent; /* 0: unset */
        uint64_t tasks_max;         /* UINT64_MAX: unset */
        int nice;                   /* -20..19 */
        /* [Schedule]: a systemd timer submits a job of this type (recurring.c) */
        char *on_calendar;          /* systemd calendar syntax, checked by systemd; NULL: no schedule */
        char *schedule_parameters;  /* JSON text; "{}" when a schedule does not say */
        bool schedule_persistent;   /* catch up on a run missed while the machine was off */
        uint64_t schedule_accuracy_usec; /* 0: systemd's default (1min) */
        bool builtin;
} JobType;

const char *jobtype_stdin_to_string(JobTypeStdin s);
JobTypeStdin jobtype_stdin_from_string(const char *s);

bool jobtype_name_is_valid(const char *name);

JobType *jobtype_new_builtin_exec(void);
JobType *jobtype_free(JobType *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(JobType, jobtype_free)

/* Parses one type file's text. name is the type's name (file name without .type), path is
 * used in messages only. Errors (G_KEY_FILE_ERROR or G_IO_ERROR domain) say
 * "PATH:LINE: what is wrong and how to fix it". Unknown sections and keys are errors. */
JobType *jobtype_parse(const char *name, const char *path, const char *data, size_t size,
                       GError **error);

/* Loads every NAME.type from dirs (highest precedence first; a missing dir is fine).
 * Returns a table name → JobType* (owned) always including the built-in exec type, which
 * a file cannot replace. Bad files are logged (log.h) and skipped; their messages are also
 * appended to ret_problems (may be NULL) for the caller to report. */
GHashTable *jobtype_load_dirs(const char *const *dirs, GPtrArray *ret_problems);
