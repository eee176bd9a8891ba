/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Owns the idle timer, the STATUS= timer, the call filter on the bus, the signal sources and the
 * exit sequence. States: running → stopping (STOPPING=1 sent, the name released, calls already
 * queued to us still served) → the loop exits once the bus confirms the release, or after
 * STOP_DRAIN_MAX_USEC if it never does.
 *
 * The idle timer is lazy: activity only records when it happened (and, after that turn of the
 * loop, switches the timer on if it is off); when it fires early (there was activity since) it is
 * moved to the end of the new period. So a busy jobd re-arms nothing per call. While busy the timer stays off: every way
 * out of busy is itself activity (a job's change is announced, a Claim or follower leaves, a call
 * arrives), except the store finishing a slow fsync or recovering, which is checked again after
 * RECHECK_USEC.
 */

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "idle.h"
#include "jobd-names.h"
#include "lease.h"
#include "log.h"
#include "manager.h"

/* STATUS= at most this often: a queue moving 10000 jobs a second must not flood PID 1 */
#define STATUS_INTERVAL_USEC (UINT64_C(1) * 1000000)
/* busy only because of the store (a slow fsync, a failed disk): look again after this */
#define RECHECK_USEC (UINT64_C(1) * 1000000)
/* the bus confirms a ReleaseName within milliseconds; this is for a bus that never does */
#define STOP_DRAIN_MAX_USEC (UINT64_C(5) * 1000000)
#define IDLE_ACCURACY_USEC (UINT64_C(50) * 1000)

typedef enum IdleState {
        IDLE_RUNNING,
        IDLE_STOPPING,
} IdleState;

typedef enum Busy {
        BUSY_NOT,
        BUSY_WORK,              /* jobs, Claims, followers: their end is activity */
        BUSY_STORE,             /* a change on its way to the disk, or a failed store */
} Busy;

struct Idle {
        Manager *manager;               /* borrowed */
        IdleState state;
        bool for_idle;                  /* stopping because idle (not a signal) */
        bool started;                   /* idle_start() ran: the bus name is ours */
        bool exited;                    /* sd_event_exit() was asked for */

        uint64_t last_activity_usec;    /* CLOCK_MONOTONIC */
        sd_event_source *idle_timer;
        sd_event_source *arm_source;    /* defer: arms the idle timer after the call was handled */

        uint64_t last_status_usec;
        sd_event_source *status_timer;
        char *status;                   /* the last STATUS= sent */

        sd_event_source *sigterm, *sigint;
        sd_event_source *drain_timer;
        sd_bus_slot *filter;
        sd_bus_slot *name_match;
        sd_bus_slot *release;
};

static uint64_t now_usec(Idle *i) {
        uint64_t t = 0;

        (void) sd_event_now(i->manager->event, CLOCK_MONOTONIC, &t);
        return t;
}

/* ---- what is going on ---- */

typedef struct Counts {
        unsigned running, queued, waiting;
} Counts;

static unsigned n_unfinished(Manager *m) {
        GHashTableIter it;
        gpointer v;
        unsigned n = 0;

        /* per owner, so O(owners); used at most once a STATUS_INTERVAL_USEC */
        g_hash_table_iter_init(&it, m->n_unfinished_by_owner);
        while (g_hash_table_iter_next(&it, NULL, &v))
                n += GPOINTER_TO_UINT(v);
        return n;
}

static Counts counts_get(Manager *m) {
        Counts c = {
                .running = m->n_running + (unsigned) g_tree_nnodes(m->leases),
                .waiting = g_queue_get_length(m->waiters),
        };
        unsigned unfinished = n_unfinished(m);

        /* unfinished counts Submits on their way to the disk too: they are queued already */
        c.queued = unfinished > c.running ? unfinished - c.running : 0;
        return c;
}

static bool followed(Manager *m) {
        return m->n_followers > 0;
}

static Busy busy_get(Manager *m) {
        /* counts are kept per owner and an owner's entry goes when it reaches 0 */
        if (g_hash_table_size(m->n_unfinished_by_owner) > 0 || m->n_running > 0 ||
            !g_queue_is_empty(m->waiters) || followed(m))
                return BUSY_WORK;
        if (store_has_queued(m->store) || store_is_failed(m->store))
                return BUSY_STORE;
        return BUSY_NOT;
}

/* ---- STATUS= ---- */

static void status_send(Idle *i, const char *text) {
        if (g_strcmp0(text, i->status) == 0)
                return;
        g_free(i->status);
        i->status = g_strdup(text);
        (void) sd_notifyf(false, "STATUS=%s", text);
}

static void status_update(Idle *i) {
        Counts c = counts_get(i->manager);
        g_autofree char *text = g_strdup_printf("%u running, %u queued, %u worker%s waiting",
                                                c.running, c.queued, c.waiting, c.waiting == 1 ? "" : "s");

        i->last_status_usec = now_usec(i);
        status_send(i, text);
}

static int on_status_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Idle *i = userdata;

        if (i->state == IDLE_RUNNING)
                status_update(i);
        return 0;
}

