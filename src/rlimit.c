/* SPDX-License-Identifier: MIT */
#include "rlimit.h"

#include <errno.h>

#include "util.h"

void rlimit_plan_values(const struct rlimit_plan *p, struct rlimit_value ret[RLIMIT_PLAN_MAX], int *ret_n) {
        int n = 0;
        rlim_t cpu_s = (rlim_t)((p->cpu_ms + 999) / 1000);

#define SET(res, soft, hard) ret[n++] = (struct rlimit_value){ (res), { (rlim_t)(soft), (rlim_t)(hard) } }
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
        default:
                return "RLIMIT_?";
        }
}
