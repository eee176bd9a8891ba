/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Owns the log target and level; stateless otherwise. */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-journal.h>

#include "log.h"

static LogTarget log_target = LOG_TARGET_JOURNAL;
static int log_max_level = LOG_INFO;

void log_set_target(LogTarget t) {
        log_target = t;
}

void log_set_max_level(int level) {
        log_max_level = level;
}

int log_internal(int level, int error, uint64_t job_id, const char *job_type,
                 const char *message_id, const char *format, ...) {
        char buf[2048];
        va_list ap;

        if (error < 0)
                error = -error;
        if (level > log_max_level)
                return -error;

        /* %m means the error we were given, not whatever errno happens to be */
        errno = error;
        va_start(ap, format);
        vsnprintf(buf, sizeof(buf), format, ap);
        va_end(ap);

        if (log_target == LOG_TARGET_STDERR) {
                if (job_id > 0)
                        fprintf(stderr, "jobd[job %llu]: %s\n", (unsigned long long) job_id, buf);
                else
                        fprintf(stderr, "jobd: %s\n", buf);
                return -error;
        }

        char job_id_field[64], type_field[256], mid_field[64], errno_field[32];
        snprintf(job_id_field, sizeof(job_id_field), "JOBD_JOB_ID=%llu", (unsigned long long) job_id);
        snprintf(type_field, sizeof(type_field), "JOBD_TYPE=%s", job_type ?: "");
        snprintf(mid_field, sizeof(mid_field), "MESSAGE_ID=%s", message_id ?: "");
        snprintf(errno_field, sizeof(errno_field), "ERRNO=%i", error);

        /* An empty FIELD= is dropped by journald, so optional fields can ride along blank. */
        sd_journal_send("MESSAGE=%s", buf,
                        "PRIORITY=%i", level,
                        "SYSLOG_IDENTIFIER=jobd",
                        job_id > 0 ? job_id_field : "JOBD_JOB_ID=",
                        job_type ? type_field : "JOBD_TYPE=",
                        message_id ? mid_field : "MESSAGE_ID=",
                        error > 0 ? errno_field : "ERRNO=",
                        NULL);
        return -error;
}
