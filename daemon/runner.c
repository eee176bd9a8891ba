/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Owns the executions (local job attempts) and, for each: its supervisor process until it is
 * reaped, jobd's ends of the supervisor's pipes and their event sources, and the bus slots of
 * the calls to systemd about its scope. The Runner owns the one JobRemoved match all executions
 * share (installed before any StartTransientUnit can be sent) and the pending stale-scope stops.
 *
 * An execution goes STARTING (supervisor forked, StartTransientUnit sent) → RUNNING (systemd's
 * start job for the scope is done and the supervisor was released) → ENDING (the result is
 * fixed, the hold pipe closed) → reaped → done() → freed.
 *
 * Between jobd and a supervisor, all O_CLOEXEC, jobd's ends O_NONBLOCK:
 *   ctl     jobd → supervisor, a socket pair: one byte releases it; EOF (closed, or jobd died)
 *           lets it go: before the release without running anything, after its report by
 *           exiting. Doubles as the hold pipe.
 *   report  supervisor → jobd: one Report (a single write below PIPE_BUF, so atomic).
 *   stdout, stderr  the job's pipes; the supervisor closes its copies once the job runs.
 *
 * The supervisor prepares everything that does not need the scope (environment, mount
 * namespace, nice) while systemd creates it; after the release it starts the job with
 * clone(CLONE_VM|CLONE_VFORK), like posix_spawn(), then waits for it.
 *
 * Invariants:
 *  - done() is called exactly once, only after the supervisor was reaped and never from inside
 *    runner_start() or execution_cancel(): no execution leaves a zombie, and when done() runs
 *    nothing of ours is left in the scope.
 *  - The result is fixed once (e->ended); the first cause wins.
 *  - Accounting is read while the supervisor lives, i.e. before the hold pipe is closed: the
 *    supervisor keeps the scope's cgroup, which systemd removes once it is empty.
 *  - Right after fork() the supervisor closes every fd but its pipes and never touches the
 *    parent's sd-bus or sd-event objects; in particular it does not keep jobd's bus connection
 *    alive when jobd dies.
 *  - Processes the job leaves behind after its main process ended are stopped with the scope
 *    (StopUnit), like the rest of a service's control group: none runs on unaccounted.
 *  - A scope systemd may have created for an execution that ends before its release is stopped
 *    too: systemd 252 keeps a scope whose only pid died before it was attached "active" forever.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <glib.h>

#include "cgroup-util.h"
#include "cleanup.h"
#include "log.h"
#include "parse-util.h"
#include "runner.h"

#define SYSTEMD_DEST         "org.freedesktop.systemd1"
#define SYSTEMD_PATH         "/org/freedesktop/systemd1"
#define SYSTEMD_MANAGER      "org.freedesktop.systemd1.Manager"
#define SYSTEMD_NO_SUCH_UNIT "org.freedesktop.systemd1.NoSuchUnit"

#define DEFAULT_PATH  "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define LOG_LINE_MAX  4096u             /* longer stderr lines are split */
#define READ_CHUNK    (64u * 1024u)     /* per wakeup and pipe, so one chatty job cannot starve the loop */
#define JOB_CHILD_STACK (256u * 1024u)  /* the job's process until exec: a PATH_MAX buffer and change */

#define USEC_PER_SEC    UINT64_C(1000000)

#define _noreturn_ __attribute__((noreturn))
/* For what runs on the job child's own clone() stack: ASan, which does not know that stack, would
 * warn on the way into every noreturn call (the exec failure path) */
#define _no_sanitize_address_ __attribute__((no_sanitize_address))

static int safe_close(int fd) {
        if (fd >= 0)
                (void) close(fd);
        return -1;
}

static uint64_t now_usec(clockid_t clock) {
        struct timespec ts;
        int r;

        r = clock_gettime(clock, &ts);
        assert(r == 0);
        (void) r;
        return (uint64_t) ts.tv_sec * USEC_PER_SEC + (uint64_t) ts.tv_nsec / 1000;
}

/* ---------------------------------------------------------------------------------------------
 * What the supervisor reports. Stages name the step that failed, for the error text.
 */

typedef enum ReportKind {
        REPORT_EXITED = 1,      /* status: the job's wait status */
        REPORT_FAILED = 2,      /* stage and error: setting it up or exec failed */
} ReportKind;

typedef enum SetupStage {
        STAGE_NAMESPACE,
        STAGE_MOUNT,
        STAGE_NICE,
        STAGE_STDIO,
        STAGE_FORK,
        STAGE_CREDENTIALS,
        STAGE_CHDIR,
        STAGE_CLOSE_FDS,
        STAGE_EXEC,
} SetupStage;

typedef struct Report {
        int32_t kind;
        int32_t status;
        int32_t stage;
        int32_t error;
} Report;

typedef enum ExecutionState {
        EXECUTION_STARTING,
        EXECUTION_RUNNING,
        EXECUTION_ENDING,
} ExecutionState;

struct Runner {
        sd_event *event;
        sd_bus *bus;
        sd_bus_slot *job_removed_slot;
        GHashTable *executions;         /* unit name (owned by the Execution) → Execution */
        GList *stops;                   /* StaleStop */
};

struct Execution {
        Runner *runner;                 /* borrowed */
        ExecutionState state;

        uint64_t job_id;
        char *type;
        char *unit_name;
        char *argv0;
        char *cwd;
        char *workspace;
        uint64_t memory_max;
        uint64_t tasks_max;
        uint64_t runtime_max_usec;
        size_t result_max;
        uid_t uid;
        gid_t gid;
        int nice;

        pid_t supervisor;
        int pidfd;
        int ctl_fd;
        int report_fd;
        int stdout_fd;
        int stderr_fd;
        sd_event_source *pidfd_source;
        sd_event_source *report_source;
        sd_event_source *stdout_source;
        sd_event_source *stderr_source;
        bool reaped;
        siginfo_t supervisor_exit;

        sd_bus_slot *start_slot;
        sd_bus_slot *stop_slot;
        char *start_job;                /* systemd's job for the start, from the reply */
        char *early_job;                /* a JobRemoved for our unit that came before the reply */
        char *early_result;
        bool start_refused;             /* StartTransientUnit failed: no scope of ours exists */

        uint64_t start_call_usec;       /* CLOCK_MONOTONIC when StartTransientUnit went out */
        uint64_t started_usec;          /* CLOCK_REALTIME at the release */
        CgroupPaths cgroup;

        bool have_report;
        Report report;
        bool cancelled;
        bool stdout_eof;
        bool stderr_eof;
        GByteArray *stdout_buf;
        bool stdout_truncated;
        GByteArray *stderr_line;

        bool ended;
        RunResult result;

        RunnerStartedFn started;
        RunnerLogFn log;
        RunnerDoneFn done;
        void *userdata;
};

typedef struct StaleStop {
        Runner *runner;                 /* borrowed */
        char *unit_name;
        sd_bus_slot *slot;
        char *job;
        char *early_job;
        char *early_result;
        RunnerStopFn done;
        void *userdata;
} StaleStop;

static void execution_progress(Execution *e);

/* ---------------------------------------------------------------------------------------------
 * Text for people: "5min", "64M", "SEGV".
 */

