/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Owns the wanted schedules (a copy of what the types said at the last sync), the per-type
 * reasons a schedule is not in effect, and the calls to systemd of the sync under way.
 *
 * A round: ListUnitsByPatterns jobd-schedule-*.timer/.service → per type, either nothing (the
 * timer is active and its Description carries the fingerprint of the wanted settings), or an Op:
 * stop what exists of the pair (StopUnit, waiting for the stop jobs through the runner's
 * JobRemoved match), then StartTransientUnit of the timer with the service as its aux unit.
 * The round ends when its last Op did; then a queued sync starts the next round, or the idle
 * waiters are called.
 *
 * Why the fingerprint lives in the Description: jobd exits when idle and the timers' own submits
 * start it again. The new jobd must recognise its units as current without re-making them (that
 * would stop the very service whose jobctl activated it), and ListUnitsByPatterns returns each
 * unit's Description with its name: one call, no per-unit property reads.
 *
 * Invariants: at most one round at a time (busy); an Op exists only within its round, so the
 * round ends exactly when list_slot is gone and ops is empty; a type has at most one Op.
 */

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <systemd/sd-event.h>

#include "cleanup.h"
#include "jobtype.h"
#include "log.h"
#include "recurring.h"

#define SYSTEMD_DEST        "org.freedesktop.systemd1"
#define SYSTEMD_PATH        "/org/freedesktop/systemd1"
#define SYSTEMD_MANAGER     "org.freedesktop.systemd1.Manager"
#define SYSTEMD_UNIT_EXISTS "org.freedesktop.systemd1.UnitExists"

#define UNIQUE_KEY_PREFIX "schedule:"
/* Units that were just stopped are dropped by systemd's next garbage collection, before it reads
 * our next call; should one linger (its service still ending), try again a few times. */
#define START_RETRY_USEC (200 * 1000)
#define START_TRIES_MAX 10u

typedef struct Schedule {
        char *type;
        char *path;             /* the type file, for messages */
        char *on_calendar;
        char *parameters;
        bool persistent;
        uint64_t accuracy_usec; /* 0: systemd's default */
        char *description;      /* the timer's; ends with the fingerprint of everything above */
} Schedule;

typedef struct Op {
        Recurring *recurring;   /* borrowed */
        char *type;
        Schedule *start;        /* NULL: only stop */
        unsigned n_stops;       /* stop jobs still running */
        unsigned n_tries;
        sd_bus_slot *slot;      /* StartTransientUnit */
        sd_event_source *retry;
} Op;

typedef struct Waiter {
        RecurringIdleFn fn;
        void *userdata;
} Waiter;

struct Recurring {
        sd_bus *bus;
        Runner *runner;         /* borrowed */
        bool user_mode;
        char *jobctl;
        char **own_dirs;        /* NULL: all */

        GHashTable *wanted;     /* type → Schedule*, from the last recurring_sync() */
        GHashTable *ignored;    /* type → why its schedule is not made (not from own_dirs) */
        GHashTable *errors;     /* type → why systemd has no timer for it */

        bool busy, again;
        sd_bus_slot *list_slot;
        GHashTable *ops;        /* type → Op* */
        GArray *waiters;        /* Waiter */
};

static void round_start(Recurring *r);
static void op_stopped(Op *o);

/* ---- schedules ---- */

static Schedule *schedule_free(Schedule *s) {
        if (!s)
                return NULL;
        g_free(s->type);
        g_free(s->path);
        g_free(s->on_calendar);
        g_free(s->parameters);
        g_free(s->description);
        return (g_free(s), NULL);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Schedule, schedule_free)

static void schedule_destroy(gpointer s) {
        schedule_free(s);
}

