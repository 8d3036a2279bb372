/* SPDX-License-Identifier: MIT */
/*
 * jobs-run: running a job. Once every parameter is valid (jobs-path.h),
 * the side effects happen here and only here: output directories and the
 * staging directories are made, the job's script and files are bound into
 * the sandbox (the script at /job/<script>, each input read-only at
 * /job/in/<param>/<name>, each output a writable staging directory at
 * /job/out/<param>), the command runs with each template token one
 * argument and no shell, and outputs are published (renamed into place,
 * with their size and SHA-256) only when the run ends ok; a declared
 * output that was not produced makes it a runtime_error. Staging
 * directories are removed whatever happened.
 */
#pragma once

#include <jansson.h>

#include "jobs-def.h"
#include "jobs-progress.h"
#include "pyexec.h"
#include "reply.h"

/* Validate params (an object: name -> string, number or bool) against the
 * job and run it. On a validation error returns -EINVAL with err (400, the
 * field "params.NAME"); otherwise the result object with "job" and
 * "outputs", and ret_outcome filled. progress (may be NULL) is fed the
 * job's stderr while it runs (jobs-progress.h). */
int job_run(struct pyexec_sandbox *sb, const struct job *j, json_t *params, const char *id,
            struct job_progress *progress, json_t **ret_result, struct api_outcome *ret_outcome, struct api_error *err);
