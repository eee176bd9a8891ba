/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Owns the parked Claims (Waiter: a reference to the call, its types, a timeout source), the set
 * of claimed jobs ordered by lease deadline with one timer for the earliest, and per tracked
 * worker name a NameOwnerChanged match. Invariants: a job is in m->leases exactly while
 * j->claimed; a Waiter is answered exactly once (a job, or id 0 at its timeout) and then freed;
 * a tracked name's match lives while it holds a tracked attempt.
 */

#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "bus-util.h"
#include "execute.h"
#include "idle.h"
#include "jobd-names.h"
#include "lease.h"
#include "log.h"

typedef struct Waiter {
        Manager *manager;
        sd_bus_message *msg;
        char **types;
        char *sender;
        bool track;
        bool fds;                       /* its connection can carry fds (not over SSH) */
        sd_event_source *timeout;
        sd_bus_slot *gone_match;        /* its connection leaving the bus drops it */
        sd_bus_slot *gone_check;
        GList *link;
} Waiter;

typedef struct TrackedWorker {
        Manager *manager;
        char *name;
        sd_bus_slot *match;
        sd_bus_slot *check;             /* GetNameOwner: was it gone before the match existed? */
        GHashTable *ids;                /* &id (owned) set of its tracked attempts */
} TrackedWorker;

static gint lease_compare(gconstpointer a, gconstpointer b) {
        const Job *x = a, *y = b;

        if (x->deadline_usec != y->deadline_usec)
                return x->deadline_usec < y->deadline_usec ? -1 : 1;
        return x->id < y->id ? -1 : x->id > y->id;
}

static void tracked_free(gpointer p) {
        TrackedWorker *t = p;

        sd_bus_slot_unref(t->match);
        sd_bus_slot_unref(t->check);
        g_hash_table_unref(t->ids);
        g_free(t->name);
        g_free(t);
}

static void waiter_free(Waiter *w) {
        Manager *m = w->manager;
        unsigned n = GPOINTER_TO_UINT(g_hash_table_lookup(m->waiters_by_sender, w->sender));

        if (n <= 1)
                g_hash_table_remove(m->waiters_by_sender, w->sender);
        else
                g_hash_table_insert(m->waiters_by_sender, g_strdup(w->sender), GUINT_TO_POINTER(n - 1));
        g_queue_delete_link(m->waiters, w->link);
        sd_event_source_unref(w->timeout);
        sd_bus_slot_unref(w->gone_match);
        sd_bus_slot_unref(w->gone_check);
        sd_bus_message_unref(w->msg);
        g_strfreev(w->types);
        g_free(w->sender);
        g_free(w);
        /* a parked Claim keeps jobd from exiting while idle: its end restarts the idle period */
        idle_touch(m->idle);
}

static void arm_lease_timer(Manager *m) {
        GTreeNode *n = g_tree_node_first(m->leases);

        if (!n) {
                (void) sd_event_source_set_enabled(m->lease_source, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(m->lease_source, ((Job *) g_tree_node_value(n))->deadline_usec);
        (void) sd_event_source_set_enabled(m->lease_source, SD_EVENT_ONESHOT);
}

static void attempt_lost(Manager *m, Job *j, const char *why) {
        g_auto(Outcome) o = { .status = JOB_FAILED, .exit_status = -1, .retryable = true };

        o.error = g_strdup_printf("attempt %u lost: %s", j->attempt, why);
        manager_attempt_ended(m, j, &o);
}

static int on_lease_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        uint64_t now = (uint64_t) g_get_real_time();
        GTreeNode *n;

        while ((n = g_tree_node_first(m->leases)) && ((Job *) g_tree_node_value(n))->deadline_usec <= now) {
                Job *j = g_tree_node_value(n);
                g_autofree char *why = g_strdup_printf("the lease of worker %s expired without a Heartbeat",
                                                       j->worker ?: "?");
                attempt_lost(m, j, why);        /* lease_attempt_over() takes it out of the set */
        }
        arm_lease_timer(m);
        return 0;
}

void lease_setup(Manager *m) {
        m->waiters = g_queue_new();
        m->waiters_by_sender = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        m->leases = g_tree_new(lease_compare);
        m->tracked = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, tracked_free);
        if (sd_event_add_time(m->event, &m->lease_source, CLOCK_REALTIME, UINT64_MAX, 0, on_lease_timer, m) >= 0) {
                (void) sd_event_source_set_enabled(m->lease_source, SD_EVENT_OFF);
                (void) sd_event_source_set_description(m->lease_source, "lease-expiry");
        }
}

void lease_teardown(Manager *m) {
        while (m->waiters && !g_queue_is_empty(m->waiters))
                waiter_free(g_queue_peek_head(m->waiters));
        g_clear_pointer(&m->waiters, g_queue_free);
        g_clear_pointer(&m->waiters_by_sender, g_hash_table_unref);
        g_clear_pointer(&m->leases, g_tree_unref);
        g_clear_pointer(&m->tracked, g_hash_table_unref);
        m->lease_source = sd_event_source_unref(m->lease_source);
}

