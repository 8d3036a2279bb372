/* SPDX-License-Identifier: MIT */
#include "check.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "result.h"

extern char **environ;

/* What the self-test program reports from inside the sandbox. */
static const char probe_py[] =
        "import json, os, socket, sys\n"
        "r = {'python': sys.version.split()[0], 'uid': os.getuid(), 'hostname': socket.gethostname()}\n"
        "try:\n"
        "    import PIL\n"
        "    r['pillow'] = PIL.__version__\n"
        "except Exception as e:\n"
        "    r['pillow'] = None\n"
        "s = socket.socket()\n"
        "s.settimeout(1)\n"
        "try:\n"
        "    s.connect(('127.0.0.1', 9))\n"
        "    r['network'] = 'reachable'\n"
        "except OSError as e:\n"
        "    r['network'] = os.strerror(e.errno) if e.errno else str(e)\n"
        "r['hostVisible'] = [p for p in ('/home', '/root', '/var', '/run', '/sys') if os.path.exists(p)]\n"
        "print(json.dumps(r))\n";

/* Run argv on the host with stdout captured, killed after timeout_ms. */
static int run_capture(char *const argv[], int timeout_ms, struct buf *out) {
        posix_spawn_file_actions_t fa;
        int p[2], status, r = 0;
        pid_t pid;
        uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;

        if (pipe2(p, O_CLOEXEC) < 0)
                return -errno;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, p[1], 1);
        posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        r = -posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        close(p[1]);
        if (r < 0) {
                close(p[0]);
                return r;
        }
        for (;;) {
                char chunk[4096];
                uint64_t now = now_ns();
                struct pollfd pfd = { .fd = p[0], .events = POLLIN };
                ssize_t n;
                if (now >= deadline) {
                        kill(pid, SIGKILL);
                        r = -ETIMEDOUT;
                        break;
                }
                if (poll(&pfd, 1, (int)((deadline - now) / 1000000 + 1)) <= 0)
                        continue;
                n = read(p[0], chunk, sizeof chunk);
                if (n <= 0)
                        break;
                (void)buf_append(out, chunk, (size_t)n);
        }
        close(p[0]);
        waitpid(pid, &status, 0);
        if (r == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
                r = -EIO;
        return r;
}

static char *find_in_path(const char *name) {
        const char *path = "/usr/local/bin:/usr/bin:/bin";
        for (const char *p = path; *p;) {
                size_t l = strcspn(p, ":");
                char *cand = strdup_printf("%.*s/%s", (int)l, p, name);
                if (cand && access(cand, X_OK) == 0)
                        return cand;
                free(cand);
                p += l;
                if (*p == ':')
                        p++;
        }
        return NULL;
}

static json_t *check_blender(void) {
        _cleanup_free_ char *path = find_in_path("blender");
        struct buf out;
        json_t *o;
        char version[64] = "";
        int r;

        if (!path)
                return json_pack("{s:b,s:n,s:n}", "available", 0, "path", "version");
        buf_init(&out, 1 << 16);
        r = run_capture((char *[]){ path, (char *)"--version", NULL }, 60000, &out);
        if (r == 0 && out.data) {
                const char *b = strstr(out.data, "Blender ");
                if (b)
                        sscanf(b + 8, "%63s", version);
        }
        buf_done(&out);
        o = json_pack("{s:b,s:s}", "available", r == 0 && version[0], "path", path);
        json_object_set_new(o, "version", version[0] ? json_string(version) : json_null());
        if (r < 0)
                json_object_set_new(o, "error", json_string(strerror(-r)));
        return o;
}

/* The Debian package whose files the sandbox binds from /usr as the
 * standard library: it must be the release of the libpython3.11.a the runner
 * embeds (one source package), or the interpreter core and its library
 * disagree (a compiled-in fix in one, not the other). */
#define LIBPYTHON_STDLIB_PACKAGE "libpython3.11-stdlib"
#define DPKG_STATUS_DEFAULT "/var/lib/dpkg/status"
#define DPKG_STATUS_MAX ((size_t)256 << 20)

/* The Version of package in a dpkg status file, if it is installed; NULL
 * when the file or the package is not there (not Debian: "unknown"). */
