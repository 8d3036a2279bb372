/* SPDX-License-Identifier: MIT */
/*
 * The zygote process (pyexec-runner --zygote FD) and the warm program's
 * side of a pre-built sandbox. See zygote.h for the process tree and the
 * protocol, and runner.c for how a program runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "policy.h"
#include "pyexec.h"
#include "rlimit.h"
#include "runner.h"
#include "sandbox-child.h"
#include "sandbox-msg.h"
#include "util.h"
#include "zygote-proto.h"
#include "zygote-heap.h"

extern PyObject *runner_startup_modules;

/* A message of exactly len bytes (up to len with ret_len, which gets its
 * length) and up to max_fds descriptors (*ret_n of them; close-on-exec). */
static int recv_fds(int sock, void *data, size_t len, size_t *ret_len, int *fds, size_t max_fds, size_t *ret_n) {
        struct iovec iov = { data, len };
        union {
                char buf[CMSG_SPACE(8 * sizeof(int))];
                struct cmsghdr align;
        } u;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
        ssize_t n;
        size_t got = 0;

        do
                n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n <= 0)
                return n == 0 ? -EPIPE : -errno;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
                if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                int *v = (int *)CMSG_DATA(cm);
                for (size_t i = 0; i < k; i++) {
                        if (got < max_fds)
                                fds[got++] = v[i];
                        else
                                close(v[i]);
                }
        }
        if ((ret_len ? (size_t)n > len : (size_t)n != len) || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
                for (size_t i = 0; i < got; i++)
                        close(fds[i]);
                return -EBADMSG;
        }
        *ret_n = got;
        if (ret_len)
                *ret_len = (size_t)n;
        return 0;
}

_Noreturn static void warm_fail(int status_fd, const char *step, int err) {
        struct msg m = { .type = MSG_ERROR, .err = err < 0 ? -err : err, .t_ns = now_ns() };
        snprintf(m.step, sizeof m.step, "%s", step);
        msg_send(status_fd, &m);
        _exit(127);
}

