/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * org.jobd.Jobd1.Job. One fallback vtable serves every job: the find callback maps the path to
 * the manager's Job, so no per-job slot exists and a million jobs cost no bus state. Protected
 * properties (Parameters, Result, Error, Outputs) only invalidate in PropertiesChanged, so
 * their values never go out in a broadcast; a Get answers them to the owner, root and polkit-
 * authorized administrators only (auth.h), others read them empty.
 */

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include <fcntl.h>

#include "auth.h"
#include "bus-job.h"
#include "execute.h"
#include "fs-util.h"
#include "gate.h"
#include "lease.h"
#include "params.h"
#include <sys/stat.h>
#include "bus-util.h"
#include "jobd-names.h"
#include "log.h"

#define EMITS SD_BUS_VTABLE_PROPERTY_EMITS_CHANGE
#define INVALIDATES SD_BUS_VTABLE_PROPERTY_EMITS_INVALIDATION
#define CONST SD_BUS_VTABLE_PROPERTY_CONST

/* JobField → property name, for PropertiesChanged; NULL: not a property */
static const char *const property_names[_JOB_FIELD_MAX] = {
        [JOB_FIELD_STATUS]           = "Status",
        [JOB_FIELD_PRIORITY]         = "Priority",
        [JOB_FIELD_PARAMETERS]       = "Parameters",
        [JOB_FIELD_RESULT]           = "Result",
        [JOB_FIELD_ERROR]            = "Error",
        [JOB_FIELD_EXIT_STATUS]      = "ExitStatus",
        [JOB_FIELD_PROGRESS]         = "Progress",
        [JOB_FIELD_PROGRESS_MESSAGE] = "ProgressMessage",
        [JOB_FIELD_ATTEMPT]          = "Attempt",
        [JOB_FIELD_MAX_ATTEMPTS]     = "MaxAttempts",
        [JOB_FIELD_WORKER]           = "Worker",
        [JOB_FIELD_UNIT]             = "Unit",
        [JOB_FIELD_AFTER]            = "After",
        [JOB_FIELD_OUTPUTS]          = "Outputs",
        [JOB_FIELD_STARTED]          = "StartedUSec",
        [JOB_FIELD_FINISHED]         = "FinishedUSec",
        [JOB_FIELD_NOT_BEFORE]       = "NotBeforeUSec",
        [JOB_FIELD_DEADLINE]         = "DeadlineUSec",
        [JOB_FIELD_CPU_USAGE]        = "CPUUsageNSec",
        [JOB_FIELD_MEMORY_PEAK]      = "MemoryPeakBytes",
};

static int property_get_status(sd_bus *bus, const char *path, const char *interface,
                               const char *property, sd_bus_message *reply, void *userdata,
                               sd_bus_error *error) {
        Job *j = userdata;
        return sd_bus_message_append_basic(reply, 's', job_status_to_string(j->status));
}

static int property_get_after(sd_bus *bus, const char *path, const char *interface,
                              const char *property, sd_bus_message *reply, void *userdata,
                              sd_bus_error *error) {
        Job *j = userdata;
        return sd_bus_message_append_array(reply, 't', j->after->data, j->after->len * sizeof(uint64_t));
}

static int property_get_private_string(sd_bus *bus, const char *path, const char *interface,
                                       const char *property, sd_bus_message *reply, void *userdata,
                                       sd_bus_error *error) {
        Job *j = userdata;
        const char *v;

        if (g_str_equal(property, "Parameters"))
                v = j->parameters;
        else if (g_str_equal(property, "Result"))
                v = j->result;
        else
                v = j->error;
        return sd_bus_message_append_basic(reply, 's', auth_may_see(j->manager, bus, j) && v ? v : "");
}

static int property_get_outputs(sd_bus *bus, const char *path, const char *interface,
                                const char *property, sd_bus_message *reply, void *userdata,
                                sd_bus_error *error) {
        Job *j = userdata;
        return sd_bus_message_append_strv(reply, auth_may_see(j->manager, bus, j) ? j->outputs : NULL);
}

