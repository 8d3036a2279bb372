/* SPDX-License-Identifier: MIT */
#include "cgroup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static int set_file(const char *dir, const char *name, const char *value);

const char *cgroup_version_to_string(enum cgroup_version v) {
        static const char *const names[_CGROUP_VERSION_MAX] = {
                [CGROUP_NONE] = "none",
                [CGROUP_V1] = "v1",
                [CGROUP_V2] = "v2",
        };
        return v < _CGROUP_VERSION_MAX ? names[v] : "?";
}

/* One cgroup filesystem mount from /proc/self/mountinfo. */
struct cg_mount {
        char *root;   /* the mount's root within the hierarchy */
        char *target; /* where it is mounted */
        bool v2;
        bool memory, pids, cpuacct;
};

/* Free a string naming part of the host's layout, erased first: the
 * zygote detects the host too, and every warm program is a copy of its
 * memory (free() leaves the text in the heap). */
static void erase_free(char *s) {
        if (s)
                explicit_bzero(s, strlen(s));
        free(s);
}

static void erase_freep(char **s) {
        erase_free(*s);
        *s = NULL;
}

#define _cleanup_erase_free_ _cleanup_(erase_freep)

static void cg_mount_done(struct cg_mount *m) {
        erase_free(m->root);
        erase_free(m->target);
        *m = (struct cg_mount){ 0 };
}

/*
 * The text of a /proc file that describes the host (mountinfo, cgroup),
 * read into an anonymous mapping of its own rather than the heap or a stack
 * buffer: the kernel copies it straight there, and erase_text() zeroes and
 * unmaps it, so no copy of it is left in the process (see erase_free).
 */
struct host_text {
        char *data;
        size_t len, size;
};

static int host_text_read(const char *path, size_t max, struct host_text *ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        struct host_text t = { .size = max + 1 };

        if (fd < 0)
                return -errno;
        /* Pages are only allocated as they are written. */
        t.data = mmap(NULL, t.size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (t.data == MAP_FAILED)
                return -errno;
        for (;;) {
                ssize_t n;
                if (t.len == max) {
                        explicit_bzero(t.data, t.len);
                        munmap(t.data, t.size);
                        return -EFBIG;
                }
                n = read(fd, t.data + t.len, max - t.len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        int r = -errno;
                        explicit_bzero(t.data, t.len);
                        munmap(t.data, t.size);
                        return r;
                }
                if (n == 0)
                        break;
                t.len += (size_t)n;
        }
        t.data[t.len] = 0;
        *ret = t;
        return 0;
}

static void host_text_erase(struct host_text *t) {
        if (!t->data)
                return;
        explicit_bzero(t->data, t->len);
        munmap(t->data, t->size);
        *t = (struct host_text){ 0 };
}

/* Does the comma-separated list contain word? */
static bool list_has(const char *list, const char *word) {
        size_t wl = strlen(word);
        for (const char *p = list; p && *p;) {
                const char *e = strchr(p, ',');
                size_t l = e ? (size_t)(e - p) : strlen(p);
                if (l == wl && strncmp(p, word, wl) == 0)
                        return true;
                p = e ? e + 1 : NULL;
        }
        return false;
}

/* Does the space-separated list (cgroup.controllers) contain word? */
static bool list_has_space(const char *list, const char *word) {
        size_t wl = strlen(word);
        for (const char *p = list; *p;) {
                size_t l = strcspn(p, " \n");
                if (l == wl && strncmp(p, word, wl) == 0)
                        return true;
                p += l;
                p += strspn(p, " \n");
        }
        return false;
}

/* Call fn on each line of text (modified in place). Stops when fn returns true. */
static void for_each_line(char *text, bool (*fn)(char *line, void *userdata), void *userdata) {
        for (char *line = text; line && *line;) {
                char *nl = strchr(line, '\n');
                if (nl)
                        *nl = 0;
                bool stop = fn(line, userdata);
                if (nl)
                        *nl = '\n';
                if (stop)
                        return;
                line = nl ? nl + 1 : NULL;
        }
}

struct mount_query {
        bool want_v2;
        const char *controller;
        struct cg_mount *ret;
        int r;
};

/* The fields of one mountinfo line, erased after use (erase_free). */
struct mount_fields {
        char root[4096], target[4096], fstype[64], super[1024];
};

static void mount_fields_erase(struct mount_fields *f) {
        explicit_bzero(f, sizeof *f);
}

static bool match_mount(char *line, void *userdata) {
        struct mount_query *q = userdata;
        _cleanup_(mount_fields_erase) struct mount_fields f;
        const char *sep = strstr(line, " - ");

        if (!sep)
                return false;
        if (sscanf(line, "%*s %*s %*s %4095s %4095s", f.root, f.target) != 2)
                return false;
        if (sscanf(sep + 3, "%63s %*s %1023s", f.fstype, f.super) != 2)
                return false;
        if (q->want_v2 ? strcmp(f.fstype, "cgroup2") != 0 : strcmp(f.fstype, "cgroup") != 0)
                return false;
        if (!q->want_v2 && !list_has(f.super, q->controller))
                return false;
        q->ret->root = strdup(f.root);
        q->ret->target = strdup(f.target);
        q->ret->v2 = q->want_v2;
        if (!q->ret->root || !q->ret->target) {
                cg_mount_done(q->ret);
                q->r = -ENOMEM;
        } else
                q->r = 0;
        return true;
}

/* The first cgroup2 mount (want_v2) or the v1 mount carrying controller, in
 * the text of /proc/self/mountinfo. */
static int find_mount(char *mountinfo, bool want_v2, const char *controller, struct cg_mount *ret) {
        struct mount_query q = { want_v2, controller, ret, -ENOENT };
        for_each_line(mountinfo, match_mount, &q);
        return q.r;
}

struct own_query {
        const char *controller;
        char **ret;
        int r;
};

static bool match_own(char *line, void *userdata) {
        struct own_query *q = userdata;
        char *c1 = strchr(line, ':'), *c2;
        bool match;

        if (!c1 || !(c2 = strchr(c1 + 1, ':')))
                return false;
        *c2 = 0;
        match = q->controller[0] ? list_has(c1 + 1, q->controller) : c1[1] == 0;
        *c2 = ':';
        if (!match)
                return false;
        *q->ret = strdup(c2 + 1);
        q->r = *q->ret ? 0 : -ENOMEM;
        return true;
}

/* Our own cgroup path in the hierarchy carrying controller, in the text of
 * /proc/self/cgroup. */
static int own_cgroup(char *proc_cgroup, const char *controller, char **ret) {
        struct own_query q = { controller, ret, -ENOENT };
        for_each_line(proc_cgroup, match_own, &q);
        return q.r;
}

/* mountpoint + our path relative to the mount's root. */
static char *hierarchy_dir(const struct cg_mount *m, const char *own) {
        size_t rl = strlen(m->root);
        const char *rel = own;
        if (strcmp(m->root, "/") != 0 && strncmp(own, m->root, rl) == 0 && (own[rl] == '/' || own[rl] == 0))
                rel = own + rl;
        while (*rel == '/')
                rel++;
        return *rel ? strdup_printf("%s/%s", m->target, rel) : strdup(m->target);
}

static int mkdir_p1(const char *path) {
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

static bool file_exists(const char *dir, const char *name) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, name);
        return access(p, F_OK) == 0;
}

