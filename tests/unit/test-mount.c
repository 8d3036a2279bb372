/* SPDX-License-Identifier: MIT */
/*
 * The sandbox root, built for real: a child unshares the mount and PID
 * namespaces and forks again, so the grandchild is PID 1 of the new PID
 * namespace (as in a run) and alone in the new mount namespace; it builds the
 * root, pivots into it and checks what it sees. Every check exits with its
 * own code; the middle child passes the grandchild's status on.
 */
#include "test-helpers.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>

#include "mount.h"

#define UID 1900005004u
#define GID 1900005005u
#define TMP_BYTES (256u << 10)
#define WORK_BYTES (512u << 10)
#define INODES 64u

static const char etc_content[] = "pyexec-mount-test\n";
static const char work_content[] = "print('hello from the sandbox')\n";

static const struct mount_file etc_files[] = {
        { "hostname", etc_content, sizeof etc_content - 1 },
};
static const struct mount_file work_files[] = {
        { "main.py", work_content, sizeof work_content - 1 },
        { "data.bin", "\0\1\2\3", 4 },
};

/* What the root must hold, computed on the host before forking: the fixed
 * entries, plus each optional host path that exists. */
static char expected_root[16][16];
static size_t n_expected_root;
static char expected_etc[16][32];
static size_t n_expected_etc;
static char host_links[4][2][256]; /* name, target for host symlinks */
static size_t n_host_links;
static char marker[64];

static int group_setup(void **state) {
        static const char *const fixed[] = { "usr", "etc", "dev", "proc", "tmp", "sandbox" };
        static const char *const optional[] = { "lib", "lib64", "bin", "sbin" };
        static const char *const etc_optional[] = { "ld.so.cache", "localtime",    "python3",
                                                    "python3.11",  "matplotlibrc", "alternatives" };
        struct stat st;
        int fd;

        for (size_t i = 0; i < ELEMENTSOF(fixed); i++)
                snprintf(expected_root[n_expected_root++], sizeof expected_root[0], "%s", fixed[i]);
        for (size_t i = 0; i < ELEMENTSOF(optional); i++) {
                char p[64];
                snprintf(p, sizeof p, "/%s", optional[i]);
                if (lstat(p, &st) < 0)
                        continue;
                snprintf(expected_root[n_expected_root++], sizeof expected_root[0], "%s", optional[i]);
                if (S_ISLNK(st.st_mode)) {
                        ssize_t n = readlink(p, host_links[n_host_links][1], sizeof host_links[0][1] - 1);
                        if (n < 0)
                                return -1;
                        host_links[n_host_links][1][n] = 0;
                        snprintf(host_links[n_host_links][0], sizeof host_links[0][0], "%s", p);
                        n_host_links++;
                }
        }
        snprintf(expected_etc[n_expected_etc++], sizeof expected_etc[0], "%s", etc_files[0].name);
        for (size_t i = 0; i < ELEMENTSOF(etc_optional); i++) {
                char p[64];
                snprintf(p, sizeof p, "/etc/%s", etc_optional[i]);
                if (lstat(p, &st) == 0)
                        snprintf(expected_etc[n_expected_etc++], sizeof expected_etc[0], "%s", etc_optional[i]);
        }
        /* a file in the host's /tmp that the sandbox must not see */
        snprintf(marker, sizeof marker, "/tmp/pyexec-test-mount-marker-%d", (int)getpid());
        fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
                return -1;
        close(fd);
        return 0;
}

static int group_teardown(void **state) {
        unlink(marker);
        return 0;
}

/* The names in dir must be exactly want[0..n). */
static void check_listing(const char *dir, char (*want)[16], size_t wsize, size_t n, int code) {
        DIR *d = opendir(dir);
        struct dirent *e;
        size_t found = 0;

        if (!d)
                CHILD_FAIL(code, "opendir %s", dir);
        while ((e = readdir(d))) {
                bool ok = false;
                if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                        continue;
                for (size_t i = 0; i < n && !ok; i++)
                        ok = strcmp(e->d_name, (const char *)want + i * wsize) == 0;
                if (!ok)
                        CHILD_FAIL(code, "unexpected %s/%s", dir, e->d_name);
                found++;
        }
        closedir(d);
        if (found != n)
                CHILD_FAIL(code + 1, "%s has %zu entries, expected %zu", dir, found, n);
}
#define CHECK_LISTING(dir, arr, n, code) check_listing(dir, (char(*)[16])(void *)(arr), sizeof(arr)[0], n, code)

