/* SPDX-License-Identifier: MIT */
/*
 * api: the POST /api/execute contract. Every rejection is checked for its
 * exact HTTP status, error code, field and message (what the client reads),
 * and that it serialises; every acceptance for the files and limits the run
 * gets.
 */
#include "test-helpers.h"

#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "config.h"
#include "pyexec.h"
#include "util.h"

/* The service's defaults (config.c), written out: config_load() reads the
 * environment, and the tests must not depend on who runs them. */
static struct config def_cfg = {
        .policies = (char *)"education,permissive",
        .default_policy = (char *)"education",
        .execution_timeout = 10000,
        .memory_limit = 128,
        .max_output_length = 10000,
        .max_code_length = 50000,
        .max_request_size = 2097152,
        .max_tests = 50,
        .request_time_limit = 30000,
};

/* ---- helpers ---- */

static void assert_error_serialises(const struct api_error *e) {
        json_t *j, *inner;

        if (!utf8_is_valid(e->message, strlen(e->message)))
                fail_msg("error message is not valid UTF-8: %s", e->message);
        if (!utf8_is_valid(e->field, strlen(e->field)))
                fail_msg("error field is not valid UTF-8: %s", e->field);
        j = api_error_json(e);
        if (!j)
                fail_msg("api_error_json() returned NULL for message '%s'", e->message);
        inner = json_object_get(j, "error");
        assert_true(json_is_object(inner));
        assert_string_equal(json_string_value(json_object_get(inner, "code")), e->code);
        assert_string_equal(json_string_value(json_object_get(inner, "message")), e->message);
        if (e->field[0])
                assert_string_equal(json_string_value(json_object_get(inner, "field")), e->field);
        else
                assert_null(json_object_get(inner, "field"));
        json_decref(j);
}

/* Parse body[0..len) with cfg; it must be refused exactly so. The request
 * must not have been written (ret_ parameters are written only on success). */
static void expect_error_n(const struct config *cfg, const char *body, size_t len, unsigned http, const char *code,
                           const char *field, const char *message) {
        struct api_request r;
        struct api_error e;
        int rc;

        memset(&r, 0xa5, sizeof r);
        memset(&e, 0, sizeof e);
        rc = api_parse_execute(body, len, cfg, &r, &e);
        if (rc == 0) {
                api_request_done(&r);
                fail_msg("accepted, expected %u %s: %.200s", http, message, body);
        }
        assert_int_equal(rc, -EINVAL);
        for (size_t i = 0; i < sizeof r; i++)
                if (((unsigned char *)&r)[i] != 0xa5)
                        fail_msg("the request was written although parsing failed (byte %zu)", i);
        if (e.http != http || strcmp(e.code, code) != 0 || strcmp(e.field, field) != 0 ||
            strcmp(e.message, message) != 0)
                fail_msg("for %.200s\n  got      %u %s field='%s' '%s'\n  expected %u %s field='%s' '%s'", body,
                         e.http, e.code, e.field, e.message, http, code, field, message);
        assert_error_serialises(&e);
}

#define expect_error(body, http, code, field, message) \
        expect_error_n(&def_cfg, (body), strlen(body), (http), (code), (field), (message))
#define expect_400(body, field, message) expect_error((body), 400, "invalid_request", (field), (message))
#define expect_413(body, field, message) expect_error((body), 413, "payload_too_large", (field), (message))

static void parse_ok_n(const struct config *cfg, const char *body, size_t len, struct api_request *r) {
        struct api_error e = { 0 };
        int rc = api_parse_execute(body, len, cfg, r, &e);
        if (rc != 0)
                fail_msg("refused (%d): %u %s field='%s' '%s' for %.200s", rc, e.http, e.code ? e.code : "?", e.field,
                         e.message, body);
}

static void parse_ok(const char *body, struct api_request *r) {
        parse_ok_n(&def_cfg, body, strlen(body), r);
}

static void assert_file(const struct pyexec_file *f, const char *name, const char *data, size_t len) {
        assert_string_equal(f->name, name);
        assert_int_equal(f->len, len);
        assert_memory_equal(f->data, data, len);
}
#define ASSERT_FILE(f, name, lit) assert_file((f), (name), (lit), sizeof(lit) - 1)

/* A string of n copies of the UTF-8 sequence unit. */
static char *repeat(const char *unit, size_t n) {
        size_t u = strlen(unit);
        char *s = malloc(u * n + 1);
        assert_non_null(s);
        for (size_t i = 0; i < n; i++)
                memcpy(s + i * u, unit, u);
        s[u * n] = 0;
        return s;
}

/* ---- the body as a whole ---- */

static void test_body_size(void **state) {
        struct config cfg = def_cfg;
        struct api_request r;
        char msg[128];
        char *body;

        cfg.max_request_size = 1024;
        /* exactly the limit: accepted (padding is whitespace) */
        body = malloc(1026);
        assert_non_null(body);
        memset(body, ' ', 1025);
        memcpy(body, "{\"code\":\"1\"}", 12);
        body[1025] = 0;
        parse_ok_n(&cfg, body, 1024, &r);
        api_request_done(&r);
        /* one byte more: 413 before anything is parsed, no field */
        snprintf(msg, sizeof msg, "the request body is 1025 bytes; the limit is 1024");
        expect_error_n(&cfg, body, 1025, 413, "payload_too_large", "", msg);
        /* even when it is not JSON at all */
        memset(body, 0xff, 1025);
        expect_error_n(&cfg, body, 1025, 413, "payload_too_large", "", msg);
        free(body);
}

static void test_invalid_utf8(void **state) {
        static const char *const bodies[] = {
                "{\"code\":\"\xff\"}",         /* never a UTF-8 byte */
                "{\"code\":\"\xc0\xaf\"}",     /* overlong '/' */
                "{\"code\":\"\xed\xa0\x80\"}", /* surrogate */
                "{\"code\":\"\xf4\x90\x80\x80\"}", /* > U+10FFFF */
                "{\"code\":\"\x80\"}",         /* lone continuation byte */
                "{\"code\":\"1\"}\xe2\x82",    /* truncated at the end */
                "{\"c\xc3\":\"1\"}",           /* in a key */
        };
        for (size_t i = 0; i < ELEMENTSOF(bodies); i++)
                expect_400(bodies[i], "", "the request body is not valid UTF-8");
}

static void test_nesting(void **state) {
        char body[256];
        struct api_request r;

        /* 17 levels: refused without parsing */
        snprintf(body, sizeof body, "%s", "[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]");
        expect_400(body, "", "JSON nested deeper than 16 levels");
        snprintf(body, sizeof body, "{\"code\":\"1\",\"args\":[[[[[[[[[[[[[[[[{}]]]]]]]]]]]]]]]]}");
        expect_400(body, "", "JSON nested deeper than 16 levels");
        /* exactly 16: the depth check passes, the schema decides */
        snprintf(body, sizeof body, "{\"code\":\"1\",\"args\":[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]}");
        expect_400(body, "args[0]", "args[0] must be a string, got an array");
        /* brackets inside strings (escaped quotes too) are not nesting */
        parse_ok("{\"code\":\"[[[[[[[[[[[[[[[[[[[[\\\"[[[[[[[[[[[[[[[[[[[[\"}", &r);
        assert_int_equal(r.files[0].len, 41);
        api_request_done(&r);
}

/* Malformed JSON: 400, no field, "malformed JSON: " then jansson's own
 * text and the position. The wording is jansson's (and depends on the
 * decoding flags), so only the part that says what is wrong and the
 * position, as json_loadb() reports it, are checked. */
