/* SPDX-License-Identifier: MIT */
/*
 * zygote: the warm path. The service starts `pyexec-runner --zygote`, a
 * freshly exec'd process with a clean environment and none of the service's
 * memory, that initializes CPython once and imports the modules the
 * service lists (ZYGOTE_PREIMPORT) ahead. For each sandbox the service asks it to clone an init into new
 * namespaces; init builds the sandbox and forks the program from the
 * initialized interpreter, which drops to the run's uid, installs seccomp
 * and waits for work. A pool of such pre-built sandboxes (struct warm_pool)
 * is kept full by a thread, so a request only sends its work and watches.
 *
 * Process tree: service -> zygote -> init (PID 1 of the run) -> program.
 * init shares the zygote's memory until the program is forked, then execs
 * pyexec-init (sandbox-child.c).
 * Parent-death signals run down the same chain: a dying service takes the
 * zygote along, a dying zygote its inits, a dying init its namespace.
 *
 * The protocol between the service and the zygote is zygote-proto.h.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cgroup.h"
#include "pyexec.h"
#include "uidpool.h"
#include "zygote-proto.h"

/* A warm sandbox's processes beyond the program's own: init and the holder
 * of the program's address space (sandbox-child.c). */
#define WARM_EXTRA_PIDS 2

/* What the pool needs to know of the host, handed over as data when it
 * starts (supervise.c fills it from what it detected). The pointers are
 * the caller's and must outlive the pool. */
struct warm_host {
        bool privileged;
        uid_t uid_base;
        unsigned uid_count;
        const char *lock_dir;
        const struct cgroup_host *cg;
        uid_t outer_uid;
        gid_t outer_gid;
};

/* A sandbox built ahead of time, as the service holds it. */
struct warm_box {
        pid_t pid;
        int pidfd;
        int status_r, out_r, err_r, work_w;
        struct uidpool_slot slot;
        struct cgroup_run cg;
        bool use_cgroup;
        bool taken; /* by a run (warm_pool_take) */
        uint64_t memory_bytes, pids_max; /* the limits its cgroup has now */
        uid_t uid;
        gid_t gid;
        uid_t init_uid; /* its init's own (uidpool.h) */
        unsigned generation; /* of the zygote that made it */
        uint64_t born_ns;
        bool answered;        /* its init reported the run's end (EXITED) */
        uint64_t released_ns; /* when it was given back (warm_pool_release) */
        bool killed;          /* its init has been sent SIGKILL */
        int net_fd;           /* its network namespace, from the pool; -1: its own */
};

struct warm_options {
        const char *runner_path;
        unsigned target;          /* sandboxes kept ready, at most */
        bool follow_load;         /* fewer while the load needs fewer (pool_target) */
        uint64_t shrink_after_ns; /* how long a peak of load keeps its sandboxes */
        uint64_t disk_mb;      /* the work directory and /tmp of each */
        uint64_t memory_mb;    /* limits while idle; each run sets its own */
        uint64_t pids;
        uint64_t max_forks;    /* recycle the zygote after this many sandboxes */
        uint64_t max_age_s;    /* ... or after this long */
        enum pyexec_choice prefault;   /* sandboxes copy the interpreter's pages while they wait */
        const char *preimport;         /* modules to import ahead, comma-separated */
        enum pyexec_choice huge_pages; /* the zygote's memory on hugetlb pages (zygote-heap.c) */
        unsigned max_running;  /* sandboxes running at once, for sizing their pool */
};

struct warm_stats {
        uint64_t sandboxes;  /* built */
        uint64_t taken_ready; /* requests that found one ready */
        uint64_t built_on_demand;
        uint64_t failures;    /* sandboxes that could not be built */
        uint64_t zygotes;     /* started (1 + restarts + recycles) */
        uint64_t zygote_deaths;
        uint64_t netns_made;   /* network namespaces made for the pool */
        uint64_t netns_reused; /* sandboxes that joined one used before */
        uint64_t let_go;       /* ready sandboxes ended because the load needed fewer */
        unsigned ready;
        pid_t zygote_pid;
        unsigned zygote_huge_pages; /* the current zygote's, on hugetlb */
        unsigned target;            /* sandboxes kept ready now (pool_target) */
        bool huge_pages;            /* the choice made at start */
        const char *prefault;       /* "idle", "always" or "off" */
        const char *huge_pages_why;
        uint64_t cow_fault_ns;  /* hugetlb_cow_fault_ns at start; 0: not measured */
        uint64_t huge_reserved; /* pages this service added to vm.nr_hugepages */
};

struct warm_pool;

/* Start the zygote (waits for its hello) and the thread that keeps target
 * sandboxes ready. */
int warm_pool_start(const struct warm_host *host, const struct warm_options *o, struct warm_pool **ret);
/* A ready sandbox, or one built now; NULL (with *ret_err) when none can be
 * built. */
struct warm_box *warm_pool_take(struct warm_pool *p, int *ret_err);
/* The run is over: kill what is left and clean up in the background. */
void warm_pool_release(struct warm_pool *p, struct warm_box *b);
/* Whether the zygote that made b (taken by a run) has died: its death
 * kills the sandboxes it made (their inits' parent-death signal). */
bool warm_pool_box_zygote_died(struct warm_pool *p, const struct warm_box *b);
void warm_pool_get_stats(struct warm_pool *p, struct warm_stats *ret);
const struct warm_options *warm_pool_options(const struct warm_pool *p);
struct warm_pool *warm_pool_free(struct warm_pool *p);
