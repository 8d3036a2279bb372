/* SPDX-License-Identifier: MIT */
/*
 * sandbox-env: who a program is inside its sandbox, in one place for the
 * cold path (supervise.c) and the warm one (zygote.c, whose zygote's
 * environment every warm program inherits): its environment, its user's
 * name and home, the hostname, the generated /etc that agrees with them,
 * and the ids a user namespace maps the caller to.
 */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#include "mount.h"

/* In a user namespace (the unprivileged path) the program, and init, are
 * this uid and gid: the caller's ids mapped, and the only ones mapped. Not
 * 0, so the program has no capabilities over its namespace even before
 * cred_drop(). As root a run gets host ids of its own instead (uidpool.h). */
#define SANDBOX_INNER_ID 1000
#define SANDBOX_USER "sandbox"
#define SANDBOX_HOSTNAME "sandbox"

/* Every program's environment, NULL-terminated: a fixed one, nothing of the
 * host's. Jobs add their own entries after these. */
extern char *const sandbox_env[];
#define SANDBOX_ENV_COUNT 11

/* Map SANDBOX_INNER_ID to the caller's outer ids in the user namespace of
 * pid (its init, waiting for the sync byte). -errno. */
int sandbox_map_inner_ids(pid_t pid, uid_t outer_uid, gid_t outer_gid);

/* The generated /etc of a sandbox whose program is uid/gid, in the
 * caller's buffers (passwd 512, group 256, hosts 160 bytes suffice). */
void sandbox_fill_etc(struct mount_file etc[5], char *passwd, size_t np, char *group, size_t ng, char *hosts, size_t nh,
                      uid_t uid, gid_t gid);
