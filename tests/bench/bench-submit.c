/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-submit: closed-loop D-Bus load on the system bus. Each client process opens its own bus
 * connection and calls, synchronously and one at a time,
 *   - org.jobd.Jobd1.Manager.Submit(TYPE, PARAMS, {}) (default): durable Submits to jobd, or
 *   - org.freedesktop.DBus.GetId() (--getid): a round trip to the bus daemon alone, the ceiling
 *     any D-Bus service on this bus can reach with synchronous clients, or
 *   - (--claim-complete) one worker cycle: Manager.Claim([TYPE], 1 s, {}), then
 *     Job.Complete(token, "{}", {}) on the job it brought; the cycle is the timed operation. The
 *     queue must hold enough pending jobs of TYPE (see --fill): a Claim that comes back empty
 *     (id 0) means the queue ran dry, which fails the run rather than timing 1 s waits.
 * Prints one RESULT line (see bench-util.h).
 *
 * --fill N is not a closed loop: it submits N jobs as fast as it can, before a timed run, with
 * each of the --clients connections keeping FILL_IN_FLIGHT Submits in flight, and prints
 *   FILLED jobs=N seconds=…
 * Run it where jobd's bus is (the sandbox world).
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "bench-util.h"
#include "jobd-names.h"

#define CALL_TIMEOUT_USEC (UINT64_C(10) * 1000000)
#define CLAIM_WAIT_USEC   (UINT64_C(1) * 1000000)
/* Below dbus-daemon's limit of pending replies per connection (system bus: 128). */
#define FILL_IN_FLIGHT    32u

typedef enum Mode {
        MODE_SUBMIT,
        MODE_GETID,
        MODE_CLAIM_COMPLETE,
} Mode;

typedef struct Config {
        Mode mode;
        const char *type;
        const char *parameters;
        uint64_t fill;          /* --fill N: submit N jobs and exit; 0: a closed-loop run */
} Config;

typedef struct Ctx {
        sd_bus *bus;
        const Config *config;
        bool reported;
        bool dry;               /* a Claim came back empty: the queue ran dry, every call fails now */
} Ctx;

static int bus_connect(void *config, void **ret_ctx) {
        Ctx *c = calloc(1, sizeof(Ctx));
        int r;

        if (!c)
                return -ENOMEM;
        c->config = config;

        r = sd_bus_open_system(&c->bus);
        if (r < 0) {
                fprintf(stderr, "Failed to connect to the system bus: %s\n", strerror(-r));
                free(c);
                return r;
        }
        (void) sd_bus_set_method_call_timeout(c->bus, CALL_TIMEOUT_USEC);

        *ret_ctx = c;
        return 0;
}

static void report(Ctx *c, const char *what, const sd_bus_error *error, int r) {
        if (c->reported)
                return;
        fprintf(stderr, "%s failed: %s\n", what, error && error->message ? error->message : strerror(-r));
        c->reported = true;
}

/* A worker's cycle: Claim the next job (answered once its attempt is durable), Complete it
 * (answered once the completion is durable). Two synchronous calls, one in flight at a time. */
static int claim_complete(Ctx *c) {
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *claimed = NULL, *done = NULL;
        char path[sizeof(JOBD_JOB_PATH_PREFIX) + 24];
        const char *token;
        uint64_t id;
        int r;

        if (c->dry)
                return -ENODATA;

        r = sd_bus_call_method(c->bus, JOBD_BUS_NAME, JOBD_MANAGER_PATH, JOBD_MANAGER_INTERFACE, "Claim",
                               &error, &claimed, "asta{sv}", 1, c->config->type, CLAIM_WAIT_USEC, 0);
        if (r < 0) {
                report(c, "Claim", &error, r);
                goto finish;
        }
        r = sd_bus_message_read(claimed, "ts", &id, &token);      /* token points into claimed */
        if (r < 0) {
                report(c, "Reading the Claim reply", NULL, r);
                goto finish;
        }
        if (id == 0) {
                if (!c->reported)
                        fprintf(stderr, "Claim came back empty: the queue of type %s ran dry "
                                "(fill it with more jobs).\n", c->config->type);
                c->reported = c->dry = true;
                r = -ENODATA;
                goto finish;
        }
        (void) snprintf(path, sizeof(path), JOBD_JOB_PATH_PREFIX "/%" PRIu64, id);

        r = sd_bus_call_method(c->bus, JOBD_BUS_NAME, path, JOBD_JOB_INTERFACE, "Complete", &error, &done,
                               "ssa{sv}", token, "{}", 0);
        if (r < 0)
                report(c, "Complete", &error, r);

finish:
        sd_bus_error_free(&error);
        sd_bus_message_unref(claimed);
        sd_bus_message_unref(done);
        return r < 0 ? r : 0;
}

