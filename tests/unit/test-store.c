/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The journal store against a real directory: replay, torn tails at every length, corruption in
 * the middle, refused headers, compaction, group commit and batching on an sd-event loop, and
 * failed writes and syncs (injected through StoreIO) with recovery by a verified rewrite.
 */

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "record.h"
#include "store.h"

G_DEFINE_AUTOPTR_CLEANUP_FUNC(sd_event, sd_event_unref)

typedef struct Fixture {
        char *path;
        int dir_fd;
} Fixture;

static void fixture_setup(Fixture *f, gconstpointer data) {
        g_autoptr(GError) error = NULL;

        f->path = g_dir_make_tmp("test-store-XXXXXX", &error);
        g_assert_no_error(error);
        f->dir_fd = open(f->path, O_RDONLY|O_DIRECTORY|O_CLOEXEC);
        g_assert_cmpint(f->dir_fd, >=, 0);
}

static void fixture_teardown(Fixture *f, gconstpointer data) {
        static const char *const names[] = { "journal", "journal.new", "journal.corrupt", "journal.torn" };

        for (size_t i = 0; i < G_N_ELEMENTS(names); i++)
                (void) unlinkat(f->dir_fd, names[i], 0);
        close(f->dir_fd);
        g_assert_cmpint(g_rmdir(f->path), ==, 0);
        g_free(f->path);
}

static char *fixture_file(Fixture *f, const char *name) {
        return g_build_filename(f->path, name, NULL);
}

static bool fixture_exists(Fixture *f, const char *name) {
        return faccessat(f->dir_fd, name, F_OK, 0) == 0;
}

static GBytes *fixture_read(Fixture *f, const char *name) {
        g_autofree char *p = fixture_file(f, name), *contents = NULL;
        g_autoptr(GError) error = NULL;
        gsize n;

        g_assert_true(g_file_get_contents(p, &contents, &n, &error));
        g_assert_no_error(error);
        return g_bytes_new_take(g_steal_pointer(&contents), n);
}

static void fixture_write(Fixture *f, const char *name, const void *data, size_t size) {
        g_autofree char *p = fixture_file(f, name);
        g_autoptr(GError) error = NULL;

        g_assert_true(g_file_set_contents(p, data, (gssize) size, &error));
        g_assert_no_error(error);
}

static uint64_t fixture_size(Fixture *f, const char *name) {
        struct stat st;

        g_assert_cmpint(fstatat(f->dir_fd, name, &st, 0), ==, 0);
        return (uint64_t) st.st_size;
}

/* Replayed payloads, and the state a snapshot writes: an array of GBytes. */
static int on_replay_collect(const void *payload, size_t size, void *userdata) {
        g_ptr_array_add(userdata, g_bytes_new(payload, size));
        return 0;
}

static int on_snapshot(StoreWriter *w, void *userdata) {
        GPtrArray *state = userdata;
        int r;

        for (guint i = 0; i < state->len; i++) {
                gsize n;
                const void *p = g_bytes_get_data(state->pdata[i], &n);

                r = store_writer_add(w, p, n);
                if (r < 0)
                        return r;
        }
        return 0;
}

static GPtrArray *payloads_new(void) {
        return g_ptr_array_new_with_free_func((GDestroyNotify) g_bytes_unref);
}

static GBytes *payload_make(unsigned i) {
        g_autoptr(GByteArray) b = g_byte_array_new();

        record_begin(b, RECORD_JOB_NEW, i);
        record_put_str(b, 1, "type-name");
        record_put_u64(b, 2, (uint64_t) i * 7919);
        for (unsigned k = 0; k < i % 5; k++)
                record_put_str(b, 3, "some more bytes");
        return g_byte_array_free_to_bytes(g_steal_pointer(&b));
}

static void payloads_assert_equal(GPtrArray *a, GPtrArray *b) {
        g_assert_cmpuint(a->len, ==, b->len);
        for (guint i = 0; i < a->len; i++)
                g_assert_true(g_bytes_equal(a->pdata[i], b->pdata[i]));
}

/* Done callbacks record their results here, in call order. */
static void on_done(int error, void *userdata) {
        GArray *results = userdata;

        g_array_append_val(results, error);
}

static Store *store_make(Fixture *f, sd_event *event) {
        Store *s = NULL;

        g_assert_cmpint(store_new(&s, event, f->dir_fd), ==, 0);
        return s;
}

static Store *store_open_collect(Fixture *f, sd_event *event, GPtrArray *got, StoreReplayStats *stats) {
        Store *s = store_make(f, event);

        g_assert_cmpint(store_open(s, got ? on_replay_collect : NULL, got, stats), ==, 0);
        return s;
}

static void append_all(Store *s, GPtrArray *payloads, GArray *results) {
        for (guint i = 0; i < payloads->len; i++) {
                gsize n;
                const void *p = g_bytes_get_data(payloads->pdata[i], &n);

                g_assert_cmpint(store_append(s, p, n, results ? on_done : NULL, results), ==, 0);
        }
}

static void assert_results(GArray *results, guint n, int expected) {
        g_assert_cmpuint(results->len, ==, n);
        for (guint i = 0; i < n; i++)
                g_assert_cmpint(g_array_index(results, int, i), ==, expected);
}

static void test_create(Fixture *f, gconstpointer data) {
        g_autoptr(GPtrArray) got = payloads_new();
        g_autoptr(Store) s = NULL;
        StoreReplayStats stats;

        s = store_open_collect(f, NULL, got, &stats);
        g_assert_cmpuint(got->len, ==, 0);
        g_assert_cmpuint(stats.n_records, ==, 0);
        g_assert_cmpuint(stats.file_size, ==, RECORD_HEADER_SIZE);
        g_assert_cmpuint(stats.torn_offset, ==, UINT64_MAX);
        g_assert_cmpuint(stats.n_corrupt, ==, 0);
        g_assert_cmpuint(stats.first_corrupt_offset, ==, UINT64_MAX);
        g_assert_cmpuint(store_get_size(s), ==, RECORD_HEADER_SIZE);
        g_assert_cmpuint(fixture_size(f, "journal"), ==, RECORD_HEADER_SIZE);
        g_assert_false(fixture_exists(f, "journal.new"));
        g_assert_false(store_is_failed(s));
}

