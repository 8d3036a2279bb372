/* SPDX-License-Identifier: MIT */
/*
 * verdict.c: each status and message from made-up facts, and the
 * precedence between them (a killed run is judged by what killed it, not
 * by what its stderr says).
 */
#include "test-helpers.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "pyexec.h"
#include "sandbox-msg.h"
#include "verdict.h"

#define EXIT(code) ((code) << 8)
#define SIGNALLED(sig) (sig)

struct fixture {
        struct pyexec_spec spec;
        struct pyexec_file files[2];
        struct pyexec_result res;
        struct verdict_facts f; /* started and exited with 0 unless a test says otherwise */
};

static int setup(void **state) {
        struct fixture *x = calloc(1, sizeof *x);
        if (!x)
                return -1;
        pyexec_limits_default(&x->spec.limits);
        x->files[0] = (struct pyexec_file){ "main.py", "import helper\n", 14 };
        x->files[1] = (struct pyexec_file){ "helper.py", "x = 1\nif x:\n    y = (1\n", 0 };
        x->files[1].len = strlen(x->files[1].data);
        x->spec.files = x->files;
        x->spec.n_files = 2;
        x->res = (struct pyexec_result){ .exit_code = -1 };
        buf_init(&x->res.out, 1 << 20);
        buf_init(&x->res.err, 1 << 20);
        buf_init(&x->res.merged, 1 << 20);
        x->f = (struct verdict_facts){
                .started = true, .exited = true, .wstatus = EXIT(0), .have_cgroup_memory = true
        };
        *state = x;
        return 0;
}

static int teardown(void **state) {
        struct fixture *x = *state;
        pyexec_result_done(&x->res);
        free(x);
        return 0;
}

static void set_stderr(struct fixture *x, const char *text) {
        assert_int_equal(buf_append(&x->res.err, text, strlen(text)), 0);
}

static void classify(struct fixture *x) {
        verdict_classify(&x->spec, &x->f, &x->res);
}

static void test_ok(void **state) {
        struct fixture *x = *state;
        classify(x);
        assert_int_equal(x->res.status, PYEXEC_OK);
        assert_int_equal(x->res.exit_code, 0);
        assert_int_equal(x->res.signal, 0);
        assert_null(x->res.message);
}

static void test_setup_error_names_the_step(void **state) {
        struct fixture *x = *state;
        struct msg m = { .type = MSG_ERROR, .err = EPERM };
        snprintf(m.step, sizeof m.step, "mounting /proc");
        x->f = (struct verdict_facts){ .setup_failed = true, .error = &m };
        classify(x);
        assert_int_equal(x->res.status, PYEXEC_INTERNAL_ERROR);
        assert_string_equal(x->res.message, "sandbox setup failed: mounting /proc: Operation not permitted");
        assert_int_equal(x->res.exit_code, -1);
}

static void test_never_started(void **state) {
        struct fixture *x = *state;
        x->f = (struct verdict_facts){ 0 };
        classify(x);
        assert_int_equal(x->res.status, PYEXEC_INTERNAL_ERROR);
        assert_string_equal(x->res.message, "sandbox setup failed: the sandbox did not start");
}

/* init gone without a word while the program ran, nothing of ours killed
 * it: the program's verdict, never internal_error (no retry, no breaker). */
static void test_lost_sandbox_is_runtime_error(void **state) {
        struct fixture *x = *state;
        x->f.exited = false;
        classify(x);
        assert_int_equal(x->res.status, PYEXEC_RUNTIME_ERROR);
        assert_non_null(strstr(x->res.message, "sandbox ended before the program's exit was reported"));
        assert_int_equal(x->res.signal, 0);
}

static void test_output_cap_before_wall_clock(void **state) {
        struct fixture *x = *state;
        x->spec.limits.max_output = 1000;
        x->f.exited = false;
        x->f.killed_output = x->f.killed_wall = true;
        classify(x);
        assert_int_equal(x->res.status, PYEXEC_OUTPUT_LIMIT);
        assert_string_equal(x->res.message, "output limit of 1000 bytes exceeded (stdout and stderr together)");
        assert_int_equal(x->res.signal, SIGKILL);
}

