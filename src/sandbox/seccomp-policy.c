/* SPDX-License-Identifier: MIT */
#include "seccomp-policy.h"

#include <errno.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <linux/in6.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

/*
 * The policy. The filter's default is ALLOW: the kernel sandbox around it
 * (namespaces, an unprivileged uid, no capabilities, no_new_privs, cgroups)
 * already makes most privileged calls fail; this table removes the kernel
 * surface that stays reachable without privileges and has a history of
 * escapes, plus the calls that must never work in a sandbox whatever its
 * privileges. Denials return an errno so Python raises a readable OSError
 * (PermissionError for EPERM) instead of dying mysteriously.
 *
 * Where a kill is safer: only for foreign architectures (see seccomp_compile):
 * a 32-bit (int 0x80) or x32 system call uses other numbers, so none of the
 * rules below would match it; allowing or answering it would mean trusting a
 * second, unfiltered syscall table. A legitimate x86-64 CPython never makes
 * one, so the process is killed outright. Everything else returns an errno:
 * a readable error is worth more to a student than a SIGSYS, and the call has
 * no effect either way.
 */
enum cond {
        COND_NONE,        /* every call */
        COND_ARG0_MASKED, /* (arg0 & value) == value: a flag is set */
        COND_ARG0_EQ,     /* arg0 == value */
        COND_ARG0_GT,     /* arg0 > value */
        COND_ARG0_NE,     /* arg0 != value */
        COND_ARG0_EQ32,   /* (uint32_t)arg0 == value (a pid_t or int, as the kernel reads it) */
        COND_ARG1_EQ32,   /* (uint32_t)arg1 == value (ioctl requests are ints) */
        COND_ARG1_MASKED, /* (arg1 & value) == value */
        COND_ARG2_MASKED,
        COND_ARG3_MASKED,
        COND_SOCKOPT,     /* (uint32_t)arg1 == value >> 32 && (uint32_t)arg2 == (uint32_t)value */
};

/* A socket option for COND_SOCKOPT: level and name, both ints to the kernel. */
#define SOCKOPT(level, name) (((uint64_t)(uint32_t)(level) << 32) | (uint32_t)(name))

struct seccomp_rule {
        const char *syscall;
        int err;
        enum cond cond;
        uint64_t value;
        const char *why;
};

