/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * runner-driver: runs one RunSpec through the runner against the real systemd (the sandbox's),
 * and prints what happened as JSON lines on stdout, for tests/integration/test-runner.py:
 *
 *   {"event":"started","usec":T}                      T: µs from runner_start() to started()
 *   {"event":"log","line":"..."}                      each stderr line of the job
 *   {"event":"done","end":"exited","exit_status":3,"term_signal":0,"error":"exited with status 3",
 *    "stdout":"...","stdout_size":N,"stdout_truncated":false,"cpu_usage_nsec":N,
 *    "memory_peak_bytes":N,"tasks_max_hit":false,"start_call_usec":R,"started_usec":R,
 *    "done_usec":R}                                   R: CLOCK_REALTIME µs
 *   {"event":"stale-stop","unit":"jobd-5.scope","r":1}   with --stop-stale
 *
 * --repeat=N runs it N times in a row on one connection (ids ID…ID+N-1), for latency numbers.
 *
 * Exits 0 once done came (whatever the end), 1 if it could not run at all.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <json-glib/json-glib.h>

#include "log.h"
#include "parse-util.h"
#include "runner.h"

static uint64_t arg_id = 1;
static const char *arg_type = "driver";
static const char *arg_unit = NULL;
static const char *arg_slice = "jobd.slice";
static uint64_t arg_memory_max = UINT64_MAX;
static uint64_t arg_tasks_max = UINT64_MAX;
static unsigned arg_cpu_quota = 0;
static uint64_t arg_timeout_usec = 0;
static uint64_t arg_stop_timeout_usec = 0;
static int arg_nice = 0;
static uid_t arg_uid = 0;
static gid_t arg_gid = 0;
static GArray *arg_groups = NULL;
static const char *arg_workspace = NULL;
static const char *arg_cwd = NULL;
static GPtrArray *arg_env = NULL;
static const char *arg_stdin_file = NULL;
static uint64_t arg_result_max = 1024 * 1024;
static int64_t arg_cancel_after_usec = -1;
static const char *arg_stop_stale = NULL;
static char **arg_argv = NULL;

static unsigned arg_repeat = 1;

static sd_event *event = NULL;
static sd_bus *bus = NULL;
static Runner *runner = NULL;
static char *workspace = NULL;
static unsigned n_started = 0;
static uint64_t start_call_usec = 0;
static uint64_t start_call_mono = 0;

static uint64_t now_usec(clockid_t clock) {
        struct timespec ts;

        (void) clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static void print_json(JsonBuilder *b) {
        g_autoptr(JsonGenerator) gen = json_generator_new();
        g_autoptr(JsonNode) root = json_builder_get_root(b);
        g_autofree char *text = NULL;

        json_generator_set_root(gen, root);
        text = json_generator_to_data(gen, NULL);
        printf("%s\n", text);
        fflush(stdout);
}

static void add_string(JsonBuilder *b, const char *key, const char *value, size_t size) {
        g_autofree char *valid = g_utf8_make_valid(value, (gssize) size);

        json_builder_set_member_name(b, key);
        json_builder_add_string_value(b, valid);
}

static void add_int(JsonBuilder *b, const char *key, int64_t value) {
        json_builder_set_member_name(b, key);
        json_builder_add_int_value(b, value);
}

static void add_bool(JsonBuilder *b, const char *key, bool value) {
        json_builder_set_member_name(b, key);
        json_builder_add_boolean_value(b, value);
}

static const char *run_end_to_string(RunEnd end) {
        static const char *const table[_RUN_END_MAX] = {
                [RUN_EXITED] = "exited",
                [RUN_SIGNALED] = "signaled",
                [RUN_TIMED_OUT] = "timed-out",
                [RUN_CANCELLED] = "cancelled",
                [RUN_OOM] = "oom",
                [RUN_FAILED_TO_START] = "failed-to-start",
                [RUN_LOST] = "lost",
        };

        return end >= 0 && end < _RUN_END_MAX ? table[end] : "?";
}

static int on_ping_reply(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        return sd_event_exit(event, 0);
}

/* A StopUnit the runner sent last is checked by systemd against the sender's credentials, which
 * fails once we are gone; systemd answers in order, so its reply to a Ping means it was handled. */
static void exit_after_round_trip(void) {
        if (sd_bus_call_method_async(bus, NULL, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                     "org.freedesktop.DBus.Peer", "Ping", on_ping_reply, NULL, NULL) < 0)
                (void) sd_event_exit(event, 0);
}

static void on_started(Execution *e, void *userdata) {
        g_autoptr(JsonBuilder) b = json_builder_new();

        json_builder_begin_object(b);
        add_string(b, "event", "started", -1);
        add_int(b, "usec", (int64_t) (now_usec(CLOCK_MONOTONIC) - start_call_mono));
        json_builder_end_object(b);
        print_json(b);
}

static void on_log(Execution *e, const char *line, size_t size, void *userdata) {
        g_autoptr(JsonBuilder) b = json_builder_new();

        json_builder_begin_object(b);
        add_string(b, "event", "log", -1);
        add_string(b, "line", line, size);
        json_builder_end_object(b);
        print_json(b);
}

static int start_one(void);

static void on_done(Execution *e, const RunResult *res, void *userdata) {
        g_autoptr(JsonBuilder) b = json_builder_new();

        json_builder_begin_object(b);
        add_string(b, "event", "done", -1);
        add_string(b, "end", run_end_to_string(res->end), -1);
        add_int(b, "exit_status", res->exit_status);
        add_int(b, "term_signal", res->term_signal);
        if (res->error)
                add_string(b, "error", res->error, -1);
        add_string(b, "stdout", res->stdout_data, res->stdout_size);
        add_int(b, "stdout_size", (int64_t) res->stdout_size);
        add_bool(b, "stdout_truncated", res->stdout_truncated);
        add_int(b, "cpu_usage_nsec", (int64_t) res->cpu_usage_nsec);
        add_int(b, "memory_peak_bytes", (int64_t) res->memory_peak_bytes);
        add_bool(b, "tasks_max_hit", res->tasks_max_hit);
        add_int(b, "start_call_usec", (int64_t) start_call_usec);
        add_int(b, "started_usec", (int64_t) res->started_usec);
        add_int(b, "done_usec", (int64_t) now_usec(CLOCK_REALTIME));
        json_builder_end_object(b);
        print_json(b);

        /* the next one starts from inside done(), as the manager's scheduler would */
        if (n_started < arg_repeat && start_one() >= 0)
                return;
        exit_after_round_trip();
}

static void on_stale_stopped(const char *unit_name, int r, void *userdata) {
        g_autoptr(JsonBuilder) b = json_builder_new();

        json_builder_begin_object(b);
        add_string(b, "event", "stale-stop", -1);
        add_string(b, "unit", unit_name, -1);
        add_int(b, "r", r);
        json_builder_end_object(b);
        print_json(b);

        (void) sd_event_exit(event, 0);
}

static int on_cancel_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        return execution_cancel(userdata);
}

static void help(void) {
        printf("runner-driver [OPTIONS…] -- ARGV…\n\n"
               "Runs ARGV through jobd's runner in a transient scope; prints JSON lines.\n\n"
               "  --id=N  --type=NAME  --unit=NAME  --slice=NAME ('' for none)\n"
               "  --memory-max=SIZE  --tasks-max=N  --cpu-quota=PERCENT  --timeout=SPAN\n"
               "  --stop-timeout=SPAN  --nice=N  --uid=N  --gid=N  --groups=G,G…\n"
               "  --workspace=DIR  --cwd=DIR  --env=NAME=VALUE  --stdin-file=PATH\n"
               "  --result-max=BYTES  --cancel-after-usec=N (0: right after the start)\n"
               "  --repeat=N  run it N times in a row, ids ID…ID+N-1, on one bus connection\n"
               "  --stop-stale=UNIT   only stop a left-over scope and report\n");
}

static int parse_u64(const char *s, uint64_t *ret) {
        char *end;

        errno = 0;
        *ret = g_ascii_strtoull(s, &end, 10);
        return errno != 0 || end == s || *end != '\0' ? -EINVAL : 0;
}

static int parse_argv(int argc, char *argv[]) {
        enum {
                ARG_ID = 0x100, ARG_TYPE, ARG_UNIT, ARG_SLICE, ARG_MEMORY_MAX, ARG_TASKS_MAX,
                ARG_CPU_QUOTA, ARG_TIMEOUT, ARG_STOP_TIMEOUT, ARG_NICE, ARG_UID, ARG_GID,
                ARG_GROUPS, ARG_WORKSPACE, ARG_CWD, ARG_ENV, ARG_STDIN_FILE, ARG_RESULT_MAX,
                ARG_CANCEL_AFTER, ARG_STOP_STALE, ARG_REPEAT,
        };
        static const struct option options[] = {
                { "help",              no_argument,       NULL, 'h' },
                { "id",                required_argument, NULL, ARG_ID },
                { "type",              required_argument, NULL, ARG_TYPE },
                { "unit",              required_argument, NULL, ARG_UNIT },
                { "slice",             required_argument, NULL, ARG_SLICE },
                { "memory-max",        required_argument, NULL, ARG_MEMORY_MAX },
                { "tasks-max",         required_argument, NULL, ARG_TASKS_MAX },
                { "cpu-quota",         required_argument, NULL, ARG_CPU_QUOTA },
                { "timeout",           required_argument, NULL, ARG_TIMEOUT },
                { "stop-timeout",      required_argument, NULL, ARG_STOP_TIMEOUT },
                { "nice",              required_argument, NULL, ARG_NICE },
                { "uid",               required_argument, NULL, ARG_UID },
                { "gid",               required_argument, NULL, ARG_GID },
                { "groups",            required_argument, NULL, ARG_GROUPS },
                { "workspace",         required_argument, NULL, ARG_WORKSPACE },
                { "cwd",               required_argument, NULL, ARG_CWD },
                { "env",               required_argument, NULL, ARG_ENV },
                { "stdin-file",        required_argument, NULL, ARG_STDIN_FILE },
                { "result-max",        required_argument, NULL, ARG_RESULT_MAX },
                { "cancel-after-usec", required_argument, NULL, ARG_CANCEL_AFTER },
                { "stop-stale",        required_argument, NULL, ARG_STOP_STALE },
                { "repeat",            required_argument, NULL, ARG_REPEAT },
                {}
        };
        uint64_t u;
        int c, r = 0;

        arg_env = g_ptr_array_new();
        arg_groups = g_array_new(FALSE, FALSE, sizeof(gid_t));
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_ID:
                        r = parse_u64(optarg, &arg_id);
                        break;
                case ARG_TYPE:
                        arg_type = optarg;
                        break;
                case ARG_UNIT:
                        arg_unit = optarg;
                        break;
                case ARG_SLICE:
                        arg_slice = optarg[0] ? optarg : NULL;
                        break;
                case ARG_MEMORY_MAX:
                        r = parse_size_bytes(optarg, &arg_memory_max);
                        break;
                case ARG_TASKS_MAX:
                        r = parse_u64(optarg, &arg_tasks_max);
                        break;
                case ARG_CPU_QUOTA:
                        r = parse_unsigned(optarg, &arg_cpu_quota);
                        if (r < 0)
                                r = parse_percent(optarg, &arg_cpu_quota);
                        break;
                case ARG_TIMEOUT:
                        r = parse_timespan_usec(optarg, &arg_timeout_usec);
                        break;
                case ARG_STOP_TIMEOUT:
                        r = parse_timespan_usec(optarg, &arg_stop_timeout_usec);
                        break;
                case ARG_NICE:
                        r = parse_int(optarg, &arg_nice);
                        break;
                case ARG_UID:
                        r = parse_u64(optarg, &u);
                        arg_uid = (uid_t) u;
                        break;
                case ARG_GID:
                        r = parse_u64(optarg, &u);
                        arg_gid = (gid_t) u;
                        break;
                case ARG_GROUPS: {
                        g_auto(GStrv) groups = g_strsplit(optarg, ",", -1);

                        for (char **g = groups; *g && r >= 0; g++) {
                                gid_t gid;

                                r = parse_u64(*g, &u);
                                gid = (gid_t) u;
                                g_array_append_val(arg_groups, gid);
                        }
                        break;
                }
                case ARG_WORKSPACE:
                        arg_workspace = optarg;
                        break;
                case ARG_CWD:
                        arg_cwd = optarg;
                        break;
                case ARG_ENV:
                        g_ptr_array_add(arg_env, optarg);
                        break;
                case ARG_STDIN_FILE:
                        arg_stdin_file = optarg;
                        break;
                case ARG_RESULT_MAX:
                        r = parse_u64(optarg, &arg_result_max);
                        break;
                case ARG_CANCEL_AFTER:
                        r = parse_u64(optarg, &u);
                        arg_cancel_after_usec = (int64_t) MIN(u, (uint64_t) INT64_MAX);
                        break;
                case ARG_STOP_STALE:
                        arg_stop_stale = optarg;
                        break;
                case ARG_REPEAT:
                        r = parse_unsigned(optarg, &arg_repeat);
                        break;
                default:
                        return -EINVAL;
                }
                if (r < 0) {
                        fprintf(stderr, "Bad value for option %s: %s\n", argv[optind - 1], optarg);
                        return r;
                }
        }
        g_ptr_array_add(arg_env, NULL);
        if (!arg_stop_stale && optind >= argc) {
                fprintf(stderr, "No command given.\n");
                return -EINVAL;
        }
        arg_argv = argv + optind;
        return 1;
}

