/* SPDX-License-Identifier: MIT */
#include "log.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

const char *log_level_to_string(enum log_level l) {
        static const char *const names[_LOG_LEVEL_MAX] = {
                [LOG_DEBUG] = "debug",
                [LOG_INFO] = "info",
                [LOG_WARN] = "warn",
                [LOG_ERROR] = "error",
        };
        return l < _LOG_LEVEL_MAX ? names[l] : "info";
}

static atomic_int min_level = LOG_INFO;

void log_set_level(enum log_level level) {
        atomic_store(&min_level, (int)level);
}

bool log_enabled(enum log_level level) {
        return (int)level >= atomic_load(&min_level);
}

void log_event(enum log_level level, const char *message, json_t *fields) {
        struct timespec ts;
        struct tm tm;
        char stamp[80];
        json_t *o;
        char *line;

        if (!log_enabled(level)) {
                json_decref(fields);
                return;
        }
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
        o = json_pack("{s:s,s:s,s:s}", "timestamp", stamp, "level", log_level_to_string(level), "message", message);
        if (!o) {
                json_decref(fields);
                return;
        }
        if (fields) {
                json_object_update(o, fields);
                json_decref(fields);
        }
        line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
        json_decref(o);
        if (!line)
                return;
        {
                size_t n = strlen(line);
                char *nl = realloc(line, n + 2);
                if (nl) {
                        line = nl;
                        line[n] = '\n';
                        line[n + 1] = 0;
                        (void)!write(STDERR_FILENO, line, n + 1);
                }
        }
        free(line);
}
