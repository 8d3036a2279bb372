/* SPDX-License-Identifier: MIT */
/*
 * sandbox-child: init and the program up to its exec (sandbox-child.h).
 * Runs in the processes the supervisor (supervise.c) and the zygote
 * (zygote-child.c) clone; the process model, the descriptors crossing each
 * boundary and the order of construction are in supervise.c's theory of
 * operation.
 */
#include "sandbox-child.h"

#include <errno.h>
#include <linux/capability.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <ucontext.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cred.h"
#include "images.h"
#include "ns.h"
#include "reap.h"
#include "work.h"
#include "sandbox-env.h"
#include "sandbox-msg.h"
#include "util.h"

/* ---- messages from the sandbox ---------------------------------------- */

static void send_msg(int fd, const struct msg *m) {
        msg_send(fd, m);
}

static void copy_str(char *dst, size_t n, const char *src) {
        size_t i = 0;
        for (; src && src[i] && i + 1 < n; i++)
                dst[i] = src[i];
        dst[i] = 0;
}

/* Not instrumented by AddressSanitizer: what the program runs on
 * program_stack (below), a static array the sanitizer does not know as a
 * stack. Before each call that does not return (child_fail, _exit) the
 * instrumentation unpoisons from the stack pointer up to the top of the
 * thread's known stack; from program_stack that range is absurd, so the
 * sanitizer prints a warning instead, and inside the sandbox, where its
 * report file cannot be opened, that ends the program. */
#define _no_sanitize_address_ __attribute__((no_sanitize("address")))

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
void sandbox_sort_fds(int *v, size_t n) {
        for (size_t i = 1; i < n; i++)
                for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
                        int t = v[j];
                        v[j] = v[j - 1];
                        v[j - 1] = t;
                }
}

/* Everything init and the program need, prepared before the clone. */

/*
 * The program is spawned from init with CLONE_VM | CLONE_VFORK on this stack,
 * as posix_spawn does: no page tables are copied and no copy-on-write faults
 * follow, and init sleeps until the program has exec'd (or failed). Each init
 * is its own process with its own copy of this array.
 */
static char program_stack[64 * 1024] __attribute__((aligned(64)));

