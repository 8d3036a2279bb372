/* SPDX-License-Identifier: MIT */
/*
 * supervise: run one program in a fresh sandbox, watch it, kill it, measure
 * it, and classify what happened.
 *
 * Theory of operation
 * ===================
 *
 * Three processes take part in a run:
 *
 *   supervisor   the caller of pyexec_run() (the CLI, or a service thread),
 *                outside every namespace.
 *   init         cloned by the supervisor into new mount, PID, network, IPC
 *                and UTS namespaces (plus a user namespace on the
 *                unprivileged path; on the warm path as root it joins an
 *                empty network namespace from the service's pool instead,
 *                zygote.c). It is PID 1 of the run. It builds the
 *                filesystem (mount.c), forks the program, then only reaps
 *                (reap.c; on the warm path as pyexec-init, below).
 *   program      forked by init: PID 2. It drops to the run's uid with no
 *                capabilities (cred.c), sets rlimits (rlimit.c), installs
 *                the seccomp filter (seccomp.c) last, and execs
 *                pyexec-runner --cold (runner.c; fd 3 is its status pipe,
 *                fd 4 its work memfd: policy and argv), or python3 itself
 *                for jobs and --python.
 *
 * File descriptors crossing the boundaries, all O_CLOEXEC:
 *
 *   sync pipe     supervisor -> init. init blocks on it until the supervisor
 *                 has written the id maps and moved init into the run's
 *                 cgroups; EOF instead of a byte means "give up".
 *   status pipe   init and program -> supervisor. Fixed-size messages, each
 *                 one write(2) below PIPE_BUF so they never interleave:
 *                 ERROR (a setup step failed: which, and errno), STARTED
 *                 (the program was forked; starts the wall clock), EXITED
 *                 (the program's wait status, when, rusage of the tree).
 *   stdout, stderr pipes   program -> supervisor, read concurrently by
 *                 poll(2), so neither can fill up and deadlock the other.
 *                 Read until no process of the run is left (init gone, or
 *                 its EXITED with every other process reaped), then until
 *                 empty, and closed: end-of-file may never come, as their
 *                 write ends can outlive every process, in flight in a
 *                 cycle of Unix sockets (below).
 *   stdin         a sealed memfd: seekable like a file, read-only, and it
 *                 needs no pump.
 *   pidfd         of init, so the supervisor's poll also sees it exit.
 *
 * The program gets fds 0, 1, 2 and nothing else (close_range). init closes
 * everything it inherited except its pipes, so a service's sockets never
 * reach a sandbox.
 *
 * Who kills whom: when the program exits, init SIGKILLs every other process
 * of the run (kill(-1) in its PID namespace), reaps them, reports, and exits.
 * When init exits, the kernel kills whatever is left in the namespace, so no
 * forked, double-forked, setsid()ed or SIGTERM-ignoring process survives.
 * On the wall-clock limit, the CPU limit or the output cap, the supervisor
 * SIGKILLs init through its pidfd, with the same effect. init has
 * PR_SET_PDEATHSIG=SIGKILL, so a supervisor that dies takes its runs along.
 * The kernel tears a PID namespace down completely before its init can be
 * reaped, so once the supervisor has reaped init, nothing of the run runs.
 * What can outlive it: descriptors a program sent over a Unix socket that
 * is itself in flight (a socket sent into its own queue), which only the
 * kernel's collector of such cycles closes, and that collector runs when
 * some AF_UNIX socket is released, anywhere. The supervisor releases one
 * of its own after the run (the pool after a warm sandbox's teardown), so
 * what they hold (memfds and their pages, the output pipes) goes with the
 * run.
 * One exception in order, on the warm path: when the program exits and only
 * its holder (below) is left, init stops what is left (kill(-1, SIGSTOP))
 * instead, and reports; the pool SIGKILLs init a few milliseconds later,
 * after the response (zygote.c, KILL_GRACE_NS).
 *
 * Order of construction (each step needs the one before):
 *   supervisor: uid slot, cgroups with limits, pipes, stdin memfd, clone
 *   supervisor: id maps (user namespace path), cgroup attach, sync byte
 *   init:       the pool's network namespace (warm, root), cgroup namespace
 *               (hides host cgroup paths), hostname,
 *               filesystem (mount.c), pivot_root
 *   init:       fork program; STARTED; drop its own privileges
 *   program:    fds, work directory, rlimits, uid/gid/caps, no_new_privs,
 *               seccomp, execve
 *
 * Measurements: wall time between STARTED and EXITED on init's monotonic
 * clock; CPU time and peak memory of the whole tree from the cgroup, else
 * from init's rusage of its reaped children; verdicts from what the
 * supervisor itself did (timeouts, output cap), the cgroup's OOM events, and
 * the program's wait status.
 *
 * Nothing in init or the program allocates memory or takes a libc lock: the
 * supervisor may be one thread of many, and a bare clone() copies locks in
 * whatever state other threads left them. Everything the children need is
 * prepared by the supervisor before the clone.
 *
 * The warm path (zygote.h) builds the same sandbox from another process:
 * the zygote (single-threaded, an initialized interpreter) clones init with
 * pyexec_sandbox_spawn_warm(). That init shares the zygote's memory
 * (CLONE_VM | CLONE_VFORK: the zygote waits in clone() meanwhile) and
 * answers the service itself, with a pidfd of itself; the service writes
 * the id maps, attaches the cgroup and sends the sync byte as above. init
 * builds the filesystem without the program's files and fork()s the
 * program: a copy of the zygote as it waits, which continues where the
 * zygote called clone() (a real fork: the program runs the zygote's
 * interpreter). Then init execs pyexec-init (init-main.c), which reaps as
 * the cold path's init does (reap.c) in a few pages of its own, so no run
 * pays for a second copy of the zygote's page tables. Without pyexec-init
 * (the service found none), init is a full copy of the zygote and forks the
 * program from its copy. The program drops its uid, installs seccomp, sends READY
 * and waits on its work socket; it sends STARTED itself when the work
 * (files, argv, policy, rlimits, and stdin) arrives. The request's
 * supervisor (run_warm) sets the run's limits on the cgroup first, and
 * answers at EXITED with what the pipes hold then, leaving init's exit
 * and the namespace's teardown to the pool (the keeper, or the next
 * take). A sandbox lost before the program started, or with its zygote
 * (whose death kills its inits),
 * means the program runs again elsewhere: nothing it did left the sandbox.
 *
 * Nothing the program does reaches its init. As root, init's real and saved
 * uid and gid are a second id of the run's uid slot (uidpool.h), and only
 * its effective ids are the program's (cred_drop_apart): init can signal the
 * program's processes, and the kernel refuses the program's signals, prlimit
 * and ptrace on init. In a user namespace one id is mapped and init shares
 * it: the seccomp policy refuses the calls that name pid 1 (signals,
 * prlimit, pidfd_open, scheduling). On both paths init is undumpable (hidden
 * by hidepid, its /proc files root's), outside the program's session and
 * process group (the program calls setsid()), and counts only SI_USER
 * signals from outside its PID namespace (reap.c). A sandbox lost anyway
 * while the program ran is that program's verdict (runtime_error,
 * classify), never a retry nor an internal_error counted by the circuit
 * breaker.
 */
#include <errno.h>
#include <dirent.h>
#include <linux/capability.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <ucontext.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "cred.h"
#include "mount.h"
#include "reap.h"
#include "ns.h"
#include "pyexec.h"
#include "rlimit.h"
#include "runner.h"
#include "sandbox-msg.h"
#include "work.h"
#include "zygote.h"
#include "seccomp.h"
#include "uidpool.h"
#include "util.h"

/* Where the cold path shows pyexec-runner inside the sandbox. */
#define SANDBOX_RUNNER_PATH "/.pyexec/runner"

/* Inside the sandbox on the user-namespace path, the program is this uid. */
#define SANDBOX_INNER_ID 1000
#define SANDBOX_HOSTNAME "sandbox"
/* A run whose sandbox is not built by then is broken, not slow. */
#define SETUP_TIMEOUT_NS (10ull * 1000000000ull)
/* After EXITED with the rest stopped, the output's end is already there
 * unless a stopped process or a cycle in flight holds it; by this time the
 * stop has taken effect, and what the pipes hold is all there is. */
#define REST_GRACE_NS (50ull * 1000000ull)

struct pyexec_sandbox {
        bool privileged;
        struct cgroup_host cg;
        uid_t uid_base;
        unsigned uid_count;
        uid_t outer_uid;
        gid_t outer_gid;
        const struct seccomp_prog *seccomp;
        long ncpu;
        char lock_dir[256];
        int runner_fd; /* O_PATH of pyexec-runner, or -1 when not found */
        char runner_path[PATH_MAX]; /* resolved */
        bool runner_in_usr; /* so the sandbox has it at the same path */
        struct warm_pool *warm; /* the warm path, when started */
};

const char *pyexec_status_to_string(enum pyexec_status s) {
        static const char *const names[_PYEXEC_STATUS_MAX] = {
                [PYEXEC_OK] = "ok",
                [PYEXEC_RUNTIME_ERROR] = "runtime_error",
                [PYEXEC_SYNTAX_ERROR] = "syntax_error",
                [PYEXEC_TIMEOUT] = "timeout",
                [PYEXEC_MEMORY_LIMIT] = "memory_limit",
                [PYEXEC_OUTPUT_LIMIT] = "output_limit",
                [PYEXEC_POLICY_VIOLATION] = "policy_violation",
                [PYEXEC_INTERNAL_ERROR] = "internal_error",
        };
        return s < _PYEXEC_STATUS_MAX ? names[s] : "internal_error";
}

void pyexec_result_done(struct pyexec_result *r) {
        buf_done(&r->out);
        buf_done(&r->err);
        buf_done(&r->merged);
        free(r->message);
        r->message = NULL;
}

/* pyexec-runner: $PYEXEC_RUNNER, else beside this executable (the build
 * directory, or an install's bin), else the installed libexec path. */
static int runner_locate(char *buf, size_t n) {
        const char *env = getenv("PYEXEC_RUNNER");
        char self[PATH_MAX - 32];
        ssize_t len;

        if (env && env[0] == '/') {
                snprintf(buf, n, "%s", env);
                return access(buf, X_OK) == 0 ? 0 : -errno;
        }
        len = readlink("/proc/self/exe", self, sizeof self - 1);
        if (len > 0) {
                char *slash;
                self[len] = 0;
                slash = strrchr(self, '/');
                if (slash) {
                        *slash = 0;
                        snprintf(buf, n, "%s/pyexec-runner", self);
                        if (access(buf, X_OK) == 0)
                                return 0;
                }
        }
        snprintf(buf, n, "/usr/local/libexec/pyexec/pyexec-runner");
        return access(buf, X_OK) == 0 ? 0 : -errno;
}

int pyexec_sandbox_new(struct pyexec_sandbox **ret) {
        struct pyexec_sandbox *s = calloc(1, sizeof *s);
        int r;

        if (!s)
                return -ENOMEM;
        s->privileged = geteuid() == 0;
        s->outer_uid = geteuid();
        s->outer_gid = getegid();
        s->ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        if (s->ncpu < 1)
                s->ncpu = 1;
        r = seccomp_prog_get(&s->seccomp);
        if (r < 0)
                goto fail;
        if (s->privileged) {
                r = uidpool_config(&s->uid_base, &s->uid_count);
                if (r < 0)
                        goto fail;
                snprintf(s->lock_dir, sizeof s->lock_dir, "%s", UIDPOOL_LOCK_DIR);
        }
        cgroup_host_detect(&s->cg);
        s->runner_fd = -1;
        if (runner_locate(s->runner_path, sizeof s->runner_path) == 0) {
                char real[PATH_MAX];
                if (realpath(s->runner_path, real) && strlen(real) < sizeof s->runner_path)
                        memcpy(s->runner_path, real, strlen(real) + 1);
                s->runner_in_usr = strncmp(s->runner_path, "/usr/", 5) == 0;
                s->runner_fd = open(s->runner_path, O_PATH | O_CLOEXEC);
        }
        *ret = s;
        return 0;
fail:
        free(s);
        return r;
}

