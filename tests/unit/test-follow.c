/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Follow streams on a real sd-event loop with real pipes and a real spool folder: the encoder's
 * format and escaping, seq across restarts and torn tails, history then live without loss or
 * duplicates, after_seq anywhere, slow readers cut off at FOLLOW_BUFFER_MAX, readers that leave,
 * max_followers, a failing history file, and a 10 MB history streamed in bounded memory. The
 * loop is turned with sd_event_run(e, 0) a bounded number of times; nothing sleeps.
 */

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <inttypes.h>
#include <json-glib/json-glib.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "follow.h"
#include "log.h"

G_DEFINE_AUTOPTR_CLEANUP_FUNC(sd_event, sd_event_unref)

/* sd_event_run() dispatches one source per call; this bounds every wait in here. */
#define ITERATIONS_MAX 1000000u

typedef struct Fixture {
        char *path;
        int dir_fd;
        sd_event *event;
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data) {
        g_autoptr(GError) error = NULL;

        f->path = g_dir_make_tmp("test-follow-XXXXXX", &error);
        g_assert_no_error(error);
        f->dir_fd = open(f->path, O_RDONLY|O_DIRECTORY|O_CLOEXEC);
        g_assert_cmpint(f->dir_fd, >=, 0);
        g_assert_cmpint(sd_event_new(&f->event), ==, 0);
}

static void fixture_teardown(Fixture *f, gconstpointer data) {
        if (unlinkat(f->dir_fd, FOLLOW_HISTORY_NAME, 0) < 0)
                (void) unlinkat(f->dir_fd, FOLLOW_HISTORY_NAME, AT_REMOVEDIR);
        close(f->dir_fd);
        g_assert_cmpint(g_rmdir(f->path), ==, 0);
        g_free(f->path);
        sd_event_unref(f->event);
}

static void string_free(GString *s) {
        g_string_free(s, TRUE);
}

static char *history_path(Fixture *f) {
        return g_build_filename(f->path, FOLLOW_HISTORY_NAME, NULL);
}

static GString *history_read(Fixture *f) {
        g_autofree char *p = history_path(f), *contents = NULL;
        g_autoptr(GError) error = NULL;
        gsize n = 0;

        if (!g_file_get_contents(p, &contents, &n, &error)) {
                g_assert_error(error, G_FILE_ERROR, G_FILE_ERROR_NOENT);
                return g_string_new(NULL);
        }
        return g_string_new_len(contents, (gssize) n);
}

static void history_append_raw(Fixture *f, const char *data, size_t n) {
        int fd = openat(f->dir_fd, FOLLOW_HISTORY_NAME, O_WRONLY|O_APPEND|O_CLOEXEC);

        g_assert_cmpint(fd, >=, 0);
        g_assert_cmpint(write(fd, data, n), ==, (ssize_t) n);
        close(fd);
}

static void history_truncate(Fixture *f, uint64_t size) {
        g_autofree char *p = history_path(f);

        g_assert_cmpint(truncate(p, (off_t) size), ==, 0);
}

static FollowStream *stream_make(Fixture *f) {
        FollowStream *s = NULL;

        g_assert_cmpint(follow_stream_new(&s, f->event, f->dir_fd, 42), ==, 0);
        return s;
}

/* The read end of a follower, made non-blocking here so the test can drain what is there. */
typedef struct Reader {
        int fd;
        GString *got;
        bool eof;
} Reader;

static Reader *reader_new(FollowStream *s, uint64_t after_seq) {
        Reader *r = g_new0(Reader, 1);
        int flags;

        g_assert_cmpint(follow_stream_add_follower(s, after_seq, 64, &r->fd), ==, 0);
        flags = fcntl(r->fd, F_GETFL);
        g_assert_cmpint(flags & O_NONBLOCK, ==, 0);             /* the contract: blocking */
        g_assert_cmpint(fcntl(r->fd, F_GETFD) & FD_CLOEXEC, !=, 0);
        g_assert_cmpint(fcntl(r->fd, F_SETFL, flags | O_NONBLOCK), ==, 0);
        r->got = g_string_new(NULL);
        return r;
}

static void reader_close(Reader *r) {
        if (r->fd >= 0)
                close(r->fd);
        r->fd = -1;
}

static void reader_free(Reader *r) {
        reader_close(r);
        g_string_free(r->got, TRUE);
        g_free(r);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Reader, reader_free)

/* Reads what the pipe holds, up to max bytes (0: no limit). */
static void reader_drain(Reader *r, size_t max) {
        char buf[65536];
        size_t total = 0;

        while (!r->eof && r->fd >= 0 && (max == 0 || total < max)) {
                size_t want = max == 0 ? sizeof(buf) : MIN(sizeof(buf), max - total);
                ssize_t n = read(r->fd, buf, want);

                if (n < 0) {
                        g_assert_cmpint(errno, ==, EAGAIN);
                        return;
                }
                if (n == 0)
                        r->eof = true;
                g_string_append_len(r->got, buf, n);
                total += (size_t) n;
        }
}

static void spin(Fixture *f, Reader **rs, size_t n, size_t read_max) {
        g_assert_cmpint(sd_event_run(f->event, 0), >=, 0);
        for (size_t i = 0; i < n; i++)
                reader_drain(rs[i], read_max);
}

static void run_until_eof(Fixture *f, Reader **rs, size_t n) {
        for (unsigned it = 0; it < ITERATIONS_MAX; it++) {
                bool all = true;

                for (size_t i = 0; i < n; i++)
                        all = all && rs[i]->eof;
                if (all)
                        return;
                spin(f, rs, n, 0);
        }
        g_assert_not_reached();
}