static char *format_bytes(uint64_t bytes) {
        static const char suffixes[] = "KMGTPE";

        for (int i = 5; i >= 0; i--) {
                uint64_t factor = UINT64_C(1024) << (10 * i);

                if (bytes < factor)
                        continue;
                if (bytes % factor == 0)
                        return g_strdup_printf("%" PRIu64 "%c", bytes / factor, suffixes[i]);
                return g_strdup_printf("%.1f%c", (double) bytes / (double) factor, suffixes[i]);
        }
        return g_strdup_printf("%" PRIu64 "B", bytes);
}

static char *format_signal(int sig) {
        const char *name = sigabbrev_np(sig);

        return name ? g_strdup(name) : g_strdup_printf("%i", sig);
}

static char *format_wait_status(int status) {
        g_autofree char *sig = NULL;

        if (WIFEXITED(status))
                return g_strdup_printf("exited with status %i", WEXITSTATUS(status));
        sig = format_signal(WTERMSIG(status));
        return g_strdup_printf("killed by signal %s%s", sig, WCOREDUMP(status) ? " (core dumped)" : "");
}

/* ---------------------------------------------------------------------------------------------
 * The supervisor and the job's process. The supervisor runs after fork() of a single-threaded
 * jobd, so libc (malloc, NSS) is safe in it; the job's process shares the supervisor's memory
 * until it execs and only makes syscalls. Both leave only through exec or _exit, never by
 * returning, so no atexit handler or sanitizer leak check of jobd's runs in them.
 */

typedef struct SupervisorFds {
        int ctl;
        int report;
        int stdin_fd;
        int stdout_fd;
        int stderr_fd;
} SupervisorFds;

static void write_report(int fd, const Report *rep) {
        ssize_t n;

        do
                n = write(fd, rep, sizeof(*rep));
        while (n < 0 && errno == EINTR);
}

static int int_cmp(const void *a, const void *b) {
        return *(const int *) a - *(const int *) b;
}

/* close_range(), or on kernels before 5.9 one close() per possible fd; no allocation, so the
 * job's process may call it too */
static int close_fd_range(unsigned from, unsigned to) {
        struct rlimit rl;

        if (close_range(from, to, 0) >= 0)
                return 0;
        if (errno != ENOSYS)
                return -errno;
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return -errno;
        for (uint64_t fd = from; fd <= to && fd < rl.rlim_cur; fd++)
                (void) close((int) fd);
        return 0;
}

/* Closes every fd >= 3 but those in keep. */
static int close_all_fds_except(const int *keep, size_t n) {
        int sorted[8], r;
        unsigned from = 3;

        assert(n <= G_N_ELEMENTS(sorted));
        memcpy(sorted, keep, n * sizeof(int));
        qsort(sorted, n, sizeof(int), int_cmp);
        for (size_t i = 0; i < n; i++) {
                if (sorted[i] < (int) from)
                        continue;
                if ((unsigned) sorted[i] > from) {
                        r = close_fd_range(from, sorted[i] - 1);
                        if (r < 0)
                                return r;
                }
                from = sorted[i] + 1;
        }
        return close_fd_range(from, ~0U);
}

