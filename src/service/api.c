/* SPDX-License-Identifier: MIT */
#include "api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64.h"
#include "result.h"

/* The fields a request may carry; anything else is a typo to report. */
static const char *const known_fields[] = {
        "code",       "exerciseId",   "runTests",  "testCode", "moduleName",  "timeout",
        "cpuTimeout", "memoryLimit",  "maxOutput", "files",    "stdin",       "args",
        "tests",      "totalTimeout", "policy",    "userId",   "stdinBase64",
};

/* Deepest nesting of arrays and objects, without parsing (strings skipped),
 * so a hostile body cannot make the parser recurse. */
static unsigned json_depth(const char *p, size_t n) {
        unsigned depth = 0, max = 0;
        bool in_string = false;
        for (size_t i = 0; i < n; i++) {
                char c = p[i];
                if (in_string) {
                        if (c == '\\')
                                i++;
                        else if (c == '"')
                                in_string = false;
                } else if (c == '"')
                        in_string = true;
                else if (c == '[' || c == '{') {
                        if (++depth > max)
                                max = depth;
                } else if ((c == ']' || c == '}') && depth > 0)
                        depth--;
        }
        return max;
}

static const char *type_name(const json_t *v) {
        switch (json_typeof(v)) {
        case JSON_OBJECT:
                return "an object";
        case JSON_ARRAY:
                return "an array";
        case JSON_STRING:
                return "a string";
        case JSON_INTEGER:
                return "an integer";
        case JSON_REAL:
                return "a number with a fraction";
        case JSON_TRUE:
        case JSON_FALSE:
                return "a boolean";
        default:
                return "null";
        }
}

/* Content (code, stdin, file contents) past its limit is 413; a name or an
 * argument past its limit is an invalid request (400). */
static int want_string_limited(json_t *v, const char *field, size_t max_bytes, bool content, const char **ret,
                               size_t *ret_len, struct api_error *err) {
        if (!json_is_string(v)) {
                api_error_set(err, 400, "invalid_request", field, "%s must be a string, got %s", field, type_name(v));
                return -EINVAL;
        }
        if (json_string_length(v) > max_bytes) {
                if (content)
                        api_error_set(err, 413, "payload_too_large", field, "%s is %zu bytes; the limit is %zu", field,
                                      json_string_length(v), max_bytes);
                else
                        api_error_set(err, 400, "invalid_request", field, "%s must be at most %zu bytes, got %zu", field,
                                      max_bytes, json_string_length(v));
                return -EINVAL;
        }
        *ret = json_string_value(v);
        *ret_len = json_string_length(v);
        return 0;
}

static int want_string(json_t *v, const char *field, size_t max_bytes, const char **ret, size_t *ret_len,
                       struct api_error *err) {
        return want_string_limited(v, field, max_bytes, true, ret, ret_len, err);
}

/* Bytes that need not be text (stdinBase64, a file's contentBase64): the
 * decoded copy is the request's, freed with it. */
static int want_base64(json_t *v, const char *field, struct api_request *r, const char **ret, size_t *ret_len,
                       struct api_error *err) {
        const char *s, *why = NULL;
        uint8_t *out;
        void **grown;
        size_t n, len;
        int k;

        if (want_string(v, field, SIZE_MAX, &s, &n, err) < 0)
                return -EINVAL;
        if (!base64_is_valid(s, n)) {
                api_error_set(err, 400, "invalid_request", field,
                              "%s is not base64 (RFC 4648: A-Z a-z 0-9 + /, padded with = to a multiple of 4 "
                              "characters, no line breaks)",
                              field);
                return -EINVAL;
        }
        if (base64_load(&why) < 0) {
                api_error_set(err, 500, "internal_error", field, "cannot decode %s: %s", field, why);
                return -EINVAL;
        }
        grown = realloc(r->decoded, (r->n_decoded + 1) * sizeof *grown);
        if (!grown)
                return -ENOMEM;
        r->decoded = grown;
        k = base64_decode(s, n, &out, &len);
        if (k < 0)
                return k == -ENOMEM ? k : -EINVAL;
        r->decoded[r->n_decoded++] = out;
        *ret = (const char *)out;
        *ret_len = len;
        return 0;
}

/* A string that becomes a C string (argv, names): no NUL inside. */
static int want_cstring(json_t *v, const char *field, size_t max_bytes, const char **ret, struct api_error *err) {
        size_t len;
        int r = want_string_limited(v, field, max_bytes, false, ret, &len, err);
        if (r < 0)
                return r;
        if (strlen(*ret) != len) {
                api_error_set(err, 400, "invalid_request", field, "%s must not contain NUL characters", field);
                return -EINVAL;
        }
        return 0;
}