static void run_until_n_followers(Fixture *f, FollowStream *s, unsigned n) {
        for (unsigned it = 0; it < ITERATIONS_MAX && follow_stream_n_followers(s) != n; it++)
                g_assert_cmpint(sd_event_run(f->event, 0), >=, 0);
        g_assert_cmpuint(follow_stream_n_followers(s), ==, n);
}

static JsonObject *line_parse(JsonParser *p, const char *line, size_t n) {
        g_autoptr(GError) error = NULL;
        JsonNode *root;

        g_assert_true(json_parser_load_from_data(p, line, (gssize) n, &error));
        g_assert_no_error(error);
        root = json_parser_get_root(p);
        g_assert_true(JSON_NODE_HOLDS_OBJECT(root));
        return json_node_get_object(root);
}

/* Checks text is whole JSON lines with seqs first, first+1, …, and returns how many. */
static size_t assert_lines(const char *text, size_t len, uint64_t first) {
        g_autoptr(JsonParser) p = json_parser_new();
        const char *q = text, *end = text + len;
        size_t n = 0;

        while (q < end) {
                const char *nl = memchr(q, '\n', (size_t) (end - q));
                JsonObject *o;

                g_assert_nonnull(nl);
                o = line_parse(p, q, (size_t) (nl - q));
                g_assert_cmpint(json_object_get_int_member(o, "seq"), ==, (gint64) (first + n));
                n++;
                q = nl + 1;
        }
        return n;
}

/* Offset of the line with seq > after_seq in a history text (seqs 1, 2, … without gaps). */
static size_t offset_after(const GString *h, uint64_t after_seq) {
        size_t off = 0;

        for (uint64_t i = 0; i < after_seq && off < h->len; i++) {
                const char *nl = memchr(h->str + off, '\n', h->len - off);

                g_assert_nonnull(nl);
                off = (size_t) (nl - h->str) + 1;
        }
        return off;
}

static void emit_log_sized(FollowStream *s, size_t size, unsigned tag) {
        g_autofree char *line = g_malloc(size);

        for (size_t i = 0; i < size; i++)
                line[i] = (char) ('a' + (i + tag) % 26);
        g_assert_cmpint(follow_stream_log(s, line, size), >, 0);
}

static void assert_encoded(uint64_t seq, uint64_t time_usec, const char *kind, const char *text,
                           size_t text_size, unsigned percent, const char *status, int exit_status,
                           const char *error, const char *expected) {
        g_autoptr(GString) out = g_string_new("prefix:");
        g_autoptr(JsonParser) p = json_parser_new();

        follow_encode(out, seq, time_usec, kind, text, text_size, percent, status, exit_status, error);
        g_assert_true(g_str_has_prefix(out->str, "prefix:"));
        g_assert_cmpstr(out->str + strlen("prefix:"), ==, expected);
        g_assert_cmpuint(strlen(out->str), ==, out->len);
        (void) line_parse(p, out->str + strlen("prefix:"), out->len - strlen("prefix:") - 1);
}

static void test_encode_format(void) {
        assert_encoded(1, 1700000000000000, "status", NULL, 0, 0, "running", 0, NULL,
                       "{\"seq\":1,\"time\":1700000000000000,\"event\":\"status\","
                       "\"status\":\"running\"}\n");
        assert_encoded(2, 5, "log", "a line of stderr", 16, 0, NULL, 0, NULL,
                       "{\"seq\":2,\"time\":5,\"event\":\"log\",\"data\":\"a line of stderr\"}\n");
        assert_encoded(3, 6, "progress", "resizing", 8, 40, NULL, 0, NULL,
                       "{\"seq\":3,\"time\":6,\"event\":\"progress\",\"percent\":40,"
                       "\"message\":\"resizing\"}\n");
        assert_encoded(4, 7, "end", NULL, 0, 0, "failed", 3, "exited with status 3",
                       "{\"seq\":4,\"time\":7,\"event\":\"end\",\"status\":\"failed\",\"exit_status\":3,"
                       "\"error\":\"exited with status 3\"}\n");
        /* absent strings are empty; numbers at their limits */
        assert_encoded(UINT64_MAX, 0, "end", NULL, 0, 0, "succeeded", INT_MIN, NULL,
                       "{\"seq\":18446744073709551615,\"time\":0,\"event\":\"end\",\"status\":\"succeeded\","
                       "\"exit_status\":-2147483648,\"error\":\"\"}\n");
        assert_encoded(5, 0, "log", NULL, 0, 0, NULL, 0, NULL,
                       "{\"seq\":5,\"time\":0,\"event\":\"log\",\"data\":\"\"}\n");
        assert_encoded(6, 0, "status", NULL, 0, 0, NULL, 0, NULL,
                       "{\"seq\":6,\"time\":0,\"event\":\"status\",\"status\":\"\"}\n");
}

