/* SPDX-License-Identifier: MIT */
/*
 * zygote: the service's side of the warm path (see zygote.h): the zygote
 * process, and the pool of sandboxes built ahead of time from it. One file
 * of about 1,300 lines because the keeper thread owns the pool's whole
 * state (zygotes, boxes, network namespaces, the hugetlb reservation) under
 * one lock; the pieces that need none of it live apart (zygote-proto.h,
 * sandbox-env.c, hugetlb.c).
 *
 * One thread (the keeper) owns the zygote's life: it starts it (so that the
 * zygote's parent-death signal is tied to a thread that lives as long as
 * the pool), replaces it when it dies, recycles it after max_forks
 * sandboxes or max_age_s seconds, keeps `target` sandboxes ready, and
 * tears down the sandboxes of finished runs. A request that finds no ready
 * sandbox builds one itself. A zygote being recycled stays alive until the
 * last sandbox it made is gone, because its death would kill them.
 */
#include "zygote.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hugetlb.h"
#include "log.h"
#include "ns.h"
#include "sandbox-env.h"
#include "sandbox-msg.h"
#include "util.h"

#define ZYGOTE_START_TIMEOUT_MS 60000
#define BOX_TIMEOUT_MS 10000
#define MAX_RETIRING 8
/* The keeper looks around at least this often. */
#define KEEPER_TICK_NS (50ull * 1000000ull)
/* A finished run's sandbox is killed, and its replacement built, this long
 * after the run gave it back: the run's response goes out first. The
 * teardown of the program's address space and the build each take a CPU
 * for milliseconds, and would otherwise preempt the thread answering.
 * Its processes are reaped or stopped meanwhile (reap.c). */
#define KILL_GRACE_NS (3ull * 1000000ull)

struct zygote_proc {
        pid_t pid;
        int pidfd;
        int ctl;
        unsigned generation;
        uint64_t forks;
        uint64_t started_ns;
        unsigned outstanding; /* its sandboxes still alive */
        unsigned huge_pages; /* its memory on hugetlb pages (zygote-heap.c) */
};

struct warm_pool {
        struct warm_options o;
        struct warm_host host;
        pthread_mutex_t lock; /* everything below */
        pthread_cond_t cond;
        pthread_mutex_t ctl_lock; /* one request at a time to the zygote */
        struct zygote_proc cur;
        struct zygote_proc retiring[MAX_RETIRING];
        size_t n_retiring;
        struct warm_box **ready;
        size_t n_ready;
        unsigned running; /* sandboxes taken by runs and not yet released */
        unsigned on_demand; /* runs building their own sandbox (the pool had none) */
        struct warm_box **dying;
        size_t n_dying, cap_dying;
        struct warm_stats stats;
        pthread_t keeper;
        int exe_fd; /* the memfd copy of pyexec-runner the zygote is exec'd from */
        int init_fd; /* pyexec-init's, for the zygote's inits; -1: none (looked for once) */
        bool init_looked;
        bool stop, started, start_failed;
        int start_err;
        unsigned next_generation;
        unsigned counter;
        uint64_t quiet_until; /* no top-up before, unless the pool is low */
        unsigned ncpu;
        /* Network namespaces for the sandboxes (root only: net_home >= 0).
         * Each is used by one sandbox at a time and given back once that
         * sandbox's init, and with it every process that was in it, is
         * gone (box_free). Empty and down, with nothing a program without
         * capabilities can leave in them (docs/security.md: the warm path's
         * trade-offs). */
        int net_home; /* the service's own, to go back to after making one */
        int *net_free;
        size_t n_net_free;
        bool net_failed; /* making one failed once: logged, each box makes its own */
        /* The hugetlb pool (huge_pool_reserve). */
        unsigned huge_per_set; /* pages per copy of the zygote's memory: last seen, or a guess */
        uint64_t huge_added;   /* pages this service added to vm.nr_hugepages */
        uint64_t huge_wanted;  /* what it reserved for, at huge_per_set */
        bool huge_short;       /* a build found no free page for its copy (huge_pool_refill) */
        bool huge_on;          /* ZYGOTE_HUGE_PAGES, decided at start */
        const char *huge_why;
        uint64_t cow_ns; /* a copy-on-write fault here (hugetlb_cow_fault_ns), 0: unknown */
        /* The load the pool follows (pool_target): the most runs at once
         * since peak_since. */
        unsigned peak;
        uint64_t peak_since;
        uint64_t fail_logged_ns; /* log_build_failure */
};

/* Namespaces kept for reuse beyond this are closed. */
#define MAX_NET_FREE 64

static int poll_one(int fd, short events, int timeout_ms) {
        struct pollfd p = { .fd = fd, .events = events };
        int r;
        do
                r = poll(&p, 1, timeout_ms);
        while (r < 0 && errno == EINTR);
        if (r < 0)
                return -errno;
        return r == 0 ? 0 : p.revents ? 1 : 0;
}

static bool pidfd_exited(int pidfd) {
        return pidfd < 0 || poll_one(pidfd, POLLIN, 0) == 1;
}

/* Whether a ready sandbox is lost: its init exited, or it said something
 * (a waiting sandbox is silent once READY). A program killed while it
 * waits leaves init reporting EXITED and then waiting to be killed, its
 * holder stopped (reap.c). */
static bool ready_box_lost(const struct warm_box *b) {
        return pidfd_exited(b->pidfd) || (b->status_r >= 0 && poll_one(b->status_r, POLLIN, 0) == 1);
}

static void close_fd(int *fd) {
        if (*fd >= 0) {
                close(*fd);
                *fd = -1;
        }
}

/* ---- the zygote process ------------------------------------------------ */

/*
 * The zygote is exec'd from a sealed memfd copy of pyexec-runner, made once:
 * its programs' /proc/self/exe and maps then say "/memfd:pyexec-runner",
 * not where the host keeps pyexec. pyexec-init, which the zygote's inits
 * exec, likewise.
 */
