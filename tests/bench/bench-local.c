/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-local: the client of the local-jobs benchmark (tests/bench/run-local, issue 4). One
 * process, one bus connection, one job at a time unless said otherwise. Run it where jobd's bus is
 * (inside the sandbox world).
 *
 *   bench-local latency [-t TYPE] [-n N] [-W WARMUP]
 *       N sequential jobs of TYPE, whose program prints CLOCK_REALTIME nanoseconds as its first
 *       action (bench-local-stamp). For each: the time just before Submit is sent, then the
 *       job's JobChanged signal to a finished status, then its Result (the printed instant).
 *       Latency = printed instant − time before Submit. Also the job's SubmittedUSec and
 *       StartedUSec, for a breakdown of where the time goes.
 *   bench-local seq [-t TYPE] [-n N] [-W WARMUP]
 *       N jobs one after the other: Submit, wait for its end (JobChanged), next. Jobs per second.
 *   bench-local queue [-t TYPE] [-n N] [-W WARMUP]
 *       N Submits back to back (each answered before the next goes out), then wait until every
 *       one of them has ended. Jobs per second from the first Submit to the last end.
 *   bench-local spawn [-n N] [-W WARMUP] -- CMD ARG...
 *       N times: the time just before spawning CMD (e.g. systemd-run --scope … bench-local-stamp),
 *       then the instant it prints on stdout, then its exit. The same latency as above, for the
 *       reference.
 *
 * Waiting is on the bus socket (sd_bus_wait) or on the pipe, never a polling sleep. Prints
 * RESULT lines (key=value) that run-local reads; times in microseconds.
 */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <systemd/sd-bus.h>

#include "jobd-names.h"

#define CALL_TIMEOUT_USEC (UINT64_C(30) * 1000000)
#define JOB_TIMEOUT_USEC  (UINT64_C(60) * 1000000)

extern char **environ;

typedef enum Mode {
        MODE_LATENCY,
        MODE_SEQ,
        MODE_QUEUE,
        MODE_SPAWN,
} Mode;

typedef enum EndState {
        END_NONE = 0,
        END_SUCCEEDED,
        END_FAILED,
} EndState;

typedef struct Ctx {
        sd_bus *bus;
        const char *type;
        uint8_t *ended;         /* EndState by job id */
        size_t n_ended;         /* capacity */
        uint64_t n_ends;        /* finished jobs seen, any id */
} Ctx;

static uint64_t now_nsec(clockid_t clock) {
        struct timespec ts;

        (void) clock_gettime(clock, &ts);
        return (uint64_t) ts.tv_sec * UINT64_C(1000000000) + (uint64_t) ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return x < y ? -1 : x > y;
}

/* Nearest rank on a sorted array. */
static double percentile(const double *sorted, size_t n, double p) {
        size_t rank;

        if (n == 0)
                return NAN;
        rank = (size_t) ceil(p * (double) n);
        rank = rank < 1 ? 1 : rank > n ? n : rank;
        return sorted[rank - 1];
}

static int set_ended(Ctx *c, uint64_t id, EndState s) {
        if (id >= c->n_ended) {
                size_t n = c->n_ended ? c->n_ended : 1024;
                uint8_t *p;

                while (n <= id)
                        n *= 2;
                p = realloc(c->ended, n);
                if (!p)
                        return -ENOMEM;
                memset(p + c->n_ended, 0, n - c->n_ended);
                c->ended = p;
                c->n_ended = n;
        }
        if (c->ended[id] == END_NONE)
                c->n_ends++;
        c->ended[id] = (uint8_t) s;
        return 0;
}

static EndState get_ended(const Ctx *c, uint64_t id) {
        return id < c->n_ended ? (EndState) c->ended[id] : END_NONE;
}

static int on_job_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        Ctx *c = userdata;
        const char *path, *status;
        uint64_t id;

        if (sd_bus_message_read(m, "tos", &id, &path, &status) < 0)
                return 0;
        if (strcmp(status, JOBD_STATUS_SUCCEEDED) == 0)
                (void) set_ended(c, id, END_SUCCEEDED);
        else if (strcmp(status, JOBD_STATUS_FAILED) == 0 || strcmp(status, JOBD_STATUS_CANCELLED) == 0)
                (void) set_ended(c, id, END_FAILED);
        return 0;
}

