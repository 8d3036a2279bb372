/* SPDX-License-Identifier: MIT */
/*
 * jobs-def: job definitions. jobs_load() reads a jobs YAML file (libyaml)
 * and validates every key into struct job: pure apart from reading the
 * file. Nothing here looks at a request's values (jobs-path.h) or runs
 * anything (jobs-run.h); job_readiness() only looks at whether the files
 * a job names are there.
 */
#pragma once

#include <jansson.h>
#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pyexec.h"

/* Bounds of a definition: a job's parameters and its argument template. */
#define JOB_MAX_PARAMS 32
#define JOB_MAX_ARGS 128

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

/* An output_dir's file named from a template: "{design_name}_render.png"
 * takes parameter design_name's value. "{PARAM.KEY}" in args is the name. */
struct job_out_file {
        char *key;    /* [a-z0-9_] */
        char *name;   /* the template */
        char *result; /* the result's field holding its host path once published, or NULL */
};

#define JOB_MAX_OUT_FILES 16

struct job_param {
        char *name;
        enum job_param_type type;
        char *description;
        json_t *def;  /* default (a string as written), NULL: required */
        char **roots; /* files: allowed root directories */
        size_t n_roots;
        char **extensions; /* files: allowed extensions, lower case, no dot */
        size_t n_extensions;
        uint64_t max_bytes; /* input_file */
        unsigned formats;   /* input_file: JOB_FORMAT_BIT()s its content must be one of; 0: any */
        uint64_t max_pixels; /* input_file of an image format: most width x height */
        char **values;      /* enum */
        size_t n_values;
        double min, max; /* int, number */
        char *pattern;   /* string: POSIX extended regex, anchored */
        regex_t re;
        bool has_re;
        uint64_t max_length; /* string */
        char *flag;          /* bool: the argument given when true */
        struct job_out_file *files; /* output_dir: named files */
        size_t n_files;
        char *default_stem; /* string: absent, the file name (without extension, made safe) of this file parameter */
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

/* The parameter name of a template token "{name}" (whole token), not
 * NUL-terminated, its length in ret_len; NULL when tok is no placeholder. */
const char *job_placeholder(const char *tok, size_t *ret_len);
/* "{PARAM.KEY}": the index of the parameter and of its file, or -ENOENT. */
int job_file_placeholder(const struct job *j, const char *ph, size_t len, size_t *ret_param, size_t *ret_file);
/* Whether path has a ".." component. */
bool job_path_has_dotdot(const char *path);
