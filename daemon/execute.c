/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Owns, per running local job, an ExecContext (the runner's userdata) and the job's workspace
 * folder (state/workspaces/ID, 0700, owned by the job's user) from the start of an attempt until
 * its end (or its retention). Outputs are copied, never moved or linked, into state/spool/ID/
 * outputs, owned by root: the job's user cannot change them afterwards.
 *
 * Credentials: the exec type runs as exactly the submitter (uid, primary gid from the user
 * database, the groups the bus saw); a type with User= as that user with its groups from the
 * user database; a type without User= as root. In user mode every job runs as jobd's own user,
 * with the session bus (XDG_RUNTIME_DIR, DBUS_SESSION_BUS_ADDRESS) in its environment.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <json-glib/json-glib.h>

#include "cleanup.h"
#include "execute.h"
#include "follow.h"
#include "fs-util.h"
#include "log.h"
#include "parse-util.h"
#include "params.h"

typedef struct ExecContext {
        Manager *manager;
        uint64_t id;
        uid_t uid;
        gid_t gid;
} ExecContext;

void outcome_done(Outcome *o) {
        g_clear_pointer(&o->result, g_free);
        g_clear_pointer(&o->error, g_free);
        g_clear_pointer(&o->outputs, g_strfreev);
}

static char *id_name(uint64_t id) {
        return g_strdup_printf("%" G_GUINT64_FORMAT, id);
}

int execute_open_spool(Manager *m, uint64_t id, bool create) {
        g_autofree char *name = id_name(id);
        int fd;

        if (create && mkdirat(m->spool_fd, name, 0700) < 0 && errno != EEXIST)
                return -errno;
        fd = openat(m->spool_fd, name, O_RDONLY|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

typedef struct Expiry {
        Manager *manager;
        uint64_t id;
} Expiry;

static int on_workspace_expired(sd_event_source *s, uint64_t usec, void *userdata) {
        Expiry *e = userdata;
        g_autofree char *name = id_name(e->id);

        (void) rm_rf_at(e->manager->workspaces_fd, name);
        /* Dropping the loop's reference frees the source (and e, by its destroy callback) once
         * this dispatch is over. set_floating(false) is that drop: it hands the loop's reference
         * to a caller that holds none, so no unref follows it. */
        (void) sd_event_source_set_floating(s, false);
        return 0;
}

void execute_expire_workspace(Manager *m, uint64_t id, uint64_t at_usec) {
        g_autofree char *name = id_name(id);
        sd_event_source *s;
        Expiry *e;

        if (at_usec == 0 || at_usec <= (uint64_t) g_get_real_time() || at_usec == UINT64_MAX) {
                /* UINT64_MAX (infinity) keeps it until the job is purged */
                if (at_usec != UINT64_MAX)
                        (void) rm_rf_at(m->workspaces_fd, name);
                return;
        }
        e = g_new0(Expiry, 1);
        *e = (Expiry) { .manager = m, .id = id };
        /* one floating source per kept workspace, owned by the loop: it dies with the loop if
         * jobd stops first, and the next jobd sets it up again from the job's FinishedUSec */
        if (sd_event_add_time(m->event, &s, CLOCK_REALTIME, at_usec, 0, on_workspace_expired, e) < 0) {
                g_free(e);
                return;
        }
        (void) sd_event_source_set_destroy_callback(s, g_free);
        (void) sd_event_source_set_floating(s, true);
        sd_event_source_unref(s);
}

void execute_remove_files(Manager *m, uint64_t id) {
        g_autofree char *name = id_name(id);

        (void) rm_rf_at(m->spool_fd, name);
        (void) rm_rf_at(m->workspaces_fd, name);
}

/* ---- building the RunSpec ---- */

typedef struct Launch {
        char **argv;
        char **env;
        char *cwd;
        uid_t uid;
        gid_t gid;
        GArray *groups;
        int stdin_fd;
        char *workspace;
} Launch;

static void launch_done(Launch *l) {
        g_strfreev(l->argv);
        g_strfreev(l->env);
        g_free(l->cwd);
        if (l->groups)
                g_array_unref(l->groups);
        if (l->stdin_fd >= 0)
                (void) close(l->stdin_fd);
        g_free(l->workspace);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(Launch, launch_done)

/* argv, cwd and env of an exec job, from its (validated) parameters */
static gboolean launch_from_exec_parameters(Launch *l, const char *parameters, GError **error) {
        return params_exec_decode(parameters, &l->argv, &l->cwd, &l->env, error);
}

/* The passwd entry of the type's User= (a name or a uid), NULL if none. */
static struct passwd *type_user(const JobType *t, struct passwd *pw, char *buf, size_t size) {
        struct passwd *result = NULL;
        unsigned uid;

        if (parse_unsigned(t->user, &uid) >= 0)
                (void) getpwuid_r((uid_t) uid, pw, buf, size, &result);
        else
                (void) getpwnam_r(t->user, pw, buf, size, &result);
        return result;
}

/* User mode: jobd cannot change who it is, so every job runs as its user, with its groups. A type
 * whose User= names someone else, or an exec job of another submitter (root on the user's bus),
 * cannot be run and says so. */
static gboolean launch_credentials_user_mode(Launch *l, const Job *j, const JobType *t, GError **error) {
        int n = getgroups(0, NULL);

        l->uid = geteuid();
        l->gid = getegid();
        if (t->builtin && j->owner != l->uid)
                return g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_PERM,
                                   "This jobd runs as uid %u (user mode) and cannot run an exec job as its "
                                   "submitter, uid %u; submit it to the system's jobd.",
                                   (unsigned) l->uid, (unsigned) j->owner), FALSE;
        if (!t->builtin && t->user) {
                struct passwd pw, *result;
                char buf[4096];

                result = type_user(t, &pw, buf, sizeof(buf));
                if (!result || result->pw_uid != l->uid)
                        return g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_PERM,
                                           "User=%s of type %s: a user-mode jobd runs jobs only as its own "
                                           "user (uid %u); leave User= out for it.",
                                           t->user, t->name, (unsigned) l->uid), FALSE;
        }
        if (n > 0) {
                g_array_set_size(l->groups, (guint) n);
                n = getgroups(n, (gid_t *) (void *) l->groups->data);
        }
        g_array_set_size(l->groups, n > 0 ? (guint) n : 0);
        return TRUE;
}

static gboolean launch_credentials(Launch *l, Manager *m, const Job *j, const JobType *t, GError **error) {
        struct passwd pw, *result = NULL;
        char buf[4096];
        int n = 64;

        l->groups = g_array_new(FALSE, FALSE, sizeof(gid_t));
        if (m->user_mode)
                return launch_credentials_user_mode(l, j, t, error);
        if (t->builtin) {
                if (j->gid == (gid_t) -1)
                        return g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NOENT,
                                           "uid %u has no entry in the user database; exec jobs run as "
                                           "their submitter and need one.", (unsigned) j->owner), FALSE;
                l->uid = j->owner;
                l->gid = j->gid;
                g_array_append_vals(l->groups, j->groups->data, j->groups->len);
                return TRUE;
        }
        if (!t->user) {
                l->uid = 0;
                l->gid = 0;
                return TRUE;
        }

        result = type_user(t, &pw, buf, sizeof(buf));
        if (!result)
                return g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NOENT,
                                   "User=%s of type %s does not exist.", t->user, t->name), FALSE;
        l->uid = result->pw_uid;
        l->gid = result->pw_gid;
        g_array_set_size(l->groups, n);
        if (getgrouplist(result->pw_name, result->pw_gid, (gid_t *) (void *) l->groups->data, &n) < 0) {
                g_array_set_size(l->groups, n);
                (void) getgrouplist(result->pw_name, result->pw_gid, (gid_t *) (void *) l->groups->data, &n);
        }
        g_array_set_size(l->groups, n > 0 ? (guint) n : 0);
        return TRUE;
}

static gboolean launch_workspace(Launch *l, Manager *m, const Job *j, GError **error) {
        g_autofree char *name = id_name(j->id);
        g_autofree char *outputs = g_build_filename(name, "outputs", NULL);

        /* a retry starts from a clean workspace */
        (void) rm_rf_at(m->workspaces_fd, name);
        if (mkdirat(m->workspaces_fd, name, 0700) < 0 ||
            fchownat(m->workspaces_fd, name, l->uid, l->gid, AT_SYMLINK_NOFOLLOW) < 0 ||
            mkdirat(m->workspaces_fd, outputs, 0700) < 0 ||
            fchownat(m->workspaces_fd, outputs, l->uid, l->gid, AT_SYMLINK_NOFOLLOW) < 0)
                return g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(errno),
                                   "Failed to create the workspace: %s", g_strerror(errno)), FALSE;
        l->workspace = g_build_filename(m->state_dir, "workspaces", name, NULL);
        return TRUE;
}

