/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The worker loop: Claims out, jobs in, each job to its end. One sd-event loop; every call is
 * asynchronous, so Claims long-poll side by side with the running jobs' heartbeats and logs.
 *
 * Each of the concurrency slots has its own bus connection, holding either one Claim or the one
 * job that Claim brought. Why not one connection for all: a Claim cannot be withdrawn, only
 * dropped by jobd when its connection leaves the bus. Stopping must give the jobs in hand back
 * (Release, delay 0) while no Claim of ours is still parked, or jobd would hand them straight
 * back to us as we exit, and a tracked attempt that leaves with its connection is charged as
 * lost. So on SIGTERM the connections of idle slots close first (their parked Claims go with
 * them), then the jobs are released on their own connections, where nothing is parked. Closing
 * is not enough by itself: jobd learns of it from the bus (NameOwnerChanged), and a Release on
 * another connection may overtake that. So a Release or Fail (which may put the job back) waits
 * until the bus says each closed connection is gone (GetNameOwner fails): from then on, the bus
 * has queued that news for jobd before anything we send.
 *
 * Invariants and order:
 *  - With --max-jobs, jobs started + Claims in flight <= max, so a Claim never brings a job
 *    beyond it.
 *  - A job's calls go out on its slot's connection, which keeps their order: every Log is sent
 *    before the Complete or Fail that ends the attempt, and nothing is sent after it.
 *  - StaleToken from any call means the attempt is not ours any more: the handler's process
 *    group is killed and nothing more is said about the job.
 *  - A Claim that answers with a job after we decided to stop gets the job released at once.
 */

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>

#include "jobctl-bus.h"
#include "jobctl-handler.h"
#include "jobctl-output.h"
#include "jobctl-time.h"
#include "jobctl-worker-loop.h"
#include "jobd-names.h"

/* beyond wait_usec: jobd makes a claim durable (fsync) before it answers */
#define CLAIM_REPLY_SLACK_USEC    (30 * USEC_PER_SEC)
#define CLAIM_BACKOFF_MIN_USEC    (1 * USEC_PER_SEC)
#define CLAIM_BACKOFF_MAX_USEC    (30 * USEC_PER_SEC)
#define HEARTBEAT_MIN_USEC        (1 * USEC_PER_SEC)
#define HEARTBEAT_MAX_USEC        (60 * USEC_PER_SEC)
#define LOG_CALL_MAX              (64u * 1024u)         /* bytes of data in one Log call */
#define STOP_KILL_AFTER_USEC      (5 * USEC_PER_SEC)    /* SIGTERM, then SIGKILL, on shutdown */
#define START_FAILED_RELEASE_USEC (10 * USEC_PER_SEC)   /* a job we could not start goes back after */
#define DEPARTURE_RECHECK_USEC    (10 * USEC_PER_MSEC)

typedef struct Worker Worker;
typedef struct WorkerJob WorkerJob;

typedef struct Slot {
        Worker *worker;
        sd_bus *bus;                    /* its own connection, opened when first needed */
        sd_bus_slot *claim_call;        /* a Claim in flight, or */
        uint64_t claim_sent_usec;       /* (CLOCK_MONOTONIC) */
        WorkerJob *job;                 /* the job it brought; owned */
} Slot;

typedef enum JobPhase {
        JOB_RUNNING,                    /* the handler runs, or its last log goes out */
        JOB_STOPPING,                   /* shutting down: handler signalled, Release once it is gone */
        JOB_ENDING,                     /* Complete, Fail or Release sent */
        JOB_LOST,                       /* StaleToken or no bus: handler killed, freed when it is gone */
} JobPhase;

typedef enum JobEnd {
        END_COMPLETE,
        END_FAIL,
        END_RELEASE,
} JobEnd;

struct WorkerJob {
        Worker *worker;
        Slot *slot;
        sd_bus *bus;                    /* the slot's, borrowed */
        uint64_t id;
        char *token;
        char *path;
        char *name;                     /* "job 42 (resize)", escaped, for what we print */
        uint32_t attempt;
        uint64_t deadline_usec;         /* CLOCK_REALTIME, as jobd last said */

        JobPhase phase;
        JobEnd end;
        char *fail_error;               /* what Fail says */
        bool fail_retry;
        uint64_t release_delay_usec;
        bool end_waits;                 /* for the closed connections to be gone (Worker.departing) */
        Handler *handler;
        bool handler_done;