static int method_cancel(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Job *j = userdata;
        Manager *m = j->manager;
        g_auto(Caller) caller = {};
        int r;

        r = auth_check_job(m, msg, j, "cancel it", error);
        if (r < 0)
                return r;
        r = bus_query_caller(msg, m->callers, &caller);
        if (r < 0)
                return r;
        if (!job_status_is_queued(j->status) && j->status != JOB_RUNNING)
                return bus_refuse(error, JOBD_ERROR_INVALID_STATE,
                                  "Job %" G_GUINT64_FORMAT " is %s already; only pending, scheduled, "
                                  "blocked or running jobs can be cancelled.",
                                  j->id, job_status_to_string(j->status));
        if (!manager_accepts_changes(m))
                return BUS_REFUSE_STORE_FAILED(error);

        if (j->status == JOB_RUNNING) {
                /* the scope gets SIGTERM, then SIGKILL after the stop timeout; the attempt ends
                 * as cancelled when it is gone, and that change is announced then */
                r = manager_cancel_running(m, j);
                if (r < 0)
                        return r;
                return sd_bus_reply_method_return(msg, NULL);
        }

        g_free(j->error);
        j->error = g_strdup_printf("Cancelled by uid %u.", (unsigned) caller.uid);
        manager_set_status(m, j, JOB_CANCELLED, JOB_FIELD_BIT(JOB_FIELD_ERROR), bus_reply_when_durable,
                           sd_bus_message_ref(msg));
        return 1;
}

static int method_retry(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Job *j = userdata;
        Manager *m = j->manager;
        const char *problem;
        uint64_t dep;
        int r;

        r = auth_check_job(m, msg, j, "retry it", error);
        if (r < 0)
                return r;
        if (j->status != JOB_FAILED && j->status != JOB_CANCELLED)
                return bus_refuse(error, JOBD_ERROR_INVALID_STATE,
                                  "Job %" G_GUINT64_FORMAT " is %s; only failed or cancelled jobs can be retried.",
                                  j->id, job_status_to_string(j->status));
        /* it would fail again at once: a dependency's failure is not undone by retrying this one */
        dep = gate_failed_dependency(m, j, &problem);
        if (dep > 0)
                return bus_refuse(error, JOBD_ERROR_INVALID_STATE,
                                  "Job %" G_GUINT64_FORMAT " waits for job %" G_GUINT64_FORMAT ", which %s; "
                                  "retry that one first.", j->id, dep, problem);
        if (!manager_accepts_changes(m))
                return BUS_REFUSE_STORE_FAILED(error);
        manager_retry(m, j, bus_reply_when_durable, sd_bus_message_ref(msg));
        return 1;
}

/* Followers per connection and in all: each holds a pipe in jobd, and jobd's file descriptors are
 * what every job and store operation needs too. */
typedef struct FollowerTally {
        Manager *manager;
        char *sender;
} FollowerTally;

static void tally_add(Manager *m, const char *sender, int delta) {
        unsigned n = GPOINTER_TO_UINT(g_hash_table_lookup(m->followers_by_sender, sender));

        n = (unsigned) ((int) n + delta);
        if (n == 0)
                g_hash_table_remove(m->followers_by_sender, sender);
        else
                g_hash_table_insert(m->followers_by_sender, g_strdup(sender), GUINT_TO_POINTER(n));
        m->n_followers = (unsigned) ((int) m->n_followers + delta);
}

static void on_follower_gone(void *userdata) {
        FollowerTally *t = userdata;

        tally_add(t->manager, t->sender, -1);
        g_free(t->sender);
        g_free(t);
}

