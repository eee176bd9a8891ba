/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * stats: Manager.GetStats for people (key: value lines, then a table per type), for programs
 * (--json) and for Prometheus (--prometheus: the text exposition format, one metric family per
 * figure with its HELP and TYPE lines, labels type="…" and status="…"). Statistics are an a{sv}
 * that grows as jobd does: what this file does not know it still prints (people) or passes on
 * (--json); Prometheus gets the families listed below.
 */

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <json-glib/json-glib.h>

#include "jobctl-bus.h"
#include "jobctl-stats.h"
#include "jobctl-time.h"
#include "jobd-names.h"

int stats_call(Context *c, const char *type, GVariant **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        g_autoptr(GVariant) body = NULL;
        sd_bus *bus;
        int r;

        r = context_acquire_bus(c, &bus);
        if (r < 0)
                return r;
        r = sd_bus_call_method(bus, JOBD_BUS_NAME, JOBD_MANAGER_PATH, JOBD_MANAGER_INTERFACE, "GetStats",
                               &error, &reply, "s", type ?: "");
        if (r < 0) {
                log_error("Failed to get statistics: %s", bus_error_message(&error, r));
                return r;
        }
        r = bus_message_read_body(reply, "(a{sv})", &body);
        if (r < 0)
                return log_error_errno(r, "Failed to parse GetStats reply: %m");
        *ret = g_variant_get_child_value(body, 0);
        return 0;
}

static const char *const statuses[] = {
        JOBD_STATUS_PENDING, JOBD_STATUS_SCHEDULED, JOBD_STATUS_BLOCKED, JOBD_STATUS_RUNNING,
        JOBD_STATUS_SUCCEEDED, JOBD_STATUS_FAILED, JOBD_STATUS_CANCELLED,
};

/* ---- for people ---- */

/* A value for people, by its key's unit suffix as the contract names them. */
static char *stat_to_text(const char *key, GVariant *v) {
        uint64_t u;

        if (g_variant_is_of_type(v, G_VARIANT_TYPE_UINT64))
                u = g_variant_get_uint64(v);
        else if (g_variant_is_of_type(v, G_VARIANT_TYPE_UINT32))
                u = g_variant_get_uint32(v);
        else
                return variant_to_text(v);

        if (g_str_has_suffix(key, "_usec"))
                return format_timespan(u, USEC_PER_MSEC);
        if (g_str_has_suffix(key, "_nsec"))
                return u == UINT64_MAX ? g_strdup("infinity")
                                       : format_timespan(u / NSEC_PER_USEC, USEC_PER_MSEC);
        if (g_str_has_suffix(key, "_bytes"))
                return format_bytes(u);
        return variant_to_text(v);
}

static int stat_key_rank(const char *key) {
        static const char *const order[] = {
                "total", JOBD_STATUS_PENDING, JOBD_STATUS_SCHEDULED, JOBD_STATUS_BLOCKED,
                JOBD_STATUS_RUNNING, JOBD_STATUS_SUCCEEDED, JOBD_STATUS_FAILED, JOBD_STATUS_CANCELLED,
                "queue_depth", "workers_waiting",
                "wait_count", "wait_p50_usec", "wait_p90_usec", "wait_p99_usec", "wait_total_usec",
                "run_count", "run_p50_usec", "run_p90_usec", "run_p99_usec", "run_total_usec",
                "cpu_usage_total_nsec", "memory_peak_max_bytes", "memory_peak_total_bytes",
        };

        for (size_t i = 0; i < G_N_ELEMENTS(order); i++)
                if (strcmp(key, order[i]) == 0)
                        return (int) i;
        return (int) G_N_ELEMENTS(order);
}

typedef struct StatEntry {
        char *key;
        GVariant *value;                /* the content, out of its variant */
} StatEntry;

static void stat_entry_clear(void *p) {
        StatEntry *e = p;

        g_free(e->key);
        g_variant_unref(e->value);
}

/* the counts in the order of a job's life, then the timings, then the rest by name */
static int stat_entry_compare(const void *a, const void *b) {
        const StatEntry *x = a, *y = b;
        int rx = stat_key_rank(x->key), ry = stat_key_rank(y->key);

        return rx != ry ? rx - ry : strcmp(x->key, y->key);
}

static bool variant_is_dict(GVariant *v) {
        return g_variant_is_of_type(v, G_VARIANT_TYPE_ARRAY) &&
               g_variant_type_is_dict_entry(g_variant_type_element(g_variant_get_type(v)));
}

