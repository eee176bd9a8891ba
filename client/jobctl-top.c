/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * top: the running jobs, live. What runs comes from jobd's signals only: JobChanged adds a job
 * that starts running (one GetAll for its type, owner, unit, …) and drops one that stops;
 * Progress and PropertiesChanged update it; JobNew only makes the header stale. The matches are
 * in place before the first List, so no change between the two is missed.
 *
 * Redraws are coalesced (at most one per REDRAW_MIN_USEC) and come only after a signal; each
 * asks GetStats once for the header. The CPU and memory of a local job are its scope's
 * (CPUUsageNSec, MemoryCurrent from systemd, on the same bus), read at each redraw; systemd
 * signals no change of them, so on a terminal the view is also redrawn every TICK_USEC while local
 * jobs run. Nothing polls jobd.
 */

#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <systemd/sd-event.h>

#include "job.h"
#include "jobctl-bus.h"
#include "jobctl-stats.h"
#include "jobctl-time.h"
#include "jobd-names.h"

#define REDRAW_MIN_USEC (200 * USEC_PER_MSEC)
#define TICK_USEC (2 * USEC_PER_SEC)

typedef struct TopJob {
        uint64_t id;
        char *type, *owner, *unit, *worker, *message;
        uint32_t progress, attempt, max_attempts;
        uint64_t started_usec;
} TopJob;

typedef struct Top {
        Context *context;
        sd_bus *bus;
        sd_event *event;
        GTree *jobs;                    /* &id → TopJob*: the running ones */
        sd_event_source *redraw, *tick;
        uint64_t last_draw_usec;        /* CLOCK_MONOTONIC */
        bool tty;
        int error;                      /* the first failure, ends the loop */
} Top;

static void top_job_free(gpointer p) {
        TopJob *j = p;

        g_free(j->type);
        g_free(j->owner);
        g_free(j->unit);
        g_free(j->worker);
        g_free(j->message);
        g_free(j);
}

static gint id_compare(gconstpointer a, gconstpointer b, gpointer unused) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

static void set_str(char **field, GVariant *props, const char *key) {
        const char *s;

        if (vardict_get_str(props, key, &s)) {
                g_free(*field);
                *field = *s ? g_strdup(s) : NULL;
        }
}

/* Properties of a job, all or changed ones, into j. */
static void top_job_update(TopJob *j, GVariant *props) {
        set_str(&j->type, props, "Type");
        set_str(&j->unit, props, "Unit");
        set_str(&j->worker, props, "Worker");
        set_str(&j->message, props, "ProgressMessage");
        (void) vardict_get_u32(props, "Progress", &j->progress);
        (void) vardict_get_u32(props, "Attempt", &j->attempt);
        (void) vardict_get_u32(props, "MaxAttempts", &j->max_attempts);
        (void) vardict_get_u64(props, "StartedUSec", &j->started_usec);
}

/* As List names owners: the user name here, the uid for a remote host (its own user database). */
static char *owner_text(Top *t, GVariant *props) {
        struct passwd pw, *found = NULL;
        char buf[4096];
        uint32_t uid;

        if (!vardict_get_u32(props, "Owner", &uid))
                return NULL;
        if (!context_is_remote(t->context) && getpwuid_r(uid, &pw, buf, sizeof(buf), &found) == 0 && found)
                return g_strdup(found->pw_name);
        return g_strdup_printf("%" PRIu32, uid);
}

/* A job that is (or may be) running now: its properties, or it goes when it is not running. */
static void top_load(Top *t, uint64_t id, const char *owner_name) {
        g_autofree char *path = job_object_path(id);
        g_autoptr(GVariant) props = NULL;
        const char *status;
        TopJob *j;

        if (bus_get_all_properties(t->bus, path, JOBD_JOB_INTERFACE, NULL, &props) < 0 ||
            !vardict_get_str(props, "Status", &status) || strcmp(status, JOBD_STATUS_RUNNING) != 0) {
                g_tree_remove(t->jobs, &id);
                return;
        }
        j = g_tree_lookup(t->jobs, &id);
        if (!j) {
                j = g_new0(TopJob, 1);
                j->id = id;
                g_tree_insert(t->jobs, &j->id, j);
        }
        top_job_update(j, props);
        if (owner_name) {
                g_free(j->owner);
                j->owner = g_strdup(owner_name);
        } else if (!j->owner)
                j->owner = owner_text(t, props);
}

/* ---- drawing ---- */

/* systemd's object of a unit; NULL on failure (out of memory) */
static char *unit_path(const char *unit) {
        char *p = NULL, *path;

        if (sd_bus_path_encode("/org/freedesktop/systemd1/unit", unit, &p) < 0)
                return NULL;
        path = g_strdup(p);
        free(p);
        return path;
}

