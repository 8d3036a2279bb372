/* SPDX-License-Identifier: MIT */
#include "reap.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cred.h"
#include "sandbox-msg.h"
#include "util.h"

/* init's SIGTERM (from the supervisor, on the wall-clock limit with a grace
 * period) goes to every process of the run; SIGKILL follows from outside.
 * Only a sender outside the PID namespace counts: kill(2) or
 * pidfd_send_signal(2) without siginfo, whose pid the kernel reports as 0
 * here (SI_USER). The program cannot make init do anything: its own kill()
 * carries its pid, and rt_sigqueueinfo(2) lets it choose the pid (0 too)
 * but not SI_USER, which the kernel refuses to queue for another process. */
static void forward_term(int sig, siginfo_t *si, void *ctx) {
        if (si->si_code == SI_USER && si->si_pid == 0)
                kill(-1, sig);
}

/* Whether init's only child left is pid (its children, from /proc: "PID ";
 * false when unreadable). */
static bool only_child_left(pid_t pid) {
        char buf[64], want[16];
        int fd = open("/proc/1/task/1/children", O_RDONLY | O_CLOEXEC), i = (int)sizeof want - 1;
        ssize_t n;

        if (fd < 0 || pid <= 0)
                return false;
        n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
                return false;
        want[i] = 0;
        want[--i] = ' ';
        for (pid_t v = pid; v > 0 && i > 0; v /= 10)
                want[--i] = (char)('0' + v % 10);
        for (ssize_t k = 0;; k++, i++) {
                if (k == n)
                        return want[i] == 0;
                if (buf[k] != want[i])
                        return false;
        }
}

static void send_exited(int status_w, struct msg *m, int status) {
        struct rusage ru;

        getrusage(RUSAGE_CHILDREN, &ru);
        m->type = MSG_EXITED;
        m->wstatus = status;
        m->cpu_us = (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
                    (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
        m->maxrss_kb = (uint64_t)ru.ru_maxrss;
        msg_send(status_w, m);
}

_Noreturn void init_reap(const struct reap_args *a) {
        static struct msg m; /* 4 KiB: not on init's stack */
        struct sigaction sa = { .sa_sigaction = forward_term, .sa_flags = SA_SIGINFO };
        pid_t pid, holder = 0;
        bool answered = false;
        int status = 0;

        sigaction(SIGTERM, &sa, NULL);
        /* init needs no privilege to reap; a program that somehow reached
         * it finds an unprivileged, undumpable process. As root its real
         * and saved uid (and gid) are its own (own_uid), not the
         * program's, so nothing the program runs can signal it, set its
         * rlimits (prlimit) or trace it; its effective uid is the
         * program's, so that it can still signal every process of the run.
         * In a user namespace only one id is mapped and they share it: the
         * program's seccomp filter refuses those calls on pid 1 instead
         * (seccomp-policy.c). The uid change clears the parent-death
         * signal and dumpability, so both are set again, and a supervisor
         * that died in between is noticed through its end of the status
         * pipe. */
        if (cred_drop_apart(a->own_uid, a->own_gid, a->uid, a->gid, !a->userns) == 0)
                prctl(PR_SET_DUMPABLE, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        {
                struct pollfd pfd = { .fd = a->status_w, .events = POLLOUT };
                if (poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLERR | POLLHUP)))
                        _exit(127); /* the namespace dies with us */
        }
        if (a->holder_r >= 0) {
                /* The warm program's holder (sandbox_program_start_holder),
                 * named before any program code ran; nothing on failure. */
                int32_t v = 0;
                ssize_t n;
                do
                        n = read(a->holder_r, &v, sizeof v);
                while (n < 0 && errno == EINTR);
                if (n == (ssize_t)sizeof v && v > 0)
                        holder = v;
                close(a->holder_r);
        }

        for (;;) {
                int st;
                pid = waitpid(-1, &st, 0);
                if (pid < 0) {
                        if (errno == EINTR)
                                continue;
                        break; /* ECHILD: everyone is reaped */
                }
                if (pid == holder)
                        holder = 0;
                if (pid == a->prog) {
                        status = st;
                        m.t_ns = now_ns();
                        if (holder > 0 && only_child_left(holder)) {
                                /* Everything but the holder (and what it
                                 * may have started, if the program took
                                 * it over) is reaped, its CPU time
                                 * counted. Stop them all and answer: the
                                 * service kills the namespace once the
                                 * response is out, and the address space
                                 * is torn down then, not now. */
                                kill(-1, SIGSTOP);
                                m.err = EXITED_REST_STOPPED;
                                send_exited(a->status_w, &m, status);
                                answered = true;
                                continue; /* until the service's SIGKILL */
                        }
                        /* The main program is over: so is everything it
                         * started. */
                        kill(-1, SIGKILL);
                }
        }
        if (!answered)
                send_exited(a->status_w, &m, status);
        _exit(0);
}
