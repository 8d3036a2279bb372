/* SPDX-License-Identifier: MIT */
#include "policy.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/*
 * The education policy's allowlist: what an exercise needs, and nothing that
 * reaches outside the program (processes, the network, native code, the
 * import machinery). Each entry covers its submodules.
 */
static const char *const education_allow[] = {
        "__future__",                                        /* language features */
        "abc", "array", "bisect", "builtins", "calendar",    /* data and algorithms */
        "cmath", "collections", "colorsys", "contextlib", "copy", "dataclasses", "datetime", "decimal",
        "difflib", "enum", "fractions", "functools", "graphlib", "heapq", "itertools", "json", "keyword",
        "math", "numbers", "operator", "pprint", "queue", "random", "re", "reprlib", "statistics",
        "string", "struct", "textwrap", "types", "typing", "unicodedata", "weakref", "zoneinfo",
        "doctest", "unittest", "traceback", "warnings", "inspect", /* testing and errors */
        "time", "threading", "argparse", "getopt", "io", "csv",   /* programs and their data */
        "base64", "binascii", "hashlib", "hmac", "secrets", "uuid", "zlib", "html",
        "os", "sys",                   /* os.system/exec/fork and writes are refused by event */
        "pathlib", "tempfile", "glob", "fnmatch", "shutil", /* files: writes are checked */
        "PIL",                         /* Pillow, for image exercises */
};

/*
 * What the science policy adds to education's allowlist: the scientific
 * stack as Debian packages it (python3-numpy, python3-matplotlib,
 * python3-pandas). What these libraries import for themselves is theirs,
 * not the program's request, and needs no entry here.
 */
static const char *const science_allow[] = {
        "numpy",        /* arrays and numerical routines */
        "matplotlib",   /* plots, drawn by Agg to files and buffers (MPLBACKEND) */
        "mpl_toolkits", /* matplotlib's 3D axes and grids, in the same package */
        "pandas",       /* tables */
};

/* Refused outright, even where a policy's imports are not checked by name:
 * the routes around the allowlist (the import machinery) and the modules
 * that leave the program (processes, network, native code). Private helper
 * modules are listed because the allowlist lets other private modules
 * through. */
static const char *const education_deny[] = {
        "subprocess", "_posixsubprocess", "multiprocessing", "_multiprocessing", "pty", "_posixshmem",
        "socket", "_socket", "ssl", "_ssl", "asyncio", "selectors", "select",
        "ctypes", "_ctypes", "cffi", "_cffi_backend",
        "importlib", "_imp", "imp", "runpy", "pkgutil", "zipimport", "_frozen_importlib",
        "_frozen_importlib_external", "marshal", "_xxsubinterpreters", "_xxinterpchannels",
        "_testcapi", "_testinternalcapi", "_pyexec",
};

/* Audit events the education policy refuses, wherever they are raised. */
static const char *const education_events[] = {
        "subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
        "socket.*", "ctypes.*",
};

/* What an audit event means, for messages. Prefix entries end in '*'. */
static const struct {
        const char *event;
        const char *what;
} event_descriptions[] = {
        { "subprocess.Popen", "starting a process" },
        { "os.system", "running a shell command" },
        { "os.exec", "replacing the process with another program" },
        { "os.posix_spawn", "starting a process" },
        { "os.spawn", "starting a process" },
        { "os.fork", "forking a process" },
        { "os.forkpty", "forking a process" },
        { "socket.*", "network access" },
        { "ctypes.*", "calling native code through ctypes" },
};

