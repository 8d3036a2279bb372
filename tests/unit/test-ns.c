/* SPDX-License-Identifier: MIT */
/*
 * Namespaces against the kernel. ns_clone() children come from a bare
 * clone(2), so they stick to async-signal-safe calls: open/read/write, no
 * stdio, no allocation.
 */
#include "test-helpers.h"

#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <grp.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "ns.h"

#define OUTSIDE_UID 1900005002u
#define OUTSIDE_GID 1900005003u

/* Read a small file into b (NUL-terminated); -1 on failure. */
static ssize_t slurp(const char *path, char *b, size_t n) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t got = 0, r;
        if (fd < 0)
                return -1;
        while ((size_t)got < n - 1 && (r = read(fd, b + got, n - 1 - (size_t)got)) > 0)
                got += r;
        close(fd);
        b[got] = 0;
        return got;
}

/* Without root, a namespace other than a user namespace can only be made
 * together with a user namespace (the unprivileged path of a run). */
static unsigned long with_userns_unless_root(unsigned long flags) {
        return geteuid() == 0 ? flags : flags | CLONE_NEWUSER;
}

static void test_clone_plain(void **state) {
        pid_t parent = getpid();
        pid_t pid = ns_clone(0);

        assert_true(pid >= 0);
        if (pid == 0) {
                child_reset_signals();
                /* a fork-like child: its own pid, our pid as parent */
                if (getppid() != parent)
                        _exit(1);
                if (getpid() == parent || getpid() == 1)
                        _exit(2);
                _exit(0);
        }
        assert_status_exited(wait_child(pid, 5000), 0);
}

static void test_clone_error(void **state) {
        /* CLONE_NEWUSER with CLONE_FS is EINVAL in the kernel */
        pid_t pid = ns_clone(CLONE_NEWUSER | CLONE_FS);
        if (pid == 0)
                _exit(0);
        assert_int_equal(pid, -EINVAL);
}

static void test_clone_newpid(void **state) {
        pid_t pid = ns_clone(with_userns_unless_root(CLONE_NEWPID));

        assert_true(pid >= 0);
        if (pid == 0) {
                child_reset_signals();
                if (getpid() != 1)
                        _exit(1);
                /* the parent is outside the namespace */
                if (getppid() != 0)
                        _exit(2);
                _exit(0);
        }
        assert_status_exited(wait_child(pid, 5000), 0);
}

static void test_clone_newnet(void **state) {
        pid_t pid = ns_clone(with_userns_unless_root(CLONE_NEWNET));

        assert_true(pid >= 0);
        if (pid == 0) {
                char b[4096], *line;
                int n_ifaces = 0, lo = 0;

                child_reset_signals();
                /* /proc/self/net is the reader's network namespace */
                if (slurp("/proc/self/net/dev", b, sizeof b) <= 0)
                        CHILD_FAIL(1, "reading /proc/self/net/dev");
                /* two header lines, then one line per interface */
                line = strchr(b, '\n');
                line = line ? strchr(line + 1, '\n') : NULL;
                while (line && line[1]) {
                        char *name = line + 1;
                        name += strspn(name, " ");
                        n_ifaces++;
                        if (strncmp(name, "lo:", 3) == 0)
                                lo++;
                        line = strchr(line + 1, '\n');
                }
                if (n_ifaces != 1 || lo != 1)
                        CHILD_FAIL(2, "%d interfaces, lo %d:\n%s", n_ifaces, lo, b);
                _exit(0);
        }
        assert_status_exited(wait_child(pid, 5000), 0);
}