static Schedule *schedule_new(const Recurring *r, const JobType *t) {
        g_autoptr(Schedule) s = g_new0(Schedule, 1);
        g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
        g_autofree char *accuracy = NULL;
        /* everything that goes into the units; a version first, for when what goes in changes */
        const char *fields[] = { "1", r->jobctl, r->user_mode ? "user" : "system", t->on_calendar,
                                 t->schedule_parameters, t->schedule_persistent ? "yes" : "no", NULL, NULL };

        accuracy = g_strdup_printf("%" G_GUINT64_FORMAT, t->schedule_accuracy_usec);
        fields[6] = accuracy;
        for (size_t i = 0; fields[i]; i++)
                g_checksum_update(sum, (const guchar *) fields[i], (gssize) strlen(fields[i]) + 1);

        s->type = g_strdup(t->name);
        s->path = g_strdup(t->path);
        s->on_calendar = g_strdup(t->on_calendar);
        s->parameters = g_strdup(t->schedule_parameters);
        s->persistent = t->schedule_persistent;
        s->accuracy_usec = t->schedule_accuracy_usec;
        s->description = g_strdup_printf("jobd: submit %s jobs on schedule [%.16s]", t->name,
                                         g_checksum_get_string(sum));
        return g_steal_pointer(&s);
}

static Schedule *schedule_dup(const Schedule *s) {
        Schedule *c = g_memdup2(s, sizeof(*s));

        c->type = g_strdup(s->type);
        c->path = g_strdup(s->path);
        c->on_calendar = g_strdup(s->on_calendar);
        c->parameters = g_strdup(s->parameters);
        c->description = g_strdup(s->description);
        return c;
}

static char *unit_name(const char *type, const char *suffix) {
        return g_strconcat(RECURRING_UNIT_PREFIX, type, suffix, NULL);
}

/* The type a unit of ours is for, or NULL. */
static char *unit_type(const char *unit) {
        const char *suffixes[] = { ".timer", ".service" };

        if (!g_str_has_prefix(unit, RECURRING_UNIT_PREFIX))
                return NULL;
        unit += strlen(RECURRING_UNIT_PREFIX);
        for (size_t i = 0; i < G_N_ELEMENTS(suffixes); i++)
                if (g_str_has_suffix(unit, suffixes[i])) {
                        g_autofree char *type = g_strndup(unit, strlen(unit) - strlen(suffixes[i]));
                        return jobtype_name_is_valid(type) ? g_steal_pointer(&type) : NULL;
                }
        return NULL;
}

static bool in_own_dirs(const Recurring *r, const char *path) {
        if (!r->own_dirs)
                return true;
        for (char *const *d = r->own_dirs; path && *d; d++) {
                g_autofree char *prefix = g_strconcat(*d, "/", NULL);
                if (g_str_has_prefix(path, prefix))
                        return true;
        }
        return false;
}

/* ---- the round's end ---- */

static void call_waiters(Recurring *r) {
        g_autoptr(GArray) waiters = g_steal_pointer(&r->waiters);

        /* a waiter may wait again or sync: it finds a fresh list */
        r->waiters = g_array_new(FALSE, FALSE, sizeof(Waiter));
        for (guint i = 0; i < waiters->len; i++) {
                Waiter *w = &g_array_index(waiters, Waiter, i);
                w->fn(r, w->userdata);
        }
}

static void round_maybe_end(Recurring *r) {
        if (r->list_slot || g_hash_table_size(r->ops) > 0)
                return;
        r->busy = false;
        if (r->again) {
                r->again = false;
                round_start(r);
                return;
        }
        call_waiters(r);
}

static void set_error(Recurring *r, const char *type, char *message) {
        g_hash_table_replace(r->errors, g_strdup(type), message);
}

/* ---- one type's units ---- */

static Op *op_free(Op *o) {
        if (!o)
                return NULL;
        sd_bus_slot_unref(o->slot);
        sd_event_source_disable_unref(o->retry);
        schedule_free(o->start);
        g_free(o->type);
        return (g_free(o), NULL);
}

static void op_destroy(gpointer o) {
        op_free(o);
}

static void op_finish(Op *o) {
        Recurring *r = o->recurring;

        g_hash_table_remove(r->ops, o->type);   /* frees o */
        round_maybe_end(r);
}