static int method_follow(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Job *j = userdata;
        Manager *m = j->manager;
        const char *sender = sd_bus_message_get_sender(msg);
        _cleanup_(closep) int fd = -1;
        FollowerTally *t;
        FollowStream *s;
        uint64_t after;
        unsigned n;
        int r;

        r = sd_bus_message_read(msg, "t", &after);
        if (r < 0)
                return r;
        r = auth_check_job(m, msg, j, "follow it", error);
        if (r < 0)
                return r;
        if (!sender)
                return -EBADMSG;
        n = GPOINTER_TO_UINT(g_hash_table_lookup(m->followers_by_sender, sender));
        if (n >= FOLLOW_MAX_PER_CONNECTION || m->n_followers >= FOLLOW_MAX_TOTAL)
                return bus_refuse(error, JOBD_ERROR_QUOTA_EXCEEDED,
                                  "%u Follow streams of this connection are open (at most %u per connection, "
                                  "%u in all); close one (read it to its end or close the fd) first.",
                                  n, FOLLOW_MAX_PER_CONNECTION, FOLLOW_MAX_TOTAL);
        s = manager_get_stream(m, j, true);
        if (!s)
                return -EIO;

        /* counted first: a stream with nothing left to send is closed inside the call */
        t = g_new0(FollowerTally, 1);
        *t = (FollowerTally) { .manager = m, .sender = g_strdup(sender) };
        tally_add(m, sender, +1);
        r = follow_stream_add_follower_full(s, after, FOLLOW_MAX_PER_JOB, on_follower_gone, t, &fd);
        if (r < 0)
                on_follower_gone(t);
        if (r == -EMFILE)
                return bus_refuse(error, JOBD_ERROR_QUOTA_EXCEEDED,
                                  "Job %" G_GUINT64_FORMAT " has %u followers already, the limit.",
                                  j->id, FOLLOW_MAX_PER_JOB);
        if (r < 0)
                return r;
        return sd_bus_reply_method_return(msg, "h", fd);
}

static int method_get_output(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Job *j = userdata;
        _cleanup_(closep) int spool = -1, fd = -1;
        g_autofree char *path = NULL;
        const char *name;
        int r;

        r = sd_bus_message_read(msg, "s", &name);
        if (r < 0)
                return r;
        r = auth_check_job(j->manager, msg, j, "read its outputs", error);
        if (r < 0)
                return r;
        if (!filename_is_plain(name) || !j->outputs || !g_strv_contains((const char *const *) j->outputs, name))
                return bus_refuse(error, JOBD_ERROR_INVALID_PARAMETERS,
                                  "Job %" G_GUINT64_FORMAT " has no output named '%s'; its Outputs property "
                                  "lists them.", j->id, name);
        spool = execute_open_spool(j->manager, j->id, false);
        if (spool < 0)
                return spool;
        path = g_build_filename("outputs", name, NULL);
        fd = openat(spool, path, O_RDONLY|O_NOFOLLOW|O_CLOEXEC|O_NOCTTY);
        if (fd < 0)
                return -errno;
        return sd_bus_reply_method_return(msg, "h", fd);
}

/* The token is the attempt's capability: compared in constant time, as a secret should be. */
static bool token_matches(const Job *j, const char *token) {
        size_t n = j->token ? strlen(j->token) : 0;
        unsigned char diff = 0;

        if (n == 0 || strlen(token) != n)
                return false;
        for (size_t i = 0; i < n; i++)
                diff |= (unsigned char) (j->token[i] ^ token[i]);
        return diff == 0;
}

/* A call on behalf of the current attempt: StaleToken (changing nothing) for any other. A claimed
 * attempt is also its worker's uid's (root's too): the token alone, leaked through a handler's
 * environment or a log, must not let another user report on it. A local job's token only ever
 * reaches the job's own processes, which run as the user that would be checked. */
static int refuse_stale(sd_bus_message *msg, Job *j, const char *token, bool claimed_only, sd_bus_error *error) {
        g_auto(Caller) caller = {};
        int r;

        if (j->status != JOB_RUNNING || (claimed_only && !j->claimed) || !token_matches(j, token))
                return bus_refuse(error, JOBD_ERROR_STALE_TOKEN,
                                  "This token is not the current attempt's of job %" G_GUINT64_FORMAT
                                  " (the job is %s, attempt %u); nothing was changed.",
                                  j->id, job_status_to_string(j->status), j->attempt);
        if (!j->claimed || j->worker_uid == (uid_t) -1)
                return 0;
        r = bus_query_caller(msg, j->manager->callers, &caller);
        if (r < 0)
                return r;
        if (caller.uid != 0 && caller.uid != j->worker_uid)
                return bus_refuse(error, JOBD_ERROR_ACCESS_DENIED,
                                  "Job %" G_GUINT64_FORMAT " was claimed by uid %u; only that user's (or root's) "
                                  "connections may report on it. Nothing was changed.",
                                  j->id, (unsigned) j->worker_uid);
        return 0;
}