static uint64_t scope_property(Top *t, const char *unit, const char *name) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        g_autofree char *path = unit_path(unit);
        uint64_t v = UINT64_MAX;

        if (path)
                (void) sd_bus_get_property_trivial(t->bus, "org.freedesktop.systemd1", path,
                                                   "org.freedesktop.systemd1.Scope", name, &error, 't', &v);
        return v;
}

/* usage_usec of a cgroup's cpu.stat in the v2 tree (unified or hybrid), in ns; UINT64_MAX if none */
static uint64_t cgroup_cpu_nsec(const char *cgroup) {
        static const char *const roots[] = { "/sys/fs/cgroup", "/sys/fs/cgroup/unified" };

        for (size_t i = 0; i < G_N_ELEMENTS(roots); i++) {
                g_autofree char *path = g_strconcat(roots[i], cgroup, "/cpu.stat", NULL), *data = NULL;
                const char *p;

                if (!g_file_get_contents(path, &data, NULL, NULL))
                        continue;
                p = strstr(data, "usage_usec ");
                if (p && (p == data || p[-1] == '\n'))
                        return g_ascii_strtoull(p + strlen("usage_usec "), NULL, 10) * NSEC_PER_USEC;
        }
        return UINT64_MAX;
}

/* systemd's CPUUsageNSec; where it has none (cgroup v1 without cpuacct for the unit, as on hybrid
 * machines), the kernel's count in the v2 tree, which exists for every cgroup: only for this
 * machine, whose /sys that is */
static uint64_t scope_cpu_nsec(Top *t, const char *unit) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        g_autofree char *path = NULL;
        char *cgroup = NULL;
        uint64_t v = scope_property(t, unit, "CPUUsageNSec");

        if (v != UINT64_MAX || context_is_remote(t->context))
                return v;
        path = unit_path(unit);
        if (!path || sd_bus_get_property_string(t->bus, "org.freedesktop.systemd1", path,
                                                "org.freedesktop.systemd1.Scope", "ControlGroup", &error,
                                                &cgroup) < 0)
                return UINT64_MAX;
        v = *cgroup ? cgroup_cpu_nsec(cgroup) : UINT64_MAX;
        free(cgroup);
        return v;
}

static void print_header(Top *t) {
        g_autoptr(GVariant) stats = NULL;
        uint32_t running = 0, queued = 0, waiting = 0, succeeded = 0, failed = 0, cancelled = 0;

        if (stats_call(t->context, NULL, &stats) < 0) {
                printf("jobd: no statistics\n\n");
                return;
        }
        (void) vardict_get_u32(stats, JOBD_STATUS_RUNNING, &running);
        (void) vardict_get_u32(stats, "queue_depth", &queued);
        (void) vardict_get_u32(stats, "workers_waiting", &waiting);
        (void) vardict_get_u32(stats, JOBD_STATUS_SUCCEEDED, &succeeded);
        (void) vardict_get_u32(stats, JOBD_STATUS_FAILED, &failed);
        (void) vardict_get_u32(stats, JOBD_STATUS_CANCELLED, &cancelled);
        printf("%sjobd:%s %" PRIu32 " running, %" PRIu32 " queued, %" PRIu32 " worker%s waiting; "
               "%" PRIu32 " succeeded, %" PRIu32 " failed, %" PRIu32 " cancelled\n\n",
               ansi(ANSI_HIGHLIGHT), ansi(ANSI_NORMAL), running, queued, waiting, waiting == 1 ? "" : "s",
               succeeded, failed, cancelled);
}

typedef struct DrawState {
        Top *top;
        Table *table;
        uint64_t now;
} DrawState;

static gboolean add_row(gpointer key, gpointer value, gpointer userdata) {
        DrawState *d = userdata;
        TopJob *j = value;
        g_autofree char *id = g_strdup_printf("%" PRIu64, j->id), *attempt = NULL, *runtime = NULL;
        g_autofree char *cpu = NULL, *memory = NULL, *progress = NULL;
        bool local = j->unit && !j->worker;

        attempt = g_strdup_printf("%" PRIu32 "/%" PRIu32, j->attempt, j->max_attempts);
        if (j->started_usec > 0 && d->now > j->started_usec)
                runtime = format_timespan(d->now - j->started_usec, USEC_PER_SEC);
        if (local) {
                uint64_t nsec = scope_cpu_nsec(d->top, j->unit);
                uint64_t bytes = scope_property(d->top, j->unit, "MemoryCurrent");

                if (nsec != UINT64_MAX)
                        cpu = format_timespan(nsec / NSEC_PER_USEC, USEC_PER_MSEC);
                if (bytes != UINT64_MAX)
                        memory = format_bytes(bytes);
        }
        progress = j->message ? g_strdup_printf("%3" PRIu32 "%% %s", j->progress, j->message)
                              : g_strdup_printf("%3" PRIu32 "%%", j->progress);

        table_add_cell(d->table, id, NULL);
        table_add_cell(d->table, j->type, NULL);
        table_add_cell(d->table, j->owner, NULL);
        table_add_cell(d->table, local ? j->unit : j->worker, NULL);
        table_add_cell(d->table, attempt, NULL);
        table_add_cell(d->table, runtime, NULL);
        table_add_cell(d->table, cpu, NULL);
        table_add_cell(d->table, memory, NULL);
        table_add_cell(d->table, progress, NULL);
        return FALSE;
}