static const struct seccomp_rule rules[] = {
        /* Other processes' memory. */
        { "ptrace", EPERM, COND_NONE, 0, "reads and writes other processes; the classic escape" },
        { "process_vm_readv", EPERM, COND_NONE, 0, "reads another process's memory" },
        { "process_vm_writev", EPERM, COND_NONE, 0, "writes another process's memory" },
        { "kcmp", EPERM, COND_NONE, 0, "compares kernel objects of other processes (pointer leak)" },
        { "pidfd_getfd", EPERM, COND_NONE, 0, "steals file descriptors from another process" },

        /* The run's init, PID 1 of the program's namespace. As root init's
         * real and saved uid are not the program's, so the kernel already
         * refuses it signals and prlimit (reap.c); in a user namespace
         * only one id is mapped and init shares it, and nothing else stops
         * the program from ending init: RLIMIT_CPU 0 kills it at its next
         * tick, a forged siginfo (rt_sigqueueinfo) poses as the
         * supervisor. The scheduler calls check the effective uid, which
         * init shares with the program on both paths: they would stop or
         * starve it. Pids are ints: the kernel reads the low 32 bits, and
         * so do these comparisons. */
        { "prlimit64", EPERM, COND_ARG0_EQ32, 1, "init's rlimits: RLIMIT_CPU 0 kills it" },
        { "kill", EPERM, COND_ARG0_EQ32, 1, "signals to init" },
        { "tkill", EPERM, COND_ARG0_EQ32, 1, "signals to init's thread" },
        { "tgkill", EPERM, COND_ARG0_EQ32, 1, "signals to init's thread group" },
        { "tgkill", EPERM, COND_ARG1_EQ32, 1, "signals to init's thread" },
        { "rt_sigqueueinfo", EPERM, COND_ARG0_EQ32, 1, "signals to init with a forged siginfo" },
        { "rt_tgsigqueueinfo", EPERM, COND_ARG0_EQ32, 1, "signals to init with a forged siginfo" },
        { "rt_tgsigqueueinfo", EPERM, COND_ARG1_EQ32, 1, "signals to init with a forged siginfo" },
        { "pidfd_open", EPERM, COND_ARG0_EQ32, 1, "a pidfd of init: pidfd_send_signal and the like" },
        { "sched_setaffinity", EPERM, COND_ARG0_EQ32, 1, "pins init to a CPU the program keeps busy" },
        { "sched_setscheduler", EPERM, COND_ARG0_EQ32, 1, "SCHED_IDLE starves init" },
        { "sched_setparam", EPERM, COND_ARG0_EQ32, 1, "init's scheduling" },
        { "sched_setattr", EPERM, COND_ARG0_EQ32, 1, "init's scheduling" },
        { "setpriority", EPERM, COND_ARG1_EQ32, 1, "PRIO_PROCESS 1: init's nice value" },
        { "setpriority", EPERM, COND_ARG0_EQ32, PRIO_USER, "every process of the uid, init's too" },
        { "ioprio_set", EPERM, COND_ARG1_EQ32, 1, "IOPRIO_WHO_PROCESS 1: init's I/O priority" },
        { "ioprio_set", EPERM, COND_ARG0_EQ32, 3 /* IOPRIO_WHO_USER */, "every process of the uid, init's too" },

        /* The filesystem view is fixed once the sandbox is built. */
        { "mount", EPERM, COND_NONE, 0, "mount family: the root must stay as built" },
        { "umount2", EPERM, COND_NONE, 0, "would uncover the mount points below" },
        { "move_mount", EPERM, COND_NONE, 0, "new mount API" },
        { "open_tree", EPERM, COND_NONE, 0, "new mount API (clones mounts)" },
        { "fsopen", EPERM, COND_NONE, 0, "new mount API" },
        { "fsconfig", EPERM, COND_NONE, 0, "new mount API" },
        { "fsmount", EPERM, COND_NONE, 0, "new mount API" },
        { "fspick", EPERM, COND_NONE, 0, "new mount API (reconfigures mounts)" },
        { "mount_setattr", EPERM, COND_NONE, 0, "would make read-only mounts writable" },
        { "pivot_root", EPERM, COND_NONE, 0, "changes the root" },
        { "chroot", EPERM, COND_NONE, 0, "chroot escapes need a second root" },
        { "open_by_handle_at", EPERM, COND_NONE, 0, "opens files by handle, bypassing the mount view (shocker)" },
        { "name_to_handle_at", EPERM, COND_NONE, 0, "produces handles for open_by_handle_at" },

        /* No new namespaces: each one hands the program capabilities over a
         * fresh kernel surface (user namespaces especially). */
        { "unshare", EPERM, COND_NONE, 0, "new namespaces" },
        { "setns", EPERM, COND_NONE, 0, "joins other namespaces" },
        { "clone", EPERM, COND_ARG0_MASKED, CLONE_NEWNS, "new mount namespace" },
        { "clone", EPERM, COND_ARG0_MASKED, CLONE_NEWUTS, "new UTS namespace" },
        { "clone", EPERM, COND_ARG0_MASKED, CLONE_NEWIPC, "new IPC namespace" },
        { "clone", EPERM, COND_ARG0_MASKED, CLONE_NEWUSER, "new user namespace" },
        { "clone", EPERM, COND_ARG0_MASKED, CLONE_NEWPID, "new PID namespace" },
        { "clone", EPERM, COND_ARG0_MASKED, CLONE_NEWNET, "new network namespace" },
        { "clone", EPERM, COND_ARG0_MASKED, CLONE_NEWCGROUP, "new cgroup namespace" },
        /* clone3 passes its flags in memory, which seccomp cannot read; ENOSYS
         * makes glibc fall back to clone, which the rules above inspect. */
        { "clone3", ENOSYS, COND_NONE, 0, "flags unreadable by seccomp; libc falls back to clone" },

        /* The machine itself. */
        { "kexec_load", EPERM, COND_NONE, 0, "replaces the kernel" },
        { "kexec_file_load", EPERM, COND_NONE, 0, "replaces the kernel" },
        { "init_module", EPERM, COND_NONE, 0, "loads kernel code" },
        { "finit_module", EPERM, COND_NONE, 0, "loads kernel code" },
        { "delete_module", EPERM, COND_NONE, 0, "unloads kernel code" },
        { "reboot", EPERM, COND_NONE, 0, "reboots the host" },
        { "swapon", EPERM, COND_NONE, 0, "host swap" },
        { "swapoff", EPERM, COND_NONE, 0, "host swap" },
        { "syslog", EPERM, COND_NONE, 0, "kernel log: addresses and other tenants' traces" },
        { "acct", EPERM, COND_NONE, 0, "process accounting to a file" },
        { "quotactl", EPERM, COND_NONE, 0, "filesystem quotas" },
        { "iopl", EPERM, COND_NONE, 0, "raw I/O port access" },
        { "ioperm", EPERM, COND_NONE, 0, "raw I/O port access" },
        { "settimeofday", EPERM, COND_NONE, 0, "the host clock is not namespaced" },
        { "clock_settime", EPERM, COND_NONE, 0, "the host clock is not namespaced" },
        { "clock_adjtime", EPERM, COND_NONE, 0, "the host clock is not namespaced" },

        /* Kernel subsystems with a long record of privilege escalations,
         * reachable without privileges and never needed by Python code. */
        { "bpf", EPERM, COND_NONE, 0, "eBPF verifier bugs" },
        { "perf_event_open", EPERM, COND_NONE, 0, "perf bugs and side channels" },
        { "userfaultfd", EPERM, COND_NONE, 0, "stalls the kernel mid-copy: a race-exploitation tool" },
        { "add_key", EPERM, COND_NONE, 0, "keyrings are not namespaced" },
        { "request_key", EPERM, COND_NONE, 0, "keyrings are not namespaced" },
        { "keyctl", EPERM, COND_NONE, 0, "keyrings are not namespaced" },
        /* inotify instances and watches, and fanotify groups, are counted
         * per host uid (ucounts, fs.inotify.max_user_instances: 128): on
         * the unprivileged path every run is the service's uid, so one run
         * could take them all from the others and from the service. */
        { "inotify_init", EPERM, COND_NONE, 0, "per-host-uid instance quota shared by every run" },
        { "inotify_init1", EPERM, COND_NONE, 0, "per-host-uid instance quota shared by every run" },
        { "fanotify_init", EPERM, COND_NONE, 0, "per-host-uid group quota; watches other processes' I/O" },
        /* ENOSYS so that libraries fall back to ordinary I/O. */
        { "io_uring_setup", ENOSYS, COND_NONE, 0, "io_uring: many escalations, bypasses seccomp for its ops" },
        { "io_uring_enter", ENOSYS, COND_NONE, 0, "io_uring" },
        { "io_uring_register", ENOSYS, COND_NONE, 0, "io_uring" },

        /* Personality flags turn off ASLR (ADDR_NO_RANDOMIZE) or make data
         * executable (READ_IMPLIES_EXEC); only the default is allowed. One
         * comparison per rule means the harmless query (0xffffffff) is
         * refused too; nothing in CPython or glibc makes it. */
        { "personality", EPERM, COND_ARG0_NE, PER_LINUX, "only PER_LINUX; flags weaken exploit mitigations" },

        /* The host's pool of huge pages (vm.nr_hugepages) is shared by every
         * sandbox and sits outside the memory cgroup: the zygote's memory
         * lives there (zygote-heap.c), and a program taking pages from it
         * would escape its memory limit and starve the next sandboxes. */
        { "mmap", EPERM, COND_ARG3_MASKED, MAP_HUGETLB, "hugetlb pages: outside the memory cgroup, shared pool" },
        { "memfd_create", EPERM, COND_ARG1_MASKED, MFD_HUGETLB, "hugetlb pages: outside the memory cgroup" },
        { "shmget", EPERM, COND_ARG2_MASKED, SHM_HUGETLB, "hugetlb pages: outside the memory cgroup" },

        /* IPv6 flow labels live in one host-wide table (4096 entries for
         * every network namespace together, ENOBUFS for unprivileged users
         * once 3072 are taken), outlive their socket by a linger of up to
         * 150 s, and with share IPV6_FL_S_ANY any socket of the namespace
         * may join one: a program could fill the host's table, and leave a
         * label to the next run of a pooled network namespace (zygote.c).
         * Without the manager no socket holds a label, so sending one
         * (IPV6_FLOWINFO_SEND, or the IPV6_FLOWINFO control message) fails
         * in the kernel; the flag is refused as well, being useless. */
        { "setsockopt", EPERM, COND_SOCKOPT, SOCKOPT(IPPROTO_IPV6, IPV6_FLOWLABEL_MGR),
          "IPv6 flow labels: a host-wide table, state outliving the run" },
        { "getsockopt", EPERM, COND_SOCKOPT, SOCKOPT(IPPROTO_IPV6, IPV6_FLOWLABEL_MGR),
          "IPv6 flow labels: the manager's read side" },
        { "setsockopt", EPERM, COND_SOCKOPT, SOCKOPT(IPPROTO_IPV6, IPV6_FLOWINFO_SEND),
          "IPv6 flow labels: sending needs a label from the manager" },

        /* Injecting input into a terminal the sandbox might share. */
        { "ioctl", EPERM, COND_ARG1_EQ32, TIOCSTI, "pushes keystrokes into a terminal" },
        { "ioctl", EPERM, COND_ARG1_EQ32, TIOCLINUX, "console control: selection paste" },
};