/* Enable what controllers names (space-separated, "+memory +pids") in
 * dir/cgroup.subtree_control. */
static int v2_enable(const char *dir, const char *controllers) {
        char p[4096];
        snprintf(p, sizeof p, "%s/cgroup.subtree_control", dir);
        return write_control_file(p, controllers);
}

/* Make sure dir/cgroup.subtree_control has memory and pids enabled, and
 * cpu where dir offers it (cpu.max; CPU time comes from cpu.stat, which
 * every cgroup has). */
static int v2_enable_controllers(const char *dir) {
        int r = v2_enable(dir, "+memory +pids");
        if (r >= 0)
                (void)v2_enable(dir, "+cpu");
        return r;
}

/* Does dir/cgroup.subtree_control already enable memory and pids? */
static bool v2_controllers_enabled(const char *dir) {
        _cleanup_free_ char *s = NULL;
        char p[4096];
        snprintf(p, sizeof p, "%s/cgroup.subtree_control", dir);
        return read_small_file(p, &s) >= 0 && list_has_space(s, "memory") && list_has_space(s, "pids");
}

/* Is parent <cgroup2 mount>/pyexec, the parent pyexec makes as root? */
static bool v2_is_top_parent(const struct cg_mount *m, const char *parent) {
        size_t l = strlen(m->target);
        return strncmp(parent, m->target, l) == 0 && strcmp(parent + l, "/pyexec") == 0;
}

/* The leaf pyexec moves itself into when it takes over the delegated
 * cgroup it was started in; the runs' cgroups go beside it. */
#define V2_LEAF "supervisor"

/*
 * Is dir delegated to this process? systemd marks the cgroup of a unit with
 * Delegate=yes with the extended attribute trusted.delegate (user.delegate
 * where the manager is unprivileged), and gives an unprivileged unit's user
 * the directory with its cgroup.procs and cgroup.subtree_control. For root
 * only the mark counts: root may write anywhere, and a cgroup of a unit
 * without Delegate= is systemd's to manage. For another user, whatever is
 * his is delegated to him; strict asks, where no mark is readable, for
 * the boundary of the delegation (the parent is not his), which a user
 * manager's own slices are not.
 */
static bool v2_delegated(const char *dir, bool strict) {
        char v[8], p[4096];
        struct stat st;

        if (getxattr(dir, "trusted.delegate", v, sizeof v) == 1 && v[0] == '1')
                return true;
        if (getxattr(dir, "user.delegate", v, sizeof v) == 1 && v[0] == '1')
                return true;
        if (geteuid() == 0)
                return false;
        if (stat(dir, &st) < 0 || st.st_uid != geteuid() || access(dir, W_OK | X_OK) < 0)
                return false;
        snprintf(p, sizeof p, "%s/cgroup.procs", dir);
        if (access(p, W_OK) < 0)
                return false;
        snprintf(p, sizeof p, "%s/cgroup.subtree_control", dir);
        if (access(p, W_OK) < 0)
                return false;
        if (strict) {
                _cleanup_free_ char *up = strdup(dir);
                char *slash = up ? strrchr(up, '/') : NULL;
                if (!slash)
                        return false;
                *slash = 0;
                if (stat(up, &st) == 0 && st.st_uid == geteuid())
                        return false;
        }
        return true;
}

