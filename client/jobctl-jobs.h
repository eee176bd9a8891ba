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
/* --input=: an fd jobd can read without blocking, for Submit's input h: FILE opened read-only
 * (regular files only: jobd must never wait on a pipe), or for "-" standard input copied into a
 * sealed memfd. *ret_fd is -1 without --input=. EXIT_USAGE after a message, or -errno logged. */
int submit_open_input(const Args *a, int *ret_fd);
/* An fd needs a connection that passes them: not the SSH transport of --host=. */
int submit_check_input_bus(const Context *c, sd_bus *bus, int input_fd);
/* Submit(type, parameters, options from a and input_fd, and what extra appends): the new job's id
 * and path. what completes "Failed to …" in the message on error. */
typedef int (*SubmitExtraFn)(sd_bus_message *m, const Args *a);
int submit_call(sd_bus *bus, const char *type, const char *parameters, const Args *a, int input_fd,
                SubmitExtraFn extra, const char *what, uint64_t *ret_id, char **ret_path);
/* A new job's id: the number alone (ID=$(jobctl submit ...)), or with --json an object. */
int submit_print(const Context *c, uint64_t id, const char *path);
