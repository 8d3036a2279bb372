/* SPDX-License-Identifier: MIT */
/*
 * jobs-path: a request's parameter values checked against a job's
 * definition. Ranges, enums, patterns and flags give exactly one argument
 * each; file values resolve beneath their roots only: a path outside the
 * roots, with "..", through a symlink, to a FIFO, a device, a directory or
 * a hard-linked file is refused with a message naming the parameter, and
 * validation creates nothing on disk. Every check runs on a tree the test
 * makes in a fresh temporary directory.
 */
#include "test-helpers.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "jobs-def.h"
#include "jobs-path.h"
#include "util.h"

static char T[64];          /* the temporary directory */
static struct job_set defs; /* job "t", roots under T */
static const struct job *job;
static bool have_device;

static void mk(const char *rel, size_t bytes) {
        char p[256], data[4096] = { 0 };
        int fd;

        snprintf(p, sizeof p, "%s/%s", T, rel);
        fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        assert_true(bytes <= sizeof data);
        assert_int_equal(write_all(fd, data, bytes), 0);
        close(fd);
}

static void mkd(const char *rel) {
        char p[256];
        snprintf(p, sizeof p, "%s/%s", T, rel);
        assert_int_equal(mkdir(p, 0755), 0);
}

static void mkl(const char *target, const char *rel) {
        char p[256];
        snprintf(p, sizeof p, "%s/%s", T, rel);
        assert_int_equal(symlink(target, p), 0);
}

static int setup(void **state) {
        char p[256], q[256], err[1024];
        _cleanup_free_ char *yaml = NULL;
        int fd;

        (void)state;
        snprintf(T, sizeof T, "/tmp/test-jobs-path-XXXXXX");
        assert_non_null(mkdtemp(T));
        mkd("in");
        mkd("in/sub");
        mkd("in/dir.png");
        mkd("out");
        mkd("out/sub");
        mkd("out/adir.png");
        mkd("dirs");
        mkd("dirs/existing");
        mkd("outside");
        mk("in/a.png", 10);
        mk("in/A.PNG", 10);
        mk("in/big.png", 2000);
        mk("in/a.txt", 10);
        mk("in/sub/b.png", 10);
        mk("outside/secret.png", 10);
        mk("out/exists.png", 10);
        mkl("a.png", "in/link.png");
        mkl("sub", "in/linkdir");
        mkl("/etc", "in/abs");
        mkl("../outside", "in/escape");
        mkl("/tmp", "out/lnk");
        mkl("exists.png", "out/lnkfile.png");
        mkl("existing", "dirs/lnk");
        snprintf(p, sizeof p, "%s/in/fifo.png", T);
        assert_int_equal(mkfifo(p, 0644), 0);
        /* A file outside the roots, linked into one. */
        snprintf(p, sizeof p, "%s/outside/secret.png", T);
        snprintf(q, sizeof q, "%s/in/hard.png", T);
        assert_int_equal(link(p, q), 0);
        /* A device node needs CAP_MKNOD; without it that case is skipped. */
        snprintf(p, sizeof p, "%s/in/null.png", T);
        have_device = mknod(p, S_IFCHR | 0644, makedev(1, 3)) == 0;

        yaml = strdup_printf("jobs:\n"
                             "  t:\n"
                             "    interpreter: /usr/bin/true\n"
                             "    script: s.py\n"
                             "    args: [\"{script}\", \"{src}\", \"{dst}\", \"{outdir}\", \"{mode}\", \"{count}\",\n"
                             "           \"{scale}\", \"{quiet}\", \"{label}\"]\n"
                             "    params:\n"
                             "      src: {type: input_file, roots: [%s/in], extensions: [png], max_bytes: 1000}\n"
                             "      dst: {type: output_file, roots: [%s/out], extensions: [png]}\n"
                             "      outdir: {type: output_dir, roots: [%s/dirs]}\n"
                             "      mode: {type: enum, values: [fast, slow], default: fast}\n"
                             "      count: {type: int, min: 1, max: 10}\n"
                             "      scale: {type: number, min: -1, max: 1}\n"
                             "      quiet: {type: bool, flag: --quiet}\n"
                             "      label: {type: string, pattern: \"[a-z]+\", max_length: 8}\n",
                             T, T, T);
        assert_non_null(yaml);
        snprintf(p, sizeof p, "%s/jobs.yaml", T);
        fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write_all(fd, yaml, strlen(yaml)), 0);
        close(fd);
        if (jobs_load(p, &defs, err, sizeof err) < 0)
                fail_msg("%s", err);
        job = jobs_find(&defs, "t");
        assert_non_null(job);
        return 0;
}

