/* SPDX-License-Identifier: MIT */
#include "jobs-run.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobs-path.h"
#include "result.h"
#include "sha256.h"

#define JOB_MAX_OUTPUT_FILES 10000

/* A staging directory in parent for the run to write into; outputs are
 * renamed from it into place only when the run ends ok. */
static int make_staging(const struct job_param *p, const char *id, struct job_slot *s, struct api_error *err) {
        s->staging = strdup_printf(".pyexec-%s-%s", id, p->name);
        if (!s->staging)
                return -ENOMEM;
        if (mkdirat(s->parent_fd, s->staging, 0700) < 0)
                return job_param_error(err, p, "cannot create a staging directory there: %s", strerror(errno));
        s->fd = openat(s->parent_fd, s->staging, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (s->fd < 0)
                return job_param_error(err, p, "cannot open its staging directory: %s", strerror(errno));
        return 0;
}

/* The side effects of an output, once every parameter is valid: the
 * output directory (if it was missing) and the staging directory. */
static int commit_output(const struct job_param *p, const char *id, struct job_slot *s, struct api_error *err) {
        if (s->mkdir_name) {
                if (mkdirat(s->mkdir_parent_fd, s->mkdir_name, 0755) < 0 && errno != EEXIST)
                        return job_param_error(err, p, "cannot create '%s': %s", s->host, strerror(errno));
                s->parent_fd = openat(s->mkdir_parent_fd, s->mkdir_name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (s->parent_fd < 0)
                        return job_param_error(err, p, "'%s' %s", s->host, job_beneath_error(-errno));
        }
        return make_staging(p, id, s, err);
}

/*
 * Remove a staging directory and what the run left in it, at any depth,
 * never following a symlink and never leaving the staging directory's file
 * system. No recursion and one directory open at a time: the way back up
 * is "..", checked against the device and inode recorded on the way down
 * (a tree changed meanwhile restarts the walk from the top). A directory
 * that cannot be emptied is remembered and skipped, so the walk ends.
 * The run is over: nothing adds to the tree while it is removed.
 */
struct tree_id {
        dev_t dev;
        ino_t ino;
};

struct tree_ids {
        struct tree_id *v;
        size_t n, cap;
};

static int tree_ids_push(struct tree_ids *t, const struct stat *st) {
        if (t->n == t->cap) {
                size_t cap = t->cap ? t->cap * 2 : 64;
                struct tree_id *v = reallocarray(t->v, cap, sizeof *v);
                if (!v)
                        return -ENOMEM;
                t->v = v;
                t->cap = cap;
        }
        t->v[t->n++] = (struct tree_id){ st->st_dev, st->st_ino };
        return 0;
}

static bool tree_ids_has(const struct tree_ids *t, const struct stat *st) {
        for (size_t i = 0; i < t->n; i++)
                if (t->v[i].dev == st->st_dev && t->v[i].ino == st->st_ino)
                        return true;
        return false;
}

/* Open the subdirectory name of dir to empty it; a directory the run made
 * unreadable or unwritable is made 0700 first (the service owns it, or
 * is root). */
static int open_subdir(int dir, const char *name) {
        int fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0 || errno != EACCES)
                return fd;
        if (fchmodat(dir, name, 0700, 0) < 0)
                return -1;
        return openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* Unlink what dir holds except directories; ret_sub: the name of the first
 * subdirectory to descend into (not in skip, on dev), "" if none. */
static int empty_files(int dir, dev_t dev, const struct tree_ids *skip, char ret_sub[static NAME_MAX + 1]) {
        int fd = dup(dir);
        struct dirent *de;
        struct stat st;
        DIR *d;

        ret_sub[0] = 0;
        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d) {
                close(fd);
                return -ENOMEM;
        }
        /* The directory was read before through this description. */
        rewinddir(d);
        /* Writable for unlinking when the run made it read-only. */
        (void)fchmod(dir, 0700);
        while ((de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                if (unlinkat(dir, de->d_name, 0) == 0 || (errno != EISDIR && errno != EPERM))
                        continue;
                if (fstatat(dir, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))
                        continue;
                if (st.st_dev != dev || tree_ids_has(skip, &st))
                        continue;
                if (unlinkat(dir, de->d_name, AT_REMOVEDIR) == 0)
                        continue;
                snprintf(ret_sub, NAME_MAX + 1, "%s", de->d_name);
                break;
        }
        closedir(d);
        return 0;
}

/* Find dir's entry for the inode ino (not "." nor ".."); "" if none. */
static void name_of_inode(int dir, ino_t ino, char ret[static NAME_MAX + 1]) {
        int fd = dup(dir);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        struct dirent *de;

        ret[0] = 0;
        if (!d) {
                if (fd >= 0)
                        close(fd);
                return;
        }
        rewinddir(d);
        while ((de = readdir(d)))
                if (de->d_ino == ino && strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
                        snprintf(ret, NAME_MAX + 1, "%s", de->d_name);
                        break;
                }
        closedir(d);
}

static void remove_tree_at(int parent, const char *name) {
        struct tree_ids path = { 0 }, skip = { 0 };
        char sub[NAME_MAX + 1];
        struct stat top, st;
        unsigned restarts = 0;
        int cur = -1;

        if (unlinkat(parent, name, 0) == 0 || (errno != EISDIR && errno != EPERM))
                return;
restart:
        if (cur >= 0)
                close(cur);
        path.n = 0;
        /* The tree keeps changing under the walk: nothing a finished run
         * can do, so give up rather than loop. */
        if (restarts++ > 16)
                goto out;
        cur = open_subdir(parent, name);
        if (cur < 0 || fstat(cur, &top) < 0 || tree_ids_push(&path, &top) < 0)
                goto out;
        for (;;) {
                if (empty_files(cur, top.st_dev, &skip, sub) < 0)
                        goto out;
                if (sub[0]) {
                        int next = open_subdir(cur, sub);
                        if (next < 0 || fstat(next, &st) < 0 || tree_ids_push(&path, &st) < 0) {
                                if (next >= 0)
                                        close(next);
                                /* Not to be emptied: skip it from now on. */
                                if (fstatat(cur, sub, &st, AT_SYMLINK_NOFOLLOW) < 0 || tree_ids_push(&skip, &st) < 0)
                                        goto out;
                                continue;
                        }
                        close(cur);
                        cur = next;
                        continue;
                }
                /* cur is as empty as it gets: go up and remove it there. */
                if (path.n == 1)
                        break;
                {
                        struct tree_id me = path.v[path.n - 1], want = path.v[path.n - 2];
                        int up = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

                        if (up < 0 || fstat(up, &st) < 0 || st.st_dev != want.dev || st.st_ino != want.ino) {
                                if (up >= 0)
                                        close(up);
                                goto restart;
                        }
                        close(cur);
                        cur = up;
                        path.n--;
                        name_of_inode(cur, me.ino, sub);
                        if (!sub[0] || unlinkat(cur, sub, AT_REMOVEDIR) < 0) {
                                st = (struct stat){ .st_dev = me.dev, .st_ino = me.ino };
                                if (tree_ids_push(&skip, &st) < 0)
                                        goto out;
                        }
                }
        }
out:
        if (cur >= 0)
                close(cur);
        unlinkat(parent, name, AT_REMOVEDIR);
        free(path.v);
        free(skip.v);
}

/* Remove the staging directory, if made, then free the slot. */
static void slot_release(struct job_slot *s) {
        if (s->staging && s->parent_fd >= 0)
                remove_tree_at(s->parent_fd, s->staging);
        job_slot_done(s);
}

/* Move one produced file into place; append its description to outputs. */
static int publish_file(struct job_slot *s, const char *name, const char *dest_path, json_t *outputs, char *why,
                        size_t whylen) {
        _cleanup_close_ int sfd = openat(s->parent_fd, s->staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        _cleanup_close_ int fd = -1;
        const char *target = s->base ? s->base : name;
        unsigned char digest[32];
        char hex[65];
        struct stat st, pst;
        uint64_t bytes;

        if (sfd < 0)
                return snprintf(why, whylen, "the staging directory is gone"), -EIO;
        fd = openat(sfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return -ENOENT; /* not a regular file: not an output */
        if (sha256_fd(fd, digest, &bytes) < 0)
                return snprintf(why, whylen, "cannot read %s", dest_path), -EIO;
        if (renameat(sfd, name, s->parent_fd, target) < 0)
                return snprintf(why, whylen, "cannot publish %s: %s", dest_path, strerror(errno)), -EIO;
        /* Published files belong to whoever owns the directory, not to the
         * run's throwaway uid. */
        if (fstat(s->parent_fd, &pst) == 0 && geteuid() == 0 && fchown(fd, pst.st_uid, pst.st_gid) < 0)
                return snprintf(why, whylen, "cannot hand %s to its directory's owner", dest_path), -EIO;
        if (fchmod(fd, 0644) < 0)
                return snprintf(why, whylen, "cannot set the mode of %s", dest_path), -EIO;
        sha256_hex(digest, hex);
        json_array_append_new(outputs,
                              json_pack("{s:s,s:I,s:s}", "path", dest_path, "bytes", (json_int_t)bytes, "sha256", hex));
        return 0;
}

/* output_dir: every regular, non-hidden file the run left in the staging
 * directory, at most JOB_MAX_OUTPUT_FILES; at least one. */
static int publish_dir(const struct job_param *p, struct job_slot *s, json_t *outputs, char *why, size_t whylen) {
        int sfd = openat(s->parent_fd, s->staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        DIR *d = sfd >= 0 ? fdopendir(sfd) : NULL;
        struct dirent *de;
        size_t before = json_array_size(outputs), n = 0;
        char **names = NULL;
        int r = 0;

        if (!d) {
                if (sfd >= 0)
                        close(sfd);
                snprintf(why, whylen, "the staging directory of '%s' is gone", p->name);
                return -EIO;
        }
        /* Names first, renames after: renaming while reading the
         * directory could skip or repeat entries. */
        while ((de = readdir(d))) {
                char **nn;
                /* Hidden files (and . and ..) are not outputs. */
                if (de->d_name[0] == '.')
                        continue;
                if (n >= JOB_MAX_OUTPUT_FILES) {
                        snprintf(why, whylen, "output '%s' received more than %d files", p->name, JOB_MAX_OUTPUT_FILES);
                        r = -E2BIG;
                        break;
                }
                nn = realloc(names, (n + 1) * sizeof *names);
                if (!nn || !(nn[n] = strdup(de->d_name))) {
                        names = nn ? nn : names;
                        snprintf(why, whylen, "out of memory");
                        r = -ENOMEM;
                        break;
                }
                names = nn;
                n++;
        }
        closedir(d);
        for (size_t i = 0; i < n && r == 0; i++) {
                _cleanup_free_ char *dest = strdup_printf("%s/%s", s->host, names[i]);
                int q = publish_file(s, names[i], dest ? dest : s->host, outputs, why, whylen);
                if (q < 0 && q != -ENOENT)
                        r = q;
        }
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        if (r < 0)
                return r;
        if (json_array_size(outputs) == before) {
                snprintf(why, whylen, "declared output '%s' (%s) received no files", p->name, s->host);
                return -ENOENT;
        }
        return 0;
}

static int publish(const struct job_param *p, struct job_slot *s, json_t *outputs, char *why, size_t whylen) {
        if (p->type == JOB_OUTPUT_FILE) {
                int r = publish_file(s, s->base, s->host, outputs, why, whylen);
                if (r == -ENOENT)
                        snprintf(why, whylen, "declared output '%s' (%s) was not produced", p->name, s->host);
                return r;
        }
        return publish_dir(p, s, outputs, why, whylen);
}

/* Once every parameter is valid, the side effects of each output (its
 * directory if missing, its staging directory), then the binds: each file
 * parameter's descriptor and, beside them, the script read-only. */
static int bind_slots(const struct job *j, const char *id, struct job_slot *slots, int script_fd,
                      const char *script_dest, struct pyexec_bind binds[static JOB_MAX_PARAMS + 1], size_t *ret_n,
                      struct api_error *err) {
        size_t n = 0;
        int r;

        for (size_t p = 0; p < j->n_params; p++) {
                const struct job_param *q = &j->params[p];
                bool out = q->type == JOB_OUTPUT_FILE || q->type == JOB_OUTPUT_DIR;
                if (out && slots[p].dest && (r = commit_output(q, id, &slots[p], err)) < 0) {
                        if (r == -ENOMEM)
                                api_error_set(err, 500, "internal_error", NULL, "out of memory");
                        return r;
                }
                if (slots[p].fd >= 0)
                        binds[n++] = (struct pyexec_bind){
                                .fd = slots[p].fd,
                                .dest = slots[p].dest,
                                .dir = out,
                                .writable = out,
                        };
        }
        if (script_fd < 0 || !script_dest) {
                api_error_set(err, 503, "job_unavailable", NULL, "job '%s': its script %s is missing", j->name,
                              j->script);
                return -EINVAL;
        }
        binds[n++] = (struct pyexec_bind){ .fd = script_fd, .dest = script_dest };
        *ret_n = n;
        return 0;
}

/* The command: each template token is one argument, no shell. Returns
 * the number of arguments. */
static size_t build_argv(const struct job *j, const struct job_slot *slots, const char *script_dest,
                         const char *argv[static JOB_MAX_ARGS + 2]) {
        size_t n = 0;

        argv[n++] = j->interpreter;
        for (size_t i = 0; i < j->n_args; i++) {
                size_t l;
                const char *ph = job_placeholder(j->args[i], &l);
                if (!ph) {
                        argv[n++] = j->args[i];
                        continue;
                }
                if (l == 6 && !strncmp(ph, "script", 6)) {
                        argv[n++] = script_dest;
                        continue;
                }
                {
                        size_t pi, fi;
                        if (job_file_placeholder(j, ph, l, &pi, &fi) == 0) {
                                if (slots[pi].file_names[fi])
                                        argv[n++] = slots[pi].file_names[fi];
                                continue;
                        }
                }
                for (size_t p = 0; p < j->n_params; p++)
                        if (strlen(j->params[p].name) == l && !strncmp(j->params[p].name, ph, l) && slots[p].arg)
                                argv[n++] = slots[p].arg;
        }
        return n;
}

/* A run that ended ok publishes its outputs; a declared output missing
 * makes it a runtime_error (the program exited 0 but broke its
 * contract: that is the program's error). */
static void publish_outputs(const struct job *j, struct job_slot *slots, struct pyexec_result *res, json_t *o,
                            json_t *outputs) {
        char why[512] = "";

        if (res->status != PYEXEC_OK)
                return;
        for (size_t p = 0; p < j->n_params; p++) {
                const struct job_param *q = &j->params[p];
                if ((q->type == JOB_OUTPUT_FILE || q->type == JOB_OUTPUT_DIR) &&
                    publish(q, &slots[p], outputs, why, sizeof why) < 0) {
                        res->status = PYEXEC_RUNTIME_ERROR;
                        json_object_set_new(o, "status", json_string("runtime_error"));
                        json_object_set_new(o, "message", json_string(why));
                        return;
                }
        }
}

/*
 * The caller gave host paths and the script saw sandbox ones (/job/...):
 * what the result shows (message, stdout, stderr, output) says the
 * caller's, so that no message names a path only the sandbox has. Each
 * bound file and directory maps back to the host path given for it, the
 * script to its file name. A sandbox path is replaced where it ends at a
 * character that cannot continue a name; the longest match wins.
 */
struct path_map {
        const char *from;
        size_t from_len;
        const char *to;
};

static bool continues_name(char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

/* The text with the sandbox paths replaced; NULL when there is none (or
 * the result would exceed its cap: the text is then left as it is). */
static json_t *map_text(const char *t, size_t n, const struct path_map *m, size_t nm) {
        struct buf b;
        size_t i = 0;
        json_t *o;

        if (!memmem(t, n, "/job/", 5))
                return NULL;
        buf_init(&b, n + (4u << 20));
        while (i < n) {
                const char *hit = memmem(t + i, n - i, "/job/", 5);
                size_t at = hit ? (size_t)(hit - t) : n, best = nm;
                if (buf_append(&b, t + i, at - i) < 0)
                        goto fail;
                if (!hit)
                        break;
                for (size_t k = 0; k < nm; k++)
                        if (m[k].from_len <= n - at && memcmp(t + at, m[k].from, m[k].from_len) == 0 &&
                            (at + m[k].from_len == n || !continues_name(t[at + m[k].from_len])) &&
                            (best == nm || m[k].from_len > m[best].from_len))
                                best = k;
                if (best == nm) {
                        if (buf_append(&b, t + at, 5) < 0)
                                goto fail;
                        i = at + 5;
                        continue;
                }
                if (buf_append_str(&b, m[best].to) < 0)
                        goto fail;
                i = at + m[best].from_len;
        }
        o = json_stringn(b.data ? b.data : "", b.len);
        buf_done(&b);
        return o;
fail:
        buf_done(&b);
        return NULL;
}

/* The map of a run: each bound file parameter's sandbox path to the host
 * path given for it (an output_file's directory to the host directory), the
 * script to its file name. dirs: the host directories made for it. */
static size_t build_path_map(const struct job *j, const struct job_slot *slots, const char *script_dest,
                             struct path_map m[static 2 * JOB_MAX_PARAMS + 1], char *dirs[static JOB_MAX_PARAMS]) {
        size_t nm = 0;

        for (size_t p = 0; p < j->n_params; p++) {
                const struct job_slot *s = &slots[p];
                dirs[p] = NULL;
                if (!s->host || !s->dest)
                        continue;
                if (j->params[p].type == JOB_INPUT_FILE || j->params[p].type == JOB_OUTPUT_DIR)
                        m[nm++] = (struct path_map){ s->dest, strlen(s->dest), s->host };
                else if (j->params[p].type == JOB_OUTPUT_FILE && s->arg) {
                        m[nm++] = (struct path_map){ s->arg, strlen(s->arg), s->host };
                        dirs[p] = strndup(s->host, (size_t)(strrchr(s->host, '/') - s->host));
                        if (dirs[p])
                                m[nm++] = (struct path_map){ s->dest, strlen(s->dest), dirs[p] };
                }
        }
        if (script_dest)
                m[nm++] = (struct path_map){ script_dest, strlen(script_dest), script_dest + strlen("/job/") };
        return nm;
}

/* PYEXEC_JOB_PATHS=<JSON object>: the map of the file parameters, for the
 * script's own messages (the shipped scripts print the caller's paths with
 * it). NULL when there is nothing to map. */
static char *path_map_env(const struct path_map *m, size_t nm) {
        json_t *o = json_object();
        char *json, *env = NULL;

        for (size_t k = 0; o && k < nm; k++)
                json_object_set_new(o, m[k].from, json_string(m[k].to));
        json = o && json_object_size(o) ? json_dumps(o, JSON_COMPACT) : NULL;
        if (json)
                env = strdup_printf("PYEXEC_JOB_PATHS=%s", json);
        free(json);
        json_decref(o);
        return env;
}

/* The result's message names the caller's paths (stdout and stderr are the
 * script's own, verbatim). */
static void map_result_message(const struct path_map *m, size_t nm, json_t *o) {
        json_t *v = json_object_get(o, "message"), *mapped;
        if (json_is_string(v) && (mapped = map_text(json_string_value(v), json_string_length(v), m, nm)))
                json_object_set_new(o, "message", mapped);
}

/* An output_dir's named files with a result field: the host path, when
 * the run published it, else null. */
static void name_result_files(const struct job *j, const struct job_slot *slots, json_t *o, json_t *outputs) {
        for (size_t p = 0; p < j->n_params; p++)
                for (size_t f = 0; f < j->params[p].n_files; f++) {
                        const struct job_out_file *of = &j->params[p].files[f];
                        _cleanup_free_ char *path = NULL;
                        json_t *x, *v = json_null();
                        size_t i;

                        if (!of->result)
                                continue;
                        if (slots[p].host && slots[p].file_names[f])
                                path = strdup_printf("%s/%s", slots[p].host, slots[p].file_names[f]);
                        json_array_foreach(outputs, i, x) if (path && json_is_string(json_object_get(x, "path")) &&
                                                              strcmp(json_string_value(json_object_get(x, "path")),
                                                                     path) == 0) v = json_string(path);
                        json_object_set_new(o, of->result, v);
                }
}

static void feed_progress(void *userdata, int stream, const char *p, size_t n) {
        if (stream == 2)
                job_progress_feed(userdata, p, n);
}

int job_run(struct pyexec_sandbox *sb, const struct job *j, json_t *params, const char *id,
            struct job_progress *progress, json_t **ret_result, struct api_outcome *ret_outcome,
            struct api_error *err) {
        struct job_slot slots[JOB_MAX_PARAMS];
        struct pyexec_bind binds[JOB_MAX_PARAMS + 1];
        const char *argv[JOB_MAX_ARGS + 2], *env[65];
        char *env_owned[65];
        struct path_map map[2 * JOB_MAX_PARAMS + 1];
        char *map_dirs[JOB_MAX_PARAMS];
        size_t n_map;
        size_t n_binds = 0, n_argv, n_env = 0;
        _cleanup_close_ int script_fd = -1;
        _cleanup_free_ char *script_dest = NULL;
        struct pyexec_result res;
        struct pyexec_spec spec;
        json_t *o = NULL, *outputs;
        const char *sbase;
        int r;

        /* A job without its script is not ready, whatever the values. */
        script_fd = open(j->script, O_PATH | O_CLOEXEC);
        if (script_fd < 0) {
                api_error_set(err, 503, "job_unavailable", NULL, "job '%s' is not ready: its script %s is missing",
                              j->name, j->script);
                return -EINVAL;
        }
        r = job_params_validate(j, params, slots, err);
        if (r < 0)
                return r;
        /* Everything is valid: now, and only now, touch the disk. */
        sbase = strrchr(j->script, '/') ? strrchr(j->script, '/') + 1 : j->script;
        script_dest = strdup_printf("/job/%s", sbase);
        r = bind_slots(j, id, slots, script_fd, script_dest, binds, &n_binds, err);
        if (r < 0)
                goto out;
        n_argv = build_argv(j, slots, script_dest, argv);
        n_map = build_path_map(j, slots, script_dest, map, map_dirs);
        /* The script's own entry is last and not the caller's: not passed. */
        if ((env_owned[n_env] = path_map_env(map, n_map - 1)))
                env[n_env] = env_owned[n_env], n_env++;
        for (size_t i = 0; i < j->n_env && n_env < ELEMENTSOF(env); i++) {
                const char *val = getenv(j->env[i]);
                if (val && (env_owned[n_env] = strdup_printf("%s=%s", j->env[i], val)))
                        env[n_env] = env_owned[n_env], n_env++;
        }

        spec = (struct pyexec_spec){
                .limits = j->limits,
                .echo_stdout = -1,
                .echo_stderr = -1,
                .argv = argv,
                .n_argv = n_argv,
                .binds = binds,
                .n_binds = n_binds,
                .env = env,
                .n_env = n_env,
                .term_grace_ms = j->term_grace_ms,
                .on_output = progress ? feed_progress : NULL,
                .on_output_userdata = progress,
        };
        pyexec_run(sb, &spec, &res);
        o = result_to_json(&res, &spec.limits, id);
        outputs = json_array();
        if (o) {
                publish_outputs(j, slots, &res, o, outputs);
                map_result_message(map, n_map, o);
                name_result_files(j, slots, o, outputs);
        }
        if (o) {
                json_object_set_new(o, "job", json_string(j->name));
                json_object_set_new(o, "outputs", outputs);
        } else
                json_decref(outputs);
        *ret_outcome = (struct api_outcome){
                .status = res.status,
                .wall_ms = res.wall_ms,
                .cpu_ms = res.cpu_ms,
                .sandbox_failed = res.status == PYEXEC_INTERNAL_ERROR,
                .http = res.status == PYEXEC_INTERNAL_ERROR ? 500 : 200,
        };
        pyexec_result_done(&res);
        for (size_t i = 0; i < n_env; i++)
                free(env_owned[i]);
        for (size_t p = 0; p < j->n_params; p++)
                free(map_dirs[p]);
        *ret_result = o;
        r = o ? 0 : -ENOMEM;
out:
        for (size_t p = 0; p < j->n_params; p++)
                slot_release(&slots[p]);
        return r;
}
