/* SPDX-License-Identifier: MIT */
#include "test-helpers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pyexec.h"
#include "result.h"

#define ID "0123456789abcdef0123456789abcdef"

struct fixture {
        struct pyexec_result res;
        struct pyexec_limits lim;
        json_t *j;
};

static int setup(void **state) {
        struct fixture *f = calloc(1, sizeof *f);
        if (!f)
                return -1;
        buf_init(&f->res.out, 1 << 20);
        buf_init(&f->res.err, 1 << 20);
        buf_init(&f->res.merged, 1 << 20);
        f->res.status = PYEXEC_OK;
        f->res.exit_code = 0;
        pyexec_limits_default(&f->lim);
        *state = f;
        return 0;
}

static int teardown(void **state) {
        struct fixture *f = *state;
        json_decref(f->j);
        pyexec_result_done(&f->res);
        free(f);
        return 0;
}

static json_t *to_json(struct fixture *f) {
        json_decref(f->j);
        f->j = result_to_json(&f->res, &f->lim, ID);
        assert_non_null(f->j);
        assert_true(json_is_object(f->j));
        return f->j;
}

static void assert_json_string(json_t *v, const char *want, size_t n) {
        assert_non_null(v);
        assert_true(json_is_string(v));
        if (json_string_length(v) != n || memcmp(json_string_value(v), want, n) != 0)
                fail_msg("JSON string '%s' (%zu bytes), expected %zu bytes", json_string_value(v), json_string_length(v), n);
}
#define ASSERT_JSON_STRING(v, lit) assert_json_string(v, lit, sizeof(lit) - 1)

static void test_keys_in_schema_order(void **state) {
        static const char *const keys[] = { "id",     "status", "exitCode",        "signal",  "stdout",
                                            "stderr", "output", "truncated",       "message", "time",
                                            "memory", "images", "imagesTruncated", "limits" };
        struct fixture *f = *state;
        json_t *j = to_json(f);
        char *dump;
        size_t i = 0;

        assert_int_equal(json_object_size(j), ELEMENTSOF(keys));
        for (void *it = json_object_iter(j); it; it = json_object_iter_next(j, it), i++) {
                assert_true(i < ELEMENTSOF(keys));
                assert_string_equal(json_object_iter_key(it), keys[i]);
        }
        assert_int_equal(i, ELEMENTSOF(keys));

        /* the serialised form keeps the order too */
        dump = json_dumps(j, RESULT_JSON_FLAGS);
        assert_non_null(dump);
        const char *prev = dump;
        for (i = 0; i < ELEMENTSOF(keys); i++) {
                char quoted[32];
                snprintf(quoted, sizeof quoted, "\"%s\":", keys[i]);
                const char *at = strstr(prev, quoted);
                if (!at)
                        fail_msg("key %s missing or out of order in %s", keys[i], dump);
                prev = at;
        }
        static const char head[] = "{\"id\":\"" ID "\",\"status\":\"ok\",\"exitCode\":0,\"signal\":null,";
        if (strncmp(dump, head, sizeof head - 1) != 0)
                fail_msg("dump starts %.80s", dump);
        free(dump);
}

static void test_ok_result_values(void **state) {
        struct fixture *f = *state;
        json_t *j, *t, *m;

        assert_int_equal(buf_append_str(&f->res.out, "Hello, World!\n"), 0);
        assert_int_equal(buf_append_str(&f->res.merged, "Hello, World!\n"), 0);
        f->res.wall_ms = 3.14159;
        f->res.cpu_ms = 2.25;
        f->res.peak_kb = 8120;
        j = to_json(f);
        ASSERT_JSON_STRING(json_object_get(j, "id"), ID);
        ASSERT_JSON_STRING(json_object_get(j, "status"), "ok");
        assert_true(json_is_integer(json_object_get(j, "exitCode")));
        assert_int_equal(json_integer_value(json_object_get(j, "exitCode")), 0);
        assert_true(json_is_null(json_object_get(j, "signal")));
        ASSERT_JSON_STRING(json_object_get(j, "stdout"), "Hello, World!\n");
        ASSERT_JSON_STRING(json_object_get(j, "stderr"), "");
        ASSERT_JSON_STRING(json_object_get(j, "output"), "Hello, World!\n");
        assert_true(json_is_false(json_object_get(j, "truncated")));
        assert_true(json_is_null(json_object_get(j, "message")));
        t = json_object_get(j, "time");
        assert_true(json_is_object(t));
        assert_int_equal(json_object_size(t), 2);
        /* milliseconds to one decimal */
        assert_true(fabs(json_real_value(json_object_get(t, "wallMs")) - 3.1) < 1e-9);
        assert_true(fabs(json_real_value(json_object_get(t, "cpuMs")) - 2.3) < 1e-9);
        m = json_object_get(j, "memory");
        assert_true(json_is_object(m));
        assert_int_equal(json_object_size(m), 1);
        assert_int_equal(json_integer_value(json_object_get(m, "peakKb")), 8120);
}

