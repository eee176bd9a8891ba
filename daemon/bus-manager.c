/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * org.jobd.Jobd1.Manager. Each handler reads its arguments, validates all of them before it
 * changes anything (a refused call creates nothing and consumes no id), asks the manager, and
 * replies. Submit replies only once the job is durable: it keeps a reference to the call and
 * returns 1, and the manager's completion sends the reply.
 */

#include <errno.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "bus-manager.h"
#include "bus-util.h"
#include "gate.h"
#include "jobd-names.h"
#include "lease.h"
#include "log.h"
#include "params.h"
#include "stats.h"

/* ---- Submit ---- */

typedef int (*OptionParser)(sd_bus_message *msg, const char *key, Job *j, const JobType *t,
                            Manager *m, sd_bus_error *error);

static int parse_priority(sd_bus_message *msg, const char *key, Job *j, const JobType *t,
                          Manager *m, sd_bus_error *error) {
        int32_t v;
        int r = sd_bus_message_read_basic(msg, 'i', &v);
        if (r < 0)
                return r;
        if (v < -1000 || v > 1000)
                return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                                  "Option 'priority' is %i; it must be between -1000 and 1000 "
                                  "(higher runs first).", v);
        j->priority = v;
        return 0;
}

static int parse_timeout(sd_bus_message *msg, const char *key, Job *j, const JobType *t,
                         Manager *m, sd_bus_error *error) {
        uint64_t v;
        int r = sd_bus_message_read_basic(msg, 't', &v);
        if (r < 0)
                return r;
        if (v == 0)
                return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                                  "Option 'timeout_usec' is 0; leave it out for the type's Timeout=.");
        /* the type's Timeout= is a ceiling the submitter cannot raise */
        j->timeout_usec = t->timeout_usec > 0 ? MIN(v, t->timeout_usec) : v;
        return 0;
}

static int parse_max_attempts(sd_bus_message *msg, const char *key, Job *j, const JobType *t,
                              Manager *m, sd_bus_error *error) {
        uint32_t v;
        int r = sd_bus_message_read_basic(msg, 'u', &v);
        if (r < 0)
                return r;
        if (v < 1 || v > SUBMIT_MAX_ATTEMPTS_MAX)
                return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                                  "Option 'max_attempts' is %u; it must be between 1 and %u.",
                                  v, SUBMIT_MAX_ATTEMPTS_MAX);
        j->max_attempts = v;
        return 0;
}

static int parse_usec(sd_bus_message *msg, const char *key, uint64_t *ret) {
        return sd_bus_message_read_basic(msg, 't', ret);
}

#define NOT_BEFORE_MAX_USEC (UINT64_C(366) * 24 * 3600 * 1000000)

/* A span of time in µs, at most max: said in words, since a caller can get the unit wrong. */
static int parse_bounded_usec(sd_bus_message *msg, const char *key, uint64_t max, const char *max_text,
                              uint64_t *ret, sd_bus_error *error) {
        uint64_t v;
        int r;

        r = parse_usec(msg, key, &v);
        if (r < 0)
                return r;
        if (v > max)
                return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                                  "Option '%s' is more than %s (it is in microseconds).", key, max_text);
        *ret = v;
        return 0;
}

static int parse_retry_backoff(sd_bus_message *msg, const char *key, Job *j, const JobType *t,
                               Manager *m, sd_bus_error *error) {
        /* the backoff doubles up to an hour anyway */
        return parse_bounded_usec(msg, key, RETRY_BACKOFF_MAX_USEC, "an hour", &j->retry_backoff_usec, error);
}

static int parse_retention(sd_bus_message *msg, const char *key, Job *j, const JobType *t,
                           Manager *m, sd_bus_error *error) {
        /* a kept workspace goes with the job's purge (Retention=) at the latest */
        return parse_bounded_usec(msg, key, NOT_BEFORE_MAX_USEC, "a year", &j->retention_usec, error);
}

/* not_before_usec (CLOCK_REALTIME) or delay_usec (from now): the job is scheduled until then. */
static int parse_not_before(sd_bus_message *msg, const char *key, Job *j, const JobType *t,
                            Manager *m, sd_bus_error *error) {
        uint64_t v, now = (uint64_t) g_get_real_time();
        int r;

        r = sd_bus_message_read_basic(msg, 't', &v);
        if (r < 0)
                return r;
        if (g_str_equal(key, "delay_usec")) {
                if (v > NOT_BEFORE_MAX_USEC)
                        return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                                          "Option 'delay_usec' is more than a year.");
                v = now + v;
        } else if (v > now + NOT_BEFORE_MAX_USEC)
                return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                                  "Option 'not_before_usec' is more than a year from now (it is CLOCK_REALTIME "
                                  "in microseconds).");
        /* 0 or the past: runs as soon as it may */
        if (v > now) {
                j->not_before_usec = v;
                j->status = JOB_SCHEDULED;
        }
        return 0;
}

