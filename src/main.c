/* SPDX-License-Identifier: MIT */
/*
 * The pyexec command: parse arguments, call the library, map the outcome to
 * an exit code. Nothing else lives here.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "client.h"
#include "config.h"
#include "http.h"
#include "jobs.h"
#include "policy.h"
#include "pyexec.h"
#include "result.h"

/* Exit codes of `pyexec run` when the sandbox, not the program, decided. */
enum {
        EXIT_USAGE = 2,
        EXIT_POLICY = 121,
        EXIT_MEMORY = 122,
        EXIT_OUTPUT = 123,
        EXIT_TIMEOUT = 124,
        EXIT_INTERNAL = 125,
};

#define DEFAULT_PYTHON "/usr/bin/python3"
#define MAX_ARGS 256
#define MAX_FILES 64

static const char usage_run[] =
        "usage: pyexec run [--json] [--timeout MS] [--cpu-time MS] [--memory MB] [--max-output BYTES]\n"
        "                  [--pids N] [--disk MB] [--file-size MB] [--open-files N] [--python PATH]\n"
        "                  [--policy NAME] [--service http://HOST:PORT]\n"
        "                  [--stdin FILE] [--arg ARG]... [--file NAME=PATH]... [--test FILE [--module NAME]]\n"
        "                  FILE|-\n";

/* What each of run's own options means; the limits follow from
 * pyexec_limit_table (print_run_help), so their ranges and defaults stay
 * the library's. */
static const char help_run_options[] =
        "  --json                 print the result as one JSON object on stdout; exit 0 unless pyexec failed\n"
        "  --stdin FILE           the program's standard input (- for pyexec's own); default: empty\n"
        "  --arg ARG              append ARG to sys.argv (repeatable, at most 256)\n"
        "  --file NAME=PATH       copy the host file PATH into the work directory as NAME (repeatable, at most 64)\n"
        "  --test FILE            run FILE as main.py, with the program saved as starter.py beside it\n"
        "  --module NAME          with --test: save the program as NAME.py instead of starter.py\n"
        "  --python PATH          run this interpreter (under /usr) as is, without the runner or a policy\n"
        "  --policy NAME          run under policy education or permissive (default: none, as permissive)\n"
        "  --service URL          run on a running `pyexec serve` (http://HOST:PORT), on its warm path\n"
        "  --help                 print this help and exit\n";

static const char help_run_tail[] =
        "\n"
        "Exit status (without --json):\n"
        "  0-255     the program's own exit status (ok, runtime_error, syntax_error)\n"
        "  128+N     the program was killed by signal N\n"
        "  2         usage error\n"
        "  121       policy_violation\n"
        "  122       memory_limit\n"
        "  123       output_limit\n"
        "  124       timeout (wall clock or CPU)\n"
        "  125       internal_error: pyexec itself failed\n"
        "With --json: 0, or 125 when pyexec itself failed, or 2 for a usage error.\n"
        "\n"
        "Environment:\n"
        "  PYEXEC_PYTHON      the interpreter --python defaults to (default: /usr/bin/python3)\n"
        "  PYEXEC_RUNNER      absolute path of pyexec-runner (default: beside pyexec, else\n"
        "                     /usr/local/libexec/pyexec/pyexec-runner)\n"
        "  PYEXEC_UID_BASE    first host uid of the per-run uid pool (default: 1900000000)\n"
        "  PYEXEC_UID_COUNT   uid slots in the pool, 1-65536 (default: 1024)\n"
        "  PYEXEC_CGROUP      the delegated cgroup2 parent runs are placed under\n"
        "  PYEXEC_API_KEY     with --service: sent as the bearer API key\n";