static void test_signalled(void **state) {
        struct fixture *f = *state;
        json_t *j;

        f->res.status = PYEXEC_TIMEOUT;
        f->res.exit_code = -1;
        f->res.signal = 9;
        f->res.message = strdup("wall-clock limit of 10000 ms exceeded");
        j = to_json(f);
        assert_true(json_is_null(json_object_get(j, "exitCode")));
        ASSERT_JSON_STRING(json_object_get(j, "signal"), "SIGKILL");
        ASSERT_JSON_STRING(json_object_get(j, "status"), "timeout");
        ASSERT_JSON_STRING(json_object_get(j, "message"), "wall-clock limit of 10000 ms exceeded");

        f->res.status = PYEXEC_RUNTIME_ERROR;
        f->res.signal = 11;
        j = to_json(f);
        ASSERT_JSON_STRING(json_object_get(j, "signal"), "SIGSEGV");
        ASSERT_JSON_STRING(json_object_get(j, "status"), "runtime_error");
        f->res.signal = 6;
        j = to_json(f);
        ASSERT_JSON_STRING(json_object_get(j, "signal"), "SIGABRT");
}

static void test_exit_codes(void **state) {
        struct fixture *f = *state;
        json_t *j;

        f->res.status = PYEXEC_RUNTIME_ERROR;
        f->res.exit_code = 3;
        j = to_json(f);
        assert_int_equal(json_integer_value(json_object_get(j, "exitCode")), 3);
        f->res.exit_code = 255;
        j = to_json(f);
        assert_int_equal(json_integer_value(json_object_get(j, "exitCode")), 255);
        f->res.exit_code = -1; /* never started */
        f->res.status = PYEXEC_INTERNAL_ERROR;
        j = to_json(f);
        assert_true(json_is_null(json_object_get(j, "exitCode")));
        assert_true(json_is_null(json_object_get(j, "signal")));
        ASSERT_JSON_STRING(json_object_get(j, "status"), "internal_error");
}