static char *dpkg_installed_version(const char *status_path, const char *package) {
        struct buf b;
        char *ret = NULL;
        size_t plen = strlen(package);

        buf_init(&b, DPKG_STATUS_MAX);
        if (read_file(status_path, DPKG_STATUS_MAX, &b) < 0 || !b.data) {
                buf_done(&b);
                return NULL;
        }
        /* Stanzas are separated by a blank line; fields are "Name: value". */
        for (char *st = b.data; st && *st && !ret;) {
                char *end = strstr(st, "\n\n");
                const char *version = NULL;
                size_t vlen = 0;
                bool name_ok = false, installed = false;
                if (end)
                        *end = 0;
                for (char *line = st; line && *line;) {
                        char *nl = strchr(line, '\n');
                        size_t len = nl ? (size_t)(nl - line) : strlen(line);
                        if (len == 9 + plen && strncmp(line, "Package: ", 9) == 0 &&
                            strncmp(line + 9, package, plen) == 0)
                                name_ok = true;
                        else if (strncmp(line, "Status: ", 8) == 0 && len >= 10 &&
                                 strncmp(line + len - 10, " installed", 10) == 0)
                                installed = true;
                        else if (strncmp(line, "Version: ", 9) == 0) {
                                version = line + 9;
                                vlen = len - 9;
                        }
                        line = nl ? nl + 1 : NULL;
                }
                if (name_ok && installed && version && vlen > 0)
                        ret = strndup(version, vlen);
                st = end ? end + 2 : NULL;
        }
        buf_done(&b);
        return ret;
}

/* The runner's record of the libpython it embeds (`pyexec-runner
 * --libpython`, written at build time by tools/libpython-record.sh) against
 * the standard library installed now. A mismatch is a problem unless
 * allow_stale (ALLOW_STALE_RUNNER). PYEXEC_DPKG_STATUS names another dpkg
 * status file: for tests. */
static json_t *check_libpython(const char *runner, bool allow_stale, json_t *problems) {
        const char *status = getenv("PYEXEC_DPKG_STATUS");
        _cleanup_free_ char *installed = NULL, *why = NULL;
        char embedded[128] = "", sha[80] = "";
        struct buf out;
        json_t *o;
        bool compared, match;

        if (!status || !*status)
                status = DPKG_STATUS_DEFAULT;
        installed = dpkg_installed_version(status, LIBPYTHON_STDLIB_PACKAGE);
        if (runner) {
                buf_init(&out, 4096);
                if (run_capture((char *[]){ (char *)runner, (char *)"--libpython", NULL }, 10000, &out) == 0 &&
                    out.data && sscanf(out.data, "libpython3.11 %127s sha256:%79s", embedded, sha) != 2)
                        embedded[0] = 0;
                buf_done(&out);
        }
        if (!embedded[0])
                snprintf(embedded, sizeof embedded, "unknown");
        /* Either side unknown (no dpkg database, a build without dpkg):
         * nothing to compare, and nothing to fail. */
        compared = strcmp(embedded, "unknown") != 0 && installed;
        match = !compared || strcmp(embedded, installed) == 0;
        o = json_pack("{s:s,s:s?,s:s,s:s}", "embedded", embedded, "embeddedSha256", sha[0] ? sha : NULL, "installed",
                      installed ? installed : "unknown", "package", LIBPYTHON_STDLIB_PACKAGE);
        json_object_set_new(o, "match", compared ? json_boolean(match) : json_null());
        if (!match) {
                why = strdup_printf("pyexec-runner embeds libpython3.11 %s, the system has %s: rebuild with make%s",
                                    embedded, installed, allow_stale ? " (allowed by ALLOW_STALE_RUNNER=true)" : "");
                json_object_set_new(o, "message",
                                    json_string(why ? why : "pyexec-runner embeds another libpython3.11"));
                if (!allow_stale)
                        json_array_append_new(problems, json_string(why ? why
                                                                        : "pyexec-runner embeds another "
                                                                          "libpython3.11: rebuild with make"));
        }
        return o;
}

static bool seccomp_available(void) {
        /* PR_GET_SECCOMP fails with EINVAL on kernels built without it. */
        return prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0;
}

/* Run the probe in a real sandbox: the self-test the service's readiness
 * also relies on. */