static const char help_job[] =
        "\n"
        "Runs a script job an operator registered in the jobs file, with parameters\n"
        "given as key=value (checked against the job's schema), in a sandbox.\n"
        "\n"
        "  list          list the jobs: name, description, and whether each is ready here\n"
        "  NAME k=v...   run job NAME with these parameters\n"
        "  --jobs FILE   the jobs file (default: $PYEXEC_JOBS, else ../jobs/jobs.yaml beside pyexec)\n"
        "  --json        print the job list, or the run's result, as JSON\n"
        "  --help        print this help and exit\n"
        "\n"
        "Exit status:\n"
        "  0     the job ran and succeeded (or: list; with --json: the result was printed)\n"
        "  1     the job's script failed (runtime_error, syntax_error, policy_violation)\n"
        "  2     usage error: unknown job or option, bad parameter, no jobs file\n"
        "  122   memory_limit    123   output_limit    124   timeout\n"
        "  125   internal_error: pyexec itself failed\n"
        "\n"
        "Environment:\n"
        "  PYEXEC_JOBS        the jobs file when --jobs is not given\n"
        "  PYEXEC_RUNNER, PYEXEC_UID_BASE, PYEXEC_UID_COUNT, PYEXEC_CGROUP: as for pyexec run\n";

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

/* What each limit of pyexec_limit_table means to a user; its range and
 * default are printed from the table itself. */
static const struct {
        const char *option, *meaning;
} limit_meanings[] = {
        { "timeout", "wall-clock time of the run" },
        { "cpu-time", "CPU time of the whole process tree (unset: the --timeout value)" },
        { "memory", "memory of the whole process tree" },
        { "max-output", "stdout+stderr together; the run is killed at the cap" },
        { "pids", "processes and threads at once" },
        { "disk", "size of the work directory /sandbox, and of /tmp" },
        { "file-size", "largest file the program may write" },
        { "open-files", "open file descriptors per process" },
};

static void print_run_help(FILE *f) {
        fputs(usage_run, f);
        fputs("\nRuns one Python program (FILE, or standard input for -) in a fresh sandbox.\n\n", f);
        fputs(help_run_options, f);
        for (size_t i = 0; i < pyexec_limit_count; i++) {
                const struct pyexec_limit_info *in = &pyexec_limit_table[i];
                const char *meaning = in->enforced_by;
                char flag[48], arg[16];
                size_t k;

                for (k = 0; k < ELEMENTSOF(limit_meanings); k++)
                        if (strcmp(limit_meanings[k].option, in->option) == 0)
                                meaning = limit_meanings[k].meaning;
                snprintf(arg, sizeof arg, "%s", in->unit[0] ? in->unit : "N");
                for (k = 0; arg[k]; k++)
                        arg[k] = (char)toupper((unsigned char)arg[k]);
                snprintf(flag, sizeof flag, "--%s %s", in->option, arg);
                fprintf(f, "  %-22s %s: %llu-%llu%s%s, default %llu\n", flag, meaning, (unsigned long long)in->min,
                        (unsigned long long)in->max, in->unit[0] ? " " : "", in->unit, (unsigned long long)in->def);
        }
        fputs(help_run_tail, f);
}

static const char usage_main[] =
        "usage: pyexec run [OPTIONS] FILE|-   run a Python program in a sandbox (pyexec run --help)\n"
        "       pyexec check [--json]         report what this machine can enforce\n"
        "       pyexec serve [OPTIONS]        the HTTP service (pyexec serve --help)\n"
        "       pyexec job list | NAME k=v... run an operator script job (pyexec job --help)\n"
        "       pyexec --version              print the version and exit\n";

