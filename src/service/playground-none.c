/* SPDX-License-Identifier: MIT */
/* The playground's table in a build without it (-Dplayground=disabled, or
 * npm or esbuild missing under auto): the service answers /playground with
 * 404 saying so. */
#include "playground.h"

const struct playground_asset playground_assets[] = { { 0 } };
const size_t playground_n_assets = 0;