static gboolean launch_stdin(Launch *l, Manager *m, const Job *j, const JobType *t, GError **error) {
        int fd;

        l->stdin_fd = -1;
        if (j->has_input && (t->builtin || t->stdin_mode == JOBTYPE_STDIN_INPUT)) {
                _cleanup_(closep) int spool = execute_open_spool(m, j->id, false);

                fd = spool >= 0 ? openat(spool, "input", O_RDONLY|O_NOFOLLOW|O_CLOEXEC|O_NOCTTY) : -1;
                if (fd < 0)
                        return g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NOENT,
                                           "The job's input is gone from the spool."), FALSE;
                l->stdin_fd = fd;
                return TRUE;
        }
        if (t->builtin || t->stdin_mode != JOBTYPE_STDIN_PARAMETERS)
                return TRUE;
        fd = memfd_new_with_data("jobd-parameters", j->parameters ?: "{}", strlen(j->parameters ?: "{}"));
        if (fd < 0)
                return g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(-fd),
                                   "Failed to pass the parameters on stdin: %s", g_strerror(-fd)), FALSE;
        l->stdin_fd = fd;
        return TRUE;
}

/* A user-mode job is one of the user's services: it reaches the session bus as they do, so
 * `jobctl --user progress` (and notify-send, …) work from inside it. */