static void check_content(const char *path, const char *want, size_t n, int code) {
        char b[256];
        ssize_t got;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                CHILD_FAIL(code, "open %s", path);
        got = read(fd, b, sizeof b);
        close(fd);
        if (got != (ssize_t)n || memcmp(b, want, n) != 0)
                CHILD_FAIL(code, "%s: wrong content (%zd bytes)", path, got);
}

static void check_absent(const char *path, int code) {
        struct stat st;
        if (lstat(path, &st) == 0 || errno != ENOENT)
                CHILD_FAIL(code, "%s is visible", path);
}

/* Fill dir with one file until the tmpfs is full; returns bytes written. */
static size_t fill(const char *dir, int code) {
        char path[128], chunk[16384];
        size_t total = 0;
        int fd;

        memset(chunk, 'z', sizeof chunk);
        snprintf(path, sizeof path, "%s/fill", dir);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                CHILD_FAIL(code, "creating %s", path);
        for (;;) {
                ssize_t w = write(fd, chunk, sizeof chunk);
                if (w < 0)
                        break;
                total += (size_t)w;
                if (total > (64u << 20))
                        CHILD_FAIL(code, "%s is not size-limited", dir);
        }
        if (errno != ENOSPC)
                CHILD_FAIL(code + 1, "filling %s", dir);
        close(fd);
        unlink(path);
        return total;
}

/* How many bytes reading path gives; -1 when it cannot be read. */
static ssize_t count_bytes(const char *path) {
        char b[4096];
        ssize_t n, total = 0;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return -1;
        while ((n = read(fd, b, sizeof b)) > 0)
                total += n;
        close(fd);
        return n < 0 ? -1 : total;
}

/* Every mount point in the new namespace is one the plan made. */
static void check_mounts(int code) {
        static const char *const allowed[] = { "/",
                                               "/usr",
                                               "/etc/ld.so.cache",
                                               "/etc/localtime",
                                               "/etc/python3",
                                               "/etc/python3.11",
                                               "/etc/matplotlibrc",
                                               "/etc/alternatives",
                                               "/dev",
                                               "/dev/null",
                                               "/dev/zero",
                                               "/dev/full",
                                               "/dev/random",
                                               "/dev/urandom",
                                               "/proc",
                                               "/proc/locks",
                                               "/tmp",
                                               "/sandbox",
                                               "/dev/shm" };
        char line[4096];
        FILE *f = fopen("/proc/self/mountinfo", "re");
        int n = 0;

        if (!f)
                CHILD_FAIL(code, "/proc/self/mountinfo");
        while (fgets(line, sizeof line, f)) {
                char target[4096];
                bool ok = false;
                if (sscanf(line, "%*s %*s %*s %*s %4095s", target) != 1)
                        continue;
                n++;
                for (size_t i = 0; i < ELEMENTSOF(allowed) && !ok; i++)
                        ok = strcmp(target, allowed[i]) == 0;
                /* submounts of a recursive /usr bind */
                ok = ok || strncmp(target, "/usr/", 5) == 0;
                if (!ok) {
                        fclose(f);
                        CHILD_FAIL(code, "host mount %s reachable", target);
                }
        }
        fclose(f);
        if (n < 5)
                CHILD_FAIL(code + 1, "only %d mounts", n);
}

