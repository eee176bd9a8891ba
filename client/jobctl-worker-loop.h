/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The loop behind `jobctl worker`: up to concurrency jobs at once, each claimed (tracked) from
 * jobd, worked by a Handler (jobctl-handler.h) under a heartbeat, its stderr sent as Log, ended
 * with Complete or Fail. Owns the sd-event loop it runs, a bus connection per slot and everything
 * claimed.
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

/* Opens a new connection to jobd (as --user or --host= say) and logs on failure. */
typedef int (*WorkerOpenBusFn)(void *userdata, sd_bus **ret);

typedef struct WorkerOptions {
        WorkerOpenBusFn open_bus;       /* one connection per slot */
        void *userdata;
        char **types;                   /* borrowed */
        char **command;                 /* borrowed: the handler and its arguments */
        unsigned concurrency;
        uint64_t wait_usec;             /* how long one Claim waits */
        unsigned max_jobs;              /* 0: no limit */
        bool fds;                       /* the connections carry fds (not SSH): jobs with input come */
} WorkerOptions;

/* Runs until SIGTERM or SIGINT (what is held is released first) or until max_jobs jobs ended:
 * then 0. 128+SIGNAL after a second signal (handlers killed, nothing released). -errno after a
 * logged error that ends claiming (access denied, unknown type, the bus gone), once the jobs in
 * hand are done. */
int worker_run(const WorkerOptions *o);
