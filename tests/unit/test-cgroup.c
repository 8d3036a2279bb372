/* SPDX-License-Identifier: MIT */
/*
 * cgroup runs against the real hierarchy. Needs root (write access to the
 * cgroup tree); each test creates its own run named after this process and
 * removes it in its teardown, whatever happened.
 */
#include "test-helpers.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <linux/magic.h>
#include <sys/wait.h>

#include "cgroup.h"
#include "util.h"

static struct cgroup_host host;
static bool host_ok;

struct fixture {
        char name[64];
        struct cgroup_run run;
        pid_t child;
        int go[2]; /* parent -> child: "you are attached, start" */
        int ready[2]; /* child -> parent: "I am running" */
};

static int group_setup(void **state) {
        if (geteuid() != 0)
                return 0;
        cgroup_host_detect(&host);
        host_ok = host.version != CGROUP_NONE;
        return 0;
}

static int group_teardown(void **state) {
        cgroup_host_done(&host);
        return 0;
}

static int setup(void **state) {
        static unsigned counter;
        struct fixture *f = calloc(1, sizeof *f);
        if (!f)
                return -1;
        snprintf(f->name, sizeof f->name, "unit-%d-%u", (int)getpid(), counter++);
        f->child = -1;
        f->go[0] = f->go[1] = f->ready[0] = f->ready[1] = -1;
        *state = f;
        return 0;
}