static int sandbox_pid1(void) {
        const struct mount_plan plan = {
                .staging = "/tmp",
                .work_bytes = WORK_BYTES,
                .tmp_bytes = TMP_BYTES,
                .inodes = INODES,
                .uid = UID,
                .gid = GID,
                .etc = etc_files,
                .n_etc = ELEMENTSOF(etc_files),
                .work = work_files,
                .n_work = ELEMENTSOF(work_files),
        };
        const char *step = "?";
        struct statvfs sv;
        struct stat st;
        char b[256];
        ssize_t n;
        int r, fd;

        CHILD_CHECK(getpid() == 1, 1);
        /* A lock of the host's, open file description style: such locks
         * are listed in every PID namespace's /proc/locks. */
        {
                struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
                int lfd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
                CHILD_CHECK(lfd >= 0, 71);
                fl.l_type = F_RDLCK;
                CHILD_CHECK(fcntl(lfd, F_OFD_SETLK, &fl) == 0, 72);
                CHILD_CHECK(count_bytes("/proc/locks") > 0, 73); /* the control */
        }
        r = mount_build_root(&plan, &step);
        if (r < 0) {
                errno = -r;
                CHILD_FAIL(2, "mount_build_root failed at %s", step);
        }

        /* the root holds exactly the planned entries */
        {
                char cwd[64];
                CHILD_CHECK(getcwd(cwd, sizeof cwd) && strcmp(cwd, "/") == 0, 3);
        }
        CHECK_LISTING("/", expected_root, n_expected_root, 4);
        for (size_t i = 0; i < n_host_links; i++) {
                n = readlink(host_links[i][0], b, sizeof b - 1);
                CHILD_CHECK(n > 0, 6);
                b[n] = 0;
                if (strcmp(b, host_links[i][1]) != 0)
                        CHILD_FAIL(7, "%s -> %s, host has %s", host_links[i][0], b, host_links[i][1]);
        }
        CHILD_CHECK_ERRNO(mkdir("/newdir", 0755), EROFS, 8);

        /* /usr: the host's, read-only, nosuid, nodev */
        CHILD_CHECK(stat("/usr/bin", &st) == 0 && S_ISDIR(st.st_mode), 9);
        CHILD_CHECK_ERRNO(open("/usr/pyexec-test", O_WRONLY | O_CREAT | O_CLOEXEC, 0644), EROFS, 10);
        CHILD_CHECK_ERRNO(mkdir("/usr/pyexec-test", 0755), EROFS, 11);
        CHILD_CHECK(statvfs("/usr", &sv) == 0, 12);
        CHILD_CHECK((sv.f_flag & (ST_RDONLY | ST_NOSUID | ST_NODEV)) == (ST_RDONLY | ST_NOSUID | ST_NODEV), 13);

        /* /etc: our file, the optional host files, nothing else, read-only */
        check_content("/etc/hostname", etc_content, sizeof etc_content - 1, 14);
        CHECK_LISTING("/etc", expected_etc, n_expected_etc, 15);
        CHILD_CHECK_ERRNO(open("/etc/hostname", O_WRONLY | O_CLOEXEC), EROFS, 17);
        CHILD_CHECK_ERRNO(open("/etc/passwd", O_WRONLY | O_CREAT | O_CLOEXEC, 0644), EROFS, 18);

        /* /sandbox: the program's files, owned by the sandbox user */
        check_content("/sandbox/main.py", work_content, sizeof work_content - 1, 19);
        check_content("/sandbox/data.bin", "\0\1\2\3", 4, 20);
        CHILD_CHECK(stat("/sandbox/main.py", &st) == 0, 21);
        CHILD_CHECK(st.st_uid == UID && st.st_gid == GID && (st.st_mode & 07777) == 0644, 22);
        CHILD_CHECK(stat("/sandbox", &st) == 0, 23);
        CHILD_CHECK(st.st_uid == UID && st.st_gid == GID && (st.st_mode & 07777) == 0755, 24);
        CHILD_CHECK(statvfs("/sandbox", &sv) == 0, 25);
        CHILD_CHECK((uint64_t)sv.f_blocks * sv.f_frsize == WORK_BYTES, 26);
        CHILD_CHECK((sv.f_flag & (ST_NOSUID | ST_NODEV)) == (ST_NOSUID | ST_NODEV), 27);
        CHILD_CHECK(!(sv.f_flag & ST_RDONLY), 28);

        /* /dev: the five devices, four links and shm, nothing else */
        {
                static const char devs[][16] = { "null", "zero",  "full",   "random", "urandom",
                                                 "fd",   "stdin", "stdout", "stderr", "shm" };
                CHECK_LISTING("/dev", devs, ELEMENTSOF(devs), 30);
        }
        fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        CHILD_CHECK(fd >= 0 && write(fd, "x", 1) == 1, 32);
        close(fd);
        fd = open("/dev/full", O_WRONLY | O_CLOEXEC);
        CHILD_CHECK(fd >= 0, 33);
        CHILD_CHECK_ERRNO(write(fd, "x", 1), ENOSPC, 34);
        close(fd);
        fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
        memset(b, 1, 16);
        CHILD_CHECK(fd >= 0 && read(fd, b, 16) == 16, 35);
        CHILD_CHECK(memcmp(b, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16) == 0, 36);
        close(fd);
        fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        CHILD_CHECK(fd >= 0 && read(fd, b, 16) == 16, 37);
        close(fd);
        CHILD_CHECK(stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode), 38);
        n = readlink("/dev/stdin", b, sizeof b - 1);
        CHILD_CHECK(n > 0, 39);
        b[n] = 0;
        CHILD_CHECK(strcmp(b, "/proc/self/fd/0") == 0, 40);
        CHILD_CHECK_ERRNO(open("/dev/sda", O_WRONLY | O_CREAT | O_CLOEXEC, 0644), EROFS, 41);
        check_absent("/dev/mem", 42);
        check_absent("/dev/tty", 43);

        /* /proc: this PID namespace's */
        CHILD_CHECK(stat("/proc/self", &st) == 0, 44);
        n = readlink("/proc/self", b, sizeof b - 1);
        CHILD_CHECK(n > 0, 45);
        b[n] = 0;
        CHILD_CHECK(strcmp(b, "1") == 0, 46);
        CHILD_CHECK(stat("/proc/2", &st) < 0, 47);
        check_mounts(48);
        /* /proc/locks lists the host's locks: covered, it reads empty */
        CHILD_CHECK(stat("/proc/locks", &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3), 74);
        CHILD_CHECK(count_bytes("/proc/locks") == 0, 75);

        /* /tmp: writable by everyone, size-limited */
        CHILD_CHECK(stat("/tmp", &st) == 0 && (st.st_mode & 07777) == 01777, 50);
        fd = open("/tmp/hello", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        CHILD_CHECK(fd >= 0 && write(fd, "hi", 2) == 2, 51);
        close(fd);
        check_content("/tmp/hello", "hi", 2, 52);
        CHILD_CHECK(statvfs("/tmp", &sv) == 0, 53);
        CHILD_CHECK((uint64_t)sv.f_blocks * sv.f_frsize == TMP_BYTES, 54);
        CHILD_CHECK((sv.f_flag & (ST_NOSUID | ST_NODEV)) == (ST_NOSUID | ST_NODEV), 55);
        {
                size_t total = fill("/tmp", 56);
                if (total > TMP_BYTES || total < TMP_BYTES / 2)
                        CHILD_FAIL(58, "/tmp took %zu bytes for a %u-byte limit", total, TMP_BYTES);
                total = fill("/sandbox", 59);
                if (total > WORK_BYTES || total < WORK_BYTES / 2)
                        CHILD_FAIL(61, "/sandbox took %zu bytes for a %u-byte limit", total, WORK_BYTES);
        }
        /* and limited in files */
        {
                unsigned made = 0;
                for (; made < 4 * INODES; made++) {
                        char p[64];
                        snprintf(p, sizeof p, "/tmp/f%u", made);
                        fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                        if (fd < 0)
                                break;
                        close(fd);
                }
                CHILD_CHECK(made < INODES && errno == ENOSPC, 62);
        }

        /* /dev/shm: its own tmpfs, /tmp's size and inode cap, noexec */
        CHILD_CHECK(stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 07777) == 01777, 76);
        CHILD_CHECK(statvfs("/dev/shm", &sv) == 0, 77);
        CHILD_CHECK((uint64_t)sv.f_blocks * sv.f_frsize == TMP_BYTES && sv.f_files == INODES, 78);
        CHILD_CHECK((sv.f_flag & (ST_NOSUID | ST_NODEV | ST_NOEXEC)) == (ST_NOSUID | ST_NODEV | ST_NOEXEC), 79);
        CHILD_CHECK(!(sv.f_flag & ST_RDONLY), 80);
        {
                size_t total = fill("/dev/shm", 81);
                if (total > TMP_BYTES || total < TMP_BYTES / 2)
                        CHILD_FAIL(83, "/dev/shm took %zu bytes for a %u-byte limit", total, TMP_BYTES);
        }
        {
                unsigned made = 0;
                for (; made < 4 * INODES; made++) {
                        char p[64];
                        snprintf(p, sizeof p, "/dev/shm/f%u", made);
                        fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                        if (fd < 0)
                                break;
                        close(fd);
                }
                CHILD_CHECK(made < INODES && errno == ENOSPC, 84);
        }
        /* /dev itself stays closed to new entries */
        CHILD_CHECK_ERRNO(mkdir("/dev/shm2", 0755), EROFS, 85);

        /* nothing else of the host */
        check_absent("/root", 63);
        check_absent("/home", 64);
        check_absent("/var", 65);
        check_absent("/run", 66);
        check_absent("/sys", 67);
        check_absent("/boot", 68);
        check_absent(marker, 69);
        check_absent("/etc/shadow", 70);
        return 0;
}

