/* SPDX-License-Identifier: MIT */
/*
 * verdict: a run's status and message from the facts the supervisor
 * gathered (verdict.h). The order of the checks is the order of
 * precedence: pyexec's own failure to start the run, a sandbox lost under
 * the program, what the supervisor killed it for, the kernel's kills, and
 * last what the program's exit says about itself.
 */
#include "verdict.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "mount.h"
#include "util.h"

const char *pyexec_status_to_string(enum pyexec_status s) {
        static const char *const names[_PYEXEC_STATUS_MAX] = {
                [PYEXEC_OK] = "ok",
                [PYEXEC_RUNTIME_ERROR] = "runtime_error",
                [PYEXEC_SYNTAX_ERROR] = "syntax_error",
                [PYEXEC_TIMEOUT] = "timeout",
                [PYEXEC_MEMORY_LIMIT] = "memory_limit",
                [PYEXEC_OUTPUT_LIMIT] = "output_limit",
                [PYEXEC_POLICY_VIOLATION] = "policy_violation",
                [PYEXEC_INTERNAL_ERROR] = "internal_error",
        };
        return s < _PYEXEC_STATUS_MAX ? names[s] : "internal_error";
}

static const char *signal_name(int sig, char *buf, size_t n) {
        const char *abbrev = sigabbrev_np(sig);
        if (abbrev)
                snprintf(buf, n, "SIG%s", abbrev);
        else
                snprintf(buf, n, "signal %d", sig);
        return buf;
}

/* The last line of s (without its newline). */
static const char *last_line(const struct buf *s, size_t *ret_len) {
        size_t end = s->len;
        while (end > 0 && s->data[end - 1] == '\n')
                end--;
        size_t start = end;
        while (start > 0 && s->data[start - 1] != '\n')
                start--;
        *ret_len = end - start;
        return s->data ? s->data + start : "";
}

static bool starts_with(const char *p, size_t n, const char *prefix) {
        size_t l = strlen(prefix);
        return n >= l && memcmp(p, prefix, l) == 0;
}

/* Line n (1-based) of f, without its newline; NULL when f is shorter. */
static const char *file_line(const struct pyexec_file *f, unsigned long n, size_t *ret_len) {
        const char *p = f->data, *end = f->data + f->len;
        for (unsigned long i = 1; p && p < end && i < n; i++) {
                p = memchr(p, '\n', (size_t)(end - p));
                if (p)
                        p++;
        }
        if (!p || p > end || (p == end && n > 1))
                return NULL;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        *ret_len = (size_t)((nl ? nl : end) - p);
        return p;
}

/* Characters (UTF-8 lead bytes) in p[0..n). */
static size_t utf8_chars(const char *p, size_t n) {
        size_t c = 0;
        for (size_t i = 0; i < n; i++)
                if (((unsigned char)p[i] & 0xc0) != 0x80)
                        c++;
        return c;
}

/*
 * A compile error prints no "in <function>" on its frame line: CPython
 * reports the file and line of the code it could not compile, without a
 * "Traceback" header for the main script and as the last frame below one for
 * an imported module. A SyntaxError raised by running code (eval, exec, a
 * parser exercise raising it) has a frame with ", in ...", and is a runtime
 * error. The frame must be a file of the program.
 */
static bool classify_syntax_error(const struct pyexec_spec *spec, struct pyexec_result *res) {
        const struct buf *e = &res->err;
        size_t ll, col = 0;
        const char *last = last_line(e, &ll);
        const char *frame = NULL, *p, *base;
        const struct pyexec_file *src = NULL;
        char file[256] = "", rest[4] = "";
        unsigned long line = 0;

        if (!e->data || !(starts_with(last, ll, "SyntaxError: ") || starts_with(last, ll, "IndentationError: ") ||
                          starts_with(last, ll, "TabError: ")))
                return false;
        /* A file python3 cannot decode is reported on one line, with no
         * frame: "... in file /sandbox/main.py on line 1, but no encoding
         * declared; ...". */
        if (starts_with(last, ll, "SyntaxError: Non-UTF-8 code starting with ")) {
                const char *in = strstr(last, " in file " SANDBOX_WORKDIR "/");
                if (!in || in > last + ll)
                        return false;
                free(res->message);
                res->message = strdup_printf("%.*s", (int)(ll > 300 ? 300 : ll), last);
                res->status = PYEXEC_SYNTAX_ERROR;
                return true;
        }
        for (p = e->data; (p = strstr(p, "  File \"")) && p < last; p++)
                frame = p;
        if (!frame || sscanf(frame, "  File \"%255[^\"]\", line %lu%3[^\n]", file, &line, rest) < 2 || rest[0])
                return false;
        if (file[0] == '/' && strncmp(file, SANDBOX_WORKDIR "/", strlen(SANDBOX_WORKDIR) + 1) != 0)
                return false;
        base = strrchr(file, '/');
        base = base ? base + 1 : file;
        for (size_t i = 0; i < spec->n_files; i++)
                if (strcmp(spec->files[i].name, base) == 0)
                        src = &spec->files[i];
        if (!src)
                return false;

        /* Below the frame: the source line, stripped of its indentation and
         * re-indented by four, then a caret under the offending byte. The
         * column counts characters of the real line, as SyntaxError.offset. */
        {
                const char *sl = strchr(frame, '\n');
                const char *cl = sl ? strchr(sl + 1, '\n') : NULL;
                size_t len;
                const char *text = file_line(src, line, &len);
                if (sl && cl && cl < last && text) {
                        const char *c = cl + 1;
                        size_t printed_indent = strspn(sl + 1, " "), caret = strspn(c, " ");
                        size_t indent = strspn(text, " \t\f");
                        if (c[caret] == '^' && caret >= printed_indent) {
                                size_t byte = indent + (caret - printed_indent);
                                if (byte <= len)
                                        col = utf8_chars(text, byte) + 1;
                        }
                }
        }
        free(res->message);
        if (col)
                res->message = strdup_printf("%.*s (%s, line %lu, column %zu)", (int)ll, last, base, line, col);
        else
                res->message = strdup_printf("%.*s (%s, line %lu)", (int)ll, last, base, line);
        res->status = PYEXEC_SYNTAX_ERROR;
        return true;
}

