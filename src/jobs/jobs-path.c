/* SPDX-License-Identifier: MIT */
#include "jobs-path.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "jobs-format.h"

int job_param_error(struct api_error *err, const struct job_param *p, const char *fmt, ...) {
        char field[96], msg[400];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        snprintf(field, sizeof field, "params.%s", p->name);
        api_error_set(err, 400, "invalid_parameter", field, "parameter '%s': %s", p->name, msg);
        return -EINVAL;
}

/*
 * Resolve rel beneath dirfd with no symlink in any component and no escape.
 * openat2 does it in one call; kernels before 5.6 get the equivalent walk,
 * one component at a time with O_NOFOLLOW.
 */
int job_open_beneath(int dirfd, const char *rel, int flags) {
        struct open_how how = {
                .flags = (uint64_t)(flags | O_CLOEXEC),
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        };
        long fd = syscall(SYS_openat2, dirfd, rel, &how, sizeof how);
        char comp[NAME_MAX + 1];
        int cur;

        if (fd >= 0 || errno != ENOSYS)
                return fd >= 0 ? (int)fd : -errno;
        cur = dup(dirfd);
        for (const char *p = rel; cur >= 0;) {
                size_t l = strcspn(p, "/");
                int next;
                bool last = p[l] == 0;
                if (l == 0 || l > NAME_MAX) {
                        close(cur);
                        return l ? -ENAMETOOLONG : -EINVAL;
                }
                memcpy(comp, p, l);
                comp[l] = 0;
                if (!strcmp(comp, "..") || !strcmp(comp, ".")) {
                        close(cur);
                        return -EXDEV;
                }
                next = openat(cur, comp, (last ? flags : O_PATH | O_DIRECTORY) | O_NOFOLLOW | O_CLOEXEC);
                if (next < 0 && errno == ENOTDIR && !last)
                        errno = ENOTDIR;
                close(cur);
                if (next < 0)
                        return -(errno == ENOTDIR && last ? ELOOP : errno);
                if (last)
                        return next;
                cur = next;
                p += l + 1;
        }
        return -EBADF;
}

static const char *file_kind(mode_t m) {
        if (S_ISDIR(m))
                return "a directory";
        if (S_ISFIFO(m))
                return "a FIFO";
        if (S_ISCHR(m) || S_ISBLK(m))
                return "a device";
        if (S_ISSOCK(m))
                return "a socket";
        if (S_ISLNK(m))
                return "a symlink";
        return "not a regular file";
}

const char *job_beneath_error(int r) {
        switch (r) {
        case -ENOENT:
                return "does not exist";
        case -ELOOP:
                return "has a symlink in its path (symlinks are not followed)";
        case -EXDEV:
                return "escapes its allowed root";
        case -ENOTDIR:
                return "has a component that is not a directory";
        case -EACCES:
                return "is not readable";
        default:
                return "cannot be opened";
        }
}

/* A root the operator configured is missing: the job is not ready, which
 * is no fault of the caller's values (503, and worth retrying once the
 * operator has made it). */
static int root_unavailable(struct api_error *err, const struct job *j, const struct job_param *p, const char *root,
                            int error) {
        api_error_set(err, 503, "job_unavailable", NULL, "job '%s' is not ready: parameter '%s': root %s %s",
                      j ? j->name : "?", p->name, root,
                      error == ENOENT    ? "does not exist"
                      : error == ENOTDIR ? "is not a directory"
                                         : "cannot be opened");
        return -EINVAL;
}

/* Every root of every file parameter is an existing directory (what
 * job_readiness() reports), checked before any value. */
static int check_roots(const struct job *j, struct api_error *err) {
        for (size_t i = 0; i < j->n_params; i++)
                for (size_t k = 0; k < j->params[i].n_roots; k++) {
                        struct stat st;
                        if (stat(j->params[i].roots[k], &st) < 0)
                                return root_unavailable(err, j, &j->params[i], j->params[i].roots[k], errno);
                        if (!S_ISDIR(st.st_mode))
                                return root_unavailable(err, j, &j->params[i], j->params[i].roots[k], ENOTDIR);
                }
        return 0;
}

/* "a PNG, JPEG or WebP image", "a Blender file (.blend)": what a parameter
 * declared its content must be. */
