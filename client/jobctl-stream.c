/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Reading Follow streams. The reader owns the pipe and a buffer of at most one partial line
 * (EVENT_LINE_MAX); it reads what one wakeup offers, hands out the complete lines and goes back
 * to the loop, so a flood of events never starves the loop's other sources (Ctrl-C, the Cancel
 * reply). Event lines are jobd's, but are still parsed as untrusted text: bounded, typed field
 * by field, nesting checked before json-glib (which recurses per level) sees them.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "jobctl-bus.h"
#include "jobctl-output.h"
#include "jobctl-stream.h"
#include "jobd-names.h"

/* Events are flat objects; this leaves room for a nested field a newer jobd might add. */
#define EVENT_DEPTH_MAX 8

#define READ_CHUNK (64u * 1024u)

GQuark follow_event_error_quark(void);
G_DEFINE_QUARK(jobctl-follow-event-error-quark, follow_event_error)
#define FOLLOW_EVENT_ERROR follow_event_error_quark()

static const char *const event_names[_FOLLOW_EVENT_KIND_MAX] = {
        [FOLLOW_EVENT_STATUS]   = "status",
        [FOLLOW_EVENT_LOG]      = "log",
        [FOLLOW_EVENT_PROGRESS] = "progress",
        [FOLLOW_EVENT_END]      = "end",
};

static FollowEventKind event_kind_from_name(const char *name) {
        for (int k = 0; k < FOLLOW_EVENT_OTHER; k++)
                if (strcmp(event_names[k], name) == 0)
                        return k;
        return FOLLOW_EVENT_OTHER;
}

static bool json_depth_ok(const char *s, size_t size) {
        unsigned depth = 0;
        bool in_string = false;

        for (size_t i = 0; i < size; i++) {
                if (in_string) {
                        if (s[i] == '\\')
                                i++;
                        else if (s[i] == '"')
                                in_string = false;
                } else if (s[i] == '"')
                        in_string = true;
                else if (s[i] == '[' || s[i] == '{') {
                        if (++depth > EVENT_DEPTH_MAX)
                                return false;
                } else if ((s[i] == ']' || s[i] == '}') && depth > 0)
                        depth--;
        }
        return true;
}

static const char *member_string(JsonObject *o, const char *name) {
        JsonNode *n = json_object_get_member(o, name);

        if (n && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING)
                return json_node_get_string(n);
        return "";
}

static bool member_int(JsonObject *o, const char *name, gint64 *ret) {
        JsonNode *n = json_object_get_member(o, name);

        if (!n || !JSON_NODE_HOLDS_VALUE(n) || json_node_get_value_type(n) != G_TYPE_INT64)
                return false;
        *ret = json_node_get_int(n);
        return true;
}

gboolean follow_event_parse(const char *line, size_t size, FollowEvent *ret, GError **error) {
        g_autoptr(JsonParser) parser = json_parser_new_immutable();
        JsonObject *o;
        JsonNode *root;
        gint64 v;

        if (size > EVENT_LINE_MAX || size > G_MAXSSIZE)
                return g_set_error(error, FOLLOW_EVENT_ERROR, 0, "line of %zu bytes is too long", size),
                       FALSE;
        if (!json_depth_ok(line, size))
                return g_set_error(error, FOLLOW_EVENT_ERROR, 0, "nested deeper than %u levels",
                                   EVENT_DEPTH_MAX), FALSE;
        if (!json_parser_load_from_data(parser, line, (gssize) size, error))
                return FALSE;

        root = json_parser_get_root(parser);
        if (!root || !JSON_NODE_HOLDS_OBJECT(root))
                return g_set_error(error, FOLLOW_EVENT_ERROR, 0, "not a JSON object"), FALSE;
        o = json_node_get_object(root);

        if (!member_int(o, "seq", &v) || v <= 0)
                return g_set_error(error, FOLLOW_EVENT_ERROR, 0, "no positive \"seq\""), FALSE;
        *ret = (FollowEvent) {
                .root = json_node_ref(root),
                .seq = (uint64_t) v,
                .name = member_string(o, "event"),
                .status = member_string(o, "status"),
                .data = member_string(o, "data"),
                .message = member_string(o, "message"),
                .error = member_string(o, "error"),
                .exit_status = -1,
        };
        if (!ret->name[0]) {
                follow_event_done(ret);
                return g_set_error(error, FOLLOW_EVENT_ERROR, 0, "no \"event\""), FALSE;
        }

        ret->kind = event_kind_from_name(ret->name);
        if (member_int(o, "time", &v) && v > 0)
                ret->time_usec = (uint64_t) v;
        if (member_int(o, "percent", &v))
                ret->percent = (unsigned) CLAMP(v, 0, 100);
        if (member_int(o, "exit_status", &v) && v >= 0 && v <= INT_MAX)
                ret->exit_status = (int) v;
        return TRUE;
}