struct pyexec_sandbox *pyexec_sandbox_free(struct pyexec_sandbox *s) {
        if (!s)
                return NULL;
        s->warm = warm_pool_free(s->warm);
        cgroup_host_done(&s->cg);
        if (s->runner_fd >= 0)
                close(s->runner_fd);
        free(s);
        return NULL;
}

void pyexec_sandbox_get_info(const struct pyexec_sandbox *s, struct pyexec_sandbox_info *ret) {
        const struct cgroup_host *h = &s->cg;
        bool v2 = h->version == CGROUP_V2;

        *ret = (struct pyexec_sandbox_info){
                .privileged = s->privileged,
                .userns = !s->privileged,
                .cgroup = cgroup_version_to_string(h->version),
                .memory_by = h->memory_parent ? (v2 ? "cgroup v2 memory.max + memory.swap.max=0"
                                                    : h->memsw ? "cgroup v1 memory.limit_in_bytes + memory.memsw.limit_in_bytes"
                                                               : "cgroup v1 memory.limit_in_bytes")
                                              : "RLIMIT_AS (no usable memory cgroup)",
                .pids_by = h->pids_parent ? (v2 ? "cgroup v2 pids.max" : "cgroup v1 pids.max")
                                          : "RLIMIT_NPROC (no usable pids cgroup)",
                .cpu_by = h->cpu_parent ? (v2 ? "cgroup v2 cpu.stat polled + RLIMIT_CPU"
                                              : "cgroup v1 cpuacct.usage polled + RLIMIT_CPU")
                                        : "RLIMIT_CPU per process (no CPU accounting cgroup)",
                .cgroup_reason = h->reason,
                .memory_cgroup = h->memory_parent,
                .pids_cgroup = h->pids_parent,
                .cpu_cgroup = h->cpu_parent,
                .hugetlb_by = h->hugetlb_parent ? (h->hugetlb_v2 ? "cgroup v2 hugetlb.2MB.max"
                                                                 : "cgroup v1 hugetlb.2MB.limit_in_bytes")
                                                : "none: the warm path keeps the zygote's memory on ordinary pages",
                .hugetlb_cgroup = h->hugetlb_parent,
                .hugetlb_reason = h->hugetlb_reason,
                .uid_base = (unsigned)s->uid_base,
                .uid_count = s->uid_count,
                .seccomp_rules = seccomp_rule_count(),
                .seccomp_insns = s->seccomp ? s->seccomp->len : 0,
        };
}

/* ---- messages from the sandbox ---------------------------------------- */

/* Not instrumented by AddressSanitizer: what the program runs on
 * program_stack (below), a static array the sanitizer does not know as a
 * stack. Before each call that does not return (child_fail, _exit) the
 * instrumentation unpoisons from the stack pointer up to the top of the
 * thread's known stack; from program_stack that range is absurd, so the
 * sanitizer prints a warning instead, and inside the sandbox, where its
 * report file cannot be opened, that ends the program. */
#define _no_sanitize_address_ __attribute__((no_sanitize("address")))

static void send_msg(int fd, const struct msg *m) {
        msg_send(fd, m);
}

static void copy_str(char *dst, size_t n, const char *src) {
        size_t i = 0;
        for (; src && src[i] && i + 1 < n; i++)
                dst[i] = src[i];
        dst[i] = 0;
}

_Noreturn _no_sanitize_address_ static void child_fail(int fd, const char *step, int err) {
        struct msg m = { .type = MSG_ERROR, .err = err < 0 ? -err : err, .t_ns = now_ns() };
        copy_str(m.step, sizeof m.step, step);
        send_msg(fd, &m);
        _exit(127);
}

/* Close every fd except the (ascending) ones in keep. */
static void close_all_except(const int *keep, size_t n) {
        unsigned next = 0;
        for (size_t i = 0; i < n; i++) {
                if (keep[i] < 0)
                        continue;
                if ((unsigned)keep[i] > next)
                        syscall(SYS_close_range, next, (unsigned)keep[i] - 1, 0);
                next = (unsigned)keep[i] + 1;
        }
        syscall(SYS_close_range, next, ~0u, 0);
}

/* Insertion sort: qsort may allocate, which the children must not. */
static void sort_fds(int *v, size_t n) {
        for (size_t i = 1; i < n; i++)
                for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
                        int t = v[j];
                        v[j] = v[j - 1];
                        v[j - 1] = t;
                }
}

/* Everything init and the program need, prepared before the clone. */
struct child_ctx {
        const struct pyexec_sandbox *sb;
        struct mount_plan plan;
        struct rlimit_value rlimits[RLIMIT_PLAN_MAX];
        int n_rlimits;
        uid_t uid;
        gid_t gid;
        uid_t init_uid; /* init's real and saved ids (reap.h: own_uid) */
        gid_t init_gid;
        bool userns;
        bool cgroup_ns;
        const char *python;
        int runner_fd; /* >= 0: exec pyexec-runner --cold */
        const char *runner_path; /* its path inside the sandbox */
        int work_fd;   /* the runner's work memfd */
        char *const *argv;
        char *const *envp;
        int sync_r, status_w, out_w, err_w, stdin_fd;
        int *keep; /* every fd init keeps (the above and the binds'), sorted */
        size_t n_keep;
        /* The warm path: the program is forked (a copy of the zygote's
         * initialized interpreter), sends STARTED itself when work
         * arrives on work_r, and runs warm_main. */
        warm_main_fn warm_main;
        int work_r;
        int holder_w; /* the program tells init its holder's pid here */
        /* The small init (exec_small_init below): init shares the zygote's
         * memory and answers the service itself on ctl, then execs
         * pyexec-init from init_fd. */
        bool small_init;
        warm_prepare_fn warm_prepare;
        int init_fd, ctl;
        int net_fd; /* >= 0: the network namespace to join (cloned without one) */
};

/*
 * The program is spawned from init with CLONE_VM | CLONE_VFORK on this stack,
 * as posix_spawn does: no page tables are copied and no copy-on-write faults
 * follow, and init sleeps until the program has exec'd (or failed). Each init
 * is its own process with its own copy of this array.
 */
static char program_stack[64 * 1024] __attribute__((aligned(64)));

_Noreturn _no_sanitize_address_ static void run_program(const struct child_ctx *c) {
        int status_fd = c->status_w, r;

        if (dup2(c->stdin_fd, 0) < 0 || dup2(c->out_w, 1) < 0 || dup2(c->err_w, 2) < 0)
                child_fail(status_fd, "setting up stdio", -errno);
        if (c->runner_fd >= 0) {
                /* The runner finds the status pipe at fd 3 and its work at
                 * fd 4 (inherited: not close-on-exec); these high copies
                 * keep the dup2s below from clobbering each other. */
                int s = fcntl(c->status_w, F_DUPFD_CLOEXEC, 10), w = fcntl(c->work_fd, F_DUPFD_CLOEXEC, 10);
                if (s < 0 || w < 0 || dup2(s, RUNNER_STATUS_FD) < 0 || dup2(w, RUNNER_WORK_FD) < 0)
                        child_fail(status_fd, "setting up the runner's descriptors", -errno);
                status_fd = RUNNER_STATUS_FD;
                close_all_except((int[]){ 0, 1, 2, RUNNER_STATUS_FD, RUNNER_WORK_FD }, 5);
        } else
                close_all_except((int[]){ 0, 1, 2, c->status_w }, 4);
        /* Its own session: no signal aimed at a host process group reaches
         * it, and it cannot reach one. */
        setsid();
        if (chdir(SANDBOX_WORKDIR) < 0)
                child_fail(status_fd, "entering " SANDBOX_WORKDIR, -errno);
        r = rlimit_apply(c->rlimits, c->n_rlimits);
        if (r < 0)
                child_fail(status_fd, "setting rlimits", r);
        r = cred_drop(c->uid, c->gid, !c->userns);
        if (r < 0)
                child_fail(status_fd, "dropping privileges", r);
        /* Last: from here on the filter also applies to the steps above. */
        r = seccomp_prog_apply(c->sb->seccomp);
        if (r < 0)
                child_fail(status_fd, "installing the seccomp filter", r);
        if (c->runner_fd >= 0) {
                /* By its path inside the sandbox (mounted there by init):
                 * /proc/self/exe and maps then show that path, not where
                 * the host keeps pyexec. */
                static char *const runner_argv[] = { "pyexec-runner", "--cold", NULL };
                execve(c->runner_path, runner_argv, c->envp);
                child_fail(status_fd, "executing pyexec-runner", -errno);
        }
        execve(c->python, c->argv, c->envp);
        child_fail(status_fd, "executing the interpreter", -errno);
}

_no_sanitize_address_ static int run_program_fn(void *arg) {
        run_program(arg);
}

/*
 * The warm program's address space outlives it, held by a second process:
 * the holder. A process's exit tears its address space down before it
 * closes its files, and a child of the zygote maps thousands of pages, so
 * the end of stdout and init's word that the program is gone would both
 * wait out the teardown (about 2 ms here, the largest step of a hello
 * world). With the holder, the program's exit only drops a reference:
 * init reaps it at once, stops the holder (and anything a program that
 * took it over started), answers, and the teardown happens when the pool
 * kills init, after the response.
 *
 * The holder is created by the program after seccomp, the uid change and
 * the prefault (zygote-child.c), so it can do nothing the program cannot
 * (the program can write its memory, and so could take it over). It is
 * init's child (CLONE_PARENT), invisible to the program's wait()s, closes
 * every descriptor, blocks every signal (SIGKILL and SIGSTOP cannot be),
 * and sleeps. It counts against the pids
 * limit, which the warm path raises by one for it. In /proc it is hidden
 * from the program like init (not dumpable: it shares the program's
 * memory, and with it that flag).
 */
static char holder_stack[16 * 1024] __attribute__((aligned(64)));
static _Atomic int holder_ready;

/* System calls through syscall() only: the holder runs on the program's
 * thread-local storage, which libc's wrappers would write to (cancellation
 * state); syscall() writes errno only on failure, and none of these fails
 * (the blocked signals cannot interrupt ppoll). */
static int holder_main(void *arg) {
        uint64_t all = ~0ull;

        (void)arg;
        syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, NULL, sizeof all);
        syscall(SYS_close_range, 0u, ~0u, 0u);
        atomic_store(&holder_ready, 1);
        syscall(SYS_futex, &holder_ready, FUTEX_WAKE, 1, NULL, NULL, 0);
        for (;;)
                syscall(SYS_ppoll, NULL, 0, NULL, NULL, 0);
        return 0;
}

/* In the program: start the holder and tell init its pid (0: none; init
 * then waits out the teardown as before). Before any program code runs,
 * so init can trust the pid. */
