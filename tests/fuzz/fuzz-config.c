/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Fuzzes config_parse() with arbitrary jobd.conf contents: memory safety, errors that name a line,
 * values within their ranges, and a failed parse that changes nothing.
 */

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "daemon/config.h"      /* plain "config.h" is meson's generated one from here */

#define FUZZ_PATH "jobd.conf"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
        Config c, before;

        if (!initialized) {
                g_log_set_writer_func(abort_on_warning, NULL, NULL);
                initialized = true;
        }

        if (size > 64 * 1024)   /* config_load() never passes more */
                return 0;

        config_init(&c);
        before = c;

        if (config_parse(&c, FUZZ_PATH, (const char *) data, size, &error)) {
                g_assert_no_error(error);
                g_assert_cmpuint(c.max_running, >=, 1);
                g_assert_cmpuint(c.max_pending_per_user, >=, 1);
                g_assert_cmpuint(c.max_parameter_bytes, >=, 1);
                g_assert_cmpuint(c.max_parameter_bytes, <=, 32 * 1024 * 1024);
                g_assert_true(c.idle_exit_usec != UINT64_MAX);
                return 0;
        }

        g_assert_nonnull(error);
        g_assert_true(memcmp(&c, &before, sizeof(c)) == 0);
        if (!names_a_line(error->message)) {
                fprintf(stderr, "error without a line: %s\n", error->message);
                abort();
        }
        return 0;
}