static int method_progress(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Job *j = userdata;
        const char *token, *message;
        uint32_t percent;
        int r;

        r = sd_bus_message_read(msg, "sus", &token, &percent, &message);
        if (r < 0)
                return r;
        r = refuse_stale(msg, j, token, false, error);
        if (r < 0)
                return r;
        if (percent > 100)
                return bus_refuse(error, JOBD_ERROR_INVALID_PARAMETERS,
                                  "Progress is %u percent; it must be between 0 and 100.", percent);
        if (strlen(message) > PROGRESS_MESSAGE_MAX)
                return bus_refuse(error, JOBD_ERROR_TOO_LARGE,
                                  "The progress message is %zu bytes; the limit is %u.",
                                  strlen(message), PROGRESS_MESSAGE_MAX);
        if (!manager_accepts_changes(j->manager))
                return BUS_REFUSE_STORE_FAILED(error);
        /* progress is advisory: announced at once, persisted with the next batch */
        manager_progress(j->manager, j, percent, message);
        return sd_bus_reply_method_return(msg, NULL);
}

static int method_heartbeat(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Job *j = userdata;
        Manager *m = j->manager;
        const char *token;
        uint64_t extend;
        int r;

        r = sd_bus_message_read(msg, "st", &token, &extend);
        if (r < 0)
                return r;
        r = refuse_stale(msg, j, token, true, error);
        if (r < 0)
                return r;
        if (extend > LEASE_EXTEND_MAX_USEC)
                return bus_refuse(error, JOBD_ERROR_INVALID_PARAMETERS,
                                  "extend_usec is %" G_GUINT64_FORMAT "; a lease is extended by at most a "
                                  "day at a time (0: the type's lease length).", extend);
        if (!manager_accepts_changes(m))
                return BUS_REFUSE_STORE_FAILED(error);
        lease_extend(m, j, (uint64_t) g_get_real_time() + (extend > 0 ? extend : lease_length(m, j)));
        /* advisory for observers: the lease lives in memory, a restart re-arms the last durable one */
        manager_commit_advisory(m, j, JOB_FIELD_BIT(JOB_FIELD_DEADLINE));
        return sd_bus_reply_method_return(msg, "t", j->deadline_usec);
}

static int method_log(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Job *j = userdata;
        const char *token, *data;
        int r;

        r = sd_bus_message_read(msg, "ss", &token, &data);
        if (r < 0)
                return r;
        r = refuse_stale(msg, j, token, true, error);
        if (r < 0)
                return r;
        if (strlen(data) > LOG_DATA_MAX)
                return bus_refuse(error, JOBD_ERROR_TOO_LARGE,
                                  "Log data is %zu bytes; at most %u per call.", strlen(data), LOG_DATA_MAX);

        for (const char *p = data; *p;) {
                const char *nl = strchr(p, '\n');
                size_t n = nl ? (size_t) (nl - p) : strlen(p);

                manager_job_log(j->manager, j, p, n);
                p += n + (nl ? 1 : 0);
        }
        return sd_bus_reply_method_return(msg, NULL);
}

typedef struct OutputFd {
        char *name;
        int fd;
        uint64_t size;
} OutputFd;

static void output_fd_clear(gpointer p) {
        g_free(((OutputFd *) p)->name);
}

/* Reads and checks Complete's options; the fds are borrowed from the message. */
typedef struct CompleteOptions {
        Manager *manager;
        GArray *outputs;                /* OutputFd */
        uint64_t total;
} CompleteOptions;

