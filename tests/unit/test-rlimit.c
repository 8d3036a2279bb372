/* SPDX-License-Identifier: MIT */
#include "test-helpers.h"

#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/resource.h>

#include "rlimit.h"

static char tmpdir[64];

static int group_setup(void **state) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/pyexec-test-rlimit-XXXXXX");
        return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf -- '%s'", tmpdir);
        return system(cmd) == 0 ? 0 : -1;
}

/* ---- the table ---- */

static const struct rlimit_value *find(const struct rlimit_value *v, int n, int res) {
        for (int i = 0; i < n; i++)
                if (v[i].resource == res)
                        return &v[i];
        return NULL;
}

static void test_plan_table(void **state) {
        struct rlimit_plan p = { .cpu_ms = 2500, .file_size = 16u << 20, .open_files = 256 };
        struct rlimit_value v[RLIMIT_PLAN_MAX];
        int n = -1;

        memset(v, 0xa5, sizeof v);
        rlimit_plan_values(&p, v, &n);
        assert_int_equal(n, 9);
        /* application order, exactly */
        assert_int_equal(v[0].resource, RLIMIT_CORE);
        assert_int_equal(v[0].lim.rlim_cur, 0);
        assert_int_equal(v[0].lim.rlim_max, 0);
        assert_int_equal(v[1].resource, RLIMIT_CPU);
        assert_int_equal(v[1].lim.rlim_cur, 3); /* 2.5 s rounded up */
        assert_int_equal(v[1].lim.rlim_max, 4); /* SIGKILL one second later */
        assert_int_equal(v[2].resource, RLIMIT_FSIZE);
        assert_int_equal(v[2].lim.rlim_cur, 16u << 20);
        assert_int_equal(v[2].lim.rlim_max, 16u << 20);
        assert_int_equal(v[3].resource, RLIMIT_NOFILE);
        assert_int_equal(v[3].lim.rlim_cur, 256);
        assert_int_equal(v[3].lim.rlim_max, 256);
        assert_int_equal(v[4].resource, RLIMIT_MSGQUEUE);
        assert_int_equal(v[4].lim.rlim_cur, 0);
        assert_int_equal(v[4].lim.rlim_max, 0);
        /* no real-time scheduling, no raised priority, default locked memory */
        assert_int_equal(v[5].resource, RLIMIT_RTPRIO);
        assert_int_equal(v[5].lim.rlim_max, 0);
        assert_int_equal(v[6].resource, RLIMIT_NICE);
        assert_int_equal(v[6].lim.rlim_max, 0);
        assert_int_equal(v[7].resource, RLIMIT_MEMLOCK);
        assert_int_equal(v[7].lim.rlim_max, 64 * 1024);
        /* queued signals are counted per host user: a few per run */
        assert_int_equal(v[8].resource, RLIMIT_SIGPENDING);
        assert_int_equal(v[8].lim.rlim_cur, 256);
        assert_int_equal(v[8].lim.rlim_max, 256);
        /* AS and NPROC are left alone when a cgroup does the job */
        assert_null(find(v, n, RLIMIT_AS));
        assert_null(find(v, n, RLIMIT_NPROC));
}

/* A limit above the caller's own hard limit is clamped to it: raising one
 * needs privilege, and the unprivileged path must still start. */
