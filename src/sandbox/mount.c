/* SPDX-License-Identifier: MIT */
#include "mount.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

enum bind_kind {
        BIND_REQUIRED, /* the interpreter cannot run without it */
        BIND_OPTIONAL, /* used when the host has it */
};

/* What of the host the sandbox sees, all read-only, nosuid, nodev. A path
 * that is a symlink on the host (merged /usr) becomes the same symlink. */
static const struct bind_entry {
        const char *path;
        enum bind_kind kind;
        const char *why;
} binds[] = {
        { "/usr", BIND_REQUIRED, "the interpreter, its standard library and dist-packages (Pillow)" },
        { "/lib", BIND_OPTIONAL, "shared libraries (a link into /usr on merged-/usr hosts)" },
        { "/lib64", BIND_OPTIONAL, "the ELF interpreter ld-linux-x86-64.so.2" },
        { "/bin", BIND_OPTIONAL, "so /bin/sh and #! lines resolve as on the host" },
        { "/sbin", BIND_OPTIONAL, "completes the merged-/usr links" },
        { "/etc/ld.so.cache", BIND_OPTIONAL, "the loader's library index; without it every lookup walks the path" },
        { "/etc/localtime", BIND_OPTIONAL, "time.localtime() in the host's zone" },
        { "/etc/python3", BIND_OPTIONAL, "Debian's Python configuration" },
        { "/etc/python3.11", BIND_OPTIONAL, "sitecustomize.py, which site.py imports" },
        { "/etc/matplotlibrc", BIND_OPTIONAL, "matplotlib's defaults: Debian's matplotlib reads them only here" },
        { "/etc/alternatives", BIND_OPTIONAL,
          "links only; libblas/liblapack resolve through it (ld.so.cache records those paths), Blender needs them" },
};

/* Character devices a Python program expects; every other device node is
 * absent, so no raw disk, memory, terminal or kernel interface is reachable. */
static const char *const devices[] = { "null", "zero", "full", "random", "urandom" };

/* Links libc and shells expect in /dev; they point into the run's own /proc. */
static const struct {
        const char *name, *target;
} dev_links[] = {
        { "fd", "/proc/self/fd" },
        { "stdin", "/proc/self/fd/0" },
        { "stdout", "/proc/self/fd/1" },
        { "stderr", "/proc/self/fd/2" },
};

/* Files of the run's /proc that show the host rather than the run: each is
 * covered by /dev/null (reads are empty, writes go nowhere). */
static const struct {
        const char *name;
        const char *why;
} masked_proc[] = {
        /* Not filtered by PID namespace for open file description locks:
         * it lists every service's uid-slot locks (uidpool.c), with device
         * and inode numbers, to every program. */
        { "locks", "file locks of the whole host" },
};

#define STEP(s)                     \
        do {                        \
                *ret_step = (s);    \
        } while (0)

static int path_join(char *out, size_t size, const char *a, const char *b) {
        int n = snprintf(out, size, "%s%s", a, b);
        return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* Make the mount at path read-only, nosuid and nodev, recursively, keeping
 * the flags the kernel locks in a user namespace. */
static int make_readonly(const char *path, unsigned long extra) {
        struct mount_attr attr = {
                .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV,
        };
        struct statvfs sv;
        unsigned long keep;

        if (extra & MS_NOEXEC)
                attr.attr_set |= MOUNT_ATTR_NOEXEC;
        if (syscall(SYS_mount_setattr, AT_FDCWD, path, AT_RECURSIVE, &attr, sizeof attr) == 0)
                return 0;
        if (errno != ENOSYS)
                return -errno;
        /* Kernels before 5.12: remount the top mount only. */
        if (statvfs(path, &sv) < 0)
                return -errno;
        keep = sv.f_flag & (ST_NOEXEC | ST_NOATIME | ST_NODIRATIME | ST_RELATIME);
        if (mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | keep | extra, NULL) < 0)
                return -errno;
        return 0;
}