/* Does dir/cgroup.procs list a process other than this one? */
static bool v2_has_other_procs(const char *dir) {
        char p[4096];
        struct buf b;
        bool other = false;

        snprintf(p, sizeof p, "%s/cgroup.procs", dir);
        if (read_file(p, 1 << 20, &b) < 0)
                return true;
        for (char *line = b.data; line && *line;) {
                char *nl = strchr(line, '\n');
                uint64_t pid;
                if (nl)
                        *nl = 0;
                if (parse_u64(line, 1, INT32_MAX, &pid) == 0 && (pid_t)pid != getpid())
                        other = true;
                line = nl ? nl + 1 : NULL;
        }
        buf_done(&b);
        return other;
}

static int v2_move_self(const char *dir) {
        return set_file(dir, "cgroup.procs", "0");
}

/*
 * Take over own, the delegated cgroup this process was started in (the
 * cgroup of pyexec.service, of a scope with Delegate=yes): the kernel's "no
 * internal processes" rule allows controllers to be enabled for own's
 * children only once own holds no process, so pyexec moves itself into
 * own/supervisor first, as systemd's delegation rules describe, then
 * enables them. On failure it moves back and leaves nothing behind.
 */
static int v2_adopt(const char *own) {
        _cleanup_free_ char *leaf = strdup_printf("%s/" V2_LEAF, own);
        int r;

        if (!leaf)
                return -ENOMEM;
        if ((r = mkdir_p1(leaf)) < 0)
                return r;
        r = v2_move_self(leaf);
        if (r >= 0)
                r = v2_enable_controllers(own);
        if (r < 0) {
                (void)v2_move_self(own);
                (void)rmdir(leaf);
        }
        return r;
}

/*
 * The parent of the runs' cgroups on a v2 host, without PYEXEC_CGROUP; NULL
 * with a reason when there is none. In order:
 *  - pyexec's own leaf (own is <parent>/supervisor): a process a service
 *    started (its zygote) uses the service's parent;
 *  - own, when it is delegated to this process and holds no other
 *    process: pyexec takes it over (v2_adopt);
 *  - own's parent, when it is delegated and holds no process (a delegated
 *    unit whose main process moved itself into a leaf first);
 *  - as root, <cgroup2 mount>/pyexec: the top of the hierarchy may hold
 *    processes and still enable controllers for its children.
 */
static char *v2_parent(const struct cg_mount *m, char *reason, size_t size) {
        _cleanup_erase_free_ char *own = NULL, *up = NULL;
        struct host_text proc_cgroup;
        char *slash = NULL;
        bool at_top;
        int r;

        if (host_text_read("/proc/self/cgroup", 1 << 16, &proc_cgroup) >= 0) {
                char *rel = NULL;
                if (own_cgroup(proc_cgroup.data, "", &rel) >= 0)
                        own = hierarchy_dir(m, rel);
                erase_free(rel);
                host_text_erase(&proc_cgroup);
        }
        at_top = !own || strcmp(own, m->target) == 0;
        if (!at_top && (up = strdup(own)) && (slash = strrchr(up, '/')) && slash >= up + strlen(m->target))
                *slash = 0;
        else
                erase_freep(&up);

        if (up && strcmp(slash + 1, V2_LEAF) == 0 && access(up, W_OK | X_OK) == 0 && v2_controllers_enabled(up))
                return TAKE_PTR(up);
        if (!at_top && v2_delegated(own, false) && !v2_has_other_procs(own)) {
                r = v2_adopt(own);
                if (r >= 0)
                        return TAKE_PTR(own);
                snprintf(reason, size, "cannot take over the delegated cgroup %s: %s", own, strerror(-r));
        }
        if (up && v2_delegated(up, true)) {
                r = v2_controllers_enabled(up) ? 0 : v2_enable_controllers(up);
                if (r >= 0)
                        return TAKE_PTR(up);
                snprintf(reason, size, "cannot enable memory and pids in the delegated cgroup %s: %s", up,
                         strerror(-r));
        }
        if (geteuid() != 0) {
                if (!reason[0])
                        snprintf(reason, size,
                                 "%s is not delegated to this user (run pyexec in a unit with Delegate=yes, or set "
                                 "PYEXEC_CGROUP to a delegated cgroup)",
                                 own ? own : m->target);
                return NULL;
        }
        r = v2_enable_controllers(m->target);
        if (r < 0) {
                snprintf(reason, size,
                         "cannot enable memory and pids in %s/cgroup.subtree_control: %s (set PYEXEC_CGROUP to a "
                         "delegated cgroup)",
                         m->target, strerror(-r));
                return NULL;
        }
        reason[0] = 0;
        return strdup_printf("%s/pyexec", m->target);
}

