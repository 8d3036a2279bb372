/* SPDX-License-Identifier: MIT */
/*
 * http: the HTTP service (`pyexec serve`); the contract is docs/api.md.
 */
#pragma once

#include "config.h"

/* Serve until SIGTERM or SIGINT, then shut down gracefully. Returns the
 * process exit code (0 after a clean shutdown). */
int http_serve(const struct config *cfg);