static int want_uint(json_t *v, const char *field, uint64_t min, uint64_t max, const char *unit, uint64_t *ret,
                     struct api_error *err) {
        json_int_t x;
        if (!json_is_integer(v)) {
                api_error_set(err, 400, "invalid_request", field, "%s must be a whole number between %llu and %llu%s%s%s, got %s",
                              field, (unsigned long long)min, (unsigned long long)max, unit[0] ? " (" : "", unit,
                              unit[0] ? ")" : "", type_name(v));
                return -EINVAL;
        }
        x = json_integer_value(v);
        if (x < 0 || (uint64_t)x < min || (uint64_t)x > max) {
                api_error_set(err, 400, "invalid_request", field, "%s must be between %llu and %llu%s%s%s, got %lld", field,
                              (unsigned long long)min, (unsigned long long)max, unit[0] ? " (" : "", unit,
                              unit[0] ? ")" : "", (long long)x);
                return -EINVAL;
        }
        *ret = (uint64_t)x;
        return 0;
}

static int want_args(json_t *v, const char *field, const char ***ret, size_t *ret_n, struct api_error *err) {
        const char **args;
        size_t n = json_array_size(v);
        char f[96];

        if (!json_is_array(v)) {
                api_error_set(err, 400, "invalid_request", field, "%s must be an array of strings, got %s", field, type_name(v));
                return -EINVAL;
        }
        if (n > API_MAX_ARGS) {
                api_error_set(err, 400, "invalid_request", field, "%s has %zu entries; at most %d are allowed", field, n,
                              API_MAX_ARGS);
                return -EINVAL;
        }
        args = calloc(n ? n : 1, sizeof *args);
        if (!args)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                snprintf(f, sizeof f, "%s[%zu]", field, i);
                if (want_cstring(json_array_get(v, i), f, 65536, &args[i], err) < 0) {
                        free(args);
                        return -EINVAL;
                }
        }
        *ret = args;
        *ret_n = n;
        return 0;
}

static int parse_files(json_t *v, struct api_request *r, struct api_error *err) {
        size_t n = json_array_size(v);
        char f[96];

        if (!json_is_array(v)) {
                api_error_set(err, 400, "invalid_request", "files", "files must be an array of {name, content}, got %s",
                              type_name(v));
                return -EINVAL;
        }
        if (n > API_MAX_FILES) {
                api_error_set(err, 400, "invalid_request", "files", "files has %zu entries; at most %d are allowed", n,
                              API_MAX_FILES);
                return -EINVAL;
        }
        for (size_t i = 0; i < n; i++) {
                json_t *o = json_array_get(v, i), *name, *content;
                struct pyexec_file *pf = &r->files[r->n_files];
                const char *key;
                json_t *val;

                snprintf(f, sizeof f, "files[%zu]", i);
                if (!json_is_object(o)) {
                        api_error_set(err, 400, "invalid_request", f, "%s must be an object {name, content}, got %s", f,
                                      type_name(o));
                        return -EINVAL;
                }
                json_object_foreach(o, key, val) {
                        if (strcmp(key, "name") != 0 && strcmp(key, "content") != 0 &&
                            strcmp(key, "contentBase64") != 0) {
                                snprintf(f, sizeof f, "files[%zu].%.40s", i, key);
                                api_error_set(err, 400, "invalid_request", f, "unknown field '%s' in files[%zu]", key, i);
                                return -EINVAL;
                        }
                }
                name = json_object_get(o, "name");
                content = json_object_get(o, "content");
                snprintf(f, sizeof f, "files[%zu].name", i);
                if (!name) {
                        api_error_set(err, 400, "invalid_request", f, "%s is required", f);
                        return -EINVAL;
                }
                if (want_cstring(name, f, 255, &pf->name, err) < 0)
                        return -EINVAL;
                if (!filename_is_plain(pf->name, strlen(pf->name))) {
                        api_error_set(err, 400, "invalid_request", f,
                                      "%s must be a plain file name (no '/', not '.' or '..', no control characters, at "
                                      "most 255 bytes)",
                                      f);
                        return -EINVAL;
                }
                for (size_t j = 0; j < r->n_files; j++)
                        if (strcmp(r->files[j].name, pf->name) == 0) {
                                api_error_set(err, 400, "invalid_request", f,
                                              "%s '%s' is already used (by the program or another file)", f, pf->name);
                                return -EINVAL;
                        }
                snprintf(f, sizeof f, "files[%zu].content", i);
                if (content && json_object_get(o, "contentBase64")) {
                        snprintf(f, sizeof f, "files[%zu].contentBase64", i);
                        api_error_set(err, 400, "invalid_request", f,
                                      "files[%zu] has content and contentBase64: give one of them", i);
                        return -EINVAL;
                }
                if (!content && (content = json_object_get(o, "contentBase64"))) {
                        int k;
                        snprintf(f, sizeof f, "files[%zu].contentBase64", i);
                        if ((k = want_base64(content, f, r, &pf->data, &pf->len, err)) < 0)
                                return k;
                } else if (!content) {
                        api_error_set(err, 400, "invalid_request", f, "%s (or contentBase64) is required", f);
                        return -EINVAL;
                } else if (want_string(content, f, SIZE_MAX, &pf->data, &pf->len, err) < 0)
                        return -EINVAL;
                r->n_files++;
        }
        return 0;
}