/* Key-value lines, dictionaries (queue_depth_by_type) nested under their key; skip is left out. */
static void print_stats_dict(GVariant *dict, int indent, const char *skip) {
        g_autoptr(GArray) entries = g_array_new(FALSE, FALSE, sizeof(StatEntry));
        size_t width = 0;
        GVariantIter iter;
        GVariant *child;

        g_array_set_clear_func(entries, stat_entry_clear);

        g_variant_iter_init(&iter, dict);
        while ((child = g_variant_iter_next_value(&iter))) {
                g_autoptr(GVariant) entry = child, key = g_variant_get_child_value(entry, 0);
                g_autoptr(GVariant) value = g_variant_get_child_value(entry, 1);
                StatEntry e = {
                        .key = variant_to_text(key),
                        .value = g_variant_is_of_type(value, G_VARIANT_TYPE_VARIANT)
                                ? g_variant_get_variant(value) : g_variant_ref(value),
                };
                g_autofree char *escaped = text_escape(e.key);

                if (skip && strcmp(e.key, skip) == 0) {
                        stat_entry_clear(&e);
                        continue;
                }
                width = MAX(width, text_width(escaped) + 1);
                g_array_append_val(entries, e);
        }
        g_array_sort(entries, stat_entry_compare);

        for (unsigned i = 0; i < entries->len; i++) {
                const StatEntry *e = &g_array_index(entries, StatEntry, i);
                g_autofree char *escaped = text_escape(e->key), *label = g_strconcat(escaped, ":", NULL);
                g_autofree char *text = NULL, *escaped_text = NULL;

                if (variant_is_dict(e->value) && g_variant_n_children(e->value) > 0) {
                        printf("%*s%s\n", indent, "", label);
                        print_stats_dict(e->value, indent + 4, NULL);
                        continue;
                }
                if (variant_is_dict(e->value)) {
                        printf("%*s%-*s -\n", indent, "", (int) width, label);
                        continue;
                }

                text = stat_to_text(e->key, e->value);
                escaped_text = text_escape(text);
                printf("%*s%-*s %s\n", indent, "", (int) width, label, escaped_text);
        }
}

static char *u32_text(GVariant *figures, const char *key) {
        uint32_t u;

        return vardict_get_u32(figures, key, &u) ? g_strdup_printf("%" PRIu32, u) : NULL;
}

/* a percentile, "-" while there is no sample */
static char *time_text(GVariant *figures, const char *what, const char *which) {
        g_autofree char *count_key = g_strconcat(what, "_count", NULL);
        g_autofree char *key = g_strconcat(what, "_", which, "_usec", NULL);
        uint32_t n;
        uint64_t usec;

        if (!vardict_get_u32(figures, count_key, &n) || n == 0 || !vardict_get_u64(figures, key, &usec))
                return NULL;
        return format_timespan(usec, USEC_PER_MSEC);
}

static void print_by_type(const Context *c, GVariant *by_type) {
        g_autoptr(Table) t = table_new("TYPE", "TOTAL", "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED",
                                       "WAIT P50", "WAIT P99", "RUN P50", "RUN P99", "CPU", NULL);
        GVariantIter iter;
        GVariant *figures;
        const char *type;

        for (unsigned col = 1; col <= 11; col++)
                table_set_align_right(t, col);
        g_variant_iter_init(&iter, by_type);
        while (g_variant_iter_next(&iter, "{&s@a{sv}}", &type, &figures)) {
                g_autoptr(GVariant) f = figures;
                g_autofree char *total = u32_text(f, "total"), *queued = u32_text(f, "queue_depth");
                g_autofree char *running = u32_text(f, JOBD_STATUS_RUNNING);
                g_autofree char *succeeded = u32_text(f, JOBD_STATUS_SUCCEEDED);
                g_autofree char *failed = u32_text(f, JOBD_STATUS_FAILED);
                g_autofree char *cancelled = u32_text(f, JOBD_STATUS_CANCELLED);
                g_autofree char *w50 = time_text(f, "wait", "p50"), *w99 = time_text(f, "wait", "p99");
                g_autofree char *r50 = time_text(f, "run", "p50"), *r99 = time_text(f, "run", "p99");
                g_autofree char *cpu = NULL;
                uint64_t nsec;

                if (vardict_get_u64(f, "cpu_usage_total_nsec", &nsec))
                        cpu = format_timespan(nsec / NSEC_PER_USEC, USEC_PER_MSEC);
                table_add_cell(t, type, NULL);
                table_add_cell(t, total, NULL);
                table_add_cell(t, queued, NULL);
                table_add_cell(t, running, NULL);
                table_add_cell(t, succeeded, NULL);
                table_add_cell(t, failed, NULL);
                table_add_cell(t, cancelled, NULL);
                table_add_cell(t, w50, NULL);
                table_add_cell(t, w99, NULL);
                table_add_cell(t, r50, NULL);
                table_add_cell(t, r99, NULL);
                table_add_cell(t, cpu, NULL);
        }
        if (table_get_rows(t) == 0)
                return;
        printf("\n");
        table_print(t, c->args.legend, stdout);
}

