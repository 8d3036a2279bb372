/* SPDX-License-Identifier: MIT */
/*
 * mount: the sandbox's filesystem, built fresh for every run inside its own
 * mount namespace and then made the root with pivot_root:
 *
 *   /            tmpfs, read-only once built
 *   /usr, /etc/ld.so.cache, /etc/python3*   read-only, nosuid, nodev binds
 *   /lib, /lib64, /bin, /sbin   symlinks on merged-/usr hosts, else binds
 *   /etc         generated: passwd, group, hosts, hostname, nsswitch.conf
 *   /proc        a new proc for the run's PID namespace
 *   /dev         tmpfs with null, zero, full, random, urandom (binds)
 *   /dev/shm     size-limited tmpfs, mode 1777, noexec: POSIX shm, semaphores
 *   /tmp         size-limited tmpfs, mode 1777
 *   /sandbox     size-limited tmpfs owned by the sandbox user: the program
 *
 * Nothing else of the host is reachable: no /home, /root, /var, /run, /sys,
 * host /tmp, the service's files or another run.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SANDBOX_WORKDIR "/sandbox"

struct mount_file {
        const char *name; /* plain file name */
        const char *data;
        size_t len;
};

#define MOUNT_MAX_BINDS 64

struct mount_bind {
        int fd;           /* O_PATH; mounted through /proc/self/fd/N */
        const char *dest; /* absolute inside the sandbox */
        bool dir;
        bool writable;
        bool exec; /* read-only binds only: keep exec (pyexec-runner itself) */
};

struct mount_plan {
        const char *staging; /* an existing host directory to build on (in the new namespace) */
        uint64_t work_bytes; /* size of /sandbox */
        uint64_t tmp_bytes;  /* size of /tmp, and of /dev/shm */
        uint64_t inodes;     /* files allowed in each of them */
        uid_t uid;           /* owner of /sandbox and its files */
        gid_t gid;
        const struct mount_file *etc; /* generated /etc files */
        size_t n_etc;
        const struct mount_file *work; /* the program and its files */
        size_t n_work;
        const struct mount_bind *binds; /* host paths for jobs */
        size_t n_binds;
};

/*
 * Build the root and pivot into it; the caller must be alone in a new mount
 * namespace (and a new PID namespace, for /proc) with CAP_SYS_ADMIN over it.
 * Async-signal-safe: no allocation. On failure *ret_step names what failed.
 */
int mount_build_root(const struct mount_plan *p, const char **ret_step);
