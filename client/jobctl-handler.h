/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * One run of a worker's handler for one claimed job, without the bus: a fresh workspace folder,
 * the handler in its own process group with the parameters on stdin, the input on fd 3 and JOBD_*
 * in its environment; its stdout kept as the Result, its stderr cut into log lines; when it has
 * exited, what is left of its group killed, the pipes drained and the files in outputs/ opened.
 * The Handler owns the process, the pipes and the workspace; freeing it kills and reaps the
 * process group's leader and removes the workspace.
 */

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>
#include <systemd/sd-event.h>

#define HANDLER_RESULT_MAX     (1024u * 1024u)  /* stdout bytes kept, as jobd keeps of a local job */
#define HANDLER_LOG_LINE_MAX   4096u            /* longer stderr lines are split, as jobd does */
#define HANDLER_LOG_BUFFER_MAX (64u * 1024u)    /* stderr is not read further until lines are taken */
#define HANDLER_OUTPUTS_MAX    200u             /* fds in one message: the kernel passes at most 253 */

typedef struct Handler Handler;

typedef struct HandlerJob {
        uint64_t id;
        const char *token;
        const char *type;
        const char *parameters;
        uint32_t attempt;
        int input_fd;                   /* -1: none; borrowed (duplicated for the handler) */
} HandlerJob;

/* on_log: stderr lines are waiting (handler_log_take()). on_done: the handler has exited and
 * its pipes are drained; called once. Either may free the Handler. */
typedef void (*HandlerFn)(Handler *h, void *userdata);

int handler_start(Handler **ret, sd_event *event, char **command, const HandlerJob *job,
                  HandlerFn on_log, HandlerFn on_done, void *userdata);
Handler *handler_free(Handler *h);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Handler, handler_free)

/* Signals the process group (and SIGCONT, so a stopped one gets it); when kill_after_usec > 0,
 * SIGKILL follows if the handler has not exited by then. */
void handler_kill(Handler *h, int sig, uint64_t kill_after_usec);

bool handler_has_log(const Handler *h);
/* Whole lines, "\n" between them, together at most max (>= 3 * HANDLER_LOG_LINE_MAX + 1) bytes,
 * valid UTF-8 without NUL; NULL when none are waiting. */
char *handler_log_take(Handler *h, size_t max);

/* After on_done: */
bool handler_succeeded(const Handler *h);
/* "exited with status 3", "killed by signal SIGKILL" */
char *handler_describe_exit(const Handler *h);
uint64_t handler_runtime_usec(const Handler *h);
/* The Result as jobd makes one of a local job: stdout if it is JSON, else a JSON string holding
 * the text (invalid UTF-8 replaced), "null" when empty; truncated when stdout held more than
 * HANDLER_RESULT_MAX (then always a string). */
char *handler_result(const Handler *h, bool *ret_truncated);

typedef struct HandlerOutputs {
        GPtrArray *names;               /* char *, plain file names */
        GArray *fds;                    /* int, read-only, one per name */
} HandlerOutputs;
void handler_outputs_done(HandlerOutputs *o);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(HandlerOutputs, handler_outputs_done)

/* Regular files in $JOBD_WORKSPACE/outputs/, opened without following symlinks; anything else
 * there is skipped with a warning. -E2BIG beyond HANDLER_OUTPUTS_MAX. */
int handler_open_outputs(Handler *h, HandlerOutputs *ret);
