/* SPDX-License-Identifier: MIT */
/*
 * policy: the built-in policies, the import, audit-event and write
 * decisions, operator-defined policies and their exact error messages, and
 * the one-line form that carries a policy into the sandbox (format, then
 * parse, gives back the same line).
 */
#include "test-helpers.h"

#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "util.h"

static bool strv_has(char *const *v, size_t n, const char *s) {
        for (size_t i = 0; i < n; i++)
                if (strcmp(v[i], s) == 0)
                        return true;
        return false;
}

/* The built-in policies: education, permissive, science. */
#define N_BUILTINS 3

/* Each test gets a fresh set with the built-ins; the teardown frees it even
 * when an assertion has left the test early. */
static struct policy_set the_set;

static int set_setup(void **state) {
        return policy_set_init(&the_set) == 0 ? 0 : -1;
}

static int set_teardown(void **state) {
        policy_set_done(&the_set);
        return 0;
}

static const struct policy *find(const struct policy_set *s, const char *name) {
        const struct policy *p = policy_set_find(s, name);
        if (!p)
                fail_msg("no policy named '%s'", name);
        return p;
}

/* Define name from spec, which must succeed; the defined policy. */
static const struct policy *define_ok(struct policy_set *s, const char *name, const char *spec) {
        char err[256] = "";
        int r = policy_set_define(s, name, spec, err, sizeof err);
        if (r != 0)
                fail_msg("policy_set_define('%s', \"%s\") = %d: %s", name, spec, r, err);
        return find(s, name);
}

/* Define name from spec, which must fail with -EINVAL and exactly message,
 * leaving the set as it was. */
static void define_fails(struct policy_set *s, const char *name, const char *spec, const char *message) {
        char err[256] = "";
        size_t n = s->n;
        int r = policy_set_define(s, name, spec, err, sizeof err);
        if (r != -EINVAL)
                fail_msg("policy_set_define('%s', \"%s\") = %d, expected -EINVAL", name, spec, r);
        if (strcmp(err, message) != 0)
                fail_msg("message for '%s' \"%s\"\n  got      '%s'\n  expected '%s'", name, spec, err, message);
        assert_int_equal(s->n, n);
}

#define ALLOWED(p, m)                                                          \
        do {                                                                   \
                if (!policy_module_allowed((p), (m)))                          \
                        fail_msg("%s: '%s' refused, expected allowed", (p)->name, (m)); \
        } while (0)
#define REFUSED(p, m)                                                          \
        do {                                                                   \
                if (policy_module_allowed((p), (m)))                           \
                        fail_msg("%s: '%s' allowed, expected refused", (p)->name, (m)); \
        } while (0)

/* ---- built-ins ---- */

static void test_builtins(void **state) {
        struct policy_set *s = &the_set;
        const struct policy *edu, *perm, *sci;

        assert_int_equal(s->n, N_BUILTINS);
        edu = find(s, "education");
        perm = find(s, "permissive");
        assert_null(policy_set_find(s, "nosuch"));
        assert_null(policy_set_find(s, ""));
        assert_null(policy_set_find(s, "Education"));

        assert_string_equal(edu->name, "education");
        assert_true(edu->check_imports);
        assert_true(edu->restrict_writes);
        assert_true(edu->n_allow > 0);
        assert_true(strv_has(edu->allow, edu->n_allow, "math"));
        assert_true(strv_has(edu->allow, edu->n_allow, "PIL"));
        for (const char *const *m = (const char *const[]){ "socket", "_socket", "subprocess", "_posixsubprocess",
                                                             "ctypes", "_ctypes", "importlib", NULL };
             *m; m++)
                if (!strv_has(edu->deny, edu->n_deny, *m))
                        fail_msg("education does not deny '%s'", *m);
        for (const char *const *e = (const char *const[]){ "socket.*", "ctypes.*", "os.system", "subprocess.Popen",
                                                             "os.fork", NULL };
             *e; e++)
                if (!strv_has(edu->deny_events, edu->n_deny_events, *e))
                        fail_msg("education does not deny the event '%s'", *e);
        /* no module is both allowed and denied */
        for (size_t i = 0; i < edu->n_allow; i++)
                if (strv_has(edu->deny, edu->n_deny, edu->allow[i]))
                        fail_msg("education both allows and denies '%s'", edu->allow[i]);

        /* science: education and the scientific stack, every refusal of
         * education kept. */
        sci = find(s, "science");
        assert_true(sci->check_imports);
        assert_true(sci->restrict_writes);
        assert_int_equal(sci->n_allow, edu->n_allow + 4);
        for (size_t i = 0; i < edu->n_allow; i++)
                ALLOWED(sci, edu->allow[i]);
        for (const char *const *m = (const char *const[]){ "numpy", "numpy.linalg", "pandas", "matplotlib",
                                                           "matplotlib.pyplot", "mpl_toolkits.mplot3d", NULL };
             *m; m++) {
                ALLOWED(sci, *m);
                REFUSED(edu, *m);
        }
        assert_int_equal(sci->n_deny, edu->n_deny);
        for (size_t i = 0; i < edu->n_deny; i++)
                REFUSED(sci, edu->deny[i]);
        assert_int_equal(sci->n_deny_events, edu->n_deny_events);
        for (size_t i = 0; i < edu->n_deny_events; i++)
                if (!policy_event_denied(sci, edu->deny_events[i], NULL))
                        fail_msg("science allows the event '%s'", edu->deny_events[i]);
        REFUSED(sci, "scipy");
        REFUSED(sci, "numpyx");

        assert_string_equal(perm->name, "permissive");
        assert_false(perm->check_imports);
        assert_false(perm->restrict_writes);
        assert_int_equal(perm->n_allow, 0);
        assert_int_equal(perm->n_deny, 0);
        assert_int_equal(perm->n_deny_events, 0);

        policy_set_done(s);
        assert_null(s->v);
        assert_int_equal(s->n, 0);
}