        sd_event_source *heartbeat_timer;
        sd_bus_slot *heartbeat_call;
        sd_bus_slot *log_call;
        sd_bus_slot *end_call;
        bool heartbeat_warned;          /* said once until one works again */
        bool log_warned;
};

struct Worker {
        sd_event *event;
        const WorkerOptions *o;         /* borrowed */

        Slot *slots;                    /* o->concurrency of them */
        unsigned n_claims;
        unsigned n_jobs;
        unsigned n_started;
        unsigned n_ended;

        sd_event_source *backoff_timer; /* no Claims while set */
        uint64_t backoff_usec;

        bool stopping;                  /* SIGTERM or SIGINT: claim nothing, release what we hold */
        int error;                      /* < 0: claiming ended with this error (logged) */

        GPtrArray *departing;           /* unique names of closed connections the bus still lists */
        sd_bus_slot *departure_call;
        sd_event_source *departure_timer;
        sd_bus *departure_bus;          /* a job's connection, to ask on; borrowed */
};

static void worker_fill(Worker *w);
static void job_finish(WorkerJob *j);

static uint64_t now_monotonic_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

static char *format_runtime(uint64_t usec) {
        if (usec < USEC_PER_SEC)
                return g_strdup_printf("%" PRIu64 "ms", usec / USEC_PER_MSEC);
        if (usec < USEC_PER_MINUTE)
                return g_strdup_printf("%.1fs", (double) usec / USEC_PER_SEC);
        return format_timespan(usec, USEC_PER_SEC);
}

/* jobd's messages are text from elsewhere: escaped before they reach a terminal */
static char *error_text(const sd_bus_error *e, int r) {
        return text_escape(bus_error_message(e, r));
}

static void job_note(const WorkerJob *j, const char *format, ...) __attribute__((format(printf, 2, 3)));
static void job_note(const WorkerJob *j, const char *format, ...) {
        g_autofree char *text = NULL;
        va_list ap;

        va_start(ap, format);
        text = g_strdup_vprintf(format, ap);
        va_end(ap);
        log_error("%s: %s", j->name, text);
}

/* ---- a job ---- */

static WorkerJob *job_free(WorkerJob *j) {
        if (!j)
                return NULL;
        j->heartbeat_timer = sd_event_source_disable_unref(j->heartbeat_timer);
        j->heartbeat_call = sd_bus_slot_unref(j->heartbeat_call);
        j->log_call = sd_bus_slot_unref(j->log_call);
        j->end_call = sd_bus_slot_unref(j->end_call);
        handler_free(j->handler);
        g_free(j->token);
        g_free(j->path);
        g_free(j->name);
        g_free(j->fail_error);
        g_free(j);
        return NULL;
}

/* The job is off our hands. */
static void job_end(WorkerJob *j) {
        Worker *w = j->worker;

        w->n_ended++;
        w->n_jobs--;
        j->slot->job = NULL;
        job_free(j);                    /* its handler killed, its workspace removed */
        worker_fill(w);
}

static void job_stop_calls(WorkerJob *j) {
        j->heartbeat_timer = sd_event_source_disable_unref(j->heartbeat_timer);
        j->heartbeat_call = sd_bus_slot_unref(j->heartbeat_call);
}

/* The attempt is not ours (StaleToken) or cannot be reported (no bus): stop its handler now. */
static void job_lose(WorkerJob *j, const char *why) {
        g_autofree char *runtime = NULL;

        if (j->phase == JOB_LOST)
                return;
        runtime = format_runtime(j->handler ? handler_runtime_usec(j->handler) : 0);
        job_note(j, "lost after %s%s: %s", runtime,
                 j->handler && !j->handler_done ? ", killed the handler" : "", why);

        j->phase = JOB_LOST;
        job_stop_calls(j);
        j->log_call = sd_bus_slot_unref(j->log_call);
        j->end_call = sd_bus_slot_unref(j->end_call);
        if (!j->handler || j->handler_done) {
                job_end(j);
                return;
        }
        handler_kill(j->handler, SIGKILL, 0);
}

static bool error_is_stale(const sd_bus_error *e) {
        return sd_bus_error_has_name(e, JOBD_ERROR_STALE_TOKEN);
}

static void job_lose_by_error(WorkerJob *j, const sd_bus_error *e, int r) {
        g_autofree char *text = error_text(e, r);

        job_lose(j, text);
}

static void job_lose_by_errno(WorkerJob *j, const char *call, int r) {
        g_autofree char *text = g_strdup_printf("failed to send %s: %s", call, strerror(-r));

        job_lose(j, text);
}

