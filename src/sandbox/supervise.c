/* SPDX-License-Identifier: MIT */
/*
 * supervise: run one program in a fresh sandbox, watch it, kill it, measure
 * it, and classify what happened. This file is the supervisor's side; what
 * runs in init and in the program before its exec is sandbox-child.c, and
 * the classification is verdict.c. It stays one file of about 1,300
 * lines, a third of them this theory of operation, because the cold and
 * the warm run share its watch loop and the sandbox handle's state.
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
 *                filesystem (mount.c), starts the program (cold: a
 *                clone(CLONE_VM | CLONE_VFORK) on a stack of its own;
 *                warm: a fork of the zygote's memory), then only reaps
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
 *   images pipe   program -> supervisor, runs through the runner with
 *                 max_images > 0 only: the pictures the program shows, as
 *                 frames the supervisor checks and caps as they come
 *                 (images.h), drained and closed like stdout. The cold
 *                 runner finds it at fd 5; the warm program gets it with
 *                 its work. The program can write anything to it.
 *   stdin         a sealed memfd: seekable like a file, read-only, and it
 *                 needs no pump.
 *   pidfd         of init, so the supervisor's poll also sees it exit.
 *
 * The program gets fds 0, 1, 2 (and the images pipe) and nothing else
 * (close_range). init closes everything it inherited except its pipes, so
 * a service's sockets never reach a sandbox.
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
 * sandbox_spawn_warm() (sandbox-child.c). That init shares the zygote's memory
 * (CLONE_VM | CLONE_VFORK: the zygote waits in clone() meanwhile) and
 * answers the service itself, with a pidfd of itself; the service writes
 * the id maps, attaches the cgroup and sends the sync byte as above. init
 * fork()s the program: a copy of the zygote as it waits, which continues
 * where the zygote called clone() (a real fork: the program runs the
 * zygote's interpreter). Then init execs pyexec-init (init-main.c), which
 * reaps as the cold path's init does (reap.c) in a few pages of its own, so
 * no run pays for a second copy of the zygote's page tables, and the
 * program builds the filesystem (without the program's files) while the
 * zygote goes on to the next sandbox. Without pyexec-init (the service
 * found none), init is a full copy of the zygote, builds the filesystem
 * and forks the program from its copy. The program drops its uid, installs seccomp, sends READY
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
 * verdict.c), never a retry nor an internal_error counted by the circuit
 * breaker.
 *
 * Where the code is, by the process it runs in:
 *   supervisor   supervise.c (pyexec_run: the cold path's construction,
 *                the watch loop, run_warm for a pool sandbox); verdict.c
 *                turns what the watch saw into a status and a message.
 *   init, program  sandbox-child.c, up to the program's exec (or, warm,
 *                until it waits for work); then reap.c, in init or in
 *                pyexec-init (init-main.c).
 *   both paths   sandbox-env.c: the program's environment, user and ids.
 *   the service's pool  zygote.c; the zygote process zygote-child.c and
 *                zygote-heap.c, in pyexec-runner, which links only the
 *                sandbox's side (libpyexec-sandbox in meson.build).
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "hugetlb.h"
#include "images.h"
#include "mount.h"
#include "ns.h"
#include "pyexec.h"
#include "rlimit.h"
#include "sandbox-child.h"
#include "sandbox-env.h"
#include "sandbox-msg.h"
#include "work.h"
#include "zygote.h"
#include "seccomp.h"
#include "uidpool.h"
#include "util.h"
#include "verdict.h"

/* Where the cold path shows pyexec-runner inside the sandbox. */
#define SANDBOX_RUNNER_PATH "/.pyexec/runner"

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

static void pyexec_result_drop_images(struct pyexec_result *r) {
        for (size_t i = 0; i < r->n_images; i++)
                free(r->images[i].data);
        free(r->images);
        r->images = NULL;
        r->n_images = 0;
        r->images_truncated = false;
}

