/* SPDX-License-Identifier: MIT */
/*
 * check: environment validation. What this host can enforce and with which
 * mechanism, proved by a real sandboxed self-test (`pyexec check`, and the
 * service's GET /api/environment).
 */
#pragma once

#include <jansson.h>
#include <stdio.h>

#include "jobs.h"
#include "pyexec.h"

/* Build the report. report["ok"] is false, with report["problems"] naming
 * each one, when the sandbox cannot run here. report["runner"]["libpython"]
 * compares the libpython the runner embeds with the installed standard
 * library's Debian version; a mismatch is a problem unless
 * allow_stale_runner. */
int check_report(struct pyexec_sandbox *sb, const char *python, const struct job_set *jobs, bool allow_stale_runner,
                 json_t **ret);

/* The human-readable form. */
void check_print(json_t *report, FILE *f);
