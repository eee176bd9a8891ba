/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * worker: the command line of the worker loop (jobctl-worker-loop.c), checked before the bus is
 * opened: the types, the handler after "--", which must be found now rather than fail every job.
 *
 * progress: called from inside an attempt, which jobd (or a worker loop) describes in the
 * environment: JOBD_JOB_ID and JOBD_TOKEN, the token proving the caller holds the current
 * attempt. A stale token is refused by jobd (StaleToken), never guessed at here.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobctl-bus.h"
#include "jobctl-worker-loop.h"
#include "jobctl-worker.h"
#include "jobd-names.h"
#include "parse-util.h"

/* worker */

/* As execvp() will look for it: through $PATH unless the name has a '/'. */
static bool handler_is_executable(const char *name) {
        g_autofree char *path = strchr(name, '/') ? g_strdup(name) : g_find_program_in_path(name);
        struct stat st;

        return path && stat(path, &st) >= 0 && S_ISREG(st.st_mode) && access(path, X_OK) >= 0;
}

static int worker_open_bus(void *userdata, sd_bus **ret) {
        return context_open_bus(userdata, ret);
}

static int verb_worker(Context *c, int argc, char *argv[]) {
        WorkerOptions o = {
                .open_bus = worker_open_bus,
                .userdata = c,
                .types = argv + 1,
                .command = c->command,
                .concurrency = c->args.concurrency > 0 ? c->args.concurrency : 1,
                .wait_usec = (c->args.set & OPTION(CLAIM_WAIT)) ? c->args.claim_wait_usec : WORKER_CLAIM_WAIT_USEC,
                .max_jobs = c->args.max_jobs,
                .fds = !context_is_remote(c),
        };
        if (!o.command || !o.command[0][0])
                return log_usage("worker needs a handler after --: %s worker [OPTIONS...] TYPE... -- HANDLER "
                                 "[ARGUMENTS...]", program_invocation_short_name);
        for (char **t = o.types; *t; t++)
                if (!(*t)[0] || !g_utf8_validate(*t, -1, NULL))
                        return log_usage("Invalid job type '%s'. See '%s types'.", *t,
                                         program_invocation_short_name);
        if (!handler_is_executable(o.command[0]))
                return log_usage("Handler '%s' is not an executable file%s.", o.command[0],
                                 strchr(o.command[0], '/') ? "" : " in $PATH");

        return worker_run(&o);
}

/* progress */

/* "40" or "40%", 0..100 */
static int parse_progress_percent(const char *s, unsigned *ret) {
        g_autofree char *number = g_strdup(s);
        size_t n = strlen(number);
        unsigned v;

        if (n > 0 && number[n - 1] == '%')
                number[n - 1] = '\0';
        if (parse_unsigned(number, &v) < 0 || v > 100)
                return -EINVAL;
        *ret = v;
        return 0;
}

static int verb_progress(Context *c, int argc, char *argv[]) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *id_text = getenv("JOBD_JOB_ID"), *token = getenv("JOBD_TOKEN");
        g_autofree char *message = NULL, *path = NULL;
        unsigned percent;
        sd_bus *bus;
        uint64_t id;
        int r;

        if (!id_text || !token || !token[0])
                return log_usage("%s progress reports on the job it runs in, but JOBD_JOB_ID and JOBD_TOKEN "
                                 "are not set: call it from a job's command (jobd sets both), or from a "
                                 "worker's handler.", program_invocation_short_name);
        if (parse_job_id(id_text, &id) < 0)
                return log_usage("Invalid JOBD_JOB_ID=%s in the environment: a positive integer.", id_text);
        if (parse_progress_percent(argv[1], &percent) < 0)
                return log_usage("Invalid percentage '%s': an integer from 0 to 100.", argv[1]);

        /* the words of MESSAGE as echo joins them, so quoting is optional */
        message = g_strjoinv(" ", argv + 2);
        if (!g_utf8_validate(message, -1, NULL))
                return log_usage("The progress message is not valid UTF-8.");

        r = context_acquire_bus(c, &bus);
        if (r < 0)
                return r;

        path = job_object_path(id);
        r = sd_bus_call_method(bus, JOBD_BUS_NAME, path, JOBD_JOB_INTERFACE, "Progress", &error, NULL,
                               "sus", token, (uint32_t) percent, message);
        if (r < 0) {
                log_error("Failed to report progress: %s", bus_error_message(&error, r));
                return r;
        }
        return 0;
}

