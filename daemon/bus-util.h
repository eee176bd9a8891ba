/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Small sd-bus helpers shared by the bus-*.c files: who is calling, and named refusals. */

#include <stdbool.h>
#include <sys/types.h>
#include <unistd.h>
#include <systemd/sd-bus.h>
#include <glib.h>

#include "job.h"

typedef struct Caller {
        uid_t uid;
        gid_t gid;
        GArray *groups;         /* gid_t */
} Caller;

void caller_done(Caller *c);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Caller, caller_done)

/* The sender's effective uid, gid and supplementary groups, from the bus. */
int bus_query_caller(sd_bus_message *m, Caller *ret);
/* Owner or root: may see a job's parameters, result and error, and cancel it. */
bool caller_owns(const Caller *c, const Job *j);

/* sd_bus_error_setf that returns the errno a method handler returns for a refusal */
int bus_refuse(sd_bus_error *error, const char *name, const char *format, ...)
        __attribute__((format(printf, 3, 4)));

/* Peeks the next a{sv} entry's variant signature; refuses with InvalidOption unless it is
 * `want`, then enters the variant. */
int bus_enter_option(sd_bus_message *m, const char *key, const char *want, sd_bus_error *error);

#define _cleanup_(f) __attribute__((cleanup(f)))
static inline void closep(int *fd) {
        if (*fd >= 0)
                (void) close(*fd);
}