static void test_append_replay(Fixture *f, gconstpointer data) {
        g_autoptr(GPtrArray) in = payloads_new(), got = payloads_new();
        g_autoptr(GArray) results = g_array_new(FALSE, FALSE, sizeof(int));
        g_autoptr(Store) s = NULL;
        StoreReplayStats stats;
        uint64_t size;

        for (unsigned i = 0; i < 100; i++)
                g_ptr_array_add(in, payload_make(i));
        g_ptr_array_add(in, g_bytes_new(NULL, 0));      /* the store does not look inside */

        s = store_open_collect(f, NULL, got, NULL);
        append_all(s, in, results);
        g_assert_cmpuint(results->len, ==, 0);          /* nothing is durable before the flush */
        g_assert_cmpint(store_flush(s), ==, 0);
        assert_results(results, in->len, 0);
        g_assert_cmpuint(store_get_n_fsyncs(s), ==, 1);
        size = store_get_size(s);
        g_assert_cmpuint(size, ==, fixture_size(f, "journal"));
        g_assert_cmpint(store_flush(s), ==, 0);         /* nothing queued: no sync */
        g_assert_cmpuint(store_get_n_fsyncs(s), ==, 1);
        g_clear_pointer(&s, store_free);

        s = store_open_collect(f, NULL, got, &stats);
        payloads_assert_equal(in, got);
        g_assert_cmpuint(stats.n_records, ==, in->len);
        g_assert_cmpuint(stats.file_size, ==, size);
        g_assert_cmpuint(stats.torn_offset, ==, UINT64_MAX);
        g_assert_cmpuint(store_get_size(s), ==, size);
}

static void test_append_limits(Fixture *f, gconstpointer data) {
        g_autoptr(GArray) results = g_array_new(FALSE, FALSE, sizeof(int));
        g_autoptr(Store) s = store_make(f, NULL);
        g_autofree uint8_t *big = g_malloc0(RECORD_PAYLOAD_MAX + 1);

        g_assert_cmpint(store_append(s, "x", 1, on_done, results), ==, -EBADFD);      /* not open */
        g_assert_cmpint(store_open(s, NULL, NULL, NULL), ==, 0);
        g_assert_cmpint(store_append(s, big, RECORD_PAYLOAD_MAX + 1, on_done, results), ==, -E2BIG);
        g_assert_cmpint(store_flush(s), ==, 0);
        g_assert_cmpuint(results->len, ==, 0);
        g_assert_cmpuint(store_get_size(s), ==, RECORD_HEADER_SIZE);
}

static int on_replay_fail_second(const void *payload, size_t size, void *userdata) {
        unsigned *n = userdata;

        return ++*n == 2 ? -ENOTRECOVERABLE : 0;
}

static void test_replay_abort(Fixture *f, gconstpointer data) {
        g_autoptr(GPtrArray) in = payloads_new();
        g_autoptr(Store) s = store_open_collect(f, NULL, NULL, NULL);
        g_autoptr(GBytes) before = NULL, after = NULL;
        unsigned n = 0;

        for (unsigned i = 0; i < 3; i++)
                g_ptr_array_add(in, payload_make(i));
        append_all(s, in, NULL);
        g_assert_cmpint(store_flush(s), ==, 0);
        g_clear_pointer(&s, store_free);

        before = fixture_read(f, "journal");
        s = store_make(f, NULL);
        g_assert_cmpint(store_open(s, on_replay_fail_second, &n, NULL), ==, -ENOTRECOVERABLE);
        g_assert_cmpuint(n, ==, 2);
        g_assert_cmpint(store_append(s, "x", 1, NULL, NULL), ==, -EBADFD);
        after = fixture_read(f, "journal");
        g_assert_true(g_bytes_equal(before, after));
}

/* Writes n payloads, returning the file offsets where each record ends. */
static GArray *write_records(Fixture *f, GPtrArray *in, unsigned n) {
        g_autoptr(Store) s = store_open_collect(f, NULL, NULL, NULL);
        GArray *ends = g_array_new(FALSE, FALSE, sizeof(uint64_t));

        for (unsigned i = 0; i < n; i++) {
                gsize size;
                const void *p;
                uint64_t end;

                g_ptr_array_add(in, payload_make(i + 1));
                p = g_bytes_get_data(in->pdata[i], &size);
                g_assert_cmpint(store_append(s, p, size, NULL, NULL), ==, 0);
                g_assert_cmpint(store_flush(s), ==, 0);
                end = store_get_size(s);
                g_array_append_val(ends, end);
        }
        return ends;
}

static void test_torn_tail(Fixture *f, gconstpointer data) {
        g_autoptr(GPtrArray) in = payloads_new();
        g_autoptr(GArray) ends = write_records(f, in, 3);
        g_autoptr(GBytes) full = fixture_read(f, "journal");
        uint64_t prev_end = g_array_index(ends, uint64_t, 1), last_end = g_array_index(ends, uint64_t, 2);
        const uint8_t *bytes = g_bytes_get_data(full, NULL);

        g_assert_cmpuint(g_bytes_get_size(full), ==, last_end);

        for (uint64_t cut = prev_end; cut <= last_end; cut++) {
                g_autoptr(GPtrArray) got = payloads_new();
                g_autoptr(GBytes) extra = payload_make(1000);
                g_autoptr(Store) s = NULL;
                StoreReplayStats stats;
                gsize n;
                const void *p;
                bool torn = cut > prev_end && cut < last_end;

                fixture_write(f, "journal", bytes, cut);
                s = store_open_collect(f, NULL, got, &stats);

                g_assert_cmpuint(got->len, ==, cut == last_end ? 3 : 2);
                for (guint i = 0; i < got->len; i++)
                        g_assert_true(g_bytes_equal(got->pdata[i], in->pdata[i]));
                g_assert_cmpuint(stats.file_size, ==, cut);
                g_assert_cmpuint(stats.torn_offset, ==, torn ? prev_end : UINT64_MAX);
                g_assert_cmpuint(stats.n_corrupt, ==, 0);
                g_assert_cmpuint(fixture_size(f, "journal"), ==, torn ? prev_end : cut);
                g_assert_cmpuint(store_get_size(s), ==, torn ? prev_end : cut);

                /* appending after the cut works and replays */
                p = g_bytes_get_data(extra, &n);
                g_assert_cmpint(store_append(s, p, n, NULL, NULL), ==, 0);
                g_assert_cmpint(store_flush(s), ==, 0);
                g_clear_pointer(&s, store_free);

                g_ptr_array_set_size(got, 0);
                s = store_open_collect(f, NULL, got, &stats);
                g_assert_cmpuint(got->len, ==, cut == last_end ? 4 : 3);
                g_assert_true(g_bytes_equal(got->pdata[got->len - 1], extra));
                g_assert_cmpuint(stats.torn_offset, ==, UINT64_MAX);
        }
}