static int parse_cases(json_t *v, const struct config *cfg, struct api_request *r, struct api_error *err) {
        size_t n = json_array_size(v);
        char f[96];

        if (!json_is_array(v) || n == 0) {
                api_error_set(err, 400, "invalid_request", "tests",
                              "tests must be a non-empty array of {name, stdin, args, expectedOutput}");
                return -EINVAL;
        }
        if (n > cfg->max_tests) {
                api_error_set(err, 400, "invalid_request", "tests", "tests has %zu cases; at most %llu are allowed", n,
                              (unsigned long long)cfg->max_tests);
                return -EINVAL;
        }
        r->cases = calloc(n, sizeof *r->cases);
        if (!r->cases)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                json_t *o = json_array_get(v, i), *x, *val;
                struct api_case *c = &r->cases[i];
                const char *key, *name = NULL;

                r->n_cases = i + 1;
                snprintf(f, sizeof f, "tests[%zu]", i);
                if (!json_is_object(o)) {
                        api_error_set(err, 400, "invalid_request", f, "%s must be an object, got %s", f, type_name(o));
                        return -EINVAL;
                }
                json_object_foreach(o, key, val) {
                        if (strcmp(key, "name") && strcmp(key, "stdin") && strcmp(key, "args") &&
                            strcmp(key, "expectedOutput")) {
                                snprintf(f, sizeof f, "tests[%zu].%.40s", i, key);
                                api_error_set(err, 400, "invalid_request", f, "unknown field '%s' in tests[%zu]", key, i);
                                return -EINVAL;
                        }
                }
                if ((x = json_object_get(o, "name"))) {
                        snprintf(f, sizeof f, "tests[%zu].name", i);
                        if (want_cstring(x, f, 256, &name, err) < 0)
                                return -EINVAL;
                }
                /* An empty name is no name: cases are always named. */
                c->name = name && *name ? strdup(name) : strdup_printf("test %zu", i + 1);
                if (!c->name)
                        return -ENOMEM;
                if ((x = json_object_get(o, "stdin"))) {
                        snprintf(f, sizeof f, "tests[%zu].stdin", i);
                        if (want_string(x, f, SIZE_MAX, &c->stdin_data, &c->stdin_len, err) < 0)
                                return -EINVAL;
                }
                if ((x = json_object_get(o, "args"))) {
                        snprintf(f, sizeof f, "tests[%zu].args", i);
                        if (want_args(x, f, &c->args, &c->n_args, err) < 0)
                                return -EINVAL;
                }
                snprintf(f, sizeof f, "tests[%zu].expectedOutput", i);
                if (!(x = json_object_get(o, "expectedOutput"))) {
                        api_error_set(err, 400, "invalid_request", f, "%s is required", f);
                        return -EINVAL;
                }
                if (want_string(x, f, SIZE_MAX, &c->expected, &c->expected_len, err) < 0)
                        return -EINVAL;
        }
        return 0;
}

void api_request_done(struct api_request *r) {
        for (size_t i = 0; i < r->n_cases; i++) {
                free(r->cases[i].name);
                free(r->cases[i].args);
        }
        free(r->cases);
        free(r->files);
        free(r->args);
        free(r->module_file);
        for (size_t i = 0; i < r->n_decoded; i++)
                free(r->decoded[i]);
        free(r->decoded);
        json_decref(r->doc);
        *r = (struct api_request){ 0 };
}

