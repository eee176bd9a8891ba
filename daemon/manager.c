/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The manager: startup order (configuration, types, replay, bus objects, and only then the bus
 * name, so no call sees half-loaded state), the job table, and the persist-then-announce path
 * every change takes. Invariants: a job in m->jobs has a durable NEW record; a queued pending
 * job is in the scheduler; n_unfinished_by_owner counts the jobs in m->jobs not finished.
 */

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-journal.h>

#include "auth.h"
#include "bus-job.h"
#include "bus-manager.h"
#include "build-config.h"
#include "bus-util.h"
#include "config.h"
#include "execute.h"
#include "fs-util.h"
#include "gate.h"
#include "jobd-names.h"
#include "lease.h"
#include "log.h"
#include "manager.h"
#include "retention.h"

static void append_paused(Manager *m, GByteArray *b);

typedef struct Pending_marker {
        Manager *manager;
        ManagerDoneFn done;
        void *userdata;
} Pending_marker;


static int on_dispatch(sd_event_source *s, void *userdata);
static int on_due(sd_event_source *s, uint64_t usec, void *userdata);
static void stream_destroy(gpointer s);
static void on_unfollowed(void *userdata);
static int on_sweep(sd_event_source *s, void *userdata);
static void free_execution_context(gpointer key, gpointer value, gpointer userdata);
static void running_count_add(Manager *m, const char *type, int delta);
static void manager_arm_due(Manager *m);
static void manager_recover_running(Manager *m);
static int open_state_subdir(int dir_fd, const char *name, int *ret_fd);
static void link_input(Manager *m, Job *j);

/* META record tags */
enum {
        META_NEXT_ID = 1,
        META_PAUSED_TYPES = 2,  /* the whole set, in every META record that carries it */
};

static gint id_compare(gconstpointer a, gconstpointer b, gpointer unused) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
        return x < y ? -1 : x > y;
}

static void job_destroy(gpointer j) {
        job_free(j);
}

static uint64_t now_realtime_usec(void) {
        return (uint64_t) g_get_real_time();
}

static int manager_setup_paths(Manager *m) {
        const char *e;

        if (!m->user_mode) {
                e = getenv("STATE_DIRECTORY");  /* StateDirectory=jobd sets it */
                m->state_dir = g_strdup(e && *e && !strchr(e, ':') ? e : "/var/lib/jobd");
                m->config_path = g_strdup("/etc/jobd/jobd.conf");
                m->type_dirs = g_strdupv((char *[]) { "/etc/jobd/types.d", "/run/jobd/types.d",
                                                      (char *) JOBD_VENDOR_TYPES_DIR, NULL });
                return 0;
        }

        /* user mode: the XDG base directories, then the system's type folders */
        g_autofree char *runtime_types = g_build_filename(g_get_user_runtime_dir(), "jobd/types.d", NULL);
        m->state_dir = g_build_filename(g_get_user_state_dir(), "jobd", NULL);
        m->config_path = g_build_filename(g_get_user_config_dir(), "jobd/jobd.conf", NULL);
        m->type_dirs = g_new0(char *, 6);
        m->type_dirs[0] = g_build_filename(g_get_user_config_dir(), "jobd/types.d", NULL);
        m->type_dirs[1] = g_steal_pointer(&runtime_types);
        m->type_dirs[2] = g_strdup("/etc/jobd/types.d");
        m->type_dirs[3] = g_strdup("/run/jobd/types.d");
        m->type_dirs[4] = g_strdup(JOBD_VENDOR_TYPES_DIR);
        return 0;
}

typedef struct ChangedEntry {
        uint64_t id;
        uint64_t seq;                   /* the job's latest announcement, or a stale entry */
} ChangedEntry;

static int on_emit_changes(sd_event_source *s, void *userdata) {
        Manager *m = userdata;

        /* One JobChanged and one PropertiesChanged per job per turn of the loop, with the state
         * it has now: a worker's claim and its Complete that became durable in one batch are one
         * change to watchers, and every signal costs the bus daemon as much as a call. Jobs go
         * in the order of their latest change, so watchers see one job end before the next
         * one (that waited for its lock, say) starts. A job purged meanwhile is not found. */
        for (guint i = 0; i < m->changed_order->len; i++) {
                const ChangedEntry *e = &g_array_index(m->changed_order, ChangedEntry, i);
                Job *j = manager_get_job(m, e->id);

                if (!j || j->changed_seq != e->seq)
                        continue;
                if (j->changed & JOB_FIELD_BIT(JOB_FIELD_STATUS))
                        bus_manager_emit_job_changed(m, j);
                bus_job_emit_changed(m, j);
                j->changed_seq = 0;
        }
        g_array_set_size(m->changed_order, 0);
        return sd_event_source_set_enabled(s, SD_EVENT_OFF);
}