static void test_encode_escape(void) {
        static const struct {
                const char *in;
                size_t size;
                const char *json;       /* the escaped content between the quotes */
                const char *decoded;    /* what a JSON parser gives back; NULL: same as in */
        } cases[] = {
                { "say \"hi\"", 8, "say \\\"hi\\\"" },
                { "a\\b\\", 4, "a\\\\b\\\\" },
                { "l1\nl2\r\t", 7, "l1\\nl2\\r\\t" },
                { "\x01\x1b[31m\x7f\x1f", 8, "\\u0001\\u001b[31m\\u007f\\u001f" },
                { "\b\f", 2, "\\u0008\\u000c" },
                { "x\0y", 3, "x\\u0000y", "x" },         /* json-glib strings end at NUL */
                { "caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac", 14,
                  "caf\xc3\xa9 \xf0\x9f\x98\x80 \xe2\x82\xac" },
                { "\xef\xbf\xbd", 3, "\xef\xbf\xbd" },
                { "\xff", 1, "\xef\xbf\xbd", "\xef\xbf\xbd" },
                { "a\xc3", 2, "a\xef\xbf\xbd", "a\xef\xbf\xbd" },               /* truncated */
                { "\xe2\x82" "A", 3, "\xef\xbf\xbd\xef\xbf\xbd" "A", "\xef\xbf\xbd\xef\xbf\xbd" "A" },
                { "\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd", "\xef\xbf\xbd\xef\xbf\xbd" },   /* overlong */
                { "\xe0\x80\xaf", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
                  "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },                     /* overlong */
                { "\xed\xa0\x80", 3, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
                  "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },                     /* surrogate */
                { "\xf4\x90\x80\x80", 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
                  "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" },         /* above U+10FFFF */
                { "\xf4\x8f\xbf\xbf", 4, "\xf4\x8f\xbf\xbf" },                  /* U+10FFFF */
                { "\x80\"", 2, "\xef\xbf\xbd\\\"", "\xef\xbf\xbd\"" },
        };
        g_autoptr(JsonParser) p = json_parser_new();

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autoptr(GString) out = g_string_new(NULL);
                g_autofree char *expected = NULL, *cstr = g_strndup(cases[i].in, cases[i].size);
                JsonObject *o;

                follow_encode(out, 1, 2, "log", cases[i].in, cases[i].size, 0, NULL, 0, NULL);
                expected = g_strdup_printf("{\"seq\":1,\"time\":2,\"event\":\"log\",\"data\":\"%s\"}\n",
                                           cases[i].json);
                g_assert_cmpstr(out->str, ==, expected);
                o = line_parse(p, out->str, out->len);
                g_assert_cmpstr(json_object_get_string_member(o, "data"), ==,
                                cases[i].decoded ?: cases[i].in);

                /* the same escaping in every string field */
                g_string_truncate(out, 0);
                follow_encode(out, 1, 2, "end", NULL, 0, 0, cstr, 1, cstr);
                o = line_parse(p, out->str, out->len);
                g_assert_cmpstr(json_object_get_string_member(o, "status"), ==,
                                json_object_get_string_member(o, "error"));
                g_string_truncate(out, 0);
                follow_encode(out, 1, 2, "progress", cstr, strlen(cstr), 7, NULL, 0, NULL);
                o = line_parse(p, out->str, out->len);
                g_assert_cmpint(json_object_get_int_member(o, "percent"), ==, 7);
        }
}

static void test_encode_cut(void) {
        g_autoptr(JsonParser) p = json_parser_new();
        g_autofree char *text = g_malloc(FOLLOW_LINE_MAX + 16);
        const struct {
                size_t size;
                size_t at;              /* where a 2- or 4-byte character goes; SIZE_MAX: none */
                size_t width;
                size_t expected;        /* bytes of the input kept */
        } cases[] = {
                { FOLLOW_LINE_MAX, SIZE_MAX, 0, FOLLOW_LINE_MAX },
                { FOLLOW_LINE_MAX + 10, SIZE_MAX, 0, FOLLOW_LINE_MAX },
                { FOLLOW_LINE_MAX + 10, FOLLOW_LINE_MAX - 1, 2, FOLLOW_LINE_MAX - 1 },
                { FOLLOW_LINE_MAX + 10, FOLLOW_LINE_MAX - 2, 2, FOLLOW_LINE_MAX },
                { FOLLOW_LINE_MAX + 10, FOLLOW_LINE_MAX - 3, 4, FOLLOW_LINE_MAX - 3 },
                { FOLLOW_LINE_MAX + 10, FOLLOW_LINE_MAX - 1, 4, FOLLOW_LINE_MAX - 1 },
                { FOLLOW_LINE_MAX + 10, FOLLOW_LINE_MAX - 4, 4, FOLLOW_LINE_MAX },
        };

        for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
                g_autoptr(GString) out = g_string_new(NULL);
                const char *data;

                memset(text, 'x', cases[i].size);
                if (cases[i].width == 2)
                        memcpy(text + cases[i].at, "\xc3\xa9", 2);
                else if (cases[i].width == 4)
                        memcpy(text + cases[i].at, "\xf0\x9f\x98\x80", 4);

                follow_encode(out, 1, 1, "log", text, cases[i].size, 0, NULL, 0, NULL);
                data = json_object_get_string_member(line_parse(p, out->str, out->len), "data");
                g_assert_cmpuint(strlen(data), ==, cases[i].expected);
                g_assert_cmpmem(data, cases[i].expected, text, cases[i].expected);
        }
}