bool policy_name_is_valid(const char *name) {
        size_t n = name ? strlen(name) : 0;
        if (n == 0 || n >= POLICY_NAME_MAX || !islower((unsigned char)name[0]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!islower((unsigned char)name[i]) && !isdigit((unsigned char)name[i]) && name[i] != '_' &&
                    name[i] != '-')
                        return false;
        return true;
}

static void strv_free(char **v, size_t n) {
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

void policy_done(struct policy *p) {
        strv_free(p->allow, p->n_allow);
        strv_free(p->deny, p->n_deny);
        strv_free(p->deny_events, p->n_deny_events);
        p->allow = p->deny = p->deny_events = NULL;
        p->n_allow = p->n_deny = p->n_deny_events = 0;
}

static bool strv_contains(char *const *v, size_t n, const char *s, size_t len) {
        for (size_t i = 0; i < n; i++)
                if (strlen(v[i]) == len && memcmp(v[i], s, len) == 0)
                        return true;
        return false;
}

static int strv_add(char ***v, size_t *n, const char *s, size_t len) {
        char **nv;
        if (strv_contains(*v, *n, s, len))
                return 0;
        nv = realloc(*v, (*n + 1) * sizeof *nv);
        if (!nv)
                return -ENOMEM;
        *v = nv;
        nv[*n] = strndup(s, len);
        if (!nv[*n])
                return -ENOMEM;
        (*n)++;
        return 0;
}

static void strv_remove(char **v, size_t *n, const char *s, size_t len) {
        for (size_t i = 0; i < *n; i++)
                if (strlen(v[i]) == len && memcmp(v[i], s, len) == 0) {
                        free(v[i]);
                        memmove(&v[i], &v[i + 1], (*n - i - 1) * sizeof *v);
                        (*n)--;
                        return;
                }
}

static int strv_copy(char *const *src, size_t n, char ***ret, size_t *ret_n) {
        *ret = NULL;
        *ret_n = 0;
        for (size_t i = 0; i < n; i++) {
                int r = strv_add(ret, ret_n, src[i], strlen(src[i]));
                if (r < 0)
                        return r;
        }
        return 0;
}

int policy_copy(const struct policy *src, struct policy *ret) {
        struct policy p = { .check_imports = src->check_imports, .restrict_writes = src->restrict_writes };
        int r;

        memcpy(p.name, src->name, sizeof p.name);
        if ((r = strv_copy(src->allow, src->n_allow, &p.allow, &p.n_allow)) < 0 ||
            (r = strv_copy(src->deny, src->n_deny, &p.deny, &p.n_deny)) < 0 ||
            (r = strv_copy(src->deny_events, src->n_deny_events, &p.deny_events, &p.n_deny_events)) < 0) {
                policy_done(&p);
                return r;
        }
        *ret = p;
        return 0;
}

static int add_table(char ***v, size_t *n, const char *const *t, size_t count) {
        for (size_t i = 0; i < count; i++) {
                int r = strv_add(v, n, t[i], strlen(t[i]));
                if (r < 0)
                        return r;
        }
        return 0;
}

/* education's lists into p, named name. */
static int education_init(struct policy *p, const char *name) {
        int r;

        snprintf(p->name, sizeof p->name, "%s", name);
        p->check_imports = true;
        p->restrict_writes = true;
        if ((r = add_table(&p->allow, &p->n_allow, education_allow, ELEMENTSOF(education_allow))) < 0 ||
            (r = add_table(&p->deny, &p->n_deny, education_deny, ELEMENTSOF(education_deny))) < 0)
                return r;
        return add_table(&p->deny_events, &p->n_deny_events, education_events, ELEMENTSOF(education_events));
}

int policy_set_init(struct policy_set *s) {
        struct policy *v = calloc(3, sizeof *v);
        int r;

        if (!v)
                return -ENOMEM;
        /* science: education's refusals, and the scientific stack. */
        if ((r = education_init(&v[0], "education")) < 0 || (r = education_init(&v[2], "science")) < 0 ||
            (r = add_table(&v[2].allow, &v[2].n_allow, science_allow, ELEMENTSOF(science_allow))) < 0) {
                for (size_t i = 0; i < 3; i++)
                        policy_done(&v[i]);
                free(v);
                return r;
        }
        /* permissive: the kernel sandbox alone. */
        snprintf(v[1].name, sizeof v[1].name, "permissive");
        *s = (struct policy_set){ .v = v, .n = 3 };
        return 0;
}

void policy_set_done(struct policy_set *s) {
        for (size_t i = 0; i < s->n; i++)
                policy_done(&s->v[i]);
        free(s->v);
        *s = (struct policy_set){ 0 };
}

const struct policy *policy_set_find(const struct policy_set *s, const char *name) {
        for (size_t i = 0; i < s->n; i++)
                if (strcmp(s->v[i].name, name) == 0)
                        return &s->v[i];
        return NULL;
}

/* A module name in a list: dotted identifiers. An event: printable, no
 * separators, optionally ending in ".*". */
static bool event_name_is_valid(const char *s, size_t n) {
        if (n == 0 || n > 128)
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && !(s[i] == '*' && i == n - 1))
                        return false;
        return true;
}

/* A dotted module name: identifiers separated by single dots. */
static bool dotted_name_is_valid(const char *s) {
        char part[128];
        size_t n = strlen(s);
        if (n == 0 || n > 200)
                return false;
        for (const char *p = s;;) {
                size_t l = strcspn(p, ".");
                if (l == 0 || l >= sizeof part)
                        return false;
                memcpy(part, p, l);
                part[l] = 0;
                if (!module_name_is_valid(part))
                        return false;
                if (!p[l])
                        return true;
                p += l + 1;
        }
}

static int parse_list(const char *key, const char *val, size_t vlen, bool events, char ***v, size_t *n, bool remove,
                      char *err, size_t errlen) {
        const char *p = val, *end = val + vlen;
        while (p < end) {
                const char *comma = memchr(p, ',', (size_t)(end - p));
                const char *e = comma ? comma : end;
                while (p < e && isspace((unsigned char)*p))
                        p++;
                const char *q = e;
                while (q > p && isspace((unsigned char)q[-1]))
                        q--;
                if (q > p) {
                        char name[160];
                        size_t len = (size_t)(q - p);
                        bool ok;
                        if (len >= sizeof name) {
                                snprintf(err, errlen, "%s: '%.40s...' is too long", key, p);
                                return -EINVAL;
                        }
                        memcpy(name, p, len);
                        name[len] = 0;
                        ok = events ? event_name_is_valid(name, len) : dotted_name_is_valid(name);
                        if (!ok) {
                                snprintf(err, errlen, "%s: '%s' is not a valid %s", key, name,
                                         events ? "audit event name" : "module name");
                                return -EINVAL;
                        }
                        if (remove)
                                strv_remove(*v, n, name, len);
                        else if (strv_add(v, n, name, len) < 0) {
                                snprintf(err, errlen, "out of memory");
                                return -ENOMEM;
                        }
                }
                p = e + 1;
        }
        return 0;
}

/* Apply "key=value; key=value" items to p. base is looked up in s (may be
 * NULL: then base is not accepted). */
static int apply_spec(const struct policy_set *s, struct policy *p, const char *spec, char *err, size_t errlen) {
        const char *q = spec;
        bool first = true;
        int r;

        while (*q) {
                const char *semi = strchr(q, ';'), *e = semi ? semi : q + strlen(q), *eq;
                char key[32];
                size_t klen;

                while (q < e && isspace((unsigned char)*q))
                        q++;
                if (q == e) {
                        q = semi ? semi + 1 : e;
                        continue;
                }
                eq = memchr(q, '=', (size_t)(e - q));
                if (!eq) {
                        snprintf(err, errlen, "'%.*s' is not key=value", (int)(e - q > 60 ? 60 : e - q), q);
                        return -EINVAL;
                }
                klen = (size_t)(eq - q);
                while (klen > 0 && isspace((unsigned char)q[klen - 1]))
                        klen--;
                if (klen >= sizeof key)
                        klen = sizeof key - 1;
                memcpy(key, q, klen);
                key[klen] = 0;
                const char *val = eq + 1;
                size_t vlen = (size_t)(e - val);
                while (vlen > 0 && isspace((unsigned char)*val))
                        val++, vlen--;
                while (vlen > 0 && isspace((unsigned char)val[vlen - 1]))
                        vlen--;

                if (strcmp(key, "base") == 0 && s && !first) {
                        snprintf(err, errlen, "base must be the first item (it replaces what comes before it)");
                        return -EINVAL;
                }
                first = false;
                if (strcmp(key, "base") == 0 && s) {
                        char bname[POLICY_NAME_MAX];
                        const struct policy *b;
                        char keep[POLICY_NAME_MAX];
                        if (vlen == 0 || vlen >= sizeof bname) {
                                snprintf(err, errlen, "base: a policy name is needed");
                                return -EINVAL;
                        }
                        memcpy(bname, val, vlen);
                        bname[vlen] = 0;
                        b = policy_set_find(s, bname);
                        if (!b) {
                                snprintf(err, errlen, "base: no policy named '%s' is defined before this one", bname);
                                return -EINVAL;
                        }
                        memcpy(keep, p->name, sizeof keep);
                        policy_done(p);
                        if (policy_copy(b, p) < 0) {
                                snprintf(err, errlen, "out of memory");
                                return -ENOMEM;
                        }
                        memcpy(p->name, keep, sizeof keep);
                } else if (strcmp(key, "name") == 0 && !s) {
                        if (vlen == 0 || vlen >= sizeof p->name) {
                                snprintf(err, errlen, "name: bad length");
                                return -EINVAL;
                        }
                        memcpy(p->name, val, vlen);
                        p->name[vlen] = 0;
                        if (!policy_name_is_valid(p->name)) {
                                snprintf(err, errlen, "name: '%s' is not a valid policy name", p->name);
                                return -EINVAL;
                        }
                } else if (strcmp(key, "allow") == 0) {
                        if ((r = parse_list(key, val, vlen, false, &p->allow, &p->n_allow, false, err, errlen)) < 0)
                                return r;
                        if (s) /* an operator listing modules means imports are checked */
                                p->check_imports = true;
                } else if (strcmp(key, "deny") == 0) {
                        if ((r = parse_list(key, val, vlen, false, &p->deny, &p->n_deny, false, err, errlen)) < 0)
                                return r;
                } else if (strcmp(key, "deny-events") == 0) {
                        if ((r = parse_list(key, val, vlen, true, &p->deny_events, &p->n_deny_events, false, err,
                                            errlen)) < 0)
                                return r;
                } else if (strcmp(key, "allow-events") == 0) {
                        if ((r = parse_list(key, val, vlen, true, &p->deny_events, &p->n_deny_events, true, err,
                                            errlen)) < 0)
                                return r;
                } else if (strcmp(key, "imports") == 0) {
                        if (vlen == 6 && memcmp(val, "listed", 6) == 0)
                                p->check_imports = true;
                        else if (vlen == 3 && memcmp(val, "all", 3) == 0)
                                p->check_imports = false;
                        else {
                                snprintf(err, errlen, "imports must be 'listed' or 'all', got '%.*s'", (int)vlen, val);
                                return -EINVAL;
                        }
                } else if (strcmp(key, "writes") == 0) {
                        if (vlen == 7 && memcmp(val, "workdir", 7) == 0)
                                p->restrict_writes = true;
                        else if (vlen == 3 && memcmp(val, "any", 3) == 0)
                                p->restrict_writes = false;
                        else {
                                snprintf(err, errlen, "writes must be 'workdir' or 'any', got '%.*s'", (int)vlen, val);
                                return -EINVAL;
                        }
                } else {
                        snprintf(err, errlen,
                                 "unknown item '%s' (known: base, allow, deny, deny-events, allow-events, imports, "
                                 "writes)",
                                 key);
                        return -EINVAL;
                }
                q = semi ? semi + 1 : e;
        }
        return 0;
}

int policy_set_define(struct policy_set *s, const char *name, const char *spec, char *err, size_t errlen) {
        struct policy p = { 0 }; /* without base=: nothing restricted, as the built-in permissive */
        struct policy *v;
        int r;

        if (!policy_name_is_valid(name)) {
                snprintf(err, errlen, "'%s' is not a valid policy name (1-31 of a-z, 0-9, _ and -, starting with a letter)",
                         name);
                return -EINVAL;
        }
        snprintf(p.name, sizeof p.name, "%s", name);
        r = apply_spec(s, &p, spec, err, errlen);
        if (r < 0) {
                policy_done(&p);
                return r;
        }
        for (size_t i = 0; i < s->n; i++)
                if (strcmp(s->v[i].name, name) == 0) {
                        policy_done(&s->v[i]);
                        s->v[i] = p;
                        return 0;
                }
        v = realloc(s->v, (s->n + 1) * sizeof *v);
        if (!v) {
                policy_done(&p);
                return -ENOMEM;
        }
        s->v = v;
        s->v[s->n++] = p;
        return 0;
}

static int append_list(struct buf *b, const char *key, char *const *v, size_t n) {
        int r = 0;
        if (n == 0)
                return 0;
        r |= buf_printf(b, ";%s=", key);
        for (size_t i = 0; i < n; i++)
                r |= buf_printf(b, "%s%s", i ? "," : "", v[i]);
        return r;
}

int policy_format(const struct policy *p, char **ret) {
        struct buf b;
        int r = 0;
        buf_init(&b, 1 << 20);
        r |= buf_printf(&b, "name=%s;imports=%s;writes=%s", p->name, p->check_imports ? "listed" : "all",
                        p->restrict_writes ? "workdir" : "any");
        r |= append_list(&b, "allow", p->allow, p->n_allow);
        r |= append_list(&b, "deny", p->deny, p->n_deny);
        r |= append_list(&b, "deny-events", p->deny_events, p->n_deny_events);
        if (r < 0 || !b.data) {
                buf_done(&b);
                return -ENOMEM;
        }
        *ret = buf_steal(&b);
        return 0;
}

int policy_parse(const char *line, struct policy *ret, char *err, size_t errlen) {
        struct policy p = { 0 };
        int r = apply_spec(NULL, &p, line, err, errlen);
        if (r == 0 && !p.name[0]) {
                snprintf(err, errlen, "the policy has no name");
                r = -EINVAL;
        }
        if (r < 0) {
                policy_done(&p);
                return r;
        }
        *ret = p;
        return 0;
}

/* Whether list entry e covers module m: equal, or m is a submodule of e. */
static bool covers(const char *e, const char *m) {
        size_t n = strlen(e);
        return strncmp(e, m, n) == 0 && (m[n] == 0 || m[n] == '.');
}

bool policy_module_allowed(const struct policy *p, const char *module) {
        for (size_t i = 0; i < p->n_deny; i++)
                if (covers(p->deny[i], module))
                        return false;
        if (!p->check_imports)
                return true;
        for (size_t i = 0; i < p->n_allow; i++)
                if (covers(p->allow[i], module))
                        return true;
        /* Private helpers (_strptime, _collections_abc, _json, ...) are
         * imported lazily by the C code of allowed modules on the
         * program's behalf; the dangerous ones are denied above. */
        return module[0] == '_';
}

static bool event_matches(const char *pattern, const char *event) {
        size_t n = strlen(pattern);
        if (n >= 2 && pattern[n - 1] == '*' && pattern[n - 2] == '.')
                return strncmp(pattern, event, n - 1) == 0;
        return strcmp(pattern, event) == 0;
}

bool policy_event_denied(const struct policy *p, const char *event, const char **ret_what) {
        for (size_t i = 0; i < p->n_deny_events; i++) {
                if (!event_matches(p->deny_events[i], event))
                        continue;
                if (ret_what) {
                        *ret_what = NULL;
                        for (size_t k = 0; k < ELEMENTSOF(event_descriptions); k++)
                                if (event_matches(event_descriptions[k].event, event))
                                        *ret_what = event_descriptions[k].what;
                }
                return true;
        }
        return false;
}

/* Files a restricted program may write besides its directories: the
 * sandbox's own /dev entries (mount.c), which lead nowhere else. */
static const char *const writable_exact[] = { "/dev/null", "/dev/stdout", "/dev/stderr" };

static bool path_is_writable_exact(const char *path) {
        for (size_t i = 0; i < ELEMENTSOF(writable_exact); i++)
                if (strcmp(path, writable_exact[i]) == 0)
                        return true;
        return false;
}

bool policy_path_writable(const struct policy *p, const char *path) {
        static const char *const under[] = { POLICY_WORKDIR, "/tmp" };

        if (!p->restrict_writes)
                return true;
        for (size_t i = 0; i < ELEMENTSOF(under); i++) {
                size_t n = strlen(under[i]);
                if (strncmp(path, under[i], n) == 0 && (path[n] == 0 || path[n] == '/'))
                        return true;
        }
        return path_is_writable_exact(path);
}

/* As the kernel's path walk (fs/namei.c): MAXSYMLINKS. */
#define POLICY_MAX_SYMLINKS 40

/* Copy the resolved path out, if it fits. */
static int resolved(const char *cur, char *out, size_t n) {
        size_t l = strlen(cur);
        if (l >= n)
                return -ENAMETOOLONG;
        memcpy(out, cur, l + 1);
        return 0;
}

int policy_resolve_path(const char *base, const char *path, bool follow_final, char *ret, size_t n) {
        /* Built here: a path on the way can be longer than the result. */
        char todo[2 * PATH_MAX], tmp[2 * PATH_MAX], target[PATH_MAX], out[2 * PATH_MAX];
        unsigned links = 0;
        const char *s;
        size_t len;
        int k;

        k = path[0] == '/' ? snprintf(todo, sizeof todo, "%s", path) : snprintf(todo, sizeof todo, "%s/%s", base, path);
        if (k < 0 || (size_t)k >= sizeof todo)
                return -ENAMETOOLONG;
        out[0] = '/';
        out[1] = 0;
        len = 1;
        s = todo;
        for (;;) {
                const char *e, *rest;
                struct stat st;
                size_t seg, save;
                ssize_t t;
                bool last;

                while (*s == '/')
                        s++;
                if (!*s)
                        return resolved(out, ret, n);
                e = strchr(s, '/');
                seg = e ? (size_t)(e - s) : strlen(s);
                rest = s + seg;
                last = rest[strspn(rest, "/")] == 0;
                if (seg == 1 && s[0] == '.') {
                        s = rest;
                        continue;
                }
                if (seg == 2 && s[0] == '.' && s[1] == '.') {
                        while (len > 1 && out[len - 1] != '/')
                                len--;
                        if (len > 1)
                                len--;
                        out[len] = 0;
                        s = rest;
                        continue;
                }
                save = len;
                if (len + (len > 1) + seg >= sizeof out)
                        return -ENAMETOOLONG;
                if (len > 1)
                        out[len++] = '/';
                memcpy(out + len, s, seg);
                len += seg;
                out[len] = 0;
                s = rest;
                if (last && !follow_final)
                        continue;
                if (lstat(out, &st) < 0) {
                        /* Missing (or not ours to look at): the rest as written. */
                        while (*s == '/')
                                s++;
                        if (!policy_normalize_path(out, s, tmp, sizeof tmp))
                                return -ENAMETOOLONG;
                        return resolved(tmp, ret, n);
                }
                if (!S_ISLNK(st.st_mode))
                        continue;
                if (last && path_is_writable_exact(out))
                        return resolved(out, ret, n);
                if (++links > POLICY_MAX_SYMLINKS)
                        return -ELOOP;
                t = readlink(out, target, sizeof target - 1);
                if (t < 0)
                        continue;
                target[t] = 0;
                /* The link's own name is replaced by its target, which
                 * starts from the root or from the link's directory. */
                len = target[0] == '/' ? 1 : save;
                out[len] = 0;
                k = snprintf(tmp, sizeof tmp, "%s/%s", target, s);
                if (k < 0 || (size_t)k >= sizeof tmp)
                        return -ENAMETOOLONG;
                memcpy(todo, tmp, (size_t)k + 1);
                s = todo;
        }
}

bool policy_normalize_path(const char *cwd, const char *path, char *out, size_t n) {
        size_t len = 0;
        const char *parts[2] = { path[0] == '/' ? "" : cwd, path };

        if (n < 2)
                return false;
        out[0] = '/';
        len = 1;
        for (int k = 0; k < 2; k++) {
                const char *s = parts[k];
                while (*s) {
                        const char *e;
                        size_t seg;
                        while (*s == '/')
                                s++;
                        if (!*s)
                                break;
                        e = strchr(s, '/');
                        seg = e ? (size_t)(e - s) : strlen(s);
                        if (seg == 1 && s[0] == '.') {
                                /* nothing */
                        } else if (seg == 2 && s[0] == '.' && s[1] == '.') {
                                while (len > 1 && out[len - 1] != '/')
                                        len--;
                                if (len > 1)
                                        len--; /* the slash */
                        } else {
                                if (len > 1) {
                                        if (len + 1 >= n)
                                                return false;
                                        out[len++] = '/';
                                }
                                if (len + seg >= n)
                                        return false;
                                memcpy(out + len, s, seg);
                                len += seg;
                        }
                        s += seg;
                }
        }
        out[len] = 0;
        return true;
}
