/* SPDX-License-Identifier: MIT */
/*
 * procmem: the memory of a process tree (procmem.h).
 */
#include "procmem.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <linux/kcmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

/* Processes walked at most: a bound on the time one call takes. */
#define PROC_MEMORY_MAX 4096

static int add_rollup(pid_t pid, struct proc_memory *m) {
        char path[64];
        struct buf b;
        int r;

        snprintf(path, sizeof path, "/proc/%d/smaps_rollup", (int)pid);
        r = read_file(path, 1 << 16, &b);
        if (r < 0)
                return r;
        for (char *line = b.data; line && *line;) {
                char *nl = strchr(line, '\n');
                unsigned long long kb;
                if (sscanf(line, "Pss: %llu kB", &kb) == 1)
                        m->pss += kb * 1024;
                else if (sscanf(line, "Private_Hugetlb: %llu kB", &kb) == 1 ||
                         sscanf(line, "Shared_Hugetlb: %llu kB", &kb) == 1)
                        m->hugetlb += kb * 1024;
                line = nl ? nl + 1 : NULL;
        }
        buf_done(&b);
        m->processes++;
        return 0;
}

struct proc_entry {
        pid_t pid, parent;
};

/* The children of every thread of pid, appended to *list. */
static void children_of(pid_t pid, struct proc_entry **list, size_t *n, size_t *cap) {
        char path[64];
        DIR *d;
        struct dirent *e;

        snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
        d = opendir(path);
        if (!d)
                return;
        while ((e = readdir(d))) {
                char cpath[300];
                struct buf b;
                if (e->d_name[0] == '.')
                        continue;
                snprintf(cpath, sizeof cpath, "/proc/%d/task/%s/children", (int)pid, e->d_name);
                if (read_file(cpath, 1 << 16, &b) < 0)
                        continue;
                for (char *q = b.data, *end; q && *q; q = end) {
                        long v = strtol(q, &end, 10);
                        if (end == q)
                                break;
                        if (*n == *cap) {
                                size_t nc = *cap ? *cap * 2 : 64;
                                struct proc_entry *nv = nc <= PROC_MEMORY_MAX ? realloc(*list, nc * sizeof *nv) : NULL;
                                if (!nv)
                                        break;
                                *list = nv;
                                *cap = nc;
                        }
                        (*list)[(*n)++] = (struct proc_entry){ (pid_t)v, pid };
                }
                buf_done(&b);
        }
        closedir(d);
}

/* Whether list[i] uses the address space of its parent or of a sibling
 * before it (a sandbox's holder and its program are siblings); kcmp is 0
 * for two processes with one. */
static bool shares_memory(const struct proc_entry *list, size_t i) {
        pid_t pid = list[i].pid, parent = list[i].parent;

        if (syscall(SYS_kcmp, parent, pid, KCMP_VM, 0, 0) == 0)
                return true;
        for (size_t j = i; j-- > 0 && list[j].parent == parent;)
                if (syscall(SYS_kcmp, list[j].pid, pid, KCMP_VM, 0, 0) == 0)
                        return true;
        return false;
}

int proc_memory_tree(pid_t root, struct proc_memory *ret) {
        struct proc_memory m = { 0 };
        struct proc_entry *list = NULL;
        size_t n = 0, cap = 0;
        int r;

        r = add_rollup(root, &m);
        if (r < 0)
                return r;
        children_of(root, &list, &n, &cap);
        for (size_t i = 0; i < n; i++) {
                struct proc_entry e = list[i];
                if (!shares_memory(list, i)) {
                        r = add_rollup(e.pid, &m);
                        if (r == -EACCES || r == -EPERM)
                                m.unreadable++; /* refused; a process gone meanwhile is skipped */
                }
                children_of(e.pid, &list, &n, &cap);
        }
        free(list);
        *ret = m;
        return 0;
}