/* expire_usec: a job not started within this time of its Submit (or Retry) fails. */
static int parse_expire(sd_bus_message *msg, const char *key, Job *j, const JobType *t,
                        Manager *m, sd_bus_error *error) {
        uint64_t v;
        int r = sd_bus_message_read_basic(msg, 't', &v);
        if (r < 0)
                return r;
        if (v == 0 || v > NOT_BEFORE_MAX_USEC)
                return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                                  "Option 'expire_usec' is %" G_GUINT64_FORMAT "; it must be between 1 "
                                  "and a year (%" G_GUINT64_FORMAT "); leave it out for a job that never "
                                  "expires.",
                                  v, NOT_BEFORE_MAX_USEC);
        j->expire_usec = v;
        return 0;
}

/* Only what can be copied without waiting on a writer: a regular file or a memfd. */
static int parse_input(sd_bus_message *msg, const char *key, Job *j, const JobType *t,
                       Manager *m, sd_bus_error *error) {
        struct stat st;
        int fd, r;

        r = sd_bus_message_read_basic(msg, 'h', &fd);
        if (r < 0)
                return r;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                                  "Option 'input' must be a regular file or a memfd, not a pipe or socket "
                                  "(jobd copies it before answering and must not wait on a writer).");
        if ((uint64_t) st.st_size > m->config.max_input_bytes)
                return bus_refuse(error, JOBD_ERROR_TOO_LARGE,
                                  "The input is %" G_GUINT64_FORMAT " bytes; the limit is %" G_GUINT64_FORMAT
                                  " (MaxInputBytes= in jobd.conf).", (uint64_t) st.st_size,
                                  m->config.max_input_bytes);
        j->input_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (j->input_fd < 0)
                return -errno;
        j->has_input = true;
        return 0;
}

/* unique_key and lock: keys of the owner's */
static int parse_key_string(sd_bus_message *msg, const char *key, Job *j, const JobType *t,
                            Manager *m, sd_bus_error *error) {
        const char *s;
        int r = sd_bus_message_read_basic(msg, 's', &s);
        if (r < 0)
                return r;
        if (*s == '\0' || strlen(s) > SUBMIT_KEY_MAX)
                return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                                  "Option '%s' must be 1 to %u bytes long.", key, SUBMIT_KEY_MAX);
        *(g_str_equal(key, "lock") ? &j->lock : &j->unique_key) = g_strdup(s);
        return 0;
}

static int parse_after(sd_bus_message *msg, const char *key, Job *j, const JobType *t,
                       Manager *m, sd_bus_error *error) {
        const void *ids;
        size_t size;
        int r = sd_bus_message_read_array(msg, 't', &ids, &size);
        if (r < 0)
                return r;
        if (size / sizeof(uint64_t) > SUBMIT_AFTER_MAX)
                return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                                  "Option 'after' lists %zu jobs; the limit is %u.",
                                  size / sizeof(uint64_t), SUBMIT_AFTER_MAX);
        for (size_t i = 0; i < size / sizeof(uint64_t); i++) {
                const char *problem;
                uint64_t id;

                memcpy(&id, (const uint8_t *) ids + i * sizeof(uint64_t), sizeof(id));
                /* only jobs that exist already: so no job waits for itself or a later one, and
                 * no cycle can form */
                if (id >= m->next_id)
                        return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                                          "Option 'after' names job %" G_GUINT64_FORMAT ", which does not "
                                          "exist yet; a job can only wait for jobs submitted before it.",
                                          id);
                problem = gate_dependency_problem(m, id);
                if (problem)
                        return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                                          "Option 'after' names job %" G_GUINT64_FORMAT ", which %s%s.",
                                          id, problem,
                                          manager_get_job(m, id) ? "; retry it first, or submit without it" : "");
                for (guint k = 0; k < j->after->len; k++)
                        if (g_array_index(j->after, uint64_t, k) == id)
                                return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                                                  "Option 'after' names job %" G_GUINT64_FORMAT " twice.",
                                                  id);
                g_array_append_val(j->after, id);
        }
        return 0;
}

typedef struct ResourceTarget {
        Job *job;
        const JobType *type;
} ResourceTarget;

static int resource_entry(sd_bus_message *msg, const char *name, void *userdata, sd_bus_error *error) {
        ResourceTarget *rt = userdata;
        Job *j = rt->job;
        const JobType *t = rt->type;
        int r;

        if (g_str_equal(name, "memory_max") || g_str_equal(name, "tasks_max")) {
                uint64_t v;
                r = bus_enter_option(msg, name, "t", error);
                if (r < 0)
                        return r;
                r = sd_bus_message_read_basic(msg, 't', &v);
                if (r < 0)
                        return r;
                if (v == 0)
                        return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                                          "Resource '%s' is 0; it must be at least 1.", name);
                /* the type's limits are ceilings: a job may ask for less, never more */
                if (g_str_equal(name, "memory_max"))
                        j->memory_max = MIN(v, t->memory_max);
                else
                        j->tasks_max = MIN(v, t->tasks_max);
        } else if (g_str_equal(name, "cpu_quota_percent")) {
                uint32_t v;
                r = bus_enter_option(msg, name, "u", error);
                if (r < 0)
                        return r;
                r = sd_bus_message_read_basic(msg, 'u', &v);
                if (r < 0)
                        return r;
                if (v == 0 || v > 100000)
                        return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                                          "Resource 'cpu_quota_percent' is %u; it must be "
                                          "between 1 and 100000 (100 is one CPU).", v);
                j->cpu_quota_percent = t->cpu_quota_percent > 0 ? MIN(v, t->cpu_quota_percent) : v;
        } else if (g_str_equal(name, "nice")) {
                int32_t v;
                r = bus_enter_option(msg, name, "i", error);
                if (r < 0)
                        return r;
                r = sd_bus_message_read_basic(msg, 'i', &v);
                if (r < 0)
                        return r;
                if (v < -20 || v > 19)
                        return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                                          "Resource 'nice' is %i; it must be between -20 and 19.", v);
                /* never kinder than the type allows */
                j->nice = MAX(v, t->nice);
        } else
                return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                                  "Unknown resource '%s'; use memory_max (t), "
                                  "cpu_quota_percent (u), tasks_max (t) or nice (i).", name);

        return 0;
}

