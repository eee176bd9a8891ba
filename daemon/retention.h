/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Retention: a finished job is kept for Retention= (jobd.conf) after its FinishedUSec, then
 * purged (manager_purge(): a PURGE record, its spool folder and kept workspace removed, its
 * object gone). Finished jobs are indexed by (FinishedUSec, id), and one CLOCK_REALTIME timer is
 * armed for the oldest, so a purge costs O(log n) and nothing polls.
 */

#include "manager.h"

int retention_setup(Manager *m);
void retention_free(Manager *m);

/* j just finished (or was replayed finished): index it. */
void retention_track(Manager *m, Job *j);
/* j is not finished any more (Retry), or goes: drop it from the index. */
void retention_untrack(Manager *m, Job *j);
/* Retention= may have changed (Reload): re-arm the timer. */
void retention_arm(Manager *m);
