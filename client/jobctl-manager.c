/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * types, reload: calls on the manager object. Settings are an a{sv} that grows as jobd does; what
 * this file does not know it passes on (--json).
 */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>
#include <json-glib/json-glib.h>

#include "jobctl-bus.h"
#include "jobctl-manager.h"
#include "jobctl-time.h"
#include "jobd-names.h"

/* Calls a manager method whose reply is read whole; logs "Failed to <what>: …". */
static int call_manager(Context *c, const char *method, const char *what, const char *reply_type,
                        GVariant **ret, const char *signature, ...) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        sd_bus *bus;
        va_list ap;
        int r;

        r = context_acquire_bus(c, &bus);
        if (r < 0)
                return r;

        r = sd_bus_message_new_method_call(bus, &m, JOBD_BUS_NAME, JOBD_MANAGER_PATH,
                                           JOBD_MANAGER_INTERFACE, method);
        if (r < 0)
                return log_error_errno(r, "Failed to create %s call: %m", method);
        if (signature) {
                va_start(ap, signature);
                r = sd_bus_message_appendv(m, signature, ap);
                va_end(ap);
                if (r < 0)
                        return log_error_errno(r, "Failed to append arguments: %m");
        }

        r = sd_bus_call(bus, m, 0, &error, &reply);
        if (r < 0) {
                log_error("Failed to %s: %s", what, bus_error_message(&error, r));
                return r;
        }

        if (!ret)
                return 0;
        r = bus_message_read_body(reply, reply_type, ret);
        if (r < 0)
                return log_error_errno(r, "Failed to parse %s reply: %m", method);
        return 0;
}

/* types */

static const char *type_kind(GVariant *settings) {
        bool b;
        g_autofree char *exec = NULL;

        if (vardict_get_bool(settings, "builtin", &b) && b)
                return "builtin";
        if (vardict_get_bool(settings, "external", &b))
                return b ? "external" : "local";
        /* an older daemon without the flag: no Exec= means external workers run it */
        exec = vardict_join(settings, "exec", " ");
        return exec ? "local" : "external";
}

static char *type_timeout(GVariant *settings) {
        uint64_t usec;

        if (!vardict_get_u64(settings, "timeout_usec", &usec))
                return NULL;
        /* 0 is "no timeout", as jobtype.h has it */
        if (usec == 0)
                return g_strdup("infinity");
        return format_timespan(usec, USEC_PER_MSEC);
}

static void print_types_table(const Context *c, GVariant *types) {
        g_autoptr(Table) t = table_new("NAME", "KIND", "STATUS", "CONCURRENCY", "TIMEOUT", "SCHEDULE",
                                       "DESCRIPTION", NULL);
        g_autoptr(GPtrArray) notes = g_ptr_array_new_with_free_func(g_free);
        GVariantIter iter;
        GVariant *child;
        size_t n;

        table_set_align_right(t, 3);
        g_variant_iter_init(&iter, types);
        while ((child = g_variant_iter_next_value(&iter))) {
                g_autoptr(GVariant) entry = child, settings = g_variant_get_child_value(entry, 2);
                g_autofree char *concurrency = NULL, *timeout = NULL;
                const char *name, *description, *calendar = "", *schedule_error = "";
                uint32_t u;
                bool paused = false;

                g_variant_get(entry, "(&s&s@a{sv})", &name, &description, NULL);
                (void) vardict_get_bool(settings, "paused", &paused);
                if (vardict_get_u32(settings, "concurrency", &u))
                        /* 0: only MaxRunning= bounds it */
                        concurrency = u == 0 ? g_strdup("unlimited") : g_strdup_printf("%" PRIu32, u);
                timeout = type_timeout(settings);
                (void) vardict_get_str(settings, "on_calendar", &calendar);
                (void) vardict_get_str(settings, "schedule_error", &schedule_error);
                if (*schedule_error)
                        g_ptr_array_add(notes, g_strdup_printf("Schedule of %s not in effect: %s", name,
                                                               schedule_error));

                table_add_cell(t, name, NULL);
                table_add_cell(t, type_kind(settings), NULL);
                table_add_cell(t, paused ? "paused" : "active", paused ? ANSI_YELLOW : NULL);
                table_add_cell(t, concurrency, NULL);
                table_add_cell(t, timeout, NULL);
                table_add_cell(t, *calendar ? calendar : NULL, *schedule_error ? ANSI_RED : NULL);
                table_add_cell(t, description, NULL);
        }

        n = table_get_rows(t);
        if (n > 0)
                table_print(t, c->args.legend, stdout);
        if (c->args.legend)
                printf("%s%zu type%s listed.\n", n > 0 ? "\n" : "", n, n == 1 ? "" : "s");
        /* on stderr, like systemctl's hints: the table stays parseable */
        for (guint i = 0; i < notes->len; i++)
                log_warning("%s", (const char *) notes->pdata[i]);
}

