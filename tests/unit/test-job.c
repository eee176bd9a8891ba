/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Job records: every field round-trips, updates carry only their fields, malformed values are
 * refused, paths map to ids one to one. */

#include "job.h"
#include "log.h"

static Job *make_full_job(void) {
        Job *j = job_new(42);
        uint64_t after[] = { 1, 7, UINT64_MAX };
        gid_t groups[] = { 10, 4242 };

        j->type = g_strdup("echo");
        j->status = JOB_CANCELLED;
        j->owner = 1000;
        j->gid = 100;
        g_array_append_vals(j->groups, groups, 2);
        j->priority = -1000;
        j->parameters = g_strdup("{\"a\": \"ü\"}");
        j->result = g_strdup("[1,2]");
        j->error = g_strdup("Cancelled.");
        j->exit_status = -1;
        j->progress = 100;
        j->progress_message = g_strdup("done");
        j->attempt = 3;
        j->max_attempts = 5;
        j->worker = g_strdup(":1.42");
        j->worker_uid = 2003;
        j->unit = g_strdup("jobd-42.scope");
        g_array_append_vals(j->after, after, 3);
        j->outputs = g_strdupv((char *[]) { "a.png", "b.txt", NULL });
        j->submitted_usec = 1;
        j->started_usec = 2;
        j->finished_usec = UINT64_MAX;
        j->not_before_usec = 4;
        j->deadline_usec = 5;
        j->cpu_usage_nsec = 6;
        j->memory_peak_bytes = 7;
        j->timeout_usec = 8;
        j->retry_backoff_usec = 9;
        j->retention_usec = 10;
        j->expire_usec = 11;
        j->expire_at_usec = 12;
        j->lock = g_strdup("db");
        j->unique_key = g_strdup("nightly");
        j->memory_max = 1 << 20;
        j->cpu_quota_percent = 50;
        j->tasks_max = 64;
        j->nice = -5;
        return j;
}

static void assert_jobs_equal(const Job *a, const Job *b) {
        g_assert_cmpuint(a->id, ==, b->id);
        g_assert_cmpstr(a->type, ==, b->type);
        g_assert_cmpint(a->status, ==, b->status);
        g_assert_cmpuint(a->owner, ==, b->owner);
        g_assert_cmpuint(a->gid, ==, b->gid);
        g_assert_cmpmem(a->groups->data, a->groups->len * sizeof(gid_t), b->groups->data, b->groups->len * sizeof(gid_t));
        g_assert_cmpint(a->priority, ==, b->priority);
        g_assert_cmpstr(a->parameters, ==, b->parameters);
        g_assert_cmpstr(a->result, ==, b->result);
        g_assert_cmpstr(a->error, ==, b->error);
        g_assert_cmpint(a->exit_status, ==, b->exit_status);
        g_assert_cmpuint(a->progress, ==, b->progress);
        g_assert_cmpstr(a->progress_message, ==, b->progress_message);
        g_assert_cmpuint(a->attempt, ==, b->attempt);
        g_assert_cmpuint(a->max_attempts, ==, b->max_attempts);
        g_assert_cmpstr(a->worker, ==, b->worker);
        g_assert_cmpuint(a->worker_uid, ==, b->worker_uid);
        g_assert_cmpstr(a->unit, ==, b->unit);
        g_assert_cmpmem(a->after->data, a->after->len * 8, b->after->data, b->after->len * 8);
        g_assert_true(g_strv_equal((const char *const *) a->outputs, (const char *const *) b->outputs));
        g_assert_cmpuint(a->submitted_usec, ==, b->submitted_usec);
        g_assert_cmpuint(a->started_usec, ==, b->started_usec);
        g_assert_cmpuint(a->finished_usec, ==, b->finished_usec);
        g_assert_cmpuint(a->not_before_usec, ==, b->not_before_usec);
        g_assert_cmpuint(a->deadline_usec, ==, b->deadline_usec);
        g_assert_cmpuint(a->cpu_usage_nsec, ==, b->cpu_usage_nsec);
        g_assert_cmpuint(a->memory_peak_bytes, ==, b->memory_peak_bytes);
        g_assert_cmpuint(a->timeout_usec, ==, b->timeout_usec);
        g_assert_cmpuint(a->retry_backoff_usec, ==, b->retry_backoff_usec);
        g_assert_cmpuint(a->retention_usec, ==, b->retention_usec);
        g_assert_cmpuint(a->expire_usec, ==, b->expire_usec);
        g_assert_cmpuint(a->expire_at_usec, ==, b->expire_at_usec);
        g_assert_cmpstr(a->lock, ==, b->lock);
        g_assert_cmpstr(a->unique_key, ==, b->unique_key);
        g_assert_cmpuint(a->memory_max, ==, b->memory_max);
        g_assert_cmpuint(a->cpu_quota_percent, ==, b->cpu_quota_percent);
        g_assert_cmpuint(a->tasks_max, ==, b->tasks_max);
        g_assert_cmpint(a->nice, ==, b->nice);
}