_Noreturn _printf_(1, 2) static void usage_error(const char *fmt, ...) {
        va_list ap;
        fputs("pyexec run: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputs("\n", stderr);
        fputs(usage_run, stderr);
        exit(EXIT_USAGE);
}

static const char *python_path(const char *opt) {
        const char *p = opt ? opt : getenv("PYEXEC_PYTHON");
        return p && *p ? p : DEFAULT_PYTHON;
}

/* The sandbox sees the host's /usr only: the interpreter must live there. */
static void validate_python(const char *p) {
        char real[PATH_MAX];
        if (p[0] != '/')
                usage_error("--python must be an absolute path, got '%s'", p);
        if (!realpath(p, real) || access(real, X_OK) < 0)
                usage_error("--python '%s' is not an executable file: %s", p, strerror(errno));
        if (strncmp(real, "/usr/", 5) != 0)
                usage_error("--python '%s' resolves to '%s', outside /usr, the only host tree the sandbox sees", p, real);
}

static void read_input(const char *what, const char *path, size_t max, struct buf *ret) {
        int r = strcmp(path, "-") == 0 ? read_file("/dev/stdin", max, ret) : read_file(path, max, ret);
        if (r == -EFBIG)
                usage_error("%s '%s' is larger than %zu bytes", what, path, max);
        if (r < 0)
                usage_error("cannot read %s '%s': %s", what, path, strerror(-r));
}

enum {
        OPT_JSON = 0x100,
        OPT_STDIN,
        OPT_ARG,
        OPT_FILE,
        OPT_TEST,
        OPT_MODULE,
        OPT_PYTHON,
        OPT_POLICY,
        OPT_SERVICE,
        OPT_HELP,
        OPT_LIMIT, /* + index into pyexec_limit_table */
};

static int exit_code_for(const struct pyexec_result *res) {
        switch (res->status) {
        case PYEXEC_OK:
        case PYEXEC_RUNTIME_ERROR:
        case PYEXEC_SYNTAX_ERROR:
                if (res->signal)
                        return 128 + res->signal;
                return res->exit_code >= 0 ? res->exit_code : 1;
        case PYEXEC_TIMEOUT:
                return EXIT_TIMEOUT;
        case PYEXEC_MEMORY_LIMIT:
                return EXIT_MEMORY;
        case PYEXEC_OUTPUT_LIMIT:
                return EXIT_OUTPUT;
        case PYEXEC_POLICY_VIOLATION:
                return EXIT_POLICY;
        default:
                return EXIT_INTERNAL;
        }
}

static int signal_number(const char *name) {
        for (int s = 1; s < NSIG; s++) {
                const char *a = sigabbrev_np(s);
                if (a && name && strncmp(name, "SIG", 3) == 0 && strcmp(name + 3, a) == 0)
                        return s;
        }
        return 0;
}

static json_t *json_text(const char *what, const char *p, size_t n) {
        if (!utf8_is_valid(p, n))
                usage_error("--service takes text only: %s is not UTF-8", what);
        return json_stringn(p, n);
}

/*
 * `pyexec run --service URL`: the same program, files, stdin, arguments,
 * limits and policy, run by a running service (on its warm path). The
 * result is printed exactly as a local run's; HTTP errors are reported with
 * the service's own message.
 */
static int run_on_service(const char *url, const char *policy, unsigned limits_given, const struct pyexec_spec *spec,
                          const struct buf *test, const struct buf *code, const char *module, bool json) {
        static const struct {
                const char *option, *field;
        } fields[] = {
                { "timeout", "timeout" },
                { "cpu-time", "cpuTimeout" },
                { "memory", "memoryLimit" },
                { "max-output", "maxOutput" },
        };
        json_t *req = json_object(), *files = json_array(), *args = json_array(), *doc = NULL;
        struct pyexec_result res = { .exit_code = -1 };
        char err[1024];
        unsigned http = 0;
        int r, rc;

        for (size_t i = 0; i < pyexec_limit_count; i++) {
                const struct pyexec_limit_info *in = &pyexec_limit_table[i];
                const char *field = NULL;
                if (!(limits_given & (1u << i)))
                        continue;
                for (size_t k = 0; k < ELEMENTSOF(fields); k++)
                        if (strcmp(fields[k].option, in->option) == 0)
                                field = fields[k].field;
                if (!field)
                        usage_error("--%s is set by the service's configuration, not per run: it cannot go with --service",
                                    in->option);
                json_object_set_new(req, field,
                                    json_integer((json_int_t) * pyexec_limit_ptr((struct pyexec_limits *)&spec->limits, in)));
        }
        /* files[0] is main.py; with --test the module follows it. */
        if (test) {
                json_object_set_new(req, "code", json_text("the program", code->data, code->len));
                json_object_set_new(req, "testCode", json_text("the --test file", test->data, test->len));
                json_object_set_new(req, "runTests", json_true());
                if (module)
                        json_object_set_new(req, "moduleName", json_string(module));
        }
        for (size_t i = 0; i < spec->n_files; i++) {
                const struct pyexec_file *f = &spec->files[i];
                if (strcmp(f->name, PYEXEC_MAIN_FILE) == 0) {
                        if (!test)
                                json_object_set_new(req, "code", json_text("the program", f->data, f->len));
                        continue;
                }
                if (test && i == spec->n_files - 1)
                        continue; /* the module: code above */
                json_array_append_new(files, json_pack("{s:s,s:o}", "name", f->name, "content",
                                                       json_text(f->name, f->data, f->len)));
        }
        if (json_array_size(files))
                json_object_set(req, "files", files);
        for (size_t i = 0; i < spec->n_args; i++)
                json_array_append_new(args, json_string(spec->args[i]));
        if (json_array_size(args))
                json_object_set(req, "args", args);
        if (spec->stdin_len)
                json_object_set_new(req, "stdin", json_text("--stdin", spec->stdin_data, spec->stdin_len));
        if (policy)
                json_object_set_new(req, "policy", json_string(policy));

        r = client_execute(url, getenv("PYEXEC_API_KEY"), req, &http, &doc, err, sizeof err);
        json_decref(req);
        json_decref(files);
        json_decref(args);
        if (r < 0) {
                fprintf(stderr, "pyexec: %s\n", err);
                return EXIT_INTERNAL;
        }
        if (http != 200 && http != 500) {
                json_t *e = json_object_get(doc, "error");
                fprintf(stderr, "pyexec: the service answered %u: %s\n", http,
                        json_string_value(json_object_get(e, "message")) ?: "(no message)");
                json_decref(doc);
                return http == 400 || http == 413 ? EXIT_USAGE : EXIT_INTERNAL;
        }
        if (json) {
                json_dumpf(doc, stdout, RESULT_JSON_FLAGS);
                fputc('\n', stdout);
                rc = strcmp(json_string_value(json_object_get(doc, "status")) ?: "", "internal_error") == 0 ? EXIT_INTERNAL
                                                                                                        : 0;
                json_decref(doc);
                return rc;
        }
        {
                const char *out = json_string_value(json_object_get(doc, "stdout")) ?: "";
                const char *errs = json_string_value(json_object_get(doc, "stderr")) ?: "";
                const char *status = json_string_value(json_object_get(doc, "status")) ?: "internal_error";
                const char *msg = json_string_value(json_object_get(doc, "message"));
                json_t *ec = json_object_get(doc, "exitCode");
                (void)write_all(STDOUT_FILENO, out, strlen(out));
                (void)write_all(STDERR_FILENO, errs, strlen(errs));
                res.status = PYEXEC_INTERNAL_ERROR;
                for (int s = 0; s < _PYEXEC_STATUS_MAX; s++)
                        if (strcmp(status, pyexec_status_to_string((enum pyexec_status)s)) == 0)
                                res.status = (enum pyexec_status)s;
                res.exit_code = json_is_integer(ec) ? (int)json_integer_value(ec) : -1;
                res.signal = signal_number(json_string_value(json_object_get(doc, "signal")));
                rc = exit_code_for(&res);
                if (res.status != PYEXEC_OK && res.status != PYEXEC_RUNTIME_ERROR && res.status != PYEXEC_SYNTAX_ERROR)
                        fprintf(stderr, "pyexec: %s: %s\n", status, msg ? msg : "");
        }
        json_decref(doc);
        return rc;
}

static int cmd_run(int argc, char **argv) {
        struct option opts[32];
        size_t no = 0;
        struct pyexec_spec spec = { .echo_stdout = -1, .echo_stderr = -1 };
        struct pyexec_file files[MAX_FILES + 2];
        struct buf file_data[MAX_FILES + 2], code, stdin_buf, test;
        const char *args[MAX_ARGS];
        const char *stdin_path = NULL, *test_path = NULL, *module = NULL, *python_opt = NULL, *policy_opt = NULL;
        bool json = false, cpu_given = false;
        struct policy_set policies = { 0 };
        char *policy_line = NULL;
        const char *service = NULL;
        unsigned limits_given = 0; /* bit per pyexec_limit_table entry */
        size_t n_files = 0, n_args = 0;
        struct pyexec_sandbox *sb = NULL;
        struct pyexec_result res;
        char id[RESULT_ID_LEN + 1], err[512];
        int c, r, rc;

        pyexec_limits_default(&spec.limits);
        opts[no++] = (struct option){ "json", no_argument, NULL, OPT_JSON };
        opts[no++] = (struct option){ "stdin", required_argument, NULL, OPT_STDIN };
        opts[no++] = (struct option){ "arg", required_argument, NULL, OPT_ARG };
        opts[no++] = (struct option){ "file", required_argument, NULL, OPT_FILE };
        opts[no++] = (struct option){ "test", required_argument, NULL, OPT_TEST };
        opts[no++] = (struct option){ "module", required_argument, NULL, OPT_MODULE };
        opts[no++] = (struct option){ "python", required_argument, NULL, OPT_PYTHON };
        opts[no++] = (struct option){ "policy", required_argument, NULL, OPT_POLICY };
        opts[no++] = (struct option){ "service", required_argument, NULL, OPT_SERVICE };
        opts[no++] = (struct option){ "help", no_argument, NULL, OPT_HELP };
        for (size_t i = 0; i < pyexec_limit_count; i++)
                opts[no++] = (struct option){ pyexec_limit_table[i].option, required_argument, NULL, OPT_LIMIT + (int)i };
        opts[no] = (struct option){ 0 };

        /* Sizes of what is read from the host are bounded by the work
         * directory they must fit in. */
        opterr = 0;
        optind = 1;
        while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
                switch (c) {
                case OPT_JSON:
                        json = true;
                        break;
                case OPT_STDIN:
                        stdin_path = optarg;
                        break;
                case OPT_ARG:
                        if (n_args >= MAX_ARGS)
                                usage_error("at most %d --arg options", MAX_ARGS);
                        args[n_args++] = optarg;
                        break;
                case OPT_FILE: {
                        char *eq = strchr(optarg, '=');
                        if (n_files >= MAX_FILES)
                                usage_error("at most %d --file options", MAX_FILES);
                        if (!eq || eq == optarg || !eq[1])
                                usage_error("--file takes NAME=PATH, got '%s'", optarg);
                        *eq = 0;
                        if (!filename_is_plain(optarg, strlen(optarg)))
                                usage_error("--file name '%s' must be a plain file name (no '/', not '.' or '..', "
                                            "no control characters, at most 255 bytes)",
                                            optarg);
                        files[n_files].name = optarg;
                        files[n_files].data = eq + 1; /* the path, for now */
                        n_files++;
                        break;
                }
                case OPT_TEST:
                        test_path = optarg;
                        break;
                case OPT_MODULE:
                        if (!module_name_is_valid(optarg) || strcmp(optarg, "main") == 0)
                                usage_error("--module must be a Python identifier of at most 64 characters other "
                                            "than 'main', got '%s'",
                                            optarg);
                        module = optarg;
                        break;
                case OPT_PYTHON:
                        python_opt = optarg;
                        break;
                case OPT_POLICY:
                        policy_opt = optarg;
                        break;
                case OPT_SERVICE:
                        service = optarg;
                        break;
                case OPT_HELP:
                        print_run_help(stdout);
                        return 0;
                case ':':
                        usage_error("option '%s' needs a value", argv[optind - 1]);
                case '?':
                        usage_error("unknown option '%s'", argv[optind - 1]);
                default:
                        if (c >= OPT_LIMIT && c < OPT_LIMIT + (int)pyexec_limit_count) {
                                const struct pyexec_limit_info *in = &pyexec_limit_table[c - OPT_LIMIT];
                                if (pyexec_limit_parse(in, optarg, "--", pyexec_limit_ptr(&spec.limits, in), err,
                                                       sizeof err) < 0)
                                        usage_error("%s", err);
                                if (strcmp(in->option, "cpu-time") == 0)
                                        cpu_given = true;
                                limits_given |= 1u << (c - OPT_LIMIT);
                        }
                        break;
                }
        }
        if (optind != argc - 1)
                usage_error(optind >= argc ? "a program FILE (or - for stdin) is required"
                                           : "exactly one program FILE is allowed, got '%s' as well",
                            argv[optind + 1 < argc ? optind + 1 : optind]);
        if (module && !test_path)
                usage_error("--module goes with --test");
        {
                /* Standard input can be read once: by one of them. */
                int from_stdin = !strcmp(argv[optind], "-") + (stdin_path && !strcmp(stdin_path, "-")) +
                                 (test_path && !strcmp(test_path, "-"));
                if (from_stdin > 1)
                        usage_error("only one of the program, --test and --stdin can be '-' (standard input)");
        }
        if (!cpu_given)
                spec.limits.cpu_time_ms = spec.limits.timeout_ms;

        spec.python = python_path(python_opt);
        validate_python(spec.python);
        /* The embedded runner (static check, policy) unless another
         * interpreter was asked for by name. */
        spec.runner = !python_opt;
        if (service && python_opt)
                usage_error("--python cannot go with --service: the service runs its own interpreter");
        /* With --service the service knows its policies (its operator's
         * among them) and checks the name itself. */
        if (policy_opt && !service) {
                const struct policy *pol;
                if (policy_set_init(&policies) < 0)
                        usage_error("out of memory");
                pol = policy_set_find(&policies, policy_opt);
                if (!pol)
                        usage_error("--policy must be one of: education, permissive; got '%s'", policy_opt);
                if (!spec.runner && strcmp(policy_opt, "permissive") != 0)
                        usage_error("--policy %s needs the embedded runner; --python runs an interpreter as is",
                                    policy_opt);
                if (policy_format(pol, &policy_line) < 0)
                        usage_error("out of memory");
                spec.policy = policy_line;
        }

        /* The program (and test), then the extra files. */
        {
                size_t cap = spec.limits.disk_mb * 1024 * 1024;
                char *modfile = NULL;
                read_input("program", argv[optind], cap, &code);
                if (test_path) {
                        read_input("--test file", test_path, cap, &test);
                        modfile = strdup_printf("%s.py", module ? module : "starter");
                        files[n_files++] = (struct pyexec_file){ PYEXEC_MAIN_FILE, test.data, test.len };
                        files[n_files++] = (struct pyexec_file){ modfile, code.data, code.len };
                } else
                        files[n_files++] = (struct pyexec_file){ PYEXEC_MAIN_FILE, code.data, code.len };
                for (size_t i = 0; i + (test_path ? 2 : 1) < n_files; i++) {
                        const char *path = files[i].data;
                        for (size_t j = n_files - (test_path ? 2 : 1); j < n_files; j++)
                                if (strcmp(files[i].name, files[j].name) == 0)
                                        usage_error("--file name '%s' collides with the program's own file",
                                                    files[i].name);
                        read_input("--file", path, cap, &file_data[i]);
                        files[i].data = file_data[i].data;
                        files[i].len = file_data[i].len;
                }
        }
        spec.files = files;
        spec.n_files = n_files;
        spec.args = args;
        spec.n_args = n_args;
        if (stdin_path) {
                read_input("--stdin file", stdin_path, 256u << 20, &stdin_buf);
                spec.stdin_data = stdin_buf.data;
                spec.stdin_len = stdin_buf.len;
        }
        if (!json) {
                spec.echo_stdout = STDOUT_FILENO;
                spec.echo_stderr = STDERR_FILENO;
        }

        if (service) {
                rc = run_on_service(service, policy_opt, limits_given, &spec, test_path ? &test : NULL,
                                    test_path ? &code : NULL, module, json);
                goto done;
        }
        r = pyexec_sandbox_new(&sb);
        if (r < 0) {
                fprintf(stderr, "pyexec: cannot set up the sandbox: %s%s\n", strerror(-r),
                        r == -EINVAL ? " (check PYEXEC_UID_BASE and PYEXEC_UID_COUNT)" : "");
                return EXIT_INTERNAL;
        }
        r = pyexec_run(sb, &spec, &res);
        if (r == -EINVAL)
                usage_error("%s", res.message ? res.message : "invalid run");
        result_new_id(id);
        if (json) {
                json_t *j = result_to_json(&res, &spec.limits, id);
                if (!j || json_dumpf(j, stdout, RESULT_JSON_FLAGS) < 0) {
                        fprintf(stderr, "pyexec: cannot write the result\n");
                        rc = EXIT_INTERNAL;
                } else {
                        fputc('\n', stdout);
                        rc = res.status == PYEXEC_INTERNAL_ERROR ? EXIT_INTERNAL : 0;
                }
                json_decref(j);
        } else {
                rc = exit_code_for(&res);
                if (res.status != PYEXEC_OK && res.status != PYEXEC_RUNTIME_ERROR && res.status != PYEXEC_SYNTAX_ERROR)
                        fprintf(stderr, "pyexec: %s: %s\n", pyexec_status_to_string(res.status),
                                res.message ? res.message : "");
        }
        pyexec_result_done(&res);
done:
        fflush(stdout);
        pyexec_sandbox_free(sb);
        free(policy_line);
        policy_set_done(&policies);
        buf_done(&code);
        if (test_path) {
                buf_done(&test);
                free((char *)files[n_files - 1].name); /* the module's file name */
        }
        for (size_t i = 0; i + (test_path ? 2 : 1) < n_files; i++)
                buf_done(&file_data[i]);
        if (stdin_path)
                buf_done(&stdin_buf);
        return rc;
}

