/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Logging: structured entries to the systemd journal (sd_journal_send), or plain lines to
 * stderr (unit tests, a foreground run). Helpers return -errno; only the edge logs.
 * Lines about a job carry JOBD_JOB_ID= and JOBD_TYPE=. Never log parameters.
 */

#include <stdint.h>
#include <syslog.h>

typedef enum LogTarget {
        LOG_TARGET_JOURNAL,
        LOG_TARGET_STDERR,
        _LOG_TARGET_MAX,
} LogTarget;

void log_set_target(LogTarget t);
void log_set_max_level(int level);

/* Returns -abs(error) so callers can `return log_error_errno(r, "…: %m")`; %m is error. */
int log_internal(int level, int error, uint64_t job_id, const char *job_type,
                 const char *message_id, const char *format, ...) __attribute__((format(printf, 6, 7)));

#define log_full_errno(level, error, ...) log_internal(level, error, 0, NULL, NULL, __VA_ARGS__)
#define log_debug(...)   log_internal(LOG_DEBUG, 0, 0, NULL, NULL, __VA_ARGS__)
#define log_info(...)    log_internal(LOG_INFO, 0, 0, NULL, NULL, __VA_ARGS__)
#define log_notice(...)  log_internal(LOG_NOTICE, 0, 0, NULL, NULL, __VA_ARGS__)
#define log_warning(...) log_internal(LOG_WARNING, 0, 0, NULL, NULL, __VA_ARGS__)
#define log_error(...)   log_internal(LOG_ERR, 0, 0, NULL, NULL, __VA_ARGS__)
#define log_warning_errno(error, ...) log_internal(LOG_WARNING, error, 0, NULL, NULL, __VA_ARGS__)
#define log_error_errno(error, ...)   log_internal(LOG_ERR, error, 0, NULL, NULL, __VA_ARGS__)
#define log_job(level, job_id, job_type, ...) log_internal(level, 0, job_id, job_type, NULL, __VA_ARGS__)
