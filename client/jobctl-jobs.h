/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Verbs on jobs: submit, status, list, cancel; and what run and follow borrow from them. */

#include "jobctl.h"

extern const Verb jobs_verbs[];

/* How a status shows: an ANSI_* colour (or NULL) and a glyph, as in status and list. */
const char *job_status_color(const char *status);
Glyph job_status_glyph(const char *status);

/* What submit and run share (run is a submit of the built-in type exec). */

/* The options both take, checked together; EXIT_USAGE after a message. */
int submit_check_options(const Args *a);
/* Their Submit options as {sv} entries, into an a{sv} the caller opened. */
int submit_append_options(sd_bus_message *m, const Args *a);
/* A new job's id: the number alone (ID=$(jobctl submit ...)), or with --json an object. */
int submit_print(const Context *c, uint64_t id, const char *path);