static int bus_call(void *ctx) {
        Ctx *c = ctx;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int r;

        if (c->config->mode == MODE_CLAIM_COMPLETE)
                return claim_complete(c);

        if (c->config->mode == MODE_GETID)
                r = sd_bus_call_method(c->bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                       "org.freedesktop.DBus", "GetId", &error, &reply, "");
        else
                r = sd_bus_call_method(c->bus, JOBD_BUS_NAME, JOBD_MANAGER_PATH, JOBD_MANAGER_INTERFACE,
                                       "Submit", &error, &reply, "ssa{sv}",
                                       c->config->type, c->config->parameters, 0);
        if (r < 0)
                report(c, c->config->mode == MODE_GETID ? "GetId" : "Submit", &error, r);

        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
        return r < 0 ? r : 0;
}

static void bus_disconnect(void *ctx) {
        Ctx *c = ctx;

        sd_bus_flush_close_unref(c->bus);
        free(c);
}

/* ---- --fill: N Submits, pipelined, before a timed run ---- */

typedef struct Filler {
        const Config *config;
        uint64_t quota, sent, answered;
        unsigned in_flight;
        int error;
} Filler;

static int on_filled(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Filler *f = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);

        f->in_flight--;
        f->answered++;
        if (e && f->error == 0) {
                fprintf(stderr, "Submit failed: %s\n", e->message ?: e->name);
                f->error = -EIO;
        }
        return 0;
}

static int fill_one(const Config *config, uint64_t quota) {
        sd_bus *bus = NULL;
        Filler f = { .config = config, .quota = quota };
        int r;

        r = sd_bus_open_system(&bus);
        if (r < 0) {
                fprintf(stderr, "Failed to connect to the system bus: %s\n", strerror(-r));
                return r;
        }
        while (f.answered < f.quota && f.error == 0) {
                while (f.sent < f.quota && f.in_flight < FILL_IN_FLIGHT) {
                        r = sd_bus_call_method_async(bus, NULL, JOBD_BUS_NAME, JOBD_MANAGER_PATH,
                                                     JOBD_MANAGER_INTERFACE, "Submit", on_filled, &f, "ssa{sv}",
                                                     config->type, config->parameters, 0);
                        if (r < 0) {
                                fprintf(stderr, "Failed to send a Submit: %s\n", strerror(-r));
                                f.error = r;
                                break;
                        }
                        f.sent++;
                        f.in_flight++;
                }
                r = sd_bus_process(bus, NULL);
                if (r < 0) {
                        fprintf(stderr, "Failed to process the bus: %s\n", strerror(-r));
                        f.error = r;
                        break;
                }
                if (r > 0)
                        continue;
                r = sd_bus_wait(bus, CALL_TIMEOUT_USEC);
                if (r < 0) {
                        fprintf(stderr, "Failed to wait for the bus: %s\n", strerror(-r));
                        f.error = r;
                } else if (r == 0) {
                        fprintf(stderr, "jobd stopped answering Submits.\n");
                        f.error = -ETIMEDOUT;
                }
        }
        sd_bus_flush_close_unref(bus);
        return f.error;
}

