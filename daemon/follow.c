/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Owns one job's event stream: the history file events.jsonl in the job's spool folder (one fd,
 * O_APPEND for writing, pread for reading), the sequence counter, and the followers: the write
 * end of each one's pipe, its io source and the bytes that pipe has not taken yet.
 *
 * Invariants:
 *  - The first history_size bytes of the file are whole event lines with strictly increasing
 *    seq. A line counts only once write() took all of it; a short write is truncated away, and
 *    if even that fails nothing more is appended (readers never look past history_size).
 *  - An event goes to the file before it goes to any live follower. A follower catching up reads
 *    the file from its offset and turns live exactly when that offset reaches history_size, so
 *    it gets every event once and in order, however many arrive while it catches up. An event
 *    whose history write failed still reaches live followers; those catching up see a gap in
 *    seq, never a duplicate.
 *  - A follower's queued bytes never exceed FOLLOW_BUFFER_MAX: catch-up reads the next chunk
 *    only once the pipe took the last one, and a live event that would pass the bound cuts the
 *    follower off (EOF without the end event; the pipe may end inside a line).
 *  - A follower's io source asks for EPOLLOUT only while it has queued bytes or history left;
 *    otherwise it asks for nothing, and epoll still reports EPOLLERR when the reader goes away.
 *  - After the end event nothing is appended, and a follower that has everything gets EOF.
 *  - Live followers get events in batches: an event that reached the file is appended to the
 *    outbox (the file's bytes from outbox_offset on), which goes to every live follower at once
 *    from a defer source, when it reaches OUTBOX_FLUSH bytes, or with the end event — one write
 *    per follower per batch instead of one per event, which is what keeps a hundred followers of a
 *    chatty job cheap. A live follower's offset says how much of the file it has: a follower that
 *    turned live after the outbox began gets only the part it has not read from the file.
 *
 * A write to a pipe whose reader left raises SIGPIPE: the process must ignore it (jobd does, as
 * does systemd's IgnoreSIGPIPE=yes); the EPIPE then drops the follower quietly.
 */

#define _GNU_SOURCE 1           /* pipe2(), memrchr() */

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "follow.h"
#include "log.h"

/* History is read for a catching-up follower in chunks of this size, one chunk queued at a
 * time: the size of a default pipe, so one write usually takes it all. */
#define HISTORY_CHUNK (64u * 1024u)
/* Bytes one follower may move per dispatch, so a fast reader of a long history does not keep
 * the loop from everything else. */
#define PUMP_BUDGET (4u * HISTORY_CHUNK)
/* Newline searches in the history file read this much at a time. */
#define SCAN_CHUNK 4096u
/* {"seq":N,"time":N,"event":"progress" with 20-digit numbers is 74 bytes */
#define PREFIX_MAX 96u
/* The scratch line is released after an event this big, not kept for the stream's life. */
#define LINE_KEEP_MAX (16u * 1024u)
/* Live followers get the outbox when it is this big, or at the end of the loop's turn. */
#define OUTBOX_FLUSH (64u * 1024u)

G_STATIC_ASSERT(HISTORY_CHUNK <= FOLLOW_BUFFER_MAX);
/* The biggest event (an end with status and error each at FOLLOW_LINE_MAX, every byte escaped
 * to six) fits in one follower's buffer: only a slow reader is ever cut off, never a big event. */
G_STATIC_ASSERT(2u * 6u * FOLLOW_LINE_MAX + 256u <= FOLLOW_BUFFER_MAX);

typedef enum EventKind {
        EVENT_STATUS,
        EVENT_LOG,
        EVENT_PROGRESS,
        EVENT_END,
        _EVENT_KIND_MAX,
        _EVENT_KIND_INVALID = -EINVAL,
} EventKind;

static const char *const event_kind_table[_EVENT_KIND_MAX] = {
        [EVENT_STATUS] = "status",
        [EVENT_LOG] = "log",
        [EVENT_PROGRESS] = "progress",
        [EVENT_END] = "end",
};

static EventKind event_kind_from_string(const char *s, size_t n) {
        for (EventKind k = 0; k < _EVENT_KIND_MAX; k++)
                if (strlen(event_kind_table[k]) == n && memcmp(event_kind_table[k], s, n) == 0)
                        return k;
        return _EVENT_KIND_INVALID;
}

typedef struct Event {
        EventKind kind;
        uint64_t seq;
        uint64_t time_usec;
        const char *text;               /* log data or progress message; not NUL-terminated */
        size_t text_size;
        unsigned percent;
        const char *status;
        int exit_status;
        const char *error;
} Event;

/* ---- Encoding ---------------------------------------------------------------------------- */

/* The encoder walks an event twice with the same code: once counting (out == NULL), once
 * writing into exactly that much room, so an event costs at most one allocation. */
typedef struct Emit {
        char *out;
        size_t n;
} Emit;

static void emit(Emit *e, const void *p, size_t n) {
        if (e->out)
                memcpy(e->out + e->n, p, n);
        e->n += n;
}

static void emit_str(Emit *e, const char *s) {
        emit(e, s, strlen(s));
}

static void emit_u64(Emit *e, uint64_t v) {
        char buf[20];
        size_t i = sizeof(buf);

        do
                buf[--i] = (char) ('0' + v % 10);
        while ((v /= 10) > 0);
        emit(e, buf + i, sizeof(buf) - i);
}

static void emit_int(Emit *e, int v) {
        if (v < 0) {
                emit(e, "-", 1);
                emit_u64(e, (uint64_t) -(int64_t) v);
        } else
                emit_u64(e, (uint64_t) v);
}

/* Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF), or 0 if there is none. */
static size_t utf8_valid_length(const uint8_t *p, size_t n) {
        uint8_t lo = 0x80, hi = 0xbf;
        size_t len;

        if (p[0] < 0x80)
                return 1;
        if (p[0] < 0xc2)
                return 0;
        if (p[0] < 0xe0)
                len = 2;
        else if (p[0] < 0xf0) {
                len = 3;
                if (p[0] == 0xe0)
                        lo = 0xa0;
                else if (p[0] == 0xed)
                        hi = 0x9f;
        } else if (p[0] < 0xf5) {
                len = 4;
                if (p[0] == 0xf0)
                        lo = 0x90;
                else if (p[0] == 0xf4)
                        hi = 0x8f;
        } else
                return 0;

        if (n < len || p[1] < lo || p[1] > hi)
                return 0;
        for (size_t i = 2; i < len; i++)
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
        return len;
}

/* Strings longer than FOLLOW_LINE_MAX are cut, and never inside a valid character: a cut that
 * made one invalid would turn the last character into U+FFFD. */
static size_t text_cut(const char *s, size_t n) {
        const uint8_t *p = (const uint8_t *) s;
        size_t k;

        if (n <= FOLLOW_LINE_MAX)
                return n;
        k = FOLLOW_LINE_MAX;
        while (k > FOLLOW_LINE_MAX - 3 && (p[k] & 0xc0) == 0x80)
                k--;
        if (k + utf8_valid_length(p + k, n - k) > FOLLOW_LINE_MAX)
                return k;
        return FOLLOW_LINE_MAX;
}

static bool json_plain(uint8_t c) {
        return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
}

static void emit_escape(Emit *e, uint8_t c) {
        static const char hex[] = "0123456789abcdef";
        char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };

        switch (c) {
        case '"':
                emit(e, "\\\"", 2);
                break;
        case '\\':
                emit(e, "\\\\", 2);
                break;
        case '\n':
                emit(e, "\\n", 2);
                break;
        case '\r':
                emit(e, "\\r", 2);
                break;
        case '\t':
                emit(e, "\\t", 2);
                break;
        default:
                /* the rest of C0 and DEL: never raw, a terminal would act on them */
                emit(e, u, sizeof(u));
        }
}

static void emit_json_string(Emit *e, const char *s, size_t n) {
        const uint8_t *p, *end;

        if (!s) {
                s = "";
                n = 0;
        }
        p = (const uint8_t *) s;
        end = p + text_cut(s, n);

        emit(e, "\"", 1);
        while (p < end) {
                const uint8_t *run = p;
                size_t len;

                while (p < end && json_plain(*p))
                        p++;
                emit(e, run, (size_t) (p - run));
                if (p >= end)
                        break;

                if (*p < 0x80) {
                        emit_escape(e, *p++);
                        continue;
                }
                len = utf8_valid_length(p, (size_t) (end - p));
                if (len == 0) {
                        emit(e, "\xef\xbf\xbd", 3);     /* U+FFFD, one per invalid byte */
                        p++;
                } else {
                        emit(e, p, len);
                        p += len;
                }
        }
        emit(e, "\"", 1);
}

static void emit_json_cstring(Emit *e, const char *s) {
        emit_json_string(e, s, s ? strlen(s) : 0);
}

static void emit_event(Emit *e, const Event *ev) {
        emit_str(e, "{\"seq\":");
        emit_u64(e, ev->seq);
        emit_str(e, ",\"time\":");
        emit_u64(e, ev->time_usec);
        emit_str(e, ",\"event\":\"");
        emit_str(e, event_kind_table[ev->kind]);
        emit_str(e, "\"");

        switch (ev->kind) {
        case EVENT_STATUS:
                emit_str(e, ",\"status\":");
                emit_json_cstring(e, ev->status);
                break;
        case EVENT_LOG:
                emit_str(e, ",\"data\":");
                emit_json_string(e, ev->text, ev->text_size);
                break;
        case EVENT_PROGRESS:
                emit_str(e, ",\"percent\":");
                emit_u64(e, ev->percent);
                emit_str(e, ",\"message\":");
                emit_json_string(e, ev->text, ev->text_size);
                break;
        case EVENT_END:
                emit_str(e, ",\"status\":");
                emit_json_cstring(e, ev->status);
                emit_str(e, ",\"exit_status\":");
                emit_int(e, ev->exit_status);
                emit_str(e, ",\"error\":");
                emit_json_cstring(e, ev->error);
                break;
        default:
                assert(false);
        }
        emit_str(e, "}\n");
}

static void event_encode(GString *out, const Event *ev) {
        Emit count = {}, write;
        size_t start = out->len;

        emit_event(&count, ev);
        g_string_set_size(out, start + count.n);
        write = (Emit) { .out = out->str + start };
        emit_event(&write, ev);
        assert(write.n == count.n);
}

void follow_encode(GString *out, uint64_t seq, uint64_t time_usec, const char *kind, const char *text,
                   size_t text_size, unsigned percent, const char *status, int exit_status,
                   const char *error) {
        Event ev = {
                .kind = event_kind_from_string(kind, strlen(kind)),
                .seq = seq,
                .time_usec = time_usec,
                .text = text,
                .text_size = text ? text_size : 0,
                .percent = percent,
                .status = status,
                .exit_status = exit_status,
                .error = error,
        };

        assert(ev.kind >= 0);
        event_encode(out, &ev);
}

/* ---- Reading the history ----------------------------------------------------------------- */

static int pread_full(int fd, void *buf, size_t size, uint64_t offset, size_t *ret) {
        size_t done = 0;

        while (done < size) {
                ssize_t n = pread(fd, (char *) buf + done, size - done, (off_t) (offset + done));

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;
                done += (size_t) n;
        }
        *ret = done;
        return 0;
}

static bool parse_u64(const char **p, const char *end, uint64_t *ret) {
        uint64_t v = 0;
        const char *q = *p;

        if (q >= end || *q < '0' || *q > '9')
                return false;
        for (; q < end && *q >= '0' && *q <= '9'; q++) {
                if (v > (UINT64_MAX - (uint64_t) (*q - '0')) / 10)
                        return false;
                v = v * 10 + (uint64_t) (*q - '0');
        }
        *p = q;
        *ret = v;
        return true;
}

static bool skip_literal(const char **p, const char *end, const char *lit) {
        size_t n = strlen(lit);

        if ((size_t) (end - *p) < n || memcmp(*p, lit, n) != 0)
                return false;
        *p += n;
        return true;
}

/* Reads the fixed start of a line we wrote: {"seq":N,"time":N,"event":"KIND". Only the start:
 * recovery and the search for after_seq need nothing else, and we wrote the rest ourselves. */
static int parse_prefix(const char *s, size_t n, uint64_t *ret_seq, EventKind *ret_kind) {
        const char *p = s, *end = s + n, *q;
        uint64_t seq, time_usec;
        EventKind kind;

        if (!skip_literal(&p, end, "{\"seq\":") || !parse_u64(&p, end, &seq) || seq == 0 ||
            !skip_literal(&p, end, ",\"time\":") || !parse_u64(&p, end, &time_usec) ||
            !skip_literal(&p, end, ",\"event\":\""))
                return -EBADMSG;
        q = memchr(p, '"', (size_t) (end - p));
        if (!q)
                return -EBADMSG;
        kind = event_kind_from_string(p, (size_t) (q - p));
        if (kind < 0)
                return -EBADMSG;

        *ret_seq = seq;
        if (ret_kind)
                *ret_kind = kind;
        return 0;
}

static int read_prefix(int fd, uint64_t start, uint64_t end, uint64_t *ret_seq, EventKind *ret_kind) {
        char buf[PREFIX_MAX];
        size_t n = 0;
        int r;

        r = pread_full(fd, buf, MIN((uint64_t) sizeof(buf), end - start), start, &n);
        if (r < 0)
                return r;
        return parse_prefix(buf, n, ret_seq, ret_kind);
}

/* Offset of the first '\n' in [lo, hi), or hi. */
static int find_newline(int fd, uint64_t lo, uint64_t hi, uint64_t *ret) {
        char buf[SCAN_CHUNK];

        while (lo < hi) {
                const char *nl;
                size_t n = 0;
                int r;

                r = pread_full(fd, buf, MIN((uint64_t) sizeof(buf), hi - lo), lo, &n);
                if (r < 0)
                        return r;
                if (n == 0)
                        break;
                nl = memchr(buf, '\n', n);
                if (nl) {
                        *ret = lo + (uint64_t) (nl - buf);
                        return 0;
                }
                lo += n;
        }
        *ret = hi;
        return 0;
}

/* Offset of the last '\n' in [0, hi), or UINT64_MAX. */
static int rfind_newline(int fd, uint64_t hi, uint64_t *ret) {
        char buf[SCAN_CHUNK];

        while (hi > 0) {
                size_t want = (size_t) MIN((uint64_t) sizeof(buf), hi), n = 0;
                const char *nl;
                int r;

                r = pread_full(fd, buf, want, hi - want, &n);
                if (r < 0)
                        return r;
                if (n != want)
                        return -EIO;            /* the file shrank under us */
                nl = memrchr(buf, '\n', n);
                if (nl) {
                        *ret = hi - want + (uint64_t) (nl - buf);
                        return 0;
                }
                hi -= want;
        }
        *ret = UINT64_MAX;
        return 0;
}

/* Walks back from the end to the last line that is complete ('\n') and starts like ours; what
 * lies after it is a torn write (a crash, a full disk) and is cut off by the caller. Reads only
 * the tail, so a restart costs the same for any history length. */
static int history_recover(int fd, uint64_t size, uint64_t *ret_size, uint64_t *ret_seq, bool *ret_ended) {
        uint64_t end = size;

        while (end > 0) {
                uint64_t nl, start, seq;
                EventKind kind;
                int r;

                r = rfind_newline(fd, end, &nl);
                if (r < 0)
                        return r;
                if (nl == UINT64_MAX)
                        break;
                end = nl + 1;

                r = rfind_newline(fd, nl, &start);
                if (r < 0)
                        return r;
                start = start == UINT64_MAX ? 0 : start + 1;

                r = read_prefix(fd, start, end, &seq, &kind);
                if (r >= 0) {
                        *ret_size = end;
                        *ret_seq = seq;
                        *ret_ended = kind == EVENT_END;
                        return 0;
                }
                end = start;
        }

        *ret_size = 0;
        *ret_seq = 0;
        *ret_ended = false;
        return 0;
}

/* ---- The stream -------------------------------------------------------------------------- */

typedef struct Follower {
        FollowStream *stream;           /* borrowed; NULL until linked */
        GList link;                     /* in stream->followers */
        int fd;                         /* write end of the pipe, O_NONBLOCK */
        sd_event_source *io;
        GByteArray *buf;                /* bytes the pipe has not taken, from buf_head on */
        size_t buf_head;
        uint64_t offset;                /* while catching up: the next history byte to send */
        bool live;
        FollowGoneFn gone;              /* called once, when freed after it was linked */
        void *gone_userdata;
} Follower;

struct FollowStream {
        sd_event *event;
        int dir_fd;
        int fd;                         /* the history; -1 until it exists */
        uint64_t job_id;
        uint64_t last_seq;
        uint64_t history_size;
        bool end_emitted;               /* the end event was made: nothing more is accepted */
        bool ended;                     /* … and live followers were sent it (or will be, queued) */
        bool history_broken;            /* a torn write could not be cut off: append no more */
        bool history_warned;            /* warn once per stream, not once per log line */
        GQueue followers;
        GString *line;                  /* scratch for the event being sent */
        GString *outbox;                /* events in the file that live followers have not been sent */
        uint64_t outbox_offset;         /* where in the file the outbox begins */
        sd_event_source *flush_source;
        void (*unfollowed)(void *userdata);
        void *unfollowed_userdata;
};

static Follower *follower_free(Follower *f) {
        FollowStream *s;

        if (!f)
                return NULL;

        s = f->stream;
        if (s)
                g_queue_unlink(&s->followers, &f->link);
        sd_event_source_disable_unref(f->io);
        if (f->fd >= 0)
                (void) close(f->fd);
        if (f->buf)
                g_byte_array_unref(f->buf);
        if (f->stream && f->gone)
                f->gone(f->gone_userdata);
        g_free(f);
        if (s && g_queue_is_empty(&s->followers) && s->unfollowed)
                s->unfollowed(s->unfollowed_userdata);
        return NULL;
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Follower, follower_free)

static size_t follower_queued(const Follower *f) {
        return f->buf->len - f->buf_head;
}

static void follower_drop(Follower *f, int error) {
        /* the reader went away: that is how a follower normally leaves */
        if (error == -EPIPE || error == -EBADF)
                log_debug("Follower of job %" G_GUINT64_FORMAT " went away.", f->stream->job_id);
        else
                log_internal(LOG_WARNING, error, f->stream->job_id, NULL, NULL,
                             "Failed to send events to a follower, closing its stream: %m");
        follower_free(f);
}

static void follower_reset_buf(Follower *f) {
        /* a drained buffer that held a chunk of history or a backlog is not kept for later */
        if (f->buf->len > SCAN_CHUNK) {
                g_byte_array_unref(f->buf);
                f->buf = g_byte_array_new();
        } else
                g_byte_array_set_size(f->buf, 0);
        f->buf_head = 0;
}

static int follower_read_history(Follower *f) {
        FollowStream *s = f->stream;
        uint64_t want;
        size_t n = 0;
        int r;

        want = MIN((uint64_t) HISTORY_CHUNK, s->history_size - f->offset);
        if (want == 0) {
                f->live = true;
                return 0;
        }

        g_byte_array_set_size(f->buf, (guint) want);
        r = pread_full(s->fd, f->buf->data, (size_t) want, f->offset, &n);
        if (r < 0)
                return r;
        if (n == 0)
                return -EIO;                    /* someone truncated the history under us */
        g_byte_array_set_size(f->buf, (guint) n);
        f->buf_head = 0;
        f->offset += n;
        return 0;
}

/* Moves bytes into the pipe until it is full, the budget is spent or nothing is left; then asks
 * for EPOLLOUT or nothing, or ends the follower (EOF) once the stream ended and it has all. */
static void follower_pump(Follower *f) {
        FollowStream *s = f->stream;
        size_t budget = PUMP_BUDGET;
        bool more = true;
        int r;

        while (budget > 0) {
                if (follower_queued(f) > 0) {
                        ssize_t n = write(f->fd, f->buf->data + f->buf_head, follower_queued(f));

                        if (n < 0) {
                                if (errno == EINTR)
                                        continue;
                                if (errno == EAGAIN)
                                        break;
                                follower_drop(f, -errno);
                                return;
                        }
                        f->buf_head += (size_t) n;
                        budget -= MIN(budget, (size_t) n);
                        if (follower_queued(f) > 0)
                                break;          /* the pipe is full */
                        follower_reset_buf(f);
                        continue;
                }

                if (!f->live) {
                        r = follower_read_history(f);
                        if (r < 0) {
                                follower_drop(f, r);
                                return;
                        }
                        continue;
                }

                if (s->ended) {
                        follower_free(f);
                        return;
                }
                more = false;
                break;
        }

        r = sd_event_source_set_io_events(f->io, more ? EPOLLOUT : 0);
        if (r < 0)
                follower_drop(f, r);
}

static int on_follower_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        Follower *f = userdata;

        /* EPOLLERR on a pipe's write end: the reader closed it */
        if (revents & (EPOLLERR|EPOLLHUP))
                follower_drop(f, -EPIPE);
        else
                follower_pump(f);
        return 0;
}