static void on_unit_stopped(const char *unit, int error, void *userdata) {
        Op *o = userdata;

        if (error < 0)
                /* the start that follows fails with UnitExists and says so */
                log_internal(LOG_WARNING, error, 0, o->type, NULL, "Failed to stop %s, ignoring: %m", unit);
        else if (error > 0)
                log_internal(LOG_DEBUG, 0, 0, o->type, NULL, "Stopped %s.", unit);

        assert(o->n_stops > 0);
        if (--o->n_stops == 0)
                op_stopped(o);
}

static void op_stop(Op *o, bool timer, bool service) {
        const char *suffixes[] = { timer ? ".timer" : NULL, service ? ".service" : NULL };
        int r;

        for (size_t i = 0; i < G_N_ELEMENTS(suffixes); i++) {
                g_autofree char *unit = NULL;

                if (!suffixes[i])
                        continue;
                unit = unit_name(o->type, suffixes[i]);
                r = runner_stop_unit(o->recurring->runner, unit, on_unit_stopped, o);
                if (r < 0)
                        log_internal(LOG_WARNING, r, 0, o->type, NULL, "Failed to stop %s, ignoring: %m", unit);
                else
                        o->n_stops++;
        }
        if (o->n_stops == 0)
                op_stopped(o);
}

static int append_timer_properties(sd_bus_message *m, const Schedule *s) {
        int r;

        r = sd_bus_message_open_container(m, 'a', "(sv)");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "(sv)(sv)(sv)(sv)",
                                  "Description", "s", s->description,
                                  "Persistent", "b", s->persistent,
                                  "RemainAfterElapse", "b", false,
                                  /* a failed timer must not stay loaded and block its successor */
                                  "CollectMode", "s", "inactive-or-failed");
        if (r >= 0 && s->accuracy_usec > 0)
                r = sd_bus_message_append(m, "(sv)", "AccuracyUSec", "t", s->accuracy_usec);
        if (r >= 0)
                r = sd_bus_message_append(m, "(sv)", "TimersCalendar", "a(ss)", 1, "OnCalendar", s->on_calendar);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(m);
}

static int append_exec(sd_bus_message *m, const Recurring *r, const Schedule *s) {
        g_autofree char *key = g_strconcat("--unique-key=" UNIQUE_KEY_PREFIX, s->type, NULL);
        /* "--": parameters such as -1 are not options */
        const char *words[] = { "submit", key, "--", s->type, s->parameters };
        g_autoptr(GPtrArray) argv = g_ptr_array_new();
        int k;

        g_ptr_array_add(argv, r->jobctl);
        if (r->user_mode)       /* jobctl talks to the system's jobd unless told */
                g_ptr_array_add(argv, "--user");
        for (size_t i = 0; i < G_N_ELEMENTS(words); i++)
                g_ptr_array_add(argv, (char *) words[i]);
        g_ptr_array_add(argv, NULL);

        k = sd_bus_message_open_container(m, 'r', "sv");
        if (k >= 0)
                k = sd_bus_message_append(m, "s", "ExecStartEx");
        if (k >= 0)
                k = sd_bus_message_open_container(m, 'v', "a(sasas)");
        if (k >= 0)
                k = sd_bus_message_open_container(m, 'a', "(sasas)");
        if (k >= 0)
                k = sd_bus_message_open_container(m, 'r', "sasas");
        if (k >= 0)
                k = sd_bus_message_append(m, "s", r->jobctl);
        if (k >= 0)
                k = sd_bus_message_append_strv(m, (char **) argv->pdata);
        /* the parameters are JSON, not for systemd to expand $VARIABLES in */
        if (k >= 0)
                k = sd_bus_message_append(m, "as", 1, "no-env-expand");
        for (int i = 0; k >= 0 && i < 4; i++)
                k = sd_bus_message_close_container(m);
        return k;
}