static int parse_resources(sd_bus_message *msg, const char *key, Job *j, const JobType *t,
                           Manager *m, sd_bus_error *error) {
        ResourceTarget rt = { .job = j, .type = t };

        return bus_read_vardict(msg, resource_entry, &rt, error);
}

static const struct {
        const char *name;
        const char *signature;
        OptionParser parse;
} submit_options[] = {
        { "priority",           "i",     parse_priority },
        { "not_before_usec",    "t",     parse_not_before },
        { "delay_usec",         "t",     parse_not_before },
        { "timeout_usec",       "t",     parse_timeout },
        { "max_attempts",       "u",     parse_max_attempts },
        { "retry_backoff_usec", "t",     parse_retry_backoff },
        { "after",              "at",    parse_after },
        { "lock",               "s",     parse_key_string },
        { "unique_key",         "s",     parse_key_string },
        { "input",              "h",     parse_input },
        { "resources",          "a{sv}", parse_resources },
        { "retention_usec",     "t",     parse_retention },
        { "expire_usec",        "t",     parse_expire },
};

typedef struct SubmitTarget {
        Manager *manager;
        const JobType *type;
        Job *job;
        bool have_start;                /* not_before_usec or delay_usec was given */
} SubmitTarget;

static int submit_option_entry(sd_bus_message *msg, const char *key, void *userdata, sd_bus_error *error) {
        SubmitTarget *st = userdata;
        size_t i;
        int r;

        for (i = 0; i < G_N_ELEMENTS(submit_options); i++)
                if (g_str_equal(submit_options[i].name, key))
                        break;
        if (i >= G_N_ELEMENTS(submit_options))
                return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                                  "Unknown option '%s'. Known options: priority, not_before_usec, "
                                  "delay_usec, timeout_usec, max_attempts, retry_backoff_usec, "
                                  "after, lock, unique_key, input, resources, retention_usec, "
                                  "expire_usec.", key);
        if (submit_options[i].parse == parse_not_before) {
                /* by the key, not the value: {not_before_usec: 0, delay_usec: …} is as ambiguous */
                if (st->have_start)
                        return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                                          "Options 'not_before_usec' and 'delay_usec' exclude each other; give one.");
                st->have_start = true;
        }
        r = bus_enter_option(msg, key, submit_options[i].signature, error);
        if (r < 0)
                return r;
        return submit_options[i].parse(msg, key, st->job, st->type, st->manager, error);
}

static int read_submit_options(sd_bus_message *msg, Manager *m, const JobType *t, Job *j,
                               sd_bus_error *error) {
        SubmitTarget st = { .manager = m, .type = t, .job = j };

        return bus_read_vardict(msg, submit_option_entry, &st, error);
}

/* Submit's answer: the job's id and path, or IOError when it could not be made durable. Takes msg. */
static void reply_submitted(sd_bus_message *msg, int error, uint64_t id) {
        g_autofree char *path = NULL;
        int r;

        if (error < 0)
                r = sd_bus_reply_method_errorf(msg, SD_BUS_ERROR_IO_ERROR,
                                               "The job could not be stored durably (%s); nothing was "
                                               "queued. jobd is rewriting its journal; try again.",
                                               g_strerror(-error));
        else {
                path = job_path(id);
                r = sd_bus_reply_method_return(msg, "to", id, path);
        }
        if (r < 0)
                log_debug("Failed to reply to Submit: %s", g_strerror(-r));
        sd_bus_message_unref(msg);
}

static void on_submitted(Manager *m, int error, Job *j, void *userdata) {
        reply_submitted(userdata, error, j ? j->id : 0);
}

typedef struct UniqueReply {
        sd_bus_message *msg;
        uint64_t id;
} UniqueReply;

/* The job already holding the key is answered once it is durable: it may still be on its way. */
static void on_unique_durable(Manager *m, int error, Job *unused, void *userdata) {
        g_autofree UniqueReply *u = userdata;

        /* the holder was on its way to the disk: gone now if its own Submit failed */
        reply_submitted(u->msg, error < 0 ? error : manager_get_job(m, u->id) ? 0 : -EIO, u->id);
}