static void expect_malformed(const char *body, const char *jansson_says) {
        json_error_t jerr;
        json_t *j = json_loadb(body, strlen(body), JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
        struct api_request r;
        struct api_error e;
        char where[64];
        size_t ml, wl;

        assert_null(j);
        snprintf(where, sizeof where, " (line %d, column %d)", jerr.line, jerr.column);
        memset(&e, 0, sizeof e);
        if (api_parse_execute(body, strlen(body), &def_cfg, &r, &e) == 0) {
                api_request_done(&r);
                fail_msg("accepted, expected malformed JSON: %s", body);
        }
        assert_int_equal(e.http, 400);
        assert_string_equal(e.code, "invalid_request");
        assert_string_equal(e.field, "");
        ml = strlen(e.message);
        wl = strlen(where);
        if (strncmp(e.message, "malformed JSON: ", 16) != 0 || !strstr(e.message, jansson_says) || ml < wl ||
            strcmp(e.message + ml - wl, where) != 0)
                fail_msg("for %s: message '%s', expected 'malformed JSON: ...%s...%s'", body, e.message, jansson_says,
                         where);
        assert_error_serialises(&e);
}

static void test_malformed_json(void **state) {
        expect_malformed("", "end of file");
        expect_malformed("   \n ", "end of file");
        expect_malformed("{\"code\":\"1\"", "expected");
        expect_malformed("{\"code\":\"1\"} x", "end of file expected");
        expect_malformed("{code:1}", "string or '}' expected");
        expect_malformed("{\"code\":\"1\",}", "string");
        expect_malformed("{\"code\":\"1\",\n\"stdin\":'x'}", "invalid token");
        /* numbers the parser cannot hold */
        expect_malformed("{\"code\":\"1\",\"timeout\":18446744073709551616}", "too big integer");
        expect_malformed("{\"code\":\"1\",\"timeout\":1e999}", "real number overflow");
}

static void test_duplicate_keys(void **state) {
        expect_malformed("{\"code\":\"1\",\"code\":\"2\"}", "duplicate object key");
        expect_malformed("{\"code\":\"1\",\"files\":[{\"name\":\"a\",\"name\":\"b\",\"content\":\"\"}]}",
                         "duplicate object key");
        expect_malformed("{\"code\":\"1\",\"tests\":[{\"expectedOutput\":\"\",\"expectedOutput\":\"\"}]}",
                         "duplicate object key");
}

static void test_not_an_object(void **state) {
        expect_400("[]", "", "the request must be a JSON object, got an array");
        expect_400("[{\"code\":\"1\"}]", "", "the request must be a JSON object, got an array");
        expect_400("\"code\"", "", "the request must be a JSON object, got a string");
        expect_400("42", "", "the request must be a JSON object, got an integer");
        expect_400("null", "", "the request must be a JSON object, got null");
        expect_400("true", "", "the request must be a JSON object, got a boolean");
}

static void test_unknown_fields(void **state) {
        expect_400("{\"code\":\"1\",\"timeOut\":5}", "timeOut", "unknown field 'timeOut'");
        expect_400("{\"code\":\"1\",\"\":5}", "", "unknown field ''");
        expect_400("{\"Code\":\"1\"}", "Code", "unknown field 'Code'");
}

/* ---- code ---- */

static void test_code_type(void **state) {
        expect_400("{}", "code", "code is required");
        expect_400("{\"stdin\":\"x\"}", "code", "code is required");
        expect_400("{\"code\":123}", "code", "code must be a string, got an integer");
        expect_400("{\"code\":1.5}", "code", "code must be a string, got a number with a fraction");
        expect_400("{\"code\":null}", "code", "code must be a string, got null");
        expect_400("{\"code\":true}", "code", "code must be a string, got a boolean");
        expect_400("{\"code\":[\"print(1)\"]}", "code", "code must be a string, got an array");
        expect_400("{\"code\":{}}", "code", "code must be a string, got an object");
}

static void test_code_length_in_characters(void **state) {
        struct api_request r;
        char *code, *body;

        /* 50000 two-byte characters: 100000 bytes, within the limit */
        code = repeat("\xc3\xa9", 50000);
        body = strdup_printf("{\"code\":\"%s\"}", code);
        assert_non_null(body);
        parse_ok(body, &r);
        assert_int_equal(r.files[0].len, 100000);
        api_request_done(&r);
        free(body);
        free(code);

        /* one more character: 413 naming the field and both numbers */
        code = repeat("\xe2\x82\xac", 50001);
        body = strdup_printf("{\"code\":\"%s\"}", code);
        assert_non_null(body);
        expect_413(body, "code", "code is 50001 characters; the limit is 50000");
        free(body);
        free(code);
}

static void test_code_length_small_limit(void **state) {
        struct config cfg = def_cfg;
        struct api_request r;
        const char *ok = "{\"code\":\"12345678\"}", *over = "{\"code\":\"123456789\"}";

        cfg.max_code_length = 8;
        parse_ok_n(&cfg, ok, strlen(ok), &r);
        api_request_done(&r);
        expect_error_n(&cfg, over, strlen(over), 413, "payload_too_large", "code",
                       "code is 9 characters; the limit is 8");
        /* testCode has the same limit */
        over = "{\"code\":\"1\",\"runTests\":true,\"testCode\":\"123456789\"}";
        expect_error_n(&cfg, over, strlen(over), 413, "payload_too_large", "testCode",
                       "testCode is 9 characters; the limit is 8");
}

/* ---- limits ---- */

static void test_limit_defaults(void **state) {
        struct api_request r;
        struct pyexec_limits def;

        pyexec_limits_default(&def);
        parse_ok("{\"code\":\"print(1)\"}", &r);
        /* the service's values are the defaults */
        assert_int_equal(r.limits.timeout_ms, 10000);
        assert_int_equal(r.limits.cpu_time_ms, 10000);
        assert_int_equal(r.limits.memory_mb, 128);
        assert_int_equal(r.limits.max_output, 10000);
        /* those a request cannot set keep the library's defaults */
        assert_int_equal(r.limits.pids, def.pids);
        assert_int_equal(r.limits.disk_mb, def.disk_mb);
        assert_int_equal(r.limits.file_size_mb, def.file_size_mb);
        assert_int_equal(r.limits.open_files, def.open_files);
        api_request_done(&r);

        /* with another service configuration */
        struct config cfg = def_cfg;
        cfg.execution_timeout = 2500;
        cfg.memory_limit = 512;
        cfg.max_output_length = 77;
        parse_ok_n(&cfg, "{\"code\":\"1\"}", 12, &r);
        assert_int_equal(r.limits.timeout_ms, 2500);
        assert_int_equal(r.limits.cpu_time_ms, 2500);
        assert_int_equal(r.limits.memory_mb, 512);
        assert_int_equal(r.limits.max_output, 77);
        api_request_done(&r);
}

static void test_limit_values(void **state) {
        struct api_request r;

        parse_ok("{\"code\":\"1\",\"timeout\":5000,\"cpuTimeout\":4000,\"memoryLimit\":64,\"maxOutput\":2048}", &r);
        assert_int_equal(r.limits.timeout_ms, 5000);
        assert_int_equal(r.limits.cpu_time_ms, 4000);
        assert_int_equal(r.limits.memory_mb, 64);
        assert_int_equal(r.limits.max_output, 2048);
        api_request_done(&r);

        /* cpuTimeout defaults to timeout */
        parse_ok("{\"code\":\"1\",\"timeout\":1234}", &r);
        assert_int_equal(r.limits.timeout_ms, 1234);
        assert_int_equal(r.limits.cpu_time_ms, 1234);
        api_request_done(&r);

        /* the bounds themselves */
        parse_ok("{\"code\":\"1\",\"timeout\":1,\"cpuTimeout\":1,\"memoryLimit\":16,\"maxOutput\":1}", &r);
        assert_int_equal(r.limits.timeout_ms, 1);
        assert_int_equal(r.limits.cpu_time_ms, 1);
        assert_int_equal(r.limits.memory_mb, 16);
        assert_int_equal(r.limits.max_output, 1);
        api_request_done(&r);
        parse_ok("{\"code\":\"1\",\"timeout\":10000,\"cpuTimeout\":10000,\"memoryLimit\":128,\"maxOutput\":10000}", &r);
        assert_int_equal(r.limits.timeout_ms, 10000);
        assert_int_equal(r.limits.cpu_time_ms, 10000);
        assert_int_equal(r.limits.memory_mb, 128);
        assert_int_equal(r.limits.max_output, 10000);
        api_request_done(&r);
}

static void test_limit_range_errors(void **state) {
        expect_400("{\"code\":\"1\",\"timeout\":10001}", "timeout", "timeout must be between 1 and 10000 (ms), got 10001");
        expect_400("{\"code\":\"1\",\"timeout\":0}", "timeout", "timeout must be between 1 and 10000 (ms), got 0");
        expect_400("{\"code\":\"1\",\"timeout\":-5}", "timeout", "timeout must be between 1 and 10000 (ms), got -5");
        expect_400("{\"code\":\"1\",\"cpuTimeout\":10001}", "cpuTimeout",
                   "cpuTimeout must be between 1 and 10000 (ms), got 10001");
        expect_400("{\"code\":\"1\",\"cpuTimeout\":0}", "cpuTimeout", "cpuTimeout must be between 1 and 10000 (ms), got 0");
        expect_400("{\"code\":\"1\",\"memoryLimit\":15}", "memoryLimit",
                   "memoryLimit must be between 16 and 128 (MB), got 15");
        expect_400("{\"code\":\"1\",\"memoryLimit\":129}", "memoryLimit",
                   "memoryLimit must be between 16 and 128 (MB), got 129");
        expect_400("{\"code\":\"1\",\"maxOutput\":0}", "maxOutput", "maxOutput must be between 1 and 10000 (bytes), got 0");
        expect_400("{\"code\":\"1\",\"maxOutput\":10001}", "maxOutput",
                   "maxOutput must be between 1 and 10000 (bytes), got 10001");
        /* the extremes of a JSON integer */
        expect_400("{\"code\":\"1\",\"maxOutput\":9223372036854775807}", "maxOutput",
                   "maxOutput must be between 1 and 10000 (bytes), got 9223372036854775807");
        expect_400("{\"code\":\"1\",\"timeout\":-9223372036854775808}", "timeout",
                   "timeout must be between 1 and 10000 (ms), got -9223372036854775808");

        /* the range follows the service's configuration */
        struct config cfg = def_cfg;
        const char *body = "{\"code\":\"1\",\"timeout\":2501}";
        cfg.execution_timeout = 2500;
        expect_error_n(&cfg, body, strlen(body), 400, "invalid_request", "timeout",
                       "timeout must be between 1 and 2500 (ms), got 2501");
}

static void test_limit_type_errors(void **state) {
        expect_400("{\"code\":\"1\",\"timeout\":\"100\"}", "timeout",
                   "timeout must be a whole number between 1 and 10000 (ms), got a string");
        expect_400("{\"code\":\"1\",\"timeout\":1.5}", "timeout",
                   "timeout must be a whole number between 1 and 10000 (ms), got a number with a fraction");
        expect_400("{\"code\":\"1\",\"timeout\":1000.0}", "timeout",
                   "timeout must be a whole number between 1 and 10000 (ms), got a number with a fraction");
        expect_400("{\"code\":\"1\",\"cpuTimeout\":null}", "cpuTimeout",
                   "cpuTimeout must be a whole number between 1 and 10000 (ms), got null");
        expect_400("{\"code\":\"1\",\"memoryLimit\":[64]}", "memoryLimit",
                   "memoryLimit must be a whole number between 16 and 128 (MB), got an array");
        expect_400("{\"code\":\"1\",\"maxOutput\":true}", "maxOutput",
                   "maxOutput must be a whole number between 1 and 10000 (bytes), got a boolean");
}

/* ---- other scalar fields ---- */

static void test_stdin_and_args(void **state) {
        struct api_request r;

        parse_ok("{\"code\":\"1\",\"stdin\":\"line 1\\nline 2\\n\",\"args\":[\"-v\",\"\",\"\\u00e9\"]}", &r);
        assert_int_equal(r.stdin_len, 14);
        assert_memory_equal(r.stdin_data, "line 1\nline 2\n", 14);
        assert_int_equal(r.n_args, 3);
        assert_string_equal(r.args[0], "-v");
        assert_string_equal(r.args[1], "");
        assert_string_equal(r.args[2], "\xc3\xa9");
        api_request_done(&r);

        parse_ok("{\"code\":\"1\"}", &r);
        assert_null(r.stdin_data);
        assert_int_equal(r.stdin_len, 0);
        assert_int_equal(r.n_args, 0);
        api_request_done(&r);

        expect_400("{\"code\":\"1\",\"stdin\":5}", "stdin", "stdin must be a string, got an integer");
        expect_400("{\"code\":\"1\",\"stdin\":[\"a\"]}", "stdin", "stdin must be a string, got an array");
        expect_400("{\"code\":\"1\",\"args\":\"-v\"}", "args", "args must be an array of strings, got a string");
        expect_400("{\"code\":\"1\",\"args\":{}}", "args", "args must be an array of strings, got an object");
        expect_400("{\"code\":\"1\",\"args\":[\"a\",null]}", "args[1]", "args[1] must be a string, got null");
        expect_400("{\"code\":\"1\",\"args\":[1]}", "args[0]", "args[0] must be a string, got an integer");
}

static void test_args_count(void **state) {
        struct api_request r;
        struct buf b;

        buf_init(&b, 1 << 20);
        assert_int_equal(buf_append_str(&b, "{\"code\":\"1\",\"args\":["), 0);
        for (int i = 0; i < 256; i++)
                assert_int_equal(buf_printf(&b, "%s\"%d\"", i ? "," : "", i), 0);
        assert_int_equal(buf_append_str(&b, "]}"), 0);
        parse_ok(b.data, &r);
        assert_int_equal(r.n_args, 256);
        assert_string_equal(r.args[255], "255");
        api_request_done(&r);

        b.len -= 2;
        assert_int_equal(buf_append_str(&b, ",\"256\"]}"), 0);
        expect_400(b.data, "args", "args has 257 entries; at most 256 are allowed");
        buf_done(&b);
}

static void test_policy(void **state) {
        struct api_request r;

        parse_ok("{\"code\":\"1\",\"policy\":\"permissive\"}", &r);
        assert_non_null(r.policy_line);
        assert_true(strncmp(r.policy_line, "name=permissive;", 16) == 0);
        api_request_done(&r);
        /* No policy named: DEFAULT_POLICY. */
        parse_ok("{\"code\":\"1\"}", &r);
        assert_non_null(r.policy_line);
        assert_true(strncmp(r.policy_line, "name=education;imports=listed;writes=workdir;", 45) == 0);
        api_request_done(&r);
        parse_ok("{\"code\":\"1\",\"policy\":\"education\"}", &r);
        assert_true(strncmp(r.policy_line, "name=education;", 15) == 0);
        api_request_done(&r);
        expect_400("{\"code\":\"1\",\"policy\":\"strict\"}", "policy",
                   "policy 'strict' is not available; available: education,permissive");
        expect_400("{\"code\":\"1\",\"policy\":\"\"}", "policy",
                   "policy '' is not available; available: education,permissive");
        expect_400("{\"code\":\"1\",\"policy\":\"Permissive\"}", "policy",
                   "policy 'Permissive' is not available; available: education,permissive");
        expect_400("{\"code\":\"1\",\"policy\":1}", "policy", "policy must be a string, got an integer");
        expect_400("{\"code\":\"1\",\"policy\":null}", "policy", "policy must be a string, got null");
}

static void test_exercise_id(void **state) {
        struct api_request r;
        char *id, *body;

        parse_ok("{\"code\":\"1\",\"exerciseId\":\"rev-1\"}", &r);
        assert_true(json_is_string(r.exercise_id));
        assert_string_equal(json_string_value(r.exercise_id), "rev-1");
        api_request_done(&r);

        parse_ok("{\"code\":\"1\",\"exerciseId\":42}", &r);
        assert_true(json_is_integer(r.exercise_id));
        assert_int_equal(json_integer_value(r.exercise_id), 42);
        api_request_done(&r);

        parse_ok("{\"code\":\"1\"}", &r);
        assert_null(r.exercise_id);
        api_request_done(&r);

        /* 256 bytes: the most */
        id = repeat("x", 256);
        body = strdup_printf("{\"code\":\"1\",\"exerciseId\":\"%s\"}", id);
        parse_ok(body, &r);
        assert_int_equal(json_string_length(r.exercise_id), 256);
        api_request_done(&r);
        free(body);
        free(id);

        id = repeat("x", 257);
        body = strdup_printf("{\"code\":\"1\",\"exerciseId\":\"%s\"}", id);
        expect_400(body, "exerciseId", "exerciseId must be a string of at most 256 bytes or an integer, got a string");
        free(body);
        free(id);

        expect_400("{\"code\":\"1\",\"exerciseId\":{\"a\":1}}", "exerciseId",
                   "exerciseId must be a string of at most 256 bytes or an integer, got an object");
        expect_400("{\"code\":\"1\",\"exerciseId\":1.5}", "exerciseId",
                   "exerciseId must be a string of at most 256 bytes or an integer, got a number with a fraction");
        expect_400("{\"code\":\"1\",\"exerciseId\":null}", "exerciseId",
                   "exerciseId must be a string of at most 256 bytes or an integer, got null");
}

/* userId: 1 to 128 bytes without control characters, borrowed from the body. */
static void test_user_id(void **state) {
        struct api_request r;
        char *id, *body;

        parse_ok("{\"code\":\"1\",\"userId\":\"student-42\"}", &r);
        assert_string_equal(r.user_id, "student-42");
        api_request_done(&r);

        parse_ok("{\"code\":\"1\"}", &r);
        assert_null(r.user_id);
        api_request_done(&r);

        id = repeat("u", 128);
        body = strdup_printf("{\"code\":\"1\",\"userId\":\"%s\"}", id);
        parse_ok(body, &r);
        assert_int_equal(strlen(r.user_id), 128);
        api_request_done(&r);
        free(body);
        free(id);

        id = repeat("u", 129);
        body = strdup_printf("{\"code\":\"1\",\"userId\":\"%s\"}", id);
        expect_400(body, "userId",
                   "userId must be a string of 1 to 128 bytes without control characters, got a string of 129 bytes");
        free(body);
        free(id);
        expect_400("{\"code\":\"1\",\"userId\":\"\"}", "userId",
                   "userId must be a string of 1 to 128 bytes without control characters, got a string of 0 bytes");
        expect_400("{\"code\":\"1\",\"userId\":\"a\\nb\"}", "userId",
                   "userId must be a string of 1 to 128 bytes without control characters, got a control character");
        expect_400("{\"code\":\"1\",\"userId\":\"a\\u0000b\"}", "userId",
                   "userId must be a string of 1 to 128 bytes without control characters, got a control character");
        expect_400("{\"code\":\"1\",\"userId\":7}", "userId",
                   "userId must be a string of 1 to 128 bytes without control characters, got an integer");
}

/* ---- files ---- */

static void test_files_valid(void **state) {
        struct api_request r;

        parse_ok("{\"code\":\"print(open('data.txt').read())\",\"files\":[{\"name\":\"data.txt\",\"content\":\"hello\\n\"},"
                 "{\"content\":\"\",\"name\":\"\\u00e9t\\u00e9.py\"},{\"name\":\".hidden\",\"content\":\"x\"},"
                 "{\"name\":\"...\",\"content\":\"y\"}]}",
                 &r);
        assert_int_equal(r.n_files, 5);
        ASSERT_FILE(&r.files[0], "main.py", "print(open('data.txt').read())");
        ASSERT_FILE(&r.files[1], "data.txt", "hello\n");
        ASSERT_FILE(&r.files[2], "\xc3\xa9t\xc3\xa9.py", "");
        ASSERT_FILE(&r.files[3], ".hidden", "x");
        ASSERT_FILE(&r.files[4], "...", "y");
        assert_null(r.module_file);
        api_request_done(&r);

        parse_ok("{\"code\":\"1\",\"files\":[]}", &r);
        assert_int_equal(r.n_files, 1);
        ASSERT_FILE(&r.files[0], "main.py", "1");
        api_request_done(&r);
}

static void test_files_names(void **state) {
        static const char *const plain = "must be a plain file name (no '/', not '.' or '..', no control characters, at "
                                         "most 255 bytes)";
        static const struct {
                const char *json_name;
        } bad[] = {
                { "a/b" }, { "/etc/passwd" }, { "." }, { ".." }, { "" }, { "a\\tb" }, { "a\\nb" }, { "\\u007f" }, { "x\\u001b" },
        };
        char msg[256], body[256], *name;
        struct api_request r;

        snprintf(msg, sizeof msg, "files[0].name %s", plain);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                snprintf(body, sizeof body, "{\"code\":\"1\",\"files\":[{\"name\":\"%s\",\"content\":\"\"}]}",
                         bad[i].json_name);
                expect_400(body, "files[0].name", msg);
        }
        /* the index names the entry */
        snprintf(msg, sizeof msg, "files[1].name %s", plain);
        expect_400("{\"code\":\"1\",\"files\":[{\"name\":\"ok\",\"content\":\"\"},{\"name\":\"..\",\"content\":\"\"}]}",
                   "files[1].name", msg);

        /* 255 bytes: the most */
        name = repeat("n", 255);
        char *b2 = strdup_printf("{\"code\":\"1\",\"files\":[{\"name\":\"%s\",\"content\":\"\"}]}", name);
        parse_ok(b2, &r);
        assert_int_equal(strlen(r.files[1].name), 255);
        api_request_done(&r);
        free(b2);
        free(name);
}

