/* SPDX-License-Identifier: MIT */
#include "test-helpers.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

#include "cred.h"
#include "ns.h"

#define SANDBOX_ID 1900005001u

static int cap_last_cap(void) {
        char b[16] = "";
        int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
        ssize_t n;
        if (fd < 0)
                return CAP_LAST_CAP;
        n = read(fd, b, sizeof b - 1);
        close(fd);
        return n > 0 ? atoi(b) : CAP_LAST_CAP;
}

/* Every check a dropped process must pass; exits with the failing code. */
static void check_dropped(uid_t uid, gid_t gid, int last_cap) {
        uid_t r, e, s;
        gid_t rg, eg, sg;

        CHILD_CHECK(getresuid(&r, &e, &s) == 0, 20);
        CHILD_CHECK(r == uid && e == uid && s == uid, 21);
        CHILD_CHECK(getresgid(&rg, &eg, &sg) == 0, 22);
        CHILD_CHECK(rg == gid && eg == gid && sg == gid, 23);
        CHILD_CHECK(getuid() == uid && geteuid() == uid, 24);
        CHILD_CHECK(getgroups(0, NULL) == 0, 25);
        CHILD_CHECK(!cred_has_any_capability(), 26);
        CHILD_CHECK(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, 27);
        /* the bounding set is empty: no execve can grant anything back */
        CHILD_CHECK(prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0) == 0, 28);
        for (int cap = 0; cap <= last_cap; cap++)
                if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) != 0)
                        CHILD_FAIL(29, "capability %d still in the bounding set", cap);
        for (int cap = 0; cap <= last_cap; cap++)
                if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) != 0)
                        CHILD_FAIL(30, "capability %d still ambient", cap);
        /* and nothing can be taken back */
        CHILD_CHECK_ERRNO(setuid(0), EPERM, 31);
        CHILD_CHECK_ERRNO(syscall(SYS_setresuid, 0, 0, 0), EPERM, 32);
        CHILD_CHECK_ERRNO(syscall(SYS_setresgid, 0, 0, 0), EPERM, 33);
        CHILD_CHECK_ERRNO(syscall(SYS_setgroups, 1, &(gid_t){ 0 }), EPERM, 34);
        CHILD_CHECK_ERRNO(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SYS_ADMIN, 0, 0), EPERM, 36);
}

static int root_child(void *arg) {
        int last = cap_last_cap();
        struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = { 0 };
        gid_t groups[] = { 0, 4, 27 };

        /* start with everything a root process can hold: supplementary
         * groups, full sets, an inheritable and ambient capability */
        CHILD_CHECK(setgroups(ELEMENTSOF(groups), groups) == 0, 1);
        CHILD_CHECK(getgroups(0, NULL) == (int)ELEMENTSOF(groups), 2);
        CHILD_CHECK(syscall(SYS_capget, &hdr, data) == 0, 3);
        data[0].inheritable |= 1u << CAP_NET_BIND_SERVICE;
        CHILD_CHECK(syscall(SYS_capset, &hdr, data) == 0, 4);
        CHILD_CHECK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0) == 0, 5);
        CHILD_CHECK(cred_has_any_capability(), 6);
        CHILD_CHECK(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 0, 7);

        int r = cred_drop(SANDBOX_ID, SANDBOX_ID, true);
        if (r < 0) {
                errno = -r;
                CHILD_FAIL(10, "cred_drop");
        }
        check_dropped(SANDBOX_ID, SANDBOX_ID, last);
        return 0;
}

static void test_drop_as_root(void **state) {
        SKIP_UNLESS_ROOT();
        assert_status_exited(run_in_child(root_child, NULL, 5000), 0);
}

static int distinct_gid_child(void *arg) {
        int r = cred_drop(SANDBOX_ID, SANDBOX_ID + 7, true);
        if (r < 0) {
                errno = -r;
                CHILD_FAIL(10, "cred_drop");
        }
        check_dropped(SANDBOX_ID, SANDBOX_ID + 7, cap_last_cap());
        return 0;
}

static void test_drop_uid_and_gid_differ(void **state) {
        SKIP_UNLESS_ROOT();
        assert_status_exited(run_in_child(distinct_gid_child, NULL, 5000), 0);
}

/*
 * cred_drop_apart, as a run's init uses it: real and saved ids of its own,
 * the program's as effective ids. A "program" (cred_drop to the same uid)
 * cannot signal it, queue it a forged signal or touch its rlimits, and the
 * "init" can still signal the program.
 */
#define INIT_ID (SANDBOX_ID + 1000)

