/* SPDX-License-Identifier: MIT */
/*
 * jobs-def: loading a jobs YAML file into definitions. A good file gives
 * exactly the values written (and the documented defaults); every bad file
 * is refused with a message that names the file, the job and the key, so
 * an operator can find the line. Each test writes its file into a fresh
 * temporary directory.
 */
#include "test-helpers.h"

#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "jobs-def.h"
#include "util.h"

struct tmp {
        char dir[64];
        char path[128];
};

static int tmp_setup(void **state) {
        struct tmp *t = calloc(1, sizeof *t);
        assert_non_null(t);
        snprintf(t->dir, sizeof t->dir, "/tmp/test-jobs-def-XXXXXX");
        assert_non_null(mkdtemp(t->dir));
        snprintf(t->path, sizeof t->path, "%s/jobs.yaml", t->dir);
        *state = t;
        return 0;
}

static int tmp_teardown(void **state) {
        struct tmp *t = *state;
        unlink(t->path);
        rmdir(t->dir);
        free(t);
        return 0;
}

static void write_yaml(const struct tmp *t, const char *text) {
        int fd = open(t->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write_all(fd, text, strlen(text)), 0);
        close(fd);
}

static int load(const struct tmp *t, const char *text, struct job_set *ret, char *err, size_t errlen) {
        write_yaml(t, text);
        err[0] = 0;
        return jobs_load(t->path, ret, err, errlen);
}

/* ---- good files ------------------------------------------------------------ */

static const char good_yaml[] = "jobs:\n"
                                "  all-types:\n"
                                "    description: every parameter type\n"
                                "    interpreter: /usr/bin/python3\n"
                                "    script: tool.py\n"
                                "    args: [\"{script}\", --in, \"{src}\", \"{dst}\", \"{outdir}\", \"{mode}\",\n"
                                "           \"{count}\", \"{scale}\", \"{quiet}\", \"{label}\"]\n"
                                "    env: [HOME_CONFIG, LANG]\n"
                                "    grace: 500\n"
                                "    limits: {timeout: 9000, memory: 256, pids: 4, output: 1000}\n"
                                "    params:\n"
                                "      src: {type: input_file, roots: [/srv/in/, /srv/more], extensions: [.PNG, jpg],\n"
                                "            max_bytes: 1000}\n"
                                "      dst: {type: output_file, roots: [/srv/out], extensions: [png]}\n"
                                "      outdir: {type: output_dir, roots: [/srv/dirs]}\n"
                                "      mode: {type: enum, values: [fast, slow], default: fast}\n"
                                "      count: {type: int, min: 1, max: 10}\n"
                                "      scale: {type: number, min: -0.5}\n"
                                "      quiet: {type: bool, flag: --quiet}\n"
                                "      label: {type: string, pattern: \"[a-z]+\", max_length: 12}\n"
                                "  other:\n"
                                "    interpreter: /usr/bin/true\n"
                                "    script: /opt/abs.sh\n"
                                "    args: [\"{script}\"]\n";

static const struct job_param *param(const struct job *j, const char *name) {
        for (size_t i = 0; i < j->n_params; i++)
                if (strcmp(j->params[i].name, name) == 0)
                        return &j->params[i];
        fail_msg("no parameter %s", name);
        return NULL;
}

