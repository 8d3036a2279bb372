/* SPDX-License-Identifier: MIT */
/*
 * The body of the job parameter fuzz target, shared by the libFuzzer entry
 * point (fuzz-job-params.c, built with clang by `make fuzz-jobs`) and the
 * corpus replay (replay.c built with FUZZ_TARGET naming this file, a unit
 * test), so the corpus is replayed through exactly what is fuzzed. It is
 * #included, not linked.
 *
 * An input is the "params" object of POST /api/jobs/NAME, parsed as the
 * service parses a job request, and validated by job_params_validate()
 * against every job of fuzz/job-params.yaml. File parameters have their
 * roots in a tree the target makes once in a fresh temporary directory
 * (removed at exit): regular files, a file too large, a symlink to a file,
 * to a directory and out of the root, a FIFO, a directory named like a
 * file and a hard link to a file outside the roots. A string value that
 * starts with "@ROOT@" has that replaced by the directory, so inputs name
 * the tree without knowing where it is.
 *
 * What must hold for any input:
 * - accepted: every file descriptor resolves beneath one of the
 *   parameter's roots; an input is a regular file with one link, within
 *   max_bytes, with an allowed extension; each argument is one of the enum's
 *   values, an integer or finite number within range, the flag or nothing,
 *   a string within max_length that matches the pattern;
 * - refused: -EINVAL with a 400 naming "params" or "params.NAME" (or
 *   -ENOMEM with a 500), a message that serialises, and every slot empty;
 * - either way nothing is created on disk and no descriptor is left open.
 * A broken invariant prints what broke and abort()s.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobs-def.h"
#include "jobs-path.h"
#include "reply.h"
#include "util.h"
#include "fuzz-check.h"

#ifndef FUZZ_JOB_PARAMS_YAML
#error "FUZZ_JOB_PARAMS_YAML must name fuzz/job-params.yaml"
#endif

#define FUZZ_ROOT_TOKEN "@ROOT@"

static struct {
        bool ready;
        char dir[64];        /* the tree, as the definitions name it */
        char real[PATH_MAX]; /* and as /proc/self/fd shows it */
        struct job_set defs;
        int lowest_fd; /* the fd a new open gets before an input: the same after */
} fz;

/* Directories whose contents validation must leave alone. */
static const char *const fuzz_watched[] = { "in", "in2", "out", "out/sub", "dirs", "dirs/existing", "outside" };
static struct stat fuzz_watched_st[ELEMENTSOF(fuzz_watched)];

/* ---- the tree ----------------------------------------------------------- */

static void fuzz_mk(const char *rel, size_t bytes) {
        char p[PATH_MAX], zero[2048] = { 0 };
        int fd;

        snprintf(p, sizeof p, "%s/%s", fz.dir, rel);
        fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 || bytes > sizeof zero || write_all(fd, zero, bytes) < 0)
                fuzz_fail(__FILE__, __LINE__, "cannot create %s: %s", p, strerror(errno));
        close(fd);
}

static void fuzz_mkdir(const char *rel) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", fz.dir, rel);
        if (mkdir(p, 0755) < 0)
                fuzz_fail(__FILE__, __LINE__, "cannot create %s: %s", p, strerror(errno));
}

static void fuzz_symlink(const char *target, const char *rel) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", fz.dir, rel);
        if (symlink(target, p) < 0)
                fuzz_fail(__FILE__, __LINE__, "cannot create %s: %s", p, strerror(errno));
}

static int fuzz_rm(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        (void)st;
        (void)ftw;
        return type == FTW_DP ? rmdir(path) : unlink(path);
}

