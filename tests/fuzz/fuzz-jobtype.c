/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzzes jobtype_parse() with arbitrary file contents. Beyond memory safety it checks the promises
 * callers rely on: every error names the file and a line, every parsed type is within its ranges, and
 * keyfile_scan() (whose line numbers the messages use) never passes text that GKeyFile refuses.
 */

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "jobtype.h"
#include "params.h"
#include "parse-util.h"

#define FUZZ_PATH "fuzz.type"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* "fuzz.type:<digits>: " */
static bool names_a_line(const char *message) {
        const char *p;

        if (!g_str_has_prefix(message, FUZZ_PATH ":"))
                return false;
        p = message + strlen(FUZZ_PATH ":");
        if (!g_ascii_isdigit(*p) || *p == '0')
                return false;
        while (g_ascii_isdigit(*p))
                p++;
        return p[0] == ':' && p[1] == ' ';
}

static void check_type(const JobType *t) {
        g_assert_cmpstr(t->name, ==, "fuzz");
        g_assert_nonnull(t->description);
        g_assert_true(!t->exec || (t->exec[0] && g_path_is_absolute(t->exec[0])));
        g_assert_cmpint(t->stdin_mode, >=, 0);
        g_assert_cmpint(t->stdin_mode, <, _JOBTYPE_STDIN_MAX);
        g_assert_cmpuint(t->max_attempts, >=, 1);
        g_assert_true(t->retry_backoff_usec != UINT64_MAX);
        g_assert_cmpuint(t->memory_max, >, 0);
        g_assert_cmpuint(t->tasks_max, >, 0);
        g_assert_cmpint(t->nice, >=, -20);
        g_assert_cmpint(t->nice, <=, 19);
        g_assert_nonnull(t->submit_users);
        g_assert_nonnull(t->submit_groups);
        g_assert_nonnull(t->worker_users);
        g_assert_nonnull(t->worker_groups);
        g_assert_false(t->builtin);
        if (t->on_calendar) {
                g_assert_cmpuint(strlen(t->on_calendar), >, 0);
                g_assert_cmpuint(strlen(t->on_calendar), <=, JOBTYPE_ON_CALENDAR_MAX);
                g_assert_nonnull(t->schedule_parameters);
                g_assert_cmpuint(strlen(t->schedule_parameters), <=, JOBTYPE_SCHEDULE_PARAMETERS_MAX);
                g_assert_true(params_is_json(t->schedule_parameters));
                g_assert_true(t->schedule_accuracy_usec != UINT64_MAX);
        } else {
                /* a schedule's settings without OnCalendar= are refused, never kept */
                g_assert_null(t->schedule_parameters);
                g_assert_false(t->schedule_persistent);
                g_assert_cmpuint(t->schedule_accuracy_usec, ==, 0);
        }
}

static bool is_plain_name(const char *s) {
        if (!s || !*s)
                return false;
        for (; *s; s++)
                if (!g_ascii_isalnum(*s))
                        return false;
        return true;
}

/* the promise in parse-util.h: with plain names only, what passes loads in GKeyFile */
static int accept_plain_names(const char *section, const char *key, unsigned line, void *userdata) {
        if (!is_plain_name(section))
                return -EINVAL;
        if (key && (!is_plain_name(key) || strcmp(key, "Encoding") == 0))
                return -EINVAL;
        return 0;
}

static void check_scan_agrees_with_gkeyfile(const char *data, size_t size) {
        g_autoptr(GKeyFile) kf = g_key_file_new();
        g_autoptr(GError) error = NULL;

        if (keyfile_scan(data, size, accept_plain_names, NULL, NULL) < 0)
                return;
        if (!g_key_file_load_from_data(kf, data, size, G_KEY_FILE_NONE, &error)) {
                fprintf(stderr, "keyfile_scan() passed what GKeyFile refuses: %s\n", error->message);
                abort();
        }
}

/* A g_warning() or g_critical() from GLib on our input is a finding too. abort(), not GLib's fatal
 * SIGTRAP, so that libFuzzer saves the input. */
static GLogWriterOutput abort_on_warning(GLogLevelFlags level, const GLogField *fields, gsize n_fields,
                                         gpointer userdata) {
        g_log_writer_standard_streams(level, fields, n_fields, userdata);
        if (level & (G_LOG_LEVEL_ERROR | G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING))
                abort();
        return G_LOG_WRITER_HANDLED;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static bool initialized = false;
        g_autoptr(GError) error = NULL;
        g_autoptr(JobType) t = NULL;

        if (!initialized) {
                g_log_set_writer_func(abort_on_warning, NULL, NULL);
                initialized = true;
        }

        /* jobtype_load_dirs() never passes more */
        if (size > 64 * 1024)
                return 0;

        check_scan_agrees_with_gkeyfile((const char *) data, size);

        t = jobtype_parse("fuzz", FUZZ_PATH, (const char *) data, size, &error);
        if (t) {
                g_assert_no_error(error);
                check_type(t);
                return 0;
        }

        g_assert_nonnull(error);
        g_assert_true(error->domain == G_KEY_FILE_ERROR);
        if (!names_a_line(error->message)) {
                fprintf(stderr, "error without a line: %s\n", error->message);
                abort();
        }
        return 0;
}