/* heartbeat */

static int on_heartbeat_timer(sd_event_source *s, uint64_t usec, void *userdata);

static void job_schedule_heartbeat(WorkerJob *j) {
        uint64_t now = now_realtime_usec();
        uint64_t left = j->deadline_usec > now ? j->deadline_usec - now : 0;
        uint64_t interval = CLAMP(left / 3, HEARTBEAT_MIN_USEC, HEARTBEAT_MAX_USEC);
        int r;

        if (j->heartbeat_timer) {
                r = sd_event_source_set_time_relative(j->heartbeat_timer, interval);
                if (r >= 0)
                        r = sd_event_source_set_enabled(j->heartbeat_timer, SD_EVENT_ONESHOT);
        } else
                r = sd_event_add_time_relative(j->worker->event, &j->heartbeat_timer, CLOCK_MONOTONIC, interval,
                                               0, on_heartbeat_timer, j);
        if (r < 0)
                job_note(j, "failed to schedule a heartbeat, ignoring: %s", strerror(-r));
}

static int on_heartbeat_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        WorkerJob *j = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);
        uint64_t deadline;
        int r;

        j->heartbeat_call = sd_bus_slot_unref(j->heartbeat_call);
        if (e && error_is_stale(e)) {
                job_lose_by_error(j, e, sd_bus_message_get_errno(m));
                return 0;
        }
        if (e && !j->heartbeat_warned) {
                g_autofree char *text = error_text(e, sd_bus_message_get_errno(m));

                job_note(j, "heartbeat failed, trying again: %s", text);
                j->heartbeat_warned = true;
        }
        if (!e) {
                r = sd_bus_message_read(m, "t", &deadline);
                if (r >= 0)
                        j->deadline_usec = deadline;
                j->heartbeat_warned = false;
        }
        job_schedule_heartbeat(j);
        return 0;
}

static int on_heartbeat_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        WorkerJob *j = userdata;
        int r;

        if (j->heartbeat_call) {
                job_schedule_heartbeat(j);      /* the last one is still out */
                return 0;
        }
        /* extend_usec 0: by the type's lease length */
        r = sd_bus_call_method_async(j->bus, &j->heartbeat_call, JOBD_BUS_NAME, j->path, JOBD_JOB_INTERFACE,
                                     "Heartbeat", on_heartbeat_reply, j, "st", j->token, UINT64_C(0));
        if (r < 0)
                job_lose_by_errno(j, "Heartbeat", r);
        return 0;
}

/* log */

static int job_flush_log(WorkerJob *j);

static int on_log_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        WorkerJob *j = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);

        j->log_call = sd_bus_slot_unref(j->log_call);
        if (e) {
                if (error_is_stale(e)) {
                        job_lose_by_error(j, e, sd_bus_message_get_errno(m));
                        return 0;
                }
                if (!j->log_warned) {
                        g_autofree char *text = error_text(e, sd_bus_message_get_errno(m));
                        job_note(j, "Log failed, dropping log lines: %s", text);
                        j->log_warned = true;
                }
        }
        if (job_flush_log(j) < 0)
                return 0;
        if (j->handler_done)
                job_finish(j);
        return 0;
}

/* One Log call at a time: lines that come meanwhile go together in the next one, and a handler
 * that writes faster than jobd takes them waits on its pipe (HANDLER_LOG_BUFFER_MAX).
 * -1 when the job is gone (freed), else 0. */
static int job_flush_log(WorkerJob *j) {
        g_autofree char *data = NULL;
        int r;

        if (j->phase == JOB_LOST || j->phase == JOB_ENDING) {
                /* nobody to tell: dropped, so that the pipe drains */
                while (handler_has_log(j->handler))
                        g_free(handler_log_take(j->handler, LOG_CALL_MAX));
                return 0;
        }
        if (j->log_call || !handler_has_log(j->handler))
                return 0;

        data = handler_log_take(j->handler, LOG_CALL_MAX);
        r = sd_bus_call_method_async(j->bus, &j->log_call, JOBD_BUS_NAME, j->path, JOBD_JOB_INTERFACE,
                                     "Log", on_log_reply, j, "ss", j->token, data);
        if (r < 0) {
                bool gone = j->handler_done;

                job_lose_by_errno(j, "Log", r);
                return gone ? -1 : 0;
        }
        return 0;
}

static void on_handler_log(Handler *h, void *userdata) {
        (void) job_flush_log(userdata);
}

