/* SPDX-License-Identifier: MIT */
/*
 * log: structured logs for the service. One JSON object per line on stderr,
 * written with a single write(2) so concurrent lines never interleave:
 * {"timestamp":"2026-11-22T16:10:00.123Z","level":"info","message":"...",...}
 */
#pragma once

#include <jansson.h>
#include <stdbool.h>

enum log_level {
        LOG_DEBUG,
        LOG_INFO,
        LOG_WARN,
        LOG_ERROR,
        _LOG_LEVEL_MAX,
};

/* "debug", "info", "warn", "error" (LOG_LEVEL in the configuration). */
const char *log_level_to_string(enum log_level l);

void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);

/* Log message with extra fields (stolen; may be NULL), e.g.
 * json_pack("{s:s,s:s}", "requestId", id, "status", "ok"). */
void log_event(enum log_level level, const char *message, json_t *fields);
