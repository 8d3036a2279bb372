/* SPDX-License-Identifier: MIT */
/*
 * pyexec-init: the init of a warm sandbox once its program is forked.
 *
 * The zygote's init shares the zygote's memory while it builds the sandbox
 * and forks the program (sandbox-child.c, sandbox_spawn_warm), then
 * execs this, which only reaps (reap.c). Were init a copy of the zygote
 * until it ends, each run would pay a fork and an exit of all of the
 * zygote's page tables.
 *
 * No libc: an exec of a static glibc program costs ~1.1 ms here (its
 * start-up touches dozens of pages, each a shadow-paging fault), of this
 * ~0.35 ms. Below are the few functions reap.c and cred.c call, as bare
 * system calls with glibc's prototypes, and the entry point. Nothing here
 * runs before the first line of init_main, and nothing uses thread-local
 * storage (none is set up): compiled without the stack protector.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "reap.h"
#include "sandbox-msg.h"

#if !defined(__x86_64__)
#error "pyexec-init's system calls and entry point are written for x86-64 (meson.build builds it there only)"
#endif

static long sys6(long n, long a, long b, long c, long d, long e, long f) {
        register long r10 __asm__("r10") = d, r8 __asm__("r8") = e, r9 __asm__("r9") = f;
        long r;
        __asm__ volatile("syscall"
                         : "=a"(r)
                         : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8), "r"(r9)
                         : "rcx", "r11", "memory");
        return r;
}

static int error_number;

int *__errno_location(void) {
        return &error_number;
}

static long result(long r) {
        if (r < 0 && r > -4096) {
                error_number = (int)-r;
                return -1;
        }
        return r;
}

long syscall(long n, ...) {
        va_list ap;
        long a[6];
        va_start(ap, n);
        for (int i = 0; i < 6; i++)
                a[i] = va_arg(ap, long);
        va_end(ap);
        return result(sys6(n, a[0], a[1], a[2], a[3], a[4], a[5]));
}

int prctl(int option, ...) {
        va_list ap;
        unsigned long a[4];
        va_start(ap, option);
        for (int i = 0; i < 4; i++)
                a[i] = va_arg(ap, unsigned long);
        va_end(ap);
        return (int)result(sys6(SYS_prctl, option, (long)a[0], (long)a[1], (long)a[2], (long)a[3], 0));
}

ssize_t read(int fd, void *buf, size_t n) {
        return result(sys6(SYS_read, fd, (long)buf, (long)n, 0, 0, 0));
}

ssize_t write(int fd, const void *buf, size_t n) {
        return result(sys6(SYS_write, fd, (long)buf, (long)n, 0, 0, 0));
}

int open(const char *path, int flags, ...) {
        return (int)result(sys6(SYS_openat, AT_FDCWD, (long)path, flags, 0, 0, 0));
}

int close(int fd) {
        return (int)result(sys6(SYS_close, fd, 0, 0, 0, 0, 0));
}

int poll(struct pollfd *fds, nfds_t n, int timeout_ms) {
        return (int)result(sys6(SYS_poll, (long)fds, (long)n, timeout_ms, 0, 0, 0));
}

pid_t waitpid(pid_t pid, int *status, int options) {
        return (pid_t)result(sys6(SYS_wait4, pid, (long)status, options, 0, 0, 0));
}

int kill(pid_t pid, int sig) {
        return (int)result(sys6(SYS_kill, pid, sig, 0, 0, 0, 0));
}

int getrusage(__rusage_who_t who, struct rusage *ru) {
        return (int)result(sys6(SYS_getrusage, who, (long)ru, 0, 0, 0, 0));
}

int clock_gettime(clockid_t clock, struct timespec *ts) {
        return (int)result(sys6(SYS_clock_gettime, clock, (long)ts, 0, 0, 0, 0));
}

void _exit(int status) {
        for (;;)
                sys6(SYS_exit_group, status, 0, 0, 0, 0, 0);
}

void *memset(void *dst, int c, size_t n) {
        unsigned char *d = dst;
        while (n--)
                *d++ = (unsigned char)c;
        return dst;
}

void *memcpy(void *restrict dst, const void *restrict src, size_t n) {
        unsigned char *d = dst;
        const unsigned char *s = src;
        while (n--)
                *d++ = *s++;
        return dst;
}

/* The kernel's struct sigaction on x86-64, and the return from a handler
 * (what glibc's sigaction installs as sa_restorer). */