static int teardown(void **state) {
        char cmd[128];
        (void)state;
        jobs_done(&defs);
        snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", T);
        assert_int_equal(system(cmd), 0);
        return 0;
}

static char *tp(const char *rel) {
        char *p = strdup_printf("%s/%s", T, rel);
        assert_non_null(p);
        return p;
}

/* The valid request, with name set to v (a new reference, or NULL: the
 * parameter left out). */
static json_t *params_with(const char *name, json_t *v) {
        _cleanup_free_ char *src = tp("in/a.png"), *dst = tp("out/new.png"), *outdir = tp("dirs/new");
        json_t *o = json_pack("{s:s,s:s,s:s,s:i,s:f,s:s}", "src", src, "dst", dst, "outdir", outdir, "count", 3,
                              "scale", 0.5, "label", "abc");
        assert_non_null(o);
        if (name) {
                if (v)
                        json_object_set_new(o, name, v);
                else
                        json_object_del(o, name);
        }
        return o;
}

static void assert_slots_empty(const struct job_slot *slots) {
        for (size_t i = 0; i < JOB_MAX_PARAMS; i++) {
                assert_int_equal(slots[i].fd, -1);
                assert_int_equal(slots[i].parent_fd, -1);
                assert_int_equal(slots[i].mkdir_parent_fd, -1);
                assert_null(slots[i].arg);
                assert_null(slots[i].host);
        }
}

/* Validate params (taking the reference); on failure check the error names
 * the field and every slot is empty, and return the message. */
static int run(json_t *params, struct job_slot *slots, struct api_error *e) {
        int r;

        memset(e, 0, sizeof *e);
        r = job_params_validate(job, params, slots, e);
        json_decref(params);
        if (r < 0) {
                assert_int_equal(r, -EINVAL);
                assert_int_equal(e->http, 400);
                assert_non_null(e->code);
                assert_true(e->message[0]);
                assert_slots_empty(slots);
        }
        return r;
}

static void done(struct job_slot *slots) {
        for (size_t i = 0; i < JOB_MAX_PARAMS; i++)
                job_slot_done(&slots[i]);
}

/* name set to v is refused, naming params.name, with want in the message. */
static void refused(const char *name, json_t *v, const char *want) {
        struct job_slot slots[JOB_MAX_PARAMS];
        struct api_error e;
        char field[96];

        if (run(params_with(name, v), slots, &e) == 0) {
                done(slots);
                fail_msg("params.%s accepted; want '%s'", name, want);
        }
        snprintf(field, sizeof field, "params.%s", name);
        assert_string_equal(e.code, "invalid_parameter");
        assert_string_equal(e.field, field);
        if (!strstr(e.message, want))
                fail_msg("params.%s: got '%s', want '%s'", name, e.message, want);
}

/* name set to v is accepted, as the argument want (NULL: none). */
static void accepted(const char *name, json_t *v, const char *want) {
        struct job_slot slots[JOB_MAX_PARAMS];
        struct api_error e;
        size_t i;

        if (run(params_with(name, v), slots, &e) < 0)
                fail_msg("params.%s refused: %s", name, e.message);
        for (i = 0; i < job->n_params && strcmp(job->params[i].name, name); i++)
                ;
        assert_true(i < job->n_params);
        if (want)
                assert_string_equal(slots[i].arg, want);
        else
                assert_null(slots[i].arg);
        done(slots);
}

/* ---- the whole request ------------------------------------------------- */