static int complete_option_entry(sd_bus_message *msg, const char *key, void *userdata, sd_bus_error *error) {
        CompleteOptions *c = userdata;
        int r;

        if (!g_str_equal(key, "outputs"))
                return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                                  "Unknown Complete option '%s'; the only one is outputs (a{sh}).", key);
        r = bus_enter_option(msg, key, "a{sh}", error);
        if (r < 0)
                return r;
        r = sd_bus_message_enter_container(msg, 'a', "{sh}");
        if (r < 0)
                return r;
        while ((r = sd_bus_message_enter_container(msg, 'e', "sh")) > 0) {
                OutputFd o = {};
                const char *name;
                struct stat st;

                r = sd_bus_message_read(msg, "sh", &name, &o.fd);
                if (r < 0)
                        return r;
                if (!filename_is_plain(name))
                        return bus_refuse(error, JOBD_ERROR_INVALID_PARAMETERS,
                                          "Output name '%s' is not a plain file name (no '/', not '.' "
                                          "or '..', at most 255 bytes).", name);
                for (guint i = 0; i < c->outputs->len; i++)
                        if (g_str_equal(g_array_index(c->outputs, OutputFd, i).name, name))
                                return bus_refuse(error, JOBD_ERROR_INVALID_PARAMETERS,
                                                  "Output '%s' is given twice.", name);
                /* a pipe could keep the daemon reading forever */
                if (fstat(o.fd, &st) < 0 || !S_ISREG(st.st_mode))
                        return bus_refuse(error, JOBD_ERROR_INVALID_PARAMETERS,
                                          "Output '%s' is not a regular file or memfd; pass one of "
                                          "those (a pipe cannot be copied without blocking).", name);
                o.size = (uint64_t) st.st_size;
                if (c->outputs->len >= EXECUTE_OUTPUTS_MAX ||
                    o.size > c->manager->config.output_quota_bytes - c->total)
                        return bus_refuse(error, JOBD_ERROR_TOO_LARGE,
                                          "Outputs exceed OutputQuotaBytes=%" G_GUINT64_FORMAT
                                          " bytes or %u files.", c->manager->config.output_quota_bytes,
                                          EXECUTE_OUTPUTS_MAX);
                c->total += o.size;
                o.name = g_strdup(name);
                g_array_append_val(c->outputs, o);
                r = sd_bus_message_exit_container(msg);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(msg);      /* a{sh} */
}

static int read_complete_options(sd_bus_message *msg, Manager *m, GArray *outputs, sd_bus_error *error) {
        CompleteOptions c = { .manager = m, .outputs = outputs };

        return bus_read_vardict(msg, complete_option_entry, &c, error);
}

/* Copies the outputs into spool/ID/outputs: first under temporary names, then renamed, so a
 * failure half way leaves nothing. */
static int store_outputs(Manager *m, Job *j, GArray *outputs, char ***ret_names) {
        g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
        _cleanup_(closep) int spool = -1, dir = -1;
        int r = 0;

        spool = execute_open_spool(m, j->id, true);
        if (spool < 0)
                return spool;
        if (mkdirat(spool, "outputs", 0700) < 0 && errno != EEXIST)
                return -errno;
        dir = openat(spool, "outputs", O_RDONLY|O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC);
        if (dir < 0)
                return -errno;

        for (guint i = 0; r >= 0 && i < outputs->len; i++) {
                OutputFd *o = &g_array_index(outputs, OutputFd, i);
                g_autofree char *tmp = g_strdup_printf(".tmp-%u", i);
                _cleanup_(closep) int in = -1, out = -1;

                in = fcntl(o->fd, F_DUPFD_CLOEXEC, 3);
                out = openat(dir, tmp, O_WRONLY|O_CREAT|O_TRUNC|O_NOFOLLOW|O_CLOEXEC, 0600);
                if (in < 0 || out < 0 || lseek(in, 0, SEEK_SET) < 0)
                        r = -errno;
                else
                        r = copy_bytes(in, out, o->size, NULL);
        }
        for (guint i = 0; i < outputs->len; i++) {
                g_autofree char *tmp = g_strdup_printf(".tmp-%u", i);
                const char *name = g_array_index(outputs, OutputFd, i).name;

                if (r >= 0 && renameat(dir, tmp, dir, name) >= 0)
                        g_ptr_array_add(names, g_strdup(name));
                else
                        (void) unlinkat(dir, tmp, 0);
        }
        if (r < 0)
                return r;
        g_ptr_array_add(names, NULL);
        *ret_names = (char **) g_ptr_array_free(g_steal_pointer(&names), FALSE);
        return 0;
}