/* Names and arguments past their byte limit are invalid requests (400),
 * not payloads too large: 413 is for code and the body. */
static void test_names_too_long_are_400(void **state) {
        char *name = repeat("n", 256);
        char *body = strdup_printf("{\"code\":\"1\",\"files\":[{\"name\":\"%s\",\"content\":\"\"}]}", name);

        expect_400(body, "files[0].name", "files[0].name must be at most 255 bytes, got 256");
        free(body);
        free(name);

        name = repeat("m", 65);
        body = strdup_printf("{\"code\":\"1\",\"runTests\":true,\"testCode\":\"x\",\"moduleName\":\"%s\"}", name);
        expect_400(body, "moduleName", "moduleName must be at most 64 bytes, got 65");
        free(body);
        body = strdup_printf("{\"code\":\"1\",\"policy\":\"%s\"}", name);
        expect_400(body, "policy", "policy must be at most 64 bytes, got 65");
        free(body);
        free(name);

        name = repeat("t", 257);
        body = strdup_printf("{\"code\":\"1\",\"tests\":[{\"name\":\"%s\",\"expectedOutput\":\"\"}]}", name);
        expect_400(body, "tests[0].name", "tests[0].name must be at most 256 bytes, got 257");
        free(body);
        free(name);

        name = repeat("a", 65537);
        body = strdup_printf("{\"code\":\"1\",\"args\":[\"x\",\"%s\"]}", name);
        expect_400(body, "args[1]", "args[1] must be at most 65536 bytes, got 65537");
        free(body);
        free(name);

        /* the limits themselves are fine */
        struct api_request r;
        name = repeat("a", 65536);
        body = strdup_printf("{\"code\":\"1\",\"args\":[\"%s\"],\"tests\":[{\"name\":\"%.256s\",\"expectedOutput\":\"\"}]}",
                             name, name);
        parse_ok(body, &r);
        assert_int_equal(strlen(r.args[0]), 65536);
        assert_int_equal(strlen(r.cases[0].name), 256);
        api_request_done(&r);
        free(body);
        free(name);
}