int api_parse_execute(const char *body, size_t len, const struct config *cfg, struct api_request *ret,
                      struct api_error *err) {
        struct api_request r = { 0 };
        json_error_t jerr;
        json_t *v, *code, *val;
        const char *key, *s;
        size_t slen;
        bool run_tests = false;
        int rc = -EINVAL;

        if (len > cfg->max_request_size) {
                api_error_set(err, 413, "payload_too_large", NULL, "the request body is %zu bytes; the limit is %llu", len,
                              (unsigned long long)cfg->max_request_size);
                return -EINVAL;
        }
        if (!utf8_is_valid(body, len)) {
                api_error_set(err, 400, "invalid_request", NULL, "the request body is not valid UTF-8");
                return -EINVAL;
        }
        if (json_depth(body, len) > API_MAX_DEPTH) {
                api_error_set(err, 400, "invalid_request", NULL, "JSON nested deeper than %d levels", API_MAX_DEPTH);
                return -EINVAL;
        }
        /* ALLOW_NUL: "\u0000" is valid JSON, and fine in stdin or file
         * contents; names and arguments refuse it with their own message.
         * DECODE_ANY: a scalar body gets "must be a JSON object" below. */
        r.doc = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
        if (!r.doc) {
                api_error_set(err, 400, "invalid_request", NULL, "malformed JSON: %s (line %d, column %d)", jerr.text,
                              jerr.line, jerr.column);
                return -EINVAL;
        }
        if (!json_is_object(r.doc)) {
                api_error_set(err, 400, "invalid_request", NULL, "the request must be a JSON object, got %s",
                              type_name(r.doc));
                goto fail;
        }
        json_object_foreach(r.doc, key, val) {
                bool known = false;
                for (size_t i = 0; i < ELEMENTSOF(known_fields); i++)
                        if (strcmp(key, known_fields[i]) == 0)
                                known = true;
                if (!known) {
                        char f[96];
                        snprintf(f, sizeof f, "%.90s", key);
                        api_error_set(err, 400, "invalid_request", f, "unknown field '%.90s'", key);
                        goto fail;
                }
        }

        /* Limits: the service's values are the defaults and the maxima. */
        pyexec_limits_default(&r.limits);
        r.limits.timeout_ms = cfg->execution_timeout;
        r.limits.memory_mb = cfg->memory_limit;
        r.limits.max_output = cfg->max_output_length;
        if ((v = json_object_get(r.doc, "timeout")) &&
            want_uint(v, "timeout", 1, cfg->execution_timeout, "ms", &r.limits.timeout_ms, err) < 0)
                goto fail;
        r.limits.cpu_time_ms = r.limits.timeout_ms;
        if ((v = json_object_get(r.doc, "cpuTimeout")) &&
            want_uint(v, "cpuTimeout", 1, cfg->execution_timeout, "ms", &r.limits.cpu_time_ms, err) < 0)
                goto fail;
        if ((v = json_object_get(r.doc, "memoryLimit")) &&
            want_uint(v, "memoryLimit", 16, cfg->memory_limit, "MB", &r.limits.memory_mb, err) < 0)
                goto fail;
        if ((v = json_object_get(r.doc, "maxOutput")) &&
            want_uint(v, "maxOutput", 1, cfg->max_output_length, "bytes", &r.limits.max_output, err) < 0)
                goto fail;
        r.policy_line = cfg->default_policy ? config_policy_line(cfg, cfg->default_policy) : NULL;
        if ((v = json_object_get(r.doc, "policy"))) {
                if (want_cstring(v, "policy", 64, &s, err) < 0)
                        goto fail;
                r.policy_line = config_policy_line(cfg, s);
                if (!r.policy_line) {
                        api_error_set(err, 400, "invalid_request", "policy",
                                      "policy '%s' is not available; available: %s", s,
                                      cfg->policies ? cfg->policies : "none");
                        goto fail;
                }
        }
        if ((v = json_object_get(r.doc, "exerciseId"))) {
                if (!(json_is_string(v) && json_string_length(v) <= 256 && strlen(json_string_value(v)) == json_string_length(v)) &&
                    !json_is_integer(v)) {
                        api_error_set(err, 400, "invalid_request", "exerciseId",
                                      "exerciseId must be a string of at most 256 bytes or an integer, got %s", type_name(v));
                        goto fail;
                }
                r.exercise_id = v;
        }

        /* The end user a trusted key's request is for (its own quota; the
         * caller checks the key may name one). */
        if ((v = json_object_get(r.doc, "userId"))) {
                const char *u = json_string_value(v);
                bool ok = u && json_string_length(v) >= 1 && json_string_length(v) <= API_USER_ID_MAX &&
                          strlen(u) == json_string_length(v);
                for (const char *p = u; ok && *p; p++)
                        ok = (unsigned char)*p >= 0x20 && *p != 0x7f;
                if (!ok) {
                        char got[64];
                        if (!u)
                                snprintf(got, sizeof got, "%s", type_name(v));
                        else if (json_string_length(v) == 0 || json_string_length(v) > API_USER_ID_MAX)
                                snprintf(got, sizeof got, "a string of %zu bytes", json_string_length(v));
                        else
                                snprintf(got, sizeof got, "a control character");
                        api_error_set(err, 400, "invalid_request", "userId",
                                      "userId must be a string of 1 to %d bytes without control characters, got %s",
                                      API_USER_ID_MAX, got);
                        goto fail;
                }
                r.user_id = u;
        }

        /* The program. */
        code = json_object_get(r.doc, "code");
        if (!code) {
                api_error_set(err, 400, "invalid_request", "code", "code is required");
                goto fail;
        }
        if (want_string(code, "code", SIZE_MAX, &s, &slen, err) < 0)
                goto fail;
        if (utf8_length(s, slen) > cfg->max_code_length) {
                api_error_set(err, 413, "payload_too_large", "code", "code is %zu characters; the limit is %llu",
                              utf8_length(s, slen), (unsigned long long)cfg->max_code_length);
                goto fail;
        }
        r.files = calloc(API_MAX_FILES + 2, sizeof *r.files);
        if (!r.files) {
                rc = -ENOMEM;
                goto fail;
        }
        if ((v = json_object_get(r.doc, "runTests"))) {
                if (!json_is_boolean(v)) {
                        api_error_set(err, 400, "invalid_request", "runTests", "runTests must be a boolean, got %s",
                                      type_name(v));
                        goto fail;
                }
                run_tests = json_is_true(v);
        }
        if (run_tests) {
                const char *tc, *mod = "starter";
                size_t tlen;
                if (!(v = json_object_get(r.doc, "testCode"))) {
                        api_error_set(err, 400, "invalid_request", "testCode", "testCode is required when runTests is true");
                        goto fail;
                }
                if (want_string(v, "testCode", SIZE_MAX, &tc, &tlen, err) < 0)
                        goto fail;
                if (utf8_length(tc, tlen) > cfg->max_code_length) {
                        api_error_set(err, 413, "payload_too_large", "testCode",
                                      "testCode is %zu characters; the limit is %llu", utf8_length(tc, tlen),
                                      (unsigned long long)cfg->max_code_length);
                        goto fail;
                }
                if ((v = json_object_get(r.doc, "moduleName"))) {
                        if (want_cstring(v, "moduleName", 64, &mod, err) < 0)
                                goto fail;
                        if (!module_name_is_valid(mod) || strcmp(mod, "main") == 0) {
                                api_error_set(err, 400, "invalid_request", "moduleName",
                                              "moduleName must be a Python identifier of at most 64 characters other "
                                              "than 'main', got '%s'",
                                              mod);
                                goto fail;
                        }
                }
                r.module_file = strdup_printf("%s.py", mod);
                if (!r.module_file) {
                        rc = -ENOMEM;
                        goto fail;
                }
                r.files[r.n_files++] = (struct pyexec_file){ PYEXEC_MAIN_FILE, tc, tlen };
                r.files[r.n_files++] = (struct pyexec_file){ r.module_file, s, slen };
        } else {
                if (json_object_get(r.doc, "testCode") || json_object_get(r.doc, "moduleName")) {
                        const char *f = json_object_get(r.doc, "testCode") ? "testCode" : "moduleName";
                        api_error_set(err, 400, "invalid_request", f, "%s needs runTests: true", f);
                        goto fail;
                }
                r.files[r.n_files++] = (struct pyexec_file){ PYEXEC_MAIN_FILE, s, slen };
        }
        if ((v = json_object_get(r.doc, "files")) && (rc = parse_files(v, &r, err)) < 0)
                goto fail;
        {
                uint64_t total = 0;
                for (size_t i = 0; i < r.n_files; i++)
                        total += r.files[i].len + 4096;
                if (total > r.limits.disk_mb * 1024 * 1024) {
                        api_error_set(err, 413, "payload_too_large", "files",
                                      "the program and its files take %llu bytes; the work directory holds %llu MB",
                                      (unsigned long long)total, (unsigned long long)r.limits.disk_mb);
                        goto fail;
                }
        }
        if ((v = json_object_get(r.doc, "stdin")) && want_string(v, "stdin", SIZE_MAX, &r.stdin_data, &r.stdin_len, err) < 0)
                goto fail;
        if ((v = json_object_get(r.doc, "stdinBase64"))) {
                if (json_object_get(r.doc, "stdin")) {
                        api_error_set(err, 400, "invalid_request", "stdinBase64",
                                      "stdin and stdinBase64 are both given: send one of them");
                        goto fail;
                }
                if ((rc = want_base64(v, "stdinBase64", &r, &r.stdin_data, &r.stdin_len, err)) < 0)
                        goto fail;
        }
        if ((v = json_object_get(r.doc, "args")) && want_args(v, "args", &r.args, &r.n_args, err) < 0)
                goto fail;
        if ((v = json_object_get(r.doc, "tests")) && parse_cases(v, cfg, &r, err) < 0)
                goto fail;
        /* One sandbox per case, each up to `timeout`: without a bound on
         * their sum, one request of many cases would hold a slot for
         * MAX_TESTS timeouts. A request may ask for less, never more. */
        r.total_ms = cfg->request_time_limit ? cfg->request_time_limit
                                             : REQUEST_TIME_LIMIT_FACTOR * cfg->execution_timeout;
        if ((v = json_object_get(r.doc, "totalTimeout"))) {
                if (r.n_cases == 0) {
                        api_error_set(err, 400, "invalid_request", "totalTimeout",
                                      "totalTimeout bounds the test cases together: it needs tests");
                        goto fail;
                }
                if (want_uint(v, "totalTimeout", 1, r.total_ms, "ms", &r.total_ms, err) < 0)
                        goto fail;
        }
        *ret = r;
        return 0;
fail:
        api_request_done(&r);
        return rc == -ENOMEM ? (api_error_set(err, 500, "internal_error", NULL, "out of memory"), -ENOMEM) : -EINVAL;
}

