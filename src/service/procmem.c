/* SPDX-License-Identifier: MIT */
/*
 * procmem: the memory of a process tree (procmem.h).
 */
#include "procmem.h"

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

struct proc_list {
        struct proc_entry *v;
        size_t n, cap;
        pid_t parent;
};

/* proc_each_child: a child of l->parent, appended; false once the list
 * is full (PROC_MEMORY_MAX). */
static bool append_child(pid_t child, void *userdata) {
        struct proc_list *l = userdata;

        if (l->n == l->cap) {
                size_t nc = l->cap ? l->cap * 2 : 64;
                struct proc_entry *nv = nc <= PROC_MEMORY_MAX ? realloc(l->v, nc * sizeof *nv) : NULL;
                if (!nv)
                        return false;
                l->v = nv;
                l->cap = nc;
        }
        l->v[l->n++] = (struct proc_entry){ child, l->parent };
        return true;
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
        struct proc_list l = { .parent = root };
        int r;

        r = add_rollup(root, &m);
        if (r < 0)
                return r;
        proc_each_child(root, append_child, &l);
        for (size_t i = 0; i < l.n; i++) {
                pid_t pid = l.v[i].pid;
                if (!shares_memory(l.v, i)) {
                        r = add_rollup(pid, &m);
                        if (r == -EACCES || r == -EPERM)
                                m.unreadable++; /* refused; a process gone meanwhile is skipped */
                }
                l.parent = pid;
                proc_each_child(pid, append_child, &l);
        }
        free(l.v);
        *ret = m;
        return 0;
}