static Job *decode(GByteArray *b, RecordKind want_kind) {
        RecordReader r;
        Job *j;

        g_assert_cmpint(record_reader_init(&r, b->data, b->len), ==, 0);
        g_assert_cmpint(r.kind, ==, want_kind);
        j = job_new(r.id);
        g_assert_cmpint(job_apply_record(j, &r), ==, 0);
        return j;
}

static void test_roundtrip(void) {
        g_autoptr(Job) j = make_full_job();
        g_autoptr(GByteArray) b = g_byte_array_new();
        g_autoptr(Job) back = NULL;

        job_encode(j, RECORD_JOB_NEW, 0, b);
        back = decode(b, RECORD_JOB_NEW);
        assert_jobs_equal(j, back);
}

static void test_update_carries_only_mask(void) {
        g_autoptr(Job) j = make_full_job();
        g_autoptr(Job) target = job_new(42);
        g_autoptr(GByteArray) b = g_byte_array_new();
        RecordReader r;

        target->type = g_strdup("other");
        job_encode(j, RECORD_JOB_UPDATE, JOB_FIELD_BIT(JOB_FIELD_STATUS) | JOB_FIELD_BIT(JOB_FIELD_ERROR), b);
        g_assert_cmpint(record_reader_init(&r, b->data, b->len), ==, 0);
        g_assert_cmpint(job_apply_record(target, &r), ==, 0);
        g_assert_cmpint(target->status, ==, JOB_CANCELLED);
        g_assert_cmpstr(target->error, ==, "Cancelled.");
        g_assert_cmpstr(target->type, ==, "other");     /* not in the mask: untouched */
        g_assert_null(target->parameters);
}

/* who holds an attempt is a name and a uid: an update of one is an update of both */
static void test_worker_uid_rides_with_worker(void) {
        g_autoptr(Job) j = make_full_job();
        g_autoptr(Job) target = job_new(42);
        g_autoptr(GByteArray) b = g_byte_array_new();
        RecordReader r;

        g_assert_cmpuint(target->worker_uid, ==, (uid_t) -1);  /* unknown until a claim says */
        job_encode(j, RECORD_JOB_UPDATE, JOB_FIELD_BIT(JOB_FIELD_WORKER), b);
        g_assert_cmpint(record_reader_init(&r, b->data, b->len), ==, 0);
        g_assert_cmpint(job_apply_record(target, &r), ==, 0);
        g_assert_cmpstr(target->worker, ==, ":1.42");
        g_assert_cmpuint(target->worker_uid, ==, 2003);
}

