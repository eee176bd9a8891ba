/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Owns nothing beyond the strings in CgroupPaths. Stateless readers of /proc/PID/cgroup and of a
 * cgroup's accounting files.
 *
 * Where things are: v1 hierarchies are mounted at CGROUP_ROOT/<controllers> ("cpu,cpuacct", with
 * "cpu" and "cpuacct" as symlinks on systemd machines, or separate mounts), the v2 tree at
 * CGROUP_ROOT itself (unified) or CGROUP_ROOT/unified (hybrid). Paths in /proc/PID/cgroup are
 * relative to the reader's cgroup namespace, which is also what its mounts show.
 *
 * Invariant: a path is only taken when it ends in the unit's own cgroup, so a counter read here
 * is never the slice's or the root's.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cgroup-util.h"

/* cgroup.procs of a job at TasksMax=4096 is ~30 KiB; anything near this is not ours to parse */
#define CGROUP_FILE_MAX (1024u * 1024u)

void cgroup_paths_done(CgroupPaths *p) {
        g_clear_pointer(&p->cpuacct, g_free);
        g_clear_pointer(&p->memory, g_free);
        g_clear_pointer(&p->pids, g_free);
        g_clear_pointer(&p->unified, g_free);
}

static int read_file(const char *path, char **ret) {
        g_autoptr(GString) s = g_string_new(NULL);
        char buf[4096];
        int fd;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        int r = -errno;

                        (void) close(fd);
                        return r;
                }
                if (n == 0)
                        break;
                if (s->len + (size_t) n > CGROUP_FILE_MAX) {
                        (void) close(fd);
                        return -EFBIG;
                }
                g_string_append_len(s, buf, n);
        }
        (void) close(fd);
        *ret = g_string_free(g_steal_pointer(&s), FALSE);
        return 0;
}

static bool controllers_contain(const char *list, const char *controller) {
        g_auto(GStrv) names = g_strsplit(list, ",", -1);

        return g_strv_contains((const char * const *) names, controller);
}

/* The folder of one v1 controller's hierarchy: the mount named like the whole list first
 * ("cpu,cpuacct"), else the one named after the controller (a symlink or a separate mount). */
static char *v1_folder(const char *root, const char *controllers, const char *controller,
                       const char *path) {
        g_autofree char *joint = g_strconcat(root, "/", controllers, NULL);

        if (access(joint, F_OK) >= 0)
                return g_strconcat(joint, path, NULL);
        return g_strconcat(root, "/", controller, path, NULL);
}

static bool path_ends_in(const char *path, const char *leaf) {
        const char *slash = strrchr(path, '/');

        return slash && g_str_equal(slash + 1, leaf);
}

int cgroup_paths_parse(const char *root, const char *text, const char *leaf, CgroupPaths *ret) {
        g_auto(CgroupPaths) p = {};
        g_auto(GStrv) lines = NULL;

        lines = g_strsplit(text, "\n", -1);
        for (char **l = lines; *l; l++) {
                g_auto(GStrv) f = g_strsplit(*l, ":", 3);

                if (g_strv_length(f) != 3 || !path_ends_in(f[2], leaf))
                        continue;

                if (g_str_equal(f[0], "0") && f[1][0] == '\0') {
                        g_autofree char *probe = g_strconcat(root, "/cgroup.controllers", NULL);

                        /* unified: the v2 tree is the root mount; hybrid: it sits at "unified" */
                        if (access(probe, F_OK) >= 0)
                                p.unified = g_strconcat(root, f[2], NULL);
                        else
                                p.unified = g_strconcat(root, "/unified", f[2], NULL);
                        continue;
                }
                if (!p.cpuacct && controllers_contain(f[1], "cpuacct"))
                        p.cpuacct = v1_folder(root, f[1], "cpuacct", f[2]);
                if (!p.memory && controllers_contain(f[1], "memory"))
                        p.memory = v1_folder(root, f[1], "memory", f[2]);
                if (!p.pids && controllers_contain(f[1], "pids"))
                        p.pids = v1_folder(root, f[1], "pids", f[2]);
        }
        if (!p.cpuacct && !p.memory && !p.pids && !p.unified)
                return -ENOENT;

        *ret = p;
        p = (CgroupPaths) {};
        return 0;
}

