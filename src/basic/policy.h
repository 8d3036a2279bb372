/* SPDX-License-Identifier: MIT */
/*
 * policy: the Python policy layer's data. A policy names which modules a
 * program may import, which audit events (PEP 578) it may not raise, and
 * whether it may write outside its work directory and /tmp. The runner
 * (runner.c) enforces one from an audit hook and a static check; this module
 * holds the built-in policies, parses operator-defined ones, and carries a
 * policy across the sandbox boundary as one line of text.
 *
 * The kernel sandbox is the boundary: every refusal here also holds, less
 * politely, under `permissive`. The policy exists to say precisely what was
 * refused and where.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define POLICY_NAME_MAX 32
/* Paths a restricted-writes policy lets a program write under. */
#define POLICY_WORKDIR "/sandbox"

struct policy {
        char name[POLICY_NAME_MAX];
        /* Imports requested by the program are limited to `allow` (a name
         * covers its submodules); private helper modules ("_strptime") stay
         * importable unless denied, because C code imports them lazily. */
        bool check_imports;
        /* open() for writing, mkdir, rename, ... only under the work
         * directory and /tmp. */
        bool restrict_writes;
        char **allow;
        size_t n_allow;
        /* Refused even when imports are not checked. */
        char **deny;
        size_t n_deny;
        /* Audit events refused wherever they are raised; "socket.*" covers
         * every event starting "socket.". */
        char **deny_events;
        size_t n_deny_events;
};

/* A set of named policies (built-ins plus the operator's). */
struct policy_set {
        struct policy *v;
        size_t n;
};

/* The built-in policies: "education", "permissive" and "science"
 * (education with numpy, matplotlib and pandas). */
int policy_set_init(struct policy_set *s);
void policy_set_done(struct policy_set *s);
const struct policy *policy_set_find(const struct policy_set *s, const char *name);
/*
 * Define (or redefine) policy name from an operator's spec:
 *   "base=education; allow=numpy,scipy; deny=pickle; deny-events=os.kill;
 *    allow-events=os.fork; imports=listed|all; writes=workdir|any"
 * Every item is optional; base, a policy defined before, must come first
 * (without it the policy starts from nothing restricted). Module names may
 * be dotted ("xml.etree"). On error returns -EINVAL with a message naming
 * the item.
 */
int policy_set_define(struct policy_set *s, const char *name, const char *spec, char *err, size_t errlen);

/* Policy names: 1-31 of [a-z0-9_-], starting with a letter. */
bool policy_name_is_valid(const char *name);

void policy_done(struct policy *p);
int policy_copy(const struct policy *src, struct policy *ret);

/* The one-line form carried into the sandbox ("name=...;imports=..;..."),
 * malloc'd, and its inverse. */
int policy_format(const struct policy *p, char **ret);
int policy_parse(const char *line, struct policy *ret, char *err, size_t errlen);

/* Decisions. module is a dotted name ("os.path"). */
bool policy_module_allowed(const struct policy *p, const char *module);
/* Whether the audit event is refused; ret_what (if not NULL) gets a short
 * human description such as "starting a process". */
bool policy_event_denied(const struct policy *p, const char *event, const char **ret_what);
/* Whether path (absolute, lexically normalized) is writable under the
 * policy. */
bool policy_path_writable(const struct policy *p, const char *path);
/* Lexically normalize path against cwd (".", "..", "//"); out has size n.
 * Returns false when it does not fit. */
bool policy_normalize_path(const char *cwd, const char *path, char *out, size_t n);
/*
 * Resolve path (relative to base, an absolute directory) to where the
 * kernel would write: "." and ".." after each symlink is followed, as
 * path resolution does, at most 40 symlinks; the final component is
 * followed only with follow_final (open without O_NOFOLLOW, chmod), and
 * never when it is a file the policy names exactly (/dev/stdout, a link
 * into the program's own /proc). What does not exist is taken as written.
 * Returns 0, -ELOOP or -ENAMETOOLONG. The file system can change between
 * this and the call it is for: the policy is friendly, the kernel sandbox
 * is what holds.
 */
int policy_resolve_path(const char *base, const char *path, bool follow_final, char *ret, size_t n);
