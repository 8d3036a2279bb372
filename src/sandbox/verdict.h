/* SPDX-License-Identifier: MIT */
/*
 * verdict: what happened to a run, as a status and a message, from what the
 * supervisor saw of it (supervise.c): the messages on the status pipe, the
 * program's wait status, what the supervisor itself killed it for (wall
 * clock, CPU time, output cap, an OOM kill it polled), the cgroup's counts,
 * and the program's stderr. Pure: no system calls, no clock; the unit tests
 * (tests/unit/test-verdict.c) drive it with made-up facts.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "pyexec.h"
#include "sandbox-msg.h"

struct verdict_facts {
        bool started;            /* the program started (MSG_STARTED) */
        bool setup_failed;       /* a setup step failed, or the sandbox was not built in time */
        const struct msg *error; /* the first MSG_ERROR, or NULL */
        bool exited;             /* init reported the program's exit (MSG_EXITED): wstatus */
        int wstatus;
        /* What the supervisor killed the run for. */
        bool killed_wall, killed_cpu, killed_output, killed_oom;
        bool cancelled;            /* stopped because its client hung up (spec->client_fd) */
        const struct msg *verdict; /* MSG_VERDICT from the runner's static check, or NULL */
        uint64_t oom_kills;        /* the run's cgroup's OOM kills */
        bool hugetlb_limit_hit;    /* the run's hugetlb cgroup refused a page */
        bool have_cgroup_memory;   /* memory bounded by a cgroup, else RLIMIT_AS */
};

/*
 * Set res->status, res->message (allocated; NULL for ok), res->exit_code
 * and res->signal from f. Reads res->err (the program's stderr: the last
 * line names a Python error) and res->cpu_ms (a SIGKILL past the CPU limit
 * is RLIMIT_CPU's), which the caller fills first; spec gives the limits for
 * the messages and the program's files for a syntax error's column.
 */
void verdict_classify(const struct pyexec_spec *spec, const struct verdict_facts *f, struct pyexec_result *res);