static void test_policy_name_is_valid(void **state) {
        char name[POLICY_NAME_MAX + 1];

        assert_true(policy_name_is_valid("a"));
        assert_true(policy_name_is_valid("education"));
        assert_true(policy_name_is_valid("cs101-week_2"));
        assert_false(policy_name_is_valid(""));
        assert_false(policy_name_is_valid(NULL));
        assert_false(policy_name_is_valid("Education"));
        assert_false(policy_name_is_valid("eDucation"));
        assert_false(policy_name_is_valid("1edu"));
        assert_false(policy_name_is_valid("-edu"));
        assert_false(policy_name_is_valid("_edu"));
        assert_false(policy_name_is_valid("edu cation"));
        assert_false(policy_name_is_valid("edu.cation"));
        assert_false(policy_name_is_valid("edu;x"));
        assert_false(policy_name_is_valid("\xc3\xa9" "du"));

        memset(name, 'a', sizeof name);
        name[POLICY_NAME_MAX - 1] = 0; /* 31 */
        assert_true(policy_name_is_valid(name));
        name[POLICY_NAME_MAX - 1] = 'a';
        name[POLICY_NAME_MAX] = 0; /* 32 */
        assert_false(policy_name_is_valid(name));
}

/* ---- imports ---- */

static void test_module_allowed_education(void **state) {
        struct policy_set *s = &the_set;
        const struct policy *p;

        p = find(s, "education");

        /* the allowlist, and submodules of it */
        ALLOWED(p, "math");
        ALLOWED(p, "os");
        ALLOWED(p, "os.path");
        ALLOWED(p, "collections.abc");
        ALLOWED(p, "json.decoder");
        ALLOWED(p, "PIL");
        ALLOWED(p, "PIL.Image");
        ALLOWED(p, "PIL.Image.sub");
        ALLOWED(p, "__future__");
        /* a name that merely starts like an allowed one is another module */
        REFUSED(p, "mathx");
        REFUSED(p, "osx");
        REFUSED(p, "os_");
        REFUSED(p, "PILLOW");
        REFUSED(p, "jsonpickle");
        REFUSED(p, "mat");
        REFUSED(p, "");
        /* not listed */
        REFUSED(p, "requests");
        REFUSED(p, "numpy");
        REFUSED(p, "pil"); /* case matters */
        REFUSED(p, "pickle");
        /* private helpers are imported lazily by allowed modules ... */
        ALLOWED(p, "_strptime");
        ALLOWED(p, "_collections_abc");
        ALLOWED(p, "_json");
        /* ... except the ones that leave the program */
        REFUSED(p, "_socket");
        REFUSED(p, "_posixsubprocess");
        REFUSED(p, "_ctypes");
        REFUSED(p, "_imp");
        REFUSED(p, "_frozen_importlib");
        REFUSED(p, "_frozen_importlib_external");
        /* denied, and their submodules */
        REFUSED(p, "socket");
        REFUSED(p, "subprocess");
        REFUSED(p, "ctypes");
        REFUSED(p, "ctypes.util");
        REFUSED(p, "importlib");
        REFUSED(p, "importlib.util");
        REFUSED(p, "importlib.machinery");
        REFUSED(p, "multiprocessing.pool");
        REFUSED(p, "asyncio");
        /* the deny list covers exact names and submodules, nothing else */
        REFUSED(p, "socketserver"); /* not listed either */
        ALLOWED(p, "_socketx");     /* private, and not "_socket" */

}

static void test_module_allowed_deny_wins(void **state) {
        struct policy_set *s = &the_set;
        const struct policy *p;

        /* listed in both: deny wins, for the module and its submodules */
        p = define_ok(s, "both", "base=education; allow=socket,json; deny=json");
        REFUSED(p, "socket");
        REFUSED(p, "socket.x");
        REFUSED(p, "json");
        REFUSED(p, "json.decoder");
        ALLOWED(p, "math");

        /* deny holds even when imports are not checked */
        p = define_ok(s, "open", "imports=all; deny=pickle");
        assert_false(p->check_imports);
        REFUSED(p, "pickle");
        REFUSED(p, "pickle.x");
        ALLOWED(p, "pickletools");
        ALLOWED(p, "requests");
        ALLOWED(p, "_socket");
}

static void test_module_allowed_permissive(void **state) {
        struct policy_set *s = &the_set;
        const struct policy *p;

        p = find(s, "permissive");
        static const char *const all[] = {
                "socket", "_socket", "subprocess", "_posixsubprocess", "ctypes", "_ctypes", "importlib",
                "importlib.util", "os", "os.path", "mathx", "requests", "PIL.Image", "_strptime", "",
        };
        for (size_t i = 0; i < ELEMENTSOF(all); i++)
                ALLOWED(p, all[i]);
}

/* ---- audit events ---- */

static void expect_event(const struct policy *p, const char *event, bool denied, const char *what) {
        const char *got = (const char *)0x1;
        bool d = policy_event_denied(p, event, &got);
        if (d != denied)
                fail_msg("%s: event '%s' %s, expected %s", p->name, event, d ? "denied" : "not denied",
                         denied ? "denied" : "not denied");
        if (!denied)
                return;
        if (what == NULL ? got != NULL : (got == NULL || got == (const char *)0x1 || strcmp(got, what) != 0))
                fail_msg("%s: description of '%s' is '%s', expected '%s'", p->name, event,
                         got == NULL ? "(null)" : got == (const char *)0x1 ? "(unset)" : got, what ? what : "(null)");
        /* ret_what is optional */
        assert_true(policy_event_denied(p, event, NULL));
}