int manager_new(Manager **ret, bool user_mode) {
        g_autoptr(Manager) m = g_new0(Manager, 1);
        int r;

        m->user_mode = user_mode;
        m->next_id = 1;
        config_init(&m->config);
        m->jobs = g_tree_new_full(id_compare, NULL, NULL, job_destroy);
        m->n_unfinished_by_owner = g_hash_table_new(g_direct_hash, g_direct_equal);
        m->changed_order = g_array_new(FALSE, FALSE, sizeof(ChangedEntry));
        m->user_names = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
        m->callers = caller_cache_new();
        m->unique_keys = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
        m->paused_types = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        m->spool_fd = m->workspaces_fd = -1;
        m->executions = g_hash_table_new(g_int64_hash, g_int64_equal);
        m->cancel_requested = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
        m->streams = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, stream_destroy);
        m->followers_by_sender = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        m->running_by_type = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
        m->scheduler = scheduler_new();
        m->gate = gate_new();

        r = manager_setup_paths(m);
        if (r < 0)
                return r;

        r = sd_event_default(&m->event);
        if (r < 0)
                return r;

        r = idle_new(&m->idle, m);
        if (r < 0)
                return r;

        r = retention_setup(m);
        if (r < 0)
                return r;

        r = sd_event_add_defer(m->event, &m->emit_source, on_emit_changes, m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(m->emit_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(m->emit_source, "emit-properties-changed");

        /* after the bus messages already queued, like the store's group commit */
        r = sd_event_add_defer(m->event, &m->dispatch_source, on_dispatch, m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_priority(m->dispatch_source, SD_EVENT_PRIORITY_IDLE);
        (void) sd_event_source_set_enabled(m->dispatch_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(m->dispatch_source, "dispatch");

        lease_setup(m);

        /* armed when a follower leaves: its stream may be done with (not from inside the stream) */
        r = sd_event_add_defer(m->event, &m->sweep_source, on_sweep, m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(m->sweep_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(m->sweep_source, "stream-sweep");

        r = sd_event_add_time(m->event, &m->due_source, CLOCK_REALTIME, UINT64_MAX, 0, on_due, m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(m->due_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(m->due_source, "scheduled-due");

        (void) sd_event_set_watchdog(m->event, true);

        *ret = g_steal_pointer(&m);
        return 0;
}

Manager *manager_free(Manager *m) {
        if (!m)
                return NULL;

        /* the store answers what it still holds (its callbacks touch jobs and the bus) before
         * either goes away */
        store_free(m->store);
        /* running scopes are left alone: the next jobd finds and stops them (crash recovery);
         * the runner drops its executions without calling back, so their contexts go here */
        g_hash_table_foreach(m->executions, free_execution_context, NULL);
        runner_free(m->runner);
        recurring_free(m->recurring);   /* after the runner: its pending stops call into it */
        lease_teardown(m);
        m->idle = idle_free(m->idle);
        auth_teardown(m);
        g_hash_table_unref(m->streams);
        g_hash_table_unref(m->followers_by_sender);     /* after the streams: their followers count down */
        for (size_t i = 0; i < G_N_ELEMENTS(m->slots); i++)
                sd_bus_slot_unref(m->slots[i]);
        sd_bus_flush_close_unref(m->bus);
        scheduler_free(m->scheduler);
        gate_free(m->gate);
        g_tree_unref(m->jobs);
        g_hash_table_unref(m->n_unfinished_by_owner);
        g_array_unref(m->changed_order);
        g_hash_table_unref(m->user_names);
        g_hash_table_unref(m->callers);
        g_hash_table_unref(m->unique_keys);
        g_hash_table_unref(m->paused_types);
        g_hash_table_unref(m->executions);
        g_hash_table_unref(m->cancel_requested);
        g_hash_table_unref(m->running_by_type);
        sd_event_source_unref(m->dispatch_source);
        sd_event_source_unref(m->due_source);
        sd_event_source_unref(m->sweep_source);
        retention_free(m);
        if (m->spool_fd >= 0)
                (void) close(m->spool_fd);
        if (m->workspaces_fd >= 0)
                (void) close(m->workspaces_fd);
        if (m->types)
                g_hash_table_unref(m->types);
        sd_event_source_unref(m->emit_source);
        sd_event_unref(m->event);
        g_free(m->state_dir);
        g_free(m->config_path);
        g_strfreev(m->type_dirs);
        return g_free(m), NULL;
}

static void owner_count_add(Manager *m, uid_t owner, int delta) {
        gpointer key = GUINT_TO_POINTER(owner);
        unsigned n = GPOINTER_TO_UINT(g_hash_table_lookup(m->n_unfinished_by_owner, key));

        n = (unsigned) ((int) n + delta);
        if (n == 0)
                g_hash_table_remove(m->n_unfinished_by_owner, key);
        else
                g_hash_table_insert(m->n_unfinished_by_owner, key, GUINT_TO_POINTER(n));
}

unsigned manager_n_unfinished_of(Manager *m, uid_t owner) {
        return GPOINTER_TO_UINT(g_hash_table_lookup(m->n_unfinished_by_owner, GUINT_TO_POINTER(owner)));
}

static char *unique_name(uid_t owner, const char *key) {
        return g_strdup_printf("%u:%s", (unsigned) owner, key);
}

static void unique_hold(Manager *m, Job *j) {
        if (j->unique_key && !job_status_is_finished(j->status))
                g_hash_table_replace(m->unique_keys, unique_name(j->owner, j->unique_key),
                                     g_memdup2(&j->id, sizeof(j->id)));
}

static void unique_drop(Manager *m, Job *j) {
        g_autofree char *name = NULL;
        uint64_t *holder;

        if (!j->unique_key)
                return;
        name = unique_name(j->owner, j->unique_key);
        holder = g_hash_table_lookup(m->unique_keys, name);
        if (holder && *holder == j->id)
                g_hash_table_remove(m->unique_keys, name);
}

static void append_paused(Manager *m, GByteArray *b) {
        g_autofree const char **names = (const char **) g_hash_table_get_keys_as_array(m->paused_types, NULL);

        record_put_strv(b, META_PAUSED_TYPES, (char *const *) names);
}

bool manager_type_paused(Manager *m, const char *type) {
        return g_hash_table_contains(m->paused_types, type);
}

static void on_durable_marker(int error, void *userdata) {
        g_autofree Pending_marker *p = userdata;

        p->done(p->manager, error, NULL, p->userdata);
}

/* Appends a META record (b, begun by the caller) and calls done once it is durable. */
static void append_meta(Manager *m, GByteArray *b, ManagerDoneFn done, void *userdata) {
        Pending_marker *p = g_new0(Pending_marker, 1);
        int r;

        *p = (Pending_marker) { .manager = m, .done = done, .userdata = userdata };
        r = store_append(m->store, b->data, b->len, on_durable_marker, p);
        if (r < 0)
                on_durable_marker(r, p);
}

void manager_when_durable(Manager *m, ManagerDoneFn done, void *userdata) {
        g_autoptr(GByteArray) b = g_byte_array_new();

        record_begin(b, RECORD_META, 0);
        append_meta(m, b, done, userdata);
}

void manager_set_paused(Manager *m, const char *type, bool paused, ManagerDoneFn done, void *userdata) {
        g_autoptr(GByteArray) b = g_byte_array_new();

        if (paused)
                g_hash_table_add(m->paused_types, g_strdup(type));
        else
                g_hash_table_remove(m->paused_types, type);
        log_info("Type %s %s.", type, paused ? "paused" : "resumed");
        if (!paused)
                manager_queue_dispatch(m);

        record_begin(b, RECORD_META, 0);
        append_paused(m, b);
        append_meta(m, b, done, userdata);
}

uint64_t manager_unique_holder(Manager *m, uid_t owner, const char *key) {
        g_autofree char *name = unique_name(owner, key);
        uint64_t *holder = g_hash_table_lookup(m->unique_keys, name);

        return holder ? *holder : 0;
}

/* Accounts a job in the tables beside m->jobs (which holds it already). */
static void manager_index_job(Manager *m, Job *j) {
        j->manager = m;
        unique_hold(m, j);
        if (!job_status_is_finished(j->status))
                owner_count_add(m, j->owner, +1);
        if (job_status_is_finished(j->status))
                retention_track(m, j);
        /* a running attempt with a worker and no scope is an external worker's */
        j->claimed = j->status == JOB_RUNNING && j->worker && !j->unit;
        if (j->status == JOB_RUNNING && !j->claimed)
                running_count_add(m, j->type, +1);
        if (j->id >= m->next_id)
                m->next_id = j->id + 1;
        /* its place in the queues, from the jobs replayed before it (its dependencies) */
        gate_replayed(m, j);
}

Job *manager_get_job(Manager *m, uint64_t id) {
        return g_tree_lookup(m->jobs, &id);
}

JobType *manager_get_type(Manager *m, const char *name) {
        return name ? g_hash_table_lookup(m->types, name) : NULL;
}

const char *manager_user_name(Manager *m, uid_t uid) {
        char *name = g_hash_table_lookup(m->user_names, GUINT_TO_POINTER(uid));
        struct passwd pw, *result = NULL;
        char buf[4096];

        if (name)
                return name;
        /* NSS may block; owners are few and names are cached for the daemon's lifetime */
        if (getpwuid_r(uid, &pw, buf, sizeof(buf), &result) == 0 && result)
                name = g_strdup(result->pw_name);
        else
                name = g_strdup_printf("%u", (unsigned) uid);
        g_hash_table_insert(m->user_names, GUINT_TO_POINTER(uid), name);
        return name;
}

/* ---- replay and snapshot ---- */

static int on_replay_record(const void *payload, size_t size, void *userdata) {
        Manager *m = userdata;
        RecordReader reader;
        Job *j;
        int r;

        r = record_reader_init(&reader, payload, size);
        if (r < 0)
                return log_warning_errno(r, "Skipping unreadable journal record: %m"), 0;

        switch (reader.kind) {
        case RECORD_JOB_NEW: {
                g_autoptr(Job) n = job_new(reader.id);
                r = job_apply_record(n, &reader);
                if (r < 0 || !n->type || reader.id == 0)
                        return log_warning("Skipping malformed record of job %" G_GUINT64_FORMAT ".",
                                           reader.id), 0;
                /* a snapshot or a replayed Submit replaces whatever we had; ids stay monotonic
                 * even if later records are lost */
                if (n->id >= m->next_id)
                        m->next_id = n->id + 1;
                g_tree_replace(m->jobs, &n->id, n);
                g_steal_pointer(&n);
                return 0;
        }
        case RECORD_JOB_UPDATE:
                j = manager_get_job(m, reader.id);
                if (!j)
                        return log_warning("Journal updates unknown job %" G_GUINT64_FORMAT ", ignoring.",
                                           reader.id), 0;
                r = job_apply_record(j, &reader);
                if (r < 0)
                        log_warning_errno(r, "Malformed update of job %" G_GUINT64_FORMAT ", ignoring: %m",
                                          reader.id);
                return 0;
        case RECORD_JOB_PURGE:
                g_tree_remove(m->jobs, &reader.id);
                return 0;
        case RECORD_META: {
                RecordField f;
                while ((r = record_reader_next(&reader, &f)) > 0) {
                        g_auto(GStrv) names = NULL;

                        if (f.tag == META_NEXT_ID && f.wire == RECORD_WIRE_VARINT && f.u64 > m->next_id)
                                m->next_id = f.u64;
                        else if (f.tag == META_PAUSED_TYPES && f.wire == RECORD_WIRE_STRINGS &&
                                 record_field_strv(&f, &names) >= 0) {
                                g_hash_table_remove_all(m->paused_types);
                                for (char **n = names; n && *n; n++)
                                        g_hash_table_add(m->paused_types, g_strdup(*n));
                        }
                }
                return 0;
        }
        default:
                return 0;
        }
}

typedef struct SnapshotState {
        StoreWriter *writer;
        int r;
} SnapshotState;

static gboolean snapshot_one(gpointer key, gpointer value, gpointer userdata) {
        SnapshotState *s = userdata;
        g_autoptr(GByteArray) b = g_byte_array_new();

        job_encode(value, RECORD_JOB_NEW, 0, b);
        s->r = store_writer_add(s->writer, b->data, b->len);
        return s->r < 0;   /* TRUE stops the traversal */
}

static int on_snapshot(StoreWriter *w, void *userdata) {
        Manager *m = userdata;
        g_autoptr(GByteArray) b = g_byte_array_new();
        int r;

        record_begin(b, RECORD_META, 0);
        record_put_u64(b, META_NEXT_ID, m->next_id);
        append_paused(m, b);
        r = store_writer_add(w, b->data, b->len);
        if (r < 0)
                return r;

        SnapshotState state = { .writer = w };
        g_tree_foreach(m->jobs, snapshot_one, &state);
        return state.r;
}

static gboolean index_replayed(gpointer key, gpointer value, gpointer userdata) {
        Manager *m = userdata;
        Job *j = value;
        char name[32];

        manager_index_job(m, j);
        /* a workspace kept by retention goes when that runs out, across restarts too */
        g_snprintf(name, sizeof(name), "%" G_GUINT64_FORMAT, j->id);
        if (job_status_is_finished(j->status) && j->retention_usec > 0 &&
            faccessat(m->workspaces_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) >= 0)
                execute_expire_workspace(m, j->id, j->retention_usec == UINT64_MAX ? UINT64_MAX :
                                         j->finished_usec + j->retention_usec);
        return FALSE;
}

static int manager_open_store(Manager *m) {
        StoreReplayStats stats = {};
        int dir_fd, r;

        if (g_mkdir_with_parents(m->state_dir, 0700) < 0)
                return log_error_errno(errno, "Failed to create %s: %m", m->state_dir);
        dir_fd = open(m->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir_fd < 0)
                return log_error_errno(errno, "Failed to open %s: %m", m->state_dir);

        r = open_state_subdir(dir_fd, "spool", &m->spool_fd);
        if (r >= 0)
                r = open_state_subdir(dir_fd, "workspaces", &m->workspaces_fd);
        if (r < 0) {
                (void) close(dir_fd);
                return log_error_errno(r, "Failed to set up the spool and workspace folders in %s: %m",
                                       m->state_dir);
        }

        r = store_new(&m->store, m->event, dir_fd);
        (void) close(dir_fd);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the store: %m");
        store_set_snapshot_fn(m->store, on_snapshot, m);

        r = store_open(m->store, on_replay_record, m, &stats);
        if (r < 0)
                return log_error_errno(r, "Failed to open the journal in %s: %m", m->state_dir);

        gate_replay_begin(m);
        g_tree_foreach(m->jobs, index_replayed, m);
        gate_replay_end(m);
        manager_arm_due(m);
        log_info("Replayed %" G_GUINT64_FORMAT " records: %i jobs, next id %" G_GUINT64_FORMAT ".",
                 stats.n_records, g_tree_nnodes(m->jobs), m->next_id);
        return 0;
}

/* ---- configuration ---- */

void manager_reload(Manager *m, GPtrArray *problems) {
        g_autoptr(GError) error = NULL;
        Config c;

        config_init(&c);
        if (!config_load(&c, m->config_path, &error)) {
                log_warning("%s; keeping the previous settings.", error->message);
                if (problems)
                        g_ptr_array_add(problems, g_strdup(error->message));
        } else
                m->config = c;

        if (m->types)
                g_hash_table_unref(m->types);
        m->types = jobtype_load_dirs((const char *const *) m->type_dirs, problems);
        log_info("Loaded %u job types.", g_hash_table_size(m->types));
        retention_arm(m);

        /* before the bus is there, manager_connect_bus() syncs once the name is ours */
        if (m->recurring)
                (void) recurring_sync(m->recurring, m->types);
}

/* ---- start and run ---- */

static int manager_connect_bus(Manager *m) {
        int r;

        r = m->user_mode ? sd_bus_open_user(&m->bus) : sd_bus_open_system(&m->bus);
        if (r < 0)
                return log_error_errno(r, "Failed to connect to the %s bus: %m",
                                       m->user_mode ? "user" : "system");
        (void) sd_bus_set_description(m->bus, "jobd");
        r = sd_bus_attach_event(m->bus, m->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;
        /* the bus going away ends the daemon; activation brings it back */
        (void) sd_bus_set_exit_on_disconnect(m->bus, true);

        r = bus_manager_register(m);
        if (r < 0)
                return log_error_errno(r, "Failed to register the manager object: %m");
        r = bus_job_register(m);
        if (r < 0)
                return log_error_errno(r, "Failed to register the job objects: %m");
        r = auth_setup(m);
        if (r < 0)
                return log_error_errno(r, "Failed to set up authorization: %m");

        r = runner_new(&m->runner, m->event, m->bus);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the runner: %m");
        manager_recover_running(m);
        lease_recover(m);

        /* user mode: only the user's own folders (the first two) schedule; the system's types are
         * the system jobd's to schedule */
        char *user_dirs[] = { m->type_dirs[0], m->type_dirs[1], NULL };
        r = recurring_new(&m->recurring, m->bus, m->runner, m->user_mode, JOBD_JOBCTL_PATH,
                          m->user_mode ? user_dirs : NULL);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the schedules: %m");

        r = sd_bus_request_name(m->bus, JOBD_BUS_NAME, 0);
        if (r < 0)
                return log_error_errno(r, "Failed to acquire the bus name " JOBD_BUS_NAME ": %m");

        /* last: if anything above fails, jobd exits without having touched the timers */
        (void) recurring_sync(m->recurring, m->types);
        return 0;
}

int manager_start(Manager *m) {
        int r;

        manager_reload(m, NULL);

        r = manager_open_store(m);
        if (r < 0)
                return r;

        r = manager_connect_bus(m);
        if (r < 0)
                return r;

        r = idle_start(m->idle);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the bus for activity: %m");
        manager_queue_dispatch(m);
        return 0;
}

int manager_run(Manager *m) {
        int r = sd_event_loop(m->event);

        /* nothing acknowledged may be lost: write out what is queued before leaving, and what
         * the answers to that queue in turn (bounded: those chains are short) */
        for (unsigned i = 0; m->store && i < 8 && store_has_queued(m->store); i++)
                if (store_flush(m->store) < 0)
                        break;
        return r;
}

/* ---- the persist-then-announce path ---- */

typedef struct Pending {
        Manager *manager;
        Job *job;               /* Submit: owned until linked */
        uint64_t id;
        uint64_t mask;
        ManagerDoneFn done;
        void *userdata;
} Pending;

static void on_submit_durable(int error, void *userdata) {
        g_autofree Pending *p = userdata;
        Manager *m = p->manager;
        Job *j = p->job;

        if (error < 0) {
                log_error_errno(error, "Failed to make job %" G_GUINT64_FORMAT " durable: %m", j->id);
                owner_count_add(m, j->owner, -1);
                unique_drop(m, j);
                if (j->input_tmp)
                        (void) unlinkat(m->spool_fd, j->input_tmp, 0);
                job_free(j);
                if (p->done)
                        p->done(m, error, NULL, p->userdata);
                return;
        }

        link_input(m, j);
        g_tree_insert(m->jobs, &j->id, j);
        j->manager = m;
        /* dependencies may have ended and locks changed hands since the Submit was read */
        gate_admit(m, j, 0, NULL, NULL);
        /* debug: one journal entry per Submit costs journald more CPU than the Submit costs jobd */
        log_job(LOG_DEBUG, j->id, j->type, "Job %" G_GUINT64_FORMAT " of type %s submitted by uid %u.",
                j->id, j->type, (unsigned) j->owner);
        bus_manager_emit_job_new(m, j);
        if (p->done)
                p->done(m, 0, j, p->userdata);
}

void manager_submit(Manager *m, Job *j, ManagerDoneFn done, void *userdata) {
        g_autoptr(GByteArray) b = g_byte_array_new();
        Pending *p;
        int r;

        j->id = m->next_id;
        j->submitted_usec = now_realtime_usec();
        j->expire_at_usec = j->expire_usec > 0 ? j->submitted_usec + j->expire_usec : 0;
        job_encode(j, RECORD_JOB_NEW, 0, b);
        owner_count_add(m, j->owner, +1);
        unique_hold(m, j);

        p = g_new0(Pending, 1);
        *p = (Pending) { .manager = m, .job = j, .id = j->id, .done = done, .userdata = userdata };
        r = store_append(m->store, b->data, b->len, on_submit_durable, p);
        if (r < 0) {
                on_submit_durable(r, p);
                return;
        }
        m->next_id++;
}

#define TOKEN_BYTES 16

/* 128 random bits in hex: attempt tokens, and names nobody can guess */
static char *token_new(void) {
        uint8_t b[TOKEN_BYTES];

        if (getrandom(b, sizeof(b), 0) != sizeof(b))
                return NULL;
        return g_strdup_printf("%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x",
                               b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
                               b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

int manager_spool_input(Manager *m, Job *j) {
        g_autofree char *rnd = token_new(), *name = NULL;
        _cleanup_(closep) int out = -1;
        int r;

        if (!rnd)
                return errno > 0 ? -errno : -EIO;
        name = g_strconcat(".input-", rnd, NULL);
        out = openat(m->spool_fd, name, O_WRONLY|O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC, 0600);
        if (out < 0)
                return -errno;
        /* from the start, whatever the caller's offset: a blocking copy, bounded by MaxInputBytes */
        if (lseek(j->input_fd, 0, SEEK_SET) < 0)
                r = -errno;
        else
                r = copy_bytes(j->input_fd, out, m->config.max_input_bytes, NULL);
        (void) close(j->input_fd);
        j->input_fd = -1;
        if (r < 0) {
                (void) unlinkat(m->spool_fd, name, 0);
                return r;
        }
        j->input_tmp = g_steal_pointer(&name);
        return 0;
}

/* Moves the spooled input under the job's folder, now that the job exists. */
static void link_input(Manager *m, Job *j) {
        _cleanup_(closep) int dir = -1;

        if (!j->input_tmp)
                return;
        dir = execute_open_spool(m, j->id, true);
        if (dir < 0 || renameat(m->spool_fd, j->input_tmp, dir, "input") < 0)
                log_job(LOG_ERR, j->id, j->type, "Failed to keep the input of job %" G_GUINT64_FORMAT ": %s",
                        j->id, g_strerror(dir < 0 ? -dir : errno));
        g_clear_pointer(&j->input_tmp, g_free);
}

bool manager_accepts_changes(Manager *m) {
        return !store_is_failed(m->store);
}

static void manager_announce(Manager *m, Job *j, uint64_t mask) {
        j->changed |= mask;
        j->changed_seq = ++m->change_seq;
        g_array_append_val(m->changed_order, ((ChangedEntry) { .id = j->id, .seq = j->changed_seq }));
        idle_touch(m->idle);
        (void) sd_event_source_set_enabled(m->emit_source, SD_EVENT_ONESHOT);
}

static void on_commit_durable(int error, void *userdata) {
        g_autofree Pending *p = userdata;
        Manager *m = p->manager;
        Job *j = manager_get_job(m, p->id);

        /* On error the change stays in memory: the store rewrites its file from this state
         * before it accepts anything else, so the change is announced either way. */
        if (error < 0)
                log_error_errno(error, "Failed to make a change of job %" G_GUINT64_FORMAT " durable: %m",
                                p->id);
        if (j)
                manager_announce(m, j, p->mask);
        if (p->done)
                p->done(m, error, j, p->userdata);
}

/* within_usec 0: in the next group commit; else at the latest within_usec from now. */
static void commit_within(Manager *m, Job *j, uint64_t mask, uint64_t within_usec,
                          ManagerDoneFn done, void *userdata) {
        g_autoptr(GByteArray) b = g_byte_array_new();
        Pending *p;
        int r;

        job_encode(j, RECORD_JOB_UPDATE, mask, b);
        p = g_new0(Pending, 1);
        *p = (Pending) { .manager = m, .id = j->id, .mask = mask, .done = done, .userdata = userdata };
        r = within_usec > 0 ?
                store_append_lazy(m->store, b->data, b->len, within_usec, on_commit_durable, p) :
                store_append(m->store, b->data, b->len, on_commit_durable, p);
        if (r < 0)
                on_commit_durable(r, p);
}

void manager_commit(Manager *m, Job *j, uint64_t mask, ManagerDoneFn done, void *userdata) {
        commit_within(m, j, mask, 0, done, userdata);
}

/* Progress and heartbeats come often and nobody waits for them to be on disk: they ride the next
 * batch, or get one of their own within this. */
#define ADVISORY_COMMIT_WITHIN_USEC (UINT64_C(50) * 1000)

void manager_commit_advisory(Manager *m, Job *j, uint64_t mask) {
        commit_within(m, j, mask, ADVISORY_COMMIT_WITHIN_USEC, NULL, NULL);
}

static void place_in_queues(Manager *m, Job *j) {
        scheduler_remove(m->scheduler, j);
        if (j->status == JOB_PENDING || j->status == JOB_SCHEDULED)
                scheduler_add(m->scheduler, j);
        manager_arm_due(m);
        if (j->status == JOB_PENDING)
                manager_queue_dispatch(m);
}

/* within_usec: see commit_within() */
static void apply_status_within(Manager *m, Job *j, JobStatus status, uint64_t extra_mask,
                                uint64_t within_usec, ManagerDoneFn done, void *userdata) {
        bool was_finished = job_status_is_finished(j->status);
        FollowStream *s;

        if (status == j->status && extra_mask == 0 && !done) {
                place_in_queues(m, j);
                return;
        }
        s = manager_get_stream(m, j, false);
        j->status = status;
        place_in_queues(m, j);
        if (job_status_is_finished(status) && !was_finished) {
                owner_count_add(m, j->owner, -1);
                unique_drop(m, j);
        } else if (!job_status_is_finished(status) && was_finished) {
                retention_untrack(m, j);
                owner_count_add(m, j->owner, +1);
                if (j->unique_key && !manager_unique_holder(m, j->owner, j->unique_key))
                        unique_hold(m, j);
        }
        if (job_status_is_finished(status)) {
                j->finished_usec = now_realtime_usec();
                extra_mask |= JOB_FIELD_BIT(JOB_FIELD_FINISHED);
                retention_track(m, j);
        }
        if (s && job_status_is_finished(status)) {
                (void) follow_stream_end(s, job_status_to_string(status), j->exit_status, j->error);
                /* the history stays in the spool; a later Follow opens the stream again */
                if (follow_stream_n_followers(s) == 0)
                        g_hash_table_remove(m->streams, &j->id);
        } else if (s)
                (void) follow_stream_status(s, job_status_to_string(status));

        commit_within(m, j, extra_mask | JOB_FIELD_BIT(JOB_FIELD_STATUS), within_usec, done, userdata);
}

void manager_apply_status(Manager *m, Job *j, JobStatus status, uint64_t extra_mask,
                          ManagerDoneFn done, void *userdata) {
        apply_status_within(m, j, status, extra_mask, 0, done, userdata);
}

static void set_status_within(Manager *m, Job *j, JobStatus status, uint64_t extra_mask,
                              uint64_t within_usec, ManagerDoneFn done, void *userdata) {
        GateStep step;

        status = gate_before(m, j, status, &extra_mask, &step);
        apply_status_within(m, j, status, extra_mask, within_usec, done, userdata);
        gate_after(m, j, &step);
}

void manager_set_status(Manager *m, Job *j, JobStatus status, uint64_t extra_mask,
                        ManagerDoneFn done, void *userdata) {
        set_status_within(m, j, status, extra_mask, 0, done, userdata);
}

/* ---- local execution: dispatch, attempts, retries ---- */

/* every attempt's scope is jobd-ID.scope: give systemd time to drop the last one */
#define RETRY_BACKOFF_MIN_USEC (UINT64_C(500) * 1000)
/* how long a claim's record may wait for a fsync it can share */
#define CLAIM_COMMIT_WITHIN_USEC (UINT64_C(10) * 1000)

static void free_execution_context(gpointer key, gpointer value, gpointer userdata) {
        g_free(execution_get_userdata(value));
}

static void stream_destroy(gpointer s) {
        follow_stream_free(s);
}

/* a followed stream keeps jobd from exiting while idle */
static void on_unfollowed(void *userdata) {
        Manager *m = userdata;

        idle_touch(m->idle);
        (void) sd_event_source_set_enabled(m->sweep_source, SD_EVENT_ONESHOT);
}

/* A stream holds two fds; one per finished job would run jobd out of them. Followers of a
 * finished job drain and leave (on_unfollowed); then its stream goes. */
static int on_sweep(sd_event_source *source, void *userdata) {
        Manager *m = userdata;
        GHashTableIter it;
        gpointer key, value;

        g_hash_table_iter_init(&it, m->streams);
        while (g_hash_table_iter_next(&it, &key, &value)) {
                Job *j = manager_get_job(m, *(uint64_t *) key);
                if ((!j || job_status_is_finished(j->status)) && follow_stream_n_followers(value) == 0)
                        g_hash_table_iter_remove(&it);
        }
        return 0;
}

static int open_state_subdir(int dir_fd, const char *name, int *ret_fd) {
        int fd;

        if (mkdirat(dir_fd, name, 0700) < 0 && errno != EEXIST)
                return -errno;
        fd = openat(dir_fd, name, O_RDONLY|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC);
        if (fd < 0)
                return -errno;
        *ret_fd = fd;
        return 0;
}

static unsigned running_of(Manager *m, const char *type) {
        return GPOINTER_TO_UINT(g_hash_table_lookup(m->running_by_type, type));
}

static void running_count_add(Manager *m, const char *type, int delta) {
        unsigned n = (unsigned) ((int) running_of(m, type) + delta);

        m->n_running = (unsigned) ((int) m->n_running + delta);
        if (n == 0)
                g_hash_table_remove(m->running_by_type, type);
        else
                g_hash_table_insert(m->running_by_type, g_strdup(type), GUINT_TO_POINTER(n));
}

void manager_queue_dispatch(Manager *m) {
        (void) sd_event_source_set_enabled(m->dispatch_source, SD_EVENT_ONESHOT);
}

static bool type_runs_locally(const JobType *t) {
        return t && (t->builtin || t->exec);
}

/* The best startable job over all local types: priority, then age, as within a type. */
static Job *pick_next(Manager *m) {
        GHashTableIter it;
        gpointer v;
        Job *best = NULL;

        g_hash_table_iter_init(&it, m->types);
        while (g_hash_table_iter_next(&it, NULL, &v)) {
                const JobType *t = v;
                Job *j;

                if (!type_runs_locally(t) || manager_type_paused(m, t->name))
                        continue;
                if (t->concurrency > 0 && running_of(m, t->name) >= t->concurrency)
                        continue;
                j = scheduler_peek(m->scheduler, t->name);
                if (j && (!best || job_compare_rank(j, best) < 0))
                        best = j;
        }
        return best;
}

static void on_running_durable(Manager *m, int error, Job *j, void *userdata) {
        if (!j || j->status != JOB_RUNNING)
                return;
        /* on error the running state is in memory and the store's rewrite persists it */
        if (g_hash_table_remove(m->cancel_requested, &j->id)) {
                g_auto(Outcome) o = { .status = JOB_CANCELLED, .exit_status = -1,
                                      .error = g_strdup("cancelled before it started") };
                manager_attempt_ended(m, j, &o);
                return;
        }
        execute_start(m, j);
}

static void start_attempt(Manager *m, Job *j) {
        uint64_t now = now_realtime_usec();

        j->attempt++;
        j->started_usec = now;
        j->deadline_usec = j->timeout_usec > 0 ? now + j->timeout_usec : 0;
        g_free(j->unit);
        j->unit = g_strdup_printf("jobd-%" G_GUINT64_FORMAT ".scope", j->id);
        g_free(j->token);
        j->token = token_new();
        j->progress = 0;
        g_clear_pointer(&j->progress_message, g_free);
        g_clear_pointer(&j->result, g_free);
        j->exit_status = -1;
        running_count_add(m, j->type, +1);

        manager_set_status(m, j, JOB_RUNNING,
                           JOB_FIELD_BIT(JOB_FIELD_ATTEMPT) | JOB_FIELD_BIT(JOB_FIELD_STARTED) |
                           JOB_FIELD_BIT(JOB_FIELD_DEADLINE) | JOB_FIELD_BIT(JOB_FIELD_UNIT) |
                           JOB_FIELD_BIT(JOB_FIELD_TOKEN) | JOB_FIELD_BIT(JOB_FIELD_PROGRESS) |
                           JOB_FIELD_BIT(JOB_FIELD_PROGRESS_MESSAGE) | JOB_FIELD_BIT(JOB_FIELD_RESULT) |
                           JOB_FIELD_BIT(JOB_FIELD_EXIT_STATUS),
                           on_running_durable, NULL);
}

static int on_dispatch(sd_event_source *source, void *userdata) {
        Manager *m = userdata;
        Job *j;

        if (!manager_accepts_changes(m))
                return 0;       /* the store's recovery queues a dispatch when it is back */
        if (idle_is_stopping(m->idle))
                return 0;       /* a scope started now would outlive us: the next jobd starts it */
        while (m->n_running < m->config.max_running && (j = pick_next(m)))
                start_attempt(m, j);
        lease_serve_waiters(m);
        return 0;
}

/* One timer for the earliest of the scheduled jobs' NotBeforeUSec and the queued jobs' expiry. */
static void manager_arm_due(Manager *m) {
        Job *due = scheduler_next_due(m->scheduler), *expiring = scheduler_next_expiry(m->scheduler);
        uint64_t t = MIN(due ? due->not_before_usec : UINT64_MAX,
                         expiring ? expiring->expire_at_usec : UINT64_MAX);

        if (t == UINT64_MAX) {
                (void) sd_event_source_set_enabled(m->due_source, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(m->due_source, t);
        (void) sd_event_source_set_enabled(m->due_source, SD_EVENT_ONESHOT);
}

static int on_due(sd_event_source *source, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        uint64_t now = now_realtime_usec();
        Job *j;

        while ((j = scheduler_next_due(m->scheduler)) && j->not_before_usec <= now)
                manager_set_status(m, j, JOB_PENDING, 0, NULL, NULL);
        gate_expire(m, now);
        manager_arm_due(m);
        return 0;
}

static uint64_t retry_backoff(const Job *j) {
        uint64_t b = j->retry_backoff_usec;

        /* doubling per failed attempt, capped */
        for (uint32_t i = 1; i < j->attempt && b < RETRY_BACKOFF_MAX_USEC; i++)
                b *= 2;
        b = CLAMP(b, RETRY_BACKOFF_MIN_USEC, RETRY_BACKOFF_MAX_USEC);
        /* plus up to a quarter more, at random: jobs that failed together (a database that was
         * down) do not all come back in the same instant; never less than the backoff itself */
        return b + (uint64_t) g_random_double_range(0, (double) b / 4);
}

void manager_attempt_ended(Manager *m, Job *j, Outcome *o) {
        manager_attempt_ended_full(m, j, o, NULL, NULL);
}

void manager_attempt_ended_full(Manager *m, Job *j, Outcome *o, ManagerDoneFn done, void *userdata) {
        uint64_t mask = JOB_FIELD_BIT(JOB_FIELD_EXIT_STATUS) | JOB_FIELD_BIT(JOB_FIELD_CPU_USAGE) |
                        JOB_FIELD_BIT(JOB_FIELD_MEMORY_PEAK) | JOB_FIELD_BIT(JOB_FIELD_ERROR) |
                        JOB_FIELD_BIT(JOB_FIELD_RESULT) | JOB_FIELD_BIT(JOB_FIELD_OUTPUTS) |
                        JOB_FIELD_BIT(JOB_FIELD_TOKEN) | JOB_FIELD_BIT(JOB_FIELD_DEADLINE) |
                        JOB_FIELD_BIT(JOB_FIELD_WORKER);
        FollowStream *s = manager_get_stream(m, j, false);

        g_assert(j->status == JOB_RUNNING);
        if (j->claimed)
                lease_attempt_over(m, j);
        else
                running_count_add(m, j->type, -1);
        j->claimed = false;
        g_hash_table_remove(m->cancel_requested, &j->id);

        j->exit_status = o->exit_status;
        j->cpu_usage_nsec = o->cpu_usage_nsec;
        j->memory_peak_bytes = o->memory_peak_bytes;
        g_strfreev(j->outputs);
        j->outputs = g_steal_pointer(&o->outputs);
        g_free(j->error);
        j->error = g_steal_pointer(&o->error);
        g_free(j->result);
        j->result = g_steal_pointer(&o->result);
        g_clear_pointer(&j->token, g_free);     /* the attempt is over: its token is stale now */
        g_clear_pointer(&j->worker, g_free);    /* Worker names the holder of the current attempt */
        j->deadline_usec = 0;
        manager_queue_dispatch(m);

        if (o->status == JOB_FAILED && o->retryable && j->attempt < j->max_attempts) {
                uint64_t backoff = o->retry_after_usec > 0 ? o->retry_after_usec : retry_backoff(j);

                log_job(LOG_NOTICE, j->id, j->type, "Job %" G_GUINT64_FORMAT " attempt %u of %u failed (%s); "
                        "retrying in %" G_GUINT64_FORMAT " ms.", j->id, j->attempt, j->max_attempts,
                        j->error ?: "", backoff / 1000);
                if (s) {
                        g_autofree char *line = g_strdup_printf("attempt %u of %u failed: %s", j->attempt,
                                                                j->max_attempts, j->error ?: "");
                        (void) follow_stream_log(s, line, strlen(line));
                }
                j->not_before_usec = now_realtime_usec() + backoff;
                manager_set_status(m, j, backoff > 0 ? JOB_SCHEDULED : JOB_PENDING,
                                   mask | JOB_FIELD_BIT(JOB_FIELD_NOT_BEFORE), done, userdata);
                return;
        }

        /* success at debug: a journal line per job costs journald more than the job costs jobd */
        log_job(o->status == JOB_SUCCEEDED ? LOG_DEBUG : LOG_NOTICE, j->id, j->type,
                "Job %" G_GUINT64_FORMAT " %s%s%s.", j->id, job_status_to_string(o->status),
                j->error ? ": " : "", j->error ?: "");
        manager_set_status(m, j, o->status, mask, done, userdata);
}

static bool has_no_input(const Job *j, void *userdata) {
        return !j->has_input;
}

Job *manager_pick_pending(Manager *m, char *const *types, bool without_input) {
        Job *best = NULL;

        for (char *const *t = types; t && *t; t++) {
                if (manager_type_paused(m, *t))
                        continue;
                Job *j = without_input ? scheduler_find(m->scheduler, *t, has_no_input, NULL) :
                                         scheduler_peek(m->scheduler, *t);
                if (j && (!best || job_compare_rank(j, best) < 0))
                        best = j;
        }
        return best;
}

void manager_claim(Manager *m, Job *j, const char *sender, bool track, ManagerDoneFn done, void *userdata) {
        uint64_t now = now_realtime_usec();

        j->attempt++;
        j->started_usec = now;
        j->deadline_usec = now + lease_length(m, j);
        g_clear_pointer(&j->unit, g_free);
        g_free(j->worker);
        j->worker = g_strdup(sender);
        j->tracked = track;
        g_free(j->token);
        j->token = token_new();
        j->progress = 0;
        g_clear_pointer(&j->progress_message, g_free);
        g_clear_pointer(&j->result, g_free);
        j->exit_status = -1;
        j->claimed = true;

        /* Claim is answered before its record is durable (see lease.c): the record rides the
         * worker's next call that waits for the disk, usually its Complete. */
        set_status_within(m, j, JOB_RUNNING,
                          JOB_FIELD_BIT(JOB_FIELD_ATTEMPT) | JOB_FIELD_BIT(JOB_FIELD_STARTED) |
                          JOB_FIELD_BIT(JOB_FIELD_DEADLINE) | JOB_FIELD_BIT(JOB_FIELD_UNIT) |
                          JOB_FIELD_BIT(JOB_FIELD_WORKER) | JOB_FIELD_BIT(JOB_FIELD_TRACKED) |
                          JOB_FIELD_BIT(JOB_FIELD_TOKEN) | JOB_FIELD_BIT(JOB_FIELD_PROGRESS) |
                          JOB_FIELD_BIT(JOB_FIELD_PROGRESS_MESSAGE) | JOB_FIELD_BIT(JOB_FIELD_RESULT) |
                          JOB_FIELD_BIT(JOB_FIELD_EXIT_STATUS),
                          CLAIM_COMMIT_WITHIN_USEC, done, userdata);
}

void manager_release(Manager *m, Job *j, uint64_t delay_usec, ManagerDoneFn done, void *userdata) {
        lease_attempt_over(m, j);
        j->claimed = false;
        /* given back untouched: this attempt does not count */
        if (j->attempt > 0)
                j->attempt--;
        g_clear_pointer(&j->token, g_free);
        g_clear_pointer(&j->worker, g_free);
        j->deadline_usec = 0;
        j->not_before_usec = delay_usec > 0 ? now_realtime_usec() + delay_usec : 0;
        manager_set_status(m, j, delay_usec > 0 ? JOB_SCHEDULED : JOB_PENDING,
                           JOB_FIELD_BIT(JOB_FIELD_ATTEMPT) | JOB_FIELD_BIT(JOB_FIELD_TOKEN) |
                           JOB_FIELD_BIT(JOB_FIELD_DEADLINE) | JOB_FIELD_BIT(JOB_FIELD_NOT_BEFORE) |
                           JOB_FIELD_BIT(JOB_FIELD_WORKER),
                           done, userdata);
}

FollowStream *manager_get_stream(Manager *m, Job *j, bool create) {
        FollowStream *s = g_hash_table_lookup(m->streams, &j->id);
        _cleanup_(closep) int fd = -1;
        int r;

        if (s || !create)
                return s;
        fd = execute_open_spool(m, j->id, true);
        if (fd < 0) {
                log_job(LOG_WARNING, j->id, j->type, "Failed to open the spool folder: %s", g_strerror(-fd));
                return NULL;
        }
        r = follow_stream_new(&s, m->event, fd, j->id);
        if (r < 0) {
                log_job(LOG_WARNING, j->id, j->type, "Failed to open the event stream: %s", g_strerror(-r));
                return NULL;
        }
        g_hash_table_insert(m->streams, g_memdup2(&j->id, sizeof(j->id)), s);
        follow_stream_set_unfollowed_fn(s, on_unfollowed, m);
        /* Streams are made when first needed (a Follow, a log line, a progress report), not
         * for every attempt: most jobs are never followed, and a folder and a file per job
         * cost more than the rest of a worker's cycle. So a new stream starts with the status
         * the job has now; a finished job whose history never got its end ends now. */
        if (!job_status_is_finished(j->status))
                (void) follow_stream_status(s, job_status_to_string(j->status));
        else if (!follow_stream_ended(s))
                (void) follow_stream_end(s, job_status_to_string(j->status), j->exit_status, j->error);
        return s;
}

int manager_cancel_running(Manager *m, Job *j) {
        int r;

        if (j->claimed) {
                /* a worker's attempt ends now: its token is stale from here on, so its next call
                 * (a Heartbeat at the latest) tells it to stop */
                g_auto(Outcome) o = { .status = JOB_CANCELLED, .exit_status = -1,
                                      .error = g_strdup("cancelled while a worker held it") };
                manager_attempt_ended(m, j, &o);
                return 0;
        }

        r = execute_cancel(m, j);

        if (r == -ESRCH) {
                /* running but its scope is still being set up: it ends before it starts */
                g_hash_table_add(m->cancel_requested, g_memdup2(&j->id, sizeof(j->id)));
                return 0;
        }
        return r;
}

/* A retried job starts a new life: its old history ended with an end event, after which a stream
 * takes nothing more, so the history starts anew (seq from 1). Its followers had their EOF. */
static void restart_history(Manager *m, Job *j) {
        _cleanup_(closep) int spool = -1;

        g_hash_table_remove(m->streams, &j->id);
        spool = execute_open_spool(m, j->id, false);
        if (spool >= 0 && unlinkat(spool, FOLLOW_HISTORY_NAME, 0) < 0 && errno != ENOENT)
                log_job(LOG_WARNING, j->id, j->type, "Failed to remove the old event history: %s",
                        g_strerror(errno));
}

void manager_retry(Manager *m, Job *j, ManagerDoneFn done, void *userdata) {
        restart_history(m, j);
        j->attempt = 0;
        j->exit_status = -1;
        j->not_before_usec = 0;
        j->finished_usec = 0;
        /* the expiry counts from the Retry, as it did from the Submit */
        j->expire_at_usec = j->expire_usec > 0 ? now_realtime_usec() + j->expire_usec : 0;
        g_clear_pointer(&j->error, g_free);
        g_clear_pointer(&j->result, g_free);
        /* blocked again while a dependency (retried too) has not succeeded */
        gate_admit(m, j,
                   JOB_FIELD_BIT(JOB_FIELD_ATTEMPT) | JOB_FIELD_BIT(JOB_FIELD_EXIT_STATUS) |
                   JOB_FIELD_BIT(JOB_FIELD_NOT_BEFORE) | JOB_FIELD_BIT(JOB_FIELD_FINISHED) |
                   JOB_FIELD_BIT(JOB_FIELD_ERROR) | JOB_FIELD_BIT(JOB_FIELD_RESULT) |
                   JOB_FIELD_BIT(JOB_FIELD_EXPIRE_AT),
                   done, userdata);
}

void manager_job_log(Manager *m, Job *j, const char *line, size_t size) {
        g_autofree char *message = g_malloc(strlen("MESSAGE=") + size);
        g_autofree char *id_field = g_strdup_printf("JOBD_JOB_ID=%" G_GUINT64_FORMAT, j->id);
        g_autofree char *type_field = g_strconcat("JOBD_TYPE=", j->type, NULL);
        g_autofree char *worker_field = j->worker ? g_strconcat("JOBD_WORKER=", j->worker, NULL) : NULL;
        FollowStream *s;

        /* the journal takes bytes: the field carries the line as the job wrote it */
        memcpy(message, "MESSAGE=", strlen("MESSAGE="));
        memcpy(message + strlen("MESSAGE="), line, size);
        struct iovec iov[] = {
                { .iov_base = message, .iov_len = strlen("MESSAGE=") + size },
                { .iov_base = (char *) "PRIORITY=6", .iov_len = strlen("PRIORITY=6") },
                { .iov_base = (char *) "SYSLOG_IDENTIFIER=jobd-job", .iov_len = strlen("SYSLOG_IDENTIFIER=jobd-job") },
                { .iov_base = id_field, .iov_len = strlen(id_field) },
                { .iov_base = type_field, .iov_len = strlen(type_field) },
                { .iov_base = worker_field, .iov_len = worker_field ? strlen(worker_field) : 0 },
        };
        (void) sd_journal_sendv(iov, G_N_ELEMENTS(iov) - (worker_field ? 0 : 1));

        s = manager_get_stream(m, j, true);
        if (s)
                (void) follow_stream_log(s, line, size);
}

void manager_progress(Manager *m, Job *j, unsigned percent, const char *message) {
        /* a progress report makes the stream, like a log line: a job that reports and ends before
         * anyone follows it must still have the report in its history */
        FollowStream *s = manager_get_stream(m, j, true);
        g_autofree char *path = job_path(j->id);

        j->progress = percent;
        g_free(j->progress_message);
        j->progress_message = g_strdup(message);
        if (s)
                (void) follow_stream_progress(s, percent, message);
        (void) sd_bus_emit_signal(m->bus, path, JOBD_JOB_INTERFACE, "Progress", "us", percent, message);
        manager_commit_advisory(m, j, JOB_FIELD_BIT(JOB_FIELD_PROGRESS) | JOB_FIELD_BIT(JOB_FIELD_PROGRESS_MESSAGE));
}

void manager_purge(Manager *m, Job *j) {
        g_autoptr(GByteArray) b = g_byte_array_new();
        uint64_t id = j->id;
        int r;

        g_assert(job_status_is_finished(j->status));

        /* Nobody waits for it: a purge lost in a crash is done again after the restart. If the
         * store fails, its rewrite is made from memory, where the job is gone already. */
        record_begin(b, RECORD_JOB_PURGE, id);
        r = store_append(m->store, b->data, b->len, NULL, NULL);
        if (r < 0)
                log_job(LOG_WARNING, id, j->type, "Failed to record the purge: %s", g_strerror(-r));

        retention_untrack(m, j);
        g_hash_table_remove(m->streams, &id);
        g_hash_table_remove(m->cancel_requested, &id);
        execute_remove_files(m, id);
        g_tree_remove(m->jobs, &id);
}

/* ---- crash recovery ---- */

static void on_stale_scope(const char *unit_name, int r, void *userdata) {
        Manager *m = userdata;
        uint64_t id;
        Job *j;

        if (sscanf(unit_name, "jobd-%" G_GUINT64_FORMAT ".scope", &id) != 1)
                return;
        j = manager_get_job(m, id);
        if (!j || j->status != JOB_RUNNING || g_hash_table_contains(m->executions, &id))
                return;

        g_auto(Outcome) o = { .status = JOB_FAILED, .exit_status = -1, .retryable = true };
        o.error = g_strdup_printf("jobd stopped while attempt %u ran; %s", j->attempt,
                                  r > 0 ? "its scope was found and stopped" :
                                  r == 0 ? "its scope was gone" : "its scope could not be stopped");
        manager_attempt_ended(m, j, &o);
}

static gboolean recover_one(gpointer key, gpointer value, gpointer userdata) {
        Manager *m = userdata;
        Job *j = value;
        int r;

        if (j->status != JOB_RUNNING || !j->unit)
                return FALSE;
        /* An attempt that was running when jobd died is lost: whatever it did since is not
         * recorded. Its scope, if still there, is stopped rather than re-adopted: its stdout
         * (the Result) and stderr pipes died with jobd. */
        r = runner_stop_stale_scope(m->runner, j->unit, on_stale_scope, m);
        if (r < 0)
                on_stale_scope(j->unit, r, m);
        return FALSE;
}

static void manager_recover_running(Manager *m) {
        g_tree_foreach(m->jobs, recover_one, m);
}