static void test_files_duplicates(void **state) {
        expect_400("{\"code\":\"1\",\"files\":[{\"name\":\"main.py\",\"content\":\"\"}]}", "files[0].name",
                   "files[0].name 'main.py' is already used (by the program or another file)");
        expect_400("{\"code\":\"1\",\"files\":[{\"name\":\"a.txt\",\"content\":\"\"},{\"name\":\"a.txt\",\"content\":\"x\"}]}",
                   "files[1].name", "files[1].name 'a.txt' is already used (by the program or another file)");
        /* with runTests the module's file is taken too */
        expect_400("{\"code\":\"1\",\"runTests\":true,\"testCode\":\"2\",\"files\":[{\"name\":\"starter.py\",\"content\":\"\"}]}",
                   "files[0].name", "files[0].name 'starter.py' is already used (by the program or another file)");
        expect_400("{\"code\":\"1\",\"runTests\":true,\"testCode\":\"2\",\"moduleName\":\"sol\",\"files\":[{\"name\":\"sol.py\","
                   "\"content\":\"\"}]}",
                   "files[0].name", "files[0].name 'sol.py' is already used (by the program or another file)");
        /* names are compared exactly: case matters */
        struct api_request r;
        parse_ok("{\"code\":\"1\",\"files\":[{\"name\":\"Main.py\",\"content\":\"\"},{\"name\":\"a\",\"content\":\"\"},"
                 "{\"name\":\"A\",\"content\":\"\"}]}",
                 &r);
        assert_int_equal(r.n_files, 4);
        api_request_done(&r);
}