static void test_event_denied_education(void **state) {
        struct policy_set *s = &the_set;
        const struct policy *p;

        p = find(s, "education");

        /* exact names */
        expect_event(p, "os.system", true, "running a shell command");
        expect_event(p, "subprocess.Popen", true, "starting a process");
        expect_event(p, "os.exec", true, "replacing the process with another program");
        expect_event(p, "os.posix_spawn", true, "starting a process");
        expect_event(p, "os.spawn", true, "starting a process");
        expect_event(p, "os.fork", true, "forking a process");
        expect_event(p, "os.forkpty", true, "forking a process");
        expect_event(p, "os.systemx", false, NULL);
        expect_event(p, "os.syste", false, NULL);
        expect_event(p, "os.system.x", false, NULL);
        expect_event(p, "OS.SYSTEM", false, NULL);
        expect_event(p, "subprocess.Popenx", false, NULL);
        expect_event(p, "os.execv", false, NULL); /* CPython raises "os.exec" for every exec*() */

        /* "socket.*" covers everything starting "socket." */
        expect_event(p, "socket.connect", true, "network access");
        expect_event(p, "socket.__new__", true, "network access");
        expect_event(p, "socket.getaddrinfo", true, "network access");
        expect_event(p, "socket.", true, "network access");
        expect_event(p, "socketx", false, NULL);
        expect_event(p, "socket", false, NULL);
        expect_event(p, "socketx.connect", false, NULL);
        expect_event(p, "xsocket.connect", false, NULL);
        expect_event(p, "ctypes.dlopen", true, "calling native code through ctypes");
        expect_event(p, "ctypes.addressof", true, "calling native code through ctypes");
        expect_event(p, "ctypesx", false, NULL);

        /* what a program does all the time */
        expect_event(p, "open", false, NULL);
        expect_event(p, "import", false, NULL);
        expect_event(p, "exec", false, NULL);
        expect_event(p, "compile", false, NULL);
        expect_event(p, "", false, NULL);

}

static void test_event_denied_defined(void **state) {
        struct policy_set *s = &the_set;
        const struct policy *p;

        /* an operator's event has no description; an operator's prefix works
         * like the built-in ones */
        p = define_ok(s, "ev", "deny-events=os.kill, shutil.*");
        expect_event(p, "os.kill", true, NULL);
        expect_event(p, "os.killpg", false, NULL);
        expect_event(p, "shutil.rmtree", true, NULL);
        expect_event(p, "shutil", false, NULL);
        expect_event(p, "os.system", false, NULL); /* base permissive */

        /* a described event denied by an operator's policy keeps its
         * description */
        p = define_ok(s, "ev2", "deny-events=os.system,socket.*");
        expect_event(p, "os.system", true, "running a shell command");
        expect_event(p, "socket.bind", true, "network access");

        p = find(s, "permissive");
        expect_event(p, "os.system", false, NULL);
        expect_event(p, "socket.connect", false, NULL);
        expect_event(p, "ctypes.dlopen", false, NULL);
}

/* ---- paths ---- */

/* Normalize path against cwd into a PATH_MAX-sized buffer; must fit. */
static const char *norm(const char *cwd, const char *path) {
        static char out[4096];
        if (!policy_normalize_path(cwd, path, out, sizeof out))
                fail_msg("policy_normalize_path('%s', '%s') did not fit", cwd, path);
        return out;
}

static void test_normalize_path(void **state) {
        assert_string_equal(norm("/sandbox", "/sandbox"), "/sandbox");
        assert_string_equal(norm("/sandbox", "/sandbox/"), "/sandbox");
        assert_string_equal(norm("/sandbox", "/"), "/");
        assert_string_equal(norm("/sandbox", "//"), "/");
        assert_string_equal(norm("/sandbox", "/.."), "/");
        assert_string_equal(norm("/sandbox", "/../../.."), "/");
        assert_string_equal(norm("/sandbox", "/tmp/a/b"), "/tmp/a/b");
        assert_string_equal(norm("/sandbox", "//tmp///a//b/"), "/tmp/a/b");
        assert_string_equal(norm("/sandbox", "/tmp/./a/./b/."), "/tmp/a/b");
        assert_string_equal(norm("/sandbox", "/tmp/../etc/passwd"), "/etc/passwd");
        assert_string_equal(norm("/sandbox", "/tmp/a/../../etc"), "/etc");
        assert_string_equal(norm("/sandbox", "/a/b/c/../../d"), "/a/d");
        assert_string_equal(norm("/sandbox", "/..."), "/...");
        assert_string_equal(norm("/sandbox", "/a/..b/.c"), "/a/..b/.c");

        /* relative: against cwd */
        assert_string_equal(norm("/sandbox", "out.txt"), "/sandbox/out.txt");
        assert_string_equal(norm("/sandbox", "./out.txt"), "/sandbox/out.txt");
        assert_string_equal(norm("/sandbox", "a/../b"), "/sandbox/b");
        assert_string_equal(norm("/sandbox", "."), "/sandbox");
        assert_string_equal(norm("/sandbox", ""), "/sandbox");
        assert_string_equal(norm("/sandbox", ".."), "/");
        assert_string_equal(norm("/sandbox", "../etc/passwd"), "/etc/passwd");
        assert_string_equal(norm("/sandbox", "..//../x"), "/x");
        assert_string_equal(norm("/sandbox", "../sandbox/x"), "/sandbox/x");
        assert_string_equal(norm("/sandbox/", "x"), "/sandbox/x");
        assert_string_equal(norm("/", "x"), "/x");
        assert_string_equal(norm("/tmp/a", "../../sandbox/./y"), "/sandbox/y");
}