static void test_invalid_utf8_and_nul(void **state) {
        struct fixture *f = *state;
        json_t *j;
        char *dump;

        assert_int_equal(buf_append(&f->res.out, "a\xff" "b\0c", 5), 0);
        assert_int_equal(buf_append(&f->res.err, "\xc3\xa9\0", 3), 0);
        assert_int_equal(buf_append(&f->res.merged, "\xed\xa0\x80", 3), 0);
        f->res.truncated = true;
        j = to_json(f);
        ASSERT_JSON_STRING(json_object_get(j, "stdout"), "a\xef\xbf\xbd" "b\0c");
        ASSERT_JSON_STRING(json_object_get(j, "stderr"), "\xc3\xa9\0");
        ASSERT_JSON_STRING(json_object_get(j, "output"), "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
        assert_true(json_is_true(json_object_get(j, "truncated")));

        /* NUL goes out escaped, the replacement character as UTF-8 */
        dump = json_dumps(j, RESULT_JSON_FLAGS);
        assert_non_null(dump);
        assert_non_null(strstr(dump, "\"stdout\":\"a\xef\xbf\xbd" "b\\u0000c\""));
        assert_non_null(strstr(dump, "\"stderr\":\"\xc3\xa9\\u0000\""));
        free(dump);
}

static void test_limits_echo(void **state) {
        struct fixture *f = *state;
        json_t *lim;

        f->lim.timeout_ms = 2500;
        f->lim.cpu_time_ms = 1500;
        f->lim.memory_mb = 64;
        f->lim.max_output = 12345;
        f->lim.pids = 7;
        f->lim.disk_mb = 3;
        f->lim.file_size_mb = 2;
        f->lim.open_files = 99;
        lim = json_object_get(to_json(f), "limits");
        assert_true(json_is_object(lim));
        assert_int_equal(json_object_size(lim), pyexec_limit_count);
        assert_int_equal(json_integer_value(json_object_get(lim, "timeoutMs")), 2500);
        assert_int_equal(json_integer_value(json_object_get(lim, "cpuTimeMs")), 1500);
        assert_int_equal(json_integer_value(json_object_get(lim, "memoryMb")), 64);
        assert_int_equal(json_integer_value(json_object_get(lim, "maxOutput")), 12345);
        assert_int_equal(json_integer_value(json_object_get(lim, "pids")), 7);
        assert_int_equal(json_integer_value(json_object_get(lim, "diskMb")), 3);
        assert_int_equal(json_integer_value(json_object_get(lim, "fileSizeMb")), 2);
        assert_int_equal(json_integer_value(json_object_get(lim, "openFiles")), 99);
        /* the schema's first five, in its order */
        void *it = json_object_iter(lim);
        assert_string_equal(json_object_iter_key(it), "timeoutMs");
        it = json_object_iter_next(lim, it);
        assert_string_equal(json_object_iter_key(it), "cpuTimeMs");
        it = json_object_iter_next(lim, it);
        assert_string_equal(json_object_iter_key(it), "memoryMb");
        it = json_object_iter_next(lim, it);
        assert_string_equal(json_object_iter_key(it), "maxOutput");
        it = json_object_iter_next(lim, it);
        assert_string_equal(json_object_iter_key(it), "pids");
}

/* Each image as {format, width, height, data}: data the PNG's bytes in
 * padded base64, whatever their length modulo 3. */
static void test_images(void **state) {
        struct fixture *f = *state;
        struct pyexec_image im[3] = {
                { .width = 2, .height = 3, .data = strdup("\x89PNG"), .len = 4 },
                { .width = 1, .height = 1, .data = strdup("abc"), .len = 3 },
                { .width = 7, .height = 9, .data = strdup("ab"), .len = 2 },
        };
        static const char *const want[] = { "iVBORw==", "YWJj", "YWI=" };
        json_t *j, *a;

        f->res.images = im;
        f->res.n_images = 3;
        f->res.images_truncated = true;
        j = to_json(f);
        a = json_object_get(j, "images");
        assert_true(json_is_array(a));
        assert_int_equal(json_array_size(a), 3);
        for (size_t i = 0; i < 3; i++) {
                json_t *o = json_array_get(a, i);
                assert_string_equal(json_string_value(json_object_get(o, "format")), "png");
                assert_int_equal(json_integer_value(json_object_get(o, "width")), im[i].width);
                assert_int_equal(json_integer_value(json_object_get(o, "height")), im[i].height);
                assert_string_equal(json_string_value(json_object_get(o, "data")), want[i]);
        }
        assert_true(json_is_true(json_object_get(j, "imagesTruncated")));
        for (size_t i = 0; i < 3; i++)
                free(im[i].data);
        f->res.images = NULL;
        f->res.n_images = 0;
}

static void test_every_status(void **state) {
        struct fixture *f = *state;
        for (int s = 0; s < _PYEXEC_STATUS_MAX; s++) {
                f->res.status = (enum pyexec_status)s;
                json_t *v = json_object_get(to_json(f), "status");
                assert_string_equal(json_string_value(v), pyexec_status_to_string((enum pyexec_status)s));
        }
}

static void test_json_string(void **state) {
        json_t *j;

        j = result_json_string(NULL, 0);
        assert_non_null(j);
        ASSERT_JSON_STRING(j, "");
        json_decref(j);

        j = result_json_string("ok\0", 3);
        ASSERT_JSON_STRING(j, "ok\0");
        json_decref(j);

        /* the worst case: every byte replaced, three bytes each */
        j = result_json_string("\xff\xfe\xff\xfe", 4);
        ASSERT_JSON_STRING(j, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
        json_decref(j);

        j = result_json_string("\xe2\x82", 2);
        ASSERT_JSON_STRING(j, "\xef\xbf\xbd");
        json_decref(j);
}

static void test_new_id(void **state) {
        char a[RESULT_ID_LEN + 1], b[RESULT_ID_LEN + 1];

        memset(a, 'X', sizeof a);
        memset(b, 'X', sizeof b);
        result_new_id(a);
        result_new_id(b);
        assert_int_equal(strlen(a), 32);
        assert_int_equal(strlen(b), 32);
        for (int i = 0; i < 32; i++) {
                if (!((a[i] >= '0' && a[i] <= '9') || (a[i] >= 'a' && a[i] <= 'f')))
                        fail_msg("id %s: '%c' is not a lowercase hex digit", a, a[i]);
                if (!((b[i] >= '0' && b[i] <= '9') || (b[i] >= 'a' && b[i] <= 'f')))
                        fail_msg("id %s: '%c' is not a lowercase hex digit", b, b[i]);
        }
        assert_string_not_equal(a, b);

        /* every hex digit shows up across a few ids: it is not a fixed pattern */
        bool seen[16] = { 0 };
        int distinct = 0;
        for (int k = 0; k < 16; k++) {
                result_new_id(a);
                for (int i = 0; i < 32; i++) {
                        int d = a[i] <= '9' ? a[i] - '0' : a[i] - 'a' + 10;
                        if (!seen[d]) {
                                seen[d] = true;
                                distinct++;
                        }
                }
        }
        assert_int_equal(distinct, 16);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
        const struct CMUnitTest tests[] = {
                T(test_keys_in_schema_order),
                T(test_ok_result_values),
                T(test_signalled),
                T(test_exit_codes),
                T(test_invalid_utf8_and_nul),
                T(test_limits_echo),
                T(test_every_status),
                T(test_images),
                cmocka_unit_test(test_json_string),
                cmocka_unit_test(test_new_id),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
