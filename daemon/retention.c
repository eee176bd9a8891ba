/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Owns m->finished (Job* ordered by the FinishedUSec each was indexed with, then id) and the purge
 * timer. The key is copied into j->retained_usec when indexed, so a later change of
 * j->finished_usec (Retry clears it) never breaks the tree's order; 0 means not indexed.
 */

#include "log.h"
#include "retention.h"

/* purges per timer dispatch: a big backlog (Retention= shortened) must not stall the loop */
#define PURGE_BATCH 512u

static int job_compare_retained(gconstpointer a, gconstpointer b, gpointer userdata) {
        const Job *x = a, *y = b;

        if (x->retained_usec != y->retained_usec)
                return x->retained_usec < y->retained_usec ? -1 : 1;
        return x->id < y->id ? -1 : x->id > y->id;
}

static uint64_t purge_due(const Manager *m, const Job *j) {
        uint64_t keep = m->config.retention_usec;

        return keep > UINT64_MAX - j->retained_usec ? UINT64_MAX : j->retained_usec + keep;
}

static Job *oldest(Manager *m) {
        GTreeNode *n = g_tree_node_first(m->finished);

        return n ? g_tree_node_value(n) : NULL;
}

void retention_arm(Manager *m) {
        Job *j = oldest(m);
        uint64_t due = j ? purge_due(m, j) : UINT64_MAX;

        if (!m->purge_source)
                return;
        if (due == UINT64_MAX) {
                (void) sd_event_source_set_enabled(m->purge_source, SD_EVENT_OFF);
                return;
        }
        (void) sd_event_source_set_time(m->purge_source, due);
        (void) sd_event_source_set_enabled(m->purge_source, SD_EVENT_ONESHOT);
}

static int on_purge(sd_event_source *s, uint64_t usec, void *userdata) {
        Manager *m = userdata;
        uint64_t now = (uint64_t) g_get_real_time();
        unsigned n = 0;
        Job *j;

        /* a store that refuses changes cannot record the purge: wait for its recovery */
        while (manager_accepts_changes(m) && n < PURGE_BATCH && (j = oldest(m)) && purge_due(m, j) <= now) {
                manager_purge(m, j);
                n++;
        }
        if (n > 0)
                log_debug("Purged %u finished jobs past their retention.", n);
        if (n == PURGE_BATCH || !manager_accepts_changes(m)) {
                /* the rest in a later turn of the loop (or once the store is back) */
                (void) sd_event_source_set_time_relative(s, n == PURGE_BATCH ? 0 : UINT64_C(1000000));
                (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
                return 0;
        }
        retention_arm(m);
        return 0;
}

int retention_setup(Manager *m) {
        int r;

        m->finished = g_tree_new_full(job_compare_retained, NULL, NULL, NULL);
        r = sd_event_add_time(m->event, &m->purge_source, CLOCK_REALTIME, UINT64_MAX, 0, on_purge, m);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(m->purge_source, SD_EVENT_OFF);
        (void) sd_event_source_set_description(m->purge_source, "purge-finished");
        return 0;
}

void retention_free(Manager *m) {
        m->purge_source = sd_event_source_disable_unref(m->purge_source);
        g_clear_pointer(&m->finished, g_tree_unref);
}

void retention_track(Manager *m, Job *j) {
        Job *first = oldest(m);

        if (j->retained_usec != 0)
                return;
        /* FinishedUSec 0 (a journal from before it was recorded): keep it a full Retention from now */
        j->retained_usec = j->finished_usec ?: (uint64_t) g_get_real_time();
        g_tree_insert(m->finished, j, j);
        if (!first || job_compare_retained(j, first, NULL) < 0)
                retention_arm(m);
}

void retention_untrack(Manager *m, Job *j) {
        bool was_first;

        if (j->retained_usec == 0)
                return;
        was_first = oldest(m) == j;
        g_tree_remove(m->finished, j);
        j->retained_usec = 0;
        if (was_first)
                retention_arm(m);
}
