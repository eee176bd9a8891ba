/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A worker's handler process for one job. Invariants:
 *  - The handler leads its own process group (pgid = pid), so one kill() reaches everything it
 *    started, and a Ctrl-C at the terminal reaches jobctl (which releases the job) and not it.
 *  - The group is signalled only while the leader is unreaped: sd-event reaps a child after its
 *    callback returns, and a pid that is some group's id is not reused, so kill(-pid) cannot hit
 *    a stranger. When the leader exits, what is left of its group is killed at once: leftovers
 *    would otherwise keep the pipes open and run on after the job ended.
 *  - on_done comes once, after the exit and EOF on both pipes (a pipe some escaped process keeps
 *    open is given up after HANDLER_DRAIN_USEC), from a defer source of its own: never from the
 *    child source's callback, after which sd-event still reaps through that source.
 *  - Every fd handed to the child is above 3 before the dup2()s, so none is overwritten before
 *    it is copied and none is a dup2() onto itself (which would keep O_CLOEXEC).
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <json-glib/json-glib.h>

#include "cleanup.h"
#include "fs-util.h"
#include "jobctl-handler.h"
#include "jobctl-output.h"
#include "jobctl-time.h"
#include "params.h"

#define HANDLER_DRAIN_USEC (2 * USEC_PER_SEC)
#define READ_CHUNK (64u * 1024u)

struct Handler {
        sd_event *event;
        uint64_t id;
        char *name;                     /* "job 42 (resize)", escaped, for warnings */
        HandlerFn on_log;
        HandlerFn on_done;
        void *userdata;

        char *workspace;                /* absolute path, removed on free */
        int workspace_fd;

        pid_t pid;                      /* also the process group; 0 once reaped */
        sd_event_source *child_source;
        sd_event_source *kill_timer;
        sd_event_source *drain_timer;
        sd_event_source *done_source;   /* defer, oneshot: checks whether on_done is due */
        uint64_t start_usec;            /* CLOCK_MONOTONIC */
        uint64_t end_usec;
        bool exited;
        int exit_code;                  /* CLD_EXITED, CLD_KILLED, CLD_DUMPED */
        int exit_status;                /* status or signal */

        int stdout_fd;
        sd_event_source *stdout_source;
        GString *out;
        bool out_truncated;

        int stderr_fd;
        sd_event_source *stderr_source;
        GString *line;                  /* the stderr line being read, raw bytes */
        GString *log;                   /* complete lines, each valid UTF-8 and ending in "\n" */

        bool done;
};

static uint64_t now_monotonic_usec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / NSEC_PER_USEC;
}

/* fd as a CLOEXEC fd numbered min or above; closes the original */
static int fd_move_above(int fd, int min) {
        int moved;

        if (fd < 0 || fd >= min)
                return fd;
        moved = fcntl(fd, F_DUPFD_CLOEXEC, min);
        (void) close(fd);
        return moved < 0 ? -errno : moved;
}

static void close_source(sd_event_source **source, int *fd) {
        *source = sd_event_source_disable_unref(*source);
        if (*fd >= 0)
                (void) close(*fd);
        *fd = -1;
}