static void follower_send(Follower *f, const char *p, size_t n) {
        FollowStream *s = f->stream;
        int r;

        if (follower_queued(f) == 0) {
                /* the usual case: the pipe has room, nothing is copied */
                ssize_t k;

                do
                        k = write(f->fd, p, n);
                while (k < 0 && errno == EINTR);
                if (k < 0 && errno != EAGAIN) {
                        follower_drop(f, -errno);
                        return;
                }
                if (k > 0) {
                        p += k;
                        n -= (size_t) k;
                }
                if (n == 0) {
                        if (s->ended)
                                follower_free(f);
                        return;
                }
        }

        if (follower_queued(f) + n > FOLLOW_BUFFER_MAX) {
                log_internal(LOG_NOTICE, 0, s->job_id, NULL, NULL,
                             "A follower fell %zu bytes behind (limit %u), closing its stream; "
                             "it may follow again from the last seq it read.",
                             follower_queued(f) + n, FOLLOW_BUFFER_MAX);
                follower_free(f);
                return;
        }
        g_byte_array_append(f->buf, (const guint8 *) p, (guint) n);

        r = sd_event_source_set_io_events(f->io, EPOLLOUT);
        if (r < 0)
                follower_drop(f, r);
}

static int history_open(FollowStream *s) {
        _cleanup_(closep) int fd = -1;
        uint64_t size, seq;
        struct stat st;
        bool ended;
        int r;

        fd = openat(s->dir_fd, FOLLOW_HISTORY_NAME, O_RDWR|O_APPEND|O_CLOEXEC|O_NOFOLLOW|O_NOCTTY);
        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;

        r = history_recover(fd, (uint64_t) st.st_size, &size, &seq, &ended);
        if (r < 0)
                return r;
        if (size < (uint64_t) st.st_size) {
                log_internal(LOG_NOTICE, 0, s->job_id, NULL, NULL,
                             "Event history ends in %" G_GUINT64_FORMAT " bytes of a torn write, "
                             "cutting them off.", (uint64_t) st.st_size - size);
                if (ftruncate(fd, (off_t) size) < 0)
                        return -errno;
        }

        s->fd = take_fd(&fd);
        s->history_size = size;
        s->last_seq = seq;
        s->end_emitted = s->ended = ended;
        return 0;
}