static void test_wall_clock(void **state) {
        struct fixture *x = *state;
        x->spec.limits.timeout_ms = 2500;
        x->f.exited = false;
        x->f.killed_wall = true;
        set_stderr(x, "MemoryError\n"); /* what it printed does not matter */
        classify(x);
        assert_int_equal(x->res.status, PYEXEC_TIMEOUT);
        assert_string_equal(x->res.message, "wall-clock time limit of 2500 ms exceeded");
}

static void test_cpu_polled_sigxcpu_and_sigkill_past_limit(void **state) {
        struct fixture *x = *state;
        x->spec.limits.cpu_time_ms = 500;
        x->f.exited = false;
        x->f.killed_cpu = true;
        classify(x);
        assert_int_equal(x->res.status, PYEXEC_TIMEOUT);
        assert_string_equal(x->res.message, "CPU time limit of 500 ms exceeded");

        /* RLIMIT_CPU's soft limit: SIGXCPU. */
        free(x->res.message);
        x->res.message = NULL;
        x->f = (struct verdict_facts){ .started = true, .exited = true, .wstatus = SIGNALLED(SIGXCPU) };
        classify(x);
        assert_int_equal(x->res.status, PYEXEC_TIMEOUT);
        assert_int_equal(x->res.signal, SIGXCPU);

        /* Its hard limit: SIGKILL, with the CPU time to show for it. */
        free(x->res.message);
        x->res.message = NULL;
        x->f.wstatus = SIGNALLED(SIGKILL);
        x->res.cpu_ms = 500;
        classify(x);
        assert_int_equal(x->res.status, PYEXEC_TIMEOUT);

        /* A SIGKILL short of the limit is the program's own doing. */
        free(x->res.message);
        x->res.message = NULL;
        x->res.cpu_ms = 10;
        classify(x);
        assert_int_equal(x->res.status, PYEXEC_RUNTIME_ERROR);
        assert_string_equal(x->res.message, "killed by signal SIGKILL");
}

static void test_oom_from_cgroup_events(void **state) {
        struct fixture *x = *state;
        x->spec.limits.memory_mb = 64;
        x->f.wstatus = SIGNALLED(SIGKILL);
        x->f.oom_kills = 1;
        classify(x);
        assert_int_equal(x->res.status, PYEXEC_MEMORY_LIMIT);
        assert_string_equal(x->res.message, "memory limit of 64 MB exceeded (killed by the kernel's OOM killer)");
}

static void test_sigbus_on_hugetlb_limit(void **state) {
        struct fixture *x = *state;
        x->f.wstatus = SIGNALLED(SIGBUS);
        x->f.hugetlb_limit_hit = true;
        classify(x);
        assert_int_equal(x->res.status, PYEXEC_MEMORY_LIMIT);
        assert_non_null(strstr(x->res.message, "huge page"));

        /* Without the cgroup's word it is an ordinary signal. */
        free(x->res.message);
        x->res.message = NULL;
        x->f.hugetlb_limit_hit = false;
        classify(x);
        assert_int_equal(x->res.status, PYEXEC_RUNTIME_ERROR);
        assert_string_equal(x->res.message, "killed by signal SIGBUS");
}

static void test_memory_error(void **state) {
        struct fixture *x = *state;
        x->spec.limits.memory_mb = 128;
        x->f.wstatus = EXIT(1);
        x->f.have_cgroup_memory = false;
        set_stderr(x, "Traceback (most recent call last):\n  File \"/sandbox/main.py\", line 1, in "
                      "<module>\nMemoryError\n");
        classify(x);
        assert_int_equal(x->res.status, PYEXEC_MEMORY_LIMIT);
        assert_string_equal(x->res.message, "memory limit of 128 MB exceeded (MemoryError under RLIMIT_AS)");
}

static void test_memory_error_lookalike_is_runtime_error(void **state) {
        struct fixture *x = *state;
        x->f.wstatus = EXIT(1);
        set_stderr(x, "MemoryErrorish: no\n");
        classify(x);
        assert_int_equal(x->res.status, PYEXEC_RUNTIME_ERROR);
        assert_string_equal(x->res.message, "exited with code 1: MemoryErrorish: no");
}