static int middle(void *arg) {
        pid_t pid;
        int st;

        if (unshare(CLONE_NEWNS | CLONE_NEWPID) < 0)
                CHILD_FAIL(120, "unshare");
        pid = fork();
        if (pid < 0)
                CHILD_FAIL(121, "fork");
        if (pid == 0)
                _exit(sandbox_pid1());
        if (waitpid(pid, &st, 0) != pid)
                CHILD_FAIL(122, "waitpid");
        if (WIFEXITED(st))
                return WEXITSTATUS(st);
        return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static void test_build_root(void **state) {
        SKIP_UNLESS_ROOT();
        assert_status_exited(run_in_child(middle, NULL, 10000), 0);
}

/* A plan whose staging directory does not exist fails, saying where. */
static int bad_staging(void *arg) {
        const struct mount_plan plan = {
                .staging = "/nonexistent-pyexec-staging",
                .work_bytes = WORK_BYTES,
                .tmp_bytes = TMP_BYTES,
                .inodes = INODES,
                .uid = UID,
                .gid = GID,
        };
        const char *step = NULL;
        int r;

        if (unshare(CLONE_NEWNS) < 0)
                CHILD_FAIL(1, "unshare");
        r = mount_build_root(&plan, &step);
        CHILD_CHECK(r == -ENOENT, 2);
        CHILD_CHECK(step && strcmp(step, "mounting the root tmpfs") == 0, 3);
        return 0;
}

static void test_build_root_reports_step(void **state) {
        SKIP_UNLESS_ROOT();
        assert_status_exited(run_in_child(bad_staging, NULL, 5000), 0);
}

/*
 * What a job's parameter validation opened is what gets mounted. init finds
 * the file again by the path the kernel reports for the validated
 * descriptor, without following symlinks, and insists on the same device and
 * inode. The kernel always reports a file's real path, so a different file
 * can only appear there through a mount laid over it (done here inside the
 * child's namespace): a different file is -ESTALE, a symlink -ELOOP, and a
 * file deleted since validation -ENOENT; nothing is mounted, and the step
 * names the bind.
 */
enum swap_kind {
        SWAP_OTHER_FILE,
        SWAP_SYMLINK,
        SWAP_DELETED,
};

struct swap_arg {
        int fd;
        enum swap_kind kind;
        const char *dir;
        const char *path;
};

static int bind_after_swap(void *arg) {
        const struct swap_arg *a = arg;
        const struct mount_bind bind = { .fd = a->fd, .dest = "/job/in/x/input.png" };
        const struct mount_plan plan = {
                .staging = "/tmp",
                .work_bytes = WORK_BYTES,
                .tmp_bytes = TMP_BYTES,
                .inodes = INODES,
                .uid = UID,
                .gid = GID,
                .binds = &bind,
                .n_binds = 1,
        };
        const char *step = NULL;
        int r, fd;

        if (unshare(CLONE_NEWNS) < 0)
                CHILD_FAIL(1, "unshare");
        CHILD_CHECK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0, 2);
        if (a->kind != SWAP_DELETED) {
                CHILD_CHECK(mount("tmpfs", a->dir, "tmpfs", 0, "size=64k") == 0, 3);
                if (a->kind == SWAP_SYMLINK)
                        CHILD_CHECK(symlink("/etc/passwd", a->path) == 0, 4);
                else {
                        fd = open(a->path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
                        CHILD_CHECK(fd >= 0, 5);
                        close(fd);
                }
        }
        r = mount_build_root(&plan, &step);
        CHILD_CHECK(step && strcmp(step, bind.dest) == 0, 6);
        switch (r) {
        case -ESTALE:
                return 10;
        case -ELOOP:
                return 11;
        case -ENOENT:
                return 12;
        default:
                return 13;
        }
}

static void swap_case(enum swap_kind kind, int want) {
        char dir[] = "/tmp/pyexec-test-swap-XXXXXX", path[128];
        struct swap_arg a = { .kind = kind, .dir = dir, .path = path };
        int fd;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/input.png", dir);
        fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        assert_true(fd >= 0);
        close(fd);
        a.fd = open(path, O_PATH | O_CLOEXEC); /* as validated */
        assert_true(a.fd >= 0);
        if (kind == SWAP_DELETED)
                assert_int_equal(unlink(path), 0);
        assert_status_exited(run_in_child(bind_after_swap, &a, 5000), want);
        close(a.fd);
        unlink(path);
        rmdir(dir);
}

static void test_bind_of_replaced_file_refused(void **state) {
        SKIP_UNLESS_ROOT();
        swap_case(SWAP_OTHER_FILE, 10);
}

static void test_bind_of_file_replaced_by_symlink_refused(void **state) {
        SKIP_UNLESS_ROOT();
        swap_case(SWAP_SYMLINK, 11);
}

static void test_bind_of_deleted_file_refused(void **state) {
        SKIP_UNLESS_ROOT();
        swap_case(SWAP_DELETED, 12);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_build_root),
                cmocka_unit_test(test_build_root_reports_step),
                cmocka_unit_test(test_bind_of_replaced_file_refused),
                cmocka_unit_test(test_bind_of_file_replaced_by_symlink_refused),
                cmocka_unit_test(test_bind_of_deleted_file_refused),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