static void test_normalize_path_too_long(void **state) {
        char out[8], big[8192];

        /* exactly fits: "/abcdef" is 7 bytes plus the NUL */
        memset(out, 'X', sizeof out);
        assert_true(policy_normalize_path("/sandbox", "/abcdef", out, sizeof out));
        assert_string_equal(out, "/abcdef");
        assert_true(policy_normalize_path("/sandbox", "/abc/de", out, sizeof out));
        assert_string_equal(out, "/abc/de");
        /* one byte more does not */
        assert_false(policy_normalize_path("/sandbox", "/abcdefg", out, sizeof out));
        assert_false(policy_normalize_path("/sandbox", "/abc/def", out, sizeof out));
        /* relative: the cwd counts */
        assert_false(policy_normalize_path("/tmp/ab", "x", out, sizeof out));
        assert_true(policy_normalize_path("/tmp/ab", "../x", out, sizeof out));
        assert_string_equal(out, "/tmp/x");
        /* what fits after normalization fits, even when the input does not */
        assert_true(policy_normalize_path("/sandbox", "/a/../b/../../c////d/.", out, sizeof out));
        assert_string_equal(out, "/c/d");
        /* no room for anything */
        assert_false(policy_normalize_path("/sandbox", "/", out, 1));
        assert_false(policy_normalize_path("/sandbox", "/", out, 0));
        assert_true(policy_normalize_path("/sandbox", "/", out, 2));
        assert_string_equal(out, "/");
        assert_false(policy_normalize_path("/sandbox", "/a", out, 2));

        /* longer than PATH_MAX */
        big[0] = '/';
        memset(big + 1, 'a', sizeof big - 2);
        big[sizeof big - 1] = 0;
        assert_false(policy_normalize_path("/sandbox", big, out, sizeof out));
        {
                char out2[4096];
                assert_false(policy_normalize_path("/sandbox", big, out2, sizeof out2));
                assert_false(policy_normalize_path("/sandbox", big + 1, out2, sizeof out2));
        }
}

static void test_path_writable(void **state) {
        struct policy_set *s = &the_set;
        const struct policy *edu, *perm;
        char out[4096];

        edu = find(s, "education");
        perm = find(s, "permissive");

        static const char *const ok[] = {
                "/sandbox", "/sandbox/x", "/sandbox/a/b/c.txt", "/tmp", "/tmp/a/b", "/dev/null", "/dev/stdout",
                "/dev/stderr",
        };
        static const char *const refused[] = {
                "/sandboxx", "/sandbox.x", "/sandbo", "/tmpx", "/tm", "/etc/x", "/etc/passwd", "/", "/usr/lib/x",
                "/dev/null2", "/dev/zero", "/dev/tty", "/proc/self/mem", "/x/sandbox", "/x/tmp", "",
        };
        for (size_t i = 0; i < ELEMENTSOF(ok); i++) {
                if (!policy_path_writable(edu, ok[i]))
                        fail_msg("education: '%s' not writable", ok[i]);
                assert_true(policy_path_writable(perm, ok[i]));
        }
        for (size_t i = 0; i < ELEMENTSOF(refused); i++) {
                if (policy_path_writable(edu, refused[i]))
                        fail_msg("education: '%s' writable", refused[i]);
                assert_true(policy_path_writable(perm, refused[i]));
        }

        /* through normalization, as the runner does it */
        static const struct {
                const char *path;
                bool writable;
        } rel[] = {
                { "out.txt", true },        { "./a/../b", true },      { "/tmp/../etc/passwd", false },
                { "../etc/passwd", false }, { "..//../x", false },     { "../sandboxx/y", false },
                { "../tmp/z", true },       { "/sandbox/../tmp", true }, { "/sandbox/../sandboxx", false },
                { "..", false },
        };
        for (size_t i = 0; i < ELEMENTSOF(rel); i++) {
                assert_true(policy_normalize_path("/sandbox", rel[i].path, out, sizeof out));
                if (policy_path_writable(edu, out) != rel[i].writable)
                        fail_msg("education: '%s' (normalized '%s') writable=%d, expected %d", rel[i].path, out,
                                 !rel[i].writable, rel[i].writable);
        }
}

/* ---- operator-defined policies ---- */

