/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-beanstalk: the reference load for bench-submit. Each client process opens its own TCP
 * connection to a beanstalkd on the loopback and sends, synchronously and one at a time,
 *   put 0 0 60 2\r\n{}\r\n
 * expecting "INSERTED <id>\r\n". With beanstalkd -f 0 every put is fsynced to its binlog before
 * that answer, so this is the same durable-enqueue round trip as a jobd Submit. Prints one
 * RESULT line (see bench-util.h).
 */

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench-util.h"

#define PUT_COMMAND "put 0 0 60 2\r\n{}\r\n"

typedef struct Config {
        struct sockaddr_in addr;
} Config;

typedef struct Ctx {
        int fd;
        bool reported;
        char buf[256];
} Ctx;

static int bs_connect(void *config, void **ret_ctx) {
        const Config *cfg = config;
        int one = 1, fd;
        Ctx *c;

        fd = socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (const struct sockaddr *) &cfg->addr, sizeof(cfg->addr)) < 0) {
                int r = -errno;

                fprintf(stderr, "Failed to connect to beanstalkd on 127.0.0.1:%u: %s\n",
                        ntohs(cfg->addr.sin_port), strerror(errno));
                close(fd);
                return r;
        }
        /* One small request at a time: Nagle would hold it back waiting for an ACK. */
        (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

        c = calloc(1, sizeof(Ctx));
        if (!c) {
                close(fd);
                return -ENOMEM;
        }
        c->fd = fd;
        *ret_ctx = c;
        return 0;
}

static int fail(Ctx *c, int r, const char *what) {
        if (!c->reported) {
                fprintf(stderr, "put failed: %s\n", what);
                c->reported = true;
        }
        return r;
}

static int bs_call(void *ctx) {
        Ctx *c = ctx;
        size_t n = 0;

        for (size_t off = 0; off < sizeof(PUT_COMMAND) - 1; ) {
                ssize_t k = send(c->fd, PUT_COMMAND + off, sizeof(PUT_COMMAND) - 1 - off, MSG_NOSIGNAL);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return fail(c, -errno, strerror(errno));
                }
                off += (size_t) k;
        }

        /* The answer is one line; nothing else is ever in flight on this connection. */
        for (;;) {
                ssize_t k = recv(c->fd, c->buf + n, sizeof(c->buf) - 1 - n, 0);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return fail(c, -errno, strerror(errno));
                }
                if (k == 0)
                        return fail(c, -ECONNRESET, "beanstalkd closed the connection");
                n += (size_t) k;
                c->buf[n] = 0;
                if (n >= 2 && c->buf[n - 2] == '\r' && c->buf[n - 1] == '\n')
                        break;
                if (n >= sizeof(c->buf) - 1)
                        return fail(c, -EBADMSG, "answer too long");
        }

        if (strncmp(c->buf, "INSERTED ", 9) != 0) {
                c->buf[strcspn(c->buf, "\r\n")] = 0;
                return fail(c, -EIO, c->buf);
        }
        return 0;
}

static void bs_disconnect(void *ctx) {
        Ctx *c = ctx;

        close(c->fd);
        free(c);
}

static int parse_extra(int opt, const char *arg, void *userdata) {
        Config *config = userdata;
        char *end;
        unsigned long port;

        if (opt != 'p')
                return -EINVAL;

        errno = 0;
        port = strtoul(arg, &end, 10);
        if (errno != 0 || end == arg || *end || port == 0 || port > 65535) {
                fprintf(stderr, "--port takes a TCP port, not '%s'.\n", arg);
                return -EINVAL;
        }
        config->addr.sin_port = htons((uint16_t) port);
        return 0;
}

static const char usage[] =
        "Usage: bench-beanstalk -p PORT [OPTIONS]\n"
        "  -p, --port PORT       beanstalkd's port on 127.0.0.1 (only the loopback is used)\n"
        "  -c, --clients N       concurrent clients, each its own connection (1)\n"
        "  -d, --duration SEC    measured window (3)\n"
        "  -w, --warmup SEC      load before the window, not counted (0.5)\n";

int main(int argc, char **argv) {
        static const struct option extra_long[] = {
                { "port", required_argument, NULL, 'p' },
                {}
        };
        static const BenchClient client = {
                .name = "beanstalkd", .connect = bs_connect, .call = bs_call, .disconnect = bs_disconnect,
        };
        BenchOptions o = BENCH_OPTIONS_DEFAULT;
        Config config = {
                .addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) },
        };

        if (bench_parse_args(argc, argv, &o, "p:", extra_long, parse_extra, &config, usage) < 0)
                return EXIT_FAILURE;
        if (config.addr.sin_port == 0) {
                fprintf(stderr, "--port is required.\n%s", usage);
                return EXIT_FAILURE;
        }

        return bench_run(&client, &config, &o) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
