/* SPDX-License-Identifier: MIT */
/*
 * sandbox-env: who a program is inside its sandbox (sandbox-env.h).
 */
#include "sandbox-env.h"

#include <stdio.h>
#include <string.h>

#include "ns.h"

char *const sandbox_env[SANDBOX_ENV_COUNT + 1] = {
        "PATH=/usr/local/bin:/usr/bin:/bin",
        "HOME=" SANDBOX_WORKDIR, /* the work directory: the program's files, writable */
        "LANG=C.UTF-8",          /* UTF-8 I/O whatever the host's locale */
        "USER=" SANDBOX_USER,
        "LOGNAME=" SANDBOX_USER,
        /* Numerical libraries start a thread per CPU by default: one each,
         * so a program stays within its pids limit and its CPU time is the
         * work it asked for. */
        "OPENBLAS_NUM_THREADS=1",
        "OMP_NUM_THREADS=1",
        "MKL_NUM_THREADS=1",
        "NUMEXPR_NUM_THREADS=1",
        /* matplotlib draws to files and buffers (there is no display), and
         * keeps its configuration and font cache in a writable directory
         * (HOME is the program's, whose files a run returns). */
        "MPLBACKEND=Agg",
        "MPLCONFIGDIR=/tmp/matplotlib",
        NULL,
};

int sandbox_map_inner_ids(pid_t pid, uid_t outer_uid, gid_t outer_gid) {
        return ns_write_id_maps(pid, SANDBOX_INNER_ID, outer_uid, SANDBOX_INNER_ID, outer_gid, true);
}

/* Its passwd entry says what sandbox_env says: the user's name, its home. */
void sandbox_fill_etc(struct mount_file etc[5], char *passwd, size_t np, char *group, size_t ng, char *hosts, size_t nh,
                      uid_t uid, gid_t gid) {
        snprintf(passwd, np,
                 "root:x:0:0:root:/root:/usr/sbin/nologin\n" SANDBOX_USER ":x:%u:%u:" SANDBOX_USER ":" SANDBOX_WORKDIR
                 ":/usr/sbin/nologin\n"
                 "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
                 (unsigned)uid, (unsigned)gid);
        snprintf(group, ng, "root:x:0:\n" SANDBOX_USER ":x:%u:\nnogroup:x:65534:\n", (unsigned)gid);
        snprintf(hosts, nh, "127.0.0.1\tlocalhost " SANDBOX_HOSTNAME "\n::1\tlocalhost ip6-localhost\n");
        etc[0] = (struct mount_file){ "passwd", passwd, strlen(passwd) };
        etc[1] = (struct mount_file){ "group", group, strlen(group) };
        etc[2] = (struct mount_file){ "hosts", hosts, strlen(hosts) };
        etc[3] = (struct mount_file){ "hostname", SANDBOX_HOSTNAME "\n", sizeof SANDBOX_HOSTNAME };
        etc[4] = (struct mount_file){ "nsswitch.conf", "passwd: files\ngroup: files\nhosts: files\n", 41 };
}