/* Flips one byte of the middle of three records and replays, with and without a snapshot. */
static void check_corrupt_middle(Fixture *f, size_t byte_in_frame, bool with_snapshot) {
        g_autoptr(GPtrArray) in = payloads_new(), got = payloads_new();
        g_autoptr(GArray) ends = write_records(f, in, 3);
        g_autoptr(GBytes) full = fixture_read(f, "journal"), damaged = NULL, kept = NULL;
        uint64_t mid = g_array_index(ends, uint64_t, 0);
        g_autofree uint8_t *bytes = g_memdup2(g_bytes_get_data(full, NULL), g_bytes_get_size(full));
        g_autoptr(Store) s = NULL;
        StoreReplayStats stats;

        bytes[mid + byte_in_frame] ^= 0x5a;
        fixture_write(f, "journal", bytes, g_bytes_get_size(full));
        damaged = fixture_read(f, "journal");

        s = store_make(f, NULL);
        if (with_snapshot)
                store_set_snapshot_fn(s, on_snapshot, got);     /* the state is what replay rebuilt */
        g_assert_cmpint(store_open(s, on_replay_collect, got, &stats), ==, 0);

        g_assert_cmpuint(got->len, ==, 2);
        g_assert_true(g_bytes_equal(got->pdata[0], in->pdata[0]));
        g_assert_true(g_bytes_equal(got->pdata[1], in->pdata[2]));
        g_assert_cmpuint(stats.n_records, ==, 2);
        g_assert_cmpuint(stats.n_corrupt, ==, 1);
        g_assert_cmpuint(stats.first_corrupt_offset, ==, mid);
        g_assert_cmpuint(stats.torn_offset, ==, UINT64_MAX);
        g_assert_cmpuint(stats.file_size, ==, g_bytes_get_size(full));
        g_assert_false(fixture_exists(f, "journal.new"));

        if (with_snapshot) {
                /* the damaged file is kept as evidence; the journal is a clean rewrite */
                kept = fixture_read(f, "journal.corrupt");
                g_assert_true(g_bytes_equal(kept, damaged));
                g_assert_cmpuint(store_get_size(s), <, g_bytes_get_size(full));
        } else {
                g_assert_false(fixture_exists(f, "journal.corrupt"));
                g_assert_cmpuint(store_get_size(s), ==, g_bytes_get_size(full));
        }

        /* either way the store goes on */
        g_assert_cmpint(store_append(s, "after", 5, NULL, NULL), ==, 0);
        g_assert_cmpint(store_flush(s), ==, 0);
        g_clear_pointer(&s, store_free);

        g_ptr_array_set_size(got, 0);
        s = store_open_collect(f, NULL, got, &stats);
        g_assert_cmpuint(got->len, ==, 3);
        g_assert_true(g_bytes_equal(got->pdata[0], in->pdata[0]));
        g_assert_true(g_bytes_equal(got->pdata[1], in->pdata[2]));
        g_assert_cmpmem(g_bytes_get_data(got->pdata[2], NULL), g_bytes_get_size(got->pdata[2]), "after", 5);
        g_assert_cmpuint(stats.n_corrupt, ==, with_snapshot ? 0 : 1);
        g_assert_cmpuint(stats.first_corrupt_offset, ==, with_snapshot ? UINT64_MAX : mid);
}

static void test_corrupt_middle_payload(Fixture *f, gconstpointer data) {
        check_corrupt_middle(f, RECORD_FRAME_OVERHEAD + 3, true);
}

static void test_corrupt_middle_crc(Fixture *f, gconstpointer data) {
        check_corrupt_middle(f, 5, true);
}

/* A size field damaged beyond the format's limit is not believed: the scan goes byte by byte. */
static void test_corrupt_middle_size(Fixture *f, gconstpointer data) {
        check_corrupt_middle(f, 3, true);
}

/* A size field damaged into a plausible size that runs past EOF: not a torn tail, the frames
 * after it are still there and are found. */
static void test_corrupt_middle_size_past_eof(Fixture *f, gconstpointer data) {
        check_corrupt_middle(f, 2, true);
}

static void test_corrupt_middle_no_snapshot(Fixture *f, gconstpointer data) {
        check_corrupt_middle(f, RECORD_FRAME_OVERHEAD + 3, false);
}

static void check_bad_header(Fixture *f, const void *bytes, size_t size, int expected) {
        g_autoptr(Store) s = store_make(f, NULL);
        g_autoptr(GBytes) after = NULL;
        unsigned n = 0;

        fixture_write(f, "journal", bytes, size);
        fixture_write(f, "journal.new", "leftover", 8);
        g_assert_cmpint(store_open(s, on_replay_fail_second, &n, NULL), ==, expected);
        g_assert_cmpuint(n, ==, 0);
        after = fixture_read(f, "journal");
        g_assert_cmpmem(g_bytes_get_data(after, NULL), g_bytes_get_size(after), bytes, size);
        g_assert_true(fixture_exists(f, "journal.new"));         /* not ours to clean up either */
        g_assert_cmpint(store_append(s, "x", 1, NULL, NULL), ==, -EBADFD);
}

static void test_bad_header(Fixture *f, gconstpointer data) {
        g_autoptr(GByteArray) b = g_byte_array_new();
        uint8_t h[RECORD_HEADER_SIZE];

        record_header_write(h, 0x5a17u);
        g_byte_array_append(b, h, sizeof(h));
        record_frame_append(b, 0x5a17u, "payload", 7);

        b->data[0] = 'X';
        check_bad_header(f, b->data, b->len, -EBADMSG);
        b->data[0] = 'J';
        b->data[8] = 2;
        check_bad_header(f, b->data, b->len, -EPROTONOSUPPORT);
        check_bad_header(f, h, 10, -EBADMSG);
        check_bad_header(f, "", 0, -EBADMSG);
}

static void test_compact(Fixture *f, gconstpointer data) {
        g_autoptr(GPtrArray) state = payloads_new(), got = payloads_new(), in = payloads_new();
        g_autoptr(Store) s = NULL;
        g_autoptr(GBytes) extra = payload_make(77);
        StoreReplayStats stats;
        uint64_t before;
        gsize n;
        const void *p;

        /* a leftover from a compaction that died before its rename is removed at open */
        fixture_write(f, "journal.new", "half a snapshot", 15);

        s = store_open_collect(f, NULL, got, NULL);
        g_assert_false(fixture_exists(f, "journal.new"));
        g_assert_cmpint(store_compact(s), ==, -EOPNOTSUPP);

        for (unsigned i = 0; i < 200; i++)
                g_ptr_array_add(in, payload_make(i));
        append_all(s, in, NULL);
        g_assert_cmpint(store_flush(s), ==, 0);
        before = store_get_size(s);

        for (unsigned i = 0; i < 3; i++)
                g_ptr_array_add(state, payload_make(500 + i));
        store_set_snapshot_fn(s, on_snapshot, state);
        g_assert_cmpint(store_compact(s), ==, 0);
        g_assert_cmpuint(store_get_size(s), <, before);
        g_assert_cmpuint(store_get_size(s), ==, fixture_size(f, "journal"));
        g_assert_false(fixture_exists(f, "journal.new"));

        p = g_bytes_get_data(extra, &n);
        g_assert_cmpint(store_append(s, p, n, NULL, NULL), ==, 0);
        g_assert_cmpint(store_flush(s), ==, 0);
        g_clear_pointer(&s, store_free);

        g_ptr_array_set_size(got, 0);
        s = store_open_collect(f, NULL, got, &stats);
        g_ptr_array_add(state, g_bytes_ref(extra));
        payloads_assert_equal(state, got);
        g_assert_cmpuint(stats.n_corrupt, ==, 0);
        g_assert_cmpuint(stats.torn_offset, ==, UINT64_MAX);
}

