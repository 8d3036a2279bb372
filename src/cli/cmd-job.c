/* SPDX-License-Identifier: MIT */
/*
 * `pyexec job`: list the script jobs an operator registered in the jobs
 * file, or run one with key=value parameters (checked against its schema by
 * jobs-path.c) in a sandbox of its own, printing its output and its output
 * files.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "jobs.h"
#include "pyexec.h"
#include "result.h"

static const char usage_job[] = "usage: pyexec job list [--jobs FILE] [--json]\n"
                                "       pyexec job NAME [key=value]... [--jobs FILE] [--json]\n";

static const char help_job[] =
        "\n"
        "Runs a script job an operator registered in the jobs file, with parameters\n"
        "given as key=value (checked against the job's schema), in a sandbox.\n"
        "\n"
        "  list          list the jobs: name, description, and whether each is ready here\n"
        "  NAME k=v...   run job NAME with these parameters\n"
        "  --jobs FILE   the jobs file (default: $PYEXEC_JOBS, else ../jobs/jobs.yaml beside pyexec,\n"
        "                else " PYEXEC_DATADIR "/jobs/jobs.yaml)\n"
        "  --json        print the job list, or the run's result, as JSON\n"
        "  --help        print this help and exit\n"
        "\n"
        "Exit status:\n"
        "  0     the job ran and succeeded (or: list; with --json: the result was printed)\n"
        "  1     the job's script failed (runtime_error, syntax_error, policy_violation)\n"
        "  2     usage error: unknown job or option, bad parameter, no jobs file\n"
        "  69    the job is not ready: a root or its script is missing (nothing ran)\n"
        "  122   memory_limit    123   output_limit    124   timeout\n"
        "  125   internal_error: pyexec itself failed\n"
        "\n"
        "Environment:\n"
        "  PYEXEC_JOBS        the jobs file when --jobs is not given\n"
        "  PYEXEC_RUNNER, PYEXEC_UID_BASE, PYEXEC_UID_COUNT, PYEXEC_CGROUP: as for pyexec run\n";

/* What the command line asked. */
struct job_cmd {
        char *path;       /* --jobs FILE */
        const char *name; /* "list" or a job's */
        bool json;
        json_t *params; /* key=value..., as strings */
};

/* The arguments, into c: -1 to go on, else the exit code (--help printed,
 * or a usage error). */
static int job_parse_args(struct job_cmd *c, int argc, char **argv) {
        for (int i = 1; i < argc; i++) {
                char *eq;
                if (!strcmp(argv[i], "--json"))
                        c->json = true;
                else if (!strcmp(argv[i], "--jobs")) {
                        if (i + 1 >= argc) {
                                fprintf(stderr, "pyexec job: option '--jobs' needs a file\n%s", usage_job);
                                return EXIT_USAGE;
                        }
                        free(c->path);
                        c->path = strdup(argv[++i]);
                } else if (!strcmp(argv[i], "--help")) {
                        fputs(usage_job, stdout);
                        fputs(help_job, stdout);
                        return 0;
                } else if (argv[i][0] == '-') {
                        fprintf(stderr, "pyexec job: unknown option '%s'\n%s", argv[i], usage_job);
                        return EXIT_USAGE;
                } else if (!c->name)
                        c->name = argv[i];
                else if ((eq = strchr(argv[i], '=')) && eq != argv[i]) {
                        *eq = 0;
                        if (json_object_get(c->params, argv[i])) {
                                fprintf(stderr, "pyexec job: parameter '%s' is given twice\n", argv[i]);
                                return EXIT_USAGE;
                        }
                        json_object_set_new(c->params, argv[i], json_string(eq + 1));
                } else {
                        fprintf(stderr, "pyexec job: expected key=value, got '%s'\n%s", argv[i], usage_job);
                        return EXIT_USAGE;
                }
        }
        if (!c->name) {
                fputs(usage_job, stderr);
                return EXIT_USAGE;
        }
        return -1;
}

