/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * sd-bus messages into GVariants. The reader follows the message's own signature, so it takes
 * anything sd-bus accepted; sd-bus has validated strings, paths, signatures and nesting depth
 * (at most 64), which is what GVariant's constructors and this recursion rely on.
 */

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <string.h>

#include "jobctl-bus.h"
#include "jobd-names.h"

const char *bus_error_message(const sd_bus_error *error, int r) {
        if (sd_bus_error_is_set(error)) {
                if (error->message && error->message[0])
                        return error->message;
                return error->name;
        }
        return strerror(r < 0 ? -r : r);
}

static GVariant *read_basic(sd_bus_message *m, char type, int *ret_r) {
        union {
                uint8_t u8;
                int bool_val;
                int16_t i16;
                uint16_t u16;
                int32_t i32;
                uint32_t u32;
                int64_t i64;
                uint64_t u64;
                double d;
                const char *s;
                int fd;
        } v = {};

        *ret_r = sd_bus_message_read_basic(m, type, &v);
        if (*ret_r < 0)
                return NULL;

        switch (type) {
        case SD_BUS_TYPE_BYTE:        return g_variant_new_byte(v.u8);
        case SD_BUS_TYPE_BOOLEAN:     return g_variant_new_boolean(v.bool_val);
        case SD_BUS_TYPE_INT16:       return g_variant_new_int16(v.i16);
        case SD_BUS_TYPE_UINT16:      return g_variant_new_uint16(v.u16);
        case SD_BUS_TYPE_INT32:       return g_variant_new_int32(v.i32);
        case SD_BUS_TYPE_UINT32:      return g_variant_new_uint32(v.u32);
        case SD_BUS_TYPE_INT64:       return g_variant_new_int64(v.i64);
        case SD_BUS_TYPE_UINT64:      return g_variant_new_uint64(v.u64);
        case SD_BUS_TYPE_DOUBLE:      return g_variant_new_double(v.d);
        case SD_BUS_TYPE_STRING:      return g_variant_new_string(v.s);
        case SD_BUS_TYPE_OBJECT_PATH: return g_variant_new_object_path(v.s);
        case SD_BUS_TYPE_SIGNATURE:   return g_variant_new_signature(v.s);
        case SD_BUS_TYPE_UNIX_FD:     return g_variant_new_handle(v.fd);
        }

        *ret_r = -EBADMSG;
        return NULL;
}

/* Reads values until the end of the current container into builder. */
static int read_children(sd_bus_message *m, GVariantBuilder *builder) {
        for (;;) {
                g_autoptr(GVariant) child = NULL;
                int r;

                r = sd_bus_message_peek_type(m, NULL, NULL);
                if (r < 0)
                        return r;
                if (r == 0)
                        return 0;

                r = bus_message_read_gvariant(m, &child);
                if (r < 0)
                        return r;
                g_variant_builder_add_value(builder, child);
        }
}

static int read_container(sd_bus_message *m, char type, const char *contents, GVariant **ret) {
        g_autoptr(GVariantBuilder) builder = NULL;
        g_autofree char *signature = NULL;
        int r;

        switch (type) {
        case SD_BUS_TYPE_ARRAY:
                signature = g_strconcat("a", contents, NULL);
                break;
        case SD_BUS_TYPE_STRUCT:
                signature = g_strconcat("(", contents, ")", NULL);
                break;
        case SD_BUS_TYPE_DICT_ENTRY:
                signature = g_strconcat("{", contents, "}", NULL);
                break;
        default:
                return -EBADMSG;
        }
        if (!g_variant_type_string_is_valid(signature))
                return -EBADMSG;

        r = sd_bus_message_enter_container(m, type, contents);
        if (r < 0)
                return r;

        builder = g_variant_builder_new(G_VARIANT_TYPE(signature));
        r = read_children(m, builder);
        if (r < 0)
                return r;

        r = sd_bus_message_exit_container(m);
        if (r < 0)
                return r;

        *ret = g_variant_ref_sink(g_variant_builder_end(builder));
        return 0;
}

