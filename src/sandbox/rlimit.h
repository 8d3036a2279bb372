/* SPDX-License-Identifier: MIT */
/*
 * rlimit: per-process resource limits set in the sandboxed process before
 * execve. They back up the cgroup limits (tree-wide) and cover what cgroups
 * do not: file size, open files, core dumps, per-process CPU time.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>

struct rlimit_plan {
        uint64_t cpu_ms;        /* RLIMIT_CPU, rounded up to whole seconds, +1 s hard */
        uint64_t file_size;     /* RLIMIT_FSIZE, bytes */
        uint64_t open_files;    /* RLIMIT_NOFILE */
        uint64_t address_space; /* RLIMIT_AS, bytes; 0 = leave (a cgroup limits memory) */
        uint64_t nproc;         /* RLIMIT_NPROC; 0 = leave (a cgroup limits pids) */
};

struct rlimit_value {
        int resource;
        struct rlimit lim;
};

/* The table of limits the plan produces, in application order; ret_n is
 * set to the count (at most RLIMIT_PLAN_MAX). */
#define RLIMIT_PLAN_MAX 11
void rlimit_plan_values(const struct rlimit_plan *p, struct rlimit_value ret[RLIMIT_PLAN_MAX], int *ret_n);

/* Apply precomputed values with setrlimit(2). Async-signal-safe. Returns
 * -errno of the first failure. */
int rlimit_apply(const struct rlimit_value *v, int n);

/* Name of a resource for messages ("RLIMIT_CPU"). */
const char *rlimit_name(int resource);
