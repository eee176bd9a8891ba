/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Owns the log target and level; stateless otherwise. */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
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

        if (log_target == LOG_TARGET_STDERR || getenv("JOBD_LOG_STDERR")) {
                if (job_id > 0)
                        fprintf(stderr, "jobd[job %llu]: %s\n", (unsigned long long) job_id, buf);
                else
                        fprintf(stderr, "jobd: %s\n", buf);
                return -error;
        }

        /* only the fields that carry something: journald keeps empty ones */
        char fields[6][2304];
        struct iovec iov[6];
        size_t n = 0;

        snprintf(fields[n++], sizeof(fields[0]), "MESSAGE=%s", buf);
        snprintf(fields[n++], sizeof(fields[0]), "PRIORITY=%i", level);
        snprintf(fields[n++], sizeof(fields[0]), "SYSLOG_IDENTIFIER=jobd");
        if (job_id > 0)
                snprintf(fields[n++], sizeof(fields[0]), "JOBD_JOB_ID=%llu", (unsigned long long) job_id);
        if (job_type)
                snprintf(fields[n++], sizeof(fields[0]), "JOBD_TYPE=%s", job_type);
        if (message_id)
                snprintf(fields[n++], sizeof(fields[0]), "MESSAGE_ID=%s", message_id);
        else if (error > 0)
                snprintf(fields[n++], sizeof(fields[0]), "ERRNO=%i", error);
        for (size_t i = 0; i < n; i++)
                iov[i] = (struct iovec) { .iov_base = fields[i], .iov_len = strlen(fields[i]) };
        (void) sd_journal_sendv(iov, (int) n);
        return -error;
}