static int method_submit(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        g_auto(Caller) caller = {};
        g_autoptr(GError) e = NULL;
        g_autoptr(Job) j = NULL;
        const char *type, *parameters;
        uint64_t holder;
        JobType *t;
        int r;

        r = sd_bus_message_read(msg, "ss", &type, &parameters);
        if (r < 0)
                return r;
        r = bus_query_caller(msg, m->callers, &caller);
        if (r < 0)
                return r;

        t = manager_get_type(m, type);
        if (!t)
                return bus_refuse(error, JOBD_ERROR_UNKNOWN_TYPE,
                                  "Unknown job type '%s'; `jobctl types` lists the configured ones.", type);
        if (!caller_is_admin(m, &caller) && (t->submit_users[0] || t->submit_groups[0]) &&
            !caller_in_lists(&caller, t->submit_users, t->submit_groups))
                return bus_refuse(error, JOBD_ERROR_ACCESS_DENIED,
                                  "Type '%s' takes jobs only from the users and groups in its SubmitUsers= "
                                  "and SubmitGroups= (%s); uid %u is in neither.",
                                  type, t->path ?: "its type file", (unsigned) caller.uid);

        if (!params_validate(type, parameters, m->config.max_parameter_bytes, &e))
                return bus_refuse(error, g_error_matches(e, PARAMS_ERROR, PARAMS_ERROR_TOO_LARGE) ?
                                  JOBD_ERROR_TOO_LARGE : JOBD_ERROR_INVALID_PARAMETERS, "%s", e->message);

        j = job_new(0);
        j->type = g_strdup(type);
        j->owner = caller.uid;
        j->gid = caller.gid;
        g_array_append_vals(j->groups, caller.groups->data, caller.groups->len);
        j->parameters = g_strdup(*parameters ? parameters : "{}");
        j->max_attempts = MAX(t->max_attempts, 1u);
        j->timeout_usec = t->timeout_usec;
        j->retry_backoff_usec = t->retry_backoff_usec;
        j->retention_usec = t->workspace_retention_usec;
        j->memory_max = t->memory_max;
        j->tasks_max = t->tasks_max;
        j->cpu_quota_percent = t->cpu_quota_percent;
        j->nice = t->nice;

        r = read_submit_options(msg, m, t, j, error);
        if (r < 0)
                return r;
        if (j->expire_usec > 0 && j->not_before_usec >= (uint64_t) g_get_real_time() + j->expire_usec)
                return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                                  "Option 'expire_usec' ends before the job may start (delay_usec or "
                                  "not_before_usec): it would always expire. Give it more time.");
        j->status = gate_submit_status(m, j);

        if (!manager_accepts_changes(m))
                return BUS_REFUSE_STORE_FAILED(error);
        /* keys are per owner: nobody can squat on, or learn of, another user's job this way */
        holder = j->unique_key ? manager_unique_holder(m, caller.uid, j->unique_key) : 0;
        if (holder > 0) {
                UniqueReply *u;

                if (manager_get_job(m, holder)) {
                        reply_submitted(sd_bus_message_ref(msg), 0, holder);
                        return 1;
                }
                /* still on its way to the disk: answer when it is there, not before */
                u = g_new0(UniqueReply, 1);
                *u = (UniqueReply) { .msg = sd_bus_message_ref(msg), .id = holder };
                manager_when_durable(m, on_unique_durable, u);
                return 1;
        }
        if (caller.uid != 0 && manager_n_unfinished_of(m, caller.uid) >= m->config.max_pending_per_user)
                return bus_refuse(error, JOBD_ERROR_QUOTA_EXCEEDED,
                                  "You have %u unfinished jobs; the limit is %u (MaxPendingPerUser= in "
                                  "jobd.conf). Wait for some to finish or cancel some.",
                                  manager_n_unfinished_of(m, caller.uid), m->config.max_pending_per_user);

        if (j->input_fd >= 0) {
                r = manager_spool_input(m, j);
                if (r == -EFBIG)
                        return bus_refuse(error, JOBD_ERROR_TOO_LARGE,
                                          "The input grew past MaxInputBytes=%" G_GUINT64_FORMAT " while it "
                                          "was copied.", m->config.max_input_bytes);
                if (r < 0)
                        return sd_bus_error_set_errnof(error, -r, "Failed to copy the input: %s", g_strerror(-r));
        }

        manager_submit(m, g_steal_pointer(&j), on_submitted, sd_bus_message_ref(msg));
        return 1;
}

/* ---- List ---- */

typedef struct ListFilter {
        GHashTable *statuses;   /* JobStatus+1 set; NULL: any */
        GHashTable *types;      /* names; NULL: any */
        bool has_owner;
        uid_t owner;
        uint32_t limit;
        uint64_t after_id;
} ListFilter;

static void list_filter_done(ListFilter *f) {
        g_clear_pointer(&f->statuses, g_hash_table_unref);
        g_clear_pointer(&f->types, g_hash_table_unref);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(ListFilter, list_filter_done)

static int read_strv_option(sd_bus_message *msg, const char *key, char ***ret, sd_bus_error *error) {
        g_auto(GStrv) v = NULL;
        int r = bus_enter_option(msg, key, "as", error);
        if (r < 0)
                return r;
        r = sd_bus_message_read_strv(msg, &v);
        if (r < 0)
                return r;
        if (g_strv_length(v) > LIST_FILTER_VALUES_MAX)
                return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                                  "Filter '%s' lists %u values; the limit is %u.",
                                  key, g_strv_length(v), LIST_FILTER_VALUES_MAX);
        *ret = g_steal_pointer(&v);
        return 0;
}

