/* SPDX-License-Identifier: MIT */
#include "cred.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int cred_drop(uid_t uid, gid_t gid, bool can_setgroups) {
        struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = { 0 };

        if (can_setgroups && setgroups(0, NULL) < 0)
                return -errno;
        if (setresgid(gid, gid, gid) < 0)
                return -errno;
        /* The bounding set caps what any later execve could grant; dropping
         * needs CAP_SETPCAP, so it comes before the uid change clears it. */
        for (int cap = 0; cap <= 63; cap++)
                if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
                        return -errno;
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
                return -errno;
        if (setresuid(uid, uid, uid) < 0)
                return -errno;
        /* Leaving uid 0 clears the sets already; inside a user namespace the
         * process was never uid 0 there, so clear them explicitly. */
        if (syscall(SYS_capset, &hdr, data) < 0)
                return -errno;
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return -errno;
        return 0;
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