static void test_define_base_education(void **state) {
        struct policy_set *s = &the_set;
        const struct policy *edu, *p;

        edu = find(s, "education");
        size_t edu_events = edu->n_deny_events, edu_deny = edu->n_deny;

        /* extra allow */
        p = define_ok(s, "sci", "base=education; allow=numpy,scipy");
        assert_int_equal(s->n, N_BUILTINS + 1);
        assert_string_equal(p->name, "sci");
        assert_true(p->check_imports);
        assert_true(p->restrict_writes);
        ALLOWED(p, "numpy");
        ALLOWED(p, "numpy.linalg");
        ALLOWED(p, "scipy");
        ALLOWED(p, "math");
        REFUSED(p, "numpyx");
        REFUSED(p, "socket");
        REFUSED(p, "requests");
        expect_event(p, "os.system", true, "running a shell command");
        assert_false(policy_path_writable(p, "/etc/x"));
        /* the base is copied, not changed */
        edu = find(s, "education");
        REFUSED(edu, "numpy");

        /* extra deny */
        p = define_ok(s, "nojson", "base=education; deny=json");
        assert_int_equal(p->n_deny, edu_deny + 1);
        REFUSED(p, "json");
        REFUSED(p, "json.decoder");
        ALLOWED(p, "math");

        /* extra events */
        p = define_ok(s, "nokill", "base=education; deny-events=os.kill,signal.*");
        assert_int_equal(p->n_deny_events, edu_events + 2);
        expect_event(p, "os.kill", true, NULL);
        expect_event(p, "signal.pthread_kill", true, NULL);
        expect_event(p, "os.system", true, "running a shell command");

        /* allow-events removes one of education's */
        p = define_ok(s, "forking", "base=education; allow-events=os.fork");
        assert_int_equal(p->n_deny_events, edu_events - 1);
        assert_false(strv_has(p->deny_events, p->n_deny_events, "os.fork"));
        expect_event(p, "os.fork", false, NULL);
        expect_event(p, "os.forkpty", true, "forking a process");
        expect_event(p, "os.system", true, "running a shell command");
        /* removing a pattern's member does not remove the pattern, and an
         * event that was not denied is fine to allow */
        p = define_ok(s, "net", "base=education; allow-events=socket.connect, os.kill");
        assert_int_equal(p->n_deny_events, edu_events);
        expect_event(p, "socket.connect", true, "network access");
        p = define_ok(s, "net2", "base=education; allow-events=socket.*");
        expect_event(p, "socket.connect", false, NULL);
        expect_event(p, "ctypes.dlopen", true, "calling native code through ctypes");

        /* imports=all: anything not denied */
        p = define_ok(s, "anyimport", "base=education; imports=all");
        assert_false(p->check_imports);
        assert_true(p->restrict_writes);
        ALLOWED(p, "requests");
        ALLOWED(p, "mathx");
        REFUSED(p, "socket");
        REFUSED(p, "_ctypes");

        /* writes=any */
        p = define_ok(s, "anywrite", "base=education; writes=any");
        assert_true(p->check_imports);
        assert_false(p->restrict_writes);
        assert_true(policy_path_writable(p, "/etc/x"));
        REFUSED(p, "socket");

        /* and back */
        p = define_ok(s, "strict", "base=anywrite; writes=workdir; imports=listed");
        assert_true(p->check_imports);
        assert_true(p->restrict_writes);
        assert_false(policy_path_writable(p, "/etc/x"));

        /* everything at once, with whitespace and empty items */
        p = define_ok(s, "all-items",
                      "  base = education ;; allow = numpy , , scipy ; deny = json ;"
                      " deny-events = os.kill ; allow-events = os.fork ; imports = listed ; writes = workdir ; ");
        ALLOWED(p, "numpy");
        ALLOWED(p, "scipy");
        REFUSED(p, "json");
        expect_event(p, "os.kill", true, NULL);
        expect_event(p, "os.fork", false, NULL);
        assert_int_equal(p->n_allow, find(s, "education")->n_allow + 2);

}

static void test_define_default_base_permissive(void **state) {
        struct policy_set *s = &the_set;
        const struct policy *p;

        /* nothing: a copy of permissive under another name */
        p = define_ok(s, "empty", "");
        assert_false(p->check_imports);
        assert_false(p->restrict_writes);
        assert_int_equal(p->n_allow, 0);
        assert_int_equal(p->n_deny, 0);
        assert_int_equal(p->n_deny_events, 0);
        ALLOWED(p, "socket");

        /* listing modules means imports are checked */
        p = define_ok(s, "onlynumpy", "allow=numpy");
        assert_true(p->check_imports);
        assert_false(p->restrict_writes);
        ALLOWED(p, "numpy");
        ALLOWED(p, "numpy.fft");
        ALLOWED(p, "_strptime");
        REFUSED(p, "math");
        REFUSED(p, "socket");
        ALLOWED(p, "_socket"); /* nothing denied */

        /* an operator's policy can be a base */
        p = define_ok(s, "onlynumpy2", "base=onlynumpy; allow=scipy");
        ALLOWED(p, "numpy");
        ALLOWED(p, "scipy");
        REFUSED(p, "math");

        /* repeated entries are kept once */
        p = define_ok(s, "dups", "allow=numpy,numpy; deny=a,a; deny-events=x.y,x.y");
        assert_int_equal(p->n_allow, 1);
        assert_int_equal(p->n_deny, 1);
        assert_int_equal(p->n_deny_events, 1);
}

