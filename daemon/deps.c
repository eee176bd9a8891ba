/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Owns a DepList per job that is waited for (created with its first waiter, freed with its
 * last); each waiting job owns an array of DepEdge, one per entry of its after list, linked
 * into that dependency's list while unmet. Intrusive lists rather than a set per dependency:
 * a chain of a million jobs costs 32 bytes a link, not a hash table each. Invariants:
 * j->n_unmet is the number of j's linked edges; j->dep_edges is NULL when it is 0; a DepList in
 * the table is never empty.
 */

#include "deps.h"

typedef struct DepList DepList;

typedef struct DepEdge {
        Job *job;                       /* the waiting job */
        DepList *list;                  /* NULL: not linked (met, or never waited) */
        struct DepEdge *prev, *next;
} DepEdge;

struct DepList {
        uint64_t id;                    /* the job waited for; the table's key */
        DepEdge *head;
        unsigned n;
};

struct DepIndex {
        GHashTable *lists;              /* &DepList.id → DepList* (owned) */
};

DepIndex *dep_index_new(void) {
        DepIndex *d = g_new0(DepIndex, 1);

        d->lists = g_hash_table_new_full(g_int64_hash, g_int64_equal, NULL, g_free);
        return d;
}

DepIndex *dep_index_free(DepIndex *d) {
        if (!d)
                return NULL;
        g_hash_table_unref(d->lists);
        return g_free(d), NULL;
}

void dep_index_add(DepIndex *d, Job *j, unsigned i) {
        uint64_t dep;
        DepEdge *e;
        DepList *l;

        g_assert(i < j->after->len);
        dep = g_array_index(j->after, uint64_t, i);
        if (!j->dep_edges)
                j->dep_edges = g_new0(DepEdge, j->after->len);
        e = (DepEdge *) j->dep_edges + i;
        g_assert(!e->list);

        l = g_hash_table_lookup(d->lists, &dep);
        if (!l) {
                l = g_new0(DepList, 1);
                l->id = dep;
                g_hash_table_insert(d->lists, &l->id, l);
        }
        *e = (DepEdge) { .job = j, .list = l, .next = l->head };
        if (l->head)
                l->head->prev = e;
        l->head = e;
        l->n++;
        j->n_unmet++;
}

static void edge_unlink(DepIndex *d, DepEdge *e) {
        DepList *l = e->list;

        if (e->prev)
                e->prev->next = e->next;
        else
                l->head = e->next;
        if (e->next)
                e->next->prev = e->prev;
        *e = (DepEdge) {};
        if (--l->n == 0)
                g_hash_table_remove(d->lists, &l->id);
}

void dep_index_drop(DepIndex *d, Job *j) {
        DepEdge *edges = j->dep_edges;

        if (!edges)
                return;
        for (guint i = 0; i < j->after->len; i++)
                if (edges[i].list)
                        edge_unlink(d, &edges[i]);
        g_clear_pointer(&j->dep_edges, g_free);
        j->n_unmet = 0;
}

static gint compare_job_ids(gconstpointer a, gconstpointer b) {
        const Job *x = *(Job *const *) a, *y = *(Job *const *) b;

        return x->id < y->id ? -1 : x->id > y->id;
}

GPtrArray *dep_index_met(DepIndex *d, uint64_t dep) {
        GPtrArray *ready = g_ptr_array_new();
        g_autofree DepList *l = g_hash_table_lookup(d->lists, &dep);

        /* not g_hash_table_steal_extended(): with the key at the value's address GLib takes the
         * table for a set, and 2.74 hands back no value */
        if (!l)
                return ready;
        g_hash_table_steal(d->lists, &dep);
        for (DepEdge *e = l->head, *next; e; e = next) {
                Job *w = e->job;

                next = e->next;
                *e = (DepEdge) {};
                /* the edges live in w's array: not touched once it may be freed */
                if (--w->n_unmet == 0) {
                        g_clear_pointer(&w->dep_edges, g_free);
                        g_ptr_array_add(ready, w);
                }
        }
        g_ptr_array_sort(ready, compare_job_ids);
        return ready;
}

GPtrArray *dep_index_failed(DepIndex *d, uint64_t dep) {
        GPtrArray *dropped = g_ptr_array_new();
        DepList *l;

        /* each drop unlinks the head; the list goes with its last edge */
        while ((l = g_hash_table_lookup(d->lists, &dep))) {
                Job *w = l->head->job;

                dep_index_drop(d, w);
                g_ptr_array_add(dropped, w);
        }
        g_ptr_array_sort(dropped, compare_job_ids);
        return dropped;
}

unsigned dep_index_n_waiting(DepIndex *d, uint64_t dep) {
        DepList *l = g_hash_table_lookup(d->lists, &dep);

        return l ? l->n : 0;
}
