/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Stateless helpers; the Caller struct owns its group array. */

#include <errno.h>
#include <stdarg.h>
#include <unistd.h>

#include "bus-util.h"
#include "jobd-names.h"

void caller_done(Caller *c) {
        g_clear_pointer(&c->groups, g_array_unref);
}

int bus_query_caller(sd_bus_message *m, Caller *ret) {
        sd_bus_creds *creds = NULL;
        const gid_t *gids = NULL;
        uid_t uid;
        gid_t gid;
        int r, n;

        /* No SD_BUS_CREDS_AUGMENT: what the bus daemon vouches for, never racy /proc reads. */
        r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID | SD_BUS_CREDS_EGID |
                                      SD_BUS_CREDS_SUPPLEMENTARY_GIDS, &creds);
        if (r < 0)
                return r;
        r = sd_bus_creds_get_euid(creds, &uid);
        if (r < 0) {
                sd_bus_creds_unref(creds);
                return r;
        }
        if (sd_bus_creds_get_egid(creds, &gid) < 0)
                gid = (gid_t) -1;
        n = sd_bus_creds_get_supplementary_gids(creds, &gids);

        ret->uid = uid;
        ret->gid = gid;
        ret->groups = g_array_new(FALSE, FALSE, sizeof(gid_t));
        if (n > 0)
                g_array_append_vals(ret->groups, gids, n);
        sd_bus_creds_unref(creds);
        return 0;
}

bool caller_owns(const Caller *c, const Job *j) {
        return c->uid == 0 || c->uid == j->owner;
}

int bus_refuse(sd_bus_error *error, const char *name, const char *format, ...) {
        va_list ap;
        int r;

        va_start(ap, format);
        r = sd_bus_error_setfv(error, name, format, ap);
        va_end(ap);
        return r;
}

int bus_enter_option(sd_bus_message *m, const char *key, const char *want, sd_bus_error *error) {
        const char *contents;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        if (type != SD_BUS_TYPE_VARIANT || !g_str_equal(contents, want))
                return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                                  "Option '%s' takes a value of D-Bus type '%s', not '%s'.",
                                  key, want, contents ?: "?");
        return sd_bus_message_enter_container(m, SD_BUS_TYPE_VARIANT, want);
}