void pyexec_warm_start_holder(int holder_w) {
        pid_t holder = clone(holder_main, holder_stack + sizeof holder_stack, CLONE_VM | CLONE_PARENT, NULL);
        int32_t pid = holder > 0 ? holder : 0;

        /* Its copies of the pipes must be closed before the run: stdout's
         * end is seen when the last copy goes. */
        for (int i = 0; holder > 0 && i < 100 && !atomic_load(&holder_ready); i++)
                syscall(SYS_futex, &holder_ready, FUTEX_WAIT, 0, &(struct timespec){ 0, 10000000 }, NULL, 0);
        if (holder > 0 && !atomic_load(&holder_ready)) {
                kill(holder, SIGKILL);
                pid = 0;
        }
        (void)write_all(holder_w, &pid, sizeof pid);
        close(holder_w);
}

/* The warm path's program: everything of run_program up to the exec, then
 * the runner's loop instead (which waits for the work). stdin arrives with
 * the work. */
_Noreturn static void run_program_warm(const struct child_ctx *c) {
        int keep[] = { 0, 1, 2, c->status_w, c->work_r, c->holder_w }, r;

        if (dup2(c->out_w, 1) < 0 || dup2(c->err_w, 2) < 0)
                child_fail(c->status_w, "setting up stdio", -errno);
        sort_fds(keep, ELEMENTSOF(keep));
        close_all_except(keep, ELEMENTSOF(keep));
        setsid();
        if (chdir(SANDBOX_WORKDIR) < 0)
                child_fail(c->status_w, "entering " SANDBOX_WORKDIR, -errno);
        r = cred_drop(c->uid, c->gid, !c->userns);
        if (r < 0)
                child_fail(c->status_w, "dropping privileges", r);
        /* Not dumpable, like init: hidden in /proc, and its memory (the
         * holder's too) closed to other processes of its uid. (A fork
         * inherits the flag from init's memory, which with the small init
         * is the zygote's, and a uid change inside a user namespace may
         * leave it.) */
        prctl(PR_SET_DUMPABLE, 0);
        r = seccomp_prog_apply(c->sb->seccomp);
        if (r < 0)
                child_fail(c->status_w, "installing the seccomp filter", r);
        c->warm_main(c->status_w, c->work_r, c->holder_w);
        _exit(127);
}

/*
 * The warm path's init shares the zygote's memory until it has forked the
 * program (pyexec_sandbox_spawn_warm), then becomes pyexec-init
 * (init-main.c: init_reap() in a program of a few pages), so that nothing
 * of the zygote's memory stays mapped in it. While they share it the
 * zygote is stopped in clone() (CLONE_VFORK: until the exec or init's
 * death), so init has that memory to itself: its own stack below, the
 * zygote's context in warm_ctx, and the jump back into the zygote's frame
 * that the program takes.
 */
/* Only init uses these: kept out of the programs (see fork_stack). */
static struct init_private {
        char stack[256 * 1024];
        ucontext_t fork_uc, fork_back_uc;
} __attribute__((aligned(4096))) init_private;
static struct child_ctx warm_ctx;
static jmp_buf warm_resume;
static pid_t small_init_pid;        /* CLONE_PARENT_SETTID: init's pid for the service */
static _Atomic bool small_init_replied;

/*
 * The programs do not get init_private (MADV_DONTFORK): were init's stack
 * copy-on-write in them, every page of it the next init writes (the deep
 * frames of mount_build_root, say) would be copied first, a fault apiece,
 * for nothing. So the program is forked from init on this other, shallow
 * stack (fork_on_own_stack), where it returns from fork() and jumps into
 * the zygote's frame.
 */
static char fork_stack[64 * 1024] __attribute__((aligned(4096))); /* fork's atfork handlers run here */
static pid_t fork_pid;
static int fork_errno;
static bool init_private_dontfork; /* MADV_DONTFORK done */

static void fork_on_own_stack(void) {
        pid_t pid = fork();
        if (pid == 0) {
                /* Stopped while init prepares its memory (warm_prepare),
                 * so that none of its own writes can race that. */
                if (warm_ctx.warm_prepare)
                        kill(getpid(), SIGSTOP);
                longjmp(warm_resume, 1);
        }
        fork_errno = errno;
        fork_pid = pid;
        /* Back on init's stack (fork_back_uc: uc_link). */
}

/* The program, forked from init (the zygote's memory as of now) on
 * fork_stack; -errno on failure. */
static pid_t fork_program(void) {
        ucontext_t *uc = &init_private.fork_uc, *back = &init_private.fork_back_uc;

        if (getcontext(uc) < 0)
                return -errno;
        uc->uc_stack.ss_sp = fork_stack;
        uc->uc_stack.ss_size = sizeof fork_stack;
        uc->uc_link = back;
        makecontext(uc, fork_on_own_stack, 0);
        if (swapcontext(back, uc) < 0)
                return -errno;
        return fork_pid < 0 ? -fork_errno : fork_pid;
}

_Noreturn static void exec_small_init(const struct child_ctx *c, int holder_r, pid_t prog) {
        static char *const envp[] = { NULL };
        char n_prog[16], n_uid[16], n_gid[16], n_init_uid[16], n_init_gid[16];
        char *argv[] = { "pyexec-init", n_prog, n_uid, n_gid, n_init_uid, n_init_gid, c->userns ? "1" : "0", NULL };
        /* Copies above the targets first, so the dup2s cannot clobber one
         * another; everything else is close-on-exec. */
        int s = fcntl(c->status_w, F_DUPFD_CLOEXEC, 10), h = fcntl(holder_r, F_DUPFD_CLOEXEC, 10),
            e = fcntl(c->init_fd, F_DUPFD_CLOEXEC, 10);

        if (s < 0 || h < 0 || e < 0 || dup2(s, INIT_STATUS_FD) < 0 || dup2(h, INIT_HOLDER_FD) < 0)
                child_fail(c->status_w, "setting up pyexec-init's descriptors", -errno);
        /* In a user namespace init is not uid 0, so the exec clears its
         * capabilities, and cred_drop() in pyexec-init could not empty the
         * bounding set: CAP_SETPCAP goes across as an ambient capability,
         * which cred_drop() clears with the rest. (Its privileges are
         * dropped there, not here: a uid change would make the zygote's
         * memory, this process's until the exec, dumpable for it.) */
        if (c->userns) {
                struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
                struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
                if (syscall(SYS_capget, &hdr, d) < 0 ||
                    (d[0].inheritable |= 1u << CAP_SETPCAP, syscall(SYS_capset, &hdr, d)) < 0 ||
                    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SETPCAP, 0, 0) < 0)
                        child_fail(c->status_w, "keeping CAP_SETPCAP for pyexec-init", -errno);
        }
        snprintf(n_prog, sizeof n_prog, "%d", (int)prog);
        snprintf(n_uid, sizeof n_uid, "%u", (unsigned)c->uid);
        snprintf(n_gid, sizeof n_gid, "%u", (unsigned)c->gid);
        snprintf(n_init_uid, sizeof n_init_uid, "%u", (unsigned)c->init_uid);
        snprintf(n_init_gid, sizeof n_init_gid, "%u", (unsigned)c->init_gid);
        syscall(SYS_execveat, e, "", argv, envp, AT_EMPTY_PATH);
        child_fail(c->status_w, "executing pyexec-init", -errno);
}

_Noreturn static void run_init(const struct child_ctx *c) {
        struct msg m = { 0 };
        const char *step = "?";
        int r, holder_pipe[2] = { -1, -1 };
        pid_t prog;
        char byte;

        /* Die with the supervisor. In a new PID namespace getppid() is 0,
         * so the race with its death is closed by the sync pipe instead: a
         * dead supervisor means EOF there. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        /* Start from a clean signal state, whatever the supervisor had: a
         * service blocks SIGTERM in every thread and a CLI ignores SIGPIPE,
         * and both would pass through execve to the program; any handler
         * left installed (a sanitizer's, say) would also let the program
         * signal init from inside. */
        {
                struct sigaction dfl = { .sa_handler = SIG_DFL };
                sigset_t none;
                for (int sig = 1; sig < _NSIG; sig++)
                        if (sig != SIGKILL && sig != SIGSTOP)
                                sigaction(sig, &dfl, NULL);
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
        }
        close_all_except(c->keep, c->n_keep);
        if (read(c->sync_r, &byte, 1) != 1)
                _exit(127);
        close(c->sync_r);

        if (c->net_fd >= 0) {
                if (setns(c->net_fd, CLONE_NEWNET) < 0)
                        child_fail(c->status_w, "joining the sandbox's network namespace", -errno);
                close(c->net_fd);
        }
        if (c->cgroup_ns && unshare(CLONE_NEWCGROUP) < 0)
                child_fail(c->status_w, "entering a cgroup namespace", -errno);
        if (sethostname(SANDBOX_HOSTNAME, sizeof SANDBOX_HOSTNAME - 1) < 0)
                child_fail(c->status_w, "setting the hostname", -errno);
        r = mount_build_root(&c->plan, &step);
        if (r < 0)
                child_fail(c->status_w, step, r);

        /* Undumpable before the program exists: with /proc's hidepid the
         * program then cannot see init at all (its argv is the
         * supervisor's, and so would leak the host's command line). Not
         * the small init's: the flag belongs to the memory, here the
         * zygote's; pyexec-init sets it itself. */
        if (!c->small_init)
                prctl(PR_SET_DUMPABLE, 0);
        prctl(PR_SET_NAME, "pyexec-init");
        if (c->warm_main) {
                /* A real fork: the program continues the interpreter that
                 * init inherited from the zygote. Above 2 the pipe's fds
                 * survive its dup2s. */
                struct child_ctx pc = *c;
                int p[2];
                if (pipe2(p, O_CLOEXEC) < 0 || (holder_pipe[0] = fcntl(p[0], F_DUPFD_CLOEXEC, 3)) < 0 ||
                    (holder_pipe[1] = fcntl(p[1], F_DUPFD_CLOEXEC, 3)) < 0)
                        child_fail(c->status_w, "creating a pipe", -errno);
                close(p[0]);
                close(p[1]);
                if (c->small_init) {
                        /* This is the zygote's memory, and the zygote waits
                         * in clone(): the fork is the zygote's as of then,
                         * and the program goes on where the zygote called
                         * clone(), on its stack (warm_resume). */
                        warm_ctx.holder_w = holder_pipe[1];
                        prog = fork_program();
                        if (prog < 0)
                                child_fail(c->status_w, "forking the program", prog);
                        if (c->warm_prepare) {
                                int st;
                                pid_t w;
                                do
                                        w = waitpid(prog, &st, WUNTRACED);
                                while (w < 0 && errno == EINTR);
                                if (w != prog || !WIFSTOPPED(st))
                                        child_fail(c->status_w, "waiting for the program to stop", w < 0 ? -errno : -ECHILD);
                                r = c->warm_prepare(prog);
                                if (r < 0) {
                                        kill(prog, SIGKILL);
                                        child_fail(c->status_w, "copying the zygote's huge pages into the program", r);
                                }
                                if (kill(prog, SIGCONT) < 0)
                                        child_fail(c->status_w, "resuming the program", -errno);
                        }
                        exec_small_init(c, holder_pipe[0], prog);
                }
                pc.holder_w = holder_pipe[1];
                prog = fork();
                if (prog == 0)
                        run_program_warm(&pc);
                close(holder_pipe[1]);
        } else
                prog = clone(run_program_fn, program_stack + sizeof program_stack, CLONE_VM | CLONE_VFORK | SIGCHLD,
                             (void *)c);
        if (prog < 0)
                child_fail(c->status_w, "forking the program", -errno);

        if (!c->warm_main) {
                m = (struct msg){ .type = MSG_STARTED, .t_ns = now_ns() };
                send_msg(c->status_w, &m);
        } else
                close(c->work_r);
        close(c->out_w);
        close(c->err_w);
        close(c->stdin_fd);
        if (c->work_fd >= 0)
                close(c->work_fd);
        for (size_t i = 0; i < c->plan.n_binds; i++)
                close(c->plan.binds[i].fd);
        init_reap(&(struct reap_args){ .status_w = c->status_w, .holder_r = holder_pipe[0], .prog = prog,
                                       .uid = c->uid, .gid = c->gid, .own_uid = c->init_uid,
                                       .own_gid = c->init_gid, .userns = c->userns });
}