static int cmd_serve(int argc, char **argv) {
        struct config cfg;
        char err[1024];
        int r = config_load(&cfg, argc, argv, stdout, err, sizeof err);

        if (r < 0) {
                fprintf(stderr, "pyexec serve: %s\n", r == -EINVAL ? err : strerror(-r));
                config_done(&cfg);
                return EXIT_USAGE;
        }
        if (r > 0) { /* --print-config or --help */
                config_done(&cfg);
                return 0;
        }
        r = http_serve(&cfg);
        config_done(&cfg);
        return r;
}

static const char usage_job[] = "usage: pyexec job list [--jobs FILE] [--json]\n"
                                "       pyexec job NAME [key=value]... [--jobs FILE] [--json]\n";

static int cmd_job_params(int argc, char **argv, json_t *params);

static int cmd_job(int argc, char **argv) {
        json_t *params = json_object();
        int r;
        if (!params)
                return EXIT_INTERNAL;
        r = cmd_job_params(argc, argv, params);
        json_decref(params);
        return r;
}

static int cmd_job_params(int argc, char **argv, json_t *params) {
        _cleanup_free_ char *path = NULL;
        const char *name = NULL;
        bool json = false;
        struct job_set set;
        struct pyexec_sandbox *sb = NULL;
        char err[1024], id[RESULT_ID_LEN + 1];
        int r, rc = 0;

        for (int i = 1; i < argc; i++) {
                char *eq;
                if (!strcmp(argv[i], "--json"))
                        json = true;
                else if (!strcmp(argv[i], "--jobs")) {
                        if (i + 1 >= argc) {
                                fprintf(stderr, "pyexec job: option '--jobs' needs a file\n%s", usage_job);
                                return EXIT_USAGE;
                        }
                        free(path);
                        path = strdup(argv[++i]);
                } else if (!strcmp(argv[i], "--help")) {
                        fputs(usage_job, stdout);
                        fputs(help_job, stdout);
                        return 0;
                } else if (argv[i][0] == '-') {
                        fprintf(stderr, "pyexec job: unknown option '%s'\n%s", argv[i], usage_job);
                        return EXIT_USAGE;
                } else if (!name)
                        name = argv[i];
                else if ((eq = strchr(argv[i], '=')) && eq != argv[i]) {
                        *eq = 0;
                        if (json_object_get(params, argv[i])) {
                                fprintf(stderr, "pyexec job: parameter '%s' is given twice\n", argv[i]);
                                return EXIT_USAGE;
                        }
                        json_object_set_new(params, argv[i], json_string(eq + 1));
                } else {
                        fprintf(stderr, "pyexec job: expected key=value, got '%s'\n%s", argv[i], usage_job);
                        return EXIT_USAGE;
                }
        }
        if (!name) {
                fputs(usage_job, stderr);
                return EXIT_USAGE;
        }
        if (!path)
                path = jobs_default_path();
        r = jobs_load(path, &set, err, sizeof err);
        if (r < 0) {
                fprintf(stderr, "pyexec job: %s\n", r == -ENOENT ? "no jobs file (give --jobs FILE or PYEXEC_JOBS)" : err);
                return EXIT_USAGE;
        }
        if (!strcmp(name, "list")) {
                json_t *d = jobs_describe(&set);
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
                jobs_done(&set);
                return 0;
        }
        {
                const struct job *j = jobs_find(&set, name);
                struct api_outcome out;
                struct api_error e = { 0 };
                json_t *res = NULL;
                if (!j) {
                        fprintf(stderr, "pyexec job: no job named '%s' in %s\n", name, set.path);
                        jobs_done(&set);
                        return EXIT_USAGE;
                }
                r = pyexec_sandbox_new(&sb);
                if (r < 0) {
                        fprintf(stderr, "pyexec job: cannot set up the sandbox: %s\n", strerror(-r));
                        jobs_done(&set);
                        return EXIT_INTERNAL;
                }
                result_new_id(id);
                r = job_run(sb, j, params, id, &res, &out, &e);
                if (r == 0 && !res) {
                        fprintf(stderr, "pyexec job: cannot build the result\n");
                        rc = EXIT_INTERNAL;
                } else if (r < 0) {
                        fprintf(stderr, "pyexec job: %s\n", e.message);
                        rc = e.http >= 500 ? EXIT_INTERNAL : EXIT_USAGE;
                } else if (json) {
                        json_dumpf(res, stdout, RESULT_JSON_FLAGS);
                        fputc('\n', stdout);
                        rc = out.status == PYEXEC_INTERNAL_ERROR ? EXIT_INTERNAL : 0;
                } else {
                        json_t *outs = json_object_get(res, "outputs"), *x;
                        size_t i;
                        fputs(json_string_value(json_object_get(res, "stdout")), stdout);
                        fputs(json_string_value(json_object_get(res, "stderr")), stderr);
                        json_array_foreach(outs, i, x) printf("output: %s (%lld bytes, sha256 %s)\n",
                                                              json_string_value(json_object_get(x, "path")),
                                                              (long long)json_integer_value(json_object_get(x, "bytes")),
                                                              json_string_value(json_object_get(x, "sha256")));
                        if (out.status != PYEXEC_OK)
                                fprintf(stderr, "pyexec: %s: %s\n", json_string_value(json_object_get(res, "status")),
                                        json_string_value(json_object_get(res, "message"))
                                                ? json_string_value(json_object_get(res, "message"))
                                                : "");
                        rc = out.status == PYEXEC_OK ? 0
                             : out.status == PYEXEC_TIMEOUT ? EXIT_TIMEOUT
                             : out.status == PYEXEC_MEMORY_LIMIT ? EXIT_MEMORY
                             : out.status == PYEXEC_OUTPUT_LIMIT ? EXIT_OUTPUT
                             : out.status == PYEXEC_INTERNAL_ERROR ? EXIT_INTERNAL
                                                                   : 1;
                }
                json_decref(res);
        }
        jobs_done(&set);
        pyexec_sandbox_free(sb);
        return rc;
}