static void reset_signals(void) {
        struct sigaction sa = { .sa_handler = SIG_DFL };
        sigset_t all;

        /* jobd's handlers and its blocked SIGTERM/SIGINT (sd-event signal sources) are inherited */
        for (int sig = 1; sig < _NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        (void) sigaction(sig, &sa, NULL);
        sigemptyset(&all);
        (void) sigprocmask(SIG_SETMASK, &all, NULL);
}

static int write_file(const char *path, const char *text) {
        int fd, r = 0;

        fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (write(fd, text, strlen(text)) < 0)
                r = -errno;
        (void) close(fd);
        return r;
}

static void env_set(GPtrArray *env, const char *assignment) {
        const char *eq = strchr(assignment, '=');
        size_t k;

        if (!eq || eq == assignment)
                return;
        k = (size_t) (eq - assignment) + 1;
        for (guint i = 0; i < env->len; i++) {
                char *old = env->pdata[i];

                if (old && strncmp(old, assignment, k) == 0) {
                        g_free(old);
                        env->pdata[i] = g_strdup(assignment);
                        return;
                }
        }
        g_ptr_array_insert(env, (int) env->len - 1, g_strdup(assignment));
}

static const char *env_get(char **env, const char *name) {
        size_t k = strlen(name);

        for (char **p = env; *p; p++)
                if (strncmp(*p, name, k) == 0 && (*p)[k] == '=')
                        return *p + k + 1;
        return NULL;
}

/* A minimal clean environment, then the spec's, then what the workspace promises. */
static char **build_env(const RunSpec *spec) {
        GPtrArray *env = g_ptr_array_new();
        struct passwd pw, *found = NULL;
        char buf[4096];

        g_ptr_array_add(env, NULL);
        env_set(env, "PATH=" DEFAULT_PATH);
        if (getpwuid_r(spec->uid, &pw, buf, sizeof(buf), &found) == 0 && found) {
                g_autofree char *home = g_strconcat("HOME=", found->pw_dir, NULL);
                g_autofree char *user = g_strconcat("USER=", found->pw_name, NULL);
                g_autofree char *logname = g_strconcat("LOGNAME=", found->pw_name, NULL);

                env_set(env, home);
                env_set(env, user);
                env_set(env, logname);
        } else
                env_set(env, "HOME=/");
        env_set(env, "LANG=C.UTF-8");
        {
                g_autofree char *id = g_strdup_printf("JOBD_JOB_ID=%" PRIu64, spec->job_id);

                env_set(env, id);
        }
        env_set(env, "JOBD_WORKSPACE=/tmp");
        for (char **p = spec->env; p && *p; p++)
                env_set(env, *p);
        env_set(env, "TMPDIR=/tmp");
        return (char **) g_ptr_array_free(env, FALSE);
}

static int bind_remount_flags(const char *path, unsigned long *ret) {
        struct statvfs sv;

        if (statvfs(path, &sv) < 0)
                return -errno;
        /* ST_* and MS_* share their values; flags a bind remount does not repeat are cleared, and
         * in a user namespace clearing a locked one fails */
        *ret = sv.f_flag & (ST_RDONLY | ST_NOSUID | ST_NODEV | ST_NOEXEC | ST_NOATIME |
                            ST_NODIRATIME | ST_RELATIME);
        return 0;
}

static int setup_user_namespace(void) {
        char map[64];
        uid_t uid = geteuid();
        gid_t gid = getegid();
        int r;

        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
                return -errno;
        r = write_file("/proc/self/setgroups", "deny");
        if (r < 0)
                return r;
        snprintf(map, sizeof(map), "%u %u 1\n", (unsigned) uid, (unsigned) uid);
        r = write_file("/proc/self/uid_map", map);
        if (r < 0)
                return r;
        snprintf(map, sizeof(map), "%u %u 1\n", (unsigned) gid, (unsigned) gid);
        return write_file("/proc/self/gid_map", map);
}

/* A mount namespace where /tmp is the workspace. Without root (user mode), a user namespace
 * that maps only ourselves makes that possible. */
static int setup_namespace(const RunSpec *spec, SetupStage *ret_stage) {
        unsigned long flags = 0;
        int r;

        *ret_stage = STAGE_NAMESPACE;
        if (geteuid() == 0)
                r = unshare(CLONE_NEWNS) < 0 ? -errno : 0;
        else
                r = setup_user_namespace();
        if (r < 0)
                return r;
        /* host mounts still propagate in, ours never out */
        if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
                return -errno;

        *ret_stage = STAGE_MOUNT;
        r = bind_remount_flags(spec->workspace, &flags);
        if (r < 0)
                return r;
        if (mount(spec->workspace, "/tmp", NULL, MS_BIND, NULL) < 0)
                return -errno;
        if (mount(NULL, "/tmp", NULL, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | flags, NULL) < 0)
                return -errno;
        return 0;
}

static int set_credentials(const RunSpec *spec) {
        /* user mode: jobd cannot change who it is, and the job runs as jobd's user anyway */
        if (geteuid() != 0 && spec->uid == geteuid() && spec->gid == getegid())
                return 0;
        if (setgroups(spec->n_groups, spec->groups) < 0)
                return -errno;
        if (setresgid(spec->gid, spec->gid, spec->gid) < 0)
                return -errno;
        if (setresuid(spec->uid, spec->uid, spec->uid) < 0)
                return -errno;
        return 0;
}

static bool search_continues(int error) {
        return error == ENOENT || error == ENOTDIR || error == ESTALE || error == ENODEV ||
                error == ETIMEDOUT;
}

/* execvp() semantics, but searching the job's PATH, not jobd's. */
static int exec_search(char **argv, char **env) {
        const char *path, *p;
        char file[PATH_MAX];
        int best = -ENOENT;

        if (strchr(argv[0], '/')) {
                execve(argv[0], argv, env);
                return -errno;
        }
        path = env_get(env, "PATH") ?: DEFAULT_PATH;
        for (p = path;; p++) {
                const char *end = strchrnul(p, ':');
                int n = (int) (end - p);

                if (n == 0)
                        n = snprintf(file, sizeof(file), "./%s", argv[0]);
                else
                        n = snprintf(file, sizeof(file), "%.*s/%s", n, p, argv[0]);
                if (n > 0 && (size_t) n < sizeof(file)) {
                        execve(file, argv, env);
                        if (errno == EACCES)
                                best = -EACCES;
                        else if (!search_continues(errno))
                                return -errno;
                }
                p = end;
                if (*p == '\0')
                        break;
        }
        return best;
}

static void stdio_move_up(int *fd) {
        /* dup2() onto 0..2 would clobber a source that sits there */
        if (*fd >= 0 && *fd < 3)
                *fd = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
}

_noreturn_ _no_sanitize_address_ static void job_child_fail(int status_fd, SetupStage stage, int error) {
        Report rep = { .kind = REPORT_FAILED, .stage = stage, .error = error < 0 ? -error : error };

        write_report(status_fd, &rep);
        _exit(127);
}

/* The job's process between clone() and exec: it shares the supervisor's memory (CLONE_VM, see
 * below), so it only makes syscalls, writes to its own stack and never allocates. Its fd table,
 * signal handlers and credentials are its own. */
_noreturn_ _no_sanitize_address_ static void job_child(const RunSpec *spec, SupervisorFds fds, char **env,
                                                       int status_fd) {
        int r;

        reset_signals();

        stdio_move_up(&fds.stdin_fd);
        stdio_move_up(&fds.stdout_fd);
        stdio_move_up(&fds.stderr_fd);
        if (fds.stdin_fd < 0 || fds.stdout_fd < 0 || fds.stderr_fd < 0)
                job_child_fail(status_fd, STAGE_STDIO, EBADF);
        if (dup2(fds.stdin_fd, 0) < 0 || dup2(fds.stdout_fd, 1) < 0 || dup2(fds.stderr_fd, 2) < 0)
                job_child_fail(status_fd, STAGE_STDIO, errno);

        r = set_credentials(spec);
        if (r < 0)
                job_child_fail(status_fd, STAGE_CREDENTIALS, r);
        /* jobd runs with UMask=0077; a job gets the usual default, as a login session has */
        (void) umask(0022);

        /* after dropping credentials: as root it could enter a folder the user may not reach */
        if (chdir(spec->cwd ?: "/tmp") < 0)
                job_child_fail(status_fd, STAGE_CHDIR, errno);

        r = close_all_fds_except(&status_fd, 1);
        if (r < 0)
                job_child_fail(status_fd, STAGE_CLOSE_FDS, r);

        r = exec_search(spec->argv, env);
        job_child_fail(status_fd, STAGE_EXEC, r);
}

typedef struct JobChild {
        const RunSpec *spec;
        SupervisorFds fds;
        char **env;
        int status_fd;
} JobChild;

_no_sanitize_address_ static int job_child_main(void *userdata) {
        const JobChild *c = userdata;

        job_child(c->spec, c->fds, c->env, c->status_fd);
}

/* Blocks until EOF on ctl: jobd closed it, or died. */
static void wait_for_eof(int fd) {
        char buf[64];
        ssize_t n;

        do
                n = read(fd, buf, sizeof(buf));
        while (n > 0 || (n < 0 && errno == EINTR));
}

_noreturn_ static void supervisor_finish(SupervisorFds *fds, const Report *rep) {
        write_report(fds->report, rep);
        (void) close(fds->report);
        /* keep the scope's cgroup, and with it its accounting, until jobd has read it */
        wait_for_eof(fds->ctl);
        _exit(0);
}

/* Everything that does not need the scope, done while systemd creates it. */
static int supervisor_prepare(const RunSpec *spec, SupervisorFds *fds, void **ret_stack, int status_pipe[2],
                              SetupStage *ret_stage) {
        int r;

        *ret_stage = STAGE_FORK;
        *ret_stack = mmap(NULL, JOB_CHILD_STACK, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
        if (*ret_stack == MAP_FAILED)
                return -errno;
        if (pipe2(status_pipe, O_CLOEXEC) < 0)
                return -errno;

        *ret_stage = STAGE_STDIO;
        if (fds->stdin_fd < 0) {
                fds->stdin_fd = open("/dev/null", O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (fds->stdin_fd < 0)
                        return -errno;
        }

        r = setup_namespace(spec, ret_stage);
        if (r < 0)
                return r;

        *ret_stage = STAGE_NICE;
        if (setpriority(PRIO_PROCESS, 0, spec->nice) < 0)
                return -errno;
        return 0;
}

_noreturn_ static void supervisor_main(const RunSpec *spec, SupervisorFds fds) {
        struct sigaction ign = { .sa_handler = SIG_IGN };
        const int keep[] = { fds.ctl, fds.report, fds.stdout_fd, fds.stderr_fd, fds.stdin_fd };
        int status_pipe[2] = { -1, -1 }, r;
        SetupStage stage;
        void *stack;
        Report rep;
        char **env, c;
        ssize_t n;
        pid_t job;

        /* first of all: drop jobd's bus connection, epoll, signalfd, journal and store fds */
        (void) close_all_fds_except(keep, fds.stdin_fd >= 0 ? 5 : 4);     /* stdin_fd last */
        (void) prctl(PR_SET_NAME, "jobd-supervise");

        reset_signals();
        /* A stop of the scope must not take us before we reported; SIGKILL after the stop
         * timeout still does. */
        (void) sigaction(SIGTERM, &ign, NULL);
        (void) sigaction(SIGINT, &ign, NULL);
        (void) sigaction(SIGHUP, &ign, NULL);
        (void) sigaction(SIGPIPE, &ign, NULL);
        (void) setsid();

        env = build_env(spec);
        r = supervisor_prepare(spec, &fds, &stack, status_pipe, &stage);

        do
                n = read(fds.ctl, &c, 1);
        while (n < 0 && errno == EINTR);
        if (n <= 0)
                _exit(0);       /* jobd gave up on us (or died) before the scope was there */

        if (r < 0) {
                rep = (Report) { .kind = REPORT_FAILED, .stage = stage, .error = -r };
                supervisor_finish(&fds, &rep);
        }

        /* Like posix_spawn(): the child borrows our memory until it execs, and we sleep until
         * then. A fork() would copy the page tables of all of jobd's memory, and the exec would
         * tear them down again: about half a millisecond before the job's first instruction. */
        job = clone(job_child_main, (char *) stack + JOB_CHILD_STACK, CLONE_VM | CLONE_VFORK | SIGCHLD,
                    &(JobChild) { .spec = spec, .fds = fds, .env = env, .status_fd = status_pipe[1] });
        if (job < 0) {
                rep = (Report) { .kind = REPORT_FAILED, .stage = STAGE_FORK, .error = errno };
                supervisor_finish(&fds, &rep);
        }

        /* The OOM killer is to pick the job, never its reporter. Only now: while the child
         * shared our memory, the kernel would have applied this to it too. */
        (void) write_file("/proc/self/oom_score_adj", "-1000");

        /* the job's output reaches EOF when the job and what it forked are done with it */
        (void) close(status_pipe[1]);
        (void) close(fds.stdin_fd);
        (void) close(fds.stdout_fd);
        (void) close(fds.stderr_fd);

        /* nothing: exec worked; a Report: what failed before */
        do
                n = read(status_pipe[0], &rep, sizeof(rep));
        while (n < 0 && errno == EINTR);
        if (n != sizeof(rep))
                rep = (Report) { .kind = REPORT_EXITED };

        for (;;) {
                int status;

                if (waitpid(job, &status, 0) >= 0) {
                        if (rep.kind == REPORT_EXITED)
                                rep.status = status;
                        break;
                }
                if (errno != EINTR) {
                        rep = (Report) { .kind = REPORT_FAILED, .stage = STAGE_FORK, .error = errno };
                        break;
                }
        }
        supervisor_finish(&fds, &rep);
}

/* ---------------------------------------------------------------------------------------------
 * jobd's side: the execution's life.
 */

static void run_result_done(RunResult *res) {
        g_clear_pointer(&res->error, g_free);
        g_clear_pointer(&res->stdout_data, g_free);
}

static Execution *execution_free(Execution *e) {
        if (!e)
                return NULL;

        if (e->runner && g_hash_table_lookup(e->runner->executions, e->unit_name) == e)
                g_hash_table_remove(e->runner->executions, e->unit_name);

        e->pidfd_source = sd_event_source_disable_unref(e->pidfd_source);
        e->report_source = sd_event_source_disable_unref(e->report_source);
        e->stdout_source = sd_event_source_disable_unref(e->stdout_source);
        e->stderr_source = sd_event_source_disable_unref(e->stderr_source);
        e->start_slot = sd_bus_slot_unref(e->start_slot);
        e->stop_slot = sd_bus_slot_unref(e->stop_slot);
        /* an unreaped supervisor (runner_free) sees EOF and goes once its job ended */
        e->ctl_fd = safe_close(e->ctl_fd);
        e->report_fd = safe_close(e->report_fd);
        e->stdout_fd = safe_close(e->stdout_fd);
        e->stderr_fd = safe_close(e->stderr_fd);
        e->pidfd = safe_close(e->pidfd);

        cgroup_paths_done(&e->cgroup);
        if (e->stdout_buf)
                g_byte_array_unref(e->stdout_buf);
        if (e->stderr_line)
                g_byte_array_unref(e->stderr_line);
        run_result_done(&e->result);
        g_free(e->start_job);
        g_free(e->early_job);
        g_free(e->early_result);
        g_free(e->type);
        g_free(e->unit_name);
        g_free(e->argv0);
        g_free(e->cwd);
        g_free(e->workspace);
        g_free(e);
        return NULL;
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Execution, execution_free)

static void execution_dispatch_done(Execution *e) {
        RunResult *res = &e->result;

        assert(e->ended && e->reaped);

        res->stdout_size = e->stdout_buf->len;
        g_byte_array_append(e->stdout_buf, (const guint8 *) "", 1);
        res->stdout_data = (char *) g_byte_array_free(g_steal_pointer(&e->stdout_buf), FALSE);
        res->stdout_truncated = e->stdout_truncated;
        res->started_usec = e->started_usec;

        e->done(e, res, e->userdata);
        execution_free(e);
}

static int execution_stop_scope(Execution *e);

/* Ends an execution that never ran: nothing to account. The supervisor is killed rather than
 * let go (closing ctl would do), so that a slow NSS lookup in it cannot delay the end.
 *
 * If systemd may still create the scope (no answer yet, or it said yes), it is stopped too:
 * systemd 252 starts a scope whose only pid is already dead and then never notices it is
 * empty, so it would stay "active" for good. StopUnit goes out after StartTransientUnit on the
 * same connection, so systemd sees them in that order: it cancels the start job or stops the
 * scope. */
static void execution_abort(Execution *e, RunEnd end, bool scope_may_exist, char *error) {
        if (scope_may_exist)
                (void) execution_stop_scope(e);
        if (!e->ended) {
                e->ended = true;
                e->result.end = end;
                e->result.exit_status = -1;
                e->result.error = error;
        } else
                g_free(error);
        if (!e->reaped)
                (void) kill(e->supervisor, SIGKILL);
        e->ctl_fd = safe_close(e->ctl_fd);
        e->state = EXECUTION_ENDING;
}

static int on_stop_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Execution *e = userdata;
        const sd_bus_error *error = sd_bus_message_get_error(m);

        if (!error || sd_bus_error_has_name(error, SYSTEMD_NO_SUCH_UNIT))
                return 0;
        log_internal(LOG_WARNING, sd_bus_error_get_errno(error), e->job_id, e->type, NULL,
                     "Failed to stop scope %s: %s", e->unit_name, error->message ?: error->name);
        /* a later cancel may try again */
        e->stop_slot = sd_bus_slot_unref(e->stop_slot);
        return 0;
}

/* Also called when the execution is about to be freed: the call goes out all the same. */
static int execution_stop_scope(Execution *e) {
        int r;

        if (e->stop_slot)
                return 0;
        r = sd_bus_call_method_async(e->runner->bus, &e->stop_slot, SYSTEMD_DEST, SYSTEMD_PATH,
                                     SYSTEMD_MANAGER, "StopUnit", on_stop_reply, e, "ss",
                                     e->unit_name, "replace");
        if (r < 0)
                return log_internal(LOG_WARNING, r, e->job_id, e->type, NULL,
                                    "Failed to ask systemd to stop scope %s: %m", e->unit_name);
        return 0;
}

static void execution_emit_line(Execution *e) {
        size_t size = e->stderr_line->len;

        g_byte_array_append(e->stderr_line, (const guint8 *) "", 1);
        if (e->log)
                e->log(e, (const char *) e->stderr_line->data, size, e->userdata);
        g_byte_array_set_size(e->stderr_line, 0);
}

static void execution_feed_stderr(Execution *e, const char *p, size_t n) {
        while (n > 0) {
                const char *nl = memchr(p, '\n', n);
                size_t take = nl ? (size_t) (nl - p) : n;
                size_t room = LOG_LINE_MAX - e->stderr_line->len;

                /* a full line is only emitted once more bytes without a newline follow, so a
                 * line of exactly LOG_LINE_MAX is one line, not that and an empty one */
                if (take > room) {
                        g_byte_array_append(e->stderr_line, (const guint8 *) p, room);
                        execution_emit_line(e);
                        p += room;
                        n -= room;
                        continue;
                }
                g_byte_array_append(e->stderr_line, (const guint8 *) p, take);
                p += take;
                n -= take;
                if (nl) {
                        execution_emit_line(e);
                        p++;
                        n--;
                }
        }
}

static void execution_keep_stdout(Execution *e, const char *p, size_t n) {
        size_t room = e->result_max > e->stdout_buf->len ? e->result_max - e->stdout_buf->len : 0;

        if (n > room)
                e->stdout_truncated = true;
        g_byte_array_append(e->stdout_buf, (const guint8 *) p, MIN(n, room));
}

/* One read from the job's stdout or stderr: 1 if data came, 0 if not (yet), or at EOF. */
static int execution_read_output(Execution *e, bool is_stdout) {
        static char buf[READ_CHUNK];
        int *fd = is_stdout ? &e->stdout_fd : &e->stderr_fd;
        ssize_t n;

        if (*fd < 0)
                return 0;
        n = read(*fd, buf, sizeof(buf));
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n > 0) {
                if (is_stdout)
                        execution_keep_stdout(e, buf, (size_t) n);
                else
                        execution_feed_stderr(e, buf, (size_t) n);
                return 1;
        }

        /* EOF, or an error that will not go away */
        if (is_stdout) {
                e->stdout_source = sd_event_source_disable_unref(e->stdout_source);
                e->stdout_eof = true;
        } else {
                e->stderr_source = sd_event_source_disable_unref(e->stderr_source);
                e->stderr_eof = true;
                if (e->stderr_line->len > 0)
                        execution_emit_line(e);
        }
        *fd = safe_close(*fd);
        return 0;
}

static void execution_read_report(Execution *e) {
        Report rep;
        ssize_t n;

        if (e->report_fd < 0)
                return;
        n = read(e->report_fd, &rep, sizeof(rep));
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n == (ssize_t) sizeof(rep) && !e->have_report) {
                e->report = rep;
                e->have_report = true;
                return;
        }
        /* EOF, or bytes that are not a report: nothing more will come */
        e->report_source = sd_event_source_disable_unref(e->report_source);
        e->report_fd = safe_close(e->report_fd);
}

