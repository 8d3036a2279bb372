/* SPDX-License-Identifier: MIT */
/*
 * api: the JSON contract of POST /api/execute (docs/api.md). Parsing
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
#include "reply.h"

/* Deepest JSON nesting accepted (a request needs 3). */
#define API_MAX_DEPTH 16
#define API_MAX_FILES 64
#define API_MAX_ARGS 256

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
#define API_USER_ID_MAX 128

struct api_request {
        json_t *doc;
        json_t *exercise_id; /* borrowed from doc: a string or integer, or NULL */
        const char *user_id; /* borrowed from doc: userId, the end user's own quota, or NULL */
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
        void **decoded;    /* stdinBase64 and contentBase64, decoded: what stdin_data and files point to */
        size_t n_decoded;
        /* ms all the test cases' runs may take together, from the first
         * case's start: totalTimeout, else REQUEST_TIME_LIMIT. */
        uint64_t total_ms;
        const char *policy_line; /* the chosen policy (borrowed from the config) */
};

/* Parse and validate a request body. -EINVAL with err filled when the
 * request is not acceptable; the HTTP status is in err->http. */
int api_parse_execute(const char *body, size_t len, const struct config *cfg, struct api_request *ret,
                      struct api_error *err);
void api_request_done(struct api_request *r);

/* The caller's side of api_execute(), called on its thread. */
struct api_hooks {
        /* After each sandbox run (metrics). May be NULL. */
        void (*observe)(void *userdata, const struct pyexec_result *res, double run_ms);
        /* Before each test case after the first: whether the client went
         * away, so the remaining cases are not run. May be NULL. */
        bool (*client_gone)(void *userdata);
        /* The program's output as it arrives (pyexec_spec.on_output). May
         * be NULL. */
        void (*on_output)(void *userdata, int stream, const char *p, size_t n);
        int client_fd; /* pyexec_spec.client_fd: 0 for none */
        void *userdata;
};

/* Run the request: one run, or one per test case, the cases together
 * within r->total_ms. Returns the response. */
json_t *api_execute(struct pyexec_sandbox *sb, const struct config *cfg, const struct api_request *r, const char *id,
                    const struct api_hooks *hooks, struct api_outcome *ret);

/* The wall-clock limit of the next test case of a request whose cases
 * started at start_ns with a budget of total_ms: the case's own timeout_ms,
 * cut to what is left of the budget; 0 when less than 1 ms is left (the
 * case is not run). Pure, for the unit tests. */
uint64_t api_case_timeout(uint64_t timeout_ms, uint64_t start_ns, uint64_t total_ms, uint64_t now_ns);

/* Normalise output for grading: trailing whitespace removed from each line,
 * trailing blank lines dropped. Exposed for the unit tests. */
char *api_normalize_output(const char *s, size_t n, size_t *ret_len);

/* Where two normalized outputs first differ: {"line": N (from 1),
 * "expected": the line or null (the output has fewer lines), "actual": the
 * same}, each line cut to API_DIFF_LINE_MAX bytes; NULL when they are
 * equal or on allocation failure. */
#define API_DIFF_LINE_MAX 200
json_t *api_first_difference(const char *want, size_t want_len, const char *got, size_t got_len);

/* A graded request's verdict from its cases' statuses, in order:
 * "accepted" when all passed, else decided by the first that did not:
 * "wrong_answer" for "failed", its own status otherwise. */
const char *api_verdict(const char *const *case_status, size_t n);
