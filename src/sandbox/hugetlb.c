/* SPDX-License-Identifier: MIT */
/*
 * hugetlb: the host's hugetlb pool (hugetlb.h).
 */
#include "hugetlb.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define NR_HUGEPAGES "/proc/sys/vm/nr_hugepages"

int hugetlb_free_pages(uint64_t *ret) {
        struct buf b;
        uint64_t free_pages = 0, rsvd = 0, size_kb = 0;
        bool have_free = false, have_size = false;
        int r = read_file("/proc/meminfo", 1 << 16, &b);

        if (r < 0)
                return r;
        for (char *line = b.data; line && *line;) {
                char *nl = strchr(line, '\n');
                unsigned long long v;
                if (sscanf(line, "HugePages_Free: %llu", &v) == 1) {
                        free_pages = v;
                        have_free = true;
                } else if (sscanf(line, "HugePages_Rsvd: %llu", &v) == 1) {
                        rsvd = v;
                } else if (sscanf(line, "Hugepagesize: %llu kB", &v) == 1) {
                        size_kb = v;
                        have_size = true;
                }
                line = nl ? nl + 1 : NULL;
        }
        buf_done(&b);
        if (!have_free || !have_size)
                return -ENOENT;
        /* MAP_HUGETLB takes the default size: another (1 GiB) is of no use.
         * Free pages promised to a mapping (reserved at mmap, not yet
         * faulted in) are not free to anyone else: the kernel keeps them
         * when vm.nr_hugepages is lowered. */
        *ret = size_kb == 2048 && free_pages > rsvd ? free_pages - rsvd : 0;
        return 0;
}

int hugetlb_nr_pages_get(uint64_t *ret) {
        _cleanup_free_ char *s = NULL;
        int r = read_small_file(NR_HUGEPAGES, &s);
        if (r < 0)
                return r;
        s[strcspn(s, "\n")] = 0;
        return parse_u64(s, 0, UINT64_MAX, ret);
}

int hugetlb_nr_pages_set(uint64_t n) {
        char v[32];
        snprintf(v, sizeof v, "%llu", (unsigned long long)n);
        return write_control_file(NR_HUGEPAGES, v);
}