static char *stage_error(const Execution *e, const Report *rep) {
        const char *err = g_strerror(rep->error);

        switch ((SetupStage) rep->stage) {
        case STAGE_NAMESPACE:
                return g_strdup_printf("failed to set up the job's mount namespace: %s", err);
        case STAGE_MOUNT:
                return g_strdup_printf("failed to mount the workspace %s on /tmp: %s", e->workspace, err);
        case STAGE_NICE:
                return g_strdup_printf("failed to set nice level %i: %s", e->nice, err);
        case STAGE_STDIO:
                return g_strdup_printf("failed to set up stdin, stdout and stderr: %s", err);
        case STAGE_FORK:
                return g_strdup_printf("failed to fork the job's process: %s", err);
        case STAGE_CREDENTIALS:
                return g_strdup_printf("failed to change to uid %u, gid %u: %s",
                                       (unsigned) e->uid, (unsigned) e->gid, err);
        case STAGE_CHDIR:
                return g_strdup_printf("failed to change to directory %s: %s", e->cwd ?: "/tmp", err);
        case STAGE_CLOSE_FDS:
                return g_strdup_printf("failed to close file descriptors: %s", err);
        case STAGE_EXEC:
                return g_strdup_printf("failed to execute %s: %s", e->argv0, err);
        }
        return g_strdup_printf("failed to start: %s", err);
}