_Noreturn _no_sanitize_address_ static void run_program(const struct sandbox_child *c) {
        int status_fd = c->status_w, r;

        if (dup2(c->stdin_fd, 0) < 0 || dup2(c->out_w, 1) < 0 || dup2(c->err_w, 2) < 0)
                child_fail(status_fd, "setting up stdio", -errno);
        if (c->runner_fd >= 0) {
                /* The runner finds the status pipe at fd 3 and its work at
                 * fd 4 (inherited: not close-on-exec); these high copies
                 * keep the dup2s below from clobbering each other. */
                int s = fcntl(c->status_w, F_DUPFD_CLOEXEC, 10), w = fcntl(c->work_fd, F_DUPFD_CLOEXEC, 10);
                int im = c->images_w >= 0 ? fcntl(c->images_w, F_DUPFD_CLOEXEC, 10) : -1;
                if (s < 0 || w < 0 || dup2(s, RUNNER_STATUS_FD) < 0 || dup2(w, RUNNER_WORK_FD) < 0 ||
                    (c->images_w >= 0 && (im < 0 || dup2(im, RUNNER_IMAGE_FD) < 0)))
                        child_fail(status_fd, "setting up the runner's descriptors", -errno);
                status_fd = RUNNER_STATUS_FD;
                /* The images pipe at fd 5 when the run collects images. */
                close_all_except((int[]){ 0, 1, 2, RUNNER_STATUS_FD, RUNNER_WORK_FD,
                                          c->images_w >= 0 ? RUNNER_IMAGE_FD : -1 },
                                 6);
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
        r = seccomp_prog_apply(c->seccomp);
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
void sandbox_program_start_holder(int holder_w) {
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

/* The sandbox's filesystem (mount.c), or the step that failed to the
 * service. */
static void build_root(const struct sandbox_child *c) {
        const char *step = "?";
        int r = mount_build_root(&c->plan, &step);
        if (r < 0)
                child_fail(c->status_w, step, r);
}

/* The warm path's program: everything of run_program up to the exec, then
 * the runner's loop instead (which waits for the work). stdin arrives with
 * the work. */
_Noreturn static void run_program_warm(const struct sandbox_child *c) {
        int keep[] = { 0, 1, 2, c->status_w, c->work_r, c->holder_w }, r;

        /* Behind the small init the program builds the root itself
         * (sandbox_init_main): with init's privileges still, in the
         * namespaces it shares with init, and before any of the work
         * reaches it (the work comes after READY). */
        if (c->small_init)
                build_root(c);
        if (dup2(c->out_w, 1) < 0 || dup2(c->err_w, 2) < 0)
                child_fail(c->status_w, "setting up stdio", -errno);
        sandbox_sort_fds(keep, ELEMENTSOF(keep));
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
        r = seccomp_prog_apply(c->seccomp);
        if (r < 0)
                child_fail(c->status_w, "installing the seccomp filter", r);
        c->warm_main(c->status_w, c->work_r, c->holder_w);
        _exit(127);
}

/*
 * The warm path's init shares the zygote's memory until it has forked the
 * program (sandbox_spawn_warm), then becomes pyexec-init
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
static struct sandbox_child warm_ctx;
static jmp_buf warm_resume;
static pid_t small_init_pid; /* CLONE_PARENT_SETTID: init's pid for the service */
static _Atomic bool small_init_replied;

/*
 * The programs do not get init_private (MADV_DONTFORK): were init's stack
 * copy-on-write in them, every page of it the next init writes (the frames
 * of sandbox_init_main, say) would be copied first, a fault apiece,
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

_Noreturn static void exec_small_init(const struct sandbox_child *c, int holder_r, pid_t prog) {
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

/* Start from a clean signal state, whatever the supervisor had: a service
 * blocks SIGTERM in every thread and a CLI ignores SIGPIPE, and both would
 * pass through execve to the program; any handler left installed (a
 * sanitizer's, say) would also let the program signal init from inside. */
static void init_reset_signals(void) {
        struct sigaction dfl = { .sa_handler = SIG_DFL };
        sigset_t none;
        for (int sig = 1; sig < _NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP)
                        sigaction(sig, &dfl, NULL);
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
}

/* The small init: this is the zygote's memory, and the zygote waits in
 * clone(): the fork is the zygote's as of then, and the program goes on
 * where the zygote called clone(), on its stack (warm_resume). Then
 * pyexec-init replaces init. */
_Noreturn static void init_small_fork_and_exec(const struct sandbox_child *c, const int holder_pipe[2]) {
        pid_t prog;
        int r;

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

/* The warm path's program: a real fork, which continues the interpreter
 * that init inherited from the zygote, with the holder's pipe (its read
 * end stays in init, holder_pipe[0]). Returns its pid, or -1 (errno). */
static pid_t init_fork_warm_program(const struct sandbox_child *c, int holder_pipe[2]) {
        struct sandbox_child pc = *c;
        int p[2];
        pid_t prog;

        /* Above 2 the pipe's fds survive the program's dup2s. */
        if (pipe2(p, O_CLOEXEC) < 0 || (holder_pipe[0] = fcntl(p[0], F_DUPFD_CLOEXEC, 3)) < 0 ||
            (holder_pipe[1] = fcntl(p[1], F_DUPFD_CLOEXEC, 3)) < 0)
                child_fail(c->status_w, "creating a pipe", -errno);
        close(p[0]);
        close(p[1]);
        if (c->small_init)
                init_small_fork_and_exec(c, holder_pipe);
        pc.holder_w = holder_pipe[1];
        prog = fork();
        if (prog == 0)
                run_program_warm(&pc);
        close(holder_pipe[1]);
        return prog;
}

_Noreturn void sandbox_init_main(const struct sandbox_child *c) {
        struct msg m = { 0 };
        int holder_pipe[2] = { -1, -1 };
        pid_t prog;
        char byte;

        /* Die with the supervisor. In a new PID namespace getppid() is 0,
         * so the race with its death is closed by the sync pipe instead: a
         * dead supervisor means EOF there. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        init_reset_signals();
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
        /* The small init leaves the filesystem to the program, which
         * builds it after the fork (run_program_warm): the zygote waits in
         * clone() until init's exec, and the mounts, above all the old
         * root's unmount (an expedited RCU grace period), then overlap
         * with the zygote's next build instead of lengthening its wait.
         * From "/", which pivot_root moves with the root, init keeps no
         * directory of the host once the old root is detached. */
        if (!c->small_init)
                build_root(c);
        else if (chdir("/") < 0)
                child_fail(c->status_w, "entering the root", -errno);

        /* Undumpable before the program exists: with /proc's hidepid the
         * program then cannot see init at all (its argv is the
         * supervisor's, and so would leak the host's command line). Not
         * the small init's: the flag belongs to the memory, here the
         * zygote's; pyexec-init sets it itself. */
        if (!c->small_init)
                prctl(PR_SET_DUMPABLE, 0);
        prctl(PR_SET_NAME, "pyexec-init");
        if (c->warm_main)
                prog = init_fork_warm_program(c, holder_pipe);
        else
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
        init_reap(&(struct reap_args){ .status_w = c->status_w,
                                       .holder_r = holder_pipe[0],
                                       .prog = prog,
                                       .uid = c->uid,
                                       .gid = c->gid,
                                       .own_uid = c->init_uid,
                                       .own_gid = c->init_gid,
                                       .userns = c->userns });
}

/* The small init's first steps, on init_private.stack in the zygote's
 * memory: the reply, with a pidfd of itself (pid 1 here), then sandbox_init_main. */
static int small_init_main(void *arg) {
        const struct sandbox_child *c = arg;
        struct warm_reply rep = { .pid = small_init_pid };
        int pidfd = (int)syscall(SYS_pidfd_open, 1, 0);

        if (pidfd < 0 || warm_send_reply(c->ctl, &rep, pidfd) < 0)
                _exit(127); /* the zygote answers for it */
        close(pidfd);
        atomic_store(&small_init_replied, true);
        sandbox_init_main(c);
}

pid_t sandbox_spawn_warm(const struct seccomp_prog *seccomp, const struct warm_request *req,
                         const int fds[_WARM_FD_MAX], const struct warm_program *program, int ctl, int init_fd,
                         bool *replied) {
        struct sandbox_child c = { .seccomp = seccomp };
        struct mount_file etc[5];
        char passwd[512], group[256], hosts[160];
        int keep[_WARM_FD_MAX + 1]; /* + init_fd */
        /* A network namespace from the service's pool is joined by init
         * (sandbox_init_main) instead of made: making one and its teardown cost
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
        c.runner_fd = c.work_fd = c.stdin_fd = c.images_w = -1;
        c.sync_r = fds[WARM_FD_SYNC];
        c.status_w = fds[WARM_FD_STATUS];
        c.out_w = fds[WARM_FD_OUT];
        c.err_w = fds[WARM_FD_ERR];
        c.work_r = fds[WARM_FD_WORK];
        c.net_fd = join_net ? fds[WARM_FD_NET] : -1;
        c.warm_main = program->main;
        sandbox_fill_etc(etc, passwd, sizeof passwd, group, sizeof group, hosts, sizeof hosts, c.uid, c.gid);
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
                sandbox_sort_fds(keep, c.n_keep);
                pid = ns_clone(flags);
                if (pid == 0)
                        sandbox_init_main(&c);
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
        sandbox_sort_fds(keep, c.n_keep);
        warm_ctx = c;
        atomic_store(&small_init_replied, false);
        if (setjmp(warm_resume) != 0)
                /* The program, forked by init from this memory as it is
                 * while clone() below waits (sandbox_init_main). */
                run_program_warm(&warm_ctx);
        pid = clone(small_init_main, init_private.stack + sizeof init_private.stack,
                    (int)(flags | CLONE_VM | CLONE_VFORK | CLONE_PARENT_SETTID | SIGCHLD), &warm_ctx, &small_init_pid);
        *replied = atomic_load(&small_init_replied);
        return pid < 0 ? -errno : pid;
}
