/* SPDX-License-Identifier: MIT */
/*
 * The seccomp policy, tested against the kernel: every case forks, installs
 * the filter in the child (seccomp_prog_get + seccomp_prog_apply, the
 * program embedded at build time), makes the call with harmless arguments
 * through syscall(2), and checks the exact errno there; the parent checks
 * the exit status.
 *
 * For every denial, the same call is first made unfiltered (a "control"): the
 * arguments are chosen so that the kernel itself answers with a different
 * result (success, ENOENT, EBADF, EFAULT, EINVAL, ...), which proves the
 * filtered errno comes from the filter. On a host whose own sandbox already
 * answers with the same errno, the control says so on stderr and the filtered
 * check still runs.
 */
#include "test-helpers.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <linux/if_ether.h>
#include <linux/netlink.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/in6.h>
#include <sys/inotify.h>

#include "seccomp.h"
#include "seccomp-policy.h"

#define NONEXISTENT "/nonexistent-pyexec-test"

/* ---- the calls, one function each; each returns the raw syscall result ---- */

/* clone(2) with the given namespace flags, fork-like (NULL stack). The
 * unfiltered control really creates the child; it exits at once. */
static long do_clone(unsigned long flags) {
        long r = syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, 0);
        if (r == 0)
                _exit(0);
        if (r > 0) {
                int st;
                if (waitpid((pid_t)r, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
                        return -2;
        }
        return r;
}

static long call_ptrace(void) {
        /* no such pid: ESRCH without the filter */
        return syscall(SYS_ptrace, 16 /* PTRACE_ATTACH */, 0x7ffffff0, NULL, NULL);
}
static long call_mount(void) {
        return syscall(SYS_mount, "none", NONEXISTENT, "tmpfs", 0UL, NULL);
}
static long call_umount2(void) {
        return syscall(SYS_umount2, NONEXISTENT, 0);
}
static long call_unshare(void) {
        return syscall(SYS_unshare, CLONE_NEWUSER);
}
static long call_setns(void) {
        return syscall(SYS_setns, -1, 0);
}
static long call_clone_newuser(void) {
        return do_clone(CLONE_NEWUSER);
}
static long call_clone_newnet(void) {
        return do_clone(CLONE_NEWNET);
}
static long call_clone_newns(void) {
        return do_clone(CLONE_NEWNS);
}
static long call_clone_newpid(void) {
        return do_clone(CLONE_NEWPID);
}
static long call_clone_newuts_ipc_cgroup(void) {
        return do_clone(CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWCGROUP);
}
static long call_clone3(void) {
        /* NULL args: EINVAL without the filter */
        return syscall(SYS_clone3, NULL, 0);
}
static long call_bpf(void) {
        return syscall(SYS_bpf, 0x7fff, NULL, 0);
}
static long call_perf_event_open(void) {
        return syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0);
}
static long call_userfaultfd(void) {
        return syscall(SYS_userfaultfd, 0x7fffffff);
}
static long call_keyctl(void) {
        return syscall(SYS_keyctl, 0x7fff, 0, 0, 0, 0);
}
static long call_add_key(void) {
        return syscall(SYS_add_key, NULL, NULL, NULL, 0, 0);
}
static long call_request_key(void) {
        return syscall(SYS_request_key, NULL, NULL, NULL, 0);
}
static long call_io_uring_setup(void) {
        return syscall(SYS_io_uring_setup, 0, NULL);
}
static long call_io_uring_enter(void) {
        return syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0);
}
static long call_open_by_handle_at(void) {
        return syscall(SYS_open_by_handle_at, -1, NULL, O_RDONLY);
}
static long call_name_to_handle_at(void) {
        return syscall(SYS_name_to_handle_at, -1, NONEXISTENT, NULL, NULL, 0);
}
static long call_personality_no_aslr(void) {
        return syscall(SYS_personality, PER_LINUX | ADDR_NO_RANDOMIZE);
}
static long call_personality_read_exec(void) {
        return syscall(SYS_personality, PER_LINUX | READ_IMPLIES_EXEC);
}
static long call_personality_upper_bits(void) {
        /* the kernel takes an unsigned int; garbage above it is still denied */
        return syscall(SYS_personality, (1UL << 32) | PER_LINUX);
}
static long close_if_fd(long r) {
        if (r >= 0)
                close((int)r);
        return r >= 0 ? 0 : r;
}
static long call_socket_netlink(void) {
        return close_if_fd(syscall(SYS_socket, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
}
static long call_socketpair_tipc(void) {
        /* AF_TIPC (30) is one of the few families with socketpair support */
        int sv[2];
        long r = syscall(SYS_socketpair, 30, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
        if (r == 0) {
                close(sv[0]);
                close(sv[1]);
        }
        return r;
}
static long call_socketpair_netlink(void) {
        int sv[2];
        long r = syscall(SYS_socketpair, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0, sv);
        if (r == 0) {
                close(sv[0]);
                close(sv[1]);
        }
        return r;
}
static long call_socket_packet(void) {
        /* protocol 0: receives nothing even where it is allowed */
        return close_if_fd(syscall(SYS_socket, AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
}
static long call_socket_vsock(void) {
        return close_if_fd(syscall(SYS_socket, AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0));
}
static long call_socket_upper_bits(void) {
        /* the kernel truncates the family to int: this is AF_UNIX to it, but
         * the filter compares all 64 bits and must not be fooled either way */
        return close_if_fd(syscall(SYS_socket, (1UL << 32) | AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
}
static long call_kexec_load(void) {
        /* an unknown flag: EINVAL (or ENOSYS without CONFIG_KEXEC) */
        return syscall(SYS_kexec_load, 0UL, 0UL, NULL, 0x100UL);
}
static long call_init_module(void) {
        return syscall(SYS_init_module, NULL, 0UL, NULL);
}
static long call_finit_module(void) {
        return syscall(SYS_finit_module, -1, NULL, 0);
}
static long call_chroot(void) {
        return syscall(SYS_chroot, NONEXISTENT);
}
static long call_pivot_root(void) {
        return syscall(SYS_pivot_root, NONEXISTENT, NONEXISTENT);
}
static long call_process_vm_readv(void) {
        /* reading our own memory: succeeds without the filter */
        static char src[8] = "secret", dst[8];
        struct iovec l = { dst, sizeof dst }, r = { src, sizeof src };
        long n = syscall(SYS_process_vm_readv, getpid(), &l, 1UL, &r, 1UL, 0UL);
        return n == (long)sizeof src ? 0 : n;
}
static long call_process_vm_writev(void) {
        static char src[8] = "secret", dst[8];
        struct iovec l = { src, sizeof src }, r = { dst, sizeof dst };
        long n = syscall(SYS_process_vm_writev, getpid(), &l, 1UL, &r, 1UL, 0UL);
        return n == (long)sizeof src ? 0 : n;
}
static long call_kcmp(void) {
        return syscall(SYS_kcmp, getpid(), getpid(), 0 /* KCMP_FILE */, 0UL, 0UL);
}
static long call_pidfd_getfd(void) {
        return syscall(SYS_pidfd_getfd, -1, 0, 0);
}

/*
 * The calls that name pid 1, the run's init in a sandbox (the host's init
 * here). Unfiltered, as root, each passes the permission check and then
 * changes nothing: signal 0, a query, or arguments the kernel refuses after
 * finding the process (EINVAL); a pid or tid that is not there gives ESRCH.
 * Pids are ints: 1 with garbage in the upper half is pid 1 to the kernel.
 */
#define PID1_UPPER ((1L << 32) | 1)
#define NO_SUCH_ID 0x7ffffff0
/* A queued signal's siginfo as a program would forge it: SI_QUEUE (which
 * the kernel lets a process send to another) with "from outside" as pid. */
static siginfo_t forged_siginfo(void) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        si.si_code = SI_QUEUE;
        si.si_pid = 0;
        si.si_uid = 0;
        return si;
}
static long call_kill_pid1(void) {
        return syscall(SYS_kill, 1, 0);
}
static long call_kill_pid1_upper_bits(void) {
        return syscall(SYS_kill, PID1_UPPER, 0);
}
static long call_tkill_pid1(void) {
        return syscall(SYS_tkill, 1, 0);
}
static long call_tgkill_pid1(void) {
        return syscall(SYS_tgkill, 1, 1, 0);
}
static long call_tgkill_tid1(void) {
        return syscall(SYS_tgkill, getpid(), 1, 0); /* not our thread: ESRCH */
}
static long call_rt_sigqueueinfo_pid1(void) {
        siginfo_t si = forged_siginfo();
        return syscall(SYS_rt_sigqueueinfo, 1, 0, &si);
}
static long call_rt_sigqueueinfo_pid1_upper_bits(void) {
        siginfo_t si = forged_siginfo();
        return syscall(SYS_rt_sigqueueinfo, PID1_UPPER, 0, &si);
}
static long call_rt_tgsigqueueinfo_pid1(void) {
        siginfo_t si = forged_siginfo();
        return syscall(SYS_rt_tgsigqueueinfo, 1, 1, 0, &si);
}
static long call_rt_tgsigqueueinfo_tid1(void) {
        siginfo_t si = forged_siginfo();
        return syscall(SYS_rt_tgsigqueueinfo, getpid(), 1, 0, &si); /* ESRCH */
}
static long call_prlimit_pid1(void) {
        struct rlimit old;
        return syscall(SYS_prlimit64, 1, RLIMIT_CPU, NULL, &old);
}
static long call_prlimit_pid1_upper_bits(void) {
        struct rlimit old;
        return syscall(SYS_prlimit64, PID1_UPPER, RLIMIT_CPU, NULL, &old);
}
static long call_pidfd_open_pid1(void) {
        long fd = syscall(SYS_pidfd_open, 1, 0);
        if (fd >= 0)
                close((int)fd);
        return fd >= 0 ? 0 : fd;
}
static long call_sched_setaffinity_pid1(void) {
        return syscall(SYS_sched_setaffinity, 1, 0, NULL); /* an empty mask: EINVAL */
}
static long call_sched_setscheduler_pid1(void) {
        return syscall(SYS_sched_setscheduler, 1, SCHED_IDLE, NULL); /* no param: EINVAL */
}
static long call_sched_setparam_pid1(void) {
        return syscall(SYS_sched_setparam, 1, NULL);
}
static long call_sched_setattr_pid1(void) {
        return syscall(SYS_sched_setattr, 1, NULL, 0);
}
static long call_setpriority_pid1(void) {
        return syscall(SYS_setpriority, 99, 1, 19); /* no such "which": EINVAL */
}
static long call_setpriority_user(void) {
        return syscall(SYS_setpriority, PRIO_USER, NO_SUCH_ID, 19); /* nobody has it: ESRCH */
}
#define IOPRIO_WHO_PROCESS_ 1
#define IOPRIO_WHO_USER_ 3
#define IOPRIO_BAD_CLASS (7 << 13)
static long call_ioprio_set_pid1(void) {
        return syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS_, 1, IOPRIO_BAD_CLASS);
}
static long call_ioprio_set_user(void) {
        return syscall(SYS_ioprio_set, IOPRIO_WHO_USER_, NO_SUCH_ID, IOPRIO_BAD_CLASS);
}
static long ioctl_devnull(unsigned long req) {
        char c = 'x';
        int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        long r;
        if (fd < 0)
                return -3;
        /* /dev/null is not a terminal: ENOTTY without the filter */
        r = syscall(SYS_ioctl, fd, req, &c);
        close(fd);
        return r;
}
static long call_ioctl_tiocsti(void) {
        return ioctl_devnull(TIOCSTI);
}
static long call_ioctl_tiocsti_upper_bits(void) {
        /* the kernel's cmd is an unsigned int: upper bits do not hide it */
        return ioctl_devnull((1UL << 32) | TIOCSTI);
}
static long call_ioctl_tioclinux(void) {
        return ioctl_devnull(TIOCLINUX);
}
static long call_settimeofday(void) {
        return syscall(SYS_settimeofday, (void *)1, NULL); /* EFAULT unfiltered */
}
static long call_clock_settime(void) {
        return syscall(SYS_clock_settime, 0x7fff, NULL); /* EINVAL unfiltered */
}
static long call_reboot(void) {
        return syscall(SYS_reboot, 0, 0, 0, NULL); /* bad magic: EINVAL */
}
static long call_syslog(void) {
        return syscall(SYS_syslog, 0x7fff, NULL, 0);
}
static long call_swapon(void) {
        return syscall(SYS_swapon, NONEXISTENT, 0);
}
static long call_acct(void) {
        return syscall(SYS_acct, NONEXISTENT);
}
static long call_iopl(void) {
        return syscall(SYS_iopl, 4); /* level > 3: EINVAL */
}
static long call_move_mount(void) {
        return syscall(SYS_move_mount, -1, "", -1, "", 0);
}
static long call_open_tree(void) {
        return syscall(SYS_open_tree, -1, NONEXISTENT, 0);
}
static long call_fsopen(void) {
        return syscall(SYS_fsopen, "pyexec-no-such-fs", 0);
}
static long call_mount_setattr(void) {
        return syscall(SYS_mount_setattr, -1, NONEXISTENT, 0, NULL, 0);
}

/* The hugetlb pool: refused whether the host has one (the call would
 * succeed) or not (ENOMEM). */
static long call_mmap_hugetlb(void) {
        return (long)mmap(NULL, 2u << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
}
static long call_memfd_hugetlb(void) {
        return syscall(SYS_memfd_create, "x", MFD_CLOEXEC | MFD_HUGETLB);
}
static long call_shmget_hugetlb(void) {
        long id = syscall(SYS_shmget, IPC_PRIVATE, 2u << 20, IPC_CREAT | 0600 | SHM_HUGETLB);
        if (id >= 0) /* the unfiltered control: leave nothing behind */
                shmctl((int)id, IPC_RMID, NULL);
        return id;
}

/* IPv6 flow labels. The unfiltered control runs in a network namespace of
 * its own where it can make one (as root), so the label it creates dies
 * with the child instead of lingering in the host's table. */
struct flowlabel_req { /* struct in6_flowlabel_req */
        struct in6_addr dst;
        uint32_t label;
        uint8_t action, share;
        uint16_t flags, expires, linger;
        uint32_t pad;
};
static long flowlabel_sockopt(bool get, unsigned long level_bits, unsigned long name_bits, int optname) {
        struct flowlabel_req req = { .dst = IN6ADDR_LOOPBACK_INIT,
                                     .label = htonl(0xabcde),
                                     .action = 0 /* IPV6_FL_A_GET */,
                                     .share = 255 /* IPV6_FL_S_ANY */,
                                     .flags = 1 /* IPV6_FL_F_CREATE */,
                                     .expires = 6,
                                     .linger = 6 };
        socklen_t len = sizeof req;
        int one = 1, fd;
        long r;

        (void)syscall(SYS_unshare, CLONE_NEWNET); /* the filter refuses it: the label is refused too */
        fd = (int)syscall(SYS_socket, AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -3;
        if (optname == IPV6_FLOWINFO_SEND)
                r = syscall(SYS_setsockopt, fd, level_bits | IPPROTO_IPV6, name_bits | optname, &one, sizeof one);
        else if (get) /* no label on this socket: ENOENT unfiltered */
                r = syscall(SYS_getsockopt, fd, level_bits | IPPROTO_IPV6, name_bits | optname, &req, &len);
        else /* a new label, shared with any socket: succeeds unfiltered */
                r = syscall(SYS_setsockopt, fd, level_bits | IPPROTO_IPV6, name_bits | optname, &req, sizeof req);
        close(fd);
        return r;
}
static long call_setsockopt_flowlabel_mgr(void) {
        return flowlabel_sockopt(false, 0, 0, IPV6_FLOWLABEL_MGR);
}
static long call_setsockopt_flowlabel_mgr_upper_bits(void) {
        /* the kernel's level and name are ints: upper bits do not hide them */
        return flowlabel_sockopt(false, 1UL << 32, 0, IPV6_FLOWLABEL_MGR);
}
static long call_setsockopt_flowlabel_mgr_name_upper_bits(void) {
        return flowlabel_sockopt(false, 0, 1UL << 32, IPV6_FLOWLABEL_MGR);
}
static long call_getsockopt_flowlabel_mgr(void) {
        return flowlabel_sockopt(true, 0, 0, IPV6_FLOWLABEL_MGR);
}
static long call_setsockopt_flowinfo_send(void) {
        return flowlabel_sockopt(false, 0, 0, IPV6_FLOWINFO_SEND);
}
static long call_inotify_init1(void) {
        return close_if_fd(syscall(SYS_inotify_init1, IN_CLOEXEC));
}
static long call_fanotify_init(void) {
        return syscall(SYS_fanotify_init, 0x80000000u, 0); /* unknown flag: EINVAL unfiltered */
}

struct denial {
        const char *name;
        long (*call)(void);
        int err;
};

static const struct denial denials[] = {
        { "ptrace", call_ptrace, EPERM },
        { "mount", call_mount, EPERM },
        { "umount2", call_umount2, EPERM },
        { "unshare", call_unshare, EPERM },
        { "setns", call_setns, EPERM },
        { "clone(CLONE_NEWUSER)", call_clone_newuser, EPERM },
        { "clone(CLONE_NEWNET)", call_clone_newnet, EPERM },
        { "clone(CLONE_NEWNS)", call_clone_newns, EPERM },
        { "clone(CLONE_NEWPID)", call_clone_newpid, EPERM },
        { "clone(CLONE_NEWUTS|NEWIPC|NEWCGROUP)", call_clone_newuts_ipc_cgroup, EPERM },
        { "clone3", call_clone3, ENOSYS },
        { "bpf", call_bpf, EPERM },
        { "perf_event_open", call_perf_event_open, EPERM },
        { "userfaultfd", call_userfaultfd, EPERM },
        { "keyctl", call_keyctl, EPERM },
        { "add_key", call_add_key, EPERM },
        { "request_key", call_request_key, EPERM },
        { "io_uring_setup", call_io_uring_setup, ENOSYS },
        { "io_uring_enter", call_io_uring_enter, ENOSYS },
        { "open_by_handle_at", call_open_by_handle_at, EPERM },
        { "name_to_handle_at", call_name_to_handle_at, EPERM },
        { "personality(ADDR_NO_RANDOMIZE)", call_personality_no_aslr, EPERM },
        { "personality(READ_IMPLIES_EXEC)", call_personality_read_exec, EPERM },
        { "personality(1<<32)", call_personality_upper_bits, EPERM },
        { "socket(AF_NETLINK)", call_socket_netlink, EAFNOSUPPORT },
        { "socket(AF_PACKET)", call_socket_packet, EAFNOSUPPORT },
        { "socketpair(AF_TIPC)", call_socketpair_tipc, EAFNOSUPPORT },
        { "socketpair(AF_NETLINK)", call_socketpair_netlink, EAFNOSUPPORT },
        { "socket(AF_VSOCK)", call_socket_vsock, EAFNOSUPPORT },
        { "socket((1<<32)|AF_UNIX)", call_socket_upper_bits, EAFNOSUPPORT },
        { "kexec_load", call_kexec_load, EPERM },
        { "init_module", call_init_module, EPERM },
        { "finit_module", call_finit_module, EPERM },
        { "chroot", call_chroot, EPERM },
        { "pivot_root", call_pivot_root, EPERM },
        { "process_vm_readv", call_process_vm_readv, EPERM },
        { "process_vm_writev", call_process_vm_writev, EPERM },
        { "kcmp", call_kcmp, EPERM },
        { "pidfd_getfd", call_pidfd_getfd, EPERM },
        { "kill(1)", call_kill_pid1, EPERM },
        { "kill((1<<32)|1)", call_kill_pid1_upper_bits, EPERM },
        { "tkill(1)", call_tkill_pid1, EPERM },
        { "tgkill(1, 1)", call_tgkill_pid1, EPERM },
        { "tgkill(self, 1)", call_tgkill_tid1, EPERM },
        { "rt_sigqueueinfo(1)", call_rt_sigqueueinfo_pid1, EPERM },
        { "rt_sigqueueinfo((1<<32)|1)", call_rt_sigqueueinfo_pid1_upper_bits, EPERM },
        { "rt_tgsigqueueinfo(1, 1)", call_rt_tgsigqueueinfo_pid1, EPERM },
        { "rt_tgsigqueueinfo(self, 1)", call_rt_tgsigqueueinfo_tid1, EPERM },
        { "prlimit64(1)", call_prlimit_pid1, EPERM },
        { "prlimit64((1<<32)|1)", call_prlimit_pid1_upper_bits, EPERM },
        { "pidfd_open(1)", call_pidfd_open_pid1, EPERM },
        { "sched_setaffinity(1)", call_sched_setaffinity_pid1, EPERM },
        { "sched_setscheduler(1)", call_sched_setscheduler_pid1, EPERM },
        { "sched_setparam(1)", call_sched_setparam_pid1, EPERM },
        { "sched_setattr(1)", call_sched_setattr_pid1, EPERM },
        { "setpriority(_, 1)", call_setpriority_pid1, EPERM },
        { "setpriority(PRIO_USER)", call_setpriority_user, EPERM },
        { "ioprio_set(IOPRIO_WHO_PROCESS, 1)", call_ioprio_set_pid1, EPERM },
        { "ioprio_set(IOPRIO_WHO_USER)", call_ioprio_set_user, EPERM },
        { "ioctl(TIOCSTI)", call_ioctl_tiocsti, EPERM },
        { "ioctl((1<<32)|TIOCSTI)", call_ioctl_tiocsti_upper_bits, EPERM },
        { "ioctl(TIOCLINUX)", call_ioctl_tioclinux, EPERM },
        { "settimeofday", call_settimeofday, EPERM },
        { "clock_settime", call_clock_settime, EPERM },
        { "reboot", call_reboot, EPERM },
        { "syslog", call_syslog, EPERM },
        { "swapon", call_swapon, EPERM },
        { "acct", call_acct, EPERM },
        { "iopl", call_iopl, EPERM },
        { "move_mount", call_move_mount, EPERM },
        { "open_tree", call_open_tree, EPERM },
        { "fsopen", call_fsopen, EPERM },
        { "mount_setattr", call_mount_setattr, EPERM },
        { "mmap(MAP_HUGETLB)", call_mmap_hugetlb, EPERM },
        { "memfd_create(MFD_HUGETLB)", call_memfd_hugetlb, EPERM },
        { "shmget(SHM_HUGETLB)", call_shmget_hugetlb, EPERM },
        { "setsockopt(IPV6_FLOWLABEL_MGR)", call_setsockopt_flowlabel_mgr, EPERM },
        { "setsockopt((1<<32)|IPPROTO_IPV6, IPV6_FLOWLABEL_MGR)", call_setsockopt_flowlabel_mgr_upper_bits, EPERM },
        { "setsockopt(IPPROTO_IPV6, (1<<32)|IPV6_FLOWLABEL_MGR)", call_setsockopt_flowlabel_mgr_name_upper_bits, EPERM },
        { "getsockopt(IPV6_FLOWLABEL_MGR)", call_getsockopt_flowlabel_mgr, EPERM },
        { "setsockopt(IPV6_FLOWINFO_SEND)", call_setsockopt_flowinfo_send, EPERM },
        { "inotify_init1", call_inotify_init1, EPERM },
        { "fanotify_init", call_fanotify_init, EPERM },
};

static void apply_filter_or_die(void) {
        const struct seccomp_prog *p;
        int r = seccomp_prog_get(&p);
        if (r < 0) {
                errno = -r;
                CHILD_FAIL(90, "seccomp_prog_get");
        }
        r = seccomp_prog_apply(p);
        if (r < 0) {
                errno = -r;
                CHILD_FAIL(91, "seccomp_prog_apply");
        }
}

/* Exit codes of the probe child: 0 = the call succeeded, 1..254 = its errno,
 * 255 = it returned something that is neither. */
static void probe_child(const struct denial *d, bool filtered) {
        long r;
        if (filtered)
                apply_filter_or_die();
        errno = 0;
        r = d->call();
        if (r >= 0)
                _exit(0);
        if (r == -1 && errno > 0 && errno < 255)
                _exit(errno);
        _exit(255);
}

static int probe(const struct denial *d, bool filtered) {
        pid_t pid = test_fork();
        if (pid < 0)
                return -errno;
        if (pid == 0)
                probe_child(d, filtered);
        return wait_child(pid, 5000);
}

static void test_denial(void **state) {
        const struct denial *d = *state;
        char b[64];
        int st;

        /* control: what the kernel says without the filter */
        st = probe(d, false);
        if (st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == d->err)
                print_message("[   NOTE   ] %s: control inconclusive, the host itself answers %s\n", d->name,
                              strerrorname_np(d->err));
        else if (st < 0 || !WIFEXITED(st))
                fail_msg("%s unfiltered: %s", d->name, status_str(st, b, sizeof b));

        st = probe(d, true);
        if (st < 0 || !WIFEXITED(st))
                fail_msg("%s filtered: %s", d->name, status_str(st, b, sizeof b));
        if (WEXITSTATUS(st) != d->err) {
                int got = WEXITSTATUS(st);
                fail_msg("%s filtered: expected %s, got %s", d->name, strerrorname_np(d->err),
                         got == 0 ? "success" : got == 255 ? "odd return" : strerrorname_np(got) ?: "?");
        }
}

/* ---- what stays allowed ---- */

static void *thread_main(void *arg) {
        return (void *)((uintptr_t)arg + 1);
}

static int allowed_child(void *arg) {
        int fds[2], sv[2], fd, n = -1;
        long pid_before = syscall(SYS_getpid);
        char c = 0;
        pthread_t t;
        void *ret;

        apply_filter_or_die();

        CHILD_CHECK(syscall(SYS_getpid) == pid_before, 1);
        CHILD_CHECK(pipe2(fds, O_CLOEXEC) == 0, 2);
        CHILD_CHECK(syscall(SYS_write, fds[1], "y", 1) == 1, 3);
        CHILD_CHECK(ioctl(fds[0], FIONREAD, &n) == 0 && n == 1, 4); /* other ioctls work */
        CHILD_CHECK(read(fds[0], &c, 1) == 1 && c == 'y', 5);

        /* plain fork and clone without namespace flags */
        pid_t p = fork();
        CHILD_CHECK(p >= 0, 6);
        if (p == 0)
                _exit(7);
        CHILD_CHECK(wait_child(p, 5000) == (7 << 8), 7);
        long r = syscall(SYS_clone, SIGCHLD, NULL, NULL, NULL, 0);
        CHILD_CHECK(r >= 0, 8);
        if (r == 0)
                _exit(9);
        CHILD_CHECK(wait_child((pid_t)r, 5000) == (9 << 8), 9);
        /* threads: glibc tries clone3, gets ENOSYS and falls back to clone
         * with CLONE_THREAD, which the rules let through */
        CHILD_CHECK(pthread_create(&t, NULL, thread_main, (void *)41) == 0, 10);
        CHILD_CHECK(pthread_join(t, &ret) == 0 && ret == (void *)42, 11);

        /* personality(0) and the query are PER_LINUX: allowed */
        CHILD_CHECK(syscall(SYS_personality, PER_LINUX) >= 0, 12);

        /* the socket families Python needs */
        fd = (int)syscall(SYS_socket, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHILD_CHECK(fd >= 0, 13);
        close(fd);
        fd = (int)syscall(SYS_socket, AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHILD_CHECK(fd >= 0, 14);
        close(fd);
        fd = (int)syscall(SYS_socket, AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        CHILD_CHECK(fd >= 0, 15);
        close(fd);
        CHILD_CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, 16);

        /* memory without hugetlb: anonymous, memfd, System V */
        {
                void *m = mmap(NULL, 1u << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                int id;
                CHILD_CHECK(m != MAP_FAILED, 20);
                fd = (int)syscall(SYS_memfd_create, "x", MFD_CLOEXEC);
                CHILD_CHECK(fd >= 0, 21);
                close(fd);
                id = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0600);
                CHILD_CHECK(id >= 0, 22);
                shmctl(id, IPC_RMID, NULL);
        }

        /* no_new_privs is set and the filter is in place */
        CHILD_CHECK(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, 17);
        CHILD_CHECK(prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == 2, 18);
        return 0;
}

/* The pid-1 rules leave the program's own process, its threads and every
 * other pid alone. */
static int pid1_rules_child(void *arg) {
        pid_t self = getpid(), tid = (pid_t)syscall(SYS_gettid);
        siginfo_t si = forged_siginfo();
        struct rlimit lim;
        cpu_set_t cpus;
        long fd;

        apply_filter_or_die();
        CHILD_CHECK(syscall(SYS_kill, 0, 0) == 0, 1);
        CHILD_CHECK(syscall(SYS_kill, self, 0) == 0, 2);
        CHILD_CHECK(syscall(SYS_kill, 2, 0) == 0 || errno == ESRCH, 3); /* only pid 1 is refused */
        CHILD_CHECK(syscall(SYS_tkill, tid, 0) == 0, 4);
        CHILD_CHECK(syscall(SYS_tgkill, self, tid, 0) == 0, 5);
        CHILD_CHECK(syscall(SYS_rt_sigqueueinfo, self, 0, &si) == 0, 6);
        CHILD_CHECK(syscall(SYS_rt_tgsigqueueinfo, self, tid, 0, &si) == 0, 7);
        /* Python's resource.setrlimit, and prlimit on itself */
        CHILD_CHECK(syscall(SYS_prlimit64, 0, RLIMIT_CPU, NULL, &lim) == 0, 8);
        CHILD_CHECK(syscall(SYS_prlimit64, 0, RLIMIT_CPU, &lim, NULL) == 0, 9);
        CHILD_CHECK(syscall(SYS_prlimit64, self, RLIMIT_NOFILE, NULL, &lim) == 0, 10);
        fd = syscall(SYS_pidfd_open, self, 0);
        CHILD_CHECK(fd >= 0, 11);
        close((int)fd);
        CHILD_CHECK(sched_getaffinity(0, sizeof cpus, &cpus) == 0, 12);
        CHILD_CHECK(syscall(SYS_sched_setaffinity, 0, sizeof cpus, &cpus) == 0, 13);
        CHILD_CHECK(syscall(SYS_sched_setaffinity, self, sizeof cpus, &cpus) == 0, 14);
        CHILD_CHECK(syscall(SYS_setpriority, PRIO_PROCESS, 0, 5) == 0, 15);
        CHILD_CHECK(syscall(SYS_setpriority, PRIO_PROCESS, self, 6) == 0, 16);
        return 0;
}

static void test_pid1_rules_leave_self_alone(void **state) {
        assert_status_exited(run_in_child(pid1_rules_child, NULL, 5000), 0);
}

static void test_allowed_calls_work(void **state) {
        assert_status_exited(run_in_child(allowed_child, NULL, 10000), 0);
}

static int nnp_before_child(void *arg) {
        /* a fresh child of the test runner has neither */
        CHILD_CHECK(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 0, 1);
        CHILD_CHECK(prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == 0, 2);
        apply_filter_or_die();
        CHILD_CHECK(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1, 3);
        CHILD_CHECK(prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == 2, 4);
        return 0;
}

static void test_apply_sets_no_new_privs(void **state) {
        assert_status_exited(run_in_child(nnp_before_child, NULL, 5000), 0);
}

static int inherit_child(void *arg) {
        apply_filter_or_die();
        pid_t p = fork();
        CHILD_CHECK(p >= 0, 1);
        if (p == 0) {
                /* the filter is inherited across fork */
                if (syscall(SYS_unshare, CLONE_NEWUSER) == -1 && errno == EPERM)
                        _exit(0);
                _exit(1);
        }
        CHILD_CHECK(wait_child(p, 5000) == 0, 2);
        return 0;
}

static void test_filter_inherited_by_children(void **state) {
        assert_status_exited(run_in_child(inherit_child, NULL, 5000), 0);
}

/* ---- foreign system call ABIs are killed ---- */

#define X32_SYSCALL_BIT 0x40000000UL

static int x32_child(void *arg) {
        apply_filter_or_die();
        /* x32 getpid: same entry point, bit 30 set in the number */
        syscall((long)(X32_SYSCALL_BIT | 39));
        return 1; /* not killed */
}

static void test_x32_syscall_killed(void **state) {
        assert_status_signaled(run_in_child(x32_child, NULL, 5000), SIGSYS);
}

static long int80_getpid(void) {
        long r;
        /* i386 getpid is 20; int 0x80 enters the 32-bit syscall table */
        __asm__ volatile("int $0x80" : "=a"(r) : "a"(20L) : "memory", "r8", "r9", "r10", "r11");
        return r;
}

static int int80_child(void *arg) {
        bool filtered = arg != NULL;
        if (filtered)
                apply_filter_or_die();
        long r = int80_getpid();
        return r == getpid() ? 0 : 1;
}

static void test_int80_syscall_killed(void **state) {
        int st = run_in_child(int80_child, NULL, 5000);
        char b[64];

        /* Where the host has no int 0x80 entry (IA-32 emulation off, or a
         * hypervisor that does not route it) the instruction faults before
         * any filter runs: there is nothing to test. */
        if (st >= 0 && WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV) {
                print_message("[   NOTE   ] int 0x80 faults on this host without any filter (no IA-32 syscall entry)\n");
                skip();
        }
        if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
                fail_msg("unfiltered int 0x80 getpid: %s", status_str(st, b, sizeof b));
        assert_status_signaled(run_in_child(int80_child, (void *)1, 5000), SIGSYS);
}

/* ---- the program itself ---- */

static void test_prog_get_stable(void **state) {
        const struct seccomp_prog *a = NULL, *b = NULL;
        assert_int_equal(seccomp_prog_get(&a), 0);
        assert_int_equal(seccomp_prog_get(&b), 0);
        assert_non_null(a);
        assert_ptr_equal(a, b);
        assert_non_null(a->insns);
        assert_true(a->len > seccomp_rule_count()); /* at least one insn per rule */
        assert_true(a->len <= 0xffff);
}

/* The program embedded at build time is what the policy table compiles to
 * now: a stale seccomp-filter.inc would install an old policy. */
static void test_embedded_matches_policy(void **state) {
        const struct seccomp_prog *emb;
        struct seccomp_prog fresh = { 0 };
        int r;

        assert_int_equal(seccomp_prog_get(&emb), 0);
        r = seccomp_policy_compile(&fresh);
        if (r < 0)
                fail_msg("seccomp_policy_compile: %s", strerror(-r));
        assert_int_equal(fresh.len, emb->len);
        assert_memory_equal(fresh.insns, emb->insns, emb->len * sizeof(struct sock_filter));
        assert_int_equal(seccomp_policy_rule_count(), seccomp_rule_count());
        free(fresh.insns);
}

static int oversized_child(void *arg) {
        const struct seccomp_prog *p;
        struct seccomp_prog big;
        CHILD_CHECK(seccomp_prog_get(&p) == 0, 1);
        big = *p;
        big.len = 0x10000;
        /* refused before anything is installed (the kernel's len is 16 bits
         * and would wrap to 0) */
        CHILD_CHECK(seccomp_prog_apply(&big) == -E2BIG, 2);
        CHILD_CHECK(prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == 0, 3);
        CHILD_CHECK(prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 0, 4);
        return 0;
}

static void test_apply_rejects_oversized(void **state) {
        assert_status_exited(run_in_child(oversized_child, NULL, 5000), 0);
}

int main(void) {
        struct CMUnitTest tests[ELEMENTSOF(denials) + 16];
        size_t n = 0;
        static const struct CMUnitTest fixed[] = {
                cmocka_unit_test(test_prog_get_stable),
                cmocka_unit_test(test_embedded_matches_policy),
                cmocka_unit_test(test_apply_rejects_oversized),
                cmocka_unit_test(test_apply_sets_no_new_privs),
                cmocka_unit_test(test_allowed_calls_work),
                cmocka_unit_test(test_pid1_rules_leave_self_alone),
                cmocka_unit_test(test_filter_inherited_by_children),
                cmocka_unit_test(test_x32_syscall_killed),
                cmocka_unit_test(test_int80_syscall_killed),
        };

        for (size_t i = 0; i < ELEMENTSOF(fixed); i++)
                tests[n++] = fixed[i];
        for (size_t i = 0; i < ELEMENTSOF(denials); i++)
                tests[n++] = (struct CMUnitTest){
                        .name = denials[i].name,
                        .test_func = test_denial,
                        .initial_state = (void *)&denials[i],
                };
        return _cmocka_run_group_tests("seccomp", tests, n, NULL, NULL);
}
