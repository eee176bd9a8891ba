/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Recurring jobs: for every type with [Schedule] OnCalendar=, a transient systemd timer
 * jobd-schedule-TYPE.timer whose service jobd-schedule-TYPE.service runs
 * `jobctl submit --unique-key=schedule:TYPE -- TYPE PARAMETERS`. systemd parses the calendar
 * expression, keeps time (also while jobd is not running: the submit activates it) and shows the
 * timer in `systemctl list-timers`; the unique key makes a firing while the last scheduled job is
 * unfinished return that job instead of queueing another.
 *
 * sd-bus code: -errno, asynchronous throughout. A sync lists the units jobd made before (also by
 * an earlier jobd), leaves alone those whose settings are unchanged, stops those whose type or
 * schedule is gone, and replaces those that changed. Syncs never overlap: one asked for while
 * another runs is done after it, with the latest types.
 */

#include <stdbool.h>
#include <systemd/sd-bus.h>
#include <glib.h>

#include "runner.h"

typedef struct Recurring Recurring;

#define RECURRING_UNIT_PREFIX "jobd-schedule-"

typedef void (*RecurringIdleFn)(Recurring *r, void *userdata);

/* jobctl: absolute path of the jobctl the timers run. own_dirs: type folders whose schedules
 * count (NULL: every folder), so a user-mode jobd does not schedule the system's types too.
 * The runner (borrowed) stops units for it; free the Recurring after the runner, whose pending
 * stops call back into it. */
int recurring_new(Recurring **ret, sd_bus *bus, Runner *runner, bool user_mode, const char *jobctl,
                  char *const *own_dirs);
/* Calls the waiters of recurring_when_idle() still waiting; leaves the units to the next jobd. */
Recurring *recurring_free(Recurring *r);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Recurring, recurring_free)

/* Brings the timers in line with types (name → JobType*; read now, not kept). */
int recurring_sync(Recurring *r, GHashTable *types);
/* Calls fn once no sync is running or queued: at once if none is. */
void recurring_when_idle(Recurring *r, RecurringIdleFn fn, void *userdata);
/* Why the type's schedule is not in effect (systemd refused its timer, …); NULL if it is or the
 * type has none. Valid until the next call into the Recurring. */
const char *recurring_get_error(Recurring *r, const char *type);