static int append_service(sd_bus_message *m, const Recurring *r, const Schedule *s) {
        g_autofree char *service = unit_name(s->type, ".service");
        g_autofree char *description = g_strdup_printf("jobd: submit a scheduled %s job", s->type);
        int k;

        k = sd_bus_message_open_container(m, 'a', "(sa(sv))");
        if (k >= 0)
                k = sd_bus_message_open_container(m, 'r', "sa(sv)");
        if (k >= 0)
                k = sd_bus_message_append(m, "s", service);
        if (k >= 0)
                k = sd_bus_message_open_container(m, 'a', "(sv)");
        if (k >= 0)
                k = sd_bus_message_append(m, "(sv)(sv)(sv)",
                                          "Description", "s", description,
                                          /* active while jobctl runs: a firing meanwhile is a no-op */
                                          "Type", "s", "oneshot",
                                          "CollectMode", "s", "inactive-or-failed");
        if (k >= 0)
                k = append_exec(m, r, s);
        for (int i = 0; k >= 0 && i < 3; i++)
                k = sd_bus_message_close_container(m);
        return k;
}

static int on_start_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error);

static int op_send_start(Op *o) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        const Schedule *s = o->start;
        g_autofree char *timer = unit_name(s->type, ".timer");
        int r;

        r = sd_bus_message_new_method_call(o->recurring->bus, &m, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER,
                                           "StartTransientUnit");
        if (r >= 0)
                r = sd_bus_message_append(m, "ss", timer, "fail");
        if (r >= 0)
                r = append_timer_properties(m, s);
        if (r >= 0)
                r = append_service(m, o->recurring, s);
        if (r < 0)
                return r;

        o->n_tries++;
        return sd_bus_call_async(o->recurring->bus, &o->slot, m, on_start_reply, o, 0);
}

static void op_failed(Op *o, const char *why) {
        const Schedule *s = o->start;

        log_internal(LOG_WARNING, 0, 0, s->type, NULL,
                     "%s: [Schedule] OnCalendar=%s: systemd refused the timer " RECURRING_UNIT_PREFIX
                     "%s.timer: %s", s->path ?: s->type, s->on_calendar, s->type, why);
        set_error(o->recurring, s->type,
                  g_strdup_printf("%s: OnCalendar=%s: systemd refused the timer: %s", s->path ?: s->type,
                                  s->on_calendar, why));
}

static int on_retry(sd_event_source *source, uint64_t usec, void *userdata) {
        Op *o = userdata;
        int r;

        o->retry = sd_event_source_disable_unref(o->retry);
        r = op_send_start(o);
        if (r < 0) {
                op_failed(o, g_strerror(-r));
                op_finish(o);
        }
        return 0;
}

static int on_start_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Op *o = userdata;
        const sd_bus_error *error = sd_bus_message_get_error(reply);
        const Schedule *s = o->start;
        int r;

        o->slot = sd_bus_slot_unref(o->slot);
        if (!error) {
                g_hash_table_remove(o->recurring->errors, s->type);
                log_internal(LOG_INFO, 0, 0, s->type, NULL,
                             "Type %s is scheduled: " RECURRING_UNIT_PREFIX "%s.timer, OnCalendar=%s.",
                             s->type, s->type, s->on_calendar);
                op_finish(o);
                return 0;
        }

        if (sd_bus_error_has_name(error, SYSTEMD_UNIT_EXISTS) && o->n_tries < START_TRIES_MAX) {
                r = sd_event_add_time_relative(sd_bus_get_event(o->recurring->bus), &o->retry, CLOCK_MONOTONIC,
                                               START_RETRY_USEC, 0, on_retry, o);
                if (r >= 0) {
                        (void) sd_event_source_set_description(o->retry, "schedule-start-retry");
                        return 0;
                }
        }

        op_failed(o, error->message ?: error->name);
        op_finish(o);
        return 0;
}