const Verb worker_verbs[] = {
        {
                .name = "worker",
                .min_args = 1,
                .max_args = UINT_MAX,
                .options = OPTION(CONCURRENCY) | OPTION(CLAIM_WAIT) | OPTION(MAX_JOBS),
                .flags = VERB_COMMAND,
                .run = verb_worker,
                .synopsis = "worker TYPE... -- HANDLER [ARGS...]",
                .summary = "Work jobs of external types: claim, run HANDLER, report",
                .description =
                "Claims jobs of these types from jobd (the attempt is tracked: should this worker\n"
                "die, its jobs go back at once) and runs HANDLER for each, in its own process\n"
                "group, in jobctl's directory and environment plus:\n"
                "  stdin           the job's parameters (JSON text)\n"
                "  fd 3            the job's input, when it has one (submit --input=)\n"
                "  JOBD_JOB_ID, JOBD_TOKEN, JOBD_TYPE, JOBD_ATTEMPT\n"
                "  JOBD_WORKSPACE  a new folder for this job (TMPDIR too), removed afterwards;\n"
                "                  files left in $JOBD_WORKSPACE/outputs/ become the job's outputs\n"
                "While HANDLER runs, its lease is renewed (Heartbeat) and its stderr goes to the\n"
                "job's log. Exit status 0 completes the job with stdout as the Result (its JSON,\n"
                "or a JSON string of the text); any other fails the attempt, which jobd retries\n"
                "while attempts remain. 'jobctl progress' works from inside HANDLER (with --user\n"
                "for a user-mode jobd). Should jobd say the attempt is no longer this worker's\n"
                "(its lease ran out, it was cancelled), HANDLER's process group is killed.\n"
                "One line per job goes to standard error: \"job 42 (resize): succeeded in 1.2s\".\n"
                "\n"
                "SIGTERM or Ctrl-C stops claiming, stops the handlers still running (SIGTERM,\n"
                "SIGKILL 5s later), gives their jobs back untouched (Release), waits for jobd to\n"
                "take them and exits 0; a second one exits at once. The types need WorkerUsers=\n"
                "or WorkerGroups= to name the user running this.\n"
                "\n"
                "Each of the --concurrency slots has its own connection to jobd. With --host=\n"
                "(SSH), which cannot pass files, jobs with input are left to other workers and a\n"
                "job whose handler leaves outputs fails saying so.\n",
                .help =
                "     --concurrency=N         Run up to N handlers at once (default 1, at most 128)\n"
                "     --wait=TIMESPAN         How long one Claim waits for a job (default 30s)\n"
                "     --max-jobs=N            Exit 0 once N jobs ended (tests, cron-style use)\n",
        },
        {
                .name = "progress",
                .min_args = 1,
                .max_args = UINT_MAX,
                .run = verb_progress,
                .synopsis = "progress PERCENT [MESSAGE...]",
                .summary = "From inside a job: report how far it is",
                .description =
                "Sets the job's Progress and ProgressMessage, which status and follow show. Uses\n"
                "JOBD_JOB_ID and JOBD_TOKEN from the environment, which jobd gives every job it\n"
                "runs. PERCENT is 0 to 100, with or without %; the words of MESSAGE are joined.\n"
                "A job of a user-mode jobd calls 'jobctl --user progress ...'.\n",
        },
        {}
};