static int ctx_connect(Ctx *c) {
        int r;

        r = sd_bus_open_system(&c->bus);
        if (r < 0) {
                fprintf(stderr, "Failed to connect to the system bus: %s\n", strerror(-r));
                return r;
        }
        (void) sd_bus_set_method_call_timeout(c->bus, CALL_TIMEOUT_USEC);
        /* synchronous AddMatch: in force before the first Submit goes out */
        r = sd_bus_match_signal(c->bus, NULL, JOBD_BUS_NAME, JOBD_MANAGER_PATH, JOBD_MANAGER_INTERFACE,
                                "JobChanged", on_job_changed, c);
        if (r < 0)
                fprintf(stderr, "Failed to subscribe to JobChanged: %s\n", strerror(-r));
        return r;
}

static int submit(Ctx *c, uint64_t *ret_id) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        const char *path;
        int r;

        r = sd_bus_call_method(c->bus, JOBD_BUS_NAME, JOBD_MANAGER_PATH, JOBD_MANAGER_INTERFACE, "Submit",
                               &error, &reply, "ssa{sv}", c->type, "{}", 0);
        if (r >= 0)
                r = sd_bus_message_read(reply, "to", ret_id, &path);
        if (r < 0)
                fprintf(stderr, "Submit of type %s failed: %s\n", c->type, error.message ?: strerror(-r));
        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
        return r;
}

static char *job_path(uint64_t id) {
        char *p = NULL;

        if (asprintf(&p, "%s/%" PRIu64, JOBD_JOB_PATH_PREFIX, id) < 0)
                return NULL;
        return p;
}

static void print_job_error(Ctx *c, uint64_t id) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        char *path = job_path(id), *msg = NULL;

        if (path && sd_bus_get_property_string(c->bus, JOBD_BUS_NAME, path, JOBD_JOB_INTERFACE, "Error",
                                               &error, &msg) >= 0)
                fprintf(stderr, "Job %" PRIu64 " failed: %s\n", id, msg);
        else
                fprintf(stderr, "Job %" PRIu64 " failed.\n", id);
        sd_bus_error_free(&error);
        free(msg);
        free(path);
}

/* Processes bus traffic until predicate() holds, waiting on the socket in between. */
static int wait_until(Ctx *c, bool (*predicate)(Ctx *c, void *userdata), void *userdata) {
        uint64_t deadline = now_nsec(CLOCK_MONOTONIC) + JOB_TIMEOUT_USEC * 1000;

        while (!predicate(c, userdata)) {
                uint64_t now;
                int r;

                r = sd_bus_process(c->bus, NULL);
                if (r < 0) {
                        fprintf(stderr, "Bus connection failed: %s\n", strerror(-r));
                        return r;
                }
                if (r > 0)
                        continue;
                now = now_nsec(CLOCK_MONOTONIC);
                if (now >= deadline) {
                        fprintf(stderr, "No end of the job(s) within %" PRIu64 " s.\n",
                                JOB_TIMEOUT_USEC / 1000000);
                        return -ETIMEDOUT;
                }
                r = sd_bus_wait(c->bus, (deadline - now) / 1000);
                if (r < 0 && r != -EINTR) {
                        fprintf(stderr, "Waiting on the bus failed: %s\n", strerror(-r));
                        return r;
                }
        }
        return 0;
}

static bool job_has_ended(Ctx *c, void *userdata) {
        return get_ended(c, *(const uint64_t *) userdata) != END_NONE;
}

/* Submit one job and wait for its end; 0 if it succeeded. */
static int run_one(Ctx *c, uint64_t *ret_id, uint64_t *ret_end_ns) {
        uint64_t id;
        int r;

        r = submit(c, &id);
        if (r < 0)
                return r;
        r = wait_until(c, job_has_ended, &id);
        if (r < 0)
                return r;
        if (ret_end_ns)
                *ret_end_ns = now_nsec(CLOCK_REALTIME);
        if (get_ended(c, id) != END_SUCCEEDED) {
                print_job_error(c, id);
                return -EIO;
        }
        *ret_id = id;
        return 0;
}

static int parse_stamp(const char *s, uint64_t *ret) {
        char *end;
        unsigned long long v;

        while (*s == '"' || *s == ' ')
                s++;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno != 0 || end == s || v < UINT64_C(1000000000000000000))
                return -EINVAL;
        *ret = v;
        return 0;
}

static int get_u64(Ctx *c, const char *path, const char *name, uint64_t *ret) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = sd_bus_get_property_trivial(c->bus, JOBD_BUS_NAME, path, JOBD_JOB_INTERFACE, name, &error, 't', ret);
        if (r < 0)
                fprintf(stderr, "Reading %s of %s failed: %s\n", name, path, error.message ?: strerror(-r));
        sd_bus_error_free(&error);
        return r;
}