static void formats_wanted(unsigned formats, char *buf, size_t len) {
        static const char *const short_names[_JOB_FORMAT_MAX] = {
                [JOB_FORMAT_PNG] = "PNG",
                [JOB_FORMAT_JPEG] = "JPEG",
                [JOB_FORMAT_WEBP] = "WebP",
                [JOB_FORMAT_BLEND] = NULL, /* not an image */
        };
        size_t n = 0, k = 0, used = 0;
        bool images = (formats & ~JOB_FORMAT_IMAGES) == 0;

        for (int f = 0; f < _JOB_FORMAT_MAX; f++)
                n += !!(formats & JOB_FORMAT_BIT(f));
        buf[0] = 0;
        for (int f = 0; f < _JOB_FORMAT_MAX && used < len; f++) {
                if (!(formats & JOB_FORMAT_BIT(f)))
                        continue;
                k++;
                used += (size_t)snprintf(buf + used, len - used, "%s%s%s",
                                         k == 1   ? (images ? "a " : "")
                                         : k == n ? " or "
                                                  : ", ",
                                         images ? short_names[f] : job_format_describe((enum job_format)f),
                                         images && k == n ? " image" : "");
        }
}

static ssize_t read_prefix(int fd, uint8_t *buf, size_t cap) {
        size_t n = 0;
        while (n < cap) {
                ssize_t k = pread(fd, buf + n, cap - n, (off_t)n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                n += (size_t)k;
        }
        return (ssize_t)n;
}

/*
 * An input's content against its declared formats, and an image's size
 * against max_pixels, before anything runs. The file is read through the
 * descriptor that was validated: the O_PATH descriptor is reopened for
 * reading via /proc/self/fd (the same inode, no path lookup), and only a
 * bounded prefix is read (JOB_FORMAT_MAX_READ at most).
 */
static int check_content(const struct job_param *p, const char *path, int path_fd, const struct stat *st,
                         struct api_error *err) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ uint8_t *buf = NULL;
        struct job_sniff sn;
        char proc[64], wanted[128];
        struct stat rst;
        size_t cap = JOB_FORMAT_FIRST_READ;
        ssize_t n;
        int r;

        snprintf(proc, sizeof proc, "/proc/self/fd/%d", path_fd);
        fd = open(proc, O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &rst) < 0 || rst.st_dev != st->st_dev || rst.st_ino != st->st_ino)
                return job_param_error(err, p, "'%s' cannot be read", path);
        for (;;) {
                free(buf);
                buf = malloc(cap);
                if (!buf)
                        return -ENOMEM;
                n = read_prefix(fd, buf, cap);
                if (n < 0)
                        return job_param_error(err, p, "'%s' cannot be read: %s", path, strerror((int)-n));
                r = job_format_sniff(buf, (size_t)n, (size_t)n < cap, &sn);
                if (r != -EAGAIN || cap >= JOB_FORMAT_MAX_READ)
                        break;
                cap = JOB_FORMAT_MAX_READ;
        }
        formats_wanted(p->formats, wanted, sizeof wanted);
        if (sn.format < 0 || !(p->formats & JOB_FORMAT_BIT(sn.format)))
                return job_param_error(err, p, "'%s' is not %s (%s)", path, wanted, sn.what);
        if (r == -EAGAIN)
                return job_param_error(err, p, "'%s' is %s whose size is not declared in its first %u bytes", path,
                                       job_format_describe((enum job_format)sn.format), JOB_FORMAT_MAX_READ);
        if (r < 0)
                return job_param_error(err, p, "'%s' is %s whose header is damaged (%s)", path,
                                       job_format_describe((enum job_format)sn.format), sn.what);
        if (sn.has_size && (uint64_t)sn.width * sn.height > p->max_pixels)
                return job_param_error(err, p, "'%s' is %ux%u pixels, more than the %llu allowed", path, sn.width,
                                       sn.height, (unsigned long long)p->max_pixels);
        return 0;
}

/* Find the root path lies in; ret_rel points into path. */
static const char *root_of(const struct job_param *p, const char *path, const char **ret_rel) {
        for (size_t i = 0; i < p->n_roots; i++) {
                size_t l = strlen(p->roots[i]);
                if (strncmp(path, p->roots[i], l) == 0 && path[l] == '/' && path[l + 1]) {
                        *ret_rel = path + l + 1;
                        return p->roots[i];
                }
        }
        return NULL;
}