static void test_seq(Fixture *f, gconstpointer data) {
        g_autoptr(FollowStream) s = stream_make(f);
        g_autoptr(JsonParser) p = json_parser_new();
        g_autoptr(GString) h = NULL;
        g_autofree char *path = history_path(f);
        struct stat st;
        const char *q;
        JsonObject *o;

        g_assert_cmpuint(follow_stream_last_seq(s), ==, 0);
        g_assert_false(follow_stream_ended(s));
        /* no file before the first event */
        g_assert_cmpint(faccessat(f->dir_fd, FOLLOW_HISTORY_NAME, F_OK, 0), <, 0);

        g_assert_cmpint(follow_stream_status(s, "running"), ==, 1);
        g_assert_cmpint(follow_stream_log(s, "hello\n", 5), ==, 2);
        g_assert_cmpint(follow_stream_progress(s, 40, "resizing"), ==, 3);
        g_assert_cmpint(follow_stream_end(s, "failed", 3, "exited with status 3"), ==, 4);
        g_assert_cmpuint(follow_stream_last_seq(s), ==, 4);
        g_assert_true(follow_stream_ended(s));

        g_assert_cmpint(follow_stream_status(s, "running"), ==, -ESTALE);
        g_assert_cmpint(follow_stream_log(s, "x", 1), ==, -ESTALE);
        g_assert_cmpint(follow_stream_progress(s, 1, "x"), ==, -ESTALE);
        g_assert_cmpint(follow_stream_end(s, "failed", 1, "x"), ==, -ESTALE);
        g_assert_cmpuint(follow_stream_last_seq(s), ==, 4);

        g_assert_cmpint(stat(path, &st), ==, 0);
        g_assert_cmpint(st.st_mode & 07777, ==, 0600);

        h = history_read(f);
        g_assert_cmpuint(assert_lines(h->str, h->len, 1), ==, 4);
        q = strrchr(h->str, '{');
        o = line_parse(p, q, strlen(q));
        g_assert_cmpstr(json_object_get_string_member(o, "event"), ==, "end");
        g_assert_cmpint(json_object_get_int_member(o, "exit_status"), ==, 3);
        /* CLOCK_REALTIME µs: after 2020 */
        g_assert_cmpint(json_object_get_int_member(o, "time"), >, G_GINT64_CONSTANT(1577836800000000));
        g_assert_true(g_str_has_prefix(h->str, "{\"seq\":1,"));
        g_assert_nonnull(strstr(h->str, "\"data\":\"hello\"}\n"));
}

static void test_live_only(Fixture *f, gconstpointer data) {
        g_autoptr(FollowStream) s = stream_make(f);
        g_autoptr(Reader) r = reader_new(s, 0);
        g_autoptr(GString) h = NULL;

        g_assert_cmpuint(follow_stream_n_followers(s), ==, 1);
        spin(f, &r, 1, 0);
        g_assert_cmpuint(r->got->len, ==, 0);
        g_assert_false(r->eof);

        g_assert_cmpint(follow_stream_status(s, "running"), ==, 1);
        g_assert_cmpint(follow_stream_log(s, "one", 3), ==, 2);
        reader_drain(r, 0);                     /* batched: nothing before the loop turns */
        g_assert_cmpuint(r->got->len, ==, 0);
        spin(f, &r, 1, 0);                      /* then both, in one write */
        g_assert_cmpuint(assert_lines(r->got->str, r->got->len, 1), ==, 2);
        g_assert_cmpint(follow_stream_end(s, "succeeded", 0, NULL), ==, 3);
        run_until_eof(f, &r, 1);

        h = history_read(f);
        g_assert_cmpstr(r->got->str, ==, h->str);
        g_assert_cmpuint(follow_stream_n_followers(s), ==, 0);
}

static void test_history_then_live(Fixture *f, gconstpointer data) {
        g_autoptr(FollowStream) s = stream_make(f);
        g_autoptr(Reader) r = NULL;
        g_autoptr(GString) h = NULL;

        g_assert_cmpint(follow_stream_status(s, "running"), ==, 1);
        g_assert_cmpint(follow_stream_log(s, "one", 3), ==, 2);
        g_assert_cmpint(follow_stream_progress(s, 10, "ten"), ==, 3);

        r = reader_new(s, 0);
        for (unsigned i = 0; i < 10; i++)
                spin(f, &r, 1, 0);
        g_assert_cmpuint(assert_lines(r->got->str, r->got->len, 1), ==, 3);

        g_assert_cmpint(follow_stream_log(s, "two", 3), ==, 4);
        g_assert_cmpint(follow_stream_progress(s, 100, "done"), ==, 5);
        g_assert_cmpint(follow_stream_end(s, "succeeded", 0, NULL), ==, 6);
        run_until_eof(f, &r, 1);

        h = history_read(f);
        g_assert_cmpstr(r->got->str, ==, h->str);
        g_assert_cmpuint(assert_lines(r->got->str, r->got->len, 1), ==, 6);
        g_assert_cmpuint(follow_stream_n_followers(s), ==, 0);
}

/* Lines of very different lengths, so the search for after_seq meets lines longer than its
 * read chunks and chunks that end inside lines. */
static size_t varied_size(unsigned i) {
        return i % 50 == 3 ? 60000 : i % 7 == 0 ? 5000 : i % 3 == 0 ? 0 : 1 + i * 37 % 200;
}

static void test_after_seq(Fixture *f, gconstpointer data) {
        g_autoptr(FollowStream) s = stream_make(f);
        g_autoptr(GString) h = NULL;
        const unsigned n = 200;

        for (unsigned i = 1; i < n; i++)
                emit_log_sized(s, varied_size(i), i);
        g_assert_cmpint(follow_stream_end(s, "succeeded", 0, NULL), ==, n);
        h = history_read(f);

        for (uint64_t after = 0; after <= n + 2; after++) {
                g_autoptr(Reader) r = reader_new(s, after);
                size_t off = offset_after(h, after);

                run_until_eof(f, &r, 1);
                g_assert_cmpuint(r->got->len, ==, h->len - off);
                g_assert_cmpmem(r->got->str, r->got->len, h->str + off, h->len - off);
                g_assert_cmpuint(assert_lines(r->got->str, r->got->len, after + 1), ==,
                                 after >= n ? 0 : n - after);
        }
        g_assert_cmpuint(follow_stream_n_followers(s), ==, 0);
        g_assert_cmpuint(follow_stream_queued_bytes(s), ==, 0);
}