void pyexec_result_done(struct pyexec_result *r) {
        buf_done(&r->out);
        buf_done(&r->err);
        buf_done(&r->merged);
        free(r->message);
        r->message = NULL;
        pyexec_result_drop_images(r);
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
        snprintf(buf, n, "%s/pyexec-runner", PYEXEC_LIBEXECDIR);
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

bool pyexec_userns_available(void) {
        return ns_userns_works();
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

/* ---- the supervisor ---------------------------------------------------- */

struct pipes {
        int out[2], err[2], status[2], sync[2], images[2];
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

static void sample_process(pid_t pid, struct tree_sample *t, int depth);

struct sample_ctx {
        struct tree_sample *t;
        int depth;
};

static bool sample_child(pid_t child, void *userdata) {
        struct sample_ctx *c = userdata;
        sample_process(child, c->t, c->depth);
        return true;
}

static void sample_process(pid_t pid, struct tree_sample *t, int depth) {
        char path[96];
        struct buf b;
        unsigned long long ut, st, cut, cst;

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
        proc_each_child(pid, sample_child, &(struct sample_ctx){ t, depth + 1 });
}

struct watch {
        struct pyexec_result *res;
        const struct pyexec_spec *spec;
        bool started, exited_msg, init_gone;
        bool rest_stopped; /* EXITED said stopped processes are left */
        bool killed_wall, killed_cpu, killed_output, killed_oom;
        bool cancelled; /* spec->client_fd hung up */
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
        struct image_reader images; /* the images pipe's frames (images.h) */
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
                if (w->spec->on_output)
                        w->spec->on_output(w->spec->on_output_userdata, stream == &res->err ? 2 : 1, p, keep);
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

/* images_r: the images pipe's read end, or -1 (images.h). */
static void watch_run(struct watch *w, int out_r, int err_r, int status_r, int pidfd, int images_r,
                      const struct cgroup_run *cg, long ncpu) {
        const struct pyexec_limits *lim = &w->spec->limits;
        uint64_t setup_deadline = now_ns() + SETUP_TIMEOUT_NS;
        uint64_t cpu_limit_ns = lim->cpu_time_ms * 1000000ull;
        bool cpu_polled = cg && cgroup_run_cpu_ns(cg, &(uint64_t){ 0 }) == 0;
        /* The client's socket is polled for its hang-up only. */
        int fds[6] = { out_r, err_r, status_r, pidfd, w->spec->client_fd > 2 ? w->spec->client_fd : -1, images_r };
        char chunk[65536];

        for (;;) {
                struct pollfd pfd[6];
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
                bool drain[6] = {
                        out_final && fds[0] >= 0, out_final && fds[1] >= 0, w->init_gone && fds[2] >= 0, false, false,
                        out_final && fds[5] >= 0
                };

                if (fds[0] < 0 && fds[1] < 0 && fds[5] < 0 && (w->init_gone ? fds[2] < 0 : w->warm && w->exited_msg))
                        break;
                if (!w->started)
                        deadline = setup_deadline;
                else
                        deadline = w->sup_start + lim->timeout_ms * 1000000ull;
                if (w->init_gone || w->killed_wall || w->killed_cpu || w->killed_output || w->killed_oom ||
                    w->cancelled || w->setup_failed)
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
                if (drain[0] || drain[1] || drain[2] || drain[5])
                        timeout_ms = 0;

                for (int i = 0; i < 6; i++)
                        if (fds[i] >= 0 && !(i == 3 && w->init_gone))
                                pfd[n++] = (struct pollfd){ .fd = fds[i], .events = i == 4 ? POLLRDHUP : POLLIN };
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
                        for (i = 0; i < 6 && fds[i] != pfd[k].fd; i++)
                                ;
                        if (!pfd[k].revents) {
                                if (drain[i]) {
                                        close(fds[i]); /* empty, and nothing can fill it */
                                        fds[i] = -1;
                                }
                                continue;
                        }
                        if (i == 3) {
                                w->init_gone = true;
                                continue;
                        }
                        if (i == 4) {
                                /* The client left: nobody waits for the
                                 * run. (The descriptor is the caller's.) */
                                fds[4] = -1;
                                w->cancelled = true;
                                if (!w->init_gone)
                                        watch_kill(w, pidfd);
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
                        if (i == 5) {
                                /* Checked and capped as it comes: nothing
                                 * written here can hold up the run's other
                                 * output (images.h). */
                                image_reader_feed(&w->images, chunk, (size_t)got, w->res);
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
        for (int i = 0; i < 6; i++)
                if (fds[i] >= 0 && i != 3 && i != 4)
                        close(fds[i]);
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
        verdict_classify(spec,
                         &(struct verdict_facts){
                                 .started = w->started,
                                 .setup_failed = w->setup_failed,
                                 .error = w->error_msg.type == MSG_ERROR ? &w->error_msg : NULL,
                                 .exited = w->exited_msg,
                                 .wstatus = w->wstatus,
                                 .killed_wall = w->killed_wall,
                                 .killed_cpu = w->killed_cpu,
                                 .killed_output = w->killed_output,
                                 .killed_oom = w->killed_oom,
                                 .cancelled = w->cancelled,
                                 .verdict = w->verdict.type == MSG_VERDICT ? &w->verdict : NULL,
                                 .oom_kills = cs->oom_kills,
                                 .hugetlb_limit_hit = cs->hugetlb_limit_hit,
                                 .have_cgroup_memory = have_cgroup_memory,
                         },
                         res);
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

/* Whether a spec can run on a pre-built sandbox: a program (not a job),
 * through the runner, with the work directory the pool's sandboxes have. */
static bool warm_eligible(const struct pyexec_sandbox *sb, const struct pyexec_spec *spec) {
        const struct warm_options *o = sb->warm ? warm_pool_options(sb->warm) : NULL;
        return o && spec->runner && !spec->argv && spec->n_binds == 0 && spec->n_env == 0 &&
               spec->limits.disk_mb == o->disk_mb;
}

/* The work and stdin, and the images pipe's write end when images_w >= 0. */
static int send_work(int sock, int work_fd, int stdin_fd, int images_w) {
        char byte = 'w';
        struct iovec iov = { &byte, 1 };
        union {
                char buf[CMSG_SPACE(3 * sizeof(int))];
                struct cmsghdr align;
        } u;
        size_t nfds = images_w >= 0 ? 3 : 2;
        struct msghdr mh = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = CMSG_SPACE(nfds * sizeof(int))
        };
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        ssize_t n;

        memset(u.buf, 0, sizeof u.buf);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(cm), (int[]){ work_fd, stdin_fd, images_w }, nfds * sizeof(int));
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
        _cleanup_close_ int work_fd = -1, stdin_fd = -1, images_r = -1, images_w = -1;
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
        if (spec->max_images > 0) {
                int p[2];
                if (pipe2(p, O_CLOEXEC) < 0) {
                        fail_internal(res, "creating the images pipe", -errno);
                        goto out;
                }
                images_r = p[0];
                images_w = p[1];
        }
        /* This request's limits on the sandbox built with the defaults; the
         * pids cgroup also holds init. */
        if (box->use_cgroup) {
                uint64_t mem = spec->limits.memory_mb * 1024 * 1024, pids = spec->limits.pids + WARM_EXTRA_PIDS;
                /* Most requests keep the defaults the sandbox was built
                 * with: no writes to the cgroup then. */
                if (mem != box->memory_bytes || pids != box->pids_max) {
                        if (cgroup_run_set_limits(&sb->cg, &box->cg, mem, pids) < 0) {
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
        if (send_work(box->work_w, work_fd, stdin_fd, images_w) < 0) {
                r = -EAGAIN; /* it died waiting */
                goto out;
        }
        close(box->work_w);
        box->work_w = -1;
        /* Only the program holds the write end: the pipe's end comes with
         * the run's. */
        if (images_w >= 0)
                close(TAKE_FD(images_w));

        w.init_pid = box->pid;
        w.sample_before_kill = !box->use_cgroup || !box->cg.cpu;
        image_reader_init(&w.images, spec->max_images, spec->max_image_bytes);
        watch_run(&w, box->out_r, box->err_r, box->status_r, box->pidfd, TAKE_FD(images_r),
                  box->use_cgroup ? &box->cg : NULL, sb->ncpu);
        image_reader_done(&w.images);
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
        if (!w.exited_msg && !w.killed_wall && !w.killed_cpu && !w.killed_output && !w.killed_oom && !w.cancelled &&
            cs.oom_kills == 0 && (!w.started || warm_pool_box_zygote_died(sb->warm, box))) {
                /* The sandbox was lost before the program ran (a dead
                 * one), or under it with its zygote, whose death takes its
                 * inits along: nothing the program did. Whatever it did
                 * stayed in that sandbox, so it runs again from the start
                 * elsewhere. Any other loss while the program ran is the
                 * program's (verdict.c). */
                buf_done(&res->out);
                buf_done(&res->err);
                buf_done(&res->merged);
                res->truncated = false;
                pyexec_result_drop_images(res);
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
                .follow_load = o->pool_follows_load,
                .shrink_after_ns = (o->pool_shrink_after_s ? o->pool_shrink_after_s : 60) * 1000000000ull,
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
        return warm_pool_start(
                &(struct warm_host){
                        .privileged = sb->privileged,
                        .uid_base = sb->uid_base,
                        .uid_count = sb->uid_count,
                        .lock_dir = sb->lock_dir,
                        .cg = &sb->cg,
                        .outer_uid = sb->outer_uid,
                        .outer_gid = sb->outer_gid,
                },
                &wo, &sb->warm);
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
                .pool_target = st.target,
                .let_go = st.let_go,
                .huge_pages = st.huge_pages,
                .prefault = st.prefault,
                .huge_pages_why = st.huge_pages_why,
                .cow_fault_ns = st.cow_fault_ns,
                .huge_reserved_bytes = st.huge_reserved * HUGETLB_PAGE_SIZE,
        };
        return 0;
}

/* A cold run, from its uid slot to its reaped init: what pyexec_run()
 * owns, released by cold_run_done(). */
struct cold_run {
        struct pipes p;
        struct uidpool_slot slot;
        bool use_cgroup;
        struct cgroup_run cg;
        struct sandbox_child c;
        struct mount_file etc[5], *work;
        struct mount_bind *mbinds;
        char passwd[512], group[256], hosts[160], cgname[64];
        char **argv, **envv;
        int *keep;
        int stdin_fd, work_fd;
};

static void cold_run_done(struct cold_run *cr) {
        if (cr->use_cgroup)
                cgroup_run_destroy(&cr->cg);
        uidpool_release(&cr->slot);
        close_pair(cr->p.out);
        close_pair(cr->p.err);
        close_pair(cr->p.status);
        close_pair(cr->p.sync);
        close_pair(cr->p.images);
        free(cr->work);
        free(cr->argv);
        free(cr->envv);
        free(cr->mbinds);
        free(cr->keep);
        if (cr->stdin_fd >= 0)
                close(cr->stdin_fd);
        if (cr->work_fd >= 0)
                close(cr->work_fd);
}

/* Who the run is, and its cgroups. -errno with res filled. */
static int cold_identity(struct pyexec_sandbox *sb, const struct pyexec_spec *spec, struct cold_run *cr,
                         struct pyexec_result *res) {
        static _Atomic unsigned run_counter;
        struct sandbox_child *c = &cr->c;
        int r;

        /* A host uid of its own as root, else ourselves mapped to
         * SANDBOX_INNER_ID in a user namespace. */
        if (sb->privileged) {
                r = uidpool_acquire(sb->lock_dir, sb->uid_base, sb->uid_count, &cr->slot);
                if (r < 0) {
                        fail_internal(res, r == -EAGAIN ? "no free sandbox uid (all in use)" : "allocating a sandbox uid", r);
                        return r;
                }
                c->uid = cr->slot.uid;
                c->gid = cr->slot.uid;
                c->init_uid = cr->slot.init_uid;
                c->init_gid = cr->slot.init_uid;
                snprintf(cr->cgname, sizeof cr->cgname, "box-%u", cr->slot.index);
        } else {
                c->uid = c->init_uid = SANDBOX_INNER_ID;
                c->gid = c->init_gid = SANDBOX_INNER_ID;
                snprintf(cr->cgname, sizeof cr->cgname, "run-%d-%u", (int)getpid(), run_counter++);
        }
        c->userns = !sb->privileged;

        /* The pids cgroup also holds init: one task more than the program's. */
        cr->use_cgroup = sb->cg.version != CGROUP_NONE;
        if (cr->use_cgroup) {
                r = cgroup_run_create(&sb->cg, cr->cgname, spec->limits.memory_mb * 1024 * 1024, spec->limits.pids + 1,
                                      &cr->cg);
                if (r < 0) {
                        fail_internal(res, "creating the run's cgroup", r);
                        return r;
                }
        }
        return 0;
}

/* argv, the environment, the work directory's files and the binds. */
static int cold_prepare_files(struct pyexec_sandbox *sb, const struct pyexec_spec *spec, struct cold_run *cr,
                              struct pyexec_result *res) {
        cr->work = calloc(spec->n_files ? spec->n_files : 1, sizeof *cr->work);
        cr->argv = calloc((spec->argv ? spec->n_argv : spec->n_args + 2) + 1, sizeof *cr->argv);
        cr->envv = calloc(SANDBOX_ENV_COUNT + spec->n_env + 1, sizeof *cr->envv);
        cr->mbinds = calloc(spec->n_binds + 1, sizeof *cr->mbinds);
        cr->keep = calloc(8 + spec->n_binds, sizeof *cr->keep);
        if (!cr->work || !cr->argv || !cr->envv || !cr->mbinds || !cr->keep) {
                fail_internal(res, "preparing the run", -ENOMEM);
                return -ENOMEM;
        }
        for (size_t i = 0; i < spec->n_files; i++)
                cr->work[i] = (struct mount_file){ spec->files[i].name, spec->files[i].data, spec->files[i].len };
        if (spec->argv) {
                for (size_t i = 0; i < spec->n_argv; i++)
                        cr->argv[i] = (char *)spec->argv[i];
        } else {
                cr->argv[0] = (char *)spec->python;
                cr->argv[1] = (char *)PYEXEC_MAIN_FILE;
                for (size_t i = 0; i < spec->n_args; i++)
                        cr->argv[i + 2] = (char *)spec->args[i];
        }
        for (size_t i = 0; i < SANDBOX_ENV_COUNT; i++)
                cr->envv[i] = sandbox_env[i];
        for (size_t i = 0; i < spec->n_env; i++)
                cr->envv[SANDBOX_ENV_COUNT + i] = (char *)spec->env[i];
        for (size_t i = 0; i < spec->n_binds; i++) {
                const struct pyexec_bind *b = &spec->binds[i];
                cr->mbinds[i] = (struct mount_bind){
                        .fd = b->fd, .dest = b->dest, .dir = b->dir, .writable = b->writable
                };
                /* As root the run has a uid of its own: what it may write
                 * must be its own. (Unprivileged, the caller's uid is the
                 * run's already.) */
                if (b->writable && sb->privileged && fchownat(b->fd, "", cr->c.uid, cr->c.gid, AT_EMPTY_PATH) < 0) {
                        int r = -errno;
                        fail_internal(res, "handing an output directory to the sandbox", r);
                        return r;
                }
        }
        return 0;
}

/* Everything init and the program need (struct sandbox_child), but the
 * pipes. -errno with res filled. */
static int cold_prepare(struct pyexec_sandbox *sb, const struct pyexec_spec *spec, struct cold_run *cr,
                        struct pyexec_result *res) {
        struct sandbox_child *c = &cr->c;
        struct rlimit_plan rp = {
                .cpu_ms = spec->limits.cpu_time_ms,
                .file_size = spec->limits.file_size_mb * 1024 * 1024,
                .open_files = spec->limits.open_files,
                .address_space = cr->cg.memory ? 0 : spec->limits.memory_mb * 1024 * 1024,
                /* RLIMIT_NPROC counts init only where it shares the
                 * program's real uid (a user namespace). */
                .nproc = cr->cg.pids ? 0 : spec->limits.pids + (c->init_uid == c->uid),
        };
        int r;

        rlimit_plan_values(&rp, c->rlimits, &c->n_rlimits);
        sandbox_fill_etc(cr->etc, cr->passwd, sizeof cr->passwd, cr->group, sizeof cr->group, cr->hosts,
                         sizeof cr->hosts, c->uid, c->gid);
        r = cold_prepare_files(sb, spec, cr, res);
        if (r < 0)
                return r;
        c->plan = (struct mount_plan){
                .staging = "/tmp",
                .work_bytes = spec->limits.disk_mb * 1024 * 1024,
                .tmp_bytes = spec->limits.disk_mb * 1024 * 1024,
                .inodes = 4096,
                .uid = c->uid,
                .gid = c->gid,
                .etc = cr->etc,
                .n_etc = ELEMENTSOF(cr->etc),
                .work = cr->work,
                .n_work = spec->n_files,
                .binds = cr->mbinds,
                .n_binds = spec->n_binds,
        };
        c->cgroup_ns = true;
        c->python = cr->argv[0];
        c->runner_fd = -1;
        c->work_fd = -1;
        c->net_fd = -1;
        if (spec->runner && !spec->argv) {
                struct work wk = { .policy = (char *)spec->policy, .argv = cr->argv + 1, .n_argv = spec->n_args + 1 };
                if (sb->runner_fd < 0) {
                        res->status = PYEXEC_INTERNAL_ERROR;
                        res->message = strdup_printf("pyexec-runner was not found (last looked at %s); "
                                                     "set PYEXEC_RUNNER to its path",
                                                     sb->runner_path);
                        return -ENOENT;
                }
                r = work_encode(&wk, &cr->work_fd);
                if (r < 0) {
                        fail_internal(res, "preparing the runner's work", r);
                        return r;
                }
                c->runner_fd = sb->runner_fd;
                c->work_fd = cr->work_fd;
                /* An installed runner (under /usr) is in the sandbox at its
                 * own path; one elsewhere (a build directory) is mounted at
                 * SANDBOX_RUNNER_PATH, and /proc/self/mountinfo then names
                 * its host directory. */
                c->runner_path = sb->runner_in_usr ? sb->runner_path : SANDBOX_RUNNER_PATH;
                if (!sb->runner_in_usr)
                        cr->mbinds[c->plan.n_binds++] = (struct mount_bind){ .fd = sb->runner_fd,
                                                                             .dest = SANDBOX_RUNNER_PATH,
                                                                             .exec = true };
        }
        c->argv = cr->argv;
        c->envp = cr->envv;
        return 0;
}

/* stdin and the pipes, then init: cloned, given its id maps and cgroups,
 * and let go (the sync byte). Its pid and a pidfd, or -errno with res
 * filled (and nothing of the run left running). */
static int cold_start(struct pyexec_sandbox *sb, const struct pyexec_spec *spec, struct cold_run *cr,
                      struct pyexec_result *res, pid_t *ret_pid, int *ret_pidfd) {
        struct sandbox_child *c = &cr->c;
        struct pipes *p = &cr->p;
        pid_t pid;
        int pidfd, r;

        cr->stdin_fd = make_stdin(spec->stdin_data, spec->stdin_len);
        if (cr->stdin_fd < 0) {
                fail_internal(res, "preparing stdin", cr->stdin_fd);
                return cr->stdin_fd;
        }
        if (pipe2(p->out, O_CLOEXEC) < 0 || pipe2(p->err, O_CLOEXEC) < 0 || pipe2(p->status, O_CLOEXEC) < 0 ||
            pipe2(p->sync, O_CLOEXEC) < 0 ||
            (c->runner_fd >= 0 && spec->max_images > 0 && pipe2(p->images, O_CLOEXEC) < 0)) {
                r = -errno;
                fail_internal(res, "creating pipes", r);
                return r;
        }
        c->images_w = p->images[1];
        c->sync_r = p->sync[0];
        c->status_w = p->status[1];
        c->out_w = p->out[1];
        c->err_w = p->err[1];
        c->stdin_fd = cr->stdin_fd;
        cr->keep[0] = c->sync_r;
        cr->keep[1] = c->status_w;
        cr->keep[2] = c->out_w;
        cr->keep[3] = c->err_w;
        cr->keep[4] = c->stdin_fd;
        cr->keep[5] = c->runner_fd;
        cr->keep[6] = c->work_fd;
        cr->keep[7] = c->images_w;
        for (size_t i = 0; i < spec->n_binds; i++)
                cr->keep[8 + i] = spec->binds[i].fd;
        sandbox_sort_fds(cr->keep, 8 + spec->n_binds);
        c->keep = cr->keep;
        c->n_keep = 8 + spec->n_binds;

        pid = ns_clone(NS_SANDBOX_FLAGS | (c->userns ? CLONE_NEWUSER : 0));
        if (pid == 0)
                sandbox_init_main(c);
        if (pid < 0) {
                fail_internal(res, "creating the sandbox's namespaces", pid);
                return pid;
        }
        /* Only the children keep these ends. */
        close(p->sync[0]);
        p->sync[0] = -1;
        close(p->status[1]);
        p->status[1] = -1;
        close(p->out[1]);
        p->out[1] = -1;
        close(p->err[1]);
        p->err[1] = -1;
        if (p->images[1] >= 0)
                close(TAKE_FD(p->images[1]));

        pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (pidfd < 0) {
                r = -errno;
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                fail_internal(res, "opening a pidfd for the sandbox", r);
                return r;
        }
        r = 0;
        if (c->userns)
                r = sandbox_map_inner_ids(pid, sb->outer_uid, sb->outer_gid);
        if (r == 0 && cr->use_cgroup)
                r = cgroup_run_attach(&cr->cg, pid);
        if (r == 0 && write(p->sync[1], "x", 1) != 1)
                r = -errno;
        close(p->sync[1]);
        p->sync[1] = -1;
        if (r < 0) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                close(pidfd);
                fail_internal(res,
                              c->userns ? "mapping the sandbox's user namespace or joining its cgroup"
                                        : "joining the run's cgroup",
                              r);
                return r;
        }
        *ret_pid = pid;
        *ret_pidfd = pidfd;
        return 0;
}

int pyexec_run(struct pyexec_sandbox *sb, const struct pyexec_spec *spec, struct pyexec_result *res) {
        struct cold_run cr = {
                .p = { { -1, -1 }, { -1, -1 }, { -1, -1 }, { -1, -1 }, { -1, -1 } },
                .slot = { .fd = -1 },
                .c = { .seccomp = sb->seccomp },
                .stdin_fd = -1,
                .work_fd = -1,
        };
        struct cgroup_stats cs = { 0 };
        struct watch w = { .res = res, .spec = spec };
        char errbuf[512];
        _cleanup_close_ int pidfd = -1;
        pid_t pid = -1;
        int ws;
        struct rusage ru;

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

        if (cold_identity(sb, spec, &cr, res) < 0 || cold_prepare(sb, spec, &cr, res) < 0 ||
            cold_start(sb, spec, &cr, res, &pid, &pidfd) < 0) {
                cold_run_done(&cr);
                return 0;
        }
        w.init_pid = pid;
        w.sample_before_kill = !cr.use_cgroup || !cr.cg.cpu;
        image_reader_init(&w.images, spec->max_images, spec->max_image_bytes);
        watch_run(&w, cr.p.out[0], cr.p.err[0], cr.p.status[0], pidfd, cr.p.images[0], cr.use_cgroup ? &cr.cg : NULL,
                  sb->ncpu);
        image_reader_done(&w.images);
        cr.p.out[0] = cr.p.err[0] = cr.p.status[0] = cr.p.images[0] = -1;
        while (wait4(pid, &ws, 0, &ru) < 0 && errno == EINTR)
                ;
        /* Nothing of the run is left but descriptors it may have put in
         * flight in a cycle of Unix sockets (its output pipes, memfds with
         * their pages): the collector releases them now, not whenever some
         * other process closes a Unix socket. */
        (void)unix_gc_schedule();

        if (cr.use_cgroup)
                cgroup_run_stats(&cr.cg, &cs);
        finish_result(spec, &w, &cs, cr.cg.memory != NULL, &ru, res);
        cold_run_done(&cr);
        return 0;
}
