/* SPDX-License-Identifier: MIT */
#include "cred.h"

#include <errno.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * Raw system calls, not glibc's setresuid() and friends: those broadcast the
 * change to every thread glibc believes the process has (SIGSETXID). A child
 * cloned from a multi-threaded service inherits that list of threads that
 * are not there, and would wait for them forever. The raw call changes the
 * calling thread, which in a sandbox child is the whole process.
 */
static int drop(uid_t own_uid, gid_t own_gid, uid_t uid, gid_t gid, bool can_setgroups) {
        struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = { 0 };

        if (can_setgroups && syscall(SYS_setgroups, 0, NULL) < 0)
                return -errno;
        if (syscall(SYS_setresgid, own_gid, gid, own_gid) < 0)
                return -errno;
        /* The bounding set caps what any later execve could grant; dropping
         * needs CAP_SETPCAP, so it comes before the uid change clears it. */
        for (int cap = 0; cap <= 63; cap++)
                if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
                        if (errno == EINVAL)
                                break; /* past the kernel's last capability */
                        return -errno;
                }
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
                return -errno;
        if (syscall(SYS_setresuid, own_uid, uid, own_uid) < 0)
                return -errno;
        /* Leaving uid 0 clears the sets already; inside a user namespace the
         * process was never uid 0 there, so clear them explicitly. */
        if (syscall(SYS_capset, &hdr, data) < 0)
                return -errno;
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return -errno;
        return 0;
}

int cred_drop(uid_t uid, gid_t gid, bool can_setgroups) {
        return drop(uid, gid, uid, gid, can_setgroups);
}

int cred_drop_apart(uid_t own_uid, gid_t own_gid, uid_t uid, gid_t gid, bool can_setgroups) {
        return drop(own_uid, own_gid, uid, gid, can_setgroups);
}

bool cred_has_any_capability(void) {
        struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = { 0 };

        if (syscall(SYS_capget, &hdr, data) < 0)
                return true;
        for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
                if (data[i].effective || data[i].permitted || data[i].inheritable)
                        return true;
        return false;
}
