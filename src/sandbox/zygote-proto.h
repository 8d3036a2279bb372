/* SPDX-License-Identifier: MIT */
/*
 * zygote-proto: what the service (zygote.c) and the zygote (zygote-child.c,
 * in pyexec-runner) say to each other, and what the zygote hands the
 * sandbox it clones (sandbox-child.h). The service's pool is zygote.h.
 *
 * Protocol on the zygote's control socket (SOCK_SEQPACKET, one request
 * then one reply at a time, under the pool's lock):
 *   service -> zygote: struct warm_request + SCM_RIGHTS { sync_r,
 *                      status_w, out_w, err_w, work_r }
 *   zygote -> service: struct warm_reply + SCM_RIGHTS { pidfd of init }
 *                      (sent by that init itself when it is the small
 *                      one, while the zygote waits; by the zygote when
 *                      the clone failed or init died first)
 *   service -> zygote, once at start: "P" and the modules to import ahead,
 *                      comma-separated (ZYGOTE_PREIMPORT)
 *   zygote -> service, then, only if some failed: "F" and "name: Error:
 *                      text" for each, separated by "; " (logged)
 *   zygote -> service, then, if asked for huge pages and it could not use
 *                      them: "H" and why (logged)
 *   zygote -> service, once after start-up: struct warm_reply { .pid = 0 }
 * The "P" message carries pyexec-init (an fd of it) when the service found
 * one: init then answers the request itself (sandbox-child.c).
 */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "util.h"

struct warm_request {
        uint32_t uid, gid;
        uint32_t init_uid, init_gid; /* init's real and saved ids (reap.h) */
        uint32_t userns;
        uint32_t flags;      /* WARM_READ_AHEAD, WARM_JOIN_NET, WARM_PREFAULT */
        uint64_t disk_bytes; /* size of /sandbox and /tmp */
        uint64_t inodes;
};

struct warm_reply {
        int32_t pid;         /* init, in the service's PID namespace; 0: the hello */
        int32_t err;         /* errno when the clone failed */
        uint32_t huge_pages; /* the hello: the zygote's pages on hugetlb (zygote-heap.c) */
};

/* The waiting program reads the pages a run reads (zygote-child.c): when
 * the CPU has time for it, not under load, where the read-ahead costs more
 * CPU (~3 ms a sandbox here) than it saves the run, nor for a sandbox built
 * for a run that waits for it. */
#define WARM_READ_AHEAD 1u
/* The request carries a network namespace (WARM_FD_NET) for the sandbox to
 * join instead of making its own: the service's pool of them (zygote.c). */
#define WARM_JOIN_NET 2u
/* The waiting program copies the pages a run writes before it waits
 * (zygote-child.c): always with ZYGOTE_PREFAULT=true; with auto, only
 * along with WARM_READ_AHEAD, since under load the copies cost more CPU
 * than the faults they spare the run. */
#define WARM_PREFAULT 4u

/* WARM_FD_NET is sent only with WARM_JOIN_NET; it is -1 otherwise. */
enum { WARM_FD_SYNC, WARM_FD_STATUS, WARM_FD_OUT, WARM_FD_ERR, WARM_FD_WORK, WARM_FD_NET, _WARM_FD_MAX };

/* In the program of a warm sandbox: called with its uid dropped and seccomp
 * installed; it prepares, calls sandbox_program_start_holder(holder_w) before it
 * says READY, and waits on work_fd for a program to run. */
typedef void (*warm_main_fn)(int status_fd, int work_fd, int holder_w);

/* In the small init (sandbox-child.c), in the zygote's memory, with the program
 * just forked and stopped: prepare the program's memory from outside
 * (zygote-child.c: the copies of the pages a run writes). -errno: the
 * program must not run (it would share huge pages with the zygote); init
 * kills it and fails the build. */
typedef int (*warm_prepare_fn)(pid_t program);

struct warm_program {
        warm_main_fn main;
        warm_prepare_fn prepare; /* NULL: nothing to prepare */
};

/* Send a reply on the zygote's control socket, with fd (a pidfd) if >= 0.
 * Returns -errno. (From the zygote, and from the small init.) */
static inline int warm_send_reply(int sock, const struct warm_reply *rep, int fd) {
        return send_fds(sock, rep, sizeof *rep, &fd, fd >= 0);
}