static json_t *self_test(struct pyexec_sandbox *sb, const char *python, json_t *problems) {
        struct pyexec_file f = { PYEXEC_MAIN_FILE, probe_py, sizeof probe_py - 1 };
        struct pyexec_spec spec = {
                .python = python,
                .files = &f,
                .n_files = 1,
                .echo_stdout = -1,
                .echo_stderr = -1,
                /* Through the embedded runner when there is one (and on the
                 * warm path when the service runs it), as programs run. */
                .runner = pyexec_sandbox_has_runner(sb) && strcmp(python, "/usr/bin/python3") == 0,
        };
        struct pyexec_result res;
        json_t *o, *probe = NULL;
        bool ok;

        pyexec_limits_default(&spec.limits);
        spec.limits.timeout_ms = 20000;
        pyexec_run(sb, &spec, &res);
        ok = res.status == PYEXEC_OK;
        if (ok) {
                probe = json_loadb(res.out.data ? res.out.data : "", res.out.len, 0, NULL);
                ok = probe != NULL;
        }
        o = json_pack("{s:b,s:s}", "ok", ok, "status", pyexec_status_to_string(res.status));
        json_object_set_new(o, "wallMs", json_real(res.wall_ms));
        json_object_set_new(o, "peakKb", json_integer((json_int_t)res.peak_kb));
        if (!ok) {
                char *why = strdup_printf("the sandbox self-test failed: %s%s%.*s",
                                          res.message ? res.message : pyexec_status_to_string(res.status),
                                          res.err.len ? ": " : "", (int)(res.err.len > 500 ? 500 : res.err.len),
                                          res.err.data ? res.err.data : "");
                json_object_set_new(o, "message", json_string(why ? why : "the sandbox self-test failed"));
                json_array_append_new(problems, json_string(why ? why : "the sandbox self-test failed"));
                free(why);
        } else {
                json_t *net = json_object_get(probe, "network");
                json_t *vis = json_object_get(probe, "hostVisible");
                json_object_set(o, "inside", probe);
                if (json_is_string(net) && strcmp(json_string_value(net), "reachable") == 0)
                        json_array_append_new(problems, json_string("the network is reachable from the sandbox"));
                if (json_array_size(vis) > 0)
                        json_array_append_new(problems, json_string("host directories are visible in the sandbox"));
        }
        json_decref(probe);
        pyexec_result_done(&res);
        return o;
}