static void test_files_shape(void **state) {
        expect_400("{\"code\":\"1\",\"files\":{\"name\":\"a\",\"content\":\"\"}}", "files",
                   "files must be an array of {name, content}, got an object");
        expect_400("{\"code\":\"1\",\"files\":\"a\"}", "files", "files must be an array of {name, content}, got a string");
        expect_400("{\"code\":\"1\",\"files\":[\"a\"]}", "files[0]", "files[0] must be an object {name, content}, got a string");
        expect_400("{\"code\":\"1\",\"files\":[{\"name\":\"a\",\"content\":\"\",\"mode\":\"0755\"}]}", "files[0].mode",
                   "unknown field 'mode' in files[0]");
        expect_400("{\"code\":\"1\",\"files\":[{\"content\":\"\"}]}", "files[0].name", "files[0].name is required");
        expect_400("{\"code\":\"1\",\"files\":[{\"name\":\"a\"}]}", "files[0].content",
                   "files[0].content (or contentBase64) is required");
        expect_400("{\"code\":\"1\",\"files\":[{\"name\":5,\"content\":\"\"}]}", "files[0].name",
                   "files[0].name must be a string, got an integer");
        expect_400("{\"code\":\"1\",\"files\":[{\"name\":\"a\",\"content\":null}]}", "files[0].content",
                   "files[0].content must be a string, got null");
}

static void test_files_count_and_size(void **state) {
        struct api_request r;
        struct buf b;
        struct config cfg = def_cfg;
        char *content, *body, msg[160];

        buf_init(&b, 1 << 20);
        assert_int_equal(buf_append_str(&b, "{\"code\":\"1\",\"files\":["), 0);
        for (int i = 0; i < 64; i++)
                assert_int_equal(buf_printf(&b, "%s{\"name\":\"f%d\",\"content\":\"%d\"}", i ? "," : "", i, i), 0);
        assert_int_equal(buf_append_str(&b, "]}"), 0);
        parse_ok(b.data, &r);
        assert_int_equal(r.n_files, 65);
        ASSERT_FILE(&r.files[64], "f63", "63");
        api_request_done(&r);
        b.len -= 2;
        assert_int_equal(buf_append_str(&b, ",{\"name\":\"f64\",\"content\":\"\"}]}"), 0);
        expect_400(b.data, "files", "files has 65 entries; at most 64 are allowed");
        buf_done(&b);

        /* The work directory (diskMb, 32 MB) must hold the program and the
         * files, each counted with 4096 bytes of overhead. */
        cfg.max_request_size = 64 << 20;
        content = repeat("x", 32 * 1024 * 1024 - 3 * 4096 - 1);
        body = strdup_printf("{\"code\":\"1\",\"files\":[{\"name\":\"a\",\"content\":\"%s\"},{\"name\":\"b\",\"content\":\"\"}]}",
                             content);
        parse_ok_n(&cfg, body, strlen(body), &r); /* 1 + 4096 + (32 MiB - 3*4096 - 1) + 4096 + 0 + 4096 */
        api_request_done(&r);
        free(body);
        body = strdup_printf("{\"code\":\"12\",\"files\":[{\"name\":\"a\",\"content\":\"%s\"},{\"name\":\"b\",\"content\":\"\"}]}",
                             content);
        snprintf(msg, sizeof msg, "the program and its files take %llu bytes; the work directory holds 32 MB",
                 32ull * 1024 * 1024 + 1);
        expect_error_n(&cfg, body, strlen(body), 413, "payload_too_large", "files", msg);
        free(body);
        free(content);
}

/* ---- runTests ---- */

#define IDENT_MSG "moduleName must be a Python identifier of at most 64 characters other than 'main', got '%s'"

static void test_run_tests_files(void **state) {
        struct api_request r;

        parse_ok("{\"code\":\"def add(a, b): return a + b\",\"runTests\":true,\"testCode\":\"from starter import add\"}", &r);
        assert_int_equal(r.n_files, 2);
        ASSERT_FILE(&r.files[0], "main.py", "from starter import add");
        ASSERT_FILE(&r.files[1], "starter.py", "def add(a, b): return a + b");
        assert_string_equal(r.module_file, "starter.py");
        api_request_done(&r);

        parse_ok("{\"code\":\"X = 1\",\"runTests\":true,\"testCode\":\"import solution\",\"moduleName\":\"solution\","
                 "\"files\":[{\"name\":\"data\",\"content\":\"d\"}]}",
                 &r);
        assert_int_equal(r.n_files, 3);
        ASSERT_FILE(&r.files[0], "main.py", "import solution");
        ASSERT_FILE(&r.files[1], "solution.py", "X = 1");
        ASSERT_FILE(&r.files[2], "data", "d");
        assert_string_equal(r.module_file, "solution.py");
        api_request_done(&r);

        /* runTests false: as if absent */
        parse_ok("{\"code\":\"1\",\"runTests\":false}", &r);
        assert_int_equal(r.n_files, 1);
        ASSERT_FILE(&r.files[0], "main.py", "1");
        assert_null(r.module_file);
        api_request_done(&r);

        /* identifiers: underscore, digits after the first, 64 characters */
        parse_ok("{\"code\":\"1\",\"runTests\":true,\"testCode\":\"2\",\"moduleName\":\"_m0\"}", &r);
        assert_string_equal(r.module_file, "_m0.py");
        api_request_done(&r);
        char *name = repeat("m", 64);
        char *body = strdup_printf("{\"code\":\"1\",\"runTests\":true,\"testCode\":\"2\",\"moduleName\":\"%s\"}", name);
        parse_ok(body, &r);
        assert_int_equal(strlen(r.module_file), 67);
        api_request_done(&r);
        free(body);
        free(name);
}