static void op_stopped(Op *o) {
        int r;

        if (!o->start) {
                log_internal(LOG_INFO, 0, 0, o->type, NULL, "Type %s is no longer scheduled.", o->type);
                op_finish(o);
                return;
        }
        r = op_send_start(o);
        if (r < 0) {
                op_failed(o, g_strerror(-r));
                op_finish(o);
        }
}

/* ---- a round ---- */

typedef struct Found {
        char *timer_description;        /* NULL: no timer */
        bool timer_active;
        bool service;
} Found;

static void found_destroy(gpointer p) {
        Found *f = p;

        g_free(f->timer_description);
        g_free(f);
}

static int read_units(sd_bus_message *reply, GHashTable *found) {
        const char *name, *description, *active;
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "(ssssssouso)");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_read(reply, "(ssssssouso)", &name, &description, NULL, &active, NULL, NULL,
                                        NULL, NULL, NULL, NULL)) > 0) {
                g_autofree char *type = unit_type(name);
                Found *f;

                if (!type)
                        continue;
                f = g_hash_table_lookup(found, type);
                if (!f) {
                        f = g_new0(Found, 1);
                        g_hash_table_insert(found, g_strdup(type), f);
                }
                if (g_str_has_suffix(name, ".timer")) {
                        g_free(f->timer_description);
                        f->timer_description = g_strdup(description);
                        f->timer_active = g_str_equal(active, "active");
                } else
                        f->service = true;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(reply);
}

/* What the type needs: nothing, or an Op stopping what exists and making what is wanted. */
static void plan_type(Recurring *r, const char *type, const Found *f) {
        const Schedule *want = g_hash_table_lookup(r->wanted, type);
        Op *o;

        if (want && f && f->timer_active && g_strcmp0(f->timer_description, want->description) == 0) {
                g_hash_table_remove(r->errors, type);
                return;
        }
        if (!want && !f)
                return;

        o = g_new0(Op, 1);
        o->recurring = r;
        o->type = g_strdup(type);
        o->start = want ? schedule_dup(want) : NULL;
        g_hash_table_insert(r->ops, o->type, o);
        op_stop(o, f && f->timer_description, f && f->service);
}

static gboolean error_is_stale(gpointer type, gpointer message, gpointer wanted) {
        return !g_hash_table_contains(wanted, type);
}

/* Without the list nothing can be planned: every wanted schedule says why it is not in effect. */
static void round_failed(Recurring *r, const char *why) {
        g_autofree char *message = g_strdup_printf("cannot list jobd's timers: %s", why);
        GHashTableIter it;
        gpointer key;

        log_warning("Schedules not updated: %s", message);
        g_hash_table_iter_init(&it, r->wanted);
        while (g_hash_table_iter_next(&it, &key, NULL))
                set_error(r, key, g_strdup(message));
        round_maybe_end(r);
}

static int on_list_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Recurring *r = userdata;
        const sd_bus_error *error = sd_bus_message_get_error(reply);
        g_autoptr(GHashTable) found = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, found_destroy);
        g_autoptr(GPtrArray) types = g_ptr_array_new_with_free_func(g_free);
        GHashTableIter it;
        gpointer key;
        int k;

        /* list_slot stays set while planning, so an Op that ends at once cannot end the round */
        g_hash_table_foreach_remove(r->errors, error_is_stale, r->wanted);

        k = error ? -sd_bus_error_get_errno(error) : read_units(reply, found);
        if (k < 0) {
                r->list_slot = sd_bus_slot_unref(r->list_slot);
                round_failed(r, error ? error->message : g_strerror(-k));
                return 0;
        }

        /* plan from a list of names: an Op may end (and touch the tables) as soon as it exists */
        g_hash_table_iter_init(&it, r->wanted);
        while (g_hash_table_iter_next(&it, &key, NULL))
                g_ptr_array_add(types, g_strdup(key));
        g_hash_table_iter_init(&it, found);
        while (g_hash_table_iter_next(&it, &key, NULL))
                if (!g_hash_table_contains(r->wanted, key))
                        g_ptr_array_add(types, g_strdup(key));
        for (guint i = 0; i < types->len; i++)
                plan_type(r, types->pdata[i], g_hash_table_lookup(found, types->pdata[i]));

        r->list_slot = sd_bus_slot_unref(r->list_slot);
        round_maybe_end(r);
        return 0;
}