static void test_valid_request(void **state) {
        struct job_slot slots[JOB_MAX_PARAMS];
        struct api_error e;
        struct stat st, want;
        _cleanup_free_ char *src = tp("in/a.png"), *out = tp("out"), *newdir = tp("dirs/new");

        (void)state;
        assert_int_equal(run(params_with(NULL, NULL), slots, &e), 0);
        /* In the definition's order: src dst outdir mode count scale quiet label. */
        assert_string_equal(slots[0].arg, "/job/in/src/a.png");
        assert_string_equal(slots[0].dest, "/job/in/src/a.png");
        assert_string_equal(slots[0].host, src);
        /* The descriptor is the file itself. */
        assert_int_equal(fstat(slots[0].fd, &st), 0);
        assert_int_equal(stat(src, &want), 0);
        assert_true(st.st_dev == want.st_dev && st.st_ino == want.st_ino);
        assert_string_equal(slots[1].arg, "/job/out/dst/new.png");
        assert_string_equal(slots[1].base, "new.png");
        assert_int_equal(slots[1].fd, -1);
        assert_int_equal(fstat(slots[1].parent_fd, &st), 0);
        assert_int_equal(stat(out, &want), 0);
        assert_true(st.st_ino == want.st_ino);
        /* A missing output directory is only planned: nothing is made. */
        assert_string_equal(slots[2].arg, "/job/out/outdir");
        assert_string_equal(slots[2].mkdir_name, "new");
        assert_true(slots[2].mkdir_parent_fd >= 0);
        assert_int_equal(stat(newdir, &st), -1);
        assert_int_equal(errno, ENOENT);
        assert_string_equal(slots[3].arg, "fast"); /* the default */
        assert_string_equal(slots[4].arg, "3");
        assert_string_equal(slots[5].arg, "0.5");
        assert_null(slots[6].arg); /* an absent flag is false */
        assert_string_equal(slots[7].arg, "abc");
        for (size_t i = 0; i < 8; i++)
                assert_null(slots[i].staging);
        done(slots);
        assert_slots_empty(slots);
}

static void test_request_shape(void **state) {
        struct job_slot slots[JOB_MAX_PARAMS];
        struct api_error e;
        json_t *p;

        (void)state;
        assert_int_equal(run(json_string("x"), slots, &e), -EINVAL);
        assert_string_equal(e.code, "invalid_request");
        assert_string_equal(e.field, "params");

        p = params_with(NULL, NULL);
        json_object_set_new(p, "zzz", json_true());
        assert_int_equal(run(p, slots, &e), -EINVAL);
        assert_string_equal(e.field, "params.zzz");
        assert_string_equal(e.message, "unknown parameter 'zzz' for job 't' (its parameters: src, dst, outdir, mode, "
                                       "count, scale, quiet, label)");

        refused("count", NULL, "parameter 'count': is required");
        refused("src", NULL, "parameter 'src': is required");
        accepted("label", json_string("xyz"), "xyz");
}

/* ---- values ---------------------------------------------------------------- */

static void test_int(void **state) {
        (void)state;
        accepted("count", json_integer(1), "1");
        accepted("count", json_integer(10), "10");
        accepted("count", json_string("7"), "7");
        refused("count", json_integer(0), "must be between 1 and 10, got 0");
        refused("count", json_integer(11), "must be between 1 and 10, got 11");
        refused("count", json_string("-5"), "must be between 1 and 10, got -5");
        refused("count", json_string("3x"), "must be a whole number, got '3x'");
        refused("count", json_string(""), "must be a whole number");
        refused("count", json_string("99999999999999999999"), "must be a whole number");
        refused("count", json_real(2.5), "must be a whole number");
        refused("count", json_true(), "must be a whole number");
}

static void test_number(void **state) {
        (void)state;
        accepted("scale", json_real(-1), "-1");
        accepted("scale", json_integer(1), "1");
        accepted("scale", json_string("0.25"), "0.25");
        refused("scale", json_real(1.5), "must be between -1 and 1, got 1.5");
        refused("scale", json_string("nan"), "must be between -1 and 1");
        refused("scale", json_string("1e400"), "must be between -1 and 1");
        refused("scale", json_string("half"), "must be a number, got 'half'");
        refused("scale", json_null(), "must be a number");
}

