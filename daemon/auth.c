/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Owns the polkit client and the bus filter that asks it. Invariant: a call reaches a protected
 * handler or getter either from its job's owner or root, or once polkit's answer for its sender is
 * known (YES or NO), so the synchronous checks below never need to wait; a call polkit has not
 * answered for yet is parked in polkit.c and re-queued with the answer.
 *
 * The filter runs before arguments are validated (a Cancel of a finished job by an administrator
 * asks polkit first, then gets InvalidState): it must decide before sd-bus dispatches. Calls that
 * the filter does not recognise as protected are never parked; their handlers refuse without
 * polkit, which is the safe side.
 */

#include <errno.h>

#include "auth.h"
#include "jobd-names.h"
#include "log.h"
#include "polkit.h"

static const char *const protected_properties[] = { "Parameters", "Result", "Error", "Outputs", NULL };

static bool is_protected_job_call(sd_bus_message *msg) {
        const char *interface = sd_bus_message_get_interface(msg);
        const char *member = sd_bus_message_get_member(msg);
        const char *iface = NULL, *property = NULL;
        bool protected = false;

        if (!member)
                return false;
        /* sd-bus dispatches a call without an interface by member name too */
        if (!interface || g_str_equal(interface, JOBD_JOB_INTERFACE))
                return g_str_equal(member, "Cancel") || g_str_equal(member, "Retry") ||
                        g_str_equal(member, "Follow") || g_str_equal(member, "GetOutput");
        if (!g_str_equal(interface, "org.freedesktop.DBus.Properties"))
                return false;

        if (g_str_equal(member, "GetAll"))
                protected = sd_bus_message_read(msg, "s", &iface) >= 0 &&
                        (*iface == '\0' || g_str_equal(iface, JOBD_JOB_INTERFACE));
        else if (g_str_equal(member, "Get"))
                protected = sd_bus_message_read(msg, "ss", &iface, &property) >= 0 &&
                        g_str_equal(iface, JOBD_JOB_INTERFACE) &&
                        g_strv_contains(protected_properties, property);
        (void) sd_bus_message_rewind(msg, true);
        return protected;
}

static bool is_admin_call(sd_bus_message *msg) {
        const char *interface = sd_bus_message_get_interface(msg);
        const char *member = sd_bus_message_get_member(msg);

        if (!member || (interface && !g_str_equal(interface, JOBD_MANAGER_INTERFACE)))
                return false;
        return g_str_equal(member, "Reload") || g_str_equal(member, "PauseType") ||
                g_str_equal(member, "ResumeType");
}

static int on_call(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        const char *path = sd_bus_message_get_path(msg);
        bool interactive = sd_bus_message_get_allow_interactive_authorization(msg) > 0;
        g_auto(Caller) caller = {};
        const Job *j = NULL;
        uint8_t type;
        uint64_t id;
        int r;

        if (sd_bus_message_get_type(msg, &type) < 0 || type != SD_BUS_MESSAGE_METHOD_CALL || !path)
                return 0;
        if (job_id_from_path(path, &id) >= 0) {
                j = manager_get_job(m, id);
                if (!j || !is_protected_job_call(msg))
                        return 0;       /* NoSuchJob, or nothing to decide */
        } else if (!g_str_equal(path, JOBD_MANAGER_PATH) || !is_admin_call(msg))
                return 0;

        if (polkit_lookup(m->polkit, sd_bus_message_get_sender(msg), AUTH_ACTION_MANAGE, interactive) !=
            POLKIT_UNKNOWN)
                return 0;
        if (bus_query_caller(msg, m->callers, &caller) < 0)
                return 0;               /* the handler meets the same failure and reports it */
        if (caller_is_admin(m, &caller) || (j && caller.uid == j->owner))
                return 0;

        r = polkit_park(m->polkit, msg, AUTH_ACTION_MANAGE);
        if (r < 0) {
                log_debug("Not asking polkit about %s: %s", sd_bus_message_get_sender(msg), g_strerror(-r));
                return 0;               /* the handler refuses: no answer reads as no */
        }
        return 1;                       /* parked: dispatched again once polkit answered */
}

int auth_setup(Manager *m) {
        int r;

        if (m->user_mode)
                return 0;
        r = polkit_new(&m->polkit, m->bus);
        if (r < 0)
                return r;
        return sd_bus_add_filter(m->bus, &m->auth_filter, on_call, m);
}

void auth_teardown(Manager *m) {
        m->auth_filter = sd_bus_slot_unref(m->auth_filter);
        m->polkit = polkit_free(m->polkit);
}

bool auth_is_admin(Manager *m, sd_bus_message *call, const Caller *c) {
        return caller_is_admin(m, c) ||
                polkit_lookup(m->polkit, sd_bus_message_get_sender(call), AUTH_ACTION_MANAGE, false) == POLKIT_YES;
}

bool auth_may_manage(Manager *m, sd_bus_message *call, const Caller *c, const Job *j) {
        return c->uid == j->owner || auth_is_admin(m, call, c);
}

bool auth_may_see(Manager *m, sd_bus *bus, const Job *j) {
        sd_bus_message *call = sd_bus_get_current_message(bus);
        g_auto(Caller) caller = {};

        /* no call being answered: an emission, which only ever invalidates protected properties */
        if (!call || bus_query_caller(call, m->callers, &caller) < 0)
                return false;
        return auth_may_manage(m, call, &caller, j);
}

int auth_check_job(Manager *m, sd_bus_message *call, const Job *j, const char *what, sd_bus_error *error) {
        g_auto(Caller) caller = {};
        int r;

        r = bus_query_caller(call, m->callers, &caller);
        if (r < 0)
                return r;
        if (auth_may_manage(m, call, &caller, j))
                return 0;
        return bus_refuse(error, JOBD_ERROR_ACCESS_DENIED,
                          "Job %" G_GUINT64_FORMAT " belongs to uid %u; only its owner, root or an administrator "
                          "authorized by polkit for " AUTH_ACTION_MANAGE " may %s.",
                          j->id, (unsigned) j->owner, what);
}

int auth_check_admin(Manager *m, sd_bus_message *call, sd_bus_error *error) {
        g_auto(Caller) caller = {};
        int r;

        r = bus_query_caller(call, m->callers, &caller);
        if (r < 0)
                return r;
        if (auth_is_admin(m, call, &caller))
                return 0;
        return bus_refuse(error, JOBD_ERROR_ACCESS_DENIED,
                          "%s is for root and administrators authorized by polkit for " AUTH_ACTION_MANAGE
                          " (uid %u is neither); run it with sudo, or see the polkit rule in jobd's README.",
                          sd_bus_message_get_member(call), (unsigned) caller.uid);
}