/* ---- the supervisor ---------------------------------------------------- */

struct pipes {
        int out[2], err[2], status[2], sync[2];
};

static void close_pair(int p[2]) {
        for (int i = 0; i < 2; i++)
                if (p[i] >= 0) {
                        close(p[i]);
                        p[i] = -1;
                }
}

static int make_stdin(const char *data, size_t len) {
        _cleanup_close_ int fd = memfd_create("stdin", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        int r;

        if (fd < 0)
                return -errno;
        if (len > 0 && (r = write_all(fd, data, len)) < 0)
                return r;
        /* Sealed: the program can read and seek, never change it (not even
         * by reopening /proc/self/fd/0 for writing). */
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                return -errno;
        if (lseek(fd, 0, SEEK_SET) < 0)
                return -errno;
        return TAKE_FD(fd);
}

/*
 * Where no cgroup accounts for the run, the CPU time and peak memory of a run
 * that is killed would be lost with it (init never reports). So, just before
 * the kill, add up what /proc says about every live process of the tree:
 * user+system time including reaped children, and the largest VmHWM.
 */
struct tree_sample {
        uint64_t cpu_ticks;
        uint64_t peak_kb;
        unsigned visited;
};

static void sample_process(pid_t pid, struct tree_sample *t, int depth) {
        char path[96];
        struct buf b;
        unsigned long long ut, st, cut, cst;
        DIR *tasks;
        struct dirent *de;

        if (depth > 64 || t->visited++ > 4096)
                return;
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        if (read_file(path, 4096, &b) == 0) {
                const char *p = strrchr(b.data, ')');
                /* After "comm)": state ppid pgrp session tty tpgid flags
                 * minflt cminflt majflt cmajflt utime stime cutime cstime */
                if (p && sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu", &ut, &st,
                                &cut, &cst) == 4)
                        t->cpu_ticks += ut + st + cut + cst;
                buf_done(&b);
        }
        snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
        if (read_file(path, 16384, &b) == 0) {
                const char *h = strstr(b.data, "\nVmHWM:");
                unsigned long long kb;
                if (h && sscanf(h + 8, "%llu", &kb) == 1 && kb > t->peak_kb)
                        t->peak_kb = kb;
                buf_done(&b);
        }
        snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
        tasks = opendir(path);
        if (!tasks)
                return;
        while ((de = readdir(tasks))) {
                char cpath[128];
                if (de->d_name[0] == '.')
                        continue;
                snprintf(cpath, sizeof cpath, "/proc/%d/task/%.16s/children", (int)pid, de->d_name);
                if (read_file(cpath, 1 << 16, &b) < 0)
                        continue;
                for (char *q = b.data; q && *q;) {
                        char *end;
                        long child = strtol(q, &end, 10);
                        if (end == q)
                                break;
                        if (child > 0)
                                sample_process((pid_t)child, t, depth + 1);
                        q = end;
                }
                buf_done(&b);
        }
        closedir(tasks);
}

struct watch {
        struct pyexec_result *res;
        const struct pyexec_spec *spec;
        bool started, exited_msg, init_gone;
        bool rest_stopped; /* EXITED said stopped processes are left */
        bool killed_wall, killed_cpu, killed_output, killed_oom;
        bool setup_failed;
        struct msg error_msg;
        struct msg verdict; /* MSG_VERDICT from the runner, when type is set */
        uint64_t t_start, t_end; /* from init's messages */
        uint64_t sup_start;      /* supervisor's clock at STARTED */
        int wstatus;
        uint64_t cpu_us, maxrss_kb;
        uint64_t term_deadline; /* SIGTERM sent: SIGKILL at this time */
        /* EXITED with the rest stopped (warm): until this time the
         * pipes' end is awaited (it is there unless a stopped process or
         * a cycle in flight holds a write end); after it, what they hold
         * is all there is (rest_settled). */
        uint64_t rest_deadline;
        bool rest_settled;
        pid_t init_pid;
        bool sample_before_kill; /* no cgroup accounts for the run */
        struct tree_sample sample;
        /* The warm path: the run is over at EXITED (init's own exit and
         * the namespace's teardown happen after the answer), and
         * the sandbox's cgroup already counted its construction. */
        bool warm;
        uint64_t cpu_base_ns, oom_base;
        uint64_t start_cpu_us; /* the program's own, at STARTED (warm) */
        char msgbuf[sizeof(struct msg) * 4];
        size_t msglen;
};

static void handle_msgs(struct watch *w) {
        while (w->msglen >= sizeof(struct msg)) {
                struct msg m;
                memcpy(&m, w->msgbuf, sizeof m);
                memmove(w->msgbuf, w->msgbuf + sizeof m, w->msglen - sizeof m);
                w->msglen -= sizeof m;
                switch (m.type) {
                case MSG_ERROR:
                        if (!w->setup_failed) {
                                w->setup_failed = true;
                                w->error_msg = m;
                        }
                        break;
                case MSG_VERDICT:
                        if (!w->verdict.type)
                                w->verdict = m;
                        break;
                case MSG_STARTED:
                        w->start_cpu_us = m.cpu_us;
                        w->started = true;
                        w->t_start = m.t_ns;
                        w->sup_start = now_ns();
                        break;
                case MSG_EXITED:
                        w->exited_msg = true;
                        if (m.err == EXITED_REST_STOPPED) {
                                w->rest_stopped = true;
                                w->rest_deadline = now_ns() + REST_GRACE_NS;
                        }
                        w->t_end = m.t_ns;
                        w->wstatus = m.wstatus;
                        w->cpu_us = m.cpu_us;
                        w->maxrss_kb = m.maxrss_kb;
                        break;
                }
        }
}

/* Append output within the cap; returns false once the cap is exceeded. */
static bool take_output(struct watch *w, struct buf *stream, int echo_fd, const char *p, size_t n) {
        struct pyexec_result *res = w->res;
        uint64_t cap = w->spec->limits.max_output;
        size_t used = res->out.len + res->err.len;
        size_t room = used >= cap ? 0 : (size_t)(cap - used);
        size_t keep = n < room ? n : room;

        if (keep) {
                (void)buf_append(stream, p, keep);
                (void)buf_append(&res->merged, p, keep);
                if (echo_fd >= 0)
                        (void)write_all(echo_fd, p, keep);
        }
        return keep == n;
}

static void kill_init(int pidfd) {
        syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
}

static void watch_kill(struct watch *w, int pidfd) {
        if (w->sample_before_kill && w->started && !w->init_gone && w->sample.visited == 0)
                sample_process(w->init_pid, &w->sample, 0);
        kill_init(pidfd);
}

