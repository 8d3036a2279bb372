/* SPDX-License-Identifier: MIT */
#include "uidpool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

int uidpool_config(uid_t *ret_base, unsigned *ret_count) {
        const char *b = getenv("PYEXEC_UID_BASE"), *c = getenv("PYEXEC_UID_COUNT");
        uint64_t base = UIDPOOL_DEFAULT_BASE, count = UIDPOOL_DEFAULT_COUNT;

        /* Never 0 (root) nor overlapping the nobody/overflow ids. */
        if (b && parse_u64(b, 1000, 4000000000ull, &base) < 0)
                return -EINVAL;
        if (c && parse_u64(c, 1, 65536, &count) < 0)
                return -EINVAL;
        /* count ids for the programs and count more for their inits. */
        if (base + 2 * count > 4294967294ull)
                return -EINVAL;
        *ret_base = (uid_t)base;
        *ret_count = (unsigned)count;
        return 0;
}

int uidpool_acquire(const char *lock_dir, uid_t base, unsigned count, struct uidpool_slot *ret) {
        static atomic_uint rotor;
        _cleanup_close_ int fd = -1;
        char path[4096];
        unsigned start;

        if (mkdir(lock_dir, 0700) < 0 && errno != EEXIST)
                return -errno;
        snprintf(path, sizeof path, "%s/uid-slots.lock", lock_dir);
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return -errno;
        /* Start at a different slot each time so that slots (and the cgroup
         * names derived from them) are not reused back to back. */
        start = ((unsigned)getpid() * 7919u + atomic_fetch_add(&rotor, 1)) % count;
        for (unsigned i = 0; i < count; i++) {
                unsigned idx = (start + i) % count;
                struct flock fl = {
                        .l_type = F_WRLCK,
                        .l_whence = SEEK_SET,
                        .l_start = idx,
                        .l_len = 1,
                };
                if (fcntl(fd, F_OFD_SETLK, &fl) == 0) {
                        *ret = (struct uidpool_slot){
                                .fd = TAKE_FD(fd),
                                .index = idx,
                                .uid = base + idx,
                                .init_uid = base + count + idx,
                        };
                        return 0;
                }
                if (errno != EAGAIN && errno != EACCES)
                        return -errno;
        }
        return -EAGAIN;
}

void uidpool_release(struct uidpool_slot *s) {
        if (s->fd >= 0)
                close(s->fd);
        s->fd = -1;
}