static void test_malformed_values(void) {
        g_autoptr(GByteArray) b = g_byte_array_new();
        g_autoptr(Job) j = job_new(1);
        RecordReader r;

        /* a status past the enum */
        record_begin(b, RECORD_JOB_UPDATE, 1);
        record_put_u64(b, JOB_FIELD_STATUS, _JOB_STATUS_MAX);
        g_assert_cmpint(record_reader_init(&r, b->data, b->len), ==, 0);
        g_assert_cmpint(job_apply_record(j, &r), ==, -EBADMSG);

        /* a string field written as a number */
        g_byte_array_set_size(b, 0);
        record_begin(b, RECORD_JOB_UPDATE, 1);
        record_put_u64(b, JOB_FIELD_TYPE, 5);
        g_assert_cmpint(record_reader_init(&r, b->data, b->len), ==, 0);
        g_assert_cmpint(job_apply_record(j, &r), ==, -EBADMSG);

        /* an owner over 32 bits */
        g_byte_array_set_size(b, 0);
        record_begin(b, RECORD_JOB_UPDATE, 1);
        record_put_u64(b, JOB_FIELD_OWNER, UINT64_C(1) << 40);
        g_assert_cmpint(record_reader_init(&r, b->data, b->len), ==, 0);
        g_assert_cmpint(job_apply_record(j, &r), ==, -EBADMSG);

        /* an unknown tag from a newer jobd is skipped */
        g_byte_array_set_size(b, 0);
        record_begin(b, RECORD_JOB_UPDATE, 1);
        record_put_str(b, 60, "future");
        record_put_u64(b, JOB_FIELD_PROGRESS, 40);
        g_assert_cmpint(record_reader_init(&r, b->data, b->len), ==, 0);
        g_assert_cmpint(job_apply_record(j, &r), ==, 0);
        g_assert_cmpuint(j->progress, ==, 40);
}

static void test_paths(void) {
        g_autofree char *p = job_path(123);
        uint64_t id;

        g_assert_cmpstr(p, ==, "/org/jobd/Jobd1/job/123");
        g_assert_cmpint(job_id_from_path(p, &id), ==, 0);
        g_assert_cmpuint(id, ==, 123);
        g_assert_cmpint(job_id_from_path("/org/jobd/Jobd1/job/0123", &id), ==, -EINVAL);
        g_assert_cmpint(job_id_from_path("/org/jobd/Jobd1/job/0", &id), ==, -EINVAL);
        g_assert_cmpint(job_id_from_path("/org/jobd/Jobd1/job/", &id), ==, -EINVAL);
        g_assert_cmpint(job_id_from_path("/org/jobd/Jobd1/job/1x", &id), ==, -EINVAL);
        g_assert_cmpint(job_id_from_path("/org/jobd/Jobd1/job/99999999999999999999", &id), ==, -EINVAL);
        g_assert_cmpint(job_id_from_path("/org/jobd/Jobd1/jobs/1", &id), ==, -EINVAL);
}

static void test_status_strings(void) {
        for (JobStatus s = 0; s < _JOB_STATUS_MAX; s++)
                g_assert_cmpint(job_status_from_string(job_status_to_string(s)), ==, s);
        g_assert_cmpint(job_status_from_string("done"), ==, _JOB_STATUS_INVALID);
        g_assert_true(job_status_is_finished(JOB_FAILED));
        g_assert_false(job_status_is_finished(JOB_RUNNING));
        g_assert_true(job_status_is_queued(JOB_BLOCKED));
}

int main(int argc, char *argv[]) {
        log_set_target(LOG_TARGET_STDERR);
        g_test_init(&argc, &argv, NULL);
        g_test_add_func("/job/roundtrip", test_roundtrip);
        g_test_add_func("/job/update-carries-only-mask", test_update_carries_only_mask);
        g_test_add_func("/job/worker-uid-rides-with-worker", test_worker_uid_rides_with_worker);
        g_test_add_func("/job/malformed-values", test_malformed_values);
        g_test_add_func("/job/paths", test_paths);
        g_test_add_func("/job/status-strings", test_status_strings);
        return g_test_run();
}