/* Followers from the middle of a stream that is still going. */
static void test_after_seq_live(Fixture *f, gconstpointer data) {
        g_autoptr(FollowStream) s = stream_make(f);
        g_autoptr(GString) h = NULL;
        Reader *rs[4];
        const uint64_t afters[] = { 0, 5, 9, 10 };

        for (unsigned i = 1; i <= 10; i++)
                emit_log_sized(s, varied_size(i), i);
        for (size_t i = 0; i < G_N_ELEMENTS(rs); i++)
                rs[i] = reader_new(s, afters[i]);
        spin(f, rs, G_N_ELEMENTS(rs), 0);
        for (unsigned i = 11; i <= 20; i++) {
                emit_log_sized(s, varied_size(i), i);
                spin(f, rs, G_N_ELEMENTS(rs), 0);
        }
        g_assert_cmpint(follow_stream_end(s, "succeeded", 0, NULL), ==, 21);
        run_until_eof(f, rs, G_N_ELEMENTS(rs));

        h = history_read(f);
        for (size_t i = 0; i < G_N_ELEMENTS(rs); i++) {
                size_t off = offset_after(h, afters[i]);

                g_assert_cmpmem(rs[i]->got->str, rs[i]->got->len, h->str + off, h->len - off);
                reader_free(rs[i]);
        }
}

static void test_after_end(Fixture *f, gconstpointer data) {
        g_autoptr(FollowStream) s = stream_make(f);
        g_autoptr(Reader) all = NULL, none = NULL, beyond = NULL;
        g_autoptr(GString) h = NULL;

        for (unsigned i = 1; i <= 30; i++)
                emit_log_sized(s, 100, i);
        g_assert_cmpint(follow_stream_end(s, "cancelled", -1, "cancelled by uid 1000"), ==, 31);

        /* nothing to send: EOF before the loop even runs */
        none = reader_new(s, 31);
        beyond = reader_new(s, 1000);
        g_assert_cmpuint(follow_stream_n_followers(s), ==, 0);
        reader_drain(none, 0);
        reader_drain(beyond, 0);
        g_assert_true(none->eof);
        g_assert_true(beyond->eof);
        g_assert_cmpuint(none->got->len + beyond->got->len, ==, 0);

        all = reader_new(s, 0);
        g_assert_cmpuint(follow_stream_n_followers(s), ==, 1);
        run_until_eof(f, &all, 1);
        h = history_read(f);
        g_assert_cmpstr(all->got->str, ==, h->str);
        g_assert_cmpuint(follow_stream_n_followers(s), ==, 0);
}

static void test_reopen(Fixture *f, gconstpointer data) {
        g_autoptr(FollowStream) s = stream_make(f);
        g_autoptr(Reader) r = NULL, r2 = NULL;
        g_autoptr(GString) h = NULL;

        g_assert_cmpint(follow_stream_status(s, "running"), ==, 1);
        g_assert_cmpint(follow_stream_log(s, "a", 1), ==, 2);
        g_assert_cmpint(follow_stream_log(s, "b", 1), ==, 3);
        g_clear_pointer(&s, follow_stream_free);

        /* a restart: seq continues, not ended */
        s = stream_make(f);
        g_assert_cmpuint(follow_stream_last_seq(s), ==, 3);
        g_assert_false(follow_stream_ended(s));
        g_assert_cmpint(follow_stream_log(s, "c", 1), ==, 4);
        r = reader_new(s, 0);
        g_assert_cmpint(follow_stream_end(s, "succeeded", 0, NULL), ==, 5);
        run_until_eof(f, &r, 1);
        g_assert_cmpuint(assert_lines(r->got->str, r->got->len, 1), ==, 5);
        g_clear_pointer(&s, follow_stream_free);

        /* ended stays ended */
        s = stream_make(f);
        g_assert_cmpuint(follow_stream_last_seq(s), ==, 5);
        g_assert_true(follow_stream_ended(s));
        g_assert_cmpint(follow_stream_status(s, "running"), ==, -ESTALE);
        r2 = reader_new(s, 2);
        run_until_eof(f, &r2, 1);
        h = history_read(f);
        g_assert_cmpuint(assert_lines(r2->got->str, r2->got->len, 3), ==, 3);
        g_assert_cmpuint(assert_lines(h->str, h->len, 1), ==, 5);
}

static void test_torn_tail(Fixture *f, gconstpointer data) {
        g_autoptr(FollowStream) s = stream_make(f);
        g_autoptr(GString) full = NULL, before = NULL, h = NULL;
        const char *torn;
        size_t last_start;

        for (unsigned i = 1; i <= 5; i++)
                emit_log_sized(s, 10 * i, i);
        before = history_read(f);
        g_assert_cmpint(follow_stream_end(s, "failed", 2, "exited with status 2"), ==, 6);
        g_clear_pointer(&s, follow_stream_free);
        full = history_read(f);
        last_start = before->len;

        /* the end line torn at every length: it is gone, and the stream is not ended */
        for (size_t cut = 0; cut < full->len - last_start; cut++) {
                history_truncate(f, last_start + cut);
                s = stream_make(f);
                g_assert_cmpuint(follow_stream_last_seq(s), ==, 5);
                g_assert_false(follow_stream_ended(s));
                g_clear_pointer(&s, follow_stream_free);
                h = history_read(f);
                g_assert_cmpstr(h->str, ==, before->str);       /* cut away on open */
                g_clear_pointer(&h, string_free);
        }

        /* whole but not ours, and garbage without a newline after it */
        history_append_raw(f, "garbage\n{\"seq\":7,\"ti", 20);
        s = stream_make(f);
        g_assert_cmpuint(follow_stream_last_seq(s), ==, 5);
        g_assert_cmpint(follow_stream_status(s, "running"), ==, 6);
        g_clear_pointer(&s, follow_stream_free);
        h = history_read(f);
        g_assert_cmpuint(assert_lines(h->str, h->len, 1), ==, 6);
        g_clear_pointer(&h, string_free);

        /* nothing complete at all */
        history_truncate(f, 0);
        torn = "{\"seq\":1,\"time\":1,\"event\":\"log\"";
        history_append_raw(f, torn, strlen(torn));
        s = stream_make(f);
        g_assert_cmpuint(follow_stream_last_seq(s), ==, 0);
        g_assert_cmpint(follow_stream_log(s, "x", 1), ==, 1);
        g_clear_pointer(&s, follow_stream_free);
        h = history_read(f);
        g_assert_cmpuint(assert_lines(h->str, h->len, 1), ==, 1);
}

