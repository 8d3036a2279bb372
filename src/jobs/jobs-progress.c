/* SPDX-License-Identifier: MIT */
#include "jobs-progress.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX "PYEXEC_PROGRESS "

/* A decimal with digits only (and one optional point): no sign, exponent,
 * "inf" or "nan", which strtod would take. */
static bool plain_number(const char *s, size_t n) {
        size_t digits = 0, points = 0;
        for (size_t i = 0; i < n; i++) {
                if (s[i] >= '0' && s[i] <= '9')
                        digits++;
                else if (s[i] == '.' && points++ == 0)
                        continue;
                else
                        return false;
        }
        return digits > 0;
}

double job_progress_parse(const char *line, size_t len) {
        char v[JOB_PROGRESS_LINE_MAX + 1];
        const char *slash;
        size_t n;

        if (len > 0 && line[len - 1] == '\r')
                len--;
        if (len <= strlen(PREFIX) || len > JOB_PROGRESS_LINE_MAX || memcmp(line, PREFIX, strlen(PREFIX)) != 0)
                return -1;
        n = len - strlen(PREFIX);
        memcpy(v, line + strlen(PREFIX), n);
        v[n] = '\0';
        slash = memchr(v, '/', n);
        if (slash) {
                size_t a = (size_t)(slash - v);
                if (!plain_number(v, a) || !plain_number(slash + 1, n - a - 1) || memchr(v, '.', n))
                        return -1;
                errno = 0;
                double done = strtod(v, NULL), total = strtod(slash + 1, NULL);
                if (errno || total <= 0 || done > total)
                        return -1;
                return done / total;
        }
        if (!plain_number(v, n))
                return -1;
        errno = 0;
        double f = strtod(v, NULL);
        return errno || !isfinite(f) || f > 1 ? -1 : f;
}

void job_progress_feed(struct job_progress *p, const char *buf, size_t n) {
        while (n > 0) {
                const char *nl = memchr(buf, '\n', n);
                size_t take = nl ? (size_t)(nl - buf) : n;

                if (!p->overlong && p->len + take <= JOB_PROGRESS_LINE_MAX) {
                        memcpy(p->line + p->len, buf, take);
                        p->len += take;
                } else
                        p->overlong = true;
                if (!nl)
                        return;
                if (!p->overlong) {
                        double f = job_progress_parse(p->line, p->len);
                        if (f >= 0 && p->report)
                                p->report(p->userdata, f);
                }
                p->len = 0;
                p->overlong = false;
                buf = nl + 1;
                n -= take + 1;
        }
}
