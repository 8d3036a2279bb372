/* SPDX-License-Identifier: MIT */
/*
 * cred: turning a sandbox process into an unprivileged one for good: no
 * supplementary groups, one uid and gid, no capabilities in any set, an
 * empty bounding set, and no_new_privs so no execve can give any back.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

/*
 * Drop everything. can_setgroups is false in a user namespace whose
 * setgroups file says "deny" (the unprivileged path), where the kernel
 * forbids changing the group list. Async-signal-safe. Returns -errno.
 */
int cred_drop(uid_t uid, gid_t gid, bool can_setgroups);

/*
 * Drop everything as cred_drop() does, but with real and saved ids
 * own_uid/own_gid and effective (so filesystem) ids uid/gid: a run's init,
 * which must signal every process of the program's uid (the kernel
 * compares the sender's real or effective uid with the target's real or
 * saved one) while no process of that uid can signal it, set its rlimits
 * (prlimit wants all three uids and gids equal) or trace it. Async-signal-
 * safe. Returns -errno.
 */
int cred_drop_apart(uid_t own_uid, gid_t own_gid, uid_t uid, gid_t gid, bool can_setgroups);

/* Whether the calling thread holds any capability in any set. */
bool cred_has_any_capability(void);