static void test_run_tests_errors(void **state) {
        static const char *const bad[] = { "main", "1abc", "a-b", "", "a.b", "caf\xc3\xa9", "a b" };
        char msg[256], body[256];

        expect_400("{\"code\":\"1\",\"runTests\":\"true\",\"testCode\":\"x\"}", "runTests",
                   "runTests must be a boolean, got a string");
        expect_400("{\"code\":\"1\",\"runTests\":1}", "runTests", "runTests must be a boolean, got an integer");
        expect_400("{\"code\":\"1\",\"runTests\":true}", "testCode", "testCode is required when runTests is true");
        expect_400("{\"code\":\"1\",\"runTests\":true,\"testCode\":1}", "testCode", "testCode must be a string, got an integer");
        expect_400("{\"code\":\"1\",\"runTests\":true,\"testCode\":\"x\",\"moduleName\":5}", "moduleName",
                   "moduleName must be a string, got an integer");
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                snprintf(body, sizeof body, "{\"code\":\"1\",\"runTests\":true,\"testCode\":\"x\",\"moduleName\":\"%s\"}",
                         bad[i]);
                snprintf(msg, sizeof msg, IDENT_MSG, bad[i]);
                expect_400(body, "moduleName", msg);
        }
        /* testCode and moduleName mean nothing without runTests */
        expect_400("{\"code\":\"1\",\"testCode\":\"x\"}", "testCode", "testCode needs runTests: true");
        expect_400("{\"code\":\"1\",\"moduleName\":\"m\"}", "moduleName", "moduleName needs runTests: true");
        expect_400("{\"code\":\"1\",\"runTests\":false,\"testCode\":\"x\",\"moduleName\":\"m\"}", "testCode",
                   "testCode needs runTests: true");
}

/* ---- tests (graded cases) ---- */

static void test_cases_valid(void **state) {
        struct api_request r;

        parse_ok("{\"code\":\"print(int(input()) * 2)\",\"args\":[\"top\"],\"tests\":["
                 "{\"name\":\"two\",\"stdin\":\"2\\n\",\"expectedOutput\":\"4\\n\"},"
                 "{\"stdin\":\"5\",\"args\":[\"a\",\"b\"],\"expectedOutput\":\"10\"},"
                 "{\"expectedOutput\":\"\"}]}",
                 &r);
        assert_int_equal(r.n_cases, 3);
        assert_string_equal(r.cases[0].name, "two");
        assert_int_equal(r.cases[0].stdin_len, 2);
        assert_memory_equal(r.cases[0].stdin_data, "2\n", 2);
        assert_int_equal(r.cases[0].expected_len, 2);
        assert_memory_equal(r.cases[0].expected, "4\n", 2);
        assert_int_equal(r.cases[0].n_args, 0);
        /* unnamed cases are numbered from 1 */
        assert_string_equal(r.cases[1].name, "test 2");
        assert_int_equal(r.cases[1].n_args, 2);
        assert_string_equal(r.cases[1].args[0], "a");
        assert_string_equal(r.cases[1].args[1], "b");
        assert_string_equal(r.cases[2].name, "test 3");
        assert_int_equal(r.cases[2].expected_len, 0);
        assert_null(r.cases[2].stdin_data);
        /* the top-level args stay for cases without their own */
        assert_int_equal(r.n_args, 1);
        api_request_done(&r);
}

static void test_cases_errors(void **state) {
        static const char *const nonempty = "tests must be a non-empty array of {name, stdin, args, expectedOutput}";

        expect_400("{\"code\":\"1\",\"tests\":[]}", "tests", nonempty);
        expect_400("{\"code\":\"1\",\"tests\":{}}", "tests", nonempty);
        expect_400("{\"code\":\"1\",\"tests\":\"x\"}", "tests", nonempty);
        expect_400("{\"code\":\"1\",\"tests\":[5]}", "tests[0]", "tests[0] must be an object, got an integer");
        expect_400("{\"code\":\"1\",\"tests\":[{\"expectedOutput\":\"\"},[]]}", "tests[1]",
                   "tests[1] must be an object, got an array");
        expect_400("{\"code\":\"1\",\"tests\":[{\"expectedOutput\":\"\",\"expected\":\"\"}]}", "tests[0].expected",
                   "unknown field 'expected' in tests[0]");
        expect_400("{\"code\":\"1\",\"tests\":[{\"name\":\"t\",\"stdin\":\"x\"}]}", "tests[0].expectedOutput",
                   "tests[0].expectedOutput is required");
        expect_400("{\"code\":\"1\",\"tests\":[{\"expectedOutput\":5}]}", "tests[0].expectedOutput",
                   "tests[0].expectedOutput must be a string, got an integer");
        expect_400("{\"code\":\"1\",\"tests\":[{\"name\":5,\"expectedOutput\":\"\"}]}", "tests[0].name",
                   "tests[0].name must be a string, got an integer");
        expect_400("{\"code\":\"1\",\"tests\":[{\"expectedOutput\":\"\"},{\"stdin\":5,\"expectedOutput\":\"\"}]}",
                   "tests[1].stdin", "tests[1].stdin must be a string, got an integer");
        expect_400("{\"code\":\"1\",\"tests\":[{\"args\":\"a b\",\"expectedOutput\":\"\"}]}", "tests[0].args",
                   "tests[0].args must be an array of strings, got a string");
        expect_400("{\"code\":\"1\",\"tests\":[{\"args\":[\"a\",1],\"expectedOutput\":\"\"}]}", "tests[0].args[1]",
                   "tests[0].args[1] must be a string, got an integer");
}

static void test_cases_count(void **state) {
        struct api_request r;
        struct buf b;
        struct config cfg = def_cfg;
        const char *three = "{\"code\":\"1\",\"tests\":[{\"expectedOutput\":\"\"},{\"expectedOutput\":\"\"},"
                            "{\"expectedOutput\":\"\"}]}";

        buf_init(&b, 1 << 20);
        assert_int_equal(buf_append_str(&b, "{\"code\":\"1\",\"tests\":["), 0);
        for (int i = 0; i < 50; i++)
                assert_int_equal(buf_printf(&b, "%s{\"expectedOutput\":\"%d\"}", i ? "," : "", i), 0);
        assert_int_equal(buf_append_str(&b, "]}"), 0);
        parse_ok(b.data, &r);
        assert_int_equal(r.n_cases, 50);
        assert_string_equal(r.cases[49].name, "test 50");
        api_request_done(&r);
        b.len -= 2;
        assert_int_equal(buf_append_str(&b, ",{\"expectedOutput\":\"\"}]}"), 0);
        expect_400(b.data, "tests", "tests has 51 cases; at most 50 are allowed");
        buf_done(&b);

        cfg.max_tests = 2;
        expect_error_n(&cfg, three, strlen(three), 400, "invalid_request", "tests",
                       "tests has 3 cases; at most 2 are allowed");
}

/* ---- the request's total time ---- */

static void test_total_timeout(void **state) {
        struct api_request r;
        struct config cfg = def_cfg;
        const char *one = "{\"code\":\"1\",\"tests\":[{\"expectedOutput\":\"\"}]";
        char body[256];

        /* REQUEST_TIME_LIMIT by default */
        snprintf(body, sizeof body, "%s}", one);
        parse_ok(body, &r);
        assert_int_equal(r.total_ms, 30000);
        api_request_done(&r);
        cfg.request_time_limit = 0; /* not loaded: the documented default */
        parse_ok_n(&cfg, body, strlen(body), &r);
        assert_int_equal(r.total_ms, 3 * 10000);
        api_request_done(&r);

        /* a request may ask for less, down to 1 ms, and less than its timeout */
        snprintf(body, sizeof body, "%s,\"totalTimeout\":1,\"timeout\":5000}", one);
        parse_ok(body, &r);
        assert_int_equal(r.total_ms, 1);
        assert_int_equal(r.limits.timeout_ms, 5000);
        api_request_done(&r);
        snprintf(body, sizeof body, "%s,\"totalTimeout\":30000}", one);
        parse_ok(body, &r);
        assert_int_equal(r.total_ms, 30000);
        api_request_done(&r);

        /* never more than the service's limit */
        snprintf(body, sizeof body, "%s,\"totalTimeout\":30001}", one);
        expect_400(body, "totalTimeout", "totalTimeout must be between 1 and 30000 (ms), got 30001");
        snprintf(body, sizeof body, "%s,\"totalTimeout\":0}", one);
        expect_400(body, "totalTimeout", "totalTimeout must be between 1 and 30000 (ms), got 0");
        snprintf(body, sizeof body, "%s,\"totalTimeout\":\"5s\"}", one);
        expect_400(body, "totalTimeout",
                   "totalTimeout must be a whole number between 1 and 30000 (ms), got a string");
        cfg.request_time_limit = 4000;
        snprintf(body, sizeof body, "%s,\"totalTimeout\":4001}", one);
        expect_error_n(&cfg, body, strlen(body), 400, "invalid_request", "totalTimeout",
                       "totalTimeout must be between 1 and 4000 (ms), got 4001");

        /* it bounds test cases: a single run has its timeout */
        expect_400("{\"code\":\"1\",\"totalTimeout\":1000}", "totalTimeout",
                   "totalTimeout bounds the test cases together: it needs tests");
}