static int list_filter_entry(sd_bus_message *msg, const char *key, void *userdata, sd_bus_error *error) {
        ListFilter *f = userdata;
        g_auto(GStrv) v = NULL;
        int r;

        if (g_str_equal(key, "status")) {
                r = read_strv_option(msg, key, &v, error);
                if (r < 0)
                        return r;
                f->statuses = g_hash_table_new(g_direct_hash, g_direct_equal);
                for (char **s = v; *s; s++) {
                        JobStatus st = job_status_from_string(*s);
                        if (st < 0)
                                return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                                                  "Unknown status '%s' in the filter; use pending, "
                                                  "scheduled, blocked, running, succeeded, failed "
                                                  "or cancelled.", *s);
                        g_hash_table_add(f->statuses, GINT_TO_POINTER(st + 1));
                }
                return 0;
        }
        if (g_str_equal(key, "type")) {
                r = read_strv_option(msg, key, &v, error);
                if (r < 0)
                        return r;
                f->types = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
                for (char **s = v; *s; s++)
                        g_hash_table_add(f->types, g_strdup(*s));
                return 0;
        }
        if (g_str_equal(key, "owner")) {
                r = bus_enter_option(msg, key, "u", error);
                if (r < 0)
                        return r;
                f->has_owner = true;
                return sd_bus_message_read_basic(msg, 'u', &f->owner);
        }
        if (g_str_equal(key, "limit")) {
                r = bus_enter_option(msg, key, "u", error);
                if (r < 0)
                        return r;
                r = sd_bus_message_read_basic(msg, 'u', &f->limit);
                if (r >= 0 && (f->limit == 0 || f->limit > LIST_LIMIT_MAX))
                        return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                                          "Filter 'limit' is %u; it must be between 1 and %u. "
                                          "Page on with after_id.", f->limit, LIST_LIMIT_MAX);
                return r;
        }
        if (g_str_equal(key, "after_id")) {
                r = bus_enter_option(msg, key, "t", error);
                if (r < 0)
                        return r;
                return sd_bus_message_read_basic(msg, 't', &f->after_id);
        }
        return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                          "Unknown filter '%s'; use status (as), type (as), owner (u), "
                          "limit (u) or after_id (t).", key);
}

static int read_list_filter(sd_bus_message *msg, ListFilter *f, sd_bus_error *error) {
        f->limit = LIST_LIMIT_MAX;
        return bus_read_vardict(msg, list_filter_entry, f, error);
}

static bool list_filter_match(const ListFilter *f, const Job *j) {
        if (f->statuses && !g_hash_table_contains(f->statuses, GINT_TO_POINTER(j->status + 1)))
                return false;
        if (f->types && !g_hash_table_contains(f->types, j->type))
                return false;
        if (f->has_owner && f->owner != j->owner)
                return false;
        return true;
}