static char *supervisor_exit_text(const Execution *e) {
        const siginfo_t *si = &e->supervisor_exit;
        g_autofree char *sig = NULL;

        if (si->si_pid == 0)
                return g_strdup("for an unknown reason");
        if (si->si_code == CLD_EXITED)
                return g_strdup_printf("it exited with status %i", si->si_status);
        sig = format_signal(si->si_status);
        return g_strdup_printf("it was killed by signal %s", sig);
}

/* SIGKILL with the memory cgroup at its limit: for kernels without an OOM kill counter (before
 * 4.13) only, since hitting the limit is also what reclaiming page cache looks like */
static bool looks_like_oom(const Execution *e, const CgroupUsage *u, int status) {
        return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL && e->memory_max != UINT64_MAX &&
                u->memory_failcnt > 0 && u->memory_peak_bytes != CGROUP_VALUE_UNSET &&
                u->memory_peak_bytes + 16 * 4096 >= e->memory_max;
}

static void execution_classify(Execution *e, const CgroupUsage *u) {
        RunResult *res = &e->result;
        int status = e->report.status;
        bool clean, timed_out, oom_killed;

        res->cpu_usage_nsec = u->cpu_usage_nsec == CGROUP_VALUE_UNSET ? 0 : u->cpu_usage_nsec;
        res->memory_peak_bytes = u->memory_peak_bytes == CGROUP_VALUE_UNSET ? 0 : u->memory_peak_bytes;
        res->tasks_max_hit = u->pids_max_hits > 0;
        res->exit_status = -1;
        if (e->ended)
                return;
        e->ended = true;

        clean = e->have_report && e->report.kind == REPORT_EXITED && WIFEXITED(status) &&
                WEXITSTATUS(status) == 0;
        oom_killed = u->oom_kills != CGROUP_VALUE_UNSET && u->oom_kills > 0;
        /* measured from before the call that created the scope, so never shorter than what
         * systemd counted from the scope's start */
        timed_out = e->runtime_max_usec > 0 &&
                now_usec(CLOCK_MONOTONIC) - e->start_call_usec >= e->runtime_max_usec;

        if (e->cancelled) {
                res->end = RUN_CANCELLED;
                res->error = g_strdup("cancelled");
        } else if (e->have_report && e->report.kind == REPORT_FAILED) {
                res->end = RUN_FAILED_TO_START;
                res->error = stage_error(e, &e->report);
        } else if (!clean && (oom_killed || (u->oom_kills == CGROUP_VALUE_UNSET && e->have_report &&
                                             looks_like_oom(e, u, status)))) {
                g_autofree char *limit = e->memory_max != UINT64_MAX ? format_bytes(e->memory_max) : NULL;

                res->end = RUN_OOM;
                res->error = limit ? g_strdup_printf("killed by the OOM killer: memory limit MemoryMax=%s "
                                                     "reached", limit) :
                                     g_strdup("killed by the OOM killer");
        } else if (timed_out) {
                /* even a clean exit: past the deadline systemd had sent SIGTERM, and the job
                 * ended because of that, its work undone */
                g_autofree char *span = format_timespan_usec(e->runtime_max_usec);

                res->end = RUN_TIMED_OUT;
                res->error = g_strdup_printf("timed out after %s (Timeout=)", span);
        } else if (!e->have_report) {
                g_autofree char *why = supervisor_exit_text(e);

                res->end = RUN_LOST;
                res->error = g_strdup_printf("lost: the job's supervisor process ended without a report "
                                             "(%s)", why);
        } else if (WIFEXITED(status)) {
                res->end = RUN_EXITED;
                res->exit_status = WEXITSTATUS(status);
                if (res->exit_status != 0)
                        res->error = g_strdup_printf("exited with status %i", res->exit_status);
        } else {
                res->end = RUN_SIGNALED;
                res->term_signal = WTERMSIG(status);
                res->error = format_wait_status(status);
        }
}