static void test_clone_newuts(void **state) {
        char before[256], after[256];
        pid_t pid;

        assert_int_equal(gethostname(before, sizeof before), 0);
        pid = ns_clone(with_userns_unless_root(CLONE_NEWUTS));
        assert_true(pid >= 0);
        if (pid == 0) {
                static const char name[] = "pyexec-ns-test";
                char got[256];
                child_reset_signals();
                CHILD_CHECK(sethostname(name, sizeof name - 1) == 0, 1);
                CHILD_CHECK(gethostname(got, sizeof got) == 0, 2);
                CHILD_CHECK(strcmp(got, name) == 0, 3);
                _exit(0);
        }
        assert_status_exited(wait_child(pid, 5000), 0);
        assert_int_equal(gethostname(after, sizeof after), 0);
        assert_string_equal(before, after);
        assert_string_not_equal(after, "pyexec-ns-test");
}

/* The one-line map in /proc/self/{uid,gid}_map: "inside outside 1". */
static bool map_is(const char *path, unsigned want_in, unsigned want_out) {
        char b[256];
        unsigned in, out, len;
        if (slurp(path, b, sizeof b) <= 0)
                return false;
        /* one line only; the kernel pads the columns */
        if (strchr(b, '\n') != strrchr(b, '\n'))
                return false;
        return sscanf(b, "%u %u %u", &in, &out, &len) == 3 && in == want_in && out == want_out && len == 1;
}

/* The unprivileged path: a CLONE_NEWUSER child waits on a pipe, the parent
 * maps uid/gid 1000 inside onto its own ids, and the child is 1000 at once. */
static void test_write_id_maps_own_ids(void **state) {
        uid_t me = geteuid();
        gid_t mygid = getegid();
        int go[2], ready[2], r;
        pid_t pid;
        char c;

        assert_int_equal(pipe2(go, O_CLOEXEC), 0);
        assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
        pid = ns_clone(CLONE_NEWUSER);
        assert_true(pid >= 0);
        if (pid == 0) {
                char b[64];
                child_reset_signals();
                close(go[1]);
                close(ready[0]);
                /* unmapped (the overflow uid) until the parent writes the maps */
                CHILD_CHECK(getuid() == 65534, 1);
                CHILD_CHECK(write(ready[1], "r", 1) == 1, 12);
                if (read(go[0], &c, 1) != 1)
                        _exit(2);
                CHILD_CHECK(getuid() == 1000, 3);
                CHILD_CHECK(geteuid() == 1000, 4);
                CHILD_CHECK(getgid() == 1000, 5);
                CHILD_CHECK(getegid() == 1000, 6);
                CHILD_CHECK(map_is("/proc/self/uid_map", 1000, me), 7);
                CHILD_CHECK(map_is("/proc/self/gid_map", 1000, mygid), 8);
                CHILD_CHECK(slurp("/proc/self/setgroups", b, sizeof b) > 0, 9);
                CHILD_CHECK(strcmp(b, "deny\n") == 0, 10);
                /* with setgroups denied, the group list cannot change */
                CHILD_CHECK_ERRNO(setgroups(0, NULL), EPERM, 11);
                _exit(0);
        }
        close(go[0]);
        close(ready[1]);
        if (read(ready[0], &c, 1) != 1) {
                close(ready[0]);
                close(go[1]);
                assert_status_exited(wait_child(pid, 5000), 0);
        }
        close(ready[0]);
        r = ns_write_id_maps(pid, 1000, me, 1000, mygid, true);
        assert_int_equal(write(go[1], "g", 1), 1);
        close(go[1]);
        if (r < 0) {
                wait_child(pid, 5000);
                fail_msg("ns_write_id_maps: %s", strerror(-r));
        }
        assert_status_exited(wait_child(pid, 5000), 0);
}

/* The privileged path: root maps 1000 inside onto a fresh host uid; once
 * the child switches to 1000, what it creates belongs to that host uid. */
