/* SPDX-License-Identifier: MIT */
/*
 * The zygote's writable memory on hugetlb pages.
 *
 * Why: every sandbox is a copy of the zygote, and the first steps of a run
 * write to some 1500 of its 4 KiB pages (reference counts live in every
 * object): each is copied (by init, zygote-child.c, or by the program), and
 * under the shadow paging of VMs like this project's build machine every
 * first touch of a page costs a new process 3 to 5 us more. On 2 MiB pages
 * the copies are six, and so are the touches: a hello world took about 18%
 * less CPU at concurrency 8 (docs/benchmarks.md).
 *
 * Why hugetlb and not transparent huge pages: a transparent huge page comes
 * fresh from the buddy allocator, and on a host that reports freed memory
 * back to the hypervisor (page reporting) each one is faulted in by the
 * hypervisor again, which ate the gain. Pages of the hugetlb
 * pool stay with the guest. The pool is the service's to size
 * (vm.nr_hugepages, zygote.c); without one nothing moves.
 *
 * What moves, each by copying it into a private hugetlb mapping that
 * mremap() then puts over the original:
 *  - the arenas of Python's object allocator (most objects): the zygote
 *    serves them from one 2 MiB-aligned reservation (PyObject_SetArena-
 *    Allocator), so that they lie together;
 *  - the brk heap (malloc's), from a 2 MiB boundary set at start;
 *  - the 2 MiB-aligned part of the executable's data and bss after RELRO
 *    (the interpreter's static state: libpython is linked in).
 * About 6 pages (12 MiB) with the default ZYGOTE_PREIMPORT.
 *
 * Invariants, because a private hugetlb page shared after fork() needs a
 * page from the pool when either side writes it, and with none left the
 * writer gets SIGBUS (or, when the writer is the zygote, which owns the
 * mapping, the kernel takes the page away from the children instead):
 *  - No program shares a huge page with the zygote: with the program
 *    stopped right after its fork, init writes a byte into every one of
 *    them (process_vm_writev), which copies them all; if any copy fails,
 *    init kills the program and the build fails (sandbox-child.c), and the
 *    service builds another sandbox or runs the request cold. The zygote
 *    itself then never needs a page: its pages are its own again.
 *  - A program that forks (os.fork, multiprocessing) first moves its huge
 *    ranges back to ordinary pages (a pthread_atfork handler, once: its
 *    first fork took about 30 ms instead of 2 to 9 on a paravirtualized
 *    host, the 12 MiB being fresh memory that the host faults in; populated in one mmap, not
 *    page by page, which took 76 ms); vfork and posix_spawn (subprocess)
 *    share the memory and copy nothing. The move copies while other
 *    threads may run: a thread that writes into the moved ranges during it,
 *    with the GIL released (a readinto() into a small buffer), can lose
 *    that write. A raw clone() skips the handler, and a page its child or
 *    parent then writes would need another page of the pool: the run's
 *    hugetlb cgroup allows its copy of the zygote's pages and not one more
 *    (zygote.c, box_build), so the writer gets SIGBUS and the pool keeps
 *    its pages. Programs cannot ask for hugetlb memory themselves: seccomp
 *    refuses MAP_HUGETLB, MFD_HUGETLB and SHM_HUGETLB.
 *  - Pool pages are not charged to the memory cgroup: each sandbox holds
 *    the zygote's count of them beyond its memory limit, no more (its
 *    hugetlb cgroup's limit), and its peak memory counts them (cgroup.h).
 *    Where no hugetlb cgroup can be made nothing would bound them, and the
 *    zygote keeps its memory on ordinary pages (zygote.c, huge_bounded).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "zygote-heap.h"

#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util.h"
#include "hugetlb.h"

#ifndef MAP_HUGETLB
#define MAP_HUGETLB 0x40000
#endif

#define ALIGN_UP(x) (((uintptr_t)(x) + ZYGOTE_HUGE_PAGE - 1) & ~(ZYGOTE_HUGE_PAGE - 1))
#define ALIGN_DOWN(x) ((uintptr_t)(x) & ~(ZYGOTE_HUGE_PAGE - 1))

/* The arenas' reservation: far more than the zygote's objects need (about
 * 6 MiB); its unused end is given back at the freeze. */
