/* SPDX-License-Identifier: MIT */
/*
 * cgroup: tree-wide memory and process limits, CPU accounting and peak
 * memory for one run, on the unified hierarchy (v2) where its controllers are
 * available and on the legacy per-controller hierarchies (v1) otherwise.
 *
 * Layout: every run gets its own leaf below a parent that pyexec owns:
 *   v2: <cgroup2 mount>/pyexec/<run>            (memory, pids)
 *   v1: <memory mount>/<our cgroup>/pyexec/<run>, same for pids and cpuacct
 * The v2 parent sits at the top of the hierarchy because the "no internal
 * processes" rule forbids enabling controllers below a cgroup that holds
 * processes (our own); PYEXEC_CGROUP names another delegated parent.
 *
 * The hugetlb controller is looked for on its own, because hybrid hosts
 * leave it on the unified hierarchy while memory and pids are v1: on the
 * cgroup2 hierarchy where it is available there (<cgroup2 mount>/pyexec/<run>,
 * or below PYEXEC_CGROUP), else on a v1 hierarchy of its own. It bounds the
 * 2 MiB pages of the host's hugetlb pool a run may hold, which no memory
 * limit counts: a warm sandbox's copy of the zygote's pages (zygote-heap.c),
 * and nothing more; 0 for every other run.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum cgroup_version {
        CGROUP_NONE, /* no usable cgroup: rlimits only */
        CGROUP_V1,
        CGROUP_V2,
        _CGROUP_VERSION_MAX,
};

const char *cgroup_version_to_string(enum cgroup_version v);

/* What this host offers, detected once per process. */
struct cgroup_host {
        enum cgroup_version version;
        /* Parent directories pyexec creates its runs in; NULL where the
         * controller is not usable. For v2 all three point at one directory. */
        char *memory_parent;
        char *pids_parent;
        char *cpu_parent;
        bool memsw;      /* v1: memory.memsw.* exists, so swap can be limited too */
        char reason[1024]; /* why a controller is missing, for `pyexec check` */
        /* Where runs' hugetlb cgroups go (2 MiB pages); NULL: none usable,
         * and hugetlb_reason says why. */
        char *hugetlb_parent;
        bool hugetlb_v2; /* hugetlb.2MB.max (v2) or hugetlb.2MB.limit_in_bytes (v1) */
        char hugetlb_reason[512];
};

/* Detect the hierarchy and create the parents (needs write access to the
 * cgroup tree: root, or a delegated PYEXEC_CGROUP). Never fails hard: what
 * cannot be used is left NULL with a reason. */
void cgroup_host_detect(struct cgroup_host *ret);
void cgroup_host_done(struct cgroup_host *h);

/* One run's cgroups. */
struct cgroup_run {
        enum cgroup_version version;
        char *memory; /* v2: the one directory */
        char *pids;
        char *cpu;
        char *hugetlb; /* NULL: no hugetlb cgroup (the host has none) */
        bool hugetlb_v2;
        uint64_t hugetlb_base; /* v2: usage when the peak was last reset */
};

/* Create the run's cgroups named name (a stale one of that name, left by a
 * crash, is emptied and recreated) and set the limits: memory_bytes with swap
 * forbidden, pids_max tasks, and no huge page of the hugetlb pool where the
 * host has a hugetlb cgroup. Returns -errno; on failure nothing is left. */
int cgroup_run_create(const struct cgroup_host *h, const char *name, uint64_t memory_bytes, uint64_t pids_max,
                      struct cgroup_run *ret);

/* Change the limits of an existing run (the warm path sets each request's
 * limits on a sandbox built ahead of time). */
int cgroup_run_set_limits(const struct cgroup_host *h, const struct cgroup_run *c, uint64_t memory_bytes,
                          uint64_t pids_max);
/* The 2 MiB hugetlb pages the run may hold at once (bytes, a multiple of
 * 2 MiB). A task of the run that faults in one more gets SIGBUS. The pages
 * are charged to the task that faults them in, so a page a task outside
 * the run writes into the run's memory (process_vm_writev) counts against
 * that task's cgroup. -EOPNOTSUPP when the run has no hugetlb cgroup. */
int cgroup_run_set_hugetlb(const struct cgroup_run *c, uint64_t bytes);

/* Start the memory high-water mark afresh (v1; v2's memory.peak cannot be
 * reset for other readers, so it also counts the sandbox's construction).
 * The hugetlb one likewise (v1); v2 has no hugetlb peak: the usage now is
 * remembered instead (cgroup_run_stats). */
void cgroup_run_reset_peak(struct cgroup_run *c);

/* Move pid into every cgroup of the run. */
int cgroup_run_attach(const struct cgroup_run *c, pid_t pid);

struct cgroup_stats {
        bool have_cpu;
        uint64_t cpu_ns; /* CPU time of every task that ran in the group */
        bool have_peak;
        uint64_t peak_bytes; /* high-water mark of memory use */
        uint64_t oom_kills;  /* tasks the OOM killer killed for the limit */
        bool memory_limit_hit; /* the limit was reached at least once */
        /* hugetlb pages (2 MiB) of the run: the high-water mark (v1), or
         * on v2, which keeps none, the larger of the usage at the last reset
         * and now, and the limit itself once it was hit. peak_bytes
         * includes it: the two marks added, an upper bound of the memory
         * the run held at once. */
        bool have_hugetlb;
        uint64_t hugetlb_peak_bytes;
        bool hugetlb_limit_hit; /* a task of the run was refused a huge page */
};

/* Read what the run used. Missing files leave their have_ flag false. */
int cgroup_run_stats(const struct cgroup_run *c, struct cgroup_stats *ret);
/* CPU time alone (the supervisor polls it); -ENODATA when not accounted. */
int cgroup_run_cpu_ns(const struct cgroup_run *c, uint64_t *ret);

/* Tasks the OOM killer has killed in the run so far (polled by the
 * supervisor, so that one OOM kill ends the whole run on v1 as
 * memory.oom.group does on v2); -ENODATA without a memory cgroup. */
int cgroup_run_oom_kills(const struct cgroup_run *c, uint64_t *ret);

/* SIGKILL every task in the run (cgroup.kill where the kernel has it). */
int cgroup_run_kill(const struct cgroup_run *c);

/* Kill what is left, remove the directories, free the paths. */
void cgroup_run_destroy(struct cgroup_run *c);