int check_report(struct pyexec_sandbox *sb, const char *python, const struct job_set *jobs, bool allow_stale_runner,
                 json_t **ret) {
        struct pyexec_sandbox_info info;
        struct utsname u;
        json_t *o = json_object(), *problems = json_array(), *limits = json_array(), *st, *inside, *py, *pil,
               *libpython;
        bool python_ok = access(python, X_OK) == 0;

        if (!o || !problems || !limits)
                return -ENOMEM;
        pyexec_sandbox_get_info(sb, &info);
        uname(&u);
        json_object_set_new(o, "version", json_string(PYEXEC_VERSION));
        json_object_set_new(o, "kernel", json_string(u.release));
        json_object_set_new(o, "privileged", json_boolean(info.privileged));

        if (!python_ok)
                json_array_append_new(problems, json_string("the interpreter is not executable"));
        {
                /* Before the self-test: its problem is the first one, the
                 * readiness reason. */
                char rp[PATH_MAX];
                bool found = pyexec_sandbox_runner_path(sb, rp, sizeof rp);
                libpython = check_libpython(found ? rp : NULL, allow_stale_runner, problems);
        }
        st = python_ok ? self_test(sb, python, problems) : json_pack("{s:b,s:s}", "ok", 0, "status", "not run");
        inside = json_object_get(st, "inside");
        py = json_object_get(inside, "python");
        pil = json_object_get(inside, "pillow");
        json_object_set_new(o, "python", json_pack("{s:s,s:b,s:O}", "path", python, "available", python_ok && py,
                                                   "version", py ? py : json_null()));
        {
                char rp[PATH_MAX];
                bool found = pyexec_sandbox_runner_path(sb, rp, sizeof rp);
                json_object_set_new(o, "runner",
                                    json_pack("{s:s,s:b,s:b,s:o}", "path", rp, "available", found, "warm",
                                              pyexec_sandbox_is_warm(sb), "libpython", libpython));
                if (!found)
                        json_array_append_new(problems, json_string("pyexec-runner was not found: programs cannot run "
                                                                    "with a policy (set PYEXEC_RUNNER)"));
        }
        json_object_set_new(o, "pillow", json_pack("{s:b,s:O}", "available", json_is_string(pil), "version",
                                                   json_is_string(pil) ? pil : json_null()));
        json_object_set_new(o, "blender", check_blender());
        json_object_set_new(o, "userNamespaces",
                            json_pack("{s:b,s:b}", "available", pyexec_userns_available(), "usedForRuns", info.userns));
        json_object_set_new(o, "seccomp", json_pack("{s:b,s:I,s:I}", "available", seccomp_available(), "rules",
                                                    (json_int_t)info.seccomp_rules, "instructions",
                                                    (json_int_t)info.seccomp_insns));
        if (!seccomp_available())
                json_array_append_new(problems, json_string("the kernel has no seccomp filter support"));
        json_object_set_new(o, "cgroup",
                            json_pack("{s:s,s:s?,s:s?,s:s?,s:s?,s:s,s:s,s:s}", "version", info.cgroup, "memory",
                                      info.memory_cgroup, "pids", info.pids_cgroup, "cpu", info.cpu_cgroup, "hugetlb",
                                      info.hugetlb_cgroup, "hugetlbBy", info.hugetlb_by, "hugetlbNote",
                                      info.hugetlb_reason, "note", info.cgroup_reason));
        if (info.privileged)
                json_object_set_new(o, "uids", json_pack("{s:I,s:I}", "base", (json_int_t)info.uid_base, "count",
                                                         (json_int_t)info.uid_count));
        for (size_t i = 0; i < pyexec_limit_count; i++) {
                const struct pyexec_limit_info *in = &pyexec_limit_table[i];
                const char *by = in->enforced_by;
                if (strcmp(in->option, "memory") == 0)
                        by = info.memory_by;
                else if (strcmp(in->option, "pids") == 0)
                        by = info.pids_by;
                else if (strcmp(in->option, "cpu-time") == 0)
                        by = info.cpu_by;
                json_array_append_new(limits, json_pack("{s:s,s:s,s:I,s:I,s:I,s:s}", "name", in->option, "unit",
                                                        in->unit, "default", (json_int_t)in->def, "min",
                                                        (json_int_t)in->min, "max", (json_int_t)in->max,
                                                        "enforcedBy", by));
        }
        json_object_set_new(o, "limits", limits);
        {
                json_t *ja = json_array();
                for (size_t i = 0; jobs && i < jobs->n_jobs; i++) {
                        json_t *rd = job_readiness(&jobs->jobs[i]);
                        json_object_set_new(rd, "name", json_string(jobs->jobs[i].name));
                        json_object_set_new(rd, "interpreter", json_string(jobs->jobs[i].interpreter));
                        json_object_set_new(rd, "script", json_string(jobs->jobs[i].script));
                        json_array_append_new(ja, rd);
                }
                json_object_set_new(o, "jobs", json_pack("{s:s?,s:o}", "file", jobs ? jobs->path : NULL, "jobs", ja));
        }
        json_object_set_new(o, "selfTest", st);
        json_object_set_new(o, "ok", json_boolean(json_array_size(problems) == 0));
        json_object_set_new(o, "problems", problems);
        *ret = o;
        return 0;
}

static const char *yes_no(json_t *o, const char *key) {
        return json_is_true(json_object_get(o, key)) ? "yes" : "no";
}

static const char *str_or(json_t *o, const char *key, const char *dflt) {
        json_t *v = json_object_get(o, key);
        return json_is_string(v) ? json_string_value(v) : dflt;
}

