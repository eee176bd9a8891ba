/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * How jobd ends, and what it tells systemd meanwhile: idle exit after IdleExitSec=, SIGTERM and
 * SIGINT, and the sd_notify STATUS= line ("3 running, 12 queued, 2 workers waiting").
 *
 * Busy means: a job not finished (pending, scheduled, blocked, running or claimed), a parked
 * Claim, a Follow stream with followers, or the store holding a change not yet durable (a call
 * in progress) or refusing changes. Activity (every method call, every job change, a Claim or a
 * follower going away) restarts the idle period; one timer, armed only after activity, fires
 * when the period since the last activity has passed and exits if nothing is busy then.
 *
 * Exiting releases the bus name first and keeps serving until the bus confirms the release
 * (NameOwnerChanged): every call sent to the name before that is already queued on our
 * connection and is answered; every call sent after it activates jobd again. See README, "Idle
 * exit and shutdown".
 */

#include <stdbool.h>
#include <glib.h>

typedef struct Manager Manager;
typedef struct Idle Idle;

/* exit status when work arrived while an idle exit drained its calls: jobd.service restarts
 * on it (RestartForceExitStatus=), so that work is not left until the next call */
#define IDLE_EXIT_RESTART 75

/* SIGTERM and SIGINT handlers, the timers; nothing armed yet */
int idle_new(Idle **ret, Manager *m);
Idle *idle_free(Idle *i);

/* After the bus name was taken: READY=1, the first STATUS=, the call filter, the idle period. */
int idle_start(Idle *i);

/* Something happened: the idle period starts again, STATUS= is refreshed (rate-limited).
 * Cheap; NULL-safe. */
void idle_touch(Idle *i);

/* The name is being released: start nothing new (no scopes, no Claims served from the queue). */
bool idle_is_stopping(const Idle *i);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Idle, idle_free)