/*
 * Socket families, for socket() and socketpair() alike: Unix and IP only (IP
 * goes nowhere: the network namespace is empty). Netlink, packet, vsock,
 * TIPC, bluetooth, ... are kernel surface with escalations of their own.
 * EAFNOSUPPORT is what the kernel says for a family it lacks, so Python
 * raises the ordinary error. The entries cover every family except AF_UNIX
 * (1), AF_INET (2) and AF_INET6 (10); GT compares all 64 bits, so garbage in
 * the upper half is denied too.
 */
static const struct family_rule {
        enum cond cond;
        uint64_t value;
        const char *why;
} denied_families[] = {
        { COND_ARG0_EQ, AF_UNSPEC, "unspecified family" },
        { COND_ARG0_EQ, 3, "AF_AX25" },
        { COND_ARG0_EQ, 4, "AF_IPX" },
        { COND_ARG0_EQ, 5, "AF_APPLETALK" },
        { COND_ARG0_EQ, 6, "AF_NETROM" },
        { COND_ARG0_EQ, 7, "AF_BRIDGE" },
        { COND_ARG0_EQ, 8, "AF_ATMPVC" },
        { COND_ARG0_EQ, 9, "AF_X25" },
        { COND_ARG0_GT, AF_INET6, "netlink, packet, vsock, TIPC and every later family" },
};