static void detect_v2(struct cgroup_host *h, const struct cg_mount *m) {
        _cleanup_erase_free_ char *controllers = NULL, *parent = NULL;
        const char *env = getenv("PYEXEC_CGROUP");
        bool own_parent;
        char p[4096];
        int r;

        snprintf(p, sizeof p, "%s/cgroup.controllers", m->target);
        if (read_small_file(p, &controllers) < 0 || !list_has_space(controllers, "memory") ||
            !list_has_space(controllers, "pids")) {
                snprintf(h->reason, sizeof h->reason, "the cgroup2 hierarchy at %s has no memory and pids controllers",
                         m->target);
                return;
        }
        if (env && *env)
                parent = env[0] == '/' && strncmp(env, m->target, strlen(m->target)) == 0 ? strdup(env)
                                                                                         : strdup_printf("%s/%s", m->target, env);
        else if (!(parent = v2_parent(m, h->reason, sizeof h->reason)))
                return;
        if (!parent)
                return;
        /* A parent v2_parent found in place (a delegated cgroup) exists and
         * has its controllers; PYEXEC_CGROUP and <mount>/pyexec are made. */
        own_parent = (env && *env) || v2_is_top_parent(m, parent);
        r = 0;
        if (own_parent) {
                r = mkdir_p1(parent);
                if (r >= 0 && access(parent, W_OK | X_OK) < 0)
                        r = -errno;
                if (r >= 0)
                        r = v2_enable_controllers(parent);
        }
        if (r < 0) {
                snprintf(h->reason, sizeof h->reason, "cannot use %s as the parent cgroup: %s", parent, strerror(-r));
                return;
        }
        h->reason[0] = 0;
        h->version = CGROUP_V2;
        h->memory_parent = strdup(parent);
        h->pids_parent = strdup(parent);
        h->cpu_parent = strdup(parent);
}

/* Create <hierarchy of controller>/<our cgroup>/pyexec; NULL when unusable. */
static char *v1_parent(char *mountinfo, char *proc_cgroup, const char *controller, char *reason, size_t size) {
        struct cg_mount m = { 0 };
        _cleanup_erase_free_ char *own = NULL, *dir = NULL;
        char *parent = NULL;
        int r;

        if (find_mount(mountinfo, false, controller, &m) < 0) {
                snprintf(reason + strlen(reason), size - strlen(reason), "%sno v1 %s hierarchy",
                         reason[0] ? "; " : "", controller);
                return NULL;
        }
        if (own_cgroup(proc_cgroup, controller, &own) < 0 || !(dir = hierarchy_dir(&m, own)))
                goto out;
        parent = strdup_printf("%s/pyexec", dir);
        if (!parent)
                goto out;
        r = mkdir_p1(parent);
        /* It may exist (made by root) and still not be ours to use. */
        if (r >= 0 && access(parent, W_OK | X_OK) < 0)
                r = -errno;
        if (r < 0) {
                snprintf(reason + strlen(reason), size - strlen(reason), "%scannot use %s: %s",
                         reason[0] ? "; " : "", parent, strerror(-r));
                free(parent);
                parent = NULL;
        }
out:
        cg_mount_done(&m);
        return parent;
}


/*
 * The hugetlb controller, for the 2 MiB pages of the pool only (the size
 * the zygote's heap uses: zygote-heap.c). First on the cgroup2 hierarchy,
 * where hybrid hosts leave it (and a v2 host has it beside memory), in the
 * same parent as detect_v2's; then on a v1 hierarchy of its own.
 */
/* Enable hugetlb in cgroup.subtree_control of top and of every cgroup
 * between it and dir (dir excluded), from the top down. Best effort. */
static void v2_enable_hugetlb_down(const char *top, const char *dir) {
        _cleanup_free_ char *path = strdup(dir);
        size_t tl = strlen(top);

        if (!path || strncmp(path, top, tl) != 0 || path[tl] != '/')
                return;
        for (char *slash = path + tl; slash; slash = strchr(slash + 1, '/')) {
                char saved = *slash;
                *slash = 0;
                (void)v2_enable(path, "+hugetlb");
                *slash = saved;
        }
}