static int cmd_check(int argc, char **argv) {
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
                }
                else {
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
                r = check_report(sb, python_path(python_opt), jr == 0 ? &set : NULL, &report);
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

int main(int argc, char **argv) {
        /* A reader of our output that went away must not kill a run's
         * bookkeeping half-way; writes then fail with EPIPE instead. */
        signal(SIGPIPE, SIG_IGN);
        if (argc < 2) {
                fputs(usage_main, stderr);
                return EXIT_USAGE;
        }
        if (strcmp(argv[1], "run") == 0)
                return cmd_run(argc - 1, argv + 1);
        if (strcmp(argv[1], "check") == 0)
                return cmd_check(argc - 1, argv + 1);
        if (strcmp(argv[1], "serve") == 0)
                return cmd_serve(argc - 1, argv + 1);
        if (strcmp(argv[1], "job") == 0)
                return cmd_job(argc - 1, argv + 1);
        if (strcmp(argv[1], "--version") == 0) {
                printf("pyexec %s\n", PYEXEC_VERSION);
                return 0;
        }
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "help") == 0) {
                fputs(usage_main, stdout);
                return 0;
        }
        fprintf(stderr, "pyexec: unknown command '%s'\n", argv[1]);
        fputs(usage_main, stderr);
        return EXIT_USAGE;
}