static const char *const socket_calls[] = { "socket", "socketpair" };

size_t seccomp_policy_rule_count(void) {
        return ELEMENTSOF(rules) + ELEMENTSOF(socket_calls) * ELEMENTSOF(denied_families);
}

static int add_rule(scmp_filter_ctx ctx, const struct seccomp_rule *r) {
        int nr = seccomp_syscall_resolve_name(r->syscall);
        uint32_t act = SCMP_ACT_ERRNO((uint32_t)r->err);

        /* A syscall this libseccomp does not know cannot be filtered by
         * number either; the architecture check still stands. */
        if (nr == __NR_SCMP_ERROR)
                return 0;
        switch (r->cond) {
        case COND_NONE:
                return seccomp_rule_add(ctx, act, nr, 0);
        case COND_ARG0_MASKED:
                return seccomp_rule_add(ctx, act, nr, 1, SCMP_A0(SCMP_CMP_MASKED_EQ, r->value, r->value));
        case COND_ARG0_EQ:
                return seccomp_rule_add(ctx, act, nr, 1, SCMP_A0(SCMP_CMP_EQ, r->value));
        case COND_ARG0_GT:
                return seccomp_rule_add(ctx, act, nr, 1, SCMP_A0(SCMP_CMP_GT, r->value));
        case COND_ARG0_NE:
                return seccomp_rule_add(ctx, act, nr, 1, SCMP_A0(SCMP_CMP_NE, r->value));
        case COND_ARG0_EQ32:
                return seccomp_rule_add(ctx, act, nr, 1, SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffu, r->value));
        case COND_ARG1_EQ32:
                return seccomp_rule_add(ctx, act, nr, 1, SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, r->value));
        case COND_ARG1_MASKED:
                return seccomp_rule_add(ctx, act, nr, 1, SCMP_A1(SCMP_CMP_MASKED_EQ, r->value, r->value));
        case COND_ARG2_MASKED:
                return seccomp_rule_add(ctx, act, nr, 1, SCMP_A2(SCMP_CMP_MASKED_EQ, r->value, r->value));
        case COND_ARG3_MASKED:
                return seccomp_rule_add(ctx, act, nr, 1, SCMP_A3(SCMP_CMP_MASKED_EQ, r->value, r->value));
        case COND_SOCKOPT:
                /* Level and name are ints: the kernel ignores the upper
                 * halves, so the filter must too. */
                return seccomp_rule_add(ctx, act, nr, 2, SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, r->value >> 32),
                                        SCMP_A2(SCMP_CMP_MASKED_EQ, 0xffffffffu, r->value & 0xffffffffu));
        }
        return -EINVAL;
}