/* ---- for Prometheus ---- */

/* Label values escape \, " and newline; anything else goes as it is (UTF-8). */
static char *label_escape(const char *s) {
        GString *out = g_string_new(NULL);

        for (const char *p = s; *p; p++)
                switch (*p) {
                case '\\':
                        g_string_append(out, "\\\\");
                        break;
                case '"':
                        g_string_append(out, "\\\"");
                        break;
                case '\n':
                        g_string_append(out, "\\n");
                        break;
                default:
                        g_string_append_c(out, *p);
                }
        return g_string_free(out, FALSE);
}

/* µs as seconds, exactly: Prometheus wants base units */
static void print_seconds(uint64_t usec) {
        printf("%" PRIu64 ".%06" PRIu64, usec / USEC_PER_SEC, usec % USEC_PER_SEC);
}

static void family(const char *name, const char *type, const char *help) {
        printf("# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

typedef struct TypeFigures {
        char *label;                    /* type="…", escaped */
        GVariant *figures;
} TypeFigures;

static void type_figures_clear(void *p) {
        TypeFigures *t = p;

        g_free(t->label);
        g_variant_unref(t->figures);
}

static uint64_t figure(GVariant *figures, const char *key) {
        uint64_t t;
        uint32_t u;

        if (vardict_get_u64(figures, key, &t))
                return t;
        return vardict_get_u32(figures, key, &u) ? u : 0;
}

static void print_summary(GArray *types, const char *what, const char *name, const char *help) {
        static const struct { const char *key, *quantile; } quantiles[] = {
                { "p50_usec", "0.5" }, { "p90_usec", "0.9" }, { "p99_usec", "0.99" },
        };

        family(name, "summary", help);
        for (unsigned i = 0; i < types->len; i++) {
                const TypeFigures *t = &g_array_index(types, TypeFigures, i);
                g_autofree char *count = g_strconcat(what, "_count", NULL), *sum = g_strconcat(what, "_total_usec", NULL);

                for (size_t q = 0; q < G_N_ELEMENTS(quantiles); q++) {
                        g_autofree char *key = g_strconcat(what, "_", quantiles[q].key, NULL);

                        /* a quantile of nothing is NaN, as Prometheus client libraries write it */
                        printf("%s{%s,quantile=\"%s\"} ", name, t->label, quantiles[q].quantile);
                        if (figure(t->figures, count) == 0)
                                printf("NaN\n");
                        else {
                                print_seconds(figure(t->figures, key));
                                printf("\n");
                        }
                }
                printf("%s_sum{%s} ", name, t->label);
                print_seconds(figure(t->figures, sum));
                printf("\n%s_count{%s} %" PRIu64 "\n", name, t->label, figure(t->figures, count));
        }
}

static void print_gauge(GArray *types, const char *key, const char *name, const char *help, bool seconds_from_nsec) {
        family(name, "gauge", help);
        for (unsigned i = 0; i < types->len; i++) {
                const TypeFigures *t = &g_array_index(types, TypeFigures, i);
                uint64_t v = figure(t->figures, key);

                printf("%s{%s} ", name, t->label);
                if (seconds_from_nsec)
                        printf("%" PRIu64 ".%09" PRIu64 "\n", v / 1000000000, v % 1000000000);
                else
                        printf("%" PRIu64 "\n", v);
        }
}

static void print_prometheus(GVariant *stats, const char *type) {
        g_autoptr(GArray) types = g_array_new(FALSE, FALSE, sizeof(TypeFigures));
        g_autoptr(GVariant) by_type = g_variant_lookup_value(stats, "by_type", G_VARIANT_TYPE("a{sa{sv}}"));
        uint32_t waiting;

        g_array_set_clear_func(types, type_figures_clear);
        if (by_type) {
                GVariantIter iter;
                GVariant *figures;
                const char *name;

                g_variant_iter_init(&iter, by_type);
                while (g_variant_iter_next(&iter, "{&s@a{sv}}", &name, &figures)) {
                        g_autofree char *escaped = label_escape(name);
                        TypeFigures t = { .label = g_strdup_printf("type=\"%s\"", escaped), .figures = figures };

                        g_array_append_val(types, t);
                }
        } else if (type) {
                g_autofree char *escaped = label_escape(type);
                TypeFigures t = { .label = g_strdup_printf("type=\"%s\"", escaped), .figures = g_variant_ref(stats) };

                g_array_append_val(types, t);
        }

        family("jobd_jobs", "gauge", "Jobs jobd knows (finished ones until Retention= purges them), by type and status.");
        for (unsigned i = 0; i < types->len; i++) {
                const TypeFigures *t = &g_array_index(types, TypeFigures, i);

                for (size_t s = 0; s < G_N_ELEMENTS(statuses); s++)
                        printf("jobd_jobs{%s,status=\"%s\"} %" PRIu64 "\n", t->label, statuses[s],
                               figure(t->figures, statuses[s]));
        }
        print_gauge(types, "queue_depth", "jobd_queue_depth", "Jobs waiting to run: pending, scheduled or blocked.",
                    false);
        print_summary(types, "wait", "jobd_wait_seconds",
                      "From Submit to the start of the latest attempt, of the jobs that started.");
        print_summary(types, "run", "jobd_run_seconds",
                      "From the start of the latest attempt to the end, of the finished jobs that started.");
        print_gauge(types, "cpu_usage_total_nsec", "jobd_cpu_usage_seconds",
                    "CPU time the ended attempts of local jobs used.", true);
        print_gauge(types, "memory_peak_max_bytes", "jobd_memory_peak_max_bytes",
                    "The highest peak memory of an ended attempt of a local job.", false);
        print_gauge(types, "memory_peak_total_bytes", "jobd_memory_peak_total_bytes",
                    "The peak memory of the ended attempts of local jobs, added up.", false);
        if (vardict_get_u32(stats, "workers_waiting", &waiting)) {
                family("jobd_workers_waiting", "gauge", "Claims of external workers waiting for a job.");
                printf("jobd_workers_waiting %" PRIu32 "\n", waiting);
        }
}

static int verb_stats(Context *c, int argc, char *argv[]) {
        g_autoptr(GVariant) stats = NULL, by_type = NULL;
        const char *type = argc > 1 ? argv[1] : NULL;
        int r;

        if (c->args.prometheus && c->args.json != JSON_OFF)
                return log_usage("--prometheus and --json cannot be combined.");
        r = stats_call(c, type, &stats);
        if (r < 0)
                return r;

        if (c->args.prometheus) {
                print_prometheus(stats, type);
                return 0;
        }
        if (c->args.json != JSON_OFF) {
                g_autoptr(JsonNode) node = json_from_variant(stats);

                return json_print(node, c->args.json);
        }

        print_stats_dict(stats, 0, "by_type");
        by_type = g_variant_lookup_value(stats, "by_type", G_VARIANT_TYPE("a{sa{sv}}"));
        if (by_type)
                print_by_type(c, by_type);
        return 0;
}

const Verb stats_verbs[] = {
        {
                .name = "stats",
                .max_args = 1,
                .options = OPTION(PROMETHEUS),
                .run = verb_stats,
                .synopsis = "stats [TYPE]",
                .summary = "Show job counts, queue depth, wait and run times, of all types or one",
                .description = "Counts by status, the queue, wait and run time percentiles (p50, p90, p99:\n"
                               "exact, over the jobs jobd knows) and the CPU and memory the jobs used.\n"
                               "Without TYPE, also a table per type.\n",
                .help = "     --prometheus            Print the Prometheus text exposition format\n",
        },
        {
                .name = "top",
                .max_args = 0,
                .options = OPTION(ONCE),
                .run = verb_top,
                .synopsis = "top",
                .summary = "Show running jobs with CPU, memory and progress, live",
                .description = "The running jobs, their attempt, run time, CPU, memory and progress, and the\n"
                               "queue, updated as jobd signals changes (JobChanged, PropertiesChanged,\n"
                               "Progress): jobd is never polled. On a terminal the screen is redrawn, and the\n"
                               "CPU and memory of local jobs, which systemd does not signal, are read from it\n"
                               "every 2 s while jobs run. Otherwise a new snapshot is printed on each change.\n",
                .help = "     --once                  Print one snapshot and exit\n",
        },
        {}
};
