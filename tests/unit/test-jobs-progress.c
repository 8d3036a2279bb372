/* SPDX-License-Identifier: MIT */
/*
 * jobs-progress: the PYEXEC_PROGRESS lines of a job's stderr, fed in
 * chunks split anywhere, give exactly the fractions they say; anything
 * else gives nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "jobs-progress.h"

struct seen {
        double v[16];
        size_t n;
};

static void record(void *userdata, double f) {
        struct seen *s = userdata;
        assert_true(s->n < 16);
        s->v[s->n++] = f;
}

static double parse(const char *line) {
        return job_progress_parse(line, strlen(line));
}

static void test_values(void **state) {
        (void)state;
        assert_true(parse("PYEXEC_PROGRESS 0") == 0);
        assert_true(parse("PYEXEC_PROGRESS 0.25") == 0.25);
        assert_true(parse("PYEXEC_PROGRESS 1") == 1);
        assert_true(parse("PYEXEC_PROGRESS 1.0\r") == 1);
        assert_true(parse("PYEXEC_PROGRESS .5") == 0.5);
        assert_true(parse("PYEXEC_PROGRESS 3/12") == 0.25);
        assert_true(parse("PYEXEC_PROGRESS 13/13") == 1);
        assert_true(parse("PYEXEC_PROGRESS 0/13") == 0);
}

static void test_refused(void **state) {
        static const char *const bad[] = {
                "PYEXEC_PROGRESS",
                "PYEXEC_PROGRESS ",
                "PYEXEC_PROGRESS 1.5",
                "PYEXEC_PROGRESS -0.5",
                "PYEXEC_PROGRESS +0.5",
                "PYEXEC_PROGRESS 1e-1",
                "PYEXEC_PROGRESS nan",
                "PYEXEC_PROGRESS inf",
                "PYEXEC_PROGRESS 0x1",
                "PYEXEC_PROGRESS 14/13",
                "PYEXEC_PROGRESS 1/0",
                "PYEXEC_PROGRESS 1.5/3",
                "PYEXEC_PROGRESS /3",
                "PYEXEC_PROGRESS 3/",
                "PYEXEC_PROGRESS 1/2/3",
                "PYEXEC_PROGRESS 0.5 ",
                "PYEXEC_PROGRESS  0.5",
                "pyexec_progress 0.5",
                " PYEXEC_PROGRESS 0.5",
                "PYEXEC_PROGRESS 0..5",
                "PYEXEC_PROGRESS 0.5.",
                "progress 0.5",
                "",
        };
        (void)state;
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
                if (parse(bad[i]) != -1)
                        fail_msg("'%s' was taken", bad[i]);
}

static void test_chunks(void **state) {
        static const char text[] = "Fra:1 Mem:12M\nPYEXEC_PROGRESS 1/4\nnoise PYEXEC_PROGRESS 0.9\n"
                                   "PYEXEC_PROGRESS 0.5\nPYEXEC_PROGRESS 3/4";
        (void)state;
        /* Every split point: the same two reports; the last line has no
         * newline yet and reports nothing. */
        for (size_t cut = 0; cut <= sizeof text - 1; cut++) {
                struct seen s = { 0 };
                struct job_progress p = { .report = record, .userdata = &s };
                job_progress_feed(&p, text, cut);
                job_progress_feed(&p, text + cut, sizeof text - 1 - cut);
                assert_int_equal(s.n, 2);
                assert_true(s.v[0] == 0.25 && s.v[1] == 0.5);
                job_progress_feed(&p, "\n", 1);
                assert_int_equal(s.n, 3);
                assert_true(s.v[2] == 0.75);
        }
}

static void test_long_lines_report_nothing(void **state) {
        char big[300];
        struct seen s = { 0 };
        struct job_progress p = { .report = record, .userdata = &s };
        (void)state;
        /* A line that ends in a valid report but is longer than the limit,
         * fed a byte at a time, is skipped whole; the next line counts. */
        memset(big, 'x', sizeof big);
        memcpy(big + sizeof big - 21, "\nPYEXEC_PROGRESS 0.1", 20);
        big[sizeof big - 1] = '\n';
        memcpy(big, "PYEXEC_PROGRESS 0.9", 19);
        for (size_t i = 0; i < sizeof big; i++)
                job_progress_feed(&p, big + i, 1);
        assert_int_equal(s.n, 1);
        assert_true(s.v[0] == 0.1);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_values),
                cmocka_unit_test(test_refused),
                cmocka_unit_test(test_chunks),
                cmocka_unit_test(test_long_lines_report_nothing),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
