/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Owns one GTree per type of the pending jobs of that type, and one GTree of the scheduled jobs
 * by due time, and one GTree of the jobs that may expire; the trees borrow the jobs. Invariants:
 * a job is in exactly one of the first two kinds when j->sched_node != NULL, the timed one when
 * j->sched_timed; it is in the expiry tree exactly when j->expire_node != NULL.
 */

#include "scheduler.h"

struct Scheduler {
        GHashTable *queues;     /* type name (owned) → GTree of Job* */
        GTree *timed;           /* scheduled Job* by (not_before_usec, id) */
        GTree *expiring;        /* Job* by (expire_at_usec, id) */
};

/* by a point in time, then by id, so jobs due at the same instant keep submission order */
static gint compare_time_id(uint64_t t1, uint64_t id1, uint64_t t2, uint64_t id2) {
        if (t1 != t2)
                return t1 < t2 ? -1 : 1;
        if (id1 != id2)
                return id1 < id2 ? -1 : 1;
        return 0;
}

static gint job_compare_due(gconstpointer a, gconstpointer b) {
        const Job *x = a, *y = b;

        return compare_time_id(x->not_before_usec, x->id, y->not_before_usec, y->id);
}

static gint job_compare_expiry(gconstpointer a, gconstpointer b) {
        const Job *x = a, *y = b;

        return compare_time_id(x->expire_at_usec, x->id, y->expire_at_usec, y->id);
}

Scheduler *scheduler_new(void) {
        Scheduler *s = g_new0(Scheduler, 1);

        s->queues = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                          (GDestroyNotify) g_tree_unref);
        s->timed = g_tree_new(job_compare_due);
        s->expiring = g_tree_new(job_compare_expiry);
        return s;
}

Scheduler *scheduler_free(Scheduler *s) {
        if (!s)
                return NULL;
        g_hash_table_unref(s->queues);
        g_tree_unref(s->timed);
        g_tree_unref(s->expiring);
        return g_free(s), NULL;
}

void scheduler_add(Scheduler *s, Job *j) {
        GTree *q;

        g_assert(!j->sched_node);
        g_assert(j->status == JOB_PENDING || j->status == JOB_SCHEDULED);

        if (j->status == JOB_SCHEDULED) {
                j->sched_timed = true;
                j->sched_node = g_tree_insert_node(s->timed, j, j);
                return;
        }

        j->sched_timed = false;
        q = g_hash_table_lookup(s->queues, j->type);
        if (!q) {
                q = g_tree_new(job_compare_rank);
                g_hash_table_insert(s->queues, g_strdup(j->type), q);
        }
        j->sched_node = g_tree_insert_node(q, j, j);
}

void scheduler_remove(Scheduler *s, Job *j) {
        GTree *q;

        if (!j->sched_node)
                return;
        if (j->sched_timed) {
                g_tree_remove(s->timed, j);
                j->sched_node = NULL;
                return;
        }
        q = g_hash_table_lookup(s->queues, j->type);
        g_assert(q);
        g_tree_remove(q, j);
        j->sched_node = NULL;
}

Job *scheduler_peek(Scheduler *s, const char *type) {
        GTree *q = g_hash_table_lookup(s->queues, type);
        GTreeNode *n;

        if (!q)
                return NULL;
        n = g_tree_node_first(q);
        return n ? g_tree_node_value(n) : NULL;
}

unsigned scheduler_n_queued(Scheduler *s, const char *type) {
        GTree *q = g_hash_table_lookup(s->queues, type);

        return q ? (unsigned) g_tree_nnodes(q) : 0;
}

Job *scheduler_find(Scheduler *s, const char *type, bool (*accept)(const Job *j, void *userdata), void *userdata) {
        GTree *q = g_hash_table_lookup(s->queues, type);

        for (GTreeNode *n = q ? g_tree_node_first(q) : NULL; n; n = g_tree_node_next(n))
                if (accept(g_tree_node_value(n), userdata))
                        return g_tree_node_value(n);
        return NULL;
}

Job *scheduler_next_due(Scheduler *s) {
        GTreeNode *n = g_tree_node_first(s->timed);

        return n ? g_tree_node_value(n) : NULL;
}

void scheduler_add_expiry(Scheduler *s, Job *j) {
        g_assert(!j->expire_node);
        if (j->expire_at_usec > 0)
                j->expire_node = g_tree_insert_node(s->expiring, j, j);
}

void scheduler_remove_expiry(Scheduler *s, Job *j) {
        if (!j->expire_node)
                return;
        g_tree_remove(s->expiring, j);
        j->expire_node = NULL;
}

Job *scheduler_next_expiry(Scheduler *s) {
        GTreeNode *n = g_tree_node_first(s->expiring);

        return n ? g_tree_node_value(n) : NULL;
}