/* The next case's wall-clock limit: its own, cut to what is left. */
static void test_case_timeout(void **state) {
        const uint64_t ms = 1000000, t0 = 5000 * ms;

        /* plenty left: the case's own */
        assert_int_equal(api_case_timeout(10000, t0, 30000, t0), 10000);
        assert_int_equal(api_case_timeout(10000, t0, 30000, t0 + 20000 * ms), 10000);
        /* less left than the case's own: what is left, whole ms down */
        assert_int_equal(api_case_timeout(10000, t0, 30000, t0 + 20000 * ms + 1), 9999);
        assert_int_equal(api_case_timeout(10000, t0, 30000, t0 + 29999 * ms), 1);
        /* under 1 ms left, or none, or past it: not run */
        assert_int_equal(api_case_timeout(10000, t0, 30000, t0 + 29999 * ms + 1), 0);
        assert_int_equal(api_case_timeout(10000, t0, 30000, t0 + 30000 * ms), 0);
        assert_int_equal(api_case_timeout(10000, t0, 30000, t0 + 90000 * ms), 0);
        /* a budget below the timeout cuts even the first case */
        assert_int_equal(api_case_timeout(10000, t0, 1, t0), 1);
        /* the largest values config and requests allow do not overflow */
        assert_int_equal(api_case_timeout(600000, t0, 3600000, t0), 600000);
        assert_int_equal(api_case_timeout(600000, t0, 3600000, t0 + 3599999 * ms), 1);
}

/* ---- bugs the fuzzer found: what the client must get ---- */

/* Error messages quote the client's input; cut at a byte limit they must
 * still be valid UTF-8, or api_error_json() cannot build the error and the
 * server closes the connection without an answer. */
static void expect_400_serialises(const char *body, size_t len, const char *message_prefix) {
        struct api_request r;
        struct api_error e;

        memset(&e, 0, sizeof e);
        assert_int_equal(api_parse_execute(body, len, &def_cfg, &r, &e), -EINVAL);
        assert_int_equal(e.http, 400);
        assert_string_equal(e.code, "invalid_request");
        if (strncmp(e.message, message_prefix, strlen(message_prefix)) != 0)
                fail_msg("message '%s', expected it to start with '%s'", e.message, message_prefix);
        assert_error_serialises(&e);
}

/* jansson quotes the bytes near a bad \u escape and cuts a two-byte
 * character in half: "\u" then U+0460 */
static void test_error_utf8_bad_escape(void **state) {
        static const char body[] = "{\"code\":\"\\u\xd1\xa0\"}";
        expect_400_serialises(body, sizeof body - 1, "malformed JSON: invalid escape");
}

/* an unknown field of 89 ASCII bytes then 'é': the field and the message
 * quote it cut at 90 bytes, inside the 'é' */
static void test_error_utf8_unknown_field(void **state) {
        char key[128], body[512];

        memset(key, 'k', 89);
        memcpy(key + 89, "\xc3\xa9", 3);
        snprintf(body, sizeof body, "{\"code\":\"1\",\"%s\":1}", key);
        expect_400_serialises(body, strlen(body), "unknown field '");
}

/* the same in files[]: the field is cut at 40 bytes of the key */
static void test_error_utf8_unknown_file_field(void **state) {
        char key[128], body[512];

        memset(key, 'k', 39);
        memcpy(key + 39, "\xe2\x82\xac", 4);
        snprintf(body, sizeof body, "{\"code\":\"1\",\"files\":[{\"name\":\"a\",\"content\":\"\",\"%s\":1}]}", key);
        expect_400_serialises(body, strlen(body), "unknown field '");
        /* and in tests[] */
        snprintf(body, sizeof body, "{\"code\":\"1\",\"tests\":[{\"expectedOutput\":\"\",\"%s\":1}]}", key);
        expect_400_serialises(body, strlen(body), "unknown field '");
}

/* JSON strings may hold U+0000 ("\u0000"). Data (code, stdin, file
 * contents, expected output) keeps it; strings that become C strings
 * (file names, args, moduleName, policy) refuse it with a message naming
 * the field (want_cstring), rather than the whole body being "malformed
 * JSON" with a message about a jansson flag. */
static void test_nul_in_strings(void **state) {
        struct api_request r;

        parse_ok("{\"code\":\"print(1)\",\"stdin\":\"a\\u0000b\",\"files\":[{\"name\":\"bin\",\"content\":\"\\u0000\\u0001\"}],"
                 "\"tests\":[{\"expectedOutput\":\"x\\u0000\"}]}",
                 &r);
        assert_int_equal(r.stdin_len, 3);
        assert_memory_equal(r.stdin_data, "a\0b", 3);
        ASSERT_FILE(&r.files[1], "bin", "\0\1");
        assert_int_equal(r.cases[0].expected_len, 2);
        api_request_done(&r);

        expect_400("{\"code\":\"1\",\"files\":[{\"name\":\"a\\u0000b\",\"content\":\"\"}]}", "files[0].name",
                   "files[0].name must not contain NUL characters");
        expect_400("{\"code\":\"1\",\"args\":[\"a\\u0000\"]}", "args[0]", "args[0] must not contain NUL characters");
        expect_400("{\"code\":\"1\",\"tests\":[{\"args\":[\"\\u0000\"],\"expectedOutput\":\"\"}]}", "tests[0].args[0]",
                   "tests[0].args[0] must not contain NUL characters");
        expect_400("{\"code\":\"1\",\"tests\":[{\"name\":\"a\\u0000\",\"expectedOutput\":\"\"}]}", "tests[0].name",
                   "tests[0].name must not contain NUL characters");
        expect_400("{\"code\":\"1\",\"runTests\":true,\"testCode\":\"x\",\"moduleName\":\"m\\u0000\"}", "moduleName",
                   "moduleName must not contain NUL characters");
        expect_400("{\"code\":\"1\",\"policy\":\"permissive\\u0000\"}", "policy", "policy must not contain NUL characters");
        expect_400("{\"code\":\"1\",\"exerciseId\":\"a\\u0000b\"}", "exerciseId",
                   "exerciseId must be a string of at most 256 bytes or an integer, got a string");
        /* code and testCode are data */
        parse_ok("{\"code\":\"a\\u0000\",\"runTests\":true,\"testCode\":\"\\u0000b\"}", &r);
        ASSERT_FILE(&r.files[0], "main.py", "\0b");
        ASSERT_FILE(&r.files[1], "starter.py", "a\0");
        api_request_done(&r);
}

/* ---- output normalisation ---- */

static void assert_normalized(const char *in, size_t n, const char *want) {
        size_t len = 12345;
        char *got = api_normalize_output(in, n, &len);
        assert_non_null(got);
        if (len != strlen(want) || memcmp(got, want, len) != 0)
                fail_msg("normalize('%.*s') = '%.*s' (%zu bytes), expected '%s'", (int)n, in, (int)len, got, len, want);
        assert_int_equal(got[len], 0);
        free(got);
}
#define ASSERT_NORMALIZED(in, want) assert_normalized((in), sizeof(in) - 1, (want))

static void test_normalize_output(void **state) {
        ASSERT_NORMALIZED("a  \nb\t\n\n\n", "a\nb");
        ASSERT_NORMALIZED("a\r\nb\r\n", "a\nb");
        ASSERT_NORMALIZED("", "");
        ASSERT_NORMALIZED(" \t \n\n \r\n\f\v", "");
        ASSERT_NORMALIZED("\n\n\n", "");
        ASSERT_NORMALIZED("abc", "abc");
        /* leading whitespace and blank lines in the middle stay */
        ASSERT_NORMALIZED("  a\n\n  b  \n", "  a\n\n  b");
        ASSERT_NORMALIZED("\n\na", "\n\na");
        /* a lone CR in a line is not at its end */
        ASSERT_NORMALIZED("a\rb\n", "a\rb");
}