static void test_enum_bool_string(void **state) {
        (void)state;
        accepted("mode", json_string("slow"), "slow");
        refused("mode", json_string("medium"), "must be one of: fast, slow");
        refused("mode", json_string("FAST"), "must be one of: fast, slow");
        refused("mode", json_integer(1), "must be one of: fast, slow");

        accepted("quiet", json_true(), "--quiet");
        accepted("quiet", json_false(), NULL);
        accepted("quiet", json_string("yes"), "--quiet");
        accepted("quiet", json_string("0"), NULL);
        refused("quiet", json_string("maybe"), "must be true or false");
        refused("quiet", json_integer(1), "must be true or false");

        accepted("label", json_string("abcdefgh"), "abcdefgh");
        refused("label", json_string("abcdefghi"), "must be at most 8 bytes");
        /* Anchored: the whole value matches, not a part of it. */
        refused("label", json_string("ab1"), "'ab1' does not match the pattern [a-z]+");
        refused("label", json_string("ABC"), "does not match the pattern");
        refused("label", json_string("a\nb"), "does not match the pattern");
        refused("label", json_stringn("ab\0c", 4), "must be text without NUL characters");
        refused("label", json_integer(5), "must be text without NUL characters");
}

/* ---- input files ------------------------------------------------------------ */

static void refused_path(const char *name, const char *rel, const char *want) {
        char *p = rel[0] == '/' ? strdup(rel) : tp(rel);
        assert_non_null(p);
        refused(name, json_string(p), want);
        free(p);
}

static void test_inputs(void **state) {
        _cleanup_free_ char *sub = tp("in/sub/b.png"), *upper = tp("in/A.PNG"),
                            *dotdot = tp("in/../outside/secret.png");
        _cleanup_free_ char *want = NULL;

        (void)state;
        accepted("src", json_string(sub), "/job/in/src/b.png");
        /* Extensions are matched without regard to case. */
        accepted("src", json_string(upper), "/job/in/src/A.PNG");

        refused("src", json_string("in/a.png"), "'in/a.png' must be an absolute path");
        refused("src", json_integer(1), "must be a path (text)");
        want = strdup_printf("'%s': '..' is not allowed in paths", dotdot);
        refused("src", json_string(dotdot), want);
        refused_path("src", "in/sub/../a.png", "'..' is not allowed in paths");
        refused_path("src", "outside/secret.png", "is outside the allowed roots");
        refused_path("src", "/etc/passwd", "is outside the allowed roots");
        /* The root itself, and a sibling sharing its prefix. */
        refused_path("src", "in", "is outside the allowed roots");
        refused_path("src", "in/", "is outside the allowed roots");
        refused_path("src", "inx/a.png", "is outside the allowed roots");
        refused_path("src", "in/missing.png", "does not exist");
        refused_path("src", "in/a.txt", "does not have an allowed extension (png)");
        refused_path("src", "in/big.png", "is 2000 bytes; the limit is 1000");
        /* Symlinks are never followed, at the end or on the way. */
        refused_path("src", "in/link.png", "has a symlink in its path (symlinks are not followed)");
        refused_path("src", "in/linkdir/b.png", "has a symlink in its path");
        refused_path("src", "in/escape/secret.png", "has a symlink in its path");
        refused_path("src", "in/abs/x.png", "has a symlink in its path");
        refused_path("src", "in/fifo.png", "is a FIFO; a regular file is required");
        refused_path("src", "in/dir.png", "is a directory; a regular file is required");
        refused_path("src", "in/a.png/x.png", "has a component that is not a directory");
        /* A second name of a file outside the roots. */
        refused_path("src", "in/hard.png", "has 2 hard links; an input must have exactly one");
        if (have_device)
                refused_path("src", "in/null.png", "is a device; a regular file is required");
}

/* ---- outputs ---------------------------------------------------------------------- */