static void test_good_file(void **state) {
        struct tmp *t = *state;
        struct job_set s = { 0 };
        char err[1024], want[256];
        const struct job *j;
        const struct job_param *p;

        assert_int_equal(load(t, good_yaml, &s, err, sizeof err), 0);
        assert_int_equal(s.n_jobs, 2);
        assert_string_equal(s.path, t->path);
        j = jobs_find(&s, "all-types");
        assert_non_null(j);
        assert_null(jobs_find(&s, "missing"));
        assert_string_equal(j->description, "every parameter type");
        assert_string_equal(j->interpreter, "/usr/bin/python3");
        /* A relative script is beside the jobs file. */
        snprintf(want, sizeof want, "%s/tool.py", t->dir);
        assert_string_equal(j->script, want);
        assert_int_equal(j->n_args, 10);
        assert_string_equal(j->args[1], "--in");
        assert_int_equal(j->n_env, 2);
        assert_string_equal(j->env[0], "HOME_CONFIG");
        assert_int_equal(j->term_grace_ms, 500);
        assert_int_equal(j->limits.timeout_ms, 9000);
        /* cpu_time defaults to the timeout. */
        assert_int_equal(j->limits.cpu_time_ms, 9000);
        assert_int_equal(j->limits.memory_mb, 256);
        assert_int_equal(j->limits.pids, 4);
        assert_int_equal(j->limits.max_output, 1000);
        assert_int_equal(j->n_params, 8);

        p = param(j, "src");
        assert_int_equal(p->type, JOB_INPUT_FILE);
        assert_int_equal(p->n_roots, 2);
        /* Trailing slashes go; extensions lose their dot and case. */
        assert_string_equal(p->roots[0], "/srv/in");
        assert_int_equal(p->n_extensions, 2);
        assert_string_equal(p->extensions[0], "png");
        assert_int_equal(p->max_bytes, 1000);
        assert_null(p->def);
        p = param(j, "dst");
        assert_int_equal(p->type, JOB_OUTPUT_FILE);
        assert_string_equal(p->roots[0], "/srv/out");
        p = param(j, "outdir");
        assert_int_equal(p->type, JOB_OUTPUT_DIR);
        assert_int_equal(p->n_extensions, 0);
        p = param(j, "mode");
        assert_int_equal(p->type, JOB_ENUM);
        assert_int_equal(p->n_values, 2);
        assert_string_equal(json_string_value(p->def), "fast");
        p = param(j, "count");
        assert_int_equal(p->type, JOB_INT);
        assert_true(p->min == 1 && p->max == 10);
        p = param(j, "scale");
        assert_int_equal(p->type, JOB_NUMBER);
        assert_true(p->min == -0.5 && isinf(p->max) && p->max > 0);
        p = param(j, "quiet");
        assert_int_equal(p->type, JOB_BOOL);
        assert_string_equal(p->flag, "--quiet");
        p = param(j, "label");
        assert_int_equal(p->type, JOB_STRING);
        assert_true(p->has_re);
        assert_int_equal(p->max_length, 12);

        /* The defaults of a job that sets nothing. */
        j = jobs_find(&s, "other");
        assert_non_null(j);
        assert_string_equal(j->script, "/opt/abs.sh");
        assert_int_equal(j->n_params, 0);
        assert_int_equal(j->limits.timeout_ms, 60000);
        assert_int_equal(j->limits.cpu_time_ms, 60000);
        assert_int_equal(j->limits.memory_mb, 512);
        assert_int_equal(j->limits.max_output, 65536);
        assert_int_equal(j->term_grace_ms, 2000);
        jobs_done(&s);
        assert_int_equal(s.n_jobs, 0);
        assert_null(s.jobs);
}

static void test_describe(void **state) {
        struct tmp *t = *state;
        struct job_set s = { 0 };
        char err[1024];
        json_t *d, *params, *x;

        assert_int_equal(load(t, good_yaml, &s, err, sizeof err), 0);
        d = jobs_describe(&s);
        assert_non_null(d);
        assert_int_equal(json_array_size(json_object_get(d, "jobs")), 2);
        x = json_array_get(json_object_get(d, "jobs"), 0);
        assert_string_equal(json_string_value(json_object_get(x, "name")), "all-types");
        params = json_object_get(x, "params");
        assert_true(json_is_true(json_object_get(json_object_get(params, "src"), "required")));
        assert_true(json_is_false(json_object_get(json_object_get(params, "mode"), "required")));
        /* An absent flag is false: a bool is never required. */
        assert_true(json_is_false(json_object_get(json_object_get(params, "quiet"), "required")));
        assert_int_equal(json_integer_value(json_object_get(json_object_get(params, "label"), "maxLength")), 12);
        /* The script and roots do not exist here: not ready, saying why. */
        x = json_object_get(x, "readiness");
        assert_true(json_is_false(json_object_get(x, "ready")));
        assert_true(json_array_size(json_object_get(x, "problems")) >= 2);
        json_decref(d);
        jobs_done(&s);
}

