/* SPDX-License-Identifier: MIT */
/*
 * seccomp: the system-call filter applied last, just before execve, in every
 * sandboxed process. The policy is the table in seccomp.c; the filter is
 * compiled once per process with libseccomp and installed in the child with
 * the bare seccomp(2) call, so the child (forked from a possibly
 * multi-threaded parent) never allocates.
 */
#pragma once

#include <linux/filter.h>
#include <stddef.h>

struct seccomp_prog {
        struct sock_filter *insns;
        size_t len;
};

/*
 * Compile the sandbox policy (once; later calls return the same program).
 * Thread-safe. Returns -errno.
 */
int seccomp_prog_get(const struct seccomp_prog **ret);

/*
 * Install prog in the calling thread. Sets PR_SET_NO_NEW_PRIVS first, as the
 * kernel requires for an unprivileged filter. Async-signal-safe: only syscalls.
 */
int seccomp_prog_apply(const struct seccomp_prog *prog);

/* Number of rules in the policy table (for `pyexec check`). */
size_t seccomp_rule_count(void);
