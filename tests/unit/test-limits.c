/* SPDX-License-Identifier: MIT */
#include "test-helpers.h"

#include <string.h>

#include "pyexec.h"

static void test_defaults_are_documented(void **state) {
        struct pyexec_limits l;
        memset(&l, 0xff, sizeof l);
        pyexec_limits_default(&l);
        /* docs/api.md and the original service's environment defaults */
        assert_int_equal(l.timeout_ms, 10000);
        assert_int_equal(l.cpu_time_ms, 10000);
        assert_int_equal(l.memory_mb, 128);
        assert_int_equal(l.max_output, 10000);
        assert_int_equal(l.pids, 64);
        assert_int_equal(l.disk_mb, 32);
        assert_int_equal(l.file_size_mb, 16);
        assert_int_equal(l.open_files, 256);
}

static void test_table_is_consistent(void **state) {
        bool seen[sizeof(struct pyexec_limits) / sizeof(uint64_t)] = { 0 };

        /* one entry per field of struct pyexec_limits, each field once */
        assert_int_equal(pyexec_limit_count, ELEMENTSOF(seen));
        for (size_t i = 0; i < pyexec_limit_count; i++) {
                const struct pyexec_limit_info *in = &pyexec_limit_table[i];
                size_t slot = in->offset / sizeof(uint64_t);
                assert_int_equal(in->offset % sizeof(uint64_t), 0);
                assert_true(slot < ELEMENTSOF(seen));
                assert_false(seen[slot]);
                seen[slot] = true;
                assert_true(in->min <= in->def && in->def <= in->max);
                assert_non_null(in->option);
                assert_non_null(in->json);
                assert_non_null(in->unit);
                assert_non_null(in->enforced_by);
                assert_ptr_equal(pyexec_limit_find(in->option), in);
        }
        /* the JSON names of the result schema */
        assert_string_equal(pyexec_limit_find("timeout")->json, "timeoutMs");
        assert_string_equal(pyexec_limit_find("cpu-time")->json, "cpuTimeMs");
        assert_string_equal(pyexec_limit_find("memory")->json, "memoryMb");
        assert_string_equal(pyexec_limit_find("max-output")->json, "maxOutput");
        assert_string_equal(pyexec_limit_find("pids")->json, "pids");
}

static void test_find_unknown(void **state) {
        assert_null(pyexec_limit_find("nope"));
        assert_null(pyexec_limit_find(""));
        assert_null(pyexec_limit_find("Memory"));
        assert_null(pyexec_limit_find("--memory"));
        assert_null(pyexec_limit_find("memoryMb"));
}

static void test_limit_ptr(void **state) {
        struct pyexec_limits l = { 0 };
        *pyexec_limit_ptr(&l, pyexec_limit_find("memory")) = 77;
        *pyexec_limit_ptr(&l, pyexec_limit_find("open-files")) = 99;
        assert_int_equal(l.memory_mb, 77);
        assert_int_equal(l.open_files, 99);
        assert_int_equal(l.timeout_ms, 0);
}

static void test_parse_ok(void **state) {
        const struct pyexec_limit_info *mem = pyexec_limit_find("memory");
        char err[256] = "untouched";
        uint64_t v = 0;

        assert_int_equal(pyexec_limit_parse(mem, "64", "--", &v, err, sizeof err), 0);
        assert_int_equal(v, 64);
        assert_string_equal(err, "untouched");
        assert_int_equal(pyexec_limit_parse(mem, "16", "--", &v, err, sizeof err), 0);
        assert_int_equal(v, 16);
        assert_int_equal(pyexec_limit_parse(mem, "4096", "--", &v, err, sizeof err), 0);
        assert_int_equal(v, 4096);
}

static void test_parse_range_message(void **state) {
        const struct pyexec_limit_info *mem = pyexec_limit_find("memory");
        char err[256] = "";
        uint64_t v = 4242;

        assert_int_equal(pyexec_limit_parse(mem, "100000", "--", &v, err, sizeof err), -ERANGE);
        assert_int_equal(v, 4242);
        /* names the option as the user typed it, the range with its unit and
         * the bad value */
        assert_non_null(strstr(err, "--memory "));
        assert_non_null(strstr(err, "16"));
        assert_non_null(strstr(err, "4096"));
        assert_non_null(strstr(err, "(MB)"));
        assert_non_null(strstr(err, "100000"));
        assert_string_equal(err, "--memory must be a whole number between 16 and 4096 (MB), got '100000'");

        assert_int_equal(pyexec_limit_parse(mem, "15", "--", &v, err, sizeof err), -ERANGE);
        assert_non_null(strstr(err, "got '15'"));
        assert_int_equal(pyexec_limit_parse(mem, "4097", "--", &v, err, sizeof err), -ERANGE);
        assert_non_null(strstr(err, "got '4097'"));
        assert_int_equal(v, 4242);
}