/* The shipped file, found as the service finds it (beside the build
 * directory: jobs/jobs.yaml of the source tree). */
static void test_shipped_file(void **state) {
        struct job_set s = { 0 };
        char err[1024] = "";
        _cleanup_free_ char *path = NULL;

        (void)state;
        unsetenv("PYEXEC_JOBS");
        path = jobs_default_path();
        assert_non_null(path);
        if (access(path, R_OK) < 0)
                skip();
        if (jobs_load(path, &s, err, sizeof err) < 0)
                fail_msg("%s", err);
        assert_non_null(jobs_find(&s, "compose"));
        assert_non_null(jobs_find(&s, "render"));
        jobs_done(&s);

        setenv("PYEXEC_JOBS", "/nonexistent/jobs.yaml", 1);
        free(path);
        path = jobs_default_path();
        assert_string_equal(path, "/nonexistent/jobs.yaml");
        assert_int_equal(jobs_load(path, &s, err, sizeof err), -ENOENT);
        assert_non_null(strstr(err, "/nonexistent/jobs.yaml: cannot read"));
        unsetenv("PYEXEC_JOBS");
}

/* ---- bad files ---------------------------------------------------------------- */

#define JOB_HEAD                              \
        "jobs:\n"                             \
        "  good:\n"                           \
        "    interpreter: /usr/bin/python3\n" \
        "    script: s.py\n"                  \
        "    args: [\"{script}\"]\n"          \
        "  bad:\n"                            \
        "    interpreter: /usr/bin/python3\n" \
        "    script: s.py\n"

/* A job "bad" with one parameter x declared as PARAM. */
#define BAD_PARAM(PARAM) JOB_HEAD "    args: [\"{script}\", \"{x}\"]\n    params:\n      x: " PARAM "\n"