char *api_normalize_output(const char *s, size_t n, size_t *ret_len) {
        struct buf b;
        size_t i = 0;

        buf_init(&b, n + 1);
        if (buf_append(&b, "", 0) < 0)
                return NULL;
        while (i < n) {
                size_t e = i;
                while (e < n && s[e] != '\n')
                        e++;
                size_t t = e;
                while (t > i && (s[t - 1] == ' ' || s[t - 1] == '\t' || s[t - 1] == '\r' || s[t - 1] == '\f' ||
                                 s[t - 1] == '\v'))
                        t--;
                (void)buf_append(&b, s + i, t - i);
                if (e < n)
                        (void)buf_append(&b, "\n", 1);
                i = e + 1;
        }
        while (b.len > 0 && b.data[b.len - 1] == '\n')
                b.data[--b.len] = 0;
        *ret_len = b.len;
        return buf_steal(&b);
}

/* The line of text (of len bytes) that starts at p, as a JSON string cut
 * to API_DIFF_LINE_MAX bytes; at_end: no such line (JSON null). */
static json_t *diff_line(const char *p, size_t len, bool at_end) {
        const char *nl;
        size_t n;

        if (at_end)
                return json_null();
        nl = memchr(p, '\n', len);
        n = nl ? (size_t)(nl - p) : len;
        return result_json_string(p, n < API_DIFF_LINE_MAX ? n : API_DIFF_LINE_MAX);
}

