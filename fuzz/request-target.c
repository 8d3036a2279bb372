/* SPDX-License-Identifier: MIT */
/*
 * The body of the request fuzz target, shared by the libFuzzer entry point
 * (fuzz-request.c, built with clang by `make fuzz`) and the corpus replay
 * (replay.c, built with gcc as a unit test), so the corpus is replayed
 * through exactly what is fuzzed. It is #included, not linked: each binary
 * gets these as file-local functions.
 *
 * Each input is parsed twice, once with the service's defaults and once with
 * tight limits, so that short inputs also reach the "too long", "too many"
 * and "out of range" paths. A broken invariant prints what broke and
 * abort()s: a crash for libFuzzer, a failed test for the replay.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "config.h"
#include "pyexec.h"
#include "util.h"
#include "fuzz-check.h"

/*
 * Fixed configurations, written out rather than taken from config_load(),
 * which reads PYEXEC_CONFIG and every key from the environment: the fuzzer
 * and the replay must not depend on who runs them. api_parse_execute() reads
 * only the numeric limits below.
 */
static const struct config fuzz_configs[] = {
        /* The service's defaults (config.c). */
        {
                .execution_timeout = 10000,
                .memory_limit = 128,
                .max_output_length = 10000,
                .max_code_length = 50000,
                .max_request_size = 2097152,
                .max_tests = 50,
                .request_time_limit = 30000,
        },
        /* Tight: the smallest values config_load() accepts, or close. */
        {
                .execution_timeout = 1000,
                .memory_limit = 16,
                .max_output_length = 100,
                .max_code_length = 8,
                .max_request_size = 1024,
                .max_tests = 2,
                .request_time_limit = 1000,
        },
};

/* Characters as api.c counts them for MAX_CODE_LENGTH: UTF-8 lead bytes. */
static size_t fuzz_utf8_chars(const char *s, size_t n) {
        size_t c = 0;
        for (size_t i = 0; i < n; i++)
                if (((unsigned char)s[i] & 0xc0) != 0x80)
                        c++;
        return c;
}

static bool fuzz_is_identifier(const char *s, size_t n) {
        if (n == 0 || n > 64 || (s[0] >= '0' && s[0] <= '9'))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
                      s[i] == '_'))
                        return false;
        return true;
}

static void fuzz_check_cstrings(const char *const *v, size_t n) {
        FUZZ_CHECK(n <= API_MAX_ARGS);
        FUZZ_CHECK(n == 0 || v);
        for (size_t i = 0; i < n; i++) {
                FUZZ_CHECK(v[i]);
                FUZZ_CHECK(utf8_is_valid(v[i], strlen(v[i])));
        }
}

static void fuzz_check_request(const struct api_request *r, const struct config *cfg) {
        const struct pyexec_limits *l = &r->limits;
        struct pyexec_limits def;
        const struct pyexec_file *code;
        char msg[256];

        FUZZ_CHECK(json_is_object(r->doc));
        FUZZ_CHECK(!r->exercise_id || json_is_string(r->exercise_id) || json_is_integer(r->exercise_id));

        /* Files: the program first, the module next with runTests, every
         * name plain and used once. */
        FUZZ_CHECK(r->n_files >= 1);
        FUZZ_CHECK(r->n_files <= API_MAX_FILES + 2);
        FUZZ_CHECK(r->files[0].name && strcmp(r->files[0].name, PYEXEC_MAIN_FILE) == 0);
        for (size_t i = 0; i < r->n_files; i++) {
                const struct pyexec_file *f = &r->files[i];
                FUZZ_CHECK(f->name);
                if (!filename_is_plain(f->name, strlen(f->name)))
                        fuzz_fail(__FILE__, __LINE__, "files[%zu].name is not plain", i);
                FUZZ_CHECK(f->data || f->len == 0);
                for (size_t j = 0; j < i; j++)
                        if (strcmp(r->files[j].name, f->name) == 0)
                                fuzz_fail(__FILE__, __LINE__, "file name '%s' used twice", f->name);
        }
        if (r->module_file) {
                size_t n = strlen(r->module_file);
                FUZZ_CHECK(r->n_files >= 2);
                FUZZ_CHECK(strcmp(r->files[1].name, r->module_file) == 0);
                FUZZ_CHECK(n > 3 && strcmp(r->module_file + n - 3, ".py") == 0);
                FUZZ_CHECK(fuzz_is_identifier(r->module_file, n - 3));
                FUZZ_CHECK(strcmp(r->module_file, PYEXEC_MAIN_FILE) != 0);
                code = &r->files[1];
                FUZZ_CHECK(fuzz_utf8_chars(r->files[0].data, r->files[0].len) <= cfg->max_code_length);
        } else
                code = &r->files[0];
        FUZZ_CHECK(fuzz_utf8_chars(code->data, code->len) <= cfg->max_code_length);

        /* Limits: within 1 (16 for memory) and the service's maximum; the
         * ones a request cannot set keep their defaults. */
        pyexec_limits_default(&def);
        FUZZ_CHECK(l->timeout_ms >= 1 && l->timeout_ms <= cfg->execution_timeout);
        FUZZ_CHECK(l->cpu_time_ms >= 1 && l->cpu_time_ms <= cfg->execution_timeout);
        FUZZ_CHECK(l->memory_mb >= 16 && l->memory_mb <= cfg->memory_limit);
        FUZZ_CHECK(l->max_output >= 1 && l->max_output <= cfg->max_output_length);
        FUZZ_CHECK(l->pids == def.pids);
        FUZZ_CHECK(l->disk_mb == def.disk_mb);
        FUZZ_CHECK(l->file_size_mb == def.file_size_mb);
        FUZZ_CHECK(l->open_files == def.open_files);
        if (pyexec_limits_validate(l, "", msg, sizeof msg) < 0)
                fuzz_fail(__FILE__, __LINE__, "limits out of range: %s", msg);

        FUZZ_CHECK(r->stdin_data || r->stdin_len == 0);
        fuzz_check_cstrings(r->args, r->n_args);
        FUZZ_CHECK(r->n_cases <= cfg->max_tests);
        FUZZ_CHECK(r->total_ms >= 1 && r->total_ms <= cfg->request_time_limit);
        FUZZ_CHECK(r->n_cases == 0 || r->cases);
        for (size_t i = 0; i < r->n_cases; i++) {
                const struct api_case *c = &r->cases[i];
                FUZZ_CHECK(c->name && c->name[0]);
                FUZZ_CHECK(utf8_is_valid(c->name, strlen(c->name)));
                FUZZ_CHECK(c->expected || c->expected_len == 0);
                FUZZ_CHECK(c->stdin_data || c->stdin_len == 0);
                fuzz_check_cstrings(c->args, c->n_args);
        }
}