static void fuzz_cleanup(void) {
        jobs_done(&fz.defs);
        if (fz.dir[0])
                nftw(fz.dir, fuzz_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* The definitions file with @ROOT@ replaced, loaded. */
static void fuzz_load_defs(void) {
        struct buf in, out;
        char path[PATH_MAX], err[1024];
        int fd, r;

        r = read_file(FUZZ_JOB_PARAMS_YAML, 1 << 20, &in);
        if (r < 0)
                fuzz_fail(__FILE__, __LINE__, "cannot read %s: %s", FUZZ_JOB_PARAMS_YAML, strerror(-r));
        buf_init(&out, 1 << 20);
        for (const char *p = in.data, *end = in.data + in.len; p < end;) {
                const char *hit = memmem(p, (size_t)(end - p), FUZZ_ROOT_TOKEN, strlen(FUZZ_ROOT_TOKEN));
                size_t n = hit ? (size_t)(hit - p) : (size_t)(end - p);
                buf_append(&out, p, n);
                if (!hit)
                        break;
                buf_append(&out, fz.dir, strlen(fz.dir));
                p = hit + strlen(FUZZ_ROOT_TOKEN);
        }
        snprintf(path, sizeof path, "%s/jobs.yaml", fz.dir);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0 || write_all(fd, out.data, out.len) < 0)
                fuzz_fail(__FILE__, __LINE__, "cannot write %s", path);
        close(fd);
        buf_done(&in);
        buf_done(&out);
        if (jobs_load(path, &fz.defs, err, sizeof err) < 0)
                fuzz_fail(__FILE__, __LINE__, "the definitions do not load: %s", err);
        FUZZ_CHECK(fz.defs.n_jobs == 3);
}

static void fuzz_setup(void) {
        char p[PATH_MAX], q[PATH_MAX];

        snprintf(fz.dir, sizeof fz.dir, "/tmp/pyexec-fuzz-jobs-XXXXXX");
        if (!mkdtemp(fz.dir))
                fuzz_fail(__FILE__, __LINE__, "mkdtemp: %s", strerror(errno));
        if (!realpath(fz.dir, fz.real))
                fuzz_fail(__FILE__, __LINE__, "realpath: %s", strerror(errno));
        atexit(fuzz_cleanup);
        fuzz_mkdir("in");
        fuzz_mkdir("in/sub");
        fuzz_mkdir("in/dir.png");
        fuzz_mkdir("in2");
        fuzz_mkdir("out");
        fuzz_mkdir("out/sub");
        fuzz_mkdir("out/adir.png");
        fuzz_mkdir("dirs");
        fuzz_mkdir("dirs/existing");
        fuzz_mkdir("outside");
        fuzz_mk("in/a.png", 10);
        fuzz_mk("in/A.JPG", 10);
        fuzz_mk("in/big.png", 2000);
        fuzz_mk("in/a.txt", 10);
        fuzz_mk("in/.hidden.png", 10);
        fuzz_mk("in/sub/b.png", 10);
        fuzz_mk("in2/c.jpg", 1000);
        fuzz_mk("out/exists.png", 10);
        fuzz_mk("outside/secret.png", 10);
        fuzz_symlink("a.png", "in/link.png");
        fuzz_symlink("sub", "in/linkdir");
        fuzz_symlink("../outside", "in/escape");
        fuzz_symlink("/etc", "in/etc");
        fuzz_symlink("/tmp", "out/lnk");
        fuzz_symlink("exists.png", "out/lnkfile.png");
        fuzz_symlink("existing", "dirs/lnk");
        snprintf(p, sizeof p, "%s/in/fifo.png", fz.dir);
        if (mkfifo(p, 0644) < 0)
                fuzz_fail(__FILE__, __LINE__, "mkfifo: %s", strerror(errno));
        snprintf(p, sizeof p, "%s/outside/secret.png", fz.dir);
        snprintf(q, sizeof q, "%s/in/hard.png", fz.dir);
        if (link(p, q) < 0)
                fuzz_fail(__FILE__, __LINE__, "link: %s", strerror(errno));
        fuzz_load_defs();
        for (size_t i = 0; i < ELEMENTSOF(fuzz_watched); i++) {
                snprintf(p, sizeof p, "%s/%s", fz.dir, fuzz_watched[i]);
                if (lstat(p, &fuzz_watched_st[i]) < 0)
                        fuzz_fail(__FILE__, __LINE__, "lstat %s: %s", p, strerror(errno));
        }
        fz.ready = true;
}

/* ---- inputs --------------------------------------------------------------- */

/* Replace a leading @ROOT@ in each string value of params by the tree. */
static void fuzz_expand_roots(json_t *params) {
        const char *key;
        json_t *v;

        json_object_foreach(params, key, v) {
                const char *s = json_is_string(v) ? json_string_value(v) : NULL;
                size_t n = s ? json_string_length(v) : 0, t = strlen(FUZZ_ROOT_TOKEN);
                if (s && n >= t && memcmp(s, FUZZ_ROOT_TOKEN, t) == 0) {
                        struct buf b;
                        buf_init(&b, 1 << 20);
                        buf_append(&b, fz.dir, strlen(fz.dir));
                        buf_append(&b, s + t, n - t);
                        FUZZ_CHECK(json_string_setn(v, b.data ? b.data : "", b.len) == 0);
                        buf_done(&b);
                }
        }
}

/* Where fd really is, as the kernel names it. */
static void fuzz_fd_path(int fd, char ret[static PATH_MAX]) {
        char link[64];
        ssize_t n;

        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        n = readlink(link, ret, PATH_MAX - 1);
        if (n < 0)
                fuzz_fail(__FILE__, __LINE__, "readlink %s: %s", link, strerror(errno));
        ret[n] = 0;
}

/* fd is one of p's roots (when allow_root) or beneath one. */
static void fuzz_check_beneath(const struct job_param *p, int fd, bool allow_root) {
        char where[PATH_MAX];

        FUZZ_CHECK(fd >= 0);
        fuzz_fd_path(fd, where);
        for (size_t i = 0; i < p->n_roots; i++) {
                /* roots are "<dir>/...": compare under the resolved dir. */
                const char *under = p->roots[i] + strlen(fz.dir);
                size_t rl = strlen(fz.real), ul = strlen(under);
                FUZZ_CHECK(strncmp(p->roots[i], fz.dir, strlen(fz.dir)) == 0);
                if (strncmp(where, fz.real, rl) != 0 || strncmp(where + rl, under, ul) != 0)
                        continue;
                if (where[rl + ul] == '/' || (allow_root && where[rl + ul] == 0))
                        return;
        }
        fuzz_fail(__FILE__, __LINE__, "params.%s: resolved to %s, outside its roots", p->name, where);
}

static bool fuzz_extension_ok(const struct job_param *p, const char *base) {
        const char *dot = strrchr(base, '.');
        if (p->n_extensions == 0)
                return true;
        for (size_t i = 0; dot && dot != base && i < p->n_extensions; i++)
                if (strcasecmp(dot + 1, p->extensions[i]) == 0)
                        return true;
        return false;
}

static void fuzz_check_slot(const struct job_param *p, const struct job_slot *s) {
        struct stat st;
        char *end;

        FUZZ_CHECK(!s->staging);
        switch (p->type) {
        case JOB_INPUT_FILE: {
                const char *base;
                fuzz_check_beneath(p, s->fd, false);
                FUZZ_CHECK(fstat(s->fd, &st) == 0);
                if (!S_ISREG(st.st_mode) || st.st_nlink != 1 || (uint64_t)st.st_size > p->max_bytes)
                        fuzz_fail(__FILE__, __LINE__, "params.%s: accepted mode %o, %ju links, %jd bytes", p->name,
                                  (unsigned)st.st_mode, (uintmax_t)st.st_nlink, (intmax_t)st.st_size);
                FUZZ_CHECK(s->host && s->dest && s->arg && strcmp(s->dest, s->arg) == 0);
                base = strrchr(s->host, '/') + 1;
                FUZZ_CHECK(fuzz_extension_ok(p, base));
                FUZZ_CHECK(strncmp(s->arg, "/job/in/", 8) == 0);
                FUZZ_CHECK(strncmp(s->arg + 8, p->name, strlen(p->name)) == 0);
                FUZZ_CHECK(strcmp(s->arg + 8 + strlen(p->name), base - 1) == 0);
                FUZZ_CHECK(s->parent_fd < 0 && s->mkdir_parent_fd < 0 && !s->mkdir_name);
                return;
        }
        case JOB_OUTPUT_FILE:
                fuzz_check_beneath(p, s->parent_fd, true);
                FUZZ_CHECK(s->fd < 0 && s->mkdir_parent_fd < 0 && !s->mkdir_name);
                FUZZ_CHECK(s->base && filename_is_plain(s->base, strlen(s->base)) && s->base[0] != '.');
                FUZZ_CHECK(fuzz_extension_ok(p, s->base));
                FUZZ_CHECK(s->dest && s->arg && strncmp(s->arg, s->dest, strlen(s->dest)) == 0);
                FUZZ_CHECK(s->arg[strlen(s->dest)] == '/' && strcmp(s->arg + strlen(s->dest) + 1, s->base) == 0);
                return;
        case JOB_OUTPUT_DIR:
                FUZZ_CHECK(s->fd < 0);
                if (s->mkdir_name) {
                        fuzz_check_beneath(p, s->mkdir_parent_fd, true);
                        FUZZ_CHECK(s->parent_fd < 0);
                        FUZZ_CHECK(s->mkdir_name[0] && !strchr(s->mkdir_name, '/'));
                } else
                        fuzz_check_beneath(p, s->parent_fd, true);
                FUZZ_CHECK(s->dest && s->arg && strcmp(s->dest, s->arg) == 0);
                FUZZ_CHECK(strncmp(s->arg, "/job/out/", 9) == 0 && strcmp(s->arg + 9, p->name) == 0);
                return;
        default:
                break;
        }
        FUZZ_CHECK(s->fd < 0 && s->parent_fd < 0 && s->mkdir_parent_fd < 0 && !s->dest && !s->host);
        switch (p->type) {
        case JOB_ENUM: {
                bool found = false;
                FUZZ_CHECK(s->arg);
                for (size_t i = 0; i < p->n_values; i++)
                        found = found || strcmp(s->arg, p->values[i]) == 0;
                FUZZ_CHECK(found);
                return;
        }
        case JOB_INT: {
                long long x;
                FUZZ_CHECK(s->arg);
                errno = 0;
                x = strtoll(s->arg, &end, 10);
                FUZZ_CHECK(!*end && !errno && (double)x >= p->min && (double)x <= p->max);
                return;
        }
        case JOB_NUMBER: {
                double x;
                FUZZ_CHECK(s->arg);
                x = strtod(s->arg, &end);
                FUZZ_CHECK(!*end && isfinite(x) && x >= p->min && x <= p->max);
                return;
        }
        case JOB_BOOL:
                FUZZ_CHECK(!s->arg || strcmp(s->arg, p->flag) == 0);
                return;
        case JOB_STRING:
                FUZZ_CHECK(s->arg && strlen(s->arg) <= p->max_length);
                FUZZ_CHECK(utf8_is_valid(s->arg, strlen(s->arg)));
                FUZZ_CHECK(!p->has_re || regexec(&p->re, s->arg, 0, NULL, 0) == 0);
                return;
        default:
                fuzz_fail(__FILE__, __LINE__, "params.%s: unknown type %d", p->name, (int)p->type);
        }
}

static void fuzz_check_error(const struct api_error *e, int rc) {
        json_t *j, *inner, *x;

        FUZZ_CHECK(rc == -EINVAL || rc == -ENOMEM);
        FUZZ_CHECK(e->http == (rc == -ENOMEM ? 500u : 400u));
        FUZZ_CHECK(e->code);
        if (rc == -EINVAL) {
                FUZZ_CHECK(!strcmp(e->code, "invalid_parameter") || !strcmp(e->code, "invalid_request"));
                FUZZ_CHECK(!strcmp(e->field, "params") || !strncmp(e->field, "params.", 7));
        }
        FUZZ_CHECK(memchr(e->message, 0, sizeof e->message) && e->message[0]);
        FUZZ_CHECK(utf8_is_valid(e->message, strlen(e->message)));
        FUZZ_CHECK(utf8_is_valid(e->field, strlen(e->field)));
        j = api_error_json(e);
        FUZZ_CHECK(j);
        inner = json_object_get(j, "error");
        x = json_object_get(inner, "message");
        FUZZ_CHECK(json_is_string(x) && strcmp(json_string_value(x), e->message) == 0);
        json_decref(j);
}

static void fuzz_check_nothing_changed(void) {
        char p[PATH_MAX];
        struct stat st;
        int fd;

        for (size_t i = 0; i < ELEMENTSOF(fuzz_watched); i++) {
                const struct stat *was = &fuzz_watched_st[i];
                snprintf(p, sizeof p, "%s/%s", fz.dir, fuzz_watched[i]);
                FUZZ_CHECK(lstat(p, &st) == 0);
                if (st.st_nlink != was->st_nlink || st.st_mtim.tv_sec != was->st_mtim.tv_sec ||
                    st.st_mtim.tv_nsec != was->st_mtim.tv_nsec)
                        fuzz_fail(__FILE__, __LINE__, "%s changed during validation", fuzz_watched[i]);
        }
        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd != fz.lowest_fd)
                fuzz_fail(__FILE__, __LINE__, "a descriptor leaked: /dev/null opened as %d, not %d", fd, fz.lowest_fd);
        close(fd);
}