int bus_message_read_gvariant(sd_bus_message *m, GVariant **ret) {
        const char *contents;
        GVariant *v;
        char type;
        int r;

        r = sd_bus_message_peek_type(m, &type, &contents);
        if (r < 0)
                return r;
        if (r == 0)
                return -EBADMSG;        /* caller expected one more value */

        switch (type) {

        case SD_BUS_TYPE_ARRAY:
        case SD_BUS_TYPE_STRUCT:
        case SD_BUS_TYPE_DICT_ENTRY:
                return read_container(m, type, contents, ret);

        case SD_BUS_TYPE_VARIANT: {
                g_autoptr(GVariant) inner = NULL;

                r = sd_bus_message_enter_container(m, SD_BUS_TYPE_VARIANT, contents);
                if (r < 0)
                        return r;
                r = bus_message_read_gvariant(m, &inner);
                if (r < 0)
                        return r;
                r = sd_bus_message_exit_container(m);
                if (r < 0)
                        return r;

                *ret = g_variant_ref_sink(g_variant_new_variant(inner));
                return 0;
        }

        default:
                v = read_basic(m, type, &r);
                if (!v)
                        return r < 0 ? r : -EBADMSG;
                *ret = g_variant_ref_sink(v);
                return 0;
        }
}

int bus_message_read_body(sd_bus_message *m, const char *type, GVariant **ret) {
        g_autoptr(GVariantBuilder) builder = g_variant_builder_new(G_VARIANT_TYPE_TUPLE);
        g_autoptr(GVariant) body = NULL;
        int r;

        r = read_children(m, builder);
        if (r < 0)
                return r;

        body = g_variant_ref_sink(g_variant_builder_end(builder));
        if (!g_variant_is_of_type(body, G_VARIANT_TYPE(type)))
                return -EBADMSG;

        /* Serialise now, once: a builder's tree drops its children when GLib serialises it
         * later, and strings borrowed from a child (vardict_get_str()) would dangle. Serialised,
         * every child points into body's one buffer, alive as long as any part of body is. */
        (void) g_variant_get_data(body);

        *ret = g_steal_pointer(&body);
        return 0;
}

int bus_get_all_properties_of(sd_bus *bus, const char *destination, const char *path,
                              const char *interface, sd_bus_error *error, GVariant **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        g_autoptr(GVariant) body = NULL;
        int r;

        r = sd_bus_call_method(bus, destination, path, "org.freedesktop.DBus.Properties", "GetAll",
                               error, &reply, "s", interface);
        if (r < 0)
                return r;

        r = bus_message_read_body(reply, "(a{sv})", &body);
        if (r < 0)
                return r;

        *ret = g_variant_get_child_value(body, 0);
        return 0;
}

int bus_get_all_properties(sd_bus *bus, const char *path, const char *interface,
                           sd_bus_error *error, GVariant **ret) {
        return bus_get_all_properties_of(bus, JOBD_BUS_NAME, path, interface, error, ret);
}

static GVariant *vardict_lookup(GVariant *dict, const char *key, const GVariantType *type) {
        if (!dict || !g_variant_is_of_type(dict, G_VARIANT_TYPE_VARDICT))
                return NULL;
        return g_variant_lookup_value(dict, key, type);
}

bool vardict_get_str(GVariant *dict, const char *key, const char **ret) {
        g_autoptr(GVariant) v = vardict_lookup(dict, key, NULL);

        /* the string points into dict's buffer (serialised by bus_message_read_body()), which the
         * caller holds */
        if (!v || !(g_variant_is_of_type(v, G_VARIANT_TYPE_STRING) ||
                    g_variant_is_of_type(v, G_VARIANT_TYPE_OBJECT_PATH)))
                return false;
        *ret = g_variant_get_string(v, NULL);
        return true;
}

bool vardict_get_u64(GVariant *dict, const char *key, uint64_t *ret) {
        g_autoptr(GVariant) v = vardict_lookup(dict, key, G_VARIANT_TYPE_UINT64);

        if (!v)
                return false;
        *ret = g_variant_get_uint64(v);
        return true;
}

bool vardict_get_u32(GVariant *dict, const char *key, uint32_t *ret) {
        g_autoptr(GVariant) v = vardict_lookup(dict, key, G_VARIANT_TYPE_UINT32);

        if (!v)
                return false;
        *ret = g_variant_get_uint32(v);
        return true;
}

bool vardict_get_i32(GVariant *dict, const char *key, int32_t *ret) {
        g_autoptr(GVariant) v = vardict_lookup(dict, key, G_VARIANT_TYPE_INT32);

        if (!v)
                return false;
        *ret = g_variant_get_int32(v);
        return true;
}