static void fuzz_check_error(const struct api_error *e, int rc, size_t len, const struct config *cfg) {
        json_t *j, *inner, *x;

        FUZZ_CHECK(rc == -EINVAL || rc == -ENOMEM);
        if (rc == -ENOMEM) {
                FUZZ_CHECK(e->http == 500);
                return;
        }
        FUZZ_CHECK(e->http == 400 || e->http == 413);
        FUZZ_CHECK(e->code);
        FUZZ_CHECK(strcmp(e->code, e->http == 400 ? "invalid_request" : "payload_too_large") == 0);
        FUZZ_CHECK(memchr(e->field, 0, sizeof e->field));
        FUZZ_CHECK(memchr(e->message, 0, sizeof e->message));
        FUZZ_CHECK(e->message[0]);
        if (len > cfg->max_request_size)
                FUZZ_CHECK(e->http == 413 && e->field[0] == 0);

        /* What the client gets: the error object must serialise, or the
         * server has nothing to answer with. */
        if (!utf8_is_valid(e->message, strlen(e->message)))
                fuzz_fail(__FILE__, __LINE__, "error message is not valid UTF-8: %s", e->message);
        if (!utf8_is_valid(e->field, strlen(e->field)))
                fuzz_fail(__FILE__, __LINE__, "error field is not valid UTF-8: %s", e->field);
        j = api_error_json(e);
        FUZZ_CHECK(j);
        inner = json_object_get(j, "error");
        FUZZ_CHECK(json_is_object(inner));
        x = json_object_get(inner, "code");
        FUZZ_CHECK(json_is_string(x) && strcmp(json_string_value(x), e->code) == 0);
        x = json_object_get(inner, "message");
        FUZZ_CHECK(json_is_string(x) && strcmp(json_string_value(x), e->message) == 0);
        x = json_object_get(inner, "field");
        if (e->field[0])
                FUZZ_CHECK(json_is_string(x) && strcmp(json_string_value(x), e->field) == 0);
        else
                FUZZ_CHECK(!x);
        json_decref(j);
}

static bool fuzz_is_trailing_space(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static void fuzz_check_normalize(const char *data, size_t size) {
        size_t len, len2;
        char *n = api_normalize_output(data, size, &len), *n2;

        FUZZ_CHECK(n);
        FUZZ_CHECK(len <= size);
        FUZZ_CHECK(n[len] == 0);
        FUZZ_CHECK(len == 0 || (n[len - 1] != '\n' && !fuzz_is_trailing_space(n[len - 1])));
        for (size_t i = 1; i < len; i++)
                if (n[i] == '\n' && fuzz_is_trailing_space(n[i - 1]))
                        fuzz_fail(__FILE__, __LINE__, "trailing whitespace left before the newline at %zu", i);
        /* Normalising twice changes nothing. */
        n2 = api_normalize_output(n, len, &len2);
        FUZZ_CHECK(n2);
        FUZZ_CHECK(len2 == len && memcmp(n, n2, len) == 0);
        free(n2);
        free(n);
}

/* Run one input; returns normally when every invariant holds. */
static void fuzz_request_one(const uint8_t *data, size_t size) {
        const char *body = (const char *)data;

        for (size_t i = 0; i < ELEMENTSOF(fuzz_configs); i++) {
                const struct config *cfg = &fuzz_configs[i];
                struct api_request r;
                struct api_error e;
                int rc;

                memset(&r, 0xa5, sizeof r);
                memset(&e, 0, sizeof e);
                rc = api_parse_execute(body, size, cfg, &r, &e);
                if (rc == 0) {
                        FUZZ_CHECK(size <= cfg->max_request_size);
                        FUZZ_CHECK(utf8_is_valid(body, size));
                        fuzz_check_request(&r, cfg);
                        api_request_done(&r);
                } else {
                        /* ret_ parameters are written only on success. */
                        for (size_t k = 0; k < sizeof r; k++)
                                if (((const unsigned char *)&r)[k] != 0xa5)
                                        fuzz_fail(__FILE__, __LINE__, "the request was written on failure (byte %zu)",
                                                  k);
                        fuzz_check_error(&e, rc, size, cfg);
                }
        }
        fuzz_check_normalize(body, size);
}
