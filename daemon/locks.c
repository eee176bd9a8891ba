/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Owns a LockEntry per (owner, key) that has a holder or waiters, freed as soon as it has
 * neither. Invariants: j->lock_entry is set exactly while j waits for or holds that entry's key,
 * j->lock_node exactly while it waits; holding and waiting exclude each other; an entry's
 * candidate is NULL or one of its waiters, and NULL while it has a holder after a settle.
 */

#include <string.h>

#include "locks.h"

typedef struct LockEntry {
        uid_t owner;
        char *key;
        Job *holder;
        Job *candidate;                 /* the waiter the caller was told may start */
        GTree *waiters;                 /* Job* by job_compare_rank */
} LockEntry;

struct LockTable {
        GHashTable *entries;            /* LockEntry* set (owned), by (owner, key) */
};

static guint entry_hash(gconstpointer p) {
        const LockEntry *e = p;

        return g_str_hash(e->key) ^ (guint) e->owner * 2654435761u;
}

static gboolean entry_equal(gconstpointer a, gconstpointer b) {
        const LockEntry *x = a, *y = b;

        return x->owner == y->owner && strcmp(x->key, y->key) == 0;
}

static void entry_free(gpointer p) {
        LockEntry *e = p;

        g_tree_unref(e->waiters);
        g_free(e->key);
        g_free(e);
}

LockTable *lock_table_new(void) {
        LockTable *t = g_new0(LockTable, 1);

        t->entries = g_hash_table_new_full(entry_hash, entry_equal, entry_free, NULL);
        return t;
}

LockTable *lock_table_free(LockTable *t) {
        if (!t)
                return NULL;
        g_hash_table_unref(t->entries);
        return g_free(t), NULL;
}

static LockEntry *entry_lookup(LockTable *t, uid_t owner, const char *key) {
        LockEntry probe = { .owner = owner, .key = (char *) key };

        return g_hash_table_lookup(t->entries, &probe);
}

static LockEntry *entry_get(LockTable *t, const Job *j) {
        LockEntry *e = j->lock_entry ?: entry_lookup(t, j->owner, j->lock);

        if (e)
                return e;
        e = g_new0(LockEntry, 1);
        *e = (LockEntry) { .owner = j->owner, .key = g_strdup(j->lock),
                           .waiters = g_tree_new(job_compare_rank) };
        g_hash_table_add(t->entries, e);
        return e;
}

static void entry_free_if_unused(LockTable *t, LockEntry *e) {
        if (!e->holder && g_tree_nnodes(e->waiters) == 0)
                g_hash_table_remove(t->entries, e);
}

void lock_table_enqueue(LockTable *t, Job *j) {
        LockEntry *e;

        g_assert(j->lock && !j->lock_node && !lock_table_holds(j));
        e = entry_get(t, j);
        j->lock_entry = e;
        j->lock_node = g_tree_insert_node(e->waiters, j, j);
}

/* out of the waiters; j->lock_entry is the caller's to keep or clear */
static void entry_unwait(LockEntry *e, Job *j) {
        g_tree_remove(e->waiters, j);
        j->lock_node = NULL;
        if (e->candidate == j)
                e->candidate = NULL;
}

void lock_table_dequeue(LockTable *t, Job *j) {
        LockEntry *e = j->lock_entry;

        if (!j->lock_node)
                return;
        entry_unwait(e, j);
        j->lock_entry = NULL;
        entry_free_if_unused(t, e);
}

bool lock_table_acquire(LockTable *t, Job *j) {
        LockEntry *e;

        g_assert(j->lock);
        e = entry_get(t, j);
        if (e->holder && e->holder != j) {
                entry_free_if_unused(t, e);
                return false;
        }
        if (j->lock_node)
                entry_unwait(e, j);
        e->holder = j;
        j->lock_entry = e;
        return true;
}

void lock_table_release(LockTable *t, Job *j) {
        LockEntry *e = j->lock_entry;

        if (!lock_table_holds(j))
                return;
        e->holder = NULL;
        j->lock_entry = NULL;
        entry_free_if_unused(t, e);
}

bool lock_table_holds(const Job *j) {
        return j->lock_entry && ((LockEntry *) j->lock_entry)->holder == j;
}

bool lock_table_is_waiting(const Job *j) {
        return j->lock_node;
}

bool lock_table_is_candidate(const Job *j) {
        return j->lock_node && ((LockEntry *) j->lock_entry)->candidate == j;
}

bool lock_table_busy(LockTable *t, uid_t owner, const char *key) {
        return entry_lookup(t, owner, key);
}

void lock_table_settle(LockTable *t, const Job *j, Job **ret_demote, Job **ret_promote) {
        LockEntry *e = j->lock ? entry_lookup(t, j->owner, j->lock) : NULL;
        GTreeNode *first;
        Job *want;

        *ret_demote = *ret_promote = NULL;
        if (!e)
                return;         /* nobody holds or waits: there was no candidate either */
        first = g_tree_node_first(e->waiters);
        want = !e->holder && first ? g_tree_node_value(first) : NULL;
        if (want == e->candidate)
                return;
        *ret_demote = e->candidate;
        *ret_promote = want;
        e->candidate = want;
}