int follow_stream_new(FollowStream **ret, sd_event *event, int dir_fd, uint64_t job_id) {
        g_autoptr(FollowStream) s = NULL;
        int r;

        assert(ret);
        assert(dir_fd >= 0);

        s = g_new0(FollowStream, 1);
        s->dir_fd = s->fd = -1;
        s->job_id = job_id;
        g_queue_init(&s->followers);
        s->line = g_string_sized_new(256);
        s->outbox = g_string_new(NULL);

        if (event)
                s->event = sd_event_ref(event);
        else {
                r = sd_event_default(&s->event);
                if (r < 0)
                        return r;
        }

        s->dir_fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3);
        if (s->dir_fd < 0)
                return -errno;

        r = history_open(s);
        if (r < 0)
                return r;

        *ret = g_steal_pointer(&s);
        return 0;
}

static void stream_flush(FollowStream *s);

FollowStream *follow_stream_free(FollowStream *s) {
        GList *l;

        if (!s)
                return NULL;

        stream_flush(s);
        sd_event_source_disable_unref(s->flush_source);
        s->unfollowed = NULL;   /* a stream going away is its owner's doing, not news to it */
        while ((l = s->followers.head))
                follower_free(l->data);
        if (s->fd >= 0)
                (void) close(s->fd);
        if (s->dir_fd >= 0)
                (void) close(s->dir_fd);
        g_string_free(s->line, TRUE);
        g_string_free(s->outbox, TRUE);
        sd_event_unref(s->event);
        g_free(s);
        return NULL;
}

