/* SPDX-License-Identifier: MIT */
/*
 * `pyexec run`: one program in a fresh sandbox, here (cold path) or on a
 * running service (--service, its warm path). The steps: parse the options,
 * check them together, choose the interpreter and policy, read the program
 * and its files from the host, run, print the result as the exit status
 * or as JSON.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base64.h"
#include "client.h"
#include "cmd.h"
#include "policy.h"
#include "pyexec.h"
#include "result.h"

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
        "  --policy NAME          run under policy education, science or permissive (default: none, as permissive)\n"
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
        "                     " PYEXEC_LIBEXECDIR "/pyexec-runner)\n"
        "  PYEXEC_UID_BASE    first host uid of the per-run uid pool (default: 1900000000)\n"
        "  PYEXEC_UID_COUNT   uid slots in the pool, 1-65536 (default: 1024)\n"
        "  PYEXEC_CGROUP      the delegated cgroup2 parent runs are placed under\n"
        "  PYEXEC_API_KEY     with --service: sent as the bearer API key\n";

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
        { "disk", "size of the work directory /sandbox, and of /tmp and /dev/shm" },
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

const char *cmd_python_path(const char *opt) {
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
                usage_error("--python '%s' resolves to '%s', outside /usr, the only host tree the sandbox sees", p,
                            real);
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
                usage_error("--service takes Python source in UTF-8 only: %s is not UTF-8", what);
        return json_stringn(p, n);
}

/* Bytes (stdin, a file): as text, or in base64 under base_field when
 * they are not UTF-8. */
static void set_bytes(json_t *o, const char *field, const char *base_field, const char *p, size_t n) {
        _cleanup_free_ char *b64 = NULL;
        const char *why = NULL;
        size_t len;
        int r;

        if (utf8_is_valid(p, n)) {
                json_object_set_new(o, field, json_stringn(p, n));
                return;
        }
        r = base64_load(&why);
        if (r < 0)
                usage_error("--service sends bytes that are not UTF-8 in base64: %s", why);
        r = base64_encode(p, n, &b64, &len);
        if (r < 0)
                usage_error("--service: cannot encode %s in base64: %s", base_field, strerror(-r));
        json_object_set_new(o, base_field, json_stringn(b64, len));
}

/* The request of `pyexec run --service`: the API's fields for the same
 * program, files, stdin, arguments, limits and policy. */
static json_t *service_request(const char *policy, unsigned limits_given, const struct pyexec_spec *spec,
                               const struct buf *test, const struct buf *code, const char *module) {
        static const struct {
                const char *option, *field;
        } fields[] = {
                { "timeout", "timeout" },
                { "cpu-time", "cpuTimeout" },
                { "memory", "memoryLimit" },
                { "max-output", "maxOutput" },
        };
        json_t *req = json_object(), *files = json_array(), *args = json_array();

        for (size_t i = 0; i < pyexec_limit_count; i++) {
                const struct pyexec_limit_info *in = &pyexec_limit_table[i];
                const char *field = NULL;
                uint64_t value;
                if (!(limits_given & (1u << i)))
                        continue;
                for (size_t k = 0; k < ELEMENTSOF(fields); k++)
                        if (strcmp(fields[k].option, in->option) == 0)
                                field = fields[k].field;
                if (!field)
                        usage_error("--%s is set by the service's configuration, not per run: "
                                    "it cannot go with --service",
                                    in->option);
                value = *pyexec_limit_ptr((struct pyexec_limits *)&spec->limits, in);
                json_object_set_new(req, field, json_integer((json_int_t)value));
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
                json_t *file = json_pack("{s:s}", "name", f->name);
                set_bytes(file, "content", "contentBase64", f->data, f->len);
                json_array_append_new(files, file);
        }
        if (json_array_size(files))
                json_object_set(req, "files", files);
        for (size_t i = 0; i < spec->n_args; i++)
                json_array_append_new(args, json_string(spec->args[i]));
        if (json_array_size(args))
                json_object_set(req, "args", args);
        if (spec->stdin_len)
                set_bytes(req, "stdin", "stdinBase64", spec->stdin_data, spec->stdin_len);
        if (policy)
                json_object_set_new(req, "policy", json_string(policy));
        json_decref(files);
        json_decref(args);
        return req;
}

/* The service's result (doc) printed as a local run's without --json: the
 * program's output, the message when the sandbox decided, the exit status. */