/*
 * An uncaught refusal of the policy's audit hook: the traceback's last line
 * is "PolicyImportError: ..." or "PolicyPermissionError: ...". The message
 * gains the program's line it came from (the last frame in a file of the
 * program).
 */
static bool classify_policy_error(const struct pyexec_spec *spec, struct pyexec_result *res) {
        const struct buf *e = &res->err;
        size_t ll;
        const char *last = last_line(e, &ll), *p, *frame = NULL, *text;
        static const char *const kinds[] = { "PolicyImportError: ", "PolicyPermissionError: " };
        char file[256] = "";
        unsigned long line = 0;
        size_t skip = 0;

        if (!spec->runner || !spec->policy || !e->data)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(kinds); i++)
                if (starts_with(last, ll, kinds[i]))
                        skip = strlen(kinds[i]);
        if (!skip)
                return false;
        text = last + skip;
        for (p = e->data; (p = strstr(p, "  File \"" SANDBOX_WORKDIR "/")) && p < last; p++)
                frame = p;
        free(res->message);
        if (frame && sscanf(frame, "  File \"" SANDBOX_WORKDIR "/%255[^\"]\", line %lu", file, &line) == 2)
                res->message = strdup_printf("%.*s (%s, line %lu)", (int)(ll - skip), text, file, line);
        else
                res->message = strdup_printf("%.*s", (int)(ll - skip), text);
        res->status = PYEXEC_POLICY_VIOLATION;
        return true;
}

static void set_status(struct pyexec_result *res, enum pyexec_status status, char *message) {
        res->status = status;
        free(res->message);
        res->message = message;
}

/*
 * The verdicts that do not depend on what the program printed: pyexec's
 * failure to start it, the sandbox lost under it, the limits the
 * supervisor or the kernel enforced. false: none of them applies.
 */