static int on_snapshot_fail(StoreWriter *w, void *userdata) {
        (void) store_writer_add(w, "partial", 7);
        return -ENOSPC;
}

static void test_compact_snapshot_fails(Fixture *f, gconstpointer data) {
        g_autoptr(GPtrArray) in = payloads_new(), got = payloads_new();
        g_autoptr(Store) s = store_open_collect(f, NULL, got, NULL);
        g_autoptr(GBytes) before = NULL, after = NULL;

        for (unsigned i = 0; i < 5; i++)
                g_ptr_array_add(in, payload_make(i));
        append_all(s, in, NULL);
        g_assert_cmpint(store_flush(s), ==, 0);
        before = fixture_read(f, "journal");

        /* a snapshot that cannot be written leaves the old journal in charge, untouched */
        store_set_snapshot_fn(s, on_snapshot_fail, NULL);
        g_assert_cmpint(store_compact(s), ==, -ENOSPC);
        g_assert_false(store_is_failed(s));
        g_assert_false(fixture_exists(f, "journal.new"));
        after = fixture_read(f, "journal");
        g_assert_true(g_bytes_equal(before, after));

        g_assert_cmpint(store_append(s, "more", 4, NULL, NULL), ==, 0);
        g_assert_cmpint(store_flush(s), ==, 0);
        g_clear_pointer(&s, store_free);
        s = store_open_collect(f, NULL, got, NULL);
        g_assert_cmpuint(got->len, ==, 6);
}

static void test_compact_automatic(Fixture *f, gconstpointer data) {
        g_autoptr(GPtrArray) state = payloads_new(), got = payloads_new();
        g_autoptr(Store) s = store_open_collect(f, NULL, got, NULL);
        uint64_t max_size = 0;
        unsigned n_shrinks = 0;

        /* the state stays at 4 records; every append replaces one of them */
        for (unsigned i = 0; i < 4; i++)
                g_ptr_array_add(state, payload_make(i));
        store_set_snapshot_fn(s, on_snapshot, state);
        store_set_compaction(s, 2048, 2);

        for (unsigned i = 0; i < 400; i++) {
                g_autoptr(GBytes) b = payload_make(i);
                uint64_t size = store_get_size(s);
                gsize n;
                const void *p = g_bytes_get_data(b, &n);

                g_bytes_unref(state->pdata[i % 4]);
                state->pdata[i % 4] = g_bytes_ref(b);
                g_assert_cmpint(store_append(s, p, n, NULL, NULL), ==, 0);
                g_assert_cmpint(store_flush(s), ==, 0);
                if (store_get_size(s) < size)
                        n_shrinks++;
                max_size = MAX(max_size, store_get_size(s));
                g_assert_false(fixture_exists(f, "journal.new"));
        }

        g_assert_cmpuint(n_shrinks, >, 5);
        g_assert_cmpuint(max_size, <=, 2048 + 200);
        g_clear_pointer(&s, store_free);

        /* what replays is a snapshot plus the appends after it; the last four are the state */
        s = store_open_collect(f, NULL, got, NULL);
        g_assert_cmpuint(got->len, >=, 4);
        for (guint i = 0; i < 4; i++)
                g_assert_true(g_bytes_equal(got->pdata[got->len - 4 + i], state->pdata[(400 - 4 + i) % 4]));
}

/* The compaction in a child, held at a gate: two FIFOs, so the test knows the child is inside the
 * snapshot callback and decides when (and whether) it goes on. The test holds both open for
 * reading and writing, so no open() in the child blocks; the child reopens them by name, its
 * inherited fds are closed. The state is assignment-like: one payload "k<key> v<value>" per key,
 * the last one appended wins, so records that land both in the snapshot and in the copied tail
 * replay to the same state. */
#define GATE_KEYS 8u

typedef struct Gate {
        char *ready_path, *go_path;
        int ready_fd, go_fd;
        GPtrArray *state;               /* GATE_KEYS payloads, the latest of each key */
        unsigned n_appended;
} Gate;

static void gate_init(Gate *g, Fixture *f) {
        *g = (Gate) { .ready_path = fixture_file(f, "gate-ready"), .go_path = fixture_file(f, "gate-go") };

        g_assert_cmpint(mkfifo(g->ready_path, 0600), ==, 0);
        g_assert_cmpint(mkfifo(g->go_path, 0600), ==, 0);
        g->ready_fd = open(g->ready_path, O_RDWR|O_CLOEXEC);
        g->go_fd = open(g->go_path, O_RDWR|O_CLOEXEC);
        g_assert_cmpint(g->ready_fd, >=, 0);
        g_assert_cmpint(g->go_fd, >=, 0);
        g->state = payloads_new();
        for (unsigned k = 0; k < GATE_KEYS; k++)
                g_ptr_array_add(g->state, g_bytes_new_take(g_strdup_printf("k%u none", k), 7));
}

static void gate_clear(Gate *g) {
        close(g->ready_fd);
        close(g->go_fd);
        g_assert_cmpint(unlink(g->ready_path), ==, 0);
        g_assert_cmpint(unlink(g->go_path), ==, 0);
        g_free(g->ready_path);
        g_free(g->go_path);
        g_ptr_array_unref(g->state);
}

/* Runs in the compaction child. */
static int on_snapshot_gated(StoreWriter *w, void *userdata) {
        Gate *g = userdata;
        char c = 0;
        int fd;

        fd = open(g->ready_path, O_WRONLY|O_CLOEXEC);
        if (fd < 0 || write(fd, "r", 1) != 1)
                return -EIO;
        close(fd);
        fd = open(g->go_path, O_RDONLY|O_CLOEXEC);
        if (fd < 0 || read(fd, &c, 1) != 1)
                return -EIO;
        close(fd);
        if (c != 'g')
                return -ENOSPC;
        return on_snapshot(w, g->state);
}