typedef struct Sample {
        double latency_us;      /* before Submit → first instruction */
        double end_us;          /* before Submit → JobChanged to succeeded seen */
        double submit_us;       /* Submit round trip */
        double queued_us;       /* SubmittedUSec → StartedUSec (jobd: durable NEW, reply, dispatch) */
        double starting_us;     /* StartedUSec → first instruction (durable RUNNING, scope, exec) */
        double ending_us;       /* first instruction → end seen by the client */
} Sample;

static int latency_one(Ctx *c, Sample *s) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        uint64_t t0, t_reply, t_end, id, stamp, submitted, started;
        char *path = NULL, *result = NULL;
        int r;

        t0 = now_nsec(CLOCK_REALTIME);
        r = submit(c, &id);
        if (r < 0)
                return r;
        t_reply = now_nsec(CLOCK_REALTIME);
        r = wait_until(c, job_has_ended, &id);
        if (r < 0)
                return r;
        t_end = now_nsec(CLOCK_REALTIME);
        if (get_ended(c, id) != END_SUCCEEDED) {
                print_job_error(c, id);
                return -EIO;
        }

        path = job_path(id);
        if (!path)
                return -ENOMEM;
        r = sd_bus_get_property_string(c->bus, JOBD_BUS_NAME, path, JOBD_JOB_INTERFACE, "Result", &error, &result);
        if (r < 0)
                fprintf(stderr, "Reading the Result of job %" PRIu64 " failed: %s\n", id,
                        error.message ?: strerror(-r));
        else if ((r = parse_stamp(result, &stamp)) < 0)
                fprintf(stderr, "Job %" PRIu64 " printed '%s', not a CLOCK_REALTIME instant in ns.\n", id, result);
        if (r >= 0)
                r = get_u64(c, path, "SubmittedUSec", &submitted);
        if (r >= 0)
                r = get_u64(c, path, "StartedUSec", &started);
        sd_bus_error_free(&error);
        free(result);
        free(path);
        if (r < 0)
                return r;

        *s = (Sample) {
                .latency_us = ((double) stamp - (double) t0) / 1e3,
                .end_us = ((double) t_end - (double) t0) / 1e3,
                .submit_us = ((double) t_reply - (double) t0) / 1e3,
                .queued_us = (double) started - (double) submitted,
                .starting_us = (double) stamp / 1e3 - (double) started,
                .ending_us = ((double) t_end - (double) stamp) / 1e3,
        };
        return 0;
}

/* Runs CMD with stdout on a pipe: the instant it printed, and when it exited. */
static int spawn_one(char **argv, Sample *s) {
        posix_spawn_file_actions_t fa;
        uint64_t t0, t_end, stamp;
        char buf[128];
        size_t len = 0;
        int p[2], r, status;
        pid_t pid;

        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, p[1], STDOUT_FILENO);

        t0 = now_nsec(CLOCK_REALTIME);
        r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        (void) close(p[1]);
        if (r != 0) {
                (void) close(p[0]);
                fprintf(stderr, "Failed to run %s: %s\n", argv[0], strerror(r));
                return -r;
        }
        for (;;) {
                ssize_t n = read(p[0], buf + len, sizeof(buf) - 1 - len);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                len += (size_t) n;
                if (len == sizeof(buf) - 1)
                        break;
        }
        buf[len] = '\0';
        (void) close(p[0]);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        t_end = now_nsec(CLOCK_REALTIME);

        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "%s failed (wait status %d), it printed: %s\n", argv[0], status, buf);
                return -EIO;
        }
        if (parse_stamp(buf, &stamp) < 0) {
                fprintf(stderr, "%s printed '%s', not a CLOCK_REALTIME instant in ns.\n", argv[0], buf);
                return -EINVAL;
        }
        *s = (Sample) {
                .latency_us = ((double) stamp - (double) t0) / 1e3,
                .end_us = ((double) t_end - (double) t0) / 1e3,
                .ending_us = ((double) t_end - (double) stamp) / 1e3,
        };
        return 0;
}

/* The median of one field of the samples; v: room for n doubles. */
static double median_field(const Sample *samples, size_t n, size_t offset, double *v) {
        for (size_t i = 0; i < n; i++)
                v[i] = *(const double *) (const void *) ((const char *) &samples[i] + offset);
        qsort(v, n, sizeof(double), cmp_double);
        return percentile(v, n, 0.5);
}

