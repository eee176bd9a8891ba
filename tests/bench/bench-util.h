/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The closed-loop load harness shared by the benchmark clients: N client processes, each with
 * its own connection and one request in flight (it sends the next only when the reply came, like
 * a synchronous client), all released at the same instant. Requests that complete inside the
 * measured window (after the warm-up) count; their latencies give the percentiles. The client
 * behind the harness is a table of three functions, so the D-Bus and the beanstalkd clients pay
 * the same measuring overhead.
 */

#include <stdint.h>

typedef struct BenchClient {
        const char *name;
        /* In the child, before the start: open the connection. <0 -errno, and the run fails. */
        int (*connect)(void *config, void **ret_ctx);
        /* One synchronous round trip. <0 -errno on failure (the client prints why, once). */
        int (*call)(void *ctx);
        void (*disconnect)(void *ctx);
} BenchClient;

typedef struct BenchOptions {
        unsigned n_clients;
        double warmup_sec;
        double duration_sec;
} BenchOptions;

#define BENCH_OPTIONS_DEFAULT { .n_clients = 1, .warmup_sec = 0.5, .duration_sec = 3.0 }

/* Parses -c/--clients, -d/--duration, -w/--warmup out of argv and hands other options to
 * extra(opt, optarg, userdata) (long options listed in extra_long, short ones in extra_short).
 * Returns 0, or -EINVAL after printing why. */
struct option;
int bench_parse_args(int argc, char **argv, BenchOptions *o, const char *extra_short,
                     const struct option *extra_long, int (*extra)(int opt, const char *arg, void *userdata),
                     void *userdata, const char *usage);

/* Runs the load and prints one line to stdout:
 *   RESULT name=NAME clients=N ops=… seconds=… rate=… p50_us=… p99_us=… max_us=… errors=… total_ops=…
 * ops and the latencies count requests completed inside the window; total_ops also counts the
 * warm-up and the ones in flight at its end. Returns 0 if every client ran without error. */
int bench_run(const BenchClient *client, void *config, const BenchOptions *o);

uint64_t bench_now_nsec(void);