static int bind_one(const char *root, const struct bind_entry *e) {
        char dst[4096], target[4096];
        struct stat st;
        ssize_t n;
        int r;

        if (lstat(e->path, &st) < 0)
                return e->kind == BIND_OPTIONAL && errno == ENOENT ? 0 : -errno;
        if ((r = path_join(dst, sizeof dst, root, e->path)) < 0)
                return r;
        if (S_ISLNK(st.st_mode)) {
                n = readlink(e->path, target, sizeof target - 1);
                if (n < 0)
                        return -errno;
                target[n] = 0;
                return symlink(target, dst) < 0 ? -errno : 0;
        }
        if (S_ISDIR(st.st_mode)) {
                if (mkdir(dst, 0755) < 0 && errno != EEXIST)
                        return -errno;
        } else if (S_ISREG(st.st_mode)) {
                int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0444);
                if (fd < 0)
                        return -errno;
                close(fd);
        } else
                return -EINVAL;
        if (mount(e->path, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
                return -errno;
        return make_readonly(dst, 0);
}

static int write_file_at(int dirfd, const struct mount_file *f, mode_t mode, uid_t uid, gid_t gid, bool chown_it) {
        int fd = openat(dirfd, f->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        int r = 0;

        if (fd < 0)
                return -errno;
        r = write_all(fd, f->data, f->len);
        if (r == 0 && chown_it && fchown(fd, uid, gid) < 0)
                r = -errno;
        close(fd);
        return r;
}

static int write_files(const char *dir, const struct mount_file *files, size_t n, mode_t mode, uid_t uid, gid_t gid,
                       bool chown_it) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int r = 0;

        if (dfd < 0)
                return -errno;
        for (size_t i = 0; i < n && r == 0; i++)
                r = write_file_at(dfd, &files[i], mode, uid, gid, chown_it);
        close(dfd);
        return r;
}

/* /dev holds a few nodes, links and the /dev/shm mount point, nothing more. */
#define DEV_TMPFS_OPTIONS "size=64k,nr_inodes=64,mode=0755"

static int build_dev(const char *root) {
        char dev[3800], dst[4096], src[64];
        int r;

        if ((r = path_join(dev, sizeof dev, root, "/dev")) < 0)
                return r;
        /* dev is short enough that "<dev>/<name>" always fits in dst. */
        if (mkdir(dev, 0755) < 0)
                return -errno;
        if (mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, DEV_TMPFS_OPTIONS) < 0)
                return -errno;
        for (size_t i = 0; i < ELEMENTSOF(devices); i++) {
                int fd;
                snprintf(src, sizeof src, "/dev/%s", devices[i]);
                snprintf(dst, sizeof dst, "%s/%s", dev, devices[i]);
                fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
                if (fd < 0)
                        return -errno;
                close(fd);
                /* No remount: nosuid and noexec mean nothing for a
                 * character device, and each mount call costs. */
                if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
                        return -errno;
        }
        for (size_t i = 0; i < ELEMENTSOF(dev_links); i++) {
                snprintf(dst, sizeof dst, "%s/%s", dev, dev_links[i].name);
                if (symlink(dev_links[i].target, dst) < 0)
                        return -errno;
        }
        return 0;
}

static int mount_tmpfs(const char *root, const char *name, uint64_t bytes, uint64_t inodes, const char *mode, uid_t uid,
                       gid_t gid, unsigned long flags) {
        char dst[4096], opts[256];
        int r;

        if ((r = path_join(dst, sizeof dst, root, name)) < 0)
                return r;
        if (mkdir(dst, 0755) < 0)
                return -errno;
        /* Without uid=, the owner is the mounter, which is always mapped;
         * uid=0 would be refused inside a user namespace that lacks it. */
        if (uid == (uid_t)-1)
                snprintf(opts, sizeof opts, "size=%llu,nr_inodes=%llu,mode=%s", (unsigned long long)bytes,
                         (unsigned long long)inodes, mode);
        else
                snprintf(opts, sizeof opts, "size=%llu,nr_inodes=%llu,mode=%s,uid=%u,gid=%u", (unsigned long long)bytes,
                         (unsigned long long)inodes, mode, (unsigned)uid, (unsigned)gid);
        if (mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV | flags, opts) < 0)
                return -errno;
        return 0;
}