static void top_draw(Top *t) {
        g_autoptr(Table) table = table_new("ID", "TYPE", "OWNER", "UNIT/WORKER", "ATTEMPT", "RUNTIME", "CPU",
                                           "MEMORY", "PROGRESS", NULL);
        DrawState d = { .top = t, .table = table, .now = now_realtime_usec() };
        unsigned n = (unsigned) g_tree_nnodes(t->jobs);

        table_set_align_right(table, 0);
        for (unsigned col = 4; col <= 7; col++)
                table_set_align_right(table, col);
        if (t->tty)
                fputs("\x1b[H\x1b[2J", stdout);
        print_header(t);
        if (n == 0)
                printf("No jobs running.\n");
        else {
                g_tree_foreach(t->jobs, add_row, &d);
                table_print(table, t->context->args.legend, stdout);
        }
        if (!t->tty)
                printf("\n");
        fflush(stdout);
}

static int on_redraw(sd_event_source *s, uint64_t usec, void *userdata) {
        Top *t = userdata;

        t->last_draw_usec = usec;
        top_draw(t);
        return 0;
}

static void schedule_redraw(Top *t) {
        int enabled = SD_EVENT_OFF;
        uint64_t now = 0;

        (void) sd_event_source_get_enabled(t->redraw, &enabled);
        if (enabled != SD_EVENT_OFF)
                return;
        (void) sd_event_now(t->event, CLOCK_MONOTONIC, &now);
        (void) sd_event_source_set_time(t->redraw, MAX(now, t->last_draw_usec + REDRAW_MIN_USEC));
        (void) sd_event_source_set_enabled(t->redraw, SD_EVENT_ONESHOT);
}

static gboolean any_local(gpointer key, gpointer value, gpointer userdata) {
        TopJob *j = value;

        *(bool *) userdata = j->unit && !j->worker;
        return *(bool *) userdata;
}

static int on_tick(sd_event_source *s, uint64_t usec, void *userdata) {
        Top *t = userdata;
        bool local = false;

        g_tree_foreach(t->jobs, any_local, &local);
        if (local)
                schedule_redraw(t);
        (void) sd_event_source_set_time(s, usec + TICK_USEC);
        return sd_event_source_set_enabled(s, SD_EVENT_ON);
}

/* ---- jobd's signals ---- */

static int on_job_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Top *t = userdata;
        const char *path, *status;
        uint64_t id;

        if (sd_bus_message_read(m, "tos", &id, &path, &status) < 0)
                return 0;
        if (strcmp(status, JOBD_STATUS_RUNNING) == 0)
                top_load(t, id, NULL);
        else
                g_tree_remove(t->jobs, &id);
        schedule_redraw(t);
        return 0;
}

static int on_job_new(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        schedule_redraw(userdata);      /* the queue in the header */
        return 0;
}

static TopJob *job_of_path(Top *t, const char *path) {
        uint64_t id;

        if (job_id_from_path(path, &id) < 0)
                return NULL;
        return g_tree_lookup(t->jobs, &id);
}

static int on_properties_changed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Top *t = userdata;
        TopJob *j = job_of_path(t, sd_bus_message_get_path(m));
        g_autoptr(GVariant) changed = NULL;
        const char *interface, *status;

        if (!j || sd_bus_message_read(m, "s", &interface) < 0 || strcmp(interface, JOBD_JOB_INTERFACE) != 0 ||
            bus_message_read_gvariant(m, &changed) < 0)
                return 0;
        /* JobChanged says the same; whichever comes first */
        if (vardict_get_str(changed, "Status", &status) && strcmp(status, JOBD_STATUS_RUNNING) != 0) {
                uint64_t id = j->id;

                g_tree_remove(t->jobs, &id);
        } else
                top_job_update(j, changed);
        schedule_redraw(t);
        return 0;
}