json_t *api_first_difference(const char *want, size_t want_len, const char *got, size_t got_len) {
        size_t i = 0, line = 1, start = 0;
        bool want_none, got_none;

        if (want_len == got_len && memcmp(want, got, want_len) == 0)
                return NULL;
        /* The common prefix; start is where its last line begins. */
        while (i < want_len && i < got_len && want[i] == got[i]) {
                if (want[i] == '\n') {
                        line++;
                        start = i + 1;
                }
                i++;
        }
        /* One side ends where the other's next line begins ("a" against
         * "a\nb"): the difference is that next line, which one side lacks.
         * A normalized output never ends with a newline, and an empty one
         * has no line at all. */
        if (i == want_len && i < got_len && got[i] == '\n' && want_len > 0) {
                line++;
                start = i + 1;
                want_none = true;
                got_none = false;
        } else if (i == got_len && i < want_len && want[i] == '\n' && got_len > 0) {
                line++;
                start = i + 1;
                want_none = false;
                got_none = true;
        } else {
                want_none = want_len == 0;
                got_none = got_len == 0;
        }
        return json_pack("{s:I,s:o,s:o}", "line", (json_int_t)line, "expected",
                         diff_line(want + start, want_none ? 0 : want_len - start, want_none), "actual",
                         diff_line(got + start, got_none ? 0 : got_len - start, got_none));
}

const char *api_verdict(const char *const *case_status, size_t n) {
        for (size_t i = 0; i < n; i++) {
                if (strcmp(case_status[i], "passed") == 0)
                        continue;
                return strcmp(case_status[i], "failed") == 0 ? "wrong_answer" : case_status[i];
        }
        return "accepted";
}

