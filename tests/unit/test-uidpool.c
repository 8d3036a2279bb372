/* SPDX-License-Identifier: MIT */
#include "test-helpers.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "uidpool.h"

#define BASE 1900100000u

struct fixture {
        char dir[64];
        pid_t child;
        int to_child[2], from_child[2];
};

static int setup(void **state) {
        struct fixture *f = calloc(1, sizeof *f);
        if (!f)
                return -1;
        snprintf(f->dir, sizeof f->dir, "/tmp/pyexec-test-uidpool-XXXXXX");
        if (!mkdtemp(f->dir)) {
                free(f);
                return -1;
        }
        f->child = -1;
        f->to_child[0] = f->to_child[1] = f->from_child[0] = f->from_child[1] = -1;
        *state = f;
        return 0;
}

static int teardown(void **state) {
        struct fixture *f = *state;
        char cmd[128];
        if (f->child > 0) {
                kill(f->child, SIGKILL);
                waitpid(f->child, NULL, 0);
        }
        for (int i = 0; i < 2; i++) {
                if (f->to_child[i] >= 0)
                        close(f->to_child[i]);
                if (f->from_child[i] >= 0)
                        close(f->from_child[i]);
        }
        snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", f->dir);
        (void)!system(cmd);
        free(f);
        return 0;
}

static void acquire_ok(const char *dir, unsigned count, struct uidpool_slot *s) {
        int r = uidpool_acquire(dir, BASE, count, s);
        if (r < 0)
                fail_msg("uidpool_acquire: %s", strerror(-r));
        assert_true(s->fd >= 0);
        assert_true(s->index < count);
        assert_int_equal(s->uid, BASE + s->index);
        /* the init's id: the same slot in the block above */
        assert_int_equal(s->init_uid, BASE + count + s->index);
}