static int service_print_result(json_t *doc) {
        struct pyexec_result res = { .exit_code = -1 };
        json_t *out = json_object_get(doc, "stdout"), *errs = json_object_get(doc, "stderr");
        const char *status = json_string_value(json_object_get(doc, "status")) ?: "internal_error";
        const char *msg = json_string_value(json_object_get(doc, "message"));
        json_t *ec = json_object_get(doc, "exitCode");
        int rc;

        /* By length: the output may hold NUL bytes. */
        if (json_is_string(out))
                (void)write_all(STDOUT_FILENO, json_string_value(out), json_string_length(out));
        if (json_is_string(errs))
                (void)write_all(STDERR_FILENO, json_string_value(errs), json_string_length(errs));
        res.status = PYEXEC_INTERNAL_ERROR;
        for (int s = 0; s < _PYEXEC_STATUS_MAX; s++)
                if (strcmp(status, pyexec_status_to_string((enum pyexec_status)s)) == 0)
                        res.status = (enum pyexec_status)s;
        res.exit_code = json_is_integer(ec) ? (int)json_integer_value(ec) : -1;
        res.signal = signal_number(json_string_value(json_object_get(doc, "signal")));
        rc = exit_code_for(&res);
        if (res.status != PYEXEC_OK && res.status != PYEXEC_RUNTIME_ERROR && res.status != PYEXEC_SYNTAX_ERROR)
                fprintf(stderr, "pyexec: %s: %s\n", status, msg ? msg : "");
        return rc;
}

/*
 * `pyexec run --service URL`: the same program, files, stdin, arguments,
 * limits and policy, run by a running service (on its warm path). The
 * result is printed exactly as a local run's; HTTP errors are reported with
 * the service's own message.
 */
static int run_on_service(const char *url, const char *policy, unsigned limits_given, const struct pyexec_spec *spec,
                          const struct buf *test, const struct buf *code, const char *module, bool json) {
        json_t *req = service_request(policy, limits_given, spec, test, code, module), *doc = NULL;
        char err[1024];
        unsigned http = 0;
        int r, rc;

        r = client_execute(url, getenv("PYEXEC_API_KEY"), req, &http, &doc, err, sizeof err);
        json_decref(req);
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
                rc = strcmp(json_string_value(json_object_get(doc, "status")) ?: "", "internal_error") == 0
                             ? EXIT_INTERNAL
                             : 0;
        } else
                rc = service_print_result(doc);
        json_decref(doc);
        return rc;
}

/* One `pyexec run`: what its options asked, and what was read from the host
 * for it. spec points into the arrays here. */
struct run_cmd {
        struct pyexec_spec spec;
        const char *program; /* FILE, or - for standard input */
        const char *stdin_path, *test_path, *module, *python_opt, *policy_opt, *service;
        bool json, cpu_given;
        unsigned limits_given; /* bit per pyexec_limit_table entry */
        /* --file NAME=PATH: data holds the path until run_read_inputs(); the
         * program (and with --test the module) follow the --file entries. */
        struct pyexec_file files[MAX_FILES + 2];
        size_t n_files;
        const char *args[MAX_ARGS];
        size_t n_args;
        struct buf file_data[MAX_FILES + 2], code, stdin_buf, test;
        char *modfile; /* with --test: the module's file name */
        struct policy_set policies;
        char *policy_line;
};

static void run_cmd_done(struct run_cmd *c) {
        free(c->policy_line);
        policy_set_done(&c->policies);
        buf_done(&c->code);
        buf_done(&c->test);
        free(c->modfile);
        for (size_t i = 0; i < ELEMENTSOF(c->file_data); i++)
                buf_done(&c->file_data[i]);
        buf_done(&c->stdin_buf);
}

/* --file NAME=PATH */
static void run_add_file(struct run_cmd *c, char *arg) {
        char *eq = strchr(arg, '=');
        if (c->n_files >= MAX_FILES)
                usage_error("at most %d --file options", MAX_FILES);
        if (!eq || eq == arg || !eq[1])
                usage_error("--file takes NAME=PATH, got '%s'", arg);
        *eq = 0;
        if (!filename_is_plain(arg, strlen(arg)))
                usage_error("--file name '%s' must be a plain file name (no '/', not '.' or '..', "
                            "no control characters, at most 255 bytes)",
                            arg);
        c->files[c->n_files].name = arg;
        c->files[c->n_files].data = eq + 1; /* the path, for now */
        c->n_files++;
}

