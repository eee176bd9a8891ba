/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Job state and its record encoding. The field table below is the single description of what
 * is persisted: encoding, decoding and change masks all walk it, so adding a field is one line
 * (and one JobField tag, appended, never renumbered).
 */

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "jobd-names.h"
#include "job.h"

static const char *const job_status_table[_JOB_STATUS_MAX] = {
        [JOB_PENDING]   = JOBD_STATUS_PENDING,
        [JOB_SCHEDULED] = JOBD_STATUS_SCHEDULED,
        [JOB_BLOCKED]   = JOBD_STATUS_BLOCKED,
        [JOB_RUNNING]   = JOBD_STATUS_RUNNING,
        [JOB_SUCCEEDED] = JOBD_STATUS_SUCCEEDED,
        [JOB_FAILED]    = JOBD_STATUS_FAILED,
        [JOB_CANCELLED] = JOBD_STATUS_CANCELLED,
};

const char *job_status_to_string(JobStatus s) {
        if (s < 0 || s >= _JOB_STATUS_MAX)
                return NULL;
        return job_status_table[s];
}

JobStatus job_status_from_string(const char *s) {
        if (!s)
                return _JOB_STATUS_INVALID;
        for (JobStatus i = 0; i < _JOB_STATUS_MAX; i++)
                if (strcmp(job_status_table[i], s) == 0)
                        return i;
        return _JOB_STATUS_INVALID;
}

bool job_status_is_finished(JobStatus s) {
        return s == JOB_SUCCEEDED || s == JOB_FAILED || s == JOB_CANCELLED;
}

bool job_status_is_queued(JobStatus s) {
        return s == JOB_PENDING || s == JOB_SCHEDULED || s == JOB_BLOCKED;
}

gint job_compare_rank(gconstpointer a, gconstpointer b) {
        const Job *x = a, *y = b;

        if (x->priority != y->priority)
                return x->priority > y->priority ? -1 : 1;
        if (x->id != y->id)
                return x->id < y->id ? -1 : 1;
        return 0;
}

Job *job_new(uint64_t id) {
        Job *j = g_new0(Job, 1);

        j->id = id;
        j->status = JOB_PENDING;
        j->exit_status = -1;
        j->max_attempts = 1;
        j->memory_max = UINT64_MAX;
        j->tasks_max = UINT64_MAX;
        j->nice = JOB_NICE_UNSET;
        j->input_fd = -1;
        j->worker_uid = (uid_t) -1;
        j->groups = g_array_new(FALSE, FALSE, sizeof(gid_t));
        j->after = g_array_new(FALSE, FALSE, sizeof(uint64_t));
        return j;
}

Job *job_free(Job *j) {
        if (!j)
                return NULL;

        g_free(j->type);
        g_array_unref(j->groups);
        g_free(j->parameters);
        g_free(j->result);
        g_free(j->error);
        g_free(j->progress_message);
        g_free(j->worker);
        g_free(j->unit);
        g_array_unref(j->after);
        g_strfreev(j->outputs);
        g_free(j->lock);
        g_free(j->unique_key);
        if (j->token)
                explicit_bzero(j->token, strlen(j->token));
        g_free(j->token);
        g_free(j->input_tmp);
        g_free(j->dep_edges);
        if (j->input_fd >= 0)
                (void) close(j->input_fd);
        return g_free(j), NULL;
}

char *job_path(uint64_t id) {
        return g_strdup_printf(JOBD_JOB_PATH_PREFIX "/%" PRIu64, id);
}

int job_id_from_path(const char *path, uint64_t *ret) {
        const char *p;
        char *end;
        uint64_t id;

        if (!path || !g_str_has_prefix(path, JOBD_JOB_PATH_PREFIX "/"))
                return -EINVAL;
        p = path + strlen(JOBD_JOB_PATH_PREFIX "/");
        /* digits only: no sign, no spaces, no leading zeros, so one id has one path */
        if (*p < '1' || *p > '9')
                return -EINVAL;
        for (const char *c = p; *c; c++)
                if (*c < '0' || *c > '9')
                        return -EINVAL;
        errno = 0;
        id = g_ascii_strtoull(p, &end, 10);
        if (errno != 0 || *end != '\0')
                return -EINVAL;
        *ret = id;
        return 0;
}