static int method_complete(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Job *j = userdata;
        Manager *m = j->manager;
        g_autoptr(GArray) outputs = g_array_new(FALSE, TRUE, sizeof(OutputFd));
        g_auto(Outcome) o = { .status = JOB_SUCCEEDED, .exit_status = 0 };
        const char *token, *result;
        int r;

        g_array_set_clear_func(outputs, output_fd_clear);
        r = sd_bus_message_read(msg, "ss", &token, &result);
        if (r < 0)
                return r;
        r = refuse_stale(msg, j, token, true, error);
        if (r < 0)
                return r;
        if (strlen(result) > EXECUTE_RESULT_MAX)
                return bus_refuse(error, JOBD_ERROR_TOO_LARGE,
                                  "The result is %zu bytes; the limit is %u. Return large data as an output.",
                                  strlen(result), EXECUTE_RESULT_MAX);
        if (!params_is_json(*result ? result : "null"))
                return bus_refuse(error, JOBD_ERROR_INVALID_PARAMETERS,
                                  "The result is not valid JSON; send JSON text, e.g. a JSON string.");
        r = read_complete_options(msg, m, outputs, error);
        if (r < 0)
                return r;
        if (!manager_accepts_changes(m))
                return BUS_REFUSE_STORE_FAILED(error);

        /* no folders for a Complete without outputs */
        r = outputs->len > 0 ? store_outputs(m, j, outputs, &o.outputs) : 0;
        if (r < 0)
                return sd_bus_error_set_errnof(error, -r, "Failed to store the outputs: %s", g_strerror(-r));
        o.result = g_strdup(*result ? result : "null");
        manager_attempt_ended_full(m, j, &o, bus_reply_when_durable, sd_bus_message_ref(msg));
        return 1;
}

static int fail_option_entry(sd_bus_message *msg, const char *key, void *userdata, sd_bus_error *error) {
        Outcome *o = userdata;
        int b, r;

        if (g_str_equal(key, "retry")) {
                r = bus_enter_option(msg, key, "b", error);
                if (r < 0)
                        return r;
                r = sd_bus_message_read_basic(msg, 'b', &b);
                if (r < 0)
                        return r;
                o->retryable = b;
                return 0;
        }
        if (g_str_equal(key, "retry_after_usec")) {
                r = bus_enter_option(msg, key, "t", error);
                if (r < 0)
                        return r;
                r = sd_bus_message_read_basic(msg, 't', &o->retry_after_usec);
                if (r < 0)
                        return r;
                /* as for Release's delay: past it, now + delay could wrap */
                if (o->retry_after_usec > LEASE_EXTEND_MAX_USEC)
                        return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                                          "Fail option 'retry_after_usec' is more than a day (%" G_GUINT64_FORMAT
                                          " µs); give at most %" G_GUINT64_FORMAT ".",
                                          o->retry_after_usec, (uint64_t) LEASE_EXTEND_MAX_USEC);
                return 0;
        }
        return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                          "Unknown Fail option '%s'; use retry (b) or retry_after_usec (t).", key);
}

static int method_fail(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Job *j = userdata;
        Manager *m = j->manager;
        g_auto(Outcome) o = { .status = JOB_FAILED, .exit_status = -1, .retryable = true };
        const char *token, *text;
        int r;

        r = sd_bus_message_read(msg, "ss", &token, &text);
        if (r < 0)
                return r;
        r = refuse_stale(msg, j, token, true, error);
        if (r < 0)
                return r;
        if (strlen(text) > ERROR_TEXT_MAX)
                return bus_refuse(error, JOBD_ERROR_TOO_LARGE,
                                  "The error text is %zu bytes; the limit is %u.", strlen(text), ERROR_TEXT_MAX);
        r = bus_read_vardict(msg, fail_option_entry, &o, error);
        if (r < 0)
                return r;
        if (!manager_accepts_changes(m))
                return BUS_REFUSE_STORE_FAILED(error);

        o.error = g_strdup(*text ? text : "the worker reported a failure");
        manager_attempt_ended_full(m, j, &o, bus_reply_when_durable, sd_bus_message_ref(msg));
        return 1;
}

