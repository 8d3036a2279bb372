/* SPDX-License-Identifier: MIT */
/*
 * work: what the runner inside the sandbox needs to run one program, as one
 * sealed memfd that crosses the sandbox boundary. The cold path hands it to
 * the exec'd runner as a descriptor; the warm path sends it (with stdin) to
 * a pre-built sandbox over its work socket. The decoder trusts nothing: the
 * payload is bounds-checked field by field.
 */
#pragma once

/* The fds the cold path hands to the exec'd runner: the status pipe, and
 * the sealed work memfd (sandbox-child.c puts them there, runner-main.c
 * reads them). */
#define RUNNER_STATUS_FD 3
#define RUNNER_WORK_FD 4

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pyexec.h"
#include "rlimit.h"

struct work {
        char *policy;           /* policy_format() line */
        char **argv;            /* sys.argv: "main.py", args... */
        size_t n_argv;
        struct pyexec_file *files; /* warm path: written into the work directory */
        size_t n_files;
        struct rlimit_value rlimits[RLIMIT_PLAN_MAX]; /* warm path: applied before the program */
        int n_rlimits;
};

/* Encode into a sealed, read-only memfd, returned in *ret_fd; -errno on
 * failure. */
int work_encode(const struct work *w, int *ret_fd);
/* Decode from a memfd (or any readable fd of at most max bytes). */
int work_decode_fd(int fd, size_t max, struct work *ret);
int work_decode(const void *p, size_t n, struct work *ret);
void work_done(struct work *w);