static void test_define_errors(void **state) {
        struct policy_set *s = &the_set;
        char name32[POLICY_NAME_MAX + 1], msg[256];

        define_fails(s, "bad", "base=education; bogus=1",
                     "unknown item 'bogus' (known: base, allow, deny, deny-events, allow-events, imports, writes)");
        define_fails(s, "bad", "allows=numpy",
                     "unknown item 'allows' (known: base, allow, deny, deny-events, allow-events, imports, writes)");
        /* name is only for the one-line form */
        define_fails(s, "bad", "name=other",
                     "unknown item 'name' (known: base, allow, deny, deny-events, allow-events, imports, writes)");
        define_fails(s, "bad", "=x",
                     "unknown item '' (known: base, allow, deny, deny-events, allow-events, imports, writes)");
        define_fails(s, "bad", "base=education; numpy", "'numpy' is not key=value");
        define_fails(s, "bad", "base=nosuch", "base: no policy named 'nosuch' is defined before this one");
        define_fails(s, "bad", "base=Education", "base: no policy named 'Education' is defined before this one");
        define_fails(s, "bad", "base=", "base: a policy name is needed");
        define_fails(s, "bad", "base=bad", "base: no policy named 'bad' is defined before this one");
        define_fails(s, "bad", "allow=num py", "allow: 'num py' is not a valid module name");
        define_fails(s, "bad", "allow=numpy,1abc", "allow: '1abc' is not a valid module name");
        define_fails(s, "bad", "deny=os/path", "deny: 'os/path' is not a valid module name");
        define_fails(s, "bad", "deny=a-b", "deny: 'a-b' is not a valid module name");
        define_fails(s, "bad", "deny-events=os kill", "deny-events: 'os kill' is not a valid audit event name");
        define_fails(s, "bad", "allow-events=*.x", "allow-events: '*.x' is not a valid audit event name");
        define_fails(s, "bad", "imports=some", "imports must be 'listed' or 'all', got 'some'");
        define_fails(s, "bad", "imports=", "imports must be 'listed' or 'all', got ''");
        define_fails(s, "bad", "writes=everywhere", "writes must be 'workdir' or 'any', got 'everywhere'");
        assert_null(policy_set_find(s, "bad"));

        /* invalid policy names */
        snprintf(msg, sizeof msg,
                 "'%s' is not a valid policy name (1-31 of a-z, 0-9, _ and -, starting with a letter)", "Edu");
        define_fails(s, "Edu", "base=education", msg);
        snprintf(msg, sizeof msg,
                 "'%s' is not a valid policy name (1-31 of a-z, 0-9, _ and -, starting with a letter)", "1edu");
        define_fails(s, "1edu", "base=education", msg);
        snprintf(msg, sizeof msg,
                 "'%s' is not a valid policy name (1-31 of a-z, 0-9, _ and -, starting with a letter)", "");
        define_fails(s, "", "base=education", msg);
        memset(name32, 'p', sizeof name32);
        name32[POLICY_NAME_MAX] = 0;
        snprintf(msg, sizeof msg,
                 "'%s' is not a valid policy name (1-31 of a-z, 0-9, _ and -, starting with a letter)", name32);
        define_fails(s, name32, "base=education", msg);
        /* 31 is fine */
        name32[POLICY_NAME_MAX - 1] = 0;
        define_ok(s, name32, "base=education");
        assert_int_equal(s->n, N_BUILTINS + 1);
}

/* The operator's policy lists may name submodules: the module lists are
 * "dotted identifiers" (policy.c), entries cover their submodules, and
 * policy_module_allowed() is asked about "os.path" and "PIL.Image". */
static void test_define_dotted_module_names(void **state) {
        struct policy_set *s = &the_set;
        const struct policy *p;

        p = define_ok(s, "dotted", "base=education; deny=os.path; allow=xml.etree");
        REFUSED(p, "os.path");
        ALLOWED(p, "os");
        ALLOWED(p, "xml.etree");
        ALLOWED(p, "xml.etree.ElementTree");
        REFUSED(p, "xml");
}

static void test_define_redefine_replaces(void **state) {
        struct policy_set *s = &the_set;
        const struct policy *p;

        p = define_ok(s, "course", "allow=numpy; deny-events=os.kill; writes=workdir");
        ALLOWED(p, "numpy");
        assert_int_equal(s->n, N_BUILTINS + 1);

        /* redefined: replaced as a whole, not merged */
        p = define_ok(s, "course", "base=education; deny=json");
        assert_int_equal(s->n, N_BUILTINS + 1);
        assert_ptr_equal(p, policy_set_find(s, "course"));
        REFUSED(p, "numpy");
        REFUSED(p, "json");
        ALLOWED(p, "math");
        expect_event(p, "os.kill", false, NULL);

        /* a failed redefinition leaves the old one */
        define_fails(s, "course", "deny=json; bogus=1",
                     "unknown item 'bogus' (known: base, allow, deny, deny-events, allow-events, imports, writes)");
        p = find(s, "course");
        REFUSED(p, "json");
        ALLOWED(p, "math");
        assert_true(p->restrict_writes);

        /* a redefinition may build on the old definition */
        p = define_ok(s, "course", "base=course; allow=numpy");
        ALLOWED(p, "numpy");
        REFUSED(p, "json");
        assert_int_equal(s->n, N_BUILTINS + 1);

        /* built-ins can be redefined too */
        p = define_ok(s, "permissive", "deny=pickle");
        assert_int_equal(s->n, N_BUILTINS + 1);
        REFUSED(p, "pickle");
}

/* ---- the one-line form ---- */

static void assert_same_policy(const struct policy *a, const struct policy *b) {
        assert_string_equal(a->name, b->name);
        assert_int_equal(a->check_imports, b->check_imports);
        assert_int_equal(a->restrict_writes, b->restrict_writes);
        assert_int_equal(a->n_allow, b->n_allow);
        for (size_t i = 0; i < a->n_allow; i++)
                assert_string_equal(a->allow[i], b->allow[i]);
        assert_int_equal(a->n_deny, b->n_deny);
        for (size_t i = 0; i < a->n_deny; i++)
                assert_string_equal(a->deny[i], b->deny[i]);
        assert_int_equal(a->n_deny_events, b->n_deny_events);
        for (size_t i = 0; i < a->n_deny_events; i++)
                assert_string_equal(a->deny_events[i], b->deny_events[i]);
}

