/* SPDX-License-Identifier: MIT */
/*
 * jobs-path: a request's parameter values, validated against a job's
 * definition (jobs-def.h) and turned into what a run needs: one argument
 * per parameter and, for file parameters, an O_PATH descriptor resolved
 * beneath an allowed root with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS),
 * so "..", a symlink in any component, devices, FIFOs, hard-linked inputs
 * and anything outside the roots are refused. Validation only opens: it
 * creates nothing on disk (a refused request changes nothing); the output
 * directories and staging directories are made by jobs-run.c once every
 * value is valid.
 */
#pragma once

#include <jansson.h>

#include "jobs-def.h"
#include "reply.h"
#include "util.h"

/* Per parameter, what the run needs. */
struct job_slot {
        char *arg;        /* the argument it becomes; NULL: none (a false bool) */
        int fd;           /* input file, or output staging directory (O_PATH) */
        int parent_fd;    /* output: the directory outputs are published into (O_PATH|O_DIRECTORY) */
        char *dest;       /* sandbox path of the bind */
        char *host;       /* host path as given */
        char *base;       /* output_file: file name */
        char *staging;    /* name of the staging directory in parent_fd (made by jobs-run.c) */
        char *mkdir_name; /* output_dir: to create in mkdir_parent_fd once all is valid */
        int mkdir_parent_fd;
        char *file_names[JOB_MAX_OUT_FILES]; /* output_dir: its named files, expanded */
};

/* An empty slot: no descriptors, nothing owned. */
void job_slot_init(struct job_slot *s);
/* Close and free what s holds and make it empty again. The staging
 * directory, if any, is jobs-run.c's to remove first. */
void job_slot_done(struct job_slot *s);

/* Validate params (an object: name -> string, number or bool; absent
 * parameters take their default) against j, one slot per parameter of j,
 * in j's order. On a bad value -EINVAL with err a 400 naming the field
 * ("params" or "params.NAME"); -ENOMEM with err a 500. On failure every
 * slot is left empty. */
int job_params_validate(const struct job *j, json_t *params, struct job_slot slots[static JOB_MAX_PARAMS],
                        struct api_error *err);

/* Fill err with a 400 invalid_parameter naming p; returns -EINVAL. */
int job_param_error(struct api_error *err, const struct job_param *p, const char *fmt, ...) _printf_(3, 4);

/* Open rel beneath dirfd with no symlink in any component and no escape
 * (O_CLOEXEC added). -errno: -EXDEV for an escape, -ELOOP for a symlink. */
int job_open_beneath(int dirfd, const char *rel, int flags);
/* What a job_open_beneath() error means, for a message ("does not exist"). */
const char *job_beneath_error(int r);