static void gate_append(Gate *g, Store *s) {
        unsigned k = g->n_appended % GATE_KEYS;
        g_autofree char *p = g_strdup_printf("k%u v%06u and some padding to grow", k, g->n_appended++);

        g_bytes_unref(g->state->pdata[k]);
        g->state->pdata[k] = g_bytes_new(p, strlen(p));
        g_assert_cmpint(store_append(s, p, strlen(p), NULL, NULL), ==, 0);
        g_assert_cmpint(store_flush(s), ==, 0);
}

/* Appends until a commit forks the compaction, then waits until the child is at the gate. */
static void gate_start(Gate *g, Store *s) {
        char c;

        store_set_snapshot_fn(s, on_snapshot_gated, g);
        store_set_compaction(s, 4096, 2);
        while (!store_is_compacting(s)) {
                g_assert_cmpuint(g->n_appended, <, 1000);
                gate_append(g, s);
        }
        g_assert_cmpint(read(g->ready_fd, &c, 1), ==, 1);
}

static void gate_release(Gate *g, sd_event *event, Store *s, char c) {
        g_assert_cmpint(write(g->go_fd, &c, 1), ==, 1);
        while (store_is_compacting(s))
                g_assert_cmpint(sd_event_run(event, UINT64_MAX), >=, 0);
}

/* The state a replay converges to: the last payload of each key, as in Gate.state. */
static int on_replay_assign(const void *payload, size_t size, void *userdata) {
        GPtrArray *state = userdata;
        unsigned k;

        g_assert_cmpuint(size, >, 1);
        k = (unsigned) strtoul((const char *) payload + 1, NULL, 10);
        g_assert_cmpuint(k, <, state->len);
        g_bytes_unref(state->pdata[k]);
        state->pdata[k] = g_bytes_new(payload, size);
        return 0;
}

static void gate_assert_replays(Gate *g, Fixture *f) {
        g_autoptr(GPtrArray) got = payloads_new();
        g_autoptr(Store) s = store_make(f, NULL);

        for (unsigned k = 0; k < GATE_KEYS; k++)
                g_ptr_array_add(got, g_bytes_new_take(g_strdup_printf("k%u none", k), 7));
        g_assert_cmpint(store_open(s, on_replay_assign, got, NULL), ==, 0);
        payloads_assert_equal(g->state, got);
}

/* A store on a loop with a compaction child waiting at the gate. */
static Store *gate_begin(Gate *g, Fixture *f, sd_event **ret_event) {
        Store *s;

        gate_init(g, f);
        g_assert_cmpint(sd_event_new(ret_event), >=, 0);
        s = store_open_collect(f, *ret_event, NULL, NULL);
        gate_start(g, s);
        return s;
}

static void assert_no_child(void) {
        g_assert_cmpint(waitid(P_ALL, 0, &(siginfo_t) {}, WEXITED | WNOHANG), <, 0);
        g_assert_cmpint(errno, ==, ECHILD);
}

/* After the store was freed: no child left behind, and the journal replays to the state. */
static void gate_end(Gate *g, Fixture *f) {
        assert_no_child();
        g_assert_false(fixture_exists(f, "journal.new"));
        gate_assert_replays(g, f);
        gate_clear(g);
}

/* Appends go on while the child writes; the tail written meanwhile is copied behind its
 * snapshot, and the file that replaces the journal replays to the same state. */
static void test_compact_background(Fixture *f, gconstpointer data) {
        g_autoptr(sd_event) event = NULL;
        g_autoptr(Store) s = NULL;
        uint64_t size_before;
        Gate g;

        s = gate_begin(&g, f, &event);

        for (unsigned i = 0; i < 50; i++)
                gate_append(&g, s);
        g_assert_true(store_is_compacting(s));
        g_assert_true(fixture_exists(f, "journal.new"));
        size_before = fixture_size(f, "journal");
        g_assert_cmpuint(size_before, ==, store_get_size(s));

        gate_release(&g, event, s, 'g');
        g_assert_false(store_is_failed(s));
        g_assert_false(fixture_exists(f, "journal.new"));
        g_assert_cmpuint(fixture_size(f, "journal"), ==, store_get_size(s));
        g_assert_cmpuint(store_get_size(s), <, size_before);

        /* the new file takes appends */
        for (unsigned i = 0; i < 5; i++)
                gate_append(&g, s);
        g_assert_cmpuint(fixture_size(f, "journal"), ==, store_get_size(s));
        g_clear_pointer(&s, store_free);
        gate_end(&g, f);
}

/* A child that fails leaves the old journal, with what was appended meanwhile, in charge. */
static void test_compact_background_fails(Fixture *f, gconstpointer data) {
        g_autoptr(sd_event) event = NULL;
        g_autoptr(Store) s = NULL;
        g_autoptr(GBytes) before = NULL, after = NULL;
        Gate g;

        s = gate_begin(&g, f, &event);
        for (unsigned i = 0; i < 10; i++)
                gate_append(&g, s);
        before = fixture_read(f, "journal");

        gate_release(&g, event, s, 'f');
        g_assert_false(store_is_failed(s));
        g_assert_false(fixture_exists(f, "journal.new"));
        after = fixture_read(f, "journal");
        g_assert_true(g_bytes_equal(before, after));

        /* still appending to the old file; no new attempt at once */
        gate_append(&g, s);
        g_assert_false(store_is_compacting(s));
        g_assert_cmpuint(fixture_size(f, "journal"), ==, store_get_size(s));
        g_clear_pointer(&s, store_free);
        gate_end(&g, f);
}

/* Freed while the child writes: it is killed and reaped, its file removed. */
static void test_compact_background_free(Fixture *f, gconstpointer data) {
        g_autoptr(sd_event) event = NULL;
        g_autoptr(Store) s = NULL;
        Gate g;

        s = gate_begin(&g, f, &event);
        g_assert_true(fixture_exists(f, "journal.new"));

        g_clear_pointer(&s, store_free);
        gate_end(&g, f);
}

/* An explicit compaction while the child runs replaces it: never two at once. */
static void test_compact_background_explicit(Fixture *f, gconstpointer data) {
        g_autoptr(sd_event) event = NULL;
        g_autoptr(Store) s = NULL;
        Gate g;

        s = gate_begin(&g, f, &event);

        store_set_snapshot_fn(s, on_snapshot, g.state);
        g_assert_cmpint(store_compact(s), ==, 0);
        g_assert_false(store_is_compacting(s));
        g_assert_false(fixture_exists(f, "journal.new"));
        assert_no_child();
        g_assert_cmpint(sd_event_run(event, 0), >=, 0);
        g_assert_cmpuint(fixture_size(f, "journal"), ==, store_get_size(s));
        g_clear_pointer(&s, store_free);
        gate_end(&g, f);
}

