/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Reading a unit's cgroup accounting: where a process's cgroups are (/proc/PID/cgroup), and the
 * CPU time, peak memory, OOM kills and refused forks the kernel recorded there. Works on cgroup
 * v1, hybrid (v1 controllers plus a controller-less v2 tree) and unified v2. Small synchronous
 * file reads; no sd-bus, no state. -errno on failure, like the rest of sd-bus-facing code.
 */

#include <stdint.h>
#include <sys/types.h>
#include <glib.h>

#define CGROUP_ROOT "/sys/fs/cgroup"

/* Folders of one cgroup in each hierarchy we read; NULL where the process is not in that unit's
 * cgroup (e.g. v1 cpuacct when the manager put CPU accounting elsewhere). */
typedef struct CgroupPaths {
        char *cpuacct;          /* v1: cpuacct.usage */
        char *memory;           /* v1: memory.max_usage_in_bytes, memory.oom_control, memory.failcnt */
        char *pids;             /* v1: pids.events */
        char *unified;          /* v2: cpu.stat, memory.peak, memory.events, pids.events */
} CgroupPaths;

void cgroup_paths_done(CgroupPaths *p);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(CgroupPaths, cgroup_paths_done)

/* Parses the text of /proc/PID/cgroup. Only cgroups whose last path component is leaf (the unit
 * name, "jobd-5.scope") are taken: a controller the unit was not realized in shows the root or a
 * parent there, whose counters belong to others. root is CGROUP_ROOT except in tests. -ENOENT if
 * none matched. */
int cgroup_paths_parse(const char *root, const char *text, const char *leaf, CgroupPaths *ret);
int cgroup_paths_for_pid(pid_t pid, const char *leaf, CgroupPaths *ret);

#define CGROUP_VALUE_UNSET UINT64_MAX

typedef struct CgroupUsage {
        uint64_t cpu_usage_nsec;        /* CGROUP_VALUE_UNSET when unknown */
        uint64_t memory_peak_bytes;     /* likewise (v2 before Linux 5.19 has no memory.peak) */
        uint64_t memory_failcnt;        /* v1: times usage hit the limit; 0 on v2 */
        uint64_t oom_kills;             /* processes the OOM killer took here; unset: no counter */
        uint64_t pids_max_hits;         /* forks refused by pids.max */
} CgroupUsage;

/* Reads what is there; missing files leave their fields unset or 0. Never fails. */
void cgroup_read_usage(const CgroupPaths *p, CgroupUsage *ret);

/* Counts the processes in the cgroup other than except (a cgroup.procs read), or -errno. */
int cgroup_count_other_pids(const CgroupPaths *p, pid_t except);