static void test_corrupt_middle(Fixture *f, gconstpointer data) {
        g_autoptr(FollowStream) s = stream_make(f);
        g_autoptr(GString) h = NULL;
        g_autoptr(Reader) r = NULL;
        int fd;

        for (unsigned i = 1; i <= 20; i++)
                emit_log_sized(s, 100, i);
        g_clear_pointer(&s, follow_stream_free);

        /* every line but the last loses its seq: restart works, a search refuses */
        h = history_read(f);
        for (size_t i = 0; i + 200 < h->len; i++)
                if (i == 0 || h->str[i - 1] == '\n')
                        h->str[i + 2] = 'X';
        fd = openat(f->dir_fd, FOLLOW_HISTORY_NAME, O_WRONLY|O_TRUNC|O_CLOEXEC);
        g_assert_cmpint(write(fd, h->str, h->len), ==, (ssize_t) h->len);
        close(fd);

        s = stream_make(f);
        g_assert_cmpuint(follow_stream_last_seq(s), ==, 20);
        g_assert_cmpint(follow_stream_add_follower(s, 10, 8, &fd), ==, -EBADMSG);
        g_assert_cmpuint(follow_stream_n_followers(s), ==, 0);
        r = reader_new(s, 0);           /* from the start needs no search */
        g_assert_cmpuint(follow_stream_n_followers(s), ==, 1);
}

static void test_slow_reader(Fixture *f, gconstpointer data) {
        g_autoptr(FollowStream) s = stream_make(f);
        g_autoptr(Reader) slow = NULL, fast = NULL;
        g_autoptr(GString) h = NULL;
        size_t queued_max = 0;
        bool cut = false;
        unsigned i;

        slow = reader_new(s, 0);
        fast = reader_new(s, 0);
        for (i = 1; i <= 3000; i++) {
                emit_log_sized(s, 1000, i);
                queued_max = MAX(queued_max, follow_stream_queued_bytes(s));
                spin(f, &fast, 1, 0);
                if (!cut && follow_stream_n_followers(s) == 1) {
                        g_autoptr(GString) sent = history_read(f);

                        /* the pipe took its share, then the bound: not sooner */
                        cut = true;
                        g_assert_cmpuint(sent->len, >, FOLLOW_BUFFER_MAX);
                }
        }
        g_assert_true(cut);
        g_assert_cmpuint(queued_max, <=, FOLLOW_BUFFER_MAX);
        g_assert_cmpint(follow_stream_end(s, "succeeded", 0, NULL), ==, 3001);
        run_until_eof(f, &fast, 1);
        run_until_eof(f, &slow, 1);

        h = history_read(f);
        g_assert_cmpstr(fast->got->str, ==, h->str);
        /* the slow one got a prefix, then EOF without the end event */
        g_assert_cmpuint(slow->got->len, >=, 4096);
        g_assert_cmpuint(slow->got->len, <, h->len / 2);
        g_assert_cmpmem(slow->got->str, slow->got->len, h->str, slow->got->len);
        g_assert_null(strstr(slow->got->str, "\"event\":\"end\""));
        g_test_message("slow reader got %zu bytes; queued at most %zu", slow->got->len, queued_max);
}

static void test_reader_closes(Fixture *f, gconstpointer data) {
        g_autoptr(FollowStream) s = stream_make(f);
        g_autoptr(Reader) idle = NULL, busy = NULL, sudden = NULL, stays = NULL;

        idle = reader_new(s, 0);
        sudden = reader_new(s, 0);
        busy = reader_new(s, 0);
        stays = reader_new(s, 0);
        g_assert_cmpuint(follow_stream_n_followers(s), ==, 4);

        /* idle, nothing queued: noticed from EPOLLERR alone */
        reader_close(idle);
        run_until_n_followers(f, s, 3);

        /* gone between two events, before the loop noticed: the batch's write gets EPIPE (or
         * the loop sees EPOLLERR first) */
        reader_close(sudden);
        emit_log_sized(s, 10, 0);
        run_until_n_followers(f, s, 2);

        /* the pipe is full and bytes are queued when it leaves */
        for (unsigned i = 1; follow_stream_queued_bytes(s) == 0; i++) {
                g_assert_cmpuint(i, <, 1000);
                emit_log_sized(s, 1000, i);
        }
        reader_close(busy);
        run_until_n_followers(f, s, 1);

        g_assert_cmpint(follow_stream_end(s, "succeeded", 0, NULL), >, 0);
        run_until_eof(f, &stays, 1);
        g_assert_cmpuint(assert_lines(stays->got->str, stays->got->len, 1), ==, follow_stream_last_seq(s));
}