bool vardict_get_bool(GVariant *dict, const char *key, bool *ret) {
        g_autoptr(GVariant) v = vardict_lookup(dict, key, G_VARIANT_TYPE_BOOLEAN);

        if (!v)
                return false;
        *ret = g_variant_get_boolean(v);
        return true;
}

char *vardict_join(GVariant *dict, const char *key, const char *separator) {
        g_autoptr(GVariant) v = vardict_lookup(dict, key, NULL);
        GString *s;
        GVariantIter iter;
        GVariant *child;

        if (!v || !(g_variant_is_of_type(v, G_VARIANT_TYPE_STRING_ARRAY) ||
                    g_variant_is_of_type(v, G_VARIANT_TYPE("at"))))
                return NULL;
        if (g_variant_n_children(v) == 0)
                return NULL;

        s = g_string_new(NULL);
        g_variant_iter_init(&iter, v);
        while ((child = g_variant_iter_next_value(&iter))) {
                g_autofree char *text = variant_to_text(child);

                if (s->len > 0)
                        g_string_append(s, separator);
                g_string_append(s, text);
                g_variant_unref(child);
        }
        return g_string_free(s, FALSE);
}

static bool variant_is_basic_array(GVariant *v) {
        return g_variant_is_of_type(v, G_VARIANT_TYPE_ARRAY) &&
               g_variant_type_is_basic(g_variant_type_element(g_variant_get_type(v)));
}

char *variant_to_text(GVariant *v) {
        switch (g_variant_classify(v)) {

        case G_VARIANT_CLASS_STRING:
        case G_VARIANT_CLASS_OBJECT_PATH:
        case G_VARIANT_CLASS_SIGNATURE:
                return g_variant_dup_string(v, NULL);
        case G_VARIANT_CLASS_BOOLEAN:
                return g_strdup(g_variant_get_boolean(v) ? "yes" : "no");
        case G_VARIANT_CLASS_BYTE:
                return g_strdup_printf("%u", (unsigned) g_variant_get_byte(v));
        case G_VARIANT_CLASS_INT16:
                return g_strdup_printf("%d", (int) g_variant_get_int16(v));
        case G_VARIANT_CLASS_UINT16:
                return g_strdup_printf("%u", (unsigned) g_variant_get_uint16(v));
        case G_VARIANT_CLASS_INT32:
                return g_strdup_printf("%" PRIi32, g_variant_get_int32(v));
        case G_VARIANT_CLASS_UINT32:
                return g_strdup_printf("%" PRIu32, g_variant_get_uint32(v));
        case G_VARIANT_CLASS_INT64:
                return g_strdup_printf("%" PRIi64, (int64_t) g_variant_get_int64(v));
        case G_VARIANT_CLASS_UINT64:
                return g_strdup_printf("%" PRIu64, (uint64_t) g_variant_get_uint64(v));

        case G_VARIANT_CLASS_VARIANT: {
                g_autoptr(GVariant) inner = g_variant_get_variant(v);

                return variant_to_text(inner);
        }

        default:
                break;
        }

        if (variant_is_basic_array(v)) {
                GString *s = g_string_new(NULL);
                GVariantIter iter;
                GVariant *child;

                g_variant_iter_init(&iter, v);
                while ((child = g_variant_iter_next_value(&iter))) {
                        g_autofree char *text = variant_to_text(child);

                        if (s->len > 0)
                                g_string_append(s, ", ");
                        g_string_append(s, text);
                        g_variant_unref(child);
                }
                return g_string_free(s, FALSE);
        }

        return g_variant_print(v, FALSE);
}

int parse_job_id(const char *s, uint64_t *ret) {
        guint64 id;

        /* strict decimal: no sign, no spaces, no hex, so "-1" is not 2^64-1 */
        if (!s || !g_ascii_isdigit(s[0]))
                return -EINVAL;
        if (!g_ascii_string_to_unsigned(s, 10, 1, UINT64_MAX, &id, NULL))
                return -EINVAL;

        *ret = id;
        return 0;
}

char *job_object_path(uint64_t id) {
        return g_strdup_printf(JOBD_JOB_PATH_PREFIX "/%" PRIu64, id);
}

int event_add_exit_signals(sd_event *event, sd_event_signal_handler_t handler, void *userdata) {
        sigset_t mask;
        int r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return -errno;
        r = sd_event_add_signal(event, NULL, SIGINT, handler, userdata);
        if (r < 0)
                return r;
        return sd_event_add_signal(event, NULL, SIGTERM, handler, userdata);
}