static void detect_hugetlb_v2(struct cgroup_host *h, const struct cg_mount *m) {
        _cleanup_free_ char *controllers = NULL, *parent = NULL, *offered = NULL;
        const char *env = getenv("PYEXEC_CGROUP");
        char p[4096];
        int r;

        snprintf(p, sizeof p, "%s/cgroup.controllers", m->target);
        if (read_small_file(p, &controllers) < 0 || !list_has_space(controllers, "hugetlb")) {
                snprintf(h->hugetlb_reason, sizeof h->hugetlb_reason, "no hugetlb controller on the cgroup2 hierarchy at %s",
                         m->target);
                return;
        }
        if (h->version == CGROUP_V2)
                parent = strdup(h->memory_parent);
        else if (env && *env)
                parent = env[0] == '/' && strncmp(env, m->target, strlen(m->target)) == 0 ? strdup(env)
                                                                                         : strdup_printf("%s/%s", m->target, env);
        else
                parent = strdup_printf("%s/pyexec", m->target);
        if (!parent)
                return;
        r = 0;
        if (!(env && *env) && v2_is_top_parent(m, parent)) {
                snprintf(p, sizeof p, "%s/cgroup.subtree_control", m->target);
                r = write_control_file(p, "+hugetlb");
        }
        if (r >= 0)
                r = mkdir_p1(parent);
        if (r >= 0 && access(parent, W_OK | X_OK) < 0)
                r = -errno;
        /* systemd does not manage hugetlb, so a cgroup it delegates does
         * not offer it: root enables it on the way down (slices and the
         * delegated cgroup hold no process, and systemd leaves a controller
         * it does not know alone); another user cannot. */
        if (r >= 0 && geteuid() == 0 && !(env && *env) && !v2_is_top_parent(m, parent))
                v2_enable_hugetlb_down(m->target, parent);
        snprintf(p, sizeof p, "%s/cgroup.controllers", parent);
        if (r >= 0 && (read_small_file(p, &offered) < 0 || !list_has_space(offered, "hugetlb"))) {
                snprintf(h->hugetlb_reason, sizeof h->hugetlb_reason,
                         "%s does not offer the hugetlb controller (enable it in its parents' cgroup.subtree_control)",
                         parent);
                return;
        }
        if (r >= 0) {
                snprintf(p, sizeof p, "%s/cgroup.subtree_control", parent);
                r = write_control_file(p, "+hugetlb");
        }
        if (r >= 0 && !file_exists(parent, "hugetlb.2MB.max"))
                r = -ENOENT;
        if (r < 0) {
                snprintf(h->hugetlb_reason, sizeof h->hugetlb_reason, "cannot use %s for hugetlb cgroups: %s", parent,
                         strerror(-r));
                return;
        }
        h->hugetlb_parent = TAKE_PTR(parent);
        h->hugetlb_v2 = true;
}

static void detect_hugetlb(struct cgroup_host *h, char *mountinfo) {
        struct cg_mount m = { 0 };
        struct host_text proc_cgroup;
        char *parent;

        if (find_mount(mountinfo, true, NULL, &m) >= 0) {
                detect_hugetlb_v2(h, &m);
                cg_mount_done(&m);
                if (h->hugetlb_parent)
                        return;
        }
        if (host_text_read("/proc/self/cgroup", 1 << 16, &proc_cgroup) < 0)
                return;
        parent = v1_parent(mountinfo, proc_cgroup.data, "hugetlb", h->hugetlb_reason, sizeof h->hugetlb_reason);
        host_text_erase(&proc_cgroup);
        if (parent && !file_exists(parent, "hugetlb.2MB.limit_in_bytes")) {
                snprintf(h->hugetlb_reason + strlen(h->hugetlb_reason), sizeof h->hugetlb_reason - strlen(h->hugetlb_reason),
                         "%s%s has no hugetlb.2MB.limit_in_bytes", h->hugetlb_reason[0] ? "; " : "", parent);
                free(parent);
                parent = NULL;
        }
        if (parent) {
                h->hugetlb_parent = parent;
                h->hugetlb_reason[0] = 0;
        }
}

void cgroup_host_detect(struct cgroup_host *h) {
        struct cg_mount m = { 0 };
        struct host_text mountinfo, proc_cgroup;

        *h = (struct cgroup_host){ .version = CGROUP_NONE };
        if (host_text_read("/proc/self/mountinfo", 1 << 20, &mountinfo) < 0) {
                snprintf(h->reason, sizeof h->reason, "cannot read /proc/self/mountinfo");
                return;
        }
        if (find_mount(mountinfo.data, true, NULL, &m) >= 0) {
                detect_v2(h, &m);
                cg_mount_done(&m);
        }
        if (h->version != CGROUP_V2 && host_text_read("/proc/self/cgroup", 1 << 16, &proc_cgroup) >= 0) {
                h->memory_parent = v1_parent(mountinfo.data, proc_cgroup.data, "memory", h->reason, sizeof h->reason);
                h->pids_parent = v1_parent(mountinfo.data, proc_cgroup.data, "pids", h->reason, sizeof h->reason);
                h->cpu_parent = v1_parent(mountinfo.data, proc_cgroup.data, "cpuacct", h->reason, sizeof h->reason);
                if (h->memory_parent || h->pids_parent) {
                        h->version = CGROUP_V1;
                        h->memsw = h->memory_parent && file_exists(h->memory_parent, "memory.memsw.limit_in_bytes");
                }
                host_text_erase(&proc_cgroup);
        }
        /* Without a memory or pids cgroup a run gets none (rlimits only),
         * so a hugetlb one alone would bound nothing. */
        if (h->version != CGROUP_NONE)
                detect_hugetlb(h, mountinfo.data);
        else
                snprintf(h->hugetlb_reason, sizeof h->hugetlb_reason, "no usable memory or pids cgroup");
        host_text_erase(&mountinfo);
}

void cgroup_host_done(struct cgroup_host *h) {
        free(h->memory_parent);
        free(h->pids_parent);
        free(h->cpu_parent);
        free(h->hugetlb_parent);
        *h = (struct cgroup_host){ 0 };
}

