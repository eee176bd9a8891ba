/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* jobd.conf, section [Manager]. Pure GLib code. */

#include <stdint.h>
#include <glib.h>

typedef struct Config {
        unsigned max_running;           /* MaxRunning=, default: number of CPUs */
        uint64_t idle_exit_usec;        /* IdleExitSec=, default 60s, at least 1s; 0 or "infinity": never */
        uint64_t max_parameter_bytes;   /* MaxParameterBytes=, default 1M */
        uint64_t max_input_bytes;       /* MaxInputBytes=, default 64M */
        unsigned max_pending_per_user;  /* MaxPendingPerUser=, default 10000 */
        uint64_t output_quota_bytes;    /* OutputQuotaBytes=, default 256M per job */
        uint64_t retention_usec;        /* Retention=, default 7d */
} Config;

void config_init(Config *c);
/* Parses text over the values already in c; unknown keys are errors naming file:line. */
gboolean config_parse(Config *c, const char *path, const char *data, size_t size, GError **error);
/* A missing file is not an error (defaults stay). */
gboolean config_load(Config *c, const char *path, GError **error);
