/* SPDX-License-Identifier: MIT */
/*
 * procmem: what a process and all its descendants hold in memory, as the
 * kernel accounts it (/proc/PID/smaps_rollup): the service's whole cost to
 * the host, reported by /api/stats.
 */
#pragma once

#include <stdint.h>
#include <sys/types.h>

struct proc_memory {
        unsigned processes; /* counted: one per address space */
        /* Processes whose memory this process may not read, not counted:
         * unprivileged, the sandboxes' programs and their holders (they
         * are not dumpable, and their memory is not of the service's user
         * namespace). */
        unsigned unreadable;
        uint64_t pss;       /* proportional set size, bytes, hugetlb pages left out */
        uint64_t hugetlb;   /* hugetlb pages mapped, bytes (never shared between them) */
};

/*
 * Walks root's descendants (/proc/PID/task/TID/children) and adds up their
 * smaps_rollup. A process that shares the address space of its parent or
 * of a sibling (a sandbox's holder and its program: CLONE_VM) is counted
 * once (kcmp).
 * Processes that end during the walk are skipped. -errno if root itself
 * cannot be read.
 */
int proc_memory_tree(pid_t root, struct proc_memory *ret);
