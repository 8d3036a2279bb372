/* SPDX-License-Identifier: MIT */
/*
 * zygote-heap: the zygote's writable memory on hugetlb pages (the why and
 * the invariants are at the top of zygote-heap.c). Used by the zygote
 * (zygote-child.c) only.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hugetlb.h"

#define ZYGOTE_HUGE_PAGE HUGETLB_PAGE_SIZE
#define ZYGOTE_HEAP_MAX_RANGES 4

/* At the zygote's start, before the interpreter: gather what the
 * interpreter will allocate into ranges that can move to huge pages (a
 * reservation for the object allocator's arenas, the brk heap from a 2 MiB
 * boundary). Harmless when nothing moves later. */
void zygote_heap_reserve(void);

/* Once the interpreter is initialized and settled: move the ranges to
 * hugetlb pages, provided the pool has room for sets copies of them (the
 * zygote's and each live sandbox's). Returns the number of huge pages moved
 * (0 with *ret_why saying why not, or none to move) and arms the fork
 * handler described in zygote-heap.c. */
unsigned zygote_heap_freeze(unsigned sets, const char **ret_why);

/* The moved ranges: [start, start + length). */
size_t zygote_heap_ranges(const uint64_t (**ret)[2]);
bool zygote_heap_contains(uintptr_t start, uintptr_t end);

/* In a program, once its huge pages are its own (init copied them): from
 * now on a fork() first moves them back to ordinary pages. */
void zygote_heap_enter_program(void);
