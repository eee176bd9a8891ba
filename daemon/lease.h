/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * External workers' attempts: Claims that wait (long polls, answered from the event loop when a
 * job arrives or the wait ends), the lease of every claimed job (one timer for the earliest
 * deadline), and the bus names of workers that asked to be tracked (their attempts are lost
 * when they leave the bus). The attempt's state itself lives in the Job; this module decides
 * who gets which job and notices when an attempt is lost.
 */

#include <stdbool.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include "manager.h"

#define CLAIM_TYPES_MAX 64u
#define CLAIM_WAIT_MAX_USEC (UINT64_C(3600) * 1000000)
#define CLAIM_WAITERS_PER_CONNECTION 16u
#define CLAIM_WAITERS_MAX 4096u
#define LEASE_DEFAULT_USEC (UINT64_C(30) * 60 * 1000000)     /* when the type has no Timeout= */
#define LEASE_EXTEND_MAX_USEC (UINT64_C(24) * 3600 * 1000000)

void lease_setup(Manager *m);
void lease_teardown(Manager *m);

/* The next pending job of these (validated) types for msg's sender now, or a parked wait of up to
 * wait_usec. Replies to msg itself, now or later. */
int lease_claim(Manager *m, sd_bus_message *msg, char **types, uint64_t wait_usec, bool track,
                bool fds, sd_bus_error *error);
/* Answers every parked Claim with id 0 ("nothing now"), as their timeouts would: jobd is exiting. */
void lease_answer_waiters(Manager *m);
/* Hands pending jobs to waiting Claims, oldest Claim first. */
void lease_serve_waiters(Manager *m);

/* The lease length of a job's type. */
uint64_t lease_length(Manager *m, const Job *j);
/* Moves a claimed job's lease to deadline (CLOCK_REALTIME µs). */
void lease_extend(Manager *m, Job *j, uint64_t deadline_usec);
/* The attempt is over (any way): forget its lease and tracking. */
void lease_attempt_over(Manager *m, Job *j);
/* After replay: re-arm the leases of claimed jobs, re-track their workers. */
void lease_recover(Manager *m);
