/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What every jobctl verb gets: the parsed command line (Args) and the bus, opened on first use so
 * that --help and usage errors never touch it. A verb returns 0, a positive exit status, or -errno
 * after it logged; main() turns -errno into EXIT_FAILURE. Usage errors exit with EXIT_USAGE.
 *
 * A verb group (jobctl-jobs.c, jobctl-manager.c, …) exports a Verb table that jobctl.c lists;
 * options that only some verbs take are parsed centrally and each Verb names the ones it accepts.
 */

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <glib.h>
#include <systemd/sd-bus.h>

#include "jobctl-bus.h"
#include "jobctl-output.h"

#define EXIT_USAGE 2
/* jobd answers List with at most this many jobs */
#define LIST_LIMIT_MAX 10000u

/* Both set and equal (a property read as NULL matches nothing). */
static inline bool streq_ptr(const char *a, const char *b) {
        return a && b && strcmp(a, b) == 0;
}

/* Options beyond the global ones; a Verb accepts a mask of OPTION(x). */
typedef enum VerbOption {
        VERB_OPTION_PRIORITY,
        VERB_OPTION_DELAY,
        VERB_OPTION_NOT_BEFORE,
        VERB_OPTION_TIMEOUT,
        VERB_OPTION_MAX_ATTEMPTS,
        VERB_OPTION_UNIQUE_KEY,
        VERB_OPTION_LOCK,
        VERB_OPTION_AFTER,
        VERB_OPTION_EXPIRE,
        VERB_OPTION_STATUS,
        VERB_OPTION_TYPE,
        VERB_OPTION_OWNER,
        VERB_OPTION_LIMIT,
        VERB_OPTION_MEMORY_MAX,
        VERB_OPTION_CPU_QUOTA,
        VERB_OPTION_TASKS_MAX,
        VERB_OPTION_NICE,
        VERB_OPTION_CWD,
        VERB_OPTION_SETENV,
        VERB_OPTION_FOLLOW,
        VERB_OPTION_WAIT,
        VERB_OPTION_OUTPUT,
        VERB_OPTION_INPUT,
        VERB_OPTION_CONCURRENCY,
        VERB_OPTION_CLAIM_WAIT,         /* --wait=TIMESPAN; --wait alone is VERB_OPTION_WAIT */
        VERB_OPTION_MAX_JOBS,
        VERB_OPTION_NAMES,
        VERB_OPTION_PROMETHEUS,
        VERB_OPTION_ONCE,
        _VERB_OPTION_MAX,
} VerbOption;

#define OPTION(x) (UINT64_C(1) << VERB_OPTION_##x)

typedef struct Args {
        /* global */
        bool user;
        const char *host;               /* -H: borrowed from argv */
        JsonMode json;
        bool legend;
        bool ask_password;

        uint64_t set;                   /* OPTION() bits given on the command line */

        /* submit */
        int priority;
        uint64_t delay_usec;
        uint64_t not_before_usec;
        uint64_t timeout_usec;
        unsigned max_attempts;
        const char *unique_key;
        const char *lock;
        GArray *after;                  /* uint64_t; list and follow take exactly one, which may be 0 */
        uint64_t expire_usec;

        /* list */
        GPtrArray *status;              /* char *, owned */
        GPtrArray *type;                /* char *, owned */
        const char *owner;              /* resolved by the verb: it depends on --host */
        unsigned limit;

        /* run: the job's resources (what was given is in set) and its command's surroundings */
        uint64_t memory_max;
        unsigned cpu_quota_percent;
        uint64_t tasks_max;
        int nice;
        const char *cwd;
        GPtrArray *setenv;              /* "NAME=VALUE", owned; a later NAME wins */
        bool follow;
        bool wait;

        /* output */
        const char *output;

        /* submit, run: a file, or "-" for standard input */
        const char *input;

        /* types */
        bool names;

        /* worker */
        unsigned concurrency;
        uint64_t claim_wait_usec;
        unsigned max_jobs;

        /* stats, top */
        bool prometheus;
        bool once;
} Args;

typedef struct Context {
        Args args;
        sd_bus *bus;
        /* What followed "--", for verbs that run a command (VERB_COMMAND); NULL otherwise. */
        char **command;
} Context;

typedef enum VerbFlags {
        /* Keep what follows "--" apart (Context.command) instead of adding it to the arguments. */
        VERB_COMMAND = 1 << 0,
} VerbFlags;

typedef struct Verb {
        const char *name;
        unsigned min_args;              /* positional arguments after the verb name */
        unsigned max_args;              /* UINT_MAX: any number */
        uint64_t options;               /* OPTION() bits it accepts */
        VerbFlags flags;
        /* argv[0] is the verb name, argv[argc] is NULL */
        int (*run)(Context *c, int argc, char *argv[]);
        const char *synopsis;           /* "submit TYPE [JSON|-]" */
        const char *summary;            /* one line for --help */
        const char *description;        /* more for COMMAND --help, or NULL */
        const char *help;               /* its options for COMMAND --help, or NULL */
} Verb;

/* Prints a usage error and returns EXIT_USAGE, for a verb to return. */
int log_usage(const char *format, ...) __attribute__((format(printf, 1, 2)));

/* Connects on first call as --user/--host say; logs on failure. The bus stays owned by c. */
int context_acquire_bus(Context *c, sd_bus **ret);
/* Another connection like that one, owned by the caller (a worker has one per slot). */
int context_open_bus(const Context *c, sd_bus **ret);

/* Remote hosts have their own user database: names resolved here would be wrong there. */
static inline bool context_is_remote(const Context *c) {
        return c->args.host != NULL;
}
