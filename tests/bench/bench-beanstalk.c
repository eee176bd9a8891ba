/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-beanstalk: the reference load for bench-submit. Each client process opens its own TCP
 * connection to a beanstalkd on the loopback and sends, synchronously and one at a time,
 *   put 0 0 60 2\r\n{}\r\n
 * expecting "INSERTED <id>\r\n". With beanstalkd -f 0 every put is fsynced to its binlog before
 * that answer, so this is the same durable-enqueue round trip as a jobd Submit. Prints one
 * RESULT line (see bench-util.h).
 *
 * --reserve-delete: the worker cycle instead, the reference for bench-submit --claim-complete:
 *   reserve-with-timeout 1\r\n      → RESERVED <id> 2\r\n{}\r\n
 *   delete <id>\r\n                 → DELETED\r\n
 * one command in flight at a time. beanstalkd logs the delete to its binlog (fsynced before the
 * answer with -f 0); the reserve is not logged. TIMED_OUT means the tube ran dry: the run fails.
 *
 * --fill N: N puts on one connection, pipelined in batches, then exits (printing FILLED …).
 */

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
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

#define FILL_BATCH 256u

typedef struct Config {
        struct sockaddr_in addr;
        bool reserve_delete;
        uint64_t fill;
} Config;

typedef struct Ctx {
        int fd;
        bool reported;
        bool reserve_delete;
        bool dry;               /* the tube ran dry: every call fails now */
        const char *what;       /* for messages */
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
        c->reserve_delete = cfg->reserve_delete;
        c->what = cfg->reserve_delete ? "reserve+delete" : "put";
        *ret_ctx = c;
        return 0;
}

static int fail(Ctx *c, int r, const char *what) {
        if (!c->reported) {
                fprintf(stderr, "%s failed: %s\n", c->what, what);
                c->reported = true;
        }
        return r;
}

static int send_all(Ctx *c, const char *buf, size_t size) {
        for (size_t off = 0; off < size; ) {
                ssize_t k = send(c->fd, buf + off, size - off, MSG_NOSIGNAL);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return fail(c, -errno, strerror(errno));
                }
                off += (size_t) k;
        }
        return 0;
}

/* Reads into c->buf until it holds a whole answer: a line, and for RESERVED the body after it
 * (RESERVED <id> <bytes>\r\n<body>\r\n). Nothing else is ever in flight on the connection. */
static int recv_answer(Ctx *c) {
        size_t n = 0;

        for (;;) {
                const char *eol;
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
                eol = strstr(c->buf, "\r\n");
                if (eol) {
                        unsigned long long id, bytes;

                        if (sscanf(c->buf, "RESERVED %llu %llu", &id, &bytes) != 2)
                                return 0;
                        if (n >= (size_t) (eol + 2 - c->buf) + bytes + 2)
                                return 0;
                }
                if (n >= sizeof(c->buf) - 1)
                        return fail(c, -EBADMSG, "answer too long");
        }
}

static int expect(Ctx *c, const char *prefix) {
        if (strncmp(c->buf, prefix, strlen(prefix)) == 0)
                return 0;
        c->buf[strcspn(c->buf, "\r\n")] = 0;
        return fail(c, -EIO, c->buf);
}

static int bs_put(Ctx *c) {
        int r = send_all(c, PUT_COMMAND, sizeof(PUT_COMMAND) - 1);

        if (r >= 0)
                r = recv_answer(c);
        return r < 0 ? r : expect(c, "INSERTED ");
}

static int bs_reserve_delete(Ctx *c) {
        static const char reserve[] = "reserve-with-timeout 1\r\n";
        unsigned long long id;
        char del[64];
        int r;

        if (c->dry)
                return -ENODATA;
        r = send_all(c, reserve, sizeof(reserve) - 1);
        if (r >= 0)
                r = recv_answer(c);
        if (r < 0)
                return r;
        if (strncmp(c->buf, "TIMED_OUT", 9) == 0) {
                c->dry = true;
                return fail(c, -ENODATA, "the tube ran dry (fill it with more jobs)");
        }
        if (sscanf(c->buf, "RESERVED %llu", &id) != 1)
                return expect(c, "RESERVED ");

        (void) snprintf(del, sizeof(del), "delete %llu\r\n", id);
        r = send_all(c, del, strlen(del));
        if (r >= 0)
                r = recv_answer(c);
        return r < 0 ? r : expect(c, "DELETED");
}