static void watch_run(struct watch *w, int out_r, int err_r, int status_r, int pidfd, const struct cgroup_run *cg,
                      long ncpu) {
        const struct pyexec_limits *lim = &w->spec->limits;
        uint64_t setup_deadline = now_ns() + SETUP_TIMEOUT_NS;
        uint64_t cpu_limit_ns = lim->cpu_time_ms * 1000000ull;
        bool cpu_polled = cg && cgroup_run_cpu_ns(cg, &(uint64_t){ 0 }) == 0;
        int fds[4] = { out_r, err_r, status_r, pidfd };
        char chunk[65536];

        for (;;) {
                struct pollfd pfd[4];
                int n = 0, timeout_ms;
                uint64_t now = now_ns(), deadline, next_cpu_check = UINT64_MAX;
                /* Which pipes no process of the run can write to any more:
                 * what they hold now is all they will ever hold. Their
                 * write ends may still be open, in flight in a Unix socket
                 * that is itself in flight (a program can send a socket
                 * into its own queue, with its stdout beside it, and
                 * exit): end-of-file would then wait for the kernel's
                 * collector, which runs whenever some unrelated process
                 * closes a Unix socket. So these are read until nothing is
                 * left and closed, and end-of-file is never waited for.
                 * Once init is gone, every process of its PID namespace is
                 * (the kernel kills and reaps them before init's exit is
                 * reported); EXITED without stopped processes left comes
                 * after init reaped every other process; with them, the
                 * stop has long taken effect once rest_deadline passed. */
                bool out_final = w->init_gone || (w->exited_msg && (!w->rest_stopped || w->rest_settled));
                bool drain[3] = { out_final && fds[0] >= 0, out_final && fds[1] >= 0, w->init_gone && fds[2] >= 0 };

                if (fds[0] < 0 && fds[1] < 0 && (w->init_gone ? fds[2] < 0 : w->warm && w->exited_msg))
                        break;
                if (!w->started)
                        deadline = setup_deadline;
                else
                        deadline = w->sup_start + lim->timeout_ms * 1000000ull;
                if (w->init_gone || w->killed_wall || w->killed_cpu || w->killed_output || w->killed_oom ||
                    w->setup_failed)
                        deadline = UINT64_MAX;
                if (w->term_deadline && !w->init_gone) {
                        if (now >= w->term_deadline) {
                                w->term_deadline = 0;
                                watch_kill(w, pidfd);
                                continue;
                        }
                        deadline = w->term_deadline;
                }
                if (w->rest_deadline && !w->init_gone) {
                        /* Only a program that took its holder over and
                         * had it reopen its output, or that left its
                         * output in flight, gets here: what was written
                         * is in the pipes, and stopped processes write no
                         * more. The pool kills them after the answer. */
                        if (now >= w->rest_deadline) {
                                w->rest_deadline = 0;
                                w->rest_settled = true;
                                continue;
                        }
                        if (w->rest_deadline < deadline)
                                deadline = w->rest_deadline;
                }
                if (deadline != UINT64_MAX && now >= deadline) {
                        if (w->started)
                                w->killed_wall = true;
                        else
                                w->setup_failed = true;
                        if (w->started && w->spec->term_grace_ms > 0) {
                                /* A polite end first: init forwards SIGTERM
                                 * to the whole tree. */
                                syscall(SYS_pidfd_send_signal, pidfd, SIGTERM, NULL, 0);
                                w->term_deadline = now + w->spec->term_grace_ms * 1000000ull;
                        } else
                                watch_kill(w, pidfd);
                        continue;
                }
                if (cpu_polled && w->started && !w->init_gone && !w->killed_cpu && !w->killed_oom) {
                        uint64_t used = 0, ooms = 0, interval;
                        if (cgroup_run_cpu_ns(cg, &used) == 0 && (used -= w->cpu_base_ns) >= cpu_limit_ns) {
                                w->killed_cpu = true;
                                watch_kill(w, pidfd);
                                continue;
                        }
                        /* One OOM kill ends the run (v1 kills one victim;
                         * v2's memory.oom.group already takes them all). */
                        if (cgroup_run_oom_kills(cg, &ooms) == 0 && ooms > w->oom_base) {
                                w->killed_oom = true;
                                watch_kill(w, pidfd);
                                continue;
                        }
                        /* The tree cannot burn more than ncpu seconds per
                         * second: sleep until it could first reach the
                         * limit, between 10 and 100 ms. */
                        interval = (cpu_limit_ns - used) / (uint64_t)ncpu;
                        if (interval < 10000000ull)
                                interval = 10000000ull;
                        if (interval > 100000000ull)
                                interval = 100000000ull;
                        next_cpu_check = now + interval;
                }
                if (next_cpu_check < deadline)
                        deadline = next_cpu_check;
                timeout_ms = deadline == UINT64_MAX ? -1 : (int)((deadline - now + 999999) / 1000000);
                if (drain[0] || drain[1] || drain[2])
                        timeout_ms = 0;

                for (int i = 0; i < 4; i++)
                        if (fds[i] >= 0 && !(i == 3 && w->init_gone))
                                pfd[n++] = (struct pollfd){ .fd = fds[i], .events = POLLIN };
                if (poll(pfd, (nfds_t)n, timeout_ms) < 0) {
                        if (errno == EINTR)
                                continue;
                        watch_kill(w, pidfd);
                        w->setup_failed = true;
                        break;
                }
                for (int k = 0; k < n; k++) {
                        int i;
                        ssize_t got;
                        for (i = 0; i < 4 && fds[i] != pfd[k].fd; i++)
                                ;
                        if (!pfd[k].revents) {
                                if (i < 3 && drain[i]) {
                                        close(fds[i]); /* empty, and nothing can fill it */
                                        fds[i] = -1;
                                }
                                continue;
                        }
                        if (i == 3) {
                                w->init_gone = true;
                                continue;
                        }
                        if (i == 2) {
                                got = read(fds[2], w->msgbuf + w->msglen, sizeof w->msgbuf - w->msglen);
                                if (got > 0) {
                                        w->msglen += (size_t)got;
                                        handle_msgs(w);
                                } else if (got == 0 || errno != EINTR) {
                                        close(fds[2]);
                                        fds[2] = -1;
                                }
                                continue;
                        }
                        got = read(fds[i], chunk, sizeof chunk);
                        if (got < 0 && errno == EINTR)
                                continue;
                        if (got <= 0) {
                                close(fds[i]);
                                fds[i] = -1;
                                continue;
                        }
                        if (w->killed_output)
                                continue; /* drain and drop until EOF */
                        if (!take_output(w, i == 0 ? &w->res->out : &w->res->err,
                                         i == 0 ? w->spec->echo_stdout : w->spec->echo_stderr, chunk, (size_t)got)) {
                                w->killed_output = true;
                                w->res->truncated = true;
                                watch_kill(w, pidfd);
                        }
                }
        }
        for (int i = 0; i < 3; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
}

/* ---- classification ---------------------------------------------------- */

static const char *signal_name(int sig, char *buf, size_t n) {
        const char *abbrev = sigabbrev_np(sig);
        if (abbrev)
                snprintf(buf, n, "SIG%s", abbrev);
        else
                snprintf(buf, n, "signal %d", sig);
        return buf;
}

/* The last line of s (without its newline). */
static const char *last_line(const struct buf *s, size_t *ret_len) {
        size_t end = s->len;
        while (end > 0 && s->data[end - 1] == '\n')
                end--;
        size_t start = end;
        while (start > 0 && s->data[start - 1] != '\n')
                start--;
        *ret_len = end - start;
        return s->data ? s->data + start : "";
}

static bool starts_with(const char *p, size_t n, const char *prefix) {
        size_t l = strlen(prefix);
        return n >= l && memcmp(p, prefix, l) == 0;
}

/* Line n (1-based) of f, without its newline; NULL when f is shorter. */
static const char *file_line(const struct pyexec_file *f, unsigned long n, size_t *ret_len) {
        const char *p = f->data, *end = f->data + f->len;
        for (unsigned long i = 1; p && p < end && i < n; i++) {
                p = memchr(p, '\n', (size_t)(end - p));
                if (p)
                        p++;
        }
        if (!p || p > end || (p == end && n > 1))
                return NULL;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        *ret_len = (size_t)((nl ? nl : end) - p);
        return p;
}

/* Characters (UTF-8 lead bytes) in p[0..n). */
static size_t utf8_chars(const char *p, size_t n) {
        size_t c = 0;
        for (size_t i = 0; i < n; i++)
                if (((unsigned char)p[i] & 0xc0) != 0x80)
                        c++;
        return c;
}

/*
 * A compile error prints no "in <function>" on its frame line: CPython
 * reports the file and line of the code it could not compile, without a
 * "Traceback" header for the main script and as the last frame below one for
 * an imported module. A SyntaxError raised by running code (eval, exec, a
 * parser exercise raising it) has a frame with ", in ...", and is a runtime
 * error. The frame must be a file of the program.
 */
static bool classify_syntax_error(const struct pyexec_spec *spec, struct pyexec_result *res) {
        const struct buf *e = &res->err;
        size_t ll, col = 0;
        const char *last = last_line(e, &ll);
        const char *frame = NULL, *p, *base;
        const struct pyexec_file *src = NULL;
        char file[256] = "", rest[4] = "";
        unsigned long line = 0;

        if (!e->data || !(starts_with(last, ll, "SyntaxError: ") || starts_with(last, ll, "IndentationError: ") ||
                          starts_with(last, ll, "TabError: ")))
                return false;
        /* A file python3 cannot decode is reported on one line, with no
         * frame: "... in file /sandbox/main.py on line 1, but no encoding
         * declared; ...". */
        if (starts_with(last, ll, "SyntaxError: Non-UTF-8 code starting with ")) {
                const char *in = strstr(last, " in file " SANDBOX_WORKDIR "/");
                if (!in || in > last + ll)
                        return false;
                free(res->message);
                res->message = strdup_printf("%.*s", (int)(ll > 300 ? 300 : ll), last);
                res->status = PYEXEC_SYNTAX_ERROR;
                return true;
        }
        for (p = e->data; (p = strstr(p, "  File \"")) && p < last; p++)
                frame = p;
        if (!frame || sscanf(frame, "  File \"%255[^\"]\", line %lu%3[^\n]", file, &line, rest) < 2 || rest[0])
                return false;
        if (file[0] == '/' && strncmp(file, SANDBOX_WORKDIR "/", strlen(SANDBOX_WORKDIR) + 1) != 0)
                return false;
        base = strrchr(file, '/');
        base = base ? base + 1 : file;
        for (size_t i = 0; i < spec->n_files; i++)
                if (strcmp(spec->files[i].name, base) == 0)
                        src = &spec->files[i];
        if (!src)
                return false;

        /* Below the frame: the source line, stripped of its indentation and
         * re-indented by four, then a caret under the offending byte. The
         * column counts characters of the real line, as SyntaxError.offset. */
        {
                const char *sl = strchr(frame, '\n');
                const char *cl = sl ? strchr(sl + 1, '\n') : NULL;
                size_t len;
                const char *text = file_line(src, line, &len);
                if (sl && cl && cl < last && text) {
                        const char *c = cl + 1;
                        size_t printed_indent = strspn(sl + 1, " "), caret = strspn(c, " ");
                        size_t indent = strspn(text, " \t\f");
                        if (c[caret] == '^' && caret >= printed_indent) {
                                size_t byte = indent + (caret - printed_indent);
                                if (byte <= len)
                                        col = utf8_chars(text, byte) + 1;
                        }
                }
        }
        free(res->message);
        if (col)
                res->message = strdup_printf("%.*s (%s, line %lu, column %zu)", (int)ll, last, base, line, col);
        else
                res->message = strdup_printf("%.*s (%s, line %lu)", (int)ll, last, base, line);
        res->status = PYEXEC_SYNTAX_ERROR;
        return true;
}

/*
 * An uncaught refusal of the policy's audit hook: the traceback's last line
 * is "PolicyImportError: ..." or "PolicyPermissionError: ...". The message
 * gains the program's line it came from (the last frame in a file of the
 * program).
 */
static bool classify_policy_error(const struct pyexec_spec *spec, struct pyexec_result *res) {
        const struct buf *e = &res->err;
        size_t ll;
        const char *last = last_line(e, &ll), *p, *frame = NULL, *text;
        static const char *const kinds[] = { "PolicyImportError: ", "PolicyPermissionError: " };
        char file[256] = "";
        unsigned long line = 0;
        size_t skip = 0;

        if (!spec->runner || !spec->policy || !e->data)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(kinds); i++)
                if (starts_with(last, ll, kinds[i]))
                        skip = strlen(kinds[i]);
        if (!skip)
                return false;
        text = last + skip;
        for (p = e->data; (p = strstr(p, "  File \"" SANDBOX_WORKDIR "/")) && p < last; p++)
                frame = p;
        free(res->message);
        if (frame && sscanf(frame, "  File \"" SANDBOX_WORKDIR "/%255[^\"]\", line %lu", file, &line) == 2)
                res->message = strdup_printf("%.*s (%s, line %lu)", (int)(ll - skip), text, file, line);
        else
                res->message = strdup_printf("%.*s", (int)(ll - skip), text);
        res->status = PYEXEC_POLICY_VIOLATION;
        return true;
}