static bool extension_ok(const struct job_param *p, const char *base) {
        const char *dot = strrchr(base, '.');
        if (p->n_extensions == 0)
                return true;
        if (!dot || dot == base)
                return false;
        for (size_t i = 0; i < p->n_extensions; i++)
                if (strcasecmp(dot + 1, p->extensions[i]) == 0)
                        return true;
        return false;
}

static char *join_list(char **l, size_t n) {
        struct buf b;
        buf_init(&b, 65536);
        for (size_t i = 0; i < n; i++)
                buf_printf(&b, "%s%s", i ? ", " : "", l[i]);
        return buf_steal(&b);
}

/* Common checks of a path value; ret_rel: the part beneath its root. */
static int check_path(const struct job_param *p, json_t *v, const char **ret_path, const char **ret_rel,
                      const char **ret_root, struct api_error *err) {
        const char *path;
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v))
                return job_param_error(err, p, "must be a path (text)");
        path = json_string_value(v);
        if (path[0] != '/')
                return job_param_error(err, p, "'%s' must be an absolute path", path);
        if (job_path_has_dotdot(path))
                return job_param_error(err, p, "'%s': '..' is not allowed in paths", path);
        if (strlen(path) >= PATH_MAX)
                return job_param_error(err, p, "the path is too long");
        *ret_root = root_of(p, path, ret_rel);
        if (!*ret_root) {
                _cleanup_free_ char *roots = join_list(p->roots, p->n_roots);
                return job_param_error(err, p, "'%s' is outside the allowed roots (%s)", path, roots ? roots : "");
        }
        *ret_path = path;
        return 0;
}

static int prepare_input(const struct job *j, const struct job_param *p, json_t *v, struct job_slot *s,
                         struct api_error *err) {
        const char *path, *rel, *root, *base;
        _cleanup_close_ int rootfd = -1;
        struct stat st;
        int fd;

        if (check_path(p, v, &path, &rel, &root, err) < 0)
                return -EINVAL;
        base = strrchr(path, '/') + 1;
        if (!extension_ok(p, base)) {
                _cleanup_free_ char *exts = join_list(p->extensions, p->n_extensions);
                return job_param_error(err, p, "'%s' does not have an allowed extension (%s)", path, exts ? exts : "");
        }
        rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0)
                return root_unavailable(err, j, p, root, errno);
        fd = job_open_beneath(rootfd, rel, O_PATH);
        if (fd < 0)
                return job_param_error(err, p, "'%s' %s", path, job_beneath_error(fd));
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                close(fd);
                return job_param_error(err, p, "'%s' is %s; a regular file is required", path, file_kind(st.st_mode));
        }
        /* A hard link is the file itself under a second name, which may lie
         * outside the allowed roots: anyone who can write into a root could
         * link any file they can name there (protected_hardlinks allows it
         * for files they can read, and root links anything). The root says
         * nothing about where such a file came from, so it is refused. */
        if (st.st_nlink > 1) {
                close(fd);
                return job_param_error(err, p,
                                       "'%s' has %ju hard links; an input must have exactly one (another link may name "
                                       "a file outside the allowed roots)",
                                       path, (uintmax_t)st.st_nlink);
        }
        if ((uint64_t)st.st_size > p->max_bytes) {
                close(fd);
                return job_param_error(err, p, "'%s' is %lld bytes; the limit is %llu", path, (long long)st.st_size,
                                       (unsigned long long)p->max_bytes);
        }
        if (p->formats) {
                int r = check_content(p, path, fd, &st, err);
                if (r < 0) {
                        close(fd);
                        return r;
                }
        }
        s->fd = fd;
        s->host = strdup(path);
        s->dest = strdup_printf("/job/in/%s/%s", p->name, base);
        s->arg = s->dest ? strdup(s->dest) : NULL;
        return s->dest && s->arg && s->host ? 0 : -ENOMEM;
}

