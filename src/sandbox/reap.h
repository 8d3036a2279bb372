/* SPDX-License-Identifier: MIT */
/*
 * reap: init's life once the program is forked, until the run is over:
 * drop privileges, learn the warm program's holder, reap everything, and
 * report the program's end (supervise.c's theory of operation). Shared by
 * the cold path's init (sandbox-child.c) and the warm path's, which is the
 * small pyexec-init exec'd in its place (init-main.c): so this file uses
 * nothing of libc beyond the system calls init-main.c provides.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

struct reap_args {
        int status_w;  /* the status pipe */
        int holder_r;  /* the warm program tells its holder's pid here; -1: none */
        pid_t prog;    /* the program, in init's PID namespace */
        uid_t uid;     /* the program's: init's effective ids (to signal it) */
        gid_t gid;
        uid_t own_uid; /* init's real and saved ids: no process of uid can reach it */
        gid_t own_gid; /* (the same as uid/gid in a user namespace: one id is mapped) */
        bool userns;   /* in a user namespace whose setgroups is "deny" */
};

_Noreturn void init_reap(const struct reap_args *a);

/* pyexec-init's descriptors: the status pipe and the holder pipe. Its
 * arguments: the program's pid, uid, gid, init's own uid and gid, and "1"
 * in a user namespace. */
#define INIT_STATUS_FD 3
#define INIT_HOLDER_FD 4
