/* SPDX-License-Identifier: MIT */
#include "seccomp.h"

#include <errno.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Generated at build time from seccomp-policy.c by tools/seccomp-gen. */
#include "seccomp-filter.inc"

static const struct seccomp_prog embedded = {
        .insns = (struct sock_filter *)seccomp_filter_insns,
        .len = sizeof seccomp_filter_insns / sizeof seccomp_filter_insns[0],
};

int seccomp_prog_get(const struct seccomp_prog **ret) {
        *ret = &embedded;
        return 0;
}

size_t seccomp_rule_count(void) {
        return SECCOMP_FILTER_RULES;
}

int seccomp_prog_apply(const struct seccomp_prog *p) {
        struct sock_fprog fprog = {
                .len = (unsigned short)p->len,
                .filter = p->insns,
        };

        if (p->len > 0xffff)
                return -E2BIG;
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return -errno;
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &fprog) < 0)
                return -errno;
        return 0;
}
