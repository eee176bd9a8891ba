/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* jobd: parses the command line, picks the log target, and runs the manager. */

#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "build-config.h"
#include "log.h"
#include "manager.h"

static bool arg_user = false;

static void help(void) {
        printf("jobd [OPTIONS…]\n\n"
               "The job service: queues jobs durably, runs them in transient systemd scopes or\n"
               "hands them to workers. Normally started by D-Bus activation through jobd.service.\n\n"
               "  -h --help      Show this help\n"
               "     --version   Show the version\n"
               "     --user      Run on the session bus with the user's service manager\n");
}

static int parse_argv(int argc, char *argv[]) {
        enum { ARG_VERSION = 0x100, ARG_USER };
        static const struct option options[] = {
                { "help",    no_argument, NULL, 'h' },
                { "version", no_argument, NULL, ARG_VERSION },
                { "user",    no_argument, NULL, ARG_USER },
                {}
        };
        int c;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 0;
                case ARG_VERSION:
                        printf("jobd " JOBD_VERSION "\n");
                        return 0;
                case ARG_USER:
                        arg_user = true;
                        break;
                default:
                        return -EINVAL;
                }
        if (optind < argc) {
                fprintf(stderr, "jobd takes no positional arguments.\n");
                return -EINVAL;
        }
        return 1;
}

int main(int argc, char *argv[]) {
        g_autoptr(Manager) m = NULL;
        int r;

        /* under systemd stderr is the journal already, but structured fields need the native
         * protocol; in a terminal plain lines are friendlier */
        if (!getenv("JOURNAL_STREAM") && !getenv("INVOCATION_ID"))
                log_set_target(LOG_TARGET_STDERR);
        if (getenv("JOBD_LOG_STDERR"))
                log_set_target(LOG_TARGET_STDERR);

        /* a Follow reader that goes away must cost its stream, not the daemon */
        (void) signal(SIGPIPE, SIG_IGN);

        r = parse_argv(argc, argv);
        if (r <= 0)
                return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

        r = manager_new(&m, arg_user);
        if (r < 0) {
                log_error_errno(r, "Failed to set up the manager: %m");
                return EXIT_FAILURE;
        }
        r = manager_start(m);
        if (r < 0)
                return EXIT_FAILURE;
        r = manager_run(m);
        if (r < 0) {
                log_error_errno(r, "Event loop failed: %m");
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}