static void launch_add_session(GPtrArray *env) {
        static const char *const names[] = { "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS" };

        for (size_t i = 0; i < G_N_ELEMENTS(names); i++) {
                const char *v = getenv(names[i]);

                if (v && *v)
                        g_ptr_array_add(env, g_strconcat(names[i], "=", v, NULL));
        }
}

static gboolean launch_prepare(Launch *l, Manager *m, const Job *j, const JobType *t, GError **error) {
        g_autoptr(GPtrArray) env = g_ptr_array_new_with_free_func(g_free);

        if (t->builtin) {
                if (!launch_from_exec_parameters(l, j->parameters, error))
                        return FALSE;
        } else {
                l->argv = g_strdupv(t->exec);
                l->env = g_new0(char *, 1);
        }
        if (!launch_credentials(l, m, j, t, error) || !launch_workspace(l, m, j, error) ||
            !launch_stdin(l, m, j, t, error))
                return FALSE;

        /* later entries win: an exec job's own env may override the session's */
        if (m->user_mode)
                launch_add_session(env);
        for (char **e = l->env; *e; e++)
                g_ptr_array_add(env, g_strdup(*e));
        g_ptr_array_add(env, g_strdup_printf("JOBD_JOB_ID=%" G_GUINT64_FORMAT, j->id));
        g_ptr_array_add(env, g_strdup_printf("JOBD_TYPE=%s", j->type));
        g_ptr_array_add(env, g_strdup_printf("JOBD_TOKEN=%s", j->token));
        g_ptr_array_add(env, g_strdup_printf("JOBD_ATTEMPT=%u", j->attempt));
        g_ptr_array_add(env, g_strdup("JOBD_WORKSPACE=/tmp"));
        g_ptr_array_add(env, NULL);
        g_strfreev(l->env);
        l->env = (char **) g_ptr_array_free(g_steal_pointer(&env), FALSE);
        return TRUE;
}

/* ---- the runner's reports ---- */

static Job *context_job(ExecContext *c) {
        return manager_get_job(c->manager, c->id);
}

static void on_started(Execution *e, void *userdata) {
        ExecContext *c = userdata;
        Job *j = context_job(c);

        if (j)
                log_job(LOG_DEBUG, j->id, j->type, "Job %" G_GUINT64_FORMAT " started in %s.", j->id, j->unit);
}

static void on_log(Execution *e, const char *line, size_t size, void *userdata) {
        ExecContext *c = userdata;
        Job *j = context_job(c);

        if (j)
                manager_job_log(c->manager, j, line, size);
}

static char *result_from_stdout(const RunResult *r) {
        return params_result_from_output(r->stdout_data, r->stdout_size, r->stdout_truncated);
}

typedef struct Collect {
        GPtrArray *names;
        uint64_t total;
        char *error;
} Collect;

