/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Small sd-bus helpers shared by the bus-*.c files: who is calling, and named refusals. */

#include <stdbool.h>
#include <sys/types.h>
#include <unistd.h>
#include <systemd/sd-bus.h>
#include <glib.h>

#include "cleanup.h"
#include "job.h"

typedef struct Caller {
        uid_t uid;
        gid_t gid;              /* the user's primary group from the user database; -1 if none */
        GArray *groups;         /* gid_t: the connection's groups, as the bus daemon saw them */
        char *user_name;        /* NULL if the uid has no entry */
} Caller;

#define CALLER_CACHE_MAX 4096u

void caller_done(Caller *c);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Caller, caller_done)

/* A cache of unique bus name → Caller. Unique names are never reused on a bus and a
 * connection's credentials never change, so an entry is never stale; the cache is only bounded. */
GHashTable *caller_cache_new(void);

/* The sender's uid and groups from the bus daemon (GetConnectionCredentials: what it saw when the
 * connection was made, not racy /proc reads), cached per unique name. The first call of a
 * connection is one synchronous round trip to the bus daemon; later calls are free. */
int bus_query_caller(sd_bus_message *m, GHashTable *cache, Caller *ret);
/* Root, and in user mode the user jobd runs as (it is their jobd): may Reload, pause types, work
 * any external type and submit to any type. auth.h adds polkit admins for the first two. */
bool caller_is_admin(const struct Manager *m, const Caller *c);
/* Owner or root. Not the whole answer to who may see or change a job: auth.h adds polkit. */
bool caller_owns(const Caller *c, const Job *j);
/* Whether the caller is named in a users list (names or uids) or is a member of a group in a
 * groups list (names or gids). */
bool caller_in_lists(const Caller *c, char *const *users, char *const *groups);

/* Refuses a change while the store is failed and rewriting its state. */
#define BUS_REFUSE_STORE_FAILED(error)                                                                   \
        bus_refuse(error, SD_BUS_ERROR_IO_ERROR,                                                          \
                   "jobd's journal could not be written and is being rewritten; no changes are accepted " \
                   "until that succeeded. Nothing was changed; try again shortly.")

/* A ManagerDoneFn for a change whose caller waits: userdata is the call (a reference, dropped
 * here); it gets an empty reply once durable, IOError (saying the change stands) otherwise. */
void bus_reply_when_durable(struct Manager *m, int error, Job *j, void *userdata);

/* Walks an a{sv}: for each entry fn gets the key with the message at its variant, and must enter
 * it (bus_enter_option) and read the value; the walk leaves the variant and the entry. A key
 * given twice is refused with InvalidOption. */
typedef int (*BusVardictFn)(sd_bus_message *m, const char *key, void *userdata, sd_bus_error *error);
int bus_read_vardict(sd_bus_message *m, BusVardictFn fn, void *userdata, sd_bus_error *error);

/* sd_bus_error_setf that returns the errno a method handler returns for a refusal */
int bus_refuse(sd_bus_error *error, const char *name, const char *format, ...)
        __attribute__((format(printf, 3, 4)));

/* Peeks the next a{sv} entry's variant signature; refuses with InvalidOption unless it is
 * `want`, then enters the variant. */
int bus_enter_option(sd_bus_message *m, const char *key, const char *want, sd_bus_error *error);