#define ARENA_RESERVE (64ul << 20)
#define ARENA_MIN (256ul << 10) /* CPython's smallest arena (3.10+: 1 MiB) */

static uintptr_t arena_lo, arena_next, arena_hi;
static size_t arena_size; /* learned from the first request */
static void *arena_free[ARENA_RESERVE / ARENA_MIN];
static size_t n_arena_free;
static uintptr_t brk_lo; /* 0: the brk heap does not move */

static uint64_t ranges[ZYGOTE_HEAP_MAX_RANGES][2];
static size_t n_ranges;
static bool in_program;

/* Arenas come from the reservation, bump-allocated, freed ones reused;
 * anything else (another size, the reservation used up) from mmap as
 * CPython's own allocator does. */
static void *arena_alloc(void *ctx, size_t size) {
        void *p;

        (void)ctx;
        if (!arena_size)
                arena_size = size;
        if (size == arena_size) {
                if (n_arena_free > 0)
                        return arena_free[--n_arena_free];
                if (arena_next + size <= arena_hi) {
                        p = (void *)arena_next;
                        arena_next += size;
                        return p;
                }
        }
        p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return p == MAP_FAILED ? NULL : p;
}

static void arena_release(void *ctx, void *p, size_t size) {
        (void)ctx;
        if ((uintptr_t)p >= arena_lo && (uintptr_t)p < arena_hi) {
                /* Never unmapped: that would split a huge page. */
                if (size == arena_size && n_arena_free < ELEMENTSOF(arena_free))
                        arena_free[n_arena_free++] = p;
                return;
        }
        munmap(p, size);
}

void zygote_heap_reserve(void) {
        unsigned char *raw = mmap(NULL, ARENA_RESERVE + ZYGOTE_HUGE_PAGE, PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        uintptr_t b;

        if (raw != MAP_FAILED) {
                uintptr_t lo = ALIGN_UP(raw), end = (uintptr_t)raw + ARENA_RESERVE + ZYGOTE_HUGE_PAGE;
                if (lo > (uintptr_t)raw)
                        munmap(raw, lo - (uintptr_t)raw);
                if (end > lo + ARENA_RESERVE)
                        munmap((void *)(lo + ARENA_RESERVE), end - (lo + ARENA_RESERVE));
                arena_lo = arena_next = lo;
                arena_hi = lo + ARENA_RESERVE;
                PyObject_SetArenaAllocator(&(PyObjectArenaAllocator){ NULL, arena_alloc, arena_release });
        }
        /* malloc's heap grows from here on, page-aligned with it. */
        b = (uintptr_t)sbrk(0);
        if (b != (uintptr_t)-1 && sbrk((intptr_t)(ALIGN_UP(b) - b)) != (void *)-1)
                brk_lo = ALIGN_UP(b);
}

/* The executable's last writable PT_LOAD (data and bss) from the end of
 * RELRO, which must stay read-only, to its end: r[0], r[1]. */
static int data_segment(struct dl_phdr_info *info, size_t size, void *data) {
        uintptr_t *r = data, relro_end = 0;

        (void)size;
        for (int i = 0; i < info->dlpi_phnum; i++) {
                const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
                if (ph->p_type == PT_LOAD && (ph->p_flags & PF_W)) {
                        r[0] = info->dlpi_addr + ph->p_vaddr;
                        r[1] = r[0] + ph->p_memsz;
                } else if (ph->p_type == PT_GNU_RELRO)
                        relro_end = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
        }
        if (relro_end > r[0])
                r[0] = relro_end;
        return 1; /* the executable only: it comes first */
}

static int add_range(uint64_t (*want)[2], size_t *n, uintptr_t lo, uintptr_t hi) {
        if (hi <= lo || *n == ZYGOTE_HEAP_MAX_RANGES)
                return 0;
        want[*n][0] = lo;
        want[*n][1] = hi - lo;
        (*n)++;
        return (int)((hi - lo) / ZYGOTE_HUGE_PAGE);
}

/* Copy [lo, lo + len) into hugetlb pages and put them in its place. */
static int move_to_hugetlb(uintptr_t lo, size_t len) {
        void *h = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);

        if (h == MAP_FAILED)
                return -errno;
        memcpy(h, (const void *)lo, len);
        if (mremap(h, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)lo) == MAP_FAILED) {
                int r = -errno;
                munmap(h, len);
                return r;
        }
        return 0;
}