static const struct bad_case {
        const char *name;
        const char *yaml;
        const char *job;  /* the job the message must name, NULL: none */
        const char *what; /* the rest of the message after "job 'J': " */
} bad_cases[] = {
        /* The file as a whole. */
        { "not-a-mapping", "- a\n- b\n", NULL,
          "the file must be a mapping with one key, 'jobs', holding a mapping of jobs" },
        { "extra-top-key", "jobs: {}\nother: 1\n", NULL, "the file must be a mapping with one key, 'jobs'" },
        { "empty", "", NULL, "empty document" },
        { "malformed", "jobs: [\n", NULL, "line 2: " },
        { "too-deep", "jobs: {a: [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}\n", NULL, "nested deeper than 16 levels" },
        { "complex-key", "jobs:\n  ? [a]\n  : 1\n", NULL, "line 2: keys must be plain words" },
        /* A job's own keys. */
        { "unknown-job-key", JOB_HEAD "    args: [\"{script}\"]\n    timeout: 5\n", "bad", "unknown key 'timeout'" },
        { "duplicate-key", JOB_HEAD "    args: [\"{script}\"]\n    script: t.py\n", "bad",
          "key 'script' appears twice (line 10)" },
        { "job-name", "jobs:\n  Bad:\n    interpreter: /usr/bin/true\n", "Bad",
          "job names are lower-case letters, digits, '-' and '_'" },
        { "job-not-mapping", "jobs:\n  bad: 1\n", "bad", "must be a mapping" },
        { "interpreter-missing", "jobs:\n  bad:\n    script: s.py\n", "bad", "interpreter is required" },
        { "interpreter-outside-usr", "jobs:\n  bad:\n    interpreter: /bin/sh\n", "bad",
          "interpreter must be an absolute path under /usr (the only host tree the sandbox sees), got '/bin/sh'" },
        { "interpreter-dotdot", "jobs:\n  bad:\n    interpreter: /usr/../bin/sh\n", "bad",
          "interpreter must be an absolute path under /usr" },
        { "script-missing", "jobs:\n  bad:\n    interpreter: /usr/bin/true\n", "bad", "script is required" },
        { "script-not-text", "jobs:\n  bad:\n    interpreter: /usr/bin/true\n    script: [a]\n", "bad",
          "script must be text" },
        { "args-missing", JOB_HEAD, "bad", "args is required" },
        { "args-empty", JOB_HEAD "    args: []\n", "bad", "args must be a list of 1 to 256 entries" },
        { "args-not-text", JOB_HEAD "    args: [[a]]\n", "bad", "args[0] must be text" },
        { "env-name", JOB_HEAD "    args: [\"{script}\"]\n    env: [lower]\n", "bad",
          "env[0] must be a variable name like BLENDER_USER_CONFIG" },
        { "grace-range", JOB_HEAD "    args: [\"{script}\"]\n    grace: 600001\n", "bad",
          "grace must be a whole number between 0 and 600000" },
        /* limits. */
        { "limits-not-mapping", JOB_HEAD "    args: [\"{script}\"]\n    limits: 5\n", "bad",
          "limits must be a mapping" },
        /* A key of another type would be ignored: refused. */
        { "extensions-on-output-dir", BAD_PARAM("{type: output_dir, roots: [/srv], extensions: [png]}"), "bad",
          "params.x.extensions does not apply to a parameter of type output_dir" },
        { "values-on-int", BAD_PARAM("{type: int, values: [a]}"), "bad",
          "params.x.values does not apply to a parameter of type int" },
        { "unknown-limit", JOB_HEAD "    args: [\"{script}\"]\n    limits: {memry: 64}\n", "bad",
          "limits.: unknown key 'memry'" },
        { "limit-range", JOB_HEAD "    args: [\"{script}\"]\n    limits: {memory: 8}\n", "bad",
          "limits.memory must be a whole number between 16 and 4096" },
        /* A value the run would refuse (src/basic/limits.c) is refused at load. */
        { "limit-above-run-max", JOB_HEAD "    args: [\"{script}\"]\n    limits: {timeout: 900000}\n", "bad",
          "limits.timeout must be a whole number between 1 and 600000" },
        { "limit-not-number", JOB_HEAD "    args: [\"{script}\"]\n    limits: {timeout: 5s}\n", "bad",
          "limits.timeout must be a whole number between 1 and 600000" },
        /* The template. */
        { "placeholder-names-nothing", JOB_HEAD "    args: [\"{script}\", \"{y}\"]\n", "bad",
          "args[1] '{y}' names no parameter" },
        { "duplicate-args", BAD_PARAM("{type: string}") "    args: [\"{script}\", \"--x={x}\"]\n", "bad",
          "key 'args' appears twice" },
        { "placeholder-part", JOB_HEAD "    args: [\"{script}\", \"--x={x}\"]\n    params: {x: {type: string}}\n",
          "bad", "args[1] '--x={x}': a placeholder must be a whole argument like '{name}'" },
        { "parameter-unused", JOB_HEAD "    args: [\"{script}\"]\n    params: {z: {type: int}}\n", "bad",
          "parameter 'z' is not used in args" },
        /* Parameters. */
        { "params-not-mapping", JOB_HEAD "    args: [\"{script}\"]\n    params: [a]\n", "bad",
          "params must be a mapping of at most 32 parameters" },
        { "param-name", JOB_HEAD "    args: [\"{script}\", \"{x-y}\"]\n    params: {x-y: {type: int}}\n", "bad",
          "parameter name 'x-y' must be lower-case letters, digits and '_'" },
        { "param-not-mapping", BAD_PARAM("int"), "bad", "params.x must be a mapping" },
        { "unknown-param-key", BAD_PARAM("{type: string, regex: a}"), "bad", "params.x.: unknown key 'regex'" },
        { "param-duplicate-key", BAD_PARAM("{type: string, type: int}"), "bad", "key 'params.x.type' appears twice" },
        { "param-type-missing", BAD_PARAM("{description: d}"), "bad", "params.x.type is required" },
        { "param-type-unknown", BAD_PARAM("{type: path}"), "bad",
          "params.x.type must be one of input_file, output_file, output_dir, enum, int, number, bool, string" },
        { "file-without-roots", BAD_PARAM("{type: input_file, extensions: [png]}"), "bad",
          "params.x.roots is required" },
        { "file-with-default", BAD_PARAM("{type: input_file, roots: [/srv], extensions: [png], default: a}"), "bad",
          "params.x.default: file parameters have no default" },
        { "root-relative", BAD_PARAM("{type: output_dir, roots: [srv]}"), "bad",
          "params.x.roots[0] must be an absolute path without '..' (and not /)" },
        { "root-dotdot", BAD_PARAM("{type: output_dir, roots: [/srv, /srv/../etc]}"), "bad",
          "params.x.roots[1] must be an absolute path without '..'" },
        { "root-slash", BAD_PARAM("{type: output_dir, roots: [/]}"), "bad", "params.x.roots[0] must be an absolute" },
        { "input-without-extensions", BAD_PARAM("{type: input_file, roots: [/srv]}"), "bad",
          "params.x.extensions is required" },
        { "extension-empty", BAD_PARAM("{type: output_file, roots: [/srv], extensions: [.]}"), "bad",
          "params.x.extensions[0] must be an extension like 'png'" },
        { "extension-slash", BAD_PARAM("{type: output_file, roots: [/srv], extensions: [a/b]}"), "bad",
          "params.x.extensions[0] must be an extension like 'png'" },
        { "max-bytes-range", BAD_PARAM("{type: input_file, roots: [/srv], extensions: [png], max_bytes: 0}"), "bad",
          "params.x.max_bytes must be a whole number between 1 and 1099511627776" },
        { "enum-without-values", BAD_PARAM("{type: enum}"), "bad", "params.x.values is required" },
        { "int-min-not-number", BAD_PARAM("{type: int, min: one}"), "bad", "params.x.min must be a number" },
        { "int-max-nan", BAD_PARAM("{type: number, max: nan}"), "bad", "params.x.max must be a number" },
        { "int-min-above-max", BAD_PARAM("{type: int, min: 5, max: 1}"), "bad", "params.x.min is above max" },
        { "bool-without-flag", BAD_PARAM("{type: bool}"), "bad", "params.x.flag is required" },
        { "bool-flag-not-option", BAD_PARAM("{type: bool, flag: yes}"), "bad",
          "params.x.flag must be an option like --no-animation" },
        { "string-bad-regex", BAD_PARAM("{type: string, pattern: \"([a-z\"}"), "bad",
          "params.x.pattern is not a valid POSIX extended regular expression" },
        { "string-max-length", BAD_PARAM("{type: string, max_length: 65537}"), "bad",
          "params.x.max_length must be a whole number between 1 and 65536" },
        { "default-not-single", BAD_PARAM("{type: string, default: [a, b]}"), "bad",
          "params.x.default must be a single value" },
};