static void test_group_commit(Fixture *f, gconstpointer data) {
        g_autoptr(GArray) results = g_array_new(FALSE, FALSE, sizeof(int));
        g_autoptr(GPtrArray) in = payloads_new(), got = payloads_new();
        g_autoptr(sd_event) event = NULL;
        g_autoptr(Store) s = NULL;
        uint64_t n_fsyncs;

        g_assert_cmpint(sd_event_new(&event), >=, 0);
        s = store_open_collect(f, event, got, NULL);
        n_fsyncs = store_get_n_fsyncs(s);

        for (unsigned i = 0; i < 32; i++)
                g_ptr_array_add(in, payload_make(i));
        append_all(s, in, results);
        g_assert_cmpuint(results->len, ==, 0);

        g_assert_cmpint(sd_event_run(event, 0), >, 0);
        assert_results(results, 32, 0);
        g_assert_cmpuint(store_get_n_fsyncs(s), ==, n_fsyncs + 1);

        /* nothing queued, nothing to do */
        g_assert_cmpint(sd_event_run(event, 0), ==, 0);
        g_assert_cmpuint(store_get_n_fsyncs(s), ==, n_fsyncs + 1);
        g_clear_pointer(&s, store_free);

        s = store_open_collect(f, NULL, got, NULL);
        payloads_assert_equal(in, got);
}

/* A lazy append waits for the next regular one and shares its fsync, in append order; alone,
 * it is committed when its time is up. */
static void test_lazy_append(Fixture *f, gconstpointer data) {
        g_autoptr(GArray) results = g_array_new(FALSE, FALSE, sizeof(int));
        g_autoptr(GPtrArray) in = payloads_new(), got = payloads_new();
        g_autoptr(sd_event) event = NULL;
        g_autoptr(Store) s = NULL;
        uint64_t n_fsyncs;
        gsize n;
        const void *p;

        g_assert_cmpint(sd_event_new(&event), >=, 0);
        s = store_open_collect(f, event, got, NULL);
        n_fsyncs = store_get_n_fsyncs(s);
        for (unsigned i = 0; i < 3; i++)
                g_ptr_array_add(in, payload_make(i));

        p = g_bytes_get_data(in->pdata[0], &n);
        g_assert_cmpint(store_append_lazy(s, p, n, 60 * G_USEC_PER_SEC, on_done, results), ==, 0);
        /* nothing is due: the loop has nothing to do now */
        g_assert_cmpint(sd_event_run(event, 0), ==, 0);
        g_assert_cmpuint(results->len, ==, 0);
        g_assert_cmpuint(store_get_n_fsyncs(s), ==, n_fsyncs);

        p = g_bytes_get_data(in->pdata[1], &n);
        g_assert_cmpint(store_append(s, p, n, on_done, results), ==, 0);
        g_assert_cmpint(sd_event_run(event, 0), >, 0);
        assert_results(results, 2, 0);
        g_assert_cmpuint(store_get_n_fsyncs(s), ==, n_fsyncs + 1);

        /* alone: committed once its 1 ms are up, by the loop, without another append */
        p = g_bytes_get_data(in->pdata[2], &n);
        g_assert_cmpint(store_append_lazy(s, p, n, 1000, on_done, results), ==, 0);
        while (results->len < 3)
                g_assert_cmpint(sd_event_run(event, 5 * G_USEC_PER_SEC), >, 0);
        assert_results(results, 3, 0);
        g_assert_cmpuint(store_get_n_fsyncs(s), ==, n_fsyncs + 2);
        g_clear_pointer(&s, store_free);

        s = store_open_collect(f, NULL, got, NULL);
        payloads_assert_equal(in, got);
}

static void test_batch_max(Fixture *f, gconstpointer data) {
        g_autoptr(GArray) results = g_array_new(FALSE, FALSE, sizeof(int));
        g_autoptr(GPtrArray) in = payloads_new(), got = payloads_new();
        g_autoptr(sd_event) event = NULL;
        g_autoptr(Store) s = NULL;
        static const guint after_run[] = { 4, 8, 10 };

        g_assert_cmpint(sd_event_new(&event), >=, 0);
        s = store_open_collect(f, event, got, NULL);
        store_set_batch_max(s, 4);

        for (unsigned i = 0; i < 10; i++)
                g_ptr_array_add(in, payload_make(i));
        append_all(s, in, results);

        for (size_t i = 0; i < G_N_ELEMENTS(after_run); i++) {
                g_assert_cmpint(sd_event_run(event, 0), >, 0);
                assert_results(results, after_run[i], 0);
                g_assert_cmpuint(store_get_n_fsyncs(s), ==, i + 1);
        }
        g_assert_cmpint(sd_event_run(event, 0), ==, 0);
        g_assert_cmpuint(store_get_n_fsyncs(s), ==, 3);

        /* store_flush() obeys the same cap */
        g_array_set_size(results, 0);
        append_all(s, in, results);
        g_assert_cmpint(store_flush(s), ==, 0);
        assert_results(results, 10, 0);
        g_assert_cmpuint(store_get_n_fsyncs(s), ==, 6);
        g_assert_cmpint(sd_event_run(event, 0), ==, 0);
}

/* Fault injection. The counters are global: StoreIO has no userdata. */
static unsigned io_n_writes, io_n_fsyncs;
static size_t io_fail_write_after;     /* bytes that succeed before writes fail */
static bool io_fail_fsync;
static bool io_lie;                     /* writes report success and write nothing */

static void io_reset(void) {
        io_n_writes = io_n_fsyncs = 0;
        io_fail_write_after = SIZE_MAX;
        io_fail_fsync = false;
        io_lie = false;
}

static ssize_t io_write(int fd, const void *buf, size_t size) {
        io_n_writes++;
        if (io_lie)
                return (ssize_t) size;
        if (io_fail_write_after == 0) {
                errno = ENOSPC;
                return -1;
        }
        size = MIN(size, io_fail_write_after);
        if (io_fail_write_after != SIZE_MAX)
                io_fail_write_after -= size;
        return write(fd, buf, size);
}

static int io_fsync(int fd) {
        io_n_fsyncs++;
        if (io_fail_fsync) {
                errno = EIO;
                return -1;
        }
        return fdatasync(fd);
}

static const StoreIO io_faulty = {
        .write = io_write,
        .fsync = io_fsync,
};