static int on_progress(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        Top *t = userdata;
        TopJob *j = job_of_path(t, sd_bus_message_get_path(m));
        const char *message;
        uint32_t percent;

        if (!j || sd_bus_message_read(m, "us", &percent, &message) < 0)
                return 0;
        j->progress = percent;
        g_free(j->message);
        j->message = *message ? g_strdup(message) : NULL;
        schedule_redraw(t);
        return 0;
}

static int top_add_matches(Top *t) {
        static const struct {
                const char *rule;
                sd_bus_message_handler_t handler;
        } matches[] = {
                { "type='signal',sender='" JOBD_BUS_NAME "',path='" JOBD_MANAGER_PATH "',interface='"
                  JOBD_MANAGER_INTERFACE "',member='JobChanged'", on_job_changed },
                { "type='signal',sender='" JOBD_BUS_NAME "',path='" JOBD_MANAGER_PATH "',interface='"
                  JOBD_MANAGER_INTERFACE "',member='JobNew'", on_job_new },
                { "type='signal',sender='" JOBD_BUS_NAME "',interface='org.freedesktop.DBus.Properties',"
                  "member='PropertiesChanged',path_namespace='/org/jobd/Jobd1/job'", on_properties_changed },
                { "type='signal',sender='" JOBD_BUS_NAME "',interface='" JOBD_JOB_INTERFACE "',member='Progress',"
                  "path_namespace='/org/jobd/Jobd1/job'", on_progress },
        };
        int r;

        for (size_t i = 0; i < G_N_ELEMENTS(matches); i++) {
                /* synchronous: in place before the List that follows */
                r = sd_bus_add_match(t->bus, NULL, matches[i].rule, matches[i].handler, t);
                if (r < 0)
                        return log_error_errno(r, "Failed to watch jobd's signals: %m");
        }
        return 0;
}

/* The jobs running now: List, then one GetAll each. */
static int top_list(Top *t) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        const char *type, *status, *owner, *path;
        uint64_t id;
        int r;

        r = sd_bus_message_new_method_call(t->bus, &m, JOBD_BUS_NAME, JOBD_MANAGER_PATH, JOBD_MANAGER_INTERFACE,
                                           "List");
        if (r >= 0)
                r = sd_bus_message_append(m, "a{sv}", 2, "status", "as", 1, JOBD_STATUS_RUNNING,
                                          "limit", "u", LIST_LIMIT_MAX);
        if (r < 0)
                return log_error_errno(r, "Failed to create List call: %m");
        r = sd_bus_call(t->bus, m, 0, &error, &reply);
        if (r < 0) {
                log_error("Failed to list jobs: %s", bus_error_message(&error, r));
                return r;
        }
        r = sd_bus_message_enter_container(reply, 'a', "(tssso)");
        while (r >= 0 && (r = sd_bus_message_read(reply, "(tssso)", &id, &type, &status, &owner, &path)) > 0)
                top_load(t, id, owner);
        if (r < 0)
                return log_error_errno(r, "Failed to parse List reply: %m");
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

int verb_top(Context *c, int argc, char *argv[]) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        g_autoptr(GTree) jobs = g_tree_new_full(id_compare, NULL, NULL, top_job_free);
        Top t = { .context = c, .jobs = jobs, .tty = isatty(STDOUT_FILENO) };
        int r;

        if (c->args.json != JSON_OFF)
                return log_usage("top is a view for people; for figures use 'jobctl --json stats' or "
                                 "'jobctl --json list --status=running'.");
        r = context_acquire_bus(c, &t.bus);
        if (r < 0)
                return r;
        if (!c->args.once) {
                r = top_add_matches(&t);
                if (r < 0)
                        return r;
        }
        r = top_list(&t);
        if (r < 0)
                return r;
        if (c->args.once) {
                t.tty = false;          /* a snapshot is not a screen to clear */
                top_draw(&t);
                return 0;
        }

        r = sd_event_default(&event);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the event loop: %m");
        t.event = event;
        r = sd_bus_attach_event(t.bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return log_error_errno(r, "Failed to attach the bus: %m");
        r = event_add_exit_signals(event, on_signal, NULL);
        if (r >= 0)
                r = sd_event_add_time(event, &t.redraw, CLOCK_MONOTONIC, 0, 0, on_redraw, &t);
        if (r >= 0 && t.tty)
                r = sd_event_add_time_relative(event, &t.tick, CLOCK_MONOTONIC, TICK_USEC, 0, on_tick, &t);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the event loop: %m");

        r = sd_event_loop(event);
        t.redraw = sd_event_source_unref(t.redraw);
        t.tick = sd_event_source_unref(t.tick);
        (void) sd_bus_detach_event(t.bus);
        if (r < 0)
                return log_error_errno(r, "Event loop failed: %m");
        return 0;
}