static int method_list(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        g_auto(ListFilter) f = {};
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        GTreeNode *n;
        uint64_t first;
        uint32_t count = 0;
        int r;

        r = read_list_filter(msg, &f, error);
        if (r < 0)
                return r;

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(tssso)");
        if (r < 0)
                return r;

        first = f.after_id == UINT64_MAX ? UINT64_MAX : f.after_id + 1;
        for (n = g_tree_lower_bound(m->jobs, &first); n && count < f.limit; n = g_tree_node_next(n)) {
                Job *j = g_tree_node_value(n);
                g_autofree char *path = NULL;

                if (!list_filter_match(&f, j))
                        continue;
                path = job_path(j->id);
                r = sd_bus_message_append(reply, "(tssso)", j->id, j->type, job_status_to_string(j->status),
                                          manager_user_name(m, j->owner), path);
                if (r < 0)
                        return r;
                count++;
        }
        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* ---- GetStats ---- */

static int append_stat(sd_bus_message *reply, const char *key, char type, uint64_t value) {
        return type == 'u' ? sd_bus_message_append(reply, "{sv}", key, "u", (uint32_t) MIN(value, UINT32_MAX)) :
                             sd_bus_message_append(reply, "{sv}", key, "t", value);
}

static int append_times(sd_bus_message *reply, const char *what, const StatsTimes *t) {
        const struct { const char *suffix; char type; uint64_t value; } keys[] = {
                { "count", 'u', t->count },
                { "total_usec", 't', t->total_usec },
                { "p50_usec", 't', t->p50_usec },
                { "p90_usec", 't', t->p90_usec },
                { "p99_usec", 't', t->p99_usec },
        };
        int r = 0;

        for (size_t i = 0; r >= 0 && i < G_N_ELEMENTS(keys); i++) {
                g_autofree char *key = g_strconcat(what, "_", keys[i].suffix, NULL);

                r = append_stat(reply, key, keys[i].type, keys[i].value);
        }
        return r;
}

/* The figures of one a{sv}: counts by status, wait_* and run_* times, resource totals. */
static int append_figures(sd_bus_message *reply, const StatsFigures *f) {
        int r = 0;

        for (JobStatus s = 0; r >= 0 && s < _JOB_STATUS_MAX; s++)
                r = append_stat(reply, job_status_to_string(s), 'u', f->by_status[s]);
        if (r >= 0)
                r = append_stat(reply, "total", 'u', f->total);
        if (r >= 0)
                r = append_stat(reply, "queue_depth", 'u', f->queue_depth);
        if (r >= 0)
                r = append_times(reply, "wait", &f->wait);
        if (r >= 0)
                r = append_times(reply, "run", &f->run);
        if (r >= 0)
                r = append_stat(reply, "cpu_usage_total_nsec", 't', f->cpu_usage_total_nsec);
        if (r >= 0)
                r = append_stat(reply, "memory_peak_total_bytes", 't', f->memory_peak_total_bytes);
        if (r >= 0)
                r = append_stat(reply, "memory_peak_max_bytes", 't', f->memory_peak_max_bytes);
        return r;
}

/* queue_depth_by_type a{su} and by_type a{sa{sv}}: every type that has jobs */
static int append_by_type(sd_bus_message *reply, Stats *stats) {
        g_autoptr(GPtrArray) types = stats_types(stats);
        StatsFigures f;
        int r;

        r = sd_bus_message_open_container(reply, 'e', "sv");
        if (r >= 0)
                r = sd_bus_message_append(reply, "s", "queue_depth_by_type");
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'v', "a{su}");
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "{su}");
        for (guint i = 0; r >= 0 && i < types->len; i++) {
                stats_get(stats, types->pdata[i], &f);
                if (f.queue_depth > 0)
                        r = sd_bus_message_append(reply, "{su}", (const char *) types->pdata[i], f.queue_depth);
        }
        for (int i = 0; r >= 0 && i < 3; i++)
                r = sd_bus_message_close_container(reply);

        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'e', "sv");
        if (r >= 0)
                r = sd_bus_message_append(reply, "s", "by_type");
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'v', "a{sa{sv}}");
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "{sa{sv}}");
        for (guint i = 0; r >= 0 && i < types->len; i++) {
                stats_get(stats, types->pdata[i], &f);
                r = sd_bus_message_open_container(reply, 'e', "sa{sv}");
                if (r >= 0)
                        r = sd_bus_message_append(reply, "s", (const char *) types->pdata[i]);
                if (r >= 0)
                        r = sd_bus_message_open_container(reply, 'a', "{sv}");
                if (r >= 0)
                        r = append_figures(reply, &f);
                for (int k = 0; r >= 0 && k < 2; k++)
                        r = sd_bus_message_close_container(reply);
        }
        for (int i = 0; r >= 0 && i < 3; i++)
                r = sd_bus_message_close_container(reply);
        return r;
}

typedef struct StatsFill {
        const char *type;               /* "" for all */
        Stats *stats;
} StatsFill;

static gboolean stats_one(gpointer key, gpointer value, gpointer userdata) {
        StatsFill *fill = userdata;
        Job *j = value;

        if (!*fill->type || g_str_equal(fill->type, j->type))
                stats_add(fill->stats, j);
        return FALSE;
}

/* One pass over the jobs (stats.c): O(jobs) a call, nothing kept between calls. */
static int method_get_stats(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        g_autoptr(Stats) stats = stats_new();
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        StatsFill fill = { .stats = stats };
        StatsFigures f;
        int r;

        r = sd_bus_message_read(msg, "s", &fill.type);
        if (r < 0)
                return r;
        if (*fill.type && !manager_get_type(m, fill.type))
                return bus_refuse(error, JOBD_ERROR_UNKNOWN_TYPE,
                                  "Unknown job type '%s'; `jobctl types` lists the configured ones.", fill.type);

        g_tree_foreach(m->jobs, stats_one, &fill);
        stats_get(stats, NULL, &f);

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "{sv}");
        if (r >= 0)
                r = append_figures(reply, &f);
        if (r >= 0 && !*fill.type)
                r = append_stat(reply, "workers_waiting", 'u', g_queue_get_length(m->waiters));
        if (r >= 0 && !*fill.type)
                r = append_by_type(reply, stats);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* ---- ListTypes ---- */