static int apart_child(void *arg) {
        int ready[2], done[2], r, st;
        pid_t init, prog;
        char c;

        CHILD_CHECK(pipe2(ready, O_CLOEXEC) == 0 && pipe2(done, O_CLOEXEC) == 0, 1);
        init = fork();
        CHILD_CHECK(init >= 0, 2);
        if (init == 0) {
                uid_t ru, eu, su;
                gid_t rg, eg, sg;
                r = cred_drop_apart(INIT_ID, INIT_ID, SANDBOX_ID, SANDBOX_ID, true);
                if (r < 0) {
                        errno = -r;
                        CHILD_FAIL(10, "cred_drop_apart");
                }
                CHILD_CHECK(getresuid(&ru, &eu, &su) == 0 && ru == INIT_ID && eu == SANDBOX_ID && su == INIT_ID, 11);
                CHILD_CHECK(getresgid(&rg, &eg, &sg) == 0 && rg == INIT_ID && eg == SANDBOX_ID && sg == INIT_ID, 12);
                CHILD_CHECK(!cred_has_any_capability(), 13);
                CHILD_CHECK(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, 14);
                CHILD_CHECK(write(ready[1], "i", 1) == 1, 15);
                /* the program's pid, once it has dropped its privileges */
                CHILD_CHECK(read(done[0], &prog, sizeof prog) == (ssize_t)sizeof prog, 16);
                CHILD_CHECK(kill(prog, 0) == 0, 17);
                CHILD_CHECK(kill(prog, SIGKILL) == 0, 18);
                _exit(0);
        }
        CHILD_CHECK(read(ready[0], &c, 1) == 1, 3);
        prog = fork();
        CHILD_CHECK(prog >= 0, 4);
        if (prog == 0) {
                siginfo_t si;
                struct rlimit lim = { 0, 0 };
                r = cred_drop(SANDBOX_ID, SANDBOX_ID, true);
                if (r < 0) {
                        errno = -r;
                        CHILD_FAIL(20, "cred_drop");
                }
                memset(&si, 0, sizeof si);
                si.si_code = SI_QUEUE;
                CHILD_CHECK_ERRNO(kill(init, SIGTERM), EPERM, 21);
                CHILD_CHECK_ERRNO(syscall(SYS_rt_sigqueueinfo, init, SIGTERM, &si), EPERM, 22);
                CHILD_CHECK_ERRNO(syscall(SYS_prlimit64, init, RLIMIT_CPU, &lim, NULL), EPERM, 23);
                CHILD_CHECK_ERRNO(syscall(SYS_prlimit64, init, RLIMIT_CPU, NULL, &lim), EPERM, 24);
                prog = getpid();
                CHILD_CHECK(write(done[1], &prog, sizeof prog) == (ssize_t)sizeof prog, 25);
                for (;;)
                        pause(); /* until the "init" kills it */
        }
        st = wait_child(prog, 5000);
        if (st < 0 || !WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
                CHILD_FAIL(5, "the program: status 0x%x (expected SIGKILL from the init)", st);
        st = wait_child(init, 5000);
        CHILD_CHECK(st == 0, 6);
        return 0;
}

static void test_drop_apart_keeps_init_out_of_reach(void **state) {
        SKIP_UNLESS_ROOT();
        assert_status_exited(run_in_child(apart_child, NULL, 10000), 0);
}

static void test_root_has_capabilities(void **state) {
        SKIP_UNLESS_ROOT();
        /* the predicate can say yes */
        assert_true(cred_has_any_capability());
}

/* The unprivileged path: in a user namespace the process keeps its uid
 * (1000 inside, mapped onto ours) and would keep the full capability set the
 * namespace gave it, since no uid transition clears it; cred_drop must clear
 * it explicitly. */
static void userns_case(bool try_setgroups) {
        int go[2], ready[2], r;
        pid_t pid;
        char c;

        assert_int_equal(pipe2(go, O_CLOEXEC), 0);
        assert_int_equal(pipe2(ready, O_CLOEXEC), 0);
        pid = ns_clone(CLONE_NEWUSER);
        assert_true(pid >= 0);
        if (pid == 0) {
                child_reset_signals();
                close(go[1]);
                close(ready[0]);
                CHILD_CHECK(write(ready[1], "r", 1) == 1, 1);
                if (read(go[0], &c, 1) != 1)
                        _exit(2);
                CHILD_CHECK(getuid() == 1000, 3);
                /* full capabilities in the new namespace, before the drop */
                CHILD_CHECK(cred_has_any_capability(), 4);
                r = cred_drop(1000, 1000, try_setgroups);
                if (try_setgroups) {
                        /* setgroups is denied in this namespace */
                        CHILD_CHECK(r == -EPERM, 5);
                        _exit(0);
                }
                if (r < 0) {
                        errno = -r;
                        CHILD_FAIL(6, "cred_drop");
                }
                CHILD_CHECK(!cred_has_any_capability(), 7);
                CHILD_CHECK(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, 8);
                CHILD_CHECK(prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0) == 0, 9);
                /* the capabilities cannot be taken back ... */
                struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
                struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = { 0 };
                data[0].effective = data[0].permitted = 1u << CAP_SYS_ADMIN;
                CHILD_CHECK_ERRNO(syscall(SYS_capset, &hdr, data), EPERM, 10);
                /* ... so nothing needing them works */
                CHILD_CHECK_ERRNO(syscall(SYS_unshare, CLONE_NEWNS), EPERM, 11);
                _exit(0);
        }
        close(go[0]);
        close(ready[1]);
        assert_int_equal(read(ready[0], &c, 1), 1);
        close(ready[0]);
        r = ns_write_id_maps(pid, 1000, geteuid(), 1000, getegid(), true);
        assert_int_equal(write(go[1], "g", 1), 1);
        close(go[1]);
        if (r < 0) {
                wait_child(pid, 5000);
                fail_msg("ns_write_id_maps: %s", strerror(-r));
        }
        assert_status_exited(wait_child(pid, 5000), 0);
}

static void test_drop_in_user_namespace(void **state) {
        userns_case(false);
}

static void test_drop_setgroups_denied(void **state) {
        userns_case(true);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_root_has_capabilities),
                cmocka_unit_test(test_drop_as_root),
                cmocka_unit_test(test_drop_uid_and_gid_differ),
                cmocka_unit_test(test_drop_apart_keeps_init_out_of_reach),
                cmocka_unit_test(test_drop_in_user_namespace),
                cmocka_unit_test(test_drop_setgroups_denied),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