static int exe_memfd(const char *path, const char *name) {
        _cleanup_close_ int in = open(path, O_RDONLY | O_CLOEXEC);
        int fd, r = 0;
        struct stat st;
        off_t off = 0;

        if (in < 0 || fstat(in, &st) < 0)
                return -errno;
        fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        while (off < st.st_size) {
                ssize_t n = sendfile(fd, in, &off, (size_t)(st.st_size - off));
                if (n <= 0) {
                        r = n < 0 ? -errno : -EIO;
                        break;
                }
        }
        if (r == 0 && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
                r = -errno;
        if (r < 0) {
                close(fd);
                return r;
        }
        return fd;
}

/* ---- the hugetlb pool --------------------------------------------------- */

/*
 * Before a zygote starts: make sure the pool has a page for each huge page
 * of the zygote, of its probe, of every sandbox ready or running, of the
 * sandboxes being torn down, and of the zygote that may be retiring with
 * its own. Only root can raise vm.nr_hugepages; this service does, by all
 * it needs, whatever else the pool holds: free pages that another service
 * (or the operator) added are theirs, and may go when they stop, taking
 * the pages this service's sandboxes copy into with them. When it stops
 * (warm_pool_free) it lowers vm.nr_hugepages by what it added, and never
 * by more than the pool's free pages, so that pages another service holds
 * are never taken from it; what it cannot give back is logged. A build that
 * fails for want of a free page (someone took them) makes it reserve
 * again (huge_pool_refill). Elsewhere the pool is the operator's, and a
 * zygote that finds too few free pages keeps its memory on ordinary ones
 * (zygote-heap.c).
 *
 * Each sandbox may hold no more huge pages than its copy of the zygote's:
 * its hugetlb cgroup's limit (box_build). A host where no hugetlb cgroup can
 * be made leaves nothing to bound them (a program's raw clone() children
 * would each take another copy from the pool), so there the zygote keeps
 * its memory on ordinary pages (huge_bounded).
 */
static bool huge_bounded(const struct warm_pool *p) {
        return p->host.cg->version != CGROUP_NONE && p->host.cg->hugetlb_parent;
}

static unsigned huge_sets(const struct warm_pool *p) {
        return p->huge_on && huge_bounded(p) ? p->o.target + p->o.max_running + 2 : 0;
}

static uint64_t huge_pool_want(const struct warm_pool *p) {
        return (uint64_t)p->huge_per_set * (huge_sets(p) + p->o.max_running + 1);
}

/* vm.nr_hugepages is read, changed and written back: two services doing
 * it at once would lose one's change, and count the other's as their own.
 * A lock file beside the uid slots' (root's, as is the sysctl) serializes
 * the services of the host; -1 when it cannot be had (then unserialized). */
static int huge_pool_lock(const struct warm_pool *p) {
        _cleanup_free_ char *path = NULL;
        int fd;

        if (!p->host.privileged || !p->host.lock_dir || !*p->host.lock_dir)
                return -1;
        if (mkdir(p->host.lock_dir, 0700) < 0 && errno != EEXIST)
                return -1;
        path = strdup_printf("%s/hugetlb-pool.lock", p->host.lock_dir);
        fd = path ? open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600) : -1;
        if (fd >= 0 && flock(fd, LOCK_EX) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

/* Add n pages to vm.nr_hugepages; how many the kernel gave (it may find
 * too little memory for all), or -errno (not root). */
static int64_t huge_pool_add(struct warm_pool *p, uint64_t n) {
        _cleanup_close_ int lock = huge_pool_lock(p);
        uint64_t before, after, got;
        int r;

        if ((r = hugetlb_nr_pages_get(&before)) < 0 || (r = hugetlb_nr_pages_set(before + n)) < 0 ||
            (r = hugetlb_nr_pages_get(&after)) < 0)
                return r;
        got = after > before ? after - before : 0;
        if (got > n)
                got = n; /* someone else's, meanwhile */
        p->huge_added += got;
        return (int64_t)got;
}

/* Lower vm.nr_hugepages by up to n pages this service added, no more than
 * are free (not reserved): what another service holds stays. Returns how
 * many went. */
static uint64_t huge_pool_remove(struct warm_pool *p, uint64_t n) {
        _cleanup_close_ int lock = huge_pool_lock(p);
        uint64_t now, free_pages;

        if (n > p->huge_added)
                n = p->huge_added;
        if (n == 0 || hugetlb_free_pages(&free_pages) < 0 || hugetlb_nr_pages_get(&now) < 0)
                return 0;
        if (n > free_pages)
                n = free_pages;
        if (n > now)
                n = now;
        if (n == 0 || hugetlb_nr_pages_set(now - n) < 0)
                return 0;
        p->huge_added -= n;
        return n;
}

static void huge_pool_reserve(struct warm_pool *p) {
        uint64_t want = huge_pool_want(p), nr = 0;
        int64_t got;

        p->huge_wanted = want;
        /* Without a hugetlb cgroup to bound them the zygote takes none. */
        if (!huge_sets(p) || p->huge_added >= want)
                return;
        got = huge_pool_add(p, want - p->huge_added);
        if (got < 0)
                return; /* not root: the operator's pool, as it is */
        (void)hugetlb_nr_pages_get(&nr);
        log_event(LOG_INFO, "reserved huge pages for the zygote's memory",
                  json_pack("{s:I,s:I,s:I,s:I}", "added", (json_int_t)got, "addedInAll", (json_int_t)p->huge_added,
                            "nrHugepages", (json_int_t)nr, "wanted", (json_int_t)want));
}

/* The zygote said how many pages it has: what was reserved for a larger
 * guess goes back (no more than this service added). */
static void huge_pool_trim(struct warm_pool *p) {
        uint64_t want = huge_pool_want(p);

        if (p->huge_added <= want || want >= p->huge_wanted)
                return;
        huge_pool_remove(p, p->huge_added - want);
        p->huge_wanted = want;
}

/* A sandbox could not be built for want of free huge pages although this
 * service reserved its need: something else took them. Reserve the need
 * again, once more at most (a host that keeps taking them gets sandboxes
 * built on ordinary pages when the zygote is next replaced). */
static void huge_pool_refill(struct warm_pool *p) {
        uint64_t free_pages, want = huge_pool_want(p), add;
        int64_t got;

        if (!huge_sets(p) || p->huge_added == 0 || hugetlb_free_pages(&free_pages) < 0 ||
            free_pages >= p->huge_per_set || p->huge_added >= 2 * want)
                return;
        add = 2 * want - p->huge_added < want ? 2 * want - p->huge_added : want;
        got = huge_pool_add(p, add);
        log_event(LOG_WARN, "the hugetlb pool had no free page for a sandbox: reserved again",
                  json_pack("{s:I,s:I}", "added", (json_int_t)(got > 0 ? got : 0), "addedInAll",
                            (json_int_t)p->huge_added));
}

static void huge_pool_give_back(struct warm_pool *p) {
        uint64_t added = p->huge_added, gone;

        if (added == 0)
                return;
        gone = huge_pool_remove(p, added);
        if (gone < added)
                log_event(LOG_WARN, "some of the huge pages this service reserved are in use by others: left in the pool",
                          json_pack("{s:I,s:I}", "gaveBack", (json_int_t)gone, "added", (json_int_t)added));
        else
                log_event(LOG_INFO, "gave back the huge pages this service reserved",
                          json_pack("{s:I,s:I}", "gaveBack", (json_int_t)gone, "added", (json_int_t)added));
        p->huge_added = 0;
}

static int zygote_spawn_process(struct warm_pool *p, struct zygote_proc *ret) {
        char sets[16];
        char *argv[8];
        size_t n_argv = 0;
        struct zygote_proc z = { .pid = -1, .pidfd = -1, .ctl = -1 };
        struct warm_reply hello;
        int sv[2], devnull, r;
        pid_t parent = getpid();

        snprintf(sets, sizeof sets, "%u", huge_sets(p));
        argv[n_argv++] = "pyexec-runner";
        argv[n_argv++] = "--zygote";
        argv[n_argv++] = "3";
        if (p->o.prefault == PYEXEC_CHOICE_OFF)
                argv[n_argv++] = "--no-prefault";
        argv[n_argv++] = "--huge-pages";
        argv[n_argv++] = sets;
        argv[n_argv] = NULL;
        if (p->exe_fd < 0 && (p->exe_fd = exe_memfd(p->o.runner_path, "pyexec-runner")) < 0) {
                r = p->exe_fd;
                p->exe_fd = -1;
                return r;
        }
        if (!p->init_looked) {
                /* pyexec-init beside the runner (sandbox-child.c: the small
                 * init); without it, each init is a copy of the zygote. */
                const char *slash = strrchr(p->o.runner_path, '/');
                _cleanup_free_ char *path =
                        slash ? strdup_printf("%.*s/pyexec-init", (int)(slash - p->o.runner_path), p->o.runner_path) : NULL;
                p->init_looked = true;
                p->init_fd = path ? exe_memfd(path, "pyexec-init") : -ENOENT;
                if (p->init_fd < 0) {
                        log_event(LOG_WARN, "pyexec-init not found beside pyexec-runner: each warm sandbox's init is a copy of the zygote",
                                  json_pack("{s:s?,s:s}", "path", path, "error", strerror(-p->init_fd)));
                        p->init_fd = -1;
                }
        }
        if (p->init_fd < 0)
                snprintf(sets, sizeof sets, "0"); /* nothing would copy them into sandboxes */
        else
                huge_pool_reserve(p);
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull < 0) {
                r = -errno;
                close(sv[0]);
                close(sv[1]);
                return r;
        }
        z.pid = ns_clone(0);
        if (z.pid == 0) {
                /* Only async-signal-safe calls: the service is threaded. */
                sigset_t none;
                struct sigaction dfl = { .sa_handler = SIG_DFL };
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                if (getppid() != parent)
                        _exit(127);
                for (int sig = 1; sig < _NSIG; sig++)
                        if (sig != SIGKILL && sig != SIGSTOP)
                                sigaction(sig, &dfl, NULL);
                sigemptyset(&none);
                sigprocmask(SIG_SETMASK, &none, NULL);
                if (dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0)
                        _exit(127);
                if (sv[1] == 3) {
                        if (fcntl(3, F_SETFD, 0) < 0)
                                _exit(127);
                } else if (dup2(sv[1], 3) < 0)
                        _exit(127);
                if (p->exe_fd <= 3) /* below close_range's cut: cannot be */
                        _exit(127);
                syscall(SYS_close_range, 4, (unsigned)p->exe_fd - 1, 0);
                syscall(SYS_close_range, (unsigned)p->exe_fd + 1, ~0u, 0);
                /* Every warm program's os.environ is the zygote's: the
                 * cold path's environment (sandbox-env.h). */
                syscall(SYS_execveat, p->exe_fd, "", argv, sandbox_env, AT_EMPTY_PATH);
                _exit(127);
        }
        close(devnull);
        close(sv[1]);
        if (z.pid < 0) {
                close(sv[0]);
                return z.pid;
        }
        z.ctl = sv[0];
        z.pidfd = (int)syscall(SYS_pidfd_open, z.pid, 0);
        if (z.pidfd < 0) {
                r = -errno;
                goto fail;
        }
        /* What to import ahead; then the hello: the interpreter is up and
         * the modules imported. */
        {
                _cleanup_free_ char *msg = strdup_printf("P%s", p->o.preimport);
                if (!msg) {
                        r = -ENOMEM;
                        goto fail;
                }
                if (send_fds(z.ctl, msg, strlen(msg), &p->init_fd, p->init_fd >= 0) < 0) {
                        r = -ECHILD; /* it died already: its stderr says why */
                        goto fail;
                }
        }
        for (;;) {
                char buf[4096];
                ssize_t n;
                r = poll_one(z.ctl, POLLIN, ZYGOTE_START_TIMEOUT_MS);
                if (r <= 0) {
                        r = r < 0 ? r : -ETIMEDOUT;
                        goto fail;
                }
                n = recv(z.ctl, buf, sizeof buf - 1, 0);
                if (n > 1 && buf[0] == 'F') {
                        /* Modules it could not import ahead: runs import
                         * them on demand (and see python3's own error). */
                        buf[n] = 0;
                        log_event(LOG_WARN, "ZYGOTE_PREIMPORT: some modules could not be imported ahead",
                                  json_pack("{s:s}", "failed", buf + 1));
                        continue;
                }
                if (n > 1 && buf[0] == 'H') {
                        buf[n] = 0;
                        log_event(LOG_INFO, "the zygote's memory stays on ordinary pages",
                                  json_pack("{s:s}", "reason", buf + 1));
                        continue;
                }
                if (n != (ssize_t)sizeof hello) {
                        r = -ECHILD; /* it died: its stderr says why */
                        goto fail;
                }
                memcpy(&hello, buf, sizeof hello);
                if (hello.pid != 0) {
                        r = -ECHILD;
                        goto fail;
                }
                z.huge_pages = hello.huge_pages;
                if (hello.huge_pages > 0) {
                        p->huge_per_set = hello.huge_pages;
                        huge_pool_trim(p);
                }
                break;
        }
        z.started_ns = now_ns();
        *ret = z;
        return 0;
fail:
        kill(z.pid, SIGKILL);
        while (waitpid(z.pid, NULL, 0) < 0 && errno == EINTR)
                ;
        close_fd(&z.pidfd);
        close_fd(&z.ctl);
        return r;
}

/* Let a zygote go: closing its control socket makes it exit. (Under
 * ctl_lock: a request may be in the middle of an exchange on it.) */
static void zygote_end(struct warm_pool *p, struct zygote_proc *z) {
        pthread_mutex_lock(&p->ctl_lock);
        close_fd(&z->ctl);
        pthread_mutex_unlock(&p->ctl_lock);
        if (z->pid > 0) {
                if (poll_one(z->pidfd, POLLIN, 2000) != 1)
                        kill(z->pid, SIGKILL);
                while (waitpid(z->pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        }
        close_fd(&z->pidfd);
        z->pid = -1;
}

/* ---- building a sandbox ------------------------------------------------ */

static int send_request(int ctl, const struct warm_request *req, const int fds[_WARM_FD_MAX]) {
        return send_fds(ctl, req, sizeof *req, fds, req->flags & WARM_JOIN_NET ? _WARM_FD_MAX : WARM_FD_NET);
}

static int recv_reply(int ctl, struct warm_reply *rep, int *ret_pidfd) {
        struct iovec iov = { rep, sizeof *rep };
        union {
                char buf[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
        } u;
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
        ssize_t n;
        int r;

        *ret_pidfd = -1;
        r = poll_one(ctl, POLLIN, BOX_TIMEOUT_MS);
        if (r <= 0)
                return r < 0 ? r : -ETIMEDOUT;
        do
                n = recvmsg(ctl, &mh, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n != (ssize_t)sizeof *rep)
                return n < 0 ? -errno : -EPIPE;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
                if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
                    cm->cmsg_len == CMSG_LEN(sizeof(int)))
                        memcpy(ret_pidfd, CMSG_DATA(cm), sizeof(int));
        return 0;
}

/* A network namespace for a new sandbox: a pooled one, or a new one; -1
 * when the sandbox is to make its own (unprivileged, or making failed). */
static int net_take(struct warm_pool *p) {
        int fd = -1;
        bool log_it = false;

        if (p->net_home < 0)
                return -1;
        pthread_mutex_lock(&p->lock);
        if (p->n_net_free > 0) {
                /* The one given back longest ago: whatever the kernel
                 * frees after a sandbox's end (a Unix socket left in
                 * flight, for its collector) has had the most time. */
                fd = p->net_free[0];
                memmove(p->net_free, p->net_free + 1, --p->n_net_free * sizeof *p->net_free);
                p->stats.netns_reused++;
        }
        pthread_mutex_unlock(&p->lock);
        if (fd >= 0)
                return fd;
        fd = ns_new_net(p->net_home);
        if (fd >= 0) {
                pthread_mutex_lock(&p->lock);
                p->stats.netns_made++;
                pthread_mutex_unlock(&p->lock);
                return fd;
        }
        pthread_mutex_lock(&p->lock);
        log_it = !p->net_failed;
        p->net_failed = true;
        pthread_mutex_unlock(&p->lock);
        if (log_it)
                log_event(LOG_WARN, "cannot make a network namespace for the pool: each warm sandbox makes its own",
                          json_pack("{s:s}", "error", strerror(-fd)));
        return -1;
}

/*
 * What a sandbox could leave in its network namespace beyond its processes,
 * as the kernel lists it per namespace. IPv6 flow labels linger up to 150 s
 * after their socket (the seccomp policy refuses them). Any other socket
 * outlives init only in flight in a Unix socket, until the kernel's
 * collector runs, and that Unix socket is listed. A namespace with a row in
 * either is closed, so the kernel frees all of it, instead of going to the
 * next sandbox: the pool does not rely on the policy alone. (The TCP and UDP
 * tables are not read: the kernel walks its host-wide hash for them, about
 * 1.6 ms for TCP; these two take about 20 us.)
 */
static const char *const net_tables[] = { "ip6_flowlabel", "unix" };

/* Whether the table at path has a row below its header line; a table the
 * kernel lacks (no IPv6) has none, any other error counts as one. */
static bool net_table_has_rows(const char *path) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        char buf[512];
        int lines = 0;
        ssize_t n;

        if (fd < 0)
                return errno != ENOENT;
        while ((n = read(fd, buf, sizeof buf)) > 0)
                for (ssize_t i = 0; i < n; i++)
                        if (buf[i] == '\n' && ++lines > 1)
                                return true;
        return n < 0;
}

/* Enters the namespace on this thread to read its tables through
 * /proc/thread-self/net, then returns to the service's (as ns_new_net). */
static bool net_is_empty(int home_fd, int net_fd) {
        bool empty = true;
        char path[64];

        if (setns(net_fd, CLONE_NEWNET) < 0)
                return false;
        for (size_t i = 0; i < ELEMENTSOF(net_tables) && empty; i++) {
                snprintf(path, sizeof path, "/proc/thread-self/net/%s", net_tables[i]);
                empty = !net_table_has_rows(path);
        }
        if (setns(home_fd, CLONE_NEWNET) < 0) {
                fprintf(stderr, "pyexec: cannot return to the service's network namespace: %m\n");
                abort();
        }
        return empty;
}

/* Give a namespace back: only once nothing of its last sandbox is left,
 * and only if it is as empty as a new one. */
static void net_give_back(struct warm_pool *p, int *fd) {
        if (*fd < 0)
                return;
        if (p->net_home < 0 || !net_is_empty(p->net_home, *fd)) {
                close_fd(fd);
                return;
        }
        pthread_mutex_lock(&p->lock);
        if (p->n_net_free < MAX_NET_FREE && p->net_free) {
                p->net_free[p->n_net_free++] = *fd;
                *fd = -1;
        }
        pthread_mutex_unlock(&p->lock);
        close_fd(fd);
}

static void net_pool_done(struct warm_pool *p) {
        for (size_t i = 0; i < p->n_net_free; i++)
                close(p->net_free[i]);
        p->n_net_free = 0;
        free(p->net_free);
        p->net_free = NULL;
        close_fd(&p->net_home);
}

static void box_free(struct warm_pool *p, struct warm_box *b) {
        bool exited = false;

        if (!b)
                return;
        close_fd(&b->status_r);
        close_fd(&b->out_r);
        close_fd(&b->err_r);
        close_fd(&b->work_w);
        if (b->pidfd >= 0) {
                syscall(SYS_pidfd_send_signal, b->pidfd, SIGKILL, NULL, 0);
                /* The namespace must be gone before its cgroup can be. */
                exited = poll_one(b->pidfd, POLLIN, 2000) == 1;
        }
        /* init exits last of its PID namespace's processes (the kernel
         * kills and waits for the others first), and every process of the
         * sandbox is in it: once init has exited, nothing holds a socket
         * in the network namespace any more but a cycle of Unix sockets in
         * flight, which has no owner left: the collector is scheduled
         * now (util.h) to release it, with what it holds (pipes, memfds
         * and their pages); the namespace taken next is the one given
         * back longest ago (net_take). Not known to have exited (or never
         * started): not reused. */
        if (exited) {
                (void)unix_gc_schedule();
                net_give_back(p, &b->net_fd);
        }
        close_fd(&b->net_fd);
        if (b->use_cgroup)
                cgroup_run_destroy(&b->cg);
        uidpool_release(&b->slot);
        close_fd(&b->pidfd);
        free(b);
}

/* Wait for the sandbox's READY (or the step that failed). */
static int box_wait_ready(struct warm_box *b, char *why, size_t whylen) {
        uint64_t deadline = now_ns() + BOX_TIMEOUT_MS * 1000000ull;
        struct msg m;

        for (;;) {
                uint64_t now = now_ns();
                int r;
                ssize_t n;
                if (now >= deadline)
                        return -ETIMEDOUT;
                r = poll_one(b->status_r, POLLIN, (int)((deadline - now) / 1000000ull) + 1);
                if (r < 0)
                        return r;
                if (r == 0)
                        continue;
                n = read(b->status_r, &m, sizeof m);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n != (ssize_t)sizeof m)
                        return -EPIPE;
                if (m.type == MSG_READY)
                        return 0;
                if (m.type == MSG_ERROR) {
                        m.step[sizeof m.step - 1] = 0;
                        snprintf(why, whylen, "%.200s", m.step);
                        return -(m.err ? m.err : EIO);
                }
        }
}

/* A sandbox that could not be built, in the log: at most one line a
 * second (a broken host retries every 50 ms); the count is in the stats. */
static void log_build_failure(struct warm_pool *p, int r, const char *why) {
        uint64_t now = now_ns();
        bool log;

        pthread_mutex_lock(&p->lock);
        /* Not while the zygote is being replaced: its start is logged. */
        log = p->cur.ctl >= 0 && now >= p->fail_logged_ns + 1000000000ull;
        if (log)
                p->fail_logged_ns = now;
        pthread_mutex_unlock(&p->lock);
        if (log)
                log_event(LOG_WARN, "a warm sandbox could not be built",
                          json_pack("{s:s,s:s}", "error", strerror(-r), "why", why ? why : ""));
}

static int box_build(struct warm_pool *p, bool read_ahead, struct warm_box **ret) {
        struct warm_box *b = calloc(1, sizeof *b);
        int sync[2] = { -1, -1 }, status[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 },
            work[2] = { -1, -1 };
        struct warm_request req = { 0 };
        struct warm_reply rep = { 0 };
        char cgname[64], why[256] = "";
        unsigned gen, huge_pages;
        int ctl, zpidfd, r;

        if (!b)
                return -ENOMEM;
        *b = (struct warm_box){ .pid = -1, .pidfd = -1, .status_r = -1, .out_r = -1, .err_r = -1, .work_w = -1,
                                .net_fd = -1, .slot = { .fd = -1 } };
        if (p->host.privileged) {
                r = uidpool_acquire(p->host.lock_dir, p->host.uid_base, p->host.uid_count, &b->slot);
                if (r < 0)
                        goto fail;
                b->uid = b->gid = b->slot.uid;
                b->init_uid = b->slot.init_uid;
                snprintf(cgname, sizeof cgname, "box-%u", b->slot.index);
        } else {
                b->uid = b->gid = b->init_uid = SANDBOX_INNER_ID;
                pthread_mutex_lock(&p->lock);
                snprintf(cgname, sizeof cgname, "warm-%d-%u", (int)getpid(), p->counter++);
                pthread_mutex_unlock(&p->lock);
        }
        if (p->host.cg->version != CGROUP_NONE) {
                r = cgroup_run_create(p->host.cg, cgname, p->o.memory_mb * 1024 * 1024, p->o.pids + WARM_EXTRA_PIDS, &b->cg);
                if (r < 0)
                        goto fail;
                b->use_cgroup = true;
                b->memory_bytes = p->o.memory_mb * 1024 * 1024;
                b->pids_max = p->o.pids + WARM_EXTRA_PIDS;
        }
        if (pipe2(sync, O_CLOEXEC) < 0 || pipe2(status, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0 ||
            pipe2(err, O_CLOEXEC) < 0 || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, work) < 0) {
                r = -errno;
                goto fail;
        }
        b->net_fd = net_take(p);
        req = (struct warm_request){
                .uid = b->uid,
                .gid = b->gid,
                .init_uid = b->init_uid,
                .init_gid = b->init_uid,
                .userns = !p->host.privileged,
                .flags = (read_ahead ? WARM_READ_AHEAD : 0) | (b->net_fd >= 0 ? WARM_JOIN_NET : 0) |
                         (p->o.prefault == PYEXEC_CHOICE_ON || (p->o.prefault == PYEXEC_CHOICE_AUTO && read_ahead)
                                  ? WARM_PREFAULT
                                  : 0),
                .disk_bytes = p->o.disk_mb * 1024 * 1024,
                .inodes = 4096,
        };
        pthread_mutex_lock(&p->ctl_lock);
        pthread_mutex_lock(&p->lock);
        ctl = p->cur.ctl;
        gen = p->cur.generation;
        huge_pages = p->cur.huge_pages;
        zpidfd = p->cur.pidfd >= 0 ? fcntl(p->cur.pidfd, F_DUPFD_CLOEXEC, 3) : -1;
        pthread_mutex_unlock(&p->lock);
        if (ctl < 0)
                r = -ECHILD;
        else if ((r = send_request(ctl, &req, (int[]){ sync[0], status[1], out[1], err[1], work[0], b->net_fd })) == 0)
                r = recv_reply(ctl, &rep, &b->pidfd);
        pthread_mutex_unlock(&p->ctl_lock);
        if (r < 0 && r != -ECHILD && zpidfd >= 0)
                /* A zygote that does not answer, or answers garbage, is
                 * broken: killed, it is replaced like one that died. */
                syscall(SYS_pidfd_send_signal, zpidfd, SIGKILL, NULL, 0);
        if (zpidfd >= 0)
                close(zpidfd);
        if (r < 0)
                goto fail;
        if (rep.err || rep.pid <= 0 || b->pidfd < 0) {
                r = rep.err ? -rep.err : -EPROTO;
                goto fail;
        }
        b->pid = rep.pid;
        b->generation = gen;
        pthread_mutex_lock(&p->lock);
        if (gen == p->cur.generation) {
                p->cur.outstanding++;
                p->cur.forks++;
        } else
                for (size_t i = 0; i < p->n_retiring; i++)
                        if (p->retiring[i].generation == gen)
                                p->retiring[i].outstanding++;
        pthread_mutex_unlock(&p->lock);
        close_fd(&sync[0]);
        close_fd(&status[1]);
        close_fd(&out[1]);
        close_fd(&err[1]);
        close_fd(&work[0]);

        r = 0;
        if (!p->host.privileged)
                r = sandbox_map_inner_ids(b->pid, p->host.outer_uid, p->host.outer_gid);
        /* The sandbox's huge pages: exactly its copy of the zygote's, which
         * init makes (charged to init: it faults them in), and not one
         * more. A process of the program that writes to a page it shares
         * after a raw clone() (glibc's fork moves the pages back first,
         * zygote-heap.c) then gets SIGBUS instead of a page of the pool. */
        if (r == 0 && huge_pages > 0)
                r = b->use_cgroup ? cgroup_run_set_hugetlb(&b->cg, (uint64_t)huge_pages * HUGETLB_PAGE_SIZE)
                                  : -EOPNOTSUPP;
        if (r == 0 && b->use_cgroup)
                r = cgroup_run_attach(&b->cg, b->pid);
        if (r == 0 && write(sync[1], "x", 1) != 1)
                r = -errno;
        close_fd(&sync[1]);
        b->status_r = status[0];
        b->out_r = out[0];
        b->err_r = err[0];
        b->work_w = work[1];
        status[0] = out[0] = err[0] = work[1] = -1;
        if (r == 0)
                r = box_wait_ready(b, why, sizeof why);
        if (r < 0) {
                log_build_failure(p, r, why);
                if (huge_pages > 0 && strstr(why, "huge pages")) {
                        pthread_mutex_lock(&p->lock);
                        p->huge_short = true;
                        pthread_mutex_unlock(&p->lock);
                }
                warm_pool_release(p, b);
                return r;
        }
        b->born_ns = now_ns();
        *ret = b;
        return 0;
fail:
        log_build_failure(p, r, "");
        for (int i = 0; i < 2; i++) {
                close_fd(&sync[i]);
                close_fd(&status[i]);
                close_fd(&out[i]);
                close_fd(&err[i]);
                close_fd(&work[i]);
        }
        box_free(p, b);
        return r;
}

/* ---- the keeper thread ------------------------------------------------- */

/* Called with the lock held: a sandbox from generation gen is gone. */
static void generation_done(struct warm_pool *p, unsigned gen) {
        if (p->cur.generation == gen && p->cur.outstanding > 0) {
                p->cur.outstanding--;
                return;
        }
        for (size_t i = 0; i < p->n_retiring; i++)
                if (p->retiring[i].generation == gen && p->retiring[i].outstanding > 0) {
                        p->retiring[i].outstanding--;
                        return;
                }
}

static int start_zygote(struct warm_pool *p) {
        struct zygote_proc z;
        int r = zygote_spawn_process(p, &z);
        pthread_mutex_lock(&p->lock);
        if (r == 0) {
                z.generation = ++p->next_generation;
                p->cur = z;
                p->stats.zygotes++;
                p->stats.zygote_pid = z.pid;
        }
        pthread_mutex_unlock(&p->lock);
        return r;
}

/*
 * How many sandboxes the pool keeps ready now. A waiting sandbox holds
 * memory (its copy of the pages a run writes, page tables, namespaces), so
 * unless WARM_POOL_SIZE fixes the number, the pool follows the load: one
 * more than the most runs at once (pool_note_load) within the last
 * shrink_after_ns (WARM_POOL_SHRINK_AFTER), at least POOL_MIN, at most the
 * target. A burst beyond it has its sandboxes built on demand and raises
 * it; the keeper lets the surplus go once the load has stayed lower for
 * that long.
 */
#define POOL_MIN 2u

static unsigned pool_target(const struct warm_pool *p, uint64_t now) {
        unsigned t = p->peak + 1;

        if (!p->o.follow_load)
                return p->o.target;
        if (now >= p->peak_since + p->o.shrink_after_ns)
                t = p->running + p->on_demand + 1; /* what pool_decay sets */
        t = t > POOL_MIN ? t : POOL_MIN;
        return t < p->o.target ? t : p->o.target;
}

/* With the lock held, after a run took a sandbox. */
static void pool_note_load(struct warm_pool *p) {
        unsigned load = p->running + p->on_demand;

        if (load >= p->peak) {
                p->peak = load;
                p->peak_since = now_ns();
        }
}

/* With the lock held, by the keeper: a peak older than the window gives
 * way to the load of now. */
static void pool_decay(struct warm_pool *p, uint64_t now) {
        if (now >= p->peak_since + p->o.shrink_after_ns) {
                p->peak = p->running + p->on_demand;
                p->peak_since = now;
        }
}

/*
 * Called with the lock held: whether the keeper should build a sandbox now.
 * Building one takes a CPU for several milliseconds (a fork of the zygote,
 * namespaces, mounts, the prefault), so while runs are in progress the
 * pool is only topped up once it is below half its target: a run that
 * takes a sandbox from a well-stocked pool does not share the machine
 * with the build of its replacement, which starts when the run is over
 * and its response is out (KILL_GRACE_NS after the release). Under
 * sustained load the pool drains to half and the keeper builds without
 * pause.
 */
static bool pool_needs_box(const struct warm_pool *p, uint64_t now) {
        unsigned target = pool_target(p, now);

        if (p->cur.ctl < 0 || p->n_ready >= target)
                return false;
        if (p->n_ready * 2 < target)
                return true;
        return p->running == 0 && now >= p->quiet_until;
}

static void *keeper_main(void *arg) {
        struct warm_pool *p = arg;
        int r;

        r = start_zygote(p);
        pthread_mutex_lock(&p->lock);
        p->started = true;
        p->start_failed = r < 0;
        p->start_err = r;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
        if (r < 0)
                return NULL;

        for (;;) {
                struct warm_box **reap = NULL, *kill_list[64];
                size_t n_reap = 0, n_kill = 0, n_end = 0;
                struct zygote_proc ended[MAX_RETIRING];
                size_t n_ended = 0;
                bool need_box, read_ahead, restart = false, recycle = false, huge_short;
                int end_list[64];
                uint64_t now = now_ns(), wake_at = now + KEEPER_TICK_NS;

                pthread_mutex_lock(&p->lock);
                if (p->stop) {
                        pthread_mutex_unlock(&p->lock);
                        break;
                }
                /* Finished runs: killed once their response is out,
                 * cleaned up once their namespace is gone. */
                for (size_t i = 0; i < p->n_dying;) {
                        struct warm_box *b = p->dying[i];
                        if (pidfd_exited(b->pidfd)) {
                                struct warm_box **nv = realloc(reap, (n_reap + 1) * sizeof *nv);
                                if (!nv)
                                        break;
                                reap = nv;
                                reap[n_reap++] = b;
                                generation_done(p, b->generation);
                                p->dying[i] = p->dying[--p->n_dying];
                                continue;
                        }
                        if (!b->killed && now >= b->released_ns + KILL_GRACE_NS && n_end < ELEMENTSOF(end_list)) {
                                end_list[n_end++] = b->pidfd;
                                b->killed = true;
                        } else if (!b->killed && b->released_ns + KILL_GRACE_NS < wake_at)
                                wake_at = b->released_ns + KILL_GRACE_NS;
                        i++;
                }
                /* Ready sandboxes that were lost (their zygote died, or one
                 * of their processes was killed). */
                for (size_t i = 0; i < p->n_ready && n_kill < ELEMENTSOF(kill_list);) {
                        if (ready_box_lost(p->ready[i])) {
                                kill_list[n_kill++] = p->ready[i];
                                p->ready[i] = p->ready[--p->n_ready];
                        } else
                                i++;
                }
                if (pidfd_exited(p->cur.pidfd)) {
                        restart = true;
                        p->stats.zygote_deaths++;
                } else if ((p->o.max_forks && p->cur.forks >= p->o.max_forks) ||
                           (p->o.max_age_s && now_ns() - p->cur.started_ns >= p->o.max_age_s * 1000000000ull)) {
                        recycle = p->n_retiring < MAX_RETIRING;
                }
                if (restart || recycle) {
                        /* The idle sandboxes of the old zygote go; the
                         * ones running finish first (a retiring zygote
                         * lives until then). */
                        for (size_t i = 0; i < p->n_ready && n_kill < ELEMENTSOF(kill_list);) {
                                if (p->ready[i]->generation == p->cur.generation) {
                                        kill_list[n_kill++] = p->ready[i];
                                        p->ready[i] = p->ready[--p->n_ready];
                                } else
                                        i++;
                        }
                        p->retiring[p->n_retiring++] = p->cur;
                        p->cur = (struct zygote_proc){ .pid = -1, .pidfd = -1, .ctl = -1 };
                }
                for (size_t i = 0; i < p->n_retiring;) {
                        if (p->retiring[i].outstanding == 0 || pidfd_exited(p->retiring[i].pidfd)) {
                                ended[n_ended++] = p->retiring[i];
                                p->retiring[i] = p->retiring[--p->n_retiring];
                        } else
                                i++;
                }
                /* Sandboxes beyond what the load needs go, the newest
                 * first (the oldest are taken first). */
                pool_decay(p, now);
                while (p->n_ready > pool_target(p, now) && n_kill < ELEMENTSOF(kill_list)) {
                        kill_list[n_kill++] = p->ready[--p->n_ready];
                        p->stats.let_go++;
                }
                need_box = pool_needs_box(p, now);
                /* With as many runs going on (or runs building their own
                 * sandbox) as there are CPUs, the CPU is what requests wait
                 * for: no read-ahead. */
                read_ahead = p->running + p->on_demand < p->ncpu;
                if (!need_box && p->quiet_until > now && p->quiet_until < wake_at)
                        wake_at = p->quiet_until;
                pthread_mutex_unlock(&p->lock);

                /* Outside the lock: a killed init may take this CPU. */
                for (size_t i = 0; i < n_end; i++)
                        syscall(SYS_pidfd_send_signal, end_list[i], SIGKILL, NULL, 0);

                for (size_t i = 0; i < n_reap; i++)
                        box_free(p, reap[i]); /* dead already: this only cleans up */
                free(reap);
                for (size_t i = 0; i < n_kill; i++) {
                        pthread_mutex_lock(&p->lock);
                        generation_done(p, kill_list[i]->generation);
                        pthread_mutex_unlock(&p->lock);
                        box_free(p, kill_list[i]);
                }
                /* The kills above may have let a retiring zygote go; it is
                 * seen on the next round. */
                for (size_t i = 0; i < n_ended; i++)
                        zygote_end(p, &ended[i]);
                pthread_mutex_lock(&p->lock);
                huge_short = p->huge_short;
                p->huge_short = false;
                pthread_mutex_unlock(&p->lock);
                if (huge_short)
                        huge_pool_refill(p);
                if (restart || recycle) {
                        if (start_zygote(p) < 0) {
                                /* Try again shortly; requests fall back to
                                 * the cold path meanwhile. */
                                pthread_mutex_lock(&p->lock);
                                p->stats.failures++;
                                pthread_mutex_unlock(&p->lock);
                                usleep(200000);
                        }
                        continue;
                }
                if (need_box) {
                        struct warm_box *b = NULL;
                        r = box_build(p, read_ahead, &b);
                        pthread_mutex_lock(&p->lock);
                        if (r == 0) {
                                struct warm_box **nv = realloc(p->ready, (p->n_ready + 1) * sizeof *nv);
                                if (nv) {
                                        p->ready = nv;
                                        p->ready[p->n_ready++] = b;
                                        p->stats.sandboxes++;
                                        b = NULL;
                                }
                        } else
                                p->stats.failures++;
                        pthread_cond_broadcast(&p->cond);
                        pthread_mutex_unlock(&p->lock);
                        if (b)
                                warm_pool_release(p, b);
                        if (r < 0)
                                usleep(50000); /* do not spin on a broken host */
                        continue;
                }
                pthread_mutex_lock(&p->lock);
                now = now_ns();
                if (!p->stop && !pool_needs_box(p, now) && wake_at > now) {
                        struct timespec ts;
                        uint64_t wait_ns = wake_at - now;
                        clock_gettime(CLOCK_REALTIME, &ts);
                        ts.tv_sec += (time_t)(wait_ns / 1000000000ull);
                        ts.tv_nsec += (long)(wait_ns % 1000000000ull);
                        if (ts.tv_nsec >= 1000000000L) {
                                ts.tv_sec++;
                                ts.tv_nsec -= 1000000000L;
                        }
                        pthread_cond_timedwait(&p->cond, &p->lock, &ts);
                }
                pthread_mutex_unlock(&p->lock);
        }
        return NULL;
}

/* ---- the interface ----------------------------------------------------- */

/* What the pool holds besides its threads and zygotes: the runner's and
 * init's executables, its options' strings, the network namespaces. */
static void pool_free_holdings(struct warm_pool *p) {
        if (p->exe_fd >= 0)
                close(p->exe_fd);
        if (p->init_fd >= 0)
                close(p->init_fd);
        free((char *)p->o.runner_path);
        free((char *)p->o.preimport);
        net_pool_done(p);
}

/*
 * ZYGOTE_HUGE_PAGES: the huge pages cut what each sandbox's copy-on-write
 * faults cost where a fault is dear (shadow paging: a TLB flush is a trip
 * to the hypervisor) and add the copy of 12 MiB to each where it is not;
 * the cost of a fault is measured here, and auto goes by it
 * (docs/benchmarks.md, the machines).
 */
static void pool_choose_huge_pages(struct warm_pool *p) {
        int r = hugetlb_cow_fault_ns(&p->cow_ns);

        if (r < 0)
                p->cow_ns = 0;
        switch (p->o.huge_pages) {
        case PYEXEC_CHOICE_ON:
                p->huge_on = true;
                p->huge_why = "ZYGOTE_HUGE_PAGES=true";
                break;
        case PYEXEC_CHOICE_OFF:
                p->huge_on = false;
                p->huge_why = "ZYGOTE_HUGE_PAGES=false";
                break;
        case PYEXEC_CHOICE_AUTO:
        default:
                p->huge_on = r == 0 && p->cow_ns >= HUGETLB_PAYS_COW_NS;
                p->huge_why = r < 0        ? "auto: the cost of a copy-on-write fault could not be measured"
                              : p->huge_on ? "auto: a copy-on-write fault costs 8 us or more here"
                                           : "auto: a copy-on-write fault costs less than 8 us here";
                break;
        }
}

int warm_pool_start(const struct warm_host *host, const struct warm_options *o, struct warm_pool **ret) {
        struct warm_pool *p = calloc(1, sizeof *p);
        int r;

        if (!p)
                return -ENOMEM;
        p->host = *host;
        p->o = *o;
        p->huge_per_set = 8; /* a guess until the first zygote says (6 here) */
        p->ncpu = sysconf(_SC_NPROCESSORS_ONLN) > 1 ? (unsigned)sysconf(_SC_NPROCESSORS_ONLN) : 1;
        p->o.runner_path = strdup(o->runner_path);
        p->o.preimport = strdup(o->preimport ? o->preimport : "");
        p->cur = (struct zygote_proc){ .pid = -1, .pidfd = -1, .ctl = -1 };
        p->exe_fd = p->init_fd = -1;
        pool_choose_huge_pages(p);
        if (p->huge_on && !huge_bounded(p))
                log_event(LOG_WARN, "the zygote's memory stays on ordinary pages: no hugetlb cgroup can bound each "
                                    "sandbox's huge pages",
                          json_pack("{s:s}", "reason", p->host.cg->hugetlb_reason));
        p->net_home = -1;
        if (p->host.privileged) {
                p->net_free = calloc(MAX_NET_FREE, sizeof *p->net_free);
                if (p->net_free)
                        p->net_home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        }
        pthread_mutex_init(&p->lock, NULL);
        pthread_mutex_init(&p->ctl_lock, NULL);
        pthread_cond_init(&p->cond, NULL);
        if (!p->o.runner_path || !p->o.preimport) {
                free((char *)p->o.runner_path);
                free((char *)p->o.preimport);
                net_pool_done(p);
                free(p);
                return -ENOMEM;
        }
        r = pthread_create(&p->keeper, NULL, keeper_main, p);
        if (r != 0) {
                free((char *)p->o.runner_path);
                free((char *)p->o.preimport);
                net_pool_done(p);
                free(p);
                return -r;
        }
        pthread_mutex_lock(&p->lock);
        while (!p->started)
                pthread_cond_wait(&p->cond, &p->lock);
        r = p->start_failed ? p->start_err : 0;
        pthread_mutex_unlock(&p->lock);
        if (r < 0) {
                pthread_join(p->keeper, NULL);
                pool_free_holdings(p);
                free(p);
                return r;
        }
        *ret = p;
        return 0;
}

struct warm_box *warm_pool_take(struct warm_pool *p, int *ret_err) {
        struct warm_box *b = NULL;
        int r, end_list[16];
        size_t n_end = 0;

        pthread_mutex_lock(&p->lock);
        /* Requests back to back: the grace only moves the previous run's
         * teardown into this one. (Copies of the pidfds: the keeper may
         * free a box once the lock is released.) */
        for (size_t i = 0; i < p->n_dying && n_end < ELEMENTSOF(end_list); i++)
                if (!p->dying[i]->killed && p->dying[i]->pidfd >= 0) {
                        int fd = fcntl(p->dying[i]->pidfd, F_DUPFD_CLOEXEC, 0);
                        if (fd < 0)
                                break; /* the keeper kills it */
                        end_list[n_end++] = fd;
                        p->dying[i]->killed = true;
                }
        p->quiet_until = 0;
        while (p->n_ready > 0) {
                /* The oldest first: each waits about as long. */
                b = p->ready[0];
                memmove(p->ready, p->ready + 1, (p->n_ready - 1) * sizeof *p->ready);
                p->n_ready--;
                if (!ready_box_lost(b))
                        break;
                pthread_mutex_unlock(&p->lock);
                warm_pool_release(p, b);
                b = NULL;
                pthread_mutex_lock(&p->lock);
        }
        if (b) {
                p->stats.taken_ready++;
                p->running++;
                b->taken = true;
                pool_note_load(p);
        }
        pthread_cond_broadcast(&p->cond); /* the keeper refills */
        pthread_mutex_unlock(&p->lock);
        for (size_t i = 0; i < n_end; i++) {
                syscall(SYS_pidfd_send_signal, end_list[i], SIGKILL, NULL, 0);
                close(end_list[i]);
        }
        if (b)
                return b;
        pthread_mutex_lock(&p->lock);
        p->on_demand++;
        pool_note_load(p);
        pthread_mutex_unlock(&p->lock);
        r = box_build(p, false, &b); /* taken at once */
        pthread_mutex_lock(&p->lock);
        p->on_demand--;
        if (r == 0) {
                p->stats.built_on_demand++;
                p->stats.sandboxes++;
                p->running++;
                b->taken = true;
        } else
                p->stats.failures++;
        pthread_mutex_unlock(&p->lock);
        if (r < 0) {
                *ret_err = r;
                return NULL;
        }
        return b;
}

void warm_pool_release(struct warm_pool *p, struct warm_box *b) {
        uint64_t now = now_ns();

        if (!b)
                return;
        /* A sandbox whose init answered is killed KILL_GRACE_NS later, by
         * the keeper or the next take (its processes are reaped or
         * stopped). Any other dies now. */
        if (!b->answered && b->pidfd >= 0) {
                syscall(SYS_pidfd_send_signal, b->pidfd, SIGKILL, NULL, 0);
                b->killed = true;
        }
        close_fd(&b->status_r);
        close_fd(&b->out_r);
        close_fd(&b->err_r);
        close_fd(&b->work_w);
        pthread_mutex_lock(&p->lock);
        if (b->taken) {
                p->running--;
                b->taken = false;
                p->quiet_until = now + KILL_GRACE_NS;
        }
        b->released_ns = now;
        if (p->n_dying == p->cap_dying) {
                size_t cap = p->cap_dying ? p->cap_dying * 2 : 16;
                struct warm_box **nv = realloc(p->dying, cap * sizeof *nv);
                if (!nv) {
                        generation_done(p, b->generation);
                        pthread_mutex_unlock(&p->lock);
                        box_free(p, b); /* clean up here, slower */
                        return;
                }
                p->dying = nv;
                p->cap_dying = cap;
        }
        p->dying[p->n_dying++] = b;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
}

bool warm_pool_box_zygote_died(struct warm_pool *p, const struct warm_box *b) {
        /* Not found: the keeper let its zygote go, which it does with a
         * sandbox still taken only once the zygote is dead. */
        bool died = true;

        pthread_mutex_lock(&p->lock);
        if (p->cur.pid > 0 && p->cur.generation == b->generation)
                died = pidfd_exited(p->cur.pidfd);
        else
                for (size_t i = 0; i < p->n_retiring; i++)
                        if (p->retiring[i].generation == b->generation)
                                died = pidfd_exited(p->retiring[i].pidfd);
        pthread_mutex_unlock(&p->lock);
        return died;
}

void warm_pool_get_stats(struct warm_pool *p, struct warm_stats *ret) {
        pthread_mutex_lock(&p->lock);
        *ret = p->stats;
        ret->ready = (unsigned)p->n_ready;
        ret->zygote_pid = p->cur.pid;
        ret->zygote_huge_pages = p->cur.pid > 0 ? p->cur.huge_pages : 0;
        ret->target = pool_target(p, now_ns());
        ret->huge_pages = p->huge_on;
        ret->huge_pages_why = p->huge_why;
        ret->prefault = p->o.prefault == PYEXEC_CHOICE_ON    ? "always"
                        : p->o.prefault == PYEXEC_CHOICE_OFF ? "off"
                                                             : "idle";
        ret->cow_fault_ns = p->cow_ns;
        ret->huge_reserved = p->huge_added;
        pthread_mutex_unlock(&p->lock);
}

const struct warm_options *warm_pool_options(const struct warm_pool *p) {
        return &p->o;
}

struct warm_pool *warm_pool_free(struct warm_pool *p) {
        if (!p)
                return NULL;
        pthread_mutex_lock(&p->lock);
        p->stop = true;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->keeper, NULL);
        for (size_t i = 0; i < p->n_ready; i++)
                box_free(p, p->ready[i]);
        for (size_t i = 0; i < p->n_dying; i++)
                box_free(p, p->dying[i]);
        free(p->ready);
        free(p->dying);
        zygote_end(p, &p->cur);
        for (size_t i = 0; i < p->n_retiring; i++)
                zygote_end(p, &p->retiring[i]);
        pthread_mutex_destroy(&p->lock);
        pthread_mutex_destroy(&p->ctl_lock);
        pthread_cond_destroy(&p->cond);
        pool_free_holdings(p);
        huge_pool_give_back(p);
        free(p);
        return NULL;
}
