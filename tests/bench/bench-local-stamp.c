/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-local-stamp: the job of the local-jobs benchmark (tests/bench/run-local). Its first action
 * is to read CLOCK_REALTIME; it prints that instant in nanoseconds since the epoch on stdout and
 * exits 0. Linked statically where the toolchain allows it (no dynamic loader before main), so
 * "first instruction" is as close to the exec as a C program gets; jobd and systemd-run run the
 * same binary, so either way the comparison is fair.
 */

#include <time.h>
#include <unistd.h>

int main(void) {
        struct timespec ts;
        char buf[32], *p = buf + sizeof(buf);
        unsigned long long ns;

        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return 1;
        ns = (unsigned long long) ts.tv_sec * 1000000000ULL + (unsigned long long) ts.tv_nsec;

        *--p = '\n';
        do {
                *--p = (char) ('0' + ns % 10);
                ns /= 10;
        } while (ns > 0);
        return write(STDOUT_FILENO, p, (size_t) (buf + sizeof(buf) - p)) < 0 ? 1 : 0;
}