static int prepare_output(const struct job *j, const struct job_param *p, json_t *v, struct job_slot *s,
                          struct api_error *err) {
        const char *path, *rel, *root;
        _cleanup_close_ int rootfd = -1;
        _cleanup_free_ char *parent_rel = NULL;
        struct stat st;
        const char *base;

        if (check_path(p, v, &path, &rel, &root, err) < 0)
                return -EINVAL;
        rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0)
                return root_unavailable(err, j, p, root, errno);
        s->host = strdup(path);
        if (p->type == JOB_OUTPUT_DIR) {
                /* The directory, made if its parent exists. */
                int fd = job_open_beneath(rootfd, rel, O_PATH | O_DIRECTORY);
                if (fd == -ENOENT) {
                        /* Made later, once every parameter is valid: a
                         * refused request changes nothing on disk. */
                        const char *slash = strrchr(rel, '/');
                        int pfd = slash ? -1 : dup(rootfd);
                        if (slash) {
                                parent_rel = strndup(rel, (size_t)(slash - rel));
                                pfd = parent_rel ? job_open_beneath(rootfd, parent_rel, O_PATH | O_DIRECTORY) : -ENOMEM;
                        }
                        if (pfd < 0)
                                return job_param_error(err, p, "the parent of '%s' %s", path, job_beneath_error(pfd));
                        s->mkdir_parent_fd = pfd;
                        s->mkdir_name = strdup(slash ? slash + 1 : rel);
                        s->dest = strdup_printf("/job/out/%s", p->name);
                        s->arg = s->dest ? strdup(s->dest) : NULL;
                        return s->mkdir_name && s->arg ? 0 : -ENOMEM;
                }
                if (fd < 0)
                        return job_param_error(err, p, "'%s' %s", path,
                                               fd == -ENOTDIR ? "is not a directory" : job_beneath_error(fd));
                s->parent_fd = fd;
                s->dest = strdup_printf("/job/out/%s", p->name);
                s->arg = s->dest ? strdup(s->dest) : NULL;
                return s->arg ? 0 : -ENOMEM;
        }
        /* output_file: an allowed name in an existing directory. */
        base = strrchr(path, '/') + 1;
        if (!filename_is_plain(base, strlen(base)) || base[0] == '.')
                return job_param_error(err, p, "'%s' must end in a plain file name", path);
        if (!extension_ok(p, base)) {
                _cleanup_free_ char *exts = join_list(p->extensions, p->n_extensions);
                return job_param_error(err, p, "'%s' does not have an allowed extension (%s)", path, exts ? exts : "");
        }
        if (base - 1 == path + strlen(root))
                s->parent_fd = dup(rootfd);
        else {
                parent_rel = strndup(rel, (size_t)(base - 1 - rel));
                s->parent_fd = parent_rel ? job_open_beneath(rootfd, parent_rel, O_PATH | O_DIRECTORY) : -ENOMEM;
        }
        if (s->parent_fd < 0)
                return job_param_error(err, p, "the directory of '%s' %s", path, job_beneath_error(s->parent_fd));
        if (fstatat(s->parent_fd, base, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode))
                return job_param_error(err, p, "'%s' exists and is %s", path, file_kind(st.st_mode));
        s->base = strdup(base);
        s->dest = strdup_printf("/job/out/%s", p->name);
        s->arg = s->dest ? strdup_printf("%s/%s", s->dest, base) : NULL;
        return s->arg && s->base ? 0 : -ENOMEM;
}