static void test_max_followers(Fixture *f, gconstpointer data) {
        g_autoptr(FollowStream) s = stream_make(f);
        int fds[3], fd = -1;

        g_assert_cmpint(follow_stream_add_follower(s, 0, 0, &fd), ==, -EMFILE);
        for (size_t i = 0; i < G_N_ELEMENTS(fds); i++)
                g_assert_cmpint(follow_stream_add_follower(s, 0, 3, &fds[i]), ==, 0);
        g_assert_cmpint(follow_stream_add_follower(s, 0, 3, &fd), ==, -EMFILE);
        g_assert_cmpint(fd, ==, -1);
        g_assert_cmpuint(follow_stream_n_followers(s), ==, 3);

        close(fds[1]);
        run_until_n_followers(f, s, 2);
        g_assert_cmpint(follow_stream_add_follower(s, 0, 3, &fds[1]), ==, 0);
        g_assert_cmpint(follow_stream_add_follower(s, 0, 4, &fd), ==, 0);
        g_assert_cmpuint(follow_stream_n_followers(s), ==, 4);

        close(fd);
        for (size_t i = 0; i < G_N_ELEMENTS(fds); i++)
                close(fds[i]);
}

/* Live events while a follower is still reading a 2 MB history: each arrives once, in order. */
static void test_catch_up_with_live(Fixture *f, gconstpointer data) {
        g_autoptr(FollowStream) s = stream_make(f);
        g_autoptr(Reader) r = NULL;
        g_autoptr(GString) h = NULL;
        unsigned seq = 0, during = 0;

        while (seq < 2000)
                emit_log_sized(s, 1000, ++seq);
        r = reader_new(s, 0);
        for (unsigned it = 0; it < 400; it++) {
                if (it % 2 == 0) {
                        emit_log_sized(s, 10 + it, ++seq);
                        if (r->got->len + 200000 < (size_t) seq * 1000)
                                during++;       /* the reader is far behind the live end */
                }
                spin(f, &r, 1, 8192);
        }
        g_assert_cmpuint(during, >, 50);
        g_assert_cmpint(follow_stream_end(s, "succeeded", 0, NULL), ==, seq + 1);
        run_until_eof(f, &r, 1);

        h = history_read(f);
        g_assert_cmpuint(r->got->len, ==, h->len);
        g_assert_cmpmem(r->got->str, r->got->len, h->str, h->len);
        g_assert_cmpuint(assert_lines(r->got->str, r->got->len, 1), ==, seq + 1);
}

/* Live followers get events in batches (the outbox); one that catches up from the file and
 * turns live while a batch is queued gets each event once: both end with exactly the history. */
static void test_batches_no_duplicates(Fixture *f, gconstpointer data) {
        g_autoptr(FollowStream) s = stream_make(f);
        g_autoptr(Reader) live = reader_new(s, 0), late = NULL;
        g_autoptr(GString) h = NULL;
        Reader *rs[2];
        unsigned seq = 0;

        for (unsigned i = 0; i < 300; i++)
                emit_log_sized(s, 200, ++seq);
        late = reader_new(s, 0);
        rs[0] = live;
        rs[1] = late;
        for (unsigned it = 0; it < 300; it++) {
                emit_log_sized(s, 50 + it, ++seq);
                if (it % 3 == 0)
                        emit_log_sized(s, 10, ++seq);
                spin(f, rs, 2, 4096);
        }
        g_assert_cmpint(follow_stream_end(s, "succeeded", 0, NULL), ==, seq + 1);
        run_until_eof(f, rs, 2);

        h = history_read(f);
        g_assert_cmpmem(live->got->str, live->got->len, h->str, h->len);
        g_assert_cmpmem(late->got->str, late->got->len, h->str, h->len);
}

/* 10 MB of history to a reader that takes 16 KiB at a time: sent in chunks as the pipe
 * drains, never more than the bound queued. */
static void test_big_history(Fixture *f, gconstpointer data) {
        g_autoptr(FollowStream) s = stream_make(f);
        g_autoptr(Reader) r = NULL;
        g_autoptr(GString) h = NULL;
        size_t queued_max = 0;
        unsigned it, n = 0;

        for (; n < 10 * 1024; n++)
                emit_log_sized(s, 1000 + n % 100, n);
        g_assert_cmpint(follow_stream_end(s, "succeeded", 0, NULL), ==, n + 1);
        h = history_read(f);
        g_assert_cmpuint(h->len, >, 10u * 1024 * 1024);

        r = reader_new(s, 0);
        for (it = 0; it < ITERATIONS_MAX && !r->eof; it++) {
                spin(f, &r, 1, 16384);
                queued_max = MAX(queued_max, follow_stream_queued_bytes(s));
                g_assert_cmpuint(follow_stream_queued_bytes(s), <=, FOLLOW_BUFFER_MAX);
        }
        g_assert_true(r->eof);
        g_assert_cmpuint(r->got->len, ==, h->len);
        g_assert_true(memcmp(r->got->str, h->str, h->len) == 0);
        g_test_message("10 MB history: %u iterations, at most %zu bytes queued", it, queued_max);
}

static void test_free_closes_followers(Fixture *f, gconstpointer data) {
        g_autoptr(FollowStream) s = stream_make(f);
        Reader *rs[2];

        for (unsigned i = 1; i <= 100; i++)
                emit_log_sized(s, 1000, i);
        rs[0] = reader_new(s, 0);
        rs[1] = reader_new(s, 50);
        spin(f, rs, 2, 0);
        g_clear_pointer(&s, follow_stream_free);
        run_until_eof(f, rs, 2);
        for (size_t i = 0; i < 2; i++) {
                g_assert_null(strstr(rs[i]->got->str, "\"event\":\"end\""));
                reader_free(rs[i]);
        }
}

