/* SPDX-License-Identifier: MIT */
/*
 * sandbox-child: the code that runs inside a sandbox before the program's
 * own: init (PID 1 of the run) and the program between its fork and its
 * exec (or, on the warm path, until it waits for work). The supervisor
 * (supervise.c) and the zygote (zygote-child.c) prepare a struct
 * sandbox_child and clone init into it; the process model is supervise.c's
 * theory of operation.
 *
 * Nothing here allocates memory or takes a libc lock: the children of a
 * bare clone() in a threaded supervisor inherit locks in whatever state
 * other threads left them. A step that fails reports through the status
 * pipe (MSG_ERROR, sandbox-msg.h) and _exit()s.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "mount.h"
#include "rlimit.h"
#include "seccomp.h"
#include "zygote-proto.h"

/* Everything init and the program need, prepared before the clone. */
struct sandbox_child {
        const struct seccomp_prog *seccomp; /* installed last in the program */
        struct mount_plan plan;
        struct rlimit_value rlimits[RLIMIT_PLAN_MAX];
        int n_rlimits;
        uid_t uid;
        gid_t gid;
        uid_t init_uid; /* init's real and saved ids (reap.h: own_uid) */
        gid_t init_gid;
        bool userns;
        bool cgroup_ns;
        const char *python;
        int runner_fd;           /* >= 0: exec pyexec-runner --cold */
        const char *runner_path; /* its path inside the sandbox */
        int work_fd;             /* the runner's work memfd */
        int images_w;            /* the images pipe's write end, or -1 (images.h) */
        char *const *argv;
        char *const *envp;
        int sync_r, status_w, out_w, err_w, stdin_fd;
        int *keep; /* every fd init keeps (the above and the binds'), sorted */
        size_t n_keep;
        /* The warm path: the program is forked (a copy of the zygote's
         * initialized interpreter), sends STARTED itself when work
         * arrives on work_r, and runs warm_main. */
        warm_main_fn warm_main;
        int work_r;
        int holder_w; /* the program tells init its holder's pid here */
        /* The small init (sandbox-child.c, exec_small_init): init shares
         * the zygote's memory and answers the service itself on ctl, then
         * execs pyexec-init from init_fd. */
        bool small_init;
        warm_prepare_fn warm_prepare;
        int init_fd, ctl;
        int net_fd; /* >= 0: the network namespace to join (cloned without one) */
};

/* In init, right after the clone: wait for the sync byte, build the
 * sandbox, fork the program, then reap (reap.c). Never returns. */
_Noreturn void sandbox_init_main(const struct sandbox_child *c);

/* Sort fds ascending (c->keep must be), without allocating. */
void sandbox_sort_fds(int *v, size_t n);

/* In the zygote: clone an init for the request. Returns its pid or -errno.
 * fds are closed in the caller afterwards. With init_fd (pyexec-init,
 * >= 0), init shares the zygote's memory until it execs that (the zygote
 * waits in here meanwhile) and sends the reply on ctl itself: *replied
 * then says whether it did. */
pid_t sandbox_spawn_warm(const struct seccomp_prog *seccomp, const struct warm_request *req,
                         const int fds[_WARM_FD_MAX], const struct warm_program *program, int ctl, int init_fd,
                         bool *replied);

/* In the program of a warm sandbox: start the holder of its address space
 * and tell init its pid. After the prefault: while the holder exists, each
 * copy-on-write fault must flush the TLB of the CPU it last ran on as
 * well, an inter-processor interrupt apiece. */
void sandbox_program_start_holder(int holder_w);
