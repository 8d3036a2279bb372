/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/*
 * playground: the page `pyexec serve` answers at /playground. Its files are
 * built from web/playground at build time (tools/playground-bundle.py: npm ci
 * of the pinned editor packages, then esbuild) into a generated C file that
 * defines the table below; a build without the playground (-Dplayground=
 * disabled, or no npm under auto) links playground-none.c, whose table is
 * empty.
 */
struct playground_asset {
        const char *path;         /* the URL path it is served at */
        const char *content_type; /* its Content-Type */
        const unsigned char *data;
        size_t len;
};

extern const struct playground_asset playground_assets[];
extern const size_t playground_n_assets;

/* The asset served at path (exact match, "/playground/" as "/playground"),
 * or NULL. */
const struct playground_asset *playground_find(const char *path);

/* Whether this build has the playground's files. */
bool playground_built(void);