/* Both failure kinds: a sync that fails, or a write that stops half way. */
static void check_io_failure(Fixture *f, bool fail_fsync) {
        g_autoptr(GArray) results = g_array_new(FALSE, FALSE, sizeof(int));
        g_autoptr(GPtrArray) durable = payloads_new(), state = payloads_new();
        g_autoptr(GPtrArray) failed = payloads_new(), later = payloads_new(), got = payloads_new();
        g_autoptr(sd_event) event = NULL;
        g_autoptr(Store) s = NULL;
        int expected = fail_fsync ? -EIO : -ENOSPC;

        io_reset();
        g_assert_cmpint(sd_event_new(&event), >=, 0);
        s = store_open_collect(f, event, got, NULL);
        store_set_io(s, &io_faulty);
        store_set_batch_max(s, 2);

        for (unsigned i = 0; i < 3; i++)
                g_ptr_array_add(durable, payload_make(i));
        append_all(s, durable, NULL);
        g_assert_cmpint(store_flush(s), ==, 0);

        /* three queued, batch cap two: the first batch fails, the third append is answered too */
        if (fail_fsync)
                io_fail_fsync = true;
        else
                io_fail_write_after = RECORD_FRAME_OVERHEAD + 5;       /* into the first frame */
        for (unsigned i = 10; i < 13; i++)
                g_ptr_array_add(failed, payload_make(i));
        append_all(s, failed, results);
        g_assert_cmpint(sd_event_run(event, 0), >, 0);
        assert_results(results, 3, expected);
        g_assert_true(store_is_failed(s));
        g_assert_cmpint(store_append(s, "x", 1, on_done, results), ==, -EROFS);
        g_assert_cmpint(store_flush(s), ==, -EROFS);
        g_assert_cmpuint(results->len, ==, 3);
        g_assert_cmpuint(store_get_n_fsyncs(s), ==, 2);         /* the two batches of the three durable */

        /* a failed write or sync is never retried on the same data */
        {
                unsigned w = io_n_writes, y = io_n_fsyncs;

                g_assert_cmpint(sd_event_run(event, 0), ==, 0);
                g_assert_cmpuint(io_n_writes, ==, w);
                g_assert_cmpuint(io_n_fsyncs, ==, y);
        }

        /* the owner's state: the durable records and one that the snapshot has although its
         * append failed (the owner decides that, not the store) */
        for (guint i = 0; i < durable->len; i++)
                g_ptr_array_add(state, g_bytes_ref(durable->pdata[i]));
        g_ptr_array_add(state, g_bytes_ref(failed->pdata[1]));
        store_set_snapshot_fn(s, on_snapshot, state);

        /* still broken: the rewrite fails too and changes nothing */
        g_assert_cmpint(store_compact(s), ==, expected);
        g_assert_true(store_is_failed(s));
        g_assert_false(fixture_exists(f, "journal.new"));

        store_set_io(s, NULL);
        g_assert_cmpint(store_compact(s), ==, 0);
        g_assert_false(store_is_failed(s));
        g_assert_false(fixture_exists(f, "journal.new"));

        g_array_set_size(results, 0);
        for (unsigned i = 20; i < 22; i++)
                g_ptr_array_add(later, payload_make(i));
        append_all(s, later, results);
        g_assert_cmpint(sd_event_run(event, 0), >, 0);
        assert_results(results, 2, 0);
        g_clear_pointer(&s, store_free);

        s = store_open_collect(f, NULL, got, NULL);
        for (guint i = 0; i < later->len; i++)
                g_ptr_array_add(state, g_bytes_ref(later->pdata[i]));
        payloads_assert_equal(state, got);
}

static void test_fsync_fails(Fixture *f, gconstpointer data) {
        check_io_failure(f, true);
}

static void test_write_fails_half_way(Fixture *f, gconstpointer data) {
        check_io_failure(f, false);
}

/* The rewrite is read back before it replaces anything: a write that lied is caught there. */
static void test_compact_verify_fails(Fixture *f, gconstpointer data) {
        g_autoptr(GPtrArray) state = payloads_new(), got = payloads_new();
        g_autoptr(Store) s = store_open_collect(f, NULL, NULL, NULL);
        g_autoptr(GBytes) before = NULL, after = NULL;

        for (unsigned i = 0; i < 4; i++)
                g_ptr_array_add(state, payload_make(i));
        append_all(s, state, NULL);
        g_assert_cmpint(store_flush(s), ==, 0);
        before = fixture_read(f, "journal");

        io_reset();
        io_lie = true;
        store_set_io(s, &io_faulty);
        store_set_snapshot_fn(s, on_snapshot, state);
        g_assert_cmpint(store_compact(s), ==, -EIO);
        g_assert_cmpuint(io_n_fsyncs, ==, 1);
        g_assert_false(store_is_failed(s));
        g_assert_false(fixture_exists(f, "journal.new"));
        after = fixture_read(f, "journal");
        g_assert_true(g_bytes_equal(before, after));
        g_clear_pointer(&s, store_free);

        s = store_open_collect(f, NULL, got, NULL);
        payloads_assert_equal(state, got);
}

static void test_failed_without_loop(Fixture *f, gconstpointer data) {
        g_autoptr(GArray) results = g_array_new(FALSE, FALSE, sizeof(int));
        g_autoptr(Store) s = store_open_collect(f, NULL, NULL, NULL);

        io_reset();
        io_fail_fsync = true;
        store_set_io(s, &io_faulty);
        g_assert_cmpint(store_append(s, "a", 1, on_done, results), ==, 0);
        g_assert_cmpint(store_append(s, "b", 1, on_done, results), ==, 0);
        g_assert_cmpint(store_flush(s), ==, -EIO);
        assert_results(results, 2, -EIO);
        g_assert_true(store_is_failed(s));
        /* without a snapshot function nothing can bring it back */
        g_assert_cmpint(store_compact(s), ==, -EOPNOTSUPP);
        g_assert_true(store_is_failed(s));
}

/* After a failure the store schedules the rewrite itself, the first attempt after a second. */
static void test_retry_timer(Fixture *f, gconstpointer data) {
        g_autoptr(GArray) results = g_array_new(FALSE, FALSE, sizeof(int));
        g_autoptr(GPtrArray) state = payloads_new(), got = payloads_new();
        g_autoptr(sd_event) event = NULL;
        g_autoptr(Store) s = NULL;
        gint64 start;

        io_reset();
        g_assert_cmpint(sd_event_new(&event), >=, 0);
        s = store_open_collect(f, event, got, NULL);
        store_set_snapshot_fn(s, on_snapshot, state);
        g_ptr_array_add(state, payload_make(1));

        io_fail_fsync = true;
        store_set_io(s, &io_faulty);
        g_assert_cmpint(store_append(s, "a", 1, on_done, results), ==, 0);
        g_assert_cmpint(sd_event_run(event, 0), >, 0);
        assert_results(results, 1, -EIO);
        g_assert_true(store_is_failed(s));

        io_fail_fsync = false;
        start = g_get_monotonic_time();
        while (store_is_failed(s) && g_get_monotonic_time() - start < 5 * G_USEC_PER_SEC)
                g_assert_cmpint(sd_event_run(event, 5 * G_USEC_PER_SEC), >=, 0);
        g_assert_false(store_is_failed(s));
        g_assert_cmpint(g_get_monotonic_time() - start, >=, G_USEC_PER_SEC / 2);
        g_clear_pointer(&s, store_free);

        s = store_open_collect(f, NULL, got, NULL);
        payloads_assert_equal(state, got);
}