/* RUNNING → ENDING: the job's main process ended (or its supervisor died). */
static void execution_finish(Execution *e) {
        CgroupUsage u;
        int n;

        if (e->reaped) {
                /* take what is already there; a leftover holding the pipes is stopped below */
                for (int i = 0; i < 16 && execution_read_output(e, true) > 0; i++)
                        ;
                for (int i = 0; i < 16 && execution_read_output(e, false) > 0; i++)
                        ;
                if (e->stderr_line->len > 0)
                        execution_emit_line(e);
        }

        cgroup_read_usage(&e->cgroup, &u);
        n = cgroup_count_other_pids(&e->cgroup, e->reaped ? 0 : e->supervisor);
        if (n > 0)
                (void) execution_stop_scope(e);
        execution_classify(e, &u);

        /* lets the supervisor go; with it the scope empties */
        e->ctl_fd = safe_close(e->ctl_fd);
        e->state = EXECUTION_ENDING;
}

static void execution_progress(Execution *e) {
        switch (e->state) {
        case EXECUTION_STARTING:
                if (e->reaped) {
                        g_autofree char *why = supervisor_exit_text(e);
                        char *error = g_strdup_printf("the job's supervisor process ended before scope %s "
                                                      "was started (%s)", e->unit_name, why);

                        execution_abort(e, e->cancelled ? RUN_CANCELLED : RUN_FAILED_TO_START,
                                        !e->start_refused, error);
                }
                break;
        case EXECUTION_RUNNING:
                if (e->reaped || (e->have_report && e->stdout_eof && e->stderr_eof))
                        execution_finish(e);
                else if (e->have_report)
                        /* the job's main process is gone; whatever still holds its output is a
                         * leftover of it, stopped like a service's remaining processes */
                        (void) execution_stop_scope(e);
                break;
        case EXECUTION_ENDING:
                break;
        }

        if (e->state == EXECUTION_ENDING && e->reaped)
                execution_dispatch_done(e);
}

static int on_report(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Execution *e = userdata;

        execution_read_report(e);
        execution_progress(e);
        return 0;
}

static int on_stdout(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Execution *e = userdata;

        (void) execution_read_output(e, true);
        execution_progress(e);
        return 0;
}

static int on_stderr(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Execution *e = userdata;

        (void) execution_read_output(e, false);
        execution_progress(e);
        return 0;
}

static int on_supervisor_exit(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Execution *e = userdata;
        siginfo_t si = {};

        if (waitid(P_PID, e->supervisor, &si, WEXITED | WNOHANG) < 0) {
                if (errno == EINTR)
                        return 0;
                /* ECHILD: someone reaped it behind our back; it is gone all the same */
                log_internal(LOG_WARNING, errno, e->job_id, e->type, NULL,
                             "Failed to reap the supervisor of scope %s: %m", e->unit_name);
                si = (siginfo_t) {};
        } else if (si.si_pid == 0)
                return 0;

        e->reaped = true;
        e->supervisor_exit = si;
        e->pidfd_source = sd_event_source_disable_unref(e->pidfd_source);
        e->pidfd = safe_close(e->pidfd);

        /* a report written just before it went is still in the pipe */
        execution_read_report(e);
        execution_progress(e);
        return 0;
}

static void execution_release(Execution *e) {
        int r;

        /* if the write fails the supervisor is gone, and its exit handler says so */
        (void) send(e->ctl_fd, "R", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        e->started_usec = now_usec(CLOCK_REALTIME);
        e->state = EXECUTION_RUNNING;

        /* only now is the supervisor in the scope's cgroup; read after the release, so the job
         * does not wait for it */
        r = cgroup_paths_for_pid(e->supervisor, e->unit_name, &e->cgroup);
        if (r < 0)
                log_internal(LOG_WARNING, r, e->job_id, e->type, NULL,
                             "Cannot find the cgroup of scope %s, its CPU and memory use will not be "
                             "recorded: %m", e->unit_name);
        if (e->started)
                e->started(e, e->userdata);
}

static void execution_start_job_removed(Execution *e, const char *result) {
        if (g_str_equal(result, "done")) {
                execution_release(e);
                return;
        }
        execution_abort(e, RUN_FAILED_TO_START, false,
                        g_strdup_printf("systemd refused scope %s: its start job ended with result '%s'",
                                        e->unit_name, result));
}

static void execution_job_removed(Execution *e, const char *job, const char *result) {
        if (e->state != EXECUTION_STARTING)
                return;
        if (!e->start_job) {
                /* the signal beat the reply: keep it until we know our job's path */
                g_free(e->early_job);
                g_free(e->early_result);
                e->early_job = g_strdup(job);
                e->early_result = g_strdup(result);
                return;
        }
        if (g_str_equal(job, e->start_job))
                execution_start_job_removed(e, result);
}

static int on_start_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Execution *e = userdata;
        const sd_bus_error *error = sd_bus_message_get_error(m);
        const char *job;
        int r;

        e->start_slot = sd_bus_slot_unref(e->start_slot);
        if (e->state != EXECUTION_STARTING)
                return 0;
        if (error) {
                /* no answer in time is no refusal: systemd may still create the scope */
                e->start_refused = !sd_bus_error_has_name(error, SD_BUS_ERROR_NO_REPLY) &&
                        !sd_bus_error_has_name(error, SD_BUS_ERROR_TIMEOUT);
                execution_abort(e, RUN_FAILED_TO_START, !e->start_refused,
                                g_strdup_printf("systemd refused scope %s: %s", e->unit_name,
                                                error->message ?: error->name));
                return 0;
        }
        r = sd_bus_message_read(m, "o", &job);
        if (r < 0) {
                execution_abort(e, RUN_FAILED_TO_START, true,
                                g_strdup_printf("systemd's reply for scope %s is not understood: %s",
                                                e->unit_name, g_strerror(-r)));
                return 0;
        }
        e->start_job = g_strdup(job);
        if (e->early_job && g_str_equal(e->early_job, job))
                execution_start_job_removed(e, e->early_result);
        return 0;
}

