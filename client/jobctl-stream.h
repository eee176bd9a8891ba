/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A job's Follow stream as jobctl reads it: the pipe from Job.Follow, split into lines, each
 * parsed into a FollowEvent (daemon/follow.h has the line format). The reader knows nothing of
 * how events are shown; run and follow each pass a callback.
 *
 * Lines are bounded (EVENT_LINE_MAX): jobd cuts a log line at 64 KiB before escaping it, so a
 * longer line is not from jobd and ends the stream with -EBADMSG rather than eating memory.
 * A line that is not an event is skipped with a warning: one bad line costs one line.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <glib.h>
#include <json-glib/json-glib.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#define EVENT_LINE_MAX (1024u * 1024u)

typedef enum FollowEventKind {
        FOLLOW_EVENT_STATUS,
        FOLLOW_EVENT_LOG,
        FOLLOW_EVENT_PROGRESS,
        FOLLOW_EVENT_END,
        FOLLOW_EVENT_OTHER,             /* a kind this jobctl does not know: shown, not acted on */
        _FOLLOW_EVENT_KIND_MAX,
} FollowEventKind;

/* Strings point into root and are never NULL ("" when absent). */
typedef struct FollowEvent {
        JsonNode *root;
        uint64_t seq;
        uint64_t time_usec;             /* CLOCK_REALTIME, 0 when absent */
        FollowEventKind kind;
        const char *name;               /* "event" as sent */
        const char *status;             /* status, end */
        const char *data;               /* log */
        unsigned percent;               /* progress, at most 100 */
        const char *message;            /* progress */
        int exit_status;                /* end: -1 when there is none */
        const char *error;              /* end */
} FollowEvent;

/* One line, without its newline. FALSE with error when it is not an event object with a
 * positive "seq" and a string "event". */
gboolean follow_event_parse(const char *line, size_t size, FollowEvent *ret, GError **error);
void follow_event_done(FollowEvent *e);

/* Job.Follow(after_seq): the stream's read end, O_NONBLOCK and O_CLOEXEC, the caller's to close. */
int job_follow(sd_bus *bus, uint64_t id, uint64_t after_seq, sd_bus_error *error, int *ret_fd);

typedef struct EventStream EventStream;

/*
 * Called for each event, with the line as read (no newline; for --json). At the end of the
 * file e and line are NULL; the reader is disabled then and the callback may free it. A
 * negative return stops the loop: sd_event_exit() with that value.
 */
typedef int (*EventStreamFn)(EventStream *s, const FollowEvent *e, const char *line, size_t size,
                             void *userdata);

/* Takes fd, also on failure. */
int event_stream_new(EventStream **ret, sd_event *event, int fd, EventStreamFn fn, void *userdata);
EventStream *event_stream_free(EventStream *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(EventStream, event_stream_free)