static int method_release(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Job *j = userdata;
        const char *token;
        uint64_t delay;
        int r;

        r = sd_bus_message_read(msg, "st", &token, &delay);
        if (r < 0)
                return r;
        r = refuse_stale(msg, j, token, true, error);
        if (r < 0)
                return r;
        if (delay > LEASE_EXTEND_MAX_USEC)
                return bus_refuse(error, JOBD_ERROR_INVALID_PARAMETERS,
                                  "delay_usec is %" G_GUINT64_FORMAT "; at most a day.", delay);
        if (!manager_accepts_changes(j->manager))
                return BUS_REFUSE_STORE_FAILED(error);
        manager_release(j->manager, j, delay, bus_reply_when_durable, sd_bus_message_ref(msg));
        return 1;
}

static const sd_bus_vtable job_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_PROPERTY("Id", "t", NULL, offsetof(Job, id), CONST),
        SD_BUS_PROPERTY("Type", "s", NULL, offsetof(Job, type), CONST),
        SD_BUS_PROPERTY("Status", "s", property_get_status, 0, EMITS),
        SD_BUS_PROPERTY("Owner", "u", NULL, offsetof(Job, owner), CONST),
        SD_BUS_PROPERTY("Priority", "i", NULL, offsetof(Job, priority), EMITS),
        SD_BUS_PROPERTY("Parameters", "s", property_get_private_string, 0, INVALIDATES),
        SD_BUS_PROPERTY("Result", "s", property_get_private_string, 0, INVALIDATES),
        SD_BUS_PROPERTY("Error", "s", property_get_private_string, 0, INVALIDATES),
        SD_BUS_PROPERTY("ExitStatus", "i", NULL, offsetof(Job, exit_status), EMITS),
        SD_BUS_PROPERTY("Progress", "u", NULL, offsetof(Job, progress), EMITS),
        SD_BUS_PROPERTY("ProgressMessage", "s", NULL, offsetof(Job, progress_message), EMITS),
        SD_BUS_PROPERTY("Attempt", "u", NULL, offsetof(Job, attempt), EMITS),
        SD_BUS_PROPERTY("MaxAttempts", "u", NULL, offsetof(Job, max_attempts), EMITS),
        SD_BUS_PROPERTY("Worker", "s", NULL, offsetof(Job, worker), EMITS),
        SD_BUS_PROPERTY("Unit", "s", NULL, offsetof(Job, unit), EMITS),
        SD_BUS_PROPERTY("After", "at", property_get_after, 0, EMITS),
        SD_BUS_PROPERTY("Outputs", "as", property_get_outputs, 0, INVALIDATES),
        SD_BUS_PROPERTY("SubmittedUSec", "t", NULL, offsetof(Job, submitted_usec), CONST),
        SD_BUS_PROPERTY("StartedUSec", "t", NULL, offsetof(Job, started_usec), EMITS),
        SD_BUS_PROPERTY("FinishedUSec", "t", NULL, offsetof(Job, finished_usec), EMITS),
        SD_BUS_PROPERTY("NotBeforeUSec", "t", NULL, offsetof(Job, not_before_usec), EMITS),
        SD_BUS_PROPERTY("DeadlineUSec", "t", NULL, offsetof(Job, deadline_usec), EMITS),
        SD_BUS_PROPERTY("CPUUsageNSec", "t", NULL, offsetof(Job, cpu_usage_nsec), EMITS),
        SD_BUS_PROPERTY("MemoryPeakBytes", "t", NULL, offsetof(Job, memory_peak_bytes), EMITS),
        SD_BUS_METHOD_WITH_ARGS("Cancel", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT,
                                method_cancel, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Retry", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT,
                                method_retry, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Follow", SD_BUS_ARGS("t", after_seq), SD_BUS_RESULT("h", events),
                                method_follow, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetOutput", SD_BUS_ARGS("s", name), SD_BUS_RESULT("h", fd),
                                method_get_output, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Heartbeat", SD_BUS_ARGS("s", token, "t", extend_usec),
                                SD_BUS_RESULT("t", deadline_usec),
                                method_heartbeat, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Progress", SD_BUS_ARGS("s", token, "u", percent, "s", message),
                                SD_BUS_NO_RESULT, method_progress, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Log", SD_BUS_ARGS("s", token, "s", data), SD_BUS_NO_RESULT,
                                method_log, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Complete", SD_BUS_ARGS("s", token, "s", result, "a{sv}", options),
                                SD_BUS_NO_RESULT, method_complete, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Fail", SD_BUS_ARGS("s", token, "s", error, "a{sv}", options),
                                SD_BUS_NO_RESULT, method_fail, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Release", SD_BUS_ARGS("s", token, "t", delay_usec), SD_BUS_NO_RESULT,
                                method_release, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("Progress", SD_BUS_ARGS("u", percent, "s", message), 0),
        SD_BUS_VTABLE_END
};