Handler *handler_free(Handler *h) {
        if (!h)
                return NULL;

        h->child_source = sd_event_source_disable_unref(h->child_source);
        h->kill_timer = sd_event_source_disable_unref(h->kill_timer);
        h->drain_timer = sd_event_source_disable_unref(h->drain_timer);
        h->done_source = sd_event_source_disable_unref(h->done_source);
        if (h->pid > 0) {
                /* still ours to reap: nothing of it may outlive the job */
                (void) kill(-h->pid, SIGKILL);
                while (waitpid(h->pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        }
        close_source(&h->stdout_source, &h->stdout_fd);
        close_source(&h->stderr_source, &h->stderr_fd);

        if (h->workspace_fd >= 0)
                (void) close(h->workspace_fd);
        if (h->workspace) {
                int r = rm_rf_at(AT_FDCWD, h->workspace);
                if (r < 0)
                        log_warning("%s: failed to remove workspace %s, ignoring: %s", h->name, h->workspace,
                                    strerror(-r));
        }

        g_free(h->workspace);
        g_free(h->name);
        if (h->out)
                g_string_free(h->out, TRUE);
        if (h->line)
                g_string_free(h->line, TRUE);
        if (h->log)
                g_string_free(h->log, TRUE);
        sd_event_unref(h->event);
        g_free(h);
        return NULL;
}

/* ---- the workspace ---- */

static int workspace_create(Handler *h) {
        const char *base = getenv("TMPDIR");
        int r;

        if (!base || !g_path_is_absolute(base))
                base = "/tmp";
        h->workspace = g_strdup_printf("%s/jobctl-worker-%" PRIu64 "-XXXXXX", base, h->id);
        if (!mkdtemp(h->workspace)) {           /* 0700 */
                r = -errno;
                g_clear_pointer(&h->workspace, g_free);
                return r;
        }
        h->workspace_fd = open(h->workspace, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (h->workspace_fd < 0)
                return -errno;
        if (mkdirat(h->workspace_fd, "outputs", 0700) < 0)
                return -errno;
        return 0;
}

/* ---- reading the pipes ---- */

static int on_done_check(sd_event_source *s, void *userdata) {
        Handler *h = userdata;

        if (h->done || !h->exited || h->stdout_fd >= 0 || h->stderr_fd >= 0)
                return 0;
        h->done = true;
        h->drain_timer = sd_event_source_disable_unref(h->drain_timer);
        h->on_done(h, h->userdata);             /* may free h */
        return 0;
}

static void handler_check_done(Handler *h) {
        (void) sd_event_source_set_enabled(h->done_source, SD_EVENT_ONESHOT);
}

static void log_add_line(Handler *h, const char *raw, size_t size) {
        /* jobd takes text: NULs and invalid bytes become U+FFFD */
        g_autofree char *valid = g_utf8_make_valid(raw, (gssize) size);

        g_string_append(h->log, valid);
        g_string_append_c(h->log, '\n');
}

/* Where to cut a line that grew too long: not inside a UTF-8 character. */
static size_t line_cut(const GString *line) {
        size_t cut = HANDLER_LOG_LINE_MAX;

        for (unsigned i = 0; i < 3 && cut > 1 && ((unsigned char) line->str[cut] & 0xc0) == 0x80; i++)
                cut--;
        return cut;
}

static void stderr_consume(Handler *h, const char *buf, size_t size) {
        for (const char *p = buf, *end = buf + size; p < end;) {
                const char *nl = memchr(p, '\n', end - p);
                size_t n = nl ? (size_t) (nl - p) : (size_t) (end - p);

                g_string_append_len(h->line, p, n);
                while (h->line->len > HANDLER_LOG_LINE_MAX) {
                        size_t cut = line_cut(h->line);

                        log_add_line(h, h->line->str, cut);
                        g_string_erase(h->line, 0, cut);
                }
                if (!nl)
                        break;
                log_add_line(h, h->line->str, h->line->len);
                g_string_truncate(h->line, 0);
                p = nl + 1;
        }
}

static void stderr_eof(Handler *h) {
        if (h->line->len > 0)
                log_add_line(h, h->line->str, h->line->len);
        g_string_truncate(h->line, 0);
        close_source(&h->stderr_source, &h->stderr_fd);
}

/* Reads one chunk; 1 when the pipe is at EOF (or broken), 0 otherwise. */
static int pipe_read(int fd, char *buf, size_t size, size_t *ret_n) {
        ssize_t n;

        *ret_n = 0;
        n = read(fd, buf, size);
        if (n < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : 1;
        if (n == 0)
                return 1;
        *ret_n = (size_t) n;
        return 0;
}

static int on_stderr(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Handler *h = userdata;
        char buf[READ_CHUNK];
        size_t n;

        if (pipe_read(fd, buf, sizeof(buf), &n) > 0)
                stderr_eof(h);
        else
                stderr_consume(h, buf, n);

        /* a handler writing faster than jobd takes its log waits on its pipe */
        if (h->stderr_source && h->log->len >= HANDLER_LOG_BUFFER_MAX)
                (void) sd_event_source_set_enabled(h->stderr_source, SD_EVENT_OFF);

        if (!h->stderr_source)
                handler_check_done(h);
        if (h->log->len > 0)
                h->on_log(h, h->userdata);      /* may free h */
        return 0;
}

static int on_stdout(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Handler *h = userdata;
        char buf[READ_CHUNK];
        size_t n;

        if (pipe_read(fd, buf, sizeof(buf), &n) > 0) {
                close_source(&h->stdout_source, &h->stdout_fd);
                handler_check_done(h);
                return 0;
        }
        /* past the limit read on, so the handler does not block, but keep nothing */
        if (h->out->len + n > HANDLER_RESULT_MAX) {
                n = HANDLER_RESULT_MAX - h->out->len;
                h->out_truncated = true;
        }
        g_string_append_len(h->out, buf, n);
        return 0;
}

static int on_drain_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Handler *h = userdata;

        /* something outside the process group holds a pipe open; what came is what we have */
        close_source(&h->stdout_source, &h->stdout_fd);
        if (h->stderr_source && sd_event_source_get_enabled(h->stderr_source, NULL) == 0) {
                /* not stuck: paused until jobd takes the log before it; give that time */
                (void) sd_event_source_set_time_relative(s, HANDLER_DRAIN_USEC);
                (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        } else if (h->stderr_fd >= 0)
                stderr_eof(h);
        handler_check_done(h);
        if (h->log->len > 0)
                h->on_log(h, h->userdata);      /* may free h */
        return 0;
}

static int on_child(sd_event_source *s, const siginfo_t *si, void *userdata) {
        Handler *h = userdata;

        h->end_usec = now_monotonic_usec();
        h->exited = true;
        h->exit_code = si->si_code;
        h->exit_status = si->si_status;
        h->kill_timer = sd_event_source_disable_unref(h->kill_timer);

        /* the leader is a zombie until this returns: its group id is still safe to use */
        (void) kill(-h->pid, SIGKILL);
        h->pid = 0;                     /* sd-event reaps it */

        (void) sd_event_add_time_relative(h->event, &h->drain_timer, CLOCK_MONOTONIC, HANDLER_DRAIN_USEC,
                                          0, on_drain_timeout, h);
        handler_check_done(h);
        return 0;
}

/* ---- starting ---- */

typedef struct ChildFds {
        int stdin_fd;
        int stdout_fd;
        int stderr_fd;
        int input_fd;
} ChildFds;

static void child_fds_done(ChildFds *f) {
        closep(&f->stdin_fd);
        closep(&f->stdout_fd);
        closep(&f->stderr_fd);
        closep(&f->input_fd);
}
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(ChildFds, child_fds_done)

static char **handler_environ(const Handler *h, const HandlerJob *job) {
        char **env = g_get_environ();
        char number[32];

        g_snprintf(number, sizeof(number), "%" PRIu64, job->id);
        env = g_environ_setenv(env, "JOBD_JOB_ID", number, TRUE);
        env = g_environ_setenv(env, "JOBD_TOKEN", job->token, TRUE);
        env = g_environ_setenv(env, "JOBD_TYPE", job->type, TRUE);
        g_snprintf(number, sizeof(number), "%" PRIu32, job->attempt);
        env = g_environ_setenv(env, "JOBD_ATTEMPT", number, TRUE);
        env = g_environ_setenv(env, "JOBD_WORKSPACE", h->workspace, TRUE);
        /* as jobd does for local jobs: temporary files go away with the workspace */
        env = g_environ_setenv(env, "TMPDIR", h->workspace, TRUE);
        return env;
}

_Noreturn static void child_exec(char **command, char **env, const ChildFds *f, pid_t parent) {
        static const int reset[] = { SIGTERM, SIGINT, SIGCHLD, SIGPIPE, SIGHUP, SIGQUIT };
        sigset_t none;

        (void) setpgid(0, 0);
        /* jobctl killed outright: its handler should not run on unsupervised */
        if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
                _exit(EXIT_FAILURE);
        for (size_t i = 0; i < G_N_ELEMENTS(reset); i++)
                (void) signal(reset[i], SIG_DFL);
        sigemptyset(&none);
        (void) sigprocmask(SIG_SETMASK, &none, NULL);

        if (dup2(f->stdin_fd, STDIN_FILENO) < 0 || dup2(f->stdout_fd, STDOUT_FILENO) < 0 ||
            dup2(f->stderr_fd, STDERR_FILENO) < 0)
                _exit(EXIT_FAILURE);
        if (f->input_fd >= 0 ? dup2(f->input_fd, 3) < 0 : (close(3), false))
                _exit(EXIT_FAILURE);
        /* ours are all O_CLOEXEC; this is for what jobctl itself inherited */
        (void) close_range(4, ~0U, 0);

        execvpe(command[0], command, env);
        dprintf(STDERR_FILENO, "jobctl worker: failed to execute %s: %s\n", command[0], strerror(errno));
        _exit(127);
}

static int pipe_above(int *ret_read, int *ret_write) {
        int p[2];

        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        p[0] = fd_move_above(p[0], 4);
        p[1] = fd_move_above(p[1], 4);
        if (p[0] < 0 || p[1] < 0) {
                int r = p[0] < 0 ? p[0] : p[1];
                closep(&p[0]);
                closep(&p[1]);
                return r;
        }
        *ret_read = p[0];
        *ret_write = p[1];
        return 0;
}

static int handler_spawn(Handler *h, char **command, const HandlerJob *job) {
        g_auto(ChildFds) f = { -1, -1, -1, -1 };
        g_auto(GStrv) env = NULL;
        pid_t parent = getpid(), pid;
        int r;

        r = memfd_new_with_data("jobd-parameters", job->parameters, strlen(job->parameters));
        if (r < 0)
                return r;
        f.stdin_fd = fd_move_above(r, 4);
        if (f.stdin_fd < 0)
                return f.stdin_fd;
        if (job->input_fd >= 0) {
                f.input_fd = fcntl(job->input_fd, F_DUPFD_CLOEXEC, 4);
                if (f.input_fd < 0)
                        return -errno;
                /* from the start, whatever an earlier reader of this description did */
                (void) lseek(f.input_fd, 0, SEEK_SET);
        }
        r = pipe_above(&h->stdout_fd, &f.stdout_fd);
        if (r < 0)
                return r;
        r = pipe_above(&h->stderr_fd, &f.stderr_fd);
        if (r < 0)
                return r;
        if (fcntl(h->stdout_fd, F_SETFL, O_NONBLOCK) < 0 || fcntl(h->stderr_fd, F_SETFL, O_NONBLOCK) < 0)
                return -errno;

        env = handler_environ(h, job);
        fflush(NULL);                   /* nothing buffered is written twice */

        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0)
                child_exec(command, env, &f, parent);

        /* both sides, so that a kill() right after this cannot miss the group */
        (void) setpgid(pid, pid);
        h->pid = pid;
        h->start_usec = now_monotonic_usec();

        r = sd_event_add_child(h->event, &h->child_source, pid, WEXITED, on_child, h);
        if (r < 0)
                return r;
        r = sd_event_add_defer(h->event, &h->done_source, on_done_check, h);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(h->done_source, SD_EVENT_OFF);
        r = sd_event_add_io(h->event, &h->stdout_source, h->stdout_fd, EPOLLIN, on_stdout, h);
        if (r < 0)
                return r;
        r = sd_event_add_io(h->event, &h->stderr_source, h->stderr_fd, EPOLLIN, on_stderr, h);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(h->child_source, "handler");
        (void) sd_event_source_set_description(h->stdout_source, "handler-stdout");
        (void) sd_event_source_set_description(h->stderr_source, "handler-stderr");
        (void) sd_event_source_set_description(h->done_source, "handler-done");
        return 0;
}

int handler_start(Handler **ret, sd_event *event, char **command, const HandlerJob *job,
                  HandlerFn on_log, HandlerFn on_done, void *userdata) {
        g_autoptr(Handler) h = g_new0(Handler, 1);
        g_autofree char *shown_type = text_escape(job->type);
        int r;

        *h = (Handler) {
                .event = sd_event_ref(event),
                .id = job->id,
                .name = g_strdup_printf("job %" PRIu64 " (%s)", job->id, shown_type),
                .on_log = on_log,
                .on_done = on_done,
                .userdata = userdata,
                .workspace_fd = -1,
                .stdout_fd = -1,
                .stderr_fd = -1,
                .out = g_string_new(NULL),
                .line = g_string_new(NULL),
                .log = g_string_new(NULL),
        };

        r = workspace_create(h);
        if (r < 0)
                return r;
        r = handler_spawn(h, command, job);
        if (r < 0)
                return r;               /* handler_free() kills and reaps what was started */

        *ret = g_steal_pointer(&h);
        return 0;
}

static int on_kill_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        Handler *h = userdata;

        h->kill_timer = sd_event_source_disable_unref(h->kill_timer);
        if (h->pid > 0)
                (void) kill(-h->pid, SIGKILL);
        return 0;
}

void handler_kill(Handler *h, int sig, uint64_t kill_after_usec) {
        if (h->pid <= 0)
                return;
        (void) kill(-h->pid, sig);
        if (sig != SIGKILL)
                (void) kill(-h->pid, SIGCONT);
        if (sig != SIGKILL && kill_after_usec > 0 && !h->kill_timer)
                (void) sd_event_add_time_relative(h->event, &h->kill_timer, CLOCK_MONOTONIC, kill_after_usec,
                                                  0, on_kill_timeout, h);
}

/* ---- what it left ---- */

bool handler_has_log(const Handler *h) {
        return h->log->len > 0;
}

char *handler_log_take(Handler *h, size_t max) {
        size_t take = 0;
        char *text;

        g_assert(max > 3 * HANDLER_LOG_LINE_MAX);

        if (h->log->len == 0)
                return NULL;
        /* lines are at most 3 * HANDLER_LOG_LINE_MAX + 1 bytes once made valid: the first fits */
        for (;;) {
                const char *nl = memchr(h->log->str + take, '\n', h->log->len - take);
                size_t next = (size_t) (nl - h->log->str) + 1;

                if (next > max)
                        break;
                take = next;
                if (take == h->log->len)
                        break;
        }

        text = g_strndup(h->log->str, take - 1);        /* without the last "\n" */
        g_string_erase(h->log, 0, take);
        if (h->stderr_source && h->log->len < HANDLER_LOG_BUFFER_MAX)
                (void) sd_event_source_set_enabled(h->stderr_source, SD_EVENT_ON);
        return text;
}

bool handler_succeeded(const Handler *h) {
        return h->exited && h->exit_code == CLD_EXITED && h->exit_status == 0;
}

char *handler_describe_exit(const Handler *h) {
        const char *name;

        if (h->exit_code == CLD_EXITED)
                return g_strdup_printf("exited with status %d", h->exit_status);
        name = sigabbrev_np(h->exit_status);
        if (name)
                return g_strdup_printf("killed by signal SIG%s%s", name,
                                       h->exit_code == CLD_DUMPED ? " (core dumped)" : "");
        return g_strdup_printf("killed by signal %d", h->exit_status);
}

uint64_t handler_runtime_usec(const Handler *h) {
        return (h->exited ? h->end_usec : now_monotonic_usec()) - h->start_usec;
}

char *handler_result(const Handler *h, bool *ret_truncated) {
        g_autoptr(JsonNode) node = NULL;
        g_autofree char *valid = NULL;

        *ret_truncated = h->out_truncated;
        if (h->out->len == 0)
                return g_strdup("null");
        if (!h->out_truncated && strlen(h->out->str) == h->out->len &&
            g_utf8_validate(h->out->str, (gssize) h->out->len, NULL) && params_is_json(h->out->str))
                return g_strdup(h->out->str);

        valid = g_utf8_make_valid(h->out->str, (gssize) h->out->len);
        node = json_node_init_string(json_node_alloc(), valid);
        return json_to_string(node, FALSE);
}

void handler_outputs_done(HandlerOutputs *o) {
        for (unsigned i = 0; o->fds && i < o->fds->len; i++)
                (void) close(g_array_index(o->fds, int, i));
        g_clear_pointer(&o->fds, g_array_unref);
        g_clear_pointer(&o->names, g_ptr_array_unref);
}

/* An open read-only fd of outputs/name when it is a regular file; -1 after a warning when not. */
static int output_open(const Handler *h, int dir_fd, const char *name) {
        g_autofree char *shown = text_escape(name);
        _cleanup_(closep) int fd = -1;
        struct stat st;
        int r;

        if (!filename_is_plain(name) || !g_utf8_validate(name, -1, NULL)) {
                log_warning("%s: skipping outputs/%s: not a plain UTF-8 file name.", h->name, shown);
                return -1;
        }
        /* O_NONBLOCK: a FIFO left there must not hang us in open() */
        fd = openat(dir_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                r = errno;
                log_warning("%s: skipping outputs/%s: %s.", h->name, shown,
                            r == ELOOP ? "a symbolic link" : strerror(r));
                return -1;
        }
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                log_warning("%s: skipping outputs/%s: not a regular file.", h->name, shown);
                return -1;
        }
        (void) fcntl(fd, F_SETFL, 0);

        r = fd;
        fd = -1;
        return r;
}

int handler_open_outputs(Handler *h, HandlerOutputs *ret) {
        g_auto(HandlerOutputs) o = {
                .names = g_ptr_array_new_with_free_func(g_free),
                .fds = g_array_new(FALSE, FALSE, sizeof(int)),
        };
        struct dirent *de;
        DIR *d;
        int fd;

        fd = openat(h->workspace_fd, "outputs", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0) {
                if (errno != ENOENT)
                        log_warning("%s: ignoring outputs/: %s.", h->name,
                                    errno == ENOTDIR || errno == ELOOP ? "not a directory" : strerror(errno));
                *ret = o;
                o = (HandlerOutputs) {};
                return 0;
        }
        d = fdopendir(fd);
        if (!d) {
                int r = -errno;
                (void) close(fd);
                return r;
        }
        while ((de = readdir(d))) {
                int out_fd;

                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (o.names->len >= HANDLER_OUTPUTS_MAX) {
                        closedir(d);
                        return -E2BIG;
                }
                out_fd = output_open(h, dirfd(d), de->d_name);
                if (out_fd < 0)
                        continue;
                g_ptr_array_add(o.names, g_strdup(de->d_name));
                g_array_append_val(o.fds, out_fd);
        }
        closedir(d);

        *ret = o;
        o = (HandlerOutputs) {};
        return 0;
}
