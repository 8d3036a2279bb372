/* SPDX-License-Identifier: MIT */
#include "rlimit.h"

#include <errno.h>

#include "util.h"

static struct rlimit_value clamp(int resource, rlim_t soft, rlim_t hard) {
        struct rlimit cur;
        if (getrlimit((__rlimit_resource_t)resource, &cur) == 0 && cur.rlim_max != RLIM_INFINITY) {
                if (hard > cur.rlim_max)
                        hard = cur.rlim_max;
                if (soft > hard)
                        soft = hard;
        }
        return (struct rlimit_value){ resource, { soft, hard } };
}

void rlimit_plan_values(const struct rlimit_plan *p, struct rlimit_value ret[RLIMIT_PLAN_MAX], int *ret_n) {
        int n = 0;
        rlim_t cpu_s = (rlim_t)((p->cpu_ms + 999) / 1000);

        /* A limit can only be lowered without privilege: never ask for more
         * than the caller's own hard limit (the unprivileged path would fail
         * to start otherwise). */
#define SET(res, soft, hard) ret[n++] = clamp((res), (rlim_t)(soft), (rlim_t)(hard))
        /* No core dumps: they would write the program's memory into the
         * work directory and take seconds for a large heap. */
        SET(RLIMIT_CORE, 0, 0);
        /* Per-process CPU backstop for the supervisor's tree-wide CPU clock:
         * SIGXCPU at the soft limit, SIGKILL one second later. */
        SET(RLIMIT_CPU, cpu_s, cpu_s + 1);
        /* Largest file the program may write; CPython ignores SIGXFSZ, so a
         * write past it fails with EFBIG ("File too large"). */
        SET(RLIMIT_FSIZE, p->file_size, p->file_size);
        SET(RLIMIT_NOFILE, p->open_files, p->open_files);
        /* POSIX message queues are useless without /dev/mqueue and are
         * charged to the host user. */
        SET(RLIMIT_MSGQUEUE, 0, 0);
        /* Whatever the supervisor was allowed, the program gets no
         * real-time scheduling, no raised priority, and only the kernel's
         * default of locked memory. */
        SET(RLIMIT_RTPRIO, 0, 0);
        SET(RLIMIT_NICE, 0, 0);
        SET(RLIMIT_MEMLOCK, 64 * 1024, 64 * 1024);
        /* Queued signals (sigqueue, real-time signals, POSIX timers) are
         * counted per host user, against the limit of the user that made
         * the user namespace: on the unprivileged path every run is the
         * service's uid, and one run could queue all of them (the default is
         * tens of thousands) so that the service's own fail with EAGAIN.
         * Ordinary signals are still delivered past the limit, without
         * their siginfo; Python queues none. */
        SET(RLIMIT_SIGPENDING, 256, 256);
        /* Fallbacks for hosts where no cgroup can be used. */
        if (p->address_space)
                SET(RLIMIT_AS, p->address_space, p->address_space);
        if (p->nproc)
                SET(RLIMIT_NPROC, p->nproc, p->nproc);
#undef SET
        *ret_n = n;
}

int rlimit_apply(const struct rlimit_value *v, int n) {
        for (int i = 0; i < n; i++)
                if (setrlimit((__rlimit_resource_t)v[i].resource, &v[i].lim) < 0)
                        return -errno;
        return 0;
}

const char *rlimit_name(int resource) {
        switch (resource) {
        case RLIMIT_CORE:
                return "RLIMIT_CORE";
        case RLIMIT_CPU:
                return "RLIMIT_CPU";
        case RLIMIT_FSIZE:
                return "RLIMIT_FSIZE";
        case RLIMIT_NOFILE:
                return "RLIMIT_NOFILE";
        case RLIMIT_MSGQUEUE:
                return "RLIMIT_MSGQUEUE";
        case RLIMIT_AS:
                return "RLIMIT_AS";
        case RLIMIT_NPROC:
                return "RLIMIT_NPROC";
        case RLIMIT_RTPRIO:
                return "RLIMIT_RTPRIO";
        case RLIMIT_NICE:
                return "RLIMIT_NICE";
        case RLIMIT_MEMLOCK:
                return "RLIMIT_MEMLOCK";
        case RLIMIT_SIGPENDING:
                return "RLIMIT_SIGPENDING";
        default:
                return "RLIMIT_?";
        }
}
