/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Owns, per unique bus name that was asked about: its NameOwnerChanged match and its answers (one
 * PolkitEntry per action: the answer, the question on its way, the calls parked on it).
 * Invariants: a parked call is re-queued exactly once, when its entry's question is answered (or
 * dropped with its name or the Polkit); an entry has at most one question on its way; a name with
 * a question on its way or parked calls is never evicted.
 *
 * A failure to ask (polkit not installed, not running, timed out) reads as NO, also for the parked
 * calls, so a re-queued call never parks again on the same question; it stays NO for that
 * connection, like any answer.
 */

#include <errno.h>

#include "cleanup.h"
#include "log.h"
#include "polkit.h"

#define POLKIT_DEST      "org.freedesktop.PolicyKit1"
#define POLKIT_PATH      "/org/freedesktop/PolicyKit1/Authority"
#define POLKIT_INTERFACE "org.freedesktop.PolicyKit1.Authority"
#define POLKIT_FLAG_ALLOW_USER_INTERACTION 1u
/* Without interaction polkit answers at once, unless it is not running and cannot be started: then
 * dbus-daemon only gives up on its activation after 25 s, when the caller's own call (25 s by default)
 * has timed out too. Answer "no" well before. With interaction a person may be typing a password. */
#define POLKIT_TIMEOUT_USEC (UINT64_C(10) * 1000000)
#define POLKIT_INTERACTIVE_TIMEOUT_USEC (UINT64_C(300) * 1000000)

typedef struct PolkitName PolkitName;

typedef struct PolkitEntry {
        PolkitName *name;               /* borrowed back-pointer */
        char *action;
        PolkitAnswer answer;
        bool answered_interactive;      /* that answer was given with interaction allowed */
        sd_bus_slot *query;             /* CheckAuthorization on its way */
        bool query_interactive;         /* … with interaction allowed */
        GPtrArray *parked;              /* sd_bus_message*, one reference each */
} PolkitEntry;

struct PolkitName {
        Polkit *polkit;                 /* borrowed back-pointer */
        char *name;
        sd_bus_slot *gone;              /* NameOwnerChanged, arg0=name */
        GHashTable *entries;            /* action (owned by the entry) → PolkitEntry* */
};

struct Polkit {
        sd_bus *bus;
        GHashTable *names;              /* unique name (owned by the PolkitName) → PolkitName* */
        bool warned;                    /* "polkit could not be asked" is logged once */
};

static void message_unref(gpointer m) {
        sd_bus_message_unref(m);
}

static void entry_free(gpointer p) {
        PolkitEntry *e = p;

        sd_bus_slot_unref(e->query);
        g_ptr_array_unref(e->parked);   /* the calls' senders are gone, or jobd is: nobody to answer */
        g_free(e->action);
        g_free(e);
}

static void name_free(gpointer p) {
        PolkitName *n = p;

        sd_bus_slot_unref(n->gone);
        g_hash_table_unref(n->entries);
        g_free(n->name);
        g_free(n);
}

static bool name_busy(PolkitName *n) {
        GHashTableIter it;
        gpointer v;

        g_hash_table_iter_init(&it, n->entries);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                PolkitEntry *e = v;
                if (e->query || e->parked->len > 0)
                        return true;
        }
        return false;
}

int polkit_new(Polkit **ret, sd_bus *bus) {
        Polkit *p = g_new0(Polkit, 1);

        p->bus = sd_bus_ref(bus);
        p->names = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, name_free);
        *ret = p;
        return 0;
}

Polkit *polkit_free(Polkit *p) {
        if (!p)
                return NULL;
        g_hash_table_unref(p->names);
        sd_bus_unref(p->bus);
        return g_free(p), NULL;
}

static PolkitEntry *entry_find(Polkit *p, const char *sender, const char *action) {
        PolkitName *n = sender ? g_hash_table_lookup(p->names, sender) : NULL;

        return n ? g_hash_table_lookup(n->entries, action) : NULL;
}

PolkitAnswer polkit_lookup(Polkit *p, const char *sender, const char *action, bool interactive) {
        PolkitEntry *e = p ? entry_find(p, sender, action) : NULL;

        if (!e || e->answer == POLKIT_UNKNOWN)
                return POLKIT_UNKNOWN;
        if (e->answer == POLKIT_NO && interactive && !e->answered_interactive)
                return POLKIT_UNKNOWN;
        return e->answer;
}