/* In a program, right before fork() (see the top of the file): the ranges
 * back on ordinary pages. Nothing here may write to static data between a
 * copy and its mremap: the data segment may be one of the ranges. */
static void move_back_before_fork(void) {
        if (!in_program)
                return;
        for (size_t i = 0; i < n_ranges; i++) {
                size_t len = (size_t)ranges[i][1];
                void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1,
                               0);
                if (p == MAP_FAILED)
                        continue; /* the fork's copies then come from the pool */
                memcpy(p, (const void *)(uintptr_t)ranges[i][0], len);
                if (mremap(p, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)(uintptr_t)ranges[i][0]) ==
                    MAP_FAILED)
                        munmap(p, len);
        }
        n_ranges = 0;
        in_program = false;
}

unsigned zygote_heap_freeze(unsigned sets, const char **ret_why) {
        uint64_t want[ZYGOTE_HEAP_MAX_RANGES][2], free_pages = 0;
        uintptr_t r[2] = { 0, 0 };
        unsigned pages = 0, moved = 0;
        size_t n = 0;

        *ret_why = NULL;
        if (arena_lo) {
                /* The reservation's unused end goes back (it would count
                 * against a program's RLIMIT_AS); later arenas are mmap's. */
                uintptr_t hi = ALIGN_UP(arena_next);
                if (hi < arena_hi)
                        munmap((void *)hi, arena_hi - hi);
                arena_hi = hi;
        }
        if (sets == 0) {
                *ret_why = "not asked to (ZYGOTE_HUGE_PAGES=false, or no pyexec-init to copy them into sandboxes)";
                return 0;
        }
        if (arena_lo)
                pages += (unsigned)add_range(want, &n, arena_lo, arena_hi);
        if (brk_lo) {
                uintptr_t b = (uintptr_t)sbrk(0);
                if (b > brk_lo && (ALIGN_UP(b) == b || sbrk((intptr_t)(ALIGN_UP(b) - b)) != (void *)-1))
                        pages += (unsigned)add_range(want, &n, brk_lo, ALIGN_UP(b));
        }
        dl_iterate_phdr(data_segment, r);
        pages += (unsigned)add_range(want, &n, ALIGN_UP(r[0]), ALIGN_DOWN(r[1]));
        if (pages == 0) {
                *ret_why = "nothing to move";
                return 0;
        }
        if (hugetlb_free_pages(&free_pages) < 0) {
                *ret_why = "cannot read the hugetlb pool's size from /proc/meminfo";
                return 0;
        }
        if (free_pages < (uint64_t)pages * sets) {
                *ret_why = "the hugetlb pool has too few free pages for the zygote and its sandboxes";
                return 0;
        }
        for (size_t i = 0; i < n; i++)
                if (move_to_hugetlb((uintptr_t)want[i][0], (size_t)want[i][1]) == 0) {
                        ranges[n_ranges][0] = want[i][0];
                        ranges[n_ranges][1] = want[i][1];
                        n_ranges++;
                        moved += (unsigned)(want[i][1] / ZYGOTE_HUGE_PAGE);
                }
        if (moved == 0)
                *ret_why = "the kernel gave no huge pages";
        else if (pthread_atfork(move_back_before_fork, NULL, NULL) != 0) {
                /* Cannot happen short of memory; a program's fork would
                 * then share pages with its child: give them up. */
                in_program = true;
                move_back_before_fork();
                *ret_why = "cannot register the fork handler";
                moved = 0;
        }
        return moved;
}

size_t zygote_heap_ranges(const uint64_t (**ret)[2]) {
        *ret = ranges;
        return n_ranges;
}

bool zygote_heap_contains(uintptr_t start, uintptr_t end) {
        for (size_t i = 0; i < n_ranges; i++)
                if (start >= ranges[i][0] && end <= ranges[i][0] + ranges[i][1])
                        return true;
        return false;
}

void zygote_heap_enter_program(void) {
        in_program = n_ranges > 0;
}
