/* SPDX-License-Identifier: MIT */
/*
 * hugetlb: the host's pool of huge pages, as /proc shows it. Read by the
 * zygote before it moves its memory onto huge pages (zygote-heap.c), and
 * read and sized by the service for its zygotes and their sandboxes
 * (zygote.c, the hugetlb pool). A leaf: it uses util.c only.
 */
#pragma once

#include <stdint.h>

/* The page size of the pool pyexec uses (the x86-64 default). */
#define HUGETLB_PAGE_SIZE (2ul << 20)

/* The free pages of the pool (/proc/meminfo) that no mapping has reserved,
 * if its default page size is the 2 MiB the zygote cuts to (else 0), or
 * -errno. */
int hugetlb_free_pages(uint64_t *ret);

/* vm.nr_hugepages: the pool's size in pages. -errno on failure; only root
 * can set it, and the kernel may give fewer pages than asked. */
int hugetlb_nr_pages_get(uint64_t *ret);
int hugetlb_nr_pages_set(uint64_t n);

/*
 * What a copy-on-write fault costs on this host, in ns: a forked child
 * writes once to each of 256 pages its parent wrote, best of three. The
 * huge pages pay where that is dear: under a hypervisor that shadows the
 * guest's page tables each fault's TLB flush is a trip to it (about 16 us
 * measured); with hardware paging a fault costs a few us or less, and
 * copying 2 MiB pages into every sandbox costs more than it saves
 * (docs/benchmarks.md). -errno if it could not be measured.
 */
int hugetlb_cow_fault_ns(uint64_t *ret);
/* From that cost on, the zygote's memory goes on huge pages
 * (ZYGOTE_HUGE_PAGES=auto). */
#define HUGETLB_PAYS_COW_NS 8000u