static int set_file(const char *dir, const char *name, const char *value) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, name);
        return write_control_file(p, value);
}

/* Read "key value" lines and return the value of key. */
static int read_keyed(const char *dir, const char *file, const char *key, uint64_t *ret) {
        char p[4096];
        struct buf b;
        size_t kl = strlen(key);
        int r;

        snprintf(p, sizeof p, "%s/%s", dir, file);
        r = read_file(p, 65536, &b);
        if (r < 0)
                return r;
        r = -ENOENT;
        for (char *line = b.data; line && *line;) {
                char *nl = strchr(line, '\n');
                if (nl)
                        *nl = 0;
                if (strncmp(line, key, kl) == 0 && line[kl] == ' ') {
                        r = parse_u64(line + kl + 1, 0, UINT64_MAX, ret);
                        break;
                }
                line = nl ? nl + 1 : NULL;
        }
        buf_done(&b);
        return r;
}

static int read_u64(const char *dir, const char *file, uint64_t *ret) {
        char p[4096];
        _cleanup_free_ char *s = NULL;
        int r;
        snprintf(p, sizeof p, "%s/%s", dir, file);
        r = read_small_file(p, &s);
        if (r < 0)
                return r;
        return parse_u64(s, 0, UINT64_MAX, ret);
}

/* SIGKILL every pid listed in dir/cgroup.procs until it is empty. */
static int kill_procs(const char *dir) {
        char p[4096];
        snprintf(p, sizeof p, "%s/cgroup.procs", dir);
        for (int round = 0; round < 100; round++) {
                struct buf b;
                bool any = false;
                if (read_file(p, 1 << 20, &b) < 0)
                        return -errno;
                for (char *line = b.data; line && *line;) {
                        char *nl = strchr(line, '\n');
                        uint64_t pid;
                        if (nl)
                                *nl = 0;
                        if (parse_u64(line, 1, INT32_MAX, &pid) == 0) {
                                kill((pid_t)pid, SIGKILL);
                                any = true;
                        }
                        line = nl ? nl + 1 : NULL;
                }
                buf_done(&b);
                if (!any)
                        return 0;
                nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
        }
        return -EBUSY;
}

/* rmdir, retrying briefly while the last tasks are still being torn down. */
static void remove_dir(const char *dir) {
        for (int i = 0; i < 200; i++) {
                if (rmdir(dir) == 0 || errno == ENOENT)
                        return;
                if (errno != EBUSY)
                        return;
                kill_procs(dir);
                nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
        }
}

/* mkdir parent/name; a stale directory of that name is emptied and reused. */
static int make_run_dir(const char *parent, const char *name, char **ret) {
        char *dir = strdup_printf("%s/%s", parent, name);
        if (!dir)
                return -ENOMEM;
        if (mkdir(dir, 0755) < 0) {
                if (errno != EEXIST) {
                        int r = -errno;
                        free(dir);
                        return r;
                }
                kill_procs(dir);
                remove_dir(dir);
                if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
                        int r = -errno;
                        free(dir);
                        return r;
                }
        }
        *ret = dir;
        return 0;
}

/* The hugetlb file of a run (2 MiB pages) in the host's flavour. */
static const char *hugetlb_file(bool v2, const char *v2_name, const char *v1_name) {
        return v2 ? v2_name : v1_name;
}

/* The run's hugetlb cgroup, limited to no page: on v2 hosts the run's one
 * directory when the hugetlb parent is the memory one, else its own. */
static int create_hugetlb(const struct cgroup_host *h, const char *name, struct cgroup_run *c) {
        int r;

        if (!h->hugetlb_parent)
                return 0;
        if (c->memory && h->memory_parent && strcmp(h->hugetlb_parent, h->memory_parent) == 0) {
                c->hugetlb = strdup(c->memory);
                if (!c->hugetlb)
                        return -ENOMEM;
        } else if ((r = make_run_dir(h->hugetlb_parent, name, &c->hugetlb)) < 0)
                return r;
        c->hugetlb_v2 = h->hugetlb_v2;
        return cgroup_run_set_hugetlb(c, 0);
}

int cgroup_run_set_hugetlb(const struct cgroup_run *c, uint64_t bytes) {
        char v[32];

        if (!c->hugetlb)
                return -EOPNOTSUPP;
        snprintf(v, sizeof v, "%llu", (unsigned long long)bytes);
        return set_file(c->hugetlb, hugetlb_file(c->hugetlb_v2, "hugetlb.2MB.max", "hugetlb.2MB.limit_in_bytes"), v);
}