static int print_types_json(const Context *c, GVariant *types) {
        g_autoptr(JsonBuilder) b = json_builder_new();
        g_autoptr(JsonNode) root = NULL;
        GVariantIter iter;
        GVariant *child;

        json_builder_begin_array(b);
        g_variant_iter_init(&iter, types);
        while ((child = g_variant_iter_next_value(&iter))) {
                g_autoptr(GVariant) entry = child, settings = g_variant_get_child_value(entry, 2);
                const char *name, *description;

                g_variant_get(entry, "(&s&s@a{sv})", &name, &description, NULL);
                json_builder_begin_object(b);
                json_builder_set_member_name(b, "name");
                json_builder_add_string_value(b, name);
                json_builder_set_member_name(b, "description");
                json_builder_add_string_value(b, description);
                json_builder_set_member_name(b, "settings");
                json_builder_add_value(b, json_from_variant(settings));
                json_builder_end_object(b);
        }
        json_builder_end_array(b);

        root = json_builder_get_root(b);
        return json_print(root, c->args.json);
}

/* One name a line, nothing else: for scripts and shell completion. */
static void print_types_names(GVariant *types) {
        GVariantIter iter;
        const char *name;

        g_variant_iter_init(&iter, types);
        while (g_variant_iter_next(&iter, "(&s&s@a{sv})", &name, NULL, NULL))
                puts(name);
}

static int verb_types(Context *c, int argc, char *argv[]) {
        g_autoptr(GVariant) body = NULL, types = NULL;
        int r;

        if (c->args.names && c->args.json != JSON_OFF)
                return log_usage("--names and --json cannot be combined.");

        r = call_manager(c, "ListTypes", "list job types", "(a(ssa{sv}))", &body, NULL);
        if (r < 0)
                return r;
        types = g_variant_get_child_value(body, 0);

        if (c->args.names) {
                print_types_names(types);
                return 0;
        }
        if (c->args.json != JSON_OFF)
                return print_types_json(c, types);
        print_types_table(c, types);
        return 0;
}

/* pause, resume */

static int pause_or_resume(Context *c, int argc, char *argv[], const char *method, const char *verb) {
        int r, ret = 0;

        for (int i = 1; i < argc; i++) {
                g_autofree char *what = g_strdup_printf("%s type %s", verb, argv[i]);

                r = call_manager(c, method, what, NULL, NULL, "s", argv[i]);
                if (r < 0)
                        ret = r;
        }
        return ret;
}

static int verb_pause(Context *c, int argc, char *argv[]) {
        return pause_or_resume(c, argc, argv, "PauseType", "pause");
}

static int verb_resume(Context *c, int argc, char *argv[]) {
        return pause_or_resume(c, argc, argv, "ResumeType", "resume");
}

/* reload */

static int verb_reload(Context *c, int argc, char *argv[]) {
        return call_manager(c, "Reload", "reload jobd", NULL, NULL, NULL);
}

const Verb manager_verbs[] = {
        {
                .name = "types",
                .max_args = 0,
                .options = OPTION(NAMES),
                .run = verb_types,
                .synopsis = "types",
                .summary = "List the configured job types",
                .description =
                "One line per type: NAME, KIND (local: jobd runs its Exec=; external: workers\n"
                "claim its jobs; builtin: exec), STATUS (active or paused), CONCURRENCY, TIMEOUT,\n"
                "SCHEDULE (OnCalendar=) and DESCRIPTION; a schedule not in effect (systemd\n"
                "refused it) is said on standard error. With --json, every setting of each type\n"
                "as ListTypes has it.\n",
                .help =
                "     --names                 Print only the names, one a line\n",
        },
        {
                .name = "pause",
                .min_args = 1,
                .max_args = UINT_MAX,
                .run = verb_pause,
                .synopsis = "pause TYPE...",
                .summary = "Start and hand out no more jobs of these types",
                .description =
                "Root only. A paused type keeps its queue: Submits are still accepted, but no\n"
                "job of it starts and no Claim gets one until it is resumed. Running jobs go on.\n"
                "Persisted: a paused type stays paused across restarts and reloads. 'jobctl types'\n"
                "shows it. Every TYPE is tried; the exit status is 1 if any of them failed.\n",
        },
        {
                .name = "resume",
                .min_args = 1,
                .max_args = UINT_MAX,
                .run = verb_resume,
                .synopsis = "resume TYPE...",
                .summary = "Start and hand out jobs of paused types again",
                .description =
                "Root only. The queue is served again in its order (priority, then age).\n",
        },
        {
                .name = "reload",
                .max_args = 0,
                .run = verb_reload,
                .synopsis = "reload",
                .summary = "Re-read jobd.conf and the type files",
                .description =
                "Root only. A type file with an error is logged and skipped, the others load; a\n"
                "jobd.conf with an error is not applied at all and the running settings stay.\n"
                "Returns once the timers of scheduled types are made or refused, so 'jobctl types'\n"
                "right after shows the outcome. Problems are in the journal: journalctl -u\n"
                "jobd.service.\n",
        },
        {}
};