/* the end */

static int on_end_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error);

/* Release or Fail, as j->end says. */
static void job_send_end(WorkerJob *j) {
        int r;

        if (j->end == END_RELEASE)
                r = sd_bus_call_method_async(j->bus, &j->end_call, JOBD_BUS_NAME, j->path, JOBD_JOB_INTERFACE,
                                             "Release", on_end_reply, j, "st", j->token, j->release_delay_usec);
        else
                r = sd_bus_call_method_async(j->bus, &j->end_call, JOBD_BUS_NAME, j->path, JOBD_JOB_INTERFACE,
                                             "Fail", on_end_reply, j, "ssa{sv}", j->token, j->fail_error,
                                             1, "retry", "b", j->fail_retry);
        if (r < 0) {
                job_note(j, "failed to send %s: %s", j->end == END_RELEASE ? "Release" : "Fail", strerror(-r));
                job_end(j);
        }
}

static void worker_confirm_departures(Worker *w, sd_bus *bus);

/* Release and Fail may hand the job out again: not while a parked Claim of ours may take it. */
static void job_send_end_after_departures(WorkerJob *j) {
        Worker *w = j->worker;

        if (w->departing->len == 0) {
                job_send_end(j);
                return;
        }
        j->end_waits = true;
        worker_confirm_departures(w, j->bus);
}

static void job_release(WorkerJob *j, uint64_t delay_usec) {
        job_stop_calls(j);
        j->phase = JOB_ENDING;
        j->end = END_RELEASE;
        j->release_delay_usec = delay_usec;
        job_send_end_after_departures(j);
}

static void job_fail(WorkerJob *j, const char *error, bool retry) {
        job_stop_calls(j);
        j->phase = JOB_ENDING;
        j->end = END_FAIL;
        g_free(j->fail_error);
        j->fail_error = g_strdup(error);
        j->fail_retry = retry;
        job_send_end_after_departures(j);
}

static int append_outputs(sd_bus_message *m, const HandlerOutputs *o) {
        int r;

        r = sd_bus_message_open_container(m, 'e', "sv");
        if (r >= 0)
                r = sd_bus_message_append(m, "s", "outputs");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'v', "a{sh}");
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sh}");
        for (unsigned i = 0; r >= 0 && i < o->names->len; i++)
                /* the message holds its own duplicate of each fd */
                r = sd_bus_message_append(m, "{sh}", (const char *) o->names->pdata[i],
                                          g_array_index(o->fds, int, i));
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        return r;
}

static void job_complete(WorkerJob *j) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        g_auto(HandlerOutputs) outputs = {};
        g_autofree char *result = NULL;
        bool truncated;
        int r;

        result = handler_result(j->handler, &truncated);
        if (truncated)
                job_note(j, "the handler wrote more than %u KiB on stdout; the Result holds the first ones "
                         "as a string.", HANDLER_RESULT_MAX / 1024);

        r = handler_open_outputs(j->handler, &outputs);
        if (r == -E2BIG) {
                g_autofree char *error = g_strdup_printf("The handler left more than %u files in outputs/.",
                                                         HANDLER_OUTPUTS_MAX);
                job_fail(j, error, false);      /* it would the next time too */
                return;
        }
        if (r < 0) {
                g_autofree char *error = g_strdup_printf("The worker could not read outputs/: %s.", strerror(-r));
                job_fail(j, error, true);
                return;
        }
        if (outputs.names->len > 0 && sd_bus_can_send(j->bus, SD_BUS_TYPE_UNIX_FD) <= 0) {
                job_fail(j, "The handler left files in outputs/, which this worker's connection to jobd "
                         "(SSH) cannot pass; run the worker on jobd's host.", false);
                return;
        }

        r = sd_bus_message_new_method_call(j->bus, &m, JOBD_BUS_NAME, j->path, JOBD_JOB_INTERFACE, "Complete");
        if (r >= 0)
                r = sd_bus_message_append(m, "ss", j->token, result);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r >= 0 && outputs.names->len > 0)
                r = append_outputs(m, &outputs);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r < 0) {
                g_autofree char *error = g_strdup_printf("The worker could not build its Complete call: %s.",
                                                         strerror(-r));
                job_fail(j, error, true);
                return;
        }

        job_stop_calls(j);
        j->phase = JOB_ENDING;
        j->end = END_COMPLETE;
        r = sd_bus_call_async(j->bus, &j->end_call, m, on_end_reply, j, 0);
        if (r < 0)
                job_lose_by_errno(j, "Complete", r);
}