static int history_write(FollowStream *s, const char *p, size_t n) {
        ssize_t k;

        if (s->history_broken)
                return -EIO;
        if (s->fd < 0) {
                /* O_EXCL: our offsets assume the file holds only what we wrote */
                s->fd = openat(s->dir_fd, FOLLOW_HISTORY_NAME,
                               O_RDWR|O_APPEND|O_CREAT|O_EXCL|O_CLOEXEC|O_NOFOLLOW|O_NOCTTY, 0600);
                if (s->fd < 0)
                        return -errno;
        }

        do
                k = write(s->fd, p, n);
        while (k < 0 && errno == EINTR);
        if (k >= 0 && (size_t) k == n) {
                s->history_size += n;
                return 0;
        }

        /* a torn line in the middle would end every later reader's view of the history */
        if (k > 0 && ftruncate(s->fd, (off_t) s->history_size) < 0)
                s->history_broken = true;
        return k < 0 ? -errno : -ENOSPC;
}

static uint64_t stream_now(FollowStream *s) {
        struct timespec ts;
        uint64_t usec;

        if (sd_event_now(s->event, CLOCK_REALTIME, &usec) >= 0)
                return usec;
        (void) clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

/* Sends the outbox to every live follower: from where each one's view of the file ends. ended:
 * whether a follower that has everything is done (gets EOF). */
static void stream_flush_full(FollowStream *s, bool ended) {
        GList *l, *next;

        s->ended = ended;
        for (l = s->followers.head; l; l = next) {
                Follower *f = l->data;
                uint64_t skip;

                next = l->next;
                if (!f->live)
                        continue;       /* catching up: it reads these from the file */
                skip = f->offset > s->outbox_offset ? MIN(f->offset - s->outbox_offset, (uint64_t) s->outbox->len) : 0;
                f->offset = s->outbox_offset + s->outbox->len;
                if (skip < s->outbox->len)
                        follower_send(f, s->outbox->str + skip, s->outbox->len - (size_t) skip);
                else if (s->ended && follower_queued(f) == 0)
                        follower_free(f);       /* it read everything from the file: EOF */
        }

        if (s->outbox->allocated_len > 4 * OUTBOX_FLUSH) {
                g_string_free(s->outbox, TRUE);
                s->outbox = g_string_new(NULL);
        } else
                g_string_truncate(s->outbox, 0);
        if (s->flush_source)
                (void) sd_event_source_set_enabled(s->flush_source, SD_EVENT_OFF);
}

static void stream_flush(FollowStream *s) {
        stream_flush_full(s, s->end_emitted);
}

static int on_flush(sd_event_source *source, void *userdata) {
        stream_flush(userdata);
        return 0;
}

static void stream_queue(FollowStream *s, const char *p, size_t n) {
        int r;

        if (s->outbox->len == 0)
                s->outbox_offset = s->history_size - n;
        g_string_append_len(s->outbox, p, (gssize) n);
        if (s->end_emitted || s->outbox->len >= OUTBOX_FLUSH || !s->event) {
                stream_flush(s);
                return;
        }

        if (!s->flush_source) {
                r = sd_event_add_defer(s->event, &s->flush_source, on_flush, s);
                /* after the reads of the same turn of the loop: bigger batches */
                if (r >= 0)
                        r = sd_event_source_set_priority(s->flush_source, SD_EVENT_PRIORITY_NORMAL + 1);
                if (r >= 0)
                        (void) sd_event_source_set_description(s->flush_source, "follow-flush");
        } else
                r = sd_event_source_set_enabled(s->flush_source, SD_EVENT_ONESHOT);
        if (r < 0)
                stream_flush(s);        /* no batching then, but nothing is lost */
}

static int64_t stream_emit(FollowStream *s, Event *ev) {
        GList *l, *next;
        int r;

        if (s->end_emitted)
                return -ESTALE;

        ev->seq = s->last_seq + 1;
        ev->time_usec = stream_now(s);
        g_string_truncate(s->line, 0);
        event_encode(s->line, ev);

        s->last_seq = ev->seq;
        s->end_emitted = ev->kind == EVENT_END;

        r = history_write(s, s->line->str, s->line->len);
        if (r >= 0)
                stream_queue(s, s->line->str, s->line->len);
        else {
                if (!s->history_warned) {
                        log_internal(LOG_WARNING, r, s->job_id, NULL, NULL,
                                     "Failed to append to the event history (%s); followers that come later "
                                     "miss events, ignoring: %m", FOLLOW_HISTORY_NAME);
                        s->history_warned = true;
                }
                /* not in the file: straight to the live followers, after what is queued */
                stream_flush_full(s, false);
                s->ended = s->end_emitted;
                for (l = s->followers.head; l; l = next) {
                        Follower *f = l->data;

                        next = l->next;
                        if (f->live)
                                follower_send(f, s->line->str, s->line->len);
                }
        }

        if (s->line->allocated_len > LINE_KEEP_MAX) {
                g_string_free(s->line, TRUE);
                s->line = g_string_sized_new(256);
        }
        return (int64_t) ev->seq;
}

int64_t follow_stream_status(FollowStream *s, const char *status) {
        Event ev = { .kind = EVENT_STATUS, .status = status };

        assert(s);
        return stream_emit(s, &ev);
}

int64_t follow_stream_log(FollowStream *s, const char *data, size_t size) {
        Event ev = { .kind = EVENT_LOG, .text = data, .text_size = data ? size : 0 };

        assert(s);
        return stream_emit(s, &ev);
}

int64_t follow_stream_progress(FollowStream *s, unsigned percent, const char *message) {
        Event ev = {
                .kind = EVENT_PROGRESS,
                .percent = percent,
                .text = message,
                .text_size = message ? strlen(message) : 0,
        };

        assert(s);
        return stream_emit(s, &ev);
}

int64_t follow_stream_end(FollowStream *s, const char *status, int exit_status, const char *error) {
        Event ev = { .kind = EVENT_END, .status = status, .exit_status = exit_status, .error = error };

        assert(s);
        return stream_emit(s, &ev);
}

/* Offset of the first line with a seq above after_seq, or history_size. Lines are sorted by
 * seq, so this bisects the byte range: each probe finds the next line start and reads its seq,
 * O(log size) small reads instead of a scan of the whole history. */
static int history_find(FollowStream *s, uint64_t after_seq, uint64_t *ret) {
        uint64_t lo = 0, hi = s->history_size;

        if (after_seq == 0 || hi == 0) {
                *ret = 0;
                return 0;
        }
        if (after_seq >= s->last_seq) {
                *ret = hi;
                return 0;
        }

        /* invariant: the answer is the first line starting in [lo, hi], or hi itself */
        while (lo < hi) {
                uint64_t mid = lo + (hi - lo) / 2, start, seq;
                int r;

                if (mid == 0)
                        start = 0;
                else {
                        r = find_newline(s->fd, mid - 1, hi, &start);
                        if (r < 0)
                                return r;
                        start++;
                }
                if (start >= hi) {
                        hi = mid;
                        continue;
                }

                r = read_prefix(s->fd, start, s->history_size, &seq, NULL);
                if (r < 0)
                        return r;
                if (seq > after_seq)
                        hi = mid;
                else
                        lo = start + 1;
        }

        /* the answer is the first line starting at or after lo */
        if (lo > 0) {
                int r = find_newline(s->fd, lo - 1, s->history_size, &lo);
                if (r < 0)
                        return r;
                lo = MIN(lo + 1, s->history_size);
        }
        *ret = lo;
        return 0;
}

int follow_stream_add_follower(FollowStream *s, uint64_t after_seq, unsigned max_followers, int *ret_fd) {
        return follow_stream_add_follower_full(s, after_seq, max_followers, NULL, NULL, ret_fd);
}

int follow_stream_add_follower_full(FollowStream *s, uint64_t after_seq, unsigned max_followers,
                                    FollowGoneFn gone, void *userdata, int *ret_fd) {
        _cleanup_(closep) int read_fd = -1, write_fd = -1;
        g_autoptr(Follower) f = NULL;
        Follower *linked;
        uint64_t offset;
        int fds[2], r;

        assert(s);
        assert(ret_fd);

        if (s->followers.length >= max_followers)
                return -EMFILE;
        /* the followers already there get what is queued first; the new one reads it from the file */
        stream_flush(s);

        r = history_find(s, after_seq, &offset);
        if (r < 0)
                return r;

        if (pipe2(fds, O_CLOEXEC) < 0)
                return -errno;
        read_fd = fds[0];
        write_fd = fds[1];
        if (fcntl(write_fd, F_SETFL, O_NONBLOCK) < 0)
                return -errno;

        f = g_new0(Follower, 1);
        f->fd = take_fd(&write_fd);
        f->buf = g_byte_array_new();
        f->offset = offset;
        f->live = offset >= s->history_size;

        /* EPOLLOUT only while there is something to send; with no events, epoll still reports
         * EPOLLERR when the reader closes, so a follower that leaves while idle is noticed */
        r = sd_event_add_io(s->event, &f->io, f->fd, f->live ? 0 : EPOLLOUT, on_follower_io, f);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(f->io, "follow");

        f->stream = s;
        f->gone = gone;
        f->gone_userdata = userdata;
        f->link.data = f;
        linked = g_steal_pointer(&f);
        g_queue_push_tail_link(&s->followers, &linked->link);

        *ret_fd = take_fd(&read_fd);
        if (linked->live && s->ended)
                follower_free(linked);          /* nothing to send: EOF right away */
        return 0;
}

void follow_stream_set_unfollowed_fn(FollowStream *s, void (*fn)(void *userdata), void *userdata) {
        s->unfollowed = fn;
        s->unfollowed_userdata = userdata;
}

unsigned follow_stream_n_followers(FollowStream *s) {
        assert(s);
        return s->followers.length;
}

uint64_t follow_stream_last_seq(FollowStream *s) {
        assert(s);
        return s->last_seq;
}

bool follow_stream_ended(FollowStream *s) {
        assert(s);
        return s->end_emitted;
}

size_t follow_stream_queued_bytes(FollowStream *s) {
        size_t n = 0;

        assert(s);
        for (GList *l = s->followers.head; l; l = l->next)
                n += follower_queued(l->data);
        return n;
}
