/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The load harness (see bench-util.h). One process per client, so that the clients' own CPU
 * time spreads like that of independent programs and no client library needs to be thread-safe.
 *
 * Shared memory holds the start instant and, per client, its counters and latency samples; the
 * parent reads them after every child exited. The children connect first and say so on a pipe;
 * the parent then writes the start instant and closes a second pipe, which releases all of them
 * at once. Each child has an alarm as a backstop, so a server that stops answering ends the run
 * instead of hanging it.
 */

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench-util.h"

#define BENCH_CLIENTS_MAX      1024u
#define BENCH_ERRORS_MAX       10u            /* a client gives up after this many failed calls */
#define BENCH_SAMPLES_PER_SEC  100000u        /* per client: far above any synchronous round trip */
#define BENCH_ALARM_GRACE_SEC  30u

typedef struct BenchSlot {
        uint64_t n_ok;          /* completed inside the window */
        uint64_t n_total;       /* completed at all */
        uint64_t n_errors;
        uint64_t n_samples;     /* latencies stored (≤ capacity) */
        int exit_error;         /* -errno of connect, or 0 */
} BenchSlot;

typedef struct BenchShared {
        uint64_t start_nsec;    /* CLOCK_MONOTONIC instant the load starts */
        uint64_t capacity;      /* samples per client */
        BenchSlot slots[];
} BenchShared;

uint64_t bench_now_nsec(void) {
        struct timespec ts;

        (void) clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * UINT64_C(1000000000) + (uint64_t) ts.tv_nsec;
}

static int parse_double(const char *s, double min, double *ret) {
        char *end;
        double d;

        errno = 0;
        d = strtod(s, &end);
        if (errno != 0 || end == s || *end || !isfinite(d) || d < min)
                return -EINVAL;
        *ret = d;
        return 0;
}