static void test_plan_clamps_to_own_hard_limit(void **state) {
        pid_t pid = fork();
        int status;

        assert_true(pid >= 0);
        if (pid == 0) {
                struct rlimit low = { 100, 100 };
                struct rlimit_plan p = { .cpu_ms = 1000, .file_size = 1 << 20, .open_files = 256 };
                struct rlimit_value v[RLIMIT_PLAN_MAX];
                const struct rlimit_value *x;
                int n;
                if (setrlimit(RLIMIT_NOFILE, &low) < 0)
                        _exit(10);
                rlimit_plan_values(&p, v, &n);
                x = find(v, n, RLIMIT_NOFILE);
                if (!x || x->lim.rlim_cur != 100 || x->lim.rlim_max != 100)
                        _exit(11);
                if (rlimit_apply(v, n) < 0)
                        _exit(12);
                _exit(0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_plan_fallbacks(void **state) {
        struct rlimit_plan p = { .cpu_ms = 1000, .file_size = 1, .open_files = 16,
                                 .address_space = 256ull << 20, .nproc = 64 };
        struct rlimit_value v[RLIMIT_PLAN_MAX];
        const struct rlimit_value *x;
        int n = -1;

        rlimit_plan_values(&p, v, &n);
        assert_int_equal(n, 11);
        assert_int_equal(v[9].resource, RLIMIT_AS);
        assert_int_equal(v[9].lim.rlim_cur, 256ull << 20);
        assert_int_equal(v[9].lim.rlim_max, 256ull << 20);
        assert_int_equal(v[10].resource, RLIMIT_NPROC);
        assert_int_equal(v[10].lim.rlim_cur, 64);
        assert_int_equal(v[10].lim.rlim_max, 64);

        p.nproc = 0;
        rlimit_plan_values(&p, v, &n);
        assert_int_equal(n, 10);
        assert_non_null(x = find(v, n, RLIMIT_AS));
        assert_null(find(v, n, RLIMIT_NPROC));

        p.nproc = 5;
        p.address_space = 0;
        rlimit_plan_values(&p, v, &n);
        assert_int_equal(n, 10);
        assert_null(find(v, n, RLIMIT_AS));
        assert_non_null(x = find(v, n, RLIMIT_NPROC));
        assert_int_equal(x->lim.rlim_cur, 5);
}

static void test_plan_cpu_rounding(void **state) {
        static const struct {
                uint64_t ms, soft;
        } cases[] = {
                { 1, 1 }, { 999, 1 }, { 1000, 1 }, { 1001, 2 }, { 1999, 2 }, { 2000, 2 }, { 10000, 10 }, { 600000, 600 },
        };
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                struct rlimit_plan p = { .cpu_ms = cases[i].ms, .file_size = 1, .open_files = 16 };
                struct rlimit_value v[RLIMIT_PLAN_MAX];
                const struct rlimit_value *c;
                int n;
                rlimit_plan_values(&p, v, &n);
                assert_non_null(c = find(v, n, RLIMIT_CPU));
                if (c->lim.rlim_cur != cases[i].soft || c->lim.rlim_max != cases[i].soft + 1)
                        fail_msg("cpu_ms %llu: got %llu/%llu, expected %llu/%llu", (unsigned long long)cases[i].ms,
                                 (unsigned long long)c->lim.rlim_cur, (unsigned long long)c->lim.rlim_max,
                                 (unsigned long long)cases[i].soft, (unsigned long long)cases[i].soft + 1);
        }
}

static void test_names(void **state) {
        assert_string_equal(rlimit_name(RLIMIT_CPU), "RLIMIT_CPU");
        assert_string_equal(rlimit_name(RLIMIT_CORE), "RLIMIT_CORE");
        assert_string_equal(rlimit_name(RLIMIT_FSIZE), "RLIMIT_FSIZE");
        assert_string_equal(rlimit_name(RLIMIT_NOFILE), "RLIMIT_NOFILE");
        assert_string_equal(rlimit_name(RLIMIT_MSGQUEUE), "RLIMIT_MSGQUEUE");
        assert_string_equal(rlimit_name(RLIMIT_AS), "RLIMIT_AS");
        assert_string_equal(rlimit_name(RLIMIT_NPROC), "RLIMIT_NPROC");
        assert_string_equal(rlimit_name(RLIMIT_SIGPENDING), "RLIMIT_SIGPENDING");
        assert_string_equal(rlimit_name(RLIMIT_STACK), "RLIMIT_?");
}

/* ---- against the kernel ---- */

/* Apply the plan; exit 90 on failure. */
static void apply_plan(const struct rlimit_plan *p) {
        struct rlimit_value v[RLIMIT_PLAN_MAX];
        int n, r;
        rlimit_plan_values(p, v, &n);
        r = rlimit_apply(v, n);
        if (r < 0) {
                errno = -r;
                CHILD_FAIL(90, "rlimit_apply");
        }
}

static int readback_child(void *arg) {
        struct rlimit_plan p = { .cpu_ms = 2500, .file_size = 12345, .open_files = 100,
                                 .address_space = 1ull << 40, .nproc = 4000 };
        struct rlimit_value v[RLIMIT_PLAN_MAX];
        int n;

        apply_plan(&p);
        rlimit_plan_values(&p, v, &n);
        for (int i = 0; i < n; i++) {
                struct rlimit got;
                CHILD_CHECK(getrlimit((__rlimit_resource_t)v[i].resource, &got) == 0, 10 + i);
                if (got.rlim_cur != v[i].lim.rlim_cur || got.rlim_max != v[i].lim.rlim_max)
                        CHILD_FAIL(20 + i, "%s is %llu/%llu", rlimit_name(v[i].resource),
                                   (unsigned long long)got.rlim_cur, (unsigned long long)got.rlim_max);
        }
        return 0;
}

static void test_apply_reads_back(void **state) {
        assert_status_exited(run_in_child(readback_child, NULL, 5000), 0);
}

static int apply_error_child(void *arg) {
        struct rlimit_value v[2] = {
                { RLIMIT_CORE, { 0, 0 } },
                { RLIMIT_NOFILE, { 20, 10 } }, /* soft above hard */
        };
        CHILD_CHECK(rlimit_apply(v, 2) == -EINVAL, 1);
        return 0;
}

static void test_apply_reports_errno(void **state) {
        assert_status_exited(run_in_child(apply_error_child, NULL, 5000), 0);
}

static int fsize_child(void *arg) {
        struct rlimit_plan p = { .cpu_ms = 10000, .file_size = 4096, .open_files = 256 };
        char path[128], block[8192];
        int fd;

        memset(block, 'f', sizeof block);
        snprintf(path, sizeof path, "%s/fsize", tmpdir);
        /* CPython ignores SIGXFSZ, so the write fails instead of killing */
        signal(SIGXFSZ, SIG_IGN);
        apply_plan(&p);

        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        CHILD_CHECK(fd >= 0, 1);
        CHILD_CHECK(write(fd, block, 4000) == 4000, 2);
        /* a write that straddles the limit is cut short at it */
        CHILD_CHECK(write(fd, block, 200) == 96, 3);
        /* at the limit: EFBIG */
        CHILD_CHECK_ERRNO(write(fd, block, 1), EFBIG, 4);
        CHILD_CHECK_ERRNO(pwrite(fd, block, 1, 10000), EFBIG, 5);
        CHILD_CHECK_ERRNO(ftruncate(fd, 4097), EFBIG, 6);
        close(fd);
        return 0;
}

static void test_fsize_efbig(void **state) {
        assert_status_exited(run_in_child(fsize_child, NULL, 5000), 0);
}

static int fsize_signal_child(void *arg) {
        struct rlimit_plan p = { .cpu_ms = 10000, .file_size = 10, .open_files = 256 };
        char path[128];
        int fd;

        snprintf(path, sizeof path, "%s/fsize-sig", tmpdir);
        signal(SIGXFSZ, SIG_DFL);
        apply_plan(&p);
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        CHILD_CHECK(fd >= 0, 1);
        (void)!write(fd, "0123456789abc", 13);
        (void)!write(fd, "x", 1); /* past the limit: SIGXFSZ */
        return 2;
}

static void test_fsize_default_signal(void **state) {
        assert_status_signaled(run_in_child(fsize_signal_child, NULL, 5000), SIGXFSZ);
}

static int nofile_child(void *arg) {
        struct rlimit_plan p = { .cpu_ms = 10000, .file_size = 1 << 20, .open_files = 16 };
        int fd = -1, last = -1;

        apply_plan(&p);
        for (int i = 0; i < 64; i++) {
                fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        break;
                last = fd;
        }
        CHILD_CHECK_ERRNO(fd, EMFILE, 1);
        /* every descriptor below the limit is in use, none at or above it */
        for (int i = 0; i < 16; i++)
                CHILD_CHECK(fcntl(i, F_GETFD) >= 0, 2);
        CHILD_CHECK(last <= 15, 3);
        CHILD_CHECK_ERRNO(dup(0), EMFILE, 4);
        CHILD_CHECK_ERRNO(fcntl(0, F_DUPFD, 3), EMFILE, 5);
        CHILD_CHECK_ERRNO(dup2(0, 16), EBADF, 6);
        /* one freed slot can be reused */
        CHILD_CHECK(close(last) == 0, 7);
        CHILD_CHECK(open("/dev/null", O_RDONLY | O_CLOEXEC) == last, 8);
        return 0;
}

static void test_nofile_emfile(void **state) {
        assert_status_exited(run_in_child(nofile_child, NULL, 5000), 0);
}

/* Current virtual size: RLIMIT_AS is absolute, and an ASAN build has
 * terabytes of shadow reserved. */
static uint64_t vm_size_bytes(void) {
        char line[256];
        uint64_t kb = 0;
        FILE *f = fopen("/proc/self/status", "re");
        if (!f)
                return 0;
        while (fgets(line, sizeof line, f))
                if (sscanf(line, "VmSize: %" SCNu64 " kB", &kb) == 1)
                        break;
        fclose(f);
        return kb * 1024;
}

static int as_child(void *arg) {
        uint64_t base = vm_size_bytes();
        struct rlimit_plan p = { .cpu_ms = 10000, .file_size = 1 << 20, .open_files = 256,
                                 .address_space = base + (64ull << 20) };
        void *m;

        CHILD_CHECK(base > 0, 1);
        apply_plan(&p);
        /* well inside: works */
        m = mmap(NULL, 8 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHILD_CHECK(m != MAP_FAILED, 2);
        munmap(m, 8 << 20);
        /* past the limit: ENOMEM, even without touching the pages */
        m = mmap(NULL, 256 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHILD_CHECK(m == MAP_FAILED && errno == ENOMEM, 3);
        m = mmap(NULL, 256 << 20, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        CHILD_CHECK(m == MAP_FAILED && errno == ENOMEM, 4);
#if !TEST_ASAN
        /* ASAN's allocator aborts instead of returning NULL */
        errno = 0;
        void *big = malloc(256 << 20);
        CHILD_CHECK(big == NULL && errno == ENOMEM, 5);
        void *small = malloc(1 << 20);
        CHILD_CHECK(small != NULL, 6);
        free(small);
#endif
        return 0;
}

static void test_as_enomem(void **state) {
        assert_status_exited(run_in_child(as_child, NULL, 5000), 0);
}

static int cpu_child(void *arg) {
        struct rlimit_plan p = { .cpu_ms = 1000, .file_size = 1 << 20, .open_files = 256 };
        volatile uint64_t x = 0;

        apply_plan(&p);
        for (;;)
                x++;
        return 1;
}

/* Like wait_child(), also returning the child's CPU time in ms. */
static int wait_child_cpu(pid_t pid, long timeout_ms, long *ret_cpu_ms) {
        struct rusage ru;
        int st;
        for (long waited = 0;; waited += 5) {
                pid_t r = wait4(pid, &st, WNOHANG, &ru);
                if (r == pid) {
                        *ret_cpu_ms = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000L +
                                      (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000L;
                        return st;
                }
                if (r < 0)
                        return -errno;
                if (waited >= timeout_ms) {
                        kill(pid, SIGKILL);
                        (void)waitpid(pid, &st, 0);
                        return -ETIME;
                }
                sleep_ms(5);
        }
}

static void test_cpu_sigxcpu(void **state) {
        long cpu_ms = -1;
        int st;
        pid_t pid = test_fork();

        assert_true(pid >= 0);
        if (pid == 0)
                _exit(cpu_child(NULL));
        /* 1 s of CPU time, then SIGXCPU; the wall limit allows for a busy
         * machine, the CPU time must be what the limit says */
        st = wait_child_cpu(pid, 8000, &cpu_ms);
        assert_status_signaled(st, SIGXCPU);
        if (cpu_ms < 900 || cpu_ms > 2000)
                fail_msg("killed after %ld ms of CPU time, expected about 1000", cpu_ms);
}

static int cpu_hard_child(void *arg) {
        struct rlimit_plan p = { .cpu_ms = 1000, .file_size = 1 << 20, .open_files = 256 };
        volatile uint64_t x = 0;

        /* a program that ignores SIGXCPU dies at the hard limit, 1 s later */
        signal(SIGXCPU, SIG_IGN);
        apply_plan(&p);
        for (;;)
                x++;
        return 1;
}

static void test_cpu_hard_limit_kills(void **state) {
        long cpu_ms = -1;
        int st;
        pid_t pid = test_fork();

        assert_true(pid >= 0);
        if (pid == 0)
                _exit(cpu_hard_child(NULL));
        st = wait_child_cpu(pid, 9000, &cpu_ms);
        assert_status_signaled(st, SIGKILL);
        /* Past the 1 s soft limit (whose SIGXCPU is ignored), by the 2 s hard
         * one. rusage's tick-sampled times can read a few hundred ms low
         * under load, so the bounds only separate the two limits. */
        if (cpu_ms < 1200 || cpu_ms > 3500)
                fail_msg("killed after %ld ms of CPU time, expected about 2000", cpu_ms);
}

struct nproc_arg {
        uid_t uid;
        unsigned limit;
};

static int nproc_child(void *arg) {
        const struct nproc_arg *a = arg;
        struct rlimit_plan p = { .cpu_ms = 10000, .file_size = 1 << 20, .open_files = 256, .nproc = a->limit };
        pid_t kids[16];
        unsigned n = 0;
        pid_t pid = 0;

        apply_plan(&p);
        /* root ignores RLIMIT_NPROC; the sandbox user does not */
        CHILD_CHECK(setgroups(0, NULL) == 0, 1);
        CHILD_CHECK(setresgid(a->uid, a->uid, a->uid) == 0, 2);
        CHILD_CHECK(setresuid(a->uid, a->uid, a->uid) == 0, 3);
        while (n < ELEMENTSOF(kids)) {
                pid = fork();
                if (pid < 0)
                        break;
                if (pid == 0) {
                        pause();
                        _exit(0);
                }
                kids[n++] = pid;
        }
        int err = errno;
        for (unsigned i = 0; i < n; i++) {
                kill(kids[i], SIGKILL);
                waitpid(kids[i], NULL, 0);
        }
        errno = err;
        CHILD_CHECK(pid < 0 && errno == EAGAIN, 4);
        /* this process counts too: limit - 1 children */
        if (n != a->limit - 1)
                CHILD_FAIL(5, "forked %u children, expected %u", n, a->limit - 1);
        return 0;
}

static void test_nproc_eagain(void **state) {
        /* a uid no other process uses, outside the default uid pool */
        struct nproc_arg a = { .uid = 1900005000 + (uid_t)(getpid() % 1000), .limit = 4 };
        SKIP_UNLESS_ROOT();
        assert_status_exited(run_in_child(nproc_child, &a, 5000), 0);
}

/* Queued signals are counted per user: with the plan, a program queues at
 * most RLIMIT_SIGPENDING (256) and then gets EAGAIN; without it (the
 * control), the same loop queues far more. Returns how many it queued. */
static int sigqueue_count(bool planned) {
        struct rlimit_plan p = { .cpu_ms = 10000, .file_size = 1 << 20, .open_files = 64 };
        union sigval val = { .sival_int = 1 };
        sigset_t set;
        int n = 0;

        if (planned)
                apply_plan(&p);
        sigemptyset(&set);
        sigaddset(&set, SIGRTMIN);
        if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
                return -1;
        while (n < 2000 && sigqueue(getpid(), SIGRTMIN, val) == 0)
                n++;
        return n < 2000 && errno != EAGAIN ? -1 : n;
}

static int sigpending_child(void *arg) {
        int n = sigqueue_count(arg != NULL);
        if (arg == NULL) /* control: far more than the plan's limit */
                CHILD_CHECK(n > 256, 1);
        else
                CHILD_CHECK(n >= 0 && n <= 256 && errno == EAGAIN, 2);
        return 0;
}

static void test_sigpending_eagain(void **state) {
        assert_status_exited(run_in_child(sigpending_child, NULL, 5000), 0);
        assert_status_exited(run_in_child(sigpending_child, (void *)1, 5000), 0);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_plan_table),
                cmocka_unit_test(test_plan_fallbacks),
                cmocka_unit_test(test_plan_clamps_to_own_hard_limit),
                cmocka_unit_test(test_plan_cpu_rounding),
                cmocka_unit_test(test_names),
                cmocka_unit_test(test_apply_reads_back),
                cmocka_unit_test(test_apply_reports_errno),
                cmocka_unit_test(test_fsize_efbig),
                cmocka_unit_test(test_fsize_default_signal),
                cmocka_unit_test(test_nofile_emfile),
                cmocka_unit_test(test_as_enomem),
                cmocka_unit_test(test_cpu_sigxcpu),
                cmocka_unit_test(test_cpu_hard_limit_kills),
                cmocka_unit_test(test_nproc_eagain),
                cmocka_unit_test(test_sigpending_eagain),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