static void collect_one(Manager *m, ExecContext *c, int from_fd, int to_fd, const char *name, Collect *col) {
        _cleanup_(closep) int in = -1, out = -1;
        struct stat st;
        uint64_t copied;
        int r;

        if (!filename_is_plain(name)) {
                log_job(LOG_WARNING, c->id, NULL, "Output name is not a plain file name, ignored.");
                return;
        }
        in = openat(from_fd, name, O_RDONLY|O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC|O_NOCTTY);
        if (in < 0 || fstat(in, &st) < 0 || !S_ISREG(st.st_mode) || (c->uid != 0 && st.st_uid != c->uid)) {
                /* symlinks (ELOOP), devices, fifos and files the job's user does not own (a hard
                 * link to something else) are never read with jobd's privileges */
                log_job(LOG_WARNING, c->id, NULL, "Output '%s' is not a regular file of the job's user, refused.", name);
                return;
        }
        if (col->names->len >= EXECUTE_OUTPUTS_MAX || (uint64_t) st.st_size > m->config.output_quota_bytes - col->total) {
                if (!col->error)
                        col->error = g_strdup_printf("outputs exceed OutputQuotaBytes=%" G_GUINT64_FORMAT
                                                     " bytes or %u files", m->config.output_quota_bytes,
                                                     EXECUTE_OUTPUTS_MAX);
                return;
        }
        out = openat(to_fd, name, O_WRONLY|O_CREAT|O_TRUNC|O_NOFOLLOW|O_CLOEXEC, 0600);
        if (out < 0) {
                log_job(LOG_WARNING, c->id, NULL, "Failed to store output '%s': %s", name, g_strerror(errno));
                return;
        }
        r = copy_bytes(in, out, m->config.output_quota_bytes - col->total, &copied);
        if (r < 0) {
                (void) unlinkat(to_fd, name, 0);
                if (!col->error && r == -EFBIG)
                        col->error = g_strdup_printf("outputs exceed OutputQuotaBytes=%" G_GUINT64_FORMAT " bytes",
                                                     m->config.output_quota_bytes);
                return;
        }
        col->total += copied;
        g_ptr_array_add(col->names, g_strdup(name));
}