static void status_schedule(Idle *i) {
        int enabled = SD_EVENT_OFF;

        (void) sd_event_source_get_enabled(i->status_timer, &enabled);
        if (enabled != SD_EVENT_OFF)
                return;
        /* at the earliest in the next turn of the loop: the call that touched us is handled then */
        (void) sd_event_source_set_time(i->status_timer, MAX(now_usec(i), i->last_status_usec + STATUS_INTERVAL_USEC));
        (void) sd_event_source_set_enabled(i->status_timer, SD_EVENT_ONESHOT);
}

/* ---- the exit sequence ---- */

static void exit_now(Idle *i) {
        Manager *m = i->manager;
        int code = 0;

        if (i->exited)
                return;
        i->exited = true;

        /* nobody is served from here on: parked Claims get "nothing now" rather than a broken
         * connection, and claim again (which activates the next jobd) */
        lease_answer_waiters(m);
        if (i->for_idle && g_hash_table_size(m->n_unfinished_by_owner) > 0) {
                log_info("Work arrived while exiting; exiting with status %i so that jobd.service "
                         "restarts at once.", IDLE_EXIT_RESTART);
                code = IDLE_EXIT_RESTART;
        }
        (void) sd_event_exit(m->event, code);
}

static int on_name_owner_changed(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        Idle *i = userdata;
        const char *name, *old_owner, *new_owner, *unique = NULL;

        if (sd_bus_message_read(msg, "sss", &name, &old_owner, &new_owner) < 0)
                return 0;
        (void) sd_bus_get_unique_name(i->manager->bus, &unique);
        /* everything sent to the name before the release was queued to us before this signal */
        if (g_str_equal(name, JOBD_BUS_NAME) && *new_owner == '\0' && g_strcmp0(old_owner, unique) == 0) {
                log_debug("Released " JOBD_BUS_NAME "; the calls sent before are answered.");
                exit_now(i);
        }
        return 0;
}

static int on_release_reply(sd_bus_message *reply, void *userdata, sd_bus_error *error) {
        Idle *i = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        uint32_t result = 0;

        i->release = sd_bus_slot_unref(i->release);
        if (e || sd_bus_message_read(reply, "u", &result) < 0 || result != 1 /* RELEASED */) {
                /* no NameOwnerChanged will come */
                log_warning("Failed to release " JOBD_BUS_NAME " (%s); exiting.", e ? e->message : "not the owner");
                exit_now(i);
        }
        return 0;
}

static int on_drain_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Idle *i = userdata;

        log_warning("The bus did not confirm the release of " JOBD_BUS_NAME " within %" PRIu64 " s; exiting.",
                    STOP_DRAIN_MAX_USEC / 1000000);
        exit_now(i);
        return 0;
}

static int idle_begin_stop(Idle *i, bool for_idle) {
        Manager *m = i->manager;
        int r;

        i->state = IDLE_STOPPING;
        i->for_idle = for_idle;
        (void) sd_event_source_set_enabled(i->idle_timer, SD_EVENT_OFF);
        (void) sd_event_source_set_enabled(i->status_timer, SD_EVENT_OFF);
        /* systemd takes the unit as stopping now: a start request (an activation) that comes
         * meanwhile waits for us to be gone instead of finding us "active" */
        (void) sd_notifyf(false, "STOPPING=1\nSTATUS=%s", for_idle ? "Idle, exiting" : "Stopping");

        if (!i->started || !m->bus)
                return sd_event_exit(m->event, 0);

        r = sd_bus_add_match_async(m->bus, &i->name_match,
                                   "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                                   "interface='org.freedesktop.DBus',member='NameOwnerChanged',"
                                   "arg0='" JOBD_BUS_NAME "'", on_name_owner_changed, NULL, i);
        /* the match goes to the bus before the release, on one connection, so it is in place */
        if (r >= 0)
                r = sd_bus_call_method_async(m->bus, &i->release, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                             "org.freedesktop.DBus", "ReleaseName", on_release_reply, i,
                                             "s", JOBD_BUS_NAME);
        if (r >= 0)
                r = sd_event_add_time_relative(m->event, &i->drain_timer, CLOCK_MONOTONIC, STOP_DRAIN_MAX_USEC, 0,
                                               on_drain_timeout, i);
        if (r < 0) {
                log_warning_errno(r, "Failed to release " JOBD_BUS_NAME ", exiting at once: %m");
                return sd_event_exit(m->event, 0);
        }
        (void) sd_event_source_set_description(i->drain_timer, "stop-drain");
        return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Idle *i = userdata;

        if (i->state == IDLE_STOPPING) {
                /* a second one (Ctrl-C twice): do not wait for the bus */
                log_info("Received signal %i again, exiting now.", (int) si->ssi_signo);
                exit_now(i);
                return 0;
        }
        log_info("Received signal %i, stopping.", (int) si->ssi_signo);
        return idle_begin_stop(i, false);
}

/* ---- the idle timer ---- */

static void idle_timer_arm(Idle *i, uint64_t usec) {
        (void) sd_event_source_set_time(i->idle_timer, usec);
        (void) sd_event_source_set_enabled(i->idle_timer, SD_EVENT_ONESHOT);
}