static void print_latency(const char *name, Sample *samples, size_t n, bool breakdown) {
        double *v = calloc(n ? n : 1, sizeof(double)), sum = 0;

        if (!v)
                return;
        for (size_t i = 0; i < n; i++) {
                v[i] = samples[i].latency_us;
                sum += v[i];
        }
        qsort(v, n, sizeof(double), cmp_double);
        printf("RESULT name=%s n=%zu p50_us=%.1f p90_us=%.1f p99_us=%.1f min_us=%.1f max_us=%.1f mean_us=%.1f",
               name, n, percentile(v, n, 0.5), percentile(v, n, 0.9), percentile(v, n, 0.99),
               percentile(v, n, 0.0), percentile(v, n, 1.0), n ? sum / (double) n : NAN);

        /* medians of the parts (each its own median: they need not add up exactly) */
        printf(" end_p50_us=%.1f ending_p50_us=%.1f", median_field(samples, n, offsetof(Sample, end_us), v),
               median_field(samples, n, offsetof(Sample, ending_us), v));
        if (breakdown)
                printf(" submit_p50_us=%.1f queued_p50_us=%.1f starting_p50_us=%.1f",
                       median_field(samples, n, offsetof(Sample, submit_us), v),
                       median_field(samples, n, offsetof(Sample, queued_us), v),
                       median_field(samples, n, offsetof(Sample, starting_us), v));
        printf("\n");
        free(v);
}

static int do_latency(Ctx *c, unsigned n, unsigned warmup, char **cmd) {
        Sample *samples = calloc(n, sizeof(Sample)), junk;
        int r = 0;

        if (!samples)
                return -ENOMEM;
        for (unsigned i = 0; i < warmup && r >= 0; i++)
                r = cmd ? spawn_one(cmd, &junk) : latency_one(c, &junk);
        for (unsigned i = 0; i < n && r >= 0; i++)
                r = cmd ? spawn_one(cmd, &samples[i]) : latency_one(c, &samples[i]);
        if (r >= 0)
                print_latency(cmd ? "spawn-latency" : "jobd-latency", samples, n, !cmd);
        free(samples);
        return r;
}

static int do_seq(Ctx *c, unsigned n, unsigned warmup) {
        uint64_t t0, t1, id;
        int r = 0;

        for (unsigned i = 0; i < warmup && r >= 0; i++)
                r = run_one(c, &id, NULL);
        t0 = now_nsec(CLOCK_MONOTONIC);
        for (unsigned i = 0; i < n && r >= 0; i++)
                r = run_one(c, &id, NULL);
        t1 = now_nsec(CLOCK_MONOTONIC);
        if (r < 0)
                return r;
        printf("RESULT name=jobd-seq n=%u seconds=%.3f rate=%.1f per_job_us=%.1f\n", n, (double) (t1 - t0) / 1e9,
               (double) n / ((double) (t1 - t0) / 1e9), (double) (t1 - t0) / 1e3 / n);
        return 0;
}

typedef struct QueueWait {
        uint64_t first, last;
        uint64_t next;          /* lowest id not yet seen ended */
} QueueWait;

static bool queue_done(Ctx *c, void *userdata) {
        QueueWait *w = userdata;

        while (w->next <= w->last && get_ended(c, w->next) != END_NONE)
                w->next++;
        return w->next > w->last;
}

static int do_queue(Ctx *c, unsigned n, unsigned warmup) {
        QueueWait w = {};
        uint64_t t0, t_submitted, t1, id, n_failed = 0;
        int r = 0;

        for (unsigned i = 0; i < warmup && r >= 0; i++)
                r = run_one(c, &id, NULL);
        if (r < 0)
                return r;

        t0 = now_nsec(CLOCK_MONOTONIC);
        for (unsigned i = 0; i < n; i++) {
                r = submit(c, &id);
                if (r < 0)
                        return r;
                if (i == 0)
                        w.first = id;
                w.last = id;
        }
        t_submitted = now_nsec(CLOCK_MONOTONIC);
        w.next = w.first;
        r = wait_until(c, queue_done, &w);
        t1 = now_nsec(CLOCK_MONOTONIC);
        if (r < 0)
                return r;
        if (w.last - w.first + 1 != n) {
                fprintf(stderr, "Job ids %" PRIu64 "..%" PRIu64 " are not the %u jobs submitted: another "
                        "client submitted meanwhile.\n", w.first, w.last, n);
                return -EBUSY;
        }
        for (uint64_t i = w.first; i <= w.last; i++)
                if (get_ended(c, i) != END_SUCCEEDED) {
                        if (n_failed++ == 0)
                                print_job_error(c, i);
                }
        if (n_failed > 0) {
                fprintf(stderr, "%" PRIu64 " of %u jobs failed.\n", n_failed, n);
                return -EIO;
        }
        printf("RESULT name=jobd-queue n=%u seconds=%.3f rate=%.1f per_job_us=%.1f submit_seconds=%.3f\n", n,
               (double) (t1 - t0) / 1e9, (double) n / ((double) (t1 - t0) / 1e9), (double) (t1 - t0) / 1e3 / n,
               (double) (t_submitted - t0) / 1e9);
        return 0;
}

