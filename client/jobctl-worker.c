/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * progress: called from inside an attempt, which jobd (or a worker loop) describes in the
 * environment: JOBD_JOB_ID and JOBD_TOKEN, the token proving the caller holds the current
 * attempt. A stale token is refused by jobd (StaleToken), never guessed at here.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "jobctl-bus.h"
#include "jobctl-worker.h"
#include "jobd-names.h"
#include "parse-util.h"

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