int bench_parse_args(int argc, char **argv, BenchOptions *o, const char *extra_short,
                     const struct option *extra_long, int (*extra)(int opt, const char *arg, void *userdata),
                     void *userdata, const char *usage) {
        static const struct option common[] = {
                { "clients",  required_argument, NULL, 'c' },
                { "duration", required_argument, NULL, 'd' },
                { "warmup",   required_argument, NULL, 'w' },
                { "help",     no_argument,       NULL, 'h' },
        };
        struct option longopts[32] = {};
        char shortopts[64];
        size_t n = 0;
        int c;

        for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
                longopts[n++] = common[i];
        for (const struct option *e = extra_long; e && e->name; e++) {
                assert(n < sizeof(longopts) / sizeof(longopts[0]) - 1);
                longopts[n++] = *e;
        }
        (void) snprintf(shortopts, sizeof(shortopts), "c:d:w:h%s", extra_short ?: "");

        while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) >= 0) {
                double d;

                switch (c) {
                case 'c':
                        if (parse_double(optarg, 1, &d) < 0 || d > BENCH_CLIENTS_MAX || d != floor(d)) {
                                fprintf(stderr, "--clients takes a whole number from 1 to %u, not '%s'.\n",
                                        BENCH_CLIENTS_MAX, optarg);
                                return -EINVAL;
                        }
                        o->n_clients = (unsigned) d;
                        break;
                case 'd':
                        if (parse_double(optarg, 0.01, &o->duration_sec) < 0 || o->duration_sec > 3600) {
                                fprintf(stderr, "--duration takes seconds (0.01–3600), not '%s'.\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case 'w':
                        if (parse_double(optarg, 0, &o->warmup_sec) < 0 || o->warmup_sec > 3600) {
                                fprintf(stderr, "--warmup takes seconds (0–3600), not '%s'.\n", optarg);
                                return -EINVAL;
                        }
                        break;
                case 'h':
                        fputs(usage, stdout);
                        exit(EXIT_SUCCESS);
                case '?':
                        fputs(usage, stderr);
                        return -EINVAL;
                default:
                        if (!extra || extra(c, optarg, userdata) < 0)
                                return -EINVAL;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "Unexpected argument '%s'.\n%s", argv[optind], usage);
                return -EINVAL;
        }
        return 0;
}

static void client_main(const BenchClient *client, void *config, const BenchOptions *o,
                        BenchShared *shm, unsigned idx, int ready_fd, int go_fd) {
        BenchSlot *slot = &shm->slots[idx];
        uint64_t *samples = (uint64_t *) ((uint8_t *) shm + sizeof(BenchShared) +
                                          sizeof(BenchSlot) * o->n_clients) + shm->capacity * idx;
        uint64_t win_start, win_end;
        void *ctx = NULL;
        char b = 0;
        int r;

        alarm((unsigned) ceil(o->warmup_sec + o->duration_sec) + BENCH_ALARM_GRACE_SEC);

        r = client->connect(config, &ctx);
        if (r < 0) {
                slot->exit_error = r;
                (void) write(ready_fd, "!", 1);
                _exit(EXIT_FAILURE);
        }
        (void) write(ready_fd, "+", 1);
        /* EOF when the parent closes its end: everyone starts together. */
        while (read(go_fd, &b, 1) < 0 && errno == EINTR)
                ;

        win_start = shm->start_nsec + (uint64_t) (o->warmup_sec * 1e9);
        win_end = win_start + (uint64_t) (o->duration_sec * 1e9);

        for (;;) {
                uint64_t t0 = bench_now_nsec(), t1;

                if (t0 >= win_end)
                        break;

                r = client->call(ctx);
                t1 = bench_now_nsec();
                if (r < 0) {
                        if (++slot->n_errors >= BENCH_ERRORS_MAX)
                                break;
                        continue;
                }
                slot->n_total++;
                if (t1 < win_start || t1 > win_end)
                        continue;
                slot->n_ok++;
                if (slot->n_samples < shm->capacity)
                        samples[slot->n_samples++] = t1 - t0;
        }

        if (client->disconnect)
                client->disconnect(ctx);
        _exit(slot->n_errors > 0 ? EXIT_FAILURE : EXIT_SUCCESS);
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

/* Nearest rank. */
static double percentile_usec(const uint64_t *sorted, size_t n, double p) {
        size_t rank;

        if (n == 0)
                return NAN;
        rank = (size_t) ceil(p * (double) n);
        rank = rank < 1 ? 1 : rank > n ? n : rank;
        return (double) sorted[rank - 1] / 1e3;
}

int bench_run(const BenchClient *client, void *config, const BenchOptions *o) {
        size_t shm_size, n_all = 0;
        uint64_t n_ok = 0, n_total = 0, n_errors = 0, *all;
        unsigned n_ready = 0, n_started = 0;
        int ready[2], go[2], failed = 0;
        BenchShared *shm;
        pid_t *pids;

        assert(o->n_clients >= 1);

        pids = calloc(o->n_clients, sizeof(pid_t));
        if (!pids)
                return -ENOMEM;

        /* Reserved, not touched: a client only dirties the samples it takes. */
        shm_size = sizeof(BenchShared) + sizeof(BenchSlot) * o->n_clients;
        {
                uint64_t capacity = (uint64_t) ceil(o->duration_sec * BENCH_SAMPLES_PER_SEC) + 1024;

                shm_size += capacity * sizeof(uint64_t) * o->n_clients;
                shm = mmap(NULL, shm_size, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_ANONYMOUS|MAP_NORESERVE, -1, 0);
                if (shm == MAP_FAILED) {
                        free(pids);
                        return -errno;
                }
                shm->capacity = capacity;
        }

        if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0) {
                (void) munmap(shm, shm_size);
                free(pids);
                return -errno;
        }

        fflush(NULL);
        for (unsigned i = 0; i < o->n_clients; i++) {
                pids[i] = fork();
                if (pids[i] < 0) {
                        fprintf(stderr, "fork: %s\n", strerror(errno));
                        failed = 1;
                        break;
                }
                if (pids[i] == 0) {
                        close(ready[0]);
                        close(go[1]);
                        client_main(client, config, o, shm, i, ready[1], go[0]);
                }
                n_started++;
        }
        close(ready[1]);
        close(go[0]);

        while (n_ready < n_started) {
                char b;
                ssize_t k = read(ready[0], &b, 1);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                n_ready++;
                if (b != '+')
                        failed = 1;
        }
        close(ready[0]);

        /* A failed client kills the run: the rest get EOF on go and an already passed window. */
        shm->start_nsec = failed ? 0 : bench_now_nsec();
        close(go[1]);

        for (unsigned i = 0; i < n_started; i++) {
                int status;

                while (waitpid(pids[i], &status, 0) < 0)
                        if (errno != EINTR) {
                                status = 1;
                                break;
                        }
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                        failed = 1;
                        if (WIFSIGNALED(status))
                                fprintf(stderr, "%s: client %u was killed by signal %d%s.\n", client->name, i,
                                        WTERMSIG(status),
                                        WTERMSIG(status) == SIGALRM ? " (the server stopped answering)" : "");
                }
                if (shm->slots[i].exit_error < 0)
                        fprintf(stderr, "%s: client %u could not connect: %s\n", client->name, i,
                                strerror(-shm->slots[i].exit_error));
        }

        for (unsigned i = 0; i < o->n_clients; i++)
                n_all += shm->slots[i].n_samples;
        all = malloc(sizeof(uint64_t) * n_all + 1);
        n_all = 0;
        if (!all) {
                (void) munmap(shm, shm_size);
                free(pids);
                return -ENOMEM;
        }
        for (unsigned i = 0; i < o->n_clients; i++) {
                const BenchSlot *s = &shm->slots[i];
                const uint64_t *samples = (const uint64_t *) ((const uint8_t *) shm + sizeof(BenchShared) +
                                                              sizeof(BenchSlot) * o->n_clients) +
                                          shm->capacity * i;

                n_ok += s->n_ok;
                n_total += s->n_total;
                n_errors += s->n_errors;
                memcpy(all + n_all, samples, sizeof(uint64_t) * s->n_samples);
                n_all += s->n_samples;
        }
        qsort(all, n_all, sizeof(uint64_t), cmp_u64);

        printf("RESULT name=%s clients=%u ops=%" PRIu64 " seconds=%.3f rate=%.1f p50_us=%.1f p99_us=%.1f "
               "max_us=%.1f errors=%" PRIu64 " total_ops=%" PRIu64 "\n",
               client->name, o->n_clients, n_ok, o->duration_sec, (double) n_ok / o->duration_sec,
               percentile_usec(all, n_all, 0.50), percentile_usec(all, n_all, 0.99),
               percentile_usec(all, n_all, 1.0), n_errors, n_total);
        fflush(stdout);

        free(all);
        (void) munmap(shm, shm_size);
        free(pids);
        return failed || n_errors > 0 || n_ok == 0 ? -EIO : 0;
}