/* jobd refused what Complete carried (the result or the outputs): say so in the job, rather than
 * letting its lease run out. */
static bool error_is_refusal(const sd_bus_error *e) {
        return sd_bus_error_has_names(e, JOBD_ERROR_TOO_LARGE, JOBD_ERROR_INVALID_PARAMETERS,
                                      JOBD_ERROR_INVALID_OPTION, JOBD_ERROR_QUOTA_EXCEEDED);
}

static int on_end_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        WorkerJob *j = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(m);
        g_autofree char *runtime = format_runtime(j->handler ? handler_runtime_usec(j->handler) : 0);
        g_autofree char *text = e ? error_text(e, sd_bus_message_get_errno(m)) : NULL;
        g_autofree char *escaped = NULL;

        j->end_call = sd_bus_slot_unref(j->end_call);

        if (e && error_is_stale(e) && j->end != END_RELEASE) {
                job_lose(j, text);
                return 0;
        }

        switch (j->end) {

        case END_COMPLETE:
                if (!e) {
                        job_note(j, "succeeded in %s", runtime);
                        break;
                }
                if (error_is_refusal(e)) {
                        g_autofree char *error = g_strdup_printf("jobd refused the worker's result: %s",
                                                                 bus_error_message(e, sd_bus_message_get_errno(m)));

                        job_note(j, "Complete refused, failing the job: %s", text);
                        job_fail(j, error, false);
                        return 0;
                }
                job_note(j, "finished in %s, but Complete failed: %s", runtime, text);
                break;

        case END_FAIL:
                escaped = text_escape(j->fail_error);
                if (!e)
                        job_note(j, "failed in %s: %s", runtime, escaped);
                else
                        job_note(j, "failed in %s: %s; and Fail failed: %s", runtime, escaped, text);
                break;

        case END_RELEASE:
                if (!e)
                        job_note(j, "released");
                else
                        job_note(j, "failed to release: %s", text);
                break;
        }

        job_end(j);
        return 0;
}

/* The handler is gone and its output read: end the attempt once its last log lines are out. */
static void job_finish(WorkerJob *j) {
        g_autofree char *error = NULL;

        if (j->phase != JOB_RUNNING && j->phase != JOB_STOPPING)
                return;
        if (j->log_call || handler_has_log(j->handler)) {
                (void) job_flush_log(j);
                return;                 /* on_log_reply() comes back here */
        }

        if (j->phase == JOB_STOPPING) {
                job_release(j, 0);
                return;
        }
        if (handler_succeeded(j->handler)) {
                job_complete(j);
                return;
        }
        error = handler_describe_exit(j->handler);
        job_fail(j, error, true);
}

static void on_handler_done(Handler *h, void *userdata) {
        WorkerJob *j = userdata;

        j->handler_done = true;
        if (j->phase == JOB_LOST)
                job_end(j);
        else
                job_finish(j);
}

/* Shutting down: a handler still running is stopped and its job given back. */
static void job_stop(WorkerJob *j) {
        if (j->phase != JOB_RUNNING || j->handler_done)
                return;                 /* finishing or ending: let it */
        j->phase = JOB_STOPPING;
        handler_kill(j->handler, SIGTERM, STOP_KILL_AFTER_USEC);
}

static void job_start(Slot *slot, uint64_t id, const char *token, const char *type, const char *parameters,
                      GVariant *info) {
        g_autoptr(GVariant) input = g_variant_lookup_value(info, "input", G_VARIANT_TYPE_HANDLE);
        g_autofree char *shown_type = text_escape(type);
        Worker *w = slot->worker;
        WorkerJob *j = g_new0(WorkerJob, 1);
        HandlerJob hj;
        int r;

        *j = (WorkerJob) {
                .worker = w,
                .slot = slot,
                .bus = slot->bus,
                .id = id,
                .token = g_strdup(token),
                .path = job_object_path(id),
                .name = g_strdup_printf("job %" PRIu64 " (%s)", id, shown_type),
        };
        slot->job = j;
        w->n_jobs++;
        w->n_started++;

        (void) vardict_get_u32(info, "attempt", &j->attempt);
        if (!vardict_get_u64(info, "deadline_usec", &j->deadline_usec) || j->deadline_usec == 0)
                j->deadline_usec = now_realtime_usec() + 3 * HEARTBEAT_MIN_USEC;

        if (w->stopping || w->error < 0) {
                job_release(j, 0);
                return;
        }

        hj = (HandlerJob) {
                .id = id,
                .token = token,
                .type = type,
                .parameters = parameters,
                .attempt = j->attempt,
                /* the reply's own fd, valid during this callback; the handler takes a duplicate */
                .input_fd = input ? g_variant_get_handle(input) : -1,
        };
        r = handler_start(&j->handler, w->event, w->o->command, &hj, on_handler_log, on_handler_done, j);
        if (r < 0) {
                /* our trouble (fork, /tmp), not the job's: no attempt charged */
                job_note(j, "failed to start the handler: %s; giving the job back.", strerror(-r));
                job_release(j, START_FAILED_RELEASE_USEC);
                return;
        }
        job_schedule_heartbeat(j);
}