typedef enum FieldKind {
        FIELD_STRING,   /* char * */
        FIELD_STRV,     /* char ** */
        FIELD_U64,
        FIELD_U32,
        FIELD_I32,
        FIELD_STATUS,
        FIELD_U64_ARRAY, /* GArray of uint64_t */
        FIELD_GID_ARRAY, /* GArray of gid_t */
} FieldKind;

typedef struct FieldInfo {
        JobField field;
        FieldKind kind;
        size_t offset;
} FieldInfo;

#define F(f, k, member) { JOB_FIELD_##f, FIELD_##k, offsetof(Job, member) }
static const FieldInfo field_table[] = {
        F(TYPE, STRING, type),
        F(STATUS, STATUS, status),
        F(OWNER, U32, owner),
        F(PRIORITY, I32, priority),
        F(PARAMETERS, STRING, parameters),
        F(RESULT, STRING, result),
        F(ERROR, STRING, error),
        F(EXIT_STATUS, I32, exit_status),
        F(PROGRESS, U32, progress),
        F(PROGRESS_MESSAGE, STRING, progress_message),
        F(ATTEMPT, U32, attempt),
        F(MAX_ATTEMPTS, U32, max_attempts),
        F(WORKER, STRING, worker),
        F(UNIT, STRING, unit),
        F(AFTER, U64_ARRAY, after),
        F(OUTPUTS, STRV, outputs),
        F(SUBMITTED, U64, submitted_usec),
        F(STARTED, U64, started_usec),
        F(FINISHED, U64, finished_usec),
        F(NOT_BEFORE, U64, not_before_usec),
        F(DEADLINE, U64, deadline_usec),
        F(CPU_USAGE, U64, cpu_usage_nsec),
        F(MEMORY_PEAK, U64, memory_peak_bytes),
        F(GID, U32, gid),
        F(GROUPS, GID_ARRAY, groups),
        F(TIMEOUT, U64, timeout_usec),
        F(RETRY_BACKOFF, U64, retry_backoff_usec),
        F(RETENTION, U64, retention_usec),
        F(EXPIRE, U64, expire_usec),
        F(LOCK, STRING, lock),
        F(UNIQUE_KEY, STRING, unique_key),
        F(MEMORY_MAX, U64, memory_max),
        F(CPU_QUOTA, U32, cpu_quota_percent),
        F(TASKS_MAX, U64, tasks_max),
        F(NICE, I32, nice),
        F(TOKEN, STRING, token),
        F(TRACKED, U32, tracked),
        F(HAS_INPUT, U32, has_input),
        F(EXPIRE_AT, U64, expire_at_usec),
        F(WORKER_UID, U32, worker_uid),
};
#undef F

G_STATIC_ASSERT(G_N_ELEMENTS(field_table) == _JOB_FIELD_MAX - 1);
G_STATIC_ASSERT(_JOB_FIELD_MAX <= 64);
G_STATIC_ASSERT(sizeof(uid_t) == sizeof(uint32_t) && sizeof(gid_t) == sizeof(uint32_t));

static void *field_ptr(const Job *j, const FieldInfo *f) {
        return (uint8_t *) j + f->offset;
}

static void field_encode(const Job *j, const FieldInfo *f, GByteArray *out) {
        void *p = field_ptr(j, f);

        switch (f->kind) {
        case FIELD_STRING:
                record_put_str(out, f->field, *(char **) p);
                break;
        case FIELD_STRV:
                record_put_strv(out, f->field, *(char ***) p);
                break;
        case FIELD_U64:
                record_put_u64(out, f->field, *(uint64_t *) p);
                break;
        case FIELD_U32:
                record_put_u64(out, f->field, *(uint32_t *) p);
                break;
        case FIELD_I32:
                record_put_i64(out, f->field, *(int32_t *) p);
                break;
        case FIELD_STATUS:
                record_put_u64(out, f->field, (uint64_t) *(JobStatus *) p);
                break;
        case FIELD_U64_ARRAY: {
                GArray *a = *(GArray **) p;
                record_put_u64v(out, f->field, (const uint64_t *) (void *) a->data, a->len);
                break;
        }
        case FIELD_GID_ARRAY: {
                GArray *a = *(GArray **) p;
                g_autofree uint64_t *v = g_new(uint64_t, a->len + 1);
                for (guint i = 0; i < a->len; i++)
                        v[i] = g_array_index(a, gid_t, i);
                record_put_u64v(out, f->field, v, a->len);
                break;
        }
        }
}