int seccomp_policy_compile(struct seccomp_prog *ret) {
        scmp_filter_ctx ctx;
        _cleanup_close_ int fd = -1;
        struct sock_filter *insns;
        off_t size;
        int r;

        ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (!ctx)
                return -ENOMEM;
        /* Foreign architectures are killed: see the comment on the table. The
         * native x86-64 filter also rejects x32 (syscall numbers with bit 30
         * set) with this action. */
        r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
        if (r < 0)
                goto out;
        for (size_t i = 0; i < ELEMENTSOF(rules); i++) {
                r = add_rule(ctx, &rules[i]);
                if (r < 0)
                        goto out;
        }
        for (size_t c = 0; c < ELEMENTSOF(socket_calls); c++)
                for (size_t i = 0; i < ELEMENTSOF(denied_families); i++) {
                        const struct seccomp_rule fr = { socket_calls[c], EAFNOSUPPORT, denied_families[i].cond,
                                                         denied_families[i].value, denied_families[i].why };
                        r = add_rule(ctx, &fr);
                        if (r < 0)
                                goto out;
                }
        fd = memfd_create("pyexec-seccomp", MFD_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                goto out;
        }
        r = seccomp_export_bpf(ctx, fd);
        if (r < 0)
                goto out;
        size = lseek(fd, 0, SEEK_END);
        if (size <= 0 || size % (off_t)sizeof(struct sock_filter) != 0) {
                r = -EIO;
                goto out;
        }
        insns = malloc((size_t)size);
        if (!insns) {
                r = -ENOMEM;
                goto out;
        }
        errno = 0;
        if (pread(fd, insns, (size_t)size, 0) != size) {
                r = errno ? -errno : -EIO;
                free(insns);
                goto out;
        }
        ret->insns = insns;
        ret->len = (size_t)size / sizeof(struct sock_filter);
        r = 0;
out:
        seccomp_release(ctx);
        return r;
}