static int append_type(sd_bus_message *reply, const JobType *t, bool paused, const char *schedule_error) {
        g_autofree char *timer = NULL;
        int r;

        if (t->on_calendar)
                timer = g_strconcat(RECURRING_UNIT_PREFIX, t->name, ".timer", NULL);

        r = sd_bus_message_open_container(reply, 'r', "ssa{sv}");
        if (r < 0)
                return r;
        r = sd_bus_message_append(reply, "ss", t->name, t->description ?: "");
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "{sv}");
        if (r < 0)
                return r;

        r = sd_bus_message_open_container(reply, 'e', "sv");
        if (r >= 0)
                r = sd_bus_message_append(reply, "s", "exec");
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'v', "as");
        if (r >= 0)
                r = sd_bus_message_append_strv(reply, t->exec);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;

        r = sd_bus_message_append(reply, "{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}{sv}",
                                  "stdin", "s", jobtype_stdin_to_string(t->stdin_mode),
                                  "user", "s", t->user ?: "",
                                  "concurrency", "u", t->concurrency,
                                  "timeout_usec", "t", t->timeout_usec,
                                  "max_attempts", "u", t->max_attempts,
                                  "retry_backoff_usec", "t", t->retry_backoff_usec,
                                  "workspace_retention_usec", "t", t->workspace_retention_usec,
                                  "memory_max", "t", t->memory_max,
                                  "cpu_quota_percent", "u", t->cpu_quota_percent,
                                  "tasks_max", "t", t->tasks_max,
                                  "nice", "i", t->nice,
                                  "builtin", "b", t->builtin,
                                  "external", "b", !t->exec && !t->builtin,
                                  "paused", "b", paused,
                                  "path", "s", t->path ?: "");
        if (r >= 0)
                r = sd_bus_message_append(reply, "{sv}{sv}{sv}{sv}",
                                          "on_calendar", "s", t->on_calendar ?: "",
                                          "schedule_persistent", "b", t->schedule_persistent,
                                          "schedule_timer", "s", timer ?: "",
                                          "schedule_error", "s", schedule_error ?: "");
        if (r < 0)
                return r;

        static const char *const list_names[] = { "submit_users", "submit_groups", "worker_users", "worker_groups" };
        char **const lists[] = { t->submit_users, t->submit_groups, t->worker_users, t->worker_groups };
        for (size_t i = 0; i < G_N_ELEMENTS(lists); i++) {
                r = sd_bus_message_open_container(reply, 'e', "sv");
                if (r >= 0)
                        r = sd_bus_message_append(reply, "s", list_names[i]);
                if (r >= 0)
                        r = sd_bus_message_open_container(reply, 'v', "as");
                if (r >= 0)
                        r = sd_bus_message_append_strv(reply, lists[i]);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
                if (r >= 0)
                        r = sd_bus_message_close_container(reply);
                if (r < 0)
                        return r;
        }

        r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_message_close_container(reply);
}

static gint compare_type_names(gconstpointer a, gconstpointer b) {
        return g_strcmp0((*(JobType *const *) a)->name, (*(JobType *const *) b)->name);
}

static int method_list_types(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        g_autoptr(GPtrArray) sorted = g_ptr_array_new();
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        GHashTableIter it;
        gpointer v;
        int r;

        g_hash_table_iter_init(&it, m->types);
        while (g_hash_table_iter_next(&it, NULL, &v))
                g_ptr_array_add(sorted, v);
        g_ptr_array_sort(sorted, compare_type_names);

        r = sd_bus_message_new_method_return(msg, &reply);
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(reply, 'a', "(ssa{sv})");
        for (guint i = 0; r >= 0 && i < sorted->len; i++) {
                const char *name = ((JobType *) sorted->pdata[i])->name;

                r = append_type(reply, sorted->pdata[i], manager_type_paused(m, name),
                                recurring_get_error(m->recurring, name));
        }
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r < 0)
                return r;
        return sd_bus_send(NULL, reply, NULL);
}

/* ---- Reload and the not yet implemented ---- */

static void on_reload_synced(Recurring *r, void *userdata) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = userdata;

        (void) sd_bus_reply_method_return(msg, NULL);
}

static int method_reload(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        int r;

        r = auth_check_admin(m, msg, error);
        if (r < 0)
                return r;
        manager_reload(m, NULL);
        if (!m->recurring)
                return sd_bus_reply_method_return(msg, NULL);
        /* once the timers are made (or refused): `jobctl reload && jobctl types` shows the outcome */
        recurring_when_idle(m->recurring, on_reload_synced, sd_bus_message_ref(msg));
        return 1;
}

/* PauseType and ResumeType: a paused type keeps its queue but starts and hands out nothing. */
static int method_pause_type(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        bool pause = g_str_equal(sd_bus_message_get_member(msg), "PauseType");
        const char *type;
        int r;

        r = sd_bus_message_read(msg, "s", &type);
        if (r < 0)
                return r;
        r = auth_check_admin(m, msg, error);
        if (r < 0)
                return r;
        if (!manager_get_type(m, type))
                return bus_refuse(error, JOBD_ERROR_UNKNOWN_TYPE,
                                  "Unknown job type '%s'; `jobctl types` lists the configured ones.", type);
        if (!manager_accepts_changes(m))
                return BUS_REFUSE_STORE_FAILED(error);
        manager_set_paused(m, type, pause, bus_reply_when_durable, sd_bus_message_ref(msg));
        return 1;
}

/* ---- Claim ---- */

static int check_claim_type(Manager *m, const Caller *caller, const char *name, sd_bus_error *error) {
        JobType *t = manager_get_type(m, name);

        if (!t)
                return bus_refuse(error, JOBD_ERROR_UNKNOWN_TYPE,
                                  "Unknown job type '%s'; `jobctl types` lists the configured ones.", name);
        if (t->builtin || t->exec)
                return bus_refuse(error, JOBD_ERROR_INVALID_PARAMETERS,
                                  "Type '%s' runs locally (Exec=); only types without Exec= are worked by "
                                  "external workers.", name);
        /* empty lists: root only, a worker is trusted with other people's parameters */
        if (!caller_is_admin(m, caller) && !caller_in_lists(caller, t->worker_users, t->worker_groups))
                return bus_refuse(error, JOBD_ERROR_ACCESS_DENIED,
                                  "Type '%s' is worked only by root and the users and groups in its "
                                  "WorkerUsers= and WorkerGroups=; uid %u is in neither.",
                                  name, (unsigned) caller->uid);
        return 0;
}