static void test_bad_files(void **state) {
        struct tmp *t = *state;

        for (size_t i = 0; i < ELEMENTSOF(bad_cases); i++) {
                const struct bad_case *c = &bad_cases[i];
                struct job_set s = { 0 };
                char err[1024], want[512];
                int r = load(t, c->yaml, &s, err, sizeof err);

                if (r != -EINVAL)
                        fail_msg("%s: jobs_load() returned %d, not -EINVAL (err: %s)", c->name, r, err);
                assert_int_equal(s.n_jobs, 0);
                /* The file first, then the job, then the key. */
                if (c->job)
                        snprintf(want, sizeof want, "%s: job '%s': %s", t->path, c->job, c->what);
                else
                        snprintf(want, sizeof want, "%s: %s", t->path, c->what);
                if (strncmp(err, want, strlen(want)) != 0)
                        fail_msg("%s: got '%s', want '%s'", c->name, err, want);
                if (strncmp(err, t->path, strlen(t->path)) != 0)
                        fail_msg("%s: '%s' does not start with the file", c->name, err);
                if (c->job) {
                        snprintf(want, sizeof want, "job '%s'", c->job);
                        if (!strstr(err, want))
                                fail_msg("%s: '%s' does not name the job", c->name, err);
                }
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_good_file, tmp_setup, tmp_teardown),
                cmocka_unit_test_setup_teardown(test_describe, tmp_setup, tmp_teardown),
                cmocka_unit_test(test_shipped_file),
                cmocka_unit_test_setup_teardown(test_bad_files, tmp_setup, tmp_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