int cgroup_paths_for_pid(pid_t pid, const char *leaf, CgroupPaths *ret) {
        g_autofree char *path = g_strdup_printf("/proc/%i/cgroup", (int) pid);
        g_autofree char *text = NULL;
        int r;

        r = read_file(path, &text);
        if (r < 0)
                return r;
        return cgroup_paths_parse(CGROUP_ROOT, text, leaf, ret);
}

/* An attribute file of a cgroup folder (dir may be NULL: a hierarchy we did not find). */
static int read_attr(const char *dir, const char *name, char **ret) {
        g_autofree char *path = NULL;

        if (!dir)
                return -ENOENT;
        path = g_strconcat(dir, "/", name, NULL);
        return read_file(path, ret);
}

static int read_u64_file(const char *dir, const char *name, uint64_t *ret) {
        g_autofree char *text = NULL;
        char *end;
        int r;

        r = read_attr(dir, name, &text);
        if (r < 0)
                return r;
        errno = 0;
        *ret = g_ascii_strtoull(text, &end, 10);
        if (errno != 0 || end == text)
                return -EINVAL;
        return 0;
}

/* "key value" lines (cpu.stat, memory.events, memory.oom_control, pids.events) */
static int read_keyed_u64(const char *dir, const char *name, const char *key, uint64_t *ret) {
        g_autofree char *text = NULL;
        g_auto(GStrv) lines = NULL;
        int r;

        r = read_attr(dir, name, &text);
        if (r < 0)
                return r;
        lines = g_strsplit(text, "\n", -1);
        for (char **l = lines; *l; l++) {
                size_t k = strlen(key);
                char *end;

                if (strncmp(*l, key, k) != 0 || (*l)[k] != ' ')
                        continue;
                errno = 0;
                *ret = g_ascii_strtoull(*l + k + 1, &end, 10);
                if (errno != 0 || end == *l + k + 1)
                        return -EINVAL;
                return 0;
        }
        return -ENOENT;
}

void cgroup_read_usage(const CgroupPaths *p, CgroupUsage *ret) {
        CgroupUsage u = {
                .cpu_usage_nsec = CGROUP_VALUE_UNSET,
                .memory_peak_bytes = CGROUP_VALUE_UNSET,
                .oom_kills = CGROUP_VALUE_UNSET,
        };
        uint64_t v;

        if (read_u64_file(p->cpuacct, "cpuacct.usage", &v) >= 0)
                u.cpu_usage_nsec = v;
        else if (read_keyed_u64(p->unified, "cpu.stat", "usage_usec", &v) >= 0 && v < UINT64_MAX / 1000)
                /* on hybrid the v2 tree has cpu.stat without any controller: the core keeps it */
                u.cpu_usage_nsec = v * 1000;

        if (read_u64_file(p->memory, "memory.max_usage_in_bytes", &v) >= 0)
                u.memory_peak_bytes = v;
        else if (read_u64_file(p->unified, "memory.peak", &v) >= 0)
                u.memory_peak_bytes = v;

        if (read_u64_file(p->memory, "memory.failcnt", &v) >= 0)
                u.memory_failcnt = v;

        /* v1 has the counter in memory.oom_control since Linux 4.13 */
        if (read_keyed_u64(p->memory, "memory.oom_control", "oom_kill", &v) >= 0)
                u.oom_kills = v;
        else if (read_keyed_u64(p->unified, "memory.events", "oom_kill", &v) >= 0)
                u.oom_kills = v;

        if (read_keyed_u64(p->pids, "pids.events", "max", &v) >= 0)
                u.pids_max_hits = v;
        else if (read_keyed_u64(p->unified, "pids.events", "max", &v) >= 0)
                u.pids_max_hits = v;

        *ret = u;
}

int cgroup_count_other_pids(const CgroupPaths *p, pid_t except) {
        /* the v2 tree tracks every process even on hybrid; v1 pids or memory otherwise */
        const char *dir = p->unified ?: p->pids ?: p->memory;
        g_autofree char *path = NULL, *text = NULL;
        g_auto(GStrv) lines = NULL;
        int r, n = 0;

        if (!dir)
                return -ENOENT;
        path = g_strconcat(dir, "/cgroup.procs", NULL);
        r = read_file(path, &text);
        if (r < 0)
                return r;
        lines = g_strsplit(text, "\n", -1);
        for (char **l = lines; *l; l++)
                if (**l != '\0' && atoi(*l) != (int) except)
                        n++;
        return n;
}
