/* SPDX-License-Identifier: MIT */
/*
 * jobs: operator-written scripts run with parameters that come from users.
 *
 * The operator declares jobs in a YAML file (jobs/jobs.yaml is the shipped
 * one): interpreter, script, an argument template, typed parameters, limits
 * and an environment allowlist. A request names a job and gives values;
 * every value is validated against its declaration, and paths are resolved
 * beneath the allowed roots with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS),
 * so "..", a symlink in any component, devices, FIFOs and anything outside
 * the roots are refused. No shell is ever involved: each template token
 * becomes exactly one argument.
 *
 * Inside the sandbox the job sees its script at /job/<script>, each input
 * file read-only at /job/in/<param>/<name>, and each output location as a
 * writable staging directory at /job/out/<param>. Outputs are published
 * (renamed into place, with their size and SHA-256) only when the run ends
 * ok; a declared output that was not produced makes it a runtime_error.
 */
#pragma once

#include <jansson.h>
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

#include "api.h"
#include "pyexec.h"

enum job_param_type {
        JOB_INPUT_FILE,
        JOB_OUTPUT_FILE,
        JOB_OUTPUT_DIR,
        JOB_ENUM,
        JOB_INT,
        JOB_NUMBER,
        JOB_BOOL,
        JOB_STRING,
        _JOB_PARAM_MAX,
};

const char *job_param_type_to_string(enum job_param_type t);

struct job_param {
        char *name;
        enum job_param_type type;
        char *description;
        json_t *def; /* default (a string as written), NULL: required */
        char **roots; /* files: allowed root directories */
        size_t n_roots;
        char **extensions; /* files: allowed extensions, lower case, no dot */
        size_t n_extensions;
        uint64_t max_bytes; /* input_file */
        char **values;      /* enum */
        size_t n_values;
        double min, max; /* int, number */
        char *pattern;   /* string: POSIX extended regex, anchored */
        regex_t re;
        bool has_re;
        uint64_t max_length; /* string */
        char *flag;          /* bool: the argument given when true */
};

struct job {
        char *name;
        char *description;
        char *interpreter; /* absolute, under /usr */
        char *script;      /* absolute host path */
        char **args;       /* template tokens */
        size_t n_args;
        struct job_param *params;
        size_t n_params;
        struct pyexec_limits limits;
        uint64_t term_grace_ms;
        char **env; /* names of host variables passed through */
        size_t n_env;
};

struct job_set {
        char *path;
        struct job *jobs;
        size_t n_jobs;
};

/* Load and validate a jobs file. -EINVAL with err naming the file, job and
 * key. A missing file is -ENOENT. */
int jobs_load(const char *path, struct job_set *ret, char *err, size_t errlen);
void jobs_done(struct job_set *s);

const struct job *jobs_find(const struct job_set *s, const char *name);

/* GET /api/jobs: names, descriptions, parameter schemas, readiness. */
json_t *jobs_describe(const struct job_set *s);
/* {"ready": bool, "problems": [...]}: script present, interpreter usable,
 * roots present. */
json_t *job_readiness(const struct job *j);

/* The default jobs file: PYEXEC_JOBS, else jobs/jobs.yaml beside the
 * directory holding the pyexec binary (the source tree's layout). */
char *jobs_default_path(void);

/* Validate params (an object: name -> string, number or bool) against the
 * job and run it. On a validation error returns -EINVAL with err (400, the
 * field "params.NAME"); otherwise the result object with "job" and
 * "outputs", and ret_outcome filled. */
int job_run(struct pyexec_sandbox *sb, const struct job *j, json_t *params, const char *id, json_t **ret_result,
            struct api_outcome *ret_outcome, struct api_error *err);