static void classify(const struct pyexec_spec *spec, const struct watch *w, const struct cgroup_stats *cs,
                     bool have_cgroup_memory, struct pyexec_result *res) {
        const struct pyexec_limits *lim = &spec->limits;
        char sig[32];
        size_t ll;
        const char *last;

        res->exit_code = -1;
        res->signal = 0;
        if (w->exited_msg) {
                if (WIFEXITED(w->wstatus))
                        res->exit_code = WEXITSTATUS(w->wstatus);
                else if (WIFSIGNALED(w->wstatus))
                        res->signal = WTERMSIG(w->wstatus);
        } else if (w->killed_wall || w->killed_cpu || w->killed_output || w->killed_oom || cs->oom_kills > 0)
                res->signal = SIGKILL;

        if (w->setup_failed || !w->started) {
                res->status = PYEXEC_INTERNAL_ERROR;
                if (w->error_msg.type == MSG_ERROR)
                        res->message = strdup_printf("sandbox setup failed: %s: %s", w->error_msg.step,
                                                     strerror(w->error_msg.err));
                else
                        res->message = strdup("sandbox setup failed: the sandbox did not start");
                res->exit_code = -1;
                res->signal = 0;
                return;
        }
        if (!w->exited_msg && !w->killed_wall && !w->killed_cpu && !w->killed_output && !w->killed_oom &&
            cs->oom_kills == 0) {
                /* init died without reporting the program's exit, and
                 * nothing of ours killed it, while the program ran. The
                 * program has no way to reach its init (reap.c, the
                 * seccomp policy), so this is the program's run going
                 * wrong in a way the sandbox contained: its verdict, not
                 * a failure of pyexec, never a reason to run it again
                 * elsewhere nor one for the circuit breaker (internal_error
                 * would be both). A warm sandbox lost with its zygote is
                 * run again instead (run_warm_once). */
                res->status = PYEXEC_RUNTIME_ERROR;
                res->message = strdup("the run's sandbox ended before the program's exit was reported (its init was "
                                      "killed while the program ran)");
                res->exit_code = -1;
                res->signal = 0;
                return;
        }
        if (w->killed_output) {
                res->status = PYEXEC_OUTPUT_LIMIT;
                res->message = strdup_printf("output limit of %llu bytes exceeded (stdout and stderr together)",
                                             (unsigned long long)lim->max_output);
                return;
        }
        if (w->killed_wall) {
                res->status = PYEXEC_TIMEOUT;
                res->message = strdup_printf("wall-clock time limit of %llu ms exceeded",
                                             (unsigned long long)lim->timeout_ms);
                return;
        }
        if (w->killed_cpu || res->signal == SIGXCPU ||
            (res->signal == SIGKILL && res->cpu_ms >= (double)lim->cpu_time_ms)) {
                res->status = PYEXEC_TIMEOUT;
                res->message = strdup_printf("CPU time limit of %llu ms exceeded", (unsigned long long)lim->cpu_time_ms);
                return;
        }
        if (w->killed_oom || cs->oom_kills > 0) {
                res->status = PYEXEC_MEMORY_LIMIT;
                res->message = strdup_printf("memory limit of %llu MB exceeded (killed by the kernel's OOM killer)",
                                             (unsigned long long)lim->memory_mb);
                return;
        }
        if (res->signal == SIGBUS && cs->hugetlb_limit_hit) {
                /* Its huge pages are its copy of the zygote's; a process
                 * that shares them after a raw clone() (not os.fork, which
                 * moves them back) and writes one needs another page, which
                 * the run's hugetlb cgroup refuses. */
                res->status = PYEXEC_MEMORY_LIMIT;
                res->message = strdup("memory limit exceeded: a process of the run wrote to a huge page it shared "
                                      "after a raw clone() (killed by SIGBUS; use os.fork or subprocess)");
                return;
        }
        last = last_line(&res->err, &ll);
        if (res->exit_code > 0 && res->err.data && (starts_with(last, ll, "MemoryError") && (ll == 11 || last[11] == ':'))) {
                res->status = PYEXEC_MEMORY_LIMIT;
                res->message = strdup_printf("memory limit of %llu MB exceeded (MemoryError%s)",
                                             (unsigned long long)lim->memory_mb,
                                             have_cgroup_memory ? "" : " under RLIMIT_AS");
                return;
        }
        if (res->exit_code == 0) {
                res->status = PYEXEC_OK;
                return;
        }
        if (res->exit_code == 1 && w->verdict.type == MSG_VERDICT &&
            (w->verdict.err == PYEXEC_SYNTAX_ERROR || w->verdict.err == PYEXEC_POLICY_VIOLATION)) {
                /* The runner's static check refused it before it ran. */
                res->status = (enum pyexec_status)w->verdict.err;
                res->message = strndup(w->verdict.step, sizeof w->verdict.step - 1);
                return;
        }
        if (res->exit_code == 1 && classify_policy_error(spec, res))
                return;
        if (res->exit_code == 1 && classify_syntax_error(spec, res))
                return;
        res->status = PYEXEC_RUNTIME_ERROR;
        if (res->signal)
                res->message = strdup_printf("killed by signal %s", signal_name(res->signal, sig, sizeof sig));
        else if (res->exit_code > 0 && ll > 0 && res->err.data)
                res->message = strdup_printf("exited with code %d: %.*s", res->exit_code, (int)(ll > 300 ? 300 : ll), last);
        else
                res->message = strdup_printf("exited with code %d", res->exit_code);
}

/* Measurements, then the verdict. ru: init's rusage, when it was reaped. */
static void finish_result(const struct pyexec_spec *spec, struct watch *w, const struct cgroup_stats *cs,
                          bool have_cgroup_memory, const struct rusage *ru, struct pyexec_result *res) {
        if (w->exited_msg)
                res->wall_ms = (double)(w->t_end - w->t_start) / 1e6;
        else if (w->started)
                res->wall_ms = (double)(now_ns() - w->sup_start) / 1e6;
        if (cs->have_cpu)
                res->cpu_ms = (double)(cs->cpu_ns - w->cpu_base_ns) / 1e6;
        else if (w->exited_msg)
                res->cpu_ms = (double)(w->cpu_us > w->start_cpu_us ? w->cpu_us - w->start_cpu_us : 0) / 1e3;
        else {
                double sampled = (double)w->sample.cpu_ticks * 1e3 / (double)sysconf(_SC_CLK_TCK);
                res->cpu_ms = ru ? ((double)ru->ru_utime.tv_sec * 1e3 + (double)ru->ru_utime.tv_usec / 1e3 +
                                    (double)ru->ru_stime.tv_sec * 1e3 + (double)ru->ru_stime.tv_usec / 1e3)
                                 : 0;
                if (sampled > res->cpu_ms)
                        res->cpu_ms = sampled;
        }
        if (cs->have_peak)
                res->peak_kb = cs->peak_bytes / 1024;
        else {
                res->peak_kb = w->exited_msg ? w->maxrss_kb : ru ? (uint64_t)ru->ru_maxrss : 0;
                if (w->sample.peak_kb > res->peak_kb)
                        res->peak_kb = w->sample.peak_kb;
        }
        classify(spec, w, cs, have_cgroup_memory, res);
}

/* The generated /etc of a sandbox whose program is uid/gid. */
static void fill_etc(struct mount_file etc[5], char *passwd, size_t np, char *group, size_t ng, char *hosts, size_t nh,
                     uid_t uid, gid_t gid) {
        snprintf(passwd, np,
                 "root:x:0:0:root:/root:/usr/sbin/nologin\n"
                 "sandbox:x:%u:%u:sandbox:" SANDBOX_WORKDIR ":/usr/sbin/nologin\n"
                 "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
                 (unsigned)uid, (unsigned)gid);
        snprintf(group, ng, "root:x:0:\nsandbox:x:%u:\nnogroup:x:65534:\n", (unsigned)gid);
        snprintf(hosts, nh, "127.0.0.1\tlocalhost " SANDBOX_HOSTNAME "\n::1\tlocalhost ip6-localhost\n");
        etc[0] = (struct mount_file){ "passwd", passwd, strlen(passwd) };
        etc[1] = (struct mount_file){ "group", group, strlen(group) };
        etc[2] = (struct mount_file){ "hosts", hosts, strlen(hosts) };
        etc[3] = (struct mount_file){ "hostname", SANDBOX_HOSTNAME "\n", sizeof SANDBOX_HOSTNAME };
        etc[4] = (struct mount_file){ "nsswitch.conf", "passwd: files\ngroup: files\nhosts: files\n", 41 };
}

/* ---- setup ------------------------------------------------------------- */

static int check_spec(const struct pyexec_spec *spec, char *err, size_t errlen) {
        uint64_t total = 0;
        bool have_main = false;

        if (pyexec_limits_validate(&spec->limits, "", err, errlen) < 0)
                return -EINVAL;
        if (!spec->argv && (!spec->python || spec->python[0] != '/')) {
                snprintf(err, errlen, "the interpreter must be an absolute path");
                return -EINVAL;
        }
        for (size_t i = 0; i < spec->n_files; i++) {
                const struct pyexec_file *f = &spec->files[i];
                if (!f->name || !filename_is_plain(f->name, strlen(f->name))) {
                        snprintf(err, errlen, "file name '%s' is not a plain file name", f->name ? f->name : "");
                        return -EINVAL;
                }
                for (size_t j = 0; j < i; j++)
                        if (strcmp(spec->files[j].name, f->name) == 0) {
                                snprintf(err, errlen, "file name '%s' is given twice", f->name);
                                return -EINVAL;
                        }
                if (strcmp(f->name, PYEXEC_MAIN_FILE) == 0)
                        have_main = true;
                total += f->len + 4096;
        }
        if (!have_main && !spec->argv) {
                snprintf(err, errlen, "no %s among the files", PYEXEC_MAIN_FILE);
                return -EINVAL;
        }
        if (spec->argv && (spec->n_argv == 0 || !spec->argv[0] || spec->argv[0][0] != '/')) {
                snprintf(err, errlen, "a job's argv[0] must be the interpreter's absolute path");
                return -EINVAL;
        }
        for (size_t i = 0; i < spec->n_binds; i++)
                if (spec->binds[i].fd < 0 || !spec->binds[i].dest || spec->binds[i].dest[0] != '/') {
                        snprintf(err, errlen, "bind %zu: needs a descriptor and an absolute destination", i);
                        return -EINVAL;
                }
        if (total > spec->limits.disk_mb * 1024 * 1024) {
                snprintf(err, errlen, "the files (%llu bytes) do not fit in the work directory (%llu MB)",
                         (unsigned long long)total, (unsigned long long)spec->limits.disk_mb);
                return -EINVAL;
        }
        return 0;
}

static void fail_internal(struct pyexec_result *res, const char *what, int r) {
        res->status = PYEXEC_INTERNAL_ERROR;
        res->exit_code = -1;
        res->message = strdup_printf("%s: %s", what, strerror(r < 0 ? -r : r));
}


/* ---- the warm path ----------------------------------------------------- */

void pyexec_sandbox_host(const struct pyexec_sandbox *sb, struct sandbox_host_info *ret) {
        *ret = (struct sandbox_host_info){
                .privileged = sb->privileged,
                .uid_base = sb->uid_base,
                .uid_count = sb->uid_count,
                .lock_dir = sb->lock_dir,
                .cg = &sb->cg,
                .outer_uid = sb->outer_uid,
                .outer_gid = sb->outer_gid,
        };
}

int pyexec_warm_send_reply(int sock, const struct warm_reply *rep, int fd) {
        return send_fds(sock, rep, sizeof *rep, &fd, fd >= 0);
}

/* The small init's first steps, on init_private.stack in the zygote's
 * memory: the reply, with a pidfd of itself (pid 1 here), then run_init. */
static int small_init_main(void *arg) {
        const struct child_ctx *c = arg;
        struct warm_reply rep = { .pid = small_init_pid };
        int pidfd = (int)syscall(SYS_pidfd_open, 1, 0);

        if (pidfd < 0 || pyexec_warm_send_reply(c->ctl, &rep, pidfd) < 0)
                _exit(127); /* the zygote answers for it */
        close(pidfd);
        atomic_store(&small_init_replied, true);
        run_init(c);
}

pid_t pyexec_sandbox_spawn_warm(const struct pyexec_sandbox *sb, const struct warm_request *req,
                                const int fds[_WARM_FD_MAX], const struct warm_program *program, int ctl, int init_fd,
                                bool *replied) {
        struct child_ctx c = { .sb = sb };
        struct mount_file etc[5];
        char passwd[512], group[256], hosts[160];
        int keep[_WARM_FD_MAX + 1]; /* + init_fd */
        /* A network namespace from the service's pool is joined by init
         * (run_init) instead of made: making one and its teardown cost
         * ~0.8 ms of CPU a run here. Only without a user namespace: joining
         * needs CAP_SYS_ADMIN over the namespace's owner. */
        const bool join_net = fds[WARM_FD_NET] >= 0 && !req->userns;
        const unsigned long flags = (NS_SANDBOX_FLAGS & ~(join_net ? (unsigned long)CLONE_NEWNET : 0ul)) |
                                    (req->userns ? CLONE_NEWUSER : 0ul);
        pid_t pid;

        *replied = false;
        c.uid = req->uid;
        c.gid = req->gid;
        c.init_uid = req->init_uid;
        c.init_gid = req->init_gid;
        c.userns = req->userns != 0;
        c.cgroup_ns = true;
        c.runner_fd = c.work_fd = c.stdin_fd = -1;
        c.sync_r = fds[WARM_FD_SYNC];
        c.status_w = fds[WARM_FD_STATUS];
        c.out_w = fds[WARM_FD_OUT];
        c.err_w = fds[WARM_FD_ERR];
        c.work_r = fds[WARM_FD_WORK];
        c.net_fd = join_net ? fds[WARM_FD_NET] : -1;
        c.warm_main = program->main;
        fill_etc(etc, passwd, sizeof passwd, group, sizeof group, hosts, sizeof hosts, c.uid, c.gid);
        c.plan = (struct mount_plan){
                .staging = "/tmp",
                .work_bytes = req->disk_bytes,
                .tmp_bytes = req->disk_bytes,
                .inodes = req->inodes,
                .uid = c.uid,
                .gid = c.gid,
                .etc = etc,
                .n_etc = ELEMENTSOF(etc),
        };
        memcpy(keep, fds, WARM_FD_NET * sizeof(int));
        c.keep = keep;
        c.n_keep = WARM_FD_NET;
        if (c.net_fd >= 0)
                keep[c.n_keep++] = c.net_fd;
        if (init_fd < 0) {
                sort_fds(keep, c.n_keep);
                pid = ns_clone(flags);
                if (pid == 0)
                        run_init(&c);
                return pid;
        }

        if (!init_private_dontfork) {
                /* Once: see fork_stack. Harmless if refused (only slower).
                 * Refused when the zygote's data is on hugetlb pages
                 * (zygote-heap.c: one cannot be split), and needless: init
                 * copies every such page into the program, after which the
                 * zygote's is its own again and init's writes copy nothing. */
                (void)madvise(&init_private, sizeof init_private, MADV_DONTFORK);
                init_private_dontfork = true;
        }
        c.small_init = true;
        c.warm_prepare = program->prepare;
        c.init_fd = init_fd;
        c.ctl = ctl;
        keep[c.n_keep++] = init_fd;
        sort_fds(keep, c.n_keep);
        warm_ctx = c;
        atomic_store(&small_init_replied, false);
        if (setjmp(warm_resume) != 0)
                /* The program, forked by init from this memory as it is
                 * while clone() below waits (run_init). */
                run_program_warm(&warm_ctx);
        pid = clone(small_init_main, init_private.stack + sizeof init_private.stack,
                    (int)(flags | CLONE_VM | CLONE_VFORK | CLONE_PARENT_SETTID | SIGCHLD), &warm_ctx, &small_init_pid);
        *replied = atomic_load(&small_init_replied);
        return pid < 0 ? -errno : pid;
}