static gint compare_names(gconstpointer a, gconstpointer b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

/* Copies workspace/outputs/ into spool/outputs/; sets o->outputs, or o->error past the quota. */
static void collect_outputs(Manager *m, ExecContext *c, Outcome *o) {
        g_autofree char *name = id_name(c->id);
        g_autofree char *from = g_build_filename(name, "outputs", NULL);
        _cleanup_(closep) int spool = -1, to = -1;
        Collect col = { .names = g_ptr_array_new_with_free_func(g_free) };
        struct dirent *de;
        DIR *d;
        int fd;

        fd = openat(m->workspaces_fd, from, O_RDONLY|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC);
        if (fd < 0 || !(d = fdopendir(fd))) {
                if (fd >= 0)
                        (void) close(fd);
                g_ptr_array_unref(col.names);
                return;
        }
        while ((de = readdir(d))) {
                if (g_str_equal(de->d_name, ".") || g_str_equal(de->d_name, ".."))
                        continue;
                /* the spool folder is made for the first output, not for every job */
                if (to < 0) {
                        spool = execute_open_spool(m, c->id, true);
                        if (spool >= 0 && (mkdirat(spool, "outputs", 0700) >= 0 || errno == EEXIST))
                                to = openat(spool, "outputs", O_RDONLY|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC);
                        if (to < 0)
                                break;
                }
                collect_one(m, c, dirfd(d), to, de->d_name, &col);
        }
        closedir(d);

        g_ptr_array_sort(col.names, compare_names);
        g_ptr_array_add(col.names, NULL);
        o->outputs = (char **) g_ptr_array_free(col.names, FALSE);
        if (col.error && o->status == JOB_SUCCEEDED) {
                o->status = JOB_FAILED;
                o->retryable = false;
                g_clear_pointer(&o->result, g_free);
        }
        if (col.error) {
                g_free(o->error);
                o->error = col.error;
        }
}

static void outcome_from_result(Outcome *o, const RunResult *r) {
        o->exit_status = r->exit_status;
        o->cpu_usage_nsec = r->cpu_usage_nsec;
        o->memory_peak_bytes = r->memory_peak_bytes;

        if (r->end == RUN_EXITED && r->exit_status == 0) {
                o->status = JOB_SUCCEEDED;
                o->result = result_from_stdout(r);
                return;
        }
        o->status = r->end == RUN_CANCELLED ? JOB_CANCELLED : JOB_FAILED;
        o->retryable = r->end != RUN_CANCELLED;
        if (r->tasks_max_hit)
                o->error = g_strdup_printf("%s; the job hit its TasksMax= limit (a fork was refused)",
                                           r->error ?: "failed");
        else
                o->error = g_strdup(r->error ?: "failed");
}

static void on_done(Execution *e, const RunResult *r, void *userdata) {
        g_autofree ExecContext *c = userdata;
        Manager *m = c->manager;
        g_auto(Outcome) o = {};
        Job *j = context_job(c);

        g_hash_table_remove(m->executions, &c->id);
        if (!j)
                return;

        outcome_from_result(&o, r);
        if (r->stdout_truncated)
                log_job(LOG_WARNING, j->id, j->type, "Job %" G_GUINT64_FORMAT " wrote more than %u bytes on "
                        "stdout; the Result holds the first ones as a string.", j->id, EXECUTE_RESULT_MAX);
        collect_outputs(m, c, &o);
        execute_expire_workspace(m, j->id, j->retention_usec == 0 ? 0 :
                                 (uint64_t) g_get_real_time() + j->retention_usec);
        manager_attempt_ended(m, j, &o);
}

void execute_start(Manager *m, Job *j) {
        g_auto(Launch) l = { .stdin_fd = -1 };
        g_autoptr(GError) error = NULL;
        g_autofree char *description = NULL;
        JobType *t = manager_get_type(m, j->type);
        ExecContext *c;
        Execution *e;
        RunSpec spec;
        int r;

        if (!t || (!t->builtin && !t->exec)) {
                g_auto(Outcome) o = { .status = JOB_FAILED, .exit_status = -1,
                                      .error = g_strdup_printf("type %s is no longer configured to run locally",
                                                               j->type) };
                manager_attempt_ended(m, j, &o);
                return;
        }
        if (!launch_prepare(&l, m, j, t, &error)) {
                g_auto(Outcome) o = { .status = JOB_FAILED, .exit_status = -1, .retryable = true,
                                      .error = g_strdup(error->message) };
                manager_attempt_ended(m, j, &o);
                return;
        }

        description = g_strdup_printf("jobd job %" G_GUINT64_FORMAT " (%s)", j->id, j->type);
        spec = (RunSpec) {
                .job_id = j->id,
                .type = j->type,
                .unit_name = j->unit,
                /* in user mode the user manager's jobd.slice, below user@UID.service */
                .slice = "jobd.slice",
                .description = description,
                .argv = l.argv,
                .env = l.env,
                .cwd = l.cwd,
                .uid = l.uid,
                .gid = l.gid,
                .groups = (const gid_t *) (void *) l.groups->data,
                .n_groups = l.groups->len,
                .nice = j->nice == JOB_NICE_UNSET ? t->nice : j->nice,
                .stdin_fd = l.stdin_fd,
                .workspace = l.workspace,
                .memory_max = j->memory_max,
                .tasks_max = j->tasks_max,
                .cpu_quota_percent = j->cpu_quota_percent,
                .runtime_max_usec = j->timeout_usec,
                .stop_timeout_usec = EXECUTE_STOP_TIMEOUT_USEC,
                .result_max = EXECUTE_RESULT_MAX,
        };
        c = g_new0(ExecContext, 1);
        *c = (ExecContext) { .manager = m, .id = j->id, .uid = l.uid, .gid = l.gid };
        r = runner_start(m->runner, &spec, on_started, on_log, on_done, c, &e);
        if (r < 0) {
                g_auto(Outcome) o = { .status = JOB_FAILED, .exit_status = -1, .retryable = true,
                                      .error = g_strdup_printf("failed to start the scope: %s", g_strerror(-r)) };
                g_free(c);
                manager_attempt_ended(m, j, &o);
                return;
        }
        g_hash_table_insert(m->executions, &c->id, e);
}

int execute_cancel(Manager *m, Job *j) {
        Execution *e = g_hash_table_lookup(m->executions, &j->id);

        if (!e)
                return -ESRCH;
        return execution_cancel(e);
}