static void run_one(struct pyexec_sandbox *sb, const struct config *cfg, const struct api_request *r,
                    const struct pyexec_limits *limits, const char *stdin_data, size_t stdin_len, const char **args,
                    size_t n_args, const struct api_hooks *hooks, struct pyexec_result *res) {
        struct pyexec_spec spec = {
                .limits = *limits,
                .python = cfg->python,
                .files = r->files,
                .n_files = r->n_files,
                .args = args,
                .n_args = n_args,
                .stdin_data = stdin_data,
                .stdin_len = stdin_len,
                .echo_stdout = -1,
                .echo_stderr = -1,
                .runner = true,
                .policy = r->policy_line,
                .max_images = (unsigned)cfg->max_images,
                .max_image_bytes = cfg->max_image_bytes,
        };
        uint64_t t0 = now_ns();
        if (hooks) {
                spec.on_output = hooks->on_output;
                spec.on_output_userdata = hooks->userdata;
                spec.client_fd = hooks->client_fd;
        }
        pyexec_run(sb, &spec, res);
        if (hooks && hooks->observe)
                hooks->observe(hooks->userdata, res, (double)(now_ns() - t0) / 1e6);
}

uint64_t api_case_timeout(uint64_t timeout_ms, uint64_t start_ns, uint64_t total_ms, uint64_t now_ns) {
        uint64_t deadline = start_ns + total_ms * 1000000ull, left_ms;

        if (now_ns >= deadline)
                return 0;
        left_ms = (deadline - now_ns) / 1000000ull;
        return left_ms < timeout_ms ? left_ms : timeout_ms;
}

/* The test program failed an assert: the last line of its stderr, in the
 * message, names AssertionError. */
static bool assertion_failed(const struct pyexec_result *res) {
        const char *m = res->message, *p;
        static const char name[] = "AssertionError";

        if (res->status != PYEXEC_RUNTIME_ERROR || !m || strncmp(m, "exited with code ", 17) != 0 ||
            !(p = strstr(m, ": ")))
                return false;
        p += 2;
        return strncmp(p, name, strlen(name)) == 0 && (p[strlen(name)] == '\0' || p[strlen(name)] == ':');
}

/* The entry of a test case that was never started. */
static json_t *case_not_run_json(const struct api_case *c, const char *why) {
        return json_pack("{s:s,s:s,s:s,s:o,s:f,s:s}", "name", c->name, "status", "not_run", "stdout", "",
                         "expectedOutput", result_json_string(c->expected, c->expected_len), "timeMs", 0.0, "message",
                         why);
}

static void add_exercise_id(json_t *o, const struct api_request *r) {
        json_object_set(o, "exerciseId", r->exercise_id ? r->exercise_id : json_null());
}