/* `pyexec job list`: name, description, readiness. */
static int job_list(const struct job_set *set, bool json) {
        json_t *d = jobs_describe(set);

        if (json) {
                json_dumpf(d, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
                fputc('\n', stdout);
        } else {
                size_t i;
                json_t *jb;
                json_array_foreach(json_object_get(d, "jobs"), i, jb) {
                        json_t *rd = json_object_get(jb, "readiness");
                        printf("%-12s %s%s\n", json_string_value(json_object_get(jb, "name")),
                               json_string_value(json_object_get(jb, "description"))
                                       ? json_string_value(json_object_get(jb, "description"))
                                       : "",
                               json_is_true(json_object_get(rd, "ready")) ? "" : "  (not ready)");
                }
        }
        json_decref(d);
        return 0;
}

/* A run's result without --json: the script's output, its output files,
 * the message when it did not succeed; the exit status for its status. */
static int job_print_result(json_t *res, enum pyexec_status status) {
        json_t *outs = json_object_get(res, "outputs"), *x;
        size_t i;

        fputs(json_string_value(json_object_get(res, "stdout")), stdout);
        fputs(json_string_value(json_object_get(res, "stderr")), stderr);
        json_array_foreach(outs, i, x)
                printf("output: %s (%lld bytes, sha256 %s)\n", json_string_value(json_object_get(x, "path")),
                       (long long)json_integer_value(json_object_get(x, "bytes")),
                       json_string_value(json_object_get(x, "sha256")));
        if (status != PYEXEC_OK)
                fprintf(stderr, "pyexec: %s: %s\n", json_string_value(json_object_get(res, "status")),
                        json_string_value(json_object_get(res, "message"))
                                ? json_string_value(json_object_get(res, "message"))
                                : "");
        return status == PYEXEC_OK               ? 0
               : status == PYEXEC_TIMEOUT        ? EXIT_TIMEOUT
               : status == PYEXEC_MEMORY_LIMIT   ? EXIT_MEMORY
               : status == PYEXEC_OUTPUT_LIMIT   ? EXIT_OUTPUT
               : status == PYEXEC_INTERNAL_ERROR ? EXIT_INTERNAL
                                                 : 1;
}

/* `pyexec job NAME k=v...`: run it in a sandbox of its own. */
static int job_run_named(const struct job_set *set, const struct job_cmd *c) {
        const struct job *j = jobs_find(set, c->name);
        struct pyexec_sandbox *sb = NULL;
        struct api_outcome out;
        struct api_error e = { 0 };
        json_t *res = NULL;
        char id[RESULT_ID_LEN + 1];
        int r, rc;

        if (!j) {
                fprintf(stderr, "pyexec job: no job named '%s' in %s\n", c->name, set->path);
                return EXIT_USAGE;
        }
        r = pyexec_sandbox_new(&sb);
        if (r < 0) {
                fprintf(stderr, "pyexec job: cannot set up the sandbox: %s\n", strerror(-r));
                return EXIT_INTERNAL;
        }
        result_new_id(id);
        r = job_run(sb, j, c->params, id, NULL, &res, &out, &e);
        if (r == 0 && !res) {
                fprintf(stderr, "pyexec job: cannot build the result\n");
                rc = EXIT_INTERNAL;
        } else if (r < 0) {
                fprintf(stderr, "pyexec job: %s\n", e.message);
                rc = e.http == 503 ? EXIT_UNAVAILABLE : e.http >= 500 ? EXIT_INTERNAL : EXIT_USAGE;
        } else if (c->json) {
                json_dumpf(res, stdout, RESULT_JSON_FLAGS);
                fputc('\n', stdout);
                rc = out.status == PYEXEC_INTERNAL_ERROR ? EXIT_INTERNAL : 0;
        } else
                rc = job_print_result(res, out.status);
        json_decref(res);
        pyexec_sandbox_free(sb);
        return rc;
}

int cmd_job(int argc, char **argv) {
        struct job_cmd c = { .params = json_object() };
        struct job_set set;
        char err[1024];
        int r, rc;

        if (!c.params)
                return EXIT_INTERNAL;
        rc = job_parse_args(&c, argc, argv);
        if (rc >= 0)
                goto out;
        if (!c.path)
                c.path = jobs_default_path();
        r = jobs_load(c.path, &set, err, sizeof err);
        if (r < 0) {
                fprintf(stderr, "pyexec job: %s\n",
                        r == -ENOENT ? "no jobs file (give --jobs FILE or PYEXEC_JOBS)" : err);
                rc = EXIT_USAGE;
                goto out;
        }
        rc = !strcmp(c.name, "list") ? job_list(&set, c.json) : job_run_named(&set, &c);
        jobs_done(&set);
out:
        free(c.path);
        json_decref(c.params);
        return rc;
}
