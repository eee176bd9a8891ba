/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A client of the polkit authority (org.freedesktop.PolicyKit1.Authority.CheckAuthorization on the
 * system bus), asynchronous: a call that needs an answer not known yet is parked, polkit is asked
 * with the caller's unique bus name as subject ("system-bus-name"), and when the answer comes it is
 * remembered and the parked calls are put back into sd-bus's read queue (sd_bus_enqueue_for_read),
 * so their handlers run again and find it. Answers are kept per (unique name, action) for the life of
 * that connection: unique names are never reused, and a NameOwnerChanged match per name forgets them
 * when it leaves. The table is bounded; nothing here blocks the loop.
 */

#include <stdbool.h>
#include <systemd/sd-bus.h>
#include <glib.h>

#define POLKIT_NAMES_MAX 1024u          /* bus names with answers kept; idle ones go beyond */
#define POLKIT_PARKED_MAX 64u           /* calls of one name waiting for one answer */

typedef struct Polkit Polkit;

typedef enum PolkitAnswer {
        POLKIT_UNKNOWN,                 /* not asked yet (or only without interaction, and this
                                         * call allows it): polkit_park() asks */
        POLKIT_YES,
        POLKIT_NO,
} PolkitAnswer;

int polkit_new(Polkit **ret, sd_bus *bus);
Polkit *polkit_free(Polkit *p);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Polkit, polkit_free)

/* What is known for sender and action. With interactive, a NO that polkit gave without being
 * allowed to ask the user reads UNKNOWN: asking again with interaction may turn it into YES. */
PolkitAnswer polkit_lookup(Polkit *p, const char *sender, const char *action, bool interactive);

/* Parks call until polkit has answered for its sender and action (asking it, with interaction if
 * the call allows it, unless that question is on its way already), then re-queues it for
 * dispatch. Returns 1 when parked; -EBUSY beyond POLKIT_PARKED_MAX calls waiting on one answer;
 * other -errno when polkit could not be asked (the answer then reads NO). */
int polkit_park(Polkit *p, sd_bus_message *call, const char *action);