/* format(p), parse it, format again: the same line and the same policy. */
static void round_trip(const struct policy *p) {
        _cleanup_free_ char *line = NULL, *again = NULL;
        struct policy q;
        char err[256] = "";
        int r;

        assert_int_equal(policy_format(p, &line), 0);
        assert_non_null(line);
        assert_null(strchr(line, '\n'));
        r = policy_parse(line, &q, err, sizeof err);
        if (r != 0)
                fail_msg("policy_parse(\"%s\") = %d: %s", line, r, err);
        assert_int_equal(policy_format(&q, &again), 0);
        if (strcmp(line, again) != 0)
                fail_msg("round trip changed the line\n  was '%s'\n  now '%s'", line, again);
        assert_same_policy(p, &q);
        policy_done(&q);
}

static void test_format_exact(void **state) {
        struct policy_set *s = &the_set;
        _cleanup_free_ char *perm = NULL, *edu = NULL, *def = NULL;

        assert_int_equal(policy_format(find(s, "permissive"), &perm), 0);
        assert_string_equal(perm, "name=permissive;imports=all;writes=any");
        assert_int_equal(policy_format(find(s, "education"), &edu), 0);
#define EDU_PREFIX "name=education;imports=listed;writes=workdir;allow=__future__,abc,"
        if (strncmp(edu, EDU_PREFIX, strlen(EDU_PREFIX)) != 0)
                fail_msg("education formats as '%s'", edu);
        assert_non_null(strstr(edu, ";deny=subprocess,_posixsubprocess,"));
        assert_non_null(strstr(edu, ";deny-events=subprocess.Popen,os.system,"));
        assert_non_null(strstr(edu, "socket.*,ctypes.*"));

        define_ok(s, "mine", "base=permissive; allow=numpy,scipy; deny-events=os.kill; writes=workdir");
        assert_int_equal(policy_format(find(s, "mine"), &def), 0);
        assert_string_equal(def, "name=mine;imports=listed;writes=workdir;allow=numpy,scipy;deny-events=os.kill");
}

static void test_format_parse_round_trip(void **state) {
        struct policy_set *s = &the_set;

        define_ok(s, "sci", "base=education; allow=numpy,scipy; deny=json; deny-events=os.kill,signal.*;"
                             " allow-events=os.fork; writes=any");
        define_ok(s, "listed-nothing", "imports=listed");
        define_ok(s, "events-only", "deny-events=a.b,c.*");
        define_ok(s, "open", "base=education; imports=all; writes=any");
        for (size_t i = 0; i < s->n; i++)
                round_trip(&s->v[i]);
        assert_int_equal(s->n, N_BUILTINS + 4);
}

static void test_parse_fields(void **state) {
        struct policy p;
        char err[256] = "";

        /* "allow" in the one-line form does not switch import checking on:
         * imports= says it */
        assert_int_equal(policy_parse("name=x;imports=all;writes=workdir;allow=numpy", &p, err, sizeof err), 0);
        assert_string_equal(p.name, "x");
        assert_false(p.check_imports);
        assert_true(p.restrict_writes);
        assert_int_equal(p.n_allow, 1);
        assert_string_equal(p.allow[0], "numpy");
        policy_done(&p);
        assert_null(p.allow);
        assert_int_equal(p.n_allow, 0);

        /* every item is optional but the name */
        assert_int_equal(policy_parse("name=y", &p, err, sizeof err), 0);
        assert_string_equal(p.name, "y");
        assert_false(p.check_imports);
        assert_false(p.restrict_writes);
        assert_int_equal(p.n_allow + p.n_deny + p.n_deny_events, 0);
        policy_done(&p);
}

static void test_parse_garbage(void **state) {
        static const char *const bad[] = {
                "",
                ";",
                "garbage",
                "imports=listed;writes=workdir",           /* no name */
                "name=",
                "name=Bad",
                "name=1x",
                "name=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",   /* 32 */
                "name=x;base=education",                   /* base only in definitions */
                "name=x;bogus=1",
                "name=x;imports=maybe",
                "name=x;writes=",
                "name=x;allow=a b",
                "name=x;deny=a;b",
                "name=x;deny-events=a b",
                "name=x;allow=../x",
                "name=x y;imports=all",
                "\x01\x02\x03",
                "name=x;=;=",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                struct policy p;
                char err[256] = "";
                memset(&p, 0x5a, sizeof p);
                int r = policy_parse(bad[i], &p, err, sizeof err);
                if (r != -EINVAL)
                        fail_msg("policy_parse(\"%s\") = %d, expected -EINVAL", bad[i], r);
                if (err[0] == 0)
                        fail_msg("policy_parse(\"%s\") failed without a message", bad[i]);
                /* ret untouched */
                assert_int_equal(((unsigned char *)&p)[0], 0x5a);
                assert_ptr_equal(p.allow, (char **)(uintptr_t)0x5a5a5a5a5a5a5a5aull);
        }

        char err[256];
        struct policy p;
        assert_int_equal(policy_parse("imports=all", &p, err, sizeof err), -EINVAL);
        assert_string_equal(err, "the policy has no name");
        assert_int_equal(policy_parse("name=x;base=education", &p, err, sizeof err), -EINVAL);
        assert_string_equal(err,
                            "unknown item 'base' (known: base, allow, deny, deny-events, allow-events, imports, writes)");
}

/* policy_resolve_path on a real tree: symlinks (absolute, relative,
 * chained, into a directory, dangling, looping), ".." applied after a
 * symlink as the kernel applies it, the final component followed only when
 * asked, and /dev/stdout kept by name. */