static int bs_call(void *ctx) {
        Ctx *c = ctx;

        return c->reserve_delete ? bs_reserve_delete(c) : bs_put(c);
}

static void bs_disconnect(void *ctx) {
        Ctx *c = ctx;

        close(c->fd);
        free(c);
}

/* N puts, FILL_BATCH per write, then all their answers. */
static int bs_fill(Config *config) {
        static char batch[(sizeof(PUT_COMMAND) - 1) * FILL_BATCH];
        uint64_t t0 = bench_now_nsec(), done = 0;
        void *ctx;
        Ctx *c;
        int r;

        r = bs_connect(config, &ctx);
        if (r < 0)
                return r;
        c = ctx;
        c->what = "put (fill)";
        for (unsigned i = 0; i < FILL_BATCH; i++)
                memcpy(batch + i * (sizeof(PUT_COMMAND) - 1), PUT_COMMAND, sizeof(PUT_COMMAND) - 1);

        while (done < config->fill && r >= 0) {
                uint64_t n = config->fill - done < FILL_BATCH ? config->fill - done : FILL_BATCH;
                uint64_t answered = 0;
                size_t have = 0;

                r = send_all(c, batch, (size_t) n * (sizeof(PUT_COMMAND) - 1));
                /* count the answer lines; a line split across reads is carried over */
                while (r >= 0 && answered < n) {
                        ssize_t k = recv(c->fd, c->buf + have, sizeof(c->buf) - 1 - have, 0);
                        char *line, *eol;

                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k <= 0) {
                                r = fail(c, k < 0 ? -errno : -ECONNRESET, k < 0 ? strerror(errno) : "closed");
                                break;
                        }
                        have += (size_t) k;
                        c->buf[have] = 0;
                        for (line = c->buf; (eol = strstr(line, "\r\n")); line = eol + 2) {
                                if (strncmp(line, "INSERTED ", 9) != 0) {
                                        *eol = 0;
                                        r = fail(c, -EIO, line);
                                        break;
                                }
                                answered++;
                        }
                        have = strlen(line);
                        memmove(c->buf, line, have);
                }
                done += answered;
        }
        bs_disconnect(c);
        if (r < 0)
                return r;
        printf("FILLED jobs=%" PRIu64 " seconds=%.3f\n", done, (double) (bench_now_nsec() - t0) / 1e9);
        fflush(stdout);
        return 0;
}

static int parse_extra(int opt, const char *arg, void *userdata) {
        Config *config = userdata;
        char *end;
        unsigned long port;

        if (opt == 'r') {
                config->reserve_delete = true;
                return 0;
        }
        if (opt == 'f') {
                errno = 0;
                config->fill = strtoull(arg, &end, 10);
                if (errno != 0 || end == arg || *end || *arg == '-' || config->fill == 0) {
                        fprintf(stderr, "--fill takes a number of jobs, not '%s'.\n", arg);
                        return -EINVAL;
                }
                return 0;
        }
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
        "  -w, --warmup SEC      load before the window, not counted (0.5)\n"
        "  -r, --reserve-delete  worker cycles (reserve-with-timeout 1, delete ID) instead of puts\n"
        "  -f, --fill N          put N jobs (pipelined, one connection) and exit\n";

int main(int argc, char **argv) {
        static const struct option extra_long[] = {
                { "port",           required_argument, NULL, 'p' },
                { "reserve-delete", no_argument,       NULL, 'r' },
                { "fill",           required_argument, NULL, 'f' },
                {}
        };
        static const BenchClient client = {
                .name = "beanstalkd", .connect = bs_connect, .call = bs_call, .disconnect = bs_disconnect,
        };
        static const BenchClient client_rd = {
                .name = "beanstalkd-reserve-delete", .connect = bs_connect, .call = bs_call,
                .disconnect = bs_disconnect,
        };
        BenchOptions o = BENCH_OPTIONS_DEFAULT;
        Config config = {
                .addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) },
        };

        if (bench_parse_args(argc, argv, &o, "p:rf:", extra_long, parse_extra, &config, usage) < 0)
                return EXIT_FAILURE;
        if (config.addr.sin_port == 0) {
                fprintf(stderr, "--port is required.\n%s", usage);
                return EXIT_FAILURE;
        }

        if (config.fill > 0)
                return bs_fill(&config) < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
        return bench_run(config.reserve_delete ? &client_rd : &client, &config, &o) < 0 ?
                EXIT_FAILURE : EXIT_SUCCESS;
}
