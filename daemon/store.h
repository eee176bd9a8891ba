/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The journal store: persists opaque payloads (see record.h) durably, knows nothing of jobs
 * or D-Bus. One file "journal" in a state directory, appended to; group commit; replay;
 * compaction into a snapshot; a failed write or fsync puts it in a refusing state until
 * its owner's state was rewritten to a fresh file and verified.
 */

#include <stdbool.h>
#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>
#include <glib.h>

typedef struct Store Store;
typedef struct StoreWriter StoreWriter;

/* Called once per queued append, after its batch was fsynced (error 0), or failed (-errno). */
typedef void (*StoreDoneFn)(int error, void *userdata);
/* Called per payload during replay; a negative return aborts the replay with it. */
typedef int (*StoreReplayFn)(const void *payload, size_t size, void *userdata);
/* Writes the owner's whole live state with store_writer_add(); negative return aborts. */
typedef int (*StoreSnapshotFn)(StoreWriter *w, void *userdata);

typedef struct StoreReplayStats {
        uint64_t n_records;          /* payloads handed to the replay callback */
        uint64_t file_size;          /* before any cut */
        uint64_t torn_offset;        /* where a torn/corrupt tail was cut, or UINT64_MAX */
        uint64_t n_corrupt;          /* corrupt regions skipped in the middle */
        uint64_t first_corrupt_offset; /* UINT64_MAX if none */
} StoreReplayStats;

/* System calls the store makes on the journal, replaceable so tests can inject failures. */
typedef struct StoreIO {
        ssize_t (*write)(int fd, const void *buf, size_t size);
        int (*fsync)(int fd);   /* fdatasync semantics */
} StoreIO;

/* dir_fd is borrowed (dup'ed inside). event may be NULL: then appends are written only by
 * store_flush(). Does not read anything yet. */
int store_new(Store **ret, sd_event *event, int dir_fd);
Store *store_free(Store *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Store, store_free)

void store_set_io(Store *s, const StoreIO *io);                 /* NULL: the real calls */
void store_set_snapshot_fn(Store *s, StoreSnapshotFn fn, void *userdata);
/* Compact when the journal exceeds max(min_bytes, factor × size of the last snapshot). */
void store_set_compaction(Store *s, uint64_t min_bytes, unsigned factor);
/* At most this many appends share one write+fsync (default 1024). */
void store_set_batch_max(Store *s, unsigned n);

/* Creates the journal if missing, replays it, cuts a torn tail (logged with its offset),
 * skips and reports corrupt regions in the middle (then rewrites the file, keeping the old
 * one as journal.corrupt), and opens it for appending. -EPROTONOSUPPORT for a newer format,
 * -EBADMSG for a file that is not a journal: both leave the file untouched. */
int store_open(Store *s, StoreReplayFn fn, void *userdata, StoreReplayStats *ret_stats);

/* Queues a payload; done is called later from the event loop (or from store_flush). Refused
 * with -EROFS while the store is failed, -E2BIG over RECORD_PAYLOAD_MAX. */
int store_append(Store *s, const void *payload, size_t size, StoreDoneFn done, void *userdata);
/* The same for a change nobody waits on at once: its write and fsync ride the next batch,
 * made at the latest within_usec from now. */
int store_append_lazy(Store *s, const void *payload, size_t size, uint64_t within_usec,
                      StoreDoneFn done, void *userdata);
/* Writes and fsyncs everything queued now, calling the done callbacks. */
int store_flush(Store *s);

/* Writes a snapshot to journal.new, fsync, verifies it by reading it back, renames it over
 * journal, fsyncs the directory. On success a failed store accepts appends again. Synchronous;
 * it kills a compaction running in a child first. The automatic compaction after a commit runs
 * in a forked child instead when the store has an event loop. */
int store_compact(Store *s);
int store_writer_add(StoreWriter *w, const void *payload, size_t size);

/* An automatic compaction runs in a child; the loop switches to its file when it is done. */
bool store_is_compacting(Store *s);
bool store_is_failed(Store *s);
/* Appends queued and not answered yet: a change on its way to the disk. */
bool store_has_queued(Store *s);
uint64_t store_get_size(Store *s);         /* bytes in the journal file */
uint64_t store_get_n_fsyncs(Store *s);     /* for tests and stats: batches made durable */