static void close_fd(int *fd) {
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

static void hugetlb_give_back(void);
static uint64_t huge_added;

static int teardown(void **state) {
        struct fixture *f = *state;
        if (f->child > 0) {
                kill(f->child, SIGKILL);
                waitpid(f->child, NULL, 0);
        }
        cgroup_run_destroy(&f->run);
        if (huge_added > 0)
                hugetlb_give_back();
        close_fd(&f->go[0]);
        close_fd(&f->go[1]);
        close_fd(&f->ready[0]);
        close_fd(&f->ready[1]);
        free(f);
        return 0;
}

#define REQUIRE_HOST()                                                                         \
        do {                                                                                   \
                SKIP_UNLESS_ROOT();                                                            \
                if (!host_ok)                                                                  \
                        fail_msg("no usable cgroup hierarchy as root: %s", host.reason);       \
        } while (0)

/* The directory holding a controller's files in this run. */
static const char *pids_dir(const struct cgroup_run *c) {
        return c->version == CGROUP_V2 ? c->memory : c->pids;
}

static const char *mem_limit_file(void) {
        return host.version == CGROUP_V2 ? "memory.max" : "memory.limit_in_bytes";
}

static char *read_cg(const char *dir, const char *file) {
        _cleanup_free_ char *p = strdup_printf("%s/%s", dir, file);
        char *s = NULL;
        int r;
        assert_non_null(p);
        r = read_small_file(p, &s);
        if (r < 0)
                fail_msg("reading %s: %s", p, strerror(-r));
        return s;
}

static void assert_cg_equal(const char *dir, const char *file, const char *want) {
        _cleanup_free_ char *s = read_cg(dir, file);
        if (strcmp(s, want) != 0)
                fail_msg("%s/%s is '%s', expected '%s'", dir, file, s, want);
}

static bool dir_exists(const char *p) {
        struct stat st;
        return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool procs_has(const char *dir, pid_t pid) {
        _cleanup_free_ char *p = strdup_printf("%s/cgroup.procs", dir);
        struct buf b;
        char want[32];
        bool found = false;

        if (read_file(p, 1 << 20, &b) < 0)
                return false;
        snprintf(want, sizeof want, "%d", (int)pid);
        for (char *line = b.data, *nl; line && *line; line = nl ? nl + 1 : NULL) {
                nl = strchr(line, '\n');
                if (nl)
                        *nl = 0;
                if (strcmp(line, want) == 0)
                        found = true;
        }
        buf_done(&b);
        return found;
}

/* Fork a child that waits for "go" (so it is attached before it does
 * anything), says "ready", then runs fn. */
static void start_child(struct fixture *f, int (*fn)(void)) {
        assert_int_equal(pipe2(f->go, O_CLOEXEC), 0);
        assert_int_equal(pipe2(f->ready, O_CLOEXEC), 0);
        f->child = test_fork();
        assert_true(f->child >= 0);
        if (f->child == 0) {
                char c;
                close(f->go[1]);
                close(f->ready[0]);
                if (read(f->go[0], &c, 1) != 1)
                        _exit(80);
                if (write(f->ready[1], "r", 1) != 1)
                        _exit(81);
                _exit(fn());
        }
        close_fd(&f->go[0]);
        close_fd(&f->ready[1]);
}

static void attach_and_go(struct fixture *f) {
        char c;
        int r = cgroup_run_attach(&f->run, f->child);
        if (r < 0)
                fail_msg("cgroup_run_attach: %s", strerror(-r));
        assert_int_equal(write(f->go[1], "g", 1), 1);
        assert_int_equal(read(f->ready[0], &c, 1), 1);
}

static int wait_fixture_child(struct fixture *f, long timeout_ms) {
        int st = wait_child(f->child, timeout_ms);
        f->child = -1;
        return st;
}

/* ---- host detection ---- */

static void test_version_names(void **state) {
        assert_string_equal(cgroup_version_to_string(CGROUP_NONE), "none");
        assert_string_equal(cgroup_version_to_string(CGROUP_V1), "v1");
        assert_string_equal(cgroup_version_to_string(CGROUP_V2), "v2");
        assert_string_equal(cgroup_version_to_string(_CGROUP_VERSION_MAX), "?");
}

/* Our own path in the v1 hierarchy carrying controller, from /proc. */
static char *own_v1_path(const char *controller) {
        char line[1024];
        char *ret = NULL;
        FILE *f = fopen("/proc/self/cgroup", "re");
        assert_non_null(f);
        while (!ret && fgets(line, sizeof line, f)) {
                char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
                if (!c2)
                        continue;
                *c2 = 0;
                c2[1 + strcspn(c2 + 1, "\n")] = 0;
                for (char *tok = strtok(c1 + 1, ","); tok; tok = strtok(NULL, ","))
                        if (strcmp(tok, controller) == 0)
                                ret = strdup(c2 + 1);
        }
        fclose(f);
        return ret;
}

static void assert_parent_below_own(const char *parent, const char *controller) {
        _cleanup_free_ char *own = own_v1_path(controller);
        _cleanup_free_ char *suffix = NULL;
        size_t pl, sl;

        assert_non_null(own);
        suffix = strcmp(own, "/") == 0 ? strdup("/pyexec") : strdup_printf("%s/pyexec", own);
        pl = strlen(parent);
        sl = strlen(suffix);
        if (pl < sl || strcmp(parent + pl - sl, suffix) != 0)
                fail_msg("%s parent %s is not <mount>%s", controller, parent, suffix);
}

/* What the host offers, found independently of cgroup.c: v2 when the
 * cgroup2 mount's root lists both memory and pids, else v1. */
static enum cgroup_version expected_version(void) {
        char line[4096], target[1024] = "", fstype[64];
        char ctl[512] = "";
        bool have_v2 = false;
        FILE *f = fopen("/proc/self/mountinfo", "re");

        assert_non_null(f);
        while (!have_v2 && fgets(line, sizeof line, f)) {
                const char *sep = strstr(line, " - ");
                if (sep && sscanf(sep + 3, "%63s", fstype) == 1 && strcmp(fstype, "cgroup2") == 0 &&
                    sscanf(line, "%*s %*s %*s %*s %1023s", target) == 1)
                        have_v2 = true;
        }
        fclose(f);
        if (have_v2) {
                _cleanup_free_ char *p = strdup_printf("%s/cgroup.controllers", target);
                FILE *c = fopen(p, "re");
                if (c) {
                        if (!fgets(ctl, sizeof ctl, c))
                                ctl[0] = 0;
                        fclose(c);
                }
                char *words = ctl;
                bool mem = false, pids = false;
                for (char *w = strtok(words, " \n"); w; w = strtok(NULL, " \n")) {
                        mem = mem || strcmp(w, "memory") == 0;
                        pids = pids || strcmp(w, "pids") == 0;
                }
                if (mem && pids)
                        return CGROUP_V2;
        }
        return CGROUP_V1;
}

static void test_host_detect(void **state) {
        _cleanup_free_ char *memsw = NULL;

        REQUIRE_HOST();
        /* this machine: v1 memory, pids and cpuacct; its v2 tree has no
         * controllers */
        assert_int_equal(host.version, expected_version());
        if (host.version == CGROUP_V2) {
                assert_string_equal(host.memory_parent, host.pids_parent);
                assert_string_equal(host.memory_parent, host.cpu_parent);
                assert_true(dir_exists(host.memory_parent));
                return;
        }
        assert_non_null(host.memory_parent);
        assert_non_null(host.pids_parent);
        assert_non_null(host.cpu_parent);
        assert_true(dir_exists(host.memory_parent));
        assert_true(dir_exists(host.pids_parent));
        assert_true(dir_exists(host.cpu_parent));
        /* each parent is in the hierarchy of its controller ... */
        _cleanup_free_ char *m = strdup_printf("%s/memory.limit_in_bytes", host.memory_parent);
        _cleanup_free_ char *p = strdup_printf("%s/pids.max", host.pids_parent);
        _cleanup_free_ char *c = strdup_printf("%s/cpuacct.usage", host.cpu_parent);
        assert_int_equal(access(m, F_OK), 0);
        assert_int_equal(access(p, F_OK), 0);
        assert_int_equal(access(c, F_OK), 0);
        /* ... below our own cgroup there */
        assert_parent_below_own(host.memory_parent, "memory");
        assert_parent_below_own(host.pids_parent, "pids");
        assert_parent_below_own(host.cpu_parent, "cpuacct");
        memsw = strdup_printf("%s/memory.memsw.limit_in_bytes", host.memory_parent);
        assert_int_equal(host.memsw, access(memsw, F_OK) == 0);
}

static void test_host_detect_idempotent(void **state) {
        struct cgroup_host again;
        REQUIRE_HOST();
        /* the parents exist now; detecting again reuses them */
        cgroup_host_detect(&again);
        assert_int_equal(again.version, host.version);
        assert_string_equal(again.memory_parent, host.memory_parent);
        if (host.version == CGROUP_V1) {
                assert_string_equal(again.pids_parent, host.pids_parent);
                assert_string_equal(again.cpu_parent, host.cpu_parent);
        }
        assert_int_equal(again.memsw, host.memsw);
        cgroup_host_done(&again);
        assert_null(again.memory_parent);
}

/* ---- one run ---- */

static void test_create_writes_limits(void **state) {
        struct fixture *f = *state;
        _cleanup_free_ char *procs = NULL;

        REQUIRE_HOST();
        assert_int_equal(cgroup_run_create(&host, f->name, 32ull << 20, 7, &f->run), 0);
        assert_int_equal(f->run.version, host.version);
        assert_non_null(f->run.memory);
        assert_true(dir_exists(f->run.memory));
        assert_cg_equal(f->run.memory, mem_limit_file(), "33554432");
        assert_cg_equal(pids_dir(&f->run), "pids.max", "7");
        if (host.version == CGROUP_V1) {
                _cleanup_free_ char *want = strdup_printf("%s/%s", host.memory_parent, f->name);
                assert_string_equal(f->run.memory, want);
                assert_non_null(f->run.pids);
                assert_non_null(f->run.cpu);
                assert_true(dir_exists(f->run.pids));
                assert_true(dir_exists(f->run.cpu));
                /* no swap: memory+swap limited to the same value */
                if (host.memsw)
                        assert_cg_equal(f->run.memory, "memory.memsw.limit_in_bytes", "33554432");
        } else {
                assert_cg_equal(f->run.memory, "memory.swap.max", "0");
        }
        /* nothing runs in it yet */
        procs = read_cg(f->run.memory, "cgroup.procs");
        assert_string_equal(procs, "");
}

static int child_pause(void) {
        pause();
        return 0;
}

static void test_attach(void **state) {
        struct fixture *f = *state;

        REQUIRE_HOST();
        assert_int_equal(cgroup_run_create(&host, f->name, 64ull << 20, 16, &f->run), 0);
        start_child(f, child_pause);
        attach_and_go(f);
        assert_true(procs_has(f->run.memory, f->child));
        if (host.version == CGROUP_V1) {
                assert_true(procs_has(f->run.pids, f->child));
                assert_true(procs_has(f->run.cpu, f->child));
        }
        assert_false(procs_has(f->run.memory, getpid()));
        /* a pid that does not exist cannot be attached */
        assert_int_equal(cgroup_run_attach(&f->run, 0x3ffffff0), -ESRCH);
}

static int child_fork_until_eagain(void) {
        pid_t kids[64];
        int n = 0, err = 0;

        while (n < (int)ELEMENTSOF(kids)) {
                pid_t p = fork();
                if (p < 0) {
                        err = errno;
                        break;
                }
                if (p == 0) {
                        pause();
                        _exit(0);
                }
                kids[n++] = p;
        }
        for (int i = 0; i < n; i++) {
                kill(kids[i], SIGKILL);
                waitpid(kids[i], NULL, 0);
        }
        if (err != EAGAIN) {
                errno = err;
                CHILD_FAIL(99, "fork stopped after %d children", n);
        }
        return n; /* how many forks the limit allowed */
}

static void test_pids_limit(void **state) {
        struct fixture *f = *state;

        REQUIRE_HOST();
        assert_int_equal(cgroup_run_create(&host, f->name, 64ull << 20, 5, &f->run), 0);
        start_child(f, child_fork_until_eagain);
        attach_and_go(f);
        /* 5 tasks: the child and exactly 4 of its own */
        assert_status_exited(wait_fixture_child(f, 5000), 4);
}

static int child_allocate(void) {
        /* 256 MiB, touched page by page, in 1 MiB maps (mmap, not malloc,
         * so an ASAN build behaves the same) */
        for (int i = 0; i < 256; i++) {
                char *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (p == MAP_FAILED)
                        return 2;
                memset(p, i | 1, 1 << 20);
        }
        return 3; /* survived */
}

static void test_memory_limit_oom(void **state) {
        struct fixture *f = *state;
        struct cgroup_stats s;
        const uint64_t limit = 32ull << 20;
        uint64_t ooms = 0;

        REQUIRE_HOST();
        assert_int_equal(cgroup_run_create(&host, f->name, limit, 16, &f->run), 0);
        start_child(f, child_allocate);
        attach_and_go(f);
        assert_status_signaled(wait_fixture_child(f, 8000), SIGKILL);

        memset(&s, 0xff, sizeof s);
        assert_int_equal(cgroup_run_oom_kills(&f->run, &ooms), 0);
        if (ooms < 1)
                fail_msg("cgroup_run_oom_kills = %llu", (unsigned long long)ooms);
        assert_int_equal(cgroup_run_stats(&f->run, &s), 0);
        if (s.oom_kills < 1)
                fail_msg("oom_kills = %llu", (unsigned long long)s.oom_kills);
        assert_int_equal(s.oom_kills, ooms);
        assert_true(s.have_peak);
        if (s.peak_bytes < limit / 2 || s.peak_bytes > limit + (1 << 20))
                fail_msg("peak %llu bytes for a %llu-byte limit", (unsigned long long)s.peak_bytes,
                         (unsigned long long)limit);
        /* the header: "the limit was reached at least once" */
        if (!s.memory_limit_hit)
                fail_msg("memory_limit_hit is false after an OOM kill at the limit (peak %llu, oom_kills %llu)",
                         (unsigned long long)s.peak_bytes, (unsigned long long)s.oom_kills);
}

static void test_stats_quiet_run(void **state) {
        struct fixture *f = *state;
        struct cgroup_stats s;
        uint64_t ooms = 4242;

        REQUIRE_HOST();
        assert_int_equal(cgroup_run_create(&host, f->name, 64ull << 20, 16, &f->run), 0);
        assert_int_equal(cgroup_run_oom_kills(&f->run, &ooms), 0);
        assert_int_equal(ooms, 0);
        memset(&s, 0xff, sizeof s);
        assert_int_equal(cgroup_run_stats(&f->run, &s), 0);
        assert_int_equal(s.oom_kills, 0);
        assert_false(s.memory_limit_hit);
        assert_true(s.have_cpu);
        assert_int_equal(s.cpu_ns, 0);
}

static int child_spin(void) {
        volatile uint64_t x = 0;
        for (;;)
                x++;
        return 0;
}

static void test_cpu_ns_grows_and_kill(void **state) {
        struct fixture *f = *state;
        struct cgroup_stats s;
        uint64_t t0 = 0, t1 = 0;

        REQUIRE_HOST();
        assert_int_equal(cgroup_run_create(&host, f->name, 64ull << 20, 16, &f->run), 0);
        start_child(f, child_spin);
        attach_and_go(f);
        assert_int_equal(cgroup_run_cpu_ns(&f->run, &t0), 0);
        /* the busy child adds CPU time: poll until 100 ms more have been
         * accounted (about 100 ms on an idle core; allow for a loaded
         * machine, but not for a counter that does not move) */
        for (int waited = 0; waited < 5000; waited += 20) {
                sleep_ms(20);
                assert_int_equal(cgroup_run_cpu_ns(&f->run, &t1), 0);
                assert_true(t1 >= t0);
                if (t1 - t0 >= 100000000ull)
                        break;
        }
        if (t1 < t0 + 100000000ull)
                fail_msg("cpu_ns grew by only %llu ns in 5 s of a busy child", (unsigned long long)(t1 - t0));

        /* kill takes every task of the run */
        assert_int_equal(cgroup_run_kill(&f->run), 0);
        assert_status_signaled(wait_fixture_child(f, 2000), SIGKILL);
        assert_int_equal(cgroup_run_stats(&f->run, &s), 0);
        assert_true(s.have_cpu);
        assert_true(s.cpu_ns >= t1);
}

static void test_unaccounted(void **state) {
        struct cgroup_run none = { .version = CGROUP_V1 };
        uint64_t v = 4242;
        assert_int_equal(cgroup_run_cpu_ns(&none, &v), -ENODATA);
        assert_int_equal(cgroup_run_oom_kills(&none, &v), -ENODATA);
        assert_int_equal(v, 4242);
}

static void test_destroy_removes_and_kills(void **state) {
        struct fixture *f = *state;
        char *dirs[3] = { 0 };

        REQUIRE_HOST();
        assert_int_equal(cgroup_run_create(&host, f->name, 64ull << 20, 16, &f->run), 0);
        start_child(f, child_pause);
        attach_and_go(f);
        dirs[0] = strdup(f->run.memory);
        dirs[1] = f->run.pids ? strdup(f->run.pids) : NULL;
        dirs[2] = f->run.cpu ? strdup(f->run.cpu) : NULL;

        /* with a task still inside: destroy kills it first */
        cgroup_run_destroy(&f->run);
        assert_null(f->run.memory);
        assert_null(f->run.pids);
        assert_null(f->run.cpu);
        assert_status_signaled(wait_fixture_child(f, 2000), SIGKILL);
        for (int i = 0; i < 3; i++) {
                if (!dirs[i])
                        continue;
                if (dir_exists(dirs[i]))
                        fail_msg("%s still exists after destroy", dirs[i]);
                free(dirs[i]);
        }
        /* destroying twice is harmless */
        cgroup_run_destroy(&f->run);
}

static void put_pid(const char *dir, pid_t pid) {
        _cleanup_free_ char *p = strdup_printf("%s/cgroup.procs", dir);
        char v[32];
        snprintf(v, sizeof v, "%d", (int)pid);
        assert_int_equal(write_control_file(p, v), 0);
}

static void test_stale_directory_reused(void **state) {
        struct fixture *f = *state;
        _cleanup_free_ char *mem = NULL, *pids = NULL, *cpu = NULL, *pids_max = NULL;
        char c;

        REQUIRE_HOST();
        if (host.version != CGROUP_V1)
                skip();
        /* what a crash leaves: the run's directories, a stale limit and a
         * live task in them */
        mem = strdup_printf("%s/%s", host.memory_parent, f->name);
        pids = strdup_printf("%s/%s", host.pids_parent, f->name);
        cpu = strdup_printf("%s/%s", host.cpu_parent, f->name);
        assert_int_equal(mkdir(mem, 0755), 0);
        assert_int_equal(mkdir(pids, 0755), 0);
        assert_int_equal(mkdir(cpu, 0755), 0);
        /* the teardown removes them whatever happens below */
        f->run = (struct cgroup_run){ .version = CGROUP_V1, .memory = strdup(mem), .pids = strdup(pids), .cpu = strdup(cpu) };
        start_child(f, child_pause);
        put_pid(mem, f->child);
        put_pid(pids, f->child);
        put_pid(cpu, f->child);
        assert_int_equal(write(f->go[1], "g", 1), 1);
        assert_int_equal(read(f->ready[0], &c, 1), 1);
        pids_max = strdup_printf("%s/pids.max", pids);
        assert_int_equal(write_control_file(pids_max, "1"), 0);

        free(f->run.memory);
        free(f->run.pids);
        free(f->run.cpu);
        f->run = (struct cgroup_run){ 0 };
        assert_int_equal(cgroup_run_create(&host, f->name, 48ull << 20, 9, &f->run), 0);
        /* the stale task is gone, the directories are the run's, with the
         * new limits */
        assert_status_signaled(wait_fixture_child(f, 2000), SIGKILL);
        assert_string_equal(f->run.memory, mem);
        assert_string_equal(f->run.pids, pids);
        assert_string_equal(f->run.cpu, cpu);
        assert_cg_equal(f->run.memory, "memory.limit_in_bytes", "50331648");
        assert_cg_equal(f->run.pids, "pids.max", "9");
        assert_false(procs_has(f->run.pids, f->child));
}

static void test_create_failure_leaves_nothing(void **state) {
        struct fixture *f = *state;
        struct cgroup_host broken;
        struct cgroup_run c = { 0 };
        _cleanup_free_ char *mem = NULL;

        REQUIRE_HOST();
        if (host.version != CGROUP_V1)
                skip();
        broken = host;
        broken.pids_parent = (char *)"/nonexistent-pyexec-cgroup";
        assert_int_equal(cgroup_run_create(&broken, f->name, 32ull << 20, 4, &c), -ENOENT);
        mem = strdup_printf("%s/%s", host.memory_parent, f->name);
        if (dir_exists(mem))
                fail_msg("%s left behind by a failed create", mem);
}

static void test_create_without_cgroups(void **state) {
        struct cgroup_host none = { .version = CGROUP_NONE };
        struct cgroup_run c = { 0 };
        assert_int_equal(cgroup_run_create(&none, "x", 1 << 20, 1, &c), -EOPNOTSUPP);
        assert_null(c.memory);
}

/* ---- hugetlb ---- */

#define HUGE (2ull << 20)

/* huge_added: pages this test added to the host's pool (vm.nr_hugepages),
 * given back in hugetlb_give_back as far as they are free: other services
 * on the host may hold pages of the pool meanwhile. */

static int meminfo_value(const char *key, uint64_t *ret) {
        struct buf b;
        size_t kl = strlen(key);
        int r = read_file("/proc/meminfo", 1 << 16, &b);
        if (r < 0)
                return r;
        r = -ENOENT;
        for (char *line = b.data, *nl; line && *line; line = nl ? nl + 1 : NULL) {
                nl = strchr(line, '\n');
                if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
                        unsigned long long v;
                        if (sscanf(line + kl + 1, "%llu", &v) == 1) {
                                *ret = v;
                                r = 0;
                        }
                        break;
                }
        }
        buf_done(&b);
        return r;
}

static uint64_t huge_free(void) {
        uint64_t f = 0, rs = 0;
        assert_int_equal(meminfo_value("HugePages_Free", &f), 0);
        assert_int_equal(meminfo_value("HugePages_Rsvd", &rs), 0);
        return f > rs ? f - rs : 0;
}

static uint64_t nr_hugepages(void) {
        _cleanup_free_ char *s = NULL;
        uint64_t v;
        assert_true(read_small_file("/proc/sys/vm/nr_hugepages", &s) >= 0);
        s[strcspn(s, "\n")] = 0;
        assert_int_equal(parse_u64(s, 0, UINT64_MAX, &v), 0);
        return v;
}

static void set_nr_hugepages(uint64_t n) {
        char v[32];
        snprintf(v, sizeof v, "%llu", (unsigned long long)n);
        assert_int_equal(write_control_file("/proc/sys/vm/nr_hugepages", v), 0);
}

/* At least n more free huge pages than now, so that what the test maps is
 * taken from no one. */
static void hugetlb_make_room(uint64_t n) {
        uint64_t before = nr_hugepages(), after;
        set_nr_hugepages(before + n);
        after = nr_hugepages();
        huge_added += after > before ? after - before : 0;
        if (after < before + n)
                skip(); /* the kernel found no memory for them */
}

static void hugetlb_give_back(void) {
        uint64_t n = huge_added, f = huge_free(), now = nr_hugepages();
        if (n > f)
                n = f;
        if (n > 0)
                set_nr_hugepages(now - n);
        huge_added = 0;
}

#define REQUIRE_HUGETLB()                                                                       \
        do {                                                                                    \
                REQUIRE_HOST();                                                                 \
                if (!host.hugetlb_parent) {                                                     \
                        print_message("no hugetlb cgroup: %s\n", host.hugetlb_reason);          \
                        skip();                                                                 \
                }                                                                               \
        } while (0)

static const char *hugetlb_limit_file(void) {
        return host.hugetlb_v2 ? "hugetlb.2MB.max" : "hugetlb.2MB.limit_in_bytes";
}

static void test_hugetlb_none_by_default(void **state) {
        struct fixture *f = *state;

        REQUIRE_HUGETLB();
        assert_int_equal(cgroup_run_create(&host, f->name, 32ull << 20, 8, &f->run), 0);
        assert_non_null(f->run.hugetlb);
        assert_true(dir_exists(f->run.hugetlb));
        assert_cg_equal(f->run.hugetlb, hugetlb_limit_file(), "0");
        assert_int_equal(cgroup_run_set_hugetlb(&f->run, 3 * HUGE), 0);
        assert_cg_equal(f->run.hugetlb, hugetlb_limit_file(), "6291456");
        start_child(f, child_pause);
        attach_and_go(f);
        assert_true(procs_has(f->run.hugetlb, f->child));
}

/* Map and touch 3 huge pages: the run allows 2. Exits 3 if all three were
 * given, dies of SIGBUS on the third otherwise. */
static int child_touch_three_huge_pages(void) {
        char *p = mmap(NULL, 3 * HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
        if (p == MAP_FAILED)
                CHILD_FAIL(90, "mmap MAP_HUGETLB");
        for (int i = 0; i < 3; i++)
                p[(size_t)i * HUGE] = 1;
        return 3;
}

static void test_hugetlb_limit_refuses_a_page_more(void **state) {
        struct fixture *f = *state;
        struct cgroup_stats s;

        REQUIRE_HUGETLB();
        assert_int_equal(cgroup_run_create(&host, f->name, 64ull << 20, 8, &f->run), 0);
        assert_int_equal(cgroup_run_set_hugetlb(&f->run, 2 * HUGE), 0);
        hugetlb_make_room(4);
        start_child(f, child_touch_three_huge_pages);
        attach_and_go(f);
        assert_status_signaled(wait_fixture_child(f, 5000), SIGBUS);
        assert_int_equal(cgroup_run_stats(&f->run, &s), 0);
        assert_true(s.have_hugetlb);
        assert_true(s.hugetlb_limit_hit);
        if (s.hugetlb_peak_bytes != 2 * HUGE)
                fail_msg("hugetlb peak %llu bytes, expected the 2-page limit", (unsigned long long)s.hugetlb_peak_bytes);
        /* peak memory counts the huge pages too */
        assert_true(s.have_peak);
        assert_true(s.peak_bytes >= 2 * HUGE);
        hugetlb_give_back();
}

/*
 * The hole the limit closes: a private huge page shared after a clone()
 * that is not glibc's fork (no atfork handler moves it to ordinary pages),
 * then written by the child, needs a second page of the pool. With the run
 * allowed only the page it has, the child dies of SIGBUS and the pool
 * keeps its page. Exits 10 when the child got SIGBUS, 11 when it wrote.
 */
static int child_raw_clone_writes_shared_huge_page(void) {
        char *p = mmap(NULL, HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
        long pid;
        int st;

        if (p == MAP_FAILED)
                CHILD_FAIL(90, "mmap MAP_HUGETLB");
        p[0] = 1;
        pid = syscall(SYS_clone, (unsigned long)SIGCHLD, 0ul, 0ul, 0ul, 0ul);
        if (pid < 0)
                CHILD_FAIL(91, "clone");
        if (pid == 0) {
                p[1] = 2; /* copy-on-write: a second huge page */
                _exit(0);
        }
        if (waitpid((pid_t)pid, &st, 0) != pid)
                CHILD_FAIL(92, "waitpid");
        return WIFSIGNALED(st) && WTERMSIG(st) == SIGBUS ? 10 : 11;
}

static void test_hugetlb_raw_clone_child_gets_sigbus(void **state) {
        struct fixture *f = *state;
        struct cgroup_stats s;

        REQUIRE_HUGETLB();
        assert_int_equal(cgroup_run_create(&host, f->name, 64ull << 20, 8, &f->run), 0);
        assert_int_equal(cgroup_run_set_hugetlb(&f->run, HUGE), 0);
        hugetlb_make_room(3);
        start_child(f, child_raw_clone_writes_shared_huge_page);
        attach_and_go(f);
        assert_status_exited(wait_fixture_child(f, 5000), 10);
        assert_int_equal(cgroup_run_stats(&f->run, &s), 0);
        assert_true(s.hugetlb_limit_hit);
        hugetlb_give_back();
}

static void test_hugetlb_set_without_a_cgroup(void **state) {
        struct cgroup_run none = { .version = CGROUP_V1 };
        assert_int_equal(cgroup_run_set_hugetlb(&none, HUGE), -EOPNOTSUPP);
}

/*
 * Delegation on a pure v2 host. A cgroup below the top, marked as systemd
 * marks a unit's with Delegate=yes (trusted.delegate), stands in for the
 * unit. A forked child is moved into it (or into a leaf of it) and detects
 * the host; the parent checks from outside where the child ended up and
 * what the cgroup enables. Skipped where /sys/fs/cgroup is not cgroup2.
 */
struct delegated {
        char dir[256];
};

static bool v2_only_host(void) {
        struct statfs sf;
        return statfs("/sys/fs/cgroup", &sf) == 0 && sf.f_type == CGROUP2_SUPER_MAGIC;
}

#define SKIP_UNLESS_V2_ONLY()                                                                           \
        do {                                                                                            \
                if (!v2_only_host()) {                                                                  \
                        print_message("[ SKIP     ] /sys/fs/cgroup is not a cgroup2-only hierarchy\n"); \
                        skip();                                                                         \
                }                                                                                       \
        } while (0)

static void delegated_remove(struct delegated *d) {
        static const char *const leaves[] = { "supervisor", "harness" };
        char p[512];
        for (size_t i = 0; i < ELEMENTSOF(leaves); i++) {
                snprintf(p, sizeof p, "%s/%s", d->dir, leaves[i]);
                (void)rmdir(p);
        }
        (void)rmdir(d->dir);
}

/* A marked cgroup dir at the top of the hierarchy, with memory and pids
 * offered (enabled at the top). */
static void delegated_make(struct delegated *d) {
        snprintf(d->dir, sizeof d->dir, "/sys/fs/cgroup/pyexec-unit-deleg-%d", (int)getpid());
        delegated_remove(d);
        assert_int_equal(write_control_file("/sys/fs/cgroup/cgroup.subtree_control", "+memory +pids"), 0);
        assert_int_equal(mkdir(d->dir, 0755), 0);
        if (setxattr(d->dir, "trusted.delegate", "1", 1, 0) < 0)
                fail_msg("setxattr trusted.delegate on %s: %s", d->dir, strerror(errno));
}

static int move_self(const char *dir) {
        _cleanup_free_ char *p = strdup_printf("%s/cgroup.procs", dir);
        return p ? write_control_file(p, "0") : -ENOMEM;
}

/* In the child: move into where, detect, and exit 0 when the memory parent
 * is want, else 10 + which step failed. */
static int detect_in(const char *where, const char *want) {
        struct cgroup_host h;
        int code;
        if (move_self(where) < 0)
                return 10;
        cgroup_host_detect(&h);
        if (h.version != CGROUP_V2)
                code = 11;
        else if (!h.memory_parent || strcmp(h.memory_parent, want) != 0) {
                fprintf(stderr, "memory parent %s, expected %s (%s)\n", h.memory_parent ? h.memory_parent : "(none)",
                        want, h.reason);
                code = 12;
        } else
                code = 0;
        cgroup_host_done(&h);
        return code;
}

static void test_v2_takes_over_its_delegated_cgroup(void **state) {
        struct delegated d;
        _cleanup_free_ char *sup = NULL, *ctl = NULL;
        pid_t pid;
        int go[2];
        char c;

        SKIP_UNLESS_ROOT();
        SKIP_UNLESS_V2_ONLY();
        delegated_make(&d);
        assert_int_equal(pipe2(go, O_CLOEXEC), 0);
        pid = test_fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                int code = detect_in(d.dir, d.dir);
                /* Stay alive until the parent has looked. */
                close(go[1]);
                if (code == 0 && read(go[0], &c, 1) < 0)
                        code = 13;
                _exit(code);
        }
        close(go[0]);
        /* The child moved itself into the leaf and enabled the controllers
         * in the delegated cgroup, which holds no process now. */
        sup = strdup_printf("%s/supervisor", d.dir);
        for (int i = 0; i < 500 && !procs_has(sup, pid); i++)
                usleep(10000);
        ctl = read_cg(d.dir, "cgroup.subtree_control");
        bool in_leaf = procs_has(sup, pid), in_top = procs_has(d.dir, pid);
        close(go[1]);
        assert_status_exited(wait_child(pid, 10000), 0);
        delegated_remove(&d);
        assert_true(in_leaf);
        assert_false(in_top);
        assert_non_null(strstr(ctl, "memory"));
        assert_non_null(strstr(ctl, "pids"));
}

static void test_v2_leaf_of_a_delegated_cgroup_uses_it(void **state) {
        struct delegated d;
        _cleanup_free_ char *harness = NULL;
        pid_t pid;

        SKIP_UNLESS_ROOT();
        SKIP_UNLESS_V2_ONLY();
        delegated_make(&d);
        harness = strdup_printf("%s/harness", d.dir);
        assert_int_equal(mkdir(harness, 0755), 0);
        pid = test_fork();
        assert_true(pid >= 0);
        if (pid == 0)
                _exit(detect_in(harness, d.dir));
        int st = wait_child(pid, 10000);
        _cleanup_free_ char *ctl = read_cg(d.dir, "cgroup.subtree_control");
        delegated_remove(&d);
        assert_status_exited(st, 0);
        assert_non_null(strstr(ctl, "memory"));
}

static void test_v2_undelegated_cgroup_is_not_taken_over(void **state) {
        struct delegated d;
        _cleanup_free_ char *sup = NULL;
        pid_t pid;

        SKIP_UNLESS_ROOT();
        SKIP_UNLESS_V2_ONLY();
        delegated_make(&d);
        assert_int_equal(removexattr(d.dir, "trusted.delegate"), 0);
        pid = test_fork();
        assert_true(pid >= 0);
        if (pid == 0)
                _exit(detect_in(d.dir, "/sys/fs/cgroup/pyexec"));
        int st = wait_child(pid, 10000);
        sup = strdup_printf("%s/supervisor", d.dir);
        bool leaf = dir_exists(sup);
        delegated_remove(&d);
        assert_status_exited(st, 0);
        assert_false(leaf);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_version_names),
                T(test_host_detect),
                T(test_host_detect_idempotent),
                T(test_create_writes_limits),
                T(test_attach),
                T(test_pids_limit),
                T(test_memory_limit_oom),
                T(test_stats_quiet_run),
                T(test_cpu_ns_grows_and_kill),
                cmocka_unit_test(test_unaccounted),
                T(test_destroy_removes_and_kills),
                T(test_stale_directory_reused),
                T(test_create_failure_leaves_nothing),
                cmocka_unit_test(test_create_without_cgroups),
                T(test_hugetlb_none_by_default),
                T(test_hugetlb_limit_refuses_a_page_more),
                T(test_hugetlb_raw_clone_child_gets_sigbus),
                cmocka_unit_test(test_hugetlb_set_without_a_cgroup),
                cmocka_unit_test(test_v2_takes_over_its_delegated_cgroup),
                cmocka_unit_test(test_v2_leaf_of_a_delegated_cgroup_uses_it),
                cmocka_unit_test(test_v2_undelegated_cgroup_is_not_taken_over),
        };
        return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