static int on_idle_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Idle *i = userdata;
        uint64_t period = i->manager->config.idle_exit_usec, now = now_usec(i);

        if (i->state != IDLE_RUNNING || period == 0)
                return 0;
        if (now < i->last_activity_usec + period) {
                idle_timer_arm(i, i->last_activity_usec + period);
                return 0;
        }
        switch (busy_get(i->manager)) {
        case BUSY_WORK:
                return 0;       /* off until the next activity */
        case BUSY_STORE:
                idle_timer_arm(i, now + RECHECK_USEC);
                return 0;
        case BUSY_NOT:
                break;
        }
        log_info("Idle for %" PRIu64 " ms (IdleExitSec=), exiting.", period / 1000);
        return idle_begin_stop(i, true);
}

/* After the turn of the loop that touched us, so a Reload handled in it already set the period. The
 * timer moves only when it is off or due later than the new period allows (a shorter IdleExitSec=);
 * otherwise its firing early is what catches up with the activity. */
static int on_arm(sd_event_source *s, void *userdata) {
        Idle *i = userdata;
        uint64_t period = i->manager->config.idle_exit_usec, due = UINT64_MAX;
        int enabled = SD_EVENT_OFF;

        if (i->state != IDLE_RUNNING)
                return 0;
        if (period == 0)
                return sd_event_source_set_enabled(i->idle_timer, SD_EVENT_OFF);
        (void) sd_event_source_get_enabled(i->idle_timer, &enabled);
        (void) sd_event_source_get_time(i->idle_timer, &due);
        if (enabled == SD_EVENT_OFF || due > i->last_activity_usec + period)
                idle_timer_arm(i, i->last_activity_usec + period);
        return 0;
}

void idle_touch(Idle *i) {
        if (!i || i->state != IDLE_RUNNING || !i->started)
                return;
        i->last_activity_usec = now_usec(i);
        (void) sd_event_source_set_enabled(i->arm_source, SD_EVENT_ONESHOT);
        status_schedule(i);
}

/* Every method call to us is activity; signals and replies (systemd's, the bus daemon's) are not. */
static int on_bus_message(sd_bus_message *msg, void *userdata, sd_bus_error *error) {
        if (sd_bus_message_is_method_call(msg, NULL, NULL))
                idle_touch(userdata);
        return 0;
}

bool idle_is_stopping(const Idle *i) {
        return i && i->state == IDLE_STOPPING;
}

/* ---- life cycle ---- */

int idle_new(Idle **ret, Manager *m) {
        g_autoptr(Idle) i = g_new0(Idle, 1);
        sigset_t mask;
        int r;

        i->manager = m;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return -errno;
        r = sd_event_add_signal(m->event, &i->sigterm, SIGTERM, on_signal, i);
        if (r < 0)
                return r;
        r = sd_event_add_signal(m->event, &i->sigint, SIGINT, on_signal, i);
        if (r < 0)
                return r;

        r = sd_event_add_time(m->event, &i->idle_timer, CLOCK_MONOTONIC, UINT64_MAX, IDLE_ACCURACY_USEC,
                              on_idle_timer, i);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(i->idle_timer, SD_EVENT_OFF);
        (void) sd_event_source_set_description(i->idle_timer, "idle-exit");

        r = sd_event_add_defer(m->event, &i->arm_source, on_arm, i);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(i->arm_source, SD_EVENT_OFF);
        (void) sd_event_source_set_priority(i->arm_source, SD_EVENT_PRIORITY_IDLE);
        (void) sd_event_source_set_description(i->arm_source, "idle-arm");

        r = sd_event_add_time(m->event, &i->status_timer, CLOCK_MONOTONIC, UINT64_MAX, 0, on_status_timer, i);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(i->status_timer, SD_EVENT_OFF);
        (void) sd_event_source_set_priority(i->status_timer, SD_EVENT_PRIORITY_IDLE);
        (void) sd_event_source_set_description(i->status_timer, "notify-status");

        *ret = g_steal_pointer(&i);
        return 0;
}

int idle_start(Idle *i) {
        Manager *m = i->manager;
        int r;

        r = sd_bus_add_filter(m->bus, &i->filter, on_bus_message, i);
        if (r < 0)
                return r;
        i->started = true;
        (void) sd_notify(false, "READY=1");
        status_update(i);
        idle_touch(i);
        return 0;
}

Idle *idle_free(Idle *i) {
        if (!i)
                return NULL;
        sd_event_source_disable_unref(i->sigterm);
        sd_event_source_disable_unref(i->sigint);
        sd_event_source_disable_unref(i->idle_timer);
        sd_event_source_disable_unref(i->arm_source);
        sd_event_source_disable_unref(i->status_timer);
        sd_event_source_disable_unref(i->drain_timer);
        sd_bus_slot_unref(i->filter);
        sd_bus_slot_unref(i->name_match);
        sd_bus_slot_unref(i->release);
        g_free(i->status);
        return g_free(i), NULL;
}