/* ---- connections that left ---- */

static int on_departure_timer(sd_event_source *s, uint64_t usec, void *userdata);

static void worker_departures_done(Worker *w) {
        g_ptr_array_set_size(w->departing, 0);
        w->departure_call = sd_bus_slot_unref(w->departure_call);
        w->departure_timer = sd_event_source_disable_unref(w->departure_timer);

        for (unsigned i = 0; i < w->o->concurrency; i++) {
                WorkerJob *j = w->slots[i].job;

                if (j && j->end_waits) {
                        j->end_waits = false;
                        job_send_end(j);        /* may free j, not the slot */
                }
        }
}

static int on_departure_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Worker *w = userdata;
        int r;

        w->departure_call = sd_bus_slot_unref(w->departure_call);
        if (!sd_bus_message_is_method_error(m, NULL)) {
                /* still listed: the bus has not read the hangup yet */
                r = sd_event_add_time_relative(w->event, &w->departure_timer, CLOCK_MONOTONIC,
                                               DEPARTURE_RECHECK_USEC, 0, on_departure_timer, w);
                if (r < 0)
                        worker_departures_done(w);
                return 0;
        }
        g_ptr_array_remove_index(w->departing, 0);
        worker_confirm_departures(w, NULL);
        return 0;
}

/* Asks the bus, one name at a time, until none of the closed connections is listed; then sends
 * the ends that waited for that. bus: a connection to ask on (NULL: the one used so far). */
static void worker_confirm_departures(Worker *w, sd_bus *bus) {
        int r;

        if (bus && !w->departure_bus)
                w->departure_bus = bus;
        if (w->departure_call || w->departure_timer)
                return;                 /* under way */
        if (w->departing->len == 0 || !w->departure_bus) {
                worker_departures_done(w);
                return;
        }
        r = sd_bus_call_method_async(w->departure_bus, &w->departure_call, "org.freedesktop.DBus",
                                     "/org/freedesktop/DBus", "org.freedesktop.DBus", "GetNameOwner",
                                     on_departure_reply, w, "s", (const char *) w->departing->pdata[0]);
        if (r < 0)
                worker_departures_done(w);      /* cannot ask: go on rather than hold the jobs */
}

static int on_departure_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Worker *w = userdata;

        w->departure_timer = sd_event_source_disable_unref(w->departure_timer);
        worker_confirm_departures(w, NULL);
        return 0;
}

/* ---- claiming ---- */

static void slot_close_bus(Slot *s) {
        s->claim_call = sd_bus_slot_unref(s->claim_call);
        if (s->bus) {
                (void) sd_bus_detach_event(s->bus);
                s->bus = sd_bus_flush_close_unref(s->bus);
        }
}

static void worker_maybe_exit(Worker *w) {
        bool max_reached = w->o->max_jobs > 0 && w->n_ended >= w->o->max_jobs;

        if (w->n_jobs == 0 && (w->stopping || w->error < 0 || max_reached))
                (void) sd_event_exit(w->event, 0);
}

/* Parked Claims go with their connections: nothing of ours then waits to be handed the jobs we
 * give back. */
static void worker_drop_claims(Worker *w) {
        for (unsigned i = 0; i < w->o->concurrency; i++) {
                Slot *s = &w->slots[i];
                const char *name;

                if (s->job || !s->claim_call)
                        continue;
                if (sd_bus_get_unique_name(s->bus, &name) >= 0)
                        g_ptr_array_add(w->departing, g_strdup(name));
                slot_close_bus(s);
                w->n_claims--;
        }
}

/* Claiming ends; the jobs in hand go on to their end. */
static void worker_fail(Worker *w, int r) {
        if (w->error == 0)
                w->error = r < 0 ? r : -EIO;
        worker_drop_claims(w);
        worker_maybe_exit(w);
}

