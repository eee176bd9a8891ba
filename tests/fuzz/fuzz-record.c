/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The journal is read back from disk at every start, so every byte of it is untrusted input.
 * Feeds the input to the header check, the frame parser and the payload reader, then writes it as
 * a journal file and opens it with the store, whose replay runs the reader over each payload.
 * Checks the store's promise as well: whatever it replayed, a second open replays the same records
 * from a file with no torn tail and (when it could rewrite it) no corruption.
 */

#include <assert.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>

#include "log.h"
#include "record.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_payload(const void *payload, size_t size) {
        RecordReader r;
        RecordField f;

        if (record_reader_init(&r, payload, size) < 0)
                return;

        while (record_reader_next(&r, &f) > 0)
                switch (f.wire) {

                case RECORD_WIRE_VARINT:
                        (void) record_field_i64(&f);
                        break;

                case RECORD_WIRE_BYTES: {
                        g_autofree char *s = NULL;

                        if (record_field_str(&f, &s) >= 0)
                                assert(strlen(s) == f.size);
                        break;
                }

                case RECORD_WIRE_STRINGS: {
                        g_auto(GStrv) v = NULL;

                        if (record_field_strv(&f, &v) >= 0)
                                assert(g_strv_length(v) == f.u64);
                        break;
                }

                case RECORD_WIRE_VARINTS: {
                        g_autofree uint64_t *v = NULL;
                        size_t n;

                        if (record_field_u64v(&f, &v, &n) >= 0)
                                assert(n == f.u64);
                        break;
                }

                default:
                        assert(false);  /* the reader refuses wire types it cannot skip */
                }
}

static int on_replay(const void *payload, size_t size, void *userdata) {
        GPtrArray *records = userdata;

        read_payload(payload, size);
        g_ptr_array_add(records, g_bytes_new(payload, size));
        return 0;
}

static int on_snapshot(StoreWriter *w, void *userdata) {
        GPtrArray *records = userdata;

        for (guint i = 0; i < records->len; i++) {
                gsize n;
                const void *p = g_bytes_get_data(records->pdata[i], &n);
                int r;

                r = store_writer_add(w, p, n);
                if (r < 0)
                        return r;
        }
        return 0;
}

static char *dir_path;
static int dir_fd = -1;

static void state_dir_remove(void) {
        static const char *const names[] = { "journal", "journal.new", "journal.corrupt" };

        for (size_t i = 0; i < G_N_ELEMENTS(names); i++)
                (void) unlinkat(dir_fd, names[i], 0);
        (void) rmdir(dir_path);
}

/* One directory for the whole run, on tmpfs where there is one: every input syncs twice. */
static int state_dir(void) {
        const char *base;

        if (dir_fd >= 0)
                return dir_fd;

        log_set_target(LOG_TARGET_STDERR);
        log_set_max_level(getenv("JOBD_FUZZ_LOG") ? LOG_DEBUG : LOG_CRIT);

        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : g_get_tmp_dir();
        dir_path = g_build_filename(base, "fuzz-record-XXXXXX", NULL);
        assert(g_mkdtemp(dir_path));
        dir_fd = open(dir_path, O_RDONLY|O_DIRECTORY|O_CLOEXEC);
        assert(dir_fd >= 0);
        atexit(state_dir_remove);
        return dir_fd;
}

static void write_journal(int dfd, const uint8_t *data, size_t size) {
        int fd;

        (void) unlinkat(dfd, "journal.new", 0);
        (void) unlinkat(dfd, "journal.corrupt", 0);
        fd = openat(dfd, "journal", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0600);
        assert(fd >= 0);
        for (size_t done = 0; done < size; ) {
                ssize_t n = write(fd, data + done, size - done);

                assert(n > 0);
                done += (size_t) n;
        }
        close(fd);
}

static void fuzz_store(const uint8_t *data, size_t size) {
        g_autoptr(GPtrArray) first = g_ptr_array_new_with_free_func((GDestroyNotify) g_bytes_unref);
        g_autoptr(GPtrArray) second = g_ptr_array_new_with_free_func((GDestroyNotify) g_bytes_unref);
        /* both ways of handling corruption in the middle, chosen by the input */
        bool rewrite = size % 2 == 0;
        int fd = state_dir();
        g_autoptr(Store) s = NULL;
        StoreReplayStats stats, again;
        int r;

        write_journal(fd, data, size);

        assert(store_new(&s, NULL, fd) >= 0);
        if (rewrite)
                store_set_snapshot_fn(s, on_snapshot, first);
        r = store_open(s, on_replay, first, &stats);
        if (r < 0) {
                assert(r == -EBADMSG || r == -EPROTONOSUPPORT);
                assert(first->len == 0);
                return;
        }
        assert(stats.n_records == first->len);
        assert(stats.file_size == size);
        assert(stats.torn_offset == UINT64_MAX || stats.torn_offset < size);
        assert((stats.n_corrupt == 0) == (stats.first_corrupt_offset == UINT64_MAX));

        assert(store_append(s, "fuzz", 4, NULL, NULL) >= 0);
        assert(store_flush(s) >= 0);
        g_ptr_array_add(first, g_bytes_new_static("fuzz", 4));
        g_clear_pointer(&s, store_free);

        assert(store_new(&s, NULL, fd) >= 0);
        assert(store_open(s, on_replay, second, &again) >= 0);
        assert(again.torn_offset == UINT64_MAX);
        assert(again.n_corrupt == (rewrite ? 0 : stats.n_corrupt));
        assert(second->len == first->len);
        for (guint i = 0; i < first->len; i++)
                assert(g_bytes_equal(first->pdata[i], second->pdata[i]));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        size_t off = 0;
        uint32_t salt = 0;

        /* The framing on its own, from after the header if there is one, to the first bad frame. */
        if (record_header_check(data, size, &salt) >= 0)
                off = RECORD_HEADER_SIZE;
        while (off < size) {
                const void *payload;
                size_t n, frame;

                if (record_frame_parse(data + off, size - off, salt, &payload, &n, &frame) < 0)
                        break;
                assert(frame == RECORD_FRAME_OVERHEAD + n && frame <= size - off);
                read_payload(payload, n);
                off += frame;
        }

        /* The whole input as one payload: the reader sees far more shapes this way. */
        read_payload(data, size);

        fuzz_store(data, size);
        return 0;
}
