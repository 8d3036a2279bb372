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
};

/* Create the run's cgroups named name (a stale one of that name, left by a
 * crash, is emptied and recreated) and set the limits: memory_bytes with swap
 * forbidden, pids_max tasks. Returns -errno; on failure nothing is left. */
int cgroup_run_create(const struct cgroup_host *h, const char *name, uint64_t memory_bytes, uint64_t pids_max,
                      struct cgroup_run *ret);

/* Change the limits of an existing run (the warm path sets each request's
 * limits on a sandbox built ahead of time). */
int cgroup_run_set_limits(const struct cgroup_host *h, const struct cgroup_run *c, uint64_t memory_bytes,
                          uint64_t pids_max);
/* Start the memory high-water mark afresh (v1; v2's memory.peak cannot be
 * reset for other readers, so it also counts the sandbox's construction). */
void cgroup_run_reset_peak(const struct cgroup_run *c);

/* Move pid into every cgroup of the run. */
int cgroup_run_attach(const struct cgroup_run *c, pid_t pid);

struct cgroup_stats {
        bool have_cpu;
        uint64_t cpu_ns; /* CPU time of every task that ran in the group */
        bool have_peak;
        uint64_t peak_bytes; /* high-water mark of memory use */
        uint64_t oom_kills;  /* tasks the OOM killer killed for the limit */
        bool memory_limit_hit; /* the limit was reached at least once */
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
