/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Verbs of external work: worker (a worker loop) and progress (called from inside an attempt). */

#include "jobctl.h"
#include "jobctl-time.h"

#define WORKER_CONCURRENCY_MAX      128u        /* handlers at once; each holds a few fds */
#define WORKER_CLAIM_WAIT_USEC      (30 * USEC_PER_SEC)
#define WORKER_CLAIM_WAIT_MIN_USEC  USEC_PER_SEC
#define WORKER_CLAIM_WAIT_MAX_USEC  USEC_PER_HOUR  /* jobd's limit for one Claim */

extern const Verb worker_verbs[];