json_t *api_execute(struct pyexec_sandbox *sb, const struct config *cfg, const struct api_request *r, const char *id,
                    const struct api_hooks *hooks, struct api_outcome *ret) {
        struct pyexec_result res;
        struct api_outcome out = { 0 };
        json_t *o;

        if (r->n_cases == 0) {
                run_one(sb, cfg, r, &r->limits, r->stdin_data, r->stdin_len, r->args, r->n_args, hooks, &res);
                out.runs = 1;
                o = result_to_json(&res, &r->limits, id);
                if (o)
                        add_exercise_id(o, r);
                /* runTests: the test program's verdict. */
                if (o && r->module_file)
                        json_object_set_new(o, "verdict",
                                            json_string(res.status == PYEXEC_OK ? "accepted"
                                                        : assertion_failed(&res)
                                                                ? "wrong_answer"
                                                                : pyexec_status_to_string(res.status)));
                out.status = res.status;
                out.wall_ms = res.wall_ms;
                out.cpu_ms = res.cpu_ms;
                out.sandbox_failed = res.status == PYEXEC_INTERNAL_ERROR;
                pyexec_result_done(&res);
        } else {
                /* One fresh sandbox per case. The top-level result is the
                 * first case whose run was not ok, else the last case. */
                json_t *cases = json_array(), *top = NULL;
                const char **statuses = calloc(r->n_cases, sizeof *statuses);
                size_t passed = 0;
                uint64_t start = now_ns();
                char why[160] = "";
                for (size_t i = 0; i < r->n_cases; i++) {
                        const struct api_case *c = &r->cases[i];
                        struct pyexec_limits lim = r->limits;
                        size_t got_len, want_len;
                        char *got, *want;
                        bool pass;
                        json_t *cj;

                        /* Once one case is stopped, the rest are not run;
                         * each is checked, so none runs after the client
                         * left or past the request's time. */
                        if (!why[0] && i > 0 && hooks && hooks->client_gone && hooks->client_gone(hooks->userdata)) {
                                out.client_gone = true;
                                snprintf(why, sizeof why, "not run: the client went away");
                        }
                        if (!why[0]) {
                                lim.timeout_ms = api_case_timeout(r->limits.timeout_ms, start, r->total_ms, now_ns());
                                if (lim.timeout_ms == 0) {
                                        out.time_limit_reached = true;
                                        snprintf(why, sizeof why,
                                                 "not run: the request's total time limit of %llu ms was reached",
                                                 (unsigned long long)r->total_ms);
                                }
                        }
                        if (why[0]) {
                                json_array_append_new(cases, case_not_run_json(c, why));
                                out.not_run++;
                                if (statuses)
                                        statuses[i] = "not_run";
                                continue;
                        }
                        run_one(sb, cfg, r, &lim, c->stdin_data, c->stdin_len, c->n_args ? c->args : r->args,
                                c->n_args ? c->n_args : r->n_args, hooks, &res);
                        out.runs++;
                        /* Cut short by the request's limit, not its own:
                         * say so, rather than blame the case's timeout. */
                        if (res.status == PYEXEC_TIMEOUT && lim.timeout_ms < r->limits.timeout_ms &&
                            api_case_timeout(r->limits.timeout_ms, start, r->total_ms, now_ns()) == 0) {
                                char *m = strdup_printf("stopped: the request's total time limit of %llu ms was "
                                                        "reached while this case ran (its own limit is %llu ms)",
                                                        (unsigned long long)r->total_ms,
                                                        (unsigned long long)r->limits.timeout_ms);
                                if (m) {
                                        free(res.message);
                                        res.message = m;
                                }
                                out.time_limit_reached = true;
                        }
                        got = api_normalize_output(res.out.data ? res.out.data : "", res.out.len, &got_len);
                        want = api_normalize_output(c->expected, c->expected_len, &want_len);
                        pass = res.status == PYEXEC_OK && got && want && got_len == want_len &&
                               memcmp(got, want, got_len) == 0;
                        if (pass)
                                passed++;
                        const char *st = pass                      ? "passed"
                                         : res.status == PYEXEC_OK ? "failed"
                                                                   : pyexec_status_to_string(res.status);
                        if (statuses)
                                statuses[i] = st;
                        cj = json_pack("{s:s,s:s,s:o,s:o,s:f}", "name", c->name, "status", st, "stdout",
                                       result_json_string(res.out.data, res.out.len), "expectedOutput",
                                       result_json_string(c->expected, c->expected_len), "timeMs",
                                       (double)(long long)(res.wall_ms * 10.0 + 0.5) / 10.0);
                        if (cj && res.status != PYEXEC_OK && res.message)
                                json_object_set_new(cj, "message", json_string(res.message));
                        /* A wrong answer: where it first goes wrong. */
                        if (cj && !pass && res.status == PYEXEC_OK && got && want) {
                                json_t *d = api_first_difference(want, want_len, got, got_len);
                                if (d)
                                        json_object_set_new(cj, "difference", d);
                        }
                        free(got);
                        free(want);
                        json_array_append_new(cases, cj);
                        if (res.status == PYEXEC_INTERNAL_ERROR)
                                out.sandbox_failed = true;
                        /* Replaced until a case fails to run ok: the
                         * first such case, else the last, stays on top. */
                        if (!top || out.status == PYEXEC_OK) {
                                json_decref(top);
                                top = result_to_json(&res, &lim, id);
                                out.status = res.status;
                                out.wall_ms = res.wall_ms;
                                out.cpu_ms = res.cpu_ms;
                        }
                        pyexec_result_done(&res);
                }
                o = top;
                if (o) {
                        add_exercise_id(o, r);
                        json_object_set_new(o, "tests", cases);
                        /* failed counts every case that did not pass, the
                         * ones not run included: passed + failed = total,
                         * and a client that knows only those three still
                         * never takes a cut request for a full pass. */
                        json_t *sum = json_pack("{s:I,s:I,s:I}", "passed", (json_int_t)passed, "failed",
                                                (json_int_t)(r->n_cases - passed), "total", (json_int_t)r->n_cases);
                        if (sum && out.not_run)
                                json_object_set_new(sum, "notRun", json_integer((json_int_t)out.not_run));
                        json_object_set_new(o, "summary", sum);
                        if (statuses)
                                json_object_set_new(o, "verdict", json_string(api_verdict(statuses, r->n_cases)));
                } else
                        json_decref(cases);
                free(statuses);
        }
        out.http = out.status == PYEXEC_INTERNAL_ERROR ? 500 : 200;
        *ret = out;
        return o;
}