static const char usage[] =
        "Usage: bench-local latency|seq|queue [-t TYPE] [-n N] [-W WARMUP]\n"
        "       bench-local spawn [-n N] [-W WARMUP] -- CMD ARG...\n"
        "  -t, --type NAME     job type to submit (bench-stamp for latency, bench-true otherwise)\n"
        "  -n, --jobs N        jobs measured (200 for latency and spawn, 1000 otherwise)\n"
        "  -W, --warmup N      jobs run first and not counted (5)\n";

int main(int argc, char **argv) {
        static const struct option longopts[] = {
                { "type",   required_argument, NULL, 't' },
                { "jobs",   required_argument, NULL, 'n' },
                { "warmup", required_argument, NULL, 'W' },
                { "help",   no_argument,       NULL, 'h' },
                {}
        };
        Ctx c = {};
        const char *type = NULL;
        long n = -1, warmup = 5;
        Mode mode;
        int opt, r;

        if (argc < 2) {
                fputs(usage, stderr);
                return 2;
        }
        if (strcmp(argv[1], "latency") == 0)
                mode = MODE_LATENCY;
        else if (strcmp(argv[1], "seq") == 0)
                mode = MODE_SEQ;
        else if (strcmp(argv[1], "queue") == 0)
                mode = MODE_QUEUE;
        else if (strcmp(argv[1], "spawn") == 0)
                mode = MODE_SPAWN;
        else if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
                fputs(usage, stdout);
                return 0;
        } else {
                fputs(usage, stderr);
                return 2;
        }
        argc--;
        argv++;

        while ((opt = getopt_long(argc, argv, "+t:n:W:h", longopts, NULL)) >= 0)
                switch (opt) {
                case 't':
                        type = optarg;
                        break;
                case 'n':
                        n = strtol(optarg, NULL, 10);
                        if (n < 1 || n > 10000000) {
                                fprintf(stderr, "--jobs takes a number from 1 to 10000000, not '%s'.\n", optarg);
                                return 2;
                        }
                        break;
                case 'W':
                        warmup = strtol(optarg, NULL, 10);
                        if (warmup < 0 || warmup > 10000) {
                                fprintf(stderr, "--warmup takes a number from 0 to 10000, not '%s'.\n", optarg);
                                return 2;
                        }
                        break;
                case 'h':
                        fputs(usage, stdout);
                        return 0;
                default:
                        fputs(usage, stderr);
                        return 2;
                }
        if (mode == MODE_SPAWN ? optind >= argc : optind < argc) {
                fputs(usage, stderr);
                return 2;
        }
        if (n < 0)
                n = mode == MODE_LATENCY || mode == MODE_SPAWN ? 200 : 1000;

        if (mode == MODE_SPAWN)
                r = do_latency(NULL, (unsigned) n, (unsigned) warmup, argv + optind);
        else {
                c.type = type ?: mode == MODE_LATENCY ? "bench-stamp" : "bench-true";
                r = ctx_connect(&c);
                if (r >= 0) {
                        switch (mode) {
                        case MODE_LATENCY:
                                r = do_latency(&c, (unsigned) n, (unsigned) warmup, NULL);
                                break;
                        case MODE_SEQ:
                                r = do_seq(&c, (unsigned) n, (unsigned) warmup);
                                break;
                        default:
                                r = do_queue(&c, (unsigned) n, (unsigned) warmup);
                                break;
                        }
                }
                sd_bus_flush_close_unref(c.bus);
                free(c.ended);
        }
        fflush(stdout);
        return r < 0 ? 1 : 0;
}