static void test_write_id_maps_other_ids(void **state) {
        char dir[64] = "/tmp/pyexec-test-ns-XXXXXX", file[128];
        struct stat st;
        int go[2], r;
        pid_t pid;

        SKIP_UNLESS_ROOT();
        assert_non_null(mkdtemp(dir));
        assert_int_equal(chmod(dir, 01777), 0);
        snprintf(file, sizeof file, "%s/made-inside", dir);
        assert_int_equal(pipe2(go, O_CLOEXEC), 0);
        pid = ns_clone(CLONE_NEWUSER);
        assert_true(pid >= 0);
        if (pid == 0) {
                char c, b[64];
                int fd;
                child_reset_signals();
                close(go[1]);
                if (read(go[0], &c, 1) != 1)
                        _exit(2);
                CHILD_CHECK(map_is("/proc/self/uid_map", 1000, OUTSIDE_UID), 3);
                CHILD_CHECK(map_is("/proc/self/gid_map", 1000, OUTSIDE_GID), 4);
                /* root over the parent namespace may leave setgroups allowed */
                CHILD_CHECK(slurp("/proc/self/setgroups", b, sizeof b) > 0, 5);
                CHILD_CHECK(strcmp(b, "allow\n") == 0, 6);
                CHILD_CHECK(syscall(SYS_setgroups, 0, NULL) == 0, 7);
                CHILD_CHECK(syscall(SYS_setresgid, 1000, 1000, 1000) == 0, 8);
                CHILD_CHECK(syscall(SYS_setresuid, 1000, 1000, 1000) == 0, 9);
                CHILD_CHECK(getuid() == 1000 && getgid() == 1000, 10);
                fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
                CHILD_CHECK(fd >= 0, 11);
                close(fd);
                _exit(0);
        }
        close(go[0]);
        r = ns_write_id_maps(pid, 1000, OUTSIDE_UID, 1000, OUTSIDE_GID, false);
        assert_int_equal(write(go[1], "g", 1), 1);
        close(go[1]);
        if (r < 0) {
                wait_child(pid, 5000);
                fail_msg("ns_write_id_maps: %s", strerror(-r));
        }
        assert_status_exited(wait_child(pid, 5000), 0);
        assert_int_equal(stat(file, &st), 0);
        assert_int_equal(st.st_uid, OUTSIDE_UID);
        assert_int_equal(st.st_gid, OUTSIDE_GID);
        assert_int_equal(unlink(file), 0);
        assert_int_equal(rmdir(dir), 0);
}

static void test_write_id_maps_twice_fails(void **state) {
        int go[2];
        pid_t pid;

        assert_int_equal(pipe2(go, O_CLOEXEC), 0);
        pid = ns_clone(CLONE_NEWUSER);
        assert_true(pid >= 0);
        if (pid == 0) {
                char c;
                close(go[1]);
                (void)!read(go[0], &c, 1);
                _exit(0);
        }
        close(go[0]);
        assert_int_equal(ns_write_id_maps(pid, 0, geteuid(), 0, getegid(), true), 0);
        /* a map is written once; the second write is refused */
        assert_int_equal(ns_write_id_maps(pid, 0, geteuid(), 0, getegid(), false), -EPERM);
        close(go[1]);
        assert_status_exited(wait_child(pid, 5000), 0);
        /* a pid that does not exist */
        assert_int_equal(ns_write_id_maps(0x3ffffff0, 0, OUTSIDE_UID, 0, OUTSIDE_GID, false), -ENOENT);
}

static void test_userns_works(void **state) {
        assert_true(ns_userns_works());
}

static void test_sandbox_flags(void **state) {
        /* every run gets all of these */
        assert_true(NS_SANDBOX_FLAGS & CLONE_NEWNS);
        assert_true(NS_SANDBOX_FLAGS & CLONE_NEWPID);
        assert_true(NS_SANDBOX_FLAGS & CLONE_NEWNET);
        assert_true(NS_SANDBOX_FLAGS & CLONE_NEWIPC);
        assert_true(NS_SANDBOX_FLAGS & CLONE_NEWUTS);
        assert_false(NS_SANDBOX_FLAGS & CLONE_NEWUSER);
}

static bool same_ns(pid_t pid, const char *kind) {
        char p1[64], p2[64], a[128] = "", b[128] = "";
        snprintf(p1, sizeof p1, "/proc/self/ns/%s", kind);
        snprintf(p2, sizeof p2, "/proc/%d/ns/%s", (int)pid, kind);
        assert_true(readlink(p1, a, sizeof a - 1) > 0);
        assert_true(readlink(p2, b, sizeof b - 1) > 0);
        return strcmp(a, b) == 0;
}