static bool classify_by_supervisor(const struct pyexec_spec *spec, const struct verdict_facts *f,
                                   struct pyexec_result *res) {
        const struct pyexec_limits *lim = &spec->limits;
        bool killed = f->killed_wall || f->killed_cpu || f->killed_output || f->killed_oom || f->oom_kills > 0;

        if (f->cancelled) {
                /* Nobody reads this result; it must not count as a failure
                 * of the sandbox (internal_error would open the circuit
                 * breaker, or run the program again elsewhere). */
                set_status(res, PYEXEC_RUNTIME_ERROR, strdup("the run was stopped: its client went away"));
                res->exit_code = -1;
                res->signal = 0;
                return true;
        }
        if (f->setup_failed || !f->started) {
                if (f->error)
                        set_status(res, PYEXEC_INTERNAL_ERROR,
                                   strdup_printf("sandbox setup failed: %s: %s", f->error->step,
                                                 strerror(f->error->err)));
                else
                        set_status(res, PYEXEC_INTERNAL_ERROR,
                                   strdup("sandbox setup failed: the sandbox did not start"));
                res->exit_code = -1;
                res->signal = 0;
                return true;
        }
        if (!f->exited && !killed) {
                /* init died without reporting the program's exit, and
                 * nothing of ours killed it, while the program ran. The
                 * program has no way to reach its init (reap.c, the
                 * seccomp policy), so this is the program's run going
                 * wrong in a way the sandbox contained: its verdict, not
                 * a failure of pyexec, never a reason to run it again
                 * elsewhere nor one for the circuit breaker (internal_error
                 * would be both). A warm sandbox lost with its zygote is
                 * run again instead (supervise.c, run_warm_once). */
                set_status(res, PYEXEC_RUNTIME_ERROR,
                           strdup("the run's sandbox ended before the program's exit was reported (its init was "
                                  "killed while the program ran)"));
                res->exit_code = -1;
                res->signal = 0;
                return true;
        }
        if (f->killed_output) {
                set_status(res, PYEXEC_OUTPUT_LIMIT,
                           strdup_printf("output limit of %llu bytes exceeded (stdout and stderr together)",
                                         (unsigned long long)lim->max_output));
                return true;
        }
        if (f->killed_wall) {
                set_status(res, PYEXEC_TIMEOUT,
                           strdup_printf("wall-clock time limit of %llu ms exceeded",
                                         (unsigned long long)lim->timeout_ms));
                return true;
        }
        if (f->killed_cpu || res->signal == SIGXCPU ||
            (res->signal == SIGKILL && res->cpu_ms >= (double)lim->cpu_time_ms)) {
                set_status(res, PYEXEC_TIMEOUT,
                           strdup_printf("CPU time limit of %llu ms exceeded", (unsigned long long)lim->cpu_time_ms));
                return true;
        }
        if (f->killed_oom || f->oom_kills > 0) {
                set_status(res, PYEXEC_MEMORY_LIMIT,
                           strdup_printf("memory limit of %llu MB exceeded (killed by the kernel's OOM killer)",
                                         (unsigned long long)lim->memory_mb));
                return true;
        }
        if (res->signal == SIGBUS && f->hugetlb_limit_hit) {
                /* Its huge pages are its copy of the zygote's; a process
                 * that shares them after a raw clone() (not os.fork, which
                 * moves them back) and writes one needs another page, which
                 * the run's hugetlb cgroup refuses. */
                set_status(res, PYEXEC_MEMORY_LIMIT,
                           strdup("memory limit exceeded: a process of the run wrote to a huge page it shared "
                                  "after a raw clone() (killed by SIGBUS; use os.fork or subprocess)"));
                return true;
        }
        return false;
}

/* The program ended by itself: its exit code, signal and stderr say how. */
static void classify_by_program(const struct pyexec_spec *spec, const struct verdict_facts *f,
                                struct pyexec_result *res) {
        const struct pyexec_limits *lim = &spec->limits;
        char sig[32];
        size_t ll;
        const char *last = last_line(&res->err, &ll);

        if (res->exit_code > 0 && res->err.data &&
            (starts_with(last, ll, "MemoryError") && (ll == 11 || last[11] == ':'))) {
                set_status(res, PYEXEC_MEMORY_LIMIT,
                           strdup_printf("memory limit of %llu MB exceeded (MemoryError%s)",
                                         (unsigned long long)lim->memory_mb,
                                         f->have_cgroup_memory ? "" : " under RLIMIT_AS"));
                return;
        }
        if (res->exit_code == 0) {
                res->status = PYEXEC_OK;
                return;
        }
        if (res->exit_code == 1 && f->verdict &&
            (f->verdict->err == PYEXEC_SYNTAX_ERROR || f->verdict->err == PYEXEC_POLICY_VIOLATION)) {
                /* The runner's static check refused it before it ran. */
                set_status(res, (enum pyexec_status)f->verdict->err,
                           strndup(f->verdict->step, sizeof f->verdict->step - 1));
                return;
        }
        if (res->exit_code == 1 && classify_policy_error(spec, res))
                return;
        if (res->exit_code == 1 && classify_syntax_error(spec, res))
                return;
        if (res->signal)
                set_status(res, PYEXEC_RUNTIME_ERROR,
                           strdup_printf("killed by signal %s", signal_name(res->signal, sig, sizeof sig)));
        else if (res->exit_code > 0 && ll > 0 && res->err.data)
                set_status(res, PYEXEC_RUNTIME_ERROR,
                           strdup_printf("exited with code %d: %.*s", res->exit_code, (int)(ll > 300 ? 300 : ll),
                                         last));
        else
                set_status(res, PYEXEC_RUNTIME_ERROR, strdup_printf("exited with code %d", res->exit_code));
}

void verdict_classify(const struct pyexec_spec *spec, const struct verdict_facts *f, struct pyexec_result *res) {
        res->exit_code = -1;
        res->signal = 0;
        if (f->exited) {
                if (WIFEXITED(f->wstatus))
                        res->exit_code = WEXITSTATUS(f->wstatus);
                else if (WIFSIGNALED(f->wstatus))
                        res->signal = WTERMSIG(f->wstatus);
        } else if (f->killed_wall || f->killed_cpu || f->killed_output || f->killed_oom || f->oom_kills > 0)
                res->signal = SIGKILL;
        if (!classify_by_supervisor(spec, f, res))
                classify_by_program(spec, f, res);
}
