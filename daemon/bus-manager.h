/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* org.jobd.Jobd1.Manager at /org/jobd/Jobd1: reads and validates calls, asks the manager,
 * replies. Holds no state of its own. */

#include "manager.h"

#define SUBMIT_AFTER_MAX 64u           /* ids in the after option */
#define SUBMIT_KEY_MAX 255u            /* bytes in lock and unique_key */
#define SUBMIT_MAX_ATTEMPTS_MAX 100u
#define LIST_LIMIT_MAX 10000u
#define LIST_FILTER_VALUES_MAX 64u     /* names in the status and type filters */

int bus_manager_register(Manager *m);
void bus_manager_emit_job_new(Manager *m, Job *j);
void bus_manager_emit_job_changed(Manager *m, Job *j);