static int prepare_value(const struct job_param *p, json_t *v, struct job_slot *s, struct api_error *err) {
        char buf[64], *end;
        const char *text = json_is_string(v) ? json_string_value(v) : NULL;

        switch (p->type) {
        case JOB_ENUM:
                for (size_t i = 0; text && i < p->n_values; i++)
                        if (strcmp(text, p->values[i]) == 0)
                                return (s->arg = strdup(text)) ? 0 : -ENOMEM;
                {
                        _cleanup_free_ char *vals = join_list(p->values, p->n_values);
                        return job_param_error(err, p, "must be one of: %s", vals ? vals : "");
                }
        case JOB_INT: {
                long long x;
                if (json_is_integer(v))
                        x = json_integer_value(v);
                else if (text && *text) {
                        errno = 0;
                        x = strtoll(text, &end, 10);
                        if (*end || errno)
                                return job_param_error(err, p, "must be a whole number, got '%.64s'", text);
                } else
                        return job_param_error(err, p, "must be a whole number");
                if ((double)x < p->min || (double)x > p->max)
                        return job_param_error(err, p, "must be between %g and %g, got %lld", p->min, p->max, x);
                snprintf(buf, sizeof buf, "%lld", x);
                return (s->arg = strdup(buf)) ? 0 : -ENOMEM;
        }
        case JOB_NUMBER: {
                double x;
                if (json_is_number(v))
                        x = json_number_value(v);
                else if (text && *text) {
                        x = strtod(text, &end);
                        if (*end)
                                return job_param_error(err, p, "must be a number, got '%.64s'", text);
                } else
                        return job_param_error(err, p, "must be a number");
                if (!isfinite(x) || x < p->min || x > p->max)
                        return job_param_error(err, p, "must be between %g and %g, got %g", p->min, p->max, x);
                snprintf(buf, sizeof buf, "%.17g", x);
                return (s->arg = strdup(buf)) ? 0 : -ENOMEM;
        }
        case JOB_BOOL: {
                bool on;
                if (json_is_boolean(v))
                        on = json_is_true(v);
                else if (text && (!strcasecmp(text, "true") || !strcmp(text, "1") || !strcasecmp(text, "yes")))
                        on = true;
                else if (text && (!strcasecmp(text, "false") || !strcmp(text, "0") || !strcasecmp(text, "no")))
                        on = false;
                else
                        return job_param_error(err, p, "must be true or false");
                s->arg = on ? strdup(p->flag) : NULL;
                return on && !s->arg ? -ENOMEM : 0;
        }
        case JOB_STRING:
                if (!text || strlen(text) != json_string_length(v))
                        return job_param_error(err, p, "must be text without NUL characters");
                if (json_string_length(v) > p->max_length)
                        return job_param_error(err, p, "must be at most %llu bytes", (unsigned long long)p->max_length);
                if (p->has_re && regexec(&p->re, text, 0, NULL, 0) != 0)
                        return job_param_error(err, p, "'%.64s' does not match the pattern %s", text, p->pattern);
                return (s->arg = strdup(text)) ? 0 : -ENOMEM;
        default:
                return -EINVAL;
        }
}

void job_slot_init(struct job_slot *s) {
        *s = (struct job_slot){ .fd = -1, .parent_fd = -1, .mkdir_parent_fd = -1 };
}

void job_slot_done(struct job_slot *s) {
        if (s->fd >= 0)
                close(s->fd);
        if (s->parent_fd >= 0)
                close(s->parent_fd);
        if (s->mkdir_parent_fd >= 0)
                close(s->mkdir_parent_fd);
        free(s->mkdir_name);
        free(s->arg);
        free(s->dest);
        free(s->host);
        free(s->base);
        free(s->staging);
        for (size_t i = 0; i < JOB_MAX_OUT_FILES; i++)
                free(s->file_names[i]);
        job_slot_init(s);
}

/* default_stem: the file name of that parameter's value without its
 * extension, made a safe name: characters other than letters, digits, '.',
 * '_' and '-' become '_', a leading '.' too, and it is cut at max_length. */
static json_t *stem_of(const struct job *j, const struct job_param *q, const struct job_slot slots[]) {
        for (size_t r = 0; r < j->n_params; r++) {
                const char *base, *dot;
                char name[NAME_MAX + 1];
                size_t n;
                if (strcmp(j->params[r].name, q->default_stem) != 0 || !slots[r].host)
                        continue;
                base = strrchr(slots[r].host, '/') + 1;
                dot = strrchr(base, '.');
                n = dot && dot != base ? (size_t)(dot - base) : strlen(base);
                if (n > q->max_length)
                        n = q->max_length;
                if (n > NAME_MAX)
                        n = NAME_MAX;
                for (size_t i = 0; i < n; i++) {
                        char ch = base[i];
                        bool safe = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                                    ch == '_' || ch == '-' || (ch == '.' && i > 0);
                        name[i] = safe ? ch : '_';
                }
                name[n] = 0;
                return n ? json_string(name) : NULL;
        }
        return NULL;
}

/* An output_dir's named files: each template with its placeholders
 * replaced by the parameters' arguments, which must give a plain file name. */