int cgroup_run_create(const struct cgroup_host *h, const char *name, uint64_t memory_bytes, uint64_t pids_max,
                      struct cgroup_run *ret) {
        struct cgroup_run c = { .version = h->version };
        char mem[32], pids[32];
        int r = 0;

        snprintf(mem, sizeof mem, "%llu", (unsigned long long)memory_bytes);
        snprintf(pids, sizeof pids, "%llu", (unsigned long long)pids_max);

        if (h->version == CGROUP_V2) {
                r = make_run_dir(h->memory_parent, name, &c.memory);
                if (r < 0)
                        goto fail;
                if ((r = set_file(c.memory, "memory.max", mem)) < 0)
                        goto fail;
                /* No swap: the limit must mean memory, and a swapping
                 * program would only turn a memory verdict into a timeout. */
                if (file_exists(c.memory, "memory.swap.max") && (r = set_file(c.memory, "memory.swap.max", "0")) < 0)
                        goto fail;
                /* An OOM kill takes the whole group, so no half-dead tree
                 * keeps running. */
                if (file_exists(c.memory, "memory.oom.group"))
                        (void)set_file(c.memory, "memory.oom.group", "1");
                if ((r = set_file(c.memory, "pids.max", pids)) < 0)
                        goto fail;
                if ((r = create_hugetlb(h, name, &c)) < 0)
                        goto fail;
                *ret = c;
                return 0;
        }
        if (h->version != CGROUP_V1)
                return -EOPNOTSUPP;
        if (h->memory_parent) {
                if ((r = make_run_dir(h->memory_parent, name, &c.memory)) < 0)
                        goto fail;
                if ((r = set_file(c.memory, "memory.limit_in_bytes", mem)) < 0)
                        goto fail;
                /* memsw is memory+swap, so equal limits forbid swap. It must
                 * be written after memory.limit_in_bytes (memsw >= limit). */
                if (h->memsw && (r = set_file(c.memory, "memory.memsw.limit_in_bytes", mem)) < 0)
                        goto fail;
                (void)set_file(c.memory, "memory.swappiness", "0");
        }
        if (h->pids_parent) {
                if ((r = make_run_dir(h->pids_parent, name, &c.pids)) < 0)
                        goto fail;
                if ((r = set_file(c.pids, "pids.max", pids)) < 0)
                        goto fail;
        }
        if (h->cpu_parent && (r = make_run_dir(h->cpu_parent, name, &c.cpu)) < 0)
                goto fail;
        if ((r = create_hugetlb(h, name, &c)) < 0)
                goto fail;
        *ret = c;
        return 0;
fail:
        cgroup_run_destroy(&c);
        return r;
}

int cgroup_run_set_limits(const struct cgroup_host *h, const struct cgroup_run *c, uint64_t memory_bytes,
                          uint64_t pids_max) {
        char mem[32], pids[32];
        int r;

        snprintf(mem, sizeof mem, "%llu", (unsigned long long)memory_bytes);
        snprintf(pids, sizeof pids, "%llu", (unsigned long long)pids_max);
        if (c->version == CGROUP_V2) {
                if (c->memory && (r = set_file(c->memory, "memory.max", mem)) < 0)
                        return r;
                return c->memory ? set_file(c->memory, "pids.max", pids) : 0;
        }
        if (c->memory) {
                /* memsw must stay >= the limit at every step: raise it
                 * first when the limit grows, lower it last when it
                 * shrinks. */
                r = set_file(c->memory, "memory.limit_in_bytes", mem);
                if (r == -EINVAL && h->memsw) {
                        if ((r = set_file(c->memory, "memory.memsw.limit_in_bytes", mem)) < 0)
                                return r;
                        r = set_file(c->memory, "memory.limit_in_bytes", mem);
                }
                if (r < 0)
                        return r;
                if (h->memsw && (r = set_file(c->memory, "memory.memsw.limit_in_bytes", mem)) < 0)
                        return r;
        }
        if (c->pids && (r = set_file(c->pids, "pids.max", pids)) < 0)
                return r;
        return 0;
}

void cgroup_run_reset_peak(struct cgroup_run *c) {
        if (c->version == CGROUP_V1 && c->memory)
                (void)set_file(c->memory, "memory.max_usage_in_bytes", "0");
        if (c->hugetlb && !c->hugetlb_v2)
                (void)set_file(c->hugetlb, "hugetlb.2MB.max_usage_in_bytes", "0");
        else if (c->hugetlb && read_u64(c->hugetlb, "hugetlb.2MB.current", &c->hugetlb_base) < 0)
                c->hugetlb_base = 0;
}

static int attach_one(const char *dir, pid_t pid) {
        char v[32];
        if (!dir)
                return 0;
        snprintf(v, sizeof v, "%d", (int)pid);
        return set_file(dir, "cgroup.procs", v);
}

static bool hugetlb_is_memory_dir(const struct cgroup_run *c) {
        return c->hugetlb && c->memory && strcmp(c->hugetlb, c->memory) == 0;
}

int cgroup_run_attach(const struct cgroup_run *c, pid_t pid) {
        int r;
        if ((r = attach_one(c->memory, pid)) < 0)
                return r;
        /* Before anything of the run can fault in a huge page. */
        if (!hugetlb_is_memory_dir(c) && (r = attach_one(c->hugetlb, pid)) < 0)
                return r;
        if (c->version == CGROUP_V2)
                return 0;
        if ((r = attach_one(c->pids, pid)) < 0)
                return r;
        return attach_one(c->cpu, pid);
}