static int on_backoff_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Worker *w = userdata;

        w->backoff_timer = sd_event_source_disable_unref(w->backoff_timer);
        worker_fill(w);
        return 0;
}

static void worker_backoff(Worker *w) {
        int r;

        if (w->backoff_timer)
                return;
        w->backoff_usec = CLAMP(w->backoff_usec * 2, CLAIM_BACKOFF_MIN_USEC, CLAIM_BACKOFF_MAX_USEC);
        r = sd_event_add_time_relative(w->event, &w->backoff_timer, CLOCK_MONOTONIC, w->backoff_usec, 0,
                                       on_backoff_timer, w);
        if (r < 0)
                worker_fail(w, log_error_errno(r, "Failed to set up a timer: %m"));
}

/* Errors that no retry cures: our rights, the types, a jobd without Claim. */
static bool claim_error_is_fatal(const sd_bus_error *e) {
        return sd_bus_error_has_names(e, JOBD_ERROR_ACCESS_DENIED, JOBD_ERROR_UNKNOWN_TYPE,
                                      JOBD_ERROR_INVALID_PARAMETERS, JOBD_ERROR_INVALID_OPTION,
                                      JOBD_ERROR_NOT_SUPPORTED, SD_BUS_ERROR_UNKNOWN_METHOD,
                                      SD_BUS_ERROR_UNKNOWN_OBJECT, SD_BUS_ERROR_UNKNOWN_INTERFACE,
                                      SD_BUS_ERROR_INVALID_ARGS);
}

static void claim_failed(Worker *w, const sd_bus_error *e, int r) {
        g_autofree char *text = error_text(e, r);
        g_autofree char *delay = NULL;

        if (claim_error_is_fatal(e)) {
                log_error("Failed to claim jobs: %s", text);
                worker_fail(w, r < 0 ? r : -EIO);
                return;
        }
        if (w->backoff_timer)
                return;                 /* said already */

        /* jobd restarting, its store failing, a connection lost: a while later, reconnected */
        worker_backoff(w);
        delay = format_timespan(w->backoff_usec, USEC_PER_SEC);
        log_error("Failed to claim jobs, trying again in %s: %s", delay, text);
}

static int on_claim_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Slot *slot = userdata;
        Worker *w = slot->worker;
        const sd_bus_error *e = sd_bus_message_get_error(m);
        uint64_t elapsed = now_monotonic_usec() - slot->claim_sent_usec;
        g_autoptr(GVariant) body = NULL, info = NULL;
        const char *token, *type, *parameters;
        uint64_t id;
        int r;

        slot->claim_call = sd_bus_slot_unref(slot->claim_call);
        w->n_claims--;

        if (e) {
                if (!w->stopping)
                        claim_failed(w, e, sd_bus_message_get_errno(m));
                worker_fill(w);
                return 0;
        }
        r = bus_message_read_body(m, "(tsssa{sv})", &body);
        if (r < 0) {
                worker_fail(w, log_error_errno(r, "Failed to parse the Claim reply: %m"));
                return 0;
        }
        w->backoff_usec = 0;

        g_variant_get(body, "(t&s&s&s@a{sv})", &id, &token, &type, &parameters, &info);
        if (id == 0) {
                /* nothing came; a jobd answering long before wait_usec must not make us spin */
                if (elapsed < CLAIM_BACKOFF_MIN_USEC)
                        worker_backoff(w);
        } else
                job_start(slot, id, token, type, parameters, info);

        worker_fill(w);
        return 0;
}

static int slot_connect(Slot *s) {
        Worker *w = s->worker;
        int r;

        /* a connection the bus closed (dbus-daemon restarted) is replaced */
        if (s->bus && sd_bus_is_open(s->bus) > 0)
                return 0;
        slot_close_bus(s);

        r = w->o->open_bus(w->o->userdata, &s->bus);
        if (r < 0)
                return r;               /* logged */
        r = sd_bus_attach_event(s->bus, w->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0) {
                slot_close_bus(s);
                return log_error_errno(r, "Failed to attach the bus to the event loop: %m");
        }
        return 0;
}