/* The history cannot be written: events still go to live followers, seq still counts. */
static void test_history_fails(Fixture *f, gconstpointer data) {
        g_autoptr(FollowStream) s = stream_make(f);
        g_autoptr(Reader) live = NULL, later = NULL;
        FollowStream *t = NULL;

        live = reader_new(s, 0);
        g_assert_cmpint(mkdirat(f->dir_fd, FOLLOW_HISTORY_NAME, 0700), ==, 0);
        g_assert_cmpint(follow_stream_status(s, "running"), ==, 1);
        g_assert_cmpint(follow_stream_log(s, "x", 1), ==, 2);
        later = reader_new(s, 0);
        g_assert_cmpint(follow_stream_end(s, "succeeded", 0, NULL), ==, 3);
        run_until_eof(f, &live, 1);
        run_until_eof(f, &later, 1);
        g_assert_cmpuint(assert_lines(live->got->str, live->got->len, 1), ==, 3);
        g_assert_cmpuint(assert_lines(later->got->str, later->got->len, 3), ==, 1);

        /* a history that is not a file refuses a new stream */
        g_assert_cmpint(follow_stream_new(&t, f->event, f->dir_fd, 42), <, 0);
        g_assert_null(t);
}

/* A write the disk takes only part of (RLIMIT_FSIZE stands in for a full disk): the torn line
 * is cut away, live followers still get the event, later ones see a gap, never a broken line. */
static void test_history_short_write(Fixture *f, gconstpointer data) {
        g_autoptr(FollowStream) s = stream_make(f);
        g_autoptr(Reader) live = NULL, later = NULL;
        g_autoptr(GString) h = NULL;
        struct rlimit old, small;
        size_t size;

        live = reader_new(s, 0);
        emit_log_sized(s, 100, 1);
        h = history_read(f);
        size = h->len;

        g_assert_cmpint(getrlimit(RLIMIT_FSIZE, &old), ==, 0);
        small = (struct rlimit) { .rlim_cur = size + 50, .rlim_max = old.rlim_max };
        g_assert_cmpint(setrlimit(RLIMIT_FSIZE, &small), ==, 0);
        g_assert_cmpint(follow_stream_log(s, "a line the disk only takes half of, and then some more "
                                          "bytes so that it is long enough", 87), ==, 2);
        g_assert_cmpint(setrlimit(RLIMIT_FSIZE, &old), ==, 0);
        g_clear_pointer(&h, string_free);
        h = history_read(f);
        g_assert_cmpuint(h->len, ==, size);

        emit_log_sized(s, 100, 3);
        later = reader_new(s, 0);
        g_assert_cmpint(follow_stream_end(s, "succeeded", 0, NULL), ==, 4);
        run_until_eof(f, &live, 1);
        run_until_eof(f, &later, 1);
        g_assert_cmpuint(assert_lines(live->got->str, live->got->len, 1), ==, 4);
        /* what the live one got, without seq 2 */
        g_string_erase(live->got, (gssize) offset_after(live->got, 1),
                       (gssize) (offset_after(live->got, 2) - offset_after(live->got, 1)));
        g_assert_cmpstr(later->got->str, ==, live->got->str);
        g_clear_pointer(&h, string_free);
        h = history_read(f);
        g_assert_cmpstr(h->str, ==, later->got->str);

        /* a restart reads it as it is */
        g_clear_pointer(&s, follow_stream_free);
        s = stream_make(f);
        g_assert_cmpuint(follow_stream_last_seq(s), ==, 4);
        g_assert_true(follow_stream_ended(s));
}

#define ADD(name, fn) g_test_add(name, Fixture, NULL, fixture_setup, fn, fixture_teardown)

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        if (getenv("JOBD_LOG_STDERR"))
                log_set_target(LOG_TARGET_STDERR);
        /* as in jobd: a reader that left is EPIPE, not a signal */
        (void) signal(SIGPIPE, SIG_IGN);
        (void) signal(SIGXFSZ, SIG_IGN);        /* the short-write test runs into RLIMIT_FSIZE */

        g_test_add_func("/follow/encode/format", test_encode_format);
        g_test_add_func("/follow/encode/escape", test_encode_escape);
        g_test_add_func("/follow/encode/cut", test_encode_cut);
        ADD("/follow/seq", test_seq);
        ADD("/follow/live-only", test_live_only);
        ADD("/follow/history-then-live", test_history_then_live);
        ADD("/follow/after-seq", test_after_seq);
        ADD("/follow/after-seq-live", test_after_seq_live);
        ADD("/follow/after-end", test_after_end);
        ADD("/follow/reopen", test_reopen);
        ADD("/follow/torn-tail", test_torn_tail);
        ADD("/follow/corrupt-middle", test_corrupt_middle);
        ADD("/follow/slow-reader", test_slow_reader);
        ADD("/follow/reader-closes", test_reader_closes);
        ADD("/follow/max-followers", test_max_followers);
        ADD("/follow/catch-up-with-live", test_catch_up_with_live);
        ADD("/follow/batches-no-duplicates", test_batches_no_duplicates);
        ADD("/follow/big-history", test_big_history);
        ADD("/follow/free-closes-followers", test_free_closes_followers);
        ADD("/follow/history-fails", test_history_fails);
        ADD("/follow/history-short-write", test_history_short_write);

        return g_test_run();
}