static int write_program_files(const struct work *w) {
        for (size_t i = 0; i < w->n_files; i++) {
                int fd = open(w->files[i].name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
                int r;
                if (fd < 0)
                        return -errno;
                r = write_all(fd, w->files[i].data, w->files[i].len);
                close(fd);
                if (r < 0)
                        return r;
        }
        return 0;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/*
 * Copy, ahead of the work, every page of the interpreter the program will
 * write to. A forked child shares the zygote's pages until it writes to
 * them, and a program's first steps write to thousands (reference counts
 * live in every object); each such copy-on-write fault is taken here,
 * while the sandbox waits, instead of on the request's clock. Failure is
 * harmless: the faults then happen later. Done for the sandboxes the pool
 * asks it of (WARM_PREFAULT): with ZYGOTE_PREFAULT=auto, those built while
 * a CPU is idle; under load the copies cost more CPU than the faults they
 * spare.
 *
 * Then read one byte of every page the run will use, written or only read
 * (the interpreter's code, its constant data). Where the MMU is virtualized
 * with shadow page tables (as on this project's build machine), a new
 * process pays for the first access to each page again, even to a page
 * whose entry fork copied or the prefault made: 3 to 5 us each, invisible
 * to the guest's fault counters. A hello world's check and run touch
 * about 1500 pages; read here, they cost the request 2 to 3 ms less (docs/benchmarks.md). They are done only when the pool asks (WARM_READ_AHEAD: the
 * CPU has time for them); under load they cost more CPU than they save. On
 * ordinary hardware the reads are cheap and change little.
 */
static char maps_buf[256 * 1024];
bool runner_zygote_prefault = true;
unsigned runner_zygote_huge_sets;

/*
 * Which pages a run uses, learned once by a probe: a child of the zygote
 * runs a typical program (runner_probe) and reports, from
 * /proc/self/pagemap:
 *  - in private writable mappings, the pages it now holds exclusively: the
 *    ones it copied on write, or touched first (fork copied the entries of
 *    every other page, so presence says nothing there);
 *  - in the mappings it cannot write (code, constants), the pages present:
 *    fork copies no entries of those, so present means touched since (or
 *    mapped along with a touched neighbour by the kernel's fault-around).
 * Waiting sandboxes prefault and read those (about 1500 pages) rather than
 * all of the interpreter's thousands.
 */
#define HOT_MAX 16384
#define HOT_READ_ONLY 1ull /* in start's low bit: a range of a mapping not writable */
static uint64_t hot[HOT_MAX][2]; /* start | HOT_READ_ONLY, length in bytes */
static size_t n_hot;
static uintptr_t huge_text_lo, huge_text_hi; /* huge_text() below */

/* /proc/self/maps into maps_buf (NUL-terminated); false when unreadable. */
static bool read_own_maps(void) {
        int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
        size_t len = 0;
        ssize_t n;

        if (fd < 0)
                return false;
        while (len < sizeof maps_buf - 1 && (n = read(fd, maps_buf + len, sizeof maps_buf - 1 - len)) > 0)
                len += (size_t)n;
        close(fd);
        maps_buf[len] = 0;
        return true;
}

enum map_kind { MAP_OTHER, MAP_PRIVATE_WRITABLE, MAP_READ_ONLY };

/* What a maps line is: a private writable mapping (not the stack), a
 * readable one that cannot be written (not the kernel's [vdso] and
 * friends), or neither; ret_start/ret_end its range. Cuts the line at its
 * newline and returns the next line in *next. */
static enum map_kind maps_line(char *line, char **next, unsigned long *ret_start, unsigned long *ret_end) {
        char *nl = strchr(line, '\n'), perms[5];
        unsigned long start = 0, end = 0;
        enum map_kind k = MAP_OTHER;

        if (nl)
                *nl = 0;
        *next = nl ? nl + 1 : NULL;
        if (sscanf(line, "%lx-%lx %4s", &start, &end, perms) == 3 && perms[0] == 'r') {
                if (perms[1] == 'w' && perms[3] == 'p' && !strstr(line, "[stack]"))
                        k = MAP_PRIVATE_WRITABLE;
                else if (perms[1] != 'w' && !strchr(line, '['))
                        k = MAP_READ_ONLY;
        }
        *ret_start = start;
        *ret_end = end;
        return k;
}

#define PM_PRESENT (1ull << 63)
#define PM_EXCLUSIVE (1ull << 56)

/* In the probe child: the pages it used (see hot[] above), as ranges,
 * written to fd. */
static void report_exclusive_pages(int fd) {
        int pfd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
        long page = sysconf(_SC_PAGESIZE);
        uint64_t run_start = 0, run_len = 0;

        if (pfd < 0 || !read_own_maps()) {
                if (pfd >= 0)
                        close(pfd);
                return;
        }
        for (char *line = maps_buf, *next; line && *line; line = next) {
                unsigned long start, end;
                enum map_kind k = maps_line(line, &next, &start, &end);
                uint64_t tag = k == MAP_READ_ONLY ? HOT_READ_ONLY : 0;
                /* The runner's code on huge pages (huge_text()): one
                 * touch maps 2 MiB, nothing to read ahead. */
                if (k == MAP_OTHER || (start >= huge_text_lo && end <= huge_text_hi))
                        continue;
                /* On hugetlb pages (zygote-heap.c): init copies them whole. */
                if (zygote_heap_contains(start, end))
                        continue;
                for (unsigned long a = start; a < end; a += (unsigned long)page) {
                        uint64_t e;
                        if (pread(pfd, &e, sizeof e, (off_t)(a / (unsigned long)page) * 8) != sizeof e)
                                break;
                        if (!(e & PM_PRESENT) || (k == MAP_PRIVATE_WRITABLE && !(e & PM_EXCLUSIVE)))
                                continue;
                        if (run_len && run_start == (a - run_len) + tag)
                                run_len += (uint64_t)page;
                        else {
                                if (run_len)
                                        (void)write_all(fd, (uint64_t[]){ run_start, run_len }, 16);
                                run_start = a + tag;
                                run_len = (uint64_t)page;
                        }
                }
        }
        if (run_len)
                (void)write_all(fd, (uint64_t[]){ run_start, run_len }, 16);
        close(pfd);
}

static void learn_hot_pages(void) {
        char dir[] = "/tmp/pyexec-probe-XXXXXX", path[64], *line = NULL;
        struct policy_set set;
        int p[2], fd;
        pid_t pid;

        if (!mkdtemp(dir))
                return;
        snprintf(path, sizeof path, "%s/main.py", dir);
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0) {
                (void)write_all(fd, "import math\nprint(math.pi)\n", 27);
                close(fd);
        }
        if (policy_set_init(&set) == 0) {
                const struct policy *edu = policy_set_find(&set, "education");
                if (edu && policy_format(edu, &line) < 0)
                        line = NULL;
                policy_set_done(&set);
        }
        if (pipe2(p, O_CLOEXEC) == 0) {
                PyOS_BeforeFork();
                pid = fork();
                if (pid == 0) {
                        int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
                        PyOS_AfterFork_Child();
                        if (devnull >= 0) {
                                dup2(devnull, 1);
                                dup2(devnull, 2);
                        }
                        runner_probe(line, path);
                        report_exclusive_pages(p[1]);
                        _exit(0);
                }
                PyOS_AfterFork_Parent();
                close(p[1]);
                while (pid > 0 && n_hot < HOT_MAX && read(p[0], hot[n_hot], 16) == 16)
                        n_hot++;
                close(p[0]);
        }
        free(line);
        unlink(path);
        rmdir(dir);
}

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

/* A byte of each page of [p, p + len): the load is what makes the page's
 * entry for this process (see above). */
static void read_pages(const volatile unsigned char *p, size_t len, size_t page) {
        unsigned char sum = 0;
        for (size_t off = 0; off < len; off += page)
                sum += p[off];
        __asm__ volatile("" : : "r"(sum));
}

/*
 * The copies of the pages a run writes are best made from outside the
 * program. A copy-on-write fault replaces an entry the CPU may have cached,
 * so the kernel flushes that page from the TLB of every CPU the memory is
 * loaded on, and under shadow paging a flush is a trip to the hypervisor:
 * most of the copy's cost (docs/benchmarks.md). Made by another process
 * into the memory of a program that is stopped, so loaded nowhere, the
 * copies need no flush. The small init does it (sandbox-child.c), right after
 * the fork, with the program stopped, by reading one byte of each page and
 * writing it back (process_vm_readv/writev); the last write sets
 * hot_copied in the program, which then only populates the rest. Anything
 * short of all of it (a page the program does not have, ptrace refused by
 * the host's policy) leaves hot_copied false and the program copies them
 * itself, as before.
 *
 * The zygote's huge pages (zygote-heap.c) come first, and for them nothing
 * short of all will do: a program must not share one with the zygote, so
 * a failed copy fails the build.
 */
#define HOT_COPY_MAX 8192 /* pages */
static struct iovec hot_remote[HOT_COPY_MAX + 1], hot_local[HOT_COPY_MAX + 1];
static unsigned char hot_bytes[HOT_COPY_MAX];
static size_t n_huge_copy; /* the first n_huge_copy entries */
static size_t n_hot_copy;  /* all entries; 0: nothing to copy */
static bool hot_flag;      /* entry n_hot_copy sets hot_copied (all 4 KiB pages fit) */
static volatile bool hot_copied;
/* This sandbox's WARM_READ_AHEAD and WARM_PREFAULT: set by the zygote
 * before each clone. */
static bool read_ahead, prefault_now;

static void plan_hot_copy(void) {
        size_t page = (size_t)sysconf(_SC_PAGESIZE), n = 0, n_ranges;
        const uint64_t(*ranges)[2];
        static const bool yes = true;

        n_ranges = zygote_heap_ranges(&ranges);
        for (size_t i = 0; i < n_ranges; i++)
                for (uint64_t off = 0; off < ranges[i][1] && n < HOT_COPY_MAX; off += ZYGOTE_HUGE_PAGE) {
                        hot_remote[n] = (struct iovec){ (void *)(uintptr_t)(ranges[i][0] + off), 1 };
                        hot_local[n] = (struct iovec){ &hot_bytes[n], 1 };
                        n++;
                }
        n_huge_copy = n_hot_copy = n;
        for (size_t i = 0; i < n_hot; i++) {
                if (hot[i][0] & HOT_READ_ONLY)
                        continue;
                for (uint64_t off = 0; off < hot[i][1]; off += page) {
                        if (n == HOT_COPY_MAX)
                                return; /* the huge pages alone */
                        hot_remote[n] = (struct iovec){ (void *)(uintptr_t)(hot[i][0] + off), 1 };
                        hot_local[n] = (struct iovec){ &hot_bytes[n], 1 };
                        n++;
                }
        }
        hot_remote[n] = (struct iovec){ (void *)&hot_copied, sizeof hot_copied };
        hot_local[n] = (struct iovec){ (void *)&yes, sizeof yes };
        n_hot_copy = n;
        hot_flag = true;
}

/* The pages of entries [from, to): a byte of each read from the program and
 * written back, and then, with flag, entry `to` (hot_copied) written. */
static int copy_entries(pid_t pid, size_t from, size_t to, bool flag) {
        const size_t batch = 1024; /* IOV_MAX */

        for (size_t i = from; i < to; i += batch) {
                size_t m = to - i < batch ? to - i : batch;
                if (syscall(SYS_process_vm_readv, pid, hot_local + i, m, hot_remote + i, m, 0) != (long)m)
                        return -EFAULT;
        }
        to += flag;
        for (size_t i = from; i < to; i += batch) {
                size_t m = to - i < batch ? to - i : batch;
                /* Each iovec is one byte: a short count names the first
                 * page that could not be copied (no pool page left). */
                long w = syscall(SYS_process_vm_writev, pid, hot_local + i, m, hot_remote + i, m, 0);
                if (w != (long)m)
                        return w < 0 ? -errno : -ENOMEM;
        }
        return 0;
}

/* In the small init, in the zygote's memory, with the program stopped. */
static int copy_hot_pages_into(pid_t pid) {
        int r = copy_entries(pid, 0, n_huge_copy, false);

        if (r < 0)
                return r; /* the program must not run: see above */
        if (!prefault_now)
                return 0; /* this sandbox does not prefault (WARM_PREFAULT) */
        /* hot_copied goes last, in the last batch. */
        (void)copy_entries(pid, n_huge_copy, n_hot_copy, hot_flag);
        return 0;
}

static void prefault_hot_pages(void) {
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        for (size_t i = 0; i < n_hot; i++) {
                bool read_only = hot[i][0] & HOT_READ_ONLY;
                void *start = (void *)(uintptr_t)(hot[i][0] & ~HOT_READ_ONLY);
                /* The madvise also proves the range is still mapped as the
                 * probe saw it, so the loads below cannot fault (as does
                 * hot_copied: init read every page of those ranges). */
                if (!read_only && hot_copied) {
                        if (read_ahead)
                                read_pages(start, hot[i][1], page);
                        continue;
                }
                if (madvise(start, hot[i][1], read_only ? MADV_POPULATE_READ : MADV_POPULATE_WRITE) == 0 &&
                    read_ahead)
                        read_pages(start, hot[i][1], page);
        }
}

static void prefault_private_memory(void) {
        if (!read_own_maps())
                return;
        for (char *line = maps_buf, *next; line && *line; line = next) {
                unsigned long start, end;
                if (maps_line(line, &next, &start, &end) == MAP_PRIVATE_WRITABLE)
                        (void)madvise((void *)start, end - start, MADV_POPULATE_WRITE);
        }
}

/*
 * init starts from default signal dispositions (sandbox-child.c), and the warm
 * program is its fork: the interpreter's own settings, made when the zygote
 * started it (SIGINT raises KeyboardInterrupt, SIGPIPE and SIGXFSZ ignored
 * so that writes fail with an error), are put back as they were, from a
 * copy the zygote took right after starting the interpreter. The
 * interpreter's table of Python-level handlers is unchanged by the fork, so
 * the kernel's dispositions are all there is to restore. (In C: the same
 * restore written in Python cost about 1.8 ms of CPU per sandbox here.)
 */
static struct sigaction interpreter_sigactions[_NSIG];

static void save_signals(void) {
        for (int sig = 1; sig < _NSIG; sig++)
                if (sigaction(sig, NULL, &interpreter_sigactions[sig]) < 0)
                        interpreter_sigactions[sig].sa_handler = SIG_DFL;
}

static void restore_signals(void) {
        for (int sig = 1; sig < _NSIG; sig++)
                if (sig != SIGKILL && sig != SIGSTOP && interpreter_sigactions[sig].sa_handler != SIG_DFL)
                        (void)sigaction(sig, &interpreter_sigactions[sig], NULL);
}

/* The program of a pre-built sandbox: uid dropped, seccomp installed, the
 * interpreter the zygote initialized. Wait for the work, then run it. */
static void warm_main(int status_fd, int work_fd, int holder_w) {
        struct msg m = { .type = MSG_READY };
        struct work w = { 0 };
        struct rusage ru;
        char byte;
        int fds[3];
        size_t n = 0;
        int r;

        /* Its huge pages are its own now (init copied them): a fork moves
         * them back to ordinary pages first (zygote-heap.c). */
        zygote_heap_enter_program();
        /* First: what follows (the interpreter's after-fork steps, its
         * at-fork hooks in Python) writes to pages of the zygote too, and
         * copying them here, in one madvise, is cheaper than a fault apiece. */
        if (runner_zygote_prefault && prefault_now) {
                if (n_hot)
                        prefault_hot_pages();
                else
                        prefault_private_memory();
        }
        PyOS_AfterFork_Child();
        restore_signals();
        sandbox_program_start_holder(holder_w);
        m.t_ns = now_ns();
        msg_send(status_fd, &m);
        /* The work, stdin, and the images pipe when the run has one. */
        r = recv_fds(work_fd, &byte, 1, NULL, fds, 3, &n);
        if (r < 0 || n < 2)
                _exit(0); /* the service let the sandbox go unused */
        getrusage(RUSAGE_SELF, &ru);
        m = (struct msg){ .type = MSG_STARTED, .t_ns = now_ns() };
        m.cpu_us = (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
                   (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
        msg_send(status_fd, &m);

        r = work_decode_fd(fds[0], RUNNER_WORK_MAX, &w);
        if (r < 0)
                warm_fail(status_fd, "reading the program's work", r);
        close(fds[0]);
        if (dup2(fds[1], 0) < 0)
                warm_fail(status_fd, "setting up stdin", -errno);
        close(fds[1]);
        if ((r = write_program_files(&w)) < 0)
                warm_fail(status_fd, "writing the program's files", r);
        if ((r = rlimit_apply(w.rlimits, w.n_rlimits)) < 0)
                warm_fail(status_fd, "setting rlimits", r);
        runner_run(&w, status_fd, work_fd, n == 3 ? fds[2] : -1);
}

/*
 * Import ahead what the service listed (ZYGOTE_PREIMPORT, comma-separated),
 * and the static check's _ast. A module that fails to import is skipped (a
 * run that wants it gets python3's own error) and named, with its error,
 * in failed ("name: Error: text; ..."), which the service logs. Each module
 * makes every sandbox dearer (a fork copies, and a run's exit releases, all
 * of the zygote's memory), so the list is short by default.
 */
static void preimport(const char *list, struct buf *failed) {
        const char *p = list;
        PyObject *m;

        m = PyImport_ImportModule("_ast");
        Py_XDECREF(m);
        PyErr_Clear();
        while (*p) {
                char name[256];
                size_t n;
                p += strspn(p, " \t,");
                n = strcspn(p, ",");
                while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
                        n--;
                if (n > 0 && n < sizeof name) {
                        memcpy(name, p, n);
                        name[n] = 0;
                        m = PyImport_ImportModule(name);
                        if (!m) {
                                PyObject *type, *value, *tb, *text = NULL;
                                PyErr_Fetch(&type, &value, &tb);
                                if (value)
                                        text = PyObject_Str(value);
                                PyErr_Clear();
                                buf_printf(failed, "%s%s: %s: %s", failed->len > 1 ? "; " : "", name,
                                           type ? ((PyTypeObject *)type)->tp_name : "?",
                                           text && PyUnicode_Check(text) ? PyUnicode_AsUTF8(text) : "?");
                                PyErr_Clear();
                                Py_XDECREF(text);
                                Py_XDECREF(type);
                                Py_XDECREF(value);
                                Py_XDECREF(tb);
                        }
                        Py_XDECREF(m);
                        PyErr_Clear();
                }
                p += strcspn(p, ",");
        }
}

/*
 * The last step of the zygote's start, when it holds all it will: every
 * object moves to the garbage collector's permanent generation, which the
 * children's collections do not walk, and the generations' counts start at
 * 0. (Done after the pre-imports only, it left the runner's own objects
 * made since in the young generations, for runs' collections to walk.)
 */
static void settle(void) {
        PyObject *gc = PyImport_ImportModule("gc");

        if (gc) {
                Py_XDECREF(PyObject_CallMethod(gc, "collect", NULL));
                Py_XDECREF(PyObject_CallMethod(gc, "freeze", NULL));
                Py_DECREF(gc);
        }
        PyErr_Clear();
}

/*
 * The runner's code on huge pages. Under shadow paging (this project's
 * build machine, docs/benchmarks.md) a new process pays 3 to 5 us for its
 * first touch of each 4 KiB page, and a run touches about 850 pages of the
 * runner's code and constants; a page of 2 MiB is paid for once. So the
 * zygote copies the 2 MiB-aligned part of its non-writable segments (the
 * ELF headers, code and constants: one copy, with the constants made
 * executable) into anonymous huge pages and moves the copy over the
 * original. Every child shares those pages (fork copies one entry per
 * 2 MiB) and none writes them. The cost: 2 MiB pages held by the zygote
 * (4 MiB for this runner), and profilers see the code as anonymous memory
 * (the runner is not position-independent, so its addresses are those of
 * its symbols: nm and addr2line read them). Nothing changes if the kernel
 * has no huge page to give.
 */
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#define HUGE_PAGE ZYGOTE_HUGE_PAGE


/* The executable's non-writable PT_LOAD segments, if they are contiguous:
 * their start and end in r[0], r[1]. The first object dl_iterate_phdr
 * visits is the executable. */
static int text_segments(struct dl_phdr_info *info, size_t size, void *data) {
        uintptr_t *r = data, page = (uintptr_t)sysconf(_SC_PAGESIZE);
        (void)size;
        for (int i = 0; i < info->dlpi_phnum; i++) {
                const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
                uintptr_t start = info->dlpi_addr + ph->p_vaddr, end = start + ph->p_memsz;
                if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W))
                        continue;
                start &= ~(page - 1);
                if (r[1] && start > ((r[1] + page - 1) & ~(page - 1)))
                        break; /* a gap: stop at the contiguous part */
                if (!r[1])
                        r[0] = start;
                r[1] = end;
        }
        return 1;
}

static void huge_text(void) {
        uintptr_t r[2] = { 0, 0 }, lo, hi;
        unsigned char *raw, *tmp;
        size_t len;

        dl_iterate_phdr(text_segments, r);
        lo = (r[0] + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
        hi = r[1] & ~(HUGE_PAGE - 1);
        if (hi <= lo)
                return;
        len = hi - lo;
        raw = mmap(NULL, len + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (raw == MAP_FAILED)
                return;
        tmp = (unsigned char *)(((uintptr_t)raw + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1));
        if (tmp > raw)
                munmap(raw, (size_t)(tmp - raw));
        if (tmp + len < raw + len + HUGE_PAGE)
                munmap(tmp + len, (size_t)(raw + len + HUGE_PAGE - (tmp + len)));
        (void)madvise(tmp, len, MADV_HUGEPAGE);
        memcpy(tmp, (const void *)lo, len);
        /* Only if the kernel made it huge pages: otherwise the original
         * file pages serve as well. Never writable and executable at once.
         * The mremap returns into the copy, which is the same code. */
        if (madvise(tmp, len, MADV_COLLAPSE) < 0 || mprotect(tmp, len, PROT_READ | PROT_EXEC) < 0 ||
            mremap(tmp, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)lo) == MAP_FAILED) {
                munmap(tmp, len);
                return;
        }
        huge_text_lo = lo;
        huge_text_hi = hi;
}

int runner_zygote_main(int ctl) {
        const struct seccomp_prog *seccomp = NULL;
        struct warm_reply hello = { 0 };
        int init_fd = -1;
        PyConfig config;
        PyStatus st;
        int r;

        signal(SIGPIPE, SIG_IGN);
        huge_text();
        zygote_heap_reserve();
        /* The only thing of the host the zygote needs: the seccomp
         * filter its programs install. Every program is a copy of this
         * process, so it holds nothing else of the host (the service
         * handles cgroups and uids). */
        r = seccomp_prog_get(&seccomp);
        if (r < 0) {
                fprintf(stderr, "pyexec-runner --zygote: loading the seccomp filter: %s\n", strerror(-r));
                return 1;
        }
        if (runner_setup() < 0)
                return 1;
        PyConfig_InitPythonConfig(&config);
        config.parse_argv = 0;
        config.install_signal_handlers = 1;
        st = PyConfig_SetBytesString(&config, &config.program_name, "/usr/bin/python3");
        if (!PyStatus_Exception(st))
                st = PyConfig_SetBytesString(&config, &config.executable, "/usr/bin/python3");
        if (!PyStatus_Exception(st))
                st = PyConfig_SetBytesArgv(&config, 1, (char *[]){ "main.py", NULL });
        if (!PyStatus_Exception(st))
                st = Py_InitializeFromConfig(&config);
        PyConfig_Clear(&config);
        if (PyStatus_Exception(st)) {
                fprintf(stderr, "pyexec-runner --zygote: starting Python failed: %s\n", st.err_msg ? st.err_msg : "?");
                return 1;
        }
        /* Inits are reaped by the kernel: the service watches them through
         * pidfds. Set after the copy the programs restore, so that they keep
         * SIGCHLD's default. */
        save_signals();
        signal(SIGCHLD, SIG_IGN);
        runner_startup_modules = PySet_New(PyImport_GetModuleDict());
        {
                static char list[8192];
                struct buf failed;
                size_t n = 0, n_fds = 0;
                /* With pyexec-init, if the service has it (sandbox-child.c). */
                if (recv_fds(ctl, list, sizeof list - 1, &n, &init_fd, 1, &n_fds) < 0 || n < 1 || list[0] != 'P') {
                        fprintf(stderr, "pyexec-runner --zygote: no list of modules to import from the service\n");
                        return 1;
                }
                if (n_fds == 0)
                        init_fd = -1;
                list[n] = 0;
                buf_init(&failed, 4000);
                buf_printf(&failed, "F");
                preimport(list + 1, &failed);
                if (failed.len > 1 && failed.data && send(ctl, failed.data, failed.len, MSG_NOSIGNAL) < 0)
                        return 1;
                buf_done(&failed);
        }
        if (runner_prepare() < 0 || runner_images_prepare() < 0)
                PyErr_Clear();
        settle();
        {
                /* Only with pyexec-init: it is the one that copies them
                 * into each sandbox (zygote-heap.c). */
                const char *why = NULL;
                char msg[256];
                hello.huge_pages = zygote_heap_freeze(init_fd >= 0 ? runner_zygote_huge_sets : 0, &why);
                if (why && runner_zygote_huge_sets > 0) {
                        int n = snprintf(msg, sizeof msg, "H%s", why);
                        if (send(ctl, msg, (size_t)n, MSG_NOSIGNAL) < 0)
                                return 1;
                }
        }
        if (runner_zygote_prefault)
                learn_hot_pages();
        plan_hot_copy();
        if (warm_send_reply(ctl, &hello, -1) < 0)
                return 1;

        for (;;) {
                struct warm_request req;
                struct warm_reply rep = { 0 };
                int fds[_WARM_FD_MAX], pidfd = -1;
                warm_prepare_fn copy;
                size_t n = 0;
                bool replied;
                pid_t pid;

                r = recv_fds(ctl, &req, sizeof req, NULL, fds, _WARM_FD_MAX, &n);
                if (r == -EPIPE)
                        return 0; /* the service is done with this zygote */
                if (r < 0)
                        return 1;
                if (n != (req.flags & WARM_JOIN_NET ? _WARM_FD_MAX : WARM_FD_NET)) {
                        for (size_t i = 0; i < n; i++)
                                close(fds[i]);
                        rep.err = EBADMSG;
                        if (warm_send_reply(ctl, &rep, -1) < 0)
                                return 1;
                        continue;
                }
                if (!(req.flags & WARM_JOIN_NET))
                        fds[WARM_FD_NET] = -1;
                read_ahead = req.flags & WARM_READ_AHEAD;
                prefault_now = req.flags & WARM_PREFAULT;
                /* Init stops the program and copies into it only when
                 * there is something to copy: the huge pages, or the hot
                 * pages of a sandbox that prefaults. Else the stop, the
                 * wait and the resume would only lengthen the time the
                 * zygote waits in clone(), which bounds how fast
                 * sandboxes are built. */
                copy = n_huge_copy || (prefault_now && n_hot_copy) ? copy_hot_pages_into : NULL;
                PyOS_BeforeFork();
                pid = sandbox_spawn_warm(seccomp, &req, fds, &(struct warm_program){ warm_main, copy }, ctl, init_fd,
                                         &replied);
                PyOS_AfterFork_Parent();
                for (size_t i = 0; i < n; i++)
                        close(fds[i]);
                if (replied)
                        continue; /* init answered */
                if (pid < 0)
                        rep.err = -pid;
                else if (init_fd >= 0)
                        rep.err = ECHILD; /* init died before it answered */
                else {
                        rep.pid = pid;
                        pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
                        if (pidfd < 0) {
                                rep.err = errno;
                                kill(pid, SIGKILL);
                        }
                }
                r = warm_send_reply(ctl, &rep, pidfd);
                if (pidfd >= 0)
                        close(pidfd);
                if (r < 0)
                        return 1;
        }
}