/* --clients processes, each its own connection, share the N Submits. */
static int fill(const Config *config, unsigned n_clients) {
        uint64_t t0 = bench_now_nsec();
        pid_t pids[1024];
        unsigned started = 0;
        int failed = 0;

        if (n_clients > sizeof(pids) / sizeof(pids[0]))
                n_clients = sizeof(pids) / sizeof(pids[0]);
        fflush(NULL);
        for (unsigned i = 0; i < n_clients; i++) {
                uint64_t quota = config->fill / n_clients + (i < config->fill % n_clients);

                pids[i] = fork();
                if (pids[i] < 0) {
                        fprintf(stderr, "fork: %s\n", strerror(errno));
                        failed = 1;
                        break;
                }
                if (pids[i] == 0)
                        _exit(fill_one(config, quota) < 0 ? EXIT_FAILURE : EXIT_SUCCESS);
                started++;
        }
        for (unsigned i = 0; i < started; i++) {
                int status;

                while (waitpid(pids[i], &status, 0) < 0)
                        if (errno != EINTR) {
                                status = 1;
                                break;
                        }
                if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        failed = 1;
        }
        if (failed)
                return -EIO;
        printf("FILLED jobs=%" PRIu64 " seconds=%.3f\n", config->fill, (double) (bench_now_nsec() - t0) / 1e9);
        fflush(stdout);
        return 0;
}

static int parse_extra(int opt, const char *arg, void *userdata) {
        Config *config = userdata;
        char *end;

        switch (opt) {
        case 'g':
        case 'C':
                if (config->mode != MODE_SUBMIT) {
                        fprintf(stderr, "--getid and --claim-complete do not go together.\n");
                        return -EINVAL;
                }
                config->mode = opt == 'g' ? MODE_GETID : MODE_CLAIM_COMPLETE;
                return 0;
        case 't':
                config->type = arg;
                return 0;
        case 'p':
                config->parameters = arg;
                return 0;
        case 'f':
                errno = 0;
                config->fill = strtoull(arg, &end, 10);
                if (errno != 0 || end == arg || *end || *arg == '-' || config->fill == 0) {
                        fprintf(stderr, "--fill takes a number of jobs, not '%s'.\n", arg);
                        return -EINVAL;
                }
                return 0;
        }
        return -EINVAL;
}

static const char usage[] =
        "Usage: bench-submit [OPTIONS]\n"
        "  -c, --clients N       concurrent clients, each its own bus connection (1)\n"
        "  -d, --duration SEC    measured window (3)\n"
        "  -w, --warmup SEC      load before the window, not counted (0.5)\n"
        "  -t, --type NAME       job type to submit, or to claim (bench)\n"
        "  -p, --parameters JSON parameters of each job ({})\n"
        "  -g, --getid           call org.freedesktop.DBus.GetId instead of Submit\n"
        "  -C, --claim-complete  worker cycles: Claim([TYPE], 1 s, {}) then Complete(token, \"{}\", {})\n"
        "  -f, --fill N          submit N jobs, --clients connections with 32 in flight each, and exit\n";

int main(int argc, char **argv) {
        static const struct option extra_long[] = {
                { "getid",          no_argument,       NULL, 'g' },
                { "claim-complete", no_argument,       NULL, 'C' },
                { "type",           required_argument, NULL, 't' },
                { "parameters",     required_argument, NULL, 'p' },
                { "fill",           required_argument, NULL, 'f' },
                {}
        };
        static const BenchClient clients[] = {
                [MODE_SUBMIT] = {
                        .name = "submit", .connect = bus_connect, .call = bus_call, .disconnect = bus_disconnect,
                },
                [MODE_GETID] = {
                        .name = "getid", .connect = bus_connect, .call = bus_call, .disconnect = bus_disconnect,
                },
                [MODE_CLAIM_COMPLETE] = {
                        .name = "claim-complete", .connect = bus_connect, .call = bus_call,
                        .disconnect = bus_disconnect,
                },
        };
        BenchOptions o = BENCH_OPTIONS_DEFAULT;
        Config config = { .type = "bench", .parameters = "{}" };

        if (bench_parse_args(argc, argv, &o, "gCt:p:f:", extra_long, parse_extra, &config, usage) < 0)
                return EXIT_FAILURE;

        if (config.fill > 0) {
                if (config.mode != MODE_SUBMIT) {
                        fprintf(stderr, "--fill submits jobs; it does not go with --getid or --claim-complete.\n");
                        return EXIT_FAILURE;
                }
                return fill(&config, o.n_clients) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        }
        return bench_run(&clients[config.mode], &config, &o) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