static void test_normalize_output_nul(void **state) {
        size_t len;
        char *got = api_normalize_output("x\0y \n\n", 6, &len);
        assert_non_null(got);
        assert_int_equal(len, 3);
        assert_memory_equal(got, "x\0y", 4);
        free(got);
}

/* ---- a wrong answer's first difference, the verdict ---- */

static void assert_difference(const char *want, const char *got, const char *json) {
        json_t *d = api_first_difference(want, strlen(want), got, strlen(got));
        char *text = d ? json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
        if (!json ? text != NULL : !text || strcmp(text, json) != 0)
                fail_msg("difference('%s', '%s') = %s, expected %s", want, got, text ? text : "NULL",
                         json ? json : "NULL");
        free(text);
        json_decref(d);
}

static void test_first_difference(void **state) {
        assert_difference("4", "4", NULL);
        assert_difference("", "", NULL);
        assert_difference("4", "9", "{\"actual\":\"9\",\"expected\":\"4\",\"line\":1}");
        assert_difference("a\nb\nc", "a\nx\nc", "{\"actual\":\"x\",\"expected\":\"b\",\"line\":2}");
        /* A line cut short, and one longer. */
        assert_difference("a\nbcd", "a\nbc", "{\"actual\":\"bc\",\"expected\":\"bcd\",\"line\":2}");
        assert_difference("a\nbc", "a\nbcd\ne", "{\"actual\":\"bcd\",\"expected\":\"bc\",\"line\":2}");
        /* One side has fewer lines: null where it has none. */
        assert_difference("a\nb", "a", "{\"actual\":null,\"expected\":\"b\",\"line\":2}");
        assert_difference("a", "a\nb", "{\"actual\":\"b\",\"expected\":null,\"line\":2}");
        assert_difference("", "x", "{\"actual\":\"x\",\"expected\":null,\"line\":1}");
        assert_difference("x", "", "{\"actual\":null,\"expected\":\"x\",\"line\":1}");
        /* Blank lines count. */
        assert_difference("a\n\nb", "a\nb", "{\"actual\":\"b\",\"expected\":\"\",\"line\":2}");
        assert_difference("\nx", "", "{\"actual\":null,\"expected\":\"\",\"line\":1}");
        /* Long lines are cut. */
        char want[600], got[600];
        memset(want, 'w', 500);
        want[500] = 0;
        memcpy(got, want, 501);
        got[400] = 'g';
        json_t *d = api_first_difference(want, 500, got, 500);
        assert_non_null(d);
        assert_int_equal(strlen(json_string_value(json_object_get(d, "expected"))), API_DIFF_LINE_MAX);
        assert_int_equal(strlen(json_string_value(json_object_get(d, "actual"))), API_DIFF_LINE_MAX);
        json_decref(d);
}

static void test_verdict(void **state) {
        const char *all[] = { "passed", "passed" }, *wrong[] = { "passed", "failed", "runtime_error" },
                   *crash[] = { "passed", "timeout", "failed" }, *cut[] = { "passed", "not_run" };
        assert_string_equal(api_verdict(all, 2), "accepted");
        assert_string_equal(api_verdict(wrong, 3), "wrong_answer");
        assert_string_equal(api_verdict(crash, 3), "timeout");
        assert_string_equal(api_verdict(cut, 2), "not_run");
        assert_string_equal(api_verdict(all, 0), "accepted");
}

/* ---- error objects ---- */

static void test_error_json(void **state) {
        struct api_error e;
        json_t *j, *inner;
        char *s;

        api_error_set(&e, 400, "invalid_request", "timeout", "timeout must be between %d and %d (ms), got %d", 1, 10, 11);
        assert_int_equal(e.http, 400);
        assert_string_equal(e.field, "timeout");
        assert_string_equal(e.message, "timeout must be between 1 and 10 (ms), got 11");
        j = api_error_json(&e);
        assert_non_null(j);
        assert_int_equal(json_object_size(j), 1);
        inner = json_object_get(j, "error");
        assert_true(json_is_object(inner));
        assert_int_equal(json_object_size(inner), 3);
        assert_string_equal(json_string_value(json_object_get(inner, "code")), "invalid_request");
        assert_string_equal(json_string_value(json_object_get(inner, "message")),
                            "timeout must be between 1 and 10 (ms), got 11");
        assert_string_equal(json_string_value(json_object_get(inner, "field")), "timeout");
        s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
        assert_string_equal(s, "{\"error\":{\"code\":\"invalid_request\",\"field\":\"timeout\",\"message\":\"timeout must "
                               "be between 1 and 10 (ms), got 11\"}}");
        free(s);
        json_decref(j);

        /* no field: no "field" key */
        api_error_set(&e, 413, "payload_too_large", NULL, "too big");
        assert_string_equal(e.field, "");
        j = api_error_json(&e);
        assert_non_null(j);
        inner = json_object_get(j, "error");
        assert_int_equal(json_object_size(inner), 2);
        assert_null(json_object_get(inner, "field"));
        json_decref(j);

        /* messages are capped, never overflow */
        char *big = repeat("m", 2000);
        api_error_set(&e, 400, "invalid_request", big, "%s", big);
        assert_int_equal(strlen(e.message), sizeof e.message - 1);
        assert_int_equal(strlen(e.field), sizeof e.field - 1);
        free(big);
}

int main(void) {
        char err[256];
        if (config_build_policies(&def_cfg, err, sizeof err) < 0) {
                fprintf(stderr, "config_build_policies: %s\n", err);
                return 1;
        }
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_body_size),
                cmocka_unit_test(test_invalid_utf8),
                cmocka_unit_test(test_nesting),
                cmocka_unit_test(test_malformed_json),
                cmocka_unit_test(test_duplicate_keys),
                cmocka_unit_test(test_not_an_object),
                cmocka_unit_test(test_unknown_fields),
                cmocka_unit_test(test_code_type),
                cmocka_unit_test(test_code_length_in_characters),
                cmocka_unit_test(test_code_length_small_limit),
                cmocka_unit_test(test_limit_defaults),
                cmocka_unit_test(test_limit_values),
                cmocka_unit_test(test_limit_range_errors),
                cmocka_unit_test(test_limit_type_errors),
                cmocka_unit_test(test_stdin_and_args),
                cmocka_unit_test(test_args_count),
                cmocka_unit_test(test_policy),
                cmocka_unit_test(test_exercise_id),
                cmocka_unit_test(test_user_id),
                cmocka_unit_test(test_files_valid),
                cmocka_unit_test(test_files_names),
                cmocka_unit_test(test_names_too_long_are_400),
                cmocka_unit_test(test_files_duplicates),
                cmocka_unit_test(test_files_shape),
                cmocka_unit_test(test_files_count_and_size),
                cmocka_unit_test(test_run_tests_files),
                cmocka_unit_test(test_run_tests_errors),
                cmocka_unit_test(test_cases_valid),
                cmocka_unit_test(test_cases_errors),
                cmocka_unit_test(test_cases_count),
                cmocka_unit_test(test_total_timeout),
                cmocka_unit_test(test_case_timeout),
                cmocka_unit_test(test_error_utf8_bad_escape),
                cmocka_unit_test(test_error_utf8_unknown_field),
                cmocka_unit_test(test_error_utf8_unknown_file_field),
                cmocka_unit_test(test_nul_in_strings),
                cmocka_unit_test(test_normalize_output),
                cmocka_unit_test(test_normalize_output_nul),
                cmocka_unit_test(test_first_difference),
                cmocka_unit_test(test_verdict),
                cmocka_unit_test(test_error_json),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