void check_print(json_t *r, FILE *f) {
        json_t *py = json_object_get(r, "python"), *pil = json_object_get(r, "pillow"),
               *bl = json_object_get(r, "blender"), *us = json_object_get(r, "userNamespaces"),
               *sc = json_object_get(r, "seccomp"), *cg = json_object_get(r, "cgroup"),
               *st = json_object_get(r, "selfTest"), *lims = json_object_get(r, "limits"),
               *probs = json_object_get(r, "problems"), *inside = json_object_get(st, "inside"), *v;
        size_t i;

        fprintf(f, "pyexec %s on Linux %s, running as %s\n", str_or(r, "version", "?"), str_or(r, "kernel", "?"),
                json_is_true(json_object_get(r, "privileged")) ? "root (a fresh host uid per run)"
                                                                : "an unprivileged user (user namespaces)");
        fprintf(f, "python:           %s %s (%s)\n", str_or(py, "path", "?"), str_or(py, "version", "-"),
                json_is_true(json_object_get(py, "available")) ? "works in the sandbox" : "NOT usable");
        {
                json_t *rn = json_object_get(r, "runner");
                fprintf(f, "runner:           %s (%s%s)\n", str_or(rn, "path", "?"),
                        json_is_true(json_object_get(rn, "available")) ? "embedded CPython, policies" : "NOT FOUND",
                        json_is_true(json_object_get(rn, "warm")) ? "; warm: zygote and pre-built sandboxes" : "");
                if (json_object_get(rn, "libpython")) {
                        json_t *lp = json_object_get(rn, "libpython");
                        fprintf(f, "  libpython:      embeds %s, %s %s (%s)\n", str_or(lp, "embedded", "?"),
                                str_or(lp, "package", "?"), str_or(lp, "installed", "?"),
                                json_is_true(json_object_get(lp, "match"))    ? "match"
                                : json_is_false(json_object_get(lp, "match")) ? "MISMATCH"
                                                                              : "not compared");
                }
        }
        fprintf(f, "pillow:           %s\n", json_is_true(json_object_get(pil, "available")) ? str_or(pil, "version", "?")
                                                                                               : "not importable");
        fprintf(f, "blender:          %s\n", json_is_true(json_object_get(bl, "available")) ? str_or(bl, "version", "?")
                                                                                                : "not found");
        fprintf(f, "user namespaces:  %s (used for runs: %s)\n", yes_no(us, "available"), yes_no(us, "usedForRuns"));
        fprintf(f, "seccomp:          %s (%lld rules, %lld BPF instructions)\n", yes_no(sc, "available"),
                (long long)json_integer_value(json_object_get(sc, "rules")),
                (long long)json_integer_value(json_object_get(sc, "instructions")));
        fprintf(f, "cgroup:           %s\n", str_or(cg, "version", "?"));
        fprintf(f, "  memory:         %s\n", str_or(cg, "memory", "-"));
        fprintf(f, "  pids:           %s\n", str_or(cg, "pids", "-"));
        fprintf(f, "  cpu accounting: %s\n", str_or(cg, "cpu", "-"));
        fprintf(f, "  huge pages:     %s (%s)\n", str_or(cg, "hugetlb", "-"), str_or(cg, "hugetlbBy", "?"));
        if (*str_or(cg, "hugetlbNote", ""))
                fprintf(f, "  hugetlb note:   %s\n", str_or(cg, "hugetlbNote", ""));
        if (*str_or(cg, "note", ""))
                fprintf(f, "  note:           %s\n", str_or(cg, "note", ""));
        fprintf(f, "self-test:        %s", json_is_true(json_object_get(st, "ok")) ? "passed" : "FAILED");
        if (inside)
                fprintf(f, " (hostname %s, uid %lld, network: %s)", str_or(inside, "hostname", "?"),
                        (long long)json_integer_value(json_object_get(inside, "uid")),
                        str_or(inside, "network", "?"));
        fprintf(f, "\nlimits (default, range, enforced by):\n");
        json_array_foreach(lims, i, v) {
                char range[64];
                snprintf(range, sizeof range, "%lld..%lld", (long long)json_integer_value(json_object_get(v, "min")),
                         (long long)json_integer_value(json_object_get(v, "max")));
                fprintf(f, "  %-11s %8lld %-5s %-16s %s\n", str_or(v, "name", "?"),
                        (long long)json_integer_value(json_object_get(v, "default")), str_or(v, "unit", ""), range,
                        str_or(v, "enforcedBy", ""));
        }
        {
                json_t *jobs = json_object_get(json_object_get(r, "jobs"), "jobs"), *jb;
                size_t k;
                if (json_array_size(jobs))
                        fprintf(f, "jobs (%s):\n", str_or(json_object_get(r, "jobs"), "file", "?"));
                json_array_foreach(jobs, k, jb) {
                        json_t *pr = json_object_get(jb, "problems"), *x;
                        size_t m;
                        fprintf(f, "  %-11s %s\n", str_or(jb, "name", "?"),
                                json_is_true(json_object_get(jb, "ready")) ? "ready" : "NOT ready");
                        json_array_foreach(pr, m, x) fprintf(f, "              %s\n", json_string_value(x));
                }
        }
        if (json_array_size(probs) == 0)
                fprintf(f, "ok: the sandbox can run here\n");
        else
                json_array_foreach(probs, i, v) fprintf(f, "problem: %s\n", json_string_value(v));
}