/* mkdir -p of the directories above dest inside root. */
static int make_parents(const char *root, const char *dest) {
        char path[4096];
        size_t rl = strlen(root);
        int r;

        if ((r = path_join(path, sizeof path, root, dest)) < 0)
                return r;
        for (char *p = path + rl + 1; (p = strchr(p, '/')); p++) {
                *p = 0;
                if (mkdir(path, 0755) < 0 && errno != EEXIST)
                        return -errno;
                *p = '/';
        }
        return 0;
}

/*
 * The descriptor validated outside belongs to the host's mount namespace,
 * and mount(2) binds only from our own. So resolve its path again here,
 * without following any symlink, and insist on the very same file (device
 * and inode): a rename or symlink planted since validation is refused, not
 * followed. Returns an O_PATH fd in this namespace.
 */
static int reopen_here(const struct mount_bind *b) {
        struct open_how how = {
                .flags = O_PATH | O_CLOEXEC | (b->dir ? O_DIRECTORY : 0),
                .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        };
        char link[64], path[4096];
        struct stat want, got;
        ssize_t n;
        long fd;

        snprintf(link, sizeof link, "/proc/self/fd/%d", b->fd);
        n = readlink(link, path, sizeof path - 1);
        if (n <= 0 || path[0] != '/')
                return -ESTALE;
        path[n] = 0;
        if (fstat(b->fd, &want) < 0)
                return -errno;
        fd = syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof how);
        if (fd < 0 && errno == ENOSYS)
                fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC | (b->dir ? O_DIRECTORY : 0));
        if (fd < 0)
                return -errno;
        if (fstat((int)fd, &got) < 0 || got.st_dev != want.st_dev || got.st_ino != want.st_ino) {
                close((int)fd);
                return -ESTALE;
        }
        return (int)fd;
}

/* Show an operator-approved host path at dest; here is its descriptor in
 * this namespace (reopen_here), taken before anything was mounted over the
 * host's paths. */
static int bind_host(const char *root, const struct mount_bind *b, int here) {
        char dst[4096], src[64];
        int r, fd;

        if (b->dest[0] != '/' || strstr(b->dest, "/../") || strstr(b->dest, "/./"))
                return -EINVAL;
        if ((r = make_parents(root, b->dest)) < 0)
                return r;
        if ((r = path_join(dst, sizeof dst, root, b->dest)) < 0)
                return r;
        if (b->dir) {
                if (mkdir(dst, 0755) < 0 && errno != EEXIST)
                        return -errno;
        } else {
                fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0444);
                if (fd < 0)
                        return -errno;
                close(fd);
        }
        snprintf(src, sizeof src, "/proc/self/fd/%d", here);
        if (mount(src, dst, NULL, MS_BIND, NULL) < 0)
                return -errno;
        if (!b->writable)
                return make_readonly(dst, b->exec ? 0 : MS_NOEXEC);
        if (mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
                return -errno;
        return 0;
}

/* Cover root/proc/name with the host's /dev/null (still reachable: this
 * runs before pivot_root). A bind needs no remount: /dev/null discards
 * what is written, and the program cannot unmount it. */
static int mask_proc_file(const char *root, const char *name) {
        char dst[4096];
        int n = snprintf(dst, sizeof dst, "%s/proc/%s", root, name);

        if (n < 0 || (size_t)n >= sizeof dst)
                return -ENAMETOOLONG;
        if (mount("/dev/null", dst, NULL, MS_BIND, NULL) < 0)
                return -errno;
        return 0;
}