typedef struct ClaimOptions {
        bool track, fds;
} ClaimOptions;

static int claim_option_entry(sd_bus_message *msg, const char *key, void *userdata, sd_bus_error *error) {
        ClaimOptions *co = userdata;
        int b, r;

        if (!g_str_equal(key, "track") && !g_str_equal(key, "fds"))
                return bus_refuse(error, JOBD_ERROR_INVALID_OPTION,
                                  "Unknown Claim option '%s'; use track (b) or fds (b).", key);
        r = bus_enter_option(msg, key, "b", error);
        if (r < 0)
                return r;
        r = sd_bus_message_read_basic(msg, 'b', &b);
        if (r < 0)
                return r;
        *(g_str_equal(key, "track") ? &co->track : &co->fds) = b;
        return 0;
}

static int method_claim(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Manager *m = userdata;
        g_auto(Caller) caller = {};
        g_auto(GStrv) types = NULL;
        uint64_t wait_usec;
        ClaimOptions co = { .track = false, .fds = true };
        size_t n;
        int r;

        r = sd_bus_message_read_strv(msg, &types);
        if (r < 0)
                return r;
        r = sd_bus_message_read(msg, "t", &wait_usec);
        if (r < 0)
                return r;
        r = bus_read_vardict(msg, claim_option_entry, &co, error);
        if (r < 0)
                return r;

        n = g_strv_length(types);
        if (n == 0 || n > CLAIM_TYPES_MAX)
                return bus_refuse(error, JOBD_ERROR_INVALID_PARAMETERS,
                                  "Claim takes 1 to %u types, not %zu.", CLAIM_TYPES_MAX, n);
        if (wait_usec > CLAIM_WAIT_MAX_USEC)
                return bus_refuse(error, JOBD_ERROR_INVALID_PARAMETERS,
                                  "wait_usec is %" G_GUINT64_FORMAT "; at most one hour (%" G_GUINT64_FORMAT
                                  ") a Claim may wait. Claim again after it.", wait_usec, CLAIM_WAIT_MAX_USEC);
        r = bus_query_caller(msg, m->callers, &caller);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                r = check_claim_type(m, &caller, types[i], error);
                if (r < 0)
                        return r;
        }
        if (!manager_accepts_changes(m))
                return BUS_REFUSE_STORE_FAILED(error);
        return lease_claim(m, msg, types, wait_usec, co.track, co.fds, error);
}

static const sd_bus_vtable manager_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("Submit",
                                SD_BUS_ARGS("s", type, "s", parameters, "a{sv}", options),
                                SD_BUS_RESULT("t", id, "o", job),
                                method_submit, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("List",
                                SD_BUS_ARGS("a{sv}", filter),
                                SD_BUS_RESULT("a(tssso)", jobs),
                                method_list, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Claim",
                                SD_BUS_ARGS("as", types, "t", wait_usec, "a{sv}", options),
                                SD_BUS_RESULT("t", id, "s", token, "s", type, "s", parameters, "a{sv}", info),
                                method_claim, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("GetStats",
                                SD_BUS_ARGS("s", type),
                                SD_BUS_RESULT("a{sv}", stats),
                                method_get_stats, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ListTypes",
                                SD_BUS_NO_ARGS,
                                SD_BUS_RESULT("a(ssa{sv})", types),
                                method_list_types, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("Reload", SD_BUS_NO_ARGS, SD_BUS_NO_RESULT,
                                method_reload, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("PauseType", SD_BUS_ARGS("s", type), SD_BUS_NO_RESULT,
                                method_pause_type, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("ResumeType", SD_BUS_ARGS("s", type), SD_BUS_NO_RESULT,
                                method_pause_type, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_SIGNAL_WITH_ARGS("JobNew", SD_BUS_ARGS("t", id, "o", job, "s", type), 0),
        SD_BUS_SIGNAL_WITH_ARGS("JobChanged", SD_BUS_ARGS("t", id, "o", job, "s", status), 0),
        SD_BUS_VTABLE_END
};

int bus_manager_register(Manager *m) {
        return sd_bus_add_object_vtable(m->bus, &m->slots[0], JOBD_MANAGER_PATH, JOBD_MANAGER_INTERFACE,
                                        manager_vtable, m);
}

void bus_manager_emit_job_new(Manager *m, Job *j) {
        g_autofree char *path = job_path(j->id);
        int r;

        r = sd_bus_emit_signal(m->bus, JOBD_MANAGER_PATH, JOBD_MANAGER_INTERFACE, "JobNew", "tos",
                               j->id, path, j->type);
        if (r < 0)
                log_warning_errno(r, "Failed to emit JobNew, ignoring: %m");
}

void bus_manager_emit_job_changed(Manager *m, Job *j) {
        g_autofree char *path = job_path(j->id);
        int r;

        r = sd_bus_emit_signal(m->bus, JOBD_MANAGER_PATH, JOBD_MANAGER_INTERFACE, "JobChanged", "tos",
                               j->id, path, job_status_to_string(j->status));
        if (r < 0)
                log_warning_errno(r, "Failed to emit JobChanged, ignoring: %m");
}
