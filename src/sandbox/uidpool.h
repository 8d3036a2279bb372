/* SPDX-License-Identifier: MIT */
/*
 * uidpool: a distinct host uid for every concurrent run, so that two
 * sandboxes never share file ownership, signal rights or RLIMIT_NPROC
 * counts. Each slot also names a second uid, from a block of the same size
 * right above the first, for the run's init: its real and saved ids, which
 * no process of the program's uid can signal, trace or set limits of
 * (supervise.c, cred_drop_apart). A slot is one byte of a lock file held with an open-file-
 * description lock (F_OFD_SETLK): released by the kernel when the holder
 * closes it or dies, shared correctly between threads and processes.
 */
#pragma once

#include <sys/types.h>

#define UIDPOOL_DEFAULT_BASE 1900000000u
#define UIDPOOL_DEFAULT_COUNT 1024u
#define UIDPOOL_LOCK_DIR "/run/pyexec"

struct uidpool_slot {
        int fd;         /* holds the lock; -1 when not held */
        unsigned index; /* 0 .. count-1 */
        uid_t uid;      /* base + index; the gid is the same number */
        uid_t init_uid; /* base + count + index: the run's init's; gid alike */
};

/* Base and count from PYEXEC_UID_BASE / PYEXEC_UID_COUNT, else defaults;
 * the pool uses the 2 * count ids from base. -EINVAL (naming nothing: the
 * caller names the variable) when malformed. */
int uidpool_config(uid_t *ret_base, unsigned *ret_count);

/* Take a free slot. -EAGAIN when all count slots are in use. */
int uidpool_acquire(const char *lock_dir, uid_t base, unsigned count, struct uidpool_slot *ret);
void uidpool_release(struct uidpool_slot *s);
