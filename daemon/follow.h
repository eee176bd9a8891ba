/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A job's event stream, for Follow: status changes, log lines, progress and the end, each a
 * line of JSON with a sequence number, encoded once and written to every follower. The history
 * is appended (not fsynced: it is a log, not state) to a file in the job's spool folder, so a
 * follower that comes later, or after a restart of jobd, reads it from any after_seq; then it
 * gets live events; after the terminal event the stream ends with EOF.
 *
 * Slow readers never block the daemon: each follower has a bounded buffer of bytes not yet
 * taken by the pipe (FOLLOW_BUFFER_MAX). A follower that falls further behind is cut off: its
 * stream ends (EOF) without the terminal event, possibly inside a line (readers drop a last line
 * without "\n"), and it may follow again from the last seq it read. History is sent to a new
 * follower from the file as the pipe drains, never all at once.
 *
 * Event lines (one JSON object each, fields in this order, "\n"-terminated):
 *   {"seq":1,"time":USEC,"event":"status","status":"running"}
 *   {"seq":2,"time":USEC,"event":"log","data":"a line of stderr"}
 *   {"seq":3,"time":USEC,"event":"progress","percent":40,"message":"resizing"}
 *   {"seq":4,"time":USEC,"event":"end","status":"failed","exit_status":3,"error":"exited with status 3"}
 * time is CLOCK_REALTIME µs; an absent string is "" (a success ends with "error":""). "end" is
 * the terminal event; nothing follows it.
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-event.h>
#include <glib.h>

#define FOLLOW_BUFFER_MAX (1024u * 1024u)     /* bytes queued per follower before it is cut off */
#define FOLLOW_LINE_MAX (64u * 1024u)         /* a log line or message longer than this is cut */
#define FOLLOW_HISTORY_NAME "events.jsonl"

typedef struct FollowStream FollowStream;

/* dir_fd: the job's spool folder (borrowed, dup'ed inside); the history file is created there
 * on the first event, or read from there if it exists (a restart: seq continues after the last
 * line; a torn last line is ignored). */
int follow_stream_new(FollowStream **ret, sd_event *event, int dir_fd, uint64_t job_id);
/* closes every follower's stream (EOF), without a terminal event */
FollowStream *follow_stream_free(FollowStream *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(FollowStream, follow_stream_free)

/* Each returns the event's seq, or -errno (a failed history write is logged and not fatal: the
 * event still goes to live followers). After the end event further events are refused with
 * -ESTALE. Strings are escaped as JSON; invalid UTF-8 is replaced with U+FFFD. */
int64_t follow_stream_status(FollowStream *s, const char *status);
int64_t follow_stream_log(FollowStream *s, const char *data, size_t size);
int64_t follow_stream_progress(FollowStream *s, unsigned percent, const char *message);
int64_t follow_stream_end(FollowStream *s, const char *status, int exit_status, const char *error);

/* Opens a stream from after_seq (0: from the start): returns the read end of a pipe (O_CLOEXEC,
 * blocking, the caller's to send and close). Refused with -EMFILE beyond max_followers, and with
 * -EBADMSG when the history was damaged by something other than jobd and after_seq can't be found. */
int follow_stream_add_follower(FollowStream *s, uint64_t after_seq, unsigned max_followers, int *ret_fd);
/* … and calls gone(userdata) once when that follower's stream is closed (EOF, cut off, the reader
 * left, the stream freed), so a caller can count followers per client; not called on failure. */
typedef void (*FollowGoneFn)(void *userdata);
int follow_stream_add_follower_full(FollowStream *s, uint64_t after_seq, unsigned max_followers,
                                    FollowGoneFn gone, void *userdata, int *ret_fd);

unsigned follow_stream_n_followers(FollowStream *s);
/* fn is called when the last follower left (not when the stream is freed). */
void follow_stream_set_unfollowed_fn(FollowStream *s, void (*fn)(void *userdata), void *userdata);
uint64_t follow_stream_last_seq(FollowStream *s);
bool follow_stream_ended(FollowStream *s);
/* bytes held for all followers that their pipes have not taken yet (at most FOLLOW_BUFFER_MAX each) */
size_t follow_stream_queued_bytes(FollowStream *s);

/* Pure encoder, for tests and fuzzing: appends one event line to out. kind is "status", "log",
 * "progress" or "end"; unused arguments are ignored. */
void follow_encode(GString *out, uint64_t seq, uint64_t time_usec, const char *kind, const char *text,
                   size_t text_size, unsigned percent, const char *status, int exit_status,
                   const char *error);