static int slot_claim(Slot *s) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        Worker *w = s->worker;
        int r;

        r = slot_connect(s);
        if (r < 0)
                return r;

        r = sd_bus_message_new_method_call(s->bus, &m, JOBD_BUS_NAME, JOBD_MANAGER_PATH, JOBD_MANAGER_INTERFACE,
                                           "Claim");
        if (r >= 0)
                r = sd_bus_message_append_strv(m, w->o->types);
        /* tracked: should we die, jobd takes the job back at once, not after the lease; over SSH
         * (no fds), jobs with input are left to other workers */
        if (r >= 0 && w->o->fds)
                r = sd_bus_message_append(m, "ta{sv}", w->o->wait_usec, 1, "track", "b", 1);
        else if (r >= 0)
                r = sd_bus_message_append(m, "ta{sv}", w->o->wait_usec, 2, "track", "b", 1, "fds", "b", 0);
        if (r >= 0)
                /* the call's timeout must outlast the long poll */
                r = sd_bus_call_async(s->bus, &s->claim_call, m, on_claim_reply, s,
                                      w->o->wait_usec + CLAIM_REPLY_SLACK_USEC);
        if (r < 0)
                return log_error_errno(r, "Failed to send a Claim: %m");

        s->claim_sent_usec = now_monotonic_usec();
        w->n_claims++;
        return 0;
}

static bool worker_may_claim(const Worker *w) {
        if (w->stopping || w->error < 0 || w->backoff_timer)
                return false;
        return w->o->max_jobs == 0 || w->n_started + w->n_claims < w->o->max_jobs;
}

static void worker_fill(Worker *w) {
        for (unsigned i = 0; i < w->o->concurrency && worker_may_claim(w); i++) {
                Slot *s = &w->slots[i];
                int r;

                if (s->job || s->claim_call)
                        continue;
                r = slot_claim(s);
                if (r < 0) {
                        worker_fail(w, r);
                        return;
                }
        }
        worker_maybe_exit(w);
}

/* ---- the loop ---- */

static int on_signal(sd_event_source *source, const struct signalfd_siginfo *si, void *userdata) {
        Worker *w = userdata;
        unsigned n_running = 0;

        if (w->stopping) {
                log_error("Exiting at once; the jobs still held are lost as the connections close.");
                return sd_event_exit(w->event, 128 + (int) si->ssi_signo);
        }
        w->stopping = true;
        worker_drop_claims(w);          /* first, so the jobs given back go to others */

        for (unsigned i = 0; i < w->o->concurrency; i++) {
                WorkerJob *j = w->slots[i].job;

                if (!j)
                        continue;
                if (j->phase == JOB_RUNNING && !j->handler_done)
                        n_running++;
                job_stop(j);
        }
        if (n_running > 0)
                log_error("Stopping: giving %u job%s back (%s again to exit at once).", n_running,
                          n_running == 1 ? "" : "s", si->ssi_signo == SIGINT ? "Ctrl-C" : "SIGTERM");
        worker_maybe_exit(w);
        return 0;
}

static int block_signals(sd_event *event, Worker *w) {
        sigset_t mask;

        /* SIGCHLD too: sd-event watches children only with it blocked */
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return -errno;
        return event_add_exit_signals(event, on_signal, w);
}

int worker_run(const WorkerOptions *o) {
        _cleanup_(sd_event_unrefp) sd_event *event = NULL;
        Worker w = {
                .o = o,
        };
        int r;

        g_assert(o->concurrency > 0);

        r = sd_event_new(&event);
        if (r < 0)
                return log_error_errno(r, "Failed to allocate event loop: %m");
        w.event = event;
        r = block_signals(event, &w);
        if (r < 0)
                return log_error_errno(r, "Failed to watch signals: %m");

        w.departing = g_ptr_array_new_with_free_func(g_free);
        w.slots = g_new0(Slot, o->concurrency);
        for (unsigned i = 0; i < o->concurrency; i++)
                w.slots[i].worker = &w;

        worker_fill(&w);
        r = sd_event_loop(event);
        if (r < 0)
                log_error_errno(r, "Event loop failed: %m");

        w.backoff_timer = sd_event_source_disable_unref(w.backoff_timer);
        w.departure_call = sd_bus_slot_unref(w.departure_call);
        w.departure_timer = sd_event_source_disable_unref(w.departure_timer);
        g_ptr_array_unref(w.departing);
        /* after a second signal: handlers killed and reaped, workspaces removed */
        for (unsigned i = 0; i < o->concurrency; i++) {
                job_free(w.slots[i].job);
                slot_close_bus(&w.slots[i]);
        }
        g_free(w.slots);

        if (r != 0)
                return r;
        return w.error;
}
