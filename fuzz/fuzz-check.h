/* SPDX-License-Identifier: MIT */
/*
 * fuzz-check: the invariant check the fuzz targets share. A broken
 * invariant prints where and what, then aborts, which libFuzzer and the
 * corpus replay both report as a failure.
 */
#pragma once

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "util.h"

static _Noreturn _printf_(3, 4) void fuzz_fail(const char *file, int line, const char *fmt, ...) {
        va_list ap;
        fprintf(stderr, "%s:%d: invariant broken: ", file, line);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        fflush(stderr);
        abort();
}

#define FUZZ_CHECK(cond)                                            \
        do {                                                        \
                if (!(cond))                                        \
                        fuzz_fail(__FILE__, __LINE__, "%s", #cond); \
        } while (0)
