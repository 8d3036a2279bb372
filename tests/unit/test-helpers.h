/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the unit tests.
 *
 * Kernel-facing tests fork, apply the restriction in the child, check the
 * exact errno there and _exit() with a code naming the check that failed;
 * the parent asserts on the wait status. cmocka's assert macros longjmp into
 * the runner, which must never happen in a forked child, so children use
 * CHILD_CHECK() instead: it prints what failed (with errno) to stderr using
 * only snprintf and write(2), and _exit()s with the given code.
 */
#pragma once

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifndef TEST_ASAN
#define TEST_ASAN 0
#endif

/* A message to stderr without stdio locks or allocation (safe after a bare
 * clone(2) and in a seccomp-filtered child). */
static inline void _printf_(1, 2) child_msg(const char *fmt, ...) {
        char b[512];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(b, sizeof b, fmt, ap);
        va_end(ap);
        if (n < 0)
                return;
        if ((size_t)n >= sizeof b)
                n = sizeof b - 1;
        (void)!write(STDERR_FILENO, b, (size_t)n);
}

#define CHILD_FAIL(code, ...)                                                               \
        do {                                                                                \
                int _e = errno;                                                             \
                child_msg("child check failed at %s:%d (exit %d): ", __FILE__, __LINE__, (code)); \
                child_msg(__VA_ARGS__);                                                     \
                child_msg(" [errno=%d %s]\n", _e, strerrorname_np(_e) ? strerrorname_np(_e) : "?"); \
                _exit(code);                                                                \
        } while (0)

#define CHILD_CHECK(cond, code)                   \
        do {                                      \
                if (!(cond))                      \
                        CHILD_FAIL((code), "%s", #cond); \
        } while (0)

/* The syscall result r must be -1 with errno e. */
#define CHILD_CHECK_ERRNO(r, e, code)                                                             \
        do {                                                                                      \
                long _r = (long)(r);                                                              \
                int _e2 = errno;                                                                  \
                if (_r != -1 || _e2 != (e)) {                                                     \
                        errno = _e2;                                                              \
                        CHILD_FAIL((code), "%s: expected -1/%s, got %ld", #r, strerrorname_np(e), _r); \
                }                                                                                 \
        } while (0)

static inline void sleep_ms(long ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* Wait for pid at most timeout_ms; on timeout SIGKILL it, reap it, and
 * return -ETIME. Otherwise return the wait status. */
static inline int wait_child(pid_t pid, long timeout_ms) {
        int status;
        for (long waited = 0;; waited += 5) {
                pid_t r = waitpid(pid, &status, WNOHANG);
                if (r == pid)
                        return status;
                if (r < 0 && errno != EINTR)
                        return -errno;
                if (waited >= timeout_ms) {
                        kill(pid, SIGKILL);
                        (void)waitpid(pid, &status, 0);
                        return -ETIME;
                }
                sleep_ms(5);
        }
}

/* Render a wait status for failure messages. */
static inline const char *status_str(int status, char *b, size_t n) {
        if (status < 0)
                snprintf(b, n, "wait failed: %s", strerror(-status));
        else if (WIFEXITED(status))
                snprintf(b, n, "exited with %d", WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
                snprintf(b, n, "killed by SIG%s", sigabbrev_np(WTERMSIG(status)) ?: "?");
        else
                snprintf(b, n, "status 0x%x", status);
        return b;
}

#define assert_status_exited(status, code)                                                     \
        do {                                                                                   \
                int _s = (status);                                                             \
                char _b[64];                                                                   \
                if (_s < 0 || !WIFEXITED(_s) || WEXITSTATUS(_s) != (code))                     \
                        fail_msg("child: expected exit %d, %s", (code), status_str(_s, _b, sizeof _b)); \
        } while (0)

#define assert_status_signaled(status, sig)                                                    \
        do {                                                                                   \
                int _s = (status);                                                             \
                char _b[64];                                                                   \
                if (_s < 0 || !WIFSIGNALED(_s) || WTERMSIG(_s) != (sig))                       \
                        fail_msg("child: expected SIG%s, %s", sigabbrev_np(sig), status_str(_s, _b, sizeof _b)); \
        } while (0)

/* cmocka catches SIGSEGV, SIGBUS, SIGILL, SIGFPE and SIGSYS and longjmps
 * back into its runner; in a forked child that would go on running the rest
 * of the suite. Children restore the default actions first, so a crash is
 * a crash the parent sees in the wait status. */
static inline void child_reset_signals(void) {
        static const int sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGSYS, SIGABRT };
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
                signal(sigs[i], SIG_DFL);
}

/* fork(), with the child's signal actions reset (see above). */
static inline pid_t test_fork(void) {
        pid_t pid;
        fflush(NULL);
        pid = fork();
        if (pid == 0)
                child_reset_signals();
        return pid;
}

/* Run fn(arg) in a forked child, which _exit()s with its return value; the
 * status, or -ETIME when it ran longer than timeout_ms. */
static inline int run_in_child(int (*fn)(void *), void *arg, long timeout_ms) {
        pid_t pid = test_fork();
        if (pid < 0)
                return -errno;
        if (pid == 0)
                _exit(fn(arg));
        return wait_child(pid, timeout_ms);
}

#define SKIP_UNLESS_ROOT()                                        \
        do {                                                      \
                if (geteuid() != 0) {                             \
                        print_message("[ SKIP     ] needs root\n"); \
                        skip();                                   \
                }                                                 \
        } while (0)
