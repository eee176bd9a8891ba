/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Dependencies (Submit option after): which jobs wait for which job. An index from a job's id
 * to the jobs waiting for it, so that a job's end touches only its own dependents and never
 * the whole table; each waiting job counts its unmet dependencies (Job.n_unmet) and keeps its
 * links (Job.dep_edges), so it leaves every list at once, in O(its dependencies). Borrows the
 * jobs; no I/O, no sd-bus. Whether a dependency is met is the caller's to say.
 */

#include <glib.h>

#include "job.h"

typedef struct DepIndex DepIndex;

DepIndex *dep_index_new(void);
/* the jobs' links are theirs (job_free) */
DepIndex *dep_index_free(DepIndex *d);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(DepIndex, dep_index_free)

/* j waits for j->after[i] as well; j->n_unmet counts it. Once per i. */
void dep_index_add(DepIndex *d, Job *j, unsigned i);
/* j waits for nothing any more (it ended otherwise, or cannot run): out of every list,
 * n_unmet 0. No-op for a job that waits for nothing. */
void dep_index_drop(DepIndex *d, Job *j);
/* Job dep succeeded: each of its waiters counts one dependency less. Returns (id order) those
 * that now wait for nothing. */
GPtrArray *dep_index_met(DepIndex *d, uint64_t dep);
/* Job dep failed or was cancelled: its waiters cannot run. Returns them (id order), each
 * dropped from every list. */
GPtrArray *dep_index_failed(DepIndex *d, uint64_t dep);
/* how many jobs wait for dep */
unsigned dep_index_n_waiting(DepIndex *d, uint64_t dep);
