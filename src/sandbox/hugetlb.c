/* SPDX-License-Identifier: MIT */
/*
 * hugetlb: the host's hugetlb pool (hugetlb.h).
 */
#include "hugetlb.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

#define COW_PAGES 256u

/* One round: a child writes to each page of mem and sends its time. */
static int cow_round(volatile char *mem, size_t page, uint64_t *ret) {
        _cleanup_close_ int rd = -1, wr = -1;
        int fds[2], status;
        ssize_t n;
        pid_t pid;

        if (pipe2(fds, O_CLOEXEC) < 0)
                return -errno;
        rd = fds[0];
        wr = fds[1];
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                struct timespec a, b;
                uint64_t ns;
                clock_gettime(CLOCK_MONOTONIC, &a);
                for (size_t i = 0; i < COW_PAGES; i++)
                        mem[i * page] = 2;
                clock_gettime(CLOCK_MONOTONIC, &b);
                ns = (uint64_t)(b.tv_sec - a.tv_sec) * 1000000000u + (uint64_t)b.tv_nsec - (uint64_t)a.tv_nsec;
                _exit(write(wr, &ns, sizeof ns) == sizeof ns ? 0 : 1);
        }
        close(TAKE_FD(wr));
        do
                n = read(rd, ret, sizeof *ret);
        while (n < 0 && errno == EINTR);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        return n == sizeof *ret ? 0 : -EIO;
}

int hugetlb_cow_fault_ns(uint64_t *ret) {
        size_t page = (size_t)sysconf(_SC_PAGESIZE), len = COW_PAGES * page;
        uint64_t best = UINT64_MAX, ns;
        char *mem;
        int r = 0;

        mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mem == MAP_FAILED)
                return -errno;
        memset(mem, 1, len);
        for (int round = 0; round < 3 && r == 0; round++)
                if ((r = cow_round(mem, page, &ns)) == 0 && ns < best)
                        best = ns;
        munmap(mem, len);
        if (r < 0)
                return r;
        *ret = best / COW_PAGES;
        return 0;
}