static int on_name_owner_changed(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        PolkitName *n = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(msg, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        if (*new_owner == '\0' && g_str_equal(name, n->name))
                g_hash_table_remove(n->polkit->names, n->name);      /* frees n */
        return 0;
}

/* Idle names go first when the table is full: their answers are only a cache. */
static void evict_idle(Polkit *p) {
        GHashTableIter it;
        gpointer v;

        g_hash_table_iter_init(&it, p->names);
        while (g_hash_table_iter_next(&it, NULL, &v))
                if (!name_busy(v))
                        g_hash_table_iter_remove(&it);
}

static int name_get(Polkit *p, const char *sender, PolkitName **ret) {
        g_autofree char *rule = NULL;
        PolkitName *n;
        int r;

        n = g_hash_table_lookup(p->names, sender);
        if (n) {
                *ret = n;
                return 0;
        }
        if (g_hash_table_size(p->names) >= POLKIT_NAMES_MAX)
                evict_idle(p);
        if (g_hash_table_size(p->names) >= POLKIT_NAMES_MAX)
                return -EBUSY;

        n = g_new0(PolkitName, 1);
        n->polkit = p;
        n->name = g_strdup(sender);
        n->entries = g_hash_table_new_full(g_str_hash, g_str_equal, NULL, entry_free);
        /* installed before the question goes out (same connection, so in this order): a name
         * that leaves while polkit thinks is forgotten */
        rule = g_strdup_printf("type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                               "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='%s'", sender);
        r = sd_bus_add_match_async(p->bus, &n->gone, rule, on_name_owner_changed, NULL, n);
        if (r < 0) {
                name_free(n);
                return r;
        }
        g_hash_table_insert(p->names, n->name, n);
        *ret = n;
        return 0;
}

static void entry_release_parked(PolkitEntry *e) {
        g_autoptr(GPtrArray) parked = g_steal_pointer(&e->parked);

        e->parked = g_ptr_array_new_with_free_func(message_unref);
        for (guint i = 0; i < parked->len; i++) {
                sd_bus_message *call = parked->pdata[i];
                int r = sd_bus_enqueue_for_read(e->name->polkit->bus, call);

                if (r < 0)
                        (void) sd_bus_reply_method_errnof(call, -r, "Failed to resume the call after "
                                                          "asking polkit: %m");
        }
}

static int read_answer(sd_bus_message *reply, bool *ret_authorized) {
        int authorized, challenge, r;

        r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "bb", &authorized, &challenge);
        if (r < 0)
                return r;
        *ret_authorized = authorized;
        return 0;
}

static int on_check_reply(sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        PolkitEntry *e = userdata;
        Polkit *p = e->name->polkit;
        const sd_bus_error *failure = sd_bus_message_get_error(reply);
        bool authorized = false;
        int r = 0;

        e->query = sd_bus_slot_unref(e->query);
        if (failure)
                r = -sd_bus_error_get_errno(failure);
        else
                r = read_answer(reply, &authorized);
        if (r < 0 && !p->warned) {
                p->warned = true;
                log_warning("Could not ask polkit whether %s may %s (%s); only owners and root are "
                            "authorized until it answers.", e->name->name, e->action,
                            failure ? failure->message : g_strerror(-r));
        }
        e->answer = authorized ? POLKIT_YES : POLKIT_NO;
        e->answered_interactive = e->query_interactive;
        log_debug("polkit: %s %s %s.", e->name->name, authorized ? "may" : "may not", e->action);
        entry_release_parked(e);
        return 0;
}

static int entry_ask(PolkitEntry *e, bool interactive) {
        Polkit *p = e->name->polkit;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *req = NULL;
        int r;

        r = sd_bus_message_new_method_call(p->bus, &req, POLKIT_DEST, POLKIT_PATH, POLKIT_INTERFACE,
                                           "CheckAuthorization");
        if (r < 0)
                return r;
        r = sd_bus_message_append(req, "(sa{sv})s", "system-bus-name", 1, "name", "s", e->name->name,
                                  e->action);
        if (r < 0)
                return r;
        r = sd_bus_message_append(req, "a{ss}us", 0, interactive ? POLKIT_FLAG_ALLOW_USER_INTERACTION : 0u, "");
        if (r < 0)
                return r;
        r = sd_bus_call_async(p->bus, &e->query, req, on_check_reply, e,
                              interactive ? POLKIT_INTERACTIVE_TIMEOUT_USEC : POLKIT_TIMEOUT_USEC);
        if (r < 0)
                return r;
        e->query_interactive = interactive;
        return 0;
}

int polkit_park(Polkit *p, sd_bus_message *call, const char *action) {
        const char *sender = sd_bus_message_get_sender(call);
        bool interactive = sd_bus_message_get_allow_interactive_authorization(call) > 0;
        PolkitName *n;
        PolkitEntry *e;
        int r;

        if (!sender)
                return -EBADMSG;
        r = name_get(p, sender, &n);
        if (r < 0)
                return r;
        e = g_hash_table_lookup(n->entries, action);
        if (!e) {
                e = g_new0(PolkitEntry, 1);
                e->name = n;
                e->action = g_strdup(action);
                e->parked = g_ptr_array_new_with_free_func(message_unref);
                g_hash_table_insert(n->entries, e->action, e);
        }
        if (e->parked->len >= POLKIT_PARKED_MAX)
                return -EBUSY;
        /* one question at a time: a call that allows interaction and finds a question without it on
         * its way waits for that answer, and asks again with interaction if it is NO */
        if (!e->query) {
                r = entry_ask(e, interactive);
                if (r < 0) {
                        e->answer = POLKIT_NO;
                        e->answered_interactive = true;
                        return r;
                }
        }
        g_ptr_array_add(e->parked, sd_bus_message_ref(call));
        return 1;
}