static void test_two_acquires_differ(void **state) {
        struct fixture *f = *state;
        struct uidpool_slot a, b;
        char lock[128];
        struct stat st;

        acquire_ok(f->dir, 8, &a);
        acquire_ok(f->dir, 8, &b);
        assert_int_not_equal(a.index, b.index);
        assert_int_not_equal(a.uid, b.uid);
        assert_int_not_equal(a.fd, b.fd);
        /* the lock file, private to root */
        snprintf(lock, sizeof lock, "%s/uid-slots.lock", f->dir);
        assert_int_equal(stat(lock, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(st.st_mode & 0777, 0600);
        /* the holding fd does not leak into executed programs */
        assert_true(fcntl(a.fd, F_GETFD) & FD_CLOEXEC);
        uidpool_release(&a);
        uidpool_release(&b);
        assert_int_equal(a.fd, -1);
        assert_int_equal(b.fd, -1);
        uidpool_release(&a); /* twice is harmless */
}

static void test_creates_lock_dir(void **state) {
        struct fixture *f = *state;
        struct uidpool_slot a;
        char sub[128];
        struct stat st;

        snprintf(sub, sizeof sub, "%s/run", f->dir);
        acquire_ok(sub, 4, &a);
        assert_int_equal(stat(sub, &st), 0);
        assert_true(S_ISDIR(st.st_mode));
        assert_int_equal(st.st_mode & 0777, 0700);
        uidpool_release(&a);
}

static void test_exhaustion_and_release(void **state) {
        struct fixture *f = *state;
        struct uidpool_slot a, b, c = { .fd = -7, .index = 77, .uid = 77 };

        acquire_ok(f->dir, 2, &a);
        acquire_ok(f->dir, 2, &b);
        assert_int_not_equal(a.index, b.index);
        assert_int_equal(uidpool_acquire(f->dir, BASE, 2, &c), -EAGAIN);
        /* untouched on failure */
        assert_int_equal(c.fd, -7);
        assert_int_equal(c.index, 77);

        /* release one: exactly that slot comes back */
        unsigned freed = a.index;
        uidpool_release(&a);
        acquire_ok(f->dir, 2, &c);
        assert_int_equal(c.index, freed);
        assert_int_equal(uidpool_acquire(f->dir, BASE, 2, &a), -EAGAIN);
        uidpool_release(&b);
        uidpool_release(&c);

        /* all free again: both can be taken */
        acquire_ok(f->dir, 2, &a);
        acquire_ok(f->dir, 2, &b);
        uidpool_release(&a);
        uidpool_release(&b);
}

static void test_all_slots_distinct(void **state) {
        struct fixture *f = *state;
        struct uidpool_slot s[16];
        bool seen[16] = { 0 };

        for (int i = 0; i < 16; i++) {
                acquire_ok(f->dir, 16, &s[i]);
                assert_false(seen[s[i].index]);
                seen[s[i].index] = true;
        }
        assert_int_equal(uidpool_acquire(f->dir, BASE, 16, &(struct uidpool_slot){ 0 }), -EAGAIN);
        for (int i = 0; i < 16; i++)
                uidpool_release(&s[i]);
}

/* Fork a child that takes a slot, reports its index, and holds it until
 * told to go or killed. Called before the parent holds anything, so the
 * child inherits no lock of ours. */
static unsigned start_holder(struct fixture *f, unsigned count) {
        unsigned idx = 0;
        assert_int_equal(pipe2(f->to_child, O_CLOEXEC), 0);
        assert_int_equal(pipe2(f->from_child, O_CLOEXEC), 0);
        f->child = test_fork();
        assert_true(f->child >= 0);
        if (f->child == 0) {
                struct uidpool_slot s;
                char c;
                close(f->to_child[1]);
                close(f->from_child[0]);
                if (uidpool_acquire(f->dir, BASE, count, &s) < 0)
                        _exit(1);
                if (write(f->from_child[1], &s.index, sizeof s.index) != sizeof s.index)
                        _exit(2);
                (void)!read(f->to_child[0], &c, 1);
                _exit(0);
        }
        close(f->to_child[0]);
        close(f->from_child[1]);
        f->to_child[0] = f->from_child[1] = -1;
        assert_int_equal(read(f->from_child[0], &idx, sizeof idx), sizeof idx);
        assert_true(idx < count);
        return idx;
}

static void test_slot_held_by_other_process(void **state) {
        struct fixture *f = *state;
        struct uidpool_slot a, b;
        unsigned held = start_holder(f, 2);

        /* the parent gets the other slot, never the child's */
        acquire_ok(f->dir, 2, &a);
        assert_int_not_equal(a.index, held);
        assert_int_equal(uidpool_acquire(f->dir, BASE, 2, &b), -EAGAIN);

        /* the child dies without releasing: the kernel drops its lock */
        kill(f->child, SIGKILL);
        assert_status_signaled(wait_child(f->child, 2000), SIGKILL);
        f->child = -1;
        acquire_ok(f->dir, 2, &b);
        assert_int_equal(b.index, held);
        uidpool_release(&a);
        uidpool_release(&b);
}

static void test_slot_held_by_exited_process(void **state) {
        struct fixture *f = *state;
        struct uidpool_slot a;
        unsigned held = start_holder(f, 1);

        assert_int_equal(held, 0);
        assert_int_equal(uidpool_acquire(f->dir, BASE, 1, &a), -EAGAIN);
        /* a normal exit releases it too */
        assert_int_equal(write(f->to_child[1], "x", 1), 1);
        assert_status_exited(wait_child(f->child, 2000), 0);
        f->child = -1;
        acquire_ok(f->dir, 1, &a);
        assert_int_equal(a.index, 0);
        uidpool_release(&a);
}

static void test_lock_dir_errors(void **state) {
        struct uidpool_slot a = { .fd = -7 };
        /* a lock directory that cannot be created */
        assert_int_equal(uidpool_acquire("/nonexistent-pyexec/uidpool", BASE, 4, &a), -ENOENT);
        assert_int_equal(a.fd, -7);
}

/* ---- uidpool_config ---- */

static void test_config(void **state) {
        uid_t base = 1;
        unsigned count = 1;

        unsetenv("PYEXEC_UID_BASE");
        unsetenv("PYEXEC_UID_COUNT");
        assert_int_equal(uidpool_config(&base, &count), 0);
        assert_int_equal(base, UIDPOOL_DEFAULT_BASE);
        assert_int_equal(count, UIDPOOL_DEFAULT_COUNT);

        setenv("PYEXEC_UID_BASE", "200000", 1);
        setenv("PYEXEC_UID_COUNT", "16", 1);
        assert_int_equal(uidpool_config(&base, &count), 0);
        assert_int_equal(base, 200000);
        assert_int_equal(count, 16);

        static const char *const bad_base[] = { "0", "999", "abc", "", "-5", "4000000001", " 200000" };
        for (size_t i = 0; i < ELEMENTSOF(bad_base); i++) {
                base = 1;
                count = 1;
                setenv("PYEXEC_UID_BASE", bad_base[i], 1);
                if (uidpool_config(&base, &count) != -EINVAL)
                        fail_msg("PYEXEC_UID_BASE='%s' accepted", bad_base[i]);
                assert_int_equal(base, 1);
                assert_int_equal(count, 1);
        }
        setenv("PYEXEC_UID_BASE", "200000", 1);
        static const char *const bad_count[] = { "0", "65537", "x", "" };
        for (size_t i = 0; i < ELEMENTSOF(bad_count); i++) {
                setenv("PYEXEC_UID_COUNT", bad_count[i], 1);
                if (uidpool_config(&base, &count) != -EINVAL)
                        fail_msg("PYEXEC_UID_COUNT='%s' accepted", bad_count[i]);
        }
        /* the pool may not reach 4294967294 (the overflow id) or -1 */
        setenv("PYEXEC_UID_BASE", "4000000000", 1);
        setenv("PYEXEC_UID_COUNT", "65536", 1);
        assert_int_equal(uidpool_config(&base, &count), 0);
        assert_int_equal(base, 4000000000u);
        unsetenv("PYEXEC_UID_BASE");
        unsetenv("PYEXEC_UID_COUNT");
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
        const struct CMUnitTest tests[] = {
                T(test_two_acquires_differ),
                T(test_creates_lock_dir),
                T(test_exhaustion_and_release),
                T(test_all_slots_distinct),
                T(test_slot_held_by_other_process),
                T(test_slot_held_by_exited_process),
                cmocka_unit_test(test_lock_dir_errors),
                cmocka_unit_test(test_config),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