static int execution_start_scope(Execution *e, const RunSpec *spec) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        g_autofree char *description = NULL;
        sd_bus *bus = e->runner->bus;
        int r;

        description = spec->description ? g_strdup(spec->description) :
                g_strdup_printf("jobd job %" PRIu64 " (%s)", spec->job_id, spec->type ?: "?");

        r = sd_bus_message_new_method_call(bus, &m, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER,
                                           "StartTransientUnit");
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "ss", e->unit_name, "fail");
        if (r < 0)
                return r;
        r = sd_bus_message_open_container(m, 'a', "(sv)");
        if (r < 0)
                return r;
        /* OOMPolicy=kill: an OOM kill ends this job's scope, never jobd or a sibling. Collecting
         * failed scopes too, so a timed-out one does not linger and block the name. */
        r = sd_bus_message_append(m, "(sv)(sv)(sv)(sv)(sv)(sv)(sv)",
                                  "PIDs", "au", 1, (uint32_t) e->supervisor,
                                  "Description", "s", description,
                                  "OOMPolicy", "s", "kill",
                                  "CPUAccounting", "b", 1,
                                  "MemoryAccounting", "b", 1,
                                  "TasksAccounting", "b", 1,
                                  "CollectMode", "s", "inactive-or-failed");
        if (r >= 0 && spec->slice)
                r = sd_bus_message_append(m, "(sv)", "Slice", "s", spec->slice);
        if (r >= 0 && spec->memory_max != UINT64_MAX)
                r = sd_bus_message_append(m, "(sv)", "MemoryMax", "t", spec->memory_max);
        if (r >= 0 && spec->cpu_quota_percent > 0)
                r = sd_bus_message_append(m, "(sv)", "CPUQuotaPerSecUSec", "t",
                                          (uint64_t) spec->cpu_quota_percent * 10000);
        if (r >= 0 && spec->tasks_max != UINT64_MAX)
                r = sd_bus_message_append(m, "(sv)", "TasksMax", "t", spec->tasks_max);
        if (r >= 0 && spec->runtime_max_usec > 0)
                r = sd_bus_message_append(m, "(sv)", "RuntimeMaxUSec", "t", spec->runtime_max_usec);
        if (r >= 0 && spec->stop_timeout_usec > 0)
                r = sd_bus_message_append(m, "(sv)", "TimeoutStopUSec", "t", spec->stop_timeout_usec);
        if (r < 0)
                return r;
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return r;
        r = sd_bus_message_append(m, "a(sa(sv))", 0);
        if (r < 0)
                return r;

        e->start_call_usec = now_usec(CLOCK_MONOTONIC);
        r = sd_bus_call_async(bus, &e->start_slot, m, on_start_reply, e, 0);
        if (r < 0)
                return r;
        (void) sd_bus_slot_set_description(e->start_slot, "runner-start-scope");
        return 0;
}

static int set_nonblock(int fd) {
        int flags = fcntl(fd, F_GETFL);

        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return -errno;
        return 0;
}

/* Only for the few error paths right after fork(): the child was just killed, the wait is short. */
static void kill_and_reap(pid_t pid) {
        (void) kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
}

static int execution_add_io(Execution *e, sd_event_source **ret, int fd, sd_event_io_handler_t handler,
                            const char *what) {
        g_autofree char *description = g_strdup_printf("runner-%s-%" PRIu64, what, e->job_id);
        int r;

        r = sd_event_add_io(e->runner->event, ret, fd, EPOLLIN, handler, e);
        if (r < 0)
                return r;
        (void) sd_event_source_set_description(*ret, description);
        return 0;
}

static int execution_spawn(Execution *e, const RunSpec *spec) {
        _cleanup_(closep) int ctl_r = -1, report_w = -1, out_w = -1, err_w = -1;
        int p[4][2] = {}, r;
        pid_t pid;

        /* ctl is a socket: the release goes out with MSG_NOSIGNAL, so a supervisor that died
         * cannot get jobd a SIGPIPE */
        for (size_t i = 0; i < G_N_ELEMENTS(p); i++)
                if ((i == 0 ? socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p[i]) :
                              pipe2(p[i], O_CLOEXEC)) < 0) {
                        r = -errno;
                        for (size_t j = 0; j < i; j++) {
                                (void) close(p[j][0]);
                                (void) close(p[j][1]);
                        }
                        return r;
                }
        ctl_r = p[0][0];
        e->ctl_fd = p[0][1];
        e->report_fd = p[1][0];
        report_w = p[1][1];
        e->stdout_fd = p[2][0];
        out_w = p[2][1];
        e->stderr_fd = p[3][0];
        err_w = p[3][1];
        if ((r = set_nonblock(e->ctl_fd)) < 0 || (r = set_nonblock(e->report_fd)) < 0 ||
            (r = set_nonblock(e->stdout_fd)) < 0 || (r = set_nonblock(e->stderr_fd)) < 0)
                return r;

        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0)
                supervisor_main(spec, (SupervisorFds) {
                        .ctl = ctl_r,
                        .report = report_w,
                        .stdin_fd = spec->stdin_fd,
                        .stdout_fd = out_w,
                        .stderr_fd = err_w,
                });
        e->supervisor = pid;

        /* our own pidfd source rather than sd_event_add_child(): that one needs SIGCHLD blocked
         * process-wide, which is not the runner's to decide */
        e->pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
        if (e->pidfd < 0) {
                r = -errno;
                kill_and_reap(pid);
                return r;
        }
        r = sd_event_add_io(e->runner->event, &e->pidfd_source, e->pidfd, EPOLLIN, on_supervisor_exit, e);
        if (r >= 0) {
                (void) sd_event_source_set_description(e->pidfd_source, "runner-supervisor");
                /* after the pipes, so what it wrote before it went is read first */
                r = sd_event_source_set_priority(e->pidfd_source, SD_EVENT_PRIORITY_NORMAL + 1);
        }
        if (r >= 0)
                r = execution_add_io(e, &e->report_source, e->report_fd, on_report, "report");
        if (r >= 0)
                r = execution_add_io(e, &e->stdout_source, e->stdout_fd, on_stdout, "stdout");
        if (r >= 0)
                r = execution_add_io(e, &e->stderr_source, e->stderr_fd, on_stderr, "stderr");
        if (r < 0) {
                kill_and_reap(pid);
                e->reaped = true;
                return r;
        }
        return 0;
}

static Execution *execution_new(Runner *runner, const RunSpec *spec, RunnerStartedFn started,
                                RunnerLogFn log, RunnerDoneFn done, void *userdata) {
        Execution *e = g_new0(Execution, 1);

        *e = (Execution) {
                .runner = runner,
                .state = EXECUTION_STARTING,
                .job_id = spec->job_id,
                .type = g_strdup(spec->type),
                .unit_name = g_strdup(spec->unit_name),
                .argv0 = g_strdup(spec->argv[0]),
                .cwd = g_strdup(spec->cwd),
                .workspace = g_strdup(spec->workspace),
                .memory_max = spec->memory_max,
                .tasks_max = spec->tasks_max,
                .runtime_max_usec = spec->runtime_max_usec,
                .result_max = spec->result_max,
                .uid = spec->uid,
                .gid = spec->gid,
                .nice = spec->nice,
                .supervisor = -1,
                .pidfd = -1,
                .ctl_fd = -1,
                .report_fd = -1,
                .stdout_fd = -1,
                .stderr_fd = -1,
                .stdout_buf = g_byte_array_new(),
                .stderr_line = g_byte_array_sized_new(LOG_LINE_MAX + 1),
                .started = started,
                .log = log,
                .done = done,
                .userdata = userdata,
        };
        return e;
}

