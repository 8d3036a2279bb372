/* SPDX-License-Identifier: MIT */
/*
 * api: the JSON contract of POST /api/execute (shared/DESIGN.md). Parsing
 * and validation are pure (no I/O), so the fuzz target drives exactly what
 * the server runs; api_execute() turns a valid request into sandbox runs and
 * the response object.
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "pyexec.h"

/* Deepest JSON nesting accepted (a request needs 3). */
#define API_MAX_DEPTH 16
#define API_MAX_FILES 64
#define API_MAX_ARGS 256

struct api_error {
        unsigned http;      /* 400, 413, ... */
        const char *code;   /* "invalid_request", "payload_too_large", ... */
        char field[96];     /* "timeout", "files[2].name", or "" */
        char message[512];
};

struct api_case {
        char *name;
        const char *stdin_data;
        size_t stdin_len;
        const char **args;
        size_t n_args;
        const char *expected;
        size_t expected_len;
};

/* A validated request. Strings point into `doc` (kept alive here). */
struct api_request {
        json_t *doc;
        json_t *exercise_id; /* borrowed from doc: a string or integer, or NULL */
        struct pyexec_limits limits;
        struct pyexec_file *files; /* main.py, the module for runTests, then `files` */
        size_t n_files;
        const char **args;
        size_t n_args;
        const char *stdin_data;
        size_t stdin_len;
        struct api_case *cases;
        size_t n_cases;
        char *module_file; /* "starter.py" or moduleName + ".py", with runTests */
        const char *policy_line; /* the chosen policy (borrowed from the config) */
};

/* Parse and validate a request body. -EINVAL with err filled when the
 * request is not acceptable; the HTTP status is in err->http. */
int api_parse_execute(const char *body, size_t len, const struct config *cfg, struct api_request *ret,
                      struct api_error *err);
void api_request_done(struct api_request *r);

/* The error response object {"error": {"code", "message", "field"}}. */
json_t *api_error_json(const struct api_error *e);
/* Fill e (formatting the message). */
void api_error_set(struct api_error *e, unsigned http, const char *code, const char *field, const char *fmt, ...)
        _printf_(5, 6);

/* What one request did, for logs, metrics and the breaker. */
struct api_outcome {
        enum pyexec_status status; /* of the reported run */
        double wall_ms, cpu_ms;
        bool sandbox_failed;       /* any run ended in internal_error */
        unsigned http;             /* 200, or 500 for internal_error */
};

/* Observer called after each sandbox run (metrics). */
typedef void (*api_run_observer)(void *userdata, const struct pyexec_result *res, double run_ms);

/* Run the request: one run, or one per test case. Returns the response. */
json_t *api_execute(struct pyexec_sandbox *sb, const struct config *cfg, const struct api_request *r, const char *id,
                    api_run_observer observe, void *userdata, struct api_outcome *ret);

/* Normalise output for grading: trailing whitespace removed from each line,
 * trailing blank lines dropped. Exposed for the unit tests. */
char *api_normalize_output(const char *s, size_t n, size_t *ret_len);