static void round_start(Recurring *r) {
        int k;

        r->busy = true;
        /* no states: a failed or inactive leftover must be found too */
        k = sd_bus_call_method_async(r->bus, &r->list_slot, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER,
                                     "ListUnitsByPatterns", on_list_reply, r, "asas", 0, 2,
                                     RECURRING_UNIT_PREFIX "*.timer", RECURRING_UNIT_PREFIX "*.service");
        if (k < 0)
                round_failed(r, g_strerror(-k));
}

/* ---- the module ---- */

int recurring_new(Recurring **ret, sd_bus *bus, Runner *runner, bool user_mode, const char *jobctl,
                  char *const *own_dirs) {
        g_autoptr(Recurring) r = NULL;

        if (!ret || !bus || !runner || !jobctl || !g_path_is_absolute(jobctl))
                return -EINVAL;

        r = g_new0(Recurring, 1);
        r->bus = sd_bus_ref(bus);
        r->runner = runner;
        r->user_mode = user_mode;
        r->jobctl = g_strdup(jobctl);
        r->own_dirs = own_dirs ? g_strdupv((char **) own_dirs) : NULL;
        r->wanted = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, schedule_destroy);
        r->ignored = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        r->errors = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        r->ops = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, op_destroy);
        r->waiters = g_array_new(FALSE, FALSE, sizeof(Waiter));

        *ret = g_steal_pointer(&r);
        return 0;
}

Recurring *recurring_free(Recurring *r) {
        if (!r)
                return NULL;

        /* nobody is kept waiting for a sync that will not end */
        r->list_slot = sd_bus_slot_unref(r->list_slot);
        g_hash_table_remove_all(r->ops);
        r->again = false;
        call_waiters(r);

        g_hash_table_unref(r->ops);
        g_array_unref(r->waiters);
        g_hash_table_unref(r->wanted);
        g_hash_table_unref(r->ignored);
        g_hash_table_unref(r->errors);
        g_strfreev(r->own_dirs);
        g_free(r->jobctl);
        sd_bus_unref(r->bus);
        return (g_free(r), NULL);
}

int recurring_sync(Recurring *r, GHashTable *types) {
        GHashTableIter it;
        gpointer value;

        if (!r || !types)
                return -EINVAL;

        g_hash_table_remove_all(r->wanted);
        g_hash_table_remove_all(r->ignored);
        g_hash_table_iter_init(&it, types);
        while (g_hash_table_iter_next(&it, NULL, &value)) {
                const JobType *t = value;

                if (!t->on_calendar)
                        continue;
                if (!in_own_dirs(r, t->path)) {
                        g_hash_table_insert(r->ignored, g_strdup(t->name),
                                            g_strdup_printf("%s: not scheduled: in user mode only the types in "
                                                            "your own folders are (copy the file to %s)",
                                                            t->path, r->own_dirs[0] ?: "one"));
                        continue;
                }
                g_hash_table_insert(r->wanted, g_strdup(t->name), schedule_new(r, t));
        }

        if (r->busy)
                r->again = true;
        else
                round_start(r);
        return 0;
}

void recurring_when_idle(Recurring *r, RecurringIdleFn fn, void *userdata) {
        if (!r->busy) {
                fn(r, userdata);
                return;
        }
        g_array_append_val(r->waiters, ((Waiter) { .fn = fn, .userdata = userdata }));
}

const char *recurring_get_error(Recurring *r, const char *type) {
        const char *e;

        if (!r || !type)
                return NULL;
        e = g_hash_table_lookup(r->errors, type);
        return e ?: g_hash_table_lookup(r->ignored, type);
}