int runner_start(Runner *runner, const RunSpec *spec, RunnerStartedFn started, RunnerLogFn log,
                 RunnerDoneFn done, void *userdata, Execution **ret) {
        g_autoptr(Execution) e = NULL;
        int r;

        if (!runner || !spec || !done || !ret)
                return -EINVAL;
        if (!spec->unit_name || !spec->argv || !spec->argv[0] || !spec->workspace ||
            spec->workspace[0] != '/' || (spec->cwd && spec->cwd[0] != '/'))
                return -EINVAL;
        if (g_hash_table_contains(runner->executions, spec->unit_name))
                return -EEXIST;

        e = execution_new(runner, spec, started, log, done, userdata);
        r = execution_spawn(e, spec);
        if (r < 0)
                return r;
        g_hash_table_insert(runner->executions, e->unit_name, e);

        /* From here on failures come through done(), never from runner_start() itself. The
         * JobRemoved match was installed by runner_new(), before any call can go out. */
        r = execution_start_scope(e, spec);
        if (r < 0)
                execution_abort(e, RUN_FAILED_TO_START, false,
                                g_strdup_printf("failed to ask systemd for scope %s: %s", e->unit_name,
                                                g_strerror(-r)));

        *ret = g_steal_pointer(&e);
        return 0;
}

int execution_cancel(Execution *e) {
        if (!e)
                return -EINVAL;
        if (e->state == EXECUTION_ENDING)
                return 0;       /* its end is fixed already */

        e->cancelled = true;
        if (e->state == EXECUTION_STARTING) {
                /* nothing runs yet: no scope to stop, the supervisor just goes (and with it the
                 * scope, should systemd create it after all) */
                execution_abort(e, RUN_CANCELLED, !e->start_refused, g_strdup("cancelled"));
                return 0;
        }
        /* SIGTERM, SIGKILL after the stop timeout; the supervisor reports what that did */
        return execution_stop_scope(e);
}

uint64_t execution_job_id(Execution *e) {
        return e ? e->job_id : 0;
}

void *execution_get_userdata(Execution *e) {
        return e ? e->userdata : NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Stale scopes, after a crash: StopUnit, then the stop job's JobRemoved.
 */

static StaleStop *stale_stop_free(StaleStop *s) {
        if (!s)
                return NULL;
        sd_bus_slot_unref(s->slot);
        g_free(s->unit_name);
        g_free(s->job);
        g_free(s->early_job);
        g_free(s->early_result);
        g_free(s);
        return NULL;
}

static void stale_stop_finish(StaleStop *s, int r) {
        s->runner->stops = g_list_remove(s->runner->stops, s);
        if (s->done)
                s->done(s->unit_name, r, s->userdata);
        stale_stop_free(s);
}

static int stop_result_to_errno(const char *result) {
        if (g_str_equal(result, "done"))
                return 1;
        if (g_str_equal(result, "canceled"))
                return -ECANCELED;
        if (g_str_equal(result, "timeout"))
                return -ETIMEDOUT;
        return -EIO;
}

static int on_stale_stop_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        StaleStop *s = userdata;
        const sd_bus_error *error = sd_bus_message_get_error(m);
        const char *job;
        int r;

        s->slot = sd_bus_slot_unref(s->slot);
        if (error) {
                stale_stop_finish(s, sd_bus_error_has_name(error, SYSTEMD_NO_SUCH_UNIT) ? 0 :
                                  -sd_bus_error_get_errno(error));
                return 0;
        }
        r = sd_bus_message_read(m, "o", &job);
        if (r < 0) {
                stale_stop_finish(s, r);
                return 0;
        }
        s->job = g_strdup(job);
        if (s->early_job && g_str_equal(s->early_job, job))
                stale_stop_finish(s, stop_result_to_errno(s->early_result));
        return 0;
}

static void stale_stop_job_removed(StaleStop *s, const char *job, const char *result) {
        if (!s->job) {
                g_free(s->early_job);
                g_free(s->early_result);
                s->early_job = g_strdup(job);
                s->early_result = g_strdup(result);
                return;
        }
        if (g_str_equal(job, s->job))
                stale_stop_finish(s, stop_result_to_errno(result));
}

int runner_stop_stale_scope(Runner *runner, const char *unit_name, RunnerStopFn done, void *userdata) {
        return runner_stop_unit(runner, unit_name, done, userdata);
}

int runner_stop_unit(Runner *runner, const char *unit_name, RunnerStopFn done, void *userdata) {
        StaleStop *s;
        int r;

        if (!runner || !unit_name)
                return -EINVAL;

        s = g_new0(StaleStop, 1);
        *s = (StaleStop) {
                .runner = runner,
                .unit_name = g_strdup(unit_name),
                .done = done,
                .userdata = userdata,
        };
        /* StopUnit of a unit that is not loaded fails with NoSuchUnit: no GetUnit first */
        r = sd_bus_call_method_async(runner->bus, &s->slot, SYSTEMD_DEST, SYSTEMD_PATH, SYSTEMD_MANAGER,
                                     "StopUnit", on_stale_stop_reply, s, "ss", unit_name, "replace");
        if (r < 0) {
                stale_stop_free(s);
                return r;
        }
        runner->stops = g_list_prepend(runner->stops, s);
        return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The runner.
 */

static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Runner *runner = userdata;
        const char *job, *unit, *result;
        Execution *e;
        GList *matches = NULL;
        uint32_t id;

        if (sd_bus_message_read(m, "uoss", &id, &job, &unit, &result) < 0)
                return 0;

        e = g_hash_table_lookup(runner->executions, unit);
        if (e)
                execution_job_removed(e, job, result);

        /* finishing a stop calls out and unlinks it: walk a copy */
        for (GList *l = runner->stops; l; l = l->next)
                if (g_str_equal(((StaleStop *) l->data)->unit_name, unit))
                        matches = g_list_prepend(matches, l->data);
        for (GList *l = matches; l; l = l->next)
                if (g_list_find(runner->stops, l->data))
                        stale_stop_job_removed(l->data, job, result);
        g_list_free(matches);
        return 0;
}

int runner_new(Runner **ret, sd_event *event, sd_bus *bus) {
        g_autoptr(Runner) runner = NULL;
        int r;

        if (!ret || !event || !bus)
                return -EINVAL;

        runner = g_new0(Runner, 1);
        runner->event = sd_event_ref(event);
        runner->bus = sd_bus_ref(bus);
        runner->executions = g_hash_table_new(g_str_hash, g_str_equal);

        /* One match for all executions, and installed before any StartTransientUnit is sent:
         * the bus handles our AddMatch before the call, so no JobRemoved can slip past. */
        r = sd_bus_match_signal_async(bus, &runner->job_removed_slot, SYSTEMD_DEST, SYSTEMD_PATH,
                                      SYSTEMD_MANAGER, "JobRemoved", on_job_removed, NULL, runner);
        if (r < 0)
                return r;
        (void) sd_bus_slot_set_description(runner->job_removed_slot, "runner-job-removed");

        *ret = g_steal_pointer(&runner);
        return 0;
}

Runner *runner_free(Runner *runner) {
        GList *executions;

        if (!runner)
                return NULL;

        /* no callbacks: the manager is going away too; scopes keep running, found again later */
        executions = g_hash_table_get_values(runner->executions);
        for (GList *l = executions; l; l = l->next)
                execution_free(l->data);
        g_list_free(executions);
        for (GList *l = runner->stops; l; l = l->next)
                stale_stop_free(l->data);
        g_list_free(runner->stops);

        sd_bus_slot_unref(runner->job_removed_slot);
        g_hash_table_destroy(runner->executions);
        sd_bus_unref(runner->bus);
        sd_event_unref(runner->event);
        g_free(runner);
        return NULL;
}
