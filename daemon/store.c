/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Owns the file "journal" in the state directory (and its siblings "journal.new", written only by
 * a compaction, and "journal.corrupt", the evidence kept after corruption in the middle), the queue
 * of appends that are not durable yet, the child writing an automatic compaction, and event
 * sources: the group commit (a defer source at idle priority, so every request already queued is
 * appended before the one fsync), the timer that retries a rewrite after a failure, and the pidfd
 * of the compaction child.
 *
 * The automatic compaction (with an event loop) forks: the child writes the state as it was at the
 * fork to "journal.new", fsyncs and verifies it, and exits; it touches no sd-bus or sd-event object.
 * The parent keeps appending to "journal"; when the child succeeded, it copies the journal's bytes
 * from the fork on behind the snapshot, syncs, renames, and appends to the new file from then on.
 * store_compact() stays synchronous, for explicit calls, the recovery of a failed store, and
 * stores without a loop.
 *
 * Invariants:
 *  - The first s->size bytes of the journal are a header and whole frames, fsynced; s->fd is open
 *    with O_APPEND on it and nothing unsynced lies beyond them, except while a batch is written.
 *  - Each append's done callback runs exactly once, in append order: 0 only after its frame was
 *    written and fdatasync'ed, -errno otherwise. A failed write or sync is never retried on the
 *    same data: the page cache may have dropped the pages and the next fsync would succeed.
 *  - While failed, s->fd is closed, nothing is queued, and only a fsynced, read-back snapshot
 *    renamed over "journal" brings the store back.
 *  - "journal" is replaced only by rename() of a fsynced and verified "journal.new", so at every
 *    instant it names a complete old or new file; a "journal.new" found at open is debris.
 *  - At most one compaction at a time: a running child is killed and reaped (by pid, never "any
 *    child") and its file removed before a synchronous compaction, on failure, and in store_free().
 *  - The child's file is switched to only between batches, never inside store_commit(): the old
 *    journal then ends with a whole frame at s->size, and the bytes [fork_size, s->size) copied
 *    behind the snapshot are whole frames with the lineage's salt.
 *  - No sd-bus here: the store moves opaque payloads and knows neither jobs nor messages.
 *
 * Done callbacks may call store_append(), not store_flush() (it would answer later appends before
 * the rest of the batch) and never store_free().
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1           /* close_range() */
#endif

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "record.h"
#include "store.h"

#define JOURNAL_NAME         "journal"
#define JOURNAL_NEW_NAME     "journal.new"
#define JOURNAL_CORRUPT_NAME "journal.corrupt"
#define JOURNAL_TORN_NAME    "journal.torn"

#define STORE_BATCH_MAX_DEFAULT   1024u
#define STORE_COMPACT_MIN_DEFAULT (UINT64_C(4) * 1024 * 1024)
#define STORE_COMPACT_FACTOR_DEFAULT 4u
#define STORE_RETRY_MIN_USEC      (UINT64_C(1) * 1000000)
#define STORE_RETRY_MAX_USEC      (UINT64_C(60) * 1000000)
#define STORE_WRITER_CHUNK        (1024u * 1024u)

/* Bytes queued and not yet written. Only a disk that stalls for long gets near it, and the queue
 * is a GByteArray, whose guint length must not overflow. */
#define STORE_QUEUE_MAX           (UINT64_C(1024) * 1024 * 1024)

/* Bytes the resynchronisation scan may checksum in one replay. Candidate frames inside damage
 * can be crafted to claim long payloads at every offset, which would make the scan quadratic;
 * past this budget the rest of the file is treated as a torn tail. ~0.3 s of CRC. */
#define STORE_RESYNC_BUDGET       (UINT64_C(1024) * 1024 * 1024)

typedef struct StorePending {
        StoreDoneFn done;
        void *userdata;
        size_t frame_size;
} StorePending;

struct Store {
        sd_event *event;
        sd_event_source *commit_source;
        sd_event_source *lazy_source;   /* the latest instant queued lazy appends get their commit */
        sd_event_source *retry_source;
        uint64_t retry_usec;

        int dir_fd;
        int fd;
        uint32_t salt;                  /* of the journal's lineage: compactions keep it, so frames
                                         * queued before a compaction stay valid after it */
        bool opened;
        bool failed;
        StoreIO io;

        StoreSnapshotFn snapshot_fn;
        void *snapshot_userdata;
        uint64_t compact_min_bytes;
        unsigned compact_factor;
        uint64_t snapshot_size;         /* of the last compaction; 0: unknown, compact at min_bytes */
        uint64_t compact_not_before;    /* after a failed compaction, wait until the journal is this big */

        /* The automatic compaction in flight, written by a forked child (pid 0: none). */
        pid_t compact_pid;
        int compact_pidfd;
        sd_event_source *compact_source;
        uint64_t fork_size;             /* s->size at the fork: the old journal's tail from here on is
                                         * copied behind the child's snapshot */

        unsigned batch_max;
        uint64_t size;
        uint64_t n_fsyncs;

        /* Frames of queued appends. Bytes before queue_head and entries before pending_head are
         * done; they are dropped once they are the bigger half, so the moves stay amortised O(1). */
        GByteArray *queue;
        size_t queue_head;
        GArray *pending;                /* StorePending */
        guint pending_head;
};

struct StoreWriter {
        Store *store;
        int fd;
        GByteArray *buf;
        uint64_t size;
        uint64_t n_records;
        int error;                      /* sticky: a snapshot fn that ignores it still fails */
};

static const StoreIO store_io_default = {
        .write = write,
        .fsync = fdatasync,
};

/* StoreIO calls follow libc: -1 and errno. A replacement may return -errno directly instead. */
static int io_error(ssize_t r) {
        if (r == -1)
                return errno > 0 ? -errno : -EIO;
        return r < 0 ? (int) r : -EIO;
}

static int store_write_all(Store *s, int fd, const void *buf, size_t size) {
        const uint8_t *p = buf;

        while (size > 0) {
                ssize_t n;

                errno = 0;
                n = s->io.write(fd, p, size);
                if (n < 0) {
                        int r = io_error(n);

                        if (r == -EINTR)
                                continue;
                        return r;
                }
                /* A write that makes no progress would loop forever. */
                if (n == 0 || (size_t) n > size)
                        return -EIO;

                p += n;
                size -= (size_t) n;
        }

        return 0;
}

static int store_sync(Store *s, int fd) {
        int r;

        errno = 0;
        r = s->io.fsync(fd);
        return r < 0 ? io_error(r) : 0;
}

static int sync_dir(Store *s) {
        return fsync(s->dir_fd) < 0 ? -errno : 0;
}

static int unlink_if_present(Store *s, const char *name) {
        if (unlinkat(s->dir_fd, name, 0) < 0)
                return errno == ENOENT ? 0 : -errno;
        return 1;
}

/* The whole file in one buffer: replay hands out pointers into it, and one read is fastest. */
static int read_all(int fd, uint8_t **ret, size_t *ret_size) {
        g_autofree uint8_t *buf = NULL;
        struct stat st;
        size_t size = 0;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADFD;
        if ((uint64_t) st.st_size >= SIZE_MAX)
                return -EFBIG;

        buf = g_try_malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;

        while (size < (size_t) st.st_size) {
                ssize_t n = pread(fd, buf + size, (size_t) st.st_size - size, (off_t) size);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        break;          /* shrank under us: take what is there */
                size += (size_t) n;
        }

        *ret = g_steal_pointer(&buf);
        *ret_size = size;
        return 0;
}

static uint32_t load_le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static bool frame_valid_at(const uint8_t *buf, size_t size, uint32_t salt, size_t off, uint64_t *budget) {
        const void *payload;
        size_t n, frame;
        uint32_t len;

        if (size - off < RECORD_FRAME_OVERHEAD)
                return false;

        /* Only frames that fit are checksummed, and those spend the budget. */
        len = load_le32(buf + off);
        if (len > RECORD_PAYLOAD_MAX || len > size - off - RECORD_FRAME_OVERHEAD)
                return false;
        if (*budget < len + UINT64_C(4))
                return false;
        *budget -= len + UINT64_C(4);

        return record_frame_parse(buf + off, size - off, salt, &payload, &n, &frame) == 0;
}

/* Where replay may continue after the bad frame at off: the next offset holding a frame with a
 * valid checksum, or size if there is none (then the bad frame starts a torn tail). Every offset
 * after the bad one is tried, also inside the extent its size field claims: that field may be
 * the damaged part. Client bytes inside payloads cannot pass for frames, the checksum is seeded
 * with the file's secret salt. */
static size_t journal_resync(const uint8_t *buf, size_t size, uint32_t salt, size_t off, uint64_t *budget) {
        for (size_t o = off + 1; o < size; o++)
                if (frame_valid_at(buf, size, salt, o, budget))
                        return o;

        return size;
}

/* Hands every valid frame to fn; *ret_end is where the valid part ends (the torn tail begins). */
static int journal_replay(const uint8_t *buf, size_t size, uint32_t salt, StoreReplayFn fn, void *userdata,
                          StoreReplayStats *stats, size_t *ret_end) {
        uint64_t budget = STORE_RESYNC_BUDGET;
        size_t off = RECORD_HEADER_SIZE;
        int r;

        while (off < size) {
                const void *payload;
                size_t n, frame, next;

                r = record_frame_parse(buf + off, size - off, salt, &payload, &n, &frame);
                if (r >= 0) {
                        if (fn) {
                                r = fn(payload, n, userdata);
                                if (r < 0)
                                        return r;
                        }
                        stats->n_records++;
                        off += frame;
                        continue;
                }

                next = journal_resync(buf, size, salt, off, &budget);
                if (next >= size)
                        break;

                log_warning("Journal is corrupt from offset %zu to %zu, skipping %zu bytes.",
                            off, next, next - off);
                if (stats->n_corrupt == 0)
                        stats->first_corrupt_offset = off;
                stats->n_corrupt++;
                off = next;
        }

        *ret_end = off;
        return 0;
}

static void store_writer_clear(StoreWriter *w) {
        closep(&w->fd);
        if (w->buf)
                g_byte_array_unref(w->buf);
}

static int store_writer_flush(StoreWriter *w) {
        int r;

        r = store_write_all(w->store, w->fd, w->buf->data, w->buf->len);
        if (r < 0)
                return (w->error = r);

        g_byte_array_set_size(w->buf, 0);
        return 0;
}

int store_writer_add(StoreWriter *w, const void *payload, size_t size) {
        assert(w);
        assert(payload || size == 0);

        if (w->error < 0)
                return w->error;
        /* A snapshot missing a record is not a snapshot: poison the writer, not just this call. */
        if (size > RECORD_PAYLOAD_MAX)
                return (w->error = -E2BIG);

        record_frame_append(w->buf, w->store->salt, payload, size);
        w->size += RECORD_FRAME_OVERHEAD + size;
        w->n_records++;

        if (w->buf->len >= STORE_WRITER_CHUNK)
                return store_writer_flush(w);
        return 0;
}

/* Reads the file back and checks that it holds exactly what we wrote. This sees the page cache,
 * not the disk; it catches short or lost writes that reported success and our own bugs. */
static int journal_verify(int fd, uint32_t salt, uint64_t size, uint64_t n_records) {
        g_autofree uint8_t *buf = NULL;
        size_t got, off = RECORD_HEADER_SIZE;
        uint64_t n = 0;
        int r;

        r = read_all(fd, &buf, &got);
        if (r < 0)
                return r;
        if (got != size || record_header_check(buf, got, NULL) < 0)
                return -EIO;

        while (off < got) {
                const void *payload;
                size_t psize, frame;

                if (record_frame_parse(buf + off, got - off, salt, &payload, &psize, &frame) < 0)
                        return -EIO;
                off += frame;
                n++;
        }

        return n == n_records ? 0 : -EIO;
}

/* Writes "journal.new": header, whatever fn adds, fdatasync, read back. Returns it open for
 * appending. Does not rename it; on failure the caller removes it. */
static int journal_write_new(Store *s, StoreSnapshotFn fn, void *userdata, int *ret_fd, uint64_t *ret_size) {
        _cleanup_(store_writer_clear) StoreWriter w = { .store = s, .fd = -1 };
        uint8_t header[RECORD_HEADER_SIZE];
        int r;

        r = unlink_if_present(s, JOURNAL_NEW_NAME);
        if (r < 0)
                return r;

        w.fd = openat(s->dir_fd, JOURNAL_NEW_NAME,
                      O_RDWR|O_APPEND|O_CREAT|O_EXCL|O_CLOEXEC|O_NOCTTY|O_NOFOLLOW, 0600);
        if (w.fd < 0)
                return -errno;

        w.buf = g_byte_array_sized_new(STORE_WRITER_CHUNK + 64 * 1024);
        record_header_write(header, s->salt);
        g_byte_array_append(w.buf, header, sizeof(header));
        w.size = sizeof(header);

        if (fn) {
                r = fn(&w, userdata);
                if (r < 0)
                        return r;
        }
        if (w.error < 0)
                return w.error;

        r = store_writer_flush(&w);
        if (r < 0)
                return r;
        r = store_sync(s, w.fd);
        if (r < 0)
                return r;
        r = journal_verify(w.fd, s->salt, w.size, w.n_records);
        if (r < 0)
                return r;

        *ret_fd = take_fd(&w.fd);
        *ret_size = w.size;
        return 0;
}

/* Creates an empty journal the same way compaction replaces one, so a crash never leaves a
 * "journal" without a complete header (which open would refuse as not a journal). */
static int journal_create(Store *s) {
        _cleanup_(closep) int fd = -1;
        uint64_t size;
        int r;

        if (getrandom(&s->salt, sizeof(s->salt), 0) != sizeof(s->salt))
                return -errno;
        r = journal_write_new(s, NULL, NULL, &fd, &size);
        if (r >= 0 && renameat(s->dir_fd, JOURNAL_NEW_NAME, s->dir_fd, JOURNAL_NAME) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlink_if_present(s, JOURNAL_NEW_NAME);
                return r;
        }

        r = sync_dir(s);
        if (r < 0)
                return r;

        log_info("Created a new journal.");
        return 0;
}

static void store_schedule_retry(Store *s);

static void store_compact_clear(Store *s) {
        s->compact_source = sd_event_source_disable_unref(s->compact_source);
        if (s->compact_pidfd >= 0)
                (void) close(take_fd(&s->compact_pidfd));
        s->compact_pid = 0;
}

/* Kills and reaps the compaction child and removes what it wrote. Blocks until it is gone: at
 * most the rest of one write or fsync, SIGKILL waits for those. Only by pid, never "any child":
 * the runner reaps its supervisors the same way. */
static void store_compact_abort(Store *s) {
        siginfo_t si;

        if (s->compact_pid == 0)
                return;

        /* not reaped yet, so the pid cannot have been reused */
        (void) kill(s->compact_pid, SIGKILL);
        while (waitid(P_PID, s->compact_pid, &si, WEXITED) < 0 && errno == EINTR)
                ;
        store_compact_clear(s);
        (void) unlink_if_present(s, JOURNAL_NEW_NAME);
}

/* Drains the queue and answers every queued append with error: those in the batch that failed
 * and those behind it, which cannot be made durable on a file we no longer trust. */
static int store_enter_failed(Store *s, int error) {
        g_autoptr(GArray) pending = NULL;
        guint head;

        assert(error < 0);

        log_error_errno(error, "Failed to make the journal durable, refusing changes until the state "
                        "is rewritten to a new file: %m");

        s->failed = true;
        /* The child's snapshot would be completed with the tail of a journal we no longer trust;
         * the retries rewrite the state synchronously instead. */
        store_compact_abort(s);
        if (s->fd >= 0) {
                /* Best effort, so a restart before the rewrite is less likely to replay records
                 * that were answered with an error; the failed sync may have lost this too. */
                (void) ftruncate(s->fd, (off_t) s->size);
                (void) close(take_fd(&s->fd));
        }

        pending = g_steal_pointer(&s->pending);
        head = s->pending_head;
        s->pending = g_array_new(FALSE, FALSE, sizeof(StorePending));
        s->pending_head = 0;
        g_byte_array_set_size(s->queue, 0);
        s->queue_head = 0;
        if (s->commit_source)
                (void) sd_event_source_set_enabled(s->commit_source, SD_EVENT_OFF);

        store_schedule_retry(s);

        for (guint i = head; i < pending->len; i++) {
                StorePending *p = &g_array_index(pending, StorePending, i);

                if (p->done)
                        p->done(error, p->userdata);
        }

        return error;
}

static guint store_n_queued(Store *s) {
        return s->pending->len - s->pending_head;
}

static void store_trim_queue(Store *s) {
        if (store_n_queued(s) == 0) {
                g_byte_array_set_size(s->queue, 0);
                g_array_set_size(s->pending, 0);
                s->queue_head = 0;
                s->pending_head = 0;
                return;
        }

        /* Amortised: move the rest down only once the done part is the bigger half. */
        if (s->queue_head > s->queue->len / 2) {
                g_byte_array_remove_range(s->queue, 0, (guint) s->queue_head);
                g_array_remove_range(s->pending, 0, s->pending_head);
                s->queue_head = 0;
                s->pending_head = 0;
        }
}

/* After a failed compaction: retrying at every batch would rewrite the state each time for nothing. */
static void store_compact_failed(Store *s) {
        (void) unlink_if_present(s, JOURNAL_NEW_NAME);
        if (!s->failed)
                s->compact_not_before = s->size + MAX(s->compact_min_bytes, UINT64_C(1));
}

/* The compaction child. It uses only the snapshot callback (which builds records from memory),
 * write(), fsync and close: no sd-bus or sd-event object, no logging, no stdio. It leaves by
 * _exit(), so stdio buffers inherited from the parent are not flushed twice and LeakSanitizer
 * does not report the parent's memory. The exit status is the errno of a failure. */
__attribute__((noreturn)) static void compact_child(Store *s, pid_t parent) {
        uint64_t size;
        int fd = -1, r;

        /* dies with jobd: an orphan would only write a file nobody renames */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                _exit(EXIT_FAILURE);

        /* Holds no copy of the parent's pipes and sockets, whose EOF others wait for (a
         * supervisor's hold pipe). Best effort: before Linux 5.9 they stay open until _exit(). */
        if (s->dir_fd > 3)
                (void) close_range(3, (unsigned) s->dir_fd - 1, 0);
        (void) close_range((unsigned) s->dir_fd + 1, ~0U, 0);

        r = journal_write_new(s, s->snapshot_fn, s->snapshot_userdata, &fd, &size);
        _exit(r < 0 ? CLAMP(-r, 1, 255) : 0);
}

/* Copies the old journal's bytes [from, to) behind the snapshot, in chunks: the tail is whatever
 * was appended while the child ran. */
static int journal_copy_tail(Store *s, int old_fd, int new_fd, uint64_t from, uint64_t to) {
        g_autofree uint8_t *buf = NULL;
        int r;

        if (from >= to)
                return 0;

        buf = g_malloc(MIN(to - from, (uint64_t) STORE_WRITER_CHUNK));
        while (from < to) {
                ssize_t n = pread(old_fd, buf, MIN(to - from, (uint64_t) STORE_WRITER_CHUNK), (off_t) from);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;    /* shorter than what was written and synced */

                r = store_write_all(s, new_fd, buf, (size_t) n);
                if (r < 0)
                        return r;
                from += (uint64_t) n;
        }

        return 0;
}

/* The child wrote the state as it was at the fork to journal.new, verified. Appends went on into
 * the old journal meanwhile; its bytes from fork_size on are copied behind the snapshot. A few of
 * them may be in the snapshot already (an append queued at the fork was applied in memory before
 * its frame was written), and replaying those twice is harmless: the record types converge, NEW
 * replaces a job, UPDATE assigns fields, PURGE deletes, META takes the maximum. Runs from the
 * loop, never inside store_commit(), so the old journal ends with a whole frame at s->size. */
static int store_compact_finish(Store *s) {
        _cleanup_(closep) int fd = -1;
        uint64_t snapshot_size, tail = s->size - s->fork_size;
        struct stat st;
        int r;

        assert(!s->failed && s->fd >= 0);

        fd = openat(s->dir_fd, JOURNAL_NEW_NAME, O_RDWR|O_APPEND|O_CLOEXEC|O_NOCTTY|O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        snapshot_size = (uint64_t) st.st_size;

        r = journal_copy_tail(s, s->fd, fd, s->fork_size, s->size);
        if (r >= 0)
                r = store_sync(s, fd);
        if (r < 0)
                return r;
        if (renameat(s->dir_fd, JOURNAL_NEW_NAME, s->dir_fd, JOURNAL_NAME) < 0)
                return -errno;

        /* From here on "journal" names the new file; the same frames and salt, so the queue
         * goes on into it. */
        closep(&s->fd);
        s->fd = take_fd(&fd);
        s->size = snapshot_size + tail;
        s->snapshot_size = snapshot_size;
        s->compact_not_before = 0;

        /* as in store_compact(): until the rename is durable a crash may bring back the old file */
        r = sync_dir(s);
        if (r < 0)
                return store_enter_failed(s, r);
        return 0;
}

static int on_compact_exit(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        Store *s = userdata;
        uint64_t before = s->size;
        siginfo_t si = {};
        int r;

        if (waitid(P_PID, s->compact_pid, &si, WEXITED | WNOHANG) < 0) {
                if (errno == EINTR)
                        return 0;
                r = -errno;     /* ECHILD: reaped behind our back, its result is unknown */
        } else if (si.si_pid == 0)
                return 0;
        else if (si.si_code == CLD_EXITED)
                r = -si.si_status;
        else {
                store_compact_clear(s);
                log_warning("Compaction child was killed by signal %d, keeping the journal as it is.",
                            si.si_status);
                store_compact_failed(s);
                return 0;
        }

        store_compact_clear(s);
        if (r >= 0)
                r = store_compact_finish(s);
        if (r < 0) {
                log_warning_errno(r, "Failed to compact the journal, keeping it as it is: %m");
                store_compact_failed(s);
                return 0;
        }

        log_info("Compacted the journal from %" PRIu64 " to %" PRIu64 " bytes in a child.", before, s->size);
        return 0;
}

/* Writes the snapshot from a forked child, like Redis' BGSAVE, so the loop goes on serving while
 * a big state is written: fork() copies the page tables only, and the child shares jobd's memory
 * until the parent writes to it. What it costs is the pages jobd dirties during the compaction,
 * each copied once. */
static int store_compact_start(Store *s) {
        pid_t parent = getpid(), pid;
        int r;

        assert(s->compact_pid == 0);

        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0)
                compact_child(s, parent);

        s->compact_pid = pid;
        s->fork_size = s->size;

        /* a pidfd rather than sd_event_add_child(): that one needs SIGCHLD blocked process-wide */
        s->compact_pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (s->compact_pidfd < 0) {
                r = -errno;
                store_compact_abort(s);
                return r;
        }
        r = sd_event_add_io(s->event, &s->compact_source, s->compact_pidfd, EPOLLIN, on_compact_exit, s);
        if (r < 0) {
                store_compact_abort(s);
                return r;
        }
        (void) sd_event_source_set_description(s->compact_source, "store-compact");
        return 0;
}

static void store_maybe_compact(Store *s) {
        uint64_t limit, before = s->size;
        int r;

        if (!s->snapshot_fn || s->failed || s->compact_pid > 0)
                return;

        limit = s->snapshot_size > UINT64_MAX / MAX(s->compact_factor, 1u) ?
                UINT64_MAX : s->snapshot_size * s->compact_factor;
        limit = MAX(limit, s->compact_min_bytes);
        if (s->size <= limit || s->size < s->compact_not_before)
                return;

        if (s->event) {
                r = store_compact_start(s);
                if (r < 0) {
                        log_warning_errno(r, "Failed to start compacting the journal, ignoring: %m");
                        store_compact_failed(s);
                }
                return;
        }

        /* Without a loop nobody would see the child finish: synchronous, the caller stalls. */
        r = store_compact(s);
        if (r < 0) {
                log_warning_errno(r, "Failed to compact the journal, ignoring: %m");
                store_compact_failed(s);
                return;
        }

        log_info("Compacted the journal from %" PRIu64 " to %" PRIu64 " bytes.", before, s->size);
}

/* Writes up to max queued frames with one write and one fdatasync, then answers them. */
static int store_commit(Store *s, guint max) {
        g_autofree StorePending *batch = NULL;
        guint n = MIN(store_n_queued(s), max);
        size_t bytes = 0;
        int r;

        if (n == 0)
                return 0;

        for (guint i = 0; i < n; i++)
                bytes += g_array_index(s->pending, StorePending, s->pending_head + i).frame_size;

        r = store_write_all(s, s->fd, s->queue->data + s->queue_head, bytes);
        if (r >= 0)
                r = store_sync(s, s->fd);
        if (r < 0)
                return store_enter_failed(s, r);

        s->size += bytes;
        s->n_fsyncs++;

        /* Callbacks may append: take the batch out of the queue before calling any. */
        batch = g_memdup2(&g_array_index(s->pending, StorePending, s->pending_head),
                          sizeof(StorePending) * n);
        s->pending_head += n;
        s->queue_head += bytes;
        store_trim_queue(s);

        for (guint i = 0; i < n; i++)
                if (batch[i].done)
                        batch[i].done(0, batch[i].userdata);

        store_maybe_compact(s);
        return 0;
}

static int on_commit(sd_event_source *source, void *userdata) {
        Store *s = userdata;
        int r;

        /* Errors were answered to each append already; the source must keep working. */
        (void) store_commit(s, s->batch_max);

        if (!s->failed && store_n_queued(s) > 0) {
                r = sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
                if (r < 0)
                        /* Nothing would ever write the rest: answer it rather than strand it. */
                        (void) store_enter_failed(s, r);
        }

        return 0;
}

static int on_retry(sd_event_source *source, uint64_t usec, void *userdata) {
        Store *s = userdata;
        int r;

        r = store_compact(s);
        if (r >= 0 || !s->failed)
                return 0;

        s->retry_usec = MIN(s->retry_usec * 2, STORE_RETRY_MAX_USEC);
        log_warning_errno(r, "Failed to rewrite the journal, retrying in %" PRIu64 " s: %m",
                          s->retry_usec / 1000000);
        store_schedule_retry(s);
        return 0;
}

static void store_schedule_retry(Store *s) {
        int r;

        /* Without a loop or a snapshot the owner has to call store_compact() itself. */
        if (!s->event || !s->snapshot_fn)
                return;

        if (!s->retry_source) {
                r = sd_event_add_time_relative(s->event, &s->retry_source, CLOCK_MONOTONIC,
                                               s->retry_usec, 0, on_retry, s);
                if (r >= 0)
                        (void) sd_event_source_set_description(s->retry_source, "store-retry");
        } else {
                r = sd_event_source_set_time_relative(s->retry_source, s->retry_usec);
                if (r >= 0)
                        r = sd_event_source_set_enabled(s->retry_source, SD_EVENT_ONESHOT);
        }
        if (r < 0)
                log_warning_errno(r, "Failed to schedule rewriting the journal, ignoring: %m");
}

int store_new(Store **ret, sd_event *event, int dir_fd) {
        g_autoptr(Store) s = NULL;
        int r;

        assert(ret);
        assert(dir_fd >= 0);

        s = g_new0(Store, 1);
        s->fd = -1;
        s->compact_pidfd = -1;
        s->io = store_io_default;
        s->batch_max = STORE_BATCH_MAX_DEFAULT;
        s->compact_min_bytes = STORE_COMPACT_MIN_DEFAULT;
        s->compact_factor = STORE_COMPACT_FACTOR_DEFAULT;
        s->retry_usec = STORE_RETRY_MIN_USEC;
        s->queue = g_byte_array_new();
        s->pending = g_array_new(FALSE, FALSE, sizeof(StorePending));

        s->dir_fd = fcntl(dir_fd, F_DUPFD_CLOEXEC, 3);
        if (s->dir_fd < 0)
                return -errno;

        if (event) {
                s->event = sd_event_ref(event);

                r = sd_event_add_defer(event, &s->commit_source, on_commit, s);
                if (r < 0)
                        return r;
                /* Idle: every bus message already queued is handled, and appended, first. */
                r = sd_event_source_set_priority(s->commit_source, SD_EVENT_PRIORITY_IDLE);
                if (r < 0)
                        return r;
                r = sd_event_source_set_enabled(s->commit_source, SD_EVENT_OFF);
                if (r < 0)
                        return r;
                (void) sd_event_source_set_description(s->commit_source, "store-commit");
        }

        *ret = g_steal_pointer(&s);
        return 0;
}

Store *store_free(Store *s) {
        if (!s)
                return NULL;

        /* Appends never written are still answered, so whatever their callbacks hold (a message
         * awaiting its reply) is released. Marked failed first: they cannot append again. */
        if (s->pending && store_n_queued(s) > 0) {
                g_autoptr(GArray) pending = g_steal_pointer(&s->pending);

                s->failed = true;
                for (guint i = s->pending_head; i < pending->len; i++) {
                        StorePending *p = &g_array_index(pending, StorePending, i);

                        if (p->done)
                                p->done(-ECANCELED, p->userdata);
                }
        }

        store_compact_abort(s);
        sd_event_source_disable_unref(s->commit_source);
        sd_event_source_disable_unref(s->lazy_source);
        sd_event_source_disable_unref(s->retry_source);
        sd_event_unref(s->event);
        closep(&s->fd);
        closep(&s->dir_fd);
        if (s->queue)
                g_byte_array_unref(s->queue);
        if (s->pending)
                g_array_unref(s->pending);
        g_free(s);
        return NULL;
}

void store_set_io(Store *s, const StoreIO *io) {
        assert(s);

        s->io = io ? *io : store_io_default;
}

void store_set_snapshot_fn(Store *s, StoreSnapshotFn fn, void *userdata) {
        assert(s);

        s->snapshot_fn = fn;
        s->snapshot_userdata = userdata;

        /* A store that failed before it had a way to recover gets its retries now. */
        if (s->failed && fn)
                store_schedule_retry(s);
}

void store_set_compaction(Store *s, uint64_t min_bytes, unsigned factor) {
        assert(s);

        s->compact_min_bytes = min_bytes;
        s->compact_factor = factor;
}

void store_set_batch_max(Store *s, unsigned n) {
        assert(s);

        s->batch_max = MAX(n, 1u);
}

/* Keeps the damaged file for inspection under another name before it is replaced. */
static int journal_keep_corrupt(Store *s) {
        int r;

        r = unlink_if_present(s, JOURNAL_CORRUPT_NAME);
        if (r < 0)
                return r;
        if (linkat(s->dir_fd, JOURNAL_NAME, s->dir_fd, JOURNAL_CORRUPT_NAME, 0) < 0)
                return -errno;
        return 0;
}

/* After corruption in the middle: keep the old file as journal.corrupt and write the state that
 * replay rebuilt to a fresh journal. Without a snapshot function there is nothing to rewrite
 * from: the store keeps appending to the damaged file, which replays the same way next time and
 * reports the damage again. Either way not fatal. */
static void journal_rewrite_corrupt(Store *s) {
        int r;

        if (!s->snapshot_fn) {
                log_notice("No snapshot function set, keeping the corrupt journal and appending to it.");
                return;
        }

        r = journal_keep_corrupt(s);
        if (r >= 0) {
                r = store_compact(s);
                /* Not renamed: journal.corrupt is a second name of the journal, drop it. Failed
                 * after the rename: it is the only copy of the damaged file, keep it. */
                if (r < 0 && !s->failed)
                        (void) unlink_if_present(s, JOURNAL_CORRUPT_NAME);
        }
        if (r < 0) {
                /* failed after the rename: store_enter_failed() said so, and the retries rewrite it */
                if (!s->failed)
                        log_warning_errno(r, "Failed to rewrite the corrupt journal, "
                                          "appending to it as is: %m");
                return;
        }

        log_notice("Rewrote the journal from the replayed state, the damaged file is kept as "
                   JOURNAL_CORRUPT_NAME ".");
}

/* What a cut removes is kept, best effort, for whoever wants to look at it: a write cut short by
 * a crash was never acknowledged, but damage that looks like one would otherwise vanish. */
static void journal_keep_torn(Store *s, const uint8_t *tail, size_t size) {
        _cleanup_(closep) int fd = -1;

        fd = openat(s->dir_fd, JOURNAL_TORN_NAME, O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC|O_NOCTTY|O_NOFOLLOW, 0600);
        if (fd < 0 || write(fd, tail, size) != (ssize_t) size)
                log_warning_errno(errno, "Failed to keep the torn tail in " JOURNAL_TORN_NAME ", ignoring: %m");
}

int store_open(Store *s, StoreReplayFn fn, void *userdata, StoreReplayStats *ret_stats) {
        StoreReplayStats stats = {
                .torn_offset = UINT64_MAX,
                .first_corrupt_offset = UINT64_MAX,
        };
        _cleanup_(closep) int fd = -1;
        g_autofree uint8_t *buf = NULL;
        size_t size, end;
        int r;

        assert(s);
        assert(!s->opened);

        fd = openat(s->dir_fd, JOURNAL_NAME, O_RDWR|O_APPEND|O_CLOEXEC|O_NOCTTY|O_NOFOLLOW);
        if (fd < 0 && errno == ENOENT) {
                r = journal_create(s);
                if (r < 0)
                        return r;
                fd = openat(s->dir_fd, JOURNAL_NAME, O_RDWR|O_APPEND|O_CLOEXEC|O_NOCTTY|O_NOFOLLOW);
        }
        if (fd < 0)
                return -errno;

        r = read_all(fd, &buf, &size);
        if (r < 0)
                return r;
        r = record_header_check(buf, size, &s->salt);
        if (r < 0)
                return r;       /* not ours, or too new: touch nothing */

        /* A compaction died before its rename; the journal above is the complete old state. */
        r = unlink_if_present(s, JOURNAL_NEW_NAME);
        if (r < 0)
                return r;
        if (r > 0)
                log_info("Removed " JOURNAL_NEW_NAME " left over from an interrupted compaction.");

        r = journal_replay(buf, size, s->salt, fn, userdata, &stats, &end);
        if (r < 0)
                return r;
        stats.file_size = size;

        if (end < size) {
                log_warning("Journal has a torn tail at offset %zu (file size %zu), cutting it off; "
                            "the cut bytes are kept in " JOURNAL_TORN_NAME ".", end, size);
                journal_keep_torn(s, buf + end, size - end);
                if (ftruncate(fd, (off_t) end) < 0)
                        return -errno;
                r = store_sync(s, fd);
                if (r < 0)
                        return r;
                stats.torn_offset = end;
        }

        s->fd = take_fd(&fd);
        s->size = end;
        s->opened = true;
        /* what we found is the baseline: rewriting it at once would gain nothing */
        s->snapshot_size = end;

        if (stats.n_corrupt > 0)
                journal_rewrite_corrupt(s);

        if (ret_stats)
                *ret_stats = stats;
        return 0;
}

static int store_queue(Store *s, const void *payload, size_t size, StoreDoneFn done, void *userdata,
                       bool commit_now) {
        StorePending p = {
                .done = done,
                .userdata = userdata,
                .frame_size = RECORD_FRAME_OVERHEAD + size,
        };
        int r;

        assert(s);
        assert(payload || size == 0);

        if (!s->opened)
                return -EBADFD;
        if (s->failed)
                return -EROFS;
        if (size > RECORD_PAYLOAD_MAX)
                return -E2BIG;
        if (s->queue->len - s->queue_head + p.frame_size > STORE_QUEUE_MAX)
                return -ENOBUFS;

        record_frame_append(s->queue, s->salt, payload, size);
        g_array_append_val(s->pending, p);

        if (s->commit_source && commit_now) {
                r = sd_event_source_set_enabled(s->commit_source, SD_EVENT_ONESHOT);
                if (r < 0) {
                        g_byte_array_set_size(s->queue, s->queue->len - (guint) p.frame_size);
                        g_array_set_size(s->pending, s->pending->len - 1);
                        return r;
                }
        }

        return 0;
}

int store_append(Store *s, const void *payload, size_t size, StoreDoneFn done, void *userdata) {
        return store_queue(s, payload, size, done, userdata, true);
}

static int on_lazy_due(sd_event_source *source, uint64_t usec, void *userdata) {
        Store *s = userdata;
        int r;

        if (s->failed || store_n_queued(s) == 0)
                return 0;
        r = sd_event_source_set_enabled(s->commit_source, SD_EVENT_ONESHOT);
        if (r < 0)
                /* Nothing would ever write them: answer them rather than strand them. */
                (void) store_enter_failed(s, r);
        return 0;
}

int store_append_lazy(Store *s, const void *payload, size_t size, uint64_t within_usec,
                      StoreDoneFn done, void *userdata) {
        uint64_t due;
        int r, enabled = SD_EVENT_OFF;

        assert(s);

        if (!s->event)
                return store_append(s, payload, size, done, userdata);

        r = sd_event_now(s->event, CLOCK_MONOTONIC, &due);
        if (r < 0)
                return r;
        due = within_usec > UINT64_MAX - due ? UINT64_MAX : due + within_usec;

        if (!s->lazy_source) {
                r = sd_event_add_time(s->event, &s->lazy_source, CLOCK_MONOTONIC, due, 0, on_lazy_due, s);
                if (r < 0)
                        return r;
                (void) sd_event_source_set_description(s->lazy_source, "store-lazy-commit");
        } else {
                uint64_t armed;

                /* an earlier deadline already armed stays */
                (void) sd_event_source_get_enabled(s->lazy_source, &enabled);
                if (enabled == SD_EVENT_OFF || sd_event_source_get_time(s->lazy_source, &armed) < 0 || armed > due) {
                        r = sd_event_source_set_time(s->lazy_source, due);
                        if (r >= 0)
                                r = sd_event_source_set_enabled(s->lazy_source, SD_EVENT_ONESHOT);
                        if (r < 0)
                                return r;
                }
        }

        return store_queue(s, payload, size, done, userdata, false);
}

int store_flush(Store *s) {
        guint n;
        int r;

        assert(s);

        if (!s->opened)
                return -EBADFD;
        if (s->failed)
                return -EROFS;

        /* What is queued now, batch by batch; appends made by the callbacks wait for the loop. */
        for (n = store_n_queued(s); n > 0 && !s->failed; ) {
                guint batch = MIN(n, s->batch_max);

                r = store_commit(s, batch);
                if (r < 0)
                        return r;
                n -= batch;
        }

        if (s->commit_source && store_n_queued(s) == 0)
                (void) sd_event_source_set_enabled(s->commit_source, SD_EVENT_OFF);

        return s->failed ? -EROFS : 0;
}

int store_compact(Store *s) {
        _cleanup_(closep) int fd = -1;
        uint64_t size;
        int r;

        assert(s);

        if (!s->opened)
                return -EBADFD;
        if (!s->snapshot_fn)
                return -EOPNOTSUPP;

        /* Never two at once; this one writes the current state, which covers the child's. */
        store_compact_abort(s);

        r = journal_write_new(s, s->snapshot_fn, s->snapshot_userdata, &fd, &size);
        if (r >= 0 && renameat(s->dir_fd, JOURNAL_NEW_NAME, s->dir_fd, JOURNAL_NAME) < 0)
                r = -errno;
        if (r < 0) {
                /* "journal" still names the old file, as good (or as failed) as before. */
                (void) unlink_if_present(s, JOURNAL_NEW_NAME);
                return r;
        }

        /* From here on "journal" names the new file: whatever is appended to the old one is lost. */
        closep(&s->fd);
        s->fd = take_fd(&fd);
        s->size = size;
        s->snapshot_size = size;
        s->compact_not_before = 0;

        /* Until the rename is durable a crash may bring back the old file, possibly the one whose
         * sync failed: no trust, no appends, try again. */
        r = sync_dir(s);
        if (r < 0)
                return store_enter_failed(s, r);

        if (s->failed) {
                s->failed = false;
                log_notice("Journal rewritten from a snapshot and verified, accepting changes again.");
        }
        s->retry_usec = STORE_RETRY_MIN_USEC;
        if (s->retry_source)
                (void) sd_event_source_set_enabled(s->retry_source, SD_EVENT_OFF);
        if (s->commit_source && store_n_queued(s) > 0)
                (void) sd_event_source_set_enabled(s->commit_source, SD_EVENT_ONESHOT);

        return 0;
}

bool store_is_compacting(Store *s) {
        assert(s);

        return s->compact_pid > 0;
}

bool store_is_failed(Store *s) {
        assert(s);

        return s->failed;
}

bool store_has_queued(Store *s) {
        assert(s);

        return store_n_queued(s) > 0;
}

uint64_t store_get_size(Store *s) {
        assert(s);

        return s->size;
}

uint64_t store_get_n_fsyncs(Store *s) {
        assert(s);

        return s->n_fsyncs;
}