static int expand_files(const struct job *j, const struct job_param *q, struct job_slot slots[], size_t idx,
                        struct api_error *err) {
        for (size_t f = 0; f < q->n_files; f++) {
                struct buf b;
                const char *t = q->files[f].name;
                int r = 0;

                buf_init(&b, NAME_MAX);
                while (*t && r == 0) {
                        const char *end = *t == '{' ? strchr(t, '}') : NULL;
                        if (!end) {
                                r = buf_append(&b, t++, 1);
                                continue;
                        }
                        for (size_t p = 0; p < j->n_params; p++)
                                if (strlen(j->params[p].name) == (size_t)(end - t - 1) &&
                                    strncmp(j->params[p].name, t + 1, (size_t)(end - t - 1)) == 0)
                                        r = buf_append_str(&b, slots[p].arg ? slots[p].arg : "");
                        t = end + 1;
                }
                if (r == -ENOMEM) {
                        buf_done(&b);
                        return -ENOMEM;
                }
                if (r < 0 || b.len == 0 || !filename_is_plain(b.data, b.len) || b.data[0] == '.') {
                        int e = job_param_error(err, q, "its file '%s' would be named '%.80s', not a plain file name",
                                                q->files[f].key, b.data ? b.data : "");
                        buf_done(&b);
                        return e;
                }
                slots[idx].file_names[f] = buf_steal(&b);
        }
        return 0;
}

/* Every key of params names a parameter of j. */
static int check_known(const struct job *j, json_t *params, struct api_error *err) {
        const char *key;
        json_t *v;

        json_object_foreach(params, key, v) {
                bool known = false;
                for (size_t p = 0; p < j->n_params; p++)
                        known = known || strcmp(j->params[p].name, key) == 0;
                if (!known) {
                        char field[96], *names;
                        struct buf b;
                        buf_init(&b, 4096);
                        for (size_t p = 0; p < j->n_params; p++)
                                buf_printf(&b, "%s%s", p ? ", " : "", j->params[p].name);
                        names = buf_steal(&b);
                        snprintf(field, sizeof field, "params.%.80s", key);
                        api_error_set(err, 400, "invalid_parameter", field,
                                      "unknown parameter '%.80s' for job '%s' (its parameters: %s)", key, j->name,
                                      names ? names : "");
                        free(names);
                        return -EINVAL;
                }
        }
        return 0;
}

int job_params_validate(const struct job *j, json_t *params, struct job_slot slots[static JOB_MAX_PARAMS],
                        struct api_error *err) {
        int r = 0;

        for (size_t p = 0; p < JOB_MAX_PARAMS; p++)
                job_slot_init(&slots[p]);
        if (!json_is_object(params)) {
                api_error_set(err, 400, "invalid_request", "params", "params must be an object of parameter values");
                return -EINVAL;
        }
        /* A job missing a root is not ready, whatever the values. */
        if ((r = check_roots(j, err)) < 0)
                return r;
        if ((r = check_known(j, params, err)) < 0)
                return r;
        for (size_t p = 0; p < j->n_params; p++) {
                const struct job_param *q = &j->params[p];
                json_t *val = json_object_get(params, q->name);
                _cleanup_(json_decrefp) json_t *stem = NULL;
                if (!val)
                        val = q->def;
                if (!val && q->default_stem)
                        val = stem = stem_of(j, q, slots);
                if (!val && q->type == JOB_BOOL)
                        continue; /* absent flag: false */
                if (!val) {
                        r = job_param_error(err, q, "is required");
                        break;
                }
                if (q->type == JOB_INPUT_FILE)
                        r = prepare_input(j, q, val, &slots[p], err);
                else if (q->type == JOB_OUTPUT_FILE || q->type == JOB_OUTPUT_DIR)
                        r = prepare_output(j, q, val, &slots[p], err);
                else
                        r = prepare_value(q, val, &slots[p], err);
                if (r < 0) {
                        if (r == -ENOMEM)
                                api_error_set(err, 500, "internal_error", NULL, "out of memory");
                        break;
                }
        }
        for (size_t p = 0; p < j->n_params && r >= 0; p++)
                if (j->params[p].n_files && slots[p].dest)
                        r = expand_files(j, &j->params[p], slots, p, err);
        if (r == -ENOMEM)
                api_error_set(err, 500, "internal_error", NULL, "out of memory");
        if (r < 0)
                for (size_t p = 0; p < j->n_params; p++)
                        job_slot_done(&slots[p]);
        return r;
}