int cgroup_run_cpu_ns(const struct cgroup_run *c, uint64_t *ret) {
        uint64_t v;
        if (c->version == CGROUP_V2) {
                if (read_keyed(c->memory, "cpu.stat", "usage_usec", &v) < 0)
                        return -ENODATA;
                *ret = v * 1000;
                return 0;
        }
        if (!c->cpu || read_u64(c->cpu, "cpuacct.usage", &v) < 0)
                return -ENODATA;
        *ret = v;
        return 0;
}

int cgroup_run_oom_kills(const struct cgroup_run *c, uint64_t *ret) {
        if (!c->memory)
                return -ENODATA;
        if (c->version == CGROUP_V2)
                return read_keyed(c->memory, "memory.events", "oom_kill", ret) < 0 ? -ENODATA : 0;
        return read_keyed(c->memory, "memory.oom_control", "oom_kill", ret) < 0 ? -ENODATA : 0;
}

static void hugetlb_stats(const struct cgroup_run *c, struct cgroup_stats *s) {
        uint64_t v;

        if (!c->hugetlb)
                return;
        if (!c->hugetlb_v2) {
                if (read_u64(c->hugetlb, "hugetlb.2MB.max_usage_in_bytes", &v) == 0) {
                        s->have_hugetlb = true;
                        s->hugetlb_peak_bytes = v;
                }
                if (read_u64(c->hugetlb, "hugetlb.2MB.failcnt", &v) == 0 && v > 0)
                        s->hugetlb_limit_hit = true;
                return;
        }
        /* v2 keeps no high-water mark: what the run held when it started
         * (a warm sandbox's copy of the zygote's pages, all it may hold),
         * what it holds now, and the limit once a task reached it. */
        if (read_u64(c->hugetlb, "hugetlb.2MB.current", &v) == 0) {
                s->have_hugetlb = true;
                s->hugetlb_peak_bytes = v > c->hugetlb_base ? v : c->hugetlb_base;
        }
        if (read_keyed(c->hugetlb, "hugetlb.2MB.events", "max", &v) == 0 && v > 0) {
                _cleanup_free_ char *p = strdup_printf("%s/hugetlb.2MB.max", c->hugetlb), *lim = NULL;
                s->hugetlb_limit_hit = true;
                if (p && read_small_file(p, &lim) >= 0 && parse_u64(lim, 0, UINT64_MAX, &v) == 0 &&
                    v > s->hugetlb_peak_bytes)
                        s->hugetlb_peak_bytes = v;
        }
}

int cgroup_run_stats(const struct cgroup_run *c, struct cgroup_stats *ret) {
        struct cgroup_stats s = { 0 };
        uint64_t v;

        s.have_cpu = cgroup_run_cpu_ns(c, &s.cpu_ns) == 0;
        if (c->version == CGROUP_V2 && c->memory) {
                if (read_u64(c->memory, "memory.peak", &v) == 0) {
                        s.have_peak = true;
                        s.peak_bytes = v;
                }
                if (read_keyed(c->memory, "memory.events", "oom_kill", &v) == 0)
                        s.oom_kills = v;
                if (read_keyed(c->memory, "memory.events", "max", &v) == 0)
                        s.memory_limit_hit = v > 0;
        } else if (c->version == CGROUP_V1 && c->memory) {
                if (read_u64(c->memory, "memory.max_usage_in_bytes", &v) == 0) {
                        s.have_peak = true;
                        s.peak_bytes = v;
                }
                if (read_keyed(c->memory, "memory.oom_control", "oom_kill", &v) == 0)
                        s.oom_kills = v;
                /* With swap limited the memory+swap counter may trip first,
                 * leaving memory.failcnt at 0. */
                if (read_u64(c->memory, "memory.failcnt", &v) == 0 && v > 0)
                        s.memory_limit_hit = true;
                if (read_u64(c->memory, "memory.memsw.failcnt", &v) == 0 && v > 0)
                        s.memory_limit_hit = true;
        }
        if (s.oom_kills > 0)
                s.memory_limit_hit = true;
        hugetlb_stats(c, &s);
        if (s.have_hugetlb && s.have_peak)
                s.peak_bytes += s.hugetlb_peak_bytes;
        *ret = s;
        return 0;
}

int cgroup_run_kill(const struct cgroup_run *c) {
        if (c->version == CGROUP_V2 && c->memory) {
                if (set_file(c->memory, "cgroup.kill", "1") == 0)
                        return 0;
                return kill_procs(c->memory);
        }
        if (c->memory)
                kill_procs(c->memory);
        if (c->pids)
                kill_procs(c->pids);
        if (c->cpu)
                kill_procs(c->cpu);
        if (c->hugetlb)
                kill_procs(c->hugetlb);
        return 0;
}

void cgroup_run_destroy(struct cgroup_run *c) {
        char *dirs[] = { c->memory, c->pids, c->cpu, hugetlb_is_memory_dir(c) ? NULL : c->hugetlb };

        if (hugetlb_is_memory_dir(c))
                free(c->hugetlb);
        for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
                if (!dirs[i])
                        continue;
                remove_dir(dirs[i]);
                free(dirs[i]);
        }
        *c = (struct cgroup_run){ 0 };
}