static void test_clone_all_sandbox_flags(void **state) {
        static const char *const kinds[] = { "mnt", "pid", "net", "ipc", "uts" };
        int go[2];
        pid_t pid;

        SKIP_UNLESS_ROOT();
        assert_int_equal(pipe2(go, O_CLOEXEC), 0);
        pid = ns_clone(NS_SANDBOX_FLAGS);
        assert_true(pid >= 0);
        if (pid == 0) {
                char c;
                child_reset_signals();
                close(go[1]);
                CHILD_CHECK(getpid() == 1, 1);
                (void)!read(go[0], &c, 1);
                _exit(0);
        }
        close(go[0]);
        /* from the outside: each of the child's namespaces is a new one */
        for (size_t i = 0; i < ELEMENTSOF(kinds); i++)
                if (same_ns(pid, kinds[i]))
                        fail_msg("the child shares our %s namespace", kinds[i]);
        /* and what was not asked for is shared */
        assert_true(same_ns(pid, "user"));
        assert_true(same_ns(pid, "cgroup"));
        close(go[1]);
        assert_status_exited(wait_child(pid, 5000), 0);
}

static ino_t ns_inode(const char *path) {
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        return st.st_ino;
}

/* ns_new_net: a new namespace for others to join, the caller's thread
 * back in its own. */
static void test_new_net(void **state) {
        int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC), fd;
        ino_t mine = ns_inode("/proc/thread-self/ns/net");
        struct stat st;
        pid_t pid;

        assert_true(home >= 0);
        fd = ns_new_net(home);
        assert_int_equal(ns_inode("/proc/thread-self/ns/net"), mine);
        if (geteuid() != 0) {
                assert_int_equal(fd, -EPERM);
                close(home);
                return;
        }
        assert_true(fd >= 0);
        assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        assert_int_equal(fstat(fd, &st), 0);
        assert_true(st.st_ino != mine);
        pid = ns_clone(0);
        assert_true(pid >= 0);
        if (pid == 0) {
                struct sockaddr_in lo = { .sin_family = AF_INET, .sin_port = htons(9),
                                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                struct stat in;
                int s;
                child_reset_signals();
                CHILD_CHECK(setns(fd, CLONE_NEWNET) == 0, 1);
                CHILD_CHECK(stat("/proc/thread-self/ns/net", &in) == 0 && in.st_ino == st.st_ino, 2);
                /* empty: the loopback is down, so not even 127.0.0.1 routes */
                s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                CHILD_CHECK(s >= 0, 3);
                CHILD_CHECK_ERRNO(connect(s, (struct sockaddr *)&lo, sizeof lo), ENETUNREACH, 4);
                _exit(0);
        }
        assert_status_exited(wait_child(pid, 5000), 0);
        /* each call makes another */
        {
                int fd2 = ns_new_net(home);
                struct stat st2;
                assert_true(fd2 >= 0);
                assert_int_equal(fstat(fd2, &st2), 0);
                assert_true(st2.st_ino != st.st_ino && st2.st_ino != mine);
                close(fd2);
        }
        close(fd);
        close(home);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_new_net),
                cmocka_unit_test(test_clone_plain),
                cmocka_unit_test(test_clone_error),
                cmocka_unit_test(test_clone_newpid),
                cmocka_unit_test(test_clone_newnet),
                cmocka_unit_test(test_clone_newuts),
                cmocka_unit_test(test_write_id_maps_own_ids),
                cmocka_unit_test(test_write_id_maps_other_ids),
                cmocka_unit_test(test_write_id_maps_twice_fails),
                cmocka_unit_test(test_userns_works),
                cmocka_unit_test(test_sandbox_flags),
                cmocka_unit_test(test_clone_all_sandbox_flags),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
