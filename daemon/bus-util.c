/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Stateless helpers; the Caller struct owns its group array. */

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <unistd.h>

#include "bus-util.h"
#include "parse-util.h"
#include "jobd-names.h"
#include "manager.h"

void caller_done(Caller *c) {
        g_clear_pointer(&c->groups, g_array_unref);
        g_clear_pointer(&c->user_name, g_free);
}

static void caller_free(gpointer p) {
        caller_done(p);
        g_free(p);
}

GHashTable *caller_cache_new(void) {
        return g_hash_table_new_full(g_str_hash, g_str_equal, g_free, caller_free);
}

static void caller_copy(const Caller *from, Caller *to) {
        to->uid = from->uid;
        to->gid = from->gid;
        to->groups = g_array_copy(from->groups);
        to->user_name = g_strdup(from->user_name);
}

static int read_credentials(sd_bus_message *reply, Caller *c) {
        const char *key;
        int r;

        r = sd_bus_message_enter_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(reply, 'e', "sv")) > 0) {
                r = sd_bus_message_read_basic(reply, 's', &key);
                if (r < 0)
                        return r;
                if (g_str_equal(key, "UnixUserID"))
                        r = sd_bus_message_read(reply, "v", "u", &c->uid);
                else if (g_str_equal(key, "UnixGroupIDs")) {
                        const void *v;
                        size_t n;
                        r = sd_bus_message_enter_container(reply, 'v', "au");
                        if (r >= 0)
                                r = sd_bus_message_read_array(reply, 'u', &v, &n);
                        if (r >= 0) {
                                g_array_append_vals(c->groups, v, n / sizeof(uint32_t));
                                r = sd_bus_message_exit_container(reply);
                        }
                } else
                        r = sd_bus_message_skip(reply, "v");
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(reply);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(reply);
}

static void caller_lookup_user(Caller *c) {
        struct passwd pw, *result = NULL;
        char buf[4096];

        /* the primary group is the user database's: the bus only vouches for the group list */
        if (getpwuid_r(c->uid, &pw, buf, sizeof(buf), &result) == 0 && result) {
                c->gid = result->pw_gid;
                c->user_name = g_strdup(result->pw_name);
        }
}

int bus_query_caller(sd_bus_message *m, GHashTable *cache, Caller *ret) {
        sd_bus *bus = sd_bus_message_get_bus(m);
        const char *sender = sd_bus_message_get_sender(m);
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        Caller *cached, c = { .uid = (uid_t) -1, .gid = (gid_t) -1 };
        int r;

        if (!sender)
                return -EBADMSG;        /* a message bus always stamps the sender */
        cached = g_hash_table_lookup(cache, sender);
        if (cached) {
                caller_copy(cached, ret);
                return 0;
        }

        r = sd_bus_call_method(bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "GetConnectionCredentials", &error, &reply, "s", sender);
        if (r < 0)
                return r;
        c.groups = g_array_new(FALSE, FALSE, sizeof(gid_t));
        r = read_credentials(reply, &c);
        if (r < 0 || c.uid == (uid_t) -1) {
                caller_done(&c);
                return r < 0 ? r : -ENODATA;
        }
        caller_lookup_user(&c);

        if (g_hash_table_size(cache) >= CALLER_CACHE_MAX)
                g_hash_table_remove_all(cache);
        cached = g_new0(Caller, 1);
        caller_copy(&c, cached);
        g_hash_table_insert(cache, g_strdup(sender), cached);
        *ret = c;
        return 0;
}

/* A uid or gid written as a number; (uid_t) -1 is nobody's */
static bool parse_id(const char *s, uint32_t *ret) {
        unsigned v;

        if (parse_unsigned(s, &v) < 0 || v == UINT32_MAX)
                return false;
        *ret = v;
        return true;
}

static bool caller_has_group(const Caller *c, gid_t gid) {
        if (c->gid == gid)
                return true;
        for (guint i = 0; i < c->groups->len; i++)
                if (g_array_index(c->groups, gid_t, i) == gid)
                        return true;
        return false;
}

/* A group's gid by name. A group entry lists its members, so a big group needs a big buffer:
 * grown on ERANGE up to 1 MiB, rather than refusing its members. */
static bool group_gid(const char *name, gid_t *ret) {
        size_t size = 4096;

        for (;;) {
                g_autofree char *buf = g_malloc(size);
                struct group gr, *result = NULL;
                int r = getgrnam_r(name, &gr, buf, size, &result);

                if (r == 0 && result) {
                        *ret = result->gr_gid;
                        return true;
                }
                if (r != ERANGE || size >= 1024 * 1024)
                        return false;
                size *= 2;
        }
}

bool caller_in_lists(const Caller *c, char *const *users, char *const *groups) {
        uint32_t id;

        for (char *const *u = users; u && *u; u++) {
                if (parse_id(*u, &id) ? id == c->uid : g_strcmp0(*u, c->user_name) == 0)
                        return true;
        }
        for (char *const *g = groups; g && *g; g++) {
                gid_t gid;

                if (parse_id(*g, &id)) {
                        if (caller_has_group(c, id))
                                return true;
                        continue;
                }
                /* group names resolve now, so a group created after the type file loaded counts */
                if (group_gid(*g, &gid) && caller_has_group(c, gid))
                        return true;
        }
        return false;
}

bool caller_is_admin(const struct Manager *m, const Caller *c) {
        return c->uid == 0 || (m->user_mode && c->uid == geteuid());
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

void bus_reply_when_durable(struct Manager *m, int error, Job *j, void *userdata) {
        sd_bus_message *msg = userdata;

        if (error < 0)
                (void) sd_bus_reply_method_errorf(msg, SD_BUS_ERROR_IO_ERROR,
                                                  "The change was applied, but could not be made durable yet "
                                                  "(%s); jobd is rewriting its journal.", g_strerror(-error));
        else
                (void) sd_bus_reply_method_return(msg, NULL);
        sd_bus_message_unref(msg);
}

int bus_read_vardict(sd_bus_message *m, BusVardictFn fn, void *userdata, sd_bus_error *error) {
        g_autoptr(GHashTable) seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        const char *key;
        int r;

        r = sd_bus_message_enter_container(m, 'a', "{sv}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(m, 'e', "sv")) > 0) {
                r = sd_bus_message_read_basic(m, 's', &key);
                if (r < 0)
                        return r;
                if (!g_hash_table_add(seen, g_strdup(key)))
                        return bus_refuse(error, JOBD_ERROR_INVALID_OPTION, "'%s' is given twice.", key);
                r = fn(m, key, userdata, error);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);           /* variant */
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);           /* dict entry */
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}