uint64_t lease_length(Manager *m, const Job *j) {
        JobType *t = manager_get_type(m, j->type);

        return t && t->timeout_usec > 0 ? t->timeout_usec : LEASE_DEFAULT_USEC;
}

void lease_extend(Manager *m, Job *j, uint64_t deadline_usec) {
        if (j->lease_node)
                g_tree_remove(m->leases, j);
        j->deadline_usec = deadline_usec;
        j->lease_node = g_tree_insert_node(m->leases, j, j);
        arm_lease_timer(m);
}

/* ---- tracked workers ---- */

static void worker_gone(Manager *m, const char *name) {
        TrackedWorker *t = g_hash_table_lookup(m->tracked, name);
        g_autoptr(GPtrArray) jobs = g_ptr_array_new();
        GHashTableIter it;
        gpointer key;

        if (!t)
                return;
        g_hash_table_iter_init(&it, t->ids);
        while (g_hash_table_iter_next(&it, &key, NULL)) {
                Job *j = manager_get_job(m, *(uint64_t *) key);
                if (j && j->claimed && g_strcmp0(j->worker, name) == 0)
                        g_ptr_array_add(jobs, j);
        }
        for (guint i = 0; i < jobs->len; i++) {
                g_autofree char *why = g_strdup_printf("worker %s left the bus", name);
                attempt_lost(m, jobs->pdata[i], why);
        }
        g_hash_table_remove(m->tracked, name);
}

static int on_name_owner_changed(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        TrackedWorker *t = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(msg, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        if (*new_owner == '\0' && g_str_equal(name, t->name))
                worker_gone(t->manager, name);       /* frees t */
        return 0;
}

static int on_name_owner_checked(sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        TrackedWorker *t = userdata;
        g_autofree char *name = NULL;

        /* it left before our match was in place: that signal will never come */
        if (sd_bus_message_is_method_error(reply, NULL)) {
                name = g_strdup(t->name);
                worker_gone(t->manager, name);
        }
        return 0;
}

static void track(Manager *m, Job *j) {
        TrackedWorker *t = g_hash_table_lookup(m->tracked, j->worker);
        g_autofree char *rule = NULL;
        int r;

        if (!t) {
                t = g_new0(TrackedWorker, 1);
                t->manager = m;
                t->name = g_strdup(j->worker);
                t->ids = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
                g_hash_table_insert(m->tracked, g_strdup(j->worker), t);
                rule = g_strdup_printf("type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                                       "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='%s'",
                                       j->worker);
                r = sd_bus_add_match(m->bus, &t->match, rule, on_name_owner_changed, t);
                if (r < 0)
                        log_warning_errno(r, "Failed to track worker %s, ignoring: %m", j->worker);
                r = sd_bus_call_method_async(m->bus, &t->check, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                             "org.freedesktop.DBus", "GetNameOwner", on_name_owner_checked, t,
                                             "s", j->worker);
                if (r < 0)
                        log_warning_errno(r, "Failed to check worker %s, ignoring: %m", j->worker);
        }
        g_hash_table_add(t->ids, g_memdup2(&j->id, sizeof(j->id)));
}

static void untrack(Manager *m, Job *j) {
        TrackedWorker *t = j->worker ? g_hash_table_lookup(m->tracked, j->worker) : NULL;

        if (!t)
                return;
        g_hash_table_remove(t->ids, &j->id);
        if (g_hash_table_size(t->ids) == 0)
                g_hash_table_remove(m->tracked, j->worker);
}

void lease_attempt_over(Manager *m, Job *j) {
        if (!j->claimed)
                return;
        if (j->lease_node) {
                g_tree_remove(m->leases, j);
                j->lease_node = NULL;
                arm_lease_timer(m);
        }
        if (j->tracked)
                untrack(m, j);
}

/* ---- Claim ---- */

static int reply_empty(sd_bus_message *msg) {
        return sd_bus_reply_method_return(msg, "tsssa{sv}", UINT64_C(0), "", "", "", 0);
}

static int reply_claimed(Manager *m, sd_bus_message *msg, Job *j) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(closep) int input_fd = -1;
        int r;

        if (j->has_input) {
                _cleanup_(closep) int spool = execute_open_spool(m, j->id, false);
                if (spool >= 0)
                        input_fd = openat(spool, "input", O_RDONLY|O_NOFOLLOW|O_CLOEXEC|O_NOCTTY);
        }

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "tsss", j->id, j->token, j->type, j->parameters ?: "{}");
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "{sv}");
        if (r >= 0)
                r = sd_bus_message_append(reply, "{sv}{sv}", "attempt", "u", j->attempt,
                                          "deadline_usec", "t", j->deadline_usec);
        if (r >= 0 && input_fd >= 0)
                r = sd_bus_message_append(reply, "{sv}", "input", "h", input_fd);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* A Claim is answered as soon as its record is queued, without waiting for its fsync: the
 * worker's Complete (or Fail, Release) comes after it in the journal and is answered only once
 * durable, which makes the claim durable with it. If jobd dies before that fsync, the claim is
 * forgotten: the job is pending again after the restart and the worker's token is refused as
 * StaleToken — never applied twice, never lost; the same as a lease running out. This halves
 * the fsyncs of a lone worker's cycle. */
