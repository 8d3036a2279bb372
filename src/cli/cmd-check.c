/* SPDX-License-Identifier: MIT */
/*
 * `pyexec check`: what this machine can enforce (check.c builds the report),
 * printed for a person or as JSON; the exit status says whether the sandbox
 * can run here.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "cmd.h"
#include "jobs.h"
#include "pyexec.h"

static const char usage_check[] = "usage: pyexec check [--json] [--python PATH]\n";

static const char help_check[] =
        "\n"
        "Reports what this machine can enforce: a sandboxed self-test of the interpreter,\n"
        "user namespaces, seccomp, the cgroup version and parents, the mechanism behind\n"
        "each limit, and the readiness of the operator jobs.\n"
        "\n"
        "  --json          print the report as JSON\n"
        "  --python PATH   check this interpreter (under /usr) instead of /usr/bin/python3\n"
        "  --help          print this help and exit\n"
        "\n"
        "Exit status:\n"
        "  0   the sandbox can run here\n"
        "  1   it cannot: each problem is named\n"
        "  2   usage error\n"
        "\n"
        "Environment:\n"
        "  PYEXEC_PYTHON      the interpreter checked when --python is not given\n"
        "  PYEXEC_JOBS        the jobs file whose readiness is reported\n"
        "  PYEXEC_RUNNER, PYEXEC_UID_BASE, PYEXEC_UID_COUNT, PYEXEC_CGROUP: as for pyexec run\n";

int cmd_check(int argc, char **argv) {
        bool json = false;
        const char *python_opt = NULL;
        struct pyexec_sandbox *sb = NULL;
        json_t *report = NULL;
        int r;

        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--json") == 0)
                        json = true;
                else if (strcmp(argv[i], "--help") == 0) {
                        fputs(usage_check, stdout);
                        fputs(help_check, stdout);
                        return 0;
                } else if (strcmp(argv[i], "--python") == 0) {
                        if (i + 1 >= argc) {
                                fprintf(stderr, "pyexec check: option '--python' needs a path\n");
                                return EXIT_USAGE;
                        }
                        python_opt = argv[++i];
                } else {
                        fprintf(stderr, "pyexec check: unknown argument '%s'\n%s", argv[i], usage_check);
                        return EXIT_USAGE;
                }
        }
        r = pyexec_sandbox_new(&sb);
        if (r < 0) {
                fprintf(stderr, "pyexec check: the sandbox cannot be set up here: %s\n", strerror(-r));
                return 1;
        }
        {
                _cleanup_free_ char *jp = jobs_default_path();
                struct job_set set = { 0 };
                char err[1024];
                int jr = jp ? jobs_load(jp, &set, err, sizeof err) : -ENOENT;
                if (jr < 0 && jr != -ENOENT)
                        fprintf(stderr, "pyexec check: %s\n", err);
                r = check_report(sb, cmd_python_path(python_opt), jr == 0 ? &set : NULL, false, &report);
                jobs_done(&set);
        }
        if (r < 0) {
                fprintf(stderr, "pyexec check: %s\n", strerror(-r));
                pyexec_sandbox_free(sb);
                return 1;
        }
        if (json) {
                json_dumpf(report, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
                fputc('\n', stdout);
        } else
                check_print(report, stdout);
        r = json_is_true(json_object_get(report, "ok")) ? 0 : 1;
        json_decref(report);
        pyexec_sandbox_free(sb);
        return r;
}