static void test_runner_static_check(void **state) {
        struct fixture *x = *state;
        struct msg m = { .type = MSG_VERDICT, .err = PYEXEC_POLICY_VIOLATION };
        snprintf(m.step, sizeof m.step, "import of 'socket' is not allowed (main.py, line 1)");
        x->f.wstatus = EXIT(1);
        x->f.verdict = &m;
        classify(x);
        assert_int_equal(x->res.status, PYEXEC_POLICY_VIOLATION);
        assert_string_equal(x->res.message, m.step);
}

static void test_policy_error_traceback(void **state) {
        struct fixture *x = *state;
        x->spec.runner = true;
        x->spec.policy = "p";
        x->f.wstatus = EXIT(1);
        set_stderr(x, "Traceback (most recent call last):\n"
                      "  File \"/sandbox/main.py\", line 3, in <module>\n"
                      "    open('/etc/shadow')\n"
                      "PolicyPermissionError: open of /etc/shadow is not allowed\n");
        classify(x);
        assert_int_equal(x->res.status, PYEXEC_POLICY_VIOLATION);
        assert_string_equal(x->res.message, "open of /etc/shadow is not allowed (main.py, line 3)");
}

/* A compile error of an imported file: the frame has no ", in ...", and
 * the column is the caret's on the file's own line (indented by four
 * there, by four in the traceback). */
static void test_syntax_error_with_column(void **state) {
        struct fixture *x = *state;
        x->f.wstatus = EXIT(1);
        set_stderr(x, "Traceback (most recent call last):\n"
                      "  File \"/sandbox/main.py\", line 1, in <module>\n"
                      "    import helper\n"
                      "  File \"/sandbox/helper.py\", line 3\n"
                      "    y = (1\n"
                      "        ^\n"
                      "SyntaxError: '(' was never closed\n");
        classify(x);
        assert_int_equal(x->res.status, PYEXEC_SYNTAX_ERROR);
        assert_string_equal(x->res.message, "SyntaxError: '(' was never closed (helper.py, line 3, column 9)");
}

/* Raised by running code (a frame with ", in ..."): the program's error. */
static void test_syntax_error_raised_at_runtime(void **state) {
        struct fixture *x = *state;
        x->f.wstatus = EXIT(1);
        set_stderr(x, "Traceback (most recent call last):\n"
                      "  File \"/sandbox/main.py\", line 1, in <module>\n"
                      "    eval('1 +')\n"
                      "SyntaxError: invalid syntax\n");
        classify(x);
        assert_int_equal(x->res.status, PYEXEC_RUNTIME_ERROR);
        assert_string_equal(x->res.message, "exited with code 1: SyntaxError: invalid syntax");
}

static void test_exit_code_without_stderr(void **state) {
        struct fixture *x = *state;
        x->f.wstatus = EXIT(3);
        classify(x);
        assert_int_equal(x->res.status, PYEXEC_RUNTIME_ERROR);
        assert_int_equal(x->res.exit_code, 3);
        assert_string_equal(x->res.message, "exited with code 3");
}

static void test_status_names(void **state) {
        (void)state;
        assert_string_equal(pyexec_status_to_string(PYEXEC_POLICY_VIOLATION), "policy_violation");
        assert_string_equal(pyexec_status_to_string(_PYEXEC_STATUS_MAX), "internal_error");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
        const struct CMUnitTest tests[] = {
                T(test_ok),
                T(test_setup_error_names_the_step),
                T(test_never_started),
                T(test_lost_sandbox_is_runtime_error),
                T(test_output_cap_before_wall_clock),
                T(test_wall_clock),
                T(test_cpu_polled_sigxcpu_and_sigkill_past_limit),
                T(test_oom_from_cgroup_events),
                T(test_sigbus_on_hugetlb_limit),
                T(test_memory_error),
                T(test_memory_error_lookalike_is_runtime_error),
                T(test_runner_static_check),
                T(test_policy_error_traceback),
                T(test_syntax_error_with_column),
                T(test_syntax_error_raised_at_runtime),
                T(test_exit_code_without_stderr),
                cmocka_unit_test(test_status_names),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