static void claim_now(Manager *m, Job *j, sd_bus_message *msg, bool track_sender) {
        g_auto(Caller) caller = {};

        /* the attempt is the token's and this uid's (bus-job.c): a token that leaks to another user
         * is useless to them. Claim has asked already, so this is the callers cache. */
        j->worker_uid = bus_query_caller(msg, m->callers, &caller) >= 0 ? caller.uid : 0;
        manager_claim(m, j, sd_bus_message_get_sender(msg), track_sender, NULL, NULL);
        lease_extend(m, j, j->deadline_usec);
        if (j->tracked)
                track(m, j);
        if (reply_claimed(m, msg, j) < 0)
                log_warning("Failed to answer a Claim of job %" G_GUINT64_FORMAT ".", j->id);
}

/* A Claim whose caller left must not be handed a job nobody will ever see. */
static int on_waiter_gone(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Waiter *w = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(msg, "sss", &name, &old_owner, &new_owner) >= 0 && *new_owner == '\0')
                waiter_free(w);
        return 0;
}

static int on_waiter_checked(sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Waiter *w = userdata;

        w->gone_check = sd_bus_slot_unref(w->gone_check);
        if (sd_bus_message_is_method_error(reply, NULL))
                waiter_free(w);         /* it left before the match was in place */
        return 0;
}

static int waiter_watch(Manager *m, Waiter *w) {
        g_autofree char *rule = g_strdup_printf("type='signal',sender='org.freedesktop.DBus',"
                                                "path='/org/freedesktop/DBus',interface='org.freedesktop.DBus',"
                                                "member='NameOwnerChanged',arg0='%s'", w->sender);
        int r;

        r = sd_bus_add_match(m->bus, &w->gone_match, rule, on_waiter_gone, w);
        if (r < 0)
                return r;
        return sd_bus_call_method_async(m->bus, &w->gone_check, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                        "org.freedesktop.DBus", "GetNameOwner", on_waiter_checked, w,
                                        "s", w->sender);
}

static int on_waiter_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Waiter *w = userdata;

        (void) reply_empty(w->msg);
        waiter_free(w);
        return 0;
}

int lease_claim(Manager *m, sd_bus_message *msg, char **types, uint64_t wait_usec, bool track_sender,
                bool fds, sd_bus_error *error) {
        const char *sender = sd_bus_message_get_sender(msg);
        Job *j = manager_pick_pending(m, types, !fds);
        unsigned n;
        Waiter *w;
        int r;

        if (j) {
                claim_now(m, j, msg, track_sender);
                return 1;
        }
        if (wait_usec == 0)
                return reply_empty(msg);

        n = GPOINTER_TO_UINT(g_hash_table_lookup(m->waiters_by_sender, sender));
        if (n >= CLAIM_WAITERS_PER_CONNECTION || g_queue_get_length(m->waiters) >= CLAIM_WAITERS_MAX)
                return bus_refuse(error, JOBD_ERROR_QUOTA_EXCEEDED,
                                  "%u Claims are waiting already (at most %u per connection, %u in all); "
                                  "use another connection or wait for one to be answered.",
                                  n, CLAIM_WAITERS_PER_CONNECTION, CLAIM_WAITERS_MAX);

        w = g_new0(Waiter, 1);
        *w = (Waiter) { .manager = m, .msg = sd_bus_message_ref(msg), .types = g_strdupv(types),
                        .sender = g_strdup(sender), .track = track_sender, .fds = fds };
        g_queue_push_tail(m->waiters, w);
        w->link = g_queue_peek_tail_link(m->waiters);
        g_hash_table_insert(m->waiters_by_sender, g_strdup(sender), GUINT_TO_POINTER(n + 1));
        r = sd_event_add_time_relative(m->event, &w->timeout, CLOCK_MONOTONIC, wait_usec, 0, on_waiter_timeout, w);
        if (r >= 0)
                r = waiter_watch(m, w);
        if (r < 0) {
                waiter_free(w);
                return r;
        }
        return 1;
}

void lease_answer_waiters(Manager *m) {
        Waiter *w;

        while ((w = g_queue_peek_head(m->waiters))) {
                (void) reply_empty(w->msg);
                waiter_free(w);
        }
}

void lease_serve_waiters(Manager *m) {
        GList *l = m->waiters ? m->waiters->head : NULL;

        while (l) {
                Waiter *w = l->data;
                Job *j;

                l = l->next;
                j = manager_pick_pending(m, w->types, !w->fds);
                if (!j)
                        continue;
                claim_now(m, j, w->msg, w->track);
                waiter_free(w);
        }
}

static gboolean recover_one(gpointer key, gpointer value, gpointer userdata) {
        Manager *m = userdata;
        Job *j = value;

        if (j->status != JOB_RUNNING || !j->claimed)
                return FALSE;
        lease_extend(m, j, j->deadline_usec);
        if (j->tracked && j->worker)
                track(m, j);
        return FALSE;
}

void lease_recover(Manager *m) {
        g_tree_foreach(m->jobs, recover_one, m);
}
