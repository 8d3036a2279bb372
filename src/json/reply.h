/* SPDX-License-Identifier: MIT */
/*
 * reply: what the service answers a request with, whichever module handled
 * it. The error object of every 4xx/5xx answer and the outcome of a request
 * (for logs, metrics and the breaker) are filled by POST /api/execute
 * (api.c) and by jobs (jobs-path.c, jobs-run.c) alike, and read by the HTTP
 * layer and the CLI; keeping them here lets jobs report errors without
 * depending on the execute request's contract (api.h).
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "pyexec.h"
#include "util.h"

struct api_error {
        unsigned http;    /* 400, 413, ... */
        const char *code; /* "invalid_request", "payload_too_large", ... */
        char field[96];   /* "timeout", "files[2].name", or "" */
        char message[512];
};

/* The error response object {"error": {"code", "message", "field"}}. */
json_t *api_error_json(const struct api_error *e);
/* Fill e (formatting the message). */
void api_error_set(struct api_error *e, unsigned http, const char *code, const char *field, const char *fmt, ...)
        _printf_(5, 6);

/* What one request did, for logs, metrics and the breaker. */
struct api_outcome {
        enum pyexec_status status; /* of the reported run */
        double wall_ms, cpu_ms;
        bool sandbox_failed;     /* any run ended in internal_error */
        unsigned http;           /* 200, or 500 for internal_error */
        size_t runs;             /* sandbox runs made */
        size_t not_run;          /* test cases never started */
        bool time_limit_reached; /* the request's total time limit stopped cases */
        bool client_gone;        /* the client left: the remaining cases were not run */
};
