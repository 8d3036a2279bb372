/* SPDX-License-Identifier: MIT */
/*
 * jobs-progress: how far a job says it is. A job reports progress by
 * writing a line to its standard error:
 *
 *     PYEXEC_PROGRESS 0.25        a fraction in [0, 1]
 *     PYEXEC_PROGRESS 3/13        done units of a total (0 <= done <= total)
 *
 * The line stays in the job's stderr like any other. Anything else, a
 * malformed value, a value out of range or a line longer than
 * JOB_PROGRESS_LINE_MAX bytes, reports nothing. The output arrives in
 * chunks that may split a line anywhere; the parser keeps the unfinished
 * line between them.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define JOB_PROGRESS_LINE_MAX 80

struct job_progress {
        void (*report)(void *userdata, double fraction);
        void *userdata;
        char line[JOB_PROGRESS_LINE_MAX + 1];
        size_t len;
        bool overlong; /* the current line went past the limit: skip it */
};

/* Feed the next bytes of stderr; report() for each complete progress line. */
void job_progress_feed(struct job_progress *p, const char *buf, size_t n);

/* The fraction a whole line (without its newline) reports, or -1. */
double job_progress_parse(const char *line, size_t len);
