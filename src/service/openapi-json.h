/* SPDX-License-Identifier: MIT */
/*
 * The service's OpenAPI description, docs/openapi.json, embedded at build
 * time (tools/embed-file.py) and served as it is by GET /api/openapi.json:
 * the document in the source tree is the one clients get.
 */
#pragma once

#include <stddef.h>

/* The file's bytes, followed by a NUL. */
extern const unsigned char openapi_json[];
/* Its length, without the NUL. */
extern const size_t openapi_json_len;
/* A strong ETag (quoted) derived from its SHA-256. */
extern const char openapi_json_etag[];