static int find_job(sd_bus *bus, const char *path, const char *interface, void *userdata,
                    void **found, sd_bus_error *error) {
        Manager *m = userdata;
        uint64_t id;
        Job *j;

        if (job_id_from_path(path, &id) < 0)
                return 0;
        j = manager_get_job(m, id);
        if (!j)
                /* a well-formed job path gets the contract's error, not a generic UnknownObject */
                return bus_refuse(error, JOBD_ERROR_NO_SUCH_JOB,
                                  "Job %" G_GUINT64_FORMAT " does not exist (never submitted, or purged "
                                  "after its retention); `jobctl list` shows the jobs.", id);
        *found = j;
        return 1;
}

typedef struct EnumState {
        char **paths;
        size_t n;
} EnumState;

static gboolean enumerate_one(gpointer key, gpointer value, gpointer userdata) {
        EnumState *s = userdata;
        s->paths[s->n++] = job_path(((Job *) value)->id);
        return FALSE;
}

static int enumerate_jobs(sd_bus *bus, const char *prefix, void *userdata, char ***nodes,
                          sd_bus_error *error) {
        Manager *m = userdata;
        EnumState s = { .paths = g_new0(char *, g_tree_nnodes(m->jobs) + 1) };

        g_tree_foreach(m->jobs, enumerate_one, &s);
        /* sd-bus frees the result with free(); glib's allocator is the system malloc */
        *nodes = s.paths;
        return 0;
}

int bus_job_register(Manager *m) {
        int r;

        r = sd_bus_add_fallback_vtable(m->bus, &m->slots[1], JOBD_JOB_PATH_PREFIX, JOBD_JOB_INTERFACE,
                                       job_vtable, find_job, m);
        if (r < 0)
                return r;
        return sd_bus_add_node_enumerator(m->bus, &m->slots[2], JOBD_JOB_PATH_PREFIX, enumerate_jobs, m);
}

void bus_job_emit_changed(Manager *m, Job *j) {
        g_autofree char *path = job_path(j->id);
        const char *names[_JOB_FIELD_MAX + 1];
        size_t n = 0;
        int r;

        for (unsigned f = 1; f < _JOB_FIELD_MAX; f++)
                if ((j->changed & JOB_FIELD_BIT(f)) && property_names[f])
                        names[n++] = property_names[f];
        names[n] = NULL;
        j->changed = 0;
        if (n == 0)
                return;

        r = sd_bus_emit_properties_changed_strv(m->bus, path, JOBD_JOB_INTERFACE, (char **) names);
        if (r < 0)
                log_warning_errno(r, "Failed to emit PropertiesChanged for job %" G_GUINT64_FORMAT
                                  ", ignoring: %m", j->id);
}
