/* SPDX-License-Identifier: MIT */
/*
 * seccomp-policy: the sandbox's system-call policy as a commented table, and
 * its compilation to BPF with libseccomp. This runs at build time
 * (tools/seccomp-gen.c embeds the program into pyexec) and in the unit tests,
 * which check that the embedded program is what the table compiles to; a
 * run never pays for libseccomp.
 */
#pragma once

#include <stddef.h>

#include "seccomp.h"

/* Compile the table; ret->insns is malloc()ed. Returns -errno. */
int seccomp_policy_compile(struct seccomp_prog *ret);

/* Number of rules in the table. */
size_t seccomp_policy_rule_count(void);
