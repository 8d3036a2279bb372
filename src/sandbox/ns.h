/* SPDX-License-Identifier: MIT */
/*
 * ns: creating the sandbox's namespaces and mapping its user namespace.
 */
#pragma once

#include <sched.h>
#include <stdbool.h>
#include <sys/types.h>

/* Every run gets these; CLONE_NEWUSER is added on the unprivileged path and
 * CLONE_NEWCGROUP is entered later, once the run's cgroup is joined. */
#define NS_SANDBOX_FLAGS (CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS)

/*
 * fork(2) as a bare clone(2) system call: no atfork handlers, no libc locks
 * taken, so it is safe from a multi-threaded parent; the child may use only
 * async-signal-safe calls (no malloc, no stdio). Returns 0 in the child, the
 * pid in the parent, -errno on failure.
 */
pid_t ns_clone(unsigned long flags);

/*
 * Map one uid and one gid into the user namespace of pid: inside -> outside.
 * deny_setgroups writes "deny" to /proc/pid/setgroups first, as the kernel
 * requires when the writer lacks CAP_SETGID over the parent namespace.
 */
int ns_write_id_maps(pid_t pid, uid_t inside_uid, uid_t outside_uid, gid_t inside_gid, gid_t outside_gid,
                     bool deny_setgroups);

/* Whether this process can create a user namespace (probed with a child). */
bool ns_userns_works(void);

/*
 * A new, empty network namespace (only a loopback device, down), returned
 * as an fd to setns(2) into. Made by the calling thread, which unshares
 * into it and goes back to home_fd, its own namespace: a network namespace
 * is per thread, so the rest of the process never leaves its own. Needs
 * CAP_SYS_ADMIN. Returns the fd (O_CLOEXEC) or -errno; a thread that could
 * not go back aborts the process rather than serve from the wrong namespace.
 */
int ns_new_net(int home_fd);