static void test_resolve_path(void **state) {
        char dir[] = "/tmp/pyexec-test-resolve-XXXXXX", d[PATH_MAX], work[PATH_MAX + 8], p[2 * PATH_MAX], want[2 * PATH_MAX];
        char out[PATH_MAX];
        static const char *const links[][2] = {
                { "work/z", "/dev/zero" },        { "work/zz", "z" },
                { "work/rel", "../target/file" }, { "work/dd", "@/target" },
                { "work/dangling", "@/nowhere/new" }, { "work/loop1", "loop2" },
                { "work/loop2", "loop1" },        { "work/stdout", "/dev/stdout" },
        };
        const struct {
                const char *path;
                bool follow;
                int r;
                const char *want; /* @ is the test directory */
        } cases[] = {
                { "z", true, 0, "/dev/zero" },
                { "z", false, 0, "@/work/z" },
                { "zz", true, 0, "/dev/zero" },
                { "./zz", true, 0, "/dev/zero" },
                { "rel", true, 0, "@/target/file" },
                { "dd/zero", true, 0, "@/target/zero" },
                { "dd/../file", true, 0, "@/file" },
                { "dd/x/../y", false, 0, "@/target/y" },
                { "dangling", true, 0, "@/nowhere/new" },
                { "dangling", false, 0, "@/work/dangling" },
                { "loop1", true, -ELOOP, NULL },
                { "loop1", false, 0, "@/work/loop1" },
                { "stdout", true, 0, "/dev/stdout" },
                { "/dev/stdout", true, 0, "/dev/stdout" },
                { "missing/../x", true, 0, "@/work/x" },
                { "@/work/z", true, 0, "/dev/zero" },
                { "/", true, 0, "/" },
        };

        assert_non_null(mkdtemp(dir));
        assert_non_null(realpath(dir, d));
        snprintf(work, sizeof work, "%s/work", d);
        assert_int_equal(mkdir(work, 0755), 0);
        snprintf(p, sizeof p, "%s/target", d);
        assert_int_equal(mkdir(p, 0755), 0);
        for (size_t i = 0; i < ELEMENTSOF(links); i++) {
                char target[PATH_MAX + 32], at[2 * PATH_MAX];
                if (links[i][1][0] == '@')
                        snprintf(target, sizeof target, "%s%s", d, links[i][1] + 1);
                else
                        snprintf(target, sizeof target, "%s", links[i][1]);
                snprintf(at, sizeof at, "%s/%s", d, links[i][0]);
                assert_int_equal(symlink(target, at), 0);
        }
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const char *path = cases[i].path;
                int r;
                if (path[0] == '@') {
                        snprintf(p, sizeof p, "%s%s", d, path + 1);
                        path = p;
                }
                r = policy_resolve_path(work, path, cases[i].follow, out, sizeof out);
                if (r != cases[i].r)
                        fail_msg("'%s' (follow %d): %d, expected %d", cases[i].path, cases[i].follow, r, cases[i].r);
                if (!cases[i].want)
                        continue;
                if (cases[i].want[0] == '@')
                        snprintf(want, sizeof want, "%s%s", d, cases[i].want + 1);
                else
                        snprintf(want, sizeof want, "%s", cases[i].want);
                if (strcmp(out, want) != 0)
                        fail_msg("'%s' (follow %d): '%s', expected '%s'", cases[i].path, cases[i].follow, out, want);
        }
        /* What does not fit is refused, not cut. */
        assert_int_equal(policy_resolve_path(work, "z", true, out, 6), -ENAMETOOLONG);
        assert_int_equal(policy_resolve_path(work, "z", true, out, 10), 0);
        assert_string_equal(out, "/dev/zero");
        for (size_t i = 0; i < ELEMENTSOF(links); i++) {
                snprintf(p, sizeof p, "%s/%s", d, links[i][0]);
                unlink(p);
        }
        snprintf(p, sizeof p, "%s/target", d);
        rmdir(p);
        rmdir(work);
        rmdir(d);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_builtins, set_setup, set_teardown),
                cmocka_unit_test(test_policy_name_is_valid),
                cmocka_unit_test_setup_teardown(test_module_allowed_education, set_setup, set_teardown),
                cmocka_unit_test_setup_teardown(test_module_allowed_deny_wins, set_setup, set_teardown),
                cmocka_unit_test_setup_teardown(test_module_allowed_permissive, set_setup, set_teardown),
                cmocka_unit_test_setup_teardown(test_event_denied_education, set_setup, set_teardown),
                cmocka_unit_test_setup_teardown(test_event_denied_defined, set_setup, set_teardown),
                cmocka_unit_test(test_normalize_path),
                cmocka_unit_test(test_normalize_path_too_long),
                cmocka_unit_test_setup_teardown(test_path_writable, set_setup, set_teardown),
                cmocka_unit_test_setup_teardown(test_define_base_education, set_setup, set_teardown),
                cmocka_unit_test_setup_teardown(test_define_default_base_permissive, set_setup, set_teardown),
                cmocka_unit_test_setup_teardown(test_define_errors, set_setup, set_teardown),
                cmocka_unit_test_setup_teardown(test_define_dotted_module_names, set_setup, set_teardown),
                cmocka_unit_test_setup_teardown(test_define_redefine_replaces, set_setup, set_teardown),
                cmocka_unit_test_setup_teardown(test_format_exact, set_setup, set_teardown),
                cmocka_unit_test_setup_teardown(test_format_parse_round_trip, set_setup, set_teardown),
                cmocka_unit_test(test_parse_fields),
                cmocka_unit_test(test_parse_garbage),
                cmocka_unit_test(test_resolve_path),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