/* Whether a spec can run on a pre-built sandbox: a program (not a job),
 * through the runner, with the work directory the pool's sandboxes have. */
static bool warm_eligible(const struct pyexec_sandbox *sb, const struct pyexec_spec *spec) {
        const struct warm_options *o = sb->warm ? warm_pool_options(sb->warm) : NULL;
        return o && spec->runner && !spec->argv && spec->n_binds == 0 && spec->n_env == 0 &&
               spec->limits.disk_mb == o->disk_mb;
}

static int send_work(int sock, int work_fd, int stdin_fd) {
        char byte = 'w';
        struct iovec iov = { &byte, 1 };
        union {
                char buf[CMSG_SPACE(2 * sizeof(int))];
                struct cmsghdr align;
        } u;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        ssize_t n;

        memset(u.buf, 0, sizeof u.buf);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(2 * sizeof(int));
        memcpy(CMSG_DATA(cm), (int[]){ work_fd, stdin_fd }, 2 * sizeof(int));
        do
                n = sendmsg(sock, &mh, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        return n == 1 ? 0 : -errno;
}

/* One attempt on a pre-built sandbox: 0 when the run is over (res
 * filled), -EAGAIN when no sandbox took the program before it started (a
 * dead one, a zygote being replaced): res is untouched and the run may be
 * tried again. */
static int run_warm_once(struct pyexec_sandbox *sb, const struct pyexec_spec *spec, struct pyexec_result *res) {
        struct watch w = { .res = res, .spec = spec, .warm = true };
        struct cgroup_stats cs = { 0 };
        struct rlimit_plan rp;
        struct work wk = { 0 };
        const char **argv = NULL;
        _cleanup_close_ int work_fd = -1, stdin_fd = -1;
        struct warm_box *box;
        int r = 0;

        box = warm_pool_take(sb->warm, &r);
        if (!box)
                return -EAGAIN;
        rp = (struct rlimit_plan){
                .cpu_ms = spec->limits.cpu_time_ms,
                .file_size = spec->limits.file_size_mb * 1024 * 1024,
                .open_files = spec->limits.open_files,
                .address_space = box->cg.memory ? 0 : spec->limits.memory_mb * 1024 * 1024,
                /* RLIMIT_NPROC counts the processes of the real uid: the
                 * holder's, and init's only where it shares the program's. */
                .nproc = box->cg.pids ? 0 : spec->limits.pids + WARM_EXTRA_PIDS - (box->init_uid != box->uid),
        };
        rlimit_plan_values(&rp, wk.rlimits, &wk.n_rlimits);
        argv = calloc(spec->n_args + 2, sizeof *argv);
        if (!argv) {
                fail_internal(res, "preparing the run", -ENOMEM);
                goto out;
        }
        argv[0] = PYEXEC_MAIN_FILE;
        for (size_t i = 0; i < spec->n_args; i++)
                argv[i + 1] = spec->args[i];
        wk.policy = (char *)spec->policy;
        wk.argv = (char **)argv;
        wk.n_argv = spec->n_args + 1;
        wk.files = (struct pyexec_file *)spec->files;
        wk.n_files = spec->n_files;
        if ((r = work_encode(&wk, &work_fd)) < 0) {
                fail_internal(res, "preparing the run's work", r);
                goto out;
        }
        stdin_fd = make_stdin(spec->stdin_data, spec->stdin_len);
        if (stdin_fd < 0) {
                fail_internal(res, "preparing stdin", stdin_fd);
                goto out;
        }
        /* This request's limits on the sandbox built with the defaults; the
         * pids cgroup also holds init. */
        if (box->use_cgroup) {
                uint64_t mem = spec->limits.memory_mb * 1024 * 1024, pids = spec->limits.pids + WARM_EXTRA_PIDS;
                /* Most requests keep the defaults the sandbox was built
                 * with: no writes to the cgroup then. */
                if (mem != box->memory_bytes || pids != box->pids_max) {
                        struct sandbox_host_info h;
                        pyexec_sandbox_host(sb, &h);
                        if (cgroup_run_set_limits(h.cg, &box->cg, mem, pids) < 0) {
                                r = -EAGAIN;
                                goto out;
                        }
                        box->memory_bytes = mem;
                        box->pids_max = pids;
                }
                cgroup_run_reset_peak(&box->cg);
                (void)cgroup_run_cpu_ns(&box->cg, &w.cpu_base_ns);
                (void)cgroup_run_oom_kills(&box->cg, &w.oom_base);
        }
        if (send_work(box->work_w, work_fd, stdin_fd) < 0) {
                r = -EAGAIN; /* it died waiting */
                goto out;
        }
        close(box->work_w);
        box->work_w = -1;

        w.init_pid = box->pid;
        w.sample_before_kill = !box->use_cgroup || !box->cg.cpu;
        watch_run(&w, box->out_r, box->err_r, box->status_r, box->pidfd, box->use_cgroup ? &box->cg : NULL,
                  sb->ncpu);
        box->out_r = box->err_r = box->status_r = -1;
        /* init answered: the run's processes are reaped or stopped, and
         * the pool may leave the namespace's teardown until the response
         * is out. What they left in flight in a cycle of Unix sockets is
         * released now (and again once the namespace is gone, zygote.c:
         * a stopped process may hold part of it until then). */
        box->answered = w.exited_msg;
        if (w.exited_msg)
                (void)unix_gc_schedule();
        if (box->use_cgroup) {
                cgroup_run_stats(&box->cg, &cs);
                if (cs.oom_kills >= w.oom_base)
                        cs.oom_kills -= w.oom_base;
        }
        if (!w.exited_msg && !w.killed_wall && !w.killed_cpu && !w.killed_output && !w.killed_oom &&
            cs.oom_kills == 0 && (!w.started || warm_pool_box_zygote_died(sb->warm, box))) {
                /* The sandbox was lost before the program ran (a dead
                 * one), or under it with its zygote, whose death takes its
                 * inits along: nothing the program did. Whatever it did
                 * stayed in that sandbox, so it runs again from the start
                 * elsewhere. Any other loss while the program ran is the
                 * program's (classify). */
                buf_done(&res->out);
                buf_done(&res->err);
                buf_done(&res->merged);
                res->truncated = false;
                r = -EAGAIN;
                goto out;
        }
        finish_result(spec, &w, &cs, box->cg.memory != NULL, NULL, res);
        r = 0;
out:
        free(argv);
        warm_pool_release(sb->warm, box);
        return r == -EAGAIN ? r : 0;
}

/* The warm path, with one retry on another sandbox; -EAGAIN sends the run
 * to the cold path (the pool is empty and cannot be refilled right now). */
static int run_warm(struct pyexec_sandbox *sb, const struct pyexec_spec *spec, struct pyexec_result *res) {
        for (int attempt = 0; attempt < 2; attempt++) {
                int r = run_warm_once(sb, spec, res);
                if (r != -EAGAIN)
                        return r;
        }
        return -EAGAIN;
}

int pyexec_sandbox_start_warm(struct pyexec_sandbox *sb, const struct pyexec_warm_options *o) {
        struct warm_options wo = {
                .runner_path = sb->runner_path,
                .target = o->pool,
                .disk_mb = o->disk_mb,
                .memory_mb = o->memory_mb,
                .pids = o->pids,
                .max_forks = o->max_forks,
                .max_age_s = o->max_age_s,
                .prefault = o->prefault,
                .preimport = o->preimport,
                .huge_pages = o->huge_pages,
                .max_running = o->max_running,
        };
        if (sb->runner_fd < 0)
                return -ENOENT;
        if (sb->warm)
                return -EALREADY;
        return warm_pool_start(sb, &wo, &sb->warm);
}

void pyexec_sandbox_forget_host(struct pyexec_sandbox *sb) {
        char **paths[] = { &sb->cg.memory_parent, &sb->cg.pids_parent, &sb->cg.cpu_parent, &sb->cg.hugetlb_parent };
        for (size_t i = 0; i < ELEMENTSOF(paths); i++)
                if (*paths[i])
                        explicit_bzero(*paths[i], strlen(*paths[i]));
        explicit_bzero(sb->cg.reason, sizeof sb->cg.reason);
        explicit_bzero(sb->cg.hugetlb_reason, sizeof sb->cg.hugetlb_reason);
        cgroup_host_done(&sb->cg);
        explicit_bzero(sb->runner_path, sizeof sb->runner_path);
}

bool pyexec_sandbox_runner_path(const struct pyexec_sandbox *sb, char *buf, size_t n) {
        snprintf(buf, n, "%s", sb->runner_path);
        return sb->runner_fd >= 0;
}

bool pyexec_sandbox_has_runner(const struct pyexec_sandbox *sb) {
        return sb->runner_fd >= 0;
}

bool pyexec_sandbox_is_warm(const struct pyexec_sandbox *sb) {
        return sb->warm != NULL;
}

int pyexec_sandbox_warm_stats(const struct pyexec_sandbox *sb, struct pyexec_warm_stats *ret) {
        struct warm_stats st;
        if (!sb->warm)
                return -ENODATA;
        warm_pool_get_stats(sb->warm, &st);
        *ret = (struct pyexec_warm_stats){
                .ready = st.ready,
                .sandboxes = st.sandboxes,
                .taken_ready = st.taken_ready,
                .built_on_demand = st.built_on_demand,
                .failures = st.failures,
                .zygotes = st.zygotes,
                .zygote_deaths = st.zygote_deaths,
                .netns_made = st.netns_made,
                .netns_reused = st.netns_reused,
                .zygote_pid = st.zygote_pid,
                .zygote_huge_pages = st.zygote_huge_pages,
        };
        return 0;
}

int pyexec_run(struct pyexec_sandbox *sb, const struct pyexec_spec *spec, struct pyexec_result *res) {
        static _Atomic unsigned run_counter;
        struct pipes p = { { -1, -1 }, { -1, -1 }, { -1, -1 }, { -1, -1 } };
        struct uidpool_slot slot = { .fd = -1 };
        struct cgroup_run cg = { 0 };
        struct cgroup_stats cs = { 0 };
        struct watch w = { .res = res, .spec = spec };
        struct child_ctx c = { .sb = sb };
        struct rlimit_plan rp;
        struct mount_file etc[5], *work = NULL;
        struct mount_bind *mbinds = NULL;
        char passwd[512], group[256], hosts[160], errbuf[512], cgname[64];
        char **argv = NULL, **envv = NULL;
        int *keep = NULL;
        _cleanup_close_ int stdin_fd = -1, pidfd = -1, work_fd = -1;
        bool use_cgroup = sb->cg.version != CGROUP_NONE;
        pid_t pid;
        int r, ws;
        struct rusage ru;
        static const char *const base_env[] = {
                "PATH=/usr/local/bin:/usr/bin:/bin",
                "HOME=" SANDBOX_WORKDIR,
                "LANG=C.UTF-8",
                "USER=sandbox",
                "LOGNAME=sandbox",
        };

        *res = (struct pyexec_result){ .exit_code = -1 };
        buf_init(&res->out, spec->limits.max_output);
        buf_init(&res->err, spec->limits.max_output);
        buf_init(&res->merged, spec->limits.max_output);

        if (check_spec(spec, errbuf, sizeof errbuf) < 0) {
                res->status = PYEXEC_INTERNAL_ERROR;
                res->message = strdup(errbuf);
                return -EINVAL;
        }
        if (warm_eligible(sb, spec) && run_warm(sb, spec, res) == 0)
                return 0;

        /* Identity: a host uid of its own as root, else ourselves mapped to
         * SANDBOX_INNER_ID in a user namespace. */
        if (sb->privileged) {
                r = uidpool_acquire(sb->lock_dir, sb->uid_base, sb->uid_count, &slot);
                if (r < 0) {
                        fail_internal(res, r == -EAGAIN ? "no free sandbox uid (all in use)" : "allocating a sandbox uid", r);
                        return 0;
                }
                c.uid = slot.uid;
                c.gid = slot.uid;
                c.init_uid = slot.init_uid;
                c.init_gid = slot.init_uid;
                snprintf(cgname, sizeof cgname, "box-%u", slot.index);
        } else {
                c.uid = c.init_uid = SANDBOX_INNER_ID;
                c.gid = c.init_gid = SANDBOX_INNER_ID;
                snprintf(cgname, sizeof cgname, "run-%d-%u", (int)getpid(), run_counter++);
        }
        c.userns = !sb->privileged;

        /* The pids cgroup also holds init: one task more than the program's. */
        if (use_cgroup) {
                r = cgroup_run_create(&sb->cg, cgname, spec->limits.memory_mb * 1024 * 1024, spec->limits.pids + 1, &cg);
                if (r < 0) {
                        fail_internal(res, "creating the run's cgroup", r);
                        goto out;
                }
        }

        rp = (struct rlimit_plan){
                .cpu_ms = spec->limits.cpu_time_ms,
                .file_size = spec->limits.file_size_mb * 1024 * 1024,
                .open_files = spec->limits.open_files,
                .address_space = cg.memory ? 0 : spec->limits.memory_mb * 1024 * 1024,
                /* RLIMIT_NPROC counts init only where it shares the
                 * program's real uid (a user namespace). */
                .nproc = cg.pids ? 0 : spec->limits.pids + (c.init_uid == c.uid),
        };
        rlimit_plan_values(&rp, c.rlimits, &c.n_rlimits);

        fill_etc(etc, passwd, sizeof passwd, group, sizeof group, hosts, sizeof hosts, c.uid, c.gid);

        work = calloc(spec->n_files ? spec->n_files : 1, sizeof *work);
        argv = calloc((spec->argv ? spec->n_argv : spec->n_args + 2) + 1, sizeof *argv);
        envv = calloc(ELEMENTSOF(base_env) + spec->n_env + 1, sizeof *envv);
        mbinds = calloc(spec->n_binds + 1, sizeof *mbinds);
        keep = calloc(7 + spec->n_binds, sizeof *keep);
        if (!work || !argv || !envv || !mbinds || !keep) {
                fail_internal(res, "preparing the run", -ENOMEM);
                goto out;
        }
        for (size_t i = 0; i < spec->n_files; i++)
                work[i] = (struct mount_file){ spec->files[i].name, spec->files[i].data, spec->files[i].len };
        if (spec->argv) {
                for (size_t i = 0; i < spec->n_argv; i++)
                        argv[i] = (char *)spec->argv[i];
        } else {
                argv[0] = (char *)spec->python;
                argv[1] = (char *)PYEXEC_MAIN_FILE;
                for (size_t i = 0; i < spec->n_args; i++)
                        argv[i + 2] = (char *)spec->args[i];
        }
        for (size_t i = 0; i < ELEMENTSOF(base_env); i++)
                envv[i] = (char *)base_env[i];
        for (size_t i = 0; i < spec->n_env; i++)
                envv[ELEMENTSOF(base_env) + i] = (char *)spec->env[i];
        for (size_t i = 0; i < spec->n_binds; i++) {
                const struct pyexec_bind *b = &spec->binds[i];
                mbinds[i] = (struct mount_bind){ .fd = b->fd, .dest = b->dest, .dir = b->dir, .writable = b->writable };
                /* As root the run has a uid of its own: what it may write
                 * must be its own. (Unprivileged, the caller's uid is the
                 * run's already.) */
                if (b->writable && sb->privileged && fchownat(b->fd, "", c.uid, c.gid, AT_EMPTY_PATH) < 0) {
                        fail_internal(res, "handing an output directory to the sandbox", -errno);
                        goto out;
                }
        }

        c.plan = (struct mount_plan){
                .staging = "/tmp",
                .work_bytes = spec->limits.disk_mb * 1024 * 1024,
                .tmp_bytes = spec->limits.disk_mb * 1024 * 1024,
                .inodes = 4096,
                .uid = c.uid,
                .gid = c.gid,
                .etc = etc,
                .n_etc = ELEMENTSOF(etc),
                .work = work,
                .n_work = spec->n_files,
                .binds = mbinds,
                .n_binds = spec->n_binds,
        };
        c.cgroup_ns = true;
        c.python = argv[0];
        c.runner_fd = -1;
        c.work_fd = -1;
        c.net_fd = -1;
        if (spec->runner && !spec->argv) {
                struct work wk = { .policy = (char *)spec->policy, .argv = argv + 1, .n_argv = spec->n_args + 1 };
                if (sb->runner_fd < 0) {
                        res->status = PYEXEC_INTERNAL_ERROR;
                        res->message = strdup_printf("pyexec-runner was not found (last looked at %s); "
                                                     "set PYEXEC_RUNNER to its path",
                                                     sb->runner_path);
                        goto out;
                }
                r = work_encode(&wk, &work_fd);
                if (r < 0) {
                        fail_internal(res, "preparing the runner's work", r);
                        goto out;
                }
                c.runner_fd = sb->runner_fd;
                c.work_fd = work_fd;
                /* An installed runner (under /usr) is in the sandbox at its
                 * own path; one elsewhere (a build directory) is mounted at
                 * SANDBOX_RUNNER_PATH, and /proc/self/mountinfo then names
                 * its host directory. */
                c.runner_path = sb->runner_in_usr ? sb->runner_path : SANDBOX_RUNNER_PATH;
                if (!sb->runner_in_usr)
                        mbinds[c.plan.n_binds++] = (struct mount_bind){ .fd = sb->runner_fd,
                                                                        .dest = SANDBOX_RUNNER_PATH, .exec = true };
        }
        c.argv = argv;
        c.envp = envv;

        stdin_fd = make_stdin(spec->stdin_data, spec->stdin_len);
        if (stdin_fd < 0) {
                fail_internal(res, "preparing stdin", stdin_fd);
                goto out;
        }
        if (pipe2(p.out, O_CLOEXEC) < 0 || pipe2(p.err, O_CLOEXEC) < 0 || pipe2(p.status, O_CLOEXEC) < 0 ||
            pipe2(p.sync, O_CLOEXEC) < 0) {
                fail_internal(res, "creating pipes", -errno);
                goto out;
        }
        c.sync_r = p.sync[0];
        c.status_w = p.status[1];
        c.out_w = p.out[1];
        c.err_w = p.err[1];
        c.stdin_fd = stdin_fd;
        keep[0] = c.sync_r;
        keep[1] = c.status_w;
        keep[2] = c.out_w;
        keep[3] = c.err_w;
        keep[4] = c.stdin_fd;
        keep[5] = c.runner_fd;
        keep[6] = c.work_fd;
        for (size_t i = 0; i < spec->n_binds; i++)
                keep[7 + i] = spec->binds[i].fd;
        sort_fds(keep, 7 + spec->n_binds);
        c.keep = keep;
        c.n_keep = 7 + spec->n_binds;

        pid = ns_clone(NS_SANDBOX_FLAGS | (c.userns ? CLONE_NEWUSER : 0));
        if (pid == 0)
                run_init(&c);
        if (pid < 0) {
                fail_internal(res, "creating the sandbox's namespaces", pid);
                goto out;
        }
        /* Only the children keep these ends. */
        close(p.sync[0]);
        p.sync[0] = -1;
        close(p.status[1]);
        p.status[1] = -1;
        close(p.out[1]);
        p.out[1] = -1;
        close(p.err[1]);
        p.err[1] = -1;

        pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (pidfd < 0) {
                r = -errno;
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                fail_internal(res, "opening a pidfd for the sandbox", r);
                goto out;
        }
        r = 0;
        if (c.userns)
                r = ns_write_id_maps(pid, SANDBOX_INNER_ID, sb->outer_uid, SANDBOX_INNER_ID, sb->outer_gid, true);
        if (r == 0 && use_cgroup)
                r = cgroup_run_attach(&cg, pid);
        if (r == 0 && write(p.sync[1], "x", 1) != 1)
                r = -errno;
        close(p.sync[1]);
        p.sync[1] = -1;
        if (r < 0) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                fail_internal(res, c.userns ? "mapping the sandbox's user namespace or joining its cgroup"
                                            : "joining the run's cgroup",
                              r);
                goto out;
        }

        w.init_pid = pid;
        w.sample_before_kill = !use_cgroup || !cg.cpu;
        watch_run(&w, p.out[0], p.err[0], p.status[0], pidfd, use_cgroup ? &cg : NULL, sb->ncpu);
        p.out[0] = p.err[0] = p.status[0] = -1;
        while (wait4(pid, &ws, 0, &ru) < 0 && errno == EINTR)
                ;
        /* Nothing of the run is left but descriptors it may have put in
         * flight in a cycle of Unix sockets (its output pipes, memfds with
         * their pages): the collector releases them now, not whenever some
         * other process closes a Unix socket. */
        (void)unix_gc_schedule();

        if (use_cgroup)
                cgroup_run_stats(&cg, &cs);
        finish_result(spec, &w, &cs, cg.memory != NULL, &ru, res);

out:
        if (use_cgroup)
                cgroup_run_destroy(&cg);
        uidpool_release(&slot);
        close_pair(p.out);
        close_pair(p.err);
        close_pair(p.status);
        close_pair(p.sync);
        free(work);
        free(argv);
        free(envv);
        free(mbinds);
        free(keep);
        return 0;
}