static int start_one(void) {
        g_autofree char *unit = NULL;
        Execution *e = NULL;
        uint64_t id = arg_id + n_started;
        int stdin_fd = -1, r;

        unit = arg_unit ? g_strdup(arg_unit) : g_strdup_printf("jobd-%" PRIu64 ".scope", id);
        if (arg_stdin_file) {
                stdin_fd = open(arg_stdin_file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
                if (stdin_fd < 0)
                        return -errno;
        }

        RunSpec spec = {
                .job_id = id,
                .type = arg_type,
                .unit_name = unit,
                .slice = arg_slice,
                .argv = arg_argv,
                .env = (char **) arg_env->pdata,
                .cwd = arg_cwd,
                .uid = arg_uid,
                .gid = arg_gid,
                .groups = (const gid_t *) arg_groups->data,
                .n_groups = arg_groups->len,
                .nice = arg_nice,
                .stdin_fd = stdin_fd,
                .workspace = workspace,
                .memory_max = arg_memory_max,
                .tasks_max = arg_tasks_max,
                .cpu_quota_percent = arg_cpu_quota,
                .runtime_max_usec = arg_timeout_usec,
                .stop_timeout_usec = arg_stop_timeout_usec,
                .result_max = arg_result_max,
        };

        n_started++;
        start_call_usec = now_usec(CLOCK_REALTIME);
        start_call_mono = now_usec(CLOCK_MONOTONIC);
        r = runner_start(runner, &spec, on_started, on_log, on_done, NULL, &e);
        if (stdin_fd >= 0)
                (void) close(stdin_fd);         /* borrowed by the runner only for the call */
        if (r < 0)
                return r;

        if (arg_cancel_after_usec == 0)
                (void) execution_cancel(e);
        else if (arg_cancel_after_usec > 0) {
                uint64_t now;

                r = sd_event_now(event, CLOCK_MONOTONIC, &now);
                if (r < 0)
                        return r;
                r = sd_event_add_time(event, NULL, CLOCK_MONOTONIC, now + (uint64_t) arg_cancel_after_usec,
                                      0, on_cancel_timer, e);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int run(void) {
        int r;

        r = sd_event_default(&event);
        if (r < 0)
                return r;
        r = sd_bus_open_system(&bus);
        if (r < 0)
                return r;
        r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return r;
        r = runner_new(&runner, event, bus);
        if (r < 0)
                return r;

        if (arg_stop_stale) {
                r = runner_stop_stale_scope(runner, arg_stop_stale, on_stale_stopped, NULL);
                if (r < 0)
                        return r;
                return sd_event_loop(event);
        }

        if (arg_workspace)
                workspace = g_strdup(arg_workspace);
        else {
                workspace = g_strdup("/var/tmp/runner-driver.XXXXXX");
                if (!g_mkdtemp_full(workspace, 0700))
                        return -errno;
                if (chown(workspace, arg_uid, arg_gid) < 0)
                        return -errno;
        }

        if (arg_repeat > 1) {
                /* the bus connection is set up before the first measured start, as in jobd */
                r = sd_bus_call_method(bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                       "org.freedesktop.DBus.Peer", "Ping", NULL, NULL, NULL);
                if (r < 0)
                        return r;
        }

        r = start_one();
        if (r < 0)
                return r;
        return sd_event_loop(event);
}

int main(int argc, char *argv[]) {
        int r;

        log_set_target(LOG_TARGET_STDERR);
        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

        r = run();
        runner = runner_free(runner);
        g_free(workspace);
        bus = sd_bus_flush_close_unref(bus);
        event = sd_event_unref(event);
        g_ptr_array_unref(arg_env);
        g_array_unref(arg_groups);
        if (r < 0) {
                fprintf(stderr, "runner-driver: %s\n", g_strerror(-r));
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}
