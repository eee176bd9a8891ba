/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* org.jobd.Jobd1.Job at /org/jobd/Jobd1/job/ID: a fallback vtable over the manager's job
 * table and a node enumerator, so every job is an object without a slot of its own. */

#include "manager.h"

#define FOLLOW_MAX_PER_JOB 128u
#define FOLLOW_MAX_PER_CONNECTION 16u
#define FOLLOW_MAX_TOTAL 512u            /* each holds a pipe; jobd's soft RLIMIT_NOFILE is 1024 */
#define PROGRESS_MESSAGE_MAX 4096u
#define LOG_DATA_MAX (64u * 1024u)
#define ERROR_TEXT_MAX 4096u

int bus_job_register(Manager *m);
/* Sends PropertiesChanged for j->changed and clears it. */
void bus_job_emit_changed(Manager *m, Job *j);