void follow_event_done(FollowEvent *e) {
        g_clear_pointer(&e->root, json_node_unref);
}

int job_follow(sd_bus *bus, uint64_t id, uint64_t after_seq, sd_bus_error *error, int *ret_fd) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        g_autofree char *path = job_object_path(id);
        int r, fd, flags;

        r = sd_bus_call_method(bus, JOBD_BUS_NAME, path, JOBD_JOB_INTERFACE, "Follow", error, &reply,
                               "t", after_seq);
        if (r < 0)
                return r;
        r = sd_bus_message_read(reply, "h", &fd);
        if (r < 0)
                return r;

        /* the reply owns fd; ours is a copy above stdio */
        fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return -errno;
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
                r = -errno;
                (void) close(fd);
                return r;
        }

        *ret_fd = fd;
        return 0;
}

struct EventStream {
        int fd;
        sd_event_source *source;
        GString *buf;                   /* at most one partial line between wakeups */
        EventStreamFn fn;
        void *userdata;
};

static int event_stream_dispatch_line(EventStream *s, const char *line, size_t size) {
        g_autoptr(GError) error = NULL;
        FollowEvent e;
        int r;

        if (!follow_event_parse(line, size, &e, &error)) {
                log_warning("Ignoring an event line that jobd should not have sent: %s", error->message);
                return 0;
        }
        r = s->fn(s, &e, line, size, s->userdata);
        follow_event_done(&e);
        return r;
}

static int event_stream_dispatch(EventStream *s) {
        size_t start = 0;
        int r = 0;

        for (;;) {
                char *nl = memchr(s->buf->str + start, '\n', s->buf->len - start);

                if (!nl)
                        break;
                r = event_stream_dispatch_line(s, s->buf->str + start, nl - (s->buf->str + start));
                start = nl - s->buf->str + 1;
                if (r < 0)
                        break;
        }
        g_string_erase(s->buf, 0, start);
        if (r < 0)
                return r;

        if (s->buf->len > EVENT_LINE_MAX)
                return log_error_errno(EBADMSG, "Failed to read events: a line is longer than %u MiB, "
                                       "which jobd never sends.", EVENT_LINE_MAX / 1024 / 1024);
        return 0;
}

static int on_stream_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        EventStream *s = userdata;
        sd_event *event = sd_event_source_get_event(source);
        char chunk[READ_CHUNK];
        ssize_t n;
        int r;

        n = read(fd, chunk, sizeof(chunk));
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return 0;
                r = log_error_errno(errno, "Failed to read events: %m");
                (void) sd_event_source_set_enabled(source, SD_EVENT_OFF);
                return sd_event_exit(event, r);
        }

        if (n == 0) {
                /* a partial last line is a stream cut mid-write: the event never was */
                (void) sd_event_source_set_enabled(source, SD_EVENT_OFF);
                r = s->fn(s, NULL, NULL, 0, s->userdata);       /* may free s */
                return r < 0 ? sd_event_exit(event, r) : 0;
        }

        g_string_append_len(s->buf, chunk, n);
        r = event_stream_dispatch(s);
        if (r < 0) {
                (void) sd_event_source_set_enabled(source, SD_EVENT_OFF);
                return sd_event_exit(event, r);
        }
        return 0;
}

int event_stream_new(EventStream **ret, sd_event *event, int fd, EventStreamFn fn, void *userdata) {
        g_autoptr(EventStream) s = g_new0(EventStream, 1);
        int r;

        s->fd = fd;
        s->buf = g_string_new(NULL);
        s->fn = fn;
        s->userdata = userdata;

        r = sd_event_add_io(event, &s->source, fd, EPOLLIN, on_stream_io, s);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(s->source, "follow-stream");

        *ret = g_steal_pointer(&s);
        return 0;
}

EventStream *event_stream_free(EventStream *s) {
        if (!s)
                return NULL;
        sd_event_source_disable_unref(s->source);
        if (s->fd >= 0)
                (void) close(s->fd);
        if (s->buf)
                g_string_free(s->buf, TRUE);
        g_free(s);
        return NULL;
}