static void fuzz_validate(const struct job *j, json_t *params) {
        struct job_slot slots[JOB_MAX_PARAMS];
        struct api_error e;
        int rc;

        memset(slots, 0xa5, sizeof slots);
        memset(&e, 0, sizeof e);
        rc = job_params_validate(j, params, slots, &e);
        /* FUZZ_VERBOSE=1: what each job made of the input (for writing seeds). */
        if (getenv("FUZZ_VERBOSE"))
                fprintf(stderr, "  %s: %s\n", j->name, rc == 0 ? "accepted" : e.message);
        if (rc == 0) {
                FUZZ_CHECK(json_is_object(params));
                for (size_t i = 0; i < j->n_params; i++) {
                        const struct job_param *p = &j->params[i];
                        /* Only known parameters, and each required one. */
                        if (!json_object_get(params, p->name) && !p->def && p->type != JOB_BOOL)
                                fuzz_fail(__FILE__, __LINE__, "params.%s is required but was accepted absent", p->name);
                        fuzz_check_slot(p, &slots[i]);
                }
                for (size_t i = 0; i < JOB_MAX_PARAMS; i++)
                        job_slot_done(&slots[i]);
        } else {
                fuzz_check_error(&e, rc);
                for (size_t i = 0; i < JOB_MAX_PARAMS; i++) {
                        const struct job_slot *s = &slots[i];
                        if (s->fd != -1 || s->parent_fd != -1 || s->mkdir_parent_fd != -1 || s->arg || s->dest ||
                            s->host || s->base || s->staging || s->mkdir_name)
                                fuzz_fail(__FILE__, __LINE__, "slot %zu not empty after a refusal", i);
                }
        }
        fuzz_check_nothing_changed();
}

/* Run one input; returns normally when every invariant holds. */
static void fuzz_job_params_one(const uint8_t *data, size_t size) {
        json_error_t jerr;
        json_t *params;

        int fd;

        if (!fz.ready)
                fuzz_setup();
        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        FUZZ_CHECK(fd >= 0);
        fz.lowest_fd = fd;
        close(fd);
        /* As the service reads a job request (http.c). */
        if (!utf8_is_valid((const char *)data, size))
                return;
        params = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
        if (!params)
                return;
        if (json_is_object(params))
                fuzz_expand_roots(params);
        for (size_t i = 0; i < fz.defs.n_jobs; i++)
                fuzz_validate(&fz.defs.jobs[i], params);
        json_decref(params);
}
