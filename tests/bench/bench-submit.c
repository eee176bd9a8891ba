/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-submit: closed-loop D-Bus load on the system bus. Each client process opens its own bus
 * connection and calls, synchronously and one at a time,
 *   - org.jobd.Jobd1.Manager.Submit(TYPE, PARAMS, {}) (default): durable Submits to jobd, or
 *   - org.freedesktop.DBus.GetId() (--getid): a round trip to the bus daemon alone, the ceiling
 *     any D-Bus service on this bus can reach with synchronous clients.
 * Prints one RESULT line (see bench-util.h). Run it where jobd's bus is (the sandbox world).
 */

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-bus.h>

#include "bench-util.h"
#include "jobd-names.h"

#define CALL_TIMEOUT_USEC (UINT64_C(10) * 1000000)

typedef struct Config {
        bool getid;
        const char *type;
        const char *parameters;
} Config;

typedef struct Ctx {
        sd_bus *bus;
        const Config *config;
        bool reported;
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

static int bus_call(void *ctx) {
        Ctx *c = ctx;
        sd_bus_error error = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int r;

        if (c->config->getid)
                r = sd_bus_call_method(c->bus, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                       "org.freedesktop.DBus", "GetId", &error, &reply, "");
        else
                r = sd_bus_call_method(c->bus, JOBD_BUS_NAME, JOBD_MANAGER_PATH, JOBD_MANAGER_INTERFACE,
                                       "Submit", &error, &reply, "ssa{sv}",
                                       c->config->type, c->config->parameters, 0);
        if (r < 0 && !c->reported) {
                fprintf(stderr, "%s failed: %s\n", c->config->getid ? "GetId" : "Submit",
                        error.message ?: strerror(-r));
                c->reported = true;
        }

        sd_bus_error_free(&error);
        sd_bus_message_unref(reply);
        return r < 0 ? r : 0;
}

static void bus_disconnect(void *ctx) {
        Ctx *c = ctx;

        sd_bus_flush_close_unref(c->bus);
        free(c);
}

static int parse_extra(int opt, const char *arg, void *userdata) {
        Config *config = userdata;

        switch (opt) {
        case 'g':
                config->getid = true;
                return 0;
        case 't':
                config->type = arg;
                return 0;
        case 'p':
                config->parameters = arg;
                return 0;
        }
        return -EINVAL;
}

static const char usage[] =
        "Usage: bench-submit [OPTIONS]\n"
        "  -c, --clients N       concurrent clients, each its own bus connection (1)\n"
        "  -d, --duration SEC    measured window (3)\n"
        "  -w, --warmup SEC      load before the window, not counted (0.5)\n"
        "  -t, --type NAME       job type to submit (bench)\n"
        "  -p, --parameters JSON parameters of each job ({})\n"
        "  -g, --getid           call org.freedesktop.DBus.GetId instead of Submit\n";

int main(int argc, char **argv) {
        static const struct option extra_long[] = {
                { "getid",      no_argument,       NULL, 'g' },
                { "type",       required_argument, NULL, 't' },
                { "parameters", required_argument, NULL, 'p' },
                {}
        };
        static const BenchClient client_submit = {
                .name = "submit", .connect = bus_connect, .call = bus_call, .disconnect = bus_disconnect,
        };
        static const BenchClient client_getid = {
                .name = "getid", .connect = bus_connect, .call = bus_call, .disconnect = bus_disconnect,
        };
        BenchOptions o = BENCH_OPTIONS_DEFAULT;
        Config config = { .type = "bench", .parameters = "{}" };

        if (bench_parse_args(argc, argv, &o, "gt:p:", extra_long, parse_extra, &config, usage) < 0)
                return EXIT_FAILURE;

        return bench_run(config.getid ? &client_getid : &client_submit, &config, &o) < 0 ?
                EXIT_FAILURE : EXIT_SUCCESS;
}
