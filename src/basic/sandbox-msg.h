/* SPDX-License-Identifier: MIT */
/*
 * sandbox-msg: the status pipe's messages, from init and the program (or the
 * runner inside it) to the supervisor. Each is one write(2) of at most
 * PIPE_BUF bytes, so writers never interleave. See supervise.c's theory of
 * operation for who sends what, when.
 */
#pragma once

#include <errno.h>
#include <limits.h>
#include <linux/limits.h> /* PIPE_BUF, also where limits.h is the compiler's own (-ffreestanding) */
#include <stdint.h>
#include <unistd.h>

enum msg_type {
        MSG_ERROR = 1, /* a setup step failed: step, err */
        MSG_STARTED,   /* the program starts: the wall clock starts (cpu_us: its CPU so far) */
        MSG_EXITED,    /* init reaped the program: wstatus, cpu_us, maxrss_kb; err is
                        * EXITED_REST_STOPPED when what is left was stopped,
                        * not killed (the warm holder: sandbox-child.c) */
        MSG_VERDICT,   /* the runner's static check refused the program before it ran:
                        * err is the pyexec_status, step the message */
        MSG_READY,     /* warm path: the sandbox is built and waits for work */
};

/* MSG_EXITED's err: nothing of the run can run any more, but stopped
 * processes may be left; the supervisor kills the namespace. */
#define EXITED_REST_STOPPED 1

struct msg {
        uint32_t type;
        int32_t err;      /* MSG_ERROR: errno; MSG_VERDICT: status; MSG_EXITED: above */
        int32_t wstatus;  /* MSG_EXITED */
        int32_t pad;
        uint64_t t_ns;    /* CLOCK_MONOTONIC */
        uint64_t cpu_us;  /* MSG_EXITED: user+system of every reaped process */
        uint64_t maxrss_kb;
        char step[4000];  /* MSG_ERROR: what failed; MSG_VERDICT: the message */
};

_Static_assert(sizeof(struct msg) <= PIPE_BUF, "status messages must be atomic");

static inline void msg_send(int fd, const struct msg *m) {
        ssize_t w;
        do
                w = write(fd, m, sizeof *m);
        while (w < 0 && errno == EINTR);
}
