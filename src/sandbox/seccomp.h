/* SPDX-License-Identifier: MIT */
/*
 * seccomp: the sandbox's system-call filter, the last restriction a
 * sandboxed program gets: on the cold path just before it execs the runner
 * or the interpreter, on the warm path once the pre-built program has
 * dropped its uid, before it waits for work. The policy is the commented
 * table in seccomp-policy.c; tools/seccomp-gen compiles it to BPF at build
 * time and the program is embedded here (seccomp-filter.inc), so a run
 * never loads libseccomp, and installing the filter is a prctl and one
 * seccomp(2) call, which a child forked from a multi-threaded parent can
 * make without allocating.
 */
#pragma once

#include <linux/filter.h>
#include <stddef.h>

struct seccomp_prog {
        struct sock_filter *insns;
        size_t len;
};

/* The embedded program, in *ret. Returns 0. */
int seccomp_prog_get(const struct seccomp_prog **ret);

/*
 * Install prog in the calling thread. Sets PR_SET_NO_NEW_PRIVS first, as the
 * kernel requires for an unprivileged filter. Async-signal-safe: only syscalls.
 */
int seccomp_prog_apply(const struct seccomp_prog *prog);

/* Number of rules in the policy table (for `pyexec check`). */
size_t seccomp_rule_count(void);