int mount_build_root(const struct mount_plan *p, const char **ret_step) {
        const char *root = p->staging;
        char path[4096];
        int here[MOUNT_MAX_BINDS];
        int r;

        /* Before anything is mounted over host paths (the staging root
         * itself hides the host's /tmp). */
        if (p->n_binds > MOUNT_MAX_BINDS)
                return -E2BIG;
        for (size_t i = 0; i < p->n_binds; i++) {
                *ret_step = p->binds[i].dest;
                here[i] = reopen_here(&p->binds[i]);
                if (here[i] < 0)
                        return here[i];
        }

        /* Nothing we mount may propagate back to the host. */
        STEP("making mounts private");
        if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return -errno;
        STEP("mounting the root tmpfs");
        if (mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=256,mode=0755") < 0)
                return -errno;

        STEP("creating /etc");
        if ((r = path_join(path, sizeof path, root, "/etc")) < 0)
                return r;
        if (mkdir(path, 0755) < 0)
                return -errno;
        STEP("binding host paths read-only");
        for (size_t i = 0; i < ELEMENTSOF(binds); i++) {
                *ret_step = binds[i].path;
                if ((r = bind_one(root, &binds[i])) < 0)
                        return r;
        }
        STEP("writing /etc");
        if ((r = write_files(path, p->etc, p->n_etc, 0644, 0, 0, false)) < 0)
                return r;

        STEP("building /dev");
        if ((r = build_dev(root)) < 0)
                return r;
        /* POSIX shared memory and named semaphores (shm_open, sem_open:
         * multiprocessing's Lock, Queue and Pool) are files in /dev/shm. It
         * is a tmpfs of its own, new in every sandbox, of /tmp's size and
         * inode cap; its pages, like /tmp's, are charged to the memory
         * cgroup of the process that writes them, the run's. noexec, as
         * nothing there is meant to be run. */
        STEP("mounting /dev/shm");
        if ((r = mount_tmpfs(root, "/dev/shm", p->tmp_bytes, p->inodes, "1777", (uid_t)-1, (gid_t)-1, MS_NOEXEC)) < 0)
                return r;
        /* The device binds and /dev/shm stay writable (writing /dev/null
         * must work); /dev itself becomes read-only so nothing can be
         * added. */
        STEP("making /dev read-only");
        if ((r = path_join(path, sizeof path, root, "/dev")) < 0)
                return r;
        if (mount(NULL, path, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC, DEV_TMPFS_OPTIONS) < 0)
                return -errno;

        STEP("mounting /proc");
        if ((r = path_join(path, sizeof path, root, "/proc")) < 0)
                return r;
        if (mkdir(path, 0555) < 0)
                return -errno;
        /* hidepid=2: only processes the program could ptrace are listed, so
         * the undumpable init (whose argv is the supervisor's) is not. */
        if (mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2") < 0)
                return -errno;
        for (size_t i = 0; i < ELEMENTSOF(masked_proc); i++) {
                *ret_step = masked_proc[i].why;
                if ((r = mask_proc_file(root, masked_proc[i].name)) < 0)
                        return r;
        }

        STEP("mounting /tmp");
        if ((r = mount_tmpfs(root, "/tmp", p->tmp_bytes, p->inodes, "1777", (uid_t)-1, (gid_t)-1, 0)) < 0)
                return r;
        STEP("mounting " SANDBOX_WORKDIR);
        if ((r = mount_tmpfs(root, SANDBOX_WORKDIR, p->work_bytes, p->inodes, "0755", p->uid, p->gid, 0)) < 0)
                return r;
        STEP("writing the program's files");
        if ((r = path_join(path, sizeof path, root, SANDBOX_WORKDIR)) < 0)
                return r;
        if ((r = write_files(path, p->work, p->n_work, 0644, p->uid, p->gid, true)) < 0)
                return r;

        for (size_t i = 0; i < p->n_binds; i++) {
                *ret_step = p->binds[i].dest;
                r = bind_host(root, &p->binds[i], here[i]);
                close(here[i]);
                if (r < 0)
                        return r;
        }

        STEP("making the root read-only");
        if (mount(NULL, root, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=256,mode=0755") < 0)
                return -errno;

        /* pivot_root(".", ".") stacks the old root under the new one; the
         * detach then removes every host mount from this namespace. */
        STEP("pivoting into the new root");
        if (chdir(root) < 0)
                return -errno;
        if (syscall(SYS_pivot_root, ".", ".") < 0)
                return -errno;
        if (umount2(".", MNT_DETACH) < 0)
                return -errno;
        if (chdir("/") < 0)
                return -errno;
        return 0;
}