/* --timeout, --memory, ...: entry i of pyexec_limit_table. */
static void run_set_limit(struct run_cmd *c, size_t i, const char *arg) {
        const struct pyexec_limit_info *in = &pyexec_limit_table[i];
        char err[512];

        if (pyexec_limit_parse(in, arg, "--", pyexec_limit_ptr(&c->spec.limits, in), err, sizeof err) < 0)
                usage_error("%s", err);
        if (strcmp(in->option, "cpu-time") == 0)
                c->cpu_given = true;
        c->limits_given |= 1u << i;
}

/* The options, one at a time; false after --help (printed). */
static bool run_parse_options(struct run_cmd *c, int argc, char **argv) {
        struct option opts[32];
        size_t no = 0;
        int o;

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
                opts[no++] = (struct option){ pyexec_limit_table[i].option, required_argument, NULL,
                                              OPT_LIMIT + (int)i };
        opts[no] = (struct option){ 0 };

        opterr = 0;
        optind = 1;
        while ((o = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
                switch (o) {
                case OPT_JSON:
                        c->json = true;
                        break;
                case OPT_STDIN:
                        c->stdin_path = optarg;
                        break;
                case OPT_ARG:
                        if (c->n_args >= MAX_ARGS)
                                usage_error("at most %d --arg options", MAX_ARGS);
                        c->args[c->n_args++] = optarg;
                        break;
                case OPT_FILE:
                        run_add_file(c, optarg);
                        break;
                case OPT_TEST:
                        c->test_path = optarg;
                        break;
                case OPT_MODULE:
                        if (!module_name_is_valid(optarg) || strcmp(optarg, "main") == 0)
                                usage_error("--module must be a Python identifier of at most 64 characters other "
                                            "than 'main', got '%s'",
                                            optarg);
                        c->module = optarg;
                        break;
                case OPT_PYTHON:
                        c->python_opt = optarg;
                        break;
                case OPT_POLICY:
                        c->policy_opt = optarg;
                        break;
                case OPT_SERVICE:
                        c->service = optarg;
                        break;
                case OPT_HELP:
                        print_run_help(stdout);
                        return false;
                case ':':
                        usage_error("option '%s' needs a value", argv[optind - 1]);
                case '?':
                        usage_error("unknown option '%s'", argv[optind - 1]);
                default:
                        if (o >= OPT_LIMIT && o < OPT_LIMIT + (int)pyexec_limit_count)
                                run_set_limit(c, (size_t)(o - OPT_LIMIT), optarg);
                        break;
                }
        }
        return true;
}

/* What the options mean together: one program, --module with --test, one
 * reader of standard input, the CPU limit following the wall clock. */
static void run_check_args(struct run_cmd *c, int argc, char **argv) {
        int from_stdin;

        if (optind != argc - 1)
                usage_error(optind >= argc ? "a program FILE (or - for stdin) is required"
                                           : "exactly one program FILE is allowed, got '%s' as well",
                            argv[optind + 1 < argc ? optind + 1 : optind]);
        c->program = argv[optind];
        if (c->module && !c->test_path)
                usage_error("--module goes with --test");
        /* Standard input can be read once: by one of them. */
        from_stdin = !strcmp(c->program, "-") + (c->stdin_path && !strcmp(c->stdin_path, "-")) +
                     (c->test_path && !strcmp(c->test_path, "-"));
        if (from_stdin > 1)
                usage_error("only one of the program, --test and --stdin can be '-' (standard input)");
        if (!c->cpu_given)
                c->spec.limits.cpu_time_ms = c->spec.limits.timeout_ms;
}

/* The interpreter, whether the runner runs it, and the policy. */
static void run_choose_interpreter(struct run_cmd *c) {
        const struct policy *pol;

        c->spec.python = cmd_python_path(c->python_opt);
        validate_python(c->spec.python);
        /* The embedded runner (static check, policy) unless another
         * interpreter was asked for by name. */
        c->spec.runner = !c->python_opt;
        c->spec.max_images = PYEXEC_DEFAULT_MAX_IMAGES;
        c->spec.max_image_bytes = PYEXEC_DEFAULT_MAX_IMAGE_BYTES;
        if (c->service && c->python_opt)
                usage_error("--python cannot go with --service: the service runs its own interpreter");
        /* With --service the service knows its policies (its operator's
         * among them) and checks the name itself. */
        if (!c->policy_opt || c->service)
                return;
        if (policy_set_init(&c->policies) < 0)
                usage_error("out of memory");
        pol = policy_set_find(&c->policies, c->policy_opt);
        if (!pol)
                usage_error("--policy must be one of: education, science, permissive; got '%s'", c->policy_opt);
        if (!c->spec.runner && strcmp(c->policy_opt, "permissive") != 0)
                usage_error("--policy %s needs the embedded runner; --python runs an interpreter as is", c->policy_opt);
        if (policy_format(pol, &c->policy_line) < 0)
                usage_error("out of memory");
        c->spec.policy = c->policy_line;
}

/* The program (and test), then the extra files, then stdin, into the spec.
 * Sizes of what is read from the host are bounded by the work directory
 * they must fit in. */
static void run_read_inputs(struct run_cmd *c) {
        size_t cap = c->spec.limits.disk_mb * 1024 * 1024;
        size_t own = c->test_path ? 2 : 1; /* the program's own files, after the --file ones */

        read_input("program", c->program, cap, &c->code);
        if (c->test_path) {
                read_input("--test file", c->test_path, cap, &c->test);
                c->modfile = strdup_printf("%s.py", c->module ? c->module : "starter");
                c->files[c->n_files++] = (struct pyexec_file){ PYEXEC_MAIN_FILE, c->test.data, c->test.len };
                c->files[c->n_files++] = (struct pyexec_file){ c->modfile, c->code.data, c->code.len };
        } else
                c->files[c->n_files++] = (struct pyexec_file){ PYEXEC_MAIN_FILE, c->code.data, c->code.len };
        for (size_t i = 0; i + own < c->n_files; i++) {
                const char *path = c->files[i].data;
                for (size_t j = c->n_files - own; j < c->n_files; j++)
                        if (strcmp(c->files[i].name, c->files[j].name) == 0)
                                usage_error("--file name '%s' collides with the program's own file", c->files[i].name);
                read_input("--file", path, cap, &c->file_data[i]);
                c->files[i].data = c->file_data[i].data;
                c->files[i].len = c->file_data[i].len;
        }
        c->spec.files = c->files;
        c->spec.n_files = c->n_files;
        c->spec.args = c->args;
        c->spec.n_args = c->n_args;
        if (c->stdin_path) {
                read_input("--stdin file", c->stdin_path, 256u << 20, &c->stdin_buf);
                c->spec.stdin_data = c->stdin_buf.data;
                c->spec.stdin_len = c->stdin_buf.len;
        }
        if (!c->json) {
                c->spec.echo_stdout = STDOUT_FILENO;
                c->spec.echo_stderr = STDERR_FILENO;
        }
}

/* Run here, in a sandbox of our own, and print the result: as JSON, or as
 * the exit status with a message when the sandbox decided. */
static int run_local(struct run_cmd *c) {
        struct pyexec_sandbox *sb = NULL;
        struct pyexec_result res;
        char id[RESULT_ID_LEN + 1];
        int r, rc;

        r = pyexec_sandbox_new(&sb);
        if (r < 0) {
                fprintf(stderr, "pyexec: cannot set up the sandbox: %s%s\n", strerror(-r),
                        r == -EINVAL ? " (check PYEXEC_UID_BASE and PYEXEC_UID_COUNT)" : "");
                return EXIT_INTERNAL;
        }
        r = pyexec_run(sb, &c->spec, &res);
        if (r == -EINVAL)
                usage_error("%s", res.message ? res.message : "invalid run");
        result_new_id(id);
        if (c->json) {
                json_t *j = result_to_json(&res, &c->spec.limits, id);
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
        fflush(stdout);
        pyexec_sandbox_free(sb);
        return rc;
}

int cmd_run(int argc, char **argv) {
        struct run_cmd c = { .spec = { .echo_stdout = -1, .echo_stderr = -1 } };
        int rc;

        pyexec_limits_default(&c.spec.limits);
        if (!run_parse_options(&c, argc, argv))
                return 0; /* --help */
        run_check_args(&c, argc, argv);
        run_choose_interpreter(&c);
        run_read_inputs(&c);
        if (c.service) {
                rc = run_on_service(c.service, c.policy_opt, c.limits_given, &c.spec, c.test_path ? &c.test : NULL,
                                    c.test_path ? &c.code : NULL, c.module, c.json);
                fflush(stdout);
        } else
                rc = run_local(&c);
        run_cmd_done(&c);
        return rc;
}