struct kernel_sigaction {
        void *handler;
        unsigned long flags;
        void (*restorer)(void);
        uint64_t mask;
};
#define KERNEL_SA_RESTORER 0x04000000
#define STR_(x) #x
#define STR(x) STR_(x)
void pyexec_init_restorer(void);
__asm__(".text\n"
        ".align 16\n"
        "pyexec_init_restorer:\n"
        "\tmov $" STR(SYS_rt_sigreturn) ", %eax\n"
        "\tsyscall\n");

int sigaction(int sig, const struct sigaction *restrict act, struct sigaction *restrict old) {
        struct kernel_sigaction k = { 0 };
        if (old)
                return errno = EINVAL, -1; /* not needed here */
        if (act) {
                k.handler = (void *)act->sa_sigaction;
                k.flags = (unsigned long)act->sa_flags | KERNEL_SA_RESTORER;
                k.restorer = pyexec_init_restorer;
                memcpy(&k.mask, &act->sa_mask, sizeof k.mask);
        }
        return (int)result(sys6(SYS_rt_sigaction, sig, act ? (long)&k : 0, 0, sizeof k.mask, 0, 0));
}

static bool parse_id(const char *s, unsigned long max, unsigned long *ret) {
        unsigned long v = 0;
        if (!s || !*s)
                return false;
        for (; *s; s++) {
                if (*s < '0' || *s > '9' || v > (max - (unsigned long)(*s - '0')) / 10)
                        return false;
                v = v * 10 + (unsigned long)(*s - '0');
        }
        *ret = v;
        return true;
}

_Noreturn void init_main(long *sp);

_Noreturn void init_main(long *sp) {
        static struct msg m;
        int argc = (int)sp[0];
        char **argv = (char **)(sp + 1);
        unsigned long prog, uid, gid, own_uid, own_gid, userns;

        /* First: until its privileges are dropped, this process is what a
         * program of the same user could otherwise attach to (an exec
         * makes a process dumpable again). */
        prctl(PR_SET_DUMPABLE, 0);
        prctl(PR_SET_NAME, "pyexec-init");
        if (argc != 7 || !parse_id(argv[1], INT32_MAX, &prog) || !parse_id(argv[2], UINT32_MAX - 1, &uid) ||
            !parse_id(argv[3], UINT32_MAX - 1, &gid) || !parse_id(argv[4], UINT32_MAX - 1, &own_uid) ||
            !parse_id(argv[5], UINT32_MAX - 1, &own_gid) || !parse_id(argv[6], 1, &userns)) {
                static const char step[] = "starting pyexec-init: bad arguments";
                m.type = MSG_ERROR;
                m.err = EINVAL;
                memcpy(m.step, step, sizeof step);
                msg_send(INIT_STATUS_FD, &m);
                _exit(127);
        }
        init_reap(&(struct reap_args){ .status_w = INIT_STATUS_FD, .holder_r = INIT_HOLDER_FD, .prog = (pid_t)prog,
                                       .uid = (uid_t)uid, .gid = (gid_t)gid, .own_uid = (uid_t)own_uid,
                                       .own_gid = (gid_t)own_gid, .userns = userns != 0 });
}

/* The entry point: the kernel leaves argc, argv and the environment on the
 * stack; the ABI wants it 16-byte aligned at the call. */
__asm__(".text\n"
        ".globl _start\n"
        "_start:\n"
        "\txor %ebp, %ebp\n"
        "\tmov %rsp, %rdi\n"
        "\tand $-16, %rsp\n"
        "\tcall init_main\n"
        "\thlt\n");