static void test_free_answers_pending(Fixture *f, gconstpointer data) {
        g_autoptr(GArray) results = g_array_new(FALSE, FALSE, sizeof(int));
        Store *s = store_open_collect(f, NULL, NULL, NULL);

        g_assert_cmpint(store_append(s, "a", 1, on_done, results), ==, 0);
        g_assert_cmpint(store_append(s, "b", 1, on_done, results), ==, 0);
        store_free(s);
        assert_results(results, 2, -ECANCELED);
}

/* Done callbacks may append; those wait for the next round. */
typedef struct Chain {
        Store *store;
        GArray *results;
        unsigned n_left;
} Chain;

static void on_done_chain(int error, void *userdata) {
        Chain *c = userdata;

        g_array_append_val(c->results, error);
        if (c->n_left > 0) {
                c->n_left--;
                g_assert_cmpint(store_append(c->store, "again", 5, on_done_chain, c), ==, 0);
        }
}

static void test_append_from_callback(Fixture *f, gconstpointer data) {
        g_autoptr(GArray) results = g_array_new(FALSE, FALSE, sizeof(int));
        g_autoptr(sd_event) event = NULL;
        g_autoptr(Store) s = NULL;
        Chain c = { .results = results, .n_left = 2 };

        g_assert_cmpint(sd_event_new(&event), >=, 0);
        s = store_open_collect(f, event, NULL, NULL);
        c.store = s;

        g_assert_cmpint(store_append(s, "first", 5, on_done_chain, &c), ==, 0);
        for (unsigned i = 1; i <= 3; i++) {
                g_assert_cmpint(sd_event_run(event, 0), >, 0);
                assert_results(results, i, 0);
        }
        g_assert_cmpint(sd_event_run(event, 0), ==, 0);
        g_assert_cmpuint(store_get_n_fsyncs(s), ==, 3);
}

/* Not run by default (-m perf): a million ~60 byte records, written once, replayed and timed. */
static int on_replay_read(const void *payload, size_t size, void *userdata) {
        uint64_t *sum = userdata;
        RecordReader r;
        RecordField f;
        int k;

        if (record_reader_init(&r, payload, size) < 0)
                return -EBADMSG;
        while ((k = record_reader_next(&r, &f)) > 0)
                *sum += f.u64;
        return k;
}

static void test_perf_replay(Fixture *f, gconstpointer data) {
        g_autoptr(GByteArray) file = g_byte_array_new(), payload = g_byte_array_new();
        g_autoptr(Store) s = NULL;
        uint8_t h[RECORD_HEADER_SIZE];
        StoreReplayStats stats;
        uint64_t sum = 0;
        gint64 start;
        double ms;

        record_header_write(h, 0x5a17u);
        g_byte_array_append(file, h, sizeof(h));
        for (unsigned i = 0; i < 1000000; i++) {
                g_byte_array_set_size(payload, 0);
                record_begin(payload, RECORD_JOB_UPDATE, 1000000 + i);
                record_put_str(payload, 1, "status-running-on-node-x");
                record_put_u64(payload, 2, i);
                record_put_i64(payload, 3, -(int64_t) i);
                record_put_u64(payload, 4, UINT64_C(1700000000000000) + i);
                record_put_str(payload, 5, "ok");
                record_frame_append(file, 0x5a17u, payload->data, payload->len);
        }
        fixture_write(f, "journal", file->data, file->len);

        s = store_make(f, NULL);
        start = g_get_monotonic_time();
        g_assert_cmpint(store_open(s, on_replay_read, &sum, &stats), ==, 0);
        ms = (g_get_monotonic_time() - start) / 1000.0;

        g_assert_cmpuint(stats.n_records, ==, 1000000);
        g_test_minimized_result(ms, "replayed 1000000 records (%" PRIu64 " bytes, %.1f bytes each) "
                                "in %.1f ms", stats.file_size,
                                (double) (stats.file_size - RECORD_HEADER_SIZE) / 1e6, ms);
        g_test_message("replay: %.1f ms for %" PRIu64 " bytes", ms, stats.file_size);
}

#define ADD(name, fn) g_test_add(name, Fixture, NULL, fixture_setup, fn, fixture_teardown)

int main(int argc, char *argv[]) {
        g_test_init(&argc, &argv, NULL);
        if (getenv("JOBD_LOG_STDERR"))
                log_set_target(LOG_TARGET_STDERR);

        ADD("/store/create", test_create);
        ADD("/store/append-replay", test_append_replay);
        ADD("/store/append-limits", test_append_limits);
        ADD("/store/replay-abort", test_replay_abort);
        ADD("/store/torn-tail", test_torn_tail);
        ADD("/store/corrupt-middle/payload", test_corrupt_middle_payload);
        ADD("/store/corrupt-middle/size-past-eof", test_corrupt_middle_size_past_eof);
        ADD("/store/corrupt-middle/crc", test_corrupt_middle_crc);
        ADD("/store/corrupt-middle/size", test_corrupt_middle_size);
        ADD("/store/corrupt-middle/no-snapshot", test_corrupt_middle_no_snapshot);
        ADD("/store/bad-header", test_bad_header);
        ADD("/store/compact", test_compact);
        ADD("/store/compact-snapshot-fails", test_compact_snapshot_fails);
        ADD("/store/compact-automatic", test_compact_automatic);
        ADD("/store/compact-background", test_compact_background);
        ADD("/store/compact-background-fails", test_compact_background_fails);
        ADD("/store/compact-background-free", test_compact_background_free);
        ADD("/store/compact-background-explicit", test_compact_background_explicit);
        ADD("/store/group-commit", test_group_commit);
        ADD("/store/lazy-append", test_lazy_append);
        ADD("/store/batch-max", test_batch_max);
        ADD("/store/append-from-callback", test_append_from_callback);
        ADD("/store/fsync-fails", test_fsync_fails);
        ADD("/store/write-fails-half-way", test_write_fails_half_way);
        ADD("/store/compact-verify-fails", test_compact_verify_fails);
        ADD("/store/failed-without-loop", test_failed_without_loop);
        ADD("/store/retry-timer", test_retry_timer);
        ADD("/store/free-answers-pending", test_free_answers_pending);
        if (g_test_perf())
                ADD("/store/perf/replay-1m", test_perf_replay);

        return g_test_run();
}
