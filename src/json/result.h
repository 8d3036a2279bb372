/* SPDX-License-Identifier: MIT */
/*
 * result: the one result schema (docs/api.md) that the CLI's --json,
 * the HTTP API and jobs all print.
 */
#pragma once

#include <jansson.h>

#include "pyexec.h"

#define RESULT_ID_LEN 32

/* A random correlation id: RESULT_ID_LEN lowercase hex digits. */
void result_new_id(char ret[RESULT_ID_LEN + 1]);

/* A JSON string from bytes that may be invalid UTF-8 (repaired with U+FFFD)
 * and may contain NUL. NULL on allocation failure. */
json_t *result_json_string(const char *p, size_t n);

/* The result object. NULL on allocation failure. */
json_t *result_to_json(const struct pyexec_result *r, const struct pyexec_limits *l, const char *id);

/* json_dumps flags used for every result: compact, keys in schema order. */
#define RESULT_JSON_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10))