static void test_outputs(void **state) {
        _cleanup_free_ char *sub = tp("out/sub/x.png"), *exists = tp("out/exists.png"), *existing = tp("dirs/existing");
        _cleanup_free_ char *nested = tp("dirs/existing/new");
        struct job_slot slots[JOB_MAX_PARAMS];
        struct api_error e;

        (void)state;
        accepted("dst", json_string(sub), "/job/out/dst/x.png");
        /* An existing regular file is replaced when the run publishes. */
        accepted("dst", json_string(exists), "/job/out/dst/exists.png");
        refused_path("dst", "out/x.jpg", "does not have an allowed extension (png)");
        refused_path("dst", "out/.hidden.png", "must end in a plain file name");
        refused_path("dst", "out/sub/", "must end in a plain file name");
        refused_path("dst", "outside/x.png", "is outside the allowed roots");
        refused_path("dst", "out/../outside/x.png", "'..' is not allowed in paths");
        refused_path("dst", "out/missing/x.png", "the directory of");
        refused_path("dst", "out/missing/x.png", "does not exist");
        refused_path("dst", "out/lnk/x.png", "has a symlink in its path");
        refused_path("dst", "out/lnkfile.png", "exists and is a symlink");
        refused_path("dst", "out/adir.png", "exists and is a directory");

        /* An existing directory is used as it is. */
        assert_int_equal(run(params_with("outdir", json_string(existing)), slots, &e), 0);
        assert_true(slots[2].parent_fd >= 0);
        assert_null(slots[2].mkdir_name);
        done(slots);
        /* A missing one beneath an existing one is planned, not made. */
        assert_int_equal(run(params_with("outdir", json_string(nested)), slots, &e), 0);
        assert_string_equal(slots[2].mkdir_name, "new");
        done(slots);
        assert_int_equal(access(nested, F_OK), -1);
        refused_path("outdir", "dirs/a/b", "the parent of");
        refused_path("outdir", "dirs/a/b", "does not exist");
        refused_path("outdir", "dirs/lnk", "has a symlink in its path");
        refused_path("outdir", "dirs/lnk/x", "has a symlink in its path");
        refused_path("outdir", "out/sub", "is outside the allowed roots");
        refused_path("outdir", "dirs/../out", "'..' is not allowed in paths");
}

/* Nothing above made or removed a file. */
static void test_nothing_created(void **state) {
        static const char *const dirs[] = { "in", "out", "out/sub", "dirs", "dirs/existing", "outside" };
        static const int counts[] = { 12, 5, 0, 2, 0, 1 };

        (void)state;
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                _cleanup_free_ char *p = tp(dirs[i]);
                char cmd[512];
                int n = 0;
                FILE *f;
                snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", p);
                f = popen(cmd, "r");
                assert_non_null(f);
                assert_int_equal(fscanf(f, "%d", &n), 1);
                pclose(f);
                if (n != counts[i] + (i == 0 && have_device))
                        fail_msg("%s has %d entries, want %d", dirs[i], n, counts[i] + (i == 0 && have_device));
        }
}

/* ---- resolution itself ----------------------------------------------------------- */

static void test_open_beneath(void **state) {
        _cleanup_close_ int root = -1;
        _cleanup_free_ char *in = tp("in");
        int fd;

        (void)state;
        root = open(in, O_PATH | O_DIRECTORY | O_CLOEXEC);
        assert_true(root >= 0);
        fd = job_open_beneath(root, "sub/b.png", O_PATH);
        assert_true(fd >= 0);
        assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        close(fd);
        assert_int_equal(job_open_beneath(root, "../outside/secret.png", O_PATH), -EXDEV);
        assert_int_equal(job_open_beneath(root, "/etc/passwd", O_PATH), -EXDEV);
        assert_int_equal(job_open_beneath(root, "link.png", O_PATH), -ELOOP);
        assert_int_equal(job_open_beneath(root, "escape/secret.png", O_PATH), -ELOOP);
        assert_int_equal(job_open_beneath(root, "missing", O_PATH), -ENOENT);
        assert_int_equal(job_open_beneath(root, "a.png/x", O_PATH), -ENOTDIR);
        assert_string_equal(job_beneath_error(-EXDEV), "escapes its allowed root");
        assert_string_equal(job_beneath_error(-ELOOP), "has a symlink in its path (symlinks are not followed)");
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_valid_request),
                cmocka_unit_test(test_request_shape),
                cmocka_unit_test(test_int),
                cmocka_unit_test(test_number),
                cmocka_unit_test(test_enum_bool_string),
                cmocka_unit_test(test_inputs),
                cmocka_unit_test(test_outputs),
                cmocka_unit_test(test_open_beneath),
                cmocka_unit_test(test_nothing_created),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