static void test_parse_invalid_message(void **state) {
        const struct pyexec_limit_info *t = pyexec_limit_find("timeout");
        const struct pyexec_limit_info *p = pyexec_limit_find("pids");
        char err[256] = "";
        uint64_t v = 4242;

        assert_int_equal(pyexec_limit_parse(t, "12x", "--", &v, err, sizeof err), -EINVAL);
        assert_int_equal(v, 4242);
        assert_string_equal(err, "--timeout must be a whole number between 1 and 600000 (ms), got '12x'");

        assert_int_equal(pyexec_limit_parse(t, "-5", "", &v, err, sizeof err), -EINVAL);
        assert_string_equal(err, "timeout must be a whole number between 1 and 600000 (ms), got '-5'");

        /* a unitless limit has no empty parentheses */
        assert_int_equal(pyexec_limit_parse(p, "0", "--", &v, err, sizeof err), -ERANGE);
        assert_string_equal(err, "--pids must be a whole number between 1 and 4096, got '0'");
        assert_null(strstr(err, "()"));

        assert_int_equal(pyexec_limit_parse(p, "", "--", &v, err, sizeof err), -EINVAL);
        assert_non_null(strstr(err, "got ''"));
        assert_int_equal(v, 4242);
}

static void test_parse_message_truncates_safely(void **state) {
        const struct pyexec_limit_info *mem = pyexec_limit_find("memory");
        char err[16];
        uint64_t v;

        memset(err, 'X', sizeof err);
        assert_int_equal(pyexec_limit_parse(mem, "100000", "--", &v, err, sizeof err), -ERANGE);
        assert_int_equal(strlen(err), sizeof err - 1);
        assert_memory_equal(err, "--memory must b", 15);
}

static void test_validate(void **state) {
        struct pyexec_limits l;
        char err[256] = "untouched";

        pyexec_limits_default(&l);
        assert_int_equal(pyexec_limits_validate(&l, "--", err, sizeof err), 0);
        assert_string_equal(err, "untouched");

        l.memory_mb = 5;
        assert_int_equal(pyexec_limits_validate(&l, "--", err, sizeof err), -ERANGE);
        assert_string_equal(err, "--memory must be a whole number between 16 and 4096 (MB), got '5'");

        pyexec_limits_default(&l);
        l.open_files = 4097;
        assert_int_equal(pyexec_limits_validate(&l, "", err, sizeof err), -ERANGE);
        assert_string_equal(err, "open-files must be a whole number between 16 and 4096, got '4097'");

        pyexec_limits_default(&l);
        l.max_output = 0;
        assert_int_equal(pyexec_limits_validate(&l, "--", err, sizeof err), -ERANGE);
        assert_non_null(strstr(err, "--max-output"));
        assert_non_null(strstr(err, "(bytes)"));

        /* every limit at both ends of its range passes, one beyond fails */
        for (size_t i = 0; i < pyexec_limit_count; i++) {
                const struct pyexec_limit_info *in = &pyexec_limit_table[i];
                pyexec_limits_default(&l);
                *pyexec_limit_ptr(&l, in) = in->min;
                assert_int_equal(pyexec_limits_validate(&l, "--", err, sizeof err), 0);
                *pyexec_limit_ptr(&l, in) = in->max;
                assert_int_equal(pyexec_limits_validate(&l, "--", err, sizeof err), 0);
                *pyexec_limit_ptr(&l, in) = in->max + 1;
                assert_int_equal(pyexec_limits_validate(&l, "--", err, sizeof err), -ERANGE);
                assert_non_null(strstr(err, in->option));
                if (in->min > 0) {
                        *pyexec_limit_ptr(&l, in) = in->min - 1;
                        assert_int_equal(pyexec_limits_validate(&l, "--", err, sizeof err), -ERANGE);
                }
        }
}

static void test_status_names(void **state) {
        static const char *const want[_PYEXEC_STATUS_MAX] = {
                "ok",           "runtime_error",    "syntax_error",  "timeout",
                "memory_limit", "output_limit", "policy_violation", "internal_error",
        };
        for (int s = 0; s < _PYEXEC_STATUS_MAX; s++)
                assert_string_equal(pyexec_status_to_string((enum pyexec_status)s), want[s]);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_defaults_are_documented),
                cmocka_unit_test(test_table_is_consistent),
                cmocka_unit_test(test_find_unknown),
                cmocka_unit_test(test_limit_ptr),
                cmocka_unit_test(test_parse_ok),
                cmocka_unit_test(test_parse_range_message),
                cmocka_unit_test(test_parse_invalid_message),
                cmocka_unit_test(test_parse_message_truncates_safely),
                cmocka_unit_test(test_validate),
                cmocka_unit_test(test_status_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