void job_encode(const Job *j, RecordKind kind, uint64_t mask, GByteArray *out) {
        /* who holds the attempt is the worker's name and its uid: they change together */
        if (mask & JOB_FIELD_BIT(JOB_FIELD_WORKER))
                mask |= JOB_FIELD_BIT(JOB_FIELD_WORKER_UID);
        record_begin(out, kind, j->id);
        for (size_t i = 0; i < G_N_ELEMENTS(field_table); i++) {
                const FieldInfo *f = &field_table[i];
                /* a NEW record carries everything, whatever the mask */
                if (kind == RECORD_JOB_NEW || (mask & JOB_FIELD_BIT(f->field)))
                        field_encode(j, f, out);
        }
}

static const FieldInfo *field_lookup(unsigned tag) {
        /* the table is in tag order without gaps */
        if (tag < 1 || tag >= _JOB_FIELD_MAX)
                return NULL;
        return &field_table[tag - 1];
}

static int field_decode(Job *j, const FieldInfo *f, const RecordField *rf) {
        void *p = field_ptr(j, f);
        RecordWire want;
        int r;

        switch (f->kind) {
        case FIELD_STRING:
                want = RECORD_WIRE_BYTES;
                break;
        case FIELD_STRV:
                want = RECORD_WIRE_STRINGS;
                break;
        case FIELD_U64_ARRAY:
        case FIELD_GID_ARRAY:
                want = RECORD_WIRE_VARINTS;
                break;
        default:
                want = RECORD_WIRE_VARINT;
        }
        if (rf->wire != want)
                return -EBADMSG;

        switch (f->kind) {
        case FIELD_STRING: {
                char *s;
                r = record_field_str(rf, &s);
                if (r < 0)
                        return r;
                g_free(*(char **) p);
                /* "" and unset are one state for optional strings */
                if (*s == '\0')
                        s = (g_free(s), NULL);
                *(char **) p = s;
                return 0;
        }
        case FIELD_STRV: {
                char **v;
                r = record_field_strv(rf, &v);
                if (r < 0)
                        return r;
                g_strfreev(*(char ***) p);
                *(char ***) p = v;
                return 0;
        }
        case FIELD_U64:
                *(uint64_t *) p = rf->u64;
                return 0;
        case FIELD_U32:
                if (rf->u64 > UINT32_MAX)
                        return -EBADMSG;
                *(uint32_t *) p = (uint32_t) rf->u64;
                return 0;
        case FIELD_I32: {
                int64_t v = record_field_i64(rf);
                if (v < INT32_MIN || v > INT32_MAX)
                        return -EBADMSG;
                *(int32_t *) p = (int32_t) v;
                return 0;
        }
        case FIELD_STATUS:
                if (rf->u64 >= _JOB_STATUS_MAX)
                        return -EBADMSG;
                *(JobStatus *) p = (JobStatus) rf->u64;
                return 0;
        case FIELD_U64_ARRAY:
        case FIELD_GID_ARRAY: {
                g_autofree uint64_t *v = NULL;
                GArray *a = *(GArray **) p;
                size_t n;

                r = record_field_u64v(rf, &v, &n);
                if (r < 0)
                        return r;
                g_array_set_size(a, 0);
                for (size_t i = 0; i < n; i++) {
                        if (f->kind == FIELD_U64_ARRAY) {
                                g_array_append_val(a, v[i]);
                        } else {
                                gid_t g = (gid_t) v[i];
                                if (v[i] > UINT32_MAX)
                                        return -EBADMSG;
                                g_array_append_val(a, g);
                        }
                }
                return 0;
        }
        }
        return -EBADMSG;
}

int job_apply_record(Job *j, RecordReader *r) {
        RecordField rf;
        int k;

        while ((k = record_reader_next(r, &rf)) > 0) {
                const FieldInfo *f = field_lookup(rf.tag);
                if (!f)
                        continue;
                k = field_decode(j, f, &rf);
                if (k < 0)
                        return k;
        }
        return k;
}
