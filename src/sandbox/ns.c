/* SPDX-License-Identifier: MIT */
#include "ns.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

#ifdef __SANITIZE_THREAD__
#include <dirent.h>

/* ThreadSanitizer does not see a clone() system call as a fork: the child
 * would keep the other threads' history, and its first use of a recycled
 * descriptor number, say, would be reported as a race with a thread of the
 * service. Its hooks for a fork by system call (linux_syscall_hooks.h, not
 * shipped with gcc) make it treat the child as fork()'s: the child of a
 * threaded process ignores everything until it execs. A single-threaded
 * caller (the CLI) does not need them, and would get the sanitizer's
 * background thread started in the child, inside the sandbox. */
void __sanitizer_syscall_pre_impl_fork(void);
void __sanitizer_syscall_post_impl_fork(long res);

static bool other_threads(void) {
        DIR *d = opendir("/proc/self/task");
        int n = 0;

        if (!d)
                return false;
        while (n < 4 && readdir(d))
                n++;
        closedir(d);
        return n > 3; /* ".", "..", this thread and another */
}
#endif

pid_t ns_clone(unsigned long flags) {
        long r;
#ifdef __SANITIZE_THREAD__
        bool hooks = other_threads();
        if (hooks)
                __sanitizer_syscall_pre_impl_fork();
#endif
        /* x86-64 argument order: flags, stack, parent_tid, child_tid, tls. A
         * NULL stack makes the child continue on a copy of ours, like fork. */
        r = syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, 0);
#ifdef __SANITIZE_THREAD__
        if (hooks)
                __sanitizer_syscall_post_impl_fork(r < 0 ? -errno : r);
#endif
        return r < 0 ? -errno : (pid_t)r;
}

int ns_write_id_maps(pid_t pid, uid_t inside_uid, uid_t outside_uid, gid_t inside_gid, gid_t outside_gid,
                     bool deny_setgroups) {
        char path[64], map[64];
        int r;

        if (deny_setgroups) {
                snprintf(path, sizeof path, "/proc/%d/setgroups", (int)pid);
                r = write_control_file(path, "deny");
                if (r < 0 && r != -ENOENT)
                        return r;
        }
        snprintf(path, sizeof path, "/proc/%d/uid_map", (int)pid);
        snprintf(map, sizeof map, "%u %u 1\n", (unsigned)inside_uid, (unsigned)outside_uid);
        r = write_control_file(path, map);
        if (r < 0)
                return r;
        snprintf(path, sizeof path, "/proc/%d/gid_map", (int)pid);
        snprintf(map, sizeof map, "%u %u 1\n", (unsigned)inside_gid, (unsigned)outside_gid);
        return write_control_file(path, map);
}

bool ns_userns_works(void) {
        int status;
        pid_t pid = ns_clone(CLONE_NEWUSER);
        if (pid == 0)
                _exit(0);
        if (pid < 0)
                return false;
        if (waitpid(pid, &status, 0) < 0)
                return false;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

int ns_new_net(int home_fd) {
        int fd, r;

        if (unshare(CLONE_NEWNET) < 0)
                return -errno;
        fd = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        r = fd < 0 ? -errno : 0;
        if (setns(home_fd, CLONE_NEWNET) < 0) {
                fprintf(stderr, "pyexec: cannot return to the service's network namespace: %m\n");
                abort();
        }
        return r < 0 ? r : fd;
}
